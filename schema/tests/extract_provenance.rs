//! Provenance extraction: the same facts from every wrapping (bare Statement, DSSE envelope,
//! Sigstore bundle, npm attestations document, Cloud Build export), the source rules of each
//! SLSA version, what is not provenance, what is refused, and the real corpus.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine as _;
use evault_schema::Format;
use evault_schema::detect::detect;
use evault_schema::extract::provenance::{provenance, statement_bytes};
use evault_schema::extract::{Provenance, Subject};
use serde_json::{Value, json};

const STATEMENT_V0_1: &str = "https://in-toto.io/Statement/v0.1";
const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
const SLSA_V0_1: &str = "https://slsa.dev/provenance/v0.1";
const SLSA_V0_2: &str = "https://slsa.dev/provenance/v0.2";
const SLSA_V1: &str = "https://slsa.dev/provenance/v1";
const IN_TOTO: &str = "application/vnd.in-toto+json";

const COMMIT: &str = "4d329c75e7ec1725f7c9ce917a8799d408d06be3";
const OTHER_COMMIT: &str = "02b5d0f71cdd13f5b3e8f30fb7a5c35acccc1051";
const SHA256_COMMIT: &str = "8f70009fde0c94ade6ce2a054b94718c819126ec8f70009fde0c94ade6ce2a05";
const ARTIFACT: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
const OTHER_ARTIFACT: &str = "376e7e01348585b6e6643bc6663146b9d525d9b41228bf180eaeb4d4a3706caa";
const GENERATOR: &str = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/generator_generic_slsa3.yml@refs/tags/v2.1.0";
const GCB_WORKER: &str = "https://cloudbuild.googleapis.com/GoogleHostedWorker@v0.2";

// ---------------------------------------------------------------------------------------------
// Fixtures

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn statement(type_uri: &str, predicate_type: &str, subjects: Value, predicate: Value) -> Value {
    json!({
        "_type": type_uri,
        "subject": subjects,
        "predicateType": predicate_type,
        "predicate": predicate,
    })
}

fn artifact_subject() -> Value {
    json!([{ "name": "app-linux-amd64", "digest": { "sha256": ARTIFACT } }])
}

