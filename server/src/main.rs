//! `bounced`: the Bounce render server.
//!
//! ```text
//! bounced --listen 127.0.0.1:7878 --data-dir DIR [--backend auto|gpu|cpu] [--tokens FILE]
//!         [--tls-cert F --tls-key F] [--jobs N] [--config FILE] [--insecure-open]
//!         [--shutdown-grace-s S] [--max-mix-seconds S] [--max-job-seconds S]
//!         [--max-upload-bytes N] [--max-stored-bytes N] [--retention-days D]
//!         [--max-store-bytes N] [--retention-interval-s S]
//! ```
//! Flags win over the config file's keys of the same name.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bounce_server::engine::BackendChoice;
use bounce_server::service::{self, ConfigFile, ServerConfig};
use clap::{Parser, ValueEnum};

/// Bounce render server: mixes and masters sessions sent over gRPC.
#[derive(Debug, Parser)]
#[command(name = "bounced", version)]
struct Args {
    /// Address to listen on (port 0: any free port; the address is printed).
    /// Default 127.0.0.1:7878. A non-loopback address needs --tokens (or --insecure-open).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Folder of the store: stems, jobs and renders (one server per folder).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Spectral work on a GPU or the CPU twin (auto: a hardware GPU if there is one).
    #[arg(long, value_enum)]
    backend: Option<Backend>,
    /// A TOML config file: the flags' keys (listen, data_dir, ...), `[limits]`
    /// and `[retention]`.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Serve without tokens on a non-loopback address (anyone who reaches it may use it).
    #[arg(long)]
    insecure_open: bool,
    /// Seconds running jobs may go on after SIGTERM before they are queued again (default 30).
    #[arg(long)]
    shutdown_grace_s: Option<f64>,
    /// Seconds of mix timeline per job, at the session's rate.
    #[arg(long)]
    max_mix_seconds: Option<f64>,
    /// Wall-clock seconds one job may render.
    #[arg(long)]
    max_job_seconds: Option<f64>,
    /// Bytes of one upload (default 4 GiB).
    #[arg(long)]
    max_upload_bytes: Option<u64>,
    /// Stem bytes one project may own.
    #[arg(long)]
    max_stored_bytes: Option<u64>,
    /// Days finished renders and unused stems are kept (default 30; 0: forever).
    #[arg(long)]
    retention_days: Option<f64>,
    /// Bytes of stems and renders the store may hold before the oldest go (0: no cap).
    #[arg(long)]
    max_store_bytes: Option<u64>,
    /// Seconds between retention sweeps (default 600).
    #[arg(long)]
    retention_interval_s: Option<f64>,
    /// Tokens file: every request then needs `authorization: Bearer <token>`.
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// TLS certificate (PEM); needs --tls-key.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Jobs rendering at once (default 1: the engine already uses every core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    jobs: Option<u16>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Backend {
    Auto,
    Gpu,
    Cpu,
}

fn main() -> ExitCode {
    service::prepare_process_env();
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,flacenc=warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bounced: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(args));
    // A render thread still winding down must not hold the exit (its job is
    // already written back as queued).
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bounced: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Flags over the config file over the defaults.
fn config(args: Args) -> bounce_server::Result<ServerConfig> {
    use bounce_server::Error;
    let file = match &args.config {
        Some(path) => Some((ConfigFile::load(path)?, path.clone())),
        None => None,
    };
    let f = file.as_ref().map(|(f, _)| f);
    let listen = args
        .listen
        .or(f.and_then(|f| f.listen))
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7878)));
    let data_dir = args
        .data_dir
        .or(f.and_then(|f| f.data_dir.clone()))
        .ok_or_else(|| {
            Error::InvalidSession("--data-dir: required (or data_dir in --config)".into())
        })?;
    let mut cfg = ServerConfig::new(listen, data_dir);
    if let Some((f, path)) = &file {
        f.apply_limits(&mut cfg, path)?;
    }
    let backend = match (args.backend, f.and_then(|f| f.backend.as_deref())) {
        (Some(b), _) => b,
        (None, Some("auto")) | (None, None) => Backend::Auto,
        (None, Some("gpu")) => Backend::Gpu,
        (None, Some("cpu")) => Backend::Cpu,
        (None, Some(other)) => {
            return Err(Error::InvalidSession(format!(
                "--config: backend = {other:?}: expected auto, gpu or cpu"
            )));
        }
    };
    cfg.backend = match backend {
        Backend::Auto => BackendChoice::Auto,
        Backend::Gpu => BackendChoice::Gpu,
        Backend::Cpu => BackendChoice::Cpu,
    };
    cfg.tokens = args.tokens.or(f.and_then(|f| f.tokens.clone()));
    cfg.insecure_open = args.insecure_open || f.and_then(|f| f.insecure_open).unwrap_or(false);
    let cert = args.tls_cert.or(f.and_then(|f| f.tls_cert.clone()));
    let key = args.tls_key.or(f.and_then(|f| f.tls_key.clone()));
    cfg.tls = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        _ => {
            return Err(Error::InvalidSession(
                "--tls-cert and --tls-key: give both or neither".into(),
            ));
        }
    };
    cfg.max_concurrent_jobs = usize::from(args.jobs.or(f.and_then(|f| f.jobs)).unwrap_or(1).max(1));
    let positive = |flag: &str, v: f64| -> bounce_server::Result<f64> {
        if v.is_finite() && v > 0.0 {
            Ok(v)
        } else {
            Err(Error::InvalidSession(format!(
                "{flag}: {v} is not a positive number"
            )))
        }
    };
    if let Some(g) = args.shutdown_grace_s {
        cfg.shutdown_grace = service::grace(g)
            .map_err(|e| Error::InvalidSession(format!("--shutdown-grace-s: {e}")))?;
    }
    if let Some(v) = args.max_mix_seconds {
        cfg.service_limits.max_mix_seconds = Some(positive("--max-mix-seconds", v)?);
    }
    if let Some(v) = args.max_job_seconds {
        cfg.service_limits.max_job_seconds = Some(positive("--max-job-seconds", v)?);
    }
    if let Some(v) = args.max_upload_bytes {
        cfg.service_limits.max_upload_bytes = v;
    }
    if let Some(v) = args.max_stored_bytes {
        cfg.service_limits.max_stored_bytes = Some(v);
    }
    if let Some(d) = args.retention_days {
        if !(d.is_finite() && (0.0..1e6).contains(&d)) {
            return Err(Error::InvalidSession(format!(
                "--retention-days: {d} is not a number of days (0: keep forever)"
            )));
        }
        cfg.retention.max_age = (d > 0.0).then(|| Duration::from_secs_f64(d * 86_400.0));
    }
    if let Some(b) = args.max_store_bytes {
        cfg.retention.max_store_bytes = (b > 0).then_some(b);
    }
    if let Some(s) = args.retention_interval_s {
        cfg.retention.interval =
            Duration::from_secs_f64(positive("--retention-interval-s", s)?.min(1e7));
    }
    Ok(cfg)
}

async fn run(args: Args) -> bounce_server::Result<()> {
    let cfg = config(args)?;
    let tls = cfg.tls.is_some();
    let (addr, mut handle) = service::spawn(cfg).await?;
    eprintln!(
        "bounced listening on {addr}{}",
        if tls { " (tls)" } else { "" }
    );
    let stopped = tokio::select! {
        r = handle.wait() => Some(r),
        _ = shutdown_signal() => None,
    };
    match stopped {
        Some(r) => r,
        None => handle.shutdown().await,
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
