//! The embedded default: one SQLite file in WAL mode.
//!
//! All writes go through a pool of one connection, so writers queue in the hub instead of
//! failing with `SQLITE_BUSY`; reads use a separate pool and run beside the writer.

use std::{
    path::{Path, PathBuf},
    str::FromStr,
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use sqlx::{
    QueryBuilder, Sqlite, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use time::{Date, OffsetDateTime};

use super::{
    PortError, Store, StoreOptions,
    eligibility::{MatchedState, StoredDecision},
    reconciliation::{self, ListLine},
    registry::{self, ApplyCounts, ApplyProblem, Batch, NewBatch, StagedRecord},
};
use crate::domain::ports;
use crate::{
    audit::{AuditRecord, Subject},
    domain::{
        eligibility::{History, QueryKind},
        household::BatchKind,
        ports::register::{MOST_CHANGES_PATCHED, WHOLE_REGISTER},
    },
};

use super::shared as sql;

/// Rows per multi-row `INSERT`: what measured fastest here, far below SQLite's variable limit.
const ROWS_PER_INSERT: usize = 256;

/// The size the write-ahead log file is cut back to when the writer starts it over.
const WAL_SIZE_LIMIT_BYTES: u64 = 64 << 20;

/// How much of the database file readers of large calls map into memory (SQLite caps it at
/// 2 GiB).
const BULK_MMAP_BYTES: u64 = 2 << 30;
/// Readers of large calls at once: as many as one batch call decides chunks at the same time.
const BULK_READERS: u32 = 4;

/// Rows a point reader may have ready before the caller takes them: a page of the change feed
/// or of a list.
const PAGE_OF_ROWS: usize = crate::domain::feed::PAGE as usize;

/// Change-log rows kept: a hub whose register index is older than the oldest row builds it
/// again.
const CHANGES_KEPT: i64 = 200_000;

/// Every state of every household, by household and date, with the household's enrolments.
const SCAN: &str = "SELECT v.household_code AS matched, v.household_code, v.valid_from, v.valid_to, \
     v.removal_reason, v.data, \
     (SELECT json_group_array(json_array(e.operator, e.start_date, e.end_date)) FROM enrollments e \
     WHERE e.household_code = v.household_code) AS holdings \
     FROM household_versions v ORDER BY v.household_code, v.valid_from";

const CHANGES_FROM: &str = "SELECT seq, household_code FROM register_changes WHERE seq >= $1 ORDER BY seq LIMIT $2";

/// A batch's changed households, in its own transaction; a large batch notes the whole register.
const NOTE_BATCH_CHANGES: &str = "INSERT INTO register_changes (household_code) \
     SELECT DISTINCT household_code FROM batch_outcomes WHERE batch_id = $1 AND outcome <> 'UNCHANGED'";

const PRUNE_CHANGES: &str = "DELETE FROM register_changes WHERE seq < (SELECT max(seq) FROM register_changes) - $1";

#[derive(Debug, Clone)]
pub struct SqliteStore {
    read: SqlitePool,
    /// Readers of large calls (a month's list, a device proposal, a batch of questions when
    /// the register is not held in memory).
    bulk: SqlitePool,
    /// Readers of the programme's statistics and of device proposals, which scan much of the
    /// file: they map it.
    mapped: SqlitePool,
    write: SqlitePool,
    /// One connection of its own for [`Store::ping`]: busy readers are not a database away.
    ping: SqlitePool,
    path: PathBuf,
    /// Reads the register's change log before every question answered from memory:
    /// connections with a small page cache, which SQLite empties whenever another connection
    /// has committed (every audit commit), at a cost that grows with the cache's size.
    changes: SqlitePool,
    /// Reads the whole register to hold it in memory: a connection of its own, opened for the
    /// scan, with a small page cache and no mapping of the file (the scan reads each page once;
    /// a mapping would count the whole register in the hub's resident memory).
    scan: SqliteConnectOptions,
    /// Bumped after this process committed a batch that noted changes.
    written: Arc<tokio::sync::watch::Sender<i64>>,
    /// Stops the checkpointer when the last clone of the store is dropped.
    _checkpoints: Arc<StopOnDrop>,
    /// This process's staging file, kept while the store lives.
    _staging: Arc<StagingArea>,
}

#[derive(Debug)]
struct StopOnDrop(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            let _ = stop.send(());
        }
    }
}

