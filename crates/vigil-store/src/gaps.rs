//! Gaps in each gateway's `batch_seq` (wire contract guarantee 6), kept as envelopes
//! are committed so the detector never rescans history.
//!
//! - **Baseline**: the first `batch_seq` committed from a gateway (or, for a store
//!   that had envelopes before gap tracking, its highest one then). Nothing below it
//!   is ever missing: the ingester may have started mid-stream.
//! - **Watermark** (`contiguous_through`): every `batch_seq` from the baseline up to it
//!   is committed. It advances as gaps fill.
//! - **Gaps** (`batch_gaps`): the missing ranges above the watermark and below the
//!   highest `batch_seq` committed, each with the receipt of the envelope that revealed
//!   it. An envelope that lands inside a gap splits it; the parts keep when the gap was
//!   first seen and how often it was requested, so a partly answered request keeps its
//!   backoff.
//! - **Request units**: a gap of at most [`GAP_WHOLE_MAX`] batches is one row, requested
//!   whole; a longer one is kept as rows of at most [`GAP_CHUNK`], each requested on
//!   its own. A jump of more than [`GAP_TRACKED_MAX`] batches is not a gap any outbox
//!   can answer: only the last [`GAP_TRACKED_MAX`] below it are tracked and the rest is
//!   reported as an operational alert (`batch_seq_jump`).
//! - A `batch_seq` above `i64::MAX` (a gateway that broke the contract) is stored as
//!   usual but not tracked: its ranges could not be compared in SQLite's integers.
//!
//! Counts over the store's life (gaps opened, batches found missing and recovered,
//! backfill requests made) are kept per gateway, so they survive restarts.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use sqlx::Row;
use vigil_model::GatewayId;

use crate::Error;
use crate::sqlite::{SqliteStore, corrupt, millis};

/// The longest gap requested in one piece.
pub const GAP_WHOLE_MAX: u64 = 10_000;
/// The pieces a longer gap is requested in.
pub const GAP_CHUNK: u64 = 1_000;
/// The most batches below a new one that are tracked as missing.
pub const GAP_TRACKED_MAX: u64 = 1_000_000;

/// The request units of a missing range `from..=to`: the range itself when it is at
/// most [`GAP_WHOLE_MAX`] long, else consecutive pieces of at most [`GAP_CHUNK`].
/// Empty when `from > to`. The caller bounds the range ([`GAP_TRACKED_MAX`]).
pub fn request_units(from: u64, to: u64) -> Vec<(u64, u64)> {
    if from > to {
        return Vec::new();
    }
    if to - from < GAP_WHOLE_MAX {
        return vec![(from, to)];
    }
    let mut out = Vec::new();
    let mut start = from;
    loop {
        let end = start.saturating_add(GAP_CHUNK - 1).min(to);
        out.push((start, end));
        if end >= to {
            return out;
        }
        start = end + 1;
    }
}

/// Where a gateway's `batch_seq` stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqMarks {
    /// The first `batch_seq` seen: nothing below it is requested.
    pub baseline: u64,
    /// Every `batch_seq` from the baseline to this one is committed.
    pub contiguous_through: u64,
    /// The highest `batch_seq` committed.
    pub highest: u64,
}

/// One missing range of a gateway's batches (a request unit: see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchGap {
    pub gateway_id: GatewayId,
    /// Inclusive.
    pub from_batch_seq: u64,
    pub to_batch_seq: u64,
    /// The receipt of the envelope that revealed it (the ingester's clock).
    pub first_seen: DateTime<Utc>,
    /// Backfill requests made for it so far.
    pub requests: u32,
    pub last_request: Option<DateTime<Utc>>,
    /// When it is requested again if still missing (none before the first request).
    pub next_request: Option<DateTime<Utc>>,
}

impl BatchGap {
    /// How many batches it misses.
    pub fn len(&self) -> u64 {
        self.to_batch_seq - self.from_batch_seq + 1
    }

