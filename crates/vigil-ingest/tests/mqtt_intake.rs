//! End to end over a real Mosquitto the test starts on a free port: gateways publish
//! valid, invalid, duplicate, unassigned and unreadable payloads; every reading is
//! accounted for (stored + quarantined + duplicates = published), a redelivered
//! envelope is not counted twice, and every publish is acknowledged after its commit.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rumqttc::{AsyncClient, QoS};
use serde_json::{Value, json};
use vigil_ingest::intake::{Intake, IntakeConfig};
use vigil_model::clock::ManualClock;
use vigil_model::vocab::QuarantineReason;
use vigil_registry::Registry;
use vigil_store::{ClinicalStore, EnvelopeCommit, Outcome, SqliteStore, Totals};
use vigil_testkit::{Mosquitto, MosquittoOptions, eventually, example_registry};

fn registry() -> Registry {
    let extra = "\n[[device]]\nid = \"glu-unassigned\"\ntypes = [\"glucose\"]\ngateway = \"gw-0042\"\nregistered = \"2026-11-01T00:00:00+08:00\"\n";
    Registry::parse(&format!("{}{extra}", example_registry())).unwrap()
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T08:00:02+08:00")
        .unwrap()
        .with_timezone(&Utc)
}

fn envelope(batch_seq: u64, readings: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"schema": "vigil.readings.v1", "gateway_id": "gw-0042", "batch_seq": batch_seq,
        "sent_at": "2026-11-22T08:00:01+08:00", "readings": readings}),
    )
    .unwrap()
}

fn bp(record: u64, sys: u64) -> Value {
    json!({"device_id": "bpm-omron-3f9a21", "record_seq": record, "type": "bp",
           "time": format!("2026-11-22T07:{:02}:{:02}+08:00", record / 60 % 60, record % 60),
           "unit": "mm[Hg]", "values": {"systolic": sys, "diastolic": 80}})
}

/// Starts an intake over the test registry and waits until the broker confirmed its
/// subscription (publishing before that would lose messages at the broker).
async fn subscribed<S: ClinicalStore>(
    config: IntakeConfig,
    store: S,
    clock: Arc<ManualClock>,
) -> (Intake, Arc<vigil_ingest::intake::IntakeStats>) {
    let intake = Intake::start(config, store, Arc::new(registry()), clock);
    let stats = intake.stats.clone();
    eventually(
        "the ingester's subscription",
        Duration::from_secs(10),
        || stats.subscriptions_acked.load(Ordering::Relaxed) >= 1,
    )
    .await;
    (intake, stats)
}

