//! `vigil rules replay` on the scenario files of `tests/scenarios/`: each names the
//! clause of `clinical/rules.md` it checks and carries its expected outcome
//! (`expected`), compared with what the real binary prints.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn replay(path: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["rules", "replay"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn every_scenario_gives_its_expected_outcome() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{files:?}");
    let mut failures = Vec::new();
    for f in &files {
        let scenario: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
        assert!(
            scenario["clause"].as_str().is_some_and(|c| c.contains('§')),
            "{} names no clause",
            f.display()
        );
        let (code, stdout, stderr) = replay(f);
        if code != 0 {
            failures.push(format!("{}: exit {code}: {stderr}", f.display()));
            continue;
        }
        let got: Value = serde_json::from_str(&stdout).unwrap();
        if got != scenario["expected"] {
            failures.push(format!(
                "{}\n  expected {}\n  got      {}",
                f.file_name().unwrap().to_string_lossy(),
                scenario["expected"],
                got
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_malformed_scenario_exits_non_zero_with_one_line_that_says_why() {
    let dir = tempfile::tempdir().unwrap();
    for (body, says) in [
        (
            r#"{"patient_profile": {}, "readings": [{"type": "pulse", "values": {"value": 1}, "unit": "/min", "time": "2026-03-02T07:00:00+08:00"}], "as_of": "2026-03-02T08:00:00+08:00"}"#,
            "type",
        ),
        (
            r#"{"patient_profile": {}, "readings": [{"type": "bp", "values": {"systolic": 120, "diastolic": 80}, "unit": "mmHg", "time": "2026-03-02T07:00:00+08:00"}], "as_of": "2026-03-02T08:00:00+08:00"}"#,
            "mm[Hg]",
        ),
        (
            r#"{"patient_profile": {}, "readings": [{"type": "bp", "values": {"systolic": 120, "diastolic": 80}, "unit": "mm[Hg]", "time": "2026-03-02T07:00:00"}], "as_of": "2026-03-02T08:00:00+08:00"}"#,
            "offset",
        ),
        (
            r#"{"patient_profile": {"overrides": {"snoozed_rules": ["bp_grade2"]}}, "readings": [], "as_of": "2026-03-02T08:00:00+08:00"}"#,
            "snooze_until",
        ),
    ] {
        let f = dir.path().join("s.json");
        std::fs::write(&f, body).unwrap();
        let (code, stdout, stderr) = replay(&f);
        assert_ne!(code, 0, "{body}");
        assert!(stdout.is_empty());
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(says), "{says:?} in {stderr}");
    }
}

#[test]
fn a_tenant_rule_set_changes_what_the_same_scenario_raises() {
    // 178/115 confirmed: a crisis in China's set (diastolic >= 110), not in the AHA set
    // (180/120) (clinical rules §1.1, threshold notes).
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("s.json");
    std::fs::write(
        &scenario,
        r#"{"patient_profile": {"conditions": ["hypertension"]},
            "readings": [
              {"type": "bp", "values": {"systolic": 178, "diastolic": 115}, "unit": "mm[Hg]", "time": "2026-03-02T07:10:00+08:00"},
              {"type": "bp", "values": {"systolic": 176, "diastolic": 114}, "unit": "mm[Hg]", "time": "2026-03-02T07:20:00+08:00"}],
            "as_of": "2026-03-02T07:30:00+08:00"}"#,
    )
    .unwrap();
    let (code, stdout, _) = replay(&scenario);
    assert_eq!(code, 0);
    assert!(stdout.contains("\"bp_crisis\""), "{stdout}");
    let aha =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../vigil-rules/rules/example-aha-crisis.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["rules", "replay", "--rules"])
        .arg(&aha)
        .arg(&scenario)
        .output()
        .unwrap();
    assert!(out.status.success());
    let outcome: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(outcome["alerts"], serde_json::json!([]), "{outcome}");
}

#[test]
fn rules_check_accepts_the_shipped_sets_and_lists_every_problem_of_a_bad_one() {
    let run = |file: &Path| {
        Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args(["rules", "check"])
            .arg(file)
            .output()
            .unwrap()
    };
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../vigil-rules/rules");
    let out = run(&rules.join("default-cn.toml"));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("crisis 180/110"));
    let out = run(&rules.join("example-aha-crisis.toml"));
    assert!(String::from_utf8_lossy(&out.stdout).contains("crisis 180/120"));
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "version = 1\nname = \"bad\"\n[bp]\ncrisis_systolic = 150.0\n[glucose]\nhypo_clear_at = 3.5\n",
    )
    .unwrap();
    let out = run(&bad);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("the rule set has 3 problem(s)"), "{err}");
    assert!(
        err.contains("grade2_systolic < crisis_systolic") && err.contains("hypo_clear_at"),
        "{err}"
    );
    let printed = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["rules", "print-default"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&printed.stdout),
        std::fs::read_to_string(rules.join("default-cn.toml")).unwrap()
    );
}
