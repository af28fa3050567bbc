//! The queries that must stay fast on a large vault (`trace`, `search component`) find their
//! rows through indexes. These tests run each query on a small vault, take every statement it
//! ran (with its parameters, traced by the query connections) and read SQLite's plan for it:
//! no statement may scan a table, and none may walk the kind index alone (every deploy, every
//! provenance record) when a more selective index (an id, a subject, a blueprint) exists. The
//! plans do not depend on the amount of data (the index has no statistics), so a small vault
//! shows the plans of a large one; `core/benches/queries.rs` measures the times.

use std::io::Cursor;
use std::path::Path;

use rusqlite::Connection;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::QueryContext;
use crate::index::TRACED;
use crate::ingest::{LinkArgs, PushRequest, PushSource};
use crate::vault::Vault;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha(b: usize, v: usize) -> String {
    hex(&Sha256::digest(format!("commit {b} {v}").as_bytes()))[..40].to_string()
}

fn image(b: usize, v: usize) -> String {
    format!(
        "sha256:{}",
        hex(&Sha256::digest(format!("image {b} {v}").as_bytes()))
    )
}

/// Two blueprints, three versions each: SBOM, scan, provenance, deploys, one rollback.
fn history(dir: &Path) -> Vault {
    let (vault, _) = Vault::init(dir, "test").unwrap();
    for b in 0..2 {
        let name = format!("bp-{b}");
        for v in 1..=3usize {
            let component = |p: &str| {
                json!({"type": "library", "name": p, "version": format!("1.{v}.0"),
                       "purl": format!("pkg:npm/{p}@1.{v}.0")})
            };
            let sbom = json!({"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1,
                "components": [component("lodash"), component(&format!("only-{b}"))]});
            let scan = json!({"matches": [{"vulnerability": {"id": "CVE-2021-23337",
                "severity": "High"}, "artifact": {"name": "lodash", "version": "1.0.0",
                "type": "npm"}}], "source": {"type": "image"},
                "descriptor": {"name": "grype", "version": "0.74.0"}});
            let provenance = json!({"_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": "img", "digest": {"sha256": &image(b, v)[7..]}}],
                "predicateType": "https://slsa.dev/provenance/v1",
                "predicate": {"buildDefinition": {"buildType": "https://example.com/b",
                    "externalParameters": {}, "resolvedDependencies": [
                    {"uri": "git+https://github.com/acme/x", "digest": {"gitCommit": sha(b, v)}}]},
                    "runDetails": {"builder": {"id": "https://example.com/builder"}}}});
            let deploy = |env: &str, minutes: usize| {
                json!({"_type": "https://evault.dev/deploy/v1", "environment": env,
                    "artifact": image(b, v), "actor": "ci", "status": "succeeded",
                    "time": format!("2026-01-0{v}T00:{minutes:02}:00Z"),
                    "blueprint": {"name": name, "version": v.to_string()}})
            };
            let mut files: Vec<(&str, Value)> = vec![
                ("sbom.json", sbom),
                ("scan.json", scan),
                ("provenance.json", provenance),
                ("staging.json", deploy("staging", 10)),
                ("production.json", deploy("production", 20)),
            ];
            if v == 3 {
                files.push((
                    "rollback.json",
                    json!({"_type": "https://evault.dev/rollback/v1",
                        "environment": "production", "from_version": "3", "to_version": "2",
                        "trigger": "errors", "reason": "test", "actor": "oncall",
                        "time": "2026-01-03T00:30:00Z", "blueprint": name}),
                ));
            }
            let sources = files
                .into_iter()
                .map(|(file, doc)| PushSource::Reader {
                    name: file.to_string(),
                    reader: Box::new(Cursor::new(serde_json::to_vec(&doc).unwrap())),
                })
                .collect();
            vault
                .push(
                    PushRequest {
                        sources,
                        links: LinkArgs {
                            blueprint: Some(name.clone()),
                            version: Some(v.to_string()),
                            git_sha: Some(sha(b, v)),
                            ..LinkArgs::default()
                        },
                        kind: None,
                        producer: "test".into(),
                        expand_archives: false,
                        allowed_blueprints: Vec::new(),
                    },
                    &mut |_| {},
                )
                .unwrap();
        }
    }
    vault
}

/// The statements this thread's queries ran since the last call.
fn take_traced() -> Vec<String> {
    let me = std::thread::current().id();
    let mut traced = TRACED.lock().unwrap();
    let (mine, others): (Vec<_>, Vec<_>) = traced.drain(..).partition(|(t, _)| *t == me);
    *traced = others;
    mine.into_iter().map(|(_, sql)| sql).collect()
}

/// What is wrong with the plans of the statements `query` ran, one line per problem.
fn plan_problems(conn: &Connection, query: &str, run: impl FnOnce()) -> Vec<String> {
    take_traced();
    run();
    let statements: Vec<String> = take_traced()
        .into_iter()
        .filter(|sql| {
            let s = sql.trim_start().to_ascii_uppercase();
            s.starts_with("SELECT") || s.starts_with("WITH")
        })
        .collect();
    assert!(
        !statements.is_empty(),
        "{query}: no statement was traced; the plan check checked nothing"
    );
    let mut problems = Vec::new();
    for sql in statements {
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let details: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        // A subquery's rows are scanned once they are computed: not a table scan.
        let subqueries: Vec<&str> = details
            .iter()
            .filter_map(|d| {
                d.strip_prefix("CO-ROUTINE ")
                    .or_else(|| d.strip_prefix("MATERIALIZE "))
            })
            .collect();
        for d in &details {
            let scan = d.strip_prefix("SCAN ").is_some_and(|what| {
                what != "CONSTANT ROW"
                    && !subqueries.contains(&what.split(' ').next().unwrap_or(""))
            });
            // The kind index on its own: every record of a kind (all deploys, all
            // provenance), where an id, a subject or a blueprint would find a handful.
            let kind_walk = d.contains("(kind=?)");
            if scan || kind_walk {
                problems.push(format!("{query}: `{d}` in {sql}"));
            }
        }
    }
    problems
}

