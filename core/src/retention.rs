//! Retention in the vault: when each record may go, under the policy in force.
//!
//! The decisions are `evault-retention`'s (pure, clock passed in); this module applies them to
//! the index. Every record gets a `retain_until` in the transaction that stores it (table
//! `record_retention`, part of the record's state in the tamper-evident log), computed from its
//! ingestion time by the policy in force, and then lengthened along the evidence graph: the
//! evidence of a blueprint version (SBOMs, scans, provenance, signatures, approvals, rollback
//! plan, anything but deploys and rollbacks) is kept at least as long as every deploy of that
//! version, so a release's audit trail cannot fall apart piece by piece. A deploy stored later
//! lengthens the evidence already there; evidence stored later starts at the deploys' date.
//! Retention is never shortened here.

use chrono::{DateTime, Utc};
use evault_retention::{Hold, HoldSelector, Mode, Policy, RecordFacts, Release};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::log::state::{HOLDS, RECORDS, RETENTION_POLICY};
use crate::record::format_time;
use crate::vault::Vault;

/// How long a record is kept, shown with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    /// RFC 3339, UTC: the record may be deleted from then on, unless a legal hold keeps it.
    pub retain_until: String,
    /// What decided it: the policy rule, or the deploy whose retention it follows.
    pub rule: String,
}

/// The retention policy in force: the newest one set, or the default.
pub(crate) fn policy_in_force(conn: &Connection) -> Result<Policy> {
    let text: Option<String> = conn
        .query_row(
            "SELECT policy FROM retention_policy WHERE name = 'current'",
            [],
            |r| r.get(0),
        )
        .optional()?;
    match text {
        None => Ok(Policy::default()),
        Some(text) => Policy::from_toml(&text).map_err(|e| {
            Error::Integrity(format!(
                "the retention policy stored in the index does not parse: {e}"
            ))
        }),
    }
}

fn parse_time(text: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::Integrity(format!("the index holds a malformed time '{text}': {e}")))
}

