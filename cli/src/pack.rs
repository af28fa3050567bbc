//! `evault export` and `evault verify-pack`: evidence packs for auditors
//! (`docs/evidence-packs.md`).
//!
//! `export` writes the pack into a temporary file next to `-o` and renames it into place only
//! once it is complete, so `-o` never holds half a pack. Against a server it downloads
//! `GET /v1/export` the same way and verifies the download before renaming it. `verify-pack`
//! never opens a vault: it reads the pack and, with `--key`, the key the auditor trusts.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use evault_core::Error;
use evault_core::log::LogKey;
use evault_core::log::note::LogVerifier;
use evault_core::pack::{self, ExportRequest, ExportSummary, PackKey, PackQuery, PackReport};
use evault_schema::validate;
use serde::Serialize;

use crate::backend::{Backend, encode};
use crate::output::human_bytes;
use crate::{Global, Progress, backend, invalid, print_json, write_stdout};

#[derive(Args)]
pub struct ExportArgs {
    /// Records ingested at or after this time (RFC 3339, or a date: 2026-04-01).
    #[arg(long, value_name = "TIME")]
    since: String,
    /// Records ingested before this time (RFC 3339, or a date: 2026-07-01).
    #[arg(long, value_name = "TIME")]
    until: String,
    /// Only this blueprint.
    #[arg(long, value_name = "NAME")]
    blueprint: Option<String>,
    /// Only records linked to this environment (e.g. production).
    #[arg(long = "env", value_name = "ENV")]
    environment: Option<String>,
    /// The pack to write (`.tar.zst`); replaced only once the new pack is complete.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
}

#[derive(Args)]
pub struct VerifyPackArgs {
    /// The pack (`.tar.zst`) to verify.
    #[arg(value_name = "PACK")]
    pack: PathBuf,
    /// The vault's log key you trust (`name+id+key`, or a file holding it, as `evault log key`
    /// prints it). Without it the pack's own `log/key` is used, which proves the pack intact
    /// but not who made it.
    #[arg(long, value_name = "VKEY|FILE")]
    key: Option<String>,
}

/// `evault export --json`.
#[derive(Debug, Serialize)]
struct Exported {
    path: String,
    /// Size of the pack file (compressed).
    size: u64,
    #[serde(flatten)]
    summary: ExportSummary,
}

