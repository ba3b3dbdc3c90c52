//! Envelope decode + validation + canonicalisation, in readings per second.
//!
//! Each group compares, on the same input in the same run:
//! - `json_value_only`: the baseline, `serde_json` parsing the payload into an untyped
//!   tree and nothing else (a lower bound for any JSON codec built on it);
//! - `decode`: the wire codec's full decode (envelope checks, per-reading typed decode
//!   with every field validated);
//! - `decode_canonical`: decode plus canonical-unit conversion of every reading, what
//!   the ingester does before validation.

#![allow(clippy::unwrap_used)] // bench setup: a failed unwrap is a broken bench

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use std::hint::black_box;
use vigil_wire::decode_envelope;

/// A realistic mix of home readings, cycling through the types a household produces.
fn mixed_reading(i: usize) -> Value {
    let t = format!("2026-11-22T07:{:02}:{:02}+08:00", (i / 60) % 60, i % 60);
    match i % 6 {
        0 => json!({"device_id": "bpm-omron-3f9a21", "record_seq": i, "type": "bp", "time": t,
                    "device_time": "2026-11-22T07:58:00", "unit": "mm[Hg]",
                    "values": {"systolic": 120 + i % 60, "diastolic": 80, "pulse": 72},
                    "status": ["irregular_pulse_detected"]}),
        1 => json!({"device_id": "glu-accu-1", "record_seq": i, "type": "glucose", "time": t,
                    "unit": "mg/dL", "values": {"value": 90 + i % 200, "context": "fasting"}}),
        2 => json!({"device_id": "ox-1", "type": "spo2", "time": t, "unit": "%",
                    "values": {"value": 97, "pulse_rate": 70, "signal_quality": "good", "perfusion_index": 3.2}}),
        3 => json!({"device_id": "th-1", "type": "temperature", "time": t, "unit": "[degF]",
                    "values": {"value": 98.6, "site": "oral"}}),
        4 => json!({"device_id": "scale-1", "type": "weight", "time": t, "unit": "jin",
                    "values": {"value": 130.4}}),
        _ => json!({"device_id": "patch-1", "type": "heart_rate", "time": t, "unit": "/min",
                    "values": {"value": 64, "source": "ecg_patch", "activity": "rest",
                               "rr_intervals_ms": [930, 941, 925]}}),
    }
}

fn envelope(readings: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "schema": "vigil.readings.v1", "gateway_id": "gw-0001", "batch_seq": 1042,
        "sent_at": "2026-11-22T08:00:01.250+08:00", "readings": readings,
    }))
    .unwrap()
}

fn bench_group(c: &mut Criterion, name: &str, payload: &[u8], readings: u64) {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(readings));
    g.bench_function("json_value_only", |b| {
        b.iter(|| black_box(serde_json::from_slice::<Value>(black_box(payload)).unwrap()))
    });
    g.bench_function("decode", |b| {
        b.iter(|| black_box(decode_envelope(black_box(payload)).unwrap()))
    });
    g.bench_function("decode_canonical", |b| {
        b.iter(|| {
            let env = decode_envelope(black_box(payload)).unwrap();
            for r in env.readings.iter().flatten() {
                black_box(r.measurement.canonical());
            }
        })
    });
    g.finish();
}

fn envelopes(c: &mut Criterion) {
    // One reading per envelope: what a home gateway sends right after a measurement.
    bench_group(
        c,
        "envelope_1_reading",
        &envelope(vec![mixed_reading(0)]),
        1,
    );
    // A backlog flush after an outage: 100 mixed readings.
    bench_group(
        c,
        "envelope_100_mixed",
        &envelope((0..100).map(mixed_reading).collect()),
        100,
    );
    // One ECG strip: 10 s at 360 Hz, the real recording's rate.
    let samples: Vec<i32> = (0..3600).map(|i| ((i * 37) % 2000) - 1000).collect();
    let strip = json!({"device_id": "patch-1", "type": "ecg_waveform", "time": "2026-11-22T07:00:00+08:00",
                       "unit": "uV", "values": {"lead": "MLII", "sample_rate_hz": 360, "samples_uv": samples}});
    bench_group(c, "envelope_ecg_10s_strip", &envelope(vec![strip]), 1);
}

criterion_group!(benches, envelopes);
criterion_main!(benches);
