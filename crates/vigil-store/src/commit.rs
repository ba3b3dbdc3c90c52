//! The intake's commits, on a connection and a thread of their own.
//!
//! Every other statement of the store goes through sqlx, whose SQLite connection runs
//! on a worker thread: each statement is a message to it, each row returned another,
//! and every bound value is copied into sqlx's arguments first. At load that was a
//! quarter of the ingester's instructions per reading, beyond SQLite's own work
//! (BENCHMARKS.md). A commit here is one message to [`Writer`]'s thread, which runs
//! the whole transaction with statements prepared once per connection, one row per
//! step, and the row id of each reading from `last_insert_rowid` (no `RETURNING`).
//!
//! The writer is a second writing connection to the same database, so the store's
//! writes stay one at a time by a rule: a commit runs while it holds the store's sqlx
//! writing connection ([`crate::SqliteStore`] has one), which every other write waits
//! for. An in-memory store's database is shared with the writer through SQLite's
//! shared cache, under the same rule (its reads go through that connection too).

use std::collections::HashSet;
use std::sync::mpsc;

use rusqlite::{Connection, OpenFlags, TransactionBehavior, params};

use vigil_model::PatientId;
use vigil_rules::validate::Validated;

use crate::sqlite::{PreparedRows, RowText};
use crate::{EnvelopeCommit, Error, Item, Outcome, QuarantineRecord, StoredRow};

/// Statements run on the writer's thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// The writing thread and its connection; it ends when the last clone of the store
/// holding it is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Job>,
}

/// Which database the writer opens.
pub(crate) enum Target {
    /// A file, in WAL mode already (the sqlx connection that created it set it).
    File(std::path::PathBuf),
    /// A shared-cache in-memory database, by its name.
    Memory(String),
}

impl Writer {
    /// Starts the thread and opens its connection there.
    pub(crate) async fn open(target: Target) -> Result<Writer, Error> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready, opened) = tokio::sync::oneshot::channel();
        let name = match &target {
            Target::File(path) => path.display().to_string(),
            Target::Memory(_) => ":memory:".to_owned(),
        };
        std::thread::Builder::new()
            .name("vigil-store-writer".to_owned())
            .spawn(move || {
                let mut conn = match connect(&target) {
                    Ok(c) => {
                        let _ = ready.send(Ok(()));
                        c
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                while let Ok(job) = queue.recv() {
                    job(&mut conn);
                }
            })
            .map_err(|e| Error::Writer(format!("cannot start the writing thread: {e}")))?;
        match opened.await {
            Ok(Ok(())) => Ok(Writer { jobs }),
            Ok(Err(e)) => Err(Error::Writer(format!("cannot open {name}: {e}"))),
            Err(_) => Err(Error::Writer(format!(
                "cannot open {name}: the thread ended"
            ))),
        }
    }

    /// Runs `f` on the writer's connection and returns what it returned.
    pub(crate) async fn run<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<R, Error> + Send + 'static,
    ) -> Result<R, Error> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move |conn: &mut Connection| {
                let _ = reply.send(f(conn));
            }))
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> Error {
    Error::Writer("the writing thread has stopped".to_owned())
}

/// The connection, set as sqlx sets the store's own ([`crate::SqliteStore::open`]).
fn connect(target: &Target) -> rusqlite::Result<Connection> {
    let base = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match target {
        Target::File(path) => Connection::open_with_flags(path, base)?,
        Target::Memory(name) => Connection::open_with_flags(
            name,
            base | OpenFlags::SQLITE_OPEN_MEMORY | OpenFlags::SQLITE_OPEN_SHARED_CACHE,
        )?,
    };
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // A commit that returned survives power loss; the WAL is checkpointed by this
    // connection at 8 192 pages, as by the store's (see there).
    conn.execute_batch(
        "PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 8192; PRAGMA foreign_keys = ON;",
    )?;
    Ok(conn)
}

/// A commit's envelopes as the writer binds them: owned, so they can cross to its
/// thread (the store's callers lend theirs).
pub(crate) struct Batch {
    envelopes: Vec<BatchEnvelope>,
}

struct BatchEnvelope {
    gateway: String,
    seq: i64, // u64 stored bit for bit in SQLite's i64; see the schema
    received_ms: i64,
    /// One per item of the envelope, in its order.
    rows: Vec<BatchItem>,
}

