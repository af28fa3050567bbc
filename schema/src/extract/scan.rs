//! The findings of a vulnerability scan: SARIF 2.1.0 (and 2.2), Grype JSON, Trivy JSON
//! (`SchemaVersion` 2), OSV-Scanner JSON and the `vulnerabilities` of a CycloneDX BOM.
//!
//! Each document is read once, as a stream: the big arrays (`runs[].results`, `matches`,
//! `Results[].Vulnerabilities`, `results[].packages[].vulnerabilities`, `vulnerabilities`) are
//! visited element by element, one element is materialised at a time with only the fields a
//! [`Finding`] needs, and everything else is skipped unread into memory. Where a finding needs
//! something that may come *later* in the same object (a SARIF run's rules, an OSV package's
//! `groups`, a CycloneDX BOM's `components`), the findings of that object wait in a buffer that
//! never holds more than [`Limits::max_items`] of them. The look-up tables such findings are
//! completed from (a run's rules, a BOM's components by `bom-ref`) are capped at
//! [`Limits::max_items`] entries too: past that, findings are still counted but lose what the
//! table would have told about them. Members skipped unread may nest to any depth at no cost;
//! what is read (nested CycloneDX components) stops at serde_json's recursion limit with an
//! error.
//!
//! # Mapping, per format
//!
//! **SARIF**: one finding per `runs[].results[]`, whatever its `kind`, `suppressions` or
//! `baselineState` (they are the tool's triage, not the document's content).
//! - `id`: `ruleId`, else `rule.id`, else the `id` of the rule found by index; the empty string
//!   when the result names no rule at all (valid SARIF, rare for vulnerability scanners).
//! - The rule is `ruleIndex` (or `rule.index`) into `tool.driver.rules`, else the rule whose
//!   `id` is the `ruleId`. Rules of `tool.extensions` are not consulted.
//! - `severity`, first that gives one: the result's `properties["security-severity"]`, the
//!   rule's `properties["security-severity"]` (a CVSS-like score, string or number, read with
//!   [`Severity::from_cvss`]; a score of 0 or one that does not parse gives nothing), the
//!   result's `level`, else the rule's `defaultConfiguration.level` (`error` → high, `warning` →
//!   medium, `note` → low, `none` → unknown). A result with neither is `unknown`: SARIF's own
//!   default (`warning`) would invent a severity the tool never stated.
//! - `aliases`: CVE and GHSA ids found inside the rule's `id`, `name` and `properties.tags`
//!   that differ from `id` (Grype names its rules `CVE-2005-2541-tar`).
//! - `package`, `version`, `fixed_version`: the `Package:`, `Installed Version:`/`Version:` and
//!   `Fixed Version:`/`Fix Version:` lines of the result's `message.text` (Trivy writes them
//!   there), else of the rule's `help.text` (Grype makes one rule per vulnerability and package
//!   and writes them there), only when the text has a `Package:` line.
//! - `purl`: the first `locations[].logicalLocations[].fullyQualifiedName` that is a package URL
//!   (Dependency-Track); when no `Package:` line was found, `package` and `version` come from it.
//!
//! **Grype JSON**: one finding per `matches[]` (not `ignoredMatches`): `vulnerability.id`,
//! `relatedVulnerabilities[].id` as aliases, `vulnerability.severity`, `artifact.name`,
//! `artifact.version`, `artifact.purl`, and `vulnerability.fix.versions[0]` when
//! `vulnerability.fix.state` is `fixed`.
//!
//! **Trivy JSON**: one finding per `Results[].Vulnerabilities[]`: `VulnerabilityID`,
//! `Severity`, `PkgName`, `InstalledVersion`, `PkgIdentifier.PURL`, and the first of the
//! comma-separated `FixedVersion`. `Misconfigurations`, `Secrets` and `Licenses` are not
//! vulnerabilities and are skipped. Only `SchemaVersion` 2 is read.
//!
//! **OSV-Scanner JSON**: one finding per vulnerability of each `results[].packages[]`:
//! the OSV record's `id` and `aliases`; severity from `database_specific.severity` (the GitHub
//! advisory label), else the record's own `CVSS_V3` vector (base score computed here), else the
//! `max_severity` of the package's `groups` entry that lists the id, else unknown; the package's
//! `name` and `version`, and a purl built from `ecosystem` for npm, PyPI, Go, crates.io and Maven
//! (none for others). `fixed_version` is left empty: OSV ranges need version ordering to say
//! which fix applies to the installed version.
//!
//! **CycloneDX JSON**: one finding per (`vulnerabilities[]`, `affects[]` entry), or one with no
//! package for a vulnerability without `affects`. `id`; `references[].id` as aliases; the most
//! severe of the `ratings` (each rating's `severity`, else its `score`, else the base score of a
//! CVSS v3 `vector`); the `affects[].ref` resolved against the `bom-ref` of the BOM's components
//! (and `metadata.component`) to name, version and purl, else the ref itself as `package` (and
//! as `purl` when it is one). `fixed_version` is left empty (`affects[].versions` lists ranges,
//! not fixes). Every vulnerability is a finding, whatever its `analysis` says: the analysis is
//! read as VEX by [`super::vex`], and which findings it settles is [`super::apply`]'s decision.
//!
//! **CycloneDX XML**: vulnerabilities are not extracted yet; the result is empty.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::{self, BufReader, Read};
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::{ExtractError, Extracted, Finding, Limits, Severity};
use crate::Format;

/// Reads the findings of a scan report.
///
/// `format` is what detection (or a declaration) says the document is; any format that is not a
/// scan format is an error, so that a caller cannot mistake "not a scan" for "no findings".
pub fn findings(
    format: Format,
    reader: impl Read,
    limits: &Limits,
) -> Result<Extracted<Finding>, ExtractError> {
    let mut sink = Sink::new(limits);
    match format {
        Format::Sarif => read_json(format, reader, SarifLog { sink: &mut sink })?,
        Format::GrypeJson => read_json(format, reader, GrypeDocument { sink: &mut sink })?,
        Format::TrivyJson => read_json(format, reader, TrivyReport { sink: &mut sink })?,
        Format::OsvScannerJson => read_json(format, reader, OsvOutput { sink: &mut sink })?,
        Format::CyclonedxJson => read_json(format, reader, CdxBom { sink: &mut sink })?,
        // Not extracted yet: an XML BOM's vulnerabilities stay in the stored document.
        Format::CyclonedxXml => {}
        other => {
            return Err(ExtractError(format!(
                "{} is not a scan format",
                other.title()
            )));
        }
    }
    Ok(sink.finish())
}

// ---------------------------------------------------------------------------------------------
// SARIF

/// The top of a SARIF log: `version` is checked, `runs` streamed.
struct SarifLog<'s, 'l> {
    sink: &'s mut Sink<'l, Finding>,
}

