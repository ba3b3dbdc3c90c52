//! The rule engine in the live pipeline: every committed reading is evaluated for its
//! patient, and the alert events are kept in the clinical store for delivery.
//!
//! Like the telemetry sink, the runner follows the clinical store by a cursor
//! (`sink_cursors`, name `rules`) instead of a queue of its own, and writes the events a
//! batch of readings produced **in the same transaction** as the cursor moving past
//! them. The engines' state (open episodes, pending confirmations, sessions, trend
//! windows, timers) is not written as such: it is a function of the patient's readings,
//! which the store already keeps durably. At start the runner rebuilds it by evaluating
//! again, silently, the readings of the last 8 days up to the cursor (every window of
//! the rules is 7 days or shorter), then carries on after the cursor. Re-evaluation is
//! deterministic (every instant comes from the readings or the clock), episode numbers
//! come out the same, and an event already kept is not kept twice (`alert_events` is
//! unique by alert, change, rule and level), so a crash between a reading's commit
//! and its evaluation, or between an index BP session and its confirmation, neither
//! loses nor repeats an alert.
//!
//! Timers (unconfirmed crises, escalation, the daily monitoring-gap job, ECG lapses)
//! run on the injected clock, every second.
//!
//! In `vigil serve` the intake also hands each commit's readings over in memory
//! ([`crate::feed`]), already validated: the runner takes them from there while they
//! continue its cursor, and reads from the store only what the feed lacks.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::{Notify, watch};
use vigil_model::PatientId;
use vigil_model::clock::Clock;
use vigil_registry::Registry;
use vigil_rules::engine::{Change, Engine, Event, Ladder, Profile};
use vigil_rules::overrides::{OverrideRequest, Thresholds};
use vigil_rules::ruleset::RuleSet;
use vigil_rules::validate::{Context, validate};
use vigil_store::{AlertAction, AlertEventRecord, RuleInput, SqliteStore};

use crate::feed::{Committed, Input, RuleFeed};

/// How far back the engines' state is rebuilt at start: as far as an engine remembers.
pub const REBUILD_WINDOW: TimeDelta = vigil_rules::engine::HISTORY;

/// Counters of the runner.
#[derive(Debug, Default)]
pub struct RuleStats {
    pub readings_evaluated: AtomicU64,
    /// Of those, the readings taken from the intake's feed rather than read back from
    /// the store ([`crate::feed`]).
    pub readings_fed: AtomicU64,
    pub alerts_opened: AtomicU64,
    pub events_kept: AtomicU64,
    /// The last reading row id evaluated and kept.
    pub cursor: AtomicI64,
    pub errors: AtomicU64,
    /// Passes of the runner's loop (each runs the timers once): a test waits on it.
    pub passes: AtomicU64,
}

/// A running rule engine; stop it with [`RuleRunner::shutdown`].
#[derive(Debug)]
pub struct RuleRunner {
    pub stats: Arc<RuleStats>,
    /// Notified whenever alert events were kept (the deliverer waits on it).
    pub kept: Arc<Notify>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// The registry the runner reads profiles from (the intake's current one).
pub type CurrentRegistry = Arc<dyn Fn() -> Arc<Registry> + Send + Sync>;

impl RuleRunner {
    /// Starts the runner: rebuilds the engines' state, then follows the store.
    pub fn start(
        store: SqliteStore,
        registry: CurrentRegistry,
        rules: Arc<RuleSet>,
        clock: Arc<dyn Clock>,
        committed: Option<Arc<Notify>>,
    ) -> RuleRunner {
        Self::start_fed(store, registry, rules, clock, (committed, None))
    }

    /// [`RuleRunner::start`], taking the intake's committed readings from `feed`
    /// ([`crate::feed`]) rather than reading each back from the store.
    pub fn start_fed(
        store: SqliteStore,
        registry: CurrentRegistry,
        rules: Arc<RuleSet>,
        clock: Arc<dyn Clock>,
        (committed, feed): (Option<Arc<Notify>>, Option<Arc<RuleFeed>>),
    ) -> RuleRunner {
        let stats = Arc::new(RuleStats::default());
        let (stop, stopped) = watch::channel(false);
        let kept = Arc::new(Notify::new());
        let task = tokio::spawn(run(
            store,
            registry,
            rules,
            clock,
            (committed, feed),
            (stats.clone(), kept.clone()),
            stopped,
        ));
        RuleRunner {
            stats,
            kept,
            stop,
            task,
        }
    }

