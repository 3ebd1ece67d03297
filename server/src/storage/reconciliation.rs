//! Storage of the operators' monthly lists and their reconciliation: rows, the SQL both
//! dialects share, and the guarded status changes. Writing many lines at once differs per
//! backend and lives in each backend's module.

use time::{Date, OffsetDateTime};

/// A stored monthly list (its lines are [`LineRow`]s).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct UpdateRow {
    pub id: i64,
    pub operator: String,
    pub update_id: String,
    pub period: String,
    pub replaces_earlier: bool,
    pub note: String,
    /// `RECEIVING`, `RECONCILED`, `CONFIRMED`, `REJECTED` or `SUPERSEDED`.
    pub status: String,
    pub content_digest: Option<String>,
    pub revision: i64,
    pub stale: bool,
    /// The figures of the last reconciliation, as JSON.
    pub figures: Option<String>,
    pub received_at: OffsetDateTime,
    pub reconciled_at: Option<OffsetDateTime>,
    pub superseded_by: Option<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<OffsetDateTime>,
    pub decision_note: Option<String>,
    pub confirmed_scope: Option<String>,
    pub confirmed_lines: Option<i64>,
    pub confirmed_amount: Option<i64>,
    pub confirmed_digest: Option<String>,
    /// Confirmed lists: lines whose outcome a later change would alter.
    pub exceptions: i64,
    pub exceptions_at: Option<OffsetDateTime>,
    pub request_id: String,
}

/// A list being received.
#[derive(Debug, Clone)]
pub struct NewUpdate<'a> {
    pub operator: &'a str,
    pub update_id: &'a str,
    pub period: &'a str,
    pub replaces_earlier: bool,
    pub note: &'a str,
    pub received_at: OffsetDateTime,
    pub request_id: &'a str,
}

/// One line of a list with the outcome of its last reconciliation.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct LineRow {
    pub line_no: i64,
    pub household_code: String,
    pub phone_number: String,
    pub commune_code: Option<String>,
    /// The line as received, in normal form, as JSON.
    pub line: String,
    /// Discrepancy codes separated by spaces; empty when the line is OK.
    pub codes: String,
    /// The discrepancies with their messages, as JSON; `None` when the line is OK.
    pub detail: Option<String>,
    pub amount_claimed: i64,
    pub amount_confirmable: i64,
    pub idle_months: i64,
    /// Confirmed lists: the discrepancies the line would have now (JSON, `[]` for none), when
    /// a later change altered them.
    pub later_detail: Option<String>,
}

/// Which lists to list.
#[derive(Debug, Clone, Default)]
pub struct UpdateFilter {
    pub period: Option<String>,
    pub operator: Option<String>,
    pub status: Option<String>,
}

/// Which lines of a list to read.
#[derive(Debug, Clone, Default)]
pub struct LineFilter {
    pub code: Option<String>,
    pub commune_code: Option<String>,
    pub household_code: Option<String>,
    /// Lines without a discrepancy too.
    pub include_ok: bool,
    /// Only lines a later change would alter.
    pub exceptions_only: bool,
}

/// What ICT decided about a reconciled list.
#[derive(Debug, Clone)]
pub enum Verdict {
    Confirmed { scope: String, lines: i64, amount: i64, digest: String },
    Rejected,
}

/// A decision on the list as reconciled in `revision`.
#[derive(Debug, Clone)]
pub struct UpdateDecision<'a> {
    pub revision: i64,
    pub verdict: Verdict,
    pub by: &'a str,
    pub at: OffsetDateTime,
    pub note: &'a str,
}

pub(super) const MARK_RECEIVED: &str =
    "UPDATE monthly_updates SET content_digest = $2 WHERE id = $1 AND status = 'RECEIVING'";

/// The guard texts of the status changes.
pub const NOT_RECEIVING: &str = "the list is no longer being received";
pub const REPLACED_GONE: &str = "the list to replace is no longer open";
pub const OTHER_LIVE_LIST: &str = "another list for the period arrived meanwhile";
pub const NOT_RECONCILED: &str = "the list is not reconciled";
pub const RECONCILED_AGAIN: &str = "the list was reconciled again meanwhile";

/// `SELECT` of every column of `monthly_updates` with a condition, as one literal.
macro_rules! select_updates {
    ($condition:literal $(,)?) => {
        concat!(
            "SELECT id, operator, update_id, period, replaces_earlier, note, status, content_digest, revision, \
             stale, figures, received_at, reconciled_at, superseded_by, decided_by, decided_at, decision_note, \
             confirmed_scope, confirmed_lines, confirmed_amount, confirmed_digest, exceptions, exceptions_at, \
             request_id \
             FROM monthly_updates WHERE ",
            $condition
        )
    };
}
pub(super) use select_updates;

