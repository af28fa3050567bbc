//! Evidence packs: a period's records with their original bytes, the log entries that recorded
//! them with inclusion proofs against one signed checkpoint, a human report, and a manifest of
//! every file's SHA-256 signed with the vault's log key, as one `.tar.zst` that an auditor can
//! verify offline, without the vault (`docs/evidence-packs.md`).
//!
//! ```text
//! evault-pack/manifest.json          first entry: format, log, query, every other file's size and SHA-256
//! evault-pack/manifest.sig           second entry: a signed note over the manifest's SHA-256
//! evault-pack/log/key                the log's verifier key (as `evault log key` prints it)
//! evault-pack/log/checkpoint         the signed checkpoint every proof is against
//! evault-pack/report.md              the human summary
//! evault-pack/records/<id>.json      each record as `evault show --json` prints it
//! evault-pack/log/<id>.json          its ingestion entry and inclusion proof (`evault log prove --json`)
//! evault-pack/blobs/sha256/<hex>     each distinct blob's original bytes
//! ```
//!
//! [`export`] streams: records and proofs are spooled to an anonymous scratch file (hashing as
//! they go), blobs are read through the store's verifying reader straight into the tar, and the
//! tar goes through zstd into the caller's writer, so memory does not grow with the blobs. The
//! manifest comes first so that [`verify`] can check every later entry while it streams past.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use chrono::{DateTime, Utc};
use evault_schema::Kind;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::blob::{CHUNK, CorruptBlob};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::log::merkle::{self, Hash};
use crate::log::note::LogVerifier;
use crate::log::{CheckpointView, InclusionProof};
use crate::record::{Record, RecordFilter, format_time};
use crate::vault::Vault;

/// The manifest's `format`.
pub const FORMAT: &str = "evault-pack/v1";
/// The one directory every file of a pack is under.
pub const TOP_DIR: &str = "evault-pack";
pub const MANIFEST_PATH: &str = "manifest.json";
pub const SIGNATURE_PATH: &str = "manifest.sig";
pub const KEY_PATH: &str = "log/key";
pub const CHECKPOINT_PATH: &str = "log/checkpoint";
pub const REPORT_PATH: &str = "report.md";
/// The first line of the text `manifest.sig` signs; the second is `sha256:<hex>` of
/// `manifest.json`. No checkpoint can have this text (its second line is a number), so neither
/// signature can be passed off as the other.
pub const SIGNED_TEXT_HEADER: &str = "evault-pack-manifest/v1";
/// Largest manifest written or read (about 300,000 files).
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;
/// Most records one pack holds; narrow the period or the filters beyond it.
pub const MAX_RECORDS: usize = 100_000;
/// Largest record or proof JSON read into memory by [`verify`].
const MAX_JSON_FILE: u64 = 16 << 20;
/// Largest key, checkpoint or signature file read.
const MAX_NOTE_FILE: u64 = 64 << 10;
/// Records fetched per query.
const PAGE: usize = 1000;
const ZSTD_LEVEL: i32 = 3;

// ---------------------------------------------------------------------------------------------
// The manifest

/// `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    /// When the pack was written (RFC 3339 UTC).
    pub created_at: String,
    /// Who exported it: the token's name on a server, the OS user or `--actor` locally.
    pub exported_by: String,
    pub log: ManifestLog,
    pub query: PackQuery,
    /// How many records the pack holds, and how many of them were ingested in the period.
    pub records: u64,
    pub records_in_period: u64,
    pub blobs: u64,
    /// Every file of the pack but the manifest and its signature, in pack order.
    pub files: Vec<ManifestFile>,
}

/// The log the pack's proofs are against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestLog {
    pub origin: String,
    /// The signing key's id (8 hex digits), as `evault log key` prints it.
    pub key_id: String,
    /// The signed checkpoint `log/checkpoint`: its tree size and root hash (hex).
    pub tree_size: u64,
    pub root_hash: String,
}

/// What was asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackQuery {
    /// Records ingested at or after (RFC 3339 UTC).
    pub since: String,
    /// ...and before.
    pub until: String,
    pub blueprint: Option<String>,
    pub environment: Option<String>,
    /// The blueprint patterns the exporting token was limited to (empty: all).
    pub scopes: Vec<String>,
}

/// One file of the pack, by its path under [`TOP_DIR`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub path: String,
    pub size: u64,
    /// Hex.
    pub sha256: String,
}

/// The text `manifest.sig` signs for manifest bytes `manifest`.
pub fn signed_text(manifest: &[u8]) -> String {
    format!(
        "{SIGNED_TEXT_HEADER}\nsha256:{}\n",
        hex::encode(Sha256::digest(manifest))
    )
}

// ---------------------------------------------------------------------------------------------
// Which records

/// What to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub blueprint: Option<String>,
    pub environment: Option<String>,
    /// Only blueprints matching these patterns (a token's scopes; empty: all).
    pub scopes: Vec<String>,
    pub exported_by: String,
}

/// The records a pack holds: ids in pack order (ingestion time, then id), with whether each
/// was ingested in the period (the rest are evidence of a version deployed or rolled back in
/// it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub records: Vec<(String, bool)>,
}

/// Picks the records of a pack: every record ingested in `[since, until)` matching the
/// blueprint, environment and scopes; and, for each deploy or rollback among them, every
/// record of that blueprint version ingested before `until` whose environment link is absent
/// or the deploy's (approvals, SBOMs and scans of what was deployed, pushed before the period).
pub fn select(vault: &Vault, request: &ExportRequest) -> Result<Selection> {
    if request.since >= request.until {
        return Err(Error::Invalid(format!(
            "--since {} is not before --until {}: the period is empty",
            format_time(request.since),
            format_time(request.until)
        )));
    }
    // id -> (ingested_at, in period)
    let mut chosen: BTreeMap<String, (String, bool)> = BTreeMap::new();
    let mut deployed: BTreeSet<(String, String, Option<String>)> = BTreeSet::new();
    let in_period = RecordFilter {
        blueprint: request.blueprint.clone(),
        environment: request.environment.clone(),
        since: Some(request.since),
        until: Some(request.until),
        blueprint_patterns: request.scopes.clone(),
        ..RecordFilter::default()
    };
    each_record(vault, &in_period, &mut |r| {
        if matches!(r.kind, Kind::Deploy | Kind::Rollback) {
            deployed.insert((
                r.blueprint.name.clone(),
                r.blueprint.version.clone(),
                r.environment.clone(),
            ));
        }
        choose(&mut chosen, r, true)
    })?;
    for (name, version, environment) in deployed {
        let related = RecordFilter {
            blueprint: Some(name),
            version: Some(version),
            until: Some(request.until),
            blueprint_patterns: request.scopes.clone(),
            ..RecordFilter::default()
        };
        each_record(vault, &related, &mut |r| {
            if r.environment.is_none() || r.environment == environment {
                choose(&mut chosen, r, false)?;
            }
            Ok(())
        })?;
    }
    let mut records: Vec<(String, String, bool)> = chosen
        .into_iter()
        .map(|(id, (at, in_period))| (at, id, in_period))
        .collect();
    records.sort();
    Ok(Selection {
        records: records
            .into_iter()
            .map(|(_, id, in_period)| (id, in_period))
            .collect(),
    })
}

