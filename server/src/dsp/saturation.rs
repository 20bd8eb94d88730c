//! Saturation insert: y = output · tanh(drive · x), mixed with the dry signal,
//! oversampled so that the tanh's harmonics do not fold back (CONTRACT.md,
//! "Saturation").
//!
//! # Brief overview
//! Per channel: drive → [`Oversampler`] (2^S×, see its module) with [`fast_tanh`] at
//! the high rate → output gain, then `(1 − mix)·dry + mix·wet`. The filters delay the
//! wet path by [`Processor::latency`] whole samples, so the dry path is delayed by as
//! much inside and the two stay aligned; the chain compensates the latency. Automated
//! parameters are read on the input's timeline: drive at the input frame, mix and
//! output at the output frame minus the latency (the frame the sample came in at), so
//! after compensation automation lines up with the music. Mix and output follow per
//! sample, drive per sample.

use super::automation::Param;
use super::fastmath::fast_exp2;
use super::oversample::{CHUNK, Oversampler};
use super::{ProcessCtx, ProcessSpec, Processor, db_to_gain};
use crate::{Error, Result};

/// log2(10)/20: dB to log2 of the amplitude.
const LOG2_PER_DB: f32 = 0.166_096_4;

/// Saturation settings (natural units; any may follow an automation lane).
#[derive(Debug, Clone, PartialEq)]
pub struct SaturationParams {
    /// Drive in dB (0–48): the input gain before the tanh.
    pub drive_db: Param,
    /// Output gain in dB applied to the tanh's output.
    pub output_db: Param,
    /// Wet share, 0–1 (1: all saturated).
    pub mix: Param,
}

/// tanh in `f32` as a rational minimax approximation (the one Eigen uses): odd
/// degree-13 numerator over even degree-6 denominator on [−7.9, 7.9], clamped
/// outside (where tanh rounds to ±1 in `f32` anyway). Absolute error < 5e-7,
/// relative error a few ulp; branch-free, so loops over it vectorise.
#[inline(always)]
pub fn fast_tanh(x: f32) -> f32 {
    let x = x.clamp(-7.905_311, 7.905_311);
    let x2 = x * x;
    let p = -2.760_768_5e-16_f32;
    let p = p * x2 + 2.000_188e-13;
    let p = p * x2 - 8.604_672e-11;
    let p = p * x2 + 5.122_297e-8;
    let p = p * x2 + 1.485_722_4e-5;
    let p = p * x2 + 6.372_619_3e-4;
    let p = p * x2 + 4.893_524_6e-3;
    let q = 1.198_258_4e-6_f32;
    let q = q * x2 + 1.185_347_1e-4;
    let q = q * x2 + 2.268_434_6e-3;
    let q = q * x2 + 4.893_525e-3;
    x * p / q
}

fn try_zeros(n: usize) -> Result<Vec<f32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|e| Error::Limit(format!("saturation buffer of {n} samples: {e}")))?;
    v.resize(n, 0.0);
    Ok(v)
}

/// Fills `out` with the param's values at frames `start − lat + i`, frames before 0
/// reading frame 0.
fn fill_back(p: &Param, start: u64, lat: usize, out: &mut [f32]) {
    let lat = lat as u64;
    if start >= lat {
        p.fill(start - lat, out);
    } else {
        let k = ((lat - start) as usize).min(out.len());
        out[..k].fill(p.at(0) as f32);
        p.fill(0, &mut out[k..]);
    }
}

/// Per-channel state: the oversampler and the dry delay line.
#[derive(Debug, Clone)]
struct Chan {
    os: Oversampler,
    dry: Vec<f32>,
}

/// The saturation processor (implements [`Processor`]).
#[derive(Debug, Clone)]
pub struct Saturation {
    p: SaturationParams,
    chans: Vec<Chan>,
    /// Shared dry-ring position.
    pos: usize,
    latency: usize,
    /// Scratch, CHUNK each: wet signal, drive, output gain, mix.
    wet: Vec<f32>,
    drive: Vec<f32>,
    gain: Vec<f32>,
    mix: Vec<f32>,
}

