//! PLX Spot-Check Measurement (0x2A5E) and PLX Continuous Measurement (0x2A5F),
//! spec/decode.md §3.
//!
//! Spot-check layout: flags (1), SpO2 (SFLOAT %), pulse rate (SFLOAT /min), then as the
//! flags say: timestamp (Date Time, bit 0), measurement status (uint16, bit 1), device
//! and sensor status (**uint24**, bit 2), pulse amplitude index (SFLOAT %, bit 3). Bit 4
//! "device clock not set" has no field; bits 5–7 RFU.
//!
//! Continuous layout: flags (1), SpO2 + pulse rate (normal), then: fast SpO2 + pulse
//! rate (bit 0), slow SpO2 + pulse rate (bit 1), measurement status (bit 2), device and
//! sensor status (uint24, bit 3), pulse amplitude index (bit 4); bits 5–7 RFU.

use crate::bits::{BitName, bit_names};
use crate::bytes::{Reader, check_reserved, expect_len, put_u24};
use crate::datetime::DateTime;
use crate::error::{Characteristic, Error};
use crate::glucose::first_byte;
use crate::ieee11073::SFloat;

const SPOT: Characteristic = Characteristic::PlxSpotCheck;
const CONT: Characteristic = Characteristic::PlxContinuous;

/// Measurement status bits 5–15 (0–4 RFU).
pub const MEASUREMENT_STATUS_NAMES: [Option<&str>; 16] = [
    None,
    None,
    None,
    None,
    None,
    Some("measurement_ongoing"),
    Some("early_estimated_data"),
    Some("validated_data"),
    Some("fully_qualified_data"),
    Some("data_from_measurement_storage"),
    Some("data_for_demonstration"),
    Some("data_for_testing"),
    Some("calibration_ongoing"),
    Some("measurement_unavailable"),
    Some("questionable_measurement_detected"),
    Some("invalid_measurement_detected"),
];

/// Device and sensor status bits 0–15 (16–23 RFU).
pub const DEVICE_SENSOR_STATUS_NAMES: [Option<&str>; 16] = [
    Some("extended_display_update_ongoing"),
    Some("equipment_malfunction_detected"),
    Some("signal_processing_irregularity_detected"),
    Some("inadequate_signal_detected"),
    Some("poor_signal_detected"),
    Some("low_perfusion_detected"),
    Some("erratic_signal_detected"),
    Some("nonpulsatile_signal_detected"),
    Some("questionable_pulse_detected"),
    Some("signal_analysis_ongoing"),
    Some("sensor_interference_detected"),
    Some("sensor_unconnected_to_user"),
    Some("unknown_sensor_connected"),
    Some("sensor_displaced"),
    Some("sensor_malfunctioning"),
    Some("sensor_disconnected"),
];

/// Measurement status bits that mean a poor signal (spec/decode.md §6):
/// questionable (14) and invalid (15) measurement detected.
pub const POOR_MEASUREMENT_STATUS: u16 = (1 << 14) | (1 << 15);
/// Device and sensor status bits that mean a poor signal (spec/decode.md §6):
/// signal processing irregularity (2), inadequate signal (3), poor signal (4), low
/// perfusion (5), erratic signal (6).
pub const POOR_DEVICE_SENSOR_STATUS: u32 = 0b111_1100;

/// An SpO2 and pulse-rate pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Spo2Pr {
    /// SpO2 in %.
    pub spo2: SFloat,
    /// Pulse rate in /min.
    pub pulse_rate: SFloat,
}

impl Spo2Pr {
    fn read(r: &mut Reader<'_>) -> Result<Spo2Pr, Error> {
        Ok(Spo2Pr {
            spo2: SFloat::read(r)?,
            pulse_rate: SFloat::read(r)?,
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        self.spo2.write(out);
        self.pulse_rate.write(out);
    }
}

/// The status fields both characteristics share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlxStatus {
    /// Measurement status, raw.
    pub measurement_status: Option<u16>,
    /// Device and sensor status, raw 24-bit value (bits above 23 are not encoded).
    pub device_sensor_status: Option<u32>,
    /// Pulse amplitude index in %.
    pub pulse_amplitude_index: Option<SFloat>,
}

impl PlxStatus {
    /// Names of the set measurement-status bits (`reserved_bit_<n>` for 0–4).
    pub fn measurement_status_bits(&self) -> Option<Vec<BitName>> {
        self.measurement_status
            .map(|s| bit_names(u32::from(s), 16, &MEASUREMENT_STATUS_NAMES))
    }

