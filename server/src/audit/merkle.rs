//! The Merkle tree over the audit trail, as RFC 9162 (Certificate Transparency 2.0) defines
//! it: a leaf's hash is SHA-256 of `0x00` and the leaf's bytes, a node's SHA-256 of `0x01` and
//! its two children, and a tree of `n` leaves splits at the largest power of two below `n`.
//! Leaf `i` is audit record `i + 1`; its bytes are the record's canonical bytes
//! ([`super::record_bytes`]).
//!
//! The hub keeps the tree's right edge (a compact range: the roots of the perfect subtrees that
//! cover the leaves so far, at most one per level) with the chain head, and stores the perfect
//! subtrees of every fourth level (16, 256, 4096, … leaves) as they complete. Any subtree a
//! proof needs is then one stored node, or at most sixteen stored nodes or records combined.

use std::fmt;

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// Levels whose perfect subtrees are stored: every `STRIDE`th (leaves are the records).
pub const STRIDE: u32 = 4;

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

/// Whether a level's perfect subtrees are stored.
pub fn stored_level(level: u32) -> bool {
    level > 0 && level.is_multiple_of(STRIDE)
}

/// The right edge of a tree: the roots of the perfect subtrees covering `[0, size)`, the
/// largest (leftmost) first; one per set bit of `size`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompactRange {
    size: u64,
    nodes: Vec<Hash>,
}

impl CompactRange {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf's hash; `completed(level, index, hash)` hears of every perfect subtree
    /// of two or more leaves the leaf completes, lowest first.
    pub fn push(&mut self, leaf: Hash, mut completed: impl FnMut(u32, u64, &Hash)) {
        let mut hash = leaf;
        let mut level = 0;
        let mut index = self.size;
        while (self.size >> level) & 1 == 1 {
            let left = self.nodes.pop().expect("a node for each set bit");
            hash = node_hash(&left, &hash);
            level += 1;
            index >>= 1;
            completed(level, index, &hash);
        }
        self.nodes.push(hash);
        self.size += 1;
    }

    /// The tree's root (RFC 9162 MTH of every leaf so far).
    pub fn root(&self) -> Hash {
        let mut nodes = self.nodes.iter().rev();
        let Some(last) = nodes.next() else { return empty_root() };
        nodes.fold(*last, |right, left| node_hash(left, &right))
    }

    /// `size` then each node in hex, separated by `:`; what the chain head stores.
    pub fn encode(&self) -> String {
        let mut out = self.size.to_string();
        for n in &self.nodes {
            out.push(':');
            out.push_str(&crate::hex(n));
        }
        out
    }

    pub fn decode(s: &str) -> Result<Self, String> {
        let mut parts = s.split(':');
        let size: u64 =
            parts.next().and_then(|p| p.parse().ok()).ok_or_else(|| format!("{s:?} does not start with a size"))?;
        let nodes = parts.map(parse_hash).collect::<Result<Vec<_>, _>>()?;
        if nodes.len() != size.count_ones() as usize {
            return Err(format!("a tree of {size} leaves has {} edge nodes, not {}", size.count_ones(), nodes.len()));
        }
        Ok(Self { size, nodes })
    }
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

/// A perfect subtree: `2^level` leaves from `index * 2^level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subtree {
    pub level: u32,
    pub index: u64,
}

impl Subtree {
    pub fn first_leaf(self) -> u64 {
        self.index << self.level
    }
}

/// The perfect subtrees whose hashes make up MTH of leaves `[lo, hi)`, left to right (`lo`
/// aligned as the RFC's splits always are: the range's binary decomposition).
fn decompose(lo: u64, hi: u64, out: &mut Vec<Subtree>) {
    let mut at = lo;
    while at < hi {
        let left = hi - at;
        let mut level = 63 - left.leading_zeros();
        // Aligned: `at` is a multiple of the subtree's size.
        while level > 0 && !at.is_multiple_of(1u64 << level) {
            level -= 1;
        }
        out.push(Subtree { level, index: at >> level });
        at += 1u64 << level;
    }
}

/// A range of leaves whose MTH is one element of a proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub lo: u64,
    pub hi: u64,
}

impl Span {
    /// The perfect subtrees it is made of, left to right.
    pub fn subtrees(self) -> Vec<Subtree> {
        let mut out = Vec::new();
        decompose(self.lo, self.hi, &mut out);
        out
    }
}

/// The MTH of a span, from the hashes of its perfect subtrees (left to right).
pub fn combine(parts: &[Hash]) -> Hash {
    let mut it = parts.iter().rev();
    let Some(last) = it.next() else { return empty_root() };
    it.fold(*last, |right, left| node_hash(left, &right))
}

fn largest_power_below(n: u64) -> u64 {
    debug_assert!(n > 1);
    1u64 << (63 - (n - 1).leading_zeros())
}

