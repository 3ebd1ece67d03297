//! The audit trail: one append-only, hash-chained record per RPC, allowed or denied.
//!
//! Each record carries the hash of the one before it, so changing, removing or reordering a
//! stored record breaks the chain at that point; [`verify`] walks the chain and names the
//! first record where it breaks.

pub mod checkpoint;
pub mod merkle;
pub mod trail;
mod verify;
mod writer;

use std::fmt;

use time::OffsetDateTime;

pub use trail::{AuditTree, Consistency, Inclusion};
pub use writer::{AuditLog, AuditWriteError, AuditWriter};

/// The `prev_hash` of the first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What the hub records about one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// When the call arrived, to the microsecond (what both databases store exactly).
    pub at: OffsetDateTime,
    pub request_id: String,
    /// The organisation the certificate names, also when it is not a member.
    pub org_code: Option<String>,
    /// The person the certificate names, for a person's certificate. Part of the record's
    /// bytes from `telesub-audit-v3` on; `None` in earlier records.
    pub person: Option<String>,
    pub cert_fingerprint: Option<String>,
    /// The gRPC path, e.g. `/telesub.v1.Members/WhoAmI`.
    pub method: String,
    /// The gRPC status code name of the outcome, e.g. `OK`, `PERMISSION_DENIED`.
    pub outcome: String,
    /// Why a call was refused; empty otherwise.
    pub detail: String,
    /// Lower-case hex SHA-256 of the request bytes the hub read (the gRPC frames).
    pub request_digest: String,
    /// Lower-case hex SHA-256 of what was stored with the record: the citizens and households
    /// the call looked up and the decisions it gave ([`attached_digest`]). `None` in the
    /// records written before it was kept (`telesub-audit-v1`).
    pub attached: Option<String>,
    /// The call id of the decisions stored for the call, by which they are found again (not
    /// part of the record's bytes: the attached digest covers the decisions themselves).
    pub decisions_call: Option<String>,
}

/// What an audit query can ask about: a value a call looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubjectKind {
    CitizenId,
    HouseholdCode,
}

impl SubjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SubjectKind::CitizenId => "CITIZEN_ID",
            SubjectKind::HouseholdCode => "HOUSEHOLD_CODE",
        }
    }
}

/// A citizen ID or household code a call looked up (asked about, read, or acted on), stored
/// beside the call's record so that an auditor can ask who looked at whom. Not part of the
/// record's hash. Eligibility questions are found through their stored decisions instead.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    pub kind: SubjectKind,
    pub value: String,
}

/// A stored entry with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub seq: i64,
    pub entry: AuditEntry,
    pub prev_hash: String,
    pub hash: String,
}

/// Truncates a time to whole microseconds, the precision both backends keep.
pub fn to_micros(t: OffsetDateTime) -> OffsetDateTime {
    let nanos = t.nanosecond();
    t.replace_nanosecond(nanos - nanos % 1_000).expect("a smaller nanosecond is always valid")
}

/// The canonical bytes of record `seq` holding `entry` after the record whose hash is
/// `prev_hash`: every field preceded by its length as a big-endian 64-bit number, so that no two
/// different records encode alike. The record's chain hash is their SHA-256; its Merkle leaf is
/// the SHA-256 of `0x00` and them (RFC 9162).
///
/// `telesub-audit-v1` records hold the text `telesub-audit-v1`, `prev_hash`, `seq` (big-endian
/// i64), `at` (microseconds since 1970, big-endian i128), request id, caller, fingerprint,
/// method, outcome, detail and request digest; `telesub-audit-v2` records start with
/// `telesub-audit-v2` and add the attached digest at the end; `telesub-audit-v3` records (a
/// call made with a person's certificate) start with `telesub-audit-v3` and add the attached
/// digest (empty when none) and the person's name.
pub fn record_bytes(prev_hash: &str, seq: i64, entry: &AuditEntry) -> Vec<u8> {
    let micros = entry.at.unix_timestamp_nanos() / 1_000;
    let mut out = Vec::with_capacity(256);
    let mut field = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    let version: &[u8] = match (&entry.person, &entry.attached) {
        (Some(_), _) => b"telesub-audit-v3",
        (None, Some(_)) => b"telesub-audit-v2",
        (None, None) => b"telesub-audit-v1",
    };
    field(version);
    field(prev_hash.as_bytes());
    field(&seq.to_be_bytes());
    field(&micros.to_be_bytes());
    field(entry.request_id.as_bytes());
    field(entry.org_code.as_deref().unwrap_or("").as_bytes());
    field(entry.cert_fingerprint.as_deref().unwrap_or("").as_bytes());
    field(entry.method.as_bytes());
    field(entry.outcome.as_bytes());
    field(entry.detail.as_bytes());
    field(entry.request_digest.as_bytes());
    if entry.attached.is_some() || entry.person.is_some() {
        field(entry.attached.as_deref().unwrap_or("").as_bytes());
    }
    if let Some(person) = &entry.person {
        field(person.as_bytes());
    }
    out
}

