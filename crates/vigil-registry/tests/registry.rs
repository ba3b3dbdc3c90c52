//! The registry file of `spec/registry.md`, as `docs/registry.md` documents it.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use chrono::{DateTime, Utc};
use vigil_model::vocab::Condition;
use vigil_model::{DeviceId, DoctorId, PatientId};
use vigil_registry::{DEFAULT_ESCALATION, Format, Registry, Tier};

const DOC: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/registry.md"
));

fn example() -> String {
    let start = DOC.find("```toml registry\n").unwrap() + "```toml registry\n".len();
    let end = start + DOC[start..].find("```").unwrap();
    DOC[start..end].to_owned()
}

fn at(t: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
}

fn problems(text: &str) -> Vec<String> {
    Registry::parse(text).unwrap_err().problems
}

#[test]
fn the_documented_example_loads_with_its_defaults() {
    let r = Registry::parse(&example()).unwrap();
    assert_eq!(r.consortium.id, "wuhan-west");
    assert_eq!(r.institutions.len(), 2);
    let chc = &r.institutions[&"chc-qiaokou".parse().unwrap()];
    assert_eq!(chc.tier, Tier::Community);
    assert_eq!(chc.escalation, DEFAULT_ESCALATION);
    assert_eq!(chc.quiet_hours.start.to_string(), "22:00:00");
    assert_eq!(chc.hub.as_ref().unwrap().as_str(), "hub-tongji");
    let p = &r.patients[&"p-000123".parse().unwrap()];
    assert_eq!(
        p.conditions,
        [Condition::Hypertension, Condition::Type2Diabetes]
    );
    assert_eq!(p.spo2_scale, 1);
    assert_eq!(p.overrides["hr_brady"].below, Some(45.0));
    assert_eq!(r.timezone_of(p), chrono_tz::Tz::Asia__Shanghai);
    assert_eq!(r.doctors.len(), 3);
    assert_eq!(r.devices.len(), 1);
}

#[test]
fn the_same_registry_in_json_loads_the_same() {
    let toml: toml::Value = toml::from_str(&example()).unwrap();
    let json = serde_json::to_string(&toml).unwrap();
    assert_eq!(Format::detect(&json), Format::Json);
    assert_eq!(
        Registry::parse(&json).unwrap(),
        Registry::parse(&example()).unwrap()
    );
}

#[test]
fn a_reading_is_attributed_through_the_assignment_valid_at_its_time() {
    let r = Registry::parse(&example()).unwrap();
    let dev: DeviceId = "bpm-omron-3f9a21".parse().unwrap();
    assert!(
        r.assignment_at(&dev, at("2026-10-31T23:59:59+08:00"))
            .is_none()
    );
    let a = r
        .assignment_at(&dev, at("2026-11-01T00:00:00+08:00"))
        .unwrap();
    assert_eq!(a.patient.as_str(), "p-000123");
    assert!(
        r.assignment_at(&"other".parse().unwrap(), at("2026-11-02T00:00:00+08:00"))
            .is_none()
    );
}

#[test]
fn escalation_goes_to_the_hubs_on_call_doctor_then_the_specialist_then_the_duty_desk() {
    let r = Registry::parse(&example()).unwrap();
    let p = &r.patients[&"p-000123".parse::<PatientId>().unwrap()];
    let d = |s: &str| s.parse::<DoctorId>().unwrap();
    assert_eq!(
        r.escalation_target(p, 1, at("2026-11-22T09:00:00+08:00")),
        Some(&d("d-0001"))
    );
    // Inside the hub's on-call window (2026-11-22 08:00 to 2026-11-23 08:00).
    assert_eq!(
        r.escalation_target(p, 2, at("2026-11-22T09:00:00+08:00")),
        Some(&d("d-0100"))
    );
    // Outside it: the care team's specialist (here the same doctor, by the example).
    assert_eq!(
        r.escalation_target(p, 2, at("2026-11-24T09:00:00+08:00")),
        Some(&d("d-0100"))
    );
    assert_eq!(
        r.escalation_target(p, 3, at("2026-11-22T09:00:00+08:00")),
        Some(&d("d-duty-01"))
    );
    assert_eq!(
        r.escalation_target(p, 4, at("2026-11-22T09:00:00+08:00")),
        None
    );
}

