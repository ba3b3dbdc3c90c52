//! The registry: who is who in a consortium (`spec/registry.md`).
//!
//! Institutions (tier, time zone, escalation minutes, quiet hours, the hub their
//! level-2 escalations go to), doctors and their channels, on-call windows, patients
//! (conditions, care team, overrides), gateways, devices and the assignments that say
//! which patient a device measured, and when.
//!
//! A file is TOML or JSON of the same structure, loaded with [`Registry::parse`].
//! Loading checks the structure first (unknown keys are errors: a typo must not
//! silently drop a setting), then every cross-reference and invariant, and reports
//! **every** problem at once ([`LoadError`]). A [`Registry`] value is therefore always
//! consistent: every id it mentions resolves, assignments of a device never overlap,
//! time zones are real IANA zones.
//!
//! Ids are pseudonymous; patients have no names. Staff have display names.
//!
//! Per-patient overrides are parsed here and kept as written; whether the clinical
//! rules allow one (`clinical/rules.md` §0.4) is decided by the rule engine, which
//! refuses a forbidden override with a reason and applies the rest.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use vigil_model::vocab::{Condition, ReadingType};
use vigil_model::{DeviceId, DoctorId, GatewayId, InstitutionId, PatientId};

/// The default escalation ladder, in minutes (`clinical/rules.md` §0.10).
pub const DEFAULT_ESCALATION: EscalationMinutes = EscalationMinutes {
    critical_l2: 15,
    critical_l3: 30,
    high_l2: 60,
};

/// What an institution is in the consortium.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Hub,
    Secondary,
    Community,
}

/// What a staff member does; decides what they may see and receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    FamilyDoctor,
    Specialist,
    OnCall,
    DutyDesk,
    Admin,
}

/// Minutes after an episode opens at which it escalates if nobody acknowledged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationMinutes {
    pub critical_l2: u32,
    pub critical_l3: u32,
    pub high_l2: u32,
}

/// Local hours in which MEDIUM/LOW alerts are held until `end` (default 22:00–08:00).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consortium {
    /// The consortium's id (same grammar as every id).
    pub id: String,
    /// Level 3 of every escalation.
    pub duty_desk: DoctorId,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Institution {
    pub id: InstitutionId,
    pub tier: Tier,
    pub name: String,
    pub timezone: Tz,
    pub escalation: EscalationMinutes,
    pub quiet_hours: QuietHours,
    /// Where level-2 escalations go; `None` for a hub (it is its own).
    pub hub: Option<InstitutionId>,
}

/// How a doctor receives alerts.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Channels {
    /// The doctor's MQTT topic `vigil/v1/doctor/{id}/alerts`.
    #[serde(default = "yes")]
    pub mqtt: bool,
    /// The dashboard's live stream.
    #[serde(default = "yes")]
    pub sse: bool,
    /// An HTTPS endpoint that receives alert events.
    #[serde(default)]
    pub webhook: Option<String>,
    /// The body the webhook takes: Vigil's signed alert event, or a WeCom or DingTalk
    /// group robot's markdown message.
    #[serde(default)]
    pub webhook_format: WebhookFormat,
}

/// The body a doctor's webhook receives (`docs/webhooks.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The `vigil.alert.v1` event as JSON, signed in the `X-Vigil-Signature` header.
    #[default]
    Vigil,
    /// A WeCom (企业微信) group robot: `{"msgtype":"markdown",...}`.
    Wecom,
    /// A DingTalk (钉钉) group robot: markdown, signed in the URL (加签).
    Dingtalk,
}

impl WebhookFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Vigil => "vigil",
            WebhookFormat::Wecom => "wecom",
            WebhookFormat::Dingtalk => "dingtalk",
        }
    }
}

fn yes() -> bool {
    true
}

