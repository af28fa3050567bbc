//! Evidence records: one blob linked to what it is evidence of.

use chrono::{DateTime, SecondsFormat, Utc};
use evault_schema::{Format, Kind};
use serde::{Deserialize, Serialize};

use crate::verification::Verification;
use sha2::{Digest as _, Sha256};

/// A blueprint version: the versioned definition of a deployable service or agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blueprint {
    pub name: String,
    pub version: String,
}

/// What a piece of evidence is linked to. Together with the blob digest and the kind, the links
/// determine the record's id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Links {
    pub blueprint: Blueprint,
    /// 40 or 64 lowercase hex characters.
    pub git_sha: String,
    pub repo: Option<String>,
    pub run_id: Option<String>,
    pub environment: Option<String>,
    /// `sha256:<hex>` digests of the artifacts the evidence is about, sorted, without duplicates.
    pub subjects: Vec<String>,
}

/// One piece of evidence. Serialised with exactly these fields, in this order (the JSON
/// contract of `evault show --json` and `evault ls --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub kind: Kind,
    pub format: Format,
    pub format_version: Option<String>,
    pub predicate_type: Option<String>,
    /// `sha256:<hex>` of the original bytes.
    pub digest: String,
    /// Original size in bytes.
    pub size: u64,
    pub blueprint: Blueprint,
    pub git_sha: String,
    pub repo: Option<String>,
    pub run_id: Option<String>,
    pub environment: Option<String>,
    pub subjects: Vec<String>,
    /// Who pushed it: the OS user or `--actor` in embedded mode, the token's name on a server.
    pub producer: String,
    /// RFC 3339, UTC, microseconds.
    pub ingested_at: String,
    /// Path of the file inside the push or bundle.
    pub source_path: String,
    /// Is the evidence signed by someone the vault trusts? (`None` only for records pushed
    /// before verification existed.)
    pub verification: Option<Verification>,
    /// How long it is kept (`None` only from an older server, or for a record already present
    /// in a push's answer before retention existed).
    #[serde(default)]
    pub retention: Option<crate::retention::Retention>,
}

/// A record with what its evidence says: `evault show --json` and `GET /v1/records/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordView {
    #[serde(flatten)]
    pub record: Record,
    /// See [`crate::summary`]; `null` when there is nothing to summarise.
    pub summary: serde_json::Value,
    /// The active legal holds on the record, by name: it is not deleted while there are any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<String>,
}

/// The id of the record linking blob `digest` as `kind` with `links`: the first 128 bits of a
/// SHA-256 over a canonical, versioned encoding, as 32 hex characters. Pushing the same bytes
/// with the same links is therefore idempotent, whoever pushes them and whenever.
pub fn record_id(digest: &str, kind: Kind, links: &Links) -> String {
    let mut subjects = links.subjects.clone();
    subjects.sort();
    subjects.dedup();
    let canonical = serde_json::json!([
        "evault/record/v1",
        digest,
        kind.as_str(),
        links.blueprint.name,
        links.blueprint.version,
        links.git_sha,
        links.repo,
        links.run_id,
        links.environment,
        subjects,
    ]);
    let hash = Sha256::digest(canonical.to_string().as_bytes());
    hex::encode(&hash[..16])
}

/// Timestamps as the index stores them: fixed width, so that text order is time order.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Filters of `evault ls` (every field narrows; `None` means any).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordFilter {
    pub blueprint: Option<String>,
    pub version: Option<String>,
    /// A full SHA or a prefix of at least 7 hex characters.
    pub git_sha: Option<String>,
    pub kind: Option<Kind>,
    pub format: Option<Format>,
    pub environment: Option<String>,
    pub run_id: Option<String>,
    pub subject: Option<String>,
    pub digest: Option<String>,
    /// Ingested at or after.
    pub since: Option<DateTime<Utc>>,
    /// Ingested before.
    pub until: Option<DateTime<Utc>>,
    /// Only blueprints matching one of these patterns (`*` wildcards); empty means any. This is
    /// how a token's scopes narrow what it may read.
    pub blueprint_patterns: Vec<String>,
    /// Only records older than this cursor (from a previous page).
    pub before: Option<Cursor>,
    /// Only records whose id starts with this (lowercase hex).
    pub id_prefix: Option<String>,
    pub limit: usize,
}

/// A position in the newest-first list of records: opaque to clients, which get it as
/// `next_cursor` and send it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(pub(crate) i64);

impl std::fmt::Display for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "r{}", self.0)
    }
}

impl std::str::FromStr for Cursor {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.strip_prefix('r')
            .and_then(|n| n.parse::<i64>().ok())
            .filter(|n| *n > 0)
            .map(Cursor)
            .ok_or_else(|| {
                format!(
                    "invalid cursor '{}': pass back a next_cursor value",
                    evault_schema::validate::excerpt(s)
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links() -> Links {
        Links {
            blueprint: Blueprint {
                name: "checkout-api".into(),
                version: "1.4.2".into(),
            },
            git_sha: "a".repeat(40),
            repo: None,
            run_id: Some("1234".into()),
            environment: None,
            subjects: vec!["sha256:".to_string() + &"b".repeat(64)],
        }
    }

    #[test]
    fn id_is_deterministic_and_depends_on_every_link() {
        let d = "sha256:".to_string() + &"c".repeat(64);
        let base = record_id(&d, Kind::Sbom, &links());
        assert_eq!(base.len(), 32);
        assert_eq!(base, record_id(&d, Kind::Sbom, &links()));
        let mut other = links();
        other.run_id = Some("1235".into());
        assert_ne!(base, record_id(&d, Kind::Sbom, &other));
        let mut other = links();
        other.environment = Some("production".into());
        assert_ne!(base, record_id(&d, Kind::Sbom, &other));
        assert_ne!(base, record_id(&d, Kind::VulnScan, &links()));
        let d2 = "sha256:".to_string() + &"d".repeat(64);
        assert_ne!(base, record_id(&d2, Kind::Sbom, &links()));
        // Subject order does not matter.
        let mut two = links();
        two.subjects.push("sha256:".to_string() + &"0".repeat(64));
        let mut reversed = two.clone();
        reversed.subjects.reverse();
        assert_eq!(
            record_id(&d, Kind::Sbom, &two),
            record_id(&d, Kind::Sbom, &reversed)
        );
    }

    #[test]
    fn times_are_fixed_width() {
        let t = DateTime::parse_from_rfc3339("2026-03-03T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(format_time(t), "2026-03-03T10:00:00.000000Z");
    }
}
