//! Bluetooth LE payload decoding, in payloads per second, one group per characteristic.
//!
//! Each group decodes one realistic payload (`Throughput::Elements(1)`): what a home
//! device sends for one measurement, with the optional fields real devices fill. The
//! `decode` function is the pure `vigil-gatt` decoder; `decode_to_reading` (where the
//! characteristic becomes a reading) adds the mapping to a `vigil_model::Reading`.
//! `baseline_copy`, in the same group, only copies the payload into an owned buffer:
//! the floor any consumer of the bytes pays.

#![allow(clippy::unwrap_used)] // bench setup: a failed unwrap is a broken bench

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_gatt::bpm::{
    BloodPressureMeasurement, BpOptional, IntermediateCuffPressure, MeasurementStatus, PressureUnit,
};
use vigil_gatt::glucose::{ConcentrationUnit, GlucoseContext, GlucoseMeasurement, GlucoseSample};
use vigil_gatt::hrm::{HeartRateMeasurement, HeartRateValue};
use vigil_gatt::plx::{PlxContinuous, PlxSpotCheck, PlxStatus, Spo2Pr};
use vigil_gatt::pmd::{ControlPoint, DataFrame, Response, Settings};
use vigil_gatt::racp::{self, Request};
use vigil_gatt::temperature::{TemperatureMeasurement, TemperatureUnit};
use vigil_gatt::to_reading::{self, ReadingContext};
use vigil_gatt::weight::{BmiHeight, UnitSystem, WeightMeasurement};
use vigil_gatt::{DateTime, Float, SFloat};
use vigil_model::DeviceId;

fn now() -> DateTime {
    DateTime {
        year: 2026,
        month: 11,
        day: 22,
        hours: 7,
        minutes: 58,
        seconds: 3,
    }
}

fn ctx() -> ReadingContext {
    ReadingContext::new(
        DeviceId::parse("dev-1").unwrap(),
        chrono::DateTime::parse_from_rfc3339("2026-11-22T08:00:00+08:00").unwrap(),
    )
}

/// One group: `decode` alone, and `decode_to_reading` when `to_reading` is given.
fn group<T>(
    c: &mut Criterion,
    name: &str,
    payload: &[u8],
    decode: impl Fn(&[u8]) -> T,
    to_reading: Option<&dyn Fn(&T) -> vigil_model::Reading>,
) {
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Elements(1));
    // Baseline: only taking an owned copy of the payload, the least any consumer does.
    g.bench_function("baseline_copy", |b| {
        b.iter(|| black_box(black_box(payload).to_vec()))
    });
    g.bench_function("decode", |b| {
        b.iter(|| black_box(decode(black_box(payload))))
    });
    if let Some(map) = to_reading {
        g.bench_function("decode_to_reading", |b| {
            b.iter(|| black_box(map(&decode(black_box(payload)))))
        });
    }
    g.finish();
}

