//! The file as written, and the checks that turn it into a [`Registry`].

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, FixedOffset, NaiveTime};
use chrono_tz::Tz;
use serde::Deserialize;
use vigil_model::id::check_id;
use vigil_model::vocab::{Condition, ReadingType};
use vigil_model::{DeviceId, DoctorId, GatewayId, InstitutionId, PatientId};

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

impl File {
    /// Parses a TOML file in pieces of about `size` bytes (see [`pieces`]) and joins
    /// them: a large registry never becomes one parse tree, which costs about 25
    /// times the text. `None` when a piece does not parse or the consortium is given
    /// twice: the caller then parses the whole text, for its errors and their lines.
    pub(crate) fn from_toml_pieces(text: &str, size: usize) -> Option<File> {
        let mut file: Option<File> = None;
        for piece in pieces(text, size) {
            let part: File = toml::from_str(piece).ok()?;
            match &mut file {
                None => file = Some(part),
                Some(f) => f.absorb(part)?,
            }
        }
        file
    }

    fn absorb(&mut self, part: File) -> Option<()> {
        if part.consortium.is_some() {
            if self.consortium.is_some() {
                return None;
            }
            self.consortium = part.consortium;
        }
        self.institution.extend(part.institution);
        self.doctor.extend(part.doctor);
        self.on_call.extend(part.on_call);
        self.patient.extend(part.patient);
        self.gateway.extend(part.gateway);
        self.device.extend(part.device);
        self.assignment.extend(part.assignment);
        self.referral.extend(part.referral);
        Some(())
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

/// Collects every problem, then builds the registry if there were none.
pub(crate) fn check(mut f: File) -> Result<Registry, LoadError> {
    let mut p: Vec<String> = Vec::new();

    let Some(consortium) = f.consortium.take() else {
        return Err(LoadError {
            problems: vec![
                "the registry has no [consortium] section: add one with its id and duty_desk"
                    .to_owned(),
            ],
        });
    };
    if let Err(e) = check_id(&consortium.id) {
        p.push(format!("consortium id {:?} {e}", consortium.id));
    }

    // Unique ids per kind.
    fn dupes<'a, T: Ord + std::fmt::Display + 'a>(
        kind: &str,
        ids: impl Iterator<Item = &'a T>,
        p: &mut Vec<String>,
    ) {
        let mut seen = BTreeSet::new();
        for id in ids {
            if !seen.insert(id) {
                p.push(format!("{kind} {id} is defined more than once"));
            }
        }
    }
    dupes("institution", f.institution.iter().map(|i| &i.id), &mut p);
    dupes("doctor", f.doctor.iter().map(|d| &d.id), &mut p);
    dupes("patient", f.patient.iter().map(|x| &x.id), &mut p);
    dupes("gateway", f.gateway.iter().map(|g| &g.id), &mut p);
    dupes("device", f.device.iter().map(|d| &d.id), &mut p);

    let tiers: BTreeMap<&InstitutionId, Tier> =
        f.institution.iter().map(|i| (&i.id, i.tier)).collect();
    let doctors: BTreeSet<&DoctorId> = f.doctor.iter().map(|d| &d.id).collect();
    let patients: BTreeSet<&PatientId> = f.patient.iter().map(|x| &x.id).collect();
    let gateways: BTreeSet<&GatewayId> = f.gateway.iter().map(|g| &g.id).collect();
    let devices: BTreeSet<&DeviceId> = f.device.iter().map(|d| &d.id).collect();

    let zone = |what: String, name: &str, p: &mut Vec<String>| -> Option<Tz> {
        match name.parse::<Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                p.push(format!(
                    "{what}: time zone {name:?} is not an IANA zone (e.g. \"Asia/Shanghai\")"
                ));
                None
            }
        }
    };

    if !doctors.contains(&consortium.duty_desk) {
        p.push(format!(
            "consortium duty_desk {} is not a doctor of the registry",
            consortium.duty_desk
        ));
    }

