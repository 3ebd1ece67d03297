//! PostgreSQL, for production and for several hubs sharing one database.

use async_trait::async_trait;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use std::str::FromStr;
use time::{Date, OffsetDateTime};

use super::{
    PortError, Store, StoreOptions,
    eligibility::StoredDecision,
    reconciliation::ListLine,
    registry::{self, ApplyCounts, ApplyProblem, Batch, NewBatch, StagedRecord},
};
use crate::domain::ports;
use crate::{
    audit::{AuditRecord, Subject},
    domain::household::BatchKind,
};

use super::backend::SqlStore;

const INSERT_AUDIT: &str = "INSERT INTO audit_log (seq, at, request_id, org_code, cert_fingerprint, method, \
     outcome, detail, request_digest, prev_hash, hash, attached, decisions_call, person) \
     SELECT * FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], \
     $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[])";

const INSERT_TREE: &str = "INSERT INTO audit_tree (level, idx, hash) \
     SELECT * FROM UNNEST($1::int[], $2::bigint[], $3::text[]) ON CONFLICT DO NOTHING";

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// One connection of its own for [`Store::ping`]: a busy pool is not a database away.
    ping: PgPool,
    /// Large work takes a turn before it takes a connection of the pool (see [`BulkTurns`]).
    bulk: BulkTurns,
}

impl PgStore {
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self, PortError> {
        let connect = PgConnectOptions::from_str(url)?.application_name("telesub");
        let connections = options.max_connections.max(1);
        let pool = PgPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(options.acquire_timeout)
            .before_acquire(|conn, _| Box::pin(async move { Ok(super::clean(conn)) }))
            .connect_with(connect.clone())
            .await?;
        let ping =
            PgPoolOptions::new().max_connections(1).acquire_timeout(options.acquire_timeout).connect_lazy_with(connect);
        Ok(Self { pool, ping, bulk: BulkTurns::new(connections, options.write_wait) })
    }
}

/// Turns at large work: a batch call's reads and the storing of its decisions, the statistics,
/// device proposals, a monthly list's checks. Large work takes a turn before it takes a
/// connection, and there are fewer turns than connections, so that large work never holds the
/// whole pool: a call that needs a connection for a moment (its member looked up, its audit
/// record kept, a single question) always finds one within the database timeout, however many
/// batches run. Large work waits for its turn in order, up to the write wait (the request
/// timeout), rather than failing after the database timeout as it did when it queued for
/// connections with everyone else. (SQLite's store has connections of its own for large reads.)
#[derive(Debug, Clone)]
struct BulkTurns {
    turns: std::sync::Arc<tokio::sync::Semaphore>,
    wait: std::time::Duration,
}

impl BulkTurns {
    /// Turns for a pool of `connections`: a quarter of them (at least one) is kept for short
    /// calls; a pool of one connection shares it.
    fn new(connections: u32, wait: std::time::Duration) -> Self {
        let kept = (connections / 4).max(1);
        let turns = connections.saturating_sub(kept).max(1);
        Self { turns: std::sync::Arc::new(tokio::sync::Semaphore::new(turns as usize)), wait }
    }

    async fn connection(&self, pool: &PgPool) -> Result<BulkConnection, PortError> {
        let turn = tokio::time::timeout(self.wait, self.turns.clone().acquire_owned())
            .await
            .map_err(|_| {
                PortError::Unavailable(format!(
                    "no turn at the database for large work within {} ms: other large work holds every turn",
                    self.wait.as_millis()
                ))
            })?
            .map_err(PortError::fault)?;
        Ok(BulkConnection { conn: pool.acquire().await?, _turn: turn })
    }
}

/// A pooled connection held with a turn at large work; both are given back when it is dropped.
struct BulkConnection {
    conn: sqlx::pool::PoolConnection<sqlx::Postgres>,
    _turn: tokio::sync::OwnedSemaphorePermit,
}

impl std::ops::Deref for BulkConnection {
    type Target = sqlx::PgConnection;
    fn deref(&self) -> &Self::Target {
        &self.conn
    }
}

