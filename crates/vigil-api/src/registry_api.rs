//! The registry, read through the API (issue 9's registry API, its reading half):
//! institutions, doctors, patients (a doctor lists the patients of their care teams;
//! a patient's page, with the per-patient rule overrides and whether each still
//! applies, through the care relationship), gateways, devices, device assignments and
//! on-call windows (platform admins).
//! Lists are paged by id: `?after=<last id seen>&limit=` (1 to 500, 100 by default),
//! with `next` naming the `after` of the next page while there is one.

use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use vigil_registry::Registry;
use vigil_store::access::{Role, User};

use crate::{ApiError, AppState};

#[derive(Debug, Deserialize)]
pub(crate) struct Page {
    after: Option<String>,
    limit: Option<u32>,
}

fn registry(s: &AppState) -> Result<std::sync::Arc<Registry>, ApiError> {
    crate::registry_in_force(s)
}

/// One page of `items` (already in id order) after `page.after`.
fn paged(items: Vec<(String, Value)>, page: &Page) -> Result<Json<Value>, ApiError> {
    let limit = match page.limit {
        None => 100,
        Some(n @ 1..=500) => n as usize,
        Some(n) => {
            return Err(ApiError::BadRequest(format!(
                "'limit' is {n}; use 1 to 500"
            )));
        }
    };
    let mut rest = items
        .into_iter()
        .filter(|(id, _)| page.after.as_ref().is_none_or(|a| id > a));
    let page_items: Vec<(String, Value)> = rest.by_ref().take(limit).collect();
    let next = if rest.next().is_some() {
        page_items.last().map(|(id, _)| id.clone())
    } else {
        None
    };
    Ok(Json(json!({
        "items": page_items.into_iter().map(|(_, v)| v).collect::<Vec<_>>(),
        "next": next,
    })))
}

fn user(u: crate::SignedIn) -> Option<User> {
    crate::signed_in(u)
}

/// `GET /api/v1/institutions`.
pub(crate) async fn institutions(
    State(s): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let r = registry(&s)?;
    let items = r
        .institutions
        .values()
        .map(|i| {
            (
                i.id.to_string(),
                json!({"id": i.id, "name": i.name, "tier": format!("{:?}", i.tier).to_lowercase(),
                       "timezone": i.timezone.name(), "hub": i.hub}),
            )
        })
        .collect();
    paged(items, &page)
}

/// `GET /api/v1/doctors` (the staff directory: no channel settings).
pub(crate) async fn doctors(
    State(s): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let r = registry(&s)?;
    let items = r
        .doctors
        .values()
        .map(|d| {
            let roles: Vec<String> = d
                .roles
                .iter()
                .map(|role| snake(&format!("{role:?}")))
                .collect();
            (
                d.id.to_string(),
                json!({"id": d.id, "name": d.name, "institution": d.institution, "roles": roles}),
            )
        })
        .collect();
    paged(items, &page)
}

/// `FamilyDoctor` → `family_doctor`.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.extend(c.to_lowercase());
    }
    out
}

fn patient_summary(p: &vigil_registry::Patient) -> Value {
    let conditions: Vec<&str> = p.conditions.iter().map(|c| c.as_str()).collect();
    json!({"id": p.id, "institution": p.institution, "conditions": conditions,
           "care_team": {"responsible": p.care_team.responsible, "specialist": p.care_team.specialist}})
}

/// `GET /api/v1/patients`: every patient for a platform admin; a doctor's own care
/// teams' patients and those referred to them for a doctor (a patient they may see only as an escalation target
/// is reached through the alert, not listed).
pub(crate) async fn patients(
    State(s): State<AppState>,
    Query(page): Query<Page>,
    u: Option<axum::Extension<Option<User>>>,
) -> Result<Json<Value>, ApiError> {
    let r = registry(&s)?;
    let now = s.clock.now();
    let viewer = user(u);
    let doctor = viewer
        .as_ref()
        .filter(|v| v.role == Role::Doctor)
        .and_then(|v| v.doctor_id.clone());
    let items = r
        .patients
        .values()
        .filter(|p| match (&viewer, &doctor) {
            (None, _) => true, // access not checked (http.auth off)
            (Some(_), Some(d)) => {
                p.care_team.responsible.as_str() == d
                    || p.care_team
                        .specialist
                        .as_ref()
                        .is_some_and(|sp| sp.as_str() == d)
                    || r.referrals
                        .iter()
                        .any(|x| x.patient == p.id && x.to.as_str() == d && x.open_at(now))
            }
            (Some(v), None) => v.role == Role::PlatformAdmin,
        })
        .map(|p| (p.id.to_string(), patient_summary(p)))
        .collect();
    paged(items, &page)
}

