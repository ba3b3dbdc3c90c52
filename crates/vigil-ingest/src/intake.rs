//! MQTT intake: subscribe to the readings topics, commit, then acknowledge.
//!
//! - **Persistent session, stable client id, QoS 1, manual acks**: the broker keeps
//!   what the ingester has not acknowledged, across disconnects and ingester restarts.
//! - **Ack after durability**: a publish is acknowledged only after every reading in it
//!   is committed (stored, quarantined or counted duplicate), and acknowledgements go
//!   out in receive order.
//! - **Group commit**: publishes that are already waiting are committed together, up to
//!   `max_batch`, in one transaction.
//! - **Backpressure**: at `max_pending` publishes held (received, not yet
//!   acknowledged) the intake stops reading from the broker until commits catch up, so
//!   a slow store slows delivery and the broker keeps the backlog (TCP flow control
//!   stops the broker's writes once the socket buffers are full). Acknowledgements are
//!   written straight to the connection, without a read: rumqttc writes its own queued
//!   requests only while it is polled, and polling also reads, so acks through
//!   `AsyncClient::ack` would let the broker push past the window (measured with
//!   Mosquitto 2.0.11: 376 of 400 publishes held with a window of 8). The broker must
//!   size `max_queued_messages` for that backlog (wire guarantee 5).
//! - **Store failures** are retried with backoff while the acks are withheld; nothing
//!   is dropped.
//! - **Reconnect** with capped exponential backoff; subscriptions are renewed on every
//!   connection.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, PubAck, Publish, QoS};
use tokio::sync::{Notify, mpsc, watch};
use vigil_model::clock::Clock;
use vigil_registry::Registry;
use vigil_store::{ClinicalStore, EnvelopeCommit};
use vigil_wire::Topic;

use crate::feed::RuleFeed;
use crate::pipeline::{check_weight_changes, prepare};

/// The largest MQTT packet the intake reads: the largest envelope the codec accepts
/// plus room for the topic and header.
pub const MAX_PACKET: usize = 16 * 1024 * 1024 + 64 * 1024;

/// A patient's institution by the registry in use ([`Intake::institution_lookup`]).
pub type InstitutionLookup = Arc<dyn Fn(&vigil_model::PatientId) -> Option<String> + Send + Sync>;

/// Where and how to subscribe.
#[derive(Debug, Clone)]
pub struct IntakeConfig {
    pub host: String,
    pub port: u16,
    /// Stable across restarts: the broker keeps the persistent session by this id.
    pub client_id: String,
    /// `vigil/v1/gw/+/readings`, or `$share/{group}/vigil/v1/gw/+/readings` to split
    /// one stream over several ingesters.
    pub subscription: String,
    /// Most publishes committed in one transaction.
    pub max_batch: usize,
    /// Publishes held (received, not yet acknowledged) at which the intake stops
    /// reading from the broker until commits catch up. At least `max_batch`.
    ///
    /// What the ingester holds is bounded by this many publishes, plus what the MQTT
    /// client has decoded but not yet handed over (at most 10 packets) and its read
    /// buffer; the rest of a backlog stays at the broker.
    pub max_pending: usize,
    pub keep_alive: Duration,
    /// TLS (`mqtts://`): the broker's certificate is checked against `ca_pem`, and
    /// the host must match it. `None`: plain TCP.
    pub tls: Option<Tls>,
    /// Notified after every commit (the rule runner and the telemetry sink wait on
    /// them).
    pub on_commit: Vec<Arc<Notify>>,
    /// Where each commit's stored readings go for the rule runner, in memory
    /// ([`crate::feed`]); without it the runner reads them back from the store.
    pub rule_feed: Option<Arc<RuleFeed>>,
}

/// TLS settings of the broker connection, as PEM text.
#[derive(Clone)]
pub struct Tls {
    /// The certificate(s) of the authority that signed the broker's certificate.
    pub ca_pem: Vec<u8>,
    /// Mutual TLS: this client's certificate chain and private key.
    pub client_auth: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for Tls {
    /// Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("ca_pem_bytes", &self.ca_pem.len())
            .field("client_auth", &self.client_auth.is_some())
            .finish()
    }
}

impl IntakeConfig {
    /// Defaults for a broker at `host:port`.
    pub fn new(host: impl Into<String>, port: u16) -> IntakeConfig {
        IntakeConfig {
            host: host.into(),
            port,
            client_id: "vigil-ingester".to_owned(),
            subscription: vigil_wire::topic::ALL_READINGS.to_owned(),
            max_batch: 256,
            max_pending: 1024,
            keep_alive: Duration::from_secs(30),
            tls: None,
            on_commit: Vec::new(),
            rule_feed: None,
        }
    }
}

