//! `evault retention ...` and `evault hold ...`: how long evidence is kept, and legal holds.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use evault_core::Error;
use evault_retention::{Hold, HoldSelector};

use crate::query::time_arg;
use crate::trust::read;
use crate::{Global, backend, blob_progress, print_json, write_stdout};

#[derive(Subcommand)]
pub enum RetentionCommand {
    /// Print the retention policy in force (TOML), with when and by whom it was set.
    Show,
    /// Replace the retention policy (TOML file) and re-apply it to every stored record, which
    /// only ever lengthens retention. Under compliance mode a policy that shortens anything is
    /// refused (exit 6).
    Set {
        #[arg(long, value_name = "POLICY.toml")]
        file: PathBuf,
    },
    /// Delete the records whose retention has run out (unless a legal hold keeps them or their
    /// version is live), leaving a tombstone for each, then the bytes no record references.
    /// A server also sweeps on its own (`[retention] sweep_interval_secs`).
    Sweep {
        /// Print exactly what a sweep would remove, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run, on a local vault: judge retention at this time instead of now
        /// (RFC 3339 or YYYY-MM-DD), e.g. "what will have expired by the end of the quarter?".
        #[arg(long, value_name = "TIME", requires = "dry_run")]
        at: Option<String>,
    },
}

/// `evault rm`: delete one record by hand.
#[derive(Args)]
pub struct RmArgs {
    /// Record id (or a unique prefix of at least 6 characters).
    pub id: String,
    /// Why: recorded in the tombstone and the tamper-evident log.
    #[arg(long)]
    pub reason: String,
    /// Delete before the record's retain-until date (governance mode only).
    #[arg(long = "override")]
    pub override_retention: bool,
}

#[derive(Subcommand)]
pub enum HoldCommand {
    /// Place a legal hold: matching records, stored now or later, are never deleted while it
    /// is active. Give at least one selector; all given must match.
    Add(HoldArgs),
    /// Release an active hold (it stays listed, with who released it and why).
    Release {
        name: String,
        #[arg(long)]
        reason: String,
    },
    /// List holds (active ones; --all adds released ones).
    Ls {
        #[arg(long)]
        all: bool,
    },
}

#[derive(Args)]
pub struct HoldArgs {
    /// 1-64 characters of A-Z a-z 0-9 . _ -
    name: String,
    /// Why (a matter, a ticket); recorded in the tamper-evident log.
    #[arg(long)]
    reason: String,
    /// Blueprint name or pattern (`*` wildcard).
    #[arg(long)]
    blueprint: Option<String>,
    /// Blueprint version (with --blueprint).
    #[arg(long)]
    version: Option<String>,
    /// Git commit, or a prefix of at least 7 hexadecimal characters.
    #[arg(long)]
    git_sha: Option<String>,
    /// Record id, or a prefix of at least 8 hexadecimal characters.
    #[arg(long)]
    record: Option<String>,
    /// Records ingested at or after this time (RFC 3339 or YYYY-MM-DD, UTC).
    #[arg(long)]
    since: Option<String>,
    /// Records ingested before this time.
    #[arg(long)]
    until: Option<String>,
}

pub fn retention(g: &Global, command: RetentionCommand) -> Result<(), Error> {
    let vault = backend(g)?;
    match command {
        RetentionCommand::Show => {
            let view = vault.retention_policy()?;
            if g.json {
                return print_json(&view);
            }
            let set = match (&view.set_at, &view.set_by) {
                (Some(at), Some(by)) => format!("set {at} by {by}"),
                _ => "the default: no policy has been set".into(),
            };
            write_stdout(&format!("# mode: {} ({set})\n{}", view.mode, view.policy))
        }
        RetentionCommand::Sweep { dry_run, at } => sweep(g, dry_run, at),
        RetentionCommand::Set { file } => {
            let bytes = read(&file)?;
            let text = String::from_utf8(bytes)
                .map_err(|_| Error::Invalid(format!("{}: not UTF-8 text", file.display())))?;
            let set = vault.set_retention_policy(&text).map_err(|e| match e {
                Error::Invalid(m) => Error::Invalid(format!("{}: {m}", file.display())),
                other => other,
            })?;
            if g.json {
                return print_json(&set);
            }
            write_stdout(&format!(
                "retention policy set ({} mode, log entry {}); {} stored record(s) now kept \
                 longer, none shorter\n",
                set.policy.mode, set.log_index, set.records_extended
            ))
        }
    }
}

