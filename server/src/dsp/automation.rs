//! Gain automation: a dB envelope on the session timeline turned into per-sample gains.
//!
//! # Brief overview
//! The value at timeline frame n is defined on t = n / sample_rate (f64): before the
//! first point the first value holds, after the last the last one; between two points
//! it is interpolated linearly in dB; two points at one time make a step (from that
//! time on, the later point's value applies). The gain is 10^((base + value)/20).
//!
//! For speed, [`GainEnvelope::fill`] evaluates that exactly (f64) at the start of every
//! segment piece and every [`REANCHOR`] frames, and in between multiplies by the
//! segment's constant per-sample ratio 10^(slope/(20·rate)) in f64: a linear-in-dB
//! ramp is geometric in amplitude, so this is the same function up to f64 rounding
//! (≈ 1e-13 relative after REANCHOR steps), far below the f32 output's 6e-8.

/// Frames between exact re-evaluations inside one segment.
pub const REANCHOR: usize = 1024;

/// One piece of the envelope: from `t0` (inclusive) the value is
/// `v0 + slope · (t − t0)` dB, until the next segment's `t0`.
#[derive(Debug, Clone, Copy)]
struct Segment {
    t0: f64,
    v0: f64,
    slope: f64,
    /// First frame n with n / rate ≥ t0.
    start: u64,
}

/// Per-sample linear gain from a dB envelope: `base_db` plus the points
/// `(time_s, db)` interpolated linearly in dB per sample on the session timeline.
#[derive(Debug, Clone)]
pub struct GainEnvelope {
    base_db: f64,
    rate: f64,
    /// Value before the first segment starts (the first point's value, or 0).
    first: f64,
    /// Non-empty unless there are no points; the last one has slope 0 (hold).
    segments: Vec<Segment>,
    constant: Option<f32>,
    /// Timeline frame of time 0 (see [`GainEnvelope::with_origin`]).
    origin: u64,
}

/// Frames before `origin` hold the value at the origin; frame n ≥ origin reads n − origin.
fn split_origin(origin: u64, start: u64, out: &mut [f32], mut f: impl FnMut(u64, &mut [f32])) {
    if start >= origin {
        f(start - origin, out);
        return;
    }
    let m = usize::try_from(origin - start)
        .unwrap_or(usize::MAX)
        .min(out.len());
    let (head, rest) = out.split_at_mut(m);
    if !head.is_empty() {
        let mut v = [0f32];
        f(0, &mut v);
        head.fill(v[0]);
    }
    if !rest.is_empty() {
        f(0, rest);
    }
}

impl GainEnvelope {
    /// An envelope of `base_db` plus `points` (time in s on the session timeline, dB).
    ///
    /// Points are ordered by time (stable: of points at one time, the later in the
    /// list is the later one). No points: constant `base_db`.
    pub fn new(base_db: f64, points: &[(f64, f64)], sample_rate: f64) -> Self {
        let mut pts = points.to_vec();
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        let first = pts.first().map_or(0.0, |p| p.1);
        let mut segments = Vec::with_capacity(pts.len());
        for (i, &(t0, v0)) in pts.iter().enumerate() {
            let slope = match pts.get(i + 1) {
                // Equal times: a zero-length segment that the next one replaces at once.
                Some(&(t1, v1)) if t1 > t0 => (v1 - v0) / (t1 - t0),
                _ => 0.0,
            };
            segments.push(Segment {
                t0,
                v0,
                slope,
                start: first_frame_at(t0, sample_rate),
            });
        }
        let all_same = pts.iter().all(|p| p.1 == first);
        let constant = all_same.then(|| db_gain(base_db + first) as f32);
        GainEnvelope {
            base_db,
            rate: sample_rate,
            first,
            segments,
            constant,
            origin: 0,
        }
    }

    /// The same envelope on a timeline whose time 0 is frame `origin` (the engine runs
    /// ahead of time 0 to compensate latency); before it the value at 0 holds.
    pub fn with_origin(mut self, origin: u64) -> Self {
        self.origin = origin;
        self
    }

    /// The envelope's dB value (base included) at timeline frame `n`, computed directly
    /// in f64: the definition `fill` follows.
    pub fn db_at(&self, n: u64) -> f64 {
        let t = n.saturating_sub(self.origin) as f64 / self.rate;
        // The last segment whose t0 ≤ t: with equal times, the later point wins.
        let k = self.segments.partition_point(|s| s.t0 <= t);
        if k == 0 {
            return self.base_db + self.first;
        }
        let s = &self.segments[k - 1];
        self.base_db + s.v0 + s.slope * (t - s.t0)
    }

