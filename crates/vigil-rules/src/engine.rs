//! The clinical rule engine for one patient: pure, driven by the instants it is given.
//!
//! Implements, from `clinical/rules.md`:
//! - the **acute rules** of §1: `bp_crisis` (sessions of readings within 3 minutes, in
//!   whatever order they arrive, at most [`SESSION_READINGS`] of them, scored by their
//!   mean; confirmed by a second session 5–30 minutes later or by a red-flag symptom,
//!   else `bp_crisis_unconfirmed` when the 30 minutes pass; a repeat
//!   below the threshold cancels it), `bp_hypotension` (confirmed the same way, or by a
//!   symptom), the glucose, SpO2 (both scales), heart-rate (single-reading), temperature
//!   and ECG rules, each with its clear condition (hysteresis);
//! - **episodes** (§0.3, §0.9): one open episode per patient and rule family; within a
//!   reading only the highest-severity rule of a family fires; a higher severity
//!   upgrades the episode (re-notified, its escalation ladder restarted at the upgrade);
//!   an episode closes only on its clear condition;
//! - **late readings** (§0.2, §0.8): measured more than 24 h before receipt, they never
//!   open an acute episode; they yield `retrospective_finding` (MEDIUM) naming the rule
//!   they would have matched, at most one per underlying family and receipt day;
//! - **quiet hours** (§0.7): MEDIUM/LOW alerts generated in [22:00, 08:00) local carry
//!   `deliver_at` = the next 08:00;
//! - **escalation** (§0.10): CRITICAL unacknowledged → level 2 at +15 min, level 3 at
//!   +30; HIGH → level 2 at +60; an acknowledgement stops the ladder for good.
//!
//! - the **trend rules**: `bp_grade2` (sessions ≥160/100 below crisis on 2 days of 7),
//!   `bp_uncontrolled_home` (7-day mean ≥135/85 over ≥3 days), `glucose_fasting_uncontrolled`
//!   (fasting ≥7.0 on 3 days of 7), `hf_weight_gain_3d`/`_1d` (morning weights, heart
//!   failure only), with their dedup windows; late readings enter their windows. A BP
//!   session enters a 7-day window whole when any of its readings is in it (a session
//!   is one measurement; [`crate::window`] keeps BP windows per session, so that they
//!   do not grow with every reading);
//! - `hr_tachy` by two readings >100/min taken 10–60 minutes apart;
//! - **`monitoring_gap`**, a daily job at 08:00 local (§0.7, §0.8): no reading of a
//!   prescribed type for 7 days (BP, glucose; LOW) or 72 h (heart-failure weight;
//!   MEDIUM), counted from the last accepted reading or from enrolment;
//! - per-patient **overrides** and snoozes ([`crate::overrides`], §0.4).
//!
//! Not yet here: persistence of the engine's state and its place in the live pipeline.

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use vigil_model::Measurement;
use vigil_model::canonical::Canonical;
use vigil_model::round::round_half_up;
use vigil_model::vocab::{
    Activity, Condition, EcgFinding, GlucoseFlag, Severity, SignalQuality, Symptom,
};

use std::sync::Arc;

use crate::compact::Kept;
use crate::overrides::Thresholds;
use crate::ruleset::RuleSet;
use crate::validate::{LATE_AFTER, Validated};
use crate::window::{BpSessions, DailyHighs, forget_older, insert_in_time};

/// Minutes of the escalation ladder (`clinical/rules.md` §0.10; per institution).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ladder {
    pub critical_l2: i64,
    pub critical_l3: i64,
    pub high_l2: i64,
}

impl Default for Ladder {
    fn default() -> Self {
        Ladder {
            critical_l2: 15,
            critical_l3: 30,
            high_l2: 60,
        }
    }
}

/// What the engine knows of the patient.
#[derive(Debug, Clone)]
pub struct Profile {
    pub conditions: Vec<Condition>,
    /// 1 or 2; `None`: 2 with COPD, else 1.
    pub spo2_scale: Option<u8>,
    /// For quiet hours and daily jobs.
    pub timezone: Tz,
    pub ladder: Ladder,
    /// The rule set in force (thresholds that overrides do not move, windows, clears).
    pub rules: Arc<RuleSet>,
    /// The §1 thresholds of the rule set with this patient's overrides applied
    /// (shared between patients without overrides).
    pub thresholds: Arc<Thresholds>,
}

impl Profile {
    /// A patient with `conditions` in `timezone` under the default rule set, without
    /// overrides: SpO2 scale 1, the default ladder (benches and measurements).
    pub fn with_default_rules(conditions: Vec<Condition>, timezone: Tz) -> Profile {
        let rules = Arc::new(RuleSet::default());
        Profile {
            conditions,
            spo2_scale: Some(1),
            timezone,
            ladder: Ladder::default(),
            thresholds: Arc::new(Thresholds::from_rules(&rules, false)),
            rules,
        }
    }

    fn has(&self, c: Condition) -> bool {
        self.conditions.contains(&c)
    }

    /// SpO2 scale 2 (hypercapnic risk): set in the profile, or implied by COPD.
    pub fn scale2(&self) -> bool {
        match self.spo2_scale {
            Some(s) => s == 2,
            None => self.has(Condition::Copd),
        }
    }

    /// The reading types a condition prescribes (§0.8), with the gap after which
    /// `monitoring_gap` fires and its severity.
    fn prescribed(&self) -> Vec<(&'static str, TimeDelta, Severity)> {
        let mut out = Vec::new();
        let t = &self.rules.timing;
        if self.has(Condition::Hypertension) {
            out.push(("bp", TimeDelta::days(t.gap_bp_days), Severity::Low));
        }
        if self.has(Condition::Type1Diabetes) || self.has(Condition::Type2Diabetes) {
            out.push((
                "glucose",
                TimeDelta::days(t.gap_glucose_days),
                Severity::Low,
            ));
        }
        if self.has(Condition::HeartFailure) {
            out.push((
                "weight",
                TimeDelta::hours(t.gap_weight_hours),
                Severity::Medium,
            ));
        }
        out
    }
}

/// What happened to an episode.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Opened,
    Upgraded,
    Escalated { to_level: u8 },
    Acknowledged,
    Resolved,
}

/// One change of one episode, as the engine reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The episode's number in this engine (it restarts with the engine: for an
    /// identity that survives restarts use the family and `opened_at`).
    pub episode: u64,
    /// The episode's family (`bp_crisis`, `monitoring_gap:bp`, ...).
    pub family: String,
    /// When the episode opened: with the patient, the family and `ordinal`, its
    /// lasting identity.
    pub opened_at: DateTime<Utc>,
    /// Its rank among the family's episodes opened at the same instant (0 usually).
    pub ordinal: u32,
    /// The triggering value as a client shows it, canonical units ("186/108 mmHg").
    pub display: String,
    /// The readings behind it (for a BP session, every reading of the session).
    pub evidence: Vec<Evidence>,
    pub change: Change,
    pub rule: &'static str,
    pub severity: Severity,
    pub at: DateTime<Utc>,
    /// The episode's escalation level after the change.
    pub level: u8,
    /// When a MEDIUM/LOW alert generated in quiet hours may be delivered.
    pub deliver_at: Option<DateTime<Utc>>,
}

/// A reading behind an alert, as measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence {
    pub time: DateTime<FixedOffset>,
    pub measurement: Measurement,
}

/// What raised or upgraded an episode: its display value and its readings.
#[derive(Debug, Clone, PartialEq, Default)]
struct Trigger {
    display: String,
    evidence: Vec<Evidence>,
}

/// The most readings one BP session holds. Measurement protocols take two or three
/// (clinical rules §1, §5); "readings within 3 min of each other" would otherwise
/// chain a device that measures more often than that (an ambulatory monitor, a stuck
/// cuff) into one endless session, its readings kept and re-scored at every reading.
/// The next reading starts a new session.
pub const SESSION_READINGS: usize = 12;

