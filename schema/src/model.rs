//! The evidence model's vocabulary: what a piece of evidence is about (its [`Kind`]) and how it is
//! written down (its [`Format`]).
//!
//! Both are closed sets with stable lowercase names; those names are what the CLI, the REST API,
//! the metadata index and bundle manifests use, so renaming one is a breaking change.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a piece of evidence is: the question it answers for an auditor or a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// A software bill of materials (CycloneDX, SPDX).
    Sbom,
    /// A vulnerability or security scan report (SARIF, Grype, Trivy, OSV-Scanner, ...).
    VulnScan,
    /// A vulnerability exploitability exchange document (OpenVEX, CycloneDX VEX, CSAF VEX).
    Vex,
    /// Build provenance (SLSA), bare or signed.
    Provenance,
    /// Any other attestation (in-toto statements with other predicates, layouts, links).
    Attestation,
    /// A signature over an artifact (Sigstore bundle with a message signature, cosign signature).
    Signature,
    /// A human approval (evault's approval document).
    Approval,
    /// A deploy receipt (evault's deploy document).
    Deploy,
    /// A rollback record (evault's rollback document).
    Rollback,
    /// A rollback plan, usually Markdown.
    RollbackPlan,
    /// A test report (JUnit XML).
    TestReport,
    /// A release gate's decision (evault's policy-result document), written by `evault gate check`.
    PolicyResult,
    /// Anything else.
    Other,
}

impl Kind {
    /// Every kind, in a stable order (used for help texts and docs).
    pub const ALL: [Kind; 13] = [
        Kind::Sbom,
        Kind::VulnScan,
        Kind::Vex,
        Kind::Provenance,
        Kind::Attestation,
        Kind::Signature,
        Kind::Approval,
        Kind::Deploy,
        Kind::Rollback,
        Kind::RollbackPlan,
        Kind::TestReport,
        Kind::PolicyResult,
        Kind::Other,
    ];

    /// The stable name, e.g. `vuln-scan`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Sbom => "sbom",
            Kind::VulnScan => "vuln-scan",
            Kind::Vex => "vex",
            Kind::Provenance => "provenance",
            Kind::Attestation => "attestation",
            Kind::Signature => "signature",
            Kind::Approval => "approval",
            Kind::Deploy => "deploy",
            Kind::Rollback => "rollback",
            Kind::RollbackPlan => "rollback-plan",
            Kind::TestReport => "test-report",
            Kind::PolicyResult => "policy-result",
            Kind::Other => "other",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error for a kind or format name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} '{given}' (expected one of: {expected})")]
pub struct UnknownName {
    pub what: &'static str,
    pub given: String,
    pub expected: String,
}

impl FromStr for Kind {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "kind",
                given: s.to_string(),
                expected: Kind::ALL.map(Kind::as_str).join(", "),
            })
    }
}

/// How a piece of evidence is encoded. Detected from content, never from a file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    CyclonedxJson,
    CyclonedxXml,
    SpdxJson,
    SpdxTagValue,
    Sarif,
    GrypeJson,
    TrivyJson,
    OsvScannerJson,
    Openvex,
    Csaf,
    IntotoStatement,
    DsseEnvelope,
    SigstoreBundle,
    JunitXml,
    EvaultApproval,
    EvaultDeploy,
    EvaultRollback,
    EvaultPolicyResult,
    /// A classic in-toto layout (signed metadata with `_type: layout`).
    IntotoLayout,
    /// A classic in-toto link (signed metadata with `_type: link`).
    IntotoLink,
    /// A Sigstore `trusted_root.json`.
    SigstoreTrustedRoot,
    /// The npm registry's attestations document (`{"attestations": [{predicateType, bundle}]}`).
    NpmAttestations,
    /// Google Cloud Build's provenance export (`image_summary` + `provenance_summary`).
    GcbProvenance,
    /// A SLSA provenance predicate body without its in-toto Statement.
    SlsaPredicate,
    /// A PEM public key (SubjectPublicKeyInfo).
    PemPublicKey,
    /// A PEM X.509 certificate (or chain).
    PemCertificate,
    /// A raw DER-encoded ECDSA signature (`SEQUENCE { INTEGER r, INTEGER s }`).
    SignatureDer,
    /// A base64-encoded DER ECDSA signature, as `cosign sign-blob` writes it.
    SignatureBase64,
    Markdown,
    Text,
    Unknown,
}

