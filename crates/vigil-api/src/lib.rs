//! Vigil's HTTP surface (axum): health, readiness, Prometheus metrics, and the first
//! read API over the clinical store.
//!
//! | route | what |
//! |---|---|
//! | `GET /healthz` | 200 while the process runs |
//! | `GET /readyz` | 200 when the MQTT subscription is confirmed and the store answers, else 503; with the intake's cheap counters (readings received, publishes pending) |
//! | `GET /metrics` | Prometheus text: received, stored by type, quarantined by reason, duplicates, acked publishes, commit latency; the sink's, rule engine's, deliverers' and gap detector's counters when they run |
//! | `GET /api/v1/patients/{id}/readings?type=&from=&to=&limit=&order=` | a patient's readings, oldest first (`order=desc`: newest first), canonical and original |
//! | `GET /api/v1/quarantine?reason=&gateway=&limit=` | quarantined readings, newest first, with reason and message |
//! | `GET /api/v1/alert-events?patient=&limit=` | the alert events the rule engine kept, newest first |
//! | `POST /api/v1/alerts/{id}/ack` | acknowledge with read-back `{"read_back", "by"}` (a mismatch is refused, 422) |
//! | `POST /api/v1/alerts/{id}/resolve` | resolve with `{"note", "by"}` |
//! | `GET /api/v1/critical-values?format=json|csv` | the 危急值 register, and per institution the median and 90th percentile from detection to acknowledgement |
//! | `GET /api/v1/alerts/stream?doctor=` | Server-Sent Events: each alert event (`vigil.alert.v1`) as it is kept, to the doctor it reaches (all events without `doctor`); resumes after `Last-Event-ID` |
//!
//! **No authentication yet**: the routes serve personal health data, so `vigil serve`
//! binds them to the loopback interface by default. Authentication, care-relationship
//! access control and the audit trail arrive with the dashboards issue (9).
//!
//! Errors map through one table ([`ApiError`]) to a status and a JSON body
//! `{"error": "..."}` that names what the client can fix and never carries internal
//! detail or patient data.

pub mod access;
pub mod break_glass;
pub mod inbox;
pub mod overview;
mod registry_api;
pub mod registry_write;
pub mod report;
pub mod session;
pub mod summary;
pub mod web;

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use vigil_ingest::intake::IntakeStats;
use vigil_ingest::rules::RuleStats;
use vigil_model::vocab::{QuarantineReason, ReadingType};
use vigil_model::{GatewayId, PatientId};
use vigil_store::SqliteStore;
use vigil_tsdb::SinkStats;

/// What the routes read.
#[derive(Clone)]
pub struct AppState {
    pub store: SqliteStore,
    pub stats: Arc<IntakeStats>,
    /// The telemetry sink's counters, when one runs.
    pub sink: Option<Arc<SinkStats>>,
    /// The rule engine's counters, when it runs.
    pub rules: Option<Arc<RuleStats>>,
    /// The registry in force (alert routing for the event stream), when one is loaded.
    pub registry: Option<vigil_ingest::rules::CurrentRegistry>,
    /// The alert deliverer's counters and latency, when it runs.
    pub delivery: Option<Arc<vigil_ingest::deliver::DeliveryStats>>,
    /// The webhook deliverer's counters, when it runs.
    pub webhooks: Option<Arc<vigil_ingest::webhook::WebhookStats>>,
    /// The gap detector's counters (wire guarantee 6), when it runs.
    pub gaps: Option<Arc<vigil_ingest::gaps::GapStats>>,
    /// The platform's clock (the demo's is accelerated): actions are stamped with it.
    pub clock: Arc<dyn vigil_model::clock::Clock>,
    /// A patient's institution (for per-institution figures), when a registry is loaded.
    pub institutions: Option<vigil_ingest::intake::InstitutionLookup>,
    /// API tokens required, and access by care relationship ([`access`]).
    pub auth: bool,
    /// The registry file, when this server may change it through the API
    /// ([`registry_write`]).
    pub registry_file: Option<Arc<registry_write::RegistryFile>>,
}

impl AppState {
    /// A state over `store` on `clock` with nothing else running: no sink, rule engine,
    /// deliverers, gap detector, registry or registry file, sign-in off. The rest is
    /// set with struct update syntax (`AppState { auth: true, ..AppState::new(..) }`).
    pub fn new(store: SqliteStore, clock: Arc<dyn vigil_model::clock::Clock>) -> AppState {
        AppState {
            store,
            stats: Arc::new(IntakeStats::default()),
            sink: None,
            rules: None,
            registry: None,
            delivery: None,
            webhooks: None,
            gaps: None,
            clock,
            institutions: None,
            auth: false,
            registry_file: None,
        }
    }
}

/// The OpenAPI 3.1 description of this API, served at `/api/v1/openapi.json`.
pub const OPENAPI: &str = include_str!("../openapi/openapi.json");

