//! `vigil-edge`: the agent that runs on a patient's home gateway.
//!
//! It will read Bluetooth LE health devices, keep every reading in a durable outbox
//! and publish over MQTT when the network allows. Subcommands arrive with the issues
//! that build them; each is listed in `--help` with what it does.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vigil_model::GatewayId;
use vigil_wire::Topic;

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
    }
}