impl Format {
    /// Every format, in a stable order.
    pub const ALL: [Format; 31] = [
        Format::CyclonedxJson,
        Format::CyclonedxXml,
        Format::SpdxJson,
        Format::SpdxTagValue,
        Format::Sarif,
        Format::GrypeJson,
        Format::TrivyJson,
        Format::OsvScannerJson,
        Format::Openvex,
        Format::Csaf,
        Format::IntotoStatement,
        Format::DsseEnvelope,
        Format::SigstoreBundle,
        Format::JunitXml,
        Format::EvaultApproval,
        Format::EvaultDeploy,
        Format::EvaultRollback,
        Format::EvaultPolicyResult,
        Format::IntotoLayout,
        Format::IntotoLink,
        Format::SigstoreTrustedRoot,
        Format::NpmAttestations,
        Format::GcbProvenance,
        Format::SlsaPredicate,
        Format::PemPublicKey,
        Format::PemCertificate,
        Format::SignatureDer,
        Format::SignatureBase64,
        Format::Markdown,
        Format::Text,
        Format::Unknown,
    ];

    /// The stable name, e.g. `cyclonedx-json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::CyclonedxJson => "cyclonedx-json",
            Format::CyclonedxXml => "cyclonedx-xml",
            Format::SpdxJson => "spdx-json",
            Format::SpdxTagValue => "spdx-tag-value",
            Format::Sarif => "sarif",
            Format::GrypeJson => "grype-json",
            Format::TrivyJson => "trivy-json",
            Format::OsvScannerJson => "osv-scanner-json",
            Format::Openvex => "openvex",
            Format::Csaf => "csaf",
            Format::IntotoStatement => "intoto-statement",
            Format::DsseEnvelope => "dsse-envelope",
            Format::SigstoreBundle => "sigstore-bundle",
            Format::JunitXml => "junit-xml",
            Format::EvaultApproval => "evault-approval",
            Format::EvaultDeploy => "evault-deploy",
            Format::EvaultRollback => "evault-rollback",
            Format::EvaultPolicyResult => "evault-policy-result",
            Format::IntotoLayout => "intoto-layout",
            Format::IntotoLink => "intoto-link",
            Format::SigstoreTrustedRoot => "sigstore-trusted-root",
            Format::NpmAttestations => "npm-attestations",
            Format::GcbProvenance => "gcb-provenance",
            Format::SlsaPredicate => "slsa-predicate",
            Format::PemPublicKey => "pem-public-key",
            Format::PemCertificate => "pem-certificate",
            Format::SignatureDer => "signature-der",
            Format::SignatureBase64 => "signature-base64",
            Format::Markdown => "markdown",
            Format::Text => "text",
            Format::Unknown => "unknown",
        }
    }

    /// A human name for messages, e.g. `CycloneDX JSON`.
    pub fn title(self) -> &'static str {
        match self {
            Format::CyclonedxJson => "CycloneDX JSON",
            Format::CyclonedxXml => "CycloneDX XML",
            Format::SpdxJson => "SPDX JSON",
            Format::SpdxTagValue => "SPDX tag-value",
            Format::Sarif => "SARIF",
            Format::GrypeJson => "Grype JSON",
            Format::TrivyJson => "Trivy JSON",
            Format::OsvScannerJson => "OSV-Scanner JSON",
            Format::Openvex => "OpenVEX",
            Format::Csaf => "CSAF",
            Format::IntotoStatement => "in-toto Statement",
            Format::DsseEnvelope => "DSSE envelope",
            Format::SigstoreBundle => "Sigstore bundle",
            Format::JunitXml => "JUnit XML",
            Format::EvaultApproval => "evault approval",
            Format::EvaultDeploy => "evault deploy receipt",
            Format::EvaultRollback => "evault rollback record",
            Format::EvaultPolicyResult => "evault gate decision",
            Format::IntotoLayout => "in-toto layout",
            Format::IntotoLink => "in-toto link",
            Format::SigstoreTrustedRoot => "Sigstore trusted root",
            Format::NpmAttestations => "npm attestations",
            Format::GcbProvenance => "Google Cloud Build provenance",
            Format::SlsaPredicate => "SLSA provenance predicate",
            Format::PemPublicKey => "PEM public key",
            Format::PemCertificate => "PEM certificate",
            Format::SignatureDer => "DER signature",
            Format::SignatureBase64 => "base64 signature",
            Format::Markdown => "Markdown",
            Format::Text => "plain text",
            Format::Unknown => "unknown",
        }
    }

    /// The kind evidence of this format has when nothing more specific is known
    /// (content such as an in-toto predicate type or CycloneDX `vulnerabilities` may refine it).
    pub fn default_kind(self) -> Kind {
        match self {
            Format::CyclonedxJson
            | Format::CyclonedxXml
            | Format::SpdxJson
            | Format::SpdxTagValue => Kind::Sbom,
            Format::Sarif | Format::GrypeJson | Format::TrivyJson | Format::OsvScannerJson => {
                Kind::VulnScan
            }
            Format::Openvex | Format::Csaf => Kind::Vex,
            Format::GcbProvenance | Format::SlsaPredicate => Kind::Provenance,
            Format::IntotoStatement
            | Format::DsseEnvelope
            | Format::IntotoLayout
            | Format::IntotoLink
            | Format::NpmAttestations => Kind::Attestation,
            Format::SigstoreBundle | Format::SignatureDer | Format::SignatureBase64 => {
                Kind::Signature
            }
            Format::JunitXml => Kind::TestReport,
            Format::EvaultApproval => Kind::Approval,
            Format::EvaultDeploy => Kind::Deploy,
            Format::EvaultRollback => Kind::Rollback,
            Format::EvaultPolicyResult => Kind::PolicyResult,
            Format::SigstoreTrustedRoot
            | Format::PemPublicKey
            | Format::PemCertificate
            | Format::Markdown
            | Format::Text
            | Format::Unknown => Kind::Other,
        }
    }

    /// Whether evidence in this format may be recorded under `kind` when a user or a bundle
    /// manifest declares it. `other` is always allowed; free-form formats (text, Markdown,
    /// unknown bytes) take only the kinds that have no structured format of their own.
    pub fn allows_kind(self, kind: Kind) -> bool {
        if kind == Kind::Other || kind == self.default_kind() {
            return true;
        }
        match self {
            Format::CyclonedxJson | Format::CyclonedxXml => {
                matches!(kind, Kind::Sbom | Kind::VulnScan | Kind::Vex)
            }
            Format::Sarif => matches!(kind, Kind::VulnScan | Kind::TestReport),
            Format::Csaf => kind == Kind::Vex,
            Format::IntotoStatement
            | Format::DsseEnvelope
            | Format::SigstoreBundle
            | Format::NpmAttestations => matches!(
                kind,
                Kind::Provenance
                    | Kind::Attestation
                    | Kind::Signature
                    | Kind::Sbom
                    | Kind::VulnScan
                    | Kind::Vex
                    | Kind::TestReport
            ),
            Format::IntotoLayout | Format::IntotoLink => {
                matches!(kind, Kind::Attestation | Kind::Provenance)
            }
            Format::GcbProvenance | Format::SlsaPredicate => {
                matches!(kind, Kind::Provenance | Kind::Attestation)
            }
            Format::PemPublicKey | Format::PemCertificate => kind == Kind::Signature,
            Format::Markdown | Format::Text | Format::Unknown => matches!(
                kind,
                Kind::RollbackPlan | Kind::Signature | Kind::Attestation
            ),
            _ => false,
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Format {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| UnknownName {
                what: "format",
                given: s.to_string(),
                expected: Format::ALL.map(Format::as_str).join(", "),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for k in Kind::ALL {
            assert_eq!(k.as_str().parse::<Kind>().unwrap(), k);
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        for f in Format::ALL {
            assert_eq!(f.as_str().parse::<Format>().unwrap(), f);
            assert_eq!(serde_json::to_value(f).unwrap(), f.as_str());
            assert!(f.allows_kind(f.default_kind()), "{f}");
            assert!(f.allows_kind(Kind::Other), "{f}");
        }
    }

    #[test]
    fn unknown_names_list_the_choices() {
        let err = "sboms".parse::<Kind>().unwrap_err();
        assert!(err.to_string().contains("unknown kind 'sboms'"));
        assert!(err.to_string().contains("rollback-plan"));
    }

    #[test]
    fn free_form_formats_refuse_structured_kinds() {
        assert!(!Format::Markdown.allows_kind(Kind::Sbom));
        assert!(Format::Markdown.allows_kind(Kind::RollbackPlan));
        assert!(!Format::Unknown.allows_kind(Kind::VulnScan));
        assert!(!Format::SpdxJson.allows_kind(Kind::Vex));
        assert!(Format::CyclonedxJson.allows_kind(Kind::Vex));
    }

    #[test]
    fn gate_decisions_are_only_ever_policy_results() {
        assert_eq!("policy-result".parse::<Kind>().unwrap(), Kind::PolicyResult);
        assert_eq!(
            "evault-policy-result".parse::<Format>().unwrap(),
            Format::EvaultPolicyResult
        );
        assert_eq!(Format::EvaultPolicyResult.title(), "evault gate decision");
        for k in Kind::ALL {
            assert_eq!(
                Format::EvaultPolicyResult.allows_kind(k),
                matches!(k, Kind::PolicyResult | Kind::Other),
                "{k}"
            );
        }
        // No other format can pass itself off as a gate decision.
        for f in Format::ALL {
            assert_eq!(
                f.allows_kind(Kind::PolicyResult),
                f == Format::EvaultPolicyResult,
                "{f}"
            );
        }
    }
}
