//! Model-based tests of the outbox: random sequences of appends, acknowledgements,
//! compactions, reopenings and crashes (a torn record or a torn acknowledgement left
//! at the end of a file, as a crash mid-write leaves it) are run against the outbox
//! and against a plain in-memory model. After every step: no record is lost (every
//! record appended and not acknowledged is pending, byte for byte), none is pending
//! after its acknowledgement, and ids are consecutive and strictly increasing, also
//! across reopenings. Small segments and a small cap make rotations, compactions and
//! refusals frequent.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use proptest::prelude::*;
use vigil_outbox::{Config, Error, Fsync, Outbox};

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Vec<u8>>),
    /// Acknowledge a range: start and length as fractions of the ids so far.
    Ack(u8, u8),
    Compact,
    Reopen,
    /// A crash while appending: part of a record at the end of the newest segment.
    TornRecord(Vec<u8>),
    /// A crash while acknowledging: part of an entry at the end of `acks.log`.
    TornAck(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec(prop::collection::vec(any::<u8>(), 0..48), 1..5).prop_map(Op::Append),
        4 => (any::<u8>(), any::<u8>()).prop_map(|(a, b)| Op::Ack(a, b)),
        1 => Just(Op::Compact),
        1 => Just(Op::Reopen),
        1 => prop::collection::vec(any::<u8>(), 1..40).prop_map(Op::TornRecord),
        1 => (1u8..20).prop_map(Op::TornAck),
    ]
}

#[derive(Debug, Default)]
struct Model {
    next_id: u64,
    records: BTreeMap<u64, Vec<u8>>,
    acked: BTreeSet<u64>,
}

fn config(fsync: Fsync) -> Config {
    Config {
        segment_bytes: 200,
        max_bytes: 2_000,
        retention_ms: 1_000,
        fsync,
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

fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(bytes).unwrap();
}

fn check(outbox: &Outbox, model: &Model) {
    assert_eq!(outbox.next_id(), model.next_id, "next id");
    let pending = outbox.pending(0, usize::MAX).unwrap();
    let expected: Vec<(u64, &Vec<u8>)> = model
        .records
        .iter()
        .filter(|(id, _)| !model.acked.contains(id))
        .map(|(id, p)| (*id, p))
        .collect();
    let got: Vec<(u64, &Vec<u8>)> = pending.iter().map(|r| (r.id, &r.payload)).collect();
    assert_eq!(got, expected, "pending records");
    assert_eq!(outbox.stats().pending_records, expected.len() as u64);
    // Reading from the middle gives the tail of the same sequence.
    if let Some((mid, _)) = expected.get(expected.len() / 2) {
        let tail = outbox.pending(*mid - 1, 3).unwrap();
        let want: Vec<u64> = expected
            .iter()
            .map(|(id, _)| *id)
            .filter(|id| id >= mid)
            .take(3)
            .collect();
        assert_eq!(tail.iter().map(|r| r.id).collect::<Vec<_>>(), want);
    }
    // What is still kept reads back as appended.
    for id in outbox.first_kept()..outbox.next_id() {
        let r = outbox.get(id).unwrap().unwrap();
        assert_eq!(&r.payload, &model.records[&id]);
        assert_eq!(outbox.is_acked(id), model.acked.contains(&id));
    }
}

fn run(ops: Vec<Op>, fsync: Fsync) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox");
    let (mut outbox, _) = Outbox::open(&path, config(fsync)).unwrap();
    let mut model = Model {
        next_id: 1,
        ..Model::default()
    };
    let mut now = 0i64;
    for op in ops {
        now += 100;
        match op {
            Op::Append(payloads) => {
                let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
                match outbox.append_batch(&refs, now) {
                    Ok(ids) => {
                        assert_eq!(*ids.start(), model.next_id, "ids follow on");
                        assert_eq!(ids.clone().count(), payloads.len());
                        let n = refs.len() as u64;
                        for (id, p) in ids.zip(payloads.iter()) {
                            model.records.insert(id, p.clone());
                        }
                        model.next_id += n;
                    }
                    // Refused whole, taking no id; only when the pending records
                    // themselves leave no room.
                    Err(Error::Full { .. }) => {}
                    Err(e) => panic!("{e}"),
                }
            }
            Op::Ack(a, b) => {
                let last = model.next_id - 1;
                if last == 0 {
                    assert!(outbox.ack(1, 1).is_err());
                    continue;
                }
                let from = 1 + u64::from(a) * last / 256;
                let to = (from + u64::from(b) % 8).min(last);
                outbox.ack(from, to).unwrap();
                model.acked.extend(from..=to);
                assert!(outbox.ack(to + 1, last + 1).is_err(), "past the last id");
            }
            Op::Compact => {
                let before = outbox.first_kept();
                outbox.compact(now).unwrap();
                assert!(outbox.first_kept() >= before);
            }
            Op::Reopen => {
                drop(outbox);
                outbox = Outbox::open(&path, config(fsync)).unwrap().0;
            }
            Op::TornRecord(bytes) => {
                drop(outbox);
                // A header claiming more than follows, or garbage: either way torn.
                let mut torn = (bytes.len() as u32 + 30).to_le_bytes().to_vec();
                torn.extend_from_slice(&bytes);
                append_bytes(&newest_segment(&path), &torn);
                let (o, report) = Outbox::open(&path, config(fsync)).unwrap();
                assert_eq!(report.torn_bytes, torn.len() as u64);
                assert!(report.corrupt.is_empty());
                outbox = o;
            }
            Op::TornAck(n) => {
                drop(outbox);
                append_bytes(&path.join("acks.log"), &vec![0xAB; usize::from(n)]);
                let (o, report) = Outbox::open(&path, config(fsync)).unwrap();
                assert_eq!(report.torn_ack_bytes, u64::from(n));
                outbox = o;
            }
        }
        check(&outbox, &model);
    }
    // Everything acknowledged and past retention: only the newest segment is left,
    // and the ids still follow on after a reopen.
    let last = model.next_id - 1;
    if last > 0 {
        outbox.ack(1, last).unwrap();
        model.acked.extend(1..=last);
    }
    outbox.compact(now + 10_000).unwrap();
    assert_eq!(outbox.stats().segments, 1);
    drop(outbox);
    let (mut outbox, _) = Outbox::open(&path, config(fsync)).unwrap();
    assert!(outbox.pending(0, usize::MAX).unwrap().is_empty());
    assert_eq!(outbox.append(b"after", now).unwrap(), model.next_id);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn the_outbox_behaves_like_its_model(ops in prop::collection::vec(op(), 1..60)) {
        run(ops, Fsync::Never);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    /// The same with every append and acknowledgement synced (slower).
    #[test]
    fn the_synced_outbox_behaves_like_its_model(ops in prop::collection::vec(op(), 1..30)) {
        run(ops, Fsync::Always);
    }
}

#[test]
fn the_cap_refuses_only_when_pending_records_fill_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        segment_bytes: 1_000,
        max_bytes: 3_000,
        retention_ms: 1_000_000,
        fsync: Fsync::Never,
    };
    let (mut o, _) = Outbox::open(dir.path(), cfg).unwrap();
    let payload = [7u8; 476]; // 500 bytes a record with its header
    for i in 0..6 {
        assert_eq!(o.append(&payload, 0).unwrap(), i + 1);
    }
    // Full of pending records: refused, counted, no id taken.
    let e = o.append(&payload, 0).unwrap_err();
    assert!(matches!(e, Error::Full { .. }), "{e}");
    assert!(e.to_string().contains("cap of 3000 bytes"), "{e}");
    assert_eq!((o.stats().refused_records, o.next_id()), (1, 7));
    // Acknowledged records make room, retention or not (counted as evicted).
    o.ack(1, 2).unwrap();
    assert_eq!(o.append(&payload, 0).unwrap(), 7);
    assert_eq!(o.stats().evicted_records, 2);
    assert_eq!(o.first_kept(), 3);
    assert!(matches!(
        o.append(&[0u8; 20_000_000], 0),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn a_corrupt_record_inside_an_older_segment_is_reported_not_hidden() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        segment_bytes: 100,
        fsync: Fsync::Never,
        ..Config::default()
    };
    let (mut o, _) = Outbox::open(dir.path(), cfg.clone()).unwrap();
    for _ in 0..6 {
        o.append(&[1u8; 60], 0).unwrap();
    }
    drop(o);
    // Flip a payload byte of record 1 (the first segment).
    let first = dir.path().join(format!("{:020}.seg", 1));
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[30] ^= 0xFF;
    std::fs::write(&first, bytes).unwrap();
    let (o, report) = Outbox::open(dir.path(), cfg).unwrap();
    assert_eq!(report.corrupt, [(first, 0)]);
    let ids: Vec<u64> = o.pending(0, 100).unwrap().iter().map(|r| r.id).collect();
    assert!(!ids.contains(&1), "{ids:?}");
    assert_eq!(o.next_id(), 7);
}

