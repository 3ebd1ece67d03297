//! What the audit reader needs besides the chain itself: the calls that looked up a citizen
//! ID or a household code. Every statement reads the same in both dialects:
//! one implementation serves both backends.

use time::OffsetDateTime;

use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Type};

use super::backend::{Column, Param, Record, SqlStore};
use crate::domain::ports::PortError;

pub use crate::domain::ports::audit::{AuditReader, DecisionCall};

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

/// The smallest call id of a call that arrived at `at` or later: call ids begin with the time
/// in milliseconds as 12 hex digits (see `new_call_id`).
pub fn call_id_bound(at: OffsetDateTime) -> String {
    let millis = (at.unix_timestamp_nanos() / 1_000_000).clamp(0, 0xffff_ffff_ffff) as u64;
    crate::hex(&millis.to_be_bytes()[2..])
}

#[async_trait::async_trait]
impl<S> AuditReader for S
where
    S: SqlStore,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    usize: ColumnIndex<<S::Db as Database>::Row>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> &'q String: Encode<'q, S::Db> + Type<S::Db>,
    String: Param<S::Db>,
    bool: Param<S::Db>,
    i64: Param<S::Db> + Column<S::Db>,
    time::OffsetDateTime: Param<S::Db>,
    DecisionCall: Record<S::Db>,
    super::shared::AuditRow: Record<S::Db>,
{
    async fn subject_seqs(&self, kind: crate::audit::SubjectKind, value: &str) -> Result<Vec<i64>, PortError> {
        Ok(sqlx::query_scalar("SELECT seq FROM audit_subjects WHERE kind = $1 AND value = $2 ORDER BY seq")
            .bind(kind.as_str())
            .bind(value)
            .fetch_all(self.reader())
            .await?)
    }

    async fn decision_calls(
        &self,
        value: &str,
        answered: bool,
        from: time::OffsetDateTime,
        until: time::OffsetDateTime,
    ) -> Result<Vec<DecisionCall>, PortError> {
        use call_id_bound;
        // A call decides after it arrives, within a day.
        let first = call_id_bound(from - time::Duration::days(1));
        let last = call_id_bound(until + time::Duration::milliseconds(1));
        Ok(sqlx::query_as(
            "SELECT DISTINCT request_id, asked_by, decided_at FROM eligibility_decisions \
             WHERE call_id >= $1 AND call_id < $2 AND decided_at >= $3 AND decided_at < $4 \
             AND (query_value = $5 OR ($6 AND household_code = $5))",
        )
        .bind(first)
        .bind(last)
        .bind(from)
        .bind(until)
        .bind(value)
        .bind(answered)
        .fetch_all(self.reader())
        .await?)
    }

    async fn run_calls(
        &self,
        value: &str,
        answered: bool,
        from: time::OffsetDateTime,
        until: time::OffsetDateTime,
    ) -> Result<Vec<DecisionCall>, PortError> {
        use like_literal;
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
        .fetch_all(self.reader())
        .await?)
    }

    async fn audit_seq_of(&self, call: &DecisionCall) -> Result<Option<i64>, PortError> {
        Ok(sqlx::query_scalar(
            "SELECT seq FROM audit_log WHERE org_code = $1 AND at <= $2 AND at >= $3 AND request_id = $4 \
             ORDER BY at DESC LIMIT 1",
        )
        .bind(&call.asked_by)
        .bind(call.decided_at)
        .bind(call.decided_at - time::Duration::days(1))
        .bind(&call.request_id)
        .fetch_optional(self.reader())
        .await?)
    }

    async fn audit_records_at(&self, seqs: &[i64]) -> Result<Vec<crate::audit::AuditRecord>, PortError> {
        let mut out = Vec::with_capacity(seqs.len());
        for chunk in seqs.chunks(500) {
            let mut select = sqlx::QueryBuilder::<S::Db>::new(
                "SELECT seq, at, request_id, org_code, cert_fingerprint, method, outcome, detail, \
                 request_digest, prev_hash, hash, attached, decisions_call, person FROM audit_log WHERE seq IN (",
            );
            let mut list = select.separated(", ");
            for seq in chunk {
                list.push_bind(*seq);
            }
            select.push(") ORDER BY seq");
            let rows: Vec<super::shared::AuditRow> = select.build_query_as().fetch_all(self.reader()).await?;
            out.extend(rows.into_iter().map(crate::audit::AuditRecord::from));
        }
        out.sort_by_key(|r| r.seq);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::like_literal;

    #[test]
    fn like_patterns_match_their_text_only() {
        assert_eq!(like_literal("HH_1%\\"), "HH\\_1\\%\\\\");
        assert_eq!(like_literal("067080001234"), "067080001234");
    }

    #[test]
    fn call_id_bounds_sort_with_the_ids_of_their_time() {
        use time::macros::datetime;
        let at = datetime!(2025-06-01 10:00:00.123 UTC);
        let bound = super::call_id_bound(at);
        assert_eq!(bound.len(), 12);
        assert_eq!(u64::from_str_radix(&bound, 16).unwrap() as i128, at.unix_timestamp_nanos() / 1_000_000);
        assert!(super::call_id_bound(at - time::Duration::milliseconds(1)) < bound);
        assert_eq!(super::call_id_bound(datetime!(1960-01-01 0:00 UTC)), "000000000000");
    }
}
