//! What evidence says, beyond what it is: the components of an SBOM, the findings of a scan,
//! the statements of a VEX document, the facts of a provenance attestation.
//!
//! Every extractor reads a document once from a reader, keeps only the fields it needs, and caps
//! what it collects at [`Limits::max_items`] (the rest is counted but dropped, and `truncated`
//! says so), so memory stays bounded on huge documents. Extractors never panic on hostile input:
//! a document they cannot read is an [`ExtractError`] naming the problem.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub mod apply;
pub mod junit;
pub mod provenance;
pub mod sbom;
pub mod scan;
pub mod vex;

/// Bounds on what one extraction keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most items (components, findings, statements) kept from one document.
    pub max_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_items: 50_000 }
    }
}

/// Items taken from one document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extracted<T> {
    pub items: Vec<T>,
    /// How many items the document holds (may exceed `items.len()` when truncated).
    pub total: u64,
    /// Some items were dropped at [`Limits::max_items`].
    pub truncated: bool,
}

impl<T> Default for Extracted<T> {
    fn default() -> Self {
        Extracted {
            items: Vec::new(),
            total: 0,
            truncated: false,
        }
    }
}

impl<T> Extracted<T> {
    /// Adds an item, respecting the limit.
    pub fn push(&mut self, item: T, limits: &Limits) {
        self.total += 1;
        if self.items.len() < limits.max_items {
            self.items.push(item);
        } else {
            self.truncated = true;
        }
    }
}

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ExtractError(pub String);

/// A software component listed by an SBOM.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Component {
    pub name: String,
    pub version: Option<String>,
    /// Package URL, e.g. `pkg:npm/lodash@4.17.20`.
    pub purl: Option<String>,
    /// SPDX license ids or expressions, or license names.
    pub licenses: Vec<String>,
    /// Algorithm (as the document spells it, e.g. `SHA-256`, `SHA256`) → lowercase hex.
    pub hashes: BTreeMap<String, String>,
}

/// Severity normalised across scanners.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Unknown,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Unknown => "unknown",
        }
    }

    /// From a scanner's word (`CRITICAL`, `High`, `moderate`, `important`, `negligible`, ...).
    pub fn from_label(label: &str) -> Severity {
        match label.trim().to_ascii_lowercase().as_str() {
            "critical" => Severity::Critical,
            "high" | "important" | "error" => Severity::High,
            "medium" | "moderate" | "warning" => Severity::Medium,
            "low" | "negligible" | "minor" | "note" | "info" | "informational" => Severity::Low,
            _ => Severity::Unknown,
        }
    }

    /// From a CVSS base score (0.0 to 10.0), per the CVSS v3 qualitative scale.
    pub fn from_cvss(score: f64) -> Severity {
        if !score.is_finite() || !(0.0..=10.0).contains(&score) {
            Severity::Unknown
        } else if score >= 9.0 {
            Severity::Critical
        } else if score >= 7.0 {
            Severity::High
        } else if score >= 4.0 {
            Severity::Medium
        } else if score > 0.0 {
            Severity::Low
        } else {
            Severity::Unknown
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding of a vulnerability scan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The scanner's vulnerability id (`CVE-2021-44228`, `GHSA-...`, a rule id for SARIF).
    pub id: String,
    /// Other ids of the same vulnerability (CVE ↔ GHSA), without `id` itself.
    pub aliases: Vec<String>,
    pub severity: Severity,
    pub package: Option<String>,
    pub version: Option<String>,
    pub purl: Option<String>,
    /// The version that fixes it, when the scanner says.
    pub fixed_version: Option<String>,
}

/// What a VEX statement says about a vulnerability in a product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VexStatus {
    NotAffected,
    Affected,
    Fixed,
    UnderInvestigation,
}

impl VexStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VexStatus::NotAffected => "not_affected",
            VexStatus::Affected => "affected",
            VexStatus::Fixed => "fixed",
            VexStatus::UnderInvestigation => "under_investigation",
        }
    }
}

/// One VEX statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VexStatement {
    pub vulnerability: String,
    pub aliases: Vec<String>,
    /// Products the statement is about: purls, CPEs, image digests or document-local ids.
    pub products: Vec<String>,
    pub status: VexStatus,
    pub justification: Option<String>,
}

/// One subject of an in-toto Statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    /// Algorithm (`sha256`, `sha512`, `gitCommit`...) → value.
    pub digest: BTreeMap<String, String>,
}

/// The facts of a build provenance attestation.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Provenance {
    pub predicate_type: String,
    pub builder_id: Option<String>,
    pub build_type: Option<String>,
    /// Source repository URI, without a `git+` prefix or `@ref` suffix
    /// (`https://github.com/acme/x`).
    pub source_repo: Option<String>,
    /// The source commit (lowercase hex).
    pub source_commit: Option<String>,
    pub subjects: Vec<Subject>,
}
