//! Storage of the enrolment register: rows, the SQL both dialects share, and the one
//! transaction that decides whether a line may be enrolled. Each backend runs it with its own
//! way of keeping two writers apart (SQLite: the single writer; PostgreSQL: advisory locks on
//! the household and the phone number).

use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Type};
use time::{Date, OffsetDateTime};

use super::backend::{Column, Param, Record, SqlStore};
use crate::domain::ports::{EnrollmentStore, PortError};

pub use crate::domain::ports::enrollments::{
    DeenrollOutcome, Ending, EnrollOutcome, Enrollment, EnrollmentFilter, FeedEntry, NewEnrollment, WriteKey,
};

pub(super) const BY_ID: &str = "SELECT id, operator, household_code, subscriber_citizen_id, phone_number, service, \
     start_date, end_date, end_reason, end_note, decision_id, transfer_reference, recorded_at, ended_at \
     FROM enrollments WHERE id = $1";

pub(super) const OF_HOUSEHOLD: &str = "SELECT id, operator, household_code, subscriber_citizen_id, phone_number, \
     service, start_date, end_date, end_reason, end_note, decision_id, transfer_reference, recorded_at, ended_at \
     FROM enrollments WHERE household_code = $1 ORDER BY id";

pub(super) const RUNNING_ON_PHONE: &str = "SELECT COUNT(*) FROM enrollments \
     WHERE phone_number = $1 AND (end_date IS NULL OR end_date > $2) AND id <> $3";

pub(super) const WRITE: &str = "SELECT request_digest, enrollment_id, previous_end_date FROM enrollment_writes WHERE operator = $1 AND idempotency_key = $2";

pub(super) const INSERT_WRITE: &str = "INSERT INTO enrollment_writes \
     (operator, idempotency_key, request_digest, enrollment_id, previous_end_date) VALUES ($1, $2, $3, $4, $5)";

pub(super) const INSERT: &str = "INSERT INTO enrollments (operator, household_code, subscriber_citizen_id, \
     phone_number, service, start_date, decision_id, transfer_reference, recorded_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id";

pub(super) const END: &str = "UPDATE enrollments SET end_date = $2, end_reason = $3, end_note = $4, ended_at = $5 \
     WHERE id = $1";

pub(super) const EVENTS_AFTER: &str = "SELECT seq, operator, enrollment_id, household_code, kind, effective_date, \
     category, previous_category, removal_reason, batch_id, recorded_at FROM feed_events \
     WHERE operator = $1 AND seq > $2 ORDER BY seq LIMIT $3";

/// The name of the lock feed writers hold until they commit.
pub(super) const FEED_LOCK: &str = "telesub:feed";

pub(super) const INSERT_TRANSFER_EVENT: &str = "INSERT INTO feed_events (operator, enrollment_id, household_code, \
     kind, effective_date, recorded_at) VALUES ($1, $2, $3, 'TRANSFERRED_AWAY', $4, $5)";

pub(super) const LIST: &str = "SELECT id, operator, household_code, subscriber_citizen_id, phone_number, service, \
     start_date, end_date, end_reason, end_note, decision_id, transfer_reference, recorded_at, ended_at \
     FROM enrollments WHERE id > $1 AND ($2 IS NULL OR operator = $2) AND ($3 IS NULL OR household_code = $3) \
     AND ($4 IS NULL OR (start_date <= $4 AND (end_date IS NULL OR end_date > $4))) ORDER BY id LIMIT $5";

/// The enrolment queries and transactions both dialects share; the backend locks a household
/// code or phone number for the transaction ([`SqlStore::lock_key`]) and stores the decision its
/// way ([`SqlStore::insert_decisions`]).
pub(super) struct EnrolmentQueries<S>(std::marker::PhantomData<S>);

