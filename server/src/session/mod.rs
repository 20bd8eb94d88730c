//! The session model, its parsing (TOML and proto) and validation: the one place that says "no".
//!
//! # Brief overview
//! - [`model`]: the types, defaults filled in.
//! - [`parse_session_toml`] / [`load_session_file`]: TOML → model (messages name the
//!   file, line, field path and value; unknown keys are errors with a did-you-mean).
//! - [`validate`]: every rule of CONTRACT.md; [`bus_order`] for the engine.
//! - [`to_proto`] / [`from_proto`]: the model over the wire, stems by BLAKE3 hash.
//! - [`load_album_file`], [`slug`]: album files; [`load_tokens_file`]: tokens files.

pub mod album;
pub mod dawproject;
pub mod limits;
pub mod model;
pub mod parse;
pub mod proto;
#[doc(hidden)]
pub mod reader;
pub mod tokens;
pub mod validate;
pub mod write;

pub use album::{Album, AlbumLoudness, load_album_file, parse_album_toml, slug, song_dir};
pub use limits::Limits;
pub use model::*;
pub use parse::{PRESETS, deliverable_preset, load_session_file, parse_session_toml};
pub use proto::{
    deliverable_from, deliverable_to, from_document, from_proto, master_from, master_to,
};
pub use tokens::{TokenEntry, load_tokens_file, parse_tokens_toml};
pub use validate::{ValidSession, bus_order, validate, validate_with};
pub use write::session_to_toml;
