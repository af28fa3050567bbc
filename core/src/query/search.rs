//! `evault search component` and `evault search vuln`: where is it, and is it live?

use std::collections::BTreeMap;

use evault_schema::extract::apply::{applies, suppresses};
use evault_schema::extract::{Finding, VexStatus};
use rusqlite::ToSql;
use serde::{Deserialize, Serialize};

use super::{Live, QueryContext, Reader, on_snapshot};
use crate::error::{Error, Result};
use crate::facts::{FactRead, finding_at};
use crate::record::{Blueprint, format_time};
use crate::vault::Vault;

/// Longest query accepted.
const MAX_QUERY: usize = 2048;

/// What `search component` looks for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ComponentQuery {
    /// A package URL with a version: that version (with any qualifiers or subpath).
    Purl(String),
    /// A package URL without a version: every version.
    PurlAnyVersion(String),
    /// A component name, optionally `@version`.
    Name(String, Option<String>),
}

fn parse_component(q: &str) -> Result<ComponentQuery> {
    let q = q.trim();
    if q.is_empty() || q.len() > MAX_QUERY || q.chars().any(char::is_control) {
        return Err(Error::Invalid(format!(
            "invalid component '{}': expected a package URL (pkg:npm/lodash@4.17.21) or a name \
             with an optional @version (lodash@4.17.21)",
            evault_schema::validate::excerpt(q)
        )));
    }
    if q.starts_with("pkg:") {
        // The version follows the last '@' after the last '/' (scoped npm names contain '@').
        let path = q.split(['?', '#']).next().unwrap_or(q);
        let name_part = path.rsplit('/').next().unwrap_or(path);
        return Ok(if name_part.contains('@') {
            ComponentQuery::Purl(path.to_string())
        } else {
            ComponentQuery::PurlAnyVersion(path.to_string())
        });
    }
    Ok(match q.rsplit_once('@') {
        Some((name, version)) if !name.is_empty() && !version.is_empty() => {
            ComponentQuery::Name(name.to_string(), Some(version.to_string()))
        }
        _ => ComponentQuery::Name(q.to_string(), None),
    })
}

/// A component as an SBOM lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FoundComponent {
    pub name: String,
    pub version: Option<String>,
    pub purl: Option<String>,
}

/// One blueprint version whose SBOMs contain the component.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentVersion {
    pub blueprint: Blueprint,
    pub git_sha: String,
    /// The matching components, as listed.
    pub components: Vec<FoundComponent>,
    /// The records (SBOMs) listing them.
    pub sboms: Vec<String>,
    /// Where this version is live.
    pub live: Vec<Live>,
}

/// `evault search component`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComponentSearch {
    pub as_of: Option<String>,
    pub query: String,
    /// Blueprint versions whose SBOMs list the component, by blueprint and version.
    pub versions: Vec<ComponentVersion>,
    /// Records listing it, in all.
    pub sbom_count: usize,
    /// Every live deployment of a version listing it (complete even when `versions` is
    /// truncated).
    pub live: Vec<Live>,
    /// `versions` was cut at the limit.
    pub truncated: bool,
}

/// A finding of the vulnerability in one scan, with the VEX statement that applies to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VulnFinding {
    /// The scan record.
    pub record_id: String,
    #[serde(flatten)]
    pub finding: Finding,
    /// The newest VEX statement of the version about this finding, if any.
    pub vex: Option<AppliedVex>,
    /// Whether VEX takes it out of the count (not_affected or fixed).
    pub suppressed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedVex {
    pub status: VexStatus,
    pub justification: Option<String>,
    /// The VEX record it comes from.
    pub record_id: String,
}

/// One blueprint version a scan found the vulnerability in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VulnVersion {
    pub blueprint: Blueprint,
    pub git_sha: String,
    pub findings: Vec<VulnFinding>,
    /// Some finding is not suppressed by VEX.
    pub exposed: bool,
    pub live: Vec<Live>,
}

/// `evault search vuln`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VulnSearch {
    pub as_of: Option<String>,
    pub query: String,
    pub versions: Vec<VulnVersion>,
    /// Live deployments of exposed versions: "are we exposed in production right now?".
    pub exposed_live: Vec<Live>,
    /// Live deployments of versions where VEX suppresses every finding.
    pub suppressed_live: Vec<Live>,
}

/// Column `i` of `row` as text, without copying it.
fn text<'r>(row: &'r rusqlite::Row<'_>, i: usize) -> rusqlite::Result<&'r str> {
    row.get_ref(i)?.as_str().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    })
}