fn gatt(c: &mut Criterion) {
    let ctx = ctx();
    let sf = |m, e| SFloat::number(m, e).unwrap();

    let payload = sf(189, -1).encode();
    group(
        c,
        "gatt_sfloat",
        &payload,
        |b| SFloat::decode(b).unwrap(),
        None,
    );
    let payload = Float::number(365, -1).unwrap().encode();
    group(
        c,
        "gatt_float",
        &payload,
        |b| Float::decode(b).unwrap(),
        None,
    );

    let glucose = GlucoseMeasurement {
        sequence_number: 17,
        base_time: now(),
        time_offset_min: Some(0),
        sample: Some(GlucoseSample {
            concentration: sf(110, -5),
            sample_type: 1,
            sample_location: 1,
        }),
        unit: ConcentrationUnit::KgPerL,
        sensor_status: Some(0),
        context_follows: true,
    }
    .encode();
    group(
        c,
        "gatt_glucose",
        &glucose,
        |b| GlucoseMeasurement::decode(b).unwrap(),
        Some(&|m| to_reading::glucose(m, None, &ctx).unwrap()),
    );

    let context = GlucoseContext {
        sequence_number: 17,
        extended_flags: None,
        carbohydrate: None,
        meal: Some(1),
        tester_health: Some(vigil_gatt::glucose::TesterHealth {
            tester: 1,
            health: 5,
        }),
        exercise: None,
        medication: None,
        medication_unit: vigil_gatt::glucose::MedicationUnit::Kg,
        hba1c_pct: None,
    }
    .encode();
    group(
        c,
        "gatt_glucose_context",
        &context,
        |b| GlucoseContext::decode(b).unwrap(),
        None,
    );

    let racp = Request::report_records_from(258).encode();
    group(
        c,
        "gatt_racp",
        &racp,
        |b| racp::Message::decode(b, None).unwrap(),
        None,
    );

    let bpm = BloodPressureMeasurement {
        unit: PressureUnit::MmHg,
        systolic: sf(142, 0),
        diastolic: sf(91, 0),
        mean_arterial_pressure: sf(108, 0),
        optional: BpOptional {
            timestamp: Some(now()),
            pulse_rate: Some(sf(72, 0)),
            user_id: Some(1),
            measurement_status: Some(MeasurementStatus(0x0004)),
        },
    }
    .encode();
    group(
        c,
        "gatt_bpm",
        &bpm,
        |b| BloodPressureMeasurement::decode(b).unwrap(),
        Some(&|m| to_reading::blood_pressure(m, &ctx).unwrap()),
    );

    let icp = IntermediateCuffPressure {
        unit: PressureUnit::MmHg,
        cuff_pressure: sf(150, 0),
        optional: BpOptional {
            timestamp: None,
            pulse_rate: None,
            user_id: None,
            measurement_status: None,
        },
    }
    .encode();
    group(
        c,
        "gatt_intermediate_cuff_pressure",
        &icp,
        |b| IntermediateCuffPressure::decode(b).unwrap(),
        None,
    );

    let hrm = HeartRateMeasurement {
        heart_rate: HeartRateValue::Uint8(64),
        sensor_contact_bits: 3,
        energy_expended_kj: None,
        rr_intervals: Some(vec![952, 963, 947]),
    }
    .encode();
    group(
        c,
        "gatt_hrm",
        &hrm,
        |b| HeartRateMeasurement::decode(b).unwrap(),
        Some(&|m| to_reading::heart_rate(m, &ctx).unwrap()),
    );

    let status = PlxStatus {
        measurement_status: Some(0x0080),
        device_sensor_status: Some(0),
        pulse_amplitude_index: Some(sf(32, -1)),
    };
    let pair = Spo2Pr {
        spo2: sf(97, 0),
        pulse_rate: sf(72, 0),
    };
    let spot = PlxSpotCheck {
        reading: pair,
        timestamp: Some(now()),
        status,
        device_clock_not_set: false,
    }
    .encode();
    group(
        c,
        "gatt_plx_spot_check",
        &spot,
        |b| PlxSpotCheck::decode(b).unwrap(),
        Some(&|m| to_reading::plx_spot_check(m, &ctx).unwrap()),
    );
    let cont = PlxContinuous {
        reading: pair,
        fast: Some(pair),
        slow: None,
        status,
    }
    .encode();
    group(
        c,
        "gatt_plx_continuous",
        &cont,
        |b| PlxContinuous::decode(b).unwrap(),
        None,
    );

    let temp = TemperatureMeasurement {
        temperature: Float::number(365, -1).unwrap(),
        unit: TemperatureUnit::Celsius,
        timestamp: Some(now()),
        temperature_type: Some(1),
    }
    .encode();
    group(
        c,
        "gatt_temperature",
        &temp,
        |b| TemperatureMeasurement::decode(b).unwrap(),
        Some(&|m| to_reading::temperature(m, &ctx).unwrap()),
    );

    let weight = WeightMeasurement {
        unit_system: UnitSystem::Si,
        weight_raw: 13000,
        timestamp: Some(now()),
        user_id: Some(1),
        bmi_height: Some(BmiHeight {
            bmi_raw: 225,
            height_raw: 1700,
        }),
    }
    .encode();
    group(
        c,
        "gatt_weight",
        &weight,
        |b| WeightMeasurement::decode(b).unwrap(),
        Some(&|m| to_reading::weight(m, &ctx).unwrap()),
    );

    let response = Response {
        opcode: 1,
        type_byte: 0,
        status: 0,
        more: Some(0),
        parameters: Settings::h10_ecg().encode().unwrap(),
    }
    .encode();
    group(
        c,
        "gatt_pmd_control_point",
        &response,
        |b| match ControlPoint::decode(b, None).unwrap() {
            ControlPoint::Response(r) => r.settings(),
            _ => None,
        },
        None,
    );

    // One H10 frame: 229 bytes, 73 samples.
    let frame = DataFrame::ecg(
        599_616_001_000_000_000,
        (0..73).map(|i| (i * 37) % 2000 - 1000).collect(),
    )
    .encode()
    .unwrap();
    let id = DeviceId::parse("h10-1").unwrap();
    let offset = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    group(
        c,
        "gatt_pmd_ecg_frame",
        &frame,
        |b| DataFrame::decode(b).unwrap(),
        Some(&|f| to_reading::ecg_waveform(f, 130, &id, offset).unwrap()),
    );
}

criterion_group!(benches, gatt);
criterion_main!(benches);
