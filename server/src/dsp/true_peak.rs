//! True-peak estimation: where a band-limited signal really peaks between samples.
//!
//! # Brief overview
//! A polyphase windowed-sinc interpolator (Kaiser, 64 taps per branch) evaluates the
//! signal on a grid `factor` times finer than the samples, and a parabola through
//! each local maximum of that grid and its two neighbours refines the peak between
//! grid points. A plain 4× grid under-reads a 20 kHz tone at 48 kHz by up to 0.47 dB
//! (BS.1770's own example filter reads less still), which is exactly the content a
//! limiter leaves near its ceiling; with the parabola the 4× grid is within ~0.1 dB
//! up to 0.45·fs and an 8× grid within ~0.01 dB.
//!
//! [`peak_envelope`] (the limiter's detector) is the 4× refined grid reduced to one
//! maximum per block. [`true_peak`] (the meter for files as written) finds the blocks
//! within 0.3 dB of the largest 4× reading and measures those again on the 8× grid,
//! so the precise meter costs little more than the quick one.

use std::sync::OnceLock;

use crate::{Error, Result};

/// Taps per polyphase branch.
pub const TAPS: usize = 64;
/// Kaiser β of the interpolator: with 64 taps the passband reaches ~0.47·fs, so even
/// full-band noise reads its peaks.
const KAISER_BETA: f64 = 5.0;
/// Blocks whose 4× reading is within this of the largest are measured again at 8×:
/// more than the 4× refined grid's worst under-reading (~0.11 dB at 0.42·fs).
const REFINE_WITHIN_DB: f64 = 0.3;

/// A polyphase interpolator: the `factor − 1` fractional-delay branches
/// (1/factor, 2/factor, … of a sample).
#[derive(Debug, Clone)]
pub struct Oversampler {
    factor: usize,
    branches: Vec<[f32; TAPS]>,
}

impl Oversampler {
    /// Designs the branches for `factor` (≥ 2).
    pub fn new(factor: usize) -> Self {
        let factor = factor.max(2);
        let branches = design_phases(factor, TAPS, KAISER_BETA)
            .into_iter()
            .map(|b| {
                let mut a = [0f32; TAPS];
                a.copy_from_slice(&b);
                a
            })
            .collect();
        Oversampler { factor, branches }
    }

    /// The shared 4× interpolator.
    pub fn x4() -> &'static Oversampler {
        static X4: OnceLock<Oversampler> = OnceLock::new();
        X4.get_or_init(|| Oversampler::new(4))
    }

    /// The shared 8× interpolator.
    pub fn x8() -> &'static Oversampler {
        static X8: OnceLock<Oversampler> = OnceLock::new();
        X8.get_or_init(|| Oversampler::new(8))
    }

    /// Oversampling factor.
    pub fn factor(&self) -> usize {
        self.factor
    }

    /// Branch p (0-based) interpolates x at n + (p + 1)/factor from
    /// x[n − 31 ..= n + 32].
    pub fn branches(&self) -> &[[f32; TAPS]] {
        &self.branches
    }
}

