//! Appends audit entries with group commit: entries that arrive while a write is under way
//! go into the next transaction together, so the chain costs one database write per batch,
//! not per call, and every caller still waits until its record is stored.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{AuditEntry, Subject};
use crate::domain::ports::{Store, policy::StoredDecision};

const MAX_BATCH: usize = 512;
const QUEUE: usize = 8_192;

struct Pending {
    entry: AuditEntry,
    /// Decisions the call gave, stored in the same transaction as its record.
    decisions: Vec<StoredDecision>,
    /// What the call looked up.
    subjects: Vec<Subject>,
    done: oneshot::Sender<Result<(i64, String), AuditWriteError>>,
}

/// The audit record could not be stored.
#[derive(Debug, Clone, thiserror::Error)]
#[error("audit trail unavailable: {0}")]
pub struct AuditWriteError(String);

/// Handle to the audit writer task, for appending. Cloning is cheap.
#[derive(Clone, Debug)]
pub struct AuditLog {
    tx: mpsc::Sender<Pending>,
}

/// Owner of the writer task: stops it once the records already queued are stored.
#[derive(Debug)]
pub struct AuditWriter {
    task: tokio::task::JoinHandle<()>,
    stop: oneshot::Sender<()>,
}

impl AuditWriter {
    /// Stores what is queued, refuses what comes later, and waits up to `timeout` for the task.
    pub async fn finish(self, timeout: std::time::Duration) {
        let _ = self.stop.send(());
        if tokio::time::timeout(timeout, self.task).await.is_err() {
            tracing::error!("the audit writer did not finish in time");
        }
    }
}

impl AuditLog {
    /// Starts the writer task on the current runtime.
    pub fn start(store: Arc<dyn Store>) -> (Self, AuditWriter) {
        Self::start_with(store, None)
    }

    /// [`Self::start`], counting each group commit's size and the records waiting in `metrics`.
    pub fn start_with(store: Arc<dyn Store>, metrics: Option<crate::metrics::Metrics>) -> (Self, AuditWriter) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(run(store, rx, stopped, metrics));
        (Self { tx }, AuditWriter { task, stop })
    }

    /// Appends one entry and returns its sequence number and chain hash once it is stored.
    pub async fn append(&self, entry: AuditEntry) -> Result<(i64, String), AuditWriteError> {
        self.append_with(entry, Vec::new(), Vec::new()).await
    }

    /// Appends one entry and, in the same transaction, the decisions its call gave and what it
    /// looked up.
    pub async fn append_with(
        &self,
        entry: AuditEntry,
        decisions: Vec<StoredDecision>,
        subjects: Vec<Subject>,
    ) -> Result<(i64, String), AuditWriteError> {
        let (done, stored) = oneshot::channel();
        self.tx
            .send(Pending { entry, decisions, subjects, done })
            .await
            .map_err(|_| AuditWriteError("the audit writer has stopped".into()))?;
        stored.await.map_err(|_| AuditWriteError("the audit writer has stopped".into()))?
    }
}

async fn run(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Pending>,
    mut stop: oneshot::Receiver<()>,
    metrics: Option<crate::metrics::Metrics>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    loop {
        tokio::select! {
            biased;
            received = rx.recv_many(&mut batch, MAX_BATCH) => if received == 0 { break },
            _ = &mut stop, if !stopping => {
                // What is queued still gets stored; recv_many then reports the end.
                stopping = true;
                rx.close();
                continue;
            }
        }
        if let Some(m) = &metrics {
            m.audit_commit_records.observe(batch.len() as f64);
            m.audit_waiting.set(rx.len() as i64);
        }
        let entries: Vec<AuditEntry> = batch.iter().map(|p| p.entry.clone()).collect();
        let decisions: Vec<StoredDecision> = batch.iter_mut().flat_map(|p| std::mem::take(&mut p.decisions)).collect();
        let subjects: Vec<(usize, Subject)> = batch
            .iter_mut()
            .enumerate()
            .flat_map(|(i, p)| std::mem::take(&mut p.subjects).into_iter().map(move |s| (i, s)))
            .collect();
        match store.append_audit(&entries, &decisions, &subjects).await {
            Ok(stored) => {
                for (pending, record) in batch.drain(..).zip(stored) {
                    let _ = pending.done.send(Ok(record));
                }
            }
            Err(err) => {
                tracing::error!(error = %crate::ErrorChain(&err), records = entries.len(), "could not store audit records");
                let failure = AuditWriteError(err.to_string());
                for pending in batch.drain(..) {
                    let _ = pending.done.send(Err(failure.clone()));
                }
                // With the database out of reach, what queued during this attempt would only
                // wait as long again to fail: it fails now, and its callers hear it at once.
                if matches!(err, crate::domain::ports::PortError::Unavailable(_)) {
                    while let Ok(pending) = rx.try_recv() {
                        let _ = pending.done.send(Err(failure.clone()));
                    }
                }
            }
        }
    }
}
