//! Webhook delivery against a real HTTP receiver the test runs on a free port (and,
//! for the fallback, a real Mosquitto):
//!
//! - signed posts reach the receiver, whose signature check is computed independently
//!   of Vigil's code; a restart of the deliverer in the middle of the work loses
//!   nothing, and what arrives twice is the same delivery (same `X-Vigil-Delivery`,
//!   same `alert_id`), counted and reported; nothing is recorded delivered that the
//!   receiver did not take;
//! - a receiver that answers 500, then stops answering, is retried with backoff; the
//!   delivery is then given up, falls back to the doctor's MQTT topic, and raises an
//!   operational alert; nothing is recorded delivered on the webhook.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use vigil_ingest::deliver::{Deliverer, DeliveryConfig};
use vigil_ingest::webhook::{WebhookConfig, WebhookDeliverer, WebhookSecrets, derive_key};
use vigil_model::clock::SystemClock;
use vigil_registry::Registry;
use vigil_store::{AlertEventRecord, SqliteStore};
use vigil_testkit::{Mosquitto, Reply, WebhookReceiver, eventually, example_registry, subscriber};

const SECRET: &str = "test-webhook-secret";

fn now() -> DateTime<Utc> {
    use vigil_model::clock::Clock;
    SystemClock.now()
}

/// `n` alerts of p-000123 (each its own episode), of `severity`.
fn events(n: usize, severity: &str) -> Vec<AlertEventRecord> {
    let t0 = now() - TimeDelta::minutes(5);
    (0..n)
        .map(|i| {
            let at = t0 + TimeDelta::milliseconds(i as i64);
            AlertEventRecord {
                alert_id: format!("{:032x}", 0x00b0_0c00_u64 + i as u64),
                patient_id: "p-000123".parse().unwrap(),
                family: "bp_crisis".into(),
                opened_at: at,
                ordinal: 0,
                display: format!("{}/112 mmHg", 181 + i % 60),
                evidence: json!([]),
                change: "opened".into(),
                rule: "bp_crisis".into(),
                severity: severity.into(),
                level: 1,
                at,
                deliver_at: None,
            }
        })
        .collect()
}

/// The example registry with Dr. Wang's (d-0001) channels replaced.
fn registry(channels: &str) -> Arc<Registry> {
    let text = example_registry().replace(
        r#"channels = { mqtt = true, sse = true, webhook = "https://hooks.example.invalid/d-0001" }"#,
        &format!("channels = {channels}"),
    );
    assert!(text.contains(channels));
    Arc::new(Registry::parse(&text).unwrap())
}

fn config() -> WebhookConfig {
    WebhookConfig {
        secrets: WebhookSecrets {
            default: Some(SECRET.into()),
            per_doctor: HashMap::new(),
        },
        ..WebhookConfig::default()
    }
}

