//! InfluxDB line protocol: points and their exact text.
//!
//! `measurement,tag=value field=1.5 1700000000000`. Escaping follows the protocol's
//! reference: in measurements, commas and spaces; in tag keys, tag values and field
//! keys, commas, equals signs and spaces; in string field values, double quotes and
//! backslashes. Elsewhere a backslash is literal, but the protocol has no way to write
//! one just before a character it escapes or at the end of a name (InfluxDB's parser
//! would take it as an escape and misplace the element's end), nor a line break in a
//! name or tag value: the encoder refuses such a point rather than write a line the
//! server would read differently. Floats that are not finite have no literal either.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};

/// Timestamp precision of the lines (the `precision` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    Seconds,
    Milliseconds,
    Microseconds,
    Nanoseconds,
}

impl Precision {
    /// The spelling of the write APIs (`s`, `ms`, `us`, `ns`).
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Seconds => "s",
            Precision::Milliseconds => "ms",
            Precision::Microseconds => "us",
            Precision::Nanoseconds => "ns",
        }
    }

    pub fn parse(s: &str) -> Option<Precision> {
        Some(match s {
            "s" => Precision::Seconds,
            "ms" => Precision::Milliseconds,
            "us" => Precision::Microseconds,
            "ns" => Precision::Nanoseconds,
            _ => return None,
        })
    }

    /// `t` in this precision (truncated), or `None` outside the protocol's range.
    pub fn timestamp(self, t: DateTime<Utc>) -> Option<i64> {
        match self {
            Precision::Seconds => Some(t.timestamp()),
            Precision::Milliseconds => Some(t.timestamp_millis()),
            Precision::Microseconds => Some(t.timestamp_micros()),
            Precision::Nanoseconds => t.timestamp_nanos_opt(),
        }
    }
}

/// A field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Float(f64),
    Integer(i64),
    Boolean(bool),
    String(String),
}

/// One point.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub measurement: String,
    /// Written sorted by key, as the servers prefer; empty values are left out (the
    /// protocol has no empty tag value).
    pub tags: Vec<(String, String)>,
    /// At least one.
    pub fields: Vec<(String, FieldValue)>,
    pub time: DateTime<Utc>,
}

/// Why a point cannot be written as a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error("a point needs a measurement name")]
    NoMeasurement,
    #[error("a point needs at least one field")]
    NoFields,
    #[error("{0} contains a line break, which line protocol cannot carry")]
    LineBreak(String),
    #[error(
        "{0} has a backslash before an escaped character or at its end, which line protocol cannot carry"
    )]
    Backslash(String),
    #[error("field {0} is not a finite number")]
    NotFinite(String),
    #[error("the time is outside what the chosen precision can write")]
    TimeOutOfRange,
    #[error("an empty tag key or field key")]
    EmptyKey,
    #[error("measurement {0:?} begins with '#', which makes the line a comment")]
    Comment(String),
}

