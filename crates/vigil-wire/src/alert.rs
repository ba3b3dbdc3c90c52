//! Alert events (`vigil.alert.v1`), platform -> doctor's client on
//! `vigil/v1/doctor/{doctor_id}/alerts`. Delivered at least once; `alert_id` is
//! stable for the whole episode so a client shows a repeated event once.

use chrono::{DateTime, FixedOffset};
use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use vigil_model::measurement::Measurement;
use vigil_model::vocab::Severity;
use vigil_model::{AlertId, PatientId};

use crate::envelope::format_instant;
use crate::error::PayloadError;
use crate::fields::{Fields, Problem};
use crate::json::Object;
use crate::measurement::{decode_measurement_object, serialize_measurement_entries};

/// The `schema` of an alert event.
pub const ALERT_SCHEMA: &str = "vigil.alert.v1";

/// What happened to the episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEventKind {
    Opened,
    Upgraded,
    Escalated,
    Acknowledged,
    Resolved,
}

/// One reading that supports an alert, in the reading's own units.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub time: DateTime<FixedOffset>,
    pub measurement: Measurement,
}

/// An alert event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub alert_id: AlertId,
    pub event: AlertEventKind,
    pub patient_id: PatientId,
    /// The rule id of `clinical/rules.md` §1 (`bp_crisis`, `glucose_hypo_level2`, ...).
    pub rule: String,
    pub severity: Severity,
    #[serde(with = "rfc3339")]
    pub opened_at: DateTime<FixedOffset>,
    pub evidence: Vec<Evidence>,
    /// The triggering value as the client shows it, canonical units ("186/108 mmHg").
    /// An acknowledgement must read it back.
    pub display: String,
    /// 1 = responsible doctor, 2 = on-call / specialist, 3 = duty desk.
    pub escalation_level: u8,
    pub ack_url: String,
}

/// Encodes an alert event.
pub fn encode_alert(event: &AlertEvent) -> Vec<u8> {
    crate::tagged::encode(ALERT_SCHEMA, event)
}

/// Decodes an alert event; unknown fields are ignored.
pub fn decode_alert(payload: &[u8]) -> Result<AlertEvent, PayloadError> {
    let event: AlertEvent = crate::tagged::decode("alert event", ALERT_SCHEMA, payload)?;
    if !(1..=3).contains(&event.escalation_level) {
        return Err(PayloadError {
            payload: "alert event",
            message: format!(
                "'escalation_level' is {}; expected 1, 2 or 3",
                event.escalation_level
            ),
        });
    }
    Ok(event)
}

impl Serialize for Evidence {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("time", &format_instant(&self.time))?;
        serialize_measurement_entries(&mut m, &self.measurement)?;
        m.end()
    }
}

impl<'de> Deserialize<'de> for Evidence {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(d)?;
        let obj = Object::of_map(&map);
        let decode = || -> Result<Evidence, Problem> {
            let time = Fields::new(&obj, "").req_instant("time")?;
            Ok(Evidence {
                time,
                measurement: decode_measurement_object(&obj)?,
            })
        };
        decode().map_err(|p| D::Error::custom(format_args!("evidence: {}", p.message)))
    }
}

/// Serde adapter: RFC 3339 with a required offset, kept as sent.
pub(crate) mod rfc3339 {
    use chrono::{DateTime, FixedOffset};
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        t: &DateTime<FixedOffset>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::envelope::format_instant(t))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<DateTime<FixedOffset>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        crate::fields::parse_instant(&s)
            .map_err(|why| serde::de::Error::custom(format_args!("{s:?} {why}")))
    }
}
