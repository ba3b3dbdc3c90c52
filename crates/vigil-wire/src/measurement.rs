//! The `type` / `unit` / `values` part of a reading, shared by readings envelopes
//! and alert-event evidence.

use serde::ser::{Serialize, SerializeMap, Serializer};
use vigil_model::measurement::{
    BloodPressure, EcgLeads, EcgSummary, EcgWaveform, Glucose, HeartRate, Measurement, ReadingType,
    Spo2, Temperature, Weight,
};
use vigil_model::units::{Unit, UnitError};
use vigil_model::vocab::{
    Activity, EcgFinding, GlucoseFlag, HrSource, LeadConfig, MealContext, SignalQuality,
    TemperatureSite, expected_list,
};

use crate::error::ReadingErrorKind as Kind;
use crate::fields::{Fields, Problem, type_name};
use crate::json::{Json, Object};

/// Decodes `type`, `unit` and `values` of a reading (or evidence) object.
pub(crate) fn decode_measurement(f: &Fields<'_>) -> Result<Measurement, Problem> {
    let type_text = f.req_str("type")?;
    let ty = ReadingType::parse(type_text).map_err(|_| {
        Problem::new(
            Kind::UnknownType,
            format!(
                "unknown reading type {type_text:?}; expected one of {}",
                expected_list(ReadingType::WORDS)
            ),
        )
    })?;
    let unit = decode_unit(ty, f)?;
    let v = f.req_object("values", "values.")?;
    Ok(match ty {
        ReadingType::Bp => Measurement::Bp(BloodPressure {
            systolic: v.req_quantity("systolic")?,
            diastolic: v.req_quantity("diastolic")?,
            mean: v.opt_quantity("mean")?,
            pulse: v.opt_quantity("pulse")?,
            unit: typed(ty, unit)?,
        }),
        ReadingType::Glucose => {
            let value = v.opt_quantity("value")?;
            let flag = v.opt_vocab("flag", GlucoseFlag::parse)?;
            if value.is_none() && flag.is_none() {
                return Err(Problem::new(
                    Kind::MissingField,
                    "glucose needs 'values.value' (a number) or 'values.flag' ('HI' or 'LO')",
                ));
            }
            Measurement::Glucose(Glucose {
                value,
                flag,
                context: v.opt_vocab("context", MealContext::parse)?,
                sample_type: v.opt_str("sample_type")?.map(str::to_owned),
                unit: typed(ty, unit)?,
            })
        }
        ReadingType::Spo2 => Measurement::Spo2(Spo2 {
            value: v.req_quantity("value")?,
            pulse_rate: v.opt_quantity("pulse_rate")?,
            signal_quality: v.opt_vocab("signal_quality", SignalQuality::parse)?,
            perfusion_index: v.opt_quantity("perfusion_index")?,
            unit: typed(ty, unit)?,
        }),
        ReadingType::HeartRate => Measurement::HeartRate(HeartRate {
            value: v.req_quantity("value")?,
            source: v.opt_vocab("source", HrSource::parse)?,
            activity: v.opt_vocab("activity", Activity::parse)?,
            rr_intervals_ms: decode_rr(&v)?,
            unit: typed(ty, unit)?,
        }),
        ReadingType::Temperature => Measurement::Temperature(Temperature {
            value: v.req_number("value")?,
            site: v.opt_vocab("site", TemperatureSite::parse)?,
            unit: typed(ty, unit)?,
        }),
        ReadingType::Weight => Measurement::Weight(Weight {
            value: v.req_quantity("value")?,
            unit: typed(ty, unit)?,
        }),
        ReadingType::Ecg => Measurement::Ecg(EcgSummary {
            finding: v.req_vocab("finding", EcgFinding::parse)?,
            ventricular_rate: v.opt_quantity("ventricular_rate")?,
            duration_s: v.opt_quantity("duration_s")?,
            longest_rr_s: v.opt_quantity("longest_rr_s")?,
            lead_config: v.opt_vocab("lead_config", LeadConfig::parse)?,
        }),
        ReadingType::EcgWaveform => Measurement::EcgWaveform(decode_waveform(&v, ty, unit)?),
    })
}

