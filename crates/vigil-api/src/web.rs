//! The web dashboard, served by `vigil serve` itself: one HTML page, a script and a
//! style sheet, embedded in the binary (nothing to install, nothing fetched from
//! elsewhere). The page talks to the API of this same server with the session cookie
//! ([`crate::session`]). Pages (hash routes): `#/login`, `#/inbox` (the doctor's open
//! alerts, live over Server-Sent Events, acknowledged with read-back and resolved in
//! place), `#/patient/{id}` (trends with thresholds drawn, summaries, alert history).
//! Chinese (zh-CN) by default, English at a click; laid out for a phone's width too.
//!
//! Every answer carries a strict Content-Security-Policy (own origin only, no inline
//! script), `X-Content-Type-Options: nosniff` and no framing.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const INDEX: &str = include_str!("../web/index.html");
const SCRIPT: &str = include_str!("../web/app.js");
const STYLE: &str = include_str!("../web/app.css");

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
}

/// The dashboard's routes: `/` (the page), `/ui/app.js`, `/ui/app.css`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/ui/app.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/ui/app.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}
