//! Break-glass access: a doctor who must see a patient outside any care relationship
//! (a patient brought to them in an emergency) opens the glass with a reason, and reads
//! the patient for [`BREAK_GLASS_TTL`]. Every such opening, and every access made
//! through it, is in the audit trail flagged `allowed: break-glass`, and each opening
//! waits in a review list for a platform admin.
//!
//! - `POST /api/v1/patients/{id}/break-glass` `{"reason"}` (doctors; a reason of at
//!   least 10 characters; the patient must be in the registry): 201 with the access's
//!   id and until when.
//! - `GET /api/v1/break-glass?unreviewed=true` (platform admins): the openings, newest
//!   first.
//! - `POST /api/v1/break-glass/{id}/review` `{"note"}` (platform admins): records the
//!   review; 409 when already reviewed.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use vigil_store::access::User;

use crate::{ApiError, AppState, signed_in};

/// How long a break-glass access lasts.
pub const BREAK_GLASS_TTL: chrono::TimeDelta = chrono::TimeDelta::hours(4);

/// The shortest reason accepted.
pub const MIN_REASON_CHARS: usize = 10;

#[derive(Debug, Deserialize)]
pub(crate) struct OpenBody {
    reason: String,
}

/// `POST /api/v1/patients/{id}/break-glass`.
pub(crate) async fn open(
    State(s): State<AppState>,
    Path(id): Path<String>,
    user: Option<axum::Extension<Option<User>>>,
    Json(body): Json<OpenBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = signed_in(user).ok_or_else(|| {
        ApiError::BadRequest(
            "break-glass access is for a signed-in doctor (sign-in is off on this server)"
                .to_owned(),
        )
    })?;
    let pid = vigil_model::PatientId::parse(&id)
        .map_err(|e| ApiError::BadRequest(format!("patient id {e}")))?;
    let reason = body.reason.trim();
    if reason.chars().count() < MIN_REASON_CHARS {
        return Err(ApiError::BadRequest(format!(
            "'reason' must say why (at least {MIN_REASON_CHARS} characters): it is reviewed"
        )));
    }
    let known = s
        .registry
        .as_ref()
        .map(|r| r())
        .is_some_and(|r| r.patients.contains_key(&pid));
    if !known {
        return Err(ApiError::NotFound(format!(
            "no patient {id:?} in the registry"
        )));
    }
    let now = s.clock.now();
    let until = now + BREAK_GLASS_TTL;
    let access = s
        .store
        .open_break_glass(&user.id, pid.as_str(), reason, now, until)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"id": access, "patient_id": pid, "until": until.to_rfc3339(),
                    "review": "this access is flagged for review by a platform admin"}),
        ),
    ))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    unreviewed: Option<bool>,
    limit: Option<u32>,
}

/// `GET /api/v1/break-glass`.
pub(crate) async fn list(
    State(s): State<AppState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let rows = s
        .store
        .break_glass_list(
            q.unreviewed.unwrap_or(false),
            q.limit.unwrap_or(100).clamp(1, 1000),
        )
        .await?;
    let rows: Vec<Value> = rows
        .iter()
        .map(|b| {
            json!({"id": b.id, "user": b.user_id, "patient_id": b.patient, "reason": b.reason,
                   "at": b.at.to_rfc3339(), "until": b.until.to_rfc3339(),
                   "reviewed_by": b.review.as_ref().map(|r| &r.0),
                   "reviewed_at": b.review.as_ref().map(|r| r.1.to_rfc3339()),
                   "review_note": b.review.as_ref().map(|r| &r.2)})
        })
        .collect();
    Ok(Json(json!({ "break_glass": rows })))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ReviewBody {
    note: String,
}

/// `POST /api/v1/break-glass/{id}/review`.
pub(crate) async fn review(
    State(s): State<AppState>,
    Path(id): Path<i64>,
    user: Option<axum::Extension<Option<User>>>,
    Json(body): Json<ReviewBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let reviewer = signed_in(user).map_or_else(|| "-".to_owned(), |u| u.id);
    if body.note.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "'note' is empty: say what the review found (justified, or what follows)".to_owned(),
        ));
    }
    if s.store
        .review_break_glass(id, &reviewer, body.note.trim(), s.clock.now())
        .await?
    {
        Ok((
            StatusCode::OK,
            Json(json!({"id": id, "reviewed_by": reviewer})),
        ))
    } else {
        Err(ApiError::Conflict(format!(
            "break-glass access {id} does not exist or was already reviewed"
        )))
    }
}
