//! Payloads that are a serde struct plus a `schema` field (status, alert events).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::PayloadError;

#[derive(Serialize)]
struct Out<'a, T> {
    schema: &'static str,
    #[serde(flatten)]
    body: &'a T,
}

#[derive(Deserialize)]
struct In<T> {
    schema: String,
    #[serde(flatten)]
    body: T,
}

/// Encodes `body` with `"schema": schema` added.
pub(crate) fn encode<T: Serialize>(schema: &'static str, body: &T) -> Vec<u8> {
    // Our payload types serialize only strings, integers and finite floats: this
    // cannot fail. An empty payload would be rejected by any decoder, never misread.
    serde_json::to_vec(&Out { schema, body }).unwrap_or_default()
}

/// Decodes a payload whose `schema` must equal `schema`; unknown fields are ignored.
pub(crate) fn decode<T: DeserializeOwned>(
    payload: &'static str,
    schema: &'static str,
    bytes: &[u8],
) -> Result<T, PayloadError> {
    let err = |message: String| PayloadError { payload, message };
    let t: In<T> = serde_json::from_slice(bytes).map_err(|e| err(e.to_string()))?;
    if t.schema != schema {
        return Err(err(format!(
            "'schema' is {:?}; expected {schema:?}",
            t.schema
        )));
    }
    Ok(t.body)
}
