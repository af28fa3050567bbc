//! End-to-end scenarios: the real `evault` binary on throw-away vaults.
//!
//! Every test starts from a fresh temporary directory, generates its own fixtures, runs the
//! binary with `--data-dir` and `--actor`, and checks what a user or a pipeline would see: exit
//! codes, the one-line `error:` contract, `--json` output, the bytes read back, and the bytes of
//! the vault directory itself.

#[path = "common/mod.rs"]
mod common;

use common::*;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read, Write};

// ---------------------------------------------------------------------------------------------
// Fixtures

/// An artifact digest (e.g. the container image the evidence is about).
fn image_digest() -> String {
    digest_of(b"ghcr.io/acme/checkout-api:1.4.2 image manifest")
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap()
}

fn pretty(v: &Value) -> Vec<u8> {
    let mut s = serde_json::to_string_pretty(v).unwrap();
    s.push('\n');
    s.into_bytes()
}

fn cyclonedx_sbom() -> Vec<u8> {
    pretty(&json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {"component": {"type": "container", "name": "ghcr.io/acme/checkout-api"}},
        "components": [
            {"type": "library", "name": "lodash", "version": "4.17.20", "purl": "pkg:npm/lodash@4.17.20"},
            {"type": "library", "name": "express", "version": "4.19.2", "purl": "pkg:npm/express@4.19.2"}
        ]
    }))
}

fn cyclonedx_with_vulnerabilities(analysis: bool) -> Vec<u8> {
    let mut vuln = json!({
        "id": "CVE-2021-23337",
        "source": {"name": "NVD"},
        "affects": [{"ref": "pkg:npm/lodash@4.17.20"}]
    });
    if analysis {
        vuln["analysis"] = json!({"state": "not_affected", "justification": "code_not_reachable"});
    }
    pretty(&json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "vulnerabilities": [vuln]
    }))
}

fn cyclonedx_xml() -> Vec<u8> {
    b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
      <bom xmlns=\"http://cyclonedx.org/schema/bom/1.5\" version=\"1\">\n\
      \x20 <components>\n\
      \x20   <component type=\"library\"><name>lodash</name><version>4.17.20</version></component>\n\
      \x20 </components>\n\
      </bom>\n"
        .to_vec()
}

fn spdx_json() -> Vec<u8> {
    pretty(&json!({
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": "checkout-api",
        "documentNamespace": "https://example.com/spdx/checkout-api-1.4.2",
        "creationInfo": {"created": "2025-03-14T09:26:53Z", "creators": ["Tool: e2e"]},
        "packages": [{"SPDXID": "SPDXRef-lodash", "name": "lodash", "versionInfo": "4.17.20", "downloadLocation": "NOASSERTION"}]
    }))
}

fn spdx_tag_value() -> Vec<u8> {
    b"SPDXVersion: SPDX-2.3\n\
      DataLicense: CC0-1.0\n\
      SPDXID: SPDXRef-DOCUMENT\n\
      DocumentName: checkout-api\n\
      DocumentNamespace: https://example.com/spdx/checkout-api-1.4.2\n\
      Creator: Tool: e2e\n\
      Created: 2025-03-14T09:26:53Z\n\n\
      PackageName: lodash\n\
      SPDXID: SPDXRef-lodash\n\
      PackageVersion: 4.17.20\n\
      PackageDownloadLocation: NOASSERTION\n"
        .to_vec()
}

fn sarif() -> Vec<u8> {
    pretty(&json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "semgrep", "version": "1.50.0", "rules": []}},
            "results": [{"ruleId": "js.xss", "level": "warning", "message": {"text": "possible XSS"}}]
        }]
    }))
}

