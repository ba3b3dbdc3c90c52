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

/// mimalloc rather than glibc's malloc: at load, glibc's allocation and consolidation
/// took about a third of the ingester's samples (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use vigil_wire::DecodeLimits;

mod access_cli;
#[cfg(feature = "embedded-broker")]
mod broker;
mod config;
mod demo;
mod loadgen;
mod replay;
mod serve;

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
    /// Run the whole platform on embedded defaults, fed by a simulated fleet.
    ///
    /// Starts an MQTT broker in-process, the ingester with its clinical store in
    /// ./vigil-demo-data (or --data-dir), the HTTP API, and a few dozen simulated home
    /// gateways publishing over real MQTT on an accelerated clock: hypertensive
    /// mornings, a hypoglycaemic night, an occasional bad reading. Prints the addresses
    /// first, then incidents as they happen and a line of counts; Ctrl-C stops it
    /// cleanly. Nothing else needs installing, and nothing is read from outside the
    /// binary.
    Demo(demo::DemoArgs),
    /// Drive a broker with a simulated fleet and measure: the broker alone
    /// (--baseline) or a running vigil serve (--metrics); see `vigil loadgen run --help`.
    #[command(subcommand)]
    Loadgen(LoadgenCommand),
    /// Run the ingester: take readings off MQTT, validate, store, acknowledge.
    ///
    /// Subscribes to every gateway's readings with a persistent session and acknowledges
    /// each publish only after its readings are committed to the clinical store (stored,
    /// quarantined with a reason, or counted duplicate). SIGHUP reloads the registry
    /// file (a broken one is refused and the current one stays) and re-processes the
    /// readings quarantined as unassigned_device that an assignment now covers. Stops
    /// cleanly on Ctrl-C or SIGTERM: intake stops, what was taken is committed and
    /// acknowledged, then it disconnects. Settings: `vigil print-default-config`.
    Serve(ServeArgs),
    /// Print the documented default configuration of `vigil serve`.
    PrintDefaultConfig,
    /// The API's users: add one, with a first API token (printed once); set a
    /// password for the web dashboard.
    #[command(subcommand)]
    Users(UsersCommand),
    /// The audit trail of API access.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print the key a doctor's webhook receiver verifies signatures with.
    ///
    /// Each receiver in Vigil's format has its own key, derived from the deployment's
    /// webhook secret (or the doctor's own secret from webhook.doctor_secrets_file),
    /// so no receiver can sign for another. Give it to the receiver's administrator;
    /// docs/webhooks.md shows how to verify.
    WebhookKey {
        #[command(flatten)]
        args: ServeArgs,
        /// The doctor whose receiver it is.
        #[arg(value_name = "DOCTOR_ID")]
        doctor: String,
    },
    /// Check a configuration (and the registry it names): every problem at once.
    ValidateConfig(ServeArgs),
    /// Work with readings envelopes (wire contract v1).
    #[command(subcommand)]
    Envelope(EnvelopeCommand),
    /// The clinical rules: replay a scenario through the engine.
    #[command(subcommand)]
    Rules(RulesCommand),
}

#[derive(Debug, Subcommand)]
enum LoadgenCommand {
    /// Print the registry of the simulated fleet (load it into vigil serve before a run).
    Registry(loadgen::FleetArgs),
    /// Publish the load and measure what the far end takes.
    Run(Box<loadgen::RunArgs>),
}

