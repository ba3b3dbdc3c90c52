//! The web dashboard in a real browser: `vigil serve` (with sign-in required) and a
//! real Mosquitto; headless Chromium, driven by `tests/browser/dashboard.mjs`
//! (playwright-core), signs in as Dr. Wang, sees a critical alert arrive live from a
//! reading published over MQTT, acknowledges it with read-back (after a wrong read-back
//! is refused), and opens the patient's page with its chart and the ECG strip from
//! the patient's patch (the real recording), and its weekly follow-up report; then the
//! institution's administrator signs in and reads the hospital overview. Screenshots
//! of the five pages are saved under `target/tmp/dashboard-screenshots/`. Afterwards the register
//! and the audit trail say the same as the page did.
//!
//! Needs Node.js, Debian's `chromium` and `npm ci` in `tests/browser`, which
//! `scripts/test` installs.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

mod common;
use common::{http_addr, spawn_serve};

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use rumqttc::QoS;
use serde_json::json;
use vigil_model::clock::{Clock, SystemClock};
use vigil_testkit::{Mosquitto, example_registry, http_get_any};

fn vigil(args: &[&str], config: &Path, stdin: Option<&str>) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

/// GET with a bearer token: (status, body).
fn get(addr: &str, path: &str, token: &str) -> (u16, serde_json::Value) {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_doctor_sees_a_live_alert_acknowledges_it_with_read_back_and_opens_the_patient() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed in {}: run scripts/test (it installs Chromium, \
         fonts-noto-cjk and the npm packages), or: npm ci --prefix {}",
        browser_dir.display(),
        browser_dir.display()
    );
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    // p-000123 also wears an ECG patch and has a glucometer.
    let registry = example_registry()
        + r#"
[[device]]
id = "patch-h10-01"
types = ["ecg_waveform"]
gateway = "gw-0042"
registered = "2026-11-01T00:00:00+08:00"

[[assignment]]
device = "patch-h10-01"
patient = "p-000123"
from = "2026-11-01T00:00:00+08:00"

[[device]]
id = "glu-accuchek-01"
types = ["glucose"]
gateway = "gw-0042"
registered = "2026-11-01T00:00:00+08:00"

