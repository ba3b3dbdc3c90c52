//! The file as written, and the checks that turn it into a [`Registry`].

use std::collections::BTreeMap;

use chrono::{DateTime, FixedOffset, NaiveTime};
use chrono_tz::Tz;
use serde::Deserialize;
use vigil_model::id::check_id;
use vigil_model::vocab::{Condition, ReadingType};
use vigil_model::{DeviceId, DoctorId, GatewayId, InstitutionId, PatientId};

use crate::idmap::IdMap;
use crate::{
    Assignment, CareTeam, Channels, Consortium, DEFAULT_ESCALATION, Device, Doctor,
    EscalationMinutes, Gateway, Institution, LoadError, OnCall, Override, Patient, QuietHours,
    Referral, Registry, Role, Tier,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct File {
    /// Required; optional here so that a piece of a file parses without it.
    #[serde(default)]
    consortium: Option<RawConsortium>,
    #[serde(default)]
    institution: Vec<RawInstitution>,
    #[serde(default)]
    doctor: Vec<RawDoctor>,
    #[serde(default)]
    on_call: Vec<RawOnCall>,
    #[serde(default)]
    patient: Vec<RawPatient>,
    #[serde(default)]
    gateway: Vec<RawGateway>,
    #[serde(default)]
    device: Vec<RawDevice>,
    #[serde(default)]
    assignment: Vec<RawAssignment>,
    #[serde(default)]
    referral: Vec<RawReferral>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsortium {
    id: String,
    duty_desk: DoctorId,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInstitution {
    id: InstitutionId,
    tier: Tier,
    name: String,
    timezone: String,
    #[serde(default)]
    escalation_minutes: Option<EscalationMinutes>,
    #[serde(default)]
    quiet_hours: Option<RawQuietHours>,
    #[serde(default)]
    hub: Option<InstitutionId>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuietHours {
    start: String,
    end: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDoctor {
    id: DoctorId,
    name: String,
    institution: InstitutionId,
    roles: Vec<Role>,
    #[serde(default)]
    channels: Channels,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOnCall {
    institution: InstitutionId,
    doctor: DoctorId,
    from: DateTime<FixedOffset>,
    to: DateTime<FixedOffset>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReferral {
    patient: PatientId,
    to: DoctorId,
    from: DateTime<FixedOffset>,
    #[serde(default)]
    until: Option<DateTime<FixedOffset>>,
    #[serde(default)]
    by: Option<DoctorId>,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPatient {
    id: PatientId,
    institution: InstitutionId,
    #[serde(default)]
    conditions: Vec<Condition>,
    #[serde(default)]
    age: Option<u8>,
    #[serde(default)]
    timezone: Option<String>,
    #[serde(default)]
    spo2_scale: Option<u8>,
    #[serde(default)]
    medications: Vec<String>,
    care_team: CareTeam,
    #[serde(default)]
    care_plan: BTreeMap<String, String>,
    #[serde(default)]
    overrides: BTreeMap<String, Override>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    id: GatewayId,
    #[serde(default)]
    patient: Option<PatientId>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDevice {
    id: DeviceId,
    types: Vec<ReadingType>,
    gateway: GatewayId,
    registered: DateTime<FixedOffset>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAssignment {
    device: DeviceId,
    patient: PatientId,
    from: DateTime<FixedOffset>,
    #[serde(default)]
    to: Option<DateTime<FixedOffset>>,
}

fn parse_hhmm(s: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(s, "%H:%M").ok()
}

/// A registry being built. Each part of a file (a piece of a large TOML file, or the
/// whole file) is moved in with [`Builder::add`], which checks what concerns one entry
/// alone; [`Builder::finish`] checks what crosses entries (every reference resolves, a
/// device's assignments never overlap) and reports every problem at once. A part is
/// taken apart into the registry's own values, not copied: a large registry is never
/// held both as its file's structure and as the registry.
#[derive(Default)]
pub(crate) struct Builder {
    consortium: Option<RawConsortium>,
    institutions: Vec<Institution>,
    doctors: Vec<Doctor>,
    on_call: Vec<OnCall>,
    patients: Vec<Patient>,
    gateways: Vec<Gateway>,
    devices: Vec<Device>,
    assignments: Vec<Assignment>,
    referrals: Vec<Referral>,
    problems: Vec<String>,
}

/// A time zone by its IANA name; a problem (and `None`) otherwise.
fn zone(what: std::fmt::Arguments<'_>, name: &str, p: &mut Vec<String>) -> Option<Tz> {
    let tz = name.parse::<Tz>().ok();
    if tz.is_none() {
        p.push(format!(
            "{what}: time zone {name:?} is not an IANA zone (e.g. \"Asia/Shanghai\")"
        ));
    }
    tz
}

impl Builder {
    /// A builder holding one whole file.
    pub(crate) fn of(file: File) -> Builder {
        let mut b = Builder::default();
        // A whole file has at most one consortium: this cannot refuse it.
        let _ = b.add(file);
        b
    }

    /// Parses a TOML file in pieces of about `size` bytes (see [`pieces`]), each moved
    /// in as it is parsed: a large registry never becomes one parse tree, which costs
    /// about 25 times its text. `None` when a piece does not parse or the consortium is
    /// given twice: the caller then parses the whole text, for its errors and their
    /// lines.
    pub(crate) fn from_toml_pieces(text: &str, size: usize) -> Option<Builder> {
        let mut b = Builder::default();
        for piece in pieces(text, size) {
            b.add(toml::from_str(piece).ok()?)?;
        }
        Some(b)
    }

    /// Moves a part of a file in, checking each entry on its own. `None` when the
    /// part gives the consortium a second time.
    fn add(&mut self, part: File) -> Option<()> {
        if let Some(c) = part.consortium {
            if self.consortium.is_some() {
                return None;
            }
            self.consortium = Some(c);
        }
        let p = &mut self.problems;
        for i in part.institution {
            let timezone = zone(format_args!("institution {}", i.id), &i.timezone, p);
            let escalation = i.escalation_minutes.unwrap_or(DEFAULT_ESCALATION);
            if escalation.critical_l2 == 0 || escalation.high_l2 == 0 {
                p.push(format!(
                    "institution {}: escalation minutes must be positive",
                    i.id
                ));
            }
            if escalation.critical_l3 <= escalation.critical_l2 {
                p.push(format!(
                    "institution {}: critical_l3 ({}) must come after critical_l2 ({})",
                    i.id, escalation.critical_l3, escalation.critical_l2
                ));
            }
            let quiet_hours = match &i.quiet_hours {
                None => QuietHours {
                    start: NaiveTime::from_hms_opt(22, 0, 0).unwrap_or_default(),
                    end: NaiveTime::from_hms_opt(8, 0, 0).unwrap_or_default(),
                },
                Some(q) => match (parse_hhmm(&q.start), parse_hhmm(&q.end)) {
                    (Some(start), Some(end)) => QuietHours { start, end },
                    _ => {
                        p.push(format!(
                            "institution {}: quiet_hours {:?}–{:?} must be \"HH:MM\" times",
                            i.id, q.start, q.end
                        ));
                        QuietHours {
                            start: NaiveTime::MIN,
                            end: NaiveTime::MIN,
                        }
                    }
                },
            };
            let institution = Institution {
                id: i.id,
                tier: i.tier,
                name: i.name,
                timezone: timezone.unwrap_or(Tz::Asia__Shanghai),
                escalation,
                quiet_hours,
                // Checked in `finish`, when every institution is known.
                hub: i.hub,
            };
            self.institutions.push(institution);
        }
        for d in part.doctor {
            if d.roles.is_empty() {
                p.push(format!("doctor {}: give at least one role", d.id));
            }
            if let Some(url) = &d.channels.webhook
                && !(url.starts_with("https://") || url.starts_with("http://"))
            {
                p.push(format!(
                    "doctor {}: webhook {url:?} must be an http(s) URL",
                    d.id
                ));
            }
            let doctor = Doctor {
                id: d.id,
                name: d.name,
                institution: d.institution,
                roles: d.roles,
                channels: d.channels,
            };
            self.doctors.push(doctor);
        }
        for o in part.on_call {
            if o.to <= o.from {
                p.push(format!(
                    "on_call of {} at {}: 'to' ({}) must be after 'from' ({})",
                    o.doctor, o.institution, o.to, o.from
                ));
            }
            self.on_call.push(OnCall {
                institution: o.institution,
                doctor: o.doctor,
                from: o.from,
                to: o.to,
            });
        }
        for x in part.patient {
            let timezone = x
                .timezone
                .as_deref()
                .and_then(|z| zone(format_args!("patient {}", x.id), z, p));
            let spo2_scale = match x.spo2_scale {
                None if x.conditions.contains(&Condition::Copd) => 2,
                None => 1,
                Some(s @ (1 | 2)) => s,
                Some(other) => {
                    p.push(format!(
                        "patient {}: spo2_scale is {other}; use 1 or 2",
                        x.id
                    ));
                    1
                }
            };
            if let Some(age) = x.age
                && age > 130
            {
                p.push(format!("patient {}: age {age} is not plausible", x.id));
            }
            let patient = Patient {
                id: x.id,
                institution: x.institution,
                conditions: x.conditions,
                age: x.age,
                timezone,
                spo2_scale,
                medications: x.medications,
                care_team: x.care_team,
                care_plan: x.care_plan,
                overrides: x.overrides,
            };
            self.patients.push(patient);
        }
        for g in part.gateway {
            let gateway = Gateway {
                id: g.id,
                patient: g.patient,
            };
            self.gateways.push(gateway);
        }
        for d in part.device {
            if d.types.is_empty() {
                p.push(format!(
                    "device {}: list the reading types it produces in 'types'",
                    d.id
                ));
            }
            let device = Device {
                id: d.id,
                types: d.types,
                gateway: d.gateway,
                registered: d.registered,
            };
            self.devices.push(device);
        }
        for a in part.assignment {
            if a.to.is_some_and(|to| to <= a.from) {
                p.push(format!(
                    "assignment of {} to {}: 'to' must be after 'from'",
                    a.device, a.patient
                ));
            }
            self.assignments.push(Assignment {
                device: a.device,
                patient: a.patient,
                from: a.from,
                to: a.to,
            });
        }
        for r in part.referral {
            if r.until.is_some_and(|u| u <= r.from) {
                p.push(format!(
                    "referral of {} to {}: 'until' must be after 'from' ({})",
                    r.patient, r.to, r.from
                ));
            }
            self.referrals.push(Referral {
                patient: r.patient,
                to: r.to,
                from: r.from,
                until: r.until,
                by: r.by,
                reason: r.reason,
            });
        }
        Some(())
    }

    /// Checks every reference between entries, then gives the registry if there was no
    /// problem anywhere.
    pub(crate) fn finish(mut self) -> Result<Registry, LoadError> {
        let Some(consortium) = self.consortium.take() else {
            return Err(LoadError {
                problems: vec![
                    "the registry has no [consortium] section: add one with its id and duty_desk"
                        .to_owned(),
                ],
            });
        };
        let mut p = std::mem::take(&mut self.problems);
        let mut by_id = |kind: &str, id: &dyn std::fmt::Display| {
            p.push(format!("{kind} {id} is defined more than once"));
        };
        let institutions = IdMap::build(std::mem::take(&mut self.institutions), |id| {
            by_id("institution", id)
        });
        let doctors = IdMap::build(std::mem::take(&mut self.doctors), |id| by_id("doctor", id));
        let patients = IdMap::build(std::mem::take(&mut self.patients), |id| {
            by_id("patient", id)
        });
        let gateways = IdMap::build(std::mem::take(&mut self.gateways), |id| {
            by_id("gateway", id)
        });
        let devices = IdMap::build(std::mem::take(&mut self.devices), |id| by_id("device", id));
        if let Err(e) = check_id(&consortium.id) {
            p.push(format!("consortium id {:?} {e}", consortium.id));
        }
        let doctor = |d: &DoctorId| doctors.contains_key(d);
        if !doctor(&consortium.duty_desk) {
            p.push(format!(
                "consortium duty_desk {} is not a doctor of the registry",
                consortium.duty_desk
            ));
        }
        for i in institutions.values() {
            let Some(h) = &i.hub else { continue };
            match institutions.get(h).map(|hub| hub.tier) {
                _ if h == &i.id => {
                    p.push(format!("institution {}: hub may not be itself", i.id));
                }
                Some(Tier::Hub) => {}
                Some(_) => p.push(format!(
                    "institution {}: hub {h} is not of tier \"hub\"",
                    i.id
                )),
                None => p.push(format!(
                    "institution {}: hub {h} is not an institution of the registry",
                    i.id
                )),
            }
        }
        let institution = |i: &InstitutionId| institutions.contains_key(i);
        for d in doctors.values() {
            if !institution(&d.institution) {
                p.push(format!(
                    "doctor {}: institution {} is not in the registry",
                    d.id, d.institution
                ));
            }
        }
        for o in &self.on_call {
            if !institution(&o.institution) {
                p.push(format!(
                    "on_call: institution {} is not in the registry",
                    o.institution
                ));
            }
            if !doctor(&o.doctor) {
                p.push(format!(
                    "on_call: doctor {} is not in the registry",
                    o.doctor
                ));
            }
        }
        for x in patients.values() {
            if !institution(&x.institution) {
                p.push(format!(
                    "patient {}: institution {} is not in the registry",
                    x.id, x.institution
                ));
            }
            for (role, d) in [
                ("responsible", Some(&x.care_team.responsible)),
                ("specialist", x.care_team.specialist.as_ref()),
            ] {
                if let Some(d) = d
                    && !doctor(d)
                {
                    p.push(format!(
                        "patient {}: care_team.{role} {d} is not a doctor of the registry",
                        x.id
                    ));
                }
            }
            for (rule, o) in &x.overrides {
                if let Some(by) = &o.by
                    && !doctor(by)
                {
                    p.push(format!("patient {}: override {rule} is set by {by}, who is not a doctor of the registry", x.id));
                }
            }
        }
        let patient = |x: &PatientId| patients.contains_key(x);
        for g in gateways.values() {
            if let Some(pt) = &g.patient
                && !patient(pt)
            {
                p.push(format!(
                    "gateway {}: patient {pt} is not in the registry",
                    g.id
                ));
            }
        }
        for d in devices.values() {
            if !gateways.contains_key(&d.gateway) {
                p.push(format!(
                    "device {}: gateway {} is not in the registry",
                    d.id, d.gateway
                ));
            }
        }
        self.assignments
            .sort_by(|a, b| (&a.device, a.from).cmp(&(&b.device, b.from)));
        for a in &self.assignments {
            if !devices.contains_key(&a.device) {
                p.push(format!(
                    "assignment of {}: device {} is not in the registry",
                    a.patient, a.device
                ));
            }
            if !patient(&a.patient) {
                p.push(format!(
                    "assignment of {}: patient {} is not in the registry",
                    a.device, a.patient
                ));
            }
        }
        for pair in self.assignments.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            if a.device == b.device && a.to.is_none_or(|to| b.from < to) {
                p.push(format!(
                    "device {} has overlapping assignments ({} from {}, {} from {}): a device measures one patient at a time",
                    a.device, a.patient, a.from, b.patient, b.from
                ));
            }
        }
        for r in &self.referrals {
            if !patient(&r.patient) {
                p.push(format!(
                    "referral of {} to {}: patient {} is not in the registry",
                    r.patient, r.to, r.patient
                ));
            }
            for (what, d) in [("to", Some(&r.to)), ("by", r.by.as_ref())] {
                if let Some(d) = d
                    && !doctor(d)
                {
                    p.push(format!(
                        "referral of {}: '{what}' {d} is not a doctor of the registry",
                        r.patient
                    ));
                }
            }
        }

        if !p.is_empty() {
            return Err(LoadError { problems: p });
        }
        Ok(Registry {
            consortium: Consortium {
                id: consortium.id,
                duty_desk: consortium.duty_desk,
            },
            institutions,
            doctors,
            on_call: self.on_call,
            patients,
            gateways,
            assignment_starts: Registry::assignment_starts(&devices, &self.assignments),
            devices,
            assignments: self.assignments,
            referrals: self.referrals,
        })
    }
}

/// Cuts a TOML text into pieces of at least `size` bytes (the last one shorter), each
/// cut just before a line that opens an element of a top-level array of tables
/// (`[[patient]]`: a bare name, no dot), where a TOML document's context starts
/// afresh. Multi-line strings are followed by a line scan; a cut it gets wrong falls
/// inside a string, and the piece before it then fails to parse.
pub(crate) fn pieces(text: &str, size: usize) -> Vec<&str> {
    const QUOTES: [&str; 2] = ["\"\"\"", "'''"];
    let mut out = Vec::new();
    let (mut start, mut at) = (0usize, 0usize);
    let mut open: Option<&str> = None;
    for line in text.split_inclusive('\n') {
        if open.is_none() && at > start && at - start >= size && opens_array_element(line) {
            out.push(&text[start..at]);
            start = at;
        }
        let mut rest = line;
        loop {
            let found = match open {
                Some(q) => rest.find(q).map(|i| (i, None)),
                None => QUOTES
                    .into_iter()
                    .filter_map(|q| rest.find(q).map(|i| (i, Some(q))))
                    .min(),
            };
            let Some((i, now_open)) = found else {
                break;
            };
            rest = &rest[i + 3..];
            open = now_open;
        }
        at += line.len();
    }
    out.push(&text[start..]);
    out
}

/// `[[name]]` with a bare name (letters, digits, `_`, `-`), then at most a comment.
fn opens_array_element(line: &str) -> bool {
    let Some((name, after)) = line
        .trim_start()
        .strip_prefix("[[")
        .and_then(|rest| rest.split_once("]]"))
    else {
        return false;
    };
    let (name, after) = (name.trim(), after.trim());
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && (after.is_empty() || after.starts_with('#'))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

    use super::*;

    const DOC: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/registry.md"
    ));

    fn example() -> &'static str {
        let start = DOC.find("```toml registry\n").unwrap() + "```toml registry\n".len();
        let end = start + DOC[start..].find("```").unwrap();
        &DOC[start..end]
    }

    #[test]
    fn pieces_cut_before_top_level_array_elements_and_join_back() {
        let text = example();
        for size in [0, 1, 200, 1 << 20] {
            let pieces = pieces(text, size);
            assert_eq!(pieces.concat(), text);
            for p in &pieces[1..] {
                assert!(opens_array_element(p.lines().next().unwrap()), "{p}");
            }
        }
        assert!(pieces(text, 0).len() > 5);
        assert_eq!(pieces(text, 1 << 20).len(), 1);
    }

    #[test]
    fn a_file_in_pieces_loads_as_the_whole() {
        let whole = Builder::of(toml::from_str(example()).unwrap())
            .finish()
            .unwrap();
        for size in [0, 1, 300] {
            let built = Builder::from_toml_pieces(example(), size).unwrap();
            assert_eq!(built.finish().unwrap(), whole);
        }
    }

    #[test]
    fn only_bare_top_level_array_headers_are_cuts() {
        for yes in [
            "[[patient]]\n",
            "  [[on_call]] # the rota\n",
            "[[ device ]]",
        ] {
            assert!(opens_array_element(yes), "{yes}");
        }
        for no in [
            "[patient]\n",
            "[[patient.overrides]]\n",
            "[[\"patient\"]]\n",
            "[[patient]] x = 1\n",
            "x = \"[[patient]]\"\n",
        ] {
            assert!(!opens_array_element(no), "{no}");
        }
    }

    #[test]
    fn no_cut_inside_a_multi_line_string() {
        for q in ["\"\"\"", "'''"] {
            let text = format!(
                "[[doctor]]\nid = \"a\"\nname = {q}\n[[doctor]]\n{q}\n[[doctor]]\nid = \"b\"\n"
            );
            let cuts: Vec<usize> = pieces(&text, 0)
                .iter()
                .scan(0, |at, p| {
                    *at += p.len();
                    Some(*at)
                })
                .collect();
            let inside = text.find(&format!("{q}\n[[doctor]]")).unwrap() + 4;
            assert!(!cuts.contains(&inside), "{cuts:?} {inside}");
            assert_eq!(pieces(&text, 0).len(), 2);
        }
    }

    #[test]
    fn a_file_without_a_consortium_says_what_to_add() {
        let text = &example()[example().find("[[institution]]").unwrap()..];
        let problems = Builder::of(toml::from_str(text).unwrap())
            .finish()
            .unwrap_err()
            .problems;
        assert_eq!(
            problems,
            ["the registry has no [consortium] section: add one with its id and duty_desk"]
        );
    }

    #[test]
    fn a_piece_that_does_not_parse_or_a_second_consortium_gives_none() {
        let text = format!("{}\n[[doctor]]\nid = \n", example());
        assert!(Builder::from_toml_pieces(&text, 0).is_none());
        let twice = format!(
            "{}\n[[doctor]]\nid = \"d-x\"\nname = \"X\"\ninstitution = \"hub\"\n[consortium]\nid = \"c\"\nduty_desk = \"d-x\"\n",
            example()
        );
        assert!(toml::from_str::<File>(&twice).is_err());
        assert!(Builder::from_toml_pieces(&twice, 0).is_none());
    }
}
