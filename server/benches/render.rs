//! Render benchmark (filled in later).
fn main() {}