impl SqliteStore {
    /// Opens (creating when missing) the database file at `path`.
    pub async fn open(path: &str, options: &StoreOptions) -> Result<Self, PortError> {
        if path.is_empty() || path == ":memory:" {
            return Err(PortError::fault(super::BadUrl(format!("sqlite://{path}"))));
        }
        let base = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Every commit reaches the disk: the audit trail must survive a power cut. (NORMAL
            // was measured 1.6 times faster for single calls; see docs/BENCHMARKS.md.)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            // 64 MiB of page cache per connection (the default is 2 MiB): applying a large batch
            // builds indexes over millions of rows.
            .pragma("cache_size", "-65536")
            .pragma("temp_store", "MEMORY");
        // The writer builds the indexes of a million-household batch in one transaction: it
        // gets a larger page cache than the readers, and the staging file.
        let staging_area = StagingArea::open(Path::new(path)).map_err(|e| PortError::fault(sqlx::Error::Io(e)))?;
        let staging = staging_area.file.to_string_lossy().into_owned();
        // A connection to a local file cannot have gone away: no pool pings one before use
        // (a round trip to its thread on every call).
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .acquire_timeout(options.write_wait)
            .before_acquire(|conn, _| Box::pin(async move { Ok(super::clean(conn)) }))
            .after_connect(move |conn, _| {
                let staging = staging.clone();
                Box::pin(async move { attach_staging(conn, &staging).await })
            })
            .connect_with(
                base.clone()
                    .pragma("cache_size", "-262144")
                    // Checkpoints run beside the writer (below), not inside its commits; when the
                    // writer starts the log over, it cuts the file back to this size.
                    .pragma("wal_autocheckpoint", "0")
                    .pragma("journal_size_limit", WAL_SIZE_LIMIT_BYTES.to_string()),
            )
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .test_before_acquire(false)
            .acquire_timeout(options.acquire_timeout)
            // Point reads: eligibility questions are answered from the register held in memory
            // (read_model/held.rs), so these readers need far less cache than the writer.
            // Rows come from each connection's own thread through a channel: with sqlx's 50
            // places, a page of 1,000 (the change feed's) went over in small steps, the two
            // threads waking each other in turn (switching between threads was a quarter of the
            // feed's time, profiled); with room for a page, the thread reads it in one go.
            .connect_with(base.clone().read_only(true).pragma("cache_size", "-16384").row_buffer_size(PAGE_OF_ROWS))
            .await?;
        // Large calls: a month's list reads enrolments and lines through a small page cache
        // (every page read through a mapping would count in the hub's resident memory: some
        // 230 MiB for a month of a million lines, measured); the statistics and device
        // proposals, which scan the register, read from a mapping of the file, which saves
        // copying every page. (Point reads keep the page cache: the pages near the top of the
        // indexes stay in it, ready to use, where a mapping makes each read prepare them again.)
        //
        // Large reads wait for one of these connections in order, up to the write wait: a
        // reader of a local file is never out of reach, so waiting for one is queueing behind
        // other large reads (each may take seconds), not a database away.
        let bulk = SqlitePoolOptions::new()
            .max_connections(BULK_READERS)
            .test_before_acquire(false)
            .acquire_timeout(options.write_wait)
            .connect_with(base.clone().read_only(true).pragma("cache_size", "-16384"))
            .await?;
        let mapped = SqlitePoolOptions::new()
            .max_connections(BULK_READERS)
            .test_before_acquire(false)
            .acquire_timeout(options.write_wait)
            .connect_with(base.clone().read_only(true).pragma("mmap_size", BULK_MMAP_BYTES.to_string()))
            .await?;
        let ping = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_lazy_with(base.clone().read_only(true).pragma("cache_size", "-64"));
        let changes = SqlitePoolOptions::new()
            .max_connections(2)
            .test_before_acquire(false)
            .acquire_timeout(options.acquire_timeout)
            .connect_lazy_with(base.clone().read_only(true).pragma("cache_size", "-256"));
        let scan = base.clone().read_only(true).pragma("cache_size", "-2048");
        let checkpointer =
            SqlitePoolOptions::new().max_connections(1).test_before_acquire(false).connect_with(base.clone()).await?;
        let (stop, stopped) = tokio::sync::oneshot::channel();
        tokio::spawn(checkpoint_while_open(checkpointer, stopped));
        Ok(Self {
            read,
            bulk,
            mapped,
            write,
            ping,
            path: PathBuf::from(path),
            changes,
            scan,
            written: Arc::new(tokio::sync::watch::Sender::new(0)),
            _checkpoints: Arc::new(StopOnDrop(Some(stop))),
            _staging: Arc::new(staging_area),
        })
    }

    /// The database file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), PortError> {
        sqlx::query("SELECT 1").execute(&self.ping).await?;
        Ok(())
    }

