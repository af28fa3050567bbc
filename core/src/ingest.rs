//! Ingest: turning files, directories and archives into records, all or nothing.
//!
//! A push runs in two phases:
//!
//! 1. **Stage.** Every file is streamed once: hashed and compressed into a private staging file
//!    by the blob store while a second thread detects its format from the same bytes. Nothing is
//!    visible yet; any failure (unreadable file, path escaping the bundle, a limit exceeded, a
//!    declared kind the content contradicts) drops the staging files and leaves the vault as it
//!    was.
//! 2. **Commit.** Staged blobs are published (atomic renames; already-stored blobs are skipped),
//!    then every record is inserted in a single index transaction.
//!
//! A crash between publishing and committing leaves blobs that no record references; they are
//! harmless, reported by `fsck`, reused by the next push of the same bytes and removed by the
//! next retention sweep. From the moment a push looks at what is stored until its commit, it
//! holds the store lock shared, so a deletion cannot remove a blob it counts on (see
//! [`crate::lock`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Display;
use std::fs::{self, File};
use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use chrono::{DateTime, Utc};
use evault_schema::detect::{self, DetectError, Detection};
use evault_schema::documents::{self, BundleManifest};
use evault_schema::extract::{ExtractError, Limits as ExtractLimits};
use evault_schema::{Format, Kind, validate};

use crate::blob::{BlobStore, StageError, StagedBlob};
use crate::config::Limits;
use crate::error::{Error, Result};
use crate::facts::{self, Facts};
use crate::index::{BlobRow, Status};
use crate::record::{Blueprint, Links, Record, format_time, record_id};
use crate::verification::{self, VerificationStatus};

/// Largest bundle manifest read.
const MANIFEST_LIMIT: u64 = 4 << 20;
/// Files up to this size are read into memory and handled on one thread.
const SMALL_FILE: u64 = 1 << 20;
/// Deepest directory nesting walked.
const MAX_DIR_DEPTH: usize = 64;

/// Where pushed bytes come from.
pub enum PushSource {
    /// A file, directory or archive on the local file system.
    Path(PathBuf),
    /// A stream (standard input, an HTTP upload), recorded under `name`; an archive is expanded
    /// like a file would be.
    Reader {
        name: String,
        reader: Box<dyn Read + Send>,
    },
    /// A directory assembled by the caller (a multipart upload written to a private temporary
    /// directory), pushed like any directory bundle but named `label` in messages, so that the
    /// temporary path never reaches the user.
    Directory { path: PathBuf, label: String },
}

impl std::fmt::Debug for PushSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushSource::Path(p) => f.debug_tuple("Path").field(p).finish(),
            PushSource::Reader { name, .. } => {
                f.debug_struct("Reader").field("name", name).finish()
            }
            PushSource::Directory { path, label } => f
                .debug_struct("Directory")
                .field("path", path)
                .field("label", label)
                .finish(),
        }
    }
}

/// Links given on the command line (or as query parameters); a bundle manifest may supply the
/// ones left out. Values are validated and normalised by ingest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkArgs {
    /// How the caller spells the links, so that messages name what the user typed.
    pub style: LinkStyle,
    pub blueprint: Option<String>,
    pub version: Option<String>,
    pub git_sha: Option<String>,
    pub repo: Option<String>,
    pub run_id: Option<String>,
    pub environment: Option<String>,
    pub subjects: Vec<String>,
}

/// Command-line flags (`--git-sha`) or query parameters (`git_sha`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LinkStyle {
    #[default]
    Flags,
    Query,
}

impl LinkStyle {
    /// The name of a link (by its query-parameter name) in this style.
    fn name(self, link: &'static str) -> &'static str {
        match (self, link) {
            (LinkStyle::Query, l) => l,
            (LinkStyle::Flags, "blueprint") => "--blueprint",
            (LinkStyle::Flags, "version") => "--version",
            (LinkStyle::Flags, "git_sha") => "--git-sha",
            (LinkStyle::Flags, "repo") => "--repo",
            (LinkStyle::Flags, "run_id") => "--run-id",
            (LinkStyle::Flags, "env") => "--env",
            (LinkStyle::Flags, "subject") => "--subject",
            (LinkStyle::Flags, "kind") => "--kind",
            (LinkStyle::Flags, other) => other,
        }
    }
}

#[derive(Debug)]
pub struct PushRequest {
    pub sources: Vec<PushSource>,
    pub links: LinkArgs,
    /// Kind for every file the manifest does not classify.
    pub kind: Option<Kind>,
    pub producer: String,
    /// Expand `.tar`, `.tar.gz` and `.tar.zst` archives into their files (the default); when
    /// false an archive is stored as one opaque blob.
    pub expand_archives: bool,
    /// Blueprint name patterns the producer may push for (`*` wildcards); empty means any.
    pub allowed_blueprints: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PushedRecord {
    #[serde(flatten)]
    pub record: Record,
    pub status: Status,
}

#[derive(Debug, Clone)]
pub struct PushOutcome {
    pub records: Vec<PushedRecord>,
    /// Notes for the user that did not stop the push (skipped links, unrecognised content...).
    pub warnings: Vec<String>,
}

/// One file staged from a push.
struct Staged {
    /// Path inside the bundle (or the file name of a loose file).
    path: String,
    blob: StagedBlob,
    detection: Detection,
}

/// The files of one push argument, and its manifest if it is a bundle that has one.
struct Bundle {
    label: String,
    manifest: Option<BundleManifest>,
    files: Vec<Staged>,
}

/// One push in progress: running totals against the limits, and what must not be pushed.
struct Session<'a> {
    limits: &'a Limits,
    files: u64,
    bytes: u64,
    /// The vault's own directory (canonical): a directory push never walks into it.
    vault_dir: Option<PathBuf>,
    files_staged: u64,
    progress: &'a mut dyn FnMut(PushProgress),
}

/// How far staging has got, reported as files are read (and every few MiB within large files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushProgress {
    pub files_staged: u64,
    pub bytes_staged: u64,
}

