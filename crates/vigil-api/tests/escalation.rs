//! The rule runner's escalation ladder under a controlled clock (clinical rules §0.10):
//! an unacknowledged CRITICAL alert goes to level 2 at 15 minutes and level 3 at 30;
//! an acknowledgement at 6 minutes stops the ladder for good. The acknowledgements go
//! through the API (`POST /api/v1/alerts/{id}/ack`, read-back checked) on the same
//! clock as the runner, or straight into the store for the restart case.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::http::StatusCode;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use vigil_api::AppState;
use vigil_ingest::pipeline::prepare;
use vigil_ingest::rules::RuleRunner;
use vigil_model::clock::ManualClock;
use vigil_registry::Registry;
use vigil_rules::ruleset::RuleSet;
use vigil_store::{AlertAction, SqliteStore};
use vigil_testkit::{eventually, example_registry};

fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T10:00:00+08:00")
        .unwrap()
        .with_timezone(&Utc)
}

/// A store holding one CRITICAL reading (a crisis with a red-flag symptom) of
/// p-000123, and a runner on a manual clock that has evaluated it.
async fn crisis() -> (SqliteStore, Arc<ManualClock>, RuleRunner) {
    let registry = Arc::new(Registry::parse(&example_registry()).unwrap());
    let store = SqliteStore::in_memory().await.unwrap();
    let envelope = serde_json::to_vec(&json!({"schema": "vigil.readings.v1",
        "gateway_id": "gw-0042", "batch_seq": 1, "sent_at": "2026-11-22T10:00:00+08:00",
        "readings": [{"device_id": "bpm-omron-3f9a21", "type": "bp", "unit": "mm[Hg]",
            "time": "2026-11-22T09:59:00+08:00", "symptoms": ["severe_headache_or_dizziness"],
            "values": {"systolic": 196, "diastolic": 114}}]}))
    .unwrap();
    let commit = prepare(&"gw-0042".parse().unwrap(), &envelope, t0(), &registry).unwrap();
    store.commit(&[commit]).await.unwrap();
    let clock = Arc::new(ManualClock::new(t0()));
    let runner = start_runner(&store, clock.clone());
    let stats = runner.stats.clone();
    eventually("the reading evaluated", Duration::from_secs(10), || {
        stats.alerts_opened.load(Ordering::Relaxed) == 1
    })
    .await;
    (store, clock, runner)
}

/// A rule runner over `store` with the example registry and the default rules.
fn start_runner(store: &SqliteStore, clock: Arc<ManualClock>) -> RuleRunner {
    let registry = Arc::new(Registry::parse(&example_registry()).unwrap());
    RuleRunner::start(
        store.clone(),
        Arc::new(move || registry.clone()),
        Arc::new(RuleSet::default()),
        clock,
        None,
    )
}

/// Waits for two more passes of the runner (each runs the timers on the clock once).
async fn two_passes(runner: &RuleRunner) {
    let stats = runner.stats.clone();
    let from = stats.passes.load(Ordering::Acquire);
    eventually("two passes of the runner", Duration::from_secs(10), || {
        stats.passes.load(Ordering::Acquire) >= from + 2
    })
    .await;
}

async fn changes(store: &SqliteStore) -> Vec<(String, u8)> {
    store
        .alert_events(None)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.change, e.level))
        .collect()
}

/// That the alert has had exactly `n` changes.
async fn assert_changes(store: &SqliteStore, n: usize) {
    let c = changes(store).await;
    assert_eq!(c.len(), n, "{c:?}");
}

