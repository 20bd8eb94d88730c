//! Polyphase 2^S× oversampling (up, process, down) with linear-phase FIR stages.
//!
//! # Brief overview
//! [`Oversampler`] runs S cascaded 2× stages. Stage 0 (base rate ↔ 2× base) carries the
//! steep filter: passband to [`passband_hz`] (20 kHz where the rate allows), stopband
//! from the base Nyquist, so that nothing above Nyquist folds back on the way down.
//! Stage s ≥ 1 only has to keep [0, fs/2] and reject its own images from
//! rate_s − fs/2: a short half-band. Each stage uses one Kaiser-windowed sinc
//! ([`design_stage`], a pure function) both for interpolation and decimation, so
//! the linear path is H²(f) with a delay of (N−1) high-rate samples per stage. Every
//! stage's length N_s ≡ 1 (mod 2^(s+1)), which makes the total delay
//! [`Oversampler::latency`] a whole number of base-rate samples.
//!
//! Processing is in `f32`; the dot products run over contiguous histories with
//! eight independent accumulators so that they vectorise.

use std::f64::consts::PI;

use crate::{Error, Result};

/// Stopband attenuation of every stage, dB.
pub const STOPBAND_DB: f64 = 96.0;

/// Base-rate frames handled per inner chunk (the scratch size).
pub const CHUNK: usize = 256;

/// The oversampling factor for `sample_rate`: the smallest power of two (at least 2)
/// that brings the rate to 176.4 kHz or more.
pub fn factor_for_rate(sample_rate: f64) -> usize {
    let mut m = 2;
    while sample_rate * (m as f64) < 176_400.0 && m < 64 {
        m *= 2;
    }
    m
}

/// The wet passband edge at `sample_rate`: 20 kHz, or 0.4535·fs at rates below
/// 44.1 kHz (the same relative transition band as at 44.1 kHz).
pub fn passband_hz(sample_rate: f64) -> f64 {
    20_000f64.min(0.4535 * sample_rate)
}

/// Zeroth-order modified Bessel function of the first kind (series).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term, q) = (1.0, 1.0, x * x / 4.0);
    for k in 1..200 {
        term *= q / ((k * k) as f64);
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// Lowpass taps for stage `s` of an oversampler at base rate `fs` (the stage runs
/// between fs·2^s and fs·2^(s+1)): a Kaiser-windowed sinc, unity DC gain, odd
/// length N ≡ 1 (mod 2^(s+1)), symmetric.
///
/// Stage 0 cuts between [`passband_hz`] and fs/2; later stages between fs/2 and
/// fs·2^s − fs/2 (their own image band).
pub fn design_stage(fs: f64, s: u32) -> Vec<f64> {
    let rate_in = fs * f64::from(1u32 << s);
    let rate_hi = 2.0 * rate_in;
    let (pass, stop) = if s == 0 {
        (passband_hz(fs), fs / 2.0)
    } else {
        (fs / 2.0, rate_in - fs / 2.0)
    };
    let dw = 2.0 * PI * (stop - pass) / rate_hi;
    let a = STOPBAND_DB;
    let beta = 0.1102 * (a - 8.7);
    let order = ((a - 7.95) / (2.285 * dw)).ceil().max(2.0) as usize;
    let step = 1usize << (s + 1);
    // Smallest N > order with N ≡ 1 (mod step).
    let n = (order / step + 1) * step + 1;
    let fc = (pass + stop) / 2.0 / rate_hi; // cycles per high-rate sample
    let mid = (n - 1) as f64 / 2.0;
    let mut h: Vec<f64> = (0..n)
        .map(|i| {
            let t = i as f64 - mid;
            let sinc = if t == 0.0 {
                2.0 * fc
            } else {
                (2.0 * PI * fc * t).sin() / (PI * t)
            };
            let r = t / mid;
            sinc * bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / bessel_i0(beta)
        })
        .collect();
    let dc: f64 = h.iter().sum();
    h.iter_mut().for_each(|v| *v /= dc);
    h
}

/// A dot product with eight accumulators (vectorises; the sum order is fixed, so the
/// result does not depend on how blocks are cut).
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut tail = 0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

fn try_zeros(n: usize) -> Result<Vec<f32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|e| Error::Limit(format!("oversampler buffer of {n} samples: {e}")))?;
    v.resize(n, 0.0);
    Ok(v)
}

/// One 2× stage on one channel: interpolation and decimation histories.
#[derive(Debug, Clone)]
struct Stage {
    /// Interpolation phases, reversed and scaled by 2: `even[j]` multiplies
    /// x[n − (L−1) + j] for output 2n, `odd` for 2n+1.
    even: Vec<f32>,
    odd: Vec<f32>,
    /// Decimation taps, reversed (symmetric anyway).
    taps: Vec<f32>,
    /// Interpolator input: L−1 history samples, then the chunk.
    up_buf: Vec<f32>,
    /// Decimator input: N−1 history samples (high rate), then the chunk.
    down_buf: Vec<f32>,
}

impl Stage {
    fn new(h: &[f64], max_in: usize) -> Result<Stage> {
        // Tap vectors are zero-padded at the old end to multiples of 8, so every dot
        // product is whole 8-lane chunks (the padding multiplies older history by 0).
        let n = h.len().next_multiple_of(8);
        let l = h.len().div_ceil(2).next_multiple_of(8);
        let mut even = try_zeros(l)?;
        let mut odd = try_zeros(l)?;
        for (i, &v) in h.iter().enumerate() {
            let (phase, j) = (i % 2, i / 2);
            let slot = l - 1 - j;
            if phase == 0 {
                even[slot] = (2.0 * v) as f32;
            } else {
                odd[slot] = (2.0 * v) as f32;
            }
        }
        let mut taps = try_zeros(n)?;
        for (i, &v) in h.iter().enumerate() {
            taps[n - 1 - i] = v as f32;
        }
        // The window for output i is down_buf[2i..2i + n]: it ends on the chunk's
        // high-rate sample 2i.
        Ok(Stage {
            up_buf: try_zeros(l - 1 + max_in)?,
            down_buf: try_zeros(n - 1 + 2 * max_in)?,
            even,
            odd,
            taps,
        })
    }

