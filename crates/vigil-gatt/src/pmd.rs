//! Polar PMD (Polar Measurement Data), as used by the Polar H10 for ECG streaming,
//! spec/decode.md §4.
//!
//! Control point (FB005C81-…, write and indicate):
//!
//! - client commands: `01 <type>` get settings, `02 <type> <settings TLV>` start
//!   (type byte = `recording_type << 7 | measurement_type`, one value per setting),
//!   `03 <type>` stop;
//! - server responses: `F0 <op code> <type> <status> [more] [parameters…]`; the
//!   parameters of a successful get-settings response are a settings TLV;
//! - server notices (not starting with F0): `01 <types…>` = online measurement stopped.
//!
//! Data (FB005C82-…, notify): `<type> <timestamp_ns: u64 LE> <frame type> <content>`,
//! the timestamp in ns since 2000-01-01T00:00:00Z and belonging to the **last** sample.
//! Only uncompressed ECG frames (measurement type 0, frame type 0: signed 24-bit LE
//! samples in µV) are decoded; other frames are rejected as unsupported rather than
//! guessed at.
//!
//! Settings TLV: a sequence of `type (1), count (1), count × value`, the value width
//! fixed by the type (see [`Setting`]). An unknown type makes the rest unreadable and is
//! rejected, and so is a type that appears twice.

use crate::bits::enum_name;
use crate::bytes::{Reader, expect_len};
use crate::error::{Characteristic, Direction, Error};

const CP: Characteristic = Characteristic::PmdControlPoint;
const DATA: Characteristic = Characteristic::PmdData;

/// The first byte of every control-point response.
pub const RESPONSE_CODE: u8 = 0xF0;
/// The H10's ECG sample rate.
pub const H10_ECG_SAMPLE_RATE_HZ: u16 = 130;
/// 2019-01-01T00:00:00Z in ns since 2000-01-01: where an H10 whose clock was never set
/// restarts its time.
pub const H10_UNSET_CLOCK_EPOCH_NS: u64 = 599_616_000_000_000_000;

/// Measurement types (`type & 0x3F`), by code.
pub const MEASUREMENT_TYPE_NAMES: [Option<&str>; 13] = [
    Some("ECG"),
    Some("PPG"),
    Some("ACC"),
    Some("PPI"),
    None,
    Some("GYRO"),
    Some("MAGNETOMETER"),
    Some("SKIN_TEMP"),
    None,
    Some("SDK_MODE"),
    Some("LOCATION"),
    Some("PRESSURE"),
    Some("TEMPERATURE"),
];
/// The ECG measurement type.
pub const MEASUREMENT_TYPE_ECG: u8 = 0;

/// Control-point op codes, by code.
pub const OPCODE_NAMES: [Option<&str>; 10] = [
    None,
    Some("GET_MEASUREMENT_SETTINGS"),
    Some("REQUEST_MEASUREMENT_START"),
    Some("STOP_MEASUREMENT"),
    Some("GET_SDK_MODE_MEASUREMENT_SETTINGS"),
    Some("GET_MEASUREMENT_STATUS"),
    Some("GET_SDK_MODE_STATUS"),
    Some("GET_OFFLINE_RECORDING_TRIGGER_STATUS"),
    Some("SET_OFFLINE_RECORDING_TRIGGER_MODE"),
    Some("SET_OFFLINE_RECORDING_TRIGGER_SETTINGS"),
];

/// Response status codes, by code.
pub const STATUS_NAMES: [Option<&str>; 15] = [
    Some("SUCCESS"),
    Some("ERROR_INVALID_OP_CODE"),
    Some("ERROR_INVALID_MEASUREMENT_TYPE"),
    Some("ERROR_NOT_SUPPORTED"),
    Some("ERROR_INVALID_LENGTH"),
    Some("ERROR_INVALID_PARAMETER"),
    Some("ERROR_ALREADY_IN_STATE"),
    Some("ERROR_INVALID_RESOLUTION"),
    Some("ERROR_INVALID_SAMPLE_RATE"),
    Some("ERROR_INVALID_RANGE"),
    Some("ERROR_INVALID_MTU"),
    Some("ERROR_INVALID_NUMBER_OF_CHANNELS"),
    Some("ERROR_INVALID_STATE"),
    Some("ERROR_DEVICE_IN_CHARGER"),
    Some("ERROR_DISK_FULL"),
];

/// The name of a measurement type byte (`& 0x3F`); `"reserved"` for RFU codes.
pub fn measurement_type_name(type_byte: u8) -> &'static str {
    enum_name(&MEASUREMENT_TYPE_NAMES, usize::from(type_byte & 0x3F))
}

/// The name of a control-point op code; `"reserved"` for unknown codes.
pub fn opcode_name(opcode: u8) -> &'static str {
    enum_name(&OPCODE_NAMES, usize::from(opcode))
}

