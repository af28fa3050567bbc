//! The tamper-evident log end to end (docs/log.md): the real binary and the real server, checked
//! by an independent verifier written here from the specifications (RFC 6962/9162 Merkle trees
//! and proofs, C2SP signed notes and tlog checkpoints) without any of evault's own code, and a
//! vault tampered with the way someone with write access to its files would: SQL on
//! `index.db` (append-only triggers dropped first), bytes on disk, a swapped key file.

#[path = "common/mod.rs"]
mod common;
#[path = "common/server.rs"]
mod server_common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::{ACTOR, BLUEPRINT, GIT_SHA, Run, VERSION, Vault, digest_of, str_field};
use serde_json::{Value, json};
use server_common::{Req, Server, with_query};
use sha2::{Digest as _, Sha256};
use tlog::{Checkpoint, Hash, NoteKey};

// ---------------------------------------------------------------------------------------------
// An independent verifier

/// RFC 6962 §2.1 Merkle trees with the RFC 9162 §2.1.3.2 and §2.1.4.2 verification algorithms,
/// and C2SP `signed-note` / `tlog-checkpoint` with Ed25519, written from the specifications.
/// Deliberately shares no code with evault.
mod tlog {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
    use sha2::{Digest as _, Sha256};

    pub type Hash = [u8; 32];

    /// The signature algorithm byte of Ed25519 in signed notes.
    const ED25519: u8 = 0x01;
    /// What starts a signature line: an em dash and a space.
    const DASH: &str = "\u{2014} ";

    fn sha256(parts: &[&[u8]]) -> Hash {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }

    /// RFC 6962 §2.1: `MTH({d(0)}) = SHA-256(0x00 || d(0))`.
    pub fn leaf_hash(entry: &[u8]) -> Hash {
        sha256(&[&[0x00], entry])
    }

    /// RFC 6962 §2.1: `SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))`.
    pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
        sha256(&[&[0x01], left, right])
    }

    /// `k`, the largest power of two smaller than `n` (`n > 1`).
    fn split(n: usize) -> usize {
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    /// `MTH(D[n])` over the leaf hashes; the empty tree's is `SHA-256()`.
    pub fn root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => sha256(&[]),
            1 => leaves[0],
            n => {
                let k = split(n);
                node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
            }
        }
    }

    /// RFC 6962 §2.1.1: `PATH(m, D[n])`, the audit path of leaf `m`.
    pub fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        assert!(m < n, "no leaf {m} in a tree of {n}");
        if n == 1 {
            return Vec::new();
        }
        let k = split(n);
        let (mut out, sibling) = if m < k {
            (path(m, &leaves[..k]), root(&leaves[k..]))
        } else {
            (path(m - k, &leaves[k..]), root(&leaves[..k]))
        };
        out.push(sibling);
        out
    }

    /// RFC 6962 §2.1.2: `PROOF(m, D[n]) = SUBPROOF(m, D[n], true)`, for `0 < m <= n`.
    pub fn consistency(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        subproof(m, leaves, true)
    }

    fn subproof(m: usize, leaves: &[Hash], whole: bool) -> Vec<Hash> {
        let n = leaves.len();
        if m == n {
            return if whole {
                Vec::new()
            } else {
                vec![root(leaves)]
            };
        }
        let k = split(n);
        let (mut out, sibling) = if m <= k {
            (subproof(m, &leaves[..k], whole), root(&leaves[k..]))
        } else {
            (subproof(m - k, &leaves[k..], false), root(&leaves[..k]))
        };
        out.push(sibling);
        out
    }

    /// RFC 9162 §2.1.3.2: verifying an inclusion proof.
    pub fn verify_inclusion(
        index: u64,
        size: u64,
        leaf: &Hash,
        path: &[Hash],
        root: &Hash,
    ) -> Result<(), String> {
        // 1. leaf_index < tree_size.
        if index >= size {
            return Err(format!("leaf {index} is not in a tree of {size}"));
        }
        // 2.-3.
        let (mut fn_, mut sn) = (index, size - 1);
        let mut r = *leaf;
        // 4.
        for p in path {
            if sn == 0 {
                return Err("the audit path is longer than the tree is high".into());
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
        // 5.
        if sn != 0 {
            return Err("the audit path is shorter than the tree is high".into());
        }
        if &r != root {
            return Err(format!(
                "the audit path leads to root {}, not {}",
                hex::encode(r),
                hex::encode(root)
            ));
        }
        Ok(())
    }

    /// RFC 9162 §2.1.4.2: verifying consistency between two tree heads. A tree extends itself
    /// with an empty proof when the roots agree, and extends the empty tree with an empty proof.
    pub fn verify_consistency(
        first: u64,
        second: u64,
        first_root: &Hash,
        second_root: &Hash,
        proof: &[Hash],
    ) -> Result<(), String> {
        if first > second {
            return Err(format!("a tree of {second} cannot extend one of {first}"));
        }
        if first == second || first == 0 {
            if !proof.is_empty() {
                return Err(format!(
                    "the proof from {first} to {second} entries must be empty"
                ));
            }
            if first == second && first_root != second_root {
                return Err("two trees of the same size have different roots".into());
            }
            return Ok(());
        }
        // 1.
        if proof.is_empty() {
            return Err("empty consistency proof".into());
        }
        // 2.
        let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
        if first.is_power_of_two() {
            path.push(*first_root);
        }
        path.extend_from_slice(proof);
        // 3.-4.
        let (mut fn_, mut sn) = (first - 1, second - 1);
        while fn_ & 1 == 1 {
            fn_ >>= 1;
            sn >>= 1;
        }
        // 5.
        let (mut fr, mut sr) = (path[0], path[0]);
        // 6.
        for c in &path[1..] {
            if sn == 0 {
                return Err("the consistency proof is too long".into());
            }
            if fn_ & 1 == 1 || fn_ == sn {
                fr = node_hash(c, &fr);
                sr = node_hash(c, &sr);
                if fn_ & 1 == 0 {
                    while fn_ & 1 == 0 && fn_ != 0 {
                        fn_ >>= 1;
                        sn >>= 1;
                    }
                }
            } else {
                sr = node_hash(&sr, c);
            }
            fn_ >>= 1;
            sn >>= 1;
        }
        // 7.
        if sn != 0 {
            return Err("the consistency proof is too short".into());
        }
        if &fr != first_root {
            return Err(format!(
                "the proof rebuilds the older root as {}, not {}",
                hex::encode(fr),
                hex::encode(first_root)
            ));
        }
        if &sr != second_root {
            return Err(format!(
                "the proof rebuilds the newer root as {}, not {}",
                hex::encode(sr),
                hex::encode(second_root)
            ));
        }
        Ok(())
    }

    /// A signed-note verifier key: `name+hex(key id)+base64(0x01 || public key)`.
    #[derive(Clone)]
    pub struct NoteKey {
        pub name: String,
        pub id: [u8; 4],
        pub key: VerifyingKey,
    }

    /// The key id: the first 4 bytes of `SHA-256(name || "\n" || 0x01 || public key)`.
    pub fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
        let d = sha256(&[name.as_bytes(), b"\n", &[ED25519], public]);
        [d[0], d[1], d[2], d[3]]
    }

    fn valid_name(name: &str) -> bool {
        !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == '+')
    }

    pub fn parse_vkey(text: &str) -> Result<NoteKey, String> {
        // The base64 may itself hold '+'.
        let mut parts = text.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("'{text}' is not name+id+key"));
        };
        if !valid_name(name) {
            return Err(format!("'{name}' is not a key name"));
        }
        if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("'{id}' is not 8 hex digits"));
        }
        let bytes = B64
            .decode(key)
            .map_err(|e| format!("the key is not base64: {e}"))?;
        let public: [u8; 32] = match bytes.split_first() {
            Some((&ED25519, rest)) => rest
                .try_into()
                .map_err(|_| "the Ed25519 key is not 32 bytes")?,
            _ => return Err("not an Ed25519 key".into()),
        };
        let computed = key_id(name, &public);
        if hex::encode(computed) != id {
            return Err(format!(
                "the key id {id} is not the id of the key ({})",
                hex::encode(computed)
            ));
        }
        let key = VerifyingKey::from_bytes(&public).map_err(|e| e.to_string())?;
        Ok(NoteKey {
            name: name.to_string(),
            id: computed,
            key,
        })
    }

    impl NoteKey {
        pub fn vkey(&self) -> String {
            let mut bytes = vec![ED25519];
            bytes.extend_from_slice(self.key.as_bytes());
            format!(
                "{}+{}+{}",
                self.name,
                hex::encode(self.id),
                B64.encode(bytes)
            )
        }
    }

    /// A signed-note signer key, Go's `PRIVATE+KEY+name+hex(id)+base64(0x01 || seed)`.
    pub fn parse_signer(text: &str) -> Result<(NoteKey, SigningKey), String> {
        let rest = text
            .trim()
            .strip_prefix("PRIVATE+KEY+")
            .ok_or("not PRIVATE+KEY+...")?;
        let mut parts = rest.splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err("not PRIVATE+KEY+name+id+key".into());
        };
        let bytes = B64.decode(key).map_err(|e| e.to_string())?;
        let seed: [u8; 32] = match bytes.split_first() {
            Some((&ED25519, rest)) => rest.try_into().map_err(|_| "not 32 bytes")?,
            _ => return Err("not an Ed25519 key".into()),
        };
        let sk = SigningKey::from_bytes(&seed);
        let public = sk.verifying_key();
        let computed = key_id(name, public.as_bytes());
        if hex::encode(computed) != id {
            return Err("the signer key's id does not match".into());
        }
        let key = NoteKey {
            name: name.to_string(),
            id: computed,
            key: public,
        };
        Ok((key, sk))
    }

    /// A new signer named `name`: its verifier, its signing key and its `PRIVATE+KEY+...` text.
    pub fn new_signer(name: &str, seed: [u8; 32]) -> (NoteKey, SigningKey, String) {
        let sk = SigningKey::from_bytes(&seed);
        let public = sk.verifying_key();
        let key = NoteKey {
            name: name.to_string(),
            id: key_id(name, public.as_bytes()),
            key: public,
        };
        let mut bytes = vec![ED25519];
        bytes.extend_from_slice(&seed);
        let text = format!(
            "PRIVATE+KEY+{name}+{}+{}",
            hex::encode(key.id),
            B64.encode(bytes)
        );
        (key, sk, text)
    }

    /// Signs `text` (which ends with a newline) as a note with one signature.
    pub fn sign_note(text: &str, key: &NoteKey, sk: &SigningKey) -> String {
        let sig: Signature = sk.sign(text.as_bytes());
        let mut blob = key.id.to_vec();
        blob.extend_from_slice(&sig.to_bytes());
        format!("{text}\n{DASH}{} {}\n", key.name, B64.encode(blob))
    }

    /// Opens a signed note: its text, if `key` signed it.
    pub fn open_note(note: &str, key: &NoteKey) -> Result<String, String> {
        if !note.ends_with('\n') {
            return Err("a note ends with a newline".into());
        }
        let split = note
            .rfind("\n\n")
            .ok_or("no blank line before the signatures")?;
        let (text, signatures) = (&note[..=split], &note[split + 2..]);
        let mut found = false;
        for line in signatures.lines() {
            let rest = line
                .strip_prefix(DASH)
                .ok_or_else(|| format!("'{line}' is not a signature line"))?;
            let (name, blob) = rest
                .split_once(' ')
                .ok_or_else(|| format!("'{line}' has no signature"))?;
            let blob = B64
                .decode(blob)
                .map_err(|e| format!("signature of {name} is not base64: {e}"))?;
            if name != key.name || blob.len() < 4 || blob[..4] != key.id {
                continue;
            }
            let sig: [u8; 64] = blob[4..]
                .try_into()
                .map_err(|_| "an Ed25519 signature is 64 bytes")?;
            key.key
                .verify_strict(text.as_bytes(), &Signature::from_bytes(&sig))
                .map_err(|e| format!("the signature of {name} does not verify: {e}"))?;
            found = true;
        }
        if found {
            Ok(text.to_string())
        } else {
            Err(format!("the note carries no signature by {}", key.name))
        }
    }

    /// A C2SP tlog-checkpoint body.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Checkpoint {
        pub origin: String,
        pub size: u64,
        pub root: Hash,
    }

    impl Checkpoint {
        pub fn body(&self) -> String {
            format!(
                "{}\n{}\n{}\n",
                self.origin,
                self.size,
                B64.encode(self.root)
            )
        }
    }

    pub fn parse_checkpoint(text: &str) -> Result<Checkpoint, String> {
        let mut lines = text.split_terminator('\n');
        let (Some(origin), Some(size), Some(root)) = (lines.next(), lines.next(), lines.next())
        else {
            return Err("a checkpoint has an origin, a size and a root line".into());
        };
        if origin.is_empty()
            || size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || (size.len() > 1 && size.starts_with('0'))
        {
            return Err(format!("bad origin '{origin}' or size '{size}'"));
        }
        let root: Hash = B64
            .decode(root)
            .map_err(|e| e.to_string())?
            .try_into()
            .map_err(|_| "the root is not 32 bytes")?;
        Ok(Checkpoint {
            origin: origin.to_string(),
            size: size.parse().map_err(|_| "the size is too large")?,
            root,
        })
    }

    /// Opens a signed checkpoint: its body, if `key` signed it.
    pub fn open_checkpoint(note: &str, key: &NoteKey) -> Result<Checkpoint, String> {
        parse_checkpoint(&open_note(note, key)?)
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures and helpers

/// A git SHA other than [`GIT_SHA`].
const OTHER_SHA: &str = "fedcba9876543210fedcba9876543210fedcba98";
const TOKEN: &str = "ci-payments";
const TRUST_KEY: &str = "release-signer";

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap();
    b
}