async fn publisher(port: u16) -> (AsyncClient, Arc<AtomicU64>) {
    vigil_testkit::gateway(port, "test-gateway")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_published_reading_is_stored_quarantined_or_counted_duplicate() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("clinical.db"))
        .await
        .unwrap();
    let mut config = IntakeConfig::new("127.0.0.1", broker.port);
    config.client_id = "ingester-under-test".into();
    let (intake, stats) =
        subscribed(config, store.clone(), Arc::new(ManualClock::new(now()))).await;

    let (client, broker_acks) = publisher(broker.port).await;
    let topic = "vigil/v1/gw/gw-0042/readings";
    let mut publishes = 0u64;
    let mut readings = 0u64;
    // 50 envelopes of 4 readings: 2 valid, 1 out of range, 1 from an unassigned device.
    for n in 0..50u64 {
        let body = envelope(
            n,
            vec![
                bp(3 * n, 120 + n % 40),
                bp(3 * n + 1, 400),
                bp(3 * n + 2, 130),
                json!({"device_id": "glu-unassigned", "type": "glucose", "time": "2026-11-22T07:00:00+08:00",
                       "unit": "mmol/L", "values": {"value": 5.0 + n as f64 / 10.0}}),
            ],
        );
        client
            .publish(topic, QoS::AtLeastOnce, false, body)
            .await
            .unwrap();
        publishes += 1;
        readings += 4;
    }
    // A meter re-read: 10 readings already stored, in a new envelope.
    client
        .publish(
            topic,
            QoS::AtLeastOnce,
            false,
            envelope(50, (0..10).map(|i| bp(3 * i, 120 + i % 40)).collect()),
        )
        .await
        .unwrap();
    publishes += 1;
    readings += 10;
    // The gateway republishes envelope 7 (no PUBACK reached it): not counted again.
    client
        .publish(
            topic,
            QoS::AtLeastOnce,
            false,
            envelope(7, vec![bp(21, 127), bp(22, 400), bp(23, 130)]),
        )
        .await
        .unwrap();
    publishes += 1;
    // A payload that is not an envelope at all.
    client
        .publish(topic, QoS::AtLeastOnce, false, b"{oops".to_vec())
        .await
        .unwrap();
    publishes += 1;

    eventually("the broker's PUBACKs", Duration::from_secs(30), || {
        broker_acks.load(Ordering::Relaxed) == publishes
    })
    .await;
    eventually("the ingester's acks", Duration::from_secs(30), || {
        stats.publishes_acked.load(Ordering::Relaxed) == publishes
    })
    .await;

    let totals = store.totals().await.unwrap();
    assert_eq!(
        totals.stored + totals.quarantined + totals.duplicates,
        readings,
        "{totals:?}"
    );
    assert_eq!(
        totals,
        Totals {
            envelopes: 51,
            stored: 100,
            quarantined: 100,
            duplicates: 10
        }
    );
    assert_eq!(store.rejected_payloads().await.unwrap(), 1);
    assert_eq!(
        store
            .quarantine(Some(QuarantineReason::OutOfRange), None, 1000)
            .await
            .unwrap()
            .len(),
        50
    );
    assert_eq!(
        store
            .quarantine(Some(QuarantineReason::UnassignedDevice), None, 1000)
            .await
            .unwrap()
            .len(),
        50
    );
    assert_eq!(stats.readings_duplicate.load(Ordering::Relaxed), 10);

    intake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_sent_while_the_ingester_is_down_are_delivered_by_its_persistent_session() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("clinical.db"))
        .await
        .unwrap();
    let config = || {
        let mut c = IntakeConfig::new("127.0.0.1", broker.port);
        c.client_id = "ingester-persistent".into();
        c
    };
    let clock = Arc::new(ManualClock::new(now()));
    // First run: subscribe (creating the persistent session), then stop.
    let (intake, _) = subscribed(config(), store.clone(), clock.clone()).await;
    intake.shutdown().await;

    // While it is down, a gateway publishes; the broker queues for the session.
    let (client, broker_acks) = publisher(broker.port).await;
    vigil_testkit::publish_all(
        &client,
        "gw-0042",
        (0..20u64).map(|n| envelope(n, vec![bp(n, 125)])),
    )
    .await;
    eventually("the broker's PUBACKs", Duration::from_secs(30), || {
        broker_acks.load(Ordering::Relaxed) == 20
    })
    .await;

    // Second run with the same client id: everything arrives.
    let intake = Intake::start(config(), store.clone(), Arc::new(registry()), clock);
    let stats = intake.stats.clone();
    eventually("the queued publishes", Duration::from_secs(30), || {
        stats.publishes_acked.load(Ordering::Relaxed) == 20
    })
    .await;
    assert_eq!(store.totals().await.unwrap().stored, 20);
    intake.shutdown().await;
}

/// A store that takes `delay` for every commit: a disk that cannot keep up.
#[derive(Clone)]
struct SlowStore {
    inner: SqliteStore,
    delay: Duration,
}

impl ClinicalStore for SlowStore {
    async fn commit(
        &self,
        envelopes: &[EnvelopeCommit],
    ) -> Result<Vec<Outcome>, vigil_store::Error> {
        tokio::time::sleep(self.delay).await;
        self.inner.commit(envelopes).await
    }

    async fn reference_weight(
        &self,
        patient: &vigil_model::PatientId,
        before: DateTime<Utc>,
    ) -> Result<Option<(DateTime<Utc>, f64)>, vigil_store::Error> {
        self.inner.reference_weight(patient, before).await
    }

