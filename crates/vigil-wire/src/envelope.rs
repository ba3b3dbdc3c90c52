//! The readings envelope (`vigil.readings.v1`): decode with per-reading errors, and
//! encode.
//!
//! Decoding runs in two levels. The envelope itself (size, nesting, JSON syntax,
//! `schema`, `gateway_id`, `batch_seq`, `sent_at`, `readings` being an array) must be
//! sound, or nothing in it is trusted ([`EnvelopeError`]). Then every reading is
//! decoded on its own: a bad reading yields a [`ReadingError`] and its siblings are
//! unaffected. Unknown fields are ignored anywhere, so producers may add optional
//! fields without breaking older consumers.

use chrono::{DateTime, FixedOffset};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;
use vigil_model::id::{DeviceId, GatewayId};
use vigil_model::reading::Reading;
use vigil_model::vocab::Symptom;

use crate::error::{
    EnvelopeError, EnvelopeErrorKind as EKind, ReadingError, ReadingErrorKind as Kind,
};
use crate::fields::{Fields, Problem, parse_instant, type_name};
use crate::json::{Json, Object};
use crate::measurement::{decode_measurement, opt, serialize_measurement_entries};

/// The `schema` of a readings envelope.
pub const READINGS_SCHEMA: &str = "vigil.readings.v1";

/// Limits that keep a hostile or broken payload from costing unbounded memory or
/// stack. Exceeding one rejects the whole envelope with a message that says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted payload. Default 16 MiB: an envelope of 10 000 readings is
    /// about 2 MiB, five minutes of 3-lead ECG at 500 Hz about 4 MiB.
    pub max_bytes: usize,
    /// Deepest accepted nesting of arrays and objects. The contract needs 5; the
    /// default of 32 leaves room for optional fields added later.
    pub max_depth: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_bytes: 16 * 1024 * 1024,
            max_depth: 32,
        }
    }
}

/// An envelope to publish: every reading is already valid.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub gateway_id: GatewayId,
    /// Increases by exactly 1 per new envelope, per gateway, across reboots.
    pub batch_seq: u64,
    pub sent_at: DateTime<FixedOffset>,
    pub readings: Vec<Reading>,
}

/// An envelope as received: sound at the envelope level, each reading decoded or
/// rejected on its own.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedEnvelope {
    pub gateway_id: GatewayId,
    pub batch_seq: u64,
    pub sent_at: DateTime<FixedOffset>,
    /// In the order of the envelope's `readings` array.
    pub readings: Vec<Result<Reading, ReadingError>>,
}

impl DecodedEnvelope {
    /// True when every reading decoded.
    pub fn all_ok(&self) -> bool {
        self.readings.iter().all(Result::is_ok)
    }
}

/// Decodes a readings envelope with the default limits.
pub fn decode_envelope(payload: &[u8]) -> Result<DecodedEnvelope, EnvelopeError> {
    decode_envelope_with(payload, DecodeLimits::default())
}

/// Decodes a readings envelope.
pub fn decode_envelope_with(
    payload: &[u8],
    limits: DecodeLimits,
) -> Result<DecodedEnvelope, EnvelopeError> {
    let root = parse_json(payload, limits)?;
    let Json::Object(obj) = root else {
        return Err(EnvelopeError::new(
            EKind::NotObject,
            format!(
                "the envelope must be a JSON object, not {}",
                type_name(&root)
            ),
        ));
    };
    let f = Fields::new(&obj, "");

    match f.get("schema") {
        Some(Json::String(s)) if s == READINGS_SCHEMA => {}
        Some(Json::String(s)) => {
            return Err(EnvelopeError::new(
                EKind::Schema,
                format!("'schema' is {s:?}; this endpoint takes {READINGS_SCHEMA:?}"),
            ));
        }
        Some(other) => {
            return Err(EnvelopeError::new(
                EKind::Schema,
                format!(
                    "'schema' must be the string {READINGS_SCHEMA:?}, not {}",
                    type_name(other)
                ),
            ));
        }
        None => {
            return Err(EnvelopeError::new(
                EKind::Schema,
                format!("missing 'schema'; set it to {READINGS_SCHEMA:?}"),
            ));
        }
    }

    let gateway_id = f
        .req_str("gateway_id")
        .map_err(|p| EnvelopeError::new(EKind::GatewayId, p.message))
        .and_then(|s| {
            GatewayId::parse(s).map_err(|e| {
                EnvelopeError::new(EKind::GatewayId, format!("'gateway_id' {s:?} {e}"))
            })
        })?;

    let batch_seq = match f.get("batch_seq") {
        Some(Json::Number(n)) => n.as_u64().ok_or_else(|| {
            EnvelopeError::new(
                EKind::BatchSeq,
                format!("'batch_seq' must be a non-negative integer below 2^64, not {n}"),
            )
        })?,
        Some(other) => {
            return Err(EnvelopeError::new(
                EKind::BatchSeq,
                format!(
                    "'batch_seq' must be a non-negative integer, not {}",
                    type_name(other)
                ),
            ));
        }
        None => {
            return Err(EnvelopeError::new(
                EKind::BatchSeq,
                "missing 'batch_seq' (the gateway's envelope counter, +1 per new envelope)",
            ));
        }
    };

    let sent_at = match f.req_str("sent_at") {
        Ok(s) => parse_instant(s)
            .map_err(|why| EnvelopeError::new(EKind::SentAt, format!("'sent_at' {s:?} {why}")))?,
        Err(p) => return Err(EnvelopeError::new(EKind::SentAt, p.message)),
    };

    let readings = match f.get("readings") {
        Some(Json::Array(items)) => items,
        Some(other) => {
            return Err(EnvelopeError::new(
                EKind::Readings,
                format!("'readings' must be an array, not {}", type_name(other)),
            ));
        }
        None => {
            return Err(EnvelopeError::new(
                EKind::Readings,
                "missing 'readings' (an array of readings, possibly empty)",
            ));
        }
    };

    let readings = readings
        .iter()
        .enumerate()
        .map(|(index, raw)| {
            decode_reading(raw).map_err(|p| ReadingError {
                index,
                kind: p.kind,
                message: p.message,
                raw: raw.to_value(),
            })
        })
        .collect();

    Ok(DecodedEnvelope {
        gateway_id,
        batch_seq,
        sent_at,
        readings,
    })
}

