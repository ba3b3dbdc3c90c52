//! The rule engine: readings evaluated per second with 100 000 patients' state loaded.
//!
//! 100 000 engines (one per patient, the runner's layout: a map from patient to
//! engine), each first given a day of readings (a BP session, a fasting glucose, an
//! SpO2), so every engine holds sessions, trend windows and episodes. Then, in one
//! group, on a stream of fresh readings spread over all patients:
//! - `validate_only` (**baseline**): the plausibility validator alone, which every
//!   reading goes through anyway;
//! - `validate_and_evaluate`: validation plus the patient's engine (timers advanced
//!   to the reading's receipt, then every rule of its type).

#![allow(clippy::unwrap_used)] // bench setup: a failed unwrap is a broken bench

use std::collections::HashMap;
use std::hint::black_box;

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use vigil_model::measurement::{BloodPressure, Glucose, Spo2};
use vigil_model::units::{GlucoseUnit, PercentUnit, PressureUnit};
use vigil_model::vocab::{Condition, MealContext};
use vigil_model::{DeviceId, Measurement, PatientId, Reading};
use vigil_rules::engine::{Engine, Profile};
use vigil_rules::validate::{Context, validate};

const PATIENTS: usize = 100_000;
const BATCH: usize = 1_000;

fn reading(device: &DeviceId, t: DateTime<FixedOffset>, m: Measurement) -> Reading {
    Reading {
        device_id: device.clone(),
        record_seq: None,
        time: t,
        device_time: None,
        measurement: m,
        status: vec![],
        symptoms: vec![],
    }
}

fn bp(s: f64, d: f64) -> Measurement {
    Measurement::Bp(BloodPressure {
        systolic: s,
        diastolic: d,
        mean: None,
        pulse: Some(72.0),
        unit: PressureUnit::MmHg,
    })
}

fn rules(c: &mut Criterion) {
    let profile = Profile::with_default_rules(
        vec![Condition::Hypertension, Condition::Type2Diabetes],
        chrono_tz::Asia::Shanghai,
    );
    let offset = FixedOffset::east_opt(8 * 3600).unwrap();
    let day0: DateTime<Utc> = "2026-03-02T00:00:00Z".parse().unwrap();
    let patients: Vec<(PatientId, DeviceId)> = (0..PATIENTS)
        .map(|i| {
            (
                format!("p-{i:06}").parse().unwrap(),
                format!("dev-{i:06}").parse().unwrap(),
            )
        })
        .collect();
    let mut engines: HashMap<PatientId, Engine> = HashMap::with_capacity(PATIENTS);
    for (i, (p, dev)) in patients.iter().enumerate() {
        let mut e = Engine::new(profile.clone());
        let t = day0 + TimeDelta::seconds((i % 3600) as i64);
        for (k, m) in [
            bp(150.0 + (i % 20) as f64, 90.0),
            Measurement::Glucose(Glucose {
                value: Some(6.0 + (i % 30) as f64 / 10.0),
                flag: None,
                context: Some(MealContext::Fasting),
                sample_type: None,
                unit: GlucoseUnit::MmolPerL,
            }),
            Measurement::Spo2(Spo2 {
                value: 90.0 + (i % 8) as f64,
                pulse_rate: Some(80.0),
                signal_quality: None,
                perfusion_index: None,
                unit: PercentUnit::Percent,
            }),
        ]
        .into_iter()
        .enumerate()
        {
            let at = t + TimeDelta::minutes(10 * k as i64);
            let v = validate(
                reading(dev, at.with_timezone(&offset), m),
                &Context::received_at(at),
            )
            .unwrap();
            e.on_reading(&v, at);
        }
        engines.insert(p.clone(), e);
    }
    // A stream of fresh readings over all patients, a day later.
    let mut next = 0usize;
    let mut stream = move || {
        (0..BATCH)
            .map(|_| {
                next += 1;
                let i = (next * 7919) % PATIENTS;
                let at = day0 + TimeDelta::days(1) + TimeDelta::milliseconds(next as i64);
                let r = reading(
                    &patients[i].1,
                    at.with_timezone(&offset),
                    bp(120.0 + (next % 80) as f64, 70.0 + (next % 45) as f64),
                );
                (patients[i].0.clone(), r, at)
            })
            .collect::<Vec<_>>()
    };
    let mut g = c.benchmark_group("rule_engine_100k_patients");
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("validate_only", |b| {
        b.iter_batched(
            &mut stream,
            |batch| {
                for (_, r, at) in batch {
                    black_box(validate(r, &Context::received_at(at)).unwrap());
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("validate_and_evaluate", |b| {
        b.iter_batched(
            &mut stream,
            |batch| {
                for (p, r, at) in batch {
                    let v = validate(r, &Context::received_at(at)).unwrap();
                    let e = engines.get_mut(&p).unwrap();
                    black_box(e.advance(at));
                    black_box(e.on_reading(&v, at));
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, rules);
criterion_main!(benches);
