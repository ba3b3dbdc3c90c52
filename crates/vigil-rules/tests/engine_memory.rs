//! A measurement, not a check (ignored by default): the resident memory 100 000 rule
//! engines take, each holding a BP session of three readings (a home measurement: two
//! or three readings a minute apart), and then after 60 readings each, one every 20
//! seconds (as the load test sends them: the trend windows must not grow with every
//! reading). BENCHMARKS.md, "Memory with 100 000 patients".
//!
//!   cargo test --release -p vigil-rules --test engine_memory -- --ignored --nocapture

#![allow(clippy::unwrap_used)] // measurement setup: a failed unwrap is a broken measurement

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use vigil_model::vocab::Condition;
use vigil_rules::engine::{Engine, Profile};

mod common;

/// The ingester's allocator (`crates/vigil/src/main.rs`): how much a heap keeps
/// depends on it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PATIENTS: usize = 100_000;

/// The resident set, in KiB (Linux).
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
#[ignore = "a measurement: run it with --ignored --nocapture"]
fn memory_of_100_000_engines_each_in_a_bp_session() {
    let profile =
        Profile::with_default_rules(vec![Condition::Hypertension], chrono_tz::Asia::Shanghai);
    let offset = FixedOffset::east_opt(8 * 3600).unwrap();
    let day0: DateTime<Utc> = "2026-03-02T00:00:00Z".parse().unwrap();
    let before = resident_kib();
    let reading = |i: usize, at: DateTime<Utc>| {
        common::bp(
            at.with_timezone(&offset),
            (150.0 + (i % 20) as f64, 90.0, 72.0),
            at,
        )
    };
    let start = |i: usize| day0 + TimeDelta::seconds((i % 3600) as i64);
    let mut engines = Vec::with_capacity(PATIENTS);
    for i in 0..PATIENTS {
        let mut engine = Engine::new(profile.clone());
        for k in 0..3 {
            let at = start(i) + TimeDelta::seconds(60 * k);
            engine.on_reading(&reading(i, at), at);
        }
        engines.push(engine);
    }
    let taken = resident_kib().saturating_sub(before);
    println!(
        "{PATIENTS} engines, each in a 3-reading BP session: {} MB resident ({} bytes an engine)",
        taken / 1024,
        taken * 1024 / PATIENTS as u64
    );
    for k in 3..60 {
        for (i, engine) in engines.iter_mut().enumerate() {
            let at = start(i) + TimeDelta::seconds(120 + 20 * k);
            engine.on_reading(&reading(i, at), at);
        }
    }
    let after = resident_kib().saturating_sub(before);
    println!(
        "after 60 readings each (one every 20 s): {} MB resident ({} bytes an engine)",
        after / 1024,
        after * 1024 / PATIENTS as u64
    );
    assert_eq!(engines.len(), PATIENTS);
}
