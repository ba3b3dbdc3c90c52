//! Fuzz the Glucose Measurement (0x2A18) and Glucose Measurement Context (0x2A34)
//! decoders, and the mapping to readings.
//!
//! Invariants beyond "no panic": a decoded value re-encodes to exactly the input; the
//! convenience conversions never panic; mapping to a reading never panics.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_gatt::glucose::{GlucoseContext, GlucoseMeasurement};
use vigil_gatt::to_reading::{ReadingContext, glucose};

fuzz_target!(|data: &[u8]| {
    let ctx = ReadingContext::new(
        vigil_model::DeviceId::parse("fuzz").expect("valid id"),
        chrono::DateTime::parse_from_rfc3339("2026-11-22T08:00:00+08:00").expect("valid time"),
    );
    let m = GlucoseMeasurement::decode(data);
    if let Ok(m) = &m {
        assert_eq!(m.encode(), data);
        let _ = m.concentration_mg_per_dl().map(|d| d.to_f64());
        let _ = m.concentration_mmol_per_l().map(|d| d.to_f64());
        let _ = m.effective_time();
        let _ = m.sensor_status_bits();
        let _ = glucose(m, None, &ctx);
    }
    if let Ok(c) = GlucoseContext::decode(data) {
        assert_eq!(c.encode(), data);
        let _ = c.meal_name();
        if let Ok(m) = &m {
            let _ = glucose(m, Some(&c), &ctx);
        }
    }
});
