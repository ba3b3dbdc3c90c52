//! The edge agent and the ingester end to end, both as their real binaries, over a
//! real (persistent) Mosquitto: `vigil-edge simulate` runs a fleet of simulated
//! patients' gateways (each its own outbox and MQTT connection) into `vigil serve`.
//! Midway the broker is stopped, and while it is down the gateway process is killed
//! with SIGKILL; the broker comes back and the gateways are started again on their
//! state. One batch of one gateway is deliberately dropped on its way (fault
//! injection): the ingester must see the `batch_seq` gap, ask that gateway for it with
//! a `backfill` command, and get it.
//!
//! At the end: the ingester holds every reading the fleet meant to be stored exactly
//! once (compared reading by reading: device, type and measurement instant, against
//! what the fleet itself expects) and nothing else, has quarantined the rest for the
//! reasons the fleet expects, every reading received is accounted for, nothing is
//! pending in any outbox, the acknowledged batches are still retained for backfill,
//! and the gap was requested and recovered.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

mod common;
use common::{http_addr, spawn_serve};

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use vigil_sim::fleet::{Expect, Fleet, FleetConfig};
use vigil_testkit::{Mosquitto, MosquittoOptions, http_get_any};

const PATIENTS: &str = "12";
const SEED: &str = "11";
const READINGS: u64 = 400;

fn edge_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_vigil")).with_file_name("vigil-edge");
    assert!(
        path.exists(),
        "{} is not built: run the suite with scripts/test (or cargo build -p vigil-edge first)",
        path.display()
    );
    path
}

