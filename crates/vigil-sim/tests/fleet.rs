//! The simulated fleet against the real pipeline stages: every reading becomes what
//! the simulator says it should, the registry it writes loads, and the physiology and
//! the incidents are what the demo promises.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, TimeDelta, Utc};
use proptest::prelude::*;
use vigil_ingest::pipeline::prepare;
use vigil_model::Measurement;
use vigil_model::vocab::{Condition, EcgFinding, GlucoseFlag, MealContext};
use vigil_registry::Registry;
use vigil_sim::fleet::china;
use vigil_sim::{Expect, Fleet, FleetConfig, Publish};
use vigil_store::Item;

fn start() -> DateTime<Utc> {
    // 2026-12-01 10:15 in China: mid-morning, as a demo might start.
    DateTime::parse_from_rfc3339("2026-12-01T10:15:00+08:00")
        .unwrap()
        .with_timezone(&Utc)
}

fn run(config: FleetConfig, for_: TimeDelta) -> (Fleet, Vec<Publish>) {
    let mut fleet = Fleet::new(config.clone());
    let mut out = Vec::new();
    // In steps, as the demo drives it.
    let mut t = config.start;
    while t < config.start + for_ {
        t += TimeDelta::seconds(37);
        out.extend(fleet.advance(t));
    }
    (fleet, out)
}

/// Runs every publish through the ingester's stages and an identity set (the store's
/// dedup), and checks each reading ends as the simulator expected.
fn check_accounting(fleet: &Fleet, publishes: &[Publish]) -> BTreeMap<Expect, u64> {
    let registry = Registry::parse(&fleet.registry_toml()).unwrap();
    let mut seen = HashSet::new();
    let mut tally = BTreeMap::new();
    for p in publishes {
        let received = p.envelope.sent_at.with_timezone(&Utc) + TimeDelta::seconds(2);
        let commit = prepare(&p.envelope.gateway_id, &p.payload(), received, &registry)
            .unwrap_or_else(|e| panic!("envelope rejected: {}", e.message));
        assert_eq!(commit.items.len(), p.expect.len());
        for (item, expect) in commit.items.iter().zip(&p.expect) {
            let got = match item {
                Item::Store { reading, .. } => {
                    if seen.insert(reading.reading().identity()) {
                        Expect::Stored
                    } else {
                        Expect::Duplicate
                    }
                }
                Item::Quarantine(q) => Expect::Quarantined(q.reason),
            };
            assert_eq!(
                &got, expect,
                "{:?} in envelope {} of {}",
                p.incident, p.envelope.batch_seq, p.envelope.gateway_id
            );
            *tally.entry(got).or_insert(0) += 1;
        }
    }
    tally
}

#[test]
fn the_registry_the_fleet_writes_loads_and_covers_every_device_but_the_guest_cuff() {
    let fleet = Fleet::new(FleetConfig::demo(start()));
    let registry = Registry::parse(&fleet.registry_toml()).unwrap();
    assert_eq!(registry.patients.len(), 48);
    let devices: usize = fleet.patients().iter().map(|p| p.devices.len()).sum();
    assert_eq!(registry.devices.len(), devices + 1);
    for p in fleet.patients() {
        for d in &p.devices {
            let a = registry.assignment_at(&d.id, start()).unwrap();
            assert_eq!(a.patient, p.id);
        }
    }
    let guest = "bpm-guest-0001".parse().unwrap();
    assert!(registry.device(&guest).is_some());
    assert!(registry.assignment_at(&guest, start()).is_none());
}

