//! API tokens, roles and what each may do.
//!
//! A token is a 256-bit random secret (`evt_` + 64 hex characters) shown once at creation; the
//! vault keeps only its SHA-256. Each token has a name (recorded as the `producer` of what it
//! pushes, and in access logs), one [`Role`], optional blueprint name patterns limiting what it
//! may touch, an optional expiry, and a last-used time for access reviews.
//!
//! The decisions here (does this role allow that? does this scope cover that blueprint?) are pure
//! functions; [`TokenStore`] is the storage, implemented by the SQLite index.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::error::{Error, Result};
use crate::index::SqliteIndex;
use crate::log::state::TOKENS;
use crate::record::format_time;

/// What a token is for. Least privilege: each role has only the permissions its job needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// CI pipelines: push evidence.
    Pusher,
    /// Auditors: read, query, export.
    Auditor,
    /// Approvers: record approvals, read.
    Approver,
    /// Everything, including managing tokens.
    Admin,
}

/// One thing a request may want to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Push,
    Read,
    Approve,
    ManageTokens,
    /// Vault-wide maintenance: integrity checks (later retention sweeps, backups).
    Maintain,
    /// Vault-wide history: every log entry, log verification, the access log.
    Audit,
}

impl Permission {
    pub const ALL: [Permission; 6] = [
        Permission::Push,
        Permission::Read,
        Permission::Approve,
        Permission::ManageTokens,
        Permission::Maintain,
        Permission::Audit,
    ];

    /// What the permission lets one do, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Permission::Push => "pushing evidence",
            Permission::Read => "reading records and blobs",
            Permission::Approve => "recording approvals",
            Permission::ManageTokens => "managing tokens",
            Permission::Maintain => "vault maintenance",
            Permission::Audit => "auditing the whole vault's history",
        }
    }

    /// Whether the permission acts on the whole vault, beyond any blueprint. A token scoped to
    /// some blueprints never holds such a permission: a scoped admin could otherwise mint itself
    /// an unscoped token.
    pub fn vault_wide(self) -> bool {
        matches!(
            self,
            Permission::ManageTokens | Permission::Maintain | Permission::Audit
        )
    }
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Pusher, Role::Auditor, Role::Approver, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Pusher => "pusher",
            Role::Auditor => "auditor",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    /// What the role permits, before blueprint scopes are considered (see [`Identity::can`]).
    pub fn allows(self, permission: Permission) -> bool {
        match self {
            Role::Admin => true,
            Role::Pusher => permission == Permission::Push,
            Role::Auditor => matches!(permission, Permission::Read | Permission::Audit),
            Role::Approver => matches!(permission, Permission::Approve | Permission::Read),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role '{s}' (expected one of: pusher, auditor, approver, admin)")
            })
    }
}

/// A blueprint name pattern: a name where `*` matches any run of characters (`payments-*`).
pub fn validate_scope(pattern: &str) -> std::result::Result<String, String> {
    let literal = pattern.replace('*', "x");
    if pattern.is_empty() || pattern.len() > 128 {
        return Err(format!(
            "invalid scope '{pattern}': expected 1 to 128 characters"
        ));
    }
    let ok = literal
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ok {
        return Err(format!(
            "invalid scope '{pattern}': a blueprint name pattern uses letters, digits, '.', '_', '-' and '*'"
        ));
    }
    Ok(pattern.to_string())
}

/// Whether `name` matches `pattern`, where `*` matches any run of characters.
pub fn scope_matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    true
}

/// `a`, `a or b`, `a, b or c`.
fn either(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// Who is calling, as established from their token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    pub name: String,
    pub role: Role,
    /// Blueprint name patterns; empty means every blueprint.
    pub scopes: Vec<String>,
}

impl Identity {
    pub fn can(&self, permission: Permission) -> bool {
        self.refusal(permission).is_none()
    }