#[derive(Deserialize)]
#[serde(field_identifier)]
enum SarifLogKey {
    #[serde(rename = "version")]
    Version,
    #[serde(rename = "runs")]
    Runs,
    #[serde(other)]
    Other,
}

impl<'de> DeserializeSeed<'de> for SarifLog<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for SarifLog<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a SARIF log object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut runs = false;
        let mut run = SarifRun { sink: self.sink };
        while let Some(key) = map.next_key::<SarifLogKey>()? {
            match key {
                SarifLogKey::Version => {
                    let version: LooseString = map.next_value()?;
                    if let Some(v) = version.0
                        && !v.starts_with("2.")
                    {
                        return Err(de::Error::custom(format!(
                            "SARIF version \"{}\" is not supported (expected 2.1.0)",
                            excerpt(&v)
                        )));
                    }
                }
                SarifLogKey::Runs => {
                    runs = true;
                    map.next_value_seed(Elements(&mut run))?;
                }
                SarifLogKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !runs {
            return Err(de::Error::custom("missing \"runs\""));
        }
        Ok(())
    }
}

/// One `runs[]` object. Results are resolved against the run's rules as soon as the rules are
/// known; results that come before `tool` wait (at most [`Limits::max_items`] of them).
struct SarifRun<'s, 'l> {
    sink: &'s mut Sink<'l, Finding>,
}

#[derive(Deserialize)]
#[serde(field_identifier)]
enum SarifRunKey {
    #[serde(rename = "tool")]
    Tool,
    #[serde(rename = "results")]
    Results,
    #[serde(other)]
    Other,
}

impl<'de> DeserializeSeed<'de> for &mut SarifRun<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for &mut SarifRun<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a SARIF run object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let sink = &mut *self.sink;
        let mut rules: Option<RuleTable> = None;
        let mut waiting = Waiting::default();
        while let Some(key) = map.next_key::<SarifRunKey>()? {
            match key {
                SarifRunKey::Tool => {
                    let mut table = RuleTable::default();
                    let limit = sink.limits.max_items;
                    let collect = each(|rule: SarifRule| {
                        table.add(rule, limit);
                        Ok(())
                    });
                    map.next_value_seed(Member::new("driver", Member::new("rules", collect)))?;
                    // Results read before the tool can be completed now.
                    waiting.flush(sink, |result: SarifResult| result.finding(&table));
                    rules = Some(table);
                }
                SarifRunKey::Results => match &rules {
                    Some(table) => {
                        map.next_value_seed(each(|result: SarifResult| {
                            sink.push(result.finding(table));
                            Ok(())
                        }))?;
                    }
                    None => {
                        map.next_value_seed(each(|result: SarifResult| {
                            waiting.add(result, sink);
                            Ok(())
                        }))?;
                    }
                },
                SarifRunKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let table = rules.unwrap_or_default();
        waiting.flush(sink, |result| result.finding(&table));
        Ok(())
    }
}

/// A `reportingDescriptor` of `tool.driver.rules`, as far as findings need it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifRule {
    id: Option<String>,
    name: Option<LooseString>,
    #[serde(default, deserialize_with = "null_as_default")]
    properties: SarifProperties,
    default_configuration: Option<SarifConfiguration>,
    help: Option<SarifMessage>,
}

#[derive(Deserialize, Default)]
struct SarifProperties {
    #[serde(rename = "security-severity", default)]
    security_severity: LooseNumber,
    #[serde(default, deserialize_with = "null_as_default")]
    tags: Vec<LooseString>,
}

#[derive(Deserialize)]
struct SarifConfiguration {
    level: Option<LooseString>,
}

#[derive(Deserialize)]
struct SarifMessage {
    text: Option<LooseString>,
}

/// What a rule contributes to the findings of its results.
struct Rule {
    id: Option<String>,
    aliases: Vec<String>,
    security_severity: Option<Severity>,
    default_level: Option<String>,
    help: TextFacts,
}

/// A run's rules, by position (`ruleIndex`) and by `id`.
#[derive(Default)]
struct RuleTable {
    rules: Vec<Rule>,
    by_id: HashMap<String, usize>,
}

impl RuleTable {
    /// Keeps a rule unless `limit` rules are kept already: results of rules past the limit are
    /// still counted, they only lose what the rule would have told about them.
    fn add(&mut self, rule: SarifRule, limit: usize) {
        if self.rules.len() >= limit {
            return;
        }
        let mut aliases = Vec::new();
        let tags = rule.properties.tags.iter().filter_map(|t| t.0.as_deref());
        for text in rule
            .id
            .as_deref()
            .into_iter()
            .chain(rule.name.as_ref().and_then(|n| n.0.as_deref()))
            .chain(tags)
        {
            for found in vulnerability_ids(text) {
                if !aliases.contains(&found) {
                    aliases.push(found);
                }
            }
        }
        let help = rule
            .help
            .and_then(|h| h.text)
            .and_then(|t| t.0)
            .map(|t| TextFacts::parse(&t))
            .unwrap_or_default();
        let index = self.rules.len();
        if let Some(id) = &rule.id {
            self.by_id.entry(id.clone()).or_insert(index);
        }
        self.rules.push(Rule {
            id: rule.id,
            aliases,
            security_severity: score_severity(rule.properties.security_severity.0),
            default_level: rule
                .default_configuration
                .and_then(|c| c.level)
                .and_then(|l| l.0),
            help,
        });
    }

    fn find(&self, index: Option<i64>, id: Option<&str>) -> Option<&Rule> {
        let by_index = index
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| self.rules.get(i));
        by_index.or_else(|| {
            id.and_then(|id| self.by_id.get(id))
                .and_then(|&i| self.rules.get(i))
        })
    }
}

/// A `runs[].results[]` entry, reduced to what a finding needs while it is read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult {
    rule_id: Option<String>,
    rule_index: Option<i64>,
    rule: Option<SarifRuleReference>,
    level: Option<LooseString>,
    #[serde(default, deserialize_with = "message_facts")]
    message: TextFacts,
    #[serde(default, deserialize_with = "location_purl")]
    locations: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    properties: SarifProperties,
}

#[derive(Deserialize)]
struct SarifRuleReference {
    id: Option<String>,
    index: Option<i64>,
}

