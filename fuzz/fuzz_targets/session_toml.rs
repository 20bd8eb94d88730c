//! Bytes → `parse_session_toml` → `validate`: a value or an InvalidSession error,
//! never a panic.
#![no_main]

use std::path::Path;

use bounce_server::session::{parse_session_toml, validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(session) = parse_session_toml(text, "fuzz.toml", Path::new("/nonexistent")) {
        let _ = validate(&session);
    }
});
