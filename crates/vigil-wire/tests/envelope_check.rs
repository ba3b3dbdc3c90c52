//! `spec/envelope-check.md`: envelope-level failures reject the whole envelope with
//! one actionable error; reading-level failures are reported per reading, siblings
//! unaffected. Each test names the kind of bad input it covers.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use serde_json::{Value, json};
use vigil_wire::check::check_envelope;
use vigil_wire::{
    DecodeLimits, EnvelopeErrorKind, ReadingErrorKind, decode_envelope, decode_envelope_with,
};

fn envelope_with(readings: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schema": "vigil.readings.v1",
        "gateway_id": "gw-0001",
        "batch_seq": 1042,
        "sent_at": "2026-11-22T08:00:01.250+08:00",
        "readings": readings,
    }))
    .unwrap()
}

fn bp(unit: &str, sys: Value, dia: Value) -> Value {
    json!({
        "device_id": "bpm-omron-3f9a21", "type": "bp", "time": "2026-11-22T07:58:03+08:00",
        "unit": unit, "values": {"systolic": sys, "diastolic": dia, "pulse": 80}
    })
}

/// The error of reading 0 of an otherwise valid envelope.
fn reading_error(reading: Value) -> (ReadingErrorKind, String) {
    let env = decode_envelope(&envelope_with(json!([reading]))).unwrap();
    let e = env.readings[0].clone().unwrap_err();
    (e.kind, e.to_string())
}

fn envelope_error(bytes: &[u8]) -> (EnvelopeErrorKind, String) {
    let e = decode_envelope(bytes).unwrap_err();
    (e.kind, e.message)
}

fn with(mut base: Value, path: &[&str], v: Option<Value>) -> Value {
    let (last, parents) = path.split_last().unwrap();
    let mut cur = &mut base;
    for p in parents {
        cur = cur.get_mut(*p).unwrap();
    }
    let obj = cur.as_object_mut().unwrap();
    match v {
        Some(v) => obj.insert((*last).to_owned(), v),
        None => obj.remove(*last),
    };
    base
}

#[test]
fn the_example_of_the_spec_gives_the_documented_output() {
    let bytes = envelope_with(json!([
        bp("kPa", json!(24.0), json!(14.7)),
        bp("mmHg", json!(142), json!(91)),
    ]));
    let report = check_envelope(&bytes);
    assert_eq!(
        serde_json::to_value(&report).unwrap(),
        json!({"ok": false, "error": null, "readings": [
            {"index": 0, "ok": true, "canonical": {"type": "bp", "systolic_mmhg": 180, "diastolic_mmhg": 110, "pulse_per_min": 80}},
            {"index": 1, "ok": false, "error": "reading 1: unit 'mmHg' is not UCUM; use 'mm[Hg]'"}
        ]})
    );
    assert_eq!(report.exit_code(), 0);
}

#[test]
fn a_clean_envelope_is_ok_with_canonical_values() {
    let report = check_envelope(&envelope_with(json!([
        {"device_id": "glu-1", "record_seq": 17, "type": "glucose", "time": "2026-11-22T07:58:03+08:00",
         "device_time": "2026-11-22T07:58:00", "unit": "mg/dL", "values": {"value": 250, "context": "fasting"}},
        {"device_id": "thermo-1", "type": "temperature", "time": "2026-11-22T07:58:03Z", "unit": "[degF]", "values": {"value": 102.2}},
        {"device_id": "scale-1", "type": "weight", "time": "2026-11-22T07:58:03+08:00", "unit": "jin", "values": {"value": 130}},
    ])));
    assert!(report.ok);
    let canon: Vec<Value> = report
        .readings
        .iter()
        .map(|r| serde_json::to_value(r.canonical.as_ref().unwrap()).unwrap())
        .collect();
    assert_eq!(
        canon[0],
        json!({"type": "glucose", "glucose_mmol_l": 13.9, "context": "fasting"})
    );
    assert_eq!(
        canon[1],
        json!({"type": "temperature", "temperature_cel": 39.0, "site": "axillary"})
    );
    assert_eq!(canon[2], json!({"type": "weight", "weight_kg": 65.0}));
}

