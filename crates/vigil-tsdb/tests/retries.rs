//! How the sink treats a server that fails: 5xx and 429 are retried (honouring
//! `Retry-After`), an authorisation error is retried and never skips data. The server
//! is a small HTTP server of the test's own that answers from a script.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde_json::json;
use vigil_model::clock::SystemClock;
use vigil_store::{EnvelopeCommit, Item, SqliteStore};
use vigil_testkit::eventually;
use vigil_tsdb::{Api, Sink, SinkConfig};

/// Answers each request with the next (status, Retry-After) of the script, then 204;
/// records when each request came.
async fn scripted(script: Vec<(u16, Option<&'static str>)>) -> (String, Arc<Mutex<Vec<Instant>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(script.into_iter()));
    let s = seen.clone();
    let app = axum::Router::new().route(
        "/api/v2/write",
        post(move |_body: axum::body::Bytes| {
            let s = s.clone();
            let script = script.clone();
            async move {
                s.lock().unwrap().push(Instant::now());
                let mut headers = HeaderMap::new();
                match script.lock().unwrap().next() {
                    Some((status, retry_after)) => {
                        if let Some(r) = retry_after {
                            headers.insert("Retry-After", r.parse().unwrap());
                        }
                        (
                            StatusCode::from_u16(status).unwrap(),
                            headers,
                            "scripted failure",
                        )
                    }
                    None => (StatusCode::NO_CONTENT, headers, ""),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

/// A store with three committed weights.
async fn store() -> SqliteStore {
    let store = SqliteStore::in_memory().await.unwrap();
    let received: DateTime<Utc> = "2026-11-22T00:00:10Z".parse().unwrap();
    let readings: Vec<_> = (0..3)
        .map(|i| json!({"device_id": "scale-1", "type": "weight", "unit": "kg",
                        "time": format!("2026-11-22T00:00:0{i}Z"), "values": {"value": 70.0 + f64::from(i)}}))
        .collect();
    let payload = serde_json::to_vec(&json!({"schema": "vigil.readings.v1", "gateway_id": "gw-1",
        "batch_seq": 1, "sent_at": "2026-11-22T00:00:09Z", "readings": readings}))
    .unwrap();
    let env = vigil_wire::decode_envelope(&payload).unwrap();
    let items = env
        .readings
        .into_iter()
        .map(|r| Item::Store {
            reading: Box::new(
                vigil_rules::validate::validate(
                    r.unwrap(),
                    &vigil_rules::validate::Context::received_at(received),
                )
                .unwrap(),
            ),
            patient: "p-1".parse().unwrap(),
        })
        .collect();
    store
        .commit(&[EnvelopeCommit {
            gateway_id: "gw-1".parse().unwrap(),
            batch_seq: 1,
            received,
            items,
        }])
        .await
        .unwrap();
    store
}

fn config(url: String) -> SinkConfig {
    let mut c = SinkConfig::new(
        url,
        Api::V2 {
            org: "o".into(),
            bucket: "b".into(),
        },
    );
    c.linger = Duration::from_millis(1);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_and_throttling_are_retried_and_retry_after_is_honoured() {
    let (url, seen) = scripted(vec![(503, None), (429, Some("1")), (500, None)]).await;
    let store = store().await;
    let sink = Sink::start(
        config(url),
        store.clone(),
        Arc::new(|_| None),
        Arc::new(SystemClock),
        None,
    )
    .unwrap();
    let stats = sink.stats.clone();
    eventually("the write to go through", Duration::from_secs(20), || {
        stats.cursor.load(Ordering::Relaxed) == 3
    })
    .await;
    let times = seen.lock().unwrap().clone();
    assert_eq!(times.len(), 4);
    assert_eq!(stats.retries.load(Ordering::Relaxed), 3);
    assert_eq!(stats.points_written.load(Ordering::Relaxed), 3);
    assert_eq!(stats.rejected_points.load(Ordering::Relaxed), 0);
    // The 429 said one second: the next attempt waited for it.
    assert!(
        times[2] - times[1] >= Duration::from_secs(1),
        "{:?}",
        times[2] - times[1]
    );
    assert!(stats.healthy.load(Ordering::Relaxed));
    sink.shutdown().await;
    assert_eq!(store.sink_cursor("tsdb").await.unwrap(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_authorisation_is_retried_and_never_skips_a_reading() {
    let (url, seen) = scripted(vec![(401, None); 100]).await;
    let store = store().await;
    let sink = Sink::start(
        config(url),
        store.clone(),
        Arc::new(|_| None),
        Arc::new(SystemClock),
        None,
    )
    .unwrap();
    let stats = sink.stats.clone();
    eventually("three refused attempts", Duration::from_secs(20), || {
        seen.lock().unwrap().len() >= 3
    })
    .await;
    assert_eq!(stats.cursor.load(Ordering::Relaxed), 0);
    assert_eq!(stats.rejected_points.load(Ordering::Relaxed), 0);
    assert!(!stats.healthy.load(Ordering::Relaxed));
    assert!(stats.last_error.lock().unwrap().starts_with("401"));
    sink.shutdown().await;
    assert_eq!(store.sink_cursor("tsdb").await.unwrap(), 0);
    assert!(store.sink_rejects("tsdb").await.unwrap().is_empty());
}
