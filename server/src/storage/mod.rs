//! Storage: one interface, [`Store`], with an SQLite implementation (the embedded default) and
//! a PostgreSQL one (production and scale-out). Both run the same conformance tests.
//!
//! SQL that reads the same in both dialects is written once (`shared.rs`); migrations, bulk
//! writes and locking differ and live in each backend's module.

pub mod audit_reader;
pub mod audit_trail;
pub mod devices;
pub mod eligibility;
pub mod enrollments;
mod held_register;
pub mod inspections;
mod postgres;
pub mod reconciliation;
pub mod register_index;
pub mod registry;
mod shared;
mod sqlite;
pub mod statistics;

use std::{fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::{
    audit::{AuditEntry, AuditRecord, Subject},
    domain::{
        eligibility::{History, QueryKind},
        household::BatchKind,
        member::{DisplayName, Member, MemberFilter, MemberStatus, NewMember, OrgCode, Role, UnitCode},
        units::AdminUnit,
    },
};
use eligibility::{DecisionRow, DecisionRunRow, PolicyRow, StateRow};
use enrollments::{
    DeenrollOutcome, Ending, EnrollOutcome, EnrollmentFilter, EnrollmentRow, FeedRow, NewEnrollment, WriteKey,
};
use reconciliation::{LineFilter, LineRow, NewUpdate, UpdateDecision, UpdateFilter, UpdateRow};
use registry::{ApplyCounts, ApplyProblem, BatchRow, NewBatch, StagedRecord, VersionRow};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// Why a storage call failed. `NotFound`, `AlreadyExists` and `Precondition` are answers the
/// domain turns into a caller's error; the rest are faults.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    /// A guarded write found the guard false; the text says which guard.
    #[error("precondition failed: {0}")]
    Precondition(&'static str),
    #[error("the database URL {0:?} is not understood: use sqlite://PATH or postgres://…")]
    BadUrl(String),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// The database cannot be reached, answered too late, or has no room to write: nothing
    /// was changed, and the same call may succeed later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value does not parse back; the database was changed outside the hub.
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StorageError {
    /// Faults of the database's reach or room become `Unavailable`; the rest are kept.
    fn from(err: sqlx::Error) -> Self {
        match unavailable(&err) {
            Some(why) => StorageError::Unavailable(why),
            None => StorageError::Database(err),
        }
    }
}

/// Whether a pooled connection may be handed out: not one left inside a transaction. When a
/// statement fails for want of room (SQLITE_FULL), SQLite may roll the transaction back by
/// itself; sqlx's own rollback then fails, and it goes on counting the transaction open, so
/// that every later `BEGIN` on the connection is refused ("attempted to call begin_with at
/// non-zero transaction depth"). Such a connection is closed and replaced.
pub(crate) fn clean(conn: &impl sqlx::Connection) -> bool {
    let clean = !conn.is_in_transaction();
    if !clean {
        tracing::warn!("a database connection was left inside a transaction by a failure: it is replaced");
    }
    clean
}

/// Why the database could not be used, when the fault is of its reach or room (the caller may
/// retry) rather than of the statement.
fn unavailable(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::PoolTimedOut => Some("no database connection within the database timeout".into()),
        sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => Some("the database connection is closed".into()),
        sqlx::Error::Io(e) => Some(format!("cannot reach the database: {e}")),
        sqlx::Error::Tls(e) => Some(format!("cannot reach the database: {e}")),
        sqlx::Error::Database(db) => {
            if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
                let e = db;
                // Primary result codes: SQLITE_BUSY 5, SQLITE_IOERR 10, SQLITE_FULL 13, SQLITE_CANTOPEN 14.
                let code: i64 = e.code().and_then(|c| c.parse().ok()).unwrap_or(0);
                return match code & 0xff {
                    13 => Some("the database's disk is full".into()),
                    5 | 10 | 14 => Some(format!("the database file cannot be used now: {}", e.message())),
                    _ => None,
                };
            }
            // SQLSTATE classes 08 (connection), 53 (insufficient resources: disk full, too many
            // connections), 57P (the server shutting down or starting).
            let state = db.code().unwrap_or_default();
            (state.starts_with("08") || state.starts_with("53") || state.starts_with("57P"))
                .then(|| format!("the database server cannot serve now ({state}): {}", db.message()))
        }
        _ => None,
    }
}