/// Bytes between progress reports within one file.
const PROGRESS_EVERY: u64 = 8 << 20;

/// Reports progress while a large file streams through.
struct ProgressReader<'a, R> {
    inner: R,
    report: &'a mut dyn FnMut(PushProgress),
    files_staged: u64,
    bytes_before: u64,
    read: u64,
    next_report: u64,
}

impl<R: Read> Read for ProgressReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read >= self.next_report {
            self.next_report = self.read + PROGRESS_EVERY;
            (self.report)(PushProgress {
                files_staged: self.files_staged,
                bytes_staged: self.bytes_before + self.read,
            });
        }
        Ok(n)
    }
}

impl Session<'_> {
    fn add_file(&mut self, path: &str) -> Result<()> {
        self.files += 1;
        if self.files > self.limits.max_push_files {
            return Err(Error::TooLarge(format!(
                "{path}: the push has more than {} files (limits.max_push_files)",
                self.limits.max_push_files
            )));
        }
        Ok(())
    }

    fn add_bytes(&mut self, path: &str, n: u64) -> Result<()> {
        self.bytes += n;
        if self.bytes > self.limits.max_push_bytes {
            return Err(Error::TooLarge(format!(
                "{path}: the push is larger than {} bytes (limits.max_push_bytes)",
                self.limits.max_push_bytes
            )));
        }
        Ok(())
    }

    fn progress_reader<R: Read>(&mut self, inner: R) -> ProgressReader<'_, R> {
        ProgressReader {
            inner,
            report: &mut *self.progress,
            files_staged: self.files_staged,
            bytes_before: self.bytes,
            read: 0,
            next_report: PROGRESS_EVERY,
        }
    }

    fn bytes_left(&self) -> u64 {
        self.limits.max_push_bytes.saturating_sub(self.bytes)
    }
}

/// The vault a push goes into: its stores, its directory (files inside it are never pushed)
/// and the lock that keeps deletions out (see [`crate::lock`]).
pub struct Target<'a> {
    pub blobs: &'a dyn BlobStore,
    pub index: &'a dyn crate::vault::Index,
    pub dir: &'a Path,
    pub lock: &'a crate::lock::StoreLock,
}