fn grype() -> Vec<u8> {
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

fn trivy() -> Vec<u8> {
    pretty(&json!({
        "SchemaVersion": 2,
        "ArtifactName": "ghcr.io/acme/checkout-api:1.4.2",
        "ArtifactType": "container_image",
        "Results": [{"Target": "package-lock.json", "Class": "lang-pkgs", "Type": "npm", "Vulnerabilities": []}]
    }))
}

fn osv_scanner() -> Vec<u8> {
    pretty(&json!({
        "results": [{
            "source": {"path": "/src/package-lock.json", "type": "lockfile"},
            "packages": [{"package": {"name": "lodash", "version": "4.17.20", "ecosystem": "npm"}, "vulnerabilities": []}]
        }]
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

fn csaf_vex() -> Vec<u8> {
    pretty(&json!({
        "document": {
            "category": "csaf_vex",
            "csaf_version": "2.0",
            "publisher": {"category": "vendor", "name": "ACME", "namespace": "https://acme.example"},
            "title": "checkout-api VEX",
            "tracking": {"id": "ACME-2025-0001", "status": "final", "version": "1",
                         "initial_release_date": "2025-03-14T09:26:53Z", "current_release_date": "2025-03-14T09:26:53Z",
                         "revision_history": [{"date": "2025-03-14T09:26:53Z", "number": "1", "summary": "Initial"}]}
        },
        "product_tree": {"branches": []},
        "vulnerabilities": [{"cve": "CVE-2021-23337", "product_status": {"known_not_affected": ["CSAFPID-1"]}}]
    }))
}

const SLSA_V02: &str = "https://slsa.dev/provenance/v0.2";
const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
const CUSTOM_PREDICATE: &str = "https://example.com/attestations/code-review/v1";

/// An in-toto Statement (`v0.1` or `v1`) about `subjects` (sha256 hex).
fn statement(version: &str, predicate_type: &str, subjects: &[&str]) -> Vec<u8> {
    let predicate = if predicate_type.starts_with("https://slsa.dev/provenance/v0") {
        json!({"builder": {"id": "https://github.com/actions/runner"}, "buildType": "https://github.com/Attestations/GitHubActionsWorkflow@v1"})
    } else if predicate_type.starts_with("https://slsa.dev/provenance/") {
        json!({"buildDefinition": {"buildType": "https://actions.github.io/buildtypes/workflow/v1"},
               "runDetails": {"builder": {"id": "https://github.com/actions/runner"}}})
    } else {
        json!({"reviewers": ["maria.lopez"], "approved": true})
    };
    let subject: Vec<Value> = subjects
        .iter()
        .enumerate()
        .map(|(i, hex)| json!({"name": format!("artifact-{i}"), "digest": {"sha256": hex}}))
        .collect();
    pretty(&json!({
        "_type": format!("https://in-toto.io/Statement/{version}"),
        "subject": subject,
        "predicateType": predicate_type,
        "predicate": predicate
    }))
}

fn dsse_envelope(payload: &[u8]) -> Value {
    json!({
        "payloadType": "application/vnd.in-toto+json",
        "payload": base64(payload),
        "signatures": [{"keyid": "", "sig": base64(b"not a real signature, detection does not verify")}]
    })
}

fn verification_material() -> Value {
    json!({
        "publicKey": {"hint": "e2e-key"},
        "tlogEntries": [],
        "timestampVerificationData": {"rfc3161Timestamps": []}
    })
}

fn sigstore_message_signature(media_type: &str, signed: &[u8]) -> Vec<u8> {
    pretty(&json!({
        "mediaType": media_type,
        "verificationMaterial": verification_material(),
        "messageSignature": {
            "messageDigest": {"algorithm": "SHA2_256", "digest": base64(&Sha256::digest(signed))},
            "signature": base64(b"not a real signature")
        }
    }))
}

fn sigstore_dsse(media_type: &str, payload: &[u8]) -> Vec<u8> {
    pretty(&json!({
        "mediaType": media_type,
        "verificationMaterial": verification_material(),
        "dsseEnvelope": dsse_envelope(payload)
    }))
}

fn junit_testsuites() -> Vec<u8> {
    b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
      <testsuites name=\"checkout-api\" tests=\"2\" failures=\"0\">\n\
      \x20 <testsuite name=\"cart\" tests=\"2\">\n\
      \x20   <testcase classname=\"cart\" name=\"adds an item\"/>\n\
      \x20   <testcase classname=\"cart\" name=\"applies a coupon\"/>\n\
      \x20 </testsuite>\n\
      </testsuites>\n"
        .to_vec()
}

fn junit_testsuite() -> Vec<u8> {
    b"<testsuite name=\"payments\" tests=\"1\" failures=\"0\">\n\
      \x20 <testcase classname=\"payments\" name=\"refuses an expired card\" time=\"0.51\"/>\n\
      </testsuite>\n"
        .to_vec()
}

fn approval(decision: &str) -> Vec<u8> {
    pretty(&json!({
        "_type": "https://evault.dev/approval/v1",
        "approver": "maria.lopez",
        "decision": decision,
        "reason": "Staging soak clean for 24h; CVE-2021-23337 is not reachable.",
        "environment": "production",
        "time": "2025-03-14T09:26:53Z",
        "blueprint": {"name": BLUEPRINT, "version": VERSION},
        "git_sha": GIT_SHA
    }))
}

fn deploy(environment: &str, artifact: &str) -> Vec<u8> {
    pretty(&json!({
        "_type": "https://evault.dev/deploy/v1",
        "environment": environment,
        "artifact": artifact,
        "time": "2025-03-14T10:00:00+01:00",
        "actor": "ci-deployer",
        "blueprint": {"name": BLUEPRINT, "version": VERSION},
        "git_sha": GIT_SHA,
        "status": "succeeded",
        "target": "eu-west-1/checkout"
    }))
}

fn rollback(artifact: &str) -> Vec<u8> {
    pretty(&json!({
        "_type": "https://evault.dev/rollback/v1",
        "environment": "production",
        "from_version": VERSION,
        "to_version": "1.4.1",
        "trigger": "error rate > 5% for 5 minutes",
        "reason": "Checkout errors after the release; 1.4.1 verified healthy after rollback.",
        "time": "2025-03-15T08:00:00Z",
        "actor": "oncall-bot",
        "blueprint": BLUEPRINT,
        "incident": "INC-4242",
        "artifact": artifact
    }))
}

const MARKDOWN_NOTES: &[u8] = b"# Release notes\n\nNothing surprising in 1.4.2.\n";
const ROLLBACK_PLAN: &[u8] = b"# Rollback Plan: checkout-api 1.4.2\n\n## Trigger Conditions\n- error rate > 5% for 5 minutes\n\n## Steps\n1. `kubectl rollout undo deploy/checkout-api`\n";
const PLAIN_TEXT: &[u8] = b"build finished in 42s\nall steps green\n";

/// Deterministic bytes that are neither text nor any known binary format.
fn random_binary(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = vec![0u8, 0xff, 0x00, 0x13];
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push((x >> 24) as u8);
    }
    out
}

/// Fails the test with every collected problem at once.
#[track_caller]
fn assert_no_failures(failures: &[String]) {
    assert!(
        failures.is_empty(),
        "{} problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Count of records in the vault (up to 1000).
fn record_count(v: &Vault) -> usize {
    v.ls_json(["--limit", "1000"]).len()
}

// ---------------------------------------------------------------------------------------------
// 1. init and missing vaults

#[test]
fn init_creates_a_vault_and_a_second_init_changes_nothing() {
    let v = Vault::new();
    let first = v.init().success();
    assert!(
        first.stdout_text().contains("created"),
        "{}",
        first.stdout_text()
    );
    assert!(v.data_dir().join("index.db").is_file());
    assert!(v.data_dir().join("config.toml").is_file());
    assert!(v.data_dir().join("blobs").is_dir());
    let before = v.snapshot();

    let second = v.init().success();
    assert!(
        second.stdout_text().contains("already exists"),
        "second init should say the vault is already there: {}",
        second.stdout_text()
    );
    assert_eq!(v.snapshot(), before, "a second init changed the vault");

    let json = v.run(["--json", "init"]).success().json();
    assert_eq!(json["created"], false, "{json:#}");
    assert_eq!(record_count(&v), 0);
}

#[test]
fn commands_on_a_missing_vault_exit_3_and_say_how_to_create_one() {
    let v = Vault::new();
    v.write("sbom.json", cyclonedx_sbom());
    let commands: Vec<Vec<String>> = vec![
        with_links(&["push", "sbom.json"]),
        vec!["ls".into()],
        vec!["show".into(), "0123456789abcdef0123456789abcdef".into()],
        vec!["get".into(), digest_of(b"x")],
        vec!["fsck".into()],
        vec!["status".into()],
    ];
    for args in commands {
        v.run(&args).fails(3, &["evault init"]);
    }
    assert!(
        !v.data_dir().exists(),
        "a command other than init created the vault directory"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. push and read back

#[test]
fn a_pushed_file_reads_back_byte_for_byte_by_digest_and_by_record_id() {
    let v = Vault::initialised().with_actor("maria.lopez");
    let bytes = cyclonedx_sbom();
    v.write("sbom.json", &bytes);
    let record = v.push_one("sbom.json");
    let digest = str_field(&record, "digest");
    let id = str_field(&record, "id");
    assert_eq!(digest, digest_of(&bytes));

    let by_digest = v.run(["get", &digest]).success();
    assert!(by_digest.stdout == bytes, "get DIGEST returned other bytes");

    fs::create_dir_all(v.path("out")).unwrap();
    v.run(["get", &id, "-o", "out/copy.json"]).success();
    assert_eq!(fs::read(v.path("out/copy.json")).unwrap(), bytes);
    // A unique prefix works too.
    v.run(["get", &id[..8], "-o", "out/prefix.json"]).success();
    assert_eq!(fs::read(v.path("out/prefix.json")).unwrap(), bytes);
}

#[test]
fn show_json_has_exactly_the_record_fields_in_order() {
    let v = Vault::initialised().with_actor("maria.lopez");
    v.write("sbom.json", cyclonedx_sbom());
    let record = v.push_one("sbom.json");
    let id = str_field(&record, "id");

    let run = v.run(["--json", "show", &id]).success();
    let shown = run.json();
    const FIELDS: [&str; 19] = [
        "id",
        "kind",
        "format",
        "format_version",
        "predicate_type",
        "digest",
        "size",
        "blueprint",
        "git_sha",
        "repo",
        "run_id",
        "environment",
        "subjects",
        "producer",
        "ingested_at",
        "source_path",
        "verification",
        "retention",
        "summary",
    ];
    // Top-level keys of the pretty-printed object, in the order printed.
    let text = run.stdout_text();
    let printed: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("  \""))
        .filter_map(|l| l.split('"').next())
        .collect();
    assert_eq!(printed, FIELDS, "show --json fields:\n{text}");
    let blueprint_keys: BTreeSet<&str> = shown["blueprint"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(blueprint_keys, BTreeSet::from(["name", "version"]));
    // An SBOM under the default policy: kept one year from ingestion.
    assert_eq!(shown["retention"]["rule"], "default: 1y", "{text}");
    let ingested = str_field(&shown, "ingested_at");
    let until = str_field(&shown["retention"], "retain_until");
    assert_eq!(until[4..], ingested[4..], "{text}");
    assert_eq!(
        until[..4].parse::<i32>().unwrap(),
        ingested[..4].parse::<i32>().unwrap() + 1
    );

    assert_eq!(shown["id"], json!(id));
    assert_eq!(shown["kind"], "sbom");
    assert_eq!(shown["format"], "cyclonedx-json");
    assert_eq!(shown["format_version"], "1.5");
    assert_eq!(shown["predicate_type"], Value::Null);
    assert_eq!(shown["size"], json!(cyclonedx_sbom().len()));
    assert_eq!(
        shown["blueprint"],
        json!({"name": BLUEPRINT, "version": VERSION})
    );
    assert_eq!(shown["git_sha"], GIT_SHA);
    assert_eq!(shown["repo"], Value::Null);
    assert_eq!(shown["run_id"], Value::Null);
    assert_eq!(shown["environment"], Value::Null);
    assert_eq!(shown["subjects"], json!([]));
    assert_eq!(shown["producer"], "maria.lopez");
    assert_eq!(shown["source_path"], "sbom.json");
    let at = str_field(&shown, "ingested_at");
    assert!(at.ends_with('Z'), "ingested_at is not UTC: {at}");
    chrono::DateTime::parse_from_rfc3339(&at)
        .unwrap_or_else(|e| panic!("ingested_at {at} is not RFC 3339: {e}"));

    // show adds what the evidence says: this SBOM lists two components.
    assert_eq!(shown["summary"], json!({"components": 2}));

    // The push's own --json output is the same record plus its status.
    let mut pushed = record.clone();
    assert_eq!(pushed["status"], "created");
    pushed.as_object_mut().unwrap().remove("status");
    let mut shown = shown;
    shown.as_object_mut().unwrap().remove("summary");
    assert_eq!(pushed, shown);
}

// ---------------------------------------------------------------------------------------------
// 3. idempotency

#[test]
fn pushing_the_same_file_twice_stores_one_record_and_one_blob() {
    let v = Vault::initialised();
    v.write("sbom.json", cyclonedx_sbom());
    let args = with_links(&["sbom.json", "--run-id", "100"]);

    let first = v.push_json(&args);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["status"], "created");
    let second = v.push_json(&args);
    assert_eq!(second.len(), 1);
    assert_eq!(second[0]["status"], "present");
    assert_eq!(second[0]["id"], first[0]["id"]);

    let human = v
        .run(with_links(&["push", "sbom.json", "--run-id", "100"]))
        .success();
    assert!(
        human.stdout_text().contains("(already present)"),
        "{}",
        human.stdout_text()
    );
    assert_eq!(ids(&v.ls_json(["--limit", "10"])), ids(&first));

    // Same bytes, another run: a second record pointing at the same single blob.
    let other_run = v.push_json(with_links(&["sbom.json", "--run-id", "101"]));
    assert_eq!(other_run[0]["status"], "created");
    assert_ne!(other_run[0]["id"], first[0]["id"]);
    assert_eq!(other_run[0]["digest"], first[0]["digest"]);
    let all = v.ls_json(["--limit", "10"]);
    assert_eq!(all.len(), 2);
    assert_eq!(
        v.blob_files(),
        vec![v.blob_file(&str_field(&first[0], "digest"))],
        "the same bytes must be stored once"
    );
}

// ---------------------------------------------------------------------------------------------
// 4. detection from content

#[test]
fn a_cyclonedx_sbom_named_notes_txt_is_detected_as_an_sbom() {
    let v = Vault::initialised();
    v.write("notes.txt", cyclonedx_sbom());
    let record = v.push_one("notes.txt");
    assert_eq!(record["format"], "cyclonedx-json");
    assert_eq!(record["kind"], "sbom");
    assert_eq!(record["source_path"], "notes.txt");
}

/// One row of a detection table.
struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    extra: Vec<String>,
    format: &'static str,
    kind: &'static str,
    version: Option<&'static str>,
    predicate_type: Option<&'static str>,
    subjects: Vec<String>,
    environment: Option<&'static str>,
}

impl Case {
    fn new(name: &'static str, bytes: Vec<u8>, format: &'static str, kind: &'static str) -> Case {
        Case {
            name,
            bytes,
            extra: Vec::new(),
            format,
            kind,
            version: None,
            predicate_type: None,
            subjects: Vec::new(),
            environment: None,
        }
    }

    fn version(mut self, v: &'static str) -> Case {
        self.version = Some(v);
        self
    }

    fn predicate(mut self, p: &'static str) -> Case {
        self.predicate_type = Some(p);
        self
    }

    fn subjects(mut self, s: &[&str]) -> Case {
        self.subjects = s.iter().map(|s| s.to_string()).collect();
        self.subjects.sort();
        self
    }

    fn environment(mut self, e: &'static str) -> Case {
        self.environment = Some(e);
        self
    }

    fn args(mut self, a: &[&str]) -> Case {
        self.extra = a.iter().map(|s| s.to_string()).collect();
        self
    }
}

/// Pushes every case as its own file (named `case-N.dat`, so the name says nothing) and checks
/// format, kind, version, predicate type, subjects and environment. Collects every mismatch.
fn check_detection(cases: Vec<Case>) {
    let v = Vault::initialised();
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let file = format!("case-{i}.dat");
        v.write(&file, &case.bytes);
        let mut args = with_links(&["--json", "push", &file]);
        args.extend(case.extra.iter().cloned());
        let run = v.run(&args);
        if run.code != 0 {
            failures.push(format!(
                "{}: push exited {}: {}",
                case.name,
                run.code,
                run.stderr.trim()
            ));
            continue;
        }
        let records = records(&run);
        let [r] = records.as_slice() else {
            failures.push(format!(
                "{}: expected one record, got {records:#?}",
                case.name
            ));
            continue;
        };
        let got = (
            r["format"].as_str().unwrap_or("?"),
            r["kind"].as_str().unwrap_or("?"),
        );
        if got != (case.format, case.kind) {
            failures.push(format!(
                "{}: detected {}/{}, expected {}/{}",
                case.name, got.0, got.1, case.format, case.kind
            ));
        }
        let checks = [
            ("format_version", json!(case.version)),
            ("predicate_type", json!(case.predicate_type)),
            ("subjects", json!(case.subjects)),
            ("environment", json!(case.environment)),
            ("digest", json!(digest_of(&case.bytes))),
            ("source_path", json!(file)),
        ];
        for (field, want) in checks {
            let got = &r[field];
            if *got != want {
                failures.push(format!("{}: {field} is {got}, expected {want}", case.name));
            }
        }
    }
    assert_no_failures(&failures);
}

#[test]
fn json_and_text_formats_are_detected_from_content() {
    let img = image_digest();
    let other = digest_of(b"another artifact");
    let upper = hex_of(&other).to_ascii_uppercase();
    let signed = b"the released tarball";
    let v1_provenance = statement("v1", SLSA_V1, &[hex_of(&img)]);
    let custom = statement("v1", CUSTOM_PREDICATE, &[hex_of(&other)]);

    let cases = vec![
        Case::new(
            "CycloneDX JSON SBOM",
            cyclonedx_sbom(),
            "cyclonedx-json",
            "sbom",
        )
        .version("1.5"),
        Case::new(
            "CycloneDX JSON with analysed vulnerabilities",
            cyclonedx_with_vulnerabilities(true),
            "cyclonedx-json",
            "vex",
        )
        .version("1.6"),
        Case::new(
            "CycloneDX JSON with vulnerabilities only",
            cyclonedx_with_vulnerabilities(false),
            "cyclonedx-json",
            "vuln-scan",
        )
        .version("1.6"),
        Case::new("SPDX JSON", spdx_json(), "spdx-json", "sbom").version("2.3"),
        Case::new("SPDX tag-value", spdx_tag_value(), "spdx-tag-value", "sbom").version("2.3"),
        Case::new("SARIF 2.1.0", sarif(), "sarif", "vuln-scan").version("2.1.0"),
        Case::new("Grype JSON", grype(), "grype-json", "vuln-scan").version("0.74.0"),
        Case::new("Trivy JSON", trivy(), "trivy-json", "vuln-scan").version("2"),
        Case::new(
            "OSV-Scanner JSON",
            osv_scanner(),
            "osv-scanner-json",
            "vuln-scan",
        ),
        Case::new("OpenVEX", openvex(), "openvex", "vex").version("v0.2.0"),
        Case::new("CSAF VEX", csaf_vex(), "csaf", "vex").version("2.0"),
        Case::new(
            "in-toto Statement v0.1 with SLSA provenance",
            statement("v0.1", SLSA_V02, &[hex_of(&img)]),
            "intoto-statement",
            "provenance",
        )
        .version("v0.1")
        .predicate(SLSA_V02)
        .subjects(&[&img]),
        Case::new(
            "in-toto Statement v1 with SLSA provenance",
            v1_provenance.clone(),
            "intoto-statement",
            "provenance",
        )
        .version("v1")
        .predicate(SLSA_V1)
        .subjects(&[&img]),
        Case::new(
            "in-toto Statement v1 with another predicate and two subjects",
            statement("v1", CUSTOM_PREDICATE, &[hex_of(&img), &upper]),
            "intoto-statement",
            "attestation",
        )
        .version("v1")
        .predicate(CUSTOM_PREDICATE)
        .subjects(&[&img, &other]),
        Case::new(
            "DSSE envelope of a provenance statement",
            pretty(&dsse_envelope(&v1_provenance)),
            "dsse-envelope",
            "provenance",
        )
        .predicate(SLSA_V1)
        .subjects(&[&img]),
        Case::new(
            "DSSE envelope of another statement",
            pretty(&dsse_envelope(&custom)),
            "dsse-envelope",
            "attestation",
        )
        .predicate(CUSTOM_PREDICATE)
        .subjects(&[&other]),
        Case::new(
            "Sigstore bundle v0.1 with a message signature",
            sigstore_message_signature(
                "application/vnd.dev.sigstore.bundle+json;version=0.1",
                signed,
            ),
            "sigstore-bundle",
            "signature",
        )
        .version("v0.1")
        .subjects(&[&digest_of(signed)]),
        Case::new(
            "Sigstore bundle v0.2 with a DSSE provenance",
            sigstore_dsse(
                "application/vnd.dev.sigstore.bundle+json;version=0.2",
                &v1_provenance,
            ),
            "sigstore-bundle",
            "provenance",
        )
        .version("v0.2")
        .predicate(SLSA_V1)
        .subjects(&[&img]),
        Case::new(
            "Sigstore bundle v0.3 with a DSSE attestation",
            sigstore_dsse("application/vnd.dev.sigstore.bundle.v0.3+json", &custom),
            "sigstore-bundle",
            "attestation",
        )
        .version("v0.3")
        .predicate(CUSTOM_PREDICATE)
        .subjects(&[&other]),
        Case::new(
            "Sigstore bundle v0.3 with a message signature",
            sigstore_message_signature("application/vnd.dev.sigstore.bundle.v0.3+json", b"v3"),
            "sigstore-bundle",
            "signature",
        )
        .version("v0.3")
        .subjects(&[&digest_of(b"v3")]),
        Case::new(
            "evault approval",
            approval("approve"),
            "evault-approval",
            "approval",
        )
        .environment("production"),
        Case::new(
            "evault deploy receipt",
            deploy("staging", &img),
            "evault-deploy",
            "deploy",
        )
        .subjects(&[&img])
        .environment("staging"),
        Case::new(
            "evault deploy receipt with a matching --env",
            deploy("production", &img),
            "evault-deploy",
            "deploy",
        )
        .args(&["--env", "production"])
        .subjects(&[&img])
        .environment("production"),
        Case::new(
            "evault rollback record",
            rollback(&other),
            "evault-rollback",
            "rollback",
        )
        .subjects(&[&other])
        .environment("production"),
        Case::new("Markdown", MARKDOWN_NOTES.to_vec(), "markdown", "other"),
        Case::new(
            "Markdown with a Rollback Plan heading",
            ROLLBACK_PLAN.to_vec(),
            "markdown",
            "rollback-plan",
        ),
        Case::new(
            "Markdown declared a rollback plan",
            b"# Notes for on-call\n\nRevert with `helm rollback checkout 41`.\n".to_vec(),
            "markdown",
            "rollback-plan",
        )
        .args(&["--kind", "rollback-plan"]),
        Case::new("plain text", PLAIN_TEXT.to_vec(), "text", "other"),
        Case::new("random binary", random_binary(4096), "unknown", "other"),
        Case::new(
            "flag subjects join content subjects",
            v1_provenance.clone(),
            "intoto-statement",
            "provenance",
        )
        .args(&["--subject", &other.to_ascii_uppercase()])
        .version("v1")
        .predicate(SLSA_V1)
        .subjects(&[&img, &other]),
    ];
    check_detection(cases);
}

#[test]
fn xml_formats_are_detected_from_content() {
    let vex_xml = b"<?xml version=\"1.0\"?>\n\
        <bom xmlns=\"http://cyclonedx.org/schema/bom/1.4\" version=\"1\">\n\
        \x20 <vulnerabilities><vulnerability><id>CVE-2021-23337</id></vulnerability></vulnerabilities>\n\
        </bom>\n"
        .to_vec();
    let cases = vec![
        Case::new("CycloneDX XML", cyclonedx_xml(), "cyclonedx-xml", "sbom").version("1.5"),
        Case::new("CycloneDX XML VEX", vex_xml, "cyclonedx-xml", "vex").version("1.4"),
        Case::new(
            "JUnit XML with a testsuites root",
            junit_testsuites(),
            "junit-xml",
            "test-report",
        ),
        Case::new(
            "JUnit XML with a testsuite root",
            junit_testsuite(),
            "junit-xml",
            "test-report",
        ),
    ];
    check_detection(cases);
}

#[test]
fn a_deploy_receipt_for_another_environment_than_env_is_refused() {
    let v = Vault::initialised();
    v.write("deploy.json", deploy("staging", &image_digest()));
    let before = v.snapshot();
    v.run(with_links(&["push", "deploy.json", "--env", "production"]))
        .fails(2, &["deploy.json", "staging", "production"]);
    assert_eq!(v.snapshot(), before);
}

/// A CycloneDX SBOM of over 1 MiB, with `specVersion` after the components.
fn large_cyclonedx() -> Vec<u8> {
    let components: Vec<Value> = (0..12_000)
        .map(|i| {
            json!({"type": "library", "name": format!("pkg-{i}"), "version": format!("1.0.{i}"),
                   "purl": format!("pkg:npm/pkg-{i}@1.0.{i}")})
        })
        .collect();
    let bytes = serde_json::to_vec(&json!({
        "bomFormat": "CycloneDX",
        "components": components,
        "specVersion": "1.5"
    }))
    .unwrap();
    assert!(bytes.len() > 1 << 20, "{} bytes", bytes.len());
    bytes
}

#[test]
fn files_over_a_mebibyte_are_detected_while_streaming() {
    let v = Vault::initialised();
    let sbom = large_cyclonedx();
    let mut text = Vec::new();
    while text.len() <= 3 << 20 {
        text.extend_from_slice(b"2025-03-14T09:26:53Z INFO request served\n");
    }
    let binary = random_binary(3 << 20);
    v.write("large.json", &sbom);
    v.write("large.log", &text);
    v.write("large.bin", &binary);
    let mut truncated = sbom.clone();
    truncated.truncate(sbom.len() - 10);
    v.write("truncated.json", &truncated);

    let expected = [
        ("large.json", &sbom, "cyclonedx-json", "sbom"),
        ("large.log", &text, "text", "other"),
        ("large.bin", &binary, "unknown", "other"),
        ("truncated.json", &truncated, "text", "other"),
    ];
    let run = v
        .run(with_links(&[
            "--json",
            "push",
            "large.json",
            "large.log",
            "large.bin",
            "truncated.json",
        ]))
        .success();
    let records = records(&run);
    assert_eq!(records.len(), 4, "{records:#?}");
    for (path, bytes, format, kind) in expected {
        let r = records
            .iter()
            .find(|r| r["source_path"] == path)
            .unwrap_or_else(|| panic!("no record for {path}"));
        assert_eq!(
            (r["format"].as_str(), r["kind"].as_str()),
            (Some(format), Some(kind)),
            "{path}"
        );
        assert_eq!(r["digest"], json!(digest_of(bytes)), "{path}");
        assert_eq!(r["size"], json!(bytes.len()), "{path}");
        let back = v.run(["get", &str_field(r, "digest")]).success();
        assert!(back.stdout == *bytes, "{path} did not read back intact");
    }
    let warnings = run.warnings();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(warnings[0].contains("truncated.json"), "{}", warnings[0]);

    // The same SBOM from stdin (no size known in advance).
    let records = v.push_json_stdin(
        with_links(&["-", "--stdin-name", "piped.json", "--run-id", "2"]),
        &sbom,
    );
    assert_eq!(records[0]["format"], "cyclonedx-json");
    assert_eq!(records[0]["digest"], json!(digest_of(&sbom)));
    assert_eq!(v.blob_files().len(), 4, "the piped SBOM is the same blob");
}

// ---------------------------------------------------------------------------------------------
// 5. declared kinds

#[test]
fn a_declared_kind_the_content_contradicts_fails_and_stores_nothing() {
    let v = Vault::initialised();
    v.write("readme.txt", PLAIN_TEXT);
    let before = v.snapshot();
    let run = v.run(with_links(&["push", "readme.txt", "--kind", "sbom"]));
    run.fails(2, &["readme.txt", "declares kind sbom"]);
    assert_eq!(v.snapshot(), before, "a refused push changed the vault");
    v.assert_tmp_empty();
    assert_eq!(record_count(&v), 0);
}

#[test]
fn a_truncated_json_file_is_stored_as_text_with_a_warning() {
    let v = Vault::initialised();
    let mut bytes = cyclonedx_sbom();
    bytes.truncate(bytes.len() / 2);
    v.write("sbom.json", &bytes);
    let run = v
        .run(with_links(&["--json", "push", "sbom.json"]))
        .success();
    let records = records(&run);
    assert_eq!(records.len(), 1);
    let format = records[0]["format"].as_str().unwrap();
    assert!(
        format == "text" || format == "unknown",
        "a truncated JSON was stored as {format}"
    );
    assert_eq!(records[0]["kind"], "other");
    let warnings = run.warnings();
    assert_eq!(warnings.len(), 1, "stderr:\n{}", run.stderr);
    assert!(warnings[0].contains("sbom.json"), "{}", warnings[0]);
    assert_no_panic(&run.stderr);

    // Declaring it an SBOM says why it is not one.
    v.write("sbom2.json", [&bytes[..], b" "].concat());
    v.run(with_links(&["push", "sbom2.json", "--kind", "sbom"]))
        .fails(2, &["sbom2.json", "declares kind sbom"]);
}

// ---------------------------------------------------------------------------------------------
// 6. bundle atomicity

/// Writes a bundle directory under `dir` from (path, bytes) pairs.
fn write_bundle(v: &Vault, dir: &str, files: &[(&str, Vec<u8>)]) {
    for (path, bytes) in files {
        v.write(&format!("{dir}/{path}"), bytes);
    }
}

fn manifest(files: Value) -> Vec<u8> {
    pretty(&json!({
        "_type": "https://evault.dev/bundle/v1",
        "blueprint": {"name": BLUEPRINT, "version": VERSION},
        "git_sha": GIT_SHA,
        "run_id": "8812",
        "files": files
    }))
}

#[test]
fn a_bundle_with_one_invalid_file_leaves_the_vault_unchanged() {
    struct Bad {
        name: &'static str,
        files: Vec<(&'static str, Vec<u8>)>,
        archive: bool,
        needles: [&'static str; 2],
    }
    let valid = || {
        vec![
            ("a-sbom.json", cyclonedx_sbom()),
            ("b-scan.sarif", sarif()),
            ("docs/rollback.md", ROLLBACK_PLAN.to_vec()),
            ("z-notes.txt", PLAIN_TEXT.to_vec()),
        ]
    };
    let with = |extra: Vec<(&'static str, Vec<u8>)>| {
        let mut files = valid();
        files.extend(extra);
        files
    };
    let cases = [
        Bad {
            name: "an approval whose decision is \"maybe\"",
            files: with(vec![("m/approval.json", approval("maybe"))]),
            archive: false,
            needles: ["m/approval.json", "decision"],
        },
        Bad {
            name: "the same, in a tar archive",
            files: with(vec![("m/approval.json", approval("maybe"))]),
            archive: true,
            needles: ["m/approval.json", "decision"],
        },
        Bad {
            name: "plain text the manifest declares an SBOM",
            files: with(vec![
                (
                    "readme.txt",
                    PLAIN_TEXT.iter().chain(b"v2\n").copied().collect(),
                ),
                (
                    "evault-bundle.json",
                    manifest(json!([{"path": "readme.txt", "kind": "sbom"}])),
                ),
            ]),
            archive: false,
            needles: ["readme.txt", "declares kind sbom"],
        },
        Bad {
            name: "a DSSE envelope whose payload is not base64",
            files: with(vec![(
                "sig/envelope.json",
                pretty(
                    &json!({"payloadType": "application/vnd.in-toto+json", "payload": "%%% not base64 %%%", "signatures": []}),
                ),
            )]),
            archive: false,
            needles: ["sig/envelope.json", "base64"],
        },
    ];
    let v = Vault::initialised();
    // Something already in the vault, so that the snapshot covers a populated index.
    v.write("existing.json", spdx_json());
    v.push_one("existing.json");
    let before = v.snapshot();
    let listed = v.ls_json(["--limit", "100"]);

    for (i, case) in cases.iter().enumerate() {
        let dir = format!("bundle-{i}");
        write_bundle(&v, &dir, &case.files);
        let target = if case.archive {
            let entries: Vec<(&str, &[u8])> =
                case.files.iter().map(|(p, b)| (*p, b.as_slice())).collect();
            let name = format!("bundle-{i}.tar");
            v.write(&name, tar_of(&entries));
            name
        } else {
            dir
        };
        let run = v.run(with_links(&["push", &target, "--run-id", "8812"]));
        assert_eq!(run.code, 2, "{}: {run:#?}", case.name);
        run.fails(2, &case.needles);
        assert_eq!(v.snapshot(), before, "{}: the vault changed", case.name);
        v.assert_tmp_empty();
        assert_eq!(
            v.ls_json(["--limit", "100"]),
            listed,
            "{}: ls changed",
            case.name
        );
    }
    // The valid files alone go in.
    write_bundle(&v, "good", &valid());
    let pushed = v.push_json(with_links(&["good", "--run-id", "8812"]));
    assert_eq!(pushed.len(), 4);
    assert_ne!(
        v.snapshot(),
        before,
        "the snapshot must see a successful push"
    );
}

// ---------------------------------------------------------------------------------------------
// 7. bundle manifest

#[test]
fn a_bundle_manifest_supplies_links_kinds_and_subjects() {
    let v = Vault::initialised();
    let img = image_digest();
    let extra = digest_of(b"sbom generator input");
    let manifest = pretty(&json!({
        "_type": "https://evault.dev/bundle/v1",
        "blueprint": {"name": "payments", "version": "2.0.1"},
        "git_sha": GIT_SHA.to_ascii_uppercase(),
        "repo": "https://github.com/acme/payments",
        "run_id": "8812",
        "subjects": [img],
        "files": [
            {"path": "sbom.json", "kind": "sbom", "format": "cyclonedx-json", "subjects": [extra]},
            {"path": "ops/plan.md", "kind": "rollback-plan"}
        ]
    }));
    write_bundle(
        &v,
        "lane",
        &[
            ("evault-bundle.json", manifest.clone()),
            ("sbom.json", cyclonedx_sbom()),
            ("ops/plan.md", MARKDOWN_NOTES.to_vec()),
            ("notes.txt", PLAIN_TEXT.to_vec()),
        ],
    );
    let records = v.push_json(["lane", "--env", "staging"]);
    let by_path: std::collections::BTreeMap<String, &Value> = records
        .iter()
        .map(|r| (str_field(r, "source_path"), r))
        .collect();
    assert_eq!(
        by_path.keys().map(String::as_str).collect::<Vec<_>>(),
        ["notes.txt", "ops/plan.md", "sbom.json"],
        "the manifest itself must not become a record"
    );
    for r in &records {
        assert_eq!(
            r["blueprint"],
            json!({"name": "payments", "version": "2.0.1"})
        );
        assert_eq!(r["git_sha"], GIT_SHA, "git_sha is stored in lowercase");
        assert_eq!(r["repo"], "https://github.com/acme/payments");
        assert_eq!(r["run_id"], "8812");
        assert_eq!(
            r["environment"], "staging",
            "--env fills what the manifest leaves out"
        );
    }
    let mut sbom_subjects = vec![img.clone(), extra.clone()];
    sbom_subjects.sort();
    assert_eq!(by_path["sbom.json"]["kind"], "sbom");
    assert_eq!(by_path["sbom.json"]["subjects"], json!(sbom_subjects));
    assert_eq!(by_path["ops/plan.md"]["kind"], "rollback-plan");
    assert_eq!(by_path["ops/plan.md"]["subjects"], json!([img]));
    assert_eq!(by_path["notes.txt"]["kind"], "other");
    assert_eq!(by_path["notes.txt"]["format"], "text");
    assert_eq!(by_path["notes.txt"]["subjects"], json!([img]));

    // The manifest's bytes are not stored.
    assert!(!v.blob_file(&digest_of(&manifest)).exists());
    assert_eq!(v.blob_files().len(), 3);
}

#[test]
fn bad_bundle_manifests_are_refused_with_the_reason() {
    struct Bad {
        name: &'static str,
        manifest: Value,
        args: &'static [&'static str],
        needles: &'static [&'static str],
    }
    let base = json!({
        "_type": "https://evault.dev/bundle/v1",
        "blueprint": {"name": BLUEPRINT, "version": VERSION},
        "git_sha": GIT_SHA,
        "files": [{"path": "sbom.json", "kind": "sbom"}]
    });
    let with = |f: &dyn Fn(&mut Value)| {
        let mut m = base.clone();
        f(&mut m);
        m
    };
    let cases = [
        Bad {
            name: "a flag that conflicts with the manifest",
            manifest: base.clone(),
            args: &["--version", "9.9.9"],
            needles: &["--version '9.9.9'", "blueprint.version '1.4.2'"],
        },
        Bad {
            name: "a conflicting --git-sha",
            manifest: base.clone(),
            args: &["--git-sha", "fedcba9876543210fedcba9876543210fedcba98"],
            needles: &["--git-sha", "git_sha"],
        },
        Bad {
            name: "a listed file that is not in the bundle",
            manifest: with(&|m| {
                m["files"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"path": "missing/scan.json"}))
            }),
            args: &[],
            needles: &["missing/scan.json", "not in the bundle"],
        },
        Bad {
            name: "an unknown top-level field",
            manifest: with(&|m| m["blueprint_owner"] = json!("team-a")),
            args: &[],
            needles: &["evault-bundle.json", "blueprint_owner"],
        },
        Bad {
            name: "an unknown field in a file entry",
            manifest: with(&|m| m["files"][0]["colour"] = json!("blue")),
            args: &[],
            needles: &["evault-bundle.json", "colour"],
        },
        Bad {
            name: "a path that escapes the bundle",
            manifest: with(&|m| m["files"][0]["path"] = json!("../sbom.json")),
            args: &[],
            needles: &["evault-bundle.json", "files[0].path"],
        },
        Bad {
            name: "a kind that does not exist",
            manifest: with(&|m| m["files"][0]["kind"] = json!("sboms")),
            args: &[],
            needles: &["evault-bundle.json", "sboms"],
        },
        Bad {
            name: "a declared format the content contradicts",
            manifest: with(&|m| m["files"][0] = json!({"path": "sbom.json", "format": "sarif"})),
            args: &[],
            needles: &["sbom.json", "declares format sarif"],
        },
        Bad {
            name: "no links at all",
            manifest: json!({"_type": "https://evault.dev/bundle/v1"}),
            args: &[],
            needles: &["--blueprint", "blueprint.name"],
        },
    ];
    let v = Vault::initialised();
    let before = v.snapshot();
    for (i, case) in cases.iter().enumerate() {
        let dir = format!("bundle-{i}");
        write_bundle(
            &v,
            &dir,
            &[
                ("evault-bundle.json", pretty(&case.manifest)),
                ("sbom.json", cyclonedx_sbom()),
            ],
        );
        let mut args = vec!["push", dir.as_str()];
        args.extend(case.args);
        let run = v.run(&args);
        assert_eq!(run.code, 2, "{}: {run:#?}", case.name);
        run.fails(2, case.needles);
        assert_eq!(v.snapshot(), before, "{}: the vault changed", case.name);
        v.assert_tmp_empty();
    }
}

// ---------------------------------------------------------------------------------------------
// 8. archives

fn archive_bundle_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "evault-bundle.json",
            manifest(json!([{"path": "ops/plan.md", "kind": "rollback-plan"}])),
        ),
        ("sbom.json", cyclonedx_sbom()),
        ("reports/scan.sarif", sarif()),
        ("reports/grype.json", grype()),
        ("ops/plan.md", MARKDOWN_NOTES.to_vec()),
        (
            "provenance.json",
            statement("v1", SLSA_V1, &[hex_of(&image_digest())]),
        ),
        ("notes.txt", PLAIN_TEXT.to_vec()),
    ]
}

