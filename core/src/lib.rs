//! # evault-core
//!
//! The engine: everything that does IO. A [`Vault`] combines a content-addressed
//! [`blob::BlobStore`] (zstd at rest, atomic publication, verified reads) with a
//! [`index::MetadataIndex`] (records and their links), and runs [`ingest`] (all-or-nothing pushes
//! of files, directories and archives) and queries over them.
//!
//! Both storage layers sit behind narrow traits so that PostgreSQL and S3-compatible object
//! storage can be added as scale-out backends without touching ingest or queries. The decisions
//! that need no IO live in `evault-schema` (what a file is) and `evault-retention` (how long it
//! is kept).

pub mod access;
pub mod auth;
pub mod backup;
pub mod blob;
pub mod config;
pub mod digest;
pub mod error;
pub mod facts;
pub mod gate;
pub mod index;
pub mod ingest;
pub mod lock;
pub mod log;
pub mod pack;
pub mod query;
pub mod record;
pub mod retention;
pub mod summary;
pub mod sweep;
#[cfg(test)]
mod testing;
pub mod trust;
pub mod vault;
pub mod verification;
pub mod verify;

pub use digest::Digest;
pub use error::{Error, Result};
pub use record::{Blueprint, Cursor, Links, Record, RecordFilter, RecordView};
pub use vault::Vault;
