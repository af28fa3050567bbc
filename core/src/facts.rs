//! Facts: what a piece of evidence says (an SBOM's components, a scan's findings, a VEX
//! document's statements, a provenance attestation's builder and source), extracted once at
//! ingest and kept by blob digest, since they depend only on the bytes.

use std::io::{self, Read};

use chrono::Utc;
use evault_schema::detect::Detection;
use evault_schema::extract::{
    self, Component, ExtractError, Extracted, Finding, Limits, Provenance, Severity, VexStatement,
    VexStatus,
};
use evault_schema::{Format, Kind};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::index::SqliteIndex;
use crate::record::format_time;

/// Largest document read whole to find its provenance.
pub const PROVENANCE_LIMIT: u64 = 16 << 20;

/// Everything extracted from one blob.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub components: Extracted<Component>,
    pub findings: Extracted<Finding>,
    pub statements: Extracted<VexStatement>,
    pub provenance: Option<Provenance>,
    /// evault's own document (approval, deploy, rollback), as JSON.
    pub native: Option<serde_json::Value>,
}

/// Opens the content again from its start.
pub type Reopen<'a> = dyn FnMut() -> io::Result<Box<dyn Read + Send>> + 'a;

/// Extracts what content of this detection says. `reopen` gives a fresh reader for each pass.
pub fn extract(
    detection: &Detection,
    size: u64,
    reopen: &mut Reopen<'_>,
    limits: &Limits,
) -> std::result::Result<Facts, ExtractError> {
    let mut open = || reopen().map_err(|e| ExtractError(format!("cannot read the content: {e}")));
    let format = detection.format;
    let mut facts = Facts {
        native: detection
            .native
            .as_ref()
            .and_then(|doc| serde_json::to_value(doc).ok()),
        ..Facts::default()
    };
    match format {
        Format::CyclonedxJson => {
            facts.components = extract::sbom::components(format, open()?, limits)?;
            if detection.kind != Kind::Sbom {
                facts.findings = extract::scan::findings(format, open()?, limits)?;
                facts.statements = extract::vex::statements(format, open()?, limits)?;
            }
        }
        Format::CyclonedxXml | Format::SpdxJson | Format::SpdxTagValue => {
            facts.components = extract::sbom::components(format, open()?, limits)?;
        }
        Format::Sarif | Format::GrypeJson | Format::TrivyJson | Format::OsvScannerJson => {
            facts.findings = extract::scan::findings(format, open()?, limits)?;
        }
        Format::Openvex | Format::Csaf => {
            facts.statements = extract::vex::statements(format, open()?, limits)?;
        }
        Format::IntotoStatement
        | Format::DsseEnvelope
        | Format::SigstoreBundle
        | Format::NpmAttestations
        | Format::GcbProvenance
        | Format::SlsaPredicate
            if size <= PROVENANCE_LIMIT =>
        {
            let mut bytes = Vec::with_capacity(size as usize);
            open()?
                .take(PROVENANCE_LIMIT + 1)
                .read_to_end(&mut bytes)
                .map_err(|e| ExtractError(format!("cannot read the content: {e}")))?;
            facts.provenance = extract::provenance::provenance(format, &bytes)?;
        }
        _ => {}
    }
    Ok(facts)
}

/// Stored counts for one blob.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FactCounts {
    pub components: u64,
    pub findings: u64,
    pub statements: u64,
    pub truncated: bool,
}

