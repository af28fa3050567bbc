//! The `summary` of a record: what its evidence says, in a few numbers and names, for
//! `evault show` and the API.

use evault_schema::Kind;
use evault_schema::extract::apply::{suppresses, vex_outcome};
use serde_json::{Map, Value, json};

use crate::error::Result;
use crate::facts::{FactRead, by_severity};
use crate::record::Record;

/// What `record`'s evidence says. `Value::Null` for kinds that have nothing to summarise, or
/// for blobs whose content could not be read.
pub fn summary(facts: &dyn FactRead, record: &Record) -> Result<Value> {
    let Some(counts) = facts.fact_counts(&record.digest)? else {
        return Ok(Value::Null);
    };
    let mut out = Map::new();
    match record.kind {
        Kind::Sbom => {
            out.insert("components".into(), counts.components.into());
        }
        Kind::VulnScan => {
            let findings = facts.findings(&record.digest)?;
            let vex = facts.vex_for(&record.blueprint.name, &record.blueprint.version)?;
            let statements: Vec<_> = vex.iter().map(|(_, s)| s.clone()).collect();
            let outcome = vex_outcome(&findings, &statements);
            let remaining = findings
                .iter()
                .zip(&outcome)
                .filter(|(_, o)| !suppresses(**o))
                .map(|(f, _)| f);
            let mut vex_records: Vec<&str> = vex.iter().map(|(id, _)| id.as_str()).collect();
            vex_records.dedup();
            out.insert("findings".into(), counts.findings.into());
            out.insert(
                "by_severity".into(),
                Value::Object(by_severity(findings.iter())),
            );
            out.insert("after_vex".into(), Value::Object(by_severity(remaining)));
            out.insert(
                "suppressed_by_vex".into(),
                outcome.iter().filter(|o| suppresses(**o)).count().into(),
            );
            out.insert("vex_records".into(), json!(vex_records));
        }
        Kind::Vex => {
            let mut by_status = Map::new();
            for (status, n) in facts.vex_status_counts(&record.digest)? {
                by_status.insert(status, n.into());
            }
            out.insert("statements".into(), counts.statements.into());
            out.insert("by_status".into(), Value::Object(by_status));
        }
        Kind::Provenance | Kind::Attestation => {
            if let Some(p) = facts.provenance(&record.digest)? {
                out.insert("predicate_type".into(), p.predicate_type.into());
                out.insert("builder_id".into(), json!(p.builder_id));
                out.insert("build_type".into(), json!(p.build_type));
                out.insert("source_repo".into(), json!(p.source_repo));
                out.insert("source_commit".into(), json!(p.source_commit));
                out.insert("subjects".into(), p.subjects.len().into());
            }
        }
        Kind::Approval | Kind::Deploy | Kind::Rollback | Kind::PolicyResult => {
            if let Some(Value::Object(doc)) = facts.native(&record.digest)? {
                let keep: &[&str] = match record.kind {
                    Kind::Approval => &[
                        "approver",
                        "decision",
                        "reason",
                        "environment",
                        "time",
                        "expires_at",
                        "role",
                        "vulnerabilities",
                    ],
                    Kind::Deploy => &[
                        "environment",
                        "artifact",
                        "time",
                        "actor",
                        "status",
                        "target",
                    ],
                    Kind::PolicyResult => &["decision", "environment", "time", "actor", "policy"],
                    _ => &[
                        "environment",
                        "from_version",
                        "to_version",
                        "trigger",
                        "reason",
                        "incident",
                        "time",
                        "actor",
                    ],
                };
                for key in keep {
                    if let Some(v) = doc.get(*key) {
                        out.insert((*key).into(), v.clone());
                    }
                }
            }
        }
        _ => {}
    }
    if out.is_empty() {
        return Ok(Value::Null);
    }
    if counts.truncated {
        out.insert("truncated".into(), true.into());
    }
    Ok(Value::Object(out))
}