/// The sum of a `/metrics` counter over its labels (0 when absent).
fn metric(http: &str, name: &str) -> u64 {
    let (_, text) = http_get_any(http, "/metrics");
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn wait(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `vigil-edge simulate` with the test's fleet, its stdout lines collected.
fn simulate(
    edge: &Path,
    state: &Path,
    port: u16,
    extra: &[&str],
) -> (Child, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new(edge)
        .arg("simulate")
        .args(["--state-dir", state.to_str().unwrap()])
        .args(["--patients", PATIENTS, "--seed", SEED])
        .args(["--broker", &format!("mqtt://127.0.0.1:{port}")])
        .args(["--readings", &READINGS.to_string()])
        .args(["--batch-size", "5", "--linger-ms", "100"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(state.with_extension("log")).unwrap())
        .spawn()
        .unwrap();
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let (out, l) = (child.stdout.take().unwrap(), lines.clone());
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            l.lock().unwrap().push(line);
        }
    });
    (child, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_simulated_fleet_arrives_exactly_once_through_an_outage_a_killed_gateway_and_a_lost_batch()
 {
    let edge = edge_binary();
    let mut broker = Mosquitto::start_with(MosquittoOptions {
        persistence: true,
        ..MosquittoOptions::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("gateways");

    // The registry of the fleet (this also fixes the fleet's start in the state dir).
    let out = Command::new(&edge)
        .arg("simulate")
        .args(["--state-dir", state.to_str().unwrap()])
        .args(["--patients", PATIENTS, "--seed", SEED, "--print-registry"])
        .args(["--history-hours", "168"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let registry = String::from_utf8(out.stdout).unwrap();
    std::fs::write(dir.path().join("registry.toml"), &registry).unwrap();
    let first_gateway = registry
        .split("[[gateway]]")
        .nth(1)
        .and_then(|g| g.split('"').nth(1))
        .unwrap()
        .to_owned();

    // What the fleet itself expects of its first READINGS readings.
    let sim: serde_json::Value =
        serde_json::from_slice(&std::fs::read(state.join("sim.json")).unwrap()).unwrap();
    let start: DateTime<Utc> = sim["start"].as_str().unwrap().parse().unwrap();
    let mut fleet = fleet_from(start);
    let published: Vec<(vigil_model::Reading, Expect)> = fleet
        .advance(vigil_model::clock::Clock::now(
            &vigil_model::clock::SystemClock,
        ))
        .into_iter()
        .flat_map(|p| p.envelope.readings.into_iter().zip(p.expect))
        .take(READINGS as usize)
        .collect();
    let expected: Vec<Expect> = published.iter().map(|(_, e)| *e).collect();
    assert_eq!(
        expected.len() as u64,
        READINGS,
        "the fleet makes too few readings"
    );
    let stored = expected.iter().filter(|e| **e == Expect::Stored).count() as u64;
    // About 8 s of generation: simulated hours for READINGS, at that speed.
    let hours = 168.0 * READINGS as f64 / fleet_readings_per_week(start) as f64;
    let speed = format!("{:.0}", (hours * 3600.0 / 8.0).max(60.0));

    std::fs::write(
        dir.path().join("vigil.toml"),
        format!(
            "data_dir = {:?}\nregistry = {:?}\n[broker]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"edge-e2e\"\n[http]\nlisten = \"127.0.0.1:0\"\nauth = false\n[ingest]\ngap_timeout_s = 1\ngap_poll_ms = 100\n",
            dir.path().join("data"),
            dir.path().join("registry.toml"),
            broker.port
        ),
    )
    .unwrap();
    let mut serve = spawn_serve(dir.path(), "serve.log");
    let http = http_addr(&dir.path().join("serve.log"));
    wait("the subscription", Duration::from_secs(30), || {
        http_get_any(&http, "/readyz")
            .1
            .contains("\"mqtt_subscribed\":true")
    });

    // First run; its gateway gw's batch 3 is lost on the way.
    let drop = format!("{first_gateway}:3");
    let (mut run1, _) = simulate(
        &edge,
        &state,
        broker.port,
        &["--speed", &speed, "--drop-batch", &drop, "--stay"],
    );
    wait(
        "a quarter of the readings stored",
        Duration::from_secs(60),
        || metric(&http, "vigil_readings_stored_total") >= stored / 4,
    );
    // The drop happens only in this run: wait until a later batch of that gateway has
    // shown the gap (a slow first gateway may not have formed batch 3 by now).
    wait("the lost batch noticed", Duration::from_secs(60), || {
        metric(&http, "vigil_batch_gaps_detected_total") >= 1
    });
    // The broker goes away; the gateways keep measuring into their outboxes; then the
    // gateway process dies without warning.
    broker.stop();
    let handed_before_kill = {
        let before = progress(&state);
        wait(
            "readings handed over while the broker is down",
            Duration::from_secs(30),
            || progress(&state) > before,
        );
        progress(&state)
    };
    run1.kill().unwrap(); // SIGKILL
    run1.wait().unwrap();
    broker.restart();

    // The gateways start again on their state and finish.
    let (mut run2, lines) = simulate(&edge, &state, broker.port, &["--speed", &speed, "--stay"]);
    wait("the second run to drain", Duration::from_secs(120), || {
        !lines.lock().unwrap().is_empty()
    });
    let summary: serde_json::Value = serde_json::from_str(&lines.lock().unwrap()[0]).unwrap();
    assert_eq!(summary["readings"], READINGS);
    assert_eq!(summary["pending"], 0);
    assert!(summary["via_gatt"].as_u64().unwrap() > 0, "{summary}");
    assert_eq!(summary["gatt_mismatches"], 0, "{summary}");

    // The lost batch: detected, asked for, recovered; then everything is in.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let m = |n| metric(&http, n);
        let (recovered, missing, now_stored) = (
            m("vigil_batches_recovered_total"),
            m("vigil_batches_missing"),
            m("vigil_readings_stored_total"),
        );
        if recovered >= 1 && missing == 0 && now_stored >= stored {
            break;
        }
        if Instant::now() > deadline {
            let log = |f: PathBuf| std::fs::read_to_string(f).unwrap_or_default();
            panic!(
                "the gap not recovered or readings missing: recovered {recovered}, missing {missing}, stored {now_stored} of {stored}, gaps {}, requests {}\nserve log:\n{}\nsimulate log:\n{}",
                m("vigil_batch_gaps_detected_total"),
                m("vigil_backfill_requests_total"),
                log(dir.path().join("serve.log")),
                log(state.with_extension("log")),
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(metric(&http, "vigil_batch_gaps_detected_total") >= 1);
    assert!(metric(&http, "vigil_backfill_requests_total") >= 1);
    // Exactly once: nothing stored twice, whatever was sent twice.
    assert_eq!(metric(&http, "vigil_readings_stored_total"), stored);
    let received = metric(&http, "vigil_readings_received_total");
    assert!(received >= READINGS, "{received}");
    let redelivered = metric(&http, "vigil_readings_redelivered_total");
    assert_eq!(
        metric(&http, "vigil_readings_stored_total")
            + metric(&http, "vigil_readings_quarantined_total")
            + metric(&http, "vigil_readings_duplicate_total")
            + redelivered,
        received,
        "every reading received is stored, quarantined, a duplicate, or in an envelope delivered again"
    );
    eprintln!(
        "{READINGS} readings ({stored} to store); {handed_before_kill} handed over before the kill; {received} received in all, {redelivered} of them in envelopes delivered again"
    );
    // Exactly once, reading by reading: the store holds each reading the fleet meant to
    // be stored (device, type, measurement instant) once and nothing else, and has
    // quarantined the others for the reasons the fleet expects.
    let clinical = vigil_store::SqliteStore::open(&dir.path().join("data/clinical.db"))
        .await
        .unwrap();
    let key = |device: &str, kind: &str, ms: i64| (device.to_owned(), kind.to_owned(), ms);
    let mut want: Vec<(String, String, i64)> = published
        .iter()
        .filter(|(_, e)| *e == Expect::Stored)
        .map(|(r, _)| {
            key(
                r.device_id.as_str(),
                &r.measurement.reading_type().to_string(),
                r.time.timestamp_millis(),
            )
        })
        .collect();
    let mut have: Vec<(String, String, i64)> = clinical
        .export_after(0, u32::MAX)
        .await
        .unwrap()
        .iter()
        .map(|row| {
            key(
                row.device_id.as_str(),
                &row.reading_type,
                row.time.timestamp_millis(),
            )
        })
        .collect();
    want.sort();
    have.sort();
    assert_eq!(have, want, "the stored readings, one by one");
    let mut reasons: std::collections::BTreeMap<String, u64> = Default::default();
    for (_, e) in &published {
        if let Expect::Quarantined(reason) = e {
            *reasons.entry(reason.to_string()).or_default() += 1;
        }
    }
    let quarantined: std::collections::BTreeMap<String, u64> = clinical
        .quarantined_by_reason()
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(quarantined, reasons, "quarantined, by reason");
    clinical.close().await;

    // A clean stop; the outboxes are empty and the acknowledged batches retained.
    let _ = Command::new("kill")
        .args(["-TERM", &run2.id().to_string()])
        .status();
    assert!(run2.wait().unwrap().success());
    let (gw_state, _) = vigil_edge::store::Store::open(
        &state.join("gateways").join(&first_gateway),
        vigil_outbox::Config::default(),
    )
    .unwrap();
    assert_eq!(gw_state.depth(), 0);
    assert_eq!(gw_state.envelopes_pending(), 0);
    assert!(
        gw_state.envelope(1).unwrap().is_some(),
        "batch 1 retained for backfill"
    );
    assert!(
        gw_state.envelope(3).unwrap().is_some(),
        "the lost batch retained"
    );
    serve.kill().unwrap();
    serve.wait().unwrap();
}

/// Readings handed to the outboxes so far (from the run's `sim.json`).
fn progress(state: &Path) -> u64 {
    std::fs::read(state.join("sim.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["handed_over"].as_u64())
        .unwrap_or(0)
}

/// The fleet `vigil-edge simulate` runs with the test's options.
fn fleet_from(start: DateTime<Utc>) -> Fleet {
    Fleet::new(FleetConfig {
        patients: PATIENTS.parse().unwrap(),
        seed: SEED.parse().unwrap(),
        start,
        incident_every: Some(TimeDelta::minutes(30)),
        devices_per_patient: None,
    })
}

/// The fleet's readings over its first week.
fn fleet_readings_per_week(start: DateTime<Utc>) -> u64 {
    fleet_from(start)
        .advance(start + TimeDelta::days(7))
        .iter()
        .map(|p| p.expect.len() as u64)
        .sum()
}