// ---- envelope-level failures (exit 1) ----

#[test]
fn not_json_is_an_envelope_error_that_says_where() {
    let (kind, msg) = envelope_error(b"{\"schema\": ");
    assert_eq!(kind, EnvelopeErrorKind::NotJson);
    assert!(msg.starts_with("not valid JSON: "), "{msg}");
    assert!(msg.contains("line 1 column"), "{msg}");
    let report = check_envelope(b"hello");
    assert_eq!(report.exit_code(), 1);
    assert!(report.readings.is_empty());
}

#[test]
fn a_json_value_that_is_not_an_object_is_rejected() {
    assert_eq!(
        envelope_error(b"[1,2]"),
        (
            EnvelopeErrorKind::NotObject,
            "the envelope must be a JSON object, not an array".into()
        )
    );
}

#[test]
fn wrong_or_missing_schema_names_the_expected_one() {
    let ok: Value = serde_json::from_slice(&envelope_with(json!([]))).unwrap();
    let bytes = |v: Value| serde_json::to_vec(&v).unwrap();
    let (k, m) = envelope_error(&bytes(with(
        ok.clone(),
        &["schema"],
        Some(json!("vigil.readings.v2")),
    )));
    assert_eq!(k, EnvelopeErrorKind::Schema);
    assert_eq!(
        m,
        "'schema' is \"vigil.readings.v2\"; this endpoint takes \"vigil.readings.v1\""
    );
    let (_, m) = envelope_error(&bytes(with(ok.clone(), &["schema"], None)));
    assert_eq!(m, "missing 'schema'; set it to \"vigil.readings.v1\"");

    let (k, m) = envelope_error(&bytes(with(
        ok.clone(),
        &["gateway_id"],
        Some(json!("gw/1")),
    )));
    assert_eq!(k, EnvelopeErrorKind::GatewayId);
    assert!(m.contains("'/'"), "{m}");
    let (k, _) = envelope_error(&bytes(with(ok.clone(), &["gateway_id"], None)));
    assert_eq!(k, EnvelopeErrorKind::GatewayId);

    for bad in [json!(-1), json!(1.5), json!("7"), Value::Null] {
        let (k, m) = envelope_error(&bytes(with(ok.clone(), &["batch_seq"], Some(bad.clone()))));
        assert_eq!(k, EnvelopeErrorKind::BatchSeq, "{bad}: {m}");
    }
    let (k, m) = envelope_error(&bytes(with(
        ok.clone(),
        &["sent_at"],
        Some(json!("2026-11-22T08:00:01")),
    )));
    assert_eq!(k, EnvelopeErrorKind::SentAt);
    assert!(m.contains("has no UTC offset"), "{m}");
    let (k, m) = envelope_error(&bytes(with(ok.clone(), &["readings"], Some(json!({})))));
    assert_eq!(k, EnvelopeErrorKind::Readings);
    assert_eq!(m, "'readings' must be an array, not an object");
    let (k, _) = envelope_error(&bytes(with(ok, &["readings"], None)));
    assert_eq!(k, EnvelopeErrorKind::Readings);
}

#[test]
fn a_number_json_cannot_represent_rejects_the_envelope() {
    let text = String::from_utf8(envelope_with(json!([bp("mm[Hg]", json!(1), json!(1))]))).unwrap();
    let text = text.replacen("\"systolic\":1", "\"systolic\":1e999", 1);
    let (k, m) = envelope_error(text.as_bytes());
    assert_eq!(k, EnvelopeErrorKind::NumberOutOfRange, "{m}");
    assert!(m.contains("cannot be represented"), "{m}");
}

