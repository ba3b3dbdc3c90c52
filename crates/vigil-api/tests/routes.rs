//! The HTTP routes through `oneshot`, over a store filled by the real pipeline.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

mod common;
use common::post;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use vigil_api::{AppState, app};
use vigil_ingest::pipeline::prepare;
use vigil_model::GatewayId;
use vigil_registry::Registry;
use vigil_store::SqliteStore;

async fn state() -> AppState {
    let store = SqliteStore::in_memory().await.unwrap();
    let registry = Registry::parse(&vigil_testkit::example_registry()).unwrap();
    let received = DateTime::parse_from_rfc3339("2026-11-22T08:00:02+08:00")
        .unwrap()
        .with_timezone(&Utc);
    let bp = |min: u32, sys: u32| {
        json!({"device_id": "bpm-omron-3f9a21", "type": "bp", "time": format!("2026-11-22T07:{min:02}:00+08:00"),
               "unit": "mm[Hg]", "values": {"systolic": sys, "diastolic": 85}})
    };
    let payload = serde_json::to_vec(
        &json!({"schema": "vigil.readings.v1", "gateway_id": "gw-0042", "batch_seq": 1,
        "sent_at": "2026-11-22T08:00:01+08:00",
        "readings": [bp(10, 142), bp(20, 150), bp(30, 400), {"device_id": "nope", "type": "bp"}]}),
    )
    .unwrap();
    let commit = prepare(
        &GatewayId::parse("gw-0042").unwrap(),
        &payload,
        received,
        &registry,
    )
    .unwrap();
    store.commit(&[commit]).await.unwrap();
    AppState::new(store, Arc::new(vigil_model::clock::SystemClock))
}

async fn get(state: &AppState, uri: &str) -> (StatusCode, String) {
    let res = app(state.clone())
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap()
}

#[tokio::test]
async fn health_is_always_ok_and_readiness_waits_for_the_subscription() {
    let s = state().await;
    assert_eq!(get(&s, "/healthz").await.0, StatusCode::OK);
    let (status, body) = get(&s, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        json_of(&body),
        json!({"mqtt_subscribed": false, "store": true,
               "intake": {"readings_received": 0, "readings_stored": 0, "pending_publishes": 0}})
    );
    s.stats.subscriptions_acked.store(1, Ordering::Relaxed);
    assert_eq!(get(&s, "/readyz").await.0, StatusCode::OK);
}

