//! RFC 6962 / RFC 9162 Merkle tree hashing, proofs and proof verification: for evault's own
//! log and for the Rekor logs Sigstore bundles point at.
//!
//! The domain-separation prefixes (0x00 for leaves, 0x01 for nodes) are what stop a leaf from
//! being passed off as an interior node (second-preimage attacks), so they are hard-coded here
//! rather than left to a generic Merkle library.
//!
//! The tree over entries `D[0..n]` is the one Certificate Transparency defines:
//! `MTH({}) = SHA-256()`, a leaf is `SHA-256(0x00 || entry)`, and an interior node
//! `SHA-256(0x01 || left || right)` where the left subtree holds the largest power of two
//! strictly less than `n` entries.
//!
//! Proofs are built from *perfect subtrees*: the hash of the aligned block of `2^level` leaves
//! starting at `index * 2^level`. Those never change once complete, so the log stores each one
//! once (see [`Frontier`]); any subtree the RFC's recursion asks for is either one of them or
//! the right edge of the tree, assembled from at most `log2 n` of them. A proof therefore costs
//! `O(log² n)` stored-hash reads at worst, never a pass over the entries.

use sha2::{Digest as _, Sha256};

pub type Hash = [u8; 32];

/// `SHA-256(0x00 || entry)`.
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: `SHA-256()` of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly less than `n` (`n >= 2`).
fn split(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Where stored perfect-subtree hashes come from.
pub trait Nodes {
    type Error;
    /// The hash of leaves `[index * 2^level, (index + 1) * 2^level)`, which must be complete.
    fn node(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

/// `MTH(D[lo..hi])` for `lo < hi`, a range the RFC's recursion produces (perfect blocks are
/// aligned).
pub fn subtree<N: Nodes>(nodes: &N, lo: u64, hi: u64) -> Result<Hash, N::Error> {
    let n = hi - lo;
    if n.is_power_of_two() && lo.is_multiple_of(n) {
        return nodes.node(n.trailing_zeros(), lo / n);
    }
    let k = split(n);
    let left = subtree(nodes, lo, lo + k)?;
    let right = subtree(nodes, lo + k, hi)?;
    Ok(node_hash(&left, &right))
}

/// The root of the tree of the first `size` entries.
pub fn root<N: Nodes>(nodes: &N, size: u64) -> Result<Hash, N::Error> {
    if size == 0 {
        Ok(empty_root())
    } else {
        subtree(nodes, 0, size)
    }
}

/// The audit path of leaf `index` in the tree of `size` entries (RFC 6962 §2.1.1), leaf side
/// first. `index < size`.
pub fn inclusion_proof<N: Nodes>(nodes: &N, index: u64, size: u64) -> Result<Vec<Hash>, N::Error> {
    let mut proof = Vec::new();
    path(nodes, index, 0, size, &mut proof)?;
    Ok(proof)
}

fn path<N: Nodes>(
    nodes: &N,
    m: u64,
    lo: u64,
    hi: u64,
    out: &mut Vec<Hash>,
) -> Result<(), N::Error> {
    if hi - lo <= 1 {
        return Ok(());
    }
    let k = split(hi - lo);
    if m < lo + k {
        path(nodes, m, lo, lo + k, out)?;
        out.push(subtree(nodes, lo + k, hi)?);
    } else {
        path(nodes, m, lo + k, hi, out)?;
        out.push(subtree(nodes, lo, lo + k)?);
    }
    Ok(())
}

/// The consistency proof between the trees of `old` and `new` entries (RFC 6962 §2.1.2).
/// Empty when `old` is 0 or equals `new`. `old <= new`.
pub fn consistency_proof<N: Nodes>(nodes: &N, old: u64, new: u64) -> Result<Vec<Hash>, N::Error> {
    let mut proof = Vec::new();
    if old > 0 && old < new {
        subproof(nodes, old, 0, new, true, &mut proof)?;
    }
    Ok(proof)
}

fn subproof<N: Nodes>(
    nodes: &N,
    m: u64,
    lo: u64,
    hi: u64,
    complete: bool,
    out: &mut Vec<Hash>,
) -> Result<(), N::Error> {
    let n = hi - lo;
    if m == n {
        if !complete {
            out.push(subtree(nodes, lo, hi)?);
        }
        return Ok(());
    }
    let k = split(n);
    if m <= k {
        subproof(nodes, m, lo, lo + k, complete, out)?;
        out.push(subtree(nodes, lo + k, hi)?);
    } else {
        subproof(nodes, m - k, lo + k, hi, false, out)?;
        out.push(subtree(nodes, lo, lo + k)?);
    }
    Ok(())
}

/// Longest audit path accepted: a tree of 2^64 leaves needs at most 64 hashes.
pub const MAX_PROOF_HASHES: usize = 64;

/// Computes the root implied by an inclusion proof (RFC 9162 §2.1.3.2), rejecting proofs whose
/// length does not fit `(index, tree_size)` exactly: a proof with spare or missing hashes is
/// malformed, not "close enough".
pub fn root_from_inclusion_proof(
    index: u64,
    tree_size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, String> {
    if index >= tree_size {
        return Err(format!(
            "log index {index} is not inside a tree of size {tree_size}"
        ));
    }
    if proof.len() > MAX_PROOF_HASHES {
        return Err(format!(
            "inclusion proof has {} hashes (at most {MAX_PROOF_HASHES})",
            proof.len()
        ));
    }
    let (mut fnode, mut snode) = (index, tree_size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return Err("inclusion proof has more hashes than the tree needs".into());
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        return Err("inclusion proof has fewer hashes than the tree needs".into());
    }
    Ok(r)
}

/// Verifies that `leaf` is at `index` in the tree of `tree_size` leaves whose root is `root`.
pub fn verify_inclusion(
    index: u64,
    tree_size: u64,
    leaf: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), String> {
    let computed = root_from_inclusion_proof(index, tree_size, leaf, proof)?;
    if &computed == root {
        Ok(())
    } else {
        Err(format!(
            "inclusion proof does not lead to the root hash: computed {}, expected {}",
            hex::encode(computed),
            hex::encode(root)
        ))
    }
}

/// Checks a consistency proof between a tree of `old` entries with root `old_root` and one of
/// `new` entries with root `new_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old: u64,
    new: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), String> {
    let fail = |why: &str| {
        Err(format!(
            "consistency proof from {old} to {new} entries: {why}"
        ))
    };
    if old > new {
        return fail("the old tree is larger than the new one");
    }
    if proof.len() > MAX_PROOF_HASHES {
        return fail("too many hashes");
    }
    if old == new {
        return if !proof.is_empty() {
            fail("a proof between equal sizes must be empty")
        } else if old_root != new_root {
            fail("the roots differ")
        } else {
            Ok(())
        };
    }
    if old == 0 {
        return if proof.is_empty() {
            Ok(())
        } else {
            fail("a proof from the empty tree must be empty")
        };
    }
    if proof.is_empty() {
        return fail("the proof is empty");
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let (mut fnode, mut snode) = (old - 1, new - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if snode == 0 {
            return fail("more hashes than the trees need");
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    if snode != 0 {
        fail("fewer hashes than the trees need")
    } else if &fr != old_root {
        fail("it does not lead to the old root (history was rewritten)")
    } else if &sr != new_root {
        fail("it does not lead to the new root")
    } else {
        Ok(())
    }
}

/// The right edge of a growing tree: its perfect subtrees, largest first. Appending a leaf
/// yields every perfect subtree the leaf completes, which is what the log stores.
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    /// (level, index) of each perfect subtree, with its hash.
    stack: Vec<(u32, u64, Hash)>,
    size: u64,
}

impl Frontier {
    /// The frontier of a tree of `size` entries, read from stored perfect subtrees
    /// (`popcount(size)` reads).
    pub fn load<N: Nodes>(nodes: &N, size: u64) -> Result<Frontier, N::Error> {
        let mut stack = Vec::new();
        let mut offset = 0u64;
        for level in (0..64u32).rev() {
            let width = 1u64 << level;
            if size & width != 0 {
                let index = offset >> level;
                stack.push((level, index, nodes.node(level, index)?));
                offset += width;
            }
        }
        Ok(Frontier { stack, size })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf; returns the perfect subtrees it completes, `(level, index, hash)`,
    /// starting with the leaf itself at level 0.
    pub fn push(&mut self, leaf: Hash) -> Vec<(u32, u64, Hash)> {
        let mut made = vec![(0, self.size, leaf)];
        let mut top = (0u32, self.size, leaf);
        while let Some(&(level, index, hash)) = self.stack.last() {
            if level != top.0 {
                break;
            }
            self.stack.pop();
            top = (level + 1, index >> 1, node_hash(&hash, &top.2));
            made.push(top);
        }
        self.stack.push(top);
        self.size += 1;
        made
    }

    /// The root of the tree so far.
    pub fn root(&self) -> Hash {
        let mut iter = self.stack.iter().rev();
        let Some(&(_, _, last)) = iter.next() else {
            return empty_root();
        };
        iter.fold(last, |acc, (_, _, hash)| node_hash(hash, &acc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::convert::Infallible;

    /// MTH straight from the RFC's definition.
    fn mth(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n as u64) as usize;
                node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
            }
        }
    }

    struct Stored(HashMap<(u32, u64), Hash>);

    impl Nodes for Stored {
        type Error = Infallible;
        fn node(&self, level: u32, index: u64) -> Result<Hash, Infallible> {
            Ok(*self
                .0
                .get(&(level, index))
                .unwrap_or_else(|| panic!("node ({level}, {index}) was never stored")))
        }
    }

    fn build(n: u64) -> (Vec<Hash>, Stored, Frontier) {
        let mut leaves = Vec::new();
        let mut stored = Stored(HashMap::new());
        let mut frontier = Frontier::default();
        for i in 0..n {
            let leaf = leaf_hash(format!("entry {i}").as_bytes());
            leaves.push(leaf);
            for (level, index, hash) in frontier.push(leaf) {
                assert!(stored.0.insert((level, index), hash).is_none());
            }
        }
        (leaves, stored, frontier)
    }

    /// Any hash for any coordinates, counting reads: enough to measure how much a proof costs.
    struct Counting(std::cell::Cell<u64>);

    impl Nodes for Counting {
        type Error = Infallible;
        fn node(&self, level: u32, index: u64) -> Result<Hash, Infallible> {
            self.0.set(self.0.get() + 1);
            Ok(leaf_hash(format!("{level}/{index}").as_bytes()))
        }
    }

    #[test]
    fn proofs_read_a_logarithmic_number_of_stored_hashes() {
        for size in [1u64 << 10, (1 << 20) + 12_345, (1 << 40) - 1, u64::MAX >> 2] {
            let bits = 64 - size.leading_zeros() as u64;
            for index in [0, size / 3, size / 2 + 1, size - 1] {
                let nodes = Counting(std::cell::Cell::new(0));
                let proof = inclusion_proof(&nodes, index, size).unwrap();
                assert!(proof.len() as u64 <= bits);
                // Each path step reads one perfect subtree or assembles the right edge.
                assert!(
                    nodes.0.get() <= 2 * bits * bits,
                    "{} reads for leaf {index} of {size}",
                    nodes.0.get()
                );
            }
            let nodes = Counting(std::cell::Cell::new(0));
            consistency_proof(&nodes, size / 3 + 1, size).unwrap();
            assert!(nodes.0.get() <= 2 * bits * bits);
            let nodes = Counting(std::cell::Cell::new(0));
            Frontier::load(&nodes, size).unwrap();
            assert_eq!(nodes.0.get(), u64::from(size.count_ones()));
        }
    }

    #[test]
    fn frontier_roots_match_the_rfc_definition_and_reload() {
        let (leaves, stored, _) = build(70);
        for n in 0..=70u64 {
            let expected = mth(&leaves[..n as usize]);
            assert_eq!(root(&stored, n).unwrap(), expected, "size {n}");
            let f = Frontier::load(&stored, n).unwrap();
            assert_eq!(f.root(), expected, "frontier of size {n}");
        }
    }

    #[test]
    fn every_inclusion_and_consistency_proof_verifies_and_rejects_tampering() {
        let (leaves, stored, _) = build(34);
        for n in 1..=33u64 {
            let r = mth(&leaves[..n as usize]);
            for i in 0..n {
                let proof = inclusion_proof(&stored, i, n).unwrap();
                assert!(proof.len() <= 64 - (n - 1).leading_zeros() as usize);
                assert!(verify_inclusion(i, n, &leaves[i as usize], &proof, &r).is_ok());
                let bigger = mth(&leaves[..n as usize + 1]);
                assert!(verify_inclusion(i, n + 1, &leaves[i as usize], &proof, &bigger).is_err());
                if let Some(first) = proof.first() {
                    let mut bad = proof.clone();
                    bad[0] = node_hash(first, first);
                    assert!(verify_inclusion(i, n, &leaves[i as usize], &bad, &r).is_err());
                }
            }
            for m in 0..=n {
                let old = mth(&leaves[..m as usize]);
                let proof = consistency_proof(&stored, m, n).unwrap();
                assert_eq!(
                    verify_consistency(m, n, &old, &r, &proof),
                    Ok(()),
                    "{m} -> {n}"
                );
                if m > 0 && m < n {
                    let other = leaf_hash(b"rewritten");
                    assert!(verify_consistency(m, n, &other, &r, &proof).is_err());
                    assert!(verify_consistency(m, n, &old, &other, &proof).is_err());
                }
            }
        }
    }
}
