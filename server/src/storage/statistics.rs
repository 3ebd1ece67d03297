//! The programme's statistics, counted by the database: each query scans its table once for
//! the month and the month before, for the communes of a unit (or all), and counts per
//! category with one sum per category rather than grouping (SQLite groups by sorting every
//! row). The statements differ between dialects only in how they read the list of communes;
//! [`impl_statistics_store!`] writes a backend's implementation over its connections for large
//! reads (the method named `bulk`).

pub use crate::domain::ports::statistics::{DeviceCount, EnrolledCount, HouseholdCount, LineCount, StatisticsStore};

/// Counts per category on the two days, one column each.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub(super) struct CategoryColumns {
    pub(super) poor_now: i64,
    pub(super) near_poor_now: i64,
    pub(super) social_policy_now: i64,
    pub(super) meritorious_service_now: i64,
    pub(super) other_now: i64,
    pub(super) poor_before: i64,
    pub(super) near_poor_before: i64,
    pub(super) social_policy_before: i64,
    pub(super) meritorious_service_before: i64,
    pub(super) other_before: i64,
}

impl CategoryColumns {
    /// `(category, now, before)` per category.
    pub(super) fn rows(&self) -> [(&'static str, i64, i64); 5] {
        [
            ("POOR", self.poor_now, self.poor_before),
            ("NEAR_POOR", self.near_poor_now, self.near_poor_before),
            ("SOCIAL_POLICY", self.social_policy_now, self.social_policy_before),
            ("MERITORIOUS_SERVICE", self.meritorious_service_now, self.meritorious_service_before),
            ("OTHER", self.other_now, self.other_before),
        ]
    }
}

/// An operator's running lines per category.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(super) struct OperatorColumns {
    pub(super) operator: String,
    #[sqlx(flatten)]
    pub(super) counts: CategoryColumns,
}

/// One sum per category and day: `$cat` the category column, `$now` and `$before` the
/// conditions of each day.
macro_rules! per_category {
    ($cat:literal, $now:literal, $before:literal) => {
        concat!(
            "CAST(SUM(CASE WHEN ",
            $cat,
            " = 'POOR' AND ",
            $now,
            " THEN 1 ELSE 0 END) AS BIGINT) AS poor_now, ",
            "CAST(SUM(CASE WHEN ",
            $cat,
            " = 'NEAR_POOR' AND ",
            $now,
            " THEN 1 ELSE 0 END) AS BIGINT) AS near_poor_now, ",
            "CAST(SUM(CASE WHEN ",
            $cat,
            " = 'SOCIAL_POLICY' AND ",
            $now,
            " THEN 1 ELSE 0 END) AS BIGINT) AS social_policy_now, ",
            "CAST(SUM(CASE WHEN ",
            $cat,
            " = 'MERITORIOUS_SERVICE' AND ",
            $now,
            " THEN 1 ELSE 0 END) AS BIGINT) AS meritorious_service_now, ",
            "CAST(SUM(CASE WHEN ",
            $cat,
            " = 'OTHER' AND ",
            $now,
            " THEN 1 ELSE 0 END) AS BIGINT) AS other_now, ",
            "CAST(SUM(CASE WHEN ",
            $cat,
            " = 'POOR' AND ",
            $before,
            " THEN 1 ELSE 0 END) AS BIGINT) AS poor_before, ",
            "CAST(SUM(CASE WHEN ",
            $cat,
            " = 'NEAR_POOR' AND ",
            $before,
            " THEN 1 ELSE 0 END) AS BIGINT) AS near_poor_before, ",
            "CAST(SUM(CASE WHEN ",
            $cat,
            " = 'SOCIAL_POLICY' AND ",
            $before,
            " THEN 1 ELSE 0 END) AS BIGINT) AS social_policy_before, ",
            "CAST(SUM(CASE WHEN ",
            $cat,
            " = 'MERITORIOUS_SERVICE' AND ",
            $before,
            " THEN 1 ELSE 0 END) AS BIGINT) AS meritorious_service_before, ",
            "CAST(SUM(CASE WHEN ",
            $cat,
            " = 'OTHER' AND ",
            $before,
            " THEN 1 ELSE 0 END) AS BIGINT) AS other_before"
        )
    };
}
pub(super) use per_category;

