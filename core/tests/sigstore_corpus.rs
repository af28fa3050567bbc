//! Sigstore bundle verification against the real corpus (`/work/shared/corpus`, or
//! `$EVAULT_CORPUS`): every bundle under `sigstore/bundles/`, the bundles under `provenance/`,
//! and the npm publish attestation, each with the trusted root, identity and artifact its
//! MANIFEST names. Where the MANIFEST records that verifiers disagree, the decision taken here
//! (and why it is the spec-correct one) is written next to the case.
//!
//! Then the tamper cases: each part of a valid bundle is altered in turn and verification must
//! fail with a reason naming that part.

use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, TimeZone, Utc};
use evault_core::verify::sigstore::{
    Artifact, IdentityPolicy, Policy, SanPolicy, Signer, TrustedRoot, verify_bundle,
};
use serde_json::Value;

fn corpus() -> Option<PathBuf> {
    let dir = std::env::var_os("EVAULT_CORPUS").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
        PathBuf::from,
    );
    if dir.join("sigstore/MANIFEST.md").exists() {
        Some(dir)
    } else {
        assert!(
            std::env::var("EVAULT_REQUIRE_CORPUS").as_deref() != Ok("1"),
            "EVAULT_REQUIRE_CORPUS=1 but there is no corpus at {}",
            dir.display()
        );
        eprintln!("corpus not found at {}; skipping", dir.display());
        None
    }
}

fn read(rel: &str) -> Vec<u8> {
    let path = corpus().expect("corpus").join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn root(which: Root) -> TrustedRoot {
    let file = match which {
        Root::PublicGood => "sigstore/trusted_root/public-good.trusted_root.json",
        Root::Staging => "sigstore/trusted_root/staging.trusted_root.json",
    };
    TrustedRoot::from_json(&read(file)).expect("trusted root parses")
}

fn pem_to_der(pem: &[u8]) -> Vec<u8> {
    let text = std::str::from_utf8(pem).unwrap();
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

/// A fixed "now" after every bundle in the corpus; certificate validity is judged at the
/// verified signing time, never at this clock.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 0, 0, 0).unwrap()
}

const GITHUB_ACTIONS: &str = "https://token.actions.githubusercontent.com";
const GITHUB_OAUTH: &str = "https://github.com/login/oauth";
const SIGSTORE_JS_RELEASE: &str =
    "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Root {
    PublicGood,
    Staging,
}

