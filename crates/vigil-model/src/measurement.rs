//! Every reading type of wire contract v1 as a typed value.
//!
//! A [`Measurement`] is what a device measured, in the unit it reported. The wire
//! decoder builds one only after checking every field, so the invariants below hold
//! for any value that came off the wire:
//!
//! - every `f64` is finite, and quantities that cannot be negative are not;
//! - a glucose has a numeric `value`, a `flag`, or both (the flag wins);
//! - an ECG waveform has a positive sample rate and, per lead, at least one sample;
//!   a multi-lead waveform has one sample array per lead.
//!
//! Clinical plausibility (a systolic of 400) is *not* an invariant: such a reading is
//! well-formed and is quarantined later by the validator, with a reason.

use crate::units::{
    GlucoseUnit, PercentUnit, PressureUnit, RateUnit, TemperatureUnit, Unit, VoltageUnit,
    WeightUnit,
};
pub use crate::vocab::ReadingType;
use crate::vocab::{
    Activity, EcgFinding, GlucoseFlag, HrSource, LeadConfig, MealContext, SignalQuality,
    TemperatureSite,
};

/// A blood-pressure measurement. `pulse` is always in /min whatever `unit` says.
#[derive(Debug, Clone, PartialEq)]
pub struct BloodPressure {
    pub systolic: f64,
    pub diastolic: f64,
    pub mean: Option<f64>,
    pub pulse: Option<f64>,
    pub unit: PressureUnit,
}

/// A capillary glucose. `value` is `None` when the meter showed HI or LO.
#[derive(Debug, Clone, PartialEq)]
pub struct Glucose {
    pub value: Option<f64>,
    pub flag: Option<GlucoseFlag>,
    /// Meal context; `None` on the wire means `random`.
    pub context: Option<MealContext>,
    /// Free text ("capillary whole blood", ...).
    pub sample_type: Option<String>,
    pub unit: GlucoseUnit,
}

/// A pulse-oximeter spot or continuous reading.
#[derive(Debug, Clone, PartialEq)]
pub struct Spo2 {
    pub value: f64,
    pub pulse_rate: Option<f64>,
    pub signal_quality: Option<SignalQuality>,
    /// Perfusion index in %.
    pub perfusion_index: Option<f64>,
    pub unit: PercentUnit,
}

/// A heart rate, from whichever device.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartRate {
    pub value: f64,
    pub source: Option<HrSource>,
    pub activity: Option<Activity>,
    pub rr_intervals_ms: Option<Vec<f64>>,
    pub unit: RateUnit,
}

/// A body temperature.
#[derive(Debug, Clone, PartialEq)]
pub struct Temperature {
    pub value: f64,
    /// `None` on the wire means axillary.
    pub site: Option<TemperatureSite>,
    pub unit: TemperatureUnit,
}

/// A body weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Weight {
    pub value: f64,
    pub unit: WeightUnit,
}

/// A rhythm-episode summary from an ECG patch or 12-lead device (no unit).
#[derive(Debug, Clone, PartialEq)]
pub struct EcgSummary {
    pub finding: EcgFinding,
    pub ventricular_rate: Option<f64>,
    pub duration_s: Option<f64>,
    pub longest_rr_s: Option<f64>,
    pub lead_config: Option<LeadConfig>,
}

/// The samples of an ECG strip, in the form the wire used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EcgLeads {
    /// `"lead": "II", "samples_uv": [..]`
    Single { lead: String, samples_uv: Vec<i32> },
    /// `"leads": ["I", "II"], "samples_uv": [[..], [..]]`, one array per lead.
    Multi {
        leads: Vec<String>,
        samples_uv: Vec<Vec<i32>>,
    },
}

impl EcgLeads {
    /// The lead names, in order.
    pub fn lead_names(&self) -> Vec<&str> {
        match self {
            EcgLeads::Single { lead, .. } => vec![lead.as_str()],
            EcgLeads::Multi { leads, .. } => leads.iter().map(String::as_str).collect(),
        }
    }

    /// Samples in the longest lead (leads of one strip normally have equal length).
    pub fn samples_per_lead(&self) -> usize {
        match self {
            EcgLeads::Single { samples_uv, .. } => samples_uv.len(),
            EcgLeads::Multi { samples_uv, .. } => {
                samples_uv.iter().map(Vec::len).max().unwrap_or(0)
            }
        }
    }
}

/// An ECG strip; the reading's `time` is its first sample's.
#[derive(Debug, Clone, PartialEq)]
pub struct EcgWaveform {
    pub sample_rate_hz: f64,
    pub leads: EcgLeads,
    pub unit: VoltageUnit,
}

impl EcgWaveform {
    /// Length of the strip in seconds.
    pub fn duration_s(&self) -> f64 {
        self.leads.samples_per_lead() as f64 / self.sample_rate_hz
    }
}

