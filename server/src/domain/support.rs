//! When a household is supported: one function of its history and the policy's versions,
//! which every path reads (single and batch decisions and their entitlements, reconciliation's
//! codes and amounts, the change feed's `support_ends`, the statistics' eligible counts), so
//! that they cannot disagree where two rules meet.
//!
//! A day *qualifies* when the household's state on it is on the list (not a removal) and in a
//! category the version in force that day covers. Support runs over the qualifying days and,
//! after a household stops qualifying, until the end its stop earns under the version in force
//! on the stop's day (the grace to the next 1 January, or none). Every later stop before that
//! end (a removal, a change of category) may only bring the end nearer: a household in a
//! year-end grace that is then removed as deceased is supported until the removal, and a later
//! version without the grace does not shorten a grace earned under an earlier one.

use time::Date;

use super::{eligibility::State, policy::PolicyTable};

/// Days of support: from `from` until the day before `to` (`None`: no end known yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: Date,
    pub to: Option<Date>,
    /// The first day that did not qualify, when support goes on after it in a grace.
    pub stopped: Option<Date>,
}

impl Period {
    pub fn holds_on(&self, day: Date) -> bool {
        self.from <= day && self.to.is_none_or(|to| day < to)
    }
}

/// A stretch of days on which the household's qualifying does not change.
struct Piece {
    from: Date,
    qualifies: bool,
    /// A stop begins here (a removal, a change of category, or the policy ceasing to cover the
    /// category), with the removal's reason, if any; `gap`: no state at all (off the register
    /// without a removal), which ends support on the day.
    stop: Option<Stop>,
}

#[derive(Clone, Copy)]
struct Stop {
    removal: Option<super::household::RemovalReason>,
    gap: bool,
}

/// The household's periods of support, oldest first, none overlapping.
pub fn periods(states: &[State], policy: &PolicyTable) -> Vec<Period> {
    let mut pieces: Vec<Piece> = Vec::new();
    let mut previous: Option<&State> = None;
    for state in states {
        if let Some(before) = previous
            && before.valid_to.is_some_and(|to| to < state.valid_from)
        {
            let from = before.valid_to.expect("checked");
            pieces.push(Piece { from, qualifies: false, stop: Some(Stop { removal: None, gap: true }) });
        }
        let changed = previous.is_none_or(|p| {
            p.removal != state.removal
                || p.facts.category != state.facts.category
                || p.valid_to.is_some_and(|to| to < state.valid_from)
        });
        // The state, cut where a version of the policy starts.
        let mut starts = vec![state.valid_from];
        starts.extend(
            policy
                .iter()
                .map(|v| v.valid_from)
                .filter(|d| *d > state.valid_from && state.valid_to.is_none_or(|to| *d < to)),
        );
        for (n, from) in starts.into_iter().enumerate() {
            let qualifies =
                state.removal.is_none() && policy.in_force(from).is_some_and(|v| v.covers(state.facts.category));
            let stop = if n == 0 {
                changed.then_some(Stop { removal: state.removal, gap: false })
            } else {
                // The policy ceased to cover the category: a change of category, as the
                // household sees it.
                pieces.last().filter(|p| p.qualifies && !qualifies).map(|_| Stop { removal: None, gap: false })
            };
            pieces.push(Piece { from, qualifies, stop });
        }
        previous = Some(state);
    }
    if let Some(last) = previous
        && let Some(to) = last.valid_to
    {
        pieces.push(Piece { from: to, qualifies: false, stop: Some(Stop { removal: None, gap: true }) });
    }

    let mut out = Vec::new();
    // The period under way: its first day, the end its stops earned (`None` while qualifying),
    // and the day it stopped qualifying.
    let mut open: Option<(Date, Option<Date>, Option<Date>)> = None;
    for piece in pieces {
        if piece.qualifies {
            open = match open {
                None => Some((piece.from, None, None)),
                // Support had ended before: a new period.
                Some((from, Some(end), stopped)) if end < piece.from => {
                    out.push(Period { from, to: Some(end), stopped });
                    Some((piece.from, None, None))
                }
                // Qualifying again within a grace (or still qualifying): the period goes on.
                Some((from, _, _)) => Some((from, None, None)),
            };
            continue;
        }
        let Some((from, end, stopped)) = open else { continue };
        let Some(stop) = piece.stop else { continue };
        let earned = if stop.gap {
            piece.from
        } else {
            policy.in_force(piece.from).map_or(piece.from, |v| v.support_end(piece.from, stop.removal))
        };
        open = Some(match end {
            None => (from, Some(earned), Some(piece.from)),
            // A later stop may bring the end nearer, never further.
            Some(end) if piece.from < end => (from, Some(end.min(earned)), stopped),
            Some(end) => (from, Some(end), stopped),
        });
    }
    if let Some((from, to, stopped)) = open {
        out.push(Period { from, to, stopped });
    }
    out.retain(|p| p.to.is_none_or(|to| to > p.from));
    out
}