    /// Stops after the batch under way; the next start carries on from the cursor.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The engine profile of a patient from the registry: conditions, SpO2 scale, zone,
/// the institution's escalation minutes, and the overrides §0.4 allows (the refused
/// ones are returned with why).
pub fn profile_for(
    registry: &Registry,
    rules: &Arc<RuleSet>,
    patient: &PatientId,
    now: DateTime<Utc>,
) -> (Profile, Vec<vigil_rules::overrides::Refused>) {
    let Some(p) = registry.patients.get(patient) else {
        let profile = Profile {
            conditions: Vec::new(),
            spo2_scale: None,
            timezone: chrono_tz::Asia::Shanghai,
            ladder: Ladder::default(),
            thresholds: Arc::new(Thresholds::from_rules(rules, false)),
            rules: rules.clone(),
        };
        return (profile, Vec::new());
    };
    let ladder = registry
        .institutions
        .get(&p.institution)
        .map_or(Ladder::default(), |i| Ladder {
            critical_l2: i64::from(i.escalation.critical_l2),
            critical_l3: i64::from(i.escalation.critical_l3),
            high_l2: i64::from(i.escalation.high_l2),
        });
    let mut profile = Profile {
        conditions: p.conditions.clone(),
        spo2_scale: Some(p.spo2_scale),
        timezone: registry.timezone_of(p),
        ladder,
        thresholds: Arc::new(Thresholds::from_rules(rules, p.spo2_scale == 2)),
        rules: rules.clone(),
    };
    let requests: Vec<OverrideRequest> = p
        .overrides
        .iter()
        .map(|(rule, o)| OverrideRequest {
            rule: rule.clone(),
            below: o.below,
            above: o.above,
            systolic: o.systolic,
            diastolic: o.diastolic,
            kg: o.kg,
            snooze_until: o.snooze_until.map(|t| t.to_utc()),
            until: o.until.map(|t| t.to_utc()),
        })
        .collect();
    let refused = if requests.is_empty() {
        Vec::new()
    } else {
        Arc::make_mut(&mut profile.thresholds).apply(&requests, now)
    };
    (profile, refused)
}

/// Each patient's enrolment: their first assignment's start. One pass over the
/// assignments for all patients (a pass per new engine cost seconds of CPU with
/// 100 000 patients and 262 000 assignments).
fn enrolments(registry: &Registry) -> HashMap<PatientId, DateTime<Utc>> {
    let mut out: HashMap<PatientId, DateTime<Utc>> = HashMap::new();
    for a in &registry.assignments {
        let from = a.from.to_utc();
        out.entry(a.patient.clone())
            .and_modify(|t| *t = (*t).min(from))
            .or_insert(from);
    }
    out
}

/// The thresholds of a profile, shared with every other patient's when they are the
/// rule set's own (no override): about 1 kB an engine otherwise.
fn share_thresholds(profile: &mut Profile, defaults: &[Arc<Thresholds>; 2]) {
    for d in defaults {
        if *profile.thresholds == **d {
            profile.thresholds = d.clone();
        }
    }
}

struct Engines {
    /// Boxed: a map's spare slots would each hold a whole engine (with its thresholds
    /// inline, 1.3 kB each, the table was 173 MB for 100 000 patients).
    engines: HashMap<PatientId, Box<Engine>>,
    registry: Arc<Registry>,
    rules: Arc<RuleSet>,
    /// Of `registry`.
    enrolments: HashMap<PatientId, DateTime<Utc>>,
    /// The rule set's thresholds on SpO2 scale 1 and 2, shared by the engines.
    defaults: [Arc<Thresholds>; 2],
}

impl Engines {
    fn engine(&mut self, patient: &PatientId, now: DateTime<Utc>) -> &mut Engine {
        let (registry, rules) = (&self.registry, &self.rules);
        let (enrolments, defaults) = (&self.enrolments, &self.defaults);
        self.engines.entry(patient.clone()).or_insert_with(|| {
            let (mut profile, refused) = profile_for(registry, rules, patient, now);
            share_thresholds(&mut profile, defaults);
            for r in refused {
                eprintln!(
                    "vigil: override {} of patient {patient} refused: {}",
                    r.rule, r.reason
                );
            }
            let mut engine = Box::new(Engine::new(profile));
            if let Some(at) = enrolments.get(patient) {
                engine.enrol(*at);
            }
            engine
        })
    }

