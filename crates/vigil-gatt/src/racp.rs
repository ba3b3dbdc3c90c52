//! Record Access Control Point (0x2A52), spec/decode.md §3: requests from the client
//! (the gateway) and responses from the server (the meter).
//!
//! Every message is `op code (1), operator (1), operand (0…)`.
//!
//! - Requests (op codes 1–4). Report / delete / report-number-of-records take a
//!   non-null operator: `all_records`, `first_record` and `last_record` have no operand;
//!   `less_than_or_equal_to` and `greater_than_or_equal_to` take a filter type and one
//!   value; `within_range_inclusive` a filter type and two. Filter type 1 (sequence
//!   number) values are uint16, filter type 2 (user facing time) values Date Times.
//!   Abort takes the null operator and no operand.
//! - Responses (op codes 5–6) carry the null operator. The number-of-stored-records
//!   response (5) carries a count of 1, 2 or 4 bytes (any other width is rejected);
//!   the response code (6) carries the request op code and a response code.
//!
//! An RFU operator or filter type is decoded by name (`reserved`) with its operand kept
//! raw, since its layout cannot be known; an RFU op code is rejected (nothing about
//! the message can be known).

use crate::bits::enum_name;
use crate::bytes::{Reader, expect_len};
use crate::datetime::DateTime;
use crate::error::{Characteristic, Direction, Error};

const RACP: Characteristic = Characteristic::RecordAccessControlPoint;

/// Op code names, by code.
pub const OPCODE_NAMES: [Option<&str>; 7] = [
    None,
    Some("report_stored_records"),
    Some("delete_stored_records"),
    Some("abort_operation"),
    Some("report_number_of_stored_records"),
    Some("number_of_stored_records_response"),
    Some("response_code"),
];
/// Operator names, by code.
pub const OPERATOR_NAMES: [Option<&str>; 7] = [
    Some("null"),
    Some("all_records"),
    Some("less_than_or_equal_to"),
    Some("greater_than_or_equal_to"),
    Some("within_range_inclusive"),
    Some("first_record"),
    Some("last_record"),
];
/// Filter type names, by code.
pub const FILTER_TYPE_NAMES: [Option<&str>; 3] =
    [None, Some("sequence_number"), Some("user_facing_time")];
/// Response code names, by code.
pub const RESPONSE_CODE_NAMES: [Option<&str>; 10] = [
    None,
    Some("success"),
    Some("op_code_not_supported"),
    Some("invalid_operator"),
    Some("operator_not_supported"),
    Some("invalid_operand"),
    Some("no_records_found"),
    Some("abort_unsuccessful"),
    Some("procedure_not_completed"),
    Some("operand_not_supported"),
];

/// Operator codes.
pub mod operator {
    pub const NULL: u8 = 0;
    pub const ALL_RECORDS: u8 = 1;
    pub const LESS_THAN_OR_EQUAL_TO: u8 = 2;
    pub const GREATER_THAN_OR_EQUAL_TO: u8 = 3;
    pub const WITHIN_RANGE_INCLUSIVE: u8 = 4;
    pub const FIRST_RECORD: u8 = 5;
    pub const LAST_RECORD: u8 = 6;
}

/// Response codes.
pub mod response_code {
    pub const SUCCESS: u8 = 1;
    /// "No records found" is a normal completion, not an error.
    pub const NO_RECORDS_FOUND: u8 = 6;
}

/// A request op code (client to server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestOpcode {
    ReportStoredRecords = 1,
    DeleteStoredRecords = 2,
    AbortOperation = 3,
    ReportNumberOfStoredRecords = 4,
}

impl RequestOpcode {
    /// The op code.
    pub fn code(self) -> u8 {
        self as u8
    }

    fn from_code(code: u8) -> Option<RequestOpcode> {
        Some(match code {
            1 => RequestOpcode::ReportStoredRecords,
            2 => RequestOpcode::DeleteStoredRecords,
            3 => RequestOpcode::AbortOperation,
            4 => RequestOpcode::ReportNumberOfStoredRecords,
            _ => return None,
        })
    }
}