/// One entry of a settings TLV, with its values.
#[derive(Debug, Clone, PartialEq)]
pub enum Setting {
    /// Type 0, uint16.
    SampleRateHz(Vec<u16>),
    /// Type 1, uint16.
    ResolutionBits(Vec<u16>),
    /// Type 2, uint16.
    Range(Vec<u16>),
    /// Type 3, int32 (deprecated).
    RangeMilliunit(Vec<i32>),
    /// Type 4, uint8.
    Channels(Vec<u8>),
    /// Type 5, IEEE-754 float32.
    ConversionFactor(Vec<f32>),
}

impl Setting {
    /// The TLV type code.
    pub fn type_code(&self) -> u8 {
        match self {
            Setting::SampleRateHz(_) => 0,
            Setting::ResolutionBits(_) => 1,
            Setting::Range(_) => 2,
            Setting::RangeMilliunit(_) => 3,
            Setting::Channels(_) => 4,
            Setting::ConversionFactor(_) => 5,
        }
    }

    /// The key `decode` prints: `sample_rate_hz`, `resolution_bits`, `range`,
    /// `range_milliunit`, `channels`, `conversion_factor`.
    pub fn name(&self) -> &'static str {
        match self {
            Setting::SampleRateHz(_) => "sample_rate_hz",
            Setting::ResolutionBits(_) => "resolution_bits",
            Setting::Range(_) => "range",
            Setting::RangeMilliunit(_) => "range_milliunit",
            Setting::Channels(_) => "channels",
            Setting::ConversionFactor(_) => "conversion_factor",
        }
    }

    /// How many values it holds.
    pub fn count(&self) -> usize {
        match self {
            Setting::SampleRateHz(v) | Setting::ResolutionBits(v) | Setting::Range(v) => v.len(),
            Setting::RangeMilliunit(v) => v.len(),
            Setting::Channels(v) => v.len(),
            Setting::ConversionFactor(v) => v.len(),
        }
    }

    fn read(
        code: u8,
        count: usize,
        r: &mut Reader<'_>,
        ch: Characteristic,
    ) -> Result<Setting, Error> {
        fn many<'a, T>(
            count: usize,
            r: &mut Reader<'a>,
            f: impl Fn(&mut Reader<'a>) -> Result<T, Error>,
        ) -> Result<Vec<T>, Error> {
            (0..count).map(|_| f(r)).collect()
        }
        Ok(match code {
            0 => Setting::SampleRateHz(many(count, r, Reader::u16)?),
            1 => Setting::ResolutionBits(many(count, r, Reader::u16)?),
            2 => Setting::Range(many(count, r, Reader::u16)?),
            3 => Setting::RangeMilliunit(many(count, r, Reader::i32)?),
            4 => Setting::Channels(many(count, r, Reader::u8)?),
            5 => Setting::ConversionFactor(many(count, r, Reader::f32)?),
            _ => {
                return Err(Error::ReservedValue {
                    characteristic: ch,
                    field: "settings type",
                    value: u32::from(code),
                    consequence: "its value width cannot be known",
                });
            }
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        match self {
            Setting::SampleRateHz(v) | Setting::ResolutionBits(v) | Setting::Range(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Setting::RangeMilliunit(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
            Setting::Channels(v) => out.extend_from_slice(v),
            Setting::ConversionFactor(v) => v
                .iter()
                .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        }
    }
}

/// A settings TLV: its entries in wire order, each type at most once.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Settings(pub Vec<Setting>);

impl Settings {
    /// Decodes a bare settings TLV (the `pmd-settings` pseudo-characteristic).
    pub fn decode(bytes: &[u8]) -> Result<Settings, Error> {
        Settings::decode_as(bytes, Characteristic::PmdSettings)
    }

    pub(crate) fn decode_as(bytes: &[u8], ch: Characteristic) -> Result<Settings, Error> {
        let mut r = Reader::new(bytes, ch);
        let mut out: Vec<Setting> = Vec::new();
        while r.remaining() > 0 {
            let code = r.u8()?;
            let count = usize::from(r.u8()?);
            let s = Setting::read(code, count, &mut r, ch)?;
            if out.iter().any(|o| o.type_code() == code) {
                return Err(Error::invalid(
                    ch,
                    format!("settings type {code} ({}) appears more than once", s.name()),
                ));
            }
            out.push(s);
        }
        Ok(Settings(out))
    }

    /// The TLV bytes; a setting with more than 255 values cannot be encoded.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        for s in &self.0 {
            let count = u8::try_from(s.count()).map_err(|_| {
                Error::invalid(
                    Characteristic::PmdSettings,
                    format!("{} has {} values; at most 255 fit", s.name(), s.count()),
                )
            })?;
            out.push(s.type_code());
            out.push(count);
            s.write(&mut out);
        }
        Ok(out)
    }

    /// The first sample rate, if the settings carry one.
    pub fn sample_rate_hz(&self) -> Option<u16> {
        self.0.iter().find_map(|s| match s {
            Setting::SampleRateHz(v) => v.first().copied(),
            _ => None,
        })
    }

    /// The H10 ECG settings: 130 Hz, 14 bits.
    pub fn h10_ecg() -> Settings {
        Settings(vec![
            Setting::SampleRateHz(vec![H10_ECG_SAMPLE_RATE_HZ]),
            Setting::ResolutionBits(vec![14]),
        ])
    }
}

/// Whether a measurement streams live or records on the device (type byte bit 7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordingType {
    Online,
    Offline,
}

