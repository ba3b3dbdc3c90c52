//! A durable store-and-forward queue of opaque records, for the edge agent's readings
//! and envelopes: what is appended survives a crash or a power loss until it is
//! acknowledged, and a while after (for backfill).
//!
//! # Layout
//!
//! A directory of segment files, `{first_id:020}.seg`, each a run of records with
//! consecutive ids, and `acks.log`, the acknowledged id ranges. A record is
//!
//! ```text
//! len u32 LE | crc u32 LE | id u64 LE | at_ms i64 LE | payload (len bytes)
//! ```
//!
//! with `crc` the CRC-32 of everything after it. An acknowledgement is
//! `from u64 LE | to u64 LE | crc u32 LE` (an inclusive range).
//!
//! # Invariants
//!
//! 1. **Ids are consecutive and never reused.** The first record is 1; each append
//!    takes the next id, also across reopen (the newest segment is never deleted, so
//!    the next id is always known). A refused append takes no id. The edge agent uses
//!    this for `batch_seq`, which must increase by exactly one per envelope.
//! 2. **Appended means durable** (with [`Fsync::Always`], the default): `append` and
//!    `append_batch` return only after the data and the file's length are on disk
//!    (`fdatasync`), and a new segment's directory entry too. A crash or power loss
//!    loses nothing they returned; it may leave a torn record at the end of the newest
//!    segment, which was never confirmed and is cut off at the next open.
//! 3. **Acknowledged means never pending again**: `ack` returns after the range is on
//!    disk. A torn acknowledgement at the end of `acks.log` was never confirmed and is
//!    ignored: its records are pending again (delivered at least once).
//! 4. **Nothing pending is deleted.** Segments go only from the front, only when every
//!    record in them is acknowledged, and not the newest one.
//! 5. **Acknowledged records are retained** for [`Config::retention`] (for a platform's
//!    `backfill`), unless the disk cap needs the room.
//!
//! # The disk cap
//!
//! [`Config::max_bytes`] bounds the segments' size (a segment is at most an eighth of
//! it). When an append would pass it, the newest segment is closed if it is all
//! acknowledged, and the oldest fully-acknowledged segments are deleted, retention or
//! not (counted in [`Stats::evicted_records`]). If that is not enough, the append is refused with
//! [`Error::Full`] and counted in [`Stats::refused_records`]: what is pending is never
//! dropped to make room. The caller decides what refusal means: a glucometer or a
//! blood-pressure cuff keeps its own memory and is read again later (by sequence
//! number), a streaming ECG chunk is lost and must be reported.
//!
//! A corrupt record in the middle of the log (a disk fault, not a crash) cannot be
//! skipped safely: the rest of that segment is reported in [`OpenReport`] and left on
//! disk for inspection, and the ids it held are missing from `pending`. A bad record is
//! taken for a torn tail (and cut) only when it is in the newest segment and no good
//! record follows it; otherwise appends go on in a new segment after the highest id
//! still readable, so no id is ever used twice.
//!
//! A write or an acknowledgement whose sync fails is rolled back (the file cut back to
//! where the index ends); if even that fails, the outbox refuses appends until it is
//! opened again.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::ops::RangeInclusive;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Largest payload of one record.
pub const MAX_RECORD: usize = 16 * 1024 * 1024;

const HEADER: usize = 24;
const ACK_ENTRY: usize = 20;
const ACKS: &str = "acks.log";

/// Errors of the outbox; each names the file and what to do where it can.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("outbox {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "outbox full: {needed} more bytes would pass the cap of {cap} bytes with everything acknowledged already removed; the records were refused"
    )]
    Full { needed: u64, cap: u64 },
    #[error("a record of {len} bytes is larger than the outbox's limit of {MAX_RECORD}")]
    TooLarge { len: usize },
    #[error("cannot acknowledge {from}..={to}: ids run from 1 to {last}")]
    UnknownIds { from: u64, to: u64, last: u64 },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// When appends and acknowledgements reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Before `append`/`ack` return (power-loss safe). The default.
    Always,
    /// Left to the operating system: survives a crash of the process, not a power
    /// loss. For tests and measurements only.
    Never,
}

