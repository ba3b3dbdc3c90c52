//! Glucose Measurement (0x2A18) and Glucose Measurement Context (0x2A34),
//! spec/decode.md §3.
//!
//! Glucose Measurement layout: flags (1), sequence number (uint16), base time (Date
//! Time, 7), then as the flags say: time offset (sint16 minutes, bit 0), concentration
//! (SFLOAT) + type/location (1) (bit 1), sensor status annunciation (uint16, bit 3).
//! Bit 2 is the concentration unit (0 kg/L, 1 mol/L), bit 4 "context follows", bits 5–7
//! RFU. In the type/location byte the **type is the low nibble** and the sample
//! location the high nibble.
//!
//! Glucose Measurement Context layout: flags (1), sequence number (uint16), then as the
//! flags say: extended flags (1, bit 7), carbohydrate id (1) + carbohydrate (SFLOAT kg,
//! bit 0), meal (1, bit 1), tester/health (1, bit 2; **tester is the low nibble**),
//! exercise duration (uint16 s) + intensity (uint8 %) (bit 3), medication id (1) +
//! medication (SFLOAT, bit 4; unit from bit 5: 0 kg, 1 L), HbA1c (SFLOAT %, bit 6).

use crate::bits::{BitName, bit_names, enum_name};
use crate::bytes::{Reader, check_reserved, expect_len};
use crate::datetime::DateTime;
use crate::decimal::Decimal;
use crate::error::{Characteristic, Error};
use crate::ieee11073::{Kind, SFloat};

const GM: Characteristic = Characteristic::GlucoseMeasurement;
const GC: Characteristic = Characteristic::GlucoseMeasurementContext;

/// Glucose types by code (type/location byte, low nibble).
pub const TYPE_NAMES: [Option<&str>; 11] = [
    None,
    Some("capillary_whole_blood"),
    Some("capillary_plasma"),
    Some("venous_whole_blood"),
    Some("venous_plasma"),
    Some("arterial_whole_blood"),
    Some("arterial_plasma"),
    Some("undetermined_whole_blood"),
    Some("undetermined_plasma"),
    Some("interstitial_fluid"),
    Some("control_solution"),
];
/// The type code of a control-solution test.
pub const TYPE_CONTROL_SOLUTION: u8 = 10;

/// Sample locations by code (type/location byte, high nibble).
pub const LOCATION_NAMES: [Option<&str>; 16] = [
    None,
    Some("finger"),
    Some("alternate_site_test"),
    Some("earlobe"),
    Some("control_solution"),
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    Some("not_available"),
];
/// The sample-location code of a control-solution test.
pub const LOCATION_CONTROL_SOLUTION: u8 = 4;

/// Sensor status annunciation bits 0–11 (12–15 RFU).
pub const SENSOR_STATUS_NAMES: [Option<&str>; 12] = [
    Some("device_battery_low"),
    Some("sensor_malfunction"),
    Some("sample_size_insufficient"),
    Some("strip_insertion_error"),
    Some("strip_type_incorrect"),
    Some("result_higher_than_device_can_process"),
    Some("result_lower_than_device_can_process"),
    Some("sensor_temperature_too_high"),
    Some("sensor_temperature_too_low"),
    Some("sensor_read_interrupted"),
    Some("general_device_fault"),
    Some("time_fault"),
];
/// Sensor status bit 5: the result is above what the meter can measure (HI).
pub const STATUS_RESULT_HIGH: u16 = 1 << 5;
/// Sensor status bit 6: the result is below what the meter can measure (LO).
pub const STATUS_RESULT_LOW: u16 = 1 << 6;

/// Context carbohydrate ids.
pub const CARBOHYDRATE_NAMES: [Option<&str>; 8] = [
    None,
    Some("breakfast"),
    Some("lunch"),
    Some("dinner"),
    Some("snack"),
    Some("drink"),
    Some("supper"),
    Some("brunch"),
];
/// Context meal codes.
pub const MEAL_NAMES: [Option<&str>; 6] = [
    None,
    Some("preprandial"),
    Some("postprandial"),
    Some("fasting"),
    Some("casual"),
    Some("bedtime"),
];
/// Context tester codes (low nibble).
pub const TESTER_NAMES: [Option<&str>; 16] = [
    None,
    Some("self"),
    Some("health_care_professional"),
    Some("lab_test"),
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    Some("not_available"),
];
/// Context health codes (high nibble).
pub const HEALTH_NAMES: [Option<&str>; 16] = [
    None,
    Some("minor_health_issues"),
    Some("major_health_issues"),
    Some("during_menses"),
    Some("under_stress"),
    Some("no_health_issues"),
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    None,
    Some("not_available"),
];
/// Context medication ids.
pub const MEDICATION_NAMES: [Option<&str>; 6] = [
    None,
    Some("rapid_acting_insulin"),
    Some("short_acting_insulin"),
    Some("intermediate_acting_insulin"),
    Some("long_acting_insulin"),
    Some("pre_mixed_insulin"),
];