/// Every route: (method, path), as the OpenAPI document names them. A test checks the
/// document and the router against it.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/api/v1/openapi.json"),
    ("get", "/api/v1/patients/{id}/readings"),
    ("get", "/api/v1/quarantine"),
    ("get", "/api/v1/alert-events"),
    ("get", "/api/v1/alerts/stream"),
    ("post", "/api/v1/alerts/{id}/ack"),
    ("post", "/api/v1/alerts/{id}/resolve"),
    ("get", "/api/v1/alerts/{id}/deliveries"),
    ("get", "/api/v1/critical-values"),
    ("get", "/api/v1/ops/alerts"),
    ("get", "/api/v1/audit"),
    ("get", "/api/v1/institutions"),
    ("get", "/api/v1/doctors"),
    ("get", "/api/v1/patients"),
    ("get", "/api/v1/patients/{id}"),
    ("get", "/api/v1/gateways"),
    ("get", "/api/v1/devices"),
    ("post", "/api/v1/session"),
    ("get", "/api/v1/session"),
    ("delete", "/api/v1/session"),
    ("get", "/api/v1/inbox"),
    ("get", "/api/v1/patients/{id}/summary"),
    ("get", "/api/v1/overview"),
    ("post", "/api/v1/patients/{id}/break-glass"),
    ("get", "/api/v1/break-glass"),
    ("post", "/api/v1/break-glass/{id}/review"),
    ("get", "/api/v1/registry"),
    ("put", "/api/v1/registry"),
    ("post", "/api/v1/institutions"),
    ("put", "/api/v1/institutions/{id}"),
    ("delete", "/api/v1/institutions/{id}"),
    ("post", "/api/v1/doctors"),
    ("put", "/api/v1/doctors/{id}"),
    ("delete", "/api/v1/doctors/{id}"),
    ("post", "/api/v1/patients"),
    ("put", "/api/v1/patients/{id}"),
    ("delete", "/api/v1/patients/{id}"),
    ("post", "/api/v1/gateways"),
    ("put", "/api/v1/gateways/{id}"),
    ("delete", "/api/v1/gateways/{id}"),
    ("post", "/api/v1/devices"),
    ("put", "/api/v1/devices/{id}"),
    ("delete", "/api/v1/devices/{id}"),
    ("get", "/api/v1/assignments"),
    ("post", "/api/v1/assignments"),
    ("post", "/api/v1/assignments/end"),
    ("get", "/api/v1/on-call"),
    ("post", "/api/v1/on-call"),
    ("delete", "/api/v1/on-call"),
    ("put", "/api/v1/patients/{id}/care-team"),
    ("put", "/api/v1/patients/{id}/overrides/{rule}"),
    ("delete", "/api/v1/patients/{id}/overrides/{rule}"),
    ("get", "/api/v1/patients/{id}/report"),
    ("post", "/api/v1/patients/{id}/referrals"),
    ("delete", "/api/v1/patients/{id}/referrals/{doctor}"),
];

/// The router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/patients/{id}/readings", get(readings))
        .route("/api/v1/quarantine", get(quarantine))
        .route("/api/v1/alert-events", get(alert_events))
        .route("/api/v1/alerts/{id}/ack", axum::routing::post(acknowledge))
        .route("/api/v1/alerts/{id}/resolve", axum::routing::post(resolve))
        .route("/api/v1/critical-values", get(critical_values))
        .route("/api/v1/alerts/stream", get(alert_stream))
        .route("/api/v1/alerts/{id}/deliveries", get(alert_deliveries))
        .route("/api/v1/ops/alerts", get(ops_alerts))
        .route("/api/v1/audit", get(audit))
        .route(
            "/api/v1/institutions",
            get(registry_api::institutions).post(registry_write::create),
        )
        .route(
            "/api/v1/doctors",
            get(registry_api::doctors).post(registry_write::create),
        )
        .route(
            "/api/v1/patients",
            get(registry_api::patients).post(registry_write::create),
        )
        .route(
            "/api/v1/patients/{id}",
            get(registry_api::patient)
                .put(registry_write::replace)
                .delete(registry_write::remove),
        )
        .route(
            "/api/v1/gateways",
            get(registry_api::gateways).post(registry_write::create),
        )
        .route(
            "/api/v1/devices",
            get(registry_api::devices).post(registry_write::create),
        )
        .route(
            "/api/v1/institutions/{id}",
            axum::routing::put(registry_write::replace).delete(registry_write::remove),
        )
        .route(
            "/api/v1/doctors/{id}",
            axum::routing::put(registry_write::replace).delete(registry_write::remove),
        )
        .route(
            "/api/v1/gateways/{id}",
            axum::routing::put(registry_write::replace).delete(registry_write::remove),
        )
        .route(
            "/api/v1/devices/{id}",
            axum::routing::put(registry_write::replace).delete(registry_write::remove),
        )
        .route(
            "/api/v1/assignments",
            get(registry_api::assignments).post(registry_write::create),
        )
        .route(
            "/api/v1/assignments/end",
            axum::routing::post(registry_write::end_assignment),
        )
        .route(
            "/api/v1/on-call",
            get(registry_api::on_call)
                .post(registry_write::create)
                .delete(registry_write::remove_on_call),
        )
        .route(
            "/api/v1/patients/{id}/care-team",
            axum::routing::put(registry_write::set_care_team),
        )
        .route(
            "/api/v1/patients/{id}/overrides/{rule}",
            axum::routing::put(registry_write::set_override)
                .delete(registry_write::remove_override),
        )
        .route("/api/v1/patients/{id}/report", get(report::report))
        .route(
            "/api/v1/patients/{id}/referrals",
            axum::routing::post(registry_write::refer),
        )
        .route(
            "/api/v1/patients/{id}/referrals/{doctor}",
            axum::routing::delete(registry_write::close_referral),
        )
        .route(
            "/api/v1/registry",
            get(registry_write::export).put(registry_write::import),
        )
        .route(
            "/api/v1/session",
            get(session::current)
                .post(session::sign_in)
                .delete(session::sign_out),
        )
        .route("/api/v1/inbox", get(inbox::inbox))
        .route("/api/v1/overview", get(overview::overview))
        .route(
            "/api/v1/patients/{id}/break-glass",
            axum::routing::post(break_glass::open),
        )
        .route("/api/v1/break-glass", get(break_glass::list))
        .route(
            "/api/v1/break-glass/{id}/review",
            axum::routing::post(break_glass::review),
        )
        .route(
            "/api/v1/patients/{id}/summary",
            get(summary::patient_summary),
        )
        .merge(web::routes())
        .route(
            "/api/v1/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::guard,
        ))
        .with_state(state)
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("store", &self.store)
            .field("sink", &self.sink.is_some())
            .field("rules", &self.rules.is_some())
            .finish_non_exhaustive()
    }
}

