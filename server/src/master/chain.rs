//! The `[master]` chain: linear-phase EQ → multiband compressor → width.
//!
//! Both FIR stages stream the mix through a [`FirBank`] built by the caller's
//! factory (GPU or CPU twin) and drop the bank's latency, so the output lines up
//! with the input sample for sample. The multiband's per-band compressors run on
//! rayon threads, one band per task, block by block.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::dsp::biquad::{design, magnitude_db};
use crate::dsp::compressor::Compressor;
use crate::dsp::fir::{FirBank, band_split_kernels, linear_phase_kernel};
use crate::dsp::{ProcessCtx, ProcessSpec, Processor};
use crate::engine::graph::{band_spec, compressor_params};
use crate::session::Master;
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

/// `Err(Cancelled)` once the job is cancelled.
pub(super) fn check_cancel(cancel: &AtomicBool) -> Result<()> {
    if cancel.load(Ordering::Relaxed) {
        Err(Error::Cancelled)
    } else {
        Ok(())
    }
}

/// Runs the `[master]` chain (EQ, multiband, width) on a stereo mix at `rate`.
///
/// With both EQ and multiband, the EQ kernel is convolved into each band kernel, so
/// the signal makes one FIR pass (the bands still sum to the EQ'd input).
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
    let width = m.width.filter(|w| (w - 1.0).abs() > 1e-12);
    if m.eq.is_empty() && m.multiband.is_none() && width.is_none() {
        return Ok(Chained {
            channels: None,
            backend: String::new(),
        });
    }
    let n = mix[0].len().min(mix[1].len());
    let fs = rate as f64;
    // One working copy; every stage works in place on it.
    let mut buf = [mix[0][..n].to_vec(), mix[1][..n].to_vec()];
    let mut backend = String::new();

    let eq_kernel = if m.eq.is_empty() {
        None
    } else {
        let coeffs: Vec<_> = m.eq.iter().map(|b| design(&band_spec(b), fs)).collect();
        // The magnitude of the cookbook cascade, with linear phase.
        let mag = move |f: f64| -> f64 {
            let db: f64 = coeffs.iter().map(|c| magnitude_db(c, f, fs)).sum();
            10f64.powf(db / 20.0)
        };
        Some(linear_phase_kernel(&mag, fs, eq_kernel_len(rate)))
    };

    if let Some(mb) = &m.multiband {
        let mut kernels = band_split_kernels(&mb.crossovers_hz, fs, split_kernel_len(rate));
        if kernels.len() != mb.bands.len() {
            return Err(Error::InvalidSession(format!(
                "[master].multiband: {} bands for {} crossovers (needs crossovers + 1)",
                mb.bands.len(),
                mb.crossovers_hz.len()
            )));
        }
        if let Some(eq) = &eq_kernel {
            // Linear phase ∗ linear phase is linear phase; the sum still telescopes.
            let h: Vec<f64> = eq.iter().map(|&v| v as f64).collect();
            kernels = kernels
                .iter()
                .map(|k| {
                    let k64: Vec<f64> = k.iter().map(|&v| v as f64).collect();
                    convolve(&k64, &h).into_iter().map(|v| v as f32).collect()
                })
                .collect();
        }
        let mut comps: Vec<Compressor> = Vec::with_capacity(mb.bands.len());
        for b in &mb.bands {
            let mut c = Compressor::new(compressor_params(b));
            c.prepare(&ProcessSpec {
                sample_rate: fs,
                max_block: FIR_BLOCK,
                channels: 2,
            })?;
            comps.push(c);
        }
        let mut bank = fir(kernels, FIR_BLOCK)?;
        backend = bank.backend_name();
        let k = comps.len();
        // The compressors see every band from the first FIR output on (pre-roll
        // included), so their state is continuous; only the aligned part is kept.
        run_bank(
            bank.as_mut(),
            k,
            &mut buf,
            cancel,
            |t0, keep_from, bands, buf| {
                use rayon::prelude::*;
                bands
                    .par_iter_mut()
                    .zip(comps.par_iter_mut())
                    .for_each(|(band, comp)| {
                        let [l, r] = band;
                        let mut blk: [&mut [f32]; 2] = [&mut l[..], &mut r[..]];
                        comp.process(&mut blk, &ProcessCtx::default());
                    });
                for ch in 0..2 {
                    let len = bands[0][ch].len() - keep_from;
                    let dst = &mut buf[ch][t0..t0 + len];
                    dst.copy_from_slice(&bands[0][ch][keep_from..]);
                    for b in &bands[1..] {
                        for (d, s) in dst.iter_mut().zip(&b[ch][keep_from..]) {
                            *d += s;
                        }
                    }
                }
            },
        )?;
    } else if let Some(eq) = eq_kernel {
        let mut bank = fir(vec![eq], FIR_BLOCK)?;
        backend = bank.backend_name();
        run_bank(
            bank.as_mut(),
            1,
            &mut buf,
            cancel,
            |t0, keep, bands, buf| {
                for ch in 0..2 {
                    let src = &bands[0][ch][keep..];
                    buf[ch][t0..t0 + src.len()].copy_from_slice(src);
                }
            },
        )?;
    }

    if let Some(w) = width {
        let w = w as f32;
        let [l, r] = &mut buf;
        for (a, b) in l.iter_mut().zip(r.iter_mut()) {
            let mid = 0.5 * (*a + *b);
            let side = 0.5 * (*a - *b) * w;
            *a = mid + side;
            *b = mid - side;
        }
    }
    check_cancel(cancel)?;
    let [l, r] = buf;
    Ok(Chained {
        channels: Some(vec![l, r]),
        backend,
    })
}

