//! The forwarder against a real Mosquitto (persistent, started on a free port): 600
//! readings go through the outbox while the broker is stopped for a while and the
//! forwarder is killed once and started again on the same state, as a rebooted
//! gateway would. At the end the outbox holds nothing pending; the platform's side
//! (a QoS 1 subscriber) has every reading, `batch_seq` runs 1, 2, 3... without a gap,
//! and a batch seen twice is the same bytes. A `backfill` command then republishes
//! retained batches byte for byte, and the retained status says `online`.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::TimeDelta;
use rumqttc::QoS;
use vigil_edge::forward::{Forwarder, ForwarderConfig};
use vigil_edge::store::Store;
use vigil_model::clock::{Clock, SystemClock};
use vigil_model::measurement::BloodPressure;
use vigil_model::units::PressureUnit;
use vigil_model::{GatewayId, Measurement, Reading};
use vigil_testkit::{Mosquitto, MosquittoOptions, eventually, subscriber};

const READINGS: u64 = 600;

fn reading(n: u64) -> Reading {
    let t = SystemClock.now() - TimeDelta::seconds(1000 - n as i64);
    Reading {
        device_id: "bpm-omron-3f9a21".parse().unwrap(),
        record_seq: Some(n),
        time: t.with_timezone(&vigil_edge::forward::CHINA),
        device_time: None,
        measurement: Measurement::Bp(BloodPressure {
            systolic: 120.0 + (n % 40) as f64,
            diastolic: 80.0,
            mean: None,
            pulse: Some(70.0),
            unit: PressureUnit::MmHg,
        }),
        status: vec![],
        symptoms: vec![],
    }
}

/// Waits until nothing is pending in the outbox: every reading and envelope
/// acknowledged by the broker.
async fn drained(handle: &vigil_edge::forward::Handle, within: Duration, what: &str) {
    let deadline = tokio::time::Instant::now() + within;
    while handle.depth().await > 0 || handle.envelopes_pending().await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} did not drain within {within:?}: {} readings pending",
            handle.depth().await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the platform's subscriber received: batch_seq → copies.
type Seen = Arc<Mutex<BTreeMap<u64, Vec<Vec<u8>>>>>;

/// The readings in the envelopes received (each batch counted once, from its first
/// copy).
fn readings_seen(seen: &Seen) -> usize {
    seen.lock()
        .unwrap()
        .values()
        .map(|copies| {
            vigil_wire::decode_envelope(&copies[0])
                .unwrap()
                .readings
                .len()
        })
        .sum()
}

