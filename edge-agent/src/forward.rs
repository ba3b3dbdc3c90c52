//! The forwarder: forms envelopes from the outbox's readings and publishes them at QoS 1
//! to `vigil/v1/gw/{id}/readings`, acknowledging them in the outbox only on the
//! broker's PUBACK for that very publish ([`vigil_wire::pubacks::Tracker`]).
//!
//! - **Batching**: an envelope takes up to `batch_size` readings; a part-full one is
//!   formed once its oldest reading has waited `linger`.
//! - **Window**: at most `window` envelopes in flight; the rest wait in the outbox.
//! - **Connection loss**: the client, its event loop and its tracker are replaced
//!   together, and every envelope not acknowledged is published again, in order, on
//!   the new connection (same bytes, same `batch_seq`). Reconnects back off from 0.5 s
//!   to 30 s.
//! - **Status**: `vigil/v1/gw/{id}/status`, retained: `online` with the outbox depth at
//!   each connection, again when the outbox drains or the depth shown is a minute old;
//!   `offline` at a clean stop and as the Last Will.
//! - **Commands** on `vigil/v1/gw/{id}/cmd`: `backfill` by batch range republishes the
//!   retained envelopes (same bytes); by device and record, and `remeasure`, go to the
//!   device layer through [`Handle::commands`].

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::FixedOffset;
use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::{Notify, mpsc, watch};
use vigil_model::clock::Clock;
use vigil_model::{GatewayId, Reading};
use vigil_wire::Topic;
use vigil_wire::command::{Command, decode_command};
use vigil_wire::pubacks::Tracker;
use vigil_wire::status::{GatewayState, Status, encode_status};

use crate::store::Store;

/// UTC+08:00, the default zone of `sent_at`.
pub const CHINA: FixedOffset = match FixedOffset::east_opt(8 * 3600) {
    Some(o) => o,
    None => panic!("UTC+08:00 is a valid offset"),
};

#[derive(Debug, Clone)]
pub struct ForwarderConfig {
    pub gateway_id: GatewayId,
    pub host: String,
    pub port: u16,
    /// MQTT username and password, when the broker asks for them.
    pub credentials: Option<(String, String)>,
    pub tls: Option<rumqttc::TlsConfiguration>,
    pub batch_size: usize,
    pub linger: Duration,
    pub window: usize,
    /// The zone of `sent_at`.
    pub offset: FixedOffset,
    /// Fault injection for tests and `vigil-edge simulate`: these `batch_seq`s are
    /// marked acknowledged without being published, as if lost on the way.
    pub drop_batches: Vec<u64>,
}

impl ForwarderConfig {
    pub fn new(gateway_id: GatewayId, host: &str, port: u16) -> ForwarderConfig {
        ForwarderConfig {
            gateway_id,
            host: host.to_owned(),
            port,
            credentials: None,
            tls: None,
            batch_size: 50,
            linger: Duration::from_millis(500),
            window: 16,
            offset: CHINA,
            drop_batches: Vec::new(),
        }
    }
}

/// Counters of the forwarder.
#[derive(Debug, Default)]
pub struct ForwardStats {
    pub formed: AtomicU64,
    /// Envelopes the broker acknowledged.
    pub acked: AtomicU64,
    /// Publishes made again after a connection loss.
    pub republished: AtomicU64,
    pub connections: AtomicU64,
    /// Attempts to connect that failed (refused, unreachable, TLS or credentials
    /// rejected); the first failure and every change of reason are said on stderr.
    pub connect_failures: Arc<AtomicU64>,
    /// Envelopes republished for a `backfill` command.
    pub backfilled: AtomicU64,
    /// `backfill` batches no longer retained.
    pub backfill_missing: AtomicU64,
    pub dropped_for_test: AtomicU64,
}

/// What producers (device sessions, the simulator) use: add readings, take commands.
#[derive(Debug, Clone)]
pub struct Handle {
    store: Arc<Mutex<Store>>,
    wake: Arc<Notify>,
    clock: Arc<dyn Clock>,
    refused: Arc<AtomicU64>,
    /// Acknowledged records the cap deleted before their retention, as last said.
    evicted: Arc<AtomicU64>,
}

/// Says (on stderr) when the cap has deleted acknowledged records before their
/// retention ended since it was last said: batches so deleted can no longer be
/// backfilled. `said` holds the total last said.
fn say_evictions(store: &Store, said: &AtomicU64) {
    let total = store.evicted();
    let before = said.swap(total, Ordering::Relaxed);
    if total > before {
        let (readings, envelopes) = store.stats();
        eprintln!(
            "vigil-edge: the outbox cap made room: {} acknowledged record(s) deleted before their retention ended ({} readings and {} envelopes since the start); those batches can no longer be backfilled",
            total - before,
            readings.evicted_records,
            envelopes.evicted_records
        );
    }
}

