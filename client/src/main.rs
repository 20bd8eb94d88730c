//! `bounce`: the Bounce command line.
fn main() {}
