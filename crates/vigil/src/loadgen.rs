//! `vigil loadgen`: drives a real broker with a simulated fleet and measures what
//! arrives.
//!
//! - `vigil loadgen registry --patients N --seed S` prints the fleet's registry (load
//!   it into `vigil serve`, fresh store, before a run against it).
//! - `vigil loadgen run ... --baseline`: a no-op QoS 1 subscriber on the same broker
//!   drains the readings topic; the delivered messages and readings per second are the
//!   ceiling any ingester lives under.
//! - `vigil loadgen run ... --metrics http://HOST:PORT`: publishes to a running
//!   `vigil serve`, waits until its `/metrics` say every reading was taken and
//!   committed (received grew by what was published, nothing pending), and reports
//!   readings per second end to end, ECG samples per second, the publish-to-doctor
//!   latency of alert-triggering readings (it subscribes to the doctors' topics), and
//!   the ingester's peak resident memory (`--ingester-pid`).
//!
//! The load: `--rate` readings per second for `--seconds` (or `--count` readings) in
//! envelopes of `--batch` readings from the fleet's home gateways (blood pressure,
//! glucose and SpO2 in turn), a `--invalid` share of readings out of range (each
//! quarantined), a `--duplicates` share sent again in a later envelope (each counted a
//! duplicate), an `--alerts` share of hypertensive crises with a red-flag symptom
//! (CRITICAL at once, each from a patient of its own), and with `--ecg-hz`, every ECG
//! patch of the fleet streaming one-second strips of the real recording at that rate
//! with `--ecg-leads` leads. Progress goes to stderr each second; `--json` prints the
//! summary as one JSON object on stdout. Each run starts every gateway's `batch_seq`
//! at 1: run against a fresh store.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use vigil_sim::fleet::{DeviceKind, Fleet, FleetConfig};