/// Lines of one discrepancy code (codes are stored separated by spaces).
macro_rules! with_code {
    ($code:literal, $column:literal) => {
        // No code is part of another's name; most lines have none.
        concat!(
            "CAST(SUM(CASE WHEN l.codes <> '' AND l.codes LIKE '%",
            $code,
            "%' THEN 1 ELSE 0 END) AS BIGINT) AS ",
            $column
        )
    };
}
pub(super) use with_code;

/// The backend's implementation. `$open` and `$close` surround a parameter holding a JSON
/// array of commune codes to make the list `IN` reads.
macro_rules! impl_statistics_store {
    ($store:ty, bulk: $bulk:ident, communes: $open:literal, $close:literal) => {
        #[async_trait::async_trait]
        impl $crate::storage::statistics::StatisticsStore for $store {
            async fn grace_candidates(
                &self,
                since: time::Date,
                day: time::Date,
                categories: Option<&str>,
                communes: Option<&str>,
            ) -> Result<Vec<String>, PortError> {
                let rows: Vec<(String,)> = sqlx::query_as(concat!(
                    "SELECT DISTINCT household_code FROM household_versions \
                     WHERE ((valid_from > $1 AND valid_from <= $2) \
                     OR (CAST($3 AS TEXT) IS NOT NULL AND category IN ",
                    $open,
                    "$3",
                    $close,
                    " AND valid_from <= $2 AND (valid_to IS NULL OR valid_to > $2))) \
                     AND (CAST($4 AS TEXT) IS NULL OR commune_code IN ",
                    $open,
                    "$4",
                    $close,
                    ") ORDER BY household_code"
                ))
                .bind(since)
                .bind(day)
                .bind(categories)
                .bind(communes)
                .fetch_all(&mut *self.$bulk().await?)
                .await?;
                Ok(rows.into_iter().map(|(code,)| code).collect())
            }

            async fn household_counts(
                &self,
                day: time::Date,
                before: time::Date,
                communes: Option<&str>,
            ) -> Result<Vec<$crate::storage::statistics::HouseholdCount>, PortError> {
                use $crate::storage::statistics::{CategoryColumns, HouseholdCount};
                let c: CategoryColumns = sqlx::query_as(concat!(
                    "SELECT ",
                    $crate::storage::statistics::per_category!(
                        "category",
                        "(valid_from <= $1 AND (valid_to IS NULL OR valid_to > $1))",
                        "(valid_from <= $2 AND (valid_to IS NULL OR valid_to > $2))"
                    ),
                    " FROM household_versions \
                     WHERE removal_reason IS NULL AND valid_from <= $1 AND (valid_to IS NULL OR valid_to > $2) \
                     AND (CAST($3 AS TEXT) IS NULL OR commune_code IN ",
                    $open,
                    "$3",
                    $close,
                    ")"
                ))
                .bind(day)
                .bind(before)
                .bind(communes)
                .fetch_one(&mut *self.$bulk().await?)
                .await?;
                Ok(c.rows()
                    .into_iter()
                    .map(|(category, now, before)| HouseholdCount {
                        category: category.to_owned(),
                        now,
                        before,
                    })
                    .collect())
            }

            async fn enrolled_counts(
                &self,
                day: time::Date,
                before: time::Date,
                communes: Option<&str>,
            ) -> Result<Vec<$crate::storage::statistics::EnrolledCount>, PortError> {
                use $crate::storage::statistics::{EnrolledCount, OperatorColumns};
                // The states of the two days, each joined with the household's lines through the
                // index that carries what the count needs; grouped by operator only.
                let rows: Vec<OperatorColumns> = sqlx::query_as(concat!(
                    "SELECT e.operator, ",
                    $crate::storage::statistics::per_category!(
                        "v.category",
                        "(v.valid_from <= $1 AND (v.valid_to IS NULL OR v.valid_to > $1) \
                          AND e.start_date <= $1 AND (e.end_date IS NULL OR e.end_date > $1))",
                        "(v.valid_from <= $2 AND (v.valid_to IS NULL OR v.valid_to > $2) \
                          AND e.start_date <= $2 AND (e.end_date IS NULL OR e.end_date > $2))"
                    ),
                    " FROM household_versions v CROSS JOIN enrollments e \
                     WHERE e.household_code = v.household_code \
                     AND v.valid_from <= $1 AND (v.valid_to IS NULL OR v.valid_to > $2) \
                     AND e.start_date <= $1 AND (e.end_date IS NULL OR e.end_date > $2) \
                     AND (CAST($3 AS TEXT) IS NULL OR v.commune_code IN ",
                    $open,
                    "$3",
                    $close,
                    ") GROUP BY e.operator"
                ))
                .bind(day)
                .bind(before)
                .bind(communes)
                .fetch_all(&mut *self.$bulk().await?)
                .await?;
                Ok(rows
                    .iter()
                    .flat_map(|r| {
                        r.counts.rows().into_iter().map(|(category, now, before)| EnrolledCount {
                            operator: r.operator.clone(),
                                category: category.to_owned(),
                            now,
                            before,
                        })
                    })
                    .collect())
            }

            async fn line_counts(
                &self,
                period: &str,
                before: &str,
                communes: Option<&str>,
            ) -> Result<Vec<$crate::storage::statistics::LineCount>, PortError> {
                use $crate::storage::statistics::with_code;
                // Grouped by list (the order the lines are stored in), then joined with the lists.
                Ok(sqlx::query_as(concat!(
                    "SELECT u.operator, u.period, u.status, u.confirmed_scope, g.claims, \
                     g.amount, g.ok_claims, g.ok_amount, g.not_eligible, g.eligibility_ended, g.before_start, \
                     g.over_cap, g.not_enrolled, g.enrolment_mismatch, g.duplicate_within_operator, \
                     g.duplicate_across_operators, g.non_usage, g.unknown_subscriber \
                     FROM monthly_updates u CROSS JOIN (SELECT l.update_ref, \
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
                     AND (CAST($3 AS TEXT) IS NULL OR l.commune_code IN ",
                    $open,
                    "$3",
                    $close,
                    ") GROUP BY l.update_ref) g WHERE u.id = g.update_ref"
                ))
                .bind(period)
                .bind(before)
                .bind(communes)
                .fetch_all(&mut *self.$bulk().await?)
                .await?)
            }

            async fn device_counts(
                &self,
                day: time::Date,
                communes: Option<&str>,
            ) -> Result<Vec<$crate::storage::statistics::DeviceCount>, PortError> {
                Ok(sqlx::query_as(concat!(
                    "SELECT r.category, CAST(COUNT(*) AS BIGINT) AS allocated, \
                     CAST(SUM(CASE WHEN h.handed_over_on <= $1 THEN 1 ELSE 0 END) AS BIGINT) AS handed_over \
                     FROM device_recipients r \
                     JOIN device_allocations a ON a.id = r.allocation_id \
                     LEFT JOIN device_handovers h ON h.household_code = r.household_code \
                     WHERE a.status = 'APPROVED' AND a.approved_on <= $1 \
                     AND (CAST($2 AS TEXT) IS NULL OR r.commune_code IN ",
                    $open,
                    "$2",
                    $close,
                    ") GROUP BY r.category"
                ))
                .bind(day)
                .bind(communes)
                .fetch_all(&mut *self.$bulk().await?)
                .await?)
            }
        }
    };
}
pub(super) use impl_statistics_store;
