//! Human-readable output. Everything here is a pure function from data to text so that it can
//! be tested without a terminal.

use evault_core::auth::TokenInfo;
use evault_core::index::Status;
use evault_core::ingest::PushedRecord;
use evault_core::sweep::{SweepReport, Tombstone};
use evault_core::vault::FsckReport;
use evault_core::{Record, RecordView};

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// One line per pushed record: id, kind, format, digest, path.
pub fn push_lines(records: &[PushedRecord]) -> String {
    let mut out = String::new();
    for p in records {
        let r = &p.record;
        out.push_str(&format!(
            "{}  {:<13} {:<18} {}  {}{}\n",
            r.id,
            r.kind.as_str(),
            r.format.as_str(),
            r.digest,
            r.source_path,
            if p.status == Status::Present {
                "  (already present)"
            } else {
                ""
            }
        ));
    }
    out
}

pub fn push_summary(records: &[PushedRecord]) -> String {
    let created = records
        .iter()
        .filter(|p| p.status == Status::Created)
        .count();
    let present = records.len() - created;
    let target = records
        .first()
        .map(|p| {
            let r = &p.record;
            format!(
                " for {} {} at {}",
                r.blueprint.name,
                r.blueprint.version,
                short_sha(&r.git_sha)
            )
        })
        .unwrap_or_default();
    format!(
        "pushed {} record{}{target}: {created} new, {present} already present",
        records.len(),
        if records.len() == 1 { "" } else { "s" }
    )
}

fn short_sha(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

pub fn record_details(r: &Record) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let format = match &r.format_version {
        Some(v) => format!("{} ({v})", r.format),
        None => r.format.to_string(),
    };
    let mut lines = vec![
        ("id", r.id.clone()),
        ("kind", r.kind.to_string()),
        ("format", format),
    ];
    if let Some(p) = &r.predicate_type {
        lines.push(("predicate type", p.clone()));
    }
    lines.extend([
        ("digest", r.digest.clone()),
        (
            "size",
            format!("{} ({} bytes)", human_bytes(r.size), r.size),
        ),
        (
            "blueprint",
            format!("{} {}", r.blueprint.name, r.blueprint.version),
        ),
        ("git sha", r.git_sha.clone()),
        ("repo", opt(&r.repo)),
        ("run id", opt(&r.run_id)),
        ("environment", opt(&r.environment)),
    ]);
    if r.subjects.is_empty() {
        lines.push(("subjects", "-".into()));
    }
    for (i, s) in r.subjects.iter().enumerate() {
        lines.push((if i == 0 { "subjects" } else { "" }, s.clone()));
    }
    let verification = match &r.verification {
        None => "-".to_string(),
        Some(v) => match (&v.by, &v.reason) {
            (Some(by), _) => format!("{} by {by}", v.status.as_str()),
            (_, Some(reason)) => format!("{}: {reason}", v.status.as_str()),
            _ => v.status.as_str().to_string(),
        },
    };
    lines.push(("verification", verification));
    if let Some(t) = &r.retention {
        lines.push(("retained until", format!("{} ({})", t.retain_until, t.rule)));
    }
    lines.extend([
        ("producer", r.producer.clone()),
        ("ingested at", r.ingested_at.clone()),
        ("source path", r.source_path.clone()),
    ]);
    lines
        .into_iter()
        .map(|(k, v)| {
            if k.is_empty() {
                format!("{:<16}{v}\n", "")
            } else {
                format!("{:<16}{v}\n", format!("{k}:"))
            }
        })
        .collect()
}

/// `show`: the record's fields, then what its evidence says.
pub fn record_view(view: &RecordView) -> String {
    let mut out = record_details(&view.record);
    if !view.holds.is_empty() {
        out.push_str(&format!(
            "{:<16}{} (not deleted while held)\n",
            "legal holds:",
            view.holds.join(", ")
        ));
    }
    if let serde_json::Value::Object(summary) = &view.summary {
        out.push_str("summary:\n");
        for (key, value) in summary {
            out.push_str(&format!(
                "  {:<20}{}\n",
                format!("{}:", key.replace('_', " ")),
                inline(value)
            ));
        }
    }
    out
}

