//! Alert delivery to doctors' webhooks: each alert event goes, as an HTTP POST, to the
//! webhook of every doctor its escalation level reaches who has one (registry:
//! `channels.webhook`, `channels.webhook_format`). The receiver's contract is in
//! `docs/webhooks.md`.
//!
//! - **Outbox in the store**: the deliverer follows `alert_events` by its own cursor
//!   (`webhook`) and queues one `pending` row per (event, doctor) in `alert_deliveries`,
//!   in the same transaction as the cursor. Attempts are made from those rows, so a
//!   restart resumes them: at least once, with a stable `alert_id` and a stable
//!   `X-Vigil-Delivery` id the receiver can deduplicate by.
//! - **Delivered** means the receiver answered 2xx (and, for the WeCom and DingTalk
//!   robots, `"errcode":0` in the body, since they answer 200 to refusals too).
//!   Anything else (another status, a timeout, a refused connection) is a failed
//!   attempt, kept with its reason in `last_error`.
//! - **Retries with backoff**: attempt n+1 waits `backoff · 2^(n-1)`, at most
//!   `max_backoff`. After `attempts` failures the delivery is given up: the row is
//!   `failed`, the event falls back to the doctor's MQTT topic (held for the MQTT
//!   deliverer, unless the doctor has it there already), and an operational alert
//!   (`webhook_failed`) is raised, in one transaction.
//! - **Quiet hours**: a held MEDIUM/LOW event is first tried at its `deliver_at`.
//! - Slow receivers do not hold up the others: up to `concurrency` attempts run at
//!   once, each bounded by `timeout`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;
use tokio::task::JoinSet;
use vigil_model::clock::Clock;
use vigil_registry::{Registry, WebhookFormat};
use vigil_store::{AlertEventRecord, SqliteStore};
use vigil_wire::alert::{AlertEvent, encode_alert};

use crate::deliver::{routed, wire_event};
use crate::rules::CurrentRegistry;

/// The channel name in `alert_deliveries`, and the deliverer's cursor.
pub const CHANNEL: &str = "webhook";

/// Webhook secrets: one for the deployment, and per doctor where a receiver has its
/// own (a DingTalk robot's 加签 secret). Never printed.
#[derive(Clone, Default)]
pub struct WebhookSecrets {
    pub default: Option<String>,
    pub per_doctor: HashMap<String, String>,
}

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSecrets")
            .field("default", &self.default.as_ref().map(|_| "<set>"))
            .field("per_doctor", &self.per_doctor.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl WebhookSecrets {
    /// The key signing what goes to `doctor` in `format`:
    /// - `vigil`: the doctor's own secret, else one derived from the deployment's
    ///   (hex of HMAC-SHA256(secret, `"vigil-webhook-key:{doctor}"`), printed by
    ///   `vigil webhook-key`), so no receiver can sign for another;
    /// - `dingtalk`: the robot's own 加签 secret (per doctor only: DingTalk makes it);
    /// - `wecom`: none (the key in the URL is the credential).
    pub fn key_for(&self, doctor: &str, format: WebhookFormat) -> Option<String> {
        let own = self.per_doctor.get(doctor).cloned();
        match format {
            WebhookFormat::Vigil => own.or_else(|| {
                self.default
                    .as_ref()
                    .map(|master| derive_key(master, doctor))
            }),
            WebhookFormat::Dingtalk => own,
            WebhookFormat::Wecom => None,
        }
    }
}

/// The key of one doctor's receiver, derived from the deployment's secret.
pub fn derive_key(master: &str, doctor: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, master.as_bytes());
    hex(ring::hmac::sign(&key, format!("vigil-webhook-key:{doctor}").as_bytes()).as_ref())
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The default markdown of the WeCom and DingTalk robots (`docs/webhooks.md`).
pub const DEFAULT_TEMPLATE: &str = "**Vigil {severity_zh} {severity}** · {event_zh}\n\
> 规则 Rule: {rule}\n\
> 患者 Patient: {patient_id}\n\
> 数值 Value: **{display}**\n\
> 级别 Level: {level}\n\
> 开始 Opened: {opened_at}\n\n\
[确认 Acknowledge]({ack_url}) · alert {alert_id}";

#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub secrets: WebhookSecrets,
    /// One attempt's bound (connect, send, answer).
    pub timeout: Duration,
    /// Attempts before a delivery is given up and falls back.
    pub attempts: u32,
    /// The wait before the first retry; doubled at each further one.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Attempts in flight at once.
    pub concurrency: usize,
    /// Prefixed to the event's `ack_url` in the robots' markdown (`https://vigil.example`).
    pub public_url: String,
    /// The robots' markdown (placeholders in `docs/webhooks.md`).
    pub template: String,
}