    /// Never: a gap misses at least one batch.
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// A gateway with missing batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayGaps {
    pub gateway_id: GatewayId,
    pub marks: SeqMarks,
    /// Oldest `batch_seq` first.
    pub missing: Vec<BatchGap>,
}

/// Gap counts over the store's life, and what is missing now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GapTotals {
    /// Gaps opened (a gap split by a late batch is still one).
    pub gaps_opened: u64,
    /// Batches found missing, and those of them that arrived later.
    pub batches_missing: u64,
    pub batches_recovered: u64,
    /// Backfill requests made (recorded by [`SqliteStore::record_backfill`]).
    pub requests: u64,
    /// Batches missing now, in how many ranges.
    pub missing_now: u64,
    pub open_ranges: u64,
}

/// The state of one gap row, carried over when it is split.
struct GapRow {
    from: i64,
    to: i64,
    first_seen_ms: i64,
    requests: i64,
    last_request_ms: Option<i64>,
    next_request_ms: Option<i64>,
}

fn insert_gap_rows(tx: &Connection, gateway: &str, rows: &[GapRow]) -> Result<(), Error> {
    let mut insert = tx.prepare_cached(
        "INSERT INTO batch_gaps (gateway_id, from_seq, to_seq, first_seen_ms, requests,
             last_request_ms, next_request_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for r in rows {
        insert.execute(params![
            gateway,
            r.from,
            r.to,
            r.first_seen_ms,
            r.requests,
            r.last_request_ms,
            r.next_request_ms,
        ])?;
    }
    Ok(())
}

/// [`track`] for the envelopes of one transaction, in their order: (gateway,
/// batch_seq, received ms). A known gateway whose envelopes here continue its sequence
/// with nothing missing (the common case) costs one statement, which moves its marks;
/// a new gateway whose envelopes are consecutive, a read and an insert; any other falls
/// back to [`track`] envelope by envelope. Runs on the intake's writer
/// ([`crate::commit`]).
pub(crate) fn track_all(tx: &Connection, envelopes: &[(&str, u64, i64)]) -> Result<(), Error> {
    let mut order: Vec<&str> = Vec::new();
    let mut by_gateway: std::collections::HashMap<&str, Vec<(u64, i64)>> = Default::default();
    for (g, seq, received) in envelopes {
        let list = by_gateway.entry(*g).or_insert_with(|| {
            order.push(*g);
            Vec::new()
        });
        list.push((*seq, *received));
    }
    // The watermark and the highest move to the last batch, if the first continues
    // the highest with nothing open (the marks' read and their write were 9 % of the
    // ingester's samples taking in 1-reading envelopes; BENCHMARKS.md).
    let mut advance = tx.prepare_cached(
        "UPDATE gateway_seqs SET contiguous_through = ?3, highest = ?3
         WHERE gateway_id = ?1 AND contiguous_through = highest AND highest = ?2 - 1",
    )?;
    let mut known = tx.prepare_cached("SELECT 1 FROM gateway_seqs WHERE gateway_id = ?1")?;
    // A new gateway's row starts at its first batch (the baseline).
    let mut start = tx.prepare_cached(
        "INSERT INTO gateway_seqs (gateway_id, baseline, contiguous_through, highest)
         VALUES (?1, ?2, ?3, ?3)",
    )?;
    for g in order {
        let seqs = &by_gateway[g];
        let run: Option<Vec<i64>> = seqs.iter().map(|(s, _)| i64::try_from(*s).ok()).collect();
        let consecutive = run.as_ref().is_some_and(|run| {
            run.iter()
                .enumerate()
                .all(|(k, s)| i64::try_from(k).is_ok_and(|k| run[0].checked_add(k) == Some(*s)))
        });
        if let Some(run) = run.as_ref().filter(|_| consecutive) {
            let (first, last) = (run[0], run[run.len() - 1]);
            if advance.execute(params![g, first, last])? == 1 {
                continue;
            }
            if !known.exists([g])? {
                start.execute(params![g, first, last])?;
                continue;
            }
        }
        for (seq, received) in seqs {
            track(tx, g, *seq, *received)?;
        }
    }
    Ok(())
}

/// Records a newly committed envelope in its gateway's gap state, inside the commit's
/// transaction: a new gateway gets its baseline, a jump opens a gap, a batch inside a
/// gap splits it, and the watermark moves up to below the lowest gap left.
fn track(tx: &Connection, g: &str, batch_seq: u64, received_ms: i64) -> Result<(), Error> {
    let Ok(seq) = i64::try_from(batch_seq) else {
        return Ok(()); // beyond SQLite's integers: not tracked (module docs)
    };
    let marks: Option<(i64, i64)> = tx
        .prepare_cached(
            "SELECT contiguous_through, highest FROM gateway_seqs WHERE gateway_id = ?1",
        )?
        .query_row([g], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((through, highest)) = marks else {
        tx.prepare_cached(
            "INSERT INTO gateway_seqs (gateway_id, baseline, contiguous_through, highest)
             VALUES (?1, ?2, ?2, ?2)",
        )?
        .execute(params![g, seq])?;
        return Ok(());
    };
    if seq > highest {
        // highest < seq <= i64::MAX, so highest + 1 cannot overflow.
        let (from, to) = (highest + 1, seq - 1);
        if from <= to {
            open_gap(tx, g, (from, to), received_ms)?;
        }
        tx.prepare_cached("UPDATE gateway_seqs SET highest = ?1 WHERE gateway_id = ?2")?
            .execute(params![seq, g])?;
    } else if seq > through {
        fill(tx, g, seq)?;
    } else {
        // Below the baseline, or a batch the watermark already covers: nothing missing.
        return Ok(());
    }
    tx.prepare_cached(
        "UPDATE gateway_seqs SET contiguous_through =
             COALESCE((SELECT MIN(from_seq) - 1 FROM batch_gaps WHERE gateway_id = ?1), highest)
         WHERE gateway_id = ?1",
    )?
    .execute([g])?;
    Ok(())
}

/// Opens the gap `from..=to` (both within i64), bounded by [`GAP_TRACKED_MAX`].
fn open_gap(
    tx: &Connection,
    gateway: &str,
    (from, to): (i64, i64),
    received_ms: i64,
) -> Result<(), Error> {
    let len = to.abs_diff(from) + 1;
    let tracked_from = if len > GAP_TRACKED_MAX {
        // GAP_TRACKED_MAX fits an i64 and is less than `to - from + 1`.
        let tracked_from = to - (GAP_TRACKED_MAX as i64 - 1);
        tx.prepare_cached(
            "INSERT INTO ops_alerts (kind, subject, detail, at_ms) VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            "batch_seq_jump",
            gateway,
            format!(
                "batch_seq jumped from {} to {}: {len} batches missing, more than any outbox keeps; \
                 only {tracked_from}..={to} are requested, {from}..={} are not (check the gateway's state)",
                from - 1,
                to + 1,
                tracked_from - 1
            ),
            received_ms,
        ])?;
        tracked_from
    } else {
        from
    };
    // Both ends are non-negative here: the baseline is, and gaps lie above it.
    let rows: Vec<GapRow> = request_units(tracked_from as u64, to as u64)
        .into_iter()
        .map(|(a, b)| GapRow {
            from: a as i64,
            to: b as i64,
            first_seen_ms: received_ms,
            requests: 0,
            last_request_ms: None,
            next_request_ms: None,
        })
        .collect();
    insert_gap_rows(tx, gateway, &rows)?;
    tx.prepare_cached(
        "UPDATE gateway_seqs SET gaps_total = gaps_total + 1, missing_total = missing_total + ?1
         WHERE gateway_id = ?2",
    )?
    .execute(params![
        i64::try_from(len.min(GAP_TRACKED_MAX)).unwrap_or(i64::MAX),
        gateway
    ])?;
    Ok(())
}

/// A missing batch arrived: the gap row holding it is split around it.
fn fill(tx: &Connection, gateway: &str, seq: i64) -> Result<(), Error> {
    let gap = tx
        .prepare_cached(
            "SELECT from_seq, to_seq, first_seen_ms, requests, last_request_ms, next_request_ms
             FROM batch_gaps WHERE gateway_id = ?1 AND from_seq <= ?2
             ORDER BY from_seq DESC LIMIT 1",
        )?
        .query_row(params![gateway, seq], |r| {
            Ok(GapRow {
                from: r.get(0)?,
                to: r.get(1)?,
                first_seen_ms: r.get(2)?,
                requests: r.get(3)?,
                last_request_ms: r.get(4)?,
                next_request_ms: r.get(5)?,
            })
        })
        .optional()?;
    let Some(gap) = gap else {
        return Ok(()); // not missing (below a jump's untracked part)
    };
    if gap.to < seq {
        return Ok(());
    }
    tx.prepare_cached("DELETE FROM batch_gaps WHERE gateway_id = ?1 AND from_seq = ?2")?
        .execute(params![gateway, gap.from])?;
    let parts: Vec<GapRow> = [(gap.from, seq - 1), (seq + 1, gap.to)]
        .into_iter()
        .filter(|(a, b)| a <= b)
        .map(|(from, to)| GapRow { from, to, ..gap })
        .collect();
    insert_gap_rows(tx, gateway, &parts)?;
    tx.prepare_cached(
        "UPDATE gateway_seqs SET recovered_total = recovered_total + 1 WHERE gateway_id = ?1",
    )?
    .execute([gateway])?;
    Ok(())
}

/// Starts tracking a store that had envelopes before gap tracking: each gateway's
/// highest `batch_seq` is its baseline (its history is not searched for gaps, which
/// its outbox no longer keeps anyway). Runs only while nothing is tracked.
pub(crate) async fn start_tracking(pool: &sqlx::SqlitePool) -> Result<(), Error> {
    let tracked: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM gateway_seqs)")
        .fetch_one(pool)
        .await?;
    if !tracked {
        sqlx::query(
            "INSERT OR IGNORE INTO gateway_seqs (gateway_id, baseline, contiguous_through, highest)
             SELECT gateway_id, MAX(batch_seq), MAX(batch_seq), MAX(batch_seq)
             FROM envelopes WHERE batch_seq >= 0 GROUP BY gateway_id",
        )
        .execute(pool)
        .await?;
    }
    Ok(())
}

