//! Storage of inspections: the inspection, its findings and their follow-up, frozen samples.
//! Every statement reads the same in both dialects; [`impl_inspection_store!`] writes a
//! backend's implementation from its pools.

use async_trait::async_trait;
use time::{Date, OffsetDateTime};

use super::StorageError;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct InspectionRow {
    pub id: i64,
    pub title: String,
    /// `YEARLY_PLAN` or `AUTHORITY_REQUEST`.
    pub basis: String,
    pub requested_by: String,
    /// JSON arrays.
    pub subject_units: String,
    pub subject_operators: String,
    pub team: String,
    pub starts_on: Date,
    pub ends_on: Date,
    pub note: String,
    /// `OPEN` or `CLOSED`.
    pub status: String,
    pub created_by: String,
    pub created_at: OffsetDateTime,
    pub conclusion: Option<String>,
    pub closed_by: Option<String>,
    pub closed_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone)]
pub struct NewInspection<'a> {
    pub title: &'a str,
    pub basis: &'a str,
    pub requested_by: &'a str,
    pub subject_units: &'a str,
    pub subject_operators: &'a str,
    pub team: &'a str,
    pub starts_on: Date,
    pub ends_on: Date,
    pub note: &'a str,
    pub created_by: &'a str,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FindingRow {
    pub inspection_id: i64,
    pub number: i64,
    pub severity: String,
    pub subject: String,
    pub description: String,
    pub evidence_reference: String,
    pub required_action: String,
    pub due_on: Date,
    /// `OPEN`, `IN_PROGRESS` or `RESOLVED`.
    pub status: String,
    pub recorded_by: String,
    pub recorded_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FindingUpdateRow {
    pub number: i64,
    pub seq: i64,
    pub status: String,
    pub note: String,
    pub updated_by: String,
    pub updated_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SampleRow {
    pub inspection_id: i64,
    pub number: i64,
    pub commune_code: String,
    pub as_of: Date,
    pub size: i64,
    pub population: i64,
    pub seed: String,
    /// The households as frozen, as JSON; empty in summaries.
    pub body: String,
    pub pulled_by: String,
    pub pulled_at: OffsetDateTime,
}

/// A finding's move from one status to another.
#[derive(Debug, Clone)]
pub struct FindingChange<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub note: &'a str,
    pub by: &'a str,
    pub at: OffsetDateTime,
}

/// The guard texts.
pub const CLOSED: &str = "the inspection is closed";
pub const STATUS_CHANGED: &str = "the finding's status changed meanwhile";

