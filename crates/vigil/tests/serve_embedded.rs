//! `vigil serve` with its embedded broker: gateways publish to it, readings are stored
//! and acknowledged, nothing else installed.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use chrono::{DateTime, Utc};
use serde_json::json;
use vigil_store::SqliteStore;
use vigil_testkit::example_registry;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_publish_to_the_embedded_broker_and_every_reading_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("registry.toml"), example_registry()).unwrap();
    std::fs::write(
        dir.path().join("vigil.toml"),
        format!(
            "data_dir = {:?}\nregistry = {:?}\n[broker]\nembedded = true\nembedded_listen = \"127.0.0.1:0\"\n[http]\nlisten = \"127.0.0.1:0\"\nauth = false\n",
            dir.path().join("data"),
            dir.path().join("registry.toml"),
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

    // The broker's address is printed first thing.
    let deadline = Instant::now() + Duration::from_secs(20);
    let addr = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(rest) = text.split("embedded broker on mqtt://").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no broker address in: {text}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();

    let (client, acked) = vigil_testkit::gateway(port, "embedded-test-gateway");
    let base: DateTime<Utc> =
        DateTime::<Utc>::from(SystemTime::now()) - chrono::TimeDelta::hours(1);
    let envelope = |n: u64| {
        serde_json::to_vec(
            &json!({"schema": "vigil.readings.v1", "gateway_id": "gw-0042", "batch_seq": n,
            "sent_at": base.to_rfc3339(), "readings": [
                {"device_id": "bpm-omron-3f9a21", "record_seq": n, "type": "bp",
                 "time": (base + chrono::TimeDelta::seconds(n as i64)).to_rfc3339(),
                 "unit": "mm[Hg]", "values": {"systolic": 130, "diastolic": 85}}]}),
        )
        .unwrap()
    };
    // Republish envelope 0 (same batch_seq, same readings) until the ingester has
    // subscribed and committed it; then the rest.
    let db = dir.path().join("data").join("clinical.db");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        vigil_testkit::publish_all(&client, "gw-0042", [envelope(0)]).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let store = SqliteStore::open(&db).await.unwrap();
        let done = store.totals().await.unwrap().envelopes == 1;
        store.close().await;
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the ingester never committed through the embedded broker"
        );
    }
    vigil_testkit::publish_all(&client, "gw-0042", (1..100).map(envelope)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let store = SqliteStore::open(&db).await.unwrap();
        let t = store.totals().await.unwrap();
        store.close().await;
        if t.stored == 100 {
            assert_eq!((t.envelopes, t.duplicates, t.quarantined), (100, 0, 0));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "stored {t:?}; broker acks {acked:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = Command::new("kill")
        .args(["-TERM", &serve.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(serve.wait().unwrap().success());
}
