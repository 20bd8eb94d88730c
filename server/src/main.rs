//! `bounced`: the Bounce render server.
//!
//! ```text
//! bounced --listen 127.0.0.1:7878 --data-dir DIR [--backend auto|gpu|cpu] [--tokens FILE]
//!         [--tls-cert F --tls-key F] [--jobs N]
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use bounce_server::engine::BackendChoice;
use bounce_server::service::{self, ServerConfig};
use clap::{Parser, ValueEnum};

/// Bounce render server: mixes and masters sessions sent over gRPC.
#[derive(Debug, Parser)]
#[command(name = "bounced", version)]
struct Args {
    /// Address to listen on (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:7878")]
    listen: SocketAddr,
    /// Folder of the store: stems, jobs and renders.
    #[arg(long)]
    data_dir: PathBuf,
    /// Spectral work on a GPU or the CPU twin (auto: a hardware GPU if there is one).
    #[arg(long, value_enum, default_value_t = Backend::Auto)]
    backend: Backend,
    /// Tokens file: every request then needs `authorization: Bearer <token>`.
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// TLS certificate (PEM); needs --tls-key.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM); needs --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Jobs rendering at once (the engine already uses every core).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    jobs: u16,
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
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bounced: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> bounce_server::Result<()> {
    let mut cfg = ServerConfig::new(args.listen, args.data_dir);
    cfg.backend = match args.backend {
        Backend::Auto => BackendChoice::Auto,
        Backend::Gpu => BackendChoice::Gpu,
        Backend::Cpu => BackendChoice::Cpu,
    };
    cfg.tokens = args.tokens;
    cfg.tls = args.tls_cert.zip(args.tls_key);
    cfg.max_concurrent_jobs = usize::from(args.jobs);
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
