//! The render graph: tracks → buses → mix → master → deliverables.
//!
//! # Brief overview
//! [`render_session`] is the one entry point the service, the tests and the bench
//! call the same way: a validated [`Session`], a way to find its stems on disk, an
//! output folder. It writes `mix.wav`, one file per deliverable and `report.json`.
//! [`master_file`] masters a single file (`bounce master`) through the same chain.

pub mod graph;
mod reverb;
pub mod strip;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde_json::json;

use crate::dsp::convolution::{ConvolutionBank, CpuConvolutionBank};
use crate::dsp::fir::FirBank;
use crate::gpu::GpuContext;
use crate::master::{self, MasterJob};
use crate::session::{Deliverable, Master, StemRef, ValidSession, Variant};
use crate::{Error, Result};

/// Which backend runs the spectral work (convolution, FFT filters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// A hardware GPU when wgpu finds one, else the CPU twin.
    #[default]
    Auto,
    /// The GPU (any adapter, software ones included); an error if there is none.
    Gpu,
    /// The CPU twin.
    Cpu,
}

/// How to render.
#[derive(Clone, Default)]
pub struct RenderOptions {
    /// Backend wanted.
    pub backend: BackendChoice,
    /// The server's GPU context, when it has one.
    pub gpu: Option<Arc<GpuContext>>,
    /// The per-job limits the server was configured with.
    pub limits: crate::session::Limits,
}

/// Finds a stem's bytes on disk (the service maps hashes to its store; tests map paths).
pub type StemResolver<'a> = &'a (dyn Fn(&StemRef) -> Result<PathBuf> + Sync);

/// Receives progress: (stage, fraction 0..=1 of that stage).
pub type ProgressFn<'a> = &'a (dyn Fn(&str, f64) + Sync);

/// What a render wrote.
#[derive(Debug, Clone)]
pub struct RenderOutput {
    /// File names written in the output folder, `report.json` last.
    pub files: Vec<String>,
    /// The QC report as JSON (also written as `report.json`).
    pub report_json: String,
}

/// The backend a render actually uses.
#[derive(Clone)]
enum Spectral {
    Cpu,
    Gpu(Arc<GpuContext>),
}

impl Spectral {
    fn choose(opts: &RenderOptions) -> Result<Self> {
        Ok(match (opts.backend, &opts.gpu) {
            (BackendChoice::Cpu, _) => Spectral::Cpu,
            (BackendChoice::Gpu, Some(ctx)) => Spectral::Gpu(ctx.clone()),
            (BackendChoice::Gpu, None) => {
                return Err(Error::Gpu(
                    "--backend gpu: this server has no GPU adapter".into(),
                ));
            }
            (BackendChoice::Auto, Some(ctx)) if ctx.is_hardware() => Spectral::Gpu(ctx.clone()),
            (BackendChoice::Auto, _) => Spectral::Cpu,
        })
    }

    fn name(&self) -> String {
        match self {
            Spectral::Cpu => "cpu".into(),
            Spectral::Gpu(ctx) => format!("gpu ({})", ctx.adapter_name()),
        }
    }

    fn bank(&self) -> Result<Box<dyn ConvolutionBank>> {
        Ok(match self {
            Spectral::Cpu => Box::new(CpuConvolutionBank::new(strip::BLOCK)),
            Spectral::Gpu(ctx) => Box::new(crate::gpu::GpuConvolutionBank::new(
                ctx.clone(),
                strip::BLOCK,
            )?),
        })
    }

    fn fir(&self, kernels: Vec<Vec<f32>>, block: usize) -> Result<Box<dyn FirBank>> {
        match self {
            Spectral::Cpu => crate::dsp::fir::cpu_fir_bank(kernels, block),
            Spectral::Gpu(ctx) => crate::gpu::gpu_fir_bank(ctx.clone(), kernels, block),
        }
    }
}

/// Renders a validated session into `out_dir`. A GPU failure mid-job re-renders the
/// job on the CPU twin (logged, and counted in the report).
pub fn render_session(
    session: &ValidSession,
    stems: StemResolver<'_>,
    out_dir: &Path,
    opts: &RenderOptions,
    progress: ProgressFn<'_>,
    cancel: &AtomicBool,
) -> Result<RenderOutput> {
    let backend = Spectral::choose(opts)?;
    match render_with(session, stems, out_dir, &backend, 0, progress, cancel) {
        Err(Error::Gpu(msg)) if matches!(backend, Spectral::Gpu(_)) => {
            tracing::warn!("GPU failed ({msg}); rendering this job again on the CPU");
            progress(&format!("gpu failed ({msg}); re-rendering on cpu"), 0.0);
            render_with(session, stems, out_dir, &Spectral::Cpu, 1, progress, cancel)
        }
        other => other,
    }
}

