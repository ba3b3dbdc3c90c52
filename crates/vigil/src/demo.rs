//! `vigil demo`: the whole platform on embedded defaults, fed by a simulated fleet.
//!
//! One process runs the embedded MQTT broker, the ingester with its clinical store in
//! the demo's data directory, the HTTP surface, and a fleet of simulated home gateways
//! (`vigil-sim`) publishing over real MQTT. One accelerated clock drives the fleet,
//! the ingester's `received` stamps and validation, so simulated readings are never
//! mistaken for readings from the future.
//!
//! A second run on the same directory resumes: each gateway continues its `batch_seq`
//! after the last committed one, and simulated time continues after the last receipt.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, SubsecRound, TimeDelta, Utc};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use vigil_ingest::deliver::{Deliverer, DeliveryConfig};
use vigil_ingest::feed::RuleFeed;
use vigil_ingest::intake::{Intake, IntakeConfig, IntakeStats};
use vigil_ingest::rules::{RuleRunner, RuleStats};
use vigil_model::clock::{AcceleratedClock, Clock, SystemClock};
use vigil_registry::Registry;
use vigil_sim::fleet::china;
use vigil_sim::{Expect, Fleet, FleetConfig};
use vigil_store::SqliteStore;

/// The demo's settings (command-line flags).
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Where the clinical store and the generated registry live; a second run resumes.
    #[arg(long, value_name = "DIR", default_value = "./vigil-demo-data")]
    pub data_dir: PathBuf,
    /// Simulated patients, one home gateway each (1 to 10000).
    #[arg(long, default_value_t = 48, value_parser = clap::value_parser!(u16).range(1..=10_000))]
    pub patients: u16,
    /// How much faster than real time the simulated clock runs (360: a real minute is
    /// six simulated hours).
    #[arg(long, default_value_t = 360.0, value_parser = parse_speed)]
    pub speed: f64,
    /// Seed of the simulation: the same seed gives the same patients and readings.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
    /// HTTP address; when its port is taken, a free one is used and printed.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// The embedded MQTT broker's address; when its port is taken (a Mosquitto may
    /// already listen on 1883), a free one is used and printed.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:1883")]
    pub broker: SocketAddr,
    /// Stop by itself after this many real seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<u64>,
    /// Seconds between two lines of counts.
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    pub status_every: u64,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && (1.0..=100_000.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "{s:?} is not a speed from 1 (real time) to 100000; e.g. 360 makes a real minute six simulated hours"
        )),
    }
}

/// Runs the demo until Ctrl-C, SIGTERM or `--duration`.
pub fn run(args: DemoArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(demo(args))
}