    /// Names of the set device-and-sensor-status bits (`reserved_bit_<n>` for 16–23).
    pub fn device_sensor_status_bits(&self) -> Option<Vec<BitName>> {
        self.device_sensor_status
            .map(|s| bit_names(s, 24, &DEVICE_SENSOR_STATUS_NAMES))
    }

    /// True when any status bit of spec/decode.md §6 says the signal is poor.
    pub fn signal_is_poor(&self) -> bool {
        self.measurement_status
            .is_some_and(|s| s & POOR_MEASUREMENT_STATUS != 0)
            || self
                .device_sensor_status
                .is_some_and(|s| s & POOR_DEVICE_SENSOR_STATUS != 0)
    }

    /// Every set status bit by name: measurement status, then device and sensor status.
    pub fn names(&self) -> Vec<String> {
        self.measurement_status_bits()
            .into_iter()
            .flatten()
            .chain(self.device_sensor_status_bits().into_iter().flatten())
            .map(|b| b.to_string())
            .collect()
    }

    fn read(r: &mut Reader<'_>, ms: bool, ds: bool, pai: bool) -> Result<PlxStatus, Error> {
        Ok(PlxStatus {
            measurement_status: ms.then(|| r.u16()).transpose()?,
            device_sensor_status: ds.then(|| r.u24()).transpose()?,
            pulse_amplitude_index: pai.then(|| SFloat::read(r)).transpose()?,
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        if let Some(s) = self.measurement_status {
            out.extend_from_slice(&s.to_le_bytes());
        }
        if let Some(s) = self.device_sensor_status {
            put_u24(out, s);
        }
        if let Some(p) = self.pulse_amplitude_index {
            p.write(out);
        }
    }

    fn len(ms: bool, ds: bool, pai: bool) -> usize {
        usize::from(ms) * 2 + usize::from(ds) * 3 + usize::from(pai) * 2
    }
}

/// Flag bits 5–7, reserved in both characteristics.
const RESERVED_FLAGS: u8 = 0xE0;

/// A decoded PLX Spot-Check Measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlxSpotCheck {
    pub reading: Spo2Pr,
    /// Flag bit 0.
    pub timestamp: Option<DateTime>,
    pub status: PlxStatus,
    /// Flag bit 4 (no field).
    pub device_clock_not_set: bool,
}

impl PlxSpotCheck {
    /// The length with no optional field.
    pub const MIN_LEN: usize = 5;

    /// The flags byte this value encodes to.
    pub fn flags(&self) -> u8 {
        u8::from(self.timestamp.is_some())
            | u8::from(self.status.measurement_status.is_some()) << 1
            | u8::from(self.status.device_sensor_status.is_some()) << 2
            | u8::from(self.status.pulse_amplitude_index.is_some()) << 3
            | u8::from(self.device_clock_not_set) << 4
    }

    /// Decodes a PLX Spot-Check Measurement value.
    pub fn decode(bytes: &[u8]) -> Result<PlxSpotCheck, Error> {
        let flags = first_byte(bytes, Self::MIN_LEN, SPOT)?;
        check_reserved(u32::from(flags), u32::from(RESERVED_FLAGS), "flags", SPOT)?;
        let has = |bit: u8| flags & (1 << bit) != 0;
        let len = Self::MIN_LEN
            + usize::from(has(0)) * DateTime::LEN
            + PlxStatus::len(has(1), has(2), has(3));
        expect_len(bytes, len, SPOT)?;
        let mut r = Reader::new(bytes, SPOT);
        r.u8()?;
        let reading = Spo2Pr::read(&mut r)?;
        let timestamp = has(0).then(|| DateTime::read(&mut r)).transpose()?;
        let status = PlxStatus::read(&mut r, has(1), has(2), has(3))?;
        r.finish()?;
        Ok(PlxSpotCheck {
            reading,
            timestamp,
            status,
            device_clock_not_set: has(4),
        })
    }

    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(19);
        out.push(self.flags());
        self.reading.write(&mut out);
        if let Some(t) = &self.timestamp {
            t.write(&mut out);
        }
        self.status.write(&mut out);
        out
    }
}

/// A decoded PLX Continuous Measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PlxContinuous {
    /// The normal SpO2 and pulse rate.
    pub reading: Spo2Pr,
    /// Flag bit 0.
    pub fast: Option<Spo2Pr>,
    /// Flag bit 1.
    pub slow: Option<Spo2Pr>,
    pub status: PlxStatus,
}

