//! `vigil-edge decode`: a Bluetooth LE attribute value as the JSON object of
//! spec/decode.md.
//!
//! The decoding is `vigil-gatt`'s; this module only parses the command-line arguments
//! (characteristic, hex) and renders the decoded value with exactly the keys, nulls,
//! names and number forms the spec defines:
//!
//! - every optional field of a characteristic is present, `null` when its flag is
//!   clear (and so is a unit or name belonging to an absent group);
//! - IEEE-11073 numbers are the exact decimal `mantissa × 10^exponent`: an integer
//!   when the value is whole, otherwise the `f64` nearest to the exact decimal (which
//!   JSON prints as its shortest decimal: `18.9`, never `18.900000000000002`);
//!   special values are the strings `"NaN"`, `"NRes"`, `"+INF"`, `"-INF"`, `"RESERVED"`;
//! - Date Times are objects of their six raw fields; 64-bit integers are strings;
//!   status bits are lists of names; enumerations carry the code and a `_name`.
//!
//! Keys that belong to one kind of control-point message only (an RACP op code 6
//! response's `request_opcode`, a PMD start command's `settings`) appear in that kind's
//! output only.

use serde_json::{Map, Value, json};
use vigil_gatt::bits::{BitName, enum_name};
use vigil_gatt::bpm::{
    BloodPressureMeasurement, BpOptional, IntermediateCuffPressure, MeasurementStatus,
};
use vigil_gatt::error::{PMD_CONTROL_POINT_UUID, PMD_DATA_UUID};
use vigil_gatt::glucose::{
    CARBOHYDRATE_NAMES, GlucoseContext, GlucoseMeasurement, HEALTH_NAMES, MEDICATION_NAMES,
    TESTER_NAMES,
};
use vigil_gatt::hrm::HeartRateMeasurement;
use vigil_gatt::plx::{PlxContinuous, PlxSpotCheck, PlxStatus};
use vigil_gatt::pmd::{self, ControlPoint, DataFrame, Setting, Settings};
use vigil_gatt::racp::{self, Operand};
use vigil_gatt::temperature::TemperatureMeasurement;
use vigil_gatt::weight::WeightMeasurement;
use vigil_gatt::{Characteristic, DateTime, Decimal, Direction, Error, Float, SFloat, to_hex};

/// The 16-bit UUIDs of the SIG base UUID `0000xxxx-0000-1000-8000-00805F9B34FB`.
const SIG_BASE_SUFFIX: &str = "00001000800000805f9b34fb";

/// Parses the `<characteristic>` argument: a 16-bit SIG UUID (`2A35`, `0x2A35`,
/// `2a35`), a full 128-bit UUID (the Polar PMD control point and data, or a SIG
/// characteristic on the base UUID; dashes optional, any case), or `sfloat`, `float`,
/// `pmd-settings`.
pub fn parse_characteristic(arg: &str) -> Result<Characteristic, String> {
    let s = arg.trim().to_ascii_lowercase();
    match s.as_str() {
        "sfloat" => return Ok(Characteristic::Sfloat),
        "float" => return Ok(Characteristic::Float),
        "pmd-settings" => return Ok(Characteristic::PmdSettings),
        _ => {}
    }
    let unknown = || {
        let sig: Vec<String> = Characteristic::SIG
            .iter()
            .map(|(u, _)| format!("{u:04X}"))
            .collect();
        format!(
            "characteristic {arg:?} is not one this command decodes; use one of {}, the Polar \
             PMD control point {PMD_CONTROL_POINT_UUID} or data {PMD_DATA_UUID}, sfloat, float \
             or pmd-settings",
            sig.join(", ")
        )
    };
    let short = s.strip_prefix("0x").unwrap_or(&s);
    if short.len() == 4 && short.chars().all(|c| c.is_ascii_hexdigit()) {
        let uuid = u16::from_str_radix(short, 16).map_err(|_| unknown())?;
        return Characteristic::from_uuid16(uuid).ok_or_else(unknown);
    }
    let full: String = s.chars().filter(|c| *c != '-').collect();
    if full.len() == 32 && full.chars().all(|c| c.is_ascii_hexdigit()) {
        let plain = |u: &str| u.replace('-', "").to_ascii_lowercase();
        if full == plain(PMD_CONTROL_POINT_UUID) {
            return Ok(Characteristic::PmdControlPoint);
        }
        if full == plain(PMD_DATA_UUID) {
            return Ok(Characteristic::PmdData);
        }
        if let Some(short) = full
            .strip_prefix("0000")
            .and_then(|rest| rest.strip_suffix(SIG_BASE_SUFFIX))
        {
            let uuid = u16::from_str_radix(short, 16).map_err(|_| unknown())?;
            return Characteristic::from_uuid16(uuid).ok_or_else(unknown);
        }
    }
    Err(unknown())
}

