//! Fuzz the Blood Pressure Measurement (0x2A35) and Intermediate Cuff Pressure (0x2A36)
//! decoders, and the mapping to readings.
//!
//! Invariants beyond "no panic": a blood pressure re-encodes to exactly the input; a
//! cuff pressure (whose two unused slots are ignored) re-encodes to bytes that decode
//! to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_gatt::bpm::{BloodPressureMeasurement, IntermediateCuffPressure};
use vigil_gatt::to_reading::{ReadingContext, blood_pressure};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = BloodPressureMeasurement::decode(data) {
        assert_eq!(m.encode(), data);
        let ctx = ReadingContext::new(
            vigil_model::DeviceId::parse("fuzz").expect("valid id"),
            chrono::DateTime::parse_from_rfc3339("2026-11-22T08:00:00+08:00").expect("valid time"),
        );
        let _ = blood_pressure(&m, &ctx);
    }
    if let Ok(c) = IntermediateCuffPressure::decode(data) {
        let again = IntermediateCuffPressure::decode(&c.encode()).expect("re-encoded decodes");
        assert_eq!(again, c);
    }
});
