//! The `[master]` chain: linear-phase EQ → multiband compressor → width.
//!
//! Both FIR stages stream the mix through a [`FirBank`] built by the caller's
//! factory (GPU or CPU twin) and drop the bank's latency, so the output lines up
//! with the input sample for sample. The multiband's per-band compressors run on
//! rayon threads, one band per task, block by block.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::dsp::biquad::{BandSpec, FilterKind, design, magnitude_db};
use crate::dsp::compressor::{Compressor, CompressorParams, DetectorKind};
use crate::dsp::fir::{FirBank, band_split_kernels, linear_phase_kernel};
use crate::dsp::{ProcessSpec, Processor};
use crate::session::{Detector, EqType, Master};
use crate::{Error, Result};

/// Builds a FIR bank from kernels and a block length (GPU or CPU).
pub type FirFactory<'a> = &'a dyn Fn(Vec<Vec<f32>>, usize) -> Result<Box<dyn FirBank>>;

/// Frames per FIR block.
const FIR_BLOCK: usize = 8192;

/// What [`apply_chain`] produced.
#[derive(Debug)]
pub struct Chained {
    /// The processed stereo signal, or `None` when the chain does nothing (absent or
    /// empty `[master]`, width 1): use the mix itself.
    pub channels: Option<Vec<Vec<f32>>>,
    /// Backend of the FIR stages ("" when none ran).
    pub backend: String,
}

/// FIR kernel length for a rate: ~85 ms, odd (resolves a 30 Hz high-pass).
fn eq_kernel_len(rate: u32) -> usize {
    ((rate as usize * 8192 / 48000).max(1023)) | 1
}

/// Band-split kernel length: ~43 ms (−85 dB bands, ~60 Hz transitions at 48 kHz).
fn split_kernel_len(rate: u32) -> usize {
    ((rate as usize * 4096 / 48000).max(511)) | 1
}

fn filter_kind(t: EqType) -> FilterKind {
    match t {
        EqType::Highpass => FilterKind::Highpass,
        EqType::Lowpass => FilterKind::Lowpass,
        EqType::Lowshelf => FilterKind::Lowshelf,
        EqType::Highshelf => FilterKind::Highshelf,
        EqType::Peak => FilterKind::Peak,
        EqType::Notch => FilterKind::Notch,
    }
}

fn check_cancel(cancel: &AtomicBool) -> Result<()> {
    if cancel.load(Ordering::Relaxed) {
        Err(Error::Cancelled)
    } else {
        Ok(())
    }
}