/// What the fleet has published, by what the platform should make of it.
#[derive(Debug, Default)]
struct Published {
    readings: AtomicU64,
    envelopes_acked: AtomicU64,
    envelopes: AtomicU64,
    expected: std::sync::Mutex<BTreeMap<Expect, u64>>,
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir).with_context(|| {
        format!(
            "creating the demo's data directory {}",
            args.data_dir.display()
        )
    })?;
    let db = args.data_dir.join("clinical.db");
    let store = SqliteStore::open(&db).await?;

    // Resume after an earlier run: new envelope numbers, and time after its last receipt.
    let marks = store.envelope_marks().await?;
    let wall = SystemClock.now().trunc_subsecs(0);
    let start = match marks.last_received {
        Some(last) if last >= wall => last.trunc_subsecs(0) + TimeDelta::seconds(1),
        _ => wall,
    };
    let mut fleet = Fleet::new(FleetConfig {
        patients: usize::from(args.patients),
        seed: args.seed,
        ..FleetConfig::demo(start)
    });
    fleet.resume_batch_seqs(
        marks
            .last_batch_seq
            .iter()
            .map(|(gw, seq)| (gw.as_str(), *seq)),
    );
    let registry_text = fleet.registry_toml();
    let registry_path = args.data_dir.join("registry.toml");
    std::fs::write(&registry_path, &registry_text)
        .with_context(|| format!("writing {}", registry_path.display()))?;
    let registry = Registry::parse(&registry_text)
        .map_err(|e| anyhow::anyhow!("the generated registry does not load (a bug): {e}"))?;
    let clock = Arc::new(AcceleratedClock::new(start, args.speed));

    // The broker and the HTTP listener, on free ports when the asked ones are taken.
    let (broker_addr, broker_note) = start_broker(args.broker)?;
    let (listener, http_note) = bind_http(args.http).await?;
    let http_addr = listener.local_addr().context("reading the HTTP address")?;

    let mut intake_config = IntakeConfig::new(broker_addr.ip().to_string(), broker_addr.port());
    intake_config.client_id = "vigil-demo-ingester".to_owned();
    let feed = Arc::new(RuleFeed::new(vigil_ingest::feed::CAPACITY));
    intake_config.rule_feed = Some(feed.clone());
    let (institutions, doctors, patients, devices) = (
        registry.institutions.len(),
        registry.doctors.len(),
        registry.patients.len(),
        registry.devices.len(),
    );
    let intake = Intake::start(
        intake_config,
        store.clone(),
        Arc::new(registry),
        clock.clone(),
    );
    let stats = intake.stats.clone();
    let rules = RuleRunner::start_fed(
        store.clone(),
        intake.current_registry(),
        Arc::new(vigil_rules::ruleset::RuleSet::default()),
        clock.clone(),
        (None, Some(feed)),
    );
    let rule_stats = rules.stats.clone();
    let deliverer = Deliverer::start(
        DeliveryConfig::new(
            broker_addr.ip().to_string(),
            broker_addr.port(),
            "vigil-demo-delivery",
        ),
        store.clone(),
        intake.current_registry(),
        clock.clone(),
        Some(rules.kept.clone()),
    );
    wait_for(
        "the ingester's subscription",
        Duration::from_secs(10),
        || stats.subscriptions_acked.load(Ordering::Relaxed) > 0,
    )
    .await?;
    let app = vigil_api::app(vigil_api::AppState {
        store: store.clone(),
        stats: stats.clone(),
        sink: None,
        rules: Some(rule_stats.clone()),
        delivery: Some(deliverer.stats.clone()),
        // The simulated doctors have no webhooks.
        webhooks: None,
        // The simulated gateways lose no batches: no gap detector runs.
        gaps: None,
        registry: Some(intake.current_registry()),
        clock: clock.clone(),
        institutions: Some(intake.institution_lookup()),
        // The demo's API is open (on loopback), its requests recorded all the same.
        auth: false,
        // The demo builds its own registry: nothing to change through the API.
        registry_file: None,
    });
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = http_stopped.await;
        })
        .await
    });

    // First what a person or a client needs: the addresses.
    let http_base = format!("http://{http_addr}");
    let mqtt_url = format!("mqtt://{broker_addr}");
    println!(
        "Vigil demo: {patients} simulated patients at home, their readings stored and checked as they arrive."
    );
    println!();
    println!("  HTTP  {http_base}");
    println!("  MQTT  {mqtt_url}  (the demo broker needs no credentials)");
    for note in [broker_note, http_note].into_iter().flatten() {
        println!("  note: {note}");
    }
    println!();
    println!("What runs where:");
    println!(
        "  broker    embedded MQTT broker (rumqttd) on {broker_addr}; sessions live in this process only"
    );
    println!(
        "  ingester  subscribed to vigil/v1/gw/+/readings: validate, attribute, store, then acknowledge"
    );
    println!("  store     {} (SQLite)", db.display());
    println!(
        "  registry  {} ({institutions} institutions, {doctors} doctors, {patients} patients, {devices} devices)",
        registry_path.display()
    );
    println!(
        "  fleet     {patients} home gateways publishing over MQTT; simulated time starts {} and runs {}x (a real minute is {})",
        start.with_timezone(&china()).format("%Y-%m-%d %H:%M %:z"),
        args.speed,
        simulated_minute(args.speed)
    );
    println!(
        "  ecg       patches stream a real recording: {}",
        vigil_sim::ecg::ATTRIBUTION
    );
    println!();
    println!("Look at:");
    // The dashboard, as the responsible doctor of the first patient.
    let doctor = intake.current_registry()()
        .patients
        .values()
        .next()
        .map_or_else(
            || "d-0001".to_owned(),
            |p| p.care_team.responsible.to_string(),
        );
    println!(
        "  {http_base}/                                 the doctors' dashboard (sign-in is off in the demo: view as {doctor})"
    );
    println!(
        "  {http_base}/metrics                          counts: received, stored by type, quarantined by reason, duplicates"
    );
    println!(
        "  {http_base}/api/v1/patients/p-0001/readings  one patient's readings, canonical and as measured"
    );
    println!(
        "  {http_base}/api/v1/quarantine                readings kept aside, each with its reason and what to do"
    );
    println!(
        "  mosquitto_sub -h {} -p {} -t 'vigil/v1/#' -v    the raw stream, with any MQTT client",
        broker_addr.ip(),
        broker_addr.port()
    );
    println!("  {http_base}/api/v1/alert-events               the alerts the rule engine raised");
    println!(
        "  mosquitto_sub -h {} -p {} -t 'vigil/v1/doctor/+/alerts' -v   the alerts as each doctor's client receives them",
        broker_addr.ip(),
        broker_addr.port()
    );
    println!("Ctrl-C stops the demo cleanly.");
    println!();

    // The fleet.
    let published = Arc::new(Published::default());
    let (stop_fleet, fleet_stopped) = tokio::sync::watch::channel(false);
    let fleet_task = tokio::spawn(run_fleet(
        fleet,
        broker_addr,
        clock.clone(),
        published.clone(),
        fleet_stopped,
    ));

    // Live counts until told to stop.
    let deadline = args
        .duration
        .map(|s| Instant::now() + Duration::from_secs(s));
    let mut ticker = tokio::time::interval(Duration::from_secs(args.status_every.max(1)));
    ticker.tick().await;
    let stop = crate::serve::shutdown_signal();
    tokio::pin!(stop);
    loop {
        let until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = ticker.tick() => println!("{}", status_line(clock.now(), &published, &stats, &rule_stats)),
            _ = &mut stop => break,
            _ = until_deadline => break,
        }
    }

    // Ordered: the fleet stops and its publishes are acknowledged by the broker; the
    // ingester commits and acknowledges all of them; then the ingester, HTTP, store.
    println!("stopping: the fleet stops publishing; the ingester commits what is in flight");
    let _ = stop_fleet.send(true);
    let _ = fleet_task.await;
    let readings = published.readings.load(Ordering::Relaxed);
    let drained = wait_for(
        "the ingester to commit every published reading",
        Duration::from_secs(30),
        || accounted(&stats) >= readings,
    )
    .await;
    intake.shutdown().await;
    // The rule engine evaluates what was committed before it stops.
    let last = store.last_reading_id().await.unwrap_or(0);
    let evaluated = wait_for(
        "the rule engine to evaluate every committed reading",
        Duration::from_secs(30),
        || rule_stats.cursor.load(Ordering::Relaxed) >= last,
    )
    .await;
    rules.shutdown().await;
    deliverer.shutdown().await;
    let _ = stop_http.send(());
    let _ = http.await;
    store.close().await;
    println!(
        "{}",
        status_line(clock.now(), &published, &stats, &rule_stats)
    );
    let expected = published
        .expected
        .lock()
        .map(|e| e.clone())
        .unwrap_or_default();
    let want = |f: fn(&Expect) -> bool| -> u64 {
        expected.iter().filter(|(e, _)| f(e)).map(|(_, n)| n).sum()
    };
    let (stored, quarantined, duplicates) = (
        stats.readings_stored.load(Ordering::Relaxed),
        stats.readings_quarantined.load(Ordering::Relaxed),
        stats.readings_duplicate.load(Ordering::Relaxed),
    );
    println!(
        "accounting: published {readings} = stored {stored} + quarantined {quarantined} + duplicates {duplicates}: {}",
        if stored + quarantined + duplicates == readings {
            "every reading accounted for"
        } else {
            "NOT every reading was committed before the demo stopped"
        }
    );
    let expected = (
        want(|e| *e == Expect::Stored),
        want(|e| matches!(e, Expect::Quarantined(_))),
        want(|e| *e == Expect::Duplicate),
    );
    println!(
        "expected by the simulator: stored {}, quarantined {}, duplicates {}: {}",
        expected.0,
        expected.1,
        expected.2,
        if expected == (stored, quarantined, duplicates) {
            "the same"
        } else {
            "DIFFERENT (a bug: please report it)"
        }
    );
    println!(
        "The store stays in {}: run the demo again to continue, or `vigil serve --data-dir {} --registry {}`.",
        args.data_dir.display(),
        args.data_dir.display(),
        registry_path.display()
    );
    drained.and(evaluated)
}