#[derive(Debug, Subcommand)]
enum UsersCommand {
    /// Add a user (doctor, institution_admin or platform_admin) to the clinical store of
    /// the configuration, and print its first API token on stdout; only the token's
    /// SHA-256 is kept, so it cannot be shown again.
    Add {
        #[command(flatten)]
        args: ServeArgs,
        /// The user's id (letters, digits, '.', '_', '-').
        #[arg(long)]
        id: String,
        /// doctor, institution_admin or platform_admin.
        #[arg(long)]
        role: String,
        /// A doctor's registry id (for role doctor).
        #[arg(long)]
        doctor: Option<String>,
        /// The institution (for role institution_admin).
        #[arg(long)]
        institution: Option<String>,
        /// A name for the token (where it is used).
        #[arg(long, default_value = "first")]
        token_name: String,
    },
    /// Set a user's password for the web dashboard's sign-in, read from the first
    /// line of stdin (at least 10 characters). Kept as a salted PBKDF2-SHA256 hash;
    /// setting it also lifts a lockout after too many wrong passwords.
    Password {
        #[command(flatten)]
        args: ServeArgs,
        /// The user's id.
        #[arg(long)]
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check the audit trail's hash chain: exit 0 when every entry is intact and
    /// linked to the one before, 1 with the first broken entry otherwise (an entry
    /// edited, deleted or inserted).
    Verify {
        #[command(flatten)]
        args: ServeArgs,
    },
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Replay a scenario (spec/replay.md) through the validator and the rule engine the
    /// live pipeline uses, on the scenario's clock; prints the outcome as JSON.
    ///
    /// The engine evaluates the rules of clinical rules §1 (acute and trend rules,
    /// monitoring gaps), per-patient overrides and snoozes (refused ones are listed in
    /// `refused_overrides`), late readings, quiet hours and escalation.
    ///
    /// Exit status 0 when the scenario was evaluated; 2 with a one-line reason when the
    /// file is malformed.
    Replay {
        /// The scenario file (JSON).
        #[arg(value_name = "SCENARIO")]
        scenario: PathBuf,
        /// A rule-set file (TOML) instead of the default set built in.
        #[arg(long, value_name = "RULESET")]
        rules: Option<PathBuf>,
    },
    /// Check a rule-set file: every unknown key and inconsistency at once, then a
    /// summary of the effective set (a file names only what it changes).
    ///
    /// The default set is printed by `vigil rules print-default`.
    Check {
        #[arg(value_name = "RULESET")]
        file: PathBuf,
    },
    /// Print the default rule set (China's 规范 thresholds, clinical rules §1).
    PrintDefault,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Configuration file (TOML); without it, the defaults and VIGIL_* variables apply.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Registry file (TOML or JSON); overrides `registry` of the configuration.
    #[arg(long, value_name = "FILE")]
    registry: Option<PathBuf>,
    /// Data directory; overrides `data_dir` of the configuration.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
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
        Command::Loadgen(LoadgenCommand::Registry(args)) => {
            loadgen::print_registry(&args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Loadgen(LoadgenCommand::Run(args)) => {
            loadgen::run(*args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => {
            demo::run(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => {
            let (config, registry, text) = match load(&args) {
                Ok(loaded) => loaded,
                Err(problems) => return Ok(report_problems(&problems)),
            };
            serve::run(config, registry, text)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::WebhookKey { args, doctor } => {
            let (config, registry, _) = match load(&args) {
                Ok(loaded) => loaded,
                Err(problems) => return Ok(report_problems(&problems)),
            };
            let webhooks = match config.webhooks() {
                Ok(w) => w,
                Err(problems) => return Ok(report_problems(&problems)),
            };
            let Some(d) = vigil_model::DoctorId::parse(&doctor)
                .ok()
                .and_then(|id| registry.doctors.get(&id))
            else {
                eprintln!("vigil: doctor {doctor:?} is not in the registry");
                return Ok(ExitCode::from(1));
            };
            if d.channels.webhook_format != vigil_registry::WebhookFormat::Vigil {
                eprintln!(
                    "vigil: doctor {doctor}'s webhook is a {} robot: it uses the robot's own credentials, not a Vigil key",
                    d.channels.webhook_format.as_str()
                );
                return Ok(ExitCode::from(1));
            }
            match webhooks.secrets.key_for(&doctor, d.channels.webhook_format) {
                Some(key) => {
                    println!("{key}");
                    Ok(ExitCode::SUCCESS)
                }
                None => {
                    eprintln!(
                        "vigil: no webhook secret: set webhook.secret_file or VIGIL_WEBHOOK_SECRET"
                    );
                    Ok(ExitCode::from(1))
                }
            }
        }
        Command::Users(UsersCommand::Add {
            args,
            id,
            role,
            doctor,
            institution,
            token_name,
        }) => {
            let (config, registry, _) = match load(&args) {
                Ok(loaded) => loaded,
                Err(problems) => return Ok(report_problems(&problems)),
            };
            access_cli::add_user(
                &config,
                &registry,
                (
                    &id,
                    &role,
                    doctor.as_deref(),
                    institution.as_deref(),
                    &token_name,
                ),
            )
        }
        Command::Users(UsersCommand::Password { args, id }) => {
            let (config, _, _) = match load(&args) {
                Ok(loaded) => loaded,
                Err(problems) => return Ok(report_problems(&problems)),
            };
            access_cli::set_password(&config, &id)
        }
        Command::Audit(AuditCommand::Verify { args }) => {
            let (config, _, _) = match load(&args) {
                Ok(loaded) => loaded,
                Err(problems) => return Ok(report_problems(&problems)),
            };
            access_cli::verify_audit(&config)
        }
        Command::PrintDefaultConfig => {
            print!("{}", config::DEFAULT_CONFIG);
            Ok(ExitCode::SUCCESS)
        }
        Command::ValidateConfig(args) => match load(&args) {
            Ok((config, registry, _)) => {
                println!(
                    "configuration ok: store in {}, broker {}, registry with {} devices and {} patients",
                    config.data_dir.display(),
                    config.broker.url,
                    registry.devices.len(),
                    registry.patients.len()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(problems) => Ok(report_problems(&problems)),
        },
        Command::Rules(RulesCommand::PrintDefault) => {
            print!("{}", vigil_rules::ruleset::DEFAULT_CN);
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules(RulesCommand::Check { file }) => {
            let set = match load_rules(Some(&file)) {
                Ok(set) => set,
                Err(problems) => return Ok(report_problems_of("the rule set", &problems)),
            };
            println!(
                "rule set {:?} (version {}) is consistent: crisis {}/{} mmHg, hypoglycaemia level 2 below {} mmol/L, SpO2 critical at or below {} % (scale 2: {} %), SVT/AF critical from {}/min",
                set.name,
                set.version,
                set.bp.crisis_systolic,
                set.bp.crisis_diastolic,
                set.glucose.level2_below,
                set.spo2.critical_at_or_below,
                set.spo2.scale2_critical_at_or_below,
                set.ecg.supraventricular_critical_rate
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Rules(RulesCommand::Replay { scenario, rules }) => {
            let set = match load_rules(rules.as_ref()) {
                Ok(set) => std::sync::Arc::new(set),
                Err(problems) => return Ok(report_problems_of("the rule set", &problems)),
            };
            let text = std::fs::read_to_string(&scenario)
                .with_context(|| format!("cannot read {}", scenario.display()))?;
            let outcome = replay::Scenario::parse(&text, set)
                .with_context(|| format!("{}", scenario.display()))?
                .run();
            let text = serde_json::to_string_pretty(&outcome).context("formatting the outcome")?;
            println!("{text}");
            Ok(ExitCode::SUCCESS)
        }
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

/// A rule-set file, or the default set without one; every problem at once.
pub(crate) fn load_rules(
    file: Option<&PathBuf>,
) -> Result<vigil_rules::ruleset::RuleSet, Vec<String>> {
    match file {
        None => Ok(vigil_rules::ruleset::RuleSet::default()),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| vec![format!("cannot read the rule set {}: {e}", path.display())])?;
            vigil_rules::ruleset::RuleSet::parse(&text).map_err(|p| {
                p.into_iter()
                    .map(|x| format!("rule set {}: {x}", path.display()))
                    .collect()
            })
        }
    }
}

fn report_problems(problems: &[String]) -> ExitCode {
    report_problems_of("the configuration", problems)
}

fn report_problems_of(subject: &str, problems: &[String]) -> ExitCode {
    eprintln!("vigil: {subject} has {} problem(s):", problems.len());
    for p in problems {
        eprintln!("  - {p}");
    }
    ExitCode::from(2)
}

/// Configuration (file, then environment, then flags) and the registry (parsed, and its
/// text), checked.
fn load(
    args: &ServeArgs,
) -> Result<(config::Config, vigil_registry::Registry, String), Vec<String>> {
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| vec![format!("cannot read {}: {e}", path.display())])?;
            config::Config::parse(&text).map_err(|p| {
                p.into_iter()
                    .map(|x| format!("{}: {x}", path.display()))
                    .collect::<Vec<_>>()
            })?
        }
        None => config::Config::default(),
    };
    let mut problems = Vec::new();
    if let Err(p) = config.apply_env(std::env::vars()) {
        problems.extend(p);
    }
    if let Some(r) = &args.registry {
        config.registry = r.clone();
    }
    if let Some(d) = &args.data_dir {
        config.data_dir = d.clone();
    }
    if let Err(p) = config.validate() {
        problems.extend(p);
    }
    if !config.rules.as_os_str().is_empty()
        && let Err(p) = load_rules(Some(&config.rules))
    {
        problems.extend(p);
    }
    let registry = match std::fs::read_to_string(&config.registry) {
        Ok(text) => match vigil_registry::Registry::parse(&text) {
            Ok(r) => Some((r, text)),
            Err(e) => {
                problems.extend(
                    e.problems
                        .into_iter()
                        .map(|p| format!("registry {}: {p}", config.registry.display())),
                );
                None
            }
        },
        Err(e) => {
            problems.push(format!(
                "cannot read the registry {}: {e} (give one with --registry; docs/registry.md)",
                config.registry.display()
            ));
            None
        }
    };
    match registry {
        Some((r, text)) if problems.is_empty() => Ok((config, r, text)),
        _ => Err(problems),
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
