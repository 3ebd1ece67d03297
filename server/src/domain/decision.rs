//! Decision tables: a rule written once as data, so that the domain can evaluate it on one
//! case (in unit tests, on the row-by-row paths) and storage can run the same table over a
//! whole set at once (storage renders it as one SQL `CASE`).
//!
//! A table is a list of rules tried in order; the first whose conditions all hold gives the
//! outcome, and when none holds the table's `otherwise` does. A condition is a fact of the
//! case and the value it must have.

/// One rule: when every listed fact has its listed value, `then`.
#[derive(Debug, Clone, Copy)]
pub struct Rule<F: 'static, O> {
    pub when: &'static [(F, bool)],
    pub then: O,
}

/// A decision table over facts `F` giving outcomes `O`.
#[derive(Debug, Clone, Copy)]
pub struct Table<F: 'static, O: 'static> {
    pub rules: &'static [Rule<F, O>],
    pub otherwise: O,
}

impl<F: Copy, O: Copy> Table<F, O> {
    /// The outcome for a case whose facts `fact` tells.
    pub fn decide(&self, fact: impl Fn(F) -> bool) -> O {
        self.rules
            .iter()
            .find(|rule| rule.when.iter().all(|&(f, value)| fact(f) == value))
            .map_or(self.otherwise, |rule| rule.then)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Fact {
        A,
        B,
    }

    const TABLE: Table<Fact, &str> = Table {
        rules: &[
            Rule { when: &[(Fact::A, true), (Fact::B, false)], then: "a only" },
            Rule { when: &[(Fact::A, true)], then: "a" },
        ],
        otherwise: "neither",
    };

    #[test]
    fn the_first_rule_whose_conditions_all_hold_decides() {
        let case = |a: bool, b: bool| TABLE.decide(|f| if f == Fact::A { a } else { b });
        assert_eq!(case(true, false), "a only");
        assert_eq!(case(true, true), "a");
        assert_eq!(case(false, true), "neither");
        assert_eq!(case(false, false), "neither");
    }
}
