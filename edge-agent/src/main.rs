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
    /// Run a fleet of simulated patients' gateways against a broker.
    ///
    /// Each simulated patient has a gateway of its own: its readings (blood pressure and
    /// glucose as the bytes a cuff or a meter sends, decoded by the agent's own code) go
    /// into that gateway's durable outbox and are published as envelopes at QoS 1, exactly
    /// as `vigil-edge run` does with real devices. Progress on stderr every second; a JSON
    /// summary on stdout at the end. Killed at any point and started again with the same
    /// options and state directory, it continues: nothing is lost, and what is sent
    /// again is deduplicated by the platform. `--print-registry` prints the registry the
    /// platform needs for this fleet.
    Simulate(SimulateArgs),
    /// Run the gateway: read the allowed Bluetooth devices and forward their readings.
    ///
    /// Every reading goes into the durable outbox under state_dir before anything else,
    /// and leaves it only when the broker has acknowledged the envelope that carried it;
    /// the retained status says online/offline. Settings: a TOML file (see
    /// `vigil-edge print-default-config`) and VIGIL_EDGE_* variables; every problem is
    /// reported at once. Stops cleanly on Ctrl-C or SIGTERM. Without the `bluetooth`
    /// feature (or an adapter) it still forwards what the outbox holds, and says why no
    /// device is read.
    Run {
        /// The configuration file (TOML).
        #[arg(long, value_name = "FILE")]
        config: std::path::PathBuf,
    },
    /// Print the documented default configuration of `vigil-edge run`.
    PrintDefaultConfig,
    /// List the Bluetooth health devices in range, for the person installing the gateway.
    ///
    /// Scans for the given seconds and prints each device advertising a health service
    /// (Glucose, Blood Pressure, Heart Rate, Pulse Oximeter, Health Thermometer, Weight
    /// Scale, Polar PMD) with its address, name and signal strength. Without a Bluetooth
    /// adapter (or without BlueZ), it says so and exits with status 1; a vigil-edge built
    /// without the `bluetooth` feature says that and exits with status 2.
    Scan {
        /// How long to listen, in seconds.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
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

/// `simulate` options.
#[derive(Debug, clap::Args)]
struct SimulateArgs {
    /// The broker: mqtt://host:port.
    #[arg(long, value_name = "URL", default_value = "mqtt://127.0.0.1:1883")]
    broker: String,
    /// Where the gateways' outboxes and the run's progress live; a run started again
    /// on the same directory with the same options continues where it stopped.
    #[arg(long, value_name = "DIR", default_value = "./vigil-edge-sim")]
    state_dir: std::path::PathBuf,
    /// Patients, one gateway each (1 to 10000).
    #[arg(long, default_value_t = 20)]
    patients: usize,
    /// At most this many devices per patient (1 to 3); without it, the kit their
    /// conditions call for (a cuff, a meter, an oximeter, a scale, an ECG patch, ...).
    #[arg(long, value_name = "N")]
    devices_per_patient: Option<usize>,
    /// The same seed gives the same fleet and the same readings.
    #[arg(long, default_value_t = 2026)]
    seed: u64,
    /// Readings to produce in all, then wait until every outbox has drained and exit.
    #[arg(long, default_value_t = 1000)]
    readings: u64,
    /// Simulated seconds per real second (simulated time never passes the clock).
    #[arg(long, default_value_t = 3600.0)]
    speed: f64,
    /// Hours of history the first run starts back in time.
    #[arg(long, default_value_t = 48)]
    history_hours: i64,
    /// Readings per envelope, and how long a part-full envelope waits (ms).
    #[arg(long, default_value_t = 20)]
    batch_size: usize,
    #[arg(long, default_value_t = 200)]
    linger_ms: u64,
    /// Fault injection: GATEWAY:BATCH_SEQ is marked sent without being published, as if
    /// lost on the way (the platform should detect the gap and ask for a backfill).
    #[arg(long, value_name = "GATEWAY:SEQ")]
    drop_batch: Vec<String>,
    /// Print the registry the platform needs for this fleet (TOML) and exit.
    #[arg(long)]
    print_registry: bool,
    /// Once every reading is acknowledged, stay connected (answering the platform's
    /// commands, such as backfill) until Ctrl-C or SIGTERM.
    #[arg(long)]
    stay: bool,
    /// Fault injection, as a chance per reading (0 to 1): a device clock reset to 2000
    /// (the platform keeps the raw clock as device_time).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    fault_clock_reset: f64,
    /// Chance per envelope that the gateway sends a device's last readings again (the
    /// platform counts them as duplicates).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    fault_resend_memory: f64,
    /// Chance per reading of an impossible value (quarantined by the platform).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    fault_out_of_range: f64,
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
        Command::Simulate(args) => run_simulate(args),
        Command::Run { config } => run_gateway(&config),
        Command::PrintDefaultConfig => {
            print!("{}", vigil_edge::config::DEFAULT_CONFIG);
            ExitCode::SUCCESS
        }
        Command::Scan { seconds, json } => run_scan(seconds, json),
    }
}

#[cfg(not(feature = "bluetooth"))]
fn run_scan(_seconds: u64, _json: bool) -> ExitCode {
    eprintln!(
        "vigil-edge scan: this vigil-edge was built without Bluetooth; build it with `cargo build --release -p vigil-edge --features bluetooth` (needs pkg-config and libdbus-1-dev)"
    );
    ExitCode::from(2)
}

