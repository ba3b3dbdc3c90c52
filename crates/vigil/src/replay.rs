//! `vigil rules replay SCENARIO.json` (`spec/replay.md`): a scenario through the same
//! validator and rule engine as the live pipeline, on a clock driven by the scenario.

use std::collections::HashSet;

use anyhow::{Context, bail};
use chrono::{DateTime, FixedOffset, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};
use std::sync::Arc;
use vigil_model::vocab::Condition;
use vigil_rules::engine::{Change, Engine, Ladder, Profile};
use vigil_rules::overrides::{OverrideRequest, Thresholds};
use vigil_rules::ruleset::RuleSet;
use vigil_rules::validate::{Context as ValidationContext, validate};

/// The scenario's overrides (`patient_profile.overrides`, with `snoozed_rules` and
/// `snooze_until` inside it or beside it) as requests for the engine.
fn overrides(profile: &Value) -> anyhow::Result<Vec<OverrideRequest>> {
    let mut out = Vec::new();
    let empty = serde_json::Map::new();
    let map = match profile.get("overrides") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => bail!("'patient_profile.overrides' must be an object"),
    };
    let number = |o: &Value, key: &str| o.get(key).and_then(Value::as_f64);
    let time = |o: &Value, key: &str| -> anyhow::Result<Option<DateTime<Utc>>> {
        o.get(key)
            .map(|v| instant(v, &format!("override '{key}'")).map(|t| t.with_timezone(&Utc)))
            .transpose()
    };
    for (rule, o) in map {
        // The snooze's own keys (who, why, until when), not rules.
        if matches!(
            rule.as_str(),
            "snoozed_rules" | "snooze_until" | "by" | "reason" | "until"
        ) {
            continue;
        }
        if !o.is_object() {
            bail!("override {rule:?} must be an object such as {{\"below\": 45}}");
        }
        out.push(OverrideRequest {
            rule: rule.clone(),
            below: number(o, "below"),
            above: number(o, "above"),
            systolic: number(o, "systolic"),
            diastolic: number(o, "diastolic"),
            kg: number(o, "kg"),
            snooze_until: time(o, "snooze_until")?,
            until: time(o, "until")?,
        });
    }
    let source = if map.contains_key("snoozed_rules") {
        &Value::Object(map.clone())
    } else {
        profile
    };
    if let Some(list) = source.get("snoozed_rules") {
        let until =
            time(source, "snooze_until")?.context("'snoozed_rules' needs a 'snooze_until' time")?;
        for r in list
            .as_array()
            .context("'snoozed_rules' must be an array of rule ids")?
        {
            out.push(OverrideRequest {
                rule: r.as_str().unwrap_or_default().to_owned(),
                snooze_until: Some(until),
                ..OverrideRequest::default()
            });
        }
    }
    Ok(out)
}

/// Collects the escalation steps of `events` as the outcome lists them.
fn note(
    events: Vec<vigil_rules::engine::Event>,
    escalations: &mut Vec<Value>,
    offset: &FixedOffset,
) {
    for e in events {
        if let Change::Escalated { to_level } = e.change {
            escalations.push(json!({"rule": e.rule, "to_level": to_level,
                "at": e.at.with_timezone(offset).to_rfc3339()}));
        }
    }
}

/// A scenario, parsed and checked.
#[derive(Debug)]
pub struct Scenario {
    profile: Profile,
    refused: Vec<vigil_rules::overrides::Refused>,
    /// (index in the file, received, reading JSON).
    readings: Vec<(usize, DateTime<Utc>, vigil_model::Reading)>,
    events: Vec<(DateTime<Utc>, String, String)>,
    as_of: DateTime<Utc>,
    offset: FixedOffset,
}