#[test]
fn level_two_follows_the_on_call_schedule_shift_by_shift_then_the_specialist() {
    // Two on-call doctors of the hub, neither of them the patient's specialist, on
    // consecutive shifts.
    let text = example()
        .replace(
            "[[on_call]]",
            r#"[[doctor]]
id = "d-0200"
name = "Dr. Zhao"
institution = "hub-tongji"
roles = ["on_call"]

[[doctor]]
id = "d-0201"
name = "Dr. Sun"
institution = "hub-tongji"
roles = ["on_call"]

[[on_call]]
institution = "hub-tongji"
doctor = "d-0201"
from = "2026-11-21T08:00:00+08:00"
to   = "2026-11-22T08:00:00+08:00"

[[on_call]]"#,
        )
        .replace(
            "doctor = \"d-0100\"\nfrom = \"2026-11-22T08:00:00+08:00\"",
            "doctor = \"d-0200\"\nfrom = \"2026-11-22T08:00:00+08:00\"",
        );
    let r = Registry::parse(&text).unwrap();
    let p = &r.patients[&"p-000123".parse::<PatientId>().unwrap()];
    let level2 = |t: &str| r.escalation_target(p, 2, at(t)).map(|d| d.to_string());
    assert_eq!(
        level2("2026-11-21T20:00:00+08:00").as_deref(),
        Some("d-0201")
    );
    // The shift changes at 08:00: the window's end belongs to the next shift.
    assert_eq!(
        level2("2026-11-22T07:59:59+08:00").as_deref(),
        Some("d-0201")
    );
    assert_eq!(
        level2("2026-11-22T08:00:00+08:00").as_deref(),
        Some("d-0200")
    );
    assert_eq!(
        level2("2026-11-23T07:00:00+08:00").as_deref(),
        Some("d-0200")
    );
    // Nobody on call: the care team's specialist.
    assert_eq!(
        level2("2026-11-23T08:00:00+08:00").as_deref(),
        Some("d-0100")
    );
    assert_eq!(
        level2("2026-11-20T12:00:00+08:00").as_deref(),
        Some("d-0100")
    );
    // Level 1 and 3 do not depend on the schedule.
    let target = |level, t| r.escalation_target(p, level, at(t)).map(|d| d.to_string());
    assert_eq!(
        target(1, "2026-11-22T09:00:00+08:00").as_deref(),
        Some("d-0001")
    );
    assert_eq!(
        target(3, "2026-11-22T09:00:00+08:00").as_deref(),
        Some("d-duty-01")
    );
}

#[test]
fn every_broken_reference_is_reported_at_once() {
    let text = example()
        .replace("responsible = \"d-0001\"", "responsible = \"d-9999\"")
        .replace("gateway = \"gw-0042\"", "gateway = \"gw-nope\"")
        .replace(
            "timezone = \"Asia/Shanghai\"\nescalation",
            "timezone = \"Asia/Shanhai\"\nescalation",
        );
    let p = problems(&text);
    assert_eq!(p.len(), 3, "{p:#?}");
    assert!(
        p.iter()
            .any(|x| x.contains("care_team.responsible d-9999 is not a doctor")),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|x| x.contains("gateway gw-nope is not in the registry")),
        "{p:#?}"
    );
    assert!(
        p.iter()
            .any(|x| x.contains("\"Asia/Shanhai\" is not an IANA zone")),
        "{p:#?}"
    );
    let shown = Registry::parse(&text).unwrap_err().to_string();
    assert!(
        shown.starts_with("the registry has 3 problem(s):\n  - "),
        "{shown}"
    );
}

#[test]
fn an_id_defined_twice_is_a_problem_for_each_kind() {
    let text = format!(
        "{}\n[[patient]]\nid = \"p-000123\"\ninstitution = \"chc-qiaokou\"\ncare_team = {{ responsible = \"d-0001\" }}\n\n[[gateway]]\nid = \"gw-0042\"\n",
        example()
    );
    let p = problems(&text);
    assert_eq!(
        p,
        [
            "patient p-000123 is defined more than once",
            "gateway gw-0042 is defined more than once"
        ],
        "{p:#?}"
    );
}

