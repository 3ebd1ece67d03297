//! The household register: batches received and applied, and every state of every household.

use async_trait::async_trait;
use time::{Date, OffsetDateTime};

use super::PortError;
use crate::domain::{
    eligibility::{History, QueryKind},
    household::BatchKind,
    units::AdminUnit,
};

use super::policy::{self, MatchedState};
use crate::domain::household::Category;
use crate::domain::{batch_rules::RecordOutcome, registry::BatchStatus};

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
    /// The category of an upsert, kept beside its stored form.
    pub category: Option<Category>,
    /// Whether an upsert asks for a device, kept beside its stored form.
    pub wants_device: bool,
}

/// A batch's row: its header, status and, once applied, its counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub seq: i64,
    pub batch_id: String,
    pub kind: String,
    pub review_period: String,
    pub effective_date: Date,
    pub note: String,
    pub status: BatchStatus,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HouseholdVersion {
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

impl ApplyCounts {
    /// Counts `n` records of one outcome (those not applied, late or not on the list, count
    /// nowhere).
    pub fn add(&mut self, outcome: RecordOutcome, n: i64) {
        match outcome {
            RecordOutcome::Added => self.added += n,
            RecordOutcome::Changed => self.changed += n,
            RecordOutcome::Removed => self.removed += n,
            RecordOutcome::Unchanged => self.unchanged += n,
            RecordOutcome::Late | RecordOutcome::SameDay | RecordOutcome::NotOnList => {}
        }
    }
}

/// A staged record that lands before its household's latest state or on its day, read back
/// for [`plan_late_record`](crate::domain::batch_rules::plan_late_record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateRecord {
    pub idx: i64,
    pub household_code: String,
    pub effective_date: Date,
    pub removal_reason: Option<String>,
    pub removal_note: Option<String>,
    pub data: Option<String>,
    pub content_hash: Option<String>,
    pub commune_code: Option<String>,
    pub certificate_number: Option<String>,
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

/// The administrative units, version by version.
#[async_trait]
pub trait UnitStore: Send + Sync + std::fmt::Debug {
    /// Every unit, in code order.
    async fn units(&self) -> Result<Vec<AdminUnit>, PortError>;

    /// Loads `units` when the table is empty (the reference data, on first start); returns
    /// whether it did.
    async fn seed_units(&self, units: &[AdminUnit]) -> Result<bool, PortError>;

    /// In one transaction: inserts `new` unit versions, and writes the name, end date and
    /// successor of the `changed` versions (found by code and start date), if the units are
    /// still `read` (those they were checked against); `Conflict(ChangedSince)` when another
    /// change was stored meanwhile. Changes are stored one at a time.
    async fn save_units(&self, read: &[AdminUnit], new: &[AdminUnit], changed: &[AdminUnit]) -> Result<(), PortError>;
}

/// Batches of household records: received, staged, applied whole or not at all.
#[async_trait]
pub trait BatchStore: Send + Sync + std::fmt::Debug {
    async fn batch(&self, batch_id: &str) -> Result<Option<Batch>, PortError>;

    /// Applied batches, newest first, with sequence numbers below `before`.
    async fn list_batches(&self, before: Option<i64>, limit: u32) -> Result<Vec<Batch>, PortError>;

    /// Records a batch as being received, dropping what an interrupted earlier attempt with
    /// the same id left. `AlreadyExists` when the id belongs to an applied batch.
    async fn begin_batch(&self, batch: &NewBatch<'_>) -> Result<(), PortError>;

    /// Stages records of a batch being received by `receiver` (committed, but not yet in the
    /// register); `Conflict(NotTheReceiver)` when the batch is no longer its own.
    async fn stage_records(&self, batch_id: &str, receiver: &str, records: &[StagedRecord]) -> Result<(), PortError>;

    /// Forgets a batch being received and its staged records.
    async fn discard_batch(&self, batch_id: &str) -> Result<(), PortError>;

    /// The ids of the batches being received (by live streams, or left by dead ones).
    async fn receiving_batches(&self) -> Result<Vec<String>, PortError>;

    /// Applies a staged batch to the register in one transaction, or changes nothing and
    /// returns the problems that prevent it. Fails whole (`Conflict`) unless what is
    /// staged is exactly what the stream staged: its receiver and its number of records.
    async fn apply_batch(
        &self,
        batch: &Staged<'_>,
        kind: BatchKind,
        effective: time::Date,
        digest: &str,
        at: OffsetDateTime,
    ) -> Result<Result<ApplyCounts, Vec<ApplyProblem>>, PortError>;
}

/// The household register as read: every state of every household.
#[async_trait]
pub trait RegisterStore: Send + Sync + std::fmt::Debug {
    /// Every state of a household, oldest first.
    async fn household_versions(&self, code: &str) -> Result<Vec<HouseholdVersion>, PortError>;

    /// The state of a household on a date.
    async fn household_on(&self, code: &str, date: time::Date) -> Result<Option<HouseholdVersion>, PortError>;

    /// The states, on a date, of households with a member with this citizen ID.
    async fn find_by_citizen(&self, citizen_id: &str, date: time::Date) -> Result<Vec<HouseholdVersion>, PortError>;

    /// The states, on a date, of households holding this certificate number.
    async fn find_by_certificate(&self, number: &str, date: time::Date) -> Result<Vec<HouseholdVersion>, PortError>;

    /// Every state of every household that any of `values` (of one kind) ever matched, in no
    /// particular order.
    /// `bulk`: for a large call (a batch), which the backend may read its own way.
    async fn states_matching(
        &self,
        kind: QueryKind,
        values: &[String],
        bulk: bool,
    ) -> Result<Vec<MatchedState>, PortError>;

    /// [`Self::states_matching`], grouped: for each value that matched anything, the histories
    /// of its households (see [`policy::histories_from_states`]). A backend holding the
    /// register in memory answers from there.
    async fn histories_matching(
        &self,
        kind: QueryKind,
        values: &[String],
        bulk: bool,
    ) -> Result<Vec<(String, Vec<History>)>, PortError> {
        policy::histories_from_states(self.states_matching(kind, values, bulk).await?)
    }
}

/// The change-log entry that stands for every household: a write that changed more than is
/// worth noting one by one.
pub const WHOLE_REGISTER: &str = "*";

/// More changed households than this, noted at once: a reader holding the register builds it
/// again rather than patch it, and a writer may note [`WHOLE_REGISTER`] instead.
pub const MOST_CHANGES_PATCHED: usize = 50_000;

/// The register's change log, where a backend numbers its changes in the order they were
/// committed (SQLite, whose one writer commits one transaction at a time; PostgreSQL's
/// sequences do not promise that, so it has none): what a read model that holds the register
/// in memory (`read_model::HeldRegister`) follows. Every write to a household's states or
/// enrolments notes the household, or [`WHOLE_REGISTER`], under the next number, in its own
/// transaction, whichever process wrote it.
#[async_trait]
pub trait RegisterChanges: Send + Sync + std::fmt::Debug {
    /// Every history of the register, in household order, given to `each` one at a time, read
    /// in one transaction; returns the number of the last change it reflects. A failure of
    /// `each` ends the scan with that failure.
    async fn scan_register(
        &self,
        each: &mut (dyn FnMut(History) -> Result<(), PortError> + Send),
    ) -> Result<i64, PortError>;

    /// Up to `limit` changes numbered `from` or later, in order: the number and the household
    /// noted ([`WHOLE_REGISTER`] for all). Changes are kept for a while, then pruned: when
    /// `from` itself is no longer kept, the first change returned is a later one. The log
    /// starts with a change noting no household (an empty code), where a register built
    /// empty starts.
    async fn changes_from(&self, from: i64, limit: u32) -> Result<Vec<(i64, String)>, PortError>;

    /// The histories of these households as they are now, read for the change log's sake
    /// (through connections suited to it); a household with no state left is absent.
    async fn households_now(&self, codes: &[String]) -> Result<Vec<History>, PortError>;

    /// Told, with the latest change's number, after a write that noted changes committed in
    /// this process (a batch applied): the read model catches up then rather than at the next
    /// question.
    fn written(&self) -> tokio::sync::watch::Receiver<i64>;
}
