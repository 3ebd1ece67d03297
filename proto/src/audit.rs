//! Checking the hub's audit trail without the hub's help: RFC 9162 (Certificate Transparency
//! 2.0) inclusion and consistency proofs, the hub's signed checkpoints and receipts (C2SP
//! signed notes, <https://c2sp.org/signed-note>, <https://c2sp.org/tlog-checkpoint>), and the
//! canonical bytes of an audit record, the tree's leaves.
//!
//! A checkpoint's text is the log's origin, the tree size, the base64 root hash and `time
//! <RFC 3339>`; a receipt's is the origin, `receipt <record number>`, `record <record hash>`,
//! `request <request digest>`, `method <gRPC path>` and `time <RFC 3339>`. Each is followed by
//! a blank line and `— <key name> <base64 of the 4-byte key id and the 64-byte Ed25519
//! signature>`, the signature covering the text with its final newline. A verifier key is
//! written `<name>+<key id, 8 hex digits>+<base64 of 0x01 and the 32-byte public key>`.

use std::fmt;

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use ring::signature::{ED25519, UnparsedPublicKey};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use crate::v1 as proto;

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// The columns of an audit export (`ExportAudit`), in order: what the hub writes and what a
/// client that reads or prints records names them.
pub const EXPORT_COLUMNS: [&str; 13] = [
    "seq",
    "at",
    "request_id",
    "caller",
    "cert_fingerprint",
    "method",
    "outcome",
    "detail",
    "request_digest",
    "attached",
    "prev_hash",
    "hash",
    "person",
];

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        ctx.update(part);
    }
    ctx.finish().as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// `SHA-256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    sha256(&[&[0x00], leaf])
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[0x01], left, right])
}

/// The root of the empty tree: `SHA-256()` of nothing.
pub fn empty_root() -> Hash {
    sha256(&[])
}

/// A hash from lower-case hex.
pub fn parse_hash(s: &str) -> Result<Hash, String> {
    if s.len() != 64 {
        return Err(format!("{s:?} is not 64 hex digits"));
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).map_err(|_| format!("{s:?} is not hex"))?;
    }
    Ok(out)
}

/// Why a proof does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProofError(pub String);

impl fmt::Display for ProofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks that `leaf` (its hash) is leaf `index` of the tree of `size` leaves whose root is
/// `root` (RFC 9162 2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> Result<(), ProofError> {
    if index >= size {
        return Err(ProofError(format!("leaf {index} is not in a tree of {size} leaves")));
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return Err(ProofError("the proof is longer than the tree is deep".into()));
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError("the proof is shorter than the tree is deep".into()));
    }
    if &r != root {
        return Err(ProofError("the proof leads to another root".into()));
    }
    Ok(())
}

/// Checks that the tree of `size1` leaves with root `root1` is a prefix of the tree of
/// `size2` leaves with root `root2` (RFC 9162 2.1.4.2).
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> Result<(), ProofError> {
    if size1 > size2 {
        return Err(ProofError(format!("a tree of {size1} leaves cannot grow into one of {size2}")));
    }
    if size1 == size2 {
        return if proof.is_empty() && root1 == root2 {
            Ok(())
        } else {
            Err(ProofError("two trees of the same size have different roots".into()))
        };
    }
    if size1 == 0 {
        return if proof.is_empty() { Ok(()) } else { Err(ProofError("a proof from the empty tree is empty".into())) };
    }
    let mut path: Vec<Hash> = proof.to_vec();
    if size1.is_power_of_two() {
        path.insert(0, *root1);
    }
    let Some((first, rest)) = path.split_first() else {
        return Err(ProofError("the proof is empty".into()));
    };
    let (mut f_n, mut s_n) = (size1 - 1, size2 - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s_n == 0 {
            return Err(ProofError("the proof is longer than the tree is deep".into()));
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(ProofError("the proof is shorter than the tree is deep".into()));
    }
    if &fr != root1 {
        return Err(ProofError(format!("the proof does not lead to the root of the tree of {size1} leaves")));
    }
    if &sr != root2 {
        return Err(ProofError(format!("the proof does not lead to the root of the tree of {size2} leaves")));
    }
    Ok(())
}

/// A public key checkpoints are checked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifierKey {
    pub name: String,
    pub public: [u8; 32],
}