async fn store_with(dir: &std::path::Path, events: &[AlertEventRecord]) -> (SqliteStore, Vec<i64>) {
    let store = SqliteStore::open(&dir.join("clinical.db")).await.unwrap();
    store
        .keep_alert_events(events, None, None, now())
        .await
        .unwrap();
    let ids = store
        .alert_events_after(0, events.len() as u32 + 1)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect::<Vec<_>>();
    assert_eq!(ids.len(), events.len());
    (store, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_webhooks_reach_the_receiver_across_a_restart_deduplicated_by_delivery() {
    const N: usize = 300;
    let receiver = WebhookReceiver::start(|_| Reply::Ok).await;
    let registry = registry(&format!(
        r#"{{ mqtt = false, sse = false, webhook = "{}" }}"#,
        receiver.url
    ));
    let dir = tempfile::tempdir().unwrap();
    let (store, ids) = store_with(dir.path(), &events(N, "CRITICAL")).await;
    let start = |store: SqliteStore| {
        let r = registry.clone();
        WebhookDeliverer::start(
            WebhookConfig {
                concurrency: 8,
                ..config()
            },
            store,
            Arc::new(move || r.clone()),
            Arc::new(SystemClock),
        )
        .unwrap()
    };
    // Stopped once a third has arrived (attempts are in flight then), and restarted
    // on the store reopened, as a restarted process would.
    let first = start(store.clone());
    eventually("a third of the posts", Duration::from_secs(60), || {
        receiver.received.lock().unwrap().len() >= N / 3
    })
    .await;
    first.shutdown().await;
    store.close().await;
    let store = SqliteStore::open(&dir.path().join("clinical.db"))
        .await
        .unwrap();
    let second = start(store.clone());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut all = true;
        for id in &ids {
            let rows = store.deliveries(*id).await.unwrap();
            all &= rows.iter().any(|r| r.1 == "webhook" && r.2 == "delivered");
        }
        if all {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every webhook delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    second.shutdown().await;

    // The receiver's side: every post signed; deduplicated by X-Vigil-Delivery.
    let hooks = receiver.hooks();
    let key = derive_key(SECRET, "d-0001");
    let mut by_delivery: HashMap<String, (u32, String)> = HashMap::new();
    for h in &hooks {
        // The receiver knows its own key only (derived from the deployment's secret).
        assert!(
            h.signature_valid(&key),
            "a post with a bad signature: {h:?}"
        );
        assert!(!h.signature_valid(&derive_key(SECRET, "d-0100")));
        let alert = vigil_wire::alert::decode_alert(&h.body).unwrap();
        assert_eq!(h.headers["x-vigil-alert-id"], alert.alert_id.to_string());
        assert_eq!(h.headers["x-vigil-event"], "vigil.alert.v1");
        assert_eq!(h.headers["content-type"], "application/json");
        let slot = by_delivery
            .entry(h.headers["x-vigil-delivery"].clone())
            .or_insert((0, alert.alert_id.to_string()));
        slot.0 += 1;
        assert_eq!(
            slot.1,
            alert.alert_id.to_string(),
            "one delivery id, two alerts"
        );
    }
    let duplicates: u32 = by_delivery.values().map(|(n, _)| n - 1).sum();
    eprintln!(
        "{} posts for {} deliveries: {duplicates} duplicates across the restart",
        hooks.len(),
        by_delivery.len()
    );
    assert_eq!(by_delivery.len(), N);
    // Only what was in flight at the stop can come twice.
    assert!(duplicates <= 8, "{duplicates} duplicates");
    // Every delivery recorded was received.
    for id in &ids {
        assert!(by_delivery.contains_key(&format!("{id}-d-0001")));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_webhook_is_retried_then_falls_back_to_mqtt_with_an_operational_alert() {
    // Two 500s, then no answer at all.
    let receiver = WebhookReceiver::start(|n| {
        if n < 2 {
            Reply::Status(500)
        } else {
            Reply::Hang(Duration::from_secs(30))
        }
    })
    .await;
    // Dr. Wang takes alerts by webhook only: a HIGH alert reaches nobody else.
    let registry = registry(&format!(
        r#"{{ mqtt = false, sse = false, webhook = "{}" }}"#,
        receiver.url
    ));
    let broker = Mosquitto::start();
    let inbox: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let i = inbox.clone();
    let _doctor = subscriber(
        broker.port,
        "doctor-d-0001",
        "vigil/v1/doctor/d-0001/alerts",
        false,
        move |p| i.lock().unwrap().push(p.payload.to_vec()),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (store, ids) = store_with(dir.path(), &events(1, "HIGH")).await;
    let r = registry.clone();
    let current: vigil_ingest::rules::CurrentRegistry = Arc::new(move || r.clone());
    let mqtt = Deliverer::start(
        DeliveryConfig::new("127.0.0.1", broker.port, "vigil-delivery"),
        store.clone(),
        current.clone(),
        Arc::new(SystemClock),
        None,
    );
    let webhooks = WebhookDeliverer::start(
        WebhookConfig {
            attempts: 4,
            backoff: Duration::from_millis(100),
            timeout: Duration::from_millis(500),
            ..config()
        },
        store.clone(),
        current,
        Arc::new(SystemClock),
    )
    .unwrap();
    eventually(
        "the fallback on the doctor's MQTT topic",
        Duration::from_secs(60),
        || !inbox.lock().unwrap().is_empty(),
    )
    .await;
    let alert = vigil_wire::alert::decode_alert(&inbox.lock().unwrap()[0]).unwrap();
    assert_eq!(
        alert.alert_id.to_string(),
        format!("{:032x}", 0x00b0_0c00_u64)
    );

    // Four attempts: 500, 500, timeout, timeout; backoff between them.
    let hooks = receiver.hooks();
    assert_eq!(
        hooks.iter().map(|h| h.reply).collect::<Vec<_>>(),
        [
            Reply::Status(500),
            Reply::Status(500),
            Reply::Hang(Duration::from_secs(30)),
            Reply::Hang(Duration::from_secs(30))
        ]
    );
    assert!(
        hooks
            .iter()
            .all(|h| h.signature_valid(&derive_key(SECRET, "d-0001")))
    );
    assert!(
        hooks
            .iter()
            .all(|h| h.headers["x-vigil-delivery"] == format!("{}-d-0001", ids[0]))
    );
    let w = &webhooks.stats;
    assert_eq!(w.delivered.load(Ordering::Relaxed), 0);
    assert_eq!(w.retries.load(Ordering::Relaxed), 3);
    assert_eq!(w.failed.load(Ordering::Relaxed), 1);
    assert_eq!(w.fallbacks.load(Ordering::Relaxed), 1);

    // The state per channel: the webhook failed (with why), MQTT delivered.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !store
        .deliveries(ids[0])
        .await
        .unwrap()
        .iter()
        .any(|r| r.1 == "mqtt" && r.2 == "delivered")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no MQTT delivery recorded"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rows = store
        .alert_deliveries(alert.alert_id.as_ref())
        .await
        .unwrap();
    let states: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.doctor_id.as_str(),
                r.channel.as_str(),
                r.state.as_str(),
                r.attempts,
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("d-0001", "mqtt", "delivered", 0),
            ("d-0001", "webhook", "failed", 4)
        ]
    );
    let webhook_row = rows.iter().find(|r| r.channel == "webhook").unwrap();
    assert_eq!(webhook_row.last_error.as_deref(), Some("timed out"));
    assert_eq!(webhook_row.delivered_at, None);
    // The operational alert names the doctor and the event, not the patient.
    let ops = store.ops_alerts(10).await.unwrap();
    assert_eq!(ops.len(), 1, "{ops:?}");
    assert_eq!(ops[0].kind, "webhook_failed");
    assert_eq!(ops[0].subject, "d-0001");
    assert!(
        ops[0].detail.contains("after 4 attempts"),
        "{}",
        ops[0].detail
    );
    assert!(
        ops[0].detail.contains("falls back to MQTT"),
        "{}",
        ops[0].detail
    );
    assert!(!ops[0].detail.contains("p-000123"), "{}", ops[0].detail);
    webhooks.shutdown().await;
    mqtt.shutdown().await;
}
