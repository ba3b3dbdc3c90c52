//! `vigil demo` as a user runs it: the real binary, its embedded broker, its simulated
//! fleet over real MQTT, its HTTP API; stopped with Ctrl-C (SIGINT), resumed, and with
//! its default ports taken.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rumqttc::{Event, MqttOptions, Packet, QoS};
use vigil_store::SqliteStore;
use vigil_testkit::http_get;

/// A running demo and its stdout, line by line.
struct Demo {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Demo {
    fn start(dir: &Path, extra: &[&str]) -> Demo {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
            .arg("demo")
            .arg("--data-dir")
            .arg(dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Demo {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one satisfies `cond`; returns it.
    fn until(&mut self, what: &str, timeout: Duration, cond: impl Fn(&str) -> bool) -> String {
        self.until_count(what, 1, timeout, &cond);
        self.seen.iter().find(|l| cond(l)).unwrap().clone()
    }

    /// Reads lines until `n` lines seen satisfy `cond`.
    fn until_count(
        &mut self,
        what: &str,
        n: usize,
        timeout: Duration,
        cond: impl Fn(&str) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        while self.seen.iter().filter(|l| cond(l)).count() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(_) => panic!(
                    "timed out waiting for {what}; output so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Collects the rest of the output and the exit status.
    fn finish(mut self) -> (std::process::ExitStatus, Vec<String>) {
        let status = self.child.wait().unwrap();
        self.seen.extend(self.lines.iter());
        (status, std::mem::take(&mut self.seen))
    }

    fn interrupt(&self) {
        let ok = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    fn addresses(&mut self) -> (String, String) {
        let http = self.until("the HTTP address", Duration::from_secs(60), |l| {
            l.trim_start().starts_with("HTTP  http://")
        });
        let mqtt = self.until("the MQTT address", Duration::from_secs(5), |l| {
            l.trim_start().starts_with("MQTT  mqtt://")
        });
        let http = http.trim().trim_start_matches("HTTP  http://").to_owned();
        let mqtt = mqtt
            .trim()
            .trim_start_matches("MQTT  mqtt://")
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned();
        (http, mqtt)
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// "accounting: published N = stored S + quarantined Q + duplicates D: ..." → numbers.
fn accounting(lines: &[String]) -> [u64; 4] {
    let line = lines
        .iter()
        .find(|l| l.starts_with("accounting:"))
        .unwrap_or_else(|| panic!("no accounting line in:\n{}", lines.join("\n")));
    assert!(line.ends_with("every reading accounted for"), "{line}");
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap())
        .collect();
    [numbers[0], numbers[1], numbers[2], numbers[3]]
}

fn expected_line(lines: &[String]) -> [u64; 3] {
    let line = lines
        .iter()
        .find(|l| l.starts_with("expected by the simulator:"))
        .unwrap();
    assert!(line.ends_with("the same"), "{line}");
    let n: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap())
        .collect();
    [n[0], n[1], n[2]]
}

/// The count of a Prometheus sample, 0 when absent.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_shows_its_addresses_first_streams_over_mqtt_and_accounts_for_every_reading() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo-data");
    let mut demo = Demo::start(
        &data,
        &[
            "--http",
            "127.0.0.1:0",
            "--broker",
            "127.0.0.1:0",
            "--speed",
            "3600",
            "--status-every",
            "1",
        ],
    );
    let (http, mqtt) = demo.addresses();
    // The addresses come first: only the title precedes them.
    let first = demo
        .seen
        .iter()
        .position(|l| l.trim_start().starts_with("HTTP  http://"))
        .unwrap();
    assert!(first <= 2, "{:#?}", demo.seen);

    // Any MQTT client on the printed address sees the fleet's envelopes.
    let (host, port) = mqtt.rsplit_once(':').unwrap();
    let mut opts = MqttOptions::new("demo-test-watcher", host, port.parse().unwrap());
    opts.set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 64);
    client
        .subscribe("vigil/v1/gw/+/readings", QoS::AtMostOnce)
        .await
        .unwrap();
    // A doctor's client, on the printed address, without credentials: the alerts.
    client
        .subscribe("vigil/v1/doctor/+/alerts", QoS::AtMostOnce)
        .await
        .unwrap();
    let (envelope, alert) = tokio::time::timeout(Duration::from_secs(60), async {
        let (mut envelope, mut alert) = (None, None);
        while envelope.is_none() || alert.is_none() {
            if let Ok(Event::Incoming(Packet::Publish(p))) = eventloop.poll().await {
                if p.topic.ends_with("/readings") {
                    envelope = Some(p);
                } else if p.topic.ends_with("/alerts") {
                    alert = Some(p);
                }
            }
        }
        (envelope.unwrap(), alert.unwrap())
    })
    .await
    .expect("no envelope and alert seen on the demo broker within 60 s");
    let decoded = vigil_wire::decode_envelope(&envelope.payload).unwrap();
    assert!(decoded.all_ok());
    let alert = vigil_wire::alert::decode_alert(&alert.payload).unwrap();
    assert!(!alert.display.is_empty());

    // Incidents happen from the start and keep happening: wait until every kind of bad
    // reading has been quarantined (counting incident lines is not enough: other lines
    // of the same shape, such as alerts, come more often at some hours than others).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let missing: Vec<&str> = [
            "unit_suspect",
            "out_of_range",
            "invalid_timestamp",
            "low_signal_quality",
        ]
        .into_iter()
        .filter(|r| {
            !http_get(&http, &format!("/api/v1/quarantine?reason={r}&limit=1"))
                .contains("\"reason\"")
        })
        .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no {missing:?} quarantined within 90 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A line of counts comes every second.
    demo.until("a line of counts", Duration::from_secs(10), |l| {
        l.starts_with("[sim") && l.contains("published") && l.contains("stored")
    });

    // The API serves what is being stored.
    let metrics = http_get(&http, "/metrics");
    assert!(
        metric(&metrics, "vigil_readings_received_total") > 0,
        "{metrics}"
    );
    let readings = http_get(&http, "/api/v1/patients/p-0001/readings");
    assert!(readings.contains("\"patient_id\":\"p-0001\""), "{readings}");
    let quarantine = http_get(&http, "/api/v1/quarantine");
    assert!(quarantine.contains("\"reason\""), "{quarantine}");

    // Ctrl-C: a clean stop that commits everything published.
    demo.interrupt();
    let (status, lines) = demo.finish();
    assert!(status.success(), "{status:?}\n{}", lines.join("\n"));
    let [published, stored, quarantined, duplicates] = accounting(&lines);
    assert_eq!(published, stored + quarantined + duplicates);
    assert_eq!(expected_line(&lines), [stored, quarantined, duplicates]);
    assert!(stored > 0 && quarantined > 0, "{lines:#?}");
    // The rule engine raised alerts from the fleet's incidents.
    let last_counts = lines
        .iter()
        .rev()
        .find(|l| l.contains("| alerts opened "))
        .unwrap();
    let alerts: u64 = last_counts.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(alerts > 0, "{last_counts}");

    // The store holds exactly that, with the reasons of every kind of bad reading.
    let store = SqliteStore::open(&data.join("clinical.db")).await.unwrap();
    let totals = store.totals().await.unwrap();
    assert_eq!(
        (totals.stored, totals.quarantined, totals.duplicates),
        (stored, quarantined, duplicates)
    );
    let reasons: Vec<String> = store
        .quarantined_by_reason()
        .await
        .unwrap()
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    for reason in [
        "unit_suspect",
        "out_of_range",
        "invalid_timestamp",
        "low_signal_quality",
    ] {
        assert!(
            reasons.iter().any(|r| r == reason),
            "no {reason}: {reasons:?}"
        );
    }
    let first_envelopes = totals.envelopes;
    store.close().await;

    // A second run on the same directory resumes: its envelopes are new envelopes (none
    // mistaken for a redelivery of the first run's), and it stops by itself.
    let demo = Demo::start(
        &data,
        &[
            "--http",
            "127.0.0.1:0",
            "--broker",
            "127.0.0.1:0",
            "--speed",
            "3600",
            "--duration",
            "3",
        ],
    );
    let (status, lines) = demo.finish();
    assert!(status.success(), "{}", lines.join("\n"));
    let [published2, stored2, quarantined2, duplicates2] = accounting(&lines);
    assert!(published2 > 0, "{lines:#?}");
    let store = SqliteStore::open(&data.join("clinical.db")).await.unwrap();
    let totals = store.totals().await.unwrap();
    assert_eq!(
        (totals.stored, totals.quarantined, totals.duplicates),
        (
            stored + stored2,
            quarantined + quarantined2,
            duplicates + duplicates2
        )
    );
    assert!(totals.envelopes > first_envelopes);
}

/// A doctor's client on `mqtt` (host:port) subscribed to every doctor's alert topic;
/// returns the topic and the decoded event of the first alert within 60 s.
async fn first_alert(mqtt: &str, client_id: &str) -> (String, vigil_wire::alert::AlertEvent) {
    let (host, port) = mqtt.rsplit_once(':').unwrap();
    let opts = MqttOptions::new(client_id, host, port.parse().unwrap());
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 64);
    client
        .subscribe("vigil/v1/doctor/+/alerts", QoS::AtLeastOnce)
        .await
        .unwrap();
    let started = Instant::now();
    let p = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(Event::Incoming(Packet::Publish(p))) = eventloop.poll().await {
                return p;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{client_id}: no alert within 60 s of subscribing"));
    println!(
        "{client_id}: {} after {:.1} s",
        p.topic,
        started.elapsed().as_secs_f64()
    );
    let _ = client.disconnect().await;
    (
        p.topic.clone(),
        vigil_wire::alert::decode_alert(&p.payload).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_its_default_speed_a_doctor_subscribing_at_any_moment_has_an_alert_within_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Demo::start(
        &dir.path().join("demo-data"),
        &["--http", "127.0.0.1:0", "--broker", "127.0.0.1:0"],
    );
    let (_, mqtt) = demo.addresses();
    let registry = std::fs::read_to_string(dir.path().join("demo-data/registry.toml")).unwrap();
    // A client subscribing as the demo starts, and another once that one has had its
    // alert (a later moment; alerts are not retained, so a new one must come).
    for client_id in ["doctor-at-start", "doctor-later"] {
        let (topic, alert) = first_alert(&mqtt, client_id).await;
        let doctor = topic
            .strip_prefix("vigil/v1/doctor/")
            .and_then(|t| t.strip_suffix("/alerts"))
            .unwrap_or_else(|| panic!("{topic}"));
        assert!(
            registry.contains(&format!("id = \"{doctor}\"")),
            "{doctor} is not a doctor of the demo's registry"
        );
        assert!(!alert.display.is_empty());
    }
    demo.interrupt();
    let (status, lines) = demo.finish();
    assert!(status.success(), "{}", lines.join("\n"));
}

#[test]
fn taken_ports_are_replaced_by_free_ones_and_the_demo_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let http_taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mqtt_taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let http_port = http_taken.local_addr().unwrap().port();
    let mqtt_port = mqtt_taken.local_addr().unwrap().port();
    let mut demo = Demo::start(
        dir.path(),
        &[
            "--http",
            &format!("127.0.0.1:{http_port}"),
            "--broker",
            &format!("127.0.0.1:{mqtt_port}"),
            "--duration",
            "2",
            "--seed",
            "7",
        ],
    );
    let (http, mqtt) = demo.addresses();
    assert_ne!(http, format!("127.0.0.1:{http_port}"));
    assert_ne!(mqtt, format!("127.0.0.1:{mqtt_port}"));
    let (status, lines) = demo.finish();
    assert!(status.success(), "{}", lines.join("\n"));
    let text = lines.join("\n");
    assert!(
        text.contains(&format!("note: MQTT port {mqtt_port} is taken")),
        "{text}"
    );
    assert!(
        text.contains(&format!("note: HTTP port {http_port} is taken")),
        "{text}"
    );
    accounting(&lines);
    // The seed given is the fleet's.
    let registry = std::fs::read_to_string(dir.path().join("registry.toml")).unwrap();
    assert!(registry.contains("(generated; seed 7)"), "{registry:.200}");
}

#[test]
fn bad_demo_options_are_refused_with_what_to_do() {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["demo", "--speed", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a speed from 1"), "{err}");
}
