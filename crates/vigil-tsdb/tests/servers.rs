//! The telemetry sink against real servers started on free ports: VictoriaMetrics (v2
//! write API, read back through `/api/v1/export`) and InfluxDB 1.6 (v1 `/write`, read
//! back with InfluxQL). Every committed reading of a simulated fleet is compared point
//! by point; outages, refused points and escaping are exercised on the real parsers.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use vigil_ingest::pipeline::prepare;
use vigil_model::clock::{Clock, SystemClock};
use vigil_registry::Registry;
use vigil_sim::{Fleet, FleetConfig};
use vigil_store::SqliteStore;
use vigil_testkit::eventually;
use vigil_testkit::tsdb::{Influx16, VictoriaMetrics};
use vigil_tsdb::export::points;
use vigil_tsdb::{Api, EcgExport, FieldValue, Point, Precision, Sink, SinkConfig};

/// A fleet's readings over `hours`, ending now, committed to `store` through the real
/// pipeline stages, `per_commit` envelopes at a time.
struct Fleetful {
    registry: Arc<Registry>,
    envelopes: Vec<vigil_store::EnvelopeCommit>,
}

fn fleet(patients: usize, hours: i64) -> Fleetful {
    let start = SystemClock.now() - TimeDelta::hours(hours) - TimeDelta::minutes(10);
    let mut fleet = Fleet::new(FleetConfig {
        patients,
        seed: 11,
        start,
        incident_every: Some(TimeDelta::minutes(30)),
        devices_per_patient: None,
    });
    let registry = Registry::parse(&fleet.registry_toml()).unwrap();
    let envelopes = fleet
        .advance(start + TimeDelta::hours(hours))
        .iter()
        .map(|p| {
            let received = p.envelope.sent_at.to_utc() + TimeDelta::seconds(1);
            prepare(&p.envelope.gateway_id, &p.payload(), received, &registry).unwrap()
        })
        .collect();
    Fleetful {
        registry: Arc::new(registry),
        envelopes,
    }
}

fn institutions(registry: &Arc<Registry>) -> vigil_tsdb::Institutions {
    let r = registry.clone();
    Arc::new(move |p| r.patients.get(p).map(|p| p.institution.to_string()))
}

async fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("clinical.db"))
        .await
        .unwrap();
    (dir, store)
}

/// What the store holds, as points (the sink's own mapping, tested on its own).
async fn expected(store: &SqliteStore, registry: &Arc<Registry>, ecg: EcgExport) -> Vec<Point> {
    let inst = institutions(registry);
    let rows = store.export_after(0, u32::MAX).await.unwrap();
    assert!(!rows.is_empty());
    rows.iter()
        .flat_map(|r| points(r, inst(&r.patient_id).as_deref(), ecg))
        .collect()
}

fn config(url: String, api: Api) -> SinkConfig {
    let mut c = SinkConfig::new(url, api);
    c.batch_size = 200;
    c.linger = Duration::from_millis(20);
    c
}

async fn drained(sink: &Sink, store: &SqliteStore, timeout: Duration) {
    let (last, _) = store.export_lag(0).await.unwrap();
    let stats = sink.stats.clone();
    eventually("the sink to confirm every reading", timeout, || {
        stats.cursor.load(std::sync::atomic::Ordering::Relaxed) == last
    })
    .await;
}

/// (series name, labels) → {(ms, value)} as VictoriaMetrics names them.
type VmView = BTreeMap<(String, BTreeMap<String, String>), BTreeSet<(i64, u64)>>;

fn vm_view_of(points: &[Point]) -> VmView {
    let mut view = VmView::new();
    for p in points {
        let labels: BTreeMap<String, String> = p
            .tags
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .cloned()
            .collect();
        for (field, value) in &p.fields {
            let FieldValue::Float(v) = value else {
                continue;
            };
            view.entry((format!("{}_{field}", p.measurement), labels.clone()))
                .or_default()
                .insert((p.time.timestamp_millis(), v.to_bits()));
        }
    }
    view
}