impl Handle {
    /// Adds readings to the outbox durably (returns once they are on disk).
    ///
    /// When the outbox is full of readings the broker has not acknowledged, they are
    /// refused: the refusal is counted ([`Handle::refused`]) and said on stderr, and
    /// the error returned (a meter keeps them and is read again; a stream loses them).
    pub async fn add(&self, readings: Vec<Reading>) -> Result<(), vigil_outbox::Error> {
        let now = self.clock.now();
        let n = readings.len() as u64;
        let evicted = self.evicted.clone();
        let r = blocking(&self.store, move |s| {
            let r = s.add(&readings, now);
            say_evictions(s, &evicted);
            r
        })
        .await;
        self.wake.notify_one();
        if let Err(vigil_outbox::Error::Full { .. }) = &r {
            let total = self.refused.fetch_add(n, Ordering::Relaxed) + n;
            eprintln!(
                "vigil-edge: the outbox is full of readings the broker has not acknowledged: {n} refused ({total} since the start)"
            );
        }
        r.map(|_| ())
    }

    /// Readings refused because the outbox was full, since the start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Acknowledged records (readings and envelopes) the cap deleted before their
    /// retention ended, since the start.
    pub async fn evicted(&self) -> u64 {
        blocking(&self.store, |s| s.evicted()).await
    }

    /// Readings not yet acknowledged by the broker.
    pub async fn depth(&self) -> u64 {
        blocking(&self.store, |s| s.depth()).await
    }

    /// Envelopes not yet acknowledged.
    pub async fn envelopes_pending(&self) -> u64 {
        blocking(&self.store, |s| s.envelopes_pending()).await
    }
}

