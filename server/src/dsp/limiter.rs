//! True-peak look-ahead limiter for offline mastering.
//!
//! # Brief overview
//! Offline, the limiter sees the whole signal, so it works in three cheap steps
//! instead of a per-sample state machine:
//! 1. [`peak_envelope`]: the linked (max over channels) 4× oversampled peak of the
//!    signal, reduced to the maximum of each short block (`block` frames, ~0.7 ms).
//!    It does not depend on the gain, so the mastering gain search computes it once.
//! 2. [`gain_curve`]: for a pre-gain `G` and a ceiling `c`, the required gain of each
//!    block r = min(1, c / (G·peak)); a running minimum over the look-ahead plus a
//!    hold; an exponential release; then a moving average over the look-ahead. The
//!    average of values each ≤ r(t) is ≤ r(t), so the smoothed curve never lets a
//!    peak through, and it starts to fall one look-ahead before the peak (attack =
//!    look-ahead, no overshoot). A sustained signal gives a constant curve: no pumping.
//! 3. [`apply_gain_curve`]: the curve is interpolated linearly between block starts
//!    and multiplied in; each block's required gain bounds both ends of its segment.
//!
//! The oversampler is a 4-phase windowed-sinc FIR (Kaiser, 64 taps per phase),
//! computed block-wise so the inner loops vectorise.

use crate::{Error, Result};

/// Limiter settings in natural units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimiterParams {
    /// Ceiling in dBTP (the 4× oversampled peak never exceeds it).
    pub ceiling_db: f64,
    /// Release time constant in ms.
    pub release_ms: f64,
    /// Look-ahead (= attack) in ms; at least one block is used.
    pub lookahead_ms: f64,
    /// Hold after a peak before the release starts, ms (steadies the gain on low
    /// notes whose period exceeds the look-ahead).
    pub hold_ms: f64,
}

impl Default for LimiterParams {
    fn default() -> Self {
        LimiterParams {
            ceiling_db: -1.0,
            release_ms: 50.0,
            lookahead_ms: 5.0,
            hold_ms: 10.0,
        }
    }
}

/// Taps per polyphase branch of the 4× oversampler.
pub const TAPS_PER_PHASE: usize = 64;
/// Oversampling factor of the peak detector.
pub const OVERSAMPLE: usize = 4;

/// The 3 fractional-delay branches (1/4, 2/4, 3/4 of a sample) of a 4× Kaiser-
/// windowed sinc interpolator; branch p at output n uses x[n − 31 ..= n + 32]. 64 taps with
/// β = 5 keep the passband to ~0.47·fs, so even full-band noise reads its peaks
/// (shorter filters under-read content near Nyquist by up to 0.7 dB).
pub fn oversampler_phases() -> [[f32; TAPS_PER_PHASE]; OVERSAMPLE - 1] {
    let v = design_phases(TAPS_PER_PHASE, KAISER_BETA);
    let mut out = [[0f32; TAPS_PER_PHASE]; OVERSAMPLE - 1];
    for (o, b) in out.iter_mut().zip(v) {
        o.copy_from_slice(&b);
    }
    out
}

/// Kaiser β of the oversampler.
const KAISER_BETA: f64 = 5.0;

/// Designs `taps`-tap fractional-delay branches (even `taps`), unity DC gain.
pub fn design_phases(taps: usize, beta: f64) -> Vec<Vec<f32>> {
    let half = (taps / 2) as f64;
    let i0b = bessel_i0(beta);
    (0..OVERSAMPLE - 1)
        .map(|p| {
            let frac = (p + 1) as f64 / OVERSAMPLE as f64;
            // Tap k multiplies x[n + k − (half − 1)]; its distance from the
            // interpolated point n + frac is t = k − (half − 1) − frac.
            let taps: Vec<f64> = (0..taps)
                .map(|k| {
                    let t = k as f64 - (half - 1.0) - frac;
                    let sinc = if t.abs() < 1e-12 {
                        1.0
                    } else {
                        (std::f64::consts::PI * t).sin() / (std::f64::consts::PI * t)
                    };
                    let r = t / half;
                    let w = if r.abs() >= 1.0 {
                        0.0
                    } else {
                        bessel_i0(beta * (1.0 - r * r).sqrt()) / i0b
                    };
                    sinc * w
                })
                .collect();
            let sum: f64 = taps.iter().sum();
            taps.iter().map(|t| (t / sum) as f32).collect()
        })
        .collect()
}

fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let y = x * x / 4.0;
    for k in 1..50 {
        term *= y / (k * k) as f64;
        sum += term;
        if term < 1e-17 * sum {
            break;
        }
    }
    sum
}

