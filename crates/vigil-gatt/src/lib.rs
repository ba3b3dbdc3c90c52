//! Bluetooth LE payload decoders and encoders for Vigil's home devices, as pure code.
//!
//! No BLE stack, no I/O, no async: bytes in, typed values or a typed [`Error`] out. The
//! gateway's Bluetooth session hands attribute values to these functions; `vigil-edge
//! decode` prints them as spec/decode.md defines; a device simulator uses the encoders.
//!
//! - [`ieee11073`]: SFLOAT and FLOAT with every special value (spec/decode.md §2);
//!   [`decimal`]: the exact decimal arithmetic the decoders use.
//! - [`datetime`]: the raw GATT Date Time.
//! - [`glucose`] (0x2A18, 0x2A34), [`racp`] (0x2A52), [`bpm`] (0x2A35, 0x2A36),
//!   [`hrm`] (0x2A37), [`plx`] (0x2A5E, 0x2A5F), [`temperature`] (0x2A1C),
//!   [`weight`] (0x2A9D): the Bluetooth SIG characteristics (§3).
//! - [`pmd`]: the Polar PMD control point and ECG data frames (§4).
//! - [`to_reading`]: decoded measurements as `vigil_model` readings (§6).
//!
//! # Invariants
//!
//! - **A decoder never panics**, whatever the input: every read is bounds-checked
//!   and fails with [`Error::Truncated`]. Property tests and fuzz targets check it.
//! - **Decoding never guesses.** A special IEEE-11073 value is never turned into a
//!   number; a raw Date Time is never given a year; a layout the bytes do not pin down
//!   is rejected, not assumed.
//! - **Decoded values are exact.** Numbers are kept as their raw bits and computed as
//!   exact decimals ([`decimal::Decimal`]): 0xF0BD is 18.9, not 18.900000000000002.
//! - **Encoders are the inverse of decoders.** Every decoded value keeps every bit the
//!   flags carry, so `encode(decode(bytes)) == bytes` for every accepted payload, except
//!   for the two unused slots of the Intermediate Cuff Pressure, whose content is
//!   ignored and re-encoded as NaN. Encoders write what the value says, so a value a
//!   decoder would reject (an RR flag with no RR value) encodes to bytes it rejects.
//!
//! # Strictness policy
//!
//! The specifications leave some leniency to implementations; this crate picks the
//! strict side wherever accepting would mean guessing:
//!
//! 1. **A reserved (RFU) bit set in a flags field rejects the payload**
//!    ([`Error::ReservedFlags`]): a future flag may announce a field, so the layout of
//!    the rest can no longer be known. This includes the Glucose Context's extended
//!    flags, all of which are RFU.
//! 2. **Bytes left over after the last field the flags announce reject the payload**
//!    ([`Error::TrailingBytes`]), except where the specification lets a field fill the
//!    rest (Heart Rate RR intervals, PMD settings, samples, parameters).
//! 3. **RFU codes in enumerations decode**, with the name `"reserved"` (a glucose type
//!    11, a temperature type 0, an RACP operator 7): the code is reported, nothing
//!    depends on its meaning. Where the layout depends on the code and the code is RFU
//!    (an RACP op code, a PMD settings type), the payload is rejected
//!    ([`Error::ReservedValue`]); an RFU RACP operator or filter type keeps its operand
//!    raw.
//! 4. **Set RFU bits in status bit fields decode** and are reported as
//!    `reserved_bit_<n>` ([`bits::BitName::Reserved`]): status bits describe, they do
//!    not change the layout.
//! 5. **RACP record counts must be 1, 2 or 4 bytes wide**; any other width is rejected.
//! 6. **A PMD ECG payload whose sample bytes are not a positive multiple of 3 is
//!    rejected** as truncated; compressed or non-ECG frames are rejected as
//!    [`Error::Unsupported`].
//! 7. **Invalid in context** ([`Error::Invalid`]): a Heart Rate RR flag with no RR
//!    value, a non-null operator in an RACP response, a null operator in an RACP report
//!    request, a PMD start command with more than one value per setting, a message of
//!    the wrong direction when the direction is given.
//!
//! Unit conversions (kg/L → mg/dL, RR 1/1024 s → ms, weight resolutions) are exact
//! decimal arithmetic; special values never take part in them.

pub mod bits;
pub mod bpm;
mod bytes;
pub mod cts;
pub mod datetime;
pub mod decimal;
pub mod error;
pub mod glucose;
pub mod hrm;
pub mod ieee11073;
pub mod plx;
pub mod pmd;
pub mod racp;
pub mod temperature;
pub mod to_reading;
pub mod weight;

#[cfg(test)]
mod testing;

pub use bits::BitName;
pub use bytes::to_hex;
pub use datetime::DateTime;
pub use decimal::Decimal;
pub use error::{Characteristic, Direction, Error};
pub use ieee11073::{Float, Kind, SFloat};