#[cfg(feature = "bluetooth")]
fn run_scan(seconds: u64, json: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("vigil-edge scan: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    if !json {
        eprintln!("vigil-edge scan: listening for {seconds} s ...");
    }
    match runtime.block_on(vigil_edge::ble::scan(std::time::Duration::from_secs(
        seconds,
    ))) {
        Ok(found) if json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&found).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(found) => {
            if found.is_empty() {
                println!(
                    "no health device in range (is it awake? most meters advertise only for a minute after a test)"
                );
            }
            for d in found {
                println!(
                    "{}  {:<24} {:>5}  {}",
                    d.address,
                    d.name.unwrap_or_else(|| "(no name)".to_owned()),
                    d.rssi.map_or("?".to_owned(), |r| format!("{r} dBm")),
                    d.services.join(", ")
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("vigil-edge scan: {e}");
            ExitCode::from(1)
        }
    }
}

fn run_gateway(path: &std::path::Path) -> ExitCode {
    use std::sync::Arc;
    let report = |problems: Vec<String>| {
        eprintln!(
            "vigil-edge: {} has {} problem(s):",
            path.display(),
            problems.len()
        );
        for p in problems {
            eprintln!("  - {p}");
        }
        ExitCode::from(2)
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return report(vec![format!("cannot read it: {e}")]),
    };
    let mut config = match vigil_edge::config::EdgeConfig::parse(&text) {
        Ok(c) => c,
        Err(p) => return report(p),
    };
    if let Err(p) = config.apply_env(std::env::vars()) {
        return report(p);
    }
    let checked = match config.check() {
        Ok(c) => c,
        Err(p) => return report(p),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return report(vec![format!("cannot start the runtime: {e}")]),
    };
    let result = runtime.block_on(vigil_edge::run::run(
        checked,
        config.state_dir.clone(),
        (
            config.batch_size,
            std::time::Duration::from_millis(config.linger_ms),
        ),
        Arc::new(vigil_model::clock::SystemClock),
        shutdown_signal(),
    ));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vigil-edge: {e}");
            ExitCode::from(1)
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        } => {}
    }
}

fn run_simulate(args: SimulateArgs) -> ExitCode {
    use std::sync::Arc;
    use vigil_model::clock::{Clock, SystemClock};
    let fail = |e: String| {
        eprintln!("vigil-edge simulate: {e}");
        ExitCode::from(2)
    };
    let (host, port) = match vigil_edge::config::parse_broker_url(&args.broker) {
        Ok((_, _, true)) => {
            return fail(format!(
                "--broker {:?} must be mqtt://host:port (mqtts:// comes with `run`'s configuration)",
                args.broker
            ));
        }
        Ok((host, port, false)) => (host, port),
        Err(e) => return fail(format!("--broker {e}")),
    };
    let mut drop_batches = Vec::new();
    for d in &args.drop_batch {
        let parsed = d
            .rsplit_once(':')
            .and_then(|(g, s)| Some((GatewayId::parse(g).ok()?, s.parse::<u64>().ok()?)));
        match parsed {
            Some(x) => drop_batches.push(x),
            None => {
                return fail(format!(
                    "--drop-batch {d:?} must be GATEWAY:BATCH_SEQ, e.g. gw-0001:5"
                ));
            }
        }
    }
    if !(1..=10_000).contains(&args.patients) {
        return fail(format!("--patients {} must be 1 to 10000", args.patients));
    }
    let options = vigil_edge::simulate::SimulateOptions {
        host,
        port,
        state_dir: args.state_dir,
        patients: args.patients,
        seed: args.seed,
        readings: args.readings,
        speed: args.speed.max(1.0),
        history: chrono::TimeDelta::hours(args.history_hours.clamp(0, 24 * 365)),
        drop_batches,
        batch_size: args.batch_size.clamp(1, 10_000),
        linger: std::time::Duration::from_millis(args.linger_ms),
        stay: args.stay,
        devices_per_patient: args.devices_per_patient.map(|n| n.clamp(1, 3)),
        faults: vigil_edge::simulate::Faults {
            clock_reset: args.fault_clock_reset.clamp(0.0, 1.0),
            resend_memory: args.fault_resend_memory.clamp(0.0, 1.0),
            out_of_range: args.fault_out_of_range.clamp(0.0, 1.0),
        },
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    if args.print_registry {
        let start = match vigil_edge::simulate::start_of(&options, clock.now()) {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        print!(
            "{}",
            vigil_edge::simulate::fleet(&options, start).registry_toml()
        );
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start the runtime: {e}")),
    };
    let target = options.readings;
    let result = runtime.block_on(async {
        let stop = async {
            shutdown_signal().await;
            eprintln!("vigil-edge simulate: stopping");
        };
        vigil_edge::simulate::run(
            options,
            clock,
            |done, pending| {
                eprintln!("vigil-edge simulate: {done}/{target} readings handed to the outboxes, {pending} not yet acknowledged by the broker");
            },
            |summary| {
                // The summary as soon as every outbox is empty (also with --stay).
                println!("{}", serde_json::to_string(summary).unwrap_or_default());
            },
            stop,
        )
        .await
    });
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail(e),
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
