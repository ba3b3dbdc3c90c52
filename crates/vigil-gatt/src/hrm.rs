//! Heart Rate Measurement (0x2A37), spec/decode.md §3.
//!
//! Layout: flags (1), heart rate (uint8 when flag bit 0 = 0, uint16 when 1), energy
//! expended (uint16 kJ, bit 3), RR intervals (uint16 each in 1/1024 s, bit 4, as many as
//! fill the rest of the payload). Bits 1–2 are the sensor-contact status; bits 5–7 RFU.
//!
//! When bit 4 is set at least one RR value must follow ([`Error::Invalid`] otherwise);
//! an odd byte left at the end is half an RR value ([`Error::Truncated`]).

use crate::bytes::{Reader, check_reserved};
use crate::decimal::Decimal;
use crate::error::{Characteristic, Error};
use crate::glucose::first_byte;

const HRM: Characteristic = Characteristic::HeartRateMeasurement;

/// The heart rate in its wire format (flag bit 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeartRateValue {
    Uint8(u8),
    Uint16(u16),
}

impl HeartRateValue {
    /// Beats per minute.
    pub fn bpm(self) -> u16 {
        match self {
            HeartRateValue::Uint8(v) => u16::from(v),
            HeartRateValue::Uint16(v) => v,
        }
    }

    /// `"uint8"` or `"uint16"`.
    pub fn format(self) -> &'static str {
        match self {
            HeartRateValue::Uint8(_) => "uint8",
            HeartRateValue::Uint16(_) => "uint16",
        }
    }
}

/// Energy expended at or above this value means "65535 kJ or more; reset needed".
pub const ENERGY_SATURATED: u16 = 0xFFFF;

/// A decoded Heart Rate Measurement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HeartRateMeasurement {
    pub heart_rate: HeartRateValue,
    /// Flag bits 1–2, 0–3 (higher bits are not encoded).
    pub sensor_contact_bits: u8,
    /// kJ (flag bit 3).
    pub energy_expended_kj: Option<u16>,
    /// RR intervals in 1/1024 s (flag bit 4).
    pub rr_intervals: Option<Vec<u16>>,
}

impl HeartRateMeasurement {
    /// Flag bits 5–7, reserved.
    pub const RESERVED_FLAGS: u8 = 0xE0;

    /// The flags byte this value encodes to.
    pub fn flags(&self) -> u8 {
        u8::from(matches!(self.heart_rate, HeartRateValue::Uint16(_)))
            | (self.sensor_contact_bits & 0x03) << 1
            | u8::from(self.energy_expended_kj.is_some()) << 3
            | u8::from(self.rr_intervals.is_some()) << 4
    }

    /// Decodes a Heart Rate Measurement value.
    pub fn decode(bytes: &[u8]) -> Result<HeartRateMeasurement, Error> {
        let flags = first_byte(bytes, 2, HRM)?;
        check_reserved(
            u32::from(flags),
            u32::from(Self::RESERVED_FLAGS),
            "flags",
            HRM,
        )?;
        let fixed = 1 + if flags & 0x01 != 0 { 2 } else { 1 } + usize::from(flags & 0x08 != 0) * 2;
        let has_rr = flags & 0x10 != 0;
        if bytes.len() < fixed {
            return Err(Error::Truncated {
                characteristic: HRM,
                // With the RR flag, the shortest valid payload carries one RR value.
                needed: fixed + if has_rr { 2 } else { 0 },
                got: bytes.len(),
            });
        }
        let mut r = Reader::new(bytes, HRM);
        r.u8()?;
        let heart_rate = if flags & 0x01 != 0 {
            HeartRateValue::Uint16(r.u16()?)
        } else {
            HeartRateValue::Uint8(r.u8()?)
        };
        let energy_expended_kj = (flags & 0x08 != 0).then(|| r.u16()).transpose()?;
        let rr_intervals = if has_rr {
            let rest = r.remaining();
            if rest == 0 {
                return Err(Error::invalid(
                    HRM,
                    "the RR-interval flag (bit 4) is set but no RR value follows",
                ));
            }
            if !rest.is_multiple_of(2) {
                return Err(Error::Truncated {
                    characteristic: HRM,
                    needed: bytes.len() + 1,
                    got: bytes.len(),
                });
            }
            let mut rr = Vec::with_capacity(rest / 2);
            while r.remaining() > 0 {
                rr.push(r.u16()?);
            }
            Some(rr)
        } else {
            None
        };
        r.finish()?;
        Ok(HeartRateMeasurement {
            heart_rate,
            sensor_contact_bits: (flags >> 1) & 0x03,
            energy_expended_kj,
            rr_intervals,
        })
    }

