//! What the log says about each object, and what the index holds for it.
//!
//! Every object the vault keeps is named by a *subject*: `record/<id>`, `blob/<digest>`,
//! `token/<name>`, `trust-key/<name>`, `trust-identity/<name>`, `trust-root/<name>`,
//! `trust-requirement/<pattern>`, `retention-policy/current`, `hold/<name>`, `tombstone/<record id>@<time>`, `gate-policy/current`. Each log entry
//! carries the complete new state of one subject (or `null` when it is removed), read back from
//! the index inside the transaction that made the change. The state is the object's rows as stored, column by column, so `evault log verify`
//! can compare any row of the index with the newest entry for its subject using the very same
//! function: an edited, inserted or deleted row shows up as a difference.
//!
//! Not covered, on purpose: `tokens.last_used_at` (a usage counter written by reads, kept for
//! access reviews, which the access log covers) and the bookkeeping tables (`schema_migrations`
//! and the log's own tables, which the tree and the signed checkpoints protect).

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

use crate::error::Result;

/// One kind of object: its subject prefix, table and key column.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    pub prefix: &'static str,
    pub table: &'static str,
    pub key: &'static str,
}

pub const RECORDS: Table = Table {
    prefix: "record",
    table: "records",
    key: "id",
};
pub const BLOBS: Table = Table {
    prefix: "blob",
    table: "blobs",
    key: "digest",
};
pub const TOKENS: Table = Table {
    prefix: "token",
    table: "tokens",
    key: "name",
};
pub const TRUST_KEYS: Table = Table {
    prefix: "trust-key",
    table: "trust_keys",
    key: "name",
};
pub const TRUST_IDENTITIES: Table = Table {
    prefix: "trust-identity",
    table: "trust_identities",
    key: "name",
};
pub const TRUST_ROOTS: Table = Table {
    prefix: "trust-root",
    table: "trust_roots",
    key: "name",
};
pub const TRUST_REQUIREMENTS: Table = Table {
    prefix: "trust-requirement",
    table: "trust_requirements",
    key: "pattern",
};

pub const RETENTION_POLICY: Table = Table {
    prefix: "retention-policy",
    table: "retention_policy",
    key: "name",
};
pub const HOLDS: Table = Table {
    prefix: "hold",
    table: "holds",
    key: "name",
};
pub const TOMBSTONES: Table = Table {
    prefix: "tombstone",
    table: "tombstones",
    key: "key",
};
pub const GATE_POLICY: Table = Table {
    prefix: "gate-policy",
    table: "gate_policy",
    key: "name",
};

/// Every kind of object the log accounts for.
pub const TABLES: [Table; 11] = [
    RECORDS,
    BLOBS,
    TOKENS,
    TRUST_KEYS,
    TRUST_IDENTITIES,
    TRUST_ROOTS,
    TRUST_REQUIREMENTS,
    RETENTION_POLICY,
    HOLDS,
    TOMBSTONES,
    GATE_POLICY,
];

/// Rows that hang off an object and are part of its state, and rows that must have a parent:
/// (child table, column naming the parent, parent table, parent key).
pub const CHILDREN: [(&str, &str, &str, &str); 8] = [
    ("record_subjects", "record_id", "records", "id"),
    ("record_verification", "record_id", "records", "id"),
    ("record_retention", "record_id", "records", "id"),
    ("blob_facts", "digest", "blobs", "digest"),
    ("components", "digest", "blobs", "digest"),
    ("findings", "digest", "blobs", "digest"),
    ("vex_statements", "digest", "blobs", "digest"),
    ("provenance", "digest", "blobs", "digest"),
];

/// Columns that are not part of an object's state (see the module docs).
const EXEMPT: [(&str, &str); 2] = [("tokens", "last_used_at"), ("records", "log_index")];

impl Table {
    pub fn subject(&self, key: &str) -> String {
        format!("{}/{key}", self.prefix)
    }

