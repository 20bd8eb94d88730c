//! Helpers for the end-to-end tests: find the built binaries, start a server.
