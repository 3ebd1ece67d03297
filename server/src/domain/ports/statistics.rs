//! The programme's statistics, counted where the data is kept.

use super::PortError;
use crate::domain::reconciliation::ListStatus;
use async_trait::async_trait;
use time::Date;

/// Households on the list of a category in the unit, on the two days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HouseholdCount {
    pub category: String,
    pub now: i64,
    pub before: i64,
}

/// Lines running of an operator for households of a category in the unit, on the two days.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolledCount {
    pub operator: String,
    pub category: String,
    pub now: i64,
    pub before: i64,
}

/// Lines in the unit of one of the operators' live lists for a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineCount {
    pub operator: String,
    pub period: String,
    /// Reconciled or confirmed.
    pub status: ListStatus,
    pub confirmed_scope: Option<String>,
    pub claims: i64,
    pub amount: i64,
    /// Claims without a discrepancy, and their amount.
    pub ok_claims: i64,
    pub ok_amount: i64,
    pub not_eligible: i64,
    pub eligibility_ended: i64,
    pub before_start: i64,
    pub over_cap: i64,
    pub not_enrolled: i64,
    pub enrolment_mismatch: i64,
    pub duplicate_within_operator: i64,
    pub duplicate_across_operators: i64,
    pub non_usage: i64,
    pub unknown_subscriber: i64,
}

/// Places on approved device lists for households of a category in the unit, and those handed
/// over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCount {
    pub category: String,
    pub allocated: i64,
    pub handed_over: i64,
}

#[async_trait]
pub trait StatisticsStore: Send + Sync + std::fmt::Debug {
    /// On `day` and `before` (the earlier), in the communes of `communes` (a JSON array of
    /// codes; `None` for all).
    async fn household_counts(
        &self,
        day: Date,
        before: Date,
        communes: Option<&str>,
    ) -> Result<Vec<HouseholdCount>, PortError>;

    /// On `day` and `before`; the household's commune and category are those of its state on
    /// that day.
    async fn enrolled_counts(
        &self,
        day: Date,
        before: Date,
        communes: Option<&str>,
    ) -> Result<Vec<EnrolledCount>, PortError>;

    /// The reconciled and confirmed lists of the two periods.
    async fn line_counts(
        &self,
        period: &str,
        before: &str,
        communes: Option<&str>,
    ) -> Result<Vec<LineCount>, PortError>;

    /// Places on lists approved on or before `day`, and their hand-overs by then.
    async fn device_counts(&self, day: Date, communes: Option<&str>) -> Result<Vec<DeviceCount>, PortError>;

    /// The households that may be supported on `day` without qualifying that day (in a grace):
    /// those with a state starting after `since` and by `day`, and those whose state on `day`
    /// is in one of `categories` (a JSON array; a version that stopped covering them started
    /// since), in `communes` (a JSON array of codes; `None` for all) on some state.
    async fn grace_candidates(
        &self,
        since: Date,
        day: Date,
        categories: Option<&str>,
        communes: Option<&str>,
    ) -> Result<Vec<String>, PortError>;
}
