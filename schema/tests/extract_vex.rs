//! Statements of VEX documents: one table per format, each row a small generated document and
//! the statements it must give; truncation at the item limit; malformed documents; and a check
//! of the real-world corpus against counts computed here, independently, from the raw JSON.

mod support;

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use evault_schema::Format;
use evault_schema::extract::vex::statements;
use evault_schema::extract::{Extracted, Limits, VexStatement, VexStatus};
use serde_json::{Value, json};
use support::Dribble;

fn statement(
    vulnerability: &str,
    aliases: &[&str],
    products: &[&str],
    status: VexStatus,
    justification: Option<&str>,
) -> VexStatement {
    VexStatement {
        vulnerability: vulnerability.to_string(),
        aliases: aliases.iter().map(|a| a.to_string()).collect(),
        products: products.iter().map(|p| p.to_string()).collect(),
        status,
        justification: justification.map(str::to_string),
    }
}

fn extract(format: Format, doc: &Value) -> Extracted<VexStatement> {
    let bytes = serde_json::to_vec(doc).unwrap();
    let found = statements(format, bytes.as_slice(), &Limits::default())
        .unwrap_or_else(|e| panic!("{format}: {e}\n{doc:#}"));
    let dribbled = statements(format, Dribble::new(&bytes, 11), &Limits::default()).unwrap();
    assert_eq!(found, dribbled);
    found
}

fn check_table(format: Format, rows: Vec<(&str, Value, Vec<VexStatement>)>) {
    for (scenario, doc, expected) in rows {
        let found = extract(format, &doc);
        assert_eq!(found.items, expected, "{format}: {scenario}");
        assert_eq!(found.total, expected.len() as u64, "{format}: {scenario}");
        assert!(!found.truncated, "{format}: {scenario}");
    }
}

fn openvex(context: &str, statements: Value) -> Value {
    json!({
        "@context": context,
        "@id": "https://openvex.dev/docs/example/vex-1",
        "author": "Test",
        "timestamp": "2024-01-01T00:00:00Z",
        "version": 1,
        "statements": statements,
    })
}