fn pretty(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap()
}

/// The container image the evidence is about.
fn image_digest() -> String {
    digest_of(b"ghcr.io/acme/checkout-api:1.4.2 image manifest")
}

fn cyclonedx_sbom(components: &[(&str, &str)]) -> Vec<u8> {
    let components: Vec<Value> = components
        .iter()
        .map(|(name, version)| {
            json!({"type": "library", "name": name, "version": version,
                   "purl": format!("pkg:npm/{name}@{version}")})
        })
        .collect();
    pretty(&json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "metadata": {"component": {"type": "container", "name": "ghcr.io/acme/checkout-api"}},
        "components": components
    }))
}

fn grype_scan() -> Vec<u8> {
    pretty(&json!({
        "matches": [{
            "vulnerability": {"id": "CVE-2021-23337", "severity": "High"},
            "artifact": {"name": "lodash", "version": "4.17.20", "type": "npm"}
        }],
        "source": {"type": "image", "target": {"userInput": "ghcr.io/acme/checkout-api:1.4.2"}},
        "distro": {"name": "alpine", "version": "3.17"},
        "descriptor": {"name": "grype", "version": "0.74.0"}
    }))
}

fn openvex() -> Vec<u8> {
    pretty(&json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://example.com/vex/checkout-api-1.4.2",
        "author": "security@acme.example",
        "timestamp": "2025-03-14T09:26:53Z",
        "version": 1,
        "statements": [{
            "vulnerability": {"name": "CVE-2021-23337"},
            "products": [{"@id": "pkg:oci/checkout-api"}],
            "status": "not_affected",
            "justification": "vulnerable_code_not_in_execute_path"
        }]
    }))
}

fn slsa_provenance() -> Vec<u8> {
    let image = image_digest();
    pretty(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "ghcr.io/acme/checkout-api", "digest": {"sha256": &image["sha256:".len()..]}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {"buildType": "https://actions.github.io/buildtypes/workflow/v1"},
            "runDetails": {"builder": {"id": "https://github.com/actions/runner"}}
        }
    }))
}

/// The SPKI PEM of a fresh Ed25519 key.
fn ed25519_pem() -> String {
    use spki::EncodePublicKey as _;
    ed25519_dalek::SigningKey::from_bytes(&random32())
        .verifying_key()
        .to_public_key_pem(spki::der::pem::LineEnding::LF)
        .unwrap()
}

/// A record as pushed.
struct Pushed {
    id: String,
    digest: String,
    size: u64,
}

impl Pushed {
    fn of(record: &Value) -> Pushed {
        Pushed {
            id: str_field(record, "id"),
            digest: str_field(record, "digest"),
            size: record["size"].as_u64().unwrap(),
        }
    }
}

/// A vault holding a bit of everything the log accounts for: four records whose blobs have
/// facts (SBOM components, scan findings, VEX statements, provenance) and subjects, a token
/// and a trusted key; with the checkpoint saved after each of its four changes.
struct Fixture {
    vault: Vault,
    sbom: Pushed,
    scan: Pushed,
    vex: Pushed,
    provenance: Pushed,
    /// The verifier key an auditor pinned at the start.
    vkey: String,
    /// Signed notes after init, the push, the token and the trusted key (sizes 0, 8, 9, 10).
    checkpoints: Vec<String>,
}

impl Fixture {
    fn build() -> Fixture {
        let vault = Vault::initialised();
        let vkey = log_key(&vault)["vkey"].as_str().unwrap().to_string();
        let mut checkpoints = vec![checkpoint_note(&vault)];
        vault.write(
            "evidence/sbom.cdx.json",
            cyclonedx_sbom(&[("lodash", "4.17.20"), ("express", "4.19.2")]),
        );
        vault.write("evidence/grype.json", grype_scan());
        vault.write("evidence/openvex.json", openvex());
        vault.write("evidence/provenance.intoto.json", slsa_provenance());
        let image = image_digest();
        let records = vault.push_json(common::with_links(&["evidence", "--subject", &image]));
        let by_kind = |kind: &str| {
            Pushed::of(
                records
                    .iter()
                    .find(|r| r["kind"] == kind)
                    .unwrap_or_else(|| panic!("no {kind} record: {records:#?}")),
            )
        };
        let (sbom, scan, vex, provenance) = (
            by_kind("sbom"),
            by_kind("vuln-scan"),
            by_kind("vex"),
            by_kind("provenance"),
        );
        checkpoints.push(checkpoint_note(&vault));
        vault
            .run(["token", "create", "--name", TOKEN, "--role", "pusher"])
            .success();
        checkpoints.push(checkpoint_note(&vault));
        vault.write("release.pem", ed25519_pem());
        vault
            .run(["trust", "key", "add", TRUST_KEY, "--file", "release.pem"])
            .success();
        checkpoints.push(checkpoint_note(&vault));
        let sizes: Vec<u64> = checkpoints
            .iter()
            .map(|n| tlog::parse_checkpoint(n).unwrap().size)
            .collect();
        assert_eq!(sizes, [0, 8, 9, 10], "one checkpoint per change");
        Fixture {
            vault,
            sbom,
            scan,
            vex,
            provenance,
            vkey,
            checkpoints,
        }
    }

    /// A fresh vault with exactly this fixture's contents (a copy of its directory).
    fn copy(&self) -> Vault {
        let v = Vault::new();
        copy_dir(&self.vault.data_dir(), &v.data_dir());
        v
    }

    fn key(&self) -> NoteKey {
        tlog::parse_vkey(&self.vkey).unwrap()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// `evault --json log key`.
fn log_key(v: &Vault) -> Value {
    v.run(["--json", "log", "key"]).success().json()
}

/// The newest signed checkpoint's note (`evault log checkpoint`).
fn checkpoint_note(v: &Vault) -> String {
    v.run(["log", "checkpoint"]).success().stdout_text()
}

/// Every log entry (`evault log entries`): (index, entry text).
fn entries(v: &Vault) -> Vec<(u64, String)> {
    v.run(["log", "entries", "--limit", "100000"])
        .success()
        .stdout_text()
        .lines()
        .map(|line| {
            let e: Value = serde_json::from_str(line).unwrap();
            (e["index"].as_u64().unwrap(), str_field(&e, "entry"))
        })
        .collect()
}

/// The index of the newest entry about `subject`.
fn newest_entry(entries: &[(u64, String)], subject: &str) -> u64 {
    entries
        .iter()
        .rev()
        .find(|(_, e)| serde_json::from_str::<Value>(e).unwrap()["subject"] == subject)
        .unwrap_or_else(|| panic!("no entry about {subject}"))
        .0
}

fn hash_of(text: &str) -> Hash {
    hex::decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .unwrap_or_else(|| panic!("'{text}' is not a SHA-256 hash in hex"))
}

fn hashes_of(v: &Value) -> Vec<Hash> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array of hashes: {v}"))
        .iter()
        .map(|h| hash_of(h.as_str().unwrap()))
        .collect()
}

/// Canonical JSON as docs/log.md defines it: keys sorted, no whitespace.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(canonical).collect();
            format!("[{}]", items.join(","))
        }
        scalar => scalar.to_string(),
    }
}

/// Checks an inclusion proof (`log prove --json`, `GET /v1/log/proof/{id}`) from scratch with
/// the pinned key: the signed checkpoint, the leaf hash of the entry it carries, the audit path,
/// and that the entry is `record_id`'s ingestion. The entry, parsed.
#[track_caller]
fn check_inclusion(proof: &Value, key: &NoteKey, record_id: &str) -> Value {
    assert_eq!(proof["record_id"], record_id, "{proof:#}");
    let text = str_field(proof, "entry");
    let leaf = tlog::leaf_hash(text.as_bytes());
    assert_eq!(proof["leaf_hash"], hex::encode(leaf), "{proof:#}");
    let entry: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(canonical(&entry), text, "the entry is not canonical JSON");
    let index = proof["log_index"].as_u64().unwrap();
    assert_eq!(entry["subject"], format!("record/{record_id}"), "{entry:#}");
    assert_eq!(entry["index"], index, "{entry:#}");
    assert_eq!(entry["type"], "record.ingested", "{entry:#}");
    assert_eq!(entry["v"], 1, "{entry:#}");
    assert_eq!(entry["state"]["id"], record_id, "{entry:#}");
    let cp = tlog::open_checkpoint(&str_field(proof, "checkpoint"), key)
        .unwrap_or_else(|e| panic!("the proof's checkpoint: {e}\n{proof:#}"));
    assert_eq!(cp.origin, key.name);
    assert_eq!(proof["tree_size"], cp.size, "{proof:#}");
    assert_eq!(proof["root_hash"], hex::encode(cp.root), "{proof:#}");
    tlog::verify_inclusion(
        index,
        cp.size,
        &leaf,
        &hashes_of(&proof["hashes"]),
        &cp.root,
    )
    .unwrap_or_else(|e| panic!("the inclusion proof does not verify: {e}\n{proof:#}"));
    entry
}