fn json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// Inserts a blob's facts inside the push transaction (once per blob); returns whether they
/// were new.
pub(crate) fn insert(tx: &Transaction<'_>, digest: &str, facts: &Facts) -> rusqlite::Result<bool> {
    let truncated =
        facts.components.truncated || facts.findings.truncated || facts.statements.truncated;
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO blob_facts (digest, components_total, findings_total, \
         statements_total, truncated, native, extracted_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            digest,
            facts.components.total as i64,
            facts.findings.total as i64,
            facts.statements.total as i64,
            truncated,
            facts.native.as_ref().map(json),
            format_time(Utc::now()),
        ],
    )?;
    if inserted == 0 {
        return Ok(false);
    }
    let mut component = tx.prepare_cached(
        "INSERT INTO components (digest, name, version, purl, licenses, hashes) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for c in &facts.components.items {
        component.execute(params![
            digest,
            c.name,
            c.version,
            c.purl,
            json(&c.licenses),
            json(&c.hashes)
        ])?;
    }
    let mut finding = tx.prepare_cached(
        "INSERT INTO findings (digest, vuln_id, aliases, severity, package, version, purl, \
         fixed_version) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for f in &facts.findings.items {
        finding.execute(params![
            digest,
            f.id,
            json(&f.aliases),
            f.severity.as_str(),
            f.package,
            f.version,
            f.purl,
            f.fixed_version
        ])?;
    }
    let mut statement = tx.prepare_cached(
        "INSERT INTO vex_statements (digest, vulnerability, aliases, products, status, \
         justification) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for s in &facts.statements.items {
        statement.execute(params![
            digest,
            s.vulnerability,
            json(&s.aliases),
            json(&s.products),
            s.status.as_str(),
            s.justification
        ])?;
    }
    if let Some(p) = &facts.provenance {
        tx.execute(
            "INSERT OR IGNORE INTO provenance (digest, predicate_type, builder_id, build_type, \
             source_repo, source_commit, subjects) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                digest,
                p.predicate_type,
                p.builder_id,
                p.build_type,
                p.source_repo,
                p.source_commit,
                json(&p.subjects)
            ],
        )?;
    }
    Ok(true)
}

fn from_json<T: serde::de::DeserializeOwned + Default>(text: Option<String>) -> T {
    text.and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

fn status_from(s: &str) -> Option<VexStatus> {
    match s {
        "not_affected" => Some(VexStatus::NotAffected),
        "affected" => Some(VexStatus::Affected),
        "fixed" => Some(VexStatus::Fixed),
        "under_investigation" => Some(VexStatus::UnderInvestigation),
        _ => None,
    }
}

fn severity_from(s: &str) -> Severity {
    Severity::ALL
        .into_iter()
        .find(|v| v.as_str() == s)
        .unwrap_or(Severity::Unknown)
}

/// Reading stored facts.
pub trait FactRead {
    fn fact_counts(&self, digest: &str) -> Result<Option<FactCounts>>;
    fn native(&self, digest: &str) -> Result<Option<serde_json::Value>>;
    fn findings(&self, digest: &str) -> Result<Vec<Finding>>;
    fn provenance(&self, digest: &str) -> Result<Option<Provenance>>;
    /// Statements of every VEX record of a blueprint version, newest record first, with the
    /// id of the record each comes from.
    fn vex_for(&self, blueprint: &str, version: &str) -> Result<Vec<(String, VexStatement)>>;
    /// Counts of a VEX blob's statements by status.
    fn vex_status_counts(&self, digest: &str) -> Result<Vec<(String, u64)>>;
}

/// Facts as the index keeps them, shared by the server's threads.
pub trait FactStore: FactRead + Send + Sync {
    /// Whether facts were extracted for this blob.
    fn has_facts(&self, digest: &str) -> Result<bool>;
}

/// [`FactRead`] on one connection (inside a caller's transaction), optionally as the vault knew
/// it at some time: `known_by` (an index timestamp) leaves out VEX records ingested later.
pub struct FactReader<'c> {
    pub conn: &'c Connection,
    pub known_by: Option<String>,
}