fn choose(
    chosen: &mut BTreeMap<String, (String, bool)>,
    r: &Record,
    in_period: bool,
) -> Result<()> {
    let slot = chosen
        .entry(r.id.clone())
        .or_insert_with(|| (r.ingested_at.clone(), in_period));
    slot.1 |= in_period;
    if chosen.len() > MAX_RECORDS {
        return Err(Error::TooLarge(format!(
            "the pack would hold more than {MAX_RECORDS} records: export a shorter period or \
             narrow it with --blueprint or --env"
        )));
    }
    Ok(())
}

/// Calls `f` with every record matching `filter`, a page at a time.
fn each_record(
    vault: &Vault,
    filter: &RecordFilter,
    f: &mut dyn FnMut(&Record) -> Result<()>,
) -> Result<()> {
    let mut filter = RecordFilter {
        limit: PAGE,
        ..filter.clone()
    };
    loop {
        let (page, next) = vault.records(&filter)?;
        for r in &page {
            f(r)?;
        }
        match next {
            Some(cursor) => filter.before = Some(cursor),
            None => return Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Writing

/// How far an export has got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportProgress {
    /// Records read so far, of `records_total`.
    pub records: u64,
    pub records_total: u64,
    /// Bytes of files written into the pack so far (before compression).
    pub bytes: u64,
}

/// What [`export`] wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportSummary {
    pub records: u64,
    pub records_in_period: u64,
    pub blobs: u64,
    /// Files in the pack, manifest and signature included.
    pub files: u64,
    /// Bytes of the files, before compression.
    pub bytes: u64,
    pub origin: String,
    pub key_id: String,
    pub tree_size: u64,
    pub root_hash: String,
    /// SHA-256 of `manifest.json`, hex: what `manifest.sig` signs.
    pub manifest_sha256: String,
    pub query: PackQuery,
}

/// One file of the spool (records and proofs, in pack order).
struct Spooled {
    path: String,
    size: u64,
    sha256: [u8; 32],
}

/// The records and proofs of a pack, written to a scratch file, with what the rest of the
/// pack needs to know about them.
struct Spool {
    file: std::fs::File,
    files: Vec<Spooled>,
    /// Each distinct blob with its original size.
    blobs: BTreeMap<Digest, u64>,
    rows: Vec<ReportRow>,
}

/// Writes the pack of `selection` (from [`select`]) as a zstd-compressed tar into `out`.
/// Nothing is written to `out` before every record and proof has been read; a blob that fails
/// verification while it is copied fails the export with [`Error::Integrity`], and whatever was
/// written to `out` by then must be discarded by the caller.
pub fn export(
    vault: &Vault,
    request: &ExportRequest,
    selection: &Selection,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(ExportProgress),
) -> Result<ExportSummary> {
    // Every selected record is committed, and with it its log entry and a checkpoint covering
    // it: the newest checkpoint, taken now, covers them all.
    let checkpoint = vault.log_checkpoint()?;
    let key = vault.log_key()?;
    let created_at = format_time(Utc::now());
    let mut state = ExportProgress {
        records_total: selection.records.len() as u64,
        ..ExportProgress::default()
    };

    // 1. Records and proofs into the spool, hashed as they go; blobs noted.
    let spool = spool_records(vault, selection, &checkpoint, &mut state, progress)?;

    // 2. The small files and the manifest, signed.
    let key_text = format!(
        "{}\n# log {}, ed25519 key {} (pin this line: evault log verify --key ...)\n",
        key.vkey, key.origin, key.key_id
    );
    let query = PackQuery {
        since: format_time(request.since),
        until: format_time(request.until),
        blueprint: request.blueprint.clone(),
        environment: request.environment.clone(),
        scopes: request.scopes.clone(),
    };
    let report = render_report(&ReportContext {
        query: &query,
        created_at: &created_at,
        exported_by: &request.exported_by,
        checkpoint: &checkpoint,
        key_id: &key.key_id,
        blobs: spool.blobs.len() as u64,
        rows: &spool.rows,
    });
    let small: [(&str, &[u8]); 3] = [
        (KEY_PATH, key_text.as_bytes()),
        (CHECKPOINT_PATH, checkpoint.note.as_bytes()),
        (REPORT_PATH, report.as_bytes()),
    ];
    let mut files: Vec<ManifestFile> = small
        .iter()
        .map(|(path, bytes)| ManifestFile {
            path: path.to_string(),
            size: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(bytes)),
        })
        .collect();
    files.extend(spool.files.iter().map(|s| ManifestFile {
        path: s.path.clone(),
        size: s.size,
        sha256: hex::encode(s.sha256),
    }));
    files.extend(spool.blobs.iter().map(|(digest, size)| ManifestFile {
        path: blob_path(digest),
        size: *size,
        sha256: digest.hex(),
    }));
    let manifest = Manifest {
        format: FORMAT.into(),
        created_at,
        exported_by: request.exported_by.clone(),
        log: ManifestLog {
            origin: checkpoint.origin.clone(),
            key_id: key.key_id.clone(),
            tree_size: checkpoint.size,
            root_hash: checkpoint.root_hash.clone(),
        },
        query,
        records: selection.records.len() as u64,
        records_in_period: selection.records.iter().filter(|(_, p)| *p).count() as u64,
        blobs: spool.blobs.len() as u64,
        files,
    };
    let mut manifest_bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::Internal(format!("cannot render the manifest: {e}")))?;
    manifest_bytes.push(b'\n');
    if manifest_bytes.len() as u64 > MAX_MANIFEST_BYTES {
        return Err(Error::TooLarge(format!(
            "the pack's manifest would be larger than {} MiB: export a shorter period",
            MAX_MANIFEST_BYTES >> 20
        )));
    }
    let signature = vault.log_sign_note(&signed_text(&manifest_bytes))?;

    // 3. The tar, in manifest order, through zstd into `out`.
    let encoder = zstd::stream::write::Encoder::new(out, ZSTD_LEVEL)
        .and_then(|mut e| e.include_checksum(true).map(|_| e))
        .map_err(|e| Error::io("cannot start compressing the pack", e))?;
    let mut tar = PackTar {
        builder: tar::Builder::new(encoder),
        mtime: Utc::now().timestamp().max(0) as u64,
        state,
        progress,
    };
    tar.add_bytes(MANIFEST_PATH, &manifest_bytes)?;
    tar.add_bytes(SIGNATURE_PATH, signature.as_bytes())?;
    for (path, bytes) in small {
        tar.add_bytes(path, bytes)?;
    }
    tar.add_spooled(spool.file, &spool.files)?;
    for (digest, size) in &spool.blobs {
        let (_, reader) = vault.open_blob(digest)?;
        tar.add(&blob_path(digest), *size, reader)
            .map_err(|e| match e {
                Error::Integrity(m) => {
                    Error::Integrity(format!("cannot export blob {digest}: {m}"))
                }
                other => other,
            })?;
    }
    let bytes = tar.state.bytes;
    let encoder = tar
        .builder
        .into_inner()
        .map_err(|e| Error::io("cannot write the pack", e))?;
    encoder
        .finish()
        .and_then(|out| out.flush())
        .map_err(|e| Error::io("cannot write the pack", e))?;

    Ok(ExportSummary {
        records: manifest.records,
        records_in_period: manifest.records_in_period,
        blobs: manifest.blobs,
        files: manifest.files.len() as u64 + 2,
        bytes,
        origin: manifest.log.origin,
        key_id: manifest.log.key_id,
        tree_size: manifest.log.tree_size,
        root_hash: manifest.log.root_hash,
        manifest_sha256: hex::encode(Sha256::digest(&manifest_bytes)),
        query: manifest.query,
    })
}

