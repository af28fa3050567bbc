//! The endpoints, one module per area. Each handler extracts, authenticates, calls `Vault` on
//! the blocking pool and maps the result; decisions about evidence stay in `evault-core`.

pub mod access;
pub mod blobs;
pub mod export;
pub mod log;
pub mod ops;
pub mod push;
pub mod queries;
pub mod records;
pub mod tokens;
