//! RFC 6962 inclusion proofs: checked against an independent, deliberately naive Merkle tree
//! built here from the RFC's recursive definitions (MTH and PATH, §2.1), plus the known-answer
//! roots of the eight-leaf tree used by the Certificate Transparency reference tests.

use evault_core::log::merkle::{
    MAX_PROOF_HASHES, leaf_hash, node_hash, root_from_inclusion_proof, verify_inclusion,
};
use sha2::{Digest, Sha256};

fn h(parts: &[&[u8]]) -> [u8; 32] {
    let mut d = Sha256::new();
    for p in parts {
        d.update(p);
    }
    d.finalize().into()
}

/// Largest power of two strictly smaller than n (n > 1).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

/// MTH(D[n]) from RFC 6962 §2.1.
fn mth(leaves: &[Vec<u8>]) -> [u8; 32] {
    match leaves.len() {
        0 => h(&[]),
        1 => h(&[&[0], &leaves[0]]),
        n => {
            let k = split(n);
            h(&[&[1], &mth(&leaves[..k]), &mth(&leaves[k..])])
        }
    }
}

/// PATH(m, D[n]) from RFC 6962 §2.1.1.
fn path(m: usize, leaves: &[Vec<u8>]) -> Vec<[u8; 32]> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = split(n);
    if m < k {
        let mut p = path(m, &leaves[..k]);
        p.push(mth(&leaves[k..]));
        p
    } else {
        let mut p = path(m - k, &leaves[k..]);
        p.push(mth(&leaves[..k]));
        p
    }
}

fn leaves(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("leaf {i}").into_bytes()).collect()
}

#[test]
fn hashes_use_rfc6962_domain_separation() {
    assert_eq!(leaf_hash(b"abc"), h(&[&[0], b"abc"]));
    let (a, b) = (h(&[b"a"]), h(&[b"b"]));
    assert_eq!(node_hash(&a, &b), h(&[&[1], &a, &b]));
}

#[test]
fn known_answer_roots_of_the_ct_reference_tree() {
    let data: Vec<Vec<u8>> = vec![
        vec![],
        vec![0x00],
        vec![0x10],
        vec![0x20, 0x21],
        vec![0x30, 0x31],
        vec![0x40, 0x41, 0x42, 0x43],
        (0x50..0x58).collect(),
        (0x60..0x70).collect(),
    ];
    let roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    for n in 1..=8 {
        let tree = &data[..n];
        assert_eq!(
            hex::encode(mth(tree)),
            roots[n - 1],
            "reference root of {n} leaves"
        );
        for m in 0..n {
            let root =
                root_from_inclusion_proof(m as u64, n as u64, &leaf_hash(&tree[m]), &path(m, tree))
                    .unwrap();
            assert_eq!(hex::encode(root), roots[n - 1], "leaf {m} of {n}");
        }
    }
}

#[test]
fn every_leaf_of_every_small_tree_is_proven() {
    for n in 1..=70 {
        let tree = leaves(n);
        let root = mth(&tree);
        for m in 0..n {
            let proof = path(m, &tree);
            verify_inclusion(m as u64, n as u64, &leaf_hash(&tree[m]), &proof, &root)
                .unwrap_or_else(|e| panic!("leaf {m} of {n}: {e}"));
        }
    }
}

#[test]
fn altered_proofs_are_rejected() {
    for n in 1..=33 {
        let tree = leaves(n);
        let root = mth(&tree);
        for m in 0..n {
            let leaf = leaf_hash(&tree[m]);
            let proof = path(m, &tree);
            let (idx, size) = (m as u64, n as u64);

            // A different leaf.
            let other = leaf_hash(b"not in the tree");
            assert!(verify_inclusion(idx, size, &other, &proof, &root).is_err());
            // A different root.
            let mut bad_root = root;
            bad_root[0] ^= 1;
            assert!(verify_inclusion(idx, size, &leaf, &proof, &bad_root).is_err());
            // Each audit-path hash altered in turn.
            for k in 0..proof.len() {
                let mut p = proof.clone();
                p[k][31] ^= 0x80;
                assert!(
                    verify_inclusion(idx, size, &leaf, &p, &root).is_err(),
                    "n={n} m={m} k={k}"
                );
            }
            // One hash too many, one too few.
            let mut longer = proof.clone();
            longer.push(root);
            assert!(verify_inclusion(idx, size, &leaf, &longer, &root).is_err());
            if !proof.is_empty() {
                assert!(
                    verify_inclusion(idx, size, &leaf, &proof[..proof.len() - 1], &root).is_err()
                );
            }
            // The right path presented for another index.
            for other_m in (0..n).filter(|o| *o != m) {
                assert!(
                    verify_inclusion(other_m as u64, size, &leaf, &proof, &root).is_err(),
                    "n={n} m={m} as {other_m}"
                );
            }
            // An index outside the tree.
            assert!(verify_inclusion(size, size, &leaf, &proof, &root).is_err());
        }
    }
    // Empty trees and absurd proofs.
    assert!(root_from_inclusion_proof(0, 0, &[0; 32], &[]).is_err());
    let huge = vec![[0u8; 32]; MAX_PROOF_HASHES + 1];
    assert!(root_from_inclusion_proof(0, u64::MAX, &[0; 32], &huge).is_err());
}

#[test]
fn a_leaf_cannot_pose_as_an_interior_node() {
    // Without the 0x00/0x01 prefixes, the concatenation of two leaf hashes would be a valid
    // "leaf" proving membership of an interior node. With them, it is not.
    let tree = leaves(4);
    let root = mth(&tree);
    let left = mth(&tree[..2]);
    let right = mth(&tree[2..]);
    let forged_leaf: Vec<u8> = [left, right].concat();
    assert!(verify_inclusion(0, 1, &leaf_hash(&forged_leaf), &[], &root).is_err());
    assert_eq!(root, node_hash(&left, &right));
}