pub fn export(g: &Global, args: ExportArgs) -> Result<(), Error> {
    let time = |flag: &str, v: &str| validate::rfc3339(v).map_err(|e| invalid(flag, e));
    let since = time("--since", &args.since)?;
    let until = time("--until", &args.until)?;
    if since >= until {
        return Err(Error::Invalid(format!(
            "--since {} is not before --until {}: the period is empty",
            args.since, args.until
        )));
    }
    let blueprint = args
        .blueprint
        .as_deref()
        .map(|b| validate::blueprint_name(b).map_err(|e| invalid("--blueprint", e)))
        .transpose()?;
    let environment = args
        .environment
        .as_deref()
        .map(|e| validate::environment(e).map_err(|e| invalid("--env", e)))
        .transpose()?;
    let path = &args.output;
    let dir = output_dir(path)?;
    let backend = backend(g)?;
    let mut temp = tempfile::Builder::new()
        .prefix(".evault-export-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| Error::io_path("cannot create a file in", &dir, e))?;
    let mut bar = Progress::new(g);
    let summary = match &backend {
        Backend::Local { vault, actor } => {
            let request = ExportRequest {
                since,
                until,
                blueprint,
                environment,
                scopes: Vec::new(),
                exported_by: actor.clone().map_err(Error::Invalid)?,
            };
            let selection = pack::select(vault, &request)?;
            let mut out = BufWriter::new(temp.as_file_mut());
            let result = pack::export(vault, &request, &selection, &mut out, &mut |p| {
                bar.show(|| {
                    format!(
                        "exporting: {}/{} records, {} written",
                        p.records,
                        p.records_total,
                        human_bytes(p.bytes)
                    )
                })
            });
            bar.clear();
            let summary = result?;
            out.flush()
                .map_err(|e| Error::io_path("cannot write", path, e))?;
            summary
        }
        Backend::Remote(remote) => {
            let mut query = vec![
                format!("since={}", encode(&evault_core::record::format_time(since))),
                format!("until={}", encode(&evault_core::record::format_time(until))),
            ];
            if let Some(b) = &blueprint {
                query.push(format!("blueprint={}", encode(b)));
            }
            if let Some(e) = &environment {
                query.push(format!("env={}", encode(e)));
            }
            let key: LogKey = remote.get_json("/v1/log/key")?;
            let received = remote.download_to(
                &format!("/v1/export?{}", query.join("&")),
                temp.as_file_mut(),
                &mut |n| bar.show(|| format!("received: {}", human_bytes(n))),
            );
            bar.clear();
            received?;
            // The download must be a whole pack, signed with the server's key, before it
            // takes the place of -o.
            let verifier = LogVerifier::from_vkey(&key.vkey)
                .map_err(|e| Error::Internal(format!("the server's log key is unusable: {e}")))?;
            let file = File::open(temp.path())
                .map_err(|e| Error::io_path("cannot read", temp.path(), e))?;
            let report = pack::verify(
                io::BufReader::new(file),
                PackKey::Pinned(Box::new(verifier)),
                &mut |_, _| {},
            )?;
            if !report.ok {
                return Err(Error::Integrity(format!(
                    "the pack the server sent does not verify: {}",
                    report
                        .problems
                        .first()
                        .map(|p| format!("{}: {}", p.path, p.problem))
                        .unwrap_or_default()
                )));
            }
            summary_of(&report)
        }
    };
    temp.as_file()
        .sync_all()
        .map_err(|e| Error::io_path("cannot write", temp.path(), e))?;
    let size = temp
        .as_file()
        .metadata()
        .map_err(|e| Error::io_path("cannot read", temp.path(), e))?
        .len();
    temp.persist(path)
        .map_err(|e| Error::io_path("cannot write", path, e.error))?;
    if g.json {
        return print_json(&Exported {
            path: path.display().to_string(),
            size,
            summary,
        });
    }
    write_stdout(&format!(
        "wrote {} ({}): {} records ({} ingested in the period, {} evidence of versions \
         deployed in it), {} blobs, {} files\nlog {} (key {}): every record proven against the \
         signed checkpoint of {} entries, root {}\nmanifest sha256 {} (signed in manifest.sig)\n",
        path.display(),
        human_bytes(size),
        summary.records,
        summary.records_in_period,
        summary.records - summary.records_in_period,
        summary.blobs,
        summary.files,
        summary.origin,
        summary.key_id,
        summary.tree_size,
        summary.root_hash,
        summary.manifest_sha256
    ))
}

/// The directory the pack is written in (for its temporary file), refusing a directory as
/// `-o`.
fn output_dir(path: &Path) -> Result<PathBuf, Error> {
    if path.as_os_str().is_empty() {
        return Err(Error::Invalid("-o: give the pack's file name".into()));
    }
    if path.is_dir() {
        return Err(Error::Invalid(format!(
            "-o {}: is a directory; give the pack's file name, e.g. {}",
            path.display(),
            path.join("evidence-pack.tar.zst").display()
        )));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(Error::Invalid(format!(
            "-o {}: the directory {} does not exist",
            path.display(),
            dir.display()
        )));
    }
    Ok(dir)
}

/// An export's summary from the verification of the downloaded pack.
fn summary_of(r: &PackReport) -> ExportSummary {
    ExportSummary {
        records: r.records,
        records_in_period: r.records_in_period,
        blobs: r.blobs,
        files: r.files_checked,
        bytes: r.bytes_checked,
        origin: r.key_name.clone().unwrap_or_default(),
        key_id: r.key_id.clone().unwrap_or_default(),
        tree_size: r.tree_size.unwrap_or_default(),
        root_hash: r.root_hash.clone().unwrap_or_default(),
        manifest_sha256: r.manifest_sha256.clone().unwrap_or_default(),
        query: r.query.clone().unwrap_or(PackQuery {
            since: String::new(),
            until: String::new(),
            blueprint: None,
            environment: None,
            scopes: Vec::new(),
        }),
    }
}

pub fn verify_pack(g: &Global, args: VerifyPackArgs) -> Result<(), Error> {
    // Offline: no vault, no server. The key is read before the pack.
    let key = match args.key.as_deref() {
        Some(arg) => {
            let text = read_key_arg(arg)?;
            PackKey::Pinned(Box::new(
                LogVerifier::from_vkey(&text)
                    .map_err(|e| Error::Invalid(format!("invalid --key: {e}")))?,
            ))
        }
        None => PackKey::FromPack,
    };
    let file = File::open(&args.pack).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => {
            Error::NotFound(format!("{}: no such file", args.pack.display()))
        }
        _ => Error::io_path("cannot read", &args.pack, e),
    })?;
    if file.metadata().is_ok_and(|m| m.is_dir()) {
        return Err(Error::Invalid(format!(
            "{} is a directory, not a pack",
            args.pack.display()
        )));
    }
    let mut bar = Progress::new(g);
    let report = pack::verify(
        io::BufReader::with_capacity(256 * 1024, file),
        key,
        &mut |files, bytes| bar.show(|| format!("checking: {files} files, {}", human_bytes(bytes))),
    );
    bar.clear();
    let report = report?;
    if g.json {
        print_json(&report)?;
    } else {
        write_stdout(&render(&args.pack, &report))?;
    }
    if report.ok {
        Ok(())
    } else {
        Err(Error::Integrity(format!(
            "the pack {} failed verification: {} problem(s)",
            args.pack.display(),
            report.problems.len()
        )))
    }
}

