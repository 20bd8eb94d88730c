//! How a server runs: [`ServerConfig`], and the optional TOML config file that
//! `bounced --config FILE` reads (flags given on the command line win over it).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::engine::BackendChoice;
use crate::session::Limits;
use crate::{Error, Result};

/// The largest stem the store accepts by default, in bytes.
pub const MAX_STEM_BYTES: u64 = 4 << 30;

/// What the service itself bounds (the per-job session limits are [`Limits`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceLimits {
    /// Hashes in one `Missing` request.
    pub max_missing_hashes: usize,
    /// Bytes of one upload (a token may lower it).
    pub max_upload_bytes: u64,
    /// Stem bytes one project may own in the store (None: no limit; a token may set it).
    pub max_stored_bytes: Option<u64>,
    /// Wall-clock seconds one job may render (None: no limit; a token may set it).
    pub max_job_seconds: Option<f64>,
    /// Seconds of mix timeline per job, at the session's rate (None: only
    /// `Limits::max_mix_frames`; a token may set it).
    pub max_mix_seconds: Option<f64>,
    /// Jobs waiting in the queue, all projects together.
    pub max_queued_total: usize,
}

impl Default for ServiceLimits {
    fn default() -> Self {
        ServiceLimits {
            max_missing_hashes: 100_000,
            max_upload_bytes: MAX_STEM_BYTES,
            max_stored_bytes: None,
            max_job_seconds: None,
            max_mix_seconds: None,
            max_queued_total: 10_000,
        }
    }
}

/// When finished renders and unused stems are removed.
#[derive(Debug, Clone, PartialEq)]
pub struct Retention {
    /// Finished jobs (and their renders) older than this, and stems no job refers
    /// to that were last used longer ago, are removed. None: kept by age.
    pub max_age: Option<Duration>,
    /// When stems and renders together pass this many bytes, the oldest finished
    /// renders and least recently used unreferenced stems go first. None: no cap.
    pub max_store_bytes: Option<u64>,
    /// How often the sweep runs.
    pub interval: Duration,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: Some(Duration::from_secs(30 * 24 * 3600)),
            max_store_bytes: None,
            interval: Duration::from_secs(600),
        }
    }
}

/// How a server runs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on (port 0: any free port, see [`super::spawn`]).
    pub listen: SocketAddr,
    /// Root of the store: stems, jobs and their renders.
    pub data_dir: PathBuf,
    /// Backend for the spectral work; the GPU context is made once, at start.
    pub backend: BackendChoice,
    /// The tokens file (CONTRACT.md); `None`: open, one project "default".
    pub tokens: Option<PathBuf>,
    /// Serve without tokens on a non-loopback address (refused otherwise).
    pub insecure_open: bool,
    /// TLS certificate and key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Jobs rendering at once (at least 1; the engine already uses every core).
    pub max_concurrent_jobs: usize,
    /// Re-queue the jobs a previous run left queued or running (a shared server
    /// wants this; the client's one-run embedded server does not, and marks them
    /// failed instead).
    pub resume_jobs: bool,
    /// Per-job limits handed to validation and the engine.
    pub limits: Limits,
    /// The service's own bounds.
    pub service_limits: ServiceLimits,
    /// Expiry of renders and stems.
    pub retention: Retention,
    /// On shutdown, how long running jobs may go on before they are stopped and
    /// queued again for the next start.
    pub shutdown_grace: Duration,
}

impl ServerConfig {
    /// A config with the defaults: auto backend, open, no TLS, one job at a time,
    /// unfinished jobs resumed, default limits, 30 days' retention, 30 s grace.
    pub fn new(listen: SocketAddr, data_dir: impl Into<PathBuf>) -> Self {
        ServerConfig {
            listen,
            data_dir: data_dir.into(),
            backend: BackendChoice::Auto,
            tokens: None,
            insecure_open: false,
            tls: None,
            max_concurrent_jobs: 1,
            resume_jobs: true,
            limits: Limits::default(),
            service_limits: ServiceLimits::default(),
            retention: Retention::default(),
            shutdown_grace: Duration::from_secs(30),
        }
    }

    /// Refuses what is unsafe or meaningless before anything is opened: an open
    /// (token-less) server on a non-loopback address, zero-sized limits.
    pub fn check(&self) -> Result<()> {
        if !self.listen.ip().is_loopback() && self.tokens.is_none() && !self.insecure_open {
            return Err(Error::InvalidSession(format!(
                "--listen {}: not a loopback address, and no --tokens file: anyone who reaches it could render and read every job; give --tokens FILE (or --insecure-open to serve openly on purpose)",
                self.listen
            )));
        }
        let l = &self.limits;
        for (name, v) in [
            ("max_mix_frames", l.max_mix_frames),
            ("max_stem_frames", l.max_stem_frames),
            ("max_ir_frames", l.max_ir_frames),
            ("max_job_memory", l.max_job_memory),
            ("max_upload_bytes", self.service_limits.max_upload_bytes),
        ] {
            if v == 0 {
                return Err(Error::InvalidSession(format!(
                    "limits: {name} = 0 would refuse every job"
                )));
            }
        }
        Ok(())
    }
}

/// `bounced --config FILE`: every key optional; unknown keys are an error naming them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--backend`: auto, gpu or cpu.
    pub backend: Option<String>,
    /// `--tokens`.
    pub tokens: Option<PathBuf>,
    /// `--insecure-open`.
    pub insecure_open: Option<bool>,
    /// `--tls-cert`.
    pub tls_cert: Option<PathBuf>,
    /// `--tls-key`.
    pub tls_key: Option<PathBuf>,
    /// `--jobs`.
    pub jobs: Option<u16>,
    /// `--shutdown-grace-s`.
    pub shutdown_grace_s: Option<f64>,
    /// `[limits]`.
    #[serde(default)]
    pub limits: LimitsFile,
    /// `[retention]`.
    #[serde(default)]
    pub retention: RetentionFile,
}