/// Parses the `<hex>` argument: hex digits in either case, optionally separated by
/// spaces (or any whitespace) and colons.
pub fn parse_hex(arg: &str) -> Result<Vec<u8>, String> {
    let mut digits = Vec::with_capacity(arg.len());
    for (i, c) in arg.chars().enumerate() {
        if c.is_whitespace() || c == ':' {
            continue;
        }
        let d = c
            .to_digit(16)
            .ok_or_else(|| format!("hex payload: {c:?} at position {i} is not a hex digit"))?;
        digits.push(d as u8);
    }
    if digits.len() % 2 != 0 {
        return Err(format!(
            "hex payload: {} hex digits is an odd number; every byte takes two",
            digits.len()
        ));
    }
    Ok(digits.chunks(2).map(|p| (p[0] << 4) | p[1]).collect())
}

/// Decodes `bytes` as `characteristic` and renders the JSON object of spec/decode.md.
/// `direction` matters only for the RACP and the PMD control point.
pub fn decode(
    characteristic: Characteristic,
    bytes: &[u8],
    direction: Option<Direction>,
) -> Result<Value, Error> {
    Ok(match characteristic {
        Characteristic::Sfloat => {
            let v = SFloat::decode(bytes)?;
            medfloat(
                u64::from(v.raw()),
                v.kind().as_str(),
                v.mantissa(),
                v.exponent(),
                v.value(),
            )
        }
        Characteristic::Float => {
            let v = Float::decode(bytes)?;
            medfloat(
                u64::from(v.raw()),
                v.kind().as_str(),
                v.mantissa(),
                v.exponent(),
                v.value(),
            )
        }
        Characteristic::DateTime => date_time(&DateTime::decode(bytes)?),
        // Not offered by the command line (not in the decode contract); the agent reads
        // it itself.
        Characteristic::CurrentTime => {
            let ct = vigil_gatt::cts::CurrentTime::decode(bytes)?;
            serde_json::json!({
                "date_time": date_time(&ct.date_time),
                "day_of_week": ct.day_of_week,
                "fractions256": ct.fractions256,
                "adjust_reason": ct.adjust_reason,
            })
        }
        Characteristic::GlucoseMeasurement => {
            glucose_measurement(&GlucoseMeasurement::decode(bytes)?)
        }
        Characteristic::GlucoseMeasurementContext => {
            glucose_context(&GlucoseContext::decode(bytes)?)
        }
        Characteristic::RecordAccessControlPoint => {
            racp_message(&racp::Message::decode(bytes, direction)?)
        }
        Characteristic::BloodPressureMeasurement => {
            let m = BloodPressureMeasurement::decode(bytes)?;
            let mut o = bp_common(m.flags(), m.unit.as_str(), &m.optional);
            o.insert("systolic".into(), sfloat(m.systolic));
            o.insert("diastolic".into(), sfloat(m.diastolic));
            o.insert(
                "mean_arterial_pressure".into(),
                sfloat(m.mean_arterial_pressure),
            );
            Value::Object(o)
        }
        Characteristic::IntermediateCuffPressure => {
            let m = IntermediateCuffPressure::decode(bytes)?;
            let mut o = bp_common(m.flags(), m.unit.as_str(), &m.optional);
            o.insert("cuff_pressure".into(), sfloat(m.cuff_pressure));
            Value::Object(o)
        }
        Characteristic::HeartRateMeasurement => heart_rate(&HeartRateMeasurement::decode(bytes)?),
        Characteristic::PlxSpotCheck => plx_spot_check(&PlxSpotCheck::decode(bytes)?),
        Characteristic::PlxContinuous => plx_continuous(&PlxContinuous::decode(bytes)?),
        Characteristic::TemperatureMeasurement => {
            temperature(&TemperatureMeasurement::decode(bytes)?)
        }
        Characteristic::WeightMeasurement => weight(&WeightMeasurement::decode(bytes)?),
        Characteristic::PmdControlPoint => {
            pmd_control_point(&ControlPoint::decode(bytes, direction)?)
        }
        Characteristic::PmdData => pmd_data(&DataFrame::decode(bytes)?),
        Characteristic::PmdSettings => json!({
            "settings_tlv_only": true,
            "settings": settings(&Settings::decode(bytes)?),
        }),
    })
}