/// (id, source_path, kind, format) of each record, sorted.
fn summary(records: &[Value]) -> Vec<(String, String, String, String)> {
    let mut out: Vec<_> = records
        .iter()
        .map(|r| {
            (
                str_field(r, "id"),
                str_field(r, "source_path"),
                str_field(r, "kind"),
                str_field(r, "format"),
            )
        })
        .collect();
    out.sort();
    out
}

/// The archive bundle as a tar, entries in reverse order, one with a `./` prefix.
fn archive_bundle_tar() -> Vec<u8> {
    let files = archive_bundle_files();
    let mut entries: Vec<(String, &[u8])> = files
        .iter()
        .rev()
        .map(|(p, b)| (p.to_string(), b.as_slice()))
        .collect();
    entries[0].0 = format!("./{}", entries[0].0);
    let entries: Vec<(&str, &[u8])> = entries.iter().map(|(p, b)| (p.as_str(), *b)).collect();
    tar_of(&entries)
}

fn directory_push_summary() -> Vec<(String, String, String, String)> {
    let v = Vault::initialised();
    write_bundle(&v, "bundle", &archive_bundle_files());
    let records = v.push_json(["bundle"]);
    assert_eq!(records.len(), 6, "{records:#?}");
    summary(&records)
}

fn check_archive_matches_directory(compress: fn(&[u8]) -> Vec<u8>) {
    let expected = directory_push_summary();
    let v = Vault::initialised();
    v.write("bundle.bin", compress(&archive_bundle_tar()));
    let records = v.push_json(["bundle.bin"]);
    assert_eq!(summary(&records), expected);
    v.run(["fsck"]).success();
}

