//! What the retention policy lets go (see [`crate::domain::retention`]): single decisions and
//! runs of decisions, inspections' samples, and households off the list for years. A purge
//! marks each thing it lets go with the request id of its call (whose audit record stays in
//! the trail) and its time; what identifies the thing stays, what it said of people goes.

use async_trait::async_trait;
use time::{Date, OffsetDateTime};

use super::PortError;

/// Up to when each kind of thing may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// Decisions decided before this time.
    pub decisions_before: OffsetDateTime,
    /// Samples of inspections closed before this time.
    pub samples_closed_before: OffsetDateTime,
    /// Households whose last state is a removal that took effect before this day.
    pub households_removed_before: Date,
}

/// Who let something go, and when: the purge call's request id and the hub's time.
#[derive(Debug, Clone, Copy)]
pub struct PurgeMark<'a> {
    pub request_id: &'a str,
    pub at: OffsetDateTime,
}

/// How many things each kind counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    pub decisions: u64,
    pub runs: u64,
    pub samples: u64,
    pub households: u64,
}

/// A household whose states were let go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgedHousehold {
    pub household_code: String,
    /// The day its removal from the list took effect.
    pub removed_on: Date,
    pub removal_reason: Option<String>,
    pub purged_by: String,
    pub purged_at: OffsetDateTime,
}

#[async_trait]
pub trait RetentionStore: Send + Sync {
    /// How many things the cutoffs let go that are still kept.
    async fn expired(&self, cutoffs: &Cutoffs) -> Result<Expired, PortError>;

    /// Blanks the value asked and the answer of up to `limit` single decisions decided before
    /// `before`, and the answers of up to `limit` runs (keeping their digest), in one
    /// transaction; returns how many of each.
    async fn purge_decisions(
        &self,
        before: OffsetDateTime,
        mark: &PurgeMark<'_>,
        limit: u32,
    ) -> Result<(u64, u64), PortError>;

    /// Lets the households of the samples of inspections closed before `closed_before` go
    /// (the draw stays); returns how many samples.
    async fn purge_samples(&self, closed_before: OffsetDateTime, mark: &PurgeMark<'_>) -> Result<u64, PortError>;

    /// Lets every state of up to `limit` households go whose last state is a removal that took
    /// effect before `removed_before`, leaving a [`PurgedHousehold`] for each, in one
    /// transaction (noted in the register's change log where there is one); returns them.
    async fn purge_households(
        &self,
        removed_before: Date,
        mark: &PurgeMark<'_>,
        limit: u32,
    ) -> Result<Vec<PurgedHousehold>, PortError>;

    /// The household's marker, when its states were let go.
    async fn purged_household(&self, code: &str) -> Result<Option<PurgedHousehold>, PortError>;
}
