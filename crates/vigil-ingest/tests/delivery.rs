//! Alert delivery across restarts, over a real Mosquitto the test starts on a free
//! port: the deliverer is stopped again and again in the middle of its work (right
//! after the doctor's client saw some of a batch, before the broker's PUBACKs were
//! recorded) and started anew on the same store. Every event reaches the doctor's
//! client at least once; whatever arrives twice is the very same message (same
//! `alert_id`, same bytes), counted and reported; every (event, doctor) is recorded
//! delivered exactly once, and nothing is recorded that the client did not receive.
//! And a broker outage mid-delivery (a persistent Mosquitto stopped and restarted)
//! delays delivery, fails nothing, and credits nothing the broker did not take.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use vigil_ingest::deliver::{Deliverer, DeliveryConfig};
use vigil_model::clock::ManualClock;
use vigil_registry::Registry;
use vigil_store::{AlertEventRecord, SqliteStore};
use vigil_testkit::{Mosquitto, eventually, example_registry, subscriber};

const EVENTS: usize = 1000;

fn t0() -> DateTime<Utc> {
    "2026-11-22T02:00:00Z".parse().unwrap()
}

/// `EVENTS` CRITICAL alerts of p-000123, each its own episode (its own `alert_id`).
fn events() -> Vec<AlertEventRecord> {
    (0..EVENTS)
        .map(|n| {
            let at = t0() + TimeDelta::seconds(n as i64);
            AlertEventRecord {
                alert_id: format!("{:032x}", 0xa1e7_0000_u64 + n as u64),
                patient_id: "p-000123".parse().unwrap(),
                family: "bp_crisis".into(),
                opened_at: at,
                ordinal: 0,
                display: format!("{}/112 mmHg", 181 + n % 60),
                evidence: json!([]),
                change: "opened".into(),
                rule: "bp_crisis".into(),
                severity: "CRITICAL".into(),
                level: 1,
                at,
                deliver_at: None,
            }
        })
        .collect()
}

/// What the doctor's client received: alert_id → (count, payload).
type Inbox = Arc<Mutex<HashMap<String, (u32, Vec<u8>)>>>;

const DOCTOR_TOPIC: &str = "vigil/v1/doctor/d-0001/alerts";

/// A store at `path` holding [`events`], and their row ids.
async fn store_with_events(path: &std::path::Path) -> (SqliteStore, Vec<i64>) {
    let store = SqliteStore::open(path).await.unwrap();
    store
        .keep_alert_events(&events(), None, None, t0())
        .await
        .unwrap();
    let ids: Vec<i64> = store
        .alert_events_after(0, EVENTS as u32 + 1)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids.len(), EVENTS);
    (store, ids)
}