#[test]
fn a_tar_archive_yields_the_same_records_as_the_directory() {
    check_archive_matches_directory(|b| b.to_vec());
}

#[test]
fn a_tar_gz_archive_yields_the_same_records_as_the_directory() {
    check_archive_matches_directory(gzip);
}

#[test]
fn a_tar_zst_archive_yields_the_same_records_as_the_directory() {
    check_archive_matches_directory(zstd);
}

#[test]
fn no_expand_stores_an_archive_as_one_blob() {
    let v = Vault::initialised();
    let archive = gzip(&archive_bundle_tar());
    v.write("bundle.bin", &archive);
    let records = v.push_json(["bundle.bin", "--no-expand"].into_iter().chain(LINKS));
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0]["source_path"], "bundle.bin");
    assert_eq!(records[0]["digest"], json!(digest_of(&archive)));
    assert_eq!(records[0]["format"], "unknown");
    let back = v.run(["get", &str_field(&records[0], "digest")]).success();
    assert!(
        back.stdout == archive,
        "the archive did not read back intact"
    );
}

// ---------------------------------------------------------------------------------------------
// 9. path traversal and links

#[test]
fn archive_entries_that_leave_the_bundle_are_refused() {
    let sbom = cyclonedx_sbom();
    let cases: Vec<(&str, Vec<u8>, &[&str])> = vec![
        (
            "a `..` path",
            raw_tar(&[
                RawEntry::file("sbom.json", &sbom),
                RawEntry::file("../evil.json", b"{}"),
            ]),
            &["escapes the bundle", "../evil.json"],
        ),
        (
            "a `..` in the middle of a path",
            raw_tar(&[RawEntry::file("reports/../../evil.json", b"{}")]),
            &["escapes the bundle"],
        ),
        (
            "an absolute path",
            raw_tar(&[
                RawEntry::file("sbom.json", &sbom),
                RawEntry::file("/etc/cron.d/evil", b"* * * * * root true\n"),
            ]),
            &["absolute path", "/etc/cron.d/evil"],
        ),
        (
            "a symlink to ../../etc/passwd",
            raw_tar(&[
                RawEntry::file("sbom.json", &sbom),
                RawEntry::symlink("docs/passwd", "../../etc/passwd"),
            ]),
            &["points outside the bundle", "docs/passwd"],
        ),
        (
            "a symlink to an absolute path",
            raw_tar(&[RawEntry::symlink("passwd", "/etc/passwd")]),
            &["points outside the bundle"],
        ),
        (
            "a hard link out of the archive",
            raw_tar(&[
                RawEntry::file("sbom.json", &sbom),
                RawEntry {
                    name: b"hard",
                    entry_type: tar::EntryType::Link,
                    link_name: b"../outside",
                    data: b"",
                },
            ]),
            &["points outside the bundle", "hard"],
        ),
    ];
    let v = Vault::initialised();
    let before = v.snapshot();
    for (i, (name, tar, needles)) in cases.iter().enumerate() {
        for (suffix, bytes) in [("tar", tar.clone()), ("tgz", gzip(tar))] {
            let file = format!("evil-{i}.{suffix}");
            v.write(&file, bytes);
            let run = v.run(with_links(&["push", &file]));
            assert_eq!(run.code, 2, "{name} ({suffix}): {run:#?}");
            run.fails(2, needles);
            assert_eq!(v.snapshot(), before, "{name} ({suffix}): the vault changed");
            v.assert_tmp_empty();
        }
    }
}

