//! The audit tree's read side: roots, inclusion and consistency proofs from the stored nodes
//! and records, and signing checkpoints.

use std::sync::Arc;

use time::OffsetDateTime;

use super::{
    checkpoint::{Checkpoint, SigningKey, VerifierKey},
    leaf_of,
    merkle::{self, CompactRange, Hash, STRIDE, Span, Subtree},
};
use crate::domain::ports::{PortError, Store, audit::StoredCheckpoint};

/// Proofs and checkpoints over the stored trail.
#[derive(Debug, Clone)]
pub struct AuditTree {
    store: Arc<dyn Store>,
    key: Option<Arc<SigningKey>>,
    origin: String,
}

fn corrupt(what: String) -> PortError {
    PortError::Corrupt(what)
}

fn hash_of(hex: &str, what: &str) -> Result<Hash, PortError> {
    merkle::parse_hash(hex).map_err(|e| corrupt(format!("{what}: {e}")))
}

/// Folds `2^k` adjacent hashes into the root of their perfect subtree.
fn reduce(mut level: Vec<Hash>) -> Hash {
    while level.len() > 1 {
        level = level.chunks(2).map(|pair| merkle::node_hash(&pair[0], &pair[1])).collect();
    }
    level.pop().unwrap_or_else(merkle::empty_root)
}

impl AuditTree {
    pub fn new(store: Arc<dyn Store>, key: Option<Arc<SigningKey>>, origin: &str) -> Self {
        Self { store, key, origin: origin.to_owned() }
    }

    /// The key checkpoints are checked with, when the hub signs them.
    pub fn verifier(&self) -> Option<VerifierKey> {
        self.key.as_ref().map(|k| k.verifier())
    }

    pub fn key(&self) -> Option<&Arc<SigningKey>> {
        self.key.as_ref()
    }

    /// The records in the tree now, and its root.
    pub async fn head(&self) -> Result<(u64, Hash), PortError> {
        let (seq, _, tree) = self.store.audit_edge().await?;
        match tree {
            Some(tree) => {
                let range = CompactRange::decode(&tree).map_err(|e| corrupt(format!("the audit tree's edge: {e}")))?;
                if range.size() != seq as u64 {
                    return Err(corrupt(format!(
                        "the audit tree's edge covers {} records, the chain head {seq}",
                        range.size()
                    )));
                }
                Ok((range.size(), range.root()))
            }
            None if seq == 0 => Ok((0, merkle::empty_root())),
            None => Err(corrupt("the audit tree has not been built yet".into())),
        }
    }

    /// The hashes of spans, from the stored nodes and records they need, read at once: one
    /// read of nodes, and one of records per run of adjacent sixteen-record blocks.
    async fn spans(&self, spans: &[Span]) -> Result<Vec<Hash>, PortError> {
        use std::collections::{BTreeSet, HashMap};
        let parts: Vec<Vec<Subtree>> = spans.iter().map(|s| s.subtrees()).collect();
        // What each subtree is made of: (level of the parts, first part, number of parts).
        let made_of = |s: &Subtree| -> (u32, u64, u64) {
            if merkle::stored_level(s.level) {
                return (s.level, s.index, 1);
            }
            let base = s.level - s.level % STRIDE;
            let count = 1u64 << (s.level - base);
            (base, s.index * count, count)
        };
        let mut node_ranges = Vec::new();
        let mut blocks = BTreeSet::new();
        for s in parts.iter().flatten() {
            match made_of(s) {
                (0, first, count) => blocks.extend((first >> STRIDE)..=((first + count - 1) >> STRIDE)),
                (level, first, count) => node_ranges.push((level, first, first + count)),
            }
        }
        let mut known: HashMap<(u32, u64), Hash> = HashMap::new();
        for (level, idx, hex) in self.store.audit_node_ranges(&node_ranges).await? {
            known.insert((level as u32, idx as u64), hash_of(&hex, "an audit tree node")?);
        }
        // Records, a run of adjacent blocks at a time.
        let blocks: Vec<u64> = blocks.into_iter().collect();
        for run in blocks.chunk_by(|a, b| b == &(a + 1)) {
            let first = run[0] << STRIDE;
            let count = (run.len() as u64) << STRIDE;
            for record in self.store.audit_records(first as i64, count as u32).await? {
                known.insert((0, record.seq as u64 - 1), leaf_of(&record));
            }
        }
        let mut out = Vec::with_capacity(spans.len());
        for subtrees in &parts {
            let mut hashes = Vec::with_capacity(subtrees.len());
            for s in subtrees {
                let (level, first, count) = made_of(s);
                let found: Option<Vec<Hash>> =
                    (first..first + count).map(|i| known.get(&(level, i)).copied()).collect();
                let Some(found) = found else {
                    return Err(corrupt(if level == 0 {
                        format!("audit records {} to {} are not all stored", first + 1, first + count)
                    } else {
                        format!("the audit tree lacks nodes of level {level} from {first}")
                    }));
                };
                hashes.push(reduce(found));
            }
            out.push(merkle::combine(&hashes));
        }
        Ok(out)
    }

