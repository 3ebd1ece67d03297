//! Storage of the household register: units, batches, staging and applying a batch, and the
//! history of every household.
//!
//! Applying a batch happens in one transaction, mostly in set-based SQL over the staged
//! rows: the hub decides each record's outcome (added, changed, removed, unchanged) against
//! the household's open state, checks what must hold across the register, then writes.
//! Records that land before a household's latest state (late changes) or on the same day as
//! it (corrections) are rare and take a row-by-row path that splits the history. The rules of
//! both paths are the domain's ([`crate::domain::batch_rules`]): the set-based outcomes are its
//! decision table rendered as one SQL `CASE`, the row-by-row path calls its plan.

use std::sync::LazyLock;

use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Type};
use time::{Date, OffsetDateTime};

use super::eligibility::MatchedState;
use super::{
    PortError,
    backend::{Column, Param, Record, SqlStore, hold_table},
    shared::case_sql,
};
use crate::domain::{
    batch_rules::{LatePlan, OUTCOMES, RecordFact, RecordOutcome, citizens_of, plan_late_record},
    eligibility::QueryKind,
    feed::{FEED_KINDS, FeedFact},
    household::{Category, stored_traits},
    member::UnitCode,
    ports::{RegisterStore, UnitStore},
    units::{AdminUnit, UnitLevel},
};

pub use crate::domain::ports::register::{
    ApplyCounts, ApplyProblem, Batch, HouseholdVersion, LateRecord, NewBatch, Staged, StagedRecord,
};

/// The statements of applying a batch that read members out of the stored JSON, which the
/// dialects do differently.
#[derive(Debug, Clone, Copy)]
pub(super) struct MemberSql {
    /// Citizen IDs in a batch that belong to households on the list outside it.
    pub(super) conflicts: &'static str,
    /// Index the members of the states the batch adds that their households did not list
    /// before (removal states list the members of the state they end).
    pub(super) new_citizens: &'static str,
    /// Keeps feed writers in `seq` order across hubs (empty when writers are serial anyway).
    pub(super) feed_lock: &'static str,
}

/// A stored state's category and device wish ([`stored_traits`]), for the row-by-row path.
pub(super) fn traits(data: &str) -> Result<(Category, bool), PortError> {
    stored_traits(data).map_err(PortError::Corrupt)
}

/// Feed events for the enrolled households a batch changed or removed, of the kind the
/// domain's table [`FEED_KINDS`] gives (`n` is the new state, `p` the one it follows).
pub(super) static FEED_EVENTS: LazyLock<String> = LazyLock::new(|| {
    let kind = case_sql(
        &FEED_KINDS,
        |fact| match fact {
            FeedFact::Removes => "n.removal_reason IS NOT NULL",
            FeedFact::CategoryChanged => "p.category IS NOT NULL AND n.category <> p.category",
        },
        |kind| kind.as_str(),
    );
    format!(
        "INSERT INTO feed_events (operator, enrollment_id, household_code, kind, \
         effective_date, category, previous_category, removal_reason, batch_id, recorded_at) \
         SELECT e.operator, e.id, o.household_code, {kind}, \
           o.effective_date, n.category, p.category, n.removal_reason, o.batch_id, $2 \
         FROM batch_outcomes o \
         JOIN enrollments e ON e.household_code = o.household_code \
           AND (e.end_date IS NULL OR e.end_date > o.effective_date) \
         JOIN household_versions n ON n.household_code = o.household_code AND n.valid_from = o.effective_date \
         LEFT JOIN household_versions p ON p.household_code = o.household_code AND p.valid_to = n.valid_from \
         WHERE o.batch_id = $1 AND o.outcome IN ('CHANGED', 'REMOVED') \
         ORDER BY o.idx, e.id"
    )
});

/// At most this many problems are collected before applying gives up.
pub const MAX_PROBLEMS: i64 = 1_000;

#[derive(sqlx::FromRow)]
pub(super) struct UnitRow {
    code: String,
    level: String,
    name: String,
    parent_code: Option<String>,
    valid_from: Option<Date>,
    valid_to: Option<Date>,
    successor_code: Option<String>,
}

impl UnitRow {
    pub(super) fn into_unit(self) -> Result<AdminUnit, PortError> {
        let corrupt = |e: String| PortError::Corrupt(format!("unit {}: {e}", self.code));
        Ok(AdminUnit {
            code: UnitCode::parse(&self.code).map_err(corrupt)?,
            level: UnitLevel::parse(&self.level).map_err(corrupt)?,
            name: self.name.clone(),
            parent: self.parent_code.as_deref().map(UnitCode::parse).transpose().map_err(corrupt)?,
            valid_from: self.valid_from,
            valid_to: self.valid_to,
            successor: self.successor_code.as_deref().map(UnitCode::parse).transpose().map_err(corrupt)?,
        })
    }
}

