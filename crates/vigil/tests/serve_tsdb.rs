//! `vigil serve` with its telemetry sink, against a real Mosquitto and a real
//! VictoriaMetrics: the ingester is SIGKILLed while the sink is writing, restarted,
//! and the database ends with exactly the committed readings, none missing.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

mod common;
use common::{http_addr, spawn_serve};

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use rumqttc::QoS;
use vigil_model::clock::{Clock, SystemClock};
use vigil_registry::Registry;
use vigil_sim::{Fleet, FleetConfig};
use vigil_store::SqliteStore;
use vigil_testkit::tsdb::VictoriaMetrics;
use vigil_testkit::{Mosquitto, http_get_any};
use vigil_tsdb::{EcgExport, FieldValue};

/// The sink's part of `/readyz`.
fn sink_state(http: &str) -> serde_json::Value {
    let (_, text) = http_get_any(http, "/readyz");
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    serde_json::from_str::<serde_json::Value>(body).unwrap()["tsdb"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingester_killed_while_writing_to_the_database_leaves_no_point_missing() {
    let broker = Mosquitto::start();
    let vm = VictoriaMetrics::start();
    let dir = tempfile::tempdir().unwrap();
    let start = SystemClock.now() - TimeDelta::hours(36);
    let mut fleet = Fleet::new(FleetConfig {
        patients: 32,
        seed: 5,
        start,
        incident_every: Some(TimeDelta::minutes(20)),
        devices_per_patient: None,
    });
    let registry_text = fleet.registry_toml();
    std::fs::write(dir.path().join("registry.toml"), &registry_text).unwrap();
    std::fs::write(
        dir.path().join("vigil.toml"),
        format!(
            "data_dir = {:?}\nregistry = {:?}\n[broker]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"tsdb-crash\"\n\
             [http]\nlisten = \"127.0.0.1:0\"\nauth = false\n\
             [tsdb]\nurl = \"{}\"\nbucket = \"vitals\"\nbatch_size = 25\nlinger_ms = 5\nconcurrency = 2\n",
            dir.path().join("data"),
            dir.path().join("registry.toml"),
            broker.port,
            vm.url()
        ),
    )
    .unwrap();
    let db = dir.path().join("data").join("clinical.db");

    let mut serve = spawn_serve(dir.path(), "serve-1.log");
    let http = http_addr(&dir.path().join("serve-1.log"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http_get_any(&http, "/readyz")
        .1
        .contains("\"mqtt_subscribed\":true")
    {
        assert!(Instant::now() < deadline, "never subscribed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (client, acked) = vigil_testkit::gateway(broker.port, "tsdb-crash-fleet");
    let publishes = fleet.advance(SystemClock.now());
    let envelopes = publishes.len() as u64;
    for p in &publishes {
        client
            .publish(p.topic(), QoS::AtLeastOnce, false, p.payload())
            .await
            .unwrap();
    }
    // Kill it while the sink is part-way: some readings confirmed, more waiting.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = sink_state(&http);
        if s["cursor"].as_i64().unwrap() > 0 && s["lag_readings"].as_i64().unwrap() > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the sink never got part-way: {s}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    serve.kill().unwrap();
    serve.wait().unwrap();

    // Restarted, it takes the rest off the broker and the sink resumes from its cursor.
    let mut serve = spawn_serve(dir.path(), "serve-2.log");
    let http = http_addr(&dir.path().join("serve-2.log"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let store = SqliteStore::open(&db).await.unwrap();
        let totals = store.totals().await.unwrap();
        store.close().await;
        let s = sink_state(&http);
        if totals.envelopes == envelopes && s["lag_readings"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not caught up: {totals:?} of {envelopes} envelopes ({} acked by the broker), sink {s}",
            acked.load(std::sync::atomic::Ordering::Relaxed)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // The database holds exactly the committed readings.
    let store = SqliteStore::open(&db).await.unwrap();
    let registry = Registry::parse(&registry_text).unwrap();
    let want: BTreeSet<(String, String, i64, u64)> = store
        .export_after(0, u32::MAX)
        .await
        .unwrap()
        .iter()
        .flat_map(|r| {
            let inst = registry.patients[&r.patient_id].institution.to_string();
            vigil_tsdb::export::points(r, Some(&inst), EcgExport::Off)
        })
        .flat_map(|p| {
            let device = p
                .tags
                .iter()
                .find(|(k, _)| k == "device_id")
                .unwrap()
                .1
                .clone();
            p.fields.into_iter().filter_map(move |(f, v)| match v {
                FieldValue::Float(x) => Some((
                    format!("{}_{f}", p.measurement),
                    device.clone(),
                    p.time.timestamp_millis(),
                    x.to_bits(),
                )),
                _ => None,
            })
        })
        .collect();
    assert!(want.len() > 1000, "{}", want.len());
    let mut got = BTreeSet::new();
    for _ in 0..100 {
        got = vm
            .export("(bp|glucose|spo2|heart_rate|temperature|weight|ecg|ecg_waveform)_.+")
            .await
            .into_iter()
            .flat_map(|s| {
                let device = s.labels["device_id"].clone();
                let name = s.name.clone();
                s.timestamps
                    .into_iter()
                    .zip(s.values)
                    .map(move |(t, v)| (name.clone(), device.clone(), t, v.to_bits()))
            })
            .collect();
        if got == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
    serve.kill().unwrap();
    serve.wait().unwrap();
}