impl Default for WebhookConfig {
    fn default() -> WebhookConfig {
        WebhookConfig {
            secrets: WebhookSecrets::default(),
            timeout: Duration::from_secs(10),
            attempts: 6,
            backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(300),
            concurrency: 16,
            public_url: String::new(),
            template: DEFAULT_TEMPLATE.to_owned(),
        }
    }
}

impl WebhookConfig {
    /// The wait after the `failed`-th failed attempt (1-based).
    pub fn backoff_after(&self, failed: u32) -> Duration {
        let factor = 1u32 << failed.saturating_sub(1).min(20);
        self.backoff.saturating_mul(factor).min(self.max_backoff)
    }
}

/// Counters of the webhook deliverer.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// (event, doctor) deliveries the receiver accepted.
    pub delivered: AtomicU64,
    /// Failed attempts that will be tried again.
    pub retries: AtomicU64,
    /// Deliveries given up (each raised an operational alert).
    pub failed: AtomicU64,
    /// Given-up deliveries queued on the doctor's MQTT topic instead.
    pub fallbacks: AtomicU64,
    pub cursor: AtomicI64,
}

/// A running webhook deliverer; stop it with [`WebhookDeliverer::shutdown`].
#[derive(Debug)]
pub struct WebhookDeliverer {
    pub stats: Arc<WebhookStats>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookDeliverer {
    /// Starts delivering; fails only when the HTTP client cannot be built (no TLS).
    pub fn start(
        config: WebhookConfig,
        store: SqliteStore,
        registry: CurrentRegistry,
        clock: Arc<dyn Clock>,
    ) -> Result<WebhookDeliverer, String> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("webhooks: the HTTP client cannot be built: {e}"))?;
        let stats = Arc::new(WebhookStats::default());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(
            (Arc::new(config), client),
            store,
            registry,
            clock,
            stats.clone(),
            stopped,
        ));
        Ok(WebhookDeliverer { stats, stop, task })
    }

    /// Stops; attempts in flight are abandoned and made again after the next start.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// `X-Vigil-Signature` of a body: `v1=` and the hex HMAC-SHA256, keyed by the
/// receiver's key, of `"{timestamp}.{delivery}.{body}"`, where `timestamp` is
/// `X-Vigil-Timestamp` (Unix seconds) and `delivery` is `X-Vigil-Delivery`.
pub fn signature(key: &str, timestamp: i64, delivery: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(format!("{timestamp}.{delivery}.").as_bytes());
    ctx.update(body);
    format!("v1={}", hex(ctx.sign().as_ref()))
}

/// Checks a `X-Vigil-Signature` header in constant time, as a receiver does (it must
/// also refuse timestamps far from its own clock).
pub fn verify_signature(
    key: &str,
    timestamp: i64,
    delivery: &str,
    body: &[u8],
    header: &str,
) -> bool {
    let Some(tag) = header.strip_prefix("v1=").and_then(decode_hex) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
    let mut message = format!("{timestamp}.{delivery}.").into_bytes();
    message.extend_from_slice(body);
    ring::hmac::verify(&key, &message, &tag).is_ok()
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// DingTalk's 加签: Base64 of the HMAC-SHA256, keyed by the robot's secret, of
/// `"{timestamp_ms}\n{secret}"`, sent (URL-encoded) as `sign` beside `timestamp`.
pub fn dingtalk_sign(secret: &str, timestamp_ms: i64) -> String {
    use base64::Engine;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, format!("{timestamp_ms}\n{secret}").as_bytes());
    base64::engine::general_purpose::STANDARD.encode(tag.as_ref())
}