/// The largest integer JSON consumers hold exactly (2^53).
const MAX_EXACT: i64 = 1 << 53;

/// An exact decimal: an integer when whole (and exactly representable), otherwise the
/// `f64` nearest to the decimal, which JSON prints as its shortest decimal.
fn decimal(d: Decimal) -> Value {
    match d.as_integer() {
        Some(i) if i.abs() <= MAX_EXACT => Value::from(i),
        _ => Value::from(d.to_f64()),
    }
}

fn opt_decimal(d: Option<Decimal>) -> Value {
    d.map_or(Value::Null, decimal)
}

/// An SFLOAT where a number goes: the number, or the special value's string.
fn sfloat(v: SFloat) -> Value {
    match v.value() {
        Some(d) => decimal(d),
        None => Value::from(v.kind().as_str()),
    }
}

fn opt_sfloat(v: Option<SFloat>) -> Value {
    v.map_or(Value::Null, sfloat)
}

fn medfloat(raw: u64, kind: &str, mantissa: i32, exponent: i32, value: Option<Decimal>) -> Value {
    json!({
        "raw": raw,
        "kind": kind,
        "mantissa": mantissa,
        "exponent": exponent,
        "value": opt_decimal(value),
    })
}

fn date_time(t: &DateTime) -> Value {
    json!({
        "year": t.year,
        "month": t.month,
        "day": t.day,
        "hours": t.hours,
        "minutes": t.minutes,
        "seconds": t.seconds,
    })
}

fn opt_date_time(t: Option<&DateTime>) -> Value {
    t.map_or(Value::Null, date_time)
}

fn bit_list(bits: Option<Vec<BitName>>) -> Value {
    bits.map_or(Value::Null, |b| {
        Value::Array(b.iter().map(|n| Value::from(n.to_string())).collect())
    })
}

fn opt<T: Into<Value>>(v: Option<T>) -> Value {
    v.map_or(Value::Null, Into::into)
}

fn glucose_measurement(m: &GlucoseMeasurement) -> Value {
    let s = m.sample.as_ref();
    json!({
        "flags": m.flags(),
        "sequence_number": m.sequence_number,
        "base_time": date_time(&m.base_time),
        "time_offset_min": opt(m.time_offset_min),
        "concentration": opt_sfloat(s.map(|s| s.concentration)),
        "concentration_unit": opt(s.map(|_| m.unit.as_str())),
        "type": opt(s.map(|s| s.sample_type)),
        "type_name": opt(s.map(|s| s.type_name())),
        "sample_location": opt(s.map(|s| s.sample_location)),
        "sample_location_name": opt(s.map(|s| s.location_name())),
        "sensor_status": opt(m.sensor_status),
        "sensor_status_bits": bit_list(m.sensor_status_bits()),
        "context_follows": m.context_follows,
        "concentration_mg_per_dl": opt_decimal(m.concentration_mg_per_dl()),
        "concentration_mmol_per_l": opt_decimal(m.concentration_mmol_per_l()),
        "effective_time": opt_date_time(m.effective_time().as_ref()),
    })
}

