//! The ingester's pipeline, decode → bind → validate → attribute → dedup → commit, in
//! readings per second, on envelopes of 100 blood-pressure readings from one gateway.
//!
//! In one group, on fresh envelopes each iteration (new `batch_seq` and record
//! numbers, so nothing is deduplicated away):
//! - `decode_only` (**baseline**): the wire decode alone;
//! - `prepare`: decode, device binding, plausibility validation and attribution;
//! - `prepare_100k_patients`: the same against the registry of 100 000 patients that
//!   `vigil loadgen registry` writes (262 501 devices: binding and attribution search
//!   them);
//! - `prepare_commit_memory`: plus the commit to an in-memory SQLite store (the cost of
//!   the SQL without the disk);
//! - `prepare_commit_file`: plus the commit to a SQLite file in WAL mode with
//!   `synchronous = FULL`, one transaction (and one fsync) per envelope, as the
//!   ingester does when publishes arrive one at a time.

#![allow(clippy::unwrap_used)] // bench setup: a failed unwrap is a broken bench

use std::cell::Cell;
use std::hint::black_box;

use chrono::{DateTime, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use vigil_ingest::pipeline::prepare;
use vigil_model::GatewayId;
use vigil_registry::Registry;
use vigil_sim::fleet::{DeviceKind, Fleet, FleetConfig};
use vigil_store::{Item, SqliteStore};

const READINGS: u64 = 100;

fn pipeline(c: &mut Criterion) {
    let registry = Registry::parse(&vigil_testkit::example_registry()).unwrap();
    let gateway = GatewayId::parse("gw-0042").unwrap();
    let received = DateTime::parse_from_rfc3339("2026-11-22T08:00:02+08:00")
        .unwrap()
        .with_timezone(&Utc);
    let next = Cell::new(0u64);
    // Fresh envelopes of 100 readings of one cuff.
    let envelope_of = |gateway: String, cuff: String| {
        let next = &next;
        move || {
            let n = next.get();
            next.set(n + 1);
            vigil_benches::bp_envelope(&gateway, &cuff, n, READINGS)
        }
    };
    let envelope = envelope_of("gw-0042".into(), "bpm-omron-3f9a21".into());
    // The load generator's registry of 100 000 patients, and a cuff from its middle.
    let fleet = Fleet::new(FleetConfig {
        patients: 100_000,
        seed: 1,
        start: "2026-01-01T00:00:00+08:00".parse().unwrap(),
        incident_every: None,
        devices_per_patient: None,
    });
    let large = Registry::parse(&fleet.registry_toml()).unwrap();
    let (large_gateway, cuff) = fleet.patients()[50_000..]
        .iter()
        .find_map(|p| {
            let cuff = p.devices.iter().find(|d| d.kind == DeviceKind::BpCuff)?;
            Some((p.gateway.clone(), cuff.id.to_string()))
        })
        .unwrap();
    let large_envelope = envelope_of(large_gateway.to_string(), cuff);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let memory = rt.block_on(SqliteStore::in_memory()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = rt
        .block_on(SqliteStore::open(&dir.path().join("bench.db")))
        .unwrap();

    let mut g = c.benchmark_group("pipeline_100_bp_readings");
    g.throughput(Throughput::Elements(READINGS));
    g.bench_function("decode_only", |b| {
        b.iter_batched(
            &envelope,
            |p| black_box(vigil_wire::decode_envelope(&p).unwrap()),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("prepare", |b| {
        b.iter_batched(
            &envelope,
            |p| black_box(prepare(&gateway, &p, received, &registry).unwrap()),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("prepare_100k_patients", |b| {
        b.iter_batched(
            &large_envelope,
            |p| {
                let commit = prepare(&large_gateway, &p, received, &large).unwrap();
                assert!(matches!(commit.items[0], Item::Store { .. }));
                black_box(commit)
            },
            BatchSize::SmallInput,
        )
    });
    for (name, store) in [
        ("prepare_commit_memory", &memory),
        ("prepare_commit_file", &file),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                &envelope,
                |p| {
                    let commit = prepare(&gateway, &p, received, &registry).unwrap();
                    let out = rt.block_on(store.commit(&[commit])).unwrap();
                    assert_eq!(out[0].stored, READINGS as u32);
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
