//! The ingester's pipeline, stage by stage, for counting instructions under
//! `valgrind --tool=callgrind` (`benches/instructions.sh`): wall time on a shared
//! virtual machine swings by tens of percent within minutes, an instruction count does
//! not move between runs of the same build.
//!
//! `instructions STAGE ENVELOPES READINGS [GROUP [PATIENTS]]`: builds ENVELOPES fresh
//! envelopes of READINGS blood-pressure readings each, then runs them through the
//! pipeline up to STAGE. With PATIENTS 0 (the default) they come from one gateway's one
//! cuff of the example registry; with more, from the cuffs of a simulated fleet of
//! that many patients (`vigil loadgen registry`'s), spread over its gateways, each
//! gateway's envelopes numbered in sequence: the registry's searches and the store's
//! per-gateway and per-patient index entries then land where a fleet's do.
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
use vigil_sim::fleet::{DeviceKind, Fleet, FleetConfig};
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
        eprintln!(
            "usage: instructions none|decode|prepare|commit ENVELOPES READINGS [GROUP [PATIENTS]]"
        );
        std::process::exit(2);
    };
    let group = args
        .get(3)
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1);
    let patients = args
        .get(4)
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    let (registry, cuffs) = if patients == 0 {
        let registry = Registry::parse(&vigil_testkit::example_registry()).unwrap();
        (
            registry,
            vec![("gw-0042".to_owned(), "bpm-omron-3f9a21".to_owned())],
        )
    } else {
        let fleet = Fleet::new(FleetConfig {
            patients,
            seed: 1,
            start: "2026-01-01T00:00:00+08:00".parse().unwrap(),
            incident_every: None,
            devices_per_patient: None,
        });
        let cuffs = fleet
            .patients()
            .iter()
            .filter_map(|p| {
                let cuff = p.devices.iter().find(|d| d.kind == DeviceKind::BpCuff)?;
                Some((p.gateway.to_string(), cuff.id.to_string()))
            })
            .collect();
        (Registry::parse(&fleet.registry_toml()).unwrap(), cuffs)
    };
    let received: DateTime<Utc> = "2026-11-22T00:00:02Z".parse().unwrap();
    // Envelope n from cuff (n × a prime) mod cuffs: consecutive envelopes from far
    // apart in the registry, each gateway's numbered 0, 1, 2, ...
    let mut next_seq = vec![0u64; cuffs.len()];
    let payloads: Vec<(GatewayId, Vec<u8>)> = (0..envelopes)
        .map(|n| {
            let at = usize::try_from(n).unwrap().wrapping_mul(7_919) % cuffs.len();
            let (gateway, cuff) = &cuffs[at];
            let seq = next_seq[at];
            next_seq[at] += 1;
            let payload = vigil_benches::bp_envelope(gateway, cuff, seq, readings);
            (GatewayId::parse(gateway).unwrap(), payload)
        })
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
            for (_, p) in &payloads {
                black_box(vigil_wire::decode_envelope(p).unwrap());
            }
        }
        "prepare" => {
            for (gateway, p) in &payloads {
                black_box(prepare(gateway, p, received, &registry).unwrap());
            }
        }
        "commit" => {
            for group in payloads.chunks(group) {
                let commits: Vec<_> = group
                    .iter()
                    .map(|(gateway, p)| prepare(gateway, p, received, &registry).unwrap())
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
