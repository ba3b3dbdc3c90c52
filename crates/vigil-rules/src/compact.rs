//! A reading's evidence as a BP session keeps it: 24 bytes instead of 80.
//!
//! A patient measuring holds a session of up to [`crate::engine::SESSION_READINGS`]
//! readings, each with its evidence (the reading as measured, shown with an alert):
//! 100 000 engines, each in a 3-reading session, took 110 MB with the evidence whole and
//! take 80 MB with it compact (`tests/engine_memory.rs`). A BP reading in whole tenths
//! of its unit (every cuff's mmHg, kPa to one decimal) and a time within ±292 years of
//! 1970 fits in 24 bytes; anything else is kept whole, boxed. Either way
//! [`Kept::to_evidence`] gives back exactly what was kept: a compact form is used only
//! if it expands to a value equal, bit for bit, to the original.

use chrono::{DateTime, FixedOffset};
use vigil_model::Measurement;
use vigil_model::measurement::BloodPressure;
use vigil_model::units::PressureUnit;

use crate::engine::Evidence;

/// "No value" in a [`Kept::Bp`] field.
const NONE: u16 = u16::MAX;

/// One reading's evidence, compact where that is exact.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kept {
    /// A BP reading: the instant in nanoseconds since 1970 (UTC), the offset it was
    /// written with, and its pressures and pulse in tenths of their unit.
    Bp {
        nanos: i64,
        offset: FixedOffset,
        tenths: [u16; 4],
        unit: PressureUnit,
    },
    /// Anything else, as it came.
    Whole(Box<Evidence>),
}

impl Kept {
    /// Keeps `e`, compact if that gives it back exactly.
    pub(crate) fn new(e: Evidence) -> Kept {
        match Kept::compact(&e) {
            Some(k) if same(&k.to_evidence(), &e) => k,
            _ => Kept::Whole(Box::new(e)),
        }
    }

    fn compact(e: &Evidence) -> Option<Kept> {
        let Measurement::Bp(bp) = &e.measurement else {
            return None;
        };
        let optional = |v: Option<f64>| v.map_or(Some(NONE), tenths);
        Some(Kept::Bp {
            nanos: e.time.timestamp_nanos_opt()?,
            offset: *e.time.offset(),
            tenths: [
                tenths(bp.systolic)?,
                tenths(bp.diastolic)?,
                optional(bp.mean)?,
                optional(bp.pulse)?,
            ],
            unit: bp.unit,
        })
    }

    /// The reading's instant in nanoseconds since 1970 (saturated, as the engine's).
    pub(crate) fn nanos(&self) -> i64 {
        match self {
            Kept::Bp { nanos, .. } => *nanos,
            Kept::Whole(e) => crate::engine::nanos(e.time.with_timezone(&chrono::Utc)),
        }
    }

    /// The evidence kept.
    pub(crate) fn to_evidence(&self) -> Evidence {
        match self {
            Kept::Whole(e) => (**e).clone(),
            Kept::Bp {
                nanos,
                offset,
                tenths,
                unit,
            } => {
                let value = |t: u16| f64::from(t) / 10.0;
                let optional = |t: u16| (t != NONE).then(|| value(t));
                Evidence {
                    time: DateTime::from_timestamp_nanos(*nanos).with_timezone(offset),
                    measurement: Measurement::Bp(BloodPressure {
                        systolic: value(tenths[0]),
                        diastolic: value(tenths[1]),
                        mean: optional(tenths[2]),
                        pulse: optional(tenths[3]),
                        unit: *unit,
                    }),
                }
            }
        }
    }
}

/// `v` in whole tenths, if it is one exactly (and not the "no value" mark).
fn tenths(v: f64) -> Option<u16> {
    let t = (v * 10.0).round();
    if !(0.0..f64::from(NONE)).contains(&t) || (t / 10.0).to_bits() != v.to_bits() {
        return None;
    }
    // In range and whole, checked above.
    Some(t as u16)
}