fn subject(name: &str, digests: &[(&str, &str)]) -> Subject {
    Subject {
        name: name.to_string(),
        digest: digests
            .iter()
            .map(|(a, v)| (a.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn envelope(payload_type: &str, payload: &[u8]) -> Value {
    json!({
        "payloadType": payload_type,
        "payload": b64(payload),
        "signatures": [{ "keyid": "", "sig": b64(b"not a real signature") }],
    })
}

fn bundle_v03(envelope: Value) -> Value {
    json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {
            "certificate": { "rawBytes": b64(b"certificate") },
            "tlogEntries": [],
        },
        "dsseEnvelope": envelope,
    })
}

fn publish_statement() -> Vec<u8> {
    serde_json::to_vec(&statement(
        STATEMENT_V0_1,
        "https://github.com/npm/attestation/tree/main/specs/publish/v0.1",
        json!([{ "name": "pkg:npm/app@1.0.0", "digest": { "sha512": "ab".repeat(64) } }]),
        json!({ "name": "app", "version": "1.0.0", "registry": "https://registry.npmjs.org" }),
    ))
    .unwrap()
}

/// A wrapping of a Statement, as the tools that make them write it.
#[derive(Debug, Clone, Copy)]
enum Wrapping {
    Bare,
    Dsse,
    BundleV03,
    Npm,
    CloudBuild,
}

const WRAPPINGS: [Wrapping; 5] = [
    Wrapping::Bare,
    Wrapping::Dsse,
    Wrapping::BundleV03,
    Wrapping::Npm,
    Wrapping::CloudBuild,
];

impl Wrapping {
    fn wrap(self, statement: &Value) -> (Format, Vec<u8>) {
        let payload = serde_json::to_vec(statement).unwrap();
        let predicate_type = statement["predicateType"].clone();
        match self {
            Wrapping::Bare => (
                Format::IntotoStatement,
                serde_json::to_vec_pretty(statement).unwrap(),
            ),
            Wrapping::Dsse => {
                let mut line = serde_json::to_vec(&envelope(IN_TOTO, &payload)).unwrap();
                line.push(b'\n');
                (Format::DsseEnvelope, line)
            }
            Wrapping::BundleV03 => (
                Format::SigstoreBundle,
                serde_json::to_vec(&bundle_v03(envelope(IN_TOTO, &payload))).unwrap(),
            ),
            Wrapping::Npm => {
                let doc = json!({ "attestations": [
                    {
                        "predicateType": "https://github.com/npm/attestation/tree/main/specs/publish/v0.1",
                        "bundle": bundle_v03(envelope(IN_TOTO, &publish_statement())),
                    },
                    { "predicateType": predicate_type, "bundle": bundle_v03(envelope(IN_TOTO, &payload)) },
                ]});
                (Format::NpmAttestations, serde_json::to_vec(&doc).unwrap())
            }
            Wrapping::CloudBuild => {
                let doc = json!({
                    "image_summary": {
                        "digest": format!("sha256:{ARTIFACT}"),
                        "registry": "us-west2-docker.pkg.dev",
                    },
                    "provenance_summary": { "provenance": [{
                        "build": { "intotoStatement": statement },
                        "envelope": envelope(IN_TOTO, &payload),
                        "kind": "BUILD",
                    }]},
                });
                (
                    Format::GcbProvenance,
                    serde_json::to_vec_pretty(&doc).unwrap(),
                )
            }
        }
    }
}

/// Wraps and checks that detection agrees on the format, so the fixtures are what core would
/// hand the extractor.
fn wrapped(wrapping: Wrapping, statement: &Value) -> (Format, Vec<u8>) {
    let (format, bytes) = wrapping.wrap(statement);
    let found = detect(bytes.as_slice()).unwrap();
    assert_eq!(found.format, format, "{wrapping:?} detected as {found:?}");
    (format, bytes)
}

// ---------------------------------------------------------------------------------------------
// One table of Statements, read through every wrapping

struct Case {
    name: &'static str,
    statement: Value,
    expected: Provenance,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "Statement v0.1 with SLSA v0.2: the source is invocation.configSource",
            statement: statement(
                STATEMENT_V0_1,
                SLSA_V0_2,
                artifact_subject(),
                json!({
                    "builder": { "id": GENERATOR },
                    "buildType": "https://github.com/slsa-framework/slsa-github-generator/generic@v1",
                    "invocation": {
                        "configSource": {
                            "uri": "git+https://github.com/acme/app@refs/heads/main",
                            "digest": { "sha1": COMMIT },
                            "entryPoint": ".github/workflows/release.yml",
                        },
                        "parameters": {},
                        "environment": { "github_event_payload": { "deep": [1, 2, { "x": null }] } },
                    },
                    "metadata": { "buildInvocationId": "13531731005-1" },
                    "materials": [{
                        "uri": "git+https://github.com/acme/tooling@refs/tags/v1",
                        "digest": { "sha1": OTHER_COMMIT },
                    }],
                }),
            ),
            expected: Provenance {
                predicate_type: SLSA_V0_2.into(),
                builder_id: Some(GENERATOR.into()),
                build_type: Some(
                    "https://github.com/slsa-framework/slsa-github-generator/generic@v1".into(),
                ),
                source_repo: Some("https://github.com/acme/app".into()),
                source_commit: Some(COMMIT.into()),
                subjects: vec![subject("app-linux-amd64", &[("sha256", ARTIFACT)])],
            },
        },
        Case {
            name: "Statement v1 with SLSA v1: the source is the first resolved dependency with a gitCommit",
            statement: statement(
                STATEMENT_V1,
                SLSA_V1,
                json!([
                    { "name": "app-linux-amd64", "digest": { "sha256": ARTIFACT } },
                    { "name": "app.tar.gz", "digest": { "sha256": OTHER_ARTIFACT, "sha512": "cd".repeat(64) } },
                ]),
                json!({
                    "buildDefinition": {
                        "buildType": "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1",
                        "externalParameters": { "workflow": {
                            "ref": "refs/tags/v1.2.3",
                            "repository": "https://github.com/acme/ignored-when-a-dependency-names-a-commit",
                            "path": ".github/workflows/release.yml",
                        }},
                        "internalParameters": { "github": { "event_name": "push" } },
                        "resolvedDependencies": [
                            { "uri": "pkg:npm/left-pad@1.3.0", "digest": { "sha512": "ef".repeat(64) } },
                            { "uri": "git+https://github.com/acme/app@refs/tags/v1.2.3", "digest": { "gitCommit": COMMIT } },
                            { "uri": "git+https://github.com/acme/later@refs/heads/main", "digest": { "gitCommit": OTHER_COMMIT } },
                        ],
                    },
                    "runDetails": {
                        "builder": { "id": GENERATOR },
                        "metadata": { "invocationId": "https://github.com/acme/app/actions/runs/1/attempts/1" },
                    },
                }),
            ),
            expected: Provenance {
                predicate_type: SLSA_V1.into(),
                builder_id: Some(GENERATOR.into()),
                build_type: Some(
                    "https://slsa-framework.github.io/github-actions-buildtypes/workflow/v1".into(),
                ),
                source_repo: Some("https://github.com/acme/app".into()),
                source_commit: Some(COMMIT.into()),
                subjects: vec![
                    subject("app-linux-amd64", &[("sha256", ARTIFACT)]),
                    subject(
                        "app.tar.gz",
                        &[("sha256", OTHER_ARTIFACT), ("sha512", &"cd".repeat(64))],
                    ),
                ],
            },
        },
        Case {
            name: "GitHub's buildType without a commit dependency: the source is workflow.repository",
            statement: statement(
                STATEMENT_V1,
                SLSA_V1,
                artifact_subject(),
                json!({
                    "buildDefinition": {
                        "buildType": "https://actions.github.io/buildtypes/workflow/v1",
                        "externalParameters": { "workflow": {
                            "ref": "refs/heads/main",
                            "repository": "https://github.com/acme/app",
                            "path": ".github/workflows/release.yml",
                        }},
                        "resolvedDependencies": [
                            { "uri": "https://example.com/toolchain.tar.gz", "digest": { "sha256": OTHER_ARTIFACT } },
                        ],
                    },
                    "runDetails": { "builder": { "id": "https://github.com/actions/runner/github-hosted" } },
                }),
            ),
            expected: Provenance {
                predicate_type: SLSA_V1.into(),
                builder_id: Some("https://github.com/actions/runner/github-hosted".into()),
                build_type: Some("https://actions.github.io/buildtypes/workflow/v1".into()),
                source_repo: Some("https://github.com/acme/app".into()),
                source_commit: None,
                subjects: vec![subject("app-linux-amd64", &[("sha256", ARTIFACT)])],
            },
        },
        Case {
            name: "Cloud Build SLSA v0.1: the source is materials[0], commit from its /commit/ URI",
            statement: {
                let predicate = json!({
                    "builder": { "id": GCB_WORKER },
                    "recipe": {
                        "type": GCB_WORKER,
                        "entryPoint": "cloudbuild.yaml",
                        "arguments": { "@type": "type.googleapis.com/google.devtools.cloudbuild.v1.Build" },
                    },
                    "materials": [
                        { "uri": format!("https://github.com/acme/app/commit/{COMMIT}") },
                        { "uri": "https://github.com/acme/other", "digest": { "sha1": OTHER_COMMIT } },
                    ],
                });
                let mut s = statement(
                    STATEMENT_V0_1,
                    SLSA_V0_1,
                    json!([{
                        "name": "https://us-west2-docker.pkg.dev/acme/repo/app:v14",
                        "digest": { "sha256": ARTIFACT },
                    }]),
                    predicate.clone(),
                );
                s["slsaProvenance"] = predicate;
                s
            },
            expected: Provenance {
                predicate_type: SLSA_V0_1.into(),
                builder_id: Some(GCB_WORKER.into()),
                build_type: Some(GCB_WORKER.into()),
                source_repo: Some("https://github.com/acme/app".into()),
                source_commit: Some(COMMIT.into()),
                subjects: vec![subject(
                    "https://us-west2-docker.pkg.dev/acme/repo/app:v14",
                    &[("sha256", ARTIFACT)],
                )],
            },
        },
        Case {
            name: "Cloud Build's legacy slsaProvenance is read when there is no predicate",
            statement: json!({
                "_type": STATEMENT_V0_1,
                "predicateType": SLSA_V0_1,
                "subject": artifact_subject(),
                "slsaProvenance": {
                    "builder": { "id": GCB_WORKER },
                    "recipe": { "type": GCB_WORKER },
                    "materials": [{ "uri": "https://github.com/acme/app", "digest": { "sha1": COMMIT } }],
                },
            }),
            expected: Provenance {
                predicate_type: SLSA_V0_1.into(),
                builder_id: Some(GCB_WORKER.into()),
                build_type: Some(GCB_WORKER.into()),
                source_repo: Some("https://github.com/acme/app".into()),
                source_commit: Some(COMMIT.into()),
                subjects: vec![subject("app-linux-amd64", &[("sha256", ARTIFACT)])],
            },
        },
        Case {
            name: "an uppercase commit and subject digest are lowercased",
            statement: statement(
                STATEMENT_V0_1,
                SLSA_V0_2,
                json!([{ "name": "app", "digest": { "sha256": ARTIFACT.to_uppercase() } }]),
                json!({
                    "builder": { "id": GENERATOR },
                    "buildType": "https://example.com/build@v1",
                    "invocation": { "configSource": {
                        "uri": "git+https://github.com/acme/app@refs/heads/main",
                        "digest": { "sha1": COMMIT.to_uppercase() },
                    }},
                }),
            ),
            expected: Provenance {
                predicate_type: SLSA_V0_2.into(),
                builder_id: Some(GENERATOR.into()),
                build_type: Some("https://example.com/build@v1".into()),
                source_repo: Some("https://github.com/acme/app".into()),
                source_commit: Some(COMMIT.into()),
                subjects: vec![subject("app", &[("sha256", ARTIFACT)])],
            },
        },
        Case {
            name: "a commit that is not 40 or 64 hex digits is dropped, the repository kept",
            statement: statement(
                STATEMENT_V1,
                SLSA_V1,
                artifact_subject(),
                json!({
                    "buildDefinition": {
                        "buildType": "https://example.com/build@v1",
                        "resolvedDependencies": [
                            { "uri": "git+https://github.com/acme/app@v1", "digest": { "gitCommit": "refs/heads/main" } },
                        ],
                    },
                    "runDetails": { "builder": { "id": GENERATOR } },
                }),
            ),
            expected: Provenance {
                predicate_type: SLSA_V1.into(),
                builder_id: Some(GENERATOR.into()),
                build_type: Some("https://example.com/build@v1".into()),
                source_repo: Some("https://github.com/acme/app".into()),
                source_commit: None,
                subjects: vec![subject("app-linux-amd64", &[("sha256", ARTIFACT)])],
            },
        },
        Case {
            name: "a 39-digit sha1 is not a commit",
            statement: statement(
                STATEMENT_V0_1,
                SLSA_V0_2,
                artifact_subject(),
                json!({
                    "builder": { "id": GENERATOR },
                    "buildType": "https://example.com/build@v1",
                    "invocation": { "configSource": {
                        "uri": "https://github.com/acme/app",
                        "digest": { "sha1": &COMMIT[1..] },
                    }},
                }),
            ),
            expected: Provenance {
                predicate_type: SLSA_V0_2.into(),
                builder_id: Some(GENERATOR.into()),
                build_type: Some("https://example.com/build@v1".into()),
                source_repo: Some("https://github.com/acme/app".into()),
                source_commit: None,
                subjects: vec![subject("app-linux-amd64", &[("sha256", ARTIFACT)])],
            },
        },
        Case {
            name: "SLSA v0.2 without configSource: the first material naming a commit",
            statement: statement(
                STATEMENT_V0_1,
                SLSA_V0_2,
                artifact_subject(),
                json!({
                    "builder": { "id": GENERATOR },
                    "buildType": "https://example.com/build@v1",
                    "materials": [
                        { "uri": "https://example.com/toolchain.tar.gz", "digest": { "sha256": OTHER_ARTIFACT } },
                        { "uri": "git+https://gitlab.com/acme/app.git@main", "digest": { "sha1": COMMIT } },
                        { "uri": "git+https://gitlab.com/acme/later.git", "digest": { "sha1": OTHER_COMMIT } },
                    ],
                }),
            ),
            expected: Provenance {
                predicate_type: SLSA_V0_2.into(),
                builder_id: Some(GENERATOR.into()),
                build_type: Some("https://example.com/build@v1".into()),
                source_repo: Some("https://gitlab.com/acme/app.git".into()),
                source_commit: Some(COMMIT.into()),
                subjects: vec![subject("app-linux-amd64", &[("sha256", ARTIFACT)])],
            },
        },
        Case {
            name: "configSource without a commit takes the commit of a material for the same repository only",
            statement: statement(
                STATEMENT_V0_1,
                SLSA_V0_2,
                artifact_subject(),
                json!({
                    "builder": { "id": GENERATOR },
                    "buildType": "https://example.com/build@v1",
                    "invocation": { "configSource": {
                        "uri": "git+https://github.com/acme/app@refs/heads/main",
                        "digest": { "sha256": OTHER_ARTIFACT },
                    }},
                    "materials": [
                        { "uri": "https://github.com/acme/other", "digest": { "sha1": OTHER_COMMIT } },
                        { "uri": "git+https://github.com/acme/app@refs/heads/main", "digest": { "sha1": COMMIT } },
                    ],
                }),
            ),
            expected: Provenance {
                predicate_type: SLSA_V0_2.into(),
                builder_id: Some(GENERATOR.into()),
                build_type: Some("https://example.com/build@v1".into()),
                source_repo: Some("https://github.com/acme/app".into()),
                source_commit: Some(COMMIT.into()),
                subjects: vec![subject("app-linux-amd64", &[("sha256", ARTIFACT)])],
            },
        },
        Case {
            name: "user information in a repository URI is kept; no commit is borrowed from another repository",
            statement: statement(
                STATEMENT_V0_1,
                SLSA_V0_2,
                artifact_subject(),
                json!({
                    "builder": { "id": "Project Collection Build Service (Acme)" },
                    "buildType": "https://example.com/ado@v1",
                    "invocation": { "configSource": {
                        "uri": "https://acme@dev.azure.com/acme/build/_git/definitions",
                        "digest": { "sha256": &COMMIT[..40] },
                    }},
                    "materials": [{ "uri": "https://github.com/acme/app", "digest": { "sha1": OTHER_COMMIT } }],
                }),
            ),
            expected: Provenance {
                predicate_type: SLSA_V0_2.into(),
                builder_id: Some("Project Collection Build Service (Acme)".into()),
                build_type: Some("https://example.com/ado@v1".into()),
                source_repo: Some("https://acme@dev.azure.com/acme/build/_git/definitions".into()),
                source_commit: None,
                subjects: vec![subject("app-linux-amd64", &[("sha256", ARTIFACT)])],
            },
        },
        Case {
            name: "a SHA-256 git commit (64 hex digits) is a commit; an unknown v1.x reads as v1",
            statement: statement(
                STATEMENT_V1,
                "https://slsa.dev/provenance/v1.1",
                json!([{ "uri": "oci://registry.example/app", "digest": { "sha256": ARTIFACT } }]),
                json!({
                    "buildDefinition": {
                        "buildType": "https://example.com/build@v1",
                        "resolvedDependencies": [
                            { "uri": "git+ssh://git@example.com/acme/app.git@refs/heads/main", "digest": { "gitCommit": SHA256_COMMIT } },
                        ],
                    },
                    "runDetails": { "builder": { "id": GENERATOR } },
                }),
            ),
            expected: Provenance {
                predicate_type: "https://slsa.dev/provenance/v1.1".into(),
                builder_id: Some(GENERATOR.into()),
                build_type: Some("https://example.com/build@v1".into()),
                source_repo: Some("ssh://git@example.com/acme/app.git".into()),
                source_commit: Some(SHA256_COMMIT.into()),
                subjects: vec![subject(
                    "oci://registry.example/app",
                    &[("sha256", ARTIFACT)],
                )],
            },
        },
        Case {
            name: "a predicate with nothing evault reads still yields its type and subjects",
            statement: statement(
                STATEMENT_V1,
                SLSA_V1,
                artifact_subject(),
                json!({ "buildDefinition": { "externalParameters": { "workflow": "release.yml" } } }),
            ),
            expected: Provenance {
                predicate_type: SLSA_V1.into(),
                subjects: vec![subject("app-linux-amd64", &[("sha256", ARTIFACT)])],
                ..Provenance::default()
            },
        },
    ]
}