/// The changes once there are at least `n` (within 10 s, else a failure that says so).
async fn wait_changes(store: &SqliteStore, n: usize) -> Vec<(String, u8)> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let c = changes(store).await;
        if c.len() >= n {
            return c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{n} changes expected within 10 s, have {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_ack_a_critical_alert_escalates_at_15_and_30_minutes() {
    let (store, clock, runner) = crisis().await;
    clock.set(t0() + TimeDelta::minutes(14));
    two_passes(&runner).await;
    assert_eq!(changes(&store).await, [("opened".to_owned(), 1)]);
    clock.set(t0() + TimeDelta::minutes(15));
    let c = wait_changes(&store, 2).await;
    assert_eq!(c[1], ("escalated".to_owned(), 2));
    clock.set(t0() + TimeDelta::minutes(45));
    let c = wait_changes(&store, 3).await;
    assert_eq!(c[2], ("escalated".to_owned(), 3));
    let events = store.alert_events(None).await.unwrap();
    assert_eq!(events[1].at, t0() + TimeDelta::minutes(15));
    assert_eq!(events[2].at, t0() + TimeDelta::minutes(30));
    runner.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_at_six_minutes_stops_the_ladder_for_good() {
    let (store, clock, runner) = crisis().await;
    let alert = store.alert_events(None).await.unwrap().remove(0);
    clock.set(t0() + TimeDelta::minutes(6));
    store
        .keep_alert_action(&AlertAction {
            alert_id: alert.alert_id.clone(),
            action: "ack".to_owned(),
            by: "d-0001".to_owned(),
            note: alert.display.clone(),
            at: t0() + TimeDelta::minutes(6),
        })
        .await
        .unwrap();
    let c = wait_changes(&store, 2).await;
    assert_eq!(c[1], ("acknowledged".to_owned(), 1));
    clock.set(t0() + TimeDelta::hours(2));
    two_passes(&runner).await;
    assert_changes(&store, 2).await;
    runner.shutdown().await;
    // After a restart, the acknowledgement is replayed with the reading: still no
    // escalation.
    let runner = start_runner(
        &store,
        Arc::new(ManualClock::new(t0() + TimeDelta::hours(3))),
    );
    two_passes(&runner).await;
    assert_changes(&store, 2).await;
    runner.shutdown().await;
}

/// The API on the runner's store and clock: acknowledgements are stamped with it.
fn api(store: &SqliteStore, clock: &Arc<ManualClock>) -> AppState {
    AppState::new(store.clone(), clock.clone())
}

/// `POST /api/v1/alerts/{alert_id}/ack` as d-0001 with `read_back`.
async fn ack(state: &AppState, alert_id: &str, read_back: &str) -> (StatusCode, String) {
    common::post(
        state,
        &format!("/api/v1/alerts/{alert_id}/ack"),
        json!({"read_back": read_back, "by": "d-0001"}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_through_the_api_at_six_minutes_stops_the_ladder() {
    let (store, clock, runner) = crisis().await;
    let api = api(&store, &clock);
    let alert = store.alert_events(None).await.unwrap().remove(0);
    clock.set(t0() + TimeDelta::minutes(6));
    let (status, body) = ack(&api, &alert.alert_id, &alert.display).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let c = wait_changes(&store, 2).await;
    assert_eq!(c[1], ("acknowledged".to_owned(), 1));
    let events = store.alert_events(None).await.unwrap();
    assert_eq!(events[1].at, t0() + TimeDelta::minutes(6));
    // Past both steps of the ladder: nothing more.
    clock.set(t0() + TimeDelta::minutes(45));
    two_passes(&runner).await;
    assert_changes(&store, 2).await;
    runner.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ack_with_a_wrong_read_back_is_refused_and_the_ladder_goes_on() {
    let (store, clock, runner) = crisis().await;
    let api = api(&store, &clock);
    let alert = store.alert_events(None).await.unwrap().remove(0);
    assert_eq!(alert.display, "196/114 mmHg");
    clock.set(t0() + TimeDelta::minutes(6));
    let (status, body) = ack(&api, &alert.alert_id, "196/104 mmHg").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("does not match"), "{body}");
    two_passes(&runner).await;
    assert_eq!(changes(&store).await, [("opened".to_owned(), 1)]);
    // The refused ack stopped nothing: level 2 at 15 minutes.
    clock.set(t0() + TimeDelta::minutes(15));
    let c = wait_changes(&store, 2).await;
    assert_eq!(c[1], ("escalated".to_owned(), 2));
    // An ack read back right, at 20 minutes, stops it before level 3.
    clock.set(t0() + TimeDelta::minutes(20));
    let (status, body) = ack(&api, &alert.alert_id, "196/114 mmHg").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let c = wait_changes(&store, 3).await;
    assert_eq!(c[2], ("acknowledged".to_owned(), 2));
    clock.set(t0() + TimeDelta::hours(2));
    two_passes(&runner).await;
    assert_changes(&store, 3).await;
    runner.shutdown().await;
}