#[tokio::test]
async fn metrics_count_stored_by_type_and_quarantined_by_reason() {
    let s = state().await;
    s.stats
        .commit_latency
        .observe(std::time::Duration::from_millis(3));
    let (status, text) = get(&s, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    for line in [
        "vigil_readings_stored_total{type=\"bp\"} 2",
        "vigil_readings_quarantined_total{reason=\"malformed\"} 1",
        "vigil_readings_quarantined_total{reason=\"out_of_range\"} 1",
        "vigil_readings_duplicate_total 0",
        "vigil_mqtt_publishes_acked_total 0",
        "vigil_commit_duration_seconds_bucket{le=\"0.002\"} 0",
        "vigil_commit_duration_seconds_bucket{le=\"0.005\"} 1",
        "vigil_commit_duration_seconds_bucket{le=\"+Inf\"} 1",
        "vigil_commit_duration_seconds_count 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
}

#[tokio::test]
async fn a_patients_readings_come_back_in_canonical_and_original_form() {
    let s = state().await;
    let (status, body) = get(
        &s,
        "/api/v1/patients/p-000123/readings?type=bp&from=2026-11-22T07:15:00%2B08:00",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v = json_of(&body);
    let readings = v["readings"].as_array().unwrap();
    assert_eq!(readings.len(), 1);
    assert_eq!(readings[0]["canonical"]["systolic_mmhg"], json!(150));
    assert_eq!(readings[0]["original"]["unit"], json!("mm[Hg]"));
    assert_eq!(readings[0]["late"], json!(false));
}

#[tokio::test]
async fn quarantine_is_filtered_by_reason_with_the_message() {
    let s = state().await;
    let (status, body) = get(&s, "/api/v1/quarantine?reason=out_of_range&gateway=gw-0042").await;
    assert_eq!(status, StatusCode::OK);
    let q = json_of(&body)["quarantine"].as_array().unwrap().clone();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0]["reason"], json!("out_of_range"));
    assert!(
        q[0]["message"]
            .as_str()
            .unwrap()
            .contains("systolic 400 mmHg")
    );
}

#[tokio::test]
async fn bad_parameters_get_a_400_that_says_what_to_fix() {
    let s = state().await;
    for (uri, needle) in [
        (
            "/api/v1/patients/p-000123/readings?type=bloodpressure",
            "'type'",
        ),
        (
            "/api/v1/patients/p-000123/readings?from=yesterday",
            "'from' must be an RFC 3339 time",
        ),
        ("/api/v1/patients/p-000123/readings?limit=0", "'limit' is 0"),
        ("/api/v1/patients/p%20x/readings", "patient id"),
        ("/api/v1/quarantine?reason=bad", "'reason'"),
    ] {
        let (status, body) = get(&s, uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        let msg = json_of(&body)["error"].as_str().unwrap().to_owned();
        assert!(msg.contains(needle), "{uri}: {msg}");
    }
}

#[tokio::test]
async fn a_running_sink_shows_its_lag_in_readiness_and_metrics_without_making_it_unready() {
    let mut s = state().await;
    s.stats.subscriptions_acked.store(1, Ordering::Relaxed);
    let sink = Arc::new(vigil_tsdb::SinkStats::default());
    sink.cursor.store(40, Ordering::Relaxed);
    sink.lag_readings.store(12, Ordering::Relaxed);
    sink.lag_millis.store(2500, Ordering::Relaxed);
    sink.points_written.store(40, Ordering::Relaxed);
    *sink.last_error.lock().unwrap() = "503: try later".to_owned();
    s.sink = Some(sink);
    let (status, body) = get(&s, "/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        json_of(&body)["tsdb"],
        json!({"healthy": false, "cursor": 40, "lag_readings": 12, "lag_seconds": 2.5,
               "last_error": "503: try later"})
    );
    let (_, text) = get(&s, "/metrics").await;
    for line in [
        "vigil_tsdb_points_written_total 40",
        "vigil_tsdb_lag_readings 12",
        "vigil_tsdb_lag_seconds 2.5",
        "vigil_tsdb_healthy 0",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

#[tokio::test]
async fn the_gap_detectors_counters_are_on_metrics_when_it_runs() {
    let mut s = state().await;
    let (_, text) = get(&s, "/metrics").await;
    assert!(!text.contains("vigil_batch_gaps"), "{text}");
    let gaps = Arc::new(vigil_ingest::gaps::GapStats::default());
    gaps.gaps_detected.store(3, Ordering::Relaxed);
    gaps.backfill_requests.store(4, Ordering::Relaxed);
    gaps.batches_recovered.store(7, Ordering::Relaxed);
    gaps.missing_now.store(2, Ordering::Relaxed);
    s.gaps = Some(gaps);
    let (_, text) = get(&s, "/metrics").await;
    for line in [
        "vigil_batch_gaps_detected_total 3",
        "vigil_backfill_requests_total 4",
        "vigil_batches_recovered_total 7",
        "vigil_batches_missing 2",
        "# TYPE vigil_batches_missing gauge",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
    }
}

#[tokio::test]
async fn an_acknowledgement_must_read_the_value_back_and_a_mismatch_is_refused() {
    let s = state().await;
    let at: DateTime<Utc> = "2026-11-22T00:00:00Z".parse().unwrap();
    s.store
        .keep_alert_events(
            &[vigil_store::AlertEventRecord {
                alert_id: "00000000000000ab".into(),
                patient_id: "p-000123".parse().unwrap(),
                family: "bp_crisis".into(),
                opened_at: at,
                ordinal: 0,
                display: "186/108 mmHg".into(),
                evidence: json!([]),
                change: "opened".into(),
                rule: "bp_crisis".into(),
                severity: "CRITICAL".into(),
                level: 1,
                at,
                deliver_at: None,
            }],
            None,
            None,
            at,
        )
        .await
        .unwrap();
    let uri = "/api/v1/alerts/00000000000000ab/ack";
    let (status, body) = post(
        &s,
        uri,
        json!({"read_back": "186/118 mmHg", "by": "d-0001"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.contains("does not match"), "{body}");
    assert!(s.store.alert_actions_after(0, at).await.unwrap().is_empty());
    // Whitespace and case do not matter.
    let (status, _) = post(
        &s,
        uri,
        json!({"read_back": " 186/108MMHG ", "by": "d-0001"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let actions = s.store.alert_actions_after(0, at).await.unwrap();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].1.action, "ack");
    assert_eq!(actions[0].1.by, "d-0001");
    let (status, _) = post(
        &s,
        "/api/v1/alerts/ffffffffffffffff/ack",
        json!({"read_back": "x", "by": "d-0001"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = post(
        &s,
        "/api/v1/alerts/00000000000000ab/resolve",
        json!({"note": " ", "by": "d-0001"}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) = post(
        &s,
        "/api/v1/alerts/00000000000000ab/resolve",
        json!({"note": "called the patient; amlodipine increased", "by": "d-0001"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[test]
fn percentiles_are_nearest_rank() {
    use vigil_api::percentile;
    let v: Vec<i64> = (1..=10).map(|x| x * 10).collect();
    assert_eq!(percentile(&v, 0.5), Some(50));
    assert_eq!(percentile(&v, 0.9), Some(90));
    assert_eq!(percentile(&[7], 0.9), Some(7));
    assert_eq!(percentile(&[], 0.5), None);
    assert_eq!(percentile(&[1, 2, 3], 0.5), Some(2));
}

#[tokio::test]
async fn the_critical_value_register_says_who_did_what_when_in_json_and_csv() {
    let s = state().await;
    let t = |m: i64| -> DateTime<Utc> {
        "2026-11-22T00:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::TimeDelta::minutes(m)
    };
    let event = |change: &str, level: u8, at: DateTime<Utc>| vigil_store::AlertEventRecord {
        alert_id: "00000000000000cd".into(),
        patient_id: "p-000123".parse().unwrap(),
        family: "glucose_hypo".into(),
        opened_at: t(0),
        ordinal: 0,
        display: "2.6 mmol/L".into(),
        evidence: json!([]),
        change: change.into(),
        rule: "glucose_hypo_level2".into(),
        severity: "CRITICAL".into(),
        level,
        at,
        deliver_at: None,
    };
    s.store
        .keep_alert_events(&[event("opened", 1, t(0))], None, None, t(0))
        .await
        .unwrap();
    let first = s.store.alert_events_after(0, 10).await.unwrap()[0].0;
    s.store
        .record_deliveries(
            &[],
            &[(first, "d-0001".into(), "mqtt".into(), t(1))],
            &[],
            None,
            t(1),
        )
        .await
        .unwrap();
    for (action, note, m) in [
        ("ack", "2.6 mmol/L", 7),
        ("resolve", "glucose gel; recheck 4.9", 20),
    ] {
        s.store
            .keep_alert_action(&vigil_store::AlertAction {
                alert_id: "00000000000000cd".into(),
                action: action.into(),
                by: "d-0001".into(),
                note: note.into(),
                at: t(m),
            })
            .await
            .unwrap();
    }
    s.store
        .keep_alert_events(&[event("resolved", 1, t(20))], None, None, t(20))
        .await
        .unwrap();
    let (status, body) = get(&s, "/api/v1/critical-values").await;
    assert_eq!(status, StatusCode::OK);
    let v = json_of(&body);
    let e = &v["entries"][0];
    assert_eq!(e["value"], "2.6 mmol/L");
    assert_eq!(e["notified"], json!(["d-0001"]));
    assert_eq!(e["notified_at"], t(1).to_rfc3339());
    assert_eq!(e["acknowledged_by"], "d-0001");
    assert_eq!(e["read_back"], "2.6 mmol/L");
    assert_eq!(e["action"], "glucose gel; recheck 4.9");
    assert_eq!(e["closed_at"], t(20).to_rfc3339());
    assert_eq!(v["by_institution"][0]["median_seconds"], 420);
    assert_eq!(v["by_institution"][0]["p90_seconds"], 420);
    let (status, csv) = get(&s, "/api/v1/critical-values?format=csv").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        csv.starts_with("alert_id,patient_id,rule,value,detected_at"),
        "{csv}"
    );
    assert!(
        csv.contains(",\"glucose gel; recheck 4.9\"") || csv.contains(",glucose gel; recheck 4.9,"),
        "{csv}"
    );
    assert_eq!(
        get(&s, "/api/v1/critical-values?format=xml").await.0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn the_alert_stream_resumes_after_the_last_event_id_and_refuses_what_it_cannot_serve() {
    let s = state().await;
    let at: DateTime<Utc> = "2026-11-22T00:00:00Z".parse().unwrap();
    let event = vigil_store::AlertEventRecord {
        alert_id: "000000000000005e".into(),
        patient_id: "p-000123".parse().unwrap(),
        family: "spo2".into(),
        opened_at: at,
        ordinal: 0,
        display: "87 %".into(),
        evidence: json!([]),
        change: "opened".into(),
        rule: "spo2_low".into(),
        severity: "HIGH".into(),
        level: 1,
        at,
        deliver_at: None,
    };
    s.store
        .keep_alert_events(&[event], None, None, at)
        .await
        .unwrap();
    // Resuming from 0: the kept event comes first, with its id and name.
    let res = app(s.clone())
        .oneshot(
            Request::get("/api/v1/alerts/stream")
                .header("last-event-id", "0")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = res.into_body();
    let mut text = String::new();
    while !text.contains("\n\n") {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame())
            .await
            .expect("no event within 10 s")
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            text.push_str(std::str::from_utf8(&data).unwrap());
        }
    }
    assert!(text.contains("id: 1\n"), "{text}");
    assert!(text.contains("event: vigil.alert.v1\n"), "{text}");
    assert!(text.contains("\"alert_id\":\"000000000000005e\""), "{text}");
    // A Last-Event-ID that is no event id, and a doctor filter without a registry.
    for (uri, header) in [
        ("/api/v1/alerts/stream", Some("yesterday")),
        ("/api/v1/alerts/stream?doctor=d-0001", None),
    ] {
        let mut req = Request::get(uri);
        if let Some(h) = header {
            req = req.header("last-event-id", h);
        }
        let res = app(s.clone())
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{uri}");
    }
}

#[tokio::test]
async fn delivery_state_per_channel_and_operational_alerts_are_queryable() {
    let s = state().await;
    let at: DateTime<Utc> = "2026-11-22T00:00:00Z".parse().unwrap();
    let event = vigil_store::AlertEventRecord {
        alert_id: "00000000000000d1".into(),
        patient_id: "p-000123".parse().unwrap(),
        family: "spo2".into(),
        opened_at: at,
        ordinal: 0,
        display: "87 %".into(),
        evidence: json!([]),
        change: "opened".into(),
        rule: "spo2_low".into(),
        severity: "HIGH".into(),
        level: 1,
        at,
        deliver_at: None,
    };
    s.store
        .keep_alert_events(&[event], None, None, at)
        .await
        .unwrap();
    let (id, _) = s.store.alert_events_after(0, 1).await.unwrap()[0].clone();
    // A webhook delivery queued, failed once, then given up (falling back to MQTT).
    let key = (id, "d-0001", "webhook");
    s.store
        .queue_deliveries(
            "webhook",
            &[(id, "d-0001".into(), at)],
            "webhook",
            Some(id),
            at,
        )
        .await
        .unwrap();
    s.store
        .record_attempt(key, 1, Err(("HTTP 500: boom", at)), at)
        .await
        .unwrap();
    let (status, body) = get(&s, "/api/v1/alerts/00000000000000d1/deliveries").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v = json_of(&body);
    assert_eq!(v["deliveries"][0]["state"], "pending");
    assert_eq!(v["deliveries"][0]["attempts"], 1);
    assert_eq!(v["deliveries"][0]["last_error"], "HTTP 500: boom");
    assert_eq!(v["deliveries"][0]["due"], at.to_rfc3339());
    // The doctor's MQTT delivery of it had failed: the fallback queues it again.
    s.store
        .record_deliveries(&[], &[], &[(id, "d-0001".into(), "mqtt".into())], None, at)
        .await
        .unwrap();
    assert_eq!(
        s.store
            .give_up_delivery(key, 2, "timed out", &[("d-0001", "mqtt")], at)
            .await
            .unwrap(),
        Some(true)
    );
    let v = json_of(
        &get(&s, "/api/v1/alerts/00000000000000d1/deliveries")
            .await
            .1,
    );
    let rows: Vec<_> = v["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["channel"].clone(),
                r["state"].clone(),
                r["attempts"].clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            (json!("mqtt"), json!("held"), json!(0)),
            (json!("webhook"), json!("failed"), json!(2))
        ]
    );
    let (status, body) = get(&s, "/api/v1/ops/alerts").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v = json_of(&body);
    assert_eq!(v["ops_alerts"][0]["kind"], "webhook_failed");
    assert_eq!(v["ops_alerts"][0]["subject"], "d-0001");
    // A second give-up of the same delivery changes nothing: it is no longer pending.
    assert_eq!(
        s.store
            .give_up_delivery(key, 2, "timed out", &[("d-0001", "mqtt")], at)
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.store.ops_alerts(10).await.unwrap().len(), 1);
    assert_eq!(
        get(&s, "/api/v1/alerts/0000000000000bad/deliveries")
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

/// The example registry with a glucometer beside the cuff.
fn registry_with_glucometer() -> String {
    vigil_testkit::example_registry()
        + r#"
[[device]]
id = "glu-accu-77"
types = ["glucose"]
gateway = "gw-0042"
registered = "2026-11-01T00:00:00+08:00"

[[assignment]]
device = "glu-accu-77"
patient = "p-000123"
from = "2026-11-01T00:00:00+08:00"
"#
}

#[tokio::test]
async fn the_summary_and_the_overview_count_readings_committed_by_the_pipeline() {
    let store = SqliteStore::in_memory().await.unwrap();
    let registry = Arc::new(Registry::parse(&registry_with_glucometer()).unwrap());
    let now: DateTime<Utc> = "2026-11-22T02:00:00Z".parse().unwrap(); // 10:00 in Shanghai
    // Three days of home readings: BP 130/80, 140/86, 126/78 (mean 132/81: controlled),
    // fasting glucose 6.2, 7.4, 6.6 (mean 6.7: controlled), a post-meal 11.2, and a LO.
    let reading = |device: &str, kind: &str, day: u32, values: Value, unit: &str| {
        json!({"device_id": device, "type": kind, "time": format!("2026-11-{day:02}T07:30:00+08:00"),
               "unit": unit, "values": values})
    };
    let readings = vec![
        reading(
            "bpm-omron-3f9a21",
            "bp",
            19,
            json!({"systolic": 130, "diastolic": 80}),
            "mm[Hg]",
        ),
        reading(
            "bpm-omron-3f9a21",
            "bp",
            20,
            json!({"systolic": 140, "diastolic": 86}),
            "mm[Hg]",
        ),
        reading(
            "bpm-omron-3f9a21",
            "bp",
            21,
            json!({"systolic": 126, "diastolic": 78}),
            "mm[Hg]",
        ),
        reading(
            "glu-accu-77",
            "glucose",
            19,
            json!({"value": 6.2, "context": "fasting"}),
            "mmol/L",
        ),
        reading(
            "glu-accu-77",
            "glucose",
            20,
            json!({"value": 7.4, "context": "fasting"}),
            "mmol/L",
        ),
        reading(
            "glu-accu-77",
            "glucose",
            21,
            json!({"value": 6.6, "context": "fasting"}),
            "mmol/L",
        ),
        reading(
            "glu-accu-77",
            "glucose",
            17,
            json!({"value": 11.2, "context": "postprandial"}),
            "mmol/L",
        ),
        reading(
            "glu-accu-77",
            "glucose",
            18,
            json!({"value": null, "flag": "LO"}),
            "mmol/L",
        ),
    ];
    let payload = serde_json::to_vec(
        &json!({"schema": "vigil.readings.v1", "gateway_id": "gw-0042",
        "batch_seq": 1, "sent_at": "2026-11-22T09:59:00+08:00", "readings": readings}),
    )
    .unwrap();
    let commit = prepare(
        &GatewayId::parse("gw-0042").unwrap(),
        &payload,
        now,
        &registry,
    )
    .unwrap();
    let outcomes = store.commit(&[commit]).await.unwrap();
    assert!(
        format!("{outcomes:?}").contains("stored: 8"),
        "{outcomes:?}"
    );
    let r = registry.clone();
    let s = AppState {
        registry: Some(Arc::new(move || r.clone())),
        ..AppState::new(store, Arc::new(vigil_model::clock::ManualClock::new(now)))
    };
    let (status, body) = get(&s, "/api/v1/patients/p-000123/summary").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v = json_of(&body);
    assert_eq!(v["bp_control"]["readings"], 3);
    assert_eq!(v["bp_control"]["mean_systolic"], 132);
    assert_eq!(v["bp_control"]["mean_diastolic"], 81);
    assert_eq!(v["bp_control"]["controlled"], true);
    // 5 glucose readings: 3 in range, 1 above (11.2), 1 below (LO).
    assert_eq!(v["glucose_tir"]["readings"], 5, "{v}");
    assert_eq!(v["glucose_tir"]["in_range_pct"], 60);
    assert_eq!(v["glucose_tir"]["below_pct"], 20);
    assert_eq!(v["glucose_tir"]["above_pct"], 20);
    // The overview: p-000123 (hypertension, type 2 diabetes) controlled on both counts.
    let (status, body) = get(&s, "/api/v1/overview?institution=chc-qiaokou").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v = json_of(&body);
    let total = &v["total"];
    assert_eq!(
        total["bp_control"],
        json!({"numerator": 1, "denominator": 1, "percent": 100.0})
    );
    assert_eq!(
        total["glucose_control"],
        json!({"numerator": 1, "denominator": 1, "percent": 100.0})
    );
    assert_eq!(total["adherence"]["percent"], 100.0);
    let inst = &v["institutions"][0];
    assert_eq!(inst["id"], "chc-qiaokou");
    // Both devices reported; the gateway's last envelope came just now.
    assert_eq!(
        inst["devices_reporting"],
        json!({"numerator": 2, "denominator": 2, "percent": 100.0})
    );
    assert_eq!(inst["gateways_online"]["percent"], 100.0);
    // In total too.
    assert_eq!(total["devices_reporting"], inst["devices_reporting"]);
    assert_eq!(total["gateways_online"], inst["gateways_online"]);
    // No alert yet: nothing counted, no time to acknowledge.
    assert_eq!(total["alerts"]["CRITICAL"], 0);
    assert!(total["time_to_ack"].is_null(), "{total}");

    // Alerts of the last week, and one older: a CRITICAL acknowledged by Dr. Wang after
    // 5 minutes, a HIGH by Dr. Li after 12, a HIGH still unacknowledged, a MEDIUM (not
    // in the time to acknowledge), and a CRITICAL ten days old (outside the window).
    let opened = |id: &str, severity: &str, minutes_ago: i64| vigil_store::AlertEventRecord {
        alert_id: id.into(),
        patient_id: "p-000123".parse().unwrap(),
        family: "f".into(),
        opened_at: now - chrono::TimeDelta::minutes(minutes_ago),
        ordinal: 0,
        display: "x".into(),
        evidence: json!([]),
        change: "opened".into(),
        rule: "r".into(),
        severity: severity.into(),
        level: 1,
        at: now - chrono::TimeDelta::minutes(minutes_ago),
        deliver_at: None,
    };
    s.store
        .keep_alert_events(
            &[
                opened("00000000000000c1", "CRITICAL", 120),
                opened("00000000000000b1", "HIGH", 60),
                opened("00000000000000b2", "HIGH", 30),
                opened("00000000000000d1", "MEDIUM", 20),
                opened("00000000000000c0", "CRITICAL", 10 * 24 * 60),
            ],
            None,
            None,
            now,
        )
        .await
        .unwrap();
    for (id, by, after) in [
        ("00000000000000c1", "d-0001", 5),
        ("00000000000000b1", "d-0100", 12),
    ] {
        let opened_at = if id.ends_with("c1") { 120 } else { 60 };
        s.store
            .keep_alert_action(&vigil_store::AlertAction {
                alert_id: id.into(),
                action: "ack".into(),
                by: by.into(),
                note: "x".into(),
                at: now - chrono::TimeDelta::minutes(opened_at - after),
            })
            .await
            .unwrap();
    }
    let v = json_of(&get(&s, "/api/v1/overview?institution=chc-qiaokou").await.1);
    let counts = json!({"CRITICAL": 1, "HIGH": 2, "MEDIUM": 1, "LOW": 0});
    assert_eq!(v["total"]["alerts"], counts, "{v}");
    assert_eq!(v["institutions"][0]["alerts"], counts);
    // CRITICAL and HIGH only: 300 s and 720 s (nearest rank), one still open.
    let ack =
        json!({"acknowledged": 2, "unacknowledged": 1, "median_seconds": 300, "p90_seconds": 720});
    assert_eq!(v["total"]["time_to_ack"], ack, "{v}");
    assert_eq!(v["institutions"][0]["time_to_ack"], ack);
    // Per doctor, who acknowledged what.
    let doctors: Vec<(String, i64)> = v["doctors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["doctor_id"].as_str().unwrap().to_owned(),
                d["time_to_ack"]["median_seconds"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        doctors,
        [("d-0001".to_owned(), 300), ("d-0100".to_owned(), 720)]
    );
}

#[tokio::test]
async fn readings_come_newest_first_when_asked() {
    let s = state().await;
    let (status, body) = get(
        &s,
        "/api/v1/patients/p-000123/readings?type=bp&order=desc&limit=1",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let v = json_of(&body);
    // 07:10 (142) and 07:20 (150) are stored (400 is quarantined): the latest is 150.
    assert_eq!(v["readings"].as_array().unwrap().len(), 1);
    assert_eq!(v["readings"][0]["canonical"]["systolic_mmhg"], json!(150));
    let (_, body) = get(&s, "/api/v1/patients/p-000123/readings?type=bp&limit=1").await;
    assert_eq!(
        json_of(&body)["readings"][0]["canonical"]["systolic_mmhg"],
        json!(142)
    );
    let (status, body) = get(&s, "/api/v1/patients/p-000123/readings?order=sideways").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("asc (oldest first) or desc"), "{body}");
}
