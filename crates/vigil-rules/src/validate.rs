//! The plausibility validator (`clinical/rules.md` §3.1, §0.6, §0.8), applied to every
//! reading before any rule.
//!
//! Checks, in this order (the first failure decides the reason):
//!
//! 1. **Timestamp** (`invalid_timestamp`): measured before 2010-01-01T00:00:00Z (a reset
//!    clock), before the device's registration, or more than 5 minutes after its
//!    receipt. Such a reading is never evaluated.
//! 2. **Signal** (`low_signal_quality`): an SpO2 whose oximeter reported poor signal or
//!    low perfusion.
//! 3. **Ranges** (`out_of_range`, `diastolic_ge_systolic`, `unit_suspect`), on canonical
//!    values at rule precision:
//!
//! | measurement | accepted | otherwise |
//! |---|---|---|
//! | systolic | 40–300 mmHg | `out_of_range`; diastolic ≥ systolic → `diastolic_ge_systolic` |
//! | diastolic | 20–200 mmHg | `out_of_range` |
//! | pulse / heart rate / oximeter pulse rate | 25–250 /min | `out_of_range` |
//! | SpO2 | 50–100 % (50–69 accepted with a note: outside the accuracy range) | `out_of_range` |
//! | glucose | 0.6–33.3 mmol/L; `HI`/`LO` flags are clinical, always accepted | `unit_suspect` if the other unit makes it plausible, else `out_of_range` |
//! | temperature | 32.0–43.0 °C | `unit_suspect` if the other unit makes it plausible (90–110 "°C"), else `out_of_range` |
//! | weight | 20–300 kg, and within 5 kg of the reference weight (§0.8) | `out_of_range`; a jump > 5 kg → `unit_suspect` |
//!
//! ECG summaries and waveforms carry no range of §3.1 and pass step 3 as they are.
//!
//! A reading measured more than 24 h before its receipt is accepted with the note
//! [`Note::Late`]: it is stored and feeds trend windows, but never pages (§0.2, §0.8).

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use vigil_model::canonical::Canonical;
use vigil_model::measurement::{Measurement, Weight};
use vigil_model::reading::Reading;
use vigil_model::round::round_to_i32;
use vigil_model::units::{GlucoseUnit, TemperatureUnit, WeightUnit};
use vigil_model::vocab::{QuarantineReason, SignalQuality};

/// How far in the future (relative to receipt) a measurement time may be.
pub const MAX_FUTURE: TimeDelta = TimeDelta::minutes(5);
/// A reading measured longer than this before its receipt is historical (late).
pub const LATE_AFTER: TimeDelta = TimeDelta::hours(24);
/// A weight further than this from the reference weight is suspect (kg).
pub const MAX_WEIGHT_CHANGE_KG: f64 = 5.0;

const GLUCOSE_RANGE: std::ops::RangeInclusive<f64> = 0.6..=33.3;
const TEMPERATURE_RANGE: std::ops::RangeInclusive<f64> = 32.0..=43.0;
const WEIGHT_RANGE: std::ops::RangeInclusive<f64> = 20.0..=300.0;

/// The earliest valid measurement time: a clock before this was reset.
pub fn earliest_valid_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2010, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// What the validator knows besides the reading itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    /// When the platform received the reading, by its own (injected) clock.
    pub received: DateTime<Utc>,
    /// When the device was registered; readings measured before it are invalid.
    pub device_registered: Option<DateTime<Utc>>,
    /// The most recent accepted weight measured within the 48 h before this reading
    /// (§0.8), in kg. A rejected weight is never the reference.
    pub reference_weight_kg: Option<f64>,
}

impl Context {
    /// A context with only the receipt time known.
    pub fn received_at(received: DateTime<Utc>) -> Context {
        Context {
            received,
            device_registered: None,
            reference_weight_kg: None,
        }
    }
}

