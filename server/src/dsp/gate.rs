//! Gate: a downward expander with hold (CONTRACT.md, "Gate").
//!
//! # Brief overview
//! Detector: |x| per sample, linked across channels by the larger. The gain's target
//! is 0 dB while the level is at or above the threshold and for `hold_ms` after the
//! last such sample (frames n with n − last ≤ round(hold_ms·fs/1000)), else
//! `range_db`. The gain moves to its target along a straight line in dB that takes
//! `attack_ms` (opening) or `release_ms` (closing) for the whole range. It starts open
//! (0 dB) with no hold pending: a signal that starts below the threshold closes over
//! `release_ms` from the first sample.
//!
//! A line in dB is geometric in amplitude, so the gain is stepped by a constant
//! factor per sample in `f64` and clamped to [range, 1]: no per-sample `powf`, and a
//! gain that reaches 0 dB is exactly 1. The threshold may be automated; it is read
//! every 64 timeline frames (on frames that are multiples of 64), so block sizes do
//! not change the output.

use super::automation::Param;
use super::{ProcessCtx, ProcessSpec, Processor, db_to_gain};
use crate::{Error, Result};

/// Frames between threshold readings when it is automated.
pub const THRESHOLD_STEP: u64 = 64;

/// Scratch size in frames.
const SCRATCH: usize = 1024;

/// Gate settings in natural units.
#[derive(Debug, Clone, PartialEq)]
pub struct GateParams {
    /// Threshold in dBFS (−120..0), automatable.
    pub threshold_db: Param,
    /// Gain when closed, dB (−120..0).
    pub range_db: f64,
    /// Time to open over the whole range, ms.
    pub attack_ms: f64,
    /// Time the gate stays open after the level was last at or above threshold, ms.
    pub hold_ms: f64,
    /// Time to close over the whole range, ms.
    pub release_ms: f64,
}

/// Per-sample factors of the gain's straight lines in dB, for a range and times in
/// samples: (opening factor ≥ 1, closing factor ≤ 1). 0 samples is instant.
pub fn ramp_factors(range_db: f64, attack_samples: f64, release_samples: f64) -> (f64, f64) {
    let span = (-range_db).max(0.0);
    if span == 0.0 {
        return (1.0, 1.0);
    }
    let per = |n: f64| {
        if n > 0.0 { span / n } else { f64::INFINITY }
    };
    (
        db_to_gain(per(attack_samples)),
        db_to_gain(-per(release_samples)),
    )
}

/// The gate processor (implements [`Processor`]).
#[derive(Debug, Clone)]
pub struct Gate {
    p: GateParams,
    floor: f64,
    up: f64,
    down: f64,
    hold: u64,
    /// Current gain (linear, in [floor, 1]).
    g: f64,
    /// Frames since the level was last at or above threshold (saturating).
    since: u64,
    /// Threshold as a linear amplitude and the 64-frame cell it was read for.
    thr: f64,
    thr_cell: u64,
    scratch: Vec<f32>,
}

impl Gate {
    /// A gate with `p`; call [`Processor::prepare`] before processing.
    pub fn new(p: GateParams) -> Self {
        Gate {
            floor: db_to_gain(p.range_db.min(0.0)),
            p,
            up: 1.0,
            down: 1.0,
            hold: 0,
            g: 1.0,
            since: 0,
            thr: 1.0,
            thr_cell: u64::MAX,
            scratch: Vec::new(),
        }
    }

    /// The parameters.
    pub fn params(&self) -> &GateParams {
        &self.p
    }

    /// The current gain in dB, for meters and tests.
    pub fn gain_db(&self) -> f64 {
        20.0 * self.g.log10()
    }

    /// Runs the detector/gain recursion over `det` (levels in, gains out), frames
    /// starting at timeline frame `start`.
    fn gains(&mut self, det: &mut [f32], start: u64) {
        let fixed = self.p.threshold_db.fixed();
        let (mut g, mut since) = (self.g, self.since);
        let (up, down, floor, hold) = (self.up, self.down, self.floor, self.hold);
        let mut i = 0;
        while i < det.len() {
            let frame = start + i as u64;
            let run = match fixed {
                Some(t) => {
                    self.thr = db_to_gain(t);
                    det.len() - i
                }
                None => {
                    let cell = frame / THRESHOLD_STEP;
                    if cell != self.thr_cell {
                        self.thr_cell = cell;
                        self.thr = db_to_gain(self.p.threshold_db.at(cell * THRESHOLD_STEP));
                    }
                    ((THRESHOLD_STEP - frame % THRESHOLD_STEP) as usize).min(det.len() - i)
                }
            };
            let thr = self.thr;
            for v in &mut det[i..i + run] {
                since = if f64::from(*v) >= thr {
                    0
                } else {
                    since.saturating_add(1)
                };
                let opening = (g * up).min(1.0);
                let closing = (g * down).max(floor);
                g = if since <= hold { opening } else { closing };
                *v = g as f32;
            }
            i += run;
        }
        self.g = g;
        self.since = since;
    }
}

impl Processor for Gate {
    fn prepare(&mut self, spec: &ProcessSpec) -> Result<()> {
        let fs = spec.sample_rate;
        let samples = |ms: f64| ms.max(0.0) * 1e-3 * fs;
        let (up, down) = ramp_factors(
            self.p.range_db,
            samples(self.p.attack_ms),
            samples(self.p.release_ms),
        );
        self.up = up;
        self.down = down;
        self.floor = db_to_gain(self.p.range_db.min(0.0));
        self.hold = samples(self.p.hold_ms).round() as u64;
        let mut s = Vec::new();
        s.try_reserve_exact(SCRATCH)
            .map_err(|e| Error::Limit(format!("gate scratch: {e}")))?;
        s.resize(SCRATCH, 0.0);
        self.scratch = s;
        self.reset();
        Ok(())
    }

    fn reset(&mut self) {
        self.g = 1.0;
        self.since = 0;
        self.thr_cell = u64::MAX;
    }

    fn process(&mut self, block: &mut [&mut [f32]], ctx: &ProcessCtx<'_>) {
        if block.is_empty() || self.scratch.is_empty() {
            return;
        }
        let total = block.iter().map(|c| c.len()).min().unwrap_or(0);
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut at = 0;
        while at < total {
            let n = (total - at).min(scratch.len());
            let det = &mut scratch[..n];
            for (d, &x) in det.iter_mut().zip(&block[0][at..at + n]) {
                *d = x.abs();
            }
            for ch in &block[1..] {
                for (d, &x) in det.iter_mut().zip(&ch[at..at + n]) {
                    *d = d.max(x.abs());
                }
            }
            self.gains(det, ctx.start + at as u64);
            for ch in block.iter_mut() {
                for (x, g) in ch[at..at + n].iter_mut().zip(det.iter()) {
                    *x *= *g;
                }
            }
            at += n;
        }
        self.scratch = scratch;
    }
}
