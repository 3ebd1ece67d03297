//! The operators' change feed: events about an operator's enrolled households, written in the
//! transaction that causes them (a registry batch, a transfer) and read in order from a cursor.
//! The day support ends is worked out when an event is read, by the one rule decisions follow
//! (`support`).

use super::context::ServiceContext;
use std::{collections::HashMap, sync::Arc, time::Duration};

use time::Date;
use tokio::sync::Notify;

use super::clock::Clock;
use super::{
    DomainError,
    decision::{Rule, Table},
    eligibility::{History, QueryKind},
    household::{Category, RemovalReason, name_enum},
    policy::PolicyRegistry,
    support,
};
use crate::domain::ports::{EnrollmentStore, RegisterStore, enrollments::FeedEntry};

name_enum! {
    /// What happened to an operator's enrolled household.
    FeedKind {
        /// The household left the list.
        Removed = "REMOVED",
        /// The household's category changed (it may no longer be covered).
        CategoryChanged = "CATEGORY_CHANGED",
        /// Other details changed.
        DetailsChanged = "DETAILS_CHANGED",
        /// The subscriber moved the line to another operator.
        TransferredAway = "TRANSFERRED_AWAY",
    }
}

/// The facts about a household's new state that decide the kind of its feed event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedFact {
    /// The new state removes the household.
    Removes,
    /// The state before had a category and the new state's differs.
    CategoryChanged,
}

/// The kind of event a batch's change or removal gives, first rule that holds. Storage runs
/// this table over a whole batch as one SQL `CASE`; [`feed_kind`] evaluates it on one change.
pub const FEED_KINDS: Table<FeedFact, FeedKind> = Table {
    rules: &[
        Rule { when: &[(FeedFact::Removes, true)], then: FeedKind::Removed },
        Rule { when: &[(FeedFact::CategoryChanged, true)], then: FeedKind::CategoryChanged },
    ],
    otherwise: FeedKind::DetailsChanged,
};

/// The kind of event for a change to a household: `removes` the new state's, with its category
/// and the previous state's (none where there was no state before).
pub fn feed_kind(removes: bool, category: Category, previous: Option<Category>) -> FeedKind {
    FEED_KINDS.decide(|fact| match fact {
        FeedFact::Removes => removes,
        FeedFact::CategoryChanged => previous.is_some_and(|p| p != category),
    })
}

/// Events read per page.
pub const PAGE: u32 = 1_000;
/// How often an idle feed looks for events written by other hubs.
pub const POLL: Duration = Duration::from_secs(1);

/// An event as an operator reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEvent {
    pub row: FeedEntry,
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
        .and_then(super::paging::position)
        .ok_or_else(|| DomainError::invalid("cursor", format!("{s:?} is not a cursor this feed gave")))
}

impl ChangeFeed {
    /// Reads households' histories through the context's register (the hub's read model).
    pub fn new(context: &ServiceContext) -> Self {
        Self {
            enrollment_store: context.store.clone(),
            register_store: context.register.clone(),
            policy: context.policy.clone(),
            written: Arc::new(Notify::new()),
            clock: context.clock.clone(),
        }
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

    /// The operator's events after `after` as stored, in order, at most [`PAGE`]; made ready
    /// to send by [`Self::events`]. (Two steps, so that a reader catching up reads the next
    /// page while the current one is made ready.)
    pub async fn stored(&self, operator: &str, after: i64) -> Result<Vec<FeedEntry>, DomainError> {
        Ok(self.enrollment_store.feed_events(operator, after, PAGE).await?)
    }

    /// Stored events made ready to send. The day support ends is the one decisions give, from
    /// the household's history as the hub holds it now.
    pub async fn events(&self, rows: Vec<FeedEntry>) -> Result<Vec<FeedEvent>, DomainError> {
        let table = self.policy.table().await?;
        let mut codes: Vec<String> = rows
            .iter()
            .filter(|r| matches!(r.kind, FeedKind::Removed | FeedKind::CategoryChanged))
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
                let support_ends = match row.kind {
                    FeedKind::Removed => ends(),
                    FeedKind::CategoryChanged => {
                        let qualifies = match history {
                            Some(h) => support::qualifies_on(&h.states, &table, day),
                            None => category.is_none_or(|c| table.in_force(day).is_none_or(|p| p.covers(c))),
                        };
                        if qualifies { None } else { ends() }
                    }
                    FeedKind::TransferredAway => Some(day),
                    FeedKind::DetailsChanged => None,
                };
                Ok(FeedEvent { row, category, previous_category, removal_reason, support_ends })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_is_read_as_the_feed_writes_it() {
        assert_eq!(parse_cursor("").unwrap(), 0);
        assert_eq!(parse_cursor(&cursor(42)).unwrap(), 42);
        for refused in ["42", "f", "f-1", "f+1", "g1", "f1 "] {
            assert!(parse_cursor(refused).is_err(), "{refused:?}");
        }
    }

    #[test]
    fn a_removal_is_removed_a_new_category_is_a_category_change_and_the_rest_details() {
        let (poor, near_poor) = (Category::Poor, Category::NearPoor);
        assert_eq!(feed_kind(true, poor, Some(near_poor)), FeedKind::Removed);
        assert_eq!(feed_kind(true, poor, Some(poor)), FeedKind::Removed);
        assert_eq!(feed_kind(false, poor, Some(near_poor)), FeedKind::CategoryChanged);
        assert_eq!(feed_kind(false, poor, Some(poor)), FeedKind::DetailsChanged);
        assert_eq!(feed_kind(false, poor, None), FeedKind::DetailsChanged, "no state before: nothing to compare");
    }
}