    fn reset(&mut self) {
        self.up_buf.fill(0.0);
        self.down_buf.fill(0.0);
    }

    /// `input` (k ≤ max_in samples) → `out` (2k samples).
    fn up(&mut self, input: &[f32], out: &mut [f32]) {
        let l = self.even.len();
        let h = l - 1;
        let k = input.len();
        self.up_buf[h..h + k].copy_from_slice(input);
        for (i, o) in out[..2 * k].chunks_exact_mut(2).enumerate() {
            let w = &self.up_buf[i..i + l];
            o[0] = dot(&self.even, w);
            o[1] = dot(&self.odd, w);
        }
        self.up_buf.copy_within(k..k + h, 0);
    }

    /// `input` (2k samples) → `out` (k samples).
    fn down(&mut self, input: &[f32], out: &mut [f32]) {
        let n = self.taps.len();
        let h = n - 1;
        let m = input.len();
        self.down_buf[h..h + m].copy_from_slice(input);
        for (i, o) in out[..m / 2].iter_mut().enumerate() {
            // Output i is the filter's output at the chunk's high-rate sample 2i (its
            // window ends there): the even phase, so with N odd the up and down delays
            // add up to N − 1 high-rate samples = (N−1)/2 whole low-rate samples.
            // (N is the designed length; the padding adds nothing.)
            *o = dot(&self.taps, &self.down_buf[2 * i..2 * i + n]);
        }
        self.down_buf.copy_within(m..m + h, 0);
    }
}

/// Oversamples one channel by 2^S, applies a memoryless function at the high rate,
/// and comes back down. Allocates in [`Oversampler::new`] only.
#[derive(Debug, Clone)]
pub struct Oversampler {
    stages: Vec<Stage>,
    factor: usize,
    latency: usize,
    /// Two ping-pong scratch buffers of CHUNK·factor samples.
    a: Vec<f32>,
    b: Vec<f32>,
}

impl Oversampler {
    /// An oversampler for `sample_rate` with the factor of [`factor_for_rate`].
    pub fn new(sample_rate: f64) -> Result<Oversampler> {
        let factor = factor_for_rate(sample_rate);
        let s_count = factor.trailing_zeros();
        let mut stages = Vec::new();
        stages
            .try_reserve_exact(s_count as usize)
            .map_err(|e| Error::Limit(format!("oversampler: {e}")))?;
        let mut latency = 0;
        for s in 0..s_count {
            let h = design_stage(sample_rate, s);
            // (N−1) samples at the stage's high rate = (N−1)/2^(s+1) base samples.
            latency += (h.len() - 1) >> (s + 1);
            stages.push(Stage::new(&h, CHUNK << s)?);
        }
        Ok(Oversampler {
            stages,
            factor,
            latency,
            a: try_zeros(CHUNK * factor)?,
            b: try_zeros(CHUNK * factor)?,
        })
    }

    /// The oversampling factor.
    pub fn factor(&self) -> usize {
        self.factor
    }

    /// Delay of the up/down filters in base-rate samples (exact: linear phase).
    pub fn latency(&self) -> usize {
        self.latency
    }

    /// Clears the filter histories.
    pub fn reset(&mut self) {
        self.stages.iter_mut().for_each(Stage::reset);
    }

    /// Replaces `x` by down(f(up(x))), chunk by chunk. `f` works in place on the
    /// oversampled chunk.
    pub fn process(&mut self, x: &mut [f32], mut f: impl FnMut(&mut [f32])) {
        let mut a = std::mem::take(&mut self.a);
        let mut b = std::mem::take(&mut self.b);
        for chunk in x.chunks_mut(CHUNK) {
            let k = chunk.len();
            a[..k].copy_from_slice(chunk);
            let mut len = k;
            for st in self.stages.iter_mut() {
                st.up(&a[..len], &mut b[..2 * len]);
                std::mem::swap(&mut a, &mut b);
                len *= 2;
            }
            f(&mut a[..len]);
            for st in self.stages.iter_mut().rev() {
                st.down(&a[..len], &mut b[..len / 2]);
                std::mem::swap(&mut a, &mut b);
                len /= 2;
            }
            chunk.copy_from_slice(&a[..k]);
        }
        self.a = a;
        self.b = b;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn identity_function_is_a_pure_delay_of_latency() {
        for fs in [8_000.0, 44_100.0, 48_000.0, 96_000.0, 192_000.0, 384_000.0] {
            let mut os = Oversampler::new(fs).unwrap();
            let lat = os.latency();
            let mut x = vec![0f32; 4 * lat + 1000];
            x[10] = 1.0;
            os.process(&mut x, |_| {});
            let (peak_at, _) =
                x.iter().enumerate().fold(
                    (0, 0f32),
                    |m, (i, &v)| if v.abs() > m.1 { (i, v.abs()) } else { m },
                );
            assert_eq!(peak_at, 10 + lat, "{fs} Hz");
            // Symmetric around the peak (linear phase).
            for d in 1..lat.min(40) {
                let (l, r) = (x[10 + lat - d], x[10 + lat + d]);
                assert!((l - r).abs() < 1e-6, "{fs}: {d}: {l} vs {r}");
            }
        }
    }
}