/// Runs the `[master]` chain (EQ, multiband, width) on a stereo mix at `rate`.
pub fn apply_chain(
    mix: [&[f32]; 2],
    rate: u32,
    chain: Option<&Master>,
    fir: FirFactory<'_>,
    cancel: &AtomicBool,
) -> Result<Chained> {
    let Some(m) = chain else {
        return Ok(Chained {
            channels: None,
            backend: String::new(),
        });
    };
    let n = mix[0].len().min(mix[1].len());
    let mut cur: Option<Vec<Vec<f32>>> = None;
    let mut backend = String::new();
    let fs = rate as f64;

    if !m.eq.is_empty() {
        let coeffs: Vec<_> =
            m.eq.iter()
                .map(|b| {
                    design(
                        &BandSpec {
                            kind: filter_kind(b.kind),
                            freq: b.freq,
                            q: b.q,
                            gain_db: b.gain_db,
                        },
                        fs,
                    )
                })
                .collect();
        // The magnitude of the cookbook cascade, with linear phase.
        let mag = move |f: f64| -> f64 {
            let db: f64 = coeffs.iter().map(|c| magnitude_db(c, f, fs)).sum();
            10f64.powf(db / 20.0)
        };
        let kernel = linear_phase_kernel(&mag, fs, eq_kernel_len(rate));
        let mut bank = fir(vec![kernel], FIR_BLOCK)?;
        backend = bank.backend_name();
        let input = cur.as_ref().map_or(mix, |c| [&c[0][..], &c[1][..]]);
        let mut out = vec![vec![0f32; n]; 2];
        run_bank(bank.as_mut(), 1, input, n, cancel, |t0, keep, bands| {
            for ch in 0..2 {
                let src = &bands[0][ch][keep..];
                out[ch][t0..t0 + src.len()].copy_from_slice(src);
            }
        })?;
        cur = Some(out);
    }

    if let Some(mb) = &m.multiband {
        let kernels = band_split_kernels(&mb.crossovers_hz, fs, split_kernel_len(rate));
        if kernels.len() != mb.bands.len() {
            return Err(Error::InvalidSession(format!(
                "[master].multiband: {} bands for {} crossovers (needs crossovers + 1)",
                mb.bands.len(),
                mb.crossovers_hz.len()
            )));
        }
        let mut comps: Vec<Compressor> = Vec::with_capacity(mb.bands.len());
        for b in &mb.bands {
            let mut c = Compressor::new(CompressorParams {
                threshold_db: b.threshold_db,
                ratio: b.ratio,
                attack_ms: b.attack_ms,
                release_ms: b.release_ms,
                knee_db: b.knee_db,
                makeup_db: b.makeup_db,
                detector: match b.detector {
                    Detector::Peak => DetectorKind::Peak,
                    Detector::Rms => DetectorKind::Rms,
                },
            });
            c.prepare(&ProcessSpec {
                sample_rate: fs,
                max_block: FIR_BLOCK,
                channels: 2,
            })?;
            comps.push(c);
        }
        let mut bank = fir(kernels, FIR_BLOCK)?;
        backend = bank.backend_name();
        let input = cur.as_ref().map_or(mix, |c| [&c[0][..], &c[1][..]]);
        let mut out = vec![vec![0f32; n]; 2];
        // The compressors see every band from the first FIR output on (pre-roll
        // included), so their state is continuous; only the aligned part is kept.
        let k = comps.len();
        run_bank(bank.as_mut(), k, input, n, cancel, |t0, keep_from, bands| {
            use rayon::prelude::*;
            bands.par_iter_mut().zip(comps.par_iter_mut()).for_each(|(band, comp)| {
                let [l, r] = band;
                let mut blk: [&mut [f32]; 2] = [&mut l[..], &mut r[..]];
                comp.process(&mut blk);
            });
            for ch in 0..2 {
                let len = bands[0][ch].len() - keep_from;
                let dst = &mut out[ch][t0..t0 + len];
                dst.copy_from_slice(&bands[0][ch][keep_from..]);
                for b in &bands[1..] {
                    for (d, s) in dst.iter_mut().zip(&b[ch][keep_from..]) {
                        *d += s;
                    }
                }
            }
        })?;
        cur = Some(out);
    }

    if let Some(w) = m.width
        && (w - 1.0).abs() > 1e-12
    {
        let mut out = match cur.take() {
            Some(c) => c,
            None => vec![mix[0][..n].to_vec(), mix[1][..n].to_vec()],
        };
        let w = w as f32;
        let (l, r) = out.split_at_mut(1);
        for (a, b) in l[0].iter_mut().zip(r[0].iter_mut()) {
            let mid = 0.5 * (*a + *b);
            let side = 0.5 * (*a - *b) * w;
            *a = mid + side;
            *b = mid - side;
        }
        cur = Some(out);
    }
    check_cancel(cancel)?;
    Ok(Chained { channels: cur, backend })
}

/// Streams `input` (n frames) through a bank of `k` kernels, zero-padded at the end,
/// and hands every output block to `sink(t0, keep_from, outputs)`: frames
/// `keep_from..` of each output are the aligned frames `t0..` of the result (latency
/// removed; the block is trimmed at the end of the signal). Blocks that are all
/// pre-roll come with `keep_from == len` so stateful sinks still see them.
fn run_bank(
    bank: &mut dyn FirBank,
    k: usize,
    input: [&[f32]; 2],
    n: usize,
    cancel: &AtomicBool,
    mut sink: impl FnMut(usize, usize, &mut [[Vec<f32>; 2]]),
) -> Result<()> {
    let bl = bank.block_len();
    let lat = bank.latency();
    let mut in_blk = [vec![0f32; bl], vec![0f32; bl]];
    let mut outs: Vec<[Vec<f32>; 2]> = (0..k).map(|_| [vec![0f32; bl], vec![0f32; bl]]).collect();
    let total = n + lat;
    let mut pos = 0usize; // input frames fed so far
    while pos < total {
        check_cancel(cancel)?;
        for ch in 0..2 {
            let avail = if pos < n { (n - pos).min(bl) } else { 0 };
            in_blk[ch][..avail].copy_from_slice(&input[ch][pos..pos + avail]);
            in_blk[ch][avail..].iter_mut().for_each(|v| *v = 0.0);
        }
        {
            let mut views: Vec<[&mut [f32]; 2]> = outs.iter_mut().map(|[l, r]| [&mut l[..], &mut r[..]]).collect();
            bank.process([&in_blk[0], &in_blk[1]], &mut views)?;
        }
        // Output frame j of this block is the aligned result at pos + j − lat.
        let keep_from = lat.saturating_sub(pos).min(bl);
        let t0 = (pos + keep_from).saturating_sub(lat).min(n);
        let len = (bl - keep_from).min(n - t0);
        if keep_from + len < bl {
            for b in outs.iter_mut() {
                b[0].truncate(keep_from + len);
                b[1].truncate(keep_from + len);
            }
        }
        sink(t0, keep_from, &mut outs);
        for b in outs.iter_mut() {
            b[0].resize(bl, 0.0);
            b[1].resize(bl, 0.0);
        }
        pos += bl;
    }
    Ok(())
}