#[test]
fn every_wrapping_yields_the_same_provenance() {
    let mut checked = 0;
    for case in cases() {
        for wrapping in WRAPPINGS {
            let (format, bytes) = wrapped(wrapping, &case.statement);
            let got = provenance(format, &bytes)
                .unwrap_or_else(|e| panic!("{} ({wrapping:?}): {e}", case.name));
            assert_eq!(
                got.as_ref(),
                Some(&case.expected),
                "{} ({wrapping:?})",
                case.name
            );
            checked += 1;
        }
    }
    assert_eq!(checked, cases().len() * WRAPPINGS.len());
}

#[test]
fn statement_bytes_are_the_signed_payload_exactly() {
    let s = &cases()[1].statement;
    let payload = serde_json::to_vec(s).unwrap();
    for wrapping in [
        Wrapping::Dsse,
        Wrapping::BundleV03,
        Wrapping::Npm,
        Wrapping::CloudBuild,
    ] {
        let (format, bytes) = wrapped(wrapping, s);
        assert_eq!(
            statement_bytes(format, &bytes).unwrap().as_deref(),
            Some(payload.as_slice()),
            "{wrapping:?}"
        );
    }
    // A bare Statement is its own bytes, without surrounding whitespace or a BOM.
    let mut bare = b"\xEF\xBB\xBF \n".to_vec();
    bare.extend_from_slice(&payload);
    bare.extend_from_slice(b"\n");
    assert_eq!(
        statement_bytes(Format::IntotoStatement, &bare)
            .unwrap()
            .as_deref(),
        Some(payload.as_slice())
    );
    assert_eq!(statement_bytes(Format::Sarif, &payload).unwrap(), None);
}

