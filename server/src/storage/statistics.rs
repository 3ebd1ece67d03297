//! The programme's statistics, counted by the database: each query scans its table once for
//! the month and the month before, grouped by commune, so that the caller sums the communes of
//! any unit. Every statement reads the same in both dialects; [`impl_statistics_store!`]
//! writes a backend's implementation from its bulk read pool.

use async_trait::async_trait;
use time::{Date, OffsetDateTime};

use super::StorageError;

/// Households on the list per commune and category, on the two days.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct HouseholdCount {
    pub commune_code: String,
    pub category: String,
    pub now: i64,
    pub before: i64,
}

/// Lines running per operator, commune and category of the household, on the two days.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct EnrolledCount {
    pub operator: String,
    pub commune_code: String,
    pub category: String,
    pub now: i64,
    pub before: i64,
}

/// Lines of the operators' live lists for a period, per operator, commune and list.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LineCount {
    pub operator: String,
    pub period: String,
    pub commune_code: Option<String>,
    /// `RECONCILED` or `CONFIRMED`.
    pub status: String,
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

/// Places on approved device lists per commune and category, and those handed over.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeviceCount {
    pub commune_code: String,
    pub category: String,
    pub allocated: i64,
    pub handed_over: i64,
}

#[async_trait]
pub trait StatisticsStore: Send + Sync {
    /// On `day` and `before` (the earlier).
    async fn household_counts(&self, day: Date, before: Date) -> Result<Vec<HouseholdCount>, StorageError>;

    /// On `day` and `before`; the household's commune and category are those of its state on
    /// that day.
    async fn enrolled_counts(&self, day: Date, before: Date) -> Result<Vec<EnrolledCount>, StorageError>;

    /// The reconciled and confirmed lists of the two periods.
    async fn line_counts(&self, period: &str, before: &str) -> Result<Vec<LineCount>, StorageError>;

    /// Lists approved before `until`, hand-overs on or before `day`.
    async fn device_counts(&self, day: Date, until: OffsetDateTime) -> Result<Vec<DeviceCount>, StorageError>;
}

/// The category of a stored household state, read from the start of its stored form (the
/// category is its first field), as one SQL expression over `$data`: what the register writes
/// into `household_versions.category` beside the data.
macro_rules! category_of {
    ($data:literal) => {
        concat!(
            "CASE WHEN ",
            $data,
            " LIKE '{\"category\":\"POOR\"%' THEN 'POOR' ",
            "WHEN ",
            $data,
            " LIKE '{\"category\":\"NEAR_POOR\"%' THEN 'NEAR_POOR' ",
            "WHEN ",
            $data,
            " LIKE '{\"category\":\"SOCIAL_POLICY\"%' THEN 'SOCIAL_POLICY' ",
            "WHEN ",
            $data,
            " LIKE '{\"category\":\"MERITORIOUS_SERVICE\"%' THEN 'MERITORIOUS_SERVICE' ",
            "ELSE 'OTHER' END"
        )
    };
}
pub(super) use category_of;

/// Lines of one discrepancy code (codes are stored separated by spaces).
macro_rules! with_code {
    ($code:literal, $column:literal) => {
        concat!(
            "CAST(SUM(CASE WHEN ' ' || l.codes || ' ' LIKE '% ",
            $code,
            " %' THEN 1 ELSE 0 END) AS BIGINT) AS ",
            $column
        )
    };
}
pub(super) use with_code;

