//! The retention policy (Law 91/2025/QH15 on personal data and Decree 356/2025/NĐ-CP: data is
//! kept no longer than its purpose needs). What the hub keeps beyond the programme's running
//! need, and for how long:
//!
//! - **decisions** it gave (the value asked and the answer, kept so that a party can show what
//!   the hub said): for `decisions_years` after they were given;
//! - **samples** frozen for inspections (households' histories as they were): for
//!   `samples_years` after their inspection closed (never while it is open);
//! - **households off the list** (every state, with the members' names and citizen IDs): for
//!   `removed_households_years` after their removal took effect, when nothing brought them back.
//!
//! A purge (ICT, `Supervision/PurgeExpired`) lets go what the policy no longer keeps, in two
//! calls: a dry run counts what would go and gives a ticket, its own request id, whose audit
//! record is kept before it answers; the purge names the ticket and marks everything it lets go
//! with it. The audit trail stays whole and verifiable: records are never touched; what they
//! point to is marked with a call the trail holds before anything changed, so that a purge cut
//! off half-way (the hub killed) leaves nothing `audit verify` cannot account for. A decision
//! keeps who asked, when, the kind of question and the outcome; a run of decisions the digest
//! of its answers; a sample its draw; a household a marker with its code and the day it left
//! the list. No policy may keep anything less than [`LEAST_YEARS`]: the database refuses to
//! blank a decision younger than a year, and `telesub audit verify` refuses a purged decision
//! that was a year younger than its ticket.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::{Date, Month, OffsetDateTime};

use super::{
    DomainError,
    clock::Clock,
    context::ServiceContext,
    member::{Caller, Role},
    ports::{
        AuditFilter, Store,
        retention::{Cutoffs, Expired, PurgeMark},
    },
};

/// The method whose calls apply the policy (and whose dry runs give tickets).
pub const PURGE_METHOD: &str = "/telesub.v1.Supervision/PurgeExpired";

/// How long a dry run's ticket holds.
const TICKET_HOLDS: time::Duration = time::Duration::days(1);

/// The shortest time any policy keeps anything, in years.
pub const LEAST_YEARS: u32 = 1;

/// The longest a policy may say, in years (a longer one is a typing slip).
pub const MOST_YEARS: u32 = 100;

/// Decisions purged in one transaction.
const DECISIONS_AT_ONCE: u32 = 5_000;

/// Households purged in one transaction.
const HOUSEHOLDS_AT_ONCE: u32 = 1_000;

/// How long each kind of thing is kept, in years (config `[retention]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionPolicy {
    pub decisions_years: u32,
    pub samples_years: u32,
    pub removed_households_years: u32,
}

impl Default for RetentionPolicy {
    /// Five years each: the span of the programme's plan and of the inspections of it.
    fn default() -> Self {
        Self { decisions_years: 5, samples_years: 5, removed_households_years: 5 }
    }
}

impl RetentionPolicy {
    /// Each period between [`LEAST_YEARS`] and [`MOST_YEARS`]; the first one that is not, by
    /// its key under `[retention]`.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        for (key, years) in [
            ("decisions_years", self.decisions_years),
            ("samples_years", self.samples_years),
            ("removed_households_years", self.removed_households_years),
        ] {
            if !(LEAST_YEARS..=MOST_YEARS).contains(&years) {
                return Err((key, format!("is {years}; it must be between {LEAST_YEARS} and {MOST_YEARS} years")));
            }
        }
        Ok(())
    }

    /// Up to when each kind of thing may go, at `now`: the same day and time that many years
    /// earlier (29 February going back to a year without one: 28 February). Removals are
    /// dated in the province's days.
    pub fn cutoffs(&self, now: OffsetDateTime) -> Cutoffs {
        let today = now.to_offset(super::clock::PROVINCE_OFFSET).date();
        Cutoffs {
            decisions_before: now.replace_date(years_before(now.date(), self.decisions_years)),
            samples_closed_before: now.replace_date(years_before(now.date(), self.samples_years)),
            households_removed_before: years_before(today, self.removed_households_years),
        }
    }
}

/// The same day `years` earlier (28 February for a 29 February).
pub fn years_before(day: Date, years: u32) -> Date {
    let year = day.year() - years as i32;
    Date::from_calendar_date(year, day.month(), day.day())
        .or_else(|_| Date::from_calendar_date(year, Month::February, 28))
        .expect("a day of a year")
}

/// What a purge let go (or, as a dry run, would).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurgeSummary {
    pub cutoffs: Cutoffs,
    pub policy: RetentionPolicy,
    pub expired: Expired,
    pub dry_run: bool,
    /// The dry run's ticket, or the one the purge went by.
    pub ticket: String,
}

/// Applies the retention policy.
#[derive(Clone)]
pub struct RetentionService {
    store: Arc<dyn Store>,
    policy: RetentionPolicy,
    clock: Clock,
}

impl std::fmt::Debug for RetentionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetentionService").field("policy", &self.policy).finish_non_exhaustive()
    }
}

impl RetentionService {
    pub fn new(context: &ServiceContext, policy: RetentionPolicy) -> Self {
        Self { store: context.store.clone(), policy, clock: context.clock.clone() }
    }

    pub fn policy(&self) -> RetentionPolicy {
        self.policy
    }

