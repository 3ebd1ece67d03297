//! The SQLite store's register in memory ([`RegisterIndex`]), kept current with the register's
//! change log.
//!
//! Every write to a household's states or enrolments adds a row to `register_changes`
//! (migration 0014): a batch notes its households in its own transaction, or `*` for the whole
//! register when it changed more than is worth patching; triggers note every enrolment written,
//! by this hub, another on the same file, or by hand. (A state changed by hand, outside a
//! batch, needs a row there too, or a restart of the hubs.) Before answering, a lookup reads the rows added since the
//! index's last one and reads those households again; lookups that arrive while such a read is
//! under way share the next one, as the audit trail shares commits. So a question asked after a
//! change was committed is answered with the change, as when every question read the database.
//!
//! The index is built when a hub starts serving, in the background; until it is ready, and
//! whenever more changed at once than are worth patching (a yearly review), lookups read the
//! database as before while it is built again.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::TryStreamExt;
use sqlx::SqlitePool;

use super::{
    PortError,
    eligibility::{StateRow, add_state, histories_from_rows},
    register_index::RegisterIndex,
};
use crate::domain::eligibility::{History, QueryKind};

/// More changed households than this since the last look: build the index again rather than
/// patch it.
pub(super) const MOST_CHANGES_PATCHED: usize = 50_000;

/// Change-log rows kept: a hub whose index is older than the oldest row builds it again.
pub(super) const CHANGES_KEPT: i64 = 200_000;

/// Every state of every household, by household and date, with the household's enrolments.
const SCAN: &str = "SELECT v.household_code AS matched, v.household_code, v.valid_from, v.valid_to, \
     v.removal_reason, v.data, \
     (SELECT json_group_array(json_array(e.operator, e.start_date, e.end_date)) FROM enrollments e \
     WHERE e.household_code = v.household_code) AS holdings \
     FROM household_versions v ORDER BY v.household_code, v.valid_from";

const CHANGES_SINCE: &str = "SELECT seq, household_code FROM register_changes WHERE seq >= $1 ORDER BY seq LIMIT $2";

/// The change-log entry that stands for every household.
pub(super) const WHOLE_REGISTER: &str = "*";

/// A batch's changed households, in its own transaction; a large batch notes the whole register.
pub(super) const NOTE_BATCH_CHANGES: &str = "INSERT INTO register_changes (household_code) \
     SELECT DISTINCT household_code FROM batch_outcomes WHERE batch_id = $1 AND outcome <> 'UNCHANGED'";

pub(super) const PRUNE_CHANGES: &str =
    "DELETE FROM register_changes WHERE seq < (SELECT max(seq) FROM register_changes) - $1";

/// The connections the held register reads with.
#[derive(Debug, Clone)]
pub(super) struct RegisterPools {
    /// Reads the change log before every lookup: connections with a small page cache, which
    /// SQLite empties whenever another connection has committed (every audit commit), at a
    /// cost that grows with the cache's size.
    pub(super) changes: SqlitePool,
    /// Reads the households that changed.
    pub(super) read: SqlitePool,
    /// Reads the whole register to build the index: a connection of its own, opened for the
    /// scan, with a small page cache and no mapping of the file (the scan reads each page once;
    /// a mapping would count the whole register in the hub's resident memory).
    pub(super) scan: sqlx::sqlite::SqliteConnectOptions,
}

#[derive(Debug, Default)]
pub(super) struct HeldRegister {
    pools: std::sync::OnceLock<RegisterPools>,
    index: RwLock<Option<RegisterIndex>>,
    /// Held while the index catches up with the change log.
    sync: tokio::sync::Mutex<()>,
    /// Catch-ups started, numbered from 1.
    syncs: AtomicU64,
    /// The number of the last catch-up that succeeded: a lookup that arrived before it
    /// started needs no other.
    synced: AtomicU64,
    building: AtomicBool,
    /// The register holds a value the index cannot encode: it is not built again.
    unindexable: AtomicBool,
    /// When a build last failed: the next waits a while rather than scan again at once.
    failed_at: std::sync::Mutex<Option<Instant>>,
}

/// How long after a failed build the next may start.
const RETRY_AFTER: Duration = Duration::from_secs(30);

