//! TPDF dither and quantisation to 16- or 24-bit integers, with optional noise
//! shaping.
//!
//! # Brief overview
//! [`Quantizer::quantize`] maps float samples (full scale ±1.0) to integers of
//! `bits` bits: x·2^(bits−1) + d, rounded, clipped, where d is triangular (TPDF) noise
//! of ±1 LSB peak (the sum of two independent uniform ±½ LSB values). That makes the
//! total error white with variance LSB²/4 (LSB²/12 rounding + LSB²/6 dither) and
//! independent of the signal. With [`NoiseShaping::Lipshitz5`] the error is fed back
//! through Lipshitz's 5-tap psychoacoustic filter, moving it above ~10 kHz.
//! The random source is a small xorshift generator seeded per channel, so a render
//! is reproducible.

/// Error-feedback filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoiseShaping {
    /// White TPDF (the default for deliverables).
    #[default]
    None,
    /// Lipshitz et al.'s 5-tap "improved E-weighted" filter (44.1/48 kHz).
    Lipshitz5,
}

const LIPSHITZ5: [f64; 5] = [2.033, -2.165, 1.959, -1.590, 0.6149];

/// A per-channel quantiser (keeps the dither generator and shaping state).
#[derive(Debug, Clone)]
pub struct Quantizer {
    bits: u32,
    shaping: NoiseShaping,
    rng: u64,
    err: [f64; 5],
}

impl Quantizer {
    /// A quantiser to `bits` (2..=24) with a seed (use the channel index, say).
    pub fn new(bits: u32, shaping: NoiseShaping, seed: u64) -> Self {
        let mut rng = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
        if rng == 0 {
            rng = 1;
        }
        Quantizer {
            bits: bits.clamp(2, 24),
            shaping,
            rng,
            err: [0.0; 5],
        }
    }

    #[inline(always)]
    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Quantises `x` into `out` (same length). Returns how many samples clipped.
    pub fn quantize(&mut self, x: &[f32], out: &mut [i32]) -> usize {
        // f64: at 24 bits a full-scale sample times 2^23 leaves f32 no room for the
        // fraction the dither works in.
        let scale = (1u32 << (self.bits - 1)) as f64;
        let max = scale - 1.0;
        let min = -scale;
        let inv = 1.0 / 4_294_967_296.0f64;
        let mut clipped = 0;
        for (o, &v) in out.iter_mut().zip(x) {
            let r = self.next();
            // Two uniform values in [0, 1) from the two halves; their difference is
            // triangular on (−1, 1) LSB.
            let u1 = (r >> 32) as u32 as f64 * inv;
            let u2 = r as u32 as f64 * inv;
            let d = u1 - u2;
            let mut s = v as f64 * scale;
            if self.shaping == NoiseShaping::Lipshitz5 {
                let fb: f64 = LIPSHITZ5.iter().zip(&self.err).map(|(h, e)| h * e).sum();
                s -= fb;
            }
            let q = (s + d).round();
            let qc = q.clamp(min, max);
            if qc != q {
                clipped += 1;
            }
            if self.shaping == NoiseShaping::Lipshitz5 {
                // The error the filter shapes is the total quantiser error (with
                // dither); clamp it so a clipped run cannot blow the loop up.
                self.err.copy_within(0..4, 1);
                self.err[0] = (qc - s).clamp(-4.0, 4.0);
            }
            *o = qc as i32;
        }
        clipped
    }
}

/// Quantises planar channels to `bits` (one [`Quantizer`] per channel, seeded by
/// index, channels in parallel). Returns the integers and the clipped-sample count.
pub fn quantize_channels(
    channels: &[Vec<f32>],
    bits: u32,
    shaping: NoiseShaping,
) -> (Vec<Vec<i32>>, usize) {
    use rayon::prelude::*;
    let res: Vec<(Vec<i32>, usize)> = channels
        .par_iter()
        .enumerate()
        .map(|(i, c)| {
            let mut q = Quantizer::new(bits, shaping, i as u64 + 1);
            let mut out = vec![0i32; c.len()];
            let clipped = q.quantize(c, &mut out);
            (out, clipped)
        })
        .collect();
    let clipped = res.iter().map(|r| r.1).sum();
    (res.into_iter().map(|r| r.0).collect(), clipped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tpdf_error_has_quarter_lsb_squared_variance() {
        let n = 200_000;
        let x: Vec<f32> = (0..n).map(|i| 0.3 * (i as f32 * 0.001).sin()).collect();
        let mut q = Quantizer::new(16, NoiseShaping::None, 7);
        let mut out = vec![0; n];
        q.quantize(&x, &mut out);
        let scale = 32768.0f64;
        let (mut m, mut v) = (0.0, 0.0);
        for (o, &s) in out.iter().zip(&x) {
            let e = *o as f64 - s as f64 * scale;
            m += e;
            v += e * e;
        }
        m /= n as f64;
        v = v / n as f64 - m * m;
        assert!(m.abs() < 0.01, "mean {m}");
        assert!((v - 0.25).abs() < 0.01, "variance {v}");
    }
}
