//! The household register: batches received and applied, and every state of every household.

use crate::domain::household::BatchKind;
use time::{Date, OffsetDateTime};

/// One record of a batch as staged: the household's stored form, or a removal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedRecord {
    pub idx: i64,
    pub household_code: String,
    pub effective: Date,
    pub removal_reason: Option<String>,
    pub removal_note: Option<String>,
    /// The stored form (JSON) of the household's data, for upserts.
    pub data: Option<String>,
    pub content_hash: Option<String>,
    pub commune_code: Option<String>,
    pub certificate_number: Option<String>,
    /// The members' citizen IDs of an upsert, separated by spaces.
    pub member_ids: Option<String>,
}

/// A batch's row: its header, status and, once applied, its counts.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct BatchRow {
    pub seq: i64,
    pub batch_id: String,
    pub kind: String,
    pub review_period: String,
    pub effective_date: Date,
    pub note: String,
    pub status: String,
    pub content_digest: Option<String>,
    pub records: i64,
    pub added: i64,
    pub changed: i64,
    pub removed: i64,
    pub unchanged: i64,
    pub pushed_by: String,
    pub received_at: OffsetDateTime,
    pub applied_at: Option<OffsetDateTime>,
}

/// A new batch, as `begin_batch` records it.
#[derive(Debug, Clone)]
pub struct NewBatch<'a> {
    pub batch_id: &'a str,
    pub kind: BatchKind,
    pub review_period: &'a str,
    pub effective: Date,
    pub note: &'a str,
    pub pushed_by: &'a str,
    pub received_at: OffsetDateTime,
    /// The receiving stream's token.
    pub receiver: &'a str,
}

/// A batch staged by one stream: what applying it checks first.
#[derive(Debug, Clone, Copy)]
pub struct Staged<'a> {
    pub batch_id: &'a str,
    /// The stream's token ([`NewBatch::receiver`]).
    pub receiver: &'a str,
    /// The records it staged.
    pub records: i64,
}

/// One state of a household, as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct VersionRow {
    pub id: i64,
    pub household_code: String,
    pub valid_from: Date,
    pub valid_to: Option<Date>,
    pub removal_reason: Option<String>,
    pub removal_note: Option<String>,
    pub data: String,
    pub content_hash: String,
    pub commune_code: String,
    pub certificate_number: Option<String>,
    pub batch_id: String,
    pub recorded_at: OffsetDateTime,
}

/// What applying a batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyCounts {
    pub added: i64,
    pub changed: i64,
    pub removed: i64,
    pub unchanged: i64,
}

/// Why a batch cannot be applied to the register as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyProblem {
    /// A member's citizen ID belongs to another household on the list, not in this batch.
    CitizenElsewhere { idx: i64, household_code: String, member: i64, citizen_id: String, other_household: String },
    /// A removal of a household that is not on the list on that date.
    NotOnList { idx: i64, household_code: String },
    /// A snapshot dated before states the register already holds.
    SnapshotBeforeRecorded { household_code: String, valid_from: Date },
}
