//! The rule runner fed by the intake in memory (`vigil_ingest::feed`): every committed
//! reading is evaluated exactly once, whether it came through the feed or, where the
//! feed has a hole (a reading committed without it, a batch the full feed dropped), from
//! the store.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use vigil_ingest::feed::{Committed, Input, RuleFeed, committed};
use vigil_ingest::pipeline::prepare;
use vigil_ingest::rules::RuleRunner;
use vigil_model::clock::ManualClock;
use vigil_registry::Registry;
use vigil_rules::ruleset::RuleSet;
use vigil_store::{AlertAction, EnvelopeCommit, PreparedRows, SqliteStore};
use vigil_testkit::{eventually, example_registry};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T10:00:00+08:00")
        .unwrap()
        .with_timezone(&Utc)
}

/// An envelope of p-000123's cuff: `n` routine readings a minute apart from `minute`,
/// and a hypertensive crisis with a red-flag symptom last when `crisis`.
fn envelope(registry: &Registry, seq: u64, minute: i64, n: i64, crisis: bool) -> EnvelopeCommit {
    let at = |m: i64| (t0() - TimeDelta::hours(1) + TimeDelta::minutes(m)).to_rfc3339();
    let mut readings: Vec<_> = (0..n)
        .map(|i| {
            json!({"device_id": "bpm-omron-3f9a21", "type": "bp", "unit": "mm[Hg]",
                "time": at(minute + i), "values": {"systolic": 122, "diastolic": 78}})
        })
        .collect();
    if crisis {
        readings.push(
            json!({"device_id": "bpm-omron-3f9a21", "type": "bp", "unit": "mm[Hg]",
            "time": at(minute + n), "symptoms": ["severe_headache_or_dizziness"],
            "values": {"systolic": 196, "diastolic": 114}}),
        );
    }
    let body = serde_json::to_vec(&json!({"schema": "vigil.readings.v1",
        "gateway_id": "gw-0042", "batch_seq": seq, "sent_at": at(minute + n),
        "readings": readings}))
    .unwrap();
    prepare(&"gw-0042".parse().unwrap(), &body, received(), registry).unwrap()
}

/// Receipt, with a fraction of a millisecond (the store keeps milliseconds).
fn received() -> DateTime<Utc> {
    t0() + TimeDelta::nanoseconds(123_456_789)
}

/// A runner over `store` with the example registry, fed by `feed` when given.
fn runner(
    store: &SqliteStore,
    registry: &Arc<Registry>,
    feed: Option<Arc<RuleFeed>>,
) -> RuleRunner {
    let registry = registry.clone();
    RuleRunner::start_fed(
        store.clone(),
        Arc::new(move || registry.clone()),
        Arc::new(RuleSet::default()),
        Arc::new(ManualClock::new(t0())),
        (None, feed),
    )
}

