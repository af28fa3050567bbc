//! Verification end to end: keys made in the test, evidence signed in the test, trust set with
//! `evault trust`, verdicts read from `evault show --json` and `evault verify`.

#[path = "common/mod.rs"]
mod common;

use base64::Engine as _;
use common::{GIT_SHA, Vault, digest_of, str_field};
use serde_json::{Value, json};
use signature::Signer as _;
use spki::EncodePublicKey as _;

fn random32() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap();
    b
}

/// A P-256 key pair: (signing key, SPKI PEM of the public key).
fn p256_key() -> (p256::ecdsa::SigningKey, String) {
    let sk = loop {
        if let Ok(k) = p256::ecdsa::SigningKey::from_slice(&random32()) {
            break k;
        }
    };
    let pem = sk
        .verifying_key()
        .to_public_key_pem(spki::der::pem::LineEnding::LF)
        .unwrap();
    (sk, pem)
}

fn ed25519_key() -> (ed25519_dalek::SigningKey, String) {
    let sk = ed25519_dalek::SigningKey::from_bytes(&random32());
    let pem = sk
        .verifying_key()
        .to_public_key_pem(spki::der::pem::LineEnding::LF)
        .unwrap();
    (sk, pem)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
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

/// An in-toto Statement v1 with a SLSA v1 predicate built from `commit`, about `artifact`.
fn provenance(artifact: &[u8], commit: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": "checkout-api.tar", "digest": {"sha256": &digest_of(artifact)["sha256:".len()..]}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                "externalParameters": {},
                "resolvedDependencies": [{"uri": "git+https://github.com/acme/checkout-api@refs/tags/v1.4.2", "digest": {"gitCommit": commit}}]
            },
            "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}}
        }
    }))
    .unwrap()
}

const IN_TOTO: &str = "application/vnd.in-toto+json";

fn envelope(payload: &[u8], sigs: &[Vec<u8>]) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "payloadType": IN_TOTO,
        "payload": b64(payload),
        "signatures": sigs.iter().map(|s| json!({"keyid": "", "sig": b64(s)})).collect::<Vec<_>>(),
    }))
    .unwrap()
}

fn p256_dsse(sk: &p256::ecdsa::SigningKey, payload: &[u8]) -> Vec<u8> {
    let sig: p256::ecdsa::Signature = sk.sign(&pae(IN_TOTO, payload));
    envelope(payload, &[sig.to_der().as_bytes().to_vec()])
}

const ARTIFACT: &[u8] = b"checkout-api 1.4.2 release tarball";

fn trust_key(v: &Vault, name: &str, pem: &str, scopes: &[&str]) {
    v.write(&format!("{name}.pem"), pem);
    let mut args = vec![
        "trust".to_string(),
        "key".into(),
        "add".into(),
        name.into(),
        "--file".into(),
        format!("{name}.pem"),
    ];
    for s in scopes {
        args.push("--scope".into());
        args.push(s.to_string());
    }
    v.run(&args).success();
}

fn push(v: &Vault, file: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        file,
        "--blueprint",
        "checkout-api",
        "--version",
        "1.4.2",
        "--git-sha",
        GIT_SHA,
    ];
    args.extend_from_slice(extra);
    v.push_json(&args).remove(0)
}

fn verdict(v: &Vault, record: &Value) -> Value {
    v.show_json(&str_field(record, "id"))["verification"].clone()
}

#[test]
fn a_dsse_provenance_signed_by_a_trusted_key_verifies_and_says_why() {
    let v = Vault::initialised();
    let (sk, pem) = p256_key();
    trust_key(&v, "release-signer", &pem, &[]);
    v.write(
        "provenance.dsse.json",
        p256_dsse(&sk, &provenance(ARTIFACT, GIT_SHA)),
    );
    let record = push(&v, "provenance.dsse.json", &[]);
    assert_eq!(record["verification"]["status"], "verified", "{record:#}");
    assert_eq!(record["verification"]["by"], "key release-signer");
    assert_eq!(verdict(&v, &record)["status"], "verified");

    let run = v.run(["verify", &str_field(&record, "id")]);
    assert_eq!(run.code, 0, "{run:?}");
    let text = run.stdout_text();
    assert!(text.contains("verifies over PAE"), "{text}");
    assert!(text.contains("source commit"), "{text}");
    assert!(
        text.contains("verdict: verified by key release-signer"),
        "{text}"
    );
    let json = v
        .run(["--json", "verify", &str_field(&record, "id")])
        .success()
        .json();
    assert_eq!(json["verification"]["status"], "verified");
    assert!(json["steps"].as_array().unwrap().len() >= 4, "{json:#}");
}

