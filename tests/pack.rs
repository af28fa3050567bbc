//! End-to-end scenarios for evidence packs: `evault export` writes a signed, self-contained
//! `.tar.zst` of a period's changes with their evidence, and `evault verify-pack` checks it
//! offline, naming every file that fails. Packs are opened and checked here with an independent
//! reading of the format (tar, zstd, SHA-256, Ed25519 signed notes, RFC 6962 inclusion), and
//! tampered with byte by byte.

#[path = "common/mod.rs"]
mod common;
#[path = "common/server.rs"]
mod server_common;

use std::collections::BTreeSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{SecondsFormat, Utc};
use common::{BLUEPRINT, EVAULT, GIT_SHA, RawEntry, Run, VERSION, Vault, digest_of, str_field};
use serde_json::{Value, json};
use server_common::{Server, with_query};
use sha2::{Digest as _, Sha256};

const TOP: &str = "evault-pack";
const OTHER_BLUEPRINT: &str = "payments-api";
const ARTIFACT: &str = "ghcr.io/acme/checkout-api:1.4.2 image manifest";

// ---------------------------------------------------------------------------------------------
// Evidence

fn pretty(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap()
}

fn artifact() -> String {
    digest_of(ARTIFACT.as_bytes())
}

fn cyclonedx(name: &str) -> Vec<u8> {
    pretty(&json!({
        "bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "metadata": {"component": {"type": "container", "name": name}},
        "components": [{"type": "library", "name": "lodash", "version": "4.17.20",
                        "purl": "pkg:npm/lodash@4.17.20"}]
    }))
}

fn grype_scan() -> Vec<u8> {
    pretty(&json!({
        "matches": [{
            "vulnerability": {"id": "CVE-2021-23337", "severity": "High"},
            "artifact": {"name": "lodash", "version": "4.17.20", "type": "npm"}
        }],
        "source": {"type": "image", "target": {"userInput": "ghcr.io/acme/checkout-api:1.4.2"}},
        "descriptor": {"name": "grype", "version": "0.74.0"}
    }))
}

fn approval(env: &str, approver: &str) -> Vec<u8> {
    pretty(&json!({
        "_type": "https://evault.dev/approval/v1",
        "approver": approver,
        "decision": "approve",
        "reason": "CHG-1234: scans reviewed | lodash finding not reachable",
        "environment": env,
        "time": "2026-05-02T09:00:00Z",
        "blueprint": {"name": BLUEPRINT, "version": VERSION},
        "git_sha": GIT_SHA,
    }))
}

fn deploy_receipt() -> Vec<u8> {
    pretty(&json!({
        "_type": "https://evault.dev/deploy/v1",
        "environment": "production",
        "artifact": artifact(),
        "time": "2026-05-02T10:15:00Z",
        "actor": "ci-deployer@acme.example",
        "blueprint": {"name": BLUEPRINT, "version": VERSION},
        "git_sha": GIT_SHA,
        "status": "succeeded",
        "target": "eu-west-1/prod",
    }))
}

fn rollback_record() -> Vec<u8> {
    pretty(&json!({
        "_type": "https://evault.dev/rollback/v1",
        "environment": "production",
        "from_version": VERSION,
        "to_version": "1.4.1",
        "trigger": "error rate > 5% for 5 minutes",
        "reason": "restored 1.4.1; error rate back to baseline",
        "time": "2026-05-03T08:00:00Z",
        "actor": "oncall@acme.example",
        "blueprint": BLUEPRINT,
    }))
}

/// Links of a push: blueprint, version, the default SHA, and `extra`.
fn links<'a>(blueprint: &'a str, version: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--blueprint",
        blueprint,
        "--version",
        version,
        "--git-sha",
        GIT_SHA,
    ];
    args.extend_from_slice(extra);
    args
}

/// Pushes one file written as `name`; the record's id.
#[track_caller]
fn push(v: &Vault, name: &str, bytes: &[u8], link_args: &[&str]) -> String {
    v.write(name, bytes);
    let mut args = vec![name];
    args.extend_from_slice(link_args);
    let records = v.push_json(&args);
    assert_eq!(records.len(), 1, "{records:#?}");
    str_field(&records[0], "id")
}

/// Now, as the CLI takes it, after a pause that keeps ingestion times apart.
fn instant() -> String {
    thread::sleep(Duration::from_millis(20));
    let t = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
    thread::sleep(Duration::from_millis(20));
    t
}

/// A release history: the ids of what was pushed before, in and after a period.
struct History {
    vault: Vault,
    since: String,
    until: String,
    /// checkout-api 1.4.2, no environment, before the period.
    sbom: String,
    scan: String,
    /// checkout-api 1.4.2 approval for staging, before the period.
    staging_approval: String,
    /// In the period: the production approval and deploy of checkout-api 1.4.2.
    approval: String,
    deploy: String,
    /// In the period: an SBOM of payments-api and of checkout-api 1.5.0 (never deployed).
    payments_sbom: String,
    next_sbom: String,
    /// After the period: the rollback.
    rollback: String,
}

