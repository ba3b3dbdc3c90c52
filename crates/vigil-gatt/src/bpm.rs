//! Blood Pressure Measurement (0x2A35) and Intermediate Cuff Pressure (0x2A36),
//! spec/decode.md §3.
//!
//! Layout (both): flags (1), three SFLOATs (systolic, diastolic, mean arterial
//! pressure; for the intermediate cuff pressure: the cuff pressure and two unused
//! slots whose content is ignored), then as the flags say: timestamp (Date Time, bit
//! 1), pulse rate (SFLOAT, bit 2), user id (uint8, bit 3; 255 = unknown user),
//! measurement status (uint16, bit 4). Bit 0 is the unit (0 mmHg, 1 kPa); bits 5–7 are
//! RFU.

use crate::bits::BitName;
use crate::bytes::{Reader, check_reserved, expect_len};
use crate::datetime::DateTime;
use crate::error::{Characteristic, Error};
use crate::glucose::first_byte;
use crate::ieee11073::SFloat;

const BPM: Characteristic = Characteristic::BloodPressureMeasurement;
const ICP: Characteristic = Characteristic::IntermediateCuffPressure;

/// The unit of the pressures (flag bit 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PressureUnit {
    /// mmHg (flag bit 0 = 0).
    MmHg,
    /// kPa (flag bit 0 = 1).
    KPa,
}

impl PressureUnit {
    /// `"mmHg"` or `"kPa"`.
    pub fn as_str(self) -> &'static str {
        match self {
            PressureUnit::MmHg => "mmHg",
            PressureUnit::KPa => "kPa",
        }
    }
}

/// The user id that means "unknown user".
pub const UNKNOWN_USER: u8 = 255;

/// Pulse-rate range names (measurement status bits 3–4).
pub const PULSE_RATE_RANGE_NAMES: [&str; 4] = [
    "within_range",
    "exceeds_upper_limit",
    "below_lower_limit",
    "reserved",
];

/// The measurement status (flag bit 4) split into its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MeasurementStatus(pub u16);

impl MeasurementStatus {
    /// Bits 6–15, reserved.
    pub const RESERVED: u16 = 0xFFC0;

    pub fn body_movement_detected(self) -> bool {
        self.0 & 0x01 != 0
    }

    pub fn cuff_too_loose(self) -> bool {
        self.0 & 0x02 != 0
    }

    pub fn irregular_pulse_detected(self) -> bool {
        self.0 & 0x04 != 0
    }

    /// Bits 3–4: 0 within range, 1 exceeds upper limit, 2 below lower limit, 3 RFU.
    pub fn pulse_rate_range(self) -> u8 {
        ((self.0 >> 3) & 0x03) as u8
    }

    /// The name of [`pulse_rate_range`](Self::pulse_rate_range).
    pub fn pulse_rate_range_name(self) -> &'static str {
        PULSE_RATE_RANGE_NAMES[usize::from(self.pulse_rate_range())]
    }

    pub fn improper_measurement_position(self) -> bool {
        self.0 & 0x20 != 0
    }

    /// Status names for a reading's `status`: the set flags by name, the pulse-rate
    /// range as `pulse_rate_exceeds_upper_limit` / `pulse_rate_below_lower_limit` /
    /// `pulse_rate_range_reserved` when not within range, and `reserved_bit_<n>` for
    /// set RFU bits 6–15.
    pub fn names(self) -> Vec<String> {
        let mut out = Vec::new();
        if self.body_movement_detected() {
            out.push("body_movement_detected".to_owned());
        }
        if self.cuff_too_loose() {
            out.push("cuff_too_loose".to_owned());
        }
        if self.irregular_pulse_detected() {
            out.push("irregular_pulse_detected".to_owned());
        }
        match self.pulse_rate_range() {
            0 => {}
            3 => out.push("pulse_rate_range_reserved".to_owned()),
            _ => out.push(format!("pulse_rate_{}", self.pulse_rate_range_name())),
        }
        if self.improper_measurement_position() {
            out.push("improper_measurement_position".to_owned());
        }
        out.extend(
            (6..16)
                .filter(|b| self.0 & (1 << b) != 0)
                .map(|b| BitName::Reserved(b).to_string()),
        );
        out
    }
}