impl PlxContinuous {
    /// The length with no optional field.
    pub const MIN_LEN: usize = 5;

    /// The flags byte this value encodes to.
    pub fn flags(&self) -> u8 {
        u8::from(self.fast.is_some())
            | u8::from(self.slow.is_some()) << 1
            | u8::from(self.status.measurement_status.is_some()) << 2
            | u8::from(self.status.device_sensor_status.is_some()) << 3
            | u8::from(self.status.pulse_amplitude_index.is_some()) << 4
    }

    /// Decodes a PLX Continuous Measurement value.
    pub fn decode(bytes: &[u8]) -> Result<PlxContinuous, Error> {
        let flags = first_byte(bytes, Self::MIN_LEN, CONT)?;
        check_reserved(u32::from(flags), u32::from(RESERVED_FLAGS), "flags", CONT)?;
        let has = |bit: u8| flags & (1 << bit) != 0;
        let len = Self::MIN_LEN
            + usize::from(has(0)) * 4
            + usize::from(has(1)) * 4
            + PlxStatus::len(has(2), has(3), has(4));
        expect_len(bytes, len, CONT)?;
        let mut r = Reader::new(bytes, CONT);
        r.u8()?;
        let reading = Spo2Pr::read(&mut r)?;
        let fast = has(0).then(|| Spo2Pr::read(&mut r)).transpose()?;
        let slow = has(1).then(|| Spo2Pr::read(&mut r)).transpose()?;
        let status = PlxStatus::read(&mut r, has(2), has(3), has(4))?;
        r.finish()?;
        Ok(PlxContinuous {
            reading,
            fast,
            slow,
            status,
        })
    }

    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(20);
        out.push(self.flags());
        self.reading.write(&mut out);
        if let Some(f) = &self.fast {
            f.write(&mut out);
        }
        if let Some(s) = &self.slow {
            s.write(&mut out);
        }
        self.status.write(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{date_time, sfloat};
    use proptest::prelude::*;

    fn n(m: i32, e: i32) -> SFloat {
        SFloat::number(m, e).unwrap()
    }

    /// spec/decode.md §3 PLX spot-check: flags 0x00; SpO2 0x0061 = 97, PR 0x0048 = 72.
    #[test]
    fn a_bare_spot_check_has_spo2_and_pulse_rate() {
        let m = PlxSpotCheck::decode(&[0x00, 0x61, 0x00, 0x48, 0x00]).unwrap();
        assert_eq!(m.reading.spo2.to_string(), "97");
        assert_eq!(m.reading.pulse_rate.to_string(), "72");
        assert_eq!(m.timestamp, None);
        assert_eq!(m.status.measurement_status, None);
        assert!(!m.device_clock_not_set);
    }

    /// spec/decode.md §3 PLX spot-check, every field: flags 0x1F. Timestamp 2026-11-22
    /// 07:58:03; measurement status 0x4020 = bits 5 (measurement_ongoing), 14
    /// (questionable); device status 0x010020 = bit 5 (low_perfusion) and bit 16 (RFU);
    /// PAI 0xF020 = 3.2 %; bit 4: the device clock is not set.
    #[test]
    fn a_full_spot_check_names_every_status_bit() {
        let bytes = [
            0x1F, 0x61, 0x00, 0x48, 0x00, 0xEA, 0x07, 11, 22, 7, 58, 3, 0x20, 0x40, 0x20, 0x00,
            0x01, 0x20, 0xF0,
        ];
        let m = PlxSpotCheck::decode(&bytes).unwrap();
        assert_eq!(m.timestamp.unwrap().year, 2026);
        assert!(m.device_clock_not_set);
        let ms: Vec<String> = m
            .status
            .measurement_status_bits()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            ms,
            ["measurement_ongoing", "questionable_measurement_detected"]
        );
        assert_eq!(m.status.device_sensor_status, Some(0x01_0020));
        let ds: Vec<String> = m
            .status
            .device_sensor_status_bits()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(ds, ["low_perfusion_detected", "reserved_bit_16"]);
        assert_eq!(m.status.pulse_amplitude_index.unwrap().to_string(), "3.2");
        assert!(m.status.signal_is_poor());
        assert_eq!(m.encode(), bytes);
    }