    /// A dry run (`ticket` empty, `dry_run`): counts what the policy lets go now, and gives
    /// the call's `request_id` as the ticket. A purge: lets go what the policy let go at the
    /// ticket's time, marked with the ticket, which must be a dry run of the caller's member
    /// in the trail, less than a day old. A purge stopped half-way (the hub stopped, the
    /// database went away) has purged whole pieces, each marked; another ticket goes on.
    pub async fn purge(
        &self,
        caller: &Caller,
        request_id: &str,
        dry_run: bool,
        ticket: &str,
    ) -> Result<PurgeSummary, DomainError> {
        if caller.member.role != Role::Ict {
            return Err(DomainError::PermissionDenied("only ICT applies the retention policy".into()));
        }
        let now = self.clock.now();
        if dry_run {
            if !ticket.is_empty() {
                return Err(DomainError::invalid("ticket", "a dry run gives a ticket; it takes none"));
            }
            let cutoffs = self.policy.cutoffs(now);
            let expired = self.store.expired(&cutoffs).await?;
            return Ok(PurgeSummary { cutoffs, policy: self.policy, expired, dry_run, ticket: request_id.to_owned() });
        }
        let issued = self.ticket(caller, ticket, now).await?;
        let cutoffs = self.policy.cutoffs(issued);
        let summary =
            |expired| PurgeSummary { cutoffs, policy: self.policy, expired, dry_run, ticket: ticket.to_owned() };
        let request_id = ticket;
        // Said before anything goes: a purge cut off leaves marks naming this request id.
        tracing::info!(
            request_id,
            decisions_before = %cutoffs.decisions_before,
            samples_closed_before = %cutoffs.samples_closed_before,
            households_removed_before = %cutoffs.households_removed_before,
            "applying the retention policy"
        );
        let mark = PurgeMark { request_id, at: now };
        let mut done = Expired::default();
        loop {
            let (decisions, runs) =
                self.store.purge_decisions(cutoffs.decisions_before, &mark, DECISIONS_AT_ONCE).await?;
            done.decisions += decisions;
            done.runs += runs;
            if decisions < u64::from(DECISIONS_AT_ONCE) && runs < u64::from(DECISIONS_AT_ONCE) {
                break;
            }
        }
        done.samples = self.store.purge_samples(cutoffs.samples_closed_before, &mark).await?;
        loop {
            let households =
                self.store.purge_households(cutoffs.households_removed_before, &mark, HOUSEHOLDS_AT_ONCE).await?;
            done.households += households.len() as u64;
            if households.len() < HOUSEHOLDS_AT_ONCE as usize {
                break;
            }
        }
        tracing::info!(
            decisions = done.decisions,
            runs = done.runs,
            samples = done.samples,
            households = done.households,
            "the retention policy was applied"
        );
        Ok(summary(done))
    }

    /// When the dry run `ticket` names was recorded, if it is one of the caller's member's,
    /// succeeded, and is less than a day old.
    async fn ticket(&self, caller: &Caller, ticket: &str, now: OffsetDateTime) -> Result<OffsetDateTime, DomainError> {
        if ticket.trim().is_empty() {
            return Err(DomainError::invalid(
                "ticket",
                "a purge names the ticket of a dry run (PurgeExpired with dry_run gives one)",
            ));
        }
        let filter = AuditFilter {
            from: now - TICKET_HOLDS,
            until: now + time::Duration::seconds(1),
            org_code: Some(caller.member.code.to_string()),
            method: Some(PURGE_METHOD.to_owned()),
            method_prefix: None,
            outcome: Some("OK".to_owned()),
        };
        let mut after = 0;
        loop {
            let page = self.store.query_audit(&filter, after, 1_000).await?;
            if let Some(found) = page.iter().find(|r| r.entry.request_id == ticket) {
                return Ok(found.entry.at);
            }
            match page.last() {
                Some(last) if page.len() == 1_000 => after = last.seq,
                _ => break,
            }
        }
        Err(DomainError::invalid(
            "ticket",
            format!(
                "{ticket:?} is not a dry run of {} of the last day: run PurgeExpired with dry_run for a ticket",
                caller.member.code
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use time::macros::{date, datetime};

    use super::*;

    #[test]
    fn cutoffs_are_the_same_day_years_before() {
        let policy = RetentionPolicy { decisions_years: 5, samples_years: 3, removed_households_years: 10 };
        let c = policy.cutoffs(datetime!(2026-12-07 03:00 UTC));
        assert_eq!(c.decisions_before, datetime!(2021-12-07 03:00 UTC));
        assert_eq!(c.samples_closed_before, datetime!(2023-12-07 03:00 UTC));
        assert_eq!(c.households_removed_before, date!(2016 - 12 - 07));
        // Removals are dated in the province: 20:00 UTC is the next day there.
        let c = policy.cutoffs(datetime!(2026-12-07 20:00 UTC));
        assert_eq!(c.households_removed_before, date!(2016 - 12 - 08));
        assert_eq!(years_before(date!(2028 - 02 - 29), 1), date!(2027 - 02 - 28));
        assert_eq!(years_before(date!(2028 - 02 - 29), 4), date!(2024 - 02 - 29));
    }

    #[test]
    fn a_policy_keeps_everything_a_year_at_least() {
        assert_eq!(RetentionPolicy::default().check(), Ok(()));
        let short = RetentionPolicy { samples_years: 0, ..RetentionPolicy::default() };
        assert_eq!(short.check().unwrap_err().0, "samples_years");
        let long = RetentionPolicy { removed_households_years: 500, ..RetentionPolicy::default() };
        assert_eq!(long.check().unwrap_err().0, "removed_households_years");
        // A year is never fewer than the 365 days the database's guard asks of a purge.
        for day in [date!(2024 - 02 - 29), date!(2025 - 03 - 01), date!(2024 - 12 - 31)] {
            assert!((day - years_before(day, LEAST_YEARS)).whole_days() >= 365, "{day}");
        }
    }
}