/// Phase 1 of [`export`]: each record (as `evault show --json`) and its proof against
/// `checkpoint` into a scratch file, noting their hashes, the blobs and the report's rows.
fn spool_records(
    vault: &Vault,
    selection: &Selection,
    checkpoint: &CheckpointView,
    state: &mut ExportProgress,
    progress: &mut dyn FnMut(ExportProgress),
) -> Result<Spool> {
    let mut file = vault.scratch_file()?;
    let mut files = Vec::with_capacity(selection.records.len() * 2);
    let mut blobs: BTreeMap<Digest, u64> = BTreeMap::new();
    let mut rows = Vec::with_capacity(selection.records.len());
    let mut writer = BufWriter::new(&mut file);
    for (id, in_period) in &selection.records {
        let record = vault.record(id)?;
        let digest: Digest = record
            .digest
            .parse()
            .map_err(|e| Error::Integrity(format!("record {id} holds a malformed digest: {e}")))?;
        if let std::collections::btree_map::Entry::Vacant(slot) = blobs.entry(digest) {
            // Present in the index and in the store, with its original size.
            slot.insert(vault.blob(&digest)?.size);
        }
        let proof = vault.log_prove_at(&record, checkpoint)?;
        let view = vault.view(record)?;
        rows.push(ReportRow::of(&view.record, &view.summary, *in_period));
        files.push(spool_json(
            &mut writer,
            format!("records/{id}.json"),
            &view,
        )?);
        files.push(spool_json(&mut writer, format!("log/{id}.json"), &proof)?);
        state.records += 1;
        progress(*state);
    }
    writer
        .flush()
        .map_err(|e| Error::io("cannot write the export's scratch file", e))?;
    drop(writer);
    Ok(Spool {
        file,
        files,
        blobs,
        rows,
    })
}

fn blob_path(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

fn spool_json(out: &mut dyn Write, path: String, value: &impl Serialize) -> Result<Spooled> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| Error::Internal(format!("cannot render {path}: {e}")))?;
    bytes.push(b'\n');
    out.write_all(&bytes)
        .map_err(|e| Error::io("cannot write the export's scratch file", e))?;
    Ok(Spooled {
        path,
        size: bytes.len() as u64,
        sha256: Sha256::digest(&bytes).into(),
    })
}

/// The tar being written, with the export's progress.
struct PackTar<'p, W: Write> {
    builder: tar::Builder<W>,
    mtime: u64,
    state: ExportProgress,
    progress: &'p mut dyn FnMut(ExportProgress),
}

impl<W: Write> PackTar<'_, W> {
    fn add_bytes(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
        self.add(path, bytes.len() as u64, bytes)
    }

    /// Appends the spooled files, checking each against the hash taken when it was written.
    fn add_spooled(&mut self, mut file: std::fs::File, files: &[Spooled]) -> Result<()> {
        file.seek(SeekFrom::Start(0))
            .map_err(|e| Error::io("cannot read the export's scratch file", e))?;
        let mut spool = BufReader::with_capacity(CHUNK, file);
        for s in files {
            let mut sha = Sha256::new();
            let mut reader = Hashing {
                inner: (&mut spool).take(s.size),
                sha: &mut sha,
            };
            self.add(&s.path, s.size, &mut reader)?;
            if <[u8; 32]>::from(sha.finalize()) != s.sha256 {
                return Err(Error::Internal(format!(
                    "the export's scratch file changed under it ({})",
                    s.path
                )));
            }
        }
        Ok(())
    }

    /// Appends `size` bytes from `reader` as the regular file `path`, reading `reader` to its
    /// end (so that a verifying reader gets to conclude) and refusing any other length.
    fn add(&mut self, path: &str, size: u64, reader: impl Read) -> Result<()> {
        let mut header = tar::Header::new_ustar();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_mtime(self.mtime);
        header.set_uid(0);
        header.set_gid(0);
        header.set_entry_type(tar::EntryType::Regular);
        let mut exact = Exact {
            inner: reader,
            left: size,
            fault: None,
            state: &mut self.state,
            progress: &mut *self.progress,
        };
        let written =
            self.builder
                .append_data(&mut header, format!("{TOP_DIR}/{path}"), &mut exact);
        if let Some(fault) = exact.fault.take() {
            return Err(fault);
        }
        written.map_err(|e| Error::io("cannot write the pack", e))
    }
}

/// Passes exactly `left` bytes through, then reads `inner` to its end; a shorter or longer
/// source, or a read error, is kept in `fault`.
struct Exact<'a, R> {
    inner: R,
    left: u64,
    fault: Option<Error>,
    state: &'a mut ExportProgress,
    progress: &'a mut dyn FnMut(ExportProgress),
}

impl<R: Read> Exact<'_, R> {
    fn fail(&mut self, e: Error) -> io::Error {
        let message = e.to_string();
        self.fault = Some(e);
        io::Error::other(message)
    }
}

impl<R: Read> Read for Exact<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            let mut probe = [0u8; 1];
            return loop {
                match self.inner.read(&mut probe) {
                    Ok(0) => break Ok(0),
                    Ok(_) => {
                        break Err(self.fail(Error::Integrity(
                            "it is longer than its recorded size".into(),
                        )));
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => break Err(self.fail(read_error(e))),
                }
            };
        }
        let want = buf.len().min(self.left.min(usize::MAX as u64) as usize);
        match self.inner.read(&mut buf[..want]) {
            Ok(0) if want > 0 => Err(self.fail(Error::Integrity(format!(
                "it is {} bytes shorter than its recorded size",
                self.left
            )))),
            Ok(n) => {
                self.left -= n as u64;
                self.state.bytes += n as u64;
                (self.progress)(*self.state);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => Err(self.fail(read_error(e))),
        }
    }
}