/// The fields after the three pressures, shared by both characteristics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BpOptional {
    /// Flag bit 1.
    pub timestamp: Option<DateTime>,
    /// Beats per minute (flag bit 2).
    pub pulse_rate: Option<SFloat>,
    /// Flag bit 3; 255 means unknown user.
    pub user_id: Option<u8>,
    /// Flag bit 4.
    pub measurement_status: Option<MeasurementStatus>,
}

/// Flag bits 5–7, reserved.
const RESERVED_FLAGS: u8 = 0xE0;
/// The length with no optional field.
const MIN_LEN: usize = 7;

fn flags_of(unit: PressureUnit, o: &BpOptional) -> u8 {
    u8::from(unit == PressureUnit::KPa)
        | u8::from(o.timestamp.is_some()) << 1
        | u8::from(o.pulse_rate.is_some()) << 2
        | u8::from(o.user_id.is_some()) << 3
        | u8::from(o.measurement_status.is_some()) << 4
}

/// Decodes flags, the three SFLOAT slots and the optional fields.
fn decode_common(
    bytes: &[u8],
    ch: Characteristic,
) -> Result<(PressureUnit, [SFloat; 3], BpOptional), Error> {
    let flags = first_byte(bytes, MIN_LEN, ch)?;
    check_reserved(u32::from(flags), u32::from(RESERVED_FLAGS), "flags", ch)?;
    let len = MIN_LEN
        + usize::from(flags & 0x02 != 0) * DateTime::LEN
        + usize::from(flags & 0x04 != 0) * 2
        + usize::from(flags & 0x08 != 0)
        + usize::from(flags & 0x10 != 0) * 2;
    expect_len(bytes, len, ch)?;
    let mut r = Reader::new(bytes, ch);
    r.u8()?;
    let slots = [
        SFloat::read(&mut r)?,
        SFloat::read(&mut r)?,
        SFloat::read(&mut r)?,
    ];
    let timestamp = (flags & 0x02 != 0)
        .then(|| DateTime::read(&mut r))
        .transpose()?;
    let pulse_rate = (flags & 0x04 != 0)
        .then(|| SFloat::read(&mut r))
        .transpose()?;
    let user_id = (flags & 0x08 != 0).then(|| r.u8()).transpose()?;
    let measurement_status = (flags & 0x10 != 0)
        .then(|| r.u16().map(MeasurementStatus))
        .transpose()?;
    r.finish()?;
    let unit = if flags & 0x01 != 0 {
        PressureUnit::KPa
    } else {
        PressureUnit::MmHg
    };
    Ok((
        unit,
        slots,
        BpOptional {
            timestamp,
            pulse_rate,
            user_id,
            measurement_status,
        },
    ))
}

fn encode_common(unit: PressureUnit, slots: [SFloat; 3], o: &BpOptional) -> Vec<u8> {
    let mut out = Vec::with_capacity(19);
    out.push(flags_of(unit, o));
    for s in slots {
        s.write(&mut out);
    }
    if let Some(t) = &o.timestamp {
        t.write(&mut out);
    }
    if let Some(p) = o.pulse_rate {
        p.write(&mut out);
    }
    if let Some(u) = o.user_id {
        out.push(u);
    }
    if let Some(s) = o.measurement_status {
        out.extend_from_slice(&s.0.to_le_bytes());
    }
    out
}

/// A decoded Blood Pressure Measurement (0x2A35).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BloodPressureMeasurement {
    pub unit: PressureUnit,
    pub systolic: SFloat,
    pub diastolic: SFloat,
    pub mean_arterial_pressure: SFloat,
    pub optional: BpOptional,
}