impl std::ops::DerefMut for BulkConnection {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.conn
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), PortError> {
        sqlx::query("SELECT 1").execute(&self.ping).await?;
        Ok(())
    }

    async fn claim(&self, key: &str) -> Result<Option<super::Claim>, PortError> {
        // A session-level advisory lock on a connection of the claim's own: it ends when the
        // claim is dropped (the connection closes) or when this process dies.
        let mut conn = self.pool.acquire().await?.detach();
        let lock = i64::from_be_bytes(super::claim_hash(key));
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)").bind(lock).fetch_one(&mut conn).await?;
        Ok(taken.then(|| super::Claim::new(SessionClaim { conn, lock })))
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn pools(&self) -> Vec<ports::PoolUse> {
        vec![super::pool_use("main", &self.pool)]
    }

    async fn migrate(&self) -> Result<(), PortError> {
        sqlx::migrate!("./migrations/postgres").run(&self.pool).await?;
        Ok(())
    }
}

/// A claim as a session's advisory lock. Closing the connection alone ends it only once the
/// server's backend has noticed, which under load comes after the next claimant asks; giving
/// it up unlocks first and waits for the answer.
struct SessionClaim {
    conn: sqlx::PgConnection,
    lock: i64,
}

#[async_trait]
impl crate::domain::ports::Held for SessionClaim {
    async fn release(self: Box<Self>) {
        let Self { mut conn, lock } = *self;
        if let Err(e) = sqlx::query("SELECT pg_advisory_unlock($1)").bind(lock).execute(&mut conn).await {
            // The session is then broken or gone, and the lock with it once the server notices.
            tracing::warn!(error = %crate::ErrorChain(&e), "a claim could not be given up at once; it ends with its session");
        }
        let _ = sqlx::Connection::close(conn).await;
    }
}

impl SqlStore for PgStore {
    type Db = sqlx::Postgres;

    const EMPTY_WHEN_ALONE: bool = false;
    const BEGIN: &'static str = "BEGIN";
    const LOCK_MEMBERS: &'static str = "SELECT pg_advisory_xact_lock(hashtextextended('telesub:members', 0))";

    const AUDIT_GUARDS: &'static str = "SELECT c.relname::text, k.kind FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
        JOIN pg_proc p ON p.oid = t.tgfoid CROSS JOIN (VALUES ('UPDATE', 16), ('DELETE', 8)) AS k(kind, bit) \
        WHERE NOT t.tgisinternal AND t.tgenabled <> 'D' AND (t.tgtype & k.bit) <> 0 \
        AND p.proname IN ('audit_log_append_only', 'audit_append_only', 'decision_purge_only')";
    const JSON_LIST: (&'static str, &'static str) = ("(SELECT jsonb_array_elements_text(CAST(", " AS jsonb)))");

    /// Bound as they are: arrays.
    type Texts<'a> = &'a [String];
    type Ids<'a> = &'a [i64];

    fn texts(values: &[String]) -> &[String] {
        values
    }

    fn ids(values: &[i64]) -> &[i64] {
        values
    }

    const MATCHING: super::eligibility::MatchingSql = MATCHING;

    const ENROLMENTS_BY_IDS: &'static str = "SELECT id, operator, household_code, subscriber_citizen_id, phone_number, \
         service, start_date, end_date, end_reason, end_note, decision_id, transfer_reference, recorded_at, ended_at \
         FROM enrollments WHERE id = ANY($1)";

    const ENROLMENTS_BY_PHONES: &'static str = "SELECT id, operator, household_code, subscriber_citizen_id, \
         phone_number, service, start_date, end_date, end_reason, end_note, decision_id, transfer_reference, \
         recorded_at, ended_at FROM enrollments WHERE phone_number = ANY($2) AND operator = $1";

    // The advisory lock that serialises applying batches (0x7465_6c65_7375_6201).
    const LOCK_REGISTER: Option<&'static str> = Some("SELECT pg_advisory_xact_lock(8387229064031986177)");
    const NOTE_CHANGE: Option<&'static str> = None;

    fn rows_affected(done: &sqlx::postgres::PgQueryResult) -> u64 {
        done.rows_affected()
    }

