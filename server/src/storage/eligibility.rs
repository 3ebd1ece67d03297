//! Storage of the policy versions and of the eligibility decisions given: rows, and the SQL
//! both dialects share. Bulk inserts of decisions and the set lookups of households differ by
//! dialect: each backend's [`SqlStore::insert_decisions`] and [`SqlStore::MATCHING`].

use sqlx::{Database, Encode, Executor, IntoArguments, Type};
use time::{Date, OffsetDateTime};

use super::backend::{Param, Record, SqlStore, hold_table};
pub use crate::domain::ports::policy::{
    DecisionRun, MatchedState, StoredDecision, StoredPolicy, add_state, histories_from_states,
};
use crate::domain::ports::{Conflict, DecisionStore, PolicyStore, PortError};

/// How each backend finds, for a list of values (passed its own way), every state of every
/// household each value ever matched: rows of [`MatchedState`], in no particular order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatchingSql {
    pub(crate) citizen_id: &'static str,
    pub(crate) household_code: &'static str,
    pub(crate) certificate_number: &'static str,
}

impl MatchingSql {
    /// The statement for values of `kind`.
    pub(crate) fn of(&self, kind: crate::domain::eligibility::QueryKind) -> &'static str {
        use crate::domain::eligibility::QueryKind;
        match kind {
            QueryKind::CitizenId => self.citizen_id,
            QueryKind::HouseholdCode => self.household_code,
            QueryKind::CertificateNumber => self.certificate_number,
        }
    }
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
     as_of, household_code, eligible, policy_version, body, purged_by, purged_at FROM eligibility_decisions \
     WHERE call_id = $1 AND idx = $2";

/// The start of a multi-row insert of decision runs; `VALUES` follow.
pub(super) const RUN_INSERT: &str = "INSERT INTO eligibility_decision_runs (call_id, first_idx, last_idx, request_id, \
     asked_by, decided_at, decisions, body) ";

/// The run of a call that starts last at or before an index (it holds the index when it ends
/// at or after it).
pub(super) const RUN_AT: &str = "SELECT call_id, first_idx, last_idx, request_id, asked_by, decided_at, decisions, \
     body, purged_by, purged_at, body_digest FROM eligibility_decision_runs \
     WHERE call_id = $1 AND first_idx <= $2 ORDER BY first_idx DESC LIMIT 1";

/// One implementation for both backends; only whether a write must lock the versions' table
/// first differs ([`SqlStore::lock_table`]).
#[async_trait::async_trait]
impl<S> PolicyStore for S
where
    S: SqlStore,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> &'q String: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<&'q str>: Encode<'q, S::Db> + Type<S::Db>,
    i64: Param<S::Db>,
    Date: Param<S::Db>,
    OffsetDateTime: Param<S::Db>,
    Option<OffsetDateTime>: Param<S::Db>,
    (i64,): Record<S::Db>,
    StoredPolicy: Record<S::Db>,
{
    async fn policy_versions(&self) -> Result<Vec<StoredPolicy>, PortError> {
        Ok(sqlx::query_as(POLICY_VERSIONS).fetch_all(self.reader()).await?)
    }

    async fn seed_policy(&self, rows: &[StoredPolicy]) -> Result<bool, PortError> {
        let mut tx = self.begin_write().await?;
        // Hubs starting together on an empty database seed once.
        hold_table::<S>(&mut tx, "policy_versions").await?;
        let (n,): (i64,) = sqlx::query_as(COUNT_POLICY).fetch_one(&mut *tx).await?;
        if n > 0 {
            return Ok(false);
        }
        for row in rows {
            add_version::<S>(&mut tx, row).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn add_policy_version(&self, row: &StoredPolicy) -> Result<(), PortError> {
        let mut tx = self.begin_write().await?;
        hold_table::<S>(&mut tx, "policy_versions").await?;
        add_version::<S>(&mut tx, row).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn withdraw_policy_version(
        &self,
        version: i64,
        by: &str,
        at: OffsetDateTime,
        reason: &str,
        today: Date,
    ) -> Result<bool, PortError> {
        let done = sqlx::query(WITHDRAW_POLICY)
            .bind(version)
            .bind(by)
            .bind(at)
            .bind(reason)
            .bind(today)
            .execute(self.writer())
            .await?;
        Ok(S::rows_affected(&done) == 1)
    }
}

/// `Conflict` when the version does not follow every stored one.
async fn add_version<S>(conn: &mut <S::Db as Database>::Connection, row: &StoredPolicy) -> Result<(), PortError>
where
    S: SqlStore,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q String: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<&'q str>: Encode<'q, S::Db> + Type<S::Db>,
    i64: Param<S::Db>,
    Date: Param<S::Db>,
    Option<OffsetDateTime>: Param<S::Db>,
{
    let done = sqlx::query(INSERT_POLICY)
        .bind(row.version)
        .bind(row.valid_from)
        .bind(&row.rules)
        .bind(row.recorded_by.as_deref())
        .bind(row.recorded_at)
        .execute(&mut *conn)
        .await
        .map_err(PortError::from_insert)?;
    if S::rows_affected(&done) == 0 {
        return Err(PortError::Conflict(Conflict::LaterPolicyVersion));
    }
    Ok(())
}

/// One implementation for both backends; a batch call's decisions are large work, written on
/// a connection taken in turn ([`SqlStore::large_writer`]).
#[async_trait::async_trait]
impl<S> DecisionStore for S
where
    S: SqlStore,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    i64: Param<S::Db>,
    OffsetDateTime: Param<S::Db>,
    StoredDecision: Record<S::Db>,
    DecisionRun: Record<S::Db>,
{
    async fn record_decision_runs(&self, runs: &[DecisionRun]) -> Result<(), PortError> {
        let mut conn = self.large_writer().await?;
        let mut tx = sqlx::Connection::begin_with(&mut *conn, S::BEGIN).await?;
        // A few hundred rows per statement.
        for chunk in runs.chunks(64) {
            let mut insert = sqlx::QueryBuilder::new(RUN_INSERT);
            insert.push_values(chunk, |mut row, r: &DecisionRun| {
                row.push_bind(r.call_id.as_str())
                    .push_bind(r.first_idx)
                    .push_bind(r.last_idx)
                    .push_bind(r.request_id.as_str())
                    .push_bind(r.asked_by.as_str())
                    .push_bind(r.decided_at)
                    .push_bind(r.decisions)
                    .push_bind(r.body.as_str());
            });
            insert.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn decision(&self, call_id: &str, idx: i64) -> Result<Option<StoredDecision>, PortError> {
        Ok(sqlx::query_as(DECISION).bind(call_id).bind(idx).fetch_all(self.reader()).await?.pop())
    }

    async fn decision_run(&self, call_id: &str, idx: i64) -> Result<Option<DecisionRun>, PortError> {
        let run: Option<DecisionRun> =
            sqlx::query_as(RUN_AT).bind(call_id).bind(idx).fetch_all(self.reader()).await?.pop();
        Ok(run.filter(|r| r.last_idx >= idx))
    }
}
