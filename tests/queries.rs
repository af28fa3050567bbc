//! The questions of auditors and on-call engineers, end to end: a realistic history (two
//! blueprints, three versions, three commits, deploys to staging and production, a rollback,
//! VEX that suppresses a finding, provenance signed with a key made here) is built through the
//! real binary, then every query's answer is checked exactly, locally and over HTTP.

#[path = "common/mod.rs"]
mod common;
#[path = "common/server.rs"]
mod server_common;

use std::collections::BTreeSet;

use base64::Engine as _;
use common::{Run, Vault, digest_of, str_field};
use serde_json::{Value, json};
use server_common::{Req, Server};
use signature::Signer as _;
use spki::EncodePublicKey as _;

const CHECKOUT_141: &str = "1411111111111111111111111111111111111111";
const CHECKOUT_142: &str = "1422222222222222222222222222222222222222";
const PAYMENTS_200: &str = "2000000000000000000000000000000000000000";
const CVE: &str = "CVE-2021-23337";

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap();
    b
}

/// The key the release lane signs blobs with (the same in every test: it only has to be made
/// here, not kept secret).
fn cosign_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn pretty(v: &Value) -> Vec<u8> {
    serde_json::to_vec_pretty(v).unwrap()
}

fn image(blueprint: &str, version: &str) -> String {
    digest_of(format!("ghcr.io/acme/{blueprint}:{version} image manifest").as_bytes())
}

fn sbom(components: &[(&str, &str)]) -> Vec<u8> {
    let components: Vec<Value> = components
        .iter()
        .map(|(name, version)| {
            json!({"type": "library", "name": name, "version": version,
                   "purl": format!("pkg:npm/{name}@{version}")})
        })
        .collect();
    pretty(
        &json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
                   "components": components}),
    )
}

/// A grype report: lodash 4.17.20 has CVE-2021-23337 (high), when `vulnerable`.
fn grype(vulnerable: bool) -> Vec<u8> {
    let matches = if vulnerable {
        json!([{"vulnerability": {"id": CVE, "severity": "High",
                                  "fix": {"versions": ["4.17.21"], "state": "fixed"}},
                "artifact": {"name": "lodash", "version": "4.17.20", "type": "npm",
                             "purl": "pkg:npm/lodash@4.17.20"}}])
    } else {
        json!([])
    };
    pretty(&json!({"matches": matches, "source": {"type": "image"},
                   "descriptor": {"name": "grype", "version": "0.74.0"}}))
}

fn openvex_not_affected() -> Vec<u8> {
    pretty(&json!({
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "https://acme.example/vex/payments-2.0.0",
        "author": "security@acme.example", "timestamp": "2026-03-01T09:00:00Z", "version": 1,
        "statements": [{"vulnerability": {"name": CVE},
                        "products": [{"@id": "pkg:oci/payments"}],
                        "status": "not_affected",
                        "justification": "vulnerable_code_not_in_execute_path"}]
    }))
}

fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// SLSA v1 provenance about `artifact`, built from `commit`, in a DSSE envelope signed by `sk`.
fn signed_provenance(sk: &ed25519_dalek::SigningKey, artifact: &str, commit: &str) -> Vec<u8> {
    let payload = serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "image", "digest": {"sha256": &artifact["sha256:".len()..]}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {},
                "resolvedDependencies": [{"uri": "git+https://github.com/acme/shop@refs/heads/main",
                                          "digest": {"gitCommit": commit}}]
            },
            "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}}
        }
    }))
    .unwrap();
    let payload_type = "application/vnd.in-toto+json";
    let sig = sk.sign(&pae(payload_type, &payload));
    serde_json::to_vec(
        &json!({"payloadType": payload_type, "payload": b64(&payload),
        "signatures": [{"keyid": "", "sig": b64(&sig.to_bytes())}]}),
    )
    .unwrap()
}

fn approval(blueprint: &str, version: &str, env: &str, decision: &str, time: &str) -> Vec<u8> {
    pretty(&json!({
        "_type": "https://evault.dev/approval/v1",
        "approver": "maria.lopez", "decision": decision, "environment": env, "time": time,
        "reason": "CAB-1042 reviewed", "blueprint": {"name": blueprint, "version": version}
    }))
}

/// The history every test starts from (see the module comment), with what tests need of it.
struct History {
    v: Vault,
    key: ed25519_dalek::SigningKey,
    /// Deploy record ids by (blueprint version, environment).
    deploy_142_production: String,
    deploy_200_production: String,
    rollback: String,
    /// Just before the rollback was recorded.
    before_rollback: String,
    /// Just before the VEX of payments 2.0.0 was pushed.
    before_vex: String,
    vex: String,
}

