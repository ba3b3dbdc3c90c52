//! GATT Date Time (0x2A08): 7 bytes, year uint16 LE, then month, day, hours, minutes,
//! seconds (uint8 each).
//!
//! Kept **raw** (spec/decode.md §1 "Timestamps"): no time zone is attached, 0 in
//! `year`, `month` or `day` means "not known", and no field is range-checked at decode
//! time (a meter's clock is reported as the meter sent it). Conversions to a calendar
//! instant ([`DateTime::to_naive`], [`DateTime::plus_minutes`]) are total: they give
//! `None` for an unknown or impossible date rather than inventing one.

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};

use crate::bytes::{Reader, expect_len};
use crate::error::{Characteristic, Error};

/// A raw GATT Date Time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DateTime {
    /// 1582–9999, or 0 when not known.
    pub year: u16,
    /// 1–12, or 0 when not known.
    pub month: u8,
    /// 1–31, or 0 when not known.
    pub day: u8,
    pub hours: u8,
    pub minutes: u8,
    pub seconds: u8,
}

impl DateTime {
    /// The length on the wire.
    pub const LEN: usize = 7;

    /// Decodes exactly 7 bytes.
    pub fn decode(bytes: &[u8]) -> Result<DateTime, Error> {
        expect_len(bytes, Self::LEN, Characteristic::DateTime)?;
        let mut r = Reader::new(bytes, Characteristic::DateTime);
        let v = DateTime::read(&mut r)?;
        r.finish()?;
        Ok(v)
    }

    /// The 7 wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        self.write(&mut out);
        out
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<DateTime, Error> {
        Ok(DateTime {
            year: r.u16()?,
            month: r.u8()?,
            day: r.u8()?,
            hours: r.u8()?,
            minutes: r.u8()?,
            seconds: r.u8()?,
        })
    }

    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.year.to_le_bytes());
        out.extend_from_slice(&[self.month, self.day, self.hours, self.minutes, self.seconds]);
    }

    /// True when year, month and day are all known (non-zero).
    pub fn is_date_known(&self) -> bool {
        self.year != 0 && self.month != 0 && self.day != 0
    }

    /// The calendar date and time, when the date is fully known and every field is a
    /// possible value (no 30 February, no hour 24); `None` otherwise.
    pub fn to_naive(&self) -> Option<NaiveDateTime> {
        if !self.is_date_known() {
            return None;
        }
        NaiveDate::from_ymd_opt(
            i32::from(self.year),
            u32::from(self.month),
            u32::from(self.day),
        )?
        .and_hms_opt(
            u32::from(self.hours),
            u32::from(self.minutes),
            u32::from(self.seconds),
        )
    }

    /// A Date Time holding this calendar instant; `None` outside years 1–9999 (which a
    /// Date Time cannot hold without its year meaning "unknown").
    pub fn from_naive(t: NaiveDateTime) -> Option<DateTime> {
        let year = u16::try_from(t.year())
            .ok()
            .filter(|y| (1..=9999).contains(y))?;
        Some(DateTime {
            year,
            month: u8::try_from(t.month()).ok()?,
            day: u8::try_from(t.day()).ok()?,
            hours: u8::try_from(t.hour()).ok()?,
            minutes: u8::try_from(t.minute()).ok()?,
            seconds: u8::try_from(t.second()).ok()?,
        })
    }

    /// This instant plus `minutes` (the Glucose time offset); `None` when this is not a
    /// fully known, possible instant or the result leaves years 1–9999.
    pub fn plus_minutes(&self, minutes: i16) -> Option<DateTime> {
        let t = self.to_naive()?;
        let shifted = t.checked_add_signed(chrono::Duration::minutes(i64::from(minutes)))?;
        DateTime::from_naive(shifted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// spec/decode.md §1 "Timestamps": 7 raw bytes, year little-endian.
    #[test]
    fn a_date_time_decodes_field_by_field() {
        // 0x07EA = 2026 (little-endian EA 07), month 11, day 22, 07:58:03.
        let t = DateTime::decode(&[0xEA, 0x07, 11, 22, 7, 58, 3]).unwrap();
        assert_eq!(
            t,
            DateTime {
                year: 2026,
                month: 11,
                day: 22,
                hours: 7,
                minutes: 58,
                seconds: 3
            }
        );
        assert_eq!(t.to_naive().unwrap().to_string(), "2026-11-22 07:58:03");
    }

    /// spec/decode.md §1: 0 means "not known"; the decoder must not invent a year.
    #[test]
    fn an_unknown_year_stays_zero_and_has_no_calendar_instant() {
        let t = DateTime::decode(&[0, 0, 11, 22, 7, 58, 3]).unwrap();
        assert_eq!(t.year, 0);
        assert!(!t.is_date_known());
        assert_eq!(t.to_naive(), None);
        assert_eq!(t.plus_minutes(5), None);
    }

    /// spec/decode.md §1 "Timestamps": raw fields, never corrected or invented.
    #[test]
    fn impossible_dates_decode_raw_but_have_no_instant() {
        let t = DateTime::decode(&[0xEA, 0x07, 2, 30, 25, 0, 0]).unwrap();
        assert_eq!((t.month, t.day, t.hours), (2, 30, 25));
        assert_eq!(t.to_naive(), None);
    }

    /// spec/decode.md §3 Glucose `effective_time` = base time + offset, on the calendar.
    #[test]
    fn a_time_offset_crosses_midnight_and_year_ends() {
        let t = DateTime {
            year: 2026,
            month: 12,
            day: 31,
            hours: 23,
            minutes: 50,
            seconds: 0,
        };
        let later = t.plus_minutes(15).unwrap();
        assert_eq!(
            (
                later.year,
                later.month,
                later.day,
                later.hours,
                later.minutes
            ),
            (2027, 1, 1, 0, 5)
        );
        let earlier = t.plus_minutes(-24 * 60).unwrap();
        assert_eq!((earlier.month, earlier.day), (12, 30));
    }

    /// spec/decode.md §1 "Timestamps": a Date Time is exactly 7 bytes.
    #[test]
    fn short_and_long_payloads_are_rejected() {
        for n in 0..7 {
            assert!(matches!(
                DateTime::decode(&[1; 7][..n]),
                Err(Error::Truncated { needed: 7, .. })
            ));
        }
        assert!(matches!(
            DateTime::decode(&[1; 8]),
            Err(Error::TrailingBytes {
                expected: 7,
                got: 8,
                ..
            })
        ));
    }

    proptest! {
        /// spec/decode.md §1 "Timestamps": raw, so every 7 bytes round-trip.
        #[test]
        fn every_date_time_round_trips(bytes in any::<[u8; 7]>()) {
            let t = DateTime::decode(&bytes).unwrap();
            prop_assert_eq!(t.encode(), bytes.to_vec());
        }
    }
}
