//! SQL that reads the same in SQLite and PostgreSQL, and the rows it returns.
//!
//! The statements are constants both backends run; what runs them the same way on both is
//! generic over the backend (here the audit log's reads, [`AuditReads`]).
//!
//! Single-row reads use `fetch_all`, never `fetch_one`/`fetch_optional`: on SQLite a statement
//! that is not stepped to its end keeps its read snapshot open on the pooled connection, and
//! that connection would go on serving data older than later commits.

use time::OffsetDateTime;

use super::{
    PortError,
    backend::{Param, Record},
};
use crate::{
    audit::{AuditEntry, AuditRecord},
    domain::decision::Table,
    domain::member::{CertificateUse, DisplayName, Member, MemberStatus, OrgCode, Role, UnitCode},
};

pub(super) const GET_MEMBER: &str = "SELECT code, display_name, role, unit_code, status, status_reason, \
     created_at, updated_at FROM members WHERE code = $1";

pub(super) const LIST_MEMBERS: &str = "SELECT code, display_name, role, unit_code, status, status_reason, \
     created_at, updated_at FROM members \
     WHERE code > $1 AND ($2 IS NULL OR role = $2) AND ($3 IS NULL OR status = $3) \
     ORDER BY code LIMIT $4";

pub(super) const CERTIFICATES_BETWEEN: &str = "SELECT member_code, fingerprint, first_seen, last_seen \
     FROM member_certificates WHERE member_code >= $1 AND member_code <= $2 \
     ORDER BY member_code, first_seen, fingerprint";

pub(super) const INSERT_MEMBER: &str = "INSERT INTO members \
     (code, display_name, role, unit_code, status, status_reason, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, 'ACTIVE', NULL, $5, $5)";

/// Writes a member's new state; the rule it must keep ([`keeps_an_active_ict`]) is checked
/// before, in the same transaction.
///
/// [`keeps_an_active_ict`]: crate::domain::members::keeps_an_active_ict
pub(super) const UPDATE_MEMBER: &str = "UPDATE members SET display_name = $2, role = $3, unit_code = $4, \
     status = $5, status_reason = $6, updated_at = $7 WHERE code = $1";

pub(super) const MEMBER_ROLE_STATUS: &str = "SELECT role, status FROM members WHERE code = $1";

pub(super) const OTHER_ACTIVE_ICT: &str =
    "SELECT COUNT(*) FROM members WHERE role = 'ICT' AND status = 'ACTIVE' AND code <> $1";

pub(super) const COUNT_ICT: &str = "SELECT COUNT(*) FROM members WHERE role = 'ICT'";

pub(super) const RECORD_CERTIFICATE: &str = "INSERT INTO member_certificates \
     (member_code, fingerprint, first_seen, last_seen) VALUES ($1, $2, $3, $3) \
     ON CONFLICT (member_code, fingerprint) DO UPDATE SET last_seen = excluded.last_seen";

pub(super) const AUDIT_COLUMNS: &str = "seq, at, request_id, org_code, cert_fingerprint, method, outcome, detail, \
     request_digest, prev_hash, hash, attached, decisions_call, person";

pub(super) const AUDIT_RECORDS: &str = "SELECT seq, at, request_id, org_code, cert_fingerprint, method, \
     outcome, detail, request_digest, prev_hash, hash, attached, decisions_call, person FROM audit_log WHERE seq > $1 \
     ORDER BY seq LIMIT $2";

/// Audit records after a sequence number that pass a filter (see [`crate::storage::AuditFilter`]).
pub(super) const QUERY_AUDIT: &str = "SELECT seq, at, request_id, org_code, cert_fingerprint, method, \
     outcome, detail, request_digest, prev_hash, hash, attached, decisions_call, person FROM audit_log \
     WHERE seq > $1 AND at >= $2 AND at < $3 \
     AND (CAST($4 AS TEXT) IS NULL OR org_code = $4) \
     AND (CAST($5 AS TEXT) IS NULL OR method = $5) \
     AND (CAST($6 AS TEXT) IS NULL OR substr(method, 1, length($6)) = $6) \
     AND (CAST($7 AS TEXT) IS NULL OR outcome = $7) \
     ORDER BY seq LIMIT $8";

pub(super) const AUDIT_HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1";

/// The chain head with the tree's right edge.
pub(super) const AUDIT_HEAD_TREE: &str = "SELECT seq, hash, tree FROM audit_head WHERE id = 1";