/// The hash of record `seq` holding `entry`, following the record whose hash is `prev_hash`:
/// the SHA-256 of its [`record_bytes`].
pub fn chain_hash(prev_hash: &str, seq: i64, entry: &AuditEntry) -> String {
    crate::hex(ring::digest::digest(&ring::digest::SHA256, &record_bytes(prev_hash, seq, entry)).as_ref())
}

/// The Merkle leaf of a record.
pub fn leaf_of(record: &AuditRecord) -> merkle::Hash {
    merkle::leaf_hash(&record_bytes(&record.prev_hash, record.seq, &record.entry))
}

/// What a call stored beside its record, as the attached digest covers it.
#[derive(Debug, Default)]
pub struct Attachments<'a> {
    pub subjects: Vec<&'a Subject>,
    pub decisions: Vec<&'a crate::domain::ports::policy::StoredDecision>,
    pub runs: Vec<RunSummary>,
}

/// A stored run of a batch call's decisions, as the attached digest covers it: its place and
/// the SHA-256 of its answers (the run itself may be large).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSummary {
    pub call_id: String,
    pub first_idx: i64,
    pub last_idx: i64,
    pub decisions: i64,
    pub body_digest: String,
}

impl RunSummary {
    pub fn of(run: &crate::domain::ports::policy::DecisionRun) -> Self {
        Self {
            call_id: run.call_id.clone(),
            first_idx: run.first_idx,
            last_idx: run.last_idx,
            decisions: run.decisions,
            // A run whose answers were purged kept their digest.
            body_digest: run.body_digest.clone().unwrap_or_else(|| answers_digest(&run.body)),
        }
    }
}

/// The SHA-256 (hex) of a run's answers as stored: what a call's record holds of them.
pub fn answers_digest(body: &str) -> String {
    crate::hex(ring::digest::digest(&ring::digest::SHA256, body.as_bytes()).as_ref())
}

