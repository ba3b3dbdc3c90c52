//! `vigil-edge decode` from the command line: whole JSON outputs against spec/decode.md,
//! and the exits of rejected payloads and unreadable arguments.
//!
//! Every expected object is written by hand from the spec: bytes explained in the
//! comment above each call.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::process::{Command, Output};

use serde_json::{Value, json};

const PMD_CP: &str = "FB005C81-02E7-F387-1CAD-8ACD2D8DF0C8";
const PMD_DATA: &str = "FB005C82-02E7-F387-1CAD-8ACD2D8DF0C8";

fn vigil_edge(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vigil-edge"))
        .arg("decode")
        .args(args)
        .output()
        .unwrap()
}

/// Runs `decode`, expects exit 0, nothing on stderr, one JSON object on stdout.
fn decoded(args: &[&str]) -> Value {
    let out = vigil_edge(args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{args:?}: {stderr}");
    assert!(stderr.is_empty(), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Runs `decode`, expects exit `code`, nothing on stdout, one line on stderr.
fn rejected(code: i32, args: &[&str]) -> String {
    let out = vigil_edge(args);
    assert_eq!(out.status.code(), Some(code), "{args:?}");
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    err.trim_end().to_owned()
}

/// The Date Time 2026-11-22 07:58:03: `EA07 0B 16 07 3A 03`.
const T: &str = "EA070B16073A03";

fn t() -> Value {
    json!({"year": 2026, "month": 11, "day": 22, "hours": 7, "minutes": 58, "seconds": 3})
}

/// spec/decode.md §2: SFLOAT 0xF0BD (bytes BD F0): exponent −1, mantissa 189.
#[test]
fn an_sfloat_prints_raw_kind_mantissa_exponent_and_exact_value() {
    let v = decoded(&["sfloat", "BD F0"]);
    assert_eq!(
        v,
        json!({"raw": 61629, "kind": "number", "mantissa": 189, "exponent": -1, "value": 18.9})
    );
    // The text is exactly 18.9, not 18.900000000000002.
    let out = vigil_edge(&["--compact", "sfloat", "bdf0"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(r#""value":18.9}"#), "{text}");
}

/// spec/decode.md §2: every special value prints as its string, value null.
#[test]
fn sfloat_and_float_special_values_print_as_strings() {
    for (hex, kind, mantissa) in [
        ("FF07", "NaN", 2047),
        ("0008", "NRes", -2048),
        ("FE07", "+INF", 2046),
        ("0208", "-INF", -2046),
        ("0108", "RESERVED", -2047),
    ] {
        let v = decoded(&["sfloat", hex]);
        let raw = u16::from_le_bytes([
            u8::from_str_radix(&hex[..2], 16).unwrap(),
            u8::from_str_radix(&hex[2..], 16).unwrap(),
        ]);
        assert_eq!(
            v,
            json!({"raw": raw, "kind": kind, "mantissa": mantissa, "exponent": 0, "value": null})
        );
    }
    // FLOAT +INF is 0x007FFFFE (bytes FE FF 7F 00), not 0x7FFFFFFF (§5).
    let v = decoded(&["float", "FE FF 7F 00"]);
    assert_eq!(
        v,
        json!({"raw": 8388606, "kind": "+INF", "mantissa": 8388606, "exponent": 0, "value": null})
    );
}

/// spec/decode.md §1 and §5: FLOAT 0x7FFFFFFF is −1 × 10^127; 0xFB00005F is 0.00095.
#[test]
fn float_numbers_print_their_shortest_decimal() {
    let v = decoded(&["float", "FFFFFF7F"]);
    assert_eq!(
        v,
        json!({"raw": 2147483647u32, "kind": "number", "mantissa": -1, "exponent": 127, "value": -1e127})
    );
    let v = decoded(&["float", "5F0000FB"]);
    assert_eq!(
        v,
        json!({"raw": 4211081311u32, "kind": "number", "mantissa": 95, "exponent": -5, "value": 0.00095})
    );
}

/// spec/decode.md §3 Glucose Measurement. Flags 0x1B: offset, concentration (kg/L),
/// status, context follows. Sequence 0x0011 = 17; base time 2026-11-22 07:58:03;
/// offset 0xFFF6 = −10 min; concentration 0xB06E = 110 × 10^−5 kg/L (110 mg/dL);
/// type/location 0x11 = type 1 (low nibble), location 1; status 0x0001 = battery low.
#[test]
fn a_glucose_measurement_prints_every_key_of_the_spec() {
    let hex = format!("1B 1100 {T} F6FF 6EB0 11 0100");
    let v = decoded(&["2A18", &hex]);
    assert_eq!(
        v,
        json!({
            "flags": 27,
            "sequence_number": 17,
            "base_time": t(),
            "time_offset_min": -10,
            "concentration": 0.0011,
            "concentration_unit": "kg/L",
            "type": 1,
            "type_name": "capillary_whole_blood",
            "sample_location": 1,
            "sample_location_name": "finger",
            "sensor_status": 1,
            "sensor_status_bits": ["device_battery_low"],
            "context_follows": true,
            "concentration_mg_per_dl": 110,
            "concentration_mmol_per_l": null,
            "effective_time": {"year": 2026, "month": 11, "day": 22, "hours": 7, "minutes": 48, "seconds": 3},
        })
    );
}

/// spec/decode.md §1 and §3: flag 0x04 only (mol/L, no concentration): every optional
/// key null, the unit too; +INF in mol/L has no mmol/L value.
#[test]
fn a_glucose_without_optional_fields_prints_nulls() {
    let v = decoded(&["2a18", &format!("04 0100 {T}")]);
    assert_eq!(
        v,
        json!({
            "flags": 4, "sequence_number": 1, "base_time": t(), "time_offset_min": null,
            "concentration": null, "concentration_unit": null, "type": null, "type_name": null,
            "sample_location": null, "sample_location_name": null, "sensor_status": null,
            "sensor_status_bits": null, "context_follows": false,
            "concentration_mg_per_dl": null, "concentration_mmol_per_l": null,
            "effective_time": null,
        })
    );
    // Flags 0x06: mol/L concentration +INF (FE 07), type/location 0xF9: type 9
    // (interstitial_fluid), location 15 (not_available).
    let v = decoded(&["2a18", &format!("06 0200 {T} FE07 F9")]);
    assert_eq!(v["concentration"], json!("+INF"));
    assert_eq!(v["concentration_unit"], json!("mol/L"));
    assert_eq!(v["concentration_mmol_per_l"], Value::Null);
    assert_eq!(v["type_name"], json!("interstitial_fluid"));
    assert_eq!(v["sample_location_name"], json!("not_available"));
}

/// spec/decode.md §3 Glucose Measurement Context, flags 0x5E: meal, tester/health,
/// exercise, medication (kg), HbA1c. Sequence 17; meal 4 (casual); tester/health 0xF2:
/// tester 2 (low nibble), health 15; exercise 0x0E10 = 3600 s at 80 %; medication 4
/// (long-acting insulin) 0xA00A = 10 × 10^−6 kg; HbA1c 0xF047 = 7.1 %.
#[test]
fn a_glucose_context_prints_every_key_of_the_spec() {
    let v = decoded(&["2A34", "5E 1100 04 F2 100E 50 04 0AA0 47F0"]);
    assert_eq!(
        v,
        json!({
            "flags": 94,
            "sequence_number": 17,
            "extended_flags": null,
            "carbohydrate_id": null,
            "carbohydrate_id_name": null,
            "carbohydrate_kg": null,
            "meal": 4,
            "meal_name": "casual",
            "tester": 2,
            "tester_name": "health_care_professional",
            "health": 15,
            "health_name": "not_available",
            "exercise_duration_s": 3600,
            "exercise_intensity_pct": 80,
            "medication_id": 4,
            "medication_id_name": "long_acting_insulin",
            "medication": 0.00001,
            "medication_unit": "kg",
            "hba1c_pct": 7.1,
        })
    );
}

/// spec/decode.md §3 RACP requests: the agent's "report records ≥ 258" and the abort.
#[test]
fn racp_requests_print_their_direction_and_operands() {
    // 01 report, 03 ≥, filter 01 (sequence number), 0x0102 = 258.
    assert_eq!(
        decoded(&["2A52", "01 03 01 02 01"]),
        json!({
            "direction": "client_to_server", "opcode": 1, "opcode_name": "report_stored_records",
            "operator": 3, "operator_name": "greater_than_or_equal_to", "operand_hex": "010201",
            "filter_type": 1, "filter_type_name": "sequence_number", "operand_min": 258,
        })
    );
    // 01 01: report all records, no operand.
    assert_eq!(
        decoded(&["2A52", "0101"]),
        json!({
            "direction": "client_to_server", "opcode": 1, "opcode_name": "report_stored_records",
            "operator": 1, "operator_name": "all_records", "operand_hex": "",
        })
    );
    // 02 delete, 04 within range, filter 1, 5..=9.
    assert_eq!(
        decoded(&["2A52", "02 04 01 0500 0900"]),
        json!({
            "direction": "client_to_server", "opcode": 2, "opcode_name": "delete_stored_records",
            "operator": 4, "operator_name": "within_range_inclusive", "operand_hex": "0105000900",
            "filter_type": 1, "filter_type_name": "sequence_number",
            "operand_min": 5, "operand_max": 9,
        })
    );
    assert_eq!(
        decoded(&["--direction", "client-to-server", "2A52", "03 00"]),
        json!({
            "direction": "client_to_server", "opcode": 3, "opcode_name": "abort_operation",
            "operator": 0, "operator_name": "null", "operand_hex": "",
        })
    );
}

/// spec/decode.md §3 RACP responses: a response code and record counts of 1, 2, 4 bytes.
#[test]
fn racp_responses_print_codes_and_record_counts() {
    // 06 response code, 00 null, request 01, code 06 (no records found).
    assert_eq!(
        decoded(&["2A52", "06 00 01 06"]),
        json!({
            "opcode": 6, "opcode_name": "response_code", "operator": 0,
            "request_opcode": 1, "request_opcode_name": "report_stored_records",
            "response_code": 6, "response_code_name": "no_records_found",
        })
    );
    // 05 count, 00 null, 0x012C = 300 in 2 bytes.
    assert_eq!(
        decoded(&["--direction", "server-to-client", "2A52", "05 00 2C 01"]),
        json!({
            "opcode": 5, "opcode_name": "number_of_stored_records_response", "operator": 0,
            "number_of_records": 300, "operand_length": 2,
        })
    );
    assert_eq!(decoded(&["2A52", "05002A"])["operand_length"], json!(1));
    assert_eq!(
        decoded(&["2A52", "0500A0860100"])["number_of_records"],
        json!(100000)
    );
}

/// spec/decode.md §3 BPM, flags 0x1E: mmHg, timestamp, pulse, user, status. 142/91,
/// MAP NaN (FF 07), pulse 0x0048 = 72, user 255, status 0x0004 = irregular pulse.
#[test]
fn a_blood_pressure_measurement_prints_every_key_of_the_spec() {
    let hex = format!("1E 8E00 5B00 FF07 {T} 4800 FF 0400");
    assert_eq!(
        decoded(&["2A35", &hex]),
        json!({
            "flags": 30,
            "unit": "mmHg",
            "systolic": 142,
            "diastolic": 91,
            "mean_arterial_pressure": "NaN",
            "timestamp": t(),
            "pulse_rate_bpm": 72,
            "user_id": 255,
            "measurement_status": 4,
            "measurement_status_fields": {
                "body_movement_detected": false,
                "cuff_too_loose": false,
                "irregular_pulse_detected": true,
                "pulse_rate_range": "within_range",
                "improper_measurement_position": false,
            },
        })
    );
}

/// spec/decode.md §3 BPM in kPa: 0xF0A0 = 16.0, 0xF06E = 11.0, 0xF07F = 12.7.
#[test]
fn a_kpa_blood_pressure_prints_kpa_values() {
    assert_eq!(
        decoded(&["2a35", "01 A0F0 6EF0 7FF0"]),
        json!({
            "flags": 1, "unit": "kPa", "systolic": 16, "diastolic": 11,
            "mean_arterial_pressure": 12.7, "timestamp": null, "pulse_rate_bpm": null,
            "user_id": null, "measurement_status": null, "measurement_status_fields": null,
        })
    );
}

/// spec/decode.md §3 ICP: flags 0x10 (mmHg, status), cuff 0x0096 = 150, unused slots
/// (garbage, ignored), status 0x0009 = body movement (bit 0) + pulse rate range 01
/// (bits 3–4, exceeds upper limit).
#[test]
fn an_intermediate_cuff_pressure_ignores_the_unused_slots() {
    assert_eq!(
        decoded(&["2A36", "10 9600 3412 FFFF 0900"]),
        json!({
            "flags": 16, "unit": "mmHg", "cuff_pressure": 150, "timestamp": null,
            "pulse_rate_bpm": null, "user_id": null, "measurement_status": 9,
            "measurement_status_fields": {
                "body_movement_detected": true,
                "cuff_too_loose": false,
                "irregular_pulse_detected": false,
                "pulse_rate_range": "exceeds_upper_limit",
                "improper_measurement_position": false,
            },
        })
    );
}

/// spec/decode.md §3 HRM: flags 0x16 = uint8 rate (bit 0 clear), sensor contact bits
/// 1–2 = 11 (supported and detected), RR present (bit 4). Rate 0x48 = 72; RR 0x01A8 =
/// 424 and 0x0438 = 1080 (1/1024 s), 414.062 and 1054.688 ms (ties to even).
#[test]
fn a_heart_rate_prints_rr_intervals_raw_and_in_ms() {
    assert_eq!(
        decoded(&["2A37", "16 48 A801 3804"]),
        json!({
            "flags": 22, "heart_rate_bpm": 72, "hr_format": "uint8",
            "sensor_contact": "supported_detected", "energy_expended_kj": null,
            "rr_intervals_raw": [424, 1080], "rr_intervals_ms": [414.062, 1054.688],
        })
    );
    // Flags 0x0D: uint16 (bit 0), contact bits 10 → supported_not_detected, energy.
    assert_eq!(
        decoded(&["2A37", "0D 2C01 E803"]),
        json!({
            "flags": 13, "heart_rate_bpm": 300, "hr_format": "uint16",
            "sensor_contact": "supported_not_detected", "energy_expended_kj": 1000,
            "rr_intervals_raw": null, "rr_intervals_ms": null,
        })
    );
}

/// spec/decode.md §3 PLX spot-check, flags 0x0F: timestamp, both statuses, PAI.
/// SpO2 97, PR 72; measurement status 0x8000 (invalid measurement, bit 15); device
/// status 0x000008 (inadequate signal, bit 3); PAI 0xF020 = 3.2.
#[test]
fn a_plx_spot_check_prints_every_key_of_the_spec() {
    let hex = format!("0F 6100 4800 {T} 0080 080000 20F0");
    assert_eq!(
        decoded(&["2A5E", &hex]),
        json!({
            "flags": 15, "spo2_pct": 97, "pulse_rate_bpm": 72, "timestamp": t(),
            "device_clock_not_set": false,
            "measurement_status": 32768,
            "measurement_status_bits": ["invalid_measurement_detected"],
            "device_sensor_status": 8,
            "device_sensor_status_bits": ["inadequate_signal_detected"],
            "pulse_amplitude_index_pct": 3.2,
        })
    );
}

/// spec/decode.md §3 PLX continuous, flags 0x01: fast pair only. Normal 97/72, fast
/// 96 / NaN.
#[test]
fn a_plx_continuous_prints_fast_and_slow_pairs() {
    assert_eq!(
        decoded(&["2A5F", "01 6100 4800 6000 FF07"]),
        json!({
            "flags": 1, "spo2_pct": 97, "pulse_rate_bpm": 72,
            "spo2_fast_pct": 96, "pulse_rate_fast_bpm": "NaN",
            "spo2_slow_pct": null, "pulse_rate_slow_bpm": null,
            "measurement_status": null, "measurement_status_bits": null,
            "device_sensor_status": null, "device_sensor_status_bits": null,
            "pulse_amplitude_index_pct": null,
        })
    );
}

/// spec/decode.md §3 Temperature, flags 0x06 (Celsius, timestamp, type): 0xFF00016D =
/// 36.5; type 1 = armpit. And flags 0x01: Fahrenheit 0xFF0003DA = 98.6.
#[test]
fn temperatures_print_their_unit_and_type() {
    assert_eq!(
        decoded(&["2A1C", &format!("06 6D0100FF {T} 01")]),
        json!({
            "flags": 6, "temperature": 36.5, "temperature_unit": "Celsius",
            "timestamp": t(), "temperature_type": 1, "temperature_type_name": "armpit",
        })
    );
    assert_eq!(
        decoded(&["2A1C", "01 DA0300FF"]),
        json!({
            "flags": 1, "temperature": 98.6, "temperature_unit": "Fahrenheit",
            "timestamp": null, "temperature_type": null, "temperature_type_name": null,
        })
    );
}

/// spec/decode.md §3 Weight, flags 0x0C (SI, user, BMI + height): raw 0x32C8 = 13000 ×
/// 0.005 = 65 kg; user 1; BMI 0x00E1 = 22.5; height 0x06C6 = 1.734 m.
#[test]
fn a_weight_prints_kg_bmi_and_metres() {
    assert_eq!(
        decoded(&["2A9D", "0C C832 01 E100 C606"]),
        json!({
            "flags": 12, "unit_system": "SI", "weight_raw": 13000, "weight": 65,
            "weight_unit": "kg", "timestamp": null, "user_id": 1,
            "bmi_raw": 225, "bmi": 22.5, "height_raw": 1734, "height": 1.734, "height_unit": "m",
        })
    );
    // Imperial, 0xFFFF: the measurement was unsuccessful.
    assert_eq!(
        decoded(&["2A9D", "01 FFFF"]),
        json!({
            "flags": 1, "unit_system": "Imperial", "weight_raw": 65535,
            "weight": "MEASUREMENT_UNSUCCESSFUL", "weight_unit": "lb", "timestamp": null,
            "user_id": null, "bmi_raw": null, "bmi": null, "height_raw": null,
            "height": null, "height_unit": null,
        })
    );
}

/// spec/decode.md §4: the H10's settings response (F0 01 00 00 00, then sample rate
/// 130 and resolution 14).
#[test]
fn a_pmd_settings_response_prints_its_settings() {
    assert_eq!(
        decoded(&[PMD_CP, "F0 01 00 00 00 00 01 82 00 01 01 0E 00"]),
        json!({
            "response_code": 240, "opcode": 1, "opcode_name": "GET_MEASUREMENT_SETTINGS",
            "measurement_type": 0, "measurement_type_name": "ECG",
            "status": 0, "status_name": "SUCCESS", "more": false,
            "parameters_hex": "0001820001010e00",
            "settings": {"sample_rate_hz": [130], "resolution_bits": [14]},
        })
    );
    // The H10's refusal before the MTU is raised: no byte 4, so more is false.
    assert_eq!(
        decoded(&[&PMD_CP.to_lowercase(), "F0 02 00 0A"]),
        json!({
            "response_code": 240, "opcode": 2, "opcode_name": "REQUEST_MEASUREMENT_START",
            "measurement_type": 0, "measurement_type_name": "ECG",
            "status": 10, "status_name": "ERROR_INVALID_MTU", "more": false,
            "parameters_hex": "", "settings": null,
        })
    );
}

/// spec/decode.md §4 commands and notices.
#[test]
fn pmd_commands_and_notices_print_their_direction() {
    assert_eq!(
        decoded(&[PMD_CP, "02 00 00 01 82 00 01 01 0E 00"]),
        json!({
            "direction": "client_to_server", "opcode": 2, "opcode_name": "REQUEST_MEASUREMENT_START",
            "measurement_type": 0, "measurement_type_name": "ECG", "recording_type": "online",
            "settings": {"sample_rate_hz": [130], "resolution_bits": [14]},
        })
    );
    assert_eq!(
        decoded(&[PMD_CP, "03 00"]),
        json!({
            "direction": "client_to_server", "opcode": 3, "opcode_name": "STOP_MEASUREMENT",
            "measurement_type": 0, "measurement_type_name": "ECG",
        })
    );
    assert_eq!(
        decoded(&["--direction", "server-to-client", PMD_CP, "01 01 02"]),
        json!({
            "direction": "server_to_client", "message": "ONLINE_MEASUREMENT_STOPPED",
            "measurement_types": [1, 2], "measurement_type_names": ["PPG", "ACC"],
        })
    );
}

/// spec/decode.md §4 data frame: ECG, timestamp 599 616 001 000 000 000 ns (one second
/// after the H10's unset-clock restart), frame type 0, samples 0x000064 = 100,
/// 0xFFFF9C = −100. The timestamp is a decimal string.
#[test]
fn a_pmd_ecg_frame_prints_its_timestamp_as_a_string() {
    assert_eq!(
        decoded(&[PMD_DATA, "00 00CA3E7593435208 00 640000 9CFFFF"]),
        json!({
            "measurement_type": 0,
            "timestamp_ns": "599616001000000000", "frame_type": 0, "compressed": false,
            "samples_uv": [100, -100], "sample_count": 2,
        })
    );
}

/// spec/decode.md §4: `pmd-settings` decodes a bare settings TLV.
#[test]
fn pmd_settings_alone_print_the_tlv_only_marker() {
    assert_eq!(
        decoded(&["pmd-settings", "00 01 82 00 01 01 0E 00 04 01 01"]),
        json!({
            "settings_tlv_only": true,
            "settings": {"sample_rate_hz": [130], "resolution_bits": [14], "channels": [1]},
        })
    );
}

/// spec/decode.md introduction: `<hex>` as any sniffer shows it.
/// spec/decode.md §1 "Timestamps": a bare Date Time (0x2A08) is the raw object; year 0
/// stays 0 (not known), never invented.
#[test]
fn a_bare_date_time_prints_its_raw_fields() {
    assert_eq!(decoded(&["2A08", T]), t());
    assert_eq!(
        decoded(&["2A08", "0000 00 00 17 3B 3B"]),
        json!({"year": 0, "month": 0, "day": 0, "hours": 23, "minutes": 59, "seconds": 59})
    );
}

/// spec/decode.md §3 RACP and §1 "Enumerations": an RFU filter type is named
/// "reserved" and its operand stays raw in `operand_hex`.
#[test]
fn an_rfu_racp_filter_type_is_named_reserved() {
    assert_eq!(
        decoded(&["2A52", "01 03 07 AA"]),
        json!({
            "direction": "client_to_server", "opcode": 1, "opcode_name": "report_stored_records",
            "operator": 3, "operator_name": "greater_than_or_equal_to", "operand_hex": "07aa",
            "filter_type": 7, "filter_type_name": "reserved",
        })
    );
}

#[test]
fn hex_may_be_split_over_arguments_and_use_colons() {
    let a = decoded(&["0x2A37", "16:48:a8:01:38:04"]);
    let b = decoded(&["2a37", "16", "48", "A8", "01", "3804"]);
    assert_eq!(a, b);
}

/// spec/decode.md introduction: the rejection message, word for word.
#[test]
fn a_truncated_payload_exits_1_with_one_line_naming_the_problem() {
    assert_eq!(
        rejected(1, &["2A35", "00 78 00 50 00"]),
        "truncated: Blood Pressure Measurement needs 7 bytes, got 5"
    );
}

/// Strictness policy, on the command line.
#[test]
fn reserved_flags_trailing_bytes_and_invalid_payloads_exit_1() {
    assert!(
        rejected(1, &["2A37", "20 48"]).starts_with("reserved flag bits: Heart Rate Measurement")
    );
    assert_eq!(
        rejected(1, &["2A37", "00 48 00"]),
        "trailing bytes: Heart Rate Measurement ends after 2 bytes, got 3 (1 left over)"
    );
    assert_eq!(
        rejected(1, &["2A37", "10 48"]),
        "invalid: Heart Rate Measurement: the RR-interval flag (bit 4) is set but no RR value \
         follows"
    );
    assert!(rejected(1, &["2A52", "05 00 01 02 03"]).contains("3 bytes wide"));
    assert!(rejected(1, &["sfloat", "01"]).starts_with("truncated: SFLOAT needs 2 bytes"));
    assert!(rejected(1, &[PMD_DATA, "00 0000000000000000 00 6400"]).starts_with("truncated:"));
}

/// spec/decode.md `--direction`: `01 01` is a request, rejected as server-to-client;
/// a PMD response is rejected as client-to-server.
#[test]
fn a_message_of_the_other_direction_exits_1() {
    assert!(
        rejected(1, &["--direction", "server-to-client", "2A52", "01 01"])
            .contains("is a client request")
    );
    assert!(
        rejected(
            1,
            &["--direction", "client-to-server", PMD_CP, "F0 02 00 0A"]
        )
        .contains("server response")
    );
}

/// spec/decode.md introduction: arguments that are not a characteristic or hex (exit 2, see `--help`).
#[test]
fn unreadable_arguments_exit_2() {
    assert!(rejected(2, &["2A00", "00"]).contains("is not one this command decodes"));
    assert!(rejected(2, &["2A35", "0 78"]).contains("odd number"));
    assert!(rejected(2, &["2A35", "zz"]).contains("not a hex digit"));
}

/// spec/decode.md "Characteristics" and exit statuses, in `--help`.
#[test]
fn decode_help_lists_the_characteristics_and_exit_statuses() {
    let out = vigil_edge(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "2A18",
        "2A5F",
        "FB005C81",
        "pmd-settings",
        "--direction",
        "Exit status",
    ] {
        assert!(help.contains(needle), "{needle}: {help}");
    }
}
