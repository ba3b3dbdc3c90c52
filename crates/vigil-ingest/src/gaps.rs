//! Gap detection and backfill requests (wire contract guarantee 6).
//!
//! The clinical store keeps, as each envelope is committed, every gateway's `batch_seq`
//! watermark and the ranges missing above it ([`vigil_store::gaps`]). The
//! [`GapDetector`] looks at them every `poll`:
//!
//! - a gap open longer than `gap_timeout` is requested from its gateway with a
//!   `backfill` command (`vigil.cmd.v1`, `from_batch_seq`/`to_batch_seq`) at QoS 1 on
//!   `vigil/v1/gw/{gateway_id}/cmd`; a gap longer than 10 000 batches is requested in
//!   pieces of at most 1 000;
//! - a request counts once the broker acknowledged it (PUBACK); it is recorded in the
//!   store with when the gap is due again: still open then, it is requested again
//!   after `gap_timeout`, then twice that, and so on up to `max_backoff`;
//! - a batch that arrives fills its gap (counted as recovered); a filled gap is never
//!   requested again;
//! - nothing below a gateway's first `batch_seq` seen is requested (the ingester may
//!   start mid-stream).
//!
//! While the broker is away no request is made: due gaps wait for the connection. One
//! line per request goes to stderr, naming the gateway and the batch range only.
//!
//! A gap's age is measured from the receipt of the envelope that revealed it (the
//! intake's clock) to the detector's clock: both are the same clock in `vigil serve`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use rumqttc::QoS;
use tokio::sync::watch;
use vigil_model::clock::Clock;
use vigil_store::{BatchGap, GapTotals, SqliteStore};
use vigil_wire::Topic;
use vigil_wire::command::{Command, encode_command};

use crate::deliver::{Conn, publisher_options};

/// Most backfill requests made in one round (the rest wait for the next).
pub const MAX_REQUESTS_PER_ROUND: u32 = 100;

/// How long the broker has to acknowledge a round's requests.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the detector publishes, and its timing.
#[derive(Debug, Clone)]
pub struct GapConfig {
    pub host: String,
    pub port: u16,
    pub client_id: String,
    pub tls: Option<crate::intake::Tls>,
    /// How often the store is looked at.
    pub poll: Duration,
    /// How long a gap may stay open before its batches are requested.
    pub gap_timeout: Duration,
    /// The longest wait before a gap still open is requested again.
    pub max_backoff: Duration,
}

impl GapConfig {
    /// Defaults for a broker at `host:port`: a look every second, a request after 60 s,
    /// requests again after 60 s, 2 min, 4 min, ... up to an hour.
    pub fn new(host: impl Into<String>, port: u16) -> GapConfig {
        GapConfig {
            host: host.into(),
            port,
            client_id: "vigil-ingester-gaps".to_owned(),
            tls: None,
            poll: Duration::from_secs(1),
            gap_timeout: Duration::from_secs(60),
            max_backoff: Duration::from_secs(3600),
        }
    }

    /// The wait after the `requests`-th request (1-based) before the next one:
    /// `gap_timeout · 2^(requests-1)`, at most `max_backoff`.
    pub fn backoff_after(&self, requests: u32) -> Duration {
        let factor = 1u32 << requests.saturating_sub(1).min(20);
        self.gap_timeout
            .saturating_mul(factor)
            .min(self.max_backoff.max(self.gap_timeout))
    }
}

/// Counters of the gap detector. The first three count over the clinical store's life
/// (they are kept in it, so they survive restarts); `missing_now` is a gauge.
#[derive(Debug, Default)]
pub struct GapStats {
    /// Gaps opened in gateways' `batch_seq` (a gap filled in parts is one).
    pub gaps_detected: AtomicU64,
    /// Backfill commands the broker acknowledged.
    pub backfill_requests: AtomicU64,
    /// Missing batches that arrived.
    pub batches_recovered: AtomicU64,
    /// Batches missing now.
    pub missing_now: AtomicU64,
    /// Rounds completed (each: the counts read, due gaps requested).
    pub polls: AtomicU64,
}

impl GapStats {
    fn set(&self, t: &GapTotals) {
        self.gaps_detected.store(t.gaps_opened, Ordering::Relaxed);
        self.backfill_requests.store(t.requests, Ordering::Relaxed);
        self.batches_recovered
            .store(t.batches_recovered, Ordering::Relaxed);
        self.missing_now.store(t.missing_now, Ordering::Relaxed);
    }
}

/// A running gap detector; stop it with [`GapDetector::shutdown`].
#[derive(Debug)]
pub struct GapDetector {
    pub stats: Arc<GapStats>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl GapDetector {
    pub fn start(config: GapConfig, store: SqliteStore, clock: Arc<dyn Clock>) -> GapDetector {
        let stats = Arc::new(GapStats::default());
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(config, store, clock, stats.clone(), stopped));
        GapDetector { stats, stop, task }
    }

