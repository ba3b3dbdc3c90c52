//! Model-based tests of the gateway's durable state (`vigil_edge::store::Store`, two
//! outboxes: readings and the envelopes formed from them), the layer the forwarder
//! uses. Random sequences of readings added, envelopes formed, published (what the
//! forwarder reads as pending), acknowledged (a PUBACK for a published envelope),
//! compactions, reopenings and crashes (a torn record at the end of either outbox; a
//! crash between an acknowledgement's two writes, the readings' and the envelope's)
//! run against the store and a plain in-memory model. After every step:
//!
//! - no reading is lost: every reading is either unformed or in exactly one envelope,
//!   envelopes cover the readings in order without overlap, and every reading not
//!   acknowledged is counted pending;
//! - none is delivered after its acknowledgement: an acknowledged envelope is never
//!   pending again, and its readings never go into another envelope;
//! - pending envelopes are republished byte for byte, and carry exactly their
//!   readings as stored;
//! - `batch_seq` runs 1, 2, 3... strictly increasing, also across reopenings;
//! - an acknowledged envelope is retained for backfill until a compaction past its
//!   retention, and then, if kept at all, unchanged.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use proptest::prelude::*;
use vigil_edge::store::Store;
use vigil_model::measurement::BloodPressure;
use vigil_model::units::PressureUnit;
use vigil_model::{GatewayId, Measurement, Reading};
use vigil_outbox::{Config, Fsync, Outbox};
use vigil_wire::envelope::ReadingJson;

#[derive(Debug, Clone)]
enum Op {
    /// Readings measured (how many).
    Add(u8),
    /// Form an envelope of at most this many readings.
    Form(u8),
    /// The forwarder reads what is pending and publishes it.
    Publish,
    /// The broker's PUBACK for a published, unacknowledged envelope (which one: a
    /// fraction of those).
    Ack(u8),
    /// Compact with the clock past the retention of everything acknowledged so far.
    Compact,
    Reopen,
    /// A crash mid-append: part of a record at the end of the newest segment of the
    /// readings (false) or envelopes (true) outbox.
    Torn(bool, Vec<u8>),
    /// A crash mid-acknowledgement: the envelope's readings acknowledged, the envelope
    /// not (which one: as in `Ack`).
    CrashMidAck(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (1u8..6).prop_map(Op::Add),
        4 => (1u8..5).prop_map(Op::Form),
        3 => Just(Op::Publish),
        4 => any::<u8>().prop_map(Op::Ack),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
        1 => (any::<bool>(), prop::collection::vec(any::<u8>(), 1..40))
            .prop_map(|(e, b)| Op::Torn(e, b)),
        1 => any::<u8>().prop_map(Op::CrashMidAck),
    ]
}

#[derive(Debug)]
struct Envelope {
    readings: std::ops::RangeInclusive<u64>,
    payload: Vec<u8>,
    acked: bool,
    /// Acknowledged before the last compaction: it may be gone.
    compactable: bool,
}

#[derive(Debug, Default)]
struct Model {
    /// Reading id - 1 → its stored JSON.
    readings: Vec<Vec<u8>>,
    /// Readings acknowledged (by their envelope, or by a crash mid-acknowledgement).
    acked_readings: BTreeSet<u64>,
    envelopes: BTreeMap<u64, Envelope>,
    /// Envelopes the forwarder published and has no PUBACK for.
    published: BTreeSet<u64>,
    formed_through: u64,
}

const RETENTION_MS: i64 = 60_000;

fn config() -> Config {
    Config {
        segment_bytes: 600,
        max_bytes: 64 * 1024 * 1024,
        retention_ms: RETENTION_MS,
        fsync: Fsync::Never,
    }
}

fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap()
}

fn reading(n: u64, t: DateTime<Utc>) -> Reading {
    Reading {
        device_id: "bpm-omron-3f9a21".parse().unwrap(),
        record_seq: Some(n),
        time: t.with_timezone(&china()),
        device_time: None,
        measurement: Measurement::Bp(BloodPressure {
            systolic: 100.0 + (n % 90) as f64,
            diastolic: 70.0,
            mean: None,
            pulse: Some(60.0 + (n % 30) as f64),
            unit: PressureUnit::MmHg,
        }),
        status: vec![],
        symptoms: vec![],
    }
}

fn newest_segment(dir: &Path) -> std::path::PathBuf {
    let mut segs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs.pop().unwrap()
}

/// The (pending or retained) envelope's readings, as JSON values.
fn readings_of(payload: &[u8]) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(payload).unwrap();
    v["readings"].as_array().unwrap().clone()
}

fn check(store: &Store, model: &Model) {
    // Pending envelopes: exactly the unacknowledged ones, in order, byte for byte.
    let pending = store.pending(0, usize::MAX).unwrap();
    let expected: Vec<(u64, &[u8])> = model
        .envelopes
        .iter()
        .filter(|(_, e)| !e.acked)
        .map(|(seq, e)| (*seq, e.payload.as_slice()))
        .collect();
    let got: Vec<(u64, &[u8])> = pending
        .iter()
        .map(|f| (f.batch_seq, f.payload.as_slice()))
        .collect();
    assert_eq!(got, expected, "pending envelopes");
    for f in &pending {
        assert_eq!(f.readings, model.envelopes[&f.batch_seq].readings);
    }
    // Every reading not acknowledged is pending; the unformed ones are the rest.
    let total = model.readings.len() as u64;
    assert_eq!(
        store.depth(),
        total - model.acked_readings.len() as u64,
        "readings pending"
    );
    assert_eq!(
        store.unformed().unwrap().0,
        total - model.formed_through,
        "readings unformed"
    );
    // Retained envelopes: while not past their retention, kept unchanged.
    for (seq, e) in &model.envelopes {
        match store.envelope(*seq).unwrap() {
            Some(f) => assert_eq!(f.payload, e.payload, "envelope {seq} changed"),
            None => assert!(e.compactable, "envelope {seq} lost before its retention"),
        }
    }
}

