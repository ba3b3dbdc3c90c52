//! Property test of the line-protocol encoder against a reference reader written from
//! the protocol's rules (InfluxDB line protocol reference): any name, tag and string
//! value either reads back exactly, or is refused for a reason the protocol gives.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use chrono::DateTime;
use proptest::prelude::*;
use vigil_tsdb::{FieldValue, LineError, Point, Precision};

/// Splits `s` at the first of `stops` not escaped by a backslash, returning (element,
/// rest starting at the stop).
fn take(s: &str, stops: &[char]) -> (String, String) {
    let mut out = String::new();
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '\\' {
            out.push(c);
            if let Some((_, n)) = chars.next() {
                out.push(n);
            }
            continue;
        }
        if stops.contains(&c) {
            return (out, s[i..].to_owned());
        }
        out.push(c);
    }
    (out, String::new())
}

/// Undoes the escapes of `specials` (other backslashes are literal).
fn unescape(s: &str, specials: &[char]) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' && chars.peek().is_some_and(|n| specials.contains(n)) {
            out.push(chars.next().unwrap());
        } else {
            out.push(c);
        }
    }
    out
}

type Parsed = (String, Vec<(String, String)>, Vec<(String, String)>, i64);

fn read(line: &str) -> Parsed {
    let line = line.strip_suffix('\n').unwrap();
    let (m, mut rest) = take(line, &[',', ' ']);
    let measurement = unescape(&m, &[',', ' ']);
    let mut tags = Vec::new();
    while let Some(r) = rest.strip_prefix(',') {
        let (kv, r2) = take(r, &[',', ' ']);
        let (k, v) = take(&kv, &['=']);
        tags.push((
            unescape(&k, &[',', '=', ' ']),
            unescape(&v[1..], &[',', '=', ' ']),
        ));
        rest = r2;
    }
    let mut rest = rest.strip_prefix(' ').unwrap().to_owned();
    let mut fields = Vec::new();
    loop {
        // A key runs to its unescaped '='; quotes mean nothing in keys.
        let (k, r) = take(&rest, &['=']);
        let r = &r[1..];
        let (value, after) = if let Some(inner) = r.strip_prefix('"') {
            // A string runs to the first quote not escaped by a backslash.
            let mut end = None;
            let mut chars = inner.char_indices();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        chars.next();
                    }
                    '"' => {
                        end = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let end = end.unwrap();
            (
                unescape(&inner[..end], &['"', '\\']),
                inner[end + 1..].to_owned(),
            )
        } else {
            let (v, after) = take(r, &[',', ' ']);
            (v, after)
        };
        fields.push((unescape(&k, &[',', '=', ' ']), value));
        match after.strip_prefix(',') {
            Some(more) => rest = more.to_owned(),
            None => {
                rest = after;
                break;
            }
        }
    }
    let ts = rest.strip_prefix(' ').unwrap();
    (measurement, tags, fields, ts.trim().parse().unwrap())
}

fn text() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just(' '),
            Just(','),
            Just('='),
            Just('"'),
            Just('\\'),
            Just('#'),
            Just('医'),
            Just('é'),
            proptest::char::range('a', 'z'),
        ],
        1..12,
    )
    .prop_map(|v| v.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn any_point_reads_back_exactly_or_is_refused_for_a_protocol_reason(
        measurement in text(), tag_key in text(), tag_value in text(),
        field_key in text(), string_value in text(), number in -1e9f64..1e9,
    ) {
        let p = Point {
            measurement: measurement.clone(),
            tags: vec![(tag_key.clone(), tag_value.clone())],
            fields: vec![
                (field_key.clone(), FieldValue::String(string_value.clone())),
                ("n".to_owned(), FieldValue::Float(number)),
            ],
            time: DateTime::from_timestamp_millis(1_764_547_200_123).unwrap(),
        };
        let mut line = String::new();
        match p.write_line(Precision::Milliseconds, &mut line) {
            Ok(()) => {
                let (m, tags, fields, ts) = read(&line);
                prop_assert_eq!(m, measurement);
                prop_assert_eq!(tags, vec![(tag_key, tag_value)]);
                prop_assert_eq!(&fields[0], &(field_key, string_value));
                prop_assert_eq!(fields[1].1.parse::<f64>().unwrap(), number);
                prop_assert_eq!(ts, 1_764_547_200_123);
            }
            Err(LineError::Backslash(_)) => {
                // Only where a backslash stands before an escaped character or at the
                // end of a name, key or tag value.
                let unwritable = |s: &str, specials: &[char]| {
                    let c: Vec<char> = s.chars().collect();
                    c.iter().enumerate().any(|(i, ch)| *ch == '\\'
                        && c.get(i + 1).is_none_or(|n| specials.contains(n) || *n == '\\'))
                };
                prop_assert!(
                    unwritable(&measurement, &[',', ' '])
                        || [&tag_key, &tag_value, &field_key].iter().any(|s| unwritable(s, &[',', '=', ' ']))
                );
            }
            Err(LineError::Comment(_)) => prop_assert!(measurement.starts_with('#')),
            Err(e) => prop_assert!(false, "unexpected refusal {e}"),
        }
    }
}
