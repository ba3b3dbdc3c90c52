//! The clinical store: every reading ends here, stored or quarantined with a reason,
//! or counted as a duplicate (wire contract guarantee 3).
//!
//! Embedded default: one SQLite file in WAL mode with `synchronous = FULL`, so a
//! committed transaction survives a power cut; the ingester acknowledges an MQTT publish
//! only after [`SqliteStore::commit`] returned for it (guarantee 2). A PostgreSQL
//! backend will implement the same operations later.
//!
//! Invariants:
//! - **One commit, one transaction**: the readings, quarantine records and envelope
//!   records of every envelope passed to [`SqliteStore::commit`] are written together
//!   or not at all (group commit: several envelopes share one fsync).
//! - **Envelopes are idempotent**: an envelope is identified by (`gateway_id`,
//!   `batch_seq`) and the contract guarantees a republished envelope carries the same
//!   readings; committing one that is already committed changes nothing and reports
//!   `already_committed`, so a redelivery after a crash is neither stored nor counted
//!   twice.
//! - **Readings are unique by identity** (`wire-v1.md`): a second reading with the
//!   identity of a stored one, from another envelope, is counted as a duplicate.
//! - Only a [`vigil_rules::validate::Validated`] reading can be stored; everything
//!   else is quarantined with its reason, a message a person can act on, the raw
//!   reading and the gateway.
//! - Readings keep the original value and unit as received beside the canonical form.
//! - **Gaps are tracked in the commit**: each new envelope updates its gateway's
//!   `batch_seq` watermark and missing ranges in the same transaction ([`gaps`]), so
//!   the gap detector reads the open gaps without scanning the envelopes.

pub mod access;
mod commit;
pub mod ecg;
pub mod gaps;
mod sqlite;

use chrono::{DateTime, FixedOffset, Utc};
use vigil_model::vocab::QuarantineReason;
use vigil_model::{DeviceId, GatewayId, PatientId, ReadingIdentity};
use vigil_rules::validate::Validated;

pub use gaps::{BatchGap, GapTotals, GatewayGaps, SeqMarks};
pub use sqlite::{PreparedRows, SqliteStore, prepare_rows};

/// A store error. Callers withhold the MQTT ack and retry; nothing was committed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("clinical store: {0}")]
    Database(#[from] sqlx::Error),
    #[error("clinical store: cannot open {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("clinical store: a stored record is corrupt: {0}")]
    Corrupt(String),
    /// From the intake's committing connection ([`commit`]).
    #[error("clinical store: {0}")]
    Write(#[from] rusqlite::Error),
    #[error("clinical store: {0}")]
    Writer(String),
}

/// One envelope's worth of outcomes, ready to commit.
#[derive(Debug, Clone)]
pub struct EnvelopeCommit {
    pub gateway_id: GatewayId,
    pub batch_seq: u64,
    /// When the ingester received it (its own clock).
    pub received: DateTime<Utc>,
    pub items: Vec<Item>,
}

/// What happens to one reading.
#[derive(Debug, Clone)]
pub enum Item {
    /// A validated reading attributed to a patient.
    Store {
        reading: Box<Validated>,
        patient: PatientId,
    },
    /// A reading that cannot be stored as the patient's.
    Quarantine(Quarantined),
}

/// A reading kept aside, with why.
#[derive(Debug, Clone, PartialEq)]
pub struct Quarantined {
    pub reason: QuarantineReason,
    /// What is wrong and what to do.
    pub message: String,
    /// Position in its envelope.
    pub index: usize,
    /// When known (a malformed reading may have none).
    pub device_id: Option<DeviceId>,
    pub time: Option<DateTime<FixedOffset>>,
    /// The reading exactly as received.
    pub raw: serde_json::Value,
}

/// What a commit did with one envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Outcome {
    /// The envelope had been committed before (a redelivery); nothing was written.
    pub already_committed: bool,
    pub stored: u32,
    pub duplicates: u32,
    pub quarantined: u32,
    /// Of a redelivered envelope: its readings, each already stored, quarantined or
    /// counted a duplicate at its first delivery.
    pub redelivered: u32,
}