/// Size, nesting and syntax checks, then the JSON tree.
fn parse_json(payload: &[u8], limits: DecodeLimits) -> Result<Json<'_>, EnvelopeError> {
    if payload.len() > limits.max_bytes {
        return Err(EnvelopeError::new(
            EKind::TooLarge,
            format!(
                "the envelope is {} bytes; the limit is {} bytes: split its readings over several envelopes",
                payload.len(),
                limits.max_bytes
            ),
        ));
    }
    // Too deep is the error whatever else is wrong. Checked after parsing, from the
    // tree (the bracket scan, byte by byte, was a fifth of a decode's instructions),
    // and on a failed parse; serde_json's own limit of 128 levels keeps the parser's
    // recursion bounded meanwhile.
    let too_deep = || {
        exceeds_depth(payload, limits.max_depth).map(|at| {
            EnvelopeError::new(
                EKind::TooDeep,
                format!(
                    "the envelope nests arrays and objects deeper than {} levels (at byte {at})",
                    limits.max_depth
                ),
            )
        })
    };
    let parsed = Json::parse(payload);
    if parsed
        .as_ref()
        .map_or(true, |tree| tree.nesting() > limits.max_depth)
        && let Some(e) = too_deep()
    {
        return Err(e);
    }
    parsed.map_err(|e| {
        let text = e.to_string();
        if text.starts_with("number out of range") {
            EnvelopeError::new(
                EKind::NumberOutOfRange,
                format!(
                    "a number cannot be represented ({text}); send finite values within ±1.7e308"
                ),
            )
        } else if let Some(token) = non_finite_token_at(payload, e.line(), e.column()) {
            EnvelopeError::new(
                EKind::NumberOutOfRange,
                format!(
                    "{token} is not a JSON number (line {}, column {}); send finite values only",
                    e.line(),
                    e.column()
                ),
            )
        } else {
            EnvelopeError::new(EKind::NotJson, format!("not valid JSON: {text}"))
        }
    })
}

/// The non-finite literal (`NaN`, `Infinity`, ...) a JSON syntax error points at, if
/// any: some gateway firmwares print floats with C's `printf`, which writes these.
fn non_finite_token_at(payload: &[u8], line: usize, column: usize) -> Option<&'static str> {
    let line_start = if line <= 1 {
        0
    } else {
        payload
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(line - 2)
            .map(|(i, _)| i + 1)?
    };
    // serde_json reports the column of the first offending byte, 1-based; look a
    // little to the left too, since a sign may already have been consumed.
    let at = line_start + column.saturating_sub(1);
    let from = at.saturating_sub(2).max(line_start);
    let window = payload.get(from..(at + 10).min(payload.len()))?;
    let text = String::from_utf8_lossy(window).to_ascii_lowercase();
    ["-infinity", "infinity", "-inf", "inf", "nan"]
        .into_iter()
        .find(|t| text.contains(t))
        .map(|t| match t {
            "nan" => "NaN",
            "-infinity" | "-inf" => "-Infinity",
            _ => "Infinity",
        })
}

