//! The sink: tails the clinical store in commit order, writes batches of line
//! protocol, and advances a persisted cursor only over what the server confirmed.
//!
//! - **No second queue**: the clinical store is the queue. The cursor (the last reading
//!   row id the server confirmed, in `sink_cursors`) advances only after the write
//!   returned 2xx, for a contiguous prefix of batches; a crash or an outage of hours
//!   replays from it. Writes are idempotent (same series and timestamp, same values),
//!   so a replayed batch changes nothing on the server.
//! - **Batches** of at most `batch_size` readings' points, sent as soon as that many
//!   are waiting, else after `linger`; gzip; up to `concurrency` requests in flight.
//! - **Errors**, classified by what fixes them:
//!   - network errors, timeouts, 429 and 5xx: retried with jittered exponential backoff
//!     (200 ms doubling to 30 s), honouring `Retry-After`; nothing is skipped;
//!   - a 400/422 the server explains as bad data ("partial write", "unable to parse",
//!     "field type conflict", ...) or a 413: the batch is split in halves until the bad
//!     point is alone; that point is kept in `sink_rejects` with the server's message
//!     and skipped, and the rest is written;
//!   - any other 4xx (401, 403, 404: a wrong token, org, bucket or database): retried
//!     with backoff, never skipped, and reported as unhealthy until fixed.
//! - A point that cannot be written as line protocol at all is kept in `sink_rejects`
//!   with the encoder's reason.

use std::collections::VecDeque;
use std::future::Future;
use std::io::Write as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use vigil_model::PatientId;
use vigil_model::clock::Clock;
use vigil_store::SqliteStore;

use crate::export::{EcgExport, points};
use crate::line::{Point, Precision};

/// Which write endpoint the server is asked on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Api {
    /// `/api/v2/write?org=&bucket=`: InfluxDB 2.x, 3.x, VictoriaMetrics.
    V2 { org: String, bucket: String },
    /// `/write?db=&rp=`: InfluxDB 1.x, and 1.x compatibility in 2.x and 3.x.
    V1 {
        database: String,
        retention_policy: String,
    },
}

/// A credential: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The sink's settings.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// The cursor's name in the store; one per destination.
    pub name: String,
    /// `http(s)://host:port`, without the endpoint path.
    pub url: String,
    pub api: Api,
    /// Sent as `Authorization: Token ...` when set.
    pub token: Option<Secret>,
    pub precision: Precision,
    /// Most readings per batch (and points per request).
    pub batch_size: usize,
    /// How long a part-full batch waits for more readings.
    pub linger: Duration,
    /// Requests in flight at once.
    pub concurrency: usize,
    pub ecg: EcgExport,
    pub timeout: Duration,
    pub gzip: bool,
}

impl SinkConfig {
    /// Defaults for a server at `url` with `api`.
    pub fn new(url: impl Into<String>, api: Api) -> SinkConfig {
        SinkConfig {
            name: "tsdb".to_owned(),
            url: url.into(),
            api,
            token: None,
            precision: Precision::Milliseconds,
            batch_size: 5000,
            linger: Duration::from_millis(500),
            concurrency: 2,
            ecg: EcgExport::Off,
            timeout: Duration::from_secs(10),
            gzip: true,
        }
    }

