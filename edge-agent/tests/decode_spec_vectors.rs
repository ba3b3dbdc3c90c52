//! Independent vectors for `vigil-edge decode`, written from `spec/decode.md` alone
//! (bytes assembled by hand below, expected outputs derived from the spec's tables),
//! as a cross-check of the decoders' own unit tests. Each vector cites its section.
//!
//! Outputs are compared key for key, with numbers compared by value (18.9 == 18.90,
//! 100 == 100.0) and hex strings case-insensitively.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::process::{Command, Output};

use serde_json::{Value, json};

fn decode(args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vigil-edge"));
    cmd.arg("decode").args(args);
    cmd.output().unwrap()
}

fn ok(args: &[&str]) -> Value {
    let out = decode(args);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn rejected(args: &[&str]) -> String {
    let out = decode(args);
    assert_eq!(out.status.code(), Some(1), "{args:?} should be rejected");
    assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line on stderr: {err:?}"
    );
    err
}

/// Structural equality with numbers compared as f64 and strings case-insensitively
/// for keys ending in `_hex`.
fn same(actual: &Value, expected: &Value, path: &str) {
    match (actual, expected) {
        (Value::Number(a), Value::Number(b)) => {
            assert_eq!(a.as_f64(), b.as_f64(), "{path}: {a} != {b}");
        }
        (Value::Object(a), Value::Object(b)) => {
            let mut ka: Vec<_> = a.keys().collect();
            let mut kb: Vec<_> = b.keys().collect();
            ka.sort();
            kb.sort();
            assert_eq!(ka, kb, "{path}: keys differ");
            for (k, v) in b {
                let p = format!("{path}.{k}");
                if k.ends_with("_hex") {
                    assert_eq!(
                        a[k].as_str().map(str::to_ascii_lowercase),
                        v.as_str().map(str::to_ascii_lowercase),
                        "{p}"
                    );
                } else {
                    same(&a[k], v, &p);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            assert_eq!(a.len(), b.len(), "{path}: lengths differ");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                same(x, y, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(actual, expected, "{path}"),
    }
}

fn check(args: &[&str], expected: Value) {
    same(&ok(args), &expected, &format!("{args:?}"));
}

fn dt(year: u16, month: u8, day: u8, hours: u8, minutes: u8, seconds: u8) -> Value {
    json!({"year": year, "month": month, "day": day, "hours": hours, "minutes": minutes, "seconds": seconds})
}

// ---- §2 IEEE-11073 numbers ----

#[test]
fn sfloat_numbers_specials_and_equal_encodings() {
    // 0xF0BD: exponent 0xF = -1, mantissa 0x0BD = 189 -> 18.9
    check(
        &["sfloat", "BDF0"],
        json!({"raw": 0xF0BD, "kind": "number", "mantissa": 189, "exponent": -1, "value": 18.9}),
    );
    // 0xF3E8 (1000 x 10^-1) and 0x0064 (100 x 10^0) are both 100
    assert_eq!(ok(&["sfloat", "E8F3"])["value"].as_f64(), Some(100.0));
    assert_eq!(ok(&["sfloat", "6400"])["value"].as_f64(), Some(100.0));
    // 0xB05F: exponent -5, mantissa 95 -> 0.00095
    assert_eq!(ok(&["sfloat", "5FB0"])["value"].as_f64(), Some(0.00095));
    for (hex, kind) in [
        ("FF07", "NaN"),
        ("0008", "NRes"),
        ("FE07", "+INF"),
        ("0208", "-INF"),
        ("0108", "RESERVED"),
    ] {
        let v = ok(&["sfloat", hex]);
        assert_eq!(v["kind"], json!(kind), "{hex}");
        assert_eq!(v["value"], Value::Null, "{hex}");
        assert_eq!(v["exponent"], json!(0), "{hex}");
    }
    // Special low bits with a non-zero exponent are an ordinary number (§2).
    assert_eq!(ok(&["sfloat", "FF17"])["kind"], json!("number"));
}

#[test]
fn float_numbers_and_the_plus_inf_trap() {
    // 0xFF000170: exponent -1, mantissa 368 -> 36.8
    check(
        &["float", "700100FF"],
        json!({"raw": 0xFF00_0170u32, "kind": "number", "mantissa": 368, "exponent": -1, "value": 36.8}),
    );
    // +INF is 0x007FFFFE. 0x7FFFFFFF is not +INF (§5): exponent 0x7F = 127 and the
    // 24-bit mantissa 0xFFFFFF = -1, so it is the number -1e+127 (the spec's example).
    assert_eq!(ok(&["float", "FEFF7F00"])["kind"], json!("+INF"));
    let v = ok(&["float", "FFFFFF7F"]);
    assert_eq!(v["kind"], json!("number"));
    assert_eq!(v["mantissa"], json!(-1));
    assert_eq!(v["exponent"], json!(127));
    assert_eq!(v["value"].as_f64(), Some(-1e127));
}

// ---- §3 Blood Pressure Measurement / Intermediate Cuff Pressure ----

#[test]
fn blood_pressure_in_mmhg_with_no_optional_fields() {
    check(
        &["2A35", "00 7800 5000 5D00"],
        json!({"flags": 0, "unit": "mmHg", "systolic": 120, "diastolic": 80, "mean_arterial_pressure": 93,
               "timestamp": null, "pulse_rate_bpm": null, "user_id": null,
               "measurement_status": null, "measurement_status_fields": null}),
    );
}

#[test]
fn blood_pressure_in_kpa_with_every_optional_field() {
    // 24.0/14.7/17.8 kPa = mantissas 240/147/178 at exponent -1; 2026-11-22 07:58:00;
    // pulse 80; user 1; status bit 2 (irregular pulse).
    check(
        &["0x2A35", "1FF0F093F0B2F0EA070B16073A005000010400"],
        json!({"flags": 31, "unit": "kPa", "systolic": 24.0, "diastolic": 14.7, "mean_arterial_pressure": 17.8,
               "timestamp": dt(2026, 11, 22, 7, 58, 0), "pulse_rate_bpm": 80, "user_id": 1,
               "measurement_status": 4,
               "measurement_status_fields": {"body_movement_detected": false, "cuff_too_loose": false,
                   "irregular_pulse_detected": true, "pulse_rate_range": "within_range",
                   "improper_measurement_position": false}}),
    );
}

#[test]
fn a_truncated_blood_pressure_names_what_it_needs() {
    let err = rejected(&["2A35", "0078005000"]);
    assert!(err.contains("truncated"), "{err}");
    assert!(err.contains("needs 7 bytes, got 5"), "{err}");
}

#[test]
fn intermediate_cuff_pressure_ignores_the_unused_slots() {
    check(
        &["2A36", "00 9600 FF07 FF07"],
        json!({"flags": 0, "unit": "mmHg", "cuff_pressure": 150, "timestamp": null, "pulse_rate_bpm": null,
               "user_id": null, "measurement_status": null, "measurement_status_fields": null}),
    );
}

// ---- §3 Heart Rate Measurement ----

#[test]
fn heart_rate_with_contact_and_rr_intervals_rounded_ties_to_even() {
    // flags 0x16: contact supported+detected (bits 1-2 = 3), RR present (bit 4)
    check(
        &["2A37", "16 48 A801 3804"],
        json!({"flags": 22, "hr_format": "uint8", "heart_rate_bpm": 72, "sensor_contact": "supported_detected",
               "energy_expended_kj": null, "rr_intervals_raw": [424, 1080], "rr_intervals_ms": [414.062, 1054.688]}),
    );
    let v = ok(&["2A37", "01 2C01"]);
    assert_eq!(v["hr_format"], json!("uint16"));
    assert_eq!(v["heart_rate_bpm"], json!(300));
    assert_eq!(v["sensor_contact"], json!("not_supported"));
}

#[test]
fn heart_rate_rr_flag_without_values_is_rejected() {
    rejected(&["2A37", "10 48"]);
}

// ---- §3 Glucose Measurement and Context ----

#[test]
fn glucose_in_kg_per_l_with_time_offset() {
    // seq 17; 2026-11-22 07:58:00; +5 min; 126 x 10^-5 kg/L; type 1 (low) location 1 (high)
    check(
        &["2A18", "03 1100 EA070B16073A00 0500 7EB0 11"],
        json!({"flags": 3, "sequence_number": 17, "base_time": dt(2026, 11, 22, 7, 58, 0), "time_offset_min": 5,
               "concentration": 0.00126, "concentration_unit": "kg/L",
               "type": 1, "type_name": "capillary_whole_blood", "sample_location": 1, "sample_location_name": "finger",
               "sensor_status": null, "sensor_status_bits": null, "context_follows": false,
               "concentration_mg_per_dl": 126, "concentration_mmol_per_l": null,
               "effective_time": dt(2026, 11, 22, 8, 3, 0)}),
    );
}

#[test]
fn glucose_nibbles_are_type_low_and_location_high() {
    // 0x2A: type 10 (control_solution) low nibble, location 2 (alternate_site_test) high nibble
    let v = ok(&["2A18", "02 0100 EA070B16073A00 7EB0 2A"]);
    assert_eq!(v["type_name"], json!("control_solution"));
    assert_eq!(v["sample_location_name"], json!("alternate_site_test"));
    assert_eq!(v["time_offset_min"], Value::Null);
    assert_eq!(v["effective_time"], Value::Null);
}

#[test]
fn glucose_context_with_a_meal_only() {
    check(
        &["2A34", "02 1100 01"],
        json!({"flags": 2, "sequence_number": 17, "extended_flags": null,
               "carbohydrate_id": null, "carbohydrate_id_name": null, "carbohydrate_kg": null,
               "meal": 1, "meal_name": "preprandial",
               "tester": null, "tester_name": null, "health": null, "health_name": null,
               "exercise_duration_s": null, "exercise_intensity_pct": null,
               "medication_id": null, "medication_id_name": null, "medication": null, "medication_unit": null,
               "hba1c_pct": null}),
    );
    // tester/health byte 0x21: tester 1 (self) in the LOW nibble, health 2 in the high one
    let v = ok(&["2A34", "04 1100 21"]);
    assert_eq!(v["tester_name"], json!("self"));
    assert_eq!(v["health_name"], json!("major_health_issues"));
}

// ---- §3 Record Access Control Point ----

#[test]
fn racp_requests_and_responses() {
    check(
        &["2A52", "0101"],
        json!({"direction": "client_to_server", "opcode": 1, "opcode_name": "report_stored_records",
               "operator": 1, "operator_name": "all_records", "operand_hex": ""}),
    );
    check(
        &["2A52", "01 03 01 2C01"],
        json!({"direction": "client_to_server", "opcode": 1, "opcode_name": "report_stored_records",
               "operator": 3, "operator_name": "greater_than_or_equal_to", "operand_hex": "012c01",
               "filter_type": 1, "filter_type_name": "sequence_number", "operand_min": 300}),
    );
    check(
        &["2A52", "06 00 01 01"],
        json!({"opcode": 6, "opcode_name": "response_code", "operator": 0, "request_opcode": 1,
               "request_opcode_name": "report_stored_records", "response_code": 1, "response_code_name": "success"}),
    );
    check(
        &["2A52", "05 00 0A00"],
        json!({"opcode": 5, "opcode_name": "number_of_stored_records_response", "operator": 0,
               "number_of_records": 10, "operand_length": 2}),
    );
    rejected(&["2A52", "05 00 0A0000"]);
    rejected(&["--direction", "server-to-client", "2A52", "0101"]);
}

// ---- §3 PLX ----

#[test]
fn plx_spot_check_and_continuous_without_options() {
    check(
        &["2A5E", "00 6100 4800"],
        json!({"flags": 0, "spo2_pct": 97, "pulse_rate_bpm": 72, "timestamp": null, "device_clock_not_set": false,
               "measurement_status": null, "measurement_status_bits": null,
               "device_sensor_status": null, "device_sensor_status_bits": null, "pulse_amplitude_index_pct": null}),
    );
    check(
        &["2A5F", "00 6100 4800"],
        json!({"flags": 0, "spo2_pct": 97, "pulse_rate_bpm": 72,
               "spo2_fast_pct": null, "pulse_rate_fast_bpm": null, "spo2_slow_pct": null, "pulse_rate_slow_bpm": null,
               "measurement_status": null, "measurement_status_bits": null,
               "device_sensor_status": null, "device_sensor_status_bits": null, "pulse_amplitude_index_pct": null}),
    );
    // spot-check bit 2: device and sensor status, uint24, bit 5 = low perfusion
    let v = ok(&["2A5E", "04 6100 4800 200000"]);
    assert_eq!(v["device_sensor_status"], json!(32));
    assert_eq!(
        v["device_sensor_status_bits"],
        json!(["low_perfusion_detected"])
    );
}

// ---- §3 Temperature and Weight ----

#[test]
fn temperature_in_celsius_with_timestamp_and_type() {
    check(
        &["2A1C", "06 700100FF EA070B16073A00 01"],
        json!({"flags": 6, "temperature": 36.8, "temperature_unit": "Celsius",
               "timestamp": dt(2026, 11, 22, 7, 58, 0), "temperature_type": 1, "temperature_type_name": "armpit"}),
    );
}

#[test]
fn weight_si_and_the_unsuccessful_special() {
    check(
        &["2A9D", "00 C832"],
        json!({"flags": 0, "unit_system": "SI", "weight_raw": 13000, "weight": 65, "weight_unit": "kg",
               "timestamp": null, "user_id": null, "bmi_raw": null, "bmi": null,
               "height_raw": null, "height": null, "height_unit": null}),
    );
    let v = ok(&["2A9D", "00 FFFF"]);
    assert_eq!(v["weight"], json!("MEASUREMENT_UNSUCCESSFUL"));
    // Imperial: 143.30 lb = raw 14330 x 0.01
    let v = ok(&["2A9D", "01 FA37"]);
    assert_eq!(v["weight_unit"], json!("lb"));
    assert_eq!(v["weight"].as_f64(), Some(143.3));
}

// ---- §4 Polar PMD ----

const PMD_CP: &str = "FB005C81-02E7-F387-1CAD-8ACD2D8DF0C8";
const PMD_DATA: &str = "fb005c82-02e7-f387-1cad-8acd2d8df0c8";

#[test]
fn pmd_settings_response_start_command_and_notice() {
    check(
        &[PMD_CP, "F0 01 00 00 00 00 01 82 00 01 01 0E 00"],
        json!({"response_code": 240, "opcode": 1, "opcode_name": "GET_MEASUREMENT_SETTINGS",
               "measurement_type": 0, "measurement_type_name": "ECG", "status": 0, "status_name": "SUCCESS",
               "more": false, "parameters_hex": "0001820001010e00",
               "settings": {"sample_rate_hz": [130], "resolution_bits": [14]}}),
    );
    check(
        &[PMD_CP, "02 00 00 01 82 00 01 01 0E 00"],
        json!({"direction": "client_to_server", "opcode": 2, "opcode_name": "REQUEST_MEASUREMENT_START",
               "measurement_type": 0, "measurement_type_name": "ECG", "recording_type": "online",
               "settings": {"sample_rate_hz": [130], "resolution_bits": [14]}}),
    );
    check(
        &["--direction", "server-to-client", PMD_CP, "01 01 02"],
        json!({"direction": "server_to_client", "message": "ONLINE_MEASUREMENT_STOPPED",
               "measurement_types": [1, 2], "measurement_type_names": ["PPG", "ACC"]}),
    );
    check(
        &["pmd-settings", "00 01 82 00 01 01 0E 00"],
        json!({"settings_tlv_only": true, "settings": {"sample_rate_hz": [130], "resolution_bits": [14]}}),
    );
}

#[test]
fn pmd_ecg_frame_with_signed_24_bit_samples_and_a_string_timestamp() {
    // type 0; 599 616 000 000 000 000 ns (2019-01-01, an H10 whose clock was never set);
    // frame type 0; samples 1, -1, 1000
    check(
        &[PMD_DATA, "00 0000a43993435208 00 010000 FFFFFF E80300"],
        json!({"measurement_type": 0, "timestamp_ns": "599616000000000000", "frame_type": 0,
               "compressed": false, "samples_uv": [1, -1, 1000], "sample_count": 3}),
    );
    rejected(&[PMD_DATA, "00 0000a43993435208 00 0100"]);
}