/// The fleet's options, shared by `registry` and `run` (the same options give the same
/// fleet).
#[derive(Debug, Clone, clap::Args)]
pub struct FleetArgs {
    /// Patients, one home gateway each (1 to 100 000).
    #[arg(long, default_value_t = 1000)]
    pub patients: usize,
    /// The fleet's seed.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

/// `vigil loadgen run`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    /// The broker: mqtt://host:port.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub broker: String,
    /// Readings per second (vitals; ECG strips come on top with --ecg-hz).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Readings in all, instead of --seconds.
    #[arg(long)]
    pub count: Option<u64>,
    /// Readings per envelope.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Publishing MQTT connections (1 to 10 000; each takes some homes, at most one
    /// connection per home with vitals devices: 10 000 is a fleet of gateways each on
    /// its own connection, which needs a file-descriptor limit above that for the load
    /// generator and the broker).
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// Share of readings out of range (quarantined), 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    pub invalid: f64,
    /// Share of readings sent again in a later envelope (duplicates), 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    pub duplicates: f64,
    /// Share of readings that are hypertensive crises with a symptom (CRITICAL), 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    pub alerts: f64,
    /// Stream ECG from every patch of the fleet at this sample rate (one-second strips).
    #[arg(long)]
    pub ecg_hz: Option<f64>,
    /// Leads per ECG strip (1, or 12 for a 12-lead recorder).
    #[arg(long, default_value_t = 1)]
    pub ecg_leads: usize,
    /// Measure the broker alone: a no-op QoS 1 subscriber drains the readings.
    #[arg(long, conflicts_with = "metrics")]
    pub baseline: bool,
    /// The HTTP address of the `vigil serve` under test, e.g. http://127.0.0.1:8080.
    #[arg(long)]
    pub metrics: Option<String>,
    /// The ingester's process id, for its peak resident memory.
    #[arg(long)]
    pub ingester_pid: Option<u32>,
    /// How long to wait for the last readings after publishing ends.
    #[arg(long, default_value_t = 120.0)]
    pub drain_timeout: f64,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// A patient's devices the load uses.
#[derive(Debug, Clone)]
struct Home {
    gateway: String,
    patient: String,
    /// (device id, kind) of the vitals devices.
    vitals: Vec<(String, DeviceKind)>,
    cuff: Option<String>,
    ecg: Option<String>,
}

/// The fleet: the same options give the same registry and homes.
fn fleet(args: &FleetArgs) -> anyhow::Result<Fleet> {
    anyhow::ensure!(
        (1..=100_000).contains(&args.patients),
        "--patients must be 1 to 100000"
    );
    // A fixed start: registration times do not depend on when it runs.
    let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00+08:00")?.to_utc();
    Ok(Fleet::new(FleetConfig {
        patients: args.patients,
        seed: args.seed,
        start,
        incident_every: None,
        devices_per_patient: None,
    }))
}

/// `vigil loadgen registry`.
pub fn print_registry(args: &FleetArgs) -> anyhow::Result<()> {
    print!("{}", fleet(args)?.registry_toml());
    Ok(())
}

fn homes(fleet: &Fleet) -> Vec<Home> {
    fleet
        .patients()
        .iter()
        .map(|p| {
            let of = |k: DeviceKind| {
                p.devices
                    .iter()
                    .find(|d| d.kind == k)
                    .map(|d| d.id.to_string())
            };
            Home {
                gateway: p.gateway.to_string(),
                patient: p.id.to_string(),
                vitals: p
                    .devices
                    .iter()
                    .filter(|d| {
                        matches!(
                            d.kind,
                            DeviceKind::BpCuff | DeviceKind::Glucometer | DeviceKind::Oximeter
                        )
                    })
                    .map(|d| (d.id.to_string(), d.kind))
                    .collect(),
                cuff: of(DeviceKind::BpCuff),
                ecg: of(DeviceKind::EcgPatch),
            }
        })
        .collect()
}

/// The wall clock (readings are measured now).
fn now() -> DateTime<Utc> {
    vigil_model::clock::Clock::now(&vigil_model::clock::SystemClock)
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A routine reading of a device (values from the counter `n`), as JSON text.
///
/// Written directly, not through a `serde_json::Value`: building and serialising the
/// trees took most of the load generator's publishing thread, CPU that the ingester
/// measured beside it shares (BENCHMARKS.md). Ids follow the id grammar, so they need
/// no escaping.
fn reading(device: &str, kind: DeviceKind, n: u64, at: DateTime<Utc>) -> String {
    let time = stamp(at);
    match kind {
        DeviceKind::Glucometer => format!(
            r#"{{"device_id":"{device}","type":"glucose","unit":"mmol/L","time":"{time}","values":{{"value":{:.1},"context":"fasting"}}}}"#,
            5.0 + (n % 20) as f64 / 10.0
        ),
        DeviceKind::Oximeter => format!(
            r#"{{"device_id":"{device}","type":"spo2","unit":"%","time":"{time}","values":{{"value":{},"pulse_rate":{}}}}}"#,
            95 + n % 4,
            70 + n % 10
        ),
        _ => format!(
            r#"{{"device_id":"{device}","type":"bp","unit":"mm[Hg]","time":"{time}","values":{{"systolic":{},"diastolic":{},"pulse":72}}}}"#,
            118 + n % 17,
            76 + n % 9
        ),
    }
}

/// An envelope of readings (JSON texts) from `gateway`.
fn envelope(gateway: &str, seq: u64, readings: &[String]) -> Vec<u8> {
    format!(
        r#"{{"schema":"vigil.readings.v1","gateway_id":"{gateway}","batch_seq":{seq},"sent_at":"{}","readings":[{}]}}"#,
        stamp(now()),
        readings.join(",")
    )
    .into_bytes()
}

const LEADS: [&str; 12] = [
    "I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6",
];

/// One second of ECG from `at`, `leads` leads at `hz`.
fn ecg_strip(device: &str, hz: f64, leads: usize, second: u64, at: DateTime<Utc>) -> Value {
    let one = vigil_sim::ecg::strip(second as f64, 1.0, hz);
    let values = if leads <= 1 {
        json!({"lead": "II", "sample_rate_hz": hz, "samples_uv": one})
    } else {
        let names: Vec<&str> = LEADS.iter().take(leads).copied().collect();
        let samples: Vec<&Vec<i32>> = (0..leads).map(|_| &one).collect();
        json!({"leads": names, "sample_rate_hz": hz, "samples_uv": samples})
    };
    json!({"device_id": device, "type": "ecg_waveform", "unit": "uV", "time": stamp(at), "values": values})
}

/// What the publishers did.
#[derive(Debug, Default)]
struct Published {
    envelopes: AtomicU64,
    readings: AtomicU64,
    invalid: AtomicU64,
    duplicates: AtomicU64,
    alerts: AtomicU64,
    ecg_samples: AtomicU64,
    acked: AtomicU64,
    /// When each alert reading (by patient) was published.
    alert_sent: Mutex<HashMap<String, Instant>>,
}

fn broker(url: &str) -> anyhow::Result<(String, u16)> {
    let rest = url
        .strip_prefix("mqtt://")
        .context("--broker must be mqtt://host:port")?;
    let (host, port) = rest
        .rsplit_once(':')
        .context("--broker must be mqtt://host:port")?;
    Ok((host.to_owned(), port.parse().context("the broker's port")?))
}

/// Most publishing connections (`--connections`).
const MAX_CONNECTIONS: usize = 10_000;

/// A connection with a window of 1 000 publishes in flight and a queue of 10 000.
fn mqtt(host: &str, port: u16, id: &str) -> (AsyncClient, rumqttc::EventLoop) {
    mqtt_sized(host, port, id, 1000, 10_000)
}

/// A connection with `inflight` publishes in flight (rumqttc keeps a slot for each up
/// front: 10 000 connections of 1 000 would take a gigabyte) and a request queue of
/// `queue`.
fn mqtt_sized(
    host: &str,
    port: u16,
    id: &str,
    inflight: u16,
    queue: usize,
) -> (AsyncClient, rumqttc::EventLoop) {
    let mut opts = MqttOptions::new(id, host, port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
    opts.set_inflight(inflight);
    AsyncClient::new(opts, queue)
}

/// Polls an event loop until it fails for good, counting PUBACKs.
fn drive(mut events: rumqttc::EventLoop, acked: Arc<Published>) {
    tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acked.acked.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
}

/// One publishing connection: its share of the homes, paced to its share of the rate.
#[allow(clippy::too_many_arguments)]
async fn publisher(
    (host, port): (String, u16),
    index: usize,
    homes: Vec<Home>,
    args: RunArgs,
    total: u64,
    published: Arc<Published>,
) -> anyhow::Result<()> {
    // (A gateway's envelopes all go through one connection: its batch_seq stays whole.)
    // The window and the queue are shared out over the connections, and so is the
    // pacing: 10 000 connections each waking every 5 ms would be 2 million wake-ups a
    // second; each wakes at most 200 times a second, and at least once per reading of
    // its share.
    let connections = args.connections.max(1);
    let (client, events) = mqtt_sized(
        &host,
        port,
        &format!("vigil-loadgen-{}-{index}", std::process::id()),
        u16::try_from((64_000 / connections).clamp(16, 1000)).unwrap_or(1000),
        (640_000 / connections).clamp(64, 10_000),
    );
    drive(events, published.clone());
    let rate = args.rate / connections as f64;
    let mut seq: HashMap<String, u64> = HashMap::new();
    let mut last: HashMap<String, String> = HashMap::new();
    let start = Instant::now();
    let (mut n, mut home_at) = (0u64, 0usize);
    // Invalid, duplicate and alert accumulators. Each connection starts them at its own
    // offset, so that a share too small for one connection's readings (1 % of a
    // gateway's 10 readings) still comes out right over all of them.
    let offset = (index as f64 + 0.5) / connections as f64;
    let mut acc = (offset, offset, offset);
    let tick_every = Duration::from_secs_f64((1.0 / rate).clamp(0.005, 0.5));
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    // With ECG streaming, the patches' homes are the ECG streamer's (one batch_seq per
    // gateway, from one sender).
    let ours = |h: &&Home| !(args.ecg_hz.is_some() && h.ecg.is_some());
    // Alert readings come from patients kept for them (a routine reading in the same
    // three minutes would join the crisis's session and lower its mean, clinical rules
    // §1), each once.
    let alerts_due = (total as f64 * args.alerts).ceil() as usize;
    let mut alert_homes: Vec<Home> = homes
        .iter()
        .filter(ours)
        .filter(|h| h.cuff.is_some())
        .take(alerts_due)
        .cloned()
        .collect();
    let reserved: std::collections::HashSet<String> =
        alert_homes.iter().map(|h| h.gateway.clone()).collect();
    let vitals: Vec<&Home> = homes
        .iter()
        .filter(ours)
        .filter(|h| !h.vitals.is_empty() && !reserved.contains(&h.gateway))
        .collect();
    anyhow::ensure!(
        !vitals.is_empty(),
        "the fleet has no vitals devices left for routine readings: more --patients, fewer --alerts"
    );
    while n < total {
        tick.tick().await;
        let due = ((start.elapsed().as_secs_f64() * rate) as u64).min(total);
        while n < due {
            let home = vitals[home_at % vitals.len()];
            home_at += 1;
            let measured = now();
            let mut readings = Vec::with_capacity(args.batch);
            // (gateway, patient) of the alert readings among them.
            let mut alert_patients: Vec<(String, String)> = Vec::new();
            for _ in 0..args.batch.max(1) {
                if n >= total {
                    break;
                }
                let (dev, kind) = &home.vitals[(n as usize / vitals.len()) % home.vitals.len()];
                let at = measured - TimeDelta::milliseconds(1000 + readings.len() as i64);
                acc.0 += args.invalid;
                acc.1 += args.duplicates;
                acc.2 += args.alerts;
                let r = if acc.2 >= 1.0 {
                    acc.2 -= 1.0;
                    // A crisis from a patient of its own (one open episode each).
                    let who = alert_homes.pop();
                    match who {
                        Some(h) => {
                            let cuff = h.cuff.clone().unwrap_or_default();
                            alert_patients.push((h.gateway.clone(), h.patient.clone()));
                            published.alerts.fetch_add(1, Ordering::Relaxed);
                            // Sent in that patient's own envelope, below.
                            readings.push((h.gateway.clone(), format!(
                                r#"{{"device_id":"{cuff}","type":"bp","unit":"mm[Hg]","time":"{}","symptoms":["chest_tightness"],"values":{{"systolic":196,"diastolic":114,"pulse":90}}}}"#,
                                stamp(at))));
                            n += 1;
                            continue;
                        }
                        None => reading(dev, *kind, n, at),
                    }
                } else if acc.1 >= 1.0 && last.contains_key(dev) {
                    acc.1 -= 1.0;
                    published.duplicates.fetch_add(1, Ordering::Relaxed);
                    last.get(dev).cloned().unwrap_or_default()
                } else if acc.0 >= 1.0 && *kind == DeviceKind::BpCuff {
                    acc.0 -= 1.0;
                    published.invalid.fetch_add(1, Ordering::Relaxed);
                    format!(
                        r#"{{"device_id":"{dev}","type":"bp","unit":"mm[Hg]","time":"{}","values":{{"systolic":420,"diastolic":80}}}}"#,
                        stamp(at)
                    )
                } else {
                    let r = reading(dev, *kind, n, at);
                    // Kept only to send again when duplicates are asked for.
                    if args.duplicates > 0.0 {
                        last.insert(dev.clone(), r.clone());
                    }
                    r
                };
                readings.push((home.gateway.clone(), r));
                n += 1;
            }
            // One envelope per gateway among the readings (an alert reading goes in
            // its own patient's envelope).
            let mut by_gateway: Vec<(String, Vec<String>)> = Vec::new();
            for (gw, r) in readings {
                match by_gateway.iter_mut().find(|(g, _)| *g == gw) {
                    Some((_, rs)) => rs.push(r),
                    None => by_gateway.push((gw, vec![r])),
                }
            }
            for (gw, rs) in by_gateway {
                let s = seq.entry(gw.clone()).or_insert(0);
                *s += 1;
                let count = rs.len() as u64;
                let body = envelope(&gw, *s, &rs);
                if let Ok(mut sent) = published.alert_sent.lock() {
                    for (_, p) in alert_patients.iter().filter(|(g, _)| *g == gw) {
                        sent.insert(p.clone(), Instant::now());
                    }
                }
                client
                    .publish(
                        format!("vigil/v1/gw/{gw}/readings"),
                        QoS::AtLeastOnce,
                        false,
                        body,
                    )
                    .await?;
                published.envelopes.fetch_add(1, Ordering::Relaxed);
                published.readings.fetch_add(count, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

/// ECG streaming: every patch one strip a second for the duration.
async fn ecg_streamer(
    (host, port): (String, u16),
    homes: Vec<Home>,
    args: RunArgs,
    seconds: u64,
    published: Arc<Published>,
) -> anyhow::Result<()> {
    let Some(hz) = args.ecg_hz else { return Ok(()) };
    let patches: Vec<&Home> = homes.iter().filter(|h| h.ecg.is_some()).collect();
    let (client, events) = mqtt(
        &host,
        port,
        &format!("vigil-loadgen-ecg-{}", std::process::id()),
    );
    drive(events, published.clone());
    let mut seq: HashMap<String, u64> = HashMap::new();
    let start_at = now() - TimeDelta::seconds(2);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    for second in 0..seconds {
        tick.tick().await;
        let at = start_at + TimeDelta::seconds(second as i64);
        for h in &patches {
            let dev = h.ecg.as_deref().unwrap_or_default();
            let s = seq.entry(h.gateway.clone()).or_insert(0);
            *s += 1;
            let strip = ecg_strip(dev, hz, args.ecg_leads, second, at);
            let body = envelope(&h.gateway, *s, &[strip.to_string()]);
            client
                .publish(
                    format!("vigil/v1/gw/{}/readings", h.gateway),
                    QoS::AtLeastOnce,
                    false,
                    body,
                )
                .await?;
            published.envelopes.fetch_add(1, Ordering::Relaxed);
            published.readings.fetch_add(1, Ordering::Relaxed);
            published.ecg_samples.fetch_add(
                (hz.round() as u64) * args.ecg_leads.max(1) as u64,
                Ordering::Relaxed,
            );
        }
    }
    Ok(())
}

/// A Prometheus counter or gauge (summed over its labels), 0 when absent.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// `GET {base}/metrics` over a plain socket.
async fn scrape(base: &str) -> anyhow::Result<String> {
    get(base, "/metrics").await
}

/// The ingester's progress from `/readyz`: cheap counters, polled while the load
/// drains (`/metrics` counts the store, too costly to poll under load).
#[derive(Debug, Clone, Copy, Default)]
struct Intake {
    received: f64,
    stored: f64,
    pending: f64,
    /// Stored readings the rule engine has evaluated (when it runs).
    evaluated: Option<f64>,
}

async fn intake(base: &str) -> anyhow::Result<Intake> {
    let body: Value = serde_json::from_str(&get(base, "/readyz").await?)
        .context("the ingester's /readyz is not JSON")?;
    let n = |k: &str| body["intake"][k].as_f64().unwrap_or_default();
    Ok(Intake {
        received: n("readings_received"),
        stored: n("readings_stored"),
        pending: n("pending_publishes"),
        evaluated: body["intake"]["rules_evaluated"].as_f64(),
    })
}

/// `GET {base}{path}` over a plain socket: the body.
async fn get(base: &str, path: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base
        .strip_prefix("http://")
        .context("--metrics must be http://host:port")?
        .trim_end_matches('/');
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut out = String::new();
    s.read_to_string(&mut out).await?;
    Ok(out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned())
}

/// The resident memory of a process, kB (Linux).
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The CPU time a process has used, user and system, in seconds (Linux: fields 14
/// and 15 of `/proc/{pid}/stat`, in clock ticks of 1/100 s, the kernel's `USER_HZ`).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it do not.
    let mut after = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let utime: u64 = after.nth(11)?.parse().ok()?;
    let stime: u64 = after.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

/// `vigil loadgen run`.
pub fn run(args: RunArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    anyhow::ensure!(
        (1..=1000).contains(&args.batch),
        "--batch must be 1 to 1000"
    );
    anyhow::ensure!(
        (1..=MAX_CONNECTIONS).contains(&args.connections),
        "--connections must be 1 to {MAX_CONNECTIONS}"
    );
    for (name, v) in [
        ("--invalid", args.invalid),
        ("--duplicates", args.duplicates),
        ("--alerts", args.alerts),
    ] {
        anyhow::ensure!(
            (0.0..=1.0).contains(&v),
            "{name} must be a share from 0 to 1"
        );
    }
    anyhow::ensure!(
        args.baseline || args.metrics.is_some(),
        "say what to measure: --baseline (the broker alone) or --metrics http://HOST:PORT (a running vigil serve)"
    );
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run_async(args))
}

async fn run_async(args: RunArgs) -> anyhow::Result<()> {
    let (host, port) = broker(&args.broker)?;
    let fleet = fleet(&args.fleet)?;
    let homes = homes(&fleet);
    // The homes that publish vitals (with ECG streaming, a patch's home is the ECG
    // streamer's), dealt out over the connections: each connection has some.
    let publishing: Vec<&Home> = homes
        .iter()
        .filter(|h| {
            let streams_ecg = args.ecg_hz.is_some() && h.ecg.is_some();
            !h.vitals.is_empty() && !streams_ecg
        })
        .collect();
    anyhow::ensure!(
        args.connections <= publishing.len(),
        "--connections {} is more than the {} homes that publish vitals: a home's gateway \
         publishes on one connection; use more --patients or fewer --connections",
        args.connections,
        publishing.len()
    );
    let total = args
        .count
        .unwrap_or((args.rate * args.seconds).round() as u64)
        .max(1);
    let seconds = (total as f64 / args.rate).ceil().max(1.0) as u64;
    let published = Arc::new(Published::default());

    // What receives: the no-op subscriber (baseline), or the ingester's metrics and the
    // doctors' topics.
    let received = Arc::new(AtomicU64::new(0));
    let last_receipt = Arc::new(Mutex::new(None::<Instant>));
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::default();
    let (sub, mut sub_events) = mqtt(
        &host,
        port,
        &format!("vigil-loadgen-sub-{}", std::process::id()),
    );
    let topic = if args.baseline {
        "vigil/v1/gw/+/readings"
    } else {
        "vigil/v1/doctor/+/alerts"
    };
    sub.subscribe(topic, QoS::AtLeastOnce).await?;
    let (r, lr, lat, p) = (
        received.clone(),
        last_receipt.clone(),
        latencies.clone(),
        published.clone(),
    );
    let baseline = args.baseline;
    let (sub_ready_tx, sub_ready) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut ready = Some(sub_ready_tx);
        loop {
            match sub_events.poll().await {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(t) = ready.take() {
                        let _ = t.send(());
                    }
                }
                Ok(Event::Incoming(Packet::Publish(msg))) => {
                    if baseline {
                        r.fetch_add(1, Ordering::Relaxed);
                        if let Ok(mut l) = lr.lock() {
                            *l = Some(Instant::now());
                        }
                    } else if let Ok(alert) = vigil_wire::alert::decode_alert(&msg.payload)
                        && alert.event == vigil_wire::alert::AlertEventKind::Opened
                        && let Some(at) = p
                            .alert_sent
                            .lock()
                            .ok()
                            .and_then(|mut s| s.remove(alert.patient_id.as_str()))
                        && let Ok(mut l) = lat.lock()
                    {
                        l.push(at.elapsed().as_secs_f64() * 1e3);
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), sub_ready)
        .await
        .context("the broker did not confirm the subscription within 10 s")?
        .ok();
    let at_start = match &args.metrics {
        Some(m) => intake(m)
            .await
            .with_context(|| format!("reading {m}/readyz"))?,
        None => Intake::default(),
    };

    // Memory of the ingester: the peak (sampled every 200 ms), and every 10 s a
    // sample (seconds since the load began, MB) to show whether it grows.
    let peak_kb = Arc::new(AtomicU64::new(0));
    let rss_samples: Arc<Mutex<Vec<(u64, f64)>>> = Arc::default();
    if let Some(pid) = args.ingester_pid {
        let (pk, samples) = (peak_kb.clone(), rss_samples.clone());
        tokio::spawn(async move {
            let began = Instant::now();
            for tick in 0u64.. {
                if let Some(kb) = rss_kb(pid) {
                    pk.fetch_max(kb, Ordering::Relaxed);
                    if tick % 50 == 0
                        && let Ok(mut s) = samples.lock()
                    {
                        s.push((began.elapsed().as_secs(), kb as f64 / 1024.0));
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
    }

    let cpu_at_start = args.ingester_pid.and_then(cpu_seconds);
    let start = Instant::now();
    let mut tasks = Vec::new();
    let per = total / args.connections as u64;
    for i in 0..args.connections {
        let share: Vec<Home> = publishing
            .iter()
            .enumerate()
            .filter(|(k, _)| k % args.connections == i)
            .map(|(_, h)| (*h).clone())
            .collect();
        let n = if i == 0 {
            total - per * (args.connections as u64 - 1)
        } else {
            per
        };
        tasks.push(tokio::spawn(publisher(
            (host.clone(), port),
            i,
            share,
            args.clone(),
            n,
            published.clone(),
        )));
    }
    if args.ecg_hz.is_some() {
        tasks.push(tokio::spawn(ecg_streamer(
            (host.clone(), port),
            homes.clone(),
            args.clone(),
            seconds,
            published.clone(),
        )));
    }
    // Progress while publishing.
    let progress = {
        let p = published.clone();
        let r = received.clone();
        let metrics = args.metrics.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let done = match &metrics {
                    Some(m) => intake(m)
                        .await
                        .map(|i| i.received - at_start.received)
                        .unwrap_or(0.0) as u64,
                    None => r.load(Ordering::Relaxed),
                };
                eprintln!(
                    "loadgen: {:>6.1} s  published {} readings in {} envelopes, {} {}",
                    start.elapsed().as_secs_f64(),
                    p.readings.load(Ordering::Relaxed),
                    p.envelopes.load(Ordering::Relaxed),
                    done,
                    if metrics.is_some() {
                        "readings taken by the ingester"
                    } else {
                        "envelopes received by the subscriber"
                    }
                );
            }
        })
    };
    for t in tasks {
        t.await??;
    }
    let publish_secs = start.elapsed().as_secs_f64();
    let envelopes = published.envelopes.load(Ordering::Relaxed);
    let readings = published.readings.load(Ordering::Relaxed);

    // Wait for the far end.
    let deadline = Instant::now() + Duration::from_secs_f64(args.drain_timeout);
    let mut end_metrics = String::new();
    let finished_at = loop {
        if args.baseline {
            if received.load(Ordering::Relaxed) >= envelopes {
                break last_receipt
                    .lock()
                    .ok()
                    .and_then(|l| *l)
                    .unwrap_or_else(Instant::now);
            }
        } else if let Some(m) = &args.metrics {
            // Every reading taken and committed, and every stored one evaluated by
            // the rule engine: the figure is for the whole path, rules included.
            let now = intake(m).await?;
            let evaluated = match (now.evaluated, at_start.evaluated) {
                (Some(n), Some(s)) => n - s >= now.stored - at_start.stored,
                _ => true,
            };
            if now.received - at_start.received >= readings as f64
                && now.pending == 0.0
                && evaluated
            {
                break Instant::now();
            }
        }
        if Instant::now() > deadline {
            progress.abort();
            anyhow::bail!(
                "the far end did not take every reading within {} s of the end of publishing (published {readings} readings in {envelopes} envelopes)",
                args.drain_timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(if args.baseline { 5 } else { 20 })).await;
    };
    // Alerts still to arrive get a moment (they follow the commit).
    let alerts_sent = published.alerts.load(Ordering::Relaxed);
    if !args.baseline && alerts_sent > 0 {
        let until = Instant::now() + Duration::from_secs(30);
        while latencies
            .lock()
            .map(|l| (l.len() as u64) < alerts_sent)
            .unwrap_or(false)
            && Instant::now() < until
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    progress.abort();
    if let Some(m) = &args.metrics {
        end_metrics = scrape(m).await?;
    }
    let elapsed = finished_at.duration_since(start).as_secs_f64();
    // The ingester's CPU over the run (from the first publish to its last commit, and
    // the scrape just after), and per reading it stored.
    let ingester_cpu = args
        .ingester_pid
        .and_then(cpu_seconds)
        .zip(cpu_at_start)
        .map(|(end, begin)| end - begin);
    let stored = metric(&end_metrics, "vigil_readings_stored_total");
    let mut lat = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    lat.sort_by(f64::total_cmp);
    let ecg = published.ecg_samples.load(Ordering::Relaxed);
    let summary = json!({
        "mode": if args.baseline { "baseline" } else { "ingester" },
        "patients": args.fleet.patients,
        "batch": args.batch,
        "target_rate": args.rate,
        "published": {"envelopes": envelopes, "readings": readings,
                      "invalid": published.invalid.load(Ordering::Relaxed),
                      "duplicates": published.duplicates.load(Ordering::Relaxed),
                      "alerts": alerts_sent, "ecg_samples": ecg,
                      "seconds": publish_secs, "acked": published.acked.load(Ordering::Relaxed)},
        "seconds": elapsed,
        "messages_per_second": envelopes as f64 / elapsed,
        "readings_per_second": readings as f64 / elapsed,
        "ecg_samples_per_second": ecg as f64 / elapsed,
        "ingester": (!args.baseline).then(|| json!({
            "stored": stored,
            "cpu_seconds": ingester_cpu,
            "cpu_us_per_reading": ingester_cpu.filter(|_| stored > 0.0).map(|c| c * 1e6 / stored),
            "quarantined": metric(&end_metrics, "vigil_readings_quarantined_total"),
            "duplicates": metric(&end_metrics, "vigil_readings_duplicate_total"),
            "rules_evaluated": metric(&end_metrics, "vigil_rule_readings_evaluated_total"),
            "alerts_opened": metric(&end_metrics, "vigil_alerts_opened_total"),
            "peak_rss_mb": args.ingester_pid.map(|_| peak_kb.load(Ordering::Relaxed) as f64 / 1024.0),
            "rss_mb_every_10s": rss_samples.lock().map(|s| s.clone()).unwrap_or_default(),
        })),
        "alert_latency_ms": (!args.baseline).then(|| json!({
            "received": lat.len(), "sent": alerts_sent,
            "p50": percentile(&lat, 0.50), "p95": percentile(&lat, 0.95), "p99": percentile(&lat, 0.99),
            "max": lat.last(),
        })),
    });
    if args.json {
        println!("{summary}");
    } else {
        println!(
            "{}: {readings} readings in {envelopes} envelopes in {elapsed:.2} s: {:.0} readings/s, {:.0} messages/s{}",
            if args.baseline {
                "baseline (broker → no-op subscriber)"
            } else {
                "vigil serve (publish → committed)"
            },
            readings as f64 / elapsed,
            envelopes as f64 / elapsed,
            if ecg > 0 {
                format!(", {:.0} ECG samples/s", ecg as f64 / elapsed)
            } else {
                String::new()
            },
        );
        if !args.baseline && alerts_sent > 0 {
            let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.1} ms"));
            println!(
                "alerts: {}/{alerts_sent} reached a doctor; publish-to-doctor p50 {} p95 {} p99 {}",
                lat.len(),
                ms(percentile(&lat, 0.5)),
                ms(percentile(&lat, 0.95)),
                ms(percentile(&lat, 0.99))
            );
        }
    }
    Ok(())
}