/// The SHA-256 (hex) of what a call stored beside its record, in a canonical order: the text
/// `telesub-attached-v1`; the number of subjects, then each (kind, value), sorted; the number
/// of single decisions, then each (call id, index, query kind, query value, as of, household
/// code, eligible `1`/`0`, policy version, answer), by call id and index; the number of
/// batch runs, then each (call id, first index, last index, decisions, SHA-256 of the answers
/// in hex), likewise.
/// Every field length-prefixed as in [`record_bytes`]; numbers as decimal text.
pub fn attached_digest(mut a: Attachments<'_>) -> String {
    use crate::domain::household::format_date;
    a.subjects.sort_by(|x, y| (x.kind.as_str(), &x.value).cmp(&(y.kind.as_str(), &y.value)));
    a.subjects.dedup();
    a.decisions.sort_by(|x, y| (&x.call_id, x.idx).cmp(&(&y.call_id, y.idx)));
    a.runs.sort_by(|x, y| (&x.call_id, x.first_idx).cmp(&(&y.call_id, y.first_idx)));
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut field = |bytes: &[u8]| {
        ctx.update(&(bytes.len() as u64).to_be_bytes());
        ctx.update(bytes);
    };
    field(b"telesub-attached-v1");
    field(a.subjects.len().to_string().as_bytes());
    for s in &a.subjects {
        field(s.kind.as_str().as_bytes());
        field(s.value.as_bytes());
    }
    field(a.decisions.len().to_string().as_bytes());
    for d in &a.decisions {
        field(d.call_id.as_bytes());
        field(d.idx.to_string().as_bytes());
        field(d.query_kind.as_bytes());
        field(d.query_value.as_bytes());
        field(format_date(d.as_of).as_bytes());
        field(d.household_code.as_deref().unwrap_or("").as_bytes());
        field(if d.eligible { b"1" } else { b"0" });
        field(d.policy_version.to_string().as_bytes());
        field(d.body.as_bytes());
    }
    field(a.runs.len().to_string().as_bytes());
    for r in &a.runs {
        field(r.call_id.as_bytes());
        field(r.first_idx.to_string().as_bytes());
        field(r.last_idx.to_string().as_bytes());
        field(r.decisions.to_string().as_bytes());
        field(r.body_digest.as_bytes());
    }
    crate::hex(ctx.finish().as_ref())
}

/// Appends records' leaves to the tree's right edge; returns the perfect subtrees that
/// completed at a stored level ([`merkle::stored_level`]), to be stored.
pub fn extend_tree(range: &mut merkle::CompactRange, records: &[AuditRecord]) -> Vec<(u32, u64, String)> {
    let mut nodes = Vec::new();
    for record in records {
        range.push(leaf_of(record), |level, index, hash| {
            if merkle::stored_level(level) {
                nodes.push((level, index, crate::hex(hash)));
            }
        });
    }
    nodes
}

/// [`link`] and [`extend_tree`] at once, each record's bytes built once for both hashes.
pub fn link_into_tree(
    last_seq: i64,
    last_hash: &str,
    entries: &[AuditEntry],
    range: &mut merkle::CompactRange,
) -> (Vec<AuditRecord>, Vec<(u32, u64, String)>) {
    let mut prev = last_hash.to_owned();
    let mut nodes = Vec::new();
    let records = entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let seq = last_seq + 1 + i as i64;
            let bytes = record_bytes(&prev, seq, entry);
            let hash = crate::hex(ring::digest::digest(&ring::digest::SHA256, &bytes).as_ref());
            range.push(merkle::leaf_hash(&bytes), |level, index, h| {
                if merkle::stored_level(level) {
                    nodes.push((level, index, crate::hex(h)));
                }
            });
            AuditRecord { seq, entry: entry.clone(), prev_hash: std::mem::replace(&mut prev, hash.clone()), hash }
        })
        .collect();
    (records, nodes)
}

/// Links entries onto the chain whose last record is (`last_seq`, `last_hash`): the records
/// [`link_into_tree`] gives, without the tree.
pub fn link(last_seq: i64, last_hash: &str, entries: &[AuditEntry]) -> Vec<AuditRecord> {
    link_into_tree(last_seq, last_hash, entries, &mut merkle::CompactRange::default()).0
}

/// Where and how the chain is broken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainBreak {
    /// A record is missing or out of place: `expected` should have come next.
    Gap { expected: i64, found: i64 },
    /// The record does not point at the hash of the record before it.
    PrevHash { seq: i64 },
    /// The record's content does not match its stored hash: it was changed.
    Content { seq: i64 },
    /// The chain's recorded head does not match its last record: records at the end were
    /// removed, or the head was changed.
    Head { head_seq: i64, last_seq: i64 },
    /// What the record's call stored beside it (what it looked up, its decisions) is not what
    /// its attached digest covers: rows were removed, added or changed.
    Attached { seq: i64 },
    /// The stored tree does not match the records (`what` says where).
    Tree { seq: i64, what: String },
    /// A signed checkpoint does not match the records: the history it signed was rewritten, or
    /// records it covered were removed (`what` says which).
    Checkpoint { size: i64, what: String },
    /// The decisions of record `seq`'s call are marked purged, but no purge in the trail may
    /// have purged them (`what` says why).
    Purged { seq: i64, what: String },
}