#[allow(clippy::too_many_arguments)]
fn render_with(
    session: &ValidSession,
    stems: StemResolver<'_>,
    out_dir: &Path,
    backend: &Spectral,
    gpu_fallbacks: u32,
    progress: ProgressFn<'_>,
    cancel: &AtomicBool,
) -> Result<RenderOutput> {
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir.display(), e))?;
    progress("prepare", 0.0);
    let plan = graph::plan(session, stems, cancel)?;
    progress("prepare", 1.0);

    // The main variant makes mix.wav; every other variant wanted gets its own mix.
    let mut variants = vec![Variant::Main];
    for d in &session.deliverables {
        if !variants.contains(&d.variant) {
            variants.push(d.variant);
        }
    }
    let fir = |k: Vec<Vec<f32>>, block: usize| backend.fir(k, block);
    let gpu_err = |e: Error| match backend {
        Spectral::Gpu(_) => match e {
            Error::Cancelled | Error::InvalidSession(_) | Error::BadAudio(_) | Error::Limit(_) => e,
            other => Error::Gpu(other.to_string()),
        },
        Spectral::Cpu => e,
    };

    let mut files = Vec::new();
    let mut mix_report = serde_json::Value::Null;
    let mut deliverables = Vec::new();
    let bank = || backend.bank();
    for variant in variants {
        let stage = if variant == Variant::Main {
            "mix".to_string()
        } else {
            format!("mix ({})", variant.as_str())
        };
        let mix = graph::render_mix(
            session,
            variant,
            &plan,
            &bank,
            &|_, f| progress(&stage, f),
            cancel,
        )
        .map_err(gpu_err)?;
        if variant == Variant::Main {
            let path = out_dir.join("mix.wav");
            crate::audio::encode::write_wav_f32(&path, &[&mix[0], &mix[1]], session.sample_rate)?;
            let qc = master::analyze(&mix, session.sample_rate, "mix.wav")?;
            mix_report = serde_json::to_value(&qc).map_err(|e| Error::Internal(e.to_string()))?;
            files.push("mix.wav".to_string());
        }
        let wanted: Vec<&Deliverable> = session
            .deliverables
            .iter()
            .filter(|d| d.variant == variant)
            .collect();
        if wanted.is_empty() {
            continue;
        }
        // The chain and its analyses once for all of this mix's deliverables.
        for d in &wanted {
            master::check_deliverable(d)?;
        }
        progress("master chain", 0.0);
        let prep = master::prepare(
            [&mix[0], &mix[1]],
            session.sample_rate,
            session.master.as_ref(),
            &fir,
            wanted.iter().any(|d| d.ceiling_dbtp.is_some()),
            cancel,
        )
        .map_err(gpu_err)?;
        progress("master chain", 1.0);
        for d in wanted {
            if cancel.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            let stage = format!("master {}", d.name);
            progress(&stage, 0.0);
            let name = format!("{}.{}", d.name, d.format.ext());
            let plot = format!("{}.png", d.name);
            let qc = master::finish(
                &prep,
                session.master.as_ref(),
                d,
                d.album_gain_db,
                &out_dir.join(&name),
                Some(&out_dir.join(&plot)),
                cancel,
            )
            .map_err(gpu_err)?;
            let mut v = serde_json::to_value(&qc).map_err(|e| Error::Internal(e.to_string()))?;
            if let Some(o) = v.as_object_mut() {
                o.insert("name".into(), json!(d.name));
                o.insert("variant".into(), json!(d.variant.as_str()));
            }
            deliverables.push(v);
            files.push(name);
            files.push(plot);
            progress(&stage, 1.0);
        }
    }
    let report = json!({
        "session": session.name,
        "backend": { "reverb": backend.name(), "master_fft": backend.name(), "dynamics": "cpu", "gpu_fallbacks": gpu_fallbacks },
        "mix": mix_report,
        "deliverables": deliverables,
    });
    finish(out_dir, files, report)
}

fn finish(
    out_dir: &Path,
    mut files: Vec<String>,
    report: serde_json::Value,
) -> Result<RenderOutput> {
    let report_json =
        serde_json::to_string_pretty(&report).map_err(|e| Error::Internal(e.to_string()))?;
    let path = out_dir.join("report.json");
    std::fs::write(&path, &report_json).map_err(|e| Error::io(path.display(), e))?;
    files.push("report.json".into());
    Ok(RenderOutput { files, report_json })
}

/// Masters one audio file (`bounce master`): mono is mastered as dual mono; more than
/// two channels is an error. Writes the deliverable and `report.json` into `out_dir`.
#[allow(clippy::too_many_arguments)]
pub fn master_file(
    input: &Path,
    display: &str,
    chain: Option<&Master>,
    deliverable: &Deliverable,
    out_dir: &Path,
    opts: &RenderOptions,
    progress: ProgressFn<'_>,
    cancel: &AtomicBool,
) -> Result<RenderOutput> {
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir.display(), e))?;
    let backend = Spectral::choose(opts)?;
    let buf = crate::audio::decode::read_all_limited(input, display, opts.limits.max_stem_frames)?;
    let (l, r) = match buf.channels.as_slice() {
        [m] => (m, m),
        [l, r] => (l, r),
        other => {
            return Err(Error::BadAudio(format!(
                "{display}: {} channels; `bounce master` takes mono or stereo",
                other.len()
            )));
        }
    };
    let input_qc = master::analyze(&buf.channels, buf.sample_rate, display)?;
    progress("master", 0.0);
    let fir = |k: Vec<Vec<f32>>, block: usize| backend.fir(k, block);
    let name = format!("{}.{}", deliverable.name, deliverable.format.ext());
    let job = MasterJob {
        mix: [l, r],
        mix_rate: buf.sample_rate,
        chain,
        deliverable,
        fir: &fir,
        gain_override_db: None,
    };
    let plot = format!("{}.png", deliverable.name);
    let qc = master::master_deliverable_with_plot(
        &job,
        &out_dir.join(&name),
        Some(&out_dir.join(&plot)),
        cancel,
    )?;
    progress("master", 1.0);
    let report = json!({
        "input": input_qc,
        "backend": { "master_fft": backend.name(), "dynamics": "cpu" },
        "deliverables": [qc],
    });
    finish(out_dir, vec![name, plot], report)
}
