//! `vigil-edge`: the agent that runs on a patient's home gateway.
//!
//! It will read Bluetooth LE health devices, keep every reading in a durable outbox
//! and publish over MQTT when the network allows. Subcommands arrive with the issues
//! that build them; each is listed in `--help` with what it does.

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use vigil_gatt::Direction;
use vigil_model::GatewayId;
use vigil_wire::Topic;

mod decode;

/// vigil-edge: the Vigil home-gateway agent.
///
/// Reads Bluetooth LE health devices (blood-pressure cuffs, glucometers, ECG patches,
/// oximeters, thermometers, scales), keeps every reading in a durable outbox and
/// publishes it to the platform over MQTT (wire contract v1).
#[derive(Debug, Parser)]
#[command(
    name = "vigil-edge",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the MQTT topics a gateway publishes and subscribes to.
    ///
    /// Useful when setting up a broker ACL: a gateway may publish only under its own
    /// `vigil/v1/gw/{gateway_id}/`.
    Topics {
        /// The gateway id (letters, digits, '.', '_', '-'; at most 64).
        #[arg(long)]
        gateway: String,
    },
    /// Decode a Bluetooth LE attribute value captured from a health device.
    ///
    /// Paste the value as any BLE sniffer or phone app shows it (byte order unchanged)
    /// and get its fields, units and status bits as one JSON object, with the keys of
    /// the decode contract (spec/decode.md): absent optional fields are null, special
    /// IEEE-11073 values are strings ("NaN", "NRes", "+INF", "-INF", "RESERVED"), Date
    /// Times are raw objects, 64-bit integers are strings.
    ///
    /// Characteristics: Glucose Measurement 2A18, Glucose Measurement Context 2A34,
    /// Record Access Control Point 2A52, Blood Pressure Measurement 2A35, Intermediate
    /// Cuff Pressure 2A36, Heart Rate Measurement 2A37, PLX Spot-Check 2A5E, PLX
    /// Continuous 2A5F, Temperature Measurement 2A1C, Weight Measurement 2A9D, Date Time
    /// 2A08, the Polar PMD control point FB005C81-02E7-F387-1CAD-8ACD2D8DF0C8 and data
    /// FB005C82-02E7-F387-1CAD-8ACD2D8DF0C8; `sfloat` and `float` for a bare IEEE-11073
    /// number; `pmd-settings` for a bare Polar settings TLV.
    ///
    /// Examples:
    ///   vigil-edge decode 2A35 "00 78 00 50 00 5D 00"
    ///   vigil-edge decode 0x2a37 10:48:a8:01
    ///   vigil-edge decode --direction server-to-client 2A52 06000101
    ///
    /// Exit status: 0 and the JSON object on standard output when the value decodes;
    /// 1 and one line on standard error naming the problem when the value is rejected
    /// (truncated, trailing bytes, reserved flag bits, invalid in context); 2 when the
    /// characteristic or the hex cannot be read.
    #[command(
        verbatim_doc_comment,
        about = "Decode a Bluetooth LE attribute value captured from a health device"
    )]
    Decode {
        /// Which way a control-point value travelled. Only the Record Access Control
        /// Point and the PMD control point use it; without it, RACP op codes 1-4 are
        /// requests and 5-6 responses, and a PMD value starting with F0 is a response,
        /// anything else a client command (with server-to-client: a notice).
        #[arg(long, value_enum, value_name = "DIRECTION")]
        direction: Option<DirectionArg>,
        /// The characteristic: a 16-bit UUID (2A35, 0x2A35, 2a35), a full 128-bit UUID
        /// (any case), or sfloat, float, pmd-settings.
        characteristic: String,
        /// The attribute value in hex, upper or lower case, with or without spaces or
        /// colons; several arguments are joined.
        #[arg(required = true, num_args = 1.., value_name = "HEX")]
        hex: Vec<String>,
        /// Print on one line instead of indented.
        #[arg(long)]
        compact: bool,
    },
}

/// `--direction` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum DirectionArg {
    /// A request or command written by the gateway.
    ClientToServer,
    /// A response or notice from the device.
    ServerToClient,
}

impl From<DirectionArg> for Direction {
    fn from(d: DirectionArg) -> Direction {
        match d {
            DirectionArg::ClientToServer => Direction::ClientToServer,
            DirectionArg::ServerToClient => Direction::ServerToClient,
        }
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Topics { gateway } => match GatewayId::parse(&gateway) {
            Ok(gw) => {
                println!("publish   {} (QoS 1)", Topic::Readings(gw.clone()));
                println!(
                    "publish   {} (QoS 1, retained; also the Last Will)",
                    Topic::Status(gw.clone())
                );
                println!("subscribe {} (QoS 1)", Topic::Command(gw));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("vigil-edge: gateway id {gateway:?} {e}");
                ExitCode::from(2)
            }
        },
        Command::Decode {
            direction,
            characteristic,
            hex,
            compact,
        } => run_decode(direction, &characteristic, &hex.join(" "), compact),
    }
}

/// `decode`: exit 0 with the JSON on stdout, 1 with the rejection on stderr, 2 when the
/// arguments cannot be read.
fn run_decode(
    direction: Option<DirectionArg>,
    characteristic: &str,
    hex: &str,
    compact: bool,
) -> ExitCode {
    let parsed = decode::parse_characteristic(characteristic)
        .and_then(|c| decode::parse_hex(hex).map(|bytes| (c, bytes)));
    let (characteristic, bytes) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("vigil-edge: {e}");
            return ExitCode::from(2);
        }
    };
    match decode::decode(characteristic, &bytes, direction.map(Direction::from)) {
        Ok(value) => {
            let text = if compact {
                serde_json::to_string(&value)
            } else {
                serde_json::to_string_pretty(&value)
            };
            let written = text
                .map_err(|e| e.to_string())
                .and_then(|t| writeln!(std::io::stdout().lock(), "{t}").map_err(|e| e.to_string()));
            match written {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("vigil-edge: cannot write the output: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