/// Something worth knowing about an accepted reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Note {
    /// Measured more than 24 h before receipt: stored, feeds trend windows, never pages.
    Late,
    /// SpO2 of 50–69 %: accepted and evaluated, but outside the range where oximeter
    /// accuracy is specified (70–100 %).
    Spo2OutsideAccuracyRange,
}

/// A reading that passed the validator, with its canonical form. Only [`validate`]
/// makes one, so a value of this type is proof of validation.
#[derive(Debug, Clone, PartialEq)]
pub struct Validated {
    reading: Reading,
    canonical: Canonical,
    notes: Vec<Note>,
    received: DateTime<Utc>,
}

impl Validated {
    pub fn reading(&self) -> &Reading {
        &self.reading
    }
    pub fn canonical(&self) -> &Canonical {
        &self.canonical
    }
    pub fn notes(&self) -> &[Note] {
        &self.notes
    }
    /// The receipt time the reading was validated against.
    pub fn received(&self) -> DateTime<Utc> {
        self.received
    }
    /// Measured more than 24 h before receipt.
    pub fn is_late(&self) -> bool {
        self.notes.contains(&Note::Late)
    }
}

/// A reading the validator refused, handed back for quarantine with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub reading: Reading,
    pub reason: QuarantineReason,
    /// What is wrong and what to do, in words a doctor or a patient's helper can act on.
    pub message: String,
}

/// Validates one reading.
pub fn validate(reading: Reading, ctx: &Context) -> Result<Validated, Box<Rejected>> {
    let canonical = reading.measurement.canonical();
    let mut notes = Vec::new();
    let verdict = check_time(&reading, ctx, &mut notes)
        .and_then(|()| check_signal(&reading.measurement))
        .and_then(|()| check_ranges(&reading.measurement, ctx, &mut notes));
    match verdict {
        Ok(()) => Ok(Validated {
            reading,
            canonical,
            notes,
            received: ctx.received,
        }),
        Err((reason, message)) => Err(Box::new(Rejected {
            reading,
            reason,
            message,
        })),
    }
}

type Verdict = Result<(), (QuarantineReason, String)>;

fn fail(reason: QuarantineReason, message: String) -> Verdict {
    Err((reason, message))
}

fn check_time(reading: &Reading, ctx: &Context, notes: &mut Vec<Note>) -> Verdict {
    let measured = reading.time.with_timezone(&Utc);
    let stamp = reading.time.to_rfc3339();
    if measured < earliest_valid_time() {
        return fail(
            QuarantineReason::InvalidTimestamp,
            format!(
                "measured at {stamp}, before 2010: the device clock was probably reset; set its clock and measure again"
            ),
        );
    }
    if let Some(registered) = ctx.device_registered
        && measured < registered
    {
        return fail(
            QuarantineReason::InvalidTimestamp,
            format!(
                "measured at {stamp}, before the device was registered ({}): check the device clock",
                registered.to_rfc3339()
            ),
        );
    }
    if measured > ctx.received + MAX_FUTURE {
        let ahead = (measured - ctx.received).num_minutes();
        return fail(
            QuarantineReason::InvalidTimestamp,
            format!(
                "measured at {stamp}, {ahead} min after it was received: the device or gateway clock runs ahead; correct it"
            ),
        );
    }
    if ctx.received - measured > LATE_AFTER {
        notes.push(Note::Late);
    }
    Ok(())
}

fn check_signal(m: &Measurement) -> Verdict {
    match m {
        Measurement::Spo2(s) if s.signal_quality == Some(SignalQuality::Poor) => fail(
            QuarantineReason::LowSignalQuality,
            "the oximeter reported poor signal or low perfusion: warm the hand, keep still and measure again"
                .to_owned(),
        ),
        _ => Ok(()),
    }
}

fn in_range(what: &str, value: i32, lo: i32, hi: i32, unit: &str) -> Verdict {
    if (lo..=hi).contains(&value) {
        Ok(())
    } else {
        fail(
            QuarantineReason::OutOfRange,
            format!(
                "{what} {value} {unit} is outside the plausible {lo}–{hi} {unit}: measure again"
            ),
        )
    }
}