    /// Fills `out[i]` with the linear gain at timeline frame `start_frame + i`.
    /// No allocation.
    pub fn fill(&self, start_frame: u64, out: &mut [f32]) {
        if let Some(g) = self.constant {
            out.fill(g);
            return;
        }
        if self.origin > 0 {
            split_origin(self.origin, start_frame, out, |s, o| self.fill_from(s, o));
        } else {
            self.fill_from(start_frame, out);
        }
    }

    fn fill_from(&self, start_frame: u64, out: &mut [f32]) {
        let end = start_frame.saturating_add(out.len() as u64);
        let mut n = start_frame;
        // Index of the first segment starting after n.
        let mut k = self.segments.partition_point(|s| s.start <= n);
        while n < end {
            // This piece runs until the next segment starts (or the block ends).
            let piece_end = self.segments.get(k).map_or(end, |s| s.start.min(end));
            let (v0, slope, t0) = match k {
                0 => (self.first, 0.0, 0.0),
                _ => {
                    let s = &self.segments[k - 1];
                    (s.v0, s.slope, s.t0)
                }
            };
            let ratio = db_gain(slope / self.rate);
            while n < piece_end {
                let run_end = piece_end.min(n.saturating_add(REANCHOR as u64));
                let t = n as f64 / self.rate;
                let mut g = db_gain(self.base_db + v0 + slope * (t - t0));
                let dst = &mut out[(n - start_frame) as usize..(run_end - start_frame) as usize];
                for o in dst {
                    *o = g as f32;
                    g *= ratio;
                }
                n = run_end;
            }
            k += 1;
        }
    }

    /// `Some(gain)` when the gain is the same at every frame (lets the engine skip the
    /// per-sample multiply), else `None`.
    pub fn is_constant(&self) -> Option<f32> {
        self.constant
    }
}

#[inline]
fn db_gain(db: f64) -> f64 {
    10f64.powf(db / 20.0)
}

/// The first frame n with n / rate ≥ t (the same f64 comparison `db_at` makes).
fn first_frame_at(t: f64, rate: f64) -> u64 {
    if t.is_nan() || t <= 0.0 || rate.is_nan() || rate <= 0.0 {
        return 0;
    }
    let guess = (t * rate).ceil();
    if guess >= u64::MAX as f64 / 2.0 {
        return u64::MAX / 2;
    }
    let mut n = guess as u64;
    // Rounding in t · rate can be off by one either way: settle it with the exact test.
    while n > 0 && (n - 1) as f64 / rate >= t {
        n -= 1;
    }
    while (n as f64 / rate) < t {
        n += 1;
    }
    n
}

/// An automation lane of any parameter on the session timeline (CONTRACT.md,
/// "Automation of any parameter"): the value at frame n is taken at t = n / rate;
/// linear between points in the value's own unit, or a step lane (mute: the latest
/// point at or before t); values hold before the first and after the last point; at
/// equal times the later point holds from that time on.
#[derive(Debug, Clone, PartialEq)]
pub struct Lane {
    rate: f64,
    /// Sorted by time (stable), at least one point.
    points: Vec<(f64, f64)>,
    step: bool,
    /// Timeline frame of time 0 (see [`Lane::with_origin`]).
    origin: u64,
}

impl Lane {
    /// A linearly interpolated lane. `points` must not be empty (validation sees to it);
    /// an empty list reads as a constant 0.
    pub fn linear(points: &[(f64, f64)], rate: f64) -> Self {
        Self::build(points, rate, false)
    }

    /// A step lane: the value of the latest point at or before t.
    pub fn steps(points: &[(f64, f64)], rate: f64) -> Self {
        Self::build(points, rate, true)
    }

    fn build(points: &[(f64, f64)], rate: f64, step: bool) -> Self {
        let mut pts = if points.is_empty() {
            vec![(0.0, 0.0)]
        } else {
            points.to_vec()
        };
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        Lane {
            rate,
            points: pts,
            step,
            origin: 0,
        }
    }

    /// The same lane on a timeline whose time 0 is frame `origin`; before it the
    /// value at 0 holds.
    pub fn with_origin(mut self, origin: u64) -> Self {
        self.origin = origin;
        self
    }

