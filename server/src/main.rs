//! `bounced`: the Bounce render server.
fn main() {}
