//! The gRPC service: stem store, job queue, render service, auth.
//!
//! # Brief overview
//! - [`ServerConfig`] says where to listen, where the store lives and how to render.
//! - [`serve`] runs a server until a shutdown future resolves (`bounced` uses it);
//!   [`spawn`] binds (port 0 allowed), returns the real address and serves in a task
//!   (the client's embedded mode and the tests use it), stopped by its
//!   [`ServerHandle`].
//! - Services: `bounce.v1.StemStore` (content-addressed stems, BLAKE3 verified on
//!   arrival), `bounce.v1.Render` (a queue of jobs rendered by the engine, events
//!   streamed back), gRPC health and reflection.
//!
//! The store on disk: `data_dir/stems/<blake3>` (complete, verified stems only),
//! `data_dir/tmp/` (uploads in flight), `data_dir/jobs/<id>/job.json` (the job's
//! state and its encoded request) and `data_dir/jobs/<id>/out/` (the renders).

mod auth;
mod jobs;
mod render;
mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bounce_proto::v1::render_server::RenderServer;
use bounce_proto::v1::stem_store_server::StemStoreServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Code, Status};

use crate::engine::{BackendChoice, RenderOptions};
use crate::{Error, Result};

pub use auth::hash_token;

/// The largest stem the store accepts, in bytes.
pub const MAX_STEM_BYTES: u64 = 4 << 30;

/// How a server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (port 0: any free port, see [`spawn`]).
    pub listen: SocketAddr,
    /// Root of the store: stems, jobs and their renders.
    pub data_dir: PathBuf,
    /// Backend for the spectral work; the GPU context is made once, at start.
    pub backend: BackendChoice,
    /// The tokens file (CONTRACT.md); `None`: open, one project "default".
    pub tokens: Option<PathBuf>,
    /// TLS certificate and key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Jobs rendering at once (at least 1; the engine already uses every core).
    pub max_concurrent_jobs: usize,
    /// Re-queue the jobs a previous run left queued or running (a shared server
    /// wants this; the client's one-run embedded server does not, and marks them
    /// failed instead).
    pub resume_jobs: bool,
}

impl ServerConfig {
    /// A config with the defaults: auto backend, open, no TLS, one job at a time,
    /// unfinished jobs resumed.
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            listen,
            data_dir: data_dir.into(),
            backend: BackendChoice::Auto,
            tokens: None,
            tls: None,
            max_concurrent_jobs: 1,
            resume_jobs: true,
        }
    }
}

/// A running server started by [`spawn`]. Dropping it asks the server to stop;
/// [`ServerHandle::shutdown`] also waits until it has.
pub struct ServerHandle {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<()>>>,
}

impl ServerHandle {
    /// Waits until the server stops by itself (an error while serving), without
    /// asking it to stop. Returns at once if it was already awaited.
    pub async fn wait(&mut self) -> Result<()> {
        match self.task.as_mut() {
            Some(task) => {
                let r = task
                    .await
                    .map_err(|e| Error::Internal(format!("server task: {e}")))?;
                self.task = None;
                r
            }
            None => Ok(()),
        }
    }

    /// Stops the server (open streams end, running jobs are interrupted and stay
    /// "running" on disk so a later start resumes them) and waits for it.
    pub async fn shutdown(mut self) -> Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task
                .await
                .map_err(|e| Error::Internal(format!("server task: {e}")))?,
            None => Ok(()),
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Serves on `cfg.listen` until `shutdown` resolves.
pub async fn serve(cfg: ServerConfig, shutdown: impl Future<Output = ()>) -> Result<()> {
    let listener = bind(cfg.listen).await?;
    let state = State::build(&cfg).await?;
    run(listener, state, shutdown).await
}

/// Binds `cfg.listen` (port 0 allowed), then serves in a task. Returns the address
/// actually bound and the handle that stops the server.
pub async fn spawn(cfg: ServerConfig) -> Result<(SocketAddr, ServerHandle)> {
    let listener = bind(cfg.listen).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io(cfg.listen, e))?;
    let state = State::build(&cfg).await?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        run(listener, state, async {
            let _ = stopped.await;
        })
        .await
    });
    Ok((
        addr,
        ServerHandle {
            stop: Some(stop),
            task: Some(task),
        },
    ))
}

async fn bind(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Error::io(format!("listen on {addr}"), e))
}

/// What the services share.
struct State {
    tls: Option<ServerTlsConfig>,
    auth: auth::Auth,
    jobs: Arc<jobs::Jobs>,
    store: store::StemStoreService,
}

