//! Wire guarantee 6 over a real Mosquitto the test starts on a free port: the intake
//! commits a gateway's envelopes with a `batch_seq` missing, the gap detector asks the
//! gateway for it with a `backfill` command on its command topic, the batch arrives and
//! the gap closes, and nothing more is requested.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{FixedOffset, TimeDelta};
use serde_json::json;
use vigil_ingest::gaps::{GapConfig, GapDetector, GapStats};
use vigil_ingest::intake::{Intake, IntakeConfig, IntakeStats};
use vigil_model::GatewayId;
use vigil_model::clock::{Clock, SystemClock};
use vigil_registry::Registry;
use vigil_store::{SeqMarks, SqliteStore};
use vigil_testkit::{Mosquitto, eventually, example_registry, publish_all, subscriber};
use vigil_wire::command::{Command, decode_command};

const GATEWAY: &str = "gw-0042";
const COMMANDS: &str = "vigil/v1/gw/gw-0042/cmd";

/// An envelope of `gw-0042` with one blood pressure of `bpm-omron-3f9a21`, measured a
/// minute ago.
fn envelope(batch_seq: u64) -> Vec<u8> {
    let cst = FixedOffset::east_opt(8 * 3600).unwrap();
    let now = SystemClock.now().with_timezone(&cst);
    let time = (now - TimeDelta::minutes(1)).to_rfc3339();
    serde_json::to_vec(&json!({
        "schema": "vigil.readings.v1", "gateway_id": GATEWAY, "batch_seq": batch_seq,
        "sent_at": now.to_rfc3339(),
        "readings": [{"device_id": "bpm-omron-3f9a21", "record_seq": batch_seq, "type": "bp",
                      "time": time, "unit": "mm[Hg]",
                      "values": {"systolic": 128, "diastolic": 82}}]
    }))
    .unwrap()
}

/// A store, the intake subscribed to the broker, a gateway's connection, and the
/// commands the gateway receives (decoded).
struct Rig {
    _dir: tempfile::TempDir,
    store: SqliteStore,
    intake: Intake,
    intake_stats: Arc<IntakeStats>,
    gateway: rumqttc::AsyncClient,
    commands: Arc<Mutex<Vec<Command>>>,
    _command_client: rumqttc::AsyncClient,
}

impl Rig {
    async fn start(broker: &Mosquitto) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("clinical.db"))
            .await
            .unwrap();
        let mut config = IntakeConfig::new("127.0.0.1", broker.port);
        config.client_id = "ingester-gaps-under-test".into();
        let registry = Arc::new(Registry::parse(&example_registry()).unwrap());
        let intake = Intake::start(config, store.clone(), registry, Arc::new(SystemClock));
        let intake_stats = intake.stats.clone();
        eventually(
            "the ingester's subscription",
            Duration::from_secs(10),
            || intake_stats.subscriptions_acked.load(Ordering::Relaxed) >= 1,
        )
        .await;
        let commands = Arc::new(Mutex::new(Vec::new()));
        let c = commands.clone();
        let command_client =
            subscriber(broker.port, "gw-0042-commands", COMMANDS, false, move |p| {
                c.lock().unwrap().push(decode_command(&p.payload).unwrap());
            })
            .await;
        let (gateway, _) = vigil_testkit::gateway(broker.port, "gw-0042");
        Rig {
            _dir: dir,
            store,
            intake,
            intake_stats,
            gateway,
            commands,
            _command_client: command_client,
        }
    }

    /// Publishes these batches and waits until the intake has committed and
    /// acknowledged them all.
    async fn publish(&self, batches: &[u64]) {
        let before = self.intake_stats.publishes_acked.load(Ordering::Relaxed);
        publish_all(&self.gateway, GATEWAY, batches.iter().map(|&n| envelope(n))).await;
        let stats = self.intake_stats.clone();
        let want = before + batches.len() as u64;
        eventually("the intake's commits", Duration::from_secs(10), || {
            stats.publishes_acked.load(Ordering::Relaxed) >= want
        })
        .await;
    }

    fn commands(&self) -> Vec<Command> {
        self.commands.lock().unwrap().clone()
    }

    async fn marks(&self) -> SeqMarks {
        let gw = GatewayId::parse(GATEWAY).unwrap();
        self.store.seq_marks(&gw).await.unwrap().unwrap()
    }
}

