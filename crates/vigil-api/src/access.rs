//! Authentication, authorization by care relationship, and the audit of every API
//! request (`/api/v1/...`).
//!
//! - **Who**: with `auth` on, a request carries `Authorization: Bearer <token>` (an
//!   integration's API token) or the web session's cookie ([`crate::session`]); the
//!   token's SHA-256 names a user (`vigil users add` makes them). No or an unknown
//!   token, or an expired session: 401. A request that changes something with the
//!   cookie must come from this server's own pages (its `Origin` names the `Host` it
//!   was sent to), besides the cookie's `SameSite=Strict`: 403 otherwise.
//! - **What they may see**: a platform admin, everything; a doctor, a patient's data
//!   (`/patients/{id}/...`, `alert-events?patient=`, acting on an alert) only while on
//!   the patient's care team (responsible doctor or specialist), on an open referral
//!   of the patient (registry `[[referral]]`), or while an escalation
//!   target of one of the patient's open alerts (the doctors its level reaches now),
//!   their own alert stream, and acknowledgements and resolutions only as themselves;
//!   an institution admin, no single patient's data, and their institution's
//!   population figures (`/overview`). A doctor outside the care relationship reaches a
//!   patient through a break-glass access they opened with a reason
//!   ([`crate::break_glass`]), each access then flagged `allowed: break-glass`. What spans patients (the quarantine, the register, operational
//!   alerts, delivery states, the audit trail) is for platform admins. Refused: 403.
//! - **Recorded**: every request to `/api/v1/`, allowed or refused, in the tamper-evident
//!   audit trail (`vigil_store::access`): who, when, what, which patient pseudonym,
//!   from where, and the outcome.
//!
//! With `auth` off (the default for now; keep the API on loopback then) requests are
//! not checked, and still recorded, as actor `-`.

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
    if path.contains("/overrides/") && method != Method::GET {
        "override"
    } else if path.contains("/referrals") && method != Method::GET {
        "referral"
    } else if method == Method::GET {
        if query.is_some_and(|q| q.contains("format=csv"))
            || path == "/api/v1/registry"
            || path.ends_with("/report")
        {
            "export"
        } else {
            "read"
        }
    } else if path.ends_with("/ack") {
        "ack"
    } else if path.ends_with("/resolve") {
        "resolve"
    } else if path.ends_with("/break-glass") {
        "break_glass"
    } else if path.ends_with("/review") {
        "review"
    } else {
        "write"
    }
}

/// How a user reaches a patient's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A platform admin.
    Role,
    /// The care team or an open alert's escalation.
    CareRelationship,
    /// A break-glass access ([`crate::break_glass`]): flagged in the audit trail.
    BreakGlass,
}

/// Whether `user` may see `patient`'s data now: through a care relationship, else
/// through a break-glass access they opened.
pub async fn access_to_patient(s: &AppState, user: &User, patient: &str) -> Option<Via> {
    if user.role == Role::PlatformAdmin {
        return Some(Via::Role);
    }
    if may_see_patient(s, user, patient).await {
        return Some(Via::CareRelationship);
    }
    let glass = user.role == Role::Doctor
        && s.store
            .has_break_glass(&user.id, patient, s.clock.now())
            .await
            .unwrap_or(false);
    glass.then_some(Via::BreakGlass)
}

/// Whether `user` may see `patient`'s data now through their role or a care
/// relationship (a break-glass access aside: [`access_to_patient`]).
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
            // An open referral to the doctor.
            let now = s.clock.now();
            if registry.referred_to(&pid, &doctor, now) {
                return true;
            }
            // An escalation target of an open alert, for the alert's duration.
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

const NO_CARE: &str = "no care relationship with this patient: not on the care team, not an escalation target of an open alert; in an emergency a doctor may open break-glass access with a reason (POST /api/v1/patients/{id}/break-glass), which is reviewed";

