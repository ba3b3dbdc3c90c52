//! Alert delivery over MQTT: each alert event the rule engine kept goes to the doctors
//! its escalation level reaches, as a `vigil.alert.v1` event on
//! `vigil/v1/doctor/{doctor_id}/alerts` (QoS 1).
//!
//! - **Routing by care relationship** (`spec/registry.md`, Rules): level 1 the
//!   patient's responsible doctor; level 2 the on-call doctor of the institution's hub
//!   at that moment, else the care team's specialist; level 3 the consortium's duty
//!   desk. An event at level L goes to the doctors of levels 1 to L (an escalation
//!   reaches the new level and tells the ones before), to those whose MQTT channel is
//!   on; CRITICAL goes whatever the preference.
//! - **At least once, state kept**: the deliverer follows `alert_events` by a cursor
//!   (`delivery`) and records each (event, doctor, channel) in `alert_deliveries` only
//!   after the broker's PUBACK, in the same transaction as the cursor. A crash before
//!   that publishes again: the `alert_id` is stable, so a client shows it once.
//! - **Quiet hours**: a MEDIUM/LOW event with `deliver_at` in the future is recorded as
//!   `held` and published when due.
//! - **Given up, not lost**: a publish the broker never acknowledges, after
//!   [`DeliveryConfig::max_attempts`] made while connected, is recorded `failed`, goes
//!   to the next channel ([`fallbacks`]) and raises an `mqtt_failed` operational alert,
//!   in one transaction, before the cursor moves past it.
//!
//! The dashboard's stream is served by `vigil-api` (`/api/v1/alerts/stream`); signed
//! webhooks by [`crate::webhook`], whose given-up deliveries come back here as held
//! MQTT deliveries due at once.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::watch;
use vigil_model::clock::Clock;
use vigil_model::vocab::Severity;
use vigil_model::{AlertId, DoctorId};
use vigil_registry::Registry;
use vigil_store::{AlertEventRecord, SqliteStore};
use vigil_wire::Topic;
use vigil_wire::alert::{AlertEvent, AlertEventKind, Evidence, encode_alert};
use vigil_wire::pubacks::Tracker;

use crate::rules::CurrentRegistry;

/// Where the deliverer connects (the broker the doctors' clients read).
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub tls: Option<crate::intake::Tls>,
    /// How long a publish waits for the broker's PUBACK before it is tried again
    /// ([`ACK_TIMEOUT`]).
    pub ack_timeout: Duration,
    /// Attempts, made while connected, before a publish is given up ([`MAX_ATTEMPTS`]).
    pub max_attempts: u32,
}

impl DeliveryConfig {
    /// A deliverer connecting to `host:port` as `client_id`, with the default patience.
    pub fn new(host: impl Into<String>, port: u16, client_id: impl Into<String>) -> DeliveryConfig {
        DeliveryConfig {
            host: host.into(),
            port,
            client_id: client_id.into(),
            tls: None,
            ack_timeout: ACK_TIMEOUT,
            max_attempts: MAX_ATTEMPTS,
        }
    }
}

/// Upper bounds (seconds) of the delivery-latency histogram: milliseconds when all is
/// well, minutes when the broker or the store was away.
pub const DELIVERY_BUCKETS: [f64; 10] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0, 300.0];

/// Counters of the deliverer.
#[derive(Debug)]
pub struct DeliveryStats {
    /// (event, doctor) publishes the broker acknowledged.
    pub delivered: AtomicU64,
    pub held: AtomicU64,
    /// Events no doctor could be found for (the registry lacks the patient).
    pub unroutable: AtomicU64,
    pub retries: AtomicU64,
    /// (event, doctor) publishes given up (after [`DeliveryConfig::max_attempts`], or
    /// held ones that can no longer be rendered); each is an operational alert.
    pub failed: AtomicU64,
    pub cursor: AtomicI64,
    /// From the receipt of the reading that opened or upgraded an alert (the event's
    /// time) to the broker's PUBACK of its publish to a doctor; one observation per
    /// doctor. Held (quiet-hour) events are not observed.
    pub latency: crate::intake::Histogram,
}