fn sweep(g: &Global, dry_run: bool, at: Option<String>) -> Result<(), Error> {
    let vault = backend(g)?;
    let at = time_arg("--at", at.as_deref())?;
    let show = !g.json && std::io::stderr().is_terminal();
    let report = vault.sweep(dry_run, at, &mut |phase, done| {
        if show {
            eprint!("\rsweep: {phase} {done}   ");
        }
    })?;
    if show {
        eprintln!();
    }
    if g.json {
        return print_json(&report);
    }
    write_stdout(&crate::output::sweep_report(&report))
}

pub fn rm(g: &Global, args: RmArgs) -> Result<(), Error> {
    let vault = backend(g)?;
    let tombstone = vault.delete_record(&args.id, &args.reason, args.override_retention)?;
    if g.json {
        return print_json(&tombstone);
    }
    write_stdout(&format!(
        "deleted record {} ({} of {} {}){}; its tombstone and log entries say who and why\n",
        tombstone.id,
        tombstone.kind,
        tombstone.blueprint.name,
        tombstone.blueprint.version,
        if tombstone.early {
            format!(
                ", before its retain-until date {} (governance override)",
                tombstone.retain_until.as_deref().unwrap_or("-")
            )
        } else {
            String::new()
        }
    ))
}

pub fn hold(g: &Global, command: HoldCommand) -> Result<(), Error> {
    let vault = backend(g)?;
    match command {
        HoldCommand::Add(a) => {
            let selector = HoldSelector {
                blueprint: a.blueprint,
                version: a.version,
                git_sha: a.git_sha,
                record: a.record,
                since: time_arg("--since", a.since.as_deref())?,
                until: time_arg("--until", a.until.as_deref())?,
            };
            let hold = vault.add_hold(&a.name, &a.reason, selector)?;
            if g.json {
                return print_json(&hold);
            }
            write_stdout(&format!("hold {} placed: {}\n", hold.name, describe(&hold)))
        }
        HoldCommand::Release { name, reason } => {
            let hold = vault.release_hold(&name, &reason)?;
            if g.json {
                return print_json(&hold);
            }
            write_stdout(&format!(
                "hold {} released; its records follow their retention again\n",
                hold.name
            ))
        }
        HoldCommand::Ls { all } => {
            let holds: Vec<Hold> = vault.holds(all)?;
            if g.json {
                return print_json(&holds);
            }
            if holds.is_empty() {
                return write_stdout(if all {
                    "no holds\n"
                } else {
                    "no active holds\n"
                });
            }
            let mut out = String::new();
            for h in &holds {
                let state = match &h.released {
                    None => "active".to_string(),
                    Some(r) => format!("released {} by {}: {}", r.at.to_rfc3339(), r.by, r.reason),
                };
                out.push_str(&format!(
                    "{}  {}  {}\n  reason: {}  (placed {} by {})\n",
                    h.name,
                    state,
                    describe(h),
                    h.reason,
                    h.created_at.to_rfc3339(),
                    h.created_by
                ));
            }
            write_stdout(&out)
        }
    }
}

/// A hold's selectors, as `key=value` pairs.
fn describe(h: &Hold) -> String {
    let s = &h.selector;
    let mut parts = Vec::new();
    let mut add = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            parts.push(format!("{k}={v}"));
        }
    };
    add("blueprint", s.blueprint.clone());
    add("version", s.version.clone());
    add("git-sha", s.git_sha.clone());
    add("record", s.record.clone());
    add("since", s.since.map(|t| t.to_rfc3339()));
    add("until", s.until.map(|t| t.to_rfc3339()));
    parts.join(" ")
}

pub fn backup(g: &Global, dir: &Path) -> Result<(), Error> {
    let vault = evault_core::Vault::open(&g.data_dir)?;
    let manifest = vault.backup(dir, &mut blob_progress(g, "copying"))?;
    if g.json {
        return print_json(&manifest);
    }
    write_stdout(&format!(
        "backed up {} records, {} blobs ({} bytes stored) and {} log entries to {} (snapshot \
         of {})\n",
        manifest.records,
        manifest.blobs,
        manifest.stored_bytes,
        manifest.log_size,
        dir.display(),
        manifest.created_at
    ))
}

pub fn restore(g: &Global, dir: &Path) -> Result<(), Error> {
    let manifest =
        evault_core::backup::restore(dir, &g.data_dir, &mut blob_progress(g, "restoring"))?;
    if g.json {
        return print_json(&manifest);
    }
    write_stdout(&format!(
        "restored {} records and {} blobs (backup of {}) into {}; check it: evault fsck, then \
         evault log verify --checkpoint <a checkpoint saved before the backup>\n",
        manifest.records,
        manifest.blobs,
        manifest.created_at,
        g.data_dir.display()
    ))
}