async fn blocking<R: Send + 'static>(
    store: &Arc<Mutex<Store>>,
    f: impl FnOnce(&mut Store) -> R + Send + 'static,
) -> R {
    let store = store.clone();
    match tokio::task::spawn_blocking(move || {
        let mut s = store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut s)
    })
    .await
    {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// A running forwarder.
#[derive(Debug)]
pub struct Forwarder {
    pub stats: Arc<ForwardStats>,
    handle: Handle,
    /// Device commands (`backfill` by device, `remeasure`) for the device layer.
    pub commands: Option<mpsc::Receiver<Command>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    pub fn start(config: ForwarderConfig, store: Store, clock: Arc<dyn Clock>) -> Forwarder {
        let store = Arc::new(Mutex::new(store));
        let wake = Arc::new(Notify::new());
        let stats = Arc::new(ForwardStats::default());
        let (stop, stopped) = watch::channel(false);
        let (tx, rx) = mpsc::channel(64);
        let handle = Handle {
            store,
            wake,
            clock,
            refused: Arc::default(),
            evicted: Arc::default(),
        };
        let task = tokio::spawn(run(config, handle.clone(), stats.clone(), tx, stopped));
        Forwarder {
            stats,
            handle,
            commands: Some(rx),
            stop,
            task,
        }
    }

    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Stops at once, as a crash or a power cut would: no `offline` status (the
    /// broker publishes the Last Will), nothing flushed beyond what is durable already.
    /// Returns once nothing of it touches the outbox any more, so the state can be
    /// opened again as a restarted process would.
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
        // An outbox call already running finishes under the lock; after this none can.
        blocking(&self.handle.store, |_| ()).await;
    }

    /// Stops cleanly: the retained status says `offline`; what is not acknowledged
    /// stays in the outbox for the next start.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// What a publish on the connection was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Envelope(u64),
    /// Republished for a `backfill`: published again on the next connection if this one
    /// is lost before its PUBACK.
    Backfill(u64),
    /// The status: nothing to do on its PUBACK.
    Other,
}

struct Conn {
    client: AsyncClient,
    tracker: Arc<Mutex<Tracker>>,
    events: Arc<Notify>,
    lost: Arc<std::sync::atomic::AtomicBool>,
    commands: mpsc::Receiver<Vec<u8>>,
    poller: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

fn status(config: &ForwarderConfig, state: GatewayState, depth: u64, clock: &dyn Clock) -> Vec<u8> {
    encode_status(&Status {
        gateway_id: config.gateway_id.clone(),
        state,
        agent_version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        outbox_depth: Some(depth),
        time: clock.now().with_timezone(&config.offset),
    })
}

fn open(config: &ForwarderConfig, clock: &Arc<dyn Clock>, failures: &Arc<AtomicU64>) -> Conn {
    let gw = &config.gateway_id;
    let mut options = MqttOptions::new(gw.as_str(), &config.host, config.port);
    options.set_keep_alive(Duration::from_secs(30));
    // Commands sent while the gateway was away are kept for it by the broker.
    options.set_clean_session(false);
    // Envelopes are at most 1 MiB of readings (store::MAX_ENVELOPE_BYTES), but one
    // large reading (a 12-lead ECG strip) goes alone: the ingester takes 16 MiB.
    options.set_max_packet_size(16 * 1024 * 1024, 16 * 1024 * 1024);
    options.set_last_will(LastWill::new(
        Topic::Status(gw.clone()).to_string(),
        status(config, GatewayState::Offline, 0, clock.as_ref()),
        QoS::AtLeastOnce,
        true,
    ));
    if let Some((user, password)) = &config.credentials {
        options.set_credentials(user, password);
    }
    if let Some(tls) = &config.tls {
        let _ = rustls::crypto::ring::default_provider().install_default();
        options.set_transport(rumqttc::Transport::Tls(tls.clone()));
    }
    let (client, mut eventloop) = AsyncClient::new(options, 256);
    let tracker = Arc::new(Mutex::new(Tracker::default()));
    let events = Arc::new(Notify::new());
    let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (cmd_tx, commands) = mpsc::channel(64);
    let (t, rung, gone) = (tracker.clone(), events.clone(), lost.clone());
    let cmd_topic = Topic::Command(gw.clone()).to_string();
    let (c, clk) = (client.clone(), clock.clone());
    let (failures, broker) = (failures.clone(), format!("{}:{}", config.host, config.port));
    let poller = tokio::spawn(async move {
        let mut up = false;
        let mut said = String::new();
        let mut retry = Duration::from_millis(200);
        loop {
            match eventloop.poll().await {
                Ok(Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) => {
                    if let Ok(mut t) = t.lock() {
                        t.sent(pkid);
                    }
                }
                Ok(Event::Incoming(Packet::PubAck(ack))) => {
                    if let Ok(mut t) = t.lock() {
                        t.acked(ack.pkid, clk.now());
                    }
                    rung.notify_one();
                }
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    up = true;
                    if let Ok(mut t) = t.lock() {
                        t.connected = true;
                    }
                    let _ = c.try_subscribe(cmd_topic.clone(), QoS::AtLeastOnce);
                    rung.notify_one();
                }
                Ok(Event::Incoming(Packet::Publish(p))) if p.topic == cmd_topic => {
                    let _ = cmd_tx.try_send(p.payload.to_vec());
                    rung.notify_one();
                }
                Ok(_) => {}
                Err(e) if !up => {
                    // Not connected yet: try again, backing off up to 5 s. Said once
                    // per reason, so a wrong certificate or password is seen at once.
                    failures.fetch_add(1, Ordering::Relaxed);
                    let reason = e.to_string();
                    if reason != said {
                        eprintln!(
                            "vigil-edge: cannot connect to the broker at {broker}: {reason}; retrying with a backoff of up to 5 s, the outbox keeping the readings meanwhile"
                        );
                        said = reason;
                    }
                    tokio::time::sleep(retry).await;
                    retry = (retry * 2).min(Duration::from_secs(5));
                }
                Err(_) => {
                    if let Ok(mut t) = t.lock() {
                        t.connected = false;
                    }
                    gone.store(true, Ordering::Release);
                    rung.notify_one();
                    return;
                }
            }
        }
    });
    Conn {
        client,
        tracker,
        events,
        lost,
        commands,
        poller,
    }
}

async fn run(
    config: ForwarderConfig,
    handle: Handle,
    stats: Arc<ForwardStats>,
    device_commands: mpsc::Sender<Command>,
    mut stopped: watch::Receiver<bool>,
) {
    let clock = handle.clock.clone();
    let store = handle.store.clone();
    let readings_topic = Topic::Readings(config.gateway_id.clone()).to_string();
    let status_topic = Topic::Status(config.gateway_id.clone()).to_string();
    let mut backoff = Duration::from_millis(500);
    let mut last_compact = std::time::Instant::now();
    // The highest batch_seq ever published by this process (republishes are below).
    let mut ever_sent = 0u64;
    // Batches asked for by `backfill` and not yet acknowledged, across connections.
    let mut backfills: VecDeque<u64> = VecDeque::new();
    'connections: loop {
        let mut conn = open(&config, &clock, &stats.connect_failures);
        stats.connections.fetch_add(1, Ordering::Relaxed);
        // Sequence number of each publish on this connection → what it was.
        let mut in_flight: HashMap<u64, Sent> = HashMap::new();
        let mut sent_through = 0u64; // the last batch_seq published on this connection
        let mut announced = false;
        let mut announced_depth = 0u64;
        let mut announced_at = std::time::Instant::now();
        let mut form_failing = false;
        let (client, tracker) = (conn.client.clone(), conn.tracker.clone());
        loop {
            if *stopped.borrow() {
                let depth = blocking(&store, |s| s.depth()).await;
                let offline = status(&config, GatewayState::Offline, depth, clock.as_ref());
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    let _ = client
                        .publish(&status_topic, QoS::AtLeastOnce, true, offline)
                        .await;
                    let _ = client.disconnect().await;
                })
                .await;
                break 'connections;
            }
            if conn.lost.load(Ordering::Acquire) {
                break;
            }
            if last_compact.elapsed() >= Duration::from_secs(60) {
                last_compact = std::time::Instant::now();
                let now = clock.now();
                if let Err(e) = blocking(&store, move |s| s.compact(now)).await {
                    eprintln!("vigil-edge: outbox compaction: {e}");
                }
            }
            let connected = tracker.lock().is_ok_and(|t| t.connected);
            // PUBACKs: acknowledge envelopes in the outbox.
            let acked: Vec<(u64, Sent)> = match tracker.lock() {
                Ok(mut t) => {
                    let done: Vec<u64> = in_flight
                        .keys()
                        .copied()
                        .filter(|s| t.is_acked(*s))
                        .collect();
                    done.into_iter()
                        .filter_map(|s| {
                            t.take(s);
                            in_flight.remove(&s).map(|what| (s, what))
                        })
                        .collect()
                }
                Err(_) => Vec::new(),
            };
            for (_, what) in acked {
                if let Sent::Backfill(_) = what {
                    stats.backfilled.fetch_add(1, Ordering::Relaxed);
                }
                if let Sent::Envelope(seq) = what {
                    let r = blocking(&store, move |s| s.acked(seq)).await;
                    match r {
                        Ok(()) => {
                            stats.acked.fetch_add(1, Ordering::Relaxed);
                            backoff = Duration::from_millis(500);
                        }
                        Err(e) => eprintln!(
                            "vigil-edge: outbox: cannot record the acknowledgement of batch {seq}: {e}"
                        ),
                    }
                }
            }
            // Form what is due.
            let now = clock.now();
            let (batch, linger, gw, offset) = (
                config.batch_size,
                config.linger,
                config.gateway_id.clone(),
                config.offset,
            );
            let evicted = handle.evicted.clone();
            let (formed, failure) = blocking(&store, move |s| {
                let mut n = 0u64;
                let mut failure = None;
                while let Ok((count, oldest)) = s.unformed() {
                    let waited = oldest
                        .is_some_and(|at| now.timestamp_millis() - at >= linger.as_millis() as i64);
                    if count == 0 || (count < batch as u64 && !waited) {
                        break;
                    }
                    match s.form(&gw, batch, now, offset) {
                        Ok(Some(_)) => n += 1,
                        Ok(None) => break,
                        Err(e) => {
                            failure = Some(e.to_string());
                            break;
                        }
                    }
                }
                say_evictions(s, &evicted);
                (n, failure)
            })
            .await;
            stats.formed.fetch_add(formed, Ordering::Relaxed);
            // The readings stay in the outbox, unformed, until an envelope can be
            // written; said once when it starts failing and once when it stops.
            match (&failure, form_failing) {
                (Some(e), false) => eprintln!(
                    "vigil-edge: no envelope can be formed ({e}); the readings wait in the outbox"
                ),
                (None, true) if formed > 0 => {
                    eprintln!("vigil-edge: envelopes are formed again");
                }
                _ => {}
            }
            if failure.is_some() || formed > 0 {
                form_failing = failure.is_some();
            }
            if connected {
                // The retained status: at each connection, then whenever the depth
                // it shows is a minute old or the outbox has drained.
                let depth = blocking(&store, |s| s.depth()).await;
                if announced
                    && depth != announced_depth
                    && (depth == 0 || announced_at.elapsed() >= Duration::from_secs(60))
                {
                    announced = false;
                }
                if !announced {
                    let online = status(&config, GatewayState::Online, depth, clock.as_ref());
                    if let Ok(mut t) = tracker.lock() {
                        in_flight.insert(t.reserve(), Sent::Other);
                    }
                    let _ = client
                        .publish(&status_topic, QoS::AtLeastOnce, true, online)
                        .await;
                    announced = true;
                    announced_depth = depth;
                    announced_at = std::time::Instant::now();
                }
                // Commands from the platform.
                while let Ok(payload) = conn.commands.try_recv() {
                    match decode_command(&payload) {
                        Ok(Command::BackfillBatches {
                            from_batch_seq,
                            to_batch_seq,
                        }) => {
                            // At most 10 000 batches queued; one asked twice goes once.
                            let room = 10_000usize.saturating_sub(backfills.len()) as u64;
                            let to = to_batch_seq
                                .min(from_batch_seq.saturating_add(room.saturating_sub(1)));
                            if room > 0 && from_batch_seq <= to {
                                let queued: std::collections::HashSet<u64> =
                                    backfills.iter().copied().collect();
                                backfills
                                    .extend((from_batch_seq..=to).filter(|b| !queued.contains(b)));
                            }
                        }
                        Ok(other) => {
                            if device_commands.try_send(other).is_err() {
                                eprintln!(
                                    "vigil-edge: a device command was dropped: no device layer is listening"
                                );
                            }
                        }
                        Err(e) => eprintln!("vigil-edge: an unreadable command was ignored: {e}"),
                    }
                }
                // New publishes, within the window: envelopes in order, then backfills.
                let room = config.window.saturating_sub(in_flight.len());
                if room > 0 {
                    let pending = blocking(&store, move |s| s.pending(sent_through, room))
                        .await
                        .unwrap_or_default();
                    for env in pending {
                        if config.drop_batches.contains(&env.batch_seq) {
                            let seq = env.batch_seq;
                            if blocking(&store, move |s| s.drop_unsent(seq)).await.is_ok() {
                                stats.dropped_for_test.fetch_add(1, Ordering::Relaxed);
                            }
                            sent_through = env.batch_seq;
                            continue;
                        }
                        if let Ok(mut t) = tracker.lock() {
                            in_flight.insert(t.reserve(), Sent::Envelope(env.batch_seq));
                        }
                        if env.batch_seq <= ever_sent {
                            stats.republished.fetch_add(1, Ordering::Relaxed);
                        }
                        ever_sent = ever_sent.max(env.batch_seq);
                        let mut s = stopped.clone();
                        tokio::select! {
                            _ = client.publish(&readings_topic, QoS::AtLeastOnce, false, env.payload) => {}
                            _ = s.changed() => continue 'connections,
                        }
                        sent_through = env.batch_seq;
                    }
                }
                while in_flight.len() < config.window {
                    let Some(seq) = backfills.pop_front() else {
                        break;
                    };
                    match blocking(&store, move |s| s.envelope(seq)).await {
                        Ok(Some(env)) => {
                            if let Ok(mut t) = tracker.lock() {
                                in_flight.insert(t.reserve(), Sent::Backfill(seq));
                            }
                            let _ = client
                                .publish(&readings_topic, QoS::AtLeastOnce, false, env.payload)
                                .await;
                        }
                        _ => {
                            stats.backfill_missing.fetch_add(1, Ordering::Relaxed);
                            eprintln!("vigil-edge: backfill: batch {seq} is no longer retained");
                        }
                    }
                }
            }
            // Wait for a PUBACK, a command, new readings, the linger, or the stop.
            tokio::select! {
                _ = conn.events.notified() => {}
                _ = handle.wake.notified() => {}
                _ = tokio::time::sleep(config.linger.clamp(Duration::from_millis(1), Duration::from_millis(250))) => {}
                r = stopped.changed() => if r.is_err() { break 'connections },
            }
        }
        // The connection was lost: what was in flight is published again on the next
        // (envelopes from the outbox; backfills from here, in their order).
        let mut lost_backfills: Vec<u64> = in_flight
            .values()
            .filter_map(|w| match w {
                Sent::Backfill(seq) => Some(*seq),
                _ => None,
            })
            .collect();
        lost_backfills.sort_unstable();
        for seq in lost_backfills.into_iter().rev() {
            backfills.push_front(seq);
        }
        let mut s = stopped.clone();
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = s.changed() => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
    // Housekeeping at a clean stop.
    let now = clock.now();
    let _ = blocking(&store, move |s| s.compact(now)).await;
}
