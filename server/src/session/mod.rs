//! The session model, its parsing (TOML and proto) and validation: the one place that says "no".

pub mod model;

pub use model::*;
