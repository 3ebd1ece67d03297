//! The audit trail: records appended in a chain and a tree, what calls looked up, checkpoints.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::PortError;
use crate::audit::{AuditEntry, AuditRecord, Subject};

use super::policy::{DecisionRun, StoredDecision};
use crate::audit::SubjectKind;

/// A call that gave eligibility decisions: its request id, who asked, and when it decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionCall {
    pub request_id: String,
    pub asked_by: String,
    pub decided_at: OffsetDateTime,
}

#[async_trait]
pub trait AuditReader: Send + Sync + std::fmt::Debug {
    /// Sequence numbers of the calls that noted this subject.
    async fn subject_seqs(&self, kind: SubjectKind, value: &str) -> Result<Vec<i64>, PortError>;

    /// Calls in `[from, until)` whose single decisions were asked about `value` (any kind of
    /// question), or, with `answered`, named household `value` in their answer. Decisions are
    /// not indexed by value (see migration 0014): this reads the decisions of the range, found
    /// by their call ids, which begin with the time the call arrived.
    async fn decision_calls(
        &self,
        value: &str,
        answered: bool,
        from: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Vec<DecisionCall>, PortError>;

    /// Batch calls in `[from, until)` with a decision asked about `value` or answered with
    /// household `value` (`answered`).
    async fn run_calls(
        &self,
        value: &str,
        answered: bool,
        from: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Vec<DecisionCall>, PortError>;

    /// The sequence number of a call's audit record, found from who made it and a time after
    /// it arrived (within a day).
    async fn audit_seq_of(&self, call: &DecisionCall) -> Result<Option<i64>, PortError>;

    /// The records with these sequence numbers, in order.
    async fn audit_records_at(&self, seqs: &[i64]) -> Result<Vec<AuditRecord>, PortError>;
}

/// A signed checkpoint as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    pub tree_size: i64,
    /// Lower-case hex.
    pub root_hash: String,
    pub signed_at: OffsetDateTime,
    /// The signing key's id, 8 hex digits.
    pub key_id: String,
    /// The signed note.
    pub note: String,
}
/// A subject noted beside a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotedSubject {
    pub seq: i64,
    pub kind: String,
    pub value: String,
}
#[async_trait]
pub trait AuditTrail: Send + Sync + std::fmt::Debug {
    /// The chain head: its record count, last hash and the tree's right edge (`None` until
    /// built).
    async fn audit_edge(&self) -> Result<(i64, String, Option<String>), PortError>;

    /// Stored nodes of `level` with index in `[from, to)`, in order, as (index, hex hash).
    async fn audit_nodes(&self, level: u32, from: u64, to: u64) -> Result<Vec<(i64, String)>, PortError>;

    /// Stored nodes of several `(level, from, to)` ranges (index in `[from, to)`), in one
    /// read, as (level, index, hex hash).
    async fn audit_node_ranges(&self, ranges: &[(u32, u64, u64)]) -> Result<Vec<(i64, i64, String)>, PortError>;

    /// Every stored node, by level and index.
    async fn audit_nodes_all(&self, after: (u32, u64), limit: u32) -> Result<Vec<(i64, i64, String)>, PortError>;

    /// The subjects noted beside records `(after, last]`.
    async fn audit_subjects_between(&self, after: i64, last: i64) -> Result<Vec<NotedSubject>, PortError>;

    /// The single decisions with call ids in `[first, last]`.
    async fn decisions_between(&self, first: &str, last: &str) -> Result<Vec<StoredDecision>, PortError>;

    /// Runs of call `call_id` from the first index after `after`, in order, at most `limit`.
    async fn runs_of(&self, call_id: &str, after: i64, limit: u32) -> Result<Vec<DecisionRun>, PortError>;

    /// Checkpoints of trees larger than `after` records, smallest first, at most `limit`.
    async fn checkpoints_after(&self, after: i64, limit: u32) -> Result<Vec<StoredCheckpoint>, PortError>;

    /// The checkpoint of a tree size, or the latest (`None`).
    async fn checkpoint(&self, size: Option<i64>) -> Result<Option<StoredCheckpoint>, PortError>;

    /// Stores a checkpoint; `false` when one of its size is stored already (another hub's), or
    /// when the trail no longer holds as many records (it was cut short after the root was
    /// read).
    async fn insert_checkpoint(&self, row: &StoredCheckpoint) -> Result<bool, PortError>;

    /// The append-only guards (triggers) that are missing or disabled.
    async fn missing_guards(&self) -> Result<Vec<String>, PortError>;
}

/// The audit chain: records appended in order, read back and filtered.
#[async_trait]
pub trait AuditLog: Send + Sync + std::fmt::Debug {
    /// Appends entries to the audit chain in one transaction, with the decisions the calls
    /// gave and what they looked up (`(index into entries, subject)`); returns each entry's
    /// sequence number and chain hash. Safe against concurrent appenders (several hubs on one PostgreSQL
    /// database).
    async fn append_audit(
        &self,
        entries: &[AuditEntry],
        decisions: &[StoredDecision],
        subjects: &[(usize, Subject)],
    ) -> Result<Vec<(i64, String)>, PortError>;

    /// Stored audit records with sequence numbers above `after`, in order, at most `limit`.
    async fn audit_records(&self, after: i64, limit: u32) -> Result<Vec<AuditRecord>, PortError>;

    /// Audit records with sequence numbers above `after` that pass `filter`, in order, at most
    /// `limit`.
    async fn query_audit(&self, filter: &AuditFilter, after: i64, limit: u32) -> Result<Vec<AuditRecord>, PortError>;

    /// The chain head: the last sequence number and its hash (0 and the genesis hash when empty).
    async fn audit_head(&self) -> Result<(i64, String), PortError>;
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