impl RecordingType {
    /// `"online"` or `"offline"`.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordingType::Online => "online",
            RecordingType::Offline => "offline",
        }
    }
}

/// A client command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `01 <type>`.
    GetSettings { type_byte: u8 },
    /// `02 <type> <settings>`, one value per setting.
    Start { type_byte: u8, settings: Settings },
    /// `03 <type>`.
    Stop { type_byte: u8 },
}

impl Command {
    /// Start an online ECG stream with the H10 settings (130 Hz, 14 bits).
    pub fn start_h10_ecg() -> Command {
        Command::Start {
            type_byte: MEASUREMENT_TYPE_ECG,
            settings: Settings::h10_ecg(),
        }
    }

    /// The op code.
    pub fn opcode(&self) -> u8 {
        match self {
            Command::GetSettings { .. } => 1,
            Command::Start { .. } => 2,
            Command::Stop { .. } => 3,
        }
    }

    /// The raw type byte.
    pub fn type_byte(&self) -> u8 {
        match self {
            Command::GetSettings { type_byte }
            | Command::Start { type_byte, .. }
            | Command::Stop { type_byte } => *type_byte,
        }
    }

    /// Online or offline (bit 7 of the type byte).
    pub fn recording_type(&self) -> RecordingType {
        if self.type_byte() & 0x80 != 0 {
            RecordingType::Offline
        } else {
            RecordingType::Online
        }
    }

    /// The wire bytes.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let mut out = vec![self.opcode(), self.type_byte()];
        if let Command::Start { settings, .. } = self {
            out.extend_from_slice(&settings.encode()?);
        }
        Ok(out)
    }

    fn decode(bytes: &[u8]) -> Result<Command, Error> {
        let mut r = Reader::new(bytes, CP);
        let opcode = r.u8()?;
        match opcode {
            1 | 3 => {
                expect_len(bytes, 2, CP)?;
                let type_byte = r.u8()?;
                Ok(if opcode == 1 {
                    Command::GetSettings { type_byte }
                } else {
                    Command::Stop { type_byte }
                })
            }
            2 => {
                let type_byte = r.u8()?;
                let settings = Settings::decode_as(r.rest(), CP)?;
                if let Some(s) = settings.0.iter().find(|s| s.count() != 1) {
                    return Err(Error::invalid(
                        CP,
                        format!(
                            "a start command carries one value per setting; {} has {}",
                            s.name(),
                            s.count()
                        ),
                    ));
                }
                Ok(Command::Start {
                    type_byte,
                    settings,
                })
            }
            _ => Err(Error::Unsupported {
                characteristic: CP,
                reason: format!(
                    "client command op code {opcode} ({}) is not decoded; only 01 get \
                     settings, 02 start and 03 stop are",
                    opcode_name(opcode)
                ),
            }),
        }
    }
}

/// A control-point response (`F0 …`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Response {
    pub opcode: u8,
    pub type_byte: u8,
    pub status: u8,
    /// Byte 4, when present (error responses often end before it).
    pub more: Option<u8>,
    /// Bytes 5…; written only after a `more` byte (0 is written when `more` is absent).
    pub parameters: Vec<u8>,
}

impl Response {
    /// The length of a response without byte 4.
    pub const MIN_LEN: usize = 4;

    /// Byte 4 ≠ 0; `false` when absent.
    pub fn more(&self) -> bool {
        self.more.is_some_and(|m| m != 0)
    }

    /// The status's name; `"reserved"` for unknown codes.
    pub fn status_name(&self) -> &'static str {
        enum_name(&STATUS_NAMES, usize::from(self.status))
    }

    /// The decoded settings: only for a successful GET_MEASUREMENT_SETTINGS (1) or
    /// GET_SDK_MODE_MEASUREMENT_SETTINGS (4) response whose parameters are a
    /// well-formed settings TLV.
    pub fn settings(&self) -> Option<Settings> {
        if self.status == 0 && matches!(self.opcode, 1 | 4) {
            Settings::decode_as(&self.parameters, CP).ok()
        } else {
            None
        }
    }

    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![RESPONSE_CODE, self.opcode, self.type_byte, self.status];
        match self.more {
            Some(m) => out.push(m),
            None if !self.parameters.is_empty() => out.push(0),
            None => {}
        }
        out.extend_from_slice(&self.parameters);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Response, Error> {
        if bytes.len() < Self::MIN_LEN {
            return Err(Error::Truncated {
                characteristic: CP,
                needed: Self::MIN_LEN,
                got: bytes.len(),
            });
        }
        let mut r = Reader::new(bytes, CP);
        r.u8()?;
        Ok(Response {
            opcode: r.u8()?,
            type_byte: r.u8()?,
            status: r.u8()?,
            more: (r.remaining() > 0).then(|| r.u8()).transpose()?,
            parameters: r.rest().to_vec(),
        })
    }
}

