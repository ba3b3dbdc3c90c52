//! Errors of the wire codec.
//!
//! Two levels, as `spec/envelope-check.md` defines them:
//! - [`EnvelopeError`]: the envelope as a whole cannot be trusted (not JSON, wrong
//!   schema, bad gateway id, ...). Nothing in it is processed; the ingester
//!   quarantines the raw payload.
//! - [`ReadingError`]: one reading is malformed. Its siblings are unaffected.
//!
//! Every message names the field, says what was expected and what arrived, in words
//! a gateway integrator can act on.

use std::fmt;

/// What kind of problem an envelope has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnvelopeErrorKind {
    TooLarge,
    TooDeep,
    NotJson,
    NumberOutOfRange,
    NotObject,
    Schema,
    GatewayId,
    BatchSeq,
    SentAt,
    Readings,
}

/// The envelope as a whole is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct EnvelopeError {
    pub kind: EnvelopeErrorKind,
    pub message: String,
}

impl EnvelopeError {
    pub(crate) fn new(kind: EnvelopeErrorKind, message: impl Into<String>) -> Self {
        EnvelopeError {
            kind,
            message: message.into(),
        }
    }
}

/// What kind of problem a reading has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReadingErrorKind {
    /// The reading is not a JSON object.
    NotObject,
    /// `type` is not a reading type of the contract.
    UnknownType,
    /// `unit` is unknown, not UCUM, or not accepted for the type.
    Unit,
    /// A required field is absent or null.
    MissingField,
    /// A field has the wrong JSON type.
    WrongType,
    /// A value outside a closed vocabulary.
    Vocabulary,
    /// `time` or `device_time` is missing its offset, unparseable or not a real instant.
    Time,
    /// A number that cannot mean anything: negative quantity, zero sample rate, ...
    Meaningless,
    /// `device_id` does not follow the id grammar.
    Id,
}

impl ReadingErrorKind {
    /// A stable snake_case name, for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ReadingErrorKind::NotObject => "not_object",
            ReadingErrorKind::UnknownType => "unknown_type",
            ReadingErrorKind::Unit => "unit",
            ReadingErrorKind::MissingField => "missing_field",
            ReadingErrorKind::WrongType => "wrong_type",
            ReadingErrorKind::Vocabulary => "vocabulary",
            ReadingErrorKind::Time => "time",
            ReadingErrorKind::Meaningless => "meaningless_number",
            ReadingErrorKind::Id => "id",
        }
    }
}

impl fmt::Display for ReadingErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reading of an envelope is malformed. Displays as
/// `reading 1: unit 'mmHg' is not UCUM; use 'mm[Hg]'`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("reading {index}: {message}")]
pub struct ReadingError {
    /// Position in the envelope's `readings` array, from 0.
    pub index: usize,
    pub kind: ReadingErrorKind,
    pub message: String,
    /// The reading as received, kept for quarantine.
    pub raw: serde_json::Value,
}

/// A status, command or alert-event payload is rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{payload}: {message}")]
pub struct PayloadError {
    /// Which payload: `status`, `command`, `alert event`.
    pub payload: &'static str,
    pub message: String,
}