    async fn claim(&self, key: &str) -> Result<Option<super::Claim>, PortError> {
        // A lock on a file of the claim's own beside the database: the operating system ends it
        // when the claim is dropped or the process dies, also for other processes on the file.
        let dir = claims_path(&self.path);
        let file = crate::hex(&super::claim_hash(key)) + ".lock";
        let path = dir.join(file);
        tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(&dir)?;
            let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path)?;
            match file.try_lock() {
                Ok(()) => Ok(Some(super::Claim::new(FileClaim(file)))),
                Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                Err(std::fs::TryLockError::Error(e)) => Err(e),
            }
        })
        .await
        .map_err(|e| PortError::fault(sqlx::Error::Io(std::io::Error::other(e))))?
        .map_err(|e| PortError::fault(sqlx::Error::Io(e)))
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn pools(&self) -> Vec<ports::PoolUse> {
        [("read", &self.read), ("write", &self.write), ("bulk", &self.bulk), ("mapped", &self.mapped)]
            .into_iter()
            .map(|(name, pool)| super::pool_use(name, pool))
            .collect()
    }

    async fn migrate(&self) -> Result<(), PortError> {
        sqlx::migrate!("./migrations/sqlite").run(&self.write).await?;
        Ok(())
    }

    /// Prunes the register's change log and starts holding the register in memory. (The
    /// staging file is this process's own and new: see [`StagingArea`].)
    async fn prepare_to_serve(&self) -> Result<(), PortError> {
        sqlx::query(PRUNE_CHANGES).bind(CHANGES_KEPT).execute(&self.write).await?;
        Ok(())
    }

    fn register_changes(&self) -> Option<Arc<dyn ports::RegisterChanges>> {
        Some(Arc::new(self.clone()))
    }
}

#[async_trait]
impl ports::BatchStore for SqliteStore {
    async fn batch(&self, batch_id: &str) -> Result<Option<Batch>, PortError> {
        Households::batch(&mut *self.read.acquire().await?, batch_id).await
    }

    async fn list_batches(&self, before: Option<i64>, limit: u32) -> Result<Vec<Batch>, PortError> {
        Households::list_batches(&mut *self.read.acquire().await?, before, limit).await
    }

