//! The `bounce` client library: command implementations behind the CLI.