/// Linked 4× oversampled peak of `channels`, the maximum over each block of `block`
/// frames (intersample points between frame n and n+1 count for n's block).
/// Channels run in parallel.
pub fn peak_envelope(channels: &[&[f32]], block: usize) -> Result<Vec<f32>> {
    if block == 0 {
        return Err(Error::Internal("peak_envelope: block of 0 frames".into()));
    }
    let n = channels.iter().map(|c| c.len()).min().unwrap_or(0);
    let per: Vec<Vec<f32>> = {
        use rayon::prelude::*;
        channels
            .par_iter()
            .map(|c| channel_envelope(&c[..n], block))
            .collect()
    };
    let mut env = vec![0f32; n.div_ceil(block)];
    for c in per {
        for (e, v) in env.iter_mut().zip(c) {
            *e = e.max(v);
        }
    }
    Ok(env)
}

fn channel_envelope(x: &[f32], block: usize) -> Vec<f32> {
    let phases = oversampler_phases();
    envelope_with(x, block, &phases)
}

fn envelope_with<B: AsRef<[f32]>>(x: &[f32], block: usize, phases: &[B]) -> Vec<f32> {
    let taps = phases.first().map_or(2, |b| b.as_ref().len());
    let n = x.len();
    let nb = n.div_ceil(block);
    let mut env = vec![0f32; nb];
    // Work in chunks of whole blocks with the filter's history copied in front.
    let before = taps / 2 - 1;
    let after = taps / 2;
    let chunk_blocks = (8192 / block).max(1);
    let chunk = chunk_blocks * block;
    let mut padded = vec![0f32; chunk + before + after];
    let mut peaks = vec![0f32; chunk];
    let mut acc = vec![0f32; chunk];
    let mut start = 0;
    while start < n {
        let len = chunk.min(n - start);
        // padded[j] = x[start + j − before], zero outside.
        for (j, p) in padded[..len + before + after].iter_mut().enumerate() {
            let idx = (start + j) as isize - before as isize;
            *p = if idx >= 0 && (idx as usize) < n {
                x[idx as usize]
            } else {
                0.0
            };
        }
        for (pk, &v) in peaks[..len].iter_mut().zip(&padded[before..before + len]) {
            *pk = v.abs();
        }
        for branch in phases {
            acc[..len].iter_mut().for_each(|a| *a = 0.0);
            for (k, &h) in branch.as_ref().iter().enumerate() {
                for (a, &v) in acc[..len].iter_mut().zip(&padded[k..k + len]) {
                    *a += h * v;
                }
            }
            for (pk, &a) in peaks[..len].iter_mut().zip(&acc[..len]) {
                *pk = pk.max(a.abs());
            }
        }
        let b0 = start / block;
        for (bi, c) in peaks[..len].chunks(block).enumerate() {
            env[b0 + bi] = c.iter().fold(0f32, |m, &v| m.max(v));
        }
        start += len;
    }
    env
}

/// What a gain curve did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CurveStats {
    /// Largest gain reduction, dB (≥ 0).
    pub max_reduction_db: f64,
}

/// The limiter's gain per block start (linear, ≤ 1) for a pre-gain `pre_gain_db`
/// applied before the limiter. `out` is resized to `env.len() + 1` (the last value
/// closes the last block).
#[allow(clippy::needless_range_loop)] // k indexes the request and the curve together
pub fn gain_curve(
    env: &[f32],
    block: usize,
    sample_rate: u32,
    pre_gain_db: f64,
    params: &LimiterParams,
    out: &mut Vec<f32>,
) -> CurveStats {
    let nb = env.len();
    let fs = sample_rate as f64;
    let block = block.max(1) as f64;
    let ceiling = 10f64.powf(params.ceiling_db / 20.0);
    let g = 10f64.powf(pre_gain_db / 20.0);
    let look = ((params.lookahead_ms.max(0.0) * 1e-3 * fs / block).ceil() as usize).max(1);
    let hold = (params.hold_ms.max(0.0) * 1e-3 * fs / block).round() as usize;
    let rel = (-block / (params.release_ms.max(0.1) * 1e-3 * fs)).exp();
    // Required gain per block.
    let req = |k: usize| -> f64 {
        let p = env[k] as f64 * g;
        if p > ceiling { ceiling / p } else { 1.0 }
    };
    // Running minimum of req over [k − look − hold, k] (monotone deque), then release.
    let win = look + hold;
    let mut deque: std::collections::VecDeque<(usize, f64)> = std::collections::VecDeque::new();
    // h runs `look` blocks past the end (required gain 1 there) so the average
    // below never reads a value that forgot the last peaks.
    let hn = nb + 1 + look;
    let mut h = vec![1f64; hn];
    let mut prev = 1.0f64;
    for (k, hk) in h.iter_mut().enumerate() {
        let r = if k < nb { req(k) } else { 1.0 };
        while deque.back().is_some_and(|&(_, v)| v >= r) {
            deque.pop_back();
        }
        deque.push_back((k, r));
        while deque.front().is_some_and(|&(i, _)| i + win < k) {
            deque.pop_front();
        }
        let m = deque.front().map_or(1.0, |&(_, v)| v);
        let released = 1.0 - (1.0 - prev) * rel;
        let v = m.min(released);
        *hk = v;
        prev = v;
    }
    // Forward moving average over `look` values: s[t] = mean(h[t .. t+look]).
    out.clear();
    out.resize(nb + 1, 1.0);
    let mut sum: f64 = h[..look].iter().sum();
    let mut min_gain = 1.0f64;
    for t in 0..=nb {
        let s = sum / look as f64;
        // Guard against rounding in the running sum: never above any term it averages.
        out[t] = s.min(1.0) as f32;
        min_gain = min_gain.min(s);
        let leaving = h[t];
        let entering = h[t + look];
        sum += entering - leaving;
        if t % 4096 == 4095 {
            sum = h[t + 1..t + 1 + look].iter().sum();
        }
    }
    // f32 rounding of the curve could land a hair above the bound: nudge down.
    for v in out.iter_mut() {
        *v = f32::from_bits(v.to_bits().saturating_sub(1)).min(1.0);
    }
    CurveStats {
        max_reduction_db: -20.0 * min_gain.max(1e-12).log10(),
    }
}

