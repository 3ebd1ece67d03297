//! Read models: what sits in front of a backend's register port to answer questions faster,
//! itself behind the same port, so that the domain asks its questions one way whatever answers
//! them.
//!
//! [`RegisterReadModel`] answers from the register held in memory ([`held`]) where the backend
//! keeps a change log to follow (SQLite), once its index is ready. Otherwise it reads single
//! questions asked at the same time together: questions that arrive while a read is under way
//! wait for the next one, which looks all of them up in one statement (as the audit trail
//! commits many calls at once). A question asked alone is read at once.
//!
//! The layer's rule: a read model uses the domain's ports and types, nothing of storage or
//! transport.

pub mod held;
pub mod index;

use std::{collections::HashMap, sync::Arc};

use async_trait::async_trait;
use time::Date;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::domain::{
    eligibility::{History, QueryKind},
    ports::{PortError, RegisterChanges, RegisterStore, policy::MatchedState, register::HouseholdVersion},
};
use held::HeldRegister;

/// Questions waiting to be read together.
const LOOKUPS_PER_READ: usize = 256;
/// Reads of the register under way at once for single questions.
const CONCURRENT_READS: usize = 4;

/// The register port as the domain's services read it: from memory where it is held, else
/// from the backend, single questions read together.
#[derive(Debug, Clone)]
pub struct RegisterReadModel {
    inner: Arc<dyn RegisterStore>,
    held: Option<Arc<HeldRegister>>,
    queue: mpsc::Sender<Lookup>,
}

#[derive(Debug)]
struct Lookup {
    kind: QueryKind,
    value: String,
    found: oneshot::Sender<Result<Vec<History>, PortError>>,
}

impl RegisterReadModel {
    /// Starts the read model on the current runtime in front of a backend's register
    /// (`inner`), holding the register in memory when the backend has a change log to follow.
    pub fn start(inner: Arc<dyn RegisterStore>, changes: Option<Arc<dyn RegisterChanges>>) -> Self {
        let (queue, waiting) = mpsc::channel(4 * LOOKUPS_PER_READ);
        tokio::spawn(read_together(inner.clone(), waiting));
        Self { inner, held: changes.map(HeldRegister::start), queue }
    }

    /// Waits until the register held in memory reflects every change committed so far
    /// (building its index if need be); at once where it is not held. For benchmarks and tests
    /// that load a register, then measure or compare.
    pub async fn catch_up(&self) -> Result<(), PortError> {
        match &self.held {
            Some(held) => held.wait_current().await,
            None => Ok(()),
        }
    }

    /// How many households are held in memory, when the register is held and its index ready.
    pub fn held(&self) -> Option<usize> {
        self.held.as_ref().and_then(|h| h.held())
    }

    /// When the register held in memory was last built whole (seconds since 1970).
    pub fn built_at(&self) -> Option<i64> {
        self.held.as_ref().and_then(|h| h.built_at())
    }

    async fn one(&self, kind: QueryKind, value: String) -> Result<Vec<(String, Vec<History>)>, PortError> {
        let (found, answer) = oneshot::channel();
        let gone = || PortError::fault("the register's reader of single questions has stopped");
        self.queue.send(Lookup { kind, value: value.clone(), found }).await.map_err(|_| gone())?;
        let histories = answer.await.map_err(|_| gone())??;
        Ok(if histories.is_empty() { Vec::new() } else { vec![(value, histories)] })
    }
}

/// The same failure for every question of a read that failed.
fn shared(e: &PortError) -> PortError {
    match e {
        PortError::NotFound => PortError::NotFound,
        PortError::AlreadyExists => PortError::AlreadyExists,
        PortError::Conflict(c) => PortError::Conflict(*c),
        PortError::Unavailable(why) => PortError::Unavailable(why.clone()),
        PortError::Corrupt(why) => PortError::Corrupt(why.clone()),
        PortError::Fault(_) => PortError::fault(crate::ErrorChain(e).to_string()),
    }
}

async fn read_together(inner: Arc<dyn RegisterStore>, mut waiting: mpsc::Receiver<Lookup>) {
    let slots = Arc::new(Semaphore::new(CONCURRENT_READS));
    loop {
        // Wait for a free read first: questions arriving meanwhile join the next read.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let mut lookups = Vec::with_capacity(LOOKUPS_PER_READ);
        if waiting.recv_many(&mut lookups, LOOKUPS_PER_READ).await == 0 {
            return;
        }
        let inner = inner.clone();
        tokio::spawn(async move {
            let mut by_kind: HashMap<QueryKind, Vec<Lookup>> = HashMap::new();
            for lookup in lookups {
                by_kind.entry(lookup.kind).or_default().push(lookup);
            }
            for (kind, lookups) in by_kind {
                let mut values: Vec<String> = lookups.iter().map(|l| l.value.clone()).collect();
                values.sort_unstable();
                values.dedup();
                match inner.histories_matching(kind, &values, false).await {
                    Ok(found) => {
                        let found: HashMap<String, Vec<History>> = found.into_iter().collect();
                        for lookup in lookups {
                            let _ = lookup.found.send(Ok(found.get(&lookup.value).cloned().unwrap_or_default()));
                        }
                    }
                    Err(e) => {
                        for lookup in lookups {
                            let _ = lookup.found.send(Err(shared(&e)));
                        }
                    }
                }
            }
            drop(slot);
        });
    }
}

#[async_trait]
impl RegisterStore for RegisterReadModel {
    async fn household_versions(&self, code: &str) -> Result<Vec<HouseholdVersion>, PortError> {
        self.inner.household_versions(code).await
    }

