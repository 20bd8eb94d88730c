//! Mastering: the `[master]` chain, loudness normalisation, the true-peak limiter,
//! sample-rate conversion, dither, deliverable files and their QC reports.
//!
//! # Brief overview
//! [`master_deliverable`] runs, for one deliverable: mix → [`apply_chain`] (EQ,
//! multiband, width) → gain → true-peak limiter → resample → dither → write, and
//! answers the [`QcReport`] measured on the samples exactly as written.
//!
//! The gain search is cheap because the two costly analyses of the chain's output
//! do not depend on the gain: the 4× oversampled peak envelope (the limiter's
//! detector) and the K-weighted energy of short blocks (the loudness meter's input).
//! Each trial gain then costs one pass over ~N/32 block values: the limiter's gain
//! curve and the gated loudness of (gain × curve)² × energy. The chosen gain is
//! rendered once, resampled, dithered and measured with the ebur128 crate; if the
//! file misses the target by more than 0.1 LU or its true peak exceeds the ceiling,
//! the gain or the limiter's internal ceiling is corrected and the render repeated.
//!
//! Bad input, documented: silence or a mix shorter than one 400 ms gating block has
//! no integrated loudness, so no normalising gain is applied (a note says so) and
//! only the limiter acts. A target outside −40..−5 LUFS or a ceiling above 0 dBTP is
//! an error.

mod chain;
mod plot;
mod qc;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use chain::check_cancel;
pub use chain::{Chained, FirFactory, apply_chain};
pub use plot::{long_term_spectrum, write_plot};
pub use qc::{CLIP_LEVEL, QcReport, analyze, analyze_slices, file_warnings};

use crate::dsp::dither::{NoiseShaping, quantize_in_place};
use crate::dsp::limiter::{
    LimiterParams, apply_gain_curve, apply_gain_curve_at, gain_curve, peak_envelope,
};
use crate::dsp::meter::{gated_loudness, k_power_blocks, samples_per_100ms};
use crate::session::{Deliverable, Format};
use crate::{Error, Result};

/// Everything needed to master one deliverable from the mix.
pub struct MasterJob<'a> {
    /// The stereo mix (mono sources: pass the one channel twice).
    pub mix: [&'a [f32]; 2],
    /// The mix's sample rate.
    pub mix_rate: u32,
    /// `[master]`, if any.
    pub chain: Option<&'a crate::session::Master>,
    /// What to make.
    pub deliverable: &'a Deliverable,
    /// Builds FIR banks (GPU or CPU twin) for the EQ and the band split.
    pub fir: &'a dyn Fn(Vec<Vec<f32>>, usize) -> Result<Box<dyn crate::dsp::fir::FirBank>>,
    /// Album mode: this gain (dB, before the limiter) instead of the target search.
    pub gain_override_db: Option<f64>,
}

/// Loudness targets accepted, LUFS.
pub const TARGET_RANGE: (f64, f64) = (-40.0, -5.0);
/// The limiter aims this far under the ceiling, dB, so SRC and dither keep under it.
pub const CEILING_MARGIN_DB: f64 = 0.1;
/// The final file must land this close to the target, LU (the contract allows 0.3).
const LOUDNESS_TOLERANCE: f64 = 0.1;
/// Warn when the limiter must take more than this, dB.
const HEAVY_LIMITING_DB: f64 = 6.0;