fn read_error(e: io::Error) -> Error {
    match CorruptBlob::from_io(&e) {
        Some(corrupt) => Error::Integrity(corrupt.to_string()),
        None => Error::io("cannot read what goes into the pack", e),
    }
}

/// Hashes what passes through.
struct Hashing<'a, R> {
    inner: R,
    sha: &'a mut Sha256,
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------------
// report.md

/// What the report needs of one record (its subjects and most of its summary are left out to
/// keep memory small).
struct ReportRow {
    id: String,
    kind: Kind,
    format: String,
    blueprint: String,
    version: String,
    git_sha: String,
    environment: Option<String>,
    digest: String,
    verification: String,
    ingested_at: String,
    producer: String,
    in_period: bool,
    /// The native document's fields (`Vault::summary`) of a deploy, rollback or approval.
    document: Option<serde_json::Map<String, Value>>,
}

impl ReportRow {
    fn of(r: &Record, summary: &Value, in_period: bool) -> ReportRow {
        let document = match (r.kind, summary) {
            (Kind::Deploy | Kind::Rollback | Kind::Approval, Value::Object(map)) => {
                Some(map.clone())
            }
            _ => None,
        };
        ReportRow {
            id: r.id.clone(),
            kind: r.kind,
            format: r.format.to_string(),
            blueprint: r.blueprint.name.clone(),
            version: r.blueprint.version.clone(),
            git_sha: r.git_sha.clone(),
            environment: r.environment.clone(),
            digest: r.digest.clone(),
            verification: r
                .verification
                .as_ref()
                .map_or("-".to_string(), |v| v.status.as_str().to_string()),
            ingested_at: r.ingested_at.clone(),
            producer: r.producer.clone(),
            in_period,
            document,
        }
    }

    fn field(&self, name: &str) -> String {
        match self.document.as_ref().and_then(|d| d.get(name)) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => "-".to_string(),
            Some(other) => other.to_string(),
        }
    }
}

struct ReportContext<'a> {
    query: &'a PackQuery,
    created_at: &'a str,
    exported_by: &'a str,
    checkpoint: &'a CheckpointView,
    key_id: &'a str,
    blobs: u64,
    rows: &'a [ReportRow],
}

/// A Markdown table cell: one line, pipes escaped, at most 300 characters.
fn cell(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut out = one_line.replace('|', "\\|");
    if out.chars().count() > 300 {
        out = out.chars().take(299).collect::<String>() + "…";
    }
    if out.trim().is_empty() {
        "-".into()
    } else {
        out
    }
}

fn render_report(c: &ReportContext<'_>) -> String {
    use std::fmt::Write as _;
    let q = c.query;
    let mut s = String::new();
    let in_period = c.rows.iter().filter(|r| r.in_period).count();
    let _ = writeln!(s, "# Evidence pack\n");
    let _ = writeln!(
        s,
        "- **Period**: records ingested from {} (inclusive) to {} (exclusive)",
        q.since, q.until
    );
    let _ = writeln!(
        s,
        "- **Filters**: blueprint {}, environment {}{}",
        q.blueprint.as_deref().unwrap_or("any"),
        q.environment.as_deref().unwrap_or("any"),
        if q.scopes.is_empty() {
            String::new()
        } else {
            format!(
                "; limited to the exporting token's blueprints {}",
                q.scopes.join(", ")
            )
        }
    );
    let _ = writeln!(
        s,
        "- **Contents**: {} records ({} ingested in the period, {} more: evidence of the \
         blueprint versions deployed or rolled back in it), {} blobs",
        c.rows.len(),
        in_period,
        c.rows.len() - in_period,
        c.blobs
    );
    let _ = writeln!(
        s,
        "- **Exported**: {} by {}, from log {} (key {}); every record's log entry is proven \
         against the signed checkpoint of {} entries, root {}",
        c.created_at,
        cell(c.exported_by),
        c.checkpoint.origin,
        c.key_id,
        c.checkpoint.size,
        c.checkpoint.root_hash
    );
    let _ = writeln!(
        s,
        "- **Verify** offline with `evault verify-pack PACK --key VAULT.vkey`, using the log key \
         the vault's operator published (`evault log key`).\n"
    );

    let _ = writeln!(s, "## Changes (deploys and rollbacks)\n");
    let changes: Vec<&ReportRow> = c
        .rows
        .iter()
        .filter(|r| matches!(r.kind, Kind::Deploy | Kind::Rollback))
        .collect();
    if changes.is_empty() {
        let _ = writeln!(s, "None in this pack.\n");
    } else {
        let _ = writeln!(
            s,
            "| Time | Change | Environment | Blueprint | Version | Actor | Git SHA | Artifact | Status | Record |\n\
             |---|---|---|---|---|---|---|---|---|---|"
        );
        for r in changes {
            let (change, version, status) = if r.kind == Kind::Rollback {
                (
                    "rollback".to_string(),
                    format!("{} → {}", r.field("from_version"), r.field("to_version")),
                    format!("trigger: {}", r.field("trigger")),
                )
            } else {
                ("deploy".to_string(), r.version.clone(), r.field("status"))
            };
            let environment = r
                .document
                .as_ref()
                .and_then(|d| d.get("environment"))
                .and_then(Value::as_str)
                .or(r.environment.as_deref())
                .unwrap_or("-")
                .to_string();
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | `{}` |",
                cell(&r.field("time")),
                change,
                cell(&environment),
                cell(&r.blueprint),
                cell(&version),
                cell(&r.field("actor")),
                cell(&r.git_sha),
                cell(&r.field("artifact")),
                cell(&status),
                r.id
            );
        }
        let _ = writeln!(s);
    }

    let _ = writeln!(s, "## Approvals\n");
    let approvals: Vec<&ReportRow> = c.rows.iter().filter(|r| r.kind == Kind::Approval).collect();
    if approvals.is_empty() {
        let _ = writeln!(s, "None in this pack.\n");
    } else {
        let _ = writeln!(
            s,
            "| Time | Approver | Decision | Environment | Blueprint | Version | Reason | Expires | Record |\n\
             |---|---|---|---|---|---|---|---|---|"
        );
        for r in approvals {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | `{}` |",
                cell(&r.field("time")),
                cell(&r.field("approver")),
                cell(&r.field("decision")),
                cell(&r.field("environment")),
                cell(&r.blueprint),
                cell(&r.version),
                cell(&r.field("reason")),
                cell(&r.field("expires_at")),
                r.id
            );
        }
        let _ = writeln!(s);
    }

    let _ = writeln!(s, "## Evidence by blueprint version\n");
    let mut by_version: BTreeMap<(&str, &str), Vec<&ReportRow>> = BTreeMap::new();
    for r in c.rows {
        by_version
            .entry((r.blueprint.as_str(), r.version.as_str()))
            .or_default()
            .push(r);
    }
    if by_version.is_empty() {
        let _ = writeln!(s, "No records in this pack.");
    }
    for ((name, version), rows) in by_version {
        let _ = writeln!(
            s,
            "### {} {}\n\n\
             | Kind | Format | Environment | Record | Digest | Verification | Ingested | Producer | In period |\n\
             |---|---|---|---|---|---|---|---|---|",
            cell(name),
            cell(version)
        );
        for r in rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | `{}` | `{}` | {} | {} | {} | {} |",
                r.kind,
                r.format,
                cell(r.environment.as_deref().unwrap_or("-")),
                r.id,
                r.digest,
                r.verification,
                r.ingested_at,
                cell(&r.producer),
                if r.in_period { "yes" } else { "no" }
            );
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "Files: `records/<id>.json` (each record as `evault show --json` prints it), \
         `blobs/sha256/<hex>` (the original bytes), `log/<id>.json` (the record's ingestion \
         entry and its inclusion proof), `log/checkpoint`, `log/key`; `manifest.json` lists \
         every file's SHA-256 and `manifest.sig` signs it."
    );
    s
}

