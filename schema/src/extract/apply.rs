//! Which findings a set of VEX statements settles: a pure decision, so that summaries, gates and
//! searches all read VEX the same way.
//!
//! A statement applies to a finding when
//! - it names the same vulnerability: the finding's id or one of its aliases equals the
//!   statement's vulnerability or one of its aliases (ASCII case-insensitive: `cve-2021-44228`
//!   and `CVE-2021-44228` are one vulnerability); and
//! - it is about the finding's package: if the statement lists package URLs among its products,
//!   one of them must name the finding's package (same type, namespace and name; the same
//!   version too when the statement's purl has one; qualifiers and subpaths are ignored).
//!   Statements whose products are not package URLs (image digests, CPEs, document-local ids)
//!   or are URLs of the product itself (`pkg:oci/...`, `pkg:docker/...`: the image the scan
//!   was made of) speak for the whole product, and apply to every finding.
//!
//! When several statements apply, the first in the order given wins (callers pass the newest
//! first). A finding is *suppressed* when the winning statement says `not_affected` or `fixed`.

use super::{Finding, VexStatement, VexStatus};

/// The status that settles each finding, if any (same order as `findings`).
pub fn vex_outcome(findings: &[Finding], statements: &[VexStatement]) -> Vec<Option<VexStatus>> {
    findings
        .iter()
        .map(|f| statements.iter().find(|s| applies(s, f)).map(|s| s.status))
        .collect()
}

/// Whether a status takes a finding out of the count that gates judge.
pub fn suppresses(status: Option<VexStatus>) -> bool {
    matches!(status, Some(VexStatus::NotAffected | VexStatus::Fixed))
}

/// Whether `statement` is about `finding`.
pub fn applies(statement: &VexStatement, finding: &Finding) -> bool {
    let same_vulnerability = std::iter::once(&finding.id)
        .chain(&finding.aliases)
        .any(|id| {
            std::iter::once(&statement.vulnerability)
                .chain(&statement.aliases)
                .any(|v| v.eq_ignore_ascii_case(id))
        });
    if !same_vulnerability {
        return false;
    }
    let purls: Vec<&str> = statement
        .products
        .iter()
        .map(String::as_str)
        .filter(|p| p.starts_with("pkg:") && !is_image_purl(p))
        .collect();
    if purls.is_empty() {
        return true;
    }
    let Some(finding_purl) = finding.purl.as_deref() else {
        return false;
    };
    let found = Purl::parse(finding_purl);
    purls.iter().any(|p| {
        let product = Purl::parse(p);
        product.package == found.package && product.version.is_none_or(|v| found.version == Some(v))
    })
}

/// A package URL naming a container image: the product a scan is of, not a package in it.
fn is_image_purl(purl: &str) -> bool {
    let lower = purl.to_ascii_lowercase();
    lower.starts_with("pkg:oci/") || lower.starts_with("pkg:docker/")
}

/// The parts of a package URL that identify a package: `pkg:type/namespace/name`, and the
/// version, without qualifiers or subpath.
struct Purl<'a> {
    package: String,
    version: Option<&'a str>,
}

impl<'a> Purl<'a> {
    fn parse(purl: &'a str) -> Purl<'a> {
        let core = purl.split(['?', '#']).next().unwrap_or(purl);
        // The version follows the last '@' (a namespace may not contain '@' unencoded).
        let (package, version) = match core.rsplit_once('@') {
            Some((p, v)) if !v.is_empty() && !v.contains('/') => (p, Some(v)),
            _ => (core, None),
        };
        Purl {
            package: package.to_ascii_lowercase(),
            version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::Severity;

    fn finding(id: &str, aliases: &[&str], purl: Option<&str>) -> Finding {
        Finding {
            id: id.into(),
            aliases: aliases.iter().map(|a| a.to_string()).collect(),
            severity: Severity::High,
            package: None,
            version: None,
            purl: purl.map(str::to_string),
            fixed_version: None,
        }
    }

    fn statement(vuln: &str, products: &[&str], status: VexStatus) -> VexStatement {
        VexStatement {
            vulnerability: vuln.into(),
            aliases: vec![],
            products: products.iter().map(|p| p.to_string()).collect(),
            status,
            justification: None,
        }
    }

    #[test]
    fn statements_match_by_id_or_alias_case_insensitively() {
        let f = finding("GHSA-jfh8-c2jp-5v3q", &["CVE-2021-44228"], None);
        let s = statement("cve-2021-44228", &["sha256:abc"], VexStatus::NotAffected);
        assert_eq!(
            vex_outcome(std::slice::from_ref(&f), &[s]),
            vec![Some(VexStatus::NotAffected)]
        );
        let other = statement("CVE-2021-45046", &[], VexStatus::NotAffected);
        assert_eq!(vex_outcome(&[f], &[other]), vec![None]);
    }

    #[test]
    fn purl_products_must_name_the_finding_package() {
        let f = finding("CVE-1", &[], Some("pkg:npm/lodash@4.17.20"));
        let any_version = statement("CVE-1", &["pkg:npm/lodash"], VexStatus::Fixed);
        let same = statement(
            "CVE-1",
            &["pkg:npm/lodash@4.17.20?foo=bar"],
            VexStatus::Fixed,
        );
        let other_version = statement("CVE-1", &["pkg:npm/lodash@4.17.21"], VexStatus::Fixed);
        let other_package = statement("CVE-1", &["pkg:npm/express"], VexStatus::Fixed);
        assert!(applies(&any_version, &f));
        assert!(applies(&same, &f));
        assert!(!applies(&other_version, &f));
        assert!(!applies(&other_package, &f));
        // A finding without a purl cannot be matched by a purl-scoped statement.
        assert!(!applies(&any_version, &finding("CVE-1", &[], None)));
        // An image purl names the product itself: it covers every finding of the scan.
        let image = statement(
            "CVE-1",
            &["pkg:oci/nginx@sha256%3A13d22ec6"],
            VexStatus::NotAffected,
        );
        assert!(applies(&image, &finding("CVE-1", &[], None)));
        assert!(applies(&image, &f));
    }

    #[test]
    fn the_first_applicable_statement_wins_and_only_some_statuses_suppress() {
        let f = finding("CVE-1", &[], None);
        let newest = statement("CVE-1", &[], VexStatus::Affected);
        let older = statement("CVE-1", &[], VexStatus::NotAffected);
        let outcome = vex_outcome(std::slice::from_ref(&f), &[newest, older]);
        assert_eq!(outcome, vec![Some(VexStatus::Affected)]);
        assert!(!suppresses(outcome[0]));
        assert!(suppresses(Some(VexStatus::Fixed)));
        assert!(suppresses(Some(VexStatus::NotAffected)));
        assert!(!suppresses(Some(VexStatus::UnderInvestigation)));
        assert!(!suppresses(None));
    }
}