impl Point {
    /// Appends the point's line (with its final newline) to `out`. On error nothing is
    /// appended.
    pub fn write_line(&self, precision: Precision, out: &mut String) -> Result<(), LineError> {
        if self.measurement.is_empty() {
            return Err(LineError::NoMeasurement);
        }
        if self.fields.is_empty() {
            return Err(LineError::NoFields);
        }
        let ts = precision
            .timestamp(self.time)
            .ok_or(LineError::TimeOutOfRange)?;
        let start = out.len();
        let result = self.write_parts(ts, out);
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn write_parts(&self, ts: i64, out: &mut String) -> Result<(), LineError> {
        // A line that begins with '#' is a comment, and no escape changes that.
        if self.measurement.starts_with('#') {
            return Err(LineError::Comment(self.measurement.clone()));
        }
        escape(out, "measurement", &self.measurement, &[',', ' '])?;
        let mut tags: Vec<&(String, String)> =
            self.tags.iter().filter(|(_, v)| !v.is_empty()).collect();
        tags.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in tags {
            if k.is_empty() {
                return Err(LineError::EmptyKey);
            }
            out.push(',');
            escape(out, "tag key", k, &[',', '=', ' '])?;
            out.push('=');
            escape(out, "tag value", v, &[',', '=', ' '])?;
        }
        for (i, (k, v)) in self.fields.iter().enumerate() {
            if k.is_empty() {
                return Err(LineError::EmptyKey);
            }
            out.push(if i == 0 { ' ' } else { ',' });
            escape(out, "field key", k, &[',', '=', ' '])?;
            out.push('=');
            match v {
                FieldValue::Float(f) if f.is_finite() => {
                    // `{:?}` keeps a decimal point or exponent, so a whole number stays
                    // a float for the server (42.0, not the integer-looking 42).
                    let _ = write!(out, "{f:?}");
                }
                FieldValue::Float(_) => return Err(LineError::NotFinite(k.clone())),
                FieldValue::Integer(n) => {
                    let _ = write!(out, "{n}i");
                }
                FieldValue::Boolean(b) => out.push_str(if *b { "true" } else { "false" }),
                FieldValue::String(s) => {
                    out.push('"');
                    for c in s.chars() {
                        if c == '"' || c == '\\' {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                    out.push('"');
                }
            }
        }
        let _ = writeln!(out, " {ts}");
        Ok(())
    }
}

/// Writes `s` with a backslash before each of `special`.
fn escape(out: &mut String, what: &str, s: &str, special: &[char]) -> Result<(), LineError> {
    if s.contains(['\n', '\r']) {
        return Err(LineError::LineBreak(format!("{what} {s:?}")));
    }
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && chars
                .peek()
                .is_none_or(|n| special.contains(n) || *n == '\\')
        {
            return Err(LineError::Backslash(format!("{what} {s:?}")));
        }
        if special.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_764_547_200_123).unwrap()
    }

    fn point(tags: &[(&str, &str)], fields: Vec<(&str, FieldValue)>) -> Point {
        Point {
            measurement: "bp".into(),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            time: t(),
        }
    }

    fn line(p: &Point, precision: Precision) -> String {
        let mut s = String::new();
        p.write_line(precision, &mut s).unwrap();
        s
    }

    #[test]
    fn a_plain_point_is_one_line_with_sorted_tags_and_float_fields() {
        let p = point(
            &[("patient_id", "p-1"), ("device_id", "bpm-1"), ("empty", "")],
            vec![
                ("systolic_mmhg", FieldValue::Float(142.0)),
                ("diastolic_mmhg", FieldValue::Float(91.5)),
            ],
        );
        assert_eq!(
            line(&p, Precision::Milliseconds),
            "bp,device_id=bpm-1,patient_id=p-1 systolic_mmhg=142.0,diastolic_mmhg=91.5 1764547200123\n"
        );
        assert!(line(&p, Precision::Seconds).ends_with(" 1764547200\n"));
        assert!(line(&p, Precision::Nanoseconds).ends_with(" 1764547200123000000\n"));
    }

    #[test]
    fn special_characters_are_escaped_where_the_protocol_says() {
        let p = Point {
            measurement: "m e,a=s".into(),
            tags: vec![("k ,=".into(), "v a,l=ue \"q\" \\x 医联体".into())],
            fields: vec![
                (
                    "f ,=".into(),
                    FieldValue::String("say \"hi\" \\ 危急值, a=b".into()),
                ),
                ("n".into(), FieldValue::Integer(-3)),
                ("b".into(), FieldValue::Boolean(true)),
            ],
            time: t(),
        };
        assert_eq!(
            line(&p, Precision::Milliseconds),
            "m\\ e\\,a=s,k\\ \\,\\==v\\ a\\,l\\=ue\\ \"q\"\\ \\x\\ 医联体 f\\ \\,\\==\"say \\\"hi\\\" \\\\ 危急值, a=b\",n=-3i,b=true 1764547200123\n"
        );
    }

    #[test]
    fn a_backslash_the_protocol_cannot_carry_is_refused() {
        for v in ["a\\", "a\\,b", "a\\ b", "a\\=b", "a\\\\b"] {
            let p = point(&[("site", v)], vec![("v", FieldValue::Float(1.0))]);
            let mut out = String::new();
            assert!(
                matches!(
                    p.write_line(Precision::Seconds, &mut out),
                    Err(LineError::Backslash(_))
                ),
                "{v:?}"
            );
        }
        // A backslash before an ordinary character is written as it is.
        let p = point(&[("path", "C:\\data")], vec![("v", FieldValue::Float(1.0))]);
        assert_eq!(
            line(&p, Precision::Seconds),
            "bp,path=C:\\data v=1.0 1764547200\n"
        );
    }

    #[test]
    fn points_that_cannot_be_lines_are_refused_and_write_nothing() {
        let mut out = String::from("kept\n");
        let bad = [
            point(&[("a", "x\ny")], vec![("v", FieldValue::Float(1.0))]),
            point(&[], vec![("v", FieldValue::Float(f64::NAN))]),
            point(&[], vec![]),
            point(&[("", "x")], vec![("v", FieldValue::Float(1.0))]),
        ];
        for p in bad {
            assert!(p.write_line(Precision::Milliseconds, &mut out).is_err());
        }
        let far = Point {
            time: DateTime::from_timestamp(i64::from(i32::MAX) * 100, 0).unwrap(),
            ..point(&[], vec![("v", FieldValue::Float(1.0))])
        };
        assert_eq!(
            far.write_line(Precision::Nanoseconds, &mut out),
            Err(LineError::TimeOutOfRange)
        );
        assert_eq!(out, "kept\n");
    }

    #[test]
    fn a_measurement_that_would_make_a_comment_is_refused() {
        let p = Point {
            measurement: "#x".into(),
            ..point(&[], vec![("v", FieldValue::Float(1.0))])
        };
        let mut out = String::new();
        assert_eq!(
            p.write_line(Precision::Seconds, &mut out),
            Err(LineError::Comment("#x".into()))
        );
        assert!(out.is_empty());
    }
}
