//! `vigil envelope check` as an integrator runs it: the real binary, stdin and files,
//! exit codes and output of `spec/envelope-check.md`.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

fn vigil(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A process that exits without reading its input closes the pipe; that is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

fn stdout_json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

const SPEC_EXAMPLE: &str = r#"{"schema":"vigil.readings.v1","gateway_id":"gw-0001","batch_seq":1042,
 "sent_at":"2026-11-22T08:00:01.250+08:00","readings":[
 {"device_id":"bpm-omron-3f9a21","type":"bp","time":"2026-11-22T07:58:03+08:00","unit":"kPa",
  "values":{"systolic":24.0,"diastolic":14.7,"pulse":80}},
 {"device_id":"bpm-omron-3f9a21","type":"bp","time":"2026-11-22T07:58:03+08:00","unit":"mmHg",
  "values":{"systolic":142,"diastolic":91}}]}"#;

#[test]
fn reading_level_failures_exit_0_with_one_entry_per_reading() {
    for args in [&["envelope", "check"][..], &["envelope", "check", "-"][..]] {
        let out = vigil(args, SPEC_EXAMPLE.as_bytes());
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            stdout_json(&out),
            json!({"ok": false, "error": null, "readings": [
                {"index": 0, "ok": true, "canonical": {"type": "bp", "systolic_mmhg": 180, "diastolic_mmhg": 110, "pulse_per_min": 80}},
                {"index": 1, "ok": false, "error": "reading 1: unit 'mmHg' is not UCUM; use 'mm[Hg]'"}
            ]})
        );
    }
}

#[test]
fn a_file_argument_is_read_and_compact_output_is_one_line() {
    let dir = std::env::temp_dir().join(format!("vigil-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("envelope.json");
    std::fs::write(&path, SPEC_EXAMPLE).unwrap();
    let out = vigil(
        &["envelope", "check", "--compact", path.to_str().unwrap()],
        b"",
    );
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.trim_end().lines().count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn envelope_level_failures_exit_1_with_the_error_and_no_readings() {
    for (input, needle) in [
        (&b"not json"[..], "not valid JSON"),
        (b"[]", "must be a JSON object"),
        (br#"{"schema":"vigil.readings.v2"}"#, "'schema'"),
        (br#"{"schema":"vigil.readings.v1","gateway_id":"gw 1"}"#, "'gateway_id'"),
        (
            br#"{"schema":"vigil.readings.v1","gateway_id":"gw","batch_seq":1,"sent_at":"2026-11-22T08:00:00+08:00","readings":[{"v":1e999}]}"#,
            "cannot be represented",
        ),
    ] {
        let out = vigil(&["envelope", "check"], input);
        assert_eq!(out.status.code(), Some(1));
        let report = stdout_json(&out);
        assert_eq!(report["ok"], json!(false));
        assert_eq!(report["readings"], json!([]));
        let error = report["error"].as_str().unwrap();
        assert!(error.contains(needle), "{error:?} should mention {needle:?}");
    }
}

#[test]
fn an_unreadable_file_exits_2_with_a_reason_on_stderr() {
    let out = vigil(&["envelope", "check", "/nonexistent/envelope.json"], b"");
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("cannot open /nonexistent/envelope.json"),
        "{err}"
    );
}

#[test]
fn binary_garbage_never_crashes_the_check() {
    let mut junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    junk.extend_from_slice(&[0xff, 0xfe, 0x00]);
    let out = vigil(&["envelope", "check"], &junk);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout_json(&out)["error"].is_string());
}

#[test]
fn help_explains_every_subcommand() {
    let out = vigil(&["--help"], b"");
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("envelope"), "{text}");
    let out = vigil(&["envelope", "check", "--help"], b"");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Exit status"), "{text}");
}
