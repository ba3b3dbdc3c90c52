//! The hospital overview, `GET /api/v1/overview?institution=`: population figures per
//! institution, computed by the functions below from the registry and the clinical
//! store. Their definitions, written out in `docs/dashboard.md`:
//!
//! - **Patients under management**: the registry's patients of the institution.
//! - **BP control rate** ([`bp_control_rate`]): of the hypertensive patients with at
//!   least one home blood pressure in the trailing 7 days, the share whose 7-day mean
//!   is below their target ([`crate::summary::bp_control`]).
//! - **Glucose control rate** ([`glucose_control_rate`]): of the diabetic patients
//!   (type 1 or 2) with at least one fasting glucose in the window, the share whose
//!   mean fasting glucose is below 7.0 mmol/L ([`fasting_control`]; 规范: 控制满意 =
//!   空腹血糖 < 7.0 mmol/L, clinical rules §1.2).
//! - **Adherence** ([`adherence`]): of the patients under management, the share with at
//!   least one reading measured in the window.
//! - **Alerts** ([`alert_counts`]): episodes opened in the window, by the severity they
//!   opened with.
//! - **Time to acknowledge** ([`ack_times`]): for the CRITICAL and HIGH episodes
//!   opened in the window (those with an escalation ladder), the seconds from opening
//!   to the first acknowledgement, median and 90th percentile (nearest rank); per
//!   institution (the patient's) and per doctor (who acknowledged); episodes not
//!   acknowledged are counted apart.
//! - **Connectivity** ([`share_seen`]): of the institution's gateways, the share whose
//!   last envelope arrived in the last 24 hours; of its devices, the share with a
//!   reading measured in the window.
//!
//! Rates carry numerator, denominator and percent (one decimal, half-up), so a rate
//! over three patients is not mistaken for one over three thousand.

use std::collections::{BTreeMap, HashMap, HashSet};

use axum::Json;
use axum::extract::{Query, State};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use vigil_store::access::{Role, User};
use vigil_store::{OpenedAlert, WindowReading};

use crate::summary::{BpControl, WINDOW, bp_control};
use crate::{ApiError, AppState, percentile};

/// A gateway counts as online when its last envelope is this recent.
pub const GATEWAY_ONLINE: TimeDelta = TimeDelta::hours(24);

/// The fasting glucose below which a diabetic patient counts as controlled (mmol/L).
pub const FASTING_TARGET: f64 = 7.0;

/// A share: `numerator` of `denominator`, and the percent (one decimal, half-up;
/// `None` when the denominator is 0).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    pub numerator: usize,
    pub denominator: usize,
    pub percent: Option<f64>,
}

/// [`Rate`] of `numerator` over `denominator`.
pub fn rate(numerator: usize, denominator: usize) -> Rate {
    Rate {
        numerator,
        denominator,
        percent: (denominator > 0)
            .then(|| (numerator as f64 * 1000.0 / denominator as f64 + 0.5).floor() / 10.0),
    }
}

/// Fasting glucose control over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FastingControl {
    pub readings: usize,
    /// The mean, rounded half-up to 0.1 mmol/L.
    pub mean: Option<f64>,
    pub controlled: Option<bool>,
}

/// [`FastingControl`] of `(time, mmol/L)` fasting-context glucose readings.
pub fn fasting_control(readings: &[(DateTime<Utc>, f64)], now: DateTime<Utc>) -> FastingControl {
    let recent: Vec<f64> = readings
        .iter()
        .filter(|(at, _)| *at > now - WINDOW && *at <= now)
        .map(|(_, v)| *v)
        .collect();
    if recent.is_empty() {
        return FastingControl {
            readings: 0,
            mean: None,
            controlled: None,
        };
    }
    let mean = (recent.iter().sum::<f64>() / recent.len() as f64 * 10.0 + 0.5).floor() / 10.0;
    FastingControl {
        readings: recent.len(),
        mean: Some(mean),
        controlled: Some(mean < FASTING_TARGET),
    }
}