/// A key's id: the first four bytes of SHA-256 of its name, a newline, `0x01` (Ed25519) and
/// the public key.
pub fn key_id(name: &str, public: &[u8]) -> [u8; 4] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(name.as_bytes());
    ctx.update(b"\n\x01");
    ctx.update(public);
    ctx.finish().as_ref()[..4].try_into().expect("4 bytes")
}

impl VerifierKey {
    pub fn key_id(&self) -> [u8; 4] {
        key_id(&self.name, &self.public)
    }

    pub fn key_id_hex(&self) -> String {
        hex(&self.key_id())
    }

    /// `<name>+<key id>+<base64 of 0x01 and the public key>`.
    pub fn to_text(&self) -> String {
        let mut raw = vec![0x01];
        raw.extend_from_slice(&self.public);
        format!("{}+{}+{}", self.name, self.key_id_hex(), B64.encode(raw))
    }

    /// A key given as its text, or as the name of a file holding it.
    pub fn read(text_or_file: &str) -> Result<Self, String> {
        match std::fs::read_to_string(text_or_file) {
            Ok(text) => Self::parse(&text).map_err(|e| format!("{text_or_file}: {e}")),
            Err(_) => Self::parse(text_or_file),
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        // The name has no '+'; the key's base64 may.
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(raw)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("{text:?} is not a verifier key (name+id+key)"));
        };
        let raw = B64.decode(raw).map_err(|e| format!("the verifier key's key is not base64: {e}"))?;
        let public: [u8; 32] = match raw.as_slice() {
            [0x01, rest @ ..] => rest.try_into().map_err(|_| "an Ed25519 key is 32 bytes".to_owned())?,
            _ => return Err("the verifier key is not an Ed25519 key".into()),
        };
        let key = Self { name: name.to_owned(), public };
        if key.key_id_hex() != id.to_ascii_lowercase() {
            return Err(format!("the verifier key's id {id} does not match its key"));
        }
        Ok(key)
    }

    /// Checks a signature made with the matching signing key.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), String> {
        UnparsedPublicKey::new(&ED25519, &self.public)
            .verify(message, signature)
            .map_err(|_| "the signature does not match".to_owned())
    }

    /// The text of a signed note (its final newline included), once a signature line by
    /// this key checks out.
    pub fn open_note(&self, note: &str) -> Result<String, String> {
        let Some((body, signatures)) = note.split_once("\n\n") else {
            return Err("a signed note has its text, a blank line, then signature lines".into());
        };
        let body = format!("{body}\n");
        let mut verified = false;
        for line in signatures.lines() {
            let Some(rest) = line.strip_prefix("\u{2014} ") else {
                return Err(format!("{line:?} is not a signature line"));
            };
            let Some((name, sig)) = rest.rsplit_once(' ') else { continue };
            if name != self.name {
                continue;
            }
            let sig = B64.decode(sig).map_err(|e| format!("a signature is not base64: {e}"))?;
            if sig.len() != 68 || sig[..4] != self.key_id() {
                continue;
            }
            self.verify(body.as_bytes(), &sig[4..])
                .map_err(|_| format!("the signature by {} does not match the text", self.name))?;
            verified = true;
        }
        if !verified {
            return Err(format!("not signed by {} ({})", self.name, self.key_id_hex()));
        }
        Ok(body)
    }

    /// Reads a signed checkpoint, checking its signature by this key.
    pub fn open(&self, note: &str) -> Result<Checkpoint, String> {
        let body = self.open_note(note).map_err(|e| format!("the checkpoint: {e}"))?;
        Checkpoint::parse_body(&body)
    }

    /// Reads a signed receipt, checking its signature by this key.
    pub fn open_receipt(&self, note: &str) -> Result<Receipt, String> {
        let body = self.open_note(note).map_err(|e| format!("the receipt: {e}"))?;
        Receipt::parse_body(&body)
    }
}

