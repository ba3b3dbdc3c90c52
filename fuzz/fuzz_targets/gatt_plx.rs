//! Fuzz the PLX Spot-Check (0x2A5E) and PLX Continuous (0x2A5F) decoders, and the
//! mapping to readings.
//!
//! Invariant beyond "no panic": a decoded value re-encodes to exactly the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_gatt::plx::{PlxContinuous, PlxSpotCheck};
use vigil_gatt::to_reading::{ReadingContext, plx_continuous, plx_spot_check};

fuzz_target!(|data: &[u8]| {
    let ctx = ReadingContext::new(
        vigil_model::DeviceId::parse("fuzz").expect("valid id"),
        chrono::DateTime::parse_from_rfc3339("2026-11-22T08:00:00+08:00").expect("valid time"),
    );
    if let Ok(m) = PlxSpotCheck::decode(data) {
        assert_eq!(m.encode(), data);
        let _ = plx_spot_check(&m, &ctx);
    }
    if let Ok(m) = PlxContinuous::decode(data) {
        assert_eq!(m.encode(), data);
        let _ = plx_continuous(&m, &ctx);
    }
});