    /// True when the lane has one value everywhere.
    pub fn constant(&self) -> Option<f64> {
        let v = self.points[0].1;
        self.points.iter().all(|p| p.1 == v).then_some(v)
    }

    /// The value at timeline frame `n` (f64, directly from the definition).
    pub fn value_at(&self, n: u64) -> f64 {
        let t = n.saturating_sub(self.origin) as f64 / self.rate;
        let i = self.points.partition_point(|p| p.0 <= t);
        self.value_between(i, t)
    }

    /// The value at time t, given i = the number of points at or before t.
    #[inline]
    fn value_between(&self, i: usize, t: f64) -> f64 {
        let pts = &self.points;
        if i == 0 {
            return pts[0].1;
        }
        let (t0, v0) = pts[i - 1];
        if self.step || i == pts.len() {
            return v0;
        }
        let (t1, v1) = pts[i];
        // t0 ≤ t < t1, so t1 > t0.
        v0 + (v1 - v0) * ((t - t0) / (t1 - t0))
    }

    /// Per-sample values for frames [start, start + out.len()) (no allocation).
    pub fn fill(&self, start: u64, out: &mut [f32]) {
        if self.origin > 0 {
            split_origin(self.origin, start, out, |s, o| self.fill_from(s, o));
        } else {
            self.fill_from(start, out);
        }
    }

    fn fill_from(&self, start: u64, out: &mut [f32]) {
        let t = start as f64 / self.rate;
        let mut i = self.points.partition_point(|p| p.0 <= t);
        for (k, o) in out.iter_mut().enumerate() {
            let t = (start + k as u64) as f64 / self.rate;
            while i < self.points.len() && self.points[i].0 <= t {
                i += 1;
            }
            *o = self.value_between(i, t) as f32;
        }
    }
}

/// A processor parameter: fixed, or following an automation lane.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// The same value everywhere.
    Fixed(f64),
    /// Follows a lane.
    Auto(Lane),
}

impl Param {
    /// The value at timeline frame `n`.
    #[inline]
    pub fn at(&self, n: u64) -> f64 {
        match self {
            Param::Fixed(v) => *v,
            Param::Auto(l) => l.value_at(n),
        }
    }

    /// `Some(v)` when the value never changes.
    pub fn fixed(&self) -> Option<f64> {
        match self {
            Param::Fixed(v) => Some(*v),
            Param::Auto(l) => l.constant(),
        }
    }

    /// Per-sample values for frames [start, start + out.len()).
    pub fn fill(&self, start: u64, out: &mut [f32]) {
        match self {
            Param::Fixed(v) => out.fill(*v as f32),
            Param::Auto(l) => l.fill(start, out),
        }
    }
}

#[cfg(test)]
mod lane_tests {
    use super::*;