fn detector(broker: &Mosquitto, store: &SqliteStore, gap_timeout: Duration) -> GapDetector {
    let mut config = GapConfig::new("127.0.0.1", broker.port);
    config.client_id = "gap-detector-under-test".into();
    config.poll = Duration::from_millis(50);
    config.gap_timeout = gap_timeout;
    GapDetector::start(config, store.clone(), Arc::new(SystemClock))
}

fn load(n: &std::sync::atomic::AtomicU64) -> u64 {
    n.load(Ordering::Relaxed)
}

/// Waits until the detector has completed `rounds` more rounds.
async fn rounds(stats: &Arc<GapStats>, rounds: u64) {
    let from = load(&stats.polls);
    eventually("the detector's rounds", Duration::from_secs(10), || {
        load(&stats.polls) >= from + rounds
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_that_does_not_fill_in_time_is_requested_and_closes_when_the_batch_arrives() {
    let broker = Mosquitto::start();
    let rig = Rig::start(&broker).await;
    rig.publish(&[1, 2, 4, 5]).await;

    let detector = detector(&broker, &rig.store, Duration::from_millis(200));
    let stats = detector.stats.clone();
    eventually(
        "a backfill command on the gateway's topic",
        Duration::from_secs(10),
        || !rig.commands().is_empty(),
    )
    .await;
    let backfill_3 = Command::BackfillBatches {
        from_batch_seq: 3,
        to_batch_seq: 3,
    };
    assert_eq!(rig.commands()[0], backfill_3);
    eventually("the request counted", Duration::from_secs(10), || {
        load(&stats.backfill_requests) >= 1
    })
    .await;
    assert_eq!(load(&stats.gaps_detected), 1);
    assert_eq!(load(&stats.batches_recovered), 0);
    let marks = rig.marks().await;
    assert_eq!((marks.contiguous_through, marks.highest), (2, 5));

    // The gateway answers with batch 3.
    rig.publish(&[3]).await;
    eventually("the gap closed", Duration::from_secs(10), || {
        load(&stats.batches_recovered) == 1 && load(&stats.missing_now) == 0
    })
    .await;
    assert_eq!(
        rig.marks().await,
        SeqMarks {
            baseline: 1,
            contiguous_through: 5,
            highest: 5
        }
    );
    // Nothing more is asked for it: ten more rounds (500 ms, over twice the 200 ms
    // before a gap still open is requested again) make no request.
    let requests = load(&stats.backfill_requests);
    rounds(&stats, 10).await;
    assert_eq!(load(&stats.backfill_requests), requests);
    assert_eq!(load(&stats.gaps_detected), 1);
    // Every request the broker acknowledged reached the gateway, each for batch 3 only
    // (a second one only if batch 3 took longer than 200 ms to come back).
    eventually(
        "every acknowledged request at the gateway",
        Duration::from_secs(10),
        || rig.commands().len() as u64 == requests,
    )
    .await;
    assert!(rig.commands().iter().all(|c| *c == backfill_3));
    assert!(rig.store.gateway_gaps().await.unwrap().is_empty());

    detector.shutdown().await;
    rig.intake.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_that_fills_in_time_and_batches_before_the_first_seen_are_never_requested() {
    let broker = Mosquitto::start();
    let rig = Rig::start(&broker).await;
    let detector = detector(&broker, &rig.store, Duration::from_secs(60));
    let stats = detector.stats.clone();
    // The ingester meets this gateway mid-stream, at batch 100; 102 comes late.
    rig.publish(&[100, 101, 103]).await;
    eventually("the gap seen", Duration::from_secs(10), || {
        load(&stats.gaps_detected) == 1 && load(&stats.missing_now) == 1
    })
    .await;
    rig.publish(&[102]).await;
    eventually("the gap closed", Duration::from_secs(10), || {
        load(&stats.batches_recovered) == 1 && load(&stats.missing_now) == 0
    })
    .await;
    // Older batches drained from the gateway's outbox later are not gaps either.
    rig.publish(&[98, 99]).await;
    rounds(&stats, 5).await;
    assert_eq!(
        rig.marks().await,
        SeqMarks {
            baseline: 100,
            contiguous_through: 103,
            highest: 103
        }
    );
    assert_eq!(load(&stats.missing_now), 0);
    assert_eq!(load(&stats.backfill_requests), 0);
    assert!(rig.commands().is_empty());

    detector.shutdown().await;
    rig.intake.shutdown().await;
}
