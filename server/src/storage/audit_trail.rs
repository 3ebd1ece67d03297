//! What the audit tree, its checkpoints and its checks need from storage: the tree's stored
//! nodes and right edge, the signed checkpoints, what calls stored beside their records, and
//! whether the append-only guards are in place. One implementation serves both backends;
//! the statements read the same in both dialects but for the guards'
//! ([`SqlStore::AUDIT_GUARDS`]).

use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Type};

use super::backend::{Column, Param, Record, SqlStore};
use crate::domain::ports::PortError;

pub use crate::domain::ports::audit::{AuditTrail, NotedSubject, StoredCheckpoint};

/// The tables whose rows the trail covers: each must refuse changes and removals.
pub const GUARDED: [&str; 6] = [
    "audit_log",
    "audit_tree",
    "audit_checkpoints",
    "audit_subjects",
    "eligibility_decisions",
    "eligibility_decision_runs",
];

#[async_trait::async_trait]
impl<S> AuditTrail for S
where
    S: SqlStore,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    usize: ColumnIndex<<S::Db as Database>::Row>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    String: Param<S::Db> + Column<S::Db>,
    i64: Param<S::Db> + Column<S::Db>,
    Option<String>: Column<S::Db>,
    (i64, String): Record<S::Db>,
    (i64, String, Option<String>): Record<S::Db>,
    (i64, i64, String): Record<S::Db>,
    (String, String): Record<S::Db>,
    StoredCheckpoint: Record<S::Db>,
    NotedSubject: Record<S::Db>,
    crate::domain::ports::policy::StoredDecision: Record<S::Db>,
    crate::domain::ports::policy::DecisionRun: Record<S::Db>,
    Option<i64>: Param<S::Db>,
    time::OffsetDateTime: Param<S::Db>,
{
    async fn audit_edge(&self) -> Result<(i64, String, Option<String>), PortError> {
        Ok(sqlx::query_as("SELECT seq, hash, tree FROM audit_head WHERE id = 1").fetch_one(self.reader()).await?)
    }

    async fn audit_nodes(&self, level: u32, from: u64, to: u64) -> Result<Vec<(i64, String)>, PortError> {
        Ok(sqlx::query_as("SELECT idx, hash FROM audit_tree WHERE level = $1 AND idx >= $2 AND idx < $3 ORDER BY idx")
            .bind(i64::from(level))
            .bind(from as i64)
            .bind(to as i64)
            .fetch_all(self.reader())
            .await?)
    }

    async fn audit_node_ranges(&self, ranges: &[(u32, u64, u64)]) -> Result<Vec<(i64, i64, String)>, PortError> {
        use std::fmt::Write as _;
        if ranges.is_empty() {
            return Ok(Vec::new());
        }
        // Built from integers only: nothing a caller sends reaches the text. One read
        // for a whole proof instead of one per subtree (a few dozen round trips on
        // PostgreSQL; docs/BENCHMARKS.md).
        let mut sql = String::from("SELECT CAST(level AS BIGINT), idx, hash FROM audit_tree WHERE ");
        for (i, (level, from, to)) in ranges.iter().enumerate() {
            let or = if i == 0 { "" } else { " OR " };
            let _ = write!(sql, "{or}(level = {level} AND idx >= {from} AND idx < {to})");
        }
        Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_all(self.reader()).await?)
    }

    async fn audit_nodes_all(&self, after: (u32, u64), limit: u32) -> Result<Vec<(i64, i64, String)>, PortError> {
        Ok(sqlx::query_as(
            "SELECT CAST(level AS BIGINT), idx, hash FROM audit_tree \
             WHERE level > $1 OR (level = $1 AND idx > $2) ORDER BY level, idx LIMIT $3",
        )
        .bind(i64::from(after.0))
        .bind(after.1 as i64)
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?)
    }

    async fn audit_subjects_between(&self, after: i64, last: i64) -> Result<Vec<NotedSubject>, PortError> {
        Ok(sqlx::query_as("SELECT seq, kind, value FROM audit_subjects WHERE seq > $1 AND seq <= $2 ORDER BY seq")
            .bind(after)
            .bind(last)
            .fetch_all(self.reader())
            .await?)
    }

    async fn decisions_between(
        &self,
        first: &str,
        last: &str,
    ) -> Result<Vec<crate::storage::eligibility::StoredDecision>, PortError> {
        Ok(sqlx::query_as(
            "SELECT call_id, idx, request_id, asked_by, decided_at, query_kind, query_value, as_of, \
             household_code, eligible, policy_version, body, purged_by, purged_at FROM eligibility_decisions \
             WHERE call_id >= $1 AND call_id <= $2",
        )
        .bind(first)
        .bind(last)
        .fetch_all(self.reader())
        .await?)
    }

    async fn runs_of(
        &self,
        call_id: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<crate::storage::eligibility::DecisionRun>, PortError> {
        Ok(sqlx::query_as(
            "SELECT call_id, first_idx, last_idx, request_id, asked_by, decided_at, decisions, body, purged_by, \
             purged_at, body_digest FROM eligibility_decision_runs WHERE call_id = $1 AND first_idx > $2 ORDER BY first_idx LIMIT $3",
        )
        .bind(call_id)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?)
    }

    async fn checkpoints_after(&self, after: i64, limit: u32) -> Result<Vec<StoredCheckpoint>, PortError> {
        Ok(sqlx::query_as(
            "SELECT tree_size, root_hash, signed_at, key_id, note FROM audit_checkpoints \
             WHERE tree_size > $1 ORDER BY tree_size LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?)
    }

    async fn checkpoint(&self, size: Option<i64>) -> Result<Option<StoredCheckpoint>, PortError> {
        Ok(sqlx::query_as(
            "SELECT tree_size, root_hash, signed_at, key_id, note FROM audit_checkpoints \
             WHERE CAST($1 AS BIGINT) IS NULL OR tree_size = $1 ORDER BY tree_size DESC LIMIT 1",
        )
        .bind(size)
        .fetch_optional(self.reader())
        .await?)
    }

    async fn insert_checkpoint(&self, row: &StoredCheckpoint) -> Result<bool, PortError> {
        // Only over records the trail still holds: the head is read again in the statement
        // that stores it, so a trail cut short after the root was read gets no checkpoint.
        let done = sqlx::query(
            "INSERT INTO audit_checkpoints (tree_size, root_hash, signed_at, key_id, note) \
             SELECT $1, $2, $3, $4, $5 FROM audit_head WHERE id = 1 AND seq >= $1 ON CONFLICT DO NOTHING",
        )
        .bind(row.tree_size)
        .bind(&row.root_hash)
        .bind(row.signed_at)
        .bind(&row.key_id)
        .bind(&row.note)
        .execute(self.writer())
        .await?;
        Ok(S::rows_affected(&done) == 1)
    }

    async fn missing_guards(&self) -> Result<Vec<String>, PortError> {
        let found: Vec<(String, String)> = sqlx::query_as(S::AUDIT_GUARDS).fetch_all(self.reader()).await?;
        let mut missing = Vec::new();
        for table in GUARDED {
            for kind in ["UPDATE", "DELETE"] {
                if !found.iter().any(|(t, k)| t == table && k == kind) {
                    missing.push(format!("{table} ({kind})"));
                }
            }
        }
        Ok(missing)
    }
}
