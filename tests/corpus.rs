//! The real-world corpus suite: pushes every file under `../shared/corpus` through the real
//! binary and checks that each is detected as the format its folder's MANIFEST.md states.
//!
//! The corpus is not part of the repository. Without it this suite passes with a note, unless
//! `EVAULT_REQUIRE_CORPUS=1` (set by `.ci/run`), in which case a missing corpus is a failure.
//! `EVAULT_CORPUS=DIR` points at another copy.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

#[path = "common/mod.rs"]
mod common;
use common::{Vault, digest_of, walk};

fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("EVAULT_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"));
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("EVAULT_REQUIRE_CORPUS").as_deref() != Ok("1"),
        "EVAULT_REQUIRE_CORPUS=1 but there is no corpus at {}",
        dir.display()
    );
    eprintln!("note: no corpus at {}; corpus suite skipped", dir.display());
    None
}

/// One file as its MANIFEST.md describes it.
#[derive(Debug)]
struct Entry {
    /// Path relative to the corpus root.
    path: String,
    /// The MANIFEST's "Format:" text.
    format_text: String,
    /// sha256 digests named on its "Subject:" line.
    subjects: Vec<String>,
}

fn manifest_entries(corpus: &Path) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut manifests: Vec<PathBuf> = walk(corpus)
        .into_iter()
        .filter(|p| p.ends_with("MANIFEST.md"))
        .collect();
    manifests.sort();
    for manifest in manifests {
        let folder = manifest
            .parent()
            .unwrap()
            .strip_prefix(corpus)
            .unwrap()
            .to_path_buf();
        let text = std::fs::read_to_string(&manifest).unwrap();
        let mut current: Option<Entry> = None;
        for line in text.lines() {
            if let Some(name) = line.strip_prefix("### `").and_then(|l| l.strip_suffix('`')) {
                entries.extend(current.take());
                let path = folder.join(name).to_string_lossy().into_owned();
                current = Some(Entry {
                    path,
                    format_text: String::new(),
                    subjects: Vec::new(),
                });
            } else if let Some(entry) = current.as_mut() {
                if let Some(f) = line.strip_prefix("- **Format:**") {
                    entry.format_text = f.trim().to_string();
                } else if line.starts_with("- **Subject:**") {
                    entry.subjects = sha256_mentions(line);
                }
            }
        }
        entries.extend(current);
    }
    entries
}

/// `sha256 \`<hex>\`` mentions on a MANIFEST line.
fn sha256_mentions(line: &str) -> Vec<String> {
    line.split("sha256 `")
        .skip(1)
        .filter_map(|rest| rest.split('`').next())
        .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|hex| format!("sha256:{hex}"))
        .collect()
}

/// The format evault must detect for a MANIFEST "Format:" text. The text names the outermost
/// container first ("Sigstore bundle v0.3 with a DSSE envelope; Statement v0.1; ..."), so the
/// rule whose phrase appears earliest wins.
fn expected_format(text: &str) -> Option<&'static str> {
    let t = text.replace("**", "").replace('`', "").to_ascii_lowercase();
    const RULES: &[(&str, &str)] = &[
        ("sigstore bundle", "sigstore-bundle"),
        ("bundle v0.", "sigstore-bundle"),
        ("bundle whose", "sigstore-bundle"),
        ("sigstore trustedroot", "sigstore-trusted-root"),
        ("dsse envelope", "dsse-envelope"),
        ("bare in-toto statement", "intoto-statement"),
        ("in-toto layout", "intoto-layout"),
        ("in-toto link", "intoto-link"),
        ("pem subjectpublickeyinfo", "pem-public-key"),
        ("pem, ", "pem-public-key"),
        ("raw der", "signature-der"),
        ("plain-text", "text"),
        ("plain text", "text"),
        ("tag-value", "spdx-tag-value"),
        ("spdx-2.2 json", "spdx-json"),
        ("spdx-2.3 json", "spdx-json"),
        ("cyclonedx", "cyclonedx-json"),
        ("sarif", "sarif"),
        ("trivy json", "trivy-json"),
        ("grype json", "grype-json"),
        ("osv-scanner json", "osv-scanner-json"),
        ("openvex", "openvex"),
        ("csaf", "csaf"),
        ("junit xml", "junit-xml"),
        ("google cloud build provenance export", "gcb-provenance"),
        ("gcb provenance", "gcb-provenance"),
        ("npm registry attestations document", "npm-attestations"),
        ("npm attestations document", "npm-attestations"),
        ("predicate body only", "slsa-predicate"),
    ];
    RULES
        .iter()
        .filter_map(|(phrase, format)| t.find(phrase).map(|at| (at, *format)))
        .min_by_key(|(at, _)| *at)
        .map(|(_, f)| f)
}

