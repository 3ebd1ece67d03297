//! The operators' change feed: events about an operator's enrolled households, written in the
//! transaction that causes them (a registry batch, a transfer) and read in order from a cursor.
//! The day support ends is worked out when an event is read, by the one rule decisions follow
//! (`support`).

use std::{collections::HashMap, sync::Arc, time::Duration};

use time::Date;
use tokio::sync::Notify;

use super::clock::Clock;
use super::{
    DomainError,
    eligibility::{History, QueryKind},
    household::{Category, RemovalReason},
    policy::PolicyRegistry,
    support,
};
use crate::domain::ports::{EnrollmentStore, RegisterStore, Store, enrollments::FeedRow};

/// Events read per page.
pub const PAGE: u32 = 1_000;
/// How often an idle feed looks for events written by other hubs.
pub const POLL: Duration = Duration::from_secs(1);

/// An event as an operator reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEvent {
    pub row: FeedRow,
    pub category: Option<Category>,
    pub previous_category: Option<Category>,
    pub removal_reason: Option<RemovalReason>,
    /// The first day without support, when the change ends it.
    pub support_ends: Option<Date>,
}

/// Reads the feed, and wakes readers when this hub writes events.
#[derive(Debug, Clone)]
pub struct ChangeFeed {
    enrollment_store: Arc<dyn EnrollmentStore>,
    register_store: Arc<dyn RegisterStore>,
    policy: Arc<PolicyRegistry>,
    written: Arc<Notify>,
    clock: Clock,
}

/// The cursor after an event.
pub fn cursor(seq: i64) -> String {
    format!("f{seq}")
}

/// The event sequence number a cursor stands for; empty: the beginning.
pub fn parse_cursor(s: &str) -> Result<i64, DomainError> {
    if s.is_empty() {
        return Ok(0);
    }
    s.strip_prefix('f')
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .ok_or_else(|| DomainError::invalid("cursor", format!("{s:?} is not a cursor this feed gave")))
}

impl ChangeFeed {
    pub fn new(store: Arc<dyn Store>, policy: Arc<PolicyRegistry>) -> Self {
        Self {
            enrollment_store: store.clone(),
            register_store: store.clone(),
            policy,
            written: Arc::new(Notify::new()),
            clock: Clock::system(),
        }
    }

    /// The same, on `clock` (the system's by default).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The clock the feed tells the time by (its heartbeats).
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Tells waiting readers that events were written.
    pub fn wake(&self) {
        self.written.notify_waiters();
    }

    /// Completes when this hub writes events (readers also poll, for other hubs' events).
    pub fn written(&self) -> Arc<Notify> {
        self.written.clone()
    }

    /// The operator's events after `after`, in order, at most [`PAGE`]. The day support ends is
    /// the one decisions give, from the household's history as the hub holds it now.
    pub async fn page(&self, operator: &str, after: i64) -> Result<Vec<FeedEvent>, DomainError> {
        let rows = self.enrollment_store.feed_events(operator, after, PAGE).await?;
        let table = self.policy.table().await?;
        let mut codes: Vec<String> = rows
            .iter()
            .filter(|r| matches!(r.kind.as_str(), "REMOVED" | "CATEGORY_CHANGED"))
            .map(|r| r.household_code.clone())
            .collect();
        codes.sort_unstable();
        codes.dedup();
        let histories: HashMap<String, History> = if codes.is_empty() {
            HashMap::new()
        } else {
            self.register_store
                .histories_matching(QueryKind::HouseholdCode, &codes, false)
                .await?
                .into_iter()
                .filter_map(|(code, found)| found.into_iter().find(|h| h.code == code).map(|h| (code, h)))
                .collect()
        };
        rows.into_iter()
            .map(|row| {
                let parse = |s: &Option<String>| s.as_deref().map(Category::parse).transpose();
                let bad = |e: String| DomainError::Internal(format!("feed event {}: {e}", row.seq).into());
                let category = parse(&row.category).map_err(bad)?;
                let previous_category = parse(&row.previous_category).map_err(bad)?;
                let removal_reason =
                    row.removal_reason.as_deref().map(RemovalReason::parse).transpose().map_err(bad)?;
                let day = row.effective_date;
                let history = histories.get(&row.household_code);
                let ends = || match history {
                    Some(h) => support::end_after(&support::periods(&h.states, &table), day),
                    None => table.in_force(day).map(|p| p.support_end(day, removal_reason)),
                };
                let support_ends = match row.kind.as_str() {
                    "REMOVED" => ends(),
                    "CATEGORY_CHANGED" => {
                        let qualifies = match history {
                            Some(h) => support::qualifies_on(&h.states, &table, day),
                            None => category.is_none_or(|c| table.in_force(day).is_none_or(|p| p.covers(c))),
                        };
                        if qualifies { None } else { ends() }
                    }
                    "TRANSFERRED_AWAY" => Some(day),
                    _ => None,
                };
                Ok(FeedEvent { row, category, previous_category, removal_reason, support_ends })
            })
            .collect()
    }
}