/// Gives the new record `id` its retention, in the transaction that stores it. Returns the
/// ids of other records whose retention it lengthened (the caller logs their new state).
pub(crate) fn assign(
    conn: &Connection,
    policy: &Policy,
    id: &str,
) -> Result<(Retention, Vec<String>)> {
    let (kind, blueprint, version, git_sha, environment, ingested_at): (
        String,
        String,
        String,
        String,
        Option<String>,
        String,
    ) = conn.query_row(
        "SELECT kind, blueprint_name, blueprint_version, git_sha, environment, ingested_at \
         FROM records WHERE id = ?1",
        params![id],
        |r| r.try_into(),
    )?;
    let facts = RecordFacts {
        kind: &kind,
        blueprint: &blueprint,
        version: &version,
        git_sha: &git_sha,
        environment: environment.as_deref(),
        record_id: id,
        ingested_at: parse_time(&ingested_at)?,
    };
    let (own, rule) = policy.retain_until(&facts);
    let mut until = format_time(own);
    let mut rule = rule;
    let mut extended = Vec::new();
    match kind.as_str() {
        "deploy" => {
            // The version's evidence is kept at least as long as this deploy.
            let mut stmt = conn.prepare_cached(
                "SELECT t.record_id FROM records r JOIN record_retention t ON t.record_id = r.id \
                 WHERE r.blueprint_name = ?1 AND r.blueprint_version = ?2 \
                 AND +r.kind NOT IN ('deploy', 'rollback') AND t.retain_until < ?3",
            )?;
            extended = stmt
                .query_map(params![blueprint, version, until], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            let mut update = conn.prepare_cached(
                "UPDATE record_retention SET retain_until = ?2, rule = ?3 WHERE record_id = ?1",
            )?;
            let follows = format!("follows deploy {id} ({rule})");
            for other in &extended {
                update.execute(params![other, until, follows])?;
            }
        }
        "rollback" => {}
        _ => {
            // Evidence of a version already deployed starts at the deploys' retention.
            let longest: Option<(String, String)> = conn
                .query_row(
                    "SELECT t.retain_until, r.id FROM records r \
                     JOIN record_retention t ON t.record_id = r.id \
                     WHERE r.kind = 'deploy' AND r.blueprint_name = ?1 \
                     AND r.blueprint_version = ?2 ORDER BY t.retain_until DESC LIMIT 1",
                    params![blueprint, version],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((deploy_until, deploy)) = longest
                && deploy_until > until
            {
                rule = format!("follows deploy {deploy}");
                until = deploy_until;
            }
        }
    }
    // Never shorter than it was (a policy re-applied to stored records only lengthens).
    let before: Option<(String, String)> = conn
        .prepare_cached("SELECT retain_until, rule FROM record_retention WHERE record_id = ?1")?
        .query_row(params![id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (until, rule) = match before {
        Some((was, was_rule)) if was >= until => (was, was_rule),
        _ => (until, rule),
    };
    conn.prepare_cached(
        "INSERT OR REPLACE INTO record_retention (record_id, retain_until, rule) \
         VALUES (?1, ?2, ?3)",
    )?
    .execute(params![id, until, rule])?;
    Ok((
        Retention {
            retain_until: until,
            rule,
        },
        extended,
    ))
}

/// A rule naming a kind evault does not have would never match: a typo (`sboms`) that would
/// silently leave SBOMs at the default. Refused, naming the rule.
fn check_kinds(policy: &Policy) -> Result<()> {
    for (i, rule) in policy.rules.iter().enumerate() {
        let Some(kind) = rule.kind.as_deref() else {
            continue;
        };
        let known = evault_schema::Kind::ALL.iter().any(|k| k.as_str() == kind);
        if !known {
            let kinds: Vec<&str> = evault_schema::Kind::ALL
                .iter()
                .map(|k| k.as_str())
                .collect();
            return Err(Error::Invalid(format!(
                "invalid retention policy: rule {}: kind: unknown kind '{kind}', expected one \
                 of {}",
                i + 1,
                kinds.join(", ")
            )));
        }
    }
    Ok(())
}

/// The retention policy in force, as `evault retention show` prints it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyView {
    /// `compliance` or `governance`.
    pub mode: Mode,
    /// The policy as TOML (what `retention set --file` takes).
    pub policy: String,
    /// When and by whom it was set; `None` for the default policy.
    pub set_at: Option<String>,
    pub set_by: Option<String>,
}

/// What `evault retention set` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicySet {
    pub policy: PolicyView,
    /// Stored records whose `retain_until` the new policy lengthened (never shortened).
    pub records_extended: u64,
    /// The log entry of the change.
    pub log_index: u64,
}

fn policy_view(conn: &Connection) -> Result<PolicyView> {
    let row: Option<(String, String, String)> = conn
        .query_row(
            "SELECT policy, set_at, set_by FROM retention_policy WHERE name = 'current'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let policy = policy_in_force(conn)?;
    Ok(match row {
        Some((text, at, by)) => PolicyView {
            mode: policy.mode,
            policy: text,
            set_at: Some(at),
            set_by: Some(by),
        },
        None => PolicyView {
            mode: policy.mode,
            policy: policy.to_toml(),
            set_at: None,
            set_by: None,
        },
    })
}

fn hold_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Hold> {
    let selector: String = r.get(2)?;
    let time = |i: usize| -> rusqlite::Result<Option<DateTime<Utc>>> {
        Ok(r.get::<_, Option<String>>(i)?
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc)))
    };
    let created_at = time(3)?.unwrap_or_default();
    let released = match (time(5)?, r.get::<_, Option<String>>(6)?, r.get(7)?) {
        (Some(at), Some(by), Some(reason)) => Some(Release { at, by, reason }),
        _ => None,
    };
    Ok(Hold {
        name: r.get(0)?,
        reason: r.get(1)?,
        selector: serde_json::from_str(&selector).unwrap_or_default(),
        created_at,
        created_by: r.get(4)?,
        released,
    })
}

/// Every hold, active and released, by name.
pub(crate) fn holds(conn: &Connection) -> Result<Vec<Hold>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, reason, selector, created_at, created_by, released_at, released_by, \
         release_reason FROM holds ORDER BY name",
    )?;
    let rows = stmt.query_map([], hold_from_row)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row?);
    }
    Ok(out)
}

/// The names of the active holds among `holds` that keep `record`.
pub(crate) fn holds_on_record(
    holds: &[Hold],
    record: &crate::record::Record,
) -> Result<Vec<String>> {
    let facts = RecordFacts {
        kind: record.kind.as_str(),
        blueprint: &record.blueprint.name,
        version: &record.blueprint.version,
        git_sha: &record.git_sha,
        environment: record.environment.as_deref(),
        record_id: &record.id,
        ingested_at: parse_time(&record.ingested_at)?,
    };
    Ok(evault_retention::holds_on(holds, &facts)
        .into_iter()
        .map(|h| h.name.clone())
        .collect())
}

impl Vault {
    /// The retention policy in force.
    pub fn retention_policy(&self) -> Result<PolicyView> {
        crate::query::on_snapshot(self.index.as_ref(), policy_view)
    }