/// Counters of the intake, readable while it runs.
#[derive(Debug, Default)]
pub struct IntakeStats {
    pub publishes_acked: AtomicU64,
    pub readings_received: AtomicU64,
    pub readings_stored: AtomicU64,
    pub readings_quarantined: AtomicU64,
    pub readings_duplicate: AtomicU64,
    /// Readings of envelopes delivered again after their commit (already accounted).
    pub readings_redelivered: AtomicU64,
    pub payloads_rejected: AtomicU64,
    pub commits: AtomicU64,
    pub store_errors: AtomicU64,
    pub connection_errors: AtomicU64,
    /// Subscriptions the broker confirmed (one per connection).
    pub subscriptions_acked: AtomicU64,
    /// Publishes received and not yet acknowledged, now and at most so far: never more
    /// than `max_pending`, whatever the backlog at the broker.
    pub pending: AtomicU64,
    pub pending_max: AtomicU64,
    /// Acknowledgements the worker queued after a commit, and those written to the
    /// broker (an ack whose connection dropped is not written: the broker redelivers
    /// the publish and the store recognises it).
    pub acks_queued: AtomicU64,
    pub acks_flushed: AtomicU64,
    /// Time from taking a group of publishes to its commit returning.
    pub commit_latency: Histogram,
}

