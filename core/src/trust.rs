//! What the vault trusts: public keys and keyless identities (each optionally limited to
//! blueprint name patterns), Sigstore trusted roots, and the blueprints whose evidence must
//! verify to be pushed. Managed with `evault trust ...`.

use chrono::Utc;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::index::SqliteIndex;
use crate::log::state::{
    RECORDS, TRUST_IDENTITIES, TRUST_KEYS, TRUST_REQUIREMENTS, TRUST_ROOTS, Table,
};
use crate::record::format_time;
use crate::verification::{Verification, VerificationStatus};

/// A trusted public key as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedKeyInfo {
    pub name: String,
    pub algorithm: String,
    /// Hex SHA-256 of the key's SubjectPublicKeyInfo.
    pub fingerprint: String,
    pub public_key: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub created_by: String,
}

/// A trusted keyless (Fulcio certificate) identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedIdentityInfo {
    pub name: String,
    /// The certificate's subject alternative name, or a regular expression it must match whole.
    pub san: String,
    pub san_is_regex: bool,
    /// The OIDC issuer, exact.
    pub issuer: String,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub created_by: String,
}

/// A Sigstore trusted root as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustedRootInfo {
    pub name: String,
    #[serde(skip_serializing)]
    pub document: String,
    pub created_at: String,
    pub created_by: String,
}

/// A blueprint pattern whose evidence must verify to be pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    pub pattern: String,
    pub created_at: String,
    pub created_by: String,
}

/// Storage of trust and of verification results.
pub trait TrustStore: Send + Sync {
    fn add_key(&self, key: &TrustedKeyInfo) -> Result<()>;
    fn keys(&self) -> Result<Vec<TrustedKeyInfo>>;
    fn remove_key(&self, name: &str, by: &str) -> Result<bool>;
    fn add_identity(&self, identity: &TrustedIdentityInfo) -> Result<()>;
    fn identities(&self) -> Result<Vec<TrustedIdentityInfo>>;
    fn remove_identity(&self, name: &str, by: &str) -> Result<bool>;
    /// Adds or replaces a trusted root.
    fn set_root(&self, root: &TrustedRootInfo) -> Result<()>;
    fn roots(&self) -> Result<Vec<TrustedRootInfo>>;
    fn remove_root(&self, name: &str, by: &str) -> Result<bool>;
    fn add_requirement(&self, requirement: &Requirement) -> Result<()>;
    fn requirements(&self) -> Result<Vec<Requirement>>;
    fn remove_requirement(&self, pattern: &str, by: &str) -> Result<bool>;
    /// The stored verification of a record, with its chain of reasoning.
    fn verification(&self, record_id: &str) -> Result<Option<(Verification, Vec<String>)>>;
    /// Replaces the stored verification of a record.
    fn set_verification(
        &self,
        record_id: &str,
        verification: &Verification,
        steps: &[String],
        by: &str,
    ) -> Result<()>;
    /// Ids of verified detached-signature records whose subjects include `digest`, with who
    /// they were verified by.
    fn vouchers(&self, digest: &str) -> Result<Vec<(String, String)>>;
}

fn json_list(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".into())
}

fn from_json_list(text: String) -> Vec<String> {
    serde_json::from_str(&text).unwrap_or_default()
}

fn conflict(what: &str, name: &str) -> Error {
    Error::Conflict(format!("a trusted {what} named '{name}' already exists"))
}

