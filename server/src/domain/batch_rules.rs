//! What a batch's records do to the register: the rules storage runs inside the batch's
//! transaction, written here as pure functions.
//!
//! - Each record's **outcome** against the household's open (latest) state is the decision
//!   table [`OUTCOMES`]. Storage runs the same table over the whole batch at once (one SQL
//!   `CASE` rendered from it: a million records are decided in the database, not row by row),
//!   and [`outcome`] evaluates it on one case.
//! - A record that lands before the household's latest state (`LATE`) or on its day
//!   (`SAME_DAY`) splits the history: [`plan_late_record`] says how.
//!
//! A review snapshot is the complete list as of its date: a household it did not list is off
//! the list from that date, whatever arrives later about earlier dates. A late record that
//! puts a household on the list before a snapshot which did not list it therefore holds only
//! up to the snapshot's date, and the household is off the list (`NOT_IN_REVIEW`) from then
//! until its next state, if any.

use time::{Date, OffsetDateTime};

use super::{
    decision::{Rule, Table},
    household::{HouseholdData, RemovalReason, name_enum},
    ports::register::{ApplyProblem, HouseholdVersion, LateRecord},
};

name_enum! {
    /// What one record of a batch does to its household.
    RecordOutcome {
        /// A household the register did not have.
        Added = "ADDED",
        /// New details for a household on the list.
        Changed = "CHANGED",
        /// The household leaves the list.
        Removed = "REMOVED",
        /// The same details the household has.
        Unchanged = "UNCHANGED",
        /// Dated before the household's latest state, or putting a household off the list
        /// back on it before the newest snapshot: decided by [`plan_late_record`].
        Late = "LATE",
        /// Dated the day of the household's latest state: decided by [`plan_late_record`].
        SameDay = "SAME_DAY",
        /// A removal of a household that is not on the list (a problem: nothing is applied).
        NotOnList = "NOT_ON_LIST",
    }
}

/// The facts about a record and its household's open state that decide the record's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordFact {
    /// The record removes the household from the list.
    Removes,
    /// The register has a state of the household.
    Known,
    /// The household's open state has it on the list.
    OnList,
    /// The open state begins after the record's date.
    OpenLater,
    /// The open state begins on the record's date.
    OpenSameDay,
    /// The record's details are the open state's (the same content hash).
    SameContent,
    /// The record's date is before the newest applied review snapshot.
    BeforeNewestSnapshot,
}

use RecordFact::*;

/// Each record's outcome, first rule that holds.
pub const OUTCOMES: Table<RecordFact, RecordOutcome> = Table {
    rules: &[
        Rule { when: &[(OpenLater, true)], then: RecordOutcome::Late },
        Rule { when: &[(Removes, false), (OnList, false), (BeforeNewestSnapshot, true)], then: RecordOutcome::Late },
        Rule { when: &[(Removes, false), (OnList, true), (SameContent, true)], then: RecordOutcome::Unchanged },
        Rule { when: &[(OpenSameDay, true)], then: RecordOutcome::SameDay },
        Rule { when: &[(Removes, true), (OnList, false)], then: RecordOutcome::NotOnList },
        Rule { when: &[(Removes, true)], then: RecordOutcome::Removed },
        Rule { when: &[(Known, false)], then: RecordOutcome::Added },
    ],
    otherwise: RecordOutcome::Changed,
};

/// A record of a batch, as its outcome needs it.
#[derive(Debug, Clone, Copy)]
pub struct RecordCase<'a> {
    pub effective: Date,
    pub removes: bool,
    /// The hash of the record's details (none for a removal).
    pub content_hash: Option<&'a str>,
}

/// A household's open (latest) state, as a record's outcome needs it.
#[derive(Debug, Clone, Copy)]
pub struct OpenState<'a> {
    pub valid_from: Date,
    pub removed: bool,
    pub content_hash: &'a str,
}

/// A record's outcome against the household's open state (`None`: a household the register
/// does not have), with the date of the newest applied snapshot.
pub fn outcome(record: RecordCase<'_>, open: Option<OpenState<'_>>, newest_snapshot: Option<Date>) -> RecordOutcome {
    OUTCOMES.decide(|fact| match fact {
        Removes => record.removes,
        Known => open.is_some(),
        OnList => open.is_some_and(|o| !o.removed),
        OpenLater => open.is_some_and(|o| o.valid_from > record.effective),
        OpenSameDay => open.is_some_and(|o| o.valid_from == record.effective),
        SameContent => open.is_some_and(|o| record.content_hash == Some(o.content_hash)),
        BeforeNewestSnapshot => newest_snapshot.is_some_and(|s| record.effective < s),
    })
}