impl History {
    fn build() -> History {
        let vault = Vault::initialised();
        let v = &vault;
        let image = artifact();
        let sbom = push(
            v,
            "sbom.cdx.json",
            &cyclonedx("checkout-api"),
            &links(BLUEPRINT, VERSION, &["--subject", &image]),
        );
        let scan = push(
            v,
            "grype.json",
            &grype_scan(),
            &links(BLUEPRINT, VERSION, &[]),
        );
        let staging_approval = push(
            v,
            "approval-staging.json",
            &approval("staging", "bob@acme.example"),
            &links(BLUEPRINT, VERSION, &["--env", "staging"]),
        );
        let since = instant();
        let approval = push(
            v,
            "approval.json",
            &approval("production", "alice@acme.example"),
            &links(BLUEPRINT, VERSION, &["--env", "production"]),
        );
        let deploy = push(
            v,
            "deploy_receipt.json",
            &deploy_receipt(),
            &links(BLUEPRINT, VERSION, &["--env", "production"]),
        );
        let payments_sbom = push(
            v,
            "payments.cdx.json",
            &cyclonedx("payments-api"),
            &links(OTHER_BLUEPRINT, "2.0.0", &[]),
        );
        let next_sbom = push(
            v,
            "next.cdx.json",
            &cyclonedx("checkout-api-next"),
            &links(BLUEPRINT, "1.5.0", &[]),
        );
        let until = instant();
        let rollback = push(
            v,
            "rollback.json",
            &rollback_record(),
            &links(BLUEPRINT, VERSION, &["--env", "production"]),
        );
        History {
            vault,
            since,
            until,
            sbom,
            scan,
            staging_approval,
            approval,
            deploy,
            payments_sbom,
            next_sbom,
            rollback,
        }
    }

    /// `evault export --since --until ARGS -o NAME` in the work dir; the run and the pack's path.
    fn export(&self, name: &str, args: &[&str]) -> (Run, PathBuf) {
        let mut all = vec![
            "export",
            "--since",
            &self.since,
            "--until",
            &self.until,
            "-o",
            name,
        ];
        all.extend_from_slice(args);
        (self.vault.run(&all), self.vault.path(name))
    }

    #[track_caller]
    fn exported(&self, name: &str, args: &[&str]) -> PathBuf {
        let (run, path) = self.export(name, args);
        run.success();
        path
    }
}

// ---------------------------------------------------------------------------------------------
// Reading packs independently

/// The entries of a pack, in order: (path, type, bytes).
fn unpack(pack: &[u8]) -> Vec<(String, tar::EntryType, Vec<u8>)> {
    let tar = zstd::decode_all(pack).expect("a pack is zstd");
    let mut archive = tar::Archive::new(&tar[..]);
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = String::from_utf8(e.path_bytes().into_owned()).unwrap();
            let kind = e.header().entry_type();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (path, kind, data)
        })
        .collect()
}

fn unpack_file(path: &Path) -> Vec<(String, tar::EntryType, Vec<u8>)> {
    unpack(&fs::read(path).unwrap())
}

/// The pack written back as a zstd-compressed tar, in the given order.
fn repack(entries: &[(String, tar::EntryType, Vec<u8>)]) -> Vec<u8> {
    let raw: Vec<RawEntry<'_>> = entries
        .iter()
        .map(|(path, kind, data)| RawEntry {
            name: path.as_bytes(),
            entry_type: *kind,
            link_name: b"",
            data,
        })
        .collect();
    common::zstd(&common::raw_tar(&raw))
}

fn file<'a>(entries: &'a [(String, tar::EntryType, Vec<u8>)], rel: &str) -> &'a [u8] {
    let path = format!("{TOP}/{rel}");
    &entries
        .iter()
        .find(|(p, ..)| *p == path)
        .unwrap_or_else(|| panic!("no {path} in the pack"))
        .2
}

