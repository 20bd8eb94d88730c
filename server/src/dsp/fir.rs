//! Linear-phase FIR filtering by FFT: the band split of the multiband compressor and
//! the linear-phase EQ (CPU twin of `crate::gpu::gpu_fir_bank`).
//!
//! # Brief overview
//! [`band_split_kernels`] designs complementary linear-phase kernels (Kaiser-windowed
//! sinc low-passes, differenced) whose sum is a delayed unit impulse, so the bands add
//! back to the input exactly. [`linear_phase_kernel`] designs a kernel for any magnitude
//! curve by frequency sampling. A [`FirBank`] streams a stereo signal through K kernels at
//! once, sharing one forward FFT per channel between all kernels.

use realfft::RealFftPlanner;
use realfft::num_complex::Complex;

use crate::dsp::convolution::{Upols, check_block_len};
use crate::{Error, Result};

/// Kaiser β of the band-split and EQ windows (about −85 dB side lobes).
const KAISER_BETA: f64 = 8.6;

/// Zeroth-order modified Bessel function of the first kind (power series).
fn bessel_i0(x: f64) -> f64 {
    let (mut sum, mut term) = (1.0, 1.0);
    let q = x * x / 4.0;
    for k in 1..64 {
        term *= q / (k * k) as f64;
        sum += term;
        if term < sum * 1e-17 {
            break;
        }
    }
    sum
}

/// Kaiser window of odd length `len`.
fn kaiser(len: usize, beta: f64) -> Vec<f64> {
    if len == 1 {
        return vec![1.0];
    }
    let c = (len - 1) as f64 / 2.0;
    let den = bessel_i0(beta);
    (0..len)
        .map(|i| {
            let r = (i as f64 - c) / c;
            bessel_i0(beta * (1.0 - r * r).max(0.0).sqrt()) / den
        })
        .collect()
}

/// Windowed-sinc low-pass at `fc_hz`, unit DC gain, centred at (len−1)/2.
fn lowpass(fc_hz: f64, sample_rate: f64, len: usize) -> Vec<f64> {
    let c = (len - 1) as f64 / 2.0;
    let w = kaiser(len, KAISER_BETA);
    let f = (fc_hz / sample_rate).clamp(0.0, 0.5);
    let mut h: Vec<f64> = (0..len)
        .map(|i| {
            let t = i as f64 - c;
            let s = if t == 0.0 {
                2.0 * f
            } else {
                (2.0 * std::f64::consts::PI * f * t).sin() / (std::f64::consts::PI * t)
            };
            s * w[i]
        })
        .collect();
    let dc: f64 = h.iter().sum();
    if dc.abs() > 1e-12 {
        h.iter_mut().for_each(|v| *v /= dc);
    }
    h
}

/// Linear-phase FIR kernels (odd length `len`; an even `len` is rounded up) for an N-band
/// split at the crossovers (N = crossovers + 1; crossovers are sorted and clamped to
/// (0, Nyquist)): kernel k passes band k; the kernels sum to a unit impulse delayed by
/// (len−1)/2 (perfect reconstruction to float rounding). Each crossover is −6 dB on
/// both of its bands (a linear-phase crossover).
pub fn band_split_kernels(crossovers_hz: &[f64], sample_rate: f64, len: usize) -> Vec<Vec<f32>> {
    let len = len.max(1) | 1;
    let mut xs: Vec<f64> = crossovers_hz
        .iter()
        .map(|f| {
            if f.is_finite() {
                f.clamp(0.0, sample_rate / 2.0)
            } else {
                0.0
            }
        })
        .collect();
    xs.sort_by(f64::total_cmp);
    let lps: Vec<Vec<f64>> = xs.iter().map(|&f| lowpass(f, sample_rate, len)).collect();
    let mut delta = vec![0.0f64; len];
    delta[(len - 1) / 2] = 1.0;
    let zero = vec![0.0f64; len];
    (0..=lps.len())
        .map(|k| {
            // band k = LP_k − LP_(k−1), with LP_(−1) = 0 and LP_N = δ: telescopes to δ.
            let upper = lps.get(k).unwrap_or(&delta);
            let lower = if k == 0 { &zero } else { &lps[k - 1] };
            upper
                .iter()
                .zip(lower)
                .map(|(u, l)| (u - l) as f32)
                .collect()
        })
        .collect()
}

