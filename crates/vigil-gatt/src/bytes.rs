//! Little-endian reading and writing with typed errors instead of panics.

use crate::error::{Characteristic, Error};

/// Reads little-endian fields from a payload. Every read is bounds-checked and fails
/// with [`Error::Truncated`] naming the characteristic; nothing here can panic.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    characteristic: Characteristic,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8], characteristic: Characteristic) -> Self {
        Reader {
            bytes,
            pos: 0,
            characteristic,
        }
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let end = self.pos.checked_add(n).ok_or(Error::Truncated {
            characteristic: self.characteristic,
            needed: usize::MAX,
            got: self.bytes.len(),
        })?;
        let slice = self.bytes.get(self.pos..end).ok_or(Error::Truncated {
            characteristic: self.characteristic,
            needed: end,
            got: self.bytes.len(),
        })?;
        self.pos = end;
        Ok(slice)
    }

    /// The rest of the payload.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let slice = self.bytes.get(self.pos..).unwrap_or(&[]);
        self.pos = self.bytes.len();
        slice
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, Error> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub(crate) fn i16(&mut self) -> Result<i16, Error> {
        Ok(i16::from_le_bytes(self.array()?))
    }

    /// An unsigned 24-bit integer (3 bytes).
    pub(crate) fn u24(&mut self) -> Result<u32, Error> {
        let [a, b, c] = self.array()?;
        Ok(u32::from_le_bytes([a, b, c, 0]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(crate) fn i32(&mut self) -> Result<i32, Error> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub(crate) fn f32(&mut self) -> Result<f32, Error> {
        Ok(f32::from_le_bytes(self.array()?))
    }

    /// Fails with [`Error::TrailingBytes`] unless every byte was read.
    pub(crate) fn finish(&self) -> Result<(), Error> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(Error::TrailingBytes {
                characteristic: self.characteristic,
                expected: self.pos,
                got: self.bytes.len(),
            })
        }
    }
}

/// Checks a payload against the exact length its flags announce: shorter is
/// [`Error::Truncated`], longer is [`Error::TrailingBytes`].
pub(crate) fn expect_len(
    bytes: &[u8],
    expected: usize,
    characteristic: Characteristic,
) -> Result<(), Error> {
    match bytes.len() {
        n if n < expected => Err(Error::Truncated {
            characteristic,
            needed: expected,
            got: n,
        }),
        n if n > expected => Err(Error::TrailingBytes {
            characteristic,
            expected,
            got: n,
        }),
        _ => Ok(()),
    }
}

/// Fails with [`Error::ReservedFlags`] when `value` sets any bit of `reserved_mask`.
pub(crate) fn check_reserved(
    value: u32,
    reserved_mask: u32,
    field: &'static str,
    characteristic: Characteristic,
) -> Result<(), Error> {
    if value & reserved_mask == 0 {
        Ok(())
    } else {
        Err(Error::ReservedFlags {
            characteristic,
            field,
            value,
            reserved_mask: value & reserved_mask,
        })
    }
}

/// Lower-case hex, no separators (`parameters_hex`, `operand_hex`).
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0F)]));
    }
    s
}

/// Writes the 3 low bytes of `v`, little-endian.
pub(crate) fn put_u24(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes()[..3]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// spec/decode.md §3: all multi-byte fields are little-endian; reads past the end are truncations.
    #[test]
    fn reads_are_little_endian_and_bounded() {
        let mut r = Reader::new(&[0x34, 0x12, 0x01, 0x02, 0x03], Characteristic::Sfloat);
        assert_eq!(r.u16().unwrap(), 0x1234);
        assert_eq!(r.u24().unwrap(), 0x030201);
        assert_eq!(
            r.u8(),
            Err(Error::Truncated {
                characteristic: Characteristic::Sfloat,
                needed: 6,
                got: 5
            })
        );
        assert!(r.finish().is_ok());
    }

    /// spec/decode.md §3 RACP `operand_hex`, §4 `parameters_hex`: the hex form used.
    #[test]
    fn hex_is_lower_case_without_separators() {
        assert_eq!(to_hex(&[0x00, 0xAB, 0x7f]), "00ab7f");
        assert_eq!(to_hex(&[]), "");
    }
}