impl BloodPressureMeasurement {
    /// The flags byte this value encodes to.
    pub fn flags(&self) -> u8 {
        flags_of(self.unit, &self.optional)
    }

    /// Decodes a Blood Pressure Measurement value.
    pub fn decode(bytes: &[u8]) -> Result<BloodPressureMeasurement, Error> {
        let (unit, [systolic, diastolic, mean_arterial_pressure], optional) =
            decode_common(bytes, BPM)?;
        Ok(BloodPressureMeasurement {
            unit,
            systolic,
            diastolic,
            mean_arterial_pressure,
            optional,
        })
    }

    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        encode_common(
            self.unit,
            [self.systolic, self.diastolic, self.mean_arterial_pressure],
            &self.optional,
        )
    }
}

/// A decoded Intermediate Cuff Pressure (0x2A36): the cuff pressure during inflation.
/// Not a measurement of the patient's blood pressure; it never becomes a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IntermediateCuffPressure {
    pub unit: PressureUnit,
    pub cuff_pressure: SFloat,
    pub optional: BpOptional,
}

impl IntermediateCuffPressure {
    /// The flags byte this value encodes to.
    pub fn flags(&self) -> u8 {
        flags_of(self.unit, &self.optional)
    }

    /// Decodes an Intermediate Cuff Pressure value; the diastolic and mean slots are
    /// read (they must be present) and their content ignored.
    pub fn decode(bytes: &[u8]) -> Result<IntermediateCuffPressure, Error> {
        let (unit, [cuff_pressure, _, _], optional) = decode_common(bytes, ICP)?;
        Ok(IntermediateCuffPressure {
            unit,
            cuff_pressure,
            optional,
        })
    }

