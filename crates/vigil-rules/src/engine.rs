//! The clinical rule engine for one patient: pure, driven by the instants it is given.
//!
//! Implements, from `clinical/rules.md`:
//! - the **acute rules** of §1: `bp_crisis` (sessions of readings within 3 minutes,
//!   scored by their mean; confirmed by a second session 5–30 minutes later or by a
//!   red-flag symptom, else `bp_crisis_unconfirmed` when the 30 minutes pass; a repeat
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
//! Not yet here (they come next, issue 6): the trend rules (`bp_grade2`,
//! `bp_uncontrolled_home`, `glucose_fasting_uncontrolled`, `hf_weight_*`), the
//! two-reading `hr_tachy` path, `monitoring_gap`, per-patient overrides (§0.4), and
//! persistence of the engine's state.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use vigil_model::canonical::Canonical;
use vigil_model::vocab::{
    Activity, Condition, EcgFinding, GlucoseFlag, Severity, SignalQuality, Symptom,
};

use crate::validate::Validated;

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
}

impl Profile {
    fn has(&self, c: Condition) -> bool {
        self.conditions.contains(&c)
    }

    fn scale2(&self) -> bool {
        match self.spo2_scale {
            Some(s) => s == 2,
            None => self.has(Condition::Copd),
        }
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
    /// The episode's number for this patient (stable for its whole life).
    pub episode: u64,
    pub change: Change,
    pub rule: &'static str,
    pub severity: Severity,
    pub at: DateTime<Utc>,
}

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
}

/// A BP session: readings within 3 minutes of each other, scored by their mean.
#[derive(Debug, Clone)]
struct Session {
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    systolic: Vec<i32>,
    diastolic: Vec<i32>,
    symptoms: Vec<Symptom>,
}

impl Session {
    fn mean(v: &[i32]) -> i32 {
        let sum: i64 = v.iter().map(|x| i64::from(*x)).sum();
        let n = v.len().max(1) as i64;
        // Half up, as every canonical value (§0.12).
        i32::try_from((2 * sum + n).div_euclid(2 * n)).unwrap_or(i32::MAX)
    }
    fn systolic(&self) -> i32 {
        Session::mean(&self.systolic)
    }
    fn diastolic(&self) -> i32 {
        Session::mean(&self.diastolic)
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
    session: Option<Session>,
    pending: Option<Pending>,
    /// Retrospective findings raised: (underlying family, local receipt day).
    retrospective: Vec<(&'static str, chrono::NaiveDate)>,
    next_id: u64,
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
        }
    }

    /// Every episode so far, in the order opened.
    pub fn episodes(&self) -> &[Episode] {
        &self.episodes
    }