fn seq(row: &sqlx::sqlite::SqliteRow, i: usize) -> Result<u64, Error> {
    let v: i64 = row.try_get(i)?;
    u64::try_from(v).map_err(|e| corrupt("batch_seq", e))
}

fn batch_gap(row: &sqlx::sqlite::SqliteRow) -> Result<BatchGap, Error> {
    let from = seq(row, 1)?;
    let to = seq(row, 2)?;
    if from > to {
        return Err(corrupt("batch gap", format!("{from}..={to}")));
    }
    Ok(BatchGap {
        gateway_id: GatewayId::parse(&row.try_get::<String, _>(0)?)
            .map_err(|e| corrupt("gateway id", e))?,
        from_batch_seq: from,
        to_batch_seq: to,
        first_seen: millis(row.try_get(3)?)?,
        requests: u32::try_from(row.try_get::<i64, _>(4)?).unwrap_or(u32::MAX),
        last_request: row.try_get::<Option<i64>, _>(5)?.map(millis).transpose()?,
        next_request: row.try_get::<Option<i64>, _>(6)?.map(millis).transpose()?,
    })
}

/// The columns [`batch_gap`] reads, in its order.
macro_rules! gap_columns {
    () => {
        "gateway_id, from_seq, to_seq, first_seen_ms, requests, last_request_ms, next_request_ms"
    };
}

