//! Storage of the operators' monthly lists and their reconciliation: rows, the SQL both
//! dialects share, the guarded status changes, and both ports implemented once for both
//! backends. Writing many lines at once differs per backend ([`SqlStore::insert_lines`]).

use sqlx::{ColumnIndex, Database, Encode, Executor, IntoArguments, Type};
use time::{Date, OffsetDateTime};

use super::backend::{Column, Param, Record, SqlStore};
pub use crate::domain::ports::monthly::{
    LineFilter, ListLine, MonthlyList, NewUpdate, UpdateDecision, UpdateFilter, Verdict, period_bounds,
};
use crate::domain::ports::{MonthlyListStore, PortError, ReconciliationStore};

pub(super) const MARK_RECEIVED: &str =
    "UPDATE monthly_updates SET content_digest = $2 WHERE id = $1 AND status = 'RECEIVING'";

/// `SELECT` of every column of `monthly_updates` with a condition, as one literal.
macro_rules! select_updates {
    ($condition:literal $(,)?) => {
        concat!(
            "SELECT id, operator, update_id, period, replaces_earlier, note, status, content_digest, revision, \
             stale, figures, received_at, reconciled_at, superseded_by, decided_by, decided_by_person, decided_at, decision_note, \
             confirmed_scope, confirmed_lines, confirmed_amount, confirmed_digest, exceptions, exceptions_at, \
             request_id \
             FROM monthly_updates WHERE ",
            $condition
        )
    };
}

pub(super) const LINE_COLUMNS: &str = "line_no, household_code, phone_number, commune_code, line, codes, detail, \
     amount_claimed, amount_confirmable, idle_months";

/// The queries both dialects share, for each backend's monthly-list and reconciliation ports
/// (whose writes of many lines differ).
pub(super) struct MonthlyQueries<S>(std::marker::PhantomData<S>);