/// Runs a push against `blobs` and `index`. See the module documentation for the guarantees.
pub fn push(
    vault: Target<'_>,
    limits: &Limits,
    mut request: PushRequest,
    now: DateTime<Utc>,
    gate_decisions: bool,
    progress: &mut dyn FnMut(PushProgress),
) -> Result<PushOutcome> {
    let Target {
        blobs,
        index,
        dir: vault_dir,
        lock,
    } = vault;
    if request.sources.is_empty() {
        return Err(Error::Invalid(
            "nothing to push: give at least one file, directory or archive".into(),
        ));
    }
    let flags = FlagLinks::parse(&request.links)?;
    let mut budget = Session {
        limits,
        files: 0,
        bytes: 0,
        vault_dir: fs::canonicalize(vault_dir).ok(),
        files_staged: 0,
        progress,
    };
    let mut warnings = Vec::new();
    let mut bundles = Vec::new();
    for source in std::mem::take(&mut request.sources) {
        bundles.push(stage_source(
            blobs,
            source,
            request.expand_archives,
            &mut budget,
            &mut warnings,
        )?);
    }

    // From here until the commit, what is already stored is taken into account (blobs not
    // written again, facts not extracted again): no deletion may run meanwhile.
    let _store = lock.shared()?;

    // Facts: what each new blob says, extracted once (blobs the index already has facts for
    // are skipped). A document that cannot be read changes how it is recorded (see plan_bundle).
    let mut extracted: HashMap<String, std::result::Result<Facts, ExtractError>> = HashMap::new();
    for bundle in &bundles {
        for file in &bundle.files {
            let digest = file.blob.digest.to_string();
            if extracted.contains_key(&digest) || index.has_facts(&digest)? {
                continue;
            }
            let mut reopen = || {
                blobs
                    .open_staged(&file.blob)
                    .map_err(|e| io::Error::other(e.to_string()))
            };
            let result = facts::extract(
                &file.detection,
                file.blob.size,
                &mut reopen,
                &ExtractLimits::default(),
            );
            extracted.insert(digest, result);
        }
    }

    let ingested_at = format_time(now);
    let mut records: Vec<Record> = Vec::new();
    let mut seen = HashSet::new();
    for bundle in &bundles {
        for record in plan_bundle(
            bundle,
            &flags,
            &request,
            &ingested_at,
            &extracted,
            &mut warnings,
        )? {
            if seen.insert(record.id.clone()) {
                records.push(record);
            }
        }
    }
    if !gate_decisions
        && let Some(r) = records
            .iter()
            .find(|r| r.kind == Kind::PolicyResult || r.format == Format::EvaultPolicyResult)
    {
        return Err(Error::Invalid(format!(
            "{}: a gate decision (kind policy-result) is written by the vault when it checks a \
             gate (evault gate check), never pushed",
            r.source_path
        )));
    }

    // Verification: what the signatures say, under the trust in force. Detached signatures go
    // first so that one pushed with its artifact vouches for it in the same push.
    let trust = crate::vault::load_trust(index)?;
    let staged: HashMap<String, &StagedBlob> = bundles
        .iter()
        .flat_map(|b| &b.files)
        .map(|f| (f.blob.digest.to_string(), &f.blob))
        .collect();
    let mut order: Vec<usize> = (0..records.len()).collect();
    order.sort_by_key(|&i| !is_detached_signature(&records[i]));
    let mut new_vouchers: HashMap<String, Vec<(String, String)>> = HashMap::new();
    let mut verifications: Vec<(String, Vec<String>)> = Vec::with_capacity(records.len());
    for i in order {
        let record = &records[i];
        let bytes = match staged.get(&record.digest) {
            Some(blob) if needs_bytes(record) && blob.size <= verification::VERIFY_LIMIT => {
                let mut bytes = Vec::with_capacity(blob.size as usize);
                blobs
                    .open_staged(blob)?
                    .read_to_end(&mut bytes)
                    .map_err(|e| Error::io("cannot read a staged blob", e))?;
                Some(bytes)
            }
            _ => None,
        };
        let mut vouchers = index.vouchers(&record.digest)?;
        vouchers.extend(
            new_vouchers
                .get(&record.digest)
                .into_iter()
                .flatten()
                .cloned(),
        );
        let check = verification::check(record, bytes.as_deref(), &trust, &vouchers, now);
        if let Some(pattern) = trust.required_for(&record.blueprint.name)
            && check.verification.status != VerificationStatus::Verified
        {
            return Err(Error::Unprocessable(format!(
                "{}: evidence for {} must be verified (evault trust require {pattern}), but it is {}{}",
                record.source_path,
                record.blueprint.name,
                check.verification.status.as_str(),
                check
                    .verification
                    .reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            )));
        }
        if is_detached_signature(record)
            && check.verification.status == VerificationStatus::Verified
        {
            let by = check.verification.by.clone().unwrap_or_default();
            for subject in &record.subjects {
                new_vouchers
                    .entry(subject.clone())
                    .or_default()
                    .push((record.id.clone(), by.clone()));
            }
        }
        records[i].verification = Some(check.verification);
        verifications.push((records[i].id.clone(), check.steps));
    }

    // Commit: blobs first (atomic renames), then every record in one transaction.
    let mut blob_rows: Vec<BlobRow> = Vec::new();
    let mut published = HashSet::new();
    for bundle in bundles {
        for file in bundle.files {
            let digest = file.blob.digest.to_string();
            if published.insert(digest.clone()) {
                blob_rows.push(BlobRow {
                    digest,
                    size: file.blob.size,
                    stored_size: file.blob.stored_size,
                });
                blobs.publish(file.blob)?;
            }
        }
    }
    let facts: Vec<(String, Facts)> = extracted
        .into_iter()
        .filter_map(|(digest, result)| result.ok().map(|f| (digest, f)))
        .collect();
    #[cfg(test)]
    crate::sweep::tests::race_pause();
    let committed = index.commit_push(&blob_rows, &facts, &records, &verifications)?;
    Ok(PushOutcome {
        records: committed
            .into_iter()
            .map(|(record, status)| PushedRecord { record, status })
            .collect(),
        warnings,
    })
}

/// A cosign-style detached signature: its subject is the artifact it signs.
fn is_detached_signature(record: &Record) -> bool {
    matches!(
        record.format,
        Format::SignatureDer | Format::SignatureBase64
    )
}

/// Whether verifying the record needs its bytes (signed formats only).
fn needs_bytes(record: &Record) -> bool {
    matches!(
        record.format,
        Format::DsseEnvelope
            | Format::SigstoreBundle
            | Format::GcbProvenance
            | Format::SignatureDer
            | Format::SignatureBase64
    )
}

// ---------------------------------------------------------------------------------------------
// Links

/// Validated links from flags.
struct FlagLinks {
    style: LinkStyle,
    blueprint: Option<String>,
    version: Option<String>,
    git_sha: Option<String>,
    repo: Option<String>,
    run_id: Option<String>,
    environment: Option<String>,
    subjects: Vec<String>,
}

fn check<T>(flag: &str, r: std::result::Result<T, validate::ValueError>) -> Result<T> {
    r.map_err(|e| Error::Invalid(format!("invalid {flag} '{}': {}", e.value, e.reason)))
}

impl FlagLinks {
    fn parse(args: &LinkArgs) -> Result<Self> {
        let style = args.style;
        let opt =
            |link: &'static str,
             v: &Option<String>,
             f: fn(&str) -> std::result::Result<String, validate::ValueError>| {
                v.as_deref()
                    .map(|v| check(style.name(link), f(v)))
                    .transpose()
            };
        Ok(FlagLinks {
            style,
            blueprint: opt("blueprint", &args.blueprint, validate::blueprint_name)?,
            version: opt("version", &args.version, validate::version)?,
            git_sha: opt("git_sha", &args.git_sha, validate::git_sha)?,
            repo: opt("repo", &args.repo, validate::repo)?,
            run_id: opt("run_id", &args.run_id, validate::run_id)?,
            environment: opt("env", &args.environment, validate::environment)?,
            subjects: args
                .subjects
                .iter()
                .map(|s| check(style.name("subject"), validate::digest(s)))
                .collect::<Result<_>>()?,
        })
    }

