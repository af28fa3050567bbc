//! Findings of scan reports: one table per format, each row a small generated document and the
//! findings it must give; truncation at the item limit; malformed documents; and a check of the
//! real-world corpus against counts computed here, independently, from the raw JSON.

mod support;

use std::io::{self, Read};
use std::path::PathBuf;

use evault_schema::Format;
use evault_schema::extract::scan::findings;
use evault_schema::extract::{Extracted, Finding, Limits, Severity};
use serde_json::{Value, json};
use support::{Dribble, Failing};

/// A finding with only an id and a severity; rows add the rest.
fn finding(id: &str, severity: Severity) -> Finding {
    Finding {
        id: id.to_string(),
        aliases: Vec::new(),
        severity,
        package: None,
        version: None,
        purl: None,
        fixed_version: None,
    }
}

trait With {
    fn aliases(self, aliases: &[&str]) -> Self;
    fn package(self, name: &str, version: Option<&str>) -> Self;
    fn purl(self, purl: &str) -> Self;
    fn fixed(self, version: &str) -> Self;
}

impl With for Finding {
    fn aliases(mut self, aliases: &[&str]) -> Self {
        self.aliases = aliases.iter().map(|a| a.to_string()).collect();
        self
    }
    fn package(mut self, name: &str, version: Option<&str>) -> Self {
        self.package = Some(name.to_string());
        self.version = version.map(str::to_string);
        self
    }
    fn purl(mut self, purl: &str) -> Self {
        self.purl = Some(purl.to_string());
        self
    }
    fn fixed(mut self, version: &str) -> Self {
        self.fixed_version = Some(version.to_string());
        self
    }
}

/// The order in which producers write the members that matter (`tool` before `results`,
/// `package` before `vulnerabilities` before `groups`, `components` before `vulnerabilities`).
const NATURAL: [&str; 7] = [
    "tool",
    "package",
    "metadata",
    "components",
    "vulnerabilities",
    "groups",
    "results",
];

#[derive(Debug, Clone, Copy)]
enum Order {
    /// Members in [`NATURAL`] order.
    Natural,
    /// Members in reverse: what an extractor needs comes after what needs it.
    Reversed,
}

