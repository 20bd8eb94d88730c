//! The stem store: content-addressed files under `data_dir/stems/<blake3>`.
//!
//! An upload streams into a temporary file in `data_dir/tmp/` while it is hashed;
//! only a complete upload whose size and BLAKE3 match its header is renamed into
//! the store. Anything else (a mismatch, a client that vanishes) removes the
//! temporary file, so the store only ever holds verified stems.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bounce_proto::v1::stem_store_server::StemStore;
use bounce_proto::v1::{MissingRequest, MissingResponse, UploadChunk, UploadResponse};
use tokio::io::AsyncWriteExt;
use tonic::{Request, Response, Status, Streaming};

use super::{MAX_STEM_BYTES, is_blake3_hex};

/// The `bounce.v1.StemStore` service.
#[derive(Clone)]
pub(crate) struct StemStoreService {
    stems_dir: Arc<PathBuf>,
    tmp_dir: Arc<PathBuf>,
}

impl StemStoreService {
    pub(crate) fn new(stems_dir: PathBuf, tmp_dir: PathBuf) -> Self {
        StemStoreService {
            stems_dir: Arc::new(stems_dir),
            tmp_dir: Arc::new(tmp_dir),
        }
    }

    /// True when the store holds a stem with this hash.
    pub(crate) fn has(&self, hash: &str) -> bool {
        is_blake3_hex(hash) && self.stems_dir.join(hash).is_file()
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

#[tonic::async_trait]
impl StemStore for StemStoreService {
    async fn missing(
        &self,
        request: Request<MissingRequest>,
    ) -> Result<Response<MissingResponse>, Status> {
        let mut missing: Vec<String> = Vec::new();
        for hash in request.into_inner().blake3 {
            if !is_blake3_hex(&hash) {
                return Err(bad(format!(
                    "blake3: {hash:?} is not a BLAKE3 hash (64 lower-case hex digits)"
                )));
            }
            if !self.has(&hash) && !missing.contains(&hash) {
                missing.push(hash);
            }
        }
        Ok(Response::new(MissingResponse { blake3: missing }))
    }

    async fn upload(
        &self,
        request: Request<Streaming<UploadChunk>>,
    ) -> Result<Response<UploadResponse>, Status> {
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
            return Err(bad(format!(
                "upload: header.blake3: {hash:?} is not a BLAKE3 hash (64 lower-case hex digits)"
            )));
        }
        let name = if header.name.is_empty() {
            hash.clone()
        } else {
            header.name.clone()
        };
        if header.size > MAX_STEM_BYTES {
            return Err(Status::resource_exhausted(format!(
                "{name}: {} bytes is more than the store's limit of {MAX_STEM_BYTES} bytes per stem",
                header.size
            )));
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
            chunk = stream.message().await?;
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
        tokio::fs::rename(&tmp.path, &dest)
            .await
            .map_err(|e| io_status(&dest, e))?;
        let mut tmp = tmp;
        tmp.keep = true;
        tracing::info!(stem = %name, blake3 = %hash, bytes = received, "stem stored");
        Ok(Response::new(UploadResponse {
            blake3: hash,
            size: received,
        }))
    }
}