/// A tree size and root at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
    pub time: OffsetDateTime,
}

impl Checkpoint {
    /// The signed text.
    pub fn body(&self) -> String {
        let time = self.time.to_offset(time::UtcOffset::UTC).replace_nanosecond(0).unwrap_or(self.time);
        format!(
            "{}\n{}\n{}\ntime {}\n",
            self.origin,
            self.size,
            B64.encode(self.root),
            time.format(&Rfc3339).expect("a time formats")
        )
    }

    /// Reads the text of a checkpoint (the part its signature covers).
    pub fn parse_body(body: &str) -> Result<Self, String> {
        let lines: Vec<&str> = body.lines().collect();
        let [origin, size, root, rest @ ..] = lines.as_slice() else {
            return Err("a checkpoint has an origin, a size and a root hash".into());
        };
        let size = size.parse().map_err(|_| format!("{size:?} is not a tree size"))?;
        let root: Hash = B64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| format!("{root:?} is not a base64 SHA-256 hash"))?;
        let time = rest.iter().find_map(|l| l.strip_prefix("time ")).ok_or("the checkpoint has no time line")?;
        let time = OffsetDateTime::parse(time, &Rfc3339).map_err(|e| format!("{time:?} is not a time: {e}"))?;
        Ok(Self { origin: (*origin).to_owned(), size, root, time })
    }
}

/// The hub's signed promise that a call's record is in its trail: what a write answer carries
/// (gRPC trailer [`RECEIPT_TRAILER`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub origin: String,
    /// The record's number: leaf `seq - 1` of the tree.
    pub seq: i64,
    /// The record's chain hash: SHA-256 of its canonical bytes, lower-case hex.
    pub record_hash: String,
    /// SHA-256 of the request as the hub read it, lower-case hex.
    pub request_digest: String,
    pub method: String,
    pub time: OffsetDateTime,
}

/// The binary trailer a write answer's receipt comes in (the signed note's UTF-8 bytes).
pub const RECEIPT_TRAILER: &str = "telesub-receipt-bin";

/// The signed receipt a write answer carries, if any.
pub fn receipt_in(metadata: &tonic::metadata::MetadataMap) -> Option<String> {
    let value = metadata.get_bin(RECEIPT_TRAILER)?;
    let bytes = value.to_bytes().ok()?;
    String::from_utf8(bytes.to_vec()).ok()
}

impl Receipt {
    /// The signed text.
    pub fn body(&self) -> String {
        format!(
            "{}\nreceipt {}\nrecord {}\nrequest {}\nmethod {}\ntime {}\n",
            self.origin,
            self.seq,
            self.record_hash,
            self.request_digest,
            self.method,
            self.time.to_offset(time::UtcOffset::UTC).format(&Rfc3339).expect("a time formats")
        )
    }

    /// Reads the text of a receipt (the part its signature covers).
    pub fn parse_body(body: &str) -> Result<Self, String> {
        let lines: Vec<&str> = body.lines().collect();
        let [origin, rest @ ..] = lines.as_slice() else { return Err("a receipt names its log first".into()) };
        let field = |name: &str| {
            rest.iter()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
                .ok_or_else(|| format!("the receipt has no {name} line"))
        };
        let seq = field("receipt")?;
        let seq = seq.parse().map_err(|_| format!("{seq:?} is not a record number"))?;
        let time = field("time")?;
        let time = OffsetDateTime::parse(time, &Rfc3339).map_err(|e| format!("{time:?} is not a time: {e}"))?;
        Ok(Self {
            origin: (*origin).to_owned(),
            seq,
            record_hash: field("record")?.to_owned(),
            request_digest: field("request")?.to_owned(),
            method: field("method")?.to_owned(),
            time,
        })
    }
}

