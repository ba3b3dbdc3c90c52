//! Fuzz the Temperature Measurement (0x2A1C) decoder and the mapping to readings.
//!
//! Invariant beyond "no panic": a decoded value re-encodes to exactly the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_gatt::temperature::TemperatureMeasurement;
use vigil_gatt::to_reading::{ReadingContext, temperature};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = TemperatureMeasurement::decode(data) {
        assert_eq!(m.encode(), data);
        let ctx = ReadingContext::new(
            vigil_model::DeviceId::parse("fuzz").expect("valid id"),
            chrono::DateTime::parse_from_rfc3339("2026-11-22T08:00:00+08:00").expect("valid time"),
        );
        let _ = temperature(&m, &ctx);
    }
});