#[test]
fn openvex_statements() {
    use VexStatus::*;
    let image = "pkg:oci/alpine@sha256%3A124c";
    let rows = vec![
        (
            "v0.2: name and aliases, product ids followed by their subcomponents",
            openvex(
                "https://openvex.dev/ns/v0.2.0",
                json!([
                    {"vulnerability": {"@id": "https://nvd.nist.gov/vuln/detail/CVE-2023-1255", "name": "CVE-2023-1255", "aliases": ["GHSA-aaaa-bbbb-cccc", "CVE-2023-1255"]},
                     "products": [
                        {"@id": image, "subcomponents": [{"@id": "pkg:apk/alpine/libssl3@3.0.8-r3"}, {"@id": "pkg:apk/alpine/libcrypto3@3.0.8-r3"}]},
                        {"@id": "pkg:oci/other@sha256%3A99", "subcomponents": [{"@id": "pkg:apk/alpine/libssl3@3.0.8-r3"}]},
                     ],
                     "status": "fixed"},
                    {"vulnerability": {"name": "CVE-2023-3446"},
                     "products": [{"identifiers": {"purl": "pkg:apk/alpine/openssl@3", "cpe23": "cpe:2.3:a:openssl:openssl:3:*:*:*:*:*:*:*"}}, {"identifiers": {"cpe22": "cpe:/a:x:y:1"}}, {"hashes": {"sha-256": "ab"}}],
                     "status": "not_affected", "justification": "vulnerable_code_not_present", "impact_statement": "removed"},
                    {"vulnerability": {"@id": "CVE-2023-0001"}, "products": [{"@id": image}], "status": "not_affected", "impact_statement": "never built"},
                    {"vulnerability": {"name": "CVE-2023-0002"}, "products": [{"@id": image}], "status": "affected", "action_statement": "upgrade"},
                    {"vulnerability": {"name": "CVE-2023-0003"}, "products": [{"@id": image}], "status": "under_investigation"},
                ]),
            ),
            vec![
                statement(
                    "CVE-2023-1255",
                    &["GHSA-aaaa-bbbb-cccc"],
                    &[
                        image,
                        "pkg:apk/alpine/libssl3@3.0.8-r3",
                        "pkg:apk/alpine/libcrypto3@3.0.8-r3",
                        "pkg:oci/other@sha256%3A99",
                    ],
                    Fixed,
                    None,
                ),
                statement(
                    "CVE-2023-3446",
                    &[],
                    &["pkg:apk/alpine/openssl@3", "cpe:/a:x:y:1"],
                    NotAffected,
                    Some("vulnerable_code_not_present"),
                ),
                statement(
                    "CVE-2023-0001",
                    &[],
                    &[image],
                    NotAffected,
                    Some("never built"),
                ),
                statement("CVE-2023-0002", &[], &[image], Affected, None),
                statement("CVE-2023-0003", &[], &[image], UnderInvestigation, None),
            ],
        ),
        (
            "legacy v0.0.1: vulnerability and products are plain strings",
            json!({
                "@context": "https://openvex.dev/ns/v0.0.1",
                "version": "1",
                "statements": [
                    {"vulnerability": "CVE-2023-12345", "products": ["pkg:apk/wolfi/git@2.39.0-r1?arch=armv7", "pkg:apk/wolfi/git@2.39.0-r1?arch=x86_64"], "status": "fixed"},
                    {"vulnerability": "CVE-2023-6", "products": ["pkg:oci/img"], "subcomponents": ["pkg:apk/wolfi/a@1"], "status": "not_affected", "justification": "component_not_present"},
                    {"vulnerability": "CVE-2023-7", "status": "affected"},
                ],
            }),
            vec![
                statement(
                    "CVE-2023-12345",
                    &[],
                    &[
                        "pkg:apk/wolfi/git@2.39.0-r1?arch=armv7",
                        "pkg:apk/wolfi/git@2.39.0-r1?arch=x86_64",
                    ],
                    Fixed,
                    None,
                ),
                statement(
                    "CVE-2023-6",
                    &[],
                    &["pkg:oci/img", "pkg:apk/wolfi/a@1"],
                    NotAffected,
                    Some("component_not_present"),
                ),
                statement("CVE-2023-7", &[], &[], Affected, None),
            ],
        ),
        (
            "an empty document",
            openvex("https://openvex.dev/ns/v0.2.0", json!([])),
            vec![],
        ),
    ];
    check_table(Format::Openvex, rows);
}

fn bom(vulnerabilities: Value) -> Value {
    json!({"bomFormat": "CycloneDX", "specVersion": "1.4", "version": 1, "vulnerabilities": vulnerabilities})
}

#[test]
fn cyclonedx_analysis_statements() {
    use VexStatus::*;
    let vulnerability = |id: &str, analysis: Value| {
        json!({"id": id, "source": {"name": "NVD"}, "references": [{"id": "GHSA-x", "source": {"name": "GitHub"}}],
               "analysis": analysis, "affects": [{"ref": "product-ABC"}, {"ref": "urn:cdx:3e67/1#pkg:maven/a/b@1"}, {"ref": "product-ABC"}]})
    };
    let products = ["product-ABC", "urn:cdx:3e67/1#pkg:maven/a/b@1"];
    let rows = vec![
        (
            "each analysis state maps to a status",
            bom(json!([
                vulnerability(
                    "CVE-1",
                    json!({"state": "not_affected", "justification": "code_not_reachable", "response": ["will_not_fix"]})
                ),
                vulnerability("CVE-2", json!({"state": "false_positive"})),
                vulnerability(
                    "CVE-3",
                    json!({"state": "exploitable", "response": ["update"]})
                ),
                vulnerability("CVE-4", json!({"state": "resolved"})),
                vulnerability("CVE-5", json!({"state": "resolved_with_pedigree"})),
                vulnerability("CVE-6", json!({"state": "in_triage"})),
            ])),
            vec![
                statement(
                    "CVE-1",
                    &["GHSA-x"],
                    &products,
                    NotAffected,
                    Some("code_not_reachable"),
                ),
                statement("CVE-2", &["GHSA-x"], &products, NotAffected, None),
                statement("CVE-3", &["GHSA-x"], &products, Affected, None),
                statement("CVE-4", &["GHSA-x"], &products, Fixed, None),
                statement("CVE-5", &["GHSA-x"], &products, Fixed, None),
                statement("CVE-6", &["GHSA-x"], &products, UnderInvestigation, None),
            ],
        ),
        (
            "vulnerabilities without an analysis state are findings, not statements",
            bom(json!([
                {"id": "CVE-7", "affects": [{"ref": "a"}]},
                {"id": "CVE-8", "analysis": {"detail": "looking"}},
                {"id": "CVE-9", "analysis": {"state": "not_affected", "justification": "requires_environment"}},
            ])),
            vec![statement(
                "CVE-9",
                &[],
                &[],
                NotAffected,
                Some("requires_environment"),
            )],
        ),
        (
            "a BOM without vulnerabilities",
            json!({"bomFormat": "CycloneDX", "specVersion": "1.3", "components": []}),
            vec![],
        ),
    ];
    check_table(Format::CyclonedxJson, rows);
}

