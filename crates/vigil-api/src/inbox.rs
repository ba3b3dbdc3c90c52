//! The doctor's inbox: `GET /api/v1/inbox?doctor=`, every open alert the doctor
//! answers for (a patient of their care team, or an alert whose escalation reaches
//! them now), most severe first and, within a severity, oldest first; and, apart, the
//! patients with a monitoring gap (open `monitoring_gap` episodes, clinical rules
//! §1.8). With `auth` on, a doctor opens their own inbox only (`doctor` defaults to
//! them); platform admins name the doctor.

use axum::Json;
use axum::extract::{Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use vigil_model::DoctorId;
use vigil_store::access::User;

use crate::{ApiError, AppState};

#[derive(Debug, Deserialize)]
pub(crate) struct InboxQuery {
    doctor: Option<String>,
}

/// The rank of a severity for sorting: CRITICAL first.
pub fn severity_rank(severity: &str) -> u8 {
    match severity {
        "CRITICAL" => 0,
        "HIGH" => 1,
        "MEDIUM" => 2,
        "LOW" => 3,
        _ => 4,
    }
}

/// `GET /api/v1/inbox`.
pub(crate) async fn inbox(
    State(s): State<AppState>,
    Query(q): Query<InboxQuery>,
    user: Option<axum::Extension<Option<User>>>,
) -> Result<Json<Value>, ApiError> {
    let signed_in = user.and_then(|u| u.0).and_then(|u| u.doctor_id);
    let doctor = q
        .doctor
        .or(signed_in)
        .ok_or_else(|| ApiError::BadRequest("name the doctor: ?doctor=<id>".to_owned()))?;
    let doctor =
        DoctorId::parse(&doctor).map_err(|e| ApiError::BadRequest(format!("'doctor' {e}")))?;
    let registry = crate::registry_in_force(&s)?;
    if !registry.doctors.contains_key(&doctor) {
        return Err(ApiError::NotFound(format!(
            "no doctor {doctor} in the registry"
        )));
    }
    let now = s.clock.now();
    let mut open: Vec<_> = s
        .store
        .open_alerts()
        .await?
        .into_iter()
        .filter(|a| {
            let on_team = registry
                .patients
                .get(&a.latest.patient_id)
                .is_some_and(|p| {
                    p.care_team.responsible == doctor
                        || p.care_team.specialist.as_ref() == Some(&doctor)
                });
            on_team || vigil_ingest::deliver::routed(&registry, &a.latest, now).contains(&doctor)
        })
        .collect();
    open.sort_by_key(|a| (severity_rank(&a.latest.severity), a.latest.opened_at));
    let item = |a: &vigil_store::OpenAlert| {
        let e = &a.latest;
        json!({"alert_id": e.alert_id, "patient_id": e.patient_id, "rule": e.rule,
               "severity": e.severity, "display": e.display, "escalation_level": e.level,
               "state": e.change, "opened_at": e.opened_at.to_rfc3339(),
               "age_seconds": (now - e.opened_at).num_seconds().max(0),
               "acknowledged_by": a.acknowledged.as_ref().map(|(by, _)| by),
               "acknowledged_at": a.acknowledged.as_ref().map(|(_, at)| at.to_rfc3339())})
    };
    let (gaps, alerts): (Vec<_>, Vec<_>) =
        open.iter().partition(|a| a.latest.rule == "monitoring_gap");
    Ok(Json(json!({
        "doctor_id": doctor,
        "at": now.to_rfc3339(),
        "alerts": alerts.into_iter().map(item).collect::<Vec<_>>(),
        "monitoring_gaps": gaps.into_iter().map(item).collect::<Vec<_>>(),
    })))
}