    /// spec/decode.md §3: measurement-status bits 0–4 are RFU.
    #[test]
    fn rfu_measurement_status_bits_are_reported_by_number() {
        let s = PlxStatus {
            measurement_status: Some(0x0011),
            device_sensor_status: None,
            pulse_amplitude_index: None,
        };
        assert_eq!(s.names(), ["reserved_bit_0", "reserved_bit_4"]);
        assert!(!s.signal_is_poor());
    }

    /// spec/decode.md §6: each listed bit alone makes the signal poor; others do not.
    #[test]
    fn each_poor_signal_bit_alone_makes_the_signal_poor() {
        for bit in [14u16, 15] {
            let s = PlxStatus {
                measurement_status: Some(1 << bit),
                device_sensor_status: None,
                pulse_amplitude_index: None,
            };
            assert!(s.signal_is_poor(), "measurement bit {bit}");
        }
        for bit in 0..16u32 {
            let s = PlxStatus {
                measurement_status: None,
                device_sensor_status: Some(1 << bit),
                pulse_amplitude_index: None,
            };
            assert_eq!(
                s.signal_is_poor(),
                (2..=6).contains(&bit),
                "device bit {bit}"
            );
        }
    }

    /// spec/decode.md §3 PLX continuous, every field: flags 0x1F. Normal 97/72, fast
    /// 96/75, slow 98/70, measurement status 0x0080 (validated_data), device status
    /// 0x000000, PAI 0xE0FA = 2.5 %.
    #[test]
    fn a_full_continuous_measurement_decodes_fast_and_slow() {
        let bytes = [
            0x1F, 0x61, 0x00, 0x48, 0x00, 0x60, 0x00, 0x4B, 0x00, 0x62, 0x00, 0x46, 0x00, 0x80,
            0x00, 0x00, 0x00, 0x00, 0xFA, 0xE0,
        ];
        let m = PlxContinuous::decode(&bytes).unwrap();
        assert_eq!(m.fast.unwrap().spo2.to_string(), "96");
        assert_eq!(m.fast.unwrap().pulse_rate.to_string(), "75");
        assert_eq!(m.slow.unwrap().spo2.to_string(), "98");
        assert_eq!(m.slow.unwrap().pulse_rate.to_string(), "70");
        assert_eq!(m.status.names(), ["validated_data"]);
        assert_eq!(m.status.pulse_amplitude_index.unwrap().to_string(), "2.5");
        assert!(!m.status.signal_is_poor());
        assert_eq!(m.encode(), bytes);
    }

    /// spec/decode.md §3 PLX spot-check flags bits 0–4: every layout, every prefix truncated.
    #[test]
    fn every_spot_check_flag_combination_round_trips_and_truncates() {
        for flags in 0u8..32 {
            let m = PlxSpotCheck {
                reading: Spo2Pr {
                    spo2: n(97, 0),
                    pulse_rate: n(72, 0),
                },
                timestamp: (flags & 1 != 0).then(DateTime::default),
                status: PlxStatus {
                    measurement_status: (flags & 2 != 0).then_some(0x0080),
                    device_sensor_status: (flags & 4 != 0).then_some(0x00_0010),
                    pulse_amplitude_index: (flags & 8 != 0).then_some(n(32, -1)),
                },
                device_clock_not_set: flags & 16 != 0,
            };
            let bytes = m.encode();
            assert_eq!(bytes[0], flags);
            assert_eq!(PlxSpotCheck::decode(&bytes), Ok(m));
            for k in 0..bytes.len() {
                assert!(
                    matches!(
                        PlxSpotCheck::decode(&bytes[..k]),
                        Err(Error::Truncated { got, .. }) if got == k
                    ),
                    "flags {flags:#x}, {k} bytes"
                );
            }
            let mut long = bytes;
            long.push(0);
            assert!(matches!(
                PlxSpotCheck::decode(&long),
                Err(Error::TrailingBytes { .. })
            ));
        }
    }

