//! The gRPC service: stem store, job queue, render service, auth.
//!
//! # Brief overview
//! - [`ServerConfig`] says where to listen, where the store lives, how to render,
//!   what to bound and how long to keep things.
//! - [`serve`] runs a server until a shutdown future resolves (`bounced` uses it);
//!   [`spawn`] binds (port 0 allowed), returns the real address and serves in a task
//!   (the client's embedded mode and the tests use it), stopped by its
//!   [`ServerHandle`].
//! - Services: `bounce.v1.StemStore` (content-addressed stems, BLAKE3 verified on
//!   arrival, owned per project), `bounce.v1.Render` (a queue of jobs rendered by
//!   the engine, events streamed back), gRPC health and reflection (v1 and v1alpha).
//!
//! The store on disk: `data_dir/lock` (one server per folder), `data_dir/bounce.db`
//! (the job index and stem ownership, SQLite), `data_dir/stems/<blake3>` (complete,
//! verified stems only), `data_dir/tmp/` (uploads in flight) and
//! `data_dir/jobs/<id>/out/` (the renders).
//!
//! Shutdown: health turns NOT_SERVING and nothing new is accepted; running jobs get
//! `shutdown_grace` to finish, then are stopped and written back as queued;
//! uploads still in flight are cut; then the server stops.

mod auth;
mod config;
mod db;
mod jobs;
mod lock;
mod render;
mod retention;
mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bounce_proto::v1::render_server::RenderServer;
use bounce_proto::v1::stem_store_server::StemStoreServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Code, Status};
use tonic_health::ServingStatus;

use crate::engine::{BackendChoice, RenderOptions};
use crate::session::Limits;
use crate::{Error, Result};

pub use auth::hash_token;
pub use config::{
    ConfigFile, LimitsFile, MAX_STEM_BYTES, Retention, RetentionFile, ServerConfig, ServiceLimits,
    grace,
};
pub use lock::data_dir_in_use;

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

    /// Stops the server as a SIGTERM would (running jobs get the grace period, then
    /// are queued again for the next start) and waits for it.
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
    cfg.check()?;
    let listener = bind(cfg.listen).await?;
    let state = State::build(&cfg).await?;
    run(listener, state, shutdown).await
}

/// Binds `cfg.listen` (port 0 allowed), then serves in a task. Returns the address
/// actually bound and the handle that stops the server. Every check that can fail
/// (the listen address, the data dir's lock, TLS files, the tokens file, the index)
/// is done before this returns.
pub async fn spawn(cfg: ServerConfig) -> Result<(SocketAddr, ServerHandle)> {
    cfg.check()?;
    let state = State::build(&cfg).await?;
    let listener = bind(cfg.listen).await?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io(cfg.listen, e))?;
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
    _lock: lock::DataDirLock,
    tls: Option<ServerTlsConfig>,
    auth: auth::Auth,
    jobs: Arc<jobs::Jobs>,
    store: store::StemStoreService,
    retention: Retention,
    stems_dir: std::path::PathBuf,
    grace: Duration,
    draining: watch::Sender<bool>,
    cut: watch::Sender<bool>,
}

/// Reads a PEM file and checks it holds what its flag says, naming the file.
fn read_pem(path: &Path, flag: &str, what: &[&str]) -> Result<Vec<u8>> {
    let pem =
        std::fs::read(path).map_err(|e| Error::io(format!("{flag} {}", path.display()), e))?;
    let text = String::from_utf8_lossy(&pem);
    if !what
        .iter()
        .any(|w| text.contains(&format!("-----BEGIN {w}-----")))
    {
        return Err(Error::InvalidSession(format!(
            "{flag} {}: no PEM {} block in it",
            path.display(),
            what.join(" or ")
        )));
    }
    Ok(pem)
}