    /// Why this identity may not do `permission` (a message naming the role or the scope and
    /// what would do), or `None` if it may.
    pub fn refusal(&self, permission: Permission) -> Option<String> {
        if !self.role.allows(permission) {
            let may: Vec<&str> = Permission::ALL
                .into_iter()
                .filter(|p| self.role.allows(*p))
                .map(Permission::describe)
                .collect();
            let roles: Vec<&str> = Role::ALL
                .into_iter()
                .filter(|r| r.allows(permission))
                .map(Role::as_str)
                .collect();
            return Some(format!(
                "token '{}' has role {}, which allows only {}; {} needs role {}",
                self.name,
                self.role,
                may.join(" and "),
                permission.describe(),
                either(&roles)
            ));
        }
        if permission.vault_wide() && !self.scopes.is_empty() {
            return Some(format!(
                "token '{}' is limited to blueprints {}; {} needs a token without blueprint scopes",
                self.name,
                self.scopes.join(", "),
                permission.describe()
            ));
        }
        None
    }

    /// Whether this identity's scopes cover `blueprint`.
    pub fn covers(&self, blueprint: &str) -> bool {
        self.scopes.is_empty() || self.scopes.iter().any(|p| scope_matches(p, blueprint))
    }
}

/// A token as listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    pub scopes: Vec<String>,
    pub created_at: String,
    pub created_by: String,
    pub expires_at: Option<String>,
    pub revoked_at: Option<String>,
    pub last_used_at: Option<String>,
}

impl TokenInfo {
    /// `active`, `expired` or `revoked` at `now`.
    pub fn state(&self, now: DateTime<Utc>) -> &'static str {
        if self.revoked_at.is_some() {
            "revoked"
        } else if self
            .expires_at
            .as_deref()
            .is_some_and(|e| e <= format_time(now).as_str())
        {
            "expired"
        } else {
            "active"
        }
    }
}

/// A freshly created token: the only time its secret exists outside the caller's hands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewToken {
    #[serde(flatten)]
    pub info: TokenInfo,
    pub secret: String,
}

/// Why a presented token was not accepted. Deliberately coarse towards the caller (all map to
/// 401) but precise in logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    Unknown,
    Expired,
    Revoked,
}

const SECRET_PREFIX: &str = "evt_";

/// A new random secret.
pub fn generate_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    Ok(format!("{SECRET_PREFIX}{}", hex::encode(bytes)))
}

/// What is stored for a secret.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Parses a lifetime such as `12h`, `30d`, `8w` or `1y` (365 days).
pub fn parse_lifetime(s: &str) -> std::result::Result<Duration, String> {
    let bad =
        || format!("invalid duration '{s}': expected a number and a unit h, d, w or y (e.g. 90d)");
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (n, unit) = s.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad())?;
    if n <= 0 || n > 100 * 365 * 24 {
        return Err(bad());
    }
    let hours = match unit {
        "h" => n,
        "d" => n * 24,
        "w" => n * 24 * 7,
        "y" => n * 24 * 365,
        _ => return Err(bad()),
    };
    if hours > 100 * 365 * 24 {
        return Err(format!("invalid duration '{s}': at most 100 years"));
    }
    Ok(Duration::hours(hours))
}

/// Validates a token name: what appears as `producer` and in access reviews.
pub fn validate_token_name(name: &str) -> std::result::Result<String, String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
    if ok {
        Ok(name.to_string())
    } else {
        Err(format!(
            "invalid token name '{}': expected 1 to 64 letters, digits, '.', '_', '-' or '@', starting with a letter or digit",
            evault_schema::validate::excerpt(name)
        ))
    }
}

/// Storage of tokens.
pub trait TokenStore: Send + Sync {
    fn insert_token(&self, info: &TokenInfo, secret_hash: &str) -> Result<()>;
    fn tokens(&self) -> Result<Vec<TokenInfo>>;
    /// Revokes a token (a no-op if it already is), recording `by` as who did it.
    fn revoke_token(&self, name: &str, at: DateTime<Utc>, by: &str) -> Result<Option<TokenInfo>>;
    /// The token with this secret hash, if any, marking it used at `now` (at most once a minute,
    /// so that reads do not turn into a write per request).
    fn use_token(&self, secret_hash: &str, now: DateTime<Utc>) -> Result<Option<TokenInfo>>;
}

