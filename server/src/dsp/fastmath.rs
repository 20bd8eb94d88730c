//! Fast, branch-free `log2` and `exp2` for per-sample gain computation.
//!
//! Both split the IEEE-754 bits into exponent and mantissa and approximate the
//! mantissa part with a minimax polynomial (fitted by Lawson's iteration):
//! - [`fast_log2`]: absolute error ≤ [`LOG2_MAX_ABS_ERROR`] + 2⁻²⁴·|log2 x| (the
//!   second term is the `f32` rounding of the result) for every positive normal `f32`:
//!   ≈ 4e-6 dB + 1e-7·|level in dB| when scaled to dB.
//! - [`fast_exp2`]: relative error ≤ [`EXP2_MAX_REL_ERROR`] for `x` in [−126, 127]
//!   (≈ 3e-6 dB); inputs outside are clamped to that range, NaN gives an unspecified
//!   finite value.
//!
//! Plain multiply-adds, not `mul_add`: without FMA in the target that is a slow libm
//! call. The bounds include the `f32` rounding of the evaluation and are checked by a dense
//! sweep against `f64` in the tests.

/// Largest absolute error of [`fast_log2`] near x = 1; add 2⁻²⁴·|log2 x| elsewhere.
pub const LOG2_MAX_ABS_ERROR: f32 = 6e-7;
/// Largest relative error of [`fast_exp2`] over [−126, 127].
pub const EXP2_MAX_REL_ERROR: f32 = 4e-7;

/// log2(x) for a positive normal `x` (absolute error ≤ [`LOG2_MAX_ABS_ERROR`] +
/// 2⁻²⁴·|log2 x|).
///
/// Zero, denormals, negatives, infinities and NaN give unspecified (finite or not)
/// values without panicking: callers clamp the input to a positive floor first.
#[inline(always)]
pub fn fast_log2(x: f32) -> f32 {
    // Reduce to x = 2^e · m with m in [2/3, 4/3): subtracting the bits of 2/3 moves the
    // exponent boundary there, so the polynomial works on a range centred on 1.
    let bits = x.to_bits();
    let off = bits.wrapping_sub(0x3f2a_aaab);
    let e = (off as i32) >> 23;
    let m = f32::from_bits(bits.wrapping_sub((e as u32) << 23));
    let f = m - 1.0;
    // log2(1 + f) ≈ f · P(f), f in [−1/3, 1/3), degree-7 minimax.
    let p = 0.257_092_55_f32;
    let p = p * f - 0.284_251_55;
    let p = p * f + 0.283_652_62;
    let p = p * f - 0.357_728_8;
    let p = p * f + 0.481_066_8;
    let p = p * f - 0.721_402_7;
    let p = p * f + 1.442_693_6;
    p * f + e as f32
}

/// 2^x (relative error ≤ [`EXP2_MAX_REL_ERROR`] for x in [−126, 127]; clamped outside).
#[inline(always)]
pub fn fast_exp2(x: f32) -> f32 {
    let x = x.clamp(-126.0, 127.0);
    // Round to nearest with the 1.5·2^23 trick (exact for |x| < 2^22), so f is in
    // [−0.5, 0.5] and no floor() (a libm call on baseline x86_64) is needed.
    const MAGIC: f32 = 12_582_912.0;
    let t = x + MAGIC;
    let r = t - MAGIC;
    let f = x - r;
    // The integer r sits in the low mantissa bits of t: no float-to-int conversion,
    // so a loop over this vectorises.
    let i = t.to_bits().wrapping_sub(MAGIC.to_bits()) as i32;
    // 2^f, f in [−0.5, 0.5], degree-5 minimax (relative).
    let p = 0.001_327_645_5_f32;
    let p = p * f + 0.009_675_54;
    let p = p * f + 0.055_507_133;
    let p = p * f + 0.240_221_2;
    let p = p * f + 0.693_146_97;
    let p = p * f + 1.000_000_1;
    // 2^i from the exponent bits; i + 127 is in [1, 254] so the result is normal.
    let scale = f32::from_bits((i.wrapping_add(127) as u32) << 23);
    p * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_error_bound_dense_sweep() {
        // Every mantissa pattern step of 97 over three octaves around 1, plus a sweep
        // over the whole normal range.
        let mut worst = 0.0f64;
        let mut check = |x: f32| {
            let got = fast_log2(x) as f64;
            let want = (x as f64).log2();
            let allowed = LOG2_MAX_ABS_ERROR as f64 + want.abs() * 2f64.powi(-24);
            worst = worst.max((got - want).abs() / allowed);
        };
        let start = 0.25f32.to_bits();
        let end = 4.0f32.to_bits();
        for b in (start..end).step_by(97) {
            check(f32::from_bits(b));
        }
        let mut b = f32::MIN_POSITIVE.to_bits();
        while b < f32::MAX.to_bits() {
            check(f32::from_bits(b));
            b += 4099;
        }
        check(1.0);
        check(f32::MIN_POSITIVE);
        check(f32::MAX);
        assert!(worst <= 1.0, "log2 error is {worst} times the stated bound");
        // The bound in dB terms, near 0 dBFS: well under the compressor's 0.001 dB budget.
        assert!(LOG2_MAX_ABS_ERROR as f64 * 20.0 * 2f64.log10() < 1e-5);
    }

    #[test]
    fn exp2_error_bound_dense_sweep() {
        let mut worst = 0.0f64;
        let n = 2_000_000;
        for k in 0..=n {
            let x = -126.0 + 253.0 * k as f64 / n as f64;
            let x = x as f32;
            let got = fast_exp2(x) as f64;
            let want = (x as f64).exp2();
            worst = worst.max(((got - want) / want).abs());
        }
        // Dense around 0 (the compressor's usual range of gains).
        for k in -100_000..=100_000 {
            let x = k as f32 * 1e-5;
            let got = fast_exp2(x) as f64;
            let want = (x as f64).exp2();
            worst = worst.max(((got - want) / want).abs());
        }
        assert!(
            worst <= EXP2_MAX_REL_ERROR as f64,
            "exp2 worst rel error {worst:e}"
        );
        assert!(20.0 * (1.0 + worst).log10() < 1e-5);
        // Clamped, finite, no panic outside the range.
        assert!(fast_exp2(1000.0).is_finite());
        assert!(fast_exp2(-1000.0) > 0.0);
    }

    #[test]
    fn round_trip_is_close() {
        for k in 1..1000 {
            let x = k as f32 * 0.013;
            let y = fast_exp2(fast_log2(x));
            assert!(((y - x) / x).abs() < 2e-6, "{x} -> {y}");
        }
    }
}
