//! Query latency on a large vault: `cargo bench -p evault-core --bench queries`.
//!
//! Builds (once; it is kept in `$EVAULT_BENCH_DIR`, default `target/bench-queries`) a vault of
//! 220 blueprints x 100 versions: per version an SBOM of 233 components, a vulnerability scan,
//! provenance, a staging deploy, a production deploy for every other version and a rollback
//! for every twentieth: about 100,000 records and 5,000,000 SBOM components, pushed through
//! the real ingest (facts extracted, log appended, checkpoints signed). Then it times the
//! queries in-process, as the server runs them, and prints percentiles per query class.
//!
//! Components: 50,000 packages with five versions each. Every blueprint has a base set of
//! 185 packages, a quarter of them from the 200 most popular (in nearly every SBOM, as lodash
//! or openssl are), and each version adds 48 random ones; versions of a package move with the
//! blueprint version. Set `EVAULT_BENCH_SCALE` (e.g. 0.05) for a smaller vault, and
//! `EVAULT_BENCH_ONLY` to a part of a query's label to time only that query.

#[path = "common/rng.rs"]
mod rng;

use std::fs;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use evault_core::Vault;
use evault_core::ingest::{LinkArgs, PushRequest, PushSource};
use evault_core::query::QueryContext;
use evault_schema::Kind;
use rng::Rng;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const BLUEPRINTS: usize = 220;
const VERSIONS: usize = 100;
const PACKAGES: usize = 50_000;
const POPULAR: usize = 200;
const BASE: usize = 185;
const EXTRA: usize = 48;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest(text: &str) -> String {
    format!("sha256:{}", hex(&Sha256::digest(text.as_bytes())))
}

fn sha(blueprint: usize, version: usize) -> String {
    hex(&Sha256::digest(
        format!("commit {blueprint} {version}").as_bytes(),
    ))[..40]
        .to_string()
}

fn package(i: usize) -> String {
    format!("pkg-{i}")
}

fn package_version(version: usize, package: usize) -> String {
    format!("1.{}.0", (version / 20 + package) % 5)
}

fn artifact(blueprint: usize, version: usize) -> String {
    digest(&format!("image bp-{blueprint}:{version}"))
}

fn time(blueprint: usize, version: usize, minutes: i64) -> String {
    let t = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap()
        + chrono::Duration::hours((version * 48 + blueprint % 24) as i64)
        + chrono::Duration::minutes(minutes);
    t.with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The files of one version's push.
fn files(rng: &mut Rng, base: &[usize], b: usize, v: usize) -> Vec<(String, Vec<u8>)> {
    let name = format!("bp-{b}");
    let mut components: Vec<Value> = Vec::with_capacity(BASE + EXTRA);
    let mut chosen: Vec<usize> = base.to_vec();
    for _ in 0..EXTRA {
        chosen.push(POPULAR + rng.below(PACKAGES - POPULAR));
    }
    for p in chosen {
        let pv = package_version(v, p);
        components.push(json!({"type": "library", "name": package(p), "version": pv,
            "purl": format!("pkg:npm/{}@{pv}", package(p))}));
    }
    let sbom = json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
        "serialNumber": format!("urn:uuid:{b}-{v}"), "components": components});
    let scan = json!({"matches": [
        {"vulnerability": {"id": format!("CVE-2026-{}", b * 7 % 1000), "severity": "High"},
         "artifact": {"name": package(b), "version": package_version(v, b), "type": "npm"}},
        {"vulnerability": {"id": "CVE-2021-23337", "severity": "High"},
         "artifact": {"name": "pkg-0", "version": package_version(v, 0), "type": "npm"}}],
        "source": {"type": "image"}, "descriptor": {"name": "grype", "version": "0.74.0"}});
    let image = artifact(b, v);
    let provenance = json!({"_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": format!("ghcr.io/acme/{name}"), "digest": {"sha256": &image[7..]}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {"buildDefinition": {"buildType": "https://actions.github.io/buildtypes/workflow/v1",
            "externalParameters": {},
            "resolvedDependencies": [{"uri": format!("git+https://github.com/acme/{name}"),
                "digest": {"gitCommit": sha(b, v)}}]},
            "runDetails": {"builder": {"id": "https://github.com/actions/runner/github-hosted"}}}});
    let deploy = |env: &str, minutes: i64| {
        json!({"_type": "https://evault.dev/deploy/v1", "environment": env, "artifact": image,
            "time": time(b, v, minutes), "actor": "ci-deployer", "status": "succeeded",
            "blueprint": {"name": name, "version": v.to_string()}})
    };
    let mut out = vec![
        ("sbom.json".to_string(), serde_json::to_vec(&sbom).unwrap()),
        ("scan.json".to_string(), serde_json::to_vec(&scan).unwrap()),
        (
            "provenance.json".to_string(),
            serde_json::to_vec(&provenance).unwrap(),
        ),
        (
            "deploy-staging.json".to_string(),
            serde_json::to_vec(&deploy("staging", 10)).unwrap(),
        ),
    ];
    if v.is_multiple_of(2) {
        out.push((
            "deploy-production.json".into(),
            serde_json::to_vec(&deploy("production", 120)).unwrap(),
        ));
    }
    if v % 20 == 10 && v > 0 {
        let rollback = json!({"_type": "https://evault.dev/rollback/v1", "environment": "production",
            "from_version": v.to_string(), "to_version": (v - 2).to_string(),
            "trigger": "error rate > 5%", "reason": "bench", "time": time(b, v, 180),
            "actor": "oncall", "blueprint": name});
        out.push((
            "rollback.json".into(),
            serde_json::to_vec(&rollback).unwrap(),
        ));
    }
    out
}

