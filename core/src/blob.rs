//! The content-addressed blob store.
//!
//! Blobs are named by the SHA-256 of their original bytes and kept zstd-compressed. Writing is
//! two-step so that a multi-file push can be all-or-nothing: [`BlobStore::stage`] streams the
//! bytes once (hashing and compressing in the same pass) into a private temporary file, and
//! [`BlobStore::publish`] makes a staged blob visible under its name atomically. A blob that is
//! already stored is not written again. Reads verify: [`BlobStore::open`] returns a reader that
//! fails with [`CorruptBlob`] if the stored bytes no longer hash to their name.
//!
//! [`FsBlobStore`] is the embedded backend (a local directory). Scale-out backends (S3-compatible
//! object storage) implement the same trait; staging stays local in every backend.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};

/// Size of the buffer bytes are streamed through.
pub const CHUNK: usize = 256 * 1024;

/// A blob written to a private temporary file, not yet visible in the store. Dropping it deletes
/// the temporary file.
#[derive(Debug)]
pub struct StagedBlob {
    pub digest: Digest,
    /// Original size in bytes.
    pub size: u64,
    /// Compressed size in bytes.
    pub stored_size: u64,
    temp: tempfile::TempPath,
    /// Whether the staging file was flushed to disk. Staging skips the flush when the store
    /// already holds the blob (the copy will be discarded); publishing flushes if it must.
    synced: bool,
}

/// What the store knows about one stored blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobInfo {
    pub digest: Digest,
    /// Compressed size in bytes.
    pub stored_size: u64,
}

/// Why staging stopped.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("read failed: {0}")]
    Read(io::Error),
    #[error(transparent)]
    Store(#[from] Error),
}

/// The stored bytes of a blob do not match its name (or cannot be decompressed).
#[derive(Debug)]
pub struct CorruptBlob {
    pub digest: Digest,
    pub detail: String,
}

impl fmt::Display for CorruptBlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "blob {} is corrupt: {}", self.digest, self.detail)
    }
}

impl std::error::Error for CorruptBlob {}

impl CorruptBlob {
    /// Finds a `CorruptBlob` inside an IO error returned by a verifying reader.
    pub fn from_io(e: &io::Error) -> Option<&CorruptBlob> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<CorruptBlob>())
    }
}

/// A place blobs are kept. Implementations must make `publish` atomic (a blob is either wholly
/// visible under its name or not at all) and durable before it returns.
pub trait BlobStore: Send + Sync {
    /// Streams `reader` into a staged blob, hashing and compressing in one pass, refusing more
    /// than `max_size` bytes.
    fn stage(&self, reader: &mut dyn Read, max_size: u64) -> Result<StagedBlob, StageError>;

    /// A reader of a staged blob's original bytes (decompressing; not verified: the bytes were
    /// hashed while staging).
    fn open_staged(&self, staged: &StagedBlob) -> Result<Box<dyn Read + Send>>;

    /// Makes a staged blob visible under its digest. Returns `false` if the store already held
    /// that blob (the staged copy is discarded).
    fn publish(&self, staged: StagedBlob) -> Result<bool>;

    fn contains(&self, digest: &Digest) -> Result<bool>;

    /// A reader of the blob's original bytes that verifies them as they stream: the final read
    /// fails with an `InvalidData` error wrapping [`CorruptBlob`] on mismatch.
    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send>>;

    /// Every blob in the store (for integrity checks).
    fn list(&self) -> Result<Vec<BlobInfo>>;

    /// Deletes a blob's bytes, durably; `false` if there were none. Only deletion (the sweep,
    /// `evault rm`) calls it, holding the store lock exclusive (see [`crate::lock`]).
    fn remove(&self, digest: &Digest) -> Result<bool>;

    /// Where a blob lives, for messages (a path or URL).
    fn location(&self, digest: &Digest) -> String;
}

