//! The operators' change feed: events about an operator's enrolled households, written in the
//! transaction that causes them (a registry batch, a transfer) and read in order from a cursor.
//! The day support ends is worked out when an event is read, under the policy in force on
//! the day of the change.

use std::{sync::Arc, time::Duration};

use time::Date;
use tokio::sync::Notify;

use super::{
    DomainError,
    household::{Category, RemovalReason},
    policy::PolicyRegistry,
};
use crate::storage::{Store, enrollments::FeedRow};

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
    store: Arc<dyn Store>,
    policy: Arc<PolicyRegistry>,
    written: Arc<Notify>,
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
        Self { store, policy, written: Arc::new(Notify::new()) }
    }

    /// Tells waiting readers that events were written.
    pub fn wake(&self) {
        self.written.notify_waiters();
    }

    /// Completes when this hub writes events (readers also poll, for other hubs' events).
    pub fn written(&self) -> Arc<Notify> {
        self.written.clone()
    }

    /// The operator's events after `after`, in order, at most [`PAGE`].
    pub async fn page(&self, operator: &str, after: i64) -> Result<Vec<FeedEvent>, DomainError> {
        let rows = self.store.feed_events(operator, after, PAGE).await?;
        let table = self.policy.table().await?;
        rows.into_iter()
            .map(|row| {
                let parse = |s: &Option<String>| s.as_deref().map(Category::parse).transpose();
                let bad = |e: String| DomainError::Internal(format!("feed event {}: {e}", row.seq).into());
                let category = parse(&row.category).map_err(bad)?;
                let previous_category = parse(&row.previous_category).map_err(bad)?;
                let removal_reason =
                    row.removal_reason.as_deref().map(RemovalReason::parse).transpose().map_err(bad)?;
                let policy = table.in_force(row.effective_date);
                let support_ends = match row.kind.as_str() {
                    "REMOVED" => policy.map(|p| p.support_end(row.effective_date, removal_reason)),
                    "CATEGORY_CHANGED" => policy
                        .filter(|p| category.is_some_and(|c| !p.covers(c)))
                        .map(|p| p.support_end(row.effective_date, None)),
                    "TRANSFERRED_AWAY" => Some(row.effective_date),
                    _ => None,
                };
                Ok(FeedEvent { row, category, previous_category, removal_reason, support_ends })
            })
            .collect()
    }
}