macro_rules! impl_statistics_store {
    ($store:ty, bulk: $bulk:ident) => {
        #[async_trait::async_trait]
        impl $crate::storage::statistics::StatisticsStore for $store {
            async fn household_counts(
                &self,
                day: time::Date,
                before: time::Date,
            ) -> Result<Vec<$crate::storage::statistics::HouseholdCount>, StorageError> {
                // The inner query (kept apart by its LIMIT) hands the grouping only the commune,
                // the category and two flags.
                Ok(sqlx::query_as(
                    "SELECT commune_code, category, CAST(SUM(now) AS BIGINT) AS now, \
                     CAST(SUM(before) AS BIGINT) AS before FROM (SELECT commune_code, category, \
                     CASE WHEN valid_from <= $1 AND (valid_to IS NULL OR valid_to > $1) THEN 1 ELSE 0 END AS now, \
                     CASE WHEN valid_from <= $2 AND (valid_to IS NULL OR valid_to > $2) THEN 1 ELSE 0 END AS before \
                     FROM household_versions \
                     WHERE removal_reason IS NULL AND valid_from <= $1 AND (valid_to IS NULL OR valid_to > $2) \
                     LIMIT 1000000000000) s GROUP BY commune_code, category",
                )
                .bind(day)
                .bind(before)
                .fetch_all(&self.$bulk)
                .await?)
            }

            async fn enrolled_counts(
                &self,
                day: time::Date,
                before: time::Date,
            ) -> Result<Vec<$crate::storage::statistics::EnrolledCount>, StorageError> {
                // The states of the two days, each joined with the household's lines through the
                // index that carries what the count needs.
                Ok(sqlx::query_as(
                    "SELECT operator, commune_code, category, CAST(SUM(now) AS BIGINT) AS now, \
                     CAST(SUM(before) AS BIGINT) AS before FROM (SELECT e.operator, v.commune_code, v.category, \
                     CASE WHEN v.valid_from <= $1 AND (v.valid_to IS NULL OR v.valid_to > $1) \
                               AND e.start_date <= $1 AND (e.end_date IS NULL OR e.end_date > $1) \
                          THEN 1 ELSE 0 END AS now, \
                     CASE WHEN v.valid_from <= $2 AND (v.valid_to IS NULL OR v.valid_to > $2) \
                               AND e.start_date <= $2 AND (e.end_date IS NULL OR e.end_date > $2) \
                          THEN 1 ELSE 0 END AS before \
                     FROM household_versions v CROSS JOIN enrollments e \
                     WHERE e.household_code = v.household_code \
                     AND v.valid_from <= $1 AND (v.valid_to IS NULL OR v.valid_to > $2) \
                     AND e.start_date <= $1 AND (e.end_date IS NULL OR e.end_date > $2) \
                     LIMIT 1000000000000) s GROUP BY operator, commune_code, category",
                )
                .bind(day)
                .bind(before)
                .fetch_all(&self.$bulk)
                .await?)
            }

            async fn line_counts(
                &self,
                period: &str,
                before: &str,
            ) -> Result<Vec<$crate::storage::statistics::LineCount>, StorageError> {
                use $crate::storage::statistics::with_code;
                // Grouped by list and commune first (the lists are few), then joined with the lists.
                Ok(sqlx::query_as(concat!(
                    "SELECT u.operator, u.period, g.commune_code, u.status, u.confirmed_scope, g.claims, g.amount, \
                     g.ok_claims, g.ok_amount, g.not_eligible, g.eligibility_ended, g.before_start, g.over_cap, \
                     g.not_enrolled, g.enrolment_mismatch, g.duplicate_within_operator, \
                     g.duplicate_across_operators, g.non_usage, g.unknown_subscriber \
                     FROM monthly_updates u CROSS JOIN (SELECT l.update_ref, l.commune_code, \
                     CAST(SUM(CASE WHEN l.amount_claimed > 0 THEN 1 ELSE 0 END) AS BIGINT) AS claims, \
                     CAST(SUM(l.amount_claimed) AS BIGINT) AS amount, \
                     CAST(SUM(CASE WHEN l.amount_claimed > 0 AND l.codes = '' THEN 1 ELSE 0 END) AS BIGINT) \
                          AS ok_claims, \
                     CAST(SUM(CASE WHEN l.codes = '' THEN l.amount_claimed ELSE 0 END) AS BIGINT) AS ok_amount, ",
                    with_code!("NOT_ELIGIBLE", "not_eligible"),
                    ", ",
                    with_code!("ELIGIBILITY_ENDED", "eligibility_ended"),
                    ", ",
                    with_code!("BEFORE_START", "before_start"),
                    ", ",
                    with_code!("OVER_CAP", "over_cap"),
                    ", ",
                    with_code!("NOT_ENROLLED", "not_enrolled"),
                    ", ",
                    with_code!("ENROLMENT_MISMATCH", "enrolment_mismatch"),
                    ", ",
                    with_code!("DUPLICATE_WITHIN_OPERATOR", "duplicate_within_operator"),
                    ", ",
                    with_code!("DUPLICATE_ACROSS_OPERATORS", "duplicate_across_operators"),
                    ", ",
                    with_code!("NON_USAGE", "non_usage"),
                    ", ",
                    with_code!("UNKNOWN_SUBSCRIBER", "unknown_subscriber"),
                    " FROM monthly_lines l WHERE l.update_ref IN (SELECT id FROM monthly_updates \
                       WHERE period IN ($1, $2) AND status IN ('RECONCILED', 'CONFIRMED')) \
                     GROUP BY l.update_ref, l.commune_code) g \
                     WHERE u.id = g.update_ref"
                ))
                .bind(period)
                .bind(before)
                .fetch_all(&self.$bulk)
                .await?)
            }

            async fn device_counts(
                &self,
                day: time::Date,
                until: time::OffsetDateTime,
            ) -> Result<Vec<$crate::storage::statistics::DeviceCount>, StorageError> {
                Ok(sqlx::query_as(
                    "SELECT r.commune_code, r.category, CAST(COUNT(*) AS BIGINT) AS allocated, \
                     CAST(SUM(CASE WHEN h.handed_over_on <= $1 THEN 1 ELSE 0 END) AS BIGINT) AS handed_over \
                     FROM device_recipients r \
                     JOIN device_allocations a ON a.id = r.allocation_id \
                     LEFT JOIN device_handovers h ON h.household_code = r.household_code \
                     WHERE a.status = 'APPROVED' AND a.decided_at < $2 \
                     GROUP BY r.commune_code, r.category",
                )
                .bind(day)
                .bind(until)
                .fetch_all(&self.$bulk)
                .await?)
            }
        }
    };
}
pub(super) use impl_statistics_store;
