//! The rule engine inside `vigil serve`, against a real Mosquitto: the ingester is
//! killed (SIGKILL) between an index blood-pressure session and its confirmation;
//! after the restart the confirmation still produces exactly one `bp_crisis` episode
//! (clinical rules §1.1), and nothing is raised twice. And a CRITICAL alert reaches
//! the responsible doctor on every channel: the MQTT topic, a signed webhook and the
//! dashboard's stream, each client deduplicating by `alert_id`.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

mod common;
use common::{http_addr, spawn_serve};

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use rumqttc::QoS;
use serde_json::json;
use vigil_model::clock::{Clock, SystemClock};
use vigil_store::SqliteStore;
use vigil_testkit::{
    Mosquitto, Reply, WebhookReceiver, eventually, example_registry, http_get_any,
};

/// A counter of `/metrics`, 0 when absent or not served yet.
fn metric(http: &str, name: &str) -> u64 {
    let (_, text) = http_get_any(http, "/metrics");
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Opens the alert event stream (HTTP/1.0, so the body arrives as sent, unchunked) and
/// returns once the server answered with its headers.
fn sse_open(
    http: &str,
    path: &str,
    last_event_id: Option<&str>,
) -> std::io::BufReader<std::net::TcpStream> {
    use std::io::{BufRead, Write};
    let mut conn = std::net::TcpStream::connect(http).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let resume = last_event_id
        .map(|id| format!("Last-Event-ID: {id}\r\n"))
        .unwrap_or_default();
    write!(
        conn,
        "GET {path} HTTP/1.0\r\nHost: {http}\r\nAccept: text/event-stream\r\n{resume}\r\n"
    )
    .unwrap();
    let mut r = std::io::BufReader::new(conn);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line.trim().is_empty() {
            break;
        }
        head.push_str(&line);
    }
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "{head}"
    );
    assert!(head.to_lowercase().contains("text/event-stream"), "{head}");
    r
}

/// The next event of a stream: (id, event name, data); comments (keep-alives) skipped.
fn sse_next(r: &mut std::io::BufReader<std::net::TcpStream>) -> (String, String, String) {
    use std::io::BufRead;
    let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "the stream ended");
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if !data.is_empty() {
                return (id, event, data);
            }
            continue;
        }
        if let Some(v) = line.strip_prefix("id:") {
            id = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("event:") {
            event = v.trim().to_owned();
        } else if let Some(v) = line.strip_prefix("data:") {
            data.push_str(v.strip_prefix(' ').unwrap_or(v));
        }
    }
}