/// The byte offset at which nesting first exceeds `max_depth`, if it does. Scans
/// brackets outside strings; for a sound document, it finds an excess exactly when
/// the tree's nesting exceeds `max_depth` (`json::tests::nesting_is_the_deepest_bracket`).
pub(crate) fn exceeds_depth(payload: &[u8], max_depth: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in payload.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max_depth {
                    return Some(i);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Decodes one reading as it stands in an envelope (for re-processing a reading kept in
/// quarantine). `index` only labels the error.
pub fn decode_reading_value(index: usize, raw: &Value) -> Result<Reading, ReadingError> {
    decode_reading(&Json::of_value(raw)).map_err(|p| ReadingError {
        index,
        kind: p.kind,
        message: p.message,
        raw: raw.clone(),
    })
}

fn decode_reading(raw: &Json<'_>) -> Result<Reading, Problem> {
    let Json::Object(obj) = raw else {
        return Err(Problem::new(
            Kind::NotObject,
            format!("a reading must be a JSON object, not {}", type_name(raw)),
        ));
    };
    decode_reading_object(obj)
}

fn decode_reading_object(obj: &Object<'_>) -> Result<Reading, Problem> {
    let f = Fields::new(obj, "");
    let device_text = f.req_str("device_id")?;
    let device_id = DeviceId::parse(device_text)
        .map_err(|e| Problem::new(Kind::Id, format!("'device_id' {device_text:?} {e}")))?;
    let measurement = decode_measurement(&f)?;
    let time = f.req_instant("time")?;
    let device_time = f.opt_device_time("device_time")?;
    let record_seq = f.opt_u64("record_seq")?;

    let status = match f.opt_array("status")? {
        None => Vec::new(),
        Some(items) => items
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.as_str().map(str::to_owned).ok_or_else(|| {
                    Problem::new(
                        Kind::WrongType,
                        format!("'status[{i}]' must be a string, not {}", type_name(s)),
                    )
                })
            })
            .collect::<Result<_, _>>()?,
    };
    let symptoms = match f.opt_array("symptoms")? {
        None => Vec::new(),
        Some(items) => items
            .iter()
            .enumerate()
            .map(|(i, s)| match s.as_str() {
                Some(text) => Symptom::parse(text)
                    .map_err(|e| Problem::new(Kind::Vocabulary, format!("'symptoms[{i}]': {e}"))),
                None => Err(Problem::new(
                    Kind::WrongType,
                    format!("'symptoms[{i}]' must be a string, not {}", type_name(s)),
                )),
            })
            .collect::<Result<_, _>>()?,
    };

    Ok(Reading {
        device_id,
        record_seq,
        time,
        device_time,
        measurement,
        status,
        symptoms,
    })
}

/// RFC 3339 with the offset kept as sent (`+08:00`, `+00:00` for UTC).
pub fn format_instant(t: &DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)
}

/// A reading in its wire form.
pub struct ReadingJson<'a>(pub &'a Reading);

impl Serialize for ReadingJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("device_id", &r.device_id)?;
        opt(&mut map, "record_seq", &r.record_seq)?;
        map.serialize_entry("time", &format_instant(&r.time))?;
        if let Some(t) = r.device_time {
            map.serialize_entry("device_time", &t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())?;
        }
        serialize_measurement_entries(&mut map, &r.measurement)?;
        if !r.status.is_empty() {
            map.serialize_entry("status", &r.status)?;
        }
        if !r.symptoms.is_empty() {
            map.serialize_entry("symptoms", &r.symptoms)?;
        }
        map.end()
    }
}

impl std::fmt::Debug for ReadingJson<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ReadingJson").field(self.0).finish()
    }
}

impl Serialize for Envelope {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(5))?;
        map.serialize_entry("schema", READINGS_SCHEMA)?;
        map.serialize_entry("gateway_id", &self.gateway_id)?;
        map.serialize_entry("batch_seq", &self.batch_seq)?;
        map.serialize_entry("sent_at", &format_instant(&self.sent_at))?;
        map.serialize_entry("readings", &ReadingsJson(&self.readings))?;
        map.end()
    }
}

struct ReadingsJson<'a>(&'a [Reading]);

impl Serialize for ReadingsJson<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(ReadingJson))
    }
}

/// Encodes an envelope as compact JSON.
pub fn encode_envelope(envelope: &Envelope) -> Vec<u8> {
    // Serializing our own types into a Vec cannot fail: every map key is a string and
    // every float is finite (the model's invariant). Fall back to an empty object
    // rather than panic if that invariant were ever broken.
    serde_json::to_vec(envelope).unwrap_or_else(|_| b"{}".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_literals_are_found_on_later_lines() {
        let p = b"{\n  \"a\": 1,\n  \"b\": -Infinity\n}";
        let e = serde_json::from_slice::<Value>(p).unwrap_err();
        assert_eq!(
            non_finite_token_at(p, e.line(), e.column()),
            Some("-Infinity")
        );
        let p = b"{\n  \"a\": 1,\n  \"b\": nope\n}";
        let e = serde_json::from_slice::<Value>(p).unwrap_err();
        assert_eq!(non_finite_token_at(p, e.line(), e.column()), None);
    }

    #[test]
    fn depth_scanner_ignores_brackets_inside_strings() {
        assert_eq!(exceeds_depth(br#"{"a":"[[[[[[[[[["}"#, 2), None);
        assert_eq!(exceeds_depth(br#"{"a":"\"[[[["}"#, 2), None);
        assert_eq!(exceeds_depth(b"[[[1]]]", 2), Some(2));
        assert_eq!(exceeds_depth(b"[[[1]]]", 3), None);
    }
}