fn token_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TokenInfo> {
    let role: String = row.get(1)?;
    let scopes: String = row.get(2)?;
    Ok(TokenInfo {
        name: row.get(0)?,
        role: role.parse().map_err(|e: String| {
            rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Text, e.into())
        })?,
        scopes: serde_json::from_str(&scopes).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
        })?,
        created_at: row.get(3)?,
        created_by: row.get(4)?,
        expires_at: row.get(5)?,
        revoked_at: row.get(6)?,
        last_used_at: row.get(7)?,
    })
}

const TOKEN_COLUMNS: &str =
    "name, role, scopes, created_at, created_by, expires_at, revoked_at, last_used_at";

impl TokenStore for SqliteIndex {
    fn insert_token(&self, info: &TokenInfo, secret_hash: &str) -> Result<()> {
        let scopes =
            serde_json::to_string(&info.scopes).map_err(|e| Error::Internal(e.to_string()))?;
        self.change(|conn, log| {
        let inserted = conn.execute(
            "INSERT OR IGNORE INTO tokens (name, secret_hash, role, scopes, created_at, created_by, expires_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                info.name,
                secret_hash,
                info.role.as_str(),
                scopes,
                info.created_at,
                info.created_by,
                info.expires_at
            ],
        )?;
        if inserted == 0 {
            return Err(Error::Conflict(format!(
                "a token named '{}' already exists",
                info.name
            )));
        }
        log.record("token.created", TOKENS, &info.name, &info.created_by, None)?;
        Ok(())
        })
    }

    fn tokens(&self) -> Result<Vec<TokenInfo>> {
        let conn = self.conn()?;
        let mut stmt =
            conn.prepare(&format!("SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY name"))?;
        let rows = stmt.query_map([], token_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn revoke_token(&self, name: &str, at: DateTime<Utc>, by: &str) -> Result<Option<TokenInfo>> {
        self.change(|conn, log| {
            if conn.execute(
                "UPDATE tokens SET revoked_at = ?2 WHERE name = ?1 AND revoked_at IS NULL",
                params![name, format_time(at)],
            )? == 1
            {
                log.record("token.revoked", TOKENS, name, by, None)?;
            }
            Ok(conn
                .query_row(
                    &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE name = ?1"),
                    params![name],
                    token_from_row,
                )
                .optional()?)
        })
    }

    fn use_token(&self, secret_hash: &str, now: DateTime<Utc>) -> Result<Option<TokenInfo>> {
        let conn = self.conn()?;
        let now_text = format_time(now);
        let a_minute_ago = format_time(now - Duration::minutes(1));
        conn.execute(
            "UPDATE tokens SET last_used_at = ?2 WHERE secret_hash = ?1 \
             AND (last_used_at IS NULL OR last_used_at < ?3)",
            params![secret_hash, now_text, a_minute_ago],
        )?;
        Ok(conn
            .query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE secret_hash = ?1"),
                params![secret_hash],
                token_from_row,
            )
            .optional()?)
    }
}

