//! The one error type of the crate, and the characteristic names it uses.

use std::fmt;

/// What a payload claimed to be: the characteristic (or bare number format) an error
/// is about. Its [`Display`](fmt::Display) is the name the Bluetooth SIG (or Polar)
/// gives it, so errors read `truncated: Blood Pressure Measurement needs 7 bytes, got 5`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Characteristic {
    /// IEEE-11073-20601 SFLOAT (medfloat16), on its own.
    Sfloat,
    /// IEEE-11073-20601 FLOAT (medfloat32), on its own.
    Float,
    /// A GATT Date Time (0x2A08), on its own.
    DateTime,
    /// Glucose Measurement, 0x2A18.
    GlucoseMeasurement,
    /// Glucose Measurement Context, 0x2A34.
    GlucoseMeasurementContext,
    /// Record Access Control Point, 0x2A52.
    RecordAccessControlPoint,
    /// Blood Pressure Measurement, 0x2A35.
    BloodPressureMeasurement,
    /// Intermediate Cuff Pressure, 0x2A36.
    IntermediateCuffPressure,
    /// Heart Rate Measurement, 0x2A37.
    HeartRateMeasurement,
    /// PLX Spot-Check Measurement, 0x2A5E.
    PlxSpotCheck,
    /// PLX Continuous Measurement, 0x2A5F.
    PlxContinuous,
    /// Temperature Measurement, 0x2A1C.
    TemperatureMeasurement,
    /// Weight Measurement, 0x2A9D.
    WeightMeasurement,
    /// Polar PMD control point, FB005C81-02E7-F387-1CAD-8ACD2D8DF0C8.
    PmdControlPoint,
    /// Polar PMD data, FB005C82-02E7-F387-1CAD-8ACD2D8DF0C8.
    PmdData,
    /// A bare Polar PMD settings TLV (the parameters of a settings response).
    PmdSettings,
    /// Current Time, 0x2A2B (Current Time Service): the device's clock.
    CurrentTime,
}

/// The Polar PMD service UUID.
pub const PMD_SERVICE_UUID: &str = "FB005C80-02E7-F387-1CAD-8ACD2D8DF0C8";
/// The Polar PMD control point UUID (write and indicate).
pub const PMD_CONTROL_POINT_UUID: &str = "FB005C81-02E7-F387-1CAD-8ACD2D8DF0C8";
/// The Polar PMD data UUID (notify).
pub const PMD_DATA_UUID: &str = "FB005C82-02E7-F387-1CAD-8ACD2D8DF0C8";

impl Characteristic {
    /// Every characteristic with a 16-bit SIG UUID, with that UUID.
    pub const SIG: &'static [(u16, Characteristic)] = &[
        (0x2A18, Characteristic::GlucoseMeasurement),
        (0x2A34, Characteristic::GlucoseMeasurementContext),
        (0x2A52, Characteristic::RecordAccessControlPoint),
        (0x2A35, Characteristic::BloodPressureMeasurement),
        (0x2A36, Characteristic::IntermediateCuffPressure),
        (0x2A37, Characteristic::HeartRateMeasurement),
        (0x2A5E, Characteristic::PlxSpotCheck),
        (0x2A5F, Characteristic::PlxContinuous),
        (0x2A1C, Characteristic::TemperatureMeasurement),
        (0x2A9D, Characteristic::WeightMeasurement),
        (0x2A08, Characteristic::DateTime),
    ];

    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Characteristic::Sfloat => "SFLOAT",
            Characteristic::Float => "FLOAT",
            Characteristic::DateTime => "Date Time",
            Characteristic::CurrentTime => "Current Time",
            Characteristic::GlucoseMeasurement => "Glucose Measurement",
            Characteristic::GlucoseMeasurementContext => "Glucose Measurement Context",
            Characteristic::RecordAccessControlPoint => "Record Access Control Point",
            Characteristic::BloodPressureMeasurement => "Blood Pressure Measurement",
            Characteristic::IntermediateCuffPressure => "Intermediate Cuff Pressure",
            Characteristic::HeartRateMeasurement => "Heart Rate Measurement",
            Characteristic::PlxSpotCheck => "PLX Spot-Check Measurement",
            Characteristic::PlxContinuous => "PLX Continuous Measurement",
            Characteristic::TemperatureMeasurement => "Temperature Measurement",
            Characteristic::WeightMeasurement => "Weight Measurement",
            Characteristic::PmdControlPoint => "Polar PMD Control Point",
            Characteristic::PmdData => "Polar PMD Data",
            Characteristic::PmdSettings => "Polar PMD settings",
        }
    }

    /// The 16-bit SIG UUID, for SIG characteristics.
    pub fn uuid16(self) -> Option<u16> {
        Self::SIG.iter().find(|(_, c)| *c == self).map(|(u, _)| *u)
    }

    /// The characteristic with this 16-bit SIG UUID, if this crate decodes it.
    pub fn from_uuid16(uuid: u16) -> Option<Characteristic> {
        Self::SIG.iter().find(|(u, _)| *u == uuid).map(|(_, c)| *c)
    }
}

impl fmt::Display for Characteristic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which way a control-point message travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// A request or command, written by the client (the gateway).
    ClientToServer,
    /// A response or notice, indicated by the server (the device).
    ServerToClient,
}

impl Direction {
    /// `client_to_server` / `server_to_client`, as `decode` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ClientToServer => "client_to_server",
            Direction::ServerToClient => "server_to_client",
        }
    }
}

