//! Storage of what the retention policy lets go (see [`RetentionStore`]). Every statement
//! reads the same in both dialects; what differs (waiting for a batch being applied, the
//! register's change log) comes from [`SqlStore`].

use sqlx::{AssertSqlSafe, ColumnIndex, Database, Encode, Executor, IntoArguments, Type};
use time::{Date, OffsetDateTime};

use super::backend::{Column, Param, Record, SqlStore};
use crate::domain::ports::PortError;

pub use crate::domain::ports::retention::{Cutoffs, Expired, PurgeMark, PurgedHousehold, RetentionStore};

/// Households whose last state is a removal that took effect before `$1`.
const REMOVED_LONG_AGO: &str = "FROM household_versions v WHERE v.valid_to IS NULL \
     AND v.removal_reason IS NOT NULL AND v.valid_from < $1";

/// One implementation for both backends.
#[async_trait::async_trait]
impl<S> RetentionStore for S
where
    S: SqlStore,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> &'q String: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<&'q str>: Encode<'q, S::Db> + Type<S::Db>,
    String: Column<S::Db>,
    Option<String>: Column<S::Db>,
    i64: Param<S::Db> + Column<S::Db>,
    Date: Param<S::Db> + Column<S::Db>,
    OffsetDateTime: Param<S::Db> + Column<S::Db>,
    usize: ColumnIndex<<S::Db as Database>::Row>,
    (i64,): Record<S::Db>,
    (i64, String): Record<S::Db>,
    (String, String): Record<S::Db>,
    (String, Date, Option<String>): Record<S::Db>,
    PurgedHousehold: Record<S::Db>,
{
    async fn expired(&self, c: &Cutoffs) -> Result<Expired, PortError> {
        let (decisions,): (i64,) =
            sqlx::query_as("SELECT COUNT(*) FROM eligibility_decisions WHERE purged_by IS NULL AND decided_at < $1")
                .bind(c.decisions_before)
                .fetch_one(self.reader())
                .await?;
        let (runs,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM eligibility_decision_runs WHERE purged_by IS NULL AND decided_at < $1",
        )
        .bind(c.decisions_before)
        .fetch_one(self.reader())
        .await?;
        let (samples,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM inspection_samples s JOIN inspections i ON i.id = s.inspection_id \
             WHERE s.purged_by IS NULL AND i.status = 'CLOSED' AND i.closed_at < $1",
        )
        .bind(c.samples_closed_before)
        .fetch_one(self.reader())
        .await?;
        let (households,): (i64,) = sqlx::query_as(AssertSqlSafe(format!("SELECT COUNT(*) {REMOVED_LONG_AGO}")))
            .bind(c.households_removed_before)
            .fetch_one(&mut *self.bulk().await?)
            .await?;
        Ok(Expired {
            decisions: decisions as u64,
            runs: runs as u64,
            samples: samples as u64,
            households: households as u64,
        })
    }

    async fn purge_decisions(
        &self,
        before: OffsetDateTime,
        mark: &PurgeMark<'_>,
        limit: u32,
    ) -> Result<(u64, u64), PortError> {
        let mut tx = self.begin_write().await?;
        let singles = sqlx::query(
            "UPDATE eligibility_decisions SET query_value = '', body = '', purged_by = $1, purged_at = $2 \
             WHERE purged_by IS NULL AND id IN (SELECT id FROM eligibility_decisions WHERE purged_by IS NULL \
             AND decided_at < $3 ORDER BY decided_at LIMIT $4)",
        )
        .bind(mark.request_id)
        .bind(mark.at)
        .bind(before)
        .bind(i64::from(limit))
        .execute(&mut *tx)
        .await?;
        // A run keeps the digest of its answers: its call's record verifies as before.
        let runs: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, body FROM eligibility_decision_runs WHERE purged_by IS NULL AND decided_at < $1 \
             ORDER BY decided_at LIMIT $2",
        )
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let mut purged_runs = 0;
        for (id, body) in &runs {
            // Another purge at the same time may have taken it first.
            let done = sqlx::query(
                "UPDATE eligibility_decision_runs SET body = '', body_digest = $1, purged_by = $2, purged_at = $3 \
                 WHERE id = $4 AND purged_by IS NULL",
            )
            .bind(&crate::audit::answers_digest(body))
            .bind(mark.request_id)
            .bind(mark.at)
            .bind(*id)
            .execute(&mut *tx)
            .await?;
            purged_runs += S::rows_affected(&done);
        }
        tx.commit().await?;
        Ok((S::rows_affected(&singles), purged_runs))
    }

    async fn purge_samples(&self, closed_before: OffsetDateTime, mark: &PurgeMark<'_>) -> Result<u64, PortError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE inspection_samples SET body = '[]', purged_by = $1, purged_at = $2 \
             WHERE purged_by IS NULL AND inspection_id IN \
             (SELECT id FROM inspections WHERE status = 'CLOSED' AND closed_at < $3)",
        )
        .bind(mark.request_id)
        .bind(mark.at)
        .bind(closed_before)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(S::rows_affected(&done))
    }

    async fn purge_households(
        &self,
        removed_before: Date,
        mark: &PurgeMark<'_>,
        limit: u32,
    ) -> Result<Vec<PurgedHousehold>, PortError> {
        let mut tx = self.begin_write().await?;
        if let Some(lock) = S::LOCK_REGISTER {
            sqlx::query(lock).execute(&mut *tx).await?;
        }
        let found: Vec<(String, Date, Option<String>)> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT v.household_code, v.valid_from, v.removal_reason {REMOVED_LONG_AGO} \
             ORDER BY v.household_code LIMIT $2"
        )))
        .bind(removed_before)
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let mut purged = Vec::with_capacity(found.len());
        for (code, removed_on, removal_reason) in found {
            // The citizen IDs its states named: the index from them to the household goes too.
            let states: Vec<(String, String)> = sqlx::query_as(
                "SELECT data, household_code FROM household_versions WHERE household_code = $1 \
                 UNION ALL SELECT data, household_code FROM household_versions_superseded WHERE household_code = $1",
            )
            .bind(&code)
            .fetch_all(&mut *tx)
            .await?;
            let mut citizens = std::collections::BTreeSet::new();
            for (data, _) in &states {
                citizens.extend(citizen_ids(data)?);
            }
            for citizen in &citizens {
                sqlx::query("DELETE FROM citizen_households WHERE citizen_id = $1 AND household_code = $2")
                    .bind(citizen)
                    .bind(&code)
                    .execute(&mut *tx)
                    .await?;
            }
            for table in ["household_versions", "household_versions_superseded"] {
                sqlx::query(AssertSqlSafe(format!("DELETE FROM {table} WHERE household_code = $1")))
                    .bind(&code)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query(
                "INSERT INTO purged_households (household_code, removed_on, removal_reason, purged_by, purged_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(&code)
            .bind(removed_on)
            .bind(removal_reason.as_deref())
            .bind(mark.request_id)
            .bind(mark.at)
            .execute(&mut *tx)
            .await?;
            if let Some(note) = S::NOTE_CHANGE {
                sqlx::query(note).bind(&code).execute(&mut *tx).await?;
            }
            purged.push(PurgedHousehold {
                household_code: code,
                removed_on,
                removal_reason,
                purged_by: mark.request_id.to_owned(),
                purged_at: mark.at,
            });
        }
        tx.commit().await?;
        if !purged.is_empty() {
            self.register_written();
        }
        Ok(purged)
    }

    async fn purged_household(&self, code: &str) -> Result<Option<PurgedHousehold>, PortError> {
        Ok(sqlx::query_as(
            "SELECT household_code, removed_on, removal_reason, purged_by, purged_at FROM purged_households \
             WHERE household_code = $1",
        )
        .bind(code)
        .fetch_optional(self.reader())
        .await?)
    }
}

/// The citizen IDs of a household state's members, as stored (`{"members": [[citizen_id,
/// full name, relationship, birth year], …]}`, see `HouseholdMember`).
fn citizen_ids(data: &str) -> Result<Vec<String>, PortError> {
    let value: serde_json::Value =
        serde_json::from_str(data).map_err(|e| PortError::Corrupt(format!("a household state's data: {e}")))?;
    Ok(value["members"]
        .as_array()
        .map(|members| members.iter().filter_map(|m| m[0].as_str().map(str::to_owned)).collect())
        .unwrap_or_default())
}