/// Direct linear convolution in f64 (kernel design only: a few thousand taps).
fn convolve(a: &[f64], b: &[f64]) -> Vec<f64> {
    if a.is_empty() || b.is_empty() {
        return Vec::new();
    }
    let mut out = vec![0f64; a.len() + b.len() - 1];
    for (i, &x) in a.iter().enumerate() {
        if x != 0.0 {
            for (o, &y) in out[i..].iter_mut().zip(b) {
                *o += x * y;
            }
        }
    }
    out
}

/// Streams `input` (n frames) through a bank of `k` kernels, zero-padded at the end,
/// and hands every output block to `sink(t0, keep_from, outputs)`: frames
/// `keep_from..` of each output are the aligned frames `t0..` of the result (latency
/// removed; the block is trimmed at the end of the signal). Blocks that are all
/// pre-roll come with `keep_from == len` so stateful sinks still see them.
///
/// Works in place: output frame t0 is written after input frames up to t0 + latency
/// have been copied into the bank's block, so `buf` can be both.
fn run_bank(
    bank: &mut dyn FirBank,
    k: usize,
    buf: &mut [Vec<f32>; 2],
    cancel: &AtomicBool,
    mut sink: impl FnMut(usize, usize, &mut [[Vec<f32>; 2]], &mut [Vec<f32>; 2]),
) -> Result<()> {
    let n = buf[0].len().min(buf[1].len());
    let bl = bank.block_len();
    let lat = bank.latency();
    let mut in_blk = [vec![0f32; bl], vec![0f32; bl]];
    let mut outs: Vec<[Vec<f32>; 2]> = (0..k).map(|_| [vec![0f32; bl], vec![0f32; bl]]).collect();
    let total = n + lat;
    let mut pos = 0usize; // input frames fed so far
    while pos < total {
        check_cancel(cancel)?;
        for ch in 0..2 {
            // Past the end of the input the block is all zero padding.
            let from = pos.min(n);
            let avail = (n - from).min(bl);
            in_blk[ch][..avail].copy_from_slice(&buf[ch][from..from + avail]);
            in_blk[ch][avail..].iter_mut().for_each(|v| *v = 0.0);
        }
        {
            let mut views: Vec<[&mut [f32]; 2]> = outs
                .iter_mut()
                .map(|[l, r]| [&mut l[..], &mut r[..]])
                .collect();
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
        sink(t0, keep_from, &mut outs, buf);
        for b in outs.iter_mut() {
            b[0].resize(bl, 0.0);
            b[1].resize(bl, 0.0);
        }
        pos += bl;
    }
    Ok(())
}
