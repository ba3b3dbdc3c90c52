//! IEEE-11073-20601 SFLOAT (medfloat16) and FLOAT (medfloat32), spec/decode.md §2.
//!
//! | format | layout | exponent | mantissa | specials (exponent = 0 only) |
//! |---|---|---|---|---|
//! | SFLOAT | uint16 LE | bits 15–12, 4-bit two's complement | bits 11–0, 12-bit two's complement | 0x07FF NaN, 0x0800 NRes, 0x07FE +INF, 0x0802 −INF, 0x0801 Reserved |
//! | FLOAT | uint32 LE | bits 31–24, 8-bit two's complement | bits 23–0, 24-bit two's complement | 0x007FFFFF NaN, 0x00800000 NRes, 0x007FFFFE +INF, 0x00800002 −INF, 0x00800001 Reserved |
//!
//! Both types keep the raw bits, so every value (special or not) encodes back to the
//! bytes it came from. A special value is never turned into a number: [`SFloat::value`]
//! is `None` for it. A value with the low bits of a special but a non-zero exponent is
//! an ordinary number (the exponent is plain two's complement, not biased).

use std::fmt;

use crate::bytes::Reader;
use crate::decimal::Decimal;
use crate::error::{Characteristic, Error};

/// What an IEEE-11073 value is: a number or one of the reserved special values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Number,
    /// Not a Number.
    NaN,
    /// Not at this Resolution.
    NRes,
    PositiveInfinity,
    NegativeInfinity,
    /// Reserved for future use.
    Reserved,
}

impl Kind {
    /// `"number"`, or the special value's string as `decode` prints it: `"NaN"`,
    /// `"NRes"`, `"+INF"`, `"-INF"`, `"RESERVED"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Number => "number",
            Kind::NaN => "NaN",
            Kind::NRes => "NRes",
            Kind::PositiveInfinity => "+INF",
            Kind::NegativeInfinity => "-INF",
            Kind::Reserved => "RESERVED",
        }
    }

    /// True for the special values.
    pub fn is_special(self) -> bool {
        self != Kind::Number
    }

    /// Every special value, in the order of the specification's table.
    pub const SPECIALS: [Kind; 5] = [
        Kind::NaN,
        Kind::NRes,
        Kind::PositiveInfinity,
        Kind::NegativeInfinity,
        Kind::Reserved,
    ];
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Sign-extends the low `bits` bits of `v`.
fn sign_extend(v: u32, bits: u32) -> i32 {
    let shift = 32 - bits;
    ((v << shift) as i32) >> shift
}