#[test]
fn nan_and_infinity_literals_are_named_as_non_finite_numbers() {
    for (literal, named) in [
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("-Infinity", "-Infinity"),
    ] {
        let text =
            String::from_utf8(envelope_with(json!([bp("mm[Hg]", json!(1), json!(1))]))).unwrap();
        let text = text.replacen("\"systolic\":1", &format!("\"systolic\":{literal}"), 1);
        let (k, m) = envelope_error(text.as_bytes());
        assert_eq!(k, EnvelopeErrorKind::NumberOutOfRange, "{m}");
        assert!(
            m.starts_with(&format!("{named} is not a JSON number")),
            "{m}"
        );
    }
}

#[test]
fn nesting_deeper_than_the_codec_allows_is_refused_before_parsing() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (k, m) = envelope_error(deep.as_bytes());
    assert_eq!(k, EnvelopeErrorKind::TooDeep);
    assert!(m.contains("deeper than 32 levels"), "{m}");
}

// ---- reading-level failures (exit 0, siblings unaffected) ----

#[test]
fn a_bad_reading_does_not_reject_its_siblings() {
    let report = check_envelope(&envelope_with(json!([
        bp("mm[Hg]", json!(142), json!(91)),
        {"type": "nonsense"},
        bp("mm[Hg]", json!(120), json!(80)),
    ])));
    assert!(!report.ok);
    assert_eq!(report.exit_code(), 0);
    let oks: Vec<bool> = report.readings.iter().map(|r| r.ok).collect();
    assert_eq!(oks, [true, false, true]);
}

#[test]
fn unknown_reading_type_lists_the_known_ones() {
    let mut r = bp("mm[Hg]", json!(1), json!(1));
    r["type"] = json!("blood_pressure");
    let (k, m) = reading_error(r);
    assert_eq!(k, ReadingErrorKind::UnknownType);
    assert_eq!(
        m,
        "reading 0: unknown reading type \"blood_pressure\"; expected one of 'bp', 'glucose', 'spo2', 'heart_rate', 'temperature', 'weight', 'ecg', 'ecg_waveform'"
    );
}

#[test]
fn units_unknown_not_ucum_or_wrong_for_the_type_say_what_to_use() {
    assert_eq!(
        reading_error(bp("furlong", json!(1), json!(1))).1,
        "reading 0: unit 'furlong' is unknown; type 'bp' accepts 'mm[Hg]' or 'kPa'"
    );
    assert_eq!(
        reading_error(bp("kg", json!(1), json!(1))).1,
        "reading 0: unit 'kg' is not accepted for type 'bp'; use 'mm[Hg]' or 'kPa'"
    );
    assert_eq!(
        reading_error(bp("mg/dl", json!(1), json!(1))).1,
        "reading 0: unit 'mg/dl' is not accepted for type 'bp'; use 'mm[Hg]' or 'kPa'"
    );
    let (k, m) = reading_error(with(bp("x", json!(1), json!(1)), &["unit"], None));
    assert_eq!(k, ReadingErrorKind::MissingField);
    assert_eq!(
        m,
        "reading 0: missing 'unit'; type 'bp' accepts 'mm[Hg]' or 'kPa'"
    );
    let ecg = json!({"device_id": "patch-1", "type": "ecg", "time": "2026-11-22T07:58:03+08:00",
                     "unit": "uV", "values": {"finding": "atrial_fibrillation"}});
    assert_eq!(
        reading_error(ecg).1,
        "reading 0: type 'ecg' takes no unit; omit 'unit' or send null (got \"uV\")"
    );
}