/// The reading's unit: required (and a string) for every type but `ecg`, which takes
/// none. `None` is returned only for `ecg`.
fn decode_unit(ty: ReadingType, f: &Fields<'_>) -> Result<Option<Unit>, Problem> {
    // The list of units accepted is written only for an error: it formats and
    // allocates (3 % of the instructions of decoding a reading when written for each).
    if ty.units().is_empty() {
        return match f.get("unit") {
            None => Ok(None),
            Some(u) => Err(Problem::new(
                Kind::Unit,
                format!(
                    "type 'ecg' takes no unit; omit 'unit' or send null (got {})",
                    match u.as_str() {
                        Some(s) => format!("{s:?}"),
                        None => type_name(u).to_owned(),
                    }
                ),
            )),
        };
    }
    let text = match f.get("unit") {
        None => return Err(missing_unit(ty)),
        Some(Json::String(s)) => s,
        Some(other) => {
            return Err(Problem::new(
                Kind::WrongType,
                format!("'unit' must be a string, not {}", type_name(other)),
            ));
        }
    };
    match Unit::from_ucum(text) {
        Ok(u) if ty.units().contains(&u) => Ok(Some(u)),
        Ok(_) => Err(unit_not_accepted(text, ty)),
        Err(UnitError::NotUcum { use_instead, .. })
            if ty.units().iter().any(|u| u.ucum() == use_instead) =>
        {
            Err(Problem::new(
                Kind::Unit,
                format!("unit '{text}' is not UCUM; use '{use_instead}'"),
            ))
        }
        Err(UnitError::NotUcum { .. }) => Err(unit_not_accepted(text, ty)),
        Err(UnitError::Unknown { .. }) => Err(Problem::new(
            Kind::Unit,
            format!(
                "unit '{text}' is unknown; type '{ty}' accepts {}",
                ty.accepted_units().unwrap_or_default()
            ),
        )),
    }
}

fn missing_unit(ty: ReadingType) -> Problem {
    Problem::new(
        Kind::MissingField,
        format!(
            "missing 'unit'; type '{ty}' accepts {}",
            ty.accepted_units().unwrap_or_default()
        ),
    )
}

fn unit_not_accepted(unit: &str, ty: ReadingType) -> Problem {
    Problem::new(
        Kind::Unit,
        format!(
            "unit '{unit}' is not accepted for type '{ty}'; use {}",
            ty.accepted_units().unwrap_or_default()
        ),
    )
}

/// Narrows a general unit to the quantity's unit type.
fn typed<U: TryFrom<Unit, Error = Unit>>(
    ty: ReadingType,
    unit: Option<Unit>,
) -> Result<U, Problem> {
    let unit = unit.ok_or_else(|| missing_unit(ty))?;
    U::try_from(unit).map_err(|u| unit_not_accepted(u.ucum(), ty))
}