/// `y[n] = x[n] · 10^(pre_gain_db/20) · g(n)` where g is `curve` interpolated
/// linearly from block start to block start. `x` and `y` may not alias; `y.len()`
/// frames are written (≤ `x.len()`).
pub fn apply_gain_curve(x: &[f32], y: &mut [f32], curve: &[f32], block: usize, pre_gain_db: f64) {
    let g = 10f64.powf(pre_gain_db / 20.0) as f32;
    let block = block.max(1);
    let inv = 1.0 / block as f32;
    for ((k, xs), ys) in x.chunks(block).enumerate().zip(y.chunks_mut(block)) {
        let a = curve.get(k).copied().unwrap_or(1.0);
        let b = curve.get(k + 1).copied().unwrap_or(a);
        let d = (b - a) * inv;
        for (i, (o, &v)) in ys.iter_mut().zip(xs).enumerate() {
            *o = v * g * (a + d * i as f32);
        }
    }
}

/// The largest 4× oversampled peak of one channel, linear (a quick true-peak meter
/// with this module's interpolator).
pub fn true_peak(x: &[f32]) -> f32 {
    channel_envelope(x, 4096).into_iter().fold(0f32, f32::max)
}

/// [`true_peak`] with other oversampler branches (for comparisons).
pub fn true_peak_with(x: &[f32], phases: &[Vec<f32>]) -> f32 {
    envelope_with(x, 4096, phases)
        .into_iter()
        .fold(0f32, f32::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversampler_interpolates_a_slow_sine() {
        let ph = oversampler_phases();
        let f = 0.05f64; // cycles per sample
        let x: Vec<f64> = (0..100)
            .map(|n| (2.0 * std::f64::consts::PI * f * n as f64).sin())
            .collect();
        for (p, br) in ph.iter().enumerate() {
            let frac = (p + 1) as f64 / 4.0;
            let n = 50usize;
            let y: f64 = br
                .iter()
                .enumerate()
                .map(|(k, &h)| h as f64 * x[n + k + 1 - TAPS_PER_PHASE / 2])
                .sum();
            let want = (2.0 * std::f64::consts::PI * f * (n as f64 + frac)).sin();
            assert!((y - want).abs() < 1e-3, "phase {p}: {y} vs {want}");
        }
    }

    #[test]
    fn curve_holds_every_block_under_ceiling() {
        let block = 32;
        let env: Vec<f32> = (0..2000)
            .map(|k| {
                if k % 97 == 0 {
                    2.0
                } else {
                    0.3 + (k % 7) as f32 * 0.1
                }
            })
            .collect();
        let mut curve = Vec::new();
        let p = LimiterParams {
            ceiling_db: -1.0,
            ..Default::default()
        };
        let st = gain_curve(&env, block, 48000, 3.0, &p, &mut curve);
        let c = 10f64.powf(-1.0 / 20.0);
        let g = 10f64.powf(3.0 / 20.0);
        for k in 0..env.len() {
            let peak = env[k] as f64 * g;
            assert!(
                peak * curve[k] as f64 <= c * (1.0 + 1e-6),
                "block {k} start"
            );
            assert!(
                peak * curve[k + 1] as f64 <= c * (1.0 + 1e-6),
                "block {k} end"
            );
        }
        assert!(st.max_reduction_db > 9.0);
    }
}