/// The signed-in user a handler was given by the access middleware (none with `auth`
/// off).
pub(crate) type SignedIn = Option<axum::Extension<Option<vigil_store::access::User>>>;

/// The signed-in user, if any.
pub(crate) fn signed_in(user: SignedIn) -> Option<vigil_store::access::User> {
    user.and_then(|u| u.0)
}

/// The registry in force, or a 400 saying none is loaded.
pub(crate) fn registry_in_force(s: &AppState) -> Result<Arc<vigil_registry::Registry>, ApiError> {
    s.registry
        .as_ref()
        .map(|r| r())
        .ok_or_else(|| ApiError::BadRequest("no registry is loaded".to_owned()))
}

/// Every error a route returns, mapped in one place.
#[derive(Debug)]
pub enum ApiError {
    /// A parameter the client can fix.
    BadRequest(String),
    /// No such thing.
    NotFound(String),
    /// Understood, and refused (a read-back that does not match).
    Refused(String),
    /// Not this user's to do.
    Forbidden(String),
    /// In a state that does not allow it (already done).
    Conflict(String),
    /// A change that would leave something invalid: every problem.
    Invalid {
        message: String,
        problems: Vec<String>,
    },
    /// The store failed; details stay in the server.
    Unavailable,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::BadRequest(m)
            | ApiError::NotFound(m)
            | ApiError::Refused(m)
            | ApiError::Forbidden(m)
            | ApiError::Conflict(m) => f.write_str(m),
            ApiError::Invalid { message, problems } => {
                write!(f, "{message}: {}", problems.join("; "))
            }
            ApiError::Unavailable => f.write_str("the clinical store is unavailable"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Refused(m) => (StatusCode::UNPROCESSABLE_ENTITY, m),
            ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            ApiError::Conflict(m) => (StatusCode::CONFLICT, m),
            ApiError::Invalid { message, problems } => {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Json(json!({ "error": message, "problems": problems })),
                )
                    .into_response();
            }
            ApiError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the clinical store is unavailable; retry shortly".to_owned(),
            ),
        };
        (status, Json(json!({ "error": message }))).into_response()
    }
}

impl From<vigil_store::Error> for ApiError {
    fn from(_: vigil_store::Error) -> Self {
        ApiError::Unavailable
    }
}

