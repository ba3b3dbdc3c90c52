//! Weight Measurement (0x2A9D), spec/decode.md §3.
//!
//! Layout: flags (1), weight (uint16), then as the flags say: timestamp (Date Time,
//! bit 1), user id (uint8, bit 2; 255 = unknown user), BMI (uint16) + height (uint16)
//! (bit 3). Bit 0 is the unit system (0 SI, 1 Imperial); bits 4–7 are RFU.
//!
//! Resolutions: weight 0.005 kg (SI) or 0.01 lb (Imperial); BMI 0.1 kg/m²; height
//! 0.001 m (SI) or 0.1 in (Imperial). A weight of 0xFFFF means "measurement
//! unsuccessful". Values are computed exactly in decimal.

use crate::bytes::{Reader, check_reserved, expect_len};
use crate::datetime::DateTime;
use crate::decimal::Decimal;
use crate::error::{Characteristic, Error};
use crate::glucose::first_byte;

const WM: Characteristic = Characteristic::WeightMeasurement;

/// The raw weight that means "measurement unsuccessful".
pub const MEASUREMENT_UNSUCCESSFUL: u16 = 0xFFFF;

/// The unit system (flag bit 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnitSystem {
    /// kg and m.
    Si,
    /// lb and in.
    Imperial,
}

impl UnitSystem {
    /// `"SI"` or `"Imperial"`.
    pub fn as_str(self) -> &'static str {
        match self {
            UnitSystem::Si => "SI",
            UnitSystem::Imperial => "Imperial",
        }
    }

    /// `"kg"` or `"lb"`.
    pub fn weight_unit(self) -> &'static str {
        match self {
            UnitSystem::Si => "kg",
            UnitSystem::Imperial => "lb",
        }
    }

    /// `"m"` or `"in"`.
    pub fn height_unit(self) -> &'static str {
        match self {
            UnitSystem::Si => "m",
            UnitSystem::Imperial => "in",
        }
    }
}

/// BMI and height, present together (flag bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BmiHeight {
    /// 0.1 kg/m² steps.
    pub bmi_raw: u16,
    /// 0.001 m (SI) or 0.1 in (Imperial) steps.
    pub height_raw: u16,
}

/// A decoded Weight Measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WeightMeasurement {
    pub unit_system: UnitSystem,
    pub weight_raw: u16,
    /// Flag bit 1.
    pub timestamp: Option<DateTime>,
    /// Flag bit 2; 255 means unknown user.
    pub user_id: Option<u8>,
    /// Flag bit 3.
    pub bmi_height: Option<BmiHeight>,
}

impl WeightMeasurement {
    /// Flag bits 4–7, reserved.
    pub const RESERVED_FLAGS: u8 = 0xF0;
    /// The length with no optional field.
    pub const MIN_LEN: usize = 3;

    /// The flags byte this value encodes to.
    pub fn flags(&self) -> u8 {
        u8::from(self.unit_system == UnitSystem::Imperial)
            | u8::from(self.timestamp.is_some()) << 1
            | u8::from(self.user_id.is_some()) << 2
            | u8::from(self.bmi_height.is_some()) << 3
    }