fn instant(v: &Value, what: &str) -> anyhow::Result<DateTime<FixedOffset>> {
    let s = v
        .as_str()
        .with_context(|| format!("{what} must be an RFC 3339 time with an offset"))?;
    DateTime::parse_from_rfc3339(s).with_context(|| {
        format!(
            "{what} {s:?} must be an RFC 3339 time with an offset, e.g. 2026-03-02T07:10:00+08:00"
        )
    })
}

impl Scenario {
    /// Parses a scenario, to be run with `rules`; the error is one line saying what
    /// to fix.
    pub fn parse(text: &str, rules: Arc<RuleSet>) -> anyhow::Result<Scenario> {
        let root: Value = serde_json::from_str(text).context("the scenario is not JSON")?;
        let profile = root
            .get("patient_profile")
            .context("the scenario has no 'patient_profile'")?;
        let conditions = match profile.get("conditions") {
            None => Vec::new(),
            Some(c) => c
                .as_array()
                .context("'patient_profile.conditions' must be an array")?
                .iter()
                .map(|c| {
                    let s = c.as_str().unwrap_or_default();
                    Condition::parse(s)
                        .map_err(|e| anyhow::anyhow!("patient_profile.conditions: {e}"))
                })
                .collect::<anyhow::Result<_>>()?,
        };
        let spo2_scale = match profile.get("spo2_scale") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_u64() {
                Some(1) => Some(1),
                Some(2) => Some(2),
                _ => bail!("'patient_profile.spo2_scale' must be 1 or 2"),
            },
        };
        let timezone: Tz = match profile.get("timezone").or_else(|| root.get("timezone")) {
            None => chrono_tz::Asia::Shanghai,
            Some(v) => v
                .as_str()
                .and_then(|s| s.parse().ok())
                .context("'timezone' must be an IANA zone such as \"Asia/Shanghai\"")?,
        };
        let requests = overrides(profile)?;
        let as_of = instant(
            root.get("as_of").context("the scenario has no 'as_of'")?,
            "'as_of'",
        )?;
        let mut readings = Vec::new();
        let list = root
            .get("readings")
            .and_then(Value::as_array)
            .context("'readings' must be an array")?;
        for (i, r) in list.iter().enumerate() {
            let mut r = r.clone();
            let obj = r
                .as_object_mut()
                .with_context(|| format!("reading {i} must be an object"))?;
            // No device: one implicit device per type (clinical rules §0.5).
            if !obj.contains_key("device_id") {
                let t = obj.get("type").and_then(Value::as_str).unwrap_or("reading");
                let id = format!("replay-{}", t.replace('_', "-"));
                obj.insert("device_id".to_owned(), Value::String(id));
            }
            let received = match obj.get("received") {
                Some(v) => instant(v, &format!("reading {i}: 'received'"))?,
                None => instant(
                    obj.get("time").unwrap_or(&Value::Null),
                    &format!("reading {i}: 'time'"),
                )?,
            };
            let reading = vigil_wire::envelope::decode_reading_value(i, &r)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            readings.push((i, received.with_timezone(&Utc), reading));
        }
        // Processed in order of receipt, ties in file order.
        readings.sort_by_key(|(i, received, _)| (*received, *i));
        let mut events = Vec::new();
        if let Some(list) = root.get("events") {
            for (i, e) in list
                .as_array()
                .context("'events' must be an array")?
                .iter()
                .enumerate()
            {
                let kind = e.get("type").and_then(Value::as_str).unwrap_or_default();
                if !matches!(kind, "ack" | "resolve") {
                    bail!("event {i}: 'type' must be \"ack\" or \"resolve\"");
                }
                let rule = e
                    .get("rule")
                    .and_then(Value::as_str)
                    .with_context(|| format!("event {i} names no 'rule'"))?;
                let at = instant(
                    e.get("time").unwrap_or(&Value::Null),
                    &format!("event {i}: 'time'"),
                )?;
                events.push((at.with_timezone(&Utc), kind.to_owned(), rule.to_owned()));
            }
        }
        events.sort_by_key(|(at, _, _)| *at);
        // Overrides count as set at the scenario's first instant (a snooze reaches at
        // most 7 days past it).
        let first = readings
            .iter()
            .map(|(_, r, _)| *r)
            .chain(events.iter().map(|(t, _, _)| *t))
            .min()
            .unwrap_or(as_of.with_timezone(&Utc));
        let mut profile = Profile {
            conditions,
            spo2_scale,
            timezone,
            ladder: Ladder::default(),
            thresholds: Arc::new(Thresholds::defaults(false)),
            rules: rules.clone(),
        };
        profile.thresholds = Arc::new(Thresholds::from_rules(&rules, profile.scale2()));
        let refused = Arc::make_mut(&mut profile.thresholds).apply(&requests, first);
        Ok(Scenario {
            profile,
            refused,
            readings,
            events,
            offset: *as_of.offset(),
            as_of: as_of.with_timezone(&Utc),
        })
    }

    /// Runs the scenario up to `as_of` and returns the outcome JSON.
    pub fn run(self) -> Value {
        let mut engine = Engine::new(self.profile);
        let mut data_quality: Vec<(usize, &'static str)> = Vec::new();
        let mut escalations = Vec::new();
        let mut seen = HashSet::new();
        // Readings and events in time order; at equal times, readings first.
        let mut events = self.events.into_iter().peekable();
        let mut readings = self.readings.into_iter().peekable();
        loop {
            let next_reading = readings.peek().map(|(_, at, _)| *at);
            let next_event = events.peek().map(|(at, _, _)| *at);
            let take_reading = match (next_reading, next_event) {
                (Some(r), Some(e)) => r <= e,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let at = if take_reading {
                next_reading
            } else {
                next_event
            };
            let Some(at) = at.filter(|t| *t <= self.as_of) else {
                break;
            };
            if !take_reading {
                // An event counts for enrolment too (spec: the earliest receipt of an
                // accepted reading or of an event).
                engine.enrol(at);
            }
            note(engine.advance(at), &mut escalations, &self.offset);
            if take_reading {
                let Some((index, received, reading)) = readings.next() else {
                    break;
                };
                match validate(reading, &ValidationContext::received_at(received)) {
                    Err(rejected) => data_quality.push((index, rejected.reason.as_str())),
                    Ok(v) => {
                        if seen.insert(v.reading().identity()) {
                            note(
                                engine.on_reading(&v, received),
                                &mut escalations,
                                &self.offset,
                            );
                        } else {
                            data_quality.push((index, "duplicate"));
                        }
                    }
                }
            } else if let Some((at, kind, rule)) = events.next() {
                let _ = match kind.as_str() {
                    "ack" => engine.acknowledge(&rule, at),
                    _ => engine.resolve(&rule, at),
                };
            }
        }
        note(engine.advance(self.as_of), &mut escalations, &self.offset);
        data_quality.sort();
        let alerts: Vec<Value> = engine
            .episodes()
            .iter()
            .map(|e| {
                let mut a = json!({
                    "rule": e.rule,
                    "severity": e.severity.as_str(),
                    "opened_at": e.opened_at.with_timezone(&self.offset).to_rfc3339(),
                    "deliver_at": e.deliver_at.map(|d| d.with_timezone(&self.offset).to_rfc3339()),
                });
                if let Some(u) = e.underlying_rule {
                    a["underlying_rule"] = json!(u);
                }
                a
            })
            .collect();
        let mut outcome = json!({
            "alerts": alerts,
            "data_quality": data_quality
                .iter()
                .map(|(i, code)| json!({"reading": i, "code": code}))
                .collect::<Vec<_>>(),
            "escalations": escalations,
        });
        if !self.refused.is_empty() {
            outcome["refused_overrides"] = self
                .refused
                .iter()
                .map(|r| json!({"rule": r.rule, "reason": r.reason}))
                .collect();
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A reading of the generator: (kind, value, minute measured, minute received).
    fn reading(kind: u8, value: u8, minute: u32, late: u32) -> Value {
        let time = |m: u32| format!("2026-03-02T{:02}:{:02}:00+08:00", 6 + m / 60, m % 60);
        let (t, values, unit) = match kind % 4 {
            0 => (
                "bp",
                json!({"systolic": 150 + u32::from(value) % 50, "diastolic": 85 + u32::from(value) % 30}),
                "mm[Hg]",
            ),
            1 => (
                "glucose",
                json!({"value": 2.5 + f64::from(value % 40) / 4.0}),
                "mmol/L",
            ),
            2 => ("spo2", json!({"value": 82 + value % 18}), "%"),
            _ => (
                "heart_rate",
                json!({"value": 35 + u32::from(value) % 110}),
                "/min",
            ),
        };
        json!({"type": t, "values": values, "unit": unit, "time": time(minute),
               "received": time(minute + late)})
    }

    fn outcome(readings: &[Value], events: &Value) -> Value {
        let scenario = json!({"patient_profile": {"conditions": ["hypertension", "type2_diabetes"]},
            "readings": readings, "events": events, "as_of": "2026-03-02T12:00:00+08:00"});
        Scenario::parse(&scenario.to_string(), Arc::new(RuleSet::default()))
            .unwrap()
            .run()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Replaying twice, or with the readings permuted in the file (keeping the
        /// order of readings received at the same instant), gives the same outcome
        /// once reading indices are mapped.
        #[test]
        fn the_outcome_does_not_depend_on_the_order_in_the_file(
            spec in proptest::collection::vec((any::<u8>(), any::<u8>(), 0u32..300, 0u32..3), 1..25),
            shuffle in any::<u64>(),
            acks in proptest::collection::vec(0u32..340, 0..3),
        ) {
            let readings: Vec<Value> = spec.iter().map(|(k, v, m, l)| reading(*k, *v, *m, *l)).collect();
            let events = Value::Array(acks.iter().map(|m| json!({"type": "ack", "rule": "bp_crisis",
                "time": format!("2026-03-02T{:02}:{:02}:00+08:00", 6 + m / 60, m % 60)})).collect());
            let first = outcome(&readings, &events);
            prop_assert_eq!(&first, &outcome(&readings, &events));
            // A permutation that keeps same-receipt readings in their relative order:
            // sort by a random key, then restore that order within equal receipts.
            let mut order: Vec<usize> = (0..readings.len()).collect();
            let mut state = shuffle;
            let mut key = |_: &usize| { state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); state };
            let keys: Vec<u64> = order.iter().map(&mut key).collect();
            order.sort_by_key(|i| keys[*i]);
            let received = |i: usize| readings[i]["received"].as_str().unwrap_or_default().to_owned();
            let mut fixed = order.clone();
            let mut groups: std::collections::BTreeMap<String, Vec<usize>> = Default::default();
            for i in 0..readings.len() { groups.entry(received(i)).or_default().push(i); }
            let mut cursor: std::collections::BTreeMap<String, usize> = Default::default();
            for slot in fixed.iter_mut() {
                let g = received(*slot);
                let k = cursor.entry(g.clone()).or_insert(0);
                *slot = groups[&g][*k];
                *k += 1;
            }
            let permuted: Vec<Value> = fixed.iter().map(|i| readings[*i].clone()).collect();
            let mut second = outcome(&permuted, &events);
            // Map the permuted file's indices back to the original ones.
            if let Some(dq) = second["data_quality"].as_array_mut() {
                for d in dq.iter_mut() {
                    let j = d["reading"].as_u64().unwrap_or(0) as usize;
                    d["reading"] = json!(fixed[j]);
                }
                dq.sort_by_key(|d| d["reading"].as_u64());
            }
            prop_assert_eq!(first, second);
        }
    }
}
