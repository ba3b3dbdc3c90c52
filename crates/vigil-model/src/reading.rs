//! A reading: one measurement by one device at one instant, and its identity.

use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};

use crate::id::DeviceId;
use crate::measurement::{Measurement, ReadingType};
use crate::vocab::Symptom;

/// One reading as a gateway reports it (wire contract v1, one element of `readings`).
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub device_id: DeviceId,
    /// The device's own record number (e.g. the Glucose sequence number), if it has one.
    pub record_seq: Option<u64>,
    /// Measurement time as corrected by the gateway, with its UTC offset.
    pub time: DateTime<FixedOffset>,
    /// The device's raw clock, no zone. Keeps identity stable when the gateway
    /// re-reads a meter after correcting its clock.
    pub device_time: Option<NaiveDateTime>,
    pub measurement: Measurement,
    /// The device's status bits by name, as decoded (free vocabulary).
    pub status: Vec<String>,
    /// Patient-reported red-flag symptoms entered on the gateway.
    pub symptoms: Vec<Symptom>,
}

/// The instant part of a reading's identity: the device's own clock when sent, else
/// the measurement instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentityTime {
    Device(NaiveDateTime),
    Measured(DateTime<Utc>),
}

/// What makes two readings the same reading (wire v1; `clinical/rules.md` §0.5):
/// (`device_id`, `record_seq`, T) when the device numbers its records, else
/// (`device_id`, `type`, T), T being `device_time` when present, else `time`.
///
/// T is part of the identity even with a record number, so a 16-bit record number
/// that wrapped or reset cannot hide a new reading.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReadingIdentity {
    pub device_id: DeviceId,
    pub key: IdentityKey,
    pub time: IdentityTime,
}

/// The middle element of an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IdentityKey {
    RecordSeq(u64),
    Type(ReadingType),
}

impl Reading {
    /// This reading's identity.
    pub fn identity(&self) -> ReadingIdentity {
        ReadingIdentity {
            device_id: self.device_id.clone(),
            key: match self.record_seq {
                Some(n) => IdentityKey::RecordSeq(n),
                None => IdentityKey::Type(self.measurement.reading_type()),
            },
            time: match self.device_time {
                Some(t) => IdentityTime::Device(t),
                None => IdentityTime::Measured(self.time.with_timezone(&Utc)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measurement::Weight;
    use crate::units::WeightUnit;

    fn weight(record_seq: Option<u64>, time: &str, device_time: Option<&str>) -> Reading {
        Reading {
            device_id: DeviceId::parse("scale-1").unwrap(),
            record_seq,
            time: DateTime::parse_from_rfc3339(time).unwrap(),
            device_time: device_time.map(|t| t.parse().unwrap()),
            measurement: Measurement::Weight(Weight {
                value: 65.0,
                unit: WeightUnit::Kg,
            }),
            status: vec![],
            symptoms: vec![],
        }
    }

    #[test]
    fn the_same_instant_in_two_offsets_is_the_same_reading() {
        let a = weight(None, "2026-11-22T07:58:03+08:00", None);
        let b = weight(None, "2026-11-21T23:58:03Z", None);
        assert_eq!(a.identity(), b.identity());
    }

    #[test]
    fn the_device_clock_keeps_identity_when_the_gateway_corrects_time() {
        let a = weight(
            Some(17),
            "2026-11-22T07:58:03+08:00",
            Some("2026-11-22T07:58:00"),
        );
        let b = weight(
            Some(17),
            "2026-11-22T08:03:03+08:00",
            Some("2026-11-22T07:58:00"),
        );
        assert_eq!(a.identity(), b.identity());
    }

    #[test]
    fn a_wrapped_record_number_at_another_time_is_a_new_reading() {
        let a = weight(
            Some(3),
            "2026-11-22T07:58:03+08:00",
            Some("2026-11-22T07:58:00"),
        );
        let b = weight(
            Some(3),
            "2026-11-23T07:58:03+08:00",
            Some("2026-11-23T07:58:00"),
        );
        assert_ne!(a.identity(), b.identity());
    }
}
