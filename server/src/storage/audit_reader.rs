//! What the audit reader needs besides the chain itself: the calls that looked up a citizen
//! ID or a household code. Every statement reads the same in both dialects;
//! [`impl_audit_reader!`] writes a backend's implementation from its read pool.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::StorageError;
use crate::audit::{AuditRecord, SubjectKind};

/// A call that gave eligibility decisions: its request id, who asked, and when it decided.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DecisionCall {
    pub request_id: String,
    pub asked_by: String,
    pub decided_at: OffsetDateTime,
}

/// `text` as a `LIKE` pattern that matches it exactly (with `ESCAPE '\'`).
pub fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[async_trait]
pub trait AuditReader: Send + Sync {
    /// Sequence numbers of the calls that noted this subject.
    async fn subject_seqs(&self, kind: SubjectKind, value: &str) -> Result<Vec<i64>, StorageError>;

    /// Calls whose single decisions were asked about `value` (any kind of question), or, with
    /// `answered`, named household `value` in their answer.
    async fn decision_calls(&self, value: &str, answered: bool) -> Result<Vec<DecisionCall>, StorageError>;

    /// Batch calls in `[from, until)` with a decision asked about `value` or answered with
    /// household `value` (`answered`).
    async fn run_calls(
        &self,
        value: &str,
        answered: bool,
        from: OffsetDateTime,
        until: OffsetDateTime,
    ) -> Result<Vec<DecisionCall>, StorageError>;

    /// The sequence number of a call's audit record, found from who made it and a time after
    /// it arrived (within a day).
    async fn audit_seq_of(&self, call: &DecisionCall) -> Result<Option<i64>, StorageError>;

    /// The records with these sequence numbers, in order.
    async fn audit_records_at(&self, seqs: &[i64]) -> Result<Vec<AuditRecord>, StorageError>;
}

macro_rules! impl_audit_reader {
    ($store:ty, $db:ty, read: $read:ident) => {
        #[async_trait::async_trait]
        impl $crate::storage::audit_reader::AuditReader for $store {
            async fn subject_seqs(
                &self,
                kind: $crate::audit::SubjectKind,
                value: &str,
            ) -> Result<Vec<i64>, StorageError> {
                Ok(sqlx::query_scalar("SELECT seq FROM audit_subjects WHERE kind = $1 AND value = $2 ORDER BY seq")
                    .bind(kind.as_str())
                    .bind(value)
                    .fetch_all(&self.$read)
                    .await?)
            }

            async fn decision_calls(
                &self,
                value: &str,
                answered: bool,
            ) -> Result<Vec<$crate::storage::audit_reader::DecisionCall>, StorageError> {
                let mut calls: Vec<$crate::storage::audit_reader::DecisionCall> = sqlx::query_as(
                    "SELECT DISTINCT request_id, asked_by, decided_at FROM eligibility_decisions WHERE query_value = $1",
                )
                .bind(value)
                .fetch_all(&self.$read)
                .await?;
                if answered {
                    // Not indexed: decisions are found by what was asked; this reads them all.
                    calls.extend(
                        sqlx::query_as(
                            "SELECT DISTINCT request_id, asked_by, decided_at FROM eligibility_decisions \
                             WHERE household_code = $1",
                        )
                        .bind(value)
                        .fetch_all(&self.$read)
                        .await?,
                    );
                }
                Ok(calls)
            }

            async fn run_calls(
                &self,
                value: &str,
                answered: bool,
                from: time::OffsetDateTime,
                until: time::OffsetDateTime,
            ) -> Result<Vec<$crate::storage::audit_reader::DecisionCall>, StorageError> {
                use $crate::storage::audit_reader::like_literal;
                // Entries carry the value asked as "v" and the household answered as "h".
                let quoted = serde_json::to_string(value).expect("a string serialises");
                let asked = format!("%\"v\":{}%", like_literal(&quoted));
                let household = if answered { format!("%\"h\":{}%", like_literal(&quoted)) } else { asked.clone() };
                Ok(sqlx::query_as(
                    "SELECT DISTINCT request_id, asked_by, decided_at FROM eligibility_decision_runs \
                     WHERE decided_at >= $1 AND decided_at < $2 \
                     AND (body LIKE $3 ESCAPE '\\' OR body LIKE $4 ESCAPE '\\')",
                )
                .bind(from)
                .bind(until)
                .bind(asked)
                .bind(household)
                .fetch_all(&self.$read)
                .await?)
            }

            async fn audit_seq_of(
                &self,
                call: &$crate::storage::audit_reader::DecisionCall,
            ) -> Result<Option<i64>, StorageError> {
                Ok(sqlx::query_scalar(
                    "SELECT seq FROM audit_log WHERE org_code = $1 AND at <= $2 AND at >= $3 AND request_id = $4 \
                     ORDER BY at DESC LIMIT 1",
                )
                .bind(&call.asked_by)
                .bind(call.decided_at)
                .bind(call.decided_at - time::Duration::days(1))
                .bind(&call.request_id)
                .fetch_optional(&self.$read)
                .await?)
            }

            async fn audit_records_at(&self, seqs: &[i64]) -> Result<Vec<$crate::audit::AuditRecord>, StorageError> {
                let mut out = Vec::with_capacity(seqs.len());
                for chunk in seqs.chunks(500) {
                    let mut select = sqlx::QueryBuilder::<$db>::new(
                        "SELECT seq, at, request_id, org_code, cert_fingerprint, method, outcome, detail, \
                         request_digest, prev_hash, hash FROM audit_log WHERE seq IN (",
                    );
                    let mut list = select.separated(", ");
                    for seq in chunk {
                        list.push_bind(*seq);
                    }
                    select.push(") ORDER BY seq");
                    let rows: Vec<super::shared::AuditRow> = select.build_query_as().fetch_all(&self.$read).await?;
                    out.extend(rows.into_iter().map($crate::audit::AuditRecord::from));
                }
                out.sort_by_key(|r| r.seq);
                Ok(out)
            }
        }
    };
}
pub(super) use impl_audit_reader;

#[cfg(test)]
mod tests {
    use super::like_literal;

    #[test]
    fn like_patterns_match_their_text_only() {
        assert_eq!(like_literal("HH_1%\\"), "HH\\_1\\%\\\\");
        assert_eq!(like_literal("067080001234"), "067080001234");
    }
}