    /// A link given both here and in the manifest must agree.
    fn merge(
        &self,
        link: &'static str,
        given: &Option<String>,
        manifest_field: &str,
        manifest: Option<&String>,
    ) -> Result<Option<String>> {
        match (given, manifest) {
            (Some(f), Some(m)) if f != m => Err(Error::Invalid(format!(
                "{} '{f}' conflicts with {manifest_field} '{m}' in {}",
                self.style.name(link),
                documents::BUNDLE_MANIFEST_FILE
            ))),
            (Some(f), _) => Ok(Some(f.clone())),
            (None, m) => Ok(m.cloned()),
        }
    }

    fn required(
        &self,
        value: Option<String>,
        what: &str,
        link: &'static str,
        manifest_field: &str,
    ) -> Result<String> {
        value.ok_or_else(|| {
            Error::Invalid(format!(
                "missing {what}: give {} or set \"{manifest_field}\" in {}",
                self.style.name(link),
                documents::BUNDLE_MANIFEST_FILE
            ))
        })
    }
}

fn plan_bundle(
    bundle: &Bundle,
    flags: &FlagLinks,
    request: &PushRequest,
    ingested_at: &str,
    extracted: &HashMap<String, std::result::Result<Facts, ExtractError>>,
    warnings: &mut Vec<String>,
) -> Result<Vec<Record>> {
    let m = bundle.manifest.as_ref();
    let m_blueprint = m.and_then(|m| m.blueprint.as_ref());
    let name = flags.merge(
        "blueprint",
        &flags.blueprint,
        "blueprint.name",
        m_blueprint.map(|b| &b.name),
    )?;
    let version = flags.merge(
        "version",
        &flags.version,
        "blueprint.version",
        m_blueprint.map(|b| &b.version),
    )?;
    let git_sha = flags.merge(
        "git_sha",
        &flags.git_sha,
        "git_sha",
        m.and_then(|m| m.git_sha.as_ref()),
    )?;
    let base = Links {
        blueprint: Blueprint {
            name: flags.required(name, "blueprint name", "blueprint", "blueprint.name")?,
            version: flags.required(
                version,
                "blueprint version",
                "version",
                "blueprint.version",
            )?,
        },
        git_sha: flags.required(git_sha, "git SHA", "git_sha", "git_sha")?,
        repo: flags.merge("repo", &flags.repo, "repo", m.and_then(|m| m.repo.as_ref()))?,
        run_id: flags.merge(
            "run_id",
            &flags.run_id,
            "run_id",
            m.and_then(|m| m.run_id.as_ref()),
        )?,
        environment: flags.merge(
            "env",
            &flags.environment,
            "environment",
            m.and_then(|m| m.environment.as_ref()),
        )?,
        subjects: flags
            .subjects
            .iter()
            .chain(m.map(|m| &m.subjects).into_iter().flatten())
            .cloned()
            .collect(),
    };

    let name = &base.blueprint.name;
    if !request.allowed_blueprints.is_empty()
        && !request
            .allowed_blueprints
            .iter()
            .any(|p| crate::auth::scope_matches(p, name))
    {
        return Err(Error::Forbidden(format!(
            "{} may push only for blueprints matching {}; this push is for {name}",
            request.producer,
            request.allowed_blueprints.join(", ")
        )));
    }

    if let Some(manifest) = m {
        let present: HashSet<&str> = bundle.files.iter().map(|f| f.path.as_str()).collect();
        for (i, entry) in manifest.files.iter().enumerate() {
            if !present.contains(entry.path.as_str()) {
                return Err(Error::Unprocessable(format!(
                    "{}: {}: files[{i}].path '{}' is not in the bundle",
                    bundle.label,
                    documents::BUNDLE_MANIFEST_FILE,
                    entry.path
                )));
            }
        }
    }

    let mut records = Vec::with_capacity(bundle.files.len());
    for file in &bundle.files {
        let entry = m.and_then(|m| m.files.iter().find(|f| f.path == file.path));
        let fail = |reason: String| Error::Unprocessable(format!("{}: {reason}", file.path));
        let declared_kind = match (entry.and_then(|e| e.kind), request.kind) {
            (Some(a), Some(b)) if a != b => {
                return Err(fail(format!(
                    "{} declares kind {a} but {} is {b}",
                    documents::BUNDLE_MANIFEST_FILE,
                    flags.style.name("kind")
                )));
            }
            (a, b) => a.or(b),
        };
        let declared_format = entry.and_then(|e| e.format);
        let digest = file.blob.digest.to_string();
        // A document that identified itself but cannot be read: refused if it was declared,
        // otherwise recorded as what it has shown itself to be, unknown bytes.
        let unreadable;
        let detection = match extracted.get(&digest) {
            Some(Err(e)) if declared_kind.is_some() || declared_format.is_some() => {
                return Err(fail(format!(
                    "declared as {} but its {} content cannot be read: {e}",
                    declared_kind.map_or_else(
                        || declared_format.map(|f| f.to_string()).unwrap_or_default(),
                        |k| format!("kind {k}")
                    ),
                    file.detection.format.title()
                )));
            }
            Some(Err(e)) => {
                warnings.push(format!(
                    "{}: looks like {} but cannot be read ({e}); stored as unknown",
                    file.path,
                    file.detection.describe()
                ));
                unreadable = Detection::unknown();
                &unreadable
            }
            _ => &file.detection,
        };
        let kind = detect::resolve_kind(detection, declared_kind, declared_format).map_err(fail)?;

        let mut links = base.clone();
        if let Some(doc) = &detection.native {
            let what = detection.format.title();
            if let Some((doc_name, doc_version)) = doc.blueprint() {
                let version_differs = doc_version.is_some_and(|v| v != links.blueprint.version);
                if doc_name != links.blueprint.name || version_differs {
                    return Err(fail(format!(
                        "{what} is for blueprint {doc_name} {} but the push is for {} {}",
                        doc_version.unwrap_or("(any version)"),
                        links.blueprint.name,
                        links.blueprint.version
                    )));
                }
            }
            if let Some(sha) = doc.git_sha()
                && sha != links.git_sha
            {
                return Err(fail(format!(
                    "{what} names git SHA {sha} but the push is for {}",
                    links.git_sha
                )));
            }
            match &links.environment {
                Some(env) if env != doc.environment() => {
                    return Err(fail(format!(
                        "{what} is for environment {} but the push is for {env}",
                        doc.environment()
                    )));
                }
                Some(_) => {}
                None => links.environment = Some(doc.environment().to_string()),
            }
        }
        let subjects: BTreeSet<String> = links
            .subjects
            .iter()
            .chain(entry.map(|e| &e.subjects).into_iter().flatten())
            .chain(&detection.subjects)
            .cloned()
            .collect();
        links.subjects = subjects.into_iter().collect();
        for w in &detection.warnings {
            warnings.push(format!("{}: {w}", file.path));
        }
        records.push(Record {
            id: record_id(&digest, kind, &links),
            kind,
            format: detection.format,
            format_version: detection.format_version.clone(),
            predicate_type: detection.predicate_type.clone(),
            digest,
            size: file.blob.size,
            blueprint: links.blueprint,
            git_sha: links.git_sha,
            repo: links.repo,
            run_id: links.run_id,
            environment: links.environment,
            subjects: links.subjects,
            producer: request.producer.clone(),
            ingested_at: ingested_at.to_string(),
            source_path: file.path.clone(),
            verification: None,
            retention: None,
        });
    }
    Ok(records)
}