#[test]
fn url_safe_and_unpadded_payloads_decode() {
    let payload = serde_json::to_vec(&cases()[0].statement).unwrap();
    for engine in [
        base64::engine::general_purpose::URL_SAFE_NO_PAD,
        base64::engine::general_purpose::STANDARD_NO_PAD,
    ] {
        let env =
            json!({ "payloadType": IN_TOTO, "payload": engine.encode(&payload), "signatures": [] });
        let got = provenance(Format::DsseEnvelope, &serde_json::to_vec(&env).unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(got, cases()[0].expected);
    }
}

#[test]
fn json_lines_are_read_from_the_first_envelope() {
    let first = &cases()[0];
    let second = &cases()[2];
    let (_, mut bytes) = wrapped(Wrapping::Dsse, &first.statement);
    bytes.extend(Wrapping::Dsse.wrap(&second.statement).1);
    let got = provenance(Format::DsseEnvelope, &bytes).unwrap();
    assert_eq!(got, Some(first.expected.clone()));
}

#[test]
fn bare_predicates_infer_their_version_and_have_no_subjects() {
    let v0_2 = cases()[0].statement["predicate"].clone();
    let v1 = cases()[1].statement["predicate"].clone();
    for (predicate, case) in [(v0_2, &cases()[0]), (v1, &cases()[1])] {
        let bytes = serde_json::to_vec_pretty(&predicate).unwrap();
        assert_eq!(
            detect(bytes.as_slice()).unwrap().format,
            Format::SlsaPredicate
        );
        let got = provenance(Format::SlsaPredicate, &bytes).unwrap().unwrap();
        let expected = Provenance {
            subjects: Vec::new(),
            ..case.expected.clone()
        };
        assert_eq!(got, expected);
    }
    // A bare predicate has no Statement to unwrap.
    assert_eq!(statement_bytes(Format::SlsaPredicate, b"{}").unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// Documents without SLSA provenance

#[test]
fn other_predicate_types_are_not_provenance() {
    let sbom = statement(
        STATEMENT_V1,
        "https://spdx.dev/Document/v2.3",
        artifact_subject(),
        json!({ "spdxVersion": "SPDX-2.3", "packages": [] }),
    );
    for wrapping in WRAPPINGS {
        let (format, bytes) = wrapping.wrap(&sbom);
        assert_eq!(provenance(format, &bytes).unwrap(), None, "{wrapping:?}");
    }
    // Not read at all: a malformed subject list in a non-provenance Statement does not matter.
    let odd =
        json!({ "_type": STATEMENT_V1, "predicateType": "https://example.com/x", "subject": 7 });
    let bytes = serde_json::to_vec(&odd).unwrap();
    assert_eq!(provenance(Format::IntotoStatement, &bytes).unwrap(), None);
}

#[test]
fn non_in_toto_payloads_and_message_signatures_are_not_provenance() {
    let env = envelope("application/vnd.cncf.notary.payload.v1+json", b"{\"x\":1}");
    let bytes = serde_json::to_vec(&env).unwrap();
    assert_eq!(provenance(Format::DsseEnvelope, &bytes).unwrap(), None);
    assert_eq!(statement_bytes(Format::DsseEnvelope, &bytes).unwrap(), None);
    let bundle = serde_json::to_vec(&bundle_v03(env)).unwrap();
    assert_eq!(provenance(Format::SigstoreBundle, &bundle).unwrap(), None);

    let signature = json!({
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": { "publicKey": { "hint": "k" } },
        "messageSignature": {
            "messageDigest": { "algorithm": "SHA2_256", "digest": b64(&[7; 32]) },
            "signature": b64(b"sig"),
        },
    });
    let bytes = serde_json::to_vec(&signature).unwrap();
    assert_eq!(provenance(Format::SigstoreBundle, &bytes).unwrap(), None);
    assert_eq!(
        statement_bytes(Format::SigstoreBundle, &bytes).unwrap(),
        None
    );

    let npm = json!({ "attestations": [{
        "predicateType": "https://github.com/npm/attestation/tree/main/specs/publish/v0.1",
        "bundle": bundle_v03(envelope(IN_TOTO, &publish_statement())),
    }]});
    let bytes = serde_json::to_vec(&npm).unwrap();
    assert_eq!(provenance(Format::NpmAttestations, &bytes).unwrap(), None);

    let provenance_bytes = Wrapping::Bare.wrap(&cases()[0].statement).1;
    assert_eq!(
        provenance(Format::CyclonedxJson, &provenance_bytes).unwrap(),
        None
    );
}

// ---------------------------------------------------------------------------------------------
// Malformed documents

fn slsa_with(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut s = cases()[0].statement.clone();
    edit(&mut s);
    serde_json::to_vec(&s).unwrap()
}

fn dsse_of(payload: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&envelope(IN_TOTO, payload)).unwrap()
}

#[test]
fn subjects_beyond_the_limit_are_dropped_not_refused() {
    let many = slsa_with(|s| {
        s["subject"] = Value::Array(
            (0..4097)
                .map(|i| json!({ "name": format!("f{i}"), "digest": { "sha256": ARTIFACT } }))
                .collect(),
        );
    });
    let p = provenance(Format::IntotoStatement, &many).unwrap().unwrap();
    assert_eq!(p.subjects.len(), 4096);
    assert_eq!(p.subjects[0].name, "f0");
}

#[test]
fn malformed_documents_are_refused_with_a_reason() {
    let mut duplicate_key = serde_json::to_vec(&cases()[0].statement).unwrap();
    duplicate_key.pop();
    duplicate_key.extend_from_slice(br#","predicateType":"https://example.com/other"}"#);
    let npm_disagreeing = json!({ "attestations": [{
        "predicateType": SLSA_V1,
        "bundle": bundle_v03(envelope(IN_TOTO, &serde_json::to_vec(&cases()[0].statement).unwrap())),
    }]});
    let npm_without_bundle =
        json!({ "attestations": [{ "predicateType": SLSA_V1, "bundle": null }] });
    let gcb_without_envelope = json!({
        "image_summary": { "digest": "sha256:00" },
        "provenance_summary": { "provenance": [{ "kind": "BUILD" }] },
    });
    let mut trailing = serde_json::to_vec(&cases()[0].statement).unwrap();
    trailing.extend_from_slice(b" and more");
    let nested = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_type = format!("{{\"_type\":{nested}}}");
    let deep_workflow = {
        let mut s = serde_json::to_string(&cases()[2].statement).unwrap();
        let at = s.find("\"workflow\":").unwrap() + "\"workflow\":".len();
        s.insert_str(at, &format!("{nested},\"ignored\":"));
        s
    };

    let table: Vec<(&str, Format, Vec<u8>, &str)> = vec![
        ("empty", Format::IntotoStatement, b" \n".to_vec(), "empty document"),
        ("not JSON", Format::IntotoStatement, b"{\"_type\": ".to_vec(), "not JSON"),
        ("an array", Format::IntotoStatement, b"[1, 2]".to_vec(), "not a JSON object"),
        (
            "unknown Statement type",
            Format::IntotoStatement,
            slsa_with(|s| s["_type"] = json!("https://in-toto.io/Statement/v2")),
            "\"_type\"",
        ),
        (
            "no Statement type",
            Format::IntotoStatement,
            slsa_with(|s| s["_type"] = Value::Null),
            "no \"_type\"",
        ),
        (
            "no predicate type",
            Format::IntotoStatement,
            slsa_with(|s| s["predicateType"] = Value::Null),
            "no \"predicateType\"",
        ),
        (
            "no subject list",
            Format::IntotoStatement,
            slsa_with(|s| s["subject"] = Value::Null),
            "no \"subject\"",
        ),
        (
            "a subject without a digest",
            Format::IntotoStatement,
            slsa_with(|s| s["subject"] = json!([{ "name": "app" }])),
            "subject 0 has no \"digest\"",
        ),
        (
            "a digest that is not a string",
            Format::IntotoStatement,
            slsa_with(|s| s["subject"] = json!([{ "name": "app", "digest": { "sha256": 1 } }])),
            "subject[0].digest.sha256",
        ),
        (
            "no predicate",
            Format::IntotoStatement,
            slsa_with(|s| s["predicate"] = Value::Null),
            "without a \"predicate\"",
        ),
        (
            "builder id not a string",
            Format::IntotoStatement,
            slsa_with(|s| s["predicate"]["builder"]["id"] = json!(42)),
            "predicate.builder.id",
        ),
        (
            "a duplicated key",
            Format::IntotoStatement,
            duplicate_key,
            "duplicate field",
        ),
        (
            "deep nesting where a string belongs",
            Format::IntotoStatement,
            deep_type.into_bytes(),
            "field '_type'",
        ),
        (
            "deep nesting in a field read as a tree",
            Format::IntotoStatement,
            deep_workflow.into_bytes(),
            "recursion limit",
        ),
        (
            "payload not base64",
            Format::DsseEnvelope,
            br#"{"payloadType":"application/vnd.in-toto+json","payload":"%%%","signatures":[]}"#
                .to_vec(),
            "not valid base64",
        ),
        (
            "payload not JSON",
            Format::DsseEnvelope,
            dsse_of(b"{hello"),
            "not JSON",
        ),
        (
            "payload not an object",
            Format::DsseEnvelope,
            dsse_of(b"hello"),
            "not a JSON object",
        ),
        (
            "payload with trailing bytes",
            Format::DsseEnvelope,
            dsse_of(&trailing),
            "trailing characters",
        ),
        (
            "no payloadType",
            Format::DsseEnvelope,
            br#"{"payload":"e30=","signatures":[]}"#.to_vec(),
            "without a \"payloadType\"",
        ),
        (
            "a bundle without content",
            Format::SigstoreBundle,
            br#"{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json","verificationMaterial":{}}"#
                .to_vec(),
            "neither \"dsseEnvelope\" nor \"messageSignature\"",
        ),
        (
            "npm entry and Statement disagree",
            Format::NpmAttestations,
            serde_json::to_vec(&npm_disagreeing).unwrap(),
            "differs",
        ),
        (
            "npm provenance entry without a bundle",
            Format::NpmAttestations,
            serde_json::to_vec(&npm_without_bundle).unwrap(),
            "without a \"bundle\"",
        ),
        (
            "Cloud Build export without an envelope",
            Format::GcbProvenance,
            serde_json::to_vec(&gcb_without_envelope).unwrap(),
            "envelope",
        ),
        (
            "a bare predicate of no known version",
            Format::SlsaPredicate,
            br#"{"builder":{"id":"x"}}"#.to_vec(),
            "neither",
        ),
    ];
    for (name, format, bytes, reason) in table {
        let err = provenance(format, &bytes)
            .err()
            .unwrap_or_else(|| panic!("{name}: accepted"));
        println!("{name}: {err}");
        assert!(err.0.contains(reason), "{name}: {err}");
        assert!(err.0.len() < 600, "{name}: reason too long: {err}");
    }
}

#[test]
fn documents_over_16_mib_are_refused_before_parsing() {
    let mut bytes = b"{\"_type\":\"".to_vec();
    bytes.resize((16 << 20) + 1, b'a');
    let err = provenance(Format::IntotoStatement, &bytes).unwrap_err();
    assert!(err.0.contains("16 MiB"), "{err}");
    assert!(statement_bytes(Format::DsseEnvelope, &bytes).is_err());
}

#[test]
fn damaged_documents_never_panic() {
    for wrapping in WRAPPINGS {
        for case in cases() {
            let (format, bytes) = wrapping.wrap(&case.statement);
            let step = (bytes.len() / 97).max(1);
            for cut in (0..bytes.len()).step_by(step) {
                let _ = provenance(format, &bytes[..cut]);
                let _ = statement_bytes(format, &bytes[..cut]);
                let mut flipped = bytes.clone();
                flipped[cut] ^= 0x55;
                let _ = provenance(format, &flipped);
                let _ = provenance(Format::SlsaPredicate, &flipped);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The real corpus

/// What MANIFEST.md says about one file.
#[derive(Default)]
struct ManifestEntry {
    format: String,
    subject: String,
    expected: String,
}

fn corpus_dir() -> Option<PathBuf> {
    let root = std::env::var_os("EVAULT_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    let dir = root.join("provenance");
    if dir.join("MANIFEST.md").is_file() {
        Some(dir)
    } else {
        assert!(
            std::env::var("EVAULT_REQUIRE_CORPUS").as_deref() != Ok("1"),
            "EVAULT_REQUIRE_CORPUS=1 but there is no corpus at {}",
            dir.display()
        );
        eprintln!(
            "skipped: no provenance corpus at {} (set EVAULT_CORPUS)",
            dir.display()
        );
        None
    }
}

fn manifest(text: &str) -> Vec<(String, ManifestEntry)> {
    let mut entries: Vec<(String, ManifestEntry)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("### `").and_then(|l| l.strip_suffix('`')) {
            entries.push((name.to_string(), ManifestEntry::default()));
        } else if let Some((_, entry)) = entries.last_mut() {
            if let Some(v) = line.strip_prefix("- **Format:**") {
                entry.format = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("- **Subject:**") {
                entry.subject = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("- **Expected result:**") {
                entry.expected = v.trim().to_string();
            }
        }
    }
    entries
}

/// The text between `open` and the next `close` after it.
fn quoted<'a>(text: &'a str, open: &str, close: char) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let rest = &text[start..];
    Some(&rest[..rest.find(close)?])
}

/// "builder `...`" (or "builder '...'") on a Format line.
fn manifest_builder(format: &str) -> Option<&str> {
    quoted(format, "builder `", '`').or_else(|| quoted(format, "builder '", '\''))
}

/// Full-length sha256 digests on a Subject line ("sha256 `<hex>`"); abbreviated ones are skipped.
fn manifest_sha256s(subject: &str) -> Vec<String> {
    subject
        .match_indices("sha256 `")
        .filter_map(|(i, _)| quoted(&subject[i..], "sha256 `", '`'))
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_ascii_lowercase)
        .collect()
}

/// "source github.com/o/r" (or "--source-uri github.com/o/r", "source `github.com/o/r`") on an
/// Expected-result line, as `https://github.com/o/r`.
fn manifest_source(expected: &str) -> Option<String> {
    expected.match_indices("source").find_map(|(i, _)| {
        let rest = expected[i + "source".len()..]
            .strip_prefix("-uri")
            .unwrap_or(&expected[i + "source".len()..]);
        let rest = rest.trim_start_matches([' ', '`']);
        let repo = rest.strip_prefix("github.com/")?;
        let end = repo
            .find(|c: char| " `),;'".contains(c))
            .unwrap_or(repo.len());
        Some(format!("https://github.com/{}", &repo[..end]))
    })
}

#[test]
fn corpus_provenance_matches_its_manifest() {
    let Some(dir) = corpus_dir() else { return };
    let text = std::fs::read_to_string(dir.join("MANIFEST.md")).unwrap();
    let mut slsa_checked = 0;
    for (name, entry) in manifest(&text) {
        let path = dir.join(&name);
        let Ok(bytes) = std::fs::read(&path) else {
            eprintln!("{name}: listed but missing");
            continue;
        };
        let Ok(found) = detect(bytes.as_slice()) else {
            eprintln!("{name}: detection refused it");
            continue;
        };
        let format = found.format;
        if !matches!(
            format,
            Format::IntotoStatement
                | Format::DsseEnvelope
                | Format::SigstoreBundle
                | Format::NpmAttestations
                | Format::GcbProvenance
                | Format::SlsaPredicate
        ) {
            continue;
        }
        let got = provenance(format, &bytes)
            .unwrap_or_else(|e| panic!("{name} ({format}): {e}"))
            .unwrap_or_else(|| panic!("{name} ({format}): no provenance found"));
        println!(
            "{name} ({format}): predicate_type={} builder_id={:?} build_type={:?} source_repo={:?} source_commit={:?} subjects={}{}",
            got.predicate_type,
            got.builder_id,
            got.build_type,
            got.source_repo,
            got.source_commit,
            got.subjects.len(),
            got.subjects
                .first()
                .map(|s| format!(" (first: {} {:?})", s.name, s.digest))
                .unwrap_or_default()
        );
        if format == Format::SlsaPredicate {
            assert!(got.subjects.is_empty(), "{name}");
            assert!(got.builder_id.is_some(), "{name}: no builder");
            continue;
        }
        assert!(
            statement_bytes(format, &bytes).unwrap().is_some(),
            "{name}: no Statement"
        );
        if !entry.format.contains("SLSA") {
            continue;
        }
        if let Some(builder) = manifest_builder(&entry.format) {
            assert_eq!(got.builder_id.as_deref(), Some(builder), "{name}: builder");
        }
        for sha256 in manifest_sha256s(&entry.subject) {
            assert!(
                got.subjects
                    .iter()
                    .any(|s| s.digest.get("sha256") == Some(&sha256)),
                "{name}: subject sha256 {sha256} missing from {:?}",
                got.subjects
            );
        }
        if let Some(source) = manifest_source(&entry.expected) {
            assert_eq!(
                got.source_repo.as_deref(),
                Some(source.as_str()),
                "{name}: source"
            );
        }
        slsa_checked += 1;
    }
    assert!(
        slsa_checked > 0,
        "no SLSA file checked; has MANIFEST.md changed shape?"
    );
}
