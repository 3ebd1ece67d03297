//! Operators' monthly lists for a generated register (`telesub gen month`), with a chosen share
//! of each kind of discrepancy planted, and the figures the hub must find in them, so that
//! tests and the benchmark know the right answer.
//!
//! The register is [`HouseholdGenerator::reference`] with the same seed, put on the list before
//! the month (the benchmark loads it effective 1 January 2025). Household `i` belongs to
//! operator `operators[i % operators.len()]`; every household of a category the reference
//! policy covers holds one enrolment with it ([`MonthGenerator::enrollments`]): number
//! `09` and `i` in 8 digits, the head as subscriber, mobile, from the first day of the register.
//!
//! Each covered household gets one kind of line, drawn from the seed and `i` with the chosen
//! shares (per thousand households); the rest are OK:
//! - OK: a continuing claim of 60,000 VND for the whole month, with traffic, matched to the
//!   enrolment by its number;
//! - `OVER_CAP`: the same claim for 65,000 VND;
//! - `NOT_ENROLLED`: the claim from another number (`08` and `i`), which no enrolment holds
//!   (the household's enrolment is then not reported either);
//! - `UNKNOWN_SUBSCRIBER`: the claim names the previous household's head as subscriber (who is
//!   not a member; the enrolment's subscriber differs too: `ENROLMENT_MISMATCH`);
//! - `DUPLICATE_WITHIN_OPERATOR`: the OK claim and a second one from another number;
//! - `DUPLICATE_ACROSS_OPERATORS`: the OK claim, and a claim from another number in the next
//!   operator's list (both flagged once both lists are reconciled; with one operator, OK);
//! - unclaimed: a line with the reason `NO_USAGE_YET` that claims nothing.
//!
//! Households of a category the policy does not cover (`OTHER`, about 3 %) hold no enrolment
//! and are claimed anyway: `NOT_ELIGIBLE` and `NOT_ENROLLED`.

use std::collections::BTreeMap;

use telesub_proto::v1::{self as proto, household_record};
use time::Date;

use telesub_server::domain::ports::monthly::period_bounds;

use crate::generator::HouseholdGenerator;

/// What a generated month plants, per thousand covered households.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shares {
    pub over_cap: u32,
    pub not_enrolled: u32,
    pub unknown_subscriber: u32,
    pub duplicate_within: u32,
    pub duplicate_across: u32,
    pub unclaimed: u32,
}

impl Default for Shares {
    fn default() -> Self {
        Self {
            over_cap: 10,
            not_enrolled: 10,
            unknown_subscriber: 10,
            duplicate_within: 10,
            duplicate_across: 10,
            unclaimed: 20,
        }
    }
}

impl Shares {
    fn total(&self) -> u32 {
        self.over_cap
            + self.not_enrolled
            + self.unknown_subscriber
            + self.duplicate_within
            + self.duplicate_across
            + self.unclaimed
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ok,
    OverCap,
    NotEnrolled,
    UnknownSubscriber,
    DuplicateWithin,
    DuplicateAcross,
    Unclaimed,
    NotCovered,
}

/// An enrolment the register holds before the month.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedEnrollment {
    pub operator: String,
    pub household_code: String,
    pub subscriber_citizen_id: String,
    pub phone_number: String,
    pub start_date: Date,
}

/// The figures the hub must find in one operator's list once every operator's list of the
/// month is reconciled; discrepancy codes by their names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    pub lines: i64,
    pub claims: i64,
    pub unclaimed: i64,
    pub lines_ok: i64,
    pub amount_claimed: i64,
    pub amount_confirmable: i64,
    pub by_code: BTreeMap<&'static str, i64>,
    pub enrollments_not_reported: i64,
}

/// Generates a month's lists; see the module documentation.
#[derive(Debug, Clone)]
pub struct MonthGenerator {
    seed: u64,
    households: usize,
    operators: Vec<String>,
    period: String,
    days: i64,
    start: Date,
    shares: Shares,
}

/// One household of the register as the month needs it.
struct Household {
    index: usize,
    code: String,
    head: String,
    covered: bool,
}

