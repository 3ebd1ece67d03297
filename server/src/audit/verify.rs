//! Checks the whole trail from its stored rows: the hash chain, what each call stored beside
//! its record, the Merkle tree the hub keeps, the signed checkpoints (stored, and any a party
//! kept), and the append-only guards.

use std::collections::{BTreeMap, HashMap, VecDeque};

use super::{
    Attachments, AuditRecord, ChainBreak, ChainReport, ChainVerifier, RunSummary, Subject, SubjectKind,
    attached_digest,
    checkpoint::VerifierKey,
    leaf_of,
    merkle::{self, CompactRange},
};
use crate::domain::{
    ports::{PortError, Store},
    retention::PURGE_METHOD,
};

/// Records read at a time.
const PAGE: u32 = 2_000;

/// The least age of a decision a purge may blank, from its ticket's time (the dry run's
/// arrival): the 365 days the policy and the database's guard ask, less a day's slack.
const PURGE_FLOOR: time::Duration = time::Duration::days(364);

/// A record whose call's decisions are marked purged, checked once the trail is read.
struct PurgedCall {
    seq: i64,
    purged_by: String,
    decided_at: time::OffsetDateTime,
}

/// What to check besides the stored rows.
#[derive(Debug, Default, Clone)]
pub struct VerifyOptions {
    /// The key checkpoints are signed with; without it, only their roots are checked.
    pub key: Option<VerifierKey>,
    /// Checkpoints a party kept (signed notes), each checked against the records.
    pub kept: Vec<String>,
}

/// Walks the stored trail from its first record and reports the first break, if any.
pub async fn verify(store: &dyn Store) -> Result<ChainReport, PortError> {
    verify_with(store, &VerifyOptions::default()).await
}

/// A checkpoint to check: its size, root, and where it comes from.
struct Expected {
    size: u64,
    root: merkle::Hash,
    from: String,
}

/// The checkpoints to hold the records to: the stored ones, read a page at a time as the
/// records reach them (a hub signs one every few seconds of activity: years of them are not
/// held in memory), each signature checked as it is read; and the kept ones given.
struct Checkpoints<'a> {
    store: &'a dyn Store,
    key: Option<&'a VerifierKey>,
    /// Stored checkpoints read and not yet reached by the records, smallest first.
    stored: VecDeque<Expected>,
    /// The largest size read.
    after: i64,
    exhausted: bool,
    kept: VecDeque<Expected>,
    count: usize,
}

/// Stored checkpoints read at a time.
const CHECKPOINT_PAGE: u32 = 1_000;

impl Checkpoints<'_> {
    /// Reads the stored checkpoints up to the first beyond `size`, or to the last.
    async fn read_through(&mut self, size: u64, first_break: &mut Option<ChainBreak>) -> Result<(), PortError> {
        while !self.exhausted && self.stored.back().is_none_or(|e| e.size <= size) {
            let page = self.store.checkpoints_after(self.after, CHECKPOINT_PAGE).await?;
            self.exhausted = page.len() < CHECKPOINT_PAGE as usize;
            for row in page {
                self.after = row.tree_size;
                self.count += 1;
                if let Some(key) = self.key {
                    match key.open(&row.note) {
                        Ok(c) if c.size == row.tree_size as u64 && crate::hex(&c.root) == row.root_hash => {}
                        Ok(_) => {
                            first_break.get_or_insert(ChainBreak::Checkpoint {
                                size: row.tree_size,
                                what: "its signed note says another size or root than the row beside it".into(),
                            });
                        }
                        Err(e) => {
                            first_break.get_or_insert(ChainBreak::Checkpoint { size: row.tree_size, what: e });
                        }
                    }
                }
                match merkle::parse_hash(&row.root_hash) {
                    Ok(root) => self.stored.push_back(Expected {
                        size: row.tree_size as u64,
                        root,
                        from: format!("the stored checkpoint of {} records", row.tree_size),
                    }),
                    Err(e) => {
                        first_break.get_or_insert(ChainBreak::Checkpoint { size: row.tree_size, what: e });
                    }
                }
            }
        }
        Ok(())
    }

    /// Holds the tree of the records so far to the checkpoints of its size.
    fn check(&mut self, range: &CompactRange, first_break: &mut Option<ChainBreak>) {
        for queue in [&mut self.stored, &mut self.kept] {
            while let Some(e) = queue.front()
                && e.size <= range.size()
            {
                let e = queue.pop_front().expect("a front");
                if e.size == range.size() && e.root != range.root() {
                    first_break.get_or_insert(ChainBreak::Checkpoint {
                        size: e.size as i64,
                        what: format!(
                            "{} signed another history: a record up to {} was changed, removed or put in",
                            e.from, e.size
                        ),
                    });
                }
            }
        }
    }
}