#[test]
fn ed25519_signed_envelopes_verify_too() {
    let v = Vault::initialised();
    let (sk, pem) = ed25519_key();
    trust_key(&v, "ed", &pem, &[]);
    let payload = provenance(ARTIFACT, GIT_SHA);
    let sig = sk.sign(&pae(IN_TOTO, &payload));
    v.write("p.json", envelope(&payload, &[sig.to_bytes().to_vec()]));
    assert_eq!(
        push(&v, "p.json", &[])["verification"]["status"],
        "verified"
    );
}

#[test]
fn a_tampered_payload_an_untrusted_key_and_no_key_are_told_apart() {
    let v = Vault::initialised();
    let (sk, _) = p256_key();
    let (_, other_pem) = p256_key();
    // Signed, but by a key nobody trusts yet: untrusted.
    v.write("p.json", p256_dsse(&sk, &provenance(ARTIFACT, GIT_SHA)));
    let none = push(&v, "p.json", &[]);
    assert_eq!(none["verification"]["status"], "untrusted", "{none:#}");
    assert!(
        str_field(&none["verification"], "reason").contains("no trusted key"),
        "{none:#}"
    );
    let run = v.run(["verify", &str_field(&none, "id")]);
    assert_eq!(run.code, 7, "{run:?}");

    // Trusting another key does not help.
    trust_key(&v, "other", &other_pem, &[]);
    let run = v.run(["--json", "verify", &str_field(&none, "id")]);
    assert_eq!(run.code, 7);
    assert_eq!(run.json()["verification"]["status"], "untrusted");

    // A payload changed after signing never verifies.
    let (signer, signer_pem) = p256_key();
    trust_key(&v, "signer", &signer_pem, &[]);
    let mut doc: Value =
        serde_json::from_slice(&p256_dsse(&signer, &provenance(ARTIFACT, GIT_SHA))).unwrap();
    doc["payload"] = json!(b64(&provenance(b"another artifact", GIT_SHA)));
    v.write("tampered.json", serde_json::to_vec(&doc).unwrap());
    let tampered = push(&v, "tampered.json", &[]);
    assert_ne!(
        tampered["verification"]["status"], "verified",
        "{tampered:#}"
    );
}

#[test]
fn signed_content_must_agree_with_the_record() {
    let v = Vault::initialised();
    let (sk, pem) = p256_key();
    trust_key(&v, "k", &pem, &[]);
    // The provenance says another commit than the record: a failed verification.
    let other_commit = "fedcba9876543210fedcba9876543210fedcba98";
    v.write(
        "wrong-commit.json",
        p256_dsse(&sk, &provenance(ARTIFACT, other_commit)),
    );
    let r = push(&v, "wrong-commit.json", &[]);
    assert_eq!(r["verification"]["status"], "failed", "{r:#}");
    assert!(
        str_field(&r["verification"], "reason").contains(other_commit),
        "{r:#}"
    );
    // The record claims an artifact the statement does not sign: failed.
    v.write("good.json", p256_dsse(&sk, &provenance(ARTIFACT, GIT_SHA)));
    let claimed = digest_of(b"some other artifact");
    let r = push(&v, "good.json", &["--subject", &claimed]);
    assert_eq!(r["verification"]["status"], "failed", "{r:#}");
    assert!(
        str_field(&r["verification"], "reason").contains(&claimed),
        "{r:#}"
    );
}

#[test]
fn keys_are_trusted_only_for_their_blueprints() {
    let v = Vault::initialised();
    let (sk, pem) = p256_key();
    trust_key(&v, "payments-signer", &pem, &["payments-*"]);
    v.write("p.json", p256_dsse(&sk, &provenance(ARTIFACT, GIT_SHA)));
    let r = push(&v, "p.json", &[]);
    assert_eq!(r["verification"]["status"], "untrusted", "{r:#}");
    assert!(
        str_field(&r["verification"], "reason").contains("checkout-api"),
        "{r:#}"
    );
}

