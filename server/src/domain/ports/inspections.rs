//! Inspections: the inspection, its findings and their follow-up, frozen samples.

use super::PortError;
use crate::domain::inspections::{FindingStatus, InspectionStatus, Severity};
use async_trait::async_trait;
use time::{Date, OffsetDateTime};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredInspection {
    pub id: i64,
    pub title: String,
    /// `YEARLY_PLAN` or `AUTHORITY_REQUEST`.
    pub basis: String,
    pub requested_by: String,
    /// JSON arrays.
    pub subject_units: String,
    pub subject_operators: String,
    pub team: String,
    pub starts_on: Date,
    pub ends_on: Date,
    pub note: String,
    pub status: InspectionStatus,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub conclusion: Option<String>,
    pub closed_by: Option<String>,
    pub closed_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone)]
pub struct NewInspection<'a> {
    pub title: &'a str,
    pub basis: &'a str,
    pub requested_by: &'a str,
    pub subject_units: &'a str,
    pub subject_operators: &'a str,
    pub team: &'a str,
    pub starts_on: Date,
    pub ends_on: Date,
    pub note: &'a str,
    pub created_by: &'a str,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub inspection_id: i64,
    pub number: i64,
    pub severity: Severity,
    pub subject: String,
    pub description: String,
    pub evidence_reference: String,
    pub required_action: String,
    pub due_on: Date,
    pub status: FindingStatus,
    pub recorded_by: String,
    pub recorded_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingUpdate {
    pub number: i64,
    pub seq: i64,
    pub status: FindingStatus,
    pub note: String,
    pub updated_by: String,
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampledHousehold {
    pub inspection_id: i64,
    pub number: i64,
    pub commune_code: String,
    pub as_of: Date,
    pub size: i64,
    pub population: i64,
    pub seed: String,
    /// The households as frozen, as JSON; empty in summaries.
    pub body: String,
    pub pulled_by: String,
    pub pulled_at: OffsetDateTime,
    /// When the households were let go under the retention policy (the draw stays).
    pub purged_at: Option<OffsetDateTime>,
}

/// A finding's move from one status to another.
#[derive(Debug, Clone)]
pub struct FindingChange<'a> {
    pub from: FindingStatus,
    pub to: FindingStatus,
    pub note: &'a str,
    pub by: &'a str,
    pub at: OffsetDateTime,
}

#[async_trait]
pub trait InspectionStore: Send + Sync + std::fmt::Debug {
    async fn insert_inspection(&self, new: &NewInspection<'_>) -> Result<i64, PortError>;

    async fn inspection(&self, id: i64) -> Result<Option<StoredInspection>, PortError>;

    /// Inspections with ids below `before`, newest first, of a status when given.
    async fn list_inspections(
        &self,
        status: Option<InspectionStatus>,
        before: i64,
        limit: u32,
    ) -> Result<Vec<StoredInspection>, PortError>;

    /// `Conflict(InspectionClosed)` when already closed; `NotFound`.
    async fn close_inspection(&self, id: i64, conclusion: &str, by: &str, at: OffsetDateTime) -> Result<(), PortError>;

    /// Adds a finding numbered after the last; returns its number. `Conflict(InspectionClosed)`.
    async fn add_finding(&self, finding: &Finding) -> Result<i64, PortError>;

    /// Moves a finding from `from` to `to`, recording the change. `Conflict` when its
    /// status is no longer `from`; `NotFound`.
    async fn update_finding(&self, id: i64, number: i64, change: &FindingChange<'_>) -> Result<(), PortError>;

    async fn findings(&self, id: i64) -> Result<Vec<Finding>, PortError>;

    async fn finding_updates(&self, id: i64) -> Result<Vec<FindingUpdate>, PortError>;

    /// Households of a commune on `as_of` (on the list) with an enrolment running that day.
    async fn sample_population(&self, commune: &str, as_of: Date) -> Result<Vec<String>, PortError>;

    /// Stores a sample numbered after the last; returns its number.
    async fn insert_sample(&self, sample: &SampledHousehold) -> Result<i64, PortError>;

    async fn sample(&self, id: i64, number: i64) -> Result<Option<SampledHousehold>, PortError>;

    /// The inspection's samples without their bodies.
    async fn samples(&self, id: i64) -> Result<Vec<SampledHousehold>, PortError>;
}