impl SarifResult {
    fn finding(self, rules: &RuleTable) -> Finding {
        let reference = self.rule.as_ref();
        let index = self.rule_index.or(reference.and_then(|r| r.index));
        let named = self
            .rule_id
            .as_deref()
            .or(reference.and_then(|r| r.id.as_deref()));
        let rule = rules.find(index, named);
        let id = named
            .map(str::to_string)
            .or_else(|| rule.and_then(|r| r.id.clone()))
            .unwrap_or_default();

        let mut aliases: Vec<String> = Vec::new();
        let rule_aliases = rule.map(|r| r.aliases.as_slice()).unwrap_or_default();
        for alias in rule_aliases.iter().cloned().chain(vulnerability_ids(&id)) {
            if alias != id && !aliases.contains(&alias) {
                aliases.push(alias);
            }
        }

        let level = self
            .level
            .and_then(|l| l.0)
            .or_else(|| rule.and_then(|r| r.default_level.clone()));
        let severity = score_severity(self.properties.security_severity.0)
            .or(rule.and_then(|r| r.security_severity))
            .unwrap_or_else(|| level.as_deref().map_or(Severity::Unknown, level_severity));

        let facts = if self.message.package.is_some() {
            self.message
        } else {
            rule.map(|r| r.help.clone()).unwrap_or_default()
        };
        let purl = self.locations;
        let (package, version) = match (facts.package, &purl) {
            (Some(package), _) => (Some(package), facts.version),
            (None, Some(purl)) => purl_name_version(purl),
            (None, None) => (None, None),
        };
        Finding {
            id,
            aliases,
            severity,
            package,
            version,
            purl,
            fixed_version: facts.fixed,
        }
    }
}

/// A SARIF `level`, as a severity.
fn level_severity(level: &str) -> Severity {
    match level {
        "error" => Severity::High,
        "warning" => Severity::Medium,
        "note" => Severity::Low,
        _ => Severity::Unknown,
    }
}

/// A CVSS-like score as a severity; nothing for a missing, zero or out-of-range score, so that
/// the next source of severity is tried.
fn score_severity(score: Option<f64>) -> Option<Severity> {
    score
        .map(Severity::from_cvss)
        .filter(|s| *s != Severity::Unknown)
}

/// The `Key: value` lines scanners write into SARIF texts.
#[derive(Debug, Clone, Default, PartialEq)]
struct TextFacts {
    package: Option<String>,
    version: Option<String>,
    fixed: Option<String>,
}

impl TextFacts {
    fn parse(text: &str) -> TextFacts {
        let mut facts = TextFacts::default();
        for line in text.lines() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            let slot = match key.trim() {
                "Package" => &mut facts.package,
                "Installed Version" | "Version" => &mut facts.version,
                "Fixed Version" | "Fix Version" => &mut facts.fixed,
                _ => continue,
            };
            if slot.is_none() {
                *slot = if key.trim().starts_with("Fix") {
                    first_version(value)
                } else {
                    Some(value.to_string())
                };
            }
        }
        facts
    }
}

/// `message.text` read straight into its facts, so that the text itself is not kept.
fn message_facts<'de, D: Deserializer<'de>>(deserializer: D) -> Result<TextFacts, D::Error> {
    let message: Option<SarifMessage> = Deserialize::deserialize(deserializer)?;
    Ok(message
        .and_then(|m| m.text)
        .and_then(|t| t.0)
        .map(|t| TextFacts::parse(&t))
        .unwrap_or_default())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifLocation {
    #[serde(default, deserialize_with = "null_as_default")]
    logical_locations: Vec<SarifLogicalLocation>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SarifLogicalLocation {
    fully_qualified_name: Option<LooseString>,
}

/// The first package URL among the logical locations of a result.
fn location_purl<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    let locations: Option<Vec<SarifLocation>> = Deserialize::deserialize(deserializer)?;
    Ok(locations
        .into_iter()
        .flatten()
        .flat_map(|l| l.logical_locations)
        .filter_map(|l| l.fully_qualified_name.and_then(|n| n.0))
        .find(|name| name.starts_with("pkg:")))
}

/// CVE and GHSA ids inside a text (`CVE-2005-2541-tar` holds `CVE-2005-2541`).
fn vulnerability_ids(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let length = if rest.starts_with(b"CVE-") {
            cve_length(rest)
        } else if rest.starts_with(b"GHSA-") {
            ghsa_length(rest)
        } else {
            None
        };
        let boundary = at == 0 || !bytes[at - 1].is_ascii_alphanumeric();
        match length {
            Some(n) if boundary => {
                // Both patterns are ASCII, so `at..at + n` falls on character boundaries.
                if let Some(id) = text.get(at..at + n) {
                    found.push(id.to_string());
                }
                at += n;
            }
            _ => at += 1,
        }
    }
    found
}

/// `CVE-` + 4 digits + `-` + at least 4 digits.
fn cve_length(s: &[u8]) -> Option<usize> {
    let year = s.get(4..8)?;
    if !year.iter().all(u8::is_ascii_digit) || s.get(8) != Some(&b'-') {
        return None;
    }
    let digits = s[9..].iter().take_while(|b| b.is_ascii_digit()).count();
    (digits >= 4).then_some(9 + digits)
}

/// `GHSA-xxxx-xxxx-xxxx` with lowercase alphanumeric groups.
fn ghsa_length(s: &[u8]) -> Option<usize> {
    let body = s.get(5..19)?;
    let ok = body.iter().enumerate().all(|(i, b)| {
        if i % 5 == 4 {
            *b == b'-'
        } else {
            b.is_ascii_lowercase() || b.is_ascii_digit()
        }
    });
    let ends = s.get(19).is_none_or(|b| !b.is_ascii_alphanumeric());
    (ok && ends).then_some(19)
}

// ---------------------------------------------------------------------------------------------
// Grype

struct GrypeDocument<'s, 'l> {
    sink: &'s mut Sink<'l, Finding>,
}

#[derive(Deserialize)]
#[serde(field_identifier)]
enum GrypeKey {
    #[serde(rename = "matches")]
    Matches,
    #[serde(other)]
    Other,
}

