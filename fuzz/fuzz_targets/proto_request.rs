//! Bytes → prost decode of a SubmitRequest → the server's request→session mapping
//! (the session document through `from_document`, or the first-contract message through
//! `from_proto`) → `ValidSession::new` with the default limits: never a panic.
#![no_main]

use bounce_proto::v1::SubmitRequest;
use bounce_server::session::{Limits, ValidSession, from_document, from_proto};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(req) = SubmitRequest::decode(data) else {
        return;
    };
    let limits = Limits::default();
    if let Some(doc) = req.document.as_ref()
        && let Ok(s) = from_document(doc)
    {
        let _ = ValidSession::new(s, &limits);
    }
    if let Some(session) = req.session.as_ref()
        && let Ok(s) = from_proto(session)
    {
        let _ = ValidSession::new(s, &limits);
    }
});