#[test]
fn a_symlink_inside_an_archive_to_a_file_inside_is_skipped_with_a_warning() {
    let v = Vault::initialised();
    let sbom = cyclonedx_sbom();
    v.write(
        "bundle.tar",
        raw_tar(&[
            RawEntry::file("reports/sbom.json", &sbom),
            RawEntry::symlink("latest/sbom.json", "../reports/sbom.json"),
        ]),
    );
    let run = v
        .run(with_links(&["--json", "push", "bundle.tar"]))
        .success();
    let records = records(&run);
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0]["source_path"], "reports/sbom.json");
    let warnings = run.warnings();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(warnings[0].contains("latest/sbom.json"), "{}", warnings[0]);
}

#[test]
fn a_directory_bundle_with_a_symlink_to_a_file_outside_is_refused() {
    let v = Vault::initialised();
    v.write("secret.txt", "not for the vault\n");
    v.write("bundle/sbom.json", cyclonedx_sbom());
    std::os::unix::fs::symlink(v.path("secret.txt"), v.path("bundle/leak.txt")).unwrap();
    let before = v.snapshot();
    v.run(with_links(&["push", "bundle"]))
        .fails(2, &["leak.txt", "points outside the bundle"]);
    assert_eq!(v.snapshot(), before);
    v.assert_tmp_empty();

    // A relative link climbing out is refused the same way.
    fs::remove_file(v.path("bundle/leak.txt")).unwrap();
    std::os::unix::fs::symlink("../secret.txt", v.path("bundle/leak.txt")).unwrap();
    v.run(with_links(&["push", "bundle"]))
        .fails(2, &["leak.txt", "points outside the bundle"]);
    assert_eq!(v.snapshot(), before);
}

