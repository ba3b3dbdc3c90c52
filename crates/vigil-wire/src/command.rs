//! Platform -> gateway commands (`vigil.cmd.v1`) on `vigil/v1/gw/{gateway_id}/cmd`.
//!
//! - `backfill` by batch range: republish envelopes `from_batch_seq..=to_batch_seq`
//!   (sent when a gap in a gateway's `batch_seq` does not fill in time);
//! - `backfill` by device: re-read a meter's memory from `from_record_seq`;
//! - `remeasure`: ask the patient to measure again (poor signal, suspect unit, an
//!   unconfirmed crisis that needs a repeat after 5 minutes' rest).

use serde::ser::{Serialize, SerializeMap, Serializer};
use vigil_model::DeviceId;

use crate::error::PayloadError;
use crate::fields::{Fields, type_name};
use crate::json::Json;

/// The `schema` of a command payload.
pub const COMMAND_SCHEMA: &str = "vigil.cmd.v1";

/// A command to a gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Republish the envelopes of this inclusive `batch_seq` range.
    BackfillBatches {
        from_batch_seq: u64,
        to_batch_seq: u64,
    },
    /// Re-read a device's memory from this record number on.
    BackfillDevice {
        device_id: DeviceId,
        from_record_seq: u64,
    },
    /// Ask the patient to measure again with this device.
    Remeasure { device_id: DeviceId, reason: String },
}

impl Serialize for Command {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("schema", COMMAND_SCHEMA)?;
        match self {
            Command::BackfillBatches {
                from_batch_seq,
                to_batch_seq,
            } => {
                m.serialize_entry("cmd", "backfill")?;
                m.serialize_entry("from_batch_seq", from_batch_seq)?;
                m.serialize_entry("to_batch_seq", to_batch_seq)?;
            }
            Command::BackfillDevice {
                device_id,
                from_record_seq,
            } => {
                m.serialize_entry("cmd", "backfill")?;
                m.serialize_entry("device_id", device_id)?;
                m.serialize_entry("from_record_seq", from_record_seq)?;
            }
            Command::Remeasure { device_id, reason } => {
                m.serialize_entry("cmd", "remeasure")?;
                m.serialize_entry("device_id", device_id)?;
                m.serialize_entry("reason", reason)?;
            }
        }
        m.end()
    }
}

/// Encodes a command.
pub fn encode_command(cmd: &Command) -> Vec<u8> {
    serde_json::to_vec(cmd).unwrap_or_default()
}

/// Decodes a command; unknown fields are ignored, an unknown `cmd` is an error (the
/// gateway reports it rather than guessing).
pub fn decode_command(payload: &[u8]) -> Result<Command, PayloadError> {
    let err = |message: String| PayloadError {
        payload: "command",
        message,
    };
    let root = Json::parse(payload).map_err(|e| err(e.to_string()))?;
    let Json::Object(obj) = &root else {
        return Err(err(format!(
            "must be a JSON object, not {}",
            type_name(&root)
        )));
    };
    let f = Fields::new(obj, "");
    let schema = f.req_str("schema").map_err(|p| err(p.message))?;
    if schema != COMMAND_SCHEMA {
        return Err(err(format!(
            "'schema' is {schema:?}; expected {COMMAND_SCHEMA:?}"
        )));
    }
    let device = |f: &Fields<'_>| -> Result<DeviceId, PayloadError> {
        let s = f.req_str("device_id").map_err(|p| err(p.message))?;
        DeviceId::parse(s).map_err(|e| err(format!("'device_id' {s:?} {e}")))
    };
    let u64_field = |key: &str| -> Result<u64, PayloadError> {
        f.opt_u64(key)
            .map_err(|p| err(p.message))?
            .ok_or_else(|| err(format!("missing '{key}'")))
    };
    match f.req_str("cmd").map_err(|p| err(p.message))? {
        "backfill" if f.has("from_batch_seq") || f.has("to_batch_seq") => {
            let from_batch_seq = u64_field("from_batch_seq")?;
            let to_batch_seq = u64_field("to_batch_seq")?;
            if from_batch_seq > to_batch_seq {
                return Err(err(format!(
                    "'from_batch_seq' {from_batch_seq} is after 'to_batch_seq' {to_batch_seq}"
                )));
            }
            Ok(Command::BackfillBatches {
                from_batch_seq,
                to_batch_seq,
            })
        }
        "backfill" if f.has("device_id") => Ok(Command::BackfillDevice {
            device_id: device(&f)?,
            from_record_seq: u64_field("from_record_seq")?,
        }),
        "backfill" => Err(err(
            "a backfill needs 'from_batch_seq' and 'to_batch_seq', or 'device_id' and 'from_record_seq'"
                .to_owned(),
        )),
        "remeasure" => Ok(Command::Remeasure {
            device_id: device(&f)?,
            reason: f.req_str("reason").map_err(|p| err(p.message))?.to_owned(),
        }),
        other => Err(err(format!(
            "unknown 'cmd' {other:?}; expected 'backfill' or 'remeasure'"
        ))),
    }
}
