//! `vigil loadgen` as a real binary against a real Mosquitto and a real `vigil serve`:
//! the baseline subscriber receives every envelope; against the ingester, every
//! reading published is accounted for (stored, quarantined as out of range exactly as
//! many as were sent invalid, duplicates exactly as many as were resent), every alert
//! reading reaches a doctor with its latency measured, and ECG strips are counted in
//! samples.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

mod common;
use common::{http_addr, spawn_serve};

use std::process::Command;

use serde_json::Value;
use vigil_testkit::{Mosquitto, http_get_any};

fn loadgen(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("loadgen")
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

/// `vigil loadgen run --baseline` on the 300-patient fleet at 2 000 readings/s, with
/// `extra` options.
fn baseline(url: &str, extra: &str) -> Value {
    let mut args = vec![
        "run",
        "--patients",
        "300",
        "--broker",
        url,
        "--rate",
        "2000",
        "--baseline",
        "--json",
    ];
    args.extend(extra.split_whitespace());
    loadgen(&args)
}

#[test]
fn loadgen_measures_the_broker_alone_and_an_ingester_that_accounts_for_every_reading() {
    let broker = Mosquitto::start();
    let url = format!("mqtt://127.0.0.1:{}", broker.port);
    let dir = tempfile::tempdir().unwrap();
    let registry = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["loadgen", "registry", "--patients", "300"])
        .output()
        .unwrap();
    assert!(registry.status.success());
    std::fs::write(dir.path().join("registry.toml"), &registry.stdout).unwrap();

    // The ceiling: the broker and a no-op subscriber.
    let base = baseline(&url, "--count 2000 --batch 10");
    assert_eq!(base["mode"], "baseline");
    assert_eq!(base["published"]["readings"], 2000);
    assert_eq!(base["published"]["envelopes"], 200);
    assert!(base["readings_per_second"].as_f64().unwrap() > 0.0);
    // A gateway per connection (the fleet scenario's shape): every envelope arrives.
    let many = baseline(&url, "--count 1000 --connections 200");
    assert_eq!(many["published"]["envelopes"], 1000);
    assert_eq!(many["published"]["readings"], 1000);

    std::fs::write(
        dir.path().join("vigil.toml"),
        format!(
            "data_dir = {:?}\nregistry = {:?}\n[broker]\nurl = \"{url}\"\nclient_id = \"loadgen-test\"\n[http]\nlisten = \"127.0.0.1:0\"\nauth = false\n",
            dir.path().join("data"),
            dir.path().join("registry.toml"),
        ),
    )
    .unwrap();
    let mut serve = spawn_serve(dir.path(), "serve.log");
    let http = http_addr(&dir.path().join("serve.log"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !http_get_any(&http, "/readyz")
        .1
        .contains("\"mqtt_subscribed\":true")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "vigil serve never subscribed"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let metrics = format!("http://{http}");
    let pid = serve.id().to_string();
    let run = loadgen(&[
        "run",
        "--patients",
        "300",
        "--broker",
        &url,
        "--rate",
        "1500",
        "--count",
        "1500",
        "--invalid",
        "0.02",
        "--duplicates",
        "0.02",
        "--alerts",
        "0.01",
        "--metrics",
        &metrics,
        "--ingester-pid",
        &pid,
        "--json",
    ]);
    let published = &run["published"];
    assert_eq!(published["readings"], 1500);
    let ingester = &run["ingester"];
    let (stored, quarantined, duplicates) = (
        ingester["stored"].as_f64().unwrap(),
        ingester["quarantined"].as_f64().unwrap(),
        ingester["duplicates"].as_f64().unwrap(),
    );
    assert_eq!(stored + quarantined + duplicates, 1500.0, "{run}");
    assert_eq!(quarantined, published["invalid"].as_f64().unwrap(), "{run}");
    assert_eq!(
        duplicates,
        published["duplicates"].as_f64().unwrap(),
        "{run}"
    );
    assert!(published["invalid"].as_u64().unwrap() >= 20);
    // The run ends only once the rule engine has evaluated every stored reading.
    assert_eq!(
        ingester["rules_evaluated"].as_f64().unwrap(),
        stored,
        "{run}"
    );
    let alerts = &run["alert_latency_ms"];
    // About one reading in a hundred (each of the 4 connections sends whole ones).
    assert!(alerts["sent"].as_u64().unwrap() >= 12, "{run}");
    assert_eq!(alerts["received"], alerts["sent"], "{run}");
    assert!(alerts["p99"].as_f64().unwrap() > 0.0);
    assert!(ingester["peak_rss_mb"].as_f64().unwrap() > 1.0);

    // ECG: every patch of the fleet streams one-second strips at 130 Hz.
    let ecg = loadgen(&[
        "run",
        "--patients",
        "300",
        "--broker",
        &url,
        "--rate",
        "20",
        "--seconds",
        "2",
        "--ecg-hz",
        "130",
        "--metrics",
        &metrics,
        "--json",
    ]);
    let samples = ecg["published"]["ecg_samples"].as_u64().unwrap();
    assert!(samples >= 130 * 2, "{ecg}");
    assert!(ecg["ecg_samples_per_second"].as_f64().unwrap() > 0.0);
    let (_, text) = http_get_any(&http, "/metrics");
    assert!(
        text.contains("vigil_readings_stored_total{type=\"ecg_waveform\"}"),
        "{text}"
    );
    serve.kill().unwrap();
    serve.wait().unwrap();
}

#[test]
fn loadgen_says_what_to_measure_and_refuses_nonsense() {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["loadgen", "run", "--broker", "mqtt://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--baseline") && err.contains("--metrics"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["loadgen", "run", "--baseline", "--invalid", "2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--invalid must be a share"));
    for (args, says) in [
        (
            &["--connections", "10001"][..],
            "--connections must be 1 to 10000",
        ),
        (
            &["--patients", "20", "--connections", "500"][..],
            "homes that publish vitals",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .args([
                "loadgen",
                "run",
                "--baseline",
                "--broker",
                "mqtt://127.0.0.1:1",
            ])
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