/// Equal, with the same offset and the pressures equal bit for bit (`==` compares
/// instants whatever their offsets, and takes -0.0 for 0.0).
fn same(a: &Evidence, b: &Evidence) -> bool {
    let bits = |m: &Measurement| match m {
        Measurement::Bp(bp) => Some([
            bp.systolic.to_bits(),
            bp.diastolic.to_bits(),
            bp.mean.map_or(0, f64::to_bits),
            bp.pulse.map_or(0, f64::to_bits),
        ]),
        _ => None,
    };
    a == b && a.time.offset() == b.time.offset() && bits(&a.measurement) == bits(&b.measurement)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use vigil_model::measurement::{Glucose, Weight};
    use vigil_model::units::{GlucoseUnit, WeightUnit};

    fn bp(systolic: f64, diastolic: f64, mean: Option<f64>, pulse: Option<f64>) -> Measurement {
        Measurement::Bp(BloodPressure {
            systolic,
            diastolic,
            mean,
            pulse,
            unit: PressureUnit::MmHg,
        })
    }

    fn at(rfc3339: &str, m: Measurement) -> Evidence {
        Evidence {
            time: DateTime::parse_from_rfc3339(rfc3339).expect("a valid time"),
            measurement: m,
        }
    }

    #[test]
    fn a_cuff_reading_is_kept_in_24_bytes_and_given_back_as_it_was() {
        assert_eq!(size_of::<Kept>(), 24);
        let e = at(
            "2026-12-07T07:31:02.123456789+08:00",
            bp(186.0, 108.0, None, Some(92.0)),
        );
        let k = Kept::new(e.clone());
        assert!(matches!(k, Kept::Bp { .. }), "{k:?}");
        assert_eq!(format!("{:?}", k.to_evidence()), format!("{e:?}"));
    }

    #[test]
    fn what_does_not_fit_is_kept_whole() {
        let cases = [
            // Hundredths of a kPa.
            bp(24.81, 14.4, None, None),
            // The "no value" mark and beyond.
            bp(6553.5, 80.0, None, None),
            bp(-0.0, 80.0, None, None),
            bp(f64::NAN, 80.0, None, None),
            Measurement::Weight(Weight {
                value: 61.5,
                unit: WeightUnit::Kg,
            }),
            Measurement::Glucose(Glucose {
                value: Some(5.5),
                flag: None,
                context: None,
                sample_type: None,
                unit: GlucoseUnit::MmolPerL,
            }),
        ];
        for m in cases {
            let e = at("2026-12-07T07:31:02+08:00", m);
            let k = Kept::new(e.clone());
            assert!(matches!(k, Kept::Whole(_)), "{k:?}");
            assert_eq!(format!("{:?}", k.to_evidence()), format!("{e:?}"));
        }
        // Beyond ±292 years of 1970 no nanosecond count fits an i64.
        let far = at("2300-01-01T00:00:00Z", bp(120.0, 80.0, None, None));
        assert!(matches!(Kept::new(far), Kept::Whole(_)));
    }

    proptest! {
        /// Whatever is kept is given back exactly, pressures bit for bit.
        #[test]
        fn kept_evidence_is_given_back_exactly(
            nanos in -9_000_000_000_000_000_000i64..9_000_000_000_000_000_000,
            offset_minutes in -14 * 60..=14 * 60i32,
            tenths in proptest::array::uniform4(0u32..70_000),
            raw in proptest::array::uniform4(any::<f64>()),
            use_raw in any::<[bool; 4]>(),
            some in any::<[bool; 2]>(),
            kpa in any::<bool>(),
        ) {
            let v = |i: usize| if use_raw[i] { raw[i] } else { f64::from(tenths[i]) / 10.0 };
            let offset = FixedOffset::east_opt(offset_minutes * 60).expect("within a day");
            let e = Evidence {
                time: DateTime::from_timestamp_nanos(nanos).with_timezone(&offset),
                measurement: Measurement::Bp(BloodPressure {
                    systolic: v(0),
                    diastolic: v(1),
                    mean: some[0].then(|| v(2)),
                    pulse: some[1].then(|| v(3)),
                    unit: if kpa { PressureUnit::KPa } else { PressureUnit::MmHg },
                }),
            };
            // Debug text shows -0.0 and NaN as they are, the offset too.
            let kept = Kept::new(e.clone());
            if !use_raw.contains(&true) && tenths.iter().all(|t| *t < u32::from(NONE)) {
                prop_assert!(matches!(kept, Kept::Bp { .. }), "{:?}", kept);
            }
            let back = kept.to_evidence();
            prop_assert_eq!(format!("{back:?}"), format!("{e:?}"));
        }
    }
}