/// Where a commit put one stored reading ([`SqliteStore::commit_prepared`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredRow {
    /// The envelope's index in the commit, and the reading's item in it.
    pub envelope: usize,
    pub item: usize,
    /// Its row id (`readings.id`).
    pub id: i64,
}

/// Running totals, for accounting (stored + quarantined + duplicates = received).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    pub envelopes: u64,
    pub stored: u64,
    pub quarantined: u64,
    pub duplicates: u64,
}

/// Where the committed envelopes stand ([`SqliteStore::envelope_marks`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvelopeMarks {
    /// The highest committed `batch_seq` of each gateway.
    pub last_batch_seq: Vec<(GatewayId, u64)>,
    /// The latest receipt of any envelope (the ingester's clock).
    pub last_received: Option<DateTime<Utc>>,
}

/// A stored reading, as the API returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredReading {
    pub patient_id: PatientId,
    pub device_id: DeviceId,
    pub gateway_id: GatewayId,
    pub reading_type: String,
    pub time: DateTime<FixedOffset>,
    pub received: DateTime<Utc>,
    pub late: bool,
    /// Canonical values (`vigil envelope check` keys).
    pub canonical: serde_json::Value,
    /// The reading as received: original value and unit.
    pub original: serde_json::Value,
}

/// A committed reading as the telemetry sink exports it
/// ([`SqliteStore::export_after`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRow {
    /// The reading's row id: increases in commit order; the sink's cursor.
    pub id: i64,
    pub patient_id: PatientId,
    pub device_id: DeviceId,
    pub reading_type: String,
    pub time: DateTime<FixedOffset>,
    pub received: DateTime<Utc>,
    /// Canonical values (`vigil envelope check` keys).
    pub canonical: serde_json::Value,
    /// The unit the device sent, if it sent one.
    pub unit: Option<String>,
    /// An ECG strip's samples per lead (µV).
    pub samples: Option<Vec<Vec<i32>>>,
}

/// A committed reading as the rule engine takes it ([`SqliteStore::rule_inputs`]).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleInput {
    pub id: i64,
    pub patient_id: PatientId,
    pub received: DateTime<Utc>,
    /// The reading as received (wire form; an ECG strip without its samples).
    pub original: serde_json::Value,
    pub reading_type: String,
}

/// One change of an alert episode, as kept for delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertEventRecord {
    /// Stable for the whole episode, and across restarts.
    pub alert_id: String,
    pub patient_id: PatientId,
    /// The episode's rule family, opening instant, and rank among the family's
    /// episodes opened at that instant.
    pub family: String,
    pub opened_at: DateTime<Utc>,
    pub ordinal: u32,
    /// The triggering value as the client shows it, and the readings behind it
    /// (wire `evidence`).
    pub display: String,
    pub evidence: serde_json::Value,
    /// `opened`, `upgraded`, `escalated`, `acknowledged`, `resolved`.
    pub change: String,
    pub rule: String,
    pub severity: String,
    /// Escalation level after the change (1–3).
    pub level: u8,
    pub at: DateTime<Utc>,
    /// Held by quiet hours until then.
    pub deliver_at: Option<DateTime<Utc>>,
}

/// An alert still open (no `resolved` event): its latest event, and its first
/// acknowledgement if one was made.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAlert {
    pub latest: AlertEventRecord,
    /// Who acknowledged it, and when.
    pub acknowledged: Option<(String, DateTime<Utc>)>,
}

/// A reading measured in a window, as the population figures count it
/// ([`SqliteStore::readings_measured_between`]).
#[derive(Debug, Clone, PartialEq)]
pub struct WindowReading {
    pub patient_id: String,
    pub device_id: String,
    pub reading_type: String,
    pub time: DateTime<Utc>,
    /// Canonical values, for `bp` and `glucose` readings only.
    pub canonical: Option<serde_json::Value>,
}