/// An alert episode.
#[derive(Debug, Clone, PartialEq)]
pub struct Episode {
    pub id: u64,
    pub family: String,
    pub rule: &'static str,
    pub severity: Severity,
    /// Evaluation time of the reading (or timer) that opened it.
    pub opened_at: DateTime<Utc>,
    /// When the ladder's clock started: opening, or the last upgrade.
    ladder_from: DateTime<Utc>,
    /// The last reading that matched it (ECG episodes lapse 24 h after it).
    last_seen: DateTime<Utc>,
    pub escalation_level: u8,
    pub acknowledged: bool,
    pub closed_at: Option<DateTime<Utc>>,
    /// MEDIUM/LOW alerts generated in quiet hours: held until then.
    pub deliver_at: Option<DateTime<Utc>>,
    /// For `retrospective_finding`: the rule the late reading would have matched.
    pub underlying_rule: Option<&'static str>,
    /// The value and readings that opened it (or its last upgrade).
    pub display: String,
    pub evidence: Vec<Evidence>,
    /// Its rank among the family's episodes opened at the same instant.
    pub ordinal: u32,
}

/// A BP session: readings within 3 minutes of each other, scored by their mean. Its
/// pressures are kept as sums (a mean is all the session needs of them), its readings
/// as evidence; 100 000 engines each hold one under a steady load.
#[derive(Debug, Clone)]
struct Session {
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    /// Readings in the session, at most [`SESSION_READINGS`].
    readings: usize,
    systolic_sum: i64,
    diastolic_sum: i64,
    symptoms: Vec<Symptom>,
    /// Its readings' evidence, compact (24 bytes a reading instead of 80).
    evidence: Vec<Kept>,
}

impl Session {
    /// The mean of `len` pressures that sum to `sum`.
    fn mean_of_sum(sum: i64, len: usize) -> i32 {
        let n = i64::try_from(len.max(1)).unwrap_or(i64::MAX);
        // Half up, as every canonical value (§0.12).
        i32::try_from((2 * sum + n).div_euclid(2 * n)).unwrap_or(i32::MAX)
    }
    fn systolic(&self) -> i32 {
        Session::mean_of_sum(self.systolic_sum, self.readings)
    }
    fn diastolic(&self) -> i32 {
        Session::mean_of_sum(self.diastolic_sum, self.readings)
    }
}

/// A BP finding waiting for its confirming session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    Crisis,
    Hypotension,
}

#[derive(Debug, Clone)]
struct Pending {
    kind: Waiting,
    /// The index session's first reading (measurement time).
    index: DateTime<Utc>,
    /// The index session, for an unconfirmed crisis.
    trigger: Trigger,
}

/// What one reading matched in one family.
#[derive(Debug, Clone, Copy)]
struct Match {
    family: &'static str,
    rule: &'static str,
    severity: Severity,
}

const SEVERITY_ORDER: [Severity; 4] = [
    Severity::Low,
    Severity::Medium,
    Severity::High,
    Severity::Critical,
];

fn rank(s: Severity) -> usize {
    SEVERITY_ORDER.iter().position(|x| *x == s).unwrap_or(0)
}

const CRISIS_SYMPTOMS: [Symptom; 8] = [
    Symptom::AlteredConsciousness,
    Symptom::SevereHeadacheOrDizziness,
    Symptom::NauseaVomiting,
    Symptom::BlurredVision,
    Symptom::EyePain,
    Symptom::Palpitations,
    Symptom::ChestTightness,
    Symptom::Orthopnea,
];
const HYPOTENSION_SYMPTOMS: [Symptom; 3] = [
    Symptom::Dizziness,
    Symptom::Syncope,
    Symptom::AlteredConsciousness,
];
const HYPERGLYCAEMIA_SYMPTOMS: [Symptom; 4] = [
    Symptom::KetoticBreath,
    Symptom::KussmaulBreathing,
    Symptom::AlteredConsciousness,
    Symptom::NauseaVomiting,
];

/// One patient's engine.
#[derive(Debug)]
pub struct Engine {
    profile: Profile,
    episodes: Vec<Episode>,
    /// The open episode of each family (index into `episodes`).
    open: BTreeMap<String, usize>,
    /// Boxed, as `pending`: most of 100 000 engines hold neither.
    session: Option<Box<Session>>,
    pending: Option<Box<Pending>>,
    /// Retrospective findings raised: (underlying family, local receipt day).
    retrospective: Vec<(&'static str, chrono::NaiveDate)>,
    next_id: u64,
    /// Windows of the trend rules (measurement times as [`nanos`]; late readings
    /// included). BP is kept per session and fasting glucose less the readings no
    /// window needs ([`crate::window`]): 100 000 engines' windows were most of what
    /// the engines held under load, and grew by every reading.
    bp_sessions: BpSessions,
    fasting_glucose: DailyHighs,
    morning_weights: Vec<(i64, f64)>,
    /// Resting heart rates above 100/min (measurement times) of the last day or so.
    fast_heart: Vec<DateTime<Utc>>,
    /// When each rule last opened an episode (dedup windows).
    last_opened: BTreeMap<&'static str, DateTime<Utc>>,
    /// The last accepted reading of each type (measurement time), and enrolment. A
    /// few entries: a list, not a map (a map's node was most of an idle engine's heap;
    /// 100 000 engines live at once).
    last_of_type: Vec<(&'static str, DateTime<Utc>)>,
    enrolled: Option<DateTime<Utc>>,
    /// The next run of the daily monitoring-gap job.
    next_gap_job: Option<DateTime<Utc>>,
    /// What the reading (or session) being evaluated would raise an episode with.
    trigger: Trigger,
    /// Whether the reading being evaluated is the newest of its kind.
    newest: bool,
}

impl Engine {
    pub fn new(profile: Profile) -> Engine {
        Engine {
            profile,
            episodes: Vec::new(),
            open: BTreeMap::new(),
            session: None,
            pending: None,
            retrospective: Vec::new(),
            next_id: 1,
            bp_sessions: BpSessions::default(),
            fasting_glucose: DailyHighs::default(),
            morning_weights: Vec::new(),
            fast_heart: Vec::new(),
            last_opened: BTreeMap::new(),
            last_of_type: Vec::new(),
            enrolled: None,
            next_gap_job: None,
            trigger: Trigger::default(),
            newest: true,
        }
    }

    /// The patient's enrolment: monitoring gaps count from it until a first reading of
    /// the type. The daily job runs from the first 08:00 local after the engine first
    /// works (an engine started today does not run the jobs of past days).
    pub fn enrol(&mut self, at: DateTime<Utc>) {
        if self.enrolled.is_none_or(|e| at < e) {
            self.enrolled = Some(at);
        }
    }

    fn start_jobs(&mut self, now: DateTime<Utc>) {
        if self.next_gap_job.is_none() {
            self.next_gap_job = self.next_local(now, self.profile.rules.timing.gap_job_hour);
        }
    }

    /// The first instant after `t` at `hour`:00 local.
    fn next_local(&self, t: DateTime<Utc>, hour: u32) -> Option<DateTime<Utc>> {
        let tz = self.profile.timezone;
        let local = t.with_timezone(&tz);
        let at = NaiveTime::from_hms_opt(hour, 0, 0)?;
        let mut day = local.date_naive();
        if local.time() >= at {
            day = day.succ_opt()?;
        }
        tz.from_local_datetime(&day.and_time(at))
            .earliest()
            .map(|d| d.with_timezone(&Utc))
    }

    /// Replaces the patient's profile (a registry reload: conditions, overrides).
    pub fn set_profile(&mut self, profile: Profile) {
        self.profile = profile;
    }

    /// Every episode so far, in the order opened.
    pub fn episodes(&self) -> &[Episode] {
        &self.episodes
    }

    /// Evaluates a validated reading at `now` (its receipt: when it is "generated").
    /// Timers due before `now` should have been run with [`Engine::advance`] first.
    pub fn on_reading(&mut self, v: &Validated, now: DateTime<Utc>) -> Vec<Event> {
        let events = self.evaluate(v, now);
        // The trigger is rebuilt by the next reading (or from a pending session by a
        // timer): not kept with each of 100 000 idle engines.
        self.trigger = Trigger::default();
        events
    }

    /// The measurement time of the last accepted reading of `kind`.
    fn last_of(&self, kind: &str) -> Option<DateTime<Utc>> {
        self.last_of_type
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, t)| *t)
    }

