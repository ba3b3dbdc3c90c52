//! Proptest strategies shared by the unit tests.

use proptest::prelude::*;

use crate::datetime::DateTime;
use crate::ieee11073::{Float, SFloat};

/// Any SFLOAT bit pattern (numbers and every special value).
pub(crate) fn sfloat() -> impl Strategy<Value = SFloat> {
    any::<u16>().prop_map(SFloat::from_raw)
}

/// Any FLOAT bit pattern.
pub(crate) fn float() -> impl Strategy<Value = Float> {
    any::<u32>().prop_map(Float::from_raw)
}

/// Any raw Date Time (including unknown and impossible ones).
pub(crate) fn date_time() -> impl Strategy<Value = DateTime> {
    any::<[u8; 7]>().prop_map(|b| DateTime {
        year: u16::from_le_bytes([b[0], b[1]]),
        month: b[2],
        day: b[3],
        hours: b[4],
        minutes: b[5],
        seconds: b[6],
    })
}