impl State {
    async fn build(cfg: &ServerConfig) -> Result<State> {
        let tls = match &cfg.tls {
            Some((cert, key)) => {
                let cert_pem = read_pem(cert, "--tls-cert", &["CERTIFICATE"])?;
                let key_pem = read_pem(
                    key,
                    "--tls-key",
                    &["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"],
                )?;
                let tls = ServerTlsConfig::new().identity(Identity::from_pem(cert_pem, key_pem));
                // Builds the TLS acceptor now, so a key that does not fit the
                // certificate is reported before the server says it is listening.
                Server::builder().tls_config(tls.clone()).map_err(|e| {
                    Error::InvalidSession(format!(
                        "--tls-cert {} / --tls-key {}: {e}",
                        cert.display(),
                        key.display()
                    ))
                })?;
                Some(tls)
            }
            None => None,
        };
        let auth = match &cfg.tokens {
            Some(path) => auth::Auth::from_file(path)?,
            None => auth::Auth::open(),
        };
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| Error::io(cfg.data_dir.display(), e))?;
        let lock = lock::DataDirLock::acquire(&cfg.data_dir)?;
        let stems_dir = cfg.data_dir.join("stems");
        let tmp_dir = cfg.data_dir.join("tmp");
        let jobs_dir = cfg.data_dir.join("jobs");
        for dir in [&stems_dir, &tmp_dir, &jobs_dir] {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
        }
        // Uploads that were in flight when a previous run stopped are garbage (the
        // lock says no other server is writing here).
        if let Ok(entries) = std::fs::read_dir(&tmp_dir) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        let db_path = cfg.data_dir.join("bounce.db");
        let db = {
            let (p, s) = (db_path.clone(), stems_dir.clone());
            tokio::task::spawn_blocking(move || {
                let db = db::Db::open(&p)?;
                retention::reconcile(&db, &s)?;
                Ok::<_, Error>(db)
            })
            .await
            .map_err(|e| Error::Internal(format!("index: {e}")))??
        };
        let mut opts = render_options(cfg.backend).await?;
        opts.limits = cfg.limits.clone();
        let jobs = jobs::Jobs::open(
            jobs_dir,
            stems_dir.clone(),
            Arc::new(db),
            opts,
            cfg.max_concurrent_jobs.max(1),
            auth.limits(),
            cfg.service_limits.clone(),
            cfg.resume_jobs,
        )?;
        jobs.start_dispatcher();
        let draining = watch::channel(false).0;
        let cut = watch::channel(false).0;
        let store = store::StemStoreService::new(
            stems_dir.clone(),
            tmp_dir,
            jobs.clone(),
            draining.subscribe(),
            cut.subscribe(),
        );
        Ok(State {
            _lock: lock,
            tls,
            auth,
            jobs,
            store,
            retention: cfg.retention.clone(),
            stems_dir,
            grace: cfg.shutdown_grace,
            draining,
            cut,
        })
    }
}

/// Makes the GPU context once, as `backend` asks.
async fn render_options(backend: BackendChoice) -> Result<RenderOptions> {
    let plain = |backend, gpu| RenderOptions {
        backend,
        gpu,
        limits: Limits::default(),
    };
    if backend == BackendChoice::Cpu {
        tracing::info!("backend: cpu");
        return Ok(plain(backend, None));
    }
    let ctx = tokio::task::spawn_blocking(crate::gpu::GpuContext::new_blocking)
        .await
        .map_err(|e| Error::Internal(format!("gpu start: {e}")))?;
    match (backend, ctx) {
        (BackendChoice::Gpu, Ok(ctx)) => {
            tracing::info!(adapter = %ctx.adapter_name(), "backend: gpu");
            Ok(plain(backend, Some(ctx)))
        }
        (BackendChoice::Gpu, Err(e)) => Err(Error::Gpu(format!(
            "--backend gpu: no GPU adapter could be opened: {e}"
        ))),
        (_, Ok(ctx)) if ctx.is_hardware() => {
            tracing::info!(adapter = %ctx.adapter_name(), "backend: auto, hardware gpu");
            Ok(plain(backend, Some(ctx)))
        }
        (_, Ok(ctx)) => {
            tracing::info!(adapter = %ctx.adapter_name(), "backend: auto, software adapter only: cpu");
            Ok(plain(backend, None))
        }
        (_, Err(e)) => {
            tracing::info!("backend: auto, no gpu ({e}): cpu");
            Ok(plain(backend, None))
        }
    }
}

