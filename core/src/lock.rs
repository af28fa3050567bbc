//! The store lock: what keeps deletion from pulling bytes out from under a push.
//!
//! A push decides "this blob is already stored, do not write it again" (and "its facts are
//! already extracted") before its index transaction; a sweep that removed that blob's row and
//! file in between would leave the new record pointing at missing bytes. So every push holds
//! the lock *shared* from that decision until its transaction has committed, and whatever
//! removes blobs (the sweep, `evault rm`) holds it *exclusive* across its transaction and the
//! unlinking of files. Backups hold it shared, so that every blob of their snapshot is still
//! there when they copy it.
//!
//! It is an advisory lock (`flock`) on `<data-dir>/store.lock`, so it works between the server
//! and CLI processes on one vault as well as between threads: each acquisition opens the file
//! anew, and the kernel releases the lock when the holder's file is closed, including when the
//! process is killed.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The lock file's name in the vault directory.
pub const LOCK_FILE: &str = "store.lock";

/// The lock of one vault's blob store.
#[derive(Debug, Clone)]
pub struct StoreLock {
    path: PathBuf,
}

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct StoreGuard {
    _file: File,
}

impl StoreLock {
    pub fn new(vault_dir: &Path) -> Self {
        StoreLock {
            path: vault_dir.join(LOCK_FILE),
        }
    }

    fn open(&self) -> Result<File> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .map_err(|e| Error::io_path("cannot open", &self.path, e))
    }

    /// Creates the (empty) lock file, as `evault init` does; later acquisitions create it too
    /// where it is missing (a vault from before the lock).
    pub fn create(&self) -> Result<()> {
        self.open().map(drop)
    }

    /// Held by pushes and backups: any number at once, never during a deletion.
    pub fn shared(&self) -> Result<StoreGuard> {
        let file = self.open()?;
        file.lock_shared()
            .map_err(|e| Error::io_path("cannot lock", &self.path, e))?;
        Ok(StoreGuard { _file: file })
    }

    /// Held by deletions: waits for every push between its blob decision and its commit.
    pub fn exclusive(&self) -> Result<StoreGuard> {
        let file = self.open()?;
        file.lock()
            .map_err(|e| Error::io_path("cannot lock", &self.path, e))?;
        Ok(StoreGuard { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    #[test]
    fn exclusive_waits_for_shared_holders_and_shared_ones_coexist() {
        let dir = tempfile::tempdir().unwrap();
        let lock = StoreLock::new(dir.path());
        let a = lock.shared().unwrap();
        let b = lock.shared().unwrap();
        let (tx, rx) = mpsc::channel();
        let other = lock.clone();
        let waiter = std::thread::spawn(move || {
            let _g = other.exclusive().unwrap();
            tx.send(()).unwrap();
        });
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        drop(a);
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        drop(b);
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        waiter.join().unwrap();
    }
}
