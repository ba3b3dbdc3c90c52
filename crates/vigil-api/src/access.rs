//! Authentication, authorization by care relationship, and the audit of every API
//! request (`/api/v1/...`).
//!
//! - **Who**: with `auth` on, a request carries `Authorization: Bearer <token>`; the
//!   token's SHA-256 names a user (`vigil users add` makes them). No or an unknown
//!   token: 401.
//! - **What they may see**: a platform admin, everything; a doctor, a patient's data
//!   only while on the patient's care team (responsible doctor or specialist) or while
//!   an escalation target of one of the patient's open alerts (the doctors its level
//!   reaches now); an institution admin, no single patient's data (aggregates come
//!   with the dashboards). Refused: 403. The audit trail is for platform admins only.
//! - **Recorded**: every request to `/api/v1/`, allowed or refused, in the tamper-evident
//!   audit trail (`vigil_store::access`): who, when, what, which patient pseudonym,
//!   from where, and the outcome.
//!
//! With `auth` off (the default until the dashboards' login arrives; keep the API on
//! loopback then) requests are not checked, and still recorded, as actor `-`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use vigil_model::{DoctorId, PatientId};
use vigil_store::access::{AuditEntry, Role, User, sha256_hex};

use crate::AppState;

/// The patient a path is about (`/api/v1/patients/{id}/...`).
fn patient_of(path: &str) -> Option<String> {
    path.strip_prefix("/api/v1/patients/")?
        .split('/')
        .next()
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
}

fn action_of(method: &Method, path: &str, query: Option<&str>) -> &'static str {
    if method == Method::GET {
        if query.is_some_and(|q| q.contains("format=csv")) {
            "export"
        } else {
            "read"
        }
    } else if path.ends_with("/ack") {
        "ack"
    } else if path.ends_with("/resolve") {
        "resolve"
    } else {
        "write"
    }
}

/// Whether `user` may see `patient`'s data now.
pub async fn may_see_patient(s: &AppState, user: &User, patient: &str) -> bool {
    match user.role {
        Role::PlatformAdmin => true,
        Role::InstitutionAdmin => false,
        Role::Doctor => {
            let (Some(doctor), Some(registry), Ok(pid)) = (
                user.doctor_id
                    .as_deref()
                    .and_then(|d| DoctorId::parse(d).ok()),
                s.registry.as_ref().map(|r| r()),
                PatientId::parse(patient),
            ) else {
                return false;
            };
            let Some(p) = registry.patients.get(&pid) else {
                return false;
            };
            if p.care_team.responsible == doctor || p.care_team.specialist.as_ref() == Some(&doctor)
            {
                return true;
            }
            // An escalation target of an open alert, for the alert's duration.
            let now = s.clock.now();
            let Ok(events) = s.store.alert_events(Some(&pid)).await else {
                return false;
            };
            let mut latest: std::collections::HashMap<&str, &vigil_store::AlertEventRecord> =
                std::collections::HashMap::new();
            for e in &events {
                latest.insert(e.alert_id.as_str(), e);
            }
            latest.values().any(|e| {
                e.change != "resolved"
                    && vigil_ingest::deliver::routed(&registry, e, now).contains(&doctor)
            })
        }
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "error": message }).to_string(),
    )
        .into_response()
}

/// The middleware: identifies, authorizes and records every `/api/v1/` request.
pub async fn guard(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if !path.starts_with("/api/v1/") {
        return next.run(req).await;
    }
    let origin = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or("-".to_owned(), |c| c.0.ip().to_string());
    let patient = patient_of(&path);
    let action = action_of(req.method(), &path, req.uri().query());
    let resource = format!("{} {}", req.method(), path);
    let user = if s.auth {
        let token = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match token {
            Some(t) => s
                .store
                .user_by_token(&sha256_hex(t.as_bytes()))
                .await
                .ok()
                .flatten(),
            None => None,
        }
    } else {
        None
    };
    let record = |actor: &str, outcome: String| AuditEntry {
        at: s.clock.now(),
        actor: actor.to_owned(),
        action: action.to_owned(),
        resource: resource.clone(),
        patient: patient.clone(),
        origin: origin.clone(),
        outcome,
    };
    // Who, and whether they may.
    let refusal = match (&user, s.auth) {
        (None, true) => Some((
            StatusCode::UNAUTHORIZED,
            "a valid API token is required: Authorization: Bearer <token> (vigil users add makes one)",
        )),
        (Some(u), true) => {
            if path.starts_with("/api/v1/audit") && u.role != Role::PlatformAdmin {
                Some((
                    StatusCode::FORBIDDEN,
                    "the audit trail is for platform admins",
                ))
            } else {
                match &patient {
                    Some(p) if !may_see_patient(&s, u, p).await => Some((
                        StatusCode::FORBIDDEN,
                        "no care relationship with this patient: not on the care team, not an escalation target of an open alert",
                    )),
                    _ => None,
                }
            }
        }
        (_, false) => None,
    };
    let actor = user.as_ref().map_or("-", |u| u.id.as_str()).to_owned();
    if let Some((status, message)) = refusal {
        if let Err(e) = s
            .store
            .audit(&record(&actor, format!("refused: {}", status.as_u16())))
            .await
        {
            eprintln!(
                "vigil: the audit trail cannot be written ({e}); the request is refused anyway"
            );
        }
        return refuse(status, message);
    }
    req.extensions_mut().insert(user);
    // Recorded before the answer leaves: an access that cannot be recorded is refused.
    if s.store
        .audit(&record(&actor, "allowed".to_owned()))
        .await
        .is_err()
    {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the audit trail cannot be written; retry shortly",
        );
    }
    next.run(req).await
}