async fn readyz(State(s): State<AppState>) -> Response {
    let subscribed = s.stats.subscriptions_acked.load(Ordering::Relaxed) > 0;
    let store = s.store.ping().await.is_ok();
    // The sink's state is a detail, not a condition: the ingester is ready (it stores
    // and acknowledges) while the time-series database is away; the sink catches up.
    // What the ingester has taken and holds (cheap counters: a load generator polls
    // them to know when its load is in; /metrics scans the store).
    let mut intake = json!({"readings_received": s.stats.readings_received.load(Ordering::Relaxed),
                            "readings_stored": s.stats.readings_stored.load(Ordering::Relaxed),
                            "pending_publishes": s.stats.pending.load(Ordering::Relaxed)});
    if let Some(r) = &s.rules {
        intake["rules_evaluated"] = r.readings_evaluated.load(Ordering::Relaxed).into();
    }
    let body = match &s.sink {
        Some(k) => {
            json!({"mqtt_subscribed": subscribed, "store": store, "intake": intake, "tsdb": {
                "healthy": k.healthy.load(Ordering::Relaxed),
                "cursor": k.cursor.load(Ordering::Relaxed),
                "lag_readings": k.lag_readings.load(Ordering::Relaxed),
                "lag_seconds": k.lag_millis.load(Ordering::Relaxed) as f64 / 1000.0,
                "last_error": k.last_error.lock().map(|e| e.clone()).unwrap_or_default(),
            }})
        }
        None => json!({"mqtt_subscribed": subscribed, "store": store, "intake": intake}),
    };
    let status = if subscribed && store {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics(State(s): State<AppState>) -> Result<Response, ApiError> {
    let st = &s.stats;
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, value: u64| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    };
    counter(
        "vigil_readings_received_total",
        "Readings taken off MQTT by this process.",
        st.readings_received.load(Ordering::Relaxed),
    );
    counter(
        "vigil_readings_duplicate_total",
        "Readings counted as duplicates by this process.",
        st.readings_duplicate.load(Ordering::Relaxed),
    );
    counter(
        "vigil_readings_redelivered_total",
        "Readings of envelopes delivered again after their commit (each was already stored, quarantined or counted a duplicate).",
        st.readings_redelivered.load(Ordering::Relaxed),
    );
    counter(
        "vigil_mqtt_publishes_acked_total",
        "MQTT publishes acknowledged after their commit.",
        st.publishes_acked.load(Ordering::Relaxed),
    );
    counter(
        "vigil_payloads_rejected_total",
        "Payloads kept whole because they are not usable envelopes.",
        st.payloads_rejected.load(Ordering::Relaxed),
    );
    counter(
        "vigil_store_errors_total",
        "Failed commits (retried with acks withheld).",
        st.store_errors.load(Ordering::Relaxed),
    );
    counter(
        "vigil_mqtt_connection_errors_total",
        "MQTT connection errors (reconnected with backoff).",
        st.connection_errors.load(Ordering::Relaxed),
    );
    let _ = writeln!(
        out,
        "# HELP vigil_readings_stored_total Readings in the clinical store, by type.\n# TYPE vigil_readings_stored_total counter"
    );
    for (t, n) in s.store.stored_by_type().await? {
        let _ = writeln!(out, "vigil_readings_stored_total{{type=\"{t}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "# HELP vigil_readings_quarantined_total Quarantined readings, by reason.\n# TYPE vigil_readings_quarantined_total counter"
    );
    for (r, n) in s.store.quarantined_by_reason().await? {
        let _ = writeln!(
            out,
            "vigil_readings_quarantined_total{{reason=\"{r}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP vigil_pending_publishes Publishes received and not yet acknowledged.\n# TYPE vigil_pending_publishes gauge\nvigil_pending_publishes {}",
        st.pending.load(Ordering::Relaxed)
    );
    if let Some(r) = &s.rules {
        let _ = writeln!(
            out,
            "# HELP vigil_rule_readings_evaluated_total Committed readings the rule engine evaluated.\n# TYPE vigil_rule_readings_evaluated_total counter\nvigil_rule_readings_evaluated_total {}\n\
             # HELP vigil_rule_readings_fed_total Of those, readings handed over by the intake in memory (the rest were read back from the store).\n# TYPE vigil_rule_readings_fed_total counter\nvigil_rule_readings_fed_total {}\n\
             # HELP vigil_alerts_opened_total Alert episodes opened.\n# TYPE vigil_alerts_opened_total counter\nvigil_alerts_opened_total {}\n\
             # HELP vigil_alert_events_total Alert events kept for delivery.\n# TYPE vigil_alert_events_total counter\nvigil_alert_events_total {}",
            r.readings_evaluated.load(Ordering::Relaxed),
            r.readings_fed.load(Ordering::Relaxed),
            r.alerts_opened.load(Ordering::Relaxed),
            r.events_kept.load(Ordering::Relaxed),
        );
    }
    if let Some(k) = &s.sink {
        let _ = writeln!(
            out,
            "# HELP vigil_tsdb_points_written_total Points the time-series database confirmed.\n# TYPE vigil_tsdb_points_written_total counter\nvigil_tsdb_points_written_total {}\n\
             # HELP vigil_tsdb_requests_total Write requests sent.\n# TYPE vigil_tsdb_requests_total counter\nvigil_tsdb_requests_total {}\n\
             # HELP vigil_tsdb_retries_total Write attempts that failed and were retried.\n# TYPE vigil_tsdb_retries_total counter\nvigil_tsdb_retries_total {}\n\
             # HELP vigil_tsdb_rejected_points_total Points refused for good (kept with the reason).\n# TYPE vigil_tsdb_rejected_points_total counter\nvigil_tsdb_rejected_points_total {}\n\
             # HELP vigil_tsdb_lag_readings Committed readings not yet confirmed by the database.\n# TYPE vigil_tsdb_lag_readings gauge\nvigil_tsdb_lag_readings {}\n\
             # HELP vigil_tsdb_lag_seconds How long the oldest of them has waited.\n# TYPE vigil_tsdb_lag_seconds gauge\nvigil_tsdb_lag_seconds {}\n\
             # HELP vigil_tsdb_healthy 1 when the last write succeeded.\n# TYPE vigil_tsdb_healthy gauge\nvigil_tsdb_healthy {}",
            k.points_written.load(Ordering::Relaxed),
            k.requests.load(Ordering::Relaxed),
            k.retries.load(Ordering::Relaxed),
            k.rejected_points.load(Ordering::Relaxed),
            k.lag_readings.load(Ordering::Relaxed),
            k.lag_millis.load(Ordering::Relaxed) as f64 / 1000.0,
            u8::from(k.healthy.load(Ordering::Relaxed)),
        );
    }
    st.commit_latency.write_prometheus(
        &mut out,
        "vigil_commit_duration_seconds",
        "From taking publishes to their commit.",
    );
    if let Some(d) = &s.delivery {
        let _ = writeln!(
            out,
            "# HELP vigil_alert_deliveries_total (alert event, doctor) messages the broker acknowledged.\n# TYPE vigil_alert_deliveries_total counter\nvigil_alert_deliveries_total {}\n\
             # HELP vigil_alert_delivery_retries_total Alert messages published again for want of an acknowledgement.\n# TYPE vigil_alert_delivery_retries_total counter\nvigil_alert_delivery_retries_total {}\n\
             # HELP vigil_alert_deliveries_failed_total Alert messages given up on after repeated attempts.\n# TYPE vigil_alert_deliveries_failed_total counter\nvigil_alert_deliveries_failed_total {}\n\
             # HELP vigil_alert_deliveries_held_total Alert messages held by quiet hours.\n# TYPE vigil_alert_deliveries_held_total counter\nvigil_alert_deliveries_held_total {}",
            d.delivered.load(Ordering::Relaxed),
            d.retries.load(Ordering::Relaxed),
            d.failed.load(Ordering::Relaxed),
            d.held.load(Ordering::Relaxed),
        );
        d.latency.write_prometheus(
            &mut out,
            "vigil_alert_delivery_seconds",
            "From the ingester receiving the reading that opened or upgraded an alert to the broker acknowledging its publish to a doctor.",
        );
    }
    if let Some(w) = &s.webhooks {
        let _ = writeln!(
            out,
            "# HELP vigil_webhook_deliveries_total (alert event, doctor) webhook posts the receiver accepted.\n# TYPE vigil_webhook_deliveries_total counter\nvigil_webhook_deliveries_total {}\n\
             # HELP vigil_webhook_retries_total Webhook attempts that failed and will be tried again.\n# TYPE vigil_webhook_retries_total counter\nvigil_webhook_retries_total {}\n\
             # HELP vigil_webhook_failed_total Webhook deliveries given up (each raised an operational alert).\n# TYPE vigil_webhook_failed_total counter\nvigil_webhook_failed_total {}\n\
             # HELP vigil_webhook_fallbacks_total Given-up webhook deliveries sent to the doctor's MQTT topic instead.\n# TYPE vigil_webhook_fallbacks_total counter\nvigil_webhook_fallbacks_total {}",
            w.delivered.load(Ordering::Relaxed),
            w.retries.load(Ordering::Relaxed),
            w.failed.load(Ordering::Relaxed),
            w.fallbacks.load(Ordering::Relaxed),
        );
    }
    if let Some(g) = &s.gaps {
        let _ = writeln!(
            out,
            "# HELP vigil_batch_gaps_detected_total Gaps opened in gateways' batch_seq (over the clinical store's life).\n# TYPE vigil_batch_gaps_detected_total counter\nvigil_batch_gaps_detected_total {}\n\
             # HELP vigil_backfill_requests_total Backfill commands the broker acknowledged (over the clinical store's life).\n# TYPE vigil_backfill_requests_total counter\nvigil_backfill_requests_total {}\n\
             # HELP vigil_batches_recovered_total Missing batches that arrived (over the clinical store's life).\n# TYPE vigil_batches_recovered_total counter\nvigil_batches_recovered_total {}\n\
             # HELP vigil_batches_missing Batches missing now from gateways' batch_seq.\n# TYPE vigil_batches_missing gauge\nvigil_batches_missing {}",
            g.gaps_detected.load(Ordering::Relaxed),
            g.backfill_requests.load(Ordering::Relaxed),
            g.batches_recovered.load(Ordering::Relaxed),
            g.missing_now.load(Ordering::Relaxed),
        );
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response())
}

/// `GET /api/v1/alerts/{alert_id}/deliveries`: every delivery of the alert's events,
/// per doctor and channel, with its state (held, pending, delivered, failed), attempts
/// and last failure.
async fn alert_deliveries(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if s.store.latest_alert_event(&id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no alert {id:?}")));
    }
    let rows = s.store.alert_deliveries(&id).await?;
    let t = |d: Option<DateTime<Utc>>| d.map(|d| d.to_rfc3339());
    let rows: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({"event_id": r.event_id, "event": r.change, "doctor_id": r.doctor_id,
                   "channel": r.channel, "state": r.state,
                   "due": matches!(r.state.as_str(), "held" | "pending").then(|| r.due.to_rfc3339()),
                   "delivered_at": t(r.delivered_at), "attempts": r.attempts,
                   "last_error": r.last_error})
        })
        .collect();
    Ok(Json(json!({ "alert_id": id, "deliveries": rows })))
}

#[derive(Debug, Deserialize)]
struct AuditQuery {
    after: Option<i64>,
    limit: Option<u32>,
}

/// `GET /api/v1/audit?after=&limit=`: the audit trail, oldest first from `after`, with
/// each entry's place in the hash chain (platform admins only when `auth` is on).
async fn audit(
    State(s): State<AppState>,
    Query(q): Query<AuditQuery>,
    user: SignedIn,
) -> Result<Json<serde_json::Value>, ApiError> {
    let limit = q.limit.unwrap_or(100).clamp(1, 1000);
    let mut after = q.after.unwrap_or(0);
    // An institution admin: the entries about their institution's patients (by the
    // registry in force), read on through the trail until a page is full or
    // AUDIT_SCAN entries were read; `next` says where to go on from.
    let institution =
        match signed_in(user).filter(|u| u.role == vigil_store::access::Role::InstitutionAdmin) {
            Some(u) => Some((u.institution_id.unwrap_or_default(), registry_in_force(&s)?)),
            None => None,
        };
    let mut rows = Vec::new();
    let (mut scanned, mut more) = (0usize, false);
    loop {
        let page = s.store.audit_entries(after, limit).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        scanned += page.len();
        let full = page.len() as u32 == limit;
        match &institution {
            None => rows.extend(page),
            Some((inst, registry)) => {
                rows.extend(page.into_iter().filter(|r| {
                    r.entry
                        .patient
                        .as_deref()
                        .and_then(|p| p.parse::<PatientId>().ok())
                        .and_then(|p| registry.patients.get(&p))
                        .is_some_and(|pt| pt.institution.as_str() == inst)
                }));
            }
        }
        if rows.len() >= limit as usize || !full || scanned >= AUDIT_SCAN {
            more = full;
            break;
        }
    }
    rows.truncate(limit as usize);
    let next = match rows.last() {
        Some(r) if rows.len() == limit as usize => Some(r.id),
        _ if more => Some(after),
        _ => None,
    };
    let rows: Vec<_> = rows
        .iter()
        .map(|r| {
            json!({"id": r.id, "at": r.entry.at.to_rfc3339(), "actor": r.entry.actor,
                   "action": r.entry.action, "resource": r.entry.resource,
                   "patient_id": r.entry.patient, "from": r.entry.origin,
                   "outcome": r.entry.outcome, "prev_hash": r.prev_hash, "hash": r.hash})
        })
        .collect();
    Ok(Json(json!({ "audit": rows, "next": next })))
}

/// The most audit entries one request reads through for an institution admin.
const AUDIT_SCAN: usize = 50_000;

#[derive(Debug, Deserialize)]
struct LimitQuery {
    limit: Option<u32>,
}

/// `GET /api/v1/ops/alerts`: operational alerts (a delivery channel given up on),
/// newest first.
async fn ops_alerts(
    State(s): State<AppState>,
    Query(q): Query<LimitQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let rows = s
        .store
        .ops_alerts(q.limit.unwrap_or(100).clamp(1, 1000))
        .await?;
    let rows: Vec<_> = rows
        .iter()
        .map(|a| {
            json!({"id": a.id, "kind": a.kind, "subject": a.subject, "detail": a.detail,
                   "at": a.at.to_rfc3339()})
        })
        .collect();
    Ok(Json(json!({ "ops_alerts": rows })))
}

#[derive(Debug, Deserialize)]
struct RegisterQuery {
    format: Option<String>,
}

/// The nearest-rank percentile `p` (0 < p ≤ 1) of sorted values: the smallest value
/// with at least `p` of the values at or below it. `None` for no values.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

/// Per institution: how many CRITICAL alerts were acknowledged, and the median and
/// 90th percentile (nearest rank) of the seconds from detection to acknowledgement.
pub fn response_times(
    entries: &[vigil_store::CriticalEntry],
    institution: &dyn Fn(&PatientId) -> Option<String>,
) -> Vec<serde_json::Value> {
    let mut by: std::collections::BTreeMap<String, Vec<i64>> = Default::default();
    for e in entries {
        let inst = institution(&e.patient_id).unwrap_or_else(|| "unknown".to_owned());
        let list = by.entry(inst).or_default();
        if let Some(ack) = e.acknowledged_at {
            list.push((ack - e.detected_at).num_seconds().max(0));
        }
    }
    by.into_iter()
        .map(|(inst, mut secs)| {
            secs.sort_unstable();
            json!({"institution": inst, "acknowledged": secs.len(),
                   "median_seconds": percentile(&secs, 0.5),
                   "p90_seconds": percentile(&secs, 0.9)})
        })
        .collect()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// `GET /api/v1/critical-values`: the 危急值 register (JSON with the response times
/// per institution, or CSV for a spreadsheet).
async fn critical_values(
    State(s): State<AppState>,
    Query(q): Query<RegisterQuery>,
) -> Result<Response, ApiError> {
    let entries = s.store.critical_register().await?;
    let t = |d: Option<DateTime<Utc>>| d.map(|d| d.to_rfc3339()).unwrap_or_default();
    match q.format.as_deref().unwrap_or("json") {
        "csv" => {
            let mut out = String::from(
                "alert_id,patient_id,rule,value,detected_at,highest_level,notified_at,notified,acknowledged_at,acknowledged_by,read_back,resolved_at,resolved_by,action,closed_at\n",
            );
            for e in &entries {
                let fields = [
                    e.alert_id.clone(),
                    e.patient_id.to_string(),
                    e.rule.clone(),
                    e.display.clone(),
                    e.detected_at.to_rfc3339(),
                    e.highest_level.to_string(),
                    t(e.notified_at),
                    e.notified.join(" "),
                    t(e.acknowledged_at),
                    e.acknowledged_by.clone().unwrap_or_default(),
                    e.read_back.clone().unwrap_or_default(),
                    t(e.resolved_at),
                    e.resolved_by.clone().unwrap_or_default(),
                    e.action.clone().unwrap_or_default(),
                    t(e.closed_at),
                ];
                let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                let _ = writeln!(out, "{}", line.join(","));
            }
            Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], out).into_response())
        }
        "json" => {
            let rows: Vec<_> = entries
                .iter()
                .map(|e| {
                    json!({"alert_id": e.alert_id, "patient_id": e.patient_id, "rule": e.rule,
                        "value": e.display, "detected_at": e.detected_at.to_rfc3339(),
                        "highest_level": e.highest_level, "notified_at": e.notified_at.map(|d| d.to_rfc3339()),
                        "notified": e.notified, "acknowledged_at": e.acknowledged_at.map(|d| d.to_rfc3339()),
                        "acknowledged_by": e.acknowledged_by, "read_back": e.read_back,
                        "resolved_at": e.resolved_at.map(|d| d.to_rfc3339()), "resolved_by": e.resolved_by,
                        "action": e.action, "closed_at": e.closed_at.map(|d| d.to_rfc3339())})
                })
                .collect();
            let none = |_: &PatientId| None;
            let by_institution = match &s.institutions {
                Some(f) => response_times(&entries, f.as_ref()),
                None => response_times(&entries, &none),
            };
            Ok(Json(json!({"entries": rows, "by_institution": by_institution})).into_response())
        }
        other => Err(ApiError::BadRequest(format!(
            "'format' {other:?} must be json or csv"
        ))),
    }
}

