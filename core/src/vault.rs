//! [`Vault`]: the one entry point the CLI (and later the server) use.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::auth::{self, AuthFailure, Identity, NewToken, Role, TokenInfo, TokenStore};
use crate::blob::{BlobStore, CHUNK, CorruptBlob, FsBlobStore};
use crate::config::{CONFIG_FILE, VaultConfig};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::facts::FactStore;
use crate::index::{BlobRow, IndexStats, MetadataIndex, SqliteIndex};
use crate::ingest::{self, PushOutcome, PushProgress, PushRequest};
use crate::log::check::LogReport;
use crate::log::note::{LogSigner, LogVerifier};
use crate::log::{
    self, CheckpointView, ConsistencyProof, InclusionProof, LogEntry, LogKey, LogStore,
};
use crate::record::{Cursor, Record, RecordFilter, RecordView};
use crate::trust::{Requirement, TrustStore, TrustedIdentityInfo, TrustedKeyInfo, TrustedRootInfo};
use crate::verification::{self, Check, Trust};
use crate::verify::keys::PublicKey;
use crate::verify::sigstore::{IdentityPolicy, TrustedRoot};

pub const INDEX_FILE: &str = "index.db";
pub(crate) const BLOB_DIR: &str = "blobs";
pub(crate) const TMP_DIR: &str = "tmp";

/// Shortest record id prefix accepted.
pub const MIN_ID_PREFIX: usize = 6;

/// An open vault: configuration, blob store and metadata index.
pub struct Vault {
    dir: PathBuf,
    config: VaultConfig,
    blobs: Box<dyn BlobStore>,
    pub(crate) index: Box<dyn Index>,
    lock: crate::lock::StoreLock,
}

/// Everything the vault keeps in its index: records and blobs, tokens, facts and trust.
pub trait Index:
    MetadataIndex
    + TokenStore
    + FactStore
    + TrustStore
    + LogStore
    + crate::query::Snapshots
    + crate::index::Changes
{
}

impl<
    T: MetadataIndex
        + TokenStore
        + FactStore
        + TrustStore
        + LogStore
        + crate::query::Snapshots
        + crate::index::Changes,
> Index for T
{
}

/// Everything trusted: keys, identities, Sigstore roots, requirements.
pub type TrustListing = (
    Vec<TrustedKeyInfo>,
    Vec<TrustedIdentityInfo>,
    Vec<TrustedRootInfo>,
    Vec<Requirement>,
);

/// The trust in force, parsed from the index.
pub(crate) fn load_trust(index: &dyn Index) -> Result<Trust> {
    let broken = |what: &str, name: &str, e: String| {
        Error::Internal(format!(
            "the stored trusted {what} '{name}' cannot be read: {e}"
        ))
    };
    let mut trust = Trust::default();
    for k in index.keys()? {
        let key = PublicKey::from_pem(&k.public_key)
            .map_err(|e| broken("key", &k.name, e.to_string()))?;
        trust.keys.push(verification::Key {
            name: k.name,
            key,
            scopes: k.scopes,
        });
    }
    for i in index.identities()? {
        let san = verification::san_policy(&i.san, i.san_is_regex)
            .map_err(|e| broken("identity", &i.name, e))?;
        trust.identities.push(verification::Identity {
            name: i.name,
            policy: IdentityPolicy {
                san,
                issuer: i.issuer,
            },
            scopes: i.scopes,
        });
    }
    for r in index.roots()? {
        let root = TrustedRoot::from_json(r.document.as_bytes())
            .map_err(|e| broken("root", &r.name, e.to_string()))?;
        trust.roots.push((r.name, root));
    }
    trust.requirements = index
        .requirements()?
        .into_iter()
        .map(|r| r.pattern)
        .collect();
    Ok(trust)
}

/// Result of [`Vault::fsck`].
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FsckReport {
    pub blobs_checked: u64,
    pub bytes_checked: u64,
    pub records: u64,
    /// Problems that mean evidence is damaged or missing.
    pub problems: Vec<FsckProblem>,
    /// Where the index disagrees with the tamper-evident log (see `evault log verify`).
    pub log_problems: Vec<String>,
    /// Blobs no record references: files without an index row (left by an interrupted push or
    /// sweep), and stored blobs whose records were all deleted (a sweep interrupted between
    /// its phases). Harmless; the next `evault retention sweep` removes them.
    pub unreferenced_blobs: Vec<String>,
    /// Events of the access log (`access.db`) whose hash chain was recomputed.
    #[serde(default)]
    pub access_events_checked: u64,
    /// Breaks in the access log's hash chain: an edited, inserted or deleted event.
    #[serde(default)]
    pub access_problems: Vec<String>,
    /// Derived index tables (what each deploy and rollback changed, which live-deployment
    /// answers read) that disagree with the records and documents they are derived from.
    #[serde(default)]
    pub index_problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FsckProblem {
    pub digest: String,
    pub problem: BlobFault,
    pub detail: String,
}

/// What is wrong with a stored blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BlobFault {
    /// The bytes do not hash to the blob's name, or cannot be decompressed.
    Corrupt,
    /// The blob file is gone.
    Missing,
    /// The bytes hash right but their length differs from the index (the index is wrong).
    SizeMismatch,
}

