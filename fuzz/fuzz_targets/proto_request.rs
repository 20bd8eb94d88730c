//! Bytes → prost decode of a SubmitRequest → the server's request→session mapping
//! (`from_proto`, which validates) → `validate` again: never a panic.
#![no_main]

use bounce_proto::v1::SubmitRequest;
use bounce_server::session::{from_proto, validate};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = SubmitRequest::decode(data) else {
        return;
    };
    let Some(session) = req.session.as_ref() else {
        return;
    };
    if let Ok(s) = from_proto(session) {
        let _ = validate(&s);
    }
});