/// A server notice (a control-point indication not starting with F0).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Notice {
    /// `01 <types…>`: the listed online measurements stopped.
    OnlineMeasurementStopped { type_bytes: Vec<u8> },
}

impl Notice {
    /// `ONLINE_MEASUREMENT_STOPPED`.
    pub fn message(&self) -> &'static str {
        match self {
            Notice::OnlineMeasurementStopped { .. } => "ONLINE_MEASUREMENT_STOPPED",
        }
    }

    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Notice::OnlineMeasurementStopped { type_bytes } => {
                let mut out = vec![1];
                out.extend_from_slice(type_bytes);
                out
            }
        }
    }

    fn decode(bytes: &[u8]) -> Result<Notice, Error> {
        match bytes.split_first() {
            Some((1, rest)) => Ok(Notice::OnlineMeasurementStopped {
                type_bytes: rest.to_vec(),
            }),
            Some((code, _)) => Err(Error::Unsupported {
                characteristic: CP,
                reason: format!("server notice code {code} is not known"),
            }),
            None => Err(Error::Truncated {
                characteristic: CP,
                needed: 1,
                got: 0,
            }),
        }
    }
}

/// A decoded control-point value.
#[derive(Debug, Clone, PartialEq)]
pub enum ControlPoint {
    Command(Command),
    Response(Response),
    Notice(Notice),
}

impl ControlPoint {
    /// Decodes a control-point value. A value starting with F0 is a response (and is
    /// rejected as client-to-server). Otherwise it is a client command, unless
    /// `direction` is server-to-client, in which case it is a notice.
    pub fn decode(bytes: &[u8], direction: Option<Direction>) -> Result<ControlPoint, Error> {
        match (bytes.first(), direction) {
            (None, Some(Direction::ServerToClient)) => Err(Error::Truncated {
                characteristic: CP,
                needed: 1,
                got: 0,
            }),
            (None, _) => Err(Error::Truncated {
                characteristic: CP,
                needed: 2,
                got: 0,
            }),
            (Some(&RESPONSE_CODE), Some(Direction::ClientToServer)) => Err(Error::invalid(
                CP,
                "a value starting with F0 is a server response, not a client command",
            )),
            (Some(&RESPONSE_CODE), _) => Response::decode(bytes).map(ControlPoint::Response),
            (Some(_), Some(Direction::ServerToClient)) => {
                Notice::decode(bytes).map(ControlPoint::Notice)
            }
            (Some(_), _) => Command::decode(bytes).map(ControlPoint::Command),
        }
    }

    /// The wire bytes.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        match self {
            ControlPoint::Command(c) => c.encode(),
            ControlPoint::Response(r) => Ok(r.encode()),
            ControlPoint::Notice(n) => Ok(n.encode()),
        }
    }
}

/// A decoded data frame: an uncompressed ECG frame (measurement type 0, frame type 0).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DataFrame {
    /// Byte 0, raw (the measurement type is `& 0x3F`).
    pub type_byte: u8,
    /// ns since 2000-01-01T00:00:00Z, of the **last** sample.
    pub timestamp_ns: u64,
    /// Byte 9, raw (frame type `& 0x7F`, compressed bit 7).
    pub frame_type_byte: u8,
    /// Samples in µV (signed 24-bit on the wire).
    pub samples_uv: Vec<i32>,
}

impl DataFrame {
    /// The header length.
    pub const HEADER_LEN: usize = 10;
    /// The smallest and largest sample a signed 24-bit field holds.
    pub const SAMPLE_RANGE: (i32, i32) = (-(1 << 23), (1 << 23) - 1);

    /// An uncompressed ECG frame.
    pub fn ecg(timestamp_ns: u64, samples_uv: Vec<i32>) -> DataFrame {
        DataFrame {
            type_byte: MEASUREMENT_TYPE_ECG,
            timestamp_ns,
            frame_type_byte: 0,
            samples_uv,
        }
    }

    /// `type & 0x3F`.
    pub fn measurement_type(&self) -> u8 {
        self.type_byte & 0x3F
    }

    /// `frame type & 0x7F`.
    pub fn frame_type(&self) -> u8 {
        self.frame_type_byte & 0x7F
    }

    /// Bit 7 of the frame type.
    pub fn compressed(&self) -> bool {
        self.frame_type_byte & 0x80 != 0
    }