fn run(ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let gw: GatewayId = "gw-0042".parse().unwrap();
    let (mut store, _) = Store::open(dir.path(), config()).unwrap();
    let mut model = Model::default();
    let t0: DateTime<Utc> = "2026-12-07T00:00:00Z".parse().unwrap();
    let mut now = t0;
    for op in ops {
        now += TimeDelta::milliseconds(10);
        match op {
            Op::Add(k) => {
                let readings: Vec<Reading> = (0..u64::from(k))
                    .map(|i| reading(model.readings.len() as u64 + 1 + i, now))
                    .collect();
                let ids = store.add(&readings, now).unwrap();
                assert_eq!(*ids.start(), model.readings.len() as u64 + 1, "reading ids");
                for r in &readings {
                    model
                        .readings
                        .push(serde_json::to_vec(&ReadingJson(r)).unwrap());
                }
                assert_eq!(*ids.end(), model.readings.len() as u64);
            }
            Op::Form(max) => {
                let formed = store.form(&gw, usize::from(max), now, china()).unwrap();
                let unformed = model.readings.len() as u64 - model.formed_through;
                let Some(f) = formed else {
                    assert_eq!(unformed, 0, "nothing formed with readings waiting");
                    continue;
                };
                // The next batch_seq, the next readings, no more than asked.
                let next = model.envelopes.keys().next_back().map_or(1, |s| s + 1);
                assert_eq!(f.batch_seq, next, "batch_seq");
                assert_eq!(*f.readings.start(), model.formed_through + 1);
                let n = f.readings.end() - f.readings.start() + 1;
                assert_eq!(n, unformed.min(u64::from(max)));
                // It carries exactly those readings, as stored.
                let expected: Vec<serde_json::Value> = f
                    .readings
                    .clone()
                    .map(|id| serde_json::from_slice(&model.readings[id as usize - 1]).unwrap())
                    .collect();
                assert_eq!(readings_of(&f.payload), expected);
                model.formed_through = *f.readings.end();
                model.envelopes.insert(
                    f.batch_seq,
                    Envelope {
                        readings: f.readings,
                        payload: f.payload,
                        acked: false,
                        compactable: false,
                    },
                );
            }
            Op::Publish => {
                for f in store.pending(0, usize::MAX).unwrap() {
                    model.published.insert(f.batch_seq);
                }
            }
            Op::Ack(which) | Op::CrashMidAck(which) => {
                let candidates: Vec<u64> = model.published.iter().copied().collect();
                if candidates.is_empty() {
                    continue;
                }
                let seq = candidates[usize::from(which) % candidates.len()];
                let range = model.envelopes[&seq].readings.clone();
                if matches!(op, Op::Ack(_)) {
                    store.acked(seq).unwrap();
                    model.published.remove(&seq);
                    model.envelopes.get_mut(&seq).unwrap().acked = true;
                } else {
                    // The readings' acknowledgement written, then the crash.
                    drop(store);
                    let half = Config {
                        max_bytes: config().max_bytes / 2,
                        ..config()
                    };
                    let (mut readings, _) =
                        Outbox::open(&dir.path().join("readings"), half).unwrap();
                    readings.ack(*range.start(), *range.end()).unwrap();
                    drop(readings);
                    store = Store::open(dir.path(), config()).unwrap().0;
                    // After the reboot, nothing is published yet.
                    model.published.clear();
                }
                model.acked_readings.extend(range);
            }
            Op::Compact => {
                now += TimeDelta::milliseconds(RETENTION_MS + 1);
                store.compact(now).unwrap();
                for e in model.envelopes.values_mut() {
                    e.compactable |= e.acked;
                }
            }
            Op::Reopen => {
                drop(store);
                store = Store::open(dir.path(), config()).unwrap().0;
                model.published.clear();
            }
            Op::Torn(envelopes, bytes) => {
                drop(store);
                let sub = if envelopes { "envelopes" } else { "readings" };
                let sub = dir.path().join(sub);
                if std::fs::read_dir(&sub).unwrap().next().is_some() {
                    let mut f = std::fs::OpenOptions::new()
                        .append(true)
                        .open(newest_segment(&sub))
                        .unwrap();
                    f.write_all(&bytes).unwrap();
                }
                store = Store::open(dir.path(), config()).unwrap().0;
                model.published.clear();
            }
        }
        check(&store, &model);
    }
    // A last reboot, then everything is formed, published and acknowledged: every
    // reading went out exactly once, and nothing is left pending.
    drop(store);
    let (mut store, _) = Store::open(dir.path(), config()).unwrap();
    check(&store, &model);
    let mut carried: Vec<u64> = model
        .envelopes
        .values()
        .flat_map(|e| e.readings.clone())
        .collect();
    while let Some(f) = store.form(&gw, 4, now, china()).unwrap() {
        carried.extend(f.readings.clone());
    }
    for f in store.pending(0, usize::MAX).unwrap() {
        store.acked(f.batch_seq).unwrap();
    }
    let all: Vec<u64> = (1..=model.readings.len() as u64).collect();
    assert_eq!(
        carried, all,
        "each reading in exactly one envelope, in order"
    );
    assert_eq!(store.depth(), 0);
    assert_eq!(store.envelopes_pending(), 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn the_gateway_store_behaves_like_its_model(ops in prop::collection::vec(op(), 1..80)) {
        run(ops);
    }
}
