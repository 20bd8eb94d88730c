//! The tokens file (CONTRACT.md, "The tokens file"): which token hash opens which project.

use std::collections::HashMap;
use std::path::Path;

use super::parse::io_reason;
use super::reader::Doc;
use crate::{Error, Result};

/// One `[[token]]`: the SHA-256 of a token and the project it opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenEntry {
    /// The project the token opens.
    pub project: String,
    /// Lower-case hex SHA-256 of the token's UTF-8 bytes (64 digits).
    pub sha256: String,
    /// Jobs of this project allowed to run at once (None: the server's default).
    pub max_running_jobs: Option<u32>,
    /// Jobs of this project allowed to wait in the queue (None: the server's default).
    pub max_queued_jobs: Option<u32>,
}

/// A token's quotas beyond the job counts (kept apart from [`TokenEntry`] so code that
/// builds entries keeps compiling). `None`: the server's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TokenQuota {
    /// Bytes of one upload.
    pub max_upload_bytes: Option<u64>,
    /// Bytes of stems the project may own in the store (deduplicated bytes count
    /// for every project that owns them).
    pub max_stored_bytes: Option<u64>,
    /// Wall-clock seconds one job may render before it is stopped.
    pub max_job_seconds: Option<f64>,
    /// Seconds of mix timeline per job (turned into frames at the session rate).
    pub max_mix_seconds: Option<f64>,
}

/// The keys a `[[token]]` may have.
const TOKEN_KEYS: &[&str] = &[
    "project",
    "sha256",
    "max_running_jobs",
    "max_queued_jobs",
    "max_upload_bytes",
    "max_stored_bytes",
    "max_job_seconds",
    "max_mix_seconds",
];

/// Parses a tokens TOML. At least one token; hashes are 64 hex digits (upper case is
/// accepted and lowered) and unique; limits, when given, are at least 1.
pub fn parse_tokens_toml(text: &str, source: &str) -> Result<Vec<TokenEntry>> {
    Ok(parse_tokens_with_quotas(text, source)?
        .into_iter()
        .map(|(e, _)| e)
        .collect())
}

/// [`parse_tokens_toml`] with each token's [`TokenQuota`].
pub fn parse_tokens_with_quotas(text: &str, source: &str) -> Result<Vec<(TokenEntry, TokenQuota)>> {
    let doc = Doc { text, source };
    let parsed = doc.parse()?;
    let root = doc.root(&parsed);
    root.check_keys(&["token"])?;
    let tables = root.tables("token", "[[token]]")?;
    if tables.is_empty() {
        return Err(Error::field(
            source,
            "token",
            "no [[token]] entries (nobody could connect)",
        ));
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(tables.len());
    for (i, t) in tables.into_iter().enumerate() {
        t.check_keys(TOKEN_KEYS)?;
        let project = t.str_req("project")?;
        if project.trim().is_empty() {
            return Err(Error::field(
                source,
                t.field("project"),
                "must not be empty",
            ));
        }
        let raw = t.str_req("sha256")?;
        let sha256 = raw.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::field(
                source,
                t.field("sha256"),
                format_args!(
                    "{raw:?} is not a SHA-256 in hex (64 hex digits; the token itself is never stored)"
                ),
            ));
        }
        if let Some(j) = seen.insert(sha256.clone(), i) {
            return Err(Error::field(
                source,
                t.field("sha256"),
                format_args!("the same hash as token[{j}] (one token, one project)"),
            ));
        }
        let limit = |key: &str| -> Result<Option<u32>> {
            match t.u32_opt(key)? {
                Some(0) => Err(Error::field(
                    source,
                    t.field(key),
                    "0 is below 1 (omit the key for the server's default)",
                )),
                v => Ok(v),
            }
        };
        // Positive numbers; byte counts whole (TOML integers, or floats like 1e9).
        let positive = |key: &str, whole: bool| -> Result<Option<f64>> {
            match t.f64_opt(key)? {
                Some(v) if !(v.is_finite() && v > 0.0 && v <= 9.0e15) => Err(Error::field(
                    source,
                    t.field(key),
                    format_args!(
                        "{v} is not a positive number (omit the key for the server's default)"
                    ),
                )),
                Some(v) if whole && v.fract() != 0.0 => Err(Error::field(
                    source,
                    t.field(key),
                    format_args!("{v} is not a whole number of bytes"),
                )),
                v => Ok(v),
            }
        };
        let quota = TokenQuota {
            max_upload_bytes: positive("max_upload_bytes", true)?.map(|v| v as u64),
            max_stored_bytes: positive("max_stored_bytes", true)?.map(|v| v as u64),
            max_job_seconds: positive("max_job_seconds", false)?,
            max_mix_seconds: positive("max_mix_seconds", false)?,
        };
        out.push((
            TokenEntry {
                project,
                sha256,
                max_running_jobs: limit("max_running_jobs")?,
                max_queued_jobs: limit("max_queued_jobs")?,
            },
            quota,
        ));
    }
    Ok(out)
}

/// Reads and parses a tokens file.
pub fn load_tokens_file(path: &Path) -> Result<Vec<TokenEntry>> {
    Ok(load_tokens_with_quotas(path)?
        .into_iter()
        .map(|(e, _)| e)
        .collect())
}

/// Reads and parses a tokens file, with each token's quotas.
pub fn load_tokens_with_quotas(path: &Path) -> Result<Vec<(TokenEntry, TokenQuota)>> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(&source, io_reason(&e)))?;
    parse_tokens_with_quotas(&text, &source)
}
