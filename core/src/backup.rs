//! `evault backup DIR` and `evault restore DIR`: a consistent copy of a vault, taken while it
//! keeps accepting pushes, and a new vault made from one.
//!
//! The index (and the access log) are copied with `VACUUM INTO` inside one read transaction: a
//! consistent snapshot, which neither waits for pushes nor holds them up (WAL). Then every blob
//! that snapshot references is copied. Blob files are immutable and are published before the
//! index row that references them commits, so each one the snapshot names exists and is
//! complete; blobs pushed after the snapshot are not copied (nor referenced). The backup holds
//! the store lock shared throughout (see [`crate::lock`]), so no deletion removes a blob it has
//! yet to copy; tombstones travel in the index like every other row. The manifest
//! `evault-backup.json` is written last: a directory without it is an interrupted backup, and
//! `restore` refuses it. The log key is copied too (owner-only), so that a restored vault can
//! go on signing checkpoints under the same identity.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use chrono::Utc;
use rusqlite::{Connection, OpenFlags};
use serde::{Deserialize, Serialize};

use crate::blob::{blob_relative_path, sync_dir};
use crate::config::CONFIG_FILE;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::record::format_time;
use crate::vault::{BLOB_DIR, INDEX_FILE, TMP_DIR, Vault};

/// The file that marks a complete backup, written last.
pub const MANIFEST_FILE: &str = "evault-backup.json";

const FORMAT: &str = "evault-backup/v1";

/// What a backup holds (`evault-backup.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupManifest {
    pub format: String,
    /// When the snapshot was taken (RFC 3339, UTC).
    pub created_at: String,
    pub records: u64,
    pub blobs: u64,
    /// Bytes of the blob files copied (compressed, as stored).
    pub stored_bytes: u64,
    /// Entries of the tamper-evident log in the snapshot.
    pub log_size: u64,
}

fn io_err(what: &str, path: &Path, e: io::Error) -> Error {
    Error::io_path(what, path, e)
}

/// Builds `target` (which must not exist, or be an empty directory) as a whole: `build` fills
/// a staging directory beside it, which is renamed into place only once complete. On any error
/// the staging directory is removed and `target` is as it was: never a half-written backup or
/// vault.
fn build_whole<T>(target: &Path, flag: &str, build: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    match fs::read_dir(target) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(Error::Invalid(format!(
                    "{flag} {}: not empty; give a new or empty directory",
                    target.display()
                )));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) if target.exists() && !target.is_dir() => {
            return Err(Error::Invalid(format!(
                "{flag} {}: not a directory ({e})",
                target.display()
            )));
        }
        Err(e) => return Err(io_err("cannot read", target, e)),
    }
    let name = target.file_name().ok_or_else(|| {
        Error::Invalid(format!("{flag} {}: not a directory name", target.display()))
    })?;
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(|e| io_err("cannot create", &parent, e))?;
    let staging = parent.join(format!(
        ".{}.partial-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir(&staging).map_err(|e| io_err("cannot create", &staging, e))?;
    let built = build(&staging).and_then(|out| {
        sync_dir(&staging)?;
        // Onto an empty directory or a missing name, a rename is atomic.
        if target.is_dir() {
            fs::remove_dir(target).map_err(|e| io_err("cannot replace", target, e))?;
        }
        fs::rename(&staging, target).map_err(|e| io_err("cannot rename into", target, e))?;
        sync_dir(&parent)?;
        Ok(out)
    });
    if built.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    built
}

/// Copies `from` to `to` through a temporary file, synced, then renamed into place.
fn copy_file(from: &Path, to: &Path) -> Result<u64> {
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).map_err(|e| io_err("cannot create", parent, e))?;
    }
    let tmp = to.with_extension("part");
    let n = fs::copy(from, &tmp).map_err(|e| io_err("cannot copy", from, e))?;
    fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err("cannot sync", &tmp, e))?;
    fs::rename(&tmp, to).map_err(|e| io_err("cannot rename", &tmp, e))?;
    Ok(n)
}

/// Writes a consistent copy of the SQLite database `from` to `to`.
fn snapshot_db(from: &Path, to: &Path) -> Result<()> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(from, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let target = to
        .to_str()
        .ok_or_else(|| Error::Invalid(format!("{}: not a UTF-8 path", to.display())))?;
    conn.execute("VACUUM INTO ?1", [target])?;
    fs::File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err("cannot sync", to, e))?;
    Ok(())
}