/// What the overview knows of one patient.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientFacts {
    pub institution: String,
    pub hypertensive: bool,
    pub diabetic: bool,
    pub bp: BpControl,
    pub fasting: FastingControl,
    /// Readings measured in the window, of any type.
    pub readings: usize,
}

/// BP control rate: controlled among the hypertensive patients with readings.
pub fn bp_control_rate<'a>(patients: impl IntoIterator<Item = &'a PatientFacts>) -> Rate {
    let assessed: Vec<_> = patients
        .into_iter()
        .filter(|p| p.hypertensive && p.bp.readings > 0)
        .collect();
    rate(
        assessed
            .iter()
            .filter(|p| p.bp.controlled == Some(true))
            .count(),
        assessed.len(),
    )
}

/// Glucose control rate: controlled among the diabetic patients with fasting readings.
pub fn glucose_control_rate<'a>(patients: impl IntoIterator<Item = &'a PatientFacts>) -> Rate {
    let assessed: Vec<_> = patients
        .into_iter()
        .filter(|p| p.diabetic && p.fasting.readings > 0)
        .collect();
    rate(
        assessed
            .iter()
            .filter(|p| p.fasting.controlled == Some(true))
            .count(),
        assessed.len(),
    )
}

/// Adherence: patients with a reading in the window, of all.
pub fn adherence<'a>(patients: impl IntoIterator<Item = &'a PatientFacts>) -> Rate {
    let all: Vec<_> = patients.into_iter().collect();
    rate(all.iter().filter(|p| p.readings > 0).count(), all.len())
}

/// Episodes opened, by their opening severity (every severity present, 0 included).
pub fn alert_counts<'a>(
    alerts: impl IntoIterator<Item = &'a OpenedAlert>,
) -> BTreeMap<String, usize> {
    let mut out: BTreeMap<String, usize> = ["CRITICAL", "HIGH", "MEDIUM", "LOW"]
        .iter()
        .map(|s| ((*s).to_owned(), 0))
        .collect();
    for a in alerts {
        *out.entry(a.severity.clone()).or_default() += 1;
    }
    out
}

/// Time from opening to first acknowledgement.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AckTimes {
    pub acknowledged: usize,
    pub unacknowledged: usize,
    pub median_seconds: Option<i64>,
    pub p90_seconds: Option<i64>,
}

/// [`AckTimes`] of the CRITICAL and HIGH episodes among `alerts`, grouped by `key`
/// (an episode whose key is `None` is left out).
pub fn ack_times<'a>(
    alerts: impl IntoIterator<Item = &'a OpenedAlert>,
    key: impl Fn(&OpenedAlert) -> Option<String>,
) -> BTreeMap<String, AckTimes> {
    let mut groups: BTreeMap<String, (Vec<i64>, usize)> = BTreeMap::new();
    for a in alerts
        .into_iter()
        .filter(|a| matches!(a.severity.as_str(), "CRITICAL" | "HIGH"))
    {
        let Some(k) = key(a) else { continue };
        let g = groups.entry(k).or_default();
        match &a.acknowledged {
            Some((_, at)) => g.0.push((*at - a.opened_at).num_seconds().max(0)),
            None => g.1 += 1,
        }
    }
    groups
        .into_iter()
        .map(|(k, (mut secs, open))| {
            secs.sort_unstable();
            (
                k,
                AckTimes {
                    acknowledged: secs.len(),
                    unacknowledged: open,
                    median_seconds: percentile(&secs, 0.5),
                    p90_seconds: percentile(&secs, 0.9),
                },
            )
        })
        .collect()
}

/// The share of `last_seen` instants at or after `since` (`None`: never seen).
pub fn share_seen(last_seen: &[Option<DateTime<Utc>>], since: DateTime<Utc>) -> Rate {
    rate(
        last_seen
            .iter()
            .filter(|t| t.is_some_and(|t| t >= since))
            .count(),
        last_seen.len(),
    )
}