fn push(v: &Vault, file: &str, bytes: &[u8], blueprint: &str, version: &str, sha: &str) -> Value {
    v.write(file, bytes);
    let run = v
        .run([
            "--json",
            "push",
            file,
            "--blueprint",
            blueprint,
            "--version",
            version,
            "--git-sha",
            sha,
        ])
        .success();
    run.json()[0].clone()
}

/// Every piece of evidence a release lane writes, for one version.
#[allow(clippy::too_many_arguments)]
fn release(
    v: &Vault,
    key: &ed25519_dalek::SigningKey,
    blueprint: &str,
    version: &str,
    sha: &str,
    components: &[(&str, &str)],
    vulnerable: bool,
    complete: bool,
) {
    let dir = format!("{blueprint}-{version}");
    push(
        v,
        &format!("{dir}/sbom.json"),
        &sbom(components),
        blueprint,
        version,
        sha,
    );
    push(
        v,
        &format!("{dir}/scan.json"),
        &grype(vulnerable),
        blueprint,
        version,
        sha,
    );
    let artifact = image(blueprint, version);
    push(
        v,
        &format!("{dir}/provenance.dsse.json"),
        &signed_provenance(key, &artifact, sha),
        blueprint,
        version,
        sha,
    );
    if complete {
        let sbom_bytes = sbom(components);
        // A detached signature over the SBOM, as `cosign sign-blob` makes (ECDSA P-256).
        let sig: p256::ecdsa::Signature = cosign_key().sign(&sbom_bytes);
        v.write(
            &format!("{dir}/sbom.json.sig"),
            b64(sig.to_der().as_bytes()),
        );
        v.run([
            "push",
            &format!("{dir}/sbom.json.sig"),
            "--blueprint",
            blueprint,
            "--version",
            version,
            "--git-sha",
            sha,
            "--subject",
            &digest_of(&sbom_bytes),
            "--kind",
            "signature",
        ])
        .success();
        push(
            v,
            &format!("{dir}/rollback_plan.md"),
            b"# Rollback plan\n\n## Trigger Conditions\nerror rate > 5%\n\n## Rollback Procedure\n1. kubectl rollout undo\n",
            blueprint,
            version,
            sha,
        );
        push(
            v,
            &format!("{dir}/junit.xml"),
            b"<testsuites><testsuite name=\"api\" tests=\"1\"><testcase name=\"ok\"/></testsuite></testsuites>",
            blueprint,
            version,
            sha,
        );
        push(
            v,
            &format!("{dir}/approval.json"),
            &approval(
                blueprint,
                version,
                "production",
                "approve",
                "2026-01-05T10:00:00Z",
            ),
            blueprint,
            version,
            sha,
        );
    }
}

fn deploy(v: &Vault, blueprint: &str, version: &str, env: &str) -> String {
    let run = v
        .run([
            "--json",
            "deploy",
            "--blueprint",
            blueprint,
            "--version",
            version,
            "--env",
            env,
            "--artifact",
            &image(blueprint, version),
        ])
        .success();
    str_field(&run.json(), "id")
}

fn now(v: &Vault) -> String {
    // The index's clock, read the way a user would: the newest checkpoint's time is not
    // exposed, so take the current time with microseconds and step past it.
    let t = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    std::thread::sleep(std::time::Duration::from_millis(5));
    let _ = v;
    t
}

