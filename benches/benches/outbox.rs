//! The edge agent's outbox: records appended and acknowledged per second.
//!
//! Each iteration is what the forwarder does for one envelope: append a batch of 10
//! readings (300-byte payloads, about a reading's JSON) in one write, then
//! acknowledge the 10 (the PUBACK arrived). In one group per sync policy:
//! - `raw_file` (**baseline**): the same bytes appended to a plain file and 20 bytes of
//!   acknowledgement to another, with the same syncs (`fdatasync` after each with
//!   `always`), both emptied every 1 000 iterations: the least any durable log pays
//!   on this disk;
//! - `outbox`: `Outbox::append_batch` + `Outbox::ack` (framing, CRC-32, index, range
//!   set, segment rotation at 4 MiB, compaction of acknowledged segments past their
//!   retention, here 0 so the disk use stays flat).

#![allow(clippy::unwrap_used)] // bench setup: a failed unwrap is a broken bench

use std::fs::OpenOptions;
use std::hint::black_box;
use std::io::Write;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_outbox::{Config, Fsync, Outbox};

const BATCH: usize = 10;

fn outbox(c: &mut Criterion) {
    let payload = vec![b'x'; 300];
    let batch: Vec<&[u8]> = (0..BATCH).map(|_| payload.as_slice()).collect();
    for (name, fsync) in [("always", Fsync::Always), ("never", Fsync::Never)] {
        let mut group = c.benchmark_group(format!("outbox_append_ack/fsync_{name}"));
        group.throughput(Throughput::Elements(BATCH as u64));
        group.sample_size(if fsync == Fsync::Always { 20 } else { 50 });

        let dir = tempfile::tempdir().unwrap();
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("raw.log"))
            .unwrap();
        let mut acks = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path().join("raw.acks"))
            .unwrap();
        let mut bytes = Vec::new();
        let mut k = 0u64;
        group.bench_function("raw_file", |b| {
            b.iter(|| {
                // Emptied as often as the outbox drops its acknowledged segments, so
                // both keep the same small file on disk.
                k += 1;
                if k.is_multiple_of(1000) {
                    log.set_len(0).unwrap();
                    acks.set_len(0).unwrap();
                }
                bytes.clear();
                for p in &batch {
                    bytes.extend_from_slice(&[0u8; 24]);
                    bytes.extend_from_slice(p);
                }
                log.write_all(&bytes).unwrap();
                if fsync == Fsync::Always {
                    log.sync_data().unwrap();
                }
                acks.write_all(&[0u8; 20]).unwrap();
                if fsync == Fsync::Always {
                    acks.sync_data().unwrap();
                }
            })
        });

        let (mut o, _) = Outbox::open(
            &dir.path().join("outbox"),
            Config {
                retention_ms: 0,
                fsync,
                ..Config::default()
            },
        )
        .unwrap();
        let mut n = 0i64;
        group.bench_function("outbox", |b| {
            b.iter(|| {
                let ids = o.append_batch(black_box(&batch), n).unwrap();
                o.ack(*ids.start(), *ids.end()).unwrap();
                n += 1;
                if n % 1000 == 0 {
                    o.compact(n).unwrap();
                }
            })
        });
        group.finish();
    }
}

criterion_group!(benches, outbox);
criterion_main!(benches);