// ---------------------------------------------------------------------------------------------
// Verifying

/// One thing wrong with a pack, naming the file (its path in the tar).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackProblem {
    pub path: String,
    pub problem: String,
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackReport {
    /// Whether everything verified.
    pub ok: bool,
    /// `pinned` (the key given by the auditor) or `pack` (the pack's own `log/key`, which
    /// proves the pack is intact and consistent, not who made it).
    pub key_source: String,
    /// The key the signatures were checked with.
    pub key_id: Option<String>,
    pub key_name: Option<String>,
    pub format: Option<String>,
    pub created_at: Option<String>,
    pub exported_by: Option<String>,
    pub query: Option<PackQuery>,
    pub tree_size: Option<u64>,
    pub root_hash: Option<String>,
    pub records: u64,
    pub records_in_period: u64,
    pub blobs: u64,
    /// SHA-256 of `manifest.json`, hex: what `manifest.sig` signs.
    pub manifest_sha256: Option<String>,
    /// Files read and checked against the manifest, and their bytes.
    pub files_checked: u64,
    pub bytes_checked: u64,
    pub problems: Vec<PackProblem>,
}

/// How far a verification has got: (files, bytes) read.
pub type VerifyProgress<'a> = &'a mut dyn FnMut(u64, u64);

/// The key to check a pack with: the one the auditor trusts, or the pack's own.
pub enum PackKey {
    Pinned(Box<LogVerifier>),
    FromPack,
}