    let mut institutions = BTreeMap::new();
    for i in &f.institution {
        let tz = zone(format!("institution {}", i.id), &i.timezone, &mut p);
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
            None => Some(QuietHours {
                start: NaiveTime::from_hms_opt(22, 0, 0).unwrap_or_default(),
                end: NaiveTime::from_hms_opt(8, 0, 0).unwrap_or_default(),
            }),
            Some(q) => match (parse_hhmm(&q.start), parse_hhmm(&q.end)) {
                (Some(start), Some(end)) => Some(QuietHours { start, end }),
                _ => {
                    p.push(format!(
                        "institution {}: quiet_hours {:?}–{:?} must be \"HH:MM\" times",
                        i.id, q.start, q.end
                    ));
                    None
                }
            },
        };
        let hub = match (&i.hub, i.tier) {
            (Some(h), _) if h == &i.id => {
                p.push(format!("institution {}: hub may not be itself", i.id));
                None
            }
            (Some(h), _) => match tiers.get(h) {
                Some(Tier::Hub) => Some(h.clone()),
                Some(_) => {
                    p.push(format!(
                        "institution {}: hub {h} is not of tier \"hub\"",
                        i.id
                    ));
                    None
                }
                None => {
                    p.push(format!(
                        "institution {}: hub {h} is not an institution of the registry",
                        i.id
                    ));
                    None
                }
            },
            (None, _) => None,
        };
        if let (Some(timezone), Some(quiet_hours)) = (tz, quiet_hours) {
            institutions.insert(
                i.id.clone(),
                Institution {
                    id: i.id.clone(),
                    tier: i.tier,
                    name: i.name.clone(),
                    timezone,
                    escalation,
                    quiet_hours,
                    hub,
                },
            );
        }
    }

    let mut doctors_out = BTreeMap::new();
    for d in &f.doctor {
        if !tiers.contains_key(&d.institution) {
            p.push(format!(
                "doctor {}: institution {} is not in the registry",
                d.id, d.institution
            ));
        }
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
        doctors_out.insert(
            d.id.clone(),
            Doctor {
                id: d.id.clone(),
                name: d.name.clone(),
                institution: d.institution.clone(),
                roles: d.roles.clone(),
                channels: d.channels.clone(),
            },
        );
    }

    for o in &f.on_call {
        if !tiers.contains_key(&o.institution) {
            p.push(format!(
                "on_call: institution {} is not in the registry",
                o.institution
            ));
        }
        if !doctors.contains(&o.doctor) {
            p.push(format!(
                "on_call: doctor {} is not in the registry",
                o.doctor
            ));
        }
        if o.to <= o.from {
            p.push(format!(
                "on_call of {} at {}: 'to' ({}) must be after 'from' ({})",
                o.doctor, o.institution, o.to, o.from
            ));
        }
    }

    let mut patients_out = BTreeMap::new();
    for x in &f.patient {
        if !tiers.contains_key(&x.institution) {
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
                && !doctors.contains(d)
            {
                p.push(format!(
                    "patient {}: care_team.{role} {d} is not a doctor of the registry",
                    x.id
                ));
            }
        }
        let timezone = x
            .timezone
            .as_deref()
            .and_then(|z| zone(format!("patient {}", x.id), z, &mut p));
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
        if x.age.is_some_and(|a| a > 130) {
            p.push(format!(
                "patient {}: age {} is not plausible",
                x.id,
                x.age.unwrap_or_default()
            ));
        }
        for (rule, o) in &x.overrides {
            if let Some(by) = &o.by
                && !doctors.contains(by)
            {
                p.push(format!("patient {}: override {rule} is set by {by}, who is not a doctor of the registry", x.id));
            }
        }
        patients_out.insert(
            x.id.clone(),
            Patient {
                id: x.id.clone(),
                institution: x.institution.clone(),
                conditions: x.conditions.clone(),
                age: x.age,
                timezone,
                spo2_scale,
                medications: x.medications.clone(),
                care_team: x.care_team.clone(),
                care_plan: x.care_plan.clone(),
                overrides: x.overrides.clone(),
            },
        );
    }

    let mut gateways_out = BTreeMap::new();
    for g in &f.gateway {
        if let Some(pt) = &g.patient
            && !patients.contains(pt)
        {
            p.push(format!(
                "gateway {}: patient {pt} is not in the registry",
                g.id
            ));
        }
        gateways_out.insert(
            g.id.clone(),
            Gateway {
                id: g.id.clone(),
                patient: g.patient.clone(),
            },
        );
    }

    let mut devices_out = BTreeMap::new();
    for d in &f.device {
        if !gateways.contains(&d.gateway) {
            p.push(format!(
                "device {}: gateway {} is not in the registry",
                d.id, d.gateway
            ));
        }
        if d.types.is_empty() {
            p.push(format!(
                "device {}: list the reading types it produces in 'types'",
                d.id
            ));
        }
        devices_out.insert(
            d.id.clone(),
            Device {
                id: d.id.clone(),
                types: d.types.clone(),
                gateway: d.gateway.clone(),
                registered: d.registered,
            },
        );
    }

    let mut assignments: Vec<Assignment> = f
        .assignment
        .iter()
        .map(|a| Assignment {
            device: a.device.clone(),
            patient: a.patient.clone(),
            from: a.from,
            to: a.to,
        })
        .collect();
    assignments.sort_by(|a, b| (&a.device, a.from).cmp(&(&b.device, b.from)));
    for a in &assignments {
        if !devices.contains(&a.device) {
            p.push(format!(
                "assignment of {}: device {} is not in the registry",
                a.patient, a.device
            ));
        }
        if !patients.contains(&a.patient) {
            p.push(format!(
                "assignment of {}: patient {} is not in the registry",
                a.device, a.patient
            ));
        }
        if a.to.is_some_and(|to| to <= a.from) {
            p.push(format!(
                "assignment of {} to {}: 'to' must be after 'from'",
                a.device, a.patient
            ));
        }
    }
    for pair in assignments.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.device == b.device && a.to.is_none_or(|to| b.from < to) {
            p.push(format!(
                "device {} has overlapping assignments ({} from {}, {} from {}): a device measures one patient at a time",
                a.device, a.patient, a.from, b.patient, b.from
            ));
        }
    }

    for r in &f.referral {
        if !patients_out.contains_key(&r.patient) {
            p.push(format!(
                "referral of {} to {}: patient {} is not in the registry",
                r.patient, r.to, r.patient
            ));
        }
        for (what, d) in [("to", Some(&r.to)), ("by", r.by.as_ref())] {
            if let Some(d) = d
                && !doctors.contains(d)
            {
                p.push(format!(
                    "referral of {}: '{what}' {d} is not a doctor of the registry",
                    r.patient
                ));
            }
        }
        if r.until.is_some_and(|u| u <= r.from) {
            p.push(format!(
                "referral of {} to {}: 'until' must be after 'from' ({})",
                r.patient, r.to, r.from
            ));
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
        doctors: doctors_out,
        on_call: f
            .on_call
            .into_iter()
            .map(|o| OnCall {
                institution: o.institution,
                doctor: o.doctor,
                from: o.from,
                to: o.to,
            })
            .collect(),
        patients: patients_out,
        gateways: gateways_out,
        devices: devices_out,
        assignments,
        referrals: f
            .referral
            .into_iter()
            .map(|r| Referral {
                patient: r.patient,
                to: r.to,
                from: r.from,
                until: r.until,
                by: r.by,
                reason: r.reason,
            })
            .collect(),
    })
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
        let whole = check(toml::from_str(example()).unwrap()).unwrap();
        for size in [0, 1, 300] {
            let file = File::from_toml_pieces(example(), size).unwrap();
            assert_eq!(check(file).unwrap(), whole);
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
        let problems = check(toml::from_str(text).unwrap()).unwrap_err().problems;
        assert_eq!(
            problems,
            ["the registry has no [consortium] section: add one with its id and duty_desk"]
        );
    }

    #[test]
    fn a_piece_that_does_not_parse_or_a_second_consortium_gives_none() {
        let text = format!("{}\n[[doctor]]\nid = \n", example());
        assert!(File::from_toml_pieces(&text, 0).is_none());
        let twice = format!(
            "{}\n[[doctor]]\nid = \"d-x\"\nname = \"X\"\ninstitution = \"hub\"\n[consortium]\nid = \"c\"\nduty_desk = \"d-x\"\n",
            example()
        );
        assert!(toml::from_str::<File>(&twice).is_err());
        assert!(File::from_toml_pieces(&twice, 0).is_none());
    }
}
