//! The fleet: patients, their home gateways and devices, their days, and incidents.
//!
//! A [`Fleet`] is a discrete-event simulation driven from outside: [`Fleet::advance`]
//! moves it to an instant and returns the envelopes its gateways publish on the way, in
//! time order. It never reads a clock, so the demo drives it with its accelerated clock
//! and tests drive it with plain instants.
//!
//! Every reading comes with what the platform should do with it ([`Expect`]), so an
//! end-to-end run can check the ingester's accounting reading by reading.

use std::collections::{BTreeMap, VecDeque};

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, Offset, TimeDelta, TimeZone, Utc};
use vigil_model::measurement::{
    BloodPressure, EcgLeads, EcgSummary, EcgWaveform, Glucose, HeartRate, Spo2, Temperature, Weight,
};
use vigil_model::units::{
    GlucoseUnit, PercentUnit, PressureUnit, RateUnit, TemperatureUnit, VoltageUnit, WeightUnit,
};
use vigil_model::vocab::{
    Activity, Condition, EcgFinding, GlucoseFlag, HrSource, LeadConfig, MealContext,
    QuarantineReason, SignalQuality, Symptom,
};
use vigil_model::{DeviceId, GatewayId, Measurement, PatientId, Reading, ReadingType};
use vigil_wire::{Envelope, Topic};

use crate::ecg;
use crate::rng::Rng;

/// The simulated patients live in China (UTC+8, no daylight saving).
pub fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| Utc.fix())
}

/// How big the fleet is and how eventful.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetConfig {
    /// Patients, one home gateway each (1 to 100 000).
    pub patients: usize,
    /// The same seed and start give the same fleet and the same readings.
    pub seed: u64,
    /// Where simulated time begins.
    pub start: DateTime<Utc>,
    /// Simulated time between incidents (a hypertensive crisis, a hypoglycaemic night,
    /// a bad reading, ...). `None`: routine measurements only.
    pub incident_every: Option<TimeDelta>,
    /// At most this many devices per patient (the first of the kit their conditions
    /// call for); `None`: the whole kit (two or three devices).
    pub devices_per_patient: Option<usize>,
}

impl FleetConfig {
    /// The demo's fleet: four dozen patients and an incident every 30 simulated minutes.
    pub fn demo(start: DateTime<Utc>) -> FleetConfig {
        FleetConfig {
            patients: 48,
            seed: 2026,
            start,
            incident_every: Some(TimeDelta::minutes(30)),
            devices_per_patient: None,
        }
    }
}

/// What the platform should do with a reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Expect {
    Stored,
    Quarantined(QuarantineReason),
    /// A reading the platform already holds (a meter's memory read again).
    Duplicate,
}

/// One envelope a gateway publishes, with what should become of each reading.
#[derive(Debug, Clone)]
pub struct Publish {
    pub envelope: Envelope,
    /// One per reading, in envelope order.
    pub expect: Vec<Expect>,
    /// What happened, when this envelope carries an incident ("hypertensive crisis").
    pub incident: Option<&'static str>,
}

impl Publish {
    /// The MQTT topic the gateway publishes it on.
    pub fn topic(&self) -> String {
        Topic::Readings(self.envelope.gateway_id.clone()).to_string()
    }

    /// The wire payload.
    pub fn payload(&self) -> Vec<u8> {
        vigil_wire::encode_envelope(&self.envelope)
    }
}

/// What kind of device a patient has at home.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceKind {
    BpCuff,
    Glucometer,
    Oximeter,
    Thermometer,
    Scale,
    EcgPatch,
}

impl DeviceKind {
    fn prefix(self) -> &'static str {
        match self {
            DeviceKind::BpCuff => "bpm",
            DeviceKind::Glucometer => "glu",
            DeviceKind::Oximeter => "spo2",
            DeviceKind::Thermometer => "therm",
            DeviceKind::Scale => "scale",
            DeviceKind::EcgPatch => "ecg",
        }
    }

    /// The reading types it produces (registry `types`).
    fn types(self) -> &'static [&'static str] {
        match self {
            DeviceKind::BpCuff => &["bp"],
            DeviceKind::Glucometer => &["glucose"],
            DeviceKind::Oximeter => &["spo2"],
            DeviceKind::Thermometer => &["temperature"],
            DeviceKind::Scale => &["weight"],
            DeviceKind::EcgPatch => &["ecg", "ecg_waveform", "heart_rate"],
        }
    }

    /// Devices with a clock of their own send `device_time`.
    fn has_clock(self) -> bool {
        matches!(
            self,
            DeviceKind::BpCuff | DeviceKind::Glucometer | DeviceKind::Scale
        )
    }
}

/// A device in a patient's home.
#[derive(Debug, Clone)]
pub struct SimDevice {
    pub id: DeviceId,
    pub kind: DeviceKind,
    /// The unit the device displays: most are canonical; some glucometers show mg/dL,
    /// some thermometers °F, some scales 斤 (all legitimate, converted by the platform).
    unit: DisplayUnit,
    /// A glucometer numbers its records.
    next_record: u64,
    /// The last second used per reading type, so two readings of one device and type
    /// never share an identity by accident.
    last_second: BTreeMap<ReadingType, i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DisplayUnit {
    Canonical,
    MgPerDl,
    Fahrenheit,
    Jin,
}

/// A patient's own physiology: baselines around which readings vary.
#[derive(Debug, Clone)]
struct Baseline {
    systolic: f64,
    diastolic: f64,
    pulse: f64,
    fasting_glucose: f64,
    spo2: f64,
    temperature: f64,
    weight_kg: f64,
}

/// One simulated patient and their home.
#[derive(Debug, Clone)]
pub struct SimPatient {
    pub id: PatientId,
    pub gateway: GatewayId,
    pub conditions: Vec<Condition>,
    pub age: u32,
    pub institution: &'static str,
    pub doctor: String,
    pub devices: Vec<SimDevice>,
    baseline: Baseline,
    next_batch: u64,
    /// The last stored glucose readings, for a memory re-read.
    recent_glucose: VecDeque<Reading>,
}

impl SimPatient {
    fn has(&self, c: Condition) -> bool {
        self.conditions.contains(&c)
    }

