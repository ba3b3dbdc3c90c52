//! Gateway status (`vigil.status.v1`), published retained on
//! `vigil/v1/gw/{gateway_id}/status` and registered as the gateway's Last Will with
//! `"state": "offline"`.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};
use vigil_model::GatewayId;

use crate::error::PayloadError;

/// The `schema` of a status payload.
pub const STATUS_SCHEMA: &str = "vigil.status.v1";

/// Whether a gateway is connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewayState {
    Online,
    Offline,
}

/// A gateway's status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub gateway_id: GatewayId,
    pub state: GatewayState,
    /// The agent's version string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_version: Option<String>,
    /// Readings waiting in the gateway's outbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbox_depth: Option<u64>,
    #[serde(with = "crate::alert::rfc3339")]
    pub time: DateTime<FixedOffset>,
}

/// Encodes a status payload.
pub fn encode_status(status: &Status) -> Vec<u8> {
    crate::tagged::encode(STATUS_SCHEMA, status)
}

/// Decodes a status payload; unknown fields are ignored.
pub fn decode_status(payload: &[u8]) -> Result<Status, PayloadError> {
    crate::tagged::decode("status", STATUS_SCHEMA, payload)
}