/// A linear-phase kernel (odd length `len`; even rounded up) whose magnitude follows
/// `magnitude(freq_hz)` (linear gain; non-finite or negative values count as 0), by
/// frequency sampling on a dense grid and a Kaiser window. Delay: (len−1)/2.
pub fn linear_phase_kernel(
    magnitude: &dyn Fn(f64) -> f64,
    sample_rate: f64,
    len: usize,
) -> Vec<f32> {
    let len = len.max(1) | 1;
    let m = (len.next_power_of_two() * 8).max(64);
    let mut planner = RealFftPlanner::<f64>::new();
    let ifft = planner.plan_fft_inverse(m);
    let mut spec: Vec<Complex<f64>> = (0..=m / 2)
        .map(|k| {
            let g = magnitude(k as f64 * sample_rate / m as f64);
            Complex::new(if g.is_finite() { g.max(0.0) } else { 0.0 }, 0.0)
        })
        .collect();
    let mut a = ifft.make_output_vec();
    let _ = ifft.process(&mut spec, &mut a);
    let c = (len - 1) / 2;
    let w = kaiser(len, KAISER_BETA);
    (0..len)
        .map(|i| {
            let idx = (i + m - c) % m;
            (a[idx] / m as f64 * w[i]) as f32
        })
        .collect()
}

/// Streams a stereo signal through K kernels at once (K stereo outputs), block by block.
pub trait FirBank: Send {
    /// Frames per block.
    fn block_len(&self) -> usize;
    /// (len−1)/2 of the longest kernel: the delay of a linear-phase kernel.
    fn latency(&self) -> usize;
    /// Filters the next block: `input` is the stereo block, `outputs[k]` receives it
    /// filtered by kernel k (`block_len` frames each).
    fn process(&mut self, input: [&[f32]; 2], outputs: &mut [[&mut [f32]; 2]]) -> Result<()>;
    /// "cpu" or "gpu (adapter name)".
    fn backend_name(&self) -> String;
}

/// Checks the kernels of a FIR bank.
pub(crate) fn check_kernels(kernels: &[Vec<f32>], block_len: usize) -> Result<()> {
    check_block_len(block_len)?;
    if kernels.is_empty() || kernels.iter().any(Vec::is_empty) {
        return Err(Error::Internal(
            "fir bank: no kernels, or an empty kernel".into(),
        ));
    }
    if kernels.iter().flatten().any(|v| !v.is_finite()) {
        return Err(Error::Internal(
            "fir bank: a kernel has a non-finite tap".into(),
        ));
    }
    Ok(())
}

/// Checks the arguments of [`FirBank::process`].
pub(crate) fn check_fir_args(
    k: usize,
    block_len: usize,
    input: [&[f32]; 2],
    outputs: &[[&mut [f32]; 2]],
) -> Result<()> {
    if outputs.len() != k {
        return Err(Error::Internal(format!(
            "fir bank: {} outputs given for {k} kernels",
            outputs.len()
        )));
    }
    let bad = input.iter().any(|x| x.len() != block_len)
        || outputs.iter().flatten().any(|y| y.len() != block_len);
    if bad {
        return Err(Error::Internal(format!(
            "fir bank: every block must be {block_len} frames"
        )));
    }
    Ok(())
}

/// Latency of linear-phase kernels: (len−1)/2 of the longest.
pub(crate) fn kernels_latency(kernels: &[Vec<f32>]) -> usize {
    kernels
        .iter()
        .map(Vec::len)
        .max()
        .unwrap_or(1)
        .saturating_sub(1)
        / 2
}

struct CpuFirBank {
    block_len: usize,
    k: usize,
    latency: usize,
    core: Upols,
}

/// The CPU twin of the FIR bank: `kernels` (each ideally odd-length, linear-phase),
/// `block_len` a power of two in 256..=65536.
pub fn cpu_fir_bank(kernels: Vec<Vec<f32>>, block_len: usize) -> Result<Box<dyn FirBank>> {
    check_kernels(&kernels, block_len)?;
    let k = kernels.len();
    let filters: Vec<&[f32]> = kernels.iter().map(Vec::as_slice).collect();
    let routes = (0..k).flat_map(|f| [vec![(0, f)], vec![(1, f)]]).collect();
    Ok(Box::new(CpuFirBank {
        block_len,
        k,
        latency: kernels_latency(&kernels),
        core: Upols::new(block_len, &filters, 2, routes),
    }))
}

impl FirBank for CpuFirBank {
    fn block_len(&self) -> usize {
        self.block_len
    }
    fn latency(&self) -> usize {
        self.latency
    }
    fn process(&mut self, input: [&[f32]; 2], outputs: &mut [[&mut [f32]; 2]]) -> Result<()> {
        check_fir_args(self.k, self.block_len, input, outputs)?;
        let mut outs: Vec<&mut [f32]> = outputs
            .iter_mut()
            .flat_map(|[l, r]| [&mut **l, &mut **r])
            .collect();
        self.core.process(&input, &mut outs);
        Ok(())
    }
    fn backend_name(&self) -> String {
        "cpu".into()
    }
}

