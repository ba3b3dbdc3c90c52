//! Proptest strategies for every wire payload (shared by the round-trip tests).

#![allow(dead_code, clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use chrono::{DateTime, FixedOffset, NaiveDateTime};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use vigil_model::measurement::*;
use vigil_model::units::*;
use vigil_model::vocab::*;
use vigil_model::{AlertId, DeviceId, GatewayId, PatientId, Reading};
use vigil_wire::Envelope;
use vigil_wire::alert::{AlertEvent, AlertEventKind, Evidence};
use vigil_wire::command::Command;
use vigil_wire::status::{GatewayState, Status};

pub fn id_text() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9._-]{0,24}"
}

pub fn quantity() -> impl Strategy<Value = f64> {
    prop_oneof![
        (0u32..400).prop_map(f64::from),
        (0u32..4000).prop_map(|t| f64::from(t) / 10.0),
        0.0f64..1e12,
    ]
}

pub fn any_finite() -> impl Strategy<Value = f64> {
    prop_oneof![-1e6f64..1e6, quantity()]
}

fn pick<T: Copy + std::fmt::Debug + 'static>(all: &'static [T]) -> impl Strategy<Value = T> {
    proptest::sample::select(all)
}

pub fn instant() -> impl Strategy<Value = DateTime<FixedOffset>> {
    (
        946_684_800i64..4_102_444_800,
        prop_oneof![
            Just(0u32),
            (0u32..1000).prop_map(|ms| ms * 1_000_000),
            0u32..1_000_000_000
        ],
        (-14 * 60i32..=14 * 60),
    )
        .prop_map(|(secs, nanos, offset_min)| {
            let offset = FixedOffset::east_opt(offset_min * 60).unwrap();
            DateTime::from_timestamp(secs, nanos)
                .unwrap()
                .with_timezone(&offset)
        })
}

pub fn naive() -> impl Strategy<Value = NaiveDateTime> {
    (
        946_684_800i64..4_102_444_800,
        prop_oneof![Just(0u32), 0u32..1_000_000_000],
    )
        .prop_map(|(s, n)| DateTime::from_timestamp(s, n).unwrap().naive_utc())
}

fn lead() -> impl Strategy<Value = String> {
    "(I|II|III|aVR|aVL|aVF|V[1-6]|MLII)"
}

pub fn measurement() -> impl Strategy<Value = Measurement> {
    prop_oneof![
        (
            quantity(),
            quantity(),
            option::of(quantity()),
            option::of(quantity()),
            pick(PressureUnit::ALL)
        )
            .prop_map(|(systolic, diastolic, mean, pulse, unit)| Measurement::Bp(
                BloodPressure {
                    systolic,
                    diastolic,
                    mean,
                    pulse,
                    unit
                }
            )),
        (
            prop_oneof![
                quantity().prop_map(|v| (Some(v), None)),
                (option::of(quantity()), pick(GlucoseFlag::ALL)).prop_map(|(v, f)| (v, Some(f))),
            ],
            option::of(pick(MealContext::ALL)),
            option::of("[a-z ]{1,12}"),
            pick(GlucoseUnit::ALL),
        )
            .prop_map(|((value, flag), context, sample_type, unit)| {
                Measurement::Glucose(Glucose {
                    value,
                    flag,
                    context,
                    sample_type,
                    unit,
                })
            }),
        (
            quantity(),
            option::of(quantity()),
            option::of(pick(SignalQuality::ALL)),
            option::of(quantity())
        )
            .prop_map(|(value, pulse_rate, signal_quality, perfusion_index)| {
                Measurement::Spo2(Spo2 {
                    value,
                    pulse_rate,
                    signal_quality,
                    perfusion_index,
                    unit: PercentUnit::Percent,
                })
            }),
        (
            quantity(),
            option::of(pick(HrSource::ALL)),
            option::of(pick(Activity::ALL)),
            option::of(vec(quantity(), 0..9))
        )
            .prop_map(|(value, source, activity, rr_intervals_ms)| {
                Measurement::HeartRate(HeartRate {
                    value,
                    source,
                    activity,
                    rr_intervals_ms,
                    unit: RateUnit::PerMin,
                })
            }),
        (
            any_finite(),
            option::of(pick(TemperatureSite::ALL)),
            pick(TemperatureUnit::ALL)
        )
            .prop_map(|(value, site, unit)| Measurement::Temperature(Temperature {
                value,
                site,
                unit
            })),
        (quantity(), pick(WeightUnit::ALL))
            .prop_map(|(value, unit)| Measurement::Weight(Weight { value, unit })),
        (
            pick(EcgFinding::ALL),
            option::of(quantity()),
            option::of(quantity()),
            option::of(quantity()),
            option::of(pick(LeadConfig::ALL))
        )
            .prop_map(
                |(finding, ventricular_rate, duration_s, longest_rr_s, lead_config)| {
                    Measurement::Ecg(EcgSummary {
                        finding,
                        ventricular_rate,
                        duration_s,
                        longest_rr_s,
                        lead_config,
                    })
                }
            ),
        (
            prop_oneof![(1u32..2000).prop_map(f64::from), 0.5f64..10_000.0],
            prop_oneof![
                (lead(), vec(any::<i32>(), 1..200))
                    .prop_map(|(lead, samples_uv)| EcgLeads::Single { lead, samples_uv }),
                (1usize..4, 1usize..50).prop_flat_map(|(n, len)| {
                    (vec(lead(), n), vec(vec(any::<i32>(), len), n))
                        .prop_map(|(leads, samples_uv)| EcgLeads::Multi { leads, samples_uv })
                }),
            ],
        )
            .prop_map(
                |(sample_rate_hz, leads)| Measurement::EcgWaveform(EcgWaveform {
                    sample_rate_hz,
                    leads,
                    unit: VoltageUnit::MicroVolt
                })
            ),
    ]
}