/// The operand of a request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Operand {
    /// No operand (`all_records`, `first_record`, `last_record`, abort).
    None,
    /// Filter type 1: sequence numbers; `min` for ≥, `max` for ≤, both for a range.
    SequenceNumber { min: Option<u16>, max: Option<u16> },
    /// Filter type 2: user facing times (Date Times).
    UserFacingTime {
        min: Option<DateTime>,
        max: Option<DateTime>,
    },
    /// An operand whose layout is not known (an RFU operator, or an RFU filter type,
    /// whose byte is included): kept as it came.
    Raw(Vec<u8>),
}

impl Operand {
    /// The filter type byte, for filtered operands.
    pub fn filter_type(&self) -> Option<u8> {
        match self {
            Operand::SequenceNumber { .. } => Some(1),
            Operand::UserFacingTime { .. } => Some(2),
            Operand::None | Operand::Raw(_) => None,
        }
    }

    /// The operand's wire bytes (filter type included).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Operand::None => {}
            Operand::SequenceNumber { min, max } => {
                out.push(1);
                for v in [min, max].into_iter().flatten() {
                    out.extend_from_slice(&v.to_le_bytes());
                }
            }
            Operand::UserFacingTime { min, max } => {
                out.push(2);
                for v in [min, max].into_iter().flatten() {
                    v.write(&mut out);
                }
            }
            Operand::Raw(b) => out.extend_from_slice(b),
        }
        out
    }
}

/// A request from the client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Request {
    pub opcode: RequestOpcode,
    pub operator: u8,
    pub operand: Operand,
}

impl Request {
    /// Report every stored record: `01 01`.
    pub fn report_all_records() -> Request {
        Request {
            opcode: RequestOpcode::ReportStoredRecords,
            operator: operator::ALL_RECORDS,
            operand: Operand::None,
        }
    }

    /// Report records whose sequence number is ≥ `n`: `01 03 01 <n LE>`.
    pub fn report_records_from(n: u16) -> Request {
        Request {
            opcode: RequestOpcode::ReportStoredRecords,
            operator: operator::GREATER_THAN_OR_EQUAL_TO,
            operand: Operand::SequenceNumber {
                min: Some(n),
                max: None,
            },
        }
    }

    /// Report the number of stored records: `04 01`.
    pub fn report_number_of_records() -> Request {
        Request {
            opcode: RequestOpcode::ReportNumberOfStoredRecords,
            operator: operator::ALL_RECORDS,
            operand: Operand::None,
        }
    }

    /// Abort the operation in progress: `03 00`.
    pub fn abort() -> Request {
        Request {
            opcode: RequestOpcode::AbortOperation,
            operator: operator::NULL,
            operand: Operand::None,
        }
    }

    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.opcode.code(), self.operator];
        out.extend_from_slice(&self.operand.encode());
        out
    }

    /// The operator's name; `"reserved"` for RFU codes.
    pub fn operator_name(&self) -> &'static str {
        enum_name(&OPERATOR_NAMES, usize::from(self.operator))
    }

    fn decode(opcode: RequestOpcode, operator: u8, r: &mut Reader<'_>) -> Result<Request, Error> {
        let operator_name = enum_name(&OPERATOR_NAMES, usize::from(operator));
        let opcode_name = enum_name(&OPCODE_NAMES, usize::from(opcode.code()));
        if opcode == RequestOpcode::AbortOperation {
            if operator != operator::NULL {
                return Err(Error::invalid(
                    RACP,
                    format!(
                        "abort_operation takes the null operator, not {operator} ({operator_name})"
                    ),
                ));
            }
            r.finish()?;
            return Ok(Request {
                opcode,
                operator,
                operand: Operand::None,
            });
        }
        match operator {
            operator::NULL => {
                return Err(Error::invalid(
                    RACP,
                    format!("{opcode_name} needs an operator; got 0 (null)"),
                ));
            }
            operator::ALL_RECORDS | operator::FIRST_RECORD | operator::LAST_RECORD => {
                r.finish()?;
                return Ok(Request {
                    opcode,
                    operator,
                    operand: Operand::None,
                });
            }
            operator::LESS_THAN_OR_EQUAL_TO
            | operator::GREATER_THAN_OR_EQUAL_TO
            | operator::WITHIN_RANGE_INCLUSIVE => {}
            _ => {
                return Ok(Request {
                    opcode,
                    operator,
                    operand: Operand::Raw(r.rest().to_vec()),
                });
            }
        };
        let filter_type = r.u8()?;
        let (min, max) = match operator {
            operator::LESS_THAN_OR_EQUAL_TO => (false, true),
            operator::GREATER_THAN_OR_EQUAL_TO => (true, false),
            _ => (true, true),
        };
        let operand = match filter_type {
            1 => {
                let mut read = |on: bool| on.then(|| r.u16()).transpose();
                let (lo, hi) = (read(min)?, read(max)?);
                Operand::SequenceNumber { min: lo, max: hi }
            }
            2 => {
                let mut read = |on: bool| on.then(|| DateTime::read(r)).transpose();
                let (lo, hi) = (read(min)?, read(max)?);
                Operand::UserFacingTime { min: lo, max: hi }
            }
            _ => {
                let mut raw = vec![filter_type];
                raw.extend_from_slice(r.rest());
                Operand::Raw(raw)
            }
        };
        r.finish()?;
        Ok(Request {
            opcode,
            operator,
            operand,
        })
    }
}