enum BatchItem {
    Reading(ReadingRow),
    Quarantine {
        reason: &'static str,
        message: String,
        index: i64,
        device: Option<String>,
        time_ms: Option<i64>,
        raw: String,
    },
}

/// A reading's row, ready to bind.
pub(crate) struct ReadingRow {
    /// The item's index in its envelope.
    item: usize,
    patient: String,
    device: String,
    reading_type: &'static str,
    time_ms: i64,
    late: bool,
    text: RowText,
}

impl ReadingRow {
    /// With its text prepared ahead, or computed now.
    pub(crate) fn new(
        item: usize,
        reading: &Validated,
        patient: &PatientId,
        text: Option<RowText>,
    ) -> Result<ReadingRow, Error> {
        let r = reading.reading();
        Ok(ReadingRow {
            item,
            patient: patient.as_str().to_owned(),
            device: r.device_id.as_str().to_owned(),
            reading_type: r.measurement.reading_type().as_str(),
            time_ms: r.time.timestamp_millis(),
            late: reading.is_late(),
            text: match text {
                Some(t) => t,
                None => RowText::new(reading)?,
            },
        })
    }

    /// Inserts the row (`INSERT OR IGNORE`, see [`commit`]): its row id, or `None` for
    /// a duplicate.
    fn insert(
        &self,
        conn: &Connection,
        (gateway, seq, received_ms): (&str, i64, i64),
    ) -> Result<Option<i64>, Error> {
        let changed = conn
            .prepare_cached(
                "INSERT OR IGNORE INTO readings (identity, patient_id, device_id, gateway_id,
                     batch_seq, type, time_ms, time, received_ms, late, canonical, original,
                     samples)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                self.text.identity,
                self.patient,
                self.device,
                gateway,
                seq,
                self.reading_type,
                self.time_ms,
                self.text.time,
                received_ms,
                self.late,
                self.text.canonical,
                self.text.original,
                self.text.samples,
            ])?;
        Ok((changed == 1).then(|| conn.last_insert_rowid()))
    }
}

impl Batch {
    /// The envelopes' rows, their text taken from `prepared` where it has it and
    /// computed here where not.
    pub(crate) fn new(
        envelopes: &[EnvelopeCommit],
        mut prepared: PreparedRows,
    ) -> Result<Batch, Error> {
        let envelopes = envelopes
            .iter()
            .enumerate()
            .map(|(i, env)| {
                let rows = env
                    .items
                    .iter()
                    .enumerate()
                    .map(|(item, it)| {
                        Ok(match it {
                            Item::Store { reading, patient } => BatchItem::Reading(
                                ReadingRow::new(item, reading, patient, prepared.take(i, item))?,
                            ),
                            Item::Quarantine(q) => BatchItem::Quarantine {
                                reason: q.reason.as_str(),
                                message: q.message.clone(),
                                index: i64::try_from(q.index).unwrap_or(i64::MAX),
                                device: q.device_id.as_ref().map(|d| d.as_str().to_owned()),
                                time_ms: q.time.map(|t| t.timestamp_millis()),
                                raw: q.raw.to_string(),
                            },
                        })
                    })
                    .collect::<Result<_, Error>>()?;
                Ok(BatchEnvelope {
                    gateway: env.gateway_id.as_str().to_owned(),
                    seq: env.batch_seq as i64,
                    received_ms: env.received.timestamp_millis(),
                    rows,
                })
            })
            .collect::<Result<_, Error>>()?;
        Ok(Batch { envelopes })
    }
}