/// Checks a deliverable's numbers (target, ceiling, depth, format, rate).
pub fn check_deliverable(d: &Deliverable) -> Result<()> {
    let f = |field: &str, msg: String| {
        Error::InvalidSession(format!("deliverable \"{}\": {field}: {msg}", d.name))
    };
    if let Some(t) = d.target_lufs
        && !(t.is_finite() && (TARGET_RANGE.0..=TARGET_RANGE.1).contains(&t))
    {
        return Err(f(
            "target_lufs",
            format!(
                "{t} is outside {} to {} LUFS",
                TARGET_RANGE.0, TARGET_RANGE.1
            ),
        ));
    }
    if let Some(c) = d.ceiling_dbtp
        && !(c.is_finite() && (-60.0..=0.0).contains(&c))
    {
        return Err(f("ceiling_dbtp", format!("{c} is outside -60 to 0 dBTP")));
    }
    if ![16, 24, 32].contains(&d.bit_depth) {
        return Err(f(
            "bit_depth",
            format!("{} is not 16, 24 or 32", d.bit_depth),
        ));
    }
    if d.noise_shaping && d.bit_depth == 32 {
        return Err(f(
            "noise_shaping",
            "a 32-bit float deliverable is not dithered; noise shaping needs 16 or 24 bits".into(),
        ));
    }
    if d.format == Format::Flac && d.bit_depth == 32 {
        return Err(f("bit_depth", "a FLAC deliverable is 16 or 24 bits".into()));
    }
    if !(8000..=384_000).contains(&d.sample_rate) {
        return Err(f(
            "sample_rate",
            format!("{} is outside 8000 to 384000 Hz", d.sample_rate),
        ));
    }
    Ok(())
}

/// Block (frames) of the limiter curve and the loudness blocks: the largest divisor
/// of the 100 ms segment that is ≤ 32, so blocks tile the gating segments exactly.
fn analysis_block(rate: u32) -> usize {
    let seg = samples_per_100ms(rate);
    (1..=32).rev().find(|b| seg.is_multiple_of(*b)).unwrap_or(1)
}

/// Estimated integrated loudness after `pre_gain_db` and the gain `curve`, from the
/// K-weighted block energies (the curve is smooth over a block, so weighting each
/// block's energy by its mean gain² is accurate to ~0.01 LU).
fn estimate_loudness(
    kblocks: &[f64],
    curve: &[f32],
    pre_gain_db: f64,
    block: usize,
    seg: usize,
) -> Option<f64> {
    let g2 = 10f64.powf(pre_gain_db / 10.0);
    let per_seg = seg / block;
    let segs: Vec<f64> = kblocks
        .chunks(per_seg)
        .enumerate()
        .filter(|(_, c)| c.len() == per_seg)
        .map(|(s, c)| {
            let mut e = 0.0;
            for (j, &k) in c.iter().enumerate() {
                let b = s * per_seg + j;
                let a = curve.get(b).copied().unwrap_or(1.0) as f64;
                let z = curve.get(b + 1).copied().unwrap_or(a as f32) as f64;
                // Mean of the square of a linear ramp from a to z.
                e += k * (a * a + a * z + z * z) / 3.0;
            }
            e * g2 / seg as f64
        })
        .collect();
    gated_loudness(&segs)
}

/// Masters and writes `out_path` (wav or flac per the deliverable); returns its QC
/// report, measured on the file's samples as written.
pub fn master_deliverable(
    job: &MasterJob,
    out_path: &Path,
    cancel: &AtomicBool,
) -> Result<QcReport> {
    master_deliverable_with_plot(job, out_path, None, cancel)
}

/// [`master_deliverable`], also writing the QC picture to `plot_path` when given.
pub fn master_deliverable_with_plot(
    job: &MasterJob,
    out_path: &Path,
    plot_path: Option<&Path>,
    cancel: &AtomicBool,
) -> Result<QcReport> {
    check_deliverable(job.deliverable)?;
    let prep = prepare(
        job.mix,
        job.mix_rate,
        job.chain,
        job.fir,
        job.deliverable.ceiling_dbtp.is_some(),
        cancel,
    )?;
    finish(
        &prep,
        job.chain,
        job.deliverable,
        job.gain_override_db,
        out_path,
        plot_path,
        cancel,
    )
}

/// The `[master]` chain's output and the analyses of it that no deliverable changes
/// (the limiter's peak envelope, the K-weighted block energies, the mix's warnings):
/// made once per mix by [`prepare`], shared by every deliverable's [`finish`].
pub struct Prepared<'a> {
    mix: [&'a [f32]; 2],
    rate: u32,
    chained: Option<Vec<Vec<f32>>>,
    backend: String,
    block: usize,
    seg: usize,
    env: Vec<f32>,
    kblocks: Vec<f64>,
    pre_lufs: Option<f64>,
    warnings: Vec<String>,
}