/// Per patient: BP points, fasting glucose points, readings counted.
type PatientReadings = HashMap<
    String,
    (
        Vec<(DateTime<Utc>, f64, f64)>,
        Vec<(DateTime<Utc>, f64)>,
        usize,
    ),
>;

fn by_patient(readings: &[WindowReading]) -> PatientReadings {
    let mut out: PatientReadings = HashMap::new();
    for r in readings {
        let entry = out.entry(r.patient_id.clone()).or_default();
        entry.2 += 1;
        let Some(c) = &r.canonical else { continue };
        match r.reading_type.as_str() {
            "bp" => {
                if let (Some(s), Some(d)) = (
                    c.get("systolic_mmhg").and_then(Value::as_f64),
                    c.get("diastolic_mmhg").and_then(Value::as_f64),
                ) {
                    entry.0.push((r.time, s, d));
                }
            }
            "glucose" => {
                if let (Some(v), Some("fasting")) = (
                    c.get("glucose_mmol_l").and_then(Value::as_f64),
                    c.get("context").and_then(Value::as_str),
                ) {
                    entry.1.push((r.time, v));
                }
            }
            _ => {}
        }
    }
    out
}

#[derive(Debug, Deserialize)]
pub(crate) struct OverviewQuery {
    institution: Option<String>,
}