#[test]
fn a_detached_signature_vouches_for_the_artifact_it_signs() {
    let v = Vault::initialised();
    let (sk, pem) = p256_key();
    trust_key(&v, "cosign", &pem, &[]);
    let sbom = br#"{"bomFormat":"CycloneDX","specVersion":"1.5","version":1,"components":[]}"#;
    v.write("sbom.json", sbom);
    let sbom_record = push(&v, "sbom.json", &[]);
    assert_eq!(sbom_record["verification"]["status"], "unsigned");
    // cosign sign-blob: ECDSA P-256 over SHA-256 of the blob, base64.
    let sig: p256::ecdsa::Signature = sk.sign(sbom);
    v.write("sbom.json.sig", b64(sig.to_der().as_bytes()));
    let sig_record = push(&v, "sbom.json.sig", &["--subject", &digest_of(sbom)]);
    assert_eq!(sig_record["kind"], "signature");
    assert_eq!(
        sig_record["verification"]["status"], "verified",
        "{sig_record:#}"
    );
    // The SBOM record is now verified by the signature record.
    let now = verdict(&v, &sbom_record);
    assert_eq!(now["status"], "verified", "{now:#}");
    assert!(
        str_field(&now, "by").contains(&str_field(&sig_record, "id")),
        "{now:#}"
    );
    // A detached signature without its artifact's digest cannot be checked.
    v.write("orphan.sig", b64(sig.to_der().as_bytes()));
    let orphan = push(&v, "orphan.sig", &[]);
    assert_eq!(orphan["verification"]["status"], "failed", "{orphan:#}");
    assert!(
        str_field(&orphan["verification"], "reason").contains("--subject"),
        "{orphan:#}"
    );
}

#[test]
fn a_required_blueprint_refuses_unverified_evidence() {
    let v = Vault::initialised();
    v.run(["trust", "require", "checkout-*"]).success();
    v.write("notes.md", "# Release notes\n\nNothing.\n");
    let before = v.snapshot();
    let run = v.run([
        "push",
        "notes.md",
        "--blueprint",
        "checkout-api",
        "--version",
        "1",
        "--git-sha",
        GIT_SHA,
    ]);
    run.fails(2, &["must be verified", "checkout-*"]);
    assert_eq!(v.snapshot(), before, "nothing stored");
    // Another blueprint is not concerned.
    v.run([
        "push",
        "notes.md",
        "--blueprint",
        "payments-api",
        "--version",
        "1",
        "--git-sha",
        GIT_SHA,
    ])
    .success();
    // Signed evidence passes.
    let (sk, pem) = p256_key();
    trust_key(&v, "k", &pem, &[]);
    v.write("p.json", p256_dsse(&sk, &provenance(ARTIFACT, GIT_SHA)));
    assert_eq!(
        push(&v, "p.json", &[])["verification"]["status"],
        "verified"
    );
}

#[test]
fn trust_is_listed_and_bad_trust_input_is_refused() {
    let v = Vault::initialised();
    let (_, pem) = p256_key();
    trust_key(&v, "k1", &pem, &["checkout-*"]);
    v.write("again.pem", &pem);
    v.run(["trust", "key", "add", "k2", "--file", "again.pem"])
        .fails(2, &["already trusted as 'k1'"]);
    v.write(
        "junk.pem",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
    );
    v.run(["trust", "key", "add", "junk", "--file", "junk.pem"])
        .fails(2, &["not a usable public key"]);
    v.run([
        "trust",
        "identity",
        "add",
        "gha",
        "--san-regex",
        "(",
        "--issuer",
        "https://token.actions.githubusercontent.com",
    ])
    .fails(2, &["regular expression"]);
    v.run([
        "trust",
        "identity",
        "add",
        "release",
        "--san",
        "https://github.com/acme/checkout-api/.github/workflows/release.yml@refs/tags/v1.4.2",
        "--issuer",
        "https://token.actions.githubusercontent.com",
    ])
    .success();
    v.write("root.json", "{}");
    v.run(["trust", "root", "add", "public-good", "--file", "root.json"])
        .fails(2, &["trusted root"]);
    let listed = v.run(["--json", "trust", "ls"]).success().json();
    assert_eq!(listed["keys"][0]["name"], "k1");
    assert_eq!(listed["keys"][0]["scopes"], json!(["checkout-*"]));
    assert_eq!(listed["identities"][0]["name"], "release");
    v.run(["trust", "key", "rm", "k1"]).success();
    v.run(["trust", "key", "rm", "k1"])
        .fails(3, &["no trusted key 'k1'"]);
}