pub(super) const UNITS: &str = "SELECT code, level, name, parent_code, valid_from, valid_to, successor_code \
     FROM admin_units ORDER BY code, valid_from";

pub(super) const COUNT_UNITS: &str = "SELECT COUNT(*) FROM admin_units";

pub(super) const INSERT_UNIT: &str = "INSERT INTO admin_units \
     (code, level, name, parent_code, valid_from, valid_to, successor_code) VALUES ($1, $2, $3, $4, $5, $6, $7)";

/// A version is found by its code and start (`IS NOT DISTINCT FROM`: the start may be NULL).
pub(super) const UPDATE_UNIT: &str = "UPDATE admin_units SET name = $3, valid_to = $4, successor_code = $5 \
     WHERE code = $1 AND valid_from IS NOT DISTINCT FROM $2";

pub(super) const GET_BATCH: &str = "SELECT seq, batch_id, kind, review_period, effective_date, note, status, \
     content_digest, records, added, changed, removed, unchanged, pushed_by, received_at, applied_at \
     FROM household_batches WHERE batch_id = $1";

pub(super) const LIST_BATCHES: &str = "SELECT seq, batch_id, kind, review_period, effective_date, note, status, \
     content_digest, records, added, changed, removed, unchanged, pushed_by, received_at, applied_at \
     FROM household_batches WHERE status = 'APPLIED' AND seq < $1 ORDER BY seq DESC LIMIT $2";

pub(super) const DELETE_RECEIVING: &str = "DELETE FROM household_batches WHERE batch_id = $1 AND status = 'RECEIVING'";
pub(super) const DELETE_STAGING: &str = "DELETE FROM batch_staging WHERE batch_id = $1";
pub(super) const DELETE_OUTCOMES: &str = "DELETE FROM batch_outcomes WHERE batch_id = $1";
pub(super) const COUNT_RECEIVING: &str = "SELECT COUNT(*) FROM household_batches WHERE status = 'RECEIVING'";
/// Without a WHERE clause SQLite empties a table without visiting its rows.
pub(super) const EMPTY_STAGING: &str = "DELETE FROM batch_staging";
pub(super) const EMPTY_OUTCOMES: &str = "DELETE FROM batch_outcomes";

pub(super) const INSERT_BATCH: &str = "INSERT INTO household_batches \
     (batch_id, kind, review_period, effective_date, note, status, pushed_by, received_at, receiver) \
     VALUES ($1, $2, $3, $4, $5, 'RECEIVING', $6, $7, $8)";

/// The stream receiving a batch, while it is being received.
pub(super) const RECEIVER_OF: &str =
    "SELECT receiver FROM household_batches WHERE batch_id = $1 AND status = 'RECEIVING'";

pub(super) const RECEIVING_BATCHES: &str =
    "SELECT batch_id FROM household_batches WHERE status = 'RECEIVING' ORDER BY seq";

pub(super) const COUNT_STAGED: &str = "SELECT COUNT(*) FROM batch_staging WHERE batch_id = $1";

pub(super) const STAGING_COLUMNS: &str = "batch_id, idx, household_code, effective_date, removal_reason, \
     removal_note, data, content_hash, commune_code, certificate_number, category, wants_device";

/// For a snapshot: every household on the list that the snapshot leaves out is removed.
pub(super) const STAGE_SNAPSHOT_REMOVALS: &str = "INSERT INTO batch_staging \
     (batch_id, idx, household_code, effective_date, removal_reason, removal_note) \
     SELECT $1, -ROW_NUMBER() OVER (ORDER BY v.household_code), v.household_code, $2, 'NOT_IN_REVIEW', '' \
     FROM household_versions v \
     WHERE v.valid_to IS NULL AND v.removal_reason IS NULL \
       AND NOT EXISTS (SELECT 1 FROM batch_staging s WHERE s.batch_id = $1 AND s.household_code = v.household_code)";

/// Each record's outcome against the household's open (latest) state (`v`), by the domain's
/// table [`OUTCOMES`]. `$2` is the date of the newest applied snapshot (NULL when there is none).
pub(super) static DECIDE_OUTCOMES: LazyLock<String> = LazyLock::new(|| {
    let outcome = case_sql(
        &OUTCOMES,
        |fact| match fact {
            RecordFact::Removes => "s.removal_reason IS NOT NULL",
            RecordFact::Known => "v.valid_from IS NOT NULL",
            RecordFact::OnList => "v.valid_from IS NOT NULL AND v.removal_reason IS NULL",
            RecordFact::OpenLater => "v.valid_from > s.effective_date",
            RecordFact::OpenSameDay => "v.valid_from = s.effective_date",
            RecordFact::SameContent => "v.content_hash = s.content_hash",
            RecordFact::BeforeNewestSnapshot => "s.effective_date < $2",
        },
        |outcome| outcome.as_str(),
    );
    format!(
        "INSERT INTO batch_outcomes (batch_id, idx, household_code, effective_date, open_from, outcome) \
         SELECT s.batch_id, s.idx, s.household_code, s.effective_date, v.valid_from, {outcome} \
         FROM batch_staging s \
         LEFT JOIN household_versions v ON v.household_code = s.household_code AND v.valid_to IS NULL \
         WHERE s.batch_id = $1"
    )
});

