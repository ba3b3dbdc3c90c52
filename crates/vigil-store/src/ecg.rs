//! Compact storage of ECG samples: one blob per strip (a reading), never a row per
//! sample.
//!
//! Format (version 1): `0x01`, the lead count (u8), then per lead the sample count and
//! each sample as the zig-zag varint of its difference from the previous one (the first
//! from 0). ECG samples move little from one to the next, so most take one or two
//! bytes, against five or six as JSON text.

/// Encodes per-lead samples (µV).
pub fn encode(leads: &[&[i32]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + leads.iter().map(|l| l.len() * 2).sum::<usize>());
    out.push(1);
    out.push(u8::try_from(leads.len()).unwrap_or(u8::MAX));
    for lead in leads.iter().take(usize::from(u8::MAX)) {
        varint(&mut out, lead.len() as u64);
        let mut prev = 0i64;
        for &s in *lead {
            let delta = i64::from(s) - prev;
            varint(&mut out, zigzag(delta));
            prev = i64::from(s);
        }
    }
    out
}

/// Decodes what [`encode`] wrote; `None` for anything else. Only the canonical form
/// is accepted (minimal varints, no bits past 64), so a blob that decodes is exactly
/// what [`encode`] makes of its samples.
pub fn decode(bytes: &[u8]) -> Option<Vec<Vec<i32>>> {
    let (&version, rest) = bytes.split_first()?;
    if version != 1 {
        return None;
    }
    let (&count, mut rest) = rest.split_first()?;
    let mut leads = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let n = read_varint(&mut rest)?;
        // Every sample takes at least one byte: refuse counts the input cannot hold.
        if n > rest.len() as u64 {
            return None;
        }
        let mut samples = Vec::with_capacity(usize::try_from(n).ok()?);
        let mut prev = 0i64;
        for _ in 0..n {
            let value = prev.checked_add(unzigzag(read_varint(&mut rest)?))?;
            samples.push(i32::try_from(value).ok()?);
            prev = value;
        }
        leads.push(samples);
    }
    rest.is_empty().then_some(leads)
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn read_varint(input: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = input.split_first()?;
        *input = rest;
        // The tenth byte holds bit 63 only.
        if shift == 63 && b > 1 {
            return None;
        }
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            // A last byte of zero after others would be a longer spelling of v.
            return (b != 0 || shift == 0).then_some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_real_ecg_second_takes_under_two_bytes_a_sample() {
        // 360 samples of a smooth wave with a QRS-like spike.
        let samples: Vec<i32> = (0..360i32)
            .map(|i| {
                if (100..110).contains(&i) {
                    900 - (i - 105).abs() * 150
                } else {
                    (i % 40) * 3 - 60
                }
            })
            .collect();
        let blob = encode(&[&samples]);
        assert!(blob.len() < 2 * samples.len(), "{} bytes", blob.len());
        assert_eq!(decode(&blob), Some(vec![samples]));
    }

    #[test]
    fn garbage_is_refused_not_misread() {
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[2, 1, 0]), None);
        assert_eq!(decode(&[1, 1, 5, 0]), None); // 5 samples announced, 1 byte left
        assert_eq!(decode(&[1, 0, 0]), None); // trailing byte
        // Longer spellings of a number, and bits past 64, are not the format.
        assert_eq!(decode(&[1, 1, 1, 0x82, 0x00]), None);
        assert_eq!(decode(&[1, 1, 1, 0x02]), Some(vec![vec![1]]));
        let mut too_wide = vec![1, 1, 1];
        too_wide.extend([0xff; 9]);
        too_wide.push(0x02);
        assert_eq!(decode(&too_wide), None);
    }

    proptest! {
        #[test]
        fn any_leads_round_trip(leads in proptest::collection::vec(proptest::collection::vec(any::<i32>(), 0..300), 0..4)) {
            let refs: Vec<&[i32]> = leads.iter().map(Vec::as_slice).collect();
            prop_assert_eq!(decode(&encode(&refs)), Some(leads.clone()));
        }

        #[test]
        fn bytes_that_decode_are_exactly_the_encoding_of_their_samples(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Some(leads) = decode(&bytes) {
                let refs: Vec<&[i32]> = leads.iter().map(Vec::as_slice).collect();
                prop_assert_eq!(encode(&refs), bytes);
            }
        }
    }
}