/// Runs retention sweeps every `interval`, the first shortly after start (never
/// delaying it), until `stop` is set.
fn start_retention(
    jobs: Arc<jobs::Jobs>,
    stems_dir: std::path::PathBuf,
    policy: Retention,
    mut stop: watch::Receiver<bool>,
) {
    if policy.max_age.is_none() && policy.max_store_bytes.is_none() {
        return;
    }
    tokio::spawn(async move {
        let mut delay = Duration::from_millis(500).min(policy.interval);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let (j, d, p) = (jobs.clone(), stems_dir.clone(), policy.clone());
            let r =
                tokio::task::spawn_blocking(move || retention::sweep(&j, &d, &p, jobs::now_ms()))
                    .await;
            match r {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!("retention sweep: {e}"),
                Err(e) => tracing::warn!("retention sweep: {e}"),
            }
            delay = policy.interval;
        }
    });
}

async fn run(
    listener: TcpListener,
    state: State,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let State {
        _lock,
        tls,
        auth,
        jobs,
        store,
        retention,
        stems_dir,
        grace,
        draining,
        cut,
    } = state;
    start_retention(jobs.clone(), stems_dir, retention, draining.subscribe());
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<StemStoreServer<store::StemStoreService>>()
        .await;
    health_reporter
        .set_serving::<RenderServer<render::RenderService>>()
        .await;
    let descriptors = [
        bounce_proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
    ];
    let mut v1 = tonic_reflection::server::Builder::configure();
    let mut v1alpha = tonic_reflection::server::Builder::configure();
    for d in descriptors {
        v1 = v1.register_encoded_file_descriptor_set(d);
        v1alpha = v1alpha.register_encoded_file_descriptor_set(d);
    }
    let reflection = v1
        .build_v1()
        .map_err(|e| Error::Internal(format!("reflection: {e}")))?;
    // Python's grpcio-reflection and older grpcurl speak only v1alpha.
    let reflection_alpha = v1alpha
        .build_v1alpha()
        .map_err(|e| Error::Internal(format!("reflection: {e}")))?;

    let mut builder = Server::builder();
    if let Some(tls) = tls {
        builder = builder
            .tls_config(tls)
            .map_err(|e| Error::InvalidSession(format!("--tls-cert/--tls-key: {e}")))?;
    }
    let render = render::RenderService::new(jobs.clone());
    let router = builder
        .add_service(InterceptedService::new(health, auth.clone()))
        .add_service(InterceptedService::new(reflection, auth.clone()))
        .add_service(InterceptedService::new(reflection_alpha, auth.clone()))
        .add_service(StemStoreServer::with_interceptor(store, auth.clone()))
        .add_service(RenderServer::with_interceptor(render, auth));

    let jobs_for_stop = jobs.clone();
    let stop = async move {
        shutdown.await;
        let deadline = Instant::now() + grace;
        tracing::info!(grace_s = grace.as_secs_f64(), "shutting down");
        // Health first, so load balancers and clients stop sending work.
        health_reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        health_reporter
            .set_not_serving::<StemStoreServer<store::StemStoreService>>()
            .await;
        health_reporter
            .set_not_serving::<RenderServer<render::RenderService>>()
            .await;
        draining.send_replace(true);
        jobs_for_stop.drain();
        if !jobs_for_stop.wait_idle(deadline).await {
            tracing::info!("grace period over: stopping the running jobs");
        }
        jobs_for_stop.checkpoint_running();
        cut.send_replace(true);
        // The engines see their cancel flags at their next check; give them a
        // moment to wind down (their jobs are already written back as queued).
        jobs_for_stop
            .wait_idle(Instant::now() + Duration::from_secs(2))
            .await;
    };
    let result = router
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stop)
        .await
        .map_err(|e| Error::Io(format!("server: {e}")));
    jobs.drain();
    jobs.checkpoint_running();
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
