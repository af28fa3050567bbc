//! Release-gate latency: `cargo bench -p evault-core --bench gates`.
//!
//! Builds, in a temporary directory, a vault through the real ingest with two versions of one
//! blueprint, then times `Vault::gate_check` in-process, as the server runs it, and prints
//! percentiles per class:
//!
//! - **typical** (`checkout-api 1.4.2`): an SBOM of 300 components, one Grype scan of 60
//!   findings (2 critical, 10 high, the rest medium and low), one OpenVEX document settling the
//!   two criticals, a JUnit report, a rollback plan, and two approvals recorded by approvers who
//!   pushed nothing;
//! - **heavy** (`checkout-api 1.5.0`): the same, but three Grype scans totalling 5,000 findings
//!   (3,000 distinct vulnerability and package pairs, the scans overlapping as rescans do), two
//!   OpenVEX documents of 100 statements each, and 20 exceptions of 5 vulnerabilities each.
//!
//! Every `gate_check` stores its decision as a `policy-result` record (a push: blob written and
//! synced, index transaction, log entry, signed checkpoint): that is part of what is timed.
//! `gate_input` alone reads the same facts without judging or recording; the last rows time the
//! judging alone on the heavy version's input (the built-in rules; compiling the Rego policy,
//! turning the input into a Rego value, evaluating), so the reading, judging and recording can
//! be told apart. `EVAULT_BENCH_ONLY` set to a part of a label times only that class.

#[path = "common/rng.rs"]
mod rng;

use std::io::Cursor;
use std::time::{Duration, Instant};

use evault_core::Vault;
use evault_core::gate::{
    ApprovalRequest, BUILT_IN, CheckRequest, ExceptionRequest, GateDecision, GatePolicy, eval, rego,
};
use evault_core::ingest::{LinkArgs, PushRequest, PushSource};
use evault_schema::documents::Decision;
use rng::Rng;
use serde_json::{Value, json};

/// The built-in policy written in Rego (`docs/gates.md`).
const DEFAULT_REGO: &str = include_str!("../../docs/examples/gate-default.rego");

const BLUEPRINT: &str = "checkout-api";
const TYPICAL: &str = "1.4.2";
const HEAVY: &str = "1.5.0";
const COMPONENTS: usize = 300;
/// Distinct (vulnerability, package) pairs the heavy version's scans report.
const PAIRS: usize = 3000;
/// The pairs each heavy scan reports: 2,000 + 1,500 + 1,500 = 5,000 findings.
const SCANS: [(usize, usize); 3] = [(0, 2000), (1000, 2500), (1500, 3000)];
const VEX_DOCUMENTS: usize = 2;
const VEX_STATEMENTS: usize = 100;
const EXCEPTIONS: usize = 20;
const PER_EXCEPTION: usize = 5;

fn git_sha(version: &str) -> String {
    match version {
        TYPICAL => "4f1c0d2b".repeat(5),
        _ => "9b2e4c6a".repeat(5),
    }
}

fn package(i: usize) -> String {
    format!("pkg-{i}")
}

fn package_version(i: usize) -> String {
    format!("{}.{}.{}", 1 + i % 4, i % 17, i % 5)
}

fn purl(i: usize) -> String {
    format!("pkg:npm/{}@{}", package(i), package_version(i))
}

fn sbom(version: &str) -> Value {
    let components: Vec<Value> = (0..COMPONENTS)
        .map(|i| {
            json!({"type": "library", "name": package(i), "version": package_version(i),
                   "purl": purl(i)})
        })
        .collect();
    json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
           "serialNumber": format!("urn:uuid:checkout-api-{version}"),
           "metadata": {"component": {"type": "container", "name": BLUEPRINT, "version": version}},
           "components": components})
}