fn csaf(product_tree: Value, vulnerabilities: Value) -> Value {
    json!({
        "document": {"category": "csaf_vex", "csaf_version": "2.0", "title": "t", "publisher": {"name": "p"}},
        "product_tree": product_tree,
        "vulnerabilities": vulnerabilities,
    })
}

#[test]
fn csaf_product_status_groups() {
    use VexStatus::*;
    let tree = json!({
        "full_product_names": [{"product_id": "P1", "name": "one"}],
        "product_groups": [{"group_id": "G1", "product_ids": ["P5", "P6"]}],
    });
    let rows = vec![
        (
            "one statement per status group; recommended is not a status",
            // (json! orders keys alphabetically; document order is checked below.)
            csaf(
                tree.clone(),
                json!([{
                    "cve": "CVE-2023-0044",
                    "ids": [{"system_name": "Bugzilla", "text": "2158081"}, {"system_name": "GHSA", "text": "GHSA-aaaa-bbbb-cccc"}],
                    "product_status": {
                        "fixed": ["P1", "P2", "P1"],
                        "known_affected": ["P3"],
                        "first_affected": ["P3a"],
                        "last_affected": ["P3b"],
                        "recommended": ["P9"],
                        "first_fixed": ["P4"],
                        "under_investigation": ["P7"],
                        "known_not_affected": [],
                    },
                    "threats": [{"category": "impact", "details": "Low", "product_ids": ["P3"]}],
                }]),
            ),
            vec![
                statement(
                    "CVE-2023-0044",
                    &["2158081", "GHSA-aaaa-bbbb-cccc"],
                    &["P3a"],
                    Affected,
                    None,
                ),
                statement(
                    "CVE-2023-0044",
                    &["2158081", "GHSA-aaaa-bbbb-cccc"],
                    &["P4"],
                    Fixed,
                    None,
                ),
                statement(
                    "CVE-2023-0044",
                    &["2158081", "GHSA-aaaa-bbbb-cccc"],
                    &["P1", "P2"],
                    Fixed,
                    None,
                ),
                statement(
                    "CVE-2023-0044",
                    &["2158081", "GHSA-aaaa-bbbb-cccc"],
                    &["P3"],
                    Affected,
                    None,
                ),
                statement(
                    "CVE-2023-0044",
                    &["2158081", "GHSA-aaaa-bbbb-cccc"],
                    &["P3b"],
                    Affected,
                    None,
                ),
                statement(
                    "CVE-2023-0044",
                    &["2158081", "GHSA-aaaa-bbbb-cccc"],
                    &["P7"],
                    UnderInvestigation,
                    None,
                ),
            ],
        ),
        (
            "known_not_affected splits by justification: flag labels, then impact threats, then none",
            csaf(
                tree.clone(),
                json!([{
                    "cve": "CVE-2009-4487",
                    "product_status": {"known_not_affected": ["P1", "P2", "P3", "P4", "P5", "P6"]},
                    "flags": [
                        {"label": "vulnerable_code_not_present", "product_ids": ["P1", "P3"]},
                        {"label": "component_not_present", "product_ids": ["P1"], "group_ids": ["G1"]},
                    ],
                    "threats": [
                        {"category": "impact", "details": "Class with vulnerable code was removed before shipping.", "product_ids": ["P2", "P3"]},
                        {"category": "exploit_status", "details": "none", "product_ids": ["P4"]},
                    ],
                }]),
            ),
            vec![
                statement(
                    "CVE-2009-4487",
                    &[],
                    &["P1", "P3"],
                    NotAffected,
                    Some("vulnerable_code_not_present"),
                ),
                statement(
                    "CVE-2009-4487",
                    &[],
                    &["P2"],
                    NotAffected,
                    Some("Class with vulnerable code was removed before shipping."),
                ),
                statement("CVE-2009-4487", &[], &["P4"], NotAffected, None),
                statement(
                    "CVE-2009-4487",
                    &[],
                    &["P5", "P6"],
                    NotAffected,
                    Some("component_not_present"),
                ),
            ],
        ),
        (
            "without a cve the first id names the vulnerability; several vulnerabilities",
            csaf(
                json!(null),
                json!([
                    {"ids": [{"system_name": "GHSA", "text": "GHSA-1"}, {"system_name": "x", "text": "X-1"}], "product_status": {"fixed": ["A"]}},
                    {"cve": "CVE-2", "product_status": {"known_affected": ["B"]}},
                    {"cve": "CVE-3", "title": "no product status"},
                ]),
            ),
            vec![
                statement("GHSA-1", &["X-1"], &["A"], Fixed, None),
                statement("CVE-2", &[], &["B"], Affected, None),
            ],
        ),
        (
            "a CSAF document without vulnerabilities",
            json!({"document": {"category": "csaf_base", "csaf_version": "2.0"}}),
            vec![],
        ),
    ];
    check_table(Format::Csaf, rows);
}

