//! The gateway's durable state: two outboxes ([`vigil_outbox`]) under one directory.
//!
//! - `readings/`: every reading as measured (its wire JSON), appended the moment it is
//!   decoded.
//! - `envelopes/`: the envelopes formed from them, each with the range of reading ids
//!   it carries. An envelope's outbox id **is** its `batch_seq`: the outbox's ids are
//!   consecutive and survive reboots, exactly what wire guarantee 6 asks of `batch_seq`.
//!
//! An envelope is formed (and made durable) before its first publish and republished
//! byte for byte until the broker's PUBACK (wire: "republishes exactly the same
//! envelope"). On the PUBACK, its readings are acknowledged first, then the envelope;
//! so a reading is never acknowledged before the publish that carried it was, and an
//! acknowledged envelope never has pending readings. Acknowledged envelopes are
//! retained (7 days by default, within the cap) to answer `backfill`.
//!
//! The outbox cap is shared: half for the readings, half for the envelopes.
//!
//! Readings not yet in an envelope are those after the last envelope's range (or, when
//! that envelope was acknowledged and compacted away, every pending reading: by the
//! ordering above, its readings were acknowledged before it).

use std::ops::RangeInclusive;
use std::path::Path;

use chrono::{DateTime, FixedOffset, Utc};
use vigil_model::{GatewayId, Reading};
use vigil_outbox::{Config, Error, OpenReport, Outbox};
use vigil_wire::envelope::{ReadingJson, format_instant};

/// The most readings' bytes an envelope takes (a single larger reading goes alone).
pub const MAX_ENVELOPE_BYTES: usize = 1024 * 1024;

/// The bytes before an envelope record's envelope: its first and last reading id.
const RANGE: usize = 16;

#[derive(Debug)]
pub struct Store {
    readings: Outbox,
    envelopes: Outbox,
    /// The last reading id put into an envelope.
    formed_through: u64,
}

/// A formed envelope, as published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Formed {
    pub batch_seq: u64,
    pub readings: RangeInclusive<u64>,
    pub payload: Vec<u8>,
}

impl Store {
    /// Opens (or creates) the state in `dir`; reports what a crash left torn.
    pub fn open(dir: &Path, config: Config) -> Result<(Store, [OpenReport; 2]), Error> {
        // The cap is shared: half for the readings, half for the envelopes made of them.
        let half = Config {
            max_bytes: config.max_bytes / 2,
            ..config
        };
        let (readings, r1) = Outbox::open(&dir.join("readings"), half.clone())?;
        let (envelopes, r2) = Outbox::open(&dir.join("envelopes"), half)?;
        let last = envelopes.next_id() - 1;
        let formed_through = match envelopes.get(last)? {
            Some(rec) => range_of(&rec.payload).map_or(0, |r| *r.end()),
            None => readings
                .pending(0, 1)?
                .first()
                .map_or(readings.next_id() - 1, |r| r.id - 1),
        };
        Ok((
            Store {
                readings,
                envelopes,
                formed_through,
            },
            [r1, r2],
        ))
    }

    /// Appends readings durably; returns their ids. Refused as a whole with
    /// [`Error::Full`] when the cap has no room (see `vigil_outbox`).
    pub fn add(
        &mut self,
        readings: &[Reading],
        now: DateTime<Utc>,
    ) -> Result<RangeInclusive<u64>, Error> {
        let payloads: Vec<Vec<u8>> = readings
            .iter()
            .map(|r| serde_json::to_vec(&ReadingJson(r)).unwrap_or_default())
            .collect();
        let refs: Vec<&[u8]> = payloads.iter().map(Vec::as_slice).collect();
        self.readings.append_batch(&refs, now.timestamp_millis())
    }

    /// Readings waiting to be formed, and the receipt time of the oldest.
    pub fn unformed(&self) -> Result<(u64, Option<i64>), Error> {
        let first = self.readings.pending(self.formed_through, 1)?;
        let count = self.readings.next_id() - 1 - self.formed_through;
        Ok((count, first.first().map(|r| r.at_ms)))
    }