impl ChainBreak {
    /// The sequence number of the first broken record.
    pub fn seq(&self) -> i64 {
        match *self {
            ChainBreak::Gap { expected, .. } => expected,
            ChainBreak::PrevHash { seq } | ChainBreak::Content { seq } => seq,
            ChainBreak::Head { last_seq, .. } => last_seq + 1,
            ChainBreak::Attached { seq } | ChainBreak::Tree { seq, .. } | ChainBreak::Purged { seq, .. } => seq,
            ChainBreak::Checkpoint { size, .. } => size,
        }
    }
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainBreak::Gap { expected, found } => {
                write!(f, "record {expected} is missing (the next record stored is {found})")
            }
            ChainBreak::PrevHash { seq } => {
                write!(f, "record {seq} does not follow the record before it (its previous hash differs)")
            }
            ChainBreak::Content { seq } => {
                write!(f, "record {seq} was changed after it was written (its hash does not match its content)")
            }
            ChainBreak::Head { head_seq, last_seq } => {
                write!(f, "the chain head says the last record is {head_seq}, but the last record stored is {last_seq}")
            }
            ChainBreak::Attached { seq } => write!(
                f,
                "what record {seq}'s call stored beside it (what it looked up, its decisions) was changed or removed"
            ),
            ChainBreak::Tree { what, .. } => write!(f, "the audit tree does not match the records: {what}"),
            ChainBreak::Checkpoint { size, what } => {
                write!(f, "the checkpoint of {size} records does not hold: {what}")
            }
            ChainBreak::Purged { seq, what } => {
                write!(f, "the decisions of record {seq}'s call are marked purged, but {what}")
            }
        }
    }
}

/// The result of walking the whole chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    pub records: u64,
    pub last_seq: i64,
    pub last_hash: String,
    /// `None` when the chain is intact.
    pub first_break: Option<ChainBreak>,
    /// Checkpoints checked against the records (stored and given).
    pub checkpoints: usize,
    /// The append-only guards missing or disabled (the trail may then have been changed).
    pub guards_missing: Vec<String>,
    /// Records whose calls' decisions were purged under the retention policy: their attached
    /// digest cannot be recomputed; each was checked against the purge that marked them.
    pub purged: u64,
}

impl ChainReport {
    /// Whether everything checked holds, the guards included.
    pub fn intact(&self) -> bool {
        self.first_break.is_none() && self.guards_missing.is_empty()
    }
}

/// Checks records one at a time, in sequence order.
#[derive(Debug)]
pub struct ChainVerifier {
    next_seq: i64,
    prev_hash: String,
    records: u64,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self { next_seq: 1, prev_hash: GENESIS_HASH.to_owned(), records: 0 }
    }
}

impl ChainVerifier {
    pub fn push(&mut self, record: &AuditRecord) -> Result<(), ChainBreak> {
        if record.seq != self.next_seq {
            return Err(ChainBreak::Gap { expected: self.next_seq, found: record.seq });
        }
        if record.prev_hash != self.prev_hash {
            return Err(ChainBreak::PrevHash { seq: record.seq });
        }
        if chain_hash(&record.prev_hash, record.seq, &record.entry) != record.hash {
            return Err(ChainBreak::Content { seq: record.seq });
        }
        self.next_seq += 1;
        self.prev_hash.clone_from(&record.hash);
        self.records += 1;
        Ok(())
    }

    /// Compares the end of the walk with the chain head the store keeps.
    pub fn finish(self, head_seq: i64, head_hash: &str) -> ChainReport {
        let last_seq = self.next_seq - 1;
        let first_break =
            (head_seq != last_seq || head_hash != self.prev_hash).then_some(ChainBreak::Head { head_seq, last_seq });
        ChainReport {
            records: self.records,
            last_seq,
            last_hash: self.prev_hash,
            first_break,
            checkpoints: 0,
            guards_missing: Vec::new(),
            purged: 0,
        }
    }
}