#[test]
fn missing_and_wrongly_typed_values_name_the_field() {
    let (k, m) = reading_error(with(
        bp("mm[Hg]", json!(1), json!(1)),
        &["values", "systolic"],
        None,
    ));
    assert_eq!(
        (k, m.as_str()),
        (
            ReadingErrorKind::MissingField,
            "reading 0: missing 'values.systolic'"
        )
    );
    let (k, m) = reading_error(bp("mm[Hg]", json!("142"), json!(1)));
    assert_eq!(
        (k, m.as_str()),
        (
            ReadingErrorKind::WrongType,
            "reading 0: 'values.systolic' must be a number, not a string"
        )
    );
    let (_, m) = reading_error(bp("mm[Hg]", Value::Null, json!(1)));
    assert_eq!(
        m,
        "reading 0: 'values.systolic' is required and may not be null"
    );
    let (k, m) = reading_error(with(
        bp("mm[Hg]", json!(1), json!(1)),
        &["values"],
        Some(json!([1, 2])),
    ));
    assert_eq!(
        (k, m.as_str()),
        (
            ReadingErrorKind::WrongType,
            "reading 0: 'values' must be an object, not an array"
        )
    );
    let glucose = json!({"device_id": "glu-1", "type": "glucose", "time": "2026-11-22T07:58:03+08:00",
                         "unit": "mmol/L", "values": {"context": "fasting"}});
    assert_eq!(
        reading_error(glucose).1,
        "reading 0: glucose needs 'values.value' (a number) or 'values.flag' ('HI' or 'LO')"
    );
    let (k, m) = reading_error(json!("a string"));
    assert_eq!(
        (k, m.as_str()),
        (
            ReadingErrorKind::NotObject,
            "reading 0: a reading must be a JSON object, not a string"
        )
    );
    let (k, _) = reading_error(with(
        bp("mm[Hg]", json!(1), json!(1)),
        &["device_id"],
        Some(json!("bpm 1")),
    ));
    assert_eq!(k, ReadingErrorKind::Id);
}

#[test]
fn values_outside_a_vocabulary_list_the_vocabulary() {
    let r = json!({"device_id": "glu-1", "type": "glucose", "time": "2026-11-22T07:58:03+08:00",
                   "unit": "mmol/L", "values": {"value": 5.4, "context": "breakfast"}});
    let (k, m) = reading_error(r);
    assert_eq!(k, ReadingErrorKind::Vocabulary);
    assert_eq!(
        m,
        "reading 0: 'values.context': \"breakfast\" is not one of 'fasting', 'preprandial', 'postprandial', 'bedtime', 'night', 'random'"
    );
    let r = with(
        bp("mm[Hg]", json!(1), json!(1)),
        &["symptoms"],
        Some(json!(["chest_pain"])),
    );
    assert_eq!(reading_error(r).0, ReadingErrorKind::Vocabulary);
}

#[test]
fn times_without_offset_or_not_real_instants_are_refused() {
    let at = |t: Value| with(bp("mm[Hg]", json!(1), json!(1)), &["time"], Some(t));
    let (k, m) = reading_error(at(json!("2026-11-22T07:58:03")));
    assert_eq!(k, ReadingErrorKind::Time);
    assert_eq!(
        m,
        "reading 0: 'time' \"2026-11-22T07:58:03\" has no UTC offset; add one, e.g. '+08:00' or 'Z'"
    );
    let (_, m) = reading_error(at(json!("2026-02-30T07:58:03+08:00")));
    assert!(m.contains("is not a real instant"), "{m}");
    let (_, m) = reading_error(at(json!(1_763_769_483)));
    assert_eq!(m, "reading 0: 'time' must be a string, not an integer");
    let (k, m) = reading_error(with(bp("mm[Hg]", json!(1), json!(1)), &["time"], None));
    assert_eq!(
        (k, m.as_str()),
        (ReadingErrorKind::MissingField, "reading 0: missing 'time'")
    );
}