/// One Grype match of `id` in package `p`.
fn grype_match(id: &str, alias: Option<String>, severity: &str, p: usize) -> Value {
    let related: Vec<Value> = alias
        .into_iter()
        .map(|a| json!({"id": a, "namespace": "github:language:javascript"}))
        .collect();
    json!({"vulnerability": {"id": id, "severity": severity, "namespace": "nvd:cpe",
                             "fix": {"versions": [], "state": "unknown"}},
           "relatedVulnerabilities": related,
           "matchDetails": [{"type": "exact-direct-match", "matcher": "javascript-matcher"}],
           "artifact": {"name": package(p), "version": package_version(p), "type": "npm",
                        "purl": purl(p), "locations": [{"path": "/app/package-lock.json"}]}})
}

fn grype(matches: Vec<Value>, target: &str) -> Value {
    json!({"matches": matches,
           "source": {"type": "image", "target": {"userInput": target}},
           "distro": {"name": "debian", "version": "12"},
           "descriptor": {"name": "grype", "version": "0.74.0"}})
}

/// The typical version's scan: 60 findings, CVE-2026-1000 and -1001 critical, -1002 to -1011
/// high, the rest medium and low.
fn typical_scan() -> Value {
    let matches = (0..60)
        .map(|i| {
            let severity = match i {
                0..2 => "Critical",
                2..12 => "High",
                12..40 => "Medium",
                _ => "Low",
            };
            grype_match(
                &format!("CVE-2026-{}", 1000 + i),
                None,
                severity,
                i * 5 % 300,
            )
        })
        .collect();
    grype(matches, "ghcr.io/acme/checkout-api:1.4.2")
}

/// One of the heavy version's distinct findings.
struct Pair {
    id: String,
    alias: Option<String>,
    severity: &'static str,
    package: usize,
}

/// The heavy version's 3,000 distinct pairs: 2,500 CVEs, 500 of them in two packages; about 1 %
/// critical, 7 % high, the rest medium and low; a third with a GHSA alias.
fn pairs(rng: &mut Rng) -> Vec<Pair> {
    (0..PAIRS)
        .map(|i| {
            let severity = match rng.below(1000) {
                0..10 => "Critical",
                10..80 => "High",
                80..500 => "Medium",
                _ => "Low",
            };
            Pair {
                id: format!("CVE-2025-{}", 10_000 + i % 2500),
                alias: (i % 3 == 0).then(|| {
                    format!(
                        "GHSA-{:04x}-{:04x}-{:04x}",
                        rng.below(1 << 16),
                        rng.below(1 << 16),
                        rng.below(1 << 16)
                    )
                }),
                severity,
                package: i * 7 % COMPONENTS,
            }
        })
        .collect()
}

/// The heavy version's three scans. The third, a rescan with a newer database, rates one in
/// forty of its medium findings high.
fn heavy_scans(pairs: &[Pair]) -> Vec<Value> {
    SCANS
        .iter()
        .enumerate()
        .map(|(s, &(from, to))| {
            let matches = (from..to)
                .map(|i| {
                    let p = &pairs[i];
                    let severity = if s == 2 && p.severity == "Medium" && i % 40 == 0 {
                        "High"
                    } else {
                        p.severity
                    };
                    grype_match(&p.id, p.alias.clone(), severity, p.package)
                })
                .collect();
            grype(
                matches,
                &format!("ghcr.io/acme/checkout-api:1.5.0 (scan {s})"),
            )
        })
        .collect()
}

fn openvex(n: usize, statements: Vec<Value>) -> Value {
    json!({"@context": "https://openvex.dev/ns/v0.2.0",
           "@id": format!("https://acme.example/vex/checkout-api/{n}"),
           "author": "security@acme.example", "timestamp": "2026-11-30T09:00:00Z",
           "version": 1, "statements": statements})
}