/// Checks a consistency proof against the older checkpoint the caller kept (never the root the
/// proof claims for it) and the newer signed checkpoint it carries. The newer checkpoint.
#[track_caller]
fn check_consistency(proof: &Value, old: &Checkpoint, key: &NoteKey) -> Checkpoint {
    let new = tlog::open_checkpoint(&str_field(proof, "checkpoint"), key)
        .unwrap_or_else(|e| panic!("the proof's checkpoint: {e}\n{proof:#}"));
    assert_eq!(proof["from"], old.size, "{proof:#}");
    assert_eq!(proof["to"], new.size, "{proof:#}");
    assert_eq!(proof["from_root_hash"], hex::encode(old.root), "{proof:#}");
    assert_eq!(proof["root_hash"], hex::encode(new.root), "{proof:#}");
    tlog::verify_consistency(
        old.size,
        new.size,
        &old.root,
        &new.root,
        &hashes_of(&proof["hashes"]),
    )
    .unwrap_or_else(|e| panic!("the consistency proof does not verify: {e}\n{proof:#}"));
    new
}

/// Edits `index.db` directly, as someone with write access to the file would: the log's
/// append-only triggers (whatever `sqlite_master` lists) are dropped first. Rows changed.
#[track_caller]
fn tamper(v: &Vault, sql: &str) -> u64 {
    let conn = rusqlite::Connection::open(v.data_dir().join("index.db")).unwrap();
    conn.busy_timeout(Duration::from_secs(10)).unwrap();
    let triggers: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for t in &triggers {
        conn.execute_batch(&format!("DROP TRIGGER {t}")).unwrap();
    }
    conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
    conn.execute_batch(sql)
        .unwrap_or_else(|e| panic!("cannot run {sql}: {e}"));
    let changed = conn.total_changes();
    assert!(changed > 0, "the tampering changed nothing: {sql}");
    changed
}

fn query_i64(v: &Vault, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(v.data_dir().join("index.db")).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// `evault --json log verify ARGS...`: the run and its report.
fn log_verify(v: &Vault, args: &[&str]) -> (Run, Value) {
    let mut all = vec!["--json", "log", "verify"];
    all.extend_from_slice(args);
    let run = v.run(&all);
    let report = run.json();
    (run, report)
}

fn problems(report: &Value) -> Vec<String> {
    report["problems"]
        .as_array()
        .unwrap_or_else(|| panic!("no problems array: {report:#}"))
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}

/// How a tampering must be reported: every group of fragments appears within one problem line;
/// with `only`, the first group's line is the only problem.
struct Expect {
    lines: Vec<Vec<String>>,
    only: bool,
}

fn one_line(parts: &[String]) -> Expect {
    Expect {
        lines: vec![parts.to_vec()],
        only: true,
    }
}

fn lines(groups: &[&[String]]) -> Expect {
    Expect {
        lines: groups.iter().map(|g| g.to_vec()).collect(),
        only: false,
    }
}

/// `log verify --no-blobs` exits 4 and reports what `expect` says, and `fsck` exits 4 with
/// exactly the same log problems. `Err` says what is missing.
fn detected(v: &Vault, expect: &Expect) -> Result<(), String> {
    let (run, report) = log_verify(v, &["--no-blobs"]);
    let found = problems(&report);
    let mut faults = Vec::new();
    if run.code != 4 {
        faults.push(format!("`log verify` exited {}, not 4", run.code));
    }
    let error = format!(
        "error: the log verification found {} problem(s)",
        found.len()
    );
    if run.stderr.trim_end() != error {
        faults.push(format!("`log verify` stderr is not `{error}`"));
    }
    for group in &expect.lines {
        if !found
            .iter()
            .any(|p| group.iter().all(|part| p.contains(part.as_str())))
        {
            faults.push(format!("no problem line contains all of {group:?}"));
        }
    }
    if expect.only && found.len() != 1 {
        faults.push(format!("expected exactly one problem, got {}", found.len()));
    }
    let fsck = v.run(["--json", "fsck"]);
    if fsck.code != 4 {
        faults.push(format!("`fsck` exited {}, not 4", fsck.code));
    }
    let fsck_report = fsck.json();
    if fsck_report["log_problems"] != report["problems"] {
        faults.push(format!(
            "`fsck` log_problems differ from `log verify`'s problems: {:#}",
            fsck_report["log_problems"]
        ));
    }
    // What a person reads: one `problem:` line each from `log verify`, `log:` from `fsck`.
    let human = v.run(["log", "verify", "--no-blobs"]);
    let shown: Vec<&str> = human
        .stdout
        .split(|b| *b == b'\n')
        .filter_map(|l| std::str::from_utf8(l).ok()?.strip_prefix("problem: "))
        .collect();
    if human.code != 4 || shown != found {
        faults.push(format!(
            "`log verify` (exit {}) does not print each problem on a `problem:` line",
            human.code
        ));
    }
    let fsck = v.run(["fsck"]);
    let shown: Vec<&str> = fsck
        .stdout
        .split(|b| *b == b'\n')
        .filter_map(|l| std::str::from_utf8(l).ok()?.strip_prefix("log: "))
        .collect();
    if fsck.code != 4 || shown != found {
        faults.push(format!(
            "`fsck` (exit {}) does not print each problem on a `log:` line",
            fsck.code
        ));
    }
    if faults.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\nlog verify problems:\n  {}\n{run:?}",
            faults.join("\n"),
            found.join("\n  ")
        ))
    }
}

/// Runs `evault ARGS...` in remote mode against `server` with `token`.
fn remote(server: &Server, token: &str, args: &[&str]) -> Run {
    server_common::remote(server, Some(token), args)
}

// ---------------------------------------------------------------------------------------------
// 1. The independent verifier checks itself

/// RFC 6962 reference vectors (certificate-transparency's Merkle tree tests): eight leaves, the
/// root of every prefix, an inclusion proof and two consistency proofs.
const VECTOR_LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];
const VECTOR_ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

/// The example key and note of Go's `golang.org/x/mod/sumdb/note`.
const GO_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const GO_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                       then you don't know what your problem is.\n";
const GO_SIGNATURE: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

#[test]
fn the_independent_verifier_reproduces_the_reference_vectors() {
    let leaves: Vec<Hash> = VECTOR_LEAVES
        .iter()
        .map(|l| tlog::leaf_hash(&hex::decode(l).unwrap()))
        .collect();
    for (n, want) in VECTOR_ROOTS.iter().enumerate() {
        assert_eq!(
            hex::encode(tlog::root(&leaves[..=n])),
            *want,
            "root of {}",
            n + 1
        );
    }
    assert_eq!(tlog::root(&[]), <[u8; 32]>::from(Sha256::digest(b"")));
    let h = |s: &str| hash_of(s);
    let root8 = h(VECTOR_ROOTS[7]);

    let inclusion = [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]
    .map(h);
    assert_eq!(tlog::path(5, &leaves), inclusion);
    tlog::verify_inclusion(5, 8, &leaves[5], &inclusion, &root8).unwrap();
    assert!(tlog::verify_inclusion(4, 8, &leaves[5], &inclusion, &root8).is_err());
    tlog::verify_inclusion(2, 3, &leaves[2], &[h(VECTOR_ROOTS[1])], &h(VECTOR_ROOTS[2])).unwrap();

    let six_to_eight = [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ]
    .map(h);
    assert_eq!(tlog::consistency(6, &leaves), six_to_eight);
    tlog::verify_consistency(6, 8, &h(VECTOR_ROOTS[5]), &root8, &six_to_eight).unwrap();
    assert!(tlog::verify_consistency(6, 8, &h(VECTOR_ROOTS[4]), &root8, &six_to_eight).is_err());
    let two_to_five = [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ]
    .map(h);
    assert_eq!(tlog::consistency(2, &leaves[..5]), two_to_five);
    tlog::verify_consistency(2, 5, &h(VECTOR_ROOTS[1]), &h(VECTOR_ROOTS[4]), &two_to_five).unwrap();

    // Go's signed-note example: the key parses, the note opens, and signing reproduces it byte
    // for byte (Ed25519 is deterministic).
    let key = tlog::parse_vkey(GO_VKEY).unwrap();
    assert_eq!(key.vkey(), GO_VKEY);
    let note = format!("{GO_TEXT}\n{GO_SIGNATURE}");
    assert_eq!(tlog::open_note(&note, &key).unwrap(), GO_TEXT);
    let (signer, sk) = tlog::parse_signer(GO_SKEY).unwrap();
    assert_eq!(signer.vkey(), GO_VKEY);
    assert_eq!(tlog::sign_note(GO_TEXT, &signer, &sk), note);
    assert!(tlog::open_note(&note.replace("cryptography", "cryptographY"), &key).is_err());
    // A verifier key whose id is not its key's, or whose key is cut short, is refused.
    assert!(tlog::parse_vkey(&GO_VKEY.replace("c74f20a3", "c74f20a4")).is_err());
    assert!(tlog::parse_vkey(&GO_VKEY[..GO_VKEY.len() - 4]).is_err());
    assert!(tlog::parse_vkey("PeterNeumann+c74f20a3").is_err());
}

