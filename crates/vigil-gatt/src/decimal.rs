//! Exact decimal values: `mantissa × 10^exponent`.
//!
//! IEEE-11073 numbers are decimal, and so are the conversions the decoders apply
//! (kg/L × 100 000, raw × 0.005 kg, RR × 1000/1024 to 3 decimals). Computing them in
//! `f64` gives `189 × 0.1 = 18.900000000000002`; keeping them as an integer mantissa and
//! a power of ten keeps them exact. [`Decimal::to_f64`] is the `f64` nearest to the
//! exact value (so it prints as the shortest decimal, `18.9`), and
//! [`Display`](fmt::Display) writes the shortest decimal text itself.

use std::fmt;

/// An exact decimal, `mantissa × 10^exponent`.
///
/// Equality is by value: `1000 × 10^-1 == 100 × 10^0`.
#[derive(Debug, Clone, Copy)]
pub struct Decimal {
    mantissa: i64,
    exponent: i32,
}

impl PartialEq for Decimal {
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.normalized(), other.normalized());
        a.mantissa == b.mantissa && a.exponent == b.exponent
    }
}

impl Eq for Decimal {}

impl Decimal {
    /// `mantissa × 10^exponent`.
    pub const fn new(mantissa: i64, exponent: i32) -> Decimal {
        Decimal { mantissa, exponent }
    }

    /// The mantissa as given (not normalized).
    pub fn mantissa(self) -> i64 {
        self.mantissa
    }

    /// The exponent as given (not normalized).
    pub fn exponent(self) -> i32 {
        self.exponent
    }

    /// The same value with no trailing zeros in the mantissa (zero is `0 × 10^0`).
    pub fn normalized(self) -> Decimal {
        if self.mantissa == 0 {
            return Decimal::new(0, 0);
        }
        let (mut m, mut e) = (self.mantissa, self.exponent);
        while m % 10 == 0 {
            m /= 10;
            e = e.saturating_add(1);
        }
        Decimal::new(m, e)
    }

    /// The same value times `10^k`.
    pub fn scaled(self, k: i32) -> Decimal {
        Decimal::new(self.mantissa, self.exponent.saturating_add(k))
    }

    /// The value as an integer, when it is one and fits in an `i64`.
    pub fn as_integer(self) -> Option<i64> {
        let d = self.normalized();
        if d.exponent < 0 {
            return None;
        }
        let scale = 10i64.checked_pow(u32::try_from(d.exponent).ok()?)?;
        d.mantissa.checked_mul(scale)
    }

    /// The `f64` nearest to the exact value (correctly rounded, so it prints back as
    /// the shortest decimal: `189 × 10^-1` gives exactly the `f64` of `18.9`).
    pub fn to_f64(self) -> f64 {
        let d = self.normalized();
        // Fast path: mantissa and 10^|e| are both exact in f64, so one operation
        // rounds once, correctly.
        if d.mantissa.unsigned_abs() < (1 << 53) && (-22..=22).contains(&d.exponent) {
            let m = d.mantissa as f64;
            let p = 10f64.powi(d.exponent.abs());
            return if d.exponent >= 0 { m * p } else { m / p };
        }
        // Otherwise let the standard library's correctly rounded parser do it.
        format!("{}e{}", d.mantissa, d.exponent)
            .parse()
            .unwrap_or(f64::NAN)
    }
}