/// Designs `taps`-tap (even) fractional-delay branches k/`factor`, k = 1..factor,
/// each a Kaiser-windowed sinc normalised to unity DC gain.
pub fn design_phases(factor: usize, taps: usize, beta: f64) -> Vec<Vec<f32>> {
    let half = (taps / 2) as f64;
    let i0b = bessel_i0(beta);
    (1..factor)
        .map(|p| {
            let frac = p as f64 / factor as f64;
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

/// The peak of the parabola through (−1, a), (0, b), (1, c) when b is a local
/// maximum, else b.
#[inline]
fn refine(a: f32, b: f32, c: f32) -> f32 {
    let d = 2.0 * b - a - c;
    if b >= a && b >= c && d > 0.0 {
        // The vertex lies within half a grid step of b, so this is bounded by b + d/8.
        b + (a - c) * (a - c) / (8.0 * d)
    } else {
        b
    }
}

/// Linked true-peak envelope of `channels`: the largest refined 4× reading over
/// every block of `block` frames (the inter-sample points between frame n and n+1
/// count for n's block). Channels run in parallel.
pub fn peak_envelope(channels: &[&[f32]], block: usize) -> Result<Vec<f32>> {
    if block == 0 {
        return Err(Error::Internal("peak_envelope: block of 0 frames".into()));
    }
    let n = channels.iter().map(|c| c.len()).min().unwrap_or(0);
    let per: Vec<Vec<f32>> = {
        use rayon::prelude::*;
        channels
            .par_iter()
            .map(|c| envelope_range(&c[..n], 0, n, block, Oversampler::x4()))
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

/// The refined peak of frames `from..to` of `x` on `os`'s grid, the maximum of each
/// `block` frames (the last block may be shorter). Samples of `x` outside the range
/// are used as the filter's context; beyond `x` the signal is zero.
pub fn envelope_range(
    x: &[f32],
    from: usize,
    to: usize,
    block: usize,
    os: &Oversampler,
) -> Vec<f32> {
    let to = to.min(x.len());
    let block = block.max(1);
    if from >= to {
        return Vec::new();
    }
    let n_frames = to - from;
    let mut env = vec![0f32; n_frames.div_ceil(block)];
    let branches = os.branches();
    let nbr = branches.len();
    let before = TAPS / 2 - 1;
    let after = TAPS / 2;
    // Whole blocks per chunk so each block is finished inside one chunk.
    let chunk = (8192 / block).max(1) * block;
    // Grid values for frames s−1 ..= s+len (one extra on each side for the parabola).
    let mut padded = vec![0f32; chunk + 2 + before + after];
    let mut acc = vec![vec![0f32; chunk + 2]; nbr];
    let mut est = vec![0f32; chunk];
    let mut s = from;
    while s < to {
        let len = chunk.min(to - s);
        let m = len + 2;
        // padded[j] = x[s − 1 − before + j], zero outside x.
        let origin = s as isize - 1 - before as isize;
        for (j, p) in padded[..m + before + after].iter_mut().enumerate() {
            let idx = origin + j as isize;
            *p = if idx >= 0 && (idx as usize) < x.len() {
                x[idx as usize]
            } else {
                0.0
            };
        }
        for (a, h) in acc.iter_mut().zip(branches) {
            fir_into(h, &padded[..m + TAPS - 1], &mut a[..m]);
        }
        // Frame s−1+i: its sample is padded[i + before], its branches acc[p][i].
        let sample = |i: usize| padded[i + before].abs();
        for (i, e) in (1..=len).zip(est.iter_mut()) {
            let mut prev = acc[nbr - 1][i - 1].abs();
            let mut cur = sample(i);
            let mut best = 0f32;
            // The grid after the sample: each branch, then the next frame's sample.
            let nexts = acc
                .iter()
                .map(|a| a[i].abs())
                .chain(std::iter::once(sample(i + 1)));
            for next in nexts {
                best = best.max(refine(prev, cur, next));
                prev = cur;
                cur = next;
            }
            *e = best;
        }
        let b0 = (s - from) / block;
        for (bi, c) in est[..len].chunks(block).enumerate() {
            env[b0 + bi] = c.iter().fold(0f32, |m, &v| m.max(v));
        }
        s += len;
    }
    env
}

/// `out[j] = Σ_k h[k]·x[j + k]`. Eight outputs at a time stay in registers across
/// all taps (one load and one multiply-add per tap per eight outputs), instead of a
/// pass over the output per tap; the fixed-size inner loops vectorise.
fn fir_into(h: &[f32; TAPS], x: &[f32], out: &mut [f32]) {
    const L: usize = 8;
    let m = out.len();
    let whole = m - m % L;
    for (j, o) in (0..whole).step_by(L).zip(out.chunks_exact_mut(L)) {
        let mut s = [0f32; L];
        let xs = &x[j..j + TAPS - 1 + L];
        for (k, &hk) in h.iter().enumerate() {
            let w: &[f32; L] = xs[k..k + L].try_into().unwrap_or(&[0.0; L]);
            for l in 0..L {
                s[l] += hk * w[l];
            }
        }
        o.copy_from_slice(&s);
    }
    for (j, o) in out.iter_mut().enumerate().skip(whole) {
        *o = h.iter().zip(&x[j..j + TAPS]).map(|(a, b)| a * b).sum();
    }
}

/// The true peak of one channel, linear: the refined 4× grid everywhere, and the
/// refined 8× grid on the blocks within 0.3 dB of the largest 4× reading.
pub fn true_peak(x: &[f32]) -> f32 {
    const BLOCK: usize = 256;
    let env = envelope_range(x, 0, x.len(), BLOCK, Oversampler::x4());
    let coarse = env.iter().fold(0f32, |m, &v| m.max(v));
    if coarse == 0.0 {
        return 0.0;
    }
    let thr = coarse * 10f32.powf(-REFINE_WITHIN_DB as f32 / 20.0);
    let mut best = coarse;
    let mut b = 0;
    while b < env.len() {
        if env[b] < thr {
            b += 1;
            continue;
        }
        let start = b;
        while b < env.len() && env[b] >= thr {
            b += 1;
        }
        let fine = envelope_range(x, start * BLOCK, b * BLOCK, BLOCK, Oversampler::x8());
        best = fine.into_iter().fold(best, f32::max);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::PI;

    #[test]
    fn branches_interpolate_a_slow_sine() {
        for os in [Oversampler::x4(), Oversampler::x8()] {
            let f = 0.05f64; // cycles per sample
            let x: Vec<f64> = (0..100).map(|n| (2.0 * PI * f * n as f64).sin()).collect();
            for (p, br) in os.branches().iter().enumerate() {
                let frac = (p + 1) as f64 / os.factor() as f64;
                let n = 50usize;
                let y: f64 = br
                    .iter()
                    .enumerate()
                    .map(|(k, &h)| h as f64 * x[n + k + 1 - TAPS / 2])
                    .sum();
                let want = (2.0 * PI * f * (n as f64 + frac)).sin();
                assert!((y - want).abs() < 1e-3, "phase {p}: {y} vs {want}");
            }
        }
    }

    /// Sines up to 0.44·fs at many phases: the meter reads their amplitude (the
    /// analytic true peak) within 0.02 dB, where a bare 4× grid misses by up to 0.5 dB.
    #[test]
    fn reads_high_sines_at_their_amplitude() {
        let fs = 48000.0;
        for f in [997.0, 9000.0, 15000.0, 18000.0, 19000.0, 20000.0, 21000.0] {
            for ph in 0..8 {
                let phase = ph as f64 * PI / 8.0 + 0.1;
                let amp = 0.5;
                // Raised-cosine fades: an abrupt start would ring above the tone.
                let fade = |n: usize| {
                    let d = (n.min(4799 - n) as f64 / 1000.0).min(1.0);
                    0.5 - 0.5 * (PI * d).cos()
                };
                let x: Vec<f32> = (0..4800)
                    .map(|n| (amp * fade(n) * (2.0 * PI * f / fs * n as f64 + phase).sin()) as f32)
                    .collect();
                let tp = true_peak(&x);
                let err_db = 20.0 * (tp as f64 / amp).log10();
                assert!(err_db.abs() < 0.02, "{f} Hz phase {ph}: {err_db:+.3} dB");
            }
        }
    }

    /// The limiter's envelope (refined 4× grid) is within its 0.1 dB margin of the
    /// analytic peak up to 0.42·fs.
    #[test]
    fn envelope_is_within_the_limiter_margin() {
        let fs = 48000.0;
        for f in [5000.0, 15000.0, 18000.0, 20000.0] {
            for ph in 0..8 {
                let phase = ph as f64 * PI / 8.0 + 0.05;
                let x: Vec<f32> = (0..4800)
                    .map(|n| (2.0 * PI * f / fs * n as f64 + phase).sin() as f32 * 0.5)
                    .collect();
                // Frames 200..4600, with the samples around them as context.
                let env = envelope_range(&x, 200, 4600, 32, Oversampler::x4());
                let m = env.iter().fold(0f32, |a, &b| a.max(b));
                let err_db = 20.0 * (m as f64 / 0.5).log10();
                assert!(
                    (-0.12..0.05).contains(&err_db),
                    "{f} Hz phase {ph}: {err_db:+.3} dB"
                );
            }
        }
    }

    /// Noise band-limited to 0.45·fs against a float64 reference: the direct sinc sum
    /// (ideal band-limited interpolation) on a 4× grid, refined at 64×.
    #[test]
    fn noise_matches_a_float64_sinc_reference() {
        use rand::{Rng, SeedableRng};
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let white: Vec<f64> = (0..12000).map(|_| r.random_range(-1.0..1.0)).collect();
        // Low-pass at 0.45·fs: a 511-tap Blackman-windowed sinc, "valid" part only.
        let h: Vec<f64> = (0..511)
            .map(|k| {
                let t = k as f64 - 255.0;
                let sinc = if k == 255 {
                    0.9
                } else {
                    (0.9 * PI * t).sin() / (PI * t)
                };
                let w = 0.42 + 0.5 * (PI * t / 255.0).cos() + 0.08 * (2.0 * PI * t / 255.0).cos();
                sinc * w
            })
            .collect();
        // Faded in and out over 1000 samples so the edges hold no peaks.
        let len = white.len() - 511;
        let fade = |i: usize| (i.min(len - 1 - i) as f64 / 1000.0).min(1.0);
        let x: Vec<f32> = (0..len)
            .map(|i| {
                let v: f64 = h.iter().zip(&white[i..]).map(|(a, b)| a * b).sum();
                (0.5 * v * fade(i)) as f32
            })
            .collect();
        let ideal = |t: f64| -> f64 {
            let c = t.floor() as isize;
            let mut s = 0.0;
            for k in (c - 1500).max(0)..(c + 1500).min(x.len() as isize) {
                let d = t - k as f64;
                let sinc = if d.abs() < 1e-12 {
                    1.0
                } else {
                    (PI * d).sin() / (PI * d)
                };
                s += x[k as usize] as f64 * sinc;
            }
            s
        };
        // The reference's own 4× grid everywhere, then 64× around its 50 largest
        // points (such noise peaks between samples, often far above them).
        let mut grid: Vec<(f64, f64)> = (0..x.len() * 4)
            .map(|q| {
                let t = q as f64 / 4.0;
                (t, ideal(t).abs())
            })
            .collect();
        grid.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut want = 0f64;
        for &(t, _) in &grid[..50] {
            for j in -16..=16 {
                want = want.max(ideal(t + j as f64 / 64.0).abs());
            }
        }
        let got = true_peak(&x) as f64;
        let err_db = 20.0 * (got / want).log10();
        assert!(err_db.abs() < 0.02, "{err_db:+.3} dB ({got} vs {want})");
    }
}
