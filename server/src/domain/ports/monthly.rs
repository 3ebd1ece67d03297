//! Operators' monthly lists and their reconciliation.

use async_trait::async_trait;
use time::{Date, OffsetDateTime};

use super::PortError;
use crate::domain::reconciliation::ListStatus;

/// A stored monthly list (its lines are [`ListLine`]s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonthlyList {
    pub id: i64,
    pub operator: String,
    pub update_id: String,
    pub period: String,
    pub replaces_earlier: bool,
    pub note: String,
    pub status: ListStatus,
    pub content_digest: Option<String>,
    pub revision: i64,
    pub stale: bool,
    /// The figures of the last reconciliation, as JSON.
    pub figures: Option<String>,
    pub received_at: OffsetDateTime,
    pub reconciled_at: Option<OffsetDateTime>,
    pub superseded_by: Option<String>,
    pub decided_by: Option<String>,
    /// The person the deciding member's certificate named, if any.
    pub decided_by_person: Option<String>,
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListLine {
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
    pub status: Option<ListStatus>,
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
    pub by_person: Option<&'a str>,
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

/// Operators' monthly lists as they are received.
#[async_trait]
pub trait MonthlyListStore: Send + Sync + std::fmt::Debug {
    async fn monthly_update(&self, operator: &str, update_id: &str) -> Result<Option<MonthlyList>, PortError>;

    async fn monthly_update_by_ref(&self, id: i64) -> Result<Option<MonthlyList>, PortError>;

    /// The operator's lists for a period that are being received, reconciled or confirmed.
    async fn open_monthly_updates(&self, operator: &str, period: &str) -> Result<Vec<MonthlyList>, PortError>;

    /// Lists with internal ids below `before`, newest first, at most `limit`.
    async fn list_monthly_updates(
        &self,
        filter: &UpdateFilter,
        before: i64,
        limit: u32,
    ) -> Result<Vec<MonthlyList>, PortError>;

    /// Records a list as being received (dropping what an interrupted attempt with the same
    /// key left); returns its internal id. `AlreadyExists` when the key is taken.
    async fn begin_monthly_update(&self, new: &NewUpdate<'_>) -> Result<i64, PortError>;

    /// Stores reconciled lines of a list being received.
    async fn store_monthly_lines(&self, id: i64, lines: &[ListLine]) -> Result<(), PortError>;

    /// Forgets a list being received and its lines.
    async fn discard_monthly_update(&self, id: i64) -> Result<(), PortError>;

    /// Notes that every line of a list being received is stored, with the content's digest:
    /// a list so marked is finished by the next hub to start if its own stops first.
    async fn mark_monthly_received(&self, id: i64, digest: &str) -> Result<(), PortError>;

    /// In one transaction: the list being received becomes the operator's reconciled list for
    /// its period, and `replaces` (reconciled, not decided) is superseded. `Conflict` when
    /// either changed meanwhile, or another list for the period arrived.
    async fn finish_monthly_update(
        &self,
        id: i64,
        digest: &str,
        figures: &str,
        at: OffsetDateTime,
        replaces: Option<i64>,
    ) -> Result<(), PortError>;
}

/// Monthly lists after receipt: reconciled, confirmed or rejected, kept current.
#[async_trait]
pub trait ReconciliationStore: Send + Sync + std::fmt::Debug {
    /// Rewrites the outcome of lines of a reconciled list, marking it stale until
    /// [`Store::refigure_monthly_update`]; `false` when the list is no longer open.
    async fn rewrite_line_outcomes(&self, id: i64, lines: &[ListLine]) -> Result<bool, PortError>;

    /// Stores the figures of a list reconciled again and clears its stale mark; `false` when
    /// the list is no longer open.
    async fn refigure_monthly_update(&self, id: i64, figures: &str, at: OffsetDateTime) -> Result<bool, PortError>;

    /// Notes, in one transaction, on a confirmed list, the lines a later change alters
    /// (`Some(discrepancies as JSON)`) or no longer alters (`None`); `false` when the list is not
    /// confirmed.
    async fn note_line_exceptions(&self, id: i64, lines: &[(i64, Option<String>)]) -> Result<bool, PortError>;

    /// Stores how many lines of a confirmed list a later change alters.
    async fn count_exceptions(&self, id: i64, count: i64, at: OffsetDateTime) -> Result<(), PortError>;

    /// The confirmed lists of periods from `first_period` on.
    async fn confirmed_updates_since(&self, first_period: &str) -> Result<Vec<i64>, PortError>;

    /// Marks the reconciled lists of periods from `first_period` on as stale; returns their ids.
    async fn mark_stale_updates(&self, first_period: &str) -> Result<Vec<i64>, PortError>;

    /// The reconciled lists marked stale.
    async fn stale_monthly_updates(&self) -> Result<Vec<i64>, PortError>;

    /// Confirms or rejects a list as reconciled in `decision.revision`; `Conflict` when it
    /// is not reconciled, or was reconciled again meanwhile.
    async fn decide_monthly_update(&self, id: i64, decision: &UpdateDecision<'_>) -> Result<(), PortError>;

    /// Lines of a list after line `after`, in order, at most `limit`.
    async fn monthly_lines(
        &self,
        id: i64,
        filter: &LineFilter,
        after: i64,
        limit: u32,
    ) -> Result<Vec<ListLine>, PortError>;

    /// Households that other operators' reconciled or confirmed lists claim for a period, with
    /// the list claiming each.
    async fn claimed_elsewhere(&self, period: &str, operator: &str) -> Result<Vec<(String, i64)>, PortError>;

    /// The phone numbers of a list with their months without traffic.
    async fn idle_months(&self, id: i64) -> Result<Vec<(String, i64)>, PortError>;
}
