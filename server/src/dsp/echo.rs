//! Feedback delay insert, plain or ping-pong (CONTRACT.md, "delay"; the reverb
//! predelay line is [`super::delay::Delay`]).
//!
//! # Brief overview
//! wet[n] = Σ_{k≥1} fb^(k−1)·x[n − k·D], i.e. the recursion
//! w[n] = x[n − D] + fb[n]·w[n − D] (which is also the definition when the feedback
//! is automated); out = (1 − mix)·x + mix·w. One ring of D frames per channel holds
//! u[m] = x[m] + fb[m + D]·w[m], so w[n] = u[n − D]: the feedback is read D frames
//! ahead on its lane when the sample is written, which keeps one ring and no
//! recursion inside a run of ≤ D frames (the loops vectorise).
//!
//! Ping-pong: the delay's input is (L+R)/2 of the block (the mean of its channels),
//! odd repeats go left and even repeats right: wL[n] = s[n − D] + fb[n]·wR[n − D],
//! wR[n] = fb[n]·wL[n − D]. The dry path keeps the block's channels. The processor
//! reports 2 output channels; a mono strip hands it both sides at −3.01 dB.

use super::automation::Param;
use super::{ProcessCtx, ProcessSpec, Processor};
use crate::{Error, Result};

/// Scratch size in frames (feedback and mix values).
const SCRATCH: usize = 1024;

/// Delay settings.
#[derive(Debug, Clone, PartialEq)]
pub struct EchoParams {
    /// D in samples (≥ 1; the contract's 1 ms–10 s after rounding).
    pub delay_samples: usize,
    /// Feedback 0–0.99 (automatable).
    pub feedback: Param,
    /// Wet share 0–1 (automatable, per sample).
    pub mix: Param,
    /// Ping-pong: mono sum in, odd repeats left, even repeats right.
    pub ping_pong: bool,
}

fn try_zeros(n: usize, what: &str) -> Result<Vec<f32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|e| Error::Limit(format!("delay {what} of {n} samples: {e}")))?;
    v.resize(n, 0.0);
    Ok(v)
}

/// The feedback delay processor (implements [`Processor`]).
#[derive(Debug, Clone)]
pub struct Echo {
    p: EchoParams,
    /// Rings of D frames: one per channel, or (left, right) for ping-pong.
    rings: Vec<Vec<f32>>,
    pos: usize,
    fb: Vec<f32>,
    mix: Vec<f32>,
}

impl Echo {
    /// A delay with `p`; call [`Processor::prepare`] before processing.
    pub fn new(p: EchoParams) -> Self {
        Echo {
            p,
            rings: Vec::new(),
            pos: 0,
            fb: Vec::new(),
            mix: Vec::new(),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &EchoParams {
        &self.p
    }

    /// Plain: each channel through its own ring, frames [at, at+k) of the block,
    /// ring positions [pos, pos+k).
    fn run_plain(&mut self, block: &mut [&mut [f32]], at: usize, k: usize) {
        let pos = self.pos;
        let (fb, mix) = (&self.fb[..k], &self.mix[..k]);
        for (ch, ring) in block.iter_mut().zip(self.rings.iter_mut()) {
            let x = &mut ch[at..at + k];
            let r = &mut ring[pos..pos + k];
            for (((xv, u), &f), &m) in x.iter_mut().zip(r.iter_mut()).zip(fb).zip(mix) {
                let w = *u;
                let dry = *xv;
                *u = dry + f * w;
                *xv = (1.0 - m) * dry + m * w;
            }
        }
    }

    /// Ping-pong over frames [at, at+k): rings 0 (left, odd repeats) and 1 (right).
    fn run_ping_pong(&mut self, block: &mut [&mut [f32]], at: usize, k: usize) {
        let pos = self.pos;
        let (fb, mix) = (&self.fb[..k], &self.mix[..k]);
        let (rl, rr) = self.rings.split_at_mut(1);
        let (rl, rr) = (&mut rl[0][pos..pos + k], &mut rr[0][pos..pos + k]);
        match block {
            [l, r, ..] => {
                let (l, r) = (&mut l[at..at + k], &mut r[at..at + k]);
                for i in 0..k {
                    let (wl, wr) = (rl[i], rr[i]);
                    let (xl, xr) = (l[i], r[i]);
                    let s = 0.5 * (xl + xr);
                    rl[i] = s + fb[i] * wr;
                    rr[i] = fb[i] * wl;
                    let m = mix[i];
                    l[i] = (1.0 - m) * xl + m * wl;
                    r[i] = (1.0 - m) * xr + m * wr;
                }
            }
            [l] => {
                // Not widened by the chain: the left side (odd repeats) only.
                let l = &mut l[at..at + k];
                for i in 0..k {
                    let (wl, wr) = (rl[i], rr[i]);
                    let x = l[i];
                    rl[i] = x + fb[i] * wr;
                    rr[i] = fb[i] * wl;
                    l[i] = (1.0 - mix[i]) * x + mix[i] * wl;
                }
            }
            [] => {}
        }
    }
}

impl Processor for Echo {
    fn prepare(&mut self, spec: &ProcessSpec) -> Result<()> {
        let d = self.p.delay_samples.max(1);
        let n = if self.p.ping_pong { 2 } else { spec.channels };
        let mut rings = Vec::new();
        rings
            .try_reserve_exact(n)
            .map_err(|e| Error::Limit(format!("delay: {e}")))?;
        for _ in 0..n {
            rings.push(try_zeros(d, "line")?);
        }
        self.rings = rings;
        self.fb = try_zeros(SCRATCH, "scratch")?;
        self.mix = try_zeros(SCRATCH, "scratch")?;
        self.reset();
        Ok(())
    }

    fn reset(&mut self) {
        self.rings.iter_mut().for_each(|r| r.fill(0.0));
        self.pos = 0;
    }

    fn output_channels(&self, input: usize) -> usize {
        if self.p.ping_pong { 2 } else { input }
    }

    fn process(&mut self, block: &mut [&mut [f32]], ctx: &ProcessCtx<'_>) {
        let Some(d) = self.rings.first().map(Vec::len) else {
            return;
        };
        if self.fb.is_empty() {
            return;
        }
        let total = block.iter().map(|c| c.len()).min().unwrap_or(0);
        let mut at = 0;
        while at < total {
            // A run ends at the ring's wrap or the scratch's end.
            let k = (total - at).min(d - self.pos).min(SCRATCH);
            let start = ctx.start + at as u64;
            // The feedback that multiplies w[m] when it comes out at m + D.
            self.p.feedback.fill(start + d as u64, &mut self.fb[..k]);
            self.p.mix.fill(start, &mut self.mix[..k]);
            if self.p.ping_pong {
                self.run_ping_pong(block, at, k);
            } else {
                self.run_plain(block, at, k);
            }
            self.pos += k;
            if self.pos == d {
                self.pos = 0;
            }
            at += k;
        }
    }
}