pub use verify::{VerifyOptions, verify, verify_with};

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u32) -> AuditEntry {
        AuditEntry {
            at: to_micros(OffsetDateTime::from_unix_timestamp(1_700_000_000 + i64::from(n)).unwrap()),
            request_id: format!("req-{n}"),
            org_code: Some("DOICT".into()),
            person: None,
            cert_fingerprint: Some("ab".repeat(32)),
            method: "/telesub.v1.Members/WhoAmI".into(),
            outcome: "OK".into(),
            detail: String::new(),
            request_digest: "cd".repeat(32),
            attached: Some("ef".repeat(32)),
            decisions_call: None,
        }
    }

    fn chain(n: u32) -> Vec<AuditRecord> {
        let entries: Vec<_> = (1..=n).map(entry).collect();
        link(0, GENESIS_HASH, &entries)
    }

    fn walk(records: &[AuditRecord]) -> Result<(), ChainBreak> {
        let mut v = ChainVerifier::default();
        records.iter().try_for_each(|r| v.push(r))
    }

    #[test]
    fn an_intact_chain_verifies() {
        let records = chain(5);
        assert_eq!(walk(&records), Ok(()));
        let mut v = ChainVerifier::default();
        records.iter().for_each(|r| v.push(r).unwrap());
        let report = v.finish(5, &records[4].hash);
        assert_eq!(report.first_break, None);
        assert_eq!(report.records, 5);
    }

    #[test]
    fn a_changed_field_is_caught_at_its_record() {
        let mut records = chain(5);
        records[2].entry.outcome = "PERMISSION_DENIED".into();
        assert_eq!(walk(&records), Err(ChainBreak::Content { seq: 3 }));
    }

    #[test]
    fn a_removed_record_is_caught() {
        let mut records = chain(5);
        records.remove(1);
        assert_eq!(walk(&records), Err(ChainBreak::Gap { expected: 2, found: 3 }));
    }

    #[test]
    fn a_rehashed_record_is_caught_by_its_successor() {
        let mut records = chain(5);
        records[1].entry.org_code = Some("VNPT".into());
        records[1].hash = chain_hash(&records[1].prev_hash, 2, &records[1].entry);
        assert_eq!(walk(&records), Err(ChainBreak::PrevHash { seq: 3 }));
    }

    #[test]
    fn a_truncated_tail_is_caught_by_the_head() {
        let records = chain(5);
        let mut v = ChainVerifier::default();
        records[..4].iter().for_each(|r| v.push(r).unwrap());
        let report = v.finish(5, &records[4].hash);
        assert_eq!(report.first_break, Some(ChainBreak::Head { head_seq: 5, last_seq: 4 }));
    }

    #[test]
    fn every_field_is_in_the_hash() {
        let base = entry(1);
        let h = chain_hash(GENESIS_HASH, 1, &base);
        type Change = Box<dyn Fn(&mut AuditEntry)>;
        let variants: Vec<Change> = vec![
            Box::new(|e| e.at += time::Duration::microseconds(1)),
            Box::new(|e| e.request_id.push('x')),
            Box::new(|e| e.org_code = None),
            Box::new(|e| e.cert_fingerprint = None),
            Box::new(|e| e.method.push('x')),
            Box::new(|e| e.outcome.push('x')),
            Box::new(|e| e.detail.push('x')),
            Box::new(|e| e.request_digest.push('x')),
            Box::new(|e| e.attached = Some("00".repeat(32))),
            Box::new(|e| e.attached = None),
            Box::new(|e| e.person = Some("Nguyễn Thị Lan".into())),
        ];
        for change in variants {
            let mut e = base.clone();
            change(&mut e);
            assert_ne!(chain_hash(GENESIS_HASH, 1, &e), h);
        }
        assert_ne!(chain_hash(GENESIS_HASH, 2, &base), h);
    }
}
