//! Parameter units → the session's units (CONTRACT.md, "Precise meanings of the
//! DAWproject mapping", Units).

/// The lowest dB a lane takes: silence.
pub const SILENCE_DB: f64 = -150.0;

/// dB of an amplitude; silence (≤ 0) is −∞.
pub fn amp_to_db(a: f64) -> f64 {
    if a <= 0.0 {
        f64::NEG_INFINITY
    } else {
        20.0 * a.log10()
    }
}

/// A Volume value in `unit` → dB (−∞ for silence); `None` for a unit that is not a
/// level. `note` is set when the unit is read as amplitude by convention.
pub fn volume_db(value: f64, unit: &str, note: &mut bool) -> Option<f64> {
    match unit {
        "linear" => Some(amp_to_db(value)),
        "decibel" => Some(value),
        "normalized" => {
            *note = true;
            Some(amp_to_db(value))
        }
        "percent" => {
            *note = true;
            Some(amp_to_db(value / 100.0))
        }
        _ => None,
    }
}

/// A Pan value → −1..1. With `min` and `max`: linear from [min, max]; else normalized
/// and percent (0..1, 0..100) centre in the middle, linear is −1..1.
pub fn pan(value: f64, unit: &str, min: Option<f64>, max: Option<f64>) -> Option<f64> {
    let p = match (min, max) {
        (Some(lo), Some(hi)) if hi > lo => -1.0 + 2.0 * (value - lo) / (hi - lo),
        _ => match unit {
            "normalized" => 2.0 * value - 1.0,
            "percent" => (value - 50.0) / 50.0,
            "linear" => value,
            _ => return None,
        },
    };
    Some(p.clamp(-1.0, 1.0))
}

/// A Compressor Ratio → the ratio: linear as it is; percent p → 100 / (100 − p),
/// at most 1000.
pub fn ratio(value: f64, unit: &str) -> Option<f64> {
    match unit {
        "linear" => Some(value.min(1000.0)),
        "percent" => {
            if value >= 100.0 {
                Some(1000.0)
            } else {
                Some((100.0 / (100.0 - value)).min(1000.0))
            }
        }
        _ => None,
    }
}

/// A time in `unit` → ms (seconds unless the unit says milliseconds).
pub fn time_ms(value: f64, unit: &str) -> Option<f64> {
    match unit {
        "seconds" | "" => Some(value * 1000.0),
        "milliseconds" | "ms" => Some(value),
        _ => None,
    }
}

/// Points (seconds, dB) for a ramp of amplitude from `a0` at `t0` to `a1` at `t1`
/// (both interpolated linearly in amplitude), subdivided so that a linear-in-dB lane
/// through them stays within 0.1 dB of the ramp (dB clamped at [`SILENCE_DB`]).
/// Returns the inner points only (not the ends).
pub fn linear_ramp_points(t0: f64, a0: f64, t1: f64, a1: f64) -> Vec<(f64, f64)> {
    let db = |a: f64| amp_to_db(a).max(SILENCE_DB);
    let amp = |x: f64| a0 + (a1 - a0) * x;
    let mut n = 1usize;
    while n < 4096 {
        let mut worst: f64 = 0.0;
        for j in 0..n {
            let x0 = j as f64 / n as f64;
            let x1 = (j + 1) as f64 / n as f64;
            let (d0, d1) = (db(amp(x0)), db(amp(x1)));
            for f in [0.25, 0.5, 0.75] {
                let x = x0 + (x1 - x0) * f;
                let err = (db(amp(x)) - (d0 + (d1 - d0) * f)).abs();
                worst = worst.max(err);
            }
        }
        if worst < 0.1 {
            break;
        }
        n *= 2;
    }
    (1..n)
        .map(|j| {
            let x = j as f64 / n as f64;
            (t0 + (t1 - t0) * x, db(amp(x)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        let mut note = false;
        let d = volume_db(0.5, "linear", &mut note).expect("level");
        assert!((d - -6.020599913279624).abs() < 1e-12);
        assert!(!note);
        assert_eq!(volume_db(-3.0, "decibel", &mut note), Some(-3.0));
        assert_eq!(volume_db(100.0, "percent", &mut note), Some(0.0));
        assert!(note);
        assert_eq!(pan(0.5, "normalized", Some(0.0), Some(1.0)), Some(0.0));
        assert_eq!(pan(0.75, "normalized", None, None), Some(0.5));
        assert_eq!(pan(-50.0, "percent", Some(-100.0), Some(100.0)), Some(-0.5));
        assert_eq!(pan(25.0, "percent", None, None), Some(-0.5));
        assert_eq!(ratio(75.0, "percent"), Some(4.0));
        assert_eq!(ratio(100.0, "percent"), Some(1000.0));
    }

    #[test]
    fn linear_ramp_stays_within_a_tenth_of_a_db() {
        let pts = linear_ramp_points(0.0, 1.0, 1.0, 0.1);
        assert!(!pts.is_empty());
        let mut all = vec![(0.0, 0.0)];
        all.extend(pts);
        all.push((1.0, -20.0));
        for w in all.windows(2) {
            for f in [0.1, 0.5, 0.9] {
                let t = w[0].0 + (w[1].0 - w[0].0) * f;
                let lane = w[0].1 + (w[1].1 - w[0].1) * f;
                let truth = amp_to_db(1.0 + (0.1 - 1.0) * t);
                assert!((lane - truth).abs() < 0.1, "{t}: {lane} vs {truth}");
            }
        }
    }
}
