//! Tests of SBOM component extraction: what each format yields (nested CycloneDX components,
//! licenses, hashes, SPDX purls), what is left out (the BOM's own subject, files, NOASSERTION),
//! the cap on kept components, malformed and hostile documents, a 64 MiB BOM read as a stream,
//! and the real SBOMs of the shared corpus against an independent count.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use evault_schema::Format;
use evault_schema::extract::sbom::{self, MAX_EVENT, MAX_LINE, MAX_NESTING, MAX_TEXT};
use evault_schema::extract::{Component, ExtractError, Extracted, Limits};

#[path = "support/mod.rs"]
mod support;
use support::{Dribble, Failing};

// ---------------------------------------------------------------------------------------------
// Helpers

/// Extracts `doc` whole and dribbled in tiny reads; the two must agree.
fn extract(format: Format, doc: &[u8], max_items: usize) -> Result<Extracted<Component>, String> {
    let limits = Limits { max_items };
    let whole = sbom::components(format, doc, &limits);
    let dribbled = sbom::components(format, Dribble::new(doc, doc.len() as u64), &limits);
    assert_eq!(
        whole,
        dribbled,
        "chunking changed the result for {:?}",
        String::from_utf8_lossy(&doc[..doc.len().min(200)])
    );
    whole.map_err(|ExtractError(message)| message)
}

fn names(extracted: &Extracted<Component>) -> Vec<&str> {
    extracted.items.iter().map(|c| c.name.as_str()).collect()
}