pub fn reading() -> impl Strategy<Value = Reading> {
    (
        id_text(),
        option::of(any::<u64>()),
        instant(),
        option::of(naive()),
        measurement(),
        vec("[a-z_]{1,24}", 0..3),
        vec(pick(Symptom::ALL), 0..3),
    )
        .prop_map(
            |(device, record_seq, time, device_time, measurement, status, symptoms)| Reading {
                device_id: DeviceId::parse(&device).unwrap(),
                record_seq,
                time,
                device_time,
                measurement,
                status,
                symptoms,
            },
        )
}

pub fn envelope() -> impl Strategy<Value = Envelope> {
    (id_text(), any::<u64>(), instant(), vec(reading(), 0..8)).prop_map(
        |(gw, batch_seq, sent_at, readings)| Envelope {
            gateway_id: GatewayId::parse(&gw).unwrap(),
            batch_seq,
            sent_at,
            readings,
        },
    )
}

pub fn status() -> impl Strategy<Value = Status> {
    (
        id_text(),
        pick(&[GatewayState::Online, GatewayState::Offline]),
        option::of("[0-9]\\.[0-9]{1,2}\\.[0-9]{1,2}"),
        option::of(any::<u64>()),
        instant(),
    )
        .prop_map(|(gw, state, agent_version, outbox_depth, time)| Status {
            gateway_id: GatewayId::parse(&gw).unwrap(),
            state,
            agent_version,
            outbox_depth,
            time,
        })
}

pub fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (any::<u64>(), any::<u64>()).prop_map(|(a, b)| Command::BackfillBatches {
            from_batch_seq: a.min(b),
            to_batch_seq: a.max(b),
        }),
        (id_text(), any::<u64>()).prop_map(|(d, from_record_seq)| Command::BackfillDevice {
            device_id: DeviceId::parse(&d).unwrap(),
            from_record_seq,
        }),
        (id_text(), "\\PC{0,40}").prop_map(|(d, reason)| Command::Remeasure {
            device_id: DeviceId::parse(&d).unwrap(),
            reason,
        }),
    ]
}

pub fn alert() -> impl Strategy<Value = AlertEvent> {
    (
        id_text(),
        pick(&[
            AlertEventKind::Opened,
            AlertEventKind::Upgraded,
            AlertEventKind::Escalated,
            AlertEventKind::Acknowledged,
            AlertEventKind::Resolved,
        ]),
        id_text(),
        "[a-z_0-9]{2,30}",
        pick(Severity::ALL),
        instant(),
        vec(
            (instant(), measurement())
                .prop_map(|(time, measurement)| Evidence { time, measurement }),
            0..4,
        ),
        "\\PC{0,30}",
        1u8..=3,
    )
        .prop_map(
            |(
                alert,
                event,
                patient,
                rule,
                severity,
                opened_at,
                evidence,
                display,
                escalation_level,
            )| {
                AlertEvent {
                    ack_url: format!("/api/v1/alerts/{alert}/ack"),
                    alert_id: AlertId::parse(&alert).unwrap(),
                    event,
                    patient_id: PatientId::parse(&patient).unwrap(),
                    rule,
                    severity,
                    opened_at,
                    evidence,
                    display,
                    escalation_level,
                }
            },
        )
}
