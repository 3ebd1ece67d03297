//! Operators' monthly lists and their reconciliation.

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