#[derive(Debug, Deserialize)]
struct AckBody {
    /// The value the doctor read on their client; must match the alert's `display`.
    read_back: String,
    /// The acknowledging doctor's id.
    by: String,
}

#[derive(Debug, Deserialize)]
struct ResolveBody {
    /// What was done.
    note: String,
    by: String,
}

/// Compared ignoring whitespace and case (wire contract: acknowledgement read-back).
fn same_reading(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    norm(a) == norm(b)
}

fn doctor(by: &str) -> Result<vigil_model::DoctorId, ApiError> {
    vigil_model::DoctorId::parse(by).map_err(|e| ApiError::BadRequest(format!("'by' {e}")))
}

/// `POST /api/v1/alerts/{id}/ack` with `{"read_back", "by"}`: the doctor reads the
/// alert's value back; a mismatch is refused (422) and nothing is acknowledged.
async fn acknowledge(
    State(s): State<AppState>,
    Path(id): Path<String>,
    user: Option<axum::Extension<Option<vigil_store::access::User>>>,
    Json(body): Json<AckBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let by = doctor(&body.by)?;
    acting_as(user, &by)?;
    let alert = s
        .store
        .latest_alert_event(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no alert {id:?}")))?;
    if !same_reading(&body.read_back, &alert.display) {
        return Err(ApiError::Refused(format!(
            "the read-back {:?} does not match the alert's value: read the value on the alert again and send it as shown",
            body.read_back
        )));
    }
    s.store
        .keep_alert_action(&vigil_store::AlertAction {
            alert_id: id.clone(),
            action: "ack".to_owned(),
            by: by.to_string(),
            note: body.read_back,
            at: s.clock.now(),
        })
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"alert_id": id, "acknowledged": true})),
    ))
}