/// A statement that `id` does not affect the image (every package in it) or, with `package`,
/// only that package.
fn statement(id: &str, status: &str, package: Option<usize>) -> Value {
    let mut product = json!({"@id": "pkg:oci/checkout-api"});
    if let Some(p) = package {
        product["subcomponents"] = json!([{"@id": purl(p)}]);
    }
    let mut s = json!({"vulnerability": {"name": id}, "products": [product], "status": status});
    match status {
        "not_affected" => s["justification"] = json!("vulnerable_code_not_in_execute_path"),
        "affected" => s["action_statement"] = json!("upgrade in the next release"),
        _ => {}
    }
    s
}

/// The heavy version's VEX: 200 statements about the criticals first, then spread over the
/// rest; most not affected, some fixed, under investigation or affected, half of them naming
/// the package.
fn heavy_vex(pairs: &[Pair]) -> Vec<Value> {
    let mut chosen: Vec<usize> = (0..PAIRS)
        .filter(|&i| pairs[i].severity == "Critical")
        .collect();
    let mut i = 0;
    while chosen.len() < VEX_DOCUMENTS * VEX_STATEMENTS {
        if !chosen.contains(&i) {
            chosen.push(i);
        }
        i += 13;
    }
    let statements: Vec<Value> = chosen
        .iter()
        .enumerate()
        .map(|(j, &i)| {
            let status = match j % 10 {
                0..6 => "not_affected",
                6..8 => "fixed",
                8 => "under_investigation",
                _ => "affected",
            };
            statement(
                &pairs[i].id,
                status,
                (j % 2 == 1).then_some(pairs[i].package),
            )
        })
        .collect();
    statements
        .chunks(VEX_STATEMENTS)
        .enumerate()
        .map(|(n, chunk)| openvex(n, chunk.to_vec()))
        .collect()
}

const JUNIT: &str = "<?xml version=\"1.0\"?>\n<testsuites><testsuite name=\"api\" tests=\"3\">\
    <testcase name=\"checkout\"/><testcase name=\"refund\"/><testcase name=\"health\"/>\
    </testsuite></testsuites>\n";

const ROLLBACK_PLAN: &str = "# Rollback plan\n\n## Trigger Conditions\n- error rate > 5% for 5 \
    minutes\n\n## Steps\n1. `evault trace` the previous production version\n2. redeploy it\n";

fn push(vault: &Vault, version: &str, producer: &str, files: Vec<(String, Vec<u8>)>) {
    let sources = files
        .into_iter()
        .map(|(name, bytes)| PushSource::Reader {
            name,
            reader: Box::new(Cursor::new(bytes)),
        })
        .collect();
    vault
        .push(
            PushRequest {
                sources,
                links: LinkArgs {
                    blueprint: Some(BLUEPRINT.into()),
                    version: Some(version.into()),
                    git_sha: Some(git_sha(version)),
                    repo: Some("https://github.com/acme/checkout-api".into()),
                    ..LinkArgs::default()
                },
                kind: None,
                producer: producer.into(),
                expand_archives: false,
                allowed_blueprints: Vec::new(),
            },
            &mut |_| {},
        )
        .expect("push");
}

fn file(name: &str, doc: &Value) -> (String, Vec<u8>) {
    (name.to_string(), serde_json::to_vec_pretty(doc).unwrap())
}

/// The pipeline's push of a version: SBOM, scans, test report, rollback plan.
fn pipeline(vault: &Vault, version: &str, scans: &[Value]) {
    let mut files = vec![file("sbom.cdx.json", &sbom(version))];
    for (s, scan) in scans.iter().enumerate() {
        files.push(file(&format!("grype-{s}.json"), scan));
    }
    files.push(("junit.xml".into(), JUNIT.as_bytes().to_vec()));
    files.push(("rollback_plan.md".into(), ROLLBACK_PLAN.as_bytes().to_vec()));
    push(vault, version, "ci", files);
}

