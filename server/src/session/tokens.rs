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

/// Parses a tokens TOML. At least one token; hashes are 64 hex digits (upper case is
/// accepted and lowered) and unique; limits, when given, are at least 1.
pub fn parse_tokens_toml(text: &str, source: &str) -> Result<Vec<TokenEntry>> {
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
        t.check_keys(&["project", "sha256", "max_running_jobs", "max_queued_jobs"])?;
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
        out.push(TokenEntry {
            project,
            sha256,
            max_running_jobs: limit("max_running_jobs")?,
            max_queued_jobs: limit("max_queued_jobs")?,
        });
    }
    Ok(out)
}

/// Reads and parses a tokens file.
pub fn load_tokens_file(path: &Path) -> Result<Vec<TokenEntry>> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(&source, io_reason(&e)))?;
    parse_tokens_toml(&text, &source)
}