    /// Decodes a data frame; only uncompressed ECG frame type 0 is accepted, with at
    /// least one sample and a content length that is a multiple of 3.
    pub fn decode(bytes: &[u8]) -> Result<DataFrame, Error> {
        if bytes.len() < Self::HEADER_LEN {
            return Err(Error::Truncated {
                characteristic: DATA,
                needed: Self::HEADER_LEN + 3,
                got: bytes.len(),
            });
        }
        let mut r = Reader::new(bytes, DATA);
        let type_byte = r.u8()?;
        let timestamp_ns = r.u64()?;
        let frame_type_byte = r.u8()?;
        let frame = DataFrame {
            type_byte,
            timestamp_ns,
            frame_type_byte,
            samples_uv: Vec::new(),
        };
        if frame.measurement_type() != MEASUREMENT_TYPE_ECG
            || frame.frame_type() != 0
            || frame.compressed()
        {
            return Err(Error::Unsupported {
                characteristic: DATA,
                reason: format!(
                    "only uncompressed ECG frames (measurement type 0, frame type 0) are \
                     decoded; got measurement type {} ({}), frame type {}{}",
                    frame.measurement_type(),
                    measurement_type_name(type_byte),
                    frame.frame_type(),
                    if frame.compressed() {
                        ", compressed"
                    } else {
                        ""
                    }
                ),
            });
        }
        let content = r.remaining();
        if content == 0 || !content.is_multiple_of(3) {
            return Err(Error::Truncated {
                characteristic: DATA,
                needed: Self::HEADER_LEN + content.div_ceil(3).max(1) * 3,
                got: bytes.len(),
            });
        }
        let mut samples_uv = Vec::with_capacity(content / 3);
        while r.remaining() > 0 {
            let raw = r.u24()?;
            samples_uv.push(((raw << 8) as i32) >> 8);
        }
        r.finish()?;
        Ok(DataFrame {
            samples_uv,
            ..frame
        })
    }