impl std::fmt::Display for BlobFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BlobFault::Corrupt => "corrupt",
            BlobFault::Missing => "missing",
            BlobFault::SizeMismatch => "size-mismatch",
        })
    }
}

/// What [`Vault::init`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitOutcome {
    /// A new vault.
    Created,
    /// A vault was there already; nothing changed.
    Existing,
    /// A vault from before the tamper-evident log (or one whose `init` was interrupted): its
    /// log was started, recording this many existing objects as backfilled entries.
    Adopted { backfilled: u64 },
}

impl Vault {
    /// Creates a vault in `dir` (which may exist but must not already hold a vault), or opens
    /// the one there, starting its log if it has none yet; `actor` is who the log's first
    /// entries name.
    pub fn init(dir: &Path, actor: &str) -> Result<(Vault, InitOutcome)> {
        if dir.join(INDEX_FILE).exists() {
            let backfilled = start_new_log(dir, actor)?;
            let outcome = match backfilled {
                Some(backfilled) => InitOutcome::Adopted { backfilled },
                None => InitOutcome::Existing,
            };
            return Ok((Vault::open(dir)?, outcome));
        }
        fs::create_dir_all(dir).map_err(|e| Error::io_path("cannot create", dir, e))?;
        let config = VaultConfig::default();
        let config_path = dir.join(CONFIG_FILE);
        if !config_path.exists() {
            fs::write(&config_path, config.render())
                .map_err(|e| Error::io_path("cannot write", &config_path, e))?;
        }
        let store = FsBlobStore::new(
            dir.join(BLOB_DIR),
            dir.join(TMP_DIR),
            config.storage.zstd_level,
        );
        store.create()?;
        crate::lock::StoreLock::new(dir).create()?;
        create_log_key(dir)?;
        // The index file is created last: its existence is what marks a vault. Until its log is
        // started (next line) the vault refuses changes, and `init` again finishes the job.
        SqliteIndex::open(&dir.join(INDEX_FILE), true)?;
        start_new_log(dir, actor)?;
        Ok((Vault::open(dir)?, InitOutcome::Created))
    }

    /// Opens the vault in `dir`.
    pub fn open(dir: &Path) -> Result<Vault> {
        let index_path = dir.join(INDEX_FILE);
        if !index_path.is_file() {
            return Err(Error::NotFound(format!(
                "no vault at {} (create one with `evault init --data-dir {}`, or set EVAULT_DATA_DIR)",
                dir.display(),
                dir.display()
            )));
        }
        let config = VaultConfig::load(dir)?;
        let blobs = FsBlobStore::new(
            dir.join(BLOB_DIR),
            dir.join(TMP_DIR),
            config.storage.zstd_level,
        );
        let index = SqliteIndex::open(&index_path, false)?;
        start_log(dir, &index)?;
        Ok(Vault {
            dir: dir.to_path_buf(),
            config,
            blobs: Box::new(blobs),
            index: Box::new(index),
            lock: crate::lock::StoreLock::new(dir),
        })
    }

    /// The lock that keeps deletions and pushes apart (see [`crate::lock`]).
    pub(crate) fn store_lock(&self) -> &crate::lock::StoreLock {
        &self.lock
    }

