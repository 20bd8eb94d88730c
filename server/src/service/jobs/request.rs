//! Request → session: what a Submit or Master request asks for, in the session
//! model, validated; and where the store keeps the stems it names.

use std::path::{Path, PathBuf};

use bounce_proto::v1;

use crate::session::{self, Deliverable, Master, StemRef};
use crate::{Error, Result};

/// Where the store keeps a stem: only ever a validated hash joined to the folder.
pub(crate) fn stem_path(stems_dir: &Path, stem: &StemRef) -> Result<PathBuf> {
    let hash = stem.blake3.as_deref().unwrap_or_default();
    if !super::super::is_blake3_hex(hash) {
        return Err(Error::InvalidSession(format!(
            "{}: no valid blake3 hash",
            stem.name
        )));
    }
    let path = stems_dir.join(hash);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::InvalidSession(format!(
            "{}: stem {hash} is not in the store",
            stem.name
        )))
    }
}

/// The session of a submit request, parsed and validated once: the session document
/// when the client sent one, else the first contract's proto model. `limits` gives the
/// limits for the session's rate (a project's mix length is set in seconds).
pub(crate) fn session_of(
    req: &v1::SubmitRequest,
    limits: impl Fn(u32) -> session::Limits,
) -> Result<session::ValidSession> {
    let session = match (&req.document, &req.session) {
        (Some(doc), _) => {
            let max = limits(48_000).max_session_bytes;
            if doc.toml.len() > max {
                return Err(Error::Limit(format!(
                    "session document of {} bytes, more than the {max} allowed",
                    doc.toml.len()
                )));
            }
            session::from_document(doc)?
        }
        (None, Some(proto)) => session::from_proto(proto)?,
        (None, None) => return Err(Error::InvalidSession("session: missing".into())),
    };
    // The server trusts no client: the same validation as the client's.
    let l = limits(session.sample_rate);
    session::ValidSession::new(session, &l)
}

/// Every stem a session names (clips, reverbs' IRs), each once.
pub(crate) fn session_stems(s: &session::Session) -> Vec<StemRef> {
    let mut out: Vec<StemRef> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for stem in session::stems(s) {
        if seen.insert(stem.blake3.clone()) {
            out.push(stem.clone());
        }
    }
    out
}

/// A master request's parts in the session model, checked by the session's own
/// validation: the request is wrapped in a one-track session. A deliverable
/// sample rate of 0 stays 0 ("the input's rate").
pub(crate) fn master_parts(
    req: &v1::MasterRequest,
) -> Result<(StemRef, Option<Master>, Deliverable)> {
    let stem = req
        .stem
        .clone()
        .ok_or_else(|| Error::InvalidSession("master: stem: missing".into()))?;
    let proto_deliverable = req
        .deliverable
        .clone()
        .ok_or_else(|| Error::InvalidSession("master: deliverable: missing".into()))?;
    let rate = if proto_deliverable.sample_rate == 0 {
        48_000
    } else {
        proto_deliverable.sample_rate
    };
    let wrapper = v1::Session {
        name: "master".into(),
        sample_rate: rate,
        tail_s: 0.0,
        tracks: vec![v1::Track {
            name: "input".into(),
            stem: Some(stem),
            output: "master".into(),
            ..Default::default()
        }],
        buses: Vec::new(),
        master: req.master.clone(),
        deliverables: vec![proto_deliverable.clone()],
        source: "master".into(),
    };
    let mut s = session::from_proto(&wrapper)?;
    let input = s
        .tracks
        .pop()
        .and_then(|t| t.clips.into_iter().next())
        .map(|c| c.file)
        .ok_or_else(|| Error::Internal("master: the input track vanished".into()))?;
    let mut deliverable = s
        .deliverables
        .pop()
        .ok_or_else(|| Error::Internal("master: the deliverable vanished".into()))?;
    if proto_deliverable.sample_rate == 0 {
        deliverable.sample_rate = 0;
    }
    Ok((input, s.master, deliverable))
}