fn rate(what: &str, value: Option<i32>) -> Verdict {
    value.map_or(Ok(()), |v| in_range(what, v, 25, 250, "/min"))
}

fn check_ranges(m: &Measurement, ctx: &Context, notes: &mut Vec<Note>) -> Verdict {
    // The same conversions and rounding as `Measurement::canonical` (§0.12).
    match m {
        Measurement::Bp(b) => {
            let sys = b.unit.to_mmhg(b.systolic);
            let dia = b.unit.to_mmhg(b.diastolic);
            in_range("systolic", sys, 40, 300, "mmHg")?;
            in_range("diastolic", dia, 20, 200, "mmHg")?;
            if dia >= sys {
                return fail(
                    QuarantineReason::DiastolicGeSystolic,
                    format!(
                        "diastolic {dia} mmHg is not below systolic {sys} mmHg: the cuff probably slipped; measure again"
                    ),
                );
            }
            rate("pulse", b.pulse.map(round_to_i32))
        }
        Measurement::Glucose(g) => {
            // HI/LO are clinical findings, not data errors (§3.1); the flag wins.
            let (None, Some(v)) = (g.flag, g.value) else {
                return Ok(());
            };
            let c = g.unit.to_mmol_per_l(v);
            if GLUCOSE_RANGE.contains(&c) {
                return Ok(());
            }
            let (other, as_other) = match g.unit {
                GlucoseUnit::MmolPerL => {
                    (GlucoseUnit::MgPerDl, GlucoseUnit::MgPerDl.to_mmol_per_l(v))
                }
                GlucoseUnit::MgPerDl => (
                    GlucoseUnit::MmolPerL,
                    GlucoseUnit::MmolPerL.to_mmol_per_l(v),
                ),
            };
            if GLUCOSE_RANGE.contains(&as_other) {
                fail(
                    QuarantineReason::UnitSuspect,
                    format!(
                        "glucose {v} labelled {} is implausible, but as {other} it would be {as_other:.1} mmol/L: check the meter's unit setting and measure again",
                        g.unit
                    ),
                )
            } else {
                fail(
                    QuarantineReason::OutOfRange,
                    format!(
                        "glucose {c} mmol/L is outside the meter range 0.6–33.3 mmol/L: measure again"
                    ),
                )
            }
        }
        Measurement::Spo2(s) => {
            let percent = round_to_i32(s.value);
            if !(50..=100).contains(&percent) {
                return fail(
                    QuarantineReason::OutOfRange,
                    format!(
                        "SpO2 {percent} % is outside the plausible 50–100 %: check the probe and measure again"
                    ),
                );
            }
            if percent < 70 {
                notes.push(Note::Spo2OutsideAccuracyRange);
            }
            rate("pulse rate", s.pulse_rate.map(round_to_i32))
        }
        Measurement::HeartRate(h) => rate("heart rate", Some(round_to_i32(h.value))),
        Measurement::Temperature(t) => {
            let c = t.unit.to_celsius(t.value);
            if TEMPERATURE_RANGE.contains(&c) {
                return Ok(());
            }
            let (other, as_other) = match t.unit {
                TemperatureUnit::Cel => (
                    TemperatureUnit::DegF,
                    TemperatureUnit::DegF.to_celsius(t.value),
                ),
                TemperatureUnit::DegF => (
                    TemperatureUnit::Cel,
                    TemperatureUnit::Cel.to_celsius(t.value),
                ),
            };
            if TEMPERATURE_RANGE.contains(&as_other) {
                fail(
                    QuarantineReason::UnitSuspect,
                    format!(
                        "temperature {} labelled {} is implausible, but as {other} it would be {as_other:.1} °C: check the thermometer's unit setting",
                        t.value, t.unit
                    ),
                )
            } else {
                fail(
                    QuarantineReason::OutOfRange,
                    format!(
                        "temperature {c} °C is outside the plausible 32.0–43.0 °C: measure again"
                    ),
                )
            }
        }
        Measurement::Weight(w) => {
            let kg = w.unit.to_kg(w.value);
            if !WEIGHT_RANGE.contains(&kg) {
                return fail(
                    QuarantineReason::OutOfRange,
                    format!("weight {kg:.1} kg is outside the plausible 20–300 kg: weigh again"),
                );
            }
            match ctx.reference_weight_kg {
                Some(reference) => weight_change(w, reference),
                None => Ok(()),
            }
        }
        // ECG summaries and strips have no plausibility range in §3.1.
        Measurement::Ecg(_) | Measurement::EcgWaveform(_) => Ok(()),
    }
}

