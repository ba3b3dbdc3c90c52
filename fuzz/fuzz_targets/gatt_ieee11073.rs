//! Fuzz the IEEE-11073 SFLOAT / FLOAT decoders and the GATT Date Time.
//!
//! Invariants beyond "no panic": a decoded value re-encodes to exactly the input; a
//! special value has no number; a number's text parses back to its f64.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_gatt::{DateTime, Float, SFloat};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = SFloat::decode(data) {
        assert_eq!(v.encode(), data);
        assert_eq!(v.value().is_none(), v.kind().is_special());
        if let Some(d) = v.value() {
            assert_eq!(d.to_string().parse::<f64>().ok(), Some(d.to_f64()));
        }
    }
    if let Ok(v) = Float::decode(data) {
        assert_eq!(v.encode(), data);
        assert_eq!(v.value().is_none(), v.kind().is_special());
        if let Some(d) = v.value() {
            assert_eq!(d.to_string().parse::<f64>().ok(), Some(d.to_f64()));
        }
    }
    if let Ok(t) = DateTime::decode(data) {
        assert_eq!(t.encode(), data);
        let _ = t.plus_minutes(i16::MIN);
        let _ = t.plus_minutes(i16::MAX);
    }
});