async fn vm_view(vm: &VictoriaMetrics) -> VmView {
    let mut view = VmView::new();
    for s in vm
        .export("(bp|glucose|spo2|heart_rate|temperature|weight|ecg|ecg_waveform|ecg_sample)_.+")
        .await
    {
        let mut labels = s.labels.clone();
        // VictoriaMetrics adds the database it was written to as a label.
        labels.remove("db");
        let set = view.entry((s.name.clone(), labels)).or_default();
        for (t, v) in s.timestamps.iter().zip(&s.values) {
            set.insert((*t, v.to_bits()));
        }
    }
    view
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_committed_reading_lands_in_victoria_metrics_with_its_values_tags_and_time() {
    let vm = VictoriaMetrics::start();
    let (_dir, store) = store().await;
    let f = fleet(16, 12);
    store.commit(&f.envelopes).await.unwrap();
    let mut c = config(
        vm.url(),
        Api::V2 {
            org: "consortium".into(),
            bucket: "vitals".into(),
        },
    );
    c.ecg = EcgExport::Samples;
    vigil_tsdb::sink::check(&c, &SystemClock).await.unwrap();
    let sink = Sink::start(
        c,
        store.clone(),
        institutions(&f.registry),
        Arc::new(SystemClock),
        None,
    )
    .unwrap();
    drained(&sink, &store, Duration::from_secs(60)).await;
    let want = vm_view_of(&expected(&store, &f.registry, EcgExport::Samples).await);
    assert!(want.keys().any(|(n, _)| n == "ecg_sample_uv"));
    assert!(want.keys().any(|(n, _)| n == "bp_systolic_mmhg"));
    let mut got = VmView::new();
    for _ in 0..100 {
        got = vm_view(&vm).await;
        if got == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got.len(), want.len());
    for (k, v) in &want {
        assert_eq!(got.get(k), Some(v), "{k:?}");
    }
    assert_eq!(
        sink.stats
            .rejected_points
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    sink.shutdown().await;
}

/// InfluxDB rows of a measurement: (ms, tags and fields as text) per point.
async fn influx_rows(
    influx: &Influx16,
    measurement: &str,
) -> BTreeSet<(i64, BTreeMap<String, String>)> {
    influx
        .rows("vigil", measurement)
        .await
        .into_iter()
        .map(|(t, cols)| {
            (
                t,
                cols.into_iter()
                    .map(|(k, v)| {
                        let text = match (&v, v.as_f64()) {
                            (_, Some(f)) => f.to_string(),
                            (serde_json::Value::String(s), _) => s.clone(),
                            _ => v.to_string(),
                        };
                        (k, text)
                    })
                    .collect(),
            )
        })
        .collect()
}

fn influx_view(points: &[Point], measurement: &str) -> BTreeSet<(i64, BTreeMap<String, String>)> {
    points
        .iter()
        .filter(|p| p.measurement == measurement)
        .map(|p| {
            let mut cols: BTreeMap<String, String> = p
                .tags
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .cloned()
                .collect();
            for (k, v) in &p.fields {
                if let FieldValue::Float(f) = v {
                    cols.insert(k.clone(), f.to_string());
                }
            }
            (p.time.timestamp_millis(), cols)
        })
        .collect()
}

const MEASUREMENTS: [&str; 8] = [
    "bp",
    "glucose",
    "spo2",
    "heart_rate",
    "temperature",
    "weight",
    "ecg",
    "ecg_waveform",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_committed_reading_lands_in_influxdb_1_6_through_the_v1_endpoint() {
    let influx = Influx16::start();
    influx.query("", "CREATE DATABASE vigil").await;
    let (_dir, store) = store().await;
    let f = fleet(16, 12);
    store.commit(&f.envelopes).await.unwrap();
    let c = config(
        influx.url(),
        Api::V1 {
            database: "vigil".into(),
            retention_policy: String::new(),
        },
    );
    vigil_tsdb::sink::check(&c, &SystemClock).await.unwrap();
    let sink = Sink::start(
        c,
        store.clone(),
        institutions(&f.registry),
        Arc::new(SystemClock),
        None,
    )
    .unwrap();
    drained(&sink, &store, Duration::from_secs(60)).await;
    let want = expected(&store, &f.registry, EcgExport::Off).await;
    for m in MEASUREMENTS {
        assert_eq!(influx_rows(&influx, m).await, influx_view(&want, m), "{m}");
    }
    sink.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_point_influxdb_refuses_is_kept_with_its_reason_and_does_not_block_the_others() {
    let influx = Influx16::start();
    influx.query("", "CREATE DATABASE vigil").await;
    let (_dir, store) = store().await;
    let f = fleet(16, 12);
    store.commit(&f.envelopes).await.unwrap();
    // Someone wrote temperature_cel as text: InfluxDB refuses our float for it
    // (field type conflict, 400 "partial write") and keeps the rest of each batch. A
    // conflict is per shard, and shards hold 7 days starting on a Monday 00:00 UTC
    // (Go's time.Truncate counts from year 1): the text goes at both ends of the
    // fleet's 12 hours, so that every shard they touch has it (on a Monday morning,
    // two).
    let now = SystemClock.now();
    for t in [
        now - TimeDelta::hours(12) - TimeDelta::minutes(11),
        now - TimeDelta::minutes(9),
    ] {
        assert_eq!(
            influx
                .write(
                    "vigil",
                    &format!(
                        "temperature temperature_cel=\"warm\" {}\n",
                        t.timestamp_millis()
                    )
                )
                .await,
            204
        );
    }
    let c = config(
        influx.url(),
        Api::V1 {
            database: "vigil".into(),
            retention_policy: String::new(),
        },
    );
    let sink = Sink::start(
        c,
        store.clone(),
        institutions(&f.registry),
        Arc::new(SystemClock),
        None,
    )
    .unwrap();
    drained(&sink, &store, Duration::from_secs(60)).await;
    let want = expected(&store, &f.registry, EcgExport::Off).await;
    let temperatures = want
        .iter()
        .filter(|p| p.measurement == "temperature")
        .count();
    assert!(temperatures > 0);
    let rejects = store.sink_rejects("tsdb").await.unwrap();
    assert_eq!(rejects.len(), temperatures, "{rejects:#?}");
    assert!(
        rejects
            .iter()
            .all(|(_, line, message)| line.starts_with("temperature,")
                && message.contains("field type conflict")),
        "{rejects:#?}"
    );
    for m in MEASUREMENTS.iter().filter(|m| **m != "temperature") {
        assert_eq!(influx_rows(&influx, m).await, influx_view(&want, m), "{m}");
    }
    sink.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_of_the_database_costs_only_delay() {
    let mut vm = VictoriaMetrics::start();
    let (_dir, store) = store().await;
    let f = fleet(16, 12);
    let committed = Arc::new(tokio::sync::Notify::new());
    let sink = Sink::start(
        config(
            vm.url(),
            Api::V2 {
                org: "o".into(),
                bucket: "b".into(),
            },
        ),
        store.clone(),
        institutions(&f.registry),
        Arc::new(SystemClock),
        Some(committed.clone()),
    )
    .unwrap();
    let stats = sink.stats.clone();
    let (first, rest) = f.envelopes.split_at(f.envelopes.len() / 3);
    store.commit(first).await.unwrap();
    committed.notify_one();
    drained(&sink, &store, Duration::from_secs(30)).await;
    // The database goes away while readings keep arriving.
    vm.stop();
    for chunk in rest.chunks(20) {
        store.commit(chunk).await.unwrap();
        committed.notify_one();
    }
    eventually(
        "failed writes during the outage",
        Duration::from_secs(30),
        || stats.retries.load(std::sync::atomic::Ordering::Relaxed) >= 3,
    )
    .await;
    assert!(!stats.healthy.load(std::sync::atomic::Ordering::Relaxed));
    assert!(
        stats
            .lag_readings
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    vm.restart();
    drained(&sink, &store, Duration::from_secs(60)).await;
    let want = vm_view_of(&expected(&store, &f.registry, EcgExport::Off).await);
    let mut got = VmView::new();
    for _ in 0..100 {
        got = vm_view(&vm).await;
        if got == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(got, want);
    assert!(stats.healthy.load(std::sync::atomic::Ordering::Relaxed));
    sink.shutdown().await;
}

/// Tag and field text with every character line protocol treats specially.
const AWKWARD: [&str; 6] = [
    "with space",
    "com,ma",
    "equals=sign",
    "\"quoted\"",
    "back\\slash",
    "医联体 危急值 é",
];

fn awkward_points(t0: DateTime<Utc>) -> Vec<Point> {
    AWKWARD
        .iter()
        .enumerate()
        .map(|(i, s)| Point {
            measurement: "escape test".to_owned(),
            tags: vec![("tag key,=".to_owned(), (*s).to_owned())],
            fields: vec![
                ("v".to_owned(), FieldValue::Float(i as f64 + 0.5)),
                (
                    "text".to_owned(),
                    FieldValue::String(format!("{s} \\ \"end\"")),
                ),
            ],
            time: t0 + TimeDelta::seconds(i as i64),
        })
        .collect()
}

fn body(points: &[Point]) -> String {
    let mut s = String::new();
    for p in points {
        p.write_line(Precision::Milliseconds, &mut s).unwrap();
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awkward_text_survives_both_servers_parsers() {
    let t0 = DateTime::from_timestamp(SystemClock.now().timestamp() - 3600, 0).unwrap();
    let points = awkward_points(t0);

    let influx = Influx16::start();
    influx.query("", "CREATE DATABASE vigil").await;
    assert_eq!(influx.write("vigil", &body(&points)).await, 204);
    let rows = influx.rows("vigil", "escape test").await;
    assert_eq!(rows.len(), AWKWARD.len());
    for ((t, cols), (i, s)) in rows.iter().zip(AWKWARD.iter().enumerate()) {
        assert_eq!(*t, (t0 + TimeDelta::seconds(i as i64)).timestamp_millis());
        assert_eq!(cols["tag key,="], serde_json::json!(s));
        assert_eq!(cols["text"], serde_json::json!(format!("{s} \\ \"end\"")));
        assert_eq!(cols["v"], serde_json::json!(i as f64 + 0.5));
    }

    let vm = VictoriaMetrics::start();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let status = reqwest::Client::new()
        .post(format!("{}/api/v2/write?precision=ms", vm.url()))
        .body(body(&points))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success());
    let mut series = Vec::new();
    for _ in 0..100 {
        series = vm.export("escape test_v").await;
        if series.len() == AWKWARD.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got: BTreeMap<String, (i64, f64)> = series
        .iter()
        .map(|s| {
            (
                s.labels["tag key,="].clone(),
                (s.timestamps[0], s.values[0]),
            )
        })
        .collect();
    for (i, s) in AWKWARD.iter().enumerate() {
        assert_eq!(
            got.get(*s),
            Some(&(
                (t0 + TimeDelta::seconds(i as i64)).timestamp_millis(),
                i as f64 + 0.5
            )),
            "{s:?} in {got:?}"
        );
    }
}

/// The values a Grafana variable query returns (`SHOW TAG VALUES`: the `value` column).
fn variable_values(answer: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    for s in answer["results"][0]["series"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let col = s["columns"]
            .as_array()
            .unwrap()
            .iter()
            .position(|c| c == "value")
            .unwrap();
        for row in s["values"].as_array().unwrap() {
            out.push(row[col].as_str().unwrap().to_owned());
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Whether an InfluxQL answer has no error and at least one non-null value besides time.
fn has_data(answer: &serde_json::Value) -> Result<bool, String> {
    let result = &answer["results"][0];
    if let Some(e) = result.get("error").or(answer.get("error")) {
        return Err(e.to_string());
    }
    Ok(result["series"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["values"].as_array().into_iter().flatten())
        .any(|row| {
            row.as_array().is_some_and(|r| {
                r.iter()
                    .skip(1)
                    .any(|v| !v.is_null() && v != &serde_json::json!(0))
            })
        }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_from_influxdb_loaded_by_the_sink() {
    let influx = Influx16::start();
    influx.query("", "CREATE DATABASE vigil").await;
    let (_dir, store) = store().await;
    let f = fleet(16, 48);
    store.commit(&f.envelopes).await.unwrap();
    let sink = Sink::start(
        config(
            influx.url(),
            Api::V1 {
                database: "vigil".into(),
                retention_policy: String::new(),
            },
        ),
        store.clone(),
        institutions(&f.registry),
        Arc::new(SystemClock),
        None,
    )
    .unwrap();
    drained(&sink, &store, Duration::from_secs(120)).await;
    sink.shutdown().await;

    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dashboards");
    let provisioning =
        std::fs::read_to_string(root.join("provisioning/datasources/vigil-influxdb.yaml")).unwrap();
    assert!(provisioning.contains("uid: vigil-influxdb"));
    // Grafana's substitutions: the dashboards' default range (7 days) as it writes it.
    let now = SystemClock.now();
    let time_filter = format!(
        "time >= {}ms and time <= {}ms",
        (now - TimeDelta::days(7)).timestamp_millis(),
        now.timestamp_millis()
    );
    let mut files: Vec<_> = std::fs::read_dir(root.join("grafana"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "{files:?}");
    let mut queries = 0;
    // How Grafana fills a multi-value variable: one value chosen; "All" (the
    // variable's allValue, `.*`); or several chosen, as a regex alternation `(a|b)`.
    #[derive(Debug, Clone, Copy)]
    enum Pick {
        One,
        All,
        Several,
    }
    for (file, pick) in files
        .iter()
        .flat_map(|f| [Pick::One, Pick::All, Pick::Several].map(|p| (f, p)))
    {
        let name = format!("{} ({pick:?})", file.file_name().unwrap().to_string_lossy());
        let dash: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        // The variables, in order, each query run with the ones before substituted:
        // (name, values, multi-value, allValue).
        let mut vars: Vec<(String, Vec<String>, bool, Option<String>)> = Vec::new();
        let substitute = |q: &str,
                          vars: &[(String, Vec<String>, bool, Option<String>)],
                          patient: Option<&str>| {
            let mut q = q
                .replace("$timeFilter", &time_filter)
                .replace("$__interval", "1h");
            for (var, values, multi, all) in vars {
                if var == "patient" {
                    continue;
                }
                let value = match (pick, multi, all) {
                    (Pick::All, true, Some(all)) => all.clone(),
                    // "All" without an allValue, or several chosen: every value.
                    (Pick::All | Pick::Several, true, _) => format!("({})", values.join("|")),
                    _ => values[0].clone(),
                };
                q = q.replace(&format!("${var}"), &value);
            }
            if let Some(p) = patient {
                q = q.replace("$patient", p);
            }
            q
        };
        for v in dash["templating"]["list"].as_array().unwrap() {
            let var = v["name"].as_str().unwrap().to_owned();
            let q = substitute(v["query"].as_str().unwrap(), &vars, None);
            let values = variable_values(&influx.query("vigil", &q).await);
            assert!(
                !values.is_empty(),
                "{name}: variable {var} ({q}) has no values"
            );
            queries += 1;
            let multi = v["multi"].as_bool().unwrap_or(false);
            let all = v["includeAll"]
                .as_bool()
                .unwrap_or(false)
                .then(|| v["allValue"].as_str().map(str::to_owned))
                .flatten();
            vars.push((var, values, multi, all));
        }
        let patients: Vec<String> = vars
            .iter()
            .find(|(v, ..)| v == "patient")
            .map(|(_, values, ..)| values.clone())
            .unwrap_or_default();
        for panel in dash["panels"].as_array().unwrap() {
            let title = panel["title"].as_str().unwrap();
            assert_eq!(
                panel["datasource"]["uid"], "vigil-influxdb",
                "{name}: {title}"
            );
            for target in panel["targets"].as_array().unwrap() {
                assert_eq!(target["rawQuery"], true, "{name}: {title}");
                let raw = target["query"].as_str().unwrap();
                // A per-patient panel shows data for the patients with such a device.
                let candidates: Vec<Option<&str>> = if raw.contains("$patient") {
                    patients.iter().map(|p| Some(p.as_str())).collect()
                } else {
                    vec![None]
                };
                let mut found = false;
                for p in candidates {
                    let q = substitute(raw, &vars, p);
                    // (A `$` left is the regex anchor of `/^value$/`, never a variable.)
                    let unsubstituted = q.match_indices('$').any(|(i, _)| {
                        q[i + 1..].starts_with(|c: char| c.is_alphabetic() || c == '_')
                    });
                    assert!(!unsubstituted, "{name}: {title}: unsubstituted: {q}");
                    match has_data(&influx.query("vigil", &q).await) {
                        Ok(true) => {
                            found = true;
                            break;
                        }
                        Ok(false) => {}
                        Err(e) => panic!("{name}: {title}: {q}: {e}"),
                    }
                }
                queries += 1;
                assert!(found, "{name}: {title}: no data for {raw}");
            }
        }
    }
    eprintln!("{queries} dashboard queries answered with data");
}