impl Default for DeliveryStats {
    fn default() -> DeliveryStats {
        DeliveryStats {
            delivered: AtomicU64::new(0),
            held: AtomicU64::new(0),
            unroutable: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            cursor: AtomicI64::new(0),
            latency: crate::intake::Histogram::with_bounds(&DELIVERY_BUCKETS),
        }
    }
}

/// Attempts before a publish the broker never acknowledges is given up: recorded
/// `failed`, handed to the next channel ([`fallbacks`]) and raised as an operational
/// alert (`mqtt_failed`).
pub const MAX_ATTEMPTS: u32 = 10;

/// How long a publish waits for its PUBACK before it is tried again.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Publishes in one wave, below the 100 unacknowledged publishes rumqttc allows per
/// connection before it stops taking requests.
const WAVE: usize = 64;

/// Where an MQTT delivery to `doctor` goes when the broker never takes it, in order:
/// the doctor's webhook when they have one (the next channel), then the duty desk's
/// MQTT topic (the next person), unless the doctor is the duty desk. The store takes
/// the first that has not failed already (`SqliteStore::give_up_delivery`).
pub fn fallbacks(registry: &Registry, doctor: &DoctorId) -> Vec<(DoctorId, &'static str)> {
    let mut out = Vec::new();
    if registry
        .doctors
        .get(doctor)
        .is_some_and(|d| d.channels.webhook.is_some())
    {
        out.push((doctor.clone(), "webhook"));
    }
    let desk = &registry.consortium.duty_desk;
    if desk != doctor {
        out.push((desk.clone(), "mqtt"));
    }
    out
}

/// A running deliverer; stop it with [`Deliverer::shutdown`].
#[derive(Debug)]
pub struct Deliverer {
    pub stats: Arc<DeliveryStats>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Deliverer {
    pub fn start(
        config: DeliveryConfig,
        store: SqliteStore,
        registry: CurrentRegistry,
        clock: Arc<dyn Clock>,
        wake: Option<Arc<tokio::sync::Notify>>,
    ) -> Deliverer {
        let stats = Arc::new(DeliveryStats::default());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(
            config,
            store,
            registry,
            clock,
            (stats.clone(), wake),
            stopped,
        ));
        Deliverer { stats, stop, task }
    }

    /// Stops; what was not acknowledged is published again after the next start.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The doctors an event's escalation level reaches (levels 1 to its own), before any
/// channel preference; empty when the registry lacks the patient.
pub fn routed(registry: &Registry, event: &AlertEventRecord, at: DateTime<Utc>) -> Vec<DoctorId> {
    let Some(patient) = registry.patients.get(&event.patient_id) else {
        return Vec::new();
    };
    let mut out = BTreeSet::new();
    for level in 1..=event.level.clamp(1, 3) {
        if let Some(d) = registry.escalation_target(patient, level, at) {
            out.insert(d.clone());
        }
    }
    out.into_iter().collect()
}

/// Whether `doctor` takes `event` on a channel, by the doctor's preference for it;
/// CRITICAL goes to every channel whatever the preference.
pub fn wants(
    registry: &Registry,
    doctor: &DoctorId,
    event: &AlertEventRecord,
    channel: impl Fn(&vigil_registry::Channels) -> bool,
) -> bool {
    event.severity == Severity::Critical.as_str()
        || registry
            .doctors
            .get(doctor)
            .is_some_and(|d| channel(&d.channels))
}

/// The doctors an event reaches over MQTT: [`routed`], with their MQTT preference
/// honoured (CRITICAL goes to every channel). Empty when the doctors take it on the
/// dashboard's stream or their webhooks only.
pub fn recipients(
    registry: &Registry,
    event: &AlertEventRecord,
    at: DateTime<Utc>,
) -> Vec<DoctorId> {
    let routed = routed(registry, event, at);
    let out: Vec<DoctorId> = routed
        .iter()
        .filter(|d| wants(registry, d, event, |c| c.mqtt))
        .cloned()
        .collect();
    if out.is_empty()
        && !routed
            .iter()
            .any(|d| wants(registry, d, event, |c| c.sse || c.webhook.is_some()))
    {
        // Nobody would be reached on any channel (a patient missing from the
        // registry, doctors with every channel off): the duty desk gets it over MQTT
        // rather than nobody. (A webhook that keeps failing falls back to the
        // doctor's MQTT topic: `crate::webhook`.)
        return vec![registry.consortium.duty_desk.clone()];
    }
    out
}

/// The wire form of a kept event, times in the patient's zone (`None` when the registry
/// lacks its patient).
pub fn wire_event(registry: &Registry, e: &AlertEventRecord) -> Option<AlertEvent> {
    let tz = registry
        .patients
        .get(&e.patient_id)
        .map_or(chrono_tz::Asia::Shanghai, |p| registry.timezone_of(p));
    let local = |t: DateTime<Utc>| -> DateTime<FixedOffset> { t.with_timezone(&tz).fixed_offset() };
    let evidence: Vec<Evidence> = e
        .evidence
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| serde_json::from_value(v.clone()).ok())
                .collect()
        })
        .unwrap_or_default();
    Some(AlertEvent {
        alert_id: AlertId::parse(&e.alert_id).ok()?,
        event: match e.change.as_str() {
            "opened" => AlertEventKind::Opened,
            "upgraded" => AlertEventKind::Upgraded,
            "escalated" => AlertEventKind::Escalated,
            "acknowledged" => AlertEventKind::Acknowledged,
            _ => AlertEventKind::Resolved,
        },
        patient_id: e.patient_id.clone(),
        rule: e.rule.clone(),
        severity: Severity::parse(&e.severity).ok()?,
        opened_at: local(e.opened_at),
        evidence,
        display: e.display.clone(),
        escalation_level: e.level.clamp(1, 3),
        ack_url: format!("/api/v1/alerts/{}/ack", e.alert_id),
    })
}