/// A component as expected: name, version, purl, licenses, hashes.
fn component(
    name: &str,
    version: Option<&str>,
    purl: Option<&str>,
    licenses: &[&str],
    hashes: &[(&str, &str)],
) -> Component {
    Component {
        name: name.into(),
        version: version.map(Into::into),
        purl: purl.map(Into::into),
        licenses: licenses.iter().map(|&l| l.into()).collect(),
        hashes: hashes
            .iter()
            .map(|&(a, h)| (a.into(), h.into()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn named(name: &str) -> Component {
    component(name, None, None, &[], &[])
}

struct Case {
    what: String,
    format: Format,
    doc: String,
    expect: Vec<Component>,
}

fn run(cases: Vec<Case>) {
    for case in cases {
        let got = extract(case.format, case.doc.as_bytes(), 1000)
            .unwrap_or_else(|e| panic!("{}: {e}", case.what));
        assert_eq!(got.items, case.expect, "{}", case.what);
        assert_eq!(got.total, case.expect.len() as u64, "{}", case.what);
        assert!(!got.truncated, "{}", case.what);
    }
}

// ---------------------------------------------------------------------------------------------
// What each format yields

/// A CycloneDX JSON BOM of `spec` with nested components, a subject, every license form and
/// fields that follow a nested list.
fn cyclonedx_json(spec: &str) -> String {
    format!(
        r#"{{
  "bomFormat": "CycloneDX", "specVersion": "{spec}", "version": 1,
  "metadata": {{"component": {{"type": "application", "name": "subject-app", "version": "9.9",
    "components": [{{"name": "subject-part"}}]}}}},
  "components": [
    {{"type": "library", "name": "parent", "version": "1.0", "purl": "pkg:npm/parent@1.0",
      "licenses": [{{"license": {{"id": "MIT", "name": "MIT License"}}}},
                   {{"license": {{"name": "Custom License", "text": {{"content": "long text"}}}}}},
                   {{"expression": "Apache-2.0 OR MIT"}},
                   {{"license": {{"id": "MIT"}}}}],
      "components": [
        {{"type": "library", "name": "child", "version": "1.1",
          "components": [{{"type": "library", "name": "grandchild"}}]}}
      ],
      "hashes": [{{"alg": "SHA-256", "content": "ABCDEF0123"}}, {{"alg": "SHA-1", "content": "99aa"}}],
      "properties": [{{"name": "after", "value": "the nested list"}}]}},
    {{"type": "library", "name": "", "version": "0"}},
    {{"type": "library", "version": "2", "components": [{{"name": "child-of-nameless"}}]}},
    {{"type": "library", "components": [{{"name": "early-child"}}], "name": "late-parent"}},
    {{"type": "library", "name": "plain", "version": "", "purl": null, "licenses": null}}
  ],
  "services": [{{"name": "a-service"}}],
  "dependencies": [{{"ref": "parent", "dependsOn": ["child"]}}]
}}"#
    )
}

fn cyclonedx_expected() -> Vec<Component> {
    vec![
        component(
            "parent",
            Some("1.0"),
            Some("pkg:npm/parent@1.0"),
            &["MIT", "Custom License", "Apache-2.0 OR MIT"],
            &[("SHA-256", "abcdef0123"), ("SHA-1", "99aa")],
        ),
        component("child", Some("1.1"), None, &[], &[]),
        named("grandchild"),
        named("child-of-nameless"),
        // A parent whose name follows its nested list comes after its children.
        named("early-child"),
        named("late-parent"),
        named("plain"),
    ]
}

#[test]
fn cyclonedx_json_components() {
    let mut cases: Vec<Case> = ["1.2", "1.3", "1.4", "1.5", "1.6"]
        .iter()
        .map(|spec| Case {
            what: format!("CycloneDX JSON {spec}: nested components, no subject"),
            format: Format::CyclonedxJson,
            doc: cyclonedx_json(spec),
            expect: cyclonedx_expected(),
        })
        .collect();
    cases.extend([
        Case {
            what: "no components".into(),
            format: Format::CyclonedxJson,
            doc: r#"{"bomFormat": "CycloneDX", "specVersion": "1.6", "metadata": {"component": {"name": "x"}}}"#.into(),
            expect: vec![],
        },
        Case {
            what: "null components".into(),
            format: Format::CyclonedxJson,
            doc: r#"{"bomFormat": "CycloneDX", "specVersion": "1.4", "components": null}"#.into(),
            expect: vec![],
        },
        Case {
            what: "a UTF-8 byte order mark".into(),
            format: Format::CyclonedxJson,
            doc: "\u{FEFF}{\"components\": [{\"name\": \"a\"}]}".into(),
            expect: vec![named("a")],
        },
    ]);
    run(cases);
}

fn cyclonedx_xml(spec: &str) -> String {
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<!-- a comment -->
<bom xmlns="http://cyclonedx.org/schema/bom/{spec}" serialNumber="urn:uuid:3e671687-395b-41f5-a30f-a58921a69b79" version="1">
  <metadata>
    <component type="application"><name>subject-app</name>
      <components><component type="library"><name>subject-part</name></component></components>
    </component>
  </metadata>
  <components>
    <component type="library">
      <name>parent</name>
      <version>1.0</version>
      <hashes>
        <hash alg="SHA-256">ABCDEF0123</hash>
        <hash alg="SHA-1">
          99aa
        </hash>
      </hashes>
      <licenses>
        <license><id>MIT</id><name>MIT License</name></license>
        <license><name>Custom License</name><text content-type="text/plain">long text</text></license>
      </licenses>
      <purl>pkg:npm/parent@1.0</purl>
      <components>
        <component type="library">
          <name>child</name><version>1.1</version>
          <components><component type="library"><name>grandchild</name></component></components>
        </component>
      </components>
    </component>
    <component type="library"><name>a &amp; b &#x41;&#66;</name><version><![CDATA[2.0<beta>]]></version>
      <licenses><expression>Apache-2.0 OR MIT</expression></licenses>
    </component>
    <component type="library"><name/><version>0</version></component>
    <component type="library"><version>3</version></component>
    <ext:component xmlns:ext="urn:example:extension"><ext:name>an extension</ext:name></ext:component>
  </components>
  <services><service><name>a-service</name></service></services>
  <dependencies><dependency ref="parent"/></dependencies>
</bom>
"#
    )
}

#[test]
fn cyclonedx_xml_components() {
    let expected = vec![
        component(
            "parent",
            Some("1.0"),
            Some("pkg:npm/parent@1.0"),
            &["MIT", "Custom License"],
            &[("SHA-256", "abcdef0123"), ("SHA-1", "99aa")],
        ),
        component("child", Some("1.1"), None, &[], &[]),
        named("grandchild"),
        component(
            "a & b AB",
            Some("2.0<beta>"),
            None,
            &["Apache-2.0 OR MIT"],
            &[],
        ),
    ];
    let mut cases: Vec<Case> = ["1.2", "1.3", "1.4", "1.5", "1.6"]
        .iter()
        .map(|spec| Case {
            what: format!("CycloneDX XML {spec}: nested components, no subject"),
            format: Format::CyclonedxXml,
            doc: cyclonedx_xml(spec),
            expect: expected.clone(),
        })
        .collect();
    cases.extend([
        Case {
            what: "a namespace prefix".into(),
            format: Format::CyclonedxXml,
            doc: r#"<c:bom xmlns:c="http://cyclonedx.org/schema/bom/1.4"><c:components>
                <c:component type="library"><c:name>a</c:name><c:version>1</c:version></c:component>
                <component><name>no namespace: not CycloneDX</name></component>
                </c:components></c:bom>"#
                .into(),
            expect: vec![component("a", Some("1"), None, &[], &[])],
        },
        Case {
            what: "entities are never expanded".into(),
            format: Format::CyclonedxXml,
            doc: r#"<?xml version="1.0"?>
<!DOCTYPE bom [
  <!ENTITY lol "lol">
  <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY xxe SYSTEM "file:///etc/passwd">
]>
<bom xmlns="http://cyclonedx.org/schema/bom/1.5"><components>
  <component type="library"><name>&lol3;</name><version>&xxe;</version></component>
</components></bom>"#
                .into(),
            expect: vec![component("&lol3;", Some("&xxe;"), None, &[], &[])],
        },
        Case {
            what: "an empty BOM".into(),
            format: Format::CyclonedxXml,
            doc: "\u{FEFF}<bom xmlns=\"http://cyclonedx.org/schema/bom/1.6\"/>".into(),
            expect: vec![],
        },
    ]);
    run(cases);
}

fn spdx_json(version: &str) -> String {
    format!(
        r#"{{
  "spdxVersion": "SPDX-{version}", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
  "name": "doc", "documentNamespace": "https://example.com/doc",
  "creationInfo": {{"created": "2024-01-01T00:00:00Z", "creators": ["Tool: test"]}},
  "packages": [
    {{"name": "alpha", "SPDXID": "SPDXRef-alpha", "versionInfo": "1.0",
      "licenseConcluded": "MIT", "licenseDeclared": "MIT",
      "externalRefs": [
        {{"referenceCategory": "SECURITY", "referenceType": "cpe23Type",
          "referenceLocator": "cpe:2.3:a:acme:alpha:1.0:*:*:*:*:*:*:*"}},
        {{"referenceCategory": "PACKAGE_MANAGER", "referenceType": "purl",
          "referenceLocator": "pkg:npm/alpha@1.0"}}],
      "checksums": [{{"algorithm": "SHA256", "checksumValue": "ABCDEF"}},
                    {{"algorithm": "SHA1", "checksumValue": "0123"}}],
      "hasFiles": ["SPDXRef-file"]}},
    {{"name": "beta", "SPDXID": "SPDXRef-beta", "versionInfo": "2",
      "licenseConcluded": "NOASSERTION", "licenseDeclared": "NONE",
      "externalRefs": [{{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                         "referenceLocator": "pkg:pypi/beta@2"}}]}},
    {{"name": "gamma", "SPDXID": "SPDXRef-gamma",
      "licenseConcluded": "Apache-2.0", "licenseDeclared": "(MIT OR Apache-2.0)",
      "externalRefs": [{{"referenceCategory": "OTHER", "referenceType": "purl",
                         "referenceLocator": "pkg:not/a-package-manager-ref"}}]}},
    {{"SPDXID": "SPDXRef-nameless", "versionInfo": "3"}}
  ],
  "files": [{{"fileName": "./alpha.js", "SPDXID": "SPDXRef-file",
              "checksums": [{{"algorithm": "SHA1", "checksumValue": "ffff"}}]}}],
  "relationships": [{{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": "SPDXRef-alpha"}}]
}}"#
    )
}

#[test]
fn spdx_json_packages() {
    let expected = vec![
        component(
            "alpha",
            Some("1.0"),
            Some("pkg:npm/alpha@1.0"),
            &["MIT"],
            &[("SHA256", "abcdef"), ("SHA1", "0123")],
        ),
        component("beta", Some("2"), Some("pkg:pypi/beta@2"), &[], &[]),
        component(
            "gamma",
            None,
            None,
            &["Apache-2.0", "(MIT OR Apache-2.0)"],
            &[],
        ),
    ];
    let mut cases: Vec<Case> = ["2.2", "2.3"]
        .iter()
        .map(|version| Case {
            what: format!("SPDX JSON {version}: packages, no files"),
            format: Format::SpdxJson,
            doc: spdx_json(version),
            expect: expected.clone(),
        })
        .collect();
    cases.push(Case {
        what: "no packages".into(),
        format: Format::SpdxJson,
        doc: r#"{"spdxVersion": "SPDX-2.3", "files": [{"fileName": "a"}]}"#.into(),
        expect: vec![],
    });
    run(cases);
}

const TAG_VALUE: &str = "SPDXVersion: SPDX-2.3
DataLicense: CC0-1.0
SPDXID: SPDXRef-DOCUMENT
DocumentComment: <text>This comment spans lines
PackageName: not-a-package
and ends here</text>
# PackageName: a comment, not a package

PackageName: alpha
SPDXID: SPDXRef-alpha
PackageVersion: 1.0
PackageSupplier: Organization: Acme
PackageChecksum: SHA256: ABCDEF
PackageChecksum: SHA1: 0123
ExternalRef: SECURITY cpe23Type cpe:2.3:a:acme:alpha:1.0:*:*:*:*:*:*:*
ExternalRef: PACKAGE-MANAGER purl pkg:npm/alpha@1.0
PackageLicenseConcluded: MIT
PackageLicenseDeclared: MIT
PackageDescription: <text>A description
PackageVersion: 9.9
over lines</text>
PackageCopyrightText: <text>Copyright Acme</text>

PackageName: beta
PackageVersion: 2
ExternalRef: PACKAGE_MANAGER purl pkg:pypi/beta@2
PackageLicenseConcluded: NOASSERTION
PackageLicenseDeclared: NONE

FileName: ./beta.py
SPDXID: SPDXRef-beta-file
FileChecksum: SHA1: ffff
PackageChecksum: SHA1: eeee

Relationship: SPDXRef-DOCUMENT DESCRIBES SPDXRef-alpha

PackageName: gamma
PackageLicenseDeclared: <text>LicenseRef-Custom</text>
PackageLicenseConcluded: <text>(MIT
OR Apache-2.0)</text>

PackageName:
PackageVersion: nameless

LicenseID: LicenseRef-Custom
ExtractedText: <text>PackageName: inside a license text
</text>
";

#[test]
fn spdx_tag_value_packages() {
    let expected = vec![
        component(
            "alpha",
            Some("1.0"),
            Some("pkg:npm/alpha@1.0"),
            &["MIT"],
            &[("SHA256", "abcdef"), ("SHA1", "0123")],
        ),
        // The stray PackageChecksum after FileName belongs to no package.
        component("beta", Some("2"), Some("pkg:pypi/beta@2"), &[], &[]),
        component(
            "gamma",
            None,
            None,
            &["LicenseRef-Custom", "(MIT\nOR Apache-2.0)"],
            &[],
        ),
    ];
    run(vec![
        Case {
            what: "tag-value with LF".into(),
            format: Format::SpdxTagValue,
            doc: TAG_VALUE.into(),
            expect: expected.clone(),
        },
        Case {
            what: "tag-value with CRLF".into(),
            format: Format::SpdxTagValue,
            doc: TAG_VALUE.replace('\n', "\r\n"),
            expect: expected.clone(),
        },
        Case {
            what: "tag-value without a final newline".into(),
            format: Format::SpdxTagValue,
            doc: "SPDXVersion: SPDX-2.2\nPackageName: a".into(),
            expect: vec![named("a")],
        },
    ]);
}

#[test]
fn overlong_tag_value_lines_are_skipped_but_text_blocks_still_end() {
    let long = "y".repeat(MAX_LINE + 10);
    // A one-line `<text>` value whose `</text>` straddles the point where the line is cut.
    let prefix = "PackageSummary: <text>";
    let straddle = format!("{prefix}{}</text>", "y".repeat(MAX_LINE - prefix.len() - 4));
    let doc = format!(
        "SPDXVersion: SPDX-2.3\n\
         PackageName: alpha\n\
         PackageVersion: {long}\n\
         PackageComment: <text>start\n{long}</text>\n\
         PackageLicenseDeclared: MIT\n\
         PackageDescription: <text>{long}\n\
         PackageVersion: 9</text>\n\
         {straddle}\n\
         PackageChecksum: SHA256: AA\n\
         PackageName: {long}\n\
         PackageVersion: 2\n\
         PackageName: beta\n"
    );
    // The package named by an overlong line has no usable name: it is not counted, and its
    // version does not land on alpha.
    let got = extract(Format::SpdxTagValue, doc.as_bytes(), 10).unwrap();
    assert_eq!(
        got.items,
        vec![
            component("alpha", None, None, &["MIT"], &[("SHA256", "aa")]),
            named("beta")
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// The cap on kept components

#[test]
fn truncation_keeps_the_first_and_counts_all() {
    let cdx_json = {
        let parents: Vec<String> = (0..3)
            .map(|p| {
                format!(
                    r#"{{"name": "p{p}", "components": [{{"name": "c{p}a"}}, {{"name": "c{p}b"}}], "version": "{p}"}}"#
                )
            })
            .collect();
        format!(r#"{{"components": [{}]}}"#, parents.join(","))
    };
    let cdx_xml = {
        let parents: String = (0..3)
            .map(|p| {
                format!(
                    "<component><name>p{p}</name><version>{p}</version><components>\
                     <component><name>c{p}a</name></component>\
                     <component><name>c{p}b</name></component></components></component>"
                )
            })
            .collect();
        format!(
            r#"<bom xmlns="http://cyclonedx.org/schema/bom/1.5"><components>{parents}</components></bom>"#
        )
    };
    let spdx_json = {
        let packages: Vec<String> = ["p0", "c0a", "c0b", "p1", "c1a", "c1b", "p2", "c2a", "c2b"]
            .iter()
            .map(|n| format!(r#"{{"name": "{n}", "versionInfo": "{}"}}"#, &n[1..2]))
            .collect();
        format!(r#"{{"packages": [{}]}}"#, packages.join(","))
    };
    let tag_value: String = std::iter::once("SPDXVersion: SPDX-2.3\n".to_string())
        .chain(
            ["p0", "c0a", "c0b", "p1", "c1a", "c1b", "p2", "c2a", "c2b"]
                .iter()
                .map(|n| format!("PackageName: {n}\nPackageVersion: {}\n", &n[1..2])),
        )
        .collect();
    for (format, doc) in [
        (Format::CyclonedxJson, cdx_json),
        (Format::CyclonedxXml, cdx_xml),
        (Format::SpdxJson, spdx_json),
        (Format::SpdxTagValue, tag_value),
    ] {
        let got = extract(format, doc.as_bytes(), 4).unwrap();
        assert_eq!(names(&got), ["p0", "c0a", "c0b", "p1"], "{format}");
        // Fields after a nested list still reach a kept parent.
        assert_eq!(got.items[3].version.as_deref(), Some("1"), "{format}");
        assert_eq!((got.total, got.truncated), (9, true), "{format}");

        let none = extract(format, doc.as_bytes(), 0).unwrap();
        assert_eq!((none.items.len(), none.total, none.truncated), (0, 9, true));

        let all = extract(format, doc.as_bytes(), 9).unwrap();
        assert_eq!((all.items.len(), all.total, all.truncated), (9, 9, false));
    }
}

// ---------------------------------------------------------------------------------------------
// Malformed and hostile documents

#[test]
fn malformed_documents_are_errors_that_say_why() {
    let cases: &[(Format, &str, &[&str])] = &[
        (
            Format::CyclonedxJson,
            r#"{"bomFormat": "CycloneDX", "components": [{"name": "a"},"#,
            &[
                "invalid CycloneDX JSON",
                "EOF while parsing",
                "line 1 column",
            ],
        ),
        (
            Format::CyclonedxJson,
            "{\"bomFormat\": \"CycloneDX\",\n \"components\": {\"name\": \"a\"}}",
            &[
                "invalid type: map, expected a list of components",
                "line 2 column",
            ],
        ),
        (
            Format::CyclonedxJson,
            r#"{"components": ["a"]}"#,
            &["expected a CycloneDX component object"],
        ),
        (
            Format::CyclonedxJson,
            r#"{"components": [{"name": 5}]}"#,
            &["invalid type: integer `5`"],
        ),
        (
            Format::CyclonedxJson,
            r#"{"components": [{"name": "a", "licenses": {"id": "MIT"}}]}"#,
            &["invalid type: map"],
        ),
        (
            Format::CyclonedxJson,
            "[]",
            &["expected a CycloneDX BOM object"],
        ),
        (Format::CyclonedxJson, "{} {}", &["trailing characters"]),
        (Format::CyclonedxJson, "", &["EOF while parsing"]),
        (
            Format::SpdxJson,
            r#"{"spdxVersion": "SPDX-2.3", "packages": "none"}"#,
            &["invalid SPDX JSON", "expected a list of packages"],
        ),
        (
            Format::SpdxJson,
            r#"{"packages": [{"name": "a", "checksums": [{"algorithm": "SHA1""#,
            &["EOF while parsing"],
        ),
        (
            Format::CyclonedxXml,
            "this is not XML at all",
            &["invalid CycloneDX XML", "text outside the root element"],
        ),
        (Format::CyclonedxXml, "", &["no root element"]),
        (
            Format::CyclonedxXml,
            r#"<bom xmlns="http://cyclonedx.org/schema/bom/1.5"><components><component><name>a</nam></component></components></bom>"#,
            &["invalid CycloneDX XML at byte"],
        ),
        (
            Format::CyclonedxXml,
            r#"<bom xmlns="http://cyclonedx.org/schema/bom/1.5"><components><component><name>a</name>"#,
            &["document ends with 3 elements open"],
        ),
        (
            Format::CyclonedxXml,
            r#"<bom xmlns="urn:not-cyclonedx"/>"#,
            &["root element <bom> is not a CycloneDX <bom>"],
        ),
        (
            Format::CyclonedxXml,
            r#"<bom xmlns="http://cyclonedx.org/schema/bom/1.5"/><bom xmlns="http://cyclonedx.org/schema/bom/1.5"/>"#,
            &["more than one root element"],
        ),
        (
            Format::CyclonedxXml,
            r#"<bom xmlns="http://cyclonedx.org/schema/bom/1.5"><components><component><name>&#0;</name></component></components></bom>"#,
            &["invalid CycloneDX XML"],
        ),
        (
            Format::SpdxTagValue,
            "SPDXVersion: SPDX-2.3\nPackageName: a\nPackageComment: <text>never\nclosed\n",
            &[
                "invalid SPDX tag-value",
                "<text> opened on line 3 is never closed",
            ],
        ),
        (
            Format::SpdxTagValue,
            "PackageName: a\n",
            &["no SPDXVersion tag"],
        ),
        (Format::Sarif, "{}", &["SARIF is not an SBOM format"]),
        (Format::Text, "", &["plain text is not an SBOM format"]),
    ];
    for (format, doc, needles) in cases {
        let message =
            extract(*format, doc.as_bytes(), 10).expect_err(&format!("{format} accepted {doc:?}"));
        for needle in *needles {
            assert!(
                message.contains(needle),
                "{format} {doc:?}: {message:?} lacks {needle:?}"
            );
        }
    }
}

#[test]
fn read_failures_are_reported_as_such() {
    for format in [
        Format::CyclonedxJson,
        Format::CyclonedxXml,
        Format::SpdxJson,
        Format::SpdxTagValue,
    ] {
        let ExtractError(message) =
            sbom::components(format, Failing, &Limits::default()).unwrap_err();
        assert!(message.contains("disk on fire"), "{format}: {message}");
        // Failing after a valid start.
        let start: &[u8] = match format {
            Format::CyclonedxXml => b"<bom xmlns=\"http://cyclonedx.org/schema/bom/1.5\">",
            Format::SpdxTagValue => b"SPDXVersion: SPDX-2.3\n",
            _ => b"{\"components\": [",
        };
        let ExtractError(message) =
            sbom::components(format, start.chain(Failing), &Limits::default()).unwrap_err();
        assert!(message.contains("read failed"), "{format}: {message}");
    }
}

/// CycloneDX JSON with components nested `depth` levels deep.
fn nested_json(depth: usize) -> String {
    let mut doc = String::from(r#"{"components": "#);
    for level in 0..depth {
        doc.push_str(&format!(r#"[{{"name": "level-{level}", "components": "#));
    }
    doc.push_str("[]");
    for _ in 0..depth {
        doc.push_str("}]");
    }
    doc.push('}');
    doc
}

fn nested_xml(depth: usize) -> String {
    let mut doc = String::from(r#"<bom xmlns="http://cyclonedx.org/schema/bom/1.5"><components>"#);
    for level in 0..depth {
        doc.push_str(&format!(
            "<component><name>level-{level}</name><components>"
        ));
    }
    for _ in 0..depth {
        doc.push_str("</components></component>");
    }
    doc.push_str("</components></bom>");
    doc
}

#[test]
fn deep_nesting_is_an_error_not_an_overflow() {
    for (format, doc) in [
        (Format::CyclonedxJson, nested_json(MAX_NESTING)),
        (Format::CyclonedxXml, nested_xml(MAX_NESTING)),
    ] {
        let got = extract(format, doc.as_bytes(), 1000).unwrap();
        assert_eq!(got.total, MAX_NESTING as u64, "{format}");
        assert_eq!(
            got.items[MAX_NESTING - 1].name,
            format!("level-{}", MAX_NESTING - 1)
        );
    }
    let too_deep = format!("nested more than {MAX_NESTING} deep");
    for depth in [MAX_NESTING + 1, 100_000] {
        for (format, doc) in [
            (Format::CyclonedxJson, nested_json(depth)),
            (Format::CyclonedxXml, nested_xml(depth)),
        ] {
            let ExtractError(message) =
                sbom::components(format, doc.as_bytes(), &Limits::default()).unwrap_err();
            assert!(message.contains(&too_deep), "{format} {depth}: {message}");
        }
    }
    // Deep nesting in what is skipped: serde_json steps over it without recursing; the XML
    // reader has a depth cap.
    let arrays = format!(
        r#"{{"metadata": {}{}, "components": [{{"name": "a"}}]}}"#,
        "[".repeat(1_000_000),
        "]".repeat(1_000_000)
    );
    let got = sbom::components(Format::CyclonedxJson, arrays.as_bytes(), &Limits::default());
    assert_eq!(got.map(|got| got.total), Ok(1));
    // Deep nesting in a field that is kept is an error too (a wrong type, or serde_json's
    // recursion limit).
    for field in ["licenses", "hashes", "name"] {
        let doc = format!(
            r#"{{"components": [{{"name": "a", "{field}": {}}}]}}"#,
            "[".repeat(100_000)
        );
        let ExtractError(message) =
            sbom::components(Format::CyclonedxJson, doc.as_bytes(), &Limits::default())
                .unwrap_err();
        assert!(message.starts_with("invalid CycloneDX JSON"), "{message}");
    }
    let elements = format!(
        r#"<bom xmlns="http://cyclonedx.org/schema/bom/1.5"><metadata>{}{}</metadata></bom>"#,
        "<x>".repeat(1_000_000),
        "</x>".repeat(1_000_000)
    );
    let ExtractError(message) = sbom::components(
        Format::CyclonedxXml,
        elements.as_bytes(),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(message.contains("elements nested deeper than"), "{message}");
}

#[test]
fn a_component_with_very_many_licenses_is_read_in_linear_time() {
    let n = 200_000;
    let entries: Vec<String> = (0..n)
        .map(|i| format!(r#"{{"expression": "LicenseRef-{}"}}"#, i % (n / 2)))
        .collect();
    let doc = format!(
        r#"{{"components": [{{"name": "a", "licenses": [{}]}}]}}"#,
        entries.join(",")
    );
    let started = std::time::Instant::now();
    let got = sbom::components(Format::CyclonedxJson, doc.as_bytes(), &Limits::default()).unwrap();
    assert_eq!(got.items[0].licenses.len(), n / 2);
    assert_eq!(got.items[0].licenses[1], "LicenseRef-1");
    // Quadratic deduplication would take minutes here.
    assert!(
        started.elapsed().as_secs() < 30,
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn oversized_xml_text_is_refused() {
    let bom = |inner: &str| {
        format!(
            r#"<bom xmlns="http://cyclonedx.org/schema/bom/1.5"><components><component>{inner}</component></components></bom>"#
        )
    };
    let name = bom(&format!("<name>{}</name>", "n".repeat(MAX_TEXT + 1)));
    let ExtractError(message) =
        sbom::components(Format::CyclonedxXml, name.as_bytes(), &Limits::default()).unwrap_err();
    assert!(message.contains("element text longer than"), "{message}");
    let skipped = bom(&format!(
        "<description>{}</description>",
        "d".repeat(MAX_EVENT + 1)
    ));
    let ExtractError(message) =
        sbom::components(Format::CyclonedxXml, skipped.as_bytes(), &Limits::default()).unwrap_err();
    assert!(
        message.contains("text or markup longer than 16 MiB"),
        "{message}"
    );
    // Big text split by references is no way around the cap.
    let split = bom(&format!(
        "<name>{}</name>",
        "a&amp;".repeat(MAX_TEXT / 2 + 1)
    ));
    assert!(sbom::components(Format::CyclonedxXml, split.as_bytes(), &Limits::default()).is_err());
}

#[test]
fn invalid_utf8_is_an_error() {
    let xml: &[u8] = b"<bom xmlns=\"http://cyclonedx.org/schema/bom/1.5\"><components>\
        <component><name>\xff\xfe</name></component></components></bom>";
    let json: &[u8] = b"{\"components\": [{\"name\": \"\xff\xfe\"}]}";
    for (format, doc) in [(Format::CyclonedxXml, xml), (Format::CyclonedxJson, json)] {
        let message = extract(format, doc, 10).unwrap_err();
        assert!(message.starts_with("invalid"), "{format}: {message}");
    }
    // Tag-value is read leniently: a stray byte in a license text does not lose the SBOM.
    let tag_value: &[u8] = b"SPDXVersion: SPDX-2.3\nPackageName: caf\xe9\n";
    let got = extract(Format::SpdxTagValue, tag_value, 10).unwrap();
    assert_eq!(names(&got), ["caf\u{FFFD}"]);
}

// ---------------------------------------------------------------------------------------------
// A big BOM, streamed

/// A CycloneDX JSON BOM of `count` components, produced on the fly so that the test itself does
/// not hold it; every 1000th component has one nested component.
struct GeneratedBom {
    count: usize,
    next: usize,
    pending: Vec<u8>,
    pos: usize,
    done: bool,
    produced: u64,
}

/// Each top-level component is padded to this many bytes.
const GENERATED_COMPONENT: usize = 340;

impl GeneratedBom {
    fn new(count: usize) -> Self {
        GeneratedBom {
            count,
            next: 0,
            pending: br#"{"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "metadata": {"component": {"name": "app"}}, "components": ["#.to_vec(),
            pos: 0,
            done: false,
            produced: 0,
        }
    }

    fn refill(&mut self) {
        self.pending.clear();
        self.pos = 0;
        if self.next == self.count {
            if !self.done {
                self.pending.extend_from_slice(br#"], "dependencies": []}"#);
                self.done = true;
            }
            return;
        }
        let i = self.next;
        self.next += 1;
        let nested = if i.is_multiple_of(1000) {
            format!(r#""components": [{{"name": "nested-{i}"}}], "#)
        } else {
            String::new()
        };
        let mut item = format!(
            r#"{}{{"type": "library", "bom-ref": "c{i}", "name": "pkg-{i}", "version": "1.{}.0", "purl": "pkg:npm/pkg-{i}@1.{}.0", {nested}"licenses": [{{"license": {{"id": "MIT"}}}}], "hashes": [{{"alg": "SHA-256", "content": "{:064X}"}}], "description": ""#,
            if i == 0 { "" } else { "," },
            i % 100,
            i % 100,
            i
        );
        while item.len() < GENERATED_COMPONENT - 2 {
            item.push('x');
        }
        item.push_str("\"}");
        self.pending.extend_from_slice(item.as_bytes());
    }
}

impl Read for GeneratedBom {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.pending.len() {
            self.refill();
        }
        let n = (self.pending.len() - self.pos).min(buf.len());
        buf[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
        self.pos += n;
        self.produced += n as u64;
        Ok(n)
    }
}

#[test]
fn a_64_mib_bom_is_read_as_a_stream() {
    let count = 200_000;
    let mut bom = GeneratedBom::new(count);
    let limits = Limits { max_items: 1000 };
    let got = sbom::components(Format::CyclonedxJson, &mut bom, &limits).unwrap();
    assert!(bom.produced >= 64 << 20, "only {} bytes", bom.produced);
    assert_eq!(got.total, (count + count / 1000) as u64);
    assert!(got.truncated);
    assert_eq!(got.items.len(), 1000);
    // Document order: pkg-0, nested-0, pkg-1, ...
    assert_eq!(got.items[1].name, "nested-0");
    assert_eq!(got.items[999].name, "pkg-998");
    assert_eq!(
        got.items[2],
        component(
            "pkg-1",
            Some("1.1.0"),
            Some("pkg:npm/pkg-1@1.1.0"),
            &["MIT"],
            &[("SHA-256", &format!("{:064x}", 1))]
        )
    );
    // Nothing beyond the cap was ever collected (memory is not proportional to the input by
    // construction: the components array is visited element by element).
    assert!(got.items.capacity() <= 2 * limits.max_items);
}

// ---------------------------------------------------------------------------------------------
// The shared corpus

fn corpus() -> Option<PathBuf> {
    let dir = match std::env::var_os("EVAULT_CORPUS") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus"),
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

/// Named CycloneDX components, counted from the parsed JSON tree.
fn count_cyclonedx(components: Option<&serde_json::Value>) -> u64 {
    let Some(serde_json::Value::Array(list)) = components else {
        return 0;
    };
    list.iter()
        .map(|c| {
            let named = c
                .get("name")
                .and_then(|n| n.as_str())
                .is_some_and(|n| !n.trim().is_empty());
            u64::from(named) + count_cyclonedx(c.get("components"))
        })
        .sum()
}

fn independent_count(format: Format, bytes: &[u8]) -> u64 {
    match format {
        Format::SpdxTagValue => String::from_utf8_lossy(bytes)
            .lines()
            .filter(|l| l.starts_with("PackageName:"))
            .count() as u64,
        Format::CyclonedxJson => {
            let doc: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            count_cyclonedx(doc.get("components"))
        }
        Format::SpdxJson => {
            let doc: serde_json::Value = serde_json::from_slice(bytes).unwrap();
            let packages = doc["packages"].as_array().map_or(&[][..], |p| p.as_slice());
            packages
                .iter()
                .filter(|p| p["name"].as_str().is_some_and(|n| !n.trim().is_empty()))
                .count() as u64
        }
        other => panic!("no independent count for {other}"),
    }
}

#[test]
fn corpus_sboms_match_an_independent_count() {
    let Some(corpus) = corpus() else {
        eprintln!("corpus not found; skipped");
        return;
    };
    let mut files = Vec::new();
    for dir in ["sbom/cyclonedx", "sbom/spdx"] {
        for entry in std::fs::read_dir(corpus.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e != "md") {
                files.push(path);
            }
        }
    }
    files.push(corpus.join("vex/cyclonedx/bom-for-vex-1.3.cdx.json"));
    files.sort();
    assert!(files.len() >= 16, "corpus looks incomplete: {files:?}");
    for path in files {
        let found = evault_schema::detect::detect(File::open(&path).unwrap()).unwrap();
        let format = found.format;
        assert!(
            matches!(
                format,
                Format::CyclonedxJson
                    | Format::CyclonedxXml
                    | Format::SpdxJson
                    | Format::SpdxTagValue
            ),
            "{} detected as {}",
            path.display(),
            found.describe()
        );
        let got = sbom::components(format, File::open(&path).unwrap(), &Limits::default())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let bytes = std::fs::read(&path).unwrap();
        let expected = independent_count(format, &bytes);
        eprintln!(
            "{}: {} -> {} components (independent count {expected})",
            path.strip_prefix(&corpus).unwrap_or(&path).display(),
            found.describe(),
            got.total
        );
        assert_eq!(got.total, expected, "{}", path.display());
        assert_eq!(got.items.len() as u64, got.total);
        assert!(!got.truncated);
        assert!(got.items.iter().all(|c| !c.name.trim().is_empty()));
    }
}