#[async_trait]
pub trait InspectionStore: Send + Sync {
    async fn insert_inspection(&self, new: &NewInspection<'_>) -> Result<i64, StorageError>;

    async fn inspection(&self, id: i64) -> Result<Option<InspectionRow>, StorageError>;

    /// Inspections with ids below `before`, newest first, of a status when given.
    async fn list_inspections(
        &self,
        status: Option<&str>,
        before: i64,
        limit: u32,
    ) -> Result<Vec<InspectionRow>, StorageError>;

    /// `Precondition(CLOSED)` when already closed; `NotFound`.
    async fn close_inspection(
        &self,
        id: i64,
        conclusion: &str,
        by: &str,
        at: OffsetDateTime,
    ) -> Result<(), StorageError>;

    /// Adds a finding numbered after the last; returns its number. `Precondition(CLOSED)`.
    async fn add_finding(&self, finding: &FindingRow) -> Result<i64, StorageError>;

    /// Moves a finding from `from` to `to`, recording the change. `Precondition` when its
    /// status is no longer `from`; `NotFound`.
    async fn update_finding(&self, id: i64, number: i64, change: &FindingChange<'_>) -> Result<(), StorageError>;

    async fn findings(&self, id: i64) -> Result<Vec<FindingRow>, StorageError>;

    async fn finding_updates(&self, id: i64) -> Result<Vec<FindingUpdateRow>, StorageError>;

    /// Households of a commune on `as_of` (on the list) with an enrolment running that day.
    async fn sample_population(&self, commune: &str, as_of: Date) -> Result<Vec<String>, StorageError>;

    /// Stores a sample numbered after the last; returns its number.
    async fn insert_sample(&self, sample: &SampleRow) -> Result<i64, StorageError>;

    async fn sample(&self, id: i64, number: i64) -> Result<Option<SampleRow>, StorageError>;

    /// The inspection's samples without their bodies.
    async fn samples(&self, id: i64) -> Result<Vec<SampleRow>, StorageError>;
}

macro_rules! select_inspections {
    ($condition:literal) => {
        concat!(
            "SELECT id, title, basis, requested_by, subject_units, subject_operators, team, starts_on, ends_on, \
             note, status, created_by, created_at, conclusion, closed_by, closed_at FROM inspections WHERE ",
            $condition
        )
    };
}
pub(super) use select_inspections;

macro_rules! impl_inspection_store {
    ($store:ty, read: $read:ident, bulk: $bulk:ident, write: $write:ident, begin: $begin:literal) => {
        #[async_trait::async_trait]
        impl $crate::storage::inspections::InspectionStore for $store {
            async fn insert_inspection(
                &self,
                n: &$crate::storage::inspections::NewInspection<'_>,
            ) -> Result<i64, StorageError> {
                let mut tx = self.$write.begin_with($begin).await?;
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

            async fn inspection(
                &self,
                id: i64,
            ) -> Result<Option<$crate::storage::inspections::InspectionRow>, StorageError> {
                Ok(sqlx::query_as($crate::storage::inspections::select_inspections!("id = $1"))
                    .bind(id)
                    .fetch_optional(&self.$read)
                    .await?)
            }

            async fn list_inspections(
                &self,
                status: Option<&str>,
                before: i64,
                limit: u32,
            ) -> Result<Vec<$crate::storage::inspections::InspectionRow>, StorageError> {
                Ok(sqlx::query_as($crate::storage::inspections::select_inspections!(
                    "id < $1 AND (CAST($2 AS TEXT) IS NULL OR status = $2) ORDER BY id DESC LIMIT $3"
                ))
                .bind(before)
                .bind(status)
                .bind(i64::from(limit))
                .fetch_all(&self.$read)
                .await?)
            }

            async fn close_inspection(
                &self,
                id: i64,
                conclusion: &str,
                by: &str,
                at: time::OffsetDateTime,
            ) -> Result<(), StorageError> {
                let mut tx = self.$write.begin_with($begin).await?;
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
                if done.rows_affected() != 1 {
                    let exists: Option<(i64,)> =
                        sqlx::query_as("SELECT id FROM inspections WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
                    return Err(match exists {
                        None => StorageError::NotFound,
                        Some(_) => StorageError::Precondition($crate::storage::inspections::CLOSED),
                    });
                }
                tx.commit().await?;
                Ok(())
            }

            async fn add_finding(&self, f: &$crate::storage::inspections::FindingRow) -> Result<i64, StorageError> {
                let mut tx = self.$write.begin_with($begin).await?;
                // Locks the inspection's row (PostgreSQL) and checks that it is open.
                let open = sqlx::query("UPDATE inspections SET status = status WHERE id = $1 AND status = 'OPEN'")
                    .bind(f.inspection_id)
                    .execute(&mut *tx)
                    .await?;
                if open.rows_affected() != 1 {
                    return Err(StorageError::Precondition($crate::storage::inspections::CLOSED));
                }
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
                .bind(&f.severity)
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

            async fn update_finding(
                &self,
                id: i64,
                number: i64,
                c: &$crate::storage::inspections::FindingChange<'_>,
            ) -> Result<(), StorageError> {
                let mut tx = self.$write.begin_with($begin).await?;
                let done = sqlx::query(
                    "UPDATE inspection_findings SET status = $4 WHERE inspection_id = $1 AND number = $2 AND status = $3",
                )
                .bind(id)
                .bind(number)
                .bind(c.from)
                .bind(c.to)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    return Err(StorageError::Precondition($crate::storage::inspections::STATUS_CHANGED));
                }
                sqlx::query(
                    "INSERT INTO inspection_finding_updates (inspection_id, number, seq, status, note, updated_by, \
                     updated_at) SELECT $1, $2, COUNT(*) + 1, $3, $4, $5, $6 FROM inspection_finding_updates \
                     WHERE inspection_id = $1 AND number = $2",
                )
                .bind(id)
                .bind(number)
                .bind(c.to)
                .bind(c.note)
                .bind(c.by)
                .bind(c.at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn findings(&self, id: i64) -> Result<Vec<$crate::storage::inspections::FindingRow>, StorageError> {
                Ok(sqlx::query_as(
                    "SELECT inspection_id, number, severity, subject, description, evidence_reference, \
                     required_action, due_on, status, recorded_by, recorded_at FROM inspection_findings \
                     WHERE inspection_id = $1 ORDER BY number",
                )
                .bind(id)
                .fetch_all(&self.$read)
                .await?)
            }

            async fn finding_updates(
                &self,
                id: i64,
            ) -> Result<Vec<$crate::storage::inspections::FindingUpdateRow>, StorageError> {
                Ok(sqlx::query_as(
                    "SELECT number, seq, status, note, updated_by, updated_at FROM inspection_finding_updates \
                     WHERE inspection_id = $1 ORDER BY number, seq",
                )
                .bind(id)
                .fetch_all(&self.$read)
                .await?)
            }

            async fn sample_population(&self, commune: &str, as_of: time::Date) -> Result<Vec<String>, StorageError> {
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
                .fetch_all(&self.$bulk)
                .await?)
            }

            async fn insert_sample(&self, s: &$crate::storage::inspections::SampleRow) -> Result<i64, StorageError> {
                let mut tx = self.$write.begin_with($begin).await?;
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
                .map_err(StorageError::from_insert)?;
                tx.commit().await?;
                Ok(number)
            }

            async fn sample(
                &self,
                id: i64,
                number: i64,
            ) -> Result<Option<$crate::storage::inspections::SampleRow>, StorageError> {
                Ok(sqlx::query_as(
                    "SELECT inspection_id, number, commune_code, as_of, size, population, seed, body, pulled_by, \
                     pulled_at FROM inspection_samples WHERE inspection_id = $1 AND number = $2",
                )
                .bind(id)
                .bind(number)
                .fetch_optional(&self.$read)
                .await?)
            }

            async fn samples(&self, id: i64) -> Result<Vec<$crate::storage::inspections::SampleRow>, StorageError> {
                Ok(sqlx::query_as(
                    "SELECT inspection_id, number, commune_code, as_of, size, population, seed, '' AS body, \
                     pulled_by, pulled_at FROM inspection_samples WHERE inspection_id = $1 ORDER BY number",
                )
                .bind(id)
                .fetch_all(&self.$read)
                .await?)
            }
        }
    };
}
pub(super) use impl_inspection_store;