#[derive(Debug, Clone)]
pub struct Config {
    /// A segment is closed and a new one started past this size.
    pub segment_bytes: u64,
    /// The cap on the segments' total size (see the crate docs).
    pub max_bytes: u64,
    /// How long acknowledged records are kept (milliseconds), for backfill.
    pub retention_ms: i64,
    pub fsync: Fsync,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            segment_bytes: 4 * 1024 * 1024,
            max_bytes: 256 * 1024 * 1024,
            retention_ms: 7 * 24 * 3600 * 1000,
            fsync: Fsync::Always,
        }
    }
}

/// One record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: u64,
    /// When it was appended (the caller's clock, milliseconds since the epoch).
    pub at_ms: i64,
    pub payload: Vec<u8>,
}

/// What opening found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Bytes cut off the end of the newest segment: a record torn by a crash, never
    /// confirmed to the caller.
    pub torn_bytes: u64,
    /// Bytes cut off the end of `acks.log` (a torn acknowledgement).
    pub torn_ack_bytes: u64,
    /// Segments with a corrupt record before their end: (file, offset). The records
    /// from there on are unreadable.
    pub corrupt: Vec<(PathBuf, u64)>,
}

/// Counters and sizes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub pending_records: u64,
    pub bytes: u64,
    pub segments: usize,
    /// Records refused because the cap was reached with nothing acknowledged to free.
    pub refused_records: u64,
    /// Acknowledged records deleted before their retention ended, for room.
    pub evicted_records: u64,
}

#[derive(Debug)]
struct Segment {
    first: u64,
    path: PathBuf,
    /// Offset of each record; record `first + i` is at `offsets[i]`.
    offsets: Vec<u32>,
    bytes: u64,
    last_at_ms: i64,
}

impl Segment {
    fn end(&self) -> u64 {
        self.first + self.offsets.len() as u64
    }
}

/// Inclusive id ranges, merged.
#[derive(Debug, Default, Clone)]
struct Ranges(BTreeMap<u64, u64>);

impl Ranges {
    fn insert(&mut self, from: u64, to: u64) {
        let (mut from, mut to) = (from, to);
        // Merge with a range that starts before `from` and reaches it.
        if let Some((&s, &e)) = self.0.range(..=from).next_back()
            && e.saturating_add(1) >= from
        {
            from = s;
            to = to.max(e);
        }
        // Absorb the ranges starting within [from, to + 1].
        let within: Vec<(u64, u64)> = self
            .0
            .range(from..=to.saturating_add(1))
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in within {
            self.0.remove(&s);
            to = to.max(e);
        }
        self.0.insert(from, to);
    }

    /// The end of the acknowledged run holding `id`, if it is acknowledged.
    fn end_of(&self, id: u64) -> Option<u64> {
        self.0
            .range(..=id)
            .next_back()
            .and_then(|(_, &e)| (id <= e).then_some(e))
    }

    fn contains(&self, id: u64) -> bool {
        self.0
            .range(..=id)
            .next_back()
            .is_some_and(|(_, &e)| id <= e)
    }

    /// How many ids of [from, end) are in the set.
    fn count_in(&self, from: u64, end: u64) -> u64 {
        let mut n = 0;
        let start = self.0.range(..=from).next_back().map_or(from, |(&s, _)| s);
        for (&s, &e) in self.0.range(start..end) {
            let lo = s.max(from);
            let hi = e.min(end.saturating_sub(1));
            if lo <= hi {
                n += hi - lo + 1;
            }
        }
        n
    }