    async fn reject_payload(
        &self,
        gateway: &vigil_model::GatewayId,
        received: DateTime<Utc>,
        payload: &[u8],
        message: &str,
    ) -> Result<(), vigil_store::Error> {
        self.inner
            .reject_payload(gateway, received, payload, message)
            .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_store_delays_acknowledgements_holds_no_more_than_the_window_and_loses_nothing() {
    const WINDOW: usize = 8;
    const BROKER_WINDOW: u32 = 20;
    let broker = Mosquitto::start_with(MosquittoOptions {
        max_inflight: BROKER_WINDOW,
        ..MosquittoOptions::default()
    });
    let inner = SqliteStore::in_memory().await.unwrap();
    let store = SlowStore {
        inner: inner.clone(),
        delay: Duration::from_millis(20),
    };
    let mut config = IntakeConfig::new("127.0.0.1", broker.port);
    config.client_id = "ingester-slow".into();
    config.max_batch = 4;
    config.max_pending = WINDOW;
    let (intake, stats) = subscribed(config, store, Arc::new(ManualClock::new(now()))).await;

    const N: u64 = 400;
    let (client, broker_acks) = publisher(broker.port).await;
    vigil_testkit::publish_all(
        &client,
        "gw-0042",
        (0..N).map(|n| envelope(n, vec![bp(n, 125)])),
    )
    .await;
    eventually("the broker's PUBACKs", Duration::from_secs(30), || {
        broker_acks.load(Ordering::Relaxed) == N
    })
    .await;
    // Everything is accepted by the broker long before the slow store is through.
    let acked_then = stats.publishes_acked.load(Ordering::Relaxed);
    assert!(
        acked_then < N / 2,
        "the store was not slow enough to test anything ({acked_then} acked)"
    );

    let waited = std::time::Instant::now();
    while stats.publishes_acked.load(Ordering::Relaxed) < N {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "stalled: acked {}, pending {}, commits {}, connection errors {}",
            stats.publishes_acked.load(Ordering::Relaxed),
            stats.pending.load(Ordering::Relaxed),
            stats.commits.load(Ordering::Relaxed),
            stats.connection_errors.load(Ordering::Relaxed),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // What the ingester held never passed its own window, although the broker had
    // accepted the whole stream: the backlog waited at the broker.
    let max = stats.pending_max.load(Ordering::Relaxed);
    eprintln!(
        "held at most {max} publishes (own window {WINDOW}, broker window {BROKER_WINDOW}) of {N}"
    );
    assert!(
        max <= WINDOW as u64,
        "held {max} publishes, window {WINDOW}"
    );
    assert_eq!(inner.totals().await.unwrap().stored, N);
    intake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_nothing() {
    let mut broker = Mosquitto::start_with(MosquittoOptions {
        persistence: true,
        ..MosquittoOptions::default()
    });
    let store = SqliteStore::in_memory().await.unwrap();
    let mut config = IntakeConfig::new("127.0.0.1", broker.port);
    config.client_id = "ingester-restart".into();
    let (intake, stats) =
        subscribed(config, store.clone(), Arc::new(ManualClock::new(now()))).await;

    const N: u64 = 300;
    let (client, broker_acks) = publisher(broker.port).await;
    let publishing = tokio::spawn(async move {
        for n in 0..N {
            client
                .publish(
                    "vigil/v1/gw/gw-0042/readings",
                    QoS::AtLeastOnce,
                    false,
                    envelope(n, vec![bp(n, 125)]),
                )
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });
    eventually("part of the stream", Duration::from_secs(30), || {
        stats.publishes_acked.load(Ordering::Relaxed) >= N / 3
    })
    .await;
    broker.stop();
    let stopped_at = stats.publishes_acked.load(Ordering::Relaxed);
    broker.restart();
    publishing.await.unwrap();
    let waited = std::time::Instant::now();
    while stats.readings_stored.load(Ordering::Relaxed) < N {
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "after the restart: stored {}, acked {}, pending {}, connection errors {}, subscriptions {}, broker acks {}",
            stats.readings_stored.load(Ordering::Relaxed),
            stats.publishes_acked.load(Ordering::Relaxed),
            stats.pending.load(Ordering::Relaxed),
            stats.connection_errors.load(Ordering::Relaxed),
            stats.subscriptions_acked.load(Ordering::Relaxed),
            broker_acks.load(Ordering::Relaxed),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let totals = store.totals().await.unwrap();
    assert_eq!(
        (totals.stored, totals.duplicates, totals.quarantined),
        (N, 0, 0),
        "stopped after {stopped_at} acks"
    );
    assert!(
        stats.connection_errors.load(Ordering::Relaxed) >= 1,
        "the ingester never saw the broker go"
    );
    intake.shutdown().await;
}

fn tls_config(port: u16, ca: &std::path::Path) -> IntakeConfig {
    let mut config = IntakeConfig::new("127.0.0.1", port);
    config.tls = Some(vigil_ingest::intake::Tls {
        ca_pem: std::fs::read(ca).unwrap(),
        client_auth: None,
    });
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_with_a_client_certificate_readings_are_stored_and_a_foreign_authority_is_refused()
{
    let broker = Mosquitto::start_with(MosquittoOptions {
        tls: Some(true),
        ..MosquittoOptions::default()
    });
    let tls = broker.tls.clone().unwrap();

    // A broker certificate from another authority: no connection, nothing taken.
    let store = SqliteStore::in_memory().await.unwrap();
    let mut config = tls_config(tls.port, &tls.other_ca);
    config.client_id = "ingester-wrong-ca".into();
    let wrong = Intake::start(
        config,
        store,
        Arc::new(registry()),
        Arc::new(ManualClock::new(now())),
    );
    let stats = wrong.stats.clone();
    eventually("refused connections", Duration::from_secs(10), || {
        stats.connection_errors.load(Ordering::Relaxed) >= 1
    })
    .await;
    assert_eq!(stats.subscriptions_acked.load(Ordering::Relaxed), 0);
    wrong.shutdown().await;

    // The right authority and a client certificate (the broker requires one).
    let store = SqliteStore::in_memory().await.unwrap();
    let mut config = tls_config(tls.port, &tls.ca);
    config.client_id = "ingester-tls".into();
    if let Some(t) = config.tls.as_mut() {
        t.client_auth = Some((
            std::fs::read(&tls.client_cert).unwrap(),
            std::fs::read(&tls.client_key).unwrap(),
        ));
    }
    let (intake, stats) =
        subscribed(config, store.clone(), Arc::new(ManualClock::new(now()))).await;
    let (client, _) = publisher(broker.port).await;
    vigil_testkit::publish_all(
        &client,
        "gw-0042",
        (0..20).map(|n| envelope(n, vec![bp(n, 125)])),
    )
    .await;
    eventually("20 readings over TLS", Duration::from_secs(20), || {
        stats.readings_stored.load(Ordering::Relaxed) == 20
    })
    .await;
    assert_eq!(store.totals().await.unwrap().stored, 20);
    intake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_of_megabytes_is_taken_like_any_other() {
    // Five minutes of 500 Hz ECG is about 150 000 samples: far above the MQTT client's
    // default packet limit of 10 KiB, which would redeliver it for ever.
    let broker = Mosquitto::start();
    let store = SqliteStore::in_memory().await.unwrap();
    let mut config = IntakeConfig::new("127.0.0.1", broker.port);
    config.client_id = "ingester-large".into();
    let (intake, stats) =
        subscribed(config, store.clone(), Arc::new(ManualClock::new(now()))).await;
    let samples: Vec<i32> = (0..150_000).map(|i| (i % 1000) - 500).collect();
    let strip = json!({"device_id": "bpm-omron-3f9a21", "type": "ecg_waveform",
        "time": "2026-11-22T07:50:00+08:00", "unit": "uV",
        "values": {"lead": "II", "sample_rate_hz": 500, "samples_uv": samples}});
    let body = envelope(1, vec![strip, bp(1, 125)]);
    assert!(body.len() > 500_000, "{}", body.len());
    let (client, _) = publisher(broker.port).await;
    vigil_testkit::publish_all(&client, "gw-0042", [body]).await;
    eventually("the large envelope", Duration::from_secs(20), || {
        stats.publishes_acked.load(Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(stats.connection_errors.load(Ordering::Relaxed), 0);
    let totals = store.totals().await.unwrap();
    assert_eq!(totals.stored + totals.quarantined, 2, "{totals:?}");
    intake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos_0_publishes_that_fill_the_window_do_not_stall_the_intake() {
    // QoS 0 publishes need no acknowledgement; the intake must still notice the room
    // their commit makes in its window.
    const WINDOW: usize = 4;
    let broker = Mosquitto::start();
    let inner = SqliteStore::in_memory().await.unwrap();
    let store = SlowStore {
        inner: inner.clone(),
        delay: Duration::from_millis(5),
    };
    let mut config = IntakeConfig::new("127.0.0.1", broker.port);
    config.client_id = "ingester-qos0".into();
    config.max_batch = 2;
    config.max_pending = WINDOW;
    let (intake, stats) = subscribed(config, store, Arc::new(ManualClock::new(now()))).await;
    let (client, _) = publisher(broker.port).await;
    const N: u64 = 60;
    for n in 0..N {
        client
            .publish(
                "vigil/v1/gw/gw-0042/readings",
                QoS::AtMostOnce,
                false,
                envelope(n, vec![bp(n, 125)]),
            )
            .await
            .unwrap();
    }
    eventually(
        "every QoS 0 publish committed",
        Duration::from_secs(30),
        || {
            stats.commits.load(Ordering::Relaxed) > 0
                && stats.readings_stored.load(Ordering::Relaxed) == N
        },
    )
    .await;
    assert!(stats.pending_max.load(Ordering::Relaxed) <= WINDOW as u64);
    assert_eq!(inner.totals().await.unwrap().stored, N);
    intake.shutdown().await;
}