/// The canonical bytes of an audit record, its tree leaf's content and what its chain hash is
/// the SHA-256 of: each field as a big-endian u64 length and its bytes, in this order: the
/// text `telesub-audit-v3` when the record names a person (else `-v2`, or `-v1` when
/// `attached` is empty), `prev_hash`, `seq` (big-endian i64), `at` (microseconds since 1970,
/// big-endian i128), request id, caller, certificate fingerprint, method, outcome, detail,
/// request digest, then (v2, v3) `attached` and (v3) `person`.
pub fn record_bytes(record: &proto::AuditRecord) -> Vec<u8> {
    let micros = record.at.as_ref().map_or(0i128, |t| t.seconds as i128 * 1_000_000 + (t.nanos / 1_000) as i128);
    let mut out = Vec::with_capacity(256);
    let mut field = |bytes: &[u8]| {
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        out.extend_from_slice(bytes);
    };
    let v3 = !record.person.is_empty();
    let v2 = !v3 && !record.attached.is_empty();
    field(match (v3, v2) {
        (true, _) => b"telesub-audit-v3",
        (false, true) => b"telesub-audit-v2",
        (false, false) => b"telesub-audit-v1",
    });
    field(record.prev_hash.as_bytes());
    field(&record.seq.to_be_bytes());
    field(&micros.to_be_bytes());
    field(record.request_id.as_bytes());
    field(record.caller.as_bytes());
    field(record.cert_fingerprint.as_bytes());
    field(record.method.as_bytes());
    field(record.outcome.as_bytes());
    field(record.detail.as_bytes());
    field(record.request_digest.as_bytes());
    if v2 || v3 {
        field(record.attached.as_bytes());
    }
    if v3 {
        field(record.person.as_bytes());
    }
    out
}

/// The request digest a receipt and an audit record give for a request of `messages`: SHA-256
/// of its gRPC messages as they travel, each a zero byte (not compressed), its length as a
/// big-endian 32-bit number, then its protobuf bytes. A party checks with it that a receipt
/// is for the request it sent.
pub fn request_digest<M: prost::Message>(messages: &[M]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for message in messages {
        let bytes = message.encode_to_vec();
        ctx.update(&[0]);
        ctx.update(&(bytes.len() as u32).to_be_bytes());
        ctx.update(&bytes);
    }
    hex(ctx.finish().as_ref())
}

/// SHA-256 of bytes, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// The fields of a record's canonical bytes ([`record_bytes`]), in order.
pub fn record_fields(mut bytes: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_at_checked(8).ok_or("a record's field is cut short")?;
        let len = u64::from_be_bytes(len.try_into().expect("8 bytes")) as usize;
        let (field, rest) = rest.split_at_checked(len).ok_or("a record's field is cut short")?;
        fields.push(field);
        bytes = rest;
    }
    if fields.len() < 11 {
        return Err(format!("a record has at least 11 fields, this one {}", fields.len()));
    }
    Ok(fields)
}

/// A receipt with what proves it offline: the record it promises, its inclusion proof, and
/// the signed checkpoint the proof leads to. Saved as text: the receipt alone (the signed note
/// a write answer carries), or armoured sections `-----BEGIN TELESUB RECEIPT-----` (the
/// note), `AUDIT RECORD` (base64 of the record's canonical bytes), `INCLUSION PROOF` (one
/// lower-case hex hash per line, from the leaf up) and `CHECKPOINT` (the signed note), each
/// closed by its `-----END …-----` line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiptBundle {
    pub receipt: String,
    pub record: Option<Vec<u8>>,
    pub proof: Vec<Hash>,
    pub checkpoint: Option<String>,
}

/// What a receipt was found to prove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvenReceipt {
    pub receipt: Receipt,
    /// The checkpoint the record was proven in, when the bundle holds its proof.
    pub checkpoint: Option<Checkpoint>,
}