impl Prepared<'_> {
    /// The chain's output (the mix itself when the chain does nothing).
    pub fn signal(&self) -> [&[f32]; 2] {
        match &self.chained {
            Some(c) => [&c[0][..], &c[1][..]],
            None => self.mix,
        }
    }
}

/// Checks the mix, runs the `[master]` chain and the gain-independent analyses.
/// `need_peaks`: some deliverable has a ceiling (the peak envelope is needed).
pub fn prepare<'a>(
    mix: [&'a [f32]; 2],
    rate: u32,
    chain: Option<&crate::session::Master>,
    fir: FirFactory<'_>,
    need_peaks: bool,
    cancel: &AtomicBool,
) -> Result<Prepared<'a>> {
    if !(8000..=384_000).contains(&rate) {
        return Err(Error::BadAudio(format!(
            "mix: sample rate {rate} Hz is outside 8000 to 384000"
        )));
    }
    let n = mix[0].len();
    if mix[1].len() != n {
        return Err(Error::BadAudio(
            "mix: left and right differ in length".into(),
        ));
    }
    if mix.iter().any(|c| c.iter().any(|v| !v.is_finite())) {
        return Err(Error::BadAudio(
            "mix: contains NaN or infinite samples".into(),
        ));
    }
    let t_start = std::time::Instant::now();
    let stage = |what: &str| tracing::debug!(target: "bounce::master", "{what}: {:.3} s", t_start.elapsed().as_secs_f64());
    let mut warnings = Vec::new();
    let mix_over = mix
        .iter()
        .map(|c| c.iter().filter(|v| v.abs() > 1.0).count())
        .sum::<usize>();
    if mix_over > 0 {
        let peak = mix
            .iter()
            .flat_map(|c| c.iter())
            .fold(0f32, |m, v| m.max(v.abs()));
        warnings.push(format!(
            "the mix clips before the master chain: {mix_over} samples over full scale (peak {:+.2} dBFS); lower the mix bus",
            20.0 * (peak as f64).log10()
        ));
    }
    for (c, ch) in mix.iter().enumerate() {
        if n > 0 {
            let dc = ch.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            if dc.abs() >= 0.005 {
                warnings.push(format!(
                    "the mix has heavy DC offset on channel {}: {dc:.4}; high-pass it",
                    c + 1
                ));
            }
        }
    }

    let chained = apply_chain(mix, rate, chain, fir, cancel)?;
    stage("chain");
    check_cancel(cancel)?;
    let mut prep = Prepared {
        mix,
        rate,
        chained: chained.channels,
        backend: chained.backend,
        block: analysis_block(rate),
        seg: samples_per_100ms(rate),
        env: Vec::new(),
        kblocks: Vec::new(),
        pre_lufs: None,
        warnings,
    };
    let src = prep.signal();
    let block = prep.block;
    // Gain-independent analyses, in parallel: peak envelope and K-weighted energy.
    let (env, kblocks) = rayon::join(
        || -> Result<Vec<f32>> {
            if need_peaks {
                peak_envelope(&src, block)
            } else {
                Ok(Vec::new())
            }
        },
        || k_power_blocks(&src, rate, block),
    );
    prep.env = env?;
    prep.kblocks = kblocks?;
    prep.pre_lufs = estimate_loudness(&prep.kblocks, &[], 0.0, block, prep.seg);
    stage("peak envelope and K-weighted energy");
    Ok(prep)
}