#[derive(Clone, Copy)]
enum Art {
    Absent,
    /// A file in the corpus.
    File(&'static str),
    /// A SHA-256 the MANIFEST gives (the artifact itself is not in the corpus).
    Sha256(&'static str),
}

#[derive(Clone, Copy)]
enum Expect {
    Valid,
    /// Invalid, with a fragment the reason must contain.
    Invalid(&'static str),
}

struct Case {
    file: &'static str,
    /// For npm attestation documents: which `attestations[i].bundle`.
    index: Option<usize>,
    root: Root,
    artifact: Art,
    /// (SAN, issuer) the policy trusts.
    identity: Option<(&'static str, &'static str)>,
    /// A PEM public key the policy trusts (public-key bundles).
    key: Option<&'static str>,
    expect: Expect,
    /// Why, where verifiers disagree or the outcome needs explaining.
    note: &'static str,
}

fn cases() -> Vec<Case> {
    use Art::*;
    use Expect::*;
    use Root::*;
    let c = |file, root, artifact, identity, expect, note| Case {
        file,
        index: None,
        root,
        artifact,
        identity,
        key: None,
        expect,
        note,
    };
    vec![
        c(
            "sigstore/bundles/v0.1/bundle.txt.sigstore",
            Staging,
            File("sigstore/artifacts/bundle.txt"),
            Some(("a@tny.town", GITHUB_OAUTH)),
            Valid,
            "",
        ),
        c(
            "sigstore/bundles/v0.1/bundle_no_log_entry.txt.sigstore",
            Staging,
            File("sigstore/artifacts/bundle_no_log_entry.txt"),
            Some(("a@tny.town", GITHUB_OAUTH)),
            Invalid("no transparency log entry"),
            "",
        ),
        c(
            "sigstore/bundles/v0.1/bundle_no_cert_v1.txt.sigstore",
            Staging,
            File("sigstore/artifacts/bundle_no_cert_v1.txt"),
            Some(("a@tny.town", GITHUB_OAUTH)),
            Invalid("x509CertificateChain is empty"),
            "",
        ),
        c(
            "sigstore/bundles/v0.1/sigstore.js@2.0.0-provenance.sigstore.json",
            PublicGood,
            Absent,
            Some((SIGSTORE_JS_RELEASE, GITHUB_ACTIONS)),
            Valid,
            "intoto 0.0.2 entry: sigstore-js/sigstore-go VALID, sigstore-python rejects only because it lacks intoto support; the spec checks (payload hash, signature, signer) are all possible and pass",
        ),
        c(
            "sigstore/bundles/v0.1/dsse.sigstore.json",
            PublicGood,
            Absent,
            Some(("brian@dehamer.com", GITHUB_OAUTH)),
            Valid,
            "v0.1 requires only the inclusion promise (verified); sigstore-python's demand for an inclusion proof is stricter than protobuf-specs for v0.1",
        ),
        c(
            "sigstore/bundles/v0.1/dsse-2sigs.sigstore.json",
            PublicGood,
            Absent,
            Some(("brian@dehamer.com", GITHUB_OAUTH)),
            Invalid("exactly one"),
            "a bundle's DSSE envelope must hold exactly one signature (sigstore-go ErrDSSEInvalidSignatureCount); extra signatures are never ignored",
        ),
        c(
            "sigstore/bundles/v0.2/rfc8785-0.1.2-py3-none-any.whl.sigstore",
            PublicGood,
            Sha256("c4e92e9ecc828bef2aa7dba1de8ac983511f7532a0df11c770d39099a25cf201"),
            Some((
                "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2",
                GITHUB_ACTIONS,
            )),
            Valid,
            "the wheel is not in the corpus; its SHA-256 (from the MANIFEST) suffices for an ECDSA P-256/SHA-256 signature",
        ),
        c(
            "sigstore/bundles/v0.2/bundle_no_checkpoint.txt.sigstore",
            Staging,
            File("sigstore/artifacts/bundle_no_checkpoint.txt"),
            Some(("a@tny.town", GITHUB_OAUTH)),
            Invalid("checkpoint"),
            "",
        ),
        c(
            "sigstore/bundles/v0.3/bundle_v3.txt.sigstore",
            Staging,
            File("sigstore/artifacts/bundle_v3.txt"),
            Some(("william@yossarian.net", GITHUB_OAUTH)),
            Valid,
            "",
        ),
        c(
            "sigstore/bundles/v0.3/bundle_v3_alt.txt.sigstore",
            Staging,
            File("sigstore/artifacts/bundle_v3_alt.txt"),
            Some(("william@yossarian.net", GITHUB_OAUTH)),
            Valid,
            "alternative v0.3 media type spelling",
        ),
        c(
            "sigstore/bundles/v0.3/bundle_cve_2022_36056.txt.sigstore",
            Staging,
            File("sigstore/artifacts/bundle_cve_2022_36056.txt"),
            Some(("william@yossarian.net", GITHUB_OAUTH)),
            Invalid("inconsistent with the bundle"),
            "CVE-2022-36056",
        ),
        c(
            "sigstore/bundles/v0.3/bundle_invalid_version.txt.sigstore",
            Staging,
            File("sigstore/artifacts/bundle_invalid_version.txt"),
            Some(("william@yossarian.net", GITHUB_OAUTH)),
            Invalid("media type"),
            "",
        ),
        c(
            "sigstore/bundles/v0.3/bundle_v3_no_signed_time.txt.sigstore.json",
            PublicGood,
            File("sigstore/artifacts/bundle_v3_no_signed_time.txt"),
            Some(("william@yossarian.net", GITHUB_OAUTH)),
            Invalid("no verified signing time"),
            "integratedTime without a SET is unauthenticated; the inclusion proof proves inclusion, not time",
        ),
        c(
            "sigstore/bundles/v0.3/staging-rekor-v2.txt.sigstore.json",
            Staging,
            File("sigstore/artifacts/staging-rekor-v2.txt"),
            Some(("jku@goto.fi", GITHUB_OAUTH)),
            Valid,
            "Rekor v2 hashedrekord 0.0.2; time from the RFC 3161 timestamp",
        ),
        c(
            "sigstore/bundles/v0.3/a.dsse.staging-rekor-v2.txt.sigstore.json",
            Staging,
            Sha256("a0cfc71271d6e278e57cd332ff957c3f7043fdda354c4cbb190a30d56efa01bf"),
            Some((
                "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main",
                GITHUB_ACTIONS,
            )),
            Valid,
            "DSSE logged as Rekor v2 hashedrekord 0.0.2 over SHA-256(PAE) (rekor-v2 spec §6.1.4); sigstore-python VALID, sigstore-js 3.1.1 lacks this form",
        ),
        c(
            "sigstore/bundles/v0.3/kubewarden-controller-v1.34.0.dsse.sigstore.json",
            PublicGood,
            Sha256("c811d58de79c92f03214e63aa339484e488d694ae8a6283b5f3f17a9faf50172"),
            Some((
                "https://github.com/kubewarden/kubewarden-controller/.github/workflows/release.yml@refs/tags/v1.34.0",
                GITHUB_ACTIONS,
            )),
            Valid,
            "both a SET and an RFC 3161 timestamp: the path is validated at both times",
        ),
        c(
            "sigstore/bundles/v0.3/cosign-oci-attestation.sigstore.json",
            PublicGood,
            Sha256("732112270d7e59418a8c080b134b24cabd67d250d0d0147a97ed95ba5c280aa4"),
            Some(("cody@soyland.com", GITHUB_OAUTH)),
            Valid,
            "",
        ),
        Case {
            file: "sigstore/keypair/npm-publish-attestation.bundle-v0.1.json",
            index: None,
            root: PublicGood,
            artifact: Absent,
            identity: None,
            key: Some("sigstore/keypair/npm-registry-publish_key.pub"),
            expect: Valid,
            note: "publicKey bundle: the key is found among the trusted keys by verification; the hint is not used",
        },
        c(
            "provenance/sigstore-js-1.3.0-npm-provenance.bundle-v0.1.json",
            PublicGood,
            Absent,
            Some((SIGSTORE_JS_RELEASE, GITHUB_ACTIONS)),
            Valid,
            "v0.1 with inclusionProof null: the promise is what v0.1 requires",
        ),
        c(
            "provenance/slsa-github-generator-delegator-v2.1.0.slsa-v1.bundle-v0.2.build.slsa",
            PublicGood,
            File("provenance/subjects/gha_delegator-binary-linux-amd64-workflow_dispatch"),
            Some((
                "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/delegator_generic_slsa3.yml@refs/tags/v2.1.0",
                GITHUB_ACTIONS,
            )),
            Valid,
            "intoto 0.0.2 entry (see sigstore.js@2.0.0)",
        ),
        c(
            "provenance/slsa-github-generator-generic-v2.1.0.slsa-v0.2.bundle-v0.3.intoto.jsonl",
            PublicGood,
            Sha256("376e7e01348585b6e6643bc6663146b9d525d9b41228bf180eaeb4d4a3706caa"),
            Some((
                "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v2.1.0",
                GITHUB_ACTIONS,
            )),
            Valid,
            "",
        ),
        c(
            "provenance/bcr-rules_lint-MODULE.bazel.slsa-v1.bundle-v0.3.intoto.jsonl",
            PublicGood,
            Sha256("06ce330900a7d6403bc8d88e5dfad6aeeb8ae40179f66bb89e69c8bf6f6b1a0b"),
            Some((
                "https://github.com/bazel-contrib/publish-to-bcr/.github/workflows/publish.yaml@refs/tags/v0.0.1",
                GITHUB_ACTIONS,
            )),
            Valid,
            "",
        ),
        c(
            "provenance/bcr-rules_lint-MODULE-wrong-signer.slsa-v1.bundle-v0.3.intoto.jsonl",
            PublicGood,
            Sha256("06ce330900a7d6403bc8d88e5dfad6aeeb8ae40179f66bb89e69c8bf6f6b1a0b"),
            Some((
                "https://github.com/bazel-contrib/publish-to-bcr/.github/workflows/publish.yaml@refs/tags/v0.0.1",
                GITHUB_ACTIONS,
            )),
            Invalid("not trusted"),
            "cryptographically genuine, signed by another workflow: only identity pinning catches it",
        ),
        Case {
            file: "provenance/npm-sigstore-2.3.1.attestations.json",
            index: Some(0),
            root: PublicGood,
            artifact: Absent,
            identity: None,
            key: Some("sigstore/keypair/npm-registry-publish_key.pub"),
            expect: Valid,
            note: "publish attestation, npm registry key",
        },
        Case {
            file: "provenance/npm-sigstore-2.3.1.attestations.json",
            index: Some(1),
            root: PublicGood,
            artifact: Absent,
            identity: Some((SIGSTORE_JS_RELEASE, GITHUB_ACTIONS)),
            key: None,
            expect: Valid,
            note: "SLSA v1 provenance, keyless, intoto 0.0.2",
        },
        Case {
            file: "provenance/npm-sigstore-2.3.1-invalidsigprov.attestations.json",
            index: Some(0),
            root: PublicGood,
            artifact: Absent,
            identity: None,
            key: Some("sigstore/keypair/npm-registry-publish_key.pub"),
            expect: Valid,
            note: "the publish attestation in the tampered document is untouched",
        },
        Case {
            file: "provenance/npm-sigstore-2.3.1-invalidsigprov.attestations.json",
            index: Some(1),
            root: PublicGood,
            artifact: Absent,
            identity: Some((SIGSTORE_JS_RELEASE, GITHUB_ACTIONS)),
            key: None,
            expect: Invalid("payload hash mismatch"),
            note: "tampered provenance payload",
        },
        c(
            "provenance/slsa-github-generator-generic-v1.2.1.slsa-v0.2.dsse.intoto.jsonl",
            PublicGood,
            Absent,
            Some((
                "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v1.2.1",
                GITHUB_ACTIONS,
            )),
            Invalid("not a Sigstore bundle"),
            "a bare DSSE envelope with an embedded certificate: no log entry, no signed time; offline this is insufficient evidence, so it fails closed",
        ),
        c(
            "provenance/slsa-github-generator-expired-cert.slsa-v0.2.dsse.intoto.jsonl",
            PublicGood,
            Absent,
            Some((
                "https://github.com/asraa/slsa-github-generator/.github/workflows/builder_go_slsa3.yml@refs/heads/malicious",
                GITHUB_ACTIONS,
            )),
            Invalid("not a Sigstore bundle"),
            "no proof the signature was made while the certificate was valid",
        ),
    ]
}

/// The bundle bytes of a case (the first line of a JSON Lines file, or one attestation).
fn bundle_bytes(case: &Case) -> Vec<u8> {
    let raw = read(case.file);
    if let Some(i) = case.index {
        let doc: Value = serde_json::from_slice(&raw).unwrap();
        return serde_json::to_vec(&doc["attestations"][i]["bundle"]).unwrap();
    }
    if case.file.ends_with(".jsonl") {
        let text = String::from_utf8(raw).unwrap();
        return text.lines().next().unwrap().as_bytes().to_vec();
    }
    raw
}

fn sha256_hex(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).unwrap();
    out
}

struct Run {
    result: Result<
        evault_core::verify::sigstore::Verified,
        evault_core::verify::sigstore::SigstoreError,
    >,
}

fn run_case(case: &Case, bundle: &[u8], root_choice: Root, identities: &[IdentityPolicy]) -> Run {
    let trusted = root(root_choice);
    let artifact_bytes = match case.artifact {
        Art::File(f) => Some(read(f)),
        _ => None,
    };
    let artifact = match case.artifact {
        Art::Absent => None,
        Art::File(_) => artifact_bytes.as_deref().map(Artifact::Bytes),
        Art::Sha256(h) => Some(Artifact::Sha256(sha256_hex(h))),
    };
    let key_der = case.key.map(|k| pem_to_der(&read(k)));
    let keys: Vec<(&str, &[u8])> = key_der
        .iter()
        .map(|d| ("npm-registry", d.as_slice()))
        .collect();
    let policy = Policy {
        identities,
        keys: &keys,
    };
    Run {
        result: verify_bundle(bundle, artifact, &trusted, &policy, now()),
    }
}

fn identities_of(case: &Case) -> Vec<IdentityPolicy> {
    case.identity
        .map(|(san, issuer)| IdentityPolicy {
            san: SanPolicy::Exact(san.to_string()),
            issuer: issuer.to_string(),
        })
        .into_iter()
        .collect()
}

#[test]
fn every_corpus_bundle_has_the_manifest_outcome() {
    if corpus().is_none() {
        return;
    }
    let mut table = vec![format!(
        "{:<70} {:<8} {:<8} {:<8} detail",
        "file", "root", "expect", "outcome"
    )];
    let mut failures = Vec::new();
    for case in cases() {
        let bundle = bundle_bytes(&case);
        let run = run_case(&case, &bundle, case.root, &identities_of(&case));
        let name = match case.index {
            Some(i) => format!("{} [{i}]", case.file),
            None => case.file.to_string(),
        };
        let (outcome, detail) = match &run.result {
            Ok(v) => (
                "VALID",
                format!(
                    "{:?} at {} via {}",
                    v.signer,
                    v.signed_at.to_rfc3339(),
                    v.time_source
                ),
            ),
            Err(e) => ("INVALID", e.reason.clone()),
        };
        let expect = match case.expect {
            Expect::Valid => "VALID",
            Expect::Invalid(_) => "INVALID",
        };
        table.push(format!(
            "{name:<70} {:<8} {expect:<8} {outcome:<8} {detail}",
            format!("{:?}", case.root)
        ));
        if !case.note.is_empty() {
            table.push(format!("{:<70}   note: {}", "", case.note));
        }
        match (&case.expect, &run.result) {
            (Expect::Valid, Ok(v)) => {
                assert!(!v.steps.is_empty());
                if let (Some((san, issuer)), Signer::Certificate { san: s, issuer: i }) =
                    (case.identity, &v.signer)
                {
                    assert_eq!((san, issuer), (s.as_str(), i.as_str()), "{name}");
                }
            }
            (Expect::Invalid(frag), Err(e)) if e.reason.contains(frag) => {}
            _ => failures.push(format!(
                "{name}: expected {expect}, got {outcome}: {detail}"
            )),
        }
    }
    println!("{}", table.join("\n"));
    assert!(
        failures.is_empty(),
        "outcomes differ from the MANIFEST:\n{}",
        failures.join("\n")
    );
}

#[test]
fn staging_bundles_fail_against_the_public_good_root() {
    if corpus().is_none() {
        return;
    }
    for case in cases()
        .iter()
        .filter(|c| c.root == Root::Staging && matches!(c.expect, Expect::Valid))
    {
        let run = run_case(
            case,
            &bundle_bytes(case),
            Root::PublicGood,
            &identities_of(case),
        );
        let err = run.result.expect_err(case.file);
        assert!(
            err.reason
                .contains("not a transparency log of the trusted root"),
            "{}: {}",
            case.file,
            err.reason
        );
    }
}

fn case(file: &str) -> Case {
    cases()
        .into_iter()
        .find(|c| c.file == file && c.index.is_none())
        .unwrap()
}

#[test]
fn a_wrong_identity_makes_a_valid_bundle_fail() {
    if corpus().is_none() {
        return;
    }
    let c = case("sigstore/bundles/v0.3/bundle_v3.txt.sigstore");
    let bundle = bundle_bytes(&c);
    let wrong_san = [IdentityPolicy {
        san: SanPolicy::Exact("mallory@example.com".into()),
        issuer: GITHUB_OAUTH.into(),
    }];
    let err = run_case(&c, &bundle, Root::Staging, &wrong_san)
        .result
        .unwrap_err();
    assert!(
        err.reason.contains("is not trusted by the policy"),
        "{}",
        err.reason
    );
    assert!(
        err.steps.iter().any(|s| s.contains("signature verifies")),
        "everything else was checked first"
    );

    let wrong_issuer = [IdentityPolicy {
        san: SanPolicy::Exact("william@yossarian.net".into()),
        issuer: "https://accounts.google.com".into(),
    }];
    let err = run_case(&c, &bundle, Root::Staging, &wrong_issuer)
        .result
        .unwrap_err();
    assert!(err.reason.contains("not trusted"), "{}", err.reason);

    let err = run_case(&c, &bundle, Root::Staging, &[])
        .result
        .unwrap_err();
    assert!(err.reason.contains("no trusted identity"), "{}", err.reason);

    // A regex must match the whole SAN, not a part of it.
    let partial = [IdentityPolicy {
        san: SanPolicy::Regex(regex::Regex::new("yossarian").unwrap()),
        issuer: GITHUB_OAUTH.into(),
    }];
    assert!(
        run_case(&c, &bundle, Root::Staging, &partial)
            .result
            .is_err()
    );
    let full = [IdentityPolicy {
        san: SanPolicy::Regex(regex::Regex::new(r"[a-z]+@yossarian\.net").unwrap()),
        issuer: GITHUB_OAUTH.into(),
    }];
    assert!(run_case(&c, &bundle, Root::Staging, &full).result.is_ok());
}

#[test]
fn public_key_bundles_need_a_trusted_key() {
    if corpus().is_none() {
        return;
    }
    let mut c = case("sigstore/keypair/npm-publish-attestation.bundle-v0.1.json");
    let bundle = bundle_bytes(&c);
    c.key = None;
    let err = run_case(&c, &bundle, Root::PublicGood, &[])
        .result
        .unwrap_err();
    assert!(err.reason.contains("no trusted key"), "{}", err.reason);
    c.key = Some("sigstore/keypair/chainloop-cosign.pub");
    let err = run_case(&c, &bundle, Root::PublicGood, &[])
        .result
        .unwrap_err();
    assert!(
        err.reason.contains("no trusted key verifies"),
        "{}",
        err.reason
    );
}

#[test]
fn a_dsse_bundle_checked_against_an_artifact_requires_it_as_a_subject() {
    if corpus().is_none() {
        return;
    }
    let mut c = case("sigstore/bundles/v0.3/cosign-oci-attestation.sigstore.json");
    c.artifact = Art::Sha256("0000000000000000000000000000000000000000000000000000000000000000");
    let err = run_case(&c, &bundle_bytes(&c), Root::PublicGood, &identities_of(&c))
        .result
        .unwrap_err();
    assert!(err.reason.contains("not a subject"), "{}", err.reason);
    // Without an artifact the payload is returned for the caller to match.
    c.artifact = Art::Absent;
    let v = run_case(&c, &bundle_bytes(&c), Root::PublicGood, &identities_of(&c))
        .result
        .unwrap();
    println!("steps for {}:\n  {}", c.file, v.steps.join("\n  "));
    let (ty, payload) = v.dsse_payload.unwrap();
    assert_eq!(ty, "application/vnd.in-toto+json");
    assert!(!payload.is_empty());
}

// ---- tampering -------------------------------------------------------------------------

/// An edit applied to a bundle's JSON.
type Edit = Box<dyn FnOnce(&mut Value)>;

fn b64_flip(v: &mut Value, at: usize) {
    let mut bytes = STANDARD.decode(v.as_str().unwrap()).unwrap();
    let i = at.min(bytes.len() - 1);
    bytes[i] ^= 0x01;
    *v = Value::String(STANDARD.encode(bytes));
}

fn tampered(c: &Case, edit: impl FnOnce(&mut Value)) -> Result<(), String> {
    let mut doc: Value = serde_json::from_slice(&bundle_bytes(c)).unwrap();
    edit(&mut doc);
    let bytes = serde_json::to_vec(&doc).unwrap();
    run_case(c, &bytes, c.root, &identities_of(c))
        .result
        .map(|_| ())
        .map_err(|e| e.reason)
}

#[test]
fn tampering_any_part_fails_with_a_reason_naming_it() {
    if corpus().is_none() {
        return;
    }
    let c = case("sigstore/bundles/v0.3/bundle_v3.txt.sigstore");
    assert_eq!(
        tampered(&c, |_| {}),
        Ok(()),
        "the untouched bundle verifies"
    );

    let entry = "/verificationMaterial/tlogEntries/0";
    let checks: Vec<(&str, Edit, &str)> = vec![
        (
            "signature",
            Box::new(|d: &mut Value| {
                b64_flip(d.pointer_mut("/messageSignature/signature").unwrap(), 10)
            }),
            "signature",
        ),
        (
            "message digest",
            Box::new(|d: &mut Value| {
                b64_flip(
                    d.pointer_mut("/messageSignature/messageDigest/digest")
                        .unwrap(),
                    0,
                )
            }),
            "messageDigest",
        ),
        (
            "inclusion proof hash",
            Box::new(move |d: &mut Value| {
                b64_flip(
                    d.pointer_mut(&format!("{entry}/inclusionProof/hashes/0"))
                        .unwrap(),
                    3,
                )
            }),
            "inclusion proof",
        ),
        (
            "inclusion proof root hash",
            Box::new(move |d: &mut Value| {
                b64_flip(
                    d.pointer_mut(&format!("{entry}/inclusionProof/rootHash"))
                        .unwrap(),
                    3,
                )
            }),
            "inclusion proof",
        ),
        (
            "checkpoint signature",
            Box::new(move |d: &mut Value| {
                let cp = d
                    .pointer_mut(&format!("{entry}/inclusionProof/checkpoint/envelope"))
                    .unwrap();
                let text = cp.as_str().unwrap().to_string();
                let (head, sig) = text.split_once("\n\n").unwrap();
                let (name_part, b64) = sig.trim_end().rsplit_once(' ').unwrap();
                let mut raw = STANDARD.decode(b64).unwrap();
                let last = raw.len() - 5;
                raw[last] ^= 1;
                *cp = Value::String(format!("{head}\n\n{name_part} {}\n", STANDARD.encode(raw)));
            }),
            "checkpoint",
        ),
        (
            "checkpoint tree size",
            Box::new(move |d: &mut Value| {
                let cp = d
                    .pointer_mut(&format!("{entry}/inclusionProof/checkpoint/envelope"))
                    .unwrap();
                let text = cp.as_str().unwrap().to_string();
                let mut lines: Vec<String> = text.split('\n').map(str::to_string).collect();
                lines[1] = (lines[1].parse::<u64>().unwrap() + 1).to_string();
                *cp = Value::String(lines.join("\n"));
            }),
            "checkpoint",
        ),
        (
            "checkpoint removed",
            Box::new(move |d: &mut Value| {
                d.pointer_mut(&format!("{entry}/inclusionProof"))
                    .unwrap()
                    .as_object_mut()
                    .unwrap()
                    .remove("checkpoint");
            }),
            "checkpoint",
        ),
        (
            "SET",
            Box::new(move |d: &mut Value| {
                b64_flip(
                    d.pointer_mut(&format!("{entry}/inclusionPromise/signedEntryTimestamp"))
                        .unwrap(),
                    20,
                )
            }),
            "SET",
        ),
        (
            "integrated time",
            Box::new(move |d: &mut Value| {
                let t = d.pointer_mut(&format!("{entry}/integratedTime")).unwrap();
                let v: i64 = t.as_str().unwrap().parse().unwrap();
                *t = Value::String((v + 60).to_string());
            }),
            "SET",
        ),
        (
            "log index",
            Box::new(move |d: &mut Value| {
                *d.pointer_mut(&format!("{entry}/logIndex")).unwrap() = Value::String("1".into());
            }),
            "SET",
        ),
        (
            "canonicalized body",
            Box::new(move |d: &mut Value| {
                let b = d
                    .pointer_mut(&format!("{entry}/canonicalizedBody"))
                    .unwrap();
                let body =
                    String::from_utf8(STANDARD.decode(b.as_str().unwrap()).unwrap()).unwrap();
                *b = Value::String(STANDARD.encode(body.replace("5e6ae9de", "5e6ae9df")));
            }),
            "artifact digest",
        ),
        (
            "log ID",
            Box::new(move |d: &mut Value| {
                b64_flip(d.pointer_mut(&format!("{entry}/logId/keyId")).unwrap(), 0)
            }),
            "not a transparency log",
        ),
        (
            "kind",
            Box::new(move |d: &mut Value| {
                *d.pointer_mut(&format!("{entry}/kindVersion/kind")).unwrap() =
                    Value::String("rekord".into());
            }),
            "kindVersion",
        ),
        (
            "certificate",
            Box::new(|d: &mut Value| {
                b64_flip(
                    d.pointer_mut("/verificationMaterial/certificate/rawBytes")
                        .unwrap(),
                    400,
                )
            }),
            "certificate",
        ),
    ];
    for (part, edit, fragment) in checks {
        let reason = tampered(&c, edit).expect_err(part);
        let ok =
            reason.contains(fragment) || (fragment == "kindVersion" && reason.contains("declares"));
        assert!(
            ok,
            "tampered {part}: reason '{reason}' should name '{fragment}'"
        );
        println!("tampered {part:<28} -> {reason}");
    }

    // The artifact itself.
    let mut other = case("sigstore/bundles/v0.3/bundle_v3.txt.sigstore");
    other.artifact = Art::File("sigstore/artifacts/bundle.txt");
    let reason = run_case(
        &other,
        &bundle_bytes(&other),
        Root::Staging,
        &identities_of(&other),
    )
    .result
    .unwrap_err()
    .reason;
    assert!(reason.contains("artifact"), "{reason}");
    println!("tampered {:<28} -> {reason}", "artifact");
}

#[test]
fn tampering_dsse_and_rfc3161_material_fails() {
    if corpus().is_none() {
        return;
    }
    let c = case("sigstore/bundles/v0.3/cosign-oci-attestation.sigstore.json");
    let reason = tampered(&c, |d| {
        b64_flip(d.pointer_mut("/dsseEnvelope/payload").unwrap(), 30)
    })
    .unwrap_err();
    assert!(reason.contains("payload hash mismatch"), "{reason}");
    let reason = tampered(&c, |d| {
        *d.pointer_mut("/dsseEnvelope/payloadType").unwrap() = Value::String("text/plain".into());
    })
    .unwrap_err();
    assert!(reason.contains("DSSE signature"), "{reason}");

    let v2 = case("sigstore/bundles/v0.3/staging-rekor-v2.txt.sigstore.json");
    let ts = "/verificationMaterial/timestampVerificationData/rfc3161Timestamps/0/signedTimestamp";
    // Bytes in the TSTInfo (100, 200), the signed attributes (900, 1000) and the signature (1200).
    for at in [100usize, 200, 900, 1000, 1200] {
        let reason = tampered(&v2, |d| b64_flip(d.pointer_mut(ts).unwrap(), at))
            .expect_err(&format!("timestamp byte {at} flipped"));
        assert!(
            reason.contains("RFC 3161") || reason.contains("timestamp"),
            "byte {at}: {reason}"
        );
    }
    // Byte 600 lies in the TSA certificate embedded in the token, which is deliberately ignored
    // (the TSA certificate comes from the trusted root), so the token still verifies.
    assert_eq!(
        tampered(&v2, |d| b64_flip(d.pointer_mut(ts).unwrap(), 600)),
        Ok(())
    );
    // Without its timestamp a Rekor v2 bundle has no verified time at all.
    let reason = tampered(&v2, |d| {
        d.pointer_mut("/verificationMaterial")
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove("timestampVerificationData");
    })
    .unwrap_err();
    assert!(reason.contains("no verified signing time"), "{reason}");
    // A checkpoint with a forged Ed25519 signature.
    let reason = tampered(&v2, |d| {
        let cp = d
            .pointer_mut("/verificationMaterial/tlogEntries/0/inclusionProof/checkpoint/envelope")
            .unwrap();
        let s = cp.as_str().unwrap().replace("646\n", "647\n");
        *cp = Value::String(s);
    })
    .unwrap_err();
    assert!(reason.contains("checkpoint"), "{reason}");
}

/// Hostile input: mutated and truncated bundles must never panic; each mutation either still
/// verifies (it hit an ignored byte) or fails with a reason.
#[test]
fn mutated_bundles_never_panic() {
    if corpus().is_none() {
        return;
    }
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for file in [
        "sigstore/bundles/v0.3/staging-rekor-v2.txt.sigstore.json",
        "sigstore/bundles/v0.1/dsse.sigstore.json",
        "sigstore/bundles/v0.3/kubewarden-controller-v1.34.0.dsse.sigstore.json",
    ] {
        let c = case(file);
        let original = bundle_bytes(&c);
        let doc: Value = serde_json::from_slice(&original).unwrap();
        // Byte-level mutations of the JSON text.
        for _ in 0..40 {
            let mut m = original.clone();
            let i = (next() as usize) % m.len();
            m[i] = (next() & 0xff) as u8;
            let _ = run_case(&c, &m, c.root, &identities_of(&c)).result;
            let cut = (next() as usize) % original.len();
            let _ = run_case(&c, &original[..cut], c.root, &identities_of(&c)).result;
        }
        // Mutations inside base64 fields (certificates, proofs, timestamps, bodies).
        let mut pointers = Vec::new();
        collect_strings(&doc, String::new(), &mut pointers);
        for p in &pointers {
            for _ in 0..3 {
                let mut d = doc.clone();
                let v = d.pointer_mut(p).unwrap();
                if let Ok(mut raw) = STANDARD.decode(v.as_str().unwrap()) {
                    if raw.is_empty() {
                        continue;
                    }
                    let i = (next() as usize) % raw.len();
                    raw[i] = (next() & 0xff) as u8;
                    if next() % 4 == 0 {
                        raw.truncate(i);
                    }
                    *v = Value::String(STANDARD.encode(raw));
                } else {
                    *v = Value::String(format!("{}x", v.as_str().unwrap()));
                }
                let bytes = serde_json::to_vec(&d).unwrap();
                let _ = run_case(&c, &bytes, c.root, &identities_of(&c)).result;
            }
        }
    }
}

fn collect_strings(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::String(_) => out.push(at),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, x)| collect_strings(x, format!("{at}/{i}"), out)),
        Value::Object(o) => o
            .iter()
            .for_each(|(k, x)| collect_strings(x, format!("{at}/{k}"), out)),
        _ => {}
    }
}