/// The armoured sections of a text, `(name, body)` in order.
fn sections(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.trim().is_empty() {
            continue;
        }
        let name = line
            .strip_prefix("-----BEGIN TELESUB ")
            .and_then(|r| r.strip_suffix("-----"))
            .ok_or_else(|| format!("{line:?}: a section begins with -----BEGIN TELESUB …-----"))?;
        let end = format!("-----END TELESUB {name}-----");
        let mut body = String::new();
        loop {
            match lines.next() {
                Some(l) if l == end => break,
                Some(l) => {
                    body.push_str(l);
                    body.push('\n');
                }
                None => return Err(format!("the {name} section has no end line")),
            }
        }
        out.push((name.to_owned(), body));
    }
    Ok(out)
}

fn proof_lines(body: &str) -> Result<Vec<Hash>, String> {
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| parse_hash(l.trim()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the inclusion proof: {e}"))
}

fn armour(out: &mut String, name: &str, body: &str) {
    out.push_str(&format!("-----BEGIN TELESUB {name}-----\n"));
    out.push_str(body);
    if !body.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!("-----END TELESUB {name}-----\n"));
}

impl ReceiptBundle {
    /// Reads a saved receipt: a bare signed note, or the armoured sections.
    pub fn parse(text: &str) -> Result<Self, String> {
        if !text.contains("-----BEGIN TELESUB ") {
            return Ok(Self { receipt: text.to_owned(), ..Self::default() });
        }
        let mut bundle = Self::default();
        for (name, body) in sections(text)? {
            match name.as_str() {
                "RECEIPT" => bundle.receipt = body,
                "AUDIT RECORD" => {
                    let joined: String = body.split_whitespace().collect();
                    bundle.record =
                        Some(B64.decode(joined).map_err(|e| format!("the audit record is not base64: {e}"))?);
                }
                "INCLUSION PROOF" => bundle.proof = proof_lines(&body)?,
                "CHECKPOINT" => bundle.checkpoint = Some(body),
                other => return Err(format!("unknown section {other:?}")),
            }
        }
        if bundle.receipt.is_empty() {
            return Err("no RECEIPT section".into());
        }
        Ok(bundle)
    }

    /// The armoured text.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        armour(&mut out, "RECEIPT", &self.receipt);
        if let Some(record) = &self.record {
            let encoded = B64.encode(record);
            let lines: Vec<&str> =
                encoded.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).expect("base64 is ASCII")).collect();
            armour(&mut out, "AUDIT RECORD", &lines.join("\n"));
        }
        if self.record.is_some() {
            let proof: Vec<String> = self.proof.iter().map(|h| hex(h)).collect();
            armour(&mut out, "INCLUSION PROOF", &proof.join("\n"));
        }
        if let Some(checkpoint) = &self.checkpoint {
            armour(&mut out, "CHECKPOINT", checkpoint);
        }
        out
    }

    /// Checks the receipt's signature and, when the bundle holds them, that the record is
    /// the one promised and is in the signed checkpoint.
    pub fn verify(&self, key: &VerifierKey) -> Result<ProvenReceipt, String> {
        let receipt = key.open_receipt(&self.receipt)?;
        let (Some(record), Some(note)) = (&self.record, &self.checkpoint) else {
            return Ok(ProvenReceipt { receipt, checkpoint: None });
        };
        if sha256_hex(record) != receipt.record_hash {
            return Err(format!(
                "the audit record in the file is not record {} the receipt promises (its hash differs)",
                receipt.seq
            ));
        }
        let fields = record_fields(record)?;
        let seq = <[u8; 8]>::try_from(fields[2]).map(i64::from_be_bytes).map_err(|_| "a record's seq is 8 bytes")?;
        if seq != receipt.seq {
            return Err(format!("the audit record is record {seq}, the receipt promises record {}", receipt.seq));
        }
        if fields[7] != receipt.method.as_bytes() || fields[10] != receipt.request_digest.as_bytes() {
            return Err("the audit record's method or request digest differs from the receipt's".into());
        }
        let checkpoint = key.open(note)?;
        if checkpoint.size < seq as u64 {
            return Err(format!("the checkpoint covers {} records, not record {seq}", checkpoint.size));
        }
        verify_inclusion(seq as u64 - 1, checkpoint.size, &leaf_hash(record), &self.proof, &checkpoint.root)
            .map_err(|e| format!("record {seq} is not proven in the checkpoint of {} records: {e}", checkpoint.size))?;
        Ok(ProvenReceipt { receipt, checkpoint: Some(checkpoint) })
    }
}