    /// The write URL with its query.
    pub fn write_url(&self) -> Result<reqwest::Url, Error> {
        let base = self.url.trim_end_matches('/');
        let mut url = reqwest::Url::parse(&format!(
            "{base}{}",
            match self.api {
                Api::V2 { .. } => "/api/v2/write",
                Api::V1 { .. } => "/write",
            }
        ))
        .map_err(|e| Error::Config(format!("url {:?}: {e}", self.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Error::Config(format!(
                "url {:?} must start with http:// or https://",
                self.url
            )));
        }
        {
            let mut q = url.query_pairs_mut();
            match &self.api {
                Api::V2 { org, bucket } => {
                    q.append_pair("org", org);
                    q.append_pair("bucket", bucket);
                    q.append_pair("precision", self.precision.as_str());
                }
                Api::V1 {
                    database,
                    retention_policy,
                } => {
                    q.append_pair("db", database);
                    if !retention_policy.is_empty() {
                        q.append_pair("rp", retention_policy);
                    }
                    // The 1.x endpoint spells microseconds "u".
                    q.append_pair(
                        "precision",
                        match self.precision {
                            Precision::Microseconds => "u",
                            p => p.as_str(),
                        },
                    );
                }
            }
        }
        Ok(url)
    }
}

/// A sink error (setting it up; running, it retries instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("telemetry sink: {0}")]
    Config(String),
    #[error("telemetry sink: {0}")]
    Http(#[from] reqwest::Error),
    #[error("telemetry sink: the server refused the check write ({status}): {message}")]
    Refused { status: u16, message: String },
}

/// Counters of the sink, readable while it runs.
#[derive(Debug, Default)]
pub struct SinkStats {
    pub points_written: AtomicU64,
    pub requests: AtomicU64,
    /// Attempts that failed and were retried.
    pub retries: AtomicU64,
    /// Points the server refused for good, or that cannot be line protocol.
    pub rejected_points: AtomicU64,
    /// The last reading row id the server confirmed.
    pub cursor: AtomicI64,
    /// Readings committed and not yet confirmed, and how long the oldest of them has
    /// waited (milliseconds, by the injected clock).
    pub lag_readings: AtomicU64,
    pub lag_millis: AtomicU64,
    /// False while writes fail; true at start and after a write succeeds.
    pub healthy: AtomicBool,
    pub last_error: Mutex<String>,
}

impl SinkStats {
    fn failed(&self, message: String) {
        self.healthy.store(false, Ordering::Relaxed);
        if let Ok(mut e) = self.last_error.lock() {
            *e = message;
        }
    }
}

/// The institution of a patient (for the `institution` tag), as the registry says now.
pub type Institutions = Arc<dyn Fn(&PatientId) -> Option<String> + Send + Sync>;

/// A running sink; stop it with [`Sink::shutdown`].
#[derive(Debug)]
pub struct Sink {
    pub stats: Arc<SinkStats>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// One line and the reading it came from.
#[derive(Debug, Clone)]
struct Line {
    reading_id: i64,
    text: String,
}

/// The sending half, shared by the requests in flight.
#[derive(Clone)]
struct Writer {
    client: reqwest::Client,
    url: reqwest::Url,
    token: Option<Secret>,
    gzip: bool,
    name: String,
    store: SqliteStore,
    clock: Arc<dyn Clock>,
    stats: Arc<SinkStats>,
    stopped: watch::Receiver<bool>,
}

/// The sink was told to stop while a write was pending.
#[derive(Debug)]
struct Stopped;

/// What became of one request.
enum Outcome {
    Written,
    /// Bad data: split, or reject a single point.
    BadData(String),
    /// Retry after this long.
    Retry(Option<Duration>, String),
}

impl Sink {
    /// Starts the sink on a task. `committed` (optional) wakes it when the ingester
    /// commits, so it need not poll the store often.
    pub fn start(
        config: SinkConfig,
        store: SqliteStore,
        institutions: Institutions,
        clock: Arc<dyn Clock>,
        committed: Option<Arc<Notify>>,
    ) -> Result<Sink, Error> {
        let writer_url = config.write_url()?;
        let client = client(&config)?;
        let stats = Arc::new(SinkStats::default());
        // Healthy until a write fails.
        stats.healthy.store(true, Ordering::Relaxed);
        let (stop, stopped) = watch::channel(false);
        let writer = Writer {
            client,
            url: writer_url,
            token: config.token.clone(),
            gzip: config.gzip,
            name: config.name.clone(),
            store: store.clone(),
            clock: clock.clone(),
            stats: stats.clone(),
            stopped: stopped.clone(),
        };
        let task = tokio::spawn(run(
            config,
            store,
            institutions,
            clock,
            committed,
            writer,
            stopped,
        ));
        Ok(Sink { stats, stop, task })
    }