    /// The wire bytes; the unused slots are sent as NaN, as the specification asks.
    pub fn encode(&self) -> Vec<u8> {
        encode_common(
            self.unit,
            [self.cuff_pressure, SFloat::NAN, SFloat::NAN],
            &self.optional,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decimal::Decimal;
    use crate::ieee11073::Kind;
    use crate::testing::{date_time, sfloat};
    use proptest::prelude::*;

    /// spec/decode.md §3 BPM: flags 0x00 (mmHg, nothing optional); systolic 0x0078 =
    /// 120, diastolic 0x0050 = 80, MAP 0x005D = 93.
    #[test]
    fn a_bare_mmhg_measurement_has_three_pressures() {
        let m =
            BloodPressureMeasurement::decode(&[0x00, 0x78, 0x00, 0x50, 0x00, 0x5D, 0x00]).unwrap();
        assert_eq!(m.unit, PressureUnit::MmHg);
        assert_eq!(m.systolic.value(), Some(Decimal::new(120, 0)));
        assert_eq!(m.diastolic.value(), Some(Decimal::new(80, 0)));
        assert_eq!(m.mean_arterial_pressure.value(), Some(Decimal::new(93, 0)));
        assert_eq!(m.optional.timestamp, None);
        assert_eq!(m.optional.pulse_rate, None);
        assert_eq!(m.optional.user_id, None);
        assert_eq!(m.optional.measurement_status, None);
    }

    /// spec/decode.md §3 BPM, every field: flags 0x1F = kPa, timestamp, pulse, user,
    /// status. Systolic 0xF0A0: exponent −1, mantissa 160: 16.0 kPa; diastolic 0xF06E =
    /// 11.0 kPa; MAP 0x07FF = NaN; timestamp 2026-11-22 07:58:03; pulse 0x0048 = 72;
    /// user 255 (unknown); status 0x000C = irregular pulse (bit 2) + pulse rate exceeds
    /// upper limit (bits 3–4 = 01).
    #[test]
    fn a_full_kpa_measurement_decodes_every_field() {
        let bytes = [
            0x1F, 0xA0, 0xF0, 0x6E, 0xF0, 0xFF, 0x07, 0xEA, 0x07, 11, 22, 7, 58, 3, 0x48, 0x00,
            0xFF, 0x0C, 0x00,
        ];
        let m = BloodPressureMeasurement::decode(&bytes).unwrap();
        assert_eq!(m.unit, PressureUnit::KPa);
        assert_eq!(m.systolic.to_string(), "16");
        assert_eq!(m.diastolic.to_string(), "11");
        assert_eq!(m.mean_arterial_pressure.kind(), Kind::NaN);
        let t = m.optional.timestamp.unwrap();
        assert_eq!((t.year, t.month, t.day, t.seconds), (2026, 11, 22, 3));
        assert_eq!(m.optional.pulse_rate.unwrap().to_string(), "72");
        assert_eq!(m.optional.user_id, Some(UNKNOWN_USER));
        let s = m.optional.measurement_status.unwrap();
        assert!(s.irregular_pulse_detected());
        assert!(!s.body_movement_detected());
        assert_eq!(s.pulse_rate_range_name(), "exceeds_upper_limit");
        assert_eq!(
            s.names(),
            ["irregular_pulse_detected", "pulse_rate_exceeds_upper_limit"]
        );
        assert_eq!(m.encode(), bytes);
    }

    /// spec/decode.md §3: measurement status fields, every bit, and RFU bits by number.
    #[test]
    fn every_measurement_status_field_is_named() {
        let s = MeasurementStatus(0x0001 | 0x0002 | 0x0020 | 0x0010 | 0x0400);
        assert!(s.body_movement_detected());
        assert!(s.cuff_too_loose());
        assert!(s.improper_measurement_position());
        assert_eq!(s.pulse_rate_range_name(), "below_lower_limit");
        assert_eq!(
            s.names(),
            [
                "body_movement_detected",
                "cuff_too_loose",
                "pulse_rate_below_lower_limit",
                "improper_measurement_position",
                "reserved_bit_10"
            ]
        );
        assert_eq!(MeasurementStatus(0x18).pulse_rate_range_name(), "reserved");
        assert_eq!(MeasurementStatus(0).pulse_rate_range_name(), "within_range");
    }

    /// spec/decode.md §3 ICP: the diastolic and MAP slots are present and ignored.
    #[test]
    fn the_cuff_pressure_ignores_the_unused_slots() {
        // flags 0x00; cuff 0x0096 = 150 mmHg; slots hold garbage 0x1234, 0xFFFF.
        let c =
            IntermediateCuffPressure::decode(&[0x00, 0x96, 0x00, 0x34, 0x12, 0xFF, 0xFF]).unwrap();
        assert_eq!(c.cuff_pressure.to_string(), "150");
        // Re-encoded with NaN in the unused slots.
        assert_eq!(c.encode(), [0x00, 0x96, 0x00, 0xFF, 0x07, 0xFF, 0x07]);
        assert_eq!(
            IntermediateCuffPressure::decode(&[0x00, 0x96, 0x00]),
            Err(Error::Truncated {
                characteristic: ICP,
                needed: 7,
                got: 3
            })
        );
    }

    fn with_flags(flags: u8) -> BloodPressureMeasurement {
        BloodPressureMeasurement {
            unit: if flags & 1 != 0 {
                PressureUnit::KPa
            } else {
                PressureUnit::MmHg
            },
            systolic: SFloat::number(142, 0).unwrap(),
            diastolic: SFloat::number(91, 0).unwrap(),
            mean_arterial_pressure: SFloat::number(108, 0).unwrap(),
            optional: BpOptional {
                timestamp: (flags & 2 != 0).then(DateTime::default),
                pulse_rate: (flags & 4 != 0).then_some(SFloat::number(72, 0).unwrap()),
                user_id: (flags & 8 != 0).then_some(1),
                measurement_status: (flags & 16 != 0).then_some(MeasurementStatus(4)),
            },
        }
    }

    /// Every flag combination decodes; every prefix is truncated (spec/decode.md
    /// introduction: `needs 7 bytes, got 5`); one byte more is trailing.
    #[test]
    fn every_flag_combination_round_trips_and_truncates_at_every_byte() {
        for flags in 0u8..32 {
            let m = with_flags(flags);
            let bytes = m.encode();
            assert_eq!(bytes[0], flags);
            assert_eq!(BloodPressureMeasurement::decode(&bytes), Ok(m));
            for n in 0..bytes.len() {
                let e = BloodPressureMeasurement::decode(&bytes[..n]).unwrap_err();
                let needed = if n == 0 { 7 } else { bytes.len() };
                assert_eq!(
                    e,
                    Error::Truncated {
                        characteristic: BPM,
                        needed,
                        got: n
                    }
                );
                let ie = IntermediateCuffPressure::decode(&bytes[..n]).unwrap_err();
                assert!(matches!(ie, Error::Truncated { .. }), "{ie}");
            }
            let mut long = bytes.clone();
            long.push(0);
            assert!(matches!(
                BloodPressureMeasurement::decode(&long),
                Err(Error::TrailingBytes { .. })
            ));
        }
        assert_eq!(
            BloodPressureMeasurement::decode(&[0x00, 0x78, 0x00, 0x50, 0x00])
                .unwrap_err()
                .to_string(),
            "truncated: Blood Pressure Measurement needs 7 bytes, got 5"
        );
    }

    /// Strictness policy: flag bits 5–7 are RFU and reject the payload.
    #[test]
    fn reserved_flag_bits_reject_both_characteristics() {
        for bit in 5..8 {
            let mut bytes = with_flags(0).encode();
            bytes[0] |= 1 << bit;
            assert!(matches!(
                BloodPressureMeasurement::decode(&bytes),
                Err(Error::ReservedFlags { .. })
            ));
            assert!(matches!(
                IntermediateCuffPressure::decode(&bytes),
                Err(Error::ReservedFlags { .. })
            ));
        }
    }

    fn optional() -> impl Strategy<Value = BpOptional> {
        (
            proptest::option::of(date_time()),
            proptest::option::of(sfloat()),
            proptest::option::of(any::<u8>()),
            proptest::option::of(any::<u16>()),
        )
            .prop_map(|(timestamp, pulse_rate, user_id, s)| BpOptional {
                timestamp,
                pulse_rate,
                user_id,
                measurement_status: s.map(MeasurementStatus),
            })
    }

    fn unit() -> impl Strategy<Value = PressureUnit> {
        prop_oneof![Just(PressureUnit::MmHg), Just(PressureUnit::KPa)]
    }

    proptest! {
        /// spec/decode.md §3 BPM: encode → decode round-trips for any field values.
        #[test]
        fn any_blood_pressure_round_trips(
            unit in unit(), s in sfloat(), d in sfloat(), m in sfloat(), o in optional(),
        ) {
            let v = BloodPressureMeasurement {
                unit, systolic: s, diastolic: d, mean_arterial_pressure: m, optional: o,
            };
            prop_assert_eq!(BloodPressureMeasurement::decode(&v.encode()), Ok(v));
        }

        /// spec/decode.md §3 ICP: encode → decode round-trips for any field values.
        #[test]
        fn any_cuff_pressure_round_trips(unit in unit(), c in sfloat(), o in optional()) {
            let v = IntermediateCuffPressure { unit, cuff_pressure: c, optional: o };
            prop_assert_eq!(IntermediateCuffPressure::decode(&v.encode()), Ok(v));
        }

        /// spec/decode.md introduction: a decoder never panics; accepted bytes re-encode.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
            if let Ok(m) = BloodPressureMeasurement::decode(&bytes) {
                prop_assert_eq!(m.encode(), bytes.clone());
            }
            if let Ok(c) = IntermediateCuffPressure::decode(&bytes) {
                prop_assert_eq!(IntermediateCuffPressure::decode(&c.encode()), Ok(c));
            }
        }
    }
}
