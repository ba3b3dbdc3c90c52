//! Fuzz the Weight Measurement (0x2A9D) decoder and the mapping to readings.
//!
//! Invariant beyond "no panic": a decoded value re-encodes to exactly the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_gatt::to_reading::{ReadingContext, weight};
use vigil_gatt::weight::WeightMeasurement;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = WeightMeasurement::decode(data) {
        assert_eq!(m.encode(), data);
        let ctx = ReadingContext::new(
            vigil_model::DeviceId::parse("fuzz").expect("valid id"),
            chrono::DateTime::parse_from_rfc3339("2026-11-22T08:00:00+08:00").expect("valid time"),
        );
        let _ = weight(&m, &ctx);
    }
});