#[test]
fn csaf_statements_follow_document_order() {
    let doc = r#"{"vulnerabilities": [{"product_status": {"under_investigation": ["c"], "fixed": ["a"], "known_affected": ["b"]}, "cve": "CVE-1"}]}"#;
    let found = statements(Format::Csaf, doc.as_bytes(), &Limits::default()).unwrap();
    let order: Vec<VexStatus> = found.items.iter().map(|s| s.status).collect();
    assert_eq!(
        order,
        [
            VexStatus::UnderInvestigation,
            VexStatus::Fixed,
            VexStatus::Affected
        ]
    );
}

#[test]
fn csaf_product_groups_resolve_only_when_the_tree_comes_first() {
    let vulnerabilities = r#""vulnerabilities": [{"cve": "CVE-1", "product_status": {"known_not_affected": ["a"]},
        "flags": [{"label": "component_not_present", "group_ids": ["G"]}]}]"#;
    let tree = r#""product_tree": {"product_groups": [{"group_id": "G", "product_ids": ["a"]}]}"#;
    for (doc, justification) in [
        (
            format!("{{{tree}, {vulnerabilities}}}"),
            Some("component_not_present"),
        ),
        (format!("{{{vulnerabilities}, {tree}}}"), None),
    ] {
        let found = statements(Format::Csaf, doc.as_bytes(), &Limits::default()).unwrap();
        assert_eq!(
            found.items[0].justification.as_deref(),
            justification,
            "{doc}"
        );
    }
}

#[test]
fn other_formats_are_not_vex() {
    for format in [
        Format::Sarif,
        Format::GrypeJson,
        Format::SpdxJson,
        Format::Text,
    ] {
        let err = statements(format, &b"{}"[..], &Limits::default()).unwrap_err();
        assert!(err.0.contains("is not a VEX format"), "{format}: {err}");
    }
    let empty = statements(Format::CyclonedxXml, &b"<bom/>"[..], &Limits::default()).unwrap();
    assert_eq!(empty.total, 0);
}

