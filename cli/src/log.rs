//! `evault log ...`: the tamper-evident log's key, checkpoints, proofs and verification.
//!
//! Against a server, every proof is also checked here, with the log key the auditor trusts
//! (`--key`), so a verdict never rests on the server's word alone.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use evault_core::Error;
use evault_core::log::check::LogReport;
use evault_core::log::merkle::{self, Hash};
use evault_core::log::note::{Checkpoint, LogVerifier};
use evault_core::log::{CheckpointView, ConsistencyProof, InclusionProof, LogEntry, LogKey};
use evault_core::vault::LogVerifyOptions;

use crate::backend::{Backend, encode};
use crate::output::human_bytes;
use crate::{Global, Progress, backend, print_json, write_stdout};

#[derive(Subcommand)]
pub enum LogCommand {
    /// Print the log's public key (the verifier key auditors pin).
    Key,
    /// Print the newest signed checkpoint (a C2SP signed note; save it to check later runs).
    Checkpoint,
    /// Print the inclusion proof of a record's ingestion entry against the newest checkpoint.
    Prove {
        /// Record id (or a unique prefix of at least 6 characters).
        id: String,
        #[command(flatten)]
        key: KeyArg,
    },
    /// Print the consistency proof between an older tree size and the newest checkpoint.
    Consistency {
        /// The older tree size (from a checkpoint you kept).
        #[arg(long, value_name = "SIZE")]
        from: u64,
        /// The newer tree size; default: the newest checkpoint.
        #[arg(long, value_name = "SIZE")]
        to: Option<u64>,
        #[command(flatten)]
        key: KeyArg,
    },
    /// Print log entries as JSON lines (`{"index": N, "entry": "..."}`), oldest first.
    Entries {
        #[arg(long, default_value_t = 0, value_name = "INDEX")]
        start: u64,
        /// At most this many (against a server, fetched 1000 at a time).
        #[arg(long, default_value_t = 1000, value_name = "N",
              value_parser = clap::value_parser!(u64).range(1..))]
        limit: u64,
    },
    /// Recompute the log, check its signatures, that it still contains an older checkpoint,
    /// and that every record, blob, token and trust entry agrees with it (exit 4 if not).
    Verify(VerifyArgs),
}

#[derive(Args)]
pub struct KeyArg {
    /// The log key you trust (`name+id+key`, or a file holding it), instead of asking the
    /// vault for its own.
    #[arg(long, value_name = "VKEY|FILE")]
    key: Option<String>,
}

#[derive(Args)]
pub struct VerifyArgs {
    /// An older checkpoint (a file saved from `evault log checkpoint`) the log must still
    /// contain: detects history rewritten since.
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// Do not read the blobs (faster; checks the log and the index only).
    #[arg(long)]
    no_blobs: bool,
    #[command(flatten)]
    key: KeyArg,
}