const CLAIM: i64 = 60_000;
const OVER: i64 = 65_000;
const TARIFF: i64 = 70_000;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl MonthGenerator {
    /// Lists of `period` (`YYYY-MM`) for a register of `households` generated with `seed`, whose
    /// enrolments start on `start` (the register's first day, before the period).
    pub fn new(
        seed: u64,
        households: usize,
        operators: Vec<String>,
        period: &str,
        start: Date,
        shares: Shares,
    ) -> Result<Self, String> {
        let (first, next) = period_bounds(period).ok_or_else(|| format!("{period:?} is not a period: use YYYY-MM"))?;
        if operators.is_empty() {
            return Err("name at least one operator".to_owned());
        }
        if shares.total() > 1_000 {
            return Err(format!("the shares add up to {} per thousand; at most 1,000", shares.total()));
        }
        if start >= first {
            return Err(format!("the enrolments start on {start}, not before {period}"));
        }
        Ok(Self {
            seed,
            households,
            operators,
            period: period.to_owned(),
            days: (next - first).whole_days(),
            start,
            shares,
        })
    }

    pub fn period(&self) -> &str {
        &self.period
    }

    pub fn operators(&self) -> &[String] {
        &self.operators
    }

    fn register(&self) -> impl Iterator<Item = Household> + '_ {
        HouseholdGenerator::reference(self.seed).take(self.households).enumerate().filter_map(|(index, r)| {
            let Some(household_record::Change::Upsert(d)) = r.change else { return None };
            Some(Household {
                index,
                code: r.household_code,
                head: d.members.first().map(|m| m.citizen_id.clone()).unwrap_or_default(),
                covered: d.category() != proto::Category::Other,
            })
        })
    }

    fn operator_of(&self, index: usize) -> &str {
        &self.operators[index % self.operators.len()]
    }

    fn kind(&self, h: &Household) -> Kind {
        if !h.covered {
            return Kind::NotCovered;
        }
        let draw = (mix(self.seed ^ 0x6d6f_6e74_6800_0000 ^ h.index as u64) % 1_000) as u32;
        let s = &self.shares;
        let mut bound = 0;
        for (share, kind) in [
            (s.over_cap, Kind::OverCap),
            (s.not_enrolled, Kind::NotEnrolled),
            (s.unknown_subscriber, Kind::UnknownSubscriber),
            (s.duplicate_within, Kind::DuplicateWithin),
            (s.duplicate_across, Kind::DuplicateAcross),
            (s.unclaimed, Kind::Unclaimed),
        ] {
            bound += share;
            if draw < bound {
                return match kind {
                    // Needs a previous household, or a second operator.
                    Kind::UnknownSubscriber if h.index == 0 => Kind::Ok,
                    Kind::DuplicateAcross if self.operators.len() < 2 => Kind::Ok,
                    k => k,
                };
            }
        }
        Kind::Ok
    }

    fn phone(index: usize) -> String {
        format!("09{index:08}")
    }

    fn other_phone(index: usize) -> String {
        format!("08{index:08}")
    }

    /// The enrolments the register holds before the month, in household order.
    pub fn enrollments(&self) -> impl Iterator<Item = PlannedEnrollment> + '_ {
        self.register().filter(|h| h.covered).map(|h| PlannedEnrollment {
            operator: self.operator_of(h.index).to_owned(),
            phone_number: Self::phone(h.index),
            household_code: h.code,
            subscriber_citizen_id: h.head,
            start_date: self.start,
        })
    }

    fn claim(&self, h: &Household, phone: String, amount: i64) -> proto::MonthlyLine {
        proto::MonthlyLine {
            phone_number: phone,
            subscriber_citizen_id: h.head.clone(),
            household_code: h.code.clone(),
            enrollment_id: String::new(),
            change: proto::SupportChange::Continuing.into(),
            service: proto::SupportedService::Mobile.into(),
            package_code: "ASXH60".to_owned(),
            tariff: TARIFF,
            amount_claimed: amount,
            days_of_service: self.days as i32,
            used: true,
            unclaimed_reason: 0,
        }
    }

    /// One operator's list, in household order, each line with the codes the hub must give
    /// it once every operator's list is reconciled.
    pub fn planned_lines<'a>(
        &'a self,
        operator: &'a str,
    ) -> impl Iterator<Item = (proto::MonthlyLine, Vec<&'static str>)> + 'a {
        let mut previous_head: Option<String> = None;
        self.register().flat_map(move |h| {
            let mut out = Vec::new();
            let kind = self.kind(&h);
            let own = self.operator_of(h.index) == operator;
            if own {
                match kind {
                    Kind::Ok => out.push((self.claim(&h, Self::phone(h.index), CLAIM), vec![])),
                    Kind::OverCap => out.push((self.claim(&h, Self::phone(h.index), OVER), vec!["OVER_CAP"])),
                    Kind::NotEnrolled => {
                        out.push((self.claim(&h, Self::other_phone(h.index), CLAIM), vec!["NOT_ENROLLED"]));
                    }
                    Kind::UnknownSubscriber => {
                        let mut line = self.claim(&h, Self::phone(h.index), CLAIM);
                        line.subscriber_citizen_id = previous_head.clone().unwrap_or_default();
                        out.push((line, vec!["UNKNOWN_SUBSCRIBER", "ENROLMENT_MISMATCH"]));
                    }
                    Kind::DuplicateWithin => {
                        out.push((self.claim(&h, Self::phone(h.index), CLAIM), vec![]));
                        out.push((
                            self.claim(&h, Self::other_phone(h.index), CLAIM),
                            vec!["NOT_ENROLLED", "DUPLICATE_WITHIN_OPERATOR"],
                        ));
                    }
                    Kind::DuplicateAcross => {
                        out.push((self.claim(&h, Self::phone(h.index), CLAIM), vec!["DUPLICATE_ACROSS_OPERATORS"]));
                    }
                    Kind::Unclaimed => {
                        let mut line = self.claim(&h, Self::phone(h.index), 0);
                        line.change = 0;
                        line.days_of_service = 0;
                        line.unclaimed_reason = proto::UnclaimedReason::NoUsageYet.into();
                        out.push((line, vec![]));
                    }
                    Kind::NotCovered => {
                        out.push((self.claim(&h, Self::phone(h.index), CLAIM), vec!["NOT_ELIGIBLE", "NOT_ENROLLED"]));
                    }
                }
            } else if kind == Kind::DuplicateAcross && self.operator_of(h.index + 1) == operator {
                out.push((
                    self.claim(&h, Self::other_phone(h.index), CLAIM),
                    vec!["NOT_ENROLLED", "DUPLICATE_ACROSS_OPERATORS"],
                ));
            }
            previous_head = Some(h.head);
            out
        })
    }

    /// One operator's list, in household order.
    pub fn lines<'a>(&'a self, operator: &'a str) -> impl Iterator<Item = proto::MonthlyLine> + 'a {
        self.planned_lines(operator).map(|(line, _)| line)
    }

    /// The figures the hub must find in one operator's list.
    pub fn expected(&self, operator: &str) -> Expected {
        let mut e = Expected::default();
        for (line, codes) in self.planned_lines(operator) {
            e.lines += 1;
            if line.unclaimed_reason != 0 {
                e.unclaimed += 1;
            } else {
                e.claims += 1;
                e.amount_claimed += line.amount_claimed;
            }
            if codes.is_empty() {
                e.lines_ok += 1;
                e.amount_confirmable += line.amount_claimed;
            }
            for code in codes {
                *e.by_code.entry(code).or_default() += 1;
            }
        }
        e.enrollments_not_reported = self
            .register()
            .filter(|h| h.covered && self.operator_of(h.index) == operator && self.kind(h) == Kind::NotEnrolled)
            .count() as i64;
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u8, d: u8) -> Date {
        Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d).unwrap()
    }

    #[test]
    fn the_planted_shares_come_out_near_what_was_asked_and_the_same_every_time() {
        let ops = vec!["VNPT".to_owned(), "VIETTEL".to_owned()];
        let g = MonthGenerator::new(7, 4_000, ops, "2025-03", date(2025, 1, 1), Shares::default()).unwrap();
        let vnpt = g.expected("VNPT");
        let viettel = g.expected("VIETTEL");
        assert_eq!(vnpt, g.expected("VNPT"), "deterministic");
        // About 2,000 households each; 10 per thousand of each kind.
        for code in ["OVER_CAP", "UNKNOWN_SUBSCRIBER", "DUPLICATE_WITHIN_OPERATOR"] {
            let n = vnpt.by_code.get(code).copied().unwrap_or(0);
            assert!((5..=60).contains(&n), "{code}: {n} in {vnpt:?}");
        }
        assert!(vnpt.lines > 1_900 && viettel.lines > 1_900, "{vnpt:?} {viettel:?}");
        // Each cross-operator duplicate is counted in both lists.
        let across = |e: &Expected| e.by_code.get("DUPLICATE_ACROSS_OPERATORS").copied().unwrap_or(0);
        let planted = g.register().filter(|h| g.kind(h) == Kind::DuplicateAcross).count() as i64;
        assert_eq!(across(&vnpt) + across(&viettel), 2 * planted);
        // The enrolments: one per covered household, numbers unique.
        let enrolments: Vec<_> = g.enrollments().collect();
        let mut phones: Vec<_> = enrolments.iter().map(|e| e.phone_number.as_str()).collect();
        phones.sort_unstable();
        phones.dedup();
        assert_eq!(phones.len(), enrolments.len());
        assert!(MonthGenerator::new(7, 10, vec![], "2025-03", date(2025, 1, 1), Shares::default()).is_err());
        assert!(MonthGenerator::new(7, 10, vec!["X".into()], "2025-01", date(2025, 1, 1), Shares::default()).is_err());
    }
}
