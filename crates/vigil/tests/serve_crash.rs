//! `vigil serve` as a process against a real Mosquitto: killed with SIGKILL mid-stream
//! and restarted, it ends with every published reading stored exactly once; stopped
//! with SIGTERM, it shuts down in order.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

mod common;
use common::spawn_serve;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use rumqttc::QoS;
use serde_json::json;
use vigil_store::SqliteStore;
use vigil_testkit::{Mosquitto, example_registry, http_get};

const ENVELOPES: u64 = 400;
const PER_ENVELOPE: u64 = 5;

async fn totals(db: &Path) -> vigil_store::Totals {
    let store = SqliteStore::open(db).await.unwrap();
    let t = store.totals().await.unwrap();
    store.close().await;
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_ingester_restarts_without_losing_or_duplicating_a_reading() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("registry.toml"), example_registry()).unwrap();
    std::fs::write(
        dir.path().join("vigil.toml"),
        format!(
            "data_dir = {:?}\nregistry = {:?}\n[broker]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"crash-test\"\n[http]\nlisten = \"127.0.0.1:0\"\nauth = false\n[ingest]\nmax_batch = 16\n",
            dir.path().join("data"),
            dir.path().join("registry.toml"),
            broker.port
        ),
    )
    .unwrap();
    let db = dir.path().join("data").join("clinical.db");

    let mut serve = spawn_serve(dir.path(), "serve-1.log");
    // The ingester has subscribed once its persistent session exists; publishing
    // before that would lose messages at the broker, so wait for the store file and a
    // first probe envelope to be committed.
    let (client, _acked) = vigil_testkit::gateway(broker.port, "crash-test-gateway");

    // Readings measured in the last hour by the system clock `vigil serve` uses.
    let base: DateTime<Utc> =
        DateTime::<Utc>::from(SystemTime::now()) - chrono::TimeDelta::hours(1);
    let envelope = move |n: u64| {
        let readings: Vec<_> = (0..PER_ENVELOPE)
            .map(|i| {
                let seq = n * PER_ENVELOPE + i;
                let t = base + chrono::TimeDelta::milliseconds(seq as i64 * 100);
                json!({"device_id": "bpm-omron-3f9a21", "record_seq": seq, "type": "bp",
                       "time": t.to_rfc3339(), "unit": "mm[Hg]",
                       "values": {"systolic": 120 + seq % 50, "diastolic": 80}})
            })
            .collect();
        serde_json::to_vec(
            &json!({"schema": "vigil.readings.v1", "gateway_id": "gw-0042",
            "batch_seq": n, "sent_at": base.to_rfc3339(), "readings": readings}),
        )
        .unwrap()
    };
    let topic = "vigil/v1/gw/gw-0042/readings";
    // Probe until the ingester is subscribed: envelope 0 is republished (same
    // batch_seq, same readings, as the contract allows) until it is committed.
    let probe_deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        client
            .publish(topic, QoS::AtLeastOnce, false, envelope(0))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        if db.exists() && totals(&db).await.envelopes == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < probe_deadline,
            "vigil serve never committed the probe"
        );
    }

    // The stream: the rest of the envelopes, while the ingester is killed midway.
    let publisher = {
        let client = client.clone();
        tokio::spawn(async move {
            for n in 1..ENVELOPES {
                client
                    .publish(topic, QoS::AtLeastOnce, false, envelope(n))
                    .await
                    .unwrap();
                if n % 20 == 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    };
    // Kill once a quarter of the stream is committed.
    loop {
        let t = totals(&db).await;
        if t.envelopes >= ENVELOPES / 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    serve.kill().unwrap(); // SIGKILL: no shutdown, no flush
    serve.wait().unwrap();
    let at_kill = totals(&db).await;
    assert!(
        at_kill.envelopes < ENVELOPES,
        "killed too late to prove anything: {at_kill:?}"
    );

    let mut serve = spawn_serve(dir.path(), "serve-2.log");
    publisher.await.unwrap();
    let expected = ENVELOPES * PER_ENVELOPE;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let t = totals(&db).await;
        if t.stored == expected {
            assert_eq!(t.envelopes, ENVELOPES);
            assert_eq!(t.duplicates, 0, "{t:?}");
            assert_eq!(t.quarantined, 0, "{t:?}");
            break;
        }
        assert!(t.stored < expected, "stored more than published: {t:?}");
        assert!(
            std::time::Instant::now() < deadline,
            "not everything arrived: {t:?} (killed at {at_kill:?})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store = SqliteStore::open(&db).await.unwrap();
    let p = vigil_model::PatientId::parse("p-000123").unwrap();
    let stored = store
        .readings(&p, Some("bp"), None, None, 10_000)
        .await
        .unwrap();
    assert_eq!(stored.len() as u64, expected);
    store.close().await;

    // The same accounting through the HTTP API and metrics of the running process.
    let log = std::fs::read_to_string(dir.path().join("serve-2.log")).unwrap();
    let base_url = common::address_in(&log).unwrap();
    let metrics = http_get(&base_url, "/metrics");
    assert!(
        metrics
            .lines()
            .any(|l| l == format!("vigil_readings_stored_total{{type=\"bp\"}} {expected}")),
        "{metrics}"
    );
    let api = http_get(
        &base_url,
        "/api/v1/patients/p-000123/readings?type=bp&limit=10000",
    );
    let v: serde_json::Value = serde_json::from_str(api.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    assert_eq!(v["readings"].as_array().unwrap().len() as u64, expected);

    // SIGTERM: ordered shutdown, exit 0.
    let status = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = serve.wait().unwrap();
    assert!(exit.success(), "vigil serve exited with {exit:?}");
    let log = std::fs::read_to_string(dir.path().join("serve-2.log")).unwrap();
    assert!(log.contains("vigil serve: stopped"), "{log}");
}
