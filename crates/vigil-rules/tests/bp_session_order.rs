//! A BP session's readings are one measurement whatever order they arrive in
//! (`clinical/rules.md` §1: readings within 3 minutes of each other). The replay
//! scenarios `a_session_received_newest_first_*` and `a_crisis_session_received_newest_first_*`
//! check the outcomes; this checks what an alert carries.

#![allow(clippy::unwrap_used)] // test setup

use chrono::{DateTime, Utc};
use vigil_model::vocab::Condition;
use vigil_rules::engine::{Change, Engine, Profile};
use vigil_rules::validate::Validated;

mod common;

/// A reading of 80/min at `time` (RFC 3339).
fn bp(time: &str, systolic: f64, diastolic: f64, received: DateTime<Utc>) -> Validated {
    common::bp(time.parse().unwrap(), (systolic, diastolic, 80.0), received)
}

#[test]
fn a_crisis_session_received_newest_first_is_confirmed_with_its_readings_in_time_order() {
    let profile =
        Profile::with_default_rules(vec![Condition::Hypertension], chrono_tz::Asia::Shanghai);
    let mut engine = Engine::new(profile);
    let upload: DateTime<Utc> = "2026-03-01T23:01:30Z".parse().unwrap();
    let mut events = engine.on_reading(
        &bp("2026-03-02T07:01:00+08:00", 190.0, 115.0, upload),
        upload,
    );
    events.extend(engine.on_reading(
        &bp("2026-03-02T07:00:00+08:00", 188.0, 112.0, upload),
        upload,
    ));
    assert!(
        events.is_empty(),
        "the index session awaits its repeat: {events:?}"
    );
    let repeat: DateTime<Utc> = "2026-03-01T23:05:30Z".parse().unwrap();
    let events = engine.on_reading(
        &bp("2026-03-02T07:05:30+08:00", 186.0, 112.0, repeat),
        repeat,
    );
    let opened: Vec<_> = events
        .iter()
        .filter(|e| e.change == Change::Opened)
        .collect();
    assert_eq!(opened.len(), 1, "{events:?}");
    assert_eq!(opened[0].rule, "bp_crisis");
    let times: Vec<String> = opened[0]
        .evidence
        .iter()
        .map(|e| e.time.to_rfc3339())
        .collect();
    assert_eq!(
        times,
        [
            "2026-03-02T07:00:00+08:00",
            "2026-03-02T07:01:00+08:00",
            "2026-03-02T07:05:30+08:00"
        ],
        "the index session's readings in time order, then the repeat"
    );
}
