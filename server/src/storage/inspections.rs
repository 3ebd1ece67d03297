//! Storage of inspections: the inspection, its findings and their follow-up, frozen samples.
//! Every statement reads the same in both dialects: one implementation serves both backends.

use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Type};
use time::{Date, OffsetDateTime};

use super::backend::{Column, Param, Record, SqlStore, hold_row};
use crate::domain::ports::{Conflict, PortError};

pub use crate::domain::ports::inspections::{
    Finding, FindingChange, FindingUpdate, InspectionStore, NewInspection, SampledHousehold, StoredInspection,
};

macro_rules! select_inspections {
    ($condition:literal) => {
        concat!(
            "SELECT id, title, basis, requested_by, subject_units, subject_operators, team, starts_on, ends_on, \
             note, status, created_by, created_at, conclusion, closed_by, closed_at FROM inspections WHERE ",
            $condition
        )
    };
}

/// What is added to an inspection (a finding, a sample) holds its row and needs it open: it is
/// numbered after the one added before it, and a closing waits for it.
const OPEN_INSPECTION: &str = "UPDATE inspections SET status = status WHERE id = $1 AND status = 'OPEN'";

/// One implementation for both backends: every statement reads the same in both dialects.
#[async_trait::async_trait]
impl<S> InspectionStore for S
where
    S: SqlStore,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<&'q str>: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> &'q String: Encode<'q, S::Db> + Type<S::Db>,
    String: Column<S::Db>,
    i64: Param<S::Db> + Column<S::Db>,
    Date: Param<S::Db>,
    OffsetDateTime: Param<S::Db>,
    usize: ColumnIndex<<S::Db as Database>::Row>,
    (i64,): Record<S::Db>,
    (Option<i64>,): Record<S::Db>,
    StoredInspection: Record<S::Db>,
    Finding: Record<S::Db>,
    FindingUpdate: Record<S::Db>,
    SampledHousehold: Record<S::Db>,
{
    async fn insert_inspection(&self, n: &NewInspection<'_>) -> Result<i64, PortError> {
        let mut tx = self.begin_write().await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO inspections (title, basis, requested_by, subject_units, subject_operators, team, \
             starts_on, ends_on, note, status, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'OPEN', $10, $11) RETURNING id",
        )
        .bind(n.title)
        .bind(n.basis)
        .bind(n.requested_by)
        .bind(n.subject_units)
        .bind(n.subject_operators)
        .bind(n.team)
        .bind(n.starts_on)
        .bind(n.ends_on)
        .bind(n.note)
        .bind(n.created_by)
        .bind(n.created_at)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn inspection(&self, id: i64) -> Result<Option<StoredInspection>, PortError> {
        Ok(sqlx::query_as(select_inspections!("id = $1")).bind(id).fetch_optional(self.reader()).await?)
    }

    async fn list_inspections(
        &self,
        status: Option<crate::domain::inspections::InspectionStatus>,
        before: i64,
        limit: u32,
    ) -> Result<Vec<StoredInspection>, PortError> {
        Ok(sqlx::query_as(select_inspections!(
            "id < $1 AND (CAST($2 AS TEXT) IS NULL OR status = $2) ORDER BY id DESC LIMIT $3"
        ))
        .bind(before)
        .bind(status.map(|s| s.as_str()))
        .bind(i64::from(limit))
        .fetch_all(self.reader())
        .await?)
    }

    async fn close_inspection(
        &self,
        id: i64,
        conclusion: &str,
        by: &str,
        at: time::OffsetDateTime,
    ) -> Result<(), PortError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE inspections SET status = 'CLOSED', conclusion = $2, closed_by = $3, closed_at = $4 \
             WHERE id = $1 AND status = 'OPEN'",
        )
        .bind(id)
        .bind(conclusion)
        .bind(by)
        .bind(at)
        .execute(&mut *tx)
        .await?;
        if S::rows_affected(&done) != 1 {
            let exists: Option<(i64,)> =
                sqlx::query_as("SELECT id FROM inspections WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
            return Err(match exists {
                None => PortError::NotFound,
                Some(_) => PortError::Conflict(crate::domain::ports::Conflict::InspectionClosed),
            });
        }
        tx.commit().await?;
        Ok(())
    }

    async fn add_finding(&self, f: &Finding) -> Result<i64, PortError> {
        let mut tx = self.begin_write().await?;
        hold_row::<S>(&mut tx, OPEN_INSPECTION, f.inspection_id, Conflict::InspectionClosed).await?;
        let (last,): (Option<i64>,) =
            sqlx::query_as("SELECT MAX(number) FROM inspection_findings WHERE inspection_id = $1")
                .bind(f.inspection_id)
                .fetch_one(&mut *tx)
                .await?;
        let number = last.unwrap_or(0) + 1;
        sqlx::query(
            "INSERT INTO inspection_findings (inspection_id, number, severity, subject, description, \
             evidence_reference, required_action, due_on, status, recorded_by, recorded_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'OPEN', $9, $10)",
        )
        .bind(f.inspection_id)
        .bind(number)
        .bind(f.severity.as_str())
        .bind(&f.subject)
        .bind(&f.description)
        .bind(&f.evidence_reference)
        .bind(&f.required_action)
        .bind(f.due_on)
        .bind(&f.recorded_by)
        .bind(f.recorded_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(number)
    }

    async fn update_finding(&self, id: i64, number: i64, c: &FindingChange<'_>) -> Result<(), PortError> {
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE inspection_findings SET status = $4 WHERE inspection_id = $1 AND number = $2 AND status = $3",
        )
        .bind(id)
        .bind(number)
        .bind(c.from.as_str())
        .bind(c.to.as_str())
        .execute(&mut *tx)
        .await?;
        if S::rows_affected(&done) != 1 {
            return Err(PortError::Conflict(crate::domain::ports::Conflict::StatusChanged));
        }
        sqlx::query(
            "INSERT INTO inspection_finding_updates (inspection_id, number, seq, status, note, updated_by, \
             updated_at) SELECT $1, $2, COUNT(*) + 1, $3, $4, $5, $6 FROM inspection_finding_updates \
             WHERE inspection_id = $1 AND number = $2",
        )
        .bind(id)
        .bind(number)
        .bind(c.to.as_str())
        .bind(c.note)
        .bind(c.by)
        .bind(c.at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn findings(&self, id: i64) -> Result<Vec<Finding>, PortError> {
        Ok(sqlx::query_as(
            "SELECT inspection_id, number, severity, subject, description, evidence_reference, \
             required_action, due_on, status, recorded_by, recorded_at FROM inspection_findings \
             WHERE inspection_id = $1 ORDER BY number",
        )
        .bind(id)
        .fetch_all(self.reader())
        .await?)
    }

    async fn finding_updates(&self, id: i64) -> Result<Vec<FindingUpdate>, PortError> {
        Ok(sqlx::query_as(
            "SELECT number, seq, status, note, updated_by, updated_at FROM inspection_finding_updates \
             WHERE inspection_id = $1 ORDER BY number, seq",
        )
        .bind(id)
        .fetch_all(self.reader())
        .await?)
    }

    async fn sample_population(&self, commune: &str, as_of: time::Date) -> Result<Vec<String>, PortError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT v.household_code FROM household_versions v \
             JOIN enrollments e ON e.household_code = v.household_code \
             WHERE v.commune_code = $1 AND v.valid_from <= $2 AND (v.valid_to IS NULL OR v.valid_to > $2) \
             AND v.removal_reason IS NULL \
             AND e.start_date <= $2 AND (e.end_date IS NULL OR e.end_date > $2) \
             ORDER BY v.household_code",
        )
        .bind(commune)
        .bind(as_of)
        .fetch_all(&mut *self.bulk().await?)
        .await?)
    }

    async fn insert_sample(&self, s: &SampledHousehold) -> Result<i64, PortError> {
        let mut tx = self.begin_write().await?;
        hold_row::<S>(&mut tx, OPEN_INSPECTION, s.inspection_id, Conflict::InspectionClosed).await?;
        let (last,): (Option<i64>,) =
            sqlx::query_as("SELECT MAX(number) FROM inspection_samples WHERE inspection_id = $1")
                .bind(s.inspection_id)
                .fetch_one(&mut *tx)
                .await?;
        let number = last.unwrap_or(0) + 1;
        sqlx::query(
            "INSERT INTO inspection_samples (inspection_id, number, commune_code, as_of, size, population, \
             seed, body, pulled_by, pulled_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(s.inspection_id)
        .bind(number)
        .bind(&s.commune_code)
        .bind(s.as_of)
        .bind(s.size)
        .bind(s.population)
        .bind(&s.seed)
        .bind(&s.body)
        .bind(&s.pulled_by)
        .bind(s.pulled_at)
        .execute(&mut *tx)
        .await
        .map_err(PortError::from_insert)?;
        tx.commit().await?;
        Ok(number)
    }

    async fn sample(&self, id: i64, number: i64) -> Result<Option<SampledHousehold>, PortError> {
        Ok(sqlx::query_as(
            "SELECT inspection_id, number, commune_code, as_of, size, population, seed, body, pulled_by, \
             pulled_at, purged_at FROM inspection_samples WHERE inspection_id = $1 AND number = $2",
        )
        .bind(id)
        .bind(number)
        .fetch_optional(self.reader())
        .await?)
    }

    async fn samples(&self, id: i64) -> Result<Vec<SampledHousehold>, PortError> {
        Ok(sqlx::query_as(
            "SELECT inspection_id, number, commune_code, as_of, size, population, seed, '' AS body, \
             pulled_by, pulled_at, purged_at FROM inspection_samples WHERE inspection_id = $1 ORDER BY number",
        )
        .bind(id)
        .fetch_all(self.reader())
        .await?)
    }
}