fn glucose_context(c: &GlucoseContext) -> Value {
    let name = |table: &[Option<&'static str>], code: u8| enum_name(table, usize::from(code));
    json!({
        "flags": c.flags(),
        "sequence_number": c.sequence_number,
        "extended_flags": opt(c.extended_flags),
        "carbohydrate_id": opt(c.carbohydrate.map(|x| x.id)),
        "carbohydrate_id_name": opt(c.carbohydrate.map(|x| name(&CARBOHYDRATE_NAMES, x.id))),
        "carbohydrate_kg": opt_sfloat(c.carbohydrate.map(|x| x.kg)),
        "meal": opt(c.meal),
        "meal_name": opt(c.meal_name()),
        "tester": opt(c.tester_health.map(|x| x.tester)),
        "tester_name": opt(c.tester_health.map(|x| name(&TESTER_NAMES, x.tester))),
        "health": opt(c.tester_health.map(|x| x.health)),
        "health_name": opt(c.tester_health.map(|x| name(&HEALTH_NAMES, x.health))),
        "exercise_duration_s": opt(c.exercise.map(|x| x.duration_s)),
        "exercise_intensity_pct": opt(c.exercise.map(|x| x.intensity_pct)),
        "medication_id": opt(c.medication.map(|x| x.id)),
        "medication_id_name": opt(c.medication.map(|x| name(&MEDICATION_NAMES, x.id))),
        "medication": opt_sfloat(c.medication.map(|x| x.amount)),
        "medication_unit": opt(c.medication.map(|_| c.medication_unit.as_str())),
        "hba1c_pct": opt_sfloat(c.hba1c_pct),
    })
}

fn racp_message(m: &racp::Message) -> Value {
    let opname = |code: u8| enum_name(&racp::OPCODE_NAMES, usize::from(code));
    match m {
        racp::Message::Request(r) => {
            let code = r.opcode.code();
            let operand = r.operand.encode();
            let mut o = Map::new();
            o.insert(
                "direction".into(),
                Direction::ClientToServer.as_str().into(),
            );
            o.insert("opcode".into(), code.into());
            o.insert("opcode_name".into(), opname(code).into());
            o.insert("operator".into(), r.operator.into());
            o.insert("operator_name".into(), r.operator_name().into());
            o.insert("operand_hex".into(), to_hex(&operand).into());
            let filter = match &r.operand {
                Operand::SequenceNumber { min, max } => {
                    Some((1, min.map(Value::from), max.map(Value::from)))
                }
                Operand::UserFacingTime { min, max } => {
                    Some((2, min.as_ref().map(date_time), max.as_ref().map(date_time)))
                }
                // An RFU filter type under a filtering operator: named, operand raw.
                Operand::Raw(raw) if matches!(r.operator, 2..=4) => {
                    raw.first().map(|&t| (t, None, None))
                }
                Operand::Raw(_) | Operand::None => None,
            };
            if let Some((ft, min, max)) = filter {
                o.insert("filter_type".into(), ft.into());
                o.insert(
                    "filter_type_name".into(),
                    enum_name(&racp::FILTER_TYPE_NAMES, usize::from(ft)).into(),
                );
                if let Some(v) = min {
                    o.insert("operand_min".into(), v);
                }
                if let Some(v) = max {
                    o.insert("operand_max".into(), v);
                }
            }
            Value::Object(o)
        }
        racp::Message::Response(r) => {
            let code = r.opcode();
            let mut o = Map::new();
            o.insert("opcode".into(), code.into());
            o.insert("opcode_name".into(), opname(code).into());
            o.insert("operator".into(), racp::operator::NULL.into());
            match *r {
                racp::Response::NumberOfRecords { count, width } => {
                    o.insert("number_of_records".into(), count.into());
                    o.insert("operand_length".into(), width.into());
                }
                racp::Response::ResponseCode {
                    request_opcode,
                    response_code,
                } => {
                    o.insert("request_opcode".into(), request_opcode.into());
                    o.insert("request_opcode_name".into(), opname(request_opcode).into());
                    o.insert("response_code".into(), response_code.into());
                    o.insert(
                        "response_code_name".into(),
                        enum_name(&racp::RESPONSE_CODE_NAMES, usize::from(response_code)).into(),
                    );
                }
            }
            Value::Object(o)
        }
    }
}

fn status_fields(s: MeasurementStatus) -> Value {
    json!({
        "body_movement_detected": s.body_movement_detected(),
        "cuff_too_loose": s.cuff_too_loose(),
        "irregular_pulse_detected": s.irregular_pulse_detected(),
        "pulse_rate_range": s.pulse_rate_range_name(),
        "improper_measurement_position": s.improper_measurement_position(),
    })
}

/// The keys BPM and ICP share.
fn bp_common(flags: u8, unit: &str, o: &BpOptional) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("flags".into(), flags.into());
    m.insert("unit".into(), unit.into());
    m.insert("timestamp".into(), opt_date_time(o.timestamp.as_ref()));
    m.insert("pulse_rate_bpm".into(), opt_sfloat(o.pulse_rate));
    m.insert("user_id".into(), opt(o.user_id));
    m.insert(
        "measurement_status".into(),
        opt(o.measurement_status.map(|s| s.0)),
    );
    m.insert(
        "measurement_status_fields".into(),
        o.measurement_status.map_or(Value::Null, status_fields),
    );
    m
}

