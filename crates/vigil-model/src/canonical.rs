//! Measurements in canonical units at rule precision (`clinical/rules.md` §0.1, §0.12).
//!
//! Canonical units: BP mmHg, glucose mmol/L, SpO2 %, HR /min, temperature °C, weight
//! kg. Every value is rounded half-up to its precision *before* any comparison: BP
//! and rates to 1 (hence `i32`), glucose, temperature and weight to 0.1. Defaults the
//! contract implies are made explicit here (glucose context `random`, temperature site
//! `axillary`), so rules never have to know them.

use crate::measurement::{EcgLeads, Measurement};
use crate::round::{round_half_up, round_to_i32};
use crate::vocab::{
    Activity, EcgFinding, GlucoseFlag, HrSource, LeadConfig, MealContext, SignalQuality,
    TemperatureSite,
};

/// A measurement in canonical units.
#[derive(Debug, Clone, PartialEq)]
pub enum Canonical {
    Bp {
        systolic_mmhg: i32,
        diastolic_mmhg: i32,
        mean_mmhg: Option<i32>,
        pulse_per_min: Option<i32>,
    },
    Glucose {
        /// `None` when the meter showed HI or LO.
        mmol_per_l: Option<f64>,
        flag: Option<GlucoseFlag>,
        context: MealContext,
    },
    Spo2 {
        percent: i32,
        pulse_rate_per_min: Option<i32>,
        signal_quality: Option<SignalQuality>,
        perfusion_index_pct: Option<f64>,
    },
    HeartRate {
        per_min: i32,
        source: Option<HrSource>,
        activity: Option<Activity>,
    },
    Temperature {
        celsius: f64,
        site: TemperatureSite,
    },
    Weight {
        kg: f64,
    },
    Ecg {
        finding: EcgFinding,
        ventricular_rate_per_min: Option<i32>,
        duration_s: Option<f64>,
        longest_rr_s: Option<f64>,
        lead_config: Option<LeadConfig>,
    },
    EcgWaveform {
        leads: Vec<String>,
        sample_rate_hz: f64,
        samples_per_lead: usize,
        /// Strip length, rounded to the millisecond.
        duration_s: f64,
    },
}

impl Measurement {
    /// This measurement in canonical units at rule precision. Total: every valid
    /// measurement has one.
    pub fn canonical(&self) -> Canonical {
        match self {
            Measurement::Bp(m) => Canonical::Bp {
                systolic_mmhg: m.unit.to_mmhg(m.systolic),
                diastolic_mmhg: m.unit.to_mmhg(m.diastolic),
                mean_mmhg: m.mean.map(|v| m.unit.to_mmhg(v)),
                pulse_per_min: m.pulse.map(round_to_i32),
            },
            Measurement::Glucose(m) => Canonical::Glucose {
                // A HI/LO flag means the meter could not measure: no number is trusted.
                mmol_per_l: match m.flag {
                    Some(_) => None,
                    None => m.value.map(|v| m.unit.to_mmol_per_l(v)),
                },
                flag: m.flag,
                context: m.context.unwrap_or(MealContext::Random),
            },
            Measurement::Spo2(m) => Canonical::Spo2 {
                percent: round_to_i32(m.value),
                pulse_rate_per_min: m.pulse_rate.map(round_to_i32),
                signal_quality: m.signal_quality,
                perfusion_index_pct: m.perfusion_index,
            },
            Measurement::HeartRate(m) => Canonical::HeartRate {
                per_min: round_to_i32(m.value),
                source: m.source,
                activity: m.activity,
            },
            Measurement::Temperature(m) => Canonical::Temperature {
                celsius: m.unit.to_celsius(m.value),
                site: m.site.unwrap_or(TemperatureSite::Axillary),
            },
            Measurement::Weight(m) => Canonical::Weight {
                kg: m.unit.to_kg(m.value),
            },
            Measurement::Ecg(m) => Canonical::Ecg {
                finding: m.finding,
                ventricular_rate_per_min: m.ventricular_rate.map(round_to_i32),
                duration_s: m.duration_s,
                longest_rr_s: m.longest_rr_s,
                lead_config: m.lead_config,
            },
            Measurement::EcgWaveform(m) => Canonical::EcgWaveform {
                leads: m
                    .leads
                    .lead_names()
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                sample_rate_hz: m.sample_rate_hz,
                samples_per_lead: m.leads.samples_per_lead(),
                duration_s: round_half_up(m.duration_s(), 3),
            },
        }
    }
}

impl EcgLeads {
    /// Number of leads.
    pub fn lead_count(&self) -> usize {
        match self {
            EcgLeads::Single { .. } => 1,
            EcgLeads::Multi { leads, .. } => leads.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measurement::*;
    use crate::units::*;

    #[test]
    fn kpa_bp_becomes_mmhg_and_pulse_stays_per_minute() {
        let m = Measurement::Bp(BloodPressure {
            systolic: 24.0,
            diastolic: 14.7,
            mean: None,
            pulse: Some(80.0),
            unit: PressureUnit::KPa,
        });
        assert_eq!(
            m.canonical(),
            Canonical::Bp {
                systolic_mmhg: 180,
                diastolic_mmhg: 110,
                mean_mmhg: None,
                pulse_per_min: Some(80)
            }
        );
    }

    #[test]
    fn a_flagged_glucose_has_no_number_and_context_defaults_to_random() {
        let m = Measurement::Glucose(Glucose {
            value: Some(33.3),
            flag: Some(GlucoseFlag::Hi),
            context: None,
            sample_type: None,
            unit: GlucoseUnit::MmolPerL,
        });
        assert_eq!(
            m.canonical(),
            Canonical::Glucose {
                mmol_per_l: None,
                flag: Some(GlucoseFlag::Hi),
                context: MealContext::Random
            }
        );
    }

    #[test]
    fn fahrenheit_temperature_defaults_to_axillary() {
        let m = Measurement::Temperature(Temperature {
            value: 102.2,
            site: None,
            unit: TemperatureUnit::DegF,
        });
        assert_eq!(
            m.canonical(),
            Canonical::Temperature {
                celsius: 39.0,
                site: TemperatureSite::Axillary
            }
        );
    }

    #[test]
    fn a_waveform_reports_its_shape_not_its_samples() {
        let m = Measurement::EcgWaveform(EcgWaveform {
            sample_rate_hz: 130.0,
            leads: EcgLeads::Single {
                lead: "II".into(),
                samples_uv: vec![0; 73],
            },
            unit: VoltageUnit::MicroVolt,
        });
        assert_eq!(
            m.canonical(),
            Canonical::EcgWaveform {
                leads: vec!["II".into()],
                sample_rate_hz: 130.0,
                samples_per_lead: 73,
                duration_s: 0.562
            }
        );
    }
}
