//! The embedded SQLite backend.

use std::path::Path;
use std::str::FromStr;

use chrono::{DateTime, FixedOffset, TimeZone, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, Sqlite, SqlitePool};
use vigil_model::measurement::{EcgLeads, Measurement};
use vigil_model::vocab::QuarantineReason;
use vigil_model::{DeviceId, GatewayId, PatientId};
use vigil_rules::validate::Validated;
use vigil_wire::check::CanonicalJson;
use vigil_wire::envelope::ReadingJson;

use crate::{
    AlertAction, AlertEventRecord, CriticalEntry, DeliveryRecord, EnvelopeCommit, EnvelopeMarks,
    Error, ExportRow, Item, OpsAlert, Outcome, QuarantineRecord, RuleInput, StoredReading,
    StoredRow, Totals, identity_key,
};

/// The columns [`alert_event_record`] reads, in its order (the row id is 12), for a
/// statement text built with `concat!` (sqlx takes static text only).
macro_rules! alert_event_columns {
    () => {
        "alert_id, patient_id, change, rule, severity, level, at_ms, deliver_at_ms, family,
         opened_ms, display, evidence, id, ordinal"
    };
}

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS envelopes (
        gateway_id  TEXT    NOT NULL,
        batch_seq   INTEGER NOT NULL, -- u64 stored bit for bit in SQLite's i64
        received_ms INTEGER NOT NULL,
        stored      INTEGER NOT NULL,
        duplicates  INTEGER NOT NULL,
        quarantined INTEGER NOT NULL,
        PRIMARY KEY (gateway_id, batch_seq)
    ) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS readings (
        id          INTEGER PRIMARY KEY,
        identity    TEXT    NOT NULL UNIQUE,
        patient_id  TEXT    NOT NULL,
        device_id   TEXT    NOT NULL,
        gateway_id  TEXT    NOT NULL,
        batch_seq   INTEGER NOT NULL,
        type        TEXT    NOT NULL,
        time_ms     INTEGER NOT NULL, -- measurement instant, ms since the Unix epoch
        time        TEXT    NOT NULL, -- as sent, with its offset
        received_ms INTEGER NOT NULL,
        late        INTEGER NOT NULL,
        canonical   TEXT    NOT NULL, -- JSON, canonical units
        original    TEXT    NOT NULL, -- JSON, the reading as received (ECG samples aside)
        samples     BLOB              -- an ECG strip's samples (crate::ecg), else NULL
    )",
    "CREATE INDEX IF NOT EXISTS readings_by_patient ON readings (patient_id, type, time_ms)",
    "CREATE TABLE IF NOT EXISTS quarantine (
        id            INTEGER PRIMARY KEY,
        reason        TEXT    NOT NULL,
        message       TEXT    NOT NULL,
        gateway_id    TEXT    NOT NULL,
        batch_seq     INTEGER NOT NULL,
        reading_index INTEGER NOT NULL,
        device_id     TEXT,
        time_ms       INTEGER,
        received_ms   INTEGER NOT NULL,
        raw           TEXT    NOT NULL,
        resolved_ms   INTEGER,          -- set when the reading left quarantine
        resolution    TEXT              -- how: 'stored', 'duplicate'
    )",
    "CREATE INDEX IF NOT EXISTS quarantine_by_reason ON quarantine (reason, gateway_id)",
    "CREATE TABLE IF NOT EXISTS rejected_payloads (
        id          INTEGER PRIMARY KEY,
        gateway_id  TEXT    NOT NULL, -- from the topic it was published on
        received_ms INTEGER NOT NULL,
        message     TEXT    NOT NULL,
        payload     BLOB    NOT NULL  -- exactly as received
    )",
    "CREATE TABLE IF NOT EXISTS sink_cursors (
        sink        TEXT    PRIMARY KEY,
        last_id     INTEGER NOT NULL, -- readings.id of the last reading the sink's server confirmed
        updated_ms  INTEGER NOT NULL
    ) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS sink_rejects (
        id          INTEGER PRIMARY KEY,
        sink        TEXT    NOT NULL,
        reading_id  INTEGER NOT NULL,
        line        TEXT    NOT NULL, -- what was sent (or why nothing could be)
        message     TEXT    NOT NULL, -- the server's reason
        at_ms       INTEGER NOT NULL,
        UNIQUE (sink, reading_id, line) -- a replay refused again is kept once
    )",
    "CREATE TABLE IF NOT EXISTS alert_events (
        id            INTEGER PRIMARY KEY,
        alert_id      TEXT    NOT NULL, -- stable for the whole episode
        patient_id    TEXT    NOT NULL,
        family        TEXT    NOT NULL,
        opened_ms     INTEGER NOT NULL,
        ordinal       INTEGER NOT NULL,
        display       TEXT    NOT NULL, -- the triggering value, as shown and read back
        evidence      TEXT    NOT NULL, -- JSON: the readings behind it
        change        TEXT    NOT NULL, -- opened, upgraded, escalated, acknowledged, resolved
        rule          TEXT    NOT NULL,
        severity      TEXT    NOT NULL,
        level         INTEGER NOT NULL, -- escalation level after the change
        at_ms         INTEGER NOT NULL,
        deliver_at_ms INTEGER,          -- held by quiet hours until then
        UNIQUE (alert_id, change, rule, level) -- re-evaluation after a restart adds nothing
    )",
    "CREATE INDEX IF NOT EXISTS alert_events_by_patient ON alert_events (patient_id, id)",
    "CREATE TABLE IF NOT EXISTS alert_deliveries (
        event_id     INTEGER NOT NULL, -- alert_events.id
        doctor_id    TEXT    NOT NULL,
        channel      TEXT    NOT NULL, -- mqtt, sse, webhook
        state        TEXT    NOT NULL, -- held (quiet hours; mqtt), pending (webhook), delivered, failed
        due_ms       INTEGER NOT NULL, -- held/pending: when to (re)try
        delivered_ms INTEGER,
        PRIMARY KEY (event_id, doctor_id, channel)
    ) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS alert_deliveries_held ON alert_deliveries (state, due_ms)",
    "CREATE TABLE IF NOT EXISTS alert_actions (
        id        INTEGER PRIMARY KEY,
        alert_id  TEXT    NOT NULL,
        action    TEXT    NOT NULL, -- ack, resolve
        by_doctor TEXT    NOT NULL,
        note      TEXT    NOT NULL, -- the read-back for an ack, the action for a resolve
        at_ms     INTEGER NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS alert_actions_by_alert ON alert_actions (alert_id, action)",
    "CREATE TABLE IF NOT EXISTS ops_alerts (
        id      INTEGER PRIMARY KEY,
        kind    TEXT    NOT NULL, -- webhook_failed, ...
        subject TEXT    NOT NULL, -- what it is about (a doctor, a gateway); never a person's data
        detail  TEXT    NOT NULL,
        at_ms   INTEGER NOT NULL
    )",
    // Gap detection (wire guarantee 6; crate::gaps): each gateway's batch_seq marks and
    // lifetime counts, and its missing ranges, kept as envelopes are committed.
    "CREATE TABLE IF NOT EXISTS gateway_seqs (
        gateway_id         TEXT    PRIMARY KEY,
        baseline           INTEGER NOT NULL, -- the first batch_seq seen: nothing below it is requested
        contiguous_through INTEGER NOT NULL, -- the watermark: committed from the baseline up to here
        highest            INTEGER NOT NULL, -- the highest batch_seq committed
        gaps_total         INTEGER NOT NULL DEFAULT 0, -- gaps opened
        missing_total      INTEGER NOT NULL DEFAULT 0, -- batches found missing
        recovered_total    INTEGER NOT NULL DEFAULT 0, -- of those, batches that arrived later
        requests_total     INTEGER NOT NULL DEFAULT 0  -- backfill requests made
    ) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS batch_gaps (
        gateway_id      TEXT    NOT NULL,
        from_seq        INTEGER NOT NULL,
        to_seq          INTEGER NOT NULL, -- inclusive; a request unit (crate::gaps)
        first_seen_ms   INTEGER NOT NULL, -- receipt of the envelope that revealed it
        requests        INTEGER NOT NULL, -- backfill requests made for it
        last_request_ms INTEGER,
        next_request_ms INTEGER,          -- requested again from then on if still missing
        PRIMARY KEY (gateway_id, from_seq)
    ) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS registry_versions (
        id          INTEGER PRIMARY KEY,
        loaded_ms   INTEGER NOT NULL,
        source      TEXT    NOT NULL, -- where it was loaded from
        text        TEXT    NOT NULL  -- the file as loaded when sha256 is NULL (kept
                                      -- whole before registry_text), else ''
    )",
    // A registry version's text in pieces (crate::sqlite::REGISTRY_PIECE): the text of
    // 100 000 patients is 77 MB, and one value of it was copied three times over
    // (bound, encoded, assembled in a page) when it was kept at once. A rowid table:
    // its rows are a megabyte each, far beyond what a WITHOUT ROWID table suits.
    "CREATE TABLE IF NOT EXISTS registry_text (
        version     INTEGER NOT NULL, -- registry_versions.id
        seq         INTEGER NOT NULL,
        text        TEXT    NOT NULL, -- the pieces in seq order are the file
        PRIMARY KEY (version, seq)
    )",
];