impl History {
    fn build() -> History {
        let v = Vault::initialised().with_actor("release-bot");
        let key = ed25519_dalek::SigningKey::from_bytes(&random32());
        let pem = key
            .verifying_key()
            .to_public_key_pem(spki::der::pem::LineEnding::LF)
            .unwrap();
        v.write("release.pem", &pem);
        v.run(["trust", "key", "add", "release", "--file", "release.pem"])
            .success();
        let cosign = cosign_key()
            .verifying_key()
            .to_public_key_pem(spki::der::pem::LineEnding::LF)
            .unwrap();
        v.write("cosign.pem", &cosign);
        v.run(["trust", "key", "add", "cosign", "--file", "cosign.pem"])
            .success();

        release(
            &v,
            &key,
            "checkout-api",
            "1.4.1",
            CHECKOUT_141,
            &[("lodash", "4.17.20"), ("express", "4.18.2")],
            true,
            true,
        );
        release(
            &v,
            &key,
            "checkout-api",
            "1.4.2",
            CHECKOUT_142,
            &[("lodash", "4.17.21"), ("express", "4.18.2")],
            false,
            true,
        );
        release(
            &v,
            &key,
            "payments",
            "2.0.0",
            PAYMENTS_200,
            &[("lodash", "4.17.20"), ("stripe", "14.0.0")],
            true,
            false,
        );

        deploy(&v, "checkout-api", "1.4.1", "staging");
        deploy(&v, "checkout-api", "1.4.1", "production");
        deploy(&v, "checkout-api", "1.4.2", "staging");
        let deploy_142_production = deploy(&v, "checkout-api", "1.4.2", "production");
        let deploy_200_production = deploy(&v, "payments", "2.0.0", "production");
        let before_rollback = now(&v);
        let rollback = v
            .run([
                "--json",
                "rollback",
                "--blueprint",
                "checkout-api",
                "--env",
                "production",
                "--from-version",
                "1.4.2",
                "--to-version",
                "1.4.1",
                "--reason",
                "checkout errors after the release",
                "--trigger",
                "error rate > 5% for 5 minutes",
                "--incident",
                "https://acme.example/incidents/42",
            ])
            .success();
        let rollback = str_field(&rollback.json(), "id");
        let before_vex = now(&v);
        let vex = push(
            &v,
            "payments-2.0.0/vex.json",
            &openvex_not_affected(),
            "payments",
            "2.0.0",
            PAYMENTS_200,
        );
        History {
            v,
            key,
            deploy_142_production,
            deploy_200_production,
            rollback,
            before_rollback,
            before_vex,
            vex: str_field(&vex, "id"),
        }
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        self.v.run(&all).success().json()
    }
}

/// (blueprint, version, environment) of every live entry in `list`.
fn live_set(list: &Value) -> BTreeSet<(String, String, String)> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list:#}"))
        .iter()
        .map(|l| {
            (
                str_field(l, "blueprint"),
                str_field(l, "version"),
                str_field(l, "environment"),
            )
        })
        .collect()
}

fn versions(list: &Value) -> BTreeSet<(String, String)> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                str_field(&v["blueprint"], "name"),
                str_field(&v["blueprint"], "version"),
            )
        })
        .collect()
}