/// Writes a record's verdict inside a transaction (used by pushes and by `evault verify`).
/// With `only_if_changed`, a verdict identical to the stored one (status, by, reason, steps) is
/// left as it is, check time included. Returns whether the row was written.
pub(crate) fn write_verification(
    conn: &rusqlite::Connection,
    record_id: &str,
    verification: &Verification,
    steps: &[String],
    only_if_changed: bool,
) -> rusqlite::Result<bool> {
    let steps = json_list(steps);
    if only_if_changed {
        let same: Option<i64> = conn
            .prepare_cached(
                "SELECT 1 FROM record_verification WHERE record_id = ?1 AND status = ?2 \
                 AND verified_by IS ?3 AND reason IS ?4 AND steps = ?5",
            )?
            .query_row(
                params![
                    record_id,
                    verification.status.as_str(),
                    verification.by,
                    verification.reason,
                    steps
                ],
                |r| r.get(0),
            )
            .optional()?;
        if same.is_some() {
            return Ok(false);
        }
    }
    conn.prepare_cached(
        "INSERT OR REPLACE INTO record_verification (record_id, status, verified_by, reason, \
         steps, checked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        record_id,
        verification.status.as_str(),
        verification.by,
        verification.reason,
        steps,
        format_time(Utc::now())
    ])?;
    Ok(true)
}

impl SqliteIndex {
    /// Deletes one trust row and logs it; whether it existed.
    fn remove(&self, table: Table, kind: &str, key: &str, by: &str) -> Result<bool> {
        self.change(|conn, log| {
            let removed = conn.execute(
                &format!("DELETE FROM {} WHERE {} = ?1", table.table, table.key),
                params![key],
            )? > 0;
            if removed {
                log.record(kind, table, key, by, None)?;
            }
            Ok(removed)
        })
    }
}

impl TrustStore for SqliteIndex {
    fn add_key(&self, key: &TrustedKeyInfo) -> Result<()> {
        self.change(|conn, log| {
        let by_fingerprint: Option<String> = conn
            .query_row(
                "SELECT name FROM trust_keys WHERE fingerprint = ?1",
                params![key.fingerprint],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(existing) = by_fingerprint {
            return Err(Error::Conflict(format!(
                "this key is already trusted as '{existing}' (fingerprint {})",
                key.fingerprint
            )));
        }
        let n = conn.execute(
            "INSERT OR IGNORE INTO trust_keys (name, algorithm, fingerprint, public_key, scopes, created_at, created_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                key.name,
                key.algorithm,
                key.fingerprint,
                key.public_key,
                json_list(&key.scopes),
                key.created_at,
                key.created_by
            ],
        )?;
        if n == 0 {
            return Err(conflict("key", &key.name));
        }
        log.record("trust.key.added", TRUST_KEYS, &key.name, &key.created_by, None)?;
        Ok(())
        })
    }