/// The blob digests and the counts of a database copy.
fn contents(index: &Path) -> Result<(Vec<String>, u64, u64)> {
    let conn = Connection::open_with_flags(index, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let digests = conn
        .prepare("SELECT digest FROM blobs ORDER BY digest")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    let records: i64 = conn.query_row("SELECT count(*) FROM records", [], |r| r.get(0))?;
    let log_size: i64 = conn.query_row("SELECT count(*) FROM log_entries", [], |r| r.get(0))?;
    Ok((digests, records.max(0) as u64, log_size.max(0) as u64))
}

fn blob_file(dir: &Path, digest: &str) -> Result<PathBuf> {
    let digest: Digest = digest
        .parse()
        .map_err(|e| Error::Integrity(format!("the index holds a malformed digest: {e}")))?;
    Ok(dir.join(BLOB_DIR).join(blob_relative_path(&digest)))
}

impl Vault {
    /// Writes a consistent backup of the vault to `dest` (new or empty), while it keeps
    /// accepting pushes. `progress(done, total)` counts blobs copied.
    pub fn backup(
        &self,
        dest: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<BackupManifest> {
        build_whole(dest, "backup directory", |dest| {
            self.backup_into(dest, progress)
        })
    }

    fn backup_into(
        &self,
        dest: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<BackupManifest> {
        // No deletion (retention sweep, `evault rm`) may remove a blob the snapshot names
        // before it is copied.
        let _store = self.store_lock().shared()?;
        let created_at = format_time(Utc::now());
        snapshot_db(&self.dir().join(INDEX_FILE), &dest.join(INDEX_FILE))?;
        let access = self.dir().join(crate::access::FILE_NAME);
        if access.exists() {
            snapshot_db(&access, &dest.join(crate::access::FILE_NAME))?;
        }
        for file in [CONFIG_FILE, crate::log::KEY_FILE] {
            let from = self.dir().join(file);
            if from.exists() {
                copy_file(&from, &dest.join(file))?;
            }
        }
        let (digests, records, log_size) = contents(&dest.join(INDEX_FILE))?;
        let total = digests.len() as u64;
        let mut stored_bytes = 0;
        for (i, digest) in digests.iter().enumerate() {
            let from = blob_file(self.dir(), digest)?;
            stored_bytes += copy_file(&from, &blob_file(dest, digest)?).map_err(|e| {
                Error::Integrity(format!(
                    "blob {digest} is in the index but could not be copied ({e}); run `evault \
                     fsck`"
                ))
            })?;
            progress(i as u64 + 1, total);
        }
        fs::create_dir_all(dest.join(BLOB_DIR))
            .map_err(|e| io_err("cannot create", &dest.join(BLOB_DIR), e))?;
        let manifest = BackupManifest {
            format: FORMAT.into(),
            created_at,
            records,
            blobs: total,
            stored_bytes,
            log_size,
        };
        let text = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| Error::Internal(format!("cannot encode the backup manifest: {e}")))?;
        let tmp = dest.join(format!("{MANIFEST_FILE}.part"));
        fs::write(&tmp, text).map_err(|e| io_err("cannot write", &tmp, e))?;
        copy_file(&tmp, &dest.join(MANIFEST_FILE))?;
        fs::remove_file(&tmp).map_err(|e| io_err("cannot remove", &tmp, e))?;
        Ok(manifest)
    }
}

/// Makes a new vault in `data_dir` (new or empty) from the backup in `src`, and opens it.
pub fn restore(
    src: &Path,
    data_dir: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<BackupManifest> {
    let manifest_path = src.join(MANIFEST_FILE);
    let text = fs::read(&manifest_path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            Error::Invalid(format!(
                "{}: no {MANIFEST_FILE}: not an evault backup, or an interrupted one",
                src.display()
            ))
        } else {
            io_err("cannot read", &manifest_path, e)
        }
    })?;
    let manifest: BackupManifest = serde_json::from_slice(&text).map_err(|e| {
        Error::Invalid(format!(
            "{}: not a backup manifest: {e}",
            manifest_path.display()
        ))
    })?;
    if manifest.format != FORMAT {
        return Err(Error::Invalid(format!(
            "{}: format '{}' is not {FORMAT}",
            manifest_path.display(),
            manifest.format
        )));
    }
    let damaged = |what: String| {
        Error::Integrity(format!(
            "{}: damaged backup: {what}; use another backup",
            src.display()
        ))
    };
    build_whole(data_dir, "--data-dir", |data_dir| {
        for file in [
            INDEX_FILE,
            crate::access::FILE_NAME,
            CONFIG_FILE,
            crate::log::KEY_FILE,
        ] {
            let from = src.join(file);
            if from.exists() {
                copy_file(&from, &data_dir.join(file))?;
            }
        }
        let (digests, _, _) = contents(&data_dir.join(INDEX_FILE))
            .map_err(|e| damaged(format!("{INDEX_FILE} cannot be read ({e})")))?;
        let total = digests.len() as u64;
        for (i, digest) in digests.iter().enumerate() {
            let from = blob_file(src, digest)?;
            if !from.is_file() {
                return Err(damaged(format!("blob {digest} of its index is missing")));
            }
            copy_file(&from, &blob_file(data_dir, digest)?)?;
            progress(i as u64 + 1, total);
        }
        for dir in [
            data_dir.join(BLOB_DIR).join("sha256"),
            data_dir.join(TMP_DIR),
        ] {
            fs::create_dir_all(&dir).map_err(|e| io_err("cannot create", &dir, e))?;
        }
        // It opens (migrations, the log key) before it is called restored.
        Vault::open(data_dir)
            .map_err(|e| damaged(format!("the restored vault does not open ({e})")))?;
        Ok(())
    })?;
    Ok(manifest)
}