#[test]
fn malformed_inputs_fail_cleanly() {
    let root = match corpus() {
        Some(_) => root(Root::PublicGood),
        None => return,
    };
    let policy = Policy {
        identities: &[],
        keys: &[],
    };
    for input in [
        &b""[..],
        b"null",
        b"[]",
        b"{}",
        b"{\"mediaType\": 5}",
        &vec![b'['; 100_000][..],
    ] {
        assert!(verify_bundle(input, None, &root, &policy, now()).is_err());
    }
    let huge = vec![b' '; 16 * 1024 * 1024 + 1];
    let err = verify_bundle(&huge, None, &root, &policy, now()).unwrap_err();
    assert!(err.reason.contains("limit"), "{}", err.reason);
    assert!(TrustedRoot::from_json(b"{}").is_err());
    assert!(
        TrustedRoot::from_json(
            b"{\"mediaType\":\"application/vnd.dev.sigstore.trustedroot+json;version=0.1\"}"
        )
        .is_ok()
    );
}

/// The trusted root decides: removing or narrowing each kind of trust anchor makes a valid
/// bundle fail with a reason naming it.
#[test]
fn the_trusted_root_is_the_only_source_of_trust() {
    if corpus().is_none() {
        return;
    }
    let verify_with = |c: &Case, edit: &dyn Fn(&mut Value)| -> Result<(), String> {
        let file = match c.root {
            Root::PublicGood => "sigstore/trusted_root/public-good.trusted_root.json",
            Root::Staging => "sigstore/trusted_root/staging.trusted_root.json",
        };
        let mut doc: Value = serde_json::from_slice(&read(file)).unwrap();
        edit(&mut doc);
        let trusted =
            TrustedRoot::from_json(&serde_json::to_vec(&doc).unwrap()).map_err(|e| e.reason)?;
        let artifact = match c.artifact {
            Art::File(f) => Some(read(f)),
            _ => None,
        };
        let ids = identities_of(c);
        let policy = Policy {
            identities: &ids,
            keys: &[],
        };
        verify_bundle(
            &bundle_bytes(c),
            artifact.as_deref().map(Artifact::Bytes),
            &trusted,
            &policy,
            now(),
        )
        .map(|_| ())
        .map_err(|e| e.reason)
    };
    let v1 = case("sigstore/bundles/v0.3/bundle_v3.txt.sigstore");
    assert_eq!(verify_with(&v1, &|_| {}), Ok(()));

    let reason = verify_with(&v1, &|d| d["ctlogs"] = Value::Array(vec![])).unwrap_err();
    assert!(reason.starts_with("SCT:"), "{reason}");
    let reason =
        verify_with(&v1, &|d| d["certificateAuthorities"] = Value::Array(vec![])).unwrap_err();
    assert!(reason.contains("does not chain to a Fulcio CA"), "{reason}");
    let reason = verify_with(&v1, &|d| {
        d["certificateAuthorities"][0]["validFor"]["end"] =
            Value::String("2023-01-01T00:00:00Z".into());
    })
    .unwrap_err();
    assert!(reason.contains("validFor"), "{reason}");
    let reason = verify_with(&v1, &|d| {
        d["tlogs"][0]["publicKey"]["validFor"]["end"] =
            Value::String("2023-01-01T00:00:00Z".into());
    })
    .unwrap_err();
    assert!(reason.contains("not valid at integratedTime"), "{reason}");
    // Another CA's chain in place of the real one.
    let reason = verify_with(&v1, &|d| {
        let pg: Value =
            serde_json::from_slice(&read("sigstore/trusted_root/public-good.trusted_root.json"))
                .unwrap();
        d["certificateAuthorities"][0]["certChain"] =
            pg["certificateAuthorities"][1]["certChain"].clone();
    })
    .unwrap_err();
    assert!(reason.contains("does not chain to a Fulcio CA"), "{reason}");

    let v2 = case("sigstore/bundles/v0.3/staging-rekor-v2.txt.sigstore.json");
    assert_eq!(verify_with(&v2, &|_| {}), Ok(()));
    let reason =
        verify_with(&v2, &|d| d["timestampAuthorities"] = Value::Array(vec![])).unwrap_err();
    assert!(
        reason.contains("not signed by any timestampAuthority"),
        "{reason}"
    );
    let reason = verify_with(&v2, &|d| {
        d["timestampAuthorities"][0]["validFor"]["start"] =
            Value::String("2025-07-01T00:00:00Z".into());
    })
    .unwrap_err();
    assert!(reason.contains("validFor"), "{reason}");
    // The Rekor v2 log shard's key window must contain the signing time.
    let reason = verify_with(&v2, &|d| {
        d["tlogs"][1]["publicKey"]["validFor"]["end"] =
            Value::String("2025-05-01T00:00:00Z".into());
    })
    .unwrap_err();
    assert!(
        reason.contains("key is not valid at the signing time"),
        "{reason}"
    );
}