fn wait(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crisis_confirmed_after_a_restart_is_raised_exactly_once() {
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("registry.toml"), example_registry()).unwrap();
    std::fs::write(
        dir.path().join("vigil.toml"),
        format!(
            "data_dir = {:?}\nregistry = {:?}\n[broker]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"rules-restart\"\n[http]\nlisten = \"127.0.0.1:0\"\nauth = false\n",
            dir.path().join("data"),
            dir.path().join("registry.toml"),
            broker.port
        ),
    )
    .unwrap();
    let (client, _) = vigil_testkit::gateway(broker.port, "rules-restart-gateway");
    // p-000123 (hypertension) measures with bpm-omron-3f9a21 on gw-0042.
    let now = SystemClock.now();
    let session = |batch: u64, first: chrono::DateTime<chrono::Utc>, sys: u32| {
        let readings: Vec<_> = (0..2)
            .map(|i| {
                json!({"device_id": "bpm-omron-3f9a21", "type": "bp", "unit": "mm[Hg]",
                "time": (first + TimeDelta::seconds(70 * i)).to_rfc3339(),
                "values": {"systolic": sys + i as u32, "diastolic": 104}})
            })
            .collect();
        serde_json::to_vec(
            &json!({"schema": "vigil.readings.v1", "gateway_id": "gw-0042",
            "batch_seq": batch, "sent_at": now.to_rfc3339(), "readings": readings}),
        )
        .unwrap()
    };
    let topic = "vigil/v1/gw/gw-0042/readings";

    // The index session (186/104, no symptom): a confirmation is awaited.
    let mut serve = spawn_serve(dir.path(), "serve-1.log");
    let http = http_addr(&dir.path().join("serve-1.log"));
    wait("the subscription", || {
        http_get_any(&http, "/readyz")
            .1
            .contains("\"mqtt_subscribed\":true")
    });
    client
        .publish(
            topic,
            QoS::AtLeastOnce,
            false,
            session(1, now - TimeDelta::minutes(20), 186),
        )
        .await
        .unwrap();
    wait("the index session evaluated", || {
        metric(&http, "vigil_rule_readings_evaluated_total") == 2
    });
    assert_eq!(metric(&http, "vigil_alerts_opened_total"), 0);
    serve.kill().unwrap();
    serve.wait().unwrap();

    // Restarted, the engine rebuilds its pending confirmation from the store; the
    // repeat session 10 minutes after the index confirms the crisis.
    let mut serve = spawn_serve(dir.path(), "serve-2.log");
    let http = http_addr(&dir.path().join("serve-2.log"));
    wait("the subscription", || {
        http_get_any(&http, "/readyz")
            .1
            .contains("\"mqtt_subscribed\":true")
    });
    client
        .publish(
            topic,
            QoS::AtLeastOnce,
            false,
            session(2, now - TimeDelta::minutes(10), 184),
        )
        .await
        .unwrap();
    wait("the confirmation evaluated", || {
        metric(&http, "vigil_rule_readings_evaluated_total") == 2
    });
    wait("the crisis raised", || {
        metric(&http, "vigil_alerts_opened_total") == 1
    });
    serve.kill().unwrap();
    serve.wait().unwrap();

    // A third start evaluates nothing again and raises nothing twice.
    let mut serve = spawn_serve(dir.path(), "serve-3.log");
    let http = http_addr(&dir.path().join("serve-3.log"));
    wait("the subscription", || {
        http_get_any(&http, "/readyz")
            .1
            .contains("\"mqtt_subscribed\":true")
    });
    let store = SqliteStore::open(&dir.path().join("data").join("clinical.db"))
        .await
        .unwrap();
    let events = store.alert_events(None).await.unwrap();
    let opened: Vec<_> = events.iter().filter(|e| e.change == "opened").collect();
    assert_eq!(opened.len(), 1, "{events:#?}");
    assert_eq!(opened[0].rule, "bp_crisis");
    assert_eq!(opened[0].severity, "CRITICAL");
    // The lasting identity: patient, family and opening instant.
    assert_eq!(
        opened[0].alert_id,
        vigil_ingest::rules::alert_id(&opened[0].patient_id, "bp_crisis", opened[0].opened_at, 0)
    );
    assert!(
        opened[0].display.ends_with(" mmHg"),
        "{}",
        opened[0].display
    );
    // The index session's two readings (rebuilt after the restart) and the first of
    // the confirming session.
    assert_eq!(opened[0].evidence.as_array().unwrap().len(), 3);
    assert!(!events.iter().any(|e| e.rule == "bp_crisis_unconfirmed"));
    let (_, body) = http_get_any(&http, "/api/v1/alert-events?patient=p-000123");
    assert!(body.contains("\"rule\":\"bp_crisis\""), "{body}");
    serve.kill().unwrap();
    serve.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crisis_reaches_the_responsible_doctor_over_mqtt_a_signed_webhook_and_the_dashboard_stream()
 {
    use rumqttc::{Event, MqttOptions, Packet};
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    // Dr. Wang's webhook is a receiver this test runs; it checks each signature with
    // the secret `vigil serve` reads from its file.
    let hooks = WebhookReceiver::start(|_| Reply::Ok).await;
    std::fs::write(
        dir.path().join("registry.toml"),
        example_registry().replace("https://hooks.example.invalid/d-0001", &hooks.url),
    )
    .unwrap();
    std::fs::write(dir.path().join("webhook.secret"), "serve-secret\n").unwrap();
    std::fs::write(
        dir.path().join("vigil.toml"),
        format!(
            "data_dir = {:?}\nregistry = {:?}\n[broker]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"delivery-test\"\n[http]\nlisten = \"127.0.0.1:0\"\nauth = false\n[webhook]\nsecret_file = {:?}\n",
            dir.path().join("data"),
            dir.path().join("registry.toml"),
            broker.port,
            dir.path().join("webhook.secret"),
        ),
    )
    .unwrap();
    // Dr. Wang (d-0001) is p-000123's responsible doctor; their client subscribes.
    let mut opts = MqttOptions::new("doctor-d-0001", "127.0.0.1", broker.port);
    opts.set_max_packet_size(1024 * 1024, 64 * 1024);
    let (doctor, mut events) = rumqttc::AsyncClient::new(opts, 16);
    doctor
        .subscribe("vigil/v1/doctor/d-0001/alerts", QoS::AtLeastOnce)
        .await
        .unwrap();
    let inbox: Arc<Mutex<Vec<rumqttc::Publish>>> = Arc::default();
    let i = inbox.clone();
    let _client = tokio::spawn(async move {
        loop {
            if let Ok(Event::Incoming(Packet::Publish(p))) = events.poll().await {
                i.lock().unwrap().push(p);
            }
        }
    });
    let mut serve = spawn_serve(dir.path(), "serve.log");
    let http = http_addr(&dir.path().join("serve.log"));
    wait("the subscription", || {
        http_get_any(&http, "/readyz")
            .1
            .contains("\"mqtt_subscribed\":true")
    });
    // The doctor's dashboard has the live stream open too.
    let mut sse = sse_open(&http, "/api/v1/alerts/stream?doctor=d-0001", None);
    // One reading at crisis level with a red-flag symptom: CRITICAL at once.
    let now = SystemClock.now();
    let envelope = serde_json::to_vec(&json!({"schema": "vigil.readings.v1",
        "gateway_id": "gw-0042", "batch_seq": 1, "sent_at": now.to_rfc3339(),
        "readings": [{"device_id": "bpm-omron-3f9a21", "type": "bp", "unit": "mm[Hg]",
            "time": (now - TimeDelta::minutes(1)).to_rfc3339(), "symptoms": ["chest_tightness"],
            "values": {"systolic": 192, "diastolic": 112, "pulse": 88}}]}))
    .unwrap();
    let (client, _) = vigil_testkit::gateway(broker.port, "delivery-gateway");
    client
        .publish(
            "vigil/v1/gw/gw-0042/readings",
            QoS::AtLeastOnce,
            false,
            envelope,
        )
        .await
        .unwrap();
    eventually(
        "the alert on the doctor's topic",
        Duration::from_secs(30),
        || !inbox.lock().unwrap().is_empty(),
    )
    .await;
    let publish = inbox.lock().unwrap()[0].clone();
    assert_eq!(publish.topic, "vigil/v1/doctor/d-0001/alerts");
    let alert = vigil_wire::alert::decode_alert(&publish.payload).unwrap();
    assert_eq!(alert.rule, "bp_crisis");
    assert_eq!(alert.severity, vigil_model::vocab::Severity::Critical);
    assert_eq!(alert.display, "192/112 mmHg");
    assert_eq!(alert.escalation_level, 1);
    assert_eq!(alert.evidence.len(), 1);
    assert_eq!(alert.patient_id.as_str(), "p-000123");
    assert_eq!(
        alert.ack_url,
        format!("/api/v1/alerts/{}/ack", alert.alert_id)
    );
    // The same event on the dashboard's stream, and again after a reconnect that
    // resumes before it (at least once; the client dedups by alert_id and event).
    let (id, name, data) = sse_next(&mut sse);
    assert_eq!(name, "vigil.alert.v1");
    let streamed = vigil_wire::alert::decode_alert(data.as_bytes()).unwrap();
    assert_eq!(streamed, alert);
    let before = (id.parse::<i64>().unwrap() - 1).to_string();
    let mut again = sse_open(&http, "/api/v1/alerts/stream?doctor=d-0001", Some(&before));
    let (id2, _, data2) = sse_next(&mut again);
    assert_eq!((&id2, &data2), (&id, &data));
    // And on the webhook, signed, the same event.
    eventually("the webhook post", Duration::from_secs(30), || {
        !hooks.received.lock().unwrap().is_empty()
    })
    .await;
    // A malformed doctor id is refused with the reason.
    let (status, body) = http_get_any(&http, "/api/v1/alerts/stream?doctor=not%20an%20id");
    assert_eq!(status, 400, "{body}");
    // The delivery is recorded once the broker acknowledged it.
    let store = SqliteStore::open(&dir.path().join("data").join("clinical.db"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = store.alert_events_after(0, 10).await.unwrap();
        let (id, _) = &events[0];
        let d = store.deliveries(*id).await.unwrap();
        if d.len() == 3 && d.iter().all(|r| r.2 == "delivered") {
            // One row per channel: MQTT (after the PUBACK), the stream, the webhook
            // (after the receiver's 2xx).
            assert_eq!(
                d.iter()
                    .map(|r| (r.0.as_str(), r.1.as_str()))
                    .collect::<Vec<_>>(),
                [("d-0001", "mqtt"), ("d-0001", "sse"), ("d-0001", "webhook")]
            );
            break;
        }
        assert!(Instant::now() < deadline, "no delivery recorded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The delivery and its latency (receipt of the reading → PUBACK) on /metrics.
    wait("the delivery on /metrics", || {
        metric(&http, "vigil_alert_deliveries_total") == 1
    });
    assert_eq!(metric(&http, "vigil_alert_delivery_seconds_count"), 1);
    let (_, text) = http_get_any(&http, "/metrics");
    assert!(
        text.contains("vigil_alert_delivery_seconds_bucket{le=\"+Inf\"} 1"),
        "{text}"
    );
    wait("the webhook delivery on /metrics", || {
        metric(&http, "vigil_webhook_deliveries_total") == 1
    });
    // Each client deduplicates by alert_id and counts what came more than once.
    // The receiver's key, as its administrator gets it.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["webhook-key", "--config"])
        .arg(dir.path().join("vigil.toml"))
        .arg("d-0001")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(key.len(), 64, "{key}");
    let posts = hooks.hooks();
    assert!(posts.iter().all(|h| h.signature_valid(&key)), "{posts:?}");
    let channels: [(&str, Vec<String>); 3] = [
        (
            "mqtt",
            inbox
                .lock()
                .unwrap()
                .iter()
                .map(|p| alert_id_of(&p.payload))
                .collect(),
        ),
        (
            "webhook",
            posts.iter().map(|h| alert_id_of(&h.body)).collect(),
        ),
        (
            "sse",
            [data, data2]
                .iter()
                .map(|d| alert_id_of(d.as_bytes()))
                .collect(),
        ),
    ];
    for (channel, ids) in channels {
        let distinct: std::collections::BTreeSet<_> = ids.iter().collect();
        eprintln!(
            "{channel}: {} messages, {} alerts, {} duplicates",
            ids.len(),
            distinct.len(),
            ids.len() - distinct.len()
        );
        assert_eq!(
            distinct.into_iter().collect::<Vec<_>>(),
            [&alert.alert_id.to_string()],
            "{channel}"
        );
    }
    serve.kill().unwrap();
    serve.wait().unwrap();
}

fn alert_id_of(payload: &[u8]) -> String {
    vigil_wire::alert::decode_alert(payload)
        .unwrap()
        .alert_id
        .to_string()
}