/// Blobs as zstd files under `<root>/sha256/<first two hex>/<hex>.zst`.
#[derive(Debug)]
pub struct FsBlobStore {
    root: PathBuf,
    tmp: PathBuf,
    level: i32,
}

impl FsBlobStore {
    /// A store rooted at `root`, staging in `tmp` (which must be on the same file system so that
    /// publishing is a rename).
    pub fn new(root: impl Into<PathBuf>, tmp: impl Into<PathBuf>, level: i32) -> Self {
        FsBlobStore {
            root: root.into(),
            tmp: tmp.into(),
            level,
        }
    }

    /// Creates the directories of an empty store.
    pub fn create(&self) -> Result<()> {
        for dir in [self.root.join("sha256"), self.tmp.clone()] {
            fs::create_dir_all(&dir).map_err(|e| Error::io_path("cannot create", &dir, e))?;
        }
        Ok(())
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.root.join(blob_relative_path(digest))
    }

    fn stage_inner(&self, reader: &mut dyn Read, max_size: u64) -> Result<StagedBlob, StageError> {
        let temp = tempfile::Builder::new()
            .prefix("blob-")
            .suffix(".zst.part")
            .tempfile_in(&self.tmp)
            .map_err(|e| Error::io_path("cannot create a staging file in", &self.tmp, e))?;
        let (file, temp) = temp.into_parts();
        let write_err = |e: io::Error| StageError::Store(Error::io_path("cannot write", &temp, e));
        let mut encoder =
            zstd::stream::write::Encoder::new(BufWriter::with_capacity(CHUNK, file), self.level)
                .map_err(write_err)?;
        let mut hasher = Hasher::new();
        let mut size: u64 = 0;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StageError::Read(e)),
            };
            size += n as u64;
            if size > max_size {
                return Err(StageError::TooLarge { limit: max_size });
            }
            hasher.update(&buf[..n]);
            encoder.write_all(&buf[..n]).map_err(write_err)?;
        }
        let file = encoder
            .finish()
            .and_then(|w| w.into_inner().map_err(|e| e.into_error()))
            .map_err(write_err)?;
        let digest = hasher.finish();
        let synced = !self.path(&digest).is_file();
        if synced {
            file.sync_all().map_err(write_err)?;
        }
        let stored_size = file.metadata().map_err(write_err)?.len();
        Ok(StagedBlob {
            digest,
            size,
            stored_size,
            temp,
            synced,
        })
    }
}

/// Flushes a directory's entries (a rename or a new file in it) to disk.
/// Where a blob's file is, relative to the store's root: `sha256/<2 hex>/<hex>.zst`.
pub(crate) fn blob_relative_path(digest: &Digest) -> PathBuf {
    let hex = digest.hex();
    Path::new("sha256")
        .join(&hex[..2])
        .join(format!("{hex}.zst"))
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io_path("cannot sync directory", dir, e))
}

impl BlobStore for FsBlobStore {
    fn stage(&self, reader: &mut dyn Read, max_size: u64) -> Result<StagedBlob, StageError> {
        self.stage_inner(reader, max_size)
    }