/// The unit of the concentration (flag bit 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConcentrationUnit {
    /// kg/L (flag bit 2 = 0).
    KgPerL,
    /// mol/L (flag bit 2 = 1).
    MolPerL,
}

impl ConcentrationUnit {
    /// `"kg/L"` or `"mol/L"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ConcentrationUnit::KgPerL => "kg/L",
            ConcentrationUnit::MolPerL => "mol/L",
        }
    }
}

/// The concentration and what it was measured on (flag bit 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GlucoseSample {
    /// In the measurement's [`ConcentrationUnit`].
    pub concentration: SFloat,
    /// Type code, 0–15 (the low nibble on the wire; higher bits are not encoded).
    pub sample_type: u8,
    /// Sample location code, 0–15 (the high nibble).
    pub sample_location: u8,
}

impl GlucoseSample {
    /// The type's name; `"reserved"` for RFU codes.
    pub fn type_name(&self) -> &'static str {
        enum_name(&TYPE_NAMES, usize::from(self.sample_type))
    }

    /// The sample location's name; `"reserved"` for RFU codes.
    pub fn location_name(&self) -> &'static str {
        enum_name(&LOCATION_NAMES, usize::from(self.sample_location))
    }
}

/// A decoded Glucose Measurement (0x2A18).
///
/// Every flag bit is represented, so [`encode`](Self::encode) gives back exactly the
/// bytes [`decode`](Self::decode) accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GlucoseMeasurement {
    pub sequence_number: u16,
    pub base_time: DateTime,
    /// Minutes to add to `base_time` (flag bit 0).
    pub time_offset_min: Option<i16>,
    /// Concentration, type and location (flag bit 1).
    pub sample: Option<GlucoseSample>,
    /// Flag bit 2; meaningful only with a `sample`.
    pub unit: ConcentrationUnit,
    /// Sensor status annunciation, raw (flag bit 3).
    pub sensor_status: Option<u16>,
    /// Flag bit 4: a Glucose Measurement Context with the same sequence number follows.
    pub context_follows: bool,
}

impl GlucoseMeasurement {
    /// Flag bits 5–7, reserved.
    pub const RESERVED_FLAGS: u8 = 0xE0;
    /// The length with no optional field.
    pub const MIN_LEN: usize = 10;

    /// The flags byte this value encodes to.
    pub fn flags(&self) -> u8 {
        u8::from(self.time_offset_min.is_some())
            | u8::from(self.sample.is_some()) << 1
            | u8::from(self.unit == ConcentrationUnit::MolPerL) << 2
            | u8::from(self.sensor_status.is_some()) << 3
            | u8::from(self.context_follows) << 4
    }

    /// Decodes a Glucose Measurement value.
    pub fn decode(bytes: &[u8]) -> Result<GlucoseMeasurement, Error> {
        let flags = first_byte(bytes, Self::MIN_LEN, GM)?;
        check_reserved(
            u32::from(flags),
            u32::from(Self::RESERVED_FLAGS),
            "flags",
            GM,
        )?;
        let len = Self::MIN_LEN
            + usize::from(flags & 0x01 != 0) * 2
            + usize::from(flags & 0x02 != 0) * 3
            + usize::from(flags & 0x08 != 0) * 2;
        expect_len(bytes, len, GM)?;
        let mut r = Reader::new(bytes, GM);
        r.u8()?;
        let sequence_number = r.u16()?;
        let base_time = DateTime::read(&mut r)?;
        let time_offset_min = (flags & 0x01 != 0).then(|| r.i16()).transpose()?;
        let sample = if flags & 0x02 != 0 {
            let concentration = SFloat::read(&mut r)?;
            let tl = r.u8()?;
            Some(GlucoseSample {
                concentration,
                sample_type: tl & 0x0F,
                sample_location: tl >> 4,
            })
        } else {
            None
        };
        let sensor_status = (flags & 0x08 != 0).then(|| r.u16()).transpose()?;
        r.finish()?;
        Ok(GlucoseMeasurement {
            sequence_number,
            base_time,
            time_offset_min,
            sample,
            unit: if flags & 0x04 != 0 {
                ConcentrationUnit::MolPerL
            } else {
                ConcentrationUnit::KgPerL
            },
            sensor_status,
            context_follows: flags & 0x10 != 0,
        })
    }