/// `GET /api/v1/overview`: institution admins see their own institution; platform
/// admins every institution, or the one named.
pub(crate) async fn overview(
    State(s): State<AppState>,
    Query(q): Query<OverviewQuery>,
    user: Option<axum::Extension<Option<User>>>,
) -> Result<Json<Value>, ApiError> {
    let registry = crate::registry_in_force(&s)?;
    let user = user.and_then(|u| u.0);
    let scope = match user.as_ref().filter(|u| u.role == Role::InstitutionAdmin) {
        Some(u) => u.institution_id.clone(),
        None => q.institution,
    };
    if let Some(i) = &scope
        && !registry
            .institutions
            .keys()
            .any(|k| k.as_str() == i.as_str())
    {
        return Err(ApiError::NotFound(format!(
            "no institution {i:?} in the registry"
        )));
    }
    let in_scope = |inst: &str| scope.as_deref().is_none_or(|s| s == inst);
    let now = s.clock.now();
    let readings = s.store.readings_measured_between(now - WINDOW, now).await?;
    let alerts = s.store.alerts_opened_between(now - WINDOW, now).await?;
    let mut per = by_patient(&readings);
    let facts: Vec<(String, PatientFacts)> = registry
        .patients
        .values()
        .filter(|p| in_scope(p.institution.as_str()))
        .map(|p| {
            let (bp, fasting, n) = per.remove(p.id.as_str()).unwrap_or_default();
            let has = |c: &str| p.conditions.iter().any(|x| x.as_str() == c);
            (
                p.id.to_string(),
                PatientFacts {
                    institution: p.institution.to_string(),
                    hypertensive: has("hypertension"),
                    diabetic: has("type2_diabetes") || has("type1_diabetes"),
                    bp: bp_control(&bp, now, crate::summary::bp_target(p, now)),
                    fasting: fasting_control(&fasting, now),
                    readings: n,
                },
            )
        })
        .collect();
    let institution_of: HashMap<&str, &str> = facts
        .iter()
        .map(|(id, f)| (id.as_str(), f.institution.as_str()))
        .collect();
    let alerts: Vec<&OpenedAlert> = alerts
        .iter()
        .filter(|a| institution_of.contains_key(a.patient_id.as_str()))
        .collect();
    // Connectivity: gateways by their patient's institution; devices by their gateway's.
    let gateway_seen: HashMap<String, DateTime<Utc>> =
        s.store.gateways_last_seen().await?.into_iter().collect();
    let device_seen: HashSet<&str> = readings.iter().map(|r| r.device_id.as_str()).collect();
    let gateway_institution: HashMap<&str, &str> = registry
        .gateways
        .values()
        .filter_map(|g| {
            let inst = institution_of.get(g.patient.as_ref()?.as_str())?;
            Some((g.id.as_str(), *inst))
        })
        .collect();
    // Connectivity of the gateways and devices of the institutions in view.
    let (mut all_gateways, mut all_devices) = (Vec::new(), Vec::new());
    let institutions: Vec<Value> = registry
        .institutions
        .values()
        .filter(|i| in_scope(i.id.as_str()))
        .map(|i| {
            let id = i.id.as_str();
            let mine: Vec<&PatientFacts> = facts
                .iter()
                .map(|(_, f)| f)
                .filter(|f| f.institution == id)
                .collect();
            let my_alerts: Vec<&OpenedAlert> = alerts
                .iter()
                .copied()
                .filter(|a| institution_of.get(a.patient_id.as_str()) == Some(&id))
                .collect();
            let gateways: Vec<Option<DateTime<Utc>>> = gateway_institution
                .iter()
                .filter(|(_, inst)| **inst == id)
                .map(|(g, _)| gateway_seen.get(*g).copied())
                .collect();
            let devices: Vec<Option<DateTime<Utc>>> = registry
                .devices
                .values()
                .filter(|d| gateway_institution.get(d.gateway.as_str()) == Some(&id))
                .map(|d| device_seen.contains(d.id.as_str()).then_some(now))
                .collect();
            all_gateways.extend(gateways.iter().copied());
            all_devices.extend(devices.iter().copied());
            json!({
                "id": id, "name": i.name, "patients": mine.len(),
                "bp_control": bp_control_rate(mine.iter().copied()),
                "glucose_control": glucose_control_rate(mine.iter().copied()),
                "adherence": adherence(mine.iter().copied()),
                "alerts": alert_counts(my_alerts.iter().copied()),
                "time_to_ack": ack_times(my_alerts.iter().copied(), |_| Some(String::new())).remove(""),
                "gateways_online": share_seen(&gateways, now - GATEWAY_ONLINE),
                "devices_reporting": share_seen(&devices, now - WINDOW),
            })
        })
        .collect();
    let doctors: Vec<Value> = ack_times(alerts.iter().copied(), |a| {
        a.acknowledged.as_ref().map(|(by, _)| by.clone())
    })
    .into_iter()
    .map(|(doctor, times)| {
        let name = registry
            .doctors
            .iter()
            .find(|(id, _)| id.as_str() == doctor)
            .map(|(_, d)| d.name.clone());
        json!({"doctor_id": doctor, "name": name, "time_to_ack": times})
    })
    .collect();
    let all: Vec<&PatientFacts> = facts.iter().map(|(_, f)| f).collect();
    Ok(Json(json!({
        "at": now.to_rfc3339(),
        "window_days": WINDOW.num_days(),
        "scope": scope,
        "total": {
            "patients": all.len(),
            "bp_control": bp_control_rate(all.iter().copied()),
            "glucose_control": glucose_control_rate(all.iter().copied()),
            "adherence": adherence(all.iter().copied()),
            "alerts": alert_counts(alerts.iter().copied()),
            "time_to_ack": ack_times(alerts.iter().copied(), |_| Some(String::new())).remove(""),
            "gateways_online": share_seen(&all_gateways, now - GATEWAY_ONLINE),
            "devices_reporting": share_seen(&all_devices, now - WINDOW),
        },
        "institutions": institutions,
        "doctors": doctors,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_790_000_000, 0).unwrap_or_default() + TimeDelta::minutes(minutes)
    }

    fn facts(
        hypertensive: bool,
        diabetic: bool,
        bp: Option<bool>,
        fasting: Option<bool>,
        readings: usize,
    ) -> PatientFacts {
        PatientFacts {
            institution: "chc".into(),
            hypertensive,
            diabetic,
            bp: BpControl {
                readings: usize::from(bp.is_some()),
                mean_systolic: None,
                mean_diastolic: None,
                target: crate::summary::HOME_TARGET,
                controlled: bp,
            },
            fasting: FastingControl {
                readings: usize::from(fasting.is_some()),
                mean: None,
                controlled: fasting,
            },
            readings,
        }
    }

    #[test]
    fn rates_have_numerator_denominator_and_a_half_up_percent() {
        assert_eq!(rate(1, 3).percent, Some(33.3));
        assert_eq!(rate(2, 3).percent, Some(66.7));
        assert_eq!(rate(1, 8).percent, Some(12.5));
        assert_eq!(rate(0, 0).percent, None);
    }

    #[test]
    fn control_rates_count_only_the_patients_who_can_be_assessed() {
        let ps = [
            facts(true, false, Some(true), None, 5), // hypertensive, controlled
            facts(true, false, Some(false), None, 5), // hypertensive, not controlled
            facts(true, false, None, None, 0),       // hypertensive, no readings: not assessed
            facts(false, true, None, Some(true), 3), // diabetic, fasting controlled
            facts(false, true, None, Some(false), 3), // diabetic, not
            facts(false, true, None, None, 2),       // diabetic, no fasting reading
            facts(false, false, Some(false), None, 1), // BP not counted: not hypertensive
        ];
        assert_eq!(bp_control_rate(&ps), rate(1, 2));
        assert_eq!(glucose_control_rate(&ps), rate(1, 2));
        assert_eq!(adherence(&ps), rate(6, 7));
    }

    #[test]
    fn fasting_control_is_the_window_mean_below_seven() {
        let now = at(0);
        let c = fasting_control(
            &[(at(-60), 6.9), (at(-120), 7.0), (at(-7 * 24 * 60), 20.0)],
            now,
        );
        // 6.95 rounds half-up to 7.0: not below 7.0.
        assert_eq!(
            (c.readings, c.mean, c.controlled),
            (2, Some(7.0), Some(false))
        );
        let c = fasting_control(&[(at(-60), 6.8), (at(-120), 7.0)], now);
        assert_eq!((c.mean, c.controlled), (Some(6.9), Some(true)));
        assert_eq!(fasting_control(&[], now).controlled, None);
    }

    fn alert(severity: &str, opened: i64, ack: Option<(&str, i64)>) -> OpenedAlert {
        OpenedAlert {
            alert_id: format!("{severity}{opened}"),
            patient_id: "p-1".into(),
            severity: severity.into(),
            opened_at: at(opened),
            acknowledged: ack.map(|(by, m)| (by.to_owned(), at(m))),
        }
    }

    #[test]
    fn time_to_acknowledge_is_per_group_over_critical_and_high_only() {
        let alerts = [
            alert("CRITICAL", 0, Some(("d-1", 2))),  // 120 s
            alert("CRITICAL", 0, Some(("d-1", 10))), // 600 s
            alert("HIGH", 0, Some(("d-2", 60))),     // 3600 s
            alert("HIGH", 0, None),                  // not acknowledged
            alert("MEDIUM", 0, Some(("d-1", 1000))), // not counted
        ];
        let by_doctor = ack_times(&alerts, |a| a.acknowledged.as_ref().map(|(d, _)| d.clone()));
        assert_eq!(
            by_doctor["d-1"],
            AckTimes {
                acknowledged: 2,
                unacknowledged: 0,
                median_seconds: Some(120),
                p90_seconds: Some(600)
            }
        );
        assert_eq!(by_doctor["d-2"].median_seconds, Some(3600));
        let all = ack_times(&alerts, |_| Some(String::new()))
            .remove("")
            .unwrap();
        assert_eq!((all.acknowledged, all.unacknowledged), (3, 1));
        assert_eq!(
            (all.median_seconds, all.p90_seconds),
            (Some(600), Some(3600))
        );
        let counts = alert_counts(&alerts);
        assert_eq!(
            (
                counts["CRITICAL"],
                counts["HIGH"],
                counts["MEDIUM"],
                counts["LOW"]
            ),
            (2, 2, 1, 0)
        );
    }

    #[test]
    fn connectivity_is_the_share_seen_since_a_moment() {
        let seen = [Some(at(-10)), Some(at(-2000)), None];
        assert_eq!(share_seen(&seen, at(-60)), rate(1, 3));
    }
}