    fn open_staged(&self, staged: &StagedBlob) -> Result<Box<dyn Read + Send>> {
        let file =
            File::open(&staged.temp).map_err(|e| Error::io_path("cannot read", &staged.temp, e))?;
        let decoder =
            zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(CHUNK, file))
                .map_err(|e| Error::io_path("cannot read", &staged.temp, e))?;
        Ok(Box::new(decoder))
    }

    fn publish(&self, staged: StagedBlob) -> Result<bool> {
        let target = self.path(&staged.digest);
        if target.exists() {
            return Ok(false);
        }
        let Some(dir) = target.parent() else {
            return Err(Error::Internal(format!(
                "blob path {} has no parent",
                target.display()
            )));
        };
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(|e| Error::io_path("cannot create", dir, e))?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent)?;
            }
        }
        if !staged.synced {
            File::open(&staged.temp)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io_path("cannot write", &staged.temp, e))?;
        }
        staged
            .temp
            .persist(&target)
            .map_err(|e| Error::io_path("cannot publish blob as", &target, e.error))?;
        sync_dir(dir)?;
        Ok(true)
    }

    fn contains(&self, digest: &Digest) -> Result<bool> {
        Ok(self.path(digest).is_file())
    }

    fn open(&self, digest: &Digest) -> Result<Box<dyn Read + Send>> {
        let path = self.path(digest);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound(format!(
                    "blob {digest} is not in the store"
                )));
            }
            Err(e) => return Err(Error::io_path("cannot open", &path, e)),
        };
        let decoder =
            zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(CHUNK, file))
                .map_err(|e| Error::io_path("cannot read", &path, e))?;
        Ok(Box::new(VerifyingReader {
            inner: decoder,
            hasher: Some(Hasher::new()),
            expected: *digest,
        }))
    }

    fn list(&self) -> Result<Vec<BlobInfo>> {
        let base = self.root.join("sha256");
        let mut out = Vec::new();
        let read = |p: &Path| fs::read_dir(p).map_err(|e| Error::io_path("cannot list", p, e));
        for prefix in read(&base)? {
            let prefix = prefix.map_err(|e| Error::io_path("cannot list", &base, e))?;
            if !prefix.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                continue;
            }
            for entry in read(&prefix.path())? {
                let entry = entry.map_err(|e| Error::io_path("cannot list", &prefix.path(), e))?;
                let name = entry.file_name();
                let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".zst")) else {
                    continue;
                };
                let Ok(digest) = format!("sha256:{hex}").parse::<Digest>() else {
                    continue;
                };
                let stored_size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                out.push(BlobInfo {
                    digest,
                    stored_size,
                });
            }
        }
        out.sort_by_key(|b| b.digest);
        Ok(out)
    }

    fn remove(&self, digest: &Digest) -> Result<bool> {
        let path = self.path(digest);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(Error::io_path("cannot delete", &path, e)),
        }
        if let Some(dir) = path.parent() {
            sync_dir(dir)?;
        }
        Ok(true)
    }

    fn location(&self, digest: &Digest) -> String {
        self.path(digest).display().to_string()
    }
}

/// Decompresses and hashes as it goes; refuses to end cleanly if the bytes are not the ones the
/// blob is named after.
struct VerifyingReader<R> {
    inner: R,
    /// `None` once the end was reached and verified.
    hasher: Option<Hasher>,
    expected: Digest,
}

impl<R: Read> VerifyingReader<R> {
    fn corrupt(&self, detail: String) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            CorruptBlob {
                digest: self.expected,
                detail,
            },
        )
    }
}