/// What proves an audit export (`ExportAudit` with `with_proof`): the inclusion proof of its
/// last record in a signed checkpoint. The chain then ties every earlier record of the export
/// to it. Saved as the armoured sections `INCLUSION PROOF` and `CHECKPOINT` of
/// [`ReceiptBundle`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportProof {
    pub proof: Vec<Hash>,
    pub checkpoint: String,
}

impl ExportProof {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut out = Self::default();
        for (name, body) in sections(text)? {
            match name.as_str() {
                "INCLUSION PROOF" => out.proof = proof_lines(&body)?,
                "CHECKPOINT" => out.checkpoint = body,
                other => return Err(format!("unknown section {other:?}")),
            }
        }
        if out.checkpoint.is_empty() {
            return Err("no CHECKPOINT section".into());
        }
        Ok(out)
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let proof: Vec<String> = self.proof.iter().map(|h| hex(h)).collect();
        armour(&mut out, "INCLUSION PROOF", &proof.join("\n"));
        armour(&mut out, "CHECKPOINT", &self.checkpoint);
        out
    }

    /// Checks that `last`, the export's last record, is in the signed checkpoint.
    pub fn verify(&self, key: &VerifierKey, last: &proto::AuditRecord) -> Result<Checkpoint, String> {
        let checkpoint = key.open(&self.checkpoint)?;
        if last.seq < 1 || checkpoint.size < last.seq as u64 {
            return Err(format!("the checkpoint covers {} records, not record {}", checkpoint.size, last.seq));
        }
        verify_inclusion(
            last.seq as u64 - 1,
            checkpoint.size,
            &leaf_hash(&record_bytes(last)),
            &self.proof,
            &checkpoint.root,
        )
        .map_err(|e| {
            format!("record {} is not proven in the checkpoint of {} records: {e}", last.seq, checkpoint.size)
        })?;
        Ok(checkpoint)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_splits_into_its_fields() {
        let record = proto::AuditRecord {
            seq: 7,
            method: "/telesub.v1.Enrollments/Enroll".into(),
            request_digest: "ab".into(),
            attached: "cd".into(),
            ..Default::default()
        };
        let bytes = record_bytes(&record);
        let fields = record_fields(&bytes).unwrap();
        assert_eq!(fields.len(), 12);
        assert_eq!(fields[0], b"telesub-audit-v2");
        assert_eq!(fields[2], 7i64.to_be_bytes());
        assert_eq!(fields[7], record.method.as_bytes());
        assert!(record_fields(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn a_bundle_reads_back_as_written() {
        let bundle = ReceiptBundle {
            receipt: "log\nreceipt 1\n\n\u{2014} log AAAA\n".into(),
            record: Some(vec![1, 2, 3]),
            proof: vec![leaf_hash(b"a"), leaf_hash(b"b")],
            checkpoint: Some("log\n1\nAAA=\n\n\u{2014} log BBBB\n".into()),
        };
        assert_eq!(ReceiptBundle::parse(&bundle.to_text()).unwrap(), bundle);
        let bare = ReceiptBundle::parse(&bundle.receipt).unwrap();
        assert_eq!((bare.record, bare.checkpoint), (None, None));
    }
}
