//! The telemetry sink: line-protocol encoding, and points landed in a real
//! VictoriaMetrics, in points per second.
//!
//! Group `line_protocol` (one batch of the points of a simulated fleet's committed
//! readings, from the store's export rows):
//! - `format_unescaped` (**baseline**): the least any writer does, one `write!` per
//!   point with no escaping, no checks, fields in a fixed order;
//! - `encode`: the sink's encoder (escaping, sorted tags, refusals of what the
//!   protocol cannot carry, precision);
//! - `map_and_encode`: export rows to points (canonical fields, tags, institution),
//!   then encoded: what the sink does per batch before sending;
//! - `map_encode_gzip`: plus the gzip of the request body.
//!
//! Group `sink_to_victoria_metrics`, into a VictoriaMetrics started on a free port, the
//! same readings with ECG strips exported sample by sample (most of the points):
//! - `post_preencoded` (**baseline**): the points already encoded and gzipped in
//!   bodies of 5 000 lines, posted two at a time: what the database takes when the
//!   writer costs nothing;
//! - `sink_drain`: the whole sink (store reads, mapping, encoding, gzip, HTTP, cursor)
//!   draining them with a fresh cursor each iteration; batches of 5 000 readings, two
//!   requests in flight, linger 5 ms.

#![allow(clippy::unwrap_used)] // bench setup: a failed unwrap is a broken bench

use std::fmt::Write as _;
use std::hint::black_box;
use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::TimeDelta;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_ingest::pipeline::prepare;
use vigil_model::clock::{Clock, SystemClock};
use vigil_registry::Registry;
use vigil_sim::{Fleet, FleetConfig};
use vigil_store::SqliteStore;
use vigil_tsdb::export::points;
use vigil_tsdb::{Api, EcgExport, FieldValue, Point, Precision, Sink, SinkConfig};

fn tsdb(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // A day of 96 patients, committed through the real pipeline stages.
    let start = SystemClock.now() - TimeDelta::hours(25);
    let mut fleet = Fleet::new(FleetConfig {
        patients: 96,
        seed: 3,
        start,
        incident_every: Some(TimeDelta::minutes(30)),
        devices_per_patient: None,
    });
    let registry = Arc::new(Registry::parse(&fleet.registry_toml()).unwrap());
    let commits: Vec<_> = fleet
        .advance(start + TimeDelta::hours(24))
        .iter()
        .map(|p| {
            let received = p.envelope.sent_at.to_utc() + TimeDelta::seconds(1);
            prepare(&p.envelope.gateway_id, &p.payload(), received, &registry).unwrap()
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let store = rt
        .block_on(SqliteStore::open(&dir.path().join("bench.db")))
        .unwrap();
    rt.block_on(store.commit(&commits)).unwrap();
    let rows = rt.block_on(store.export_after(0, u32::MAX)).unwrap();
    let institution =
        |p: &vigil_model::PatientId| registry.patients.get(p).map(|p| p.institution.to_string());
    let pts: Vec<Point> = rows
        .iter()
        .flat_map(|r| points(r, institution(&r.patient_id).as_deref(), EcgExport::Off))
        .collect();
    let n = pts.len() as u64;

    let mut g = c.benchmark_group("line_protocol");
    g.throughput(Throughput::Elements(n));
    g.bench_function("format_unescaped", |b| {
        b.iter(|| {
            let mut s = String::with_capacity(pts.len() * 160);
            for p in &pts {
                s.push_str(&p.measurement);
                for (k, v) in &p.tags {
                    let _ = write!(s, ",{k}={v}");
                }
                for (i, (k, v)) in p.fields.iter().enumerate() {
                    if let FieldValue::Float(f) = v {
                        let _ = write!(s, "{}{k}={f}", if i == 0 { ' ' } else { ',' });
                    }
                }
                let _ = writeln!(s, " {}", p.time.timestamp_millis());
            }
            black_box(s)
        })
    });
    g.bench_function("encode", |b| {
        b.iter(|| {
            let mut s = String::with_capacity(pts.len() * 160);
            for p in &pts {
                p.write_line(Precision::Milliseconds, &mut s).unwrap();
            }
            black_box(s)
        })
    });
    let map_encode = || {
        let mut s = String::with_capacity(pts.len() * 160);
        for r in &rows {
            for p in points(r, institution(&r.patient_id).as_deref(), EcgExport::Off) {
                p.write_line(Precision::Milliseconds, &mut s).unwrap();
            }
        }
        s
    };
    g.bench_function("map_and_encode", |b| b.iter(|| black_box(map_encode())));
    g.bench_function("map_encode_gzip", |b| {
        b.iter(|| {
            let s = map_encode();
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(s.as_bytes()).unwrap();
            black_box(gz.finish().unwrap())
        })
    });
    g.finish();

    let vm = vigil_testkit::tsdb::VictoriaMetrics::start();
    let all: u64 = rows
        .iter()
        .map(|r| points(r, institution(&r.patient_id).as_deref(), EcgExport::Samples).len() as u64)
        .sum();
    let mut g = c.benchmark_group("sink_to_victoria_metrics");
    g.throughput(Throughput::Elements(all));
    g.sample_size(10);
    let bodies: Vec<Vec<u8>> = {
        let lines: Vec<String> = rows
            .iter()
            .flat_map(|r| points(r, institution(&r.patient_id).as_deref(), EcgExport::Samples))
            .map(|p| {
                let mut s = String::new();
                p.write_line(Precision::Milliseconds, &mut s).unwrap();
                s
            })
            .collect();
        lines
            .chunks(5000)
            .map(|c| {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(c.concat().as_bytes()).unwrap();
                gz.finish().unwrap()
            })
            .collect()
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let write_url = format!(
        "{}/api/v2/write?org=bench&bucket=bench&precision=ms",
        vm.url()
    );
    g.bench_function("post_preencoded", |b| {
        b.iter(|| {
            rt.block_on(async {
                let post = |part: Vec<&Vec<u8>>| {
                    let client = client.clone();
                    let url = write_url.clone();
                    let part: Vec<Vec<u8>> = part.into_iter().cloned().collect();
                    async move {
                        for body in part {
                            let r = client
                                .post(&url)
                                .header("Content-Encoding", "gzip")
                                .body(body)
                                .send()
                                .await
                                .unwrap();
                            assert!(r.status().is_success());
                        }
                    }
                };
                let evens = bodies.iter().step_by(2).collect();
                let odds = bodies.iter().skip(1).step_by(2).collect();
                tokio::join!(post(evens), post(odds));
            })
        })
    });
    let mut run = 0u64;
    let (last, _) = rt.block_on(store.export_lag(0)).unwrap();
    g.bench_function("sink_drain", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                run += 1;
                let mut config = SinkConfig::new(
                    vm.url(),
                    Api::V2 {
                        org: "bench".into(),
                        bucket: "bench".into(),
                    },
                );
                config.name = format!("bench-{run}");
                config.ecg = EcgExport::Samples;
                config.linger = Duration::from_millis(5);
                let reg = registry.clone();
                let started = Instant::now();
                rt.block_on(async {
                    let sink = Sink::start(
                        config,
                        store.clone(),
                        Arc::new(move |p| reg.patients.get(p).map(|p| p.institution.to_string())),
                        Arc::new(SystemClock),
                        None,
                    )
                    .unwrap();
                    let stats = sink.stats.clone();
                    while stats.cursor.load(std::sync::atomic::Ordering::Relaxed) < last {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    sink.shutdown().await;
                });
                total += started.elapsed();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, tsdb);
criterion_main!(benches);