    fn keys(&self) -> Result<Vec<TrustedKeyInfo>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT name, algorithm, fingerprint, public_key, scopes, created_at, created_by FROM trust_keys ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(TrustedKeyInfo {
                name: r.get(0)?,
                algorithm: r.get(1)?,
                fingerprint: r.get(2)?,
                public_key: r.get(3)?,
                scopes: from_json_list(r.get(4)?),
                created_at: r.get(5)?,
                created_by: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn remove_key(&self, name: &str, by: &str) -> Result<bool> {
        self.remove(TRUST_KEYS, "trust.key.removed", name, by)
    }

    fn add_identity(&self, identity: &TrustedIdentityInfo) -> Result<()> {
        self.change(|conn, log| {
        let n = conn.execute(
            "INSERT OR IGNORE INTO trust_identities (name, san, san_is_regex, issuer, scopes, created_at, created_by) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                identity.name,
                identity.san,
                identity.san_is_regex,
                identity.issuer,
                json_list(&identity.scopes),
                identity.created_at,
                identity.created_by
            ],
        )?;
        if n == 0 {
            return Err(conflict("identity", &identity.name));
        }
        log.record(
            "trust.identity.added",
            TRUST_IDENTITIES,
            &identity.name,
            &identity.created_by,
            None,
        )?;
        Ok(())
        })
    }

    fn identities(&self) -> Result<Vec<TrustedIdentityInfo>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT name, san, san_is_regex, issuer, scopes, created_at, created_by FROM trust_identities ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(TrustedIdentityInfo {
                name: r.get(0)?,
                san: r.get(1)?,
                san_is_regex: r.get(2)?,
                issuer: r.get(3)?,
                scopes: from_json_list(r.get(4)?),
                created_at: r.get(5)?,
                created_by: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn remove_identity(&self, name: &str, by: &str) -> Result<bool> {
        self.remove(TRUST_IDENTITIES, "trust.identity.removed", name, by)
    }

    fn set_root(&self, root: &TrustedRootInfo) -> Result<()> {
        self.change(|conn, log| {
            conn.execute(
                "INSERT OR REPLACE INTO trust_roots (name, document, created_at, created_by) VALUES (?1, ?2, ?3, ?4)",
                params![root.name, root.document, root.created_at, root.created_by],
            )?;
            log.record("trust.root.set", TRUST_ROOTS, &root.name, &root.created_by, None)?;
            Ok(())
        })
    }

    fn roots(&self) -> Result<Vec<TrustedRootInfo>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT name, document, created_at, created_by FROM trust_roots ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(TrustedRootInfo {
                name: r.get(0)?,
                document: r.get(1)?,
                created_at: r.get(2)?,
                created_by: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn remove_root(&self, name: &str, by: &str) -> Result<bool> {
        self.remove(TRUST_ROOTS, "trust.root.removed", name, by)
    }

    fn add_requirement(&self, requirement: &Requirement) -> Result<()> {
        self.change(|conn, log| {
        let n = conn.execute(
            "INSERT OR IGNORE INTO trust_requirements (pattern, created_at, created_by) VALUES (?1, ?2, ?3)",
            params![requirement.pattern, requirement.created_at, requirement.created_by],
        )?;
        if n == 0 {
            return Err(Error::Conflict(format!(
                "blueprints matching '{}' already require verified evidence",
                requirement.pattern
            )));
        }
        log.record(
            "trust.requirement.added",
            TRUST_REQUIREMENTS,
            &requirement.pattern,
            &requirement.created_by,
            None,
        )?;
        Ok(())
        })
    }

    fn requirements(&self) -> Result<Vec<Requirement>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare(
            "SELECT pattern, created_at, created_by FROM trust_requirements ORDER BY pattern",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Requirement {
                pattern: r.get(0)?,
                created_at: r.get(1)?,
                created_by: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn remove_requirement(&self, pattern: &str, by: &str) -> Result<bool> {
        self.remove(TRUST_REQUIREMENTS, "trust.requirement.removed", pattern, by)
    }

    fn verification(&self, record_id: &str) -> Result<Option<(Verification, Vec<String>)>> {
        let conn = self.conn()?;
        Ok(conn
            .query_row(
                "SELECT status, verified_by, reason, steps FROM record_verification WHERE record_id = ?1",
                params![record_id],
                |r| {
                    let status: String = r.get(0)?;
                    Ok((
                        Verification {
                            status: VerificationStatus::from_name(&status),
                            by: r.get(1)?,
                            reason: r.get(2)?,
                        },
                        from_json_list(r.get(3)?),
                    ))
                },
            )
            .optional()?)
    }

    fn set_verification(
        &self,
        record_id: &str,
        verification: &Verification,
        steps: &[String],
        by: &str,
    ) -> Result<()> {
        self.change(|conn, log| {
            write_verification(conn, record_id, verification, steps, false)?;
            log.record("record.verified", RECORDS, record_id, by, None)?;
            Ok(())
        })
    }

    fn vouchers(&self, digest: &str) -> Result<Vec<(String, String)>> {
        let conn = self.conn()?;
        let mut stmt = conn.prepare_cached(
            "SELECT r.id, v.verified_by FROM records r \
             JOIN record_subjects s ON s.record_id = r.id \
             JOIN record_verification v ON v.record_id = r.id \
             WHERE s.digest = ?1 AND r.kind = 'signature' AND v.status = 'verified' \
               AND r.format IN ('signature-der', 'signature-base64') \
             ORDER BY r.seq",
        )?;
        let rows = stmt.query_map(params![digest], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?.unwrap_or_default(),
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}