/// An alert episode opened in a window, with its first acknowledgement
/// ([`SqliteStore::alerts_opened_between`]).
#[derive(Debug, Clone, PartialEq)]
pub struct OpenedAlert {
    pub alert_id: String,
    pub patient_id: String,
    /// The severity it opened with.
    pub severity: String,
    pub opened_at: DateTime<Utc>,
    pub acknowledged: Option<(String, DateTime<Utc>)>,
}

/// A doctor's action on an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertAction {
    pub alert_id: String,
    /// `ack` or `resolve`.
    pub action: String,
    /// The doctor's id.
    pub by: String,
    /// The read-back of an acknowledgement, the action note of a resolution.
    pub note: String,
    pub at: DateTime<Utc>,
}

/// The state of one delivery of an alert event (`alert_deliveries`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub event_id: i64,
    /// The event's change: opened, upgraded, escalated, ...
    pub change: String,
    pub doctor_id: String,
    /// mqtt, sse or webhook.
    pub channel: String,
    /// held (quiet hours, MQTT), pending (webhook, waiting for its next attempt),
    /// delivered, failed.
    pub state: String,
    /// Held or pending: when it is (re)tried.
    pub due: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
    /// Webhook attempts made (0 for the other channels).
    pub attempts: u32,
    /// The last failure, as a person can read it (webhooks).
    pub last_error: Option<String>,
}

/// An operational alert: something about the platform itself a person must look at
/// (a delivery channel given up on). It names doctors or devices, never a patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpsAlert {
    pub id: i64,
    pub kind: String,
    pub subject: String,
    pub detail: String,
    pub at: DateTime<Utc>,
}

/// One line of the 危急值 register: a CRITICAL episode and what was done about it.
#[derive(Debug, Clone, PartialEq)]
pub struct CriticalEntry {
    pub alert_id: String,
    pub patient_id: PatientId,
    /// The critical rule and the value as shown.
    pub rule: String,
    pub display: String,
    /// When the engine raised it (for a confirmed BP crisis: at its confirmation).
    pub detected_at: DateTime<Utc>,
    pub highest_level: u8,
    /// The first delivery the broker acknowledged, and every doctor notified.
    pub notified_at: Option<DateTime<Utc>>,
    pub notified: Vec<String>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    pub acknowledged_by: Option<String>,
    pub read_back: Option<String>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub resolved_by: Option<String>,
    /// What was done (the resolution's note).
    pub action: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
}

/// A quarantined reading, as the API returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct QuarantineRecord {
    pub reason: QuarantineReason,
    pub message: String,
    pub gateway_id: GatewayId,
    pub batch_seq: u64,
    pub index: usize,
    pub device_id: Option<DeviceId>,
    pub received: DateTime<Utc>,
    pub raw: serde_json::Value,
}

/// What the ingester needs of a clinical store: the embedded SQLite store implements
/// it, the PostgreSQL backend will, and tests wrap it (to slow it down, to fail it).
pub trait ClinicalStore: Clone + Send + Sync + 'static {
    /// Commits several envelopes atomically; see [`SqliteStore::commit`].
    fn commit(
        &self,
        envelopes: &[EnvelopeCommit],
    ) -> impl Future<Output = Result<Vec<Outcome>, Error>> + Send;

    /// [`ClinicalStore::commit`] with the rows computed ahead ([`prepare_rows`]), and
    /// the row id of each reading stored, in row-id order; see
    /// [`SqliteStore::commit_prepared`]. A store without row ids returns none.
    fn commit_prepared(
        &self,
        envelopes: &[EnvelopeCommit],
        _prepared: PreparedRows,
    ) -> impl Future<Output = Result<(Vec<Outcome>, Vec<StoredRow>), Error>> + Send {
        async move { Ok((self.commit(envelopes).await?, Vec::new())) }
    }

    /// The reference weight of §0.8; see [`SqliteStore::reference_weight`].
    fn reference_weight(
        &self,
        patient: &PatientId,
        before: DateTime<Utc>,
    ) -> impl Future<Output = Result<Option<(DateTime<Utc>, f64)>, Error>> + Send;

    /// Keeps an unusable payload whole; see [`SqliteStore::reject_payload`].
    fn reject_payload(
        &self,
        gateway: &GatewayId,
        received: DateTime<Utc>,
        payload: &[u8],
        message: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;
}