/// `POST /api/v1/alerts/{id}/resolve` with `{"note", "by"}`: closes the episode.
/// A doctor acts as themselves: `by` must be the signed-in doctor (admins act for any).
fn acting_as(
    user: Option<axum::Extension<Option<vigil_store::access::User>>>,
    by: &vigil_model::DoctorId,
) -> Result<(), ApiError> {
    match user.and_then(|u| u.0) {
        Some(u)
            if u.role == vigil_store::access::Role::Doctor
                && u.doctor_id.as_deref() != Some(by.as_str()) =>
        {
            Err(ApiError::Forbidden(format!(
                "'by' is {by}: a doctor acknowledges and resolves as themselves"
            )))
        }
        _ => Ok(()),
    }
}

async fn resolve(
    State(s): State<AppState>,
    Path(id): Path<String>,
    user: Option<axum::Extension<Option<vigil_store::access::User>>>,
    Json(body): Json<ResolveBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let by = doctor(&body.by)?;
    acting_as(user, &by)?;
    if body.note.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "'note' is empty: say what was done (called the patient, adjusted the dose, ...)"
                .to_owned(),
        ));
    }
    s.store
        .latest_alert_event(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no alert {id:?}")))?;
    s.store
        .keep_alert_action(&vigil_store::AlertAction {
            alert_id: id.clone(),
            action: "resolve".to_owned(),
            by: by.to_string(),
            note: body.note,
            at: s.clock.now(),
        })
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"alert_id": id, "resolved": true})),
    ))
}