#[test]
fn a_directory_bundle_with_a_symlink_to_a_file_inside_stores_the_target_once() {
    let v = Vault::initialised();
    let sbom = cyclonedx_sbom();
    v.write("bundle/reports/sbom.json", &sbom);
    fs::create_dir_all(v.path("bundle/latest")).unwrap();
    std::os::unix::fs::symlink("../reports/sbom.json", v.path("bundle/latest/sbom.json")).unwrap();
    let run = v.run(with_links(&["--json", "push", "bundle"])).success();
    let records = records(&run);
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0]["source_path"], "reports/sbom.json");
    assert_eq!(records[0]["digest"], json!(digest_of(&sbom)));
    let warnings = run.warnings();
    assert_eq!(warnings.len(), 1, "{}", run.stderr);
    assert!(warnings[0].contains("latest/sbom.json"), "{}", warnings[0]);
    assert_eq!(v.blob_files().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// 10. limits

#[test]
fn a_file_over_max_file_bytes_is_refused() {
    let v = Vault::initialised();
    v.write_config("[limits]\nmax_file_bytes = 1000\n");
    v.write("big.txt", "x".repeat(1001));
    v.write("fits.txt", "y".repeat(1000));
    let before = v.snapshot();
    v.run(with_links(&["push", "big.txt"]))
        .fails(2, &["big.txt", "limits.max_file_bytes"]);
    assert_eq!(v.snapshot(), before);
    v.assert_tmp_empty();
    let record = v.push_one("fits.txt");
    assert_eq!(record["size"], 1000);
}

#[test]
fn a_push_of_more_than_max_push_files_is_refused() {
    let v = Vault::initialised();
    v.write_config("[limits]\nmax_push_files = 2\n");
    for name in ["a.txt", "b.txt", "c.txt"] {
        v.write(&format!("three/{name}"), format!("file {name}\n"));
    }
    v.write("two/a.txt", "file a\n");
    v.write("two/b.txt", "file b\n");
    let before = v.snapshot();
    v.run(with_links(&["push", "three"]))
        .fails(2, &["limits.max_push_files"]);
    // Two separate arguments count together.
    v.run(with_links(&["push", "two", "three/a.txt"]))
        .fails(2, &["limits.max_push_files"]);
    assert_eq!(v.snapshot(), before);
    v.assert_tmp_empty();
    assert_eq!(v.push_json(with_links(&["two"])).len(), 2);
}

#[test]
fn a_push_larger_than_max_push_bytes_is_refused() {
    let v = Vault::initialised();
    v.write_config("[limits]\nmax_push_bytes = 3000\n");
    v.write("a.txt", "a".repeat(2000));
    v.write("b.txt", "b".repeat(2000));
    let before = v.snapshot();
    v.run(with_links(&["push", "a.txt", "b.txt"]))
        .fails(2, &["limits.max_push_bytes"]);
    assert_eq!(v.snapshot(), before);
    v.assert_tmp_empty();
}

/// A tar holding one file of `size` zero bytes, streamed into `out` (nothing big in memory).
fn zero_bomb_tar<W: Write>(size: u64, out: W) -> W {
    let mut builder = tar::Builder::new(out);
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, "zeros.bin", io::repeat(0).take(size))
        .unwrap();
    builder.into_inner().unwrap()
}

fn check_decompression_bomb(file: &str, archive: Vec<u8>) {
    assert!(
        archive.len() < 256 * 1024,
        "{file}: the bomb should be small, is {} bytes",
        archive.len()
    );
    let v = Vault::initialised();
    v.write_config("[limits]\nmax_push_bytes = 1048576\n");
    v.write(file, &archive);
    let before = v.snapshot();
    v.run(with_links(&["push", file]))
        .fails(2, &["limits.max_push_bytes"]);
    assert_eq!(v.snapshot(), before, "{file}: the vault changed");
    v.assert_tmp_empty();
}

const BOMB_SIZE: u64 = 64 << 20;

#[test]
fn a_tar_zst_decompression_bomb_stops_at_max_push_bytes() {
    let encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    let archive = zero_bomb_tar(BOMB_SIZE, encoder).finish().unwrap();
    check_decompression_bomb("bomb.tar.zst", archive);
}

#[test]
fn a_tar_gz_decompression_bomb_stops_at_max_push_bytes() {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let archive = zero_bomb_tar(BOMB_SIZE, encoder).finish().unwrap();
    check_decompression_bomb("bomb.tgz", archive);
}

#[test]
fn a_broken_config_file_is_named_in_the_error() {
    let v = Vault::initialised();
    v.write_config("[limits]\nmax_files = 3\n");
    v.run(["ls"]).fails(2, &["config.toml", "max_files"]);
}

// ---------------------------------------------------------------------------------------------
// 11. corruption

#[test]
fn a_corrupted_blob_is_detected_on_every_read() {
    let v = Vault::initialised();
    let bytes = cyclonedx_sbom();
    v.write("sbom.json", &bytes);
    let record = v.push_one("sbom.json");
    let digest = str_field(&record, "digest");
    let id = str_field(&record, "id");
    let blob = v.blob_file(&digest);
    assert!(blob.is_file(), "no blob file at {}", blob.display());

    // A valid zstd frame of different bytes, of the same length and of another length.
    let mut same_length = bytes.clone();
    same_length[10] ^= 0x20;
    for replacement in [same_length, b"{\"evil\": true}\n".to_vec()] {
        fs::write(&blob, zstd(&replacement)).unwrap();

        let run = v.run(["get", &digest]);
        run.fails(4, &["corrupt", &digest]);

        let run = v.run(["get", &id, "-o", "out.json"]);
        run.fails(4, &["corrupt"]);
        assert!(!v.path("out.json").exists(), "get -o wrote a corrupt file");
        let leftovers: Vec<_> = fs::read_dir(v.root())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".evault-get"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

        let run = v.run(["fsck"]);
        assert_eq!(run.code, 4, "{run:#?}");
        assert!(
            run.stdout_text().contains(&digest) || run.stderr.contains(&digest),
            "fsck does not name the corrupt blob: {run:#?}"
        );
        assert_no_panic(&run.stderr);
        let json = v.run(["--json", "fsck"]);
        assert_eq!(json.code, 4);
        let report = json.json();
        assert_eq!(report["problems"][0]["digest"], json!(digest), "{report:#}");
        assert_eq!(report["problems"][0]["problem"], "corrupt", "{report:#}");
    }

    // Bytes that are not zstd at all, and a zstd stream cut short.
    let original = zstd(&bytes);
    for replacement in [
        b"not zstd at all".to_vec(),
        original[..original.len() / 2].to_vec(),
    ] {
        fs::write(&blob, replacement).unwrap();
        v.run(["get", &digest]).fails(4, &["corrupt"]);
        v.run(["get", &id, "-o", "out.json"]).fails(4, &["corrupt"]);
        assert!(!v.path("out.json").exists());
        assert_eq!(v.run(["fsck"]).code, 4);
    }

    fs::remove_file(&blob).unwrap();
    v.run(["get", &digest]).fails(4, &["missing"]);
    v.run(["get", &id, "-o", "out.json"]).fails(4, &["missing"]);
    assert!(!v.path("out.json").exists());
    let report = v.run(["--json", "fsck"]);
    assert_eq!(report.code, 4);
    assert_eq!(report.json()["problems"][0]["problem"], "missing");
}

#[test]
fn an_intact_vault_passes_fsck() {
    let v = Vault::initialised();
    v.write("sbom.json", cyclonedx_sbom());
    v.write("notes.txt", PLAIN_TEXT);
    v.push_json(with_links(&["sbom.json", "notes.txt"]));
    let run = v.run(["--json", "fsck"]).success();
    let report = run.json();
    assert_eq!(report["blobs_checked"], 2);
    assert_eq!(report["problems"], json!([]));
}

#[test]
fn a_closed_pipe_on_stdout_ends_get_quietly() {
    let v = Vault::initialised();
    v.write("big.bin", random_binary(2 << 20));
    let digest = str_field(&v.push_one("big.bin"), "digest");
    let mut child = v
        .command()
        .args(["get", &digest])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before the child writes: its writes fail with a broken pipe.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(stderr.is_empty(), "stderr:\n{stderr}");
}

// ---------------------------------------------------------------------------------------------
// 12. bad input