    /// Evaluates one committed reading; `None` when it cannot be read back (it was
    /// stored, so this is a bug; it is counted and skipped). ECG strips feed no rule.
    /// Applies a doctor's action to the episode it names; `None` when the alert is
    /// unknown or its episode is no longer open.
    async fn act(
        &mut self,
        store: &SqliteStore,
        action: &AlertAction,
    ) -> Result<Option<(PatientId, Vec<Event>)>, ()> {
        let Some(alert) = store
            .latest_alert_event(&action.alert_id)
            .await
            .map_err(|_| ())?
        else {
            return Ok(None);
        };
        let engine = self.engine(&alert.patient_id, action.at);
        let mut events = engine.advance(action.at);
        let ordinal = alert.ordinal;
        let e = match action.action.as_str() {
            "ack" => engine.acknowledge_episode(&alert.family, alert.opened_at, ordinal, action.at),
            "resolve" => engine.resolve_episode(&alert.family, alert.opened_at, ordinal, action.at),
            _ => None,
        };
        events.extend(e);
        Ok(Some((alert.patient_id, events)))
    }

    fn evaluate(&mut self, c: &Committed) -> Option<Vec<Event>> {
        let validated = match &c.input {
            Input::Reading(v) => v,
            Input::Ecg => return Some(Vec::new()),
            Input::Unreadable => return None,
        };
        let engine = self.engine(&c.patient, c.received);
        let mut events = engine.advance(c.received);
        events.extend(engine.on_reading(validated, c.received));
        engine.forget_closed_before(c.received - REBUILD_WINDOW);
        Some(events)
    }
}

/// A committed reading read back from the store, decoded and validated again (the
/// same checks that let it in, with its receipt time).
fn from_store(r: RuleInput) -> Committed {
    let input = if r.reading_type == "ecg_waveform" {
        Input::Ecg
    } else {
        vigil_wire::envelope::decode_reading_value(0, &r.original)
            .ok()
            .and_then(|reading| validate(reading, &Context::received_at(r.received)).ok())
            .map_or(Input::Unreadable, |v| Input::Reading(Box::new(v)))
    };
    Committed {
        id: r.id,
        patient: r.patient_id,
        received: r.received,
        input,
    }
}

/// The next readings after `cursor` to evaluate, at most [`PAGE`]: from the feed
/// while it continues the cursor, else from the store (a hole in the feed, or no feed:
/// the range the feed lacks). Returns them, and whether more may be waiting.
async fn next_readings(
    store: &SqliteStore,
    feed: Option<&RuleFeed>,
    cursor: i64,
    stats: &RuleStats,
) -> Result<(Vec<Committed>, bool), vigil_store::Error> {
    let (mut fed, hole) = match feed {
        Some(feed) => feed.take_after(cursor, PAGE as usize),
        None => (Vec::new(), None),
    };
    if fed.is_empty() {
        // Up to the hole (the feed carries on after it), or everything after the cursor.
        let up_to = hole.map_or(i64::MAX, |h| h - 1);
        let rows = store
            .rule_inputs(cursor, up_to, DateTime::<Utc>::MIN_UTC, PAGE)
            .await?;
        match (hole, feed) {
            // Nothing committed in the hole (row ids do not skip today, but a hole the
            // store confirms empty must not stop the feed): carry on from it.
            (Some(h), Some(feed)) if rows.is_empty() => {
                fed = feed.take_after(h - 1, PAGE as usize).0;
            }
            _ => {
                let more = rows.len() == PAGE as usize || hole.is_some();
                return Ok((rows.into_iter().map(from_store).collect(), more));
            }
        }
    }
    stats
        .readings_fed
        .fetch_add(fed.len() as u64, Ordering::Relaxed);
    let more = fed.len() == PAGE as usize || feed.is_some_and(|f| !f.is_empty());
    Ok((fed, more))
}

/// An episode's lasting identity: the patient, its family, its opening instant and
/// its rank among the family's episodes opened at that same instant (one envelope
/// can open, close and reopen a family), as 32 hex digits (FNV-1a 128).
pub fn alert_id(
    patient: &PatientId,
    family: &str,
    opened_at: DateTime<Utc>,
    ordinal: u32,
) -> String {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    let key = format!(
        "{patient}\u{1f}{family}\u{1f}{}\u{1f}{ordinal}",
        opened_at.timestamp_millis()
    );
    for b in key.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    format!("{h:032x}")
}

fn record(patient: &PatientId, e: &Event) -> AlertEventRecord {
    let evidence: Vec<serde_json::Value> = e
        .evidence
        .iter()
        .filter_map(|x| {
            serde_json::to_value(vigil_wire::alert::Evidence {
                time: x.time,
                measurement: x.measurement.clone(),
            })
            .ok()
        })
        .collect();
    AlertEventRecord {
        alert_id: alert_id(patient, &e.family, e.opened_at, e.ordinal),
        ordinal: e.ordinal,
        family: e.family.clone(),
        opened_at: e.opened_at,
        display: e.display.clone(),
        evidence: serde_json::Value::Array(evidence),
        patient_id: patient.clone(),
        change: match e.change {
            Change::Opened => "opened",
            Change::Upgraded => "upgraded",
            Change::Escalated { .. } => "escalated",
            Change::Acknowledged => "acknowledged",
            Change::Resolved => "resolved",
        }
        .to_owned(),
        rule: e.rule.to_owned(),
        severity: e.severity.as_str().to_owned(),
        level: e.level,
        at: e.at,
        deliver_at: e.deliver_at,
    }
}

/// Readings evaluated per pass. Each pass keeps its events through the store's one
/// writing connection, which the intake's commits hold most of the time under load
/// (its reads go through a second one): pages of 1 000, with the reads on the writer
/// too, left the engine behind the intake (5 000 readings/s evaluated against 16 000
/// committed with 100 000 patients; BENCHMARKS.md).
const PAGE: u32 = 5000;

async fn run(
    store: SqliteStore,
    registry: CurrentRegistry,
    rules: Arc<RuleSet>,
    clock: Arc<dyn Clock>,
    (committed, feed): (Option<Arc<Notify>>, Option<Arc<RuleFeed>>),
    (stats, kept): (Arc<RuleStats>, Arc<Notify>),
    mut stopped: watch::Receiver<bool>,
) {
    let pause = |stopped: &mut watch::Receiver<bool>, d: Duration| {
        let mut s = stopped.clone();
        async move {
            tokio::select! {
                _ = tokio::time::sleep(d) => {}
                _ = s.changed() => {}
            }
        }
    };
    let current = registry();
    let mut engines = Engines {
        engines: HashMap::new(),
        enrolments: enrolments(&current),
        defaults: [false, true].map(|scale2| Arc::new(Thresholds::from_rules(&rules, scale2))),
        registry: current,
        rules,
    };
    // Rebuild: the readings already evaluated, silently. (A store that never ran the
    // engine starts after its last reading: `SqliteStore::open` sets the cursor.)
    let cursor = loop {
        match store.sink_cursor("rules").await {
            Ok(c) => break c,
            Err(_) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                pause(&mut stopped, Duration::from_secs(1)).await;
                if *stopped.borrow() {
                    return;
                }
            }
        }
    };
    // Far enough back to rebuild every window, and every episode still open (capped
    // at 90 days: an alert left open longer is reopened rather than rebuilt).
    let now = clock.now();
    let since = match store.oldest_open_alert().await {
        Ok(Some(t)) => (t - REBUILD_WINDOW).max(now - TimeDelta::days(90)),
        _ => now - REBUILD_WINDOW,
    }
    .min(now - REBUILD_WINDOW);
    // The doctors' actions already applied, replayed with the readings in time order.
    let mut actions_cursor = store.sink_cursor("rules:actions").await.unwrap_or(0);
    let mut actions: std::collections::VecDeque<(i64, AlertAction)> =
        std::collections::VecDeque::new();
    let mut after_action = 0;
    loop {
        match store.alert_actions_after(after_action, since).await {
            Ok(page) => {
                let Some((last, _)) = page.last() else { break };
                after_action = *last;
                actions.extend(page.into_iter().filter(|(id, _)| *id <= actions_cursor));
            }
            Err(_) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                pause(&mut stopped, Duration::from_secs(1)).await;
                if *stopped.borrow() {
                    return;
                }
            }
        }
    }
    let mut after = 0;
    loop {
        let Ok(rows) = store.rule_inputs(after, cursor, since, PAGE).await else {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            pause(&mut stopped, Duration::from_secs(1)).await;
            if *stopped.borrow() {
                return;
            }
            continue;
        };
        let Some(last) = rows.last() else { break };
        after = last.id;
        for r in rows.into_iter().map(from_store) {
            while actions.front().is_some_and(|(_, a)| a.at <= r.received) {
                if let Some((_, a)) = actions.pop_front() {
                    let _ = engines.act(&store, &a).await;
                }
            }
            let _ = engines.evaluate(&r);
        }
    }
    for (_, a) in actions {
        let _ = engines.act(&store, &a).await;
    }
    stats.cursor.store(cursor, Ordering::Relaxed);
    let mut cursor = cursor;
    let mut last_sweep: Option<DateTime<Utc>> = None;
    loop {
        if *stopped.borrow() {
            return;
        }
        // A reloaded registry: new profiles (conditions, overrides) from now on.
        let current = registry();
        if !Arc::ptr_eq(&current, &engines.registry) {
            let now = clock.now();
            for (patient, engine) in &mut engines.engines {
                let mut profile = profile_for(&current, &engines.rules, patient, now).0;
                share_thresholds(&mut profile, &engines.defaults);
                engine.set_profile(profile);
            }
            engines.enrolments = enrolments(&current);
            engines.registry = current;
        }
        let mut records = Vec::new();
        let (rows, more) = match next_readings(&store, feed.as_deref(), cursor, &stats).await {
            Ok(next) => next,
            Err(_) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                pause(&mut stopped, Duration::from_secs(1)).await;
                continue;
            }
        };
        let last = rows.last().map(|r| r.id);
        // The doctors' new actions (acknowledgements stop escalation ladders).
        let new_actions = store
            .alert_actions_after(actions_cursor, DateTime::<Utc>::MIN_UTC)
            .await
            .unwrap_or_default();
        let mut last_action = None;
        // The patients whose engines this pass touched (their timers may have moved).
        let mut touched: Vec<PatientId> = Vec::new();
        for (id, a) in &new_actions {
            match engines.act(&store, a).await {
                Ok(Some((patient, events))) => {
                    records.extend(events.iter().map(|e| record(&patient, e)));
                    touched.push(patient);
                }
                // An alert that is unknown, or no longer open: nothing to do.
                Ok(None) => {}
                // The store failed: this action and the next wait for the next pass.
                Err(()) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
            last_action = Some(*id);
        }
        for r in &rows {
            match engines.evaluate(r) {
                Some(events) => {
                    stats.readings_evaluated.fetch_add(1, Ordering::Relaxed);
                    records.extend(events.iter().map(|e| record(&r.patient, e)));
                }
                None => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        // Timers, on the clock, once the backlog is evaluated (a timer must not fire
        // before the reading that would have settled it is seen). A timer falls due
        // as time passes, or is set by a reading or an action: every engine is swept
        // when the clock has moved a second since the last sweep, and the engines this
        // pass touched always (sweeping 100 000 engines after every commit cost more
        // than evaluating the readings; timers are minutes long).
        let now = clock.now();
        if !more {
            // (A clock set back sweeps at once too.)
            if last_sweep.is_none_or(|t| now < t || now - t >= TimeDelta::seconds(1)) {
                for (patient, engine) in &mut engines.engines {
                    records.extend(engine.advance(now).iter().map(|e| record(patient, e)));
                }
                last_sweep = Some(now);
            } else {
                touched.extend(rows.iter().map(|r| r.patient.clone()));
                touched.sort_unstable();
                touched.dedup();
                for patient in &touched {
                    if let Some(engine) = engines.engines.get_mut(patient) {
                        records.extend(engine.advance(now).iter().map(|e| record(patient, e)));
                    }
                }
            }
        }
        if !records.is_empty() || last.is_some() || last_action.is_some() {
            let opened = records.iter().filter(|r| r.change == "opened").count() as u64;
            // The engines have moved on: keep their events (and the cursor past the
            // readings that made them) until the store takes them. A stop meanwhile
            // loses nothing: the readings after the cursor are evaluated again.
            loop {
                match store
                    .keep_alert_events(&records, last, last_action, now)
                    .await
                {
                    Ok(new) => {
                        if let Some(a) = last_action {
                            actions_cursor = a;
                        }
                        stats.events_kept.fetch_add(new, Ordering::Relaxed);
                        if new > 0 {
                            kept.notify_one();
                        }
                        stats.alerts_opened.fetch_add(opened, Ordering::Relaxed);
                        if let Some(l) = last {
                            cursor = l;
                            stats.cursor.store(cursor, Ordering::Relaxed);
                        }
                        break;
                    }
                    Err(_) => {
                        stats.errors.fetch_add(1, Ordering::Relaxed);
                        pause(&mut stopped, Duration::from_secs(1)).await;
                        if *stopped.borrow() {
                            return;
                        }
                    }
                }
            }
        }
        stats.passes.fetch_add(1, Ordering::Release);
        if !more {
            let commit = async {
                match &committed {
                    Some(n) => n.notified().await,
                    None => std::future::pending().await,
                }
            };
            let fed = async {
                match &feed {
                    Some(f) => f.ready.notified().await,
                    None => std::future::pending().await,
                }
            };
            let mut s = stopped.clone();
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = commit => {}
                _ = fed => {}
                _ = s.changed() => {}
            }
        }
    }
}