    fn device(&self, kind: DeviceKind) -> Option<usize> {
        self.devices.iter().position(|d| d.kind == kind)
    }
}

/// Routine measurements of a patient's day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Routine {
    Bp,
    Glucose(MealContext),
    Weight,
    Spo2,
    Temperature,
    EcgStrip,
    /// A reading of the visiting relative's cuff, which no assignment covers.
    GuestBp,
}

/// Something notable; they come in this order, round and round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Incident {
    BpCrisis,
    Hypoglycaemia,
    GlucoseUnitTrap,
    LowSpo2,
    Fever,
    ImplausibleBp,
    Tachycardia,
    ClockReset,
    AtrialFibrillation,
    PoorSignal,
    Hypotension,
    MemoryReread,
}

const INCIDENTS: [Incident; 12] = [
    Incident::BpCrisis,
    Incident::Hypoglycaemia,
    Incident::GlucoseUnitTrap,
    Incident::LowSpo2,
    Incident::Fever,
    Incident::ImplausibleBp,
    Incident::Tachycardia,
    Incident::ClockReset,
    Incident::AtrialFibrillation,
    Incident::PoorSignal,
    Incident::Hypotension,
    Incident::MemoryReread,
];

#[derive(Debug, Clone)]
enum Action {
    /// Plan the routine of the local day that starts at this action's time.
    PlanDay {
        patient: usize,
    },
    Routine {
        patient: usize,
        what: Routine,
    },
    Incident,
    /// A scripted blood-pressure session (two readings a minute apart).
    BpSession {
        patient: usize,
        systolic: f64,
        diastolic: f64,
        label: &'static str,
    },
    /// A scripted glucose reading.
    Glucose {
        patient: usize,
        value: f64,
        label: &'static str,
    },
}

/// The simulated fleet. See the module docs.
#[derive(Debug)]
pub struct Fleet {
    config: FleetConfig,
    rng: Rng,
    patients: Vec<SimPatient>,
    /// The guest cuff (registered on the first gateway, never assigned).
    guest: SimDevice,
    /// Actions by (time, sequence): the sequence keeps insertion order among equals.
    agenda: BTreeMap<(DateTime<Utc>, u64), Action>,
    seq: u64,
    now: DateTime<Utc>,
    next_incident: usize,
    enrolled: DateTime<Utc>,
}

/// The doctors of the demo consortium's community centres; a family doctor cares for
/// up to [`PATIENTS_PER_DOCTOR`] patients.
const PATIENTS_PER_DOCTOR: usize = 12;
const COMMUNITIES: [&str; 2] = ["chc-east", "chc-west"];

impl Fleet {
    /// Builds the fleet; nothing is emitted before [`Fleet::advance`].
    pub fn new(config: FleetConfig) -> Fleet {
        let patients_n = config.patients.clamp(1, 100_000);
        let mut rng = Rng::new(config.seed);
        let tz = china();
        // Enrolled on 1 January of the year before the start: stable across resumed
        // demos, and before every simulated reading.
        let year = config.start.with_timezone(&tz).year() - 1;
        let enrolled = tz
            .with_ymd_and_hms(year, 1, 1, 0, 0, 0)
            .single()
            .map_or(config.start - TimeDelta::days(365), |t| {
                t.with_timezone(&Utc)
            });
        let kit = config.devices_per_patient.unwrap_or(usize::MAX).max(1);
        let patients = (0..patients_n)
            .map(|i| make_patient(i, kit, &mut rng))
            .collect();
        let guest = SimDevice {
            id: id("bpm-guest-0001"),
            kind: DeviceKind::BpCuff,
            unit: DisplayUnit::Canonical,
            next_record: 1,
            last_second: BTreeMap::new(),
        };
        let mut fleet = Fleet {
            now: config.start,
            config,
            rng,
            patients,
            guest,
            agenda: BTreeMap::new(),
            seq: 0,
            next_incident: 0,
            enrolled,
        };
        let first_midnight = next_local_midnight(fleet.now);
        for p in 0..fleet.patients.len() {
            fleet.plan_day(p, fleet.now, first_midnight);
            fleet.schedule(first_midnight, Action::PlanDay { patient: p });
        }
        if let Some(every) = fleet.config.incident_every {
            // The first within minutes, so a demo has something to show at once.
            let first = fleet.now + TimeDelta::minutes(2).min(every);
            fleet.schedule(first, Action::Incident);
        }
        fleet
    }

