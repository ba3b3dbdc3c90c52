//! End-to-end load test: publish-to-doctor latency under a steady stream of readings.
//!
//! A simulated fleet of home gateways publishes single-reading envelopes (what a
//! gateway sends right after a measurement) at a steady rate to a real Mosquitto this
//! program starts on a free port; one reading in a hundred is a hypertensive crisis
//! with a red-flag symptom (CRITICAL at once, clinical rules §2.1), each from its own
//! patient. Two phases, in one run, on the same broker and load:
//!
//! - **baseline**: no Vigil; a QoS 1 subscriber on the readings topic. Its latency
//!   (gateway publish → subscriber receipt of the crisis envelope) is the broker's
//!   own share, a floor for the next phase.
//! - **vigil**: the ingester, the rule engine and the deliverer (as `vigil serve`
//!   runs them, over a SQLite file) and a doctors' client subscribed to
//!   `vigil/v1/doctor/+/alerts`. Latency: gateway publish of the crisis reading →
//!   the doctor's client receiving the `opened` alert event for that patient.
//!
//! ```sh
//! cargo bench -p vigil-benches --bench e2e            # 1 000 readings/s for 30 s
//! VIGIL_LOAD_RATE=2000 VIGIL_LOAD_SECONDS=60 cargo bench -p vigil-benches --bench e2e
//! ```
//!
//! Needs `mosquitto` on the PATH (`scripts/test` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a load test: a failure is fatal

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{SecondsFormat, TimeDelta};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use vigil_ingest::deliver::{Deliverer, DeliveryConfig};
use vigil_ingest::intake::{Intake, IntakeConfig};
use vigil_ingest::rules::RuleRunner;
use vigil_model::clock::{Clock, SystemClock};
use vigil_registry::Registry;
use vigil_sim::fleet::{DeviceKind, Fleet, FleetConfig};
use vigil_store::SqliteStore;
use vigil_testkit::{Mosquitto, subscriber};

/// Patients of the simulated fleet; the first `CRISES` of them (at most) each send
/// one crisis reading, the others routine readings.
const PATIENTS: usize = 3000;
/// One reading in this many is a crisis.
const CRISIS_EVERY: u64 = 100;

struct Load {
    rate: u64,
    seconds: u64,
}

/// (gateway, device, patient) of each patient with a blood-pressure cuff.
type Cuff = (String, String, String);

fn cuffs(fleet: &Fleet) -> Vec<Cuff> {
    fleet
        .patients()
        .iter()
        .filter_map(|p| {
            let d = p.devices.iter().find(|d| d.kind == DeviceKind::BpCuff)?;
            Some((p.gateway.to_string(), d.id.to_string(), p.id.to_string()))
        })
        .collect()
}

fn envelope(gateway: &str, device: &str, seq: u64, crisis: bool) -> Vec<u8> {
    let now = SystemClock.now();
    let reading = if crisis {
        serde_json::json!({"device_id": device, "type": "bp", "unit": "mm[Hg]",
            "time": (now - TimeDelta::seconds(1)).to_rfc3339_opts(SecondsFormat::Millis, true),
            "symptoms": ["chest_tightness"],
            "values": {"systolic": 196, "diastolic": 114, "pulse": 90}})
    } else {
        serde_json::json!({"device_id": device, "type": "bp", "unit": "mm[Hg]",
            "time": (now - TimeDelta::seconds(1)).to_rfc3339_opts(SecondsFormat::Millis, true),
            "values": {"systolic": 118 + seq % 17, "diastolic": 76 + seq % 9, "pulse": 72}})
    };
    serde_json::to_vec(&serde_json::json!({"schema": "vigil.readings.v1",
        "gateway_id": gateway, "batch_seq": seq,
        "sent_at": now.to_rfc3339_opts(SecondsFormat::Millis, true),
        "readings": [reading]}))
    .unwrap()
}