    /// Decodes a Weight Measurement value.
    pub fn decode(bytes: &[u8]) -> Result<WeightMeasurement, Error> {
        let flags = first_byte(bytes, Self::MIN_LEN, WM)?;
        check_reserved(
            u32::from(flags),
            u32::from(Self::RESERVED_FLAGS),
            "flags",
            WM,
        )?;
        let len = Self::MIN_LEN
            + usize::from(flags & 0x02 != 0) * DateTime::LEN
            + usize::from(flags & 0x04 != 0)
            + usize::from(flags & 0x08 != 0) * 4;
        expect_len(bytes, len, WM)?;
        let mut r = Reader::new(bytes, WM);
        r.u8()?;
        let weight_raw = r.u16()?;
        let timestamp = (flags & 0x02 != 0)
            .then(|| DateTime::read(&mut r))
            .transpose()?;
        let user_id = (flags & 0x04 != 0).then(|| r.u8()).transpose()?;
        let bmi_height = if flags & 0x08 != 0 {
            Some(BmiHeight {
                bmi_raw: r.u16()?,
                height_raw: r.u16()?,
            })
        } else {
            None
        };
        r.finish()?;
        Ok(WeightMeasurement {
            unit_system: if flags & 0x01 != 0 {
                UnitSystem::Imperial
            } else {
                UnitSystem::Si
            },
            weight_raw,
            timestamp,
            user_id,
            bmi_height,
        })
    }

    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(15);
        out.push(self.flags());
        out.extend_from_slice(&self.weight_raw.to_le_bytes());
        if let Some(t) = &self.timestamp {
            t.write(&mut out);
        }
        if let Some(u) = self.user_id {
            out.push(u);
        }
        if let Some(b) = &self.bmi_height {
            out.extend_from_slice(&b.bmi_raw.to_le_bytes());
            out.extend_from_slice(&b.height_raw.to_le_bytes());
        }
        out
    }

    /// The weight in [`UnitSystem::weight_unit`]: raw × 0.005 kg or raw × 0.01 lb;
    /// `None` when the scale reports "measurement unsuccessful" (0xFFFF).
    pub fn weight(&self) -> Option<Decimal> {
        if self.weight_raw == MEASUREMENT_UNSUCCESSFUL {
            return None;
        }
        Some(match self.unit_system {
            UnitSystem::Si => Decimal::new(i64::from(self.weight_raw) * 5, -3),
            UnitSystem::Imperial => Decimal::new(i64::from(self.weight_raw), -2),
        })
    }

    /// The BMI in kg/m² (raw × 0.1).
    pub fn bmi(&self) -> Option<Decimal> {
        self.bmi_height
            .map(|b| Decimal::new(i64::from(b.bmi_raw), -1))
    }

    /// The height in [`UnitSystem::height_unit`]: raw × 0.001 m or raw × 0.1 in.
    pub fn height(&self) -> Option<Decimal> {
        self.bmi_height.map(|b| match self.unit_system {
            UnitSystem::Si => Decimal::new(i64::from(b.height_raw), -3),
            UnitSystem::Imperial => Decimal::new(i64::from(b.height_raw), -1),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::date_time;
    use proptest::prelude::*;

    /// spec/decode.md §3 Weight, SI: raw 0x32C8 = 13000 × 0.005 kg = 65 kg.
    #[test]
    fn an_si_weight_is_in_kg_at_0_005_resolution() {
        let m = WeightMeasurement::decode(&[0x00, 0xC8, 0x32]).unwrap();
        assert_eq!(m.unit_system.as_str(), "SI");
        assert_eq!(m.weight_raw, 13000);
        assert_eq!(m.weight(), Some(Decimal::new(65, 0)));
        assert_eq!(m.unit_system.weight_unit(), "kg");
        // raw 13001 = 65.005 kg exactly.
        let m = WeightMeasurement::decode(&[0x00, 0xC9, 0x32]).unwrap();
        assert_eq!(m.weight().unwrap().to_string(), "65.005");
    }

    /// spec/decode.md §3 Weight, Imperial: flags 0x0F = Imperial, timestamp, user, BMI
    /// and height. Raw 0x37FA = 14330 × 0.01 lb = 143.3 lb; user 2; BMI 0x00E1 = 225 ×
    /// 0.1 = 22.5; height 0x02A6 = 678 × 0.1 in = 67.8 in.
    #[test]
    fn an_imperial_weight_with_bmi_and_height_is_in_lb_and_in() {
        let bytes = [
            0x0F, 0xFA, 0x37, 0xEA, 0x07, 11, 22, 7, 58, 3, 0x02, 0xE1, 0x00, 0xA6, 0x02,
        ];
        let m = WeightMeasurement::decode(&bytes).unwrap();
        assert_eq!(m.unit_system, UnitSystem::Imperial);
        assert_eq!(m.weight().unwrap().to_string(), "143.3");
        assert_eq!(m.unit_system.weight_unit(), "lb");
        assert_eq!(m.user_id, Some(2));
        assert_eq!(m.bmi().unwrap().to_string(), "22.5");
        assert_eq!(m.height().unwrap().to_string(), "67.8");
        assert_eq!(m.unit_system.height_unit(), "in");
        assert_eq!(m.encode(), bytes);
    }

    /// spec/decode.md §3 Weight, SI height: raw 0x06C6 = 1734 × 0.001 m = 1.734 m.
    #[test]
    fn an_si_height_is_in_metres() {
        let m = WeightMeasurement::decode(&[0x08, 0xC8, 0x32, 0xE1, 0x00, 0xC6, 0x06]).unwrap();
        assert_eq!(m.height().unwrap().to_string(), "1.734");
        assert_eq!(m.unit_system.height_unit(), "m");
    }

    /// spec/decode.md §1 "Special values": 0xFFFF is MEASUREMENT_UNSUCCESSFUL.
    #[test]
    fn an_unsuccessful_measurement_has_no_weight() {
        let m = WeightMeasurement::decode(&[0x00, 0xFF, 0xFF]).unwrap();
        assert_eq!(m.weight_raw, MEASUREMENT_UNSUCCESSFUL);
        assert_eq!(m.weight(), None);
    }

    /// spec/decode.md §3 Weight flags bits 0–3: every layout, every prefix truncated.
    #[test]
    fn every_flag_combination_round_trips_and_truncates_at_every_byte() {
        for flags in 0u8..16 {
            let m = WeightMeasurement {
                unit_system: if flags & 1 != 0 {
                    UnitSystem::Imperial
                } else {
                    UnitSystem::Si
                },
                weight_raw: 14000,
                timestamp: (flags & 2 != 0).then(DateTime::default),
                user_id: (flags & 4 != 0).then_some(255),
                bmi_height: (flags & 8 != 0).then_some(BmiHeight {
                    bmi_raw: 230,
                    height_raw: 1700,
                }),
            };
            let bytes = m.encode();
            assert_eq!(bytes[0], flags);
            assert_eq!(WeightMeasurement::decode(&bytes), Ok(m));
            for n in 0..bytes.len() {
                assert_eq!(
                    WeightMeasurement::decode(&bytes[..n]),
                    Err(Error::Truncated {
                        characteristic: WM,
                        needed: if n == 0 { 3 } else { bytes.len() },
                        got: n
                    })
                );
            }
            let mut long = bytes;
            long.push(0);
            assert!(matches!(
                WeightMeasurement::decode(&long),
                Err(Error::TrailingBytes { .. })
            ));
        }
    }

    /// Strictness policy: bits 4–7 are RFU.
    #[test]
    fn reserved_flag_bits_reject_the_measurement() {
        for bit in 4..8 {
            assert!(matches!(
                WeightMeasurement::decode(&[1 << bit, 0, 0]),
                Err(Error::ReservedFlags { .. })
            ));
        }
    }

    proptest! {
        /// spec/decode.md §3 Weight: encode → decode round-trips.
        #[test]
        fn any_weight_round_trips(
            imperial in any::<bool>(), raw in any::<u16>(),
            ts in proptest::option::of(date_time()), user in proptest::option::of(any::<u8>()),
            bh in proptest::option::of((any::<u16>(), any::<u16>())),
        ) {
            let m = WeightMeasurement {
                unit_system: if imperial { UnitSystem::Imperial } else { UnitSystem::Si },
                weight_raw: raw,
                timestamp: ts,
                user_id: user,
                bmi_height: bh.map(|(bmi_raw, height_raw)| BmiHeight { bmi_raw, height_raw }),
            };
            prop_assert_eq!(WeightMeasurement::decode(&m.encode()), Ok(m));
        }

        /// spec/decode.md introduction: a decoder never panics; accepted bytes re-encode.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..20)) {
            if let Ok(m) = WeightMeasurement::decode(&bytes) {
                prop_assert_eq!(m.encode(), bytes);
            }
        }
    }
}