#[derive(Debug, Deserialize)]
struct AlertEventsQuery {
    patient: Option<String>,
    limit: Option<u32>,
}

/// The alert events the rule engine kept, newest first.
async fn alert_events(
    State(s): State<AppState>,
    Query(q): Query<AlertEventsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let patient = q
        .patient
        .as_deref()
        .map(|p| PatientId::parse(p).map_err(|e| ApiError::BadRequest(format!("'patient' {e}"))))
        .transpose()?;
    let limit = q.limit.unwrap_or(100).clamp(1, 1000) as usize;
    let mut events = s.store.alert_events(patient.as_ref()).await?;
    events.reverse();
    events.truncate(limit);
    let events: Vec<_> = events
        .iter()
        .map(|e| {
            json!({"alert_id": e.alert_id, "patient_id": e.patient_id, "event": e.change,
                   "rule": e.rule, "severity": e.severity, "escalation_level": e.level,
                   "display": e.display, "opened_at": e.opened_at.to_rfc3339(),
                   "at": e.at.to_rfc3339(), "deliver_at": e.deliver_at.map(|d| d.to_rfc3339()),
                   "evidence": e.evidence})
        })
        .collect();
    Ok(Json(json!({ "events": events })))
}

#[derive(Debug, Deserialize)]
struct StreamQuery {
    doctor: Option<String>,
}

/// Where an event stream is: the next events to send, the last event id looked at.
struct StreamState {
    store: SqliteStore,
    registry: Option<vigil_ingest::rules::CurrentRegistry>,
    clock: Arc<dyn vigil_model::clock::Clock>,
    doctor: Option<vigil_model::DoctorId>,
    cursor: i64,
    /// Events to send, with the row id when the delivery is to be recorded.
    ready: std::collections::VecDeque<(axum::response::sse::Event, Option<i64>)>,
    /// The row id of the last event handed to the connection, recorded as delivered
    /// when the connection asks for the next one (it has taken the previous one).
    handed: Option<i64>,
}

/// How often an idle stream looks for new events.
const STREAM_POLL: std::time::Duration = std::time::Duration::from_millis(200);