pub(super) const SET_AUDIT_HEAD: &str = "UPDATE audit_head SET seq = $1, hash = $2, tree = $3 WHERE id = 1";

#[derive(sqlx::FromRow)]
pub(super) struct MemberRow {
    code: String,
    display_name: String,
    role: String,
    unit_code: Option<String>,
    status: String,
    status_reason: Option<String>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
pub(super) struct CertificateRow {
    pub(super) member_code: String,
    fingerprint: String,
    first_seen: OffsetDateTime,
    last_seen: OffsetDateTime,
}

#[derive(sqlx::FromRow)]
pub(super) struct AuditRow {
    seq: i64,
    at: OffsetDateTime,
    request_id: String,
    org_code: Option<String>,
    cert_fingerprint: Option<String>,
    method: String,
    outcome: String,
    detail: String,
    request_digest: String,
    prev_hash: String,
    hash: String,
    attached: Option<String>,
    decisions_call: Option<String>,
    person: Option<String>,
}

impl AuditRow {
    pub(super) fn seq(&self) -> i64 {
        self.seq
    }
}

/// The tree's right edge as the chain head stores it, checked against the head's record count.
/// A decision table ([`Table`]) as one SQL `CASE` giving the outcome's stored name, so that
/// storage runs over a whole set the very rule the domain evaluates on one case. `fact` gives
/// each fact's SQL condition; a condition that is NULL (a column of a row not joined) counts as
/// false, as [`Table::decide`] would take a fact it cannot tell (hence `IS NOT TRUE`, never
/// `NOT`, for a fact that must not hold).
pub(super) fn case_sql<F: Copy, O: Copy>(
    table: &Table<F, O>,
    fact: impl Fn(F) -> &'static str,
    name: impl Fn(O) -> &'static str,
) -> String {
    let mut sql = String::from("CASE");
    for rule in table.rules {
        let conditions: Vec<String> = rule
            .when
            .iter()
            .map(|&(f, value)| if value { format!("({})", fact(f)) } else { format!("({}) IS NOT TRUE", fact(f)) })
            .collect();
        sql.push_str(&format!(" WHEN {} THEN '{}'", conditions.join(" AND "), name(rule.then)));
    }
    sql.push_str(&format!(" ELSE '{}' END", name(table.otherwise)));
    sql
}

pub(super) fn tree_edge(text: &str, seq: i64) -> Result<crate::audit::merkle::CompactRange, PortError> {
    let range = crate::audit::merkle::CompactRange::decode(text)
        .map_err(|e| PortError::Corrupt(format!("the audit tree's edge: {e}")))?;
    if range.size() != seq as u64 {
        return Err(PortError::Corrupt(format!(
            "the audit tree's edge covers {} records, the chain head {seq}",
            range.size()
        )));
    }
    Ok(range)
}

fn corrupt(what: &str, value: &str, err: String) -> PortError {
    PortError::Corrupt(format!("{what} {value:?}: {err}"))
}

impl MemberRow {
    pub(super) fn into_member(self, certificates: Vec<CertificateUse>) -> Result<Member, PortError> {
        let code = OrgCode::parse(&self.code).map_err(|e| corrupt("member code", &self.code, e))?;
        Ok(Member {
            display_name: DisplayName::parse(&self.display_name)
                .map_err(|e| corrupt("display name of", &self.code, e))?,
            role: Role::parse(&self.role).map_err(|e| corrupt("role of", &self.code, e))?,
            unit: self
                .unit_code
                .as_deref()
                .map(UnitCode::parse)
                .transpose()
                .map_err(|e| corrupt("unit of", &self.code, e))?,
            status: MemberStatus::parse(&self.status).map_err(|e| corrupt("status of", &self.code, e))?,
            status_reason: self.status_reason,
            certificates,
            created_at: self.created_at,
            updated_at: self.updated_at,
            code,
        })
    }

