//! `vigil print-default-config` and `vigil validate-config` as an operator runs them.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::process::Command;

fn vigil() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_vigil"));
    // No VIGIL_* variable from the environment the tests run in.
    for (k, _) in std::env::vars() {
        if k.starts_with("VIGIL_") {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn the_default_configuration_is_printed_and_validates_with_a_registry() {
    let out = vigil().arg("print-default-config").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("[broker]") && text.contains("client_id = \"vigil-ingester\""),
        "{text}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("vigil.toml"), &text).unwrap();
    std::fs::write(
        dir.path().join("registry.toml"),
        vigil_testkit::example_registry(),
    )
    .unwrap();
    let out = vigil()
        .args(["validate-config", "--config"])
        .arg(dir.path().join("vigil.toml"))
        .arg("--registry")
        .arg(dir.path().join("registry.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("registry with 1 devices and 1 patients"),
        "{text}"
    );
}

#[test]
fn every_problem_of_configuration_environment_and_registry_is_listed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("vigil.toml"), "[ingest]\nmax_batch = 0\n").unwrap();
    let out = vigil()
        .args(["validate-config", "--config"])
        .arg(dir.path().join("vigil.toml"))
        .arg("--registry")
        .arg(dir.path().join("missing.toml"))
        .env("VIGIL_BROKER_URL", "tcp://broker")
        .env("VIGIL_NOPE", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.starts_with("vigil: the configuration has 4 problem(s):"),
        "{err}"
    );
    for needle in [
        "VIGIL_NOPE",
        "must start with mqtt://",
        "max_batch is 0",
        "cannot read the registry",
    ] {
        assert!(err.contains(needle), "{needle:?} missing from {err}");
    }
}