    /// The wire bytes (type and location are masked to their nibbles).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17);
        out.push(self.flags());
        out.extend_from_slice(&self.sequence_number.to_le_bytes());
        self.base_time.write(&mut out);
        if let Some(o) = self.time_offset_min {
            out.extend_from_slice(&o.to_le_bytes());
        }
        if let Some(s) = &self.sample {
            s.concentration.write(&mut out);
            out.push((s.sample_type & 0x0F) | (s.sample_location << 4));
        }
        if let Some(s) = self.sensor_status {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out
    }

    /// The concentration in mg/dL (kg/L × 100 000), when it is a number in kg/L.
    pub fn concentration_mg_per_dl(&self) -> Option<Decimal> {
        match (&self.sample, self.unit) {
            (Some(s), ConcentrationUnit::KgPerL) => s.concentration.value().map(|d| d.scaled(5)),
            _ => None,
        }
    }

    /// The concentration in mmol/L (mol/L × 1 000), when it is a number in mol/L.
    pub fn concentration_mmol_per_l(&self) -> Option<Decimal> {
        match (&self.sample, self.unit) {
            (Some(s), ConcentrationUnit::MolPerL) => s.concentration.value().map(|d| d.scaled(3)),
            _ => None,
        }
    }

    /// `base_time` + `time_offset_min`: only when an offset is present and the base
    /// date is fully known (and a possible instant).
    pub fn effective_time(&self) -> Option<DateTime> {
        self.base_time.plus_minutes(self.time_offset_min?)
    }

    /// The names of the set sensor-status bits (`reserved_bit_<n>` for 12–15), when
    /// the status is present.
    pub fn sensor_status_bits(&self) -> Option<Vec<BitName>> {
        self.sensor_status
            .map(|s| bit_names(u32::from(s), 16, &SENSOR_STATUS_NAMES))
    }

    /// True when the sample type or location says "control solution": a meter check,
    /// not a patient measurement.
    pub fn is_control_solution(&self) -> bool {
        self.sample.is_some_and(|s| {
            s.sample_type == TYPE_CONTROL_SOLUTION || s.sample_location == LOCATION_CONTROL_SOLUTION
        })
    }

    /// True when the concentration is a special value (`kind` tells which).
    pub fn concentration_kind(&self) -> Option<Kind> {
        self.sample.map(|s| s.concentration.kind())
    }
}

/// The unit of the context's medication (flag bit 5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MedicationUnit {
    /// kg (flag bit 5 = 0).
    Kg,
    /// L (flag bit 5 = 1).
    L,
}

impl MedicationUnit {
    /// `"kg"` or `"L"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MedicationUnit::Kg => "kg",
            MedicationUnit::L => "L",
        }
    }
}

/// Carbohydrate intake (flag bit 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Carbohydrate {
    pub id: u8,
    /// In kg.
    pub kg: SFloat,
}

/// Who tested and how the patient felt (flag bit 2), nibbles 0–15.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TesterHealth {
    /// The low nibble.
    pub tester: u8,
    /// The high nibble.
    pub health: u8,
}

/// Exercise before the measurement (flag bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Exercise {
    /// Seconds; 65535 means overrun.
    pub duration_s: u16,
    /// Percent.
    pub intensity_pct: u8,
}

/// Medication taken (flag bit 4), in the context's [`MedicationUnit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Medication {
    pub id: u8,
    pub amount: SFloat,
}

/// A decoded Glucose Measurement Context (0x2A34).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GlucoseContext {
    /// The Glucose Measurement this context belongs to.
    pub sequence_number: u16,
    /// Flag bit 7; every extended flag is RFU, so a decoded value is always `Some(0)`.
    pub extended_flags: Option<u8>,
    pub carbohydrate: Option<Carbohydrate>,
    /// Meal code (flag bit 1).
    pub meal: Option<u8>,
    pub tester_health: Option<TesterHealth>,
    pub exercise: Option<Exercise>,
    pub medication: Option<Medication>,
    /// Flag bit 5; meaningful only with a `medication`.
    pub medication_unit: MedicationUnit,
    /// HbA1c in % (flag bit 6).
    pub hba1c_pct: Option<SFloat>,
}

impl GlucoseContext {
    /// The length with no optional field.
    pub const MIN_LEN: usize = 3;

