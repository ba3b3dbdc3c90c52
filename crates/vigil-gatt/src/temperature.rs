//! Temperature Measurement (0x2A1C), spec/decode.md §3.
//!
//! Layout: flags (1), temperature (FLOAT, medfloat32), then as the flags say: timestamp
//! (Date Time, bit 1), temperature type (uint8, bit 2). Bit 0 is the unit (0 Celsius,
//! 1 Fahrenheit); bits 3–7 are RFU.

use crate::bits::enum_name;
use crate::bytes::{Reader, check_reserved, expect_len};
use crate::datetime::DateTime;
use crate::error::{Characteristic, Error};
use crate::glucose::first_byte;
use crate::ieee11073::Float;

const TM: Characteristic = Characteristic::TemperatureMeasurement;

/// Temperature types by code.
pub const TYPE_NAMES: [Option<&str>; 10] = [
    None,
    Some("armpit"),
    Some("body_general"),
    Some("ear"),
    Some("finger"),
    Some("gastrointestinal_tract"),
    Some("mouth"),
    Some("rectum"),
    Some("toe"),
    Some("tympanum"),
];

/// The unit of the temperature (flag bit 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TemperatureUnit {
    Celsius,
    Fahrenheit,
}

impl TemperatureUnit {
    /// `"Celsius"` or `"Fahrenheit"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TemperatureUnit::Celsius => "Celsius",
            TemperatureUnit::Fahrenheit => "Fahrenheit",
        }
    }
}

/// A decoded Temperature Measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TemperatureMeasurement {
    pub temperature: Float,
    pub unit: TemperatureUnit,
    /// Flag bit 1.
    pub timestamp: Option<DateTime>,
    /// Temperature type code (flag bit 2).
    pub temperature_type: Option<u8>,
}

impl TemperatureMeasurement {
    /// Flag bits 3–7, reserved.
    pub const RESERVED_FLAGS: u8 = 0xF8;
    /// The length with no optional field.
    pub const MIN_LEN: usize = 5;

    /// The flags byte this value encodes to.
    pub fn flags(&self) -> u8 {
        u8::from(self.unit == TemperatureUnit::Fahrenheit)
            | u8::from(self.timestamp.is_some()) << 1
            | u8::from(self.temperature_type.is_some()) << 2
    }