/// `doc` as JSON text with object members in the given order (the rest sorted by name after
/// them): `json!` alone would always sort members by name.
fn to_json(doc: &Value, order: Order) -> Vec<u8> {
    fn write(v: &Value, order: Order, out: &mut String) {
        match v {
            Value::Object(map) => {
                let rank = |k: &str| {
                    let at = NATURAL.iter().position(|n| *n == k);
                    match (order, at) {
                        (Order::Natural, Some(i)) => i,
                        (Order::Reversed, Some(i)) => NATURAL.len() - i,
                        (_, None) => NATURAL.len() + 1,
                    }
                };
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort_by_key(|k| (rank(k), k.as_str()));
                out.push('{');
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::from(key.as_str()).to_string());
                    out.push(':');
                    write(&map[key], order, out);
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, order, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    write(doc, order, &mut out);
    out.into_bytes()
}

/// Extracts `doc` with its members in either order, read whole and a few bytes at a time: the
/// findings must not depend on either.
fn extract(format: Format, doc: &Value) -> Extracted<Finding> {
    let natural = to_json(doc, Order::Natural);
    let found = findings(format, natural.as_slice(), &Limits::default())
        .unwrap_or_else(|e| panic!("{format}: {e}\n{doc:#}"));
    let dribbled = findings(format, Dribble::new(&natural, 7), &Limits::default()).unwrap();
    assert_eq!(found, dribbled, "{format}: read a few bytes at a time");
    let reversed = to_json(doc, Order::Reversed);
    let found_reversed = findings(format, reversed.as_slice(), &Limits::default()).unwrap();
    assert_eq!(found, found_reversed, "{format}: members in reverse order");
    found
}

fn check_table(format: Format, rows: Vec<(&str, Value, Vec<Finding>)>) {
    for (scenario, doc, expected) in rows {
        let found = extract(format, &doc);
        assert_eq!(found.items, expected, "{format}: {scenario}");
        assert_eq!(found.total, expected.len() as u64, "{format}: {scenario}");
        assert!(!found.truncated, "{format}: {scenario}");
    }
}

fn sarif(runs: Value) -> Value {
    json!({"version": "2.1.0", "$schema": "https://json.schemastore.org/sarif-2.1.0.json", "runs": runs})
}

fn rule(id: &str, extra: Value) -> Value {
    let mut rule = json!({"id": id, "shortDescription": {"text": "..."}});
    if let (Some(r), Some(e)) = (rule.as_object_mut(), extra.as_object()) {
        r.extend(e.clone());
    }
    rule
}

#[test]
fn sarif_results_become_findings() {
    use Severity::*;
    let rows = vec![
        (
            "the rule's security-severity wins over the result's level",
            sarif(json!([{
                "tool": {"driver": {"name": "t", "rules": [
                    rule("R1", json!({"properties": {"security-severity": "9.1"}})),
                    rule("R2", json!({"properties": {"security-severity": 5.5}})),
                ]}},
                "results": [
                    {"ruleId": "R1", "level": "note", "message": {"text": "m"}},
                    {"ruleId": "R2", "ruleIndex": 1, "level": "error", "message": {"text": "m"}},
                ],
            }])),
            vec![finding("R1", Critical), finding("R2", Medium)],
        ),
        (
            "a zero or unparsable score falls back to the level, then the rule's default level",
            sarif(json!([{
                "tool": {"driver": {"name": "t", "rules": [
                    rule("Z", json!({"properties": {"security-severity": "0.0"}, "defaultConfiguration": {"level": "note"}})),
                    rule("X", json!({"properties": {"security-severity": "high"}})),
                ]}},
                "results": [
                    {"ruleId": "Z", "level": "warning", "message": {"text": "m"}},
                    {"ruleId": "Z", "message": {"text": "m"}},
                    {"ruleId": "X", "level": "error", "message": {"text": "m"}},
                    {"ruleId": "X", "message": {"text": "m"}},
                    {"ruleId": "X", "level": "none", "message": {"text": "m"}},
                ],
            }])),
            vec![
                finding("Z", Medium),
                finding("Z", Low),
                finding("X", High),
                finding("X", Unknown),
                finding("X", Unknown),
            ],
        ),
        (
            "the result's own security-severity wins over the rule's",
            sarif(json!([{
                "tool": {"driver": {"name": "t", "rules": [rule("R", json!({"properties": {"security-severity": "9.8"}}))]}},
                "results": [{"ruleId": "R", "properties": {"security-severity": "3.1"}, "message": {"text": "m"}}],
            }])),
            vec![finding("R", Low)],
        ),
        (
            "a result without ruleId is named by ruleIndex or rule.id; one naming no rule has an empty id",
            sarif(json!([{
                "tool": {"driver": {"name": "t", "rules": [
                    rule("A", json!({"properties": {"security-severity": "7.0"}})),
                    rule("B", json!({})),
                ]}},
                "results": [
                    {"ruleIndex": 0, "message": {"text": "m"}},
                    {"rule": {"index": 1}, "level": "warning", "message": {"text": "m"}},
                    {"rule": {"id": "A"}, "message": {"text": "m"}},
                    {"message": {"text": "m"}, "level": "error"},
                ],
            }])),
            vec![
                finding("A", High),
                finding("B", Medium),
                finding("A", High),
                finding("", High),
            ],
        ),
        (
            "a rule's default level",
            json!({"runs": [{
                "results": [{"ruleId": "L", "message": {"text": "m"}}],
                "tool": {"driver": {"name": "t", "rules": [rule("L", json!({"defaultConfiguration": {"level": "error"}}))]}},
            }], "version": "2.1.0"}),
            vec![finding("L", High)],
        ),
        (
            "Grype: the CVE inside the rule id is an alias, package lines come from the rule's help",
            sarif(json!([{
                "tool": {"driver": {"name": "grype", "rules": [rule("CVE-2005-2541-tar", json!({
                    "name": "DpkgMatcherExactDirectMatch",
                    "properties": {"security-severity": "7.8"},
                    "help": {"text": "Vulnerability CVE-2005-2541\nSeverity: low\nPackage: tar\nVersion: 1.34+dfsg-1.2\nFix Version: 1.35\nType: deb"},
                }))]}},
                "results": [{"ruleId": "CVE-2005-2541-tar", "message": {"text": "The path /usr/share/doc/tar reports tar at version 1.34"}}],
            }])),
            vec![
                finding("CVE-2005-2541-tar", High)
                    .aliases(&["CVE-2005-2541"])
                    .package("tar", Some("1.34+dfsg-1.2"))
                    .fixed("1.35"),
            ],
        ),
        (
            "Trivy: package lines of the result's message win over the shared rule's help; tags hold ids",
            sarif(json!([{
                "tool": {"driver": {"name": "Trivy", "rules": [rule("CVE-2011-3374", json!({
                    "properties": {"security-severity": "2.0", "tags": ["vulnerability", "GHSA-abcd-efgh-2345", "LOW"]},
                    "help": {"text": "Vulnerability CVE-2011-3374\nPackage: libapt-pkg6.0\nFixed Version: "},
                }))]}},
                "results": [
                    {"ruleId": "CVE-2011-3374", "ruleIndex": 0, "level": "note", "message": {"text": "Package: apt\nInstalled Version: 2.6.1\nVulnerability CVE-2011-3374\nSeverity: LOW\nFixed Version: 2.6.2, 2.7.0\nLink: [x](y)"}},
                ],
            }])),
            vec![
                finding("CVE-2011-3374", Low)
                    .aliases(&["GHSA-abcd-efgh-2345"])
                    .package("apt", Some("2.6.1"))
                    .fixed("2.6.2"),
            ],
        ),
        (
            "Dependency-Track: the purl of a logical location names the package",
            sarif(json!([{
                "tool": {"driver": {"name": "Dependency-Track", "rules": [{"id": "Vuln-1", "name": "Vuln-1"}]}},
                "results": [{
                    "ruleId": "Vuln-1", "level": "error", "message": {"text": "This is a description"},
                    "locations": [{"logicalLocations": [
                        {"fullyQualifiedName": "not-a-purl"},
                        {"fullyQualifiedName": "pkg:maven/org.acme/component1@1.1.4?type=jar"},
                    ]}],
                    "properties": {"name": "Component 1", "cvssV3BaseScore": ""},
                }],
            }])),
            vec![
                finding("Vuln-1", High)
                    .package("component1", Some("1.1.4"))
                    .purl("pkg:maven/org.acme/component1@1.1.4?type=jar"),
            ],
        ),
        (
            "every run counts; null and missing results are empty; SARIF 2.2 is read",
            json!({"version": "2.2", "runs": [
                {"tool": {"driver": {"name": "a"}}, "results": [{"ruleId": "A", "message": {"text": "m"}}]},
                {"tool": {"driver": {"name": "b"}}, "results": null},
                {"tool": {"driver": {"name": "c", "rules": null}}},
                {"tool": {"driver": {"name": "d"}}, "results": [{"ruleId": "D", "kind": "pass", "suppressions": [{"kind": "external"}], "message": {"id": "default", "arguments": ["x"]}}]},
            ]}),
            vec![finding("A", Unknown), finding("D", Unknown)],
        ),
        ("no runs at all", sarif(json!([])), vec![]),
    ];
    check_table(Format::Sarif, rows);
}

fn grype(matches: Value) -> Value {
    json!({
        "matches": matches,
        "source": {"type": "image"},
        "distro": {"name": "debian"},
        "descriptor": {"name": "grype", "version": "0.66.0"},
    })
}

fn grype_match(id: &str, severity: &str, fix: Value, related: Value) -> Value {
    json!({
        "vulnerability": {"id": id, "dataSource": "x", "namespace": "nvd:cpe", "severity": severity, "urls": [], "description": "long text", "cvss": [], "fix": fix, "advisories": []},
        "relatedVulnerabilities": related,
        "matchDetails": [{"type": "exact-direct-match"}],
        "artifact": {"id": "1", "name": "uri", "version": "0.10.1", "type": "gem", "locations": [], "purl": "pkg:gem/uri@0.10.1", "upstreams": []},
    })
}

#[test]
fn grype_matches_become_findings() {
    use Severity::*;
    let rows = vec![
        (
            "a fixed match carries its first fix version and its related ids as aliases",
            grype(json!([grype_match(
                "GHSA-hv5j-3h9f-99c2",
                "High",
                json!({"versions": ["0.10.2", "0.12.1"], "state": "fixed"}),
                json!([{"id": "CVE-2023-28755"}, {"id": "GHSA-hv5j-3h9f-99c2"}, {"id": "CVE-2023-28755"}]),
            )])),
            vec![
                finding("GHSA-hv5j-3h9f-99c2", High)
                    .aliases(&["CVE-2023-28755"])
                    .package("uri", Some("0.10.1"))
                    .purl("pkg:gem/uri@0.10.1")
                    .fixed("0.10.2"),
            ],
        ),
        (
            "not-fixed, wont-fix and unknown fix states carry no fix; Negligible is low",
            grype(json!([
                grype_match(
                    "CVE-1",
                    "Negligible",
                    json!({"versions": ["9"], "state": "wont-fix"}),
                    json!(null)
                ),
                grype_match(
                    "CVE-2",
                    "Unknown",
                    json!({"versions": [], "state": "not-fixed"}),
                    json!([])
                ),
                grype_match("CVE-3", "Critical", json!(null), json!([])),
            ])),
            vec![
                finding("CVE-1", Low)
                    .package("uri", Some("0.10.1"))
                    .purl("pkg:gem/uri@0.10.1"),
                finding("CVE-2", Unknown)
                    .package("uri", Some("0.10.1"))
                    .purl("pkg:gem/uri@0.10.1"),
                finding("CVE-3", Critical)
                    .package("uri", Some("0.10.1"))
                    .purl("pkg:gem/uri@0.10.1"),
            ],
        ),
        (
            "ignoredMatches are not findings",
            json!({"matches": [], "ignoredMatches": [grype_match("CVE-9", "High", json!(null), json!([]))], "descriptor": {"name": "grype"}}),
            vec![],
        ),
    ];
    check_table(Format::GrypeJson, rows);
}

fn trivy(results: Value) -> Value {
    json!({"SchemaVersion": 2, "ArtifactName": "alpine:3.10", "ArtifactType": "container_image", "Results": results})
}

#[test]
fn trivy_vulnerabilities_become_findings_and_misconfigurations_do_not() {
    use Severity::*;
    let rows = vec![
        (
            "a vulnerability with a purl and a list of fixed versions",
            trivy(json!([{
                "Target": "alpine:3.10 (alpine 3.10.9)", "Class": "os-pkgs", "Type": "alpine",
                "Vulnerabilities": [{
                    "VulnerabilityID": "CVE-2021-36159", "PkgID": "apk-tools@2.10.6-r0", "PkgName": "apk-tools",
                    "PkgIdentifier": {"PURL": "pkg:apk/alpine/apk-tools@2.10.6-r0?arch=x86_64", "UID": "1"},
                    "InstalledVersion": "2.10.6-r0", "FixedVersion": "2.10.7-r0, 2.12.6-r0", "Status": "fixed",
                    "Severity": "CRITICAL", "VendorIDs": null, "CVSS": {"nvd": {"V3Score": 9.1}},
                }],
            }])),
            vec![
                finding("CVE-2021-36159", Critical)
                    .package("apk-tools", Some("2.10.6-r0"))
                    .purl("pkg:apk/alpine/apk-tools@2.10.6-r0?arch=x86_64")
                    .fixed("2.10.7-r0"),
            ],
        ),
        (
            "misconfigurations, secrets and licenses are skipped; every result's vulnerabilities count",
            trivy(json!([
                {"Target": "main.tf", "Class": "config", "Type": "terraform",
                 "MisconfSummary": {"Successes": 1, "Failures": 1},
                 "Misconfigurations": [{"ID": "AVD-AWS-0086", "Severity": "HIGH", "Status": "FAIL"}]},
                {"Target": "env", "Class": "secret", "Secrets": [{"RuleID": "github-pat", "Severity": "CRITICAL"}]},
                {"Target": "go.mod", "Class": "lang-pkgs", "Type": "gomod", "Licenses": [{"Name": "MIT"}],
                 "Vulnerabilities": [
                    {"VulnerabilityID": "GHSA-aaaa-bbbb-cccc", "PkgName": "x", "InstalledVersion": "1.0.0", "FixedVersion": "", "Severity": "MEDIUM"},
                    {"VulnerabilityID": "CVE-2024-1", "PkgName": "y", "Severity": "UNKNOWN"},
                 ]},
                {"Target": "empty", "Class": "lang-pkgs", "Vulnerabilities": null},
            ])),
            vec![
                finding("GHSA-aaaa-bbbb-cccc", Medium).package("x", Some("1.0.0")),
                finding("CVE-2024-1", Unknown).package("y", None),
            ],
        ),
        (
            "a report without Results has no findings",
            json!({"SchemaVersion": 2, "ArtifactName": "x"}),
            vec![],
        ),
    ];
    check_table(Format::TrivyJson, rows);
}

fn osv(packages: Value) -> Value {
    json!({"results": [{"source": {"path": "/src/go.mod", "type": "lockfile"}, "packages": packages}]})
}

#[test]
fn osv_scanner_vulnerabilities_become_findings_per_package() {
    use Severity::*;
    let go = json!({"name": "github.com/gogo/protobuf", "version": "1.3.1", "ecosystem": "Go"});
    let go_purl = "pkg:golang/github.com/gogo/protobuf@1.3.1";
    let rows = vec![
        (
            "the database label wins, then the record's CVSS v3 vector, then the group's max_severity",
            osv(json!([{
                "package": go,
                "vulnerabilities": [
                    {"id": "GHSA-c3h9-896r-86jm", "aliases": ["CVE-2021-3121"], "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L"}], "database_specific": {"severity": "HIGH", "cwe_ids": []}},
                    {"id": "RUSTSEC-2022-0013", "aliases": null, "severity": [{"type": "CVSS_V2", "score": "AV:N/AC:L/Au:N/C:C/I:C/A:C"}, {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H"}], "database_specific": {"severity": 3}},
                    {"id": "GO-2021-0053", "aliases": ["CVE-2021-3121", "GHSA-c3h9-896r-86jm", "GO-2021-0053"], "database_specific": {"url": "https://pkg.go.dev/vuln/GO-2021-0053"}},
                    {"id": "GO-2099-0001"},
                ],
                "groups": [
                    {"ids": ["GHSA-c3h9-896r-86jm", "GO-2021-0053"], "max_severity": "9.8"},
                    {"ids": ["GO-2099-0001"], "max_severity": ""},
                ],
            }])),
            vec![
                finding("GHSA-c3h9-896r-86jm", High)
                    .aliases(&["CVE-2021-3121"])
                    .package("github.com/gogo/protobuf", Some("1.3.1"))
                    .purl(go_purl),
                finding("RUSTSEC-2022-0013", High)
                    .package("github.com/gogo/protobuf", Some("1.3.1"))
                    .purl(go_purl),
                finding("GO-2021-0053", Critical)
                    .aliases(&["CVE-2021-3121", "GHSA-c3h9-896r-86jm"])
                    .package("github.com/gogo/protobuf", Some("1.3.1"))
                    .purl(go_purl),
                finding("GO-2099-0001", Unknown)
                    .package("github.com/gogo/protobuf", Some("1.3.1"))
                    .purl(go_purl),
            ],
        ),
        (
            "purls for the obvious ecosystems only; package info may follow the vulnerabilities",
            json!({"results": [
                {"source": {"path": "a"}, "packages": [
                    {"vulnerabilities": [{"id": "GHSA-1"}], "package": {"name": "@babel/core", "version": "7.0.0", "ecosystem": "npm"}},
                    {"package": {"name": "Django", "version": "3.2", "ecosystem": "PyPI"}, "vulnerabilities": [{"id": "PYSEC-1"}, {"id": "PYSEC-2"}]},
                ]},
                {"source": {"path": "b"}, "packages": [
                    {"package": {"name": "org.acme:lib", "version": "1.0", "ecosystem": "Maven"}, "vulnerabilities": [{"id": "GHSA-2"}]},
                    {"package": {"name": "regex", "version": "1.5.1", "ecosystem": "crates.io"}, "vulnerabilities": [{"id": "RUSTSEC-1"}]},
                    {"package": {"name": "openssl", "version": "3.0.8", "ecosystem": "Debian:12"}, "vulnerabilities": [{"id": "DSA-1"}]},
                    {"package": {"name": "quiet", "version": "1", "ecosystem": "npm"}, "vulnerabilities": []},
                ]},
            ]}),
            vec![
                finding("GHSA-1", Unknown)
                    .package("@babel/core", Some("7.0.0"))
                    .purl("pkg:npm/%40babel/core@7.0.0"),
                finding("PYSEC-1", Unknown)
                    .package("Django", Some("3.2"))
                    .purl("pkg:pypi/django@3.2"),
                finding("PYSEC-2", Unknown)
                    .package("Django", Some("3.2"))
                    .purl("pkg:pypi/django@3.2"),
                finding("GHSA-2", Unknown)
                    .package("org.acme:lib", Some("1.0"))
                    .purl("pkg:maven/org.acme/lib@1.0"),
                finding("RUSTSEC-1", Unknown)
                    .package("regex", Some("1.5.1"))
                    .purl("pkg:cargo/regex@1.5.1"),
                finding("DSA-1", Unknown).package("openssl", Some("3.0.8")),
            ],
        ),
        ("no results", json!({"results": []}), vec![]),
    ];
    check_table(Format::OsvScannerJson, rows);
}

fn bom(extra: Value) -> Value {
    let mut doc = json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1});
    if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    doc
}

#[test]
fn cyclonedx_vulnerabilities_become_findings_per_affected_ref() {
    use Severity::*;
    let components = json!([
        {"bom-ref": "app", "type": "application", "name": "app", "components": [
            {"bom-ref": "lib-a", "type": "library", "name": "a", "version": "1.0", "purl": "pkg:npm/a@1.0"},
        ]},
        {"bom-ref": "pkg:npm/b@2.0", "type": "library", "name": "b", "version": "2.0", "purl": "pkg:npm/b@2.0"},
    ]);
    let vulnerabilities = json!([
        {"id": "CVE-2021-1", "references": [{"id": "GHSA-x", "source": {"name": "GitHub"}}, {"id": "CVE-2021-1"}],
         "ratings": [{"severity": "medium", "score": 5.0}, {"severity": "critical", "method": "CVSSv31"}, {"severity": "none", "score": 0}],
         "affects": [{"ref": "lib-a"}, {"ref": "pkg:npm/b@2.0", "versions": [{"version": "2.0", "status": "affected"}]}]},
        {"id": "CVE-2021-2", "ratings": [{"score": 7.1, "method": "CVSSv31"}], "affects": [{"ref": "root"}]},
        {"id": "CVE-2021-3", "ratings": [{"severity": "none", "method": "CVSSv31", "vector": "AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:H/A:N"}], "affects": [{"ref": "pkg:npm/c@3.0"}, {"ref": "unknown-ref"}]},
        {"id": "CVE-2021-4", "ratings": null},
    ]);
    let expected = vec![
        finding("CVE-2021-1", Critical)
            .aliases(&["GHSA-x"])
            .package("a", Some("1.0"))
            .purl("pkg:npm/a@1.0"),
        finding("CVE-2021-1", Critical)
            .aliases(&["GHSA-x"])
            .package("b", Some("2.0"))
            .purl("pkg:npm/b@2.0"),
        finding("CVE-2021-2", High).package("root-product", Some("9")),
        finding("CVE-2021-3", High)
            .package("pkg:npm/c@3.0", None)
            .purl("pkg:npm/c@3.0"),
        finding("CVE-2021-3", High).package("unknown-ref", None),
        finding("CVE-2021-4", Unknown),
    ];
    let metadata = json!({"component": {"bom-ref": "root", "type": "application", "name": "root-product", "version": "9"}});
    let rows = vec![
        (
            "refs resolve to components wherever they are",
            bom(
                json!({"metadata": metadata, "components": components, "vulnerabilities": vulnerabilities}),
            ),
            expected,
        ),
        (
            "an SBOM without vulnerabilities",
            bom(json!({"components": components})),
            vec![],
        ),
    ];
    check_table(Format::CyclonedxJson, rows);
}

#[test]
fn sarif_results_on_both_sides_of_the_tool_keep_their_order() {
    let doc = r#"{"version": "2.1.0", "runs": [{
        "results": [{"ruleId": "A", "message": {"text": "m"}}, {"ruleId": "B", "message": {"text": "m"}}],
        "tool": {"driver": {"name": "t", "rules": [
            {"id": "A", "properties": {"security-severity": "9.0"}},
            {"id": "B", "properties": {"security-severity": "1.0"}}
        ]}},
        "results": [{"ruleId": "B", "message": {"text": "m"}}]
    }]}"#;
    for max_items in [1, 2, 3] {
        let found = findings(Format::Sarif, doc.as_bytes(), &Limits { max_items }).unwrap();
        let all = [
            finding("A", Severity::Critical),
            finding("B", Severity::Low),
            finding("B", Severity::Low),
        ];
        assert_eq!(found.items, all[..max_items]);
        assert_eq!(found.total, 3);
    }
}

