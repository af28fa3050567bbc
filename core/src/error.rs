//! One error type for the engine, whose variants are the categories users act on.
//!
//! Each category maps to a stable CLI exit code (and, later, an HTTP status): the shells
//! translate, they never reinterpret.

use std::io;
use std::path::Path;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request or the pushed content is wrong; the user can fix it. Exit code 2.
    #[error("{0}")]
    Invalid(String),
    /// The pushed content is wrong: it contradicts what it is declared to be, a document that
    /// identifies itself is broken, a bundle path escapes the bundle. Exit code 2 (HTTP 422).
    #[error("{0}")]
    Unprocessable(String),
    /// Input over a configured limit. Exit code 2.
    #[error("{0}")]
    TooLarge(String),
    /// The thing asked for does not exist. Exit code 3.
    #[error("{0}")]
    NotFound(String),
    /// The request contradicts what exists (e.g. a token name already taken). Exit code 2.
    #[error("{0}")]
    Conflict(String),
    /// No valid credentials. Exit code 6.
    #[error("{0}")]
    Unauthenticated(String),
    /// Valid credentials, but not allowed to do this. Exit code 6.
    #[error("{0}")]
    Forbidden(String),
    /// Stored data no longer matches what was recorded. Exit code 4.
    #[error("{0}")]
    Integrity(String),
    /// The file system failed us.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// The metadata index failed us.
    #[error("metadata index: {0}")]
    Index(#[from] rusqlite::Error),
    /// A bug or an impossible state.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The process exit code for this error (see `docs/cli.md`).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Invalid(_)
            | Error::Unprocessable(_)
            | Error::TooLarge(_)
            | Error::Conflict(_) => 2,
            Error::Unauthenticated(_) | Error::Forbidden(_) => 6,
            Error::NotFound(_) => 3,
            Error::Integrity(_) => 4,
            Error::Io { .. } | Error::Index(_) | Error::Internal(_) => 1,
        }
    }

    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn io_path(action: &str, path: &Path, source: io::Error) -> Self {
        Error::Io {
            context: format!("{action} {}", path.display()),
            source,
        }
    }
}