    /// Stops: no new batch is taken, a write in progress ends at its next retry.
    /// What was not confirmed is written again after the next start.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

fn client(config: &SinkConfig) -> Result<reqwest::Client, Error> {
    // One process-wide provider: ring (rustls panics when none is chosen).
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder()
        .timeout(config.timeout)
        .connect_timeout(config.timeout)
        .build()?)
}

/// Does what the sink does, once: writes one check point
/// (`vigil_sink_check,sink=NAME ok=1`) and says whether the server took it.
pub async fn check(config: &SinkConfig, clock: &dyn Clock) -> Result<(), Error> {
    let client = client(config)?;
    let point = Point {
        measurement: "vigil_sink_check".to_owned(),
        tags: vec![("sink".to_owned(), config.name.clone())],
        fields: vec![("ok".to_owned(), crate::line::FieldValue::Float(1.0))],
        time: clock.now(),
    };
    let mut body = String::new();
    point
        .write_line(config.precision, &mut body)
        .map_err(|e| Error::Config(e.to_string()))?;
    let mut req = client.post(config.write_url()?).body(body);
    if let Some(t) = &config.token {
        req = req.header("Authorization", format!("Token {}", t.0));
    }
    let resp = req.send().await?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(Error::Refused {
            status: status.as_u16(),
            message: resp.text().await.unwrap_or_default().trim().to_owned(),
        })
    }
}

async fn run(
    config: SinkConfig,
    store: SqliteStore,
    institutions: Institutions,
    clock: Arc<dyn Clock>,
    committed: Option<Arc<Notify>>,
    writer: Writer,
    mut stopped: watch::Receiver<bool>,
) {
    let stats = writer.stats.clone();
    let batch = config.batch_size.clamp(1, 1_000_000);
    let concurrency = config.concurrency.clamp(1, 64);
    let idle = Duration::from_secs(1).min(config.linger.max(Duration::from_millis(10)));
    let mut confirmed = loop {
        match store.sink_cursor(&config.name).await {
            Ok(c) => break c,
            Err(e) => {
                stats.failed(format!("reading the cursor: {e}"));
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stopped.changed() => return,
                }
            }
        }
    };
    stats.cursor.store(confirmed, Ordering::Relaxed);
    let mut fetched = confirmed;
    let mut inflight: VecDeque<InFlight> = VecDeque::new();
    let mut partial_since: Option<Instant> = None;
    loop {
        if *stopped.borrow() {
            break;
        }
        // Batches that are done, in order, move the cursor.
        while inflight
            .front()
            .is_some_and(|f| f.done.is_some() || f.handle.is_finished())
        {
            let Some(front) = inflight.pop_front() else {
                break;
            };
            let result = match front.done {
                Some(r) => r,
                None => front.handle.await,
            };
            match result {
                Ok(Ok(())) => {
                    if !settle(
                        &store,
                        &config.name,
                        &*clock,
                        &stats,
                        front.last,
                        &mut stopped,
                    )
                    .await
                    {
                        return;
                    }
                    confirmed = front.last;
                }
                // Stopped while writing: what it held is written after the next start.
                Ok(Err(Stopped)) => return,
                // The write task died (a bug): say so, drop what is in flight, and
                // start again from the cursor.
                Err(e) => {
                    stats.failed(format!(
                        "a write task failed ({e}); resuming from the cursor"
                    ));
                    for f in inflight.drain(..) {
                        f.handle.abort();
                    }
                    fetched = confirmed;
                    break;
                }
            }
        }
        if let Ok((last_id, first_waiting)) = store.export_lag(confirmed).await {
            stats.lag_readings.store(
                u64::try_from(last_id - confirmed).unwrap_or(0),
                Ordering::Relaxed,
            );
            let waited = first_waiting.map_or(0, |t| (clock.now() - t).num_milliseconds().max(0));
            stats
                .lag_millis
                .store(u64::try_from(waited).unwrap_or(0), Ordering::Relaxed);
        }
        if inflight.len() >= concurrency {
            pause(Duration::MAX, &None, &mut inflight, &mut stopped).await;
            continue;
        }
        let rows = match store
            .export_after(fetched, u32::try_from(batch).unwrap_or(u32::MAX))
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                stats.failed(format!("reading the clinical store: {e}"));
                pause(idle, &committed, &mut inflight, &mut stopped).await;
                continue;
            }
        };
        if rows.is_empty() {
            partial_since = None;
            pause(idle, &committed, &mut inflight, &mut stopped).await;
            continue;
        }
        if rows.len() < batch {
            let since = *partial_since.get_or_insert_with(Instant::now);
            let waited = since.elapsed();
            if waited < config.linger {
                pause(config.linger - waited, &None, &mut inflight, &mut stopped).await;
                continue;
            }
        }
        partial_since = None;
        let last = rows.last().map_or(fetched, |r| r.id);
        fetched = last;
        let mut lines = Vec::new();
        for row in &rows {
            let institution = institutions(&row.patient_id);
            for p in points(row, institution.as_deref(), config.ecg) {
                let mut text = String::new();
                match p.write_line(config.precision, &mut text) {
                    Ok(()) => lines.push(Line {
                        reading_id: row.id,
                        text,
                    }),
                    Err(e) => {
                        if writer
                            .reject(row.id, &format!("{p:?}"), &e.to_string())
                            .await
                            .is_err()
                        {
                            // Stopped before the reject was kept: the row is read
                            // again after the next start.
                            return;
                        }
                    }
                }
            }
        }
        let w = writer.clone();
        inflight.push_back(InFlight {
            last,
            handle: tokio::spawn(async move {
                for chunk in lines.chunks(batch) {
                    w.deliver(chunk).await?;
                }
                Ok(())
            }),
            done: None,
        });
    }
    // Stopping: what is in flight ends at its next retry; nothing unconfirmed moves
    // the cursor.
    for f in inflight {
        f.handle.abort();
    }
}