    /// spec/decode.md §3 PLX continuous flags bits 0–4: every layout, every prefix truncated.
    #[test]
    fn every_continuous_flag_combination_round_trips_and_truncates() {
        for flags in 0u8..32 {
            let pair = Spo2Pr {
                spo2: n(95, 0),
                pulse_rate: SFloat::NAN,
            };
            let m = PlxContinuous {
                reading: pair,
                fast: (flags & 1 != 0).then_some(pair),
                slow: (flags & 2 != 0).then_some(pair),
                status: PlxStatus {
                    measurement_status: (flags & 4 != 0).then_some(0x0080),
                    device_sensor_status: (flags & 8 != 0).then_some(0x00_0010),
                    pulse_amplitude_index: (flags & 16 != 0).then_some(n(32, -1)),
                },
            };
            let bytes = m.encode();
            assert_eq!(bytes[0], flags);
            assert_eq!(PlxContinuous::decode(&bytes), Ok(m));
            for k in 0..bytes.len() {
                assert!(
                    matches!(
                        PlxContinuous::decode(&bytes[..k]),
                        Err(Error::Truncated { got, .. }) if got == k
                    ),
                    "flags {flags:#x}, {k} bytes"
                );
            }
        }
    }

    /// Strictness policy (spec/decode.md §5): PLX flag bits 5–7 are RFU.
    #[test]
    fn reserved_flag_bits_reject_both_characteristics() {
        for bit in 5..8 {
            let bytes = [1 << bit, 0x61, 0x00, 0x48, 0x00];
            assert!(matches!(
                PlxSpotCheck::decode(&bytes),
                Err(Error::ReservedFlags { .. })
            ));
            assert!(matches!(
                PlxContinuous::decode(&bytes),
                Err(Error::ReservedFlags { .. })
            ));
        }
    }

    fn pair() -> impl Strategy<Value = Spo2Pr> {
        (sfloat(), sfloat()).prop_map(|(spo2, pulse_rate)| Spo2Pr { spo2, pulse_rate })
    }

    fn status() -> impl Strategy<Value = PlxStatus> {
        (
            proptest::option::of(any::<u16>()),
            proptest::option::of(0u32..(1 << 24)),
            proptest::option::of(sfloat()),
        )
            .prop_map(|(m, d, p)| PlxStatus {
                measurement_status: m,
                device_sensor_status: d,
                pulse_amplitude_index: p,
            })
    }

    proptest! {
        /// spec/decode.md §3 PLX spot-check: encode → decode round-trips.
        #[test]
        fn any_spot_check_round_trips(
            reading in pair(), t in proptest::option::of(date_time()), status in status(),
            clock in any::<bool>(),
        ) {
            let m = PlxSpotCheck { reading, timestamp: t, status, device_clock_not_set: clock };
            prop_assert_eq!(PlxSpotCheck::decode(&m.encode()), Ok(m));
        }

        /// spec/decode.md §3 PLX continuous: encode → decode round-trips.
        #[test]
        fn any_continuous_round_trips(
            reading in pair(), fast in proptest::option::of(pair()),
            slow in proptest::option::of(pair()), status in status(),
        ) {
            let m = PlxContinuous { reading, fast, slow, status };
            prop_assert_eq!(PlxContinuous::decode(&m.encode()), Ok(m));
        }

        /// spec/decode.md introduction: a decoder never panics; accepted bytes re-encode.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
            if let Ok(m) = PlxSpotCheck::decode(&bytes) {
                prop_assert_eq!(m.encode(), bytes.clone());
            }
            if let Ok(m) = PlxContinuous::decode(&bytes) {
                prop_assert_eq!(m.encode(), bytes);
            }
        }
    }
}