fn heart_rate(m: &HeartRateMeasurement) -> Value {
    json!({
        "flags": m.flags(),
        "heart_rate_bpm": m.heart_rate.bpm(),
        "hr_format": m.heart_rate.format(),
        "sensor_contact": m.sensor_contact(),
        "energy_expended_kj": opt(m.energy_expended_kj),
        "rr_intervals_raw": opt(m.rr_intervals.clone()),
        "rr_intervals_ms": m.rr_intervals_ms().map_or(Value::Null, |v| {
            Value::Array(v.into_iter().map(decimal).collect())
        }),
    })
}

/// The status keys both PLX characteristics share.
fn plx_status(o: &mut Map<String, Value>, s: &PlxStatus) {
    o.insert("measurement_status".into(), opt(s.measurement_status));
    o.insert(
        "measurement_status_bits".into(),
        bit_list(s.measurement_status_bits()),
    );
    o.insert("device_sensor_status".into(), opt(s.device_sensor_status));
    o.insert(
        "device_sensor_status_bits".into(),
        bit_list(s.device_sensor_status_bits()),
    );
    o.insert(
        "pulse_amplitude_index_pct".into(),
        opt_sfloat(s.pulse_amplitude_index),
    );
}

fn plx_spot_check(m: &PlxSpotCheck) -> Value {
    let mut o = Map::new();
    o.insert("flags".into(), m.flags().into());
    o.insert("spo2_pct".into(), sfloat(m.reading.spo2));
    o.insert("pulse_rate_bpm".into(), sfloat(m.reading.pulse_rate));
    o.insert("timestamp".into(), opt_date_time(m.timestamp.as_ref()));
    o.insert("device_clock_not_set".into(), m.device_clock_not_set.into());
    plx_status(&mut o, &m.status);
    Value::Object(o)
}

fn plx_continuous(m: &PlxContinuous) -> Value {
    let mut o = Map::new();
    o.insert("flags".into(), m.flags().into());
    o.insert("spo2_pct".into(), sfloat(m.reading.spo2));
    o.insert("pulse_rate_bpm".into(), sfloat(m.reading.pulse_rate));
    o.insert("spo2_fast_pct".into(), opt_sfloat(m.fast.map(|p| p.spo2)));
    o.insert(
        "pulse_rate_fast_bpm".into(),
        opt_sfloat(m.fast.map(|p| p.pulse_rate)),
    );
    o.insert("spo2_slow_pct".into(), opt_sfloat(m.slow.map(|p| p.spo2)));
    o.insert(
        "pulse_rate_slow_bpm".into(),
        opt_sfloat(m.slow.map(|p| p.pulse_rate)),
    );
    plx_status(&mut o, &m.status);
    Value::Object(o)
}

fn temperature(m: &TemperatureMeasurement) -> Value {
    let t = m.temperature;
    json!({
        "flags": m.flags(),
        "temperature": t.value().map_or_else(|| Value::from(t.kind().as_str()), decimal),
        "temperature_unit": m.unit.as_str(),
        "timestamp": opt_date_time(m.timestamp.as_ref()),
        "temperature_type": opt(m.temperature_type),
        "temperature_type_name": opt(m.temperature_type_name()),
    })
}