[[assignment]]
device = "glu-accuchek-01"
patient = "p-000123"
from = "2026-11-01T00:00:00+08:00"
"#;
    std::fs::write(dir.path().join("registry.toml"), registry).unwrap();
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nregistry = {:?}\n[broker]\nurl = \"mqtt://127.0.0.1:{}\"\nclient_id = \"dashboard-test\"\n[http]\nlisten = \"127.0.0.1:0\"\nauth = true\n",
            dir.path().join("data"),
            dir.path().join("registry.toml"),
            broker.port
        ),
    )
    .unwrap();
    // Dr. Wang (d-0001, p-000123's responsible doctor) signs in with a password; an
    // administrator's token checks the outcome.
    let out = vigil(
        &[
            "users", "add", "--id", "wang", "--role", "doctor", "--doctor", "d-0001",
        ],
        &config,
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let password = "correct horse battery";
    let out = vigil(
        &["users", "password", "--id", "wang"],
        &config,
        Some("short\n"),
    );
    assert_eq!(out.status.code(), Some(2), "a short password is refused");
    let out = vigil(
        &["users", "password", "--id", "wang"],
        &config,
        Some(&format!("{password}\n")),
    );
    assert!(out.status.success(), "{out:?}");
    // The administrator of p-000123's community health centre.
    let out = vigil(
        &[
            "users",
            "add",
            "--id",
            "qiaokou-admin",
            "--role",
            "institution_admin",
            "--institution",
            "chc-qiaokou",
        ],
        &config,
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let admin_password = "community centre figures";
    let out = vigil(
        &["users", "password", "--id", "qiaokou-admin"],
        &config,
        Some(&format!("{admin_password}\n")),
    );
    assert!(out.status.success(), "{out:?}");
    let out = vigil(
        &["users", "add", "--id", "root", "--role", "platform_admin"],
        &config,
        None,
    );
    assert!(out.status.success(), "{out:?}");
    let admin = String::from_utf8(out.stdout).unwrap().trim().to_owned();

    let mut serve = spawn_serve(dir.path(), "serve.log");
    let http = http_addr(&dir.path().join("serve.log"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !http_get_any(&http, "/readyz")
        .1
        .contains("\"mqtt_subscribed\":true")
    {
        assert!(Instant::now() < deadline, "vigil serve never subscribed");
        std::thread::sleep(Duration::from_millis(20));
    }

    let shots = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let mut node = Command::new("node")
        .arg("dashboard.mjs")
        .current_dir(&browser_dir)
        .env("VIGIL_URL", format!("http://{http}"))
        .env("VIGIL_USER", "wang")
        .env("VIGIL_PASSWORD", password)
        .env("VIGIL_ADMIN_USER", "qiaokou-admin")
        .env("VIGIL_ADMIN_PASSWORD", admin_password)
        .env("VIGIL_READ_BACK", "192/112 mmHg")
        .env("VIGIL_SCREENSHOTS", &shots)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node (Node.js) is needed for the browser test: scripts/test installs it");
    let stdout = std::io::BufReader::new(node.stdout.take().unwrap());
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    // The next line the script prints; on a stall or its end, its output and a panic.
    let mut wait_for = |node: &mut std::process::Child, want: &str| loop {
        match lines.recv_timeout(Duration::from_secs(120)) {
            Ok(l) => {
                eprintln!("browser: {l}");
                seen.push(l.clone());
                if l == want {
                    return;
                }
            }
            Err(_) => {
                let _ = node.kill();
                let mut err = String::new();
                if let Some(mut e) = node.stderr.take() {
                    let _ = std::io::Read::read_to_string(&mut e, &mut err);
                }
                panic!(
                    "the browser script ended or stalled before printing {want:?}; it printed:\n{}\n{err}",
                    seen.join("\n")
                );
            }
        }
    };
    // The inbox is open with its live stream: now the reading comes.
    wait_for(&mut node, "ready");
    let now = SystemClock.now();
    let envelope = serde_json::to_vec(&json!({"schema": "vigil.readings.v1",
        "gateway_id": "gw-0042", "batch_seq": 1, "sent_at": now.to_rfc3339(),
        "readings": [{"device_id": "bpm-omron-3f9a21", "type": "bp", "unit": "mm[Hg]",
            "time": (now - TimeDelta::minutes(1)).to_rfc3339(), "symptoms": ["chest_tightness"],
            "values": {"systolic": 192, "diastolic": 112, "pulse": 88}},
            // Glucose before breakfast and after lunch (the chart marks the context).
            {"device_id": "glu-accuchek-01", "type": "glucose", "unit": "mmol/L",
             "time": (now - TimeDelta::hours(6)).to_rfc3339(),
             "values": {"value": 6.2, "context": "fasting"}},
            {"device_id": "glu-accuchek-01", "type": "glucose", "unit": "mmol/L",
             "time": (now - TimeDelta::hours(2)).to_rfc3339(),
             "values": {"value": 9.4, "context": "postprandial"}},
            // And 10 s of the real recording from the patch, at the patch's 130 Hz.
            {"device_id": "patch-h10-01", "type": "ecg_waveform", "unit": "uV",
             "time": (now - TimeDelta::minutes(2)).to_rfc3339(),
             "values": {"lead": "MLII", "sample_rate_hz": 130,
                        "samples_uv": vigil_sim::ecg::strip(60.0, 10.0, 130.0)}}]}))
    .unwrap();
    let (client, _events) = vigil_testkit::gateway(broker.port, "dashboard-gateway");
    client
        .publish(
            "vigil/v1/gw/gw-0042/readings",
            QoS::AtLeastOnce,
            false,
            envelope,
        )
        .await
        .unwrap();
    wait_for(&mut node, "done");
    let status = node.wait().unwrap();
    assert!(status.success(), "the browser script failed: {status}");
    for shot in [
        "1-sign-in.png",
        "2-inbox.png",
        "3-patient.png",
        "4-overview.png",
        "5-report.png",
    ] {
        let len = std::fs::metadata(shots.join(shot)).unwrap().len();
        assert!(len > 10_000, "{shot} is {len} bytes");
    }
    eprintln!("screenshots in {}", shots.display());

    // The register says what the page did: acknowledged by Dr. Wang with the value.
    let (status, register) = get(&http, "/api/v1/critical-values", &admin);
    assert_eq!(status, 200, "{register}");
    let entry = &register["entries"][0];
    assert_eq!(entry["acknowledged_by"], "d-0001", "{register}");
    assert_eq!(entry["read_back"], "192/112 mmHg");
    // And the audit trail: the refused and the accepted sign-in, the acknowledgement.
    let (status, audit) = get(&http, "/api/v1/audit?limit=1000", &admin);
    assert_eq!(status, 200);
    let entries = audit["audit"].as_array().unwrap();
    let has = |actor: &str, action: &str, outcome: &str| {
        entries.iter().any(|e| {
            e["actor"] == actor
                && e["action"] == action
                && e["outcome"].as_str().unwrap().starts_with(outcome)
        })
    };
    assert!(has("wang", "login", "refused: 401"), "{audit}");
    assert!(has("wang", "login", "allowed"));
    assert!(has("wang", "ack", "allowed"));
    assert!(has("wang", "read", "allowed"));
    let out = vigil(&["audit", "verify"], &config, None);
    assert!(out.status.success(), "{out:?}");
    serve.kill().unwrap();
    serve.wait().unwrap();
}