impl Saturation {
    /// A saturation with `p`; call [`Processor::prepare`] before processing.
    pub fn new(p: SaturationParams) -> Self {
        Saturation {
            p,
            chans: Vec::new(),
            pos: 0,
            latency: 0,
            wet: Vec::new(),
            drive: Vec::new(),
            gain: Vec::new(),
            mix: Vec::new(),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &SaturationParams {
        &self.p
    }

    /// Fills `out` with linear gains for a dB param at `start`.
    fn gains(p: &Param, start: u64, lat: usize, out: &mut [f32]) {
        match p.fixed() {
            Some(db) => out.fill(db_to_gain(db) as f32),
            None => {
                fill_back(p, start, lat, out);
                for v in out.iter_mut() {
                    *v = fast_exp2(*v * LOG2_PER_DB);
                }
            }
        }
    }
}

impl Processor for Saturation {
    fn prepare(&mut self, spec: &ProcessSpec) -> Result<()> {
        let mut chans = Vec::new();
        chans
            .try_reserve_exact(spec.channels)
            .map_err(|e| Error::Limit(format!("saturation: {e}")))?;
        let mut latency = 0;
        for _ in 0..spec.channels {
            let os = Oversampler::new(spec.sample_rate)?;
            latency = os.latency();
            chans.push(Chan {
                dry: try_zeros(latency)?,
                os,
            });
        }
        if spec.channels == 0 {
            latency = Oversampler::new(spec.sample_rate)?.latency();
        }
        self.chans = chans;
        self.latency = latency;
        self.wet = try_zeros(CHUNK)?;
        self.drive = try_zeros(CHUNK)?;
        self.gain = try_zeros(CHUNK)?;
        self.mix = try_zeros(CHUNK)?;
        self.reset();
        Ok(())
    }

    fn reset(&mut self) {
        for c in &mut self.chans {
            c.os.reset();
            c.dry.fill(0.0);
        }
        self.pos = 0;
    }

    fn latency(&self) -> usize {
        self.latency
    }

    fn process(&mut self, block: &mut [&mut [f32]], ctx: &ProcessCtx<'_>) {
        if self.wet.is_empty() {
            return;
        }
        let total = block.iter().map(|c| c.len()).min().unwrap_or(0);
        let lat = self.latency;
        let mut at = 0;
        while at < total {
            let k = (total - at).min(CHUNK);
            let start = ctx.start + at as u64;
            // Drive is read at the input frame, mix and output at the frame the
            // (delayed) output sample came in at.
            Self::gains(&self.p.drive_db, start, 0, &mut self.drive[..k]);
            Self::gains(&self.p.output_db, start, lat, &mut self.gain[..k]);
            match self.p.mix.fixed() {
                Some(m) => self.mix[..k].fill(m as f32),
                None => fill_back(&self.p.mix, start, lat, &mut self.mix[..k]),
            }
            let mut end_pos = self.pos;
            for (ch, st) in block.iter_mut().zip(self.chans.iter_mut()) {
                let x = &mut ch[at..at + k];
                let wet = &mut self.wet[..k];
                for ((w, &v), &d) in wet.iter_mut().zip(x.iter()).zip(&self.drive[..k]) {
                    *w = v * d;
                }
                st.os
                    .process(wet, |v| v.iter_mut().for_each(|s| *s = fast_tanh(*s)));
                // Dry delay: swap runs of the chunk with the ring.
                let mut pos = self.pos;
                if lat > 0 {
                    let mut i = 0;
                    while i < k {
                        let run = (k - i).min(lat - pos);
                        x[i..i + run].swap_with_slice(&mut st.dry[pos..pos + run]);
                        i += run;
                        pos += run;
                        if pos == lat {
                            pos = 0;
                        }
                    }
                }
                end_pos = pos;
                let (g, m) = (&self.gain[..k], &self.mix[..k]);
                for (((o, &w), &g), &m) in x.iter_mut().zip(wet.iter()).zip(g).zip(m) {
                    *o = (1.0 - m) * *o + m * (g * w);
                }
            }
            self.pos = end_pos;
            at += k;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn fast_tanh_matches_f64() {
        let mut worst = 0f64;
        for i in -200_000..=200_000 {
            let x = i as f64 * 1e-4;
            let got = fast_tanh(x as f32) as f64;
            let want = (x as f32 as f64).tanh();
            worst = worst.max((got - want).abs());
            if want.abs() > 1e-30 {
                assert!(((got - want) / want).abs() < 1e-6, "{x}: {got} vs {want}");
            }
        }
        assert!(worst < 5e-7, "worst abs error {worst}");
        assert_eq!(fast_tanh(100.0), fast_tanh(7.905_311));
        assert!(fast_tanh(100.0) > 0.999_999);
    }
}
