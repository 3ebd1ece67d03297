//! Storage of the policy versions and of the eligibility decisions given: rows, and the SQL
//! both dialects share. Bulk inserts of decisions and the set lookups of households differ by
//! dialect and live in each backend's module.

use time::{Date, OffsetDateTime};

use super::StorageError;
use crate::domain::{
    eligibility::{Facts, History, State},
    household::RemovalReason,
    policy::{PolicyRules, PolicyVersion, Withdrawal},
};

/// A stored policy version.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PolicyRow {
    pub version: i64,
    pub valid_from: Date,
    pub rules: String,
    pub recorded_by: Option<String>,
    pub recorded_at: Option<OffsetDateTime>,
    pub withdrawn_by: Option<String>,
    pub withdrawn_at: Option<OffsetDateTime>,
    pub withdrawal_reason: Option<String>,
}

impl PolicyRow {
    pub fn new(
        version: i64,
        valid_from: Date,
        rules: &PolicyRules,
        recorded_by: Option<String>,
        recorded_at: Option<OffsetDateTime>,
    ) -> Self {
        let rules = serde_json::to_string(rules).expect("policy rules serialise");
        Self {
            version,
            valid_from,
            rules,
            recorded_by,
            recorded_at,
            withdrawn_by: None,
            withdrawn_at: None,
            withdrawal_reason: None,
        }
    }

    pub fn into_version(self) -> Result<PolicyVersion, StorageError> {
        let rules: PolicyRules = serde_json::from_str(&self.rules)
            .map_err(|e| StorageError::Corrupt(format!("policy version {}: {e}", self.version)))?;
        Ok(PolicyVersion {
            version: self.version,
            valid_from: self.valid_from,
            valid_to: None,
            rules,
            recorded_by: self.recorded_by,
            recorded_at: self.recorded_at,
            withdrawal: match (self.withdrawn_at, self.withdrawal_reason) {
                (Some(at), Some(reason)) => Some(Withdrawal { by: self.withdrawn_by.unwrap_or_default(), at, reason }),
                _ => None,
            },
        })
    }
}

/// One decision as stored: what identifies it and who asked, and the answer as given.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DecisionRow {
    pub call_id: String,
    pub idx: i64,
    pub request_id: String,
    pub asked_by: String,
    pub decided_at: OffsetDateTime,
    /// `CITIZEN_ID`, `HOUSEHOLD_CODE` or `CERTIFICATE_NUMBER`.
    pub query_kind: String,
    pub query_value: String,
    pub as_of: Date,
    pub household_code: Option<String>,
    pub eligible: bool,
    pub policy_version: i64,
    /// The answer (JSON).
    pub body: String,
}

impl DecisionRow {
    /// `<call id>-<index>`.
    pub fn decision_id(&self) -> String {
        format!("{}-{}", self.call_id, self.idx)
    }
}

/// A run of consecutive decisions of one batch call, decided together, stored in one row.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DecisionRunRow {
    pub call_id: String,
    pub first_idx: i64,
    pub last_idx: i64,
    pub request_id: String,
    pub asked_by: String,
    pub decided_at: OffsetDateTime,
    /// How many decisions the run holds (questions that could not be asked have none).
    pub decisions: i64,
    /// The decisions (JSON array).
    pub body: String,
}

/// One state of a household that matched a lookup value at some time: every state of every
/// household the value ever matched.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StateRow {
    /// The value looked up.
    pub matched: String,
    pub household_code: String,
    pub valid_from: Date,
    pub valid_to: Option<Date>,
    pub removal_reason: Option<String>,
    pub data: String,
    /// The household's enrolments with any operator, ever: a JSON array of
    /// `[operator, start_date, end_date]` (`end_date` null while open); empty or NULL for none.
    pub holdings: Option<String>,
}

