//! The embedded default: one SQLite file in WAL mode.
//!
//! All writes go through a pool of one connection, so writers queue in the hub instead of
//! failing with `SQLITE_BUSY`; reads use a separate pool and run beside the writer.

use std::{path::PathBuf, str::FromStr, time::Duration};

use async_trait::async_trait;
use sqlx::{
    QueryBuilder, Sqlite, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use time::OffsetDateTime;

use super::{MemberWrite, StorageError, Store, StoreOptions};
use crate::{
    audit::{self, AuditEntry, AuditRecord},
    domain::member::{Member, MemberFilter, NewMember, OrgCode},
};

shared::shared_queries!(SqlitePool);
use super::shared;

/// Rows per multi-row `INSERT`: what measured fastest here, far below SQLite's variable limit.
const ROWS_PER_INSERT: usize = 64;

#[derive(Debug, Clone)]
pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating when missing) the database file at `path`.
    pub async fn open(path: &str, options: &StoreOptions) -> Result<Self, StorageError> {
        if path.is_empty() || path == ":memory:" {
            return Err(StorageError::BadUrl(format!("sqlite://{path}")));
        }
        let base = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Every commit reaches the disk: the audit trail must survive a power cut. (NORMAL
            // was measured 1.6 times faster for single calls; see docs/BENCHMARKS.md.)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_with(base.clone())
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(base.read_only(true))
            .await?;
        Ok(Self { read, write, path: PathBuf::from(path) })
    }

    /// The database file.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn migrate(&self) -> Result<(), StorageError> {
        sqlx::migrate!("./migrations/sqlite").run(&self.write).await?;
        Ok(())
    }

    async fn get_member(&self, code: &OrgCode) -> Result<Option<Member>, StorageError> {
        get_member(&self.read, code).await
    }

    async fn list_members(
        &self,
        filter: &MemberFilter,
        after: Option<&OrgCode>,
        limit: u32,
    ) -> Result<Vec<Member>, StorageError> {
        list_members(&self.read, filter, after, limit).await
    }

    async fn insert_member(&self, member: &NewMember, at: OffsetDateTime) -> Result<Member, StorageError> {
        insert_member(&self.write, member, at).await?;
        get_member(&self.write, &member.code).await?.ok_or(StorageError::NotFound)
    }

    async fn update_member(&self, write: &MemberWrite) -> Result<Member, StorageError> {
        update_member(&self.write, write).await?;
        get_member(&self.write, &write.code).await?.ok_or(StorageError::NotFound)
    }

    async fn record_certificate_use(
        &self,
        code: &OrgCode,
        fingerprint: &str,
        at: OffsetDateTime,
    ) -> Result<(), StorageError> {
        record_certificate_use(&self.write, code, fingerprint, at).await
    }

    async fn has_ict_member(&self) -> Result<bool, StorageError> {
        has_ict_member(&self.read).await
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<i64, StorageError> {
        let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
        let (seq, hash): (i64, String) = sqlx::query_as(sql::AUDIT_HEAD).fetch_one(&mut *tx).await?;
        let records = audit::link(seq, &hash, entries);
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
                    .push_bind(r.hash.clone());
            });
            insert.build().execute(&mut *tx).await?;
        }
        if let Some(last) = records.last() {
            sqlx::query(sql::SET_AUDIT_HEAD).bind(last.seq).bind(&last.hash).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(seq + 1)
    }

    async fn audit_records(&self, after: i64, limit: u32) -> Result<Vec<AuditRecord>, StorageError> {
        audit_records(&self.read, after, limit).await
    }

    async fn audit_head(&self) -> Result<(i64, String), StorageError> {
        audit_head(&self.read).await
    }
}