impl StorageError {
    /// Maps a unique-constraint violation to `AlreadyExists`; keeps every other error.
    fn from_insert(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => StorageError::AlreadyExists,
            _ => StorageError::from(err),
        }
    }
}

/// The guard text of [`Store::update_member`] when the change would leave no active ICT member.
pub const LAST_ACTIVE_ICT: &str = "the last active ICT member";

/// The complete new state of a member, written by [`Store::update_member`].
#[derive(Debug, Clone)]
pub struct MemberWrite {
    pub code: OrgCode,
    pub display_name: DisplayName,
    pub role: Role,
    pub unit: Option<UnitCode>,
    pub status: MemberStatus,
    pub status_reason: Option<String>,
    pub updated_at: OffsetDateTime,
}

/// Which audit records to read. `from` and `until` (exclusive) are in UTC.
#[derive(Debug, Clone)]
pub struct AuditFilter {
    pub from: OffsetDateTime,
    pub until: OffsetDateTime,
    pub org_code: Option<String>,
    /// A full method path.
    pub method: Option<String>,
    /// The start of method paths (`/telesub.v1.Eligibility/`).
    pub method_prefix: Option<String>,
    pub outcome: Option<String>,
}

impl AuditFilter {
    /// Whether a record passes the filter.
    pub fn matches(&self, r: &AuditRecord) -> bool {
        let e = &r.entry;
        e.at >= self.from
            && e.at < self.until
            && self.org_code.as_ref().is_none_or(|o| e.org_code.as_ref() == Some(o))
            && self.method.as_ref().is_none_or(|m| &e.method == m)
            && self.method_prefix.as_ref().is_none_or(|p| e.method.starts_with(p.as_str()))
            && self.outcome.as_ref().is_none_or(|o| &e.outcome == o)
    }
}

/// Connection settings shared by both backends.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    /// How long a call waits for a connection (for PostgreSQL: for a server to answer at all).
    pub acquire_timeout: Duration,
    /// How long a write waits for SQLite's one writer: queueing behind another write (a large
    /// batch holds it for seconds) is no sign of a database out of reach.
    pub write_wait: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self { max_connections: 8, acquire_timeout: Duration::from_secs(2), write_wait: Duration::from_secs(30) }
    }
}

/// The right to receive one thing (a batch, an operator's monthly list) while it is held; see
/// [`Store::claim`]. Dropping it gives the right up.
pub struct Claim(#[allow(dead_code)] Box<dyn Send + Sync>);

impl fmt::Debug for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Claim")
    }
}

/// The 64 bits of SHA-256 of a claim's key that name it to the database.
pub(crate) fn claim_hash(key: &str) -> [u8; 8] {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    digest.as_ref()[..8].try_into().expect("8 bytes")
}

