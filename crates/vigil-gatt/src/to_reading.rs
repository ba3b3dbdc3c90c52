//! From decoded measurements to wire readings, spec/decode.md §6.
//!
//! | decoded | reading |
//! |---|---|
//! | Glucose kg/L / mol/L | `glucose` in mg/dL (× 100 000) / mmol/L (× 1 000); +INF or status bit 5 → `HI`, −INF or bit 6 → `LO`, value `None` |
//! | Context meal | `context`: preprandial, postprandial, fasting, bedtime; casual → random |
//! | Glucose type | `sample_type`: the type name; control solution → [`Error::ControlSolution`] |
//! | BPM | `bp` systolic, diastolic, mean, pulse in `mm[Hg]` or `kPa` |
//! | HRM | `heart_rate`, `rr_intervals_ms`, source from the context (`hr_strap` by default) |
//! | PLX | `spo2`, `pulse_rate`, `perfusion_index`, `signal_quality` poor when a §6 bit is set |
//! | Temperature type | `site`: armpit → axillary, mouth → oral, ear/tympanum → tympanic, rectum → rectal; other types → no site, `temperature_type:<name>` in `status` |
//! | Weight | `weight` in `kg` or `[lb_av]` |
//! | Polar ECG frame | `ecg_waveform`, lead I; `time` = the first sample's instant |
//! | status bits | `status`: the decoder's bit names |
//!
//! Each function builds a [`Reading`] that holds the model's invariants (finite,
//! non-negative quantities), or says why it cannot: a special value where a number is
//! required, a control-solution test, a weight the scale could not measure.
//!
//! `time` is the gateway's business (it knows how far the device clock is off): the
//! caller passes it in a [`ReadingContext`]. The device's own clock goes to
//! `device_time` when it is a fully known, possible instant, never invented.

use chrono::{FixedOffset, NaiveDate, TimeDelta, Utc};
use vigil_model::measurement::{
    BloodPressure, EcgLeads, EcgWaveform, Glucose, HeartRate, Spo2, Temperature, Weight,
};
use vigil_model::units::{
    GlucoseUnit, PercentUnit, PressureUnit as ModelPressureUnit, RateUnit,
    TemperatureUnit as ModelTemperatureUnit, VoltageUnit, WeightUnit,
};
use vigil_model::vocab::{GlucoseFlag, HrSource, MealContext, SignalQuality, TemperatureSite};
use vigil_model::{DeviceId, Measurement, Reading};

use crate::bpm::{BloodPressureMeasurement, PressureUnit};
use crate::error::{Characteristic, Error};
use crate::glucose::{
    ConcentrationUnit, GlucoseContext, GlucoseMeasurement, STATUS_RESULT_HIGH, STATUS_RESULT_LOW,
};
use crate::hrm::HeartRateMeasurement;
use crate::ieee11073::{Kind, SFloat};
use crate::plx::{PlxContinuous, PlxSpotCheck, PlxStatus, Spo2Pr};
use crate::pmd::DataFrame;
use crate::temperature::{TemperatureMeasurement, TemperatureUnit};
use crate::weight::{UnitSystem, WeightMeasurement};

/// What the gateway knows that the payload does not.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadingContext {
    pub device_id: DeviceId,
    /// The measurement time as the gateway determined it (with its UTC offset).
    pub time: chrono::DateTime<FixedOffset>,
    /// The `source` of heart-rate readings.
    pub hr_source: HrSource,
}

impl ReadingContext {
    /// A context with the default heart-rate source (`hr_strap`).
    pub fn new(device_id: DeviceId, time: chrono::DateTime<FixedOffset>) -> ReadingContext {
        ReadingContext {
            device_id,
            time,
            hr_source: HrSource::HrStrap,
        }
    }

    fn reading(
        &self,
        measurement: Measurement,
        device_time: Option<chrono::NaiveDateTime>,
        record_seq: Option<u64>,
        status: Vec<String>,
    ) -> Reading {
        Reading {
            device_id: self.device_id.clone(),
            record_seq,
            time: self.time,
            device_time,
            measurement,
            status,
            symptoms: Vec::new(),
        }
    }
}

/// A number that must be present: finite, or an error naming the field.
fn number(v: SFloat, ch: Characteristic, field: &str) -> Result<f64, Error> {
    v.value()
        .map(|d| d.to_f64())
        .ok_or_else(|| Error::no_reading(ch, format!("{field} is {}, not a number", v.kind())))
}