/// Why a payload was rejected, or why a decoded value cannot become a reading.
///
/// Every message is one line that names the characteristic and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The payload ends before the last field its flags (or op code) announce.
    /// `needed` is the shortest length that would be complete, `got` the length given.
    #[error("truncated: {characteristic} needs {needed} bytes, got {got}")]
    Truncated {
        characteristic: Characteristic,
        needed: usize,
        got: usize,
    },
    /// Bytes are left over after the last field the flags (or op code) announce.
    #[error(
        "trailing bytes: {characteristic} ends after {expected} bytes, got {got} ({} left over)",
        .got.saturating_sub(*.expected)
    )]
    TrailingBytes {
        characteristic: Characteristic,
        expected: usize,
        got: usize,
    },
    /// A reserved (RFU) bit is set in a flags field: the layout of what follows can no
    /// longer be known, so the payload is not decoded at all.
    #[error(
        "reserved flag bits: {characteristic} {field} 0x{value:02X} sets reserved bit(s) {}; \
         the layout of the payload cannot be known",
        bit_list(*.reserved_mask)
    )]
    ReservedFlags {
        characteristic: Characteristic,
        field: &'static str,
        value: u32,
        reserved_mask: u32,
    },
    /// A reserved code where the layout depends on it (an RACP op code, a PMD settings
    /// type), so nothing after it can be read.
    #[error("reserved value: {characteristic} {field} {value} is reserved; {consequence}")]
    ReservedValue {
        characteristic: Characteristic,
        field: &'static str,
        value: u32,
        consequence: &'static str,
    },
    /// Well-formed bytes that are invalid where they appear (an RR-interval flag with no
    /// RR value, a non-null operator in an RACP response, ...).
    #[error("invalid: {characteristic}: {reason}")]
    Invalid {
        characteristic: Characteristic,
        reason: String,
    },
    /// A message this crate does not decode (a compressed PMD frame, a PMD command
    /// whose layout is not documented), rejected rather than guessed at.
    #[error("unsupported: {characteristic}: {reason}")]
    Unsupported {
        characteristic: Characteristic,
        reason: String,
    },
    /// A glucose reading taken on control solution: a meter check, not the patient.
    #[error(
        "control solution: {characteristic} record {sequence_number} was measured on control \
         solution; it is not a patient reading (quarantine it as malformed)"
    )]
    ControlSolution {
        characteristic: Characteristic,
        sequence_number: u16,
    },
    /// A decoded measurement that cannot become a reading (a NaN systolic, a weight the
    /// scale could not measure, ...).
    #[error("no reading: {characteristic}: {reason}")]
    NoReading {
        characteristic: Characteristic,
        reason: String,
    },
}

impl Error {
    /// A shorthand for [`Error::Invalid`].
    pub(crate) fn invalid(characteristic: Characteristic, reason: impl Into<String>) -> Error {
        Error::Invalid {
            characteristic,
            reason: reason.into(),
        }
    }

    /// A shorthand for [`Error::NoReading`].
    pub(crate) fn no_reading(characteristic: Characteristic, reason: impl Into<String>) -> Error {
        Error::NoReading {
            characteristic,
            reason: reason.into(),
        }
    }

    /// The characteristic the error is about.
    pub fn characteristic(&self) -> Characteristic {
        match self {
            Error::Truncated { characteristic, .. }
            | Error::TrailingBytes { characteristic, .. }
            | Error::ReservedFlags { characteristic, .. }
            | Error::ReservedValue { characteristic, .. }
            | Error::Invalid { characteristic, .. }
            | Error::Unsupported { characteristic, .. }
            | Error::ControlSolution { characteristic, .. }
            | Error::NoReading { characteristic, .. } => *characteristic,
        }
    }
}

/// `5, 6, 7`: the set bits of a mask, ascending.
fn bit_list(mask: u32) -> String {
    (0..32)
        .filter(|b| mask & (1 << b) != 0)
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// spec/decode.md introduction: the truncation message names needed vs got.
    #[test]
    fn a_truncation_names_the_characteristic_and_both_lengths() {
        // spec/decode.md, introduction: the example message, word for word.
        let e = Error::Truncated {
            characteristic: Characteristic::BloodPressureMeasurement,
            needed: 7,
            got: 5,
        };
        assert_eq!(
            e.to_string(),
            "truncated: Blood Pressure Measurement needs 7 bytes, got 5"
        );
    }

    /// spec/decode.md §5 strictness: a rejection names the reserved bits.
    #[test]
    fn reserved_flag_bits_are_listed_in_ascending_order() {
        let e = Error::ReservedFlags {
            characteristic: Characteristic::HeartRateMeasurement,
            field: "flags",
            value: 0xA0,
            reserved_mask: 0xA0,
        };
        assert_eq!(
            e.to_string(),
            "reserved flag bits: Heart Rate Measurement flags 0xA0 sets reserved bit(s) 5, 7; \
             the layout of the payload cannot be known"
        );
    }

    /// spec/decode.md "Characteristics": the 16-bit UUIDs decoded.
    #[test]
    fn every_sig_uuid_maps_back_to_its_characteristic() {
        for (uuid, c) in Characteristic::SIG {
            assert_eq!(Characteristic::from_uuid16(*uuid), Some(*c));
            assert_eq!(c.uuid16(), Some(*uuid));
        }
        assert_eq!(Characteristic::from_uuid16(0x2A00), None);
        assert_eq!(Characteristic::PmdData.uuid16(), None);
    }
}
