//! Fuzz the clinical store's ECG strip blob codec (`vigil_store::ecg`).
//!
//! Invariants beyond "no panic":
//! - a blob that decodes is exactly the encoding of its samples (the format has one
//!   spelling per strip, so a stored strip reads back as sent);
//! - any samples, split into two leads at a point the input chooses, round-trip.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vigil_store::ecg::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Some(leads) = decode(data) {
        let refs: Vec<&[i32]> = leads.iter().map(Vec::as_slice).collect();
        assert_eq!(encode(&refs), data);
    }
    let samples: Vec<i32> = data
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let split = data.first().map_or(0, |b| usize::from(*b) % (samples.len() + 1));
    let (a, b) = samples.split_at(split);
    assert_eq!(decode(&encode(&[a, b])), Some(vec![a.to_vec(), b.to_vec()]));
});