    /// The object's state, or `None` if it does not exist.
    pub fn state(&self, conn: &Connection, key: &str) -> Result<Option<Value>> {
        let Some(mut state) = row(conn, self.table, self.key, key)? else {
            return Ok(None);
        };
        match self.table {
            "records" => {
                let mut stmt = conn.prepare_cached(
                    "SELECT digest FROM record_subjects WHERE record_id = ?1 ORDER BY digest",
                )?;
                let subjects = stmt
                    .query_map(params![key], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?;
                let mut verification = row(conn, "record_verification", "record_id", key)?;
                if let Some(v) = &mut verification {
                    v.remove("record_id");
                }
                let mut retention = row(conn, "record_retention", "record_id", key)?;
                if let Some(t) = &mut retention {
                    t.remove("record_id");
                }
                state.insert("subjects".into(), subjects.into());
                state.insert(
                    "verification".into(),
                    verification.map_or(Value::Null, Value::Object),
                );
                state.insert(
                    "retention".into(),
                    retention.map_or(Value::Null, Value::Object),
                );
            }
            "blobs" => {
                state.insert("facts".into(), facts_digest(conn, key)?.into());
            }
            _ => {}
        }
        Ok(Some(Value::Object(state)))
    }
}

/// The table an object's subject names, with its key.
pub fn parse_subject(subject: &str) -> Option<(Table, &str)> {
    let (prefix, key) = subject.split_once('/')?;
    TABLES
        .iter()
        .find(|t| t.prefix == prefix)
        .map(|t| (*t, key))
}

/// One row as a JSON object of its columns (minus exempt ones): text as strings, integers as
/// numbers, blobs as hex strings.
fn row(
    conn: &Connection,
    table: &str,
    key_column: &str,
    key: &str,
) -> Result<Option<Map<String, Value>>> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT * FROM {table} WHERE {key_column} = ?1"))?;
    let names: Vec<String> = stmt.column_names().map(str::to_string).collect();
    Ok(stmt
        .query_row(params![key], |r| Ok(columns(r, &names, table)))
        .optional()?
        .transpose()?)
}

fn columns(
    r: &rusqlite::Row<'_>,
    names: &[String],
    table: &str,
) -> rusqlite::Result<Map<String, Value>> {
    let mut out = Map::new();
    for (i, name) in names.iter().enumerate() {
        if EXEMPT.contains(&(table, name.as_str())) {
            continue;
        }
        let value = match r.get_ref(i)? {
            ValueRef::Null => Value::Null,
            ValueRef::Integer(n) => n.into(),
            // STRICT tables have no REAL columns; render one losslessly if it ever appears.
            ValueRef::Real(x) => x.to_string().into(),
            ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
            ValueRef::Blob(b) => hex::encode(b).into(),
        };
        out.insert(name.clone(), value);
    }
    Ok(out)
}

/// A digest of everything extracted from a blob (its facts row and every component, finding,
/// VEX statement and provenance row), independent of row order; `None` without facts.
pub fn facts_digest(conn: &Connection, digest: &str) -> Result<Option<String>> {
    if row(conn, "blob_facts", "digest", digest)?.is_none() {
        return Ok(None);
    }
    let mut h = Sha256::new();
    for table in [
        "blob_facts",
        "components",
        "findings",
        "vex_statements",
        "provenance",
    ] {
        let mut stmt = conn.prepare_cached(&format!("SELECT * FROM {table} WHERE digest = ?1"))?;
        let names: Vec<String> = stmt.column_names().map(str::to_string).collect();
        let mut lines = stmt
            .query_map(params![digest], |r| {
                Ok(canonical(&Value::Object(columns(r, &names, table)?)))
            })?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        lines.sort_unstable();
        h.update(format!("{table} {}\n", lines.len()));
        for line in lines {
            h.update(line.as_bytes());
            h.update(b"\n");
        }
    }
    Ok(Some(format!("sha256:{}", hex::encode(h.finalize()))))
}

/// Canonical JSON: object keys sorted by their UTF-8 bytes, no insignificant whitespace,
/// strings escaped as serde_json does (which for the ASCII keys and values of log entries is
/// the RFC 8785 form).
pub fn canonical(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_depth() {
        let v: Value = serde_json::from_str(
            r#"{ "b": [ {"z": 1, "a": null} ], "a": "x\"y", "c": {"y": true, "x": -3} }"#,
        )
        .unwrap();
        assert_eq!(
            canonical(&v),
            r#"{"a":"x\"y","b":[{"a":null,"z":1}],"c":{"x":-3,"y":true}}"#
        );
    }

    #[test]
    fn subjects_name_their_table() {
        let (t, key) = parse_subject("trust-key/release").unwrap();
        assert_eq!((t.table, key), ("trust_keys", "release"));
        let (t, key) = parse_subject("blob/sha256:ab").unwrap();
        assert_eq!((t.table, key), ("blobs", "sha256:ab"));
        assert!(parse_subject("nothing/x").is_none());
        assert!(parse_subject("record").is_none());
    }
}