/// What a late or same-day record does, and the writes it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LatePlan {
    Unchanged,
    Problem(ApplyProblem),
    Write {
        outcome: RecordOutcome,
        /// A state recorded for the same day, replaced by this one (kept as superseded).
        supersede: Option<Date>,
        /// The state before, which now ends on the record's date.
        close: Option<Date>,
        /// The new state, with the day it ends (where the next begins, or a snapshot cuts it).
        version: HouseholdVersion,
        /// Members to index for the household (those it may not have listed before).
        citizens: Vec<String>,
        /// The household off the list from `valid_to` (a snapshot that did not list it) until
        /// this removal's own `valid_to`.
        then_off_list: Option<Box<HouseholdVersion>>,
    },
}

/// Decides what a late or same-day record does to a household's history (`versions`, in
/// date order), given the dates of the applied snapshots (`snapshots`, in order).
pub fn plan_late_record(
    record: &LateRecord,
    versions: &[HouseholdVersion],
    snapshots: &[Date],
    batch_id: &str,
    at: OffsetDateTime,
) -> LatePlan {
    let d = record.effective_date;
    let prev = versions.iter().rev().find(|v| v.valid_from <= d);
    let next_from = versions.iter().find(|v| v.valid_from > d).map(|v| v.valid_from);
    let (outcome, version, citizens) = match &record.removal_reason {
        None => {
            if prev.is_some_and(|p| p.removal_reason.is_none() && Some(&p.content_hash) == record.content_hash.as_ref())
            {
                return LatePlan::Unchanged;
            }
            let version = HouseholdVersion {
                id: 0,
                household_code: record.household_code.clone(),
                valid_from: d,
                valid_to: None,
                removal_reason: None,
                removal_note: None,
                data: record.data.clone().unwrap_or_default(),
                content_hash: record.content_hash.clone().unwrap_or_default(),
                commune_code: record.commune_code.clone().unwrap_or_default(),
                certificate_number: record.certificate_number.clone(),
                batch_id: batch_id.to_owned(),
                recorded_at: at,
            };
            let outcome = if versions.is_empty() { RecordOutcome::Added } else { RecordOutcome::Changed };
            let citizens = citizens_of(&version.data);
            (outcome, version, citizens)
        }
        Some(reason) => {
            let Some(p) = prev.filter(|p| p.removal_reason.is_none()) else {
                return LatePlan::Problem(ApplyProblem::NotOnList {
                    idx: record.idx,
                    household_code: record.household_code.clone(),
                });
            };
            // The same members as the state it ends: indexed for this household already.
            let version = HouseholdVersion {
                id: 0,
                household_code: record.household_code.clone(),
                valid_from: d,
                valid_to: None,
                removal_reason: Some(reason.clone()),
                removal_note: record.removal_note.clone(),
                data: p.data.clone(),
                content_hash: p.content_hash.clone(),
                commune_code: p.commune_code.clone(),
                certificate_number: p.certificate_number.clone(),
                batch_id: batch_id.to_owned(),
                recorded_at: at,
            };
            (RecordOutcome::Removed, version, Vec::new())
        }
    };
    let (supersede, close, valid_to) = match prev {
        Some(p) if p.valid_from == d => (Some(d), None, p.valid_to),
        Some(p) => (None, Some(p.valid_from), p.valid_to),
        None => (None, None, next_from),
    };
    // Off the list before this record (no state yet, or removed), the household was not on a
    // snapshot taken in the span the record would now cover: the record holds until the first
    // such snapshot, and the household is off the list from its date.
    let was_off = prev.is_none_or(|p| p.removal_reason.is_some());
    let cut = snapshots.iter().copied().find(|s| *s > d && valid_to.is_none_or(|end| *s < end));
    if let (true, None, Some(cut)) = (was_off, &version.removal_reason, cut) {
        let off = HouseholdVersion {
            valid_from: cut,
            valid_to,
            removal_reason: Some(RemovalReason::NotInReview.as_str().to_owned()),
            removal_note: Some(String::new()),
            ..version.clone()
        };
        let version = HouseholdVersion { valid_to: Some(cut), ..version };
        return LatePlan::Write { outcome, supersede, close, version, citizens, then_off_list: Some(Box::new(off)) };
    }
    let version = HouseholdVersion { valid_to, ..version };
    LatePlan::Write { outcome, supersede, close, version, citizens, then_off_list: None }
}

