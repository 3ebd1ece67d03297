//! The audit log: records appended to the hash chain and the tree in one transaction with the
//! decisions the calls gave and the subjects they looked up, and the records read back. One
//! implementation serves both backends; how many rows are written at once is the backend's
//! ([`SqlStore::insert_audit`], [`SqlStore::insert_tree_nodes`], [`SqlStore::insert_subjects`]),
//! and so is how the chain's head is held while a transaction appends
//! ([`SqlStore::AUDIT_HEAD_FOR_APPEND`]).

use sqlx::{Database, Encode, Executor, IntoArguments, Type};
use time::OffsetDateTime;

use super::{
    backend::{Param, Record, SqlStore},
    shared::{self as sql, AuditRow},
};
use crate::{
    audit::{self, AuditEntry, AuditRecord, Subject, merkle::CompactRange},
    domain::ports::{AuditFilter, AuditLog, PortError, policy::StoredDecision},
};

/// Records read at a time while the tree is built from a trail written before it was kept.
const REBUILD_CHUNK: i64 = 10_000;

#[async_trait::async_trait]
impl<S> AuditLog for S
where
    S: SqlStore,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> Option<&'q str>: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> &'q String: Encode<'q, S::Db> + Type<S::Db>,
    i64: Param<S::Db>,
    String: Param<S::Db>,
    OffsetDateTime: Param<S::Db>,
    AuditRow: Record<S::Db>,
    (i64, String): Record<S::Db>,
    (i64, String, Option<String>): Record<S::Db>,
{
    async fn append_audit(
        &self,
        entries: &[AuditEntry],
        decisions: &[StoredDecision],
        subjects: &[(usize, Subject)],
    ) -> Result<Vec<(i64, String)>, PortError> {
        let mut tx = self.begin_write().await?;
        // Before the chain's head is held, so that other hubs wait only for the chain itself.
        S::insert_decisions(&mut tx, decisions).await?;
        let (seq, hash, tree): (i64, String, Option<String>) =
            sqlx::query_as(S::AUDIT_HEAD_FOR_APPEND).fetch_one(&mut *tx).await?;
        let mut range = match tree {
            Some(tree) => sql::tree_edge(&tree, seq)?,
            None => rebuild_tree::<S>(&mut tx, seq).await?,
        };
        let (records, nodes) = audit::link_into_tree(seq, &hash, entries, &mut range);
        S::insert_audit(&mut tx, &records).await?;
        S::insert_tree_nodes(&mut tx, &nodes).await?;
        S::insert_subjects(&mut tx, seq, subjects).await?;
        if let Some(last) = records.last() {
            sqlx::query(sql::SET_AUDIT_HEAD)
                .bind(last.seq)
                .bind(&last.hash)
                .bind(range.encode())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(records.into_iter().map(|r| (r.seq, r.hash)).collect())
    }

    async fn audit_records(&self, after: i64, limit: u32) -> Result<Vec<AuditRecord>, PortError> {
        sql::AuditReads::records(self.reader(), after, limit).await
    }

    async fn query_audit(&self, filter: &AuditFilter, after: i64, limit: u32) -> Result<Vec<AuditRecord>, PortError> {
        sql::AuditReads::query(self.reader(), filter, after, limit).await
    }

    async fn audit_head(&self) -> Result<(i64, String), PortError> {
        sql::AuditReads::head(self.reader()).await
    }
}

/// Builds the audit tree's right edge (and its stored nodes) from the records, for a trail
/// written before the tree was kept.
async fn rebuild_tree<S>(conn: &mut <S::Db as Database>::Connection, seq: i64) -> Result<CompactRange, PortError>
where
    S: SqlStore,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    i64: Param<S::Db>,
    AuditRow: Record<S::Db>,
{
    let mut range = CompactRange::default();
    let mut after = 0;
    loop {
        let rows: Vec<AuditRow> =
            sqlx::query_as(sql::AUDIT_RECORDS).bind(after).bind(REBUILD_CHUNK).fetch_all(&mut *conn).await?;
        let Some(last) = rows.last().map(|r| r.seq()) else { break };
        let records: Vec<AuditRecord> = rows.into_iter().map(Into::into).collect();
        let nodes = audit::extend_tree(&mut range, &records);
        S::insert_tree_nodes(conn, &nodes).await?;
        after = last;
    }
    sql::tree_edge(&range.encode(), seq)
}