    fn evaluate(&mut self, v: &Validated, now: DateTime<Utc>) -> Vec<Event> {
        let mut events = Vec::new();
        let measured = v.reading().time.with_timezone(&Utc);
        let symptoms = &v.reading().symptoms;
        self.enrol(now);
        self.start_jobs(now);
        // The display is formatted only when something is raised.
        self.trigger = Trigger {
            display: String::new(),
            evidence: vec![Evidence {
                time: v.reading().time,
                measurement: v.reading().measurement.clone(),
            }],
        };
        self.remember(v.canonical(), measured);
        // A reading of a prescribed type closes its monitoring gap.
        let kind = v.reading().measurement.reading_type().as_str();
        // A reading measured before the newest of its kind (uploaded late) may feed
        // the trend windows, but cannot close a trend episode on a partial window.
        let newest = self.last_of(kind).is_none_or(|t| measured >= t);
        self.newest = newest;
        match self.last_of_type.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, seen)) => *seen = (*seen).max(measured),
            None => self.last_of_type.push((kind, measured)),
        }
        self.clear_family(&format!("monitoring_gap:{kind}"), now, &mut events);
        if v.is_late() {
            // Never acute: at most one finding per underlying family and receipt day.
            let local_day = now.with_timezone(&self.profile.timezone).date_naive();
            let mut matches = self.single_reading_matches(v.canonical(), symptoms, now);
            if let Canonical::Bp {
                systolic_mmhg,
                diastolic_mmhg,
                ..
            } = v.canonical()
                && (f64::from(*systolic_mmhg) >= self.profile.rules.bp.crisis_systolic
                    || f64::from(*diastolic_mmhg) >= self.profile.rules.bp.crisis_diastolic)
            {
                matches.push(Match {
                    family: "bp_crisis",
                    rule: "bp_crisis",
                    severity: Severity::Critical,
                });
            }
            for m in matches {
                if self.profile.thresholds.is_snoozed(m.rule, now)
                    || self
                        .profile
                        .thresholds
                        .is_snoozed("retrospective_finding", now)
                    || self.retrospective.contains(&(m.family, local_day))
                {
                    continue;
                }
                self.retrospective.push((m.family, local_day));
                self.trigger.display = display(v.canonical());
                let family = format!("retrospective:{}:{local_day}", m.family);
                let e = self.open_episode(family, "retrospective_finding", Severity::Medium, now);
                self.episodes[e].underlying_rule = Some(m.rule);
                events.push(self.event(e, Change::Opened, now));
            }
            return events;
        }
        if let Canonical::Bp {
            systolic_mmhg,
            diastolic_mmhg,
            ..
        } = v.canonical()
        {
            self.on_bp(
                measured,
                *systolic_mmhg,
                *diastolic_mmhg,
                symptoms,
                now,
                &mut events,
            );
        }
        let mut matches = self.single_reading_matches(v.canonical(), symptoms, now);
        if self.two_fast_heart_rates(v.canonical(), measured, v.received()) {
            matches.push(Match {
                family: "hr_tachy",
                rule: "hr_tachy",
                severity: Severity::High,
            });
        }
        // Clear first (a reading that no longer meets an open family's condition),
        // then raise what it matches, then the trend rules its type feeds.
        self.clear_single(v.canonical(), now, &mut events);
        let evidence = vec![Evidence {
            time: v.reading().time,
            measurement: v.reading().measurement.clone(),
        }];
        for m in matches {
            self.trigger = Trigger {
                display: if m.family.starts_with("hr_") {
                    pulse_display(v.canonical())
                } else {
                    display(v.canonical())
                },
                evidence: evidence.clone(),
            };
            self.raise(m, now, &mut events);
        }
        self.trends(v.canonical(), measured, now, &mut events);
        self.forget_before(measured - HISTORY);
        events
    }

    /// Drops what no rule looks back on any more: readings older than every window.
    fn forget_before(&mut self, t: DateTime<Utc>) {
        let n = nanos(t);
        self.bp_sessions.forget_before(n);
        self.fasting_glucose.forget_before(n);
        forget_older(&mut self.morning_weights, n, |e| e.0);
        if !self.retrospective.is_empty() {
            let day = t.with_timezone(&self.profile.timezone).date_naive();
            self.retrospective.retain(|(_, d)| *d >= day);
        }
    }

    /// Forgets episodes closed before `t`, so a long-running engine's memory stays
    /// bounded (the live runner calls it; a replay keeps every episode for its
    /// outcome).
    pub fn forget_closed_before(&mut self, t: DateTime<Utc>) {
        if self.episodes.len() > 32 {
            let keep: Vec<bool> = self
                .episodes
                .iter()
                .map(|e| e.closed_at.is_none_or(|c| c >= t))
                .collect();
            let mut i = 0;
            self.episodes.retain(|_| {
                i += 1;
                keep[i - 1]
            });
            self.open = self
                .episodes
                .iter()
                .enumerate()
                .filter(|(_, e)| e.closed_at.is_none())
                .map(|(i, e)| (e.family.clone(), i))
                .collect();
        }
    }

    /// Keeps what the trend rules and the two-reading rules look back on.
    fn remember(&mut self, c: &Canonical, measured: DateTime<Utc>) {
        let tz = self.profile.timezone;
        let m = nanos(measured);
        match c {
            Canonical::Bp {
                systolic_mmhg,
                diastolic_mmhg,
                ..
            } => self.bp_sessions.insert(
                m,
                *systolic_mmhg,
                *diastolic_mmhg,
                nanos_of(TimeDelta::minutes(self.profile.rules.bp.session_minutes)),
            ),
            Canonical::Glucose {
                mmol_per_l: Some(g),
                context: vigil_model::vocab::MealContext::Fasting,
                ..
            } => self
                .fasting_glucose
                .insert(m, *g, local_day_bounds(measured, tz)),
            Canonical::Weight { kg } if self.profile.has(Condition::HeartFailure) => {
                let hour = chrono::Timelike::hour(&measured.with_timezone(&tz));
                if (4..12).contains(&hour) {
                    insert_in_time(&mut self.morning_weights, (m, *kg), |e| e.0);
                }
            }
            _ => {}
        }
    }

    /// `hr_tachy` by two resting readings above 100/min taken 10–60 minutes apart.
    fn two_fast_heart_rates(
        &mut self,
        c: &Canonical,
        measured: DateTime<Utc>,
        received: DateTime<Utc>,
    ) -> bool {
        let rate = match c {
            Canonical::HeartRate {
                per_min,
                activity: None | Some(Activity::Rest),
                ..
            } => Some(*per_min),
            Canonical::Bp { pulse_per_min, .. } => *pulse_per_min,
            Canonical::Spo2 {
                pulse_rate_per_min, ..
            } => *pulse_rate_per_min,
            _ => None,
        };
        let h = &self.profile.rules.heart_rate;
        if rate.is_none_or(|r| f64::from(r) <= h.tachy_pair_above) {
            return false;
        }
        let (min, max) = (
            TimeDelta::minutes(h.tachy_pair_min_minutes),
            TimeDelta::minutes(h.tachy_pair_max_minutes),
        );
        let pair = self.fast_heart.iter().any(|t| {
            let apart = (measured - *t).abs();
            apart >= min && apart <= max
        });
        self.fast_heart.push(measured);
        // Only readings that are not late pair (measured at most a day before their
        // receipt), and readings come in order of receipt: none to come can pair with
        // a rate measured before this horizon. Kept for a day, not the 8 of the trends.
        let horizon = received - LATE_AFTER - max;
        if self.fast_heart.iter().any(|t| *t < horizon) {
            self.fast_heart.retain(|t| *t >= horizon);
        }
        pair
    }

    /// The trend rules fed by a reading of this kind, evaluated over the window that
    /// ends at its measurement time.
    fn trends(
        &mut self,
        c: &Canonical,
        measured: DateTime<Utc>,
        now: DateTime<Utc>,
        events: &mut Vec<Event>,
    ) {
        let tz = self.profile.timezone;
        let day = |t: &DateTime<Utc>| t.with_timezone(&tz).date_naive();
        let (week, m) = (nanos(measured - TimeDelta::days(7)), nanos(measured));
        let before = |d: TimeDelta| nanos(measured - d);
        match c {
            Canonical::Bp { .. } => {
                // The sessions with a reading in the window, whole (crate::window).
                let window = self.bp_sessions.overlapping(week, m);
                let bp = &self.profile.rules.bp;
                let (g_sys, g_dia) = self.profile.thresholds.bp_grade2.at(now);
                let (u_sys, u_dia) = self.profile.thresholds.bp_uncontrolled_home.at(now);
                // A session the window's start cuts counts from the window's first day.
                let (first_day, last_day) = (day(&from_nanos(week + 1)), day(&measured));
                let mut grade2_days = std::collections::BTreeSet::new();
                let mut days = std::collections::BTreeSet::new();
                let (mut n, mut sum_s, mut sum_d) = (0usize, 0i64, 0i64);
                for x in window {
                    let len = x.readings as usize;
                    let (s, d) = (
                        Session::mean_of_sum(x.systolic, len),
                        Session::mean_of_sum(x.diastolic, len),
                    );
                    let from = day(&from_nanos(x.first)).max(first_day);
                    // bp_grade2: sessions at grade 2, below crisis, on 2 different days.
                    if (f64::from(s) >= g_sys || f64::from(d) >= g_dia)
                        && f64::from(s) < bp.crisis_systolic
                        && f64::from(d) < bp.crisis_diastolic
                    {
                        grade2_days.insert(from);
                    }
                    // A session's readings are minutes apart: it has one on every day
                    // from its first to its last.
                    let to = day(&from_nanos(x.last)).min(last_day);
                    days.extend(from.iter_days().take_while(|x| *x <= to));
                    n += len;
                    sum_s += x.systolic;
                    sum_d += x.diastolic;
                }
                let n = n.max(1) as f64;
                let (mean_s, mean_d) = (sum_s as f64 / n, sum_d as f64 / n);
                // Formatted only when something is raised.
                let mean = || {
                    format!(
                        "7-day mean {}/{} mmHg",
                        round_half_up(mean_s, 0),
                        round_half_up(mean_d, 0)
                    )
                };
                let grade2 = grade2_days.len() >= 2;
                if grade2 {
                    self.trigger.display = mean();
                }
                self.trend("bp_grade2", grade2, now, events);
                // bp_uncontrolled_home: the 7-day mean, over at least 3 days.
                let uncontrolled = days.len() >= 3
                    && (round_half_up(mean_s, 0) >= u_sys || round_half_up(mean_d, 0) >= u_dia);
                if uncontrolled {
                    self.trigger.display = mean();
                }
                self.trend("bp_uncontrolled_home", uncontrolled, now, events);
            }
            Canonical::Glucose {
                context: vigil_model::vocab::MealContext::Fasting,
                ..
            } => {
                let limit = self.profile.thresholds.glucose_fasting_uncontrolled.at(now);
                let days: std::collections::BTreeSet<_> = self
                    .fasting_glucose
                    .iter()
                    .filter(|(t, g)| *t > week && *t <= m && *g >= limit)
                    .map(|(t, _)| day(&from_nanos(*t)))
                    .collect();
                if days.len() >= 3 {
                    self.trigger.display = format!("fasting >= {limit} mmol/L on 3 days of 7");
                }
                self.trend("glucose_fasting_uncontrolled", days.len() >= 3, now, events);
            }
            Canonical::Weight { kg } if self.profile.has(Condition::HeartFailure) => {
                let hour = chrono::Timelike::hour(&measured.with_timezone(&tz));
                if !(4..12).contains(&hour) {
                    return;
                }
                let th = &self.profile.thresholds;
                let (gain3, gain1) = (th.hf_weight_gain_3d.at(now), th.hf_weight_gain_1d.at(now));
                let lowest_3d = self
                    .morning_weights
                    .iter()
                    .filter(|(t, _)| *t < m && *t >= before(TimeDelta::hours(72)))
                    .map(|(_, w)| *w)
                    .fold(f64::INFINITY, f64::min);
                let day_before = self
                    .morning_weights
                    .iter()
                    .filter(|(t, _)| {
                        *t >= before(TimeDelta::hours(30)) && *t <= before(TimeDelta::hours(18))
                    })
                    .map(|(_, w)| *w)
                    .next_back();
                let three = lowest_3d.is_finite() && kg - lowest_3d > gain3 + 1e-9;
                let one = day_before.is_some_and(|w| kg - w >= gain1 - 1e-9);
                self.trigger.display = if three {
                    format!("+{:.1} kg in 3 days ({kg:.1} kg)", kg - lowest_3d)
                } else {
                    format!(
                        "+{:.1} kg in 1 day ({kg:.1} kg)",
                        day_before.map_or(0.0, |w| kg - w)
                    )
                };
                if three {
                    self.raise(
                        Match {
                            family: "hf_weight",
                            rule: "hf_weight_gain_3d",
                            severity: Severity::High,
                        },
                        now,
                        events,
                    );
                } else if one {
                    self.raise(
                        Match {
                            family: "hf_weight",
                            rule: "hf_weight_gain_1d",
                            severity: Severity::Medium,
                        },
                        now,
                        events,
                    );
                } else if self.newest {
                    self.clear_family("hf_weight", now, events);
                }
            }
            _ => {}
        }
    }

    /// A trend rule (its own family): raised while its condition holds, closed when it
    /// no longer does.
    fn trend(
        &mut self,
        rule: &'static str,
        holds: bool,
        now: DateTime<Utc>,
        events: &mut Vec<Event>,
    ) {
        if holds {
            self.raise(
                Match {
                    family: rule,
                    rule,
                    severity: Severity::Medium,
                },
                now,
                events,
            );
        } else if self.newest {
            self.clear_family(rule, now, events);
        }
    }

    /// Runs the timers due up to `now`: unconfirmed crises, escalations, ECG episodes
    /// that saw no finding for 24 hours.
    pub fn advance(&mut self, now: DateTime<Utc>) -> Vec<Event> {
        let mut events = Vec::new();
        if self.enrolled.is_some() {
            self.start_jobs(now);
        }
        // Several timers may be due: take them in time order.
        loop {
            let mut due: Option<(DateTime<Utc>, Timer)> = None;
            let mut consider = |at: DateTime<Utc>, t: Timer| {
                if at <= now && due.as_ref().is_none_or(|(d, _)| at < *d) {
                    due = Some((at, t));
                }
            };
            if let Some(p) = &self.pending
                && p.kind == Waiting::Crisis
            {
                consider(
                    p.index + TimeDelta::minutes(self.profile.rules.bp.confirm_within_minutes),
                    Timer::Unconfirmed,
                );
            }
            if let Some(job) = self.next_gap_job {
                consider(job, Timer::GapJob);
            }
            for (i, e) in self.episodes.iter().enumerate() {
                if e.closed_at.is_some() {
                    continue;
                }
                if e.family == "ecg" {
                    consider(
                        e.last_seen + TimeDelta::hours(self.profile.rules.ecg.lapse_hours),
                        Timer::Lapse(i),
                    );
                }
                if e.acknowledged {
                    continue;
                }
                if let Some((at, level)) = self.next_escalation(e) {
                    consider(at, Timer::Escalate(i, level));
                }
            }
            let Some((at, timer)) = due else { break };
            match timer {
                Timer::Unconfirmed => {
                    if let Some(p) = self.pending.take() {
                        self.trigger = p.trigger;
                    }
                    self.raise(
                        Match {
                            family: "bp_crisis",
                            rule: "bp_crisis_unconfirmed",
                            severity: Severity::High,
                        },
                        at,
                        &mut events,
                    );
                }
                Timer::Escalate(i, level) => {
                    self.episodes[i].escalation_level = level;
                    events.push(self.event(i, Change::Escalated { to_level: level }, at));
                }
                Timer::GapJob => {
                    self.next_gap_job = self.next_local(at, self.profile.rules.timing.gap_job_hour);
                    let enrolled = self.enrolled.unwrap_or(at);
                    for (kind, gap, severity) in self.profile.prescribed() {
                        let since = self.last_of(kind).unwrap_or(enrolled);
                        if at - since >= gap
                            && !self.profile.thresholds.is_snoozed("monitoring_gap", at)
                        {
                            let local = since.with_timezone(&self.profile.timezone);
                            self.trigger = Trigger {
                                display: format!(
                                    "no {kind} since {}",
                                    local.format("%Y-%m-%d %H:%M")
                                ),
                                evidence: Vec::new(),
                            };
                            let family = format!("monitoring_gap:{kind}");
                            if !self.open.contains_key(&family) {
                                let i = self.open_episode(
                                    family.clone(),
                                    "monitoring_gap",
                                    severity,
                                    at,
                                );
                                self.open.insert(family, i);
                                events.push(self.event(i, Change::Opened, at));
                            }
                        }
                    }
                }
                Timer::Lapse(i) => {
                    // 24 h without a new qualifying finding (§0.11).
                    self.close(i, at);
                    events.push(self.event(i, Change::Resolved, at));
                }
            }
        }
        events
    }

    /// A doctor acknowledged the open episode of `rule`'s family (or the episode of
    /// that rule); returns the event, or `None` when there is no such episode.
    pub fn acknowledge(&mut self, rule: &str, at: DateTime<Utc>) -> Option<Event> {
        let i = self.find(rule)?;
        self.acknowledge_at(i, at)
    }

    /// Acknowledges the episode of `family` opened at `opened_at` (an alert's lasting
    /// identity), if it is still open.
    pub fn acknowledge_episode(
        &mut self,
        family: &str,
        opened_at: DateTime<Utc>,
        ordinal: u32,
        at: DateTime<Utc>,
    ) -> Option<Event> {
        let i = self.find_episode(family, opened_at, ordinal)?;
        self.acknowledge_at(i, at)
    }

    /// Resolves the episode of `family` opened at `opened_at`, if it is still open.
    pub fn resolve_episode(
        &mut self,
        family: &str,
        opened_at: DateTime<Utc>,
        ordinal: u32,
        at: DateTime<Utc>,
    ) -> Option<Event> {
        let i = self.find_episode(family, opened_at, ordinal)?;
        self.close(i, at);
        Some(self.event(i, Change::Resolved, at))
    }

    fn find_episode(&self, family: &str, opened_at: DateTime<Utc>, ordinal: u32) -> Option<usize> {
        self.episodes.iter().rposition(|e| {
            e.closed_at.is_none()
                && e.family == family
                && e.opened_at == opened_at
                && e.ordinal == ordinal
        })
    }

    fn acknowledge_at(&mut self, i: usize, at: DateTime<Utc>) -> Option<Event> {
        if self.episodes[i].acknowledged {
            return None;
        }
        self.episodes[i].acknowledged = true;
        // Retrospective findings close on acknowledgement (§0.11).
        if self.episodes[i].rule == "retrospective_finding" {
            self.close(i, at);
        }
        Some(self.event(i, Change::Acknowledged, at))
    }

    /// A doctor resolved the episode of `rule` (with an action note elsewhere).
    pub fn resolve(&mut self, rule: &str, at: DateTime<Utc>) -> Option<Event> {
        let i = self.find(rule)?;
        self.close(i, at);
        Some(self.event(i, Change::Resolved, at))
    }

    fn find(&self, rule: &str) -> Option<usize> {
        let family = family_of(rule);
        self.episodes
            .iter()
            .enumerate()
            .rev()
            .find(|(_, e)| {
                e.closed_at.is_none()
                    && (e.rule == rule || e.family == family || e.underlying_rule == Some(rule))
            })
            .map(|(i, _)| i)
    }

    fn next_escalation(&self, e: &Episode) -> Option<(DateTime<Utc>, u8)> {
        let l = self.profile.ladder;
        let (minutes, level) = match (e.severity, e.escalation_level) {
            (Severity::Critical, 1) => (l.critical_l2, 2),
            (Severity::Critical, 2) => (l.critical_l3, 3),
            (Severity::High, 1) => (l.high_l2, 2),
            _ => return None,
        };
        Some((e.ladder_from + TimeDelta::minutes(minutes), level))
    }

    fn on_bp(
        &mut self,
        measured: DateTime<Utc>,
        systolic: i32,
        diastolic: i32,
        symptoms: &[Symptom],
        now: DateTime<Utc>,
        events: &mut Vec<Event>,
    ) {
        // Join the session under way when within the session gap of it on either
        // side (a gateway may upload a session newest first: its readings are one
        // measurement whatever order they come in), or start a new one (also once it
        // holds SESSION_READINGS: see there).
        let gap = TimeDelta::minutes(self.profile.rules.bp.session_minutes);
        let joins = self.session.as_ref().is_some_and(|s| {
            measured >= s.first - gap && measured - s.last <= gap && s.readings < SESSION_READINGS
        });
        let reading = self.trigger.evidence.iter().cloned().map(Kept::new);
        if joins && let Some(s) = self.session.as_mut() {
            if measured < s.first {
                // An earlier reading: the session starts with it, and a wait for
                // confirmation that this session opened counts from it.
                if let Some(p) = self.pending.as_mut().filter(|p| p.index == s.first) {
                    p.index = measured;
                }
                s.first = measured;
            }
            s.last = s.last.max(measured);
            s.readings += 1;
            s.systolic_sum += i64::from(systolic);
            s.diastolic_sum += i64::from(diastolic);
            s.symptoms.extend_from_slice(symptoms);
            // Room for four more at a time, never beyond the session's cap (doubling
            // would leave a full session's evidence a quarter empty).
            if s.evidence.len() == s.evidence.capacity() {
                let more = SESSION_READINGS.saturating_sub(s.evidence.len());
                s.evidence.reserve_exact(more.clamp(1, 4));
            }
            // The evidence in time order.
            let at = s.evidence.partition_point(|k| k.nanos() <= nanos(measured));
            s.evidence.splice(at..at, reading);
        } else {
            self.session = Some(Box::new(Session {
                first: measured,
                last: measured,
                readings: 1,
                systolic_sum: i64::from(systolic),
                diastolic_sum: i64::from(diastolic),
                symptoms: symptoms.to_vec(),
                evidence: reading.collect(),
            }));
        }
        let Some(s) = self.session.as_ref() else {
            return;
        };
        let (sys, dia, first) = (s.systolic(), s.diastolic(), s.first);
        let crisis_symptom = s.symptoms.iter().any(|x| CRISIS_SYMPTOMS.contains(x));
        let low_symptom = s.symptoms.iter().any(|x| HYPOTENSION_SYMPTOMS.contains(x));
        // A BP episode shows the session's mean, with its readings (formatted only
        // when something is raised or awaits confirmation).
        let session_trigger = |s: &Session| Trigger {
            display: format!("{sys}/{dia} mmHg"),
            evidence: s.evidence.iter().map(Kept::to_evidence).collect(),
        };
        // The index session may still be growing: keep its readings with the wait,
        // unless its mean no longer meets the threshold (then there is nothing to
        // confirm).
        let still_meets = |p: &Pending, bp: &crate::ruleset::Bp, thr: f64| match p.kind {
            Waiting::Crisis => {
                f64::from(sys) >= bp.crisis_systolic || f64::from(dia) >= bp.crisis_diastolic
            }
            Waiting::Hypotension => f64::from(sys) < thr,
        };
        let hypotension_below = self.profile.thresholds.bp_hypotension.at(now);
        if self.pending.as_ref().is_some_and(|p| {
            p.index == first && !still_meets(p, &self.profile.rules.bp, hypotension_below)
        }) {
            self.pending = None;
        }
        if self.pending.as_ref().is_some_and(|p| p.index == first) {
            let t = session_trigger(s);
            if let Some(p) = self.pending.as_mut() {
                p.trigger = t;
            }
        }
        let bp = self.profile.rules.bp.clone();
        let (fsys, fdia) = (f64::from(sys), f64::from(dia));
        let crisis = fsys >= bp.crisis_systolic || fdia >= bp.crisis_diastolic;
        let low = f64::from(sys) < self.profile.thresholds.bp_hypotension.at(now);
        // Clear conditions of the BP families, on the session's mean.
        if fsys < bp.crisis_clear_systolic && fdia < bp.crisis_clear_diastolic {
            self.clear_family("bp_crisis", now, events);
        }
        if fsys >= bp.hypotension_clear_at {
            self.clear_family("bp_hypotension", now, events);
        }
        // A later session settles what waits for confirmation.
        if let Some(p) = self.pending.clone()
            && first > p.index
        {
            let since = first - p.index;
            let meets = match p.kind {
                Waiting::Crisis => crisis,
                Waiting::Hypotension => low,
            };
            if since > TimeDelta::minutes(bp.confirm_within_minutes) {
                // Too late to confirm (the crisis timer has run; a hypotension lapses).
                self.pending = None;
            } else if !meets {
                // A repeat below the threshold cancels it, with no care-team alert.
                self.pending = None;
            } else if since >= TimeDelta::minutes(bp.confirm_after_minutes) {
                self.pending = None;
                let m = match p.kind {
                    Waiting::Crisis => Match {
                        family: "bp_crisis",
                        rule: "bp_crisis",
                        severity: Severity::Critical,
                    },
                    Waiting::Hypotension => Match {
                        family: "bp_hypotension",
                        rule: "bp_hypotension",
                        severity: Severity::High,
                    },
                };
                // The evidence: the index session and the confirming one.
                let mut t = self
                    .session
                    .as_deref()
                    .map(session_trigger)
                    .unwrap_or_default();
                let mut evidence = p.trigger.evidence.clone();
                evidence.append(&mut t.evidence);
                t.evidence = evidence;
                self.trigger = t;
                self.raise(m, now, events);
                return;
            }
            // Between 3 and 5 minutes: neither confirms nor cancels; a red-flag
            // symptom still raises at once (below), and the wait goes on.
        }
        let unconfirmed_open = self
            .open
            .get("bp_crisis")
            .is_some_and(|i| self.episodes[*i].rule == "bp_crisis_unconfirmed");
        if crisis {
            // A red-flag symptom confirms at once; so does a repeat that meets the
            // threshold after the unconfirmed alert went out (it is superseded).
            if crisis_symptom || unconfirmed_open {
                self.pending = None;
                self.trigger = self
                    .session
                    .as_deref()
                    .map(session_trigger)
                    .unwrap_or_default();
                self.raise(
                    Match {
                        family: "bp_crisis",
                        rule: "bp_crisis",
                        severity: Severity::Critical,
                    },
                    now,
                    events,
                );
            } else if self.pending.is_none() && !self.open.contains_key("bp_crisis") {
                self.pending = Some(Box::new(Pending {
                    kind: Waiting::Crisis,
                    index: first,
                    trigger: self
                        .session
                        .as_deref()
                        .map(session_trigger)
                        .unwrap_or_default(),
                }));
            }
        } else if low {
            if low_symptom {
                self.pending = None;
                self.trigger = self
                    .session
                    .as_deref()
                    .map(session_trigger)
                    .unwrap_or_default();
                self.raise(
                    Match {
                        family: "bp_hypotension",
                        rule: "bp_hypotension",
                        severity: Severity::High,
                    },
                    now,
                    events,
                );
            } else if self.pending.is_none() && !self.open.contains_key("bp_hypotension") {
                self.pending = Some(Box::new(Pending {
                    kind: Waiting::Hypotension,
                    index: first,
                    trigger: self
                        .session
                        .as_deref()
                        .map(session_trigger)
                        .unwrap_or_default(),
                }));
            }
        }
    }

    /// The single-reading rules a reading matches, the highest of each family.
    fn single_reading_matches(
        &self,
        c: &Canonical,
        symptoms: &[Symptom],
        now: DateTime<Utc>,
    ) -> Vec<Match> {
        let th = &self.profile.thresholds;
        let rules = &self.profile.rules;
        let m = |family, rule, severity| Match {
            family,
            rule,
            severity,
        };
        let (brady, tachy) = (th.hr_brady.at(now), th.hr_tachy.at(now));
        let mut out = Vec::new();
        let heart_rate = |per_min: i32, out: &mut Vec<Match>| {
            if f64::from(per_min) <= rules.heart_rate.brady_severe_at_or_below {
                out.push(m("hr_brady", "hr_brady_severe", Severity::Critical));
            } else if f64::from(per_min) < brady {
                out.push(m("hr_brady", "hr_brady", Severity::High));
            }
            if f64::from(per_min) >= rules.heart_rate.tachy_severe_at_or_above {
                out.push(m("hr_tachy", "hr_tachy_severe", Severity::Critical));
            } else if f64::from(per_min) > tachy {
                out.push(m("hr_tachy", "hr_tachy", Severity::High));
            }
        };
        match c {
            Canonical::Glucose {
                mmol_per_l, flag, ..
            } => {
                let g = *mmol_per_l;
                if *flag == Some(GlucoseFlag::Lo)
                    || g.is_some_and(|g| g < rules.glucose.level2_below)
                {
                    out.push(m("glucose_hypo", "glucose_hypo_level2", Severity::Critical));
                } else if g.is_some_and(|g| g <= th.glucose_hypo_level1.at(now)) {
                    out.push(m("glucose_hypo", "glucose_hypo_level1", Severity::High));
                }
                if *flag == Some(GlucoseFlag::Hi) {
                    out.push(m(
                        "glucose_hyper",
                        "glucose_hyper_extreme",
                        Severity::Critical,
                    ));
                } else if g.is_some_and(|g| g >= rules.glucose.hyper_urgent_at_or_above)
                    && symptoms.iter().any(|s| HYPERGLYCAEMIA_SYMPTOMS.contains(s))
                {
                    // CRITICAL with symptoms: against the rule set's threshold, which
                    // no override moves (a CRITICAL rule is never relaxed).
                    out.push(m(
                        "glucose_hyper",
                        "glucose_hyper_urgent",
                        Severity::Critical,
                    ));
                } else if g.is_some_and(|g| g >= th.glucose_hyper_urgent.at(now)) {
                    out.push(m("glucose_hyper", "glucose_hyper_urgent", Severity::High));
                } else if g.is_some_and(|g| g > th.glucose_hyper_level2.at(now)) {
                    out.push(m("glucose_hyper", "glucose_hyper_level2", Severity::Medium));
                }
            }
            Canonical::Spo2 {
                percent,
                pulse_rate_per_min,
                signal_quality,
                ..
            } => {
                if *signal_quality != Some(SignalQuality::Poor) {
                    let critical = if self.profile.scale2() {
                        rules.spo2.scale2_critical_at_or_below
                    } else {
                        rules.spo2.critical_at_or_below
                    };
                    if f64::from(*percent) <= critical {
                        out.push(m("spo2", "spo2_critical", Severity::Critical));
                    } else if f64::from(*percent) <= th.spo2_low.at(now) {
                        out.push(m("spo2", "spo2_low", Severity::High));
                    }
                }
                if let Some(pr) = pulse_rate_per_min {
                    heart_rate(*pr, &mut out);
                }
            }
            Canonical::HeartRate {
                per_min, activity, ..
            } => {
                if matches!(activity, None | Some(Activity::Rest)) {
                    heart_rate(*per_min, &mut out);
                }
            }
            Canonical::Bp { pulse_per_min, .. } => {
                if let Some(p) = pulse_per_min {
                    heart_rate(*p, &mut out);
                }
            }
            Canonical::Temperature { celsius, .. } => {
                let t = *celsius;
                if t >= th.temp_high_fever.at(now) {
                    out.push(m("temp_fever", "temp_high_fever", Severity::High));
                } else if t >= th.temp_fever.at(now) {
                    out.push(m("temp_fever", "temp_fever", Severity::Medium));
                } else if t >= th.temp_low_grade.at(now) {
                    out.push(m("temp_fever", "temp_low_grade", Severity::Low));
                }
                if t <= rules.temperature.hypothermia_at_or_below {
                    out.push(m("temp_hypothermia", "temp_hypothermia", Severity::High));
                }
            }
            Canonical::Ecg {
                finding,
                ventricular_rate_per_min,
                duration_s,
                longest_rr_s,
                ..
            } => {
                let e = &rules.ecg;
                let rate = f64::from(ventricular_rate_per_min.unwrap_or(0));
                let sustained = duration_s.is_some_and(|d| d >= e.sustained_seconds);
                let critical = match finding {
                    EcgFinding::VentricularFibrillation
                    | EcgFinding::Torsades
                    | EcgFinding::AvBlockComplete
                    | EcgFinding::StElevation => true,
                    EcgFinding::VentricularTachycardia => rate >= e.vt_rate && sustained,
                    EcgFinding::Pause => longest_rr_s.is_none_or(|rr| rr >= e.pause_seconds),
                    EcgFinding::AtrialFibrillation
                    | EcgFinding::AtrialFlutter
                    | EcgFinding::Svt => rate >= e.supraventricular_critical_rate && sustained,
                    EcgFinding::SinusRhythm | EcgFinding::Other => false,
                } || ventricular_rate_per_min
                    .is_some_and(|r| f64::from(r) < e.critical_rate_below);
                if critical {
                    out.push(m("ecg", "ecg_critical", Severity::Critical));
                } else if *finding == EcgFinding::AtrialFibrillation
                    && !self.profile.has(Condition::AtrialFibrillation)
                {
                    out.push(m("ecg", "ecg_af_detected", Severity::High));
                }
            }
            Canonical::Weight { .. } | Canonical::EcgWaveform { .. } => {}
        }
        out
    }

    /// Closes open single-reading families whose clear condition this reading meets.
    fn clear_single(&mut self, c: &Canonical, now: DateTime<Utc>, events: &mut Vec<Event>) {
        let open_rule =
            |this: &Engine, family: &str| this.open.get(family).map(|i| this.episodes[*i].rule);
        let mut clear = Vec::new();
        match c {
            Canonical::Glucose {
                mmol_per_l: Some(g),
                ..
            } => {
                let gl = &self.profile.rules.glucose;
                if *g >= gl.hypo_clear_at {
                    clear.push("glucose_hypo");
                }
                let hyper_clears = match open_rule(self, "glucose_hyper") {
                    Some("glucose_hyper_extreme") => *g < gl.hyper_urgent_at_or_above,
                    Some(_) => *g < gl.hyper_clear_below,
                    None => false,
                };
                if hyper_clears {
                    clear.push("glucose_hyper");
                }
            }
            Canonical::Spo2 {
                percent,
                signal_quality,
                pulse_rate_per_min,
                ..
            } => {
                let sp = &self.profile.rules.spo2;
                let target = if self.profile.scale2() {
                    sp.scale2_clear_at
                } else {
                    sp.clear_at
                };
                if *signal_quality != Some(SignalQuality::Poor) && f64::from(*percent) >= target {
                    clear.push("spo2");
                }
                if let Some(pr) = pulse_rate_per_min {
                    self.heart_rate_clears(*pr, &mut clear);
                }
            }
            Canonical::HeartRate {
                per_min,
                activity: None | Some(Activity::Rest),
                ..
            } => {
                self.heart_rate_clears(*per_min, &mut clear);
            }
            Canonical::Bp {
                pulse_per_min: Some(p),
                ..
            } => self.heart_rate_clears(*p, &mut clear),
            Canonical::Temperature { celsius, .. } => {
                let te = &self.profile.rules.temperature;
                if *celsius < te.fever_clear_below {
                    clear.push("temp_fever");
                }
                if *celsius >= te.hypothermia_clear_at {
                    clear.push("temp_hypothermia");
                }
            }
            _ => {}
        }
        for family in clear {
            self.clear_family(family, now, events);
        }
    }

    fn heart_rate_clears(&self, per_min: i32, clear: &mut Vec<&'static str>) {
        let rule = |family: &str| self.open.get(family).map(|i| self.episodes[*i].rule);
        let h = &self.profile.rules.heart_rate;
        let per_min = f64::from(per_min);
        let brady = match rule("hr_brady") {
            Some("hr_brady_severe") => per_min >= h.brady_severe_clear_at,
            Some(_) => per_min >= h.brady_clear_at,
            None => false,
        };
        let tachy = match rule("hr_tachy") {
            Some("hr_tachy_severe") => per_min <= h.tachy_severe_clear_at_or_below,
            Some(_) => per_min <= h.tachy_clear_at_or_below,
            None => false,
        };
        if brady {
            clear.push("hr_brady");
        }
        if tachy {
            clear.push("hr_tachy");
        }
    }

    fn clear_family(&mut self, family: &str, now: DateTime<Utc>, events: &mut Vec<Event>) {
        if let Some(i) = self.open.get(family).copied() {
            self.close(i, now);
            events.push(self.event(i, Change::Resolved, now));
        }
    }

    fn close(&mut self, i: usize, at: DateTime<Utc>) {
        self.episodes[i].closed_at = Some(at);
        let family = self.episodes[i].family.clone();
        if self.open.get(&family) == Some(&i) {
            self.open.remove(&family);
        }
    }

    /// Opens an episode for `m`, upgrades the open one, or attaches to it.
    fn raise(&mut self, m: Match, now: DateTime<Utc>, events: &mut Vec<Event>) {
        match self.open.get(m.family).copied() {
            Some(i) => {
                self.episodes[i].last_seen = now;
                if rank(m.severity) > rank(self.episodes[i].severity) {
                    let deliver_at = self.quiet_until(m.severity, now);
                    let e = &mut self.episodes[i];
                    e.rule = m.rule;
                    e.severity = m.severity;
                    // Re-notified at the new severity: its ladder starts again now (an
                    // acknowledged episode stays acknowledged: no re-escalation).
                    e.ladder_from = now;
                    e.deliver_at = deliver_at;
                    e.display = self.trigger.display.clone();
                    e.evidence = self.trigger.evidence.clone();
                    self.last_opened.insert(m.rule, now);
                    events.push(self.event(i, Change::Upgraded, now));
                }
            }
            None => {
                if matches!(m.severity, Severity::Medium | Severity::Low)
                    && self.profile.thresholds.is_snoozed(m.rule, now)
                {
                    return;
                }
                // Dedup windows (§1): no new episode of the rule this soon after the
                // last; never for a CRITICAL finding.
                if m.severity != Severity::Critical
                    && let (Some(window), Some(last)) =
                        (dedup_window(m.rule), self.last_opened.get(m.rule))
                    && now - *last < window
                {
                    return;
                }
                self.last_opened.insert(m.rule, now);
                let i = self.open_episode(m.family.to_owned(), m.rule, m.severity, now);
                self.open.insert(m.family.to_owned(), i);
                events.push(self.event(i, Change::Opened, now));
            }
        }
    }

    fn open_episode(
        &mut self,
        family: String,
        rule: &'static str,
        severity: Severity,
        now: DateTime<Utc>,
    ) -> usize {
        let id = self.next_id;
        self.next_id += 1;
        let deliver_at = self.quiet_until(severity, now);
        let ordinal = self
            .episodes
            .iter()
            .filter(|e| e.family == family && e.opened_at == now)
            .count() as u32;
        self.episodes.push(Episode {
            ordinal,
            id,
            family,
            rule,
            severity,
            opened_at: now,
            ladder_from: now,
            last_seen: now,
            escalation_level: 1,
            acknowledged: false,
            closed_at: None,
            deliver_at,
            underlying_rule: None,
            display: self.trigger.display.clone(),
            evidence: self.trigger.evidence.clone(),
        });
        self.episodes.len() - 1
    }

    /// For MEDIUM/LOW generated in [22:00, 08:00) local: the next 08:00 (§0.7).
    fn quiet_until(&self, severity: Severity, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !matches!(severity, Severity::Medium | Severity::Low) {
            return None;
        }
        let tz = self.profile.timezone;
        let local = now.with_timezone(&tz);
        let timing = &self.profile.rules.timing;
        let end = NaiveTime::from_hms_opt(timing.quiet_end_hour, 0, 0)?;
        let start = NaiveTime::from_hms_opt(timing.quiet_start_hour, 0, 0)?;
        let t = local.time();
        // [start, end) wraps midnight when start is after end (22:00-08:00).
        let quiet = if start > end {
            t >= start || t < end
        } else {
            t >= start && t < end
        };
        if !quiet {
            return None;
        }
        let day = if t >= end {
            local.date_naive().succ_opt()?
        } else {
            local.date_naive()
        };
        let eight = end;
        tz.from_local_datetime(&day.and_time(eight))
            .earliest()
            .map(|d| d.with_timezone(&Utc))
    }

    fn event(&self, i: usize, change: Change, at: DateTime<Utc>) -> Event {
        let e = &self.episodes[i];
        Event {
            episode: e.id,
            family: e.family.clone(),
            opened_at: e.opened_at,
            ordinal: e.ordinal,
            display: e.display.clone(),
            evidence: e.evidence.clone(),
            change,
            rule: e.rule,
            severity: e.severity,
            at,
            level: e.escalation_level,
            deliver_at: e.deliver_at,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Timer {
    Unconfirmed,
    GapJob,
    Escalate(usize, u8),
    Lapse(usize),
}

/// How far back the engine remembers readings: the longest window of any rule (7
/// days) and a day's margin.
pub const HISTORY: TimeDelta = TimeDelta::days(8);

/// A heart rate, from whichever reading carried it.
fn pulse_display(c: &Canonical) -> String {
    match c {
        Canonical::Bp {
            pulse_per_min: Some(p),
            ..
        } => format!("pulse {p} /min"),
        Canonical::Spo2 {
            pulse_rate_per_min: Some(p),
            ..
        } => format!("pulse {p} /min"),
        other => display(other),
    }
}

/// A canonical value as a doctor's client shows it (wire contract: `display`).
fn display(c: &Canonical) -> String {
    match c {
        Canonical::Bp {
            systolic_mmhg,
            diastolic_mmhg,
            ..
        } => format!("{systolic_mmhg}/{diastolic_mmhg} mmHg"),
        Canonical::Glucose {
            mmol_per_l, flag, ..
        } => match (mmol_per_l, flag) {
            (_, Some(f)) => format!("{f} (outside the meter's range)"),
            (Some(g), None) => format!("{g:.1} mmol/L"),
            (None, None) => "glucose".to_owned(),
        },
        Canonical::Spo2 { percent, .. } => format!("SpO2 {percent} %"),
        Canonical::HeartRate { per_min, .. } => format!("{per_min} /min"),
        Canonical::Temperature { celsius, .. } => format!("{celsius:.1} °C"),
        Canonical::Weight { kg } => format!("{kg:.1} kg"),
        Canonical::Ecg {
            finding,
            ventricular_rate_per_min,
            ..
        } => match ventricular_rate_per_min {
            Some(r) => format!("{finding} {r} /min"),
            None => finding.to_string(),
        },
        Canonical::EcgWaveform { .. } => "ECG strip".to_owned(),
    }
}

/// How soon after an episode of a rule opened a new one may open (§1 "dedup").
fn dedup_window(rule: &str) -> Option<TimeDelta> {
    match rule {
        "bp_grade2" | "bp_uncontrolled_home" | "glucose_fasting_uncontrolled" => {
            Some(TimeDelta::days(7))
        }
        "glucose_hyper_urgent" | "glucose_hyper_level2" => Some(TimeDelta::hours(24)),
        _ => None,
    }
}

/// An instant as nanoseconds since 1970, as the trend windows keep it: exact, and in
/// the same order, for every instant from 1678 to 2261 (a reading outside them never
/// passes validation); saturated beyond.
pub(crate) fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// An instant from [`nanos`].
fn from_nanos(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(t)
}

/// A duration in nanoseconds, saturated.
fn nanos_of(d: TimeDelta) -> i64 {
    d.num_nanoseconds().unwrap_or(i64::MAX)
}

/// The local day of `t` as the instants `[start, end)` in [`nanos`]; none where a
/// midnight does not exist (a daylight-saving gap at 00:00).
fn local_day_bounds(t: DateTime<Utc>, tz: Tz) -> Option<(i64, i64)> {
    let date = t.with_timezone(&tz).date_naive();
    let midnight = |d: chrono::NaiveDate| {
        tz.from_local_datetime(&d.and_hms_opt(0, 0, 0)?)
            .earliest()
            .map(|x| nanos(x.with_timezone(&Utc)))
    };
    Some((midnight(date)?, midnight(date.succ_opt()?)?))
}

/// The family of a rule id (§0.9).
pub fn family_of(rule: &str) -> &str {
    match rule {
        "bp_crisis_unconfirmed" => "bp_crisis",
        "glucose_hypo_level2" | "glucose_hypo_level1" => "glucose_hypo",
        "glucose_hyper_extreme" | "glucose_hyper_urgent" | "glucose_hyper_level2" => {
            "glucose_hyper"
        }
        "spo2_critical" | "spo2_low" => "spo2",
        "hr_brady_severe" => "hr_brady",
        "hr_tachy_severe" => "hr_tachy",
        "temp_high_fever" | "temp_low_grade" => "temp_fever",
        "ecg_critical" | "ecg_af_detected" => "ecg",
        other => other,
    }
}