    pub(crate) fn blob_store(&self) -> &dyn BlobStore {
        self.blobs.as_ref()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &VaultConfig {
        &self.config
    }

    /// Replaces the vault's push limits (a server's configuration may tighten or widen them).
    pub fn with_limits(mut self, limits: crate::config::Limits) -> Self {
        self.config.limits = limits;
        self
    }

    /// Runs a push; `progress` hears how far staging has got. Gate decisions (kind
    /// `policy-result`) are refused: only the vault writes them.
    pub fn push(
        &self,
        request: PushRequest,
        progress: &mut dyn FnMut(PushProgress),
    ) -> Result<PushOutcome> {
        self.push_as(request, false, progress)
    }

    /// [`Vault::push`], letting gate decisions through when `gate_decisions` (the gate's own
    /// records).
    pub(crate) fn push_as(
        &self,
        request: PushRequest,
        gate_decisions: bool,
        progress: &mut dyn FnMut(PushProgress),
    ) -> Result<PushOutcome> {
        ingest::push(
            ingest::Target {
                blobs: self.blobs.as_ref(),
                index: self.index.as_ref(),
                dir: &self.dir,
                lock: &self.lock,
            },
            &self.config.limits,
            request,
            Utc::now(),
            gate_decisions,
            progress,
        )
    }

    /// The record with this id, or the one record whose id starts with this prefix.
    pub fn record(&self, id_or_prefix: &str) -> Result<Record> {
        self.record_in_scope(id_or_prefix, &[])
    }

    /// Like [`Vault::record`], seeing only blueprints matching `scopes` (empty: all). Records
    /// outside them do not exist for the caller: not found, and never named as a rival match
    /// of an ambiguous prefix.
    pub fn record_in_scope(&self, id_or_prefix: &str, scopes: &[String]) -> Result<Record> {
        let wanted = id_or_prefix.trim().to_ascii_lowercase();
        if wanted.len() < MIN_ID_PREFIX || !wanted.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Invalid(format!(
                "invalid record id '{}': expected at least {MIN_ID_PREFIX} hexadecimal characters",
                evault_schema::validate::excerpt(id_or_prefix)
            )));
        }
        let filter = RecordFilter {
            id_prefix: Some(wanted.clone()),
            blueprint_patterns: scopes.to_vec(),
            limit: 4,
            ..Default::default()
        };
        let (mut found, _) = self.index.records(&filter)?;
        match found.len() {
            0 => Err(Error::NotFound(format!("no record {wanted}"))),
            1 => Ok(found.remove(0)),
            n => {
                let mut ids: Vec<&str> = found.iter().map(|r| r.id.as_str()).take(3).collect();
                ids.sort_unstable();
                Err(Error::Invalid(format!(
                    "record id prefix '{wanted}' is ambiguous: it matches {}{}",
                    ids.join(", "),
                    if n > 3 { ", ..." } else { "" }
                )))
            }
        }
    }

    /// What a record's evidence says (see [`crate::summary`]).
    pub fn summary(&self, record: &Record) -> Result<serde_json::Value> {
        crate::summary::summary(self.index.as_ref(), record)
    }

    /// A record with its summary and the legal holds on it.
    pub fn view(&self, record: Record) -> Result<RecordView> {
        let summary = self.summary(&record)?;
        let holds = crate::retention::holds_on_record(&self.holds()?, &record)?;
        Ok(RecordView {
            record,
            summary,
            holds,
        })
    }

    /// Records matching `filter`, newest first, with the cursor of the next page when the page
    /// is full.
    pub fn records(&self, filter: &RecordFilter) -> Result<(Vec<Record>, Option<Cursor>)> {
        self.index.records(filter)
    }

    pub fn count_records(&self, filter: &RecordFilter) -> Result<u64> {
        self.index.count_records(filter)
    }

    pub fn stats(&self) -> Result<IndexStats> {
        self.index.stats()
    }

    /// The index row of a stored blob.
    /// The index row of a stored blob whose bytes are present in the store (a blob the index
    /// knows but the store lost is an integrity failure, not a success without content).
    pub fn blob(&self, digest: &Digest) -> Result<BlobRow> {
        let row = self
            .index
            .blob(&digest.to_string())?
            .ok_or_else(|| Error::NotFound(format!("no blob {digest} in the vault")))?;
        if !self.blobs.contains(digest)? {
            return Err(Error::Integrity(format!(
                "blob {digest} is missing from the store"
            )));
        }
        Ok(row)
    }

    /// Streams a blob's original bytes into `out`, verifying them as they pass. On corruption
    /// the error is [`Error::Integrity`] (what was written before must be discarded by the
    /// caller; [`Vault::verify_blob`] checks without writing).
    pub fn copy_blob(&self, digest: &Digest, out: &mut dyn Write) -> Result<u64> {
        let row = self.blob(digest)?;
        self.copy_checked(digest, &row, out)?
            .map_err(|(_, detail)| Error::Integrity(detail))
    }

    /// Reads a blob to its end and checks it against its name.
    pub fn verify_blob(&self, digest: &Digest) -> Result<u64> {
        self.copy_blob(digest, &mut io::sink())
    }

    /// Copies a blob, telling stored-data faults (inner `Err`) from failures to do the work
    /// (outer `Err`: the output could not be written, the disk failed).
    fn copy_checked(
        &self,
        digest: &Digest,
        row: &BlobRow,
        out: &mut dyn Write,
    ) -> Result<std::result::Result<u64, (BlobFault, String)>> {
        let location = || self.blobs.location(digest);
        let mut reader = match self.blobs.open(digest) {
            Ok(r) => r,
            Err(Error::NotFound(_)) => {
                let detail = format!("blob {digest} is missing from the store ({})", location());
                return Ok(Err((BlobFault::Missing, detail)));
            }
            Err(e) => return Err(e),
        };
        let mut buf = vec![0u8; CHUNK];
        let mut total = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return match CorruptBlob::from_io(&e) {
                        Some(c) => Ok(Err((BlobFault::Corrupt, format!("{c} ({})", location())))),
                        None => Err(Error::io(format!("cannot read blob {digest}"), e)),
                    };
                }
            };
            out.write_all(&buf[..n])
                .map_err(|e| Error::io("cannot write output", e))?;
            total += n as u64;
        }
        if total != row.size {
            let detail = format!(
                "blob {digest} is corrupt: {total} bytes stored, {} recorded",
                row.size
            );
            return Ok(Err((BlobFault::SizeMismatch, detail)));
        }
        Ok(Ok(total))
    }

    /// Creates a token and returns it with its secret (the only time the secret is available).
    pub fn create_token(
        &self,
        name: &str,
        role: Role,
        scopes: &[String],
        lifetime: Option<chrono::Duration>,
        created_by: &str,
    ) -> Result<NewToken> {
        let name = auth::validate_token_name(name).map_err(Error::Invalid)?;
        let scopes = scopes
            .iter()
            .map(|s| auth::validate_scope(s))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(Error::Invalid)?;
        let now = Utc::now();
        let secret = auth::generate_secret()?;
        let info = TokenInfo {
            name,
            role,
            scopes,
            created_at: crate::record::format_time(now),
            created_by: created_by.to_string(),
            expires_at: lifetime.map(|l| crate::record::format_time(now + l)),
            revoked_at: None,
            last_used_at: None,
        };
        self.index
            .insert_token(&info, &auth::secret_hash(&secret))?;
        Ok(NewToken { info, secret })
    }

    pub fn tokens(&self) -> Result<Vec<TokenInfo>> {
        self.index.tokens()
    }

    /// Revokes a token (revoking twice is harmless); returns it as now stored.
    pub fn revoke_token(&self, name: &str, by: &str) -> Result<TokenInfo> {
        self.index
            .revoke_token(name, Utc::now(), by)?
            .ok_or_else(|| Error::NotFound(format!("no token named '{name}'")))
    }

    /// Who holds `secret`, or why it is not accepted.
    pub fn authenticate(&self, secret: &str) -> Result<std::result::Result<Identity, AuthFailure>> {
        auth::authenticate(self.index.as_ref(), secret, Utc::now())
    }

    // ---- trust ------------------------------------------------------------------------------

    fn validated_scopes(scopes: &[String]) -> Result<Vec<String>> {
        scopes
            .iter()
            .map(|s| auth::validate_scope(s))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(Error::Invalid)
    }

    fn trust_name(name: &str) -> Result<String> {
        auth::validate_token_name(name).map_err(|e| Error::Invalid(e.replace("token name", "name")))
    }

    /// Trusts a public key (PEM) for blueprints matching `scopes` (all when empty).
    pub fn add_trusted_key(
        &self,
        name: &str,
        pem: &str,
        scopes: &[String],
        by: &str,
    ) -> Result<TrustedKeyInfo> {
        let key = PublicKey::from_pem(pem)
            .map_err(|e| Error::Invalid(format!("not a usable public key: {e}")))?;
        let info = TrustedKeyInfo {
            name: Self::trust_name(name)?,
            algorithm: key.algorithm().to_string(),
            fingerprint: key.fingerprint(),
            public_key: key.to_pem(),
            scopes: Self::validated_scopes(scopes)?,
            created_at: crate::record::format_time(Utc::now()),
            created_by: by.to_string(),
        };
        self.index.add_key(&info)?;
        Ok(info)
    }

    /// Trusts a keyless identity: certificates whose SAN is `san` (or matches it, as a regular
    /// expression) issued for OIDC issuer `issuer`.
    pub fn add_trusted_identity(
        &self,
        name: &str,
        san: &str,
        san_is_regex: bool,
        issuer: &str,
        scopes: &[String],
        by: &str,
    ) -> Result<TrustedIdentityInfo> {
        verification::san_policy(san, san_is_regex).map_err(Error::Invalid)?;
        if san.trim().is_empty() || issuer.trim().is_empty() {
            return Err(Error::Invalid(
                "an identity needs a SAN and an OIDC issuer".into(),
            ));
        }
        let info = TrustedIdentityInfo {
            name: Self::trust_name(name)?,
            san: san.to_string(),
            san_is_regex,
            issuer: issuer.to_string(),
            scopes: Self::validated_scopes(scopes)?,
            created_at: crate::record::format_time(Utc::now()),
            created_by: by.to_string(),
        };
        self.index.add_identity(&info)?;
        Ok(info)
    }

    /// Adds (or replaces) a Sigstore trusted root under `name`.
    pub fn set_trusted_root(
        &self,
        name: &str,
        document: &[u8],
        by: &str,
    ) -> Result<TrustedRootInfo> {
        TrustedRoot::from_json(document)
            .map_err(|e| Error::Invalid(format!("not a usable Sigstore trusted root: {e}")))?;
        let document = String::from_utf8(document.to_vec())
            .map_err(|_| Error::Invalid("the trusted root is not UTF-8".into()))?;
        let info = TrustedRootInfo {
            name: Self::trust_name(name)?,
            document,
            created_at: crate::record::format_time(Utc::now()),
            created_by: by.to_string(),
        };
        self.index.set_root(&info)?;
        Ok(info)
    }

    /// Makes pushes for blueprints matching `pattern` fail unless their evidence verifies.
    pub fn add_requirement(&self, pattern: &str, by: &str) -> Result<Requirement> {
        let info = Requirement {
            pattern: auth::validate_scope(pattern).map_err(Error::Invalid)?,
            created_at: crate::record::format_time(Utc::now()),
            created_by: by.to_string(),
        };
        self.index.add_requirement(&info)?;
        Ok(info)
    }

    /// Everything trusted, for listing.
    pub fn trust_listing(&self) -> Result<TrustListing> {
        Ok((
            self.index.keys()?,
            self.index.identities()?,
            self.index.roots()?,
            self.index.requirements()?,
        ))
    }

    /// Removes a trusted key, identity, root or requirement (`what` is one of those words).
    pub fn remove_trust(&self, what: &str, name: &str, by: &str) -> Result<()> {
        let removed = match what {
            "key" => self.index.remove_key(name, by)?,
            "identity" => self.index.remove_identity(name, by)?,
            "root" => self.index.remove_root(name, by)?,
            "requirement" => self.index.remove_requirement(name, by)?,
            other => return Err(Error::Internal(format!("unknown trust item {other}"))),
        };
        if removed {
            Ok(())
        } else {
            Err(Error::NotFound(format!("no trusted {what} '{name}'")))
        }
    }

    /// Re-verifies a record under the trust in force now, stores and returns the verdict with
    /// its chain of reasoning.
    pub fn verify_record(&self, record: &Record, by: &str) -> Result<Check> {
        let trust = load_trust(self.index.as_ref())?;
        let digest: Digest = record.digest.parse().map_err(Error::Internal)?;
        let row = self.blob(&digest)?;
        let bytes = if row.size <= verification::VERIFY_LIMIT {
            let mut buf = Vec::with_capacity(row.size as usize);
            self.copy_blob(&digest, &mut buf)?;
            Some(buf)
        } else {
            None
        };
        let vouchers = self.index.vouchers(&record.digest)?;
        let check = verification::check(record, bytes.as_deref(), &trust, &vouchers, Utc::now());
        self.index
            .set_verification(&record.id, &check.verification, &check.steps, by)?;
        Ok(check)
    }

    /// The stored chain of reasoning of a record's verdict.
    pub fn verification_steps(&self, record_id: &str) -> Result<Vec<String>> {
        Ok(self
            .index
            .verification(record_id)?
            .map(|(_, steps)| steps)
            .unwrap_or_default())
    }

    /// Checks every blob against its digest and recorded size, and that every blob file is
    /// accounted for. `progress` is called after each blob with (done, total).
    pub fn fsck(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<FsckReport> {
        let mut report = self.fsck_blobs(progress)?;
        let log = self.verify_log(&LogVerifyOptions::default(), &mut |_, _, _| {})?;
        report.log_problems = log.problems;
        report.index_problems =
            crate::query::on_snapshot(self.index.as_ref(), crate::query::check_changes)?;
        let access = self.dir.join(crate::access::FILE_NAME);
        if access.exists() {
            let chain = crate::access::verify_file(&access, &mut |_, _| {})?;
            report.access_events_checked = chain.events;
            report.access_problems = chain.problems;
        }
        Ok(report)
    }

    /// The blob half of [`Vault::fsck`].
    fn fsck_blobs(&self, progress: &mut dyn FnMut(u64, u64)) -> Result<FsckReport> {
        let rows = self.index.blobs()?;
        let mut report = FsckReport {
            records: self.index.stats()?.records,
            ..Default::default()
        };
        let total = rows.len() as u64;
        for (i, row) in rows.iter().enumerate() {
            let digest: Digest = row
                .digest
                .parse()
                .map_err(|e| Error::Integrity(format!("index holds a malformed digest: {e}")))?;
            match self.copy_checked(&digest, row, &mut io::sink())? {
                Ok(n) => report.bytes_checked += n,
                Err((fault, detail)) => report.problems.push(FsckProblem {
                    digest: row.digest.clone(),
                    problem: fault,
                    detail,
                }),
            }
            report.blobs_checked += 1;
            progress(i as u64 + 1, total);
        }
        let known: std::collections::HashSet<&str> =
            rows.iter().map(|r| r.digest.as_str()).collect();
        for blob in self.blobs.list()? {
            let name = blob.digest.to_string();
            if !known.contains(name.as_str()) {
                report.unreferenced_blobs.push(name);
            }
        }
        // Stored blobs whose records were all deleted, as a sweep interrupted between its
        // phases leaves them: the next sweep removes them.
        report.unreferenced_blobs.extend(
            crate::query::on_snapshot(self.index.as_ref(), |conn| {
                crate::sweep::unreferenced_blobs(conn, usize::MAX >> 1)
            })?
            .into_iter()
            .map(|b| b.digest),
        );
        report.unreferenced_blobs.sort();
        Ok(report)
    }
}

