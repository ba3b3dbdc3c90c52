//! What a committed reading becomes in the time-series database.
//!
//! - **Measurement** = the reading type (`bp`, `glucose`, `spo2`, `heart_rate`,
//!   `temperature`, `weight`, `ecg`, `ecg_waveform`).
//! - **Tags**: `patient_id` (pseudonymous), `device_id`, `institution` (the patient's,
//!   from the registry), `unit` (the unit the device sent: `mm[Hg]`, `kPa`, `mg/dL`,
//!   `[degF]`, `jin`, ...), and the reading's categorical values in canonical form
//!   (`context`, `flag`, `site`, `source`, `activity`, `signal_quality`, `finding`,
//!   `lead_config`): low-cardinality text, kept as tags because VictoriaMetrics keeps
//!   numeric fields only.
//! - **Fields**: every canonical number, as a float, under its canonical key, which
//!   names its unit (`systolic_mmhg`, `glucose_mmol_l`, `spo2_pct`, `temperature_cel`,
//!   `weight_kg`, ...). A reading without any number (a glucose shown as HI or LO, an
//!   ECG finding without a rate) gets `reading=1`, so it is still a point and
//!   countable.
//! - **Time** = the measurement time.
//! - **ECG strips** ([`EcgExport::Samples`]): besides the strip's summary point, one
//!   point per sample in `ecg_sample` (tags as above plus `lead`, field `uv`), its time
//!   the first sample's plus `i / sample_rate_hz`, exactly (nanoseconds, rounded).
//!   Heavy: a 130 Hz single-lead patch is 130 points a second, a 500 Hz 12-lead
//!   recorder 6 000; so it is off by default. With millisecond precision, sample rates
//!   above 1 000 Hz would collide; use `us` or `ns`.

use chrono::TimeDelta;
use vigil_store::ExportRow;

use crate::line::{FieldValue, Point};

/// Whether ECG strips are exported sample by sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcgExport {
    /// Only the strip's summary point (rate, length, leads).
    Off,
    /// One point per sample as well.
    Samples,
}

/// The points of one committed reading.
pub fn points(row: &ExportRow, institution: Option<&str>, ecg: EcgExport) -> Vec<Point> {
    let mut tags: Vec<(String, String)> = vec![
        ("patient_id".to_owned(), row.patient_id.to_string()),
        ("device_id".to_owned(), row.device_id.to_string()),
    ];
    if let Some(i) = institution {
        tags.push(("institution".to_owned(), i.to_owned()));
    }
    if let Some(u) = &row.unit {
        tags.push(("unit".to_owned(), u.clone()));
    }
    let mut categorical = Vec::new();
    let mut fields = Vec::new();
    if let Some(map) = row.canonical.as_object() {
        for (k, v) in map {
            match v {
                serde_json::Value::Number(n) => {
                    if let Some(f) = n.as_f64() {
                        fields.push((k.clone(), FieldValue::Float(f)));
                    }
                }
                serde_json::Value::String(s) if k != "type" => {
                    categorical.push((k.clone(), s.clone()));
                }
                _ => {}
            }
        }
    }
    if fields.is_empty() {
        fields.push(("reading".to_owned(), FieldValue::Float(1.0)));
    }
    let time = row.time.to_utc();
    let mut out = vec![Point {
        measurement: row.reading_type.clone(),
        tags: tags.iter().cloned().chain(categorical).collect(),
        fields,
        time,
    }];
    if let (EcgExport::Samples, Some(leads)) = (ecg, &row.samples) {
        let rate = row
            .canonical
            .get("sample_rate_hz")
            .and_then(serde_json::Value::as_f64)
            .filter(|r| r.is_finite() && *r > 0.0);
        let names: Vec<String> = row
            .canonical
            .get("leads")
            .and_then(|l| l.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if let Some(rate) = rate {
            for (k, samples) in leads.iter().enumerate() {
                let lead = names
                    .get(k)
                    .cloned()
                    .unwrap_or_else(|| format!("{}", k + 1));
                let mut sample_tags = tags.clone();
                sample_tags.push(("lead".to_owned(), lead));
                out.extend(samples.iter().enumerate().map(|(i, uv)| Point {
                    measurement: "ecg_sample".to_owned(),
                    tags: sample_tags.clone(),
                    fields: vec![("uv".to_owned(), FieldValue::Float(f64::from(*uv)))],
                    time: time + TimeDelta::nanoseconds((i as f64 * 1e9 / rate).round() as i64),
                }));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::line::Precision;
    use chrono::{DateTime, Utc};
    use serde_json::json;

    fn row(reading_type: &str, canonical: serde_json::Value, unit: Option<&str>) -> ExportRow {
        ExportRow {
            id: 7,
            patient_id: "p-1".parse().unwrap(),
            device_id: "dev-1".parse().unwrap(),
            reading_type: reading_type.to_owned(),
            time: DateTime::parse_from_rfc3339("2026-12-01T07:58:03.250+08:00").unwrap(),
            received: DateTime::<Utc>::from_timestamp(0, 0).unwrap(),
            canonical,
            unit: unit.map(str::to_owned),
            samples: None,
        }
    }

    fn lines(points: &[Point]) -> String {
        let mut s = String::new();
        for p in points {
            p.write_line(Precision::Milliseconds, &mut s).unwrap();
        }
        s
    }

    #[test]
    fn a_reading_is_one_point_with_canonical_fields_and_categorical_tags() {
        let r = row(
            "glucose",
            json!({"type": "glucose", "glucose_mmol_l": 7.0, "context": "fasting"}),
            Some("mg/dL"),
        );
        assert_eq!(
            lines(&points(&r, Some("chc-east"), EcgExport::Off)),
            "glucose,context=fasting,device_id=dev-1,institution=chc-east,patient_id=p-1,unit=mg/dL glucose_mmol_l=7.0 1796083083250\n"
        );
    }

    #[test]
    fn a_reading_without_numbers_is_still_a_countable_point() {
        let r = row(
            "glucose",
            json!({"type": "glucose", "glucose_mmol_l": null, "flag": "LO", "context": "night"}),
            Some("mmol/L"),
        );
        let s = lines(&points(&r, None, EcgExport::Off));
        assert!(
            s.contains(",flag=LO,") && s.contains(" reading=1.0 "),
            "{s}"
        );
    }

    #[test]
    fn ecg_samples_get_exact_times_from_the_sample_rate_when_asked() {
        let mut r = row(
            "ecg_waveform",
            json!({"type": "ecg_waveform", "leads": ["II"], "sample_rate_hz": 130.0,
                   "samples_per_lead": 3, "duration_s": 0.023}),
            Some("uV"),
        );
        r.samples = Some(vec![vec![10, -20, 30]]);
        assert_eq!(points(&r, None, EcgExport::Off).len(), 1);
        let p = points(&r, None, EcgExport::Samples);
        assert_eq!(p.len(), 4);
        assert_eq!(p[1].measurement, "ecg_sample");
        assert!(p[1].tags.contains(&("lead".to_owned(), "II".to_owned())));
        assert_eq!(p[3].fields, [("uv".to_owned(), FieldValue::Float(30.0))]);
        // 2 / 130 s = 15 384 615.38 ns after the first sample.
        assert_eq!((p[3].time - p[1].time).num_nanoseconds(), Some(15_384_615));
    }
}
