//! `vigil-edge run`, the real binary, against a real Mosquitto: it forwards what its
//! outbox holds (here readings left by an earlier run), says why no device is read on
//! a machine without Bluetooth, keeps a retained `online` status, and on SIGTERM stops
//! cleanly with `offline`. A broken configuration is refused with every problem.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::TimeDelta;
use vigil_model::clock::{Clock, SystemClock};
use vigil_model::measurement::BloodPressure;
use vigil_model::units::PressureUnit;
use vigil_model::{Measurement, Reading};
use vigil_testkit::{Mosquitto, eventually, subscriber};

fn reading(n: u64) -> Reading {
    let t = SystemClock.now() - TimeDelta::minutes(100 - n as i64);
    Reading {
        device_id: "bpm-omron-3f9a21".parse().unwrap(),
        record_seq: Some(n),
        time: t.with_timezone(&vigil_edge::forward::CHINA),
        device_time: Some(t.with_timezone(&vigil_edge::forward::CHINA).naive_local()),
        measurement: Measurement::Bp(BloodPressure {
            systolic: 130.0,
            diastolic: 85.0,
            mean: None,
            pulse: Some(70.0),
            unit: PressureUnit::MmHg,
        }),
        status: vec![],
        symptoms: vec![],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_forwards_its_outbox_keeps_its_status_and_stops_cleanly() {
    let broker = Mosquitto::start();
    let readings: Arc<Mutex<Vec<u64>>> = Arc::default();
    let r = readings.clone();
    let _platform = subscriber(
        broker.port,
        "platform",
        "vigil/v1/gw/+/readings",
        true,
        move |p| {
            let env = vigil_wire::decode_envelope(&p.payload).unwrap();
            let mut r = r.lock().unwrap();
            for x in env.readings {
                r.push(x.unwrap().record_seq.unwrap());
            }
        },
    )
    .await;
    let statuses: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = statuses.clone();
    let _watch = subscriber(
        broker.port,
        "watch",
        "vigil/v1/gw/+/status",
        true,
        move |p| {
            let st = vigil_wire::status::decode_status(&p.payload).unwrap();
            s.lock().unwrap().push(format!("{:?}", st.state));
        },
    )
    .await;

    // Readings an earlier run left in the outbox.
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    {
        let (mut store, _) =
            vigil_edge::store::Store::open(&state.join("outbox"), vigil_outbox::Config::default())
                .unwrap();
        store
            .add(&(0..30).map(reading).collect::<Vec<_>>(), SystemClock.now())
            .unwrap();
    }
    let config = dir.path().join("edge.toml");
    std::fs::write(
        &config,
        format!(
            "gateway_id = \"gw-0042\"\nstate_dir = {state:?}\nbatch_size = 10\nlinger_ms = 50\n[broker]\nurl = \"mqtt://127.0.0.1:{}\"\n[[device]]\nid = \"bpm-omron-3f9a21\"\nname = \"BLESmart_*\"\n",
            broker.port
        ),
    )
    .unwrap();
    let log = dir.path().join("edge.log");
    let mut edge = Command::new(env!("CARGO_BIN_EXE_vigil-edge"))
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    eventually("the outbox forwarded", Duration::from_secs(30), || {
        readings.lock().unwrap().len() >= 30
    })
    .await;
    let mut got = readings.lock().unwrap().clone();
    got.sort_unstable();
    got.dedup();
    assert_eq!(got, (0..30).collect::<Vec<_>>());
    eventually("the online status", Duration::from_secs(10), || {
        statuses.lock().unwrap().iter().any(|s| s == "Online")
    })
    .await;
    // Why no device is read, said plainly.
    eventually("the Bluetooth message", Duration::from_secs(10), || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("no Bluetooth") || text.contains("built without Bluetooth")
    })
    .await;
    let _ = Command::new("kill")
        .args(["-TERM", &edge.id().to_string()])
        .status();
    assert!(edge.wait().unwrap().success());
    eventually("the offline status", Duration::from_secs(10), || {
        statuses
            .lock()
            .unwrap()
            .last()
            .is_some_and(|s| s == "Offline")
    })
    .await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("panicked"), "{text}");
}

#[test]
fn a_broken_configuration_is_refused_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("edge.toml");
    std::fs::write(
        &config,
        "gateway_id = \"\"\nutc_offset = \"CST\"\n[broker]\nurl = \"tcp://x\"\n[[device]]\nid = \"glu 1\"\naddress = \"x\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vigil-edge"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("4 problem(s)"), "{err}");
    assert!(err.contains("gateway_id is empty"), "{err}");
    assert!(err.contains("mqtt://"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_vigil-edge"))
        .arg("print-default-config")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("outbox_max_mb = 256")
    );
}