pub fn run(g: &Global, command: LogCommand) -> Result<(), Error> {
    let backend = backend(g)?;
    match command {
        LogCommand::Key => {
            let key = log_key(&backend)?;
            if g.json {
                return print_json(&key);
            }
            write_stdout(&format!(
                "{}\n# log {}, ed25519 key {} (pin this line: evault log verify --key ...)\n",
                key.vkey, key.origin, key.key_id
            ))
        }
        LogCommand::Checkpoint => {
            let cp = checkpoint(&backend)?;
            trusted(&backend, None)?
                .open(&cp.note)
                .map_err(|e| Error::Integrity(format!("the vault's checkpoint: {e}")))?;
            if g.json {
                return print_json(&cp);
            }
            write_stdout(&cp.note)
        }
        LogCommand::Prove { id, key } => {
            // A pinned key is checked before the vault is asked anything.
            let pinned = key.key.as_deref().map(read_key_arg).transpose()?;
            let proof: InclusionProof = match &backend {
                Backend::Local { vault, .. } => vault.log_prove(&id, &[])?,
                Backend::Remote(r) => r.get_json(&format!("/v1/log/proof/{}", encode(&id)))?,
            };
            check_inclusion(&proof, &trusted(&backend, pinned.as_deref())?)?;
            if g.json {
                return print_json(&proof);
            }
            let mut out = format!(
                "record {} is entry {} of the log; proven against the signed checkpoint of {} \
                 entries\nleaf hash {}\nroot hash {}\naudit path ({} hashes):\n",
                proof.record_id,
                proof.log_index,
                proof.tree_size,
                proof.leaf_hash,
                proof.root_hash,
                proof.hashes.len()
            );
            for h in &proof.hashes {
                out.push_str(&format!("  {h}\n"));
            }
            out.push_str(&format!(
                "entry: {}\ncheckpoint:\n{}",
                proof.entry, proof.checkpoint
            ));
            write_stdout(&out)
        }
        LogCommand::Consistency { from, to, key } => {
            let pinned = key.key.as_deref().map(read_key_arg).transpose()?;
            let proof: ConsistencyProof = match &backend {
                Backend::Local { vault, .. } => vault.log_consistency(from, to)?,
                Backend::Remote(r) => {
                    let mut path = format!("/v1/log/consistency?from={from}");
                    if let Some(to) = to {
                        path.push_str(&format!("&to={to}"));
                    }
                    r.get_json(&path)?
                }
            };
            let verifier = trusted(&backend, pinned.as_deref())?;
            let new = open_proof_checkpoint(
                &verifier,
                &proof.checkpoint,
                "the newer checkpoint",
                proof.to,
            )?;
            let old_root = parse_hash(&proof.from_root_hash)?;
            merkle::verify_consistency(
                proof.from,
                proof.to,
                &old_root,
                &new.root,
                &parse_hashes(&proof.hashes)?,
            )
            .map_err(Error::Integrity)?;
            if g.json {
                return print_json(&proof);
            }
            let mut out = format!(
                "the log of {} entries (root {}) extends the log of {} entries (root {})\n\
                 proof ({} hashes):\n",
                proof.to,
                proof.root_hash,
                proof.from,
                proof.from_root_hash,
                proof.hashes.len()
            );
            for h in &proof.hashes {
                out.push_str(&format!("  {h}\n"));
            }
            write_stdout(&out)
        }
        LogCommand::Entries { start, limit } => {
            let entries: Vec<LogEntry> = match &backend {
                Backend::Local { vault, .. } => vault.log_entries(start, limit)?,
                Backend::Remote(r) => {
                    #[derive(serde::Deserialize)]
                    struct Page {
                        entries: Vec<LogEntry>,
                        next: Option<u64>,
                    }
                    let mut entries = Vec::new();
                    let mut from = Some(start);
                    while let Some(at) = from {
                        let want = (limit - entries.len() as u64).min(1000);
                        if want == 0 {
                            break;
                        }
                        let page: Page =
                            r.get_json(&format!("/v1/log/entries?start={at}&limit={want}"))?;
                        entries.extend(page.entries);
                        from = page.next;
                    }
                    entries
                }
            };
            let mut out = String::new();
            for e in &entries {
                out.push_str(
                    &serde_json::to_string(e).map_err(|e| Error::Internal(e.to_string()))?,
                );
                out.push('\n');
            }
            write_stdout(&out)
        }
        LogCommand::Verify(args) => verify(g, &backend, args),
    }
}

fn log_key(backend: &Backend) -> Result<LogKey, Error> {
    match backend {
        Backend::Local { vault, .. } => vault.log_key(),
        Backend::Remote(r) => r.get_json("/v1/log/key"),
    }
}

fn checkpoint(backend: &Backend) -> Result<CheckpointView, Error> {
    match backend {
        Backend::Local { vault, .. } => vault.log_checkpoint(),
        Backend::Remote(r) => r.get_json("/v1/log/checkpoint"),
    }
}

/// The key given with `--key` (its text, from [`read_key_arg`]), else the vault's own.
fn trusted(backend: &Backend, pinned: Option<&str>) -> Result<LogVerifier, Error> {
    let text = match pinned {
        Some(key) => key.to_string(),
        None => log_key(backend)?.vkey,
    };
    LogVerifier::from_vkey(&text).map_err(|e| Error::Invalid(format!("invalid --key: {e}")))
}

/// Longest key or checkpoint file read (both are a few hundred bytes).
const MAX_NOTE_FILE: u64 = 64 * 1024;

/// A small text file given on the command line (`what` names the option in errors).
fn read_note_file(path: &Path, what: &str) -> Result<String, Error> {
    let fail = |why: String| Error::Invalid(format!("{what} {}: {why}", path.display()));
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot read: {e}")))?;
    let mut bytes = Vec::new();
    file.take(MAX_NOTE_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_NOTE_FILE {
        return Err(fail(format!(
            "larger than {} KiB: not a key or checkpoint",
            MAX_NOTE_FILE / 1024
        )));
    }
    String::from_utf8(bytes).map_err(|_| fail("not UTF-8 text: not a key or checkpoint".into()))
}

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
    let text = read_note_file(path, "--key")?;
    // The first line that is not a comment (the format `evault log key` prints).
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .ok_or_else(|| Error::Invalid(format!("--key {arg}: the file holds no key")))
}

fn open_checkpoint(verifier: &LogVerifier, note: &str, what: &str) -> Result<Checkpoint, Error> {
    verifier
        .open(note)
        .map_err(|e| Error::Integrity(format!("{what}: {e}")))
}

fn parse_hash(text: &str) -> Result<Hash, Error> {
    hex::decode(text)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Integrity(format!("'{text}' is not a SHA-256 hash in hex")))
}

fn parse_hashes(texts: &[String]) -> Result<Vec<Hash>, Error> {
    texts.iter().map(|t| parse_hash(t)).collect()
}