/// The value of `key` in a query string.
fn query_value<'q>(query: Option<&'q str>, key: &str) -> Option<&'q str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// Why a request is refused: its status and message.
type Refusal = (StatusCode, &'static str);

/// Whether `user` may make this request (`Ok`, with how when it concerns a patient) or
/// why not. `patient` is set to the patient the request turns out to concern (for the
/// audit).
async fn authorize(
    s: &AppState,
    u: &User,
    (changes, path, query): (bool, &str, Option<&str>),
    patient: &mut Option<String>,
) -> Result<Option<Via>, Refusal> {
    if u.role == Role::PlatformAdmin {
        return Ok(Some(Via::Role));
    }
    let forbidden = |why| Err((StatusCode::FORBIDDEN, why));
    let through_care = |via: Option<Via>| via.map(Some).ok_or((StatusCode::FORBIDDEN, NO_CARE));
    // Opening the glass: any doctor, for any patient (the reason is checked, and
    // reviewed later).
    if path.starts_with("/api/v1/patients/") && path.ends_with("/break-glass") {
        return if u.role == Role::Doctor {
            Ok(None)
        } else {
            forbidden("break-glass access is for doctors")
        };
    }
    // Changing the registry: platform admins, but for a patient's rule overrides, set
    // by the patient's care team.
    // (Referrals, like overrides, are the care team's.)
    let is_override = path.contains("/overrides/") || path.contains("/referrals");
    if changes && is_registry_write(path) && !is_override {
        return forbidden(
            "changing the registry is for platform admins (a patient's care team sets the patient's rule overrides)",
        );
    }
    // A patient's data: only through a care relationship (or a break-glass access,
    // which opens reading, not changing thresholds).
    if let Some(p) = patient.clone() {
        let via = through_care(access_to_patient(s, u, &p).await)?;
        if is_override && (via == Some(Via::BreakGlass) || u.role != Role::Doctor) {
            return forbidden(
                "a patient's rule overrides and referrals are set by the patient's care team",
            );
        }
        return Ok(via);
    }
    let rest = path.strip_prefix("/api/v1/").unwrap_or("");
    match rest.split('/').collect::<Vec<_>>().as_slice() {
        // Alert events: of one patient the doctor may see.
        ["alert-events"] => match query_value(query, "patient") {
            Some(p) => {
                *patient = Some(p.to_owned());
                through_care(access_to_patient(s, u, p).await)
            }
            None => forbidden(
                "name the patient (?patient=): a doctor sees the alert events of their patients only",
            ),
        },
        // A doctor's own live stream.
        ["alerts", "stream"] => {
            let own = u
                .doctor_id
                .as_deref()
                .is_some_and(|d| query_value(query, "doctor") == Some(d));
            if own {
                Ok(None)
            } else {
                forbidden("a doctor opens their own alert stream only (?doctor=<their id>)")
            }
        }
        // Acting on an alert: of a patient the doctor may see (and as themselves: the
        // handler checks `by`).
        ["alerts", id, "ack" | "resolve"] => {
            let Ok(Some(e)) = s.store.latest_alert_event(id).await else {
                return Ok(None); // the handler says it does not exist
            };
            *patient = Some(e.patient_id.to_string());
            through_care(access_to_patient(s, u, e.patient_id.as_str()).await)
        }
        // Who is signed in: anyone.
        ["session"] => Ok(None),
        // A doctor's own inbox.
        ["inbox"] => {
            let own = u
                .doctor_id
                .as_deref()
                .is_some_and(|d| query_value(query, "doctor").is_none_or(|q| q == d));
            if own {
                Ok(None)
            } else {
                forbidden("a doctor opens their own inbox only")
            }
        }
        // The audit trail: an institution admin sees the entries about their
        // institution's patients (the handler filters); platform admins all.
        ["audit"] if u.role == Role::InstitutionAdmin => Ok(None),
        // Population figures: an institution admin's own institution.
        ["overview"] => {
            let own = u.role == Role::InstitutionAdmin
                && u.institution_id
                    .as_deref()
                    .is_some_and(|i| query_value(query, "institution").is_none_or(|q| q == i));
            if own {
                Ok(None)
            } else {
                forbidden(
                    "the overview is for institution admins (their institution) and platform admins",
                )
            }
        }
        // The staff directory and the institutions: anyone signed in. The patient list:
        // anyone, filtered to their care teams' patients by the handler (an
        // institution admin sees none yet).
        ["institutions"] | ["doctors"] | ["patients"] => Ok(None),
        // Everything else (the quarantine, the register, operational alerts, delivery
        // states, the audit trail, gateways and devices) spans patients: platform
        // admins only for now.
        _ => forbidden("this part of the API is for platform admins"),
    }
}

/// Whether a path changes the registry when written to (registry_write's routes).
fn is_registry_write(path: &str) -> bool {
    let rest = path.strip_prefix("/api/v1/").unwrap_or("");
    let parts: Vec<&str> = rest.split('/').collect();
    matches!(
        parts.as_slice(),
        ["registry"]
            | ["institutions"
                | "doctors"
                | "patients"
                | "gateways"
                | "devices"
                | "assignments"
                | "on-call"]
            | [
                "institutions" | "doctors" | "patients" | "gateways" | "devices",
                _
            ]
            | ["assignments", "end"]
            | ["patients", _, "overrides", _]
            | ["patients", _, "care-team"]
            | ["patients", _, "referrals", ..]
    )
}

/// Whether the request's `Origin` names the host it was sent to (`Host`).
fn same_origin(headers: &axum::http::HeaderMap) -> bool {
    let get = |h| headers.get(h).and_then(|v| v.to_str().ok());
    match (get(header::ORIGIN), get(header::HOST)) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest.trim_end_matches('/') == host),
        _ => false,
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
    // The API's own description is public and not a data access; signing in is
    // recorded by its handler, which alone knows who it was.
    if !path.starts_with("/api/v1/")
        || path == "/api/v1/openapi.json"
        || (path == "/api/v1/session" && req.method() == Method::POST)
    {
        return next.run(req).await;
    }
    let origin = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or("-".to_owned(), |c| c.0.ip().to_string());
    let mut patient = patient_of(&path);
    let query = req.uri().query().map(str::to_owned);
    let action = action_of(req.method(), &path, req.uri().query());
    let resource = format!("{} {}", req.method(), path);
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let cookie = crate::session::cookie_token(req.headers());
    // A store that does not answer is not a missing sign-in: 503, not 401.
    let (user, by_cookie) = match (s.auth, bearer, cookie) {
        (false, _, _) => (Ok(None), false),
        (true, Some(t), _) => (
            s.store.user_by_token(&sha256_hex(t.as_bytes())).await,
            false,
        ),
        (true, None, Some(c)) => (
            s.store
                .user_by_session(&sha256_hex(c.as_bytes()), s.clock.now())
                .await,
            true,
        ),
        (true, None, None) => (Ok(None), false),
    };
    let store_answered = user.is_ok();
    let user = user.ok().flatten();
    let changes = !matches!(*req.method(), Method::GET | Method::HEAD);
    // Who, and whether they may.
    let decision = match (&user, s.auth) {
        (None, true) if !store_answered => Err((
            StatusCode::SERVICE_UNAVAILABLE,
            "the clinical store did not answer while checking who you are: retry",
        )),
        (None, true) => Err((
            StatusCode::UNAUTHORIZED,
            "sign in (POST /api/v1/session) or send an API token: Authorization: Bearer <token> (vigil users add makes one)",
        )),
        (Some(_), true) if by_cookie && changes && !same_origin(req.headers()) => Err((
            StatusCode::FORBIDDEN,
            "a change made with the session cookie must come from this server's own pages (Origin does not match Host)",
        )),
        (Some(u), true) => authorize(&s, u, (changes, &path, query.as_deref()), &mut patient).await,
        (_, false) => Ok(None),
    };
    // Openings of the glass, and accesses through it, are flagged for review.
    let allowed = if matches!(decision, Ok(Some(Via::BreakGlass))) || action == "break_glass" {
        "allowed: break-glass"
    } else {
        "allowed"
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
    let actor = user.as_ref().map_or("-", |u| u.id.as_str()).to_owned();
    if let Err((status, message)) = decision {
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
        .audit(&record(&actor, allowed.to_owned()))
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