    /// The flags byte this value encodes to.
    pub fn flags(&self) -> u8 {
        u8::from(self.carbohydrate.is_some())
            | u8::from(self.meal.is_some()) << 1
            | u8::from(self.tester_health.is_some()) << 2
            | u8::from(self.exercise.is_some()) << 3
            | u8::from(self.medication.is_some()) << 4
            | u8::from(self.medication_unit == MedicationUnit::L) << 5
            | u8::from(self.hba1c_pct.is_some()) << 6
            | u8::from(self.extended_flags.is_some()) << 7
    }

    /// Decodes a Glucose Measurement Context value. Extended flags with any bit set
    /// are rejected (every extended flag is RFU, so the layout would be unknown).
    pub fn decode(bytes: &[u8]) -> Result<GlucoseContext, Error> {
        let flags = first_byte(bytes, Self::MIN_LEN, GC)?;
        let has = |bit: u8| flags & (1 << bit) != 0;
        let len = Self::MIN_LEN
            + usize::from(has(7))
            + usize::from(has(0)) * 3
            + usize::from(has(1))
            + usize::from(has(2))
            + usize::from(has(3)) * 3
            + usize::from(has(4)) * 3
            + usize::from(has(6)) * 2;
        // The extended flags are checked before the length: a set RFU extended flag
        // may announce fields this decoder does not know.
        if has(7)
            && let Some(&ext) = bytes.get(3)
        {
            check_reserved(u32::from(ext), 0xFF, "extended flags", GC)?;
        }
        expect_len(bytes, len, GC)?;
        let mut r = Reader::new(bytes, GC);
        r.u8()?;
        let sequence_number = r.u16()?;
        let extended_flags = has(7).then(|| r.u8()).transpose()?;
        let carbohydrate = if has(0) {
            Some(Carbohydrate {
                id: r.u8()?,
                kg: SFloat::read(&mut r)?,
            })
        } else {
            None
        };
        let meal = has(1).then(|| r.u8()).transpose()?;
        let tester_health = if has(2) {
            let b = r.u8()?;
            Some(TesterHealth {
                tester: b & 0x0F,
                health: b >> 4,
            })
        } else {
            None
        };
        let exercise = if has(3) {
            Some(Exercise {
                duration_s: r.u16()?,
                intensity_pct: r.u8()?,
            })
        } else {
            None
        };
        let medication = if has(4) {
            Some(Medication {
                id: r.u8()?,
                amount: SFloat::read(&mut r)?,
            })
        } else {
            None
        };
        let hba1c_pct = has(6).then(|| SFloat::read(&mut r)).transpose()?;
        r.finish()?;
        Ok(GlucoseContext {
            sequence_number,
            extended_flags,
            carbohydrate,
            meal,
            tester_health,
            exercise,
            medication,
            medication_unit: if has(5) {
                MedicationUnit::L
            } else {
                MedicationUnit::Kg
            },
            hba1c_pct,
        })
    }

    /// The wire bytes (tester and health are masked to their nibbles).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17);
        out.push(self.flags());
        out.extend_from_slice(&self.sequence_number.to_le_bytes());
        if let Some(e) = self.extended_flags {
            out.push(e);
        }
        if let Some(c) = &self.carbohydrate {
            out.push(c.id);
            c.kg.write(&mut out);
        }
        if let Some(m) = self.meal {
            out.push(m);
        }
        if let Some(th) = &self.tester_health {
            out.push((th.tester & 0x0F) | (th.health << 4));
        }
        if let Some(e) = &self.exercise {
            out.extend_from_slice(&e.duration_s.to_le_bytes());
            out.push(e.intensity_pct);
        }
        if let Some(m) = &self.medication {
            out.push(m.id);
            m.amount.write(&mut out);
        }
        if let Some(h) = self.hba1c_pct {
            h.write(&mut out);
        }
        out
    }

    /// The meal's name; `"reserved"` for RFU codes.
    pub fn meal_name(&self) -> Option<&'static str> {
        self.meal.map(|m| enum_name(&MEAL_NAMES, usize::from(m)))
    }
}