/// The options of a connection that publishes at QoS 1 (the deliverer, the gap
/// detector): keep-alive 30 s, small incoming packets, TLS when given.
pub(crate) fn publisher_options(
    client_id: &str,
    host: &str,
    port: u16,
    tls: Option<crate::intake::Tls>,
) -> MqttOptions {
    let mut options = MqttOptions::new(client_id, host, port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(64 * 1024, 1024 * 1024);
    if let Some(tls) = tls {
        let _ = rustls::crypto::ring::default_provider().install_default();
        options.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Simple {
                ca: tls.ca_pem,
                alpn: None,
                client_auth: tls.client_auth,
            },
        ));
    }
    options
}

/// One publish to make: (event id, doctor, topic, payload, the receipt of the reading
/// behind it when it is observed for the latency histogram).
type Send = (i64, DoctorId, String, Vec<u8>, Option<DateTime<Utc>>);

/// One MQTT connection of the deliverer (and of the gap detector), replaced as a whole
/// after it is lost.
///
/// PUBACKs are matched to publishes by packet id: publishes go out in the order they
/// were requested, each takes the next sequence number ([`Tracker`]). When a connection
/// drops, the client may drop what was queued or in flight (a clean session) or resend
/// it, and reuse its packet ids, so nothing from before can be matched for sure: the
/// client, its event loop and its tracker are dropped together, and the deliverer's
/// retry publishes what was not acknowledged on a fresh connection.
pub(crate) struct Conn {
    pub(crate) client: AsyncClient,
    pub(crate) tracker: Arc<Mutex<Tracker>>,
    /// Rung at each PUBACK and when the connection is lost.
    pub(crate) pubacks: Arc<tokio::sync::Notify>,
    /// Set once a connection that was up has failed.
    lost: Arc<std::sync::atomic::AtomicBool>,
    poller: tokio::task::JoinHandle<()>,
}

impl Conn {
    pub(crate) fn open(options: MqttOptions, clock: Arc<dyn Clock>) -> Conn {
        let (client, mut eventloop) = AsyncClient::new(options, 1024);
        let tracker = Arc::new(Mutex::new(Tracker::default()));
        let pubacks = Arc::new(tokio::sync::Notify::new());
        let lost = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (t, rung, gone) = (tracker.clone(), pubacks.clone(), lost.clone());
        let poller = tokio::spawn(async move {
            let mut up = false;
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(rumqttc::Outgoing::Publish(pkid))) => {
                        if let Ok(mut t) = t.lock() {
                            t.sent(pkid);
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        if let Ok(mut t) = t.lock() {
                            t.acked(ack.pkid, clock.now());
                        }
                        rung.notify_one();
                    }
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        up = true;
                        if let Ok(mut t) = t.lock() {
                            t.connected = true;
                        }
                    }
                    Ok(_) => {}
                    // Not connected yet: nothing was sent, keep trying.
                    Err(_) if !up => tokio::time::sleep(Duration::from_millis(200)).await,
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
            pubacks,
            lost,
            poller,
        }
    }

    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Acquire)
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.poller.abort();
    }
}