    #[test]
    fn lane_follows_the_contract_reading() {
        // Linear between points, hold outside, later point wins at a step.
        let l = Lane::linear(&[(1.0, 0.0), (2.0, 10.0), (2.0, -5.0), (3.0, -5.0)], 10.0);
        assert_eq!(l.value_at(0), 0.0);
        assert!((l.value_at(15) - 5.0).abs() < 1e-12);
        assert_eq!(l.value_at(20), -5.0);
        assert_eq!(l.value_at(100), -5.0);
        let mut out = [0f32; 40];
        l.fill(0, &mut out);
        for (n, v) in out.iter().enumerate() {
            assert_eq!(*v, l.value_at(n as u64) as f32, "frame {n}");
        }
        let m = Lane::steps(&[(0.0, 0.0), (1.0, 1.0), (2.5, 0.0)], 10.0);
        assert_eq!(m.value_at(9), 0.0);
        assert_eq!(m.value_at(10), 1.0);
        assert_eq!(m.value_at(24), 1.0);
        assert_eq!(m.value_at(25), 0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FS: f64 = 48_000.0;

    /// Independent reference: the contract's definition evaluated sample by sample, in
    /// f64, straight from the point list.
    fn reference_gain(base: f64, pts: &[(f64, f64)], n: u64, fs: f64) -> f64 {
        let t = n as f64 / fs;
        let v = if pts.is_empty() {
            0.0
        } else if t < pts[0].0 {
            pts[0].1
        } else {
            // The last point at or before t; with equal times, the later one.
            let mut i = 0;
            while i + 1 < pts.len() && pts[i + 1].0 <= t {
                i += 1;
            }
            if i + 1 == pts.len() {
                pts[i].1
            } else {
                let (t0, v0) = pts[i];
                let (t1, v1) = pts[i + 1];
                v0 + (v1 - v0) * (t - t0) / (t1 - t0)
            }
        };
        10f64.powf((base + v) / 20.0)
    }

    fn check(base: f64, pts: &[(f64, f64)], total: u64, block: usize) {
        let env = GainEnvelope::new(base, pts, FS);
        let mut out = vec![0f32; block];
        let mut start = 0u64;
        let mut worst = 0.0f64;
        while start < total {
            env.fill(start, &mut out);
            for (i, &g) in out.iter().enumerate() {
                let want = reference_gain(base, pts, start + i as u64, FS);
                worst = worst.max(((g as f64 - want) / want).abs());
            }
            start += block as u64;
        }
        // f32 rounding of the output is 6e-8; the geometric stepping adds ~1e-13.
        assert!(
            worst <= 1e-7,
            "{pts:?} block {block}: worst relative error {worst:e}"
        );
    }

    #[test]
    fn linear_in_db_holds_and_steps_match_direct_f64() {
        let cases: Vec<(f64, Vec<(f64, f64)>)> = vec![
            (0.0, vec![(0.0, 0.0), (0.5, -6.0)]),
            (
                -3.0,
                vec![(0.1, -20.0), (0.2, 6.0), (0.35, 6.0), (0.4, -60.0)],
            ),
            // A step at 0.25 s: down to −12 dB, then ramps back.
            (
                2.0,
                vec![(0.0, 0.0), (0.25, 0.0), (0.25, -12.0), (0.5, 0.0)],
            ),
            // Step at the very start, hold after.
            (0.0, vec![(0.0, -6.0), (0.0, 3.0), (0.123_456, -1.0)]),
            // Times that don't fall on frames, long ramp across many re-anchors.
            (0.0, vec![(0.010_001, 1.5), (0.777_7, -40.0)]),
        ];
        for (base, pts) in &cases {
            for block in [1usize, 64, 4096, 100_000] {
                check(*base, pts, 48_000, block);
            }
        }
    }

    #[test]
    fn step_takes_the_later_value_at_its_time() {
        // At t = 0.25 s exactly (frame 12000): the later point's −12 dB.
        let env = GainEnvelope::new(
            0.0,
            &[(0.0, 0.0), (0.25, 0.0), (0.25, -12.0), (1.0, -12.0)],
            FS,
        );
        let mut out = [0f32; 3];
        env.fill(11_999, &mut out);
        assert_eq!(out[0], 1.0);
        let g12 = 10f64.powf(-12.0 / 20.0) as f32;
        assert_eq!(out[1], g12);
        assert_eq!(out[2], g12);
        assert!((env.db_at(12_000) + 12.0).abs() < 1e-12);
    }

    #[test]
    fn holds_outside_the_points_and_constant_detection() {
        let env = GainEnvelope::new(-6.0, &[(1.0, -3.0), (2.0, 3.0)], FS);
        assert_eq!(env.is_constant(), None);
        let mut out = vec![0f32; 10];
        env.fill(0, &mut out);
        let before = 10f64.powf(-9.0 / 20.0) as f32;
        assert!(out.iter().all(|&g| g == before));
        env.fill(10 * 48_000, &mut out);
        let after = 10f64.powf(-3.0 / 20.0) as f32;
        assert!(out.iter().all(|&g| g == after));

        let none = GainEnvelope::new(-6.0, &[], FS);
        assert_eq!(none.is_constant(), Some(10f64.powf(-6.0 / 20.0) as f32));
        let flat = GainEnvelope::new(1.0, &[(0.0, -2.0), (5.0, -2.0)], FS);
        assert_eq!(flat.is_constant(), Some(10f64.powf(-1.0 / 20.0) as f32));
        let mut out = vec![0f32; 5];
        flat.fill(123, &mut out);
        assert!(out.iter().all(|&g| g == 10f64.powf(-1.0 / 20.0) as f32));
    }

    #[test]
    fn unsorted_points_are_ordered_by_time() {
        let a = GainEnvelope::new(0.0, &[(0.5, -6.0), (0.0, 0.0)], FS);
        let b = GainEnvelope::new(0.0, &[(0.0, 0.0), (0.5, -6.0)], FS);
        let (mut x, mut y) = (vec![0f32; 30_000], vec![0f32; 30_000]);
        a.fill(0, &mut x);
        b.fill(0, &mut y);
        assert_eq!(x, y);
    }
}