    /// Where simulated time stands.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    pub fn patients(&self) -> &[SimPatient] {
        &self.patients
    }

    /// Continues each gateway's envelope numbering after `last` (from the store of an
    /// earlier run), so a resumed demo's envelopes are new envelopes.
    pub fn resume_batch_seqs<'a>(&mut self, last: impl IntoIterator<Item = (&'a str, u64)>) {
        for (gateway, seq) in last {
            if let Some(p) = self
                .patients
                .iter_mut()
                .find(|p| p.gateway.as_str() == gateway)
            {
                p.next_batch = p.next_batch.max(seq.saturating_add(1));
            }
        }
    }

    /// Runs the simulation up to `until` (inclusive) and returns what the gateways
    /// publish meanwhile, in time order. Going backwards does nothing.
    pub fn advance(&mut self, until: DateTime<Utc>) -> Vec<Publish> {
        let mut out = Vec::new();
        while let Some(entry) = self.agenda.first_entry() {
            let at = entry.key().0;
            if at > until {
                break;
            }
            let action = entry.remove();
            self.now = self.now.max(at);
            self.run(at, action, &mut out);
        }
        self.now = self.now.max(until);
        out
    }

    fn schedule(&mut self, at: DateTime<Utc>, action: Action) {
        self.seq += 1;
        self.agenda.insert((at, self.seq), action);
    }

    /// Schedules patient `p`'s routine between `from` and `until` (one local day).
    fn plan_day(&mut self, p: usize, from: DateTime<Utc>, until: DateTime<Utc>) {
        let day = until.with_timezone(&china()).date_naive() - TimeDelta::days(1);
        let patient = &self.patients[p];
        let mut plan: Vec<(f64, Routine)> = Vec::new();
        let hypertensive = patient.has(Condition::Hypertension);
        if patient.device(DeviceKind::BpCuff).is_some() {
            plan.push((7.0, Routine::Bp));
            if hypertensive {
                plan.push((20.5, Routine::Bp));
            }
        }
        if patient.device(DeviceKind::Glucometer).is_some() {
            plan.push((6.6, Routine::Glucose(MealContext::Fasting)));
            plan.push((9.5, Routine::Glucose(MealContext::Postprandial)));
            plan.push((21.8, Routine::Glucose(MealContext::Bedtime)));
            if patient.has(Condition::InsulinTreated) {
                plan.push((3.0, Routine::Glucose(MealContext::Night)));
            }
        }
        if patient.device(DeviceKind::Scale).is_some() {
            plan.push((7.3, Routine::Weight));
        }
        if patient.device(DeviceKind::Oximeter).is_some() {
            plan.push((8.0, Routine::Spo2));
            plan.push((19.0, Routine::Spo2));
        }
        if patient.device(DeviceKind::Thermometer).is_some() {
            plan.push((15.0, Routine::Temperature));
        }
        if patient.device(DeviceKind::EcgPatch).is_some() {
            plan.extend((0..8).map(|k| (1.5 + 3.0 * f64::from(k), Routine::EcgStrip)));
        }
        if p == 0 {
            plan.push((18.0, Routine::GuestBp));
        }
        for (hour, what) in plan {
            // Nobody measures at exactly the same minute every day.
            let jitter = self.rng.normal(0.0, 0.25).clamp(-0.75, 0.75);
            let at = local_instant(day, hour + jitter);
            if at >= from && at < until {
                self.schedule(at, Action::Routine { patient: p, what });
            }
        }
    }

    fn run(&mut self, at: DateTime<Utc>, action: Action, out: &mut Vec<Publish>) {
        match action {
            Action::PlanDay { patient } => {
                let next = next_local_midnight(at + TimeDelta::minutes(1));
                self.plan_day(patient, at, next);
                self.schedule(next, Action::PlanDay { patient });
            }
            Action::Routine { patient, what } => {
                if let Some(p) = self.routine(patient, what, at) {
                    out.push(p);
                }
            }
            Action::Incident => {
                if let Some(every) = self.config.incident_every {
                    // Roughly regular, never two at once.
                    let jitter = every.num_seconds() as f64 * self.rng.range(-0.3, 0.3);
                    self.schedule(
                        at + every + TimeDelta::seconds(jitter as i64),
                        Action::Incident,
                    );
                }
                for _ in 0..INCIDENTS.len() {
                    let kind = INCIDENTS[self.next_incident % INCIDENTS.len()];
                    self.next_incident += 1;
                    if let Some(p) = self.incident(kind, at) {
                        out.push(p);
                        break;
                    }
                }
            }
            Action::BpSession {
                patient,
                systolic,
                diastolic,
                label,
            } => {
                let readings = self.bp_session(patient, at, systolic, diastolic, vec![]);
                out.push(self.envelope(patient, at, readings, Some(label)));
            }
            Action::Glucose {
                patient,
                value,
                label,
            } => {
                if let Some(d) = self.patients[patient].device(DeviceKind::Glucometer) {
                    let r = self.glucose_reading(
                        patient,
                        d,
                        at,
                        Some(value),
                        None,
                        MealContext::Random,
                    );
                    let readings = vec![(r, Expect::Stored)];
                    out.push(self.envelope(patient, at, readings, Some(label)));
                }
            }
        }
    }

    fn routine(&mut self, p: usize, what: Routine, at: DateTime<Utc>) -> Option<Publish> {
        let hour = local_hour(at);
        let b = self.patients[p].baseline.clone();
        let mut label = None;
        let readings = match what {
            Routine::Bp => {
                // Morning surge, evening dip.
                let surge = if (5.0..10.0).contains(&hour) {
                    self.rng.range(6.0, 14.0)
                } else {
                    -4.0
                };
                let s = b.systolic + surge + self.rng.normal(0.0, 6.0);
                let d = b.diastolic + surge / 3.0 + self.rng.normal(0.0, 4.0);
                self.bp_session(p, at, s.clamp(85.0, 176.0), d.clamp(50.0, 106.0), vec![])
            }
            Routine::GuestBp => {
                let mut guest = self.guest.clone();
                let m = bp(
                    self.rng.normal(128.0, 8.0),
                    self.rng.normal(80.0, 5.0),
                    self.rng.normal(72.0, 5.0),
                );
                let r = reading(&mut guest, at, m);
                self.guest = guest;
                vec![(r, Expect::Quarantined(QuarantineReason::UnassignedDevice))]
            }
            Routine::Glucose(context) => {
                let d = self.patients[p].device(DeviceKind::Glucometer)?;
                let base = b.fasting_glucose;
                let v = match context {
                    MealContext::Postprandial => base + self.rng.range(2.0, 4.5),
                    MealContext::Bedtime => base + self.rng.range(0.5, 2.0),
                    MealContext::Night => base - self.rng.range(0.5, 1.5),
                    _ => base + self.rng.normal(0.0, 0.5),
                };
                let mut v = v.clamp(4.2, 16.0);
                // Insulin at bedtime, no snack: some nights end low.
                if context == MealContext::Night && self.rng.chance(0.15) {
                    v = self.rng.range(2.6, 3.8);
                    label = Some("hypoglycaemia at night (the 03:00 check)");
                }
                let r = self.glucose_reading(p, d, at, Some(v), None, context);
                vec![(r, Expect::Stored)]
            }
            Routine::Weight => {
                let d = self.patients[p].device(DeviceKind::Scale)?;
                // Heart failure: a slow upward drift (fluid), reset by the next visit.
                if self.patients[p].has(Condition::HeartFailure) {
                    self.patients[p].baseline.weight_kg += self.rng.range(-0.05, 0.15);
                }
                let kg = self.patients[p].baseline.weight_kg + self.rng.normal(0.0, 0.2);
                let dev = &mut self.patients[p].devices[d];
                let m = Measurement::Weight(match dev.unit {
                    DisplayUnit::Jin => Weight {
                        value: round1(kg * 2.0),
                        unit: WeightUnit::Jin,
                    },
                    _ => Weight {
                        value: round1(kg),
                        unit: WeightUnit::Kg,
                    },
                });
                vec![(reading(dev, at, m), Expect::Stored)]
            }
            Routine::Spo2 => {
                let v = (b.spo2 + self.rng.normal(0.0, 1.0)).round();
                let copd = self.patients[p].has(Condition::Copd);
                let v = if copd {
                    v.clamp(88.0, 94.0)
                } else {
                    v.clamp(94.0, 99.0)
                };
                let pr = (b.pulse + self.rng.normal(0.0, 4.0)).round();
                let r = self.spo2_reading(p, at, v, pr, SignalQuality::Good)?;
                vec![(r, Expect::Stored)]
            }
            Routine::Temperature => {
                let c = (b.temperature + self.rng.normal(0.0, 0.15)).clamp(35.9, 37.1);
                let r = self.temperature_reading(p, at, c)?;
                vec![(r, Expect::Stored)]
            }
            Routine::EcgStrip => {
                let d = self.patients[p].device(DeviceKind::EcgPatch)?;
                let offset = self.rng.range(0.0, 290.0);
                let hr = (b.pulse + self.rng.normal(0.0, 3.0)).round();
                let dev = &mut self.patients[p].devices[d];
                // `time` is the first sample's: the strip ends as it is sent.
                let strip = reading(
                    dev,
                    at - TimeDelta::seconds(10),
                    Measurement::EcgWaveform(EcgWaveform {
                        sample_rate_hz: 130.0,
                        leads: EcgLeads::Single {
                            lead: "II".to_owned(),
                            samples_uv: ecg::strip(offset, 10.0, 130.0),
                        },
                        unit: VoltageUnit::MicroVolt,
                    }),
                );
                let rate = reading(
                    dev,
                    at,
                    Measurement::HeartRate(HeartRate {
                        value: hr,
                        source: Some(HrSource::EcgPatch),
                        activity: Some(Activity::Rest),
                        rr_intervals_ms: None,
                        unit: RateUnit::PerMin,
                    }),
                );
                vec![(strip, Expect::Stored), (rate, Expect::Stored)]
            }
        };
        Some(self.envelope(p, at, readings, label))
    }

    /// Picks a patient for `kind` and returns its envelope; `None` if no patient fits.
    fn incident(&mut self, kind: Incident, at: DateTime<Utc>) -> Option<Publish> {
        let fits = |p: &SimPatient| match kind {
            Incident::BpCrisis | Incident::ImplausibleBp => {
                p.has(Condition::Hypertension) && p.device(DeviceKind::BpCuff).is_some()
            }
            Incident::Hypotension => {
                p.device(DeviceKind::BpCuff).is_some()
                    && (!p.has(Condition::Hypertension) || p.has(Condition::HeartFailure))
            }
            Incident::Hypoglycaemia
            | Incident::GlucoseUnitTrap
            | Incident::ClockReset
            | Incident::MemoryReread => {
                p.device(DeviceKind::Glucometer).is_some()
                    && (kind != Incident::MemoryReread || !p.recent_glucose.is_empty())
                    && (kind != Incident::GlucoseUnitTrap
                        || p.devices.iter().any(|d| {
                            d.kind == DeviceKind::Glucometer && d.unit == DisplayUnit::Canonical
                        }))
            }
            Incident::LowSpo2 | Incident::PoorSignal => p.device(DeviceKind::Oximeter).is_some(),
            Incident::Fever => p.device(DeviceKind::Thermometer).is_some(),
            Incident::Tachycardia => p.device(DeviceKind::EcgPatch).is_some(),
            Incident::AtrialFibrillation => {
                p.device(DeviceKind::EcgPatch).is_some() && !p.has(Condition::AtrialFibrillation)
            }
        };
        let candidates: Vec<usize> = (0..self.patients.len())
            .filter(|&i| fits(&self.patients[i]))
            .collect();
        if candidates.is_empty() {
            return None;
        }
        let p = candidates[self.rng.below(candidates.len())];
        let (readings, label): (Vec<(Reading, Expect)>, &'static str) = match kind {
            Incident::BpCrisis => {
                let s = self.rng.range(182.0, 198.0);
                let d = self.rng.range(100.0, 118.0);
                // Some patients feel it (a red-flag symptom); all re-measure, and the
                // second session confirms.
                let symptoms = if self.rng.chance(0.3) {
                    vec![Symptom::SevereHeadacheOrDizziness]
                } else {
                    vec![]
                };
                let again = at + TimeDelta::minutes(self.rng.range(7.0, 20.0) as i64);
                let (s2, d2) = (s - self.rng.range(0.0, 6.0), d - self.rng.range(0.0, 4.0));
                self.schedule(
                    again,
                    Action::BpSession {
                        patient: p,
                        systolic: s2,
                        diastolic: d2,
                        label: "hypertensive crisis, confirmed by a second session",
                    },
                );
                (
                    self.bp_session(p, at, s, d, symptoms),
                    "hypertensive crisis (≥180/110)",
                )
            }
            Incident::Hypotension => {
                let s = self.rng.range(78.0, 88.0);
                let d = self.rng.range(45.0, 55.0);
                let again = at + TimeDelta::minutes(self.rng.range(8.0, 20.0) as i64);
                self.schedule(
                    again,
                    Action::BpSession {
                        patient: p,
                        systolic: s + 2.0,
                        diastolic: d + 1.0,
                        label: "hypotension, confirmed by a second session",
                    },
                );
                (
                    self.bp_session(p, at, s, d, vec![]),
                    "hypotension (SBP <90)",
                )
            }
            Incident::ImplausibleBp => {
                let d = self.patients[p].device(DeviceKind::BpCuff)?;
                let dev = &mut self.patients[p].devices[d];
                let m = bp(310.0, 96.0, 70.0);
                (
                    vec![(
                        reading(dev, at, m),
                        Expect::Quarantined(QuarantineReason::OutOfRange),
                    )],
                    "a cuff error: systolic 310 mmHg (quarantined)",
                )
            }
            Incident::Hypoglycaemia => {
                let d = self.patients[p].device(DeviceKind::Glucometer)?;
                let (value, flag) = if self.rng.chance(0.2) {
                    (None, Some(GlucoseFlag::Lo))
                } else {
                    (Some(self.rng.range(2.4, 3.8)), None)
                };
                let night = !(6.0..22.0).contains(&local_hour(at));
                let context = if night {
                    MealContext::Night
                } else {
                    MealContext::Random
                };
                let r = self.glucose_reading(p, d, at, value, flag, context);
                // Treated: 15 g of sugar, re-checked 15 minutes later.
                let value = self.rng.range(4.6, 6.0);
                self.schedule(
                    at + TimeDelta::minutes(15),
                    Action::Glucose {
                        patient: p,
                        value,
                        label: "glucose re-checked after treating a hypo",
                    },
                );
                (
                    vec![(r, Expect::Stored)],
                    if night {
                        "hypoglycaemia at night (≤3.9 mmol/L or LO)"
                    } else {
                        "hypoglycaemia (≤3.9 mmol/L or LO)"
                    },
                )
            }
            Incident::GlucoseUnitTrap => {
                let d = self.patients[p].devices.iter().position(|d| {
                    d.kind == DeviceKind::Glucometer && d.unit == DisplayUnit::Canonical
                })?;
                let dev = &mut self.patients[p].devices[d];
                let seq = dev.next_record;
                dev.next_record += 1;
                let mut r = reading(
                    dev,
                    at,
                    Measurement::Glucose(Glucose {
                        value: Some(5.4),
                        flag: None,
                        context: Some(MealContext::Random),
                        sample_type: None,
                        unit: GlucoseUnit::MgPerDl,
                    }),
                );
                r.record_seq = Some(seq);
                (
                    vec![(r, Expect::Quarantined(QuarantineReason::UnitSuspect))],
                    "a glucose of 5.4 labelled mg/dL (unit suspect, quarantined)",
                )
            }
            Incident::ClockReset => {
                let d = self.patients[p].device(DeviceKind::Glucometer)?;
                let reset = china()
                    .with_ymd_and_hms(2000, 1, 1, 8, 0, 0)
                    .single()?
                    .with_timezone(&Utc)
                    + TimeDelta::seconds(self.rng.below(86_400) as i64);
                let mut r = self.glucose_reading(p, d, at, Some(6.1), None, MealContext::Random);
                r.time = reset.with_timezone(&china());
                r.device_time = Some(reset.with_timezone(&china()).naive_local());
                (
                    vec![(r, Expect::Quarantined(QuarantineReason::InvalidTimestamp))],
                    "a glucometer whose clock reset to 2000-01-01 (quarantined)",
                )
            }
            Incident::MemoryReread => {
                let again: Vec<(Reading, Expect)> = self.patients[p]
                    .recent_glucose
                    .iter()
                    .map(|r| (r.clone(), Expect::Duplicate))
                    .collect();
                (again, "a glucometer's memory read again (duplicates)")
            }
            Incident::LowSpo2 => {
                let copd = self.patients[p].has(Condition::Copd);
                let v = if copd {
                    self.rng.range(80.0, 84.0)
                } else {
                    self.rng.range(85.0, 91.0)
                }
                .round();
                let pr = (self.patients[p].baseline.pulse + 15.0).round();
                let r = self.spo2_reading(p, at, v, pr, SignalQuality::Good)?;
                (vec![(r, Expect::Stored)], "low SpO2")
            }
            Incident::PoorSignal => {
                let r = self.spo2_reading(p, at, 84.0, 80.0, SignalQuality::Poor)?;
                (
                    vec![(r, Expect::Quarantined(QuarantineReason::LowSignalQuality))],
                    "an oximeter with poor signal (quarantined, re-measure)",
                )
            }
            Incident::Fever => {
                let c = self.rng.range(38.2, 39.8);
                let r = self.temperature_reading(p, at, c)?;
                (vec![(r, Expect::Stored)], "fever")
            }
            Incident::Tachycardia => {
                let d = self.patients[p].device(DeviceKind::EcgPatch)?;
                let dev = &mut self.patients[p].devices[d];
                let m = Measurement::HeartRate(HeartRate {
                    value: self.rng.range(124.0, 142.0).round(),
                    source: Some(HrSource::EcgPatch),
                    activity: Some(Activity::Rest),
                    rr_intervals_ms: None,
                    unit: RateUnit::PerMin,
                });
                (
                    vec![(reading(dev, at, m), Expect::Stored)],
                    "tachycardia at rest",
                )
            }
            Incident::AtrialFibrillation => {
                let d = self.patients[p].device(DeviceKind::EcgPatch)?;
                let dev = &mut self.patients[p].devices[d];
                let m = Measurement::Ecg(EcgSummary {
                    finding: EcgFinding::AtrialFibrillation,
                    ventricular_rate: Some(self.rng.range(105.0, 140.0).round()),
                    duration_s: Some(self.rng.range(60.0, 900.0).round()),
                    longest_rr_s: Some(1.4),
                    lead_config: Some(LeadConfig::SingleLead),
                });
                (
                    vec![(reading(dev, at, m), Expect::Stored)],
                    "new atrial fibrillation on an ECG patch",
                )
            }
        };
        if readings.is_empty() {
            return None;
        }
        Some(self.envelope(p, at, readings, Some(label)))
    }

    /// Two readings a minute apart, the second at `at` (a session, as the guidelines
    /// ask).
    fn bp_session(
        &mut self,
        p: usize,
        at: DateTime<Utc>,
        systolic: f64,
        diastolic: f64,
        symptoms: Vec<Symptom>,
    ) -> Vec<(Reading, Expect)> {
        let Some(d) = self.patients[p].device(DeviceKind::BpCuff) else {
            return vec![];
        };
        let pulse = self.patients[p].baseline.pulse;
        (0..2)
            .map(|k| {
                let s = systolic + self.rng.normal(0.0, 2.0);
                let dia = (diastolic + self.rng.normal(0.0, 1.5)).min(s - 20.0);
                let m = bp(s, dia, pulse + self.rng.normal(0.0, 3.0));
                let dev = &mut self.patients[p].devices[d];
                let mut r = reading(dev, at - TimeDelta::seconds(70 * (1 - k)), m);
                r.symptoms.clone_from(&symptoms);
                (r, Expect::Stored)
            })
            .collect()
    }

    fn glucose_reading(
        &mut self,
        p: usize,
        d: usize,
        at: DateTime<Utc>,
        mmol: Option<f64>,
        flag: Option<GlucoseFlag>,
        context: MealContext,
    ) -> Reading {
        let dev = &mut self.patients[p].devices[d];
        let (value, unit) = match (mmol, dev.unit) {
            (Some(v), DisplayUnit::MgPerDl) => (Some((v * 18.0).round()), GlucoseUnit::MgPerDl),
            (Some(v), _) => (Some(round1(v)), GlucoseUnit::MmolPerL),
            (None, DisplayUnit::MgPerDl) => (None, GlucoseUnit::MgPerDl),
            (None, _) => (None, GlucoseUnit::MmolPerL),
        };
        let seq = dev.next_record;
        dev.next_record += 1;
        let mut r = reading(
            dev,
            at,
            Measurement::Glucose(Glucose {
                value,
                flag,
                context: Some(context),
                sample_type: Some("capillary".to_owned()),
                unit,
            }),
        );
        r.record_seq = Some(seq);
        r
    }

    fn spo2_reading(
        &mut self,
        p: usize,
        at: DateTime<Utc>,
        value: f64,
        pulse_rate: f64,
        quality: SignalQuality,
    ) -> Option<Reading> {
        let d = self.patients[p].device(DeviceKind::Oximeter)?;
        let dev = &mut self.patients[p].devices[d];
        Some(reading(
            dev,
            at,
            Measurement::Spo2(Spo2 {
                value,
                pulse_rate: Some(pulse_rate),
                signal_quality: Some(quality),
                perfusion_index: Some(if quality == SignalQuality::Poor {
                    0.2
                } else {
                    3.1
                }),
                unit: PercentUnit::Percent,
            }),
        ))
    }

    fn temperature_reading(
        &mut self,
        p: usize,
        at: DateTime<Utc>,
        celsius: f64,
    ) -> Option<Reading> {
        let d = self.patients[p].device(DeviceKind::Thermometer)?;
        let dev = &mut self.patients[p].devices[d];
        let t = match dev.unit {
            DisplayUnit::Fahrenheit => Temperature {
                value: round1(celsius * 9.0 / 5.0 + 32.0),
                site: None,
                unit: TemperatureUnit::DegF,
            },
            _ => Temperature {
                value: round1(celsius),
                site: None,
                unit: TemperatureUnit::Cel,
            },
        };
        Some(reading(dev, at, Measurement::Temperature(t)))
    }

    /// Wraps readings in the gateway's next envelope; remembers stored glucose readings
    /// for a later memory re-read.
    fn envelope(
        &mut self,
        p: usize,
        at: DateTime<Utc>,
        readings: Vec<(Reading, Expect)>,
        incident: Option<&'static str>,
    ) -> Publish {
        let patient = &mut self.patients[p];
        for (r, e) in &readings {
            if *e == Expect::Stored && matches!(r.measurement, Measurement::Glucose(_)) {
                patient.recent_glucose.push_back(r.clone());
                if patient.recent_glucose.len() > 3 {
                    patient.recent_glucose.pop_front();
                }
            }
        }
        let batch_seq = patient.next_batch;
        patient.next_batch += 1;
        // A session's second reading is a minute later: the envelope leaves after it.
        let sent = readings
            .iter()
            .map(|(r, _)| r.time.with_timezone(&Utc))
            .filter(|t| *t > at)
            .max()
            .unwrap_or(at);
        let (readings, expect) = readings.into_iter().unzip();
        Publish {
            envelope: Envelope {
                gateway_id: patient.gateway.clone(),
                batch_seq,
                sent_at: sent.with_timezone(&china()),
                readings,
            },
            expect,
            incident,
        }
    }

    /// The registry of this fleet (TOML, `docs/registry.md`): a hub hospital and two
    /// community health centres, their family doctors, an on-call specialist, a duty
    /// desk, and every patient, gateway, device and assignment. The visiting
    /// relative's cuff is registered on the first gateway but assigned to nobody.
    pub fn registry_toml(&self) -> String {
        use std::fmt::Write as _;
        let tz = china();
        let from = self.enrolled.with_timezone(&tz).to_rfc3339();
        let to = (self.enrolled + TimeDelta::days(3 * 366))
            .with_timezone(&tz)
            .to_rfc3339();
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# The registry of Vigil's simulated demo fleet (generated; seed {}).\n\
             # Pseudonymous ids only; staff have display names.\n\n\
             [consortium]\nid = \"demo-consortium\"\nduty_desk = \"d-duty-01\"\n\n\
             [[institution]]\nid = \"hub-demo\"\ntier = \"hub\"\nname = \"Demo hub hospital\"\ntimezone = \"Asia/Shanghai\"\n",
            self.config.seed
        );
        for c in COMMUNITIES {
            let _ = writeln!(
                s,
                "[[institution]]\nid = \"{c}\"\ntier = \"community\"\nhub = \"hub-demo\"\nname = \"Demo community health centre ({})\"\ntimezone = \"Asia/Shanghai\"\n",
                &c[4..]
            );
        }
        let _ = writeln!(
            s,
            "[[doctor]]\nid = \"d-duty-01\"\nname = \"Duty desk\"\ninstitution = \"hub-demo\"\nroles = [\"duty_desk\"]\n\n\
             [[doctor]]\nid = \"d-spec-01\"\nname = \"Dr. Li (cardiology, on call)\"\ninstitution = \"hub-demo\"\nroles = [\"specialist\", \"on_call\"]\n\n\
             [[on_call]]\ninstitution = \"hub-demo\"\ndoctor = \"d-spec-01\"\nfrom = \"{from}\"\nto = \"{to}\"\n"
        );
        let doctors = self.patients.len().div_ceil(PATIENTS_PER_DOCTOR);
        for k in 0..doctors {
            let _ = writeln!(
                s,
                "[[doctor]]\nid = \"{}\"\nname = \"Dr. {} (family doctor)\"\ninstitution = \"{}\"\nroles = [\"family_doctor\"]\n",
                doctor_id(k),
                FAMILY_NAMES[k % FAMILY_NAMES.len()],
                COMMUNITIES[k % COMMUNITIES.len()]
            );
        }
        for p in &self.patients {
            let conditions: Vec<String> = p.conditions.iter().map(|c| format!("\"{c}\"")).collect();
            let _ = writeln!(
                s,
                "[[patient]]\nid = \"{}\"\ninstitution = \"{}\"\nconditions = [{}]\nage = {}\ncare_team = {{ responsible = \"{}\", specialist = \"d-spec-01\" }}\n\n\
                 [[gateway]]\nid = \"{}\"\npatient = \"{}\"\n",
                p.id,
                p.institution,
                conditions.join(", "),
                p.age,
                p.doctor,
                p.gateway,
                p.id
            );
            for d in &p.devices {
                device_toml(&mut s, &d.id, d.kind, &p.gateway, &from);
                let _ = writeln!(
                    s,
                    "[[assignment]]\ndevice = \"{}\"\npatient = \"{}\"\nfrom = \"{from}\"\n",
                    d.id, p.id
                );
            }
        }
        if let Some(first) = self.patients.first() {
            device_toml(
                &mut s,
                &self.guest.id,
                self.guest.kind,
                &first.gateway,
                &from,
            );
        }
        s
    }
}