#[test]
fn trace_and_search_component_find_their_rows_by_index() {
    let dir = tempfile::tempdir().unwrap();
    let vault = history(dir.path());
    let conn = Connection::open(dir.path().join(crate::vault::INDEX_FILE)).unwrap();
    let ctx = QueryContext::default();
    let deploy_id: String = conn
        .query_row(
            "SELECT id FROM records WHERE kind = 'deploy' ORDER BY seq LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let mut problems = Vec::new();
    problems.extend(plan_problems(&conn, "trace deploy ID", || {
        let t = vault.trace_deploy(&deploy_id, &ctx).unwrap();
        assert_eq!(t.evidence.provenance.len(), 1);
    }));
    problems.extend(plan_problems(&conn, "trace deploy DIGEST", || {
        let t = vault.trace_deploy(&image(1, 2), &ctx).unwrap();
        assert_eq!(t.deploy.blueprint, "bp-1");
    }));
    problems.extend(plan_problems(&conn, "trace commit", || {
        let t = vault.trace_commit(&sha(0, 3), &ctx).unwrap();
        assert_eq!(t.versions.len(), 1);
    }));
    for q in [
        "pkg:npm/lodash@1.2.0",
        "pkg:npm/lodash",
        "lodash@1.2.0",
        "only-1",
    ] {
        problems.extend(plan_problems(
            &conn,
            &format!("search component {q}"),
            || {
                let found = vault.search_component(q, 100, &ctx).unwrap();
                assert!(found.sbom_count > 0, "{q}: nothing found");
            },
        ));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The check itself: a statement that walks the kind index is reported.
#[test]
fn a_walk_of_the_kind_index_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let vault = history(dir.path());
    let conn = Connection::open(dir.path().join(crate::vault::INDEX_FILE)).unwrap();
    let problems = plan_problems(&conn, "all deploys", || {
        super::on_snapshot(vault.index.as_ref(), |c| {
            let n: i64 = c.query_row(
                "SELECT count(*) FROM records WHERE kind = 'deploy' AND producer = 'test'",
                [],
                |r| r.get(0),
            )?;
            assert_eq!(n, 12);
            Ok(())
        })
        .unwrap();
    });
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("records_kind"), "{problems:?}");
}

/// The live deployments read from the `changes` table are those computed from the deploy and
/// rollback documents, and a vault from before the table gets it filled when it is opened.
#[test]
fn live_from_the_changes_table_matches_the_documents_and_survives_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let vault = history(dir.path());
    let ctx = QueryContext::default();
    let from_documents = |vault: &Vault| {
        super::on_snapshot(vault.index.as_ref(), |conn| {
            let reader = super::Reader::new(conn, &ctx);
            let mut out = Vec::new();
            for bp in ["bp-0", "bp-1"] {
                out.push((
                    super::live_versions(&reader.changes(bp)?),
                    reader
                        .live_of(bp)?
                        .into_values()
                        .flatten()
                        .collect::<Vec<_>>(),
                ));
            }
            Ok(out)
        })
        .unwrap()
    };
    let before = from_documents(&vault);
    for (documents, mut table) in before.clone() {
        // By environment: production is bp's version 2 after the rollback of 3.
        table.sort_by(|a, b| a.environment.cmp(&b.environment));
        assert_eq!(documents, table);
        assert_eq!(
            documents
                .iter()
                .map(|l| (l.environment.as_str(), l.version.as_str(), l.via))
                .collect::<Vec<_>>(),
            [
                ("production", "2", evault_schema::Kind::Rollback),
                ("staging", "3", evault_schema::Kind::Deploy)
            ]
        );
        // The rollback restores the artifact version 2 last ran with.
        assert_eq!(
            documents[0].artifact.as_deref(),
            Some(image_of(&documents[0]).as_str())
        );
    }
    let search = vault.search_component("pkg:npm/lodash", 100, &ctx).unwrap();
    drop(vault);

    // As a vault of schema version 6 was: no `changes` table.
    let conn = Connection::open(dir.path().join(crate::vault::INDEX_FILE)).unwrap();
    conn.execute_batch(
        "DROP TABLE changes; DROP INDEX records_digest_links; \
         CREATE INDEX records_digest ON records (digest); \
         DROP TABLE record_retention; DROP TABLE retention_policy; DROP TABLE holds; \
         DROP TABLE tombstones; DROP TABLE gate_policy; \
         DELETE FROM schema_migrations WHERE version >= 7; PRAGMA user_version = 6;",
    )
    .unwrap();
    drop(conn);
    let vault = Vault::open(dir.path()).unwrap();
    assert_eq!(from_documents(&vault), before);
    assert_eq!(
        vault.search_component("pkg:npm/lodash", 100, &ctx).unwrap(),
        search
    );
    assert_eq!(search.live.len(), 4, "{search:?}");
}

fn image_of(live: &super::Live) -> String {
    let b: usize = live.blueprint.trim_start_matches("bp-").parse().unwrap();
    image(b, live.version.parse().unwrap())
}