/// Checks an inclusion proof from scratch: the checkpoint's signature, the leaf hash of the
/// entry, the audit path to the signed root, and that the entry is the record's ingestion.
/// The checkpoint a proof came with, which must be signed by `verifier` and be for the tree
/// size the proof is about.
fn open_proof_checkpoint(
    verifier: &LogVerifier,
    note: &str,
    what: &str,
    size: u64,
) -> Result<Checkpoint, Error> {
    let cp = open_checkpoint(verifier, note, what)?;
    if cp.size != size {
        return Err(Error::Integrity(format!(
            "the proof is for {size} entries but its checkpoint is for {}",
            cp.size
        )));
    }
    Ok(cp)
}

fn check_inclusion(proof: &InclusionProof, verifier: &LogVerifier) -> Result<(), Error> {
    let cp = open_proof_checkpoint(
        verifier,
        &proof.checkpoint,
        "the proof's checkpoint",
        proof.tree_size,
    )?;
    let leaf = merkle::leaf_hash(proof.entry.as_bytes());
    let entry: serde_json::Value = serde_json::from_str(&proof.entry)
        .map_err(|e| Error::Integrity(format!("the proven entry is not JSON: {e}")))?;
    let about = format!("record/{}", proof.record_id);
    merkle::verify_inclusion(
        proof.log_index,
        cp.size,
        &leaf,
        &parse_hashes(&proof.hashes)?,
        &cp.root,
    )
    .map_err(|e| {
        Error::Integrity(format!(
            "log entry {} against the signed checkpoint: {e}",
            proof.log_index
        ))
    })?;
    if entry["subject"] != about.as_str() || entry["index"] != proof.log_index {
        return Err(Error::Integrity(format!(
            "log entry {} is not about record {}",
            proof.log_index, proof.record_id
        )));
    }
    Ok(())
}

fn verify(g: &Global, backend: &Backend, args: VerifyArgs) -> Result<(), Error> {
    let old = args
        .checkpoint
        .as_ref()
        .map(|p| {
            let text = read_note_file(p, "--checkpoint")?;
            evault_core::verify::sigstore::checkpoint::parse(&text).map_err(|e| {
                Error::Invalid(format!(
                    "--checkpoint {}: not a signed checkpoint (save one with `evault log \
                     checkpoint > FILE`): {e}",
                    p.display()
                ))
            })?;
            Ok::<_, Error>(text)
        })
        .transpose()?;
    let pinned = args.key.key.as_deref().map(read_key_arg).transpose()?;
    let report: LogReport = match backend {
        Backend::Local { vault, .. } => {
            let mut progress = Progress::new(g);
            let options = LogVerifyOptions {
                old_checkpoint: old.clone(),
                pinned_key: pinned.clone(),
                blobs: !args.no_blobs,
            };
            let report = vault.verify_log(&options, &mut |phase, done, total| {
                progress.show(|| format!("checking {phase}: {done}/{total}"))
            })?;
            progress.clear();
            report
        }
        Backend::Remote(r) => {
            // The server's own check, then ours: its newest checkpoint must verify with the key
            // we trust and extend the older checkpoint by a proof we check here.
            let report: LogReport = r.send_json(
                "POST",
                "/v1/log/verify",
                Some(serde_json::json!({
                    "checkpoint": old,
                    "key": pinned,
                    "blobs": !args.no_blobs,
                })),
            )?;
            let verifier = trusted(backend, pinned.as_deref())?;
            let current = open_checkpoint(
                &verifier,
                &checkpoint(backend)?.note,
                "the newest checkpoint",
            )?;
            if let Some(old) = &old {
                let old = open_checkpoint(&verifier, old, "the older checkpoint")?;
                let proof: ConsistencyProof = r.get_json(&format!(
                    "/v1/log/consistency?from={}&to={}",
                    old.size, current.size
                ))?;
                merkle::verify_consistency(
                    old.size,
                    current.size,
                    &old.root,
                    &current.root,
                    &parse_hashes(&proof.hashes)?,
                )
                .map_err(Error::Integrity)?;
            }
            report
        }
    };
    if g.json {
        print_json(&report)?;
    } else {
        write_stdout(&render(&report))?;
    }
    if report.ok() {
        Ok(())
    } else {
        Err(Error::Integrity(format!(
            "the log verification found {} problem(s)",
            report.problems.len()
        )))
    }
}

fn render(r: &LogReport) -> String {
    let mut out = format!(
        "log {} (key {}): {} entries, root {}\nchecked {} signed checkpoints and {} objects",
        r.origin, r.key_id, r.size, r.root_hash, r.checkpoints_checked, r.objects_checked
    );
    if r.blobs_checked > 0 {
        out.push_str(&format!(
            ", read {} blobs ({})",
            r.blobs_checked,
            human_bytes(r.bytes_checked)
        ));
    }
    out.push('\n');
    if let Some(old) = &r.old_checkpoint {
        out.push_str(&format!(
            "{} with the older checkpoint of {} entries\n",
            if old.consistent {
                "consistent"
            } else {
                "NOT consistent"
            },
            old.size
        ));
    }
    for note in &r.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    for p in &r.problems {
        out.push_str(&format!("problem: {p}\n"));
    }
    if r.ok() {
        out.push_str("ok: the log verifies and the vault agrees with it\n");
    }
    out
}