fn render(path: &Path, r: &PackReport) -> String {
    let mut out = String::new();
    let key = match (&r.key_name, &r.key_id) {
        (Some(name), Some(id)) => format!("{name} (key {id})"),
        _ => "an unknown key".into(),
    };
    if let Some(q) = &r.query {
        out.push_str(&format!(
            "pack: records ingested from {} to {}, blueprint {}, environment {}{}; exported {} by \
             {}\n",
            q.since,
            q.until,
            q.blueprint.as_deref().unwrap_or("any"),
            q.environment.as_deref().unwrap_or("any"),
            if q.scopes.is_empty() {
                String::new()
            } else {
                format!(" (limited to blueprints {})", q.scopes.join(", "))
            },
            r.created_at.as_deref().unwrap_or("?"),
            r.exported_by.as_deref().unwrap_or("?"),
        ));
    }
    for p in &r.problems {
        out.push_str(&format!("FAILED {}: {}\n", p.path, p.problem));
    }
    if r.key_source == "pack" {
        out.push_str(&format!(
            "note: checked with the key inside the pack (log/key): {key}. This proves the pack \
             is intact and self-consistent, not who made it: compare the key id with the one \
             the vault's operator publishes (`evault log key`), or pass --key\n"
        ));
    }
    if r.ok {
        out.push_str(&format!(
            "ok: {} verifies: manifest signed by {key}; {} files ({}) match it: {} records with \
             their log entries proven against the signed checkpoint of {} entries (root {}), {} \
             blobs\n",
            path.display(),
            r.files_checked,
            human_bytes(r.bytes_checked),
            r.records,
            r.tree_size.unwrap_or_default(),
            r.root_hash.as_deref().unwrap_or("?"),
            r.blobs
        ));
    } else {
        out.push_str(&format!(
            "NOT VERIFIED: {} problem(s) in {}; checked with {key}\n",
            r.problems.len(),
            path.display()
        ));
    }
    out
}

/// Longest key file read (a key is a few hundred bytes).
const MAX_KEY_FILE: u64 = 64 * 1024;

/// `--key`: a verifier key, or a file holding one (the first line that is not a comment, as
/// `evault log key` prints it); the same input `evault log verify --key` takes.
fn read_key_arg(arg: &str) -> Result<String, Error> {
    let path = Path::new(arg);
    if arg.contains('+') && !path.exists() {
        return Ok(arg.to_string());
    }
    if !path.exists() {
        return Err(Error::Invalid(format!(
            "--key {arg}: neither a verifier key (name+id+key, as `evault log key` prints) nor \
             a file"
        )));
    }
    let fail = |why: String| Error::Invalid(format!("--key {}: {why}", path.display()));
    use std::io::Read as _;
    let file = File::open(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(fail("larger than 64 KiB: not a key".into()));
    }
    let text = String::from_utf8(bytes).map_err(|_| fail("not UTF-8 text: not a key".into()))?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .ok_or_else(|| fail("the file holds no key".into()))
}