/// The spans whose MTHs are the inclusion proof of leaf `m` in a tree of `n` leaves
/// (RFC 9162 2.1.3.1 PATH), in proof order.
pub fn inclusion_spans(m: u64, n: u64) -> Vec<Span> {
    fn path(m: u64, lo: u64, hi: u64, out: &mut Vec<Span>) {
        let n = hi - lo;
        if n <= 1 {
            return;
        }
        let k = largest_power_below(n);
        if m < k {
            path(m, lo, lo + k, out);
            out.push(Span { lo: lo + k, hi });
        } else {
            path(m - k, lo + k, hi, out);
            out.push(Span { lo, hi: lo + k });
        }
    }
    let mut out = Vec::new();
    path(m, 0, n, &mut out);
    out
}

/// The spans whose MTHs are the consistency proof from a tree of `m` leaves to one of `n`
/// (RFC 9162 2.1.4.1 PROOF), in proof order; empty when `m` is 0 or equals `n`.
pub fn consistency_spans(m: u64, n: u64) -> Vec<Span> {
    fn subproof(m: u64, lo: u64, hi: u64, whole: bool, out: &mut Vec<Span>) {
        let n = hi - lo;
        if m == n {
            if !whole {
                out.push(Span { lo, hi });
            }
            return;
        }
        let k = largest_power_below(n);
        if m <= k {
            subproof(m, lo, lo + k, whole, out);
            out.push(Span { lo: lo + k, hi });
        } else {
            subproof(m - k, lo + k, hi, false, out);
            out.push(Span { lo, hi: lo + k });
        }
    }
    let mut out = Vec::new();
    if m > 0 && m < n {
        subproof(m, 0, n, true, &mut out);
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;

    /// MTH straight from the RFC's definition.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = largest_power_below(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    fn leaves(n: u64) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(format!("record {i}").as_bytes())).collect()
    }

    fn span_hash(leaves: &[Hash], span: Span) -> Hash {
        let parts: Vec<Hash> = span
            .subtrees()
            .into_iter()
            .map(|s| {
                let first = s.first_leaf() as usize;
                mth(&leaves[first..first + (1usize << s.level)])
            })
            .collect();
        let combined = combine(&parts);
        assert_eq!(combined, mth(&leaves[span.lo as usize..span.hi as usize]), "{span:?}");
        combined
    }

    #[test]
    fn the_compact_range_gives_the_rfc_root_and_every_completed_subtree() {
        let all = leaves(300);
        let mut range = CompactRange::default();
        let mut completed = Vec::new();
        for (i, leaf) in all.iter().enumerate() {
            range.push(*leaf, |level, index, hash| completed.push((level, index, *hash)));
            assert_eq!(range.root(), mth(&all[..=i]), "size {}", i + 1);
            assert_eq!(CompactRange::decode(&range.encode()).unwrap(), range);
        }
        for (level, index, hash) in completed {
            let first = (index << level) as usize;
            assert_eq!(hash, mth(&all[first..first + (1 << level)]));
        }
        assert_eq!(CompactRange::default().root(), empty_root());
        assert!(CompactRange::decode("3:00").is_err());
    }

    #[test]
    fn inclusion_proofs_verify_and_fail_on_any_change() {
        for n in 1..=40u64 {
            let all = leaves(n);
            let root = mth(&all);
            for m in 0..n {
                let proof: Vec<Hash> = inclusion_spans(m, n).into_iter().map(|s| span_hash(&all, s)).collect();
                verify_inclusion(m, n, &all[m as usize], &proof, &root).unwrap();
                let mut bad = proof.clone();
                if let Some(first) = bad.first_mut() {
                    first[0] ^= 1;
                    assert!(verify_inclusion(m, n, &all[m as usize], &bad, &root).is_err());
                }
                assert!(verify_inclusion(m, n, &leaf_hash(b"other"), &proof, &root).is_err());
                if n > 1 {
                    assert!(verify_inclusion((m + 1) % n, n, &all[m as usize], &proof, &root).is_err());
                }
            }
        }
    }

    #[test]
    fn consistency_proofs_verify_and_fail_on_any_change() {
        let all = leaves(70);
        for n in 1..=70u64 {
            for m in 0..=n {
                let proof: Vec<Hash> = consistency_spans(m, n).into_iter().map(|s| span_hash(&all, s)).collect();
                let (r1, r2) = (mth(&all[..m as usize]), mth(&all[..n as usize]));
                verify_consistency(m, n, &proof, &r1, &r2).unwrap_or_else(|e| panic!("{m} → {n}: {e}"));
                if m > 0 && m < n {
                    assert!(verify_consistency(m, n, &proof, &leaf_hash(b"x"), &r2).is_err());
                    assert!(verify_consistency(m, n, &proof, &r1, &leaf_hash(b"x")).is_err());
                }
            }
        }
        // A rewritten history: the same size, another root.
        let mut other = all.clone();
        other[3] = leaf_hash(b"changed");
        let proof: Vec<Hash> = consistency_spans(10, 20).into_iter().map(|s| span_hash(&other, s)).collect();
        assert!(verify_consistency(10, 20, &proof, &mth(&all[..10]), &mth(&other[..20])).is_err());
    }
}
