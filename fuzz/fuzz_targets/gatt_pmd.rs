//! Fuzz the Polar PMD decoders: control point (every direction), data frames and the
//! bare settings TLV, and the ECG mapping to readings.
//!
//! Invariant beyond "no panic": a decoded value re-encodes to exactly the input
//! (compared as bytes: a NaN conversion factor is not equal to itself).

#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_gatt::Direction;
use vigil_gatt::pmd::{ControlPoint, DataFrame, Settings};
use vigil_gatt::to_reading::{ecg_waveform, first_sample_instant};

fuzz_target!(|data: &[u8]| {
    for direction in [None, Some(Direction::ClientToServer), Some(Direction::ServerToClient)] {
        if let Ok(c) = ControlPoint::decode(data, direction) {
            assert_eq!(c.encode().expect("decoded values encode"), data);
            if let ControlPoint::Response(r) = &c {
                let _ = r.settings();
            }
        }
    }
    if let Ok(f) = DataFrame::decode(data) {
        assert_eq!(f.encode().expect("decoded frames encode"), data);
        let id = vigil_model::DeviceId::parse("fuzz").expect("valid id");
        let offset = chrono::FixedOffset::east_opt(8 * 3600).expect("valid offset");
        for rate in [1u16, 130, u16::MAX] {
            assert!(first_sample_instant(&f, rate).is_some());
            ecg_waveform(&f, rate, &id, offset).expect("a decoded ECG frame is a reading");
        }
    }
    if let Ok(s) = Settings::decode(data) {
        assert_eq!(s.encode().expect("decoded settings encode"), data);
    }
});
