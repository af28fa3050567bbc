//! Classic in-toto layout verification, end to end: layouts, links and keys are made here
//! (Ed25519 and ECDSA P-256 keys from fixed seeds), signed over canonical JSON computed by the
//! test's own small encoder, and fed to `verify_layout`. A second part replays the real
//! in-toto 3.1.0 demo from the shared corpus and expects the outcomes its MANIFEST.md records.

use chrono::{DateTime, TimeZone, Utc};
use ed25519_dalek::pkcs8::EncodePublicKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use evault_core::verify::layout::{LayoutInput, LayoutReport, verify_layout};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::PathBuf;

// ---------------------------------------------------------------------------------------------
// Fixtures

/// Canonical JSON as securesystemslib writes it: sorted keys, no whitespace, strings with only
/// `\` and `"` escaped (so the newlines of a PEM stay raw). Written independently of the code
/// under test.
fn canonical(v: &Value) -> String {
    let string = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let body: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", string(k), canonical(&map[k])))
                .collect();
            format!("{{{}}}", body.join(","))
        }
        Value::String(s) => string(s),
        Value::Array(items) => {
            format!(
                "[{}]",
                items.iter().map(canonical).collect::<Vec<_>>().join(",")
            )
        }
        other => other.to_string(),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

enum Signer {
    Ed25519(ed25519_dalek::SigningKey),
    P256(p256::ecdsa::SigningKey),
}

/// A functionary or owner key made in the test.
struct TestKey {
    signer: Signer,
}

impl TestKey {
    fn ed25519(name: &str) -> Self {
        let seed: [u8; 32] = Sha256::digest(name.as_bytes()).into();
        Self {
            signer: Signer::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed)),
        }
    }

    fn p256(name: &str) -> Self {
        let seed: [u8; 32] = Sha256::digest(name.as_bytes()).into();
        Self {
            signer: Signer::P256(p256::ecdsa::SigningKey::from_slice(&seed).unwrap()),
        }
    }

    fn pem(&self) -> String {
        match &self.signer {
            Signer::Ed25519(k) => k.verifying_key().to_public_key_pem(LineEnding::LF),
            Signer::P256(k) => k.verifying_key().to_public_key_pem(LineEnding::LF),
        }
        .unwrap()
    }

    /// The securesystemslib key object (without `keyid`), as `SSlibKey.from_pem` makes it.
    fn key_object(&self) -> Value {
        match &self.signer {
            Signer::Ed25519(k) => json!({
                "keytype": "ed25519", "scheme": "ed25519",
                "keyval": {"public": hex::encode(k.verifying_key().as_bytes())}
            }),
            Signer::P256(_) => json!({
                "keytype": "ecdsa", "scheme": "ecdsa-sha2-nistp256",
                "keyval": {"public": self.pem()}
            }),
        }
    }

    fn keyid(&self) -> String {
        sha256_hex(canonical(&self.key_object()).as_bytes())
    }

    fn layout_entry(&self) -> Value {
        let mut obj = self.key_object();
        obj["keyid"] = Value::String(self.keyid());
        obj
    }

    fn sign(&self, message: &[u8]) -> String {
        use signature::Signer as _;
        match &self.signer {
            Signer::Ed25519(k) => hex::encode(k.sign(message).to_bytes()),
            Signer::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                hex::encode(sig.to_der().as_bytes())
            }
        }
    }
}

/// A signed metablock, pretty-printed (verification must not depend on the file's bytes).
fn metablock(signed: &Value, signers: &[&TestKey]) -> Vec<u8> {
    let message = canonical(signed);
    let signatures: Vec<Value> = signers
        .iter()
        .map(|k| json!({"keyid": k.keyid(), "sig": k.sign(message.as_bytes())}))
        .collect();
    serde_json::to_vec_pretty(&json!({"signatures": signatures, "signed": signed})).unwrap()
}