fn tar_path(rel: &str) -> String {
    format!("{TOP_DIR}/{rel}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RecordFacts {
    digest: String,
    kind: String,
    blueprint: String,
    version: String,
}

fn not_a_pack(why: String) -> Error {
    Error::Invalid(format!(
        "not an evault evidence pack (a zstd-compressed tar whose first entry is \
         {TOP_DIR}/{MANIFEST_PATH}): {why}"
    ))
}

/// Verifies a pack read from `reader`, offline. Problems are collected in the report (and
/// make it not `ok`); `Err` only for input that is not a pack at all: not zstd, not a tar, or
/// without `manifest.json` as its first entry ([`Error::Invalid`]).
pub fn verify(reader: impl Read, key: PackKey, progress: VerifyProgress<'_>) -> Result<PackReport> {
    let decoder = zstd::stream::read::Decoder::new(reader)
        .map_err(|e| not_a_pack(format!("cannot start decompressing: {e}")))?;
    let mut archive = tar::Archive::new(decoder);
    let mut entries = archive
        .entries()
        .map_err(|e| not_a_pack(format!("cannot read it: {e}")))?;
    let manifest_bytes = match entries.next() {
        None => return Err(not_a_pack("it is empty".into())),
        Some(Err(e)) => return Err(not_a_pack(e.to_string())),
        Some(Ok(mut first)) => read_manifest(&mut first)?,
    };
    let key_source = match key {
        PackKey::Pinned(_) => "pinned",
        PackKey::FromPack => "pack",
    };
    let mut check = Check::new(&manifest_bytes, key_source);
    if check.manifest.is_none() {
        // Without a manifest nothing else can be checked.
        return Ok(check.finish());
    }
    let mut complete = true;
    for entry in &mut entries {
        let ended = match entry {
            Ok(mut entry) => check.entry(&mut entry, progress),
            Err(e) => Err(e),
        };
        if let Err(e) = ended {
            let last = check.last.clone();
            check.problem(
                &last,
                format!("the pack is damaged or truncated at or after this file: {e}"),
            );
            complete = false;
            break;
        }
    }
    if complete {
        check.rest(archive.into_inner());
    }
    check.missing();
    check.signatures(key, &manifest_bytes);
    check.agreement();
    Ok(check.finish())
}

/// The first entry, which must be `manifest.json`, bounded.
fn read_manifest(first: &mut tar::Entry<'_, impl Read>) -> Result<Vec<u8>> {
    let path = String::from_utf8_lossy(&first.path_bytes()).into_owned();
    if path != tar_path(MANIFEST_PATH) || first.header().entry_type() != tar::EntryType::Regular {
        return Err(not_a_pack(format!(
            "its first entry is '{}'",
            excerpt(&path)
        )));
    }
    if first.header().size().unwrap_or(u64::MAX) > MAX_MANIFEST_BYTES {
        return Err(not_a_pack(format!(
            "its manifest is larger than {} MiB",
            MAX_MANIFEST_BYTES >> 20
        )));
    }
    read_small(first, MAX_MANIFEST_BYTES)
        .map_err(|e| not_a_pack(format!("cannot read its manifest: {e}")))
}

/// A verification in progress: the manifest, what has been seen, the problems so far.
struct Check {
    report: PackReport,
    manifest: Option<Manifest>,
    root: Option<Hash>,
    /// Manifest path -> index in `manifest.files`.
    listed: HashMap<String, usize>,
    problems: Vec<PackProblem>,
    /// Paths (under the top directory) seen so far, and the entry count.
    seen_paths: HashSet<String>,
    position: u64,
    /// The tar path of the last entry read, to name where a damaged pack breaks off.
    last: String,
    /// Records: id -> digest, kind and blueprint (from `records/<id>.json`).
    records: HashMap<String, RecordFacts>,
    /// Proven log entries: id -> the facts of the entry's state.
    entries: HashMap<String, RecordFacts>,
    key: Option<String>,
    checkpoint: Option<String>,
    signature: Option<String>,
}

impl Check {
    /// Parses the manifest (a broken one is a problem, not an error: it may have been altered).
    fn new(manifest_bytes: &[u8], key_source: &str) -> Check {
        let mut check = Check {
            report: PackReport {
                ok: false,
                key_source: key_source.into(),
                key_id: None,
                key_name: None,
                format: None,
                created_at: None,
                exported_by: None,
                query: None,
                tree_size: None,
                root_hash: None,
                records: 0,
                records_in_period: 0,
                blobs: 0,
                manifest_sha256: Some(hex::encode(Sha256::digest(manifest_bytes))),
                files_checked: 1,
                bytes_checked: manifest_bytes.len() as u64,
                problems: Vec::new(),
            },
            manifest: None,
            root: None,
            listed: HashMap::new(),
            problems: Vec::new(),
            seen_paths: HashSet::new(),
            position: 1,
            last: tar_path(MANIFEST_PATH),
            records: HashMap::new(),
            entries: HashMap::new(),
            key: None,
            checkpoint: None,
            signature: None,
        };
        let manifest = match serde_json::from_slice::<Manifest>(manifest_bytes) {
            Ok(m) if m.format == FORMAT => m,
            Ok(m) => {
                check.problem(
                    &tar_path(MANIFEST_PATH),
                    format!(
                        "format '{}' is not {FORMAT} (altered, or made by a newer evault)",
                        excerpt(&m.format)
                    ),
                );
                return check;
            }
            Err(e) => {
                check.problem(
                    &tar_path(MANIFEST_PATH),
                    format!("not a valid pack manifest ({e}): altered or damaged"),
                );
                return check;
            }
        };
        let r = &mut check.report;
        r.format = Some(manifest.format.clone());
        r.created_at = Some(manifest.created_at.clone());
        r.exported_by = Some(manifest.exported_by.clone());
        r.query = Some(manifest.query.clone());
        r.tree_size = Some(manifest.log.tree_size);
        r.root_hash = Some(manifest.log.root_hash.clone());
        r.records = manifest.records;
        r.records_in_period = manifest.records_in_period;
        r.blobs = manifest.blobs;
        check.root = parse_hash(&manifest.log.root_hash);
        if check.root.is_none() {
            check.problem(
                &tar_path(MANIFEST_PATH),
                "log.root_hash is not a SHA-256 hash in hex".into(),
            );
        }
        for (i, f) in manifest.files.iter().enumerate() {
            if [MANIFEST_PATH, SIGNATURE_PATH].contains(&f.path.as_str())
                || check.listed.insert(f.path.clone(), i).is_some()
            {
                check.problem(
                    &tar_path(MANIFEST_PATH),
                    format!("lists '{}' more than once", excerpt(&f.path)),
                );
            }
        }
        let counted = manifest
            .files
            .iter()
            .filter(|f| f.path.starts_with("records/"))
            .count() as u64;
        if manifest.records != counted {
            check.problem(
                &tar_path(MANIFEST_PATH),
                format!(
                    "says it holds {} records but lists {counted}",
                    manifest.records
                ),
            );
        }
        check.manifest = Some(manifest);
        check
    }

    fn problem(&mut self, path: &str, why: String) {
        self.problems.push(PackProblem {
            path: path.to_string(),
            problem: why,
        });
    }

    fn listed(&self, rel: &str) -> Option<&ManifestFile> {
        let i = *self.listed.get(rel)?;
        self.manifest.as_ref()?.files.get(i)
    }

    /// Checks one entry after the manifest while it streams past. `Err` when the pack's
    /// stream itself breaks (nothing after it can be read).
    fn entry(
        &mut self,
        entry: &mut tar::Entry<'_, impl Read>,
        progress: VerifyProgress<'_>,
    ) -> io::Result<()> {
        self.position += 1;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        self.last = shown.clone();
        let Some(rel) = safe_path(&raw) else {
            self.problem(
                &shown,
                "unsafe path (absolute, '..', '.', empty segments, backslashes or outside \
                 evault-pack/): refused"
                    .into(),
            );
            return Ok(());
        };
        let kind = entry.header().entry_type();
        if kind != tar::EntryType::Regular {
            let what = match kind {
                tar::EntryType::Symlink => "a symbolic link".to_string(),
                tar::EntryType::Link => "a hard link".to_string(),
                tar::EntryType::Directory => "a directory".to_string(),
                other => format!("a tar entry of type {other:?}"),
            };
            self.problem(
                &shown,
                format!("is {what}; a pack holds only regular files"),
            );
            return Ok(());
        }
        if !self.seen_paths.insert(rel.clone()) || rel == MANIFEST_PATH {
            self.problem(&shown, "appears more than once in the pack".into());
            return Ok(());
        }
        let size = entry.header().size().unwrap_or(u64::MAX);
        if rel == SIGNATURE_PATH {
            return self.signature_entry(entry, &shown, size);
        }
        let Some(expected) = self.listed(&rel).cloned() else {
            self.problem(
                &shown,
                "is not listed in the manifest (added to the pack?)".into(),
            );
            return Ok(());
        };
        if size != expected.size {
            self.problem(
                &shown,
                format!(
                    "is {size} bytes but the manifest says {} (altered?)",
                    expected.size
                ),
            );
            return Ok(());
        }
        // What to keep in memory besides the hash: JSON and notes, bounded.
        let keep = if rel.starts_with("records/") || is_log_proof(&rel) {
            Some(MAX_JSON_FILE)
        } else if rel == KEY_PATH || rel == CHECKPOINT_PATH {
            Some(MAX_NOTE_FILE)
        } else {
            None
        };
        if keep.is_some_and(|bound| size > bound) {
            self.problem(&shown, format!("is too large to check ({size} bytes)"));
            return Ok(());
        }
        let report = &mut self.report;
        let (sha, kept) = hash_entry(entry, keep.is_some(), &mut |n| {
            report.bytes_checked += n;
            progress(report.files_checked, report.bytes_checked);
        })?;
        self.report.files_checked += 1;
        let sha = hex::encode(sha);
        if sha != expected.sha256 {
            self.problem(
                &shown,
                format!(
                    "its content does not match the manifest (sha256 {sha}, the manifest says \
                     {}): altered",
                    excerpt(&expected.sha256)
                ),
            );
        }
        self.content(&rel, &shown, &sha, kept);
        Ok(())
    }

    /// `manifest.sig`: kept for [`Check::signatures`].
    fn signature_entry(&mut self, entry: &mut impl Read, shown: &str, size: u64) -> io::Result<()> {
        if self.position != 2 {
            self.problem(
                shown,
                "is not the second entry of the pack (right after the manifest)".into(),
            );
        }
        if size > MAX_NOTE_FILE {
            self.problem(shown, "is larger than 64 KiB: not a signature".into());
            return Ok(());
        }
        let bytes = read_small(entry, MAX_NOTE_FILE)?;
        self.report.files_checked += 1;
        self.report.bytes_checked += bytes.len() as u64;
        match String::from_utf8(bytes) {
            Ok(text) => self.signature = Some(text),
            Err(_) => self.problem(shown, "is not UTF-8 text: altered or damaged".into()),
        }
        Ok(())
    }

    /// What each kind of file must be, beyond its hash.
    fn content(&mut self, rel: &str, shown: &str, sha: &str, kept: Vec<u8>) {
        if let Some(hex_name) = rel.strip_prefix("blobs/sha256/") {
            if sha != hex_name {
                self.problem(
                    shown,
                    format!("its bytes do not hash to its name (sha256 {sha}): altered"),
                );
            }
        } else if let Some(id) = rel
            .strip_prefix("records/")
            .and_then(|n| n.strip_suffix(".json"))
        {
            match record_facts(&kept, id) {
                Ok(facts) => {
                    self.records.insert(id.to_string(), facts);
                }
                Err(why) => self.problem(shown, why),
            }
        } else if is_log_proof(rel) {
            let id = &rel["log/".len()..rel.len() - ".json".len()];
            let Some(manifest) = &self.manifest else {
                return;
            };
            let checkpoint_sha = self.listed(CHECKPOINT_PATH).map(|f| f.sha256.clone());
            match check_proof(
                &kept,
                id,
                manifest.log.tree_size,
                self.root.as_ref(),
                checkpoint_sha.as_deref(),
            ) {
                Ok(facts) => {
                    self.entries.insert(id.to_string(), facts);
                }
                Err(why) => self.problem(shown, why),
            }
        } else if rel == KEY_PATH {
            self.key = String::from_utf8(kept).ok();
        } else if rel == CHECKPOINT_PATH {
            match String::from_utf8(kept) {
                Ok(text) => self.checkpoint = Some(text),
                Err(_) => self.problem(shown, "is not UTF-8 text".into()),
            }
        }
    }

    /// The rest of the stream: nothing but the tar's zero padding, and a zstd frame whose
    /// checksum holds.
    fn rest(&mut self, mut rest: impl Read) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match rest.read(&mut buf) {
                Ok(0) => return,
                Ok(n) if buf[..n].iter().all(|b| *b == 0) => {}
                Ok(_) => {
                    let last = self.last.clone();
                    self.problem(&last, "data follows the end of the archive".into());
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let last = self.last.clone();
                    self.problem(
                        &last,
                        format!("the compressed stream is damaged after this file: {e}"),
                    );
                    return;
                }
            }
        }
    }

    /// Files the manifest lists that were not in the pack.
    fn missing(&mut self) {
        let Some(manifest) = self.manifest.take() else {
            return;
        };
        for f in &manifest.files {
            if !self.seen_paths.contains(&f.path) {
                self.problem(
                    &tar_path(&f.path),
                    "is listed in the manifest but missing from the pack (removed?)".into(),
                );
            }
        }
        if !self.seen_paths.contains(SIGNATURE_PATH) {
            self.problem(
                &tar_path(SIGNATURE_PATH),
                "is missing: the manifest is not signed".into(),
            );
        }
        self.manifest = Some(manifest);
    }

    /// The manifest's signature and the checkpoint's, with the pinned key or the pack's own.
    fn signatures(&mut self, key: PackKey, manifest_bytes: &[u8]) {
        let Some(manifest) = self.manifest.take() else {
            return;
        };
        let pack_key = self.key.as_deref().and_then(first_key_line);
        let verifier = match key {
            PackKey::Pinned(v) => {
                if let Some(text) = &pack_key
                    && LogVerifier::from_vkey(text).ok().as_ref() != Some(&*v)
                {
                    self.problem(
                        &tar_path(KEY_PATH),
                        format!(
                            "is not the key you gave (key {}): the pack names another key",
                            v.key_id()
                        ),
                    );
                }
                Some(*v)
            }
            PackKey::FromPack => match pack_key.as_deref().map(LogVerifier::from_vkey) {
                None => {
                    self.problem(
                        &tar_path(KEY_PATH),
                        "is missing or unreadable: give the vault's key with --key".into(),
                    );
                    None
                }
                Some(Err(e)) => {
                    self.problem(&tar_path(KEY_PATH), format!("is not a verifier key: {e}"));
                    None
                }
                Some(Ok(v)) => Some(v),
            },
        };
        if let Some(v) = verifier {
            self.report.key_id = Some(v.key_id());
            self.report.key_name = Some(v.name().to_string());
            self.check_signature(&v, manifest_bytes);
            if manifest.log.key_id != v.key_id() || manifest.log.origin != v.name() {
                self.problem(
                    &tar_path(MANIFEST_PATH),
                    format!(
                        "names log {} key {}, not the key checked with ({} key {})",
                        excerpt(&manifest.log.origin),
                        excerpt(&manifest.log.key_id),
                        v.name(),
                        v.key_id()
                    ),
                );
            }
            self.check_checkpoint(&v, &manifest);
        }
        self.manifest = Some(manifest);
    }

    fn check_signature(&mut self, v: &LogVerifier, manifest_bytes: &[u8]) {
        let Some(note) = self.signature.take() else {
            return;
        };
        // Exactly one signature line, by this key: a pack's signature is never anything else,
        // so no byte of it can change unnoticed.
        let lines = note
            .split_once("\n\n")
            .map_or(0, |(_, sigs)| sigs.lines().count());
        match v.open_note(&note) {
            Ok(_) if lines != 1 => self.problem(
                &tar_path(SIGNATURE_PATH),
                format!("holds {lines} signature lines, not one: altered"),
            ),
            Ok(text) if text == signed_text(manifest_bytes) => {}
            Ok(_) => self.problem(
                &tar_path(MANIFEST_PATH),
                format!(
                    "does not match its signature in {SIGNATURE_PATH} (the signed SHA-256 \
                     differs): altered"
                ),
            ),
            Err(e) => self.problem(
                &tar_path(SIGNATURE_PATH),
                format!("the manifest's signature does not verify: {e}"),
            ),
        }
    }

    fn check_checkpoint(&mut self, v: &LogVerifier, manifest: &Manifest) {
        let Some(note) = self.checkpoint.take() else {
            return;
        };
        match v.open(&note) {
            Ok(cp) => {
                if cp.size != manifest.log.tree_size
                    || Some(cp.root) != self.root
                    || cp.origin != manifest.log.origin
                {
                    self.problem(
                        &tar_path(CHECKPOINT_PATH),
                        format!(
                            "is the checkpoint of {} entries with root {}, but the manifest \
                             says {} entries with root {}",
                            cp.size,
                            hex::encode(cp.root),
                            manifest.log.tree_size,
                            excerpt(&manifest.log.root_hash)
                        ),
                    );
                }
            }
            Err(e) => self.problem(&tar_path(CHECKPOINT_PATH), e),
        }
    }

    /// Every record has its blob and its proven log entry, and agrees with that entry.
    fn agreement(&mut self) {
        let mut ids: Vec<String> = self.records.keys().cloned().collect();
        ids.sort();
        for id in ids {
            let path = tar_path(&format!("records/{id}.json"));
            let facts = self.records[&id].clone();
            let blob = facts
                .digest
                .strip_prefix("sha256:")
                .map(|hex| format!("blobs/sha256/{hex}"));
            if !blob.is_some_and(|b| self.listed.contains_key(&b)) {
                self.problem(
                    &path,
                    format!("its blob {} is not in the pack", excerpt(&facts.digest)),
                );
            }
            match self.entries.get(&id) {
                Some(logged) if *logged != facts => self.problem(
                    &path,
                    format!(
                        "disagrees with its log entry in log/{id}.json (digest, kind or \
                         blueprint differ)"
                    ),
                ),
                Some(_) => {}
                // Listed but failed, or missing: named already.
                None if self.listed.contains_key(&format!("log/{id}.json")) => {}
                None => self.problem(
                    &path,
                    format!("has no log entry and proof (log/{id}.json) in the pack"),
                ),
            }
        }
    }

    fn finish(mut self) -> PackReport {
        self.report.problems = self.problems;
        self.report.ok = self.report.problems.is_empty();
        self.report
    }
}

