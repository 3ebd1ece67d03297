//! How a stored row becomes a port's record. The records are the domain's own types and know
//! nothing of sqlx; this is the one place that says which column fills which field (by the
//! field's name) and which columns are read as text and parsed into a domain enum. A value
//! that does not parse is a decode error, which the ports report as
//! [`PortError::Corrupt`](crate::domain::ports::PortError::Corrupt).

use sqlx::{ColumnIndex, Decode, Row, Type};

use crate::domain::ports::{
    audit::{DecisionCall, NotedSubject, StoredCheckpoint},
    devices::{AllocationDecision, Amendment, CandidateState, Handover, ListPlace, UnitProgress},
    enrollments::{Enrollment, FeedEntry},
    inspections::{Finding, FindingUpdate, SampledHousehold, StoredInspection},
    monthly::{ListLine, MonthlyList},
    policy::{DecisionRun, MatchedState, StoredDecision, StoredPolicy},
    register::{Batch, HouseholdVersion, LateRecord},
    retention::PurgedHousehold,
    statistics::{DeviceCount, EnrolledCount, HouseholdCount, LineCount},
};

/// Reads column `column` as `V` and converts it into the field's type `T`.
fn parsed<'r, R, V, T>(row: &'r R, column: &'static str) -> sqlx::Result<T>
where
    R: Row,
    V: Decode<'r, R::Database> + Type<R::Database>,
    T: TryFrom<V>,
    T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    &'static str: ColumnIndex<R>,
{
    let value: V = row.try_get(column)?;
    T::try_from(value).map_err(|err| sqlx::Error::ColumnDecode { index: column.to_owned(), source: err.into() })
}

/// `Record { field, field: Via, … }`: `FromRow` for both backends' rows, each field from the
/// column of its name; a field with `: Via` is read as `Via` and converted with `TryFrom`.
macro_rules! from_rows {
    ($($record:ident { $($field:ident $(: $via:ty)?),* $(,)? })*) => {$(
        impl<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow> for $record {
            fn from_row(row: &'r sqlx::sqlite::SqliteRow) -> sqlx::Result<Self> {
                Ok(Self { $($field: from_rows!(@field row, $field $(, $via)?)),* })
            }
        }
        impl<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> for $record {
            fn from_row(row: &'r sqlx::postgres::PgRow) -> sqlx::Result<Self> {
                Ok(Self { $($field: from_rows!(@field row, $field $(, $via)?)),* })
            }
        }
    )*};
    (@field $row:ident, $field:ident) => { $row.try_get(stringify!($field))? };
    (@field $row:ident, $field:ident, $via:ty) => { parsed::<_, $via, _>($row, stringify!($field))? };
}

from_rows! {
    DecisionCall { request_id, asked_by, decided_at }
    StoredCheckpoint { tree_size, root_hash, signed_at, key_id, note }
    NotedSubject { seq, kind, value }
    AllocationDecision { id, decision_number, decision_date, tablets, smartphones, quotas, cash_amount, note, status: String, revision, recorded_by, recorded_at, proposal_as_of, policy_version, proposed_at, eligible, recipients, proposal_digest, list_digest, submitted_by, submitted_at, approval_number, decided_by, decided_by_person, decided_at, decision_note, approved_on }
    CandidateState { household_code, commune_code, data }
    ListPlace { household_code, rank, unit_code, commune_code, district_code, category, priority_group, nominated, device_type, head_name_masked, added }
    Handover { household_code, allocation_id, kind, device_type, serial_number, imei, cash_amount, phone_bought_on, receipt_reference, handed_over_on, received_by, recorded_by, recorded_by_person, recorded_at, request_id }
    UnitProgress { unit_code, on_list, devices, cash }
    Amendment { id, revision, action, household_code, device_type, reason, amended_by, amended_at }
    Enrollment { id, operator, household_code, subscriber_citizen_id, phone_number, service, start_date, end_date, end_reason, end_note, decision_id, transfer_reference, recorded_at, ended_at }
    FeedEntry { seq, operator, enrollment_id, household_code, kind: String, effective_date, category, previous_category, removal_reason, batch_id, recorded_at }
    StoredInspection { id, title, basis, requested_by, subject_units, subject_operators, team, starts_on, ends_on, note, status: String, created_by, created_at, conclusion, closed_by, closed_at }
    Finding { inspection_id, number, severity: String, subject, description, evidence_reference, required_action, due_on, status: String, recorded_by, recorded_at }
    FindingUpdate { number, seq, status: String, note, updated_by, updated_at }
    SampledHousehold { inspection_id, number, commune_code, as_of, size, population, seed, body, pulled_by, pulled_at, purged_at }
    MonthlyList { id, operator, update_id, period, replaces_earlier, note, status: String, content_digest, revision, stale, figures, received_at, reconciled_at, superseded_by, decided_by, decided_by_person, decided_at, decision_note, confirmed_scope, confirmed_lines, confirmed_amount, confirmed_digest, exceptions, exceptions_at, request_id }
    ListLine { line_no, household_code, phone_number, commune_code, line, codes, detail, amount_claimed, amount_confirmable, idle_months, later_detail }
    StoredPolicy { version, valid_from, rules, recorded_by, recorded_at, withdrawn_by, withdrawn_at, withdrawal_reason }
    StoredDecision { call_id, idx, request_id, asked_by, decided_at, query_kind, query_value, as_of, household_code, eligible, policy_version, body, purged_by, purged_at }
    DecisionRun { call_id, first_idx, last_idx, request_id, asked_by, decided_at, decisions, body, purged_by, purged_at, body_digest }
    MatchedState { matched, household_code, valid_from, valid_to, removal_reason, data, holdings }
    Batch { seq, batch_id, kind, review_period, effective_date, note, status: String, content_digest, records, added, changed, removed, unchanged, pushed_by, received_at, applied_at }
    HouseholdVersion { id, household_code, valid_from, valid_to, removal_reason, removal_note, data, content_hash, commune_code, certificate_number, batch_id, recorded_at }
    HouseholdCount { category, now, before }
    PurgedHousehold { household_code, removed_on, removal_reason, purged_by, purged_at }
    EnrolledCount { operator, category, now, before }
    LineCount { operator, period, status: String, confirmed_scope, claims, amount, ok_claims, ok_amount, not_eligible, eligibility_ended, before_start, over_cap, not_enrolled, enrolment_mismatch, duplicate_within_operator, duplicate_across_operators, non_usage, unknown_subscriber }
    DeviceCount { category, allocated, handed_over }
    LateRecord { idx, household_code, effective_date, removal_reason, removal_note, data, content_hash, commune_code, certificate_number }
}