/// The dates of the applied review snapshots, oldest first.
pub(super) const SNAPSHOT_DATES: &str = "SELECT DISTINCT effective_date FROM household_batches \
     WHERE kind = 'SNAPSHOT' AND status = 'APPLIED' ORDER BY effective_date";

pub(super) const NOT_ON_LIST: &str = "SELECT idx, household_code FROM batch_outcomes \
     WHERE batch_id = $1 AND outcome = 'NOT_ON_LIST' ORDER BY idx LIMIT $2";

pub(super) const RECORDED_AFTER: &str =
    "SELECT household_code, valid_from FROM household_versions WHERE valid_from > $1 ORDER BY valid_from LIMIT $2";

pub(super) const CLOSE_OPEN_VERSIONS: &str = "UPDATE household_versions SET valid_to = o.effective_date \
     FROM batch_outcomes o \
     WHERE o.batch_id = $1 AND o.outcome IN ('CHANGED', 'REMOVED') \
       AND household_versions.household_code = o.household_code AND household_versions.valid_to IS NULL";

/// Reads the staged rows in the order they were written (the outcomes are small and cached).
pub(super) const INSERT_NEW_VERSIONS: &str = "INSERT INTO household_versions \
     (household_code, valid_from, valid_to, removal_reason, removal_note, data, content_hash, commune_code, \
      certificate_number, batch_id, recorded_at, category, wants_device) \
     SELECT s.household_code, s.effective_date, NULL, NULL, NULL, s.data, s.content_hash, s.commune_code, \
       s.certificate_number, s.batch_id, $2, s.category, s.wants_device \
     FROM batch_staging s \
     WHERE s.batch_id = $1 AND EXISTS (SELECT 1 FROM batch_outcomes o \
       WHERE o.batch_id = s.batch_id AND o.idx = s.idx AND o.outcome IN ('ADDED', 'CHANGED'))";

/// A removal keeps the last data the household had (the state just closed).
pub(super) const INSERT_REMOVAL_VERSIONS: &str = "INSERT INTO household_versions \
     (household_code, valid_from, valid_to, removal_reason, removal_note, data, content_hash, commune_code, \
      certificate_number, batch_id, recorded_at, category, wants_device) \
     SELECT s.household_code, s.effective_date, NULL, s.removal_reason, s.removal_note, v.data, v.content_hash, \
       v.commune_code, v.certificate_number, s.batch_id, $2, v.category, v.wants_device \
     FROM batch_outcomes o \
     JOIN batch_staging s ON s.batch_id = o.batch_id AND s.idx = o.idx \
     JOIN household_versions v ON v.household_code = o.household_code AND v.valid_from = o.open_from \
     WHERE o.batch_id = $1 AND o.outcome = 'REMOVED'";

pub(super) const SLOW_PATH: &str = "SELECT s.idx, s.household_code, s.effective_date, s.removal_reason, \
     s.removal_note, s.data, s.content_hash, s.commune_code, s.certificate_number \
     FROM batch_outcomes o JOIN batch_staging s ON s.batch_id = o.batch_id AND s.idx = o.idx \
     WHERE o.batch_id = $1 AND o.outcome IN ('LATE', 'SAME_DAY') ORDER BY o.idx";

pub(super) const SET_OUTCOME: &str = "UPDATE batch_outcomes SET outcome = $3 WHERE batch_id = $1 AND idx = $2";

pub(super) const COUNT_OUTCOMES: &str =
    "SELECT outcome, COUNT(*) FROM batch_outcomes WHERE batch_id = $1 GROUP BY outcome";

pub(super) const MARK_APPLIED: &str = "UPDATE household_batches SET status = 'APPLIED', content_digest = $2, \
     records = $3, added = $4, changed = $5, removed = $6, unchanged = $7, applied_at = $8 WHERE batch_id = $1";

pub(super) const VERSIONS_OF: &str = "SELECT id, household_code, valid_from, valid_to, removal_reason, removal_note, \
     data, content_hash, commune_code, certificate_number, batch_id, recorded_at \
     FROM household_versions WHERE household_code = $1 ORDER BY valid_from";

