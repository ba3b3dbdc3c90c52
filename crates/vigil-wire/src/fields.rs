//! Typed access to JSON object fields, with errors an integrator can act on.
//!
//! Every accessor names the field by its path (`'values.systolic'`), says what was
//! expected and what arrived. `null` counts as absent: an optional field may be
//! `null`, a required one may not.

use crate::json::{Json, Object};
use chrono::{DateTime, FixedOffset, NaiveDateTime};
use vigil_model::vocab::VocabError;

use crate::error::ReadingErrorKind as Kind;

/// One thing wrong with a reading, before it is tied to the reading's index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub kind: Kind,
    pub message: String,
}

impl Problem {
    pub(crate) fn new(kind: Kind, message: impl Into<String>) -> Problem {
        Problem {
            kind,
            message: message.into(),
        }
    }
}

/// The JSON type of a value, as an error message names it.
pub(crate) fn type_name(v: &Json<'_>) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(n) if n.is_f64() => "a number with a fraction",
        Json::Number(_) => "an integer",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

/// Fields of one JSON object, named in errors with `prefix` (e.g. `values.`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields<'a> {
    map: &'a Object<'a>,
    prefix: &'static str,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(map: &'a Object<'a>, prefix: &'static str) -> Self {
        Fields { map, prefix }
    }

    /// The quoted path of a field: `'values.systolic'`.
    pub(crate) fn name(&self, key: &str) -> String {
        format!("'{}{key}'", self.prefix)
    }

    /// The field, or `None` when absent or null.
    pub(crate) fn get(&self, key: &str) -> Option<&'a Json<'a>> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub(crate) fn req(&self, key: &str) -> Result<&'a Json<'a>, Problem> {
        self.get(key).ok_or_else(|| match self.map.get(key) {
            Some(_) => Problem::new(
                Kind::MissingField,
                format!("{} is required and may not be null", self.name(key)),
            ),
            None => Problem::new(Kind::MissingField, format!("missing {}", self.name(key))),
        })
    }

    fn wrong_type(&self, key: &str, expected: &str, got: &Json<'_>) -> Problem {
        Problem::new(
            Kind::WrongType,
            format!(
                "{} must be {expected}, not {}",
                self.name(key),
                type_name(got)
            ),
        )
    }

    fn number_of(&self, key: &str, v: &Json<'_>) -> Result<f64, Problem> {
        // serde_json never yields a non-finite number (it refuses 1e999 at parse
        // time), but the check is kept here so no NaN can enter the model.
        match v.as_f64() {
            Some(x) if x.is_finite() => Ok(x),
            Some(_) => Err(Problem::new(
                Kind::Meaningless,
                format!("{} must be a finite number", self.name(key)),
            )),
            None => Err(self.wrong_type(key, "a number", v)),
        }
    }

    pub(crate) fn opt_number(&self, key: &str) -> Result<Option<f64>, Problem> {
        self.get(key).map(|v| self.number_of(key, v)).transpose()
    }

    pub(crate) fn req_number(&self, key: &str) -> Result<f64, Problem> {
        self.number_of(key, self.req(key)?)
    }

    fn non_negative(&self, key: &str, x: f64) -> Result<f64, Problem> {
        if x < 0.0 {
            Err(Problem::new(
                Kind::Meaningless,
                format!("{} must not be negative (got {x})", self.name(key)),
            ))
        } else {
            Ok(x)
        }
    }

    /// A quantity that cannot be negative (a pressure, a rate, a concentration).
    pub(crate) fn req_quantity(&self, key: &str) -> Result<f64, Problem> {
        let x = self.req_number(key)?;
        self.non_negative(key, x)
    }

    pub(crate) fn opt_quantity(&self, key: &str) -> Result<Option<f64>, Problem> {
        self.opt_number(key)?
            .map(|x| self.non_negative(key, x))
            .transpose()
    }

    pub(crate) fn opt_u64(&self, key: &str) -> Result<Option<u64>, Problem> {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match v {
            Json::Number(n) => n.as_u64().map(Some).ok_or_else(|| {
                Problem::new(
                    Kind::Meaningless,
                    format!(
                        "{} must be a non-negative integer below 2^64, not {n}",
                        self.name(key)
                    ),
                )
            }),
            other => Err(self.wrong_type(key, "a non-negative integer", other)),
        }
    }

    fn str_of(&self, key: &str, v: &'a Json<'a>) -> Result<&'a str, Problem> {
        v.as_str()
            .ok_or_else(|| self.wrong_type(key, "a string", v))
    }

    pub(crate) fn req_str(&self, key: &str) -> Result<&'a str, Problem> {
        self.str_of(key, self.req(key)?)
    }

    pub(crate) fn opt_str(&self, key: &str) -> Result<Option<&'a str>, Problem> {
        self.get(key).map(|v| self.str_of(key, v)).transpose()
    }

    fn vocab_of<T>(
        &self,
        key: &str,
        v: &'a Json<'a>,
        parse: fn(&str) -> Result<T, VocabError>,
    ) -> Result<T, Problem> {
        let s = self.str_of(key, v)?;
        parse(s).map_err(|e| Problem::new(Kind::Vocabulary, format!("{}: {e}", self.name(key))))
    }

    pub(crate) fn req_vocab<T>(
        &self,
        key: &str,
        parse: fn(&str) -> Result<T, VocabError>,
    ) -> Result<T, Problem> {
        self.vocab_of(key, self.req(key)?, parse)
    }

    pub(crate) fn opt_vocab<T>(
        &self,
        key: &str,
        parse: fn(&str) -> Result<T, VocabError>,
    ) -> Result<Option<T>, Problem> {
        self.get(key)
            .map(|v| self.vocab_of(key, v, parse))
            .transpose()
    }

    pub(crate) fn opt_array(&self, key: &str) -> Result<Option<&'a [Json<'a>]>, Problem> {
        self.get(key)
            .map(|v| {
                v.as_array()
                    .ok_or_else(|| self.wrong_type(key, "an array", v))
            })
            .transpose()
    }

    pub(crate) fn req_array(&self, key: &str) -> Result<&'a [Json<'a>], Problem> {
        let v = self.req(key)?;
        v.as_array()
            .ok_or_else(|| self.wrong_type(key, "an array", v))
    }

    /// A nested object, whose fields are then named with `prefix` (`"values."`).
    pub(crate) fn req_object(
        &self,
        key: &str,
        prefix: &'static str,
    ) -> Result<Fields<'a>, Problem> {
        let v = self.req(key)?;
        v.as_object()
            .map(|m| Fields::new(m, prefix))
            .ok_or_else(|| self.wrong_type(key, "an object", v))
    }

    /// An RFC 3339 instant with a UTC offset.
    pub(crate) fn req_instant(&self, key: &str) -> Result<DateTime<FixedOffset>, Problem> {
        let s = self.req_str(key)?;
        parse_instant(s)
            .map_err(|why| Problem::new(Kind::Time, format!("{} {s:?} {why}", self.name(key))))
    }

    /// The device's raw clock: a date-time without offset.
    pub(crate) fn opt_device_time(&self, key: &str) -> Result<Option<NaiveDateTime>, Problem> {
        let Some(s) = self.opt_str(key)? else {
            return Ok(None);
        };
        parse_device_time(s)
            .map(Some)
            .map_err(|why| Problem::new(Kind::Time, format!("{} {s:?} {why}", self.name(key))))
    }
}