fn approve(vault: &Vault, version: &str, approver: &str) {
    let recorded = vault
        .record_approval(
            ApprovalRequest {
                blueprint: BLUEPRINT.into(),
                version: version.into(),
                environment: "production".into(),
                decision: Decision::Approve,
                reason: "CHG-1234 reviewed; canary green".into(),
                expires: Some("7d".into()),
                ticket: Some("CHG-1234".into()),
                git_sha: None,
            },
            approver,
            "approver",
            &[],
        )
        .expect("approve");
    assert!(recorded.warnings.is_empty(), "{:?}", recorded.warnings);
}

fn build(vault: &Vault) {
    pipeline(vault, TYPICAL, &[typical_scan()]);
    let vex = openvex(
        0,
        vec![
            statement("CVE-2026-1000", "not_affected", None),
            statement("CVE-2026-1001", "not_affected", Some(5)),
        ],
    );
    push(vault, TYPICAL, "security", vec![file("vex.json", &vex)]);
    approve(vault, TYPICAL, "alice");
    approve(vault, TYPICAL, "bob");

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let pairs = pairs(&mut rng);
    pipeline(vault, HEAVY, &heavy_scans(&pairs));
    let vex: Vec<(String, Vec<u8>)> = heavy_vex(&pairs)
        .iter()
        .enumerate()
        .map(|(n, doc)| file(&format!("vex-{n}.json"), doc))
        .collect();
    push(vault, HEAVY, "security", vex);
    approve(vault, HEAVY, "alice");
    approve(vault, HEAVY, "bob");
    let mut high: Vec<&str> = pairs
        .iter()
        .filter(|p| p.severity == "High")
        .map(|p| p.id.as_str())
        .collect();
    high.sort_unstable();
    high.dedup();
    for chunk in high.chunks(PER_EXCEPTION).take(EXCEPTIONS) {
        let recorded = vault
            .record_exception(
                ExceptionRequest {
                    blueprint: BLUEPRINT.into(),
                    version: HEAVY.into(),
                    environment: "production".into(),
                    vulnerabilities: chunk.iter().map(|v| v.to_string()).collect(),
                    reason: "not reachable from the public API; fix scheduled".into(),
                    expires: "14d".into(),
                    ticket: Some("SEC-77".into()),
                    git_sha: None,
                },
                "carol",
                "approver",
                &[],
            )
            .expect("exception");
        assert!(recorded.warnings.is_empty(), "{:?}", recorded.warnings);
    }
}

fn request(version: &str, policy: Option<&str>) -> CheckRequest {
    CheckRequest {
        blueprint: BLUEPRINT.into(),
        version: version.into(),
        environment: "production".into(),
        policy: policy.map(str::to_string),
        ..CheckRequest::default()
    }
}

fn check(vault: &Vault, version: &str, policy: Option<&str>) -> GateDecision {
    let d = vault
        .gate_check(request(version, policy), "ci", &[])
        .expect("gate check");
    assert!(
        d.record.is_some(),
        "decision not recorded: {:?}",
        d.warnings
    );
    d
}

/// Prints a decision once, one line per requirement.
fn show(label: &str, d: &GateDecision) {
    println!("{label}: {} ({} policy)", d.decision, d.policy.engine);
    for r in &d.requirements {
        let message: String = r.message.chars().take(110).collect();
        println!("  {:4}  {:26} {message}", r.status.as_str(), r.name);
    }
}

fn selected(label: &str) -> bool {
    std::env::var("EVAULT_BENCH_ONLY").map_or(true, |only| label.contains(&only))
}

/// Times `runs` calls of `f` after `warm_up` untimed ones; prints n, p50, p95, p99, max and
/// what the last call answered.
fn measure(label: &str, warm_up: usize, runs: usize, mut f: impl FnMut() -> String) {
    if !selected(label) {
        return;
    }
    for _ in 0..warm_up {
        f();
    }
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    let mut answer = String::new();
    for _ in 0..runs {
        let t = Instant::now();
        answer = f();
        times.push(t.elapsed());
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| {label} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {answer} |",
        times.len(),
        ms(at(0.50)),
        ms(at(0.95)),
        ms(at(0.99)),
        ms(*times.last().unwrap()),
    );
}