/// `[limits]` of the config file: [`Limits`] and [`ServiceLimits`] by their names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct LimitsFile {
    pub max_mix_frames: Option<u64>,
    pub max_mix_seconds: Option<f64>,
    pub max_stem_frames: Option<u64>,
    pub max_ir_frames: Option<u64>,
    pub max_tracks: Option<usize>,
    pub max_buses: Option<usize>,
    pub max_irs: Option<usize>,
    pub max_clips: Option<usize>,
    pub max_inserts: Option<usize>,
    pub max_deliverables: Option<usize>,
    pub max_automation_points: Option<usize>,
    pub max_session_bytes: Option<usize>,
    pub max_name_bytes: Option<usize>,
    pub max_job_memory: Option<u64>,
    pub max_missing_hashes: Option<usize>,
    pub max_upload_bytes: Option<u64>,
    pub max_stored_bytes: Option<u64>,
    pub max_job_seconds: Option<f64>,
    pub max_queued_total: Option<usize>,
}

/// `[retention]` of the config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionFile {
    /// Days a finished job's renders (and an unused stem) are kept; 0: forever.
    pub max_age_days: Option<f64>,
    /// Bytes the store may hold before the oldest go; 0: no cap.
    pub max_store_bytes: Option<u64>,
    /// Seconds between sweeps.
    pub interval_s: Option<f64>,
}

impl ConfigFile {
    /// Reads and parses a config file; an error names the file (and the key).
    pub fn load(path: &Path) -> Result<ConfigFile> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path.display(), e))?;
        toml::from_str(&text).map_err(|e| {
            let msg = e.message().trim().to_string();
            match e.span() {
                Some(span) => {
                    let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                    Error::InvalidSession(format!("{}:{line}: {msg}", path.display()))
                }
                None => Error::InvalidSession(format!("{}: {msg}", path.display())),
            }
        })
    }

    /// Applies `[limits]` and `[retention]` to `cfg` (listen, data dir and the other
    /// top-level keys are merged with the flags by the caller).
    pub fn apply_limits(&self, cfg: &mut ServerConfig, source: &Path) -> Result<()> {
        let f = &self.limits;
        let l = &mut cfg.limits;
        macro_rules! set {
            ($dst:expr, $src:expr) => {
                if let Some(v) = $src {
                    $dst = v;
                }
            };
        }
        set!(l.max_mix_frames, f.max_mix_frames);
        set!(l.max_stem_frames, f.max_stem_frames);
        set!(l.max_ir_frames, f.max_ir_frames);
        set!(l.max_tracks, f.max_tracks);
        set!(l.max_buses, f.max_buses);
        set!(l.max_irs, f.max_irs);
        set!(l.max_clips, f.max_clips);
        set!(l.max_inserts, f.max_inserts);
        set!(l.max_deliverables, f.max_deliverables);
        set!(l.max_automation_points, f.max_automation_points);
        set!(l.max_session_bytes, f.max_session_bytes);
        set!(l.max_name_bytes, f.max_name_bytes);
        set!(l.max_job_memory, f.max_job_memory);
        let s = &mut cfg.service_limits;
        set!(s.max_missing_hashes, f.max_missing_hashes);
        set!(s.max_upload_bytes, f.max_upload_bytes);
        set!(s.max_queued_total, f.max_queued_total);
        let positive = |key: &str, v: Option<f64>| -> Result<Option<f64>> {
            match v {
                Some(x) if !(x.is_finite() && x > 0.0) => Err(Error::InvalidSession(format!(
                    "{}: limits.{key}: {x} is not a positive number",
                    source.display()
                ))),
                v => Ok(v),
            }
        };
        if let Some(v) = positive("max_mix_seconds", f.max_mix_seconds)? {
            s.max_mix_seconds = Some(v);
        }
        if let Some(v) = positive("max_job_seconds", f.max_job_seconds)? {
            s.max_job_seconds = Some(v);
        }
        if let Some(v) = f.max_stored_bytes {
            s.max_stored_bytes = Some(v);
        }
        let r = &self.retention;
        if let Some(days) = r.max_age_days {
            if !(days.is_finite() && (0.0..1e6).contains(&days)) {
                return Err(Error::InvalidSession(format!(
                    "{}: retention.max_age_days: {days} is not a number of days (0: keep forever)",
                    source.display()
                )));
            }
            cfg.retention.max_age = (days > 0.0).then(|| Duration::from_secs_f64(days * 86_400.0));
        }
        if let Some(b) = r.max_store_bytes {
            cfg.retention.max_store_bytes = (b > 0).then_some(b);
        }
        if let Some(s) = positive("retention.interval_s", r.interval_s)? {
            cfg.retention.interval = Duration::from_secs_f64(s.min(1e7));
        }
        if let Some(g) = self.shutdown_grace_s {
            cfg.shutdown_grace = grace(g).map_err(|e| {
                Error::InvalidSession(format!("{}: shutdown_grace_s: {e}", source.display()))
            })?;
        }
        Ok(())
    }
}

/// A grace period in seconds, checked.
pub fn grace(seconds: f64) -> std::result::Result<Duration, String> {
    if seconds.is_finite() && (0.0..=86_400.0).contains(&seconds) {
        Ok(Duration::from_secs_f64(seconds))
    } else {
        Err(format!("{seconds} is not 0..=86400 seconds"))
    }
}
