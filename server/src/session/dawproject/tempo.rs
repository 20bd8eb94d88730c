//! The tempo map: beats ↔ seconds, exactly.
//!
//! Tempo is piecewise in beats: linear between two points whose first is `linear`,
//! constant after a `hold` point, the first value before the first point and the last
//! after the last. Seconds are the integral of 60 / bpm(b) db, in closed form on each
//! piece: 60 Δ / t0 for a constant piece, 60 / k · ln(1 + k Δ / t0) for a ramp of slope k.

/// One piece of the map, starting at `beat` (seconds `secs` there).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Piece {
    beat: f64,
    secs: f64,
    /// Tempo at `beat` (bpm).
    bpm: f64,
    /// d bpm / d beat on this piece (0: constant).
    slope: f64,
}

/// A tempo map; [`TempoMap::constant`] or built from automation points.
#[derive(Debug, Clone, PartialEq)]
pub struct TempoMap {
    /// At least one piece; the first starts at beat 0... or before (pieces cover ℝ).
    pieces: Vec<Piece>,
}

/// (1 + x).ln() / x, exact near 0.
fn ln1p_over(x: f64) -> f64 {
    if x.abs() < 1e-300 { 1.0 } else { x.ln_1p() / x }
}

/// (e^y − 1) / y, exact near 0.
fn expm1_over(y: f64) -> f64 {
    if y.abs() < 1e-300 {
        1.0
    } else {
        y.exp_m1() / y
    }
}

impl Piece {
    /// Seconds from the piece's start to `d` beats later.
    fn secs_after(&self, d: f64) -> f64 {
        let x = self.slope * d / self.bpm;
        60.0 * d / self.bpm * ln1p_over(x)
    }
    /// Beats from the piece's start to `s` seconds later.
    fn beats_after(&self, s: f64) -> f64 {
        let y = self.slope * s / 60.0;
        self.bpm * s / 60.0 * expm1_over(y)
    }
}

impl TempoMap {
    /// One tempo throughout.
    pub fn constant(bpm: f64) -> Self {
        TempoMap {
            pieces: vec![Piece {
                beat: 0.0,
                secs: 0.0,
                bpm,
                slope: 0.0,
            }],
        }
    }

    /// From automation points (beat, bpm, hold?) in time order, all bpm finite and
    /// > 0, beats finite; `base` is the tempo when there are none.
    pub fn from_points(base: f64, points: &[(f64, f64, bool)]) -> Self {
        let Some(&(b0, t0, _)) = points.first() else {
            return Self::constant(base);
        };
        // Before the first point: its value, back to −∞; secs(0) = 0 is fixed below.
        let mut pieces = vec![Piece {
            beat: f64::NEG_INFINITY,
            secs: 0.0,
            bpm: t0,
            slope: 0.0,
        }];
        let mut start = b0;
        for (i, &(b, t, hold)) in points.iter().enumerate() {
            let next = points.get(i + 1);
            let slope = match next {
                Some(&(nb, nt, _)) if !hold && nb > b => (nt - t) / (nb - b),
                _ => 0.0,
            };
            pieces.push(Piece {
                beat: b.max(start),
                secs: 0.0,
                bpm: t,
                slope,
            });
            start = b;
        }
        // Integrate from the first point, then shift so that beat 0 is 0 s.
        let mut secs = 0.0;
        for i in 1..pieces.len() {
            if i > 1 {
                let p = pieces[i - 1];
                secs += p.secs_after(pieces[i].beat - p.beat);
            }
            pieces[i].secs = secs;
        }
        // The first (constant) piece ends at b0 with secs(b0) = 0 so far.
        pieces[0].secs = 0.0;
        pieces[0].beat = b0;
        let mut map = TempoMap { pieces };
        let zero = map.secs_at(0.0);
        for p in &mut map.pieces {
            p.secs -= zero;
        }
        map
    }

    /// The piece holding `beat` (the first piece extends to −∞, the last to +∞).
    fn piece_at_beat(&self, beat: f64) -> &Piece {
        let i = self.pieces.partition_point(|p| p.beat <= beat);
        &self.pieces[i.saturating_sub(1).min(self.pieces.len() - 1)]
    }

    /// The absolute time (s) of absolute `beat`.
    pub fn secs_at(&self, beat: f64) -> f64 {
        let p = if self.pieces.len() > 1 && beat < self.pieces[1].beat {
            // Before the first point: constant at the first tempo, anchored at it.
            let p = &self.pieces[0];
            return p.secs + 60.0 * (beat - p.beat) / p.bpm;
        } else {
            self.piece_at_beat(beat)
        };
        p.secs + p.secs_after(beat - p.beat)
    }

    /// The absolute beat at absolute time `secs`.
    pub fn beat_at(&self, secs: f64) -> f64 {
        if self.pieces.len() > 1 && secs < self.pieces[1].secs {
            let p = &self.pieces[0];
            return p.beat + (secs - p.secs) * p.bpm / 60.0;
        }
        let i = self.pieces.partition_point(|p| p.secs <= secs);
        let p = &self.pieces[i.saturating_sub(1).min(self.pieces.len() - 1)];
        p.beat + p.beats_after(secs - p.secs)
    }

    /// The tempo (bpm) at absolute `beat`.
    pub fn bpm_at(&self, beat: f64) -> f64 {
        if self.pieces.len() > 1 && beat < self.pieces[1].beat {
            return self.pieces[0].bpm;
        }
        let p = self.piece_at_beat(beat);
        p.bpm + p.slope * (beat - p.beat)
    }

    /// The tempo when it never changes.
    pub fn constant_bpm(&self) -> Option<f64> {
        let first = self.pieces[0].bpm;
        self.pieces
            .iter()
            .all(|p| p.slope == 0.0 && p.bpm == first)
            .then_some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_tempo_is_linear() {
        let m = TempoMap::constant(120.0);
        assert_eq!(m.secs_at(8.0), 4.0);
        assert_eq!(m.beat_at(4.0), 8.0);
        assert_eq!(m.constant_bpm(), Some(120.0));
    }

    #[test]
    fn ramp_integrates_in_closed_form() {
        // 100 → 200 bpm over beats 0..8, then 200 held.
        let m = TempoMap::from_points(120.0, &[(0.0, 100.0, false), (8.0, 200.0, false)]);
        let k: f64 = 100.0 / 8.0;
        let at = |b: f64| 60.0 / k * (1.0 + k * b / 100.0).ln();
        for b in [0.0, 1.0, 4.0, 8.0] {
            assert!((m.secs_at(b) - at(b)).abs() < 1e-12, "{b}");
            assert!((m.beat_at(at(b)) - b).abs() < 1e-9, "{b}");
        }
        assert!((m.secs_at(12.0) - (at(8.0) + 60.0 * 4.0 / 200.0)).abs() < 1e-12);
        assert_eq!(m.bpm_at(4.0), 150.0);
        assert_eq!(m.constant_bpm(), None);
    }

    #[test]
    fn hold_steps_and_before_first_point() {
        let m = TempoMap::from_points(120.0, &[(4.0, 60.0, true), (8.0, 120.0, true)]);
        // Before beat 4: 60 bpm; 0 s at beat 0.
        assert!((m.secs_at(4.0) - 4.0).abs() < 1e-12);
        assert!((m.secs_at(8.0) - 8.0).abs() < 1e-12);
        assert!((m.secs_at(10.0) - 9.0).abs() < 1e-12);
        assert!((m.beat_at(9.0) - 10.0).abs() < 1e-12);
    }
}
