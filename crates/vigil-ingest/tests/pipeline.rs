//! The pure pipeline stages over the documented registry example: every reading of an
//! envelope ends as exactly one item, stored or quarantined with the right reason.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use vigil_ingest::pipeline::prepare;
use vigil_model::GatewayId;
use vigil_model::vocab::QuarantineReason;
use vigil_registry::Registry;
use vigil_store::{Item, SqliteStore, Totals};
use vigil_testkit::example_registry;

fn registry_text() -> String {
    let extra = r#"
[[gateway]]
id = "gw-0043"

[[device]]
id = "glu-unassigned"
types = ["glucose"]
gateway = "gw-0042"
registered = "2026-11-01T00:00:00+08:00"

[[device]]
id = "scale-elsewhere"
types = ["weight"]
gateway = "gw-0043"
registered = "2026-11-01T00:00:00+08:00"
"#;
    format!("{}{extra}", example_registry())
}

/// The documented example, plus a registered but unassigned device and a device on
/// another gateway.
fn registry() -> Registry {
    Registry::parse(&registry_text()).unwrap()
}

fn received() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T08:00:02+08:00")
        .unwrap()
        .with_timezone(&Utc)
}

fn payload(gateway: &str, readings: Value) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"schema": "vigil.readings.v1", "gateway_id": gateway, "batch_seq": 1042,
        "sent_at": "2026-11-22T08:00:01+08:00", "readings": readings}),
    )
    .unwrap()
}

fn bp(device: &str, sys: u32) -> Value {
    json!({"device_id": device, "type": "bp", "time": "2026-11-22T07:58:03+08:00",
           "unit": "mm[Hg]", "values": {"systolic": sys, "diastolic": 91}})
}

fn gw(s: &str) -> GatewayId {
    GatewayId::parse(s).unwrap()
}

#[test]
fn every_reading_ends_stored_or_quarantined_with_its_reason() {
    let readings = json!([
        bp("bpm-omron-3f9a21", 142),                 // stored for p-000123
        bp("bpm-omron-3f9a21", 400),                 // out_of_range
        bp("bpm-unknown", 142),                      // unknown_device
        bp("scale-elsewhere", 142),                  // device_not_on_gateway
        {"device_id": "glu-unassigned", "type": "glucose", "time": "2026-11-22T07:58:03+08:00",
         "unit": "mmol/L", "values": {"value": 5.4}}, // unassigned_device
        {"device_id": "bpm-omron-3f9a21", "type": "bp"}, // malformed
        {"device_id": "bpm-omron-3f9a21", "type": "bp", "time": "2026-10-31T07:58:03+08:00",
         "unit": "mm[Hg]", "values": {"systolic": 120, "diastolic": 80}}, // before registration
        // Devices looked up again after others (the pipeline keeps the last one's).
        bp("bpm-unknown", 150),                      // unknown_device
        bp("bpm-unknown", 150),                      // unknown_device
        bp("bpm-omron-3f9a21", 150),                 // stored for p-000123
    ]);
    let commit = prepare(
        &gw("gw-0042"),
        &payload("gw-0042", readings),
        received(),
        &registry(),
    )
    .unwrap();
    assert_eq!(commit.batch_seq, 1042);
    let outcome: Vec<String> = commit
        .items
        .iter()
        .map(|i| match i {
            Item::Store { patient, .. } => format!("stored:{patient}"),
            Item::Quarantine(q) => format!("{}:{}", q.reason, q.index),
        })
        .collect();
    assert_eq!(
        outcome,
        [
            "stored:p-000123",
            "out_of_range:1",
            "unknown_device:2",
            "device_not_on_gateway:3",
            "unassigned_device:4",
            "malformed:5",
            "invalid_timestamp:6",
            "unknown_device:7",
            "unknown_device:8",
            "stored:p-000123",
        ]
    );
    let Item::Quarantine(q) = &commit.items[5] else {
        panic!()
    };
    assert_eq!(q.reason, QuarantineReason::Malformed);
    assert_eq!(
        q.raw,
        json!({"device_id": "bpm-omron-3f9a21", "type": "bp"})
    );
    assert!(q.message.starts_with("reading 5: "), "{}", q.message);
}

#[test]
fn an_envelope_published_on_another_gateways_topic_is_rejected_whole() {
    let e = prepare(
        &gw("gw-0043"),
        &payload("gw-0042", json!([bp("bpm-omron-3f9a21", 142)])),
        received(),
        &registry(),
    )
    .unwrap_err();
    assert!(
        e.message
            .contains("a gateway may publish only its own readings"),
        "{}",
        e.message
    );
    let e = prepare(&gw("gw-0042"), b"{not json", received(), &registry()).unwrap_err();
    assert!(e.message.starts_with("not valid JSON"), "{}", e.message);
}