impl<S> MonthlyQueries<S>
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
    MonthlyList: Record<S::Db>,
    ListLine: Record<S::Db>,
{
    pub(super) async fn by_key(
        conn: &mut <S::Db as Database>::Connection,
        operator: &str,
        update_id: &str,
    ) -> Result<Option<MonthlyList>, PortError> {
        Ok(sqlx::query_as(select_updates!("operator = $1 AND update_id = $2"))
            .bind(operator)
            .bind(update_id)
            .fetch_optional(&mut *conn)
            .await?)
    }

    pub(super) async fn by_ref(
        conn: &mut <S::Db as Database>::Connection,
        id: i64,
    ) -> Result<Option<MonthlyList>, PortError> {
        Ok(sqlx::query_as(select_updates!("id = $1")).bind(id).fetch_optional(&mut *conn).await?)
    }

    /// The operator's lists for a period that are neither rejected nor superseded.
    pub(super) async fn open_for_period(
        conn: &mut <S::Db as Database>::Connection,
        operator: &str,
        period: &str,
    ) -> Result<Vec<MonthlyList>, PortError> {
        Ok(sqlx::query_as(select_updates!(
            "operator = $1 AND period = $2 AND status IN ('RECEIVING', 'RECONCILED', 'CONFIRMED') ORDER BY id",
        ))
        .bind(operator)
        .bind(period)
        .fetch_all(&mut *conn)
        .await?)
    }

    pub(super) async fn list(
        conn: &mut <S::Db as Database>::Connection,
        filter: &UpdateFilter,
        before: i64,
        limit: u32,
    ) -> Result<Vec<MonthlyList>, PortError> {
        Ok(sqlx::query_as(select_updates!(
            "id < $1 AND (CAST($2 AS TEXT) IS NULL OR period = $2) AND (CAST($3 AS TEXT) IS NULL OR operator = $3) \
             AND (CAST($4 AS TEXT) IS NULL OR status = $4) ORDER BY id DESC LIMIT $5",
        ))
        .bind(before)
        .bind(filter.period.as_deref())
        .bind(filter.operator.as_deref())
        .bind(filter.status.map(|s| s.as_str()))
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await?)
    }

    /// Drops what an interrupted earlier attempt with the key left, and records the list as
    /// being received. `AlreadyExists` when the key belongs to a received list.
    pub(super) async fn begin(
        conn: &mut <S::Db as Database>::Connection,
        new: &NewUpdate<'_>,
    ) -> Result<i64, PortError> {
        sqlx::query("DELETE FROM monthly_updates WHERE operator = $1 AND update_id = $2 AND status = 'RECEIVING'")
            .bind(new.operator)
            .bind(new.update_id)
            .execute(&mut *conn)
            .await?;
        let (id,): (i64,) = sqlx::query_as(
            "INSERT INTO monthly_updates (operator, update_id, period, replaces_earlier, note, status, \
             received_at, request_id) VALUES ($1, $2, $3, $4, $5, 'RECEIVING', $6, $7) RETURNING id",
        )
        .bind(new.operator)
        .bind(new.update_id)
        .bind(new.period)
        .bind(new.replaces_earlier)
        .bind(new.note)
        .bind(new.received_at)
        .bind(new.request_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(PortError::from_insert)?;
        Ok(id)
    }

    pub(super) async fn discard(conn: &mut <S::Db as Database>::Connection, id: i64) -> Result<(), PortError> {
        sqlx::query("DELETE FROM monthly_lines WHERE update_ref = $1").bind(id).execute(&mut *conn).await?;
        sqlx::query("DELETE FROM monthly_updates WHERE id = $1 AND status = 'RECEIVING'")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    /// Makes a received list the operator's reconciled list for its period, superseding
    /// `replaces`; inside the caller's transaction.
    pub(super) async fn finish(
        conn: &mut <S::Db as Database>::Connection,
        id: i64,
        digest: &str,
        figures: &str,
        at: time::OffsetDateTime,
        replaces: Option<i64>,
    ) -> Result<(), PortError> {
        let Some(row) = Self::by_ref(&mut *conn, id)
            .await?
            .filter(|r| r.status == crate::domain::reconciliation::ListStatus::Receiving)
        else {
            return Err(PortError::Conflict(crate::domain::ports::Conflict::NotReceiving));
        };
        let open = Self::open_for_period(&mut *conn, &row.operator, &row.period).await?;
        if open.iter().any(|o| o.id != id && Some(o.id) != replaces) {
            return Err(PortError::Conflict(crate::domain::ports::Conflict::OtherLiveList));
        }
        if let Some(old) = replaces {
            let done = sqlx::query(
                "UPDATE monthly_updates SET status = 'SUPERSEDED', superseded_by = $2 \
                 WHERE id = $1 AND status = 'RECONCILED'",
            )
            .bind(old)
            .bind(&row.update_id)
            .execute(&mut *conn)
            .await?;
            if S::rows_affected(&done) != 1 {
                return Err(PortError::Conflict(crate::domain::ports::Conflict::ReplacedGone));
            }
        }
        sqlx::query(
            "UPDATE monthly_updates SET status = 'RECONCILED', content_digest = $2, figures = $3, \
             reconciled_at = $4, revision = revision + 1 WHERE id = $1",
        )
        .bind(id)
        .bind(digest)
        .bind(figures)
        .bind(at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Rewrites the outcome of lines reconciled again, inside the caller's transaction, while
    /// the list is reconciled and not decided (it stays marked stale until its figures are
    /// stored); `false` when it no longer is.
    pub(super) async fn rewrite_outcomes(
        conn: &mut <S::Db as Database>::Connection,
        id: i64,
        lines: &[ListLine],
    ) -> Result<bool, PortError> {
        let open = sqlx::query("UPDATE monthly_updates SET stale = TRUE WHERE id = $1 AND status = 'RECONCILED'")
            .bind(id)
            .execute(&mut *conn)
            .await?;
        if S::rows_affected(&open) != 1 {
            return Ok(false);
        }
        for l in lines {
            sqlx::query(
                "UPDATE monthly_lines SET commune_code = $3, codes = $4, detail = $5, amount_confirmable = $6, \
                 idle_months = $7 WHERE update_ref = $1 AND line_no = $2",
            )
            .bind(id)
            .bind(l.line_no)
            .bind(l.commune_code.as_deref())
            .bind(&l.codes)
            .bind(l.detail.as_deref())
            .bind(l.amount_confirmable)
            .bind(l.idle_months)
            .execute(&mut *conn)
            .await?;
        }
        Ok(true)
    }

    /// Stores the figures of a list reconciled again, if it is still open for a decision.
    pub(super) async fn refigure(
        conn: &mut <S::Db as Database>::Connection,
        id: i64,
        figures: &str,
        at: time::OffsetDateTime,
    ) -> Result<bool, PortError> {
        let done = sqlx::query(
            "UPDATE monthly_updates SET figures = $2, reconciled_at = $3, revision = revision + 1, stale = FALSE \
             WHERE id = $1 AND status = 'RECONCILED'",
        )
        .bind(id)
        .bind(figures)
        .bind(at)
        .execute(&mut *conn)
        .await?;
        Ok(S::rows_affected(&done) == 1)
    }

    /// Marks the open reconciled lists of periods from `first_period` on as stale; returns them.
    pub(super) async fn mark_stale(
        conn: &mut <S::Db as Database>::Connection,
        first_period: &str,
    ) -> Result<Vec<i64>, PortError> {
        let ids: Vec<(i64,)> = sqlx::query_as(
            "UPDATE monthly_updates SET stale = TRUE WHERE status = 'RECONCILED' AND period >= $1 RETURNING id",
        )
        .bind(first_period)
        .fetch_all(&mut *conn)
        .await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    pub(super) async fn stale_lists(conn: &mut <S::Db as Database>::Connection) -> Result<Vec<i64>, PortError> {
        let ids: Vec<(i64,)> =
            sqlx::query_as("SELECT id FROM monthly_updates WHERE status = 'RECONCILED' AND stale ORDER BY id")
                .fetch_all(&mut *conn)
                .await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    /// Records ICT's decision on the list as reconciled in `d.revision`, unless it changed.
    pub(super) async fn decide(
        conn: &mut <S::Db as Database>::Connection,
        id: i64,
        d: &UpdateDecision<'_>,
    ) -> Result<(), PortError> {
        let (status, scope, lines, amount, digest) = match &d.verdict {
            Verdict::Confirmed { scope, lines, amount, digest } => {
                ("CONFIRMED", Some(scope.as_str()), Some(*lines), Some(*amount), Some(digest.as_str()))
            }
            Verdict::Rejected => ("REJECTED", None, None, None, None),
        };
        // One guarded statement: on PostgreSQL it waits for a reconciliation rewriting the
        // list and then sees its result.
        let done = sqlx::query(
            "UPDATE monthly_updates SET status = $2, decided_by = $3, decided_at = $4, decision_note = $5, \
             confirmed_scope = $6, confirmed_lines = $7, confirmed_amount = $8, confirmed_digest = $9, \
             decided_by_person = $11 \
             WHERE id = $1 AND status = 'RECONCILED' AND revision = $10 AND NOT stale",
        )
        .bind(id)
        .bind(status)
        .bind(d.by)
        .bind(d.at)
        .bind(d.note)
        .bind(scope)
        .bind(lines)
        .bind(amount)
        .bind(digest)
        .bind(d.revision)
        .bind(d.by_person)
        .execute(&mut *conn)
        .await?;
        if S::rows_affected(&done) == 1 {
            return Ok(());
        }
        match Self::by_ref(&mut *conn, id).await? {
            Some(row) if row.status == crate::domain::reconciliation::ListStatus::Reconciled => {
                Err(PortError::Conflict(crate::domain::ports::Conflict::ReconciledAgain))
            }
            _ => Err(PortError::Conflict(crate::domain::ports::Conflict::NotReconciled)),
        }
    }

    /// Notes, on a confirmed list, the lines a later change alters (`Some`) or no longer
    /// alters (`None`), inside the caller's transaction; `false` when the list is not confirmed.
    pub(super) async fn note_exceptions(
        conn: &mut <S::Db as Database>::Connection,
        id: i64,
        lines: &[(i64, Option<String>)],
    ) -> Result<bool, PortError> {
        let confirmed =
            sqlx::query("UPDATE monthly_updates SET exceptions = exceptions WHERE id = $1 AND status = 'CONFIRMED'")
                .bind(id)
                .execute(&mut *conn)
                .await?;
        if S::rows_affected(&confirmed) != 1 {
            return Ok(false);
        }
        for (line_no, later) in lines {
            sqlx::query("UPDATE monthly_lines SET later_detail = $3 WHERE update_ref = $1 AND line_no = $2")
                .bind(id)
                .bind(line_no)
                .bind(later.as_deref())
                .execute(&mut *conn)
                .await?;
        }
        Ok(true)
    }

    pub(super) async fn count_exceptions(
        conn: &mut <S::Db as Database>::Connection,
        id: i64,
        count: i64,
        at: time::OffsetDateTime,
    ) -> Result<(), PortError> {
        sqlx::query(
            "UPDATE monthly_updates SET exceptions = $2, exceptions_at = $3 WHERE id = $1 AND status = 'CONFIRMED'",
        )
        .bind(id)
        .bind(count)
        .bind(at)
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    pub(super) async fn confirmed_since(
        conn: &mut <S::Db as Database>::Connection,
        first_period: &str,
    ) -> Result<Vec<i64>, PortError> {
        let ids: Vec<(i64,)> =
            sqlx::query_as("SELECT id FROM monthly_updates WHERE status = 'CONFIRMED' AND period >= $1 ORDER BY id")
                .bind(first_period)
                .fetch_all(&mut *conn)
                .await?;
        Ok(ids.into_iter().map(|(id,)| id).collect())
    }

    pub(super) async fn lines(
        conn: &mut <S::Db as Database>::Connection,
        id: i64,
        filter: &LineFilter,
        after: i64,
        limit: u32,
    ) -> Result<Vec<ListLine>, PortError> {
        Ok(sqlx::query_as(
            "SELECT line_no, household_code, phone_number, commune_code, line, codes, detail, amount_claimed, \
             amount_confirmable, idle_months, later_detail FROM monthly_lines WHERE update_ref = $1 AND line_no > $2 \
             AND (CAST($3 AS TEXT) IS NULL OR (' ' || codes || ' ') LIKE ('% ' || CAST($3 AS TEXT) || ' %')) \
             AND (CAST($4 AS TEXT) IS NULL OR commune_code = $4) \
             AND (CAST($5 AS TEXT) IS NULL OR household_code = $5) \
             AND ($6 OR codes <> '' OR later_detail IS NOT NULL) AND (NOT $8 OR later_detail IS NOT NULL) \
             ORDER BY line_no LIMIT $7",
        )
        .bind(id)
        .bind(after)
        .bind(filter.code.as_deref())
        .bind(filter.commune_code.as_deref())
        .bind(filter.household_code.as_deref())
        .bind(filter.include_ok)
        .bind(i64::from(limit))
        .bind(filter.exceptions_only)
        .fetch_all(&mut *conn)
        .await?)
    }

    /// Households claimed for a period in other operators' reconciled or confirmed lists,
    /// with the list that claims them.
    pub(super) async fn claimed_elsewhere(
        conn: &mut <S::Db as Database>::Connection,
        period: &str,
        operator: &str,
    ) -> Result<Vec<(String, i64)>, PortError> {
        Ok(sqlx::query_as(
            "SELECT l.household_code, l.update_ref FROM monthly_updates u \
             JOIN monthly_lines l ON l.update_ref = u.id \
             WHERE u.period = $1 AND u.operator <> $2 AND u.status IN ('RECONCILED', 'CONFIRMED') \
             AND l.amount_claimed > 0",
        )
        .bind(period)
        .bind(operator)
        .fetch_all(&mut *conn)
        .await?)
    }

    /// Each line's phone number and months without traffic.
    pub(super) async fn idle_months(
        conn: &mut <S::Db as Database>::Connection,
        id: i64,
    ) -> Result<Vec<(String, i64)>, PortError> {
        Ok(sqlx::query_as("SELECT phone_number, idle_months FROM monthly_lines WHERE update_ref = $1")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?)
    }
}

/// One implementation for both backends: every statement but the writing of many lines
/// ([`SqlStore::insert_lines`]) reads the same in both dialects.
#[async_trait::async_trait]
impl<S> MonthlyListStore for S
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
    MonthlyList: Record<S::Db>,
    ListLine: Record<S::Db>,
{
    async fn monthly_update(&self, operator: &str, update_id: &str) -> Result<Option<MonthlyList>, PortError> {
        MonthlyQueries::<S>::by_key(&mut *self.reader().acquire().await?, operator, update_id).await
    }

    async fn monthly_update_by_ref(&self, id: i64) -> Result<Option<MonthlyList>, PortError> {
        MonthlyQueries::<S>::by_ref(&mut *self.reader().acquire().await?, id).await
    }

    async fn open_monthly_updates(&self, operator: &str, period: &str) -> Result<Vec<MonthlyList>, PortError> {
        MonthlyQueries::<S>::open_for_period(&mut *self.reader().acquire().await?, operator, period).await
    }

    async fn list_monthly_updates(
        &self,
        filter: &UpdateFilter,
        before: i64,
        limit: u32,
    ) -> Result<Vec<MonthlyList>, PortError> {
        MonthlyQueries::<S>::list(&mut *self.reader().acquire().await?, filter, before, limit).await
    }

    async fn begin_monthly_update(&self, new: &NewUpdate<'_>) -> Result<i64, PortError> {
        let mut tx = self.begin_write().await?;
        let id = MonthlyQueries::<S>::begin(&mut tx, new).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn store_monthly_lines(&self, id: i64, lines: &[ListLine]) -> Result<(), PortError> {
        let mut tx = self.begin_write().await?;
        S::insert_lines(&mut tx, id, lines).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn discard_monthly_update(&self, id: i64) -> Result<(), PortError> {
        let mut tx = self.begin_write().await?;
        MonthlyQueries::<S>::discard(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn mark_monthly_received(&self, id: i64, digest: &str) -> Result<(), PortError> {
        sqlx::query(MARK_RECEIVED).bind(id).bind(digest).execute(self.writer()).await?;
        Ok(())
    }

    async fn finish_monthly_update(
        &self,
        id: i64,
        digest: &str,
        figures: &str,
        at: OffsetDateTime,
        replaces: Option<i64>,
    ) -> Result<(), PortError> {
        let mut tx = self.begin_write().await?;
        MonthlyQueries::<S>::finish(&mut tx, id, digest, figures, at, replaces).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// One implementation for both backends. Reading a list's lines is large work (a
/// reconciliation reads them all, a chunk at a time): it takes its connection in turn.
#[async_trait::async_trait]
impl<S> ReconciliationStore for S
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
    MonthlyList: Record<S::Db>,
    ListLine: Record<S::Db>,
{
    async fn rewrite_line_outcomes(&self, id: i64, lines: &[ListLine]) -> Result<bool, PortError> {
        let mut tx = self.begin_write().await?;
        let open = MonthlyQueries::<S>::rewrite_outcomes(&mut tx, id, lines).await?;
        tx.commit().await?;
        Ok(open)
    }

    async fn refigure_monthly_update(&self, id: i64, figures: &str, at: OffsetDateTime) -> Result<bool, PortError> {
        MonthlyQueries::<S>::refigure(&mut *self.writer().acquire().await?, id, figures, at).await
    }

    async fn note_line_exceptions(&self, id: i64, lines: &[(i64, Option<String>)]) -> Result<bool, PortError> {
        let mut tx = self.begin_write().await?;
        let confirmed = MonthlyQueries::<S>::note_exceptions(&mut tx, id, lines).await?;
        tx.commit().await?;
        Ok(confirmed)
    }

    async fn count_exceptions(&self, id: i64, count: i64, at: OffsetDateTime) -> Result<(), PortError> {
        MonthlyQueries::<S>::count_exceptions(&mut *self.writer().acquire().await?, id, count, at).await
    }

    async fn confirmed_updates_since(&self, first_period: &str) -> Result<Vec<i64>, PortError> {
        MonthlyQueries::<S>::confirmed_since(&mut *self.reader().acquire().await?, first_period).await
    }

    async fn mark_stale_updates(&self, first_period: &str) -> Result<Vec<i64>, PortError> {
        MonthlyQueries::<S>::mark_stale(&mut *self.writer().acquire().await?, first_period).await
    }

    async fn stale_monthly_updates(&self) -> Result<Vec<i64>, PortError> {
        MonthlyQueries::<S>::stale_lists(&mut *self.reader().acquire().await?).await
    }

    async fn decide_monthly_update(&self, id: i64, decision: &UpdateDecision<'_>) -> Result<(), PortError> {
        let mut tx = self.begin_write().await?;
        MonthlyQueries::<S>::decide(&mut tx, id, decision).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn monthly_lines(
        &self,
        id: i64,
        filter: &LineFilter,
        after: i64,
        limit: u32,
    ) -> Result<Vec<ListLine>, PortError> {
        MonthlyQueries::<S>::lines(&mut *self.bulk().await?, id, filter, after, limit).await
    }

    async fn claimed_elsewhere(&self, period: &str, operator: &str) -> Result<Vec<(String, i64)>, PortError> {
        MonthlyQueries::<S>::claimed_elsewhere(&mut *self.bulk().await?, period, operator).await
    }

    async fn idle_months(&self, id: i64) -> Result<Vec<(String, i64)>, PortError> {
        MonthlyQueries::<S>::idle_months(&mut *self.bulk().await?, id).await
    }
}