/// A JSON value on one line, for people: `critical 1, high 3`, `a, b`, `text`.
pub fn inline(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".into(),
        Value::Array(items) => items.iter().map(inline).collect::<Vec<_>>().join(", "),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| format!("{k} {}", inline(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

/// `ls` as a table; columns sized to their content.
pub fn record_table(records: &[Record]) -> String {
    if records.is_empty() {
        return "no records\n".into();
    }
    let header = [
        "ID",
        "KIND",
        "FORMAT",
        "BLUEPRINT",
        "VERSION",
        "GIT",
        "ENV",
        "INGESTED",
        "PATH",
    ];
    let rows: Vec<[String; 9]> = records
        .iter()
        .map(|r| {
            [
                r.id[..12.min(r.id.len())].to_string(),
                r.kind.to_string(),
                r.format.to_string(),
                r.blueprint.name.clone(),
                r.blueprint.version.clone(),
                r.git_sha[..7.min(r.git_sha.len())].to_string(),
                r.environment.clone().unwrap_or_else(|| "-".into()),
                r.ingested_at
                    .get(..19)
                    .unwrap_or(&r.ingested_at)
                    .replace('T', " "),
                r.source_path.clone(),
            ]
        })
        .collect();
    table(&header, &rows)
}

/// Deleted records (`ls --include-deleted`).
pub fn tombstone_table(tombstones: &[Tombstone]) -> String {
    if tombstones.is_empty() {
        return "\nno deleted records\n".into();
    }
    let header = [
        "DELETED ID",
        "KIND",
        "BLUEPRINT",
        "VERSION",
        "DELETED AT",
        "BY",
        "REASON",
    ];
    let rows: Vec<[String; 7]> = tombstones
        .iter()
        .map(|t| {
            [
                t.id[..12.min(t.id.len())].to_string(),
                t.kind.clone(),
                t.blueprint.name.clone(),
                t.blueprint.version.clone(),
                t.deleted_at
                    .get(..19)
                    .unwrap_or(&t.deleted_at)
                    .replace('T', " "),
                t.deleted_by.clone(),
                if t.early {
                    format!("early: {}", t.reason)
                } else {
                    t.reason.clone()
                },
            ]
        })
        .collect();
    format!("\n{}", table(&header, &rows))
}

/// What a retention sweep removed (or would): every record and blob, and a summary.
pub fn sweep_report(report: &SweepReport) -> String {
    let (verb, would) = if report.dry_run {
        ("would delete", "would be ")
    } else {
        ("deleted", "")
    };
    let mut out = String::new();
    for r in &report.deleted {
        out.push_str(&format!(
            "{verb} record {} ({} of {} {}): retained until {} ({})\n",
            r.id, r.kind, r.blueprint.name, r.blueprint.version, r.retain_until, r.rule
        ));
    }
    for b in &report.blobs_removed {
        out.push_str(&format!(
            "{verb} blob {} ({})\n",
            b.digest,
            human_bytes(b.stored_size)
        ));
    }
    for f in &report.orphan_files {
        out.push_str(&format!("{verb} blob file {f} (no index row)\n"));
    }
    // Kept records, by reason, with a few examples.
    let mut why: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for k in &report.kept {
        why.entry(k.why.as_str())
            .or_default()
            .push(k.record.id.as_str());
    }
    for (reason, ids) in &why {
        let shown: Vec<&str> = ids
            .iter()
            .take(5)
            .map(|id| &id[..12.min(id.len())])
            .collect();
        out.push_str(&format!(
            "kept {} expired record(s): {reason} ({}{})\n",
            ids.len(),
            shown.join(", "),
            if ids.len() > shown.len() { ", …" } else { "" }
        ));
    }
    out.push_str(&format!(
        "{}as of {}: {} record(s) {}deleted, {} kept past retention, {} blob(s) and {} orphan \
         file(s) {}removed, {} freed\n",
        if report.dry_run { "dry run " } else { "" },
        report.at,
        report.deleted.len(),
        would,
        report.kept.len(),
        report.blobs_removed.len(),
        report.orphan_files.len(),
        would,
        human_bytes(report.bytes_freed)
    ));
    out
}

pub fn fsck_report(report: &FsckReport) -> String {
    let mut out = format!(
        "checked {} blobs ({}) for {} records\n",
        report.blobs_checked,
        human_bytes(report.bytes_checked),
        report.records
    );
    for p in &report.problems {
        out.push_str(&format!("{}: {} ({})\n", p.problem, p.digest, p.detail));
    }
    if !report.unreferenced_blobs.is_empty() {
        out.push_str(&format!(
            "{} blob file(s) are not referenced by any record (left by an interrupted push or sweep; harmless, removed by the next `evault retention sweep`)\n",
            report.unreferenced_blobs.len()
        ));
    }
    for p in &report.log_problems {
        out.push_str(&format!("log: {p}\n"));
    }
    for p in &report.access_problems {
        out.push_str(&format!("access log: {p}\n"));
    }
    for p in &report.index_problems {
        out.push_str(&format!("index: {p}\n"));
    }
    if report.problems.is_empty() {
        out.push_str("all blobs intact\n");
    }
    if report.log_problems.is_empty() {
        out.push_str("the index agrees with the tamper-evident log\n");
    }
    if report.access_events_checked > 0 && report.access_problems.is_empty() {
        out.push_str(&format!(
            "the access log's hash chain holds ({} events)\n",
            report.access_events_checked
        ));
    }
    out
}

pub fn token_created(t: &TokenInfo) -> String {
    let scopes = if t.scopes.is_empty() {
        "every blueprint".to_string()
    } else {
        t.scopes.join(", ")
    };
    format!(
        "created token '{}' ({}, for {scopes}, {}); its secret follows and is shown only once",
        t.name,
        t.role,
        t.expires_at
            .as_deref()
            .map_or("no expiry".to_string(), |e| format!("expires {e}"))
    )
}

/// `token ls` as a table.
/// Access events, one line each, oldest first.
pub fn access_table(events: &[evault_core::access::AccessEvent]) -> String {
    if events.is_empty() {
        return "no reads\n".into();
    }
    let rows: Vec<[String; 7]> = events
        .iter()
        .map(|e| {
            [
                e.at.get(..19).unwrap_or(&e.at).replace('T', " "),
                e.token.clone(),
                e.role.clone(),
                e.action.clone(),
                e.target.clone(),
                e.remote.clone().unwrap_or_else(|| "-".into()),
                e.status.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "TIME (UTC)",
            "TOKEN",
            "ROLE",
            "ACTION",
            "TARGET",
            "FROM",
            "STATUS",
        ],
        &rows,
    )
}

pub fn token_table(tokens: &[TokenInfo], now: chrono::DateTime<chrono::Utc>) -> String {
    if tokens.is_empty() {
        return "no tokens\n".into();
    }
    let day = |t: &Option<String>| {
        t.as_deref().map_or("-".to_string(), |t| {
            t.get(..19).unwrap_or(t).replace('T', " ")
        })
    };
    let rows: Vec<[String; 7]> = tokens
        .iter()
        .map(|t| {
            [
                t.name.clone(),
                t.role.to_string(),
                if t.scopes.is_empty() {
                    "*".into()
                } else {
                    t.scopes.join(",")
                },
                t.state(now).to_string(),
                day(&Some(t.created_at.clone())),
                day(&t.expires_at),
                day(&t.last_used_at),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "ROLE",
            "SCOPES",
            "STATE",
            "CREATED",
            "EXPIRES",
            "LAST USED",
        ],
        &rows,
    )
}

/// Left-aligned columns sized to their content; the last column is not padded.
fn table<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.push('\n');
        s
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_humane() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1 << 30), "1.0 GiB");
    }
}
