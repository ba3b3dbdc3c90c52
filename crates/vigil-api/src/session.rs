//! Web sessions: signing in with a password, the session cookie, signing out.
//!
//! - `POST /api/v1/session` with `{"user", "password"}`: on success a new session
//!   (a random 256-bit token; only its SHA-256 is kept) for [`SESSION_TTL`], set as the
//!   cookie `vigil_session` (`HttpOnly`, `SameSite=Strict`, `Path=/`, and `Secure` when
//!   the request came through an HTTPS proxy, `X-Forwarded-Proto: https`). A wrong user
//!   or password gets one answer (401) whichever it was; [`MAX_FAILURES`] failures in a
//!   row lock the user out for [`LOCKOUT`] (429). Every attempt is in the audit trail
//!   (action `login`), with the reason of a refusal.
//! - `GET /api/v1/session`: who is signed in (and whether this server requires it).
//! - `DELETE /api/v1/session`: signs out (the session ends in the store; the cookie is
//!   cleared).
//!
//! [`MAX_FAILURES`]: vigil_store::access::MAX_FAILURES
//! [`LOCKOUT`]: vigil_store::access::LOCKOUT

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use vigil_store::access::{AuditEntry, SignIn, User, random_token, sha256_hex};

use crate::{ApiError, AppState};

/// How long a web session lasts from sign-in.
pub const SESSION_TTL: chrono::TimeDelta = chrono::TimeDelta::hours(12);

/// The session cookie's name.
pub const COOKIE: &str = "vigil_session";

/// The session token in a request's cookies.
pub fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

#[derive(Debug, Deserialize)]
pub struct SignInBody {
    user: String,
    password: String,
}

fn who(u: &User) -> serde_json::Value {
    json!({"user": u.id, "role": u.role.as_str(), "doctor_id": u.doctor_id,
           "institution_id": u.institution_id})
}

/// `POST /api/v1/session`.
pub async fn sign_in(
    State(s): State<AppState>,
    connect: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Json(body): Json<SignInBody>,
) -> Result<Response, ApiError> {
    let now = s.clock.now();
    let origin = connect.map_or("-".to_owned(), |c| c.0.0.ip().to_string());
    let outcome = s.store.sign_in(&body.user, &body.password, now).await?;
    let (actor, result) = match &outcome {
        SignIn::Ok(u) => (u.id.clone(), "allowed".to_owned()),
        SignIn::Refused(why) => (body.user.clone(), format!("refused: 401 ({why})")),
        SignIn::Locked(_) => (body.user.clone(), "refused: 429 (locked out)".to_owned()),
    };
    // The attempted user id is recorded only if it is well formed (it is what the
    // client typed: it could be anything, a password included).
    let actor = if vigil_model::id::check_id(&actor).is_ok() {
        actor
    } else {
        "-".to_owned()
    };
    s.store
        .audit(&AuditEntry {
            at: now,
            actor,
            action: "login".to_owned(),
            resource: "POST /api/v1/session".to_owned(),
            patient: None,
            origin,
            outcome: result,
        })
        .await?;
    let user = match outcome {
        SignIn::Ok(u) => u,
        SignIn::Refused(_) => {
            return Ok((
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": "the user or the password is wrong"})),
            )
                .into_response());
        }
        SignIn::Locked(until) => {
            return Ok((
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({"error": format!(
                    "too many wrong passwords in a row: sign-in is locked until {}; an administrator can set a new password with vigil users password",
                    until.to_rfc3339()
                )})),
            )
                .into_response());
        }
    };
    let token = random_token()?;
    let expires = now + SESSION_TTL;
    s.store
        .add_session(&sha256_hex(token.as_bytes()), &user.id, now, expires)
        .await?;
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_TTL.num_seconds(),
        if secure { "; Secure" } else { "" }
    );
    let mut body = who(&user);
    body["expires_at"] = json!(expires.to_rfc3339());
    Ok((StatusCode::OK, [(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

/// `GET /api/v1/session`: the signed-in user; with `auth` off, says so.
pub async fn current(
    State(s): State<AppState>,
    user: Option<axum::Extension<Option<User>>>,
) -> Json<serde_json::Value> {
    match user.and_then(|u| u.0) {
        Some(u) => {
            let mut body = who(&u);
            body["auth"] = json!(s.auth);
            Json(body)
        }
        None => Json(json!({"auth": s.auth, "user": null})),
    }
}

/// `DELETE /api/v1/session`: signs out.
pub async fn sign_out(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = cookie_token(&headers) {
        s.store
            .end_session(&sha256_hex(token.as_bytes()), s.clock.now())
            .await?;
    }
    let clear = format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok((
        StatusCode::OK,
        [(header::SET_COOKIE, clear)],
        Json(json!({"signed_out": true})),
    )
        .into_response())
}