    /// Forms one envelope of at most `max` unformed readings and at most
    /// [`MAX_ENVELOPE_BYTES`] (one reading at least), durably, with the next
    /// `batch_seq`; `None` when there is nothing to form.
    pub fn form(
        &mut self,
        gateway: &GatewayId,
        max: usize,
        now: DateTime<Utc>,
        offset: FixedOffset,
    ) -> Result<Option<Formed>, Error> {
        let mut readings = self.readings.pending(self.formed_through, max)?;
        let mut size = 0;
        let fit = readings
            .iter()
            .take_while(|r| {
                size += r.payload.len() + 1;
                size <= MAX_ENVELOPE_BYTES
            })
            .count()
            .max(1);
        readings.truncate(fit);
        let (Some(first), Some(last)) = (readings.first(), readings.last()) else {
            return Ok(None);
        };
        let batch_seq = self.envelopes.next_id();
        // The envelope is written around the readings' stored JSON, so they travel
        // exactly as they were measured and stored.
        let mut payload = serde_json::to_vec(&serde_json::json!({
            "schema": vigil_wire::READINGS_SCHEMA,
            "gateway_id": gateway,
            "batch_seq": batch_seq,
            "sent_at": format_instant(&now.with_timezone(&offset)),
        }))
        .unwrap_or_default();
        payload.pop(); // the closing brace
        payload.extend_from_slice(b",\"readings\":[");
        for (i, r) in readings.iter().enumerate() {
            if i > 0 {
                payload.push(b',');
            }
            payload.extend_from_slice(&r.payload);
        }
        payload.extend_from_slice(b"]}");
        let mut record = Vec::with_capacity(RANGE + payload.len());
        record.extend_from_slice(&first.id.to_le_bytes());
        record.extend_from_slice(&last.id.to_le_bytes());
        record.extend_from_slice(&payload);
        let id = self.envelopes.append(&record, now.timestamp_millis())?;
        debug_assert_eq!(id, batch_seq);
        self.formed_through = last.id;
        Ok(Some(Formed {
            batch_seq,
            readings: first.id..=last.id,
            payload,
        }))
    }

    /// Envelopes not yet acknowledged with `batch_seq` above `after`, in order.
    pub fn pending(&self, after: u64, limit: usize) -> Result<Vec<Formed>, Error> {
        self.envelopes
            .pending(after, limit)?
            .into_iter()
            .map(|rec| formed(rec.id, &rec.payload))
            .collect()
    }

    /// A formed envelope still kept (pending, or acknowledged and retained).
    pub fn envelope(&self, batch_seq: u64) -> Result<Option<Formed>, Error> {
        self.envelopes
            .get(batch_seq)?
            .map(|rec| formed(rec.id, &rec.payload))
            .transpose()
    }

    /// The broker acknowledged the publish of `batch_seq`: its readings, then it.
    pub fn acked(&mut self, batch_seq: u64) -> Result<(), Error> {
        if self.envelopes.is_acked(batch_seq) {
            return Ok(());
        }
        if let Some(rec) = self.envelopes.get(batch_seq)?
            && let Some(range) = range_of(&rec.payload)
        {
            self.readings.ack(*range.start(), *range.end())?;
        }
        self.envelopes.ack(batch_seq, batch_seq)
    }

    /// Marks `batch_seq` acknowledged without a publish: fault injection only (a batch
    /// "lost" between gateway and platform, for the platform's gap detection).
    pub fn drop_unsent(&mut self, batch_seq: u64) -> Result<(), Error> {
        self.acked(batch_seq)
    }

    /// Readings not yet acknowledged (in envelopes or not).
    pub fn depth(&self) -> u64 {
        self.readings.stats().pending_records
    }

    /// Envelopes not yet acknowledged.
    pub fn envelopes_pending(&self) -> u64 {
        self.envelopes.stats().pending_records
    }

    /// Acknowledged records (readings and envelopes) the cap deleted before their
    /// retention ended, since the outboxes were opened.
    pub fn evicted(&self) -> u64 {
        let (readings, envelopes) = self.stats();
        readings.evicted_records + envelopes.evicted_records
    }

    /// The counters of both outboxes: (readings, envelopes).
    pub fn stats(&self) -> (vigil_outbox::Stats, vigil_outbox::Stats) {
        (self.readings.stats(), self.envelopes.stats())
    }

    /// Deletes what is acknowledged and past retention.
    pub fn compact(&mut self, now: DateTime<Utc>) -> Result<(), Error> {
        self.readings.compact(now.timestamp_millis())?;
        self.envelopes.compact(now.timestamp_millis())?;
        Ok(())
    }
}

fn range_of(record: &[u8]) -> Option<RangeInclusive<u64>> {
    let from = u64::from_le_bytes(record.get(..8)?.try_into().ok()?);
    let to = u64::from_le_bytes(record.get(8..RANGE)?.try_into().ok()?);
    Some(from..=to)
}

fn formed(batch_seq: u64, record: &[u8]) -> Result<Formed, Error> {
    let readings = range_of(record).ok_or_else(|| Error::Io {
        path: "envelopes".into(),
        source: std::io::Error::other(format!("envelope {batch_seq} has no reading range")),
    })?;
    Ok(Formed {
        batch_seq,
        readings,
        payload: record[RANGE..].to_vec(),
    })
}