impl Default for Channels {
    fn default() -> Self {
        Channels {
            mqtt: true,
            sse: true,
            webhook: None,
            webhook_format: WebhookFormat::Vigil,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Doctor {
    pub id: DoctorId,
    /// Display name (staff only; patients have none).
    pub name: String,
    pub institution: InstitutionId,
    pub roles: Vec<Role>,
    pub channels: Channels,
}

/// A doctor on call for an institution over `[from, to)`.
#[derive(Debug, Clone, PartialEq)]
pub struct OnCall {
    pub institution: InstitutionId,
    pub doctor: DoctorId,
    pub from: DateTime<FixedOffset>,
    pub to: DateTime<FixedOffset>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CareTeam {
    /// Level 1: the family doctor who receives the patient's alerts first.
    pub responsible: DoctorId,
    /// Level 2 when the hub has nobody on call.
    #[serde(default)]
    pub specialist: Option<DoctorId>,
}

/// A doctor's per-patient setting for one rule, as written. Which of these a rule
/// accepts is the rule engine's decision (`clinical/rules.md` §0.4).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Override {
    #[serde(default)]
    pub below: Option<f64>,
    #[serde(default)]
    pub above: Option<f64>,
    #[serde(default)]
    pub systolic: Option<f64>,
    #[serde(default)]
    pub diastolic: Option<f64>,
    #[serde(default)]
    pub kg: Option<f64>,
    /// Snoozes the rule until then (MEDIUM/LOW rules, at most 7 days).
    #[serde(default)]
    pub snooze_until: Option<DateTime<FixedOffset>>,
    /// Who set it.
    #[serde(default)]
    pub by: Option<DoctorId>,
    #[serde(default)]
    pub reason: Option<String>,
    /// Open-ended when absent.
    #[serde(default)]
    pub until: Option<DateTime<FixedOffset>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Patient {
    pub id: PatientId,
    pub institution: InstitutionId,
    pub conditions: Vec<Condition>,
    pub age: Option<u8>,
    /// The patient's own zone, if it differs from the institution's.
    pub timezone: Option<Tz>,
    /// 1 (default) or 2 (hypercapnic risk); 2 when conditions include COPD and unset.
    pub spo2_scale: u8,
    pub medications: Vec<String>,
    pub care_team: CareTeam,
    /// Prescribed monitoring per measurement (`bp = "2/day"`); free text for now.
    pub care_plan: BTreeMap<String, String>,
    pub overrides: BTreeMap<String, Override>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    pub id: GatewayId,
    /// The household's patient, when the gateway serves one.
    pub patient: Option<PatientId>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub id: DeviceId,
    pub types: Vec<ReadingType>,
    /// The only gateway allowed to publish this device's readings.
    pub gateway: GatewayId,
    /// Readings measured before this are invalid (a reset clock).
    pub registered: DateTime<FixedOffset>,
}

/// A device measures a patient over `[from, to)`; open-ended without `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    pub device: DeviceId,
    pub patient: PatientId,
    pub from: DateTime<FixedOffset>,
    pub to: Option<DateTime<FixedOffset>>,
}

impl Assignment {
    /// Whether this assignment covers the instant.
    pub fn covers(&self, t: DateTime<Utc>) -> bool {
        self.from <= t && self.to.is_none_or(|to| t < to)
    }
}

/// A patient referred to a doctor (a specialist, a hub's clinic) over `[from, until)`;
/// open-ended without `until`. While open, the doctor has a care relationship with the
/// patient (reads their data through the API).
#[derive(Debug, Clone, PartialEq)]
pub struct Referral {
    pub patient: PatientId,
    pub to: DoctorId,
    pub from: DateTime<FixedOffset>,
    pub until: Option<DateTime<FixedOffset>>,
    /// Who referred (a doctor of the care team), and why.
    pub by: Option<DoctorId>,
    pub reason: Option<String>,
}

impl Referral {
    /// Whether the referral is open at the instant.
    pub fn open_at(&self, t: DateTime<Utc>) -> bool {
        self.from <= t && self.until.is_none_or(|u| t < u)
    }
}

/// A consistent registry: every id resolves, nothing overlaps.
#[derive(Debug, Clone, PartialEq)]
pub struct Registry {
    pub consortium: Consortium,
    pub institutions: IdMap<Institution>,
    pub doctors: IdMap<Doctor>,
    pub on_call: Vec<OnCall>,
    pub patients: IdMap<Patient>,
    pub gateways: IdMap<Gateway>,
    pub devices: IdMap<Device>,
    /// Sorted by device, then start.
    pub assignments: Vec<Assignment>,
    pub referrals: Vec<Referral>,
    /// Where each device's assignments start in `assignments`, in the order of
    /// `devices`, and the end last: a device's assignments are found with the device
    /// (its two searches among 262 500 devices and 262 500 assignments were 7 % of the
    /// ingester's samples taking in 1-reading envelopes; BENCHMARKS.md).
    assignment_starts: Vec<usize>,
}

/// Why a registry file was refused: every problem found, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadError {
    pub problems: Vec<String>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the registry has {} problem(s):", self.problems.len())?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// The file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Toml,
    Json,
}

impl Format {
    /// JSON when the first non-blank character opens an object, else TOML.
    pub fn detect(text: &str) -> Format {
        if text.trim_start().starts_with('{') {
            Format::Json
        } else {
            Format::Toml
        }
    }
}

mod idmap;
mod raw;

pub use idmap::{IdMap, Keyed};

/// The TOML text parsed at once, at most (about): a parse tree costs some 25 times
/// its text, so a registry of 100 000 patients (77 MB) is parsed in pieces.
const TOML_PIECE: usize = 1 << 18;

impl Registry {
    /// Parses and checks a registry file, TOML or JSON (detected).
    pub fn parse(text: &str) -> Result<Registry, LoadError> {
        Registry::parse_as(text, Format::detect(text))
    }

    /// Parses and checks a registry file in the given format.
    pub fn parse_as(text: &str, format: Format) -> Result<Registry, LoadError> {
        let built = match format {
            Format::Toml => match raw::Builder::from_toml_pieces(text, TOML_PIECE) {
                Some(built) => built,
                None => raw::Builder::of(toml::from_str(text).map_err(|e| LoadError {
                    problems: vec![format!(
                        "not a valid registry (TOML): {}",
                        e.to_string().trim_end()
                    )],
                })?),
            },
            Format::Json => {
                raw::Builder::of(serde_json::from_str(text).map_err(|e| LoadError {
                    problems: vec![format!("not a valid registry (JSON): {e}")],
                })?)
            }
        };
        built.finish()
    }

    /// The device, if registered.
    pub fn device(&self, id: &DeviceId) -> Option<&Device> {
        self.devices.get(id)
    }

    /// Whether `doctor` has an open referral of `patient` at `t`.
    pub fn referred_to(&self, patient: &PatientId, doctor: &DoctorId, t: DateTime<Utc>) -> bool {
        self.referrals
            .iter()
            .any(|r| &r.patient == patient && &r.to == doctor && r.open_at(t))
    }

    /// The assignment of a device that covers an instant, if any (at most one does).
    pub fn assignment_at(&self, device: &DeviceId, t: DateTime<Utc>) -> Option<&Assignment> {
        self.assignments_of(device).iter().find(|a| a.covers(t))
    }

    /// Every assignment of a device, past and present (a few; none for a device not in
    /// the registry, which has none).
    pub fn assignments_of(&self, device: &DeviceId) -> &[Assignment] {
        self.devices
            .position(device)
            .map_or(&[], |place| self.assignments_at(place))
    }

    /// A device and every assignment of it, found at once.
    pub fn device_with_assignments(&self, id: &DeviceId) -> Option<(&Device, &[Assignment])> {
        let place = self.devices.position(id)?;
        Some((self.devices.at(place)?, self.assignments_at(place)))
    }

    fn assignments_at(&self, place: usize) -> &[Assignment] {
        match (
            self.assignment_starts.get(place),
            self.assignment_starts.get(place + 1),
        ) {
            (Some(&from), Some(&to)) => self.assignments.get(from..to).unwrap_or_default(),
            _ => &[],
        }
    }

    /// [`Registry::assignment_starts`] of devices and their assignments, both sorted by
    /// device.
    fn assignment_starts(devices: &IdMap<Device>, assignments: &[Assignment]) -> Vec<usize> {
        let mut starts = Vec::with_capacity(devices.len() + 1);
        let mut k = 0;
        for d in devices.values() {
            k += assignments
                .get(k..)
                .unwrap_or_default()
                .partition_point(|a| a.device < d.id);
            starts.push(k);
        }
        starts.push(assignments.len());
        starts
    }

    /// The zone for a patient's quiet hours and daily jobs: the patient's, else the
    /// institution's.
    pub fn timezone_of(&self, patient: &Patient) -> Tz {
        patient.timezone.unwrap_or_else(|| {
            self.institutions
                .get(&patient.institution)
                .map_or(Tz::Asia__Shanghai, |i| i.timezone)
        })
    }

    /// Who receives an escalation of a patient's alert at `level` (1–3) at instant `t`
    /// (`spec/registry.md`, Rules): 1 the responsible doctor; 2 the on-call doctor of
    /// the institution's hub (or of the institution when it is a hub) at `t`, else the
    /// care team's specialist; 3 the consortium's duty desk.
    pub fn escalation_target<'a>(
        &'a self,
        patient: &'a Patient,
        level: u8,
        t: DateTime<Utc>,
    ) -> Option<&'a DoctorId> {
        match level {
            1 => Some(&patient.care_team.responsible),
            2 => {
                let inst = self.institutions.get(&patient.institution)?;
                let hub = inst.hub.as_ref().unwrap_or(&inst.id);
                self.on_call
                    .iter()
                    .find(|o| &o.institution == hub && o.from <= t && t < o.to)
                    .map(|o| &o.doctor)
                    .or(patient.care_team.specialist.as_ref())
            }
            3 => Some(&self.consortium.duty_desk),
            _ => None,
        }
    }
}