/// A response from the server. The operator of a response is always null (0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Response {
    /// Op code 5: the number of stored records, sent as `width` (1, 2 or 4) bytes.
    NumberOfRecords { count: u32, width: u8 },
    /// Op code 6: how the request with op code `request_opcode` ended.
    ResponseCode {
        request_opcode: u8,
        response_code: u8,
    },
}

impl Response {
    /// The op code (5 or 6).
    pub fn opcode(&self) -> u8 {
        match self {
            Response::NumberOfRecords { .. } => 5,
            Response::ResponseCode { .. } => 6,
        }
    }

    /// The wire bytes; a count is written in `width` bytes (truncated to them, and
    /// widths other than 1, 2, 4 write what the decoder rejects).
    pub fn encode(&self) -> Vec<u8> {
        match *self {
            Response::NumberOfRecords { count, width } => {
                let mut out = vec![5, operator::NULL];
                let bytes = count.to_le_bytes();
                out.extend_from_slice(&bytes[..usize::from(width.min(4))]);
                out
            }
            Response::ResponseCode {
                request_opcode,
                response_code,
            } => vec![6, operator::NULL, request_opcode, response_code],
        }
    }

    fn decode(opcode: u8, operator: u8, r: &mut Reader<'_>, len: usize) -> Result<Response, Error> {
        if operator != operator::NULL {
            return Err(Error::invalid(
                RACP,
                format!(
                    "a server response must carry the null operator (0), got {operator} ({})",
                    enum_name(&OPERATOR_NAMES, usize::from(operator))
                ),
            ));
        }
        if opcode == 6 {
            let request_opcode = r.u8()?;
            let response_code = r.u8()?;
            r.finish()?;
            return Ok(Response::ResponseCode {
                request_opcode,
                response_code,
            });
        }
        let (count, width) = match r.remaining() {
            0 => {
                return Err(Error::Truncated {
                    characteristic: RACP,
                    needed: len + 1,
                    got: len,
                });
            }
            1 => (u32::from(r.u8()?), 1),
            2 => (u32::from(r.u16()?), 2),
            4 => (r.u32()?, 4),
            w => {
                return Err(Error::invalid(
                    RACP,
                    format!(
                        "the number-of-stored-records count is {w} bytes wide; only 1, 2 or 4 \
                         are accepted"
                    ),
                ));
            }
        };
        Ok(Response::NumberOfRecords { count, width })
    }
}

/// A decoded RACP value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Message {
    Request(Request),
    Response(Response),
}

