//! PostgreSQL, for production and for several hubs sharing one database.

use async_trait::async_trait;
use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use std::str::FromStr;
use time::OffsetDateTime;

use super::{MemberWrite, StorageError, Store, StoreOptions};
use crate::{
    audit::{self, AuditEntry, AuditRecord},
    domain::member::{Member, MemberFilter, NewMember, OrgCode},
};

shared::shared_queries!(PgPool);
use super::shared;

/// Locks the chain head so that concurrent appenders (other hubs) wait their turn.
const LOCK_AUDIT_HEAD: &str = "SELECT seq, hash FROM audit_head WHERE id = 1 FOR UPDATE";

const INSERT_AUDIT: &str = "INSERT INTO audit_log (seq, at, request_id, org_code, cert_fingerprint, method, \
     outcome, detail, request_digest, prev_hash, hash) \
     SELECT * FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[], $4::text[], $5::text[], $6::text[], \
     $7::text[], $8::text[], $9::text[], $10::text[], $11::text[])";

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn open(url: &str, options: &StoreOptions) -> Result<Self, StorageError> {
        let connect = PgConnectOptions::from_str(url)?.application_name("telesub");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await?;
        Ok(Self { pool })
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn migrate(&self) -> Result<(), StorageError> {
        sqlx::migrate!("./migrations/postgres").run(&self.pool).await?;
        Ok(())
    }

    async fn get_member(&self, code: &OrgCode) -> Result<Option<Member>, StorageError> {
        get_member(&self.pool, code).await
    }

    async fn list_members(
        &self,
        filter: &MemberFilter,
        after: Option<&OrgCode>,
        limit: u32,
    ) -> Result<Vec<Member>, StorageError> {
        list_members(&self.pool, filter, after, limit).await
    }

    async fn insert_member(&self, member: &NewMember, at: OffsetDateTime) -> Result<Member, StorageError> {
        insert_member(&self.pool, member, at).await?;
        get_member(&self.pool, &member.code).await?.ok_or(StorageError::NotFound)
    }

    async fn update_member(&self, write: &MemberWrite) -> Result<Member, StorageError> {
        update_member(&self.pool, write).await?;
        get_member(&self.pool, &write.code).await?.ok_or(StorageError::NotFound)
    }

    async fn record_certificate_use(
        &self,
        code: &OrgCode,
        fingerprint: &str,
        at: OffsetDateTime,
    ) -> Result<(), StorageError> {
        record_certificate_use(&self.pool, code, fingerprint, at).await
    }

    async fn has_ict_member(&self) -> Result<bool, StorageError> {
        has_ict_member(&self.pool).await
    }

    async fn append_audit(&self, entries: &[AuditEntry]) -> Result<i64, StorageError> {
        let mut tx = self.pool.begin().await?;
        let (seq, hash): (i64, String) = sqlx::query_as(LOCK_AUDIT_HEAD).fetch_one(&mut *tx).await?;
        let records = audit::link(seq, &hash, entries);
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
            .execute(&mut *tx)
            .await?;
        if let Some(last) = records.last() {
            sqlx::query(sql::SET_AUDIT_HEAD).bind(last.seq).bind(&last.hash).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(seq + 1)
    }

    async fn audit_records(&self, after: i64, limit: u32) -> Result<Vec<AuditRecord>, StorageError> {
        audit_records(&self.pool, after, limit).await
    }

    async fn audit_head(&self) -> Result<(i64, String), StorageError> {
        audit_head(&self.pool).await
    }
}