/// Groups matched states by the value looked up and the household: for each value, the
/// histories of its households, by code, each state oldest first.
pub fn histories_from_rows(mut rows: Vec<StateRow>) -> Result<Vec<(String, Vec<History>)>, StorageError> {
    rows.sort_unstable_by(|a, b| {
        (&a.matched, &a.household_code, a.valid_from).cmp(&(&b.matched, &b.household_code, b.valid_from))
    });
    let mut out: Vec<(String, Vec<History>)> = Vec::new();
    for row in rows {
        if out.last().is_none_or(|(v, _)| *v != row.matched) {
            out.push((row.matched.clone(), Vec::new()));
        }
        let histories = &mut out.last_mut().expect("pushed above").1;
        add_state(histories, row)?;
    }
    Ok(out)
}

/// Adds a state row to the histories: to the last one when it is the row's household's, else to
/// a new one. Rows of one household come together, oldest first.
pub(super) fn add_state(histories: &mut Vec<History>, row: StateRow) -> Result<(), StorageError> {
    let facts = Facts::from_stored(&row.data).map_err(|e| {
        StorageError::Corrupt(format!("stored state of {} from {}: {e}", row.household_code, row.valid_from))
    })?;
    let removal =
        row.removal_reason.as_deref().map(RemovalReason::parse).transpose().map_err(|e| {
            StorageError::Corrupt(format!("state of {} from {}: {e}", row.household_code, row.valid_from))
        })?;
    let state = State { valid_from: row.valid_from, valid_to: row.valid_to, removal, facts };
    if histories.last().is_none_or(|h| h.code != row.household_code) {
        let enrollments = match row.holdings.as_deref() {
            None | Some("[]") => Vec::new(),
            Some(json) => serde_json::from_str(json)
                .map_err(|e| StorageError::Corrupt(format!("enrolments of household {}: {e}", row.household_code)))?,
        };
        histories.push(History { code: row.household_code, states: Vec::new(), enrollments });
    }
    histories.last_mut().expect("pushed above").states.push(state);
    Ok(())
}

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

        pub(super) async fn policy_versions(conn: &mut $conn) -> Result<Vec<PolicyRow>, StorageError> {
            Ok(sqlx::query_as(elig::POLICY_VERSIONS).fetch_all(&mut *conn).await?)
        }

        /// Inserts `rows` when no version is stored; returns whether it did.
        pub(super) async fn seed_policy(conn: &mut $conn, rows: &[PolicyRow]) -> Result<bool, StorageError> {
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
        pub(super) async fn add_policy_version(conn: &mut $conn, row: &PolicyRow) -> Result<(), StorageError> {
            let done = sqlx::query(elig::INSERT_POLICY)
                .bind(row.version)
                .bind(row.valid_from)
                .bind(&row.rules)
                .bind(row.recorded_by.as_deref())
                .bind(row.recorded_at)
                .execute(&mut *conn)
                .await
                .map_err(StorageError::from_insert)?;
            if done.rows_affected() == 0 {
                return Err(StorageError::Precondition("a later policy version"));
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
        ) -> Result<bool, StorageError> {
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
        ) -> Result<Option<DecisionRow>, StorageError> {
            Ok(sqlx::query_as(elig::DECISION).bind(call_id).bind(idx).fetch_all(&mut *conn).await?.pop())
        }

        pub(super) async fn decision_run(
            conn: &mut $conn,
            call_id: &str,
            idx: i64,
        ) -> Result<Option<DecisionRunRow>, StorageError> {
            let run: Option<DecisionRunRow> =
                sqlx::query_as(elig::RUN_AT).bind(call_id).bind(idx).fetch_all(&mut *conn).await?.pop();
            Ok(run.filter(|r| r.last_idx >= idx))
        }

        /// Stores runs of batch decisions, a few hundred rows per statement.
        pub(super) async fn insert_runs(conn: &mut $conn, runs: &[DecisionRunRow]) -> Result<(), StorageError> {
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
