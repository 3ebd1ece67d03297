//! The ports: what the domain needs kept, one trait per concept, in the domain's own types.
//! Storage implements them (SQLite and PostgreSQL, one conformance suite); the domain never
//! sees a table, a row or a statement. A write whose rule must hold inside its transaction
//! names the rule's outcome as a [`Conflict`]; the rule itself is a domain function.

pub mod audit;
pub mod devices;
pub mod enrollments;
pub mod inspections;
pub mod members;
pub mod monthly;
pub mod policy;
pub mod register;
pub mod retention;
pub mod statistics;

pub use audit::{AuditFilter, AuditLog, AuditReader, AuditTrail};
pub use devices::{AllocationStore, PlaceStore};
pub use enrollments::EnrollmentStore;
pub use inspections::InspectionStore;
pub use members::{MemberStore, MemberWrite};
pub use monthly::{MonthlyListStore, ReconciliationStore};
pub use policy::{DecisionStore, PolicyStore};
pub use register::{BatchStore, RegisterChanges, RegisterStore, UnitStore};
pub use retention::RetentionStore;
pub use statistics::StatisticsStore;

use std::{fmt, sync::Arc};

use async_trait::async_trait;

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
    /// The device list is approved.
    Approved,
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
            Conflict::Approved => "the list is approved",
            Conflict::InspectionClosed => "the inspection is closed",
            Conflict::StatusChanged => "the finding's status changed meanwhile",
        })
    }
}

/// The right to receive one thing (a batch, an operator's monthly list) while it is held; see
/// [`Store::claim`]. [`Claim::release`] gives it up before it returns; a claim merely dropped
/// (a stream cut off, a task cancelled) ends too, but only once the backend notices (a
/// PostgreSQL session ends in its own time), so a call gives its claim up before it answers.
pub struct Claim(Box<dyn Held>);

/// What holds a claim: a lock on a file, a database session.
#[async_trait]
pub trait Held: Send + Sync {
    /// Ends the claim; done when the next [`Store::claim`] of its key, from anywhere, can take it.
    async fn release(self: Box<Self>);
}

impl Claim {
    pub fn new(held: impl Held + 'static) -> Self {
        Self(Box::new(held))
    }

    /// Gives the claim up, and returns once it is free for the next claimant.
    pub async fn release(self) {
        self.0.release().await;
    }

    /// Runs `work` while the claim is held, then gives it up, whatever `work` answered.
    pub async fn hold<T>(self, work: impl Future<Output = T>) -> T {
        let out = work.await;
        self.release().await;
        out
    }
}

impl fmt::Debug for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Claim")
    }
}

/// How one of the backend's connection pools is used, for the hub's metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUse {
    /// What the pool is for (`read`, `write`, `bulk`, …).
    pub name: &'static str,
    /// Connections open, and of those, idle.
    pub open: u32,
    pub idle: u32,
    /// The most it opens.
    pub max: u32,
}

/// Everything the hub keeps. Implementations must give the same answers for the same calls;
/// the conformance suite in `tests/` checks that.
#[async_trait]
pub trait Store:
    members::MemberStore
    + audit::AuditLog
    + register::UnitStore
    + register::BatchStore
    + register::RegisterStore
    + policy::PolicyStore
    + policy::DecisionStore
    + enrollments::EnrollmentStore
    + monthly::MonthlyListStore
    + monthly::ReconciliationStore
    + devices::AllocationStore
    + devices::PlaceStore
    + audit::AuditReader
    + audit::AuditTrail
    + inspections::InspectionStore
    + statistics::StatisticsStore
    + retention::RetentionStore
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

    /// The register's change log, where the backend keeps one in commit order (SQLite); a
    /// serving hub then holds the register in memory (`read_model::HeldRegister`).
    fn register_changes(&self) -> Option<Arc<dyn register::RegisterChanges>> {
        None
    }

    /// Whether the database answers a trivial query.
    async fn ping(&self) -> Result<(), PortError>;

    /// How the backend's connection pools are used, now (nothing is asked of the database).
    fn pools(&self) -> Vec<PoolUse> {
        Vec::new()
    }

    /// Takes the right to receive `key` for as long as the claim lives: `None` while a stream
    /// of this hub or of another on the same database holds it. A process that is gone holds
    /// nothing, whatever it left in the tables: its claims end with it (a lock on a file, a
    /// PostgreSQL session's advisory lock), so a claim taken tells a live stream from the
    /// remains of a dead one.
    async fn claim(&self, key: &str) -> Result<Option<Claim>, PortError>;
}