/// Commits the envelope and, when `feed` is given, hands its readings over as the
/// intake does.
async fn commit(store: &SqliteStore, feed: Option<&RuleFeed>, env: EnvelopeCommit) {
    let mut envs = vec![env];
    let (_, rows) = store
        .commit_prepared(&envs, PreparedRows::default())
        .await
        .unwrap();
    if let Some(feed) = feed {
        feed.push(committed(&mut envs, &rows));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reading_is_evaluated_once_through_the_feed_or_from_the_store_where_it_has_a_hole() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("vigil.db"))
        .await
        .unwrap();
    let registry = Arc::new(Registry::parse(&example_registry()).unwrap());
    // Room for 4 readings: a larger commit is dropped whole.
    let feed = Arc::new(RuleFeed::new(4));
    let runner = runner(&store, &registry, Some(feed.clone()));
    let stats = runner.stats.clone();
    let evaluated = |n: u64| {
        let stats = stats.clone();
        move || stats.readings_evaluated.load(Ordering::Relaxed) == n
    };

    // Three readings through the feed.
    commit(&store, Some(&feed), envelope(&registry, 1, 0, 3, false)).await;
    eventually("3 evaluated", Duration::from_secs(10), evaluated(3)).await;
    assert_eq!(stats.readings_fed.load(Ordering::Relaxed), 3);

    // Two committed without the feed (as a release from quarantine is), then a crisis
    // through it: the runner reads the hole from the store, then takes the crisis.
    commit(&store, None, envelope(&registry, 2, 10, 2, false)).await;
    commit(&store, Some(&feed), envelope(&registry, 3, 20, 0, true)).await;
    eventually("6 evaluated", Duration::from_secs(10), evaluated(6)).await;
    assert_eq!(stats.readings_fed.load(Ordering::Relaxed), 4);
    eventually("the crisis opened", Duration::from_secs(10), || {
        stats.alerts_opened.load(Ordering::Relaxed) == 1
    })
    .await;

    // Five at once do not fit the feed: dropped, counted, and read from the store.
    commit(&store, Some(&feed), envelope(&registry, 4, 30, 5, false)).await;
    assert_eq!(feed.dropped.load(Ordering::Relaxed), 5);
    eventually("11 evaluated", Duration::from_secs(10), evaluated(11)).await;
    assert_eq!(stats.readings_fed.load(Ordering::Relaxed), 4);
    // And the feed carries on after the hole.
    commit(&store, Some(&feed), envelope(&registry, 5, 40, 2, false)).await;
    eventually("13 evaluated", Duration::from_secs(10), evaluated(13)).await;
    assert_eq!(stats.readings_fed.load(Ordering::Relaxed), 6);

    // Each reading once: the cursor at the last row, one crisis, nothing left over.
    eventually(
        "the cursor at the last reading",
        Duration::from_secs(10),
        || stats.cursor.load(Ordering::Relaxed) == 13,
    )
    .await;
    assert_eq!(stats.readings_evaluated.load(Ordering::Relaxed), 13);
    assert_eq!(stats.alerts_opened.load(Ordering::Relaxed), 1);
    assert_eq!(stats.errors.load(Ordering::Relaxed), 0);
    assert!(feed.is_empty());

    // A hole the store confirms empty (row 14 does not exist) does not stop the feed.
    feed.push(vec![Committed {
        id: 15,
        patient: "p-000123".parse().unwrap(),
        received: received(),
        input: Input::Ecg,
    }]);
    eventually(
        "the cursor past the empty hole",
        Duration::from_secs(10),
        || stats.cursor.load(Ordering::Relaxed) == 15,
    )
    .await;
    assert_eq!(stats.readings_evaluated.load(Ordering::Relaxed), 14);
    assert_eq!(stats.readings_fed.load(Ordering::Relaxed), 7);
    runner.shutdown().await;
}

/// The same readings give the same alert events, `alert_id` included, whether the
/// runner took them from the feed or read them back from the store (as it does after a
/// restart): the feed carries the receipt to the millisecond, as the store keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fed_runner_raises_the_same_alert_events_as_one_reading_the_store() {
    let registry = Arc::new(Registry::parse(&example_registry()).unwrap());
    let mut events = Vec::new();
    for fed in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("vigil.db"))
            .await
            .unwrap();
        let feed = fed.then(|| Arc::new(RuleFeed::new(100)));
        let runner = runner(&store, &registry, feed.clone());
        commit(&store, feed.as_deref(), envelope(&registry, 1, 0, 0, true)).await;
        let stats = runner.stats.clone();
        eventually("the crisis opened", Duration::from_secs(10), || {
            stats.alerts_opened.load(Ordering::Relaxed) == 1
        })
        .await;
        assert_eq!(stats.readings_fed.load(Ordering::Relaxed), u64::from(fed));
        // A doctor resolves it: the runner finds the episode by its opening instant,
        // as kept in the store.
        let opened = store.alert_events(None).await.unwrap().remove(0);
        store
            .keep_alert_action(&AlertAction {
                alert_id: opened.alert_id.clone(),
                action: "resolve".to_owned(),
                by: "d-0001".to_owned(),
                note: "called the patient".to_owned(),
                at: t0() + TimeDelta::minutes(5),
            })
            .await
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !(store.alert_events(None).await.unwrap())
            .iter()
            .any(|e| e.change == "resolved")
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the episode was not resolved within 10 s (fed: {fed})"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        runner.shutdown().await;
        let kept: Vec<_> = store
            .alert_events(None)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.alert_id, e.change, e.rule, e.level, e.opened_at, e.at))
            .collect();
        assert!(!kept.is_empty());
        events.push(kept);
    }
    assert_eq!(events[0], events[1]);
}