/// A quantity that cannot be negative.
fn non_negative(v: f64, ch: Characteristic, field: &str) -> Result<f64, Error> {
    if v < 0.0 {
        Err(Error::no_reading(ch, format!("{field} is negative ({v})")))
    } else {
        Ok(v)
    }
}

/// An optional quantity: special values and negatives become `None`.
fn optional(v: Option<SFloat>) -> Option<f64> {
    v.and_then(|v| v.value())
        .map(|d| d.to_f64())
        .filter(|x| *x >= 0.0)
}

/// A glucose reading from a measurement and, optionally, its context (which must carry
/// the same sequence number).
pub fn glucose(
    m: &GlucoseMeasurement,
    context: Option<&GlucoseContext>,
    ctx: &ReadingContext,
) -> Result<Reading, Error> {
    const CH: Characteristic = Characteristic::GlucoseMeasurement;
    if m.is_control_solution() {
        return Err(Error::ControlSolution {
            characteristic: CH,
            sequence_number: m.sequence_number,
        });
    }
    if let Some(c) = context
        && c.sequence_number != m.sequence_number
    {
        return Err(Error::invalid(
            Characteristic::GlucoseMeasurementContext,
            format!(
                "the context of record {} does not belong to record {}",
                c.sequence_number, m.sequence_number
            ),
        ));
    }
    let status = m.sensor_status.unwrap_or(0);
    let kind = m.concentration_kind();
    let hi = kind == Some(Kind::PositiveInfinity) || status & STATUS_RESULT_HIGH != 0;
    let lo = kind == Some(Kind::NegativeInfinity) || status & STATUS_RESULT_LOW != 0;
    let (value, flag) = match (hi, lo) {
        (true, true) => {
            return Err(Error::no_reading(
                CH,
                "the meter reports the result both above and below its range",
            ));
        }
        (true, false) => (None, Some(GlucoseFlag::Hi)),
        (false, true) => (None, Some(GlucoseFlag::Lo)),
        (false, false) => {
            let converted = match m.unit {
                ConcentrationUnit::KgPerL => m.concentration_mg_per_dl(),
                ConcentrationUnit::MolPerL => m.concentration_mmol_per_l(),
            };
            let v = match (converted, m.sample) {
                (Some(d), _) => d.to_f64(),
                (None, None) => {
                    return Err(Error::no_reading(
                        CH,
                        "the measurement carries no concentration",
                    ));
                }
                (None, Some(s)) => {
                    return Err(Error::no_reading(
                        CH,
                        format!(
                            "the concentration is {}, not a number",
                            s.concentration.kind()
                        ),
                    ));
                }
            };
            (Some(non_negative(v, CH, "the concentration")?), None)
        }
    };
    let meal = context.and_then(|c| match c.meal? {
        1 => Some(MealContext::Preprandial),
        2 => Some(MealContext::Postprandial),
        3 => Some(MealContext::Fasting),
        4 => Some(MealContext::Random),
        5 => Some(MealContext::Bedtime),
        _ => None,
    });
    let sample_type = m
        .sample
        .map(|s| s.type_name())
        .filter(|n| *n != "reserved")
        .map(str::to_owned);
    let device_time = match m.time_offset_min {
        Some(_) => m.effective_time(),
        None => Some(m.base_time),
    }
    .and_then(|t| t.to_naive());
    let measurement = Measurement::Glucose(Glucose {
        value,
        flag,
        context: meal,
        sample_type,
        unit: match m.unit {
            ConcentrationUnit::KgPerL => GlucoseUnit::MgPerDl,
            ConcentrationUnit::MolPerL => GlucoseUnit::MmolPerL,
        },
    });
    let status = m
        .sensor_status_bits()
        .unwrap_or_default()
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(ctx.reading(
        measurement,
        device_time,
        Some(u64::from(m.sequence_number)),
        status,
    ))
}