/// `GET /api/v1/alerts/stream`: the dashboard's live alert stream (Server-Sent
/// Events). Each event carries `id:` (the event's row id), `event: vigil.alert.v1` and
/// the wire alert event as `data:`. A client that reconnects with `Last-Event-ID`
/// receives what it missed (at least once; `alert_id` with `event` identify an
/// event); a new one starts at the events kept from now on. With `doctor`, only the
/// events routed to that doctor, by their `sse` preference (CRITICAL whatever it
/// says), and each one the connection has taken (it asked for the next) is recorded
/// in `alert_deliveries` (channel `sse`). Quiet hours do not hold the stream: a
/// dashboard is looked at, it does not ring.
async fn alert_stream(
    State(s): State<AppState>,
    Query(q): Query<StreamQuery>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    use axum::response::sse::{KeepAlive, Sse};
    let doctor = q
        .doctor
        .as_deref()
        .map(|d| {
            vigil_model::DoctorId::parse(d)
                .map_err(|e| ApiError::BadRequest(format!("'doctor' {e}")))
        })
        .transpose()?;
    if doctor.is_some() && s.registry.is_none() {
        return Err(ApiError::BadRequest(
            "'doctor' needs the registry, which this server has not loaded".to_owned(),
        ));
    }
    let cursor = match headers.get("last-event-id") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|v| *v >= 0)
            .ok_or_else(|| {
                ApiError::BadRequest(
                    "Last-Event-ID must be the id of an event this stream sent".to_owned(),
                )
            })?,
        None => s.store.last_alert_event_id().await?,
    };
    let state = StreamState {
        store: s.store.clone(),
        registry: s.registry.clone(),
        clock: s.clock.clone(),
        doctor,
        cursor,
        ready: Default::default(),
        handed: None,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        if let (Some(id), Some(d)) = (st.handed.take(), &st.doctor) {
            // A failed record loses no event: the stream carries on.
            let _ = st
                .store
                .record_deliveries(
                    &[],
                    &[(id, d.to_string(), "sse".to_owned(), st.clock.now())],
                    &[],
                    None,
                    st.clock.now(),
                )
                .await;
        }
        loop {
            if let Some((e, id)) = st.ready.pop_front() {
                st.handed = id;
                return Some((Ok::<_, std::convert::Infallible>(e), st));
            }
            // The store away: an empty batch, looked at again shortly.
            let batch = st
                .store
                .alert_events_after(st.cursor, 100)
                .await
                .unwrap_or_default();
            if batch.is_empty() {
                tokio::time::sleep(STREAM_POLL).await;
                continue;
            }
            let registry = st.registry.as_ref().map(|r| r());
            for (id, e) in &batch {
                st.cursor = *id;
                if let (Some(d), Some(reg)) = (&st.doctor, &registry)
                    && !(vigil_ingest::deliver::routed(reg, e, e.at).contains(d)
                        && vigil_ingest::deliver::wants(reg, d, e, |c| c.sse))
                {
                    continue;
                }
                let data = match &registry {
                    Some(reg) => vigil_ingest::deliver::wire_event(reg, e).map(|w| {
                        String::from_utf8_lossy(&vigil_wire::alert::encode_alert(&w)).into_owned()
                    }),
                    None => None,
                };
                let data = data.unwrap_or_else(|| {
                    json!({"alert_id": e.alert_id, "event": e.change, "patient_id": e.patient_id,
                           "rule": e.rule, "severity": e.severity, "display": e.display,
                           "escalation_level": e.level, "opened_at": e.opened_at.to_rfc3339()})
                    .to_string()
                });
                st.ready.push_back((
                    axum::response::sse::Event::default()
                        .id(id.to_string())
                        .event("vigil.alert.v1")
                        .data(data),
                    st.doctor.as_ref().map(|_| *id),
                ));
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(std::time::Duration::from_secs(15)))
        .into_response())
}

#[derive(Debug, Deserialize)]
struct ReadingsQuery {
    #[serde(rename = "type")]
    reading_type: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<u32>,
    /// `asc` (oldest first, the default) or `desc` (newest first: the latest `limit`).
    order: Option<String>,
}

pub(crate) fn instant(name: &str, value: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    Ok(instant_with_offset(name, value)?.map(|t| t.with_timezone(&Utc)))
}

/// A request's RFC 3339 time `name`, with the offset it was given in (`None` when
/// absent); a 400 that says what to send otherwise.
pub(crate) fn instant_with_offset(
    name: &str,
    value: Option<&str>,
) -> Result<Option<DateTime<chrono::FixedOffset>>, ApiError> {
    value
        .map(|v| {
            DateTime::parse_from_rfc3339(v).map_err(|_| {
                ApiError::BadRequest(format!(
                    "'{name}' must be an RFC 3339 time with an offset, e.g. 2026-11-22T08:00:00+08:00"
                ))
            })
        })
        .transpose()
}

fn limit(l: Option<u32>) -> Result<u32, ApiError> {
    match l {
        None => Ok(1000),
        Some(n @ 1..=10_000) => Ok(n),
        Some(n) => Err(ApiError::BadRequest(format!(
            "'limit' is {n}; use 1 to 10000"
        ))),
    }
}

async fn readings(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ReadingsQuery>,
) -> Result<Response, ApiError> {
    let patient =
        PatientId::parse(&id).map_err(|e| ApiError::BadRequest(format!("patient id {e}")))?;
    if let Some(t) = &q.reading_type {
        ReadingType::parse(t).map_err(|e| ApiError::BadRequest(format!("'type': {e}")))?;
    }
    let newest_first = match q.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "'order' {other:?} must be asc (oldest first) or desc (newest first)"
            )));
        }
    };
    let rows = s
        .store
        .readings_in_order(
            &patient,
            q.reading_type.as_deref(),
            instant("from", q.from.as_deref())?,
            instant("to", q.to.as_deref())?,
            limit(q.limit)?,
            newest_first,
        )
        .await?;
    let items: Vec<_> = rows
        .into_iter()
        .map(|r| {
            json!({
                "device_id": r.device_id, "gateway_id": r.gateway_id, "type": r.reading_type,
                "time": r.time.to_rfc3339(), "received": r.received.to_rfc3339(), "late": r.late,
                "canonical": r.canonical, "original": r.original,
            })
        })
        .collect();
    Ok(Json(json!({ "patient_id": patient, "readings": items })).into_response())
}

#[derive(Debug, Deserialize)]
struct QuarantineQuery {
    reason: Option<String>,
    gateway: Option<String>,
    limit: Option<u32>,
}

async fn quarantine(
    State(s): State<AppState>,
    Query(q): Query<QuarantineQuery>,
) -> Result<Response, ApiError> {
    let reason = q
        .reason
        .as_deref()
        .map(QuarantineReason::parse)
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("'reason': {e}")))?;
    let gateway = q
        .gateway
        .as_deref()
        .map(GatewayId::parse)
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("'gateway' {e}")))?;
    let rows = s
        .store
        .quarantine(reason, gateway.as_ref(), limit(q.limit)?)
        .await?;
    let items: Vec<_> = rows
        .into_iter()
        .map(|r| {
            json!({
                "reason": r.reason, "message": r.message, "gateway_id": r.gateway_id,
                "batch_seq": r.batch_seq, "index": r.index, "device_id": r.device_id,
                "received": r.received.to_rfc3339(), "raw": r.raw,
            })
        })
        .collect();
    Ok(Json(json!({ "quarantine": items })).into_response())
}