/// The weight plausibility check of §0.8 / §3.1: a weight more than 5 kg from the
/// reference weight (the most recent accepted weight measured within the preceding
/// 48 h) is `unit_suspect`. Public so a pipeline that learns the reference only
/// after validation (from its store) applies the same rule.
pub fn weight_change(w: &Weight, reference_kg: f64) -> Result<(), (QuarantineReason, String)> {
    let kg = w.unit.to_kg(w.value);
    if (kg - reference_kg).abs() <= MAX_WEIGHT_CHANGE_KG {
        return Ok(());
    }
    let jin_as_kg =
        w.unit == WeightUnit::Kg && (kg / 2.0 - reference_kg).abs() <= MAX_WEIGHT_CHANGE_KG;
    let hint = if jin_as_kg {
        "the scale may show 斤 labelled as kg"
    } else {
        "another family member may have used the scale, or its unit setting changed"
    };
    Err((
        QuarantineReason::UnitSuspect,
        format!(
            "weight {kg:.1} kg differs by more than {MAX_WEIGHT_CHANGE_KG} kg from the last weight ({reference_kg:.1} kg) within 48 h: {hint}"
        ),
    ))
}

/// How far back a reference weight may be (§0.8).
pub const WEIGHT_REFERENCE_WINDOW: TimeDelta = TimeDelta::hours(48);

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use vigil_model::DeviceId;
    use vigil_model::measurement::*;
    use vigil_model::units::*;

    const RECEIVED: &str = "2026-11-22T08:00:00+08:00";

    fn at(t: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
    }

    fn reading(m: Measurement) -> Reading {
        reading_at(m, "2026-11-22T07:58:00+08:00")
    }

    fn reading_at(m: Measurement, time: &str) -> Reading {
        Reading {
            device_id: DeviceId::parse("dev-1").unwrap(),
            record_seq: None,
            time: DateTime::parse_from_rfc3339(time).unwrap(),
            device_time: None,
            measurement: m,
            status: vec![],
            symptoms: vec![],
        }
    }

    fn ctx() -> Context {
        Context::received_at(at(RECEIVED))
    }

    fn check(m: Measurement) -> Result<Validated, Box<Rejected>> {
        validate(reading(m), &ctx())
    }

    fn reason(m: Measurement) -> QuarantineReason {
        check(m).expect_err("should be rejected").reason
    }

    fn bp(sys: f64, dia: f64, unit: PressureUnit) -> Measurement {
        Measurement::Bp(BloodPressure {
            systolic: sys,
            diastolic: dia,
            mean: None,
            pulse: Some(72.0),
            unit,
        })
    }

    fn glucose(v: f64, unit: GlucoseUnit) -> Measurement {
        Measurement::Glucose(Glucose {
            value: Some(v),
            flag: None,
            context: None,
            sample_type: None,
            unit,
        })
    }

    fn temperature(v: f64, unit: TemperatureUnit) -> Measurement {
        Measurement::Temperature(Temperature {
            value: v,
            site: None,
            unit,
        })
    }

    fn weight(v: f64, unit: WeightUnit) -> Measurement {
        Measurement::Weight(Weight { value: v, unit })
    }

    fn spo2(v: f64, quality: Option<SignalQuality>) -> Measurement {
        Measurement::Spo2(Spo2 {
            value: v,
            pulse_rate: Some(80.0),
            signal_quality: quality,
            perfusion_index: None,
            unit: PercentUnit::Percent,
        })
    }

    /// §3.1 BP row: systolic 40–300, diastolic 20–200, closed bands.
    #[test]
    fn blood_pressure_bands_are_closed_and_diastolic_must_be_below_systolic() {
        assert!(check(bp(40.0, 20.0, PressureUnit::MmHg)).is_ok());
        assert!(check(bp(300.0, 200.0, PressureUnit::MmHg)).is_ok());
        assert_eq!(
            reason(bp(39.0, 20.0, PressureUnit::MmHg)),
            QuarantineReason::OutOfRange
        );
        assert_eq!(
            reason(bp(301.0, 90.0, PressureUnit::MmHg)),
            QuarantineReason::OutOfRange
        );
        assert_eq!(
            reason(bp(120.0, 19.0, PressureUnit::MmHg)),
            QuarantineReason::OutOfRange
        );
        assert_eq!(
            reason(bp(250.0, 201.0, PressureUnit::MmHg)),
            QuarantineReason::OutOfRange
        );
        let r = check(bp(90.0, 90.0, PressureUnit::MmHg)).unwrap_err();
        assert_eq!(r.reason, QuarantineReason::DiastolicGeSystolic);
        assert!(
            r.message
                .contains("diastolic 90 mmHg is not below systolic 90 mmHg"),
            "{}",
            r.message
        );
        // 300.4 rounds to 300 first (§0.12), so it is accepted.
        assert!(check(bp(300.4, 90.0, PressureUnit::MmHg)).is_ok());
    }

    /// §3.2: a kPa cuff's 24.0/14.7 is a valid 180/110 mmHg.
    #[test]
    fn a_kpa_cuff_is_validated_in_mmhg() {
        let v = check(bp(24.0, 14.7, PressureUnit::KPa)).unwrap();
        assert!(matches!(
            v.canonical(),
            Canonical::Bp {
                systolic_mmhg: 180,
                diastolic_mmhg: 110,
                ..
            }
        ));
    }

    /// §3.1 pulse/HR row: 25–250 /min, for cuff pulse, oximeter pulse rate and HR.
    #[test]
    fn rates_outside_25_to_250_are_out_of_range() {
        let mut m = bp(120.0, 80.0, PressureUnit::MmHg);
        if let Measurement::Bp(b) = &mut m {
            b.pulse = Some(251.0);
        }
        assert_eq!(reason(m), QuarantineReason::OutOfRange);
        let hr = |v| {
            Measurement::HeartRate(HeartRate {
                value: v,
                source: None,
                activity: None,
                rr_intervals_ms: None,
                unit: RateUnit::PerMin,
            })
        };
        assert!(check(hr(25.0)).is_ok());
        assert!(check(hr(250.0)).is_ok());
        assert_eq!(reason(hr(24.0)), QuarantineReason::OutOfRange);
    }

    /// §3.2 glucose traps: 126 "mmol/L" is really mg/dL; 5.4 "mg/dL" is really mmol/L
    /// (never a 0.3 mmol/L hypo).
    #[test]
    fn glucose_in_the_wrong_unit_is_unit_suspect_not_a_hypo() {
        let r = check(glucose(126.0, GlucoseUnit::MmolPerL)).unwrap_err();
        assert_eq!(r.reason, QuarantineReason::UnitSuspect);
        assert!(
            r.message.contains("as mg/dL it would be 7.0 mmol/L"),
            "{}",
            r.message
        );
        let r = check(glucose(5.4, GlucoseUnit::MgPerDl)).unwrap_err();
        assert_eq!(r.reason, QuarantineReason::UnitSuspect);
        assert!(
            r.message.contains("as mmol/L it would be 5.4 mmol/L"),
            "{}",
            r.message
        );
        // Implausible in both units.
        assert_eq!(
            reason(glucose(2000.0, GlucoseUnit::MmolPerL)),
            QuarantineReason::OutOfRange
        );
        assert_eq!(
            reason(glucose(0.1, GlucoseUnit::MmolPerL)),
            QuarantineReason::OutOfRange
        );
        // The meter range itself, in both units (10–600 mg/dL = 0.6–33.3 mmol/L).
        for ok in [
            glucose(0.6, GlucoseUnit::MmolPerL),
            glucose(33.3, GlucoseUnit::MmolPerL),
            glucose(10.0, GlucoseUnit::MgPerDl),
            glucose(600.0, GlucoseUnit::MgPerDl),
        ] {
            assert!(check(ok).is_ok());
        }
    }

    /// §3.1: LO/HI are clinical, handled by the rules, never rejected as data.
    #[test]
    fn hi_and_lo_flags_are_accepted_whatever_the_value() {
        for flag in [
            vigil_model::vocab::GlucoseFlag::Hi,
            vigil_model::vocab::GlucoseFlag::Lo,
        ] {
            let m = Measurement::Glucose(Glucose {
                value: Some(999.0),
                flag: Some(flag),
                context: None,
                sample_type: None,
                unit: GlucoseUnit::MmolPerL,
            });
            assert!(check(m).is_ok());
        }
    }

    /// §3.1 temperature row and §3.2: 90–110 labelled °C is a °F mislabel; 102.2 °F is 39.0 °C.
    #[test]
    fn temperature_mislabelled_as_celsius_is_unit_suspect() {
        let r = check(temperature(98.6, TemperatureUnit::Cel)).unwrap_err();
        assert_eq!(r.reason, QuarantineReason::UnitSuspect);
        assert!(
            r.message.contains("as [degF] it would be 37.0 °C"),
            "{}",
            r.message
        );
        assert_eq!(
            reason(temperature(37.0, TemperatureUnit::DegF)),
            QuarantineReason::UnitSuspect
        );
        assert_eq!(
            reason(temperature(45.0, TemperatureUnit::Cel)),
            QuarantineReason::OutOfRange
        );
        assert_eq!(
            reason(temperature(31.9, TemperatureUnit::Cel)),
            QuarantineReason::OutOfRange
        );
        assert!(check(temperature(32.0, TemperatureUnit::Cel)).is_ok());
        assert!(check(temperature(43.0, TemperatureUnit::Cel)).is_ok());
        let v = check(temperature(102.2, TemperatureUnit::DegF)).unwrap();
        assert!(
            matches!(v.canonical(), Canonical::Temperature { celsius, .. } if *celsius == 39.0)
        );
    }

    /// §3.1 weight row, §0.8 and §3.2: 130 "kg" from a 65 kg patient is 130 斤.
    #[test]
    fn a_weight_jump_over_5_kg_is_unit_suspect_and_names_the_jin_trap() {
        let mut c = ctx();
        c.reference_weight_kg = Some(65.0);
        let r = validate(reading(weight(130.0, WeightUnit::Kg)), &c).unwrap_err();
        assert_eq!(r.reason, QuarantineReason::UnitSuspect);
        assert!(r.message.contains("斤"), "{}", r.message);
        let r = validate(reading(weight(72.0, WeightUnit::Kg)), &c).unwrap_err();
        assert!(r.message.contains("another family member"), "{}", r.message);
        assert!(validate(reading(weight(70.0, WeightUnit::Kg)), &c).is_ok());
        assert!(validate(reading(weight(130.0, WeightUnit::Jin)), &c).is_ok());
        // Without a reference (none within 48 h) only the range applies.
        assert!(check(weight(130.0, WeightUnit::Kg)).is_ok());
        assert_eq!(
            reason(weight(19.9, WeightUnit::Kg)),
            QuarantineReason::OutOfRange
        );
        assert_eq!(
            reason(weight(700.0, WeightUnit::LbAv)),
            QuarantineReason::OutOfRange
        );
    }

    /// §3.1 SpO2 rows: >100 or <50 rejected; 50–69 accepted with a note; poor signal quarantined.
    #[test]
    fn spo2_range_accuracy_note_and_signal_quality() {
        assert_eq!(reason(spo2(101.0, None)), QuarantineReason::OutOfRange);
        assert_eq!(reason(spo2(49.0, None)), QuarantineReason::OutOfRange);
        let v = check(spo2(65.0, Some(SignalQuality::Good))).unwrap();
        assert_eq!(v.notes(), [Note::Spo2OutsideAccuracyRange]);
        assert!(check(spo2(70.0, None)).unwrap().notes().is_empty());
        let r = check(spo2(97.0, Some(SignalQuality::Poor))).unwrap_err();
        assert_eq!(r.reason, QuarantineReason::LowSignalQuality);
    }

    /// §0.6: before 2010, before registration, or more than 5 min after receipt.
    #[test]
    fn invalid_device_clocks_are_rejected_before_anything_else() {
        let m = || bp(400.0, 90.0, PressureUnit::MmHg); // also out of range: time wins
        let r = validate(reading_at(m(), "2000-01-01T00:00:00+08:00"), &ctx()).unwrap_err();
        assert_eq!(r.reason, QuarantineReason::InvalidTimestamp);
        assert!(
            r.message.contains("clock was probably reset"),
            "{}",
            r.message
        );

        let mut c = ctx();
        c.device_registered = Some(at("2026-11-01T00:00:00+08:00"));
        let r = validate(reading_at(m(), "2026-10-31T23:59:59+08:00"), &c).unwrap_err();
        assert_eq!(r.reason, QuarantineReason::InvalidTimestamp);
        assert!(
            r.message.contains("before the device was registered"),
            "{}",
            r.message
        );

        let ok = bp(120.0, 80.0, PressureUnit::MmHg);
        assert!(validate(reading_at(ok.clone(), "2026-11-22T08:05:00+08:00"), &ctx()).is_ok());
        let r = validate(reading_at(ok, "2026-11-22T08:05:01+08:00"), &ctx()).unwrap_err();
        assert_eq!(r.reason, QuarantineReason::InvalidTimestamp);
        assert!(r.message.contains("runs ahead"), "{}", r.message);
    }

    /// §0.2: more than 24 h before receipt is historical: accepted, noted late.
    #[test]
    fn a_reading_over_24_hours_old_is_accepted_as_late() {
        let ok = || bp(120.0, 80.0, PressureUnit::MmHg);
        let v = validate(reading_at(ok(), "2026-11-21T07:59:59+08:00"), &ctx()).unwrap();
        assert!(v.is_late());
        let v = validate(reading_at(ok(), "2026-11-21T08:00:00+08:00"), &ctx()).unwrap();
        assert!(!v.is_late());
    }

    proptest::proptest! {
        /// Oracle for the BP row of §3.1 on whole-mmHg values.
        #[test]
        fn bp_is_accepted_exactly_inside_the_bands(sys in 0u16..400, dia in 0u16..300) {
            let accepted = check(bp(f64::from(sys), f64::from(dia), PressureUnit::MmHg)).is_ok();
            let expected = (40..=300).contains(&sys) && (20..=200).contains(&dia) && dia < sys;
            proptest::prop_assert_eq!(accepted, expected);
        }

        /// Oracle for the glucose row on tenths of mmol/L.
        #[test]
        fn glucose_in_mmol_is_accepted_exactly_inside_the_meter_range(tenths in 0u32..3000) {
            let v = f64::from(tenths) / 10.0;
            let accepted = check(glucose(v, GlucoseUnit::MmolPerL)).is_ok();
            proptest::prop_assert_eq!(accepted, (6..=333).contains(&tenths));
        }
    }

    #[test]
    fn ecg_readings_have_no_plausibility_range() {
        let m = Measurement::Ecg(EcgSummary {
            finding: vigil_model::vocab::EcgFinding::VentricularFibrillation,
            ventricular_rate: Some(320.0),
            duration_s: None,
            longest_rr_s: None,
            lead_config: None,
        });
        assert!(check(m).is_ok());
    }
}