#[test]
fn meaningless_numbers_are_refused_but_implausible_ones_pass() {
    let wave = |rate: Value| {
        json!({"device_id": "patch-1", "type": "ecg_waveform", "time": "2026-11-22T07:58:03+08:00",
               "unit": "uV", "values": {"lead": "II", "sample_rate_hz": rate, "samples_uv": [1, 2, 3]}})
    };
    let (k, m) = reading_error(wave(json!(0)));
    assert_eq!(k, ReadingErrorKind::Meaningless);
    assert_eq!(
        m,
        "reading 0: 'values.sample_rate_hz' must be greater than 0 (got 0)"
    );
    let (k, m) = reading_error(bp("mm[Hg]", json!(-120), json!(80)));
    assert_eq!(
        (k, m.as_str()),
        (
            ReadingErrorKind::Meaningless,
            "reading 0: 'values.systolic' must not be negative (got -120)"
        )
    );
    let (_, m) = reading_error(with(
        bp("mm[Hg]", json!(1), json!(1)),
        &["record_seq"],
        Some(json!(-3)),
    ));
    assert_eq!(
        m,
        "reading 0: 'record_seq' must be a non-negative integer below 2^64, not -3"
    );
    let mut w = wave(json!(130));
    w["values"]["samples_uv"] = json!([1, 2.5]);
    assert!(reading_error(w).1.contains("sample 1 must be an integer"));
    let mut w = wave(json!(130));
    w["values"]["samples_uv"] = json!([]);
    assert_eq!(
        reading_error(w).1,
        "reading 0: 'values.samples_uv' is empty"
    );
    let multi = json!({"device_id": "patch-1", "type": "ecg_waveform", "time": "2026-11-22T07:58:03+08:00",
        "unit": "uV", "values": {"leads": ["I", "II"], "sample_rate_hz": 250, "samples_uv": [[1, 2]]}});
    assert_eq!(
        reading_error(multi).1,
        "reading 0: 'values.samples_uv' must hold one array per lead: 2 leads, 1 arrays"
    );

    // Clinical plausibility is the validator's job: a systolic of 400 is well-formed.
    let report = check_envelope(&envelope_with(json!([bp("mm[Hg]", json!(400), json!(80))])));
    assert!(report.ok);
}

#[test]
fn unknown_extra_fields_are_ignored_everywhere() {
    let text = String::from_utf8(envelope_with(json!([with(
        bp("mm[Hg]", json!(142), json!(91)),
        &["firmware"],
        Some(json!({"v": [1, 2]}))
    )])))
    .unwrap();
    let text = text.replacen('{', "{\"x_vendor\":{\"a\":1},", 1);
    let report = check_envelope(text.as_bytes());
    assert!(report.ok, "{report:?}");
}

#[test]
fn a_payload_over_the_size_limit_is_refused_before_parsing() {
    let bytes = envelope_with(json!([bp("mm[Hg]", json!(142), json!(91))]));
    let limits = DecodeLimits {
        max_bytes: bytes.len() - 1,
        ..DecodeLimits::default()
    };
    let e = decode_envelope_with(&bytes, limits).unwrap_err();
    assert_eq!(e.kind, EnvelopeErrorKind::TooLarge);
    assert!(
        e.message
            .contains("split its readings over several envelopes"),
        "{e}"
    );
    assert_eq!(DecodeLimits::default().max_bytes, 16 * 1024 * 1024);
}

#[test]
fn a_rejected_reading_keeps_its_raw_json_for_quarantine() {
    let bad = bp("mmHg", json!(142), json!(91));
    let env = decode_envelope(&envelope_with(json!([bad.clone()]))).unwrap();
    let e = env.readings[0].clone().unwrap_err();
    assert_eq!(e.index, 0);
    assert_eq!(e.raw, bad);
}

#[test]
fn ten_thousand_readings_decode() {
    let readings: Vec<Value> = (0..10_000)
        .map(|i| {
            let mut r = bp("mm[Hg]", json!(120 + i % 40), json!(80));
            r["record_seq"] = json!(i);
            r
        })
        .collect();
    let report = check_envelope(&envelope_with(Value::Array(readings)));
    assert!(report.ok);
    assert_eq!(report.readings.len(), 10_000);
}
