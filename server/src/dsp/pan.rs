//! Pan laws of CONTRACT.md: constant power for a mono source, balance for a stereo one.

use std::f64::consts::FRAC_PI_4;

/// Constant power for a mono source: θ = (pan + 1)·π/4, gains (cos θ, sin θ).
///
/// `pan` is −1 (left) … +1 (right); values outside are clamped (validation rejects
/// them earlier). Centre gives −3.01 dB on each side.
pub fn mono_pan_gains(pan: f64) -> (f64, f64) {
    let theta = (pan.clamp(-1.0, 1.0) + 1.0) * FRAC_PI_4;
    let (s, c) = theta.sin_cos();
    // Snap the extremes so hard left/right are exactly silent on the other side
    // (cos(π/2) is 6e-17 in f64, not 0).
    let l = if pan >= 1.0 { 0.0 } else { c };
    let r = if pan <= -1.0 { 0.0 } else { s };
    (l, r)
}

/// Balance for a stereo source: (min(1, 1 − pan), min(1, 1 + pan)).
///
/// `pan` is clamped to [−1, 1].
pub fn balance_gains(pan: f64) -> (f64, f64) {
    let pan = pan.clamp(-1.0, 1.0);
    ((1.0 - pan).min(1.0), (1.0 + pan).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(g: f64) -> f64 {
        20.0 * g.log10()
    }

    #[test]
    fn mono_centre_is_minus_3_01_db_each_side() {
        let (l, r) = mono_pan_gains(0.0);
        assert!((l - 0.5f64.sqrt()).abs() < 1e-15);
        assert!((r - 0.5f64.sqrt()).abs() < 1e-15);
        assert!((db(l) + 3.0103).abs() < 1e-4);
    }

    #[test]
    fn mono_extremes_and_constant_power() {
        assert_eq!(mono_pan_gains(-1.0), (1.0, 0.0));
        assert_eq!(mono_pan_gains(1.0), (0.0, 1.0));
        for k in -20..=20 {
            let p = k as f64 / 20.0;
            let (l, r) = mono_pan_gains(p);
            // Power sums to one; the law is cos/sin of (p+1)π/4, written out here.
            assert!((l * l + r * r - 1.0).abs() < 1e-14);
            let theta = (p + 1.0) * std::f64::consts::PI / 4.0;
            assert!((l - theta.cos()).abs() < 1e-15);
            assert!((r - theta.sin()).abs() < 1e-15);
        }
        // Half left: θ = π/8.
        let (l, r) = mono_pan_gains(-0.5);
        assert!((l - 0.923_879_532_511_286_7).abs() < 1e-15);
        assert!((r - 0.382_683_432_365_089_8).abs() < 1e-15);
    }

    #[test]
    fn balance_law() {
        assert_eq!(balance_gains(0.0), (1.0, 1.0));
        assert_eq!(balance_gains(-1.0), (1.0, 0.0));
        assert_eq!(balance_gains(1.0), (0.0, 1.0));
        assert_eq!(balance_gains(0.25), (0.75, 1.0));
        assert_eq!(balance_gains(-0.5), (1.0, 0.5));
        assert_eq!(balance_gains(3.0), (0.0, 1.0));
    }
}