    /// The wire bytes. An `rr_intervals` of `Some(vec![])` encodes to the flag with no
    /// value, which the decoder rejects: encoders write what the value says.
    pub fn encode(&self) -> Vec<u8> {
        let rr = self.rr_intervals.as_deref().unwrap_or(&[]);
        let mut out = Vec::with_capacity(5 + 2 * rr.len());
        out.push(self.flags());
        match self.heart_rate {
            HeartRateValue::Uint8(v) => out.push(v),
            HeartRateValue::Uint16(v) => out.extend_from_slice(&v.to_le_bytes()),
        }
        if let Some(e) = self.energy_expended_kj {
            out.extend_from_slice(&e.to_le_bytes());
        }
        for v in rr {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// The sensor-contact status: bits 0 and 1 `not_supported`, 2
    /// `supported_not_detected`, 3 `supported_detected`.
    pub fn sensor_contact(&self) -> &'static str {
        match self.sensor_contact_bits & 0x03 {
            0 | 1 => "not_supported",
            2 => "supported_not_detected",
            _ => "supported_detected",
        }
    }

    /// The RR intervals in ms, rounded to 3 decimals, ties to even.
    pub fn rr_intervals_ms(&self) -> Option<Vec<Decimal>> {
        self.rr_intervals
            .as_ref()
            .map(|v| v.iter().map(|&raw| rr_ms(raw)).collect())
    }
}

/// An RR interval of `raw`/1024 s in ms, rounded to 3 decimals, ties to even:
/// `raw × 1000 / 1024` ms = `raw × 15625 / 16` thousandths of a ms, rounded in
/// integers (so 424 → 414.062 and 1080 → 1054.688 exactly).
pub fn rr_ms(raw: u16) -> Decimal {
    let n = i64::from(raw) * 15_625;
    let (q, rem) = (n / 16, n % 16);
    let q = match rem.cmp(&8) {
        std::cmp::Ordering::Less => q,
        std::cmp::Ordering::Greater => q + 1,
        std::cmp::Ordering::Equal => q + (q & 1),
    };
    Decimal::new(q, -3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// spec/decode.md §3 HRM: the two worked examples, ties to even.
    #[test]
    fn rr_intervals_convert_to_ms_with_ties_to_even() {
        // 424 × 1000/1024 = 414.0625 → 414.062 (2 is even).
        assert_eq!(rr_ms(424).to_string(), "414.062");
        // 1080 × 1000/1024 = 1054.6875 → 1054.688 (8 is even).
        assert_eq!(rr_ms(1080).to_string(), "1054.688");
        // 1024 → exactly 1000.
        assert_eq!(rr_ms(1024).to_string(), "1000");
        // 1 × 1000/1024 = 0.9765625 → 0.977 (not a tie).
        assert_eq!(rr_ms(1).to_string(), "0.977");
        assert_eq!(rr_ms(0).to_string(), "0");
        // 65535 → 63999.0234375 → 63999.023.
        assert_eq!(rr_ms(65535).to_string(), "63999.023");
    }

    /// spec/decode.md §3 HRM: flags 0x00, uint8 heart rate 0x48 = 72.
    #[test]
    fn an_8_bit_heart_rate_decodes() {
        let m = HeartRateMeasurement::decode(&[0x00, 0x48]).unwrap();
        assert_eq!(m.heart_rate, HeartRateValue::Uint8(72));
        assert_eq!(m.heart_rate.format(), "uint8");
        assert_eq!(m.sensor_contact(), "not_supported");
        assert_eq!(m.energy_expended_kj, None);
        assert_eq!(m.rr_intervals, None);
    }

    /// spec/decode.md §3 HRM: flags 0x1F = uint16, contact supported and detected,
    /// energy, RR. Heart rate 0x012C = 300; energy 0xFFFF (saturated); RR 0x01A8 = 424,
    /// 0x0438 = 1080.
    #[test]
    fn a_16_bit_heart_rate_with_energy_and_rr_decodes() {
        let bytes = [0x1F, 0x2C, 0x01, 0xFF, 0xFF, 0xA8, 0x01, 0x38, 0x04];
        let m = HeartRateMeasurement::decode(&bytes).unwrap();
        assert_eq!(m.heart_rate, HeartRateValue::Uint16(300));
        assert_eq!(m.heart_rate.format(), "uint16");
        assert_eq!(m.sensor_contact(), "supported_detected");
        assert_eq!(m.energy_expended_kj, Some(ENERGY_SATURATED));
        assert_eq!(m.rr_intervals, Some(vec![424, 1080]));
        let ms: Vec<String> = m
            .rr_intervals_ms()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(ms, ["414.062", "1054.688"]);
        assert_eq!(m.encode(), bytes);
    }

    /// spec/decode.md §3 HRM: sensor contact from bits 1–2.
    #[test]
    fn sensor_contact_values_0_and_1_are_not_supported() {
        for (flags, name) in [
            (0x00, "not_supported"),
            (0x02, "not_supported"),
            (0x04, "supported_not_detected"),
            (0x06, "supported_detected"),
        ] {
            let m = HeartRateMeasurement::decode(&[flags, 60]).unwrap();
            assert_eq!(m.sensor_contact(), name, "flags {flags:#x}");
            assert_eq!(m.flags(), flags);
        }
    }

    /// spec/decode.md §3 and §5: the RR flag with no RR value is invalid.
    #[test]
    fn the_rr_flag_without_rr_values_is_invalid() {
        let e = HeartRateMeasurement::decode(&[0x10, 60]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid: Heart Rate Measurement: the RR-interval flag (bit 4) is set but no RR \
             value follows"
        );
    }

    /// Strictness policy: without the RR flag, bytes after the heart rate are trailing.
    #[test]
    fn bytes_after_the_last_field_are_trailing() {
        assert_eq!(
            HeartRateMeasurement::decode(&[0x00, 60, 0x00]),
            Err(Error::TrailingBytes {
                characteristic: HRM,
                expected: 2,
                got: 3
            })
        );
    }

    /// Strictness policy (spec/decode.md §5): HRM flag bits 5–7 are RFU.
    #[test]
    fn reserved_flag_bits_reject_the_measurement() {
        for bit in 5..8 {
            assert!(matches!(
                HeartRateMeasurement::decode(&[1 << bit, 60]),
                Err(Error::ReservedFlags { .. })
            ));
        }
    }

    /// spec/decode.md §3 HRM: 8- and 16-bit rates, with and without energy, with 0 to 9
    /// RR intervals; each round-trips, and each prefix is truncated, or (ending on an
    /// RR boundary) valid with fewer RR values, or (no RR value left) invalid.
    #[test]
    fn eight_and_sixteen_bit_rates_with_zero_to_nine_rr_intervals() {
        for wide in [false, true] {
            for energy in [None, Some(1234u16)] {
                for count in 0..=9u16 {
                    let rr: Vec<u16> = (0..count).map(|i| 800 + 37 * i).collect();
                    let m = HeartRateMeasurement {
                        heart_rate: if wide {
                            HeartRateValue::Uint16(0x0150)
                        } else {
                            HeartRateValue::Uint8(75)
                        },
                        sensor_contact_bits: 3,
                        energy_expended_kj: energy,
                        rr_intervals: (count > 0).then_some(rr.clone()),
                    };
                    let bytes = m.encode();
                    let fixed = 1 + if wide { 2 } else { 1 } + if energy.is_some() { 2 } else { 0 };
                    assert_eq!(bytes.len(), fixed + 2 * usize::from(count));
                    assert_eq!(HeartRateMeasurement::decode(&bytes).as_ref(), Ok(&m));
                    for n in 0..bytes.len() {
                        let got = HeartRateMeasurement::decode(&bytes[..n]);
                        if n < fixed || (n - fixed) % 2 == 1 {
                            assert!(
                                matches!(got, Err(Error::Truncated { got, .. }) if got == n),
                                "{n} bytes: {got:?}"
                            );
                        } else if n == fixed {
                            assert!(matches!(got, Err(Error::Invalid { .. })), "{got:?}");
                        } else {
                            let short = got.unwrap().rr_intervals.unwrap();
                            assert_eq!(short, rr[..(n - fixed) / 2]);
                        }
                    }
                }
            }
        }
    }

    fn measurement() -> impl Strategy<Value = HeartRateMeasurement> {
        (
            prop_oneof![
                any::<u8>().prop_map(HeartRateValue::Uint8),
                any::<u16>().prop_map(HeartRateValue::Uint16)
            ],
            0u8..4,
            proptest::option::of(any::<u16>()),
            proptest::option::of(proptest::collection::vec(any::<u16>(), 1..12)),
        )
            .prop_map(
                |(heart_rate, sensor_contact_bits, energy_expended_kj, rr_intervals)| {
                    HeartRateMeasurement {
                        heart_rate,
                        sensor_contact_bits,
                        energy_expended_kj,
                        rr_intervals,
                    }
                },
            )
    }

    proptest! {
        /// spec/decode.md §3 HRM: encode → decode round-trips.
        #[test]
        fn any_heart_rate_round_trips(m in measurement()) {
            prop_assert_eq!(HeartRateMeasurement::decode(&m.encode()), Ok(m));
        }

        /// spec/decode.md introduction: a decoder never panics; accepted bytes re-encode.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
            if let Ok(m) = HeartRateMeasurement::decode(&bytes) {
                prop_assert_eq!(m.encode(), bytes);
            }
        }

        /// spec/decode.md §3 HRM: rr_intervals_ms is raw × 1000/1024 rounded to 3 decimals.
        ///
        /// rr_ms against exact rational arithmetic: |ms − raw×1000/1024| ≤ 0.0005.
        #[test]
        fn rr_ms_is_within_half_a_thousandth(raw in any::<u16>()) {
            let q = rr_ms(raw).normalized();
            let thousandths = q.scaled(3).as_integer().unwrap();
            let exact_x16 = i64::from(raw) * 15_625;
            prop_assert!((thousandths * 16 - exact_x16).abs() <= 8);
        }
    }
}