impl HeldRegister {
    /// Starts building the index; only a serving hub holds the register.
    pub(super) fn start(self: &Arc<Self>, pools: RegisterPools) {
        if self.pools.set(pools).is_ok() {
            self.spawn_build();
        }
    }

    /// The histories of what `values` match, from memory; `None` while the index is not
    /// ready (the caller reads the database).
    pub(super) async fn find(
        self: &Arc<Self>,
        kind: QueryKind,
        values: &[String],
    ) -> Result<Option<Vec<(String, Vec<History>)>>, PortError> {
        let Some(pools) = self.pools.get() else { return Ok(None) };
        if self.index.read().expect("register index lock").is_none() {
            self.spawn_build();
            return Ok(None);
        }
        let ticket = self.syncs.load(Ordering::SeqCst);
        {
            let _sync = self.sync.lock().await;
            // A catch-up that started after this lookup arrived, and succeeded, has read every
            // change committed before it; else this lookup reads them.
            if self.synced.load(Ordering::SeqCst) <= ticket {
                self.catch_up_numbered(pools).await?;
            }
        }
        let index = self.index.read().expect("register index lock");
        let Some(index) = index.as_ref() else { return Ok(None) };
        Ok(Some(
            values
                .iter()
                .filter_map(|value| {
                    let found = index.find(kind, value);
                    (!found.is_empty()).then(|| (value.clone(), found))
                })
                .collect(),
        ))
    }

    /// After a large write: catches up now rather than at the next question (building the
    /// index again when the write changed too much to patch), so that the next question finds
    /// it ready.
    pub(super) fn refresh_soon(self: &Arc<Self>) {
        let Some(pools) = self.pools.get().cloned() else { return };
        let this = self.clone();
        tokio::spawn(async move {
            if this.index.read().expect("register index lock").is_none() {
                this.spawn_build();
                return;
            }
            let _sync = this.sync.lock().await;
            if let Err(e) = this.catch_up_numbered(&pools).await {
                tracing::warn!(error = %crate::ErrorChain(&e), "the register's index did not catch up");
            }
        });
    }

    /// Households held, when the index is ready.
    pub(super) fn held(&self) -> Option<usize> {
        self.index.read().expect("register index lock").as_ref().map(RegisterIndex::len)
    }