    /// Forgets the ids from `end` on.
    fn clip_from(&mut self, end: u64) {
        let above: Vec<(u64, u64)> = self
            .0
            .range(..)
            .filter(|(_, e)| **e >= end)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, _) in above {
            self.0.remove(&s);
            if s < end {
                self.0.insert(s, end - 1);
            }
        }
    }

    /// Forgets the ids below `first`.
    fn clip_below(&mut self, first: u64) {
        let below: Vec<(u64, u64)> = self.0.range(..first).map(|(&s, &e)| (s, e)).collect();
        for (s, e) in below {
            self.0.remove(&s);
            if e >= first {
                self.0.insert(first, e);
            }
        }
    }
}

/// The outbox; see the crate docs for its invariants.
#[derive(Debug)]
pub struct Outbox {
    dir: PathBuf,
    config: Config,
    segments: Vec<Segment>,
    writer: File,
    acked: Ranges,
    acks: File,
    stats: Stats,
    /// A failed write could not be rolled back: appends refused until reopened.
    broken: bool,
}

fn crc(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.seg"))
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

/// What [`scan`] found in a segment file.
struct Scanned {
    offsets: Vec<u32>,
    /// The length up to the end of the last good record.
    valid: u64,
    last_at_ms: i64,
    /// A bad record was met before the end.
    bad: bool,
    /// The highest id of a good record found after the bad one: the bad record was not
    /// a torn tail (a crash tears only the last write) but damage in the middle.
    later: Option<u64>,
}

/// Whether a good record of id above `min_id` starts at `at`: (its id, its end).
fn record_at(data: &[u8], at: usize, min_id: u64) -> Option<(u64, usize)> {
    let head = data.get(at..at + HEADER)?;
    let len = u32::from_le_bytes(head[0..4].try_into().ok()?) as usize;
    let sum = u32::from_le_bytes(head[4..8].try_into().ok()?);
    let id = u64::from_le_bytes(head[8..16].try_into().ok()?);
    if len > MAX_RECORD || id < min_id || id > min_id.saturating_add(1 << 32) {
        return None;
    }
    let body = data.get(at + HEADER..at + HEADER + len)?;
    (crc(&[&head[8..24], body]) == sum).then_some((id, at + HEADER + len))
}

/// Reads the records of a segment file.
fn scan(path: &Path, first: u64) -> Result<Scanned, Error> {
    let data = std::fs::read(path).map_err(io(path))?;
    let mut out = Scanned {
        offsets: Vec::new(),
        valid: 0,
        last_at_ms: 0,
        bad: false,
        later: None,
    };
    let mut at = 0usize;
    while at < data.len() {
        let expected = first + out.offsets.len() as u64;
        match record_at(&data, at, expected) {
            Some((id, end)) if id == expected => {
                out.offsets.push(at as u32);
                out.last_at_ms =
                    i64::from_le_bytes(data[at + 16..at + 24].try_into().unwrap_or_default());
                at = end;
                out.valid = at as u64;
            }
            _ => {
                out.bad = true;
                // Look for any good record further on.
                let mut probe = at + 1;
                while probe + HEADER <= data.len() {
                    if let Some((id, end)) = record_at(&data, probe, expected) {
                        out.later = Some(out.later.map_or(id, |l: u64| l.max(id)));
                        probe = end;
                    } else {
                        probe += 1;
                    }
                }
                return Ok(out);
            }
        }
    }
    Ok(out)
}

impl Outbox {
    /// Opens (or creates) the outbox in `dir`, cutting off what a crash tore.
    pub fn open(dir: &Path, config: Config) -> Result<(Outbox, OpenReport), Error> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut report = OpenReport::default();
        let mut firsts: Vec<u64> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".seg")?.parse::<u64>().ok()
            })
            .collect();
        firsts.sort_unstable();
        let mut segments = Vec::new();
        // A newest segment damaged in the middle is kept as it is; appends go on in a
        // new segment after the highest id it still shows, so no id is used twice.
        let mut resume_after: Option<u64> = None;
        for (i, &first) in firsts.iter().enumerate() {
            let path = segment_path(dir, first);
            let found = scan(&path, first)?;
            let newest = i + 1 == firsts.len();
            let size = std::fs::metadata(&path).map_err(io(&path))?.len();
            let mut bytes = size;
            if found.bad && newest && found.later.is_none() {
                // A torn tail: never confirmed. Cut it off so appends follow valid data.
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io(&path))?;
                f.set_len(found.valid).map_err(io(&path))?;
                f.sync_all().map_err(io(&path))?;
                report.torn_bytes = size - found.valid;
                bytes = found.valid;
            } else if found.bad {
                report.corrupt.push((path.clone(), found.valid));
                if newest {
                    resume_after = Some(found.later.unwrap_or(first));
                }
            }
            segments.push(Segment {
                first,
                path,
                offsets: found.offsets,
                bytes,
                last_at_ms: found.last_at_ms,
            });
        }
        if let Some(last) = resume_after {
            let first = last + 1;
            let path = segment_path(dir, first);
            File::create(&path).map_err(io(&path))?;
            sync_dir(dir)?;
            segments.push(Segment {
                first,
                path,
                offsets: Vec::new(),
                bytes: 0,
                last_at_ms: 0,
            });
        }
        if segments.is_empty() {
            let path = segment_path(dir, 1);
            File::create(&path).map_err(io(&path))?;
            sync_dir(dir)?;
            segments.push(Segment {
                first: 1,
                path,
                offsets: Vec::new(),
                bytes: 0,
                last_at_ms: 0,
            });
        }
        let active = segments.last().map(|s| s.path.clone()).unwrap_or_default();
        let writer = OpenOptions::new()
            .append(true)
            .open(&active)
            .map_err(io(&active))?;
        // Acknowledgements: whole entries with a good checksum; a torn tail is cut.
        let acks_path = dir.join(ACKS);
        let data = match std::fs::read(&acks_path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io(&acks_path)(e)),
        };
        let mut acked = Ranges::default();
        let mut valid = 0;
        for entry in data.chunks_exact(ACK_ENTRY) {
            let from = u64::from_le_bytes(entry[0..8].try_into().unwrap_or_default());
            let to = u64::from_le_bytes(entry[8..16].try_into().unwrap_or_default());
            let sum = u32::from_le_bytes(entry[16..20].try_into().unwrap_or_default());
            if crc(&[&entry[..16]]) != sum || from > to {
                break;
            }
            acked.insert(from, to);
            valid += ACK_ENTRY;
        }
        let acks = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&acks_path)
            .map_err(io(&acks_path))?;
        if valid < data.len() {
            acks.set_len(valid as u64).map_err(io(&acks_path))?;
            acks.sync_all().map_err(io(&acks_path))?;
            report.torn_ack_bytes = (data.len() - valid) as u64;
        }
        if let Some(first) = segments.first().map(|s| s.first) {
            acked.clip_below(first);
        }
        // Acknowledgements of ids never confirmed (beyond the last record) mean nothing.
        let next = segments.last().map_or(1, Segment::end);
        acked.clip_from(next);
        let mut outbox = Outbox {
            dir: dir.to_owned(),
            config,
            segments,
            writer,
            acked,
            acks,
            stats: Stats::default(),
            broken: false,
        };
        outbox.recount();
        Ok((outbox, report))
    }

    fn recount(&mut self) {
        self.stats.bytes = self.segments.iter().map(|s| s.bytes).sum();
        self.stats.segments = self.segments.len();
        self.stats.pending_records = self
            .segments
            .iter()
            .map(|s| s.offsets.len() as u64 - self.acked.count_in(s.first, s.end()))
            .sum();
    }

    /// The id the next append takes.
    pub fn next_id(&self) -> u64 {
        self.segments.last().map_or(1, Segment::end)
    }

    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }

    /// Appends one record; see [`Outbox::append_batch`].
    pub fn append(&mut self, payload: &[u8], at_ms: i64) -> Result<u64, Error> {
        self.append_batch(&[payload], at_ms).map(|r| *r.start())
    }

    /// Appends records in one write and one sync; returns their ids. All or nothing:
    /// refused as a whole when the cap has no room for them.
    pub fn append_batch(
        &mut self,
        payloads: &[&[u8]],
        at_ms: i64,
    ) -> Result<RangeInclusive<u64>, Error> {
        let first_id = self.next_id();
        if self.broken {
            return Err(Error::Io {
                path: self.dir.clone(),
                source: std::io::Error::other(
                    "an earlier write could not be undone; open the outbox again",
                ),
            });
        }
        if payloads.is_empty() {
            return Ok(first_id..=first_id.saturating_sub(1));
        }
        if let Some(p) = payloads.iter().find(|p| p.len() > MAX_RECORD) {
            return Err(Error::TooLarge { len: p.len() });
        }
        let needed: u64 = payloads.iter().map(|p| (HEADER + p.len()) as u64).sum();
        // A segment is closed past its size (at most an eighth of the cap, so closed,
        // acknowledged segments can always make room), or where an offset would not
        // fit the index's 32 bits.
        let segment_bytes = self
            .config
            .segment_bytes
            .min(self.config.max_bytes / 8)
            .max(1);
        let full = |s: &Segment| {
            !s.offsets.is_empty()
                && (s.bytes >= segment_bytes || s.bytes + needed > u64::from(u32::MAX))
        };
        if self.segments.last().is_some_and(full) {
            self.rotate()?;
        }
        if self.stats.bytes + needed > self.config.max_bytes {
            // Only closed segments are deleted: close the newest when it is all
            // acknowledged, so it can go too.
            if self.segments.last().is_some_and(|s| {
                !s.offsets.is_empty()
                    && self.acked.count_in(s.first, s.end()) == s.offsets.len() as u64
            }) {
                self.rotate()?;
            }
            self.reclaim(at_ms, true)?;
            if self.stats.bytes + needed > self.config.max_bytes {
                self.stats.refused_records += payloads.len() as u64;
                return Err(Error::Full {
                    needed,
                    cap: self.config.max_bytes,
                });
            }
        }
        let mut buf = Vec::with_capacity(needed as usize);
        let mut offsets = Vec::with_capacity(payloads.len());
        let base = self.segments.last().map_or(0, |s| s.bytes);
        for (i, p) in payloads.iter().enumerate() {
            let id = first_id + i as u64;
            offsets.push((base + buf.len() as u64) as u32);
            let mut meta = [0u8; 16];
            meta[..8].copy_from_slice(&id.to_le_bytes());
            meta[8..].copy_from_slice(&at_ms.to_le_bytes());
            buf.extend_from_slice(&(p.len() as u32).to_le_bytes());
            buf.extend_from_slice(&crc(&[&meta, p]).to_le_bytes());
            buf.extend_from_slice(&meta);
            buf.extend_from_slice(p);
        }
        let Some(active) = self.segments.last_mut() else {
            return Err(no_segment());
        };
        let path = active.path.clone();
        let written = self.writer.write_all(&buf).and_then(|()| {
            if self.config.fsync == Fsync::Always {
                self.writer.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            // Not confirmed: whatever part was written is cut, so the file ends where
            // the index does. If even that fails, the outbox refuses further appends
            // until it is opened again (which finds the file's real end).
            if self
                .writer
                .set_len(active.bytes)
                .and_then(|()| self.writer.sync_data())
                .is_err()
            {
                self.broken = true;
            }
            return Err(io(&path)(e));
        }
        active.offsets.extend(offsets);
        active.bytes += needed;
        active.last_at_ms = at_ms;
        self.stats.bytes += needed;
        self.stats.pending_records += payloads.len() as u64;
        Ok(first_id..=first_id + payloads.len() as u64 - 1)
    }

    fn rotate(&mut self) -> Result<(), Error> {
        let first = self.next_id();
        let path = segment_path(&self.dir, first);
        if self.config.fsync == Fsync::Always {
            let old = self
                .segments
                .last()
                .map(|s| s.path.clone())
                .unwrap_or_default();
            self.writer.sync_all().map_err(io(&old))?;
        }
        self.writer = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        if self.config.fsync == Fsync::Always {
            sync_dir(&self.dir)?;
        }
        self.segments.push(Segment {
            first,
            path,
            offsets: Vec::new(),
            bytes: 0,
            last_at_ms: 0,
        });
        self.stats.segments = self.segments.len();
        Ok(())
    }

    /// Acknowledges ids `from..=to` (already acknowledged ones are fine): they are
    /// never pending again. Returns once that is on disk.
    pub fn ack(&mut self, from: u64, to: u64) -> Result<(), Error> {
        let last = self.next_id() - 1;
        if from == 0 || from > to || to > last {
            return Err(Error::UnknownIds { from, to, last });
        }
        let mut entry = [0u8; ACK_ENTRY];
        entry[..8].copy_from_slice(&from.to_le_bytes());
        entry[8..16].copy_from_slice(&to.to_le_bytes());
        let sum = crc(&[&entry[..16]]);
        entry[16..].copy_from_slice(&sum.to_le_bytes());
        let path = self.dir.join(ACKS);
        let before = self.acks.metadata().map_err(io(&path))?.len();
        let written = self.acks.write_all(&entry).and_then(|()| {
            if self.config.fsync == Fsync::Always {
                self.acks.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            // Not confirmed: cut the partial entry, so later ones stay readable.
            let _ = self.acks.set_len(before);
            return Err(io(&path)(e));
        }
        let first = self.segments.first().map_or(1, |s| s.first);
        if to >= first {
            self.acked.insert(from.max(first), to);
        }
        self.recount();
        Ok(())
    }

    /// Whether `id` has been acknowledged (ids no longer kept count as acknowledged).
    pub fn is_acked(&self, id: u64) -> bool {
        id < self.segments.first().map_or(1, |s| s.first) || self.acked.contains(id)
    }

    /// Up to `limit` pending records with ids above `after`, in id order.
    pub fn pending(&self, after: u64, limit: usize) -> Result<Vec<Record>, Error> {
        let mut out = Vec::new();
        for s in &self.segments {
            if s.end() <= after + 1 {
                continue;
            }
            let mut file = None;
            let mut id = (after + 1).max(s.first);
            while id < s.end() {
                if out.len() >= limit {
                    return Ok(out);
                }
                if let Some(end) = self.acked.end_of(id) {
                    id = end + 1; // past the acknowledged run at once
                    continue;
                }
                if file.is_none() {
                    file = Some(File::open(&s.path).map_err(io(&s.path))?);
                }
                if let Some(f) = &file {
                    out.push(read_record(f, s, id)?);
                }
                id += 1;
            }
        }
        Ok(out)
    }

    /// A record still kept (pending, or acknowledged within retention).
    pub fn get(&self, id: u64) -> Result<Option<Record>, Error> {
        let Some(s) = self.segments.iter().find(|s| s.first <= id && id < s.end()) else {
            return Ok(None);
        };
        let f = File::open(&s.path).map_err(io(&s.path))?;
        read_record(&f, s, id).map(Some)
    }

    /// The oldest id still kept.
    pub fn first_kept(&self) -> u64 {
        self.segments.first().map_or(1, |s| s.first)
    }

    /// Deletes the front segments whose records are all acknowledged and whose
    /// retention ended by `now_ms`. Returns the records deleted.
    pub fn compact(&mut self, now_ms: i64) -> Result<u64, Error> {
        self.reclaim(now_ms, false)
    }

    /// Deletes fully acknowledged front segments (never the newest): those past
    /// retention at `now_ms`, or, under `pressure`, any.
    fn reclaim(&mut self, now_ms: i64, pressure: bool) -> Result<u64, Error> {
        let mut failed = None;
        let mut removed = 0u64;
        let mut gone = 0;
        while gone + 1 < self.segments.len() {
            let s = &self.segments[gone];
            let all_acked = self.acked.count_in(s.first, s.end()) == s.offsets.len() as u64;
            let expired = s.last_at_ms.saturating_add(self.config.retention_ms) <= now_ms;
            if !all_acked || !(expired || pressure) {
                break;
            }
            if let Err(e) = std::fs::remove_file(&s.path) {
                failed = Some(io(&s.path)(e));
                break;
            }
            if pressure && !expired {
                self.stats.evicted_records += s.offsets.len() as u64;
            }
            removed += s.offsets.len() as u64;
            gone += 1;
        }
        if gone == 0 {
            return failed.map_or(Ok(0), Err);
        }
        self.segments.drain(..gone);
        // The deletions are durable before the acknowledgements they make moot go.
        sync_dir(&self.dir)?;
        let first = self.first_kept();
        self.acked.clip_below(first);
        self.rewrite_acks()?;
        self.recount();
        failed.map_or(Ok(removed), Err)
    }

    /// Rewrites `acks.log` with the ranges still relevant (atomically: a new file,
    /// synced, renamed over the old, the directory synced).
    fn rewrite_acks(&mut self) -> Result<(), Error> {
        let path = self.dir.join(ACKS);
        let tmp = self.dir.join("acks.log.tmp");
        let mut buf = Vec::with_capacity(self.acked.0.len() * ACK_ENTRY);
        for (&from, &to) in &self.acked.0 {
            let mut entry = [0u8; ACK_ENTRY];
            entry[..8].copy_from_slice(&from.to_le_bytes());
            entry[8..16].copy_from_slice(&to.to_le_bytes());
            let sum = crc(&[&entry[..16]]);
            entry[16..].copy_from_slice(&sum.to_le_bytes());
            buf.extend_from_slice(&entry);
        }
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&buf).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
        sync_dir(&self.dir)?;
        self.acks = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io(&path))?;
        Ok(())
    }
}

fn no_segment() -> Error {
    Error::Io {
        path: PathBuf::new(),
        source: std::io::Error::other("the outbox has no segment (a bug)"),
    }
}

fn read_record(f: &File, s: &Segment, id: u64) -> Result<Record, Error> {
    let i = (id - s.first) as usize;
    let offset = u64::from(s.offsets[i]);
    let mut head = [0u8; HEADER];
    f.read_exact_at(&mut head, offset).map_err(io(&s.path))?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let mut payload = vec![0u8; len];
    f.read_exact_at(&mut payload, offset + HEADER as u64)
        .map_err(io(&s.path))?;
    Ok(Record {
        id,
        at_ms: i64::from_le_bytes(head[16..24].try_into().unwrap_or_default()),
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_count() {
        let mut r = Ranges::default();
        r.insert(5, 7);
        r.insert(1, 2);
        r.insert(3, 4); // joins both neighbours
        assert_eq!(r.0.iter().collect::<Vec<_>>(), [(&1, &7)]);
        r.insert(10, 12);
        r.insert(6, 11);
        assert_eq!(r.0.iter().collect::<Vec<_>>(), [(&1, &12)]);
        r.insert(20, 20);
        assert!(r.contains(20) && !r.contains(19) && !r.contains(13));
        assert_eq!(r.count_in(10, 21), 4);
        assert_eq!(r.count_in(13, 20), 0);
        r.clip_below(11);
        assert_eq!(r.0.iter().collect::<Vec<_>>(), [(&11, &12), (&20, &20)]);
    }
}
