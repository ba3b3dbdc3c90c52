//! The embedded clinical store against a real SQLite file: commits, quarantine,
//! duplicates, idempotent redelivery, durability across reopening.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use chrono::{DateTime, Utc};
use serde_json::json;
use vigil_model::vocab::QuarantineReason;
use vigil_model::{GatewayId, PatientId, Reading};
use vigil_rules::validate::{Context, validate};
use vigil_store::{EnvelopeCommit, Item, Outcome, Quarantined, SqliteStore, Totals};
use vigil_wire::decode_envelope;

const RECEIVED: &str = "2026-11-22T08:00:02+08:00";

fn at(t: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
}

/// Decodes wire readings with the real codec.
fn readings(values: serde_json::Value) -> Vec<Reading> {
    let env = json!({"schema": "vigil.readings.v1", "gateway_id": "gw-1", "batch_seq": 1,
                     "sent_at": "2026-11-22T08:00:01+08:00", "readings": values});
    decode_envelope(&serde_json::to_vec(&env).unwrap())
        .unwrap()
        .readings
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

fn bp(seq: u64, sys: u32, minute: u32) -> serde_json::Value {
    json!({"device_id": "bpm-1", "record_seq": seq, "type": "bp",
           "time": format!("2026-11-22T07:{minute:02}:00+08:00"), "unit": "mm[Hg]",
           "values": {"systolic": sys, "diastolic": 80, "pulse": 70}})
}

/// Validates each reading; valid ones are stored for `p-1`, others quarantined.
fn envelope(batch_seq: u64, values: serde_json::Value) -> EnvelopeCommit {
    let ctx = Context::received_at(at(RECEIVED));
    let items = readings(values)
        .into_iter()
        .enumerate()
        .map(|(index, r)| match validate(r, &ctx) {
            Ok(v) => Item::Store {
                reading: Box::new(v),
                patient: PatientId::parse("p-1").unwrap(),
            },
            Err(rej) => Item::Quarantine(Quarantined {
                reason: rej.reason,
                message: rej.message,
                index,
                device_id: Some(rej.reading.device_id.clone()),
                time: Some(rej.reading.time),
                raw: serde_json::to_value(vigil_wire::envelope::ReadingJson(&rej.reading)).unwrap(),
            }),
        })
        .collect();
    EnvelopeCommit {
        gateway_id: GatewayId::parse("gw-1").unwrap(),
        batch_seq,
        received: at(RECEIVED),
        items,
    }
}

fn p1() -> PatientId {
    PatientId::parse("p-1").unwrap()
}

#[tokio::test]
async fn valid_readings_are_stored_and_invalid_ones_quarantined_with_a_reason() {
    let store = SqliteStore::in_memory().await.unwrap();
    let out = store
        .commit(&[envelope(
            1,
            json!([bp(1, 142, 50), bp(2, 400, 51), bp(3, 120, 52)]),
        )])
        .await
        .unwrap();
    assert_eq!(
        out,
        [Outcome {
            already_committed: false,
            stored: 2,
            duplicates: 0,
            quarantined: 1,
            redelivered: 0,
        }]
    );

    let stored = store
        .readings(&p1(), Some("bp"), None, None, 100)
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert_eq!(
        stored[0].canonical,
        json!({"type": "bp", "systolic_mmhg": 142, "diastolic_mmhg": 80, "pulse_per_min": 70})
    );
    assert_eq!(stored[0].original["unit"], json!("mm[Hg]"));
    assert_eq!(stored[0].original["values"]["systolic"], json!(142.0));

    let q = store.quarantine(None, None, 100).await.unwrap();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].reason, QuarantineReason::OutOfRange);
    assert_eq!(q[0].index, 1);
    assert_eq!(q[0].batch_seq, 1);
    assert!(
        q[0].message.contains("systolic 400 mmHg"),
        "{}",
        q[0].message
    );
    assert_eq!(q[0].raw["values"]["systolic"], json!(400.0));
    assert!(
        store
            .quarantine(Some(QuarantineReason::UnitSuspect), None, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_redelivered_envelope_changes_nothing_and_is_not_counted_twice() {
    let store = SqliteStore::in_memory().await.unwrap();
    let env = envelope(7, json!([bp(1, 142, 50), bp(2, 400, 51)]));
    store.commit(std::slice::from_ref(&env)).await.unwrap();
    let again = store.commit(&[env]).await.unwrap();
    assert_eq!(
        again,
        [Outcome {
            already_committed: true,
            redelivered: 2,
            ..Outcome::default()
        }]
    );
    assert_eq!(
        store.totals().await.unwrap(),
        Totals {
            envelopes: 1,
            stored: 1,
            quarantined: 1,
            duplicates: 0
        }
    );
}

#[tokio::test]
async fn the_same_reading_in_another_envelope_is_a_duplicate() {
    let store = SqliteStore::in_memory().await.unwrap();
    // A meter whose memory is re-read sends record 1 again in a new envelope.
    let out = store
        .commit(&[
            envelope(1, json!([bp(1, 142, 50)])),
            envelope(2, json!([bp(1, 142, 50), bp(2, 150, 55)])),
        ])
        .await
        .unwrap();
    assert_eq!(
        out[1],
        Outcome {
            already_committed: false,
            stored: 1,
            duplicates: 1,
            quarantined: 0,
            redelivered: 0,
        }
    );
    assert_eq!(
        store
            .readings(&p1(), None, None, None, 100)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        store.totals().await.unwrap(),
        Totals {
            envelopes: 2,
            stored: 2,
            quarantined: 0,
            duplicates: 1
        }
    );
}

#[tokio::test]
async fn readings_and_dedup_survive_closing_and_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clinical.db");
    {
        let store = SqliteStore::open(&path).await.unwrap();
        store
            .commit(&[envelope(1, json!([bp(1, 142, 50)]))])
            .await
            .unwrap();
        store.close().await;
    }
    let store = SqliteStore::open(&path).await.unwrap();
    assert_eq!(
        store
            .readings(&p1(), None, None, None, 100)
            .await
            .unwrap()
            .len(),
        1
    );
    let out = store
        .commit(&[
            envelope(1, json!([bp(1, 142, 50)])),
            envelope(2, json!([bp(1, 142, 50)])),
        ])
        .await
        .unwrap();
    assert!(out[0].already_committed);
    assert_eq!(out[1].duplicates, 1);
}

#[tokio::test]
async fn readings_are_filtered_by_type_and_measurement_time() {
    let store = SqliteStore::in_memory().await.unwrap();
    let glucose = json!({"device_id": "glu-1", "type": "glucose", "time": "2026-11-22T07:30:00+08:00",
                         "unit": "mg/dL", "values": {"value": 126, "context": "fasting"}});
    store
        .commit(&[envelope(
            1,
            json!([bp(1, 142, 10), bp(2, 150, 20), glucose]),
        )])
        .await
        .unwrap();
    let bps = store
        .readings(
            &p1(),
            Some("bp"),
            Some(at("2026-11-22T07:15:00+08:00")),
            None,
            100,
        )
        .await
        .unwrap();
    assert_eq!(bps.len(), 1);
    assert_eq!(bps[0].canonical["systolic_mmhg"], json!(150));
    let g = store
        .readings(&p1(), Some("glucose"), None, None, 100)
        .await
        .unwrap();
    assert_eq!(g[0].canonical["glucose_mmol_l"], json!(7.0));
    assert!(
        store
            .readings(&PatientId::parse("p-2").unwrap(), None, None, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn an_unusable_payload_is_kept_whole_with_its_reason() {
    let store = SqliteStore::in_memory().await.unwrap();
    store
        .reject_payload(
            &GatewayId::parse("gw-1").unwrap(),
            at(RECEIVED),
            b"\xff not json",
            "not valid JSON",
        )
        .await
        .unwrap();
    assert_eq!(store.rejected_payloads().await.unwrap(), 1);
}

#[tokio::test]
async fn the_same_reading_twice_in_one_envelope_is_stored_once() {
    let store = SqliteStore::in_memory().await.unwrap();
    let out = store
        .commit(&[envelope(
            1,
            json!([bp(1, 142, 50), bp(1, 142, 50), bp(2, 130, 51)]),
        )])
        .await
        .unwrap();
    assert_eq!(
        out[0],
        Outcome {
            already_committed: false,
            stored: 2,
            duplicates: 1,
            quarantined: 0,
            redelivered: 0,
        }
    );
}

#[tokio::test]
async fn an_envelope_larger_than_one_statement_commits_whole() {
    let store = SqliteStore::in_memory().await.unwrap();
    let many: Vec<_> = (0..1200)
        .map(|i| bp(i, 120 + (i % 50) as u32, (i % 60) as u32))
        .collect();
    // Minutes repeat, record numbers do not: 1200 distinct identities.
    let out = store
        .commit(&[envelope(1, serde_json::Value::Array(many))])
        .await
        .unwrap();
    assert_eq!(out[0].stored, 1200);
    assert_eq!(
        store
            .readings(&p1(), None, None, None, 10_000)
            .await
            .unwrap()
            .len(),
        1200
    );
}

#[tokio::test]
async fn ecg_strips_are_kept_as_one_compact_blob_and_read_back_as_sent() {
    let store = SqliteStore::in_memory().await.unwrap();
    let single: Vec<i64> = (0..360).map(|i| (i % 37) * 11 - 150).collect();
    let strips = json!([
        {"device_id": "patch-1", "type": "ecg_waveform", "time": "2026-11-22T07:00:00+08:00", "unit": "uV",
         "values": {"lead": "MLII", "sample_rate_hz": 360, "samples_uv": single}},
        {"device_id": "ecg12-1", "type": "ecg_waveform", "time": "2026-11-22T07:01:00+08:00", "unit": "uV",
         "values": {"leads": ["I", "II"], "sample_rate_hz": 500, "samples_uv": [[1, -2, 3], [40, 41, -42]]}},
    ]);
    let out = store.commit(&[envelope(1, strips)]).await.unwrap();
    assert_eq!(out[0].stored, 2);
    let back = store
        .readings(&p1(), Some("ecg_waveform"), None, None, 10)
        .await
        .unwrap();
    assert_eq!(back[0].original["values"]["samples_uv"], json!(single));
    assert_eq!(back[0].original["values"]["lead"], json!("MLII"));
    assert_eq!(
        back[1].original["values"]["samples_uv"],
        json!([[1, -2, 3], [40, 41, -42]])
    );
    assert_eq!(back[1].canonical["samples_per_lead"], json!(3));
}

#[tokio::test]
async fn envelope_marks_give_each_gateways_last_batch_and_the_latest_receipt() {
    let store = SqliteStore::in_memory().await.unwrap();
    assert_eq!(
        store.envelope_marks().await.unwrap(),
        vigil_store::EnvelopeMarks::default()
    );
    let mut other = envelope(3, json!([bp(9, 120, 40)]));
    other.gateway_id = GatewayId::parse("gw-2").unwrap();
    other.received = at("2026-11-22T09:00:00+08:00");
    store
        .commit(&[
            envelope(7, json!([bp(1, 142, 50)])),
            envelope(u64::MAX, json!([])),
            other,
        ])
        .await
        .unwrap();
    let marks = store.envelope_marks().await.unwrap();
    let mut last = marks.last_batch_seq.clone();
    last.sort();
    assert_eq!(
        last,
        [
            (GatewayId::parse("gw-1").unwrap(), u64::MAX),
            (GatewayId::parse("gw-2").unwrap(), 3)
        ]
    );
    assert_eq!(marks.last_received, Some(at("2026-11-22T09:00:00+08:00")));
}

#[tokio::test]
async fn every_registry_version_is_kept_once_in_the_order_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clinical.db");
    let store = SqliteStore::open(&path).await.unwrap();
    assert!(store.registry_versions().await.unwrap().is_empty());
    let t = at(RECEIVED);
    assert!(store.keep_registry("a = 1", "r.toml", t).await.unwrap());
    assert!(!store.keep_registry("a = 1", "r.toml", t).await.unwrap());
    assert!(store.keep_registry("a = 2", "r.toml", t).await.unwrap());
    // Going back to an earlier text is a new version: it was in force again.
    assert!(store.keep_registry("a = 1", "other.toml", t).await.unwrap());
    store.close().await;
    let store = SqliteStore::open(&path).await.unwrap();
    let texts: Vec<(String, String)> = store
        .registry_versions()
        .await
        .unwrap()
        .into_iter()
        .map(|(when, source, text)| {
            assert_eq!(when, t);
            (source, text)
        })
        .collect();
    assert_eq!(
        texts,
        [
            ("r.toml".to_owned(), "a = 1".to_owned()),
            ("r.toml".to_owned(), "a = 2".to_owned()),
            ("other.toml".to_owned(), "a = 1".to_owned())
        ]
    );
}

/// A registry of 100 000 patients is 77 MB of text: kept in pieces, compared by its
/// digest, and read back whole (characters of several bytes across the cuts).
#[tokio::test]
async fn a_large_registry_is_kept_in_pieces_and_read_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("clinical.db"))
        .await
        .unwrap();
    let t = at(RECEIVED);
    let large = "# 社区卫生服务中心 ✓\n".repeat(120_000); // 3.4 MB: four pieces
    assert!(store.keep_registry(&large, "r.toml", t).await.unwrap());
    assert!(!store.keep_registry(&large, "r.toml", t).await.unwrap());
    let other = format!("{large}# one line more\n");
    assert!(store.keep_registry(&other, "r.toml", t).await.unwrap());
    assert_eq!(store.latest_registry().await.unwrap().unwrap(), other);
    let versions = store.registry_versions().await.unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0].2, large);
    assert_eq!(versions[1].2, other);
}