pub(super) const VERSION_ON: &str = "SELECT id, household_code, valid_from, valid_to, removal_reason, removal_note, \
     data, content_hash, commune_code, certificate_number, batch_id, recorded_at \
     FROM household_versions WHERE household_code = $1 AND valid_from <= $2 AND (valid_to IS NULL OR valid_to > $2)";

/// The states on a date of every household the citizen ID was ever recorded in; the caller
/// keeps those that list it.
pub(super) const FIND_BY_CITIZEN: &str = "SELECT v.id, v.household_code, v.valid_from, v.valid_to, \
     v.removal_reason, v.removal_note, v.data, v.content_hash, v.commune_code, v.certificate_number, v.batch_id, \
     v.recorded_at \
     FROM citizen_households c JOIN household_versions v ON v.household_code = c.household_code \
     WHERE c.citizen_id = $1 AND v.valid_from <= $2 AND (v.valid_to IS NULL OR v.valid_to > $2) \
     ORDER BY v.household_code";

pub(super) const FIND_BY_CERTIFICATE: &str = "SELECT id, household_code, valid_from, valid_to, removal_reason, \
     removal_note, data, content_hash, commune_code, certificate_number, batch_id, recorded_at \
     FROM household_versions \
     WHERE certificate_number = $1 AND valid_from <= $2 AND (valid_to IS NULL OR valid_to > $2) \
     ORDER BY household_code";

pub(super) const SUPERSEDE_VERSION: &str = "INSERT INTO household_versions_superseded \
     (household_code, valid_from, valid_to, removal_reason, removal_note, data, content_hash, batch_id, \
      recorded_at, superseded_by, superseded_at) \
     SELECT household_code, valid_from, valid_to, removal_reason, removal_note, data, content_hash, batch_id, \
       recorded_at, $3, $4 FROM household_versions WHERE household_code = $1 AND valid_from = $2";

pub(super) const DELETE_VERSION: &str = "DELETE FROM household_versions WHERE household_code = $1 AND valid_from = $2";

pub(super) const SET_VERSION_END: &str =
    "UPDATE household_versions SET valid_to = $3 WHERE household_code = $1 AND valid_from = $2";

/// One state written by the row-by-row path; `$12` and `$13` are the state's category and
/// whether it asks for a device ([`crate::domain::household::stored_traits`]).
pub(super) const INSERT_VERSION: &str = "INSERT INTO household_versions \
     (household_code, valid_from, valid_to, removal_reason, removal_note, data, content_hash, commune_code, \
      certificate_number, batch_id, recorded_at, category, wants_device) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

pub(super) const INSERT_CITIZEN: &str =
    "INSERT INTO citizen_households (citizen_id, household_code) VALUES ($1, $2) ON CONFLICT DO NOTHING";

/// The registry queries both dialects share; whether a backend may empty the staging tables
/// when no batch is being received is [`SqlStore::EMPTY_WHEN_ALONE`].
pub(super) struct RegistryQueries<S>(std::marker::PhantomData<S>);