fn weight(m: &WeightMeasurement) -> Value {
    let b = m.bmi_height;
    json!({
        "flags": m.flags(),
        "unit_system": m.unit_system.as_str(),
        "weight_raw": m.weight_raw,
        "weight": m.weight().map_or_else(|| Value::from("MEASUREMENT_UNSUCCESSFUL"), decimal),
        "weight_unit": m.unit_system.weight_unit(),
        "timestamp": opt_date_time(m.timestamp.as_ref()),
        "user_id": opt(m.user_id),
        "bmi_raw": opt(b.map(|b| b.bmi_raw)),
        "bmi": opt_decimal(m.bmi()),
        "height_raw": opt(b.map(|b| b.height_raw)),
        "height": opt_decimal(m.height()),
        "height_unit": opt(b.map(|_| m.unit_system.height_unit())),
    })
}

/// A float32 setting: the shortest decimal that reads back as the same float32, as an
/// integer when whole; NaN and infinities as their special strings.
fn f32_value(v: f32) -> Value {
    if v.is_nan() {
        return Value::from("NaN");
    }
    if v.is_infinite() {
        return Value::from(if v > 0.0 { "+INF" } else { "-INF" });
    }
    if v.fract() == 0.0 && f64::from(v).abs() <= MAX_EXACT as f64 {
        return Value::from(f64::from(v) as i64);
    }
    // Display writes the shortest text that parses back to the same f32.
    let text = v.to_string();
    Value::from(text.parse::<f64>().unwrap_or(f64::from(v)))
}

fn settings(s: &Settings) -> Value {
    let mut o = Map::new();
    for setting in &s.0 {
        let values: Vec<Value> = match setting {
            Setting::SampleRateHz(v) | Setting::ResolutionBits(v) | Setting::Range(v) => {
                v.iter().map(|&x| x.into()).collect()
            }
            Setting::RangeMilliunit(v) => v.iter().map(|&x| x.into()).collect(),
            Setting::Channels(v) => v.iter().map(|&x| x.into()).collect(),
            Setting::ConversionFactor(v) => v.iter().map(|&x| f32_value(x)).collect(),
        };
        o.insert(setting.name().into(), Value::Array(values));
    }
    Value::Object(o)
}

fn pmd_control_point(c: &ControlPoint) -> Value {
    match c {
        ControlPoint::Response(r) => json!({
            "response_code": pmd::RESPONSE_CODE,
            "opcode": r.opcode,
            "opcode_name": pmd::opcode_name(r.opcode),
            "measurement_type": r.type_byte & 0x3F,
            "measurement_type_name": pmd::measurement_type_name(r.type_byte),
            "status": r.status,
            "status_name": r.status_name(),
            "more": r.more(),
            "parameters_hex": to_hex(&r.parameters),
            "settings": r.settings().as_ref().map_or(Value::Null, settings),
        }),
        ControlPoint::Command(cmd) => {
            let t = cmd.type_byte();
            let mut o = Map::new();
            o.insert(
                "direction".into(),
                Direction::ClientToServer.as_str().into(),
            );
            o.insert("opcode".into(), cmd.opcode().into());
            o.insert("opcode_name".into(), pmd::opcode_name(cmd.opcode()).into());
            o.insert("measurement_type".into(), (t & 0x3F).into());
            o.insert(
                "measurement_type_name".into(),
                pmd::measurement_type_name(t).into(),
            );
            if let pmd::Command::Start { settings: s, .. } = cmd {
                o.insert(
                    "recording_type".into(),
                    cmd.recording_type().as_str().into(),
                );
                o.insert("settings".into(), settings(s));
            }
            Value::Object(o)
        }
        ControlPoint::Notice(n) => {
            let pmd::Notice::OnlineMeasurementStopped { type_bytes } = n;
            json!({
                "direction": Direction::ServerToClient.as_str(),
                "message": n.message(),
                "measurement_types": type_bytes.iter().map(|t| t & 0x3F).collect::<Vec<u8>>(),
                "measurement_type_names": type_bytes
                    .iter()
                    .map(|&t| pmd::measurement_type_name(t))
                    .collect::<Vec<&str>>(),
            })
        }
    }
}