/// The robots' markdown of an event: `template` with its placeholders filled.
pub fn render_markdown(template: &str, wire: &AlertEvent, public_url: &str) -> String {
    use vigil_model::vocab::Severity;
    use vigil_wire::alert::AlertEventKind;
    let severity_zh = match wire.severity {
        Severity::Critical => "危急值",
        Severity::High => "高危",
        Severity::Medium => "中危",
        Severity::Low => "低危",
    };
    let (event, event_zh) = match wire.event {
        AlertEventKind::Opened => ("opened", "新警报"),
        AlertEventKind::Upgraded => ("upgraded", "加重"),
        AlertEventKind::Escalated => ("escalated", "升级"),
        AlertEventKind::Acknowledged => ("acknowledged", "已确认"),
        AlertEventKind::Resolved => ("resolved", "已处理"),
    };
    let ack_url = format!("{}{}", public_url.trim_end_matches('/'), wire.ack_url);
    [
        ("{severity_zh}", severity_zh.to_owned()),
        ("{severity}", wire.severity.as_str().to_owned()),
        ("{event_zh}", event_zh.to_owned()),
        ("{event}", event.to_owned()),
        ("{rule}", wire.rule.clone()),
        ("{patient_id}", wire.patient_id.to_string()),
        ("{display}", wire.display.clone()),
        ("{level}", wire.escalation_level.to_string()),
        ("{opened_at}", wire.opened_at.to_rfc3339()),
        ("{ack_url}", ack_url),
        ("{alert_id}", wire.alert_id.to_string()),
    ]
    .iter()
    .fold(template.to_owned(), |text, (k, v)| text.replace(k, v))
}

/// One request: where, what, and with which headers.
#[derive(Debug)]
pub struct Request {
    pub url: String,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

/// The request delivering `wire` (alert event row `event_id`) to `doctor` at `now`.
pub fn request(
    config: &WebhookConfig,
    (url, format): (&str, WebhookFormat),
    doctor: &str,
    event_id: i64,
    wire: &AlertEvent,
    now: DateTime<Utc>,
) -> Result<Request, String> {
    let key = config.secrets.key_for(doctor, format);
    let delivery = format!("{event_id}-{doctor}");
    let mut headers = vec![
        ("content-type", "application/json".to_owned()),
        (
            "user-agent",
            concat!("vigil/", env!("CARGO_PKG_VERSION")).to_owned(),
        ),
        ("x-vigil-event", "vigil.alert.v1".to_owned()),
        ("x-vigil-alert-id", wire.alert_id.to_string()),
        ("x-vigil-delivery", delivery.clone()),
    ];
    let markdown = || render_markdown(&config.template, wire, &config.public_url);
    let title = || format!("Vigil {} {}", wire.severity.as_str(), wire.rule);
    let (url, body) = match format {
        WebhookFormat::Vigil => {
            let Some(key) = key else {
                return Err("no webhook secret is configured to sign it".to_owned());
            };
            let body = encode_alert(wire);
            let ts = now.timestamp();
            headers.push(("x-vigil-timestamp", ts.to_string()));
            headers.push(("x-vigil-signature", signature(&key, ts, &delivery, &body)));
            (url.to_owned(), body)
        }
        WebhookFormat::Wecom => (
            url.to_owned(),
            serde_json::to_vec(&serde_json::json!({
                "msgtype": "markdown",
                "markdown": { "content": markdown() },
            }))
            .unwrap_or_default(),
        ),
        WebhookFormat::Dingtalk => {
            let mut url = reqwest::Url::parse(url).map_err(|e| format!("bad URL: {e}"))?;
            if let Some(secret) = key {
                let ms = now.timestamp_millis();
                url.query_pairs_mut()
                    .append_pair("timestamp", &ms.to_string())
                    .append_pair("sign", &dingtalk_sign(&secret, ms));
            }
            (
                url.to_string(),
                serde_json::to_vec(&serde_json::json!({
                    "msgtype": "markdown",
                    "markdown": { "title": title(), "text": markdown() },
                }))
                .unwrap_or_default(),
            )
        }
    };
    Ok(Request { url, body, headers })
}

/// Whether the receiver's answer means it took the event: 2xx, and for the robots
/// (which answer 200 to refusals) `"errcode":0`. The reason kept for a refusal is the
/// status, and the robots' errcode and errmsg; never the body (a receiver that echoes
/// the request would put the alert's content into logs and operational alerts).
pub fn accepted(format: WebhookFormat, status: u16, body: &[u8]) -> Result<(), String> {
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}"));
    }
    if format == WebhookFormat::Vigil {
        return Ok(());
    }
    let answer = serde_json::from_slice::<serde_json::Value>(body).ok();
    let code = answer
        .as_ref()
        .and_then(|v| v.get("errcode"))
        .and_then(serde_json::Value::as_i64);
    let message: String = answer
        .as_ref()
        .and_then(|v| v.get("errmsg"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("")
        .chars()
        .take(100)
        .collect();
    match code {
        Some(0) => Ok(()),
        Some(code) => Err(format!("the robot refused it: errcode {code} {message}")),
        None => Err(format!("HTTP {status} without an errcode from the robot")),
    }
}

/// Why an attempt failed, whether trying again could help (a missing secret or a
/// doctor without a webhook any more cannot: such a delivery is given up at once), and
/// whether the event can fall back to the doctor's MQTT topic (not when it cannot be
/// rendered at all: its patient left the registry).
#[derive(Debug)]
struct Failure {
    reason: String,
    permanent: bool,
    fallback: bool,
}

impl Failure {
    fn transient(reason: String) -> Failure {
        Failure {
            reason,
            permanent: false,
            fallback: true,
        }
    }
}

/// One attempt's result: (event id, doctor, attempts made, outcome).
type Attempt = (i64, String, u32, Result<(), Failure>);

async fn attempt(
    client: reqwest::Client,
    config: Arc<WebhookConfig>,
    (event_id, doctor, attempts): (i64, String, u32),
    target: Result<(String, WebhookFormat, AlertEvent), Failure>,
    now: DateTime<Utc>,
) -> Attempt {
    let outcome = async {
        let (url, format, wire) = target?;
        let req =
            request(&config, (&url, format), &doctor, event_id, &wire, now).map_err(|reason| {
                Failure {
                    reason,
                    permanent: true,
                    fallback: true,
                }
            })?;
        let mut builder = client.post(&req.url).body(req.body);
        for (k, v) in &req.headers {
            builder = builder.header(*k, v);
        }
        let response = builder
            .send()
            .await
            .map_err(|e| Failure::transient(describe(e)))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| Failure::transient(describe(e)))?;
        accepted(format, status, &body).map_err(Failure::transient)
    }
    .await;
    (event_id, doctor, attempts + 1, outcome)
}

