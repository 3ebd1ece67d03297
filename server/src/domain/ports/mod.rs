//! The ports: what the domain needs kept, one trait per concept, in the domain's own types.
//! Storage implements them (SQLite and PostgreSQL, one conformance suite); the domain never
//! sees a table, a row or a statement. A write whose rule must hold inside its transaction
//! names the rule's outcome as a [`Conflict`]; the rule itself is a domain function.

pub mod audit;
pub mod devices;
pub mod enrollments;
pub mod inspections;
pub mod monthly;
pub mod policy;
pub mod register;
pub mod statistics;

use std::fmt;

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
use enrollments::{
    DeenrollOutcome, Ending, EnrollOutcome, EnrollmentFilter, EnrollmentRow, FeedRow, NewEnrollment, WriteKey,
};
use monthly::{LineFilter, LineRow, NewUpdate, UpdateDecision, UpdateFilter, UpdateRow};
use policy::{DecisionRow, DecisionRunRow, PolicyRow, StateRow};
use register::{ApplyCounts, ApplyProblem, BatchRow, NewBatch, StagedRecord, VersionRow};

/// Why a port call failed. `NotFound`, `AlreadyExists` and `Conflict` are answers the domain
/// turns into a caller's error; `Unavailable` is a fault the caller may retry; `Corrupt` and
/// `Fault` are faults of the hub.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    AlreadyExists,
    /// A guarded write found its guard false: nothing was changed.
    #[error("conflict: {0}")]
    Conflict(Conflict),
    /// What keeps the data cannot be reached, answered too late, or has no room to write:
    /// nothing was changed, and the same call may succeed later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// A stored value does not parse back; the data was changed outside the hub.
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    /// Anything else that went wrong below the port, with its cause.
    #[error("storage fault")]
    Fault(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl PortError {
    /// A fault with its cause.
    pub fn fault(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Fault(cause.into())
    }
}

/// Which guard of a write was false.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// The member change would leave no active ICT member.
    LastActiveIct,
    /// The batch is no longer received by the stream that staged it.
    NotTheReceiver,
    /// The records staged are not those the stream sent.
    StagedOther,
    /// A policy version does not follow every stored version.
    LaterPolicyVersion,
    /// A monthly list is no longer being received.
    NotReceiving,
    /// The monthly list to replace is no longer open.
    ReplacedGone,
    /// Another list for the period arrived meanwhile.
    OtherLiveList,
    /// The monthly list is not reconciled.
    NotReconciled,
    /// The monthly list was reconciled again meanwhile.
    ReconciledAgain,
    /// The device list is not a draft open to amendment.
    NotAmendable,
    /// The device list is with the committee or approved.
    NotProposable,
    /// A household of the list was put on another list meanwhile.
    PlaceTaken,
    /// The unit's places for this device are all taken.
    QuotaFull,
    /// The device list changed since it was read.
    ChangedSince,
    /// The device list is not submitted.
    NotSubmitted,
    /// The submitted device list is not the one reviewed.
    OtherDigest,
    /// The inspection is closed.
    InspectionClosed,
    /// The finding's status changed meanwhile.
    StatusChanged,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Conflict::LastActiveIct => "the last active ICT member",
            Conflict::NotTheReceiver => "the batch is no longer received by this stream",
            Conflict::StagedOther => "the records staged are not those this stream sent",
            Conflict::LaterPolicyVersion => "a later policy version",
            Conflict::NotReceiving => "the list is no longer being received",
            Conflict::ReplacedGone => "the list to replace is no longer open",
            Conflict::OtherLiveList => "another list for the period arrived meanwhile",
            Conflict::NotReconciled => "the list is not reconciled",
            Conflict::ReconciledAgain => "the list was reconciled again meanwhile",
            Conflict::NotAmendable => "the list is not a draft open to amendment",
            Conflict::NotProposable => "the list is with the committee or approved",
            Conflict::PlaceTaken => "a household of the list was put on another list meanwhile",
            Conflict::QuotaFull => "the unit's places for this device are all taken",
            Conflict::ChangedSince => "the list changed since it was read",
            Conflict::NotSubmitted => "the list is not submitted",
            Conflict::OtherDigest => "the submitted list is not the one reviewed",
            Conflict::InspectionClosed => "the inspection is closed",
            Conflict::StatusChanged => "the finding's status changed meanwhile",
        })
    }
}

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

/// The right to receive one thing (a batch, an operator's monthly list) while it is held; see
/// [`Store::claim`]. Dropping it gives the right up.
pub struct Claim(#[allow(dead_code)] Box<dyn Send + Sync>);

impl Claim {
    /// A claim held for as long as `held` lives (a lock, a database session).
    pub fn new(held: impl Send + Sync + 'static) -> Self {
        Self(Box::new(held))
    }
}

impl fmt::Debug for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Claim")
    }
}

