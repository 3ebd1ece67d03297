//! The register held in memory ([`RegisterIndex`]), kept current with the backend's change log
//! ([`RegisterChanges`]: SQLite's `register_changes`, migration 0014).
//!
//! Every write to a household's states or enrolments notes the household in the change log:
//! a batch in its own transaction, or the whole register when it changed more than is worth
//! patching; triggers note every enrolment written, by this hub, another on the same file, or
//! by hand. (A state changed by hand, outside a batch, needs a row there too, or a restart of
//! the hubs.) Before answering, a lookup reads the changes noted since the index's last one and
//! reads those households again; lookups that arrive while such a read is under way share the
//! next one, as the audit trail shares commits. So a question asked after a change was
//! committed is answered with the change, as when every question read the database.
//!
//! The index is built when a hub starts serving, in the background; until it is ready, and
//! whenever more changed at once than are worth patching (a yearly review), lookups read the
//! database as before while it is built again. After a batch this process applied, the index
//! catches up at once rather than at the next question.

use std::{
    sync::{
        Arc, RwLock, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use super::index::{RegisterIndex, Unindexable};
use crate::domain::{
    eligibility::{History, QueryKind},
    ports::{
        PortError,
        register::{MOST_CHANGES_PATCHED, RegisterChanges, WHOLE_REGISTER},
    },
};

/// How long after a failed build the next may start.
const RETRY_AFTER: Duration = Duration::from_secs(30);

/// The register in memory, following a backend's change log.
#[derive(Debug)]
pub struct HeldRegister {
    changes: Arc<dyn RegisterChanges>,
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
    /// When the index was last built whole (seconds since 1970; 0 before the first).
    built_at: std::sync::atomic::AtomicI64,
}

impl HeldRegister {
    /// Starts building the index on the current runtime, and catching up after each write the
    /// backend reports.
    pub fn start(changes: Arc<dyn RegisterChanges>) -> Arc<Self> {
        let mut written = changes.written();
        let this = Arc::new(Self {
            changes,
            index: RwLock::default(),
            sync: tokio::sync::Mutex::default(),
            syncs: AtomicU64::default(),
            synced: AtomicU64::default(),
            building: AtomicBool::default(),
            unindexable: AtomicBool::default(),
            failed_at: std::sync::Mutex::default(),
            built_at: std::sync::atomic::AtomicI64::default(),
        });
        this.spawn_build();
        let held: Weak<Self> = Arc::downgrade(&this);
        tokio::spawn(async move {
            while written.changed().await.is_ok() {
                let Some(this) = held.upgrade() else { return };
                this.refresh().await;
            }
        });
        this
    }

    /// The histories of what `values` match, from memory; `None` while the index is not
    /// ready (the caller reads the database).
    pub async fn find(
        self: &Arc<Self>,
        kind: QueryKind,
        values: &[String],
    ) -> Result<Option<Vec<(String, Vec<History>)>>, PortError> {
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
                self.catch_up_numbered().await?;
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
    async fn refresh(self: &Arc<Self>) {
        if self.index.read().expect("register index lock").is_none() {
            self.spawn_build();
            return;
        }
        let _sync = self.sync.lock().await;
        if let Err(e) = self.catch_up_numbered().await {
            tracing::warn!(error = %crate::ErrorChain(&e), "the register's index did not catch up");
        }
    }

    /// Households held, when the index is ready.
    pub fn held(&self) -> Option<usize> {
        self.index.read().expect("register index lock").as_ref().map(RegisterIndex::len)
    }

    /// When the index was last built whole (seconds since 1970), once it has been.
    pub fn built_at(&self) -> Option<i64> {
        Some(self.built_at.load(Ordering::SeqCst)).filter(|&t| t > 0 && self.held().is_some())
    }

    /// Waits until the index reflects every change committed so far, building it if need be.
    pub async fn wait_current(self: &Arc<Self>) -> Result<(), PortError> {
        loop {
            if self.unindexable.load(Ordering::SeqCst) {
                return Ok(());
            }
            if !self.building.load(Ordering::SeqCst) {
                let _sync = self.sync.lock().await;
                if self.catch_up_numbered().await? {
                    return Ok(());
                }
                drop(_sync);
                self.spawn_build();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// [`Self::catch_up_locked`], numbered, for the lookups that wait on it.
    async fn catch_up_numbered(self: &Arc<Self>) -> Result<bool, PortError> {
        let number = self.syncs.fetch_add(1, Ordering::SeqCst) + 1;
        let caught_up = self.catch_up_locked().await?;
        self.synced.fetch_max(number, Ordering::SeqCst);
        Ok(caught_up)
    }

    /// Reads the changes since the index's last one and the households they name; `false`
    /// when there is no index (any more): too much changed, and a new one is being built.
    async fn catch_up_locked(self: &Arc<Self>) -> Result<bool, PortError> {
        let Some(seq) = self.index.read().expect("register index lock").as_ref().map(|i| i.seq) else {
            return Ok(false);
        };
        let rows = self.changes.changes_from(seq, MOST_CHANGES_PATCHED as u32 + 1).await?;
        // The index's own last change is gone (pruned: the index is too old to patch), too
        // many changed, or the whole register did.
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
        let mut found: std::collections::HashMap<String, History> =
            self.changes.households_now(&codes).await?.into_iter().map(|h| (h.code.clone(), h)).collect();
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
        let failed_lately = self.failed_at.lock().expect("failure time").is_some_and(|at| at.elapsed() < RETRY_AFTER);
        if failed_lately || self.unindexable.load(Ordering::SeqCst) || self.building.swap(true, Ordering::SeqCst) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            if let Err(e) = this.build().await {
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

    async fn build(self: &Arc<Self>) -> Result<(), PortError> {
        let started = Instant::now();
        let mut index = RegisterIndex::new(0);
        let seq =
            self.changes.scan_register(&mut |history| index.put(&history).map_err(|e| self.cannot_hold(e))).await?;
        index.seq = seq;
        index.settle();
        let (households, bytes) = (index.len(), index.bytes());
        let _sync = self.sync.lock().await;
        *self.index.write().expect("register index lock") = Some(index);
        self.built_at.store(time::OffsetDateTime::now_utc().unix_timestamp(), Ordering::SeqCst);
        self.catch_up_numbered().await?;
        tracing::info!(
            households,
            mib = bytes >> 20,
            seconds = started.elapsed().as_secs_f64(),
            "the register is held in memory"
        );
        Ok(())
    }

    fn cannot_hold(&self, e: Unindexable) -> PortError {
        self.unindexable.store(true, Ordering::SeqCst);
        PortError::Corrupt(format!("the register's index cannot hold it: {e}"))
    }
}