/// The members' citizen IDs in a stored state.
pub fn citizens_of(json: &str) -> Vec<String> {
    HouseholdData::from_stored(json)
        .map(|data| data.members.into_iter().map(|m| m.citizen_id).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    const AT: OffsetDateTime = datetime!(2026-03-01 08:00 UTC);

    fn record(effective: Date, content_hash: Option<&str>) -> RecordCase<'_> {
        RecordCase { effective, removes: content_hash.is_none(), content_hash }
    }

    fn open(valid_from: Date, removed: bool, content_hash: &str) -> Option<OpenState<'_>> {
        Some(OpenState { valid_from, removed, content_hash })
    }

    #[test]
    fn a_record_after_the_open_state_adds_changes_removes_or_changes_nothing() {
        let d = date!(2026 - 03 - 01);
        let before = date!(2026 - 01 - 01);
        assert_eq!(outcome(record(d, Some("h1")), None, None), RecordOutcome::Added);
        assert_eq!(outcome(record(d, Some("h2")), open(before, false, "h1"), None), RecordOutcome::Changed);
        assert_eq!(outcome(record(d, Some("h1")), open(before, false, "h1"), None), RecordOutcome::Unchanged);
        assert_eq!(outcome(record(d, None), open(before, false, "h1"), None), RecordOutcome::Removed);
        // Back on the list after a removal: new details, not "unchanged" even with the same hash.
        assert_eq!(outcome(record(d, Some("h1")), open(before, true, "h1"), None), RecordOutcome::Changed);
    }

    #[test]
    fn removing_a_household_that_is_not_on_the_list_is_a_problem() {
        let d = date!(2026 - 03 - 01);
        assert_eq!(outcome(record(d, None), None, None), RecordOutcome::NotOnList);
        assert_eq!(outcome(record(d, None), open(date!(2026 - 01 - 01), true, "h1"), None), RecordOutcome::NotOnList);
    }

    #[test]
    fn records_before_or_on_the_day_of_the_open_state_take_the_late_path() {
        let d = date!(2026 - 03 - 01);
        let after = date!(2026 - 04 - 01);
        assert_eq!(outcome(record(d, Some("h2")), open(after, false, "h1"), None), RecordOutcome::Late);
        // Even a removal, and even the same details: the history must be split there.
        assert_eq!(outcome(record(d, None), open(after, false, "h1"), None), RecordOutcome::Late);
        assert_eq!(outcome(record(d, Some("h1")), open(after, false, "h1"), None), RecordOutcome::Late);
        assert_eq!(outcome(record(d, Some("h2")), open(d, false, "h1"), None), RecordOutcome::SameDay);
        assert_eq!(outcome(record(d, None), open(d, false, "h1"), None), RecordOutcome::SameDay);
        // The same details on the same day change nothing.
        assert_eq!(outcome(record(d, Some("h1")), open(d, false, "h1"), None), RecordOutcome::Unchanged);
    }

    #[test]
    fn putting_a_household_off_the_list_back_before_the_newest_snapshot_is_late() {
        let d = date!(2026 - 03 - 01);
        let snapshot = Some(date!(2026 - 06 - 30));
        assert_eq!(outcome(record(d, Some("h1")), None, snapshot), RecordOutcome::Late);
        assert_eq!(
            outcome(record(d, Some("h1")), open(date!(2026 - 01 - 01), true, "h0"), snapshot),
            RecordOutcome::Late
        );
        // On the list already, or after the snapshot: the set-based path.
        assert_eq!(
            outcome(record(d, Some("h2")), open(date!(2026 - 01 - 01), false, "h1"), snapshot),
            RecordOutcome::Changed
        );
        assert_eq!(outcome(record(date!(2026 - 07 - 01), Some("h1")), None, snapshot), RecordOutcome::Added);
    }

    fn state(from: Date, to: Option<Date>, removal: Option<&str>, hash: &str) -> HouseholdVersion {
        HouseholdVersion {
            id: 1,
            household_code: "H1".into(),
            valid_from: from,
            valid_to: to,
            removal_reason: removal.map(str::to_owned),
            removal_note: removal.map(|_| String::new()),
            data: r#"{"members":[]}"#.into(),
            content_hash: hash.into(),
            commune_code: "24611".into(),
            certificate_number: None,
            batch_id: "B0".into(),
            recorded_at: AT,
        }
    }

    fn late(effective: Date, removal: Option<&str>, hash: &str) -> LateRecord {
        LateRecord {
            idx: 3,
            household_code: "H1".into(),
            effective_date: effective,
            removal_reason: removal.map(str::to_owned),
            removal_note: removal.map(|_| "ghi chú".to_owned()),
            data: removal.is_none().then(|| r#"{"members":[]}"#.to_owned()),
            content_hash: removal.is_none().then(|| hash.to_owned()),
            commune_code: removal.is_none().then(|| "24611".to_owned()),
            certificate_number: None,
        }
    }

    #[test]
    fn a_late_change_ends_where_the_next_state_begins_and_closes_the_one_before() {
        let history = [
            state(date!(2026 - 01 - 01), Some(date!(2026 - 05 - 01)), None, "h1"),
            state(date!(2026 - 05 - 01), None, None, "h3"),
        ];
        let LatePlan::Write { outcome, supersede, close, version, then_off_list, .. } =
            plan_late_record(&late(date!(2026 - 03 - 01), None, "h2"), &history, &[], "B1", AT)
        else {
            panic!("a write")
        };
        assert_eq!(outcome, RecordOutcome::Changed);
        assert_eq!(
            (supersede, close, version.valid_to),
            (None, Some(date!(2026 - 01 - 01)), Some(date!(2026 - 05 - 01)))
        );
        assert_eq!(
            (version.valid_from, version.content_hash.as_str(), version.batch_id.as_str()),
            (date!(2026 - 03 - 01), "h2", "B1")
        );
        assert_eq!(then_off_list, None);
    }

    #[test]
    fn a_same_day_record_supersedes_and_the_same_details_change_nothing() {
        let history = [state(date!(2026 - 03 - 01), None, None, "h1")];
        let plan = plan_late_record(&late(date!(2026 - 03 - 01), None, "h2"), &history, &[], "B1", AT);
        let LatePlan::Write { supersede, close, version, .. } = plan else { panic!("a write") };
        assert_eq!((supersede, close, version.valid_to), (Some(date!(2026 - 03 - 01)), None, None));
        assert_eq!(
            plan_late_record(&late(date!(2026 - 03 - 01), None, "h1"), &history, &[], "B1", AT),
            LatePlan::Unchanged
        );
    }

    #[test]
    fn a_late_removal_keeps_the_data_it_ends_and_needs_the_household_on_the_list() {
        let history = [
            state(date!(2026 - 01 - 01), Some(date!(2026 - 05 - 01)), None, "h1"),
            state(date!(2026 - 05 - 01), None, None, "h3"),
        ];
        let LatePlan::Write { outcome, version, citizens, .. } =
            plan_late_record(&late(date!(2026 - 03 - 01), Some("DECEASED"), ""), &history, &[], "B1", AT)
        else {
            panic!("a write")
        };
        assert_eq!(outcome, RecordOutcome::Removed);
        assert_eq!((version.content_hash.as_str(), version.removal_note.as_deref()), ("h1", Some("ghi chú")));
        assert!(citizens.is_empty(), "the members of the state it ends are indexed already");
        let off = [state(date!(2026 - 01 - 01), None, Some("DECEASED"), "h1")];
        assert_eq!(
            plan_late_record(&late(date!(2026 - 03 - 01), Some("DECEASED"), ""), &off, &[], "B1", AT),
            LatePlan::Problem(ApplyProblem::NotOnList { idx: 3, household_code: "H1".into() })
        );
    }

    #[test]
    fn a_household_put_back_before_a_snapshot_that_left_it_out_is_off_the_list_from_the_snapshot() {
        let history = [state(date!(2026 - 01 - 01), None, Some("MOVED_AWAY"), "h1")];
        let snapshots = [date!(2025 - 12 - 31), date!(2026 - 06 - 30)];
        let LatePlan::Write { version, then_off_list, .. } =
            plan_late_record(&late(date!(2026 - 03 - 01), None, "h2"), &history, &snapshots, "B1", AT)
        else {
            panic!("a write")
        };
        assert_eq!(version.valid_to, Some(date!(2026 - 06 - 30)), "holds up to the snapshot");
        let off = then_off_list.expect("off the list from the snapshot");
        assert_eq!(
            (off.valid_from, off.valid_to, off.removal_reason.as_deref()),
            (date!(2026 - 06 - 30), None, Some("NOT_IN_REVIEW"))
        );
    }
}