fn set<const N: usize>(items: [(&str, &str, &str); N]) -> BTreeSet<(String, String, String)> {
    items
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

fn pairs<const N: usize>(items: [(&str, &str); N]) -> BTreeSet<(String, String)> {
    items
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn gaps(trace: &Value) -> Vec<String> {
    trace["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn the_history_answers_every_question_exactly() {
    let h = History::build();

    // Impact search: lodash 4.17.20 is in checkout-api 1.4.1 and payments 2.0.0; the rollback
    // made 1.4.1 live in production again, and staging runs 1.4.2.
    let found = h.json(&["search", "component", "pkg:npm/lodash@4.17.20"]);
    assert_eq!(
        versions(&found["versions"]),
        pairs([("checkout-api", "1.4.1"), ("payments", "2.0.0")]),
        "{found:#}"
    );
    assert_eq!(found["sbom_count"], 2);
    assert_eq!(
        live_set(&found["live"]),
        set([
            ("checkout-api", "1.4.1", "production"),
            ("payments", "2.0.0", "production")
        ])
    );
    // By name and version, and every version by package URL without one.
    let by_name = h.json(&["search", "component", "lodash@4.17.20"]);
    assert_eq!(versions(&by_name["versions"]), versions(&found["versions"]));
    let any = h.json(&["search", "component", "pkg:npm/lodash"]);
    assert_eq!(
        versions(&any["versions"]),
        pairs([
            ("checkout-api", "1.4.1"),
            ("checkout-api", "1.4.2"),
            ("payments", "2.0.0")
        ])
    );
    assert_eq!(
        live_set(&any["live"]),
        set([
            ("checkout-api", "1.4.1", "production"),
            ("checkout-api", "1.4.2", "staging"),
            ("payments", "2.0.0", "production"),
        ])
    );
    let nothing = h.json(&["search", "component", "left-pad"]);
    assert_eq!(nothing["versions"], json!([]));
    assert_eq!(nothing["live"], json!([]));

    // Vulnerability search: payments' VEX says not affected, so only checkout-api 1.4.1 in
    // production is exposed; as of before the VEX, payments was exposed too.
    let vuln = h.json(&["search", "vuln", CVE]);
    assert_eq!(
        live_set(&vuln["exposed_live"]),
        set([("checkout-api", "1.4.1", "production")]),
        "{vuln:#}"
    );
    assert_eq!(
        live_set(&vuln["suppressed_live"]),
        set([("payments", "2.0.0", "production")])
    );
    let payments = vuln["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["blueprint"]["name"] == "payments")
        .unwrap();
    assert_eq!(payments["exposed"], false);
    assert_eq!(payments["findings"][0]["vex"]["status"], "not_affected");
    assert_eq!(payments["findings"][0]["vex"]["record_id"], h.vex.as_str());
    assert_eq!(payments["findings"][0]["severity"], "high");
    let before = h.json(&["search", "vuln", "cve-2021-23337", "--as-of", &h.before_vex]);
    assert_eq!(
        live_set(&before["exposed_live"]),
        set([
            ("checkout-api", "1.4.1", "production"),
            ("payments", "2.0.0", "production")
        ]),
        "{before:#}"
    );
    assert_eq!(before["suppressed_live"], json!([]));

    // Trace a complete release: nothing is missing.
    let trace = h.json(&["trace", "deploy", &h.deploy_142_production]);
    assert_eq!(gaps(&trace), Vec::<String>::new(), "{trace:#}");
    assert_eq!(trace["deploy"]["environment"], "production");
    assert_eq!(trace["deploy"]["actor"], "release-bot");
    assert_eq!(trace["git_sha"], CHECKOUT_142);
    let prov = &trace["evidence"]["provenance"][0];
    assert_eq!(prov["verification"]["status"], "verified", "{prov:#}");
    assert_eq!(prov["summary"]["source_commit"], CHECKOUT_142);
    assert_eq!(
        prov["summary"]["builder_id"],
        "https://github.com/actions/runner/github-hosted"
    );
    assert_eq!(
        trace["evidence"]["approvals"][0]["summary"]["approver"],
        "maria.lopez"
    );
    assert_eq!(
        trace["evidence"]["scans"][0]["summary"]["after_vex"]["high"],
        0
    );
    assert_eq!(trace["rollbacks"][0]["record_id"], h.rollback.as_str());
    assert_eq!(trace["rollbacks"][0]["from_version"], "1.4.2");
    assert_eq!(
        live_set(&trace["live"]),
        set([("checkout-api", "1.4.2", "staging")])
    );
    // A rollback traces to the version it restored, with that version's commit and evidence.
    let rb = h.json(&["trace", "deploy", &h.rollback]);
    assert_eq!(rb["deploy"]["kind"], "rollback");
    assert_eq!(rb["blueprint"]["version"], "1.4.1");
    assert_eq!(rb["git_sha"], CHECKOUT_141);
    assert_eq!(gaps(&rb), Vec::<String>::new(), "{rb:#}");
    // The same deploy by its artifact digest (the latest deploy of that artifact).
    let by_artifact = h.json(&["trace", "deploy", &image("checkout-api", "1.4.2")]);
    assert_eq!(
        by_artifact["deploy"]["record_id"],
        h.deploy_142_production.as_str()
    );

    // Trace an incomplete one: every missing link is named.
    let payments = h.json(&["trace", "deploy", &h.deploy_200_production]);
    assert_eq!(
        gaps(&payments),
        vec![
            "no signature recorded",
            "no approval recorded for production",
            "no rollback plan recorded",
            "no test report recorded",
        ],
        "{payments:#}"
    );
    // With the VEX, the high finding no longer counts; before it, it did.
    assert_eq!(
        payments["evidence"]["scans"][0]["summary"]["after_vex"]["high"],
        0
    );
    let then = h.json(&[
        "trace",
        "deploy",
        &h.deploy_200_production,
        "--as-of",
        &h.before_vex,
    ]);
    assert_eq!(
        then["evidence"]["scans"][0]["summary"]["after_vex"]["high"],
        1
    );
    assert_eq!(then["evidence"]["vex"], json!([]));

    // Trace a commit forward: its version, artifact, deploys, rollback and where it is live.
    let commit = h.json(&["trace", "commit", &CHECKOUT_141[..10]]);
    assert_eq!(commit["git_sha"], CHECKOUT_141);
    let v = &commit["versions"][0];
    assert_eq!(commit["versions"].as_array().unwrap().len(), 1);
    assert_eq!(
        v["blueprint"],
        json!({"name": "checkout-api", "version": "1.4.1"})
    );
    assert_eq!(v["artifacts"], json!([image("checkout-api", "1.4.1")]));
    let envs: Vec<&str> = v["deploys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["environment"].as_str().unwrap())
        .collect();
    assert_eq!(envs, ["staging", "production"]);
    assert_eq!(v["rollbacks"][0]["record_id"], h.rollback.as_str());
    assert_eq!(
        live_set(&v["live"]),
        set([("checkout-api", "1.4.1", "production")])
    );
    // Before the rollback, 1.4.2 was live in production and 1.4.1 nowhere.
    let past = h.json(&[
        "trace",
        "commit",
        CHECKOUT_141,
        "--as-of",
        &h.before_rollback,
    ]);
    assert_eq!(past["versions"][0]["live"], json!([]));
    assert_eq!(past["versions"][0]["rollbacks"], json!([]));

    // The change log of production: four deploys... three, an approval per complete version,
    // and the rollback; only the complete release's entries have no gaps.
    let log = h.json(&[
        "audit",
        "changelog",
        "--since",
        "2026-01-01",
        "--until",
        "2100-01-01",
        "--env",
        "production",
    ]);
    assert_eq!(log["deploys"], 3, "{log:#}");
    assert_eq!(log["approvals"], 2);
    assert_eq!(log["rollbacks"], 1);
    let entries = log["entries"].as_array().unwrap();
    let kinds: Vec<&str> = entries
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "approval", "approval", "deploy", "deploy", "deploy", "rollback"
        ],
        "oldest first: the approvals are dated January"
    );
    let rollback = &entries[5];
    assert_eq!(rollback["blueprint"]["version"], "1.4.1");
    assert_eq!(rollback["git_sha"], CHECKOUT_141);
    assert_eq!(
        rollback["detail"]["incident"],
        "https://acme.example/incidents/42"
    );
    assert_eq!(rollback["gaps"], json!([]), "{rollback:#}");
    let payments_deploy = entries
        .iter()
        .find(|e| e["record_id"] == h.deploy_200_production.as_str())
        .unwrap();
    assert_eq!(payments_deploy["gaps"].as_array().unwrap().len(), 4);
    assert_eq!(log["complete"], 5);
    assert_eq!(log["incomplete"], 1);
    // A period with nothing in it.
    let empty = h.json(&[
        "audit",
        "changelog",
        "--since",
        "2020-01-01",
        "--until",
        "2020-02-01",
    ]);
    assert_eq!(empty["entries"], json!([]));

    // People read the same answers.
    let text =
        h.v.run(["trace", "deploy", &h.deploy_200_production])
            .success()
            .stdout_text();
    assert!(
        text.contains("no approval recorded for production"),
        "{text}"
    );
    assert!(text.contains("payments 2.0.0 to production"), "{text}");
    let text = h.v.run(["search", "vuln", CVE]).success().stdout_text();
    assert!(
        text.contains("checkout-api 1.4.1 live in production"),
        "{text}"
    );
    assert!(text.contains("suppressed by VEX"), "{text}");
    let _ = &h.key;
}

#[test]
fn verdicts_as_of_a_time_are_the_ones_the_log_held_then() {
    let v = Vault::initialised();
    let key = ed25519_dalek::SigningKey::from_bytes(&random32());
    let artifact = image("checkout-api", "2.0.0");
    let sha = CHECKOUT_142;
    // Signed by a key the vault does not trust yet: not verified.
    let prov = push(
        &v,
        "p.json",
        &signed_provenance(&key, &artifact, sha),
        "checkout-api",
        "2.0.0",
        sha,
    );
    assert_ne!(prov["verification"]["status"], "verified");
    v.run([
        "deploy",
        "--blueprint",
        "checkout-api",
        "--version",
        "2.0.0",
        "--env",
        "staging",
        "--artifact",
        &artifact,
    ])
    .success();
    let untrusted = now(&v);
    let pem = key
        .verifying_key()
        .to_public_key_pem(spki::der::pem::LineEnding::LF)
        .unwrap();
    v.write("k.pem", &pem);
    v.run(["trust", "key", "add", "release", "--file", "k.pem"])
        .success();
    v.run(["verify", &str_field(&prov, "id")]).success();

    let today = v
        .run(["--json", "trace", "deploy", &artifact])
        .success()
        .json();
    assert_eq!(
        today["evidence"]["provenance"][0]["verification"]["status"],
        "verified"
    );
    assert!(
        !gaps(&today).iter().any(|g| g.contains("not verified")),
        "{today:#}"
    );
    let then = v
        .run([
            "--json", "trace", "deploy", &artifact, "--as-of", &untrusted,
        ])
        .success()
        .json();
    let status = str_field(&then["evidence"]["provenance"][0]["verification"], "status");
    assert_ne!(status, "verified", "{then:#}");
    assert!(
        gaps(&then)
            .iter()
            .any(|g| g.starts_with("provenance") && g.contains("not verified")),
        "{then:#}"
    );
    // Before anything was pushed, the vault knew of no deploy.
    v.run(["trace", "deploy", &artifact, "--as-of", "2020-01-01"])
        .fails(3, &["no deploy of artifact", "as of 2020-01-01"]);
}

#[test]
fn deploy_and_rollback_take_the_commit_from_the_evidence_or_say_why_not() {
    let v = Vault::initialised();
    let artifact = image("checkout-api", "1.0.0");
    // No evidence yet: the commit cannot be known.
    let before = v.snapshot();
    v.run([
        "deploy",
        "--blueprint",
        "checkout-api",
        "--version",
        "1.0.0",
        "--env",
        "staging",
        "--artifact",
        &artifact,
    ])
    .fails(2, &["no evidence of checkout-api 1.0.0", "--git-sha"]);
    assert_eq!(v.snapshot(), before, "a refused deploy changes nothing");
    // Evidence from two commits: ambiguous.
    push(
        &v,
        "a.json",
        &sbom(&[("a", "1")]),
        "checkout-api",
        "1.0.0",
        CHECKOUT_141,
    );
    push(
        &v,
        "b.json",
        &sbom(&[("b", "1")]),
        "checkout-api",
        "1.0.0",
        CHECKOUT_142,
    );
    v.run([
        "deploy",
        "--blueprint",
        "checkout-api",
        "--version",
        "1.0.0",
        "--env",
        "staging",
        "--artifact",
        &artifact,
    ])
    .fails(2, &["names 2 commits", CHECKOUT_141, CHECKOUT_142]);
    // Said explicitly: recorded, with the actor and a warning that no evidence names the
    // artifact.
    let run = v
        .run([
            "--json",
            "deploy",
            "--blueprint",
            "checkout-api",
            "--version",
            "1.0.0",
            "--env",
            "staging",
            "--artifact",
            &artifact,
            "--git-sha",
            CHECKOUT_141,
            "--status",
            "succeeded",
            "--target",
            "eu-west-1",
        ])
        .success();
    let recorded = run.json();
    assert_eq!(recorded["kind"], "deploy");
    assert_eq!(recorded["format"], "evault-deploy");
    assert_eq!(recorded["git_sha"], CHECKOUT_141);
    assert_eq!(recorded["environment"], "staging");
    assert_eq!(recorded["subjects"], json!([artifact]));
    assert_eq!(recorded["producer"], common::ACTOR);
    assert!(
        recorded["warnings"][0]
            .as_str()
            .unwrap()
            .contains("no evidence of checkout-api 1.0.0 names artifact"),
        "{recorded:#}"
    );
    // A retry that repeats the time finds the record already there.
    let retry = [
        "--json",
        "deploy",
        "--blueprint",
        "checkout-api",
        "--version",
        "1.0.0",
        "--env",
        "production",
        "--artifact",
        &artifact,
        "--git-sha",
        CHECKOUT_141,
        "--time",
        "2026-03-03T10:00:00Z",
    ];
    let first = v.run(retry).success().json();
    let second = v.run(retry).success().json();
    assert_eq!(first["status"], "created");
    assert_eq!(second["status"], "present");
    assert_eq!(first["id"], second["id"]);
    assert_eq!(
        v.show_json(&str_field(&first, "id"))["summary"]["time"],
        "2026-03-03T10:00:00Z"
    );
    let shown = v.show_json(&str_field(&recorded, "id"));
    assert_eq!(shown["summary"]["actor"], common::ACTOR);
    assert_eq!(shown["summary"]["status"], "succeeded");
    assert_eq!(shown["summary"]["target"], "eu-west-1");

    // Bad input: one line naming the flag, nothing stored.
    let sbom_id = str_field(
        &push(
            &v,
            "c.json",
            &sbom(&[]),
            "checkout-api",
            "1.0.0",
            CHECKOUT_141,
        ),
        "id",
    );
    let before = v.snapshot();
    v.run([
        "deploy",
        "--blueprint",
        "checkout-api",
        "--version",
        "1.0.0",
        "--env",
        "staging",
        "--artifact",
        "sha256:nothex",
    ])
    .fails(2, &["invalid artifact"]);
    v.run([
        "rollback",
        "--blueprint",
        "checkout-api",
        "--env",
        "staging",
        "--from-version",
        "1.0.0",
        "--to-version",
        "1.0.0",
        "--reason",
        "x",
    ])
    .fails(2, &["both 1.0.0"]);
    v.run([
        "rollback",
        "--blueprint",
        "checkout-api",
        "--env",
        "staging",
        "--from-version",
        "1.0.0",
        "--to-version",
        "0.9.0",
        "--reason",
        "  ",
    ])
    .fails(2, &["reason"]);
    v.run(["trace", "deploy", "xyz"])
        .fails(2, &["invalid deploy 'xyz'"]);
    v.run(["trace", "commit", "abc"])
        .fails(2, &["invalid commit 'abc'"]);
    v.run(["trace", "deploy", &sbom_id])
        .fails(2, &["is sbom evidence, not a deploy"]);
    v.run(["search", "vuln", "CVE 1"])
        .fails(2, &["invalid vulnerability id"]);
    v.run(["trace", "deploy", "sha256:abc", "--as-of", "yesterday"])
        .fails(2, &["invalid --as-of 'yesterday'"]);
    v.run([
        "audit",
        "changelog",
        "--since",
        "2026-02-01",
        "--until",
        "2026-01-01",
    ])
    .fails(2, &["is not before --until"]);
    assert_eq!(v.snapshot(), before, "refused commands change nothing");

    // A rollback to a version never deployed is recorded with warnings; the commit is the
    // rolled-back version's (ambiguous here, so it must be given).
    v.run([
        "rollback",
        "--blueprint",
        "checkout-api",
        "--env",
        "staging",
        "--from-version",
        "1.0.0",
        "--to-version",
        "0.9.0",
        "--reason",
        "broken",
    ])
    .fails(2, &["names 2 commits"]);
    let rb = v
        .run([
            "--json",
            "rollback",
            "--blueprint",
            "checkout-api",
            "--env",
            "staging",
            "--from-version",
            "1.0.0",
            "--to-version",
            "0.9.0",
            "--reason",
            "broken",
            "--git-sha",
            CHECKOUT_141,
        ])
        .success()
        .json();
    assert_eq!(rb["kind"], "rollback");
    assert!(
        rb["warnings"].as_array().unwrap().iter().any(|w| w
            .as_str()
            .unwrap()
            .contains("0.9.0 was never recorded as deployed to staging")),
        "{rb:#}"
    );
    let shown = v.show_json(&str_field(&rb, "id"));
    assert_eq!(shown["summary"]["trigger"], "manual rollback");
    assert_eq!(shown["summary"]["to_version"], "0.9.0");
}

/// Runs `evault --server URL ARGS` with `token`.
/// Live answers read a table derived from the deploy and rollback documents; `fsck` derives
/// it again and names every row that differs, so an edit of the index cannot quietly change
/// what an incident responder is told is running.
#[test]
fn fsck_finds_a_live_deployment_row_that_differs_from_its_document() {
    let h = History::build();
    h.v.run(["fsck"]).success();
    let conn = rusqlite::Connection::open(h.v.data_dir().join("index.db")).unwrap();
    let changed = conn
        .execute(
            "UPDATE changes SET version = '1.4.2' WHERE record_id = ?1",
            [&h.rollback],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    // The edit reaches the answer: production now claims 1.4.2 ...
    let found = h.json(&["search", "component", "pkg:npm/lodash@4.17.20"]);
    assert!(
        !live_set(&found["live"]).contains(&(
            "checkout-api".to_string(),
            "1.4.1".to_string(),
            "production".to_string()
        )),
        "{found:#}"
    );
    // ... and fsck says which record's row is wrong.
    let run = h.v.run(["fsck"]);
    assert_eq!(run.code, 4, "{run:?}");
    assert!(
        run.stderr
            .contains("1 derived index row(s) disagree with the records they come from"),
        "{run:?}"
    );
    assert!(
        run.stdout_text().contains(&format!(
            "index: changes: the row of record {} differs from its document",
            h.rollback
        )),
        "{run:?}"
    );
    let report = h.v.run(["--json", "fsck"]);
    let report: Value = serde_json::from_str(&report.stdout_text()).unwrap();
    assert_eq!(report["index_problems"].as_array().map(Vec::len), Some(1));
}

fn remote(server: &Server, token: &str, args: &[&str]) -> Run {
    server_common::remote(server, Some(token), args)
}

#[test]
fn over_http_the_actor_is_the_token_and_scopes_bound_every_answer() {
    let h = History::build();
    let server = Server::start_on(h.v, None);
    let ci = server.token("ci-deployer", "pusher", &["checkout-*"], None);
    let auditor = server.token("soc2-auditor", "auditor", &[], None);
    let payments_team = server.token("payments-team", "auditor", &["payments"], None);

    // The deploy's actor is the token, whatever the body says; unknown fields are refused.
    let artifact = image("checkout-api", "1.4.2");
    let body = json!({"blueprint": "checkout-api", "version": "1.4.2", "env": "canary",
                      "artifact": artifact});
    let reply = server.send(
        Req::new("POST", "/v1/deploys")
            .token(&ci)
            .header("content-type", "application/json")
            .body(body.to_string()),
    );
    assert_eq!(reply.status, 201, "{}", reply.text());
    let id = str_field(&reply.json(), "id");
    let mut forged = body.clone();
    forged["actor"] = json!("someone-else");
    let reply = server.send(
        Req::new("POST", "/v1/deploys")
            .token(&ci)
            .header("content-type", "application/json")
            .body(forged.to_string()),
    );
    assert_eq!(reply.status, 400);
    assert!(reply.text().contains("actor"), "{}", reply.text());
    // Outside its scopes, and for a reader: refused.
    let reply = server.send(
        Req::new("POST", "/v1/deploys")
            .token(&ci)
            .header("content-type", "application/json")
            .body(
                json!({"blueprint": "payments", "version": "2.0.0", "env": "canary",
                         "artifact": image("payments", "2.0.0")})
                .to_string(),
            ),
    );
    assert_eq!(reply.status, 403, "{}", reply.text());
    // ... even for a version that does not exist: a refusal says nothing about other teams.
    let reply = server.send(
        Req::new("POST", "/v1/deploys")
            .token(&ci)
            .header("content-type", "application/json")
            .body(
                json!({"blueprint": "payments", "version": "9.9.9", "env": "canary",
                       "artifact": image("payments", "9.9.9")})
                .to_string(),
            ),
    );
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert!(!reply.text().contains("9.9.9"), "{}", reply.text());
    remote(
        &server,
        &auditor,
        &[
            "deploy",
            "--blueprint",
            "checkout-api",
            "--version",
            "1.4.2",
            "--env",
            "canary",
            "--artifact",
            &artifact,
        ],
    )
    .fails(6, &["pushing evidence"]);

    let trace = remote(&server, &auditor, &["--json", "trace", "deploy", &id])
        .success()
        .json();
    assert_eq!(trace["deploy"]["actor"], "ci-deployer");
    assert_eq!(trace["deploy"]["producer"], "ci-deployer");
    // The CLI over HTTP gives what it gives locally.
    let rollback = remote(
        &server,
        &ci,
        &[
            "--json",
            "rollback",
            "--blueprint",
            "checkout-api",
            "--env",
            "canary",
            "--from-version",
            "1.4.2",
            "--to-version",
            "1.4.1",
            "--reason",
            "canary failed",
        ],
    )
    .success()
    .json();
    assert_eq!(rollback["producer"], "ci-deployer");
    let found = remote(
        &server,
        &auditor,
        &["--json", "search", "component", "pkg:npm/lodash"],
    )
    .success()
    .json();
    assert_eq!(
        live_set(&found["live"]),
        set([
            ("checkout-api", "1.4.1", "canary"),
            ("checkout-api", "1.4.1", "production"),
            ("checkout-api", "1.4.2", "staging"),
            ("payments", "2.0.0", "production"),
        ]),
        "{found:#}"
    );

    // A scoped auditor sees only its blueprints, everywhere.
    let scoped = remote(
        &server,
        &payments_team,
        &["--json", "search", "component", "pkg:npm/lodash"],
    )
    .success()
    .json();
    assert_eq!(
        versions(&scoped["versions"]),
        pairs([("payments", "2.0.0")])
    );
    remote(&server, &payments_team, &["trace", "deploy", &id]).fails(3, &["no record"]);
    remote(&server, &payments_team, &["trace", "commit", CHECKOUT_141])
        .fails(3, &["no evidence for commit"]);
    let log = remote(
        &server,
        &payments_team,
        &[
            "--json",
            "audit",
            "changelog",
            "--since",
            "2026-01-01",
            "--until",
            "2100-01-01",
        ],
    )
    .success()
    .json();
    assert!(
        log["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["blueprint"]["name"] == "payments"),
        "{log:#}"
    );
    assert_eq!(log["deploys"], 1);

    // The reads are in the access log.
    let access = remote(&server, &auditor, &["--json", "audit", "access"])
        .success()
        .json();
    let actions: BTreeSet<String> = access["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| str_field(e, "action"))
        .collect();
    for a in [
        "trace.deploy",
        "search.component",
        "audit.changelog",
        "trace.commit",
    ] {
        assert!(actions.contains(a), "{a} not logged: {actions:?}");
    }
}