#[test]
fn statements_past_the_limit_are_counted_not_kept() {
    let n = 30;
    let openvex_doc = openvex(
        "https://openvex.dev/ns/v0.2.0",
        Value::Array(
            (0..n)
                .map(|i| json!({"vulnerability": {"name": format!("CVE-{i}")}, "products": [{"@id": "p"}], "status": "fixed"}))
                .collect(),
        ),
    );
    let cdx_doc = bom(Value::Array(
        (0..n)
            .map(|i| json!({"id": format!("CVE-{i}"), "analysis": {"state": "in_triage"}}))
            .collect(),
    ));
    // 10 vulnerabilities of 3 groups each.
    let csaf_doc = csaf(
        json!({}),
        Value::Array(
            (0..n / 3)
                .map(|i| json!({"cve": format!("CVE-{i}"), "product_status": {"fixed": ["a"], "known_affected": ["b"], "under_investigation": ["c"]}}))
                .collect(),
        ),
    );
    for (format, doc) in [
        (Format::Openvex, openvex_doc),
        (Format::CyclonedxJson, cdx_doc),
        (Format::Csaf, csaf_doc),
    ] {
        let bytes = serde_json::to_vec(&doc).unwrap();
        for max_items in [0, 1, 4, 29, 30, 31] {
            let found = statements(format, bytes.as_slice(), &Limits { max_items }).unwrap();
            assert_eq!(found.total, n as u64, "{format} at {max_items}");
            assert_eq!(
                found.items.len(),
                max_items.min(n),
                "{format} at {max_items}"
            );
            assert_eq!(found.truncated, max_items < n, "{format} at {max_items}");
        }
    }
}