/// A batch being written: the last reading row id it covers.
struct InFlight {
    last: i64,
    handle: tokio::task::JoinHandle<Result<(), Stopped>>,
    /// Its result, once [`pause`] saw it finish (a handle is awaited once).
    done: Option<Result<Result<(), Stopped>, tokio::task::JoinError>>,
}

/// Moves the cursor over a batch the server confirmed; false when the sink was
/// stopped before the cursor could be written.
async fn settle(
    store: &SqliteStore,
    name: &str,
    clock: &dyn Clock,
    stats: &SinkStats,
    last: i64,
    stopped: &mut watch::Receiver<bool>,
) -> bool {
    while store
        .advance_sink_cursor(name, last, clock.now())
        .await
        .is_err()
    {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stopped.changed() => return false,
        }
    }
    stats.cursor.store(last, Ordering::Relaxed);
    true
}

/// Waits up to `at_most`: less when a commit is signalled, the oldest request in
/// flight finishes, or the sink is stopped.
async fn pause(
    at_most: Duration,
    committed: &Option<Arc<Notify>>,
    inflight: &mut VecDeque<InFlight>,
    stopped: &mut watch::Receiver<bool>,
) {
    let commit = async {
        match committed {
            Some(n) => n.notified().await,
            None => std::future::pending().await,
        }
    };
    let front = async {
        match inflight.front_mut() {
            Some(f) if f.done.is_none() => {
                let r = (&mut f.handle).await;
                f.done = Some(r);
            }
            _ => std::future::pending().await,
        }
    };
    let sleep = async {
        match tokio::time::Instant::now().checked_add(at_most) {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = sleep => {}
        _ = commit => {}
        _ = front => {}
        _ = stopped.changed() => {}
    }
}

impl Writer {
    /// Writes `lines`, splitting around bad data and retrying everything else, until
    /// every line is written or kept as rejected.
    fn deliver<'a>(
        &'a self,
        lines: &'a [Line],
    ) -> Pin<Box<dyn Future<Output = Result<(), Stopped>> + Send + 'a>> {
        Box::pin(async move {
            if lines.is_empty() {
                return Ok(());
            }
            let mut delay = Duration::from_millis(200);
            loop {
                match self.send(lines).await {
                    Outcome::Written => {
                        self.stats
                            .points_written
                            .fetch_add(lines.len() as u64, Ordering::Relaxed);
                        self.stats.healthy.store(true, Ordering::Relaxed);
                        return Ok(());
                    }
                    Outcome::BadData(message) => {
                        if let [one] = lines {
                            return self
                                .reject(one.reading_id, one.text.trim_end(), &message)
                                .await;
                        }
                        let (a, b) = lines.split_at(lines.len() / 2);
                        self.deliver(a).await?;
                        return self.deliver(b).await;
                    }
                    Outcome::Retry(after, message) => {
                        self.stats.retries.fetch_add(1, Ordering::Relaxed);
                        self.stats.failed(message);
                        let wait = after.unwrap_or_else(|| jitter(delay));
                        let mut stopped = self.stopped.clone();
                        if *stopped.borrow() {
                            return Err(Stopped);
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = stopped.changed() => return Err(Stopped),
                        }
                        delay = (delay * 2).min(Duration::from_secs(30));
                    }
                }
            }
        })
    }

    async fn send(&self, lines: &[Line]) -> Outcome {
        let size: usize = lines.iter().map(|l| l.text.len()).sum();
        let mut body = String::with_capacity(size);
        for l in lines {
            body.push_str(&l.text);
        }
        let mut req = self
            .client
            .post(self.url.clone())
            .header("Content-Type", "text/plain; charset=utf-8");
        if self.gzip {
            let mut gz = flate2::write::GzEncoder::new(
                Vec::with_capacity(size / 8),
                flate2::Compression::fast(),
            );
            if gz.write_all(body.as_bytes()).is_ok()
                && let Ok(bytes) = gz.finish()
            {
                req = req.header("Content-Encoding", "gzip").body(bytes);
            } else {
                req = req.body(body);
            }
        } else {
            req = req.body(body);
        }
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Token {}", t.0));
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Outcome::Retry(None, format!("write failed: {e}")),
        };
        let status = resp.status();
        if status.is_success() {
            return Outcome::Written;
        }
        let retry_after = resp
            .headers()
            .get("Retry-After")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s.min(300)));
        let text = resp.text().await.unwrap_or_default();
        let message = format!("{}: {}", status.as_u16(), text.trim());
        match status.as_u16() {
            413 => Outcome::BadData(message),
            400 | 422 if is_bad_data(&text) => Outcome::BadData(message),
            _ => Outcome::Retry(retry_after, message),
        }
    }

    /// Keeps a refused point, with why (retrying the store until it takes it).
    async fn reject(&self, reading_id: i64, line: &str, message: &str) -> Result<(), Stopped> {
        while self
            .store
            .keep_sink_reject(&self.name, reading_id, line, message, self.clock.now())
            .await
            .is_err()
        {
            // Only a stop ends the retries, and then the point was not kept: the
            // cursor must not pass it.
            if *self.stopped.borrow() {
                return Err(Stopped);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        self.stats.rejected_points.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Whether a 400/422 body says the data is at fault (so splitting finds the culprit),
/// as InfluxDB 1.x, 2.x, 3.x and VictoriaMetrics word it.
fn is_bad_data(body: &str) -> bool {
    let b = body.to_ascii_lowercase();
    [
        "partial write",
        "unable to parse",
        "failed to parse",
        "cannot parse",
        "field type conflict",
        "invalid field",
        "bad timestamp",
        "invalid timestamp",
        "beyond retention",
        "max-values-per-tag",
    ]
    .iter()
    .any(|m| b.contains(m))
}

/// `d` ± 25 %, from the clock's sub-second noise (no RNG needed for backoff).
fn jitter(d: Duration) -> Duration {
    let noise = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |t| t.subsec_nanos());
    let factor = 0.75 + f64::from(noise % 1000) / 2000.0;
    d.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_urls_carry_their_query_escaped_for_each_api() {
        let mut c = SinkConfig::new(
            "http://tsdb:8086/",
            Api::V2 {
                org: "医联体 west".into(),
                bucket: "vitals&x".into(),
            },
        );
        assert_eq!(
            c.write_url().unwrap().as_str(),
            "http://tsdb:8086/api/v2/write?org=%E5%8C%BB%E8%81%94%E4%BD%93+west&bucket=vitals%26x&precision=ms"
        );
        c.api = Api::V1 {
            database: "vigil".into(),
            retention_policy: String::new(),
        };
        c.precision = Precision::Microseconds;
        assert_eq!(
            c.write_url().unwrap().as_str(),
            "http://tsdb:8086/write?db=vigil&precision=u"
        );
        c.url = "ftp://x".into();
        assert!(c.write_url().is_err());
    }

    #[test]
    fn only_data_errors_are_split_around() {
        assert!(is_bad_data(
            r#"{"error":"partial write: field type conflict: input field \"v\" on measurement \"m\" is type float, already exists as type string dropped=1"}"#
        ));
        assert!(is_bad_data("unable to parse 'x y': invalid field format"));
        assert!(!is_bad_data(r#"{"error":"database not found: \"vigil\""}"#));
        assert!(!is_bad_data("authorization failed"));
    }

    #[test]
    fn secrets_are_not_printed() {
        let mut c = SinkConfig::new(
            "http://x",
            Api::V2 {
                org: "o".into(),
                bucket: "b".into(),
            },
        );
        c.token = Some(Secret("s3cret-token".into()));
        assert!(!format!("{c:?}").contains("s3cret"));
    }

    #[test]
    fn jitter_stays_within_a_quarter() {
        for _ in 0..100 {
            let j = jitter(Duration::from_millis(1000));
            assert!(j >= Duration::from_millis(750) && j <= Duration::from_millis(1250));
        }
    }
}
