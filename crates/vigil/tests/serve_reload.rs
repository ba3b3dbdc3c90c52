//! `vigil serve` reloads its registry on SIGHUP: readings quarantined because no
//! assignment covered their device are stored as their patient's once one does, a
//! broken registry is refused while the running one stays, and the store keeps every
//! version.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use rumqttc::QoS;
use serde_json::json;
use vigil_store::SqliteStore;
use vigil_testkit::{Mosquitto, example_registry, http_get, http_get_any};

const NEW_DEVICE: &str = "\n[[device]]\nid = \"glu-new\"\ntypes = [\"glucose\"]\ngateway = \"gw-0042\"\nregistered = \"2026-11-01T00:00:00+08:00\"\n";
const ASSIGNED: &str = "\n[[assignment]]\ndevice = \"glu-new\"\npatient = \"p-000123\"\nfrom = \"2026-11-01T00:00:00+08:00\"\n";

fn signal(pid: u32, sig: &str) {
    assert!(
        Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
}

/// Waits until `log` contains `text` (the log is the process's stderr).
fn wait_log(log: &Path, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = std::fs::read_to_string(log).unwrap_or_default();
        if s.contains(text) {
            return s;
        }
        assert!(Instant::now() < deadline, "no {text:?} in:\n{s}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_http(addr: &str, path: &str, cond: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // Whatever the status: readiness answers 503 until the subscription is made.
        let (_, body) = http_get_any(addr, path);
        if cond(&body) {
            return body;
        }
        assert!(Instant::now() < deadline, "{path}: {body}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_registry_and_stores_readings_an_assignment_now_covers() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.toml");
    std::fs::write(&registry, format!("{}{NEW_DEVICE}", example_registry())).unwrap();
    std::fs::write(
        dir.path().join("vigil.toml"),
        format!(
            "data_dir = {:?}\nregistry = {:?}\n[broker]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"reload-test\"\n[http]\nlisten = \"127.0.0.1:0\"\nauth = false\n",
            dir.path().join("data"),
            registry,
            broker.port
        ),
    )
    .unwrap();
    let log = dir.path().join("serve.log");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["serve", "--config"])
        .arg(dir.path().join("vigil.toml"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let http = common::http_addr(&log);
    wait_http(&http, "/readyz", |b| b.contains("\"mqtt_subscribed\":true"));

    // Three glucose readings of the new meter, measured by the clock serve uses.
    let base = DateTime::<Utc>::from(SystemTime::now()) - chrono::TimeDelta::minutes(30);
    let readings: Vec<_> = (0..3)
        .map(|i| {
            json!({"device_id": "glu-new", "record_seq": i + 1, "type": "glucose",
                   "time": (base + chrono::TimeDelta::minutes(i)).to_rfc3339(),
                   "unit": "mmol/L", "values": {"value": 6.1, "context": "fasting"}})
        })
        .collect();
    let envelope = serde_json::to_vec(&json!({"schema": "vigil.readings.v1",
        "gateway_id": "gw-0042", "batch_seq": 1, "sent_at": base.to_rfc3339(),
        "readings": readings}))
    .unwrap();
    let (client, _) = vigil_testkit::gateway(broker.port, "reload-gateway");
    client
        .publish(
            "vigil/v1/gw/gw-0042/readings",
            QoS::AtLeastOnce,
            false,
            envelope,
        )
        .await
        .unwrap();
    wait_http(&http, "/api/v1/quarantine?reason=unassigned_device", |b| {
        b.matches("\"unassigned_device\"").count() == 3
    });

    // A broken registry is refused; the running one stays.
    std::fs::write(&registry, format!("{}{ASSIGNED}", example_registry())).unwrap();
    signal(serve.id(), "-HUP");
    let text = wait_log(&log, "the current registry stays");
    assert!(text.contains("glu-new"), "{text}");

    // The assignment, with its device: on SIGHUP the readings become the patient's.
    std::fs::write(
        &registry,
        format!("{}{NEW_DEVICE}{ASSIGNED}", example_registry()),
    )
    .unwrap();
    signal(serve.id(), "-HUP");
    wait_log(&log, "3 stored, 0 already stored, 0 still unassigned");
    let patient = http_get(&http, "/api/v1/patients/p-000123/readings?type=glucose");
    assert_eq!(
        patient
            .matches("\"device_id\":\"glu-new\",\"gateway_id\"")
            .count(),
        3,
        "{patient}"
    );
    let quarantine = http_get(&http, "/api/v1/quarantine?reason=unassigned_device");
    assert!(!quarantine.contains("glu-new"), "{quarantine}");

    signal(serve.id(), "-TERM");
    assert!(serve.wait().unwrap().success());
    let store = SqliteStore::open(&dir.path().join("data").join("clinical.db"))
        .await
        .unwrap();
    let versions = store.registry_versions().await.unwrap();
    assert_eq!(versions.len(), 2, "the broken one is not kept");
    assert!(
        versions[1]
            .2
            .contains("[[assignment]]\ndevice = \"glu-new\"")
    );
    let totals = store.totals().await.unwrap();
    assert_eq!((totals.stored, totals.quarantined), (3, 0));
}