#[tokio::test]
async fn prepared_envelopes_commit_and_account_for_every_reading() {
    let store = SqliteStore::in_memory().await.unwrap();
    let reg = registry();
    let body = payload(
        "gw-0042",
        json!([bp("bpm-omron-3f9a21", 142), bp("bpm-unknown", 1)]),
    );
    let commit = prepare(&gw("gw-0042"), &body, received(), &reg).unwrap();
    store.commit(std::slice::from_ref(&commit)).await.unwrap();
    // Redelivery of the same publish after a crash: nothing new.
    store.commit(&[commit]).await.unwrap();
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
async fn readings_of_an_unassigned_device_are_stored_once_an_assignment_covers_them() {
    let store = SqliteStore::in_memory().await.unwrap();
    let before = registry();
    let glucose = |minute: u32| {
        json!({"device_id": "glu-unassigned", "type": "glucose",
               "time": format!("2026-11-22T07:{minute:02}:00+08:00"), "unit": "mmol/L", "values": {"value": 5.4}})
    };
    let body = payload(
        "gw-0042",
        json!([glucose(10), glucose(20), bp("bpm-omron-3f9a21", 142)]),
    );
    let commit = prepare(&gw("gw-0042"), &body, received(), &before).unwrap();
    store.commit(&[commit]).await.unwrap();
    assert_eq!(
        store.totals().await.unwrap(),
        Totals {
            envelopes: 1,
            stored: 1,
            quarantined: 2,
            duplicates: 0
        }
    );

    // Nothing changes while no assignment covers the readings.
    let now = received();
    let r = vigil_ingest::pipeline::reprocess_unassigned(&store, &before, now)
        .await
        .unwrap();
    assert_eq!((r.stored, r.left), (0, 2));

    // An assignment from 07:15 covers the second reading only.
    let text = format!(
        "{}\n[[assignment]]\ndevice = \"glu-unassigned\"\npatient = \"p-000123\"\nfrom = \"2026-11-22T07:15:00+08:00\"\n",
        registry_text()
    );
    let after = Registry::parse(&text).unwrap();
    let r = vigil_ingest::pipeline::reprocess_unassigned(&store, &after, now)
        .await
        .unwrap();
    assert_eq!((r.stored, r.duplicates, r.left), (1, 0, 1));
    assert_eq!(
        store.totals().await.unwrap(),
        Totals {
            envelopes: 1,
            stored: 2,
            quarantined: 1,
            duplicates: 0
        }
    );
    let p = vigil_model::PatientId::parse("p-000123").unwrap();
    assert_eq!(
        store
            .readings(&p, Some("glucose"), None, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        store
            .quarantine(Some(QuarantineReason::UnassignedDevice), None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    // Running it again moves nothing twice.
    let r = vigil_ingest::pipeline::reprocess_unassigned(&store, &after, now)
        .await
        .unwrap();
    assert_eq!((r.stored, r.left), (0, 1));
}

/// §0.8 / §3.1 / §3.2: a weight more than 5 kg from the last accepted weight of the
/// preceding 48 h is unit_suspect, whether that weight is in the store or earlier in
/// the same envelope; 130 "kg" from a 65 kg patient is named as 斤.
#[tokio::test]
async fn a_weight_jump_against_the_stored_or_earlier_weight_is_quarantined() {
    use vigil_ingest::pipeline::check_weight_changes;
    let store = SqliteStore::in_memory().await.unwrap();
    let text = format!(
        "{}\n[[device]]\nid = \"scale-1\"\ntypes = [\"weight\"]\ngateway = \"gw-0042\"\nregistered = \"2026-11-01T00:00:00+08:00\"\n\n[[assignment]]\ndevice = \"scale-1\"\npatient = \"p-000123\"\nfrom = \"2026-11-01T00:00:00+08:00\"\n",
        registry_text()
    );
    let reg = Registry::parse(&text).unwrap();
    let weight = |time: &str, kg: f64| json!({"device_id": "scale-1", "type": "weight", "time": time, "unit": "kg", "values": {"value": kg}});
    let mut first = vec![
        prepare(
            &gw("gw-0042"),
            &payload(
                "gw-0042",
                json!([weight("2026-11-21T07:00:00+08:00", 65.0)]),
            ),
            received(),
            &reg,
        )
        .unwrap(),
    ];
    check_weight_changes(&mut first, &store).await.unwrap();
    store.commit(&first).await.unwrap();

    let body = serde_json::to_vec(
        &json!({"schema": "vigil.readings.v1", "gateway_id": "gw-0042", "batch_seq": 2,
        "sent_at": "2026-11-22T08:00:01+08:00", "readings": [
            weight("2026-11-22T07:00:00+08:00", 130.0),  // 斤 shown as kg: suspect
            weight("2026-11-22T07:10:00+08:00", 66.0),   // fine against yesterday's 65
            weight("2026-11-22T07:20:00+08:00", 72.0),   // 6 kg above the 66 just before
        ]}),
    )
    .unwrap();
    let mut second = vec![prepare(&gw("gw-0042"), &body, received(), &reg).unwrap()];
    check_weight_changes(&mut second, &store).await.unwrap();
    let outcome: Vec<String> = second[0]
        .items
        .iter()
        .map(|i| match i {
            Item::Store { .. } => "stored".to_owned(),
            Item::Quarantine(q) => format!("{}: {}", q.reason, q.message),
        })
        .collect();
    assert!(
        outcome[0].starts_with("unit_suspect: ") && outcome[0].contains("斤"),
        "{outcome:?}"
    );
    assert_eq!(outcome[1], "stored");
    assert!(
        outcome[2].starts_with("unit_suspect: ") && outcome[2].contains("(66.0 kg)"),
        "{outcome:?}"
    );
}