    /// The wire bytes; a sample outside the signed 24-bit range cannot be encoded.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(Self::HEADER_LEN + 3 * self.samples_uv.len());
        out.push(self.type_byte);
        out.extend_from_slice(&self.timestamp_ns.to_le_bytes());
        out.push(self.frame_type_byte);
        let (lo, hi) = Self::SAMPLE_RANGE;
        for &s in &self.samples_uv {
            if !(lo..=hi).contains(&s) {
                return Err(Error::invalid(
                    DATA,
                    format!("sample {s} µV does not fit in a signed 24-bit field"),
                ));
            }
            out.extend_from_slice(&s.to_le_bytes()[..3]);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The H10's answer to "get ECG settings": F0 (response), 01 (get settings), 00
    /// (ECG), 00 (success), 00 (no more), then the TLV: type 0 (sample rate), count 1,
    /// 0x0082 = 130; type 1 (resolution), count 1, 0x000E = 14.
    const H10_SETTINGS_RESPONSE: [u8; 13] = [
        0xF0, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x82, 0x00, 0x01, 0x01, 0x0E, 0x00,
    ];

    /// spec/decode.md §4 control-point response with settings.
    #[test]
    fn a_successful_settings_response_carries_decoded_settings() {
        let Ok(ControlPoint::Response(r)) = ControlPoint::decode(&H10_SETTINGS_RESPONSE, None)
        else {
            panic!("not a response")
        };
        assert_eq!((r.opcode, r.type_byte, r.status), (1, 0, 0));
        assert_eq!(opcode_name(r.opcode), "GET_MEASUREMENT_SETTINGS");
        assert_eq!(measurement_type_name(r.type_byte), "ECG");
        assert_eq!(r.status_name(), "SUCCESS");
        assert!(!r.more());
        assert_eq!(r.settings(), Some(Settings::h10_ecg()));
        assert_eq!(r.settings().unwrap().sample_rate_hz(), Some(130));
        assert_eq!(r.encode(), H10_SETTINGS_RESPONSE);
    }

    /// spec/decode.md §4: an error response without byte 4 has `more` false; the H10
    /// refuses with ERROR_INVALID_MTU (10) until the MTU is large enough.
    #[test]
    fn an_error_response_without_byte_4_is_not_more() {
        let Ok(ControlPoint::Response(r)) = ControlPoint::decode(&[0xF0, 0x02, 0x00, 0x0A], None)
        else {
            panic!()
        };
        assert_eq!(r.status_name(), "ERROR_INVALID_MTU");
        assert_eq!(r.more, None);
        assert!(!r.more());
        assert!(r.parameters.is_empty());
        assert_eq!(r.settings(), None);
    }

    /// spec/decode.md §4: malformed settings parameters still decode, with no settings.
    #[test]
    fn a_settings_response_with_a_malformed_tlv_has_no_settings() {
        // Type 9 is unknown: its width cannot be known.
        let bytes = [0xF0, 0x01, 0x00, 0x00, 0x00, 0x09, 0x01, 0x00];
        let Ok(ControlPoint::Response(r)) = ControlPoint::decode(&bytes, None) else {
            panic!()
        };
        assert_eq!(r.settings(), None);
        assert_eq!(r.parameters, [0x09, 0x01, 0x00]);
        // Not a settings op code: never decoded as settings.
        let bytes = [0xF0, 0x02, 0x00, 0x00, 0x01, 0x00, 0x01, 0x82, 0x00];
        let Ok(ControlPoint::Response(r)) = ControlPoint::decode(&bytes, None) else {
            panic!()
        };
        assert!(r.more());
        assert_eq!(r.settings(), None);
    }

    /// spec/decode.md §4: a response has at least F0, op code, type and status.
    #[test]
    fn a_response_shorter_than_four_bytes_is_truncated() {
        for n in 1..4 {
            assert_eq!(
                ControlPoint::decode(&H10_SETTINGS_RESPONSE[..n], None),
                Err(Error::Truncated {
                    characteristic: CP,
                    needed: 4,
                    got: n
                })
            );
        }
    }

    /// spec/decode.md §4 settings TLV: every type and width.
    #[test]
    fn every_settings_type_decodes_with_its_width() {
        let bytes = [
            0x00, 0x02, 0x82, 0x00, 0x00, 0x01, // sample rate: 130, 256
            0x01, 0x01, 0x0E, 0x00, // resolution: 14
            0x02, 0x01, 0x08, 0x00, // range: 8
            0x03, 0x01, 0x18, 0xFC, 0xFF, 0xFF, // range milliunit: −1000
            0x04, 0x01, 0x03, // channels: 3
            0x05, 0x01, 0x00, 0x00, 0x80, 0x3F, // conversion factor: 1.0f32
        ];
        let s = Settings::decode(&bytes).unwrap();
        assert_eq!(
            s,
            Settings(vec![
                Setting::SampleRateHz(vec![130, 256]),
                Setting::ResolutionBits(vec![14]),
                Setting::Range(vec![8]),
                Setting::RangeMilliunit(vec![-1000]),
                Setting::Channels(vec![3]),
                Setting::ConversionFactor(vec![1.0]),
            ])
        );
        assert_eq!(s.encode().unwrap(), bytes);
        let names: Vec<&str> = s.0.iter().map(Setting::name).collect();
        assert_eq!(
            names,
            [
                "sample_rate_hz",
                "resolution_bits",
                "range",
                "range_milliunit",
                "channels",
                "conversion_factor"
            ]
        );
    }

    /// spec/decode.md §4 settings TLV: unknown types and cut values are rejected.
    #[test]
    fn a_malformed_settings_tlv_is_rejected() {
        assert!(matches!(
            Settings::decode(&[0x06, 0x01, 0x00]),
            Err(Error::ReservedValue {
                field: "settings type",
                ..
            })
        ));
        assert!(matches!(
            Settings::decode(&[0x00, 0x01, 0x82, 0x00, 0x00, 0x01, 0x82, 0x00]),
            Err(Error::Invalid { .. })
        ));
        // Every prefix that cuts a value or a header is truncated.
        let full = Settings::h10_ecg().encode().unwrap();
        for n in [1, 2, 3, 5, 6, 7] {
            assert!(
                matches!(Settings::decode(&full[..n]), Err(Error::Truncated { .. })),
                "{n}"
            );
        }
        assert_eq!(Settings::decode(&[]), Ok(Settings::default()));
    }

    /// spec/decode.md §4 commands: get settings, start, stop.
    #[test]
    fn the_three_commands_decode_and_encode() {
        assert_eq!(
            ControlPoint::decode(&[0x01, 0x00], None),
            Ok(ControlPoint::Command(Command::GetSettings { type_byte: 0 }))
        );
        assert_eq!(
            ControlPoint::decode(&[0x03, 0x00], Some(Direction::ClientToServer)),
            Ok(ControlPoint::Command(Command::Stop { type_byte: 0 }))
        );
        // Start online ECG at 130 Hz, 14 bits.
        let start = [0x02, 0x00, 0x00, 0x01, 0x82, 0x00, 0x01, 0x01, 0x0E, 0x00];
        let c = ControlPoint::decode(&start, None).unwrap();
        assert_eq!(c, ControlPoint::Command(Command::start_h10_ecg()));
        assert_eq!(
            Command::start_h10_ecg().recording_type(),
            RecordingType::Online
        );
        assert_eq!(c.encode().unwrap(), start);
        // Offline: type byte 0x80 | 0.
        let offline = Command::Start {
            type_byte: 0x80,
            settings: Settings::default(),
        };
        assert_eq!(offline.recording_type(), RecordingType::Offline);
        assert_eq!(offline.encode().unwrap(), [0x02, 0x80]);
    }

    /// spec/decode.md §4 commands: `01 <type>`, `02 <type> <one value per type>`, `03 <type>`.
    #[test]
    fn commands_with_wrong_shapes_are_rejected() {
        assert!(matches!(
            ControlPoint::decode(&[0x01], None),
            Err(Error::Truncated {
                needed: 2,
                got: 1,
                ..
            })
        ));
        assert!(matches!(
            ControlPoint::decode(&[0x01, 0x00, 0x00], None),
            Err(Error::TrailingBytes { .. })
        ));
        // Two sample rates in a start command: one value per setting.
        assert!(matches!(
            ControlPoint::decode(&[0x02, 0x00, 0x00, 0x02, 0x82, 0x00, 0x00, 0x01], None),
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(
            ControlPoint::decode(&[0x05], None),
            Err(Error::Unsupported { .. })
        ));
        assert!(matches!(
            ControlPoint::decode(&[], None),
            Err(Error::Truncated {
                needed: 2,
                got: 0,
                ..
            })
        ));
    }

    /// spec/decode.md §4 and `--direction`: F0 as client-to-server is rejected; other
    /// values from the server are notices.
    #[test]
    fn the_direction_decides_between_command_and_notice() {
        assert!(matches!(
            ControlPoint::decode(&H10_SETTINGS_RESPONSE, Some(Direction::ClientToServer)),
            Err(Error::Invalid { .. })
        ));
        let n = ControlPoint::decode(&[0x01, 0x01, 0x02], Some(Direction::ServerToClient));
        assert_eq!(
            n,
            Ok(ControlPoint::Notice(Notice::OnlineMeasurementStopped {
                type_bytes: vec![1, 2]
            }))
        );
        assert!(matches!(
            ControlPoint::decode(&[0x02], Some(Direction::ServerToClient)),
            Err(Error::Unsupported { .. })
        ));
    }

    /// spec/decode.md §4: measurement type = type & 0x3F; §1: RFU codes "reserved".
    #[test]
    fn measurement_types_use_the_low_six_bits_and_name_rfu_codes_reserved() {
        assert_eq!(measurement_type_name(0x80), "ECG");
        assert_eq!(measurement_type_name(12), "TEMPERATURE");
        assert_eq!(measurement_type_name(4), "reserved");
        assert_eq!(measurement_type_name(13), "reserved");
        assert_eq!(opcode_name(9), "SET_OFFLINE_RECORDING_TRIGGER_SETTINGS");
        assert_eq!(opcode_name(10), "reserved");
    }

    /// spec/decode.md §4 data frame: type 0 (ECG), timestamp, frame type 0, samples
    /// as signed 24-bit LE µV: 0x000064 = 100, 0xFFFF9C = −100, 0x7FFFFF = 8388607.
    #[test]
    fn an_ecg_frame_decodes_signed_24_bit_samples() {
        let ts: u64 = H10_UNSET_CLOCK_EPOCH_NS + 1_000_000_000;
        let mut bytes = vec![0x00];
        bytes.extend_from_slice(&ts.to_le_bytes());
        bytes.push(0x00);
        bytes.extend_from_slice(&[0x64, 0x00, 0x00, 0x9C, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]);
        let f = DataFrame::decode(&bytes).unwrap();
        assert_eq!(f.measurement_type(), 0);
        assert_eq!(f.timestamp_ns, ts);
        assert_eq!(f.frame_type(), 0);
        assert!(!f.compressed());
        assert_eq!(f.samples_uv, [100, -100, 8_388_607]);
        assert_eq!(f.encode().unwrap(), bytes);
    }

    /// spec/decode.md §4: an H10 frame is 229 bytes, 73 samples.
    #[test]
    fn an_h10_sized_frame_holds_73_samples() {
        let f = DataFrame::ecg(1, (0..73).map(|i| i * 10 - 365).collect());
        let bytes = f.encode().unwrap();
        assert_eq!(bytes.len(), 229);
        assert_eq!(DataFrame::decode(&bytes).unwrap().samples_uv.len(), 73);
    }

    /// Strictness policy: content not a multiple of 3 (or empty) is rejected.
    #[test]
    fn every_prefix_of_an_ecg_frame_is_truncated_or_a_whole_number_of_samples() {
        let bytes = DataFrame::ecg(5, vec![1, 2, 3, 4]).encode().unwrap();
        for n in 0..bytes.len() {
            let got = DataFrame::decode(&bytes[..n]);
            if n >= 13 && (n - 10) % 3 == 0 {
                assert_eq!(got.unwrap().samples_uv.len(), (n - 10) / 3);
            } else {
                assert!(
                    matches!(got, Err(Error::Truncated { got, .. }) if got == n),
                    "{n}: {got:?}"
                );
            }
        }
    }

    /// spec/decode.md §4 data frame: samples are defined for ECG frame type 0 only.
    #[test]
    fn compressed_and_non_ecg_frames_are_unsupported() {
        let mut bytes = DataFrame::ecg(5, vec![1]).encode().unwrap();
        bytes[9] = 0x80;
        let e = DataFrame::decode(&bytes).unwrap_err();
        assert!(e.to_string().contains("compressed"), "{e}");
        bytes[9] = 0x00;
        bytes[0] = 0x02;
        let e = DataFrame::decode(&bytes).unwrap_err();
        assert!(e.to_string().contains("ACC"), "{e}");
    }

    /// spec/decode.md §4 data frame: samples are signed 24-bit.
    #[test]
    fn a_sample_outside_24_bits_cannot_be_encoded() {
        assert!(DataFrame::ecg(0, vec![1 << 23]).encode().is_err());
        assert!(DataFrame::ecg(0, vec![-(1 << 23)]).encode().is_ok());
    }

    fn setting() -> impl Strategy<Value = Setting> {
        use proptest::collection::vec;
        prop_oneof![
            vec(any::<u16>(), 0..4).prop_map(Setting::SampleRateHz),
            vec(any::<u16>(), 0..4).prop_map(Setting::ResolutionBits),
            vec(any::<u16>(), 0..4).prop_map(Setting::Range),
            vec(any::<i32>(), 0..4).prop_map(Setting::RangeMilliunit),
            vec(any::<u8>(), 0..4).prop_map(Setting::Channels),
            vec(any::<u32>().prop_map(f32::from_bits), 0..4).prop_map(Setting::ConversionFactor),
        ]
    }

    fn settings() -> impl Strategy<Value = Settings> {
        proptest::collection::vec(setting(), 0..6).prop_map(|v| {
            let mut seen = Vec::new();
            Settings(
                v.into_iter()
                    .filter(|s| {
                        let fresh = !seen.contains(&s.type_code());
                        seen.push(s.type_code());
                        fresh
                    })
                    .collect(),
            )
        })
    }

    proptest! {
        /// spec/decode.md §4 settings TLV: encode → decode round-trips.
        ///
        /// Bytes, not values: a NaN conversion factor is not equal to itself.
        #[test]
        fn any_settings_round_trip_bit_for_bit(s in settings()) {
            let bytes = s.encode().unwrap();
            let back = Settings::decode(&bytes).unwrap();
            prop_assert_eq!(back.encode().unwrap(), bytes);
        }

        /// spec/decode.md §4 control-point response: encode → decode round-trips.
        #[test]
        fn any_response_round_trips(
            opcode in any::<u8>(), type_byte in any::<u8>(), status in any::<u8>(),
            tail in proptest::option::of((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..20))),
        ) {
            let (more, parameters) = match tail {
                Some((m, p)) => (Some(m), p),
                None => (None, vec![]),
            };
            let r = Response { opcode, type_byte, status, more, parameters };
            prop_assert_eq!(
                ControlPoint::decode(&r.encode(), None),
                Ok(ControlPoint::Response(r))
            );
        }

        /// spec/decode.md §4 commands 01 and 03: encode → decode round-trips.
        #[test]
        fn any_get_or_stop_command_round_trips(stop in any::<bool>(), type_byte in any::<u8>()) {
            let c = if stop { Command::Stop { type_byte } } else { Command::GetSettings { type_byte } };
            prop_assert_eq!(
                ControlPoint::decode(&c.encode().unwrap(), None),
                Ok(ControlPoint::Command(c))
            );
        }

        /// spec/decode.md §4 command 02: encode → decode round-trips.
        #[test]
        fn any_start_command_round_trips(
            type_byte in any::<u8>(), rate in any::<u16>(), bits in any::<u16>(), ch in any::<u8>(),
        ) {
            let c = Command::Start {
                type_byte,
                settings: Settings(vec![
                    Setting::SampleRateHz(vec![rate]),
                    Setting::ResolutionBits(vec![bits]),
                    Setting::Channels(vec![ch]),
                ]),
            };
            prop_assert_eq!(
                ControlPoint::decode(&c.encode().unwrap(), Some(Direction::ClientToServer)),
                Ok(ControlPoint::Command(c))
            );
        }

        /// spec/decode.md §4 notice `01 <types…>`: encode → decode round-trips.
        #[test]
        fn any_notice_round_trips(types in proptest::collection::vec(any::<u8>(), 0..8)) {
            let n = Notice::OnlineMeasurementStopped { type_bytes: types };
            prop_assert_eq!(
                ControlPoint::decode(&n.encode(), Some(Direction::ServerToClient)),
                Ok(ControlPoint::Notice(n))
            );
        }

        /// spec/decode.md §4 data frame: encode → decode round-trips.
        #[test]
        fn any_ecg_frame_round_trips(
            ts in any::<u64>(),
            samples in proptest::collection::vec(-(1i32 << 23)..(1 << 23), 1..80),
        ) {
            let f = DataFrame::ecg(ts, samples);
            prop_assert_eq!(DataFrame::decode(&f.encode().unwrap()), Ok(f));
        }

        /// spec/decode.md introduction: a decoder never panics; accepted bytes re-encode.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
            for d in [None, Some(Direction::ClientToServer), Some(Direction::ServerToClient)] {
                if let Ok(c) = ControlPoint::decode(&bytes, d) {
                    prop_assert_eq!(c.encode().unwrap(), bytes.clone());
                }
            }
            if let Ok(f) = DataFrame::decode(&bytes) {
                prop_assert_eq!(f.encode().unwrap(), bytes.clone());
            }
            if let Ok(s) = Settings::decode(&bytes) {
                prop_assert_eq!(s.encode().unwrap(), bytes);
            }
        }
    }
}