// ---------------------------------------------------------------------------------------------
// Sources

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

/// Bytes of decompressed output that show whether a source is a tar archive (one header block).
const SNIFF: usize = 512;
/// Bytes read from the start of a source to recognise archives: enough compressed input for a
/// whole zstd block (at most 128 KiB of content), since zstd emits nothing before a block ends.
const SNIFF_INPUT: usize = 256 * 1024;

fn compression_of(head: &[u8]) -> Compression {
    if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

fn is_tar_header(block: &[u8]) -> bool {
    block.len() >= 263 && &block[257..262] == b"ustar"
}

fn decompressor<'a, R: Read + 'a>(reader: R, c: Compression) -> io::Result<Box<dyn Read + 'a>> {
    Ok(match c {
        Compression::None => Box::new(reader),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
    })
}

/// Reads up to `n` bytes (fewer only at end of input).
fn read_up_to(reader: &mut dyn Read, n: usize) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(n);
    reader.take(n as u64).read_to_end(&mut head)?;
    Ok(head)
}

/// Whether the source starting with `head` is a tar archive (plain, gzip or zstd).
fn archive_compression(head: &[u8]) -> Option<Compression> {
    let c = compression_of(head);
    if c == Compression::None {
        return is_tar_header(head).then_some(c);
    }
    let mut inner = decompressor(Cursor::new(head), c).ok()?;
    let mut block = Vec::new();
    // A truncated stream errors once the head runs out; what was decoded before is enough.
    let _ = (&mut inner).take(SNIFF as u64).read_to_end(&mut block);
    is_tar_header(&block).then_some(c)
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn unreadable(path: &Path, e: io::Error) -> Error {
    Error::Invalid(format!("{}: cannot read: {e}", path.display()))
}

fn stage_source(
    blobs: &dyn BlobStore,
    source: PushSource,
    expand: bool,
    budget: &mut Session<'_>,
    warnings: &mut Vec<String>,
) -> Result<Bundle> {
    let (label, name, mut reader, size): (String, String, Box<dyn Read>, Option<u64>) = match source
    {
        PushSource::Reader { name, reader } => (name.clone(), name, reader, None),
        PushSource::Directory { path, label } => {
            return stage_dir(blobs, &path, label, budget, warnings);
        }
        PushSource::Path(path) => {
            let path = path.as_path();
            let meta = fs::metadata(path).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => {
                    Error::NotFound(format!("{}: no such file or directory", path.display()))
                }
                _ => unreadable(path, e),
            })?;
            if let Some(vault) = &budget.vault_dir
                && fs::canonicalize(path).is_ok_and(|p| p.starts_with(vault))
            {
                return Err(Error::Invalid(format!(
                    "{}: is inside the vault's own directory",
                    path.display()
                )));
            }
            if meta.is_dir() {
                return stage_dir(blobs, path, path.display().to_string(), budget, warnings);
            }
            if !meta.is_file() {
                return Err(Error::Invalid(format!(
                    "{}: not a regular file",
                    path.display()
                )));
            }
            let file = File::open(path).map_err(|e| unreadable(path, e))?;
            (
                path.display().to_string(),
                file_name(path),
                Box::new(file),
                Some(meta.len()),
            )
        }
    };
    let head = read_up_to(&mut reader, SNIFF_INPUT).map_err(|e| read_error(&label, e))?;
    let whole = Cursor::new(head.clone()).chain(reader);
    if expand && let Some(c) = archive_compression(&head) {
        return stage_archive(blobs, &label, whole, c, budget, warnings);
    }
    let name = validate::bundle_path(&name).map_err(|e| Error::Invalid(format!("{label}: {e}")))?;
    budget.add_file(&name)?;
    let staged = stage_file(blobs, &name, whole, size, budget)?;
    Ok(Bundle {
        label,
        manifest: None,
        files: vec![staged],
    })
}