fn pmd_data(f: &DataFrame) -> Value {
    json!({
        "measurement_type": f.measurement_type(),
        "timestamp_ns": f.timestamp_ns.to_string(),
        "frame_type": f.frame_type(),
        "compressed": f.compressed(),
        "samples_uv": f.samples_uv,
        "sample_count": f.samples_uv.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(ch: &str, hex: &str) -> Result<Value, Error> {
        decode(
            parse_characteristic(ch).unwrap(),
            &parse_hex(hex).unwrap(),
            None,
        )
    }

    /// spec/decode.md introduction: `<characteristic>` spellings.
    #[test]
    fn characteristics_parse_in_every_accepted_spelling() {
        for s in [
            "2A35",
            "0x2A35",
            "2a35",
            "0X2a35",
            "00002a35-0000-1000-8000-00805f9b34fb",
        ] {
            assert_eq!(
                parse_characteristic(s),
                Ok(Characteristic::BloodPressureMeasurement),
                "{s}"
            );
        }
        for s in [
            "FB005C81-02E7-F387-1CAD-8ACD2D8DF0C8",
            "fb005c81-02e7-f387-1cad-8acd2d8df0c8",
            "fb005c8102e7f3871cad8acd2d8df0c8",
        ] {
            assert_eq!(parse_characteristic(s), Ok(Characteristic::PmdControlPoint));
        }
        assert_eq!(
            parse_characteristic("FB005C82-02E7-F387-1CAD-8ACD2D8DF0C8"),
            Ok(Characteristic::PmdData)
        );
        assert_eq!(parse_characteristic("SFLOAT"), Ok(Characteristic::Sfloat));
        assert_eq!(parse_characteristic("float"), Ok(Characteristic::Float));
        assert_eq!(
            parse_characteristic("pmd-settings"),
            Ok(Characteristic::PmdSettings)
        );
        let e = parse_characteristic("2A00").unwrap_err();
        assert!(e.contains("2A35"), "{e}");
        assert!(parse_characteristic("FB005C80-02E7-F387-1CAD-8ACD2D8DF0C8").is_err());
    }

    /// spec/decode.md introduction: `<hex>` is the attribute value as carried over the air.
    #[test]
    fn hex_parses_with_spaces_colons_and_either_case() {
        assert_eq!(parse_hex("0aFF"), Ok(vec![0x0A, 0xFF]));
        assert_eq!(parse_hex("0a ff"), Ok(vec![0x0A, 0xFF]));
        assert_eq!(parse_hex("0A:fF"), Ok(vec![0x0A, 0xFF]));
        assert_eq!(parse_hex(""), Ok(vec![]));
        assert!(parse_hex("0a f").unwrap_err().contains("odd"));
        assert!(parse_hex("0g").unwrap_err().contains("'g'"));
    }

    /// spec/decode.md §1 "Numbers": 18.9 printed exactly, 100 for both encodings.
    #[test]
    fn ieee_values_print_as_their_shortest_decimal() {
        let v = run("sfloat", "BD F0").unwrap();
        assert_eq!(serde_json::to_string(&v["value"]).unwrap(), "18.9");
        assert_eq!(run("sfloat", "E8 F3").unwrap()["value"], json!(100));
        assert_eq!(run("sfloat", "64 00").unwrap()["value"], json!(100));
        let v = run("float", "5F 00 00 FB").unwrap();
        assert_eq!(serde_json::to_string(&v["value"]).unwrap(), "0.00095");
        let v = run("float", "FF FF FF 7F").unwrap();
        assert_eq!(v["value"].as_f64(), Some(-1e127));
    }

    /// spec/decode.md §4 settings type 5 (float32) and §1 "Numbers".
    #[test]
    fn float32_settings_print_their_shortest_decimal() {
        assert_eq!(serde_json::to_string(&f32_value(0.1)).unwrap(), "0.1");
        assert_eq!(f32_value(1.0), json!(1));
        assert_eq!(f32_value(f32::NAN), json!("NaN"));
        assert_eq!(f32_value(f32::NEG_INFINITY), json!("-INF"));
    }

    /// spec/decode.md §3 Glucose: a unit that belongs to an absent group is null.
    #[test]
    fn a_glucose_without_concentration_has_a_null_unit() {
        // flags 0x04 (mol/L but no concentration), seq 1, base time.
        let v = run("2A18", "04 0100 EA07 0B 16 07 3A 00").unwrap();
        assert_eq!(v["concentration_unit"], Value::Null);
        assert_eq!(v["flags"], json!(4));
    }
}
