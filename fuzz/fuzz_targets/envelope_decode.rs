//! Fuzz the readings-envelope decoder and the envelope check built on it.
//!
//! Invariants checked beyond "no panic":
//! - a decoded envelope re-encodes (valid readings only) to bytes that decode again
//!   to the same readings;
//! - the check report's `ok` agrees with the decoder.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_wire::{Envelope, decode_envelope, encode_envelope};

fuzz_target!(|data: &[u8]| {
    let report = vigil_wire::check::check_envelope(data);
    match decode_envelope(data) {
        Err(_) => assert!(report.error.is_some()),
        Ok(env) => {
            assert_eq!(report.ok, env.all_ok());
            let readings: Vec<_> = env.readings.iter().filter_map(|r| r.clone().ok()).collect();
            let again = Envelope {
                gateway_id: env.gateway_id.clone(),
                batch_seq: env.batch_seq,
                sent_at: env.sent_at,
                readings,
            };
            let bytes = encode_envelope(&again);
            let back = decode_envelope(&bytes).expect("re-encoded envelope decodes");
            let back: Vec<_> = back.readings.into_iter().map(|r| r.expect("valid reading")).collect();
            assert_eq!(back, again.readings);
        }
    }
});