/// An MQTT delivery given up, and where it goes next.
struct GivenUp {
    event: i64,
    doctor: String,
    attempts: u32,
    error: String,
    fallbacks: Vec<(DoctorId, &'static str)>,
}

/// Records each delivery given up, its fallback and its operational alert (one
/// transaction each); false when the store failed (then all are tried again).
async fn give_up(
    store: &SqliteStore,
    stats: &DeliveryStats,
    given_up: &[GivenUp],
    now: DateTime<Utc>,
) -> bool {
    for g in given_up {
        let fallbacks: Vec<(&str, &str)> = g
            .fallbacks
            .iter()
            .map(|(d, via)| (d.as_str(), *via))
            .collect();
        match store
            .give_up_delivery(
                (g.event, &g.doctor, "mqtt"),
                g.attempts,
                &g.error,
                &fallbacks,
                now,
            )
            .await
        {
            Ok(None) => {} // delivered meanwhile, or given up already
            Ok(Some(queued)) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                let next = if queued {
                    "sent on the next channel (the operational alert says which)"
                } else {
                    "no other channel could take it (the operational alert says why)"
                };
                eprintln!(
                    "vigil: operational alert: alert event {} to doctor {} given up after {} attempts ({}); {next}",
                    g.event, g.doctor, g.attempts, g.error
                );
            }
            Err(e) => {
                eprintln!(
                    "vigil: a delivery given up could not be recorded (it will be tried again): {e}"
                );
                return false;
            }
        }
    }
    true
}