/// Makes one deliverable from a [`Prepared`] mix: gain (searched for the target, or
/// `gain_override_db` in album mode), limiter, resampling, dither; writes `out_path`
/// (and the QC picture to `plot_path`) and answers the QC report measured on the
/// samples exactly as written.
pub fn finish(
    prep: &Prepared,
    chain: Option<&crate::session::Master>,
    d: &Deliverable,
    gain_override_db: Option<f64>,
    out_path: &Path,
    plot_path: Option<&Path>,
    cancel: &AtomicBool,
) -> Result<QcReport> {
    check_deliverable(d)?;
    let t_start = std::time::Instant::now();
    let stage = |what: &str| tracing::debug!(target: "bounce::master", "{what}: {:.3} s", t_start.elapsed().as_secs_f64());
    let rate = prep.rate;
    let src = prep.signal();
    let n = src[0].len().min(src[1].len());
    let (block, seg) = (prep.block, prep.seg);
    let ceiling = d.ceiling_dbtp;
    if ceiling.is_some() && prep.env.len() != n.div_ceil(block) {
        return Err(Error::Internal(
            "mastering: prepared without the peak envelope a ceiling needs".into(),
        ));
    }
    let (env, kblocks) = (&prep.env, &prep.kblocks);
    let mut warnings = prep.warnings.clone();
    let mut notes = Vec::new();
    let pre_lufs = prep.pre_lufs;

    let lim = chain.and_then(|m| m.limiter).unwrap_or_default();
    let mut params = LimiterParams {
        ceiling_db: ceiling.unwrap_or(0.0) - CEILING_MARGIN_DB,
        release_ms: lim.release_ms,
        lookahead_ms: lim.lookahead_ms,
        ..Default::default()
    };
    let mut curve: Vec<f32> = Vec::new();
    let search = gain_override_db.is_none() && d.target_lufs.is_some() && pre_lufs.is_some();
    let mut gain_db = match (gain_override_db, d.target_lufs, pre_lufs) {
        (Some(g), _, _) => g,
        (None, Some(t), Some(l)) => t - l,
        (None, Some(_), None) => {
            notes.push(
                "no normalising gain: the mix has no integrated loudness (silence, or shorter than one 400 ms gating block)"
                    .to_string(),
            );
            0.0
        }
        (None, None, _) => 0.0,
    };
    let curve_for = |gain_db: f64, params: &LimiterParams, curve: &mut Vec<f32>| -> f64 {
        if ceiling.is_some() {
            gain_curve(env, block, rate, gain_db, params, curve).max_reduction_db
        } else {
            curve.clear();
            0.0
        }
    };
    let search_gain = |mut gain_db: f64, params: &LimiterParams, curve: &mut Vec<f32>| -> f64 {
        let target = d.target_lufs.unwrap_or(0.0);
        for _ in 0..30 {
            curve_for(gain_db, params, curve);
            let Some(est) = estimate_loudness(kblocks, curve, gain_db, block, seg) else {
                break;
            };
            let err = target - est;
            if err.abs() < 0.005 {
                break;
            }
            // The limiter flattens the response to gain: never more than 12 dB a step.
            gain_db = (gain_db + err.clamp(-12.0, 12.0)).min(80.0);
        }
        gain_db
    };
    if search {
        gain_db = search_gain(gain_db, &params, &mut curve);
    }
    stage("gain search");

    // Render, measure on the written samples, correct, repeat (rarely needed). Only
    // one render is alive at a time.
    let bits = d.bit_depth;
    let file_name = out_path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut attempt = 0;
    let (mut qc, out, reduction) = loop {
        check_cancel(cancel)?;
        let reduction = curve_for(gain_db, &params, &mut curve);
        let mut out: Vec<Vec<f32>> = if d.sample_rate != rate {
            // Gain and limiter computed piece by piece as the resampler asks: no
            // full-length copy at the mix rate beside the output.
            let out =
                crate::audio::resample::resample_from(2, n, rate, d.sample_rate, |start, bufs| {
                    for (b, x) in bufs.iter_mut().zip(src) {
                        let k = b.len();
                        apply_gain_curve_at(&x[start..start + k], b, &curve, block, gain_db, start);
                    }
                })?;
            stage("gain, limiter and resampling");
            out
        } else {
            use rayon::prelude::*;
            let out = src
                .par_iter()
                .map(|x| {
                    let mut y = vec![0f32; n];
                    apply_gain_curve(&x[..n], &mut y, &curve, block, gain_db);
                    y
                })
                .collect();
            stage("gain and limiter applied");
            out
        };
        check_cancel(cancel)?;
        if bits != 32 {
            // In place: each sample becomes its integer code / 2^(bits−1), exact in
            // f32 for 16 and 24 bits, so the meter reads exactly what the file holds.
            let shaping = if d.noise_shaping {
                NoiseShaping::Lipshitz5
            } else {
                NoiseShaping::None
            };
            quantize_in_place(&mut out, bits, shaping);
        }
        stage("dithered");
        let qc = analyze(&out, d.sample_rate, &file_name)?;
        stage("measured");
        let tp_over = match (ceiling, qc.true_peak_dbtp) {
            (Some(c), Some(tp)) => tp - c,
            _ => f64::NEG_INFINITY,
        };
        let loud_err = match (search, d.target_lufs, qc.integrated_lufs) {
            (true, Some(t), Some(i)) => t - i,
            _ => 0.0,
        };
        let ok = tp_over <= 0.0 && loud_err.abs() <= LOUDNESS_TOLERANCE;
        if ok || attempt == 3 {
            break (qc, out, reduction);
        }
        drop(out);
        attempt += 1;
        if tp_over > 0.0 {
            params.ceiling_db -= tp_over + 0.05;
        }
        if search {
            gain_db += loud_err;
            gain_db = search_gain(gain_db, &params, &mut curve);
        }
    };
    check_cancel(cancel)?;

    // Write.
    let refs: Vec<&[f32]> = out.iter().map(Vec::as_slice).collect();
    match (d.format, bits) {
        (Format::Wav, 32) => {
            crate::audio::encode::write_wav_f32(out_path, &refs, d.sample_rate)?;
        }
        (Format::Wav, _) => {
            crate::audio::encode::write_wav_quantized(out_path, &refs, d.sample_rate, bits as u16)?;
        }
        (Format::Flac, 16 | 24) => {
            crate::audio::encode::write_flac_quantized(
                out_path,
                &refs,
                d.sample_rate,
                bits as u16,
            )?;
        }
        (Format::Flac, _) => {
            return Err(Error::InvalidSession(format!(
                "deliverable \"{}\": a FLAC deliverable is 16 or 24 bits",
                d.name
            )));
        }
    }
    stage("written");

    // Report.
    if let (Some(c), Some(tp)) = (ceiling, qc.true_peak_dbtp)
        && tp > c
    {
        warnings.push(format!(
            "true peak {tp:.2} dBTP is over the {c:.1} dBTP ceiling after resampling and dither"
        ));
    }
    if let (true, Some(t), Some(i)) = (search, d.target_lufs, qc.integrated_lufs)
        && (t - i).abs() > 0.3
    {
        warnings.push(format!(
            "integrated loudness {i:.2} LUFS misses the {t:.1} LUFS target"
        ));
    }
    if reduction > HEAVY_LIMITING_DB {
        warnings.push(format!(
            "the target needs {reduction:.1} dB of limiting (more than {HEAVY_LIMITING_DB} dB): expect audible squashing; consider a lower target or more compression in the mix"
        ));
    }
    warnings.append(&mut qc.warnings);
    qc.warnings = warnings;
    qc.notes.append(&mut notes);
    qc.backend = if prep.backend.is_empty() {
        "cpu".into()
    } else {
        prep.backend.clone()
    };
    qc.limiter_gain_reduction_max_db = ceiling.map(|_| reduction);
    qc.gain_db = Some(gain_db);
    qc.target_lufs = d.target_lufs;
    qc.ceiling_dbtp = ceiling;
    qc.bit_depth = Some(bits);
    qc.pre_limiter_lufs = pre_lufs;
    if let Some(p) = plot_path {
        write_plot(&qc, &refs, p)?;
    }
    Ok(qc)
}

/// Integrated loudness (BS.1770-4) of a stereo signal; `None` for silence or
/// shorter than a gating block. For album gains: run [`apply_chain`], measure each
/// song, and pass `target − loudest` as every song's `gain_override_db`.
pub fn integrated_lufs(channels: [&[f32]; 2], rate: u32) -> Result<Option<f64>> {
    let block = analysis_block(rate);
    let k = k_power_blocks(&channels, rate, block)?;
    Ok(estimate_loudness(
        &k,
        &[],
        0.0,
        block,
        samples_per_100ms(rate),
    ))
}