#[test]
fn the_independent_verifier_accepts_every_proof_of_a_seven_leaf_tree_and_rejects_wrong_ones() {
    // Seven leaves, and an eighth only to know the root of a tree one larger.
    let entries: Vec<String> = (0..8)
        .map(|i| format!("{{\"index\":{i},\"type\":\"hand.made\"}}"))
        .collect();
    let leaves: Vec<Hash> = entries
        .iter()
        .map(|e| tlog::leaf_hash(e.as_bytes()))
        .collect();
    let roots: Vec<Hash> = (0..=8).map(|n| tlog::root(&leaves[..n])).collect();
    // The tree by hand: ((01)(23))((45)6).
    let n = |l: &Hash, r: &Hash| tlog::node_hash(l, r);
    let by_hand = n(
        &n(&n(&leaves[0], &leaves[1]), &n(&leaves[2], &leaves[3])),
        &n(&n(&leaves[4], &leaves[5]), &leaves[6]),
    );
    assert_eq!(roots[7], by_hand);
    let flipped = |proof: &[Hash], i: usize| {
        let mut p = proof.to_vec();
        p[i][0] ^= 1;
        p
    };

    for size in 1..=7usize {
        let root = roots[size];
        for index in 0..size {
            let (i, s) = (index as u64, size as u64);
            let path = tlog::path(index, &leaves[..size]);
            let ok = |p: &[Hash], i: u64, s: u64, leaf: &Hash, r: &Hash| {
                tlog::verify_inclusion(i, s, leaf, p, r).is_ok()
            };
            assert!(ok(&path, i, s, &leaves[index], &root), "{index} in {size}");
            for k in 0..path.len() {
                assert!(!ok(&flipped(&path, k), i, s, &leaves[index], &root));
            }
            if !path.is_empty() {
                assert!(!ok(&path[1..], i, s, &leaves[index], &root));
            }
            let mut longer = path.clone();
            longer.push(leaves[0]);
            assert!(!ok(&longer, i, s, &leaves[index], &root));
            let other = leaves[(index + 1) % 7];
            assert!(!ok(&path, i, s, &other, &root), "wrong leaf {index}/{size}");
            if size > 1 {
                assert!(!ok(&path, (i + 1) % s, s, &leaves[index], &root));
            }
            assert!(!ok(&path, i, s + 1, &leaves[index], &roots[size + 1]));
            assert!(!ok(&path, i, s, &leaves[index], &roots[size - 1]));
            assert!(
                !ok(&path, s, s, &leaves[index], &root),
                "index out of the tree"
            );
        }
        for old in 0..=size {
            let (m, s) = (old as u64, size as u64);
            let proof = if old == 0 {
                Vec::new()
            } else {
                tlog::consistency(old, &leaves[..size])
            };
            let ok = |p: &[Hash], m: u64, r1: &Hash, r2: &Hash| {
                tlog::verify_consistency(m, s, r1, r2, p).is_ok()
            };
            assert!(ok(&proof, m, &roots[old], &root), "{old} -> {size}");
            for k in 0..proof.len() {
                assert!(!ok(&flipped(&proof, k), m, &roots[old], &root));
            }
            if old > 0 {
                assert!(
                    !ok(&proof, m, &roots[old], &roots[size - 1]),
                    "{old}->{size}"
                );
                let wrong_old = tlog::leaf_hash(b"not the old tree");
                assert!(!ok(&proof, m, &wrong_old, &root), "{old} -> {size}");
            }
            if 0 < old && old < size {
                assert!(!ok(&proof[1..], m, &roots[old], &root));
                let mut longer = proof.clone();
                longer.push(leaves[0]);
                assert!(!ok(&longer, m, &roots[old], &root));
                if old + 1 < size {
                    assert!(!ok(&proof, m + 1, &roots[old + 1], &root), "{old}->{size}");
                }
            }
            if old == size {
                assert!(
                    !ok(&[leaves[0]], m, &root, &root),
                    "a same-size proof is empty"
                );
            }
        }
        assert!(tlog::verify_consistency(size as u64 + 1, size as u64, &root, &root, &[]).is_err());
    }

    // A checkpoint of the tree, signed with a key made here, opens with that key only.
    let (key, sk, _) = tlog::new_signer("example.com/log", random32());
    let (stranger, _, _) = tlog::new_signer("example.com/log", random32());
    let cp = Checkpoint {
        origin: key.name.clone(),
        size: 7,
        root: roots[7],
    };
    let note = tlog::sign_note(&cp.body(), &key, &sk);
    assert_eq!(tlog::open_checkpoint(&note, &key).unwrap(), cp);
    assert!(tlog::open_checkpoint(&note, &stranger).is_err());
    let forged = note.replace("\n7\n", "\n6\n");
    assert!(tlog::open_checkpoint(&forged, &key).is_err());
    let renamed = note.replace("\u{2014} example.com/log ", "\u{2014} example.org/log ");
    assert!(tlog::open_checkpoint(&renamed, &key).is_err());
}

// ---------------------------------------------------------------------------------------------
// 2. Proofs from the binary