#[test]
fn every_reading_of_three_days_ends_as_the_simulator_says() {
    let (fleet, publishes) = run(FleetConfig::demo(start()), TimeDelta::days(3));
    let tally = check_accounting(&fleet, &publishes);
    use vigil_model::vocab::QuarantineReason as Q;
    for expect in [
        Expect::Stored,
        Expect::Duplicate,
        Expect::Quarantined(Q::UnitSuspect),
        Expect::Quarantined(Q::OutOfRange),
        Expect::Quarantined(Q::InvalidTimestamp),
        Expect::Quarantined(Q::LowSignalQuality),
        Expect::Quarantined(Q::UnassignedDevice),
    ] {
        assert!(
            tally.get(&expect).copied().unwrap_or(0) > 0,
            "no {expect:?}: {tally:?}"
        );
    }
    // Mostly good data, as in real homes.
    let total: u64 = tally.values().sum();
    assert!(tally[&Expect::Stored] * 10 > total * 9, "{tally:?}");
}

#[test]
fn the_same_configuration_gives_the_same_readings() {
    let a = run(FleetConfig::demo(start()), TimeDelta::hours(30)).1;
    let b = run(FleetConfig::demo(start()), TimeDelta::hours(30)).1;
    let bytes = |ps: &[Publish]| ps.iter().map(Publish::payload).collect::<Vec<_>>();
    assert_eq!(bytes(&a), bytes(&b));
    let mut other = FleetConfig::demo(start());
    other.seed += 1;
    assert_ne!(bytes(&a), bytes(&run(other, TimeDelta::hours(30)).1));
}

#[test]
fn each_gateway_numbers_its_envelopes_one_by_one_and_resumes_after_a_given_number() {
    let (_, publishes) = run(FleetConfig::demo(start()), TimeDelta::days(1));
    let mut last: BTreeMap<String, u64> = BTreeMap::new();
    for p in &publishes {
        let prev = last
            .insert(p.envelope.gateway_id.to_string(), p.envelope.batch_seq)
            .unwrap_or(0);
        assert_eq!(p.envelope.batch_seq, prev + 1);
        assert!(
            p.envelope
                .readings
                .iter()
                .all(|r| r.time <= p.envelope.sent_at)
        );
    }
    let mut fleet = Fleet::new(FleetConfig::demo(start()));
    fleet.resume_batch_seqs([("gw-0001", 41), ("gw-0002", 7), ("gw-9999", 3)]);
    let next = fleet.advance(start() + TimeDelta::days(1));
    let first = |gw: &str| {
        next.iter()
            .find(|p| p.envelope.gateway_id.as_str() == gw)
            .unwrap()
            .envelope
            .batch_seq
    };
    assert_eq!(first("gw-0001"), 42);
    assert_eq!(first("gw-0002"), 8);
    assert_eq!(first("gw-0003"), 1);
}

/// A reading a clinician would want to hear about (the thresholds of
/// `clinical/rules.md` §1, before confirmation).
fn alarming(m: &Measurement) -> bool {
    match m {
        Measurement::Bp(b) => b.systolic >= 180.0 || b.diastolic >= 110.0 || b.systolic < 90.0,
        Measurement::Glucose(g) => {
            g.flag == Some(GlucoseFlag::Lo)
                || g.value.is_some_and(|v| {
                    let mmol = if g.unit.unit().to_string() == "mg/dL" {
                        v / 18.0
                    } else {
                        v
                    };
                    mmol <= 3.9 || mmol >= 16.7
                })
        }
        Measurement::Spo2(s) => {
            s.value <= 91.0 && s.signal_quality != Some(vigil_model::vocab::SignalQuality::Poor)
        }
        Measurement::Temperature(t) => {
            let c = if t.unit.unit().to_string() == "[degF]" {
                (t.value - 32.0) * 5.0 / 9.0
            } else {
                t.value
            };
            c >= 38.1
        }
        Measurement::HeartRate(h) => h.value > 120.0,
        Measurement::Ecg(e) => e.finding != EcgFinding::SinusRhythm,
        _ => false,
    }
}

