//! The committed readings, handed from the intake to the rule engine in memory.
//!
//! The rule runner follows the clinical store by its cursor (`crate::rules`); reading
//! each committed reading back from SQLite, decoding its JSON and validating it again
//! was a quarter of the ingester's time at load (BENCHMARKS.md). The intake already
//! holds every reading it committed, validated, with its row id: after each commit it
//! pushes them here, and the runner evaluates them from here.
//!
//! The store stays the source of truth. The runner takes from the feed only readings
//! that continue its cursor without a hole (row ids are consecutive within a commit
//! and across commits); whatever the feed lacks (a reading released from quarantine
//! by the API, a batch dropped because the feed was full, everything after a restart)
//! shows as a hole, and the runner reads that range from the store, as it did before.
//! Nothing is evaluated twice: readings at or below the cursor are skipped.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use vigil_model::PatientId;
use vigil_model::vocab::ReadingType;
use vigil_rules::validate::Validated;
use vigil_store::{EnvelopeCommit, Item, StoredRow};

/// Readings a feed holds by default: two of the runner's pages. Beyond that the intake
/// is far ahead of the rules, and the runner reads from the store what the feed
/// dropped.
pub const CAPACITY: usize = 10_000;

/// A committed reading, as the rule engine takes it.
#[derive(Debug)]
pub struct Committed {
    /// Its row id (`readings.id`).
    pub id: i64,
    pub patient: PatientId,
    /// Receipt, by the intake's clock, to the millisecond (as the store keeps it).
    pub received: DateTime<Utc>,
    pub input: Input,
}

/// What the rules get of a committed reading.
#[derive(Debug)]
pub enum Input {
    Reading(Box<Validated>),
    /// An ECG strip: no rule reads one (its episodes come from the patch's findings).
    Ecg,
    /// Read back from the store, it no longer decodes or validates (it was stored, so
    /// this is a bug): counted as an error and skipped.
    Unreadable,
}

/// A bounded queue of committed readings, in row-id order.
#[derive(Debug)]
pub struct RuleFeed {
    queue: Mutex<VecDeque<Committed>>,
    capacity: usize,
    /// Notified after each push.
    pub(crate) ready: Notify,
    /// Readings not queued because the feed was full (the runner reads them from the
    /// store instead).
    pub dropped: AtomicU64,
}

impl RuleFeed {
    /// A feed holding at most `capacity` readings.
    pub fn new(capacity: usize) -> RuleFeed {
        RuleFeed {
            queue: Mutex::new(VecDeque::new()),
            capacity,
            ready: Notify::new(),
            dropped: AtomicU64::new(0),
        }
    }

    /// Queues one commit's readings (in row-id order), whole or not at all.
    pub fn push(&self, batch: Vec<Committed>) {
        if batch.is_empty() {
            return;
        }
        {
            let mut queue = self.lock();
            if queue.len() + batch.len() > self.capacity {
                self.dropped
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
            } else {
                queue.extend(batch);
            }
        }
        self.ready.notify_one();
    }