    /// Replaces the retention policy by `text` (TOML) and re-applies it to every stored record,
    /// which only ever lengthens retention. Under a compliance policy, a policy that would
    /// shorten anything, or switch to governance, is refused and nothing changes.
    pub fn set_retention_policy(&self, text: &str, actor: &str) -> Result<PolicySet> {
        let new = Policy::from_toml(text)
            .map_err(|e| Error::Invalid(format!("invalid retention policy: {e}")))?;
        check_kinds(&new)?;
        let now = format_time(Utc::now());
        crate::index::on_change(self.index.as_ref(), |tx, log| {
            let old = policy_in_force(tx)?;
            Policy::check_change(&old, &new).map_err(|e| {
                Error::Forbidden(format!(
                    "refused: the policy in force is in compliance mode, where retention can \
                     only be extended: {}",
                    e.problems.join("; ")
                ))
            })?;
            tx.execute(
                "INSERT OR REPLACE INTO retention_policy (name, policy, set_at, set_by) \
                 VALUES ('current', ?1, ?2, ?3)",
                params![new.to_toml(), now, actor],
            )?;
            let log_index =
                log.record("retention.policy", RETENTION_POLICY, "current", actor, None)?;
            let ids: Vec<String> = tx
                .prepare("SELECT id FROM records ORDER BY seq")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut changed = std::collections::BTreeSet::new();
            for id in &ids {
                let before: Option<String> = tx
                    .prepare_cached(
                        "SELECT retain_until FROM record_retention WHERE record_id = ?1",
                    )?
                    .query_row(params![id], |r| r.get(0))
                    .optional()?;
                let (after, extended) = assign(tx, &new, id)?;
                if before.as_deref() != Some(after.retain_until.as_str()) {
                    changed.insert(id.clone());
                }
                changed.extend(extended);
            }
            for id in &changed {
                log.record("record.retention", RECORDS, id, actor, None)?;
            }
            Ok(PolicySet {
                policy: policy_view(tx)?,
                records_extended: changed.len() as u64,
                log_index,
            })
        })
    }

    /// Every legal hold, active and released.
    pub fn holds(&self) -> Result<Vec<Hold>> {
        crate::query::on_snapshot(self.index.as_ref(), holds)
    }

    /// Places a legal hold: records matching `selector`, stored now or later, are never deleted
    /// while it is active.
    pub fn add_hold(
        &self,
        name: &str,
        reason: &str,
        selector: HoldSelector,
        actor: &str,
    ) -> Result<Hold> {
        let hold = Hold {
            name: name.to_string(),
            reason: reason.trim().to_string(),
            selector,
            created_at: Utc::now(),
            created_by: actor.to_string(),
            released: None,
        };
        hold.validate()
            .map_err(|e| Error::Invalid(format!("invalid hold '{name}': {e}")))?;
        let selector = serde_json::to_string(&hold.selector)
            .map_err(|e| Error::Internal(format!("cannot encode a hold selector: {e}")))?;
        crate::index::on_change(self.index.as_ref(), |tx, log| {
            let exists: Option<Option<String>> = tx
                .query_row(
                    "SELECT released_at FROM holds WHERE name = ?1",
                    params![hold.name],
                    |r| r.get(0),
                )
                .optional()?;
            match exists {
                Some(None) => {
                    return Err(Error::Conflict(format!(
                        "hold '{}' already exists and is active",
                        hold.name
                    )));
                }
                Some(Some(at)) => {
                    return Err(Error::Conflict(format!(
                        "hold '{}' existed and was released at {at}; names are not reused, so \
                         the record of that hold stays as it was: choose another name",
                        hold.name
                    )));
                }
                None => {}
            }
            tx.execute(
                "INSERT INTO holds (name, reason, selector, created_at, created_by) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    hold.name,
                    hold.reason,
                    selector,
                    format_time(hold.created_at),
                    hold.created_by
                ],
            )?;
            log.record("hold.added", HOLDS, &hold.name, actor, Some(&hold.reason))?;
            Ok(())
        })?;
        Ok(hold)
    }

    /// Releases an active hold; the records it kept follow their retention again.
    pub fn release_hold(&self, name: &str, reason: &str, actor: &str) -> Result<Hold> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Error::Invalid(format!(
                "releasing hold '{name}' needs a reason (--reason)"
            )));
        }
        let now = Utc::now();
        crate::index::on_change(self.index.as_ref(), |tx, log| {
            let released: Option<Option<String>> = tx
                .query_row(
                    "SELECT released_at FROM holds WHERE name = ?1",
                    params![name],
                    |r| r.get(0),
                )
                .optional()?;
            match released {
                None => return Err(Error::NotFound(format!("no hold named '{name}'"))),
                Some(Some(at)) => {
                    return Err(Error::Conflict(format!(
                        "hold '{name}' was already released at {at}"
                    )));
                }
                Some(None) => {}
            }
            tx.execute(
                "UPDATE holds SET released_at = ?2, released_by = ?3, release_reason = ?4 \
                 WHERE name = ?1",
                params![name, format_time(now), actor, reason],
            )?;
            log.record("hold.released", HOLDS, name, actor, Some(reason))?;
            Ok(())
        })?;
        self.holds()?
            .into_iter()
            .find(|h| h.name == name)
            .ok_or_else(|| Error::Internal(format!("hold '{name}' vanished after its release")))
    }
}