async fn run(
    config: DeliveryConfig,
    store: SqliteStore,
    registry: CurrentRegistry,
    clock: Arc<dyn Clock>,
    (stats, wake): (Arc<DeliveryStats>, Option<Arc<tokio::sync::Notify>>),
    stopped: watch::Receiver<bool>,
) {
    let options = publisher_options(&config.client_id, &config.host, config.port, config.tls);
    let mut conn = Conn::open(options.clone(), clock.clone());
    let mut cursor = store.sink_cursor("delivery").await.unwrap_or(0);
    stats.cursor.store(cursor, Ordering::Relaxed);
    'outer: loop {
        if *stopped.borrow() {
            break;
        }
        let now = clock.now();
        let reg = registry();
        let events = store
            .alert_events_after(cursor, 200)
            .await
            .unwrap_or_default();
        let last = events.last().map(|(id, _)| *id);
        let mut held = Vec::new();
        let mut sends: Vec<Send> = Vec::new();
        for (id, e) in &events {
            let doctors = recipients(&reg, e, e.at);
            if doctors.is_empty() {
                continue; // the dashboard's stream only
            }
            let Some(wire) = wire_event(&reg, e) else {
                stats.unroutable.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let payload = encode_alert(&wire);
            // Opened and upgraded events happen at the receipt of their reading.
            let since = matches!(e.change.as_str(), "opened" | "upgraded").then_some(e.at);
            for d in doctors {
                match e.deliver_at {
                    Some(due) if due > now => {
                        held.push((*id, d.to_string(), "mqtt".to_owned(), due))
                    }
                    _ => sends.push((
                        *id,
                        d.clone(),
                        Topic::DoctorAlerts(d).to_string(),
                        payload.clone(),
                        if e.deliver_at.is_some() { None } else { since },
                    )),
                }
            }
        }
        // Held deliveries whose time has come (quiet hours, fallbacks). One that
        // cannot be rendered (its event or patient gone) is given up, so it neither
        // waits forever nor crowds out the others.
        let mut given_up: Vec<GivenUp> = Vec::new();
        for (id, doctor, _) in store.due_deliveries(now).await.unwrap_or_default() {
            let Ok(event) = store.alert_event(id).await else {
                continue; // the store is busy: next round
            };
            match (event, DoctorId::parse(&doctor)) {
                (Some(e), Ok(d)) if let Some(wire) = wire_event(&reg, &e) => sends.push((
                    id,
                    d.clone(),
                    Topic::DoctorAlerts(d).to_string(),
                    encode_alert(&wire),
                    None,
                )),
                _ => given_up.push(GivenUp {
                    event: id,
                    doctor,
                    attempts: 0,
                    error: "it cannot be rendered (its event or patient is gone)".to_owned(),
                    fallbacks: Vec::new(),
                }),
            }
        }
        // Publish, and record only what the broker acknowledged, message by message.
        let mut delivered = Vec::new();
        let mut latencies = Vec::new();
        let mut todo: std::collections::VecDeque<(Send, u32)> =
            sends.into_iter().map(|x| (x, 0)).collect();
        while !todo.is_empty() {
            if conn.is_lost() {
                conn = Conn::open(options.clone(), clock.clone());
            }
            // A wave of at most WAVE publishes: fewer than the client keeps
            // unacknowledged (its window), so a broker that stops acknowledging can
            // neither stall the client's queue nor leave a publish waiting for a slot.
            let mut waiting = Vec::new();
            let wave = todo.len().min(WAVE);
            for (send, attempts) in todo.drain(..wave) {
                let seq = match conn.tracker.lock() {
                    Ok(mut t) => t.reserve(),
                    Err(_) => break 'outer,
                };
                // While the broker is away the client's request queue fills up: a
                // stop must not wait for it. A publish refused because the connection
                // is gone is never acknowledged: the retry takes it.
                let mut s = stopped.clone();
                tokio::select! {
                    _ = conn.client.publish(send.2.as_str(), QoS::AtLeastOnce, false, send.3.clone()) => {}
                    _ = s.changed() => break 'outer,
                }
                waiting.push((send, attempts, seq));
            }
            let deadline = tokio::time::Instant::now() + config.ack_timeout;
            loop {
                let all = conn
                    .tracker
                    .lock()
                    .map(|t| waiting.iter().all(|(_, _, seq)| t.is_acked(*seq)))
                    .unwrap_or(false);
                if all || conn.is_lost() || tokio::time::Instant::now() >= deadline {
                    break;
                }
                let mut s = stopped.clone();
                tokio::select! {
                    _ = conn.pubacks.notified() => {}
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = s.changed() => break 'outer,
                }
            }
            // An attempt counts only if the connection was up throughout: an outage
            // delays delivery, it does not use up the attempts.
            let up = !conn.is_lost() && conn.tracker.lock().is_ok_and(|t| t.connected);
            let mut unacknowledged = false;
            for (send, attempts, seq) in waiting {
                let attempts = attempts + u32::from(up);
                let acked = conn.tracker.lock().ok().and_then(|mut t| t.take(seq));
                if let Some(acked_at) = acked {
                    if let Some(since) = send.4 {
                        latencies.push((acked_at - since).to_std().unwrap_or_default());
                    }
                    delivered.push((send.0, send.1.to_string(), "mqtt".to_owned(), acked_at));
                } else if attempts >= config.max_attempts {
                    // The broker keeps refusing this one: it must not hold up the
                    // others (CRITICAL ones behind it) longer than its attempts. Given
                    // up, to the next channel.
                    unacknowledged = true;
                    given_up.push(GivenUp {
                        event: send.0,
                        doctor: send.1.to_string(),
                        attempts,
                        error: "the broker never acknowledged it".to_owned(),
                        fallbacks: fallbacks(&reg, &send.1),
                    });
                } else {
                    unacknowledged = true;
                    stats.retries.fetch_add(1, Ordering::Relaxed);
                    todo.push_back((send, attempts));
                }
            }
            if unacknowledged {
                // Publishes the broker holds unacknowledged hold the client's window
                // too, and ones made while it was away wait in the client's queue:
                // start again on a new connection (what was not acknowledged is
                // published again there).
                conn = Conn::open(options.clone(), clock.clone());
                let mut s = stopped.clone();
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = s.changed() => break 'outer,
                }
            }
        }
        // Given up before the cursor moves past them: a crash in between publishes
        // them again rather than forgetting them.
        if !give_up(&store, &stats, &given_up, now).await {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        if !held.is_empty() || !delivered.is_empty() || last.is_some() {
            if store
                .record_deliveries(&held, &delivered, &[], last, now)
                .await
                .is_err()
            {
                // Not recorded: published again next time (at least once).
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            for d in latencies {
                stats.latency.observe(d);
            }
            stats
                .delivered
                .fetch_add(delivered.len() as u64, Ordering::Relaxed);
            stats.held.fetch_add(held.len() as u64, Ordering::Relaxed);
            if let Some(l) = last {
                cursor = l;
                stats.cursor.store(cursor, Ordering::Relaxed);
            }
        }
        if events.len() < 200 {
            // Woken when the rule runner keeps events; the timeout also brings held
            // (quiet-hour) events when they fall due.
            let mut s = stopped.clone();
            let woken = async {
                match &wake {
                    Some(w) => w.notified().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = woken => {}
                _ = s.changed() => {}
            }
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.client.disconnect()).await;
    drop(conn);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Registry {
        Registry::parse(&registry_text()).unwrap()
    }

    fn registry_text() -> String {
        r#"
[consortium]
id = "c"
duty_desk = "d-duty"
[[institution]]
id = "hub"
tier = "hub"
name = "Hub"
timezone = "Asia/Shanghai"
[[institution]]
id = "chc"
tier = "community"
hub = "hub"
name = "CHC"
timezone = "Asia/Shanghai"
[[doctor]]
id = "d-fam"
name = "Family"
institution = "chc"
roles = ["family_doctor"]
channels = { mqtt = false, sse = false }
[[doctor]]
id = "d-spec"
name = "Specialist"
institution = "hub"
roles = ["specialist"]
[[doctor]]
id = "d-duty"
name = "Duty"
institution = "hub"
roles = ["duty_desk"]
[[patient]]
id = "p-1"
institution = "chc"
care_team = { responsible = "d-fam", specialist = "d-spec" }
"#
        .to_owned()
    }

    fn event(severity: &str, level: u8) -> AlertEventRecord {
        AlertEventRecord {
            alert_id: "00000000000000aa".into(),
            patient_id: "p-1".parse().unwrap(),
            family: "spo2".into(),
            opened_at: DateTime::from_timestamp(1_764_547_200, 0).unwrap(),
            ordinal: 0,
            display: "SpO2 88 %".into(),
            evidence: serde_json::json!([]),
            change: "opened".into(),
            rule: "spo2_low".into(),
            severity: severity.into(),
            level,
            at: DateTime::from_timestamp(1_764_547_200, 0).unwrap(),
            deliver_at: None,
        }
    }

    #[test]
    fn an_event_reaches_every_level_up_to_its_own_honouring_preferences_except_for_critical() {
        let r = registry();
        let t = DateTime::from_timestamp(1_764_547_200, 0).unwrap();
        let ids = |v: Vec<DoctorId>| v.into_iter().map(|d| d.to_string()).collect::<Vec<_>>();
        // The family doctor turned MQTT and the stream off: a HIGH alert at level 1
        // goes to the duty desk rather than nobody; a CRITICAL one reaches the family
        // doctor whatever the preference.
        assert_eq!(ids(recipients(&r, &event("HIGH", 1), t)), ["d-duty"]);
        // With the stream on, the family doctor sees it there: no MQTT message at all.
        let streams = Registry::parse(&registry_text().replace(
            "channels = { mqtt = false, sse = false }",
            "channels = { mqtt = false }",
        ))
        .unwrap();
        assert!(recipients(&streams, &event("HIGH", 1), t).is_empty());
        assert!(wants(
            &streams,
            &"d-fam".parse().unwrap(),
            &event("HIGH", 1),
            |c| c.sse
        ));
        assert_eq!(ids(recipients(&r, &event("CRITICAL", 1), t)), ["d-fam"]);
        // No on-call window: level 2 is the specialist; level 3 the duty desk.
        assert_eq!(ids(recipients(&r, &event("HIGH", 2), t)), ["d-spec"]);
        assert_eq!(
            ids(recipients(&r, &event("CRITICAL", 3), t)),
            ["d-duty", "d-fam", "d-spec"]
        );
        let wire = wire_event(&r, &event("CRITICAL", 1)).unwrap();
        assert_eq!(wire.ack_url, "/api/v1/alerts/00000000000000aa/ack");
        assert_eq!(wire.opened_at.offset().local_minus_utc(), 8 * 3600);
    }
}