pub(super) const LINE_COLUMNS: &str = "line_no, household_code, phone_number, commune_code, line, codes, detail, \
     amount_claimed, amount_confirmable, idle_months";

/// Writes the queries both dialects share, for a connection type.
macro_rules! reconciliation_queries {
    ($conn:ty) => {
        use $crate::storage::reconciliation::{
            self as rec, LineFilter, LineRow, NewUpdate, UpdateDecision, UpdateFilter, UpdateRow, Verdict,
        };

        pub(super) async fn by_key(
            conn: &mut $conn,
            operator: &str,
            update_id: &str,
        ) -> Result<Option<UpdateRow>, StorageError> {
            Ok(sqlx::query_as($crate::storage::reconciliation::select_updates!("operator = $1 AND update_id = $2"))
                .bind(operator)
                .bind(update_id)
                .fetch_optional(&mut *conn)
                .await?)
        }

        pub(super) async fn by_ref(conn: &mut $conn, id: i64) -> Result<Option<UpdateRow>, StorageError> {
            Ok(sqlx::query_as($crate::storage::reconciliation::select_updates!("id = $1")).bind(id).fetch_optional(&mut *conn).await?)
        }

        /// The operator's lists for a period that are neither rejected nor superseded.
        pub(super) async fn open_for_period(
            conn: &mut $conn,
            operator: &str,
            period: &str,
        ) -> Result<Vec<UpdateRow>, StorageError> {
            Ok(sqlx::query_as($crate::storage::reconciliation::select_updates!(
                "operator = $1 AND period = $2 AND status IN ('RECEIVING', 'RECONCILED', 'CONFIRMED') ORDER BY id",
            ))
            .bind(operator)
            .bind(period)
            .fetch_all(&mut *conn)
            .await?)
        }

        pub(super) async fn list(
            conn: &mut $conn,
            filter: &UpdateFilter,
            before: i64,
            limit: u32,
        ) -> Result<Vec<UpdateRow>, StorageError> {
            Ok(sqlx::query_as($crate::storage::reconciliation::select_updates!(
                "id < $1 AND (CAST($2 AS TEXT) IS NULL OR period = $2) AND (CAST($3 AS TEXT) IS NULL OR operator = $3) \
                 AND (CAST($4 AS TEXT) IS NULL OR status = $4) ORDER BY id DESC LIMIT $5",
            ))
            .bind(before)
            .bind(filter.period.as_deref())
            .bind(filter.operator.as_deref())
            .bind(filter.status.as_deref())
            .bind(i64::from(limit))
            .fetch_all(&mut *conn)
            .await?)
        }

        /// Drops what an interrupted earlier attempt with the key left, and records the list as
        /// being received. `AlreadyExists` when the key belongs to a received list.
        pub(super) async fn begin(conn: &mut $conn, new: &NewUpdate<'_>) -> Result<i64, StorageError> {
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
            .map_err(StorageError::from_insert)?;
            Ok(id)
        }

        pub(super) async fn discard(conn: &mut $conn, id: i64) -> Result<(), StorageError> {
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
            conn: &mut $conn,
            id: i64,
            digest: &str,
            figures: &str,
            at: time::OffsetDateTime,
            replaces: Option<i64>,
        ) -> Result<(), StorageError> {
            let Some(row) = by_ref(&mut *conn, id).await?.filter(|r| r.status == "RECEIVING") else {
                return Err(StorageError::Precondition(rec::NOT_RECEIVING));
            };
            let open = open_for_period(&mut *conn, &row.operator, &row.period).await?;
            if open.iter().any(|o| o.id != id && Some(o.id) != replaces) {
                return Err(StorageError::Precondition(rec::OTHER_LIVE_LIST));
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
                if done.rows_affected() != 1 {
                    return Err(StorageError::Precondition(rec::REPLACED_GONE));
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
        pub(super) async fn rewrite_outcomes(conn: &mut $conn, id: i64, lines: &[LineRow]) -> Result<bool, StorageError> {
            let open = sqlx::query("UPDATE monthly_updates SET stale = TRUE WHERE id = $1 AND status = 'RECONCILED'")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            if open.rows_affected() != 1 {
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
            conn: &mut $conn,
            id: i64,
            figures: &str,
            at: time::OffsetDateTime,
        ) -> Result<bool, StorageError> {
            let done = sqlx::query(
                "UPDATE monthly_updates SET figures = $2, reconciled_at = $3, revision = revision + 1, stale = FALSE \
                 WHERE id = $1 AND status = 'RECONCILED'",
            )
            .bind(id)
            .bind(figures)
            .bind(at)
            .execute(&mut *conn)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        /// Marks the open reconciled lists of periods from `first_period` on as stale; returns them.
        pub(super) async fn mark_stale(conn: &mut $conn, first_period: &str) -> Result<Vec<i64>, StorageError> {
            let ids: Vec<(i64,)> = sqlx::query_as(
                "UPDATE monthly_updates SET stale = TRUE WHERE status = 'RECONCILED' AND period >= $1 RETURNING id",
            )
            .bind(first_period)
            .fetch_all(&mut *conn)
            .await?;
            Ok(ids.into_iter().map(|(id,)| id).collect())
        }

        pub(super) async fn stale_lists(conn: &mut $conn) -> Result<Vec<i64>, StorageError> {
            let ids: Vec<(i64,)> =
                sqlx::query_as("SELECT id FROM monthly_updates WHERE status = 'RECONCILED' AND stale ORDER BY id")
                    .fetch_all(&mut *conn)
                    .await?;
            Ok(ids.into_iter().map(|(id,)| id).collect())
        }

        /// Records ICT's decision on the list as reconciled in `d.revision`, unless it changed.
        pub(super) async fn decide(conn: &mut $conn, id: i64, d: &UpdateDecision<'_>) -> Result<(), StorageError> {
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
                 confirmed_scope = $6, confirmed_lines = $7, confirmed_amount = $8, confirmed_digest = $9 \
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
            .execute(&mut *conn)
            .await?;
            if done.rows_affected() == 1 {
                return Ok(());
            }
            match by_ref(&mut *conn, id).await? {
                Some(row) if row.status == "RECONCILED" => Err(StorageError::Precondition(rec::RECONCILED_AGAIN)),
                _ => Err(StorageError::Precondition(rec::NOT_RECONCILED)),
            }
        }

        /// Notes, on a confirmed list, the lines a later change alters (`Some`) or no longer
        /// alters (`None`), inside the caller's transaction; `false` when the list is not confirmed.
        pub(super) async fn note_exceptions(
            conn: &mut $conn,
            id: i64,
            lines: &[(i64, Option<String>)],
        ) -> Result<bool, StorageError> {
            let confirmed =
                sqlx::query("UPDATE monthly_updates SET exceptions = exceptions WHERE id = $1 AND status = 'CONFIRMED'")
                    .bind(id)
                    .execute(&mut *conn)
                    .await?;
            if confirmed.rows_affected() != 1 {
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
            conn: &mut $conn,
            id: i64,
            count: i64,
            at: time::OffsetDateTime,
        ) -> Result<(), StorageError> {
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

        pub(super) async fn confirmed_since(conn: &mut $conn, first_period: &str) -> Result<Vec<i64>, StorageError> {
            let ids: Vec<(i64,)> =
                sqlx::query_as("SELECT id FROM monthly_updates WHERE status = 'CONFIRMED' AND period >= $1 ORDER BY id")
                    .bind(first_period)
                    .fetch_all(&mut *conn)
                    .await?;
            Ok(ids.into_iter().map(|(id,)| id).collect())
        }

        pub(super) async fn lines(
            conn: &mut $conn,
            id: i64,
            filter: &LineFilter,
            after: i64,
            limit: u32,
        ) -> Result<Vec<LineRow>, StorageError> {
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
            conn: &mut $conn,
            period: &str,
            operator: &str,
        ) -> Result<Vec<(String, i64)>, StorageError> {
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
        pub(super) async fn idle_months(conn: &mut $conn, id: i64) -> Result<Vec<(String, i64)>, StorageError> {
            Ok(sqlx::query_as("SELECT phone_number, idle_months FROM monthly_lines WHERE update_ref = $1")
                .bind(id)
                .fetch_all(&mut *conn)
                .await?)
        }

        /// The ids of an operator's enrolments running on some day of `[from, until)`.
        pub(super) async fn running_between(
            conn: &mut $conn,
            operator: &str,
            from: time::Date,
            until: time::Date,
        ) -> Result<Vec<i64>, StorageError> {
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
    };
}
pub(super) use reconciliation_queries;

/// The first day of a period `YYYY-MM` and of the month after it.
pub fn period_bounds(period: &str) -> Option<(Date, Date)> {
    let (y, m) = period.split_once('-')?;
    let month = time::Month::try_from(m.parse::<u8>().ok()?).ok()?;
    let first = Date::from_calendar_date(y.parse().ok()?, month, 1).ok()?;
    let next = if month == time::Month::December {
        Date::from_calendar_date(first.year() + 1, time::Month::January, 1).ok()?
    } else {
        Date::from_calendar_date(first.year(), month.next(), 1).ok()?
    };
    Some((first, next))
}