/// Commits the batch in one transaction (on the writer's thread) and returns, per
/// envelope, what happened, and where each stored reading went, in row-id order. On
/// error nothing was written.
///
/// A reading whose identity is stored already, or earlier in the batch, is a
/// duplicate: `INSERT OR IGNORE` changes no row for it, so the first of equal readings
/// is the one stored. `OR IGNORE` rather than `ON CONFLICT (identity) DO NOTHING`: the
/// same for the one unique key, and a statement that cannot abort needs no statement
/// journal. The other constraints it would also ignore are NOT NULL, and every NOT NULL
/// column is bound from a value that cannot be null. An envelope committed before, or
/// earlier in the batch, is a redelivery: nothing of it is written.
pub(crate) fn commit(
    conn: &mut Connection,
    batch: Batch,
) -> Result<(Vec<Outcome>, Vec<StoredRow>), Error> {
    // IMMEDIATE: the write lock from the start, so no other connection's commit can
    // slip in between this transaction's first read and its first write.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut outcomes = vec![Outcome::default(); batch.envelopes.len()];
    let mut rows = Vec::new();
    let mut marks = Vec::with_capacity(batch.envelopes.len());
    {
        let mut committed =
            tx.prepare_cached("SELECT 1 FROM envelopes WHERE gateway_id = ?1 AND batch_seq = ?2")?;
        let mut quarantine = tx.prepare_cached(
            "INSERT INTO quarantine (reason, message, gateway_id, batch_seq, reading_index,
                 device_id, time_ms, received_ms, raw)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?;
        let mut envelope = tx.prepare_cached(
            "INSERT INTO envelopes (gateway_id, batch_seq, received_ms, stored, duplicates,
                 quarantined) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?;
        let mut taken: HashSet<(&str, i64)> = HashSet::with_capacity(batch.envelopes.len());
        for (i, env) in batch.envelopes.iter().enumerate() {
            let out = &mut outcomes[i];
            if !taken.insert((env.gateway.as_str(), env.seq))
                || committed.exists(params![env.gateway, env.seq])?
            {
                *out = Outcome {
                    already_committed: true,
                    redelivered: u32::try_from(env.rows.len()).unwrap_or(u32::MAX),
                    ..Outcome::default()
                };
                continue;
            }
            for row in &env.rows {
                match row {
                    BatchItem::Reading(row) => {
                        match row.insert(&tx, (&env.gateway, env.seq, env.received_ms))? {
                            Some(id) => {
                                out.stored += 1;
                                rows.push(StoredRow {
                                    envelope: i,
                                    item: row.item,
                                    id,
                                });
                            }
                            None => out.duplicates += 1,
                        }
                    }
                    BatchItem::Quarantine {
                        reason,
                        message,
                        index,
                        device,
                        time_ms,
                        raw,
                    } => {
                        quarantine.execute(params![
                            reason,
                            message,
                            env.gateway,
                            env.seq,
                            index,
                            device,
                            time_ms,
                            env.received_ms,
                            raw,
                        ])?;
                        out.quarantined += 1;
                    }
                }
            }
            envelope.execute(params![
                env.gateway,
                env.seq,
                env.received_ms,
                out.stored,
                out.duplicates,
                out.quarantined,
            ])?;
            marks.push((env.gateway.as_str(), env.seq as u64, env.received_ms));
        }
    }
    crate::gaps::track_all(&tx, &marks)?;
    tx.commit()?;
    // Rows were inserted in this order, and row ids only grow within a transaction;
    // sorted all the same, as the callers rely on it.
    rows.sort_unstable_by_key(|r| r.id);
    Ok((outcomes, rows))
}

/// Moves a quarantined reading into the store (it can now be attributed), in one
/// transaction with its envelope's counts, so stored + quarantined + duplicates still
/// adds up. Returns false if it turned out to be a duplicate of a stored one.
pub(crate) fn release(
    conn: &mut Connection,
    (quarantine_id, record): (i64, &QuarantineRecord),
    row: &ReadingRow,
    now_ms: i64,
) -> Result<bool, Error> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let (gateway, seq) = (record.gateway_id.as_str(), record.batch_seq as i64);
    let stored = row
        .insert(&tx, (gateway, seq, record.received.timestamp_millis()))?
        .is_some();
    tx.prepare_cached(
        "UPDATE quarantine SET resolved_ms = ?1, resolution = ?2
         WHERE id = ?3 AND resolved_ms IS NULL",
    )?
    .execute(params![
        now_ms,
        if stored { "stored" } else { "duplicate" },
        quarantine_id
    ])?;
    tx.prepare_cached(if stored {
        "UPDATE envelopes SET quarantined = quarantined - 1, stored = stored + 1
         WHERE gateway_id = ?1 AND batch_seq = ?2"
    } else {
        "UPDATE envelopes SET quarantined = quarantined - 1, duplicates = duplicates + 1
         WHERE gateway_id = ?1 AND batch_seq = ?2"
    })?
    .execute(params![gateway, seq])?;
    tx.commit()?;
    Ok(stored)
}