fn hashes(entries: &[(&str, &str)]) -> Value {
    let mut map = serde_json::Map::new();
    for (path, content) in entries {
        map.insert(
            (*path).to_owned(),
            json!({"sha256": sha256_hex(content.as_bytes())}),
        );
    }
    Value::Object(map)
}

fn link_signed(step: &str, command: &[&str], materials: Value, products: Value) -> Value {
    json!({
        "_type": "link",
        "name": step,
        "command": command,
        "materials": materials,
        "products": products,
        "byproducts": {"return-value": 0, "stdout": "", "stderr": ""},
        "environment": {},
    })
}

fn link_file(step: &str, key: &TestKey, signed: &Value) -> (String, Vec<u8>) {
    (
        format!("{step}.{}.link", &key.keyid()[..8]),
        metablock(signed, &[key]),
    )
}

const CONFIG: &str = "{\"service\": \"demo\"}\n";
const TARBALL: &str = "tarball bytes";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
}

/// The demo supply chain: alice writes app/config.json, bob packages it into app.tar.gz.
struct Chain {
    owner: TestKey,
    alice: TestKey,
    bob: TestKey,
    layout: Value,
}

impl Chain {
    fn new() -> Self {
        let owner = TestKey::ed25519("owner");
        let alice = TestKey::ed25519("alice");
        let bob = TestKey::ed25519("bob");
        let layout = json!({
            "_type": "layout",
            "expires": "2030-01-01T00:00:00Z",
            "readme": "test supply chain",
            "keys": {
                alice.keyid(): alice.layout_entry(),
                bob.keyid(): bob.layout_entry(),
            },
            "steps": [
                {
                    "_type": "step",
                    "name": "write-config",
                    "expected_command": ["sh", "-c"],
                    "expected_materials": [],
                    "expected_products": [["CREATE", "app/config.json"], ["DISALLOW", "*"]],
                    "pubkeys": [alice.keyid()],
                    "threshold": 1,
                },
                {
                    "_type": "step",
                    "name": "package",
                    "expected_command": ["tar"],
                    "expected_materials": [
                        ["MATCH", "app/config.json", "WITH", "PRODUCTS", "FROM", "write-config"],
                        ["DISALLOW", "*"],
                    ],
                    "expected_products": [["CREATE", "app.tar.gz"], ["DISALLOW", "*"]],
                    "pubkeys": [bob.keyid()],
                    "threshold": 1,
                },
            ],
            "inspect": [],
        });
        Self {
            owner,
            alice,
            bob,
            layout,
        }
    }

    fn signed_layout(&self) -> Vec<u8> {
        metablock(&self.layout, &[&self.owner])
    }

    fn write_config_link(&self) -> (String, Vec<u8>) {
        let signed = link_signed(
            "write-config",
            &["sh", "-c", "printf ... > app/config.json"],
            json!({}),
            hashes(&[("app/config.json", CONFIG)]),
        );
        link_file("write-config", &self.alice, &signed)
    }

    fn package_signed(&self, config: &str, products: &[(&str, &str)]) -> Value {
        link_signed(
            "package",
            &["tar", "-czf", "app.tar.gz", "app"],
            hashes(&[("app/config.json", config)]),
            hashes(products),
        )
    }

    fn package_link(&self) -> (String, Vec<u8>) {
        let signed = self.package_signed(CONFIG, &[("app.tar.gz", TARBALL)]);
        link_file("package", &self.bob, &signed)
    }

    fn verify_with(&self, layout: &[u8], links: &[(String, Vec<u8>)]) -> LayoutReport {
        let pem = self.owner.pem();
        let keys = [pem.as_str()];
        run(layout, &keys, links)
    }
}

fn run(layout: &[u8], keys: &[&str], links: &[(String, Vec<u8>)]) -> LayoutReport {
    let report = verify_layout(
        &LayoutInput {
            layout,
            layout_keys: keys,
            links,
        },
        now(),
    );
    for line in &report.steps {
        println!("  {line}");
    }
    report
}