/// Stages one file: blob store and format detection see the same single pass over the bytes.
fn stage_file(
    blobs: &dyn BlobStore,
    path: &str,
    mut reader: impl Read,
    size_hint: Option<u64>,
    budget: &mut Session<'_>,
) -> Result<Staged> {
    let limits = budget.limits;
    let max = limits.max_file_bytes.min(budget.bytes_left());
    let stage_err = |e: StageError| match e {
        StageError::TooLarge { .. } if max < limits.max_file_bytes => Error::TooLarge(format!(
            "{path}: the push is larger than {} bytes (limits.max_push_bytes)",
            limits.max_push_bytes
        )),
        StageError::TooLarge { limit } => Error::TooLarge(format!(
            "{path}: file is larger than {limit} bytes (limits.max_file_bytes)"
        )),
        StageError::Read(e) => read_error(path, e),
        StageError::Store(e) => e,
    };
    let detect_err = |e: DetectError| match e {
        DetectError::Io(e) => read_error(path, e),
        other => Error::Unprocessable(format!("{path}: {other}")),
    };

    let (blob, detection) = if size_hint.is_some_and(|s| s <= SMALL_FILE) {
        let mut data = Vec::new();
        (&mut reader)
            .take(SMALL_FILE + 1)
            .read_to_end(&mut data)
            .map_err(|e| read_error(path, e))?;
        if data.len() as u64 <= SMALL_FILE {
            let detection = detect::detect(data.as_slice()).map_err(detect_err)?;
            let blob = blobs.stage(&mut data.as_slice(), max).map_err(stage_err)?;
            (blob, detection)
        } else {
            let mut reader = budget.progress_reader(Cursor::new(data).chain(reader));
            stage_streaming(blobs, &mut reader, max).map_err(|e| match e {
                Streamed::Stage(e) => stage_err(e),
                Streamed::Detect(e) => detect_err(e),
            })?
        }
    } else {
        let mut reader = budget.progress_reader(reader);
        stage_streaming(blobs, &mut reader, max).map_err(|e| match e {
            Streamed::Stage(e) => stage_err(e),
            Streamed::Detect(e) => detect_err(e),
        })?
    };
    budget.add_bytes(path, blob.size)?;
    budget.files_staged += 1;
    (budget.progress)(PushProgress {
        files_staged: budget.files_staged,
        bytes_staged: budget.bytes,
    });
    Ok(Staged {
        path: path.to_string(),
        blob,
        detection,
    })
}

enum Streamed {
    Stage(StageError),
    Detect(DetectError),
}

/// Stages on this thread while a detector thread reads a copy of the same chunks. The detector
/// may stop early (it has seen enough); the copy then stops too.
fn stage_streaming(
    blobs: &dyn BlobStore,
    reader: &mut dyn Read,
    max: u64,
) -> std::result::Result<(StagedBlob, Detection), Streamed> {
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<Vec<u8>>(16);
        let detector = scope.spawn(move || {
            detect::detect(ChannelReader {
                rx,
                chunk: Vec::new(),
                pos: 0,
            })
        });
        let mut tee = Tee {
            inner: reader,
            tx: Some(tx),
        };
        let staged = blobs.stage(&mut tee, max);
        drop(tee);
        let detected = detector.join().unwrap_or_else(|_| {
            Err(DetectError::Io(io::Error::other(
                "format detection panicked",
            )))
        });
        let staged = staged.map_err(Streamed::Stage)?;
        Ok((staged, detected.map_err(Streamed::Detect)?))
    })
}

/// Passes reads through and sends a copy of every chunk to the detector while it listens.
struct Tee<'a> {
    inner: &'a mut dyn Read,
    tx: Option<mpsc::SyncSender<Vec<u8>>>,
}

impl Read for Tee<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0
            && let Some(tx) = &self.tx
            && tx.send(buf[..n].to_vec()).is_err()
        {
            self.tx = None;
        }
        Ok(n)
    }
}