impl<S> RegistryQueries<S>
where
    S: SqlStore,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    usize: ColumnIndex<<S::Db as Database>::Row>,
    for<'a> &'a str: ColumnIndex<<S::Db as Database>::Row>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<&'q str>: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> &'q String: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<&'q String>: Encode<'q, S::Db> + Type<S::Db>,
    i64: Param<S::Db> + Column<S::Db>,
    String: Param<S::Db> + Column<S::Db>,
    bool: Param<S::Db> + Column<S::Db>,
    Date: Param<S::Db> + Column<S::Db>,
    OffsetDateTime: Param<S::Db> + Column<S::Db>,
    Option<i64>: Param<S::Db>,
    Option<String>: Param<S::Db>,
    Option<Date>: Param<S::Db>,
    Option<OffsetDateTime>: Param<S::Db>,
    HouseholdVersion: Record<S::Db>,
    Batch: Record<S::Db>,
    LateRecord: Record<S::Db>,
    UnitRow: Record<S::Db>,
{
    pub(super) async fn units(
        conn: &mut <S::Db as Database>::Connection,
    ) -> Result<Vec<crate::domain::units::AdminUnit>, PortError> {
        let rows: Vec<UnitRow> = sqlx::query_as(UNITS).fetch_all(&mut *conn).await?;
        rows.into_iter().map(UnitRow::into_unit).collect()
    }

    /// Inserts new unit versions and rewrites the name, end and successor of changed ones.
    pub(super) async fn save_units(
        conn: &mut <S::Db as Database>::Connection,
        new: &[crate::domain::units::AdminUnit],
        changed: &[crate::domain::units::AdminUnit],
    ) -> Result<(), PortError> {
        for u in new {
            sqlx::query(INSERT_UNIT)
                .bind(u.code.as_str())
                .bind(u.level.as_str())
                .bind(&u.name)
                .bind(u.parent.as_ref().map(|p| p.as_str()))
                .bind(u.valid_from)
                .bind(u.valid_to)
                .bind(u.successor.as_ref().map(|s| s.as_str()))
                .execute(&mut *conn)
                .await
                .map_err(PortError::from_insert)?;
        }
        for u in changed {
            sqlx::query(UPDATE_UNIT)
                .bind(u.code.as_str())
                .bind(u.valid_from)
                .bind(&u.name)
                .bind(u.valid_to)
                .bind(u.successor.as_ref().map(|s| s.as_str()))
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    pub(super) async fn count_units(conn: &mut <S::Db as Database>::Connection) -> Result<i64, PortError> {
        let n: Vec<i64> = sqlx::query_scalar(COUNT_UNITS).fetch_all(&mut *conn).await?;
        Ok(n.first().copied().unwrap_or_default())
    }

    pub(super) async fn batch(
        conn: &mut <S::Db as Database>::Connection,
        batch_id: &str,
    ) -> Result<Option<Batch>, PortError> {
        Ok(sqlx::query_as(GET_BATCH).bind(batch_id).fetch_all(&mut *conn).await?.pop())
    }

    pub(super) async fn list_batches(
        conn: &mut <S::Db as Database>::Connection,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Batch>, PortError> {
        Ok(sqlx::query_as(LIST_BATCHES)
            .bind(before.unwrap_or(i64::MAX))
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?)
    }

    pub(super) async fn begin_batch(
        conn: &mut <S::Db as Database>::Connection,
        b: &NewBatch<'_>,
    ) -> Result<(), PortError> {
        Self::discard_batch(&mut *conn, b.batch_id).await?;
        sqlx::query(INSERT_BATCH)
            .bind(b.batch_id)
            .bind(b.kind.as_str())
            .bind(b.review_period)
            .bind(b.effective)
            .bind(b.note)
            .bind(b.pushed_by)
            .bind(b.received_at)
            .bind(b.receiver)
            .execute(&mut *conn)
            .await
            .map_err(PortError::from_insert)?;
        Ok(())
    }

    pub(super) async fn discard_batch(
        conn: &mut <S::Db as Database>::Connection,
        batch_id: &str,
    ) -> Result<(), PortError> {
        sqlx::query(DELETE_RECEIVING).bind(batch_id).execute(&mut *conn).await?;
        Self::clear_staging(&mut *conn, batch_id).await
    }

    /// Drops a batch's staged rows; when no other batch is being received (and the
    /// backend can empty tables cheaply, `EMPTY_WHEN_ALONE`), the whole staging area.
    pub(super) async fn clear_staging(
        conn: &mut <S::Db as Database>::Connection,
        batch_id: &str,
    ) -> Result<(), PortError> {
        let receiving: Vec<i64> = sqlx::query_scalar(COUNT_RECEIVING).fetch_all(&mut *conn).await?;
        if S::EMPTY_WHEN_ALONE && receiving.first().is_none_or(|n| *n == 0) {
            sqlx::query(EMPTY_STAGING).execute(&mut *conn).await?;
            sqlx::query(EMPTY_OUTCOMES).execute(&mut *conn).await?;
        } else {
            sqlx::query(DELETE_STAGING).bind(batch_id).execute(&mut *conn).await?;
            sqlx::query(DELETE_OUTCOMES).bind(batch_id).execute(&mut *conn).await?;
        }
        Ok(())
    }

    pub(super) async fn versions_of(
        conn: &mut <S::Db as Database>::Connection,
        code: &str,
    ) -> Result<Vec<HouseholdVersion>, PortError> {
        Ok(sqlx::query_as(VERSIONS_OF).bind(code).fetch_all(&mut *conn).await?)
    }

    pub(super) async fn version_on(
        conn: &mut <S::Db as Database>::Connection,
        code: &str,
        date: time::Date,
    ) -> Result<Option<HouseholdVersion>, PortError> {
        Ok(sqlx::query_as(VERSION_ON).bind(code).bind(date).fetch_all(&mut *conn).await?.pop())
    }

    pub(super) async fn find_by_citizen(
        conn: &mut <S::Db as Database>::Connection,
        citizen_id: &str,
        date: time::Date,
    ) -> Result<Vec<HouseholdVersion>, PortError> {
        let candidates: Vec<HouseholdVersion> =
            sqlx::query_as(FIND_BY_CITIZEN).bind(citizen_id).bind(date).fetch_all(&mut *conn).await?;
        Ok(candidates.into_iter().filter(|v| citizens_of(&v.data).iter().any(|c| c == citizen_id)).collect())
    }

    pub(super) async fn find_by_certificate(
        conn: &mut <S::Db as Database>::Connection,
        number: &str,
        date: time::Date,
    ) -> Result<Vec<HouseholdVersion>, PortError> {
        Ok(sqlx::query_as(FIND_BY_CERTIFICATE).bind(number).bind(date).fetch_all(&mut *conn).await?)
    }

    /// Everything of applying a batch that both dialects write alike; `citizens_sql`
    /// expands the staged citizen IDs, which the dialects do differently.
    /// Fails unless the batch is still received by `receiver`.
    pub(super) async fn check_receiver(
        conn: &mut <S::Db as Database>::Connection,
        batch_id: &str,
        receiver: &str,
    ) -> Result<(), PortError> {
        let current: Option<Option<String>> =
            sqlx::query_scalar(RECEIVER_OF).bind(batch_id).fetch_optional(&mut *conn).await?;
        match current {
            Some(Some(r)) if r == receiver => Ok(()),
            _ => Err(PortError::Conflict(crate::domain::ports::Conflict::NotTheReceiver)),
        }
    }

    pub(super) async fn apply_shared(
        conn: &mut <S::Db as Database>::Connection,
        batch: &Staged<'_>,
        kind: crate::domain::household::BatchKind,
        effective: time::Date,
        at: time::OffsetDateTime,
        sql: MemberSql,
    ) -> Result<Result<ApplyCounts, Vec<ApplyProblem>>, PortError> {
        use crate::domain::household::BatchKind;
        let batch_id = batch.batch_id;
        // Only what this stream staged, all of it.
        Self::check_receiver(&mut *conn, batch_id, batch.receiver).await?;
        let staged: i64 = sqlx::query_scalar(COUNT_STAGED).bind(batch_id).fetch_one(&mut *conn).await?;
        if staged != batch.records {
            return Err(PortError::Conflict(crate::domain::ports::Conflict::StagedOther));
        }
        let mut problems = Vec::new();
        if kind == BatchKind::Snapshot {
            let later: Vec<(String, time::Date)> =
                sqlx::query_as(RECORDED_AFTER).bind(effective).bind(MAX_PROBLEMS).fetch_all(&mut *conn).await?;
            problems.extend(later.into_iter().map(|(household_code, valid_from)| {
                ApplyProblem::SnapshotBeforeRecorded { household_code, valid_from }
            }));
            if !problems.is_empty() {
                return Ok(Err(problems));
            }
            sqlx::query(STAGE_SNAPSHOT_REMOVALS).bind(batch_id).bind(effective).execute(&mut *conn).await?;
        }
        let snapshots: Vec<time::Date> = sqlx::query_scalar(SNAPSHOT_DATES).fetch_all(&mut *conn).await?;
        sqlx::query(DECIDE_OUTCOMES.as_str())
            .bind(batch_id)
            .bind(snapshots.last().copied())
            .execute(&mut *conn)
            .await?;
        let not_on_list: Vec<(i64, String)> =
            sqlx::query_as(NOT_ON_LIST).bind(batch_id).bind(MAX_PROBLEMS).fetch_all(&mut *conn).await?;
        problems.extend(
            not_on_list.into_iter().map(|(idx, household_code)| ApplyProblem::NotOnList { idx, household_code }),
        );
        if kind == BatchKind::Delta {
            let elsewhere: Vec<(i64, String, i64, String, String)> =
                sqlx::query_as(sql.conflicts).bind(batch_id).bind(MAX_PROBLEMS).fetch_all(&mut *conn).await?;
            problems.extend(elsewhere.into_iter().map(|(idx, household_code, member, citizen_id, other_household)| {
                ApplyProblem::CitizenElsewhere { idx, household_code, member, citizen_id, other_household }
            }));
        }
        if !problems.is_empty() {
            return Ok(Err(problems));
        }

        // Statements with nothing to do are skipped: with no rows to start from, planners
        // may still walk the whole register.
        let mut planned = ApplyCounts::default();
        for (outcome, n) in Self::outcome_counts(&mut *conn, batch_id).await? {
            planned.add(outcome, n);
        }
        if planned.changed + planned.removed > 0 {
            sqlx::query(CLOSE_OPEN_VERSIONS).bind(batch_id).execute(&mut *conn).await?;
        }
        if planned.added + planned.changed > 0 {
            sqlx::query(INSERT_NEW_VERSIONS).bind(batch_id).bind(at).execute(&mut *conn).await?;
        }
        if planned.removed > 0 {
            sqlx::query(INSERT_REMOVAL_VERSIONS).bind(batch_id).bind(at).execute(&mut *conn).await?;
        }
        if planned.added + planned.changed > 0 {
            sqlx::query(sql.new_citizens).bind(batch_id).execute(&mut *conn).await?;
        }

        let late: Vec<LateRecord> = sqlx::query_as(SLOW_PATH).bind(batch_id).fetch_all(&mut *conn).await?;
        for row in late {
            let versions = Self::versions_of(&mut *conn, &row.household_code).await?;
            match plan_late_record(&row, &versions, &snapshots, batch_id, at) {
                LatePlan::Unchanged => {
                    sqlx::query(SET_OUTCOME)
                        .bind(batch_id)
                        .bind(row.idx)
                        .bind(RecordOutcome::Unchanged.as_str())
                        .execute(&mut *conn)
                        .await?;
                }
                LatePlan::Problem(p) => problems.push(p),
                LatePlan::Write { outcome, supersede, close, version, citizens, then_off_list } => {
                    let code = version.household_code.as_str();
                    if let Some(old) = supersede.and_then(|day| versions.iter().find(|v| v.valid_from == day)) {
                        sqlx::query(SUPERSEDE_VERSION)
                            .bind(code)
                            .bind(old.valid_from)
                            .bind(batch_id)
                            .bind(at)
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query(DELETE_VERSION).bind(code).bind(old.valid_from).execute(&mut *conn).await?;
                    }
                    if let Some(from) = close {
                        sqlx::query(SET_VERSION_END)
                            .bind(code)
                            .bind(from)
                            .bind(version.valid_from)
                            .execute(&mut *conn)
                            .await?;
                    }
                    Self::insert_version(&mut *conn, &version).await?;
                    if let Some(off) = &then_off_list {
                        Self::insert_version(&mut *conn, off).await?;
                    }
                    for citizen in &citizens {
                        sqlx::query(INSERT_CITIZEN).bind(citizen).bind(code).execute(&mut *conn).await?;
                    }
                    sqlx::query(SET_OUTCOME)
                        .bind(batch_id)
                        .bind(row.idx)
                        .bind(outcome.as_str())
                        .execute(&mut *conn)
                        .await?;
                }
            }
        }
        if !problems.is_empty() {
            return Ok(Err(problems));
        }

        let mut counts = ApplyCounts::default();
        for (outcome, n) in Self::outcome_counts(&mut *conn, batch_id).await? {
            counts.add(outcome, n);
        }
        if counts.changed + counts.removed > 0 {
            if !sql.feed_lock.is_empty() {
                sqlx::query(sql.feed_lock).execute(&mut *conn).await?;
            }
            sqlx::query(FEED_EVENTS.as_str()).bind(batch_id).bind(at).execute(&mut *conn).await?;
        }
        Ok(Ok(counts))
    }

    /// One state written by the row-by-row path, with the category and device wish the
    /// domain reads from its data.
    async fn insert_version(conn: &mut <S::Db as Database>::Connection, v: &HouseholdVersion) -> Result<(), PortError> {
        let (category, wants_device) = traits(&v.data)?;
        sqlx::query(INSERT_VERSION)
            .bind(&v.household_code)
            .bind(v.valid_from)
            .bind(v.valid_to)
            .bind(v.removal_reason.as_deref())
            .bind(v.removal_note.as_deref())
            .bind(&v.data)
            .bind(&v.content_hash)
            .bind(&v.commune_code)
            .bind(v.certificate_number.as_deref())
            .bind(&v.batch_id)
            .bind(v.recorded_at)
            .bind(category.as_str())
            .bind(wants_device)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// How many of a batch's records have each outcome.
    async fn outcome_counts(
        conn: &mut <S::Db as Database>::Connection,
        batch_id: &str,
    ) -> Result<Vec<(RecordOutcome, i64)>, PortError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(COUNT_OUTCOMES).bind(batch_id).fetch_all(&mut *conn).await?;
        rows.into_iter()
            .map(|(outcome, n)| Ok((RecordOutcome::parse(&outcome).map_err(PortError::Corrupt)?, n)))
            .collect()
    }

    pub(super) async fn finish_batch(
        conn: &mut <S::Db as Database>::Connection,
        batch_id: &str,
        digest: &str,
        records: i64,
        counts: &ApplyCounts,
        at: time::OffsetDateTime,
    ) -> Result<(), PortError> {
        sqlx::query(MARK_APPLIED)
            .bind(batch_id)
            .bind(digest)
            .bind(records)
            .bind(counts.added)
            .bind(counts.changed)
            .bind(counts.removed)
            .bind(counts.unchanged)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        Self::clear_staging(&mut *conn, batch_id).await
    }
}

/// One implementation for both backends: where several hubs may seed the units at once, the
/// table is locked first ([`SqlStore::lock_table`]); one of them seeds.
#[async_trait::async_trait]
impl<S> UnitStore for S
where
    S: SqlStore,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    usize: ColumnIndex<<S::Db as Database>::Row>,
    for<'a> &'a str: ColumnIndex<<S::Db as Database>::Row>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<&'q str>: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> &'q String: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<&'q String>: Encode<'q, S::Db> + Type<S::Db>,
    i64: Param<S::Db> + Column<S::Db>,
    String: Param<S::Db> + Column<S::Db>,
    bool: Param<S::Db> + Column<S::Db>,
    Date: Param<S::Db> + Column<S::Db>,
    OffsetDateTime: Param<S::Db> + Column<S::Db>,
    Option<i64>: Param<S::Db>,
    Option<String>: Param<S::Db>,
    Option<Date>: Param<S::Db>,
    Option<OffsetDateTime>: Param<S::Db>,
    HouseholdVersion: Record<S::Db>,
    Batch: Record<S::Db>,
    LateRecord: Record<S::Db>,
    UnitRow: Record<S::Db>,
{
    async fn units(&self) -> Result<Vec<AdminUnit>, PortError> {
        RegistryQueries::<S>::units(&mut *self.reader().acquire().await?).await
    }

    async fn seed_units(&self, units: &[AdminUnit]) -> Result<bool, PortError> {
        let mut tx = self.begin_write().await?;
        hold_table::<S>(&mut tx, "admin_units").await?;
        if RegistryQueries::<S>::count_units(&mut tx).await? > 0 {
            return Ok(false);
        }
        RegistryQueries::<S>::save_units(&mut tx, units, &[]).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn save_units(&self, read: &[AdminUnit], new: &[AdminUnit], changed: &[AdminUnit]) -> Result<(), PortError> {
        let mut tx = self.begin_write().await?;
        hold_table::<S>(&mut tx, "admin_units").await?;
        if RegistryQueries::<S>::units(&mut tx).await? != read {
            return Err(PortError::Conflict(crate::domain::ports::Conflict::ChangedSince));
        }
        RegistryQueries::<S>::save_units(&mut tx, new, changed).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// One implementation for both backends; the lookups of many values at once are the
/// backend's own statements ([`SqlStore::MATCHING`]).
#[async_trait::async_trait]
impl<S> RegisterStore for S
where
    S: SqlStore,
    for<'c> &'c mut <S::Db as Database>::Connection: Executor<'c, Database = S::Db>,
    <S::Db as Database>::Arguments: IntoArguments<S::Db>,
    usize: ColumnIndex<<S::Db as Database>::Row>,
    for<'a> &'a str: ColumnIndex<<S::Db as Database>::Row>,
    for<'q> &'q str: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<&'q str>: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> &'q String: Encode<'q, S::Db> + Type<S::Db>,
    for<'q> Option<&'q String>: Encode<'q, S::Db> + Type<S::Db>,
    i64: Param<S::Db> + Column<S::Db>,
    String: Param<S::Db> + Column<S::Db>,
    bool: Param<S::Db> + Column<S::Db>,
    Date: Param<S::Db> + Column<S::Db>,
    OffsetDateTime: Param<S::Db> + Column<S::Db>,
    Option<i64>: Param<S::Db>,
    Option<String>: Param<S::Db>,
    Option<Date>: Param<S::Db>,
    Option<OffsetDateTime>: Param<S::Db>,
    HouseholdVersion: Record<S::Db>,
    Batch: Record<S::Db>,
    LateRecord: Record<S::Db>,
    UnitRow: Record<S::Db>,
    MatchedState: Record<S::Db>,
{
    async fn household_versions(&self, code: &str) -> Result<Vec<HouseholdVersion>, PortError> {
        RegistryQueries::<S>::versions_of(&mut *self.reader().acquire().await?, code).await
    }

    async fn household_on(&self, code: &str, date: Date) -> Result<Option<HouseholdVersion>, PortError> {
        RegistryQueries::<S>::version_on(&mut *self.reader().acquire().await?, code, date).await
    }

    async fn find_by_citizen(&self, citizen_id: &str, date: Date) -> Result<Vec<HouseholdVersion>, PortError> {
        RegistryQueries::<S>::find_by_citizen(&mut *self.reader().acquire().await?, citizen_id, date).await
    }

    async fn find_by_certificate(&self, number: &str, date: Date) -> Result<Vec<HouseholdVersion>, PortError> {
        RegistryQueries::<S>::find_by_certificate(&mut *self.reader().acquire().await?, number, date).await
    }

    async fn states_matching(
        &self,
        kind: QueryKind,
        values: &[String],
        bulk: bool,
    ) -> Result<Vec<MatchedState>, PortError> {
        let query = sqlx::query_as(S::MATCHING.of(kind)).bind(S::texts(values));
        Ok(if bulk { query.fetch_all(&mut *self.bulk().await?).await? } else { query.fetch_all(self.reader()).await? })
    }
}