#[track_caller]
fn assert_fails(report: &LayoutReport, needles: &[&str]) {
    assert!(!report.verified, "expected failure, got {report:#?}");
    let failure = report.failure.as_deref().expect("a failure reason");
    for needle in needles {
        assert!(
            failure.contains(needle),
            "failure {failure:?} should mention {needle:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Generated supply chains

#[test]
fn a_complete_supply_chain_verifies() {
    let chain = Chain::new();
    let report = chain.verify_with(
        &chain.signed_layout(),
        &[chain.write_config_link(), chain.package_link()],
    );
    assert!(report.verified, "{report:#?}");
    assert_eq!(report.failure, None);
    let text = report.steps.join("\n");
    assert!(text.contains("layout signature: valid"));
    assert!(
        text.contains("differs from expected_command"),
        "command note expected"
    );
    assert!(text.contains("inspections: none"));
}

#[test]
fn an_expired_layout_fails() {
    let mut chain = Chain::new();
    chain.layout["expires"] = json!("2024-01-01T00:00:00Z");
    let report = chain.verify_with(
        &chain.signed_layout(),
        &[chain.write_config_link(), chain.package_link()],
    );
    assert_fails(&report, &["expired", "2024-01-01T00:00:00Z"]);
}

#[test]
fn a_tampered_link_does_not_count() {
    let chain = Chain::new();
    let (name, bytes) = chain.package_link();
    // Swap the product hash after bob signed.
    let mut doc: Value = serde_json::from_slice(&bytes).unwrap();
    doc["signed"]["products"] = hashes(&[("app.tar.gz", "evil tarball")]);
    let tampered = (name, serde_json::to_vec(&doc).unwrap());
    let report = chain.verify_with(
        &chain.signed_layout(),
        &[chain.write_config_link(), tampered],
    );
    assert_fails(&report, &["\"package\"", "found 0", "is invalid"]);
}

#[test]
fn a_link_by_the_wrong_functionary_does_not_count() {
    let chain = Chain::new();
    // alice runs and signs the package step, which only bob may perform.
    let signed = chain.package_signed(CONFIG, &[("app.tar.gz", TARBALL)]);
    let by_alice = link_file("package", &chain.alice, &signed);
    let report = chain.verify_with(
        &chain.signed_layout(),
        &[chain.write_config_link(), by_alice],
    );
    assert_fails(
        &report,
        &["\"package\"", "found 0", "not an authorized functionary"],
    );
}

#[test]
fn a_material_that_does_not_match_the_previous_product_fails() {
    let chain = Chain::new();
    // bob packaged a config.json that differs from the one alice produced.
    let signed = chain.package_signed("{\"debug\": true}\n", &[("app.tar.gz", TARBALL)]);
    let report = chain.verify_with(
        &chain.signed_layout(),
        &[
            chain.write_config_link(),
            link_file("package", &chain.bob, &signed),
        ],
    );
    assert_fails(
        &report,
        &["expected_materials", "DISALLOW *", "app/config.json"],
    );
    assert!(
        report.steps.iter().any(|l| l.contains("hash differs")),
        "the MATCH line should say why nothing was consumed"
    );
}

#[test]
fn disallow_catches_an_extra_product() {
    let chain = Chain::new();
    let signed = chain.package_signed(
        CONFIG,
        &[("app.tar.gz", TARBALL), ("backdoor.sh", "curl | sh")],
    );
    let report = chain.verify_with(
        &chain.signed_layout(),
        &[
            chain.write_config_link(),
            link_file("package", &chain.bob, &signed),
        ],
    );
    assert_fails(
        &report,
        &["\"package\"", "expected_products", "backdoor.sh"],
    );
    assert!(!report.failure.unwrap().contains("app.tar.gz"));
}

#[test]
fn a_missing_step_link_fails() {
    let chain = Chain::new();
    let report = chain.verify_with(&chain.signed_layout(), &[chain.write_config_link()]);
    assert_fails(&report, &["\"package\"", "found 0"]);
}

/// A layout whose package step needs both bob and carol.
fn threshold_two() -> (Chain, TestKey) {
    let mut chain = Chain::new();
    let carol = TestKey::ed25519("carol");
    chain.layout["keys"][carol.keyid()] = carol.layout_entry();
    chain.layout["steps"][1]["pubkeys"] = json!([chain.bob.keyid(), carol.keyid()]);
    chain.layout["steps"][1]["threshold"] = json!(2);
    (chain, carol)
}

#[test]
fn threshold_two_passes_with_two_agreeing_functionaries() {
    let (chain, carol) = threshold_two();
    let signed = chain.package_signed(CONFIG, &[("app.tar.gz", TARBALL)]);
    let report = chain.verify_with(
        &chain.signed_layout(),
        &[
            chain.write_config_link(),
            chain.package_link(),
            link_file("package", &carol, &signed),
        ],
    );
    assert!(report.verified, "{report:#?}");
}

#[test]
fn threshold_two_fails_when_one_link_is_bad() {
    let (chain, carol) = threshold_two();
    let signed = chain.package_signed(CONFIG, &[("app.tar.gz", TARBALL)]);
    let (name, bytes) = link_file("package", &carol, &signed);
    let mut doc: Value = serde_json::from_slice(&bytes).unwrap();
    doc["signed"]["command"] = json!(["tar", "--something-else"]);
    let report = chain.verify_with(
        &chain.signed_layout(),
        &[
            chain.write_config_link(),
            chain.package_link(),
            (name, serde_json::to_vec(&doc).unwrap()),
        ],
    );
    assert_fails(&report, &["\"package\"", "requires 2", "found 1"]);
}

#[test]
fn threshold_two_counts_a_functionary_once() {
    let (chain, _carol) = threshold_two();
    // Two links by bob (one under a second file name) are still one functionary.
    let (_, bytes) = chain.package_link();
    let report = chain.verify_with(
        &chain.signed_layout(),
        &[
            chain.write_config_link(),
            chain.package_link(),
            ("package-copy.link".into(), bytes),
        ],
    );
    assert_fails(&report, &["requires 2", "found 1"]);
}

#[test]
fn threshold_two_fails_when_functionaries_disagree() {
    let (chain, carol) = threshold_two();
    let other = chain.package_signed(CONFIG, &[("app.tar.gz", "another tarball")]);
    let report = chain.verify_with(
        &chain.signed_layout(),
        &[
            chain.write_config_link(),
            chain.package_link(),
            link_file("package", &carol, &other),
        ],
    );
    assert_fails(&report, &["\"package\"", "disagree"]);
}

#[test]
fn an_unsigned_layout_fails() {
    let chain = Chain::new();
    let unsigned = serde_json::to_vec(&json!({"signatures": [], "signed": chain.layout})).unwrap();
    let report = chain.verify_with(
        &unsigned,
        &[chain.write_config_link(), chain.package_link()],
    );
    assert_fails(&report, &["no signatures"]);
}

#[test]
fn a_layout_signed_by_someone_else_fails() {
    let chain = Chain::new();
    let by_mallory = metablock(&chain.layout, &[&TestKey::ed25519("mallory")]);
    let report = chain.verify_with(
        &by_mallory,
        &[chain.write_config_link(), chain.package_link()],
    );
    assert_fails(
        &report,
        &["not signed by layout key #1", &chain.owner.keyid()],
    );
}

#[test]
fn a_layout_changed_after_signing_fails() {
    let chain = Chain::new();
    let mut doc: Value = serde_json::from_slice(&chain.signed_layout()).unwrap();
    doc["signed"]["steps"][1]["expected_products"] = json!([["ALLOW", "*"]]);
    let report = chain.verify_with(
        &serde_json::to_vec(&doc).unwrap(),
        &[chain.write_config_link(), chain.package_link()],
    );
    assert_fails(&report, &["layout signature", "invalid"]);
}

#[test]
fn every_given_owner_key_must_have_signed() {
    let chain = Chain::new();
    let co_owner = TestKey::ed25519("co-owner");
    let links = [chain.write_config_link(), chain.package_link()];
    let (owner_pem, co_pem) = (chain.owner.pem(), co_owner.pem());
    let report = run(&chain.signed_layout(), &[&owner_pem, &co_pem], &links);
    assert_fails(&report, &["layout key #2", &co_owner.keyid()]);
    let both = metablock(&chain.layout, &[&chain.owner, &co_owner]);
    assert!(run(&both, &[&owner_pem, &co_pem], &links).verified);
    assert_fails(&run(&both, &[], &links), &["no layout key given"]);
}

#[test]
fn a_layout_signed_under_the_pre_1_0_securesystemslib_keyid_verifies() {
    let chain = Chain::new();
    // securesystemslib < 1.0 also hashed keyid_hash_algorithms into the keyid.
    let mut legacy = chain.owner.key_object();
    legacy["keyid_hash_algorithms"] = json!(["sha256", "sha512"]);
    let legacy_keyid = sha256_hex(canonical(&legacy).as_bytes());
    let message = canonical(&chain.layout);
    let layout = serde_json::to_vec(&json!({
        "signatures": [{"keyid": legacy_keyid, "sig": chain.owner.sign(message.as_bytes())}],
        "signed": chain.layout,
    }))
    .unwrap();
    let report = chain.verify_with(&layout, &[chain.write_config_link(), chain.package_link()]);
    assert!(report.verified, "{report:#?}");
}

#[test]
fn a_layout_with_inspections_is_never_verified() {
    let mut chain = Chain::new();
    chain.layout["inspect"] = json!([{
        "_type": "inspection",
        "name": "untar",
        "run": ["tar", "xzf", "app.tar.gz"],
        "expected_materials": [["MATCH", "app.tar.gz", "WITH", "PRODUCTS", "FROM", "package"]],
        "expected_products": [],
    }]);
    let report = chain.verify_with(
        &chain.signed_layout(),
        &[chain.write_config_link(), chain.package_link()],
    );
    assert_fails(
        &report,
        &[
            "layout requires inspections, which evault does not run",
            "untar",
        ],
    );
    assert!(report.steps.iter().any(|l| {
        l.contains("inspection \"untar\" not run (evault never executes layout commands)")
    }));
    // Everything else was still checked and reported.
    assert!(report.steps.iter().any(|l| l.contains("expected_products")));
}

#[test]
fn a_link_is_found_by_its_recorded_step_name_and_must_record_that_step() {
    let chain = Chain::new();
    let (_, package) = chain.package_link();
    let report = chain.verify_with(
        &chain.signed_layout(),
        &[
            chain.write_config_link(),
            ("from-ci-run-42.json".into(), package),
        ],
    );
    assert!(report.verified, "{report:#?}");

    // alice's write-config link saved under the file name of the package step does not count.
    let (_, write_config) = chain.write_config_link();
    let renamed = (
        format!("package.{}.link", &chain.alice.keyid()[..8]),
        write_config.clone(),
    );
    let mut layout = chain.layout.clone();
    layout["steps"][1]["pubkeys"] = json!([chain.alice.keyid()]);
    let report = chain.verify_with(
        &metablock(&layout, &[&chain.owner]),
        &[chain.write_config_link(), renamed],
    );
    assert_fails(
        &report,
        &["\"package\"", "found 0", "records step \"write-config\""],
    );
}

#[test]
fn ecdsa_p256_functionaries_are_supported() {
    let mut chain = Chain::new();
    let dora = TestKey::p256("dora");
    chain.layout["keys"][dora.keyid()] = dora.layout_entry();
    chain.layout["steps"][1]["pubkeys"] = json!([dora.keyid()]);
    let signed = chain.package_signed(CONFIG, &[("app.tar.gz", TARBALL)]);
    let report = chain.verify_with(
        &chain.signed_layout(),
        &[
            chain.write_config_link(),
            link_file("package", &dora, &signed),
        ],
    );
    assert!(report.verified, "{report:#?}");
    // And an ECDSA owner key given as PEM.
    let layout = metablock(&chain.layout, &[&dora]);
    let pem = dora.pem();
    let links = [
        chain.write_config_link(),
        link_file("package", &dora, &signed),
    ];
    assert!(run(&layout, &[&pem], &links).verified);
}

#[test]
fn a_layout_key_whose_keyid_does_not_bind_it_is_refused() {
    let mut chain = Chain::new();
    // Register bob's public key under alice's keyid.
    chain.layout["keys"][chain.alice.keyid()] = {
        let mut entry = chain.bob.layout_entry();
        entry["keyid"] = json!(chain.alice.keyid());
        entry
    };
    let report = chain.verify_with(
        &chain.signed_layout(),
        &[chain.write_config_link(), chain.package_link()],
    );
    assert_fails(&report, &["does not match its key"]);
}

#[test]
fn artifact_rules_cover_modify_delete_require_and_prefixed_match() {
    let mut chain = Chain::new();
    chain.layout["steps"][1]["expected_materials"] = json!([
        [
            "MATCH",
            "config.json",
            "IN",
            "app",
            "WITH",
            "PRODUCTS",
            "IN",
            "app/",
            "FROM",
            "write-config"
        ],
        ["DISALLOW", "*"],
    ]);
    chain.layout["steps"][1]["expected_products"] = json!([
        ["REQUIRE", "app.tar.gz"],
        ["CREATE", "app.tar.gz"],
        ["MODIFY", "app/config.json"],
        ["DELETE", "tmp/*"],
        ["DISALLOW", "*"],
    ]);
    let signed = link_signed(
        "package",
        &["tar"],
        hashes(&[("app/config.json", CONFIG), ("tmp/scratch", "x")]),
        hashes(&[("app/config.json", "rewritten"), ("app.tar.gz", TARBALL)]),
    );
    // Materials: tmp/scratch is not matched, so DISALLOW * must fire on it.
    let report = chain.verify_with(
        &chain.signed_layout(),
        &[
            chain.write_config_link(),
            link_file("package", &chain.bob, &signed),
        ],
    );
    assert_fails(&report, &["expected_materials", "tmp/scratch"]);

    chain.layout["steps"][1]["expected_materials"] = json!([
        [
            "MATCH",
            "config.json",
            "IN",
            "app",
            "WITH",
            "PRODUCTS",
            "IN",
            "app/",
            "FROM",
            "write-config"
        ],
        ["ALLOW", "tmp/*"],
        ["DISALLOW", "*"],
    ]);
    let report = chain.verify_with(
        &chain.signed_layout(),
        &[
            chain.write_config_link(),
            link_file("package", &chain.bob, &signed),
        ],
    );
    assert!(report.verified, "{report:#?}");

    // REQUIRE fails once its artifact is missing.
    let without = link_signed(
        "package",
        &["tar"],
        hashes(&[("app/config.json", CONFIG)]),
        hashes(&[("app/config.json", "rewritten")]),
    );
    let report = chain.verify_with(
        &chain.signed_layout(),
        &[
            chain.write_config_link(),
            link_file("package", &chain.bob, &without),
        ],
    );
    assert_fails(&report, &["REQUIRE app.tar.gz"]);
}

#[test]
fn malformed_layouts_and_hostile_input_fail_without_panicking() {
    let chain = Chain::new();
    let owner_pem = chain.owner.pem();
    let links = [chain.write_config_link(), chain.package_link()];
    let deep = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    let huge = vec![b' '; 16 * 1024 * 1024 + 1];
    let dup = br#"{"signed": {}, "signed": {}, "signatures": []}"#.to_vec();
    let float = br#"{"signed": {"x": 1.5}, "signatures": []}"#.to_vec();
    for bad in [
        b"".to_vec(),
        b"not json".to_vec(),
        b"[]".to_vec(),
        b"{\"signed\": 1, \"signatures\": []}".to_vec(),
        deep.into_bytes(),
        huge,
        dup,
        float,
        br#"{"payloadType": "application/vnd.in-toto+json", "payload": "", "signatures": []}"#
            .to_vec(),
    ] {
        let report = run(&bad, &[&owner_pem], &links);
        assert!(!report.verified && report.failure.is_some());
    }
    // Bad owner keys.
    for key in [
        "",
        "garbage",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    ] {
        assert_fails(
            &run(&chain.signed_layout(), &[key], &links),
            &["layout key #1"],
        );
    }
    // Signed but malformed layouts.
    let cases: Vec<(Value, &str)> = vec![
        (json!([["ALLOW"]]), "needs a type and a pattern"),
        (
            json!([["MATCH", "*", "WITH", "THINGS", "FROM", "x"]]),
            "WITH MATERIALS or WITH PRODUCTS",
        ),
        (json!("ALLOW *"), "not a list"),
    ];
    for (rules, needle) in cases {
        let mut layout = chain.layout.clone();
        layout["steps"][0]["expected_products"] = rules;
        let report = run(&metablock(&layout, &[&chain.owner]), &[&owner_pem], &links);
        assert_fails(&report, &["write-config", needle]);
    }
    let mut layout = chain.layout.clone();
    layout["steps"][1]["threshold"] = json!(0);
    let report = run(&metablock(&layout, &[&chain.owner]), &[&owner_pem], &links);
    assert_fails(&report, &["threshold"]);
    let mut layout = chain.layout.clone();
    layout["steps"][1]["name"] = json!("write-config");
    let report = run(&metablock(&layout, &[&chain.owner]), &[&owner_pem], &links);
    assert_fails(&report, &["two steps or inspections named"]);
    let mut layout = chain.layout.clone();
    layout["expires"] = json!("next tuesday");
    let report = run(&metablock(&layout, &[&chain.owner]), &[&owner_pem], &links);
    assert_fails(&report, &["RFC 3339"]);
    let mut layout = chain.layout.clone();
    layout["_type"] = json!("link");
    let report = run(&metablock(&layout, &[&chain.owner]), &[&owner_pem], &links);
    assert_fails(&report, &["_type"]);

    // Garbage link files are skipped with a reason, and the chain then lacks the link.
    let garbage = vec![
        chain.write_config_link(),
        (
            format!("package.{}.link", &chain.bob.keyid()[..8]),
            b"\x00\xff{".to_vec(),
        ),
    ];
    let report = run(&chain.signed_layout(), &[&owner_pem], &garbage);
    assert_fails(&report, &["\"package\"", "found 0"]);
    assert!(report.steps.iter().any(|l| l.contains("ignored")));
}

// ---------------------------------------------------------------------------------------------
// The real in-toto 3.1.0 demo (shared corpus; skipped when absent)

fn corpus_demo() -> Option<PathBuf> {
    let base = std::env::var_os("EVAULT_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    let demo = base.join("intoto/layout-demo");
    if !demo.is_dir() {
        assert!(
            std::env::var("EVAULT_REQUIRE_CORPUS").as_deref() != Ok("1"),
            "EVAULT_REQUIRE_CORPUS=1 but there is no corpus at {}",
            demo.display()
        );
    }
    demo.is_dir().then_some(demo)
}

fn read_links(dir: &std::path::Path, only: Option<&str>) -> Vec<(String, Vec<u8>)> {
    let mut links: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| only.is_none_or(|o| e.file_name() == o))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    links.sort();
    links
}

#[test]
fn corpus_in_toto_demo_gives_the_manifest_outcomes() {
    let Some(demo) = corpus_demo() else {
        eprintln!("skipped: shared corpus not found (set EVAULT_CORPUS)");
        return;
    };
    let read = |p: &str| std::fs::read(demo.join(p)).unwrap();
    let key = |p: &str| String::from_utf8(read(p)).unwrap();
    let (owner, alice) = (key("keys/owner.pub"), key("keys/alice.pub"));
    let links = read_links(&demo.join("links"), None);

    type Case<'a> = (
        &'a str,
        Vec<u8>,
        &'a str,
        Vec<(String, Vec<u8>)>,
        Option<&'a [&'a str]>,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "root.layout + links/ (PASS)",
            read("root.layout"),
            &owner,
            links.clone(),
            None,
        ),
        (
            "expired.layout (LayoutExpiredError)",
            read("expired.layout"),
            &owner,
            links.clone(),
            Some(&["expired", "2024-01-01T00:00:00Z"]),
        ),
        (
            "links-tampered-material/ (RuleVerificationError)",
            read("root.layout"),
            &owner,
            read_links(&demo.join("links-tampered-material"), None),
            Some(&[
                "\"package\"",
                "expected_materials",
                "DISALLOW *",
                "app/config.json",
            ]),
        ),
        (
            "links-wrong-functionary/ (LinkNotFoundError)",
            read("root.layout"),
            &owner,
            read_links(&demo.join("links-wrong-functionary"), None),
            Some(&[
                "\"package\"",
                "requires 1",
                "found 0",
                "not an authorized functionary",
            ]),
        ),
        (
            "alice.pub as layout key (SignatureVerificationError)",
            read("root.layout"),
            &alice,
            links.clone(),
            Some(&[
                "not signed by layout key #1",
                "43e77869fff14954019bd6419b591b03be2adf9a3c1ae514ee6870a3e5aad6fe",
            ]),
        ),
        (
            "only write-config.43e77869.link (LinkNotFoundError)",
            read("root.layout"),
            &owner,
            read_links(&demo.join("links"), Some("write-config.43e77869.link")),
            Some(&["\"package\"", "found 0"]),
        ),
    ];
    for (what, layout, layout_key, links, expected_failure) in cases {
        println!("corpus case: {what}");
        let report = run(&layout, &[layout_key], &links);
        match expected_failure {
            None => assert!(report.verified, "{what}: {report:#?}"),
            Some(needles) => assert_fails(&report, needles),
        }
    }
}