    pub(super) fn code(&self) -> &str {
        &self.code
    }
}

impl CertificateRow {
    pub(super) fn into_use(self) -> CertificateUse {
        CertificateUse { fingerprint: self.fingerprint, first_seen: self.first_seen, last_seen: self.last_seen }
    }
}

/// Joins a page of member rows with the certificate rows of the same codes (both in code order).
pub(super) fn assemble(rows: Vec<MemberRow>, certificates: Vec<CertificateRow>) -> Result<Vec<Member>, PortError> {
    let mut certificates = certificates.into_iter().peekable();
    rows.into_iter()
        .map(|row| {
            let mut uses = Vec::new();
            while let Some(c) = certificates.next_if(|c| c.member_code.as_str() <= row.code()) {
                if c.member_code == row.code() {
                    uses.push(c.into_use());
                }
            }
            row.into_member(uses)
        })
        .collect()
}

impl From<AuditRow> for AuditRecord {
    fn from(r: AuditRow) -> Self {
        AuditRecord {
            seq: r.seq,
            entry: AuditEntry {
                at: r.at,
                request_id: r.request_id,
                org_code: r.org_code,
                person: r.person,
                cert_fingerprint: r.cert_fingerprint,
                method: r.method,
                outcome: r.outcome,
                detail: r.detail,
                request_digest: r.request_digest,
                attached: r.attached,
                decisions_call: r.decisions_call,
            },
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

/// The audit log's reads, the same in both dialects: each backend's [`AuditLog`] (whose
/// writes differ) answers with them, through the pool it reads from.
///
/// [`AuditLog`]: crate::domain::ports::AuditLog
pub(super) struct AuditReads<DB>(std::marker::PhantomData<DB>);

impl<DB> AuditReads<DB>
where
    DB: sqlx::Database,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'q> Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: Param<DB>,
    OffsetDateTime: Param<DB>,
    AuditRow: Record<DB>,
    (i64, String): Record<DB>,
{
    pub(super) async fn records(pool: &sqlx::Pool<DB>, after: i64, limit: u32) -> Result<Vec<AuditRecord>, PortError> {
        let rows =
            sqlx::query_as::<_, AuditRow>(AUDIT_RECORDS).bind(after).bind(i64::from(limit)).fetch_all(pool).await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    pub(super) async fn query(
        pool: &sqlx::Pool<DB>,
        filter: &crate::storage::AuditFilter,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, PortError> {
        let rows = sqlx::query_as::<_, AuditRow>(QUERY_AUDIT)
            .bind(after)
            .bind(filter.from)
            .bind(filter.until)
            .bind(filter.org_code.as_deref())
            .bind(filter.method.as_deref())
            .bind(filter.method_prefix.as_deref())
            .bind(filter.outcome.as_deref())
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    pub(super) async fn head(pool: &sqlx::Pool<DB>) -> Result<(i64, String), PortError> {
        Ok(sqlx::query_as::<_, (i64, String)>(AUDIT_HEAD).fetch_one(pool).await?)
    }
}

#[cfg(test)]
mod tests {
    use sqlx::AssertSqlSafe;

    use super::case_sql;
    use crate::domain::batch_rules::{OUTCOMES, RecordFact};

    /// Every fact of the table, each standing for a column `f0`, `f1`, … of the test's row.
    const FACTS: [RecordFact; 7] = [
        RecordFact::Removes,
        RecordFact::Known,
        RecordFact::OnList,
        RecordFact::OpenLater,
        RecordFact::OpenSameDay,
        RecordFact::SameContent,
        RecordFact::BeforeNewestSnapshot,
    ];
    const COLUMNS: [&str; 7] = ["f0", "f1", "f2", "f3", "f4", "f5", "f6"];

    fn position(fact: RecordFact) -> usize {
        FACTS.iter().position(|f| *f == fact).expect("every fact is listed")
    }

    #[tokio::test]
    async fn a_rendered_table_decides_in_sql_as_the_domain_does_taking_null_for_false() {
        let case = case_sql(&OUTCOMES, |f| COLUMNS[position(f)], |o| o.as_str());
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        for bits in 0u32..1 << FACTS.len() {
            let holds = |i: usize| bits >> i & 1 == 1;
            let want = OUTCOMES.decide(|f| holds(position(f)));
            for false_is in ["0", "NULL"] {
                let row: Vec<String> =
                    (0..FACTS.len()).map(|i| format!("{} AS f{i}", if holds(i) { "1" } else { false_is })).collect();
                let sql = format!("SELECT {case} FROM (SELECT {})", row.join(", "));
                let got: String = sqlx::query_scalar(AssertSqlSafe(sql)).fetch_one(&pool).await.unwrap();
                assert_eq!(got, want.as_str(), "facts {bits:07b}, false as {false_is}");
            }
        }
    }
}