impl FactStore for SqliteIndex {
    fn has_facts(&self, digest: &str) -> Result<bool> {
        let conn = self.conn()?;
        Ok(conn
            .query_row(
                "SELECT 1 FROM blob_facts WHERE digest = ?1",
                params![digest],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }
}

impl FactRead for SqliteIndex {
    fn fact_counts(&self, digest: &str) -> Result<Option<FactCounts>> {
        FactReader::now(&*self.conn()?).fact_counts(digest)
    }

    fn native(&self, digest: &str) -> Result<Option<serde_json::Value>> {
        FactReader::now(&*self.conn()?).native(digest)
    }

    fn findings(&self, digest: &str) -> Result<Vec<Finding>> {
        FactReader::now(&*self.conn()?).findings(digest)
    }

    fn provenance(&self, digest: &str) -> Result<Option<Provenance>> {
        FactReader::now(&*self.conn()?).provenance(digest)
    }

    fn vex_for(&self, blueprint: &str, version: &str) -> Result<Vec<(String, VexStatement)>> {
        FactReader::now(&*self.conn()?).vex_for(blueprint, version)
    }

    fn vex_status_counts(&self, digest: &str) -> Result<Vec<(String, u64)>> {
        FactReader::now(&*self.conn()?).vex_status_counts(digest)
    }
}

impl<'c> FactReader<'c> {
    /// What the index holds now.
    pub fn now(conn: &'c Connection) -> Self {
        FactReader {
            conn,
            known_by: None,
        }
    }
}

impl FactRead for FactReader<'_> {
    fn fact_counts(&self, digest: &str) -> Result<Option<FactCounts>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT components_total, findings_total, statements_total, truncated \
                 FROM blob_facts WHERE digest = ?1",
            )?
            .query_row(params![digest], |r| {
                Ok(FactCounts {
                    components: r.get::<_, i64>(0)?.max(0) as u64,
                    findings: r.get::<_, i64>(1)?.max(0) as u64,
                    statements: r.get::<_, i64>(2)?.max(0) as u64,
                    truncated: r.get(3)?,
                })
            })
            .optional()?)
    }

    fn native(&self, digest: &str) -> Result<Option<serde_json::Value>> {
        let text: Option<Option<String>> = self
            .conn
            .prepare_cached("SELECT native FROM blob_facts WHERE digest = ?1")?
            .query_row(params![digest], |r| r.get(0))
            .optional()?;
        Ok(text.flatten().and_then(|t| serde_json::from_str(&t).ok()))
    }

    fn findings(&self, digest: &str) -> Result<Vec<Finding>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT vuln_id, aliases, severity, package, version, purl, fixed_version \
             FROM findings WHERE digest = ?1 ORDER BY rowid",
        )?;
        let rows = stmt.query_map(params![digest], |r| finding_at(r, 0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn provenance(&self, digest: &str) -> Result<Option<Provenance>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT predicate_type, builder_id, build_type, source_repo, source_commit, \
                 subjects FROM provenance WHERE digest = ?1",
            )?
            .query_row(params![digest], |r| {
                Ok(Provenance {
                    predicate_type: r.get(0)?,
                    builder_id: r.get(1)?,
                    build_type: r.get(2)?,
                    source_repo: r.get(3)?,
                    source_commit: r.get(4)?,
                    subjects: from_json(r.get(5)?),
                })
            })
            .optional()?)
    }

    fn vex_for(&self, blueprint: &str, version: &str) -> Result<Vec<(String, VexStatement)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT r.id, v.vulnerability, v.aliases, v.products, v.status, v.justification \
             FROM records r JOIN vex_statements v ON v.digest = r.digest \
             WHERE r.blueprint_name = ?1 AND r.blueprint_version = ?2 AND r.kind = 'vex' \
             AND (?3 IS NULL OR r.ingested_at <= ?3) \
             ORDER BY r.seq DESC, v.rowid",
        )?;
        let rows = stmt.query_map(params![blueprint, version, self.known_by], |r| {
            let status: String = r.get(4)?;
            Ok((
                r.get::<_, String>(0)?,
                VexStatement {
                    vulnerability: r.get(1)?,
                    aliases: from_json(r.get(2)?),
                    products: from_json(r.get(3)?),
                    status: status_from(&status).unwrap_or(VexStatus::UnderInvestigation),
                    justification: r.get(5)?,
                },
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn vex_status_counts(&self, digest: &str) -> Result<Vec<(String, u64)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT status, count(*) FROM vex_statements WHERE digest = ?1 GROUP BY status \
             ORDER BY status",
        )?;
        let rows = stmt.query_map(params![digest], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)?.max(0) as u64))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// A finding from a row holding `vuln_id, aliases, severity, package, version, purl,
/// fixed_version` from column `at` on.
pub(crate) fn finding_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Finding> {
    let severity: String = r.get(at + 2)?;
    Ok(Finding {
        id: r.get(at)?,
        aliases: from_json(r.get(at + 1)?),
        severity: severity_from(&severity),
        package: r.get(at + 3)?,
        version: r.get(at + 4)?,
        purl: r.get(at + 5)?,
        fixed_version: r.get(at + 6)?,
    })
}

/// Counts of findings by severity, every severity present (zero when none).
pub fn by_severity<'a>(
    findings: impl Iterator<Item = &'a Finding>,
) -> serde_json::Map<String, serde_json::Value> {
    let mut counts = serde_json::Map::new();
    for s in Severity::ALL {
        counts.insert(s.as_str().into(), 0.into());
    }
    for f in findings {
        if let Some(n) = counts.get_mut(f.severity.as_str()) {
            *n = (n.as_u64().unwrap_or(0) + 1).into();
        }
    }
    counts
}

impl From<ExtractError> for Error {
    fn from(e: ExtractError) -> Self {
        Error::Unprocessable(e.0)
    }
}