fn is_log_proof(rel: &str) -> bool {
    rel.starts_with("log/") && rel.ends_with(".json") && !rel["log/".len()..].contains('/')
}

/// The path under [`TOP_DIR`] if `raw` is a safe, normal path inside it.
fn safe_path(raw: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(raw).ok()?;
    if text.contains('\\') || text.starts_with('/') || text.chars().any(char::is_control) {
        return None;
    }
    let rel = text.strip_prefix(TOP_DIR)?.strip_prefix('/')?;
    if rel
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return None;
    }
    Some(rel.to_string())
}

fn read_small(reader: &mut impl Read, bound: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    reader.take(bound + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > bound {
        return Err(io::Error::other("larger than expected"));
    }
    Ok(bytes)
}

/// Hashes an entry to its end, keeping its bytes if `keep` (the caller bounded its size).
fn hash_entry(
    reader: &mut impl Read,
    keep: bool,
    progress: &mut dyn FnMut(u64),
) -> io::Result<([u8; 32], Vec<u8>)> {
    let mut sha = Sha256::new();
    let mut kept = Vec::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        sha.update(&buf[..n]);
        if keep {
            kept.extend_from_slice(&buf[..n]);
        }
        progress(n as u64);
    }
    Ok((sha.finalize().into(), kept))
}