#[test]
fn damage_inside_the_newest_segment_is_not_taken_for_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        fsync: Fsync::Never,
        ..Config::default()
    };
    let (mut o, _) = Outbox::open(dir.path(), cfg.clone()).unwrap();
    for i in 0..10u8 {
        o.append(&[i; 40], 0).unwrap();
    }
    o.ack(1, 10).unwrap();
    drop(o);
    // Flip a byte of record 5's payload: records 6 to 10 are still good after it.
    let seg = dir.path().join(format!("{:020}.seg", 1));
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[4 * 64 + 30] ^= 0xFF;
    std::fs::write(&seg, bytes).unwrap();
    let (mut o, report) = Outbox::open(dir.path(), cfg).unwrap();
    assert_eq!(report.torn_bytes, 0, "not cut");
    assert_eq!(report.corrupt.len(), 1);
    // No id is used twice: the next one follows the highest still on disk.
    assert_eq!(o.next_id(), 11);
    assert_eq!(o.append(b"new", 0).unwrap(), 11);
    assert!(!o.is_acked(11));
    let pending: Vec<u64> = o.pending(0, 100).unwrap().iter().map(|r| r.id).collect();
    assert_eq!(pending, [11]);
}

#[test]
fn a_small_cap_with_everything_acknowledged_still_takes_new_records() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config {
        max_bytes: 3_000,
        retention_ms: 1_000_000,
        fsync: Fsync::Never,
        ..Config::default() // 4 MiB segments: bounded by the cap
    };
    let (mut o, _) = Outbox::open(dir.path(), cfg).unwrap();
    let payload = [7u8; 476];
    for round in 0..5 {
        for _ in 0..5 {
            o.append(&payload, 0).unwrap();
        }
        let last = o.next_id() - 1;
        o.ack(1, last).unwrap();
        assert!(o.stats().bytes <= 3_000, "round {round}: {:?}", o.stats());
    }
    assert_eq!(o.next_id(), 26);
    assert_eq!(o.stats().refused_records, 0);
}