impl ClinicalStore for SqliteStore {
    async fn reference_weight(
        &self,
        patient: &PatientId,
        before: DateTime<Utc>,
    ) -> Result<Option<(DateTime<Utc>, f64)>, Error> {
        SqliteStore::reference_weight(self, patient, before).await
    }

    async fn commit(&self, envelopes: &[EnvelopeCommit]) -> Result<Vec<Outcome>, Error> {
        SqliteStore::commit(self, envelopes).await
    }

    async fn commit_prepared(
        &self,
        envelopes: &[EnvelopeCommit],
        prepared: PreparedRows,
    ) -> Result<(Vec<Outcome>, Vec<StoredRow>), Error> {
        SqliteStore::commit_prepared(self, envelopes, prepared).await
    }

    async fn reject_payload(
        &self,
        gateway: &GatewayId,
        received: DateTime<Utc>,
        payload: &[u8],
        message: &str,
    ) -> Result<(), Error> {
        SqliteStore::reject_payload(self, gateway, received, payload, message).await
    }
}

/// The text key of a reading identity, unique in the store:
/// `{device_id}/seq:{n}/…` or `{device_id}/type:{type}/…`, then `device:` and the
/// device's local time, or `time:` and the UTC instant with a `Z`, as
/// `YYYY-MM-DDTHH:MM:SS` with the fraction of a second in 3, 6 or 9 digits when it has
/// one (chrono's `%Y-%m-%dT%H:%M:%S%.f`).
///
/// Written digit by digit: through chrono's `format`, which parses its format string
/// at every call, the key took 6 800 instructions a reading, a quarter of the commit's
/// work outside SQLite (callgrind; BENCHMARKS.md). The same text as chrono's for every
/// time (`identity_key_is_chronos_format`); years outside 0–9999 and leap seconds,
/// which no device sends, go through chrono.
pub fn identity_key(id: &ReadingIdentity) -> String {
    use std::fmt::Write;
    use vigil_model::reading::{IdentityKey, IdentityTime};
    let mut out = String::with_capacity(id.device_id.as_str().len() + 48);
    out.push_str(id.device_id.as_str());
    // '/' cannot occur in an id, so the key is unambiguous.
    match id.key {
        IdentityKey::RecordSeq(n) => {
            let _ = write!(out, "/seq:{n}/");
        }
        IdentityKey::Type(t) => {
            out.push_str("/type:");
            out.push_str(t.as_str());
            out.push('/');
        }
    }
    match id.time {
        IdentityTime::Device(t) => {
            out.push_str("device:");
            push_time(&mut out, t);
        }
        IdentityTime::Measured(t) => {
            out.push_str("time:");
            push_time(&mut out, t.naive_utc());
            out.push('Z');
        }
    }
    out
}

/// `t` as chrono's `%Y-%m-%dT%H:%M:%S%.f`.
fn push_time(out: &mut String, t: chrono::NaiveDateTime) {
    use chrono::{Datelike, Timelike};
    let nanos = t.nanosecond();
    let Ok(year) = u32::try_from(t.year()) else {
        return chrono_time(out, t);
    };
    if year > 9999 || nanos >= 1_000_000_000 {
        return chrono_time(out, t);
    }
    push_digits(out, year, 4);
    out.push('-');
    push_digits(out, t.month(), 2);
    out.push('-');
    push_digits(out, t.day(), 2);
    out.push('T');
    push_digits(out, t.hour(), 2);
    out.push(':');
    push_digits(out, t.minute(), 2);
    out.push(':');
    push_digits(out, t.second(), 2);
    if nanos != 0 {
        out.push('.');
        if nanos.is_multiple_of(1_000_000) {
            push_digits(out, nanos / 1_000_000, 3);
        } else if nanos.is_multiple_of(1_000) {
            push_digits(out, nanos / 1_000, 6);
        } else {
            push_digits(out, nanos, 9);
        }
    }
}