impl Message {
    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Message::Request(r) => r.encode(),
            Message::Response(r) => r.encode(),
        }
    }

    /// Decodes an RACP value. Without a `direction`, op codes 1–4 are requests and
    /// 5–6 responses; with one, an op code of the other direction is rejected.
    pub fn decode(bytes: &[u8], direction: Option<Direction>) -> Result<Message, Error> {
        let mut r = Reader::new(bytes, RACP);
        if bytes.len() < 2 {
            expect_len(bytes, 2, RACP)?;
        }
        let opcode = r.u8()?;
        let operator = r.u8()?;
        let is_request = match opcode {
            1..=4 => true,
            5 | 6 => false,
            _ => {
                return Err(Error::ReservedValue {
                    characteristic: RACP,
                    field: "op code",
                    value: u32::from(opcode),
                    consequence: "the message cannot be decoded",
                });
            }
        };
        let name = enum_name(&OPCODE_NAMES, usize::from(opcode));
        match (is_request, direction) {
            (true, Some(Direction::ServerToClient)) => Err(Error::invalid(
                RACP,
                format!(
                    "op code {opcode} ({name}) is a client request, not a server-to-client message"
                ),
            )),
            (false, Some(Direction::ClientToServer)) => Err(Error::invalid(
                RACP,
                format!(
                    "op code {opcode} ({name}) is a server response, not a client-to-server message"
                ),
            )),
            (true, _) => {
                let op = RequestOpcode::from_code(opcode).ok_or_else(|| {
                    Error::invalid(RACP, format!("op code {opcode} is not a request"))
                })?;
                Request::decode(op, operator, &mut r).map(Message::Request)
            }
            (false, _) => {
                Response::decode(opcode, operator, &mut r, bytes.len()).map(Message::Response)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::date_time;
    use proptest::prelude::*;

    fn decode(bytes: &[u8]) -> Result<Message, Error> {
        Message::decode(bytes, None)
    }

    /// spec/decode.md §3 RACP: the agent's four requests, byte for byte.
    #[test]
    fn the_agents_requests_encode_to_the_specified_bytes() {
        assert_eq!(Request::report_all_records().encode(), [0x01, 0x01]);
        // ≥ 0x0102 by sequence number: op 1, operator 3, filter 1, 0x0102 LE.
        assert_eq!(
            Request::report_records_from(0x0102).encode(),
            [0x01, 0x03, 0x01, 0x02, 0x01]
        );
        assert_eq!(Request::report_number_of_records().encode(), [0x04, 0x01]);
        assert_eq!(Request::abort().encode(), [0x03, 0x00]);
        for r in [
            Request::report_all_records(),
            Request::report_records_from(7),
            Request::report_number_of_records(),
            Request::abort(),
        ] {
            assert_eq!(decode(&r.encode()), Ok(Message::Request(r.clone())));
            assert_eq!(
                Message::decode(&r.encode(), Some(Direction::ClientToServer)),
                Ok(Message::Request(r))
            );
        }
    }

    /// spec/decode.md §3 RACP: each operator takes the operand it needs.
    #[test]
    fn filtered_requests_read_one_or_two_values() {
        // ≤ 0x0010: operand_max only.
        assert_eq!(
            decode(&[0x01, 0x02, 0x01, 0x10, 0x00]),
            Ok(Message::Request(Request {
                opcode: RequestOpcode::ReportStoredRecords,
                operator: 2,
                operand: Operand::SequenceNumber {
                    min: None,
                    max: Some(16)
                },
            }))
        );
        // Delete within 5..=9.
        assert_eq!(
            decode(&[0x02, 0x04, 0x01, 0x05, 0x00, 0x09, 0x00]),
            Ok(Message::Request(Request {
                opcode: RequestOpcode::DeleteStoredRecords,
                operator: 4,
                operand: Operand::SequenceNumber {
                    min: Some(5),
                    max: Some(9)
                },
            }))
        );
        // ≥ a user facing time: filter 2 and a Date Time.
        let t = [0xEA, 0x07, 11, 22, 0, 0, 0];
        let mut bytes = vec![0x01, 0x03, 0x02];
        bytes.extend_from_slice(&t);
        let Ok(Message::Request(r)) = decode(&bytes) else {
            panic!("not a request")
        };
        assert_eq!(
            r.operand,
            Operand::UserFacingTime {
                min: Some(DateTime::decode(&t).unwrap()),
                max: None
            }
        );
        // First and last record take no operand.
        assert!(decode(&[0x01, 0x05]).is_ok());
        assert!(decode(&[0x04, 0x06]).is_ok());
    }

    /// spec/decode.md §3 RACP: operands "as the operator needs"; strictness policy for the rest.
    #[test]
    fn requests_with_the_wrong_operand_are_rejected() {
        // all_records with an operand: trailing bytes.
        assert!(matches!(
            decode(&[0x01, 0x01, 0x01]),
            Err(Error::TrailingBytes { .. })
        ));
        // ≥ with half a sequence number: truncated.
        assert_eq!(
            decode(&[0x01, 0x03, 0x01, 0x05]),
            Err(Error::Truncated {
                characteristic: RACP,
                needed: 5,
                got: 4
            })
        );
        // report with the null operator: invalid.
        assert!(matches!(decode(&[0x01, 0x00]), Err(Error::Invalid { .. })));
        // abort with an operator: invalid.
        assert!(matches!(decode(&[0x03, 0x01]), Err(Error::Invalid { .. })));
    }

    /// Strictness policy: RFU operators and filter types decode as "reserved", raw.
    #[test]
    fn rfu_operators_and_filter_types_keep_their_operand_raw() {
        let Ok(Message::Request(r)) = decode(&[0x01, 0x07, 0xAA, 0xBB]) else {
            panic!()
        };
        assert_eq!(r.operator_name(), "reserved");
        assert_eq!(r.operand, Operand::Raw(vec![0xAA, 0xBB]));
        let Ok(Message::Request(r)) = decode(&[0x01, 0x03, 0x09, 0x01]) else {
            panic!()
        };
        assert_eq!(r.operand, Operand::Raw(vec![0x09, 0x01]));
        assert_eq!(r.operand.filter_type(), None);
    }

    /// spec/decode.md §3 RACP: responses; "no records found" is a normal completion.
    #[test]
    fn response_codes_decode_with_their_request_op_code() {
        assert_eq!(
            decode(&[0x06, 0x00, 0x01, 0x06]),
            Ok(Message::Response(Response::ResponseCode {
                request_opcode: 1,
                response_code: response_code::NO_RECORDS_FOUND
            }))
        );
        assert_eq!(enum_name(&RESPONSE_CODE_NAMES, 6), "no_records_found");
        assert_eq!(enum_name(&RESPONSE_CODE_NAMES, 10), "reserved");
        assert_eq!(enum_name(&RESPONSE_CODE_NAMES, 0), "reserved");
    }

    /// spec/decode.md §3 RACP: a count of 1, 2 or 4 bytes; any other width rejected.
    #[test]
    fn record_counts_of_one_two_and_four_bytes_are_accepted() {
        for (bytes, count, width) in [
            (vec![0x05, 0x00, 0x2A], 42u32, 1u8),
            (vec![0x05, 0x00, 0x2C, 0x01], 300, 2),
            (vec![0x05, 0x00, 0xA0, 0x86, 0x01, 0x00], 100_000, 4),
        ] {
            let m = decode(&bytes).unwrap();
            assert_eq!(
                m,
                Message::Response(Response::NumberOfRecords { count, width })
            );
            assert_eq!(m.encode(), bytes);
        }
        for extra in [3usize, 5, 6] {
            let mut bytes = vec![0x05, 0x00];
            bytes.extend(std::iter::repeat_n(0u8, extra));
            let e = decode(&bytes).unwrap_err();
            assert!(matches!(e, Error::Invalid { .. }), "{e}");
            assert!(
                e.to_string().contains(&format!("{extra} bytes wide")),
                "{e}"
            );
        }
        assert_eq!(
            decode(&[0x05, 0x00]),
            Err(Error::Truncated {
                characteristic: RACP,
                needed: 3,
                got: 2
            })
        );
    }

    /// spec/decode.md §3 RACP: `operator` must be 0 (Null) in server responses.
    #[test]
    fn a_response_with_an_operator_is_invalid() {
        let e = decode(&[0x06, 0x01, 0x01, 0x01]).unwrap_err();
        assert!(e.to_string().contains("null operator"), "{e}");
    }

    /// spec/decode.md, `--direction`: `01 01` is a request; as server-to-client it is
    /// rejected. Responses as client-to-server are rejected too.
    #[test]
    fn an_explicit_direction_rejects_messages_of_the_other_direction() {
        let e = Message::decode(&[0x01, 0x01], Some(Direction::ServerToClient)).unwrap_err();
        assert!(e.to_string().contains("is a client request"), "{e}");
        let e = Message::decode(&[0x06, 0x00, 0x01, 0x01], Some(Direction::ClientToServer))
            .unwrap_err();
        assert!(e.to_string().contains("is a server response"), "{e}");
        assert!(
            Message::decode(&[0x06, 0x00, 0x01, 0x01], Some(Direction::ServerToClient)).is_ok()
        );
    }

    /// spec/decode.md §3 RACP op codes 1–6; an RFU op code leaves the layout unknown.
    #[test]
    fn rfu_op_codes_are_rejected() {
        for op in [0u8, 7, 0xFF] {
            assert!(matches!(
                decode(&[op, 0x00]),
                Err(Error::ReservedValue {
                    field: "op code",
                    ..
                })
            ));
        }
    }

    /// spec/decode.md introduction: truncation at every byte boundary is rejected.
    #[test]
    fn every_prefix_of_every_message_is_truncated() {
        let messages: Vec<Vec<u8>> = vec![
            vec![0x01, 0x01],
            vec![0x01, 0x03, 0x01, 0x02, 0x01],
            vec![0x02, 0x04, 0x01, 0x05, 0x00, 0x09, 0x00],
            vec![0x01, 0x02, 0x02, 0xEA, 0x07, 11, 22, 0, 0, 0],
            vec![0x06, 0x00, 0x01, 0x01],
        ];
        for m in messages {
            assert!(decode(&m).is_ok());
            for n in 0..m.len() {
                let got = decode(&m[..n]);
                // `01 03` alone is a ≥ request without its filter: truncated too.
                assert!(
                    matches!(got, Err(Error::Truncated { got, .. }) if got == n),
                    "{:02x?}: {got:?}",
                    &m[..n]
                );
            }
        }
    }

    fn request() -> impl Strategy<Value = Request> {
        let seq = (1u8..=4, proptest::option::of(any::<u16>()), any::<u16>());
        prop_oneof![
            (1u8..=4, prop_oneof![Just(1u8), Just(5), Just(6)]).prop_map(|(op, operator)| {
                let opcode = if op == 3 { 1 } else { op };
                Request {
                    opcode: RequestOpcode::from_code(opcode).unwrap(),
                    operator,
                    operand: Operand::None,
                }
            }),
            seq.prop_map(|(op, a, b)| {
                let opcode = RequestOpcode::from_code(if op == 3 { 2 } else { op }).unwrap();
                match a {
                    Some(a) => Request {
                        opcode,
                        operator: 4,
                        operand: Operand::SequenceNumber {
                            min: Some(a),
                            max: Some(b),
                        },
                    },
                    None => Request {
                        opcode,
                        operator: 2,
                        operand: Operand::SequenceNumber {
                            min: None,
                            max: Some(b),
                        },
                    },
                }
            }),
            (date_time(), date_time()).prop_map(|(a, b)| Request {
                opcode: RequestOpcode::ReportStoredRecords,
                operator: 4,
                operand: Operand::UserFacingTime {
                    min: Some(a),
                    max: Some(b)
                },
            }),
            Just(Request::abort()),
        ]
    }

    fn response() -> impl Strategy<Value = Response> {
        prop_oneof![
            (any::<u32>(), prop_oneof![Just(1u8), Just(2), Just(4)]).prop_map(|(c, width)| {
                let count = match width {
                    1 => c & 0xFF,
                    2 => c & 0xFFFF,
                    _ => c,
                };
                Response::NumberOfRecords { count, width }
            }),
            (any::<u8>(), any::<u8>()).prop_map(|(request_opcode, response_code)| {
                Response::ResponseCode {
                    request_opcode,
                    response_code,
                }
            }),
        ]
    }

    proptest! {
        /// spec/decode.md §3 RACP requests: encode → decode round-trips.
        #[test]
        fn any_request_round_trips(r in request()) {
            prop_assert_eq!(decode(&r.encode()), Ok(Message::Request(r)));
        }

        /// spec/decode.md §3 RACP responses: encode → decode round-trips.
        #[test]
        fn any_response_round_trips(r in response()) {
            prop_assert_eq!(decode(&r.encode()), Ok(Message::Response(r)));
        }

        /// spec/decode.md introduction: a decoder never panics; accepted bytes re-encode.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..20)) {
            for d in [None, Some(Direction::ClientToServer), Some(Direction::ServerToClient)] {
                if let Ok(m) = Message::decode(&bytes, d) {
                    prop_assert_eq!(m.encode(), bytes.clone());
                }
            }
        }
    }
}