    /// Stops; a request not yet acknowledged is made again after the next start.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// How a round ended.
enum Round {
    Done,
    Stopped,
}

async fn run(
    config: GapConfig,
    store: SqliteStore,
    clock: Arc<dyn Clock>,
    stats: Arc<GapStats>,
    mut stopped: watch::Receiver<bool>,
) {
    let options = publisher_options(
        &config.client_id,
        &config.host,
        config.port,
        config.tls.clone(),
    );
    let mut conn = Conn::open(options.clone(), clock.clone());
    let timeout = TimeDelta::from_std(config.gap_timeout).unwrap_or(TimeDelta::MAX);
    // Said once when the store starts failing, once when it answers again.
    let mut failing = false;
    loop {
        if *stopped.borrow() {
            break;
        }
        if conn.is_lost() {
            conn = Conn::open(options.clone(), clock.clone());
        }
        let now = clock.now();
        let seen_before = now
            .checked_sub_signed(timeout)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let looked = async {
            let totals = store.gap_totals().await?;
            let due = store
                .due_backfills(seen_before, now, MAX_REQUESTS_PER_ROUND)
                .await?;
            Ok::<_, vigil_store::Error>((totals, due))
        }
        .await;
        match looked {
            Ok((totals, due)) => {
                if failing {
                    eprintln!("vigil: gap detection: the clinical store answers again");
                    failing = false;
                }
                stats.set(&totals);
                let up = conn.tracker.lock().is_ok_and(|t| t.connected);
                // While the broker is away, due gaps wait for it.
                if up
                    && !due.is_empty()
                    && let Round::Stopped =
                        request(&conn, &config, &store, &clock, due, &mut stopped).await
                {
                    break;
                }
            }
            Err(e) => {
                if !failing {
                    eprintln!("vigil: gap detection: the clinical store failed ({e}); retrying");
                    failing = true;
                }
            }
        }
        stats.polls.fetch_add(1, Ordering::Relaxed);
        tokio::select! {
            _ = tokio::time::sleep(config.poll) => {}
            // Stopped, or the handle dropped without a stop.
            r = stopped.changed() => if r.is_err() { break },
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), conn.client.disconnect()).await;
    drop(conn);
}

/// Publishes a backfill command for each due gap, waits for the broker's
/// acknowledgements, and records the acknowledged ones with when they are due again.
/// What was not acknowledged stays due: the next round makes it again.
async fn request(
    conn: &Conn,
    config: &GapConfig,
    store: &SqliteStore,
    clock: &Arc<dyn Clock>,
    due: Vec<BatchGap>,
    stopped: &mut watch::Receiver<bool>,
) -> Round {
    let mut waiting = Vec::with_capacity(due.len());
    for gap in due {
        let Ok(seq) = conn.tracker.lock().map(|mut t| t.reserve()) else {
            return Round::Done;
        };
        let payload = encode_command(&Command::BackfillBatches {
            from_batch_seq: gap.from_batch_seq,
            to_batch_seq: gap.to_batch_seq,
        });
        let topic = Topic::Command(gap.gateway_id.clone()).to_string();
        // A publish refused because the connection is gone is never acknowledged: the
        // next round makes it again.
        tokio::select! {
            _ = conn.client.publish(topic, QoS::AtLeastOnce, false, payload) => {}
            _ = stopped.changed() => return Round::Stopped,
        }
        waiting.push((gap, seq));
    }
    let deadline = tokio::time::Instant::now() + ACK_TIMEOUT;
    loop {
        let all = conn
            .tracker
            .lock()
            .map(|t| waiting.iter().all(|(_, seq)| t.is_acked(*seq)))
            .unwrap_or(false);
        if all || conn.is_lost() || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::select! {
            _ = conn.pubacks.notified() => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = stopped.changed() => return Round::Stopped,
        }
    }
    for (gap, seq) in waiting {
        let Some(acked_at) = conn.tracker.lock().ok().and_then(|mut t| t.take(seq)) else {
            continue; // not acknowledged: due again next round
        };
        let requests = gap.requests.saturating_add(1);
        let wait = config.backoff_after(requests);
        let next = acked_at + TimeDelta::from_std(wait).unwrap_or(TimeDelta::MAX);
        let range = format!("{}..={}", gap.from_batch_seq, gap.to_batch_seq);
        let open = (clock.now() - gap.first_seen).num_milliseconds().max(0) as f64 / 1000.0;
        match store
            .record_backfill(
                &gap.gateway_id,
                (gap.from_batch_seq, gap.to_batch_seq),
                acked_at,
                next,
            )
            .await
        {
            Ok(_) => eprintln!(
                "vigil: gateway {}: batch_seq {range} missing for {open:.1} s; backfill requested (request {requests}; again in {} s if still missing)",
                gap.gateway_id,
                wait.as_secs_f64()
            ),
            Err(e) => eprintln!(
                "vigil: gateway {}: batch_seq {range}: backfill requested, but not recorded ({e}); it will be requested again",
                gap.gateway_id
            ),
        }
    }
    Round::Done
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_still_open_is_requested_again_after_a_doubling_wait_of_at_most_an_hour() {
        let c = GapConfig::new("127.0.0.1", 1883);
        let secs = |n| c.backoff_after(n).as_secs();
        assert_eq!([secs(1), secs(2), secs(3), secs(6)], [60, 120, 240, 1920]);
        assert_eq!(secs(7), 3600);
        assert_eq!(secs(u32::MAX), 3600);
    }
}