/// Starts the log of the vault in `dir` if the index records no log key yet (a new vault, one
/// from before the log, or an interrupted `init`): creates the key file unless one is there
/// and records the vault's objects under it. `Some(objects recorded)` if it did.
fn start_new_log(dir: &Path, actor: &str) -> Result<Option<u64>> {
    let index = SqliteIndex::open(&dir.join(INDEX_FILE), false)?;
    if index.log_identity()?.is_some() {
        return Ok(None);
    }
    if index.log_has_history()? {
        return Err(Error::Integrity(log::METADATA_DELETED.into()));
    }
    create_log_key(dir)?;
    let path = dir.join(log::KEY_FILE);
    let signer = read_log_key(&path)
        .map_err(Error::Integrity)?
        .ok_or_else(|| Error::Internal(format!("{} vanished", path.display())))?;
    index.log_adopt(&signer, actor).map(Some)
}

/// Creates the log signing key file (mode 0600) unless one is there: a key left by an
/// interrupted `init` is kept.
fn create_log_key(dir: &Path) -> Result<()> {
    let path = dir.join(log::KEY_FILE);
    if path.exists() {
        return Ok(());
    }
    let mut id = [0u8; 8];
    getrandom::fill(&mut id).map_err(|e| Error::Internal(format!("no randomness: {e}")))?;
    let signer =
        LogSigner::generate(&format!("evault/{}", hex::encode(id))).map_err(Error::Internal)?;
    let tmp = dir.join(format!("{}.tmp", log::KEY_FILE));
    let _ = fs::remove_file(&tmp);
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&tmp)
        .map_err(|e| Error::io_path("cannot create", &tmp, e))?;
    file.write_all(format!("{}\n", signer.to_text()).as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| Error::io_path("cannot write", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| Error::io_path("cannot create", &path, e))?;
    crate::blob::sync_dir(dir)?;
    Ok(())
}