/// Magnitude of a real kernel at `freq_hz` (float64 DTFT), for tests and reports.
pub fn kernel_magnitude(kernel: &[f32], freq_hz: f64, sample_rate: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq_hz / sample_rate;
    let (mut re, mut im) = (0.0, 0.0);
    for (n, &h) in kernel.iter().enumerate() {
        re += h as f64 * (w * n as f64).cos();
        im -= h as f64 * (w * n as f64).sin();
    }
    (re * re + im * im).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dsp::gain_to_db;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn kernels_sum_to_a_delayed_impulse() {
        let ks = band_split_kernels(&[120.0, 1000.0, 6000.0], 48000.0, 2047);
        assert_eq!(ks.len(), 4);
        let c = 1023;
        for n in 0..2047 {
            let s: f64 = ks.iter().map(|k| k[n] as f64).sum();
            let want = if n == c { 1.0 } else { 0.0 };
            assert!((s - want).abs() < 1e-6, "tap {n}: {s}");
        }
    }

    #[test]
    fn band_edges_are_minus_6_db_and_bands_separate() {
        let sr = 48000.0;
        let xs = [200.0, 2000.0, 8000.0];
        let ks = band_split_kernels(&xs, sr, 4095);
        for (i, &f) in xs.iter().enumerate() {
            for k in [i, i + 1] {
                let db = gain_to_db(kernel_magnitude(&ks[k], f, sr));
                assert!((db + 6.02).abs() < 0.1, "band {k} at {f} Hz: {db} dB");
            }
        }
        // Well inside a band: unity; well outside: deep stop.
        let db = gain_to_db(kernel_magnitude(&ks[1], 700.0, sr));
        assert!(db.abs() < 0.01, "{db}");
        let db = gain_to_db(kernel_magnitude(&ks[1], 6000.0, sr));
        assert!(db < -70.0, "{db}");
    }

    #[test]
    fn linear_phase_kernel_follows_the_magnitude() {
        let sr = 48000.0;
        // A smooth tilt: +6 dB per decade above 100 Hz, capped.
        let mag = |f: f64| -> f64 { (f.max(100.0) / 100.0).powf(0.3).min(4.0) };
        let k = linear_phase_kernel(&mag, sr, 2049);
        assert_eq!(k.len(), 2049);
        for f in [200.0, 500.0, 1000.0, 3000.0, 10000.0, 20000.0] {
            let got = gain_to_db(kernel_magnitude(&k, f, sr));
            let want = gain_to_db(mag(f));
            assert!((got - want).abs() < 0.1, "{f} Hz: {got} vs {want}");
        }
        // Symmetric: linear phase.
        for i in 0..1024 {
            assert!((k[i] - k[2048 - i]).abs() < 1e-6);
        }
    }

    #[test]
    fn cpu_fir_bank_splits_and_reconstructs() {
        let sr = 48000.0;
        let b = 1024;
        let ks = band_split_kernels(&[300.0, 3000.0], sr, 1023);
        let mut bank = cpu_fir_bank(ks.clone(), b).unwrap();
        assert_eq!(bank.latency(), 511);
        let mut r = ChaCha8Rng::seed_from_u64(5);
        let n = 6 * b;
        let x: [Vec<f32>; 2] = [
            (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect(),
            (0..n).map(|_| r.random_range(-1.0f32..1.0)).collect(),
        ];
        let mut sum = [vec![0.0f64; n], vec![0.0f64; n]];
        let mut band0 = vec![0.0f32; n];
        for blk in 0..n / b {
            let mut outs = vec![[vec![0.0f32; b], vec![0.0f32; b]]; 3];
            let mut refs: Vec<[&mut [f32]; 2]> = outs
                .iter_mut()
                .map(|[l, r]| [l.as_mut_slice(), r.as_mut_slice()])
                .collect();
            bank.process([&x[0][blk * b..][..b], &x[1][blk * b..][..b]], &mut refs)
                .unwrap();
            for o in &outs {
                for c in 0..2 {
                    for i in 0..b {
                        sum[c][blk * b + i] += o[c][i] as f64;
                    }
                }
            }
            band0[blk * b..][..b].copy_from_slice(&outs[0][0]);
        }
        for c in 0..2 {
            let err = (511..n)
                .map(|i| (sum[c][i] - x[c][i - 511] as f64).abs())
                .fold(0.0, f64::max);
            assert!(
                gain_to_db(err) < -80.0,
                "reconstruction {}",
                gain_to_db(err)
            );
        }
        // Band 0 against a direct float64 convolution with kernel 0.
        let xf: Vec<f64> = x[0].iter().map(|&v| v as f64).collect();
        let hf: Vec<f64> = ks[0].iter().map(|&v| v as f64).collect();
        let want = crate::dsp::convolution::direct_convolve_f64(&xf, &hf);
        let err = (0..n)
            .map(|i| (band0[i] as f64 - want[i]).abs())
            .fold(0.0, f64::max);
        assert!(gain_to_db(err) < -90.0, "{}", gain_to_db(err));
    }
}
