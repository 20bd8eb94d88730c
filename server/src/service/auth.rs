//! Bearer tokens: each maps (by its SHA-256) to a project and its limits.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use sha2::{Digest, Sha256};
use tonic::{Request, Status};

use crate::Result;

/// The project every request belongs to when the server runs without tokens.
pub(crate) const OPEN_PROJECT: &str = "default";

/// Who is asking: put into each request's extensions by [`Auth`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Project(pub String);

/// A project's limits from its tokens (None: the server's default).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Limits {
    pub(crate) max_running: Option<usize>,
    pub(crate) max_queued: Option<usize>,
    pub(crate) max_upload_bytes: Option<u64>,
    pub(crate) max_stored_bytes: Option<u64>,
    pub(crate) max_job_seconds: Option<f64>,
    pub(crate) max_mix_seconds: Option<f64>,
}

impl Limits {
    /// Two tokens of one project: the looser limit wins (a missing one is looser).
    fn merge(&self, o: &Limits) -> Limits {
        fn l<T: PartialOrd + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(a), Some(b)) => Some(if a > b { a } else { b }),
                _ => None,
            }
        }
        Limits {
            max_running: l(self.max_running, o.max_running),
            max_queued: l(self.max_queued, o.max_queued),
            max_upload_bytes: l(self.max_upload_bytes, o.max_upload_bytes),
            max_stored_bytes: l(self.max_stored_bytes, o.max_stored_bytes),
            max_job_seconds: l(self.max_job_seconds, o.max_job_seconds),
            max_mix_seconds: l(self.max_mix_seconds, o.max_mix_seconds),
        }
    }
}

/// Lower-case hex SHA-256 of a token's UTF-8 bytes, as the tokens file holds it.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The token table, or none (open server). Used as a tonic interceptor on every
/// service, so no RPC runs without a known token.
#[derive(Clone)]
pub(crate) struct Auth {
    tokens: Option<Arc<HashMap<String, (String, Limits)>>>,
}

impl Auth {
    /// No tokens: every request is project "default".
    pub(crate) fn open() -> Self {
        Auth { tokens: None }
    }

    /// Reads a tokens file (CONTRACT.md).
    pub(crate) fn from_file(path: &Path) -> Result<Self> {
        let entries = crate::session::tokens::load_tokens_with_quotas(path)?;
        let mut map = HashMap::new();
        for (e, q) in entries {
            let limits = Limits {
                max_running: e.max_running_jobs.map(|v| v as usize),
                max_queued: e.max_queued_jobs.map(|v| v as usize),
                max_upload_bytes: q.max_upload_bytes,
                max_stored_bytes: q.max_stored_bytes,
                max_job_seconds: q.max_job_seconds,
                max_mix_seconds: q.max_mix_seconds,
            };
            map.insert(e.sha256.to_ascii_lowercase(), (e.project.clone(), limits));
        }
        Ok(Auth {
            tokens: Some(Arc::new(map)),
        })
    }

    /// Each project's limits.
    pub(crate) fn limits(&self) -> HashMap<String, Limits> {
        match &self.tokens {
            None => HashMap::new(),
            Some(map) => {
                let mut out: HashMap<String, Limits> = HashMap::new();
                for (project, limits) in map.values() {
                    // Two tokens of one project: the looser limit wins.
                    let merged = match out.get(project) {
                        Some(old) => old.merge(limits),
                        None => limits.clone(),
                    };
                    out.insert(project.clone(), merged);
                }
                out
            }
        }
    }

    fn check<T>(&self, req: &Request<T>) -> Result<Project, Status> {
        let Some(map) = &self.tokens else {
            return Ok(Project(OPEN_PROJECT.to_string()));
        };
        let value = req
            .metadata()
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated("missing token: send `authorization: Bearer <token>` (bounce --token or BOUNCE_TOKEN)"))?;
        let value = value
            .to_str()
            .map_err(|_| Status::unauthenticated("authorization: not text"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| Status::unauthenticated("authorization: expected `Bearer <token>`"))?
            .trim();
        match map.get(&hash_token(token)) {
            Some((project, _)) => Ok(Project(project.clone())),
            None => Err(Status::unauthenticated("unknown token")),
        }
    }
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let project = self.check(&req)?;
        req.extensions_mut().insert(project);
        Ok(req)
    }
}

/// The caller's project, as the interceptor found it.
pub(crate) fn project_of<T>(req: &Request<T>) -> Result<String, Status> {
    req.extensions()
        .get::<Project>()
        .map(|p| p.0.clone())
        .ok_or_else(|| Status::unauthenticated("no project"))
}