/// A blood-pressure reading. Systolic and diastolic must be numbers; a special mean or
/// pulse is left out.
pub fn blood_pressure(
    m: &BloodPressureMeasurement,
    ctx: &ReadingContext,
) -> Result<Reading, Error> {
    const CH: Characteristic = Characteristic::BloodPressureMeasurement;
    let systolic = non_negative(number(m.systolic, CH, "systolic")?, CH, "systolic")?;
    let diastolic = non_negative(number(m.diastolic, CH, "diastolic")?, CH, "diastolic")?;
    let measurement = Measurement::Bp(BloodPressure {
        systolic,
        diastolic,
        mean: optional(Some(m.mean_arterial_pressure)),
        pulse: optional(m.optional.pulse_rate),
        unit: match m.unit {
            PressureUnit::MmHg => ModelPressureUnit::MmHg,
            PressureUnit::KPa => ModelPressureUnit::KPa,
        },
    });
    let status = m
        .optional
        .measurement_status
        .map(|s| s.names())
        .unwrap_or_default();
    let device_time = m.optional.timestamp.and_then(|t| t.to_naive());
    Ok(ctx.reading(measurement, device_time, None, status))
}

/// A heart-rate reading, with RR intervals in ms (3 decimals, ties to even).
pub fn heart_rate(m: &HeartRateMeasurement, ctx: &ReadingContext) -> Result<Reading, Error> {
    let measurement = Measurement::HeartRate(HeartRate {
        value: f64::from(m.heart_rate.bpm()),
        source: Some(ctx.hr_source),
        activity: None,
        rr_intervals_ms: m
            .rr_intervals_ms()
            .map(|v| v.iter().map(|d| d.to_f64()).collect()),
        unit: RateUnit::PerMin,
    });
    Ok(ctx.reading(measurement, None, None, Vec::new()))
}

fn spo2(
    reading: &Spo2Pr,
    status: &PlxStatus,
    ch: Characteristic,
) -> Result<(Measurement, Vec<String>), Error> {
    let value = non_negative(number(reading.spo2, ch, "SpO2")?, ch, "SpO2")?;
    let measurement = Measurement::Spo2(Spo2 {
        value,
        pulse_rate: optional(Some(reading.pulse_rate)),
        signal_quality: Some(if status.signal_is_poor() {
            SignalQuality::Poor
        } else {
            SignalQuality::Good
        }),
        perfusion_index: optional(status.pulse_amplitude_index),
        unit: PercentUnit::Percent,
    });
    Ok((measurement, status.names()))
}

/// An SpO2 reading from a spot-check. The timestamp becomes `device_time` unless the
/// device says its clock is not set.
pub fn plx_spot_check(m: &PlxSpotCheck, ctx: &ReadingContext) -> Result<Reading, Error> {
    let (measurement, status) = spo2(&m.reading, &m.status, Characteristic::PlxSpotCheck)?;
    let device_time = if m.device_clock_not_set {
        None
    } else {
        m.timestamp.and_then(|t| t.to_naive())
    };
    Ok(ctx.reading(measurement, device_time, None, status))
}

/// An SpO2 reading from a continuous measurement (the normal SpO2 and pulse rate).
pub fn plx_continuous(m: &PlxContinuous, ctx: &ReadingContext) -> Result<Reading, Error> {
    let (measurement, status) = spo2(&m.reading, &m.status, Characteristic::PlxContinuous)?;
    Ok(ctx.reading(measurement, None, None, status))
}

/// A body-temperature reading; the type becomes a site or a status entry.
pub fn temperature(m: &TemperatureMeasurement, ctx: &ReadingContext) -> Result<Reading, Error> {
    const CH: Characteristic = Characteristic::TemperatureMeasurement;
    let value = m.temperature.value().map(|d| d.to_f64()).ok_or_else(|| {
        Error::no_reading(
            CH,
            format!("the temperature is {}, not a number", m.temperature.kind()),
        )
    })?;
    let site = match m.temperature_type {
        Some(1) => Some(TemperatureSite::Axillary),
        Some(6) => Some(TemperatureSite::Oral),
        Some(3 | 9) => Some(TemperatureSite::Tympanic),
        Some(7) => Some(TemperatureSite::Rectal),
        _ => None,
    };
    let status = match (site, m.temperature_type_name()) {
        (None, Some(name)) => vec![format!("temperature_type:{name}")],
        _ => Vec::new(),
    };
    let measurement = Measurement::Temperature(Temperature {
        value,
        site,
        unit: match m.unit {
            TemperatureUnit::Celsius => ModelTemperatureUnit::Cel,
            TemperatureUnit::Fahrenheit => ModelTemperatureUnit::DegF,
        },
    });
    let device_time = m.timestamp.and_then(|t| t.to_naive());
    Ok(ctx.reading(measurement, device_time, None, status))
}