fn device_toml(s: &mut String, id: &DeviceId, kind: DeviceKind, gateway: &GatewayId, from: &str) {
    use std::fmt::Write as _;
    let types: Vec<String> = kind.types().iter().map(|t| format!("\"{t}\"")).collect();
    let _ = writeln!(
        s,
        "[[device]]\nid = \"{id}\"\ntypes = [{}]\ngateway = \"{gateway}\"\nregistered = \"{from}\"\n",
        types.join(", ")
    );
}

const FAMILY_NAMES: [&str; 8] = [
    "Chen", "Wang", "Zhang", "Liu", "Yang", "Zhao", "Huang", "Zhou",
];

fn doctor_id(k: usize) -> String {
    format!("d-fam-{:02}", k + 1)
}

/// A generated id; the formats used here always follow the id grammar.
fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().expect("generated ids follow the id grammar")
}

/// Who the `i`th patient is: a mix that gives every device kind and every incident a
/// patient in any fleet of eight or more.
fn make_patient(i: usize, kit: usize, rng: &mut Rng) -> SimPatient {
    use Condition as C;
    use DeviceKind as K;
    let n = i + 1;
    let (conditions, kinds): (Vec<Condition>, Vec<DeviceKind>) = match i % 8 {
        0 => (
            vec![C::Hypertension, C::Type2Diabetes, C::InsulinTreated],
            vec![K::BpCuff, K::Glucometer, K::Thermometer],
        ),
        1 => (vec![C::Hypertension], vec![K::BpCuff, K::Thermometer]),
        2 => (vec![C::Type2Diabetes], vec![K::Glucometer, K::Thermometer]),
        3 => (
            vec![C::Hypertension, C::HeartFailure],
            vec![K::BpCuff, K::Scale, K::Oximeter],
        ),
        4 => (
            vec![C::Copd, C::Hypertension],
            vec![K::Oximeter, K::BpCuff, K::Thermometer],
        ),
        5 => (
            vec![C::PostDischargeCardiac, C::CoronaryHeartDisease],
            vec![K::EcgPatch, K::BpCuff, K::Oximeter],
        ),
        6 => (
            vec![C::Hypertension, C::Type2Diabetes],
            vec![K::BpCuff, K::Glucometer],
        ),
        _ => (
            vec![C::AtrialFibrillation, C::Hypertension],
            vec![K::EcgPatch, K::BpCuff, K::Scale],
        ),
    };
    let devices = kinds
        .into_iter()
        .take(kit)
        .map(|kind| {
            // Some homes have devices that display other units (all legitimate).
            let unit = match kind {
                K::Glucometer if i % 16 == 2 => DisplayUnit::MgPerDl,
                K::Thermometer if i % 16 == 4 => DisplayUnit::Fahrenheit,
                K::Scale if i % 16 == 11 => DisplayUnit::Jin,
                _ => DisplayUnit::Canonical,
            };
            SimDevice {
                id: id(&format!("{}-{n:04}", kind.prefix())),
                kind,
                unit,
                next_record: 1,
                last_second: BTreeMap::new(),
            }
        })
        .collect();
    let hypertensive = conditions.contains(&C::Hypertension);
    let baseline = Baseline {
        systolic: if hypertensive {
            rng.range(136.0, 160.0)
        } else {
            rng.range(112.0, 130.0)
        },
        diastolic: if hypertensive {
            rng.range(82.0, 96.0)
        } else {
            rng.range(68.0, 80.0)
        },
        pulse: rng.range(62.0, 84.0),
        fasting_glucose: rng.range(5.6, 8.4),
        spo2: if conditions.contains(&C::Copd) {
            rng.range(89.0, 93.0)
        } else {
            rng.range(95.0, 98.5)
        },
        temperature: rng.range(36.2, 36.8),
        weight_kg: rng.range(50.0, 88.0),
    };
    SimPatient {
        id: id(&format!("p-{n:04}")),
        gateway: id(&format!("gw-{n:04}")),
        conditions,
        age: 45 + rng.below(40) as u32,
        institution: COMMUNITIES[(i / PATIENTS_PER_DOCTOR) % COMMUNITIES.len()],
        doctor: doctor_id(i / PATIENTS_PER_DOCTOR),
        devices,
        baseline,
        next_batch: 1,
        recent_glucose: VecDeque::new(),
    }
}