/// The kind a file's folder implies, where it implies one.
fn expected_kind(entry: &Entry, format: &str) -> Option<&'static str> {
    let top = entry.path.split('/').next().unwrap_or("");
    let sbom_in_vex_folder = entry.format_text.contains("SBOM");
    match top {
        "sbom" => Some("sbom"),
        "scan" => Some("vuln-scan"),
        "vex" if sbom_in_vex_folder => Some("sbom"),
        "vex" => Some("vex"),
        "junit" => Some("test-report"),
        "provenance" if format == "text" || format == "pem-public-key" => Some("other"),
        "provenance" => Some("provenance"),
        _ => None,
    }
}

#[test]
fn every_corpus_file_is_detected_as_its_manifest_states() {
    let Some(corpus) = corpus_dir() else { return };
    let entries = manifest_entries(&corpus);
    assert!(
        entries.len() >= 100,
        "only {} MANIFEST entries found",
        entries.len()
    );

    // Every data file in the corpus is described by a MANIFEST entry, so none escapes the check.
    let described: std::collections::BTreeSet<&str> =
        entries.iter().map(|e| e.path.as_str()).collect();
    for file in walk(&corpus).into_iter().filter(|p| p.is_file()) {
        let rel = file
            .strip_prefix(&corpus)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if !rel.ends_with(".md") {
            assert!(
                described.contains(rel.as_str()),
                "{rel} has no MANIFEST entry"
            );
        }
    }

    // Push the whole corpus as one directory bundle through the real binary.
    let vault = Vault::initialised().with_actor("corpus-suite");
    let records = vault.push_json([
        corpus.as_os_str(),
        "--blueprint".as_ref(),
        "corpus".as_ref(),
        "--version".as_ref(),
        "1".as_ref(),
        "--git-sha".as_ref(),
        "0123456789abcdef0123456789abcdef01234567".as_ref(),
    ]);
    // Identical files pushed with identical links are one record (under the first path), so
    // files are matched to records by digest.
    let by_digest: BTreeMap<&str, &Value> = records
        .iter()
        .map(|r| (r["digest"].as_str().unwrap(), r))
        .collect();

    let mut failures = Vec::new();
    for entry in &entries {
        let Some(expected) = expected_format(&entry.format_text) else {
            failures.push(format!(
                "{}: no rule for MANIFEST format {:?}",
                entry.path, entry.format_text
            ));
            continue;
        };
        let bytes = std::fs::read(corpus.join(&entry.path)).unwrap();
        let digest = digest_of(&bytes);
        let Some(record) = by_digest.get(digest.as_str()) else {
            failures.push(format!("{}: not among the pushed records", entry.path));
            continue;
        };
        let format = record["format"].as_str().unwrap();
        if format != expected {
            failures.push(format!(
                "{}: detected {format}, MANIFEST says {expected} ({:?})",
                entry.path, entry.format_text
            ));
        }
        let kind = record["kind"].as_str().unwrap();
        if let Some(expected_kind) = expected_kind(entry, expected)
            && kind != expected_kind
        {
            failures.push(format!(
                "{}: kind {kind}, expected {expected_kind}",
                entry.path
            ));
        }
        let subjects: Vec<&str> = record["subjects"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for s in &entry.subjects {
            let wrapped = matches!(
                format,
                "intoto-statement" | "dsse-envelope" | "sigstore-bundle"
            );
            if wrapped && !subjects.contains(&s.as_str()) {
                failures.push(format!(
                    "{}: subject {s} from the MANIFEST is not a record subject",
                    entry.path
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} corpus mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // What the evidence says: for every SBOM, scan and VEX document, the count in `show`'s
    // summary equals a count taken here, independently, from the raw file.
    let mut miscounts = Vec::new();
    let mut compared = 0;
    for entry in &entries {
        let path = corpus.join(&entry.path);
        let bytes = std::fs::read(&path).unwrap();
        let Some(record) = by_digest.get(digest_of(&bytes).as_str()) else {
            continue;
        };
        let (field, expected) = match (record["kind"].as_str(), record["format"].as_str()) {
            (Some("sbom"), Some(format)) => ("components", independent_components(format, &bytes)),
            (Some("vuln-scan"), Some(format)) => ("findings", independent_findings(format, &bytes)),
            (Some("vex"), Some(format)) => ("statements", independent_statements(format, &bytes)),
            _ => continue,
        };
        let Some(expected) = expected else { continue };
        compared += 1;
        let shown = vault
            .run(["--json", "show", record["id"].as_str().unwrap()])
            .success()
            .json();
        let counted = shown["summary"][field].as_u64();
        if counted != Some(expected) {
            miscounts.push(format!(
                "{}: summary.{field} = {counted:?}, the raw file has {expected}",
                entry.path
            ));
        }
    }
    assert!(
        miscounts.is_empty(),
        "{} miscounts:\n{}",
        miscounts.len(),
        miscounts.join("\n")
    );
    assert!(
        compared >= 30,
        "only {compared} SBOMs, scans and VEX documents were counted"
    );

    // Every blob reads back intact.
    vault.run(["fsck"]).success();
}

fn json(bytes: &[u8]) -> Option<Value> {
    serde_json::from_slice(bytes).ok()
}

fn len(v: &Value) -> u64 {
    v.as_array().map_or(0, |a| a.len() as u64)
}

/// Named CycloneDX components, nested ones included, `metadata.component` excluded.
fn cyclonedx_components(v: &Value) -> u64 {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|c| u64::from(c["name"].as_str().is_some()) + cyclonedx_components(&c["components"]))
        .sum()
}

fn independent_components(format: &str, bytes: &[u8]) -> Option<u64> {
    match format {
        "cyclonedx-json" => Some(cyclonedx_components(&json(bytes)?["components"])),
        "spdx-json" => Some(len(&json(bytes)?["packages"])),
        "spdx-tag-value" => Some(
            String::from_utf8_lossy(bytes)
                .lines()
                .filter(|l| l.trim_start().starts_with("PackageName:"))
                .count() as u64,
        ),
        _ => None,
    }
}

fn independent_findings(format: &str, bytes: &[u8]) -> Option<u64> {
    let v = json(bytes)?;
    match format {
        "sarif" => Some(
            v["runs"]
                .as_array()?
                .iter()
                .map(|r| len(&r["results"]))
                .sum(),
        ),
        "grype-json" => Some(len(&v["matches"])),
        "trivy-json" => Some(
            v["Results"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| len(&r["Vulnerabilities"]))
                .sum(),
        ),
        "osv-scanner-json" => Some(
            v["results"]
                .as_array()?
                .iter()
                .flat_map(|r| r["packages"].as_array().into_iter().flatten())
                .map(|p| len(&p["vulnerabilities"]))
                .sum(),
        ),
        _ => None,
    }
}

fn independent_statements(format: &str, bytes: &[u8]) -> Option<u64> {
    let v = json(bytes)?;
    match format {
        "openvex" => Some(len(&v["statements"])),
        "cyclonedx-json" => Some(
            v["vulnerabilities"]
                .as_array()?
                .iter()
                .filter(|x| x["analysis"]["state"].is_string())
                .count() as u64,
        ),
        // CSAF statements depend on grouping rules (product status groups, justifications):
        // counted by the extractor's own tests, not independently here.
        _ => None,
    }
}

#[test]
fn manifest_format_rules_pick_the_outermost_container() {
    assert_eq!(
        expected_format(
            "Sigstore bundle v0.3 (`x`) with a DSSE envelope; Statement v0.1; SLSA v0.2"
        ),
        Some("sigstore-bundle")
    );
    assert_eq!(
        expected_format(
            "Google Cloud Build provenance export (...), whose DSSE envelope carries Statement v0.1"
        ),
        Some("gcb-provenance")
    );
    assert_eq!(
        expected_format("SPDX-2.2 **tag-value** (`.spdx`)"),
        Some("spdx-tag-value")
    );
    assert_eq!(expected_format("Something new"), None);
    assert_eq!(
        sha256_mentions(
            "- **Subject:** `a` sha256 `5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03`, which"
        ),
        vec!["sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03".to_string()]
    );
}

/// A signed corpus item as its MANIFEST describes it.
struct Signed {
    path: String,
    artifact: Option<String>,
    identity: Option<(String, String)>,
    valid: bool,
}

/// Reads the entries of one MANIFEST with their expected verification outcome.
fn signed_entries(corpus: &Path, folder: &str) -> Vec<Signed> {
    let text = std::fs::read_to_string(corpus.join(folder).join("MANIFEST.md")).unwrap();
    let mut out: Vec<Signed> = Vec::new();
    let tick = |line: &str, after: &str| -> Option<String> {
        let rest = &line[line.find(after)? + after.len()..];
        let rest = rest.strip_prefix('`')?;
        rest.split('`').next().map(str::to_string)
    };
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("### `").and_then(|l| l.strip_suffix('`')) {
            out.push(Signed {
                path: format!("{folder}/{name}"),
                artifact: None,
                identity: None,
                valid: false,
            });
        } else if let Some(entry) = out.last_mut() {
            if line.starts_with("- **Artifact:**") {
                entry.artifact = tick(line, "**Artifact:** ");
            } else if line.starts_with("- **Identity:**") {
                if let (Some(san), Some(issuer)) = (tick(line, "SAN "), tick(line, "issuer ")) {
                    entry.identity = Some((san, issuer));
                }
            } else if let Some(rest) = line.strip_prefix("- **Expected result:**") {
                let first = rest.trim_start().trim_start_matches("Signature ");
                entry.valid = first.starts_with("VALID");
            }
        }
    }
    out
}

/// Through the real binary: with the corpus's trusted roots, keys and identities trusted, every
/// signed item gets the verdict its MANIFEST states.
#[test]
fn signed_corpus_items_get_the_verdict_their_manifest_states() {
    let Some(corpus) = corpus_dir() else { return };
    let vault = Vault::initialised();
    let c = |p: &str| corpus.join(p).to_string_lossy().into_owned();
    for (name, file) in [
        (
            "public-good",
            "sigstore/trusted_root/public-good.trusted_root.json",
        ),
        ("staging", "sigstore/trusted_root/staging.trusted_root.json"),
    ] {
        vault
            .run(["trust", "root", "add", name, "--file", &c(file)])
            .success();
    }
    for (name, file) in [
        ("chainloop", "sigstore/keypair/chainloop-cosign.pub"),
        (
            "rekor-testdata",
            "sigstore/keypair/rekor-x509-testdata-ec.pub",
        ),
        (
            "npm-registry",
            "sigstore/keypair/npm-registry-publish_key.pub",
        ),
        ("gcb", "provenance/keys/gcb-global.pub.pem"),
        (
            "google-bcid",
            "intoto/attestations/google-bcid-vsa_signing_public_key.pem",
        ),
        ("witness", "intoto/attestations/witness-testpub.pem"),
    ] {
        vault
            .run(["trust", "key", "add", name, "--file", &c(file)])
            .success();
    }
    let mut items = signed_entries(&corpus, "sigstore");
    items.retain(|s| {
        s.path.contains("/bundles/")
            || (s.path.contains("/keypair/")
                && !s.path.ends_with(".pub")
                && !s.path.ends_with("hello_world.txt"))
    });
    items.extend(
        signed_entries(&corpus, "intoto")
            .into_iter()
            .filter(|s| s.path.ends_with(".dsse.jsonl") || s.path.ends_with(".dsse.json")),
    );
    items.extend(
        signed_entries(&corpus, "provenance")
            .into_iter()
            .filter(|s| s.path.contains("gcb-container")),
    );
    let mut n = 0;
    for (i, item) in items.iter().enumerate() {
        if let Some((san, issuer)) = &item.identity {
            vault
                .run([
                    "trust",
                    "identity",
                    "add",
                    &format!("id{i}"),
                    "--san",
                    san,
                    "--issuer",
                    issuer,
                ])
                .success();
        }
    }
    let mut wrong = Vec::new();
    for item in &items {
        // A detached signature or message-signature bundle is pushed for the artifact it signs.
        let artifact = match (&item.artifact, item.path.as_str()) {
            (Some(a), _) => Some(corpus.join("sigstore").join(a)),
            (None, p) if p.ends_with("hello_world.txt.sig") => {
                Some(corpus.join("sigstore/keypair/hello_world.txt"))
            }
            _ => None,
        };
        let mut args = vec![
            c(&item.path),
            "--blueprint".into(),
            "corpus".into(),
            "--version".into(),
            "1".into(),
        ];
        if let Some(a) = &artifact {
            args.extend(["--subject".into(), digest_of(&std::fs::read(a).unwrap())]);
        }
        let push = |sha: &str| {
            let mut a = args.clone();
            a.extend(["--git-sha".into(), sha.to_string()]);
            vault.run(
                std::iter::once("--json".to_string())
                    .chain(std::iter::once("push".into()))
                    .chain(a),
            )
        };
        let run = push("0123456789abcdef0123456789abcdef01234567");
        if run.code != 0 {
            wrong.push(format!("{}: push failed: {}", item.path, run.stderr.trim()));
            continue;
        }
        let mut record = run.json()[0].clone();
        // Provenance must come from the record's commit: push it again for its own commit.
        let id = record["id"].as_str().unwrap().to_string();
        let shown = vault.run(["--json", "show", &id]).success().json();
        if let Some(commit) = shown["summary"]["source_commit"].as_str() {
            let again = push(commit);
            record = again.json()[0].clone();
        }
        n += 1;
        let status = record["verification"]["status"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        let verified = status == "verified";
        if verified != item.valid {
            wrong.push(format!(
                "{}: MANIFEST says {}, evault says {status} ({})",
                item.path,
                if item.valid { "VALID" } else { "INVALID" },
                record["verification"]["reason"].as_str().unwrap_or("-")
            ));
        } else {
            eprintln!("{}: {status}", item.path);
        }
    }
    assert!(n >= 20, "only {n} signed items checked");
    assert!(
        wrong.is_empty(),
        "{} verdicts differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// `evault verify-layout` on the corpus's in-toto demo: one passing supply chain, five failing
/// ones, as its MANIFEST states.
#[test]
fn the_in_toto_demo_verifies_only_where_its_manifest_says() {
    let Some(corpus) = corpus_dir() else { return };
    let demo = corpus.join("intoto/layout-demo");
    let vault = Vault::new();
    let path = |p: &str| demo.join(p).to_string_lossy().into_owned();
    let links_only_write_config = vault.path("only-write-config");
    std::fs::create_dir_all(&links_only_write_config).unwrap();
    std::fs::copy(
        demo.join("links/write-config.43e77869.link"),
        links_only_write_config.join("write-config.43e77869.link"),
    )
    .unwrap();
    let cases = [
        (
            "root.layout",
            "keys/owner.pub",
            path("links"),
            0,
            "verified",
        ),
        (
            "expired.layout",
            "keys/owner.pub",
            path("links"),
            7,
            "expired",
        ),
        (
            "root.layout",
            "keys/owner.pub",
            path("links-tampered-material"),
            7,
            "package",
        ),
        (
            "root.layout",
            "keys/owner.pub",
            path("links-wrong-functionary"),
            7,
            "package",
        ),
        (
            "root.layout",
            "keys/alice.pub",
            path("links"),
            7,
            "not signed",
        ),
        (
            "root.layout",
            "keys/owner.pub",
            links_only_write_config.to_string_lossy().into_owned(),
            7,
            "package",
        ),
    ];
    for (layout, key, links, code, needle) in cases {
        let run = vault.run([
            "verify-layout",
            &path(layout),
            "--layout-key",
            &path(key),
            "--links",
            &links,
        ]);
        assert_eq!(run.code, code, "{layout} {key} {links}: {run:?}");
        let last = run
            .stdout_text()
            .lines()
            .last()
            .unwrap_or_default()
            .to_string();
        assert!(last.contains(needle), "{layout} {key} {links}: {last}");
    }
}