impl<'de> DeserializeSeed<'de> for GrypeDocument<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for GrypeDocument<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Grype JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut matches = false;
        while let Some(key) = map.next_key::<GrypeKey>()? {
            match key {
                GrypeKey::Matches => {
                    matches = true;
                    map.next_value_seed(each(|m: GrypeMatch| {
                        self.sink.push(m.finding());
                        Ok(())
                    }))?;
                }
                GrypeKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !matches {
            return Err(de::Error::custom("missing \"matches\""));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GrypeMatch {
    vulnerability: GrypeVulnerability,
    #[serde(default, deserialize_with = "null_as_default")]
    related_vulnerabilities: Vec<GrypeRelated>,
    artifact: Option<GrypeArtifact>,
}

#[derive(Deserialize)]
struct GrypeVulnerability {
    id: String,
    severity: Option<String>,
    fix: Option<GrypeFix>,
}

#[derive(Deserialize)]
struct GrypeFix {
    #[serde(default, deserialize_with = "null_as_default")]
    versions: Vec<String>,
    state: Option<String>,
}

#[derive(Deserialize)]
struct GrypeRelated {
    id: String,
}

#[derive(Deserialize)]
struct GrypeArtifact {
    name: Option<String>,
    version: Option<String>,
    purl: Option<String>,
}

impl GrypeMatch {
    fn finding(self) -> Finding {
        let vulnerability = self.vulnerability;
        let id = vulnerability.id;
        let aliases = distinct_aliases(&id, self.related_vulnerabilities.into_iter().map(|r| r.id));
        let fixed_version = vulnerability
            .fix
            .filter(|f| f.state.as_deref() == Some("fixed"))
            .and_then(|f| f.versions.into_iter().find_map(|v| non_empty(Some(v))));
        let artifact = self.artifact;
        let (package, version, purl) = match artifact {
            Some(a) => (non_empty(a.name), non_empty(a.version), non_empty(a.purl)),
            None => (None, None, None),
        };
        Finding {
            severity: vulnerability
                .severity
                .as_deref()
                .map_or(Severity::Unknown, Severity::from_label),
            id,
            aliases,
            package,
            version,
            purl,
            fixed_version,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Trivy

struct TrivyReport<'s, 'l> {
    sink: &'s mut Sink<'l, Finding>,
}

#[derive(Deserialize)]
#[serde(field_identifier)]
enum TrivyKey {
    SchemaVersion,
    Results,
    #[serde(other)]
    Other,
}

impl<'de> DeserializeSeed<'de> for TrivyReport<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for TrivyReport<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Trivy JSON report object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut result = TrivyResult { sink: self.sink };
        while let Some(key) = map.next_key::<TrivyKey>()? {
            match key {
                TrivyKey::SchemaVersion => {
                    let version: LooseNumber = map.next_value()?;
                    if version.0 != Some(2.0) {
                        return Err(de::Error::custom(
                            "only Trivy JSON with \"SchemaVersion\": 2 is supported",
                        ));
                    }
                }
                // Trivy leaves `Results` out when it has nothing to report.
                TrivyKey::Results => map.next_value_seed(Elements(&mut result))?,
                TrivyKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// One `Results[]` entry: only `Vulnerabilities` are findings.
struct TrivyResult<'s, 'l> {
    sink: &'s mut Sink<'l, Finding>,
}

#[derive(Deserialize)]
#[serde(field_identifier)]
enum TrivyResultKey {
    Vulnerabilities,
    #[serde(other)]
    Other,
}

impl<'de> DeserializeSeed<'de> for &mut TrivyResult<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for &mut TrivyResult<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Trivy result object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<TrivyResultKey>()? {
            match key {
                TrivyResultKey::Vulnerabilities => {
                    map.next_value_seed(each(|v: TrivyVulnerability| {
                        self.sink.push(v.finding());
                        Ok(())
                    }))?;
                }
                TrivyResultKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TrivyVulnerability {
    #[serde(rename = "VulnerabilityID")]
    vulnerability_id: String,
    severity: Option<String>,
    pkg_name: Option<String>,
    installed_version: Option<String>,
    fixed_version: Option<String>,
    pkg_identifier: Option<TrivyPkgIdentifier>,
}

#[derive(Deserialize)]
struct TrivyPkgIdentifier {
    #[serde(rename = "PURL")]
    purl: Option<String>,
}

impl TrivyVulnerability {
    fn finding(self) -> Finding {
        Finding {
            id: self.vulnerability_id,
            aliases: Vec::new(),
            severity: self
                .severity
                .as_deref()
                .map_or(Severity::Unknown, Severity::from_label),
            package: non_empty(self.pkg_name),
            version: non_empty(self.installed_version),
            purl: non_empty(self.pkg_identifier.and_then(|p| p.purl)),
            fixed_version: self.fixed_version.as_deref().and_then(first_version),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// OSV-Scanner

struct OsvOutput<'s, 'l> {
    sink: &'s mut Sink<'l, Finding>,
}

#[derive(Deserialize)]
#[serde(field_identifier)]
enum OsvOutputKey {
    #[serde(rename = "results")]
    Results,
    #[serde(other)]
    Other,
}

impl<'de> DeserializeSeed<'de> for OsvOutput<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for OsvOutput<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an OSV-Scanner JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut package = OsvPackage { sink: self.sink };
        let mut results = false;
        while let Some(key) = map.next_key::<OsvOutputKey>()? {
            match key {
                OsvOutputKey::Results => {
                    results = true;
                    map.next_value_seed(Elements(&mut OsvSource {
                        package: &mut package,
                    }))?;
                }
                OsvOutputKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !results {
            return Err(de::Error::custom("missing \"results\""));
        }
        Ok(())
    }
}

/// One `results[]` entry (a scanned source): its `packages` are streamed.
struct OsvSource<'p, 's, 'l> {
    package: &'p mut OsvPackage<'s, 'l>,
}

impl<'de> DeserializeSeed<'de> for &mut OsvSource<'_, '_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        Member::new("packages", Elements(&mut *self.package))
            .deserialize(deserializer)
            .map(drop)
    }
}

/// One `packages[]` entry. Its vulnerabilities wait until the object ends, because `groups`
/// (which may carry the only severity) follows them.
struct OsvPackage<'s, 'l> {
    sink: &'s mut Sink<'l, Finding>,
}

#[derive(Deserialize)]
#[serde(field_identifier)]
enum OsvPackageKey {
    #[serde(rename = "package")]
    Package,
    #[serde(rename = "vulnerabilities")]
    Vulnerabilities,
    #[serde(rename = "groups")]
    Groups,
    #[serde(other)]
    Other,
}

#[derive(Deserialize, Default)]
struct OsvPackageInfo {
    name: Option<String>,
    version: Option<String>,
    ecosystem: Option<String>,
}

#[derive(Deserialize)]
struct OsvVulnerability {
    id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    aliases: Vec<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    severity: Vec<OsvSeverity>,
    database_specific: Option<OsvDatabaseSpecific>,
}

#[derive(Deserialize)]
struct OsvSeverity {
    #[serde(rename = "type")]
    kind: Option<LooseString>,
    score: Option<LooseString>,
}

#[derive(Deserialize)]
struct OsvDatabaseSpecific {
    #[serde(default)]
    severity: LooseString,
}

#[derive(Deserialize)]
struct OsvGroup {
    #[serde(default, deserialize_with = "null_as_default")]
    ids: Vec<String>,
    #[serde(default)]
    max_severity: LooseNumber,
}

/// An OSV record reduced to what its finding needs before the package's groups are known.
struct OsvPending {
    id: String,
    aliases: Vec<String>,
    severity: Option<Severity>,
}

impl<'de> DeserializeSeed<'de> for &mut OsvPackage<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for &mut OsvPackage<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an OSV-Scanner package object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let sink = &mut *self.sink;
        let mut info = OsvPackageInfo::default();
        let mut groups: Vec<OsvGroup> = Vec::new();
        let mut waiting = Waiting::default();
        while let Some(key) = map.next_key::<OsvPackageKey>()? {
            match key {
                OsvPackageKey::Package => info = map.next_value()?,
                OsvPackageKey::Vulnerabilities => {
                    map.next_value_seed(each(|v: OsvVulnerability| {
                        waiting.add(v.pending(), sink);
                        Ok(())
                    }))?;
                }
                OsvPackageKey::Groups => {
                    groups = map
                        .next_value::<Option<Vec<OsvGroup>>>()?
                        .unwrap_or_default();
                }
                OsvPackageKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let purl = match (&info.ecosystem, &info.name) {
            (Some(ecosystem), Some(name)) => {
                ecosystem_purl(ecosystem, name, info.version.as_deref())
            }
            _ => None,
        };
        waiting.flush(sink, |v: OsvPending| {
            let group = || {
                groups
                    .iter()
                    .find(|g| g.ids.contains(&v.id))
                    .and_then(|g| score_severity(g.max_severity.0))
            };
            Finding {
                severity: v.severity.or_else(group).unwrap_or(Severity::Unknown),
                aliases: distinct_aliases(&v.id, v.aliases),
                id: v.id,
                package: non_empty(info.name.clone()),
                version: non_empty(info.version.clone()),
                purl: purl.clone(),
                fixed_version: None,
            }
        });
        Ok(())
    }
}

impl OsvVulnerability {
    fn pending(self) -> OsvPending {
        let label = self
            .database_specific
            .and_then(|d| d.severity.0)
            .map(|l| Severity::from_label(&l))
            .filter(|s| *s != Severity::Unknown);
        let vector = || {
            self.severity
                .iter()
                .filter(|s| {
                    s.kind
                        .as_ref()
                        .and_then(|k| k.0.as_deref())
                        .is_some_and(|k| k == "CVSS_V3")
                })
                .filter_map(|s| s.score.as_ref().and_then(|v| v.0.as_deref()))
                .find_map(cvss3_base_score)
                .and_then(|score| score_severity(Some(score)))
        };
        OsvPending {
            severity: label.or_else(vector),
            id: self.id,
            aliases: self.aliases,
        }
    }
}

/// A package URL for the OSV ecosystems whose purl type is obvious.
fn ecosystem_purl(ecosystem: &str, name: &str, version: Option<&str>) -> Option<String> {
    if name.is_empty() {
        return None;
    }
    let path = match ecosystem {
        "npm" => format!("npm/{}", encode_path(name)),
        "PyPI" => format!(
            "pypi/{}",
            encode_segment(&name.to_ascii_lowercase().replace('_', "-"))
        ),
        "Go" => format!("golang/{}", encode_path(name)),
        "crates.io" => format!("cargo/{}", encode_segment(name)),
        "Maven" => {
            let (group, artifact) = name.split_once(':')?;
            format!(
                "maven/{}/{}",
                encode_segment(group),
                encode_segment(artifact)
            )
        }
        _ => return None,
    };
    Some(match version.filter(|v| !v.is_empty()) {
        Some(v) => format!("pkg:{path}@{}", encode_segment(v)),
        None => format!("pkg:{path}"),
    })
}

/// Percent-encodes each `/`-separated segment of a package path.
fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

/// Percent-encodes everything but the purl spec's unreserved characters.
fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'-' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Name and version of a package URL: `pkg:maven/org.acme/c1@1.1.4?type=jar` → `c1`, `1.1.4`.
fn purl_name_version(purl: &str) -> (Option<String>, Option<String>) {
    let core = purl.split(['?', '#']).next().unwrap_or(purl);
    let (path, version) = match core.rsplit_once('@') {
        Some((p, v)) if !v.contains('/') => (p, non_empty(Some(v.to_string()))),
        _ => (core, None),
    };
    let name = path
        .rsplit('/')
        .next()
        .filter(|n| !n.is_empty() && !n.starts_with("pkg:"));
    (name.map(str::to_string), version)
}

// ---------------------------------------------------------------------------------------------
// CycloneDX

struct CdxBom<'s, 'l> {
    sink: &'s mut Sink<'l, Finding>,
}

#[derive(Deserialize)]
#[serde(field_identifier)]
enum CdxKey {
    #[serde(rename = "components")]
    Components,
    #[serde(rename = "metadata")]
    Metadata,
    #[serde(rename = "vulnerabilities")]
    Vulnerabilities,
    #[serde(other)]
    Other,
}

impl<'de> DeserializeSeed<'de> for CdxBom<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

/// A pending CycloneDX finding: everything but what the affected `ref` resolves to.
struct CdxPending {
    finding: Finding,
    reference: Option<String>,
}

impl<'de> Visitor<'de> for CdxBom<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CycloneDX BOM object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let sink = &mut *self.sink;
        let mut index = ComponentIndex::new(sink.limits.max_items);
        let mut waiting: Waiting<CdxPending> = Waiting::default();
        while let Some(key) = map.next_key::<CdxKey>()? {
            match key {
                CdxKey::Components => map.next_value_seed(Elements(&mut index))?,
                CdxKey::Metadata => {
                    map.next_value_seed(Member::new("component", &mut index))?;
                }
                CdxKey::Vulnerabilities => {
                    map.next_value_seed(each(|v: CdxVulnerability| {
                        for pending in v.pending_findings()? {
                            waiting.add(pending, sink);
                        }
                        Ok(())
                    }))?;
                }
                CdxKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        waiting.flush(sink, |p| index.resolve(p));
        Ok(())
    }
}

/// A `vulnerabilities[]` entry of a CycloneDX BOM, shared with the VEX reader.
#[derive(Deserialize)]
pub(crate) struct CdxVulnerability {
    pub(crate) id: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) references: Vec<CdxReference>,
    #[serde(default, deserialize_with = "null_as_default")]
    ratings: Vec<CdxRating>,
    pub(crate) analysis: Option<CdxAnalysis>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub(crate) affects: Vec<CdxAffects>,
}

#[derive(Deserialize)]
pub(crate) struct CdxReference {
    pub(crate) id: Option<String>,
}

#[derive(Deserialize)]
struct CdxRating {
    severity: Option<LooseString>,
    #[serde(default)]
    score: LooseNumber,
    method: Option<LooseString>,
    vector: Option<LooseString>,
}

#[derive(Deserialize)]
pub(crate) struct CdxAnalysis {
    pub(crate) state: Option<String>,
    pub(crate) justification: Option<String>,
}

#[derive(Deserialize)]
pub(crate) struct CdxAffects {
    #[serde(rename = "ref")]
    pub(crate) reference: Option<String>,
}

impl CdxVulnerability {
    /// The vulnerability's id; CycloneDX makes it optional, a finding or statement needs it.
    pub(crate) fn require_id(&self) -> Result<String, String> {
        non_empty(self.id.clone()).ok_or_else(|| "vulnerability without \"id\"".to_string())
    }

    /// `references[].id`, without the vulnerability's own id.
    pub(crate) fn aliases(&self, id: &str) -> Vec<String> {
        distinct_aliases(id, self.references.iter().filter_map(|r| r.id.clone()))
    }

    /// The most severe of the ratings.
    fn severity(&self) -> Severity {
        self.ratings
            .iter()
            .map(CdxRating::severity)
            .min()
            .unwrap_or(Severity::Unknown)
    }

    fn pending_findings(self) -> Result<Vec<CdxPending>, String> {
        let id = self.require_id()?;
        let finding = Finding {
            aliases: self.aliases(&id),
            severity: self.severity(),
            id,
            package: None,
            version: None,
            purl: None,
            fixed_version: None,
        };
        let references: Vec<Option<String>> = if self.affects.is_empty() {
            vec![None]
        } else {
            self.affects.into_iter().map(|a| a.reference).collect()
        };
        Ok(references
            .into_iter()
            .map(|reference| CdxPending {
                finding: finding.clone(),
                reference,
            })
            .collect())
    }
}

impl CdxRating {
    fn severity(&self) -> Severity {
        let label = self
            .severity
            .as_ref()
            .and_then(|s| s.0.as_deref())
            .map(Severity::from_label)
            .filter(|s| *s != Severity::Unknown);
        let vector = || {
            let method = self.method.as_ref().and_then(|m| m.0.as_deref());
            if method.is_some_and(|m| !m.starts_with("CVSSv3")) {
                return None;
            }
            self.vector
                .as_ref()
                .and_then(|v| v.0.as_deref())
                .and_then(cvss3_base_score)
                .and_then(|s| score_severity(Some(s)))
        };
        label
            .or_else(|| score_severity(self.score.0))
            .or_else(vector)
            .unwrap_or(Severity::Unknown)
    }
}

/// The BOM's components by `bom-ref`, walked as a stream (nested `components` included), at
/// most `limit` of them.
struct ComponentIndex {
    by_ref: HashMap<String, IndexedComponent>,
    limit: usize,
}

#[derive(Default)]
struct IndexedComponent {
    name: Option<String>,
    version: Option<String>,
    purl: Option<String>,
}

#[derive(Deserialize)]
#[serde(field_identifier)]
enum ComponentKey {
    #[serde(rename = "bom-ref")]
    BomRef,
    #[serde(rename = "name")]
    Name,
    #[serde(rename = "version")]
    Version,
    #[serde(rename = "purl")]
    Purl,
    #[serde(rename = "components")]
    Components,
    #[serde(other)]
    Other,
}

impl ComponentIndex {
    fn new(limit: usize) -> Self {
        ComponentIndex {
            by_ref: HashMap::new(),
            limit,
        }
    }

    fn resolve(&self, pending: CdxPending) -> Finding {
        let mut finding = pending.finding;
        let Some(reference) = pending.reference else {
            return finding;
        };
        match self.by_ref.get(&reference) {
            Some(c) => {
                finding.package = c.name.clone().or_else(|| Some(reference.clone()));
                finding.version = c.version.clone();
                finding.purl = c.purl.clone();
            }
            None => {
                if reference.starts_with("pkg:") {
                    finding.purl = Some(reference.clone());
                }
                finding.package = Some(reference);
            }
        }
        finding
    }
}

impl<'de> DeserializeSeed<'de> for &mut ComponentIndex {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for &mut ComponentIndex {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CycloneDX component object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut bom_ref = None;
        let mut component = IndexedComponent::default();
        while let Some(key) = map.next_key::<ComponentKey>()? {
            match key {
                ComponentKey::BomRef => bom_ref = map.next_value::<LooseString>()?.0,
                ComponentKey::Name => component.name = map.next_value::<LooseString>()?.0,
                ComponentKey::Version => component.version = map.next_value::<LooseString>()?.0,
                ComponentKey::Purl => component.purl = map.next_value::<LooseString>()?.0,
                // serde_json's recursion limit bounds how deep this goes.
                ComponentKey::Components => map.next_value_seed(Elements(&mut *self))?,
                ComponentKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if let Some(bom_ref) = bom_ref
            && self.by_ref.len() < self.limit
        {
            self.by_ref.entry(bom_ref).or_insert(component);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// CVSS

/// The CVSS v3.0/v3.1 base score of a vector (`CVSS:3.1/AV:N/AC:L/...`, the prefix optional),
/// per the CVSS v3.1 specification, section 7. Temporal and environmental metrics are ignored;
/// a vector missing a base metric, or of another CVSS version, has no score.
pub(crate) fn cvss3_base_score(vector: &str) -> Option<f64> {
    let body = match vector.trim().strip_prefix("CVSS:") {
        Some(rest) => rest
            .strip_prefix("3.1/")
            .or_else(|| rest.strip_prefix("3.0/"))?,
        None => vector.trim(),
    };
    let (mut av, mut ac, mut pr, mut ui, mut scope) = (None, None, None, None, None);
    let (mut c, mut i, mut a) = (None, None, None);
    for metric in body.split('/') {
        let (key, value) = metric.split_once(':')?;
        let cia = || match value {
            "H" => Some(0.56),
            "L" => Some(0.22),
            "N" => Some(0.0),
            _ => None,
        };
        match key {
            "AV" => {
                av = Some(match value {
                    "N" => 0.85,
                    "A" => 0.62,
                    "L" => 0.55,
                    "P" => 0.2,
                    _ => return None,
                })
            }
            "AC" => {
                ac = Some(match value {
                    "L" => 0.77,
                    "H" => 0.44,
                    _ => return None,
                })
            }
            "PR" => pr = Some(value),
            "UI" => {
                ui = Some(match value {
                    "N" => 0.85,
                    "R" => 0.62,
                    _ => return None,
                })
            }
            "S" => {
                scope = Some(match value {
                    "U" => false,
                    "C" => true,
                    _ => return None,
                })
            }
            "C" => c = Some(cia()?),
            "I" => i = Some(cia()?),
            "A" => a = Some(cia()?),
            _ => {}
        }
    }
    let changed = scope?;
    let pr = match (pr?, changed) {
        ("N", _) => 0.85,
        ("L", false) => 0.62,
        ("L", true) => 0.68,
        ("H", false) => 0.27,
        ("H", true) => 0.5,
        _ => return None,
    };
    let iss = 1.0 - (1.0 - c?) * (1.0 - i?) * (1.0 - a?);
    let impact = if changed {
        7.52 * (iss - 0.029) - 3.25 * (iss - 0.02f64).powi(15)
    } else {
        6.42 * iss
    };
    if impact <= 0.0 {
        return Some(0.0);
    }
    let exploitability = 8.22 * av? * ac? * pr * ui?;
    let raw = if changed {
        1.08 * (impact + exploitability)
    } else {
        impact + exploitability
    };
    Some(round_up(raw.min(10.0)))
}

/// CVSS v3.1's `Roundup`: the smallest one-decimal number not below `x`, immune to floating
/// point noise (`4.000000001` is 4.0).
fn round_up(x: f64) -> f64 {
    let scaled = (x * 100_000.0).round() as i64;
    if scaled % 10_000 == 0 {
        scaled as f64 / 100_000.0
    } else {
        (scaled / 10_000 + 1) as f64 / 10.0
    }
}

// ---------------------------------------------------------------------------------------------
// Streaming plumbing, shared with the VEX reader

/// Collects items up to [`Limits::max_items`], counting the rest.
pub(crate) struct Sink<'l, T> {
    out: Extracted<T>,
    pub(crate) limits: &'l Limits,
}

impl<'l, T> Sink<'l, T> {
    pub(crate) fn new(limits: &'l Limits) -> Self {
        Sink {
            out: Extracted {
                items: Vec::new(),
                total: 0,
                truncated: false,
            },
            limits,
        }
    }

    pub(crate) fn push(&mut self, item: T) {
        self.out.push(item, self.limits);
    }

    /// Whether one more item (after `waiting` buffered ones) would still be kept.
    fn has_room(&self, waiting: usize) -> bool {
        self.out.items.len().saturating_add(waiting) < self.limits.max_items
    }

    /// Counts items that were dropped without being built.
    fn dropped(&mut self, count: u64) {
        if count > 0 {
            self.out.total += count;
            self.out.truncated = true;
        }
    }

    pub(crate) fn finish(self) -> Extracted<T> {
        self.out
    }
}

/// Items that must wait for the end of their object before they can be completed. Only as many
/// as the sink still has room for are kept; the rest are counted.
pub(crate) struct Waiting<P> {
    items: Vec<P>,
    dropped: u64,
}

impl<P> Default for Waiting<P> {
    fn default() -> Self {
        Waiting {
            items: Vec::new(),
            dropped: 0,
        }
    }
}

impl<P> Waiting<P> {
    pub(crate) fn add<T>(&mut self, item: P, sink: &Sink<'_, T>) {
        if sink.has_room(self.items.len()) {
            self.items.push(item);
        } else {
            self.dropped += 1;
        }
    }

    /// Completes the waiting items into the sink, in document order, and empties the buffer.
    pub(crate) fn flush<T>(&mut self, sink: &mut Sink<'_, T>, mut complete: impl FnMut(P) -> T) {
        for item in self.items.drain(..) {
            sink.push(complete(item));
        }
        sink.dropped(std::mem::take(&mut self.dropped));
    }
}

/// Reads one JSON document with `seed`, turning serde's failures into an [`ExtractError`] that
/// names the format, the JSON path and the position.
pub(crate) fn read_json<R, S>(format: Format, reader: R, seed: S) -> Result<(), ExtractError>
where
    R: Read,
    S: for<'de> DeserializeSeed<'de, Value = ()>,
{
    let reader = skip_utf8_bom(reader)
        .map_err(|e| ExtractError(format!("cannot read the {}: {e}", format.title())))?;
    let mut de = serde_json::Deserializer::from_reader(BufReader::with_capacity(64 * 1024, reader));
    let mut track = serde_path_to_error::Track::new();
    let outcome = seed.deserialize(serde_path_to_error::Deserializer::new(&mut de, &mut track));
    let result = outcome.and_then(|()| de.end());
    result.map_err(|e| {
        let path = track.path().to_string();
        json_error(format, &path, &e)
    })
}

/// `reader` without a leading UTF-8 byte order mark: detection tolerates one (Windows tools
/// write it), `serde_json` would not.
fn skip_utf8_bom<R: Read>(mut reader: R) -> io::Result<impl Read> {
    const BOM: &[u8] = b"\xEF\xBB\xBF";
    let mut head = [0u8; 3];
    let mut filled = 0;
    while filled < head.len() {
        match reader.read(&mut head[filled..]) {
            Ok(0) => break,
            // `min`: a reader claiming more than it was given must not make us panic.
            Ok(n) => filled = (filled + n).min(head.len()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let head = &head[..filled];
    let kept = head.strip_prefix(BOM).unwrap_or(head);
    Ok(io::Cursor::new(kept.to_vec()).chain(reader))
}

fn json_error(format: Format, path: &str, err: &serde_json::Error) -> ExtractError {
    use serde_json::error::Category;
    let message = excerpt(&err.to_string());
    ExtractError(match err.classify() {
        Category::Io => format!("cannot read the {}: {message}", format.title()),
        Category::Syntax | Category::Eof => {
            format!("not a valid {}: invalid JSON: {message}", format.title())
        }
        Category::Data if path.is_empty() || path == "." => {
            format!("not a valid {}: {message}", format.title())
        }
        Category::Data => format!(
            "not a valid {}: at {}: {message}",
            format.title(),
            excerpt(path)
        ),
    })
}

/// At most 200 characters of `s`, so that messages do not repeat hostile input at length.
pub(crate) fn excerpt(s: &str) -> String {
    const MAX: usize = 200;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &s[..cut]),
        None => s.to_string(),
    }
}

/// A JSON array (or `null`, read as empty) whose elements are read one at a time with the seed
/// `&mut S`, which keeps its state from one element to the next.
pub(crate) struct Elements<'a, S>(pub(crate) &'a mut S);

impl<'de, S> DeserializeSeed<'de> for Elements<'_, S>
where
    for<'x> &'x mut S: DeserializeSeed<'de, Value = ()>,
{
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, S> Visitor<'de> for Elements<'_, S>
where
    for<'x> &'x mut S: DeserializeSeed<'de, Value = ()>,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(&mut *self.0)?.is_some() {}
        Ok(())
    }
}

/// A JSON array (or `null`) of `T`, each element handed to a function as soon as it is read.
/// The function's `Err` becomes a data error at the element's path.
pub(crate) struct Each<T, F> {
    handle: F,
    element: PhantomData<fn() -> T>,
}

pub(crate) fn each<T, F>(handle: F) -> Each<T, F>
where
    F: FnMut(T) -> Result<(), String>,
{
    Each {
        handle,
        element: PhantomData,
    }
}

impl<'de, T, F> DeserializeSeed<'de> for Each<T, F>
where
    T: Deserialize<'de>,
    F: FnMut(T) -> Result<(), String>,
{
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, T, F> Visitor<'de> for Each<T, F>
where
    T: Deserialize<'de>,
    F: FnMut(T) -> Result<(), String>,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        while seq
            .next_element_seed(ElementSeed {
                handle: &mut self.handle,
                element: PhantomData,
            })?
            .is_some()
        {}
        Ok(())
    }
}

/// Reads one element and hands it over inside the element's own deserialisation, so that a
/// rejection is reported at the element's path.
struct ElementSeed<'f, T, F> {
    handle: &'f mut F,
    element: PhantomData<fn() -> T>,
}

impl<'de, T, F> DeserializeSeed<'de> for ElementSeed<'_, T, F>
where
    T: Deserialize<'de>,
    F: FnMut(T) -> Result<(), String>,
{
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        let item = T::deserialize(deserializer)?;
        (self.handle)(item).map_err(de::Error::custom)
    }
}

/// An object of which only the member `key` matters: its value goes to `seed`, every other
/// member is skipped. The value is `None` when the member is absent (or the object `null`).
pub(crate) struct Member<'k, S> {
    key: &'k str,
    seed: Option<S>,
}

impl<'k, S> Member<'k, S> {
    pub(crate) fn new(key: &'k str, seed: S) -> Self {
        Member {
            key,
            seed: Some(seed),
        }
    }
}

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for Member<'_, S> {
    type Value = Option<S::Value>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for Member<'_, S> {
    type Value = Option<S::Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an object with \"{}\"", self.key)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut value = None;
        while let Some(matches) = map.next_key_seed(KeyIs(self.key))? {
            match self.seed.take() {
                Some(seed) if matches => value = Some(map.next_value_seed(seed)?),
                other => {
                    self.seed = other;
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(value)
    }
}

/// Compares an object key with an expected one without keeping it.
struct KeyIs<'k>(&'k str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        Ok(key == self.0)
    }
}

/// A string where a free-form bag (SARIF `properties`, OSV `database_specific`) may hold
/// anything: any other value is skipped and reads as absent.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct LooseString(pub(crate) Option<String>);

/// A number, or a string holding one (`"security-severity": "7.5"`); anything else is absent.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct LooseNumber(pub(crate) Option<f64>);

/// Reads any JSON value; scalars are offered to `scalar`, containers are skipped.
struct Loose<T>(fn(Scalar<'_>) -> Option<T>);

enum Scalar<'a> {
    Str(&'a str),
    Number(f64),
    Other,
}

impl<'de, T> Visitor<'de> for Loose<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok((self.0)(Scalar::Other))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok((self.0)(Scalar::Number(v as f64)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok((self.0)(Scalar::Number(v as f64)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok((self.0)(Scalar::Number(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok((self.0)(Scalar::Str(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_seq(seq)?;
        Ok(None)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        IgnoredAny.visit_map(map)?;
        Ok(None)
    }
}

impl<'de> Deserialize<'de> for LooseString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(Loose(|s| match s {
                Scalar::Str(s) => Some(s.to_string()),
                _ => None,
            }))
            .map(LooseString)
    }
}

impl<'de> Deserialize<'de> for LooseNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(Loose(|s| match s {
                Scalar::Str(s) => s.trim().parse::<f64>().ok().filter(|n| n.is_finite()),
                Scalar::Number(n) => Some(n),
                Scalar::Other => None,
            }))
            .map(LooseNumber)
    }
}

/// For arrays that producers write as `null` when empty (Go's nil slices).
pub(crate) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `Some(s)` unless `s` is absent or blank.
pub(crate) fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

/// The first entry of a comma-separated version list (`"1.2.3, 1.3.1"` → `1.2.3`).
fn first_version(list: &str) -> Option<String> {
    list.split(',')
        .map(str::trim)
        .find(|v| !v.is_empty())
        .map(str::to_string)
}

/// `candidates` without `id`, blanks and repeats, in order.
pub(crate) fn distinct_aliases(
    id: &str,
    candidates: impl IntoIterator<Item = String>,
) -> Vec<String> {
    let mut seen = HashSet::new();
    candidates
        .into_iter()
        .filter(|a| !a.trim().is_empty() && a != id && seen.insert(a.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cvss3_base_scores_match_the_specification_examples() {
        let cases = [
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:H", Some(7.5)),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", Some(9.8)),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", Some(10.0)),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:L/A:H", Some(8.6)),
            ("AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:H/A:N", Some(7.5)),
            ("CVSS:3.0/AV:L/AC:L/PR:L/UI:N/S:U/C:H/I:N/A:N", Some(5.5)),
            ("CVSS:3.1/AV:N/AC:L/PR:L/UI:R/S:C/C:L/I:L/A:N", Some(5.4)),
            ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", Some(0.0)),
            (
                "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
                None,
            ),
            ("AAV:N/AC:L/PR:N/UI:N/S:U/C:H/I:N/A:H", None),
            ("nonsense", None),
        ];
        for (vector, expected) in cases {
            assert_eq!(cvss3_base_score(vector), expected, "{vector}");
        }
    }

    #[test]
    fn vulnerability_ids_are_found_inside_rule_names() {
        assert_eq!(vulnerability_ids("CVE-2005-2541-tar"), ["CVE-2005-2541"]);
        assert_eq!(
            vulnerability_ids("GHSA-hv5j-3h9f-99c2 and CVE-2023-28755"),
            ["GHSA-hv5j-3h9f-99c2", "CVE-2023-28755"]
        );
        assert!(vulnerability_ids("XCVE-2005-2541 CVE-20-1 GHSA-short").is_empty());
    }

    #[test]
    fn ecosystem_purls_follow_the_purl_spec() {
        let cases = [
            (
                "npm",
                "@babel/core",
                Some("7.0.0"),
                Some("pkg:npm/%40babel/core@7.0.0"),
            ),
            (
                "PyPI",
                "Django_Rest",
                Some("1.0"),
                Some("pkg:pypi/django-rest@1.0"),
            ),
            (
                "Go",
                "github.com/gogo/protobuf",
                Some("1.3.1"),
                Some("pkg:golang/github.com/gogo/protobuf@1.3.1"),
            ),
            (
                "crates.io",
                "regex",
                Some("1.5.1"),
                Some("pkg:cargo/regex@1.5.1"),
            ),
            (
                "Maven",
                "org.acme:lib",
                Some("1.0+b1"),
                Some("pkg:maven/org.acme/lib@1.0%2Bb1"),
            ),
            ("Maven", "no-group", Some("1"), None),
            ("Debian", "tar", Some("1.34"), None),
            ("npm", "left-pad", None, Some("pkg:npm/left-pad")),
        ];
        for (ecosystem, name, version, expected) in cases {
            assert_eq!(
                ecosystem_purl(ecosystem, name, version).as_deref(),
                expected,
                "{ecosystem} {name}"
            );
        }
    }

    #[test]
    fn purl_name_and_version() {
        assert_eq!(
            purl_name_version("pkg:maven/org.acme/c1@1.1.4?type=jar"),
            (Some("c1".into()), Some("1.1.4".into()))
        );
        assert_eq!(purl_name_version("pkg:npm/x"), (Some("x".into()), None));
        assert_eq!(purl_name_version("pkg:"), (None, None));
    }
}