fn bp(systolic: f64, diastolic: f64, pulse: f64) -> Measurement {
    Measurement::Bp(BloodPressure {
        systolic: systolic.round(),
        diastolic: diastolic.round(),
        mean: None,
        pulse: Some(pulse.round()),
        unit: PressureUnit::MmHg,
    })
}

/// A reading of `dev` at `at` (whole seconds, China time). A device never has two
/// readings of one type in one second: a second one moves to the next free second.
fn reading(dev: &mut SimDevice, at: DateTime<Utc>, measurement: Measurement) -> Reading {
    let last = dev
        .last_second
        .entry(measurement.reading_type())
        .or_insert(i64::MIN);
    let second = at.timestamp().max(last.saturating_add(1));
    *last = second;
    let t = DateTime::from_timestamp(second, 0)
        .unwrap_or(at)
        .with_timezone(&china());
    Reading {
        device_id: dev.id.clone(),
        record_seq: None,
        time: t,
        device_time: dev.kind.has_clock().then(|| t.naive_local()),
        measurement,
        status: vec![],
        symptoms: vec![],
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// The local hour of day as a fraction (7.5 = 07:30).
fn local_hour(t: DateTime<Utc>) -> f64 {
    let l = t.with_timezone(&china());
    f64::from(chrono::Timelike::num_seconds_from_midnight(&l)) / 3600.0
}

/// The instant at `hour` (fractional) of local `day`.
fn local_instant(day: NaiveDate, hour: f64) -> DateTime<Utc> {
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    let local = midnight + TimeDelta::seconds((hour * 3600.0) as i64);
    china()
        .from_local_datetime(&local)
        .single()
        .map_or(DateTime::<Utc>::MIN_UTC, |t| t.with_timezone(&Utc))
}

/// The first local midnight strictly after `t`.
fn next_local_midnight(t: DateTime<Utc>) -> DateTime<Utc> {
    let day = t.with_timezone(&china()).date_naive() + TimeDelta::days(1);
    local_instant(day, 0.0)
}