#[test]
fn every_record_is_proven_in_a_signed_tree_that_only_grows() {
    let v = Vault::initialised();
    let stranger = Vault::initialised();

    // The key an auditor pins: name+id+key, as signed notes spell it.
    let key_json = log_key(&v);
    let key = tlog::parse_vkey(&str_field(&key_json, "vkey")).unwrap();
    assert_eq!(key_json["origin"], key.name.as_str());
    assert_eq!(key_json["key_id"], hex::encode(key.id));
    assert_eq!(key_json["algorithm"], "ed25519");
    assert_eq!(key_json["public_key"], common::base64(key.key.as_bytes()));
    let human = v.run(["log", "key"]).success().stdout_text();
    assert_eq!(human.lines().next(), Some(key.vkey().as_str()), "{human}");

    // `init` signed the empty tree.
    let mut saved: Vec<Checkpoint> = Vec::new();
    let save = |saved: &mut Vec<Checkpoint>| {
        let json = v.run(["--json", "log", "checkpoint"]).success().json();
        let note = str_field(&json, "note");
        assert_eq!(
            checkpoint_note(&v),
            note,
            "the human output is the note itself"
        );
        let cp = tlog::open_checkpoint(&note, &key).unwrap_or_else(|e| panic!("{e}: {note}"));
        assert_eq!(cp.origin, key.name);
        assert_eq!(json["origin"], cp.origin.as_str());
        assert_eq!(json["size"], cp.size);
        assert_eq!(json["root_hash"], hex::encode(cp.root));
        saved.push(cp);
    };
    save(&mut saved);
    assert_eq!(saved[0].size, 0);
    assert_eq!(saved[0].root, <[u8; 32]>::from(Sha256::digest(b"")));

    // Three pushes, a token and a trusted key: a checkpoint after each.
    let image = image_digest();
    let mut records = Vec::new();
    v.write("sbom.cdx.json", cyclonedx_sbom(&[("lodash", "4.17.20")]));
    records.push(v.push_one("sbom.cdx.json"));
    save(&mut saved);
    v.write("scans/grype.json", grype_scan());
    v.write("scans/openvex.json", openvex());
    records.extend(v.push_json(common::with_links(&["scans", "--subject", &image])));
    save(&mut saved);
    v.write("provenance.json", slsa_provenance());
    records.push(v.push_one("provenance.json"));
    save(&mut saved);
    v.run(["token", "create", "--name", TOKEN, "--role", "pusher"])
        .success();
    v.write("release.pem", ed25519_pem());
    v.run(["trust", "key", "add", TRUST_KEY, "--file", "release.pem"])
        .success();
    save(&mut saved);
    let sizes: Vec<u64> = saved.iter().map(|c| c.size).collect();
    assert_eq!(
        sizes,
        [0, 2, 6, 8, 10],
        "two entries per new record, one per token or key"
    );
    let newest = saved.last().unwrap().clone();

    // Each record's ingestion is in the newest signed tree.
    let stranger_key = str_field(&log_key(&stranger), "vkey");
    for record in &records {
        let id = str_field(record, "id");
        let proof = v.run(["--json", "log", "prove", &id]).success().json();
        let entry = check_inclusion(&proof, &key, &id);
        assert_eq!(proof["tree_size"], newest.size);
        assert_eq!(entry["actor"], ACTOR);
        assert_eq!(entry["state"]["digest"], record["digest"]);
        assert_eq!(entry["state"]["git_sha"], GIT_SHA);
        assert_eq!(entry["state"]["blueprint_name"], BLUEPRINT);
        assert_eq!(entry["state"]["blueprint_version"], VERSION);
        assert_eq!(entry["state"]["verification"]["status"], "unsigned");
        // A unique prefix proves the same entry, and the human output shows the same proof.
        let short = v.run(["--json", "log", "prove", &id[..8]]).success().json();
        assert_eq!(short, proof);
        let text = v.run(["log", "prove", &id]).success().stdout_text();
        assert!(
            text.starts_with(&format!(
                "record {id} is entry {} of the log; proven against the signed checkpoint of {} \
                 entries\n",
                proof["log_index"], newest.size
            )),
            "{text}"
        );
        // Proven with a key the auditor does not trust, the same proof is refused.
        v.run(["log", "prove", &id, "--key", &stranger_key])
            .fails(4, &["the proof's checkpoint", "is not signed by"]);
    }

    // The entries: complete, in order, canonical, and they hash to the signed root.
    let all = entries(&v);
    let indexes: Vec<u64> = all.iter().map(|(i, _)| *i).collect();
    assert_eq!(indexes, (0..newest.size).collect::<Vec<_>>());
    let leaves: Vec<Hash> = all
        .iter()
        .map(|(_, e)| tlog::leaf_hash(e.as_bytes()))
        .collect();
    assert_eq!(
        tlog::root(&leaves),
        newest.root,
        "the entries hash to the root"
    );
    for cp in &saved {
        assert_eq!(
            tlog::root(&leaves[..cp.size as usize]),
            cp.root,
            "at {}",
            cp.size
        );
    }
    let mut about: Vec<(String, String)> = Vec::new();
    for (i, text) in &all {
        let e: Value = serde_json::from_str(text).unwrap();
        assert_eq!(&canonical(&e), text, "entry {i} is not canonical");
        assert_eq!(e["index"], *i);
        assert_eq!(e["v"], 1);
        assert_eq!(e["actor"], ACTOR);
        assert!(e.get("backfill").is_none(), "{e:#}");
        about.push((str_field(&e, "type"), str_field(&e, "subject")));
    }
    about.sort();
    let mut expected: Vec<(String, String)> = records
        .iter()
        .flat_map(|r| {
            [
                (
                    "blob.stored".to_string(),
                    format!("blob/{}", r["digest"].as_str().unwrap()),
                ),
                (
                    "record.ingested".to_string(),
                    format!("record/{}", r["id"].as_str().unwrap()),
                ),
            ]
        })
        .collect();
    expected.push(("token.created".into(), format!("token/{TOKEN}")));
    expected.push(("trust.key.added".into(), format!("trust-key/{TRUST_KEY}")));
    expected.sort();
    assert_eq!(about, expected);
    // A page is a slice of the whole.
    let page: Vec<String> = v
        .run(["log", "entries", "--start", "3", "--limit", "2"])
        .success()
        .stdout_text()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["entry"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(page, [all[3].1.clone(), all[4].1.clone()]);

    // Every older checkpoint is extended by the newest, and by every later one, as proven by
    // the binary and checked here against the checkpoints kept.
    for (i, old) in saved.iter().enumerate() {
        let proof = v
            .run([
                "--json",
                "log",
                "consistency",
                "--from",
                &old.size.to_string(),
            ])
            .success()
            .json();
        assert_eq!(check_consistency(&proof, old, &key), newest);
        for new in &saved[i + 1..] {
            let (from, to) = (old.size.to_string(), new.size.to_string());
            let proof = v
                .run(["--json", "log", "consistency", "--from", &from, "--to", &to])
                .success()
                .json();
            assert_eq!(&check_consistency(&proof, old, &key), new);
            // The same proof does not tie a different older tree to the newer one.
            if old.size > 0 {
                let other = Checkpoint {
                    root: saved[i - 1].root,
                    ..old.clone()
                };
                assert!(
                    tlog::verify_consistency(
                        other.size,
                        new.size,
                        &other.root,
                        &new.root,
                        &hashes_of(&proof["hashes"])
                    )
                    .is_err()
                );
            }
        }
    }
    let beyond = (newest.size + 1).to_string();
    v.run(["log", "consistency", "--from", &beyond]).fails(
        2,
        &[&format!("cannot prove consistency from {beyond} entries")],
    );
    v.run(["log", "consistency", "--from", "0", "--to", "1"])
        .fails(3, &["no checkpoint was signed at 1 entries"]);
}

// ---------------------------------------------------------------------------------------------
// 3. Tampering

#[test]
fn an_untampered_vault_verifies_and_a_token_use_counter_is_not_state() {
    let f = Fixture::build();
    let v = &f.vault;
    let newest = tlog::open_checkpoint(f.checkpoints.last().unwrap(), &f.key()).unwrap();

    let run = v.run(["log", "verify"]).success();
    assert!(
        run.stdout_text()
            .ends_with("ok: the log verifies and the vault agrees with it\n"),
        "{run:?}"
    );
    let (run, report) = log_verify(v, &[]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(report["problems"], json!([]));
    assert_eq!(report["origin"], f.key().name.as_str());
    assert_eq!(report["key_id"], hex::encode(f.key().id));
    assert_eq!(report["size"], newest.size);
    assert_eq!(report["root_hash"], hex::encode(newest.root));
    assert_eq!(report["checkpoints_checked"], 4);
    // Four records, four blobs, one token, one trusted key.
    assert_eq!(report["objects_checked"], 10);
    assert_eq!(report["blobs_checked"], 4);
    let sizes = [&f.sbom, &f.scan, &f.vex, &f.provenance].map(|p| p.size);
    assert_eq!(report["bytes_checked"], sizes.iter().sum::<u64>());

    // Pinned to the key and to every checkpoint an auditor kept along the way.
    for (i, note) in f.checkpoints.iter().enumerate() {
        let path = format!("checkpoint-{i}");
        v.write(&path, note);
        let (run, report) = log_verify(v, &["--checkpoint", &path, "--key", &f.vkey]);
        assert_eq!(run.code, 0, "{run:?}");
        let old = tlog::parse_checkpoint(note).unwrap();
        assert_eq!(
            report["old_checkpoint"],
            json!({"size": old.size, "root_hash": hex::encode(old.root), "consistent": true})
        );
    }
    let fsck = v.run(["--json", "fsck"]).success().json();
    assert_eq!(fsck["problems"], json!([]));
    assert_eq!(fsck["log_problems"], json!([]));

    // Reads bump `tokens.last_used_at`: exempt by design, so not reported.
    let changed = tamper(
        v,
        &format!(
            "UPDATE tokens SET last_used_at = '2031-01-01T00:00:00.000000Z' WHERE name = '{TOKEN}'"
        ),
    );
    assert_eq!(changed, 1);
    let (run, report) = log_verify(v, &["--no-blobs"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(report["problems"], json!([]));
    v.run(["fsck"]).success();
}

#[test]
fn every_edit_insert_or_delete_behind_the_logs_back_is_named() {
    let f = Fixture::build();
    let all = entries(&f.vault);
    let size = all.len() as u64;
    let at = |subject: String| newest_entry(&all, &subject).to_string();
    let (sbom, scan, vex, prov) = (&f.sbom, &f.scan, &f.vex, &f.provenance);
    let record_entry = |p: &Pushed| at(format!("record/{}", p.id));
    let blob_entry = |p: &Pushed| at(format!("blob/{}", p.digest));
    let token_entry = at(format!("token/{TOKEN}"));
    let key_entry = at(format!("trust-key/{TRUST_KEY}"));
    let image = image_digest();
    let forged = "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0";
    let attacker_secret_hash = common::sha256_hex(b"evt_attacker");
    let s = |x: &str| x.to_string();
    let edited = s("(edited behind the log's back?)");
    let facts = |p: &Pushed| {
        one_line(&[
            format!("blob {}: `facts` is \"sha256:", p.digest),
            format!("in log entry {} {edited}", blob_entry(p)),
        ])
    };
    let sbom_entry: u64 = record_entry(sbom).parse().unwrap();
    // Perfect subtrees of the tree: `size >> level` at each level.
    let nodes: u64 = (0..64).map(|level| size >> level).sum();

    let cases: Vec<(&str, String, Expect)> = vec![
        (
            "records: a git SHA edited",
            format!(
                "UPDATE records SET git_sha = '{OTHER_SHA}' WHERE id = '{}'",
                sbom.id
            ),
            one_line(&[format!(
                "record {}: `git_sha` is \"{OTHER_SHA}\" in the index but \"{GIT_SHA}\" in log \
                 entry {} {edited}",
                sbom.id,
                record_entry(sbom)
            )]),
        ),
        (
            "records: the producer edited",
            format!(
                "UPDATE records SET producer = 'someone-else' WHERE id = '{}'",
                vex.id
            ),
            one_line(&[format!(
                "record {}: `producer` is \"someone-else\" in the index but \"{ACTOR}\" in log \
                 entry {}",
                vex.id,
                record_entry(vex)
            )]),
        ),
        (
            "record_subjects: an artifact digest edited",
            format!(
                "UPDATE record_subjects SET digest = '{}' WHERE record_id = '{}'",
                digest_of(b"another image"),
                scan.id
            ),
            one_line(&[format!(
                "record {}: `subjects` is [\"{}\"] in the index but [\"{image}\"] in log entry {} \
                 {edited}",
                scan.id,
                digest_of(b"another image"),
                record_entry(scan)
            )]),
        ),
        (
            "blobs: a size edited",
            format!(
                "UPDATE blobs SET size = size + 1 WHERE digest = '{}'",
                sbom.digest
            ),
            one_line(&[format!(
                "blob {}: `size` is {} in the index but {} in log entry {} {edited}",
                sbom.digest,
                sbom.size + 1,
                sbom.size,
                blob_entry(sbom)
            )]),
        ),
        (
            "blob_facts: a count edited",
            format!(
                "UPDATE blob_facts SET components_total = 99 WHERE digest = '{}'",
                sbom.digest
            ),
            facts(sbom),
        ),
        (
            "components: a version edited",
            format!(
                "UPDATE components SET version = '4.17.21' WHERE digest = '{}' AND name = 'lodash'",
                sbom.digest
            ),
            facts(sbom),
        ),
        (
            "components: a component inserted",
            format!(
                "INSERT INTO components (digest, name, version, purl, licenses, hashes) \
                 VALUES ('{}', 'left-pad', '1.3.0', 'pkg:npm/left-pad@1.3.0', '[]', '{{}}')",
                sbom.digest
            ),
            facts(sbom),
        ),
        (
            "findings: a severity lowered",
            format!(
                "UPDATE findings SET severity = 'low' WHERE digest = '{}'",
                scan.digest
            ),
            facts(scan),
        ),
        (
            "findings: a finding deleted",
            format!("DELETE FROM findings WHERE digest = '{}'", scan.digest),
            facts(scan),
        ),
        (
            "vex_statements: a status edited",
            format!(
                "UPDATE vex_statements SET status = 'fixed' WHERE digest = '{}'",
                vex.digest
            ),
            facts(vex),
        ),
        (
            "provenance: the builder edited",
            format!(
                "UPDATE provenance SET builder_id = 'https://evil.example/builder' WHERE digest = '{}'",
                prov.digest
            ),
            facts(prov),
        ),
        (
            "tokens: a role raised",
            format!("UPDATE tokens SET role = 'admin' WHERE name = '{TOKEN}'"),
            one_line(&[format!(
                "token {TOKEN}: `role` is \"admin\" in the index but \"pusher\" in log entry \
                 {token_entry} {edited}"
            )]),
        ),
        (
            "tokens: a secret hash replaced",
            format!(
                "UPDATE tokens SET secret_hash = '{attacker_secret_hash}' WHERE name = '{TOKEN}'"
            ),
            one_line(&[
                format!("token {TOKEN}: `secret_hash` is \"{attacker_secret_hash}\" in the index"),
                format!("in log entry {token_entry}"),
            ]),
        ),
        (
            "tokens: an expiry set far away",
            format!(
                "UPDATE tokens SET expires_at = '2099-01-01T00:00:00.000000Z' WHERE name = '{TOKEN}'"
            ),
            one_line(&[format!(
                "token {TOKEN}: `expires_at` is \"2099-01-01T00:00:00.000000Z\" in the index but \
                 null in log entry {token_entry}"
            )]),
        ),
        (
            "trust_keys: the trusted public key replaced",
            format!(
                "UPDATE trust_keys SET public_key = '{}' WHERE name = '{TRUST_KEY}'",
                ed25519_pem()
            ),
            one_line(&[
                format!("trusted key {TRUST_KEY}: `public_key` is \"-----BEGIN PUBLIC KEY-----"),
                format!("in log entry {key_entry} {edited}"),
            ]),
        ),
        (
            "trust_keys: scopes widened",
            format!("UPDATE trust_keys SET scopes = '[\"*\"]' WHERE name = '{TRUST_KEY}'"),
            one_line(&[format!(
                "trusted key {TRUST_KEY}: `scopes` is \"[\\\"*\\\"]\" in the index but \"[]\" in \
                 log entry {key_entry}"
            )]),
        ),
        (
            "record_verification: a verdict upgraded",
            format!(
                "UPDATE record_verification SET status = 'verified', verified_by = 'key {TRUST_KEY}' \
                 WHERE record_id = '{}'",
                prov.id
            ),
            one_line(&[
                format!("record {}: `verification` is {{", prov.id),
                format!("in log entry {} {edited}", record_entry(prov)),
            ]),
        ),
        (
            "record_retention: kept for less time, so the sweeper would delete it early",
            format!(
                "UPDATE record_retention SET retain_until = '2000-01-01T00:00:00.000000Z' \
                 WHERE record_id = '{}'",
                prov.id
            ),
            one_line(&[
                format!("record {}: `retention` is {{", prov.id),
                "2000-01-01T00:00:00.000000Z".to_string(),
                format!("in log entry {} {edited}", record_entry(prov)),
            ]),
        ),
        (
            "records: a record deleted with its rows",
            format!(
                "DELETE FROM record_subjects WHERE record_id = '{id}'; \
                 DELETE FROM record_verification WHERE record_id = '{id}'; \
                 DELETE FROM record_retention WHERE record_id = '{id}'; \
                 DELETE FROM records WHERE id = '{id}';",
                id = sbom.id
            ),
            one_line(&[format!(
                "record {} is recorded by log entry {} but is missing from the index (deleted \
                 behind the log's back?)",
                sbom.id,
                record_entry(sbom)
            )]),
        ),
        (
            "records: a forged record inserted",
            format!(
                "INSERT INTO records (id, digest, kind, format, blueprint_name, blueprint_version, \
                 git_sha, producer, ingested_at, source_path) \
                 SELECT '{forged}', digest, kind, format, blueprint_name, blueprint_version, \
                 git_sha, producer, ingested_at, 'approval.json' FROM records WHERE id = '{}'",
                sbom.id
            ),
            one_line(&[format!(
                "record {forged} is in the index but no log entry records it (inserted behind the \
                 log's back?)"
            )]),
        ),
        (
            "record_subjects: a row for no record",
            format!(
                "INSERT INTO record_subjects (record_id, digest) VALUES ('{forged}', '{image}')"
            ),
            one_line(&[format!(
                "1 row(s) of record_subjects belong to no entry of records (e.g. {forged}); \
                 inserted behind the log's back?"
            )]),
        ),
        (
            "log_entries: an entry in the middle deleted",
            s("DELETE FROM log_entries WHERE idx = 3"),
            lines(&[
                &[s("log entry 3 is missing (deleted?)")],
                &[s("the signed checkpoint at 8 entries has root")],
            ]),
        ),
        (
            "log_entries: the last entry deleted",
            format!("DELETE FROM log_entries WHERE idx = {}", size - 1),
            lines(&[
                &[format!(
                    "a checkpoint is signed for {size} entries but the log holds only {} \
                     (entries removed from the end?)",
                    size - 1
                )],
                &[format!(
                    "trusted key {TRUST_KEY} is in the index but no log entry records it"
                )],
            ]),
        ),
        (
            "log_entries: an entry's text edited",
            format!(
                "UPDATE log_entries SET entry = replace(entry, '{GIT_SHA}', '{OTHER_SHA}') \
                 WHERE idx = {sbom_entry}"
            ),
            lines(&[
                &[format!(
                    "the stored hash of subtree (level 0, index {sbom_entry}) does not match the \
                     entries"
                )],
                &[
                    s("the signed checkpoint at 8 entries has root"),
                    s("(entries edited, removed or reordered)"),
                ],
                &[s("the signed checkpoint at 10 entries has root")],
                &[format!(
                    "record {}: `git_sha` is \"{GIT_SHA}\" in the index but \"{OTHER_SHA}\" in \
                     log entry {sbom_entry}",
                    sbom.id
                )],
            ]),
        ),
        (
            "log_checkpoints: the newest checkpoint deleted",
            format!("DELETE FROM log_checkpoints WHERE size = {size}"),
            one_line(&[format!(
                "log entries {}\u{2013}{} are covered by no signed checkpoint (appended behind the \
                 vault's back?)",
                size - 1,
                size - 1
            )]),
        ),
        (
            "log_checkpoints: a signed root replaced",
            format!(
                "UPDATE log_checkpoints SET note = replace(note, '{}', '{}') WHERE size = 8",
                common::base64(&tlog::parse_checkpoint(&f.checkpoints[1]).unwrap().root),
                common::base64(&[7u8; 32])
            ),
            one_line(&[s("checkpoint at 8 entries: "), s("does not verify")]),
        ),
        (
            "records: the entry named as a record's ingestion changed",
            format!(
                "UPDATE records SET log_index = log_index + 1 WHERE id = '{}'",
                sbom.id
            ),
            one_line(&[
                format!("record {}", sbom.id),
                s("as its ingestion, but that is log entry"),
            ]),
        ),
        (
            "log_nodes: a stored subtree hash edited",
            s("UPDATE log_nodes SET hash = zeroblob(32) WHERE level = 1 AND idx = 1"),
            one_line(&[s(
                "the stored hash of subtree (level 1, index 1) does not match the entries",
            )]),
        ),
        (
            "log_nodes: a stored subtree hash deleted",
            s("DELETE FROM log_nodes WHERE level = 2 AND idx = 0"),
            lines(&[
                &[s(
                    "the stored hash of subtree (level 2, index 0) is missing for the entries",
                )],
                &[format!(
                    "the log stores {} subtree hashes where its {size} entries make {nodes}",
                    nodes - 1
                )],
            ]),
        ),
    ];

    let mut failures = Vec::new();
    for (name, sql, expect) in &cases {
        let v = f.copy();
        tamper(&v, sql);
        if let Err(e) = detected(&v, expect) {
            failures.push(format!("--- {name}\n{sql}\n{e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} tamperings were not reported as expected:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn a_deleted_older_checkpoint_is_named() {
    let f = Fixture::build();
    for size in [8, 9, 0] {
        let v = f.copy();
        tamper(
            &v,
            &format!("DELETE FROM log_checkpoints WHERE size = {size}"),
        );
        detected(
            &v,
            &one_line(&["checkpoint".to_string(), format!("{size} entries")]),
        )
        .unwrap_or_else(|e| panic!("the checkpoint at {size} entries was deleted:\n{e}"));
    }
}

#[test]
fn deleted_log_metadata_is_reported_and_never_launders_an_edit() {
    let f = Fixture::build();
    let v = f.copy();
    v.write("kept.checkpoint", f.checkpoints.last().unwrap());
    tamper(
        &v,
        &format!(
            "UPDATE records SET git_sha = '{OTHER_SHA}' WHERE id = '{}'; DELETE FROM log_meta;",
            f.sbom.id
        ),
    );
    let (run, report) = log_verify(
        &v,
        &[
            "--no-blobs",
            "--checkpoint",
            "kept.checkpoint",
            "--key",
            &f.vkey,
        ],
    );
    let found = problems(&report);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(
        found.iter().any(
            |p| p.starts_with(&format!("record {}: `git_sha`", f.sbom.id))
                || p.starts_with(
                    "the log holds entries or checkpoints but the index records no key"
                )
        ),
        "{found:#?}"
    );
    assert_eq!(
        entries(&v).len(),
        10,
        "nothing may be appended by a verification"
    );
    // Nor may a change, or `init`, start the log again over its history.
    let needle = "its metadata was deleted behind the log's back";
    v.run(["token", "create", "--name", "late", "--role", "auditor"])
        .fails(4, &[needle]);
    v.init().fails(4, &[needle]);
    assert_eq!(entries(&v).len(), 10);
}

#[test]
fn replaced_or_lost_blob_bytes_are_named_by_digest() {
    let f = Fixture::build();
    let other_sbom = cyclonedx_sbom(&[("lodash", "4.17.21")]);
    let cases: Vec<(&str, &Pushed, Option<Vec<u8>>, String)> = vec![
        (
            "valid zstd of other content",
            &f.sbom,
            Some(common::zstd(&other_sbom)),
            format!(
                "blob {} is corrupt: stored bytes hash to {}",
                f.sbom.digest,
                digest_of(&other_sbom)
            ),
        ),
        (
            "garbage bytes",
            &f.scan,
            Some(b"not zstd at all".to_vec()),
            format!("blob {} is corrupt", f.scan.digest),
        ),
        (
            "the file deleted",
            &f.vex,
            None,
            format!("blob {} is missing from the store", f.vex.digest),
        ),
    ];
    for (name, blob, bytes, message) in cases {
        let v = f.copy();
        let file = v.blob_file(&blob.digest);
        match bytes {
            Some(b) => fs::write(&file, b).unwrap(),
            None => fs::remove_file(&file).unwrap(),
        }
        let (run, report) = log_verify(&v, &[]);
        assert_eq!(run.code, 4, "{name}: {run:?}");
        let found = problems(&report);
        assert_eq!(found.len(), 1, "{name}: {found:#?}");
        assert!(found[0].starts_with(&message), "{name}: {found:#?}");
        // Without the blobs, the index still agrees with the log.
        let (run, _) = log_verify(&v, &["--no-blobs"]);
        assert_eq!(run.code, 0, "{name}: {run:?}");

        let fsck = v.run(["--json", "fsck"]);
        assert_eq!(fsck.code, 4, "{name}: {fsck:?}");
        let report = fsck.json();
        assert_eq!(report["log_problems"], json!([]), "{name}");
        let blob_problems = report["problems"].as_array().unwrap();
        assert_eq!(blob_problems.len(), 1, "{name}: {report:#}");
        assert_eq!(blob_problems[0]["digest"], blob.digest.as_str());
        let fault = if name == "the file deleted" {
            "missing"
        } else {
            "corrupt"
        };
        assert_eq!(blob_problems[0]["problem"], fault, "{name}");
        assert!(
            blob_problems[0]["detail"]
                .as_str()
                .unwrap()
                .starts_with(&message),
            "{name}: {report:#}"
        );
    }
}

#[test]
fn a_swapped_or_missing_signing_key_stops_every_change_and_is_reported() {
    let f = Fixture::build();
    let v = f.copy();
    let key_file = v.data_dir().join("log.key");
    let original = fs::read(&key_file).unwrap();
    let stranger = Vault::initialised();
    let stranger_key = tlog::parse_vkey(&str_field(&log_key(&stranger), "vkey")).unwrap();
    let (ours, theirs) = (hex::encode(f.key().id), hex::encode(stranger_key.id));
    fs::copy(stranger.data_dir().join("log.key"), &key_file).unwrap();
    let size = entries(&v).len();

    let swapped = format!(
        "(key {theirs}) is not the key this vault's log is signed with (key {ours}): restore the \
         original key"
    );
    v.write("late.cdx.json", cyclonedx_sbom(&[("left-pad", "1.3.0")]));
    let changes: [Vec<String>; 5] = [
        common::with_links(&["push", "late.cdx.json"]),
        ["token", "create", "--name", "late", "--role", "auditor"]
            .map(String::from)
            .to_vec(),
        ["token", "revoke", TOKEN].map(String::from).to_vec(),
        ["trust", "key", "rm", TRUST_KEY].map(String::from).to_vec(),
        vec!["init".to_string()],
    ];
    for args in &changes {
        v.run(args).fails(4, &["log.key", &swapped]);
    }
    assert_eq!(entries(&v).len(), size, "nothing was appended");
    // Reading still works, and is still checked with the key the log was signed with.
    assert_eq!(v.ls_json(["--limit", "10"]).len(), 4);
    assert_eq!(checkpoint_note(&v), *f.checkpoints.last().unwrap());

    let key_problem = format!(
        "the signing key in log.key (key {theirs}) is not the key this log is signed with (key \
         {ours}): the key file was swapped"
    );
    for args in [
        vec!["--no-blobs"],
        vec!["--no-blobs", "--key", f.vkey.as_str()],
    ] {
        let (run, report) = log_verify(&v, &args);
        assert_eq!(run.code, 4, "{run:?}");
        assert_eq!(
            problems(&report),
            std::slice::from_ref(&key_problem),
            "{args:?}"
        );
    }
    let stranger_vkey = stranger_key.vkey();
    let (run, report) = log_verify(&v, &["--no-blobs", "--key", &stranger_vkey]);
    assert_eq!(run.code, 4, "{run:?}");
    let found = problems(&report);
    assert!(
        found.contains(&format!(
            "the log is signed with key {ours} ({}), not with the key you trust ({theirs} {})",
            f.key().name,
            stranger_key.name
        )),
        "{found:#?}"
    );
    let fsck = v.run(["--json", "fsck"]);
    assert_eq!(fsck.code, 4, "{fsck:?}");
    assert_eq!(fsck.json()["log_problems"], json!([key_problem]));

    // The key file gone: readable and verifiable, never changeable.
    fs::remove_file(&key_file).unwrap();
    v.run(common::with_links(&["push", "late.cdx.json"])).fails(
        4,
        &["log.key", "is missing: restore it from a backup", &f.vkey],
    );
    let (run, report) = log_verify(&v, &["--key", &f.vkey]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        report["notes"],
        json!([
            "no signing key file (log.key) here: checkpoints were checked with the key recorded in the index"
        ])
    );

    // The original back: changes work again, and verify.
    fs::write(&key_file, &original).unwrap();
    v.push_one("late.cdx.json");
    v.run(["log", "verify", "--key", &f.vkey]).success();
}

#[test]
fn a_cut_or_rewritten_history_is_caught_by_an_older_checkpoint_kept_outside() {
    let f = Fixture::build();
    let v = f.copy();
    let key = f.key();
    for (i, note) in f.checkpoints.iter().enumerate() {
        v.write(&format!("checkpoint-{i}"), note);
    }
    let kept = tlog::parse_checkpoint(&f.checkpoints[3]).unwrap();
    assert_eq!(kept.size, 10);

    // Cut the token and the trusted key out, consistently: their entries, the subtree hashes
    // and checkpoints covering them, and the rows themselves.
    tamper(
        &v,
        "DELETE FROM log_entries WHERE idx >= 8; \
         DELETE FROM log_nodes WHERE (idx + 1) * (1 << level) > 8; \
         DELETE FROM log_checkpoints WHERE size > 8; \
         DELETE FROM tokens; DELETE FROM trust_keys;",
    );
    // On its own the shorter log is consistent with itself (docs/log.md says so).
    let (run, report) = log_verify(&v, &["--key", &f.vkey]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(report["size"], 8);
    v.run(["fsck"]).success();
    // An auditor's checkpoint from before the cut still holds; the newest one does not.
    let (run, report) = log_verify(&v, &["--checkpoint", "checkpoint-1"]);
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(report["old_checkpoint"]["consistent"], true);
    let (run, report) = log_verify(&v, &["--no-blobs", "--checkpoint", "checkpoint-3"]);
    assert_eq!(run.code, 4, "{run:?}");
    assert_eq!(
        problems(&report),
        ["the older checkpoint is for 10 entries but the log now holds only 8: history was cut"]
    );
    assert_eq!(report["old_checkpoint"]["consistent"], false);

    // Whoever holds log.key then grows the log past the kept size with other changes.
    for name in [TOKEN, "intruder", "intruder-2"] {
        v.run(["token", "create", "--name", name, "--role", "admin"])
            .success();
    }
    let (run, _) = log_verify(&v, &["--key", &f.vkey]);
    assert_eq!(run.code, 0, "alone, the rewritten log verifies: {run:?}");
    let now = tlog::open_checkpoint(&checkpoint_note(&v), &key).unwrap();
    assert_eq!(now.size, 11);
    let rewritten_root = tlog::root(
        &entries(&v)[..10]
            .iter()
            .map(|(_, e)| tlog::leaf_hash(e.as_bytes()))
            .collect::<Vec<_>>(),
    );
    let (run, report) = log_verify(
        &v,
        &[
            "--no-blobs",
            "--checkpoint",
            "checkpoint-3",
            "--key",
            &f.vkey,
        ],
    );
    assert_eq!(run.code, 4, "{run:?}");
    assert_eq!(
        problems(&report),
        [format!(
            "the log is not consistent with the older checkpoint: its first 10 entries hash to \
             {}, the checkpoint says {} (history was rewritten)",
            hex::encode(rewritten_root),
            hex::encode(kept.root)
        )]
    );
    // The log's consistency proof ties its own idea of the old tree to the new one, but not
    // the tree the auditor kept.
    let proof = v
        .run(["--json", "log", "consistency", "--from", "10"])
        .success()
        .json();
    assert_eq!(proof["from_root_hash"], hex::encode(rewritten_root));
    let hashes = hashes_of(&proof["hashes"]);
    tlog::verify_consistency(10, 11, &rewritten_root, &now.root, &hashes).unwrap();
    assert!(tlog::verify_consistency(10, 11, &kept.root, &now.root, &hashes).is_err());
}

#[test]
fn a_log_rewritten_and_re_signed_verifies_alone_but_not_against_a_pinned_key_or_checkpoint() {
    let f = Fixture::build();
    for new_key in [false, true] {
        let v = f.copy();
        v.write("kept.checkpoint", f.checkpoints.last().unwrap());
        let key_file = v.data_dir().join("log.key");
        let (original, original_sk) =
            tlog::parse_signer(&fs::read_to_string(&key_file).unwrap()).unwrap();
        assert_eq!(
            original.vkey(),
            f.vkey,
            "log.key holds the key `log key` prints"
        );
        // The attacker keeps the log's name; with `new_key` they also make their own key.
        let (signer, sk) = if new_key {
            let (key, sk, text) = tlog::new_signer(&original.name, random32());
            fs::write(&key_file, format!("{text}\n")).unwrap();
            (key, sk)
        } else {
            (original.clone(), original_sk)
        };

        // Rewrite a record and its log entry, then recompute the tree and re-sign every
        // checkpoint.
        let sbom_entry = newest_entry(&entries(&v), &format!("record/{}", f.sbom.id));
        let mut sql = format!(
            "UPDATE records SET git_sha = '{OTHER_SHA}' WHERE id = '{id}'; \
             UPDATE log_entries SET entry = replace(entry, '{GIT_SHA}', '{OTHER_SHA}') \
             WHERE idx = {sbom_entry}; \
             UPDATE log_meta SET value = '{vkey}' WHERE name = 'vkey';",
            id = f.sbom.id,
            vkey = signer.vkey()
        );
        tamper(&v, &sql);
        let leaves: Vec<Hash> = entries(&v)
            .iter()
            .map(|(_, e)| tlog::leaf_hash(e.as_bytes()))
            .collect();
        sql = String::new();
        for level in 0..4u32 {
            let width = 1usize << level;
            for idx in 0..leaves.len() / width {
                let hash = tlog::root(&leaves[idx * width..(idx + 1) * width]);
                sql.push_str(&format!(
                    "UPDATE log_nodes SET hash = x'{}' WHERE level = {level} AND idx = {idx};\n",
                    hex::encode(hash)
                ));
            }
        }
        for note in &f.checkpoints {
            let size = tlog::parse_checkpoint(note).unwrap().size;
            let body = Checkpoint {
                origin: signer.name.clone(),
                size,
                root: tlog::root(&leaves[..size as usize]),
            }
            .body();
            sql.push_str(&format!(
                "UPDATE log_checkpoints SET note = '{}' WHERE size = {size};\n",
                tlog::sign_note(&body, &signer, &sk)
            ));
        }
        tamper(&v, &sql);

        // Alone, the log is consistent with itself and with the record (docs/log.md, "What it
        // cannot detect on its own").
        let (run, _) = log_verify(&v, &[]);
        assert_eq!(run.code, 0, "new key {new_key}: {run:?}");
        v.run(["fsck"]).success();

        let newest = checkpoint_note(&v);
        let (run, report) = log_verify(&v, &["--no-blobs", "--checkpoint", "kept.checkpoint"]);
        assert_eq!(run.code, 4, "new key {new_key}: {run:?}");
        let found = problems(&report);
        let (run_pinned, report_pinned) = log_verify(&v, &["--no-blobs", "--key", &f.vkey]);
        let found_pinned = problems(&report_pinned);
        if new_key {
            assert!(tlog::open_checkpoint(&newest, &original).is_err());
            assert_eq!(found.len(), 1, "{found:#?}");
            assert!(
                found[0].starts_with("the older checkpoint given: "),
                "{found:#?}"
            );
            assert_eq!(run_pinned.code, 4, "{run_pinned:?}");
            let id = hex::encode(signer.id);
            assert!(
                found_pinned.contains(&format!(
                    "the log is signed with key {id} ({}), not with the key you trust ({} {})",
                    signer.name,
                    hex::encode(original.id),
                    original.name
                )),
                "{found_pinned:#?}"
            );
            v.run(["log", "prove", &f.sbom.id, "--key", &f.vkey])
                .fails(4, &["the proof's checkpoint"]);
        } else {
            // Re-signed with the real key: only the kept checkpoint shows the rewrite.
            assert!(tlog::open_checkpoint(&newest, &original).is_ok());
            assert_eq!(run_pinned.code, 0, "{run_pinned:?}");
            assert_eq!(found.len(), 1, "{found:#?}");
            assert!(
                found[0].starts_with(
                    "the log is not consistent with the older checkpoint: its first 10 entries"
                ) && found[0].ends_with("(history was rewritten)"),
                "{found:#?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Over HTTP

#[test]
fn the_log_api_serves_proofs_an_outside_verifier_accepts_and_history_to_auditors_only() {
    let server = Server::start();
    let pusher = server.token(TOKEN, "pusher", &[], None);
    let auditor = server.token("auditor", "auditor", &[], None);
    let scoped = server.token("payments-reader", "approver", &["payments-*"], None);
    let local = log_key(&server.vault);

    // The key and the checkpoint: for any token, not for anonymous callers.
    let key_json = server.get("/v1/log/key", Some(&pusher)).expect(200).json();
    assert_eq!(key_json, local);
    let key = tlog::parse_vkey(&str_field(&key_json, "vkey")).unwrap();
    server.get("/v1/log/key", None).expect(401);
    server.get("/v1/log/checkpoint", None).expect(401);

    let push = |name: &str, body: &[u8]| -> String {
        let params = [
            ("blueprint", BLUEPRINT),
            ("version", VERSION),
            ("git_sha", GIT_SHA),
            ("name", name),
        ];
        let reply = server.push(&pusher, &params, body).expect(201);
        str_field(&reply.json()[0], "id")
    };
    let checkpoint = || {
        let json = server
            .get("/v1/log/checkpoint", Some(&pusher))
            .expect(200)
            .json();
        let note = str_field(&json, "note");
        let cp = tlog::open_checkpoint(&note, &key).unwrap_or_else(|e| panic!("{e}: {json:#}"));
        assert_eq!(json["size"], cp.size);
        assert_eq!(json["root_hash"], hex::encode(cp.root));
        (cp, note)
    };
    let sbom_id = push("sbom.cdx.json", &cyclonedx_sbom(&[("lodash", "4.17.20")]));
    let (old, old_note) = checkpoint();
    let scan_id = push("grype.json", &grype_scan());
    let (new, _) = checkpoint();
    assert_eq!(new.size, old.size + 2);

    // Inclusion proofs: readers, within their scopes.
    for id in [&sbom_id, &scan_id] {
        let path = format!("/v1/log/proof/{id}");
        let proof = server.get(&path, Some(&auditor)).expect(200).json();
        let entry = check_inclusion(&proof, &key, id);
        assert_eq!(entry["actor"], TOKEN, "the pushing token is the actor");
        assert_eq!(proof["tree_size"], new.size);
        server.get(&path, Some(&pusher)).expect(403);
        server.get(&path, Some(&scoped)).expect(404);
    }

    // Consistency: any token; checked against the checkpoint kept before the second push.
    let path = format!("/v1/log/consistency?from={}", old.size);
    let proof = server.get(&path, Some(&pusher)).expect(200).json();
    assert_eq!(check_consistency(&proof, &old, &key), new);
    server.get("/v1/log/consistency", Some(&pusher)).expect(400);
    server
        .get(
            &format!("/v1/log/consistency?from=0&to={}", new.size + 5),
            Some(&pusher),
        )
        .expect(404);

    // Entries: the whole history, for auditors only.
    let page = server
        .get("/v1/log/entries", Some(&auditor))
        .expect(200)
        .json();
    assert_eq!(page["next"], Value::Null);
    let all = page["entries"].as_array().unwrap();
    let indexes: Vec<u64> = all.iter().map(|e| e["index"].as_u64().unwrap()).collect();
    assert_eq!(indexes, (0..new.size).collect::<Vec<_>>());
    let leaves: Vec<Hash> = all
        .iter()
        .map(|e| tlog::leaf_hash(e["entry"].as_str().unwrap().as_bytes()))
        .collect();
    assert_eq!(tlog::root(&leaves), new.root);
    let slice = server
        .get(
            &with_query("/v1/log/entries", &[("start", "1"), ("limit", "2")]),
            Some(&auditor),
        )
        .expect(200)
        .json();
    assert_eq!(slice["entries"], json!([all[1], all[2]]));
    assert_eq!(slice["next"], 3);
    server.get("/v1/log/entries", Some(&pusher)).expect(403);
    server.get("/v1/log/entries", Some(&scoped)).expect(403);

    // A full verification: auditors only.
    let verify = |token: &str, body: Value| {
        server.send(
            Req::new("POST", "/v1/log/verify")
                .token(token)
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
    };
    let anchors = json!({"checkpoint": old_note, "key": key.vkey()});
    let report = verify(&auditor, anchors.clone()).expect(200).json();
    assert_eq!(report["problems"], json!([]), "{report:#}");
    assert_eq!(report["size"], new.size);
    assert_eq!(report["root_hash"], hex::encode(new.root));
    assert_eq!(report["blobs_checked"], 2);
    assert_eq!(
        report["old_checkpoint"],
        json!({"size": old.size, "root_hash": hex::encode(old.root), "consistent": true})
    );
    verify(&pusher, json!({})).expect(403);
    verify(&scoped, json!({})).expect(403);

    // The CLI against the server checks what it is told with the key it trusts.
    server.vault.write("old.checkpoint", &old_note);
    let vkey = key.vkey();
    let run = remote(
        &server,
        &auditor,
        &[
            "log",
            "verify",
            "--checkpoint",
            "old.checkpoint",
            "--key",
            &vkey,
        ],
    );
    assert_eq!(run.code, 0, "{run:?}");
    let text = run.stdout_text();
    assert!(
        text.contains(&format!(
            "consistent with the older checkpoint of {} entries\n",
            old.size
        )) && text.ends_with("ok: the log verifies and the vault agrees with it\n"),
        "{text}"
    );
    let run = remote(&server, &auditor, &["--json", "log", "prove", &scan_id]);
    assert_eq!(run.code, 0, "{run:?}");
    check_inclusion(&run.json(), &key, &scan_id);
    let stranger = Vault::initialised();
    let stranger_vkey = str_field(&log_key(&stranger), "vkey");
    remote(
        &server,
        &auditor,
        &["log", "prove", &scan_id, "--key", &stranger_vkey],
    )
    .fails(4, &["the proof's checkpoint", "is not signed by"]);
    remote(&server, &pusher, &["log", "verify"]).fails(6, &[]);

    // Tampering while the server runs is reported over HTTP and by the remote CLI.
    tamper(
        &server.vault,
        &format!("UPDATE records SET git_sha = '{OTHER_SHA}' WHERE id = '{sbom_id}'"),
    );
    let report = verify(&auditor, json!({"blobs": false})).expect(200).json();
    let found = problems(&report);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with(&format!(
            "record {sbom_id}: `git_sha` is \"{OTHER_SHA}\" in the index but \"{GIT_SHA}\""
        )),
        "{found:#?}"
    );
    let run = remote(&server, &auditor, &["log", "verify", "--no-blobs"]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(
        run.stdout_text()
            .contains(&format!("problem: {}", found[0])),
        "{run:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. A vault from before the log

/// Makes a copy of the fixture look like a vault made before the log existed.
enum PreLog {
    /// The log tables are there but empty (their triggers dropped to empty them).
    EmptiedTables,
    /// Schema version 4: no log tables at all, as an older evault left it.
    SchemaVersion4,
}

#[test]
fn a_vault_from_before_the_log_refuses_changes_until_init_adopts_it() {
    let f = Fixture::build();
    for simulation in [PreLog::EmptiedTables, PreLog::SchemaVersion4] {
        let v = f.copy();
        fs::remove_file(v.data_dir().join("log.key")).unwrap();
        let sql = match simulation {
            PreLog::EmptiedTables => {
                "DELETE FROM log_entries; DELETE FROM log_nodes; DELETE FROM log_checkpoints; \
                 DELETE FROM log_meta;"
            }
            PreLog::SchemaVersion4 => {
                "DROP TABLE log_entries; DROP TABLE log_nodes; DROP TABLE log_checkpoints; \
                 DROP TABLE log_meta; ALTER TABLE records DROP COLUMN log_index; \
                 DROP INDEX records_kind_blueprint; DROP INDEX findings_vuln_nocase; \
                 DROP TABLE changes; DROP INDEX records_digest_links; \
                 DROP TABLE record_retention; DROP TABLE retention_policy; DROP TABLE holds; \
                 DROP TABLE tombstones; DROP TABLE gate_policy; \
                 CREATE INDEX records_digest ON records (digest); \
                 DELETE FROM schema_migrations WHERE version >= 5; PRAGMA user_version = 4;"
            }
        };
        tamper(&v, sql);

        // Read-only until `init`: every change says to run it.
        let advice = [
            "this vault has no log signing key yet (it predates the tamper-evident log): run \
             `evault init --data-dir",
            "once to create it and record the vault's current state",
        ];
        v.write("late.cdx.json", cyclonedx_sbom(&[("left-pad", "1.3.0")]));
        v.run(common::with_links(&["push", "late.cdx.json"]))
            .fails(4, &advice);
        v.run(["token", "create", "--name", "late", "--role", "auditor"])
            .fails(4, &advice);
        assert_eq!(v.ls_json(["--limit", "10"]).len(), 4);
        v.run(["log", "key"])
            .fails(3, &["this vault's log is not started; run `evault init`"]);
        let (run, report) = log_verify(&v, &["--no-blobs"]);
        assert_eq!(run.code, 4, "{run:?}");
        assert_eq!(problems(&report).len(), 1);
        assert!(problems(&report)[0].starts_with("the index records no log signing key"));

        // `init` adopts it: a new key, and the current state backfilled in one signed tree.
        let init = v.run(["--json", "init"]).success().json();
        assert_eq!(init["created"], false);
        let key = tlog::parse_vkey(init["log"]["vkey"].as_str().unwrap()).unwrap();
        assert_ne!(key.vkey(), f.vkey, "a new key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(v.data_dir().join("log.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "log.key is private");
        }
        let all = entries(&v);
        let mut about: Vec<String> = Vec::new();
        for (i, text) in &all {
            let e: Value = serde_json::from_str(text).unwrap();
            assert_eq!(e["backfill"], true, "{e:#}");
            assert_eq!(e["index"], *i);
            about.push(format!(
                "{} {}",
                str_field(&e, "type"),
                str_field(&e, "subject")
            ));
        }
        about.sort();
        let mut expected: Vec<String> = [&f.sbom, &f.scan, &f.vex, &f.provenance]
            .iter()
            .flat_map(|p| {
                [
                    format!("blob.stored blob/{}", p.digest),
                    format!("record.ingested record/{}", p.id),
                ]
            })
            .collect();
        expected.push(format!("token.created token/{TOKEN}"));
        expected.push(format!("trust.key.added trust-key/{TRUST_KEY}"));
        expected.sort();
        assert_eq!(about, expected);
        let cp = tlog::open_checkpoint(&checkpoint_note(&v), &key).unwrap();
        assert_eq!(cp.size, 10);
        let leaves: Vec<Hash> = all
            .iter()
            .map(|(_, e)| tlog::leaf_hash(e.as_bytes()))
            .collect();
        assert_eq!(tlog::root(&leaves), cp.root);

        let vkey = key.vkey();
        v.run(["log", "verify", "--key", &vkey]).success();
        v.run(["fsck"]).success();
        for p in [&f.sbom, &f.scan, &f.vex, &f.provenance] {
            let proof = v.run(["--json", "log", "prove", &p.id]).success().json();
            let entry = check_inclusion(&proof, &key, &p.id);
            assert_eq!(entry["backfill"], true);
        }
        if let PreLog::SchemaVersion4 = simulation {
            let triggers = query_i64(
                &v,
                "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'",
            );
            assert_eq!(triggers, 8, "the append-only triggers are back");
        }

        // From then on, changes are logged as usual, and a second `init` changes nothing.
        let late = v.push_one("late.cdx.json");
        let proof = v
            .run(["--json", "log", "prove", &str_field(&late, "id")])
            .success()
            .json();
        let entry = check_inclusion(&proof, &key, &str_field(&late, "id"));
        assert!(entry.get("backfill").is_none(), "{entry:#}");
        let proof = v
            .run(["--json", "log", "consistency", "--from", "10"])
            .success()
            .json();
        check_consistency(&proof, &cp, &key);
        let before = entries(&v);
        v.init().success();
        assert_eq!(entries(&v), before);
        assert_eq!(
            tlog::parse_vkey(&str_field(&log_key(&v), "vkey"))
                .unwrap()
                .vkey(),
            vkey
        );
        v.run(["log", "verify", "--key", &vkey]).success();
    }
}

#[test]
fn init_on_a_vault_from_before_the_log_says_what_it_changed() {
    let f = Fixture::build();
    let v = f.copy();
    fs::remove_file(v.data_dir().join("log.key")).unwrap();
    tamper(
        &v,
        "DELETE FROM log_entries; DELETE FROM log_nodes; DELETE FROM log_checkpoints; \
         DELETE FROM log_meta;",
    );
    let text = v.init().success().stdout_text();
    let backfilled = entries(&v);
    assert_eq!(backfilled.len(), 10, "init backfilled the log");
    assert!(!text.contains("nothing changed"), "{text}");
    assert!(
        text.contains("recorded its 10 objects (records, blobs, tokens, trust) as backfilled"),
        "{text}"
    );
    for (index, entry) in &backfilled {
        let entry: Value = serde_json::from_str(entry).unwrap();
        assert_eq!(
            entry["actor"],
            v.actor(),
            "entry {index} names who ran init"
        );
        assert_eq!(entry["backfill"], true);
    }
    // A second init changes nothing, and says so.
    let again = v.init().success().stdout_text();
    assert!(again.contains("nothing changed"), "{again}");
    assert_eq!(entries(&v).len(), 10);
}

#[test]
fn bad_keys_and_checkpoints_on_the_command_line_are_input_errors_naming_the_option() {
    let v = Vault::initialised();
    v.write("garbage.cp", "not a checkpoint\n");
    v.write("huge.cp", vec![b'x'; 70 * 1024]);
    v.write("binary.cp", [0xffu8, 0xfe, 0x00, 0x80]);
    let cases: [(&[&str], &[&str]); 6] = [
        (
            &["log", "verify", "--checkpoint", "garbage.cp"],
            &["--checkpoint garbage.cp: not a signed checkpoint"],
        ),
        (
            &["log", "verify", "--checkpoint", "huge.cp"],
            &["--checkpoint huge.cp: larger than 64 KiB"],
        ),
        (
            &["log", "verify", "--checkpoint", "binary.cp"],
            &["--checkpoint binary.cp: not UTF-8 text"],
        ),
        (
            &["log", "verify", "--checkpoint", "missing.cp"],
            &["--checkpoint missing.cp: cannot read"],
        ),
        (
            &["log", "verify", "--key", "garbage"],
            &["--key garbage: neither a verifier key", "nor a file"],
        ),
        (
            &["log", "prove", "000000", "--key", "huge.cp"],
            &["--key huge.cp: larger than 64 KiB"],
        ),
    ];
    for (args, needles) in cases {
        v.run(args.iter().copied()).fails(2, needles);
    }
}

#[test]
fn remote_log_entries_are_fetched_page_by_page_beyond_one_page() {
    let v = Vault::initialised();
    for i in 0..600 {
        v.write(&format!("many/note-{i:03}.txt"), format!("note {i}\n"));
    }
    v.push_json(common::with_links(&["many"]));
    let local = v
        .run(["log", "entries", "--limit", "5000"])
        .success()
        .stdout_text();
    assert_eq!(local.lines().count(), 1200, "600 blobs and 600 records");
    let server = Server::start_on(v, None);
    let auditor = server.token("pages", "auditor", &[], None);
    let all = remote(&server, &auditor, &["log", "entries", "--limit", "5000"]).success();
    // The token created for the test is one more entry.
    let lines: Vec<String> = all.stdout_text().lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 1201);
    assert_eq!(lines[..1200].join("\n") + "\n", local);
    let some = remote(
        &server,
        &auditor,
        &["log", "entries", "--start", "999", "--limit", "3"],
    )
    .success();
    let indexes: Vec<u64> = some
        .stdout_text()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["index"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(indexes, [999, 1000, 1001]);
    let zero = remote(&server, &auditor, &["log", "entries", "--limit", "0"]);
    assert_eq!(zero.code, 2, "{zero:?}");
}