fn build(dir: &Path, scale: f64) -> Vault {
    let blueprints = ((BLUEPRINTS as f64 * scale).ceil() as usize).max(1);
    let (vault, _) = Vault::init(dir, "bench").expect("init");
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let started = Instant::now();
    let mut records = 0usize;
    for b in 0..blueprints {
        // A quarter of the base set from the most popular packages.
        let mut base: Vec<usize> = (0..BASE / 4).map(|_| rng.below(POPULAR)).collect();
        base.extend((0..BASE - BASE / 4).map(|_| POPULAR + rng.below(PACKAGES - POPULAR)));
        base.sort_unstable();
        base.dedup();
        for v in 0..VERSIONS {
            let sources = files(&mut rng, &base, b, v)
                .into_iter()
                .map(|(name, bytes)| PushSource::Reader {
                    name,
                    reader: Box::new(Cursor::new(bytes)),
                })
                .collect();
            let outcome = vault
                .push(
                    PushRequest {
                        sources,
                        links: LinkArgs {
                            blueprint: Some(format!("bp-{b}")),
                            version: Some(v.to_string()),
                            git_sha: Some(sha(b, v)),
                            repo: Some(format!("https://github.com/acme/bp-{b}")),
                            ..LinkArgs::default()
                        },
                        kind: None,
                        producer: "bench".into(),
                        expand_archives: false,
                        allowed_blueprints: Vec::new(),
                    },
                    &mut |_| {},
                )
                .expect("push");
            records += outcome.records.len();
        }
        eprint!(
            "\rbuilt {}/{blueprints} blueprints, {records} records, {:.0} s",
            b + 1,
            started.elapsed().as_secs_f64()
        );
    }
    eprintln!();
    fs::write(dir.join("bench-complete"), format!("{blueprints}\n")).unwrap();
    vault
}

/// Times `f` on each input; prints p50, p95, p99 and max.
fn measure<T>(label: &str, inputs: &[T], mut f: impl FnMut(&T) -> usize) {
    if let Ok(only) = std::env::var("EVAULT_BENCH_ONLY")
        && !label.contains(&only)
    {
        return;
    }
    for input in inputs.iter().take(20) {
        f(input);
    }
    let mut times: Vec<Duration> = Vec::with_capacity(inputs.len());
    let mut results = 0usize;
    for input in inputs {
        let t = Instant::now();
        results += f(input);
        times.push(t.elapsed());
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| {label} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} |",
        times.len(),
        ms(at(0.50)),
        ms(at(0.95)),
        ms(at(0.99)),
        ms(*times.last().unwrap()),
        results as f64 / times.len() as f64
    );
}

