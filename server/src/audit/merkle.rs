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

pub use telesub_proto::audit::{
    Hash, ProofError, empty_root, leaf_hash, node_hash, parse_hash, verify_consistency, verify_inclusion,
};

/// Levels whose perfect subtrees are stored: every `STRIDE`th (leaves are the records).
pub const STRIDE: u32 = 4;

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
