//! The built-in rules: a [`Resolved`] policy applied to a [`GateInput`], one
//! [`RequirementResult`] per requirement. Pure: the same input and policy always give the same
//! results, which is what makes a stored decision replayable.

use evault_schema::documents::{Outcome, RequirementResult};

use super::input::{ApprovalFact, GateInput, Vulnerability};
use super::policy::{
    ApprovalRule, Level, ProvenanceRule, Resolved, SignatureRule, TestRule, VexTrust,
    Vulnerabilities,
};
use crate::auth::scope_matches;

/// Ids shown in a message, at most this many (the full list is in `records`).
const SHOWN: usize = 5;

fn result(
    name: impl Into<String>,
    status: Outcome,
    message: impl Into<String>,
    records: Vec<String>,
) -> RequirementResult {
    RequirementResult {
        name: name.into(),
        status,
        message: message.into(),
        records,
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn list(items: &[String]) -> String {
    let mut out = items
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > SHOWN {
        out.push_str(&format!(" and {} more", items.len() - SHOWN));
    }
    out
}

fn matches_any(patterns: &[String], value: Option<&str>) -> bool {
    patterns.is_empty() || value.is_some_and(|v| patterns.iter().any(|p| scope_matches(p, v)))
}

/// Applies `policy` (`None`: no entry covers the environment) to `input`.
pub fn evaluate(policy: Option<&Resolved>, input: &GateInput) -> Vec<RequirementResult> {
    let Some(policy) = policy else {
        return vec![result(
            "policy",
            Outcome::Fail,
            format!(
                "no gate policy covers environment '{}' for blueprint {}: add a [[gate]] entry \
                 for it (the vault fails closed rather than let a version through unchecked)",
                input.environment, input.blueprint
            ),
            Vec::new(),
        )];
    };
    let mut out = vec![version_requirement(input)];
    for kind in &policy.require {
        let found: Vec<String> = input
            .evidence
            .get(kind.as_str())
            .map(|items| items.iter().map(|i| i.id.clone()).collect())
            .unwrap_or_default();
        out.push(if found.is_empty() {
            result(
                format!("evidence:{kind}"),
                Outcome::Fail,
                format!(
                    "no {kind} recorded for {} {}",
                    input.blueprint, input.version
                ),
                Vec::new(),
            )
        } else {
            result(
                format!("evidence:{kind}"),
                Outcome::Pass,
                format!("{} {kind} record(s)", found.len()),
                found,
            )
        });
    }
    if let Some(v) = &policy.vulnerabilities {
        out.extend(vulnerabilities(v, input));
    }
    if let Some(p) = &policy.provenance {
        out.push(provenance(p, input));
    }
    if let Some(s) = &policy.signatures {
        out.push(signatures(s, input));
    }
    if let Some(a) = &policy.approvals {
        out.push(approvals(a, input));
    }
    if let Some(t) = &policy.tests {
        out.push(tests(t, input));
    }
    out
}

fn tests(rule: &TestRule, input: &GateInput) -> RequirementResult {
    let ids: Vec<String> = input.tests.iter().map(|t| t.id.clone()).collect();
    if input.tests.is_empty() {
        return result(
            "tests",
            Outcome::Fail,
            format!(
                "no test report recorded for {} {}",
                input.blueprint, input.version
            ),
            Vec::new(),
        );
    }
    let unreadable: Vec<String> = input
        .tests
        .iter()
        .filter(|t| !t.readable)
        .map(|t| {
            format!(
                "{}: {}",
                short(&t.id),
                t.problem.as_deref().unwrap_or("unreadable")
            )
        })
        .collect();
    if !unreadable.is_empty() {
        return result(
            "tests",
            Outcome::Fail,
            format!(
                "cannot tell whether the tests passed: {}",
                unreadable.join("; ")
            ),
            ids,
        );
    }
    let sum = |f: fn(&super::input::TestReport) -> u64| input.tests.iter().map(f).sum::<u64>();
    let (total, failed, errors, skipped) = (
        sum(|t| t.tests),
        sum(|t| t.failed),
        sum(|t| t.errors),
        sum(|t| t.skipped),
    );
    let counts = format!(
        "{total} test case(s) in {} report(s): {failed} failed, {errors} errored, {skipped} skipped",
        input.tests.len()
    );
    if failed + errors > rule.max_failed {
        let failing: Vec<String> = input
            .tests
            .iter()
            .filter(|t| t.failed + t.errors > 0)
            .map(|t| t.id.clone())
            .collect();
        return result(
            "tests",
            Outcome::Fail,
            format!("{counts} (at most {} allowed to fail)", rule.max_failed),
            failing,
        );
    }
    if total < rule.min_tests {
        return result(
            "tests",
            Outcome::Fail,
            format!("{counts}: at least {} must run", rule.min_tests),
            ids,
        );
    }
    result("tests", Outcome::Pass, counts, ids)
}

/// The worst status among `results` (`fail` when there are none: nothing was shown to pass).
pub fn decision(results: &[RequirementResult]) -> Outcome {
    results
        .iter()
        .map(|r| r.status)
        .max()
        .unwrap_or(Outcome::Fail)
}

/// The version must be known, at one commit (the one being deployed, when the check names it).
/// Every gate has this requirement, whatever its policy's engine.
pub fn version_requirement(input: &GateInput) -> RequirementResult {
    let records: Vec<String> = input
        .evidence
        .values()
        .flatten()
        .map(|i| i.id.clone())
        .collect();
    match input.git_shas.len() {
        0 => result(
            "version",
            Outcome::Fail,
            format!(
                "the vault holds no evidence of {} {}",
                input.blueprint, input.version
            ),
            Vec::new(),
        ),
        1 if input.git_sha != input.git_shas[0] => result(
            "version",
            Outcome::Fail,
            format!(
                "the evidence of {} {} is for commit {}, not {}",
                input.blueprint, input.version, input.git_shas[0], input.git_sha
            ),
            Vec::new(),
        ),
        1 => result(
            "version",
            Outcome::Pass,
            format!(
                "{} {} at commit {} ({} record(s))",
                input.blueprint,
                input.version,
                input.git_sha,
                records.len()
            ),
            Vec::new(),
        ),
        n => result(
            "version",
            Outcome::Fail,
            format!(
                "the evidence of {} {} names {n} commits ({}): which one is being deployed is \
                 ambiguous",
                input.blueprint,
                input.version,
                input.git_shas.join(", ")
            ),
            Vec::new(),
        ),
    }
}

/// Whether `x` is an exception that counts under `roles` now.
fn exception_counts(x: &ApprovalFact, rule: &Vulnerabilities) -> bool {
    let within = |max: u32| {
        let at = |s: &str| chrono::DateTime::parse_from_rfc3339(s).ok();
        match (at(&x.time), x.expires_at.as_deref().and_then(at)) {
            (Some(given), Some(expires)) => expires - given <= chrono::Duration::days(max.into()),
            _ => false,
        }
    };
    x.decision == "approve"
        && x.current
        && x.by_approver
        && x.role
            .as_ref()
            .is_some_and(|r| rule.exception_roles.contains(r))
        && rule.exception_max_days.is_none_or(within)
}

fn vulnerabilities(rule: &Vulnerabilities, input: &GateInput) -> Vec<RequirementResult> {
    let scans: Vec<String> = input
        .evidence
        .get("vuln-scan")
        .map(|items| items.iter().map(|i| i.id.clone()).collect())
        .unwrap_or_default();
    if scans.is_empty() {
        return vec![result(
            "vulnerabilities",
            Outcome::Fail,
            format!(
                "no vulnerability scan recorded for {} {}: nothing to count from",
                input.blueprint, input.version
            ),
            Vec::new(),
        )];
    }
    let mut out = Vec::new();
    for (severity, t) in rule.thresholds() {
        let of: Vec<&Vulnerability> = input
            .vulnerabilities
            .iter()
            .filter(|v| v.severity == severity)
            .collect();
        let settled = |v: &Vulnerability| match rule.vex {
            VexTrust::Any => v.suppressed,
            VexTrust::Verified => v.suppressed_by_verified_vex,
        };
        let suppressed = of.iter().filter(|v| settled(v)).count();
        let remaining: Vec<&Vulnerability> = of.iter().copied().filter(|v| !settled(v)).collect();
        let mut accepted: Vec<&Vulnerability> = Vec::new();
        let mut counted: Vec<&Vulnerability> = Vec::new();
        let mut by: Vec<String> = Vec::new();
        for v in &remaining {
            let covering: Vec<&String> = v
                .exceptions
                .iter()
                .filter(|id| {
                    input
                        .exceptions
                        .iter()
                        .any(|x| &x.id == *id && exception_counts(x, rule))
                })
                .collect();
            if t.exceptions && !covering.is_empty() {
                accepted.push(v);
                for id in covering {
                    if !by.contains(id) {
                        by.push(id.clone());
                    }
                }
            } else {
                counted.push(v);
            }
        }
        let mut records: Vec<String> = Vec::new();
        for v in &of {
            for r in v.records.iter().chain(&v.vex_record) {
                if !records.contains(r) {
                    records.push(r.clone());
                }
            }
        }
        records.extend(by.iter().cloned());
        let ids = |vs: &[&Vulnerability]| -> Vec<String> {
            let mut ids: Vec<String> = vs.iter().map(|v| v.id.clone()).collect();
            ids.dedup();
            ids
        };
        let vex_note = if suppressed > 0 {
            format!("; {suppressed} settled by VEX")
        } else {
            String::new()
        };
        let name = format!("vulnerabilities:{severity}");
        let (status, message) = if counted.len() as u64 > u64::from(t.max) {
            let status = match t.above {
                Level::Warn => Outcome::Warn,
                Level::Fail => Outcome::Fail,
            };
            let excused = if accepted.is_empty() {
                String::new()
            } else {
                format!(", {} more accepted by exception", accepted.len())
            };
            (
                status,
                format!(
                    "{} {severity} after VEX (at most {} allowed{}): {}{excused}{vex_note}",
                    counted.len(),
                    t.max,
                    if t.exceptions && status == Outcome::Fail {
                        " without an approved exception"
                    } else {
                        ""
                    },
                    list(&ids(&counted))
                ),
            )
        } else if !accepted.is_empty() && remaining.len() as u64 > u64::from(t.max) {
            (
                Outcome::Warn,
                format!(
                    "{} {severity} after VEX, above the {} allowed; {} accepted by exception \
                     {}{vex_note}",
                    remaining.len(),
                    t.max,
                    list(&ids(&accepted)),
                    list(&by.iter().map(|b| short(b).to_string()).collect::<Vec<_>>())
                ),
            )
        } else {
            (
                Outcome::Pass,
                format!(
                    "{} {severity} after VEX (at most {} allowed){vex_note}",
                    remaining.len(),
                    t.max
                ),
            )
        };
        if records.is_empty() {
            records = scans.clone();
        }
        out.push(result(name, status, message, records));
    }
    out
}

fn provenance(rule: &ProvenanceRule, input: &GateInput) -> RequirementResult {
    let about: Vec<_> = input
        .provenance
        .iter()
        .filter(|p| p.about_artifact)
        .collect();
    if about.is_empty() {
        let what = match &input.artifact {
            Some(a) => format!("no provenance names the artifact {a}"),
            None => format!(
                "no provenance recorded for {} {}",
                input.blueprint, input.version
            ),
        };
        return result("provenance", Outcome::Fail, what, Vec::new());
    }
    let mut good = Vec::new();
    let mut problems = Vec::new();
    let mut conflict = None;
    for p in &about {
        let mut why = Vec::new();
        if rule.verified && !p.verified {
            why.push(format!("not verified ({})", p.verification));
        }
        if !matches_any(&rule.builders, p.builder_id.as_deref()) {
            why.push(format!(
                "builder {} is not allowed",
                p.builder_id.as_deref().unwrap_or("(none)")
            ));
        }
        if !matches_any(&rule.source_repos, p.source_repo.as_deref()) {
            why.push(format!(
                "source repository {} is not allowed",
                p.source_repo.as_deref().unwrap_or("(none)")
            ));
        }
        if rule.commit {
            match &p.source_commit {
                Some(c) if !input.git_sha.is_empty() && c.eq_ignore_ascii_case(&input.git_sha) => {}
                Some(c) => {
                    why.push(format!(
                        "built from commit {c}, not {}",
                        if input.git_sha.is_empty() {
                            "the version's (unknown)"
                        } else {
                            &input.git_sha
                        }
                    ));
                    conflict.get_or_insert(p.id.clone());
                }
                None => why.push("names no source commit".into()),
            }
        }
        if why.is_empty() {
            good.push(p.id.clone());
        } else {
            problems.push(format!("{}: {}", short(&p.id), why.join(", ")));
        }
    }
    match (good.is_empty(), conflict) {
        (false, None) => result(
            "provenance",
            Outcome::Pass,
            format!("{} provenance record(s) meet the policy", good.len()),
            good,
        ),
        (false, Some(c)) => result(
            "provenance",
            Outcome::Fail,
            format!("conflicting provenance: {}", problems.join("; ")),
            vec![c],
        ),
        (true, _) => result(
            "provenance",
            Outcome::Fail,
            format!("no provenance meets the policy: {}", problems.join("; ")),
            about.iter().map(|p| p.id.clone()).collect(),
        ),
    }
}

fn signatures(rule: &SignatureRule, input: &GateInput) -> RequirementResult {
    let about: Vec<_> = input
        .signatures
        .iter()
        .filter(|s| s.about_artifact)
        .collect();
    if about.is_empty() {
        let what = match &input.artifact {
            Some(a) => format!("no signature names the artifact {a}"),
            None => format!(
                "no signature recorded for {} {}",
                input.blueprint, input.version
            ),
        };
        return result("signatures", Outcome::Fail, what, Vec::new());
    }
    let good: Vec<String> = about
        .iter()
        .filter(|s| s.verified && matches_any(&rule.signers, s.signer.as_deref()))
        .map(|s| s.id.clone())
        .collect();
    if !good.is_empty() {
        return result(
            "signatures",
            Outcome::Pass,
            format!("{} signature(s) verified by a trusted signer", good.len()),
            good,
        );
    }
    let why: Vec<String> = about
        .iter()
        .map(|s| {
            if s.verified {
                format!(
                    "{}: signed by {}, not an allowed signer ({})",
                    short(&s.id),
                    s.signer.as_deref().unwrap_or("(unknown)"),
                    rule.signers.join(", ")
                )
            } else {
                format!("{}: {}", short(&s.id), s.verification)
            }
        })
        .collect();
    result(
        "signatures",
        Outcome::Fail,
        format!(
            "no signature verified by a trusted signer: {}",
            why.join("; ")
        ),
        about.iter().map(|s| s.id.clone()).collect(),
    )
}

fn approvals(rule: &ApprovalRule, input: &GateInput) -> RequirementResult {
    let mut counted: Vec<&ApprovalFact> = Vec::new();
    let mut rejected: Vec<&ApprovalFact> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for a in &input.approvals {
        let who = format!("{} by {}", short(&a.id), a.approver);
        if a.decision == "reject" {
            if a.current {
                rejected.push(a);
            }
            continue;
        }
        let why = if !a.current {
            Some("expired or not yet given".to_string())
        } else if !a.by_approver {
            Some(format!(
                "recorded by {}, not by the approver (approvals count only when the approver \
                 records them: evault approve)",
                a.producer
            ))
        } else if !a.role.as_ref().is_some_and(|r| rule.roles.contains(r)) {
            Some(format!(
                "role {} is not one of {}",
                a.role.as_deref().unwrap_or("(none)"),
                rule.roles.join(", ")
            ))
        } else if rule.separation_of_duties && a.approver_pushed {
            Some(format!(
                "{} also pushed evidence of this version (separation of duties)",
                a.approver
            ))
        } else if counted.iter().any(|c| c.approver == a.approver) {
            None
        } else {
            counted.push(a);
            None
        };
        if let Some(why) = why {
            notes.push(format!("{who} does not count: {why}"));
        }
    }
    let env = &input.environment;
    if !rejected.is_empty() {
        let why: Vec<String> = rejected
            .iter()
            .map(|a| {
                format!(
                    "{} by {}: {}",
                    short(&a.id),
                    a.approver,
                    a.reason.lines().next().unwrap_or("")
                )
            })
            .collect();
        return result(
            "approvals",
            Outcome::Fail,
            format!("rejected for {env}: {}", why.join("; ")),
            rejected.iter().map(|a| a.id.clone()).collect(),
        );
    }
    let n = counted.len() as u64;
    if n >= u64::from(rule.min) {
        let who: Vec<String> = counted.iter().map(|a| a.approver.clone()).collect();
        return result(
            "approvals",
            Outcome::Pass,
            format!("approved for {env} by {}", who.join(", ")),
            counted.iter().map(|a| a.id.clone()).collect(),
        );
    }
    let mut message = format!(
        "{n} of the {} approval(s) {env} needs (role {})",
        rule.min,
        rule.roles.join(" or ")
    );
    if !notes.is_empty() {
        message.push_str(": ");
        message.push_str(&notes.join("; "));
    }
    result(
        "approvals",
        Outcome::Fail,
        message,
        input.approvals.iter().map(|a| a.id.clone()).collect(),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::gate::input::{ProvenanceFact, SignatureFact};
    use crate::gate::policy::GatePolicy;

    const SHA: &str = "4f1c0d2b9a8e7f6d5c4b3a29180716f5e4d3c2b1";

    fn input() -> GateInput {
        GateInput {
            schema: crate::gate::input::INPUT_SCHEMA.into(),
            blueprint: "checkout-api".into(),
            version: "1.4.2".into(),
            environment: "production".into(),
            git_sha: SHA.into(),
            git_shas: vec![SHA.into()],
            artifact: None,
            now: "2026-12-06T00:00:00.000000Z".into(),
            pushers: vec!["ci".into()],
            evidence: BTreeMap::new(),
            vulnerabilities: Vec::new(),
            provenance: Vec::new(),
            signatures: Vec::new(),
            approvals: Vec::new(),
            exceptions: Vec::new(),
            tests: Vec::new(),
        }
    }

    fn provenance(
        id: &str,
        verified: bool,
        builder: &str,
        repo: &str,
        commit: &str,
    ) -> ProvenanceFact {
        ProvenanceFact {
            id: id.repeat(32),
            verified,
            verification: if verified { "verified" } else { "unsigned" }.into(),
            verified_by: verified.then(|| "key release".into()),
            builder_id: Some(builder.into()),
            source_repo: Some(repo.into()),
            source_commit: Some(commit.into()),
            subjects: vec![format!("sha256:{}", "d".repeat(64))],
            about_artifact: true,
        }
    }

    fn rule(text: &str) -> Resolved {
        GatePolicy::from_toml(&format!("[[gate]]\nenvironment = \"production\"\n{text}"))
            .unwrap()
            .resolve("checkout-api", "production")
            .unwrap()
    }

    fn only(policy: &Resolved, input: &GateInput, name: &str) -> RequirementResult {
        evaluate(Some(policy), input)
            .into_iter()
            .find(|r| r.name == name)
            .unwrap()
    }

    #[test]
    fn provenance_must_be_verified_from_an_allowed_builder_and_repo_at_the_version_commit() {
        let policy = rule(
            "[gate.provenance]\nbuilders = [\"https://github.com/actions/runner/*\"]\n\
             source_repos = [\"https://github.com/acme/*\"]\n",
        );
        let good = || {
            provenance(
                "a",
                true,
                "https://github.com/actions/runner/v2",
                "https://github.com/acme/checkout",
                SHA,
            )
        };
        let mut i = input();
        let r = only(&policy, &i, "provenance");
        assert_eq!(r.status, Outcome::Fail);
        assert!(
            r.message.contains("no provenance recorded"),
            "{}",
            r.message
        );

        let cases = [
            (
                provenance(
                    "b",
                    false,
                    "https://github.com/actions/runner/v2",
                    "https://github.com/acme/checkout",
                    SHA,
                ),
                "not verified (unsigned)",
            ),
            (
                provenance(
                    "b",
                    true,
                    "https://evil.example/builder",
                    "https://github.com/acme/checkout",
                    SHA,
                ),
                "builder https://evil.example/builder is not allowed",
            ),
            (
                provenance(
                    "b",
                    true,
                    "https://github.com/actions/runner/v2",
                    "https://github.com/evil/fork",
                    SHA,
                ),
                "source repository https://github.com/evil/fork is not allowed",
            ),
        ];
        for (p, why) in cases {
            i.provenance = vec![p];
            let r = only(&policy, &i, "provenance");
            assert_eq!(r.status, Outcome::Fail, "{why}");
            assert!(r.message.contains(why), "{}", r.message);
            assert_eq!(r.records.len(), 1);
        }
        i.provenance = vec![good()];
        let r = only(&policy, &i, "provenance");
        assert_eq!(r.status, Outcome::Pass, "{}", r.message);
        assert_eq!(r.records, vec!["a".repeat(32)]);

        // A second provenance claiming another commit is a conflict, not a detail.
        let other = "0".repeat(40);
        i.provenance.push(provenance(
            "c",
            true,
            "https://github.com/actions/runner/v2",
            "https://github.com/acme/checkout",
            &other,
        ));
        let r = only(&policy, &i, "provenance");
        assert_eq!(r.status, Outcome::Fail);
        assert!(
            r.message.contains(&format!("built from commit {other}")),
            "{}",
            r.message
        );
        assert_eq!(r.records, vec!["c".repeat(32)]);

        // With an artifact named, provenance about something else does not count.
        i.provenance = vec![good()];
        i.artifact = Some(format!("sha256:{}", "e".repeat(64)));
        i.provenance[0].about_artifact = false;
        let r = only(&policy, &i, "provenance");
        assert_eq!(r.status, Outcome::Fail);
        assert!(
            r.message.contains("no provenance names the artifact"),
            "{}",
            r.message
        );
    }

    #[test]
    fn signatures_must_be_verified_by_an_allowed_signer() {
        let policy = rule("[gate.signatures]\nsigners = [\"release-*\"]\n");
        let sig = |verified: bool, signer: Option<&str>| SignatureFact {
            id: "5".repeat(32),
            verified,
            verification: if verified { "verified" } else { "untrusted" }.into(),
            verified_by: signer.map(|s| format!("key {s}")),
            signer: signer.map(str::to_string),
            subjects: Vec::new(),
            about_artifact: true,
        };
        let mut i = input();
        assert_eq!(only(&policy, &i, "signatures").status, Outcome::Fail);
        i.signatures = vec![sig(false, None)];
        let r = only(&policy, &i, "signatures");
        assert_eq!(r.status, Outcome::Fail);
        assert!(r.message.contains("untrusted"), "{}", r.message);
        i.signatures = vec![sig(true, Some("dev-key"))];
        let r = only(&policy, &i, "signatures");
        assert_eq!(r.status, Outcome::Fail);
        assert!(
            r.message
                .contains("signed by dev-key, not an allowed signer"),
            "{}",
            r.message
        );
        i.signatures.push(sig(true, Some("release-2026")));
        assert_eq!(only(&policy, &i, "signatures").status, Outcome::Pass);
        // Any trusted signer when the policy names none.
        let any = rule("[gate.signatures]\n");
        i.signatures = vec![sig(true, Some("dev-key"))];
        assert_eq!(only(&any, &i, "signatures").status, Outcome::Pass);
    }

    #[test]
    fn the_version_must_be_at_one_commit_the_one_deployed() {
        let policy = rule("require = []\n");
        let mut i = input();
        assert_eq!(only(&policy, &i, "version").status, Outcome::Pass);
        i.git_sha = "0".repeat(40);
        let r = only(&policy, &i, "version");
        assert_eq!(r.status, Outcome::Fail);
        assert!(
            r.message.contains(&format!("is for commit {SHA}")),
            "{}",
            r.message
        );
        i.git_shas.push("0".repeat(40));
        i.git_sha = String::new();
        assert!(
            only(&policy, &i, "version")
                .message
                .contains("names 2 commits")
        );
        assert_eq!(decision(&evaluate(Some(&policy), &i)), Outcome::Fail);
        assert_eq!(decision(&[]), Outcome::Fail);
    }

    #[test]
    fn approvals_count_distinct_approvers_up_to_the_minimum() {
        use crate::gate::input::ApprovalFact;
        let policy = rule("[gate.approvals]\nmin = 2\n");
        let approval = |who: &str| ApprovalFact {
            id: format!("{:0>32}", who.len()),
            approver: who.into(),
            role: Some("approver".into()),
            decision: "approve".into(),
            reason: "ok".into(),
            time: "2026-12-05T00:00:00Z".into(),
            expires_at: None,
            current: true,
            producer: who.into(),
            by_approver: true,
            approver_pushed: false,
            vulnerabilities: Vec::new(),
        };
        let mut i = input();
        i.approvals = vec![approval("alice"), approval("alice")];
        let r = only(&policy, &i, "approvals");
        assert_eq!(r.status, Outcome::Fail);
        assert!(
            r.message.starts_with("1 of the 2 approval(s)"),
            "{}",
            r.message
        );
        i.approvals.push(approval("bob"));
        assert_eq!(only(&policy, &i, "approvals").status, Outcome::Pass);
        // Without separation of duties, a pusher's approval counts.
        let lax = rule("[gate.approvals]\nseparation_of_duties = false\n");
        let mut a = approval("ci");
        a.approver_pushed = true;
        i.approvals = vec![a];
        assert_eq!(only(&lax, &i, "approvals").status, Outcome::Pass);
        assert_eq!(
            only(&rule("[gate.approvals]\n"), &i, "approvals").status,
            Outcome::Fail
        );
    }
}