/// A transport failure as a person reads it (no URL: it may hold a robot's key).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        format!("could not connect: {e}")
    } else {
        e.to_string()
    }
}

/// What an event is sent as to `doctor`: URL, format and body, from the registry now.
fn target(
    reg: &Registry,
    doctor: &str,
    event: Option<&AlertEventRecord>,
) -> Result<(String, WebhookFormat, AlertEvent), Failure> {
    let gone = |reason: &str, fallback: bool| Failure {
        reason: reason.to_owned(),
        permanent: true,
        fallback,
    };
    let d = vigil_model::DoctorId::parse(doctor)
        .ok()
        .and_then(|id| reg.doctors.get(&id))
        .ok_or_else(|| gone("the doctor is no longer in the registry", true))?;
    let url = d
        .channels
        .webhook
        .clone()
        .ok_or_else(|| gone("the doctor has no webhook any more", true))?;
    let event = event.ok_or_else(|| gone("the alert event is gone from the store", false))?;
    let wire = wire_event(reg, event)
        .ok_or_else(|| gone("the patient is no longer in the registry", false))?;
    Ok((url, d.channels.webhook_format, wire))
}

/// Queues the webhook deliveries of the events after the cursor; returns how many
/// events were looked at.
async fn queue_new(
    store: &SqliteStore,
    reg: &Registry,
    cursor: &mut i64,
    now: DateTime<Utc>,
) -> Result<usize, vigil_store::Error> {
    let events = store.alert_events_after(*cursor, 200).await?;
    let Some(last) = events.last().map(|(id, _)| *id) else {
        return Ok(0);
    };
    let mut rows = Vec::new();
    for (id, e) in &events {
        for d in routed(reg, e, e.at) {
            if reg
                .doctors
                .get(&d)
                .is_some_and(|doc| doc.channels.webhook.is_some())
            {
                rows.push((*id, d.to_string(), e.deliver_at.unwrap_or(now)));
            }
        }
    }
    store
        .queue_deliveries(CHANNEL, &rows, CHANNEL, Some(last), now)
        .await?;
    *cursor = last;
    Ok(events.len())
}