/// The rare times [`push_time`] leaves to chrono.
fn chrono_time(out: &mut String, t: chrono::NaiveDateTime) {
    use std::fmt::Write;
    let _ = write!(out, "{}", t.format("%Y-%m-%dT%H:%M:%S%.f"));
}

/// The last `width` decimal digits of `v`, zero-padded (`width` ≤ 10).
fn push_digits(out: &mut String, mut v: u32, width: usize) {
    let mut digits = [b'0'; 10];
    for d in digits[..width].iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend(digits[..width].iter().map(|&d| char::from(d)));
}

#[cfg(test)]
mod identity_tests {
    use super::*;
    use chrono::{DateTime, NaiveDateTime};
    use proptest::prelude::*;
    use vigil_model::DeviceId;
    use vigil_model::reading::{IdentityKey, IdentityTime};
    use vigil_model::vocab::ReadingType;

    /// The key as it was written through chrono's `format` (the store's keys so far).
    fn chrono_key(id: &ReadingIdentity) -> String {
        let key = match id.key {
            IdentityKey::RecordSeq(n) => format!("seq:{n}"),
            IdentityKey::Type(t) => format!("type:{t}"),
        };
        let time = match id.time {
            IdentityTime::Device(t) => format!("device:{}", t.format("%Y-%m-%dT%H:%M:%S%.f")),
            IdentityTime::Measured(t) => format!("time:{}", t.format("%Y-%m-%dT%H:%M:%S%.fZ")),
        };
        format!("{}/{key}/{time}", id.device_id)
    }

    /// Whole seconds, milliseconds, microseconds, nanoseconds, and leap seconds.
    fn nanos() -> impl Strategy<Value = u32> {
        prop_oneof![
            Just(0u32),
            (1u32..1000).prop_map(|ms| ms * 1_000_000),
            (1u32..1_000_000).prop_map(|us| us * 1_000),
            0u32..1_000_000_000,
            1_000_000_000u32..2_000_000_000,
        ]
    }

    fn time() -> impl Strategy<Value = NaiveDateTime> {
        // Years about -1200 to 11 500: the four-digit years and either side of them.
        (-100_000_000_000i64..300_000_000_000, nanos()).prop_map(|(secs, nanos)| {
            // A leap second only at the end of a minute, as chrono allows it.
            let secs = if nanos >= 1_000_000_000 {
                secs - secs.rem_euclid(60) + 59
            } else {
                secs
            };
            DateTime::from_timestamp(secs, nanos)
                .map(|t| t.naive_utc())
                .unwrap_or_default()
        })
    }

    proptest! {
        #[test]
        fn identity_key_is_chronos_format(
            t in time(),
            measured in any::<bool>(),
            seq in proptest::option::of(any::<u64>()),
            type_index in 0..ReadingType::ALL.len(),
        ) {
            let id = ReadingIdentity {
                device_id: DeviceId::parse("dev-0001").unwrap_or_else(|e| panic!("{e}")),
                key: match seq {
                    Some(n) => IdentityKey::RecordSeq(n),
                    None => IdentityKey::Type(ReadingType::ALL[type_index]),
                },
                time: if measured {
                    IdentityTime::Measured(t.and_utc())
                } else {
                    IdentityTime::Device(t)
                },
            };
            prop_assert_eq!(identity_key(&id), chrono_key(&id));
        }
    }
}
