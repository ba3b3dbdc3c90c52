//! Half-up rounding of decimal quantities (`clinical/rules.md` §0.12).
//!
//! Clinical precision is decimal ("round half-up to 0.1 mmol/L"), but values arrive
//! as binary floats, and a conversion such as (96.53 − 32) × 5/9, exactly 35.85,
//! lands on 35.849999999999994. Rounding the binary value naively would make
//! the same printed number round differently depending on how it was computed.
//!
//! So a value within a relative 1e-9 of a half-way point is treated as exactly
//! half-way. No medical device reports ten significant digits, so the tolerance can
//! only absorb representation error, never a real measurement difference.
//! Halves round away from zero (all clinical quantities here are positive).

/// Rounds `x` half-up to `decimals` decimal places.
///
/// Non-finite input is returned unchanged (the model never holds one; the wire
/// decoder rejects it first).
pub fn round_half_up(x: f64, decimals: i32) -> f64 {
    if !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(decimals);
    let scaled = (x * scale).abs();
    let tolerance = 1e-9 * scaled.max(1.0);
    let rounded = (scaled + 0.5 + tolerance).floor();
    rounded.copysign(x) / scale
}

/// Rounds half-up to a whole number and converts to `i32`, saturating at the ends of
/// `i32` (a value that large is already out of every plausible range, and the
/// validator quarantines it).
pub fn round_to_i32(x: f64) -> i32 {
    let r = round_half_up(x, 0);
    if r.is_nan() {
        0
    } else {
        // `as` saturates for out-of-range floats; no undefined behaviour.
        r as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn halves_round_up_even_when_the_binary_value_is_just_below() {
        assert_eq!(round_half_up(5.45, 1), 5.5);
        assert_eq!(round_half_up(36.45, 1), 36.5);
        // 96.53 °F is exactly 35.85 °C, but the float computation lands just below.
        let computed = (96.53 - 32.0) * 5.0 / 9.0;
        assert!(computed < 35.85);
        assert_eq!(round_half_up(computed, 1), 35.9);
        assert_eq!(round_half_up(1.15, 1), 1.2);
        assert_eq!(round_half_up(2.5, 0), 3.0);
        assert_eq!(round_half_up(110.25, 0), 110.0);
        assert_eq!(round_half_up(5.44, 1), 5.4);
    }

    proptest! {
        /// Against exact integer arithmetic: a value written with two decimals, n/100,
        /// rounds half-up to one decimal as floor((n + 5) / 10) / 10.
        #[test]
        fn matches_exact_decimal_rounding_for_two_decimal_inputs(n in 0i64..1_000_000) {
            let x: f64 = format!("{}.{:02}", n / 100, n % 100).parse().unwrap();
            let expected = ((n + 5) / 10) as f64 / 10.0;
            prop_assert_eq!(round_half_up(x, 1), expected);
        }
    }
}