async fn run(
    (config, client): (Arc<WebhookConfig>, reqwest::Client),
    store: SqliteStore,
    registry: CurrentRegistry,
    clock: Arc<dyn Clock>,
    stats: Arc<WebhookStats>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut cursor = store.sink_cursor(CHANNEL).await.unwrap_or(0);
    stats.cursor.store(cursor, Ordering::Relaxed);
    // The (event, doctor) of each attempt in flight, by task: a task that panics is
    // forgotten here too, so its delivery is tried again.
    let mut in_flight: HashMap<tokio::task::Id, (i64, String)> = HashMap::new();
    let mut tasks: JoinSet<Attempt> = JoinSet::new();
    loop {
        if *stopped.borrow() {
            break;
        }
        let now = clock.now();
        let reg = registry();
        let looked = match queue_new(&store, &reg, &mut cursor, now).await {
            Ok(n) => n,
            Err(e) => {
                eprintln!("vigil: webhook deliveries could not be queued (retrying): {e}");
                0
            }
        };
        stats.cursor.store(cursor, Ordering::Relaxed);
        let free = config.concurrency.saturating_sub(in_flight.len());
        if free > 0 {
            let due = store
                .pending_deliveries(CHANNEL, now, (free + in_flight.len()) as u32)
                .await
                .unwrap_or_default();
            let busy: HashSet<(i64, String)> = in_flight.values().cloned().collect();
            for (event_id, doctor, attempts) in due {
                if in_flight.len() >= config.concurrency
                    || busy.contains(&(event_id, doctor.clone()))
                {
                    continue;
                }
                // A store error is not the event being gone: try again next round.
                let Ok(event) = store.alert_event(event_id).await else {
                    continue;
                };
                let target = target(&reg, &doctor, event.as_ref());
                let handle = tasks.spawn(attempt(
                    client.clone(),
                    config.clone(),
                    (event_id, doctor.clone(), attempts),
                    target,
                    now,
                ));
                in_flight.insert(handle.id(), (event_id, doctor));
            }
        }
        // Wait for an attempt to end, new events, a retry falling due, or the stop.
        let pause = if looked >= 200 {
            Duration::ZERO
        } else {
            Duration::from_millis(250)
        };
        tokio::select! {
            Some(first) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                // Settle it and whatever else has finished before looking again.
                let mut next = Some(first);
                while let Some(done) = next {
                    match done {
                        Ok((id, attempt)) => {
                            in_flight.remove(&id);
                            settle(&store, &config, &stats, attempt, clock.now()).await;
                        }
                        Err(e) => {
                            in_flight.remove(&e.id());
                            eprintln!("vigil: a webhook attempt failed inside ({e}); it is made again");
                        }
                    }
                    next = tasks.try_join_next_with_id();
                }
            }
            _ = tokio::time::sleep(pause) => {}
            // Stopped, or the handle dropped without a stop.
            r = stopped.changed() => if r.is_err() { break },
        }
    }
    tasks.abort_all();
}

