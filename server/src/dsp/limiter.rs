//! True-peak look-ahead limiter for offline mastering.
//!
//! # Brief overview
//! Offline, the limiter sees the whole signal, so it works in three cheap steps
//! instead of a per-sample state machine:
//! 1. [`peak_envelope`]: the linked (max over channels) true peak of the
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
//! The detector is [`crate::dsp::true_peak`]'s 4× grid with parabolic refinement
//! (within ~0.1 dB of the analytic peak up to 0.42·fs); the mastering loop then
//! verifies the file as written with the finer meter there.

/// Limiter settings in natural units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LimiterParams {
    /// Ceiling in dBTP (the detector's true-peak reading never exceeds it).
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

pub use crate::dsp::true_peak::{peak_envelope, true_peak};

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
    apply_gain_curve_at(x, y, curve, block, pre_gain_db, 0);
}

/// [`apply_gain_curve`] for a piece of the signal: `x[0]` is frame `start`.
pub fn apply_gain_curve_at(
    x: &[f32],
    y: &mut [f32],
    curve: &[f32],
    block: usize,
    pre_gain_db: f64,
    start: usize,
) {
    let g = 10f64.powf(pre_gain_db / 20.0) as f32;
    let block = block.max(1);
    let inv = 1.0 / block as f32;
    let len = y.len().min(x.len());
    let mut done = 0;
    while done < len {
        let t = start + done;
        let (k, i0) = (t / block, t % block);
        let m = (block - i0).min(len - done);
        let a = curve.get(k).copied().unwrap_or(1.0);
        let b = curve.get(k + 1).copied().unwrap_or(a);
        let d = (b - a) * inv;
        for (i, (o, &v)) in y[done..done + m]
            .iter_mut()
            .zip(&x[done..done + m])
            .enumerate()
        {
            *o = v * g * (a + d * (i0 + i) as f32);
        }
        done += m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