    /// Readings queued.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The readings after `cursor` that continue it without a hole, at most `max`;
    /// and, when the next one queued does not continue it, the row id it starts at
    /// (the hole is `cursor + 1 ..` that id). Readings at or below `cursor` are
    /// dropped: they were evaluated.
    pub(crate) fn take_after(&self, cursor: i64, max: usize) -> (Vec<Committed>, Option<i64>) {
        let mut queue = self.lock();
        while queue.front().is_some_and(|c| c.id <= cursor) {
            queue.pop_front();
        }
        let mut out: Vec<Committed> = Vec::new();
        let mut next = cursor + 1;
        while out.len() < max && queue.front().is_some_and(|c| c.id == next) {
            if let Some(c) = queue.pop_front() {
                next = c.id + 1;
                out.push(c);
            }
        }
        let hole = match (out.is_empty(), queue.front()) {
            (true, Some(c)) => Some(c.id),
            _ => None,
        };
        (out, hole)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Committed>> {
        // A panic while holding the lock cannot leave the queue half-changed in a way
        // that matters: it only holds readings the store has anyway.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The readings a commit stored ([`vigil_store::ClinicalStore::commit_prepared`]), moved
/// out of its envelopes, for the rule runner.
pub fn committed(commits: &mut [EnvelopeCommit], rows: &[StoredRow]) -> Vec<Committed> {
    // Receipt as the store keeps it, to the millisecond: the engines' instants must come
    // out the same as when the reading is read back from the store (after a restart,
    // or through a hole); a doctor's ack or resolve names an episode by its opening
    // instant as the store keeps it.
    let received: Vec<_> = commits
        .iter()
        .map(|env| {
            DateTime::from_timestamp_millis(env.received.timestamp_millis()).unwrap_or(env.received)
        })
        .collect();
    let mut items: Vec<Vec<Option<Item>>> = commits
        .iter_mut()
        .map(|env| {
            std::mem::take(&mut env.items)
                .into_iter()
                .map(Some)
                .collect()
        })
        .collect();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let item = items
            .get_mut(row.envelope)
            .and_then(|env| env.get_mut(row.item))
            .and_then(Option::take);
        if let Some(Item::Store { reading, patient }) = item {
            let input = if reading.reading().measurement.reading_type() == ReadingType::EcgWaveform
            {
                Input::Ecg
            } else {
                Input::Reading(reading)
            };
            out.push(Committed {
                id: row.id,
                patient,
                received: received[row.envelope],
                input,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: i64) -> Committed {
        Committed {
            id,
            patient: PatientId::parse("p1").unwrap(),
            received: DateTime::<Utc>::MIN_UTC,
            input: Input::Ecg,
        }
    }

    fn ids(v: &[Committed]) -> Vec<i64> {
        v.iter().map(|c| c.id).collect()
    }

    #[test]
    fn takes_what_continues_the_cursor_and_reports_a_hole() {
        let feed = RuleFeed::new(100);
        feed.push(vec![c(1), c(2), c(3)]);
        feed.push(vec![c(5), c(6)]);
        let (taken, hole) = feed.take_after(0, 10);
        assert_eq!((ids(&taken), hole), (vec![1, 2, 3], None));
        // 4 is missing (released from quarantine by the API, say): a hole up to 5.
        let (taken, hole) = feed.take_after(3, 10);
        assert_eq!((ids(&taken), hole), (vec![], Some(5)));
        // The runner read 4 from the store; the feed carries on.
        let (taken, hole) = feed.take_after(4, 1);
        assert_eq!((ids(&taken), hole), (vec![5], None));
        let (taken, hole) = feed.take_after(5, 10);
        assert_eq!((ids(&taken), hole), (vec![6], None));
        assert!(feed.is_empty());
    }

    #[test]
    fn skips_what_the_cursor_passed() {
        let feed = RuleFeed::new(100);
        feed.push(vec![c(1), c(2), c(3), c(4)]);
        // The runner read 1..=3 from the store meanwhile.
        let (taken, hole) = feed.take_after(3, 10);
        assert_eq!((ids(&taken), hole), (vec![4], None));
    }

    #[test]
    fn a_full_feed_drops_whole_commits_and_counts_them() {
        let feed = RuleFeed::new(4);
        feed.push(vec![c(1), c(2), c(3)]);
        feed.push(vec![c(4), c(5)]);
        feed.push(vec![c(6)]);
        assert_eq!(feed.dropped.load(Ordering::Relaxed), 2);
        let (taken, hole) = feed.take_after(0, 10);
        assert_eq!((ids(&taken), hole), (vec![1, 2, 3], None));
        // 4 and 5 were dropped: a hole the store fills.
        let (taken, hole) = feed.take_after(3, 10);
        assert_eq!((ids(&taken), hole), (vec![], Some(6)));
    }
}