/// A store written before registry texts were kept in pieces holds them whole: the
/// version in force is still recognised (not kept a second time), and read back.
#[tokio::test]
async fn a_registry_kept_whole_by_an_earlier_store_is_recognised() {
    use sqlx::{Connection, Executor};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clinical.db");
    let mut old = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    old.execute(
        "CREATE TABLE registry_versions (id INTEGER PRIMARY KEY, loaded_ms INTEGER NOT NULL, source TEXT NOT NULL, text TEXT NOT NULL)",
    )
    .await
    .unwrap();
    old.execute("INSERT INTO registry_versions (loaded_ms, source, text) VALUES (1764720002000, 'r.toml', 'a = 1')")
        .await
        .unwrap();
    old.close().await.unwrap();

    let store = SqliteStore::open(&path).await.unwrap();
    let t = at(RECEIVED);
    assert_eq!(store.latest_registry().await.unwrap().unwrap(), "a = 1");
    assert!(!store.keep_registry("a = 1", "r.toml", t).await.unwrap());
    assert!(!store.keep_registry("a = 1", "r.toml", t).await.unwrap());
    assert!(store.keep_registry("a = 2", "r.toml", t).await.unwrap());
    let texts: Vec<String> = store
        .registry_versions()
        .await
        .unwrap()
        .into_iter()
        .map(|v| v.2)
        .collect();
    assert_eq!(texts, ["a = 1", "a = 2"]);
}

/// A file store checkpoints its WAL in the background, on its own connection: the
/// pages reach the database file without the committing connection's threshold
/// (8 192 pages) being reached, and without anything else asking for a checkpoint.
#[tokio::test]
async fn a_file_store_checkpoints_its_wal_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vigil.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let size = || std::fs::metadata(&path).unwrap().len();
    let before = size();
    // A new store is made of 16 KiB pages (BENCHMARKS.md).
    assert!(
        before > 0 && before % 16_384 == 0,
        "a new store's file is {before} bytes"
    );
    // 300 readings: some hundred pages in the WAL, far below the threshold.
    let readings: Vec<_> = (0..300u64)
        .map(|i| bp(i + 1, 120 + (i % 20) as u32, (i % 60) as u32))
        .collect();
    store
        .commit(&[envelope(1, serde_json::Value::Array(readings))])
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while size() <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "the database file is still {before} bytes 10 s after the commit: no checkpoint ran"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(store.totals().await.unwrap().stored, 300);
}