/// Reads the log signing key file: `Ok(None)` if there is none.
fn read_log_key(path: &Path) -> std::result::Result<Option<LogSigner>, String> {
    match fs::read_to_string(path) {
        Ok(text) => LogSigner::from_text(&text)
            .map(Some)
            .map_err(|e| format!("the log signing key {} is unusable: {e}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!(
            "cannot read the log signing key {}: {e}",
            path.display()
        )),
    }
}

/// Gives the index its signing key; without a usable key (or a log started under it) the vault
/// opens read-only and every change fails saying why.
fn start_log(dir: &Path, index: &SqliteIndex) -> Result<()> {
    let path = dir.join(log::KEY_FILE);
    let signer = match (index.log_identity()?, read_log_key(&path)) {
        (_, Err(e)) => Err(e),
        (Some((_, vkey)), Ok(Some(signer))) => {
            if signer.verifier().to_vkey() == vkey {
                Ok(signer)
            } else {
                let recorded = LogVerifier::from_vkey(&vkey)
                    .map(|v| v.key_id())
                    .unwrap_or_else(|_| "?".into());
                Err(format!(
                    "the log signing key {} (key {}) is not the key this vault's log is signed \
                     with (key {recorded}): restore the original key; `evault log verify` \
                     reports the details",
                    path.display(),
                    signer.verifier().key_id()
                ))
            }
        }
        (Some((_, vkey)), Ok(None)) => Err(format!(
            "the log signing key {} is missing: restore it from a backup (the log is signed \
             with {vkey}); until then the vault can be read but not changed",
            path.display()
        )),
        (None, _) if index.log_has_history()? => Err(log::METADATA_DELETED.into()),
        (None, Ok(Some(_))) => Err(format!(
            "this vault's log was never started (an interrupted `evault init`?): run `evault \
             init --data-dir {}` to finish it",
            dir.display()
        )),
        (None, Ok(None)) => Err(format!(
            "this vault has no log signing key yet (it predates the tamper-evident log): run \
             `evault init --data-dir {}` once to create it and record the vault's current state",
            dir.display()
        )),
    };
    index.set_log_signer(signer);
    Ok(())
}