/// Columns added to a table of [`SCHEMA`] after it first shipped: (table, column, the
/// statement adding it), run when the column is missing.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[
    // Webhook deliveries: attempts made, and the last failure a person can read.
    (
        "alert_deliveries",
        "attempts",
        "ALTER TABLE alert_deliveries ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
    ),
    (
        "alert_deliveries",
        "last_error",
        "ALTER TABLE alert_deliveries ADD COLUMN last_error TEXT",
    ),
    // Registry versions: the SHA-256 of the text, which compares a file with the
    // version in force without reading it back; its text is then in registry_text.
    (
        "registry_versions",
        "sha256",
        "ALTER TABLE registry_versions ADD COLUMN sha256 TEXT",
    ),
];

/// The longest piece of a registry's text kept in one row of `registry_text`.
const REGISTRY_PIECE: usize = 1 << 20;

/// `text` cut into pieces of at most `size` bytes (at least one character each), at
/// character boundaries.
fn text_pieces(text: &str, size: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut cut = size.clamp(1, rest.len());
        while !rest.is_char_boundary(cut) {
            cut += 1;
        }
        let (piece, after) = rest.split_at(cut);
        rest = after;
        Some(piece)
    })
}

/// What a reading's row holds beyond the reading's own fields: its identity key, its
/// times as text, its JSON. Computed before the commit ([`prepare_rows`]), off the
/// writer's path, or during it when not.
#[derive(Debug)]
pub(crate) struct RowText {
    pub(crate) identity: String,
    pub(crate) time: String,
    pub(crate) canonical: String,
    /// The reading as received; an ECG strip's samples are in `samples` instead.
    pub(crate) original: String,
    /// An ECG strip's samples, compact ([`crate::ecg`]).
    pub(crate) samples: Option<Vec<u8>>,
}

impl RowText {
    pub(crate) fn new(reading: &Validated) -> Result<RowText, Error> {
        let r = reading.reading();
        let json = |e: serde_json::Error| Error::Corrupt(e.to_string());
        // The original as text straight from the reading; an ECG strip's through a
        // JSON tree, to take its samples out (they go in `samples`).
        let (original, samples) = match &r.measurement {
            Measurement::EcgWaveform(w) => {
                let leads: Vec<&[i32]> = match &w.leads {
                    EcgLeads::Single { samples_uv, .. } => vec![samples_uv.as_slice()],
                    EcgLeads::Multi { samples_uv, .. } => {
                        samples_uv.iter().map(Vec::as_slice).collect()
                    }
                };
                let mut original = serde_json::to_value(ReadingJson(r)).map_err(json)?;
                if let Some(values) = original.get_mut("values").and_then(|v| v.as_object_mut()) {
                    values.remove("samples_uv");
                }
                (original.to_string(), Some(crate::ecg::encode(&leads)))
            }
            _ => (serde_json::to_string(&ReadingJson(r)).map_err(json)?, None),
        };
        Ok(RowText {
            identity: identity_key(&r.identity()),
            time: r.time.to_rfc3339(),
            canonical: serde_json::to_string(&CanonicalJson(reading.canonical().clone()))
                .map_err(json)?,
            original,
            samples,
        })
    }
}

/// The rows of envelopes' stored readings, computed ahead of their commit: per
/// envelope, per item (`None` for a reading to quarantine).
#[derive(Debug, Default)]
pub struct PreparedRows {
    rows: Vec<Vec<Option<RowText>>>,
}

impl PreparedRows {
    /// The row text of envelope `envelope`'s item `item`, if prepared (once).
    pub(crate) fn take(&mut self, envelope: usize, item: usize) -> Option<RowText> {
        self.rows
            .get_mut(envelope)
            .and_then(|env| env.get_mut(item))
            .and_then(Option::take)
    }
}

/// Computes the rows of the envelopes' stored readings (identity keys, JSON), for
/// [`SqliteStore::commit_prepared`]: the intake does it while the previous group
/// commits.
pub fn prepare_rows(envelopes: &[EnvelopeCommit]) -> Result<PreparedRows, Error> {
    let rows = envelopes
        .iter()
        .map(|env| {
            env.items
                .iter()
                .map(|item| match item {
                    Item::Store { reading, .. } => RowText::new(reading).map(Some),
                    Item::Quarantine(_) => Ok(None),
                })
                .collect()
        })
        .collect::<Result<_, Error>>()?;
    Ok(PreparedRows { rows })
}

/// How often a file store's own connection checkpoints the WAL.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Checkpoints the WAL (passively: never waiting for, nor holding up, the writer) every
/// [`CHECKPOINT_EVERY`] while `alive` has a holder. The committing connection
/// checkpoints too when the WAL passes 8 192 pages, which bounds the WAL's size (a
/// passive checkpoint does not finish while commits keep coming); by then this one has
/// copied all but the last tenth of a second's pages, so the commit no longer copies
/// 32 MB on its own path (the checkpoint was 13 % of the writer thread at load;
/// BENCHMARKS.md).
async fn checkpoints(pool: SqlitePool, alive: std::sync::Weak<()>) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while alive.strong_count() > 0 {
        tick.tick().await;
        // A failure (the disk, a busy lock) is retried at the next tick; the writer's
        // own checkpoint is the bound either way.
        let _ = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&pool)
            .await;
    }
    pool.close().await;
}

