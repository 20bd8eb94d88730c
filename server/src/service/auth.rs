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

/// A project's limits: (running jobs at once, queued jobs waiting).
pub(crate) type Limits = (Option<usize>, Option<usize>);

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
        let entries = crate::session::load_tokens_file(path)?;
        let mut map = HashMap::new();
        for e in entries {
            let limits = (
                e.max_running_jobs.map(|v| v as usize),
                e.max_queued_jobs.map(|v| v as usize),
            );
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
                        Some(old) => (looser(old.0, limits.0), looser(old.1, limits.1)),
                        None => *limits,
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

fn looser(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
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
