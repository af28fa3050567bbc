//! RFC 6962 / RFC 9162 Merkle tree inclusion proofs.
//!
//! Rekor (v1 and v2) is an RFC 6962 log: a leaf is `SHA-256(0x00 || entry)` and an interior
//! node is `SHA-256(0x01 || left || right)`. The domain-separation prefixes are what stop a
//! leaf from being passed off as an interior node (second-preimage attacks), so they are
//! hard-coded here rather than left to a generic Merkle library.

use super::crypto::sha256;

/// Longest audit path accepted: a tree of 2^64 leaves needs at most 64 hashes.
pub const MAX_PROOF_HASHES: usize = 64;

/// `SHA-256(0x00 || data)`: the RFC 6962 leaf hash.
pub fn leaf_hash(data: &[u8]) -> [u8; 32] {
    let mut buf = Vec::with_capacity(data.len() + 1);
    buf.push(0x00);
    buf.extend_from_slice(data);
    sha256(&buf)
}

/// `SHA-256(0x01 || left || right)`: the RFC 6962 interior node hash.
pub fn node_hash(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut buf = [0u8; 65];
    buf[0] = 0x01;
    buf[1..33].copy_from_slice(left);
    buf[33..].copy_from_slice(right);
    sha256(&buf)
}

/// Computes the root implied by an inclusion proof (RFC 9162 §2.1.3.2), rejecting proofs whose
/// length does not fit `(index, tree_size)` exactly: a proof with spare or missing hashes is
/// malformed, not "close enough".
pub fn root_from_inclusion_proof(
    index: u64,
    tree_size: u64,
    leaf: &[u8; 32],
    proof: &[[u8; 32]],
) -> Result<[u8; 32], String> {
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
    let mut fn_ = index;
    let mut sn = tree_size - 1;
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return Err("inclusion proof has more hashes than the tree needs".into());
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err("inclusion proof has fewer hashes than the tree needs".into());
    }
    Ok(r)
}

/// Verifies that `leaf` is at `index` in the tree of `tree_size` leaves whose root is `root`.
pub fn verify_inclusion(
    index: u64,
    tree_size: u64,
    leaf: &[u8; 32],
    proof: &[[u8; 32]],
    root: &[u8; 32],
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