impl<S> EnrolmentQueries<S>
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
    Enrollment: Record<S::Db>,
    FeedEntry: Record<S::Db>,
{
    async fn by_id(conn: &mut <S::Db as Database>::Connection, id: i64) -> Result<Option<Enrollment>, PortError> {
        Ok(sqlx::query_as(BY_ID).bind(id).fetch_all(&mut *conn).await?.pop())
    }

    pub(super) async fn of_household(
        conn: &mut <S::Db as Database>::Connection,
        code: &str,
    ) -> Result<Vec<Enrollment>, PortError> {
        Ok(sqlx::query_as(OF_HOUSEHOLD).bind(code).fetch_all(&mut *conn).await?)
    }

    /// Holds the operator's idempotency key for the transaction, so that a second write with it
    /// waits and then finds the first (else both find none, and the second's key breaks the
    /// table's key instead of being answered). Taken before the household and the number.
    async fn lock_write_key(conn: &mut <S::Db as Database>::Connection, key: &WriteKey<'_>) -> Result<(), PortError> {
        S::lock_key(conn, &format!("write:{}:{}", key.operator, key.key)).await
    }

    /// What an earlier write with the key did: `Err` when it asked something else.
    async fn earlier_write(
        conn: &mut <S::Db as Database>::Connection,
        key: &WriteKey<'_>,
    ) -> Result<Option<Result<(Enrollment, Option<time::Date>), ()>>, PortError> {
        let found: Option<(String, i64, Option<time::Date>)> =
            sqlx::query_as(WRITE).bind(key.operator).bind(key.key).fetch_all(&mut *conn).await?.pop();
        let Some((digest, id, previous_end)) = found else { return Ok(None) };
        if digest != key.digest {
            return Ok(Some(Err(())));
        }
        let row = Self::by_id(&mut *conn, id)
            .await?
            .ok_or_else(|| PortError::Corrupt(format!("enrolment write names enrolment {id}, which is missing")))?;
        Ok(Some(Ok((row, previous_end))))
    }

    async fn record_write(
        conn: &mut <S::Db as Database>::Connection,
        key: &WriteKey<'_>,
        id: i64,
        previous_end: Option<time::Date>,
    ) -> Result<(), PortError> {
        sqlx::query(INSERT_WRITE)
            .bind(key.operator)
            .bind(key.key)
            .bind(key.digest)
            .bind(id)
            .bind(previous_end)
            .execute(&mut *conn)
            .await
            .map_err(PortError::from_insert)?;
        Ok(())
    }

    /// Enrols (or, with `transfer`, takes over) a line, inside the caller's transaction.
    pub(super) async fn enroll_in(
        conn: &mut <S::Db as Database>::Connection,
        new: &NewEnrollment,
        key: &WriteKey<'_>,
        allowed: u32,
        transfer: bool,
    ) -> Result<EnrollOutcome, PortError> {
        Self::lock_write_key(&mut *conn, key).await?;
        S::lock_key(&mut *conn, &new.household_code).await?;
        S::lock_key(&mut *conn, &new.phone_number).await?;
        match Self::earlier_write(&mut *conn, key).await? {
            Some(Ok((enrollment, previous_end))) => {
                return Ok(EnrollOutcome::Replayed { enrollment: Box::new(enrollment), previous_end });
            }
            Some(Err(())) => return Ok(EnrollOutcome::KeyReused),
            None => {}
        }
        use crate::domain::enrollments::{Admission, admit};
        let running = Self::of_household(&mut *conn, &new.household_code).await?;
        let ended = match admit(&new.operator, new.start_date, running, allowed, transfer) {
            Admission::Enrol { ending } => ending.map(|old| *old),
            Admission::HouseholdFull { own, others } => return Ok(EnrollOutcome::HouseholdFull { own, others }),
            Admission::NothingToTransfer => return Ok(EnrollOutcome::NothingToTransfer),
            Admission::TransferTooEarly { started } => return Ok(EnrollOutcome::TransferTooEarly { started }),
        };
        let (taken,): (i64,) = sqlx::query_as(RUNNING_ON_PHONE)
            .bind(&new.phone_number)
            .bind(new.start_date)
            .bind(ended.as_ref().map_or(-1, |e| e.id))
            .fetch_one(&mut *conn)
            .await?;
        if taken > 0 {
            return Ok(EnrollOutcome::PhoneTaken);
        }
        if let Some(old) = &ended {
            sqlx::query(END)
                .bind(old.id)
                .bind(new.start_date)
                .bind("TRANSFERRED")
                .bind(new.transfer_reference.as_deref())
                .bind(new.recorded_at)
                .execute(&mut *conn)
                .await?;
            // The other operator learns from its feed that the line has gone.
            S::lock_key(&mut *conn, FEED_LOCK).await?;
            sqlx::query(INSERT_TRANSFER_EVENT)
                .bind(&old.operator)
                .bind(old.id)
                .bind(&old.household_code)
                .bind(new.start_date)
                .bind(new.recorded_at)
                .execute(&mut *conn)
                .await?;
        }
        S::insert_decisions(&mut *conn, std::slice::from_ref(&new.decision)).await?;
        let (id,): (i64,) = sqlx::query_as(INSERT)
            .bind(&new.operator)
            .bind(&new.household_code)
            .bind(&new.subscriber_citizen_id)
            .bind(&new.phone_number)
            .bind(&new.service)
            .bind(new.start_date)
            .bind(new.decision.decision_id())
            .bind(new.transfer_reference.as_deref())
            .bind(new.recorded_at)
            .fetch_one(&mut *conn)
            .await?;
        Self::record_write(&mut *conn, key, id, ended.as_ref().map(|_| new.start_date)).await?;
        let enrollment = Box::new(Self::by_id(&mut *conn, id).await?.expect("inserted above"));
        let ended = match ended {
            Some(old) => Self::by_id(&mut *conn, old.id).await?.map(Box::new),
            None => None,
        };
        Ok(EnrollOutcome::Created { enrollment, ended })
    }

    /// Ends one of `key.operator`'s enrolments, inside the caller's transaction.
    pub(super) async fn deenroll_in(
        conn: &mut <S::Db as Database>::Connection,
        key: &WriteKey<'_>,
        ending: &Ending<'_>,
    ) -> Result<DeenrollOutcome, PortError> {
        Self::lock_write_key(&mut *conn, key).await?;
        match Self::earlier_write(&mut *conn, key).await? {
            Some(Ok((row, _))) => return Ok(DeenrollOutcome::Replayed(Box::new(row))),
            Some(Err(())) => return Ok(DeenrollOutcome::KeyReused),
            None => {}
        }
        let Some(row) = Self::by_id(&mut *conn, ending.id).await?.filter(|r| r.operator == key.operator) else {
            return Ok(DeenrollOutcome::NotFound);
        };
        S::lock_key(&mut *conn, &row.household_code).await?;
        if row.end_date.is_some() {
            return Ok(DeenrollOutcome::AlreadyEnded(Box::new(row)));
        }
        if ending.end_date <= row.start_date {
            return Ok(DeenrollOutcome::BeforeStart(Box::new(row)));
        }
        sqlx::query(END)
            .bind(row.id)
            .bind(ending.end_date)
            .bind(ending.reason)
            .bind(ending.note)
            .bind(ending.at)
            .execute(&mut *conn)
            .await?;
        Self::record_write(&mut *conn, key, row.id, None).await?;
        Ok(DeenrollOutcome::Ended(Box::new(Self::by_id(&mut *conn, row.id).await?.expect("updated above"))))
    }

    pub(super) async fn events_after(
        conn: &mut <S::Db as Database>::Connection,
        operator: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<FeedEntry>, PortError> {
        Ok(sqlx::query_as(EVENTS_AFTER).bind(operator).bind(after).bind(i64::from(limit)).fetch_all(&mut *conn).await?)
    }

    pub(super) async fn list_enrollments(
        conn: &mut <S::Db as Database>::Connection,
        filter: &EnrollmentFilter,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Enrollment>, PortError> {
        Ok(sqlx::query_as(LIST)
            .bind(after)
            .bind(filter.operator.as_deref())
            .bind(filter.household_code.as_deref())
            .bind(filter.active_on)
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?)
    }

    /// The ids of an operator's enrolments running on some day of `[from, until)`.
    pub(super) async fn running_between(
        conn: &mut <S::Db as Database>::Connection,
        operator: &str,
        from: time::Date,
        until: time::Date,
    ) -> Result<Vec<i64>, PortError> {
        let ids: Vec<(i64,)> = sqlx::query_as(
            "SELECT id FROM enrollments WHERE operator = $1 AND start_date < $3 \
             AND (end_date IS NULL OR end_date > $2)",
        )
        .bind(operator)
        .bind(from)
        .bind(until)
        .fetch_all(&mut *conn)
        .await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }
}

/// One implementation for both backends; only the reads of many enrolments at once are the
/// backend's own statements ([`SqlStore::ENROLMENTS_BY_IDS`], [`SqlStore::ENROLMENTS_BY_PHONES`]).
#[async_trait::async_trait]
impl<S> EnrollmentStore for S
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
    Enrollment: Record<S::Db>,
    FeedEntry: Record<S::Db>,
{
    async fn enroll(
        &self,
        new: &NewEnrollment,
        key: &WriteKey<'_>,
        allowed: u32,
        transfer: bool,
    ) -> Result<EnrollOutcome, PortError> {
        let mut tx = self.begin_write().await?;
        let outcome = EnrolmentQueries::<S>::enroll_in(&mut tx, new, key, allowed, transfer).await?;
        if matches!(outcome, EnrollOutcome::Created { .. }) {
            tx.commit().await?;
        }
        Ok(outcome)
    }

    async fn deenroll(&self, key: &WriteKey<'_>, ending: &Ending<'_>) -> Result<DeenrollOutcome, PortError> {
        let mut tx = self.begin_write().await?;
        let outcome = EnrolmentQueries::<S>::deenroll_in(&mut tx, key, ending).await?;
        if matches!(outcome, DeenrollOutcome::Ended(_)) {
            tx.commit().await?;
        }
        Ok(outcome)
    }

    async fn list_enrollments(
        &self,
        filter: &EnrollmentFilter,
        after: i64,
        limit: u32,
    ) -> Result<Vec<Enrollment>, PortError> {
        EnrolmentQueries::<S>::list_enrollments(&mut *self.reader().acquire().await?, filter, after, limit).await
    }

    async fn feed_events(&self, operator: &str, after: i64, limit: u32) -> Result<Vec<FeedEntry>, PortError> {
        EnrolmentQueries::<S>::events_after(&mut *self.reader().acquire().await?, operator, after, limit).await
    }

    async fn enrollments_by_ids(&self, ids: &[i64]) -> Result<Vec<Enrollment>, PortError> {
        Ok(sqlx::query_as(S::ENROLMENTS_BY_IDS).bind(S::ids(ids)).fetch_all(&mut *self.bulk().await?).await?)
    }

    async fn enrollments_by_phones(&self, operator: &str, phones: &[String]) -> Result<Vec<Enrollment>, PortError> {
        Ok(sqlx::query_as(S::ENROLMENTS_BY_PHONES)
            .bind(operator)
            .bind(S::texts(phones))
            .fetch_all(&mut *self.bulk().await?)
            .await?)
    }

    async fn enrollments_running(&self, operator: &str, from: Date, until: Date) -> Result<Vec<i64>, PortError> {
        EnrolmentQueries::<S>::running_between(&mut *self.bulk().await?, operator, from, until).await
    }
}