/// Checks a presented secret against the store at `now`.
pub fn authenticate(
    store: &dyn TokenStore,
    secret: &str,
    now: DateTime<Utc>,
) -> Result<std::result::Result<Identity, AuthFailure>> {
    if !secret.starts_with(SECRET_PREFIX) || secret.len() != SECRET_PREFIX.len() + 64 {
        return Ok(Err(AuthFailure::Unknown));
    }
    let Some(token) = store.use_token(&secret_hash(secret), now)? else {
        return Ok(Err(AuthFailure::Unknown));
    };
    Ok(match token.state(now) {
        "revoked" => Err(AuthFailure::Revoked),
        "expired" => Err(AuthFailure::Expired),
        _ => Ok(Identity {
            name: token.name,
            role: token.role,
            scopes: token.scopes,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_have_least_privilege() {
        use Permission::*;
        assert!(Role::Pusher.allows(Push) && !Role::Pusher.allows(Read));
        assert!(
            Role::Auditor.allows(Read)
                && !Role::Auditor.allows(Push)
                && !Role::Auditor.allows(Approve)
        );
        assert!(
            Role::Approver.allows(Approve)
                && Role::Approver.allows(Read)
                && !Role::Approver.allows(Push)
        );
        assert!(!Role::Approver.allows(ManageTokens) && !Role::Approver.allows(Audit));
        assert!(Role::Auditor.allows(Audit) && !Role::Pusher.allows(Audit));
        assert!(
            [Push, Read, Approve, ManageTokens, Maintain, Audit]
                .iter()
                .all(|p| Role::Admin.allows(*p))
        );
    }

    #[test]
    fn scopes_match_globs() {
        assert!(scope_matches("payments-*", "payments-api"));
        assert!(!scope_matches("payments-*", "checkout-api"));
        assert!(scope_matches("*", "anything"));
        assert!(scope_matches("checkout-api", "checkout-api"));
        assert!(!scope_matches("checkout-api", "checkout-api2"));
        assert!(scope_matches("*-api", "checkout-api"));
        assert!(scope_matches("a*b*c", "aXXbYYc"));
        assert!(!scope_matches("a*b*c", "aXXcYYb"));
        assert!(
            !scope_matches("ab*ba", "aba"),
            "prefix and suffix must not overlap"
        );
        let id = Identity {
            name: "ci".into(),
            role: Role::Pusher,
            scopes: vec!["payments-*".into()],
        };
        assert!(id.covers("payments-ledger") && !id.covers("checkout-api"));
        assert!(validate_scope("payments-*").is_ok());
        assert!(validate_scope("pay/ments").is_err());
    }

    #[test]
    fn secrets_are_random_and_only_their_hash_is_kept() {
        let a = generate_secret().unwrap();
        let b = generate_secret().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("evt_") && a.len() == 68);
        assert_eq!(secret_hash(&a).len(), 64);
        assert_ne!(secret_hash(&a), secret_hash(&b));
    }

    #[test]
    fn lifetimes_parse() {
        assert_eq!(parse_lifetime("12h").unwrap(), Duration::hours(12));
        assert_eq!(parse_lifetime("90d").unwrap(), Duration::days(90));
        assert_eq!(parse_lifetime("2w").unwrap(), Duration::days(14));
        assert_eq!(parse_lifetime("1y").unwrap(), Duration::days(365));
        for bad in ["", "0d", "-1d", "10", "d", "5m", "1000y"] {
            assert!(parse_lifetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tokens_authenticate_until_revoked_or_expired() {
        let dir = tempfile::tempdir().unwrap();
        let index = SqliteIndex::open_with_new_log(&dir.path().join("index.db")).unwrap();
        let now = Utc::now();
        let secret = generate_secret().unwrap();
        let info = TokenInfo {
            name: "ci".into(),
            role: Role::Pusher,
            scopes: vec![],
            created_at: format_time(now),
            created_by: "admin".into(),
            expires_at: Some(format_time(now + Duration::hours(1))),
            revoked_at: None,
            last_used_at: None,
        };
        index.insert_token(&info, &secret_hash(&secret)).unwrap();
        assert!(matches!(
            index.insert_token(&info, "other"),
            Err(Error::Conflict(_))
        ));
        let who = authenticate(&index, &secret, now).unwrap().unwrap();
        assert_eq!((who.name.as_str(), who.role), ("ci", Role::Pusher));
        assert!(
            index.tokens().unwrap()[0].last_used_at.is_some(),
            "use is recorded"
        );
        assert_eq!(
            authenticate(&index, "evt_nope", now).unwrap(),
            Err(AuthFailure::Unknown)
        );
        let wrong = generate_secret().unwrap();
        assert_eq!(
            authenticate(&index, &wrong, now).unwrap(),
            Err(AuthFailure::Unknown)
        );
        assert_eq!(
            authenticate(&index, &secret, now + Duration::hours(2)).unwrap(),
            Err(AuthFailure::Expired)
        );
        index.revoke_token("ci", now, "admin").unwrap();
        assert_eq!(
            authenticate(&index, &secret, now).unwrap(),
            Err(AuthFailure::Revoked)
        );
    }
}