    async fn household_on(&self, code: &str, date: Date) -> Result<Option<HouseholdVersion>, PortError> {
        self.inner.household_on(code, date).await
    }

    async fn find_by_citizen(&self, citizen_id: &str, date: Date) -> Result<Vec<HouseholdVersion>, PortError> {
        self.inner.find_by_citizen(citizen_id, date).await
    }

    async fn find_by_certificate(&self, number: &str, date: Date) -> Result<Vec<HouseholdVersion>, PortError> {
        self.inner.find_by_certificate(number, date).await
    }

    async fn states_matching(
        &self,
        kind: QueryKind,
        values: &[String],
        bulk: bool,
    ) -> Result<Vec<MatchedState>, PortError> {
        self.inner.states_matching(kind, values, bulk).await
    }

    /// From memory where the register is held and its index ready; else a single question
    /// (not a batch's) joins the next grouped read.
    async fn histories_matching(
        &self,
        kind: QueryKind,
        values: &[String],
        bulk: bool,
    ) -> Result<Vec<(String, Vec<History>)>, PortError> {
        if let Some(held) = &self.held
            && let Some(found) = held.find(kind, values).await?
        {
            return Ok(found);
        }
        match values {
            [value] if !bulk => self.one(kind, value.clone()).await,
            _ => self.inner.histories_matching(kind, values, bulk).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A register that answers each value with one history named after it, records the values
    /// of every read, and fails every read when told to.
    #[derive(Debug, Default)]
    struct Recorded {
        reads: Mutex<Vec<Vec<String>>>,
        unavailable: bool,
    }

    #[async_trait]
    impl RegisterStore for Recorded {
        async fn household_versions(&self, _: &str) -> Result<Vec<HouseholdVersion>, PortError> {
            Ok(Vec::new())
        }
        async fn household_on(&self, _: &str, _: Date) -> Result<Option<HouseholdVersion>, PortError> {
            Ok(None)
        }
        async fn find_by_citizen(&self, _: &str, _: Date) -> Result<Vec<HouseholdVersion>, PortError> {
            Ok(Vec::new())
        }
        async fn find_by_certificate(&self, _: &str, _: Date) -> Result<Vec<HouseholdVersion>, PortError> {
            Ok(Vec::new())
        }
        async fn states_matching(&self, _: QueryKind, _: &[String], _: bool) -> Result<Vec<MatchedState>, PortError> {
            Ok(Vec::new())
        }
        async fn histories_matching(
            &self,
            _: QueryKind,
            values: &[String],
            _: bool,
        ) -> Result<Vec<(String, Vec<History>)>, PortError> {
            self.reads.lock().unwrap().push(values.to_vec());
            // Long enough for the other questions to queue behind this read.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            if self.unavailable {
                return Err(PortError::Unavailable("stopped".into()));
            }
            let history = |v: &String| History { code: format!("H-{v}"), states: Vec::new(), enrollments: Vec::new() };
            Ok(values.iter().filter(|v| *v != "none").map(|v| (v.clone(), vec![history(v)])).collect())
        }
    }

    async fn ask_at_once(
        register: &RegisterReadModel,
        n: usize,
    ) -> Vec<Result<Vec<(String, Vec<History>)>, PortError>> {
        let asks = (0..n).map(|i| {
            let register = register.clone();
            let value = if i == 3 { "none".to_owned() } else { format!("v{i}") };
            tokio::spawn(async move { register.histories_matching(QueryKind::CitizenId, &[value], false).await })
        });
        let mut answers = Vec::new();
        for ask in asks.collect::<Vec<_>>() {
            answers.push(ask.await.unwrap());
        }
        answers
    }

    #[tokio::test]
    async fn single_questions_asked_at_once_are_read_together_and_each_gets_its_own_answer() {
        let inner = Arc::new(Recorded::default());
        let register = RegisterReadModel::start(inner.clone(), None);
        let answers = ask_at_once(&register, 40).await;
        for (i, answer) in answers.into_iter().enumerate() {
            let found = answer.unwrap();
            if i == 3 {
                assert!(found.is_empty(), "a value nothing matched finds nothing");
            } else {
                assert_eq!(found.len(), 1);
                assert_eq!(
                    (found[0].0.as_str(), found[0].1[0].code.as_str()),
                    (&*format!("v{i}"), &*format!("H-v{i}"))
                );
            }
        }
        let (values, reads) = {
            let reads = inner.reads.lock().unwrap();
            (reads.iter().map(Vec::len).sum::<usize>(), reads.len())
        };
        assert_eq!(values, 40, "every question read once");
        assert!(reads <= 2 * CONCURRENT_READS, "40 questions in {reads} reads");
        // A batch's questions, and several values at once, go straight through.
        register.histories_matching(QueryKind::CitizenId, &["a".into(), "b".into()], false).await.unwrap();
        register.histories_matching(QueryKind::CitizenId, &["c".into()], true).await.unwrap();
        assert_eq!(inner.reads.lock().unwrap().iter().rev().take(2).map(Vec::len).collect::<Vec<_>>(), [1, 2]);
    }

    #[tokio::test]
    async fn a_read_that_fails_fails_every_question_that_joined_it_the_same_way() {
        let inner = Arc::new(Recorded { unavailable: true, ..Recorded::default() });
        let register = RegisterReadModel::start(inner, None);
        for answer in ask_at_once(&register, 10).await {
            assert!(matches!(answer, Err(PortError::Unavailable(why)) if why == "stopped"));
        }
    }
}