/// The clinical store in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    /// A second connection for the rule engine's reads (a file store only; WAL lets
    /// it read while the writer commits): without it, each of the engine's pages
    /// waited for the intake's commit to finish. In memory, the same pool.
    read: SqlitePool,
    /// An in-memory store's database lives while a connection to it is open, and the
    /// pool closes its one connection when a cancelled query leaves it unusable (or
    /// after its lifetime): this idle connection keeps the database.
    _anchor: Option<std::sync::Arc<std::sync::Mutex<sqlx::SqliteConnection>>>,
    /// A file store's background checkpoints run while a clone of the store lives
    /// ([`SqliteStore::open`]).
    _checkpoints: Option<std::sync::Arc<()>>,
    /// The intake's commits ([`crate::commit`]).
    writer: crate::commit::Writer,
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`: WAL journal, `synchronous =
    /// FULL` (a commit that returned survives power loss), foreign-key checks on.
    pub async fn open(path: &Path) -> Result<SqliteStore, Error> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(std::time::Duration::from_secs(10))
            // sqlx hands rows from its SQLite thread through a channel of this size;
            // at its default (50) a page of thousands of rows (the rule engine's)
            // stops that thread, and its connection, every 50 rows until the task
            // reading them runs.
            .row_buffer_size(4096)
            // The committing connection checkpoints when the WAL reaches 8 192 pages
            // instead of 1 000: the same index pages are dirtied by commit after
            // commit, and each is copied back to the database once per checkpoint.
            // The background checkpoints (below) do most of that copying.
            .pragma("wal_autocheckpoint", "8192")
            // 16 KiB pages for a new store (an existing one keeps its own): a commit's
            // rows land at random places in the identity, patient and envelope
            // indexes, and larger pages make shallower trees with fewer pages to
            // find and write back. Measured alternately at 100 000 patients, 10-reading
            // envelopes: 1 KiB 47.6 / 49.9 k readings/s, 2 KiB 64.8 / 63.9 k, 4 KiB
            // 70.2 / 64.3 / 73.7 / 68.9 k, 8 KiB 74.2 / 83.0 k, 16 KiB 80.6 / 82.1 k
            // (BENCHMARKS.md). The WAL's bound above is then 128 MiB.
            .page_size(16384);
        let mut store = Self::with_options(
            options.clone(),
            &path.display().to_string(),
            crate::commit::Target::File(path.to_owned()),
        )
        .await?;
        let connect = |options: SqliteConnectOptions| async move {
            SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .map_err(|source| Error::Open {
                    path: path.display().to_string(),
                    source,
                })
        };
        store.read = connect(options.clone()).await?;
        let alive = std::sync::Arc::new(());
        tokio::spawn(checkpoints(
            connect(options).await?,
            std::sync::Arc::downgrade(&alive),
        ));
        store._checkpoints = Some(alive);
        Ok(store)
    }

    /// A private in-memory store (tests, `envelope check`-like tools).
    pub async fn in_memory() -> Result<SqliteStore, Error> {
        use sqlx::ConnectOptions;
        // A named, shared-cache database (sqlx's ":memory:"): every connection made
        // with these options opens the same one.
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?;
        let anchor = options.connect().await.map_err(|source| Error::Open {
            path: ":memory:".to_owned(),
            source,
        })?;
        let name = options.get_filename().to_string_lossy().into_owned();
        let mut store =
            Self::with_options(options, ":memory:", crate::commit::Target::Memory(name)).await?;
        store._anchor = Some(std::sync::Arc::new(std::sync::Mutex::new(anchor)));
        Ok(store)
    }

    async fn with_options(
        options: SqliteConnectOptions,
        name: &str,
        target: crate::commit::Target,
    ) -> Result<SqliteStore, Error> {
        // One writer: SQLite serialises writes anyway, and a single connection keeps
        // an in-memory database one database.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|source| Error::Open {
                path: name.to_owned(),
                source,
            })?;
        for statement in SCHEMA.iter().chain(crate::access::SCHEMA) {
            sqlx::query(*statement).execute(&pool).await?;
        }
        // Columns added after a table was first shipped: added to older stores.
        for (table, column, alter) in ADDED_COLUMNS {
            let present: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?")
                    .bind(table)
                    .bind(column)
                    .fetch_one(&pool)
                    .await?;
            if present == 0 {
                match sqlx::query(*alter).execute(&pool).await {
                    // Another process opening the same store added it first.
                    Err(e) if e.to_string().contains("duplicate column") => {}
                    r => {
                        r?;
                    }
                }
            }
        }
        // The rule engine's cursor starts where the store is when it first meets a
        // version with the engine: a new store at 0, an older store after its last
        // reading (evaluating months of history live would page doctors for the
        // past). Written here, before any intake commits, so no reading slips between.
        sqlx::query(
            "INSERT OR IGNORE INTO sink_cursors (sink, last_id, updated_ms)
             SELECT 'rules', COALESCE(MAX(id), 0), 0 FROM readings",
        )
        .execute(&pool)
        .await?;
        // Likewise the webhook deliverer's: a store that had alert events before
        // webhooks existed does not post its history.
        sqlx::query(
            "INSERT OR IGNORE INTO sink_cursors (sink, last_id, updated_ms)
             SELECT 'webhook', COALESCE(MAX(id), 0), 0 FROM alert_events",
        )
        .execute(&pool)
        .await?;
        // Gap tracking starts at each gateway's highest batch in a store from before it.
        crate::gaps::start_tracking(&pool).await?;
        // Opened last: the schema is in place.
        let writer = crate::commit::Writer::open(target).await?;
        Ok(SqliteStore {
            read: pool.clone(),
            pool,
            _anchor: None,
            _checkpoints: None,
            writer,
        })
    }

    /// Commits several envelopes in one transaction and returns, per envelope, what
    /// happened. On error nothing was written.
    pub async fn commit(&self, envelopes: &[EnvelopeCommit]) -> Result<Vec<Outcome>, Error> {
        Ok(self
            .commit_prepared(envelopes, PreparedRows::default())
            .await?
            .0)
    }

    /// [`SqliteStore::commit`], and where each reading stored went: its envelope, its
    /// item in the envelope and its row id, in row-id order. The rows' text may be
    /// computed ahead ([`prepare_rows`] of the same envelopes); a reading it lacks
    /// (`PreparedRows::default()`: every one) is computed here.
    pub async fn commit_prepared(
        &self,
        envelopes: &[EnvelopeCommit],
        prepared: PreparedRows,
    ) -> Result<(Vec<Outcome>, Vec<StoredRow>), Error> {
        let batch = crate::commit::Batch::new(envelopes, prepared)?;
        self.on_writer(move |conn| crate::commit::commit(conn, batch))
            .await
    }

    /// Runs `f` on the intake's writer ([`crate::commit`]) in the store's turn: while
    /// it holds the sqlx writing connection, so the store's writes stay one at a
    /// time. A call abandoned while `f` runs (its task cancelled at shutdown) gives
    /// the turn back before the writer is done; a write of the store's own that starts
    /// then waits on SQLite's busy timeout (a file store; in an in-memory store's
    /// shared cache it fails at once).
    async fn on_writer<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut rusqlite::Connection) -> Result<R, Error> + Send + 'static,
    ) -> Result<R, Error> {
        let _turn = self.pool.acquire().await?;
        self.writer.run(f).await
    }

    /// Keeps a payload that is not a usable envelope at all (not JSON, wrong schema,
    /// published on another gateway's topic), with why. Its readings cannot be told
    /// apart, so it is kept whole; the publish is then acknowledged.
    pub async fn reject_payload(
        &self,
        gateway: &GatewayId,
        received: DateTime<Utc>,
        payload: &[u8],
        message: &str,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO rejected_payloads (gateway_id, received_ms, message, payload) VALUES (?, ?, ?, ?)",
        )
        .bind(gateway.as_str())
        .bind(received.timestamp_millis())
        .bind(message)
        .bind(payload)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// How many payloads were rejected whole.
    pub async fn rejected_payloads(&self) -> Result<u64, Error> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rejected_payloads")
            .fetch_one(&self.pool)
            .await?;
        u64::try_from(n).map_err(|_| Error::Corrupt(format!("negative count {n}")))
    }

    /// Stored readings per reading type.
    pub async fn stored_by_type(&self) -> Result<Vec<(String, u64)>, Error> {
        self.counts("SELECT type, COUNT(*) FROM readings GROUP BY type ORDER BY type")
            .await
    }

    /// Quarantined readings per reason.
    pub async fn quarantined_by_reason(&self) -> Result<Vec<(String, u64)>, Error> {
        self.counts("SELECT reason, COUNT(*) FROM quarantine GROUP BY reason ORDER BY reason")
            .await
    }

    async fn counts(&self, sql: &'static str) -> Result<Vec<(String, u64)>, Error> {
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let n: i64 = r.try_get(1)?;
                Ok((
                    r.try_get(0)?,
                    u64::try_from(n).map_err(|e| corrupt("count", e))?,
                ))
            })
            .collect()
    }

    /// Unresolved quarantine records of one reason with row ids above `after`, oldest
    /// first, with their row ids (page with the last id returned).
    pub async fn unresolved(
        &self,
        reason: QuarantineReason,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, QuarantineRecord)>, Error> {
        let rows = sqlx::query(
            "SELECT reason, message, gateway_id, batch_seq, reading_index, device_id, received_ms, raw, id
             FROM quarantine WHERE resolved_ms IS NULL AND reason = ? AND id > ? ORDER BY id LIMIT ?",
        )
        .bind(reason.as_str())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<i64, _>(8)?, quarantine_record(r)?)))
            .collect()
    }

    /// Moves a quarantined reading into the store (it can now be attributed), in one
    /// transaction with its envelope's counts, so stored + quarantined + duplicates
    /// still adds up. Returns false if it turned out to be a duplicate of a stored one.
    pub async fn release(
        &self,
        quarantine_id: i64,
        record: &QuarantineRecord,
        reading: &Validated,
        patient: &PatientId,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let row = crate::commit::ReadingRow::new(0, reading, patient, None)?;
        let record = record.clone();
        self.on_writer(move |conn| {
            crate::commit::release(conn, (quarantine_id, &record), &row, now.timestamp_millis())
        })
        .await
    }

    /// The most recent stored weight of a patient measured in the 48 h before `before`
    /// (`clinical/rules.md` §0.8), as (measured, kg); quarantined weights are never
    /// the reference.
    pub async fn reference_weight(
        &self,
        patient: &PatientId,
        before: DateTime<Utc>,
    ) -> Result<Option<(DateTime<Utc>, f64)>, Error> {
        let until = before.timestamp_millis();
        let since = (before - vigil_rules::validate::WEIGHT_REFERENCE_WINDOW).timestamp_millis();
        let row = sqlx::query(
            "SELECT time_ms, canonical FROM readings
             WHERE patient_id = ? AND type = 'weight' AND time_ms < ? AND time_ms >= ?
             ORDER BY time_ms DESC LIMIT 1",
        )
        .bind(patient.as_str())
        .bind(until)
        .bind(since)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let canonical: String = row.try_get(1)?;
        let kg = serde_json::from_str::<serde_json::Value>(&canonical)
            .ok()
            .and_then(|v| v["weight_kg"].as_f64())
            .ok_or_else(|| corrupt("weight", &canonical))?;
        Ok(Some((millis(row.try_get(0)?)?, kg)))
    }

    /// Whether the store answers a query (readiness).
    pub async fn ping(&self) -> Result<(), Error> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }

    /// Totals over every committed envelope.
    pub async fn totals(&self) -> Result<Totals, Error> {
        let row = sqlx::query(
            "SELECT COUNT(*), COALESCE(SUM(stored), 0), COALESCE(SUM(quarantined), 0), COALESCE(SUM(duplicates), 0)
             FROM envelopes",
        )
        .fetch_one(&self.pool)
        .await?;
        let n = |i: usize| -> Result<u64, Error> {
            let v: i64 = row.try_get(i)?;
            u64::try_from(v).map_err(|_| Error::Corrupt(format!("negative total {v}")))
        };
        Ok(Totals {
            envelopes: n(0)?,
            stored: n(1)?,
            quarantined: n(2)?,
            duplicates: n(3)?,
        })
    }

    /// The highest `batch_seq` committed per gateway, and the latest receipt over all
    /// envelopes: where a restarted simulated fleet resumes its numbering and its clock.
    pub async fn envelope_marks(&self) -> Result<EnvelopeMarks, Error> {
        let rows = sqlx::query(
            // A u64 above i64::MAX is stored as a negative i64: the largest u64 is the
            // largest negative value when there is one, else the largest positive one.
            "SELECT gateway_id,
                    COALESCE(MAX(CASE WHEN batch_seq < 0 THEN batch_seq END), MAX(batch_seq)),
                    MAX(received_ms)
             FROM envelopes GROUP BY gateway_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut marks = EnvelopeMarks::default();
        for row in &rows {
            let gateway: String = row.try_get(0)?;
            let seq: i64 = row.try_get(1)?;
            let received = millis(row.try_get(2)?)?;
            marks.last_received = marks.last_received.max(Some(received));
            marks.last_batch_seq.push((
                GatewayId::parse(&gateway).map_err(|e| corrupt("gateway id", e))?,
                seq as u64, // stored bit for bit from a u64
            ));
        }
        Ok(marks)
    }

    /// Committed readings with row ids above `after`, in commit order (row ids grow
    /// with each commit: one writer, readings never deleted), at most `limit`.
    pub async fn export_after(&self, after: i64, limit: u32) -> Result<Vec<ExportRow>, Error> {
        let rows = sqlx::query(
            "SELECT id, patient_id, device_id, type, time, received_ms, canonical, original, samples
             FROM readings WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let text = |i: usize| -> Result<String, Error> { Ok(row.try_get::<String, _>(i)?) };
                let original: serde_json::Value =
                    serde_json::from_str(&text(7)?).map_err(|e| corrupt("original", e))?;
                let samples = match row.try_get::<Option<Vec<u8>>, _>(8)? {
                    Some(blob) => Some(
                        crate::ecg::decode(&blob)
                            .ok_or_else(|| corrupt("ECG samples", "undecodable"))?,
                    ),
                    None => None,
                };
                Ok(ExportRow {
                    id: row.try_get(0)?,
                    patient_id: PatientId::parse(&text(1)?)
                        .map_err(|e| corrupt("patient id", e))?,
                    device_id: DeviceId::parse(&text(2)?).map_err(|e| corrupt("device id", e))?,
                    reading_type: text(3)?,
                    time: DateTime::<FixedOffset>::parse_from_rfc3339(&text(4)?)
                        .map_err(|e| corrupt("time", e))?,
                    received: millis(row.try_get(5)?)?,
                    canonical: serde_json::from_str(&text(6)?)
                        .map_err(|e| corrupt("canonical", e))?,
                    unit: original
                        .get("unit")
                        .and_then(|u| u.as_str())
                        .map(str::to_owned),
                    samples,
                })
            })
            .collect()
    }

    /// The highest reading row id (0 for an empty store), and the receipt of the
    /// first reading after `after`: what a sink at `after` is behind.
    pub async fn export_lag(&self, after: i64) -> Result<(i64, Option<DateTime<Utc>>), Error> {
        let last: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM readings")
            .fetch_one(&self.pool)
            .await?;
        let first: Option<i64> =
            sqlx::query_scalar("SELECT received_ms FROM readings WHERE id > ? ORDER BY id LIMIT 1")
                .bind(after)
                .fetch_optional(&self.pool)
                .await?;
        Ok((last, first.map(millis).transpose()?))
    }

    /// Committed readings for the rule engine, with row ids above `after` and at most
    /// `up_to` (inclusive), received at or after `since`, in commit order: (row id,
    /// patient, type, receipt, the reading as received; an ECG strip without its
    /// samples, which no rule reads).
    pub async fn rule_inputs(
        &self,
        after: i64,
        up_to: i64,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<RuleInput>, Error> {
        let rows = sqlx::query(
            "SELECT id, patient_id, received_ms, original, type FROM readings
             WHERE id > ? AND id <= ? AND received_ms >= ?
             ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(up_to)
        .bind(since.timestamp_millis())
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|row| {
                let original: String = row.try_get(3)?;
                Ok(RuleInput {
                    id: row.try_get(0)?,
                    patient_id: PatientId::parse(&row.try_get::<String, _>(1)?)
                        .map_err(|e| corrupt("patient id", e))?,
                    received: millis(row.try_get(2)?)?,
                    original: serde_json::from_str(&original)
                        .map_err(|e| corrupt("original", e))?,
                    reading_type: row.try_get(4)?,
                })
            })
            .collect()
    }

    /// The highest reading row id (0 for an empty store).
    pub async fn last_reading_id(&self) -> Result<i64, Error> {
        Ok(
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM readings")
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Keeps alert events (each once: a re-evaluation after a restart adds nothing)
    /// and, in the same transaction, moves the rule engine's cursors: `cursor` over the
    /// readings, `actions` over the doctors' actions.
    pub async fn keep_alert_events(
        &self,
        events: &[AlertEventRecord],
        cursor: Option<i64>,
        actions: Option<i64>,
        at: DateTime<Utc>,
    ) -> Result<u64, Error> {
        let mut tx = self.pool.begin().await?;
        let mut new = 0;
        for e in events {
            new += sqlx::query(
                "INSERT OR IGNORE INTO alert_events
                 (alert_id, patient_id, family, opened_ms, ordinal, display, evidence, change, rule, severity, level, at_ms, deliver_at_ms)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&e.alert_id)
            .bind(e.patient_id.as_str())
            .bind(&e.family)
            .bind(e.opened_at.timestamp_millis())
            .bind(i64::from(e.ordinal))
            .bind(&e.display)
            .bind(e.evidence.to_string())
            .bind(&e.change)
            .bind(&e.rule)
            .bind(&e.severity)
            .bind(i64::from(e.level))
            .bind(e.at.timestamp_millis())
            .bind(e.deliver_at.map(|d| d.timestamp_millis()))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        for (name, value) in [("rules", cursor), ("rules:actions", actions)] {
            if let Some(c) = value {
                advance_cursor(&mut *tx, name, c, at).await?;
            }
        }
        tx.commit().await?;
        Ok(new)
    }

    /// Keeps a doctor's action on an alert (an acknowledgement with its read-back, or a
    /// resolution with its note); returns its id.
    pub async fn keep_alert_action(&self, action: &AlertAction) -> Result<i64, Error> {
        let id = sqlx::query_scalar(
            "INSERT INTO alert_actions (alert_id, action, by_doctor, note, at_ms)
             VALUES (?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&action.alert_id)
        .bind(&action.action)
        .bind(&action.by)
        .bind(&action.note)
        .bind(action.at.timestamp_millis())
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// Actions with ids above `after` (and at or after `since`), oldest first.
    pub async fn alert_actions_after(
        &self,
        after: i64,
        since: DateTime<Utc>,
    ) -> Result<Vec<(i64, AlertAction)>, Error> {
        let rows = sqlx::query(
            "SELECT id, alert_id, action, by_doctor, note, at_ms FROM alert_actions
             WHERE id > ? AND at_ms >= ? ORDER BY id LIMIT 1000",
        )
        .bind(after)
        .bind(since.timestamp_millis())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    AlertAction {
                        alert_id: r.try_get(1)?,
                        action: r.try_get(2)?,
                        by: r.try_get(3)?,
                        note: r.try_get(4)?,
                        at: millis(r.try_get(5)?)?,
                    },
                ))
            })
            .collect()
    }

    /// The latest event of an alert (for its display and state), if it exists.
    pub async fn latest_alert_event(
        &self,
        alert_id: &str,
    ) -> Result<Option<AlertEventRecord>, Error> {
        let row = sqlx::query(concat!(
            "SELECT ",
            alert_event_columns!(),
            " FROM alert_events WHERE alert_id = ? ORDER BY id DESC LIMIT 1"
        ))
        .bind(alert_id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(alert_event_record).transpose()
    }

    /// The 危急值 register: every CRITICAL episode with its detection, notification,
    /// read-back acknowledgement, action and close, and who did each, oldest first.
    pub async fn critical_register(&self) -> Result<Vec<CriticalEntry>, Error> {
        let alerts: Vec<String> = sqlx::query_scalar(
            "SELECT alert_id FROM alert_events WHERE severity = 'CRITICAL'
             GROUP BY alert_id ORDER BY MIN(id)",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(alerts.len());
        for alert_id in alerts {
            let rows = sqlx::query(concat!(
                "SELECT ",
                alert_event_columns!(),
                " FROM alert_events WHERE alert_id = ? ORDER BY id"
            ))
            .bind(&alert_id)
            .fetch_all(&self.pool)
            .await?;
            let events: Vec<AlertEventRecord> = rows
                .iter()
                .map(alert_event_record)
                .collect::<Result<_, _>>()?;
            let Some(first) = events.first() else {
                continue;
            };
            let critical = events
                .iter()
                .rfind(|e| e.severity == "CRITICAL")
                .unwrap_or(first);
            let delivered = sqlx::query(
                "SELECT MIN(d.delivered_ms), GROUP_CONCAT(DISTINCT d.doctor_id)
                 FROM alert_deliveries d JOIN alert_events e ON d.event_id = e.id
                 WHERE e.alert_id = ? AND d.state = 'delivered'",
            )
            .bind(&alert_id)
            .fetch_one(&self.pool)
            .await?;
            let actions = sqlx::query(
                "SELECT action, by_doctor, note, at_ms FROM alert_actions WHERE alert_id = ? ORDER BY id",
            )
            .bind(&alert_id)
            .fetch_all(&self.pool)
            .await?;
            let mut entry = CriticalEntry {
                alert_id: alert_id.clone(),
                patient_id: first.patient_id.clone(),
                rule: critical.rule.clone(),
                display: critical.display.clone(),
                detected_at: first.opened_at,
                highest_level: events.iter().map(|e| e.level).max().unwrap_or(1),
                notified_at: delivered
                    .try_get::<Option<i64>, _>(0)?
                    .map(millis)
                    .transpose()?,
                notified: delivered
                    .try_get::<Option<String>, _>(1)?
                    .map(|s| s.split(',').map(str::to_owned).collect())
                    .unwrap_or_default(),
                acknowledged_at: None,
                acknowledged_by: None,
                read_back: None,
                resolved_at: None,
                resolved_by: None,
                action: None,
                closed_at: events.iter().find(|e| e.change == "resolved").map(|e| e.at),
            };
            for a in &actions {
                let (kind, by, note): (String, String, String) =
                    (a.try_get(0)?, a.try_get(1)?, a.try_get(2)?);
                let at = millis(a.try_get(3)?)?;
                if kind == "ack" && entry.acknowledged_at.is_none() {
                    entry.acknowledged_at = Some(at);
                    entry.acknowledged_by = Some(by);
                    entry.read_back = Some(note);
                } else if kind == "resolve" && entry.resolved_at.is_none() {
                    entry.resolved_at = Some(at);
                    entry.resolved_by = Some(by);
                    entry.action = Some(note);
                }
            }
            out.push(entry);
        }
        Ok(out)
    }

    /// The id of the newest alert event (0 when there is none).
    pub async fn last_alert_event_id(&self) -> Result<i64, Error> {
        let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM alert_events")
            .fetch_one(&self.pool)
            .await?;
        Ok(id.unwrap_or(0))
    }

    /// Alert events with ids above `after`, oldest first: (event id, event).
    ///
    /// One statement on the reading connection: the deliverers and the dashboard's
    /// stream call it after every kept event, and each statement on the writing
    /// connection waits for the intake's commit under way (an event at a time, that
    /// was seconds of delay at 15 000 readings/s; BENCHMARKS.md).
    pub async fn alert_events_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<(i64, AlertEventRecord)>, Error> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            alert_event_columns!(),
            " FROM alert_events WHERE id > ? ORDER BY id LIMIT ?"
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(12)?, alert_event_record(r)?)))
            .collect()
    }

    /// One alert event by id.
    pub async fn alert_event(&self, id: i64) -> Result<Option<AlertEventRecord>, Error> {
        let row = sqlx::query(concat!(
            "SELECT ",
            alert_event_columns!(),
            " FROM alert_events WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        row.as_ref().map(alert_event_record).transpose()
    }

    /// Deliveries held by quiet hours that are due by `now`: (event id, doctor, channel).
    pub async fn due_deliveries(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<(i64, String, String)>, Error> {
        let rows = sqlx::query(
            "SELECT event_id, doctor_id, channel FROM alert_deliveries
             WHERE state = 'held' AND channel = 'mqtt' AND due_ms <= ? ORDER BY due_ms LIMIT 1000",
        )
        .bind(now.timestamp_millis())
        .fetch_all(&self.read)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// Records deliveries, in one transaction with the delivery cursor `cursor` (name
    /// `delivery`): `held` rows wait for their due time; `delivered` rows were
    /// acknowledged by the broker (or written to the receiver) at their own time, the
    /// first delivery of an (event, doctor, channel) being kept; `failed` rows were
    /// given up on at `at`.
    pub async fn record_deliveries(
        &self,
        held: &[(i64, String, String, DateTime<Utc>)],
        delivered: &[(i64, String, String, DateTime<Utc>)],
        failed: &[(i64, String, String)],
        cursor: Option<i64>,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        for (event, doctor, channel, due) in held {
            sqlx::query(
                "INSERT OR IGNORE INTO alert_deliveries (event_id, doctor_id, channel, state, due_ms)
                 VALUES (?, ?, ?, 'held', ?)",
            )
            .bind(event)
            .bind(doctor)
            .bind(channel)
            .bind(due.timestamp_millis())
            .execute(&mut *tx)
            .await?;
        }
        let failed: Vec<_> = failed
            .iter()
            .map(|(e, d, c)| (*e, d.clone(), c.clone(), at))
            .collect();
        for (state, rows) in [("delivered", delivered), ("failed", &failed[..])] {
            for (event, doctor, channel, when) in rows {
                sqlx::query(
                    "INSERT INTO alert_deliveries (event_id, doctor_id, channel, state, due_ms, delivered_ms)
                     VALUES (?, ?, ?, ?, ?, ?)
                     ON CONFLICT (event_id, doctor_id, channel) DO UPDATE SET state = CASE WHEN alert_deliveries.state = 'delivered' THEN 'delivered' ELSE excluded.state END,
                         delivered_ms = COALESCE(alert_deliveries.delivered_ms, excluded.delivered_ms)",
                )
                .bind(event)
                .bind(doctor)
                .bind(channel)
                .bind(state)
                .bind(when.timestamp_millis())
                .bind((state == "delivered").then_some(when.timestamp_millis()))
                .execute(&mut *tx)
                .await?;
            }
        }
        if let Some(c) = cursor {
            advance_cursor(&mut *tx, "delivery", c, at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The delivery state of an alert event: (doctor, channel, state, delivered at).
    pub async fn deliveries(
        &self,
        event_id: i64,
    ) -> Result<Vec<(String, String, String, Option<DateTime<Utc>>)>, Error> {
        let rows = sqlx::query(
            "SELECT doctor_id, channel, state, delivered_ms FROM alert_deliveries
             WHERE event_id = ? ORDER BY doctor_id, channel",
        )
        .bind(event_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    r.try_get(1)?,
                    r.try_get(2)?,
                    r.try_get::<Option<i64>, _>(3)?.map(millis).transpose()?,
                ))
            })
            .collect()
    }

    /// Every delivery of an alert's events, event by event: the state per (event,
    /// doctor, channel), with attempts and the last failure for webhooks.
    pub async fn alert_deliveries(&self, alert_id: &str) -> Result<Vec<DeliveryRecord>, Error> {
        let rows = sqlx::query(
            "SELECT d.event_id, e.change, d.doctor_id, d.channel, d.state, d.due_ms,
                    d.delivered_ms, d.attempts, d.last_error
             FROM alert_deliveries d JOIN alert_events e ON d.event_id = e.id
             WHERE e.alert_id = ? ORDER BY d.event_id, d.doctor_id, d.channel",
        )
        .bind(alert_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeliveryRecord {
                    event_id: r.try_get(0)?,
                    change: r.try_get(1)?,
                    doctor_id: r.try_get(2)?,
                    channel: r.try_get(3)?,
                    state: r.try_get(4)?,
                    due: millis(r.try_get(5)?)?,
                    delivered_at: r.try_get::<Option<i64>, _>(6)?.map(millis).transpose()?,
                    attempts: r.try_get(7)?,
                    last_error: r.try_get(8)?,
                })
            })
            .collect()
    }

    /// Queues deliveries on `channel` as `pending` from their due time, in one
    /// transaction with the cursor `cursor_name` (an (event, doctor, channel) already
    /// there is left as it is).
    pub async fn queue_deliveries(
        &self,
        channel: &str,
        rows: &[(i64, String, DateTime<Utc>)],
        cursor_name: &str,
        cursor: Option<i64>,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        for (event, doctor, due) in rows {
            sqlx::query(
                "INSERT OR IGNORE INTO alert_deliveries (event_id, doctor_id, channel, state, due_ms)
                 VALUES (?, ?, ?, 'pending', ?)",
            )
            .bind(event)
            .bind(doctor)
            .bind(channel)
            .bind(due.timestamp_millis())
            .execute(&mut *tx)
            .await?;
        }
        if let Some(c) = cursor {
            advance_cursor(&mut *tx, cursor_name, c, at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Pending deliveries on `channel` due by `now`, the most overdue first:
    /// (event id, doctor, attempts so far).
    pub async fn pending_deliveries(
        &self,
        channel: &str,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<(i64, String, u32)>, Error> {
        let rows = sqlx::query(
            "SELECT event_id, doctor_id, attempts FROM alert_deliveries
             WHERE state = 'pending' AND channel = ? AND due_ms <= ? ORDER BY due_ms LIMIT ?",
        )
        .bind(channel)
        .bind(now.timestamp_millis())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// When the next pending delivery on `channel` is due, if any is.
    pub async fn next_pending_due(&self, channel: &str) -> Result<Option<DateTime<Utc>>, Error> {
        let ms: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(due_ms) FROM alert_deliveries WHERE state = 'pending' AND channel = ?",
        )
        .bind(channel)
        .fetch_one(&self.pool)
        .await?;
        ms.map(millis).transpose()
    }

    /// Records one attempt at a pending delivery: delivered at `at`, or failed with
    /// `error` and tried again at `retry_at`. Never downgrades a delivered row.
    pub async fn record_attempt(
        &self,
        (event, doctor, channel): (i64, &str, &str),
        attempts: u32,
        outcome: Result<(), (&str, DateTime<Utc>)>,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let (state, due, delivered, error) = match outcome {
            Ok(()) => ("delivered", at, Some(at.timestamp_millis()), None),
            Err((error, retry_at)) => ("pending", retry_at, None, Some(error)),
        };
        sqlx::query(
            "UPDATE alert_deliveries SET state = ?, due_ms = ?, delivered_ms = ?, attempts = ?,
                 last_error = COALESCE(?, last_error)
             WHERE event_id = ? AND doctor_id = ? AND channel = ? AND state = 'pending'",
        )
        .bind(state)
        .bind(due.timestamp_millis())
        .bind(delivered)
        .bind(attempts)
        .bind(error)
        .bind(event)
        .bind(doctor)
        .bind(channel)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives a delivery up, in one transaction: the row (a pending webhook, or an MQTT
    /// publish the broker never acknowledged, held or not yet recorded) becomes
    /// `failed` with its attempts and last error; the first of `fallbacks`, in order,
    /// that can still take the event has it queued from `at`; and an operational alert
    /// is raised. A fallback `(doctor, channel)` whose delivery of the event failed
    /// already is passed over for the next; one that has it delivered or queued ends
    /// the search (nothing to add). A new `mqtt` delivery is held for the MQTT
    /// deliverer, a new `webhook` one pending for the webhook deliverer; a failed `mqtt`
    /// one of the doctor the webhook gave up on is queued again. Returns whether a
    /// fallback was queued, or `None` when the delivery was delivered or given up
    /// already (then nothing is changed).
    pub async fn give_up_delivery(
        &self,
        (event, doctor, channel): (i64, &str, &str),
        attempts: u32,
        error: &str,
        fallbacks: &[(&str, &str)],
        at: DateTime<Utc>,
    ) -> Result<Option<bool>, Error> {
        let mut tx = self.pool.begin().await?;
        let given_up = sqlx::query(
            "INSERT INTO alert_deliveries (event_id, doctor_id, channel, state, due_ms, attempts, last_error)
             VALUES (?, ?, ?, 'failed', ?, ?, ?)
             ON CONFLICT (event_id, doctor_id, channel) DO UPDATE
                 SET state = 'failed', attempts = excluded.attempts, last_error = excluded.last_error
                 WHERE alert_deliveries.state IN ('pending', 'held')",
        )
        .bind(event)
        .bind(doctor)
        .bind(channel)
        .bind(at.timestamp_millis())
        .bind(attempts)
        .bind(error)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if given_up == 0 {
            // Delivered meanwhile, or given up already: nothing to do.
            return Ok(None);
        }
        let name = |via: &str| if via == "mqtt" { "MQTT" } else { "a webhook" };
        let mut outcome = None;
        for (to, via) in fallbacks {
            let state: Option<String> = sqlx::query_scalar(
                "SELECT state FROM alert_deliveries
                 WHERE event_id = ? AND doctor_id = ? AND channel = ?",
            )
            .bind(event)
            .bind(to)
            .bind(via)
            .fetch_optional(&mut *tx)
            .await?;
            let queue = match (state.as_deref(), *via) {
                (Some("failed"), "webhook") => continue, // failed there too: the next
                (None | Some("failed"), "mqtt") => Some("held"),
                (None, _) => Some("pending"),
                _ => None, // delivered, or queued already
            };
            if let Some(state) = queue {
                sqlx::query(
                    "INSERT INTO alert_deliveries (event_id, doctor_id, channel, state, due_ms)
                     VALUES (?, ?, ?, ?, ?)
                     ON CONFLICT (event_id, doctor_id, channel) DO UPDATE
                         SET state = excluded.state, due_ms = excluded.due_ms",
                )
                .bind(event)
                .bind(to)
                .bind(via)
                .bind(state)
                .bind(at.timestamp_millis())
                .execute(&mut *tx)
                .await?;
            }
            outcome = Some((queue.is_some(), *to, name(via)));
            break;
        }
        let (queued, fallback) = match outcome {
            Some((true, to, via)) => (true, format!("falls back to {via} for {to}")),
            Some((false, to, via)) => (false, format!("{to} has it on {via} already")),
            None if fallbacks.is_empty() => (false, "no fallback".to_owned()),
            None => (false, "every fallback failed already".to_owned()),
        };
        sqlx::query("INSERT INTO ops_alerts (kind, subject, detail, at_ms) VALUES (?, ?, ?, ?)")
            .bind(format!("{channel}_failed"))
            .bind(doctor)
            .bind(format!(
                "alert event {event}: {channel} delivery given up after {attempts} attempts ({error}); {fallback}"
            ))
            .bind(at.timestamp_millis())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(queued))
    }

    /// Operational alerts, newest first: (id, kind, subject, detail, at).
    pub async fn ops_alerts(&self, limit: u32) -> Result<Vec<OpsAlert>, Error> {
        let rows = sqlx::query(
            "SELECT id, kind, subject, detail, at_ms FROM ops_alerts ORDER BY id DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OpsAlert {
                    id: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    subject: r.try_get(2)?,
                    detail: r.try_get(3)?,
                    at: millis(r.try_get(4)?)?,
                })
            })
            .collect()
    }

    /// Alert events, oldest first, of one patient or of all.
    pub async fn alert_events(
        &self,
        patient: Option<&PatientId>,
    ) -> Result<Vec<AlertEventRecord>, Error> {
        let patient = patient.map(PatientId::as_str);
        let rows = sqlx::query(concat!(
            "SELECT ",
            alert_event_columns!(),
            " FROM alert_events WHERE (? IS NULL OR patient_id = ?) ORDER BY id"
        ))
        .bind(patient)
        .bind(patient)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(alert_event_record).collect()
    }

    /// Every alert still open (no `resolved` event), with its latest event and first
    /// acknowledgement, in the order they were opened.
    pub async fn open_alerts(&self) -> Result<Vec<crate::OpenAlert>, Error> {
        let rows = sqlx::query(
            "SELECT a.alert_id, a.patient_id, a.change, a.rule, a.severity, a.level, a.at_ms,
                    a.deliver_at_ms, a.family, a.opened_ms, a.display, a.evidence, a.id, a.ordinal,
                    k.by_doctor, k.at_ms
             FROM alert_events a
             LEFT JOIN alert_actions k ON k.id = (SELECT MIN(id) FROM alert_actions
                                                  WHERE alert_id = a.alert_id AND action = 'ack')
             WHERE a.id = (SELECT MAX(id) FROM alert_events b WHERE b.alert_id = a.alert_id)
               AND a.change != 'resolved'
             ORDER BY a.opened_ms, a.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::OpenAlert {
                    latest: alert_event_record(r)?,
                    acknowledged: first_ack(r, 14)?,
                })
            })
            .collect()
    }

    /// Every reading measured in `(from, to]` (all types; canonical values of `bp` and
    /// `glucose` only). A scan of the readings table: for on-demand population figures.
    pub async fn readings_measured_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<crate::WindowReading>, Error> {
        let rows = sqlx::query(
            "SELECT patient_id, device_id, type, time_ms,
                    CASE WHEN type IN ('bp', 'glucose') THEN canonical END
             FROM readings WHERE time_ms > ? AND time_ms <= ?",
        )
        .bind(from.timestamp_millis())
        .bind(to.timestamp_millis())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let canonical: Option<String> = r.try_get(4)?;
                Ok(crate::WindowReading {
                    patient_id: r.try_get(0)?,
                    device_id: r.try_get(1)?,
                    reading_type: r.try_get(2)?,
                    time: millis(r.try_get(3)?)?,
                    canonical: canonical
                        .map(|c| serde_json::from_str(&c).map_err(|e| corrupt("canonical", e)))
                        .transpose()?,
                })
            })
            .collect()
    }

    /// Every alert episode opened in `(from, to]`, with its first acknowledgement.
    pub async fn alerts_opened_between(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<crate::OpenedAlert>, Error> {
        let rows = sqlx::query(
            "SELECT a.alert_id, a.patient_id, a.severity, a.opened_ms, k.by_doctor, k.at_ms
             FROM alert_events a
             LEFT JOIN alert_actions k ON k.id = (SELECT MIN(id) FROM alert_actions
                                                  WHERE alert_id = a.alert_id AND action = 'ack')
             WHERE a.change = 'opened' AND a.opened_ms > ? AND a.opened_ms <= ?
             ORDER BY a.opened_ms, a.id",
        )
        .bind(from.timestamp_millis())
        .bind(to.timestamp_millis())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::OpenedAlert {
                    alert_id: r.try_get(0)?,
                    patient_id: r.try_get(1)?,
                    severity: r.try_get(2)?,
                    opened_at: millis(r.try_get(3)?)?,
                    acknowledged: first_ack(r, 4)?,
                })
            })
            .collect()
    }

    /// When each gateway's last envelope was received.
    pub async fn gateways_last_seen(&self) -> Result<Vec<(String, DateTime<Utc>)>, Error> {
        let rows =
            sqlx::query("SELECT gateway_id, MAX(received_ms) FROM envelopes GROUP BY gateway_id")
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, millis(r.try_get(1)?)?)))
            .collect()
    }

    /// When the oldest alert still open (no `resolved` event) was opened.
    pub async fn oldest_open_alert(&self) -> Result<Option<DateTime<Utc>>, Error> {
        let ms: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(a.opened_ms) FROM alert_events a
             WHERE NOT EXISTS (SELECT 1 FROM alert_events b
                               WHERE b.alert_id = a.alert_id AND b.change = 'resolved')",
        )
        .fetch_one(&self.pool)
        .await?;
        ms.map(millis).transpose()
    }

    /// The sink's cursor: the last reading row id its server confirmed (0: none).
    pub async fn sink_cursor(&self, sink: &str) -> Result<i64, Error> {
        let id: Option<i64> = sqlx::query_scalar("SELECT last_id FROM sink_cursors WHERE sink = ?")
            .bind(sink)
            .fetch_optional(&self.pool)
            .await?;
        Ok(id.unwrap_or(0))
    }

    /// Moves the sink's cursor forward to `id` (never back), durably.
    pub async fn advance_sink_cursor(
        &self,
        sink: &str,
        id: i64,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        advance_cursor(&self.pool, sink, id, at).await
    }

    /// Keeps a point the sink's server refused for good, with the server's reason.
    pub async fn keep_sink_reject(
        &self,
        sink: &str,
        reading_id: i64,
        line: &str,
        message: &str,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT OR IGNORE INTO sink_rejects (sink, reading_id, line, message, at_ms) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(sink)
        .bind(reading_id)
        .bind(line)
        .bind(message)
        .bind(at.timestamp_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The points a sink's server refused: (reading row id, line, message), oldest first.
    pub async fn sink_rejects(&self, sink: &str) -> Result<Vec<(i64, String, String)>, Error> {
        let rows = sqlx::query(
            "SELECT reading_id, line, message FROM sink_rejects WHERE sink = ? ORDER BY id",
        )
        .bind(sink)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }

    /// Keeps a registry as loaded from `source` at `at`, unless it is the text of the
    /// latest version kept; returns whether a new version was kept. Every version
    /// stays, so the store says which registry was in force when.
    pub async fn keep_registry(
        &self,
        text: &str,
        source: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let sha256 = crate::access::sha256_hex(text.as_bytes());
        let mut tx = self.pool.begin().await?;
        let latest: Option<(i64, Option<String>)> =
            sqlx::query_as("SELECT id, sha256 FROM registry_versions ORDER BY id DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        match latest {
            Some((_, Some(kept))) if kept == sha256 => return Ok(false),
            // Kept whole, before its digest was: compared in SQLite once and, when it
            // is the same text, given its digest and its pieces.
            Some((id, None)) => {
                let same: bool =
                    sqlx::query_scalar("SELECT text = ? FROM registry_versions WHERE id = ?")
                        .bind(text)
                        .bind(id)
                        .fetch_one(&mut *tx)
                        .await?;
                if same {
                    sqlx::query("UPDATE registry_versions SET sha256 = ?, text = '' WHERE id = ?")
                        .bind(&sha256)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    Self::keep_registry_text(&mut tx, id, text).await?;
                    tx.commit().await?;
                    return Ok(false);
                }
            }
            _ => {}
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO registry_versions (loaded_ms, source, text, sha256) VALUES (?, ?, '', ?) RETURNING id",
        )
        .bind(at.timestamp_millis())
        .bind(source)
        .bind(&sha256)
        .fetch_one(&mut *tx)
        .await?;
        Self::keep_registry_text(&mut tx, id, text).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Writes a version's text in pieces of [`REGISTRY_PIECE`].
    async fn keep_registry_text(
        tx: &mut sqlx::SqliteConnection,
        version: i64,
        text: &str,
    ) -> Result<(), Error> {
        for (seq, piece) in text_pieces(text, REGISTRY_PIECE).enumerate() {
            sqlx::query("INSERT INTO registry_text (version, seq, text) VALUES (?, ?, ?)")
                .bind(version)
                .bind(i64::try_from(seq).unwrap_or(i64::MAX))
                .bind(piece)
                .execute(&mut *tx)
                .await?;
        }
        Ok(())
    }

    /// A version's text: kept whole (before digests), or joined from its pieces.
    async fn registry_text(&self, version: i64, whole: String) -> Result<String, Error> {
        let pieces: Vec<String> =
            sqlx::query_scalar("SELECT text FROM registry_text WHERE version = ? ORDER BY seq")
                .bind(version)
                .fetch_all(&self.read)
                .await?;
        Ok(if pieces.is_empty() {
            whole
        } else {
            pieces.concat()
        })
    }

    /// The text of the registry version kept last, if any.
    pub async fn latest_registry(&self) -> Result<Option<String>, Error> {
        let latest: Option<(i64, String)> =
            sqlx::query_as("SELECT id, text FROM registry_versions ORDER BY id DESC LIMIT 1")
                .fetch_optional(&self.read)
                .await?;
        match latest {
            None => Ok(None),
            Some((id, whole)) => Ok(Some(self.registry_text(id, whole).await?)),
        }
    }

    /// The registry versions kept, oldest first: (loaded, source, text).
    pub async fn registry_versions(&self) -> Result<Vec<(DateTime<Utc>, String, String)>, Error> {
        let rows: Vec<(i64, i64, String, String)> =
            sqlx::query_as("SELECT id, loaded_ms, source, text FROM registry_versions ORDER BY id")
                .fetch_all(&self.read)
                .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, loaded, source, whole) in rows {
            out.push((
                millis(loaded)?,
                source,
                self.registry_text(id, whole).await?,
            ));
        }
        Ok(out)
    }

    /// A patient's readings, oldest first, optionally of one type and within
    /// `[from, to)` by measurement time.
    pub async fn readings(
        &self,
        patient: &PatientId,
        reading_type: Option<&str>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        limit: u32,
    ) -> Result<Vec<StoredReading>, Error> {
        self.readings_in_order(patient, reading_type, from, to, limit, false)
            .await
    }

    /// [`SqliteStore::readings`], newest first when `newest_first` (the latest `limit`).
    pub async fn readings_in_order(
        &self,
        patient: &PatientId,
        reading_type: Option<&str>,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        limit: u32,
        newest_first: bool,
    ) -> Result<Vec<StoredReading>, Error> {
        const OLDEST: &str = "SELECT patient_id, device_id, gateway_id, type, time, received_ms, late, canonical, original, samples
             FROM readings
             WHERE patient_id = ? AND (? IS NULL OR type = ?) AND time_ms >= ? AND time_ms < ?
             ORDER BY time_ms, id LIMIT ?";
        const NEWEST: &str = "SELECT patient_id, device_id, gateway_id, type, time, received_ms, late, canonical, original, samples
             FROM readings
             WHERE patient_id = ? AND (? IS NULL OR type = ?) AND time_ms >= ? AND time_ms < ?
             ORDER BY time_ms DESC, id DESC LIMIT ?";
        let rows = sqlx::query(if newest_first { NEWEST } else { OLDEST })
            .bind(patient.as_str())
            .bind(reading_type)
            .bind(reading_type)
            .bind(from.map_or(i64::MIN, |t| t.timestamp_millis()))
            .bind(to.map_or(i64::MAX, |t| t.timestamp_millis()))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(stored_reading).collect()
    }

    /// Quarantined readings, newest first, optionally by reason and gateway.
    pub async fn quarantine(
        &self,
        reason: Option<QuarantineReason>,
        gateway: Option<&GatewayId>,
        limit: u32,
    ) -> Result<Vec<QuarantineRecord>, Error> {
        let reason = reason.map(QuarantineReason::as_str);
        let gateway = gateway.map(GatewayId::as_str);
        let rows = sqlx::query(
            "SELECT reason, message, gateway_id, batch_seq, reading_index, device_id, received_ms, raw
             FROM quarantine
             WHERE resolved_ms IS NULL AND (? IS NULL OR reason = ?) AND (? IS NULL OR gateway_id = ?)
             ORDER BY id DESC LIMIT ?",
        )
        .bind(reason)
        .bind(reason)
        .bind(gateway)
        .bind(gateway)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(quarantine_record).collect()
    }

    /// Closes the pool, waiting for the connection to finish (ordered shutdown).
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn alert_event_record(r: &sqlx::sqlite::SqliteRow) -> Result<AlertEventRecord, Error> {
    Ok(AlertEventRecord {
        alert_id: r.try_get(0)?,
        patient_id: PatientId::parse(&r.try_get::<String, _>(1)?)
            .map_err(|e| corrupt("patient id", e))?,
        change: r.try_get(2)?,
        rule: r.try_get(3)?,
        severity: r.try_get(4)?,
        level: u8::try_from(r.try_get::<i64, _>(5)?).unwrap_or(u8::MAX),
        at: millis(r.try_get(6)?)?,
        deliver_at: r.try_get::<Option<i64>, _>(7)?.map(millis).transpose()?,
        family: r.try_get(8)?,
        opened_at: millis(r.try_get(9)?)?,
        display: r.try_get(10)?,
        evidence: serde_json::from_str(&r.try_get::<String, _>(11)?)
            .map_err(|e| corrupt("evidence", e))?,
        ordinal: u32::try_from(r.try_get::<i64, _>(13)?).unwrap_or(0),
    })
}

/// The acknowledging doctor and instant in columns `col` and `col + 1` of a row joined
/// to the first `ack` action (both null when there is none).
fn first_ack(
    r: &sqlx::sqlite::SqliteRow,
    col: usize,
) -> Result<Option<(String, DateTime<Utc>)>, Error> {
    let by: Option<String> = r.try_get(col)?;
    let at: Option<i64> = r.try_get(col + 1)?;
    Ok(match (by, at) {
        (Some(by), Some(at)) => Some((by, millis(at)?)),
        _ => None,
    })
}

pub(crate) fn corrupt(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Corrupt(format!("{what}: {e}"))
}

/// Moves the cursor `name` forward to `id` (never back), in `e` (a transaction, or the
/// pool on its own).
async fn advance_cursor<'e, E>(e: E, name: &str, id: i64, at: DateTime<Utc>) -> Result<(), Error>
where
    E: sqlx::Executor<'e, Database = Sqlite>,
{
    sqlx::query(
        "INSERT INTO sink_cursors (sink, last_id, updated_ms) VALUES (?, ?, ?)
         ON CONFLICT (sink) DO UPDATE SET last_id = MAX(last_id, excluded.last_id), updated_ms = excluded.updated_ms",
    )
    .bind(name)
    .bind(id)
    .bind(at.timestamp_millis())
    .execute(e)
    .await?;
    Ok(())
}

pub(crate) fn millis(ms: i64) -> Result<DateTime<Utc>, Error> {
    Utc.timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| corrupt("timestamp", ms))
}

fn stored_reading(row: &sqlx::sqlite::SqliteRow) -> Result<StoredReading, Error> {
    let text = |i: usize| -> Result<String, Error> { Ok(row.try_get::<String, _>(i)?) };
    Ok(StoredReading {
        patient_id: PatientId::parse(&text(0)?).map_err(|e| corrupt("patient id", e))?,
        device_id: DeviceId::parse(&text(1)?).map_err(|e| corrupt("device id", e))?,
        gateway_id: GatewayId::parse(&text(2)?).map_err(|e| corrupt("gateway id", e))?,
        reading_type: text(3)?,
        time: DateTime::<FixedOffset>::parse_from_rfc3339(&text(4)?)
            .map_err(|e| corrupt("time", e))?,
        received: millis(row.try_get(5)?)?,
        late: row.try_get(6)?,
        canonical: serde_json::from_str(&text(7)?).map_err(|e| corrupt("canonical", e))?,
        original: with_samples(
            serde_json::from_str(&text(8)?).map_err(|e| corrupt("original", e))?,
            row.try_get(9)?,
        )?,
    })
}

/// Puts an ECG strip's samples back into its original JSON, in the form it arrived in
/// (a flat array for `lead`, one array per lead for `leads`).
fn with_samples(
    mut original: serde_json::Value,
    samples: Option<Vec<u8>>,
) -> Result<serde_json::Value, Error> {
    let Some(blob) = samples else {
        return Ok(original);
    };
    let leads = crate::ecg::decode(&blob).ok_or_else(|| corrupt("ECG samples", "undecodable"))?;
    let values = original
        .get_mut("values")
        .and_then(|v| v.as_object_mut())
        .ok_or_else(|| corrupt("ECG reading", "no values"))?;
    let samples = if values.contains_key("leads") {
        serde_json::json!(leads)
    } else {
        serde_json::json!(leads.into_iter().next().unwrap_or_default())
    };
    values.insert("samples_uv".to_owned(), samples);
    Ok(original)
}

fn quarantine_record(row: &sqlx::sqlite::SqliteRow) -> Result<QuarantineRecord, Error> {
    let reason: String = row.try_get(0)?;
    let device: Option<String> = row.try_get(5)?;
    let index: i64 = row.try_get(4)?;
    let seq: i64 = row.try_get(3)?;
    Ok(QuarantineRecord {
        reason: QuarantineReason::parse(&reason).map_err(|e| corrupt("reason", e))?,
        message: row.try_get(1)?,
        gateway_id: GatewayId::parse(&row.try_get::<String, _>(2)?)
            .map_err(|e| corrupt("gateway id", e))?,
        batch_seq: seq as u64, // bit for bit, as stored
        index: usize::try_from(index).map_err(|e| corrupt("index", e))?,
        device_id: device
            .map(|d| DeviceId::parse(&d).map_err(|e| corrupt("device id", e)))
            .transpose()?,
        received: millis(row.try_get(6)?)?,
        raw: serde_json::from_str(&row.try_get::<String, _>(7)?).map_err(|e| corrupt("raw", e))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_texts_are_cut_at_character_boundaries_and_join_back() {
        let text = "ab社区✓c".repeat(50);
        for size in [0, 1, 2, 3, 7, 64, 10_000] {
            let pieces: Vec<&str> = text_pieces(&text, size).collect();
            assert_eq!(pieces.concat(), text, "{size}");
            assert!(
                pieces
                    .iter()
                    .all(|p| !p.is_empty() && p.len() <= size.max(1) + 3)
            );
        }
        assert_eq!(text_pieces("", 4).count(), 0);
    }
}