fn decode_rr(v: &Fields<'_>) -> Result<Option<Vec<f64>>, Problem> {
    let Some(items) = v.opt_array("rr_intervals_ms")? else {
        return Ok(None);
    };
    items
        .iter()
        .enumerate()
        .map(|(i, x)| match x.as_f64() {
            Some(ms) if ms.is_finite() && ms >= 0.0 => Ok(ms),
            Some(ms) => Err(Problem::new(
                Kind::Meaningless,
                format!("'values.rr_intervals_ms[{i}]' must not be negative (got {ms})"),
            )),
            None => Err(Problem::new(
                Kind::WrongType,
                format!(
                    "'values.rr_intervals_ms[{i}]' must be a number, not {}",
                    type_name(x)
                ),
            )),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn decode_waveform(
    v: &Fields<'_>,
    ty: ReadingType,
    unit: Option<Unit>,
) -> Result<EcgWaveform, Problem> {
    let sample_rate_hz = v.req_number("sample_rate_hz")?;
    if sample_rate_hz <= 0.0 {
        return Err(Problem::new(
            Kind::Meaningless,
            format!("'values.sample_rate_hz' must be greater than 0 (got {sample_rate_hz})"),
        ));
    }
    let leads = match (v.has("lead"), v.has("leads")) {
        (true, true) => {
            return Err(Problem::new(
                Kind::Meaningless,
                "give 'values.lead' (one lead) or 'values.leads' (several), not both",
            ));
        }
        (false, false) => {
            return Err(Problem::new(
                Kind::MissingField,
                "missing 'values.lead' (one lead) or 'values.leads' (several)",
            ));
        }
        (true, false) => EcgLeads::Single {
            lead: lead_name(v.req_str("lead")?, "'values.lead'")?,
            samples_uv: samples(v.req_array("samples_uv")?, "'values.samples_uv'")?,
        },
        (false, true) => {
            let names = v.req_array("leads")?;
            if names.is_empty() {
                return Err(Problem::new(Kind::Meaningless, "'values.leads' is empty"));
            }
            let leads = names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    let at = format!("'values.leads[{i}]'");
                    match n.as_str() {
                        Some(s) => lead_name(s, &at),
                        None => Err(Problem::new(
                            Kind::WrongType,
                            format!("{at} must be a string, not {}", type_name(n)),
                        )),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            let arrays = v.req_array("samples_uv")?;
            if arrays.len() != leads.len() {
                return Err(Problem::new(
                    Kind::Meaningless,
                    format!(
                        "'values.samples_uv' must hold one array per lead: {} leads, {} arrays",
                        leads.len(),
                        arrays.len()
                    ),
                ));
            }
            let samples_uv = arrays
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let at = format!("'values.samples_uv[{i}]'");
                    match a.as_array() {
                        Some(items) => samples(items, &at),
                        None => Err(Problem::new(
                            Kind::WrongType,
                            format!("{at} must be an array of integers, not {}", type_name(a)),
                        )),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            EcgLeads::Multi { leads, samples_uv }
        }
    };
    Ok(EcgWaveform {
        sample_rate_hz,
        leads,
        unit: typed(ty, unit)?,
    })
}

fn lead_name(s: &str, at: &str) -> Result<String, Problem> {
    if s.trim().is_empty() || s.len() > 16 {
        return Err(Problem::new(
            Kind::Meaningless,
            format!("{at} must name a lead in 1 to 16 characters, e.g. 'II' or 'MLII' (got {s:?})"),
        ));
    }
    Ok(s.to_owned())
}

fn samples(items: &[Json<'_>], at: &str) -> Result<Vec<i32>, Problem> {
    if items.is_empty() {
        return Err(Problem::new(Kind::Meaningless, format!("{at} is empty")));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_i64()
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| {
                    Problem::new(
                        if x.is_number() {
                            Kind::Meaningless
                        } else {
                            Kind::WrongType
                        },
                        format!(
                            "{at} sample {i} must be an integer number of microvolts within ±2^31, not {}",
                            match x {
                                Json::Number(n) => n.to_string(),
                                other => type_name(other).to_owned(),
                            }
                        ),
                    )
                })
        })
        .collect()
}

/// Writes `"type"`, `"unit"` (absent for `ecg`) and `"values"` into a map.
pub(crate) fn serialize_measurement_entries<M: SerializeMap>(
    map: &mut M,
    m: &Measurement,
) -> Result<(), M::Error> {
    map.serialize_entry("type", m.reading_type().as_str())?;
    if let Some(u) = m.unit() {
        map.serialize_entry("unit", u.ucum())?;
    }
    map.serialize_entry("values", &Values(m))
}

/// The `values` object of a measurement.
struct Values<'a>(&'a Measurement);

impl Serialize for Values<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        match self.0 {
            Measurement::Bp(m) => {
                map.serialize_entry("systolic", &m.systolic)?;
                map.serialize_entry("diastolic", &m.diastolic)?;
                opt(&mut map, "mean", &m.mean)?;
                opt(&mut map, "pulse", &m.pulse)?;
            }
            Measurement::Glucose(m) => {
                map.serialize_entry("value", &m.value)?;
                opt(&mut map, "flag", &m.flag)?;
                opt(&mut map, "context", &m.context)?;
                opt(&mut map, "sample_type", &m.sample_type)?;
            }
            Measurement::Spo2(m) => {
                map.serialize_entry("value", &m.value)?;
                opt(&mut map, "pulse_rate", &m.pulse_rate)?;
                opt(&mut map, "signal_quality", &m.signal_quality)?;
                opt(&mut map, "perfusion_index", &m.perfusion_index)?;
            }
            Measurement::HeartRate(m) => {
                map.serialize_entry("value", &m.value)?;
                opt(&mut map, "source", &m.source)?;
                opt(&mut map, "activity", &m.activity)?;
                opt(&mut map, "rr_intervals_ms", &m.rr_intervals_ms)?;
            }
            Measurement::Temperature(m) => {
                map.serialize_entry("value", &m.value)?;
                opt(&mut map, "site", &m.site)?;
            }
            Measurement::Weight(m) => map.serialize_entry("value", &m.value)?,
            Measurement::Ecg(m) => {
                map.serialize_entry("finding", &m.finding)?;
                opt(&mut map, "ventricular_rate", &m.ventricular_rate)?;
                opt(&mut map, "duration_s", &m.duration_s)?;
                opt(&mut map, "longest_rr_s", &m.longest_rr_s)?;
                opt(&mut map, "lead_config", &m.lead_config)?;
            }
            Measurement::EcgWaveform(m) => {
                match &m.leads {
                    EcgLeads::Single { lead, samples_uv } => {
                        map.serialize_entry("lead", lead)?;
                        map.serialize_entry("samples_uv", samples_uv)?;
                    }
                    EcgLeads::Multi { leads, samples_uv } => {
                        map.serialize_entry("leads", leads)?;
                        map.serialize_entry("samples_uv", samples_uv)?;
                    }
                }
                map.serialize_entry("sample_rate_hz", &m.sample_rate_hz)?;
            }
        }
        map.end()
    }
}

/// Writes an optional entry only when present.
pub(crate) fn opt<M: SerializeMap, T: Serialize>(
    map: &mut M,
    key: &'static str,
    value: &Option<T>,
) -> Result<(), M::Error> {
    match value {
        Some(v) => map.serialize_entry(key, v),
        None => Ok(()),
    }
}

/// Decodes a measurement from a standalone JSON object (used by alert evidence).
pub(crate) fn decode_measurement_object(obj: &Object<'_>) -> Result<Measurement, Problem> {
    decode_measurement(&Fields::new(obj, ""))
}