/// A body-weight reading.
pub fn weight(m: &WeightMeasurement, ctx: &ReadingContext) -> Result<Reading, Error> {
    let value = m.weight().map(|d| d.to_f64()).ok_or_else(|| {
        Error::no_reading(
            Characteristic::WeightMeasurement,
            "the scale reports the measurement unsuccessful (0xFFFF)",
        )
    })?;
    let measurement = Measurement::Weight(Weight {
        value,
        unit: match m.unit_system {
            UnitSystem::Si => WeightUnit::Kg,
            UnitSystem::Imperial => WeightUnit::LbAv,
        },
    });
    let device_time = m.timestamp.and_then(|t| t.to_naive());
    Ok(ctx.reading(measurement, device_time, None, Vec::new()))
}

/// The PMD epoch, 2000-01-01T00:00:00Z.
fn pmd_epoch() -> Option<chrono::DateTime<Utc>> {
    Some(
        NaiveDate::from_ymd_opt(2000, 1, 1)?
            .and_hms_opt(0, 0, 0)?
            .and_utc(),
    )
}

/// The instant of a frame's **first** sample. The frame timestamp belongs to the last
/// sample, and samples are `1/sample_rate_hz` apart (the nominal rate), so the first is
/// `(n − 1) / rate` earlier, rounded to the nearest ns (halves up). `None` for a
/// frame without samples, a zero rate or an instant chrono cannot hold.
pub fn first_sample_instant(
    frame: &DataFrame,
    sample_rate_hz: u16,
) -> Option<chrono::DateTime<Utc>> {
    let n = frame.samples_uv.len();
    if n == 0 || sample_rate_hz == 0 {
        return None;
    }
    let rate = i128::from(sample_rate_hz);
    let gaps = i128::try_from(n - 1).ok()?;
    // round(gaps × 1e9 / rate) = floor((2 × gaps × 1e9 + rate) / (2 × rate)).
    let span_ns = (2 * gaps * 1_000_000_000 + rate) / (2 * rate);
    let first_ns = i128::from(frame.timestamp_ns) - span_ns;
    let secs = i64::try_from(first_ns.div_euclid(1_000_000_000)).ok()?;
    let nanos = i64::try_from(first_ns.rem_euclid(1_000_000_000)).ok()?;
    pmd_epoch()?
        .checked_add_signed(TimeDelta::try_seconds(secs)?)?
        .checked_add_signed(TimeDelta::nanoseconds(nanos))
}