/// The period of support holding on `day`, if any.
pub fn on(periods: &[Period], day: Date) -> Option<&Period> {
    periods.iter().find(|p| p.holds_on(day))
}

/// The end of the last period of support that ended on or before `day`.
pub fn ended_by(periods: &[Period], day: Date) -> Option<Date> {
    periods.iter().filter_map(|p| p.to).filter(|to| *to <= day).max()
}

/// The first day without support after a change on `day` that the household does not qualify
/// after (a removal, a change to a category not covered): the end of the support running the
/// day before (`None` when it does not end: the household qualifies again within its grace), or
/// of the last that ended; `day` itself when it had none.
pub fn end_after(periods: &[Period], day: Date) -> Option<Date> {
    let before = day.previous_day().unwrap_or(day);
    match on(periods, before) {
        Some(period) => period.to,
        None => Some(ended_by(periods, day).unwrap_or(day)),
    }
}

/// Whether the household qualifies on `day` (on the list, in a category the version in force
/// covers), grace aside.
pub fn qualifies_on(states: &[State], policy: &PolicyTable, day: Date) -> bool {
    states
        .iter()
        .find(|s| s.valid_from <= day && s.valid_to.is_none_or(|to| day < to))
        .is_some_and(|s| s.removal.is_none() && policy.in_force(day).is_some_and(|v| v.covers(s.facts.category)))
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;
    use crate::domain::{
        eligibility::Facts,
        household::{Category, RemovalReason},
        policy::{PolicyVersion, reference_policy},
    };

    fn state(from: Date, to: Option<Date>, category: Category, removal: Option<RemovalReason>) -> State {
        State {
            valid_from: from,
            valid_to: to,
            removal,
            facts: Facts {
                category,
                head_name: "Nguyễn Văn An".into(),
                commune_code: "24611".into(),
                certificate_number: None,
                citizen_ids: Vec::new(),
            },
        }
    }

    /// The reference rules from 2022-12-12 (grace to the year's end on a change of category
    /// and on leaving poverty), and from `no_grace` (if given) the same without any grace.
    fn table(no_grace: Option<Date>) -> PolicyTable {
        let rules = reference_policy().unwrap().remove(0);
        let mut versions = vec![PolicyVersion {
            version: 1,
            valid_from: date!(2022 - 12 - 12),
            valid_to: None,
            rules: rules.clone(),
            recorded_by: None,
            recorded_at: None,
            withdrawal: None,
        }];
        if let Some(from) = no_grace {
            let mut rules = rules;
            rules.grace.until_end_of_year = false;
            versions.push(PolicyVersion {
                version: 2,
                valid_from: from,
                valid_to: None,
                rules,
                recorded_by: None,
                recorded_at: None,
                withdrawal: None,
            });
        }
        PolicyTable::new(versions)
    }

    #[test]
    fn a_removal_without_grace_ends_a_grace_already_running() {
        let states = [
            state(date!(2024 - 01 - 01), Some(date!(2024 - 04 - 01)), Category::Poor, None),
            state(date!(2024 - 04 - 01), Some(date!(2024 - 08 - 01)), Category::Other, None),
            state(date!(2024 - 08 - 01), None, Category::Other, Some(RemovalReason::MovedAway)),
        ];
        let p = periods(&states, &table(None));
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].from, p[0].to), (date!(2024 - 01 - 01), Some(date!(2024 - 08 - 01))));
        assert_eq!(p[0].stopped, Some(date!(2024 - 04 - 01)));
    }

    #[test]
    fn a_later_version_does_not_shorten_a_grace_earned_before_it() {
        let states = [
            state(date!(2024 - 01 - 01), Some(date!(2024 - 03 - 01)), Category::Poor, None),
            state(date!(2024 - 03 - 01), None, Category::Poor, Some(RemovalReason::OutOfPoverty)),
        ];
        let p = periods(&states, &table(Some(date!(2024 - 07 - 01))));
        assert_eq!(p, [Period { from: date!(2024 - 01 - 01), to: Some(date!(2025 - 01 - 01)), stopped: p[0].stopped }]);
        // A removal that takes effect under the later version earns no grace.
        let states = [
            state(date!(2024 - 01 - 01), Some(date!(2024 - 09 - 01)), Category::Poor, None),
            state(date!(2024 - 09 - 01), None, Category::Poor, Some(RemovalReason::OutOfPoverty)),
        ];
        let p = periods(&states, &table(Some(date!(2024 - 07 - 01))));
        assert_eq!(p[0].to, Some(date!(2024 - 09 - 01)));
    }

    #[test]
    fn qualifying_again_within_a_grace_continues_the_period_and_after_it_starts_a_new_one() {
        let states = [
            state(date!(2024 - 01 - 01), Some(date!(2024 - 04 - 01)), Category::Poor, None),
            state(date!(2024 - 04 - 01), Some(date!(2024 - 06 - 01)), Category::Other, None),
            state(date!(2024 - 06 - 01), Some(date!(2025 - 03 - 01)), Category::NearPoor, None),
            state(date!(2025 - 03 - 01), Some(date!(2025 - 05 - 01)), Category::Poor, Some(RemovalReason::Deceased)),
            state(date!(2025 - 06 - 01), None, Category::Poor, None),
        ];
        let p = periods(&states, &table(None));
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!((p[0].from, p[0].to), (date!(2024 - 01 - 01), Some(date!(2025 - 03 - 01))));
        assert_eq!((p[1].from, p[1].to), (date!(2025 - 06 - 01), None));
        assert_eq!(on(&p, date!(2025 - 04 - 01)), None);
        assert_eq!(ended_by(&p, date!(2025 - 04 - 01)), Some(date!(2025 - 03 - 01)));
    }

    #[test]
    fn a_version_that_stops_covering_a_category_starts_its_grace() {
        let mut rules = reference_policy().unwrap().remove(0);
        let v1 = PolicyVersion {
            version: 1,
            valid_from: date!(2022 - 12 - 12),
            valid_to: None,
            rules: rules.clone(),
            recorded_by: None,
            recorded_at: None,
            withdrawal: None,
        };
        rules.categories.retain(|c| *c != Category::NearPoor);
        let v2 = PolicyVersion { version: 2, valid_from: date!(2024 - 07 - 01), rules, ..v1.clone() };
        let table = PolicyTable::new(vec![v1, v2]);
        let p = periods(&[state(date!(2024 - 01 - 01), None, Category::NearPoor, None)], &table);
        assert_eq!((p[0].from, p[0].to), (date!(2024 - 01 - 01), Some(date!(2025 - 01 - 01))));
    }
}
