//! MQTT topics of wire contract v1.
//!
//! | topic | direction |
//! |---|---|
//! | `vigil/v1/gw/{gateway_id}/readings` | gateway -> platform |
//! | `vigil/v1/gw/{gateway_id}/status` | gateway -> platform (retained; Last Will) |
//! | `vigil/v1/gw/{gateway_id}/cmd` | platform -> gateway |
//! | `vigil/v1/doctor/{doctor_id}/alerts` | platform -> doctor's client |
//!
//! Ids follow the wire grammar, so a built topic never contains a wildcard or an
//! extra level.

use std::fmt;

use vigil_model::{DoctorId, GatewayId, IdError};

/// The common prefix of every v1 topic.
pub const PREFIX: &str = "vigil/v1";

/// A concrete v1 topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    Readings(GatewayId),
    Status(GatewayId),
    Command(GatewayId),
    DoctorAlerts(DoctorId),
}

/// A topic that is not a v1 topic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic {0:?} is not under 'vigil/v1/'")]
    NotV1(String),
    #[error(
        "topic {0:?} is not a Vigil v1 topic (gw/{{id}}/readings|status|cmd or doctor/{{id}}/alerts)"
    )]
    Unknown(String),
    #[error("topic {topic:?}: id {id:?} {source}")]
    BadId {
        topic: String,
        id: String,
        source: IdError,
    },
}

impl Topic {
    /// Parses a topic name as received on a publish.
    pub fn parse(topic: &str) -> Result<Topic, TopicError> {
        let rest = topic
            .strip_prefix("vigil/v1/")
            .ok_or_else(|| TopicError::NotV1(topic.to_owned()))?;
        let parts: Vec<&str> = rest.split('/').collect();
        let bad_id = |id: &str, source| TopicError::BadId {
            topic: topic.to_owned(),
            id: id.to_owned(),
            source,
        };
        match parts.as_slice() {
            ["gw", id, leaf] => {
                let gw = GatewayId::parse(id).map_err(|e| bad_id(id, e))?;
                match *leaf {
                    "readings" => Ok(Topic::Readings(gw)),
                    "status" => Ok(Topic::Status(gw)),
                    "cmd" => Ok(Topic::Command(gw)),
                    _ => Err(TopicError::Unknown(topic.to_owned())),
                }
            }
            ["doctor", id, "alerts"] => Ok(Topic::DoctorAlerts(
                DoctorId::parse(id).map_err(|e| bad_id(id, e))?,
            )),
            _ => Err(TopicError::Unknown(topic.to_owned())),
        }
    }

    /// The gateway this topic belongs to, if it is a gateway topic.
    pub fn gateway(&self) -> Option<&GatewayId> {
        match self {
            Topic::Readings(g) | Topic::Status(g) | Topic::Command(g) => Some(g),
            Topic::DoctorAlerts(_) => None,
        }
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Topic::Readings(g) => write!(f, "{PREFIX}/gw/{g}/readings"),
            Topic::Status(g) => write!(f, "{PREFIX}/gw/{g}/status"),
            Topic::Command(g) => write!(f, "{PREFIX}/gw/{g}/cmd"),
            Topic::DoctorAlerts(d) => write!(f, "{PREFIX}/doctor/{d}/alerts"),
        }
    }
}

/// Subscription filter for every gateway's readings.
pub const ALL_READINGS: &str = "vigil/v1/gw/+/readings";
/// Subscription filter for every gateway's status.
pub const ALL_STATUS: &str = "vigil/v1/gw/+/status";

/// A shared subscription to every gateway's readings, so several ingesters split one
/// stream (`$share/{group}/vigil/v1/gw/+/readings`).
pub fn shared_readings(group: &str) -> Result<String, IdError> {
    vigil_model::id::check_id(group)?;
    Ok(format!("$share/{group}/{ALL_READINGS}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn builds_the_topics_of_the_contract() {
        let gw = GatewayId::parse("gw-0001").unwrap();
        assert_eq!(
            Topic::Readings(gw.clone()).to_string(),
            "vigil/v1/gw/gw-0001/readings"
        );
        assert_eq!(
            Topic::Status(gw.clone()).to_string(),
            "vigil/v1/gw/gw-0001/status"
        );
        assert_eq!(Topic::Command(gw).to_string(), "vigil/v1/gw/gw-0001/cmd");
        let d = DoctorId::parse("d-0001").unwrap();
        assert_eq!(
            Topic::DoctorAlerts(d).to_string(),
            "vigil/v1/doctor/d-0001/alerts"
        );
        assert_eq!(
            shared_readings("ingest").unwrap(),
            "$share/ingest/vigil/v1/gw/+/readings"
        );
    }

    #[test]
    fn rejects_foreign_and_malformed_topics_with_a_reason() {
        assert!(matches!(
            Topic::parse("other/gw/1/readings"),
            Err(TopicError::NotV1(_))
        ));
        assert!(matches!(
            Topic::parse("vigil/v1/gw/gw-1/readings/extra"),
            Err(TopicError::Unknown(_))
        ));
        assert!(matches!(
            Topic::parse("vigil/v1/gw/+/readings"),
            Err(TopicError::BadId { .. })
        ));
        assert!(matches!(
            Topic::parse("vigil/v1/gw//readings"),
            Err(TopicError::BadId { .. })
        ));
    }

    proptest! {
        #[test]
        fn topics_round_trip(id in "[A-Za-z0-9][A-Za-z0-9._-]{0,63}", which in 0u8..4) {
            let t = match which {
                0 => Topic::Readings(GatewayId::parse(&id).unwrap()),
                1 => Topic::Status(GatewayId::parse(&id).unwrap()),
                2 => Topic::Command(GatewayId::parse(&id).unwrap()),
                _ => Topic::DoctorAlerts(DoctorId::parse(&id).unwrap()),
            };
            prop_assert_eq!(Topic::parse(&t.to_string()), Ok(t));
        }
    }
}