fn client(port: u16, id: &str) -> (AsyncClient, rumqttc::EventLoop) {
    let mut opts = MqttOptions::new(id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(1024 * 1024, 1024 * 1024);
    AsyncClient::new(opts, 20_000)
}

/// Publishes `load` readings from the cuffs, one crisis in `CRISIS_EVERY` (patient
/// `k` for the k-th crisis), recording when each crisis was published. Returns the
/// readings published and the achieved rate.
async fn publish(
    port: u16,
    id: &str,
    cuffs: &[Cuff],
    crises: usize,
    load: &Load,
    seq0: u64,
    sent: &Mutex<HashMap<String, Instant>>,
) -> (u64, f64) {
    let (c, mut events) = client(port, id);
    let acked = Arc::new(AtomicU64::new(0));
    let a = acked.clone();
    tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    a.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    });
    let total = load.rate * load.seconds;
    let routine = &cuffs[crises..];
    let start = Instant::now();
    let (mut n, mut crisis) = (0u64, 0usize);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    while n < total {
        tick.tick().await;
        // Catch up to the schedule: rate × elapsed readings by now.
        let due = ((start.elapsed().as_secs_f64() * load.rate as f64) as u64).min(total);
        while n < due {
            let is_crisis = n % CRISIS_EVERY == CRISIS_EVERY / 2 && crisis < crises;
            let (gw, dev, patient) = if is_crisis {
                crisis += 1;
                &cuffs[crisis - 1]
            } else {
                &routine[(n as usize) % routine.len()]
            };
            let body = envelope(gw, dev, seq0 + n, is_crisis);
            if is_crisis {
                sent.lock().unwrap().insert(patient.clone(), Instant::now());
            }
            c.publish(
                format!("vigil/v1/gw/{gw}/readings"),
                QoS::AtLeastOnce,
                false,
                body,
            )
            .await
            .unwrap();
            n += 1;
        }
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.load(Ordering::Relaxed) < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (n, rate)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1]
}

fn summary(name: &str, mut l: Vec<Duration>, expected: usize, readings: u64, rate: f64) {
    l.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "| {name} | {readings} at {rate:.0}/s | {}/{expected} | {:.1} ms | {:.1} ms | {:.1} ms | {:.1} ms |",
        l.len(),
        ms(percentile(&l, 50.0)),
        ms(percentile(&l, 90.0)),
        ms(percentile(&l, 99.0)),
        ms(l.last().copied().unwrap_or_default()),
    );
}