impl<R: Read> Read for VerifyingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(hasher) = self.hasher.as_mut() else {
            return Ok(0);
        };
        match self.inner.read(buf) {
            Ok(0) if !buf.is_empty() => {
                let actual = self.hasher.take().map(Hasher::finish);
                match actual {
                    Some(actual) if actual != self.expected => {
                        Err(self.corrupt(format!("stored bytes hash to {actual}")))
                    }
                    _ => Ok(0),
                }
            }
            Ok(n) => {
                hasher.update(&buf[..n]);
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.hasher = None;
                Err(self.corrupt(format!("stored bytes cannot be decompressed ({e})")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, FsBlobStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::new(dir.path().join("blobs"), dir.path().join("tmp"), 3);
        store.create().unwrap();
        (dir, store)
    }

    fn read_all(store: &FsBlobStore, d: &Digest) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        store.open(d).unwrap().read_to_end(&mut out)?;
        Ok(out)
    }

    fn tmp_is_empty(dir: &Path) -> bool {
        fs::read_dir(dir.join("tmp")).unwrap().next().is_none()
    }

    #[test]
    fn stage_publish_read_round_trip() {
        let (dir, store) = store();
        let data = b"{\"bomFormat\":\"CycloneDX\"}".repeat(1000);
        let staged = store.stage(&mut data.as_slice(), u64::MAX).unwrap();
        assert_eq!(staged.digest, Digest::of(&data));
        assert_eq!(staged.size, data.len() as u64);
        assert!(staged.stored_size < staged.size, "compressed");
        let digest = staged.digest;
        assert!(
            !store.contains(&digest).unwrap(),
            "staged blobs are not visible"
        );
        assert!(store.publish(staged).unwrap());
        assert!(store.contains(&digest).unwrap());
        assert_eq!(read_all(&store, &digest).unwrap(), data);
        assert!(tmp_is_empty(dir.path()));
        let on_disk = fs::read(store.location(&digest)).unwrap();
        assert_eq!(
            zstd::decode_all(on_disk.as_slice()).unwrap(),
            data,
            "zstd at rest"
        );
    }

    #[test]
    fn same_bytes_are_stored_once() {
        let (dir, store) = store();
        let a = store.stage(&mut &b"same"[..], u64::MAX).unwrap();
        let b = store.stage(&mut &b"same"[..], u64::MAX).unwrap();
        assert!(store.publish(a).unwrap());
        assert!(!store.publish(b).unwrap());
        assert_eq!(store.list().unwrap().len(), 1);
        assert!(
            tmp_is_empty(dir.path()),
            "the duplicate staging file is removed"
        );
    }

    #[test]
    fn a_duplicate_whose_original_vanished_is_still_published_durably() {
        let (_dir, store) = store();
        let first = store.stage(&mut &b"evidence"[..], u64::MAX).unwrap();
        let digest = first.digest;
        assert!(first.synced, "a new blob is flushed while staging");
        store.publish(first).unwrap();
        let again = store.stage(&mut &b"evidence"[..], u64::MAX).unwrap();
        assert!(!again.synced, "a copy of a stored blob is not flushed");
        fs::remove_file(store.location(&digest)).unwrap();
        assert!(store.publish(again).unwrap());
        assert_eq!(read_all(&store, &digest).unwrap(), b"evidence");
    }

    #[test]
    fn dropped_staging_leaves_nothing() {
        let (dir, store) = store();
        let staged = store.stage(&mut &b"abandoned"[..], u64::MAX).unwrap();
        drop(staged);
        assert!(tmp_is_empty(dir.path()));
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn over_the_limit_is_refused_and_cleaned_up() {
        let (dir, store) = store();
        let err = store.stage(&mut &[0u8; 100][..], 99).unwrap_err();
        assert!(matches!(err, StageError::TooLarge { limit: 99 }));
        assert!(tmp_is_empty(dir.path()));
        assert!(store.stage(&mut &[0u8; 99][..], 99).is_ok());
    }

    #[test]
    fn corruption_is_detected_on_read() {
        let (_dir, store) = store();
        let staged = store
            .stage(&mut &b"original evidence"[..], u64::MAX)
            .unwrap();
        let digest = staged.digest;
        store.publish(staged).unwrap();
        // Replace the stored bytes with a valid zstd frame of other content.
        let forged = zstd::encode_all(&b"forged evidence!!"[..], 3).unwrap();
        fs::write(store.location(&digest), forged).unwrap();
        let err = read_all(&store, &digest).unwrap_err();
        let corrupt = CorruptBlob::from_io(&err).expect("a CorruptBlob");
        assert_eq!(corrupt.digest, digest);
        assert!(
            corrupt.to_string().contains("stored bytes hash to sha256:"),
            "{corrupt}"
        );
        // And garbage that is not zstd at all.
        fs::write(store.location(&digest), b"not zstd").unwrap();
        let err = read_all(&store, &digest).unwrap_err();
        assert!(CorruptBlob::from_io(&err).is_some(), "{err}");
    }

    #[test]
    fn missing_blob_is_not_found() {
        let (_dir, store) = store();
        let err = store.open(&Digest::of(b"never stored")).err().unwrap();
        assert!(matches!(err, Error::NotFound(_)));
    }
}