impl State {
    async fn build(cfg: &ServerConfig) -> Result<State> {
        let tls = match &cfg.tls {
            Some((cert, key)) => {
                let cert_pem = std::fs::read(cert).map_err(|e| Error::io(cert.display(), e))?;
                let key_pem = std::fs::read(key).map_err(|e| Error::io(key.display(), e))?;
                Some(ServerTlsConfig::new().identity(Identity::from_pem(cert_pem, key_pem)))
            }
            None => None,
        };
        let auth = match &cfg.tokens {
            Some(path) => auth::Auth::from_file(path)?,
            None => auth::Auth::open(),
        };
        let stems_dir = cfg.data_dir.join("stems");
        let tmp_dir = cfg.data_dir.join("tmp");
        let jobs_dir = cfg.data_dir.join("jobs");
        for dir in [&stems_dir, &tmp_dir, &jobs_dir] {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
        }
        // Uploads that were in flight when a previous run stopped are garbage.
        if let Ok(entries) = std::fs::read_dir(&tmp_dir) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let opts = render_options(cfg.backend).await?;
        let jobs = jobs::Jobs::open(
            jobs_dir,
            stems_dir.clone(),
            opts,
            cfg.max_concurrent_jobs.max(1),
            auth.limits(),
            cfg.resume_jobs,
        )?;
        jobs.start_dispatcher();
        let store = store::StemStoreService::new(stems_dir, tmp_dir);
        Ok(State {
            tls,
            auth,
            jobs,
            store,
        })
    }
}

/// Makes the GPU context once, as `backend` asks.
async fn render_options(backend: BackendChoice) -> Result<RenderOptions> {
    if backend == BackendChoice::Cpu {
        tracing::info!("backend: cpu");
        return Ok(RenderOptions { backend, gpu: None });
    }
    let ctx = tokio::task::spawn_blocking(crate::gpu::GpuContext::new_blocking)
        .await
        .map_err(|e| Error::Internal(format!("gpu start: {e}")))?;
    match (backend, ctx) {
        (BackendChoice::Gpu, Ok(ctx)) => {
            tracing::info!(adapter = %ctx.adapter_name(), "backend: gpu");
            Ok(RenderOptions {
                backend,
                gpu: Some(ctx),
            })
        }
        (BackendChoice::Gpu, Err(e)) => Err(Error::Gpu(format!(
            "--backend gpu: no GPU adapter could be opened: {e}"
        ))),
        (_, Ok(ctx)) if ctx.is_hardware() => {
            tracing::info!(adapter = %ctx.adapter_name(), "backend: auto, hardware gpu");
            Ok(RenderOptions {
                backend,
                gpu: Some(ctx),
            })
        }
        (_, Ok(ctx)) => {
            tracing::info!(adapter = %ctx.adapter_name(), "backend: auto, software adapter only: cpu");
            Ok(RenderOptions { backend, gpu: None })
        }
        (_, Err(e)) => {
            tracing::info!("backend: auto, no gpu ({e}): cpu");
            Ok(RenderOptions { backend, gpu: None })
        }
    }
}

async fn run(
    listener: TcpListener,
    state: State,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let State {
        tls,
        auth,
        jobs,
        store,
    } = state;
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<StemStoreServer<store::StemStoreService>>()
        .await;
    health_reporter
        .set_serving::<RenderServer<render::RenderService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(bounce_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| Error::Internal(format!("reflection: {e}")))?;

    let mut builder = Server::builder();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .map_err(|e| Error::InvalidSession(format!("--tls-cert/--tls-key: {e}")))?;
    }
    let render = render::RenderService::new(jobs.clone(), store.clone());
    let router = builder
        .add_service(InterceptedService::new(health, auth.clone()))
        .add_service(InterceptedService::new(reflection, auth.clone()))
        .add_service(StemStoreServer::with_interceptor(store, auth.clone()))
        .add_service(RenderServer::with_interceptor(render, auth));

    let jobs_for_stop = jobs.clone();
    let stop = async move {
        shutdown.await;
        tracing::info!("shutting down");
        jobs_for_stop.close();
    };
    let result = router
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stop)
        .await
        .map_err(|e| Error::Io(format!("server: {e}")));
    jobs.close();
    result
}

/// The gRPC code for an error: the one place that maps the two.
pub fn status_code(err: &Error) -> Code {
    match err {
        Error::InvalidSession(_) | Error::BadAudio(_) => Code::InvalidArgument,
        Error::Limit(_) => Code::ResourceExhausted,
        Error::Cancelled => Code::Cancelled,
        _ => Code::Internal,
    }
}

impl From<Error> for Status {
    /// The message is kept verbatim: it already names the file and the field.
    fn from(err: Error) -> Status {
        Status::new(status_code(&err), err.to_string())
    }
}

/// True for a lower-case hex BLAKE3 digest (64 characters): the only names the
/// store ever turns into paths.
pub(crate) fn is_blake3_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Points `XDG_RUNTIME_DIR` at a private 0700 folder when it is unset, so software
/// Vulkan/GL drivers probed by `--backend auto` do not print "XDG_RUNTIME_DIR is
/// invalid or not set" on stderr. Call at the very start of `main`, before any
/// thread exists (it sets an environment variable).
pub fn prepare_process_env() {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt};
        if std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|v| !v.is_empty()) {
            return;
        }
        let user = std::env::var("USER").unwrap_or_else(|_| "user".into());
        let user: String = user.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let dir = std::env::temp_dir().join(format!("bounce-runtime-{user}"));
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        let me = std::fs::metadata("/proc/self").map(|m| m.uid()).ok();
        let ok = std::fs::metadata(&dir)
            .is_ok_and(|m| m.is_dir() && Some(m.uid()) == me && m.mode() & 0o077 == 0);
        if ok {
            // SAFETY: called first thing in main, while the process has one thread.
            unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
        }
    }
}