/// Parses an RFC 3339 date-time that carries an offset (`Z` or `±hh:mm`).
///
/// The error completes a sentence that starts with the field name and value.
pub fn parse_instant(s: &str) -> Result<DateTime<FixedOffset>, String> {
    match DateTime::parse_from_rfc3339(s) {
        Ok(t) => Ok(t),
        Err(e) => {
            if parse_device_time(s).is_ok() {
                Err("has no UTC offset; add one, e.g. '+08:00' or 'Z'".to_owned())
            } else if e.kind() == chrono::format::ParseErrorKind::OutOfRange {
                Err("is not a real instant (a field such as the day, hour or offset is out of range)"
                    .to_owned())
            } else {
                Err("is not an RFC 3339 date-time such as '2026-11-22T07:58:03+08:00'".to_owned())
            }
        }
    }
}

/// Parses a device clock value: `YYYY-MM-DDThh:mm:ss[.fff]`, no offset.
pub fn parse_device_time(s: &str) -> Result<NaiveDateTime, String> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").map_err(|e| {
        if DateTime::parse_from_rfc3339(s).is_ok() {
            "carries an offset; send the device's raw clock without one, e.g. '2026-11-22T07:58:00'"
                .to_owned()
        } else if e.kind() == chrono::format::ParseErrorKind::OutOfRange {
            "is not a real date-time (a field is out of range)".to_owned()
        } else {
            "is not a date-time such as '2026-11-22T07:58:00'".to_owned()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_need_an_offset_and_a_real_calendar_date() {
        assert!(parse_instant("2026-11-22T07:58:03+08:00").is_ok());
        assert!(parse_instant("2026-11-21T23:58:03.250Z").is_ok());
        assert!(
            parse_instant("2026-11-22T07:58:03")
                .unwrap_err()
                .contains("no UTC offset")
        );
        assert!(
            parse_instant("2026-02-30T07:58:03+08:00")
                .unwrap_err()
                .contains("not a real instant")
        );
        assert!(
            parse_instant("2026-11-22T25:58:03+08:00")
                .unwrap_err()
                .contains("not a real instant")
        );
        assert!(parse_instant("yesterday").unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn device_time_is_naive() {
        assert!(parse_device_time("2026-11-22T07:58:00").is_ok());
        assert!(parse_device_time("2026-11-22T07:58:00.5").is_ok());
        assert!(
            parse_device_time("2026-11-22T07:58:00+08:00")
                .unwrap_err()
                .contains("offset")
        );
    }
}