    async fn begin_batch(&self, batch: &NewBatch<'_>) -> Result<(), PortError> {
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        Households::begin_batch(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn stage_records(&self, batch_id: &str, receiver: &str, records: &[StagedRecord]) -> Result<(), PortError> {
        stage(&mut *self.write.acquire().await?, batch_id, receiver, records).await
    }

    async fn receiving_batches(&self) -> Result<Vec<String>, PortError> {
        Ok(sqlx::query_scalar(registry::RECEIVING_BATCHES).fetch_all(&self.read).await?)
    }

    async fn discard_batch(&self, batch_id: &str) -> Result<(), PortError> {
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        Households::discard_batch(&mut tx, batch_id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn apply_batch(
        &self,
        batch: &registry::Staged<'_>,
        kind: BatchKind,
        effective: Date,
        digest: &str,
        at: OffsetDateTime,
    ) -> Result<Result<ApplyCounts, Vec<ApplyProblem>>, PortError> {
        let (batch_id, records) = (batch.batch_id, batch.records);
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let applied = Households::apply_shared(&mut tx, batch, kind, effective, at, MEMBER_SQL).await?;
        match applied {
            Ok(counts) => {
                // What the batch changed, for hubs holding the register in memory (before
                // finishing the batch clears its outcomes).
                if counts.added + counts.changed + counts.removed > MOST_CHANGES_PATCHED as i64 {
                    sqlx::query(<Self as super::backend::SqlStore>::NOTE_CHANGE.expect("a change log"))
                        .bind(WHOLE_REGISTER)
                        .execute(&mut *tx)
                        .await?;
                } else {
                    sqlx::query(NOTE_BATCH_CHANGES).bind(batch_id).execute(&mut *tx).await?;
                }
                Households::finish_batch(&mut tx, batch_id, digest, records, &counts, at).await?;
                tx.commit().await?;
                // The change log need not grow with every review pushed; a failure here loses
                // nothing (the next batch prunes).
                if let Err(e) = sqlx::query(PRUNE_CHANGES).bind(CHANGES_KEPT).execute(&self.write).await {
                    tracing::warn!(error = %e, "the register's change log was not pruned");
                }
                super::backend::SqlStore::register_written(self);
                Ok(Ok(counts))
            }
            // Dropping the transaction rolls back whatever was written.
            Err(problems) => Ok(Err(problems)),
        }
    }
}

impl super::backend::SqlStore for SqliteStore {
    type Db = sqlx::Sqlite;

    const EMPTY_WHEN_ALONE: bool = true;
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    // The one writer serialises member writes already.
    const LOCK_MEMBERS: &'static str = "SELECT 1";

    const AUDIT_GUARDS: &'static str = "SELECT tbl_name, CASE WHEN upper(sql) LIKE '%BEFORE UPDATE ON%' THEN 'UPDATE' \
        WHEN upper(sql) LIKE '%BEFORE DELETE ON%' THEN 'DELETE' ELSE '' END \
        FROM sqlite_master WHERE type = 'trigger' AND sql LIKE '%RAISE(ABORT%append-only%'";
    const JSON_LIST: (&'static str, &'static str) = ("(SELECT value FROM json_each(", "))");

    /// JSON arrays, which `json_each` reads.
    type Texts<'a> = String;
    type Ids<'a> = String;

    fn texts(values: &[String]) -> String {
        serde_json::to_string(values).expect("strings serialise")
    }

    fn ids(values: &[i64]) -> String {
        serde_json::to_string(values).expect("numbers serialise")
    }

    const MATCHING: super::eligibility::MatchingSql = MATCHING;

    /// Enrolment by enrolment, from the list.
    const ENROLMENTS_BY_IDS: &'static str = "SELECT e.id, e.operator, e.household_code, e.subscriber_citizen_id, \
         e.phone_number, e.service, e.start_date, e.end_date, e.end_reason, e.end_note, e.decision_id, \
         e.transfer_reference, e.recorded_at, e.ended_at FROM json_each($1) AS j CROSS JOIN enrollments e \
         ON e.id = j.value";

    /// Number by number (`CROSS JOIN` from the list), and `+operator` so that the operator's
    /// index is not chosen: it would scan every enrolment of the operator for each number.
    const ENROLMENTS_BY_PHONES: &'static str = "SELECT e.id, e.operator, e.household_code, \
         e.subscriber_citizen_id, e.phone_number, e.service, e.start_date, e.end_date, e.end_reason, e.end_note, \
         e.decision_id, e.transfer_reference, e.recorded_at, e.ended_at FROM json_each($2) AS j \
         CROSS JOIN enrollments e ON e.phone_number = j.value WHERE +e.operator = $1";

    // The one writer serialises batches and purges already.
    const LOCK_REGISTER: Option<&'static str> = None;
    const NOTE_CHANGE: Option<&'static str> = Some("INSERT INTO register_changes (household_code) VALUES ($1)");

    fn register_written(&self) {
        self.written.send_modify(|n| *n += 1);
    }

    fn rows_affected(done: &sqlx::sqlite::SqliteQueryResult) -> u64 {
        done.rows_affected()
    }

    fn reader(&self) -> &sqlx::SqlitePool {
        &self.read
    }

    /// Large reads through a small page cache.
    async fn bulk(&self) -> Result<impl std::ops::DerefMut<Target = sqlx::SqliteConnection> + Send, PortError> {
        Ok(self.bulk.acquire().await?)
    }

    /// Scans through a mapping of the file.
    async fn scan(&self) -> Result<impl std::ops::DerefMut<Target = sqlx::SqliteConnection> + Send, PortError> {
        Ok(self.mapped.acquire().await?)
    }

    fn lock_table(_: &str) -> Option<String> {
        None
    }

    async fn large_writer(&self) -> Result<impl std::ops::DerefMut<Target = sqlx::SqliteConnection> + Send, PortError> {
        Ok(self.write.acquire().await?)
    }

    async fn lock_key(conn: &mut sqlx::SqliteConnection, key: &str) -> Result<(), PortError> {
        // One writer at a time (`BEGIN IMMEDIATE`): nothing more to lock.
        let _ = (conn, key);
        Ok(())
    }

    async fn insert_decisions(conn: &mut sqlx::SqliteConnection, rows: &[StoredDecision]) -> Result<(), PortError> {
        insert_decisions(conn, rows).await
    }

    /// One writer at a time (`BEGIN IMMEDIATE`): the head needs no lock of its own.
    const AUDIT_HEAD_FOR_APPEND: &'static str = sql::AUDIT_HEAD_TREE;

    async fn insert_audit(conn: &mut sqlx::SqliteConnection, records: &[AuditRecord]) -> Result<(), PortError> {
        for chunk in records.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Sqlite>::new("INSERT INTO audit_log (");
            insert.push(sql::AUDIT_COLUMNS).push(") ");
            insert.push_values(chunk, |mut row, r: &AuditRecord| {
                row.push_bind(r.seq)
                    .push_bind(r.entry.at)
                    .push_bind(r.entry.request_id.clone())
                    .push_bind(r.entry.org_code.clone())
                    .push_bind(r.entry.cert_fingerprint.clone())
                    .push_bind(r.entry.method.clone())
                    .push_bind(r.entry.outcome.clone())
                    .push_bind(r.entry.detail.clone())
                    .push_bind(r.entry.request_digest.clone())
                    .push_bind(r.prev_hash.clone())
                    .push_bind(r.hash.clone())
                    .push_bind(r.entry.attached.clone())
                    .push_bind(r.entry.decisions_call.clone())
                    .push_bind(r.entry.person.clone());
            });
            insert.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn insert_tree_nodes(
        conn: &mut sqlx::SqliteConnection,
        nodes: &[(u32, u64, String)],
    ) -> Result<(), PortError> {
        for chunk in nodes.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Sqlite>::new("INSERT INTO audit_tree (level, idx, hash) ");
            insert.push_values(chunk, |mut row, (level, idx, hash)| {
                row.push_bind(i64::from(*level)).push_bind(*idx as i64).push_bind(hash.clone());
            });
            insert.push(" ON CONFLICT DO NOTHING");
            insert.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn insert_subjects(
        conn: &mut sqlx::SqliteConnection,
        after: i64,
        subjects: &[(usize, Subject)],
    ) -> Result<(), PortError> {
        for chunk in subjects.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Sqlite>::new("INSERT INTO audit_subjects (kind, value, seq) ");
            insert.push_values(chunk, |mut row, (i, s): &(usize, Subject)| {
                row.push_bind(s.kind.as_str()).push_bind(s.value.clone()).push_bind(after + 1 + *i as i64);
            });
            insert.push(" ON CONFLICT DO NOTHING");
            insert.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn insert_lines(conn: &mut sqlx::SqliteConnection, id: i64, lines: &[ListLine]) -> Result<(), PortError> {
        for chunk in lines.chunks(ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Sqlite>::new("INSERT INTO monthly_lines (update_ref, ");
            insert.push(reconciliation::LINE_COLUMNS).push(") ");
            insert.push_values(chunk, |mut row, l: &ListLine| {
                row.push_bind(id)
                    .push_bind(l.line_no)
                    .push_bind(l.household_code.clone())
                    .push_bind(l.phone_number.clone())
                    .push_bind(l.commune_code.clone())
                    .push_bind(l.line.clone())
                    .push_bind(l.codes.clone())
                    .push_bind(l.detail.clone())
                    .push_bind(l.amount_claimed)
                    .push_bind(l.amount_confirmable)
                    .push_bind(l.idle_months);
            });
            insert.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    fn writer(&self) -> &sqlx::SqlitePool {
        &self.write
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, PortError> {
        Ok(self.write.begin_with(Self::BEGIN).await?)
    }
}

#[async_trait]
impl ports::RegisterChanges for SqliteStore {
    async fn scan_register(
        &self,
        each: &mut (dyn FnMut(History) -> Result<(), PortError> + Send),
    ) -> Result<i64, PortError> {
        use futures_util::TryStreamExt;
        // One read transaction: the scan sees the register as of the last change it notes.
        let mut scan = sqlx::ConnectOptions::connect(&self.scan).await?;
        let mut tx = sqlx::Connection::begin(&mut scan).await?;
        let (seq,): (i64,) = sqlx::query_as("SELECT max(seq) FROM register_changes").fetch_one(&mut *tx).await?;
        let mut current: Vec<History> = Vec::with_capacity(1);
        {
            let mut rows = sqlx::query_as::<_, MatchedState>(SCAN).fetch(&mut *tx);
            while let Some(row) = rows.try_next().await? {
                if current.last().is_some_and(|h| h.code != row.household_code) {
                    each(current.pop().expect("checked above"))?;
                }
                ports::policy::add_state(&mut current, row)?;
            }
        }
        tx.rollback().await?;
        if let Some(last) = current.pop() {
            each(last)?;
        }
        Ok(seq)
    }

    async fn changes_from(&self, from: i64, limit: u32) -> Result<Vec<(i64, String)>, PortError> {
        Ok(sqlx::query_as(CHANGES_FROM).bind(from).bind(i64::from(limit)).fetch_all(&self.changes).await?)
    }

    async fn households_now(&self, codes: &[String]) -> Result<Vec<History>, PortError> {
        let found = ports::RegisterStore::histories_matching(self, QueryKind::HouseholdCode, codes, false).await?;
        Ok(found.into_iter().filter_map(|(_, mut histories)| histories.pop()).collect())
    }

    fn written(&self) -> tokio::sync::watch::Receiver<i64> {
        self.written.subscribe()
    }
}

/// For each value, the states of every household it ever matched: the households through a
/// list subquery, so that a household's states are read once per value without a sort (the
/// caller puts the rows in order).
const MATCHING: super::eligibility::MatchingSql = super::eligibility::MatchingSql {
    citizen_id: "SELECT j.value AS matched, v.household_code, v.valid_from, v.valid_to, v.removal_reason, v.data, \
         (SELECT json_group_array(json_array(e.operator, e.start_date, e.end_date)) FROM enrollments e \
         WHERE e.household_code = v.household_code) AS holdings \
         FROM json_each($1) AS j JOIN household_versions v ON v.household_code IN \
         (SELECT c.household_code FROM citizen_households c WHERE c.citizen_id = j.value)",
    household_code: "SELECT v.household_code AS matched, v.household_code, v.valid_from, v.valid_to, \
         v.removal_reason, v.data, \
         (SELECT json_group_array(json_array(e.operator, e.start_date, e.end_date)) FROM enrollments e \
         WHERE e.household_code = v.household_code) AS holdings FROM json_each($1) AS j JOIN household_versions v ON v.household_code = j.value",
    certificate_number: "SELECT j.value AS matched, v.household_code, v.valid_from, v.valid_to, v.removal_reason, \
         v.data, (SELECT json_group_array(json_array(e.operator, e.start_date, e.end_date)) FROM enrollments e \
         WHERE e.household_code = v.household_code) AS holdings FROM json_each($1) AS j JOIN household_versions v ON v.household_code IN \
         (SELECT h.household_code FROM household_versions h WHERE h.certificate_number = j.value)",
};

async fn insert_decisions(conn: &mut sqlx::SqliteConnection, rows: &[StoredDecision]) -> Result<(), PortError> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let mut insert = QueryBuilder::<Sqlite>::new(super::eligibility::DECISION_INSERT);
        insert.push_values(chunk, |mut row, d: &StoredDecision| {
            row.push_bind(d.call_id.clone())
                .push_bind(d.idx)
                .push_bind(d.request_id.clone())
                .push_bind(d.asked_by.clone())
                .push_bind(d.decided_at)
                .push_bind(d.query_kind.clone())
                .push_bind(d.query_value.clone())
                .push_bind(d.as_of)
                .push_bind(d.household_code.clone())
                .push_bind(d.eligible)
                .push_bind(d.policy_version)
                .push_bind(d.body.clone());
        });
        insert.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// The registry queries both dialects share.
type Households = super::registry::RegistryQueries<SqliteStore>;

/// A member's citizen ID that a household on the list outside the batch lists now.
const CONFLICTS: &str = "SELECT s.idx, s.household_code, CAST(j.key AS INTEGER), j.value ->> 0, v.household_code \
     FROM batch_staging s, json_each(s.data, '$.members') j \
     JOIN citizen_households c ON c.citizen_id = j.value ->> 0 AND c.household_code <> s.household_code \
     JOIN household_versions v ON v.household_code = c.household_code AND v.valid_to IS NULL \
       AND v.removal_reason IS NULL \
     WHERE s.batch_id = $1 AND s.data IS NOT NULL \
       AND EXISTS (SELECT 1 FROM json_each(v.data, '$.members') o WHERE o.value ->> 0 = c.citizen_id) \
       AND NOT EXISTS (SELECT 1 FROM batch_staging o WHERE o.batch_id = $1 AND o.household_code = v.household_code) \
     ORDER BY s.idx LIMIT $2";

/// The members of the households the batch adds or changes that their households did not
/// list before (a household added has no rows yet: it never had a state); in citizen ID order.
const INSERT_NEW_CITIZENS: &str = "INSERT INTO citizen_households (citizen_id, household_code) \
     SELECT j.value ->> 0, s.household_code FROM batch_outcomes o \
     JOIN batch_staging s ON s.batch_id = o.batch_id AND s.idx = o.idx, json_each(s.data, '$.members') j \
     WHERE o.batch_id = $1 AND (o.outcome = 'ADDED' OR o.outcome = 'CHANGED' AND NOT EXISTS \
       (SELECT 1 FROM citizen_households c WHERE c.citizen_id = j.value ->> 0 AND c.household_code = s.household_code)) \
     ORDER BY 1";

const MEMBER_SQL: registry::MemberSql =
    registry::MemberSql { conflicts: CONFLICTS, new_citizens: INSERT_NEW_CITIZENS, feed_lock: "" };

async fn stage(
    conn: &mut sqlx::SqliteConnection,
    batch_id: &str,
    receiver: &str,
    records: &[StagedRecord],
) -> Result<(), PortError> {
    use sqlx::Connection;
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    Households::check_receiver(&mut tx, batch_id, receiver).await?;
    for chunk in records.chunks(ROWS_PER_INSERT) {
        let mut insert = QueryBuilder::<Sqlite>::new("INSERT INTO batch_staging (");
        insert.push(registry::STAGING_COLUMNS).push(") ");
        insert.push_values(chunk, |mut row, r: &StagedRecord| {
            row.push_bind(batch_id.to_owned())
                .push_bind(r.idx)
                .push_bind(r.household_code.clone())
                .push_bind(r.effective)
                .push_bind(r.removal_reason.clone())
                .push_bind(r.removal_note.clone())
                .push_bind(r.data.clone())
                .push_bind(r.content_hash.clone())
                .push_bind(r.commune_code.clone())
                .push_bind(r.certificate_number.clone())
                .push_bind(r.category.map(|c| c.as_str()))
                .push_bind(r.wants_device);
        });
        insert.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Copies the write-ahead log into the database every few seconds, on a connection of its
/// own, so that a writer's commit never waits for it (the commit of a million-household batch
/// would otherwise copy a gigabyte first). Stops when the store is closed.
async fn checkpoint_while_open(checkpointer: SqlitePool, mut stopped: tokio::sync::oneshot::Receiver<()>) {
    let mut ticks = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            _ = ticks.tick() => {}
        }
        // PASSIVE: copies what it can without waiting for readers or the writer, and never
        // makes them wait (a TRUNCATE checkpoint holds writers off while readers finish). Once
        // all of the log is copied, the next write starts it over and cuts the file back to
        // WAL_SIZE_LIMIT_BYTES.
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)").execute(&checkpointer).await {
            tracing::warn!(error = %crate::ErrorChain(&e), "WAL checkpoint failed");
        }
    }
    checkpointer.close().await;
}

/// Staged records go to a file of their own beside the database, attached to the writing
/// connection: without a write-ahead log or fsync, receiving a million records costs a few
/// seconds instead of rewriting them through the database's log. Losing it (a crash, a power
/// cut) loses only batches not yet applied, which their senders push again.
/// The folder of the claims' lock files, beside the database.
/// A claim as a lock on a file: closing the file ends it at once.
struct FileClaim(std::fs::File);

#[async_trait]
impl crate::domain::ports::Held for FileClaim {
    async fn release(self: Box<Self>) {
        drop(self.0);
    }
}

fn claims_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-claims");
    PathBuf::from(name)
}

/// Where a process stages the batches it receives: a file of its own in `DB-staging/`, written
/// without journal or fsync (staging a million households is a quarter of the time it would
/// take otherwise) and so left damaged by a kill in the middle of a write. Nothing in it
/// outlives its process (a batch whose receiver is gone is received again), so a file whose
/// process is gone, damaged or not, is deleted when the next store opens; a lock on
/// `NAME.lock`, which the operating system ends with the process, tells which those are.
#[derive(Debug)]
struct StagingArea {
    file: PathBuf,
    _lock: std::fs::File,
}

impl StagingArea {
    fn open(database: &Path) -> std::io::Result<Self> {
        let mut name = database.as_os_str().to_owned();
        name.push("-staging");
        let dir = PathBuf::from(name);
        // Before staging files had a folder of their own, one file of this name served every
        // process: scratch, like those below.
        if dir.is_file() {
            tracing::warn!(file = %dir.display(), "removed the shared staging file of an older version");
            std::fs::remove_file(&dir)?;
        }
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "lock") {
                let lock = std::fs::OpenOptions::new().write(true).open(&path)?;
                if lock.try_lock().is_ok() {
                    let staged = path.with_extension("db");
                    let size = std::fs::metadata(&staged).map(|m| m.len()).unwrap_or(0);
                    for leftover in [staged.clone(), path.with_extension("db-journal")] {
                        match std::fs::remove_file(&leftover) {
                            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                            _ => {}
                        }
                    }
                    std::fs::remove_file(&path)?;
                    tracing::info!(
                        file = %staged.display(),
                        bytes = size,
                        "discarded the staging area of a hub that stopped (a new one is made for this process)"
                    );
                }
            }
        }
        let token = crate::random_token();
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{token}.lock")))?;
        lock.try_lock().map_err(std::io::Error::other)?;
        Ok(Self { file: dir.join(format!("{token}.db")), _lock: lock })
    }
}

impl Drop for StagingArea {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.file);
        let _ = std::fs::remove_file(self.file.with_extension("db-journal"));
        let _ = std::fs::remove_file(self.file.with_extension("lock"));
    }
}

const STAGING_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS staging.batch_staging (
        batch_id TEXT NOT NULL, idx INTEGER NOT NULL, household_code TEXT NOT NULL,
        effective_date TEXT NOT NULL, removal_reason TEXT, removal_note TEXT, data TEXT,
        content_hash TEXT, commune_code TEXT, certificate_number TEXT,
        category TEXT, wants_device INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (batch_id, idx)) STRICT",
    "CREATE INDEX IF NOT EXISTS staging.batch_staging_household ON batch_staging (batch_id, household_code)",
    "CREATE TABLE IF NOT EXISTS staging.batch_outcomes (
        batch_id TEXT NOT NULL, idx INTEGER NOT NULL, household_code TEXT NOT NULL,
        effective_date TEXT NOT NULL, open_from TEXT, outcome TEXT NOT NULL,
        PRIMARY KEY (batch_id, idx)) STRICT",
    "CREATE INDEX IF NOT EXISTS staging.batch_outcomes_outcome ON batch_outcomes (batch_id, outcome)",
];

async fn attach_staging(conn: &mut sqlx::SqliteConnection, path: &str) -> Result<(), sqlx::Error> {
    sqlx::query("ATTACH DATABASE $1 AS staging").bind(path).execute(&mut *conn).await?;
    // A rollback journal in memory keeps ROLLBACK working; no fsync.
    sqlx::query("PRAGMA staging.journal_mode = MEMORY").execute(&mut *conn).await?;
    sqlx::query("PRAGMA staging.synchronous = OFF").execute(&mut *conn).await?;
    for statement in STAGING_SCHEMA {
        sqlx::query(*statement).execute(&mut *conn).await?;
    }
    Ok(())
}