/// Records an attempt's outcome: delivered, retried later, or given up with fallback.
async fn settle(
    store: &SqliteStore,
    config: &WebhookConfig,
    stats: &WebhookStats,
    (event_id, doctor, attempts, outcome): Attempt,
    now: DateTime<Utc>,
) {
    let key = (event_id, doctor.as_str(), CHANNEL);
    let recorded = match &outcome {
        Ok(()) => {
            let r = store.record_attempt(key, attempts, Ok(()), now).await;
            if r.is_ok() {
                stats.delivered.fetch_add(1, Ordering::Relaxed);
            }
            r
        }
        Err(Failure {
            reason, permanent, ..
        }) if !permanent && attempts < config.attempts => {
            let retry_at = now
                + chrono::Duration::from_std(config.backoff_after(attempts)).unwrap_or_default();
            let r = store
                .record_attempt(key, attempts, Err((reason, retry_at)), now)
                .await;
            if r.is_ok() {
                stats.retries.fetch_add(1, Ordering::Relaxed);
            }
            r
        }
        Err(Failure {
            reason: error,
            fallback,
            ..
        }) => {
            // The doctor's MQTT topic is the next channel; the operational alert
            // tells the people who run the platform.
            let next = [(doctor.as_str(), "mqtt")];
            let fallbacks: &[(&str, &str)] = if *fallback { &next } else { &[] };
            match store
                .give_up_delivery(key, attempts, error, fallbacks, now)
                .await
            {
                Ok(None) => Ok(()), // no longer pending: settled elsewhere
                Ok(Some(queued)) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    if queued {
                        stats.fallbacks.fetch_add(1, Ordering::Relaxed);
                    }
                    eprintln!(
                        "vigil: operational alert: the webhook of doctor {doctor} gave up after {attempts} attempts for alert event {event_id} ({error}); {}",
                        match (fallback, queued) {
                            (false, _) => "it cannot be sent on any channel",
                            (true, true) => "sent to the doctor's MQTT topic instead",
                            (true, false) => "the doctor has it on MQTT already",
                        }
                    );
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
    };
    if let Err(e) = recorded {
        // Not recorded: the row stays pending and is tried again (at least once).
        eprintln!("vigil: a webhook attempt could not be recorded (it will be retried): {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_and_any_change_breaks_them() {
        let body = br#"{"schema":"vigil.alert.v1"}"#;
        let sig = signature("s3cret", 1_764_547_200, "7-d-0001", body);
        assert!(sig.starts_with("v1=") && sig.len() == 67, "{sig}");
        let check = |key: &str, ts: i64, delivery: &str, body: &[u8], sig: &str| {
            verify_signature(key, ts, delivery, body, sig)
        };
        assert!(check("s3cret", 1_764_547_200, "7-d-0001", body, &sig));
        assert!(!check("other", 1_764_547_200, "7-d-0001", body, &sig));
        assert!(!check("s3cret", 1_764_547_201, "7-d-0001", body, &sig));
        // A replay under another delivery id (to defeat deduplication) fails.
        assert!(!check("s3cret", 1_764_547_200, "8-d-0001", body, &sig));
        assert!(!check("s3cret", 1_764_547_200, "7-d-0001", b"{}", &sig));
        assert!(!check("s3cret", 1_764_547_200, "7-d-0001", body, &sig[3..]));
        assert!(!check("s3cret", 1_764_547_200, "7-d-0001", body, "v1=zz"));
    }

    #[test]
    fn signatures_and_keys_match_an_independent_implementation() {
        // Computed with Python's hmac module:
        // hmac.new(b"s3cret", b'1764547200.7-d-0001.{"schema":"vigil.alert.v1"}', sha256)
        assert_eq!(
            signature(
                "s3cret",
                1_764_547_200,
                "7-d-0001",
                br#"{"schema":"vigil.alert.v1"}"#
            ),
            "v1=97a9c0c753cffdd3a09e0fc408e91feb1877183b2d82df8827ce3d7d49ba7d37"
        );
        // hmac.new(b"platform", b"vigil-webhook-key:d-0001", sha256).hexdigest()
        assert_eq!(
            derive_key("platform", "d-0001"),
            "565c3219a5508351973fa43e76768cfefb459212a9385bc2e1986f30ef9df597"
        );
        // base64(hmac.new(b"SECrobot", b"1764547200000\nSECrobot", sha256).digest())
        assert_eq!(
            dingtalk_sign("SECrobot", 1_764_547_200_000),
            "ei97q7uExeMEqTlWuvqxrIyGrNV6UStawDgePiQvlE8="
        );
    }

    #[test]
    fn each_receiver_has_its_own_key() {
        let secrets = WebhookSecrets {
            default: Some("platform".into()),
            per_doctor: HashMap::from([("d-2".to_owned(), "SECrobot".to_owned())]),
        };
        let a = secrets.key_for("d-1", WebhookFormat::Vigil).unwrap();
        assert_eq!(a, derive_key("platform", "d-1"));
        assert_ne!(a, secrets.key_for("d-3", WebhookFormat::Vigil).unwrap());
        assert_eq!(
            secrets.key_for("d-2", WebhookFormat::Vigil).unwrap(),
            "SECrobot"
        );
        // DingTalk makes its robots' secrets: only a doctor's own is used.
        assert_eq!(secrets.key_for("d-1", WebhookFormat::Dingtalk), None);
        assert_eq!(
            secrets.key_for("d-2", WebhookFormat::Dingtalk).unwrap(),
            "SECrobot"
        );
        assert_eq!(secrets.key_for("d-2", WebhookFormat::Wecom), None);
    }

    #[test]
    fn backoff_doubles_up_to_its_bound() {
        let c = WebhookConfig {
            backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(30),
            ..WebhookConfig::default()
        };
        let waits: Vec<u64> = (1..=6).map(|n| c.backoff_after(n).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 30, 30]);
        assert_eq!(c.backoff_after(1000).as_secs(), 30);
    }

    #[test]
    fn robots_must_answer_errcode_zero() {
        let ok = br#"{"errcode":0,"errmsg":"ok"}"#;
        assert!(accepted(WebhookFormat::Wecom, 200, ok).is_ok());
        assert!(accepted(WebhookFormat::Dingtalk, 200, ok).is_ok());
        let refused = br#"{"errcode":310000,"errmsg":"sign not match"}"#;
        let e = accepted(WebhookFormat::Dingtalk, 200, refused).unwrap_err();
        assert_eq!(e, "the robot refused it: errcode 310000 sign not match");
        assert!(accepted(WebhookFormat::Wecom, 200, b"ok").is_err());
        assert!(accepted(WebhookFormat::Vigil, 204, b"").is_ok());
        // The body is never kept: a receiver may echo what it was sent.
        let e = accepted(WebhookFormat::Vigil, 500, b"p-000123 192/112").unwrap_err();
        assert_eq!(e, "HTTP 500");
    }

    fn wire() -> AlertEvent {
        vigil_wire::alert::decode_alert(
            br#"{"schema":"vigil.alert.v1","alert_id":"00000000000000aa","event":"opened",
            "patient_id":"p-000123","rule":"bp_crisis","severity":"CRITICAL",
            "opened_at":"2026-11-22T07:58:03+08:00","evidence":[],"display":"192/112 mmHg",
            "escalation_level":1,"ack_url":"/api/v1/alerts/00000000000000aa/ack"}"#,
        )
        .unwrap()
    }

    #[test]
    fn each_format_has_its_body_and_signature() {
        let now = DateTime::from_timestamp(1_764_547_200, 0).unwrap();
        let mut config = WebhookConfig {
            public_url: "https://vigil.example/".into(),
            ..WebhookConfig::default()
        };
        let w = wire();
        // Without a secret a Vigil-format webhook is not sent unsigned.
        let e = request(
            &config,
            ("http://r/", WebhookFormat::Vigil),
            "d-1",
            7,
            &w,
            now,
        )
        .unwrap_err();
        assert!(e.contains("secret"), "{e}");
        config.secrets.default = Some("s3cret".into());
        config
            .secrets
            .per_doctor
            .insert("d-2".into(), "SECrobot".into());
        let r = request(
            &config,
            ("http://r/", WebhookFormat::Vigil),
            "d-1",
            7,
            &w,
            now,
        )
        .unwrap();
        let header = |name: &str| {
            r.headers
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(header("x-vigil-delivery"), "7-d-1");
        assert_eq!(header("x-vigil-alert-id"), "00000000000000aa");
        assert_eq!(header("x-vigil-timestamp"), "1764547200");
        assert!(verify_signature(
            &derive_key("s3cret", "d-1"),
            1_764_547_200,
            "7-d-1",
            &r.body,
            &header("x-vigil-signature")
        ));
        assert_eq!(vigil_wire::alert::decode_alert(&r.body).unwrap(), w);

        let r = request(
            &config,
            (
                "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K",
                WebhookFormat::Wecom,
            ),
            "d-1",
            7,
            &w,
            now,
        )
        .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["msgtype"], "markdown");
        let text = body["markdown"]["content"].as_str().unwrap();
        assert!(text.contains("危急值 CRITICAL"), "{text}");
        assert!(text.contains("**192/112 mmHg**"), "{text}");
        assert!(
            text.contains("(https://vigil.example/api/v1/alerts/00000000000000aa/ack)"),
            "{text}"
        );
        assert!(!text.contains('{'), "every placeholder is filled: {text}");

        let r = request(
            &config,
            (
                "https://oapi.dingtalk.com/robot/send?access_token=T",
                WebhookFormat::Dingtalk,
            ),
            "d-2",
            7,
            &w,
            now,
        )
        .unwrap();
        let url = reqwest::Url::parse(&r.url).unwrap();
        let q: HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(q["access_token"], "T");
        assert_eq!(q["timestamp"], "1764547200000");
        assert_eq!(q["sign"], dingtalk_sign("SECrobot", 1_764_547_200_000));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["markdown"]["title"], "Vigil CRITICAL bp_crisis");
    }
}