/// Upper bounds (seconds) of the commit-latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 10] =
    [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

/// A fixed-bucket latency histogram (Prometheus semantics: cumulative on export).
#[derive(Debug)]
pub struct Histogram {
    /// Upper bounds (seconds) of the buckets.
    pub bounds: &'static [f64; 10],
    /// Observations per bucket of `bounds`, plus one for larger values.
    pub buckets: [AtomicU64; 11],
    pub sum_micros: AtomicU64,
    pub count: AtomicU64,
}

impl Default for Histogram {
    /// Buckets of [`LATENCY_BUCKETS`].
    fn default() -> Histogram {
        Histogram::with_bounds(&LATENCY_BUCKETS)
    }
}

impl Histogram {
    pub fn with_bounds(bounds: &'static [f64; 10]) -> Histogram {
        Histogram {
            bounds,
            buckets: Default::default(),
            sum_micros: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        let i = self
            .bounds
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(self.bounds.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Prometheus text exposition of the histogram as `name`.
    pub fn write_prometheus(&self, out: &mut String, name: &str, help: &str) {
        use std::fmt::Write as _;
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (i, bound) in self.bounds.iter().enumerate() {
            cumulative += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        cumulative += self.buckets[self.bounds.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cumulative}");
        // The count is the buckets' total, so `+Inf` and `_count` always agree.
        let _ = writeln!(
            out,
            "{name}_sum {}\n{name}_count {cumulative}",
            self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        );
    }
}

/// A running intake; stop it with [`Intake::shutdown`].
#[derive(Debug)]
pub struct Intake {
    pub stats: Arc<IntakeStats>,
    /// The registry and its generation, read by the worker at each batch.
    registry: Arc<watch::Sender<(u64, Arc<Registry>)>>,
    /// The generation the worker has switched to.
    in_use: watch::Receiver<u64>,
    stop_worker: watch::Sender<bool>,
    stop_poller: watch::Sender<bool>,
    worker: tokio::task::JoinHandle<()>,
    poller: tokio::task::JoinHandle<()>,
}

impl Intake {
    /// Connects and starts consuming. Returns at once; work happens on tasks.
    pub fn start<S: ClinicalStore>(
        config: IntakeConfig,
        store: S,
        registry: Arc<Registry>,
        clock: Arc<dyn Clock>,
    ) -> Intake {
        let mut options = MqttOptions::new(&config.client_id, &config.host, config.port);
        options.set_keep_alive(config.keep_alive);
        options.set_clean_session(false);
        options.set_manual_acks(true);
        // An envelope may be 16 MiB (vigil-wire's limit) plus the topic; rumqttc's
        // default of 10 KiB would refuse an ECG envelope, and a publish the client
        // refuses is redelivered for ever, stalling the intake. Larger ones the broker
        // must refuse (`max_packet_size`, docs/architecture.md).
        options.set_max_packet_size(MAX_PACKET, 64 * 1024);
        if let Some(tls) = config.tls {
            install_crypto_provider();
            options.set_transport(rumqttc::Transport::tls_with_config(
                rumqttc::TlsConfiguration::Simple {
                    ca: tls.ca_pem,
                    alpn: None,
                    client_auth: tls.client_auth,
                },
            ));
        }
        let max_batch = config.max_batch.max(1);
        let max_pending = config.max_pending.max(max_batch);
        let (client, eventloop) = AsyncClient::new(options, 16);
        let stats = Arc::new(IntakeStats::default());
        let (stop_worker, worker_stopped) = watch::channel(false);
        let (stop_poller, poller_stopped) = watch::channel(false);
        // Neither channel needs a bound of its own: the poller stops reading at
        // `max_pending`, so at most that many publishes (and their acks) are in them.
        let (tx, rx) = mpsc::unbounded_channel();
        let (acks_tx, acks_rx) = mpsc::unbounded_channel();
        let (registry, registry_rx) = watch::channel((0, registry));
        let registry = Arc::new(registry);
        let (in_use_tx, in_use) = watch::channel(0);
        let poller = tokio::spawn(poll(
            eventloop,
            client,
            config.subscription.clone(),
            tx,
            acks_rx,
            max_pending as u64,
            stats.clone(),
            poller_stopped,
        ));
        let worker = tokio::spawn(work(
            rx,
            acks_tx,
            (config.on_commit, config.rule_feed),
            store,
            Registries {
                current: registry_rx,
                in_use: in_use_tx,
            },
            clock,
            max_batch,
            stats.clone(),
            worker_stopped,
        ));
        Intake {
            stats,
            registry,
            in_use,
            stop_worker,
            stop_poller,
            worker,
            poller,
        }
    }

    /// The institution of a patient by the latest registry given to the intake (for
    /// the telemetry sink's `institution` tag).
    pub fn institution_lookup(&self) -> InstitutionLookup {
        let current = self.registry.subscribe();
        Arc::new(move |p| {
            current
                .borrow()
                .1
                .patients
                .get(p)
                .map(|p| p.institution.to_string())
        })
    }

    /// The latest registry given to the intake, as a function the rule runner calls.
    pub fn current_registry(&self) -> crate::rules::CurrentRegistry {
        let current = self.registry.subscribe();
        Arc::new(move || current.borrow().1.clone())
    }

    /// Switches to another registry and returns once no publish is processed with the
    /// previous one any more (the batch under way, if any, is committed first). After
    /// that, readings quarantined as `unassigned_device` can be re-processed without
    /// missing one that was being attributed meanwhile.
    pub async fn set_registry(&self, registry: Arc<Registry>) {
        self.registry_switch().set(registry).await;
    }

    /// A handle that switches the intake's registry ([`Intake::set_registry`]) from
    /// elsewhere (the API's registry writes).
    pub fn registry_switch(&self) -> RegistrySwitch {
        RegistrySwitch {
            registry: self.registry.clone(),
            in_use: self.in_use.clone(),
            standalone: None,
        }
    }

    /// Ordered shutdown: stop taking publishes, finish committing and acknowledging
    /// what was taken, then write the last acknowledgements and disconnect. Publishes
    /// received but not taken stay unacknowledged: the broker redelivers them.
    pub async fn shutdown(self) {
        let _ = self.stop_worker.send(true);
        let _ = self.worker.await;
        let _ = self.stop_poller.send(true);
        let _ = self.poller.await;
    }
}

/// Switches the intake's registry: [`Intake::registry_switch`].
#[derive(Clone)]
pub struct RegistrySwitch {
    registry: Arc<watch::Sender<(u64, Arc<Registry>)>>,
    in_use: watch::Receiver<u64>,
    /// A switch with no intake behind it marks each registry in use itself.
    standalone: Option<Arc<watch::Sender<u64>>>,
}

impl std::fmt::Debug for RegistrySwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrySwitch").finish_non_exhaustive()
    }
}

impl RegistrySwitch {
    /// A switch with no intake behind it, and the registry it holds as the rule runner
    /// and the API read it (for servers and tests without an intake).
    pub fn standalone(registry: Arc<Registry>) -> (RegistrySwitch, crate::rules::CurrentRegistry) {
        let (tx, rx) = watch::channel((0, registry));
        let (in_use_tx, in_use) = watch::channel(0);
        let current: crate::rules::CurrentRegistry = Arc::new(move || rx.borrow().1.clone());
        (
            RegistrySwitch {
                registry: Arc::new(tx),
                in_use,
                standalone: Some(Arc::new(in_use_tx)),
            },
            current,
        )
    }

    /// [`Intake::set_registry`].
    pub async fn set(&self, registry: Arc<Registry>) {
        let mut generation = 0;
        self.registry.send_modify(|(g, r)| {
            *g += 1;
            generation = *g;
            *r = registry;
        });
        if let Some(in_use) = &self.standalone {
            in_use.send_replace(generation);
        }
        let mut in_use = self.in_use.clone();
        // An error means the worker has stopped: nothing uses any registry.
        let _ = in_use.wait_for(|g| *g >= generation).await;
    }
}

/// Makes ring rustls's process-wide crypto provider (once; later calls find it there).
fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A publish taken off the connection numbered `connection`.
struct Taken {
    publish: Publish,
    connection: u64,
}

/// What the worker hands back to the poller after a commit.
enum Done {
    /// Acknowledge `pkid`, if the publish came in on the connection still open.
    Ack { pkid: u16, connection: u64 },
    /// Room was made in the window (also for QoS 0 publishes, which need no ack).
    Room,
}

/// How long writing acknowledgements may take before the connection is given up
/// (rumqttc bounds its own flushes the same way).
const ACK_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

#[allow(clippy::too_many_arguments)]
async fn poll(
    mut eventloop: EventLoop,
    client: AsyncClient,
    subscription: String,
    tx: mpsc::UnboundedSender<Taken>,
    mut done: mpsc::UnboundedReceiver<Done>,
    max_pending: u64,
    stats: Arc<IntakeStats>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(100);
    // Numbered connections: an ack goes out only on the connection its publish came
    // in on. After a reconnect the broker redelivers what was not acknowledged, and a
    // packet id acknowledged on another connection could name another message.
    let mut connection = 0u64;
    loop {
        // Read only below the window. What the worker hands back (acks, room) wakes
        // this loop, so the window is looked at again after every commit.
        let open = stats.pending.load(Ordering::Acquire) < max_pending;
        // While (re)connecting, leave the worker's messages queued: handling them
        // would cancel the connect under way.
        let connected = eventloop.network.is_some();
        let event = tokio::select! {
            biased;
            _ = stopped.changed() => break,
            Some(first) = done.recv(), if connected => {
                let mut batch = vec![first];
                while let Ok(d) = done.try_recv() {
                    batch.push(d);
                }
                write_acks(&mut eventloop, &batch, connection, &stats).await;
                continue;
            }
            // Cancelling a poll is safe in rumqttc 0.25.1 (pinned for it): reads are
            // buffered in its codec and its event queue, and with manual acks a poll
            // writes only this task's own small requests. Without a connection, poll
            // whatever the window: it reconnects (and the acks of the old connection
            // are then dropped, which reopens the window).
            e = eventloop.poll(), if open || !connected => e,
        };
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                backoff = Duration::from_millis(100);
                connection += 1;
                // Renew on every connection; with a persistent session this is
                // harmless, without one it is required.
                let _ = client.try_subscribe(subscription.clone(), QoS::AtLeastOnce);
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                stats.subscriptions_acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                let pending = stats.pending.fetch_add(1, Ordering::AcqRel) + 1;
                stats.pending_max.fetch_max(pending, Ordering::Relaxed);
                if tx
                    .send(Taken {
                        publish,
                        connection,
                    })
                    .is_err()
                {
                    // The worker is gone: finish as when stopped.
                    break;
                }
            }
            Ok(_) => {}
            Err(_) => {
                stats.connection_errors.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopped.changed() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
    // Stopping (the worker has finished): write its last acks, then disconnect.
    let mut last = Vec::new();
    while let Ok(d) = done.try_recv() {
        last.push(d);
    }
    write_acks(&mut eventloop, &last, connection, &stats).await;
    let _ = client.try_disconnect();
    for _ in 0..64 {
        match tokio::time::timeout(Duration::from_millis(500), eventloop.poll()).await {
            Ok(Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect))) | Ok(Err(_)) | Err(_) => {
                break;
            }
            Ok(Ok(_)) => {}
        }
    }
}

/// Writes the PUBACKs of `done` that belong to `connection` straight to the broker,
/// without reading from it. Acks of an older connection are not written: the broker
/// redelivers those publishes, and the store recognises them. A write that does not
/// finish within [`ACK_WRITE_TIMEOUT`] drops the connection (rumqttc reconnects).
async fn write_acks(
    eventloop: &mut EventLoop,
    done: &[Done],
    connection: u64,
    stats: &IntakeStats,
) {
    let pkids: Vec<u16> = done
        .iter()
        .filter_map(|d| match d {
            Done::Ack {
                pkid,
                connection: c,
            } if *c == connection => Some(*pkid),
            _ => None,
        })
        .collect();
    if pkids.is_empty() {
        return;
    }
    let Some(network) = eventloop.network.as_mut() else {
        return;
    };
    let written = tokio::time::timeout(ACK_WRITE_TIMEOUT, async {
        for pkid in &pkids {
            network.write(Packet::PubAck(PubAck::new(*pkid))).await?;
        }
        network.flush().await
    })
    .await;
    match written {
        Ok(Ok(())) => {
            stats
                .acks_flushed
                .fetch_add(pkids.len() as u64, Ordering::AcqRel);
        }
        // The connection is broken or stuck: drop it; the next poll reconnects.
        _ => {
            stats.connection_errors.fetch_add(1, Ordering::Relaxed);
            eventloop.clean();
            eventloop.network = None;
        }
    }
}

/// The worker's view of the registry: the current one, and the generation in use.
struct Registries {
    current: watch::Receiver<(u64, Arc<Registry>)>,
    in_use: watch::Sender<u64>,
}

/// A group of publishes the preparing stage has decoded, validated and attributed,
/// on its way to the committing stage; or a registry switch between two groups.
enum Staged {
    Batch {
        batch: Vec<Taken>,
        commits: Vec<EnvelopeCommit>,
        /// Their rows' text, computed ahead of the commit.
        prepared: vigil_store::PreparedRows,
        /// Payloads that are not usable envelopes: (topic's gateway, payload, why).
        rejected: Vec<(vigil_model::GatewayId, Vec<u8>, String)>,
        received: chrono::DateTime<chrono::Utc>,
        taken_at: std::time::Instant,
    },
    /// Every group before this one was prepared with an older registry: once they are
    /// committed, this generation is the one in use.
    Switched(u64),
}

/// Groups prepared ahead of the commit under way: one is enough to overlap decoding
/// with committing. (What is held stays within the window, `max_pending` publishes:
/// a publish leaves it only once committed.)
const STAGED_AHEAD: usize = 1;

/// The intake's worker, two stages on two tasks so that they run on both cores: one
/// decodes, validates and attributes the next group of publishes while the other
/// commits the group before and acknowledges it. Groups are committed, and
/// acknowledged, in the order they were taken.
#[allow(clippy::too_many_arguments)]
async fn work<S: ClinicalStore>(
    rx: mpsc::UnboundedReceiver<Taken>,
    acks: mpsc::UnboundedSender<Done>,
    on_commit: (Vec<Arc<Notify>>, Option<Arc<RuleFeed>>),
    store: S,
    registries: Registries,
    clock: Arc<dyn Clock>,
    max_batch: usize,
    stats: Arc<IntakeStats>,
    stopped: watch::Receiver<bool>,
) {
    let (staged_tx, staged_rx) = mpsc::channel(STAGED_AHEAD);
    let Registries { current, in_use } = registries;
    let preparer = tokio::spawn(prepare_batches(
        rx,
        staged_tx,
        current,
        clock,
        max_batch,
        stats.clone(),
        stopped,
    ));
    commit_batches(staged_rx, acks, on_commit, store, in_use, stats).await;
    let _ = preparer.await;
}

/// The first stage: takes the publishes waiting (up to `max_batch`), prepares them
/// with the current registry and hands them on. Stops taking when `stopped`; what it
/// took is committed by the second stage before that one ends.
async fn prepare_batches(
    mut rx: mpsc::UnboundedReceiver<Taken>,
    staged: mpsc::Sender<Staged>,
    mut current: watch::Receiver<(u64, Arc<Registry>)>,
    clock: Arc<dyn Clock>,
    max_batch: usize,
    stats: Arc<IntakeStats>,
    mut stopped: watch::Receiver<bool>,
) {
    let (generation, mut registry) = current.borrow_and_update().clone();
    if staged.send(Staged::Switched(generation)).await.is_err() {
        return;
    }
    loop {
        let (first, switch) = tokio::select! {
            p = rx.recv() => match p {
                Some(p) => (Some(p), current.has_changed().unwrap_or(false)),
                None => return,
            },
            _ = stopped.changed() => return,
            // Between groups: switch at once.
            Ok(()) = current.changed() => (None, true),
        };
        if switch {
            let generation;
            (generation, registry) = current.borrow_and_update().clone();
            if staged.send(Staged::Switched(generation)).await.is_err() {
                return;
            }
        }
        let Some(first) = first else { continue };
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let received = clock.now();
        let taken_at = std::time::Instant::now();
        let mut commits: Vec<EnvelopeCommit> = Vec::new();
        let mut rejected = Vec::new();
        for p in batch.iter().map(|t| &t.publish) {
            let gateway = match Topic::parse(&p.topic) {
                Ok(Topic::Readings(gw)) => gw,
                // Not a readings topic of ours: nothing to keep; ack so it is not redelivered.
                _ => continue,
            };
            match prepare(&gateway, &p.payload, received, &registry) {
                Ok(c) => {
                    stats
                        .readings_received
                        .fetch_add(c.items.len() as u64, Ordering::Relaxed);
                    commits.push(c);
                }
                Err(e) => rejected.push((gateway, p.payload.to_vec(), e.message)),
            }
        }
        // The rows' text (identity keys, JSON) here, while the previous group commits.
        let prepared = vigil_store::prepare_rows(&commits).unwrap_or_default();
        let group = Staged::Batch {
            batch,
            commits,
            prepared,
            rejected,
            received,
            taken_at,
        };
        if staged.send(group).await.is_err() {
            return;
        }
    }
}

/// The second stage: commits each prepared group (retrying while its acks are
/// withheld), then acknowledges it in receive order. Ends when the first stage has
/// ended and everything it handed on is committed.
async fn commit_batches<S: ClinicalStore>(
    mut staged: mpsc::Receiver<Staged>,
    acks: mpsc::UnboundedSender<Done>,
    (on_commit, feed): (Vec<Arc<Notify>>, Option<Arc<RuleFeed>>),
    store: S,
    in_use: watch::Sender<u64>,
    stats: Arc<IntakeStats>,
) {
    while let Some(group) = staged.recv().await {
        let (batch, mut commits, mut prepared, mut rejected, received, taken_at) = match group {
            Staged::Switched(generation) => {
                in_use.send_replace(generation);
                continue;
            }
            Staged::Batch {
                batch,
                commits,
                prepared,
                rejected,
                received,
                taken_at,
            } => (batch, commits, Some(prepared), rejected, received, taken_at),
        };
        let mut delay = Duration::from_millis(50);
        // Each unusable payload is kept once: a retry after a failed commit does not
        // keep it again.
        let rejected_count = rejected.len() as u64;
        let (outcomes, rows) = loop {
            let result = async {
                check_weight_changes(&mut commits, &store).await?;
                while let Some((gw, payload, message)) = rejected.last() {
                    store.reject_payload(gw, received, payload, message).await?;
                    rejected.pop();
                }
                // (A retry computes the rows again.)
                let rows = prepared.take().unwrap_or_default();
                store.commit_prepared(&commits, rows).await
            }
            .await;
            match result {
                Ok(o) => break o,
                Err(_) => {
                    stats.store_errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        };
        stats.commit_latency.observe(taken_at.elapsed());
        stats.commits.fetch_add(1, Ordering::Relaxed);
        if let Some(feed) = &feed {
            feed.push(crate::feed::committed(&mut commits, &rows));
        }
        for n in &on_commit {
            n.notify_one();
        }
        stats
            .payloads_rejected
            .fetch_add(rejected_count, Ordering::Relaxed);
        for o in &outcomes {
            stats
                .readings_stored
                .fetch_add(u64::from(o.stored), Ordering::Relaxed);
            stats
                .readings_quarantined
                .fetch_add(u64::from(o.quarantined), Ordering::Relaxed);
            stats
                .readings_duplicate
                .fetch_add(u64::from(o.duplicates), Ordering::Relaxed);
            stats
                .readings_redelivered
                .fetch_add(u64::from(o.redelivered), Ordering::Relaxed);
        }
        // Room in the window first, then the acks, then a wake-up (QoS 0 publishes
        // have no ack to wake the poller with).
        stats
            .pending
            .fetch_sub(batch.len() as u64, Ordering::Release);
        for t in &batch {
            if t.publish.pkid != 0
                && acks
                    .send(Done::Ack {
                        pkid: t.publish.pkid,
                        connection: t.connection,
                    })
                    .is_ok()
            {
                stats.acks_queued.fetch_add(1, Ordering::AcqRel);
            }
            stats.publishes_acked.fetch_add(1, Ordering::Relaxed);
        }
        let _ = acks.send(Done::Room);
    }
}