    fn reader(&self) -> &sqlx::PgPool {
        &self.pool
    }

    async fn bulk(&self) -> Result<impl std::ops::DerefMut<Target = sqlx::PgConnection> + Send, PortError> {
        self.bulk.connection(&self.pool).await
    }

    /// Scans are large work like any other: one turn.
    async fn scan(&self) -> Result<impl std::ops::DerefMut<Target = sqlx::PgConnection> + Send, PortError> {
        self.bulk().await
    }

    fn lock_table(table: &str) -> Option<String> {
        Some(format!("LOCK TABLE {table} IN EXCLUSIVE MODE"))
    }

    async fn large_writer(&self) -> Result<impl std::ops::DerefMut<Target = sqlx::PgConnection> + Send, PortError> {
        self.bulk().await
    }

    async fn lock_key(conn: &mut sqlx::PgConnection, key: &str) -> Result<(), PortError> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))").bind(key).execute(&mut *conn).await?;
        Ok(())
    }

    async fn insert_decisions(conn: &mut sqlx::PgConnection, rows: &[StoredDecision]) -> Result<(), PortError> {
        insert_decisions(conn, rows).await
    }

    /// Locks the chain's head, so that other hubs appending wait their turn.
    const AUDIT_HEAD_FOR_APPEND: &'static str = "SELECT seq, hash, tree FROM audit_head WHERE id = 1 FOR UPDATE";

    /// One statement for all the records: arrays of their columns, unnested.
    async fn insert_audit(conn: &mut sqlx::PgConnection, records: &[AuditRecord]) -> Result<(), PortError> {
        if records.is_empty() {
            return Ok(());
        }
        let column = |f: fn(&AuditRecord) -> String| records.iter().map(f).collect::<Vec<_>>();
        let optional = |f: fn(&AuditRecord) -> Option<String>| records.iter().map(f).collect::<Vec<_>>();
        sqlx::query(INSERT_AUDIT)
            .bind(records.iter().map(|r| r.seq).collect::<Vec<_>>())
            .bind(records.iter().map(|r| r.entry.at).collect::<Vec<_>>())
            .bind(column(|r| r.entry.request_id.clone()))
            .bind(optional(|r| r.entry.org_code.clone()))
            .bind(optional(|r| r.entry.cert_fingerprint.clone()))
            .bind(column(|r| r.entry.method.clone()))
            .bind(column(|r| r.entry.outcome.clone()))
            .bind(column(|r| r.entry.detail.clone()))
            .bind(column(|r| r.entry.request_digest.clone()))
            .bind(column(|r| r.prev_hash.clone()))
            .bind(column(|r| r.hash.clone()))
            .bind(optional(|r| r.entry.attached.clone()))
            .bind(optional(|r| r.entry.decisions_call.clone()))
            .bind(optional(|r| r.entry.person.clone()))
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn insert_tree_nodes(conn: &mut sqlx::PgConnection, nodes: &[(u32, u64, String)]) -> Result<(), PortError> {
        if nodes.is_empty() {
            return Ok(());
        }
        sqlx::query(INSERT_TREE)
            .bind(nodes.iter().map(|n| n.0 as i32).collect::<Vec<_>>())
            .bind(nodes.iter().map(|n| n.1 as i64).collect::<Vec<_>>())
            .bind(nodes.iter().map(|n| n.2.clone()).collect::<Vec<_>>())
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn insert_subjects(
        conn: &mut sqlx::PgConnection,
        after: i64,
        subjects: &[(usize, Subject)],
    ) -> Result<(), PortError> {
        if subjects.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO audit_subjects (kind, value, seq) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[]) ON CONFLICT DO NOTHING",
        )
        .bind(subjects.iter().map(|(_, s)| s.kind.as_str()).collect::<Vec<_>>())
        .bind(subjects.iter().map(|(_, s)| s.value.clone()).collect::<Vec<_>>())
        .bind(subjects.iter().map(|(i, _)| after + 1 + *i as i64).collect::<Vec<_>>())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// One statement for all the lines: arrays of their columns, unnested.
    async fn insert_lines(conn: &mut sqlx::PgConnection, id: i64, lines: &[ListLine]) -> Result<(), PortError> {
        let text = |f: fn(&ListLine) -> String| lines.iter().map(f).collect::<Vec<_>>();
        let opt = |f: fn(&ListLine) -> Option<String>| lines.iter().map(f).collect::<Vec<_>>();
        let num = |f: fn(&ListLine) -> i64| lines.iter().map(f).collect::<Vec<_>>();
        sqlx::query(
            "INSERT INTO monthly_lines (update_ref, line_no, household_code, phone_number, commune_code, line, codes, \
             detail, amount_claimed, amount_confirmable, idle_months) \
             SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
             $8::text[], $9::bigint[], $10::bigint[], $11::bigint[])",
        )
        .bind(id)
        .bind(num(|l| l.line_no))
        .bind(text(|l| l.household_code.clone()))
        .bind(text(|l| l.phone_number.clone()))
        .bind(opt(|l| l.commune_code.clone()))
        .bind(text(|l| l.line.clone()))
        .bind(text(|l| l.codes.clone()))
        .bind(opt(|l| l.detail.clone()))
        .bind(num(|l| l.amount_claimed))
        .bind(num(|l| l.amount_confirmable))
        .bind(num(|l| l.idle_months))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    fn writer(&self) -> &sqlx::PgPool {
        &self.pool
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, PortError> {
        Ok(self.pool.begin().await?)
    }
}

#[async_trait]
impl ports::BatchStore for PgStore {
    async fn batch(&self, batch_id: &str) -> Result<Option<Batch>, PortError> {
        Households::batch(&mut *self.pool.acquire().await?, batch_id).await
    }

    async fn list_batches(&self, before: Option<i64>, limit: u32) -> Result<Vec<Batch>, PortError> {
        Households::list_batches(&mut *self.pool.acquire().await?, before, limit).await
    }

    async fn begin_batch(&self, batch: &NewBatch<'_>) -> Result<(), PortError> {
        let mut tx = self.pool.begin().await?;
        Households::begin_batch(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn stage_records(&self, batch_id: &str, receiver: &str, records: &[StagedRecord]) -> Result<(), PortError> {
        let text = |f: fn(&StagedRecord) -> Option<String>| records.iter().map(f).collect::<Vec<_>>();
        let mut tx = self.pool.begin().await?;
        // The batch's row is held until the records are in: a takeover that would discard
        // them waits, then finds them.
        let current: Option<Option<String>> = sqlx::query_scalar(
            "SELECT receiver FROM household_batches WHERE batch_id = $1 AND status = 'RECEIVING' FOR SHARE",
        )
        .bind(batch_id)
        .fetch_optional(&mut *tx)
        .await?;
        if current.flatten().as_deref() != Some(receiver) {
            return Err(PortError::Conflict(crate::domain::ports::Conflict::NotTheReceiver));
        }
        sqlx::query(INSERT_STAGING)
            .bind(batch_id)
            .bind(records.iter().map(|r| r.idx).collect::<Vec<_>>())
            .bind(records.iter().map(|r| r.household_code.clone()).collect::<Vec<_>>())
            .bind(records.iter().map(|r| r.effective).collect::<Vec<_>>())
            .bind(text(|r| r.removal_reason.clone()))
            .bind(text(|r| r.removal_note.clone()))
            .bind(text(|r| r.data.clone()))
            .bind(text(|r| r.content_hash.clone()))
            .bind(text(|r| r.commune_code.clone()))
            .bind(text(|r| r.certificate_number.clone()))
            .bind(text(|r| r.member_ids.clone()))
            .bind(text(|r| r.category.map(|c| c.as_str().to_owned())))
            .bind(records.iter().map(|r| r.wants_device).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn receiving_batches(&self) -> Result<Vec<String>, PortError> {
        Ok(sqlx::query_scalar(crate::storage::registry::RECEIVING_BATCHES).fetch_all(&self.pool).await?)
    }

    async fn discard_batch(&self, batch_id: &str) -> Result<(), PortError> {
        let mut tx = self.pool.begin().await?;
        Households::discard_batch(&mut tx, batch_id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn apply_batch(
        &self,
        batch: &crate::storage::registry::Staged<'_>,
        kind: BatchKind,
        effective: Date,
        digest: &str,
        at: OffsetDateTime,
    ) -> Result<Result<ApplyCounts, Vec<ApplyProblem>>, PortError> {
        let (batch_id, records) = (batch.batch_id, batch.records);
        // The planner needs to know how many rows were staged (autovacuum has not seen them):
        // without it, joins against a large register go row by row through all of it.
        // Only the columns joins and filters use: statistics of the wide data column cost
        // more than they help.
        sqlx::query("ANALYZE batch_staging (batch_id, idx, household_code, effective_date)")
            .execute(&self.pool)
            .await?;
        let mut tx = self.pool.begin().await?;
        // One batch at a time across every hub on this database: outcomes are decided
        // against the register as the previous batch left it.
        sqlx::query(<Self as SqlStore>::LOCK_REGISTER.expect("a lock")).execute(&mut *tx).await?;
        let applied = Households::apply_shared(&mut tx, batch, kind, effective, at, MEMBER_SQL).await?;
        match applied {
            Ok(counts) => {
                Households::finish_batch(&mut tx, batch_id, digest, records, &counts, at).await?;
                tx.commit().await?;
                // After a large batch, refresh the register's statistics now rather than when
                // autovacuum comes round, so the next batch is planned on what is there.
                if counts.added + counts.changed + counts.removed > LARGE_BATCH {
                    sqlx::query(
                        "ANALYZE household_versions (id, household_code, valid_from, valid_to, removal_reason, \
                         certificate_number, commune_code), citizen_households",
                    )
                    .execute(&self.pool)
                    .await?;
                }
                // The staged rows are deleted: reclaim them, or every later batch's reads of
                // the staging tables step over them until autovacuum comes round.
                if records > LARGE_BATCH {
                    sqlx::query("VACUUM batch_staging, batch_outcomes").execute(&self.pool).await?;
                }
                Ok(Ok(counts))
            }
            Err(problems) => Ok(Err(problems)),
        }
    }
}

const MATCHING: super::eligibility::MatchingSql = super::eligibility::MatchingSql {
    citizen_id: "SELECT q.value AS matched, v.household_code, v.valid_from, v.valid_to, v.removal_reason, v.data, \
         (SELECT json_agg(json_build_array(e.operator, e.start_date, e.end_date))::text FROM enrollments e \
         WHERE e.household_code = v.household_code) AS holdings \
         FROM (SELECT DISTINCT j.value AS value, c.household_code AS code FROM unnest($1::text[]) AS j(value) \
         JOIN citizen_households c ON c.citizen_id = j.value) q \
         JOIN household_versions v ON v.household_code = q.code",
    household_code: "SELECT v.household_code AS matched, v.household_code, v.valid_from, v.valid_to, \
         v.removal_reason, v.data, \
         (SELECT json_agg(json_build_array(e.operator, e.start_date, e.end_date))::text FROM enrollments e \
         WHERE e.household_code = v.household_code) AS holdings FROM unnest($1::text[]) AS j(value) \
         JOIN household_versions v ON v.household_code = j.value",
    certificate_number: "SELECT q.value AS matched, v.household_code, v.valid_from, v.valid_to, v.removal_reason, \
         v.data, (SELECT json_agg(json_build_array(e.operator, e.start_date, e.end_date))::text FROM enrollments e \
         WHERE e.household_code = v.household_code) AS holdings FROM (SELECT DISTINCT j.value AS value, h.household_code AS code FROM unnest($1::text[]) AS j(value) \
         JOIN household_versions h ON h.certificate_number = j.value) q \
         JOIN household_versions v ON v.household_code = q.code",
};

const INSERT_DECISIONS: &str = "INSERT INTO eligibility_decisions (call_id, idx, request_id, asked_by, decided_at, \
     query_kind, query_value, as_of, household_code, eligible, policy_version, body) \
     SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::timestamptz[], $6::text[], \
     $7::text[], $8::date[], $9::text[], $10::boolean[], $11::bigint[], $12::text[])";

async fn insert_decisions(conn: &mut sqlx::PgConnection, rows: &[StoredDecision]) -> Result<(), PortError> {
    if rows.is_empty() {
        return Ok(());
    }
    let text = |f: fn(&StoredDecision) -> String| rows.iter().map(f).collect::<Vec<_>>();
    sqlx::query(INSERT_DECISIONS)
        .bind(text(|d| d.call_id.clone()))
        .bind(rows.iter().map(|d| d.idx).collect::<Vec<_>>())
        .bind(text(|d| d.request_id.clone()))
        .bind(text(|d| d.asked_by.clone()))
        .bind(rows.iter().map(|d| d.decided_at).collect::<Vec<_>>())
        .bind(text(|d| d.query_kind.clone()))
        .bind(text(|d| d.query_value.clone()))
        .bind(rows.iter().map(|d| d.as_of).collect::<Vec<_>>())
        .bind(rows.iter().map(|d| d.household_code.clone()).collect::<Vec<_>>())
        .bind(rows.iter().map(|d| d.eligible).collect::<Vec<_>>())
        .bind(rows.iter().map(|d| d.policy_version).collect::<Vec<_>>())
        .bind(text(|d| d.body.clone()))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The registry queries both dialects share.
type Households = super::registry::RegistryQueries<PgStore>;

/// Batches that change more households than this refresh the planner's statistics.
const LARGE_BATCH: i64 = 10_000;

const INSERT_STAGING: &str = "INSERT INTO batch_staging (batch_id, idx, household_code, effective_date, \
     removal_reason, removal_note, data, content_hash, commune_code, certificate_number, member_ids, category, \
     wants_device) \
     SELECT $1, * FROM UNNEST($2::bigint[], $3::text[], $4::date[], $5::text[], $6::text[], $7::text[], \
     $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::boolean[])";

/// A member's citizen ID that a household on the list outside the batch lists now.
const CONFLICTS: &str = "SELECT s.idx, s.household_code, (j.n - 1)::bigint, j.id, v.household_code \
     FROM batch_staging s \
     CROSS JOIN LATERAL unnest(string_to_array(s.member_ids, ' ')) WITH ORDINALITY AS j(id, n) \
     JOIN citizen_households c ON c.citizen_id = j.id AND c.household_code <> s.household_code \
     JOIN household_versions v ON v.household_code = c.household_code AND v.valid_to IS NULL \
       AND v.removal_reason IS NULL \
     WHERE s.batch_id = $1 AND s.data IS NOT NULL \
       AND EXISTS (SELECT 1 FROM jsonb_array_elements(v.data::jsonb -> 'members') AS o(m) \
         WHERE o.m ->> 0 = c.citizen_id) \
       AND NOT EXISTS (SELECT 1 FROM batch_staging o WHERE o.batch_id = $1 AND o.household_code = v.household_code) \
     ORDER BY s.idx LIMIT $2";

/// The members of the households the batch adds or changes that their households did not
/// list before (a household added has no rows yet: it never had a state).
const INSERT_NEW_CITIZENS: &str = "INSERT INTO citizen_households (citizen_id, household_code) \
     SELECT j.id, s.household_code FROM batch_outcomes o \
     JOIN batch_staging s ON s.batch_id = o.batch_id AND s.idx = o.idx \
     CROSS JOIN LATERAL unnest(string_to_array(s.member_ids, ' ')) AS j(id) \
     WHERE o.batch_id = $1 AND (o.outcome = 'ADDED' OR o.outcome = 'CHANGED' AND NOT EXISTS \
       (SELECT 1 FROM citizen_households c WHERE c.citizen_id = j.id AND c.household_code = s.household_code)) \
     ORDER BY 1";

const MEMBER_SQL: registry::MemberSql = registry::MemberSql {
    conflicts: CONFLICTS,
    new_citizens: INSERT_NEW_CITIZENS,
    feed_lock: "SELECT pg_advisory_xact_lock(hashtextextended('telesub:feed', 0))",
};