/// The flags byte, or a truncation that names the shortest possible length.
pub(crate) fn first_byte(
    bytes: &[u8],
    min_len: usize,
    characteristic: Characteristic,
) -> Result<u8, Error> {
    bytes.first().copied().ok_or(Error::Truncated {
        characteristic,
        needed: min_len,
        got: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{date_time, sfloat};
    use proptest::prelude::*;

    /// 2026-11-22 07:58:00 as Date Time bytes: 0x07EA, 11, 22, 7, 58, 0.
    const BASE: [u8; 7] = [0xEA, 0x07, 11, 22, 7, 58, 0];

    fn base() -> DateTime {
        DateTime::decode(&BASE).unwrap()
    }

    fn payload(flags: u8, rest: &[u8]) -> Vec<u8> {
        // flags, sequence number 0x0011 = 17, base time, rest.
        let mut v = vec![flags, 0x11, 0x00];
        v.extend_from_slice(&BASE);
        v.extend_from_slice(rest);
        v
    }

    /// spec/decode.md §3 Glucose Measurement: flags 0x00, nothing optional.
    #[test]
    fn a_bare_measurement_has_only_sequence_number_and_base_time() {
        let m = GlucoseMeasurement::decode(&payload(0x00, &[])).unwrap();
        assert_eq!(m.sequence_number, 17);
        assert_eq!(m.base_time, base());
        assert_eq!(m.time_offset_min, None);
        assert_eq!(m.sample, None);
        assert_eq!(m.sensor_status, None);
        assert!(!m.context_follows);
        assert_eq!(m.concentration_mg_per_dl(), None);
        assert_eq!(m.effective_time(), None);
    }

    /// spec/decode.md §3: flags 0x03 = time offset + concentration in kg/L. Offset
    /// 0xFFF6 is −10 min. Concentration 0xB06E: exponent 0xB = −5, mantissa 0x06E = 110,
    /// so 0.0011 kg/L, × 100 000 = 110 mg/dL. Type/location 0x11: type 1 (low nibble,
    /// capillary_whole_blood), location 1 (high nibble, finger).
    #[test]
    fn a_kg_per_l_concentration_converts_to_mg_per_dl_and_the_offset_applies() {
        let m =
            GlucoseMeasurement::decode(&payload(0x03, &[0xF6, 0xFF, 0x6E, 0xB0, 0x11])).unwrap();
        assert_eq!(m.time_offset_min, Some(-10));
        let s = m.sample.unwrap();
        assert_eq!(s.concentration.to_string(), "0.0011");
        assert_eq!(m.unit, ConcentrationUnit::KgPerL);
        assert_eq!(m.concentration_mg_per_dl(), Some(Decimal::new(110, 0)));
        assert_eq!(m.concentration_mmol_per_l(), None);
        assert_eq!(s.type_name(), "capillary_whole_blood");
        assert_eq!(s.location_name(), "finger");
        // 07:58:00 − 10 min = 07:48:00.
        let eff = m.effective_time().unwrap();
        assert_eq!((eff.hours, eff.minutes), (7, 48));
    }

    /// spec/decode.md §3: flags 0x06 = concentration, unit bit 2 = mol/L. 0xC043:
    /// exponent 0xC = −4, mantissa 67, so 0.0067 mol/L, × 1 000 = 6.7 mmol/L.
    /// Type/location 0x42: type 2 (capillary_plasma), location 4 (control_solution).
    #[test]
    fn a_mol_per_l_concentration_converts_to_mmol_per_l() {
        let m = GlucoseMeasurement::decode(&payload(0x06, &[0x43, 0xC0, 0x42])).unwrap();
        assert_eq!(m.unit, ConcentrationUnit::MolPerL);
        assert_eq!(m.concentration_mmol_per_l(), Some(Decimal::new(67, -1)));
        assert_eq!(m.concentration_mmol_per_l().unwrap().to_f64(), 6.7);
        assert_eq!(m.concentration_mg_per_dl(), None);
        let s = m.sample.unwrap();
        assert_eq!((s.sample_type, s.sample_location), (2, 4));
        assert_eq!(s.type_name(), "capillary_plasma");
        assert_eq!(s.location_name(), "control_solution");
        assert!(m.is_control_solution());
    }

    /// spec/decode.md §3: 0.0000952 kg/L = 9.52 mg/dL exactly (no 9.520000000000001).
    #[test]
    fn the_mg_per_dl_conversion_is_exact() {
        // 0x93B8: exponent −7, mantissa 0x3B8 = 952.
        let m = GlucoseMeasurement::decode(&payload(0x02, &[0xB8, 0x93, 0x11])).unwrap();
        let mg = m.concentration_mg_per_dl().unwrap();
        assert_eq!(mg.to_string(), "9.52");
        assert_eq!(mg.to_f64(), 9.52);
    }

    /// spec/decode.md §3 "convenience keys": a special concentration gives no conversion.
    #[test]
    fn a_special_concentration_has_no_converted_value() {
        for kind in Kind::SPECIALS {
            let raw = SFloat::special(kind).unwrap().to_le_bytes();
            let m = GlucoseMeasurement::decode(&payload(0x02, &[raw[0], raw[1], 0x11])).unwrap();
            assert_eq!(m.concentration_kind(), Some(kind));
            assert_eq!(m.concentration_mg_per_dl(), None, "{kind}");
        }
    }

    /// spec/decode.md §3: status bits 0–11 by name, 12–15 as reserved_bit_<n>.
    #[test]
    fn sensor_status_bits_are_named_and_rfu_bits_reported() {
        // flags 0x08: status present; 0x1061 = bits 0, 5, 6, 12.
        let m = GlucoseMeasurement::decode(&payload(0x08, &[0x61, 0x10])).unwrap();
        let names: Vec<String> = m
            .sensor_status_bits()
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            names,
            [
                "device_battery_low",
                "result_higher_than_device_can_process",
                "result_lower_than_device_can_process",
                "reserved_bit_12"
            ]
        );
    }

    /// spec/decode.md §3 Glucose type and location names; RFU codes "reserved" (§1).
    #[test]
    fn every_type_and_location_code_has_a_name() {
        let mut s = GlucoseSample {
            concentration: SFloat::NAN,
            sample_type: 0,
            sample_location: 0,
        };
        assert_eq!(s.type_name(), "reserved");
        assert_eq!(s.location_name(), "reserved");
        s.sample_type = 9;
        s.sample_location = 15;
        assert_eq!(s.type_name(), "interstitial_fluid");
        assert_eq!(s.location_name(), "not_available");
        s.sample_type = 11;
        s.sample_location = 5;
        assert_eq!(s.type_name(), "reserved");
        assert_eq!(s.location_name(), "reserved");
    }

    /// spec/decode.md §3: effective_time needs an offset and a fully known base date.
    #[test]
    fn effective_time_needs_a_known_base_date() {
        let mut bytes = payload(0x01, &[0x05, 0x00]);
        bytes[3] = 0; // year 0: unknown
        bytes[4] = 0;
        let m = GlucoseMeasurement::decode(&bytes).unwrap();
        assert_eq!(m.base_time.year, 0);
        assert_eq!(m.effective_time(), None);
    }

    /// Strictness policy: flag bits 5–7 are RFU; each one set rejects the payload.
    #[test]
    fn reserved_flag_bits_reject_the_measurement() {
        for bit in 5..8 {
            let e = GlucoseMeasurement::decode(&payload(1 << bit, &[])).unwrap_err();
            assert!(matches!(e, Error::ReservedFlags { .. }), "{e}");
        }
    }

    /// Strictness policy: bytes after the last announced field are rejected.
    #[test]
    fn trailing_bytes_reject_the_measurement() {
        assert_eq!(
            GlucoseMeasurement::decode(&payload(0x00, &[0x00])),
            Err(Error::TrailingBytes {
                characteristic: GM,
                expected: 10,
                got: 11
            })
        );
    }

    /// spec/decode.md §3 Glucose flags bits 0–4: each combination has its own layout.
    ///
    /// Every flag combination (bits 0–4): decode(encode(m)) == m with the right length.
    #[test]
    fn every_flag_combination_decodes_and_round_trips() {
        for flags in 0u8..32 {
            let m = GlucoseMeasurement {
                sequence_number: 0xBEEF,
                base_time: base(),
                time_offset_min: (flags & 1 != 0).then_some(-300),
                sample: (flags & 2 != 0).then_some(GlucoseSample {
                    concentration: SFloat::number(56, -4).unwrap(),
                    sample_type: 1,
                    sample_location: 1,
                }),
                unit: if flags & 4 != 0 {
                    ConcentrationUnit::MolPerL
                } else {
                    ConcentrationUnit::KgPerL
                },
                sensor_status: (flags & 8 != 0).then_some(0x0001),
                context_follows: flags & 16 != 0,
            };
            let bytes = m.encode();
            assert_eq!(bytes[0], flags);
            assert_eq!(
                bytes.len(),
                10 + 2 * usize::from(flags & 1)
                    + 3 * usize::from(flags >> 1 & 1)
                    + 2 * usize::from(flags >> 3 & 1)
            );
            assert_eq!(GlucoseMeasurement::decode(&bytes), Ok(m));
        }
    }

    /// spec/decode.md introduction: truncation at every byte boundary is rejected, never a panic.
    ///
    /// Truncation at every byte boundary of every flag combination.
    #[test]
    fn every_prefix_of_a_measurement_is_truncated() {
        for flags in 0u8..32 {
            let full = payload(flags, &[0xF6, 0xFF, 0x0C, 0xB0, 0x11, 0x61, 0x10]);
            let len = GlucoseMeasurement::MIN_LEN
                + usize::from(flags & 1 != 0) * 2
                + usize::from(flags & 2 != 0) * 3
                + usize::from(flags & 8 != 0) * 2;
            for n in 0..len {
                match GlucoseMeasurement::decode(&full[..n]) {
                    Err(Error::Truncated { needed, got, .. }) => {
                        assert_eq!(got, n);
                        assert_eq!(needed, if n == 0 { 10 } else { len });
                    }
                    other => panic!("flags {flags:#x}, {n} bytes: {other:?}"),
                }
            }
            assert!(GlucoseMeasurement::decode(&full[..len]).is_ok());
        }
    }

    /// spec/decode.md §3 Glucose Measurement Context, every field present: flags 0xFF.
    #[test]
    fn a_context_with_every_field_decodes_each_nibble_and_unit() {
        let bytes = [
            0xFF, // flags: all, medication unit L, extended flags present
            0x11, 0x00, // sequence 17
            0x00, // extended flags (all RFU, zero)
            0x01, 0x32, 0xD0, // carbohydrate: breakfast, 0xD032 = 50e−3 kg
            0x02, // meal: postprandial
            0x51, // tester 1 (self, low nibble), health 5 (no_health_issues, high)
            0x08, 0x07, 0x32, // exercise 0x0708 = 1800 s, 50 %
            0x01, 0x0A, 0xD0, // rapid-acting insulin, 0xD00A = 10e−3 L
            0x3A, 0xF0, // HbA1c 0xF03A = 58e−1 = 5.8 %
        ];
        let c = GlucoseContext::decode(&bytes).unwrap();
        assert_eq!(c.sequence_number, 17);
        assert_eq!(c.extended_flags, Some(0));
        let carb = c.carbohydrate.unwrap();
        assert_eq!(carb.id, 1);
        assert_eq!(carb.kg.to_string(), "0.05");
        assert_eq!(c.meal_name(), Some("postprandial"));
        let th = c.tester_health.unwrap();
        assert_eq!((th.tester, th.health), (1, 5));
        assert_eq!(
            c.exercise,
            Some(Exercise {
                duration_s: 1800,
                intensity_pct: 50
            })
        );
        assert_eq!(c.medication.unwrap().amount.to_string(), "0.01");
        assert_eq!(c.medication_unit, MedicationUnit::L);
        assert_eq!(c.hba1c_pct.unwrap().to_string(), "5.8");
        assert_eq!(c.encode(), bytes);
    }

    /// Strictness policy: an extended-flags byte with any bit set is rejected.
    #[test]
    fn a_set_extended_flag_rejects_the_context() {
        let e = GlucoseContext::decode(&[0x80, 0x01, 0x00, 0x01]).unwrap_err();
        assert!(
            matches!(
                e,
                Error::ReservedFlags {
                    field: "extended flags",
                    ..
                }
            ),
            "{e}"
        );
    }

    /// spec/decode.md §3 Context flags bits 0–7: all 256 layouts, every prefix truncated, one byte more trailing.
    #[test]
    fn every_context_flag_combination_round_trips_and_truncates_at_every_byte() {
        for flags in 0u8..=255 {
            let c = GlucoseContext {
                sequence_number: 3,
                extended_flags: (flags & 0x80 != 0).then_some(0),
                carbohydrate: (flags & 1 != 0).then_some(Carbohydrate {
                    id: 2,
                    kg: SFloat::number(45, -3).unwrap(),
                }),
                meal: (flags & 2 != 0).then_some(4),
                tester_health: (flags & 4 != 0).then_some(TesterHealth {
                    tester: 15,
                    health: 15,
                }),
                exercise: (flags & 8 != 0).then_some(Exercise {
                    duration_s: 65535,
                    intensity_pct: 100,
                }),
                medication: (flags & 16 != 0).then_some(Medication {
                    id: 5,
                    amount: SFloat::NRES,
                }),
                medication_unit: if flags & 32 != 0 {
                    MedicationUnit::L
                } else {
                    MedicationUnit::Kg
                },
                hba1c_pct: (flags & 64 != 0).then_some(SFloat::number(71, -1).unwrap()),
            };
            let bytes = c.encode();
            assert_eq!(bytes[0], flags);
            assert_eq!(GlucoseContext::decode(&bytes), Ok(c));
            for n in 0..bytes.len() {
                assert!(
                    matches!(
                        GlucoseContext::decode(&bytes[..n]),
                        Err(Error::Truncated { got, .. }) if got == n
                    ),
                    "flags {flags:#x}, {n} bytes"
                );
            }
            let mut long = bytes.clone();
            long.push(0);
            assert!(matches!(
                GlucoseContext::decode(&long),
                Err(Error::TrailingBytes { .. })
            ));
        }
    }

    /// spec/decode.md §3 Context enumerations; §1: RFU codes are "reserved".
    #[test]
    fn context_enumerations_name_rfu_codes_reserved() {
        assert_eq!(enum_name(&CARBOHYDRATE_NAMES, 7), "brunch");
        assert_eq!(enum_name(&CARBOHYDRATE_NAMES, 8), "reserved");
        assert_eq!(enum_name(&MEAL_NAMES, 5), "bedtime");
        assert_eq!(enum_name(&MEAL_NAMES, 0), "reserved");
        assert_eq!(enum_name(&TESTER_NAMES, 4), "reserved");
        assert_eq!(enum_name(&HEALTH_NAMES, 15), "not_available");
        assert_eq!(enum_name(&MEDICATION_NAMES, 6), "reserved");
    }

    fn measurement() -> impl Strategy<Value = GlucoseMeasurement> {
        (
            any::<u16>(),
            date_time(),
            proptest::option::of(any::<i16>()),
            proptest::option::of((sfloat(), 0u8..16, 0u8..16)),
            any::<bool>(),
            proptest::option::of(any::<u16>()),
            any::<bool>(),
        )
            .prop_map(
                |(seq, t, off, sample, mol, status, ctx)| GlucoseMeasurement {
                    sequence_number: seq,
                    base_time: t,
                    time_offset_min: off,
                    sample: sample.map(|(c, ty, loc)| GlucoseSample {
                        concentration: c,
                        sample_type: ty,
                        sample_location: loc,
                    }),
                    unit: if mol {
                        ConcentrationUnit::MolPerL
                    } else {
                        ConcentrationUnit::KgPerL
                    },
                    sensor_status: status,
                    context_follows: ctx,
                },
            )
    }

    fn context() -> impl Strategy<Value = GlucoseContext> {
        (
            any::<u16>(),
            any::<bool>(),
            proptest::option::of((any::<u8>(), sfloat())),
            proptest::option::of(any::<u8>()),
            proptest::option::of((0u8..16, 0u8..16)),
            proptest::option::of((any::<u16>(), any::<u8>())),
            proptest::option::of((any::<u8>(), sfloat())),
            any::<bool>(),
            proptest::option::of(sfloat()),
        )
            .prop_map(
                |(seq, ext, carb, meal, th, ex, med, litre, hba1c)| GlucoseContext {
                    sequence_number: seq,
                    extended_flags: ext.then_some(0),
                    carbohydrate: carb.map(|(id, kg)| Carbohydrate { id, kg }),
                    meal,
                    tester_health: th.map(|(tester, health)| TesterHealth { tester, health }),
                    exercise: ex.map(|(duration_s, intensity_pct)| Exercise {
                        duration_s,
                        intensity_pct,
                    }),
                    medication: med.map(|(id, amount)| Medication { id, amount }),
                    medication_unit: if litre {
                        MedicationUnit::L
                    } else {
                        MedicationUnit::Kg
                    },
                    hba1c_pct: hba1c,
                },
            )
    }

    proptest! {
        /// spec/decode.md §3 Glucose Measurement: encode → decode round-trips.
        #[test]
        fn any_measurement_round_trips(m in measurement()) {
            let bytes = m.encode();
            prop_assert_eq!(GlucoseMeasurement::decode(&bytes), Ok(m));
        }

        /// spec/decode.md §3 Glucose Measurement Context: encode → decode round-trips.
        #[test]
        fn any_context_round_trips(c in context()) {
            let bytes = c.encode();
            prop_assert_eq!(GlucoseContext::decode(&bytes), Ok(c));
        }

        /// spec/decode.md introduction: a decoder never panics; accepted bytes re-encode.
        ///
        /// Decoding arbitrary bytes never panics, and what decodes re-encodes exactly.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
            if let Ok(m) = GlucoseMeasurement::decode(&bytes) {
                prop_assert_eq!(m.encode(), bytes.clone());
            }
            if let Ok(c) = GlucoseContext::decode(&bytes) {
                prop_assert_eq!(c.encode(), bytes);
            }
        }
    }
}
