//! Storage of the hub's members and the certificates they were seen with. Every statement
//! reads the same in both dialects: one implementation serves both backends.

use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Type};
use time::OffsetDateTime;

use super::{
    backend::{Column, Param, Record, SqlStore},
    shared::{self as sql, CertificateRow, MemberRow},
};
use crate::domain::{
    member::{Member, MemberFilter, MemberStatus, NewMember, OrgCode, Role},
    members::keeps_an_active_ict,
    ports::{Conflict, MemberStore, MemberWrite, PortError},
};

#[async_trait::async_trait]
impl<S> MemberStore for S
where
    S: SqlStore,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    usize: ColumnIndex<<S::Db as Database>::Row>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<&'q str>: Encode<'q, S::Db> + Type<S::Db>,
    String: Column<S::Db>,
    i64: Param<S::Db> + Column<S::Db>,
    OffsetDateTime: Param<S::Db>,
    MemberRow: Record<S::Db>,
    CertificateRow: Record<S::Db>,
    (String, String): Record<S::Db>,
{
    async fn get_member(&self, code: &OrgCode) -> Result<Option<Member>, PortError> {
        member(self.reader(), code).await
    }

    async fn list_members(
        &self,
        filter: &MemberFilter,
        after: Option<&OrgCode>,
        limit: u32,
    ) -> Result<Vec<Member>, PortError> {
        let pool = self.reader();
        let rows = sqlx::query_as::<_, MemberRow>(sql::LIST_MEMBERS)
            .bind(after.map_or("", |c| c.as_str()))
            .bind(filter.role.map(|r| r.as_str()))
            .bind(filter.status.map(|s| s.as_str()))
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
        let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
            return Ok(Vec::new());
        };
        let certificates = sqlx::query_as::<_, CertificateRow>(sql::CERTIFICATES_BETWEEN)
            .bind(first.code())
            .bind(last.code())
            .fetch_all(pool)
            .await?;
        sql::assemble(rows, certificates)
    }

    async fn insert_member(&self, member: &NewMember, at: OffsetDateTime) -> Result<Member, PortError> {
        sqlx::query(sql::INSERT_MEMBER)
            .bind(member.code.as_str())
            .bind(member.display_name.as_str())
            .bind(member.role.as_str())
            .bind(member.unit.as_ref().map(|u| u.as_str()))
            .bind(at)
            .execute(self.writer())
            .await
            .map_err(PortError::from_insert)?;
        // Read back where it was written, so that the answer holds the write.
        self::member(self.writer(), &member.code).await?.ok_or(PortError::NotFound)
    }

    /// Checks and writes a member's new state in one transaction, serialised with every other
    /// member write ([`SqlStore::LOCK_MEMBERS`]): two ICT members suspended at once cannot
    /// each count on the other.
    async fn update_member(&self, w: &MemberWrite) -> Result<Member, PortError> {
        let mut tx = self.begin_write().await?;
        sqlx::query(S::LOCK_MEMBERS).execute(&mut *tx).await?;
        let before: Option<(String, String)> =
            sqlx::query_as(sql::MEMBER_ROLE_STATUS).bind(w.code.as_str()).fetch_all(&mut *tx).await?.pop();
        let Some((role, status)) = before else {
            return Err(PortError::NotFound);
        };
        let before = (
            Role::parse(&role).map_err(PortError::Corrupt)?,
            MemberStatus::parse(&status).map_err(PortError::Corrupt)?,
        );
        let others: i64 = sqlx::query_scalar(sql::OTHER_ACTIVE_ICT).bind(w.code.as_str()).fetch_one(&mut *tx).await?;
        if !keeps_an_active_ict(before, (w.role, w.status), others.max(0) as u64) {
            return Err(PortError::Conflict(Conflict::LastActiveIct));
        }
        sqlx::query(sql::UPDATE_MEMBER)
            .bind(w.code.as_str())
            .bind(w.display_name.as_str())
            .bind(w.role.as_str())
            .bind(w.unit.as_ref().map(|u| u.as_str()))
            .bind(w.status.as_str())
            .bind(w.status_reason.as_deref())
            .bind(w.updated_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        member(self.writer(), &w.code).await?.ok_or(PortError::NotFound)
    }

    async fn record_certificate_use(
        &self,
        code: &OrgCode,
        fingerprint: &str,
        at: OffsetDateTime,
    ) -> Result<(), PortError> {
        sqlx::query(sql::RECORD_CERTIFICATE)
            .bind(code.as_str())
            .bind(fingerprint)
            .bind(at)
            .execute(self.writer())
            .await?;
        Ok(())
    }

    async fn has_ict_member(&self) -> Result<bool, PortError> {
        let n: Vec<i64> = sqlx::query_scalar(sql::COUNT_ICT).fetch_all(self.reader()).await?;
        Ok(n.first().is_some_and(|n| *n > 0))
    }
}

/// A member with the certificates it was seen with, read through `pool`.
async fn member<'p, DB>(pool: &'p sqlx::Pool<DB>, code: &OrgCode) -> Result<Option<Member>, PortError>
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    MemberRow: Record<DB>,
    CertificateRow: Record<DB>,
{
    let Some(row) = sqlx::query_as::<_, MemberRow>(sql::GET_MEMBER).bind(code.as_str()).fetch_all(pool).await?.pop()
    else {
        return Ok(None);
    };
    let certificates = sqlx::query_as::<_, CertificateRow>(sql::CERTIFICATES_BETWEEN)
        .bind(code.as_str())
        .bind(code.as_str())
        .fetch_all(pool)
        .await?;
    Ok(Some(row.into_member(certificates.into_iter().map(CertificateRow::into_use).collect())?))
}