/// What a device measured, in the unit it reported.
#[derive(Debug, Clone, PartialEq)]
pub enum Measurement {
    Bp(BloodPressure),
    Glucose(Glucose),
    Spo2(Spo2),
    HeartRate(HeartRate),
    Temperature(Temperature),
    Weight(Weight),
    Ecg(EcgSummary),
    EcgWaveform(EcgWaveform),
}

impl Measurement {
    /// The reading type on the wire.
    pub fn reading_type(&self) -> ReadingType {
        match self {
            Measurement::Bp(_) => ReadingType::Bp,
            Measurement::Glucose(_) => ReadingType::Glucose,
            Measurement::Spo2(_) => ReadingType::Spo2,
            Measurement::HeartRate(_) => ReadingType::HeartRate,
            Measurement::Temperature(_) => ReadingType::Temperature,
            Measurement::Weight(_) => ReadingType::Weight,
            Measurement::Ecg(_) => ReadingType::Ecg,
            Measurement::EcgWaveform(_) => ReadingType::EcgWaveform,
        }
    }

    /// The unit as reported (`None` for an ECG summary, which has none).
    pub fn unit(&self) -> Option<Unit> {
        Some(match self {
            Measurement::Bp(m) => m.unit.unit(),
            Measurement::Glucose(m) => m.unit.unit(),
            Measurement::Spo2(m) => m.unit.unit(),
            Measurement::HeartRate(m) => m.unit.unit(),
            Measurement::Temperature(m) => m.unit.unit(),
            Measurement::Weight(m) => m.unit.unit(),
            Measurement::Ecg(_) => return None,
            Measurement::EcgWaveform(m) => m.unit.unit(),
        })
    }
}

impl ReadingType {
    /// The units this type accepts on the wire (empty for `ecg`, which takes none).
    pub fn units(self) -> &'static [Unit] {
        match self {
            ReadingType::Bp => &[Unit::MmHg, Unit::KPa],
            ReadingType::Glucose => &[Unit::MmolPerL, Unit::MgPerDl],
            ReadingType::Spo2 => &[Unit::Percent],
            ReadingType::HeartRate => &[Unit::PerMin],
            ReadingType::Temperature => &[Unit::Cel, Unit::DegF],
            ReadingType::Weight => &[Unit::Kg, Unit::LbAv, Unit::Jin],
            ReadingType::Ecg => &[],
            ReadingType::EcgWaveform => &[Unit::MicroVolt],
        }
    }

    /// The accepted units as an English list for errors (`'mm[Hg]' or 'kPa'`); `None`
    /// for `ecg`, which takes no unit.
    pub fn accepted_units(self) -> Option<String> {
        let codes: Vec<String> = self.units().iter().map(|u| format!("'{u}'")).collect();
        match codes.split_last() {
            None => None,
            Some((last, [])) => Some(last.clone()),
            Some((last, rest)) => Some(format!("{} or {last}", rest.join(", "))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-type unit lists and the per-quantity unit enums must agree, or the
    /// decoder would accept a unit the model cannot hold.
    #[test]
    fn each_types_units_are_exactly_its_quantity_units() {
        fn units<U: Copy>(all: &[U], f: fn(U) -> Unit) -> Vec<Unit> {
            all.iter().map(|u| f(*u)).collect()
        }
        assert_eq!(
            ReadingType::Bp.units(),
            units(PressureUnit::ALL, PressureUnit::unit)
        );
        assert_eq!(
            ReadingType::Glucose.units(),
            units(GlucoseUnit::ALL, GlucoseUnit::unit)
        );
        assert_eq!(
            ReadingType::Spo2.units(),
            units(PercentUnit::ALL, PercentUnit::unit)
        );
        assert_eq!(
            ReadingType::HeartRate.units(),
            units(RateUnit::ALL, RateUnit::unit)
        );
        assert_eq!(
            ReadingType::Temperature.units(),
            units(TemperatureUnit::ALL, TemperatureUnit::unit)
        );
        assert_eq!(
            ReadingType::Weight.units(),
            units(WeightUnit::ALL, WeightUnit::unit)
        );
        assert_eq!(
            ReadingType::EcgWaveform.units(),
            units(VoltageUnit::ALL, VoltageUnit::unit)
        );
        assert_eq!(
            ReadingType::Bp.accepted_units().unwrap(),
            "'mm[Hg]' or 'kPa'"
        );
        assert_eq!(
            ReadingType::Weight.accepted_units().unwrap(),
            "'kg', '[lb_av]' or 'jin'"
        );
        assert_eq!(ReadingType::Spo2.accepted_units().unwrap(), "'%'");
        assert_eq!(ReadingType::Ecg.accepted_units(), None);
    }
}