/// The record ids a pack holds, from its `records/<id>.json` names.
fn record_ids(entries: &[(String, tar::EntryType, Vec<u8>)]) -> BTreeSet<String> {
    entries
        .iter()
        .filter_map(|(p, ..)| {
            p.strip_prefix(&format!("{TOP}/records/"))?
                .strip_suffix(".json")
                .map(str::to_string)
        })
        .collect()
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn leaf_hash(entry: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

fn node_hash(l: &[u8; 32], r: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(l);
    h.update(r);
    h.finalize().into()
}

/// RFC 9162 §2.1.3.2: the root an audit path leads to.
fn root_from_path(index: u64, size: u64, leaf: [u8; 32], path: &[[u8; 32]]) -> [u8; 32] {
    assert!(index < size);
    let (mut f, mut s) = (index, size - 1);
    let mut r = leaf;
    for p in path {
        assert!(s != 0, "too many hashes");
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                f >>= 1;
                s >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    assert_eq!(s, 0, "too few hashes");
    r
}

/// A verifier key `name+hexid+base64(0x01 || key)`: (name, id, key).
fn parse_vkey(vkey: &str) -> (String, [u8; 4], ed25519_dalek::VerifyingKey) {
    let mut parts = vkey.trim().splitn(3, '+');
    let (name, id, key) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let bytes = B64.decode(key).unwrap();
    assert_eq!(bytes[0], 1, "Ed25519");
    let key = ed25519_dalek::VerifyingKey::from_bytes(&bytes[1..].try_into().unwrap()).unwrap();
    (
        name.to_string(),
        hex::decode(id).unwrap().try_into().unwrap(),
        key,
    )
}

/// Opens a C2SP signed note with one signature by `vkey`; its text.
fn open_note(note: &str, vkey: &str) -> String {
    let (name, id, key) = parse_vkey(vkey);
    let (text, sig_line) = note.split_once("\n\n").expect("a blank line");
    let text = format!("{text}\n");
    let sig_line = sig_line.strip_suffix('\n').unwrap();
    assert!(!sig_line.contains('\n'), "one signature line: {note}");
    let (who, b64) = sig_line
        .strip_prefix("\u{2014} ")
        .unwrap()
        .split_once(' ')
        .unwrap();
    assert_eq!(who, name);
    let blob = B64.decode(b64).unwrap();
    assert_eq!(blob[..4], id);
    let sig = ed25519_dalek::Signature::from_slice(&blob[4..]).unwrap();
    key.verify_strict(text.as_bytes(), &sig)
        .expect("the note's signature verifies");
    text
}

/// Checks a pack the way `docs/evidence-packs.md` describes, without evault's code: the
/// manifest first and signed, every file's size and SHA-256, blobs named by their hash, each
/// record's entry included in the signed checkpoint. Returns the manifest.
#[track_caller]
fn check_independently(pack: &Path, vkey: &str) -> Value {
    let entries = unpack_file(pack);
    assert_eq!(entries[0].0, format!("{TOP}/manifest.json"));
    assert_eq!(entries[1].0, format!("{TOP}/manifest.sig"));
    let manifest_bytes = &entries[0].2;
    let manifest: Value = serde_json::from_slice(manifest_bytes).unwrap();
    let signed = open_note(std::str::from_utf8(&entries[1].2).unwrap(), vkey);
    assert_eq!(
        signed,
        format!(
            "evault-pack-manifest/v1\nsha256:{}\n",
            hex::encode(sha256(manifest_bytes))
        )
    );
    assert_eq!(manifest["format"], "evault-pack/v1");
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len() + 2, entries.len(), "every file listed once");
    for (listed, (path, kind, data)) in files.iter().zip(&entries[2..]) {
        assert_eq!(*kind, tar::EntryType::Regular);
        assert_eq!(format!("{TOP}/{}", listed["path"].as_str().unwrap()), *path);
        assert_eq!(listed["size"], data.len() as u64, "{path}");
        assert_eq!(listed["sha256"], hex::encode(sha256(data)), "{path}");
        if let Some(hex_name) = path.strip_prefix(&format!("{TOP}/blobs/sha256/")) {
            assert_eq!(hex_name, hex::encode(sha256(data)));
        }
    }
    let checkpoint_text = open_note(
        std::str::from_utf8(file(&entries, "log/checkpoint")).unwrap(),
        vkey,
    );
    let lines: Vec<&str> = checkpoint_text.lines().collect();
    let size: u64 = lines[1].parse().unwrap();
    let root: [u8; 32] = B64.decode(lines[2]).unwrap().try_into().unwrap();
    assert_eq!(manifest["log"]["tree_size"], size);
    assert_eq!(manifest["log"]["root_hash"], hex::encode(root));
    for id in record_ids(&entries) {
        let record: Value =
            serde_json::from_slice(file(&entries, &format!("records/{id}.json"))).unwrap();
        let proof: Value =
            serde_json::from_slice(file(&entries, &format!("log/{id}.json"))).unwrap();
        let entry_text = proof["entry"].as_str().unwrap();
        let entry: Value = serde_json::from_str(entry_text).unwrap();
        assert_eq!(entry["subject"], format!("record/{id}"));
        assert_eq!(entry["state"]["digest"], record["digest"]);
        let digest = record["digest"].as_str().unwrap();
        file(
            &entries,
            &format!("blobs/sha256/{}", &digest["sha256:".len()..]),
        );
        let path: Vec<[u8; 32]> = proof["hashes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                hex::decode(h.as_str().unwrap())
                    .unwrap()
                    .try_into()
                    .unwrap()
            })
            .collect();
        assert_eq!(proof["tree_size"], size);
        let computed = root_from_path(
            proof["log_index"].as_u64().unwrap(),
            size,
            leaf_hash(entry_text.as_bytes()),
            &path,
        );
        assert_eq!(computed, root, "record {id}'s entry is in the signed tree");
    }
    manifest
}

/// `evault verify-pack PACK ARGS...`, run where no vault is (offline).
fn verify_pack(pack: &Path, args: &[&str]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(EVAULT)
        .arg("verify-pack")
        .arg(pack)
        .args(args)
        .current_dir(dir.path())
        .env_remove("EVAULT_DATA_DIR")
        .env_remove("EVAULT_SERVER")
        .env_remove("EVAULT_TOKEN")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        fs::read_dir(dir.path()).unwrap().next().is_none(),
        "verify-pack wrote into its working directory"
    );
    let mut all = vec!["verify-pack".to_string(), pack.display().to_string()];
    all.extend(args.iter().map(|s| s.to_string()));
    Run {
        args: all,
        code: out.status.code().unwrap_or(-1),
        stdout: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The files verify-pack names as failing (the `FAILED <path>: ...` lines).
fn failed_paths(run: &Run) -> BTreeSet<String> {
    run.stdout_text()
        .lines()
        .filter_map(|l| l.strip_prefix("FAILED "))
        .map(|l| l.split_once(": ").map_or(l, |(p, _)| p).to_string())
        .collect()
}

/// verify-pack must fail with exit 4 naming exactly `paths`, each with `reason` in its line.
#[track_caller]
fn assert_fails_naming(run: &Run, paths: &[&str], reason: &str) {
    assert_eq!(run.code, 4, "{run:?}");
    common::assert_no_panic(&run.stderr);
    let expected: BTreeSet<String> = paths.iter().map(|p| format!("{TOP}/{p}")).collect();
    assert_eq!(failed_paths(run), expected, "{run:?}");
    assert!(
        run.stdout_text()
            .lines()
            .any(|l| l.starts_with("FAILED ") && l.contains(reason)),
        "no line says {reason:?}: {run:?}"
    );
    assert!(run.stdout_text().contains("NOT VERIFIED"), "{run:?}");
    assert!(run.stderr.starts_with("error: the pack "), "{run:?}");
}

fn log_key_file(v: &Vault, name: &str) -> PathBuf {
    let key = v.run(["log", "key"]).success().stdout;
    v.write(name, key)
}

fn vkey(v: &Vault) -> String {
    v.run(["--json", "log", "key"]).success().json()["vkey"]
        .as_str()
        .unwrap()
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// Scenarios

#[test]
fn a_quarter_of_changes_exports_to_a_pack_that_verifies_offline() {
    let h = History::build();
    let v = &h.vault;
    let (run, pack) = h.export("q2.tar.zst", &["--env", "production"]);
    let run = run.success();
    assert!(run.stdout_text().starts_with("wrote q2.tar.zst"), "{run:?}");
    // The production changes of the period and the evidence of the version they deployed.
    let entries = unpack_file(&pack);
    assert_eq!(
        record_ids(&entries),
        set(&[&h.approval, &h.deploy, &h.sbom, &h.scan])
    );
    let manifest = check_independently(&pack, &vkey(v));
    assert_eq!(manifest["records"], 4);
    assert_eq!(manifest["records_in_period"], 2);
    assert_eq!(manifest["blobs"], 4);
    assert_eq!(manifest["query"]["environment"], "production");
    assert_eq!(manifest["exported_by"], v.actor());

    // Each record as `show --json` gives it; the blobs are the original bytes.
    let shown = v.show_json(&h.deploy);
    let in_pack: Value =
        serde_json::from_slice(file(&entries, &format!("records/{}.json", h.deploy))).unwrap();
    assert_eq!(in_pack, shown);
    let digest = str_field(&shown, "digest");
    assert_eq!(
        file(&entries, &format!("blobs/sha256/{}", &digest[7..])),
        &deploy_receipt()[..]
    );

    // The report: the change with its approval, and the evidence of the version.
    let report = String::from_utf8(file(&entries, "report.md").to_vec()).unwrap();
    for needle in [
        "## Changes",
        "| deploy | production | checkout-api | 1.4.2 | ci-deployer@acme.example |",
        &artifact(),
        "succeeded",
        "| alice@acme.example | approve | production |",
        "CHG-1234: scans reviewed \\| lodash finding not reachable",
        "### checkout-api 1.4.2",
        &format!("| sbom | cyclonedx-json | - | `{}`", h.sbom),
        &format!("| vuln-scan | grype-json | - | `{}`", h.scan),
    ] {
        assert!(
            report.contains(needle),
            "report.md lacks {needle:?}:\n{report}"
        );
    }
    assert!(!report.contains("bob@acme.example"), "{report}");

    // Offline, with the pack's own key: verified, saying what the trust rests on.
    let ok = verify_pack(&pack, &[]).success();
    let text = ok.stdout_text();
    assert!(text.contains("ok: "), "{text}");
    assert!(text.contains("4 records"), "{text}");
    let key_id = v.run(["--json", "log", "key"]).success().json()["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains("key inside the pack") && text.contains(&key_id),
        "{text}"
    );

    // With the key the auditor pinned (the file `evault log key` wrote): verified.
    let key_file = log_key_file(v, "vault.vkey");
    let pinned = verify_pack(&pack, &["--key", key_file.to_str().unwrap()]).success();
    assert!(
        !pinned.stdout_text().contains("key inside the pack"),
        "{pinned:?}"
    );
    let json = verify_pack(&pack, &["--json", "--key", &vkey(v)])
        .success()
        .json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["key_source"], "pinned");
    assert_eq!(json["problems"], json!([]));
    assert_eq!(json["records"], 4);

    // Another vault's key: the signature is named.
    let other = Vault::initialised();
    let other_key = log_key_file(&other, "other.vkey");
    let wrong = verify_pack(&pack, &["--key", other_key.to_str().unwrap()]);
    assert_eq!(wrong.code, 4, "{wrong:?}");
    let failed = failed_paths(&wrong);
    assert!(
        failed.contains(&format!("{TOP}/manifest.sig")),
        "the signature must be named: {wrong:?}"
    );
    assert!(
        wrong.stdout_text().contains("is not signed by"),
        "{wrong:?}"
    );

    // `--json` of the export.
    let exported = v
        .run([
            "--json",
            "export",
            "--since",
            &h.since,
            "--until",
            &h.until,
            "-o",
            "all.tar.zst",
        ])
        .success()
        .json();
    assert_eq!(exported["records"], 6);
    assert_eq!(exported["path"], "all.tar.zst");
    assert_eq!(
        exported["size"],
        fs::metadata(v.path("all.tar.zst")).unwrap().len()
    );
}

#[test]
fn a_pack_holds_the_period_and_the_evidence_of_what_was_deployed_in_it() {
    let h = History::build();
    let ids = |name: &str, args: &[&str]| record_ids(&unpack_file(&h.exported(name, args)));

    // Everything of the period, plus the deployed version's earlier evidence, except what was
    // linked to another environment (the staging approval) or came after it (the rollback).
    let all = ids("all.tar.zst", &[]);
    assert_eq!(
        all,
        set(&[
            &h.approval,
            &h.deploy,
            &h.payments_sbom,
            &h.next_sbom,
            &h.sbom,
            &h.scan
        ])
    );
    assert!(!all.contains(&h.staging_approval) && !all.contains(&h.rollback));

    // A blueprint that was not deployed: only its records of the period.
    assert_eq!(
        ids("payments.tar.zst", &["--blueprint", OTHER_BLUEPRINT]),
        set(&[&h.payments_sbom])
    );
    assert_eq!(
        ids("checkout.tar.zst", &["--blueprint", BLUEPRINT]),
        set(&[&h.approval, &h.deploy, &h.next_sbom, &h.sbom, &h.scan])
    );
    // The staging environment saw no change in the period.
    assert_eq!(
        ids("staging.tar.zst", &["--env", "staging"]),
        BTreeSet::new()
    );

    // A period holding the rollback brings the version's evidence with it: production's
    // approval and deploy too, but not staging's approval.
    let later = instant();
    let rollback_pack = h.vault.path("rollback.tar.zst");
    h.vault
        .run([
            "export",
            "--since",
            &h.until,
            "--until",
            &later,
            "-o",
            "rollback.tar.zst",
        ])
        .success();
    assert_eq!(
        record_ids(&unpack_file(&rollback_pack)),
        set(&[&h.rollback, &h.approval, &h.deploy, &h.sbom, &h.scan])
    );
    check_independently(&rollback_pack, &vkey(&h.vault));

    // An empty period is a valid, verifiable pack of nothing.
    let empty = h.exported("empty.tar.zst", &["--blueprint", "no-such-blueprint"]);
    assert_eq!(record_ids(&unpack_file(&empty)), BTreeSet::new());
    verify_pack(&empty, &[]).success();

    // --since and --until are required and must make a period.
    h.vault
        .run([
            "export",
            "--since",
            &h.until,
            "--until",
            &h.since,
            "-o",
            "x.tar.zst",
        ])
        .fails(2, &["--since", "not before --until"]);
    h.vault
        .run([
            "export",
            "--since",
            "yesterday",
            "--until",
            &h.until,
            "-o",
            "x.tar.zst",
        ])
        .fails(2, &["--since", "yesterday"]);
    let missing = h
        .vault
        .run(["export", "--since", &h.since, "-o", "x.tar.zst"]);
    assert_eq!(missing.code, 2, "{missing:?}");
    assert!(missing.stderr.contains("--until"), "{missing:?}");
    assert!(!h.vault.path("x.tar.zst").exists());
}

#[test]
fn one_altered_byte_in_any_file_fails_verification_naming_that_file() {
    let h = History::build();
    let pack = h.exported("pack.tar.zst", &["--env", "production"]);
    let key_file = log_key_file(&h.vault, "vault.vkey");
    let key_arg = key_file.to_str().unwrap().to_string();
    let entries = unpack_file(&pack);
    let blob = entries
        .iter()
        .find(|(p, ..)| p.contains("/blobs/sha256/"))
        .unwrap()
        .0
        .trim_start_matches(&format!("{TOP}/"))
        .to_string();
    let record = format!("records/{}.json", h.deploy);
    let proof = format!("log/{}.json", h.approval);

    // Unchanged, the rewritten pack verifies: what fails below is the altered byte.
    let same = h.vault.write("same.tar.zst", repack(&entries));
    verify_pack(&same, &["--key", &key_arg]).success();

    type Alter = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(String, Alter, &str)> = vec![
        (
            blob.clone(),
            Box::new(|b: &mut Vec<u8>| {
                let at = b.len() / 2;
                b[at] ^= 0x01;
            }),
            "does not match the manifest",
        ),
        (
            record.clone(),
            // The deploy's environment, production → productioo.
            Box::new(|b: &mut Vec<u8>| {
                let at = find(b, b"\"production\"") + "\"productio".len();
                b[at] = b'o';
            }),
            "does not match the manifest",
        ),
        (
            proof.clone(),
            // One hex digit of the audit path.
            Box::new(|b: &mut Vec<u8>| {
                let at = find(b, b"\"hashes\": [\n    \"") + "\"hashes\": [\n    \"".len();
                b[at] = if b[at] == b'0' { b'1' } else { b'0' };
            }),
            "does not match the manifest",
        ),
        (
            "log/checkpoint".to_string(),
            // The tree size line.
            Box::new(|b: &mut Vec<u8>| {
                let at = find(b, b"\n") + 1;
                b[at] = if b[at] == b'9' { b'8' } else { b[at] + 1 };
            }),
            "does not match the manifest",
        ),
        (
            "manifest.json".to_string(),
            // Who exported it: the JSON stays valid, the signature does not.
            Box::new(|b: &mut Vec<u8>| {
                let at = find(b, b"\"exported_by\": \"") + "\"exported_by\": \"".len();
                b[at] ^= 0x20;
            }),
            "does not match its signature",
        ),
        (
            "manifest.sig".to_string(),
            // A digit of the signed manifest hash.
            Box::new(|b: &mut Vec<u8>| {
                let at = find(b, b"sha256:") + "sha256:".len();
                b[at] = if b[at] == b'0' { b'1' } else { b'0' };
            }),
            "does not verify",
        ),
        (
            "report.md".to_string(),
            Box::new(|b: &mut Vec<u8>| {
                let at = find(b, b"alice");
                b[at] = b'A';
            }),
            "does not match the manifest",
        ),
        (
            "log/key".to_string(),
            Box::new(|b: &mut Vec<u8>| {
                let at = b.len() - 3;
                b[at] ^= 0x01;
            }),
            "does not match the manifest",
        ),
    ];
    for (target, alter, reason) in cases {
        let mut tampered = entries.clone();
        let slot = tampered
            .iter_mut()
            .find(|(p, ..)| *p == format!("{TOP}/{target}"))
            .unwrap();
        let before = slot.2.clone();
        alter(&mut slot.2);
        let changed = before.iter().zip(&slot.2).filter(|(a, b)| a != b).count();
        assert_eq!(changed, 1, "exactly one byte of {target} is altered");
        let path = h.vault.write("tampered.tar.zst", repack(&tampered));
        let run = verify_pack(&path, &["--key", &key_arg]);
        assert_fails_naming(&run, &[&target], reason);
        // With the pack's own key the same byte fails the same way.
        let own = verify_pack(&path, &[]);
        assert_eq!(own.code, 4, "{target}: {own:?}");
        assert!(
            failed_paths(&own).contains(&format!("{TOP}/{target}")),
            "{target}: {own:?}"
        );
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap_or_else(|| {
            panic!(
                "{:?} not found in {}",
                String::from_utf8_lossy(needle),
                String::from_utf8_lossy(haystack)
            )
        })
}

#[test]
fn removed_added_duplicated_and_reordered_files_are_named() {
    let h = History::build();
    let pack = h.exported("pack.tar.zst", &[]);
    let entries = unpack_file(&pack);
    let blob_index = entries
        .iter()
        .position(|(p, ..)| p.contains("/blobs/sha256/"))
        .unwrap();
    let blob = entries[blob_index].0[TOP.len() + 1..].to_string();

    // A blob removed.
    let mut removed = entries.clone();
    removed.remove(blob_index);
    let path = h.vault.write("removed.tar.zst", repack(&removed));
    assert_fails_naming(&verify_pack(&path, &[]), &[&blob], "missing from the pack");

    // A file added.
    let mut added = entries.clone();
    added.push((
        format!("{TOP}/records/notes.txt"),
        tar::EntryType::Regular,
        b"nothing to see".to_vec(),
    ));
    let path = h.vault.write("added.tar.zst", repack(&added));
    assert_fails_naming(
        &verify_pack(&path, &[]),
        &["records/notes.txt"],
        "not listed in the manifest",
    );

    // A file twice (the second copy with other bytes).
    let mut twice = entries.clone();
    let mut copy = entries[blob_index].clone();
    copy.2 = b"other bytes".to_vec();
    twice.push(copy);
    let path = h.vault.write("twice.tar.zst", repack(&twice));
    assert_fails_naming(&verify_pack(&path, &[]), &[&blob], "more than once");

    // The signature not right after the manifest.
    let mut moved = entries.clone();
    let sig = moved.remove(1);
    moved.push(sig);
    let path = h.vault.write("moved.tar.zst", repack(&moved));
    assert_fails_naming(&verify_pack(&path, &[]), &["manifest.sig"], "second entry");

    // No signature at all.
    let mut unsigned = entries.clone();
    unsigned.remove(1);
    let path = h.vault.write("unsigned.tar.zst", repack(&unsigned));
    assert_fails_naming(&verify_pack(&path, &[]), &["manifest.sig"], "not signed");
}

#[test]
fn unsafe_paths_and_links_are_refused_and_unusable_input_is_told_apart() {
    let h = History::build();
    let pack = h.exported("pack.tar.zst", &[]);
    let entries = unpack_file(&pack);
    let work = h.vault.root().to_path_buf();
    let before = common::walk(&work);

    let cases: [(&str, tar::EntryType, &[u8], &str); 6] = [
        (
            "evault-pack/../escape.txt",
            tar::EntryType::Regular,
            b"x",
            "unsafe path",
        ),
        (
            "/tmp/evault-pack-escape.txt",
            tar::EntryType::Regular,
            b"x",
            "unsafe path",
        ),
        (
            "evault-pack/a\\..\\b.txt",
            tar::EntryType::Regular,
            b"x",
            "unsafe path",
        ),
        (
            "elsewhere/readme.txt",
            tar::EntryType::Regular,
            b"x",
            "unsafe path",
        ),
        (
            "evault-pack/blobs/link",
            tar::EntryType::Symlink,
            b"",
            "symbolic link",
        ),
        (
            "evault-pack/blobs/hard",
            tar::EntryType::Link,
            b"",
            "hard link",
        ),
    ];
    for (name, kind, data, reason) in cases {
        let mut tampered = entries.clone();
        tampered.insert(3, (name.to_string(), kind, data.to_vec()));
        let raw: Vec<RawEntry<'_>> = tampered
            .iter()
            .map(|(path, kind, data)| RawEntry {
                name: path.as_bytes(),
                entry_type: *kind,
                link_name: if *kind == tar::EntryType::Regular {
                    b""
                } else {
                    b"/etc/passwd"
                },
                data,
            })
            .collect();
        let path = h
            .vault
            .write("unsafe.tar.zst", common::zstd(&common::raw_tar(&raw)));
        let run = verify_pack(&path, &[]);
        assert_eq!(run.code, 4, "{name}: {run:?}");
        assert_eq!(
            failed_paths(&run),
            BTreeSet::from([name.to_string()]),
            "{run:?}"
        );
        assert!(run.stdout_text().contains(reason), "{name}: {run:?}");
    }
    // Nothing was written anywhere.
    assert!(!work.parent().unwrap().join("escape.txt").exists());
    assert!(!Path::new("/tmp/evault-pack-escape.txt").exists());
    let mut after = common::walk(&work);
    after.retain(|p| !p.ends_with("unsafe.tar.zst"));
    assert_eq!(before, after);

    // Not a pack at all: exit 2. No pack: exit 3.
    let plain = h
        .vault
        .write("plain.tar", common::raw_tar(&[RawEntry::file("a", b"b")]));
    verify_pack(&plain, &[]).fails(2, &["not an evault evidence pack"]);
    let tar_first = h.vault.write(
        "other.tar.zst",
        common::zstd(&common::raw_tar(&[RawEntry::file(
            "evault-pack/report.md",
            b"hi",
        )])),
    );
    verify_pack(&tar_first, &[]).fails(2, &["first entry is 'evault-pack/report.md'"]);
    let empty = h.vault.write("empty.tar.zst", common::zstd(b""));
    verify_pack(&empty, &[]).fails(2, &["not an evault evidence pack"]);
    verify_pack(&h.vault.path("nowhere.tar.zst"), &[]).fails(3, &["nowhere.tar.zst"]);
    verify_pack(&pack, &["--key", "not-a-key"]).fails(2, &["--key"]);

    // A pack cut short: damaged, named, exit 4; cut inside its first block, unusable (2).
    let tar = zstd::decode_all(&fs::read(&pack).unwrap()[..]).unwrap();
    let cut = h
        .vault
        .write("cut.tar.zst", common::zstd(&tar[..tar.len() * 2 / 3]));
    let run = verify_pack(&cut, &[]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(
        run.stdout_text().contains("damaged or truncated"),
        "{run:?}"
    );
    assert!(
        run.stdout_text().contains("missing from the pack"),
        "{run:?}"
    );
    let bytes = fs::read(&pack).unwrap();
    let cut = h.vault.write("cut.tar.zst", &bytes[..bytes.len() / 2]);
    verify_pack(&cut, &[]).fails(2, &["not an evault evidence pack"]);
}

#[test]
fn a_failed_or_refused_export_leaves_no_partial_pack() {
    let h = History::build();
    let v = &h.vault;
    let args = |out: &str| -> Vec<String> {
        [
            "export", "--since", &h.since, "--until", &h.until, "-o", out,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let listing = |dir: &Path| -> BTreeSet<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };

    // A directory as -o, a directory that does not exist.
    fs::create_dir(v.path("packs")).unwrap();
    v.run(args("packs")).fails(2, &["packs", "is a directory"]);
    assert!(listing(&v.path("packs")).is_empty());
    v.run(args("nowhere/pack.tar.zst"))
        .fails(2, &["nowhere", "does not exist"]);

    // A directory that cannot be written (unless we are root, whom permissions do not stop).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let locked = v.path("locked");
        fs::create_dir(&locked).unwrap();
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o555)).unwrap();
        if fs::write(locked.join("probe"), b"").is_err() {
            let run = v.run(args("locked/pack.tar.zst"));
            run.fails(1, &["cannot create a file in", "locked"]);
            assert!(listing(&locked).is_empty());
        }
        fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
    }

    // A blob that fails verification half-way: exit 4 naming it, the old pack at -o untouched,
    // no temporary file left.
    v.write("packs/q2.tar.zst", b"the previous pack");
    let digest = str_field(&v.show_json(&h.scan), "digest");
    fs::write(v.blob_file(&digest), common::zstd(b"not the scan")).unwrap();
    let run = v.run(args("packs/q2.tar.zst"));
    run.fails(4, &[&digest]);
    assert_eq!(
        fs::read(v.path("packs/q2.tar.zst")).unwrap(),
        b"the previous pack"
    );
    assert_eq!(
        listing(&v.path("packs")),
        BTreeSet::from(["q2.tar.zst".to_string()])
    );
    v.assert_tmp_empty();
}

#[test]
fn a_large_blob_streams_through_export_and_verification() {
    let v = Vault::initialised();
    let since = instant();
    // 24 MiB that do not compress.
    let mut big = vec![0u8; 24 << 20];
    let mut state = 0x9e3779b97f4a7c15u64;
    for chunk in big.chunks_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
    }
    let id = push(
        &v,
        "image.tar",
        &big,
        &links(BLUEPRINT, VERSION, &["--kind", "other"]),
    );
    let until = instant();
    v.run([
        "export",
        "--since",
        &since,
        "--until",
        &until,
        "-o",
        "big.tar.zst",
    ])
    .success();
    let pack = v.path("big.tar.zst");
    let entries = unpack_file(&pack);
    assert_eq!(record_ids(&entries), set(&[&id]));
    assert_eq!(
        file(
            &entries,
            &format!("blobs/sha256/{}", hex::encode(sha256(&big)))
        ),
        &big[..]
    );
    verify_pack(&pack, &["--key", &vkey(&v)]).success();

    // One flipped bit deep inside the blob is found.
    let mut tampered = entries.clone();
    let slot = tampered
        .iter_mut()
        .find(|(p, ..)| p.contains("/blobs/"))
        .unwrap();
    slot.2[20 << 20] ^= 0x80;
    let rel = slot.0[TOP.len() + 1..].to_string();
    let path = v.write("big-tampered.tar.zst", repack(&tampered));
    assert_fails_naming(&verify_pack(&path, &[]), &[&rel], "do not hash to its name");
}

// ---------------------------------------------------------------------------------------------
// Over HTTP

/// Runs `evault --server URL ARGS...` with `token`, in the server's work dir.
fn remote(server: &Server, token: &str, args: &[&str]) -> Run {
    server_common::remote(server, Some(token), args)
}

/// Pushes `body` over HTTP; the record's id.
#[track_caller]
fn push_http(server: &Server, token: &str, params: &[(&str, &str)], body: &[u8]) -> String {
    let reply = server.push(token, params, body).expect(201);
    str_field(&reply.json()[0], "id")
}

#[test]
fn packs_over_http_are_signed_by_the_server_scoped_to_the_token_and_recorded_as_reads() {
    let server = Server::start();
    let ci = server.token("ci", "pusher", &[], None);
    let auditor = server.token("auditor-q2", "auditor", &[], None);
    let scoped = server.token("payments-auditor", "auditor", &["payments-*"], None);
    let since = instant();
    let checkout = [
        ("blueprint", BLUEPRINT),
        ("version", VERSION),
        ("git_sha", GIT_SHA),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut p = checkout.to_vec();
        p.extend_from_slice(extra);
        p
    };
    let sbom_id = push_http(
        &server,
        &ci,
        &with(&[("name", "sbom.json")]),
        &cyclonedx("checkout-api"),
    );
    let approval_id = push_http(
        &server,
        &ci,
        &with(&[("name", "approval.json"), ("env", "production")]),
        &approval("production", "alice@acme.example"),
    );
    let deploy_id = push_http(
        &server,
        &ci,
        &with(&[("name", "deploy.json"), ("env", "production")]),
        &deploy_receipt(),
    );
    let payments_id = push_http(
        &server,
        &ci,
        &[
            ("blueprint", OTHER_BLUEPRINT),
            ("version", "2.0.0"),
            ("git_sha", GIT_SHA),
            ("name", "payments.json"),
        ],
        &cyclonedx("payments-api"),
    );
    let until = instant();
    let key_file = log_key_file(&server.vault, "server.vkey");
    let key_arg = key_file.to_str().unwrap().to_string();

    // An auditor's pack: everything, signed with the server's vault key.
    let export = |token: &str, name: &str| {
        remote(
            &server,
            token,
            &["export", "--since", &since, "--until", &until, "-o", name],
        )
    };
    export(&auditor, "all.tar.zst").success();
    let all = server.vault.path("all.tar.zst");
    assert_eq!(
        record_ids(&unpack_file(&all)),
        set(&[&sbom_id, &approval_id, &deploy_id, &payments_id])
    );
    verify_pack(&all, &["--key", &key_arg]).success();
    let manifest = check_independently(&all, &vkey(&server.vault));
    assert_eq!(manifest["exported_by"], "auditor-q2");
    assert_eq!(manifest["query"]["scopes"], json!([]));

    // A scoped token's pack holds only its blueprints, and says so.
    export(&scoped, "payments.tar.zst").success();
    let payments = server.vault.path("payments.tar.zst");
    assert_eq!(record_ids(&unpack_file(&payments)), set(&[&payments_id]));
    let verified = verify_pack(&payments, &["--json", "--key", &key_arg])
        .success()
        .json();
    assert_eq!(verified["query"]["scopes"], json!(["payments-*"]));
    assert_eq!(verified["exported_by"], "payments-auditor");

    // A pusher may not read, so may not export; nothing is left at -o.
    export(&ci, "ci.tar.zst").fails(6, &["pusher"]);
    assert!(!server.vault.path("ci.tar.zst").exists());

    // The raw endpoint: a zstd stream, parameters checked.
    let path = with_query(
        "/v1/export",
        &[
            ("since", since.as_str()),
            ("until", until.as_str()),
            ("env", "production"),
        ],
    );
    let reply = server.get(&path, Some(&auditor)).expect(200);
    assert_eq!(
        reply.header("content-type").as_deref(),
        Some("application/zstd")
    );
    assert_eq!(
        record_ids(&unpack(&reply.body)),
        set(&[&sbom_id, &approval_id, &deploy_id])
    );
    let reply = server
        .get(
            &with_query("/v1/export", &[("since", since.as_str())]),
            Some(&auditor),
        )
        .expect(400);
    assert!(reply.text().contains("until"), "{reply:?}");
    server
        .get(
            &with_query("/v1/export", &[("since", "x"), ("until", "y")]),
            Some(&auditor),
        )
        .expect(400);

    // Who exported what is in the access review.
    thread::sleep(Duration::from_millis(300));
    let review = remote(&server, &auditor, &["--json", "audit", "access"])
        .success()
        .json();
    let exports: Vec<(String, u64)> = review["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "pack.export")
        .map(|e| {
            (
                e["token"].as_str().unwrap().to_string(),
                e["status"].as_u64().unwrap(),
            )
        })
        .collect();
    for expected in [
        ("auditor-q2".to_string(), 200),
        ("payments-auditor".to_string(), 200),
        ("ci".to_string(), 403),
        ("auditor-q2".to_string(), 400),
    ] {
        assert!(exports.contains(&expected), "{expected:?} in {exports:?}");
    }
    let event = review["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "pack.export" && e["token"] == "payments-auditor")
        .unwrap();
    assert!(
        event["target"].as_str().unwrap().contains("since="),
        "the event names the period: {event}"
    );
}