impl Vault {
    /// Blueprint versions whose SBOMs list a component (a package URL, or a name with an
    /// optional `@version`), and where they are live; at most `limit` versions listed.
    pub fn search_component(
        &self,
        query: &str,
        limit: usize,
        ctx: &QueryContext,
    ) -> Result<ComponentSearch> {
        let parsed = parse_component(query)?;
        on_snapshot(self.index.as_ref(), |conn| {
            let reader = Reader::new(conn, ctx);
            let (condition, params): (&str, Vec<String>) = match &parsed {
                ComponentQuery::Purl(p) => (
                    "c.purl = ?1 OR (c.purl >= ?2 AND c.purl < ?3) \
                     OR (c.purl >= ?4 AND c.purl < ?5)",
                    vec![
                        p.clone(),
                        format!("{p}?"),
                        format!("{p}@"),
                        format!("{p}#"),
                        format!("{p}$"),
                    ],
                ),
                ComponentQuery::PurlAnyVersion(p) => (
                    "c.purl = ?1 OR (c.purl >= ?2 AND c.purl < ?3) \
                     OR (c.purl >= ?4 AND c.purl < ?5)",
                    vec![
                        p.clone(),
                        format!("{p}?"),
                        format!("{p}A"),
                        format!("{p}#"),
                        format!("{p}$"),
                    ],
                ),
                ComponentQuery::Name(n, Some(v)) => {
                    ("c.name = ?1 AND c.version = ?2", vec![n.clone(), v.clone()])
                }
                ComponentQuery::Name(n, None) => ("c.name = ?1", vec![n.clone()]),
            };
            let n = params.len() + 1;
            // In version order, so that each version's rows come together and each
            // blueprint's live deployments are read once, when its rows begin; past the limit
            // only what `sbom_count` and `live` need is kept.
            let sql = format!(
                "SELECT r.id, r.blueprint_name, r.blueprint_version, r.git_sha, c.name, \
                 c.version, c.purl FROM components c JOIN records r ON r.digest = c.digest \
                 WHERE ({condition}) AND (?{n} IS NULL OR r.ingested_at <= ?{n}) \
                 ORDER BY r.blueprint_name, r.blueprint_version, r.git_sha, r.id"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut all: Vec<&dyn ToSql> = params.iter().map(|p| p as &dyn ToSql).collect();
            all.push(&reader.known_by);
            let mut rows = stmt.query(all.as_slice())?;
            let mut versions: Vec<ComponentVersion> = Vec::new();
            let mut live = Vec::new();
            let (mut truncated, mut listed) = (false, false);
            let mut sbom_count = 0usize;
            // The blueprint whose rows these are and where its versions are live; the
            // version, commit and record of the previous row.
            let mut blueprint = String::new();
            let mut live_of: BTreeMap<String, Vec<Live>> = BTreeMap::new();
            let (mut version, mut sha, mut id) = (String::new(), String::new(), String::new());
            while let Some(row) = rows.next()? {
                let name = text(row, 1)?;
                if !reader.visible(name) {
                    continue;
                }
                let (row_version, row_sha, row_id) = (text(row, 2)?, text(row, 3)?, text(row, 0)?);
                let new_blueprint = name != blueprint;
                if new_blueprint {
                    name.clone_into(&mut blueprint);
                    live_of = reader.live_of(&blueprint)?;
                }
                if new_blueprint || row_version != version || row_sha != sha {
                    row_version.clone_into(&mut version);
                    row_sha.clone_into(&mut sha);
                    // A version built from several commits appears once per commit; its
                    // live deployments are listed with the first.
                    let here = live_of.remove(&version).unwrap_or_default();
                    live.extend(here.iter().cloned());
                    listed = versions.len() < limit;
                    truncated |= !listed;
                    if listed {
                        versions.push(ComponentVersion {
                            blueprint: Blueprint {
                                name: blueprint.clone(),
                                version: version.clone(),
                            },
                            git_sha: sha.clone(),
                            components: Vec::new(),
                            sboms: Vec::new(),
                            live: here,
                        });
                    }
                }
                let new_record = row_id != id;
                if new_record {
                    sbom_count += 1;
                    row_id.clone_into(&mut id);
                }
                if let (true, Some(v)) = (listed, versions.last_mut()) {
                    if new_record {
                        v.sboms.push(id.clone());
                    }
                    v.components.push(FoundComponent {
                        name: row.get(4)?,
                        version: row.get(5)?,
                        purl: row.get(6)?,
                    });
                }
            }
            for v in &mut versions {
                v.components.sort();
                v.components.dedup();
            }
            Ok(ComponentSearch {
                as_of: ctx.as_of.map(format_time),
                query: query.trim().to_string(),
                versions,
                sbom_count,
                live,
                truncated,
            })
        })
    }

    /// Findings of a vulnerability (by id or alias, any case), with their VEX status, the
    /// blueprint versions they are in and where those are live.
    pub fn search_vuln(&self, id: &str, ctx: &QueryContext) -> Result<VulnSearch> {
        let id = id.trim();
        if id.is_empty()
            || id.len() > 256
            || id
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || c == '"')
        {
            return Err(Error::Invalid(format!(
                "invalid vulnerability id '{}': expected e.g. CVE-2024-3094 or \
                 GHSA-xxxx-xxxx-xxxx",
                evault_schema::validate::excerpt(id)
            )));
        }
        on_snapshot(self.index.as_ref(), |conn| {
            let reader = Reader::new(conn, ctx);
            let escaped = id
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            let pattern = format!("%\"{escaped}\"%");
            // The id column is indexed; aliases are a JSON array, matched by a scan of the
            // findings that have any.
            let mut stmt = conn.prepare_cached(
                "SELECT r.id, r.blueprint_name, r.blueprint_version, r.git_sha, \
                 f.vuln_id, f.aliases, f.severity, f.package, f.version, f.purl, f.fixed_version \
                 FROM findings f JOIN records r ON r.digest = f.digest \
                 WHERE f.rowid IN (SELECT rowid FROM findings WHERE vuln_id = ?1 COLLATE NOCASE \
                   UNION SELECT rowid FROM findings WHERE aliases != '[]' \
                   AND aliases LIKE ?2 ESCAPE '\\') \
                 AND (?3 IS NULL OR r.ingested_at <= ?3) ORDER BY r.seq, f.rowid",
            )?;
            let mut rows = stmt.query(rusqlite::params![id, pattern, reader.known_by])?;
            type Key = (String, String, String);
            let mut found: BTreeMap<Key, Vec<(String, Finding)>> = BTreeMap::new();
            while let Some(row) = rows.next()? {
                let blueprint: String = row.get(1)?;
                if !reader.visible(&blueprint) {
                    continue;
                }
                let mut finding = finding_at(row, 4)?;
                finding.aliases.sort();
                found
                    .entry((blueprint, row.get(2)?, row.get(3)?))
                    .or_default()
                    .push((row.get(0)?, finding));
            }
            let mut live_of =
                reader.live_by_version(found.keys().map(|(name, _, _)| name.clone()))?;
            let facts = reader.facts();
            let mut versions = Vec::new();
            let (mut exposed_live, mut suppressed_live) = (Vec::new(), Vec::new());
            for ((name, version, git_sha), findings) in found {
                let vex = facts.vex_for(&name, &version)?;
                let findings: Vec<VulnFinding> = findings
                    .into_iter()
                    .map(|(record_id, finding)| {
                        let applied =
                            vex.iter()
                                .find(|(_, s)| applies(s, &finding))
                                .map(|(vex_id, s)| AppliedVex {
                                    status: s.status,
                                    justification: s.justification.clone(),
                                    record_id: vex_id.clone(),
                                });
                        VulnFinding {
                            record_id,
                            suppressed: suppresses(applied.as_ref().map(|a| a.status)),
                            vex: applied,
                            finding,
                        }
                    })
                    .collect();
                let exposed = findings.iter().any(|f| !f.suppressed);
                let live = live_of
                    .remove(&(name.clone(), version.clone()))
                    .unwrap_or_default();
                if exposed {
                    exposed_live.extend(live.iter().cloned());
                } else {
                    suppressed_live.extend(live.iter().cloned());
                }
                versions.push(VulnVersion {
                    blueprint: Blueprint { name, version },
                    git_sha,
                    findings,
                    exposed,
                    live,
                });
            }
            Ok(VulnSearch {
                as_of: ctx.as_of.map(format_time),
                query: id.to_string(),
                versions,
                exposed_live,
                suppressed_live,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn component_queries_parse_purls_names_and_versions() {
        let p = |q: &str| parse_component(q).unwrap();
        assert_eq!(
            p("pkg:npm/lodash@4.17.21"),
            ComponentQuery::Purl("pkg:npm/lodash@4.17.21".into())
        );
        assert_eq!(
            p("pkg:npm/%40angular/core"),
            ComponentQuery::PurlAnyVersion("pkg:npm/%40angular/core".into())
        );
        assert_eq!(
            p("pkg:npm/@angular/core"),
            ComponentQuery::PurlAnyVersion("pkg:npm/@angular/core".into())
        );
        assert_eq!(
            p("pkg:deb/debian/openssl@3.0.11?arch=amd64"),
            ComponentQuery::Purl("pkg:deb/debian/openssl@3.0.11".into())
        );
        assert_eq!(
            p("lodash@4.17.21"),
            ComponentQuery::Name("lodash".into(), Some("4.17.21".into()))
        );
        assert_eq!(
            p("@angular/core"),
            ComponentQuery::Name("@angular/core".into(), None)
        );
        assert_eq!(
            p("@angular/core@17.0.1"),
            ComponentQuery::Name("@angular/core".into(), Some("17.0.1".into()))
        );
        assert!(parse_component("").is_err());
        assert!(parse_component("a\nb").is_err());
    }
}