#[test]
fn corpus_keyids_match_securesystemslib() {
    let Some(demo) = corpus_demo() else {
        eprintln!("skipped: shared corpus not found (set EVAULT_CORPUS)");
        return;
    };
    // The layout lists alice and bob under the keyids securesystemslib computed; a layout
    // verified with owner.pub proves the owner keyid too. Here: each PEM, used as the only
    // owner key of a layout that its holder could not have signed, is reported by keyid.
    let layout = std::fs::read(demo.join("root.layout")).unwrap();
    for (file, keyid) in [
        (
            "owner.pub",
            "f9f04f6d46a316ccb2bd70ee32b17a2c60483a36762cde0e30b9157894aa696f",
        ),
        (
            "alice.pub",
            "43e77869fff14954019bd6419b591b03be2adf9a3c1ae514ee6870a3e5aad6fe",
        ),
        (
            "bob.pub",
            "bbb9692ba99d297c2ef1e37fb047f9fe8f626c28b5e2774e236a587199428189",
        ),
    ] {
        let pem = std::fs::read_to_string(demo.join("keys").join(file)).unwrap();
        let report = run(&layout, &[&pem], &[]);
        assert!(
            report.steps.iter().any(|l| l.contains(keyid))
                || report.failure.as_deref().is_some_and(|f| f.contains(keyid)),
            "{file} should be identified as {keyid}: {report:#?}"
        );
    }
}