fn parse_hash(text: &str) -> Option<Hash> {
    hex::decode(text).ok()?.try_into().ok()
}

/// At most 80 characters of something read from the pack, for messages.
fn excerpt(text: &str) -> String {
    evault_schema::validate::excerpt(text)
}

/// The first line of a key file that is not a comment.
fn first_key_line(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
}

fn str_of<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

/// The facts of `records/<id>.json` the other files are checked against.
fn record_facts(bytes: &[u8], id: &str) -> std::result::Result<RecordFacts, String> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("is not valid JSON ({e}): altered or damaged"))?;
    if str_of(&v, "id") != Some(id) {
        return Err(format!("is not the record {id} its name says"));
    }
    let facts = RecordFacts {
        digest: str_of(&v, "digest").unwrap_or_default().to_string(),
        kind: str_of(&v, "kind").unwrap_or_default().to_string(),
        blueprint: v["blueprint"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        version: v["blueprint"]["version"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    };
    if facts.digest.is_empty() || facts.kind.is_empty() {
        return Err("has no digest or kind: not a record".into());
    }
    Ok(facts)
}

/// Checks `log/<id>.json`: an entry about `record/<id>` whose inclusion in the tree of
/// `tree_size` entries with `root` (the manifest's, which the signed checkpoint must match)
/// its audit path proves.
fn check_proof(
    bytes: &[u8],
    id: &str,
    tree_size: u64,
    root: Option<&Hash>,
    checkpoint_sha: Option<&str>,
) -> std::result::Result<RecordFacts, String> {
    let proof: InclusionProof = serde_json::from_slice(bytes)
        .map_err(|e| format!("is not an inclusion proof ({e}): altered or damaged"))?;
    if proof.record_id != id {
        return Err(format!(
            "is the proof of record {}, not {id}",
            excerpt(&proof.record_id)
        ));
    }
    let entry: Value = serde_json::from_str(&proof.entry)
        .map_err(|e| format!("its log entry is not JSON ({e})"))?;
    let subject = format!("record/{id}");
    if str_of(&entry, "subject") != Some(subject.as_str())
        || entry["index"].as_u64() != Some(proof.log_index)
    {
        return Err(format!(
            "its log entry is not entry {} about {subject}",
            proof.log_index
        ));
    }
    if proof.tree_size != tree_size {
        return Err(format!(
            "is against a tree of {} entries, not the pack's checkpoint of {tree_size}",
            proof.tree_size
        ));
    }
    let leaf = merkle::leaf_hash(proof.entry.as_bytes());
    if proof.leaf_hash != hex::encode(leaf) {
        return Err("its leaf_hash is not the hash of its entry".into());
    }
    let hashes = proof
        .hashes
        .iter()
        .map(|h| parse_hash(h))
        .collect::<Option<Vec<Hash>>>()
        .ok_or("its audit path holds something that is not a SHA-256 hash")?;
    let Some(root) = root else {
        return Err("cannot be checked: the manifest's root hash is unusable".into());
    };
    if proof.root_hash != hex::encode(root) {
        return Err("its root_hash is not the pack checkpoint's".into());
    }
    merkle::verify_inclusion(proof.log_index, tree_size, &leaf, &hashes, root)
        .map_err(|e| format!("the entry's inclusion proof fails: {e}"))?;
    if checkpoint_sha != Some(hex::encode(Sha256::digest(proof.checkpoint.as_bytes())).as_str()) {
        return Err("its checkpoint is not the pack's log/checkpoint".into());
    }
    let state = &entry["state"];
    Ok(RecordFacts {
        digest: str_of(state, "digest").unwrap_or_default().to_string(),
        kind: str_of(state, "kind").unwrap_or_default().to_string(),
        blueprint: str_of(state, "blueprint_name")
            .unwrap_or_default()
            .to_string(),
        version: str_of(state, "blueprint_version")
            .unwrap_or_default()
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_normal_paths_inside_the_top_directory_are_safe() {
        assert_eq!(
            safe_path(b"evault-pack/records/ab.json").as_deref(),
            Some("records/ab.json")
        );
        for bad in [
            &b"evault-pack/../x"[..],
            b"/evault-pack/x",
            b"evault-pack/a//b",
            b"evault-pack/./x",
            b"evault-pack\\x",
            b"evault-pack/a\\b",
            b"other/x",
            b"evault-pack",
            b"evault-pack/",
            b"evault-packx/y",
            b"evault-pack/\xff",
        ] {
            assert_eq!(safe_path(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn cells_stay_on_one_line_and_escape_pipes() {
        assert_eq!(cell("a|b\nc"), "a\\|b c");
        assert_eq!(cell(""), "-");
        assert_eq!(cell(&"x".repeat(400)).chars().count(), 300);
    }

    #[test]
    fn the_signed_text_can_never_be_a_checkpoint() {
        let text = signed_text(b"{}");
        assert!(text.starts_with("evault-pack-manifest/v1\nsha256:"));
        let note = format!("{text}\n\u{2014} x AAAAAAAA\n");
        assert!(crate::verify::sigstore::checkpoint::parse(&note).is_err());
    }
}