/// Everything the hub keeps. Implementations must give the same answers for the same calls;
/// the conformance suite in `tests/` checks that.
#[async_trait]
pub trait Store:
    devices::DeviceStore
    + audit_reader::AuditReader
    + audit_trail::AuditTrail
    + inspections::InspectionStore
    + statistics::StatisticsStore
    + Send
    + Sync
    + fmt::Debug
    + 'static
{
    /// `"sqlite"` or `"postgres"`.
    fn backend(&self) -> &'static str;

    /// Applies the embedded migrations that have not run yet.
    async fn migrate(&self) -> Result<(), StorageError>;

    /// Called once by a hub before it serves: clears what only a serving process may clear.
    async fn prepare_to_serve(&self) -> Result<(), StorageError> {
        Ok(())
    }

    /// Whether the database answers a trivial query.
    async fn ping(&self) -> Result<(), StorageError>;

    /// Takes the right to receive `key` for as long as the claim lives: `None` while a stream
    /// of this hub or of another on the same database holds it. A process that is gone holds
    /// nothing, whatever it left in the tables: its claims end with it (a lock on a file, a
    /// PostgreSQL session's advisory lock), so a claim taken tells a live stream from the
    /// remains of a dead one.
    async fn claim(&self, key: &str) -> Result<Option<Claim>, StorageError>;

    async fn get_member(&self, code: &OrgCode) -> Result<Option<Member>, StorageError>;

    /// Members in code order after `after`, at most `limit` of them.
    async fn list_members(
        &self,
        filter: &MemberFilter,
        after: Option<&OrgCode>,
        limit: u32,
    ) -> Result<Vec<Member>, StorageError>;

    /// Fails with `AlreadyExists` when the code is taken.
    async fn insert_member(&self, member: &NewMember, at: OffsetDateTime) -> Result<Member, StorageError>;

    /// Overwrites a member's state. Fails with `NotFound`, or with
    /// `Precondition(LAST_ACTIVE_ICT)` when the write would leave no active ICT member.
    async fn update_member(&self, write: &MemberWrite) -> Result<Member, StorageError>;

    /// Notes that a member used the certificate with this fingerprint at `at`.
    async fn record_certificate_use(
        &self,
        code: &OrgCode,
        fingerprint: &str,
        at: OffsetDateTime,
    ) -> Result<(), StorageError>;

    /// Whether any member has the role `ICT` (active or not): the hub is bootstrapped.
    async fn has_ict_member(&self) -> Result<bool, StorageError>;

    /// Appends entries to the audit chain in one transaction, with the decisions the calls
    /// gave and what they looked up (`(index into entries, subject)`); returns each entry's
    /// sequence number and chain hash. Safe against concurrent appenders (several hubs on one PostgreSQL
    /// database).
    async fn append_audit(
        &self,
        entries: &[AuditEntry],
        decisions: &[DecisionRow],
        subjects: &[(usize, Subject)],
    ) -> Result<Vec<(i64, String)>, StorageError>;

    /// Stored audit records with sequence numbers above `after`, in order, at most `limit`.
    async fn audit_records(&self, after: i64, limit: u32) -> Result<Vec<AuditRecord>, StorageError>;

    /// Audit records with sequence numbers above `after` that pass `filter`, in order, at most
    /// `limit`.
    async fn query_audit(&self, filter: &AuditFilter, after: i64, limit: u32)
    -> Result<Vec<AuditRecord>, StorageError>;

    /// The chain head: the last sequence number and its hash (0 and the genesis hash when empty).
    async fn audit_head(&self) -> Result<(i64, String), StorageError>;

    // Administrative units.

    /// Every unit, in code order.
    async fn units(&self) -> Result<Vec<AdminUnit>, StorageError>;

    /// Loads `units` when the table is empty (the reference data, on first start); returns
    /// whether it did.
    async fn seed_units(&self, units: &[AdminUnit]) -> Result<bool, StorageError>;

    /// In one transaction: inserts `new` unit versions, and writes the name, end date and
    /// successor of the `changed` versions (found by code and start date).
    async fn save_units(&self, new: &[AdminUnit], changed: &[AdminUnit]) -> Result<(), StorageError>;

    // Household batches.

    async fn batch(&self, batch_id: &str) -> Result<Option<BatchRow>, StorageError>;

    /// Applied batches, newest first, with sequence numbers below `before`.
    async fn list_batches(&self, before: Option<i64>, limit: u32) -> Result<Vec<BatchRow>, StorageError>;

    /// Records a batch as being received, dropping what an interrupted earlier attempt with
    /// the same id left. `AlreadyExists` when the id belongs to an applied batch.
    async fn begin_batch(&self, batch: &NewBatch<'_>) -> Result<(), StorageError>;

    /// Stages records of a batch being received by `receiver` (committed, but not yet in the
    /// register); `Precondition(NOT_THE_RECEIVER)` when the batch is no longer its own.
    async fn stage_records(&self, batch_id: &str, receiver: &str, records: &[StagedRecord])
    -> Result<(), StorageError>;

    /// Forgets a batch being received and its staged records.
    async fn discard_batch(&self, batch_id: &str) -> Result<(), StorageError>;

    /// The ids of the batches being received (by live streams, or left by dead ones).
    async fn receiving_batches(&self) -> Result<Vec<String>, StorageError>;

    /// Applies a staged batch to the register in one transaction, or changes nothing and
    /// returns the problems that prevent it. Fails whole (`Precondition`) unless what is
    /// staged is exactly what the stream staged: its receiver and its number of records.
    async fn apply_batch(
        &self,
        batch: &registry::Staged<'_>,
        kind: BatchKind,
        effective: time::Date,
        digest: &str,
        at: OffsetDateTime,
    ) -> Result<Result<ApplyCounts, Vec<ApplyProblem>>, StorageError>;

    // Households.

    /// Every state of a household, oldest first.
    async fn household_versions(&self, code: &str) -> Result<Vec<VersionRow>, StorageError>;

    /// The state of a household on a date.
    async fn household_on(&self, code: &str, date: time::Date) -> Result<Option<VersionRow>, StorageError>;

    /// The states, on a date, of households with a member with this citizen ID.
    async fn find_by_citizen(&self, citizen_id: &str, date: time::Date) -> Result<Vec<VersionRow>, StorageError>;

    /// The states, on a date, of households holding this certificate number.
    async fn find_by_certificate(&self, number: &str, date: time::Date) -> Result<Vec<VersionRow>, StorageError>;

    /// Every state of every household that any of `values` (of one kind) ever matched, in no
    /// particular order.
    /// `bulk`: for a large call (a batch), which the backend may read its own way.
    async fn states_matching(
        &self,
        kind: QueryKind,
        values: &[String],
        bulk: bool,
    ) -> Result<Vec<StateRow>, StorageError>;

    /// [`Self::states_matching`], grouped: for each value that matched anything, the histories
    /// of its households (see [`eligibility::histories_from_rows`]). A backend holding the
    /// register in memory answers from there.
    async fn histories_matching(
        &self,
        kind: QueryKind,
        values: &[String],
        bulk: bool,
    ) -> Result<Vec<(String, Vec<History>)>, StorageError> {
        eligibility::histories_from_rows(self.states_matching(kind, values, bulk).await?)
    }

    /// Waits until what the store holds in memory reflects every change committed so far (an
    /// SQLite hub's register index after a large load); nothing to do elsewhere. For benchmarks
    /// and tests that load a register and then measure or compare.
    async fn catch_up(&self) -> Result<(), StorageError> {
        Ok(())
    }

    /// How many households the store holds in memory, when it holds the register (a serving
    /// SQLite hub whose index is ready).
    fn register_held(&self) -> Option<usize> {
        None
    }

    // Policy and decisions.

    /// Every policy version, oldest first.
    async fn policy_versions(&self) -> Result<Vec<PolicyRow>, StorageError>;

    /// Loads `rows` when no version is stored; returns whether it did.
    async fn seed_policy(&self, rows: &[PolicyRow]) -> Result<bool, StorageError>;

    /// Adds a version. `Precondition` when it does not follow every stored version (by number
    /// and date); `AlreadyExists` when another was added with its number meanwhile.
    async fn add_policy_version(&self, row: &PolicyRow) -> Result<(), StorageError>;

    /// Marks version `version` withdrawn, if it has not taken effect by `today` and is not
    /// withdrawn already; whether it did.
    async fn withdraw_policy_version(
        &self,
        version: i64,
        by: &str,
        at: time::OffsetDateTime,
        reason: &str,
        today: time::Date,
    ) -> Result<bool, StorageError>;

    /// Stores runs of a batch call's decisions in one transaction.
    async fn record_decision_runs(&self, runs: &[DecisionRunRow]) -> Result<(), StorageError>;

    /// A stored single decision.
    async fn decision(&self, call_id: &str, idx: i64) -> Result<Option<DecisionRow>, StorageError>;

    /// The run of a batch call that holds decision `idx`, if any.
    async fn decision_run(&self, call_id: &str, idx: i64) -> Result<Option<DecisionRunRow>, StorageError>;

    // Enrolments.

    /// Enrols a line (with `transfer`: takes over the household's line from another
    /// operator), with the decision it rests on, in one transaction; or says why not.
    async fn enroll(
        &self,
        new: &NewEnrollment,
        key: &WriteKey<'_>,
        allowed: u32,
        transfer: bool,
    ) -> Result<EnrollOutcome, StorageError>;

    /// Ends one of `key.operator`'s enrolments.
    async fn deenroll(&self, key: &WriteKey<'_>, ending: &Ending<'_>) -> Result<DeenrollOutcome, StorageError>;

    /// Enrolments in id order after `after`, at most `limit`.
    async fn list_enrollments(
        &self,
        filter: &EnrollmentFilter,
        after: i64,
        limit: u32,
    ) -> Result<Vec<EnrollmentRow>, StorageError>;

    /// An operator's feed events after `after`, in order, at most `limit`.
    async fn feed_events(&self, operator: &str, after: i64, limit: u32) -> Result<Vec<FeedRow>, StorageError>;

    /// Enrolments with these ids, in no particular order.
    async fn enrollments_by_ids(&self, ids: &[i64]) -> Result<Vec<EnrollmentRow>, StorageError>;

    /// An operator's enrolments of these phone numbers, in no particular order.
    async fn enrollments_by_phones(
        &self,
        operator: &str,
        phones: &[String],
    ) -> Result<Vec<EnrollmentRow>, StorageError>;

    /// The ids of an operator's enrolments running on some day of `[from, until)`.
    async fn enrollments_running(
        &self,
        operator: &str,
        from: time::Date,
        until: time::Date,
    ) -> Result<Vec<i64>, StorageError>;

    // Monthly lists and their reconciliation.

    async fn monthly_update(&self, operator: &str, update_id: &str) -> Result<Option<UpdateRow>, StorageError>;

    async fn monthly_update_by_ref(&self, id: i64) -> Result<Option<UpdateRow>, StorageError>;

    /// The operator's lists for a period that are being received, reconciled or confirmed.
    async fn open_monthly_updates(&self, operator: &str, period: &str) -> Result<Vec<UpdateRow>, StorageError>;

    /// Lists with internal ids below `before`, newest first, at most `limit`.
    async fn list_monthly_updates(
        &self,
        filter: &UpdateFilter,
        before: i64,
        limit: u32,
    ) -> Result<Vec<UpdateRow>, StorageError>;

    /// Records a list as being received (dropping what an interrupted attempt with the same
    /// key left); returns its internal id. `AlreadyExists` when the key is taken.
    async fn begin_monthly_update(&self, new: &NewUpdate<'_>) -> Result<i64, StorageError>;

    /// Stores reconciled lines of a list being received.
    async fn store_monthly_lines(&self, id: i64, lines: &[LineRow]) -> Result<(), StorageError>;

    /// Forgets a list being received and its lines.
    async fn discard_monthly_update(&self, id: i64) -> Result<(), StorageError>;

    /// Notes that every line of a list being received is stored, with the content's digest:
    /// a list so marked is finished by the next hub to start if its own stops first.
    async fn mark_monthly_received(&self, id: i64, digest: &str) -> Result<(), StorageError>;

    /// In one transaction: the list being received becomes the operator's reconciled list for
    /// its period, and `replaces` (reconciled, not decided) is superseded. `Precondition` when
    /// either changed meanwhile, or another list for the period arrived.
    async fn finish_monthly_update(
        &self,
        id: i64,
        digest: &str,
        figures: &str,
        at: OffsetDateTime,
        replaces: Option<i64>,
    ) -> Result<(), StorageError>;

    /// Rewrites the outcome of lines of a reconciled list, marking it stale until
    /// [`Store::refigure_monthly_update`]; `false` when the list is no longer open.
    async fn rewrite_line_outcomes(&self, id: i64, lines: &[LineRow]) -> Result<bool, StorageError>;

    /// Stores the figures of a list reconciled again and clears its stale mark; `false` when
    /// the list is no longer open.
    async fn refigure_monthly_update(&self, id: i64, figures: &str, at: OffsetDateTime) -> Result<bool, StorageError>;

    /// Notes, in one transaction, on a confirmed list, the lines a later change alters
    /// (`Some(discrepancies as JSON)`) or no longer alters (`None`); `false` when the list is not
    /// confirmed.
    async fn note_line_exceptions(&self, id: i64, lines: &[(i64, Option<String>)]) -> Result<bool, StorageError>;

    /// Stores how many lines of a confirmed list a later change alters.
    async fn count_exceptions(&self, id: i64, count: i64, at: OffsetDateTime) -> Result<(), StorageError>;

    /// The confirmed lists of periods from `first_period` on.
    async fn confirmed_updates_since(&self, first_period: &str) -> Result<Vec<i64>, StorageError>;

    /// Marks the reconciled lists of periods from `first_period` on as stale; returns their ids.
    async fn mark_stale_updates(&self, first_period: &str) -> Result<Vec<i64>, StorageError>;

    /// The reconciled lists marked stale.
    async fn stale_monthly_updates(&self) -> Result<Vec<i64>, StorageError>;

    /// Confirms or rejects a list as reconciled in `decision.revision`; `Precondition` when it
    /// is not reconciled, or was reconciled again meanwhile.
    async fn decide_monthly_update(&self, id: i64, decision: &UpdateDecision<'_>) -> Result<(), StorageError>;

    /// Lines of a list after line `after`, in order, at most `limit`.
    async fn monthly_lines(
        &self,
        id: i64,
        filter: &LineFilter,
        after: i64,
        limit: u32,
    ) -> Result<Vec<LineRow>, StorageError>;

    /// Households that other operators' reconciled or confirmed lists claim for a period, with
    /// the list claiming each.
    async fn claimed_elsewhere(&self, period: &str, operator: &str) -> Result<Vec<(String, i64)>, StorageError>;

    /// The phone numbers of a list with their months without traffic.
    async fn idle_months(&self, id: i64) -> Result<Vec<(String, i64)>, StorageError>;
}

/// Opens the store a database URL names, creating an SQLite file when it is missing, and runs
/// the migrations.
pub async fn open(url: &str, options: &StoreOptions) -> Result<Arc<dyn Store>, StorageError> {
    let store: Arc<dyn Store> = if let Some(path) = url.strip_prefix("sqlite://") {
        Arc::new(SqliteStore::open(path, options).await?)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Arc::new(PgStore::open(url, options).await?)
    } else {
        return Err(StorageError::BadUrl(redact_url(url)));
    };
    store.migrate().await?;
    Ok(store)
}

/// The URL with any password replaced, for logs and errors.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(redact_url("postgres://hub:s3cret@db:5432/telesub"), "postgres://hub:***@db:5432/telesub");
        assert_eq!(redact_url("sqlite://telesub.db"), "sqlite://telesub.db");
    }
}