fn main() {
    let scale: f64 = std::env::var("EVAULT_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let dir = std::env::var_os("EVAULT_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-queries"));
    let vault = if dir.join("bench-complete").exists() {
        Vault::open(&dir).expect("open")
    } else {
        let _ = fs::remove_dir_all(&dir);
        build(&dir, scale)
    };
    let blueprints: usize = fs::read_to_string(dir.join("bench-complete"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let stats = vault.stats().expect("stats");
    let components: i64 = {
        let conn = rusqlite::Connection::open(dir.join("index.db")).unwrap();
        conn.query_row("SELECT count(*) FROM components", [], |r| r.get(0))
            .unwrap()
    };
    println!(
        "vault: {} records, {} SBOM components, {} blueprints\n",
        stats.records, components, blueprints
    );
    let ctx = QueryContext::default();
    let mut rng = Rng(42);
    let deploy_ids: Vec<String> = {
        let conn = rusqlite::Connection::open(dir.join("index.db")).unwrap();
        let mut stmt = conn
            .prepare("SELECT id FROM records WHERE kind = 'deploy' ORDER BY random() LIMIT 1000")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    let _ = Kind::Deploy;
    println!("| query | n | p50 ms | p95 ms | p99 ms | max ms | results/query |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    measure("trace deploy (record id)", &deploy_ids, |id| {
        let t = vault.trace_deploy(id, &ctx).expect("trace");
        t.evidence.sboms.len() + t.evidence.scans.len() + t.evidence.provenance.len()
    });
    let artifacts: Vec<String> = (0..1000)
        .map(|_| artifact(rng.below(blueprints), rng.below(VERSIONS)))
        .collect();
    measure("trace deploy (artifact digest)", &artifacts, |a| {
        vault.trace_deploy(a, &ctx).expect("trace").gaps.len()
    });
    let commits: Vec<String> = (0..1000)
        .map(|_| sha(rng.below(blueprints), rng.below(VERSIONS)))
        .collect();
    measure("trace commit", &commits, |c| {
        vault.trace_commit(c, &ctx).expect("trace").versions.len()
    });
    let rare: Vec<String> = (0..1000)
        .map(|_| {
            let p = POPULAR + rng.below(PACKAGES - POPULAR);
            format!(
                "pkg:npm/{}@{}",
                package(p),
                package_version(rng.below(VERSIONS), p)
            )
        })
        .collect();
    measure("search component, a package@version (random)", &rare, |q| {
        vault
            .search_component(q, 200, &ctx)
            .expect("search")
            .sbom_count
    });
    let popular: Vec<String> = (0..200)
        .map(|_| {
            let p = rng.below(POPULAR);
            format!(
                "pkg:npm/{}@{}",
                package(p),
                package_version(rng.below(VERSIONS), p)
            )
        })
        .collect();
    measure(
        "search component, a popular package@version",
        &popular,
        |q| {
            vault
                .search_component(q, 200, &ctx)
                .expect("search")
                .sbom_count
        },
    );
    let any: Vec<String> = (0..100)
        .map(|_| format!("pkg:npm/{}", package(rng.below(POPULAR))))
        .collect();
    measure(
        "search component, a popular package, any version",
        &any,
        |q| {
            vault
                .search_component(q, 200, &ctx)
                .expect("search")
                .sbom_count
        },
    );
    let names: Vec<String> = (0..1000)
        .map(|_| {
            let p = POPULAR + rng.below(PACKAGES - POPULAR);
            format!("{}@{}", package(p), package_version(rng.below(VERSIONS), p))
        })
        .collect();
    measure("search component, name@version (random)", &names, |q| {
        vault
            .search_component(q, 200, &ctx)
            .expect("search")
            .sbom_count
    });
    let vulns: Vec<String> = (0..100)
        .map(|_| format!("CVE-2026-{}", rng.below(blueprints) * 7 % 1000))
        .collect();
    measure("search vuln (one blueprint's CVE)", &vulns, |id| {
        vault.search_vuln(id, &ctx).expect("search").versions.len()
    });
    let everywhere = vec!["CVE-2021-23337".to_string(); 20];
    measure("search vuln (in every scan)", &everywhere, |id| {
        vault.search_vuln(id, &ctx).expect("search").versions.len()
    });
}
