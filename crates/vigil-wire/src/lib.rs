//! Vigil wire contract v1 as code: MQTT topics, the readings envelope, gateway status,
//! commands and alert events, with their encoders and decoders.
//!
//! The contract is public (`docs/wire-format.md`); third-party gateways implement it.
//! So decoding is strict about what the contract requires and lenient about what it
//! does not mention:
//!
//! - unknown fields are ignored (forward compatibility: producers may add optional
//!   fields);
//! - unknown reading types, units outside a type's accepted set, values outside a
//!   closed vocabulary and times without an offset are errors;
//! - errors are per reading: one bad reading never rejects its siblings, and each
//!   error names the reading, the field and the fix
//!   (`reading 3: unit 'mmHg' is not UCUM; use 'mm[Hg]'`);
//! - no input makes the decoder panic, and its memory and nesting are bounded
//!   ([`DecodeLimits`]).
//!
//! The same codec serves the ingester and `vigil envelope check`, so what the check
//! accepts is exactly what the platform accepts.

pub mod alert;
pub mod check;
pub mod command;
pub mod envelope;
pub mod error;
mod fields;
mod json;
mod measurement;
pub mod pubacks;
pub mod status;
mod tagged;
pub mod topic;

pub use envelope::{
    DecodeLimits, DecodedEnvelope, Envelope, READINGS_SCHEMA, decode_envelope,
    decode_envelope_with, encode_envelope,
};
pub use error::{EnvelopeError, EnvelopeErrorKind, PayloadError, ReadingError, ReadingErrorKind};
pub use fields::{parse_device_time, parse_instant};
pub use topic::Topic;