impl fmt::Display for Decimal {
    /// The shortest decimal text of the value, in the style of ECMAScript's
    /// `Number.prototype.toString`: `18.9`, `0.00095`, `100`, `-1e+127`, `1.5e-7`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.normalized();
        if d.mantissa == 0 {
            return f.write_str("0");
        }
        if d.mantissa < 0 {
            f.write_str("-")?;
        }
        let digits = d.mantissa.unsigned_abs().to_string();
        let k = digits.len() as i64;
        // The decimal point sits after `n` digits: value = 0.digits × 10^n.
        let n = i64::from(d.exponent) + k;
        if k <= n && n <= 21 {
            f.write_str(&digits)?;
            for _ in 0..(n - k) {
                f.write_str("0")?;
            }
            Ok(())
        } else if 0 < n && n <= 21 {
            let (int, frac) = digits.split_at(n as usize);
            write!(f, "{int}.{frac}")
        } else if -6 < n && n <= 0 {
            f.write_str("0.")?;
            for _ in 0..(-n) {
                f.write_str("0")?;
            }
            f.write_str(&digits)
        } else {
            let e = n - 1;
            let sign = if e >= 0 { "+" } else { "-" };
            let (first, rest) = digits.split_at(1);
            if rest.is_empty() {
                write!(f, "{first}e{sign}{}", e.abs())
            } else {
                write!(f, "{first}.{rest}e{sign}{}", e.abs())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// spec/decode.md §1 "Numbers": the three examples, as text.
    #[test]
    fn prints_the_shortest_decimal_of_the_spec_examples() {
        assert_eq!(Decimal::new(189, -1).to_string(), "18.9");
        assert_eq!(Decimal::new(95, -5).to_string(), "0.00095");
        assert_eq!(Decimal::new(-1, 127).to_string(), "-1e+127");
    }

    /// spec/decode.md §1 "Numbers": shortest decimal of mantissa × 10^exponent.
    #[test]
    fn prints_integers_fractions_and_small_values_without_noise() {
        assert_eq!(Decimal::new(1000, -1).to_string(), "100");
        assert_eq!(Decimal::new(0, -3).to_string(), "0");
        assert_eq!(Decimal::new(-52, -1).to_string(), "-5.2");
        assert_eq!(Decimal::new(15, -8).to_string(), "1.5e-7");
        assert_eq!(Decimal::new(1, -6).to_string(), "0.000001");
        assert_eq!(Decimal::new(123, 20).to_string(), "1.23e+22");
        assert_eq!(Decimal::new(12, 19).to_string(), "120000000000000000000");
    }

    /// spec/decode.md §1 "Numbers": f64 arithmetic would give 18.900000000000002.
    #[test]
    fn the_f64_is_the_nearest_to_the_exact_value_not_the_product() {
        assert_eq!(189.0 * 10f64.powi(-1), 18.900000000000002);
        assert_eq!(Decimal::new(189, -1).to_f64(), 18.9);
        assert_eq!(Decimal::new(95, -5).to_f64(), 0.00095);
        assert_eq!(Decimal::new(-1, 127).to_f64(), -1e127);
        assert_eq!(Decimal::new(8_388_607, -128).to_f64(), 8.388607e-122);
        assert_eq!(Decimal::new(1000, -1).to_f64(), 100.0);
    }

    /// spec/decode.md §1 "Numbers": two encodings of one quantity give the same value.
    #[test]
    fn equal_values_compare_equal_whatever_their_scale() {
        assert_eq!(Decimal::new(1000, -1), Decimal::new(100, 0));
        assert_eq!(Decimal::new(0, 5), Decimal::new(0, -3));
        assert_ne!(Decimal::new(1, 0), Decimal::new(10, 0));
        assert_eq!(Decimal::new(1000, -1).as_integer(), Some(100));
        assert_eq!(Decimal::new(15, -1).as_integer(), None);
        assert_eq!(Decimal::new(1, 30).as_integer(), None);
    }

    proptest! {
        /// spec/decode.md §1 "Numbers": the printed text and the JSON number are the same value.
        ///
        /// The text parses back to exactly the f64 of the value, and that f64 prints
        /// (shortest round-trip) as a number equal to the decimal.
        #[test]
        fn text_and_f64_agree(m in -8_388_608i64..=8_388_607, e in -128i32..=127) {
            let d = Decimal::new(m, e);
            let text = d.to_string();
            let parsed: f64 = text.parse().unwrap();
            prop_assert_eq!(parsed, d.to_f64());
            let back: f64 = format!("{m}e{e}").parse().unwrap();
            prop_assert_eq!(back, d.to_f64());
        }
    }
}
