//! The `bounce` client library: command implementations behind the CLI.
//!
//! # Brief overview
//! - [`cli`]: the command line of CONTRACT.md, parsed by clap (nothing else there).
//! - [`commands::run`]: runs one parsed command line; every failure is one error
//!   whose message is the line the user sees.
//! - [`conn`]: a remote server by URL, or an embedded one on loopback (the same
//!   gRPC path either way), with the token attached.
//! - [`events`]: follows a job's events: progress bar on a terminal, JSON lines with
//!   `--json`, files written as they arrive.
//! - [`demo`]: the synthesised demo song.

pub mod cli;
pub mod commands;
pub mod conn;
pub mod demo;
pub mod events;

pub use cli::Cli;
pub use commands::run;

/// The one line `main` prints for an error: its message and causes, newlines folded.
pub fn error_line(err: &anyhow::Error) -> String {
    format!("{err:#}").replace(['\n', '\r'], " ")
}