/// What `evault log verify` is given besides the vault.
#[derive(Debug, Clone, Default)]
pub struct LogVerifyOptions {
    /// An older signed checkpoint (the note's text) the log must still be consistent with.
    pub old_checkpoint: Option<String>,
    /// The verifier key the log must be signed with, from outside the vault.
    pub pinned_key: Option<String>,
    /// Also read every blob and check it against its digest and size.
    pub blobs: bool,
}

fn hexes(hashes: &[log::merkle::Hash]) -> Vec<String> {
    hashes.iter().map(hex::encode).collect()
}

impl Vault {
    /// Whether the vault can record changes: `Err` says why not (its log signing key is
    /// missing, unreadable or not the key its log is signed with).
    pub fn writable(&self) -> Result<()> {
        self.index.log_writable()
    }

    /// Who signs the log.
    pub fn log_key(&self) -> Result<LogKey> {
        let (origin, vkey) = self.index.log_identity()?.ok_or_else(|| {
            Error::NotFound("this vault's log is not started; run `evault init`".into())
        })?;
        let verifier = LogVerifier::from_vkey(&vkey)
            .map_err(|e| Error::Integrity(format!("the recorded log key is unusable: {e}")))?;
        Ok(LogKey {
            origin,
            algorithm: "ed25519".into(),
            key_id: verifier.key_id(),
            public_key: base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                verifier.public_key(),
            ),
            vkey,
        })
    }

    fn log_verifier(&self) -> Result<LogVerifier> {
        LogVerifier::from_vkey(&self.log_key()?.vkey)
            .map_err(|e| Error::Integrity(format!("the recorded log key is unusable: {e}")))
    }

    /// Checks a stored checkpoint's signature and that the stored tree has its root: what is
    /// served is always what the log holds (`O(log n)` reads).
    fn checked_checkpoint(&self, stored: log::StoredCheckpoint) -> Result<CheckpointView> {
        let cp = self.log_verifier()?.open(&stored.note).map_err(|e| {
            Error::Integrity(format!(
                "the stored checkpoint at {} entries: {e}",
                stored.size
            ))
        })?;
        if cp.size != stored.size || cp.root != self.index.log_root(cp.size)? {
            return Err(Error::Integrity(format!(
                "the stored checkpoint at {} entries does not match the log; run `evault log verify`",
                stored.size
            )));
        }
        Ok(CheckpointView {
            origin: cp.origin,
            size: cp.size,
            root_hash: hex::encode(cp.root),
            signed_at: stored.signed_at,
            note: stored.note,
        })
    }

    /// The newest signed checkpoint.
    pub fn log_checkpoint(&self) -> Result<CheckpointView> {
        let stored = self.index.log_latest_checkpoint()?.ok_or_else(|| {
            Error::NotFound("this vault's log has no checkpoint yet; run `evault init`".into())
        })?;
        self.checked_checkpoint(stored)
    }

    /// The inclusion proof of a record's ingestion entry against the newest checkpoint. The
    /// record must be visible under `scopes` (empty: all).
    pub fn log_prove(&self, id_or_prefix: &str, scopes: &[String]) -> Result<InclusionProof> {
        let record = self.record_in_scope(id_or_prefix, scopes)?;
        let index = self.index.log_record_entry(&record.id)?.ok_or_else(|| {
            Error::Integrity(format!(
                "record {} has no log entry; run `evault log verify`",
                record.id
            ))
        })?;
        let checkpoint = self.log_checkpoint()?;
        let entry = self
            .index
            .log_entry(index)?
            .ok_or_else(|| Error::Integrity(format!("log entry {index} is missing")))?;
        let subject = log::state::RECORDS.subject(&record.id);
        let about = serde_json::from_str::<serde_json::Value>(&entry)
            .ok()
            .and_then(|e| e["subject"].as_str().map(str::to_string));
        if about.as_deref() != Some(subject.as_str()) {
            return Err(Error::Integrity(format!(
                "record {} names log entry {index} as its ingestion, but that entry is not about                  it; run `evault log verify`",
                record.id
            )));
        }
        let proof = self.index.log_inclusion_proof(index, checkpoint.size)?;
        let leaf = log::merkle::leaf_hash(entry.as_bytes());
        let root = self.index.log_root(checkpoint.size)?;
        log::merkle::verify_inclusion(index, checkpoint.size, &leaf, &proof, &root).map_err(
            |e| {
                Error::Integrity(format!(
                    "the stored log does not prove entry {index} ({e}); run `evault log verify`"
                ))
            },
        )?;
        Ok(InclusionProof {
            record_id: record.id,
            log_index: index,
            tree_size: checkpoint.size,
            entry,
            leaf_hash: hex::encode(leaf),
            hashes: hexes(&proof),
            root_hash: checkpoint.root_hash,
            checkpoint: checkpoint.note,
        })
    }

    /// The consistency proof from the tree of `from` entries to that of `to` (default: the
    /// newest checkpoint), which must have been signed.
    pub fn log_consistency(&self, from: u64, to: Option<u64>) -> Result<ConsistencyProof> {
        let checkpoint = match to {
            None => self.log_checkpoint()?,
            Some(size) => {
                let stored = self.index.log_checkpoint_at(size)?.ok_or_else(|| {
                    Error::NotFound(format!(
                        "no checkpoint was signed at {size} entries; leave out the target size \
                         to prove consistency with the newest checkpoint"
                    ))
                })?;
                self.checked_checkpoint(stored)?
            }
        };
        if from > checkpoint.size {
            return Err(Error::Invalid(format!(
                "cannot prove consistency from {from} entries: the log holds {} at that checkpoint",
                checkpoint.size
            )));
        }
        let proof = self.index.log_consistency_proof(from, checkpoint.size)?;
        Ok(ConsistencyProof {
            from,
            to: checkpoint.size,
            hashes: hexes(&proof),
            from_root_hash: hex::encode(self.index.log_root(from)?),
            root_hash: checkpoint.root_hash,
            checkpoint: checkpoint.note,
        })
    }

    /// Up to `limit` entries from index `start`.
    pub fn log_entries(&self, start: u64, limit: u64) -> Result<Vec<LogEntry>> {
        Ok(self
            .index
            .log_entries(start, limit)?
            .into_iter()
            .map(|(index, entry)| LogEntry { index, entry })
            .collect())
    }

    /// Recomputes the log, checks its signatures (and an older checkpoint), compares every
    /// object in the index with its newest entry and, with `options.blobs`, every blob's bytes
    /// with its digest. `progress` hears (phase, done, total).
    pub fn verify_log(
        &self,
        options: &LogVerifyOptions,
        progress: &mut dyn FnMut(&str, u64, u64),
    ) -> Result<LogReport> {
        let pinned = options
            .pinned_key
            .as_deref()
            .map(LogVerifier::from_vkey)
            .transpose()
            .map_err(|e| Error::Invalid(format!("invalid --key: {e}")))?;
        let key_file = match read_log_key(&self.dir.join(log::KEY_FILE)) {
            Ok(Some(signer)) => Some(Ok(signer.verifier())),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        };
        let anchors = log::check::Anchors {
            pinned: pinned.as_ref(),
            key_file,
            old_checkpoint: options.old_checkpoint.as_deref(),
        };
        let mut problems = log::check::Problems::default();
        let mut report = self.index.log_verify(&anchors, &mut problems, progress)?;
        if options.blobs {
            let blobs = self.fsck_blobs(&mut |done, total| progress("blobs", done, total))?;
            report.blobs_checked = blobs.blobs_checked;
            report.bytes_checked = blobs.bytes_checked;
            for p in blobs.problems {
                problems.add("blobs", p.detail);
            }
        }
        report.problems = problems.into_vec();
        Ok(report)
    }
}

