//! Fuzz the Heart Rate Measurement (0x2A37) decoder and the mapping to readings.
//!
//! Invariant beyond "no panic": a decoded value re-encodes to exactly the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_gatt::hrm::HeartRateMeasurement;
use vigil_gatt::to_reading::{ReadingContext, heart_rate};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = HeartRateMeasurement::decode(data) {
        assert_eq!(m.encode(), data);
        assert!(m.rr_intervals.as_ref().is_none_or(|rr| !rr.is_empty()));
        let ctx = ReadingContext::new(
            vigil_model::DeviceId::parse("fuzz").expect("valid id"),
            chrono::DateTime::parse_from_rfc3339("2026-11-22T08:00:00+08:00").expect("valid time"),
        );
        heart_rate(&m, &ctx).expect("every heart rate is a reading");
    }
});