    /// Evaluates a validated reading at `now` (its receipt: when it is "generated").
    /// Timers due before `now` should have been run with [`Engine::advance`] first.
    pub fn on_reading(&mut self, v: &Validated, now: DateTime<Utc>) -> Vec<Event> {
        let mut events = Vec::new();
        let measured = v.reading().time.with_timezone(&Utc);
        let symptoms = &v.reading().symptoms;
        if v.is_late() {
            // Never acute: at most one finding per underlying family and receipt day.
            let local_day = now.with_timezone(&self.profile.timezone).date_naive();
            let mut matches = self.single_reading_matches(v.canonical(), symptoms);
            if let Canonical::Bp {
                systolic_mmhg,
                diastolic_mmhg,
                ..
            } = v.canonical()
                && (*systolic_mmhg >= 180 || *diastolic_mmhg >= 110)
            {
                matches.push(Match {
                    family: "bp_crisis",
                    rule: "bp_crisis",
                    severity: Severity::Critical,
                });
            }
            for m in matches {
                if self.retrospective.contains(&(m.family, local_day)) {
                    continue;
                }
                self.retrospective.push((m.family, local_day));
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
        let matches = self.single_reading_matches(v.canonical(), symptoms);
        // Clear first (a reading that no longer meets an open family's condition),
        // then raise what it matches.
        self.clear_single(v.canonical(), now, &mut events);
        for m in matches {
            self.raise(m, now, &mut events);
        }
        events
    }

    /// Runs the timers due up to `now`: unconfirmed crises, escalations, ECG episodes
    /// that saw no finding for 24 hours.
    pub fn advance(&mut self, now: DateTime<Utc>) -> Vec<Event> {
        let mut events = Vec::new();
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
                consider(p.index + TimeDelta::minutes(30), Timer::Unconfirmed);
            }
            for (i, e) in self.episodes.iter().enumerate() {
                if e.closed_at.is_some() {
                    continue;
                }
                if e.family == "ecg" {
                    consider(e.last_seen + TimeDelta::hours(24), Timer::Lapse(i));
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
                    self.pending = None;
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
        // Join the session under way, or start a new one.
        let joins = self
            .session
            .as_ref()
            .is_some_and(|s| measured >= s.last && measured - s.last <= TimeDelta::minutes(3));
        if joins && let Some(s) = self.session.as_mut() {
            s.last = measured;
            s.systolic.push(systolic);
            s.diastolic.push(diastolic);
            s.symptoms.extend_from_slice(symptoms);
        } else {
            self.session = Some(Session {
                first: measured,
                last: measured,
                systolic: vec![systolic],
                diastolic: vec![diastolic],
                symptoms: symptoms.to_vec(),
            });
        }
        let Some(s) = self.session.clone() else {
            return;
        };
        let (sys, dia) = (s.systolic(), s.diastolic());
        let crisis = sys >= 180 || dia >= 110;
        let low = sys < 90;
        let symptom = |list: &[Symptom]| s.symptoms.iter().any(|x| list.contains(x));
        // Clear conditions of the BP families, on the session's mean.
        if sys < 170 && dia < 100 {
            self.clear_family("bp_crisis", now, events);
        }
        if sys >= 100 {
            self.clear_family("bp_hypotension", now, events);
        }
        // A later session settles what waits for confirmation.
        if let Some(p) = self.pending.clone()
            && s.first > p.index
        {
            let since = s.first - p.index;
            let meets = match p.kind {
                Waiting::Crisis => crisis,
                Waiting::Hypotension => low,
            };
            if since > TimeDelta::minutes(30) {
                // Too late to confirm (the crisis timer has run; a hypotension lapses).
                self.pending = None;
            } else if !meets {
                // A repeat below the threshold cancels it, with no care-team alert.
                self.pending = None;
            } else if since >= TimeDelta::minutes(5) {
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
                self.raise(m, now, events);
                return;
            } else {
                // Between 3 and 5 minutes: neither confirms nor cancels.
                return;
            }
        }
        let unconfirmed_open = self
            .open
            .get("bp_crisis")
            .is_some_and(|i| self.episodes[*i].rule == "bp_crisis_unconfirmed");
        if crisis {
            // A red-flag symptom confirms at once; so does a repeat that meets the
            // threshold after the unconfirmed alert went out (it is superseded).
            if symptom(&CRISIS_SYMPTOMS) || unconfirmed_open {
                self.pending = None;
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
                self.pending = Some(Pending {
                    kind: Waiting::Crisis,
                    index: s.first,
                });
            }
        } else if low {
            if symptom(&HYPOTENSION_SYMPTOMS) {
                self.pending = None;
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
                self.pending = Some(Pending {
                    kind: Waiting::Hypotension,
                    index: s.first,
                });
            }
        }
    }

    /// The single-reading rules a reading matches, the highest of each family.
    fn single_reading_matches(&self, c: &Canonical, symptoms: &[Symptom]) -> Vec<Match> {
        let m = |family, rule, severity| Match {
            family,
            rule,
            severity,
        };
        let mut out = Vec::new();
        let heart_rate = |per_min: i32, out: &mut Vec<Match>| {
            if per_min <= 40 {
                out.push(m("hr_brady", "hr_brady_severe", Severity::Critical));
            } else if per_min < 50 {
                out.push(m("hr_brady", "hr_brady", Severity::High));
            }
            if per_min >= 131 {
                out.push(m("hr_tachy", "hr_tachy_severe", Severity::Critical));
            } else if per_min > 120 {
                out.push(m("hr_tachy", "hr_tachy", Severity::High));
            }
        };
        match c {
            Canonical::Glucose {
                mmol_per_l, flag, ..
            } => {
                let g = *mmol_per_l;
                if *flag == Some(GlucoseFlag::Lo) || g.is_some_and(|g| g < 3.0) {
                    out.push(m("glucose_hypo", "glucose_hypo_level2", Severity::Critical));
                } else if g.is_some_and(|g| g <= 3.9) {
                    out.push(m("glucose_hypo", "glucose_hypo_level1", Severity::High));
                }
                if *flag == Some(GlucoseFlag::Hi) {
                    out.push(m(
                        "glucose_hyper",
                        "glucose_hyper_extreme",
                        Severity::Critical,
                    ));
                } else if g.is_some_and(|g| g >= 16.7) {
                    let severity = if symptoms.iter().any(|s| HYPERGLYCAEMIA_SYMPTOMS.contains(s)) {
                        Severity::Critical
                    } else {
                        Severity::High
                    };
                    out.push(m("glucose_hyper", "glucose_hyper_urgent", severity));
                } else if g.is_some_and(|g| g > 13.9) {
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
                    let (critical, low) = if self.profile.scale2() {
                        (83, 87)
                    } else {
                        (89, 91)
                    };
                    if *percent <= critical {
                        out.push(m("spo2", "spo2_critical", Severity::Critical));
                    } else if *percent <= low {
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
                if t >= 39.1 {
                    out.push(m("temp_fever", "temp_high_fever", Severity::High));
                } else if t >= 38.1 {
                    out.push(m("temp_fever", "temp_fever", Severity::Medium));
                } else if t >= 37.3 {
                    out.push(m("temp_fever", "temp_low_grade", Severity::Low));
                }
                if t <= 35.0 {
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
                let rate = ventricular_rate_per_min.unwrap_or(0);
                let sustained = duration_s.is_some_and(|d| d >= 30.0);
                let critical = match finding {
                    EcgFinding::VentricularFibrillation
                    | EcgFinding::Torsades
                    | EcgFinding::AvBlockComplete
                    | EcgFinding::StElevation => true,
                    EcgFinding::VentricularTachycardia => rate >= 150 && sustained,
                    EcgFinding::Pause => longest_rr_s.is_none_or(|rr| rr >= 3.0),
                    EcgFinding::AtrialFibrillation
                    | EcgFinding::AtrialFlutter
                    | EcgFinding::Svt => rate >= 180 && sustained,
                    EcgFinding::SinusRhythm | EcgFinding::Other => false,
                } || ventricular_rate_per_min.is_some_and(|r| r < 35);
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
                if *g >= 4.4 {
                    clear.push("glucose_hypo");
                }
                let hyper_clears = match open_rule(self, "glucose_hyper") {
                    Some("glucose_hyper_extreme") => *g < 16.7,
                    Some(_) => *g < 13.9,
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
                let target = if self.profile.scale2() { 88 } else { 94 };
                if *signal_quality != Some(SignalQuality::Poor) && *percent >= target {
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
                if *celsius < 37.3 {
                    clear.push("temp_fever");
                }
                if *celsius >= 35.5 {
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
        let brady = match rule("hr_brady") {
            Some("hr_brady_severe") => per_min >= 50,
            Some(_) => per_min >= 55,
            None => false,
        };
        let tachy = match rule("hr_tachy") {
            Some("hr_tachy_severe") => per_min <= 110,
            Some(_) => per_min <= 95,
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
                    events.push(self.event(i, Change::Upgraded, now));
                }
            }
            None => {
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
        self.episodes.push(Episode {
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
        let eight = NaiveTime::from_hms_opt(8, 0, 0)?;
        let ten = NaiveTime::from_hms_opt(22, 0, 0)?;
        let t = local.time();
        let day = if t >= ten {
            local.date_naive().succ_opt()?
        } else if t < eight {
            local.date_naive()
        } else {
            return None;
        };
        tz.from_local_datetime(&day.and_time(eight))
            .earliest()
            .map(|d| d.with_timezone(&Utc))
    }

    fn event(&self, i: usize, change: Change, at: DateTime<Utc>) -> Event {
        let e = &self.episodes[i];
        Event {
            episode: e.id,
            change,
            rule: e.rule,
            severity: e.severity,
            at,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Timer {
    Unconfirmed,
    Escalate(usize, u8),
    Lapse(usize),
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