    /// The root of the tree of the first `size` records.
    pub async fn root(&self, size: u64) -> Result<Hash, PortError> {
        Ok(self.spans(&[Span { lo: 0, hi: size }]).await?.remove(0))
    }

    /// The inclusion proof of record `seq` in the tree of `size` records.
    pub async fn inclusion_proof(&self, seq: i64, size: u64) -> Result<Vec<Hash>, PortError> {
        self.spans(&merkle::inclusion_spans(seq as u64 - 1, size)).await
    }

    /// The consistency proof from the tree of `old` records to the tree of `new`.
    pub async fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, PortError> {
        self.spans(&merkle::consistency_spans(old, new)).await
    }

    /// Signs a checkpoint of the tree as it is now, unless the latest checkpoint is of the same
    /// size; returns the checkpoint stored (by this hub or, at the same size, another).
    pub async fn sign_checkpoint(&self) -> Result<Option<StoredCheckpoint>, PortError> {
        let Some(key) = &self.key else { return Ok(None) };
        let (size, root) = self.head().await?;
        if let Some(latest) = self.store.checkpoint(None).await?
            && latest.tree_size as u64 >= size
        {
            return Ok(Some(latest));
        }
        let checkpoint = Checkpoint { origin: self.origin.clone(), size, root, time: OffsetDateTime::now_utc() };
        let row = StoredCheckpoint {
            tree_size: size as i64,
            root_hash: crate::hex(&root),
            signed_at: crate::audit::to_micros(checkpoint.time),
            key_id: key.verifier().key_id_hex(),
            note: key.sign_checkpoint(&checkpoint),
        };
        if self.store.insert_checkpoint(&row).await? {
            tracing::debug!(size, "audit checkpoint signed");
            return Ok(Some(row));
        }
        let stored = self.store.checkpoint(Some(size as i64)).await?;
        if stored.is_none() {
            tracing::error!(
                size,
                "the audit trail holds fewer records than when its root was read: no checkpoint stored \
                 (run `telesub audit verify`)"
            );
        }
        Ok(stored)
    }
}

/// A record with its proof of inclusion in a checkpoint's tree.
#[derive(Debug, Clone)]
pub struct Inclusion {
    pub record: super::AuditRecord,
    pub leaf: Hash,
    pub proof: Vec<Hash>,
    pub checkpoint: StoredCheckpoint,
}

/// A proof that an earlier tree is a prefix of a checkpoint's.
#[derive(Debug, Clone)]
pub struct Consistency {
    pub old_size: u64,
    pub old_root: Hash,
    pub proof: Vec<Hash>,
    pub checkpoint: StoredCheckpoint,
}

impl AuditTree {
    /// A stored checkpoint: of `size`, or the latest (`0`).
    pub async fn checkpoint(&self, size: i64) -> Result<StoredCheckpoint, crate::domain::DomainError> {
        use crate::domain::DomainError;
        if size < 0 {
            return Err(DomainError::invalid("tree_size", format!("{size} is not a tree size")));
        }
        let found = self.store.checkpoint((size > 0).then_some(size)).await?;
        found.ok_or_else(|| {
            DomainError::NotFound(if size == 0 {
                "no audit checkpoint has been signed yet; the first follows the first calls".to_owned()
            } else {
                format!("no audit checkpoint was signed at tree size {size}")
            })
        })
    }