fn config(port: u16, client_id: &str) -> DeliveryConfig {
    DeliveryConfig::new("127.0.0.1", port, client_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_delivery_neither_loses_nor_duplicates_beyond_the_alert_id() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clinical.db");
    let (store, ids) = store_with_events(&path).await;
    let last = *ids.last().unwrap();

    // Dr. Wang (d-0001), p-000123's responsible doctor, is subscribed throughout.
    let inbox: Inbox = Arc::default();
    let received = Arc::new(AtomicU64::new(0));
    let (each, mut arrivals) = tokio::sync::watch::channel(0u64);
    let (i, r) = (inbox.clone(), received.clone());
    let _doctor = subscriber(
        broker.port,
        "doctor-d-0001",
        DOCTOR_TOPIC,
        false,
        move |p| {
            let alert = vigil_wire::alert::decode_alert(&p.payload).unwrap();
            let mut inbox = i.lock().unwrap();
            let slot = inbox
                .entry(alert.alert_id.to_string())
                .or_insert((0, p.payload.to_vec()));
            slot.0 += 1;
            assert_eq!(slot.1, p.payload.to_vec(), "a duplicate that differs");
            let n = r.fetch_add(1, Ordering::AcqRel) + 1;
            let _ = each.send(n);
        },
    )
    .await;

    let registry = Arc::new(Registry::parse(&example_registry()).unwrap());
    let clock = Arc::new(ManualClock::new(t0() + TimeDelta::minutes(1)));
    let start = |store: SqliteStore| {
        let r = registry.clone();
        Deliverer::start(
            config(broker.port, "vigil-delivery"),
            store,
            Arc::new(move || r.clone()),
            clock.clone(),
            None,
        )
    };

    // Four times: start, stop the moment 37 more messages have arrived (the batch is
    // 200, so this is in the middle of one), and reopen the store as a restarted
    // process would.
    let mut store = store;
    let mut stops_mid_batch = 0;
    for _ in 0..4 {
        let from = received.load(Ordering::Acquire);
        let deliverer = start(store.clone());
        let stats = deliverer.stats.clone();
        // (On a loaded machine the previous deliverer may have finished everything
        // before its stop took effect: then there is nothing left to wait for.)
        let finished = async {
            while stats.cursor.load(Ordering::Acquire) < last {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::select! {
            r = tokio::time::timeout(
                Duration::from_secs(30),
                arrivals.wait_for(|n| *n >= from + 37),
            ) => {
                r.expect("no progress within 30 s").unwrap();
            }
            _ = finished => {}
        }
        deliverer.shutdown().await;
        if stats.cursor.load(Ordering::Acquire) < last {
            stops_mid_batch += 1;
        }
        // Nothing is recorded delivered that the doctor's client has not received.
        let mut recorded = Vec::new();
        for (id, e) in ids.iter().zip(events()) {
            if !store.deliveries(*id).await.unwrap().is_empty() {
                recorded.push(e.alert_id);
            }
        }
        eventually(
            "recorded deliveries at the client",
            Duration::from_secs(10),
            || {
                let inbox = inbox.lock().unwrap();
                recorded.iter().all(|a| inbox.contains_key(a))
            },
        )
        .await;
        drop(store);
        store = SqliteStore::open(&path).await.unwrap();
    }

    // A last start runs to the end.
    let deliverer = start(store.clone());
    let stats = deliverer.stats.clone();
    eventually("every event delivered", Duration::from_secs(60), || {
        stats.cursor.load(Ordering::Acquire) == last
    })
    .await;
    deliverer.shutdown().await;

    // Every (event, doctor) recorded delivered exactly once...
    for id in &ids {
        let rows = store.deliveries(*id).await.unwrap();
        assert_eq!(rows.len(), 1, "event {id}: {rows:?}");
        assert_eq!(
            (rows[0].0.as_str(), rows[0].1.as_str(), rows[0].2.as_str()),
            ("d-0001", "mqtt", "delivered")
        );
    }
    // ... and received (the broker hands a QoS 1 message on before its PUBACK reaches
    // the deliverer, so a recorded delivery has arrived once the count settles).
    eventually(
        "every event at the doctor's client",
        Duration::from_secs(30),
        || inbox.lock().unwrap().len() == EVENTS,
    )
    .await;
    let inbox = inbox.lock().unwrap();
    for e in events() {
        assert!(
            inbox.contains_key(&e.alert_id),
            "{} never arrived",
            e.alert_id
        );
    }
    let duplicates: u32 = inbox.values().map(|(n, _)| n - 1).sum();
    println!(
        "{EVENTS} events, {} messages, {duplicates} duplicates (same alert_id, same bytes), \
         {stops_mid_batch} of 4 stops before the end",
        received.load(Ordering::Acquire)
    );
    assert_eq!(
        received.load(Ordering::Acquire),
        EVENTS as u64 + u64::from(duplicates)
    );
    assert!(stops_mid_batch >= 1, "no stop happened before the end");
}

/// The broker goes away in the middle of delivery and comes back: what was in flight
/// when the connection dropped is published again (never credited to another
/// message), the attempts made while it was away do not count, and every event ends
/// recorded delivered, none failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_mid_delivery_delays_it_and_fails_nothing() {
    // Persistent: the doctor's session (and what is queued for it) survives the stop.
    let mut broker = Mosquitto::start_with(vigil_testkit::MosquittoOptions {
        persistence: true,
        ..Default::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let (store, ids) = store_with_events(&dir.path().join("clinical.db")).await;
    let last = *ids.last().unwrap();
    // The doctor's client, with a persistent session: the ground truth of what the
    // broker accepted.
    let seen: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
    let v = seen.clone();
    let _doctor = subscriber(
        broker.port,
        "doctor-d-0001-outage",
        DOCTOR_TOPIC,
        true,
        move |p| {
            let alert = vigil_wire::alert::decode_alert(&p.payload).unwrap();
            v.lock().unwrap().insert(alert.alert_id.to_string());
        },
    )
    .await;
    let registry = Arc::new(Registry::parse(&example_registry()).unwrap());
    let deliverer = Deliverer::start(
        config(broker.port, "vigil-delivery-outage"),
        store.clone(),
        Arc::new(move || registry.clone()),
        Arc::new(ManualClock::new(t0() + TimeDelta::minutes(1))),
        None,
    );
    let stats = deliverer.stats.clone();
    eventually("the first deliveries", Duration::from_secs(30), || {
        stats.delivered.load(Ordering::Acquire) > 0
    })
    .await;
    broker.stop();
    // A whole wait for acknowledgements passes with the broker away.
    let retries = stats.retries.load(Ordering::Acquire);
    eventually("a retry during the outage", Duration::from_secs(30), || {
        stats.retries.load(Ordering::Acquire) > retries
    })
    .await;
    broker.restart();
    eventually("every event delivered", Duration::from_secs(60), || {
        stats.cursor.load(Ordering::Acquire) == last
    })
    .await;
    deliverer.shutdown().await;
    assert_eq!(stats.failed.load(Ordering::Acquire), 0);
    for id in &ids {
        let rows = store.deliveries(*id).await.unwrap();
        assert_eq!(rows.len(), 1, "event {id}: {rows:?}");
        assert_eq!(rows[0].2, "delivered", "event {id}: {rows:?}");
    }
    // Nothing recorded delivered that the broker did not take: the doctor has all.
    eventually(
        "every event at the doctor's client",
        Duration::from_secs(30),
        || seen.lock().unwrap().len() == EVENTS,
    )
    .await;
    println!(
        "{EVENTS} events delivered across a broker outage, {} retries, none failed",
        stats.retries.load(Ordering::Acquire)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_the_broker_never_acknowledges_goes_to_the_next_channel_with_an_operational_alert()
 {
    // A broker that takes publishes and never acknowledges one.
    let broker = vigil_testkit::SilentBroker::start().await;
    let store = SqliteStore::in_memory().await.unwrap();
    // One CRITICAL event at level 2: for the responsible doctor d-0001 (who has a
    // webhook) and the hub's on-call doctor d-0100 (who has none).
    let mut event = events().remove(0);
    event.change = "escalated".into();
    event.level = 2;
    store
        .keep_alert_events(&[event], None, None, t0())
        .await
        .unwrap();
    let id = store.alert_events_after(0, 1).await.unwrap()[0].0;
    let registry = Arc::new(Registry::parse(&example_registry()).unwrap());
    let deliverer = Deliverer::start(
        DeliveryConfig {
            ack_timeout: Duration::from_millis(200),
            max_attempts: 2,
            ..config(broker.port, "vigil-delivery-unacknowledged")
        },
        store.clone(),
        Arc::new(move || registry.clone()),
        Arc::new(ManualClock::new(t0() + TimeDelta::minutes(1))),
        None,
    );
    let stats = deliverer.stats.clone();
    // d-0001 and d-0100 given up, then d-0100's fallback, the duty desk, given up too.
    eventually("three deliveries given up", Duration::from_secs(30), || {
        stats.failed.load(Ordering::Acquire) == 3
    })
    .await;
    deliverer.shutdown().await;
    assert_eq!(stats.delivered.load(Ordering::Acquire), 0);
    for doctor in ["d-0001", "d-0100", "d-duty-01"] {
        let topic = format!("vigil/v1/doctor/{doctor}/alerts");
        assert!(
            broker.count(&topic) >= 2,
            "{doctor}: {:?}",
            broker.publishes
        );
    }
    // Nothing recorded delivered; d-0001's next channel, the webhook, is queued for
    // the webhook deliverer.
    let rows: Vec<(String, String, String)> = store
        .deliveries(id)
        .await
        .unwrap()
        .into_iter()
        .map(|(d, c, s, at)| {
            assert_eq!(at, None, "{d} {c}");
            (d, c, s)
        })
        .collect();
    let row = |d: &str, c: &str, s: &str| (d.to_owned(), c.to_owned(), s.to_owned());
    assert_eq!(
        rows,
        [
            row("d-0001", "mqtt", "failed"),
            row("d-0001", "webhook", "pending"),
            row("d-0100", "mqtt", "failed"),
            row("d-duty-01", "mqtt", "failed"),
        ]
    );
    // Each given-up delivery is an operational alert naming the doctor, not the
    // patient, and saying where the event went instead.
    let mut ops = store.ops_alerts(10).await.unwrap();
    ops.reverse();
    let ops: Vec<(String, String, String)> = ops
        .into_iter()
        .map(|o| (o.kind, o.subject, o.detail))
        .collect();
    assert_eq!(ops.len(), 3, "{ops:#?}");
    for (kind, subject, detail) in &ops {
        assert_eq!(kind, "mqtt_failed");
        assert!(!detail.contains("p-000123"), "{detail}");
        let next = match subject.as_str() {
            "d-0001" => "falls back to a webhook for d-0001",
            "d-0100" => "falls back to MQTT for d-duty-01",
            "d-duty-01" => "no fallback",
            other => panic!("{other}: {detail}"),
        };
        assert!(
            detail.contains(next) && detail.contains("after 2 attempts"),
            "{detail}"
        );
    }
}

/// A deliverer on `store` publishing to a broker that never acknowledges: a short
/// wait for PUBACKs and two attempts.
fn impatient(port: u16, store: &SqliteStore) -> Deliverer {
    let registry = Arc::new(Registry::parse(&example_registry()).unwrap());
    Deliverer::start(
        DeliveryConfig {
            ack_timeout: Duration::from_millis(200),
            max_attempts: 2,
            ..config(port, "vigil-delivery-impatient")
        },
        store.clone(),
        Arc::new(move || registry.clone()),
        Arc::new(ManualClock::new(t0() + TimeDelta::minutes(1))),
        None,
    )
}

/// (subject, detail) of the operational alerts, oldest first.
async fn ops(store: &SqliteStore) -> Vec<(String, String)> {
    let mut ops: Vec<(String, String)> = store
        .ops_alerts(1000)
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.subject, o.detail))
        .collect();
    ops.reverse();
    ops
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_webhook_failed_too_the_event_goes_on_to_the_duty_desk() {
    let broker = vigil_testkit::SilentBroker::start().await;
    let store = SqliteStore::in_memory().await.unwrap();
    let event = events().remove(0);
    store
        .keep_alert_events(&[event], None, None, t0())
        .await
        .unwrap();
    let id = store.alert_events_after(0, 1).await.unwrap()[0].0;
    // d-0001's webhook was given up first: it fell back to d-0001's MQTT topic.
    store
        .queue_deliveries(
            "webhook",
            &[(id, "d-0001".into(), t0())],
            "webhook",
            Some(id),
            t0(),
        )
        .await
        .unwrap();
    let queued = store
        .give_up_delivery(
            (id, "d-0001", "webhook"),
            6,
            "HTTP 500",
            &[("d-0001", "mqtt")],
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(queued, Some(true));
    // Now MQTT never takes it either: the webhook failed already, so the duty desk.
    let deliverer = impatient(broker.port, &store);
    let stats = deliverer.stats.clone();
    eventually(
        "d-0001 and the duty desk given up",
        Duration::from_secs(30),
        || stats.failed.load(Ordering::Acquire) == 2,
    )
    .await;
    deliverer.shutdown().await;
    assert!(broker.count("vigil/v1/doctor/d-duty-01/alerts") >= 2);
    let ops = ops(&store).await;
    assert_eq!(ops.len(), 3, "{ops:#?}");
    assert_eq!(ops[1].0, "d-0001");
    assert!(
        ops[1].1.contains("falls back to MQTT for d-duty-01"),
        "{ops:#?}"
    );
    assert_eq!(ops[2].0, "d-duty-01");
    assert!(ops[2].1.contains("no fallback"), "{ops:#?}");
    let states: Vec<(String, String, String)> = store
        .deliveries(id)
        .await
        .unwrap()
        .into_iter()
        .map(|(d, c, s, _)| (d, c, s))
        .collect();
    let row = |d: &str, c: &str| (d.to_owned(), c.to_owned(), "failed".to_owned());
    assert_eq!(
        states,
        [
            row("d-0001", "mqtt"),
            row("d-0001", "webhook"),
            row("d-duty-01", "mqtt")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_unacknowledged_publishes_than_the_client_holds_are_all_given_up() {
    // 600 events to d-0001, six times the 100 publishes the MQTT client keeps
    // unacknowledged: a broker that never acknowledges must not stall the deliverer.
    // (Publishing them all on one connection, as it once did, would fill the client's
    // window, then its request queue of 1 024, by the third page: rumqttc 0.25.1.)
    let broker = vigil_testkit::SilentBroker::start().await;
    let store = SqliteStore::in_memory().await.unwrap();
    let many: Vec<AlertEventRecord> = events().into_iter().take(600).collect();
    store
        .keep_alert_events(&many, None, None, t0())
        .await
        .unwrap();
    let deliverer = impatient(broker.port, &store);
    let stats = deliverer.stats.clone();
    eventually("600 deliveries given up", Duration::from_secs(90), || {
        stats.failed.load(Ordering::Acquire) == 600
    })
    .await;
    // Each fell back to d-0001's webhook, and the cursor moved past every event.
    eventually("the cursor past them", Duration::from_secs(10), || {
        stats.cursor.load(Ordering::Acquire) >= 600
    })
    .await;
    deliverer.shutdown().await;
    assert_eq!(stats.delivered.load(Ordering::Acquire), 0);
    let ops = ops(&store).await;
    assert_eq!(ops.len(), 600);
    assert!(
        ops.iter()
            .all(|(_, d)| d.contains("falls back to a webhook for d-0001"))
    );
    println!(
        "600 events given up after {} publishes",
        broker.count("vigil/v1/doctor/d-0001/alerts")
    );
}
