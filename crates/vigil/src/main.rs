//! `vigil`: the platform binary.
//!
//! Subcommands arrive with the issues that build them; each is listed in `--help`
//! with what it does. Concrete backends (store, broker, sinks) are chosen here and
//! nowhere else.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use vigil_wire::DecodeLimits;

/// Vigil: remote patient monitoring for medical consortia (医联体).
///
/// Home gateways publish readings from blood-pressure cuffs, glucometers, ECG patches,
/// oximeters, thermometers and scales over MQTT; Vigil validates and stores them,
/// evaluates the clinical rules and alerts the patient's doctor.
#[derive(Debug, Parser)]
#[command(
    name = "vigil",
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
    /// Work with readings envelopes (wire contract v1).
    #[command(subcommand)]
    Envelope(EnvelopeCommand),
}

#[derive(Debug, Subcommand)]
enum EnvelopeCommand {
    /// Check a readings envelope against wire contract v1, with the ingester's own codec.
    ///
    /// Prints one JSON object: `ok` (true only if every reading is well-formed),
    /// `error` (the envelope-level failure, or null) and `readings`, each with its
    /// `index` and either the `canonical` form the platform would store or the `error`
    /// that would quarantine it.
    ///
    /// Exit status: 0 when the envelope itself is sound (even if some readings are
    /// not), 1 when the envelope is rejected as a whole, 2 when the input cannot be
    /// read. Clinical plausibility (a systolic of 400) is not checked here.
    Check {
        /// The envelope file; `-` or nothing reads standard input.
        #[arg(value_name = "FILE|-")]
        file: Option<PathBuf>,
        /// Print on one line instead of indented.
        #[arg(long)]
        compact: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vigil: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Envelope(EnvelopeCommand::Check { file, compact }) => {
            let payload = read_input(file.as_ref())?;
            let report = vigil_wire::check::check_envelope(&payload);
            let text = if compact {
                serde_json::to_string(&report)
            } else {
                serde_json::to_string_pretty(&report)
            }
            .context("formatting the report")?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{text}").context("writing to standard output")?;
            Ok(ExitCode::from(
                u8::try_from(report.exit_code()).unwrap_or(1),
            ))
        }
    }
}

/// Reads the whole input, at most one byte past the decoder's size limit (so an
/// oversized file is reported as such without being read whole).
fn read_input(file: Option<&PathBuf>) -> anyhow::Result<Vec<u8>> {
    let cap = DecodeLimits::default().max_bytes as u64 + 1;
    let mut buf = Vec::new();
    match file {
        Some(path) if path.as_os_str() != "-" => {
            std::fs::File::open(path)
                .with_context(|| format!("cannot open {}", path.display()))?
                .take(cap)
                .read_to_end(&mut buf)
                .with_context(|| format!("cannot read {}", path.display()))?;
        }
        _ => {
            std::io::stdin()
                .lock()
                .take(cap)
                .read_to_end(&mut buf)
                .context("cannot read standard input")?;
        }
    }
    Ok(buf)
}