    /// Waits until the index reflects every change committed so far, building it if need be.
    pub(super) async fn wait_current(self: &Arc<Self>) -> Result<(), PortError> {
        let Some(pools) = self.pools.get() else { return Ok(()) };
        loop {
            if self.unindexable.load(Ordering::SeqCst) {
                return Ok(());
            }
            if !self.building.load(Ordering::SeqCst) {
                let _sync = self.sync.lock().await;
                if self.catch_up_numbered(pools).await? {
                    return Ok(());
                }
                drop(_sync);
                self.spawn_build();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// [`Self::catch_up_locked`], numbered, for the lookups that wait on it.
    async fn catch_up_numbered(self: &Arc<Self>, pools: &RegisterPools) -> Result<bool, PortError> {
        let number = self.syncs.fetch_add(1, Ordering::SeqCst) + 1;
        let caught_up = self.catch_up_locked(pools).await?;
        self.synced.fetch_max(number, Ordering::SeqCst);
        Ok(caught_up)
    }

    /// Reads the changes since the index's last one and the households they name; `false`
    /// when there is no index (any more): too much changed, and a new one is being built.
    async fn catch_up_locked(self: &Arc<Self>, pools: &RegisterPools) -> Result<bool, PortError> {
        let Some(seq) = self.index.read().expect("register index lock").as_ref().map(|i| i.seq) else {
            return Ok(false);
        };
        let rows: Vec<(i64, String)> = sqlx::query_as(CHANGES_SINCE)
            .bind(seq)
            .bind(MOST_CHANGES_PATCHED as i64 + 1)
            .fetch_all(&pools.changes)
            .await?;
        // The index's own last change is gone (pruned: the index is too old to patch), too
        // many changed, or the whole register did ('*').
        if rows.first().map(|r| r.0) != Some(seq)
            || rows.len() > MOST_CHANGES_PATCHED
            || rows.iter().skip(1).any(|r| r.1 == WHOLE_REGISTER)
        {
            tracing::info!(changes_since = seq, "the register changed too much to patch: building its index again");
            *self.index.write().expect("register index lock") = None;
            self.spawn_build();
            return Ok(false);
        }
        let last = rows.last().map_or(seq, |r| r.0);
        if last == seq {
            return Ok(true);
        }
        let mut codes: Vec<String> = rows.into_iter().skip(1).map(|r| r.1).filter(|c| !c.is_empty()).collect();
        codes.sort_unstable();
        codes.dedup();
        let values = serde_json::to_string(&codes).expect("strings serialise");
        let rows: Vec<StateRow> =
            sqlx::query_as(super::sqlite::MATCHING.household_code).bind(values).fetch_all(&pools.read).await?;
        let mut found: std::collections::HashMap<String, History> =
            histories_from_rows(rows)?.into_iter().filter_map(|(code, mut h)| Some((code, h.pop()?))).collect();
        let mut index = self.index.write().expect("register index lock");
        let Some(held) = index.as_mut() else { return Ok(false) };
        for code in codes {
            // A household with no state left is held empty: nothing finds it.
            let history = found.remove(&code).unwrap_or(History { code, states: Vec::new(), enrollments: Vec::new() });
            if let Err(e) = held.put(&history) {
                tracing::warn!(error = %e, "the register's index cannot hold a household: questions read the database");
                self.unindexable.store(true, Ordering::SeqCst);
                *index = None;
                return Ok(false);
            }
        }
        held.seq = last;
        held.settle();
        Ok(true)
    }

    fn spawn_build(self: &Arc<Self>) {
        let Some(pools) = self.pools.get().cloned() else { return };
        let failed_lately = self.failed_at.lock().expect("failure time").is_some_and(|at| at.elapsed() < RETRY_AFTER);
        if failed_lately || self.unindexable.load(Ordering::SeqCst) || self.building.swap(true, Ordering::SeqCst) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.build(&pools).await {
                tracing::warn!(error = %crate::ErrorChain(&e), "the register's index was not built: questions read the database");
                // Stored data that does not read back will not read back next time either.
                if matches!(e, PortError::Corrupt(_)) {
                    this.unindexable.store(true, Ordering::SeqCst);
                }
                *this.failed_at.lock().expect("failure time") = Some(Instant::now());
            }
            this.building.store(false, Ordering::SeqCst);
        });
    }

    async fn build(self: &Arc<Self>, pools: &RegisterPools) -> Result<(), PortError> {
        let started = Instant::now();
        // One read transaction: the scan sees the register as of the last change it notes.
        let mut scan = sqlx::ConnectOptions::connect(&pools.scan).await?;
        let mut tx = sqlx::Connection::begin(&mut scan).await?;
        let (seq,): (i64,) = sqlx::query_as("SELECT max(seq) FROM register_changes").fetch_one(&mut *tx).await?;
        let mut index = RegisterIndex::new(seq);
        let mut current: Vec<History> = Vec::with_capacity(1);
        {
            let mut rows = sqlx::query_as::<_, StateRow>(SCAN).fetch(&mut *tx);
            while let Some(row) = rows.try_next().await? {
                if current.last().is_some_and(|h| h.code != row.household_code) {
                    let h = current.pop().expect("checked above");
                    if let Err(e) = index.put(&h) {
                        return Err(self.cannot_hold(e));
                    }
                }
                add_state(&mut current, row)?;
            }
        }
        tx.rollback().await?;
        drop(scan);
        if let Some(h) = current.pop()
            && let Err(e) = index.put(&h)
        {
            return Err(self.cannot_hold(e));
        }
        index.settle();
        let (households, bytes) = (index.len(), index.bytes());
        let _sync = self.sync.lock().await;
        *self.index.write().expect("register index lock") = Some(index);
        self.catch_up_numbered(pools).await?;
        tracing::info!(
            households,
            mib = bytes >> 20,
            seconds = started.elapsed().as_secs_f64(),
            "the register is held in memory"
        );
        Ok(())
    }

    fn cannot_hold(&self, e: super::register_index::Unindexable) -> PortError {
        self.unindexable.store(true, Ordering::SeqCst);
        PortError::Corrupt(format!("the register's index cannot hold it: {e}"))
    }
}