macro_rules! medfloat {
    (
        $(#[$doc:meta])*
        $name:ident, $raw:ty, $bytes:literal, $mbits:literal, $ebits:literal,
        $characteristic:expr,
        nan = $nan:literal, nres = $nres:literal, pinf = $pinf:literal,
        ninf = $ninf:literal, reserved = $rsv:literal
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name {
            raw: $raw,
        }

        impl $name {
            /// Not a Number.
            pub const NAN: $name = $name { raw: $nan };
            /// Not at this Resolution.
            pub const NRES: $name = $name { raw: $nres };
            /// Positive infinity.
            pub const POSITIVE_INFINITY: $name = $name { raw: $pinf };
            /// Negative infinity.
            pub const NEGATIVE_INFINITY: $name = $name { raw: $ninf };
            /// The reserved special value.
            pub const RESERVED: $name = $name { raw: $rsv };
            /// The length on the wire.
            pub const LEN: usize = $bytes;
            /// The smallest and largest mantissa.
            pub const MANTISSA_RANGE: (i32, i32) = (-(1 << ($mbits - 1)), (1 << ($mbits - 1)) - 1);
            /// The smallest and largest exponent.
            pub const EXPONENT_RANGE: (i32, i32) = (-(1 << ($ebits - 1)), (1 << ($ebits - 1)) - 1);

            /// The value with these raw bits (every bit pattern is a value).
            pub const fn from_raw(raw: $raw) -> $name {
                $name { raw }
            }

            /// The raw bits (the unsigned integer read little-endian).
            pub const fn raw(self) -> $raw {
                self.raw
            }

            /// The special value of this kind; `None` for [`Kind::Number`].
            pub fn special(kind: Kind) -> Option<$name> {
                match kind {
                    Kind::Number => None,
                    Kind::NaN => Some(Self::NAN),
                    Kind::NRes => Some(Self::NRES),
                    Kind::PositiveInfinity => Some(Self::POSITIVE_INFINITY),
                    Kind::NegativeInfinity => Some(Self::NEGATIVE_INFINITY),
                    Kind::Reserved => Some(Self::RESERVED),
                }
            }

            /// The number `mantissa × 10^exponent`, or `None` when either is out of
            /// range or the pair spells a special value (exponent 0 and a special
            /// mantissa).
            pub fn number(mantissa: i32, exponent: i32) -> Option<$name> {
                let (mmin, mmax) = Self::MANTISSA_RANGE;
                let (emin, emax) = Self::EXPONENT_RANGE;
                if !(mmin..=mmax).contains(&mantissa) || !(emin..=emax).contains(&exponent) {
                    return None;
                }
                let m = (mantissa as u32) & ((1u32 << $mbits) - 1);
                let e = (exponent as u32) & ((1u32 << $ebits) - 1);
                let v = $name { raw: ((e << $mbits) | m) as $raw };
                (v.kind() == Kind::Number).then_some(v)
            }

            /// The mantissa, sign-extended (for specials, that of their bit pattern).
            pub fn mantissa(self) -> i32 {
                sign_extend(u32::from(self.raw), $mbits)
            }

            /// The exponent, sign-extended.
            pub fn exponent(self) -> i32 {
                sign_extend(u32::from(self.raw) >> $mbits, $ebits)
            }

            /// A number or one of the special values.
            pub fn kind(self) -> Kind {
                match self.raw {
                    $nan => Kind::NaN,
                    $nres => Kind::NRes,
                    $pinf => Kind::PositiveInfinity,
                    $ninf => Kind::NegativeInfinity,
                    $rsv => Kind::Reserved,
                    _ => Kind::Number,
                }
            }

            /// `mantissa × 10^exponent` exactly; `None` for a special value.
            pub fn value(self) -> Option<Decimal> {
                (self.kind() == Kind::Number)
                    .then(|| Decimal::new(i64::from(self.mantissa()), self.exponent()))
            }

            /// The little-endian wire bytes.
            pub fn to_le_bytes(self) -> [u8; $bytes] {
                self.raw.to_le_bytes()
            }

            /// Decodes exactly the wire bytes of one value (spec/decode.md §2, the
            /// `sfloat` / `float` pseudo-characteristics): fewer bytes are
            /// truncated, more are trailing bytes.
            pub fn decode(bytes: &[u8]) -> Result<$name, Error> {
                let mut r = Reader::new(bytes, $characteristic);
                let v = $name::read(&mut r)?;
                r.finish()?;
                Ok(v)
            }

            /// The wire bytes as a vector.
            pub fn encode(self) -> Vec<u8> {
                self.to_le_bytes().to_vec()
            }

            pub(crate) fn read(r: &mut Reader<'_>) -> Result<$name, Error> {
                let b = r.take($bytes)?;
                let mut a = [0u8; $bytes];
                a.copy_from_slice(b);
                Ok($name::from_raw(<$raw>::from_le_bytes(a)))
            }

            pub(crate) fn write(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }

        impl fmt::Display for $name {
            /// The shortest decimal of a number, or the special value's string.
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.value() {
                    Some(d) => d.fmt(f),
                    None => f.write_str(self.kind().as_str()),
                }
            }
        }
    };
}

medfloat!(
    /// An IEEE-11073 16-bit SFLOAT (medfloat16): 4-bit exponent, 12-bit mantissa.
    SFloat, u16, 2, 12, 4, Characteristic::Sfloat,
    nan = 0x07FF, nres = 0x0800, pinf = 0x07FE, ninf = 0x0802, reserved = 0x0801
);

medfloat!(
    /// An IEEE-11073 32-bit FLOAT (medfloat32): 8-bit exponent, 24-bit mantissa.
    Float, u32, 4, 24, 8, Characteristic::Float,
    nan = 0x007F_FFFF, nres = 0x0080_0000, pinf = 0x007F_FFFE, ninf = 0x0080_0002,
    reserved = 0x0080_0001
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sf(bytes: [u8; 2]) -> SFloat {
        SFloat::decode(&bytes).unwrap()
    }

    fn fl(bytes: [u8; 4]) -> Float {
        Float::decode(&bytes).unwrap()
    }

    /// spec/decode.md §2: raw 0xF0BD = exponent 0xF (−1), mantissa 0x0BD (189): 18.9.
    #[test]
    fn an_sfloat_with_a_negative_exponent_is_exactly_18_9() {
        let v = sf([0xBD, 0xF0]);
        assert_eq!(v.raw(), 0xF0BD);
        assert_eq!((v.mantissa(), v.exponent()), (189, -1));
        assert_eq!(v.kind(), Kind::Number);
        assert_eq!(v.value(), Some(Decimal::new(189, -1)));
        assert_eq!(v.value().unwrap().to_f64(), 18.9);
        assert_eq!(v.to_string(), "18.9");
    }

    /// spec/decode.md §1 "Numbers": 0xF3E8 (1000 × 10^−1) and 0x0064 (100) are both 100.
    #[test]
    fn two_encodings_of_100_give_the_same_value() {
        let a = sf([0xE8, 0xF3]);
        let b = sf([0x64, 0x00]);
        assert_eq!((a.mantissa(), a.exponent()), (1000, -1));
        assert_eq!((b.mantissa(), b.exponent()), (100, 0));
        assert_eq!(a.value(), b.value());
        assert_eq!(a.to_string(), "100");
        assert_eq!(b.to_string(), "100");
    }

    /// spec/decode.md §2: the exponent is plain two's complement (−8…+7), not biased,
    /// and the mantissa is 12-bit two's complement.
    #[test]
    fn sfloat_exponent_and_mantissa_are_twos_complement() {
        // 0x8001: exponent 0x8 = −8, mantissa 1: 1e-8.
        assert_eq!(sf([0x01, 0x80]).to_string(), "1e-8");
        // 0x7001: exponent 7, mantissa 1: 1e+7.
        assert_eq!(sf([0x01, 0x70]).to_string(), "10000000");
        // 0x0FFF: exponent 0, mantissa 0xFFF = −1.
        assert_eq!(sf([0xFF, 0x0F]).mantissa(), -1);
        // 0xEFCC: exponent −2, mantissa 0xFCC = −52: −0.52.
        assert_eq!(sf([0xCC, 0xEF]).to_string(), "-0.52");
        // 0x0000 is zero.
        assert_eq!(sf([0x00, 0x00]).value(), Some(Decimal::new(0, 0)));
    }

    /// spec/decode.md §2, SFLOAT specials, each only with exponent 0.
    #[test]
    fn every_sfloat_special_value_is_recognised_and_has_no_number() {
        for (raw, kind, text) in [
            (0x07FFu16, Kind::NaN, "NaN"),
            (0x0800, Kind::NRes, "NRes"),
            (0x07FE, Kind::PositiveInfinity, "+INF"),
            (0x0802, Kind::NegativeInfinity, "-INF"),
            (0x0801, Kind::Reserved, "RESERVED"),
        ] {
            let v = sf(raw.to_le_bytes());
            assert_eq!(v.kind(), kind, "{raw:#06x}");
            assert_eq!(v.value(), None, "{raw:#06x} must not become a number");
            assert_eq!(v.to_string(), text);
            assert_eq!(SFloat::special(kind), Some(v));
            assert_eq!(v.encode(), raw.to_le_bytes());
        }
        assert_eq!(sf([0xFF, 0x07]).mantissa(), 2047);
        assert_eq!(sf([0x00, 0x08]).mantissa(), -2048);
    }

    /// spec/decode.md §2: the low bits of a special with a non-zero exponent are a number.
    #[test]
    fn sfloat_special_bits_with_a_nonzero_exponent_are_a_number() {
        // 0x17FF: exponent 1, mantissa 2047: 20470.
        let v = sf([0xFF, 0x17]);
        assert_eq!(v.kind(), Kind::Number);
        assert_eq!(v.to_string(), "20470");
        // 0xF800: exponent −1, mantissa −2048: −204.8.
        assert_eq!(sf([0x00, 0xF8]).to_string(), "-204.8");
    }

    /// spec/decode.md §2, FLOAT: 8-bit exponent, 24-bit mantissa.
    #[test]
    fn a_float_decodes_with_its_8_bit_exponent() {
        // 0xFF00016D: exponent −1, mantissa 0x16D = 365: 36.5.
        let v = fl([0x6D, 0x01, 0x00, 0xFF]);
        assert_eq!((v.mantissa(), v.exponent()), (365, -1));
        assert_eq!(v.to_string(), "36.5");
        // 0xFB00005F: exponent −5, mantissa 95: 0.00095 (spec/decode.md §1).
        assert_eq!(fl([0x5F, 0x00, 0x00, 0xFB]).to_string(), "0.00095");
        // 0x7FFFFFFF: exponent 127, mantissa −1: −1e+127 (§1), not +INF (§5).
        let big = fl([0xFF, 0xFF, 0xFF, 0x7F]);
        assert_eq!(big.kind(), Kind::Number);
        assert_eq!(big.to_string(), "-1e+127");
        // 0x80800000: exponent −128, mantissa −8388608.
        let small = fl([0x00, 0x00, 0x80, 0x80]);
        assert_eq!((small.mantissa(), small.exponent()), (-8_388_608, -128));
    }

    /// spec/decode.md §2, FLOAT specials.
    #[test]
    fn every_float_special_value_is_recognised_and_has_no_number() {
        for (raw, kind) in [
            (0x007F_FFFFu32, Kind::NaN),
            (0x0080_0000, Kind::NRes),
            (0x007F_FFFE, Kind::PositiveInfinity),
            (0x0080_0002, Kind::NegativeInfinity),
            (0x0080_0001, Kind::Reserved),
        ] {
            let v = fl(raw.to_le_bytes());
            assert_eq!(v.kind(), kind, "{raw:#010x}");
            assert_eq!(v.value(), None);
            assert_eq!(Float::special(kind), Some(v));
        }
        // Same low bits, exponent 1: a number.
        assert_eq!(fl(0x017F_FFFEu32.to_le_bytes()).kind(), Kind::Number);
    }

    /// spec/decode.md §2: SFLOAT is 2 bytes, FLOAT 4; anything else is rejected.
    #[test]
    fn a_short_or_long_payload_is_rejected() {
        assert_eq!(
            SFloat::decode(&[0x01]),
            Err(Error::Truncated {
                characteristic: Characteristic::Sfloat,
                needed: 2,
                got: 1
            })
        );
        assert_eq!(
            Float::decode(&[1, 2, 3, 4, 5]),
            Err(Error::TrailingBytes {
                characteristic: Characteristic::Float,
                expected: 4,
                got: 5
            })
        );
        for n in 0..4 {
            assert!(matches!(
                Float::decode(&[0; 4][..n]),
                Err(Error::Truncated { needed: 4, .. })
            ));
        }
    }

    /// spec/decode.md §2: the encoder never writes a special value for a number.
    #[test]
    fn number_refuses_pairs_out_of_range_or_spelling_a_special() {
        assert_eq!(SFloat::number(189, -1).map(SFloat::raw), Some(0xF0BD));
        assert_eq!(SFloat::number(2048, 0), None);
        assert_eq!(SFloat::number(0, 8), None);
        assert_eq!(SFloat::number(2047, 0), None, "that is NaN");
        assert_eq!(SFloat::number(2047, 1).map(SFloat::raw), Some(0x17FF));
        assert_eq!(Float::number(-8_388_606, 0), None, "that is -INF");
        assert_eq!(Float::number(365, -1).map(Float::raw), Some(0xFF00_016D));
    }

    proptest! {
        /// spec/decode.md §2: every SFLOAT bit pattern decodes and encodes back.
        ///
        /// Every bit pattern decodes, and encodes back to itself (§2).
        #[test]
        fn every_sfloat_bit_pattern_round_trips(raw in any::<u16>()) {
            let v = SFloat::decode(&raw.to_le_bytes()).unwrap();
            prop_assert_eq!(v.raw(), raw);
            prop_assert_eq!(SFloat::decode(&v.encode()).unwrap(), v);
            prop_assert_eq!(v.value().is_none(), v.kind().is_special());
        }

        /// spec/decode.md §2: every FLOAT bit pattern decodes and encodes back.
        #[test]
        fn every_float_bit_pattern_round_trips(raw in any::<u32>()) {
            let v = Float::decode(&raw.to_le_bytes()).unwrap();
            prop_assert_eq!(Float::decode(&v.encode()).unwrap(), v);
        }

        /// spec/decode.md §2: SFLOAT mantissa/exponent fields, and the specials at exponent 0.
        ///
        /// number(m, e) decodes to mantissa m and exponent e (when it is not a special).
        #[test]
        fn sfloat_number_keeps_mantissa_and_exponent(m in -2048i32..=2047, e in -8i32..=7) {
            if let Some(v) = SFloat::number(m, e) {
                prop_assert_eq!((v.mantissa(), v.exponent()), (m, e));
                prop_assert_eq!(v.value(), Some(Decimal::new(i64::from(m), e)));
            } else {
                prop_assert_eq!(e, 0);
                prop_assert!([2047, -2048, 2046, -2046, -2047].contains(&m));
            }
        }

        /// spec/decode.md §2: FLOAT mantissa/exponent fields, and the specials at exponent 0.
        #[test]
        fn float_number_keeps_mantissa_and_exponent(
            m in -8_388_608i32..=8_388_607, e in -128i32..=127,
        ) {
            if let Some(v) = Float::number(m, e) {
                prop_assert_eq!((v.mantissa(), v.exponent()), (m, e));
            } else {
                prop_assert_eq!(e, 0);
            }
        }
    }
}
