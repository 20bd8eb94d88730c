//! The stem store: content-addressed files under `data_dir/stems/<blake3>`, shared
//! by every project underneath, with a per-project ownership index on top.
//!
//! A project sees and uses only the stems it uploaded itself (proof of
//! possession): `Missing` answers per project, and an upload of bytes the store
//! already holds is still streamed and verified, then grants ownership without a
//! second copy. An upload streams into a temporary file in `data_dir/tmp/` while it
//! is hashed; only a complete upload whose size and BLAKE3 match its header is moved
//! into the store. Anything else (a mismatch, a client that vanishes, the shutdown
//! deadline) removes the temporary file, so the store only ever holds verified stems.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bounce_proto::v1::stem_store_server::StemStore;
use bounce_proto::v1::{MissingRequest, MissingResponse, UploadChunk, UploadResponse};
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;
use tonic::{Request, Response, Status, Streaming};

use super::auth::project_of;
use super::db::Db;
use super::is_blake3_hex;
use super::jobs::Jobs;
use crate::Error;

/// The `bounce.v1.StemStore` service.
#[derive(Clone)]
pub(crate) struct StemStoreService {
    stems_dir: Arc<PathBuf>,
    tmp_dir: Arc<PathBuf>,
    db: Arc<Db>,
    jobs: Arc<Jobs>,
    /// Set when shutdown begins (no new upload) and at its deadline (uploads cut).
    draining: watch::Receiver<bool>,
    cut: watch::Receiver<bool>,
}

impl StemStoreService {
    pub(crate) fn new(
        stems_dir: PathBuf,
        tmp_dir: PathBuf,
        jobs: Arc<Jobs>,
        draining: watch::Receiver<bool>,
        cut: watch::Receiver<bool>,
    ) -> Self {
        StemStoreService {
            stems_dir: Arc::new(stems_dir),
            tmp_dir: Arc::new(tmp_dir),
            db: jobs.db().clone(),
            jobs,
            draining,
            cut,
        }
    }
}

/// Removes the temporary file when dropped, unless it was moved into the store:
/// this also runs when tonic drops the handler because the client went away.
struct TempFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn bad(msg: String) -> Status {
    Status::invalid_argument(msg)
}

fn io_status(path: &Path, err: std::io::Error) -> Status {
    tracing::error!(path = %path.display(), "stem store: {err}");
    Status::internal(format!("stem store: {}: {err}", path.display()))
}

/// Runs request-sized or disk-bound work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("worker: {e}")))?
}

#[tonic::async_trait]
impl StemStore for StemStoreService {
    async fn missing(
        &self,
        request: Request<MissingRequest>,
    ) -> Result<Response<MissingResponse>, Status> {
        let project = project_of(&request)?;
        let hashes = request.into_inner().blake3;
        let max = self.jobs.service_limits().max_missing_hashes;
        if hashes.len() > max {
            return Err(bad(format!(
                "blake3: {} hashes in one request; max_missing_hashes = {max} (ask in batches)",
                hashes.len()
            )));
        }
        let db = self.db.clone();
        let stems_dir = self.stems_dir.clone();
        let missing = blocking(move || {
            // Linear: a set for duplicates, one indexed look-up per distinct hash.
            let mut seen = HashSet::with_capacity(hashes.len());
            let mut distinct = Vec::with_capacity(hashes.len());
            for hash in hashes {
                if !is_blake3_hex(&hash) {
                    let shown: String = hash.chars().take(80).collect();
                    return Err(bad(format!(
                        "blake3: {shown:?} is not a BLAKE3 hash (64 lower-case hex digits)"
                    )));
                }
                if seen.insert(hash.clone()) {
                    distinct.push(hash);
                }
            }
            let not_owned = db.not_owned(&project, &distinct).map_err(Status::from)?;
            let not_owned: HashSet<String> = not_owned.into_iter().collect();
            // Owned but gone from disk (removed by hand): missing too.
            Ok(distinct
                .into_iter()
                .filter(|h| not_owned.contains(h) || !stems_dir.join(h).is_file())
                .collect::<Vec<_>>())
        })
        .await?;
        Ok(Response::new(MissingResponse { blake3: missing }))
    }

