//! The one error type of the server library.

use thiserror::Error;

/// What went wrong, in words a user can act on: every message names the file and
/// the field (or stage) it is about.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The session (or album, tokens, request) is invalid: `file: field: what`.
    #[error("{0}")]
    InvalidSession(String),
    /// An input file cannot be read or decoded: names the file.
    #[error("{0}")]
    BadAudio(String),
    /// Something this build does not do.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// A request limit (length, channels, IR size) was exceeded.
    #[error("limit exceeded: {0}")]
    Limit(String),
    /// File system trouble, with the path.
    #[error("{0}")]
    Io(String),
    /// The GPU failed (the caller may fall back to the CPU twin).
    #[error("gpu: {0}")]
    Gpu(String),
    /// The job was cancelled.
    #[error("cancelled")]
    Cancelled,
    /// A bug: something that should not happen.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An I/O error about `path`.
    pub fn io(path: impl std::fmt::Display, err: impl std::fmt::Display) -> Self {
        Error::Io(format!("{path}: {err}"))
    }
    /// An invalid session field: `file: field: message`.
    pub fn field(file: &str, field: impl std::fmt::Display, msg: impl std::fmt::Display) -> Self {
        if file.is_empty() {
            Error::InvalidSession(format!("{field}: {msg}"))
        } else {
            Error::InvalidSession(format!("{file}: {field}: {msg}"))
        }
    }
}