    /// Decodes a Temperature Measurement value.
    pub fn decode(bytes: &[u8]) -> Result<TemperatureMeasurement, Error> {
        let flags = first_byte(bytes, Self::MIN_LEN, TM)?;
        check_reserved(
            u32::from(flags),
            u32::from(Self::RESERVED_FLAGS),
            "flags",
            TM,
        )?;
        let len = Self::MIN_LEN
            + usize::from(flags & 0x02 != 0) * DateTime::LEN
            + usize::from(flags & 0x04 != 0);
        expect_len(bytes, len, TM)?;
        let mut r = Reader::new(bytes, TM);
        r.u8()?;
        let temperature = Float::read(&mut r)?;
        let timestamp = (flags & 0x02 != 0)
            .then(|| DateTime::read(&mut r))
            .transpose()?;
        let temperature_type = (flags & 0x04 != 0).then(|| r.u8()).transpose()?;
        r.finish()?;
        Ok(TemperatureMeasurement {
            temperature,
            unit: if flags & 0x01 != 0 {
                TemperatureUnit::Fahrenheit
            } else {
                TemperatureUnit::Celsius
            },
            timestamp,
            temperature_type,
        })
    }

    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(13);
        out.push(self.flags());
        self.temperature.write(&mut out);
        if let Some(t) = &self.timestamp {
            t.write(&mut out);
        }
        if let Some(t) = self.temperature_type {
            out.push(t);
        }
        out
    }

    /// The temperature type's name; `"reserved"` for RFU codes.
    pub fn temperature_type_name(&self) -> Option<&'static str> {
        self.temperature_type
            .map(|t| enum_name(&TYPE_NAMES, usize::from(t)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ieee11073::Kind;
    use crate::testing::{date_time, float};
    use proptest::prelude::*;

    /// spec/decode.md §3 Temperature: flags 0x00 = Celsius; FLOAT 0xFF00016D:
    /// exponent −1, mantissa 365: 36.5 °C.
    #[test]
    fn a_celsius_temperature_decodes() {
        let m = TemperatureMeasurement::decode(&[0x00, 0x6D, 0x01, 0x00, 0xFF]).unwrap();
        assert_eq!(m.unit, TemperatureUnit::Celsius);
        assert_eq!(m.unit.as_str(), "Celsius");
        assert_eq!(m.temperature.to_string(), "36.5");
        assert_eq!(m.timestamp, None);
        assert_eq!(m.temperature_type_name(), None);
    }

    /// spec/decode.md §3: flags 0x07 = Fahrenheit, timestamp, type. 0xFF0003DA:
    /// exponent −1, mantissa 986: 98.6 °F; type 6 = mouth.
    #[test]
    fn a_fahrenheit_temperature_with_timestamp_and_type_decodes() {
        let bytes = [
            0x07, 0xDA, 0x03, 0x00, 0xFF, 0xEA, 0x07, 11, 22, 7, 58, 3, 6,
        ];
        let m = TemperatureMeasurement::decode(&bytes).unwrap();
        assert_eq!(m.unit, TemperatureUnit::Fahrenheit);
        assert_eq!(m.temperature.to_string(), "98.6");
        assert_eq!(m.timestamp.unwrap().minutes, 58);
        assert_eq!(m.temperature_type_name(), Some("mouth"));
        assert_eq!(m.encode(), bytes);
    }

    /// spec/decode.md §2: a FLOAT special value stays special.
    #[test]
    fn a_special_temperature_is_not_a_number() {
        // 0x007FFFFE = +INF.
        let m = TemperatureMeasurement::decode(&[0x00, 0xFE, 0xFF, 0x7F, 0x00]).unwrap();
        assert_eq!(m.temperature.kind(), Kind::PositiveInfinity);
        assert_eq!(m.temperature.value(), None);
    }

    /// spec/decode.md §3 Temperature types 1–9; §1: RFU codes "reserved".
    #[test]
    fn every_type_code_has_a_name() {
        let names: Vec<&str> = (0..=10).map(|t| enum_name(&TYPE_NAMES, t)).collect();
        assert_eq!(
            names,
            [
                "reserved",
                "armpit",
                "body_general",
                "ear",
                "finger",
                "gastrointestinal_tract",
                "mouth",
                "rectum",
                "toe",
                "tympanum",
                "reserved"
            ]
        );
    }

    /// spec/decode.md §3 Temperature flags bits 0–2: every layout, every prefix truncated.
    #[test]
    fn every_flag_combination_round_trips_and_truncates_at_every_byte() {
        for flags in 0u8..8 {
            let m = TemperatureMeasurement {
                temperature: Float::number(372, -1).unwrap(),
                unit: if flags & 1 != 0 {
                    TemperatureUnit::Fahrenheit
                } else {
                    TemperatureUnit::Celsius
                },
                timestamp: (flags & 2 != 0).then(DateTime::default),
                temperature_type: (flags & 4 != 0).then_some(1),
            };
            let bytes = m.encode();
            assert_eq!(bytes[0], flags);
            assert_eq!(TemperatureMeasurement::decode(&bytes), Ok(m));
            for n in 0..bytes.len() {
                assert_eq!(
                    TemperatureMeasurement::decode(&bytes[..n]),
                    Err(Error::Truncated {
                        characteristic: TM,
                        needed: if n == 0 { 5 } else { bytes.len() },
                        got: n
                    })
                );
            }
            let mut long = bytes;
            long.push(9);
            assert!(matches!(
                TemperatureMeasurement::decode(&long),
                Err(Error::TrailingBytes { .. })
            ));
        }
    }

    /// Strictness policy: bits 3–7 are RFU.
    #[test]
    fn reserved_flag_bits_reject_the_measurement() {
        for bit in 3..8 {
            assert!(matches!(
                TemperatureMeasurement::decode(&[1 << bit, 0, 0, 0, 0]),
                Err(Error::ReservedFlags { .. })
            ));
        }
    }

    proptest! {
        /// spec/decode.md §3 Temperature: encode → decode round-trips.
        #[test]
        fn any_temperature_round_trips(
            t in float(), f in any::<bool>(), ts in proptest::option::of(date_time()),
            ty in proptest::option::of(any::<u8>()),
        ) {
            let m = TemperatureMeasurement {
                temperature: t,
                unit: if f { TemperatureUnit::Fahrenheit } else { TemperatureUnit::Celsius },
                timestamp: ts,
                temperature_type: ty,
            };
            prop_assert_eq!(TemperatureMeasurement::decode(&m.encode()), Ok(m));
        }

        /// spec/decode.md introduction: a decoder never panics; accepted bytes re-encode.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            if let Ok(m) = TemperatureMeasurement::decode(&bytes) {
                prop_assert_eq!(m.encode(), bytes);
            }
        }
    }
}