fn main() {
    let env = |k: &str, d: u64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    // `cargo bench` passes `--bench`; `cargo test --benches` runs a short smoke load
    // (every phase, every check) so the test suite keeps this program working.
    let bench = std::env::args().any(|a| a == "--bench");
    let load = Load {
        rate: env("VIGIL_LOAD_RATE", if bench { 1000 } else { 200 }).max(1),
        seconds: env("VIGIL_LOAD_SECONDS", if bench { 30 } else { 2 }).max(1),
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(run(load));
}

async fn run(load: Load) {
    let broker = Mosquitto::start();
    let fleet = Fleet::new(FleetConfig {
        patients: PATIENTS,
        seed: 7,
        start: SystemClock.now() - TimeDelta::days(1),
        incident_every: None,
        devices_per_patient: None,
    });
    let cuffs = cuffs(&fleet);
    let total = load.rate * load.seconds;
    let crises = ((total / CRISIS_EVERY) as usize).min(cuffs.len() / 2);
    assert!(crises > 0, "too short a run for a single crisis");
    eprintln!(
        "e2e: Mosquitto on port {}, {} cuffs, {total} readings per phase at {}/s, {crises} crises",
        broker.port,
        cuffs.len(),
        load.rate
    );

    // Phase 1: the broker alone.
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (s, l) = (sent.clone(), seen.clone());
    let by_gateway: HashMap<String, String> = cuffs[..crises]
        .iter()
        .map(|(gw, _, p)| (gw.clone(), p.clone()))
        .collect();
    let _sub = subscriber(
        broker.port,
        "baseline-sub",
        "vigil/v1/gw/+/readings",
        false,
        move |p: &rumqttc::Publish| {
            let gw = p.topic.split('/').nth(3).unwrap_or_default();
            // A crisis envelope carries symptoms; routine ones do not.
            if let Some(patient) = by_gateway.get(gw)
                && p.payload.windows(8).any(|w| w == b"symptoms")
                && let Some(at) = s.lock().unwrap().get(patient)
            {
                l.lock().unwrap().push(at.elapsed());
            }
        },
    )
    .await;
    eprintln!("e2e: baseline phase ({} s)…", load.seconds);
    let (n1, rate1) = publish(broker.port, "gw-load-1", &cuffs, crises, &load, 1, &sent).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = seen.lock().unwrap().clone();
    _sub.disconnect().await.unwrap();

    // Phases 2 and 3: Vigil between the gateways and the doctors, its deliverer first
    // polling the store every 250 ms (as it did before), then woken by the rule runner.
    let polling = vigil_phase(&broker, &fleet, &cuffs, crises, &load, false).await;
    let woken = vigil_phase(&broker, &fleet, &cuffs, crises, &load, true).await;

    println!();
    println!(
        "{} readings/s for {} s per phase, {crises} crises each, {} cuffs:",
        load.rate,
        load.seconds,
        cuffs.len(),
    );
    println!();
    println!("| phase | readings published | crises seen | p50 | p90 | p99 | max |");
    println!("|---|---|---|---|---|---|---|");
    summary("baseline: broker only", baseline, crises, n1, rate1);
    for (name, p) in [
        ("vigil, deliverer polling", &polling),
        ("vigil, deliverer woken", &woken),
    ] {
        summary(name, p.latencies.clone(), crises, p.published, p.rate);
    }
    println!();
    for (name, p) in [("polling", &polling), ("woken", &woken)] {
        println!(
            "{name}: {} readings stored, quarantined or duplicate of {}; {} alert messages; \
             server-side histogram (receipt → PUBACK): {} observations, mean {:.1} ms",
            p.accounted,
            p.published,
            p.alerts,
            p.server.0,
            p.server.1.as_secs_f64() * 1e3
        );
        assert_eq!(p.accounted, p.published, "readings unaccounted for");
        assert_eq!(
            p.latencies.len(),
            crises,
            "{name}: crises that reached no doctor"
        );
    }
}

struct Phase {
    latencies: Vec<Duration>,
    published: u64,
    rate: f64,
    accounted: u64,
    alerts: u64,
    /// The deliverer's own histogram (`vigil_alert_delivery_seconds`): count, mean.
    server: (u64, Duration),
}

/// Runs Vigil on a fresh store under the load; latencies publish → doctor's client.
async fn vigil_phase(
    broker: &Mosquitto,
    fleet: &Fleet,
    cuffs: &[Cuff],
    crises: usize,
    load: &Load,
    wake: bool,
) -> Phase {
    let tag = if wake { "woken" } else { "polling" };

    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("clinical.db"))
        .await
        .unwrap();
    let registry = Registry::parse(&fleet.registry_toml()).unwrap();
    let clock = Arc::new(SystemClock);
    let mut config = IntakeConfig::new("127.0.0.1", broker.port);
    config.client_id = format!("vigil-load-ingester-{tag}");
    let evaluate = Arc::new(tokio::sync::Notify::new());
    config.on_commit = vec![evaluate.clone()];
    let intake = Intake::start(config, store.clone(), Arc::new(registry), clock.clone());
    let stats = intake.stats.clone();
    let rules = RuleRunner::start(
        store.clone(),
        intake.current_registry(),
        Arc::new(vigil_rules::ruleset::RuleSet::default()),
        clock.clone(),
        Some(evaluate),
    );
    let deliverer = Deliverer::start(
        DeliveryConfig::new(
            "127.0.0.1",
            broker.port,
            format!("vigil-load-delivery-{tag}"),
        ),
        store.clone(),
        intake.current_registry(),
        clock.clone(),
        wake.then(|| rules.kept.clone()),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while stats.subscriptions_acked.load(Ordering::Relaxed) == 0 {
        assert!(Instant::now() < deadline, "the ingester did not subscribe");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (s, l) = (sent.clone(), seen.clone());
    let alerts = Arc::new(AtomicU64::new(0));
    let a = alerts.clone();
    let doctors = subscriber(
        broker.port,
        &format!("doctors-{tag}"),
        "vigil/v1/doctor/+/alerts",
        false,
        move |p| {
            a.fetch_add(1, Ordering::Relaxed);
            let Ok(alert) = vigil_wire::alert::decode_alert(&p.payload) else {
                return;
            };
            if alert.event == vigil_wire::alert::AlertEventKind::Opened
                && alert.rule == "bp_crisis"
                && let Some(at) = s.lock().unwrap().remove(alert.patient_id.as_str())
            {
                l.lock().unwrap().push(at.elapsed());
            }
        },
    )
    .await;
    eprintln!("e2e: vigil phase, deliverer {tag} ({} s)…", load.seconds);
    let (published, rate) = publish(
        broker.port,
        &format!("gw-load-{tag}"),
        cuffs,
        crises,
        load,
        1,
        &sent,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.lock().unwrap().len() < crises && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let accounted = || {
        stats.readings_stored.load(Ordering::Relaxed)
            + stats.readings_quarantined.load(Ordering::Relaxed)
            + stats.readings_duplicate.load(Ordering::Relaxed)
    };
    while accounted() < published && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let accounted = accounted();
    let _ = doctors.disconnect().await;
    // The deliverer records (and observes) a batch once all of it is acknowledged.
    let deadline = Instant::now() + Duration::from_secs(10);
    while deliverer.stats.delivered.load(Ordering::Relaxed) < seen.lock().unwrap().len() as u64
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let h = &deliverer.stats.latency;
    let count = h.count.load(Ordering::Relaxed);
    let server = (
        count,
        Duration::from_micros(h.sum_micros.load(Ordering::Relaxed) / count.max(1)),
    );
    deliverer.shutdown().await;
    rules.shutdown().await;
    intake.shutdown().await;
    let latencies = seen.lock().unwrap().clone();
    Phase {
        latencies,
        published,
        rate,
        accounted,
        alerts: alerts.load(Ordering::Relaxed),
        server,
    }
}