/// Readings the ingester has finished with.
fn accounted(stats: &IntakeStats) -> u64 {
    stats.readings_stored.load(Ordering::Relaxed)
        + stats.readings_quarantined.load(Ordering::Relaxed)
        + stats.readings_duplicate.load(Ordering::Relaxed)
}

fn status_line(
    now: DateTime<Utc>,
    published: &Published,
    stats: &IntakeStats,
    rules: &RuleStats,
) -> String {
    format!(
        "[sim {}] published {} readings in {} envelopes ({} acked by the broker) | stored {} | quarantined {} | duplicates {} | publishes awaiting commit {} | alerts opened {}",
        now.with_timezone(&china()).format("%m-%d %H:%M"),
        published.readings.load(Ordering::Relaxed),
        published.envelopes.load(Ordering::Relaxed),
        published.envelopes_acked.load(Ordering::Relaxed),
        stats.readings_stored.load(Ordering::Relaxed),
        stats.readings_quarantined.load(Ordering::Relaxed),
        stats.readings_duplicate.load(Ordering::Relaxed),
        stats.pending.load(Ordering::Relaxed),
        rules.alerts_opened.load(Ordering::Relaxed),
    )
}

fn simulated_minute(speed: f64) -> String {
    let minutes = speed;
    if minutes >= 120.0 {
        format!("{:.1} simulated hours", minutes / 60.0)
    } else {
        format!("{minutes:.0} simulated minutes")
    }
}

