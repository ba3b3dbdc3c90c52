//! Fuzz the Record Access Control Point (0x2A52) decoder, in every direction.
//!
//! Invariant beyond "no panic": a decoded message re-encodes to exactly the input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_gatt::Direction;
use vigil_gatt::racp::Message;

fuzz_target!(|data: &[u8]| {
    for direction in [None, Some(Direction::ClientToServer), Some(Direction::ServerToClient)] {
        if let Ok(m) = Message::decode(data, direction) {
            assert_eq!(m.encode(), data);
        }
    }
});