struct ChannelReader {
    rx: mpsc::Receiver<Vec<u8>>,
    chunk: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() {
            match self.rx.recv() {
                Ok(chunk) => {
                    self.chunk = chunk;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------------
// Directories

fn stage_dir(
    blobs: &dyn BlobStore,
    root: &Path,
    label: String,
    budget: &mut Session<'_>,
    warnings: &mut Vec<String>,
) -> Result<Bundle> {
    let canonical_root = fs::canonicalize(root).map_err(|e| unreadable(root, e))?;
    let mut files: Vec<(String, PathBuf, u64)> = Vec::new();
    let mut manifest = None;
    let mut stack: Vec<(PathBuf, String, usize)> = vec![(root.to_path_buf(), String::new(), 0)];
    while let Some((dir, prefix, depth)) = stack.pop() {
        if depth > MAX_DIR_DEPTH {
            return Err(Error::Unprocessable(format!(
                "{label}: directories nested deeper than {MAX_DIR_DEPTH}"
            )));
        }
        let mut entries: Vec<_> = fs::read_dir(&dir)
            .map_err(|e| unreadable(&dir, e))?
            .collect::<io::Result<_>>()
            .map_err(|e| unreadable(&dir, e))?;
        entries.sort_by_key(|e| e.file_name());
        let mut subdirs = Vec::new();
        for entry in entries {
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                return Err(Error::Unprocessable(format!(
                    "{}: file name is not UTF-8",
                    entry.path().display()
                )));
            };
            let rel = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}/{name}")
            };
            let rel = validate::bundle_path(&rel)
                .map_err(|e| Error::Unprocessable(format!("{label}: {e}")))?;
            let path = entry.path();
            let meta = fs::symlink_metadata(&path).map_err(|e| unreadable(&path, e))?;
            if meta.file_type().is_symlink() {
                let target = fs::canonicalize(&path).map_err(|e| {
                    Error::Unprocessable(format!(
                        "{label}: symlink '{rel}' cannot be followed: {e}"
                    ))
                })?;
                if !target.starts_with(&canonical_root) {
                    return Err(Error::Unprocessable(format!(
                        "{label}: symlink '{rel}' points outside the bundle (to {})",
                        target.display()
                    )));
                }
                warnings.push(format!("{label}: symlink '{rel}' skipped (its target inside the bundle is pushed itself)"));
            } else if meta.is_dir() {
                if budget
                    .vault_dir
                    .as_deref()
                    .is_some_and(|v| fs::canonicalize(&path).is_ok_and(|p| p == v))
                {
                    warnings.push(format!(
                        "{label}: '{rel}' skipped (it is the vault's own directory)"
                    ));
                    continue;
                }
                subdirs.push((path, rel, depth + 1));
            } else if !meta.is_file() {
                return Err(Error::Unprocessable(format!(
                    "{label}: '{rel}' is not a regular file"
                )));
            } else if rel == documents::BUNDLE_MANIFEST_FILE {
                let bytes = read_manifest(
                    File::open(&path).map_err(|e| unreadable(&path, e))?,
                    meta.len(),
                    &label,
                )?;
                manifest = Some(parse_manifest(&bytes, &label)?);
            } else {
                budget.add_file(&rel)?;
                files.push((rel, path, meta.len()));
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    files.sort_by(|a, b| a.0.cmp(&b.0));
    if files.is_empty() {
        return Err(Error::Unprocessable(format!(
            "{label}: nothing to push, the directory holds no files"
        )));
    }
    let mut staged = Vec::with_capacity(files.len());
    for (rel, path, size) in files {
        let file = File::open(&path).map_err(|e| unreadable(&path, e))?;
        staged.push(stage_file(blobs, &rel, file, Some(size), budget)?);
    }
    Ok(Bundle {
        label,
        manifest,
        files: staged,
    })
}

fn read_manifest(reader: impl Read, size: u64, label: &str) -> Result<Vec<u8>> {
    let name = documents::BUNDLE_MANIFEST_FILE;
    if size > MANIFEST_LIMIT {
        return Err(Error::TooLarge(format!(
            "{label}: {name} is larger than {MANIFEST_LIMIT} bytes"
        )));
    }
    let mut bytes = Vec::new();
    reader
        .take(MANIFEST_LIMIT + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Invalid(format!("{label}: {name}: cannot read: {e}")))?;
    if bytes.len() as u64 > MANIFEST_LIMIT {
        return Err(Error::TooLarge(format!(
            "{label}: {name} is larger than {MANIFEST_LIMIT} bytes"
        )));
    }
    Ok(bytes)
}

fn parse_manifest(bytes: &[u8], label: &str) -> Result<BundleManifest> {
    documents::parse_manifest(bytes).map_err(|e| {
        Error::Unprocessable(format!("{label}: {}: {e}", documents::BUNDLE_MANIFEST_FILE))
    })
}

// ---------------------------------------------------------------------------------------------
// Archives

/// Counts decompressed bytes and stops a decompression bomb at the push's byte limit.
struct Limited<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            return Err(LimitExceeded::error(format!(
                "archive expands beyond {} bytes (limits.max_push_bytes)",
                self.limit
            )));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A read error meaning "this input is over a limit". Readers wrapped around pushed bytes (an
/// archive's decompressor here, an HTTP upload in the server) fail with it, and ingest reports
/// it as [`Error::TooLarge`] instead of an unreadable file.
#[derive(Debug)]
pub struct LimitExceeded(pub String);

impl LimitExceeded {
    pub fn error(message: String) -> io::Error {
        io::Error::new(io::ErrorKind::FileTooLarge, LimitExceeded(message))
    }
}

impl Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LimitExceeded {}

/// A failed read of pushed bytes: the user's input, unless a limit was hit.
fn read_error(path: &str, e: io::Error) -> Error {
    match e.get_ref().and_then(|i| i.downcast_ref::<LimitExceeded>()) {
        Some(hit) => Error::TooLarge(format!("{path}: {hit}")),
        None => Error::Invalid(format!("{path}: cannot read: {e}")),
    }
}

/// Normalises a path inside an archive (`./a//b` → `a/b`), refusing anything that could land
/// outside the bundle; the result then obeys the manifest's path rule
/// ([`validate::bundle_path`]). `Ok(None)` is the bundle root itself.
pub fn bundle_path(raw: &[u8]) -> std::result::Result<Option<String>, String> {
    let Ok(text) = std::str::from_utf8(raw) else {
        return Err("path is not UTF-8".into());
    };
    if text.starts_with('/') {
        return Err(format!("absolute path '{text}'"));
    }
    let mut parts = Vec::new();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("path '{text}' escapes the bundle")),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Ok(None);
    }
    validate::bundle_path(&parts.join("/"))
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Whether a link at `entry` (a bundle path) pointing at `target` stays inside the bundle.
/// Symbolic links resolve from the link's directory, hard links from the archive root.
fn link_stays_inside(entry: &str, target: &[u8], symbolic: bool) -> bool {
    let Ok(target) = std::str::from_utf8(target) else {
        return false;
    };
    if target.starts_with('/') || target.contains('\\') {
        return false;
    }
    let mut depth: Vec<&str> = if symbolic {
        let mut parts: Vec<&str> = entry.split('/').collect();
        parts.pop();
        parts
    } else {
        Vec::new()
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if depth.pop().is_none() {
                    return false;
                }
            }
            p => depth.push(p),
        }
    }
    true
}

fn stage_archive(
    blobs: &dyn BlobStore,
    label: &str,
    reader: impl Read,
    compression: Compression,
    budget: &mut Session<'_>,
    warnings: &mut Vec<String>,
) -> Result<Bundle> {
    let limit = budget.limits.max_push_bytes;
    let corrupt = |e: io::Error| -> Error {
        if e.get_ref().is_some_and(|i| i.is::<LimitExceeded>()) {
            return read_error(label, e);
        }
        Error::Unprocessable(format!("{label}: not a readable tar archive: {e}"))
    };
    let inner = decompressor(reader, compression).map_err(corrupt)?;
    let mut archive = tar::Archive::new(Limited {
        inner,
        left: budget.bytes_left(),
        limit,
    });
    let mut files: Vec<Staged> = Vec::new();
    let mut manifest = None;
    let mut paths = HashSet::new();
    for entry in archive.entries().map_err(corrupt)? {
        let entry = entry.map_err(corrupt)?;
        let header = entry.header();
        let raw = entry.path_bytes().into_owned();
        let path =
            bundle_path(&raw).map_err(|why| Error::Unprocessable(format!("{label}: {why}")))?;
        let ty = header.entry_type();
        let Some(path) = path else {
            if ty.is_dir() {
                continue;
            }
            return Err(Error::Unprocessable(format!(
                "{label}: an entry has an empty path"
            )));
        };
        match ty {
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            tar::EntryType::Directory | tar::EntryType::XGlobalHeader => continue,
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .unwrap_or_default();
                let symbolic = ty == tar::EntryType::Symlink;
                if !link_stays_inside(&path, &target, symbolic) {
                    return Err(Error::Unprocessable(format!(
                        "{label}: {} '{path}' points outside the bundle (to '{}')",
                        if symbolic { "symlink" } else { "hard link" },
                        String::from_utf8_lossy(&target)
                    )));
                }
                warnings.push(format!(
                    "{label}: link '{path}' skipped (its target inside the bundle is pushed itself)"
                ));
                continue;
            }
            other => {
                return Err(Error::Unprocessable(format!(
                    "{label}: '{path}' is not a regular file (tar entry type {:?})",
                    other
                )));
            }
        }
        if !paths.insert(path.clone()) {
            return Err(Error::Unprocessable(format!(
                "{label}: '{path}' appears twice in the archive"
            )));
        }
        let size = entry.size();
        if path == documents::BUNDLE_MANIFEST_FILE {
            let bytes = read_manifest(entry, size, label)?;
            manifest = Some(parse_manifest(&bytes, label)?);
            continue;
        }
        budget.add_file(&path)?;
        files.push(stage_file(blobs, &path, entry, Some(size), budget)?);
    }
    if files.is_empty() {
        return Err(Error::Unprocessable(format!(
            "{label}: nothing to push, the archive holds no files"
        )));
    }
    Ok(Bundle {
        label: label.to_string(),
        manifest,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundle_paths_are_normalised_or_refused() {
        assert_eq!(bundle_path(b"./a/b.json"), Ok(Some("a/b.json".into())));
        assert_eq!(bundle_path(b"a//b/"), Ok(Some("a/b".into())));
        assert_eq!(bundle_path(b"./"), Ok(None));
        assert!(
            bundle_path(b"../etc/passwd")
                .unwrap_err()
                .contains("escapes")
        );
        assert!(bundle_path(b"a/../../b").unwrap_err().contains("escapes"));
        assert!(
            bundle_path(b"/etc/passwd")
                .unwrap_err()
                .contains("absolute")
        );
        assert!(bundle_path(b"a\\..\\b").is_err());
        assert!(bundle_path(&[0x66, 0xff]).is_err());
    }

    #[test]
    fn links_must_stay_inside() {
        assert!(link_stays_inside("a/b", b"c", true));
        assert!(link_stays_inside("a/b", b"../c", true));
        assert!(!link_stays_inside("a/b", b"../../c", true));
        assert!(!link_stays_inside("b", b"/etc/passwd", true));
        assert!(link_stays_inside("a/b", b"a/c", false));
        assert!(!link_stays_inside("a/b", b"../c", false));
    }

    #[test]
    fn archives_are_recognised_by_content() {
        // Large, poorly compressible content: zstd emits its first output only once a whole
        // block (up to 128 KiB) has been read, so a short sniff would miss it.
        let mut content = Vec::new();
        let mut x: u32 = 1;
        while content.len() < 1_200_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            content.extend_from_slice(format!("{x:08x}").as_bytes());
        }
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_cksum();
        builder
            .append_data(&mut header, "x.txt", content.as_slice())
            .unwrap();
        let tar = builder.into_inner().unwrap();
        let head = |b: &[u8]| b[..SNIFF_INPUT.min(b.len())].to_vec();
        assert_eq!(archive_compression(&head(&tar)), Some(Compression::None));
        let zst = zstd::encode_all(tar.as_slice(), 3).unwrap();
        assert!(
            zst.len() > SNIFF_INPUT,
            "the test needs a multi-block zstd stream"
        );
        assert_eq!(archive_compression(&head(&zst)), Some(Compression::Zstd));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        io::Write::write_all(&mut gz, &tar).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(archive_compression(&head(&gz)), Some(Compression::Gzip));
        let not_tar = zstd::encode_all(&content[..], 3).unwrap();
        assert_eq!(archive_compression(&head(&not_tar)), None);
        assert_eq!(archive_compression(b"{}"), None);
    }
}