#[test]
fn bad_input_gets_one_error_line_and_a_stable_exit_code() {
    let v = Vault::initialised();
    v.write("notes.txt", PLAIN_TEXT);
    let record = v.push_one("notes.txt");
    let digest = str_field(&record, "digest");
    let (bp, version) = (BLUEPRINT, VERSION);
    let sha39 = &GIT_SHA[..39];
    let non_hex = format!("{sha39}g");
    let no_prefix = hex_of(&image_digest()).to_string();
    let never_pushed = digest_of(b"never pushed");
    let unknown_id = "0123456789abcdef0123456789abcdef";
    // (arguments, exit code, what the one error line must mention)
    #[rustfmt::skip]
    let cases: Vec<(Vec<&str>, i32, Vec<&str>)> = vec![
        (vec!["push", "notes.txt", "--blueprint", bp, "--version", version, "--git-sha", sha39], 2, vec!["--git-sha", "39"]),
        (vec!["push", "notes.txt", "--blueprint", bp, "--version", version, "--git-sha", &non_hex], 2, vec!["--git-sha", "'g'"]),
        (vec!["push", "notes.txt", "--blueprint", bp, "--version", version], 2, vec!["--git-sha"]),
        (vec!["push", "notes.txt", "--blueprint", "checkout api", "--version", version, "--git-sha", GIT_SHA], 2, vec!["--blueprint"]),
        (vec!["push", "notes.txt", "--blueprint", bp, "--version", "1 .0", "--git-sha", GIT_SHA], 2, vec!["--version"]),
        (vec!["push", "notes.txt", "--blueprint", bp, "--version", version, "--git-sha", GIT_SHA, "--subject", "sha256:abc"], 2, vec!["--subject", "sha256:abc"]),
        (vec!["push", "notes.txt", "--blueprint", bp, "--version", version, "--git-sha", GIT_SHA, "--subject", &no_prefix], 2, vec!["--subject", "sha256:"]),
        (vec!["push", "notes.txt", "--blueprint", bp, "--version", version, "--git-sha", GIT_SHA, "--env", "prod env"], 2, vec!["--env"]),
        (vec!["push", "no-such-file.json", "--blueprint", bp, "--version", version, "--git-sha", GIT_SHA], 3, vec!["no-such-file.json"]),
        (vec!["push", "-", "-", "--blueprint", bp, "--version", version, "--git-sha", GIT_SHA], 2, vec!["stdin"]),
        (vec!["show", unknown_id], 3, vec![unknown_id]),
        (vec!["show", "012"], 2, vec!["012"]),
        (vec!["show", "not-hex-at-all"], 2, vec!["not-hex-at-all"]),
        (vec!["get", "sha256:zzz"], 2, vec!["sha256:zzz"]),
        (vec!["get", &never_pushed], 3, vec![&never_pushed]),
        (vec!["get", "fedcba9876543210"], 3, vec!["fedcba9876543210"]),
        (vec!["ls", "--since", "not-a-date"], 2, vec!["--since", "not-a-date"]),
        (vec!["ls", "--until", "2025-13-45"], 2, vec!["--until"]),
        (vec!["ls", "--git-sha", "abc"], 2, vec!["--git-sha"]),
        (vec!["ls", "--subject", "sha256:abc"], 2, vec!["--subject"]),
        (vec!["ls", "--limit", "0"], 2, vec!["--limit"]),
    ];
    let before = v.snapshot();
    for (args, code, needles) in &cases {
        v.run(args).fails(*code, needles);
    }
    assert_eq!(v.snapshot(), before, "a failed command changed the vault");

    // Usage errors from the argument parser: exit 2, the valid values listed, no panic.
    for args in [
        with_links(&["push", "notes.txt", "--kind", "sboms"]),
        vec!["ls".into(), "--kind".into(), "sboms".into()],
    ] {
        let run = v.run(&args);
        assert_eq!(run.code, 2, "{run:#?}");
        assert_no_panic(&run.stderr);
        for kind in ["sbom", "vuln-scan", "rollback-plan", "test-report"] {
            assert!(
                run.stderr.contains(kind),
                "{kind} not listed:\n{}",
                run.stderr
            );
        }
    }
    for args in [vec!["push"], vec!["frobnicate"], vec!["get"]] {
        let run = v.run(&args);
        assert_eq!(run.code, 2, "{run:#?}");
        assert_no_panic(&run.stderr);
    }
    // The digest of a real record still reads back (nothing above broke the vault).
    v.run(["get", &digest]).success();

    // An actor that could forge log lines is refused before anything is read.
    let forger = Vault::initialised().with_actor("alice\nbob");
    forger.write("notes.txt", PLAIN_TEXT);
    forger
        .run(with_links(&["push", "notes.txt"]))
        .fails(2, &["--actor"]);
    assert_eq!(record_count(&forger), 0);
}

/// The first 128 bits of SHA-256 over the record's canonical link encoding: the documented,
/// versioned record id (`evault/record/v1`), recomputed here to find two ids that share a
/// prefix.
fn expected_record_id(digest: &str, kind: &str, run_id: &str) -> String {
    let canonical = json!([
        "evault/record/v1",
        digest,
        kind,
        BLUEPRINT,
        VERSION,
        GIT_SHA,
        Value::Null,
        run_id,
        Value::Null,
        Vec::<String>::new(),
    ]);
    sha256_hex(canonical.to_string().as_bytes())[..32].to_string()
}

#[test]
fn an_ambiguous_record_id_prefix_is_refused_and_names_the_matches() {
    let bytes = PLAIN_TEXT;
    let digest = digest_of(bytes);
    // Birthday search for two run ids whose record ids share their first 6 hex characters.
    let mut seen = std::collections::HashMap::new();
    let (a, b) = (0..2_000_000u32)
        .find_map(|n| {
            let run_id = format!("run-{n}");
            let id = expected_record_id(&digest, "other", &run_id);
            seen.insert(id[..6].to_string(), run_id.clone())
                .map(|earlier| (earlier, run_id))
        })
        .expect("no colliding prefix found");
    let v = Vault::initialised();
    v.write("notes.txt", bytes);
    let first = v.push_json(with_links(&["notes.txt", "--run-id", &a]));
    let second = v.push_json(with_links(&["notes.txt", "--run-id", &b]));
    let (id_a, id_b) = (str_field(&first[0], "id"), str_field(&second[0], "id"));
    assert_eq!(
        id_a,
        expected_record_id(&digest, "other", &a),
        "the record id scheme changed; update expected_record_id"
    );
    assert_eq!(id_b, expected_record_id(&digest, "other", &b));
    let prefix = &id_a[..6];
    assert_eq!(&id_b[..6], prefix);

    v.run(["show", prefix])
        .fails(2, &["ambiguous", &id_a, &id_b]);
    v.run(["get", prefix]).fails(2, &["ambiguous"]);
    // One more character, where the two differ, picks one.
    let common = id_a
        .chars()
        .zip(id_b.chars())
        .take_while(|(x, y)| x == y)
        .count();
    let shown = v.show_json(&id_a[..=common]);
    assert_eq!(shown["id"], json!(id_a));
}

// ---------------------------------------------------------------------------------------------
// 13. ls filters

#[test]
fn ls_filters_return_exactly_the_matching_records_newest_first() {
    let v = Vault::initialised();
    let sha1 = "abcdef1000000000000000000000000000000001";
    let sha2 = "abcdef2000000000000000000000000000000002";
    let sha3 = "1234567000000000000000000000000000000003";
    let x = image_digest();
    let y = digest_of(b"another image");
    let sbom_digest = digest_of(&cyclonedx_sbom());
    v.write("sbom.json", cyclonedx_sbom());
    v.write("scan.sarif", sarif());
    v.write("notes.txt", PLAIN_TEXT);
    v.write("plan.md", ROLLBACK_PLAN);
    #[rustfmt::skip]
    let pushes: [Vec<&str>; 6] = [
        vec!["sbom.json", "--blueprint", "alpha", "--version", "1.0", "--git-sha", sha1,
             "--env", "staging", "--run-id", "1", "--subject", &x],
        vec!["scan.sarif", "--blueprint", "alpha", "--version", "1.0", "--git-sha", sha1,
             "--env", "production", "--run-id", "2"],
        vec!["sbom.json", "--blueprint", "alpha", "--version", "2.0", "--git-sha", sha2,
             "--env", "production", "--run-id", "3", "--subject", &y],
        vec!["notes.txt", "--blueprint", "beta", "--version", "1.0", "--git-sha", sha2,
             "--env", "staging", "--run-id", "4", "--subject", &x],
        vec!["plan.md", "--blueprint", "beta", "--version", "2.0", "--git-sha", sha3,
             "--run-id", "4"],
        vec!["scan.sarif", "--blueprint", "beta", "--version", "1.0", "--git-sha", sha3,
             "--env", "staging", "--run-id", "5"],
    ];
    let mut pushed = Vec::new();
    let mut times = Vec::new();
    for args in &pushes {
        let r = v.push_json(args);
        assert_eq!(r.len(), 1);
        pushed.push(str_field(&r[0], "id"));
        times.push(str_field(&r[0], "ingested_at"));
    }
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "pushes must get increasing timestamps: {times:?}"
    );
    // Expected: indexes into `ids`, newest first.
    let want =
        |idx: &[usize]| -> Vec<String> { idx.iter().rev().map(|&i| pushed[i].clone()).collect() };
    let sha3_upper = sha3.to_ascii_uppercase();
    let cases: Vec<(Vec<&str>, Vec<String>)> = vec![
        (vec![], want(&[0, 1, 2, 3, 4, 5])),
        (vec!["--blueprint", "alpha"], want(&[0, 1, 2])),
        (vec!["--blueprint", "beta"], want(&[3, 4, 5])),
        (vec!["--blueprint", "gamma"], vec![]),
        (vec!["--version", "1.0"], want(&[0, 1, 3, 5])),
        (
            vec!["--blueprint", "beta", "--version", "1.0"],
            want(&[3, 5]),
        ),
        (vec!["--git-sha", sha1], want(&[0, 1])),
        (vec!["--git-sha", "abcdef1"], want(&[0, 1])),
        (vec!["--git-sha", "abcdef2"], want(&[2, 3])),
        (vec!["--git-sha", &sha3_upper], want(&[4, 5])),
        (vec!["--kind", "sbom"], want(&[0, 2])),
        (vec!["--kind", "vuln-scan"], want(&[1, 5])),
        (vec!["--kind", "rollback-plan"], want(&[4])),
        (vec!["--format", "sarif"], want(&[1, 5])),
        (vec!["--env", "production"], want(&[1, 2])),
        (vec!["--env", "staging"], want(&[0, 3, 5])),
        (vec!["--run-id", "4"], want(&[3, 4])),
        (vec!["--subject", &x], want(&[0, 3])),
        (vec!["--subject", &y], want(&[2])),
        (vec!["--digest", &sbom_digest], want(&[0, 2])),
        (vec!["--since", &times[3]], want(&[3, 4, 5])),
        (vec!["--until", &times[3]], want(&[0, 1, 2])),
        (
            vec!["--since", &times[1], "--until", &times[4]],
            want(&[1, 2, 3]),
        ),
        (vec!["--since", "2000-01-01"], want(&[0, 1, 2, 3, 4, 5])),
        (vec!["--until", "2000-01-01"], vec![]),
        (vec!["--limit", "2"], want(&[4, 5])),
        (vec!["--kind", "sbom", "--limit", "1"], want(&[2])),
        (vec!["--env", "staging", "--blueprint", "alpha"], want(&[0])),
    ];
    let mut failures = Vec::new();
    for (args, expected) in cases {
        let got = ids(&v.ls_json(&args));
        if got != expected {
            failures.push(format!(
                "ls {}: got {got:?}, expected {expected:?}",
                args.join(" ")
            ));
        }
    }
    assert_no_failures(&failures);
    // A SHA prefix shorter than 7 characters is refused rather than matching too much.
    v.run(["ls", "--git-sha", "abcdef"])
        .fails(2, &["--git-sha"]);

    // Human output says when --limit cut the list.
    let run = v.run(["ls", "--limit", "2"]).success();
    assert!(run.stderr.contains("--limit"), "{}", run.stderr);
}