/// Publishes the fleet's envelopes as simulated time passes, until stopped; then waits
/// (briefly) for the broker to acknowledge what it sent.
async fn run_fleet(
    mut fleet: Fleet,
    broker: SocketAddr,
    clock: Arc<AcceleratedClock>,
    published: Arc<Published>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let mut options = MqttOptions::new("vigil-demo-fleet", broker.ip().to_string(), broker.port());
    options.set_keep_alive(Duration::from_secs(30));
    // An envelope with ECG strips is larger than rumqttc's 10 KiB default.
    options.set_max_packet_size(16 * 1024 * 1024 + 1024, 16 * 1024 * 1024 + 1024);
    let (client, mut eventloop) = AsyncClient::new(options, 1024);
    let acks = published.clone();
    let poller = tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    acks.envelopes_acked.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => break,
        }
        for p in fleet.advance(clock.now()) {
            if let Some(what) = p.incident {
                println!(
                    "[sim {}] {} ({}): {what}",
                    p.envelope.sent_at.format("%m-%d %H:%M"),
                    p.envelope.gateway_id,
                    fleet
                        .patients()
                        .iter()
                        .find(|x| x.gateway == p.envelope.gateway_id)
                        .map_or("?", |x| x.id.as_str())
                );
            }
            if client
                .publish(p.topic(), QoS::AtLeastOnce, false, p.payload())
                .await
                .is_err()
            {
                break;
            }
            published.envelopes.fetch_add(1, Ordering::Relaxed);
            published
                .readings
                .fetch_add(p.expect.len() as u64, Ordering::Relaxed);
            if let Ok(mut expected) = published.expected.lock() {
                for e in &p.expect {
                    *expected.entry(*e).or_insert(0) += 1;
                }
            }
        }
    }
    let _ = wait_for(
        "the broker to acknowledge the fleet's publishes",
        Duration::from_secs(10),
        || {
            published.envelopes_acked.load(Ordering::Relaxed)
                >= published.envelopes.load(Ordering::Relaxed)
        },
    )
    .await;
    let _ = client.disconnect().await;
    poller.abort();
}

async fn wait_for(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !done() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// Starts the embedded broker on `preferred`, or on a free port when that one cannot
/// be had; the note says so.
#[cfg(feature = "embedded-broker")]
fn start_broker(preferred: SocketAddr) -> anyhow::Result<(SocketAddr, Option<String>)> {
    match crate::broker::start(preferred) {
        Ok(addr) => Ok((addr, None)),
        Err(e) if preferred.port() != 0 => {
            let addr = crate::broker::start(SocketAddr::new(preferred.ip(), 0))?;
            Ok((
                addr,
                Some(format!(
                    "MQTT port {} is taken ({:#}; another broker, such as a Mosquitto, may listen there): the demo broker listens on {addr} instead",
                    preferred.port(),
                    e.root_cause()
                )),
            ))
        }
        Err(e) => Err(e),
    }
}

#[cfg(not(feature = "embedded-broker"))]
fn start_broker(_: SocketAddr) -> anyhow::Result<(SocketAddr, Option<String>)> {
    anyhow::bail!(
        "this vigil was built without the embedded-broker feature, which the demo needs: build with default features"
    )
}

/// Binds the HTTP listener on `preferred`, or on a free port when that one is taken.
async fn bind_http(
    preferred: SocketAddr,
) -> anyhow::Result<(tokio::net::TcpListener, Option<String>)> {
    match tokio::net::TcpListener::bind(preferred).await {
        Ok(l) => Ok((l, None)),
        Err(e) if preferred.port() != 0 => {
            let l = tokio::net::TcpListener::bind(SocketAddr::new(preferred.ip(), 0))
                .await
                .with_context(|| format!("cannot listen for HTTP on {}", preferred.ip()))?;
            let addr = l.local_addr().context("reading the HTTP address")?;
            Ok((
                l,
                Some(format!(
                    "HTTP port {} is taken ({e}): the demo serves HTTP on {addr} instead",
                    preferred.port()
                )),
            ))
        }
        Err(e) => Err(e).with_context(|| format!("cannot listen for HTTP on {preferred}")),
    }
}
