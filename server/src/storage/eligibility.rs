//! Storage of the policy versions and of the eligibility decisions given: rows, and the SQL
//! both dialects share. Bulk inserts of decisions and the set lookups of households differ by
//! dialect and live in each backend's module.

pub use crate::domain::ports::policy::{
    DecisionRow, DecisionRunRow, PolicyRow, StateRow, add_state, histories_from_rows,
};

/// How each backend finds, for a list of values (passed its own way), every state of every
/// household each value ever matched: rows of [`StateRow`], in no particular order.
#[derive(Debug, Clone, Copy)]
pub(super) struct MatchingSql {
    pub(super) citizen_id: &'static str,
    pub(super) household_code: &'static str,
    pub(super) certificate_number: &'static str,
}

pub(super) const POLICY_VERSIONS: &str = "SELECT version, valid_from, rules, recorded_by, recorded_at, withdrawn_by, \
     withdrawn_at, withdrawal_reason FROM policy_versions ORDER BY version";

/// Withdraws a version that has not taken effect by `$5` (today) and is not withdrawn yet.
pub(super) const WITHDRAW_POLICY: &str = "UPDATE policy_versions SET withdrawn_by = $2, withdrawn_at = $3, \
     withdrawal_reason = $4 WHERE version = $1 AND withdrawn_at IS NULL AND valid_from > $5";

pub(super) const COUNT_POLICY: &str = "SELECT COUNT(*) FROM policy_versions";

/// Inserts a version only when it follows every stored one.
pub(super) const INSERT_POLICY: &str = "INSERT INTO policy_versions (version, valid_from, rules, recorded_by, \
     recorded_at) SELECT $1, $2, $3, $4, $5 \
     WHERE NOT EXISTS (SELECT 1 FROM policy_versions WHERE version >= $1 \
     OR (valid_from >= $2 AND withdrawn_at IS NULL))";

/// The start of a multi-row insert of decisions; `VALUES` follow.
pub(super) const DECISION_INSERT: &str = "INSERT INTO eligibility_decisions (call_id, idx, request_id, asked_by, \
     decided_at, query_kind, query_value, as_of, household_code, eligible, policy_version, body) ";

pub(super) const DECISION: &str = "SELECT call_id, idx, request_id, asked_by, decided_at, query_kind, query_value, \
     as_of, household_code, eligible, policy_version, body FROM eligibility_decisions \
     WHERE call_id = $1 AND idx = $2";

/// The start of a multi-row insert of decision runs; `VALUES` follow.
pub(super) const RUN_INSERT: &str = "INSERT INTO eligibility_decision_runs (call_id, first_idx, last_idx, request_id, \
     asked_by, decided_at, decisions, body) ";

/// The run of a call that starts last at or before an index (it holds the index when it ends
/// at or after it).
pub(super) const RUN_AT: &str = "SELECT call_id, first_idx, last_idx, request_id, asked_by, decided_at, decisions, \
     body FROM eligibility_decision_runs WHERE call_id = $1 AND first_idx <= $2 ORDER BY first_idx DESC LIMIT 1";

/// Writes the policy and decision queries whose SQL both dialects share, for a connection type.
macro_rules! eligibility_queries {
    ($conn:ty) => {
        use $crate::storage::eligibility::{self as elig, DecisionRow, DecisionRunRow, PolicyRow};

        pub(super) async fn policy_versions(conn: &mut $conn) -> Result<Vec<PolicyRow>, PortError> {
            Ok(sqlx::query_as(elig::POLICY_VERSIONS).fetch_all(&mut *conn).await?)
        }

        /// Inserts `rows` when no version is stored; returns whether it did.
        pub(super) async fn seed_policy(conn: &mut $conn, rows: &[PolicyRow]) -> Result<bool, PortError> {
            let (n,): (i64,) = sqlx::query_as(elig::COUNT_POLICY).fetch_one(&mut *conn).await?;
            if n > 0 {
                return Ok(false);
            }
            for row in rows {
                add_policy_version(&mut *conn, row).await?;
            }
            Ok(true)
        }

        /// `Precondition` when the version does not follow every stored one.
        pub(super) async fn add_policy_version(conn: &mut $conn, row: &PolicyRow) -> Result<(), PortError> {
            let done = sqlx::query(elig::INSERT_POLICY)
                .bind(row.version)
                .bind(row.valid_from)
                .bind(&row.rules)
                .bind(row.recorded_by.as_deref())
                .bind(row.recorded_at)
                .execute(&mut *conn)
                .await
                .map_err(PortError::from_insert)?;
            if done.rows_affected() == 0 {
                return Err(PortError::Conflict($crate::domain::ports::Conflict::LaterPolicyVersion));
            }
            Ok(())
        }

        /// Whether the version was withdrawn (it had not taken effect by `today`, nor been
        /// withdrawn before).
        pub(super) async fn withdraw_policy_version(
            conn: &mut $conn,
            version: i64,
            by: &str,
            at: time::OffsetDateTime,
            reason: &str,
            today: time::Date,
        ) -> Result<bool, PortError> {
            let done = sqlx::query(elig::WITHDRAW_POLICY)
                .bind(version)
                .bind(by)
                .bind(at)
                .bind(reason)
                .bind(today)
                .execute(&mut *conn)
                .await?;
            Ok(done.rows_affected() == 1)
        }

        pub(super) async fn decision(
            conn: &mut $conn,
            call_id: &str,
            idx: i64,
        ) -> Result<Option<DecisionRow>, PortError> {
            Ok(sqlx::query_as(elig::DECISION).bind(call_id).bind(idx).fetch_all(&mut *conn).await?.pop())
        }

        pub(super) async fn decision_run(
            conn: &mut $conn,
            call_id: &str,
            idx: i64,
        ) -> Result<Option<DecisionRunRow>, PortError> {
            let run: Option<DecisionRunRow> =
                sqlx::query_as(elig::RUN_AT).bind(call_id).bind(idx).fetch_all(&mut *conn).await?.pop();
            Ok(run.filter(|r| r.last_idx >= idx))
        }

        /// Stores runs of batch decisions, a few hundred rows per statement.
        pub(super) async fn insert_runs(conn: &mut $conn, runs: &[DecisionRunRow]) -> Result<(), PortError> {
            for chunk in runs.chunks(64) {
                let mut insert = sqlx::QueryBuilder::new(elig::RUN_INSERT);
                insert.push_values(chunk, |mut row, r: &DecisionRunRow| {
                    row.push_bind(r.call_id.as_str())
                        .push_bind(r.first_idx)
                        .push_bind(r.last_idx)
                        .push_bind(r.request_id.as_str())
                        .push_bind(r.asked_by.as_str())
                        .push_bind(r.decided_at)
                        .push_bind(r.decisions)
                        .push_bind(r.body.as_str());
                });
                insert.build().execute(&mut *conn).await?;
            }
            Ok(())
        }
    };
}
pub(super) use eligibility_queries;