/// [`verify`], checking the stored checkpoints' signatures with `options.key` and the kept
/// checkpoints too.
pub async fn verify_with(store: &dyn Store, options: &VerifyOptions) -> Result<ChainReport, PortError> {
    let guards_missing = store.missing_guards().await?;
    let mut first_break = None;
    let mut kept = Vec::new();
    for (n, note) in options.kept.iter().enumerate() {
        let Some(key) = &options.key else {
            return Err(PortError::Corrupt("a kept checkpoint is checked with the hub's verifier key".into()));
        };
        let c = key.open(note).map_err(|e| PortError::Corrupt(format!("kept checkpoint {}: {e}", n + 1)))?;
        kept.push(Expected { size: c.size, root: c.root, from: format!("the kept checkpoint of {} records", c.size) });
    }
    kept.sort_by_key(|e| e.size);
    let mut checkpoints = Checkpoints {
        store,
        key: options.key.as_ref(),
        stored: VecDeque::new(),
        after: -1,
        exhausted: false,
        count: kept.len(),
        kept: kept.into(),
    };

    let mut verifier = ChainVerifier::default();
    let mut range = CompactRange::default();
    let mut nodes: BTreeMap<(u32, u64), String> = BTreeMap::new();
    // Purge calls that succeeded, by request id: their record's number and time.
    let mut purges: HashMap<String, (i64, time::OffsetDateTime)> = HashMap::new();
    let mut purged_calls = Vec::new();
    checkpoints.read_through(0, &mut first_break).await?;
    checkpoints.check(&range, &mut first_break);
    let mut after = 0;
    'pages: loop {
        let page = store.audit_records(after, PAGE).await?;
        if let Some(last) = page.last() {
            checkpoints.read_through(last.seq as u64, &mut first_break).await?;
        }
        for record in &page {
            if let Err(brk) = verifier.push(record) {
                first_break = Some(first_break.map_or(brk.clone(), |b| earlier(b, brk)));
                break 'pages;
            }
            range.push(leaf_of(record), |level, index, hash| {
                if merkle::stored_level(level) {
                    nodes.insert((level, index), crate::hex(hash));
                }
            });
            checkpoints.check(&range, &mut first_break);
            if record.entry.method == PURGE_METHOD && record.entry.outcome == "OK" {
                purges.insert(record.entry.request_id.clone(), (record.seq, record.entry.at));
            }
        }
        if let Some(seq) = attachments_break(store, &page, &mut purged_calls).await? {
            first_break =
                Some(first_break.map_or(ChainBreak::Attached { seq }, |b| earlier(b, ChainBreak::Attached { seq })));
        }
        match page.last() {
            Some(last) if page.len() == PAGE as usize => after = last.seq,
            _ => break,
        }
    }
    // A decision marked with a ticket that is no purge call of the trail, that was given
    // before the decision, or when the decision was not a year old: rows blanked without the
    // policy.
    for call in &purged_calls {
        let why = match purges.get(&call.purged_by) {
            None => Some(format!("their ticket {} names no purge call of the trail that succeeded", call.purged_by)),
            Some((seq, _)) if *seq <= call.seq => {
                Some(format!("their ticket {} was given before the decisions", call.purged_by))
            }
            Some((_, at)) if call.decided_at > *at - PURGE_FLOOR => {
                Some(format!("they were not a year old when ticket {} was given", call.purged_by))
            }
            Some(_) => None,
        };
        if let Some(what) = why {
            let brk = ChainBreak::Purged { seq: call.seq, what };
            first_break = Some(first_break.map_or(brk.clone(), |b| earlier(b, brk)));
            break;
        }
    }
    checkpoints.read_through(u64::MAX, &mut first_break).await?;
    let checkpoint_count = checkpoints.count;
    for e in checkpoints.stored.into_iter().chain(checkpoints.kept) {
        first_break.get_or_insert(ChainBreak::Checkpoint {
            size: e.size as i64,
            what: format!("{} covers records the trail no longer holds ({} are stored)", e.from, range.size()),
        });
    }
    let (head_seq, head_hash, tree) = store.audit_edge().await?;
    let mut report = ChainReport {
        records: verifier.records,
        last_seq: verifier.next_seq - 1,
        last_hash: verifier.prev_hash.clone(),
        first_break: None,
        checkpoints: checkpoint_count,
        guards_missing,
        purged: purged_calls.len() as u64,
    };
    if first_break.is_none() {
        let ended = verifier.finish(head_seq, &head_hash);
        first_break = ended.first_break;
    }
    if first_break.is_none()
        && let Some(tree) = tree
        && tree != range.encode()
    {
        first_break = Some(ChainBreak::Tree {
            seq: report.last_seq,
            what: "the tree's edge kept with the chain head is not the records' (it was set back or rewritten)".into(),
        });
    }
    if first_break.is_none() {
        first_break = nodes_break(store, &nodes).await?;
    }
    report.first_break = first_break;
    Ok(report)
}

