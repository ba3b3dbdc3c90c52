//! The ingester's pipeline, stage by stage, for counting instructions under
//! `valgrind --tool=callgrind` (`benches/instructions.sh`): wall time on a shared
//! virtual machine swings by tens of percent within minutes, an instruction count does
//! not move between runs of the same build.
//!
//! `instructions STAGE ENVELOPES READINGS [GROUP]`: builds ENVELOPES fresh envelopes
//! of READINGS blood-pressure readings each (one gateway, one cuff, the example
//! registry), then runs them through the pipeline up to STAGE:
//!
//! - `none`: only the envelopes (what the other stages' counts are taken from);
//! - `decode`: the wire decode;
//! - `prepare`: decode, binding, validation, attribution (the intake's preparing stage);
//! - `commit`: `prepare`, the rows' text and the commit to an in-memory SQLite store,
//!   GROUP envelopes per transaction (1 by default; the intake groups the publishes
//!   waiting, up to 256).
//!
//! Instructions per reading of a stage are (count(STAGE) − count(none)) / readings.

#![allow(clippy::unwrap_used)] // a measuring tool: a failed unwrap is a broken setup

use chrono::{DateTime, Utc};
use std::hint::black_box;
use vigil_ingest::pipeline::prepare;
use vigil_model::GatewayId;
use vigil_registry::Registry;
use vigil_store::SqliteStore;

/// The allocator of the `vigil` binary, so that the counts are of what it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(stage), Some(envelopes), Some(readings)) = (
        args.first(),
        args.get(1).and_then(|n| n.parse::<u64>().ok()),
        args.get(2).and_then(|n| n.parse::<u64>().ok()),
    ) else {
        eprintln!("usage: instructions none|decode|prepare|commit ENVELOPES READINGS [GROUP]");
        std::process::exit(2);
    };
    let group = args
        .get(3)
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let registry = Registry::parse(&vigil_testkit::example_registry()).unwrap();
    let gateway = GatewayId::parse("gw-0042").unwrap();
    let received: DateTime<Utc> = "2026-11-22T00:00:02Z".parse().unwrap();
    let payloads: Vec<Vec<u8>> = (0..envelopes)
        .map(|n| vigil_benches::bp_envelope("gw-0042", "bpm-omron-3f9a21", n, readings))
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = rt.block_on(SqliteStore::in_memory()).unwrap();
    match stage.as_str() {
        "none" => {
            black_box(&payloads);
        }
        "decode" => {
            for p in &payloads {
                black_box(vigil_wire::decode_envelope(p).unwrap());
            }
        }
        "prepare" => {
            for p in &payloads {
                black_box(prepare(&gateway, p, received, &registry).unwrap());
            }
        }
        "commit" => {
            for group in payloads.chunks(group) {
                let commits: Vec<_> = group
                    .iter()
                    .map(|p| prepare(&gateway, p, received, &registry).unwrap())
                    .collect();
                let out = rt.block_on(store.commit(&commits)).unwrap();
                assert!(out.iter().all(|o| u64::from(o.stored) == readings));
            }
        }
        other => {
            eprintln!("unknown stage {other}: none, decode, prepare or commit");
            std::process::exit(2);
        }
    }
}