impl SqliteStore {
    /// Where a gateway's `batch_seq` stands; `None` for a gateway never seen.
    pub async fn seq_marks(&self, gateway: &GatewayId) -> Result<Option<SeqMarks>, Error> {
        let row = sqlx::query(
            "SELECT baseline, contiguous_through, highest FROM gateway_seqs WHERE gateway_id = ?",
        )
        .bind(gateway.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(SeqMarks {
                baseline: seq(&r, 0)?,
                contiguous_through: seq(&r, 1)?,
                highest: seq(&r, 2)?,
            })
        })
        .transpose()
    }

    /// Per gateway with missing batches: its marks and the missing ranges above its
    /// watermark and below its highest `batch_seq`, each with when it was first seen.
    pub async fn gateway_gaps(&self) -> Result<Vec<GatewayGaps>, Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            gap_columns!(),
            " FROM batch_gaps ORDER BY gateway_id, from_seq"
        ))
        .fetch_all(&self.pool)
        .await?;
        let mut out: Vec<GatewayGaps> = Vec::new();
        for row in &rows {
            let gap = batch_gap(row)?;
            match out.last_mut() {
                Some(g) if g.gateway_id == gap.gateway_id => g.missing.push(gap),
                _ => {
                    let marks = self.seq_marks(&gap.gateway_id).await?.ok_or_else(|| {
                        corrupt("batch gap", format!("{} has no marks", gap.gateway_id))
                    })?;
                    out.push(GatewayGaps {
                        gateway_id: gap.gateway_id.clone(),
                        marks,
                        missing: vec![gap],
                    });
                }
            }
        }
        Ok(out)
    }

    /// The gaps to request now, oldest first, at most `limit`: first seen at or before
    /// `seen_before` (open longer than the timeout), never requested or due again at
    /// or before `now`.
    pub async fn due_backfills(
        &self,
        seen_before: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<BatchGap>, Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            gap_columns!(),
            " FROM batch_gaps
             WHERE first_seen_ms <= ? AND COALESCE(next_request_ms, first_seen_ms) <= ?
             ORDER BY COALESCE(next_request_ms, first_seen_ms), gateway_id, from_seq LIMIT ?"
        ))
        .bind(seen_before.timestamp_millis())
        .bind(now.timestamp_millis())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(batch_gap).collect()
    }

    /// Records a backfill request for `from..=to` made at `at`: the gap rows within it
    /// (the range may have been split by batches arriving meanwhile) count one more
    /// request and are due again at `next`. Returns how many rows were still missing.
    pub async fn record_backfill(
        &self,
        gateway: &GatewayId,
        (from, to): (u64, u64),
        at: DateTime<Utc>,
        next: DateTime<Utc>,
    ) -> Result<u64, Error> {
        let (Ok(from), Ok(to)) = (i64::try_from(from), i64::try_from(to)) else {
            return Err(Error::Corrupt(format!(
                "backfill {from}..={to} is beyond the tracked batch_seq range"
            )));
        };
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE batch_gaps SET requests = requests + 1, last_request_ms = ?, next_request_ms = ?
             WHERE gateway_id = ? AND from_seq >= ? AND to_seq <= ?",
        )
        .bind(at.timestamp_millis())
        .bind(next.timestamp_millis())
        .bind(gateway.as_str())
        .bind(from)
        .bind(to)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(
            "UPDATE gateway_seqs SET requests_total = requests_total + 1 WHERE gateway_id = ?",
        )
        .bind(gateway.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(updated)
    }

    /// Gap counts over the store's life, and what is missing now.
    pub async fn gap_totals(&self) -> Result<GapTotals, Error> {
        let life = sqlx::query(
            "SELECT COALESCE(SUM(gaps_total), 0), COALESCE(SUM(missing_total), 0),
                    COALESCE(SUM(recovered_total), 0), COALESCE(SUM(requests_total), 0)
             FROM gateway_seqs",
        )
        .fetch_one(&self.pool)
        .await?;
        let now =
            sqlx::query("SELECT COALESCE(SUM(to_seq - from_seq + 1), 0), COUNT(*) FROM batch_gaps")
                .fetch_one(&self.pool)
                .await?;
        let n = |row: &sqlx::sqlite::SqliteRow, i: usize| -> Result<u64, Error> {
            let v: i64 = row.try_get(i)?;
            u64::try_from(v).map_err(|_| corrupt("gap count", v))
        };
        Ok(GapTotals {
            gaps_opened: n(&life, 0)?,
            batches_missing: n(&life, 1)?,
            batches_recovered: n(&life, 2)?,
            requests: n(&life, 3)?,
            missing_now: n(&now, 0)?,
            open_ranges: n(&now, 1)?,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

    use super::*;
    use crate::EnvelopeCommit;

    fn gw(id: &str) -> GatewayId {
        GatewayId::parse(id).unwrap()
    }

    fn at(ms: i64) -> DateTime<Utc> {
        millis(1_796_000_000_000 + ms).unwrap()
    }

    /// Commits empty envelopes of `gateway` with these `batch_seq`s, one commit each,
    /// received at `ms`.
    async fn commit(store: &SqliteStore, gateway: &str, seqs: &[u64], ms: i64) {
        for &batch_seq in seqs {
            store
                .commit(&[EnvelopeCommit {
                    gateway_id: gw(gateway),
                    batch_seq,
                    received: at(ms),
                    items: Vec::new(),
                }])
                .await
                .unwrap();
        }
    }

    async fn ranges(store: &SqliteStore, gateway: &str) -> Vec<(u64, u64)> {
        store
            .gateway_gaps()
            .await
            .unwrap()
            .into_iter()
            .filter(|g| g.gateway_id == gw(gateway))
            .flat_map(|g| g.missing)
            .map(|g| (g.from_batch_seq, g.to_batch_seq))
            .collect()
    }

    #[test]
    fn a_gap_is_requested_whole_up_to_ten_thousand_and_in_pieces_of_a_thousand_beyond() {
        assert_eq!(request_units(5, 4), []);
        assert_eq!(request_units(3, 3), [(3, 3)]);
        assert_eq!(request_units(1, 10_000), [(1, 10_000)]);
        let pieces = request_units(1, 10_001);
        assert_eq!(pieces.len(), 11);
        assert_eq!(pieces[0], (1, 1_000));
        assert_eq!(pieces[10], (10_001, 10_001));
        assert!(pieces.windows(2).all(|w| w[0].1 + 1 == w[1].0));
        assert!(pieces.iter().all(|(a, b)| b - a < GAP_CHUNK));
        // The end of the u64 range does not overflow.
        let top = request_units(u64::MAX - 20_000, u64::MAX);
        assert_eq!(top.len(), 21);
        assert_eq!(top.last(), Some(&(u64::MAX, u64::MAX)));
    }

    #[tokio::test]
    async fn the_first_batch_seen_is_the_baseline_and_nothing_below_it_is_missing() {
        let store = SqliteStore::in_memory().await.unwrap();
        commit(&store, "gw-1", &[1_000, 1_001], 0).await;
        // Older batches arriving later (a gateway draining its outbox) are no gap.
        commit(&store, "gw-1", &[10, 999], 5).await;
        assert_eq!(
            store.seq_marks(&gw("gw-1")).await.unwrap(),
            Some(SeqMarks {
                baseline: 1_000,
                contiguous_through: 1_001,
                highest: 1_001
            })
        );
        assert!(store.gateway_gaps().await.unwrap().is_empty());
        assert_eq!(store.gap_totals().await.unwrap(), GapTotals::default());
        assert_eq!(store.seq_marks(&gw("gw-2")).await.unwrap(), None);
    }

    #[tokio::test]
    async fn the_watermark_advances_as_gaps_fill_and_split_gaps_keep_their_history() {
        let store = SqliteStore::in_memory().await.unwrap();
        commit(&store, "gw-1", &[1, 2], 0).await;
        commit(&store, "gw-1", &[6], 100).await; // 3..=5 missing
        commit(&store, "gw-1", &[9], 200).await; // 7..=8 missing
        assert_eq!(ranges(&store, "gw-1").await, [(3, 5), (7, 8)]);
        let marks = store.seq_marks(&gw("gw-1")).await.unwrap().unwrap();
        assert_eq!((marks.contiguous_through, marks.highest), (2, 9));
        let gaps = store.gateway_gaps().await.unwrap();
        assert_eq!(gaps[0].missing[0].first_seen, at(100));
        assert_eq!(gaps[0].missing[1].first_seen, at(200));

        // Requested at 1000: counted, due again at 2000, not before.
        assert_eq!(
            store
                .due_backfills(at(100), at(1_000), 10)
                .await
                .unwrap()
                .len(),
            1
        );
        store
            .record_backfill(&gw("gw-1"), (3, 5), at(1_000), at(2_000))
            .await
            .unwrap();
        assert!(
            store
                .due_backfills(at(150), at(1_500), 10)
                .await
                .unwrap()
                .is_empty()
        );

        // 4 splits 3..=5; both parts keep when they were seen and their request.
        commit(&store, "gw-1", &[4], 1_200).await;
        let gaps = store.gateway_gaps().await.unwrap().remove(0).missing;
        assert_eq!(
            gaps.iter()
                .map(|g| (g.from_batch_seq, g.to_batch_seq))
                .collect::<Vec<_>>(),
            [(3, 3), (5, 5), (7, 8)]
        );
        assert!(gaps[..2].iter().all(|g| g.first_seen == at(100)
            && g.requests == 1
            && g.next_request == Some(at(2_000))));
        assert_eq!(
            store
                .seq_marks(&gw("gw-1"))
                .await
                .unwrap()
                .unwrap()
                .contiguous_through,
            2
        );
        let due = store.due_backfills(at(150), at(2_000), 10).await.unwrap();
        assert_eq!(
            due.iter()
                .map(|g| (g.from_batch_seq, g.to_batch_seq))
                .collect::<Vec<_>>(),
            [(3, 3), (5, 5)]
        );

        // Filling from the bottom moves the watermark to below the next gap, then to
        // the highest batch.
        commit(&store, "gw-1", &[3, 5], 1_300).await;
        assert_eq!(
            store
                .seq_marks(&gw("gw-1"))
                .await
                .unwrap()
                .unwrap()
                .contiguous_through,
            6
        );
        commit(&store, "gw-1", &[8, 7], 1_400).await;
        assert_eq!(
            store.seq_marks(&gw("gw-1")).await.unwrap(),
            Some(SeqMarks {
                baseline: 1,
                contiguous_through: 9,
                highest: 9
            })
        );
        assert_eq!(
            store.gap_totals().await.unwrap(),
            GapTotals {
                gaps_opened: 2,
                batches_missing: 5,
                batches_recovered: 5,
                requests: 1,
                missing_now: 0,
                open_ranges: 0
            }
        );
        // A redelivery of a recovered batch changes nothing.
        commit(&store, "gw-1", &[4], 1_500).await;
        assert_eq!(store.gap_totals().await.unwrap().batches_recovered, 5);
    }

    #[tokio::test]
    async fn a_huge_gap_is_kept_in_pieces_and_a_jump_beyond_any_outbox_is_bounded_and_reported() {
        let store = SqliteStore::in_memory().await.unwrap();
        commit(&store, "gw-1", &[1, 25_002], 0).await; // 2..=25_001 missing
        let r = ranges(&store, "gw-1").await;
        assert_eq!(r.len(), 25);
        assert_eq!((r[0], r[24]), ((2, 1_001), (24_002, 25_001)));
        assert_eq!(store.gap_totals().await.unwrap().missing_now, 25_000);
        // Due oldest first, lowest first, bounded per call.
        let due = store.due_backfills(at(0), at(0), 3).await.unwrap();
        assert_eq!(
            due.iter().map(|g| g.from_batch_seq).collect::<Vec<_>>(),
            [2, 1_002, 2_002]
        );

        commit(&store, "gw-2", &[1, 5_000_000_000], 0).await;
        let r = ranges(&store, "gw-2").await;
        assert_eq!(r.len() as u64, GAP_TRACKED_MAX / GAP_CHUNK);
        assert_eq!(r[0].0, 5_000_000_000 - GAP_TRACKED_MAX);
        assert_eq!(r.last().unwrap().1, 4_999_999_999);
        let marks = store.seq_marks(&gw("gw-2")).await.unwrap().unwrap();
        assert_eq!(
            marks.contiguous_through,
            5_000_000_000 - GAP_TRACKED_MAX - 1
        );
        let ops = store.ops_alerts(10).await.unwrap();
        assert_eq!(ops.len(), 1);
        assert_eq!(
            (ops[0].kind.as_str(), ops[0].subject.as_str()),
            ("batch_seq_jump", "gw-2")
        );
        assert!(
            ops[0].detail.contains("from 1 to 5000000000"),
            "{}",
            ops[0].detail
        );

        // A batch_seq beyond i64 is stored but not tracked; nothing breaks.
        commit(&store, "gw-3", &[7, u64::MAX], 0).await;
        assert_eq!(
            store.seq_marks(&gw("gw-3")).await.unwrap().unwrap().highest,
            7
        );
        assert!(ranges(&store, "gw-3").await.is_empty());
    }

    #[tokio::test]
    async fn a_store_with_envelopes_before_gap_tracking_starts_at_each_gateways_highest_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("clinical.db");
        let store = SqliteStore::open(&path).await.unwrap();
        commit(&store, "gw-1", &[1, 5, 9], 0).await;
        // As an older version left it: envelopes, no gap state.
        sqlx::query("DELETE FROM gateway_seqs")
            .execute(&store.pool)
            .await
            .unwrap();
        sqlx::query("DELETE FROM batch_gaps")
            .execute(&store.pool)
            .await
            .unwrap();
        store.close().await;
        let store = SqliteStore::open(&path).await.unwrap();
        assert_eq!(
            store.seq_marks(&gw("gw-1")).await.unwrap(),
            Some(SeqMarks {
                baseline: 9,
                contiguous_through: 9,
                highest: 9
            })
        );
        commit(&store, "gw-1", &[12], 10).await;
        assert_eq!(ranges(&store, "gw-1").await, [(10, 11)]);
    }

    /// The gap state of every gateway, as the API and the backfill requester see it.
    async fn gap_state(
        store: &SqliteStore,
    ) -> (Vec<Option<SeqMarks>>, Vec<GatewayGaps>, GapTotals) {
        let mut marks = Vec::new();
        for g in ["gw-1", "gw-2", "gw-3"] {
            marks.push(store.seq_marks(&gw(g)).await.unwrap());
        }
        (
            marks,
            store.gateway_gaps().await.unwrap(),
            store.gap_totals().await.unwrap(),
        )
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// A commit of many envelopes tracks gaps exactly as committing them one by
        /// one does (the commit groups gateways whose sequence simply continues into
        /// one statement; everything else goes envelope by envelope).
        #[test]
        fn committing_envelopes_together_tracks_gaps_as_committing_them_one_by_one(
            envelopes in proptest::collection::vec((0..3usize, 1..30u64), 1..60),
            cuts in proptest::collection::vec(1..12usize, 1..20),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let (together, alone) = runtime.block_on(async {
                let names = ["gw-1", "gw-2", "gw-3"];
                let envelope = |&(g, seq): &(usize, u64)| EnvelopeCommit {
                    gateway_id: gw(names[g]),
                    batch_seq: seq,
                    received: at(0),
                    items: Vec::new(),
                };
                let grouped = SqliteStore::in_memory().await.unwrap();
                let mut rest = envelopes.as_slice();
                for n in cuts.iter().cycle() {
                    if rest.is_empty() {
                        break;
                    }
                    let (group, after) = rest.split_at((*n).min(rest.len()));
                    let group: Vec<EnvelopeCommit> = group.iter().map(envelope).collect();
                    grouped.commit(&group).await.unwrap();
                    rest = after;
                }
                let single = SqliteStore::in_memory().await.unwrap();
                for e in &envelopes {
                    single.commit(&[envelope(e)]).await.unwrap();
                }
                (gap_state(&grouped).await, gap_state(&single).await)
            });
            proptest::prop_assert_eq!(together, alone);
        }
    }
}
