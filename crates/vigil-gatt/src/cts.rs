//! Current Time (0x2A2B) of the Current Time Service (0x1805): the device's clock, read
//! at each connection to measure how far it is off, and written to set it.
//!
//! ```text
//! Date Time (7) | Day of Week (1: 0 unknown, 1 Monday .. 7 Sunday) | Fractions256 (1) | Adjust Reason (1)
//! ```
//!
//! Adjust Reason bits: 0 manual time update, 1 external reference time update, 2
//! change of time zone, 3 change of DST; 4–7 reserved (rejected).

use chrono::{Datelike, NaiveDateTime, Timelike};

use crate::bytes::{Reader, expect_len};
use crate::datetime::DateTime;
use crate::error::{Characteristic, Error};

const CT: Characteristic = Characteristic::CurrentTime;

/// Adjust Reason bit 1: the time was set from an external reference (what a gateway
/// writing its own, network-synchronised clock sets).
pub const EXTERNAL_REFERENCE_UPDATE: u8 = 0x02;

/// A decoded Current Time value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CurrentTime {
    pub date_time: DateTime,
    pub day_of_week: u8,
    pub fractions256: u8,
    pub adjust_reason: u8,
}

impl CurrentTime {
    pub const LEN: usize = 10;

    /// Decodes exactly 10 bytes.
    pub fn decode(bytes: &[u8]) -> Result<CurrentTime, Error> {
        expect_len(bytes, Self::LEN, CT)?;
        let mut r = Reader::new(bytes, CT);
        let date_time = DateTime::read(&mut r)?;
        let day_of_week = r.u8()?;
        let fractions256 = r.u8()?;
        let adjust_reason = r.u8()?;
        r.finish()?;
        if day_of_week > 7 {
            return Err(Error::invalid(
                CT,
                format!("day of week {day_of_week} is not 0 (unknown) or 1-7"),
            ));
        }
        if adjust_reason & 0xF0 != 0 {
            return Err(Error::invalid(
                CT,
                format!("adjust reason 0x{adjust_reason:02X} sets reserved bits 4-7"),
            ));
        }
        Ok(CurrentTime {
            date_time,
            day_of_week,
            fractions256,
            adjust_reason,
        })
    }

    /// The 10 wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        self.date_time.write(&mut out);
        out.extend_from_slice(&[self.day_of_week, self.fractions256, self.adjust_reason]);
        out
    }

    /// The value that sets a device's clock to `t` (local time), with `reason`.
    pub fn at(t: NaiveDateTime, reason: u8) -> Option<CurrentTime> {
        Some(CurrentTime {
            date_time: DateTime::from_naive(t)?,
            day_of_week: u8::try_from(t.weekday().number_from_monday()).ok()?,
            fractions256: u8::try_from(t.nanosecond() / 3_906_250).unwrap_or(255),
            adjust_reason: reason,
        })
    }

    /// The clock's reading, when it is a fully known, possible instant.
    pub fn to_naive(&self) -> Option<NaiveDateTime> {
        let t = self.date_time.to_naive()?;
        t.checked_add_signed(chrono::Duration::microseconds(
            i64::from(self.fractions256) * 1_000_000 / 256,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_current_time_round_trips_and_reserved_bits_are_refused() {
        // 2026-11-22 07:58:03, Sunday, 128/256 s, external reference update.
        let bytes = [0xEA, 0x07, 11, 22, 7, 58, 3, 7, 128, 0x02];
        let ct = CurrentTime::decode(&bytes).unwrap();
        assert_eq!(ct.encode(), bytes);
        let t = ct.to_naive().unwrap();
        assert_eq!(t.to_string(), "2026-11-22 07:58:03.500");
        let at = CurrentTime::at(t, EXTERNAL_REFERENCE_UPDATE).unwrap();
        assert_eq!(at, ct);
        let mut bad = bytes;
        bad[9] = 0x12;
        assert!(CurrentTime::decode(&bad).is_err());
        bad = bytes;
        bad[7] = 8;
        assert!(CurrentTime::decode(&bad).is_err());
        assert!(CurrentTime::decode(&bytes[..9]).is_err());
    }
}