/// An `ecg_waveform` reading (lead I) from a Polar ECG frame. `sample_rate_hz` is the
/// negotiated rate (the settings of the start command or the settings response);
/// `time` is the first sample's instant, shown in `offset`.
pub fn ecg_waveform(
    frame: &DataFrame,
    sample_rate_hz: u16,
    device_id: &DeviceId,
    offset: FixedOffset,
) -> Result<Reading, Error> {
    const CH: Characteristic = Characteristic::PmdData;
    if sample_rate_hz == 0 {
        return Err(Error::no_reading(CH, "the sample rate is 0 Hz"));
    }
    if frame.samples_uv.is_empty() {
        return Err(Error::no_reading(CH, "the frame carries no sample"));
    }
    let first = first_sample_instant(frame, sample_rate_hz)
        .ok_or_else(|| Error::no_reading(CH, "the frame's time is out of range"))?;
    Ok(Reading {
        device_id: device_id.clone(),
        record_seq: None,
        time: first.with_timezone(&offset),
        device_time: None,
        measurement: Measurement::EcgWaveform(EcgWaveform {
            sample_rate_hz: f64::from(sample_rate_hz),
            leads: EcgLeads::Single {
                lead: "I".to_owned(),
                samples_uv: frame.samples_uv.clone(),
            },
            unit: VoltageUnit::MicroVolt,
        }),
        status: Vec::new(),
        symptoms: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpm::{BpOptional, MeasurementStatus};
    use crate::datetime::DateTime;
    use crate::glucose::GlucoseSample;
    use crate::hrm::HeartRateValue;
    use crate::pmd::H10_UNSET_CLOCK_EPOCH_NS;
    use crate::weight::BmiHeight;

    fn ctx() -> ReadingContext {
        ReadingContext::new(
            DeviceId::parse("dev-1").unwrap(),
            chrono::DateTime::parse_from_rfc3339("2026-11-22T08:00:00+08:00").unwrap(),
        )
    }

    fn base() -> DateTime {
        DateTime {
            year: 2026,
            month: 11,
            day: 22,
            hours: 7,
            minutes: 58,
            seconds: 0,
        }
    }

    fn glucose_m(concentration: SFloat, unit: ConcentrationUnit) -> GlucoseMeasurement {
        GlucoseMeasurement {
            sequence_number: 17,
            base_time: base(),
            time_offset_min: Some(2),
            sample: Some(GlucoseSample {
                concentration,
                sample_type: 1,
                sample_location: 1,
            }),
            unit,
            sensor_status: None,
            context_follows: true,
        }
    }

    fn glucose_of(r: &Reading) -> &Glucose {
        match &r.measurement {
            Measurement::Glucose(g) => g,
            other => panic!("not glucose: {other:?}"),
        }
    }

    /// spec/decode.md §6: kg/L × 100 000 = mg/dL; 0xB06E = 110e−5 kg/L = 110 mg/dL.
    #[test]
    fn a_kg_per_l_glucose_becomes_mg_per_dl() {
        let m = glucose_m(SFloat::from_raw(0xB06E), ConcentrationUnit::KgPerL);
        let r = glucose(&m, None, &ctx()).unwrap();
        let g = glucose_of(&r);
        assert_eq!(g.value, Some(110.0));
        assert_eq!(g.unit, GlucoseUnit::MgPerDl);
        assert_eq!(g.flag, None);
        assert_eq!(g.context, None);
        assert_eq!(g.sample_type.as_deref(), Some("capillary_whole_blood"));
        assert_eq!(r.record_seq, Some(17));
        // base 07:58:00 + 2 min.
        assert_eq!(r.device_time.unwrap().to_string(), "2026-11-22 08:00:00");
    }

    /// spec/decode.md §6: mol/L × 1 000 = mmol/L; 0xC043 = 67e−4 mol/L = 6.7 mmol/L,
    /// exactly the f64 of 6.7.
    #[test]
    fn a_mol_per_l_glucose_becomes_mmol_per_l() {
        let m = glucose_m(SFloat::from_raw(0xC043), ConcentrationUnit::MolPerL);
        let r = glucose(&m, None, &ctx()).unwrap();
        assert_eq!(glucose_of(&r).value, Some(6.7));
        assert_eq!(glucose_of(&r).unit, GlucoseUnit::MmolPerL);
    }

    /// spec/decode.md §6: +INF or status bit 5 → HI, −INF or bit 6 → LO, value null.
    #[test]
    fn infinities_and_status_bits_become_hi_and_lo_flags() {
        let mut m = glucose_m(SFloat::POSITIVE_INFINITY, ConcentrationUnit::MolPerL);
        let r = glucose(&m, None, &ctx()).unwrap();
        assert_eq!(glucose_of(&r).flag, Some(GlucoseFlag::Hi));
        assert_eq!(glucose_of(&r).value, None);
        m.sample = m.sample.map(|s| GlucoseSample {
            concentration: SFloat::NEGATIVE_INFINITY,
            ..s
        });
        assert_eq!(
            glucose_of(&glucose(&m, None, &ctx()).unwrap()).flag,
            Some(GlucoseFlag::Lo)
        );
        // A number with status bit 5 set: HI wins, value null, bit named in status.
        let mut m = glucose_m(SFloat::number(333, -4).unwrap(), ConcentrationUnit::MolPerL);
        m.sensor_status = Some(STATUS_RESULT_HIGH);
        let r = glucose(&m, None, &ctx()).unwrap();
        assert_eq!(glucose_of(&r).flag, Some(GlucoseFlag::Hi));
        assert_eq!(glucose_of(&r).value, None);
        assert_eq!(r.status, ["result_higher_than_device_can_process"]);
        // NaN with bit 6: LO.
        let mut m = glucose_m(SFloat::NAN, ConcentrationUnit::KgPerL);
        m.sensor_status = Some(STATUS_RESULT_LOW);
        assert_eq!(
            glucose_of(&glucose(&m, None, &ctx()).unwrap()).flag,
            Some(GlucoseFlag::Lo)
        );
        // Both: contradictory, no reading.
        m.sensor_status = Some(STATUS_RESULT_LOW | STATUS_RESULT_HIGH);
        assert!(matches!(
            glucose(&m, None, &ctx()),
            Err(Error::NoReading { .. })
        ));
    }

    /// spec/decode.md §1 and §6: a special value never becomes a number.
    #[test]
    fn a_nan_glucose_without_flags_is_no_reading() {
        for kind in [Kind::NaN, Kind::NRes, Kind::Reserved] {
            let m = glucose_m(SFloat::special(kind).unwrap(), ConcentrationUnit::KgPerL);
            let e = glucose(&m, None, &ctx()).unwrap_err();
            assert!(e.to_string().contains(kind.as_str()), "{e}");
        }
    }

    /// spec/decode.md §6: control-solution readings are not patient readings.
    #[test]
    fn a_control_solution_test_is_refused_with_a_typed_error() {
        let mut m = glucose_m(SFloat::from_raw(0xB06E), ConcentrationUnit::KgPerL);
        m.sample = m.sample.map(|s| GlucoseSample {
            sample_type: 10,
            ..s
        });
        let e = glucose(&m, None, &ctx()).unwrap_err();
        assert_eq!(
            e,
            Error::ControlSolution {
                characteristic: Characteristic::GlucoseMeasurement,
                sequence_number: 17
            }
        );
        assert!(e.to_string().contains("not a patient reading"), "{e}");
        // Location 4 (control solution) too.
        m.sample = m.sample.map(|s| GlucoseSample {
            sample_type: 1,
            sample_location: 4,
            ..s
        });
        assert!(matches!(
            glucose(&m, None, &ctx()),
            Err(Error::ControlSolution { .. })
        ));
    }

    /// spec/decode.md §6: the context's meal; casual → random.
    #[test]
    fn the_context_meal_becomes_the_glucose_context() {
        let m = glucose_m(SFloat::from_raw(0xB06E), ConcentrationUnit::KgPerL);
        for (meal, expected) in [
            (1, Some(MealContext::Preprandial)),
            (2, Some(MealContext::Postprandial)),
            (3, Some(MealContext::Fasting)),
            (4, Some(MealContext::Random)),
            (5, Some(MealContext::Bedtime)),
            (6, None),
        ] {
            let c = GlucoseContext {
                sequence_number: 17,
                extended_flags: None,
                carbohydrate: None,
                meal: Some(meal),
                tester_health: None,
                exercise: None,
                medication: None,
                medication_unit: crate::glucose::MedicationUnit::Kg,
                hba1c_pct: None,
            };
            let r = glucose(&m, Some(&c), &ctx()).unwrap();
            assert_eq!(glucose_of(&r).context, expected, "meal {meal}");
            let other = GlucoseContext {
                sequence_number: 18,
                ..c
            };
            assert!(matches!(
                glucose(&m, Some(&other), &ctx()),
                Err(Error::Invalid { .. })
            ));
        }
    }

    fn bpm(systolic: SFloat, status: Option<u16>) -> BloodPressureMeasurement {
        BloodPressureMeasurement {
            unit: PressureUnit::KPa,
            systolic,
            diastolic: SFloat::number(110, -1).unwrap(),
            mean_arterial_pressure: SFloat::NAN,
            optional: BpOptional {
                timestamp: Some(base()),
                pulse_rate: Some(SFloat::number(72, 0).unwrap()),
                user_id: Some(1),
                measurement_status: status.map(MeasurementStatus),
            },
        }
    }

    /// spec/decode.md §6 BPM: kPa stays kPa; a NaN mean is left out; status by name.
    #[test]
    fn a_blood_pressure_keeps_its_unit_and_names_its_status() {
        let r =
            blood_pressure(&bpm(SFloat::number(240, -1).unwrap(), Some(0x0004)), &ctx()).unwrap();
        let Measurement::Bp(bp) = &r.measurement else {
            panic!()
        };
        assert_eq!(
            (bp.systolic, bp.diastolic, bp.mean, bp.pulse),
            (24.0, 11.0, None, Some(72.0))
        );
        assert_eq!(bp.unit, ModelPressureUnit::KPa);
        assert_eq!(r.status, ["irregular_pulse_detected"]);
        assert_eq!(r.device_time.unwrap().to_string(), "2026-11-22 07:58:00");
        let e = blood_pressure(&bpm(SFloat::NRES, None), &ctx()).unwrap_err();
        assert!(e.to_string().contains("systolic is NRes"), "{e}");
    }

    /// spec/decode.md §6 HRM: value, RR in ms, the configured source.
    #[test]
    fn a_heart_rate_carries_rr_intervals_in_ms_and_the_source() {
        let m = HeartRateMeasurement {
            heart_rate: HeartRateValue::Uint8(58),
            sensor_contact_bits: 3,
            energy_expended_kj: None,
            rr_intervals: Some(vec![424, 1080]),
        };
        let mut c = ctx();
        let r = heart_rate(&m, &c).unwrap();
        let Measurement::HeartRate(h) = &r.measurement else {
            panic!()
        };
        assert_eq!(h.value, 58.0);
        assert_eq!(h.source, Some(HrSource::HrStrap));
        assert_eq!(h.rr_intervals_ms, Some(vec![414.062, 1054.688]));
        c.hr_source = HrSource::EcgPatch;
        let r = heart_rate(&m, &c).unwrap();
        let Measurement::HeartRate(h) = &r.measurement else {
            panic!()
        };
        assert_eq!(h.source, Some(HrSource::EcgPatch));
    }

    /// spec/decode.md §6 PLX: any listed bit → poor, else good; PAI → perfusion index.
    #[test]
    fn plx_status_bits_set_the_signal_quality() {
        let mut m = PlxSpotCheck {
            reading: Spo2Pr {
                spo2: SFloat::number(97, 0).unwrap(),
                pulse_rate: SFloat::number(72, 0).unwrap(),
            },
            timestamp: Some(base()),
            status: PlxStatus {
                measurement_status: Some(0x0080),
                device_sensor_status: Some(0),
                pulse_amplitude_index: Some(SFloat::number(32, -1).unwrap()),
            },
            device_clock_not_set: false,
        };
        let r = plx_spot_check(&m, &ctx()).unwrap();
        let Measurement::Spo2(s) = &r.measurement else {
            panic!()
        };
        assert_eq!(s.signal_quality, Some(SignalQuality::Good));
        assert_eq!(s.perfusion_index, Some(3.2));
        assert_eq!(s.pulse_rate, Some(72.0));
        assert_eq!(r.status, ["validated_data"]);
        assert!(r.device_time.is_some());
        m.status.device_sensor_status = Some(1 << 5);
        m.device_clock_not_set = true;
        let r = plx_spot_check(&m, &ctx()).unwrap();
        let Measurement::Spo2(s) = &r.measurement else {
            panic!()
        };
        assert_eq!(s.signal_quality, Some(SignalQuality::Poor));
        assert_eq!(r.status, ["validated_data", "low_perfusion_detected"]);
        assert_eq!(r.device_time, None, "the device clock is not set");
        let c = PlxContinuous {
            reading: m.reading,
            fast: None,
            slow: None,
            status: PlxStatus {
                measurement_status: Some(1 << 15),
                device_sensor_status: None,
                pulse_amplitude_index: None,
            },
        };
        let r = plx_continuous(&c, &ctx()).unwrap();
        let Measurement::Spo2(s) = &r.measurement else {
            panic!()
        };
        assert_eq!(s.signal_quality, Some(SignalQuality::Poor));
    }

    /// spec/decode.md §6 temperature: type → site, or `temperature_type:<name>`.
    #[test]
    fn temperature_types_map_to_sites_or_status() {
        let mut m = TemperatureMeasurement {
            temperature: crate::ieee11073::Float::number(986, -1).unwrap(),
            unit: TemperatureUnit::Fahrenheit,
            timestamp: None,
            temperature_type: None,
        };
        for (ty, site, status) in [
            (None, None, None),
            (Some(1), Some(TemperatureSite::Axillary), None),
            (Some(2), None, Some("temperature_type:body_general")),
            (Some(3), Some(TemperatureSite::Tympanic), None),
            (Some(4), None, Some("temperature_type:finger")),
            (
                Some(5),
                None,
                Some("temperature_type:gastrointestinal_tract"),
            ),
            (Some(6), Some(TemperatureSite::Oral), None),
            (Some(7), Some(TemperatureSite::Rectal), None),
            (Some(8), None, Some("temperature_type:toe")),
            (Some(9), Some(TemperatureSite::Tympanic), None),
            (Some(0), None, Some("temperature_type:reserved")),
        ] {
            m.temperature_type = ty;
            let r = temperature(&m, &ctx()).unwrap();
            let Measurement::Temperature(t) = &r.measurement else {
                panic!()
            };
            assert_eq!(t.value, 98.6);
            assert_eq!(t.unit, ModelTemperatureUnit::DegF);
            assert_eq!(t.site, site, "{ty:?}");
            assert_eq!(r.status, status.into_iter().collect::<Vec<_>>(), "{ty:?}");
        }
    }

    /// spec/decode.md §6 weight: kg or [lb_av]; unsuccessful is no reading.
    #[test]
    fn weights_keep_their_unit_and_unsuccessful_ones_are_refused() {
        let mut m = WeightMeasurement {
            unit_system: UnitSystem::Si,
            weight_raw: 13001,
            timestamp: None,
            user_id: None,
            bmi_height: Some(BmiHeight {
                bmi_raw: 225,
                height_raw: 1700,
            }),
        };
        let r = weight(&m, &ctx()).unwrap();
        assert_eq!(
            r.measurement,
            Measurement::Weight(Weight {
                value: 65.005,
                unit: WeightUnit::Kg
            })
        );
        m.unit_system = UnitSystem::Imperial;
        m.weight_raw = 14330;
        let r = weight(&m, &ctx()).unwrap();
        assert_eq!(
            r.measurement,
            Measurement::Weight(Weight {
                value: 143.3,
                unit: WeightUnit::LbAv
            })
        );
        m.weight_raw = 0xFFFF;
        assert!(matches!(weight(&m, &ctx()), Err(Error::NoReading { .. })));
    }

    /// spec/decode.md §4 and §6: the frame timestamp is the last sample's; with 73
    /// samples at 130 Hz the first is 72/130 s = 553 846 153.8 ns → 553 846 154 ns
    /// earlier.
    #[test]
    fn an_ecg_frame_time_is_its_first_samples_instant() {
        // Last sample at 2019-01-01T00:00:01Z (an H10 whose clock was never set).
        let last = H10_UNSET_CLOCK_EPOCH_NS + 1_000_000_000;
        let frame = DataFrame::ecg(last, vec![5; 73]);
        let first = first_sample_instant(&frame, 130).unwrap();
        assert_eq!(
            first.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "2019-01-01T00:00:00.446153846Z"
        );
        let r = ecg_waveform(
            &frame,
            130,
            &DeviceId::parse("h10-1").unwrap(),
            FixedOffset::east_opt(8 * 3600).unwrap(),
        )
        .unwrap();
        assert_eq!(
            r.time.to_rfc3339_opts(chrono::SecondsFormat::Nanos, false),
            "2019-01-01T08:00:00.446153846+08:00"
        );
        let Measurement::EcgWaveform(w) = &r.measurement else {
            panic!()
        };
        assert_eq!(w.sample_rate_hz, 130.0);
        assert_eq!(w.leads.lead_names(), ["I"]);
        assert_eq!(w.leads.samples_per_lead(), 73);
        // One sample: the first is the last.
        let one = DataFrame::ecg(last, vec![1]);
        assert_eq!(
            first_sample_instant(&one, 130).unwrap(),
            first_sample_instant(&DataFrame::ecg(last, vec![1]), 1).unwrap()
        );
        // The epoch is 2000-01-01T00:00:00Z.
        let zero = DataFrame::ecg(0, vec![1]);
        assert_eq!(
            first_sample_instant(&zero, 130).unwrap().to_rfc3339(),
            "2000-01-01T00:00:00+00:00"
        );
        // Before the epoch is fine (a frame whose first sample precedes it).
        let early = DataFrame::ecg(0, vec![1, 2]);
        assert_eq!(
            first_sample_instant(&early, 1).unwrap().to_rfc3339(),
            "1999-12-31T23:59:59+00:00"
        );
        assert!(ecg_waveform(&frame, 0, &r.device_id, FixedOffset::east_opt(0).unwrap()).is_err());
    }
}