// ---------------------------------------------------------------------------------------------
// 14. stdin

#[test]
fn push_dash_reads_one_file_from_stdin() {
    let v = Vault::initialised();
    let bytes = cyclonedx_sbom();
    let run = v
        .run_with_stdin(
            with_links(&["--json", "push", "-", "--stdin-name", "sbom.cdx.json"]),
            &bytes,
        )
        .success();
    let records = records(&run);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["source_path"], "sbom.cdx.json");
    assert_eq!(records[0]["format"], "cyclonedx-json");
    assert_eq!(records[0]["digest"], json!(digest_of(&bytes)));
    let back = v.run(["get", &str_field(&records[0], "id")]).success();
    assert!(back.stdout == bytes);

    // Without --stdin-name the record is named "stdin"; archives on stdin are expanded.
    let sarif = sarif();
    let tar = tar_of(&[
        ("a/sarif.json", sarif.as_slice()),
        ("b/notes.txt", PLAIN_TEXT),
    ]);
    let records = v.push_json_stdin(with_links(&["-"]), &gzip(&tar));
    let mut paths: Vec<String> = records
        .iter()
        .map(|r| str_field(r, "source_path"))
        .collect();
    paths.sort();
    assert_eq!(paths, ["a/sarif.json", "b/notes.txt"]);
    let records = v.push_json_stdin(with_links(&["-"]), PLAIN_TEXT.repeat(2).as_slice());
    assert_eq!(records[0]["source_path"], "stdin");
}

// ---------------------------------------------------------------------------------------------
// 15. secrets

#[test]
fn private_keys_are_refused() {
    let keys: [&[u8]; 4] = [
        b"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n",
        b"-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk\n-----END EC PRIVATE KEY-----\n",
        b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAE\n-----END OPENSSH PRIVATE KEY-----\n",
        b"a note first\n  -----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n",
    ];
    let v = Vault::initialised();
    let before = v.snapshot();
    for (i, key) in keys.iter().enumerate() {
        let file = format!("key-{i}.pem");
        v.write(&file, key);
        v.run(with_links(&["push", &file]))
            .fails(2, &[&file, "private key"]);
        // Hidden in a bundle, it sinks the whole push.
        let dir = format!("bundle-{i}");
        v.write(&format!("{dir}/sbom.json"), cyclonedx_sbom());
        v.write(&format!("{dir}/keys/signing.key"), key);
        v.run(with_links(&["push", &dir]))
            .fails(2, &["keys/signing.key", "private key"]);
        assert_eq!(v.snapshot(), before);
        v.assert_tmp_empty();
    }
    // A public key is fine.
    v.write(
        "cosign.pub",
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n",
    );
    assert_eq!(v.push_one("cosign.pub")["format"], "pem-public-key");
}

// ---------------------------------------------------------------------------------------------
// 16. interrupted push

#[test]
fn a_push_killed_midway_leaves_no_partial_record() {
    let v = Vault::initialised();
    // 200 MiB of a repeating pattern: big enough that the push is still running when killed.
    {
        let file = fs::File::create(v.path("big.log")).unwrap();
        let mut w = io::BufWriter::new(file);
        let line = b"2025-03-14T09:26:53Z INFO checkout-api request served in 12ms\n";
        let block: Vec<u8> = line.iter().copied().cycle().take(1 << 20).collect();
        for _ in 0..200 {
            w.write_all(&block).unwrap();
        }
        w.flush().unwrap();
    }
    let mut cmd = v.command();
    cmd.args(with_links(&["push", "big.log"]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let _ = child.kill();
    let status = child.wait().unwrap();
    eprintln!("push after 100 ms: {status}");

    let fsck = v.run(["--json", "fsck"]);
    assert_eq!(fsck.code, 0, "fsck after a killed push: {fsck:#?}");
    assert_eq!(fsck.json()["problems"], json!([]));
    for record in v.ls_json(["--limit", "10"]) {
        let back = v.run(["get", &str_field(&record, "digest")]).success();
        assert_eq!(digest_of(&back.stdout), str_field(&record, "digest"));
        assert_eq!(record["size"], json!(back.stdout.len()));
    }
    // The vault still takes pushes.
    v.write("after.txt", PLAIN_TEXT);
    v.push_one("after.txt");
}

// ---------------------------------------------------------------------------------------------
// 17. demo

#[test]
fn the_demo_runs_end_to_end() {
    let v = Vault::new();
    let run = v.run(["demo"]);
    assert_eq!(run.code, 0, "{run:#?}");
    let out = run.stdout_text();
    assert!(out.contains("sbom.json"), "{out}");
    assert!(out.contains("all blobs intact"), "{out}");
    assert!(
        out.contains("is entry"),
        "the SBOM's inclusion proof: {out}"
    );
    assert!(
        out.contains("ok: the log verifies and the vault agrees with it"),
        "{out}"
    );
    assert!(out.contains("deploy recorded:"), "{out}");
    assert!(
        out.contains("checkout-api 1.4.2 live in production"),
        "the search sees the deploy: {out}"
    );
    assert!(
        out.contains("1 deploy(s), 2 approval(s)"),
        "the change log: {out}"
    );
    assert!(
        out.contains("no signature recorded"),
        "the trace's gaps: {out}"
    );
    assert!(out.contains("verified"), "the pack: {out}");
    assert!(
        out.contains("gate: FAIL for checkout-api 1.4.2 → production")
            && out.contains("gate: PASS for checkout-api 1.4.2 → production"),
        "the release gate, before and after the approval: {out}"
    );
    assert!(
        out.contains("1 of 1 deploys to staging lack evidence or a passing gate"),
        "the missing-evidence alert: {out}"
    );
    assert!(
        out.contains("  gate      never checked for staging"),
        "the trace says the staging deploy never met a gate: {out}"
    );
    assert_no_panic(&run.stderr);
    assert!(!run.stderr.contains("error:"), "{}", run.stderr);
}

#[test]
fn pushing_a_directory_that_holds_the_vault_skips_the_vault_itself() {
    let v = Vault::initialised();
    v.write("evidence/notes.md", "# Release notes\n\nNothing to see.\n");
    let run = v.run(with_links(&["--json", "push", "."])).success();
    let pushed = records(&run);
    let paths: Vec<String> = pushed.iter().map(|r| str_field(r, "source_path")).collect();
    assert_eq!(paths, ["evidence/notes.md"]);
    assert!(
        run.warnings().iter().any(|w| w.contains("'vault' skipped")),
        "{:?}",
        run.warnings()
    );
    let blob = v.blob_files().remove(0);
    v.run(with_links(&["push", blob.to_str().unwrap()]))
        .fails(2, &["inside the vault's own directory"]);
}

#[test]
fn get_accepts_a_digest_without_its_sha256_prefix() {
    let v = Vault::initialised();
    v.write("notes.txt", PLAIN_TEXT);
    let record = v.push_one("notes.txt");
    let digest = str_field(&record, "digest");
    let bare = digest.trim_start_matches("sha256:");
    let back = v.run(["get", bare]).success();
    assert_eq!(back.stdout, PLAIN_TEXT);
}

#[test]
fn a_file_name_with_a_control_character_is_refused() {
    let v = Vault::initialised();
    v.write("bundle/ok.txt", PLAIN_TEXT);
    v.write("bundle/bad\nname.txt", PLAIN_TEXT);
    let before = v.snapshot();
    v.run(with_links(&["push", "bundle"]))
        .fails(2, &["control character"]);
    assert_eq!(v.snapshot(), before);
    v.run(with_links(&["push", "-", "--stdin-name", "../escape.txt"]))
        .fails(2, &["'..'"]);
}

// ---------------------------------------------------------------------------------------------
// Tokens (embedded administration)

#[test]
fn a_token_secret_is_shown_once_and_only_its_hash_is_stored() {
    let v = Vault::initialised();
    let created = v
        .run([
            "token",
            "create",
            "--name",
            "ci-payments",
            "--role",
            "pusher",
            "--scope",
            "payments-*",
            "--expires",
            "90d",
        ])
        .success();
    let secret = created.stdout_text().trim().to_string();
    assert!(secret.starts_with("evt_") && secret.len() == 68, "{secret}");
    assert!(
        created.stderr.contains("shown only once"),
        "{}",
        created.stderr
    );
    // The secret appears nowhere in the vault directory; its SHA-256 does.
    let index = fs::read(v.data_dir().join("index.db")).unwrap();
    let wal = fs::read(v.data_dir().join("index.db-wal")).unwrap_or_default();
    for bytes in [&index, &wal] {
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
    let listed = v.run(["--json", "token", "ls"]).success().json();
    assert_eq!(listed[0]["name"], "ci-payments");
    assert_eq!(listed[0]["role"], "pusher");
    assert_eq!(listed[0]["scopes"], json!(["payments-*"]));
    assert!(listed[0].get("secret").is_none(), "{listed:#}");
    assert!(
        !v.run(["token", "ls"])
            .success()
            .stdout_text()
            .contains(&secret)
    );
}

#[test]
fn tokens_are_named_once_and_revoked_by_name() {
    let v = Vault::initialised();
    v.run([
        "token",
        "create",
        "--name",
        "auditor-q2",
        "--role",
        "auditor",
    ])
    .success();
    v.run(["token", "create", "--name", "auditor-q2", "--role", "admin"])
        .fails(2, &["already exists"]);
    v.run(["token", "create", "--name", "bad name", "--role", "admin"])
        .fails(2, &["invalid token name"]);
    v.run([
        "token",
        "create",
        "--name",
        "x",
        "--role",
        "admin",
        "--expires",
        "soon",
    ])
    .fails(2, &["invalid duration"]);
    v.run([
        "token", "create", "--name", "y", "--role", "admin", "--scope", "a/b",
    ])
    .fails(2, &["invalid scope"]);
    let revoked = v
        .run(["--json", "token", "revoke", "auditor-q2"])
        .success()
        .json();
    assert!(revoked["revoked_at"].is_string(), "{revoked:#}");
    v.run(["token", "revoke", "nobody"])
        .fails(3, &["no token named 'nobody'"]);
    let ls = v.run(["token", "ls"]).success().stdout_text();
    assert!(ls.contains("revoked"), "{ls}");
}