/// Everything the hub keeps. Implementations must give the same answers for the same calls;
/// the conformance suite in `tests/` checks that.
#[async_trait]
pub trait Store:
    devices::DeviceStore
    + audit::AuditReader
    + audit::AuditTrail
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
    async fn migrate(&self) -> Result<(), PortError>;

    /// Called once by a hub before it serves: clears what only a serving process may clear.
    async fn prepare_to_serve(&self) -> Result<(), PortError> {
        Ok(())
    }

    /// Whether the database answers a trivial query.
    async fn ping(&self) -> Result<(), PortError>;

    /// Takes the right to receive `key` for as long as the claim lives: `None` while a stream
    /// of this hub or of another on the same database holds it. A process that is gone holds
    /// nothing, whatever it left in the tables: its claims end with it (a lock on a file, a
    /// PostgreSQL session's advisory lock), so a claim taken tells a live stream from the
    /// remains of a dead one.
    async fn claim(&self, key: &str) -> Result<Option<Claim>, PortError>;

    async fn get_member(&self, code: &OrgCode) -> Result<Option<Member>, PortError>;

    /// Members in code order after `after`, at most `limit` of them.
    async fn list_members(
        &self,
        filter: &MemberFilter,
        after: Option<&OrgCode>,
        limit: u32,
    ) -> Result<Vec<Member>, PortError>;

    /// Fails with `AlreadyExists` when the code is taken.
    async fn insert_member(&self, member: &NewMember, at: OffsetDateTime) -> Result<Member, PortError>;

    /// Overwrites a member's state. Fails with `NotFound`, or with
    /// `PortError::Conflict(crate::domain::ports::Conflict::LastActiveIct)` when the write would leave no active ICT member.
    async fn update_member(&self, write: &MemberWrite) -> Result<Member, PortError>;

    /// Notes that a member used the certificate with this fingerprint at `at`.
    async fn record_certificate_use(
        &self,
        code: &OrgCode,
        fingerprint: &str,
        at: OffsetDateTime,
    ) -> Result<(), PortError>;

    /// Whether any member has the role `ICT` (active or not): the hub is bootstrapped.
    async fn has_ict_member(&self) -> Result<bool, PortError>;

    /// Appends entries to the audit chain in one transaction, with the decisions the calls
    /// gave and what they looked up (`(index into entries, subject)`); returns each entry's
    /// sequence number and chain hash. Safe against concurrent appenders (several hubs on one PostgreSQL
    /// database).
    async fn append_audit(
        &self,
        entries: &[AuditEntry],
        decisions: &[DecisionRow],
        subjects: &[(usize, Subject)],
    ) -> Result<Vec<(i64, String)>, PortError>;

    /// Stored audit records with sequence numbers above `after`, in order, at most `limit`.
    async fn audit_records(&self, after: i64, limit: u32) -> Result<Vec<AuditRecord>, PortError>;

    /// Audit records with sequence numbers above `after` that pass `filter`, in order, at most
    /// `limit`.
    async fn query_audit(&self, filter: &AuditFilter, after: i64, limit: u32) -> Result<Vec<AuditRecord>, PortError>;

    /// The chain head: the last sequence number and its hash (0 and the genesis hash when empty).
    async fn audit_head(&self) -> Result<(i64, String), PortError>;

    // Administrative units.

    /// Every unit, in code order.
    async fn units(&self) -> Result<Vec<AdminUnit>, PortError>;

    /// Loads `units` when the table is empty (the reference data, on first start); returns
    /// whether it did.
    async fn seed_units(&self, units: &[AdminUnit]) -> Result<bool, PortError>;

    /// In one transaction: inserts `new` unit versions, and writes the name, end date and
    /// successor of the `changed` versions (found by code and start date).
    async fn save_units(&self, new: &[AdminUnit], changed: &[AdminUnit]) -> Result<(), PortError>;

    // Household batches.

    async fn batch(&self, batch_id: &str) -> Result<Option<BatchRow>, PortError>;

    /// Applied batches, newest first, with sequence numbers below `before`.
    async fn list_batches(&self, before: Option<i64>, limit: u32) -> Result<Vec<BatchRow>, PortError>;

    /// Records a batch as being received, dropping what an interrupted earlier attempt with
    /// the same id left. `AlreadyExists` when the id belongs to an applied batch.
    async fn begin_batch(&self, batch: &NewBatch<'_>) -> Result<(), PortError>;

    /// Stages records of a batch being received by `receiver` (committed, but not yet in the
    /// register); `PortError::Conflict(crate::domain::ports::Conflict::NotTheReceiver)` when the batch is no longer its own.
    async fn stage_records(&self, batch_id: &str, receiver: &str, records: &[StagedRecord]) -> Result<(), PortError>;

    /// Forgets a batch being received and its staged records.
    async fn discard_batch(&self, batch_id: &str) -> Result<(), PortError>;

    /// The ids of the batches being received (by live streams, or left by dead ones).
    async fn receiving_batches(&self) -> Result<Vec<String>, PortError>;

    /// Applies a staged batch to the register in one transaction, or changes nothing and
    /// returns the problems that prevent it. Fails whole (`Precondition`) unless what is
    /// staged is exactly what the stream staged: its receiver and its number of records.
    async fn apply_batch(
        &self,
        batch: &register::Staged<'_>,
        kind: BatchKind,
        effective: time::Date,
        digest: &str,
        at: OffsetDateTime,
    ) -> Result<Result<ApplyCounts, Vec<ApplyProblem>>, PortError>;

    // Households.

    /// Every state of a household, oldest first.
    async fn household_versions(&self, code: &str) -> Result<Vec<VersionRow>, PortError>;

    /// The state of a household on a date.
    async fn household_on(&self, code: &str, date: time::Date) -> Result<Option<VersionRow>, PortError>;

    /// The states, on a date, of households with a member with this citizen ID.
    async fn find_by_citizen(&self, citizen_id: &str, date: time::Date) -> Result<Vec<VersionRow>, PortError>;

    /// The states, on a date, of households holding this certificate number.
    async fn find_by_certificate(&self, number: &str, date: time::Date) -> Result<Vec<VersionRow>, PortError>;

    /// Every state of every household that any of `values` (of one kind) ever matched, in no
    /// particular order.
    /// `bulk`: for a large call (a batch), which the backend may read its own way.
    async fn states_matching(&self, kind: QueryKind, values: &[String], bulk: bool)
    -> Result<Vec<StateRow>, PortError>;

    /// [`Self::states_matching`], grouped: for each value that matched anything, the histories
    /// of its households (see [`policy::histories_from_rows`]). A backend holding the
    /// register in memory answers from there.
    async fn histories_matching(
        &self,
        kind: QueryKind,
        values: &[String],
        bulk: bool,
    ) -> Result<Vec<(String, Vec<History>)>, PortError> {
        policy::histories_from_rows(self.states_matching(kind, values, bulk).await?)
    }

    /// Waits until what the store holds in memory reflects every change committed so far (an
    /// SQLite hub's register index after a large load); nothing to do elsewhere. For benchmarks
    /// and tests that load a register and then measure or compare.
    async fn catch_up(&self) -> Result<(), PortError> {
        Ok(())
    }

    /// How many households the store holds in memory, when it holds the register (a serving
    /// SQLite hub whose index is ready).
    fn register_held(&self) -> Option<usize> {
        None
    }

    // Policy and decisions.

    /// Every policy version, oldest first.
    async fn policy_versions(&self) -> Result<Vec<PolicyRow>, PortError>;

    /// Loads `rows` when no version is stored; returns whether it did.
    async fn seed_policy(&self, rows: &[PolicyRow]) -> Result<bool, PortError>;

    /// Adds a version. `Precondition` when it does not follow every stored version (by number
    /// and date); `AlreadyExists` when another was added with its number meanwhile.
    async fn add_policy_version(&self, row: &PolicyRow) -> Result<(), PortError>;

    /// Marks version `version` withdrawn, if it has not taken effect by `today` and is not
    /// withdrawn already; whether it did.
    async fn withdraw_policy_version(
        &self,
        version: i64,
        by: &str,
        at: time::OffsetDateTime,
        reason: &str,
        today: time::Date,
    ) -> Result<bool, PortError>;

    /// Stores runs of a batch call's decisions in one transaction.
    async fn record_decision_runs(&self, runs: &[DecisionRunRow]) -> Result<(), PortError>;

    /// A stored single decision.
    async fn decision(&self, call_id: &str, idx: i64) -> Result<Option<DecisionRow>, PortError>;

    /// The run of a batch call that holds decision `idx`, if any.
    async fn decision_run(&self, call_id: &str, idx: i64) -> Result<Option<DecisionRunRow>, PortError>;

    // Enrolments.

    /// Enrols a line (with `transfer`: takes over the household's line from another
    /// operator), with the decision it rests on, in one transaction; or says why not.
    async fn enroll(
        &self,
        new: &NewEnrollment,
        key: &WriteKey<'_>,
        allowed: u32,
        transfer: bool,
    ) -> Result<EnrollOutcome, PortError>;

    /// Ends one of `key.operator`'s enrolments.
    async fn deenroll(&self, key: &WriteKey<'_>, ending: &Ending<'_>) -> Result<DeenrollOutcome, PortError>;

    /// Enrolments in id order after `after`, at most `limit`.
    async fn list_enrollments(
        &self,
        filter: &EnrollmentFilter,
        after: i64,
        limit: u32,
    ) -> Result<Vec<EnrollmentRow>, PortError>;

    /// An operator's feed events after `after`, in order, at most `limit`.
    async fn feed_events(&self, operator: &str, after: i64, limit: u32) -> Result<Vec<FeedRow>, PortError>;

    /// Enrolments with these ids, in no particular order.
    async fn enrollments_by_ids(&self, ids: &[i64]) -> Result<Vec<EnrollmentRow>, PortError>;

    /// An operator's enrolments of these phone numbers, in no particular order.
    async fn enrollments_by_phones(&self, operator: &str, phones: &[String]) -> Result<Vec<EnrollmentRow>, PortError>;

    /// The ids of an operator's enrolments running on some day of `[from, until)`.
    async fn enrollments_running(
        &self,
        operator: &str,
        from: time::Date,
        until: time::Date,
    ) -> Result<Vec<i64>, PortError>;

    // Monthly lists and their reconciliation.

    async fn monthly_update(&self, operator: &str, update_id: &str) -> Result<Option<UpdateRow>, PortError>;

    async fn monthly_update_by_ref(&self, id: i64) -> Result<Option<UpdateRow>, PortError>;

    /// The operator's lists for a period that are being received, reconciled or confirmed.
    async fn open_monthly_updates(&self, operator: &str, period: &str) -> Result<Vec<UpdateRow>, PortError>;

    /// Lists with internal ids below `before`, newest first, at most `limit`.
    async fn list_monthly_updates(
        &self,
        filter: &UpdateFilter,
        before: i64,
        limit: u32,
    ) -> Result<Vec<UpdateRow>, PortError>;

    /// Records a list as being received (dropping what an interrupted attempt with the same
    /// key left); returns its internal id. `AlreadyExists` when the key is taken.
    async fn begin_monthly_update(&self, new: &NewUpdate<'_>) -> Result<i64, PortError>;

    /// Stores reconciled lines of a list being received.
    async fn store_monthly_lines(&self, id: i64, lines: &[LineRow]) -> Result<(), PortError>;

    /// Forgets a list being received and its lines.
    async fn discard_monthly_update(&self, id: i64) -> Result<(), PortError>;

    /// Notes that every line of a list being received is stored, with the content's digest:
    /// a list so marked is finished by the next hub to start if its own stops first.
    async fn mark_monthly_received(&self, id: i64, digest: &str) -> Result<(), PortError>;

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
    ) -> Result<(), PortError>;

    /// Rewrites the outcome of lines of a reconciled list, marking it stale until
    /// [`Store::refigure_monthly_update`]; `false` when the list is no longer open.
    async fn rewrite_line_outcomes(&self, id: i64, lines: &[LineRow]) -> Result<bool, PortError>;

    /// Stores the figures of a list reconciled again and clears its stale mark; `false` when
    /// the list is no longer open.
    async fn refigure_monthly_update(&self, id: i64, figures: &str, at: OffsetDateTime) -> Result<bool, PortError>;

    /// Notes, in one transaction, on a confirmed list, the lines a later change alters
    /// (`Some(discrepancies as JSON)`) or no longer alters (`None`); `false` when the list is not
    /// confirmed.
    async fn note_line_exceptions(&self, id: i64, lines: &[(i64, Option<String>)]) -> Result<bool, PortError>;

    /// Stores how many lines of a confirmed list a later change alters.
    async fn count_exceptions(&self, id: i64, count: i64, at: OffsetDateTime) -> Result<(), PortError>;

    /// The confirmed lists of periods from `first_period` on.
    async fn confirmed_updates_since(&self, first_period: &str) -> Result<Vec<i64>, PortError>;

    /// Marks the reconciled lists of periods from `first_period` on as stale; returns their ids.
    async fn mark_stale_updates(&self, first_period: &str) -> Result<Vec<i64>, PortError>;

    /// The reconciled lists marked stale.
    async fn stale_monthly_updates(&self) -> Result<Vec<i64>, PortError>;

    /// Confirms or rejects a list as reconciled in `decision.revision`; `Precondition` when it
    /// is not reconciled, or was reconciled again meanwhile.
    async fn decide_monthly_update(&self, id: i64, decision: &UpdateDecision<'_>) -> Result<(), PortError>;

    /// Lines of a list after line `after`, in order, at most `limit`.
    async fn monthly_lines(
        &self,
        id: i64,
        filter: &LineFilter,
        after: i64,
        limit: u32,
    ) -> Result<Vec<LineRow>, PortError>;

    /// Households that other operators' reconciled or confirmed lists claim for a period, with
    /// the list claiming each.
    async fn claimed_elsewhere(&self, period: &str, operator: &str) -> Result<Vec<(String, i64)>, PortError>;

    /// The phone numbers of a list with their months without traffic.
    async fn idle_months(&self, id: i64) -> Result<Vec<(String, i64)>, PortError>;
}