fn main() {
    let dir = tempfile::Builder::new()
        .prefix("evault-bench-gates")
        .tempdir()
        .expect("temporary directory");
    let (vault, _) = Vault::init(dir.path(), "bench").expect("init");
    let started = Instant::now();
    build(&vault);
    let heavy = vault
        .gate_input(&request(HEAVY, None), &[])
        .expect("gate input");
    let typical = vault
        .gate_input(&request(TYPICAL, None), &[])
        .expect("gate input");
    let kinds = |i: &evault_core::gate::GateInput| {
        i.evidence
            .iter()
            .map(|(k, v)| format!("{} {k}", v.len()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "vault built in {:.1} s: {} records",
        started.elapsed().as_secs_f64(),
        vault.stats().expect("stats").records
    );
    for (name, input) in [("typical", &typical), ("heavy", &heavy)] {
        println!(
            "{name} {}: {}; {} vulnerabilities after merging scans ({} settled by VEX, {} named \
             by exceptions); {} approvals, {} exceptions; input {} KiB as JSON",
            input.version,
            kinds(input),
            input.vulnerabilities.len(),
            input
                .vulnerabilities
                .iter()
                .filter(|v| v.suppressed)
                .count(),
            input
                .vulnerabilities
                .iter()
                .filter(|v| !v.exceptions.is_empty())
                .count(),
            input.approvals.len(),
            input.exceptions.len(),
            serde_json::to_vec(input).unwrap().len() / 1024
        );
    }
    println!();
    show("(a) typical, built-in TOML", &check(&vault, TYPICAL, None));
    show("(b) heavy, built-in TOML", &check(&vault, HEAVY, None));
    show("(c) heavy, Rego", &check(&vault, HEAVY, Some(DEFAULT_REGO)));
    println!();

    let toml = GatePolicy::from_toml(BUILT_IN).expect("built-in policy");
    let resolved = toml.resolve(BLUEPRINT, "production");
    let engine = rego::compile(DEFAULT_REGO).expect("Rego policy");
    println!("| class | n | p50 ms | p95 ms | p99 ms | max ms | decision |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    measure("(a) typical: gate_check, built-in TOML", 5, 200, || {
        check(&vault, TYPICAL, None).decision.to_string()
    });
    measure("(b) heavy: gate_check, built-in TOML", 3, 30, || {
        check(&vault, HEAVY, None).decision.to_string()
    });
    measure("(c) heavy: gate_check, Rego policy", 3, 30, || {
        check(&vault, HEAVY, Some(DEFAULT_REGO))
            .decision
            .to_string()
    });
    measure("(d) heavy: gate_input only", 3, 30, || {
        let input = vault
            .gate_input(&request(HEAVY, None), &[])
            .expect("gate input");
        format!("{} vulnerabilities", input.vulnerabilities.len())
    });
    measure("(e) typical: gate_input only", 5, 200, || {
        let input = vault
            .gate_input(&request(TYPICAL, None), &[])
            .expect("gate input");
        format!("{} vulnerabilities", input.vulnerabilities.len())
    });
    measure("(f) heavy: built-in TOML rules only", 3, 30, || {
        eval::decision(&eval::evaluate(resolved.as_ref(), &heavy)).to_string()
    });
    measure("(g) heavy: Rego compile only", 3, 30, || {
        rego::compile(DEFAULT_REGO).expect("Rego policy");
        "-".into()
    });
    measure("(h) heavy: Rego input conversion only", 3, 30, || {
        let json = serde_json::to_string(&heavy).expect("input as JSON");
        regorus::Value::from_json_str(&json).expect("input as a Rego value");
        format!("{} KiB", json.len() / 1024)
    });
    measure("(i) heavy: Rego evaluate only", 3, 30, || {
        let mut out = vec![eval::version_requirement(&heavy)];
        out.extend(rego::evaluate(&engine, &heavy));
        eval::decision(&out).to_string()
    });
}