    /// Signed checkpoints of trees larger than `after`, smallest first: a page of at most
    /// `page_size` (0: 100; at most 1,000), and the `after` of the next page (0: none).
    pub async fn list_checkpoints(
        &self,
        after: i64,
        page_size: u32,
    ) -> Result<(Vec<StoredCheckpoint>, i64), crate::domain::DomainError> {
        use crate::domain::{
            DomainError,
            paging::{DEFAULT_PAGE, MAX_PAGE},
        };
        if after < 0 {
            return Err(DomainError::invalid("after_size", format!("{after} is not a tree size")));
        }
        let limit = match page_size {
            0 => DEFAULT_PAGE,
            1..=MAX_PAGE => page_size,
            _ => return Err(DomainError::invalid("page_size", format!("is {page_size}; at most {MAX_PAGE}"))),
        };
        let page = self.store.checkpoints_after(after, limit).await?;
        let next = if page.len() == limit as usize { page.last().map_or(0, |c| c.tree_size) } else { 0 };
        Ok((page, next))
    }

    /// The proof that record `seq` (an export's last) is in a signed checkpoint: the latest, or
    /// one signed now when the latest does not reach it.
    pub async fn export_proof(&self, seq: i64) -> Result<telesub_proto::audit::ExportProof, PortError> {
        let covering = match self.store.checkpoint(None).await? {
            Some(latest) if latest.tree_size >= seq => Some(latest),
            _ => self.sign_checkpoint().await?,
        };
        let checkpoint = covering
            .filter(|c| c.tree_size >= seq)
            .ok_or_else(|| corrupt(format!("no checkpoint covers audit record {seq}")))?;
        let proof = self.inclusion_proof(seq, checkpoint.tree_size as u64).await?;
        Ok(telesub_proto::audit::ExportProof { proof, checkpoint: checkpoint.note })
    }

    /// Record `seq` with its inclusion proof in the tree of checkpoint `size` (0: the latest).
    /// A member other than ICT reads only the records of its own calls.
    pub async fn inclusion(
        &self,
        seq: i64,
        size: i64,
        caller: &crate::domain::member::Caller,
    ) -> Result<Inclusion, crate::domain::DomainError> {
        use crate::domain::{DomainError, member::Role};
        let checkpoint = self.checkpoint(size).await?;
        if seq < 1 || seq > checkpoint.tree_size {
            return Err(DomainError::invalid(
                "seq",
                format!("record {seq} is not in the tree of {} records", checkpoint.tree_size),
            ));
        }
        let record = self
            .store
            .audit_records(seq - 1, 1)
            .await?
            .into_iter()
            .find(|r| r.seq == seq)
            .ok_or_else(|| DomainError::NotFound(format!("audit record {seq} is not stored")))?;
        let own = record.entry.org_code.as_deref() == Some(caller.member.code.as_str());
        if caller.member.role != Role::Ict && !own {
            return Err(DomainError::PermissionDenied(format!(
                "audit record {seq} is not of a call by {}: a member reads the proofs of its own calls",
                caller.member.code
            )));
        }
        let proof = self.inclusion_proof(seq, checkpoint.tree_size as u64).await?;
        Ok(Inclusion { leaf: leaf_of(&record), record, proof, checkpoint })
    }

    /// The consistency proof from the tree of `old` records to checkpoint `new` (0: latest).
    pub async fn consistency(&self, old: i64, new: i64) -> Result<Consistency, crate::domain::DomainError> {
        use crate::domain::DomainError;
        let checkpoint = self.checkpoint(new).await?;
        if old < 1 || old > checkpoint.tree_size {
            return Err(DomainError::invalid(
                "old_size",
                format!("{old} is not a tree size from 1 to {}", checkpoint.tree_size),
            ));
        }
        let (old_size, new_size) = (old as u64, checkpoint.tree_size as u64);
        let proof = self.consistency_proof(old_size, new_size).await?;
        let old_root = self.root(old_size).await?;
        Ok(Consistency { old_size, old_root, proof, checkpoint })
    }
}
