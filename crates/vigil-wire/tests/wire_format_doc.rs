//! `docs/wire-format.md` cannot drift from the code: every example block in it is
//! decoded here with the ingester's codec, and every `check-output` block must equal
//! what `vigil envelope check` reports for the envelope block just above it.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use serde_json::Value;
use vigil_wire::alert::decode_alert;
use vigil_wire::check::check_envelope;
use vigil_wire::command::decode_command;
use vigil_wire::status::decode_status;

const DOC: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/wire-format.md"
));

/// (info string, body, line) of every fenced block.
fn blocks() -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String, usize)> = None;
    for (n, line) in DOC.lines().enumerate() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(info)) => current = Some((info.trim().to_owned(), String::new(), n + 1)),
            (Some(_), Some(_)) => out.push(current.take().unwrap()),
            (Some((_, body, _)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(current.is_none(), "unclosed code block");
    out
}

#[test]
fn every_example_in_the_wire_format_document_decodes_as_documented() {
    let mut last_envelope: Option<(Vec<u8>, usize)> = None;
    let mut counts = std::collections::BTreeMap::<String, usize>::new();
    for (info, body, line) in blocks() {
        let Some(kind) = info.strip_prefix("json ") else {
            continue;
        };
        *counts.entry(kind.to_owned()).or_default() += 1;
        let bytes = body.as_bytes();
        match kind {
            "readings-envelope" => {
                // Parse as JSON first so a typo in the document is reported as such.
                serde_json::from_slice::<Value>(bytes)
                    .unwrap_or_else(|e| panic!("line {line}: example is not JSON: {e}"));
                last_envelope = Some((bytes.to_vec(), line));
            }
            "check-output" => {
                let (envelope, env_line) = last_envelope.take().unwrap_or_else(|| {
                    panic!("line {line}: check-output without an envelope above")
                });
                let expected: Value = serde_json::from_slice(bytes)
                    .unwrap_or_else(|e| panic!("line {line}: not JSON: {e}"));
                let actual = serde_json::to_value(check_envelope(&envelope)).unwrap();
                assert_eq!(
                    actual, expected,
                    "line {line}: the documented check output differs from what the envelope at line {env_line} gives"
                );
            }
            "status" => {
                decode_status(bytes).unwrap_or_else(|e| panic!("line {line}: {e}"));
            }
            "command" => {
                decode_command(bytes).unwrap_or_else(|e| panic!("line {line}: {e}"));
            }
            "alert-event" => {
                decode_alert(bytes).unwrap_or_else(|e| panic!("line {line}: {e}"));
            }
            other => panic!("line {line}: unknown example kind {other:?}"),
        }
    }
    // Every kind of payload has at least one example.
    for kind in [
        "readings-envelope",
        "check-output",
        "status",
        "command",
        "alert-event",
    ] {
        assert!(
            counts.get(kind).copied().unwrap_or(0) >= 1,
            "no {kind} example"
        );
    }
}

#[test]
fn envelope_examples_without_a_documented_output_are_fully_valid() {
    let blocks = blocks();
    for (i, (info, body, line)) in blocks.iter().enumerate() {
        let documented = blocks
            .get(i + 1)
            .is_some_and(|(next, _, _)| next == "json check-output");
        if info == "json readings-envelope" && !documented {
            let report = check_envelope(body.as_bytes());
            assert!(report.ok, "line {line}: {report:?}");
        }
    }
}