    async fn upload(
        &self,
        request: Request<Streaming<UploadChunk>>,
    ) -> Result<Response<UploadResponse>, Status> {
        let project = project_of(&request)?;
        if *self.draining.borrow() {
            return Err(Status::unavailable("the server is shutting down"));
        }
        let mut cut = self.cut.clone();
        let mut stream = request.into_inner();
        let first = stream.message().await?.ok_or_else(|| {
            bad("upload: empty stream (the first chunk carries the header)".into())
        })?;
        let header = first
            .header
            .clone()
            .ok_or_else(|| bad("upload: the first chunk must carry the header".into()))?;
        let hash = header.blake3.clone();
        if !is_blake3_hex(&hash) {
            let shown: String = hash.chars().take(80).collect();
            return Err(bad(format!(
                "upload: header.blake3: {shown:?} is not a BLAKE3 hash (64 lower-case hex digits)"
            )));
        }
        let name = if header.name.is_empty() {
            hash.clone()
        } else {
            header.name.chars().take(256).collect()
        };
        let quota = self.jobs.limits_of(&project);
        let max_upload = quota
            .max_upload_bytes
            .map_or(self.jobs.service_limits().max_upload_bytes, |q| {
                q.min(self.jobs.service_limits().max_upload_bytes)
            });
        if header.size > max_upload {
            return Err(Status::resource_exhausted(format!(
                "{name}: {} bytes is more than max_upload_bytes = {max_upload}",
                header.size
            )));
        }
        if let Some(max_stored) = quota
            .max_stored_bytes
            .or(self.jobs.service_limits().max_stored_bytes)
        {
            let (db, p, h) = (self.db.clone(), project.clone(), hash.clone());
            let (owned, has) = blocking(move || {
                Ok((
                    db.owned_bytes(&p).map_err(Status::from)?,
                    db.owns(&p, &h).map_err(Status::from)?,
                ))
            })
            .await?;
            if !has && owned.saturating_add(header.size) > max_stored {
                return Err(Status::resource_exhausted(format!(
                    "{name}: project {project:?} holds {owned} bytes of stems; {} more would pass max_stored_bytes = {max_stored}",
                    header.size
                )));
            }
        }

        let tmp = TempFile {
            path: self
                .tmp_dir
                .join(format!("{hash}-{:016x}.part", rand::random::<u64>())),
            keep: false,
        };
        let mut file = tokio::fs::File::create(&tmp.path)
            .await
            .map_err(|e| io_status(&tmp.path, e))?;
        let mut hasher = blake3::Hasher::new();
        let mut received: u64 = 0;
        let mut chunk = Some(first);
        while let Some(c) = chunk.take() {
            received += c.data.len() as u64;
            if received > header.size {
                return Err(bad(format!(
                    "{name}: upload: more bytes than the header's size of {}: nothing stored",
                    header.size
                )));
            }
            hasher.update(&c.data);
            file.write_all(&c.data)
                .await
                .map_err(|e| io_status(&tmp.path, e))?;
            // A client that vanishes makes this an error (or tonic drops the whole
            // future): either way `tmp` is removed on the way out.
            chunk = tokio::select! {
                next = stream.message() => next?,
                _ = cut.wait_for(|c| *c) => {
                    return Err(Status::unavailable(format!(
                        "{name}: upload cut: the server is shutting down; nothing stored"
                    )));
                }
            };
            if chunk.as_ref().is_some_and(|next| next.header.is_some()) {
                return Err(bad(format!(
                    "{name}: upload: a header after the first chunk"
                )));
            }
        }
        file.flush().await.map_err(|e| io_status(&tmp.path, e))?;
        file.sync_all().await.map_err(|e| io_status(&tmp.path, e))?;
        drop(file);
        if received != header.size {
            return Err(bad(format!(
                "{name}: upload: received {received} bytes but the header said {}: nothing stored",
                header.size
            )));
        }
        let actual = hasher.finalize().to_hex().to_string();
        if actual != hash {
            return Err(bad(format!(
                "{name}: upload: the data hashes to {actual}, not the header's blake3 {hash}: nothing stored"
            )));
        }
        let dest = self.stems_dir.join(&hash);
        let (db, p, h) = (self.db.clone(), project.clone(), hash.clone());
        let mut tmp = tmp;
        let tmp_path = tmp.path.clone();
        let stems_dir = self.stems_dir.clone();
        let placed = blocking(move || {
            let mut moved = false;
            db.store_stem(&p, &h, received, super::jobs::now_ms(), |have| {
                if have && dest.is_file() {
                    return Ok(()); // the same verified bytes are there already
                }
                std::fs::rename(&tmp_path, &dest).map_err(|e| Error::io(dest.display(), e))?;
                moved = true;
                sync_dir(&stems_dir);
                Ok(())
            })
            .map_err(Status::from)?;
            Ok(moved)
        })
        .await?;
        tmp.keep = placed;
        tracing::info!(stem = %name, blake3 = %hash, bytes = received, project, new = placed, "stem stored");
        Ok(Response::new(UploadResponse {
            blake3: hash,
            size: received,
        }))
    }
}

/// fsyncs a folder so a rename into it survives a crash.
fn sync_dir(dir: &Path) {
    if let Err(e) = std::fs::File::open(dir).and_then(|f| f.sync_all()) {
        tracing::warn!(dir = %dir.display(), "fsync: {e}");
    }
}