#[test]
fn a_leading_byte_order_mark_is_tolerated() {
    let doc = sarif(
        json!([{"tool": {"driver": {"name": "t"}}, "results": [{"ruleId": "R", "level": "error", "message": {"text": "m"}}]}]),
    );
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend(serde_json::to_vec(&doc).unwrap());
    for seed in 1..8 {
        let found = findings(
            Format::Sarif,
            Dribble::new(&bytes, seed),
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(found.items, [finding("R", Severity::High)]);
    }
    // Only at the very start: elsewhere it is not JSON.
    let err = findings(Format::Sarif, &b" \xEF\xBB\xBF{}"[..], &Limits::default()).unwrap_err();
    assert!(err.0.contains("invalid JSON"), "{err}");
}

#[test]
fn other_formats_are_not_scans() {
    for format in [
        Format::Openvex,
        Format::SpdxJson,
        Format::Csaf,
        Format::Text,
        Format::Unknown,
    ] {
        let err = findings(format, &b"{}"[..], &Limits::default()).unwrap_err();
        assert!(err.0.contains("is not a scan format"), "{format}: {err}");
    }
    // CycloneDX XML is a BOM that may hold vulnerabilities, but they are not read (yet).
    let empty = findings(Format::CyclonedxXml, &b"<bom/>"[..], &Limits::default()).unwrap();
    assert_eq!(empty.total, 0);
}

/// Generated documents with `n` findings, for each format, with results/vulnerabilities placed
/// before the objects they need (so that the waiting buffers are exercised too).
fn documents_with(n: usize) -> Vec<(Format, Value)> {
    let ids = |prefix: &str| {
        (0..n)
            .map(move |i| format!("{prefix}-{i}"))
            .collect::<Vec<_>>()
    };
    let sarif_results: Vec<Value> = ids("R")
        .iter()
        .map(|id| json!({"ruleId": id, "message": {"text": "m"}}))
        .collect();
    let half = n / 2;
    vec![
        (
            Format::Sarif,
            json!({"version": "2.1.0", "runs": [
                {"results": sarif_results[..half], "tool": {"driver": {"name": "t"}}},
                {"tool": {"driver": {"name": "t"}}, "results": sarif_results[half..]},
            ]}),
        ),
        (
            Format::GrypeJson,
            grype(Value::Array(
                ids("CVE")
                    .iter()
                    .map(|id| grype_match(id, "High", json!(null), json!([])))
                    .collect(),
            )),
        ),
        (
            Format::TrivyJson,
            trivy(json!([
                {"Target": "a", "Vulnerabilities": ids("CVE")[..half].iter().map(|id| json!({"VulnerabilityID": id})).collect::<Vec<_>>()},
                {"Target": "b", "Vulnerabilities": ids("CVE")[half..].iter().map(|id| json!({"VulnerabilityID": id})).collect::<Vec<_>>()},
            ])),
        ),
        (
            Format::OsvScannerJson,
            osv(json!([
                {"vulnerabilities": ids("GHSA")[..half].iter().map(|id| json!({"id": id})).collect::<Vec<_>>(), "groups": [], "package": {"name": "a", "ecosystem": "npm"}},
                {"vulnerabilities": ids("GHSA")[half..].iter().map(|id| json!({"id": id})).collect::<Vec<_>>()},
            ])),
        ),
        (
            Format::CyclonedxJson,
            bom(
                json!({"vulnerabilities": ids("CVE").iter().map(|id| json!({"id": id, "affects": [{"ref": "x"}]})).collect::<Vec<_>>(), "components": [{"bom-ref": "x", "name": "x"}]}),
            ),
        ),
    ]
}

#[test]
fn findings_past_the_limit_are_counted_not_kept() {
    for max_items in [0, 1, 7, 10, 25] {
        let limits = Limits { max_items };
        for ((format, doc), order) in documents_with(25)
            .into_iter()
            .flat_map(|d| [(d.clone(), Order::Natural), (d, Order::Reversed)])
        {
            let bytes = to_json(&doc, order);
            let found = findings(format, bytes.as_slice(), &limits).unwrap();
            let everything = findings(format, bytes.as_slice(), &Limits::default()).unwrap();
            assert_eq!(found.total, 25, "{format} at {max_items}");
            assert_eq!(
                found.items.len(),
                max_items.min(25),
                "{format} at {max_items}"
            );
            assert_eq!(found.truncated, max_items < 25, "{format} at {max_items}");
            // What is kept is the start of the document, in order.
            assert_eq!(
                found.items[..],
                everything.items[..found.items.len()],
                "{format}"
            );
        }
    }
}

/// A Grype report of `n` matches, generated as it is read, never held whole in memory.
struct GeneratedGrype {
    n: usize,
    next: usize,
    pending: Vec<u8>,
    finished: bool,
}

impl Read for GeneratedGrype {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pending.is_empty() && !self.finished {
            if self.next == 0 {
                self.pending
                    .extend_from_slice(br#"{"descriptor":{"name":"grype"},"matches":["#);
            }
            if self.next < self.n {
                let comma = if self.next > 0 { "," } else { "" };
                let m = format!(
                    r#"{comma}{{"vulnerability":{{"id":"CVE-2024-{}","severity":"Low","description":"{}"}},"artifact":{{"name":"p","version":"1"}}}}"#,
                    self.next,
                    "x".repeat(64)
                );
                self.pending.extend_from_slice(m.as_bytes());
                self.next += 1;
            } else {
                self.pending.extend_from_slice(b"]}");
                self.finished = true;
            }
        }
        let n = buf.len().min(self.pending.len());
        buf[..n].copy_from_slice(&self.pending[..n]);
        self.pending.drain(..n);
        Ok(n)
    }
}

#[test]
fn a_big_report_streams_through_with_a_small_limit() {
    let reader = GeneratedGrype {
        n: 100_000,
        next: 0,
        pending: Vec::new(),
        finished: false,
    };
    let found = findings(Format::GrypeJson, reader, &Limits { max_items: 3 }).unwrap();
    assert_eq!(found.total, 100_000);
    assert_eq!(found.items.len(), 3);
    assert_eq!(found.items[2].id, "CVE-2024-2");
    assert!(found.truncated);
}

#[test]
fn malformed_reports_are_errors_that_say_why() {
    // Components nest components: the walk stops at serde_json's recursion limit, not the stack.
    let deep = format!(
        "{{\"vulnerabilities\": [], \"components\": [{}]}}",
        "{\"bom-ref\": \"x\", \"components\": [".repeat(5_000) + &"]}".repeat(5_000)
    );
    let cases: Vec<(Format, String, &str)> = vec![
        (Format::Sarif, "".into(), "invalid JSON"),
        (Format::Sarif, "{\"runs\": [".into(), "invalid JSON"),
        (Format::Sarif, "[1, 2]".into(), "SARIF log object"),
        (
            Format::Sarif,
            r#"{"version": "2.1.0"}"#.into(),
            "missing \"runs\"",
        ),
        (
            Format::Sarif,
            r#"{"version": "1.0.0", "runs": []}"#.into(),
            "SARIF version \"1.0.0\" is not supported",
        ),
        (
            Format::Sarif,
            r#"{"runs": {"a": 1}}"#.into(),
            "expected an array",
        ),
        (
            Format::Sarif,
            r#"{"runs": [{"results": [{"ruleId": 5}]}]}"#.into(),
            "runs[0].results[0].ruleId",
        ),
        (
            Format::Sarif,
            r#"{"runs": []} trailing"#.into(),
            "trailing characters",
        ),
        (
            Format::GrypeJson,
            r#"{"descriptor": {}}"#.into(),
            "missing \"matches\"",
        ),
        (
            Format::GrypeJson,
            r#"{"matches": [{"vulnerability": {"severity": "High"}}]}"#.into(),
            "matches[0].vulnerability: missing field `id`",
        ),
        (Format::CyclonedxJson, deep, "recursion limit exceeded"),
        (
            Format::TrivyJson,
            r#"{"SchemaVersion": 1, "Results": []}"#.into(),
            "SchemaVersion",
        ),
        (
            Format::TrivyJson,
            r#"{"SchemaVersion": 2, "Results": [{"Vulnerabilities": [{"PkgName": "x"}]}]}"#.into(),
            "VulnerabilityID",
        ),
        (
            Format::OsvScannerJson,
            r#"{"packages": []}"#.into(),
            "missing \"results\"",
        ),
        (
            Format::OsvScannerJson,
            r#"{"results": [{"packages": [{"vulnerabilities": [{"aliases": []}]}]}]}"#.into(),
            "results[0].packages[0].vulnerabilities[0]: missing field `id`",
        ),
        (
            Format::CyclonedxJson,
            r#"{"bomFormat": "CycloneDX", "vulnerabilities": [{"ratings": []}]}"#.into(),
            "vulnerability without \"id\"",
        ),
        (
            Format::CyclonedxJson,
            r#"{"vulnerabilities": [{"id": "x", "affects": "all"}]}"#.into(),
            "vulnerabilities[0].affects",
        ),
    ];
    for (format, doc, expected) in cases {
        let err = findings(format, doc.as_bytes(), &Limits::default())
            .expect_err(&format!("{format}: {doc:.80}"));
        assert!(
            err.0.contains(expected),
            "{format}: {doc:.80}\n  got: {err}\n  want: {expected}"
        );
        assert!(err.0.len() < 400, "{err}");
    }
    // Deep nesting inside a member that is skipped costs neither stack nor memory.
    let skipped = format!(
        "{{\"matches\": [{{\"vulnerability\": {{\"id\": \"x\", \"cvss\": {}{}}}}}]}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let found = findings(Format::GrypeJson, skipped.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(found.total, 1);

    let err = findings(Format::GrypeJson, Failing, &Limits::default()).unwrap_err();
    assert!(err.0.contains("disk on fire"), "{err}");
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

fn len(v: &Value) -> u64 {
    v.as_array().map_or(0, |a| a.len() as u64)
}

fn each(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

/// The number of findings a report holds, counted from its raw JSON by the documented rule.
fn expected_findings(format: Format, doc: &Value) -> u64 {
    match format {
        Format::Sarif => each(&doc["runs"]).map(|run| len(&run["results"])).sum(),
        Format::GrypeJson => len(&doc["matches"]),
        Format::TrivyJson => each(&doc["Results"])
            .map(|r| len(&r["Vulnerabilities"]))
            .sum(),
        Format::OsvScannerJson => each(&doc["results"])
            .flat_map(|r| each(&r["packages"]))
            .map(|p| len(&p["vulnerabilities"]))
            .sum(),
        Format::CyclonedxJson => each(&doc["vulnerabilities"])
            .map(|v| len(&v["affects"]).max(1))
            .sum(),
        other => panic!("{other} is not a scan format"),
    }
}

#[test]
fn corpus_scan_reports_give_every_finding() {
    let Some(corpus) = corpus() else {
        eprintln!("corpus not found; skipped (set EVAULT_CORPUS)");
        return;
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(corpus.join("scan"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e != "md"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty());
    for path in paths {
        let bytes = std::fs::read(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let detection = evault_schema::detect::detect(bytes.as_slice()).unwrap();
        let format = detection.format;
        let found = findings(format, bytes.as_slice(), &Limits::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let raw: Value = serde_json::from_slice(&bytes).unwrap();
        let expected = expected_findings(format, &raw);
        let mut by_severity = std::collections::BTreeMap::new();
        for f in &found.items {
            *by_severity.entry(f.severity.as_str()).or_insert(0) += 1;
        }
        let with_package = found.items.iter().filter(|f| f.package.is_some()).count();
        let with_aliases = found.items.iter().filter(|f| !f.aliases.is_empty()).count();
        println!(
            "{name}: {format} {} findings (independent count {expected}); severities {by_severity:?}; \
             {with_package} with package, {with_aliases} with aliases",
            found.total
        );
        assert_eq!(found.total, expected, "{name}");
        assert_eq!(found.items.len() as u64, found.total, "{name}");
        assert!(!found.truncated, "{name}");
        assert!(
            found.items.iter().all(|f| !f.id.is_empty()),
            "{name}: a finding without id"
        );
    }
}