/// Fills `record_retention` for the records stored before retention existed (migration 8),
/// in storage order, under the policy in force (the default, as no policy can have been set).
pub(crate) fn fill(conn: &Connection) -> Result<()> {
    let policy = policy_in_force(conn)?;
    let ids: Vec<String> = conn
        .prepare("SELECT id FROM records ORDER BY seq")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in ids {
        assign(conn, &policy, &id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use evault_retention::Policy;

    use crate::record::Record;
    use crate::testing::{push_links, sbom};
    use crate::vault::{LogVerifyOptions, Vault};

    fn push(vault: &Vault, version: &str, file: &str, doc: serde_json::Value) -> Record {
        push_links(vault, "checkout-api", version, file, &doc)
    }

    fn deploy(version: &str, env: &str) -> serde_json::Value {
        crate::testing::deploy(version, env, "2026-03-01T10:00:00Z")
    }

    /// Rules may name every evidence kind (gate decisions included), and only those.
    #[test]
    fn rules_name_existing_kinds() {
        super::check_kinds(&Policy::default()).unwrap();
        let rule = |kind: &str| {
            format!(
                "mode = \"governance\"\ndefault = \"1y\"\n[[rule]]\nkind = \"{kind}\"\nperiod = \"7y\"\n"
            )
        };
        for kind in evault_schema::Kind::ALL {
            let policy = Policy::from_toml(&rule(kind.as_str())).unwrap();
            super::check_kinds(&policy).unwrap();
        }
        let policy = Policy::from_toml(&rule("sboms")).unwrap();
        let err = super::check_kinds(&policy).unwrap_err().to_string();
        assert!(err.contains("rule 1: kind: unknown kind 'sboms'"), "{err}");
        assert!(err.contains("policy-result"), "{err}");
    }

    fn until(r: &Record) -> (String, String) {
        let t = r.retention.clone().expect("retention");
        (t.retain_until, t.rule)
    }

    /// The evidence of a deployed version is kept as long as its deploy: a deploy stored later
    /// lengthens what is there (and logs it), evidence stored later starts there, and another
    /// version is untouched.
    #[test]
    fn retention_follows_the_deploys_of_a_version() {
        let dir = tempfile::tempdir().unwrap();
        let (vault, _) = Vault::init(dir.path(), "test").unwrap();
        let early = push(&vault, "1.4.2", "sbom.json", sbom("lodash"));
        let other = push(&vault, "1.4.1", "sbom.json", sbom("left-pad"));
        assert_eq!(until(&early).1, "default: 1y");
        let shipped = push(
            &vault,
            "1.4.2",
            "deploy.json",
            deploy("1.4.2", "production"),
        );
        let (deploy_until, deploy_rule) = until(&shipped);
        assert_eq!(deploy_rule, "rule 4 (kind=deploy): 7y");
        assert_eq!(
            deploy_until[..4].parse::<i32>().unwrap(),
            shipped.ingested_at[..4].parse::<i32>().unwrap() + 7
        );

        let reread = vault.record(&early.id).unwrap();
        assert_eq!(
            until(&reread),
            (
                deploy_until.clone(),
                format!("follows deploy {} ({deploy_rule})", shipped.id)
            )
        );
        assert_eq!(until(&vault.record(&other.id).unwrap()), until(&other));
        let late = push(&vault, "1.4.2", "sbom.json", sbom("react"));
        assert_eq!(
            until(&late),
            (deploy_until, format!("follows deploy {}", shipped.id))
        );

        // Every change of retention is in the log: it verifies, and an entry names the SBOM.
        let report = vault
            .verify_log(&LogVerifyOptions::default(), &mut |_, _, _| {})
            .unwrap();
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        let entries = vault.log_entries(0, 100).unwrap();
        let retention_entries: Vec<serde_json::Value> = entries
            .iter()
            .map(|e| serde_json::from_str::<serde_json::Value>(&e.entry).unwrap())
            .filter(|e| e["type"] == "record.retention")
            .collect();
        assert_eq!(retention_entries.len(), 1, "{retention_entries:?}");
        assert_eq!(
            retention_entries[0]["subject"],
            format!("record/{}", early.id)
        );
        assert_eq!(
            retention_entries[0]["state"]["retention"]["rule"],
            format!("follows deploy {} ({deploy_rule})", shipped.id)
        );
    }
}