/// The platform's side: a QoS 1 subscriber to every gateway's readings, keeping each
/// envelope received by its `batch_seq`.
async fn platform(port: u16, client_id: &str, persistent: bool) -> (rumqttc::AsyncClient, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let client = subscriber(
        port,
        client_id,
        "vigil/v1/gw/+/readings",
        persistent,
        move |p| {
            let env = vigil_wire::decode_envelope(&p.payload).unwrap();
            s.lock()
                .unwrap()
                .entry(env.batch_seq)
                .or_default()
                .push(p.payload.to_vec());
        },
    )
    .await;
    (client, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reading_arrives_through_a_broker_outage_and_a_crash_without_a_gap() {
    let mut broker = Mosquitto::start_with(MosquittoOptions {
        persistence: true,
        ..MosquittoOptions::default()
    });
    let gw: GatewayId = "gw-0042".parse().unwrap();
    let (_platform, seen) = platform(broker.port, "platform", true).await;
    let statuses: Arc<Mutex<Vec<vigil_wire::status::Status>>> = Arc::default();
    let st = statuses.clone();
    let _watcher = subscriber(
        broker.port,
        "status-watcher",
        "vigil/v1/gw/+/status",
        true,
        move |p| {
            st.lock()
                .unwrap()
                .push(vigil_wire::status::decode_status(&p.payload).unwrap());
        },
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let mut config = ForwarderConfig::new(gw.clone(), "127.0.0.1", broker.port);
    config.batch_size = 10;
    config.linger = Duration::from_millis(50);
    config.window = 8;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let start = |config: ForwarderConfig| {
        let (store, _) = Store::open(dir.path(), vigil_outbox::Config::default()).unwrap();
        Forwarder::start(config, store, clock.clone())
    };
    let received = || readings_seen(&seen) as u64;

    let mut forwarder = start(config.clone());
    let mut next = 0u64;
    let mut add = |forwarder: &Forwarder, upto: u64| {
        let handle = forwarder.handle();
        let from = next;
        next = upto;
        async move {
            let mut n = from;
            while n < upto {
                let chunk: Vec<Reading> = (n..(n + 7).min(upto)).map(reading).collect();
                n += chunk.len() as u64;
                handle.add(chunk).await.unwrap();
            }
        }
    };
    add(&forwarder, 150).await;
    eventually(
        "some batches at the platform",
        Duration::from_secs(30),
        || received() >= 50,
    )
    .await;
    // The broker goes away; readings keep coming and wait in the outbox.
    broker.stop();
    add(&forwarder, 300).await;
    assert!(forwarder.handle().depth().await > 0);
    broker.restart();
    add(&forwarder, 400).await;
    // A crash (no clean stop), and the gateway starts again on its state.
    forwarder.abort().await;
    forwarder = start(config.clone());
    add(&forwarder, READINGS).await;
    let handle = forwarder.handle();
    drained(&handle, Duration::from_secs(60), "the outbox").await;
    eventually(
        "every reading at the platform",
        Duration::from_secs(30),
        || received() >= READINGS,
    )
    .await;

    // The platform's side: batch_seq 1..=N without a gap, a repeat is the same bytes,
    // every reading exactly once across the distinct batches.
    let (last, duplicates) = {
        let seen = seen.lock().unwrap();
        let seqs: Vec<u64> = seen.keys().copied().collect();
        let last = *seqs.last().unwrap();
        assert_eq!(seqs, (1..=last).collect::<Vec<_>>(), "batch_seq gaps");
        let mut records = BTreeSet::new();
        let mut duplicates = 0;
        for copies in seen.values() {
            assert!(copies.iter().all(|c| c == &copies[0]), "a batch changed");
            duplicates += copies.len() - 1;
            let env = vigil_wire::decode_envelope(&copies[0]).unwrap();
            assert!(env.readings.len() <= 10);
            for r in env.readings {
                assert!(
                    records.insert(r.unwrap().record_seq.unwrap()),
                    "a reading in two batches"
                );
            }
        }
        assert_eq!(records, (0..READINGS).collect::<BTreeSet<_>>());
        (last, duplicates)
    };
    eprintln!("{READINGS} readings in {last} batches; {duplicates} batches received twice");

    // backfill: batches 1 to 3 again, byte for byte (acknowledged, still retained).
    let (platform, _) = vigil_testkit::gateway(broker.port, "platform-commands");
    platform
        .publish(
            "vigil/v1/gw/gw-0042/cmd",
            QoS::AtLeastOnce,
            false,
            vigil_wire::command::encode_command(&vigil_wire::command::Command::BackfillBatches {
                from_batch_seq: 1,
                to_batch_seq: 3,
            }),
        )
        .await
        .unwrap();
    eventually("the backfilled batches", Duration::from_secs(30), || {
        let seen = seen.lock().unwrap();
        (1..=3).all(|b| seen[&b].len() >= 2)
    })
    .await;
    {
        let seen = seen.lock().unwrap();
        assert!((1..=3).all(|b| seen[&b].iter().all(|c| c == &seen[&b][0])));
    }
    eventually(
        "the backfills acknowledged",
        Duration::from_secs(10),
        || {
            forwarder
                .stats
                .backfilled
                .load(std::sync::atomic::Ordering::Relaxed)
                == 3
        },
    )
    .await;
    // The retained status: online, with the outbox empty.
    eventually("an online status", Duration::from_secs(10), || {
        statuses.lock().unwrap().iter().any(|s| {
            s.state == vigil_wire::status::GatewayState::Online && s.outbox_depth == Some(0)
        })
    })
    .await;
    forwarder.shutdown().await;
    eventually("the offline status", Duration::from_secs(10), || {
        statuses
            .lock()
            .unwrap()
            .last()
            .is_some_and(|s| s.state == vigil_wire::status::GatewayState::Offline)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_outbox_refuses_readings_counts_them_and_keeps_what_it_holds() {
    // No broker at all: nothing is acknowledged, so the small cap fills.
    let port = vigil_testkit::free_port();
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(
        dir.path(),
        vigil_outbox::Config {
            max_bytes: 40_000, // 20 000 for the readings
            ..vigil_outbox::Config::default()
        },
    )
    .unwrap();
    let gw: GatewayId = "gw-0042".parse().unwrap();
    let forwarder = Forwarder::start(
        ForwarderConfig::new(gw, "127.0.0.1", port),
        store,
        Arc::new(SystemClock),
    );
    let handle = forwarder.handle();
    let mut taken = 0u64;
    let mut refusals = 0;
    for n in 0..200 {
        match handle.add(vec![reading(n)]).await {
            Ok(()) => taken += 1,
            Err(vigil_outbox::Error::Full { .. }) => refusals += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        taken > 0 && refusals > 0,
        "{taken} taken, {refusals} refused"
    );
    assert_eq!(handle.refused(), refusals);
    assert_eq!(handle.depth().await, taken, "what it took, it keeps");
    forwarder.abort().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_cap_deletes_acknowledged_batches_early_for_room_and_counts_them() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(
        dir.path(),
        vigil_outbox::Config {
            max_bytes: 40_000, // 20 000 for the readings, 20 000 for the envelopes
            ..vigil_outbox::Config::default()
        },
    )
    .unwrap();
    let gw: GatewayId = "gw-0042".parse().unwrap();
    let mut config = ForwarderConfig::new(gw, "127.0.0.1", broker.port);
    config.batch_size = 10;
    let forwarder = Forwarder::start(config, store, Arc::new(SystemClock));
    let handle = forwarder.handle();
    // 300 readings (about three times the cap), ten at a time, each ten acknowledged
    // before the next: nothing is refused, and the room comes from acknowledged
    // records deleted before their 7 days of retention.
    for chunk in 0..30u64 {
        handle
            .add((chunk * 10..chunk * 10 + 10).map(reading).collect())
            .await
            .unwrap();
        drained(&handle, Duration::from_secs(30), &format!("chunk {chunk}")).await;
    }
    assert_eq!(handle.refused(), 0);
    let evicted = handle.evicted().await;
    assert!(evicted > 0, "nothing evicted");
    println!("{evicted} acknowledged records deleted early for room");
    forwarder.abort().await;
}

/// `vigil-edge run`'s configuration for a broker at `url`, checked.
fn checked(url: &str, tls: Option<(&Path, &Path, &Path)>) -> vigil_edge::config::Checked {
    let mut text = format!("gateway_id = \"gw-0042\"\n[broker]\nurl = \"{url}\"\n");
    if let Some((ca, cert, key)) = tls {
        text += &format!(
            "ca_file = {:?}\nclient_cert = {:?}\nclient_key = {:?}\n",
            ca.display().to_string(),
            cert.display().to_string(),
            key.display().to_string()
        );
    }
    vigil_edge::config::EdgeConfig::parse(&text)
        .unwrap()
        .check()
        .unwrap()
}

fn forwarder_for(checked: &vigil_edge::config::Checked, dir: &Path) -> Forwarder {
    let (store, _) = Store::open(dir, vigil_outbox::Config::default()).unwrap();
    let mut config = ForwarderConfig::new(checked.gateway_id.clone(), &checked.host, checked.port);
    config.tls = checked.tls.clone();
    config.linger = Duration::from_millis(50);
    Forwarder::start(config, store, Arc::new(SystemClock))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_mqtts_with_a_client_certificate_readings_arrive_and_a_foreign_authority_is_refused() {
    let broker = Mosquitto::start_with(MosquittoOptions {
        tls: Some(true), // the broker requires a client certificate
        ..MosquittoOptions::default()
    });
    let tls = broker.tls.clone().unwrap();
    let (_platform, seen) = platform(broker.port, "platform-tls", false).await;
    let url = format!("mqtts://127.0.0.1:{}", tls.port);

    // A gateway trusting another authority never connects: it says so, counts the
    // attempts, and keeps its readings.
    let dir = tempfile::tempdir().unwrap();
    let wrong = checked(
        &url,
        Some((&tls.other_ca, &tls.client_cert, &tls.client_key)),
    );
    let forwarder = forwarder_for(&wrong, dir.path());
    let handle = forwarder.handle();
    handle.add(vec![reading(1)]).await.unwrap();
    let failures = forwarder.stats.connect_failures.clone();
    eventually("three refused attempts", Duration::from_secs(30), || {
        failures.load(std::sync::atomic::Ordering::Relaxed) >= 3
    })
    .await;
    assert_eq!(handle.depth().await, 1);
    assert_eq!(
        forwarder
            .stats
            .acked
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    forwarder.abort().await;

    // The right authority and the gateway's certificate: the readings arrive.
    let right = checked(&url, Some((&tls.ca, &tls.client_cert, &tls.client_key)));
    let forwarder = forwarder_for(&right, dir.path());
    let handle = forwarder.handle();
    handle.add(vec![reading(2)]).await.unwrap();
    drained(&handle, Duration::from_secs(30), "the outbox over TLS").await;
    // Both readings, the one kept while refused too (in one envelope or two).
    let readings = || readings_seen(&seen);
    eventually(
        "both readings at the platform",
        Duration::from_secs(10),
        || readings() == 2,
    )
    .await;
    forwarder.abort().await;
}
