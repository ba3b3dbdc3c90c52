//! Property tests: encode -> decode round-trips for every payload type of the wire
//! contract, bit for bit (floats included: `serde_json` is built with
//! `float_roundtrip`), and a decode that never panics on arbitrary bytes.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

mod strategies;

use proptest::prelude::*;
use strategies::*;
use vigil_wire::alert::{decode_alert, encode_alert};
use vigil_wire::command::{decode_command, encode_command};
use vigil_wire::status::{decode_status, encode_status};
use vigil_wire::{decode_envelope, encode_envelope};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn readings_envelopes_round_trip(env in envelope()) {
        let bytes = encode_envelope(&env);
        let decoded = decode_envelope(&bytes).unwrap();
        prop_assert_eq!(&decoded.gateway_id, &env.gateway_id);
        prop_assert_eq!(decoded.batch_seq, env.batch_seq);
        prop_assert_eq!(decoded.sent_at.offset(), env.sent_at.offset());
        let readings: Vec<_> = decoded.readings.into_iter().map(|r| r.unwrap()).collect();
        for (got, want) in readings.iter().zip(&env.readings) {
            // DateTime equality compares instants; the offset must survive too.
            prop_assert_eq!(got.time.offset(), want.time.offset());
        }
        prop_assert_eq!(&readings, &env.readings);
        let again = vigil_wire::Envelope { readings, ..env };
        prop_assert_eq!(encode_envelope(&again), bytes);
    }

    #[test]
    fn status_round_trips(s in status()) {
        prop_assert_eq!(decode_status(&encode_status(&s)).unwrap(), s);
    }

    #[test]
    fn commands_round_trip(c in command()) {
        prop_assert_eq!(decode_command(&encode_command(&c)).unwrap(), c);
    }

    #[test]
    fn alert_events_round_trip(a in alert()) {
        let bytes = encode_alert(&a);
        let back = decode_alert(&bytes).unwrap();
        prop_assert_eq!(encode_alert(&back), bytes);
        prop_assert_eq!(back, a);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_envelope(&bytes);
        let _ = decode_status(&bytes);
        let _ = decode_command(&bytes);
        let _ = decode_alert(&bytes);
    }

    /// Mutating one byte of a valid envelope yields a clean result or a clean error.
    #[test]
    fn mutated_envelopes_never_panic(env in envelope(), pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let mut bytes = encode_envelope(&env);
        if !bytes.is_empty() {
            let i = pos.index(bytes.len());
            bytes[i] = byte;
        }
        let _ = vigil_wire::check::check_envelope(&bytes);
    }
}
