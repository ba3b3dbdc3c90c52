//! What the rule engine's tests and measurements feed it.

use chrono::{DateTime, FixedOffset, Utc};
use vigil_model::measurement::BloodPressure;
use vigil_model::units::PressureUnit;
use vigil_model::{Measurement, Reading};
use vigil_rules::validate::{Context, Validated, validate};

/// A cuff's reading in mmHg measured at `time` and received at `received`, validated.
pub fn bp(
    time: DateTime<FixedOffset>,
    (systolic, diastolic, pulse): (f64, f64, f64),
    received: DateTime<Utc>,
) -> Validated {
    let reading = Reading {
        device_id: "bpm-000001".parse().expect("a valid device id"),
        record_seq: None,
        time,
        device_time: None,
        measurement: Measurement::Bp(BloodPressure {
            systolic,
            diastolic,
            mean: None,
            pulse: Some(pulse),
            unit: PressureUnit::MmHg,
        }),
        status: vec![],
        symptoms: vec![],
    };
    validate(reading, &Context::received_at(received)).expect("a plausible reading")
}