#[test]
fn malformed_vex_documents_are_errors_that_say_why() {
    let cases: Vec<(Format, &str, &str)> = vec![
        (Format::Openvex, "", "invalid JSON"),
        (
            Format::Openvex,
            r#"{"@context": "https://openvex.dev/ns/v0.2.0"}"#,
            "missing \"statements\"",
        ),
        (
            Format::Openvex,
            r#"{"statements": [{"vulnerability": {"name": "CVE-1"}, "status": "maybe"}]}"#,
            "statements[0]: unknown status \"maybe\"",
        ),
        (
            Format::Openvex,
            r#"{"statements": [{"vulnerability": {"name": "CVE-1"}}]}"#,
            "without \"status\"",
        ),
        (
            Format::Openvex,
            r#"{"statements": [{"products": [], "status": "fixed"}]}"#,
            "without \"vulnerability\" name",
        ),
        (
            Format::Openvex,
            r#"{"statements": [{"vulnerability": 7, "status": "fixed"}]}"#,
            "expected a vulnerability name or object",
        ),
        (
            Format::Openvex,
            r#"{"statements": [{"vulnerability": "CVE-1", "products": [true], "status": "fixed"}]}"#,
            "statements[0].products[0]",
        ),
        (
            Format::Openvex,
            r#"{"statements": "none"}"#,
            "expected an array",
        ),
        (
            Format::CyclonedxJson,
            r#"{"vulnerabilities": [{"id": "CVE-1", "analysis": {"state": "fine"}}]}"#,
            "unknown analysis.state \"fine\"",
        ),
        (
            Format::CyclonedxJson,
            r#"{"vulnerabilities": [{"analysis": {"state": "in_triage"}}]}"#,
            "vulnerability without \"id\"",
        ),
        (
            Format::CyclonedxJson,
            r#"["not", "a", "bom"]"#,
            "CycloneDX BOM object",
        ),
        (
            Format::Csaf,
            r#"{"vulnerabilities": [{"product_status": {"fixed": ["a"]}}]}"#,
            "neither \"cve\" nor \"ids\"",
        ),
        (
            Format::Csaf,
            r#"{"vulnerabilities": [{"cve": "CVE-1", "product_status": {"fixed": "a"}}]}"#,
            "vulnerabilities[0].product_status.fixed",
        ),
        (
            Format::Csaf,
            r#"{"vulnerabilities": [{"cve": "CVE-1"}]"#,
            "invalid JSON",
        ),
    ];
    for (format, doc, expected) in cases {
        let err = statements(format, doc.as_bytes(), &Limits::default())
            .expect_err(&format!("{format}: {doc}"));
        assert!(
            err.0.contains(expected),
            "{format}: {doc}\n  got: {err}\n  want: {expected}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The corpus

fn corpus() -> Option<PathBuf> {
    let dir = match std::env::var_os("EVAULT_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
    };
    if !dir.is_dir() {
        assert!(
            std::env::var("EVAULT_REQUIRE_CORPUS").as_deref() != Ok("1"),
            "EVAULT_REQUIRE_CORPUS=1 but there is no corpus at {}",
            dir.display()
        );
    }
    dir.is_dir().then_some(dir)
}

fn each(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

fn strings(v: &Value) -> Vec<&str> {
    each(v).filter_map(Value::as_str).collect()
}

/// The number of statements a VEX document holds, counted from its raw JSON by the documented
/// rule.
fn expected_statements(format: Format, doc: &Value) -> u64 {
    match format {
        Format::Openvex => each(&doc["statements"]).count() as u64,
        Format::CyclonedxJson => each(&doc["vulnerabilities"])
            .filter(|v| v["analysis"]["state"].is_string())
            .count() as u64,
        Format::Csaf => {
            let groups: HashMap<&str, Vec<&str>> = each(&doc["product_tree"]["product_groups"])
                .filter_map(|g| Some((g["group_id"].as_str()?, strings(&g["product_ids"]))))
                .collect();
            each(&doc["vulnerabilities"])
                .map(|v| csaf_statements(v, &groups))
                .sum()
        }
        other => panic!("{other} is not a VEX format"),
    }
}

/// CSAF: one per non-empty status group, except that `known_not_affected` counts one per
/// distinct justification among its products (no justification being one of them).
fn csaf_statements<'a>(vulnerability: &'a Value, groups: &HashMap<&str, Vec<&'a str>>) -> u64 {
    let mut justification: HashMap<&str, &str> = HashMap::new();
    let notes = each(&vulnerability["flags"])
        .filter_map(|f| Some((f["label"].as_str()?, f)))
        .chain(
            each(&vulnerability["threats"])
                .filter(|t| t["category"] == "impact")
                .filter_map(|t| Some((t["details"].as_str()?, t))),
        );
    for (text, note) in notes {
        let members = strings(&note["group_ids"])
            .into_iter()
            .filter_map(|g| groups.get(g))
            .flatten()
            .copied();
        for product in strings(&note["product_ids"]).into_iter().chain(members) {
            justification.entry(product).or_insert(text);
        }
    }
    let Some(status) = vulnerability["product_status"].as_object() else {
        return 0;
    };
    let mut count = 0;
    for (group, products) in status {
        let products = strings(products);
        if group == "recommended" || products.is_empty() {
            continue;
        }
        if group == "known_not_affected" {
            let distinct: BTreeSet<Option<&str>> = products
                .iter()
                .map(|p| justification.get(p).copied())
                .collect();
            count += distinct.len() as u64;
        } else {
            count += 1;
        }
    }
    count
}

#[test]
fn corpus_vex_documents_give_every_statement() {
    let Some(corpus) = corpus() else {
        eprintln!("corpus not found; skipped (set EVAULT_CORPUS)");
        return;
    };
    let mut paths = Vec::new();
    for dir in std::fs::read_dir(corpus.join("vex")).unwrap() {
        let dir = dir.unwrap().path();
        if dir.is_dir() {
            paths.extend(std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()));
        }
    }
    paths.sort();
    assert!(!paths.is_empty());
    for path in paths {
        let bytes = std::fs::read(&path).unwrap();
        let name = path.strip_prefix(&corpus).unwrap().display().to_string();
        let detection = evault_schema::detect::detect(bytes.as_slice()).unwrap();
        let format = detection.format;
        let found = statements(format, bytes.as_slice(), &Limits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let raw: Value = serde_json::from_slice(&bytes).unwrap();
        let expected = expected_statements(format, &raw);
        let mut by_status = std::collections::BTreeMap::new();
        for s in &found.items {
            *by_status.entry(s.status.as_str()).or_insert(0) += 1;
        }
        let products: usize = found.items.iter().map(|s| s.products.len()).sum();
        println!(
            "{name}: {format} ({}) {} statements (independent count {expected}); {by_status:?}; {products} product ids",
            detection.kind, found.total
        );
        assert_eq!(found.total, expected, "{name}");
        assert_eq!(found.items.len() as u64, found.total, "{name}");
        assert!(
            found.items.iter().all(|s| !s.vulnerability.is_empty()),
            "{name}"
        );
    }
}