/// The earlier of two breaks, by the record they name.
fn earlier(a: ChainBreak, b: ChainBreak) -> ChainBreak {
    if b.seq() < a.seq() { b } else { a }
}

/// Compares the stored nodes with the ones the records give.
async fn nodes_break(
    store: &dyn Store,
    computed: &BTreeMap<(u32, u64), String>,
) -> Result<Option<ChainBreak>, PortError> {
    let mut stored = 0usize;
    let mut after = (0u32, 0u64);
    loop {
        let page = store.audit_nodes_all(after, 10_000).await?;
        for (level, index, hash) in &page {
            let key = (*level as u32, *index as u64);
            stored += 1;
            if computed.get(&key) != Some(hash) {
                return Ok(Some(ChainBreak::Tree {
                    seq: (key.1 << key.0) as i64 + 1,
                    what: format!("its stored node {} of level {} is not the records'", key.1, key.0),
                }));
            }
            after = key;
        }
        if page.len() < 10_000 {
            break;
        }
    }
    if stored != computed.len() {
        // Every stored node matched: some the records give are missing.
        let missing = computed.keys().next().copied().unwrap_or((0, 0));
        return Ok(Some(ChainBreak::Tree {
            seq: (missing.1 << missing.0) as i64 + 1,
            what: format!("{stored} nodes are stored, the records give {}", computed.len()),
        }));
    }
    Ok(None)
}

/// The first record of a page whose attached digest does not match the rows stored beside it.
/// A record whose decisions were purged is noted in `purged` instead, to be held to its purge.
async fn attachments_break(
    store: &dyn Store,
    page: &[AuditRecord],
    purged: &mut Vec<PurgedCall>,
) -> Result<Option<i64>, PortError> {
    let (Some(first), Some(last)) = (page.first(), page.last()) else { return Ok(None) };
    let mut subjects: HashMap<i64, Vec<Subject>> = HashMap::new();
    for row in store.audit_subjects_between(first.seq - 1, last.seq).await? {
        let kind = match row.kind.as_str() {
            "CITIZEN_ID" => SubjectKind::CitizenId,
            "HOUSEHOLD_CODE" => SubjectKind::HouseholdCode,
            other => return Err(PortError::Corrupt(format!("audit subject kind {other:?}"))),
        };
        subjects.entry(row.seq).or_default().push(Subject { kind, value: row.value });
    }
    let calls: Vec<&str> = page.iter().filter_map(|r| r.entry.decisions_call.as_deref()).collect();
    let mut decisions: HashMap<String, Vec<crate::domain::ports::policy::StoredDecision>> = HashMap::new();
    if let (Some(lo), Some(hi)) = (calls.iter().min(), calls.iter().max()) {
        for row in store.decisions_between(lo, hi).await? {
            decisions.entry(row.call_id.clone()).or_default().push(row);
        }
    }
    for record in page {
        let Some(expected) = &record.entry.attached else { continue };
        let call = record.entry.decisions_call.as_deref();
        let single: Vec<&crate::domain::ports::policy::StoredDecision> =
            call.and_then(|c| decisions.get(c)).map(|rows| rows.iter().collect()).unwrap_or_default();
        if let Some(d) = single.iter().find(|d| d.purged_by.is_some()) {
            // The value asked and the answer are gone: what is left is held to the purge.
            purged.push(PurgedCall {
                seq: record.seq,
                purged_by: d.purged_by.clone().unwrap_or_default(),
                decided_at: single.iter().map(|d| d.decided_at).max().unwrap_or(d.decided_at),
            });
            continue;
        }
        let mut runs = Vec::new();
        if let Some(call) = call
            && single.is_empty()
        {
            let mut after = -1;
            loop {
                let found = store.runs_of(call, after, 64).await?;
                let Some(last) = found.last() else { break };
                after = last.first_idx;
                runs.extend(found.iter().map(RunSummary::of));
            }
        }
        let empty = Vec::new();
        let digest = attached_digest(Attachments {
            subjects: subjects.get(&record.seq).unwrap_or(&empty).iter().collect(),
            decisions: single,
            runs,
        });
        if &digest != expected {
            return Ok(Some(record.seq));
        }
    }
    Ok(None)
}