/// `GET /api/v1/patients/{id}`: the patient's page: conditions, age, medications, care
/// team and plan, and the per-patient rule overrides with who set them, why, until
/// when, and whether each still applies now.
pub(crate) async fn patient(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let r = registry(&s)?;
    let pid = vigil_model::PatientId::parse(&id)
        .map_err(|e| ApiError::BadRequest(format!("patient id {e}")))?;
    let p = r
        .patients
        .get(&pid)
        .ok_or_else(|| ApiError::NotFound(format!("no patient {id:?} in the registry")))?;
    let now = s.clock.now();
    let overrides: Vec<Value> = p
        .overrides
        .iter()
        .map(|(rule, o)| {
            let active = o.until.is_none_or(|u| u.with_timezone(&chrono::Utc) > now);
            json!({"rule": rule, "below": o.below, "above": o.above, "systolic": o.systolic,
                   "diastolic": o.diastolic, "kg": o.kg,
                   "snooze_until": o.snooze_until.map(|t| t.to_rfc3339()),
                   "by": o.by, "reason": o.reason, "until": o.until.map(|t| t.to_rfc3339()),
                   "active": active})
        })
        .collect();
    let mut out = patient_summary(p);
    if let Some(obj) = out.as_object_mut() {
        obj.insert("age".into(), json!(p.age));
        obj.insert("timezone".into(), json!(r.timezone_of(p).name()));
        obj.insert("medications".into(), json!(p.medications));
        obj.insert("care_plan".into(), json!(p.care_plan));
        obj.insert("overrides".into(), json!(overrides));
        let devices: Vec<&str> = r
            .assignments
            .iter()
            .filter(|a| {
                a.patient == pid
                    && a.from.with_timezone(&chrono::Utc) <= now
                    && a.to.is_none_or(|t| t.with_timezone(&chrono::Utc) > now)
            })
            .map(|a| a.device.as_str())
            .collect();
        obj.insert("devices".into(), json!(devices));
        let referrals: Vec<Value> = r
            .referrals
            .iter()
            .filter(|x| x.patient == pid)
            .map(|x| {
                json!({"to": x.to, "by": x.by, "reason": x.reason, "from": x.from.to_rfc3339(),
                       "until": x.until.map(|u| u.to_rfc3339()), "open": x.open_at(now)})
            })
            .collect();
        obj.insert("referrals".into(), json!(referrals));
    }
    Ok(Json(out))
}

/// `GET /api/v1/gateways` (platform admins).
pub(crate) async fn gateways(
    State(s): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let r = registry(&s)?;
    let items = r
        .gateways
        .values()
        .map(|g| (g.id.to_string(), json!({"id": g.id, "patient": g.patient})))
        .collect();
    paged(items, &page)
}

/// `GET /api/v1/devices` (platform admins).
pub(crate) async fn devices(
    State(s): State<AppState>,
    Query(page): Query<Page>,
) -> Result<Json<Value>, ApiError> {
    let r = registry(&s)?;
    let items = r
        .devices
        .values()
        .map(|d| {
            let types: Vec<&str> = d.types.iter().map(|t| t.as_str()).collect();
            (
                d.id.to_string(),
                json!({"id": d.id, "types": types, "gateway": d.gateway,
                       "registered": d.registered.to_rfc3339()}),
            )
        })
        .collect();
    paged(items, &page)
}

#[derive(Debug, Deserialize)]
pub(crate) struct AssignmentQuery {
    device: Option<String>,
    patient: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/v1/assignments` (platform admins): device assignments, by device then
/// start (`?device=`, `?patient=` to filter), each with whether it is in force now;
/// paged by `{device}/{from in UTC}`.
pub(crate) async fn assignments(
    State(s): State<AppState>,
    Query(q): Query<AssignmentQuery>,
) -> Result<Json<Value>, ApiError> {
    let r = registry(&s)?;
    let now = s.clock.now();
    let items: Vec<(String, Value)> = r
        .assignments
        .iter()
        .filter(|a| q.device.as_deref().is_none_or(|d| a.device.as_str() == d))
        .filter(|a| q.patient.as_deref().is_none_or(|p| a.patient.as_str() == p))
        .map(|a| {
            let key = format!("{}/{}", a.device, utc_key(&a.from));
            let item = json!({"device": a.device, "patient": a.patient,
                "from": a.from.to_rfc3339(), "to": a.to.map(|t| t.to_rfc3339()),
                "in_force": a.covers(now)});
            (key, item)
        })
        .collect();
    sorted_page(items, q.after, q.limit)
}

/// An instant as a page key that sorts as time does (UTC, fixed width).
fn utc_key(t: &chrono::DateTime<chrono::FixedOffset>) -> String {
    t.with_timezone(&chrono::Utc)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// One page of `items`, put in key order first.
fn sorted_page(
    mut items: Vec<(String, Value)>,
    after: Option<String>,
    limit: Option<u32>,
) -> Result<Json<Value>, ApiError> {
    items.sort_by(|a, b| a.0.cmp(&b.0));
    paged(items, &Page { after, limit })
}

#[derive(Debug, Deserialize)]
pub(crate) struct OnCallQuery {
    institution: Option<String>,
    after: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/v1/on-call` (platform admins): the on-call windows (`?institution=` to
/// filter), by institution then start, each with whether it is on now; paged by
/// `{institution}/{from in UTC}/{doctor}`.
pub(crate) async fn on_call(
    State(s): State<AppState>,
    Query(q): Query<OnCallQuery>,
) -> Result<Json<Value>, ApiError> {
    let r = registry(&s)?;
    let now = s.clock.now();
    let items: Vec<(String, Value)> = r
        .on_call
        .iter()
        .filter(|o| {
            q.institution
                .as_deref()
                .is_none_or(|i| o.institution.as_str() == i)
        })
        .map(|o| {
            let key = format!("{}/{}/{}", o.institution, utc_key(&o.from), o.doctor);
            let item = json!({"institution": o.institution, "doctor": o.doctor,
                "from": o.from.to_rfc3339(), "to": o.to.to_rfc3339(),
                "now": o.from <= now && now < o.to});
            (key, item)
        })
        .collect();
    sorted_page(items, q.after, q.limit)
}