#[test]
fn at_demo_speed_something_alarming_happens_in_every_real_minute() {
    // The demo runs 360x: one real minute is six simulated hours.
    let window = TimeDelta::hours(6);
    let (_, publishes) = run(FleetConfig::demo(start()), TimeDelta::days(3));
    let mut t = start();
    while t < start() + TimeDelta::days(3) {
        let n = publishes
            .iter()
            .filter(|p| {
                let sent = p.envelope.sent_at.with_timezone(&Utc);
                sent > t && sent <= t + window
            })
            .flat_map(|p| p.envelope.readings.iter().zip(&p.expect))
            .filter(|(r, e)| **e == Expect::Stored && alarming(&r.measurement))
            .count();
        assert!(n >= 3, "only {n} alarming readings in the 6 h after {t}");
        t += window;
    }
    // And the very first minutes already have one.
    let first = publishes.iter().find(|p| p.incident.is_some()).unwrap();
    assert!(first.envelope.sent_at.with_timezone(&Utc) <= start() + TimeDelta::minutes(3));
}

#[test]
fn physiology_has_morning_surges_and_meals() {
    let (fleet, publishes) = run(FleetConfig::demo(start()), TimeDelta::days(7));
    let hypertensive: HashSet<_> = fleet
        .patients()
        .iter()
        .filter(|p| p.conditions.contains(&Condition::Hypertension))
        .map(|p| p.gateway.clone())
        .collect();
    let (mut morning, mut evening) = (Vec::new(), Vec::new());
    let (mut fasting, mut after_meals) = (Vec::new(), Vec::new());
    for p in publishes.iter().filter(|p| p.incident.is_none()) {
        for r in &p.envelope.readings {
            let hour = r.time.with_timezone(&china()).format("%H").to_string();
            let hour: u32 = hour.parse().unwrap();
            match &r.measurement {
                Measurement::Bp(b) if hypertensive.contains(&p.envelope.gateway_id) => {
                    if (5..10).contains(&hour) {
                        morning.push(b.systolic);
                    } else if hour >= 18 {
                        evening.push(b.systolic);
                    }
                }
                Measurement::Glucose(g) if g.unit.unit().to_string() == "mmol/L" => {
                    match g.context {
                        Some(MealContext::Fasting) => fasting.extend(g.value),
                        Some(MealContext::Postprandial) => after_meals.extend(g.value),
                        _ => {}
                    }
                }
                _ => {}
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(
        mean(&morning) > mean(&evening) + 8.0,
        "{} vs {}",
        mean(&morning),
        mean(&evening)
    );
    assert!(
        mean(&morning) > 140.0 && mean(&morning) < 175.0,
        "{}",
        mean(&morning)
    );
    assert!(mean(&after_meals) > mean(&fasting) + 2.0);
    assert!((5.0..9.5).contains(&mean(&fasting)), "{}", mean(&fasting));
}

#[test]
fn ecg_patches_stream_strips_of_the_real_recording_at_their_rate() {
    let (_, publishes) = run(FleetConfig::demo(start()), TimeDelta::hours(12));
    let strips: Vec<_> = publishes
        .iter()
        .flat_map(|p| &p.envelope.readings)
        .filter_map(|r| match &r.measurement {
            Measurement::EcgWaveform(w) => Some(w),
            _ => None,
        })
        .collect();
    assert!(strips.len() >= 12, "{}", strips.len());
    for w in strips {
        assert_eq!(w.sample_rate_hz, 130.0);
        assert_eq!(w.leads.samples_per_lead(), 1300);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    /// Any seed and fleet size: every reading ends as the simulator says.
    #[test]
    fn any_fleet_accounts_for_every_reading(seed in any::<u64>(), patients in 1usize..30, hours in 1i64..36) {
        let config = FleetConfig { patients, seed, start: start(), incident_every: Some(TimeDelta::minutes(20)), devices_per_patient: None };
        let (fleet, publishes) = run(config, TimeDelta::hours(hours));
        check_accounting(&fleet, &publishes);
    }
}
