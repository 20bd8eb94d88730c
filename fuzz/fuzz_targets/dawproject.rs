//! Bytes → a .dawproject file → `read_project` → (the session → TOML → parse): a value
//! or an error line, never a panic.
#![no_main]

use std::path::Path;

use bounce_server::session::dawproject::{ImportOptions, read_project};
use bounce_server::session::{parse_session_toml, session_to_toml};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("bounce-fuzz-{}.dawproject", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    if let Ok(imp) = read_project(&path, &ImportOptions::default()) {
        let text = session_to_toml(&imp.session);
        let _ = parse_session_toml(&text, "fuzz.toml", Path::new("/nonexistent"));
    }
});
