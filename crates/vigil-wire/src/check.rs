//! `vigil envelope check`: the contract check for gateway integrators
//! (`spec/envelope-check.md`).
//!
//! Runs the ingester's own codec over one envelope and reports, per reading, either
//! the canonical form the platform would store or the error that would quarantine it.
//! Envelope-level failures set `error` and leave `readings` empty.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use vigil_model::Canonical;

use crate::envelope::decode_envelope;
use crate::measurement::opt;

/// The check's output object.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckReport {
    /// True only when the envelope and every reading are well-formed.
    pub ok: bool,
    /// The envelope-level failure, if any.
    pub error: Option<String>,
    pub readings: Vec<ReadingReport>,
}

/// One reading's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadingReport {
    pub index: usize,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canonical: Option<CanonicalJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl CheckReport {
    /// The process exit code: 1 for an envelope-level failure, else 0 (reading-level
    /// failures are reported, not fatal).
    pub fn exit_code(&self) -> i32 {
        if self.error.is_some() { 1 } else { 0 }
    }
}

/// Checks one envelope.
pub fn check_envelope(payload: &[u8]) -> CheckReport {
    match decode_envelope(payload) {
        Err(e) => CheckReport {
            ok: false,
            error: Some(e.to_string()),
            readings: Vec::new(),
        },
        Ok(env) => {
            let readings: Vec<ReadingReport> = env
                .readings
                .iter()
                .enumerate()
                .map(|(index, r)| match r {
                    Ok(reading) => ReadingReport {
                        index,
                        ok: true,
                        canonical: Some(CanonicalJson(reading.measurement.canonical())),
                        error: None,
                    },
                    Err(e) => ReadingReport {
                        index,
                        ok: false,
                        canonical: None,
                        error: Some(e.to_string()),
                    },
                })
                .collect();
            CheckReport {
                ok: readings.iter().all(|r| r.ok),
                error: None,
                readings,
            }
        }
    }
}

/// A canonical measurement as the check prints it. The keys carry their unit:
/// `systolic_mmhg`, `glucose_mmol_l`, `temperature_cel`, `weight_kg`, ...
#[derive(Debug, Clone, PartialEq)]
pub struct CanonicalJson(pub Canonical);

impl Serialize for CanonicalJson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        match &self.0 {
            Canonical::Bp {
                systolic_mmhg,
                diastolic_mmhg,
                mean_mmhg,
                pulse_per_min,
            } => {
                m.serialize_entry("type", "bp")?;
                m.serialize_entry("systolic_mmhg", systolic_mmhg)?;
                m.serialize_entry("diastolic_mmhg", diastolic_mmhg)?;
                opt(&mut m, "mean_mmhg", mean_mmhg)?;
                opt(&mut m, "pulse_per_min", pulse_per_min)?;
            }
            Canonical::Glucose {
                mmol_per_l,
                flag,
                context,
            } => {
                m.serialize_entry("type", "glucose")?;
                m.serialize_entry("glucose_mmol_l", mmol_per_l)?;
                opt(&mut m, "flag", flag)?;
                m.serialize_entry("context", context)?;
            }
            Canonical::Spo2 {
                percent,
                pulse_rate_per_min,
                signal_quality,
                perfusion_index_pct,
            } => {
                m.serialize_entry("type", "spo2")?;
                m.serialize_entry("spo2_pct", percent)?;
                opt(&mut m, "pulse_rate_per_min", pulse_rate_per_min)?;
                opt(&mut m, "signal_quality", signal_quality)?;
                opt(&mut m, "perfusion_index_pct", perfusion_index_pct)?;
            }
            Canonical::HeartRate {
                per_min,
                source,
                activity,
            } => {
                m.serialize_entry("type", "heart_rate")?;
                m.serialize_entry("heart_rate_per_min", per_min)?;
                opt(&mut m, "source", source)?;
                opt(&mut m, "activity", activity)?;
            }
            Canonical::Temperature { celsius, site } => {
                m.serialize_entry("type", "temperature")?;
                m.serialize_entry("temperature_cel", celsius)?;
                m.serialize_entry("site", site)?;
            }
            Canonical::Weight { kg } => {
                m.serialize_entry("type", "weight")?;
                m.serialize_entry("weight_kg", kg)?;
            }
            Canonical::Ecg {
                finding,
                ventricular_rate_per_min,
                duration_s,
                longest_rr_s,
                lead_config,
            } => {
                m.serialize_entry("type", "ecg")?;
                m.serialize_entry("finding", finding)?;
                opt(&mut m, "ventricular_rate_per_min", ventricular_rate_per_min)?;
                opt(&mut m, "duration_s", duration_s)?;
                opt(&mut m, "longest_rr_s", longest_rr_s)?;
                opt(&mut m, "lead_config", lead_config)?;
            }
            Canonical::EcgWaveform {
                leads,
                sample_rate_hz,
                samples_per_lead,
                duration_s,
            } => {
                m.serialize_entry("type", "ecg_waveform")?;
                m.serialize_entry("leads", leads)?;
                m.serialize_entry("sample_rate_hz", sample_rate_hz)?;
                m.serialize_entry("samples_per_lead", samples_per_lead)?;
                m.serialize_entry("duration_s", duration_s)?;
            }
        }
        m.end()
    }
}