#[test]
fn overlapping_assignments_of_one_device_are_refused() {
    let text = format!(
        "{}\n[[patient]]\nid = \"p-2\"\ninstitution = \"chc-qiaokou\"\ncare_team = {{ responsible = \"d-0001\" }}\n\n[[assignment]]\ndevice = \"bpm-omron-3f9a21\"\npatient = \"p-2\"\nfrom = \"2026-11-20T00:00:00+08:00\"\n",
        example()
    );
    let p = problems(&text);
    assert!(
        p.iter().any(|x| x.contains("overlapping assignments")),
        "{p:#?}"
    );

    // Back to back is fine: the first ends where the second starts.
    let text = example().replace(
        "from = \"2026-11-01T00:00:00+08:00\"\n# to = ...",
        "from = \"2026-11-01T00:00:00+08:00\"\nto = \"2026-11-20T00:00:00+08:00\"\n# to = ...",
    ) + "\n[[patient]]\nid = \"p-2\"\ninstitution = \"chc-qiaokou\"\ncare_team = { responsible = \"d-0001\" }\n\n[[assignment]]\ndevice = \"bpm-omron-3f9a21\"\npatient = \"p-2\"\nfrom = \"2026-11-20T00:00:00+08:00\"\n";
    let r = Registry::parse(&text).unwrap();
    let dev: DeviceId = "bpm-omron-3f9a21".parse().unwrap();
    assert_eq!(
        r.assignment_at(&dev, at("2026-11-19T23:00:00+08:00"))
            .unwrap()
            .patient
            .as_str(),
        "p-000123"
    );
    assert_eq!(
        r.assignment_at(&dev, at("2026-11-20T00:00:00+08:00"))
            .unwrap()
            .patient
            .as_str(),
        "p-2"
    );
    // Both are the device's, in order; another device has none.
    let patients: Vec<_> = r
        .assignments_of(&dev)
        .iter()
        .map(|a| a.patient.as_str())
        .collect();
    assert_eq!(patients, ["p-000123", "p-2"]);
    assert!(r.assignments_of(&"other".parse().unwrap()).is_empty());
}

#[test]
fn an_unknown_key_is_an_error_that_names_it() {
    let text = example().replace(
        "tier = \"community\"",
        "tier = \"community\"\nteir = \"hub\"",
    );
    let p = problems(&text);
    assert_eq!(p.len(), 1);
    assert!(p[0].contains("teir"), "{}", p[0]);
    assert!(p[0].starts_with("not a valid registry (TOML)"), "{}", p[0]);
}

#[test]
fn copd_implies_spo2_scale_2_unless_set() {
    let text = example().replace(
        "conditions = [\"hypertension\", \"type2_diabetes\"]",
        "conditions = [\"copd\"]",
    );
    let text = text.replace(
        "spo2_scale = 1                   # optional; 2 when conditions include copd\n",
        "",
    );
    let r = Registry::parse(&text).unwrap();
    assert_eq!(r.patients[&"p-000123".parse().unwrap()].spo2_scale, 2);
}

#[test]
fn each_devices_assignments_are_found_with_it_whatever_the_devices_around_it() {
    // Devices sorting before, between and after each other, some never assigned, one
    // assigned three times over consecutive periods.
    let mut text = example();
    let ids = [
        "aa-0",
        "bpm-omron-3f9a20",
        "bpm-omron-3f9a22",
        "cuff-1",
        "zz-9",
    ];
    for id in ids {
        text += &format!(
            "\n[[device]]\nid = \"{id}\"\ntypes = [\"bp\"]\ngateway = \"gw-0042\"\nregistered = \"2026-11-01T00:00:00+08:00\"\n"
        );
    }
    let periods = [
        ("cuff-1", "2026-11-01", Some("2026-11-02")),
        ("cuff-1", "2026-11-02", Some("2026-11-03")),
        ("cuff-1", "2026-11-03", None),
        ("aa-0", "2026-11-01", None),
        ("zz-9", "2026-11-05", None),
    ];
    for (device, from, to) in periods {
        text += &format!(
            "\n[[assignment]]\ndevice = \"{device}\"\npatient = \"p-000123\"\nfrom = \"{from}T00:00:00+08:00\"\n{}",
            to.map(|t| format!("to = \"{t}T00:00:00+08:00\"\n"))
                .unwrap_or_default()
        );
    }
    let r = Registry::parse(&text).unwrap();
    assert_eq!(r.devices.len(), 6);
    for d in r.devices.values() {
        let expected: Vec<_> = r.assignments.iter().filter(|a| a.device == d.id).collect();
        let found: Vec<_> = r.assignments_of(&d.id).iter().collect();
        assert_eq!(found, expected, "{}", d.id);
        let (device, with) = r.device_with_assignments(&d.id).unwrap();
        assert_eq!(device.id, d.id);
        assert_eq!(with.iter().collect::<Vec<_>>(), expected, "{}", d.id);
    }
    assert_eq!(r.assignments_of(&"cuff-1".parse().unwrap()).len(), 3);
    assert!(
        r.assignments_of(&"bpm-omron-3f9a22".parse().unwrap())
            .is_empty()
    );
    let unknown: DeviceId = "bpm-omron-3f9a21x".parse().unwrap();
    assert!(r.device_with_assignments(&unknown).is_none());
    assert!(r.assignments_of(&unknown).is_empty());
}