/// What evidence packs (`crate::pack`) need from the vault: proofs against one chosen
/// checkpoint, verified blob readers, a scratch file and signatures with the log key.
impl Vault {
    /// The inclusion proof of `record`'s ingestion entry against `checkpoint` (one the vault
    /// signed, e.g. from [`Vault::log_checkpoint`]), so that many proofs share one tree head.
    pub fn log_prove_at(
        &self,
        record: &Record,
        checkpoint: &CheckpointView,
    ) -> Result<InclusionProof> {
        let index = self.index.log_record_entry(&record.id)?.ok_or_else(|| {
            Error::Integrity(format!(
                "record {} has no log entry; run `evault log verify`",
                record.id
            ))
        })?;
        if index >= checkpoint.size {
            return Err(Error::Internal(format!(
                "record {}'s log entry {index} is not in the checkpoint of {} entries",
                record.id, checkpoint.size
            )));
        }
        let entry = self
            .index
            .log_entry(index)?
            .ok_or_else(|| Error::Integrity(format!("log entry {index} is missing")))?;
        let subject = log::state::RECORDS.subject(&record.id);
        let about = serde_json::from_str::<serde_json::Value>(&entry)
            .ok()
            .and_then(|e| e["subject"].as_str().map(str::to_string));
        if about.as_deref() != Some(subject.as_str()) {
            return Err(Error::Integrity(format!(
                "record {} names log entry {index} as its ingestion, but that entry is not \
                 about it; run `evault log verify`",
                record.id
            )));
        }
        let root: log::merkle::Hash = hex::decode(&checkpoint.root_hash)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| Error::Internal("a checkpoint's root is not a hash".into()))?;
        let proof = self.index.log_inclusion_proof(index, checkpoint.size)?;
        let leaf = log::merkle::leaf_hash(entry.as_bytes());
        log::merkle::verify_inclusion(index, checkpoint.size, &leaf, &proof, &root).map_err(
            |e| {
                Error::Integrity(format!(
                    "the stored log does not prove entry {index} ({e}); run `evault log verify`"
                ))
            },
        )?;
        Ok(InclusionProof {
            record_id: record.id.clone(),
            log_index: index,
            tree_size: checkpoint.size,
            entry,
            leaf_hash: hex::encode(leaf),
            hashes: hexes(&proof),
            root_hash: checkpoint.root_hash.clone(),
            checkpoint: checkpoint.note.clone(),
        })
    }

    /// A reader of a blob's original bytes that verifies them as they stream (the final read
    /// fails on a mismatch), with the blob's index row (its original size).
    pub fn open_blob(&self, digest: &Digest) -> Result<(BlobRow, Box<dyn Read + Send>)> {
        let row = self.blob(digest)?;
        Ok((row, self.blobs.open(digest)?))
    }

    /// An anonymous scratch file in the vault's staging directory (deleted when dropped), or in
    /// the system's temporary directory if the vault's cannot be written.
    pub fn scratch_file(&self) -> Result<fs::File> {
        tempfile::tempfile_in(self.dir.join(TMP_DIR))
            .or_else(|_| tempfile::tempfile())
            .map_err(|e| Error::io("cannot create a temporary file", e))
    }

    /// Signs a signed note's `text` with the log key (see [`LogSigner::sign_note`]), after
    /// checking the key file is the key the log is signed with.
    pub fn log_sign_note(&self, text: &str) -> Result<String> {
        let path = self.dir.join(log::KEY_FILE);
        let signer = read_log_key(&path)
            .map_err(Error::Integrity)?
            .ok_or_else(|| {
                Error::Integrity(format!(
                    "the log signing key {} is missing: it is needed to sign",
                    path.display()
                ))
            })?;
        if signer.verifier().to_vkey() != self.log_key()?.vkey {
            return Err(Error::Integrity(format!(
                "the log signing key {} is not the key this vault's log is signed with; run \
                 `evault log verify`",
                path.display()
            )));
        }
        signer.sign_note(text).map_err(Error::Internal)
    }
}
