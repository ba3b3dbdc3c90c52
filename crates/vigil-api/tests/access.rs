//! Access by care relationship, with API tokens and the audit trail, through `oneshot`
//! and over a real socket: the responsible doctor reads their patient; a doctor outside
//! the care team gets 403 and the attempt is audited; an escalation target may read
//! the patient while the alert is open and no longer once it is resolved; no token is
//! 401; the audit trail is for platform admins, and every request is in it, chained.
//! Web sessions: signing in with a password sets the cookie, which then opens what a
//! token opens; wrong passwords lock the user out; sessions expire and end on signing
//! out; a change made with the cookie must come from the server's own origin. The
//! doctor's inbox and the patient summaries follow the same rules.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use vigil_api::{AppState, app};
use vigil_registry::Registry;
use vigil_store::SqliteStore;
use vigil_store::access::{Role, User, sha256_hex};

const PATIENT: &str = "/api/v1/patients/p-000123/readings";

fn now() -> DateTime<Utc> {
    "2026-12-01T08:00:00Z".parse().unwrap()
}

/// A store with four users (token = "tok-<id>") and the example registry: d-0001 is
/// p-000123's responsible doctor, d-0100 the specialist, d-duty-01 the duty desk.
async fn state() -> AppState {
    state_with(Arc::new(vigil_model::clock::ManualClock::new(now()))).await
}

async fn state_with(clock: Arc<vigil_model::clock::ManualClock>) -> AppState {
    let store = SqliteStore::in_memory().await.unwrap();
    let registry = Arc::new(Registry::parse(&vigil_testkit::example_registry()).unwrap());
    for (id, role, doctor) in [
        ("wang", Role::Doctor, Some("d-0001")),
        ("duty", Role::Doctor, Some("d-duty-01")),
        ("hospital", Role::InstitutionAdmin, None),
        ("root", Role::PlatformAdmin, None),
    ] {
        let user = User {
            id: id.into(),
            role,
            doctor_id: doctor.map(Into::into),
            institution_id: (role == Role::InstitutionAdmin).then(|| "hub-tongji".into()),
        };
        store.add_user(&user, now()).await.unwrap();
        let token = format!("tok-{id}");
        store
            .add_token(id, &sha256_hex(token.as_bytes()), "test", now())
            .await
            .unwrap();
    }
    AppState {
        registry: Some(Arc::new(move || registry.clone())),
        auth: true,
        ..AppState::new(store, clock)
    }
}

async fn get(state: &AppState, uri: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = Request::get(uri);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let res = app(state.clone())
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn audit(state: &AppState) -> Vec<Value> {
    let (status, body) = get(state, "/api/v1/audit?limit=1000", Some("tok-root")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["audit"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_doctor_reads_a_patient_only_through_a_care_relationship() {
    let s = state().await;
    // The responsible doctor: allowed.
    let (status, body) = get(&s, PATIENT, Some("tok-wang")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The duty desk, outside the care team, with no open alert: 403, said why.
    let (status, body) = get(&s, PATIENT, Some("tok-duty")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("care relationship"),
        "{body}"
    );
    // An institution admin sees aggregates, not a patient.
    assert_eq!(
        get(&s, PATIENT, Some("tok-hospital")).await.0,
        StatusCode::FORBIDDEN
    );
    // No token, or a wrong one: 401.
    assert_eq!(get(&s, PATIENT, None).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(&s, PATIENT, Some("tok-nobody")).await.0,
        StatusCode::UNAUTHORIZED
    );
    // The audit trail: every attempt, with who, what, which patient and the outcome.
    let entries = audit(&s).await;
    let line = |e: &Value| {
        (
            e["actor"].as_str().unwrap().to_owned(),
            e["outcome"].as_str().unwrap().to_owned(),
        )
    };
    let seen: Vec<_> = entries.iter().map(line).collect();
    assert_eq!(
        seen[..5],
        [
            ("wang".into(), "allowed".into()),
            ("duty".into(), "refused: 403".into()),
            ("hospital".into(), "refused: 403".into()),
            ("-".into(), "refused: 401".into()),
            ("-".into(), "refused: 401".into()),
        ]
    );
    assert!(entries[..5].iter().all(|e| e["patient_id"] == "p-000123"
        && e["action"] == "read"
        && e["resource"] == format!("GET {PATIENT}")));
    // Chained: each entry links to the one before.
    assert!(
        entries
            .windows(2)
            .all(|w| w[1]["prev_hash"] == w[0]["hash"])
    );
    // (The audit request itself is the last entry: recorded before it is answered.)
    assert_eq!(entries.last().unwrap()["resource"], "GET /api/v1/audit");
    assert_eq!(
        s.store.verify_audit().await.unwrap(),
        Ok(entries.len() as u64)
    );
    // The audit trail itself is for admins: all of it for platform admins; for an
    // institution admin, the entries about their institution's patients.
    assert_eq!(
        get(&s, "/api/v1/audit", Some("tok-wang")).await.0,
        StatusCode::FORBIDDEN
    );
    // (The hub's admin: p-000123 is the community centre's patient, so nothing.)
    let (status, body) = get(&s, "/api/v1/audit", Some("tok-hospital")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["audit"], json!([]), "{body}");
    let centre = User {
        id: "qiaokou".into(),
        role: Role::InstitutionAdmin,
        doctor_id: None,
        institution_id: Some("chc-qiaokou".into()),
    };
    s.store.add_user(&centre, now()).await.unwrap();
    s.store
        .add_token("qiaokou", &sha256_hex(b"tok-qiaokou"), "test", now())
        .await
        .unwrap();
    let (status, body) = get(&s, "/api/v1/audit?limit=1000", Some("tok-qiaokou")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let theirs = body["audit"].as_array().unwrap();
    assert!(!theirs.is_empty());
    assert!(
        theirs.iter().all(|e| e["patient_id"] == "p-000123"),
        "{theirs:#?}"
    );
    let all_about_p = audit(&s)
        .await
        .iter()
        .filter(|e| e["patient_id"] == "p-000123")
        .count();
    assert_eq!(theirs.len(), all_about_p);
    // A page of one, then the next: the trail read on past entries about others.
    let (_, first) = get(&s, "/api/v1/audit?limit=1", Some("tok-qiaokou")).await;
    let after = first["audit"][0]["id"].as_i64().unwrap();
    let (_, next) = get(
        &s,
        &format!("/api/v1/audit?limit=1&after={after}"),
        Some("tok-qiaokou"),
    )
    .await;
    assert_eq!(next["audit"][0]["patient_id"], "p-000123", "{next}");
    assert!(next["audit"][0]["id"].as_i64().unwrap() > after);
}

#[tokio::test]
async fn an_escalation_target_reads_the_patient_while_the_alert_is_open() {
    let s = state().await;
    let event = |change: &str, level: u8| vigil_store::AlertEventRecord {
        alert_id: "00000000000000c1".into(),
        patient_id: "p-000123".parse().unwrap(),
        family: "bp_crisis".into(),
        opened_at: now(),
        ordinal: 0,
        display: "192/112 mmHg".into(),
        evidence: json!([]),
        change: change.into(),
        rule: "bp_crisis".into(),
        severity: "CRITICAL".into(),
        level,
        at: now(),
        deliver_at: None,
    };
    // Escalated to level 3: the duty desk is now a target.
    s.store
        .keep_alert_events(
            &[event("opened", 1), event("escalated", 3)],
            None,
            None,
            now(),
        )
        .await
        .unwrap();
    assert_eq!(get(&s, PATIENT, Some("tok-duty")).await.0, StatusCode::OK);
    // Resolved: no longer.
    s.store
        .keep_alert_events(&[event("resolved", 3)], None, None, now())
        .await
        .unwrap();
    assert_eq!(
        get(&s, PATIENT, Some("tok-duty")).await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_a_real_socket_the_clients_address_is_recorded() {
    let s = state().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app(s.clone());
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    let http = addr.to_string();
    let (status, _) = vigil_testkit::http_get_any(&http, PATIENT);
    assert_eq!(status, 401);
    let entries = audit(&s).await;
    assert_eq!(entries[0]["from"], "127.0.0.1");
    assert_eq!(entries[0]["outcome"], "refused: 401");
    // Health and metrics are not API requests: not audited, no token needed.
    let (status, _) = vigil_testkit::http_get_any(&http, "/healthz");
    assert_eq!(status, 200);
}

/// The status only (the body of a stream never ends).
async fn status_of(state: &AppState, req: Request<Body>) -> StatusCode {
    app(state.clone()).oneshot(req).await.unwrap().status()
}

#[tokio::test]
async fn what_spans_patients_is_for_admins_and_doctors_act_as_themselves() {
    let s = state().await;
    let with = |uri: &str, token: &str| {
        Request::get(uri)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    // Alert events: of a patient the doctor may see, named.
    assert_eq!(
        get(&s, "/api/v1/alert-events", Some("tok-wang")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(
            &s,
            "/api/v1/alert-events?patient=p-000123",
            Some("tok-wang")
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        get(
            &s,
            "/api/v1/alert-events?patient=p-000123",
            Some("tok-duty")
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    // Across patients: platform admins only.
    for uri in [
        "/api/v1/quarantine",
        "/api/v1/critical-values",
        "/api/v1/ops/alerts",
    ] {
        assert_eq!(
            get(&s, uri, Some("tok-wang")).await.0,
            StatusCode::FORBIDDEN,
            "{uri}"
        );
        assert_eq!(
            get(&s, uri, Some("tok-root")).await.0,
            StatusCode::OK,
            "{uri}"
        );
    }
    // A doctor's own stream only.
    assert_eq!(
        status_of(&s, with("/api/v1/alerts/stream?doctor=d-0100", "tok-wang")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status_of(&s, with("/api/v1/alerts/stream?doctor=d-0001", "tok-wang")).await,
        StatusCode::OK
    );
    // Acknowledging as someone else is refused; as themselves it goes to the read-back.
    let event = vigil_store::AlertEventRecord {
        alert_id: "00000000000000c2".into(),
        patient_id: "p-000123".parse().unwrap(),
        family: "bp_crisis".into(),
        opened_at: now(),
        ordinal: 0,
        display: "192/112 mmHg".into(),
        evidence: json!([]),
        change: "opened".into(),
        rule: "bp_crisis".into(),
        severity: "CRITICAL".into(),
        level: 1,
        at: now(),
        deliver_at: None,
    };
    s.store
        .keep_alert_events(&[event], None, None, now())
        .await
        .unwrap();
    let ack = |by: &str, token: &str| {
        Request::post("/api/v1/alerts/00000000000000c2/ack")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(
                json!({"read_back": "192/112 mmHg", "by": by}).to_string(),
            ))
            .unwrap()
    };
    assert_eq!(
        status_of(&s, ack("d-0100", "tok-wang")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status_of(&s, ack("d-0001", "tok-duty")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status_of(&s, ack("d-0001", "tok-wang")).await,
        StatusCode::ACCEPTED
    );
    let entries = audit(&s).await;
    assert!(entries.iter().any(|e| e["action"] == "ack"
        && e["actor"] == "wang"
        && e["outcome"] == "allowed"
        && e["patient_id"] == "p-000123"));
}

#[tokio::test]
async fn the_registry_reads_follow_the_same_rules_and_show_whether_overrides_apply() {
    let s = state().await;
    let ids = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    };
    // The patient list: a doctor's care teams; an admin all; others none.
    assert_eq!(
        ids(&get(&s, "/api/v1/patients", Some("tok-wang")).await.1),
        ["p-000123"]
    );
    assert!(ids(&get(&s, "/api/v1/patients", Some("tok-duty")).await.1).is_empty());
    assert!(ids(&get(&s, "/api/v1/patients", Some("tok-hospital")).await.1).is_empty());
    assert_eq!(
        ids(&get(&s, "/api/v1/patients", Some("tok-root")).await.1),
        ["p-000123"]
    );
    // The patient's page, through the care relationship, with the overrides.
    let (status, page) = get(&s, "/api/v1/patients/p-000123", Some("tok-wang")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["care_team"]["responsible"], "d-0001");
    let o = &page["overrides"][0];
    assert_eq!(o["rule"], "hr_brady");
    assert_eq!(o["active"], true, "{o}");
    assert_eq!(
        get(&s, "/api/v1/patients/p-000123", Some("tok-duty"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // The staff directory is for anyone signed in; paged by id.
    let (status, first) = get(&s, "/api/v1/doctors?limit=1", Some("tok-wang")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&first), ["d-0001"]);
    assert_eq!(first["next"], "d-0001");
    let (_, second) = get(&s, "/api/v1/doctors?limit=1&after=d-0001", Some("tok-wang")).await;
    assert_eq!(ids(&second), ["d-0100"]);
    assert_eq!(
        get(&s, "/api/v1/doctors?limit=0", Some("tok-wang")).await.0,
        StatusCode::BAD_REQUEST
    );
    // Gateways and devices: platform admins.
    assert_eq!(
        get(&s, "/api/v1/gateways", Some("tok-wang")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        ids(&get(&s, "/api/v1/gateways", Some("tok-root")).await.1),
        ["gw-0042"]
    );

    // Once its `until` has passed, an override no longer applies, and says so.
    let mut later = state().await;
    later.clock = Arc::new(vigil_model::clock::ManualClock::new(
        "2027-02-01T00:00:00Z".parse().unwrap(),
    ));
    let (_, page) = get(&later, "/api/v1/patients/p-000123", Some("tok-wang")).await;
    assert_eq!(page["overrides"][0]["active"], false, "{page}");
}

/// A request with the session cookie (and an `Origin` when given).
fn with_cookie(
    method: &str,
    uri: &str,
    cookie: &str,
    origin: Option<&str>,
    body: Option<Value>,
) -> Request<Body> {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header("host", "vigil.test")
        .header("cookie", format!("theme=dark; vigil_session={cookie}"));
    if let Some(o) = origin {
        req = req.header("origin", o);
    }
    match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    }
}

async fn send(state: &AppState, req: Request<Body>) -> (StatusCode, Option<String>, Value) {
    let res = app(state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let cookie = res
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        cookie,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    )
}

async fn sign_in(
    state: &AppState,
    user: &str,
    password: &str,
) -> (StatusCode, Option<String>, Value) {
    let req = Request::post("/api/v1/session")
        .header("content-type", "application/json")
        .body(Body::from(
            json!({"user": user, "password": password}).to_string(),
        ))
        .unwrap();
    send(state, req).await
}

#[tokio::test]
async fn a_password_opens_a_session_whose_cookie_opens_what_a_token_opens() {
    let clock = Arc::new(vigil_model::clock::ManualClock::new(now()));
    let s = state_with(clock.clone()).await;
    // A low iteration count keeps the test quick; the count travels in the hash.
    let hash = vigil_store::access::hash_password("correct horse", 1000).unwrap();
    s.store.set_password("wang", &hash, now()).await.unwrap();
    // Wrong password, unknown user, user without a password: one answer, 401.
    for (user, pw) in [("wang", "wrong"), ("nobody", "x"), ("duty", "x")] {
        let (status, cookie, body) = sign_in(&s, user, pw).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"], "the user or the password is wrong");
        assert!(cookie.is_none());
    }
    let (status, cookie, body) = sign_in(&s, "wang", "correct horse").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["user"].as_str(), body["doctor_id"].as_str()),
        (Some("wang"), Some("d-0001"))
    );
    let cookie = cookie.unwrap();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let token = cookie
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("vigil_session=")
        .unwrap()
        .to_owned();
    // The cookie opens the doctor's own patient, not another one's.
    let (status, _, me) = send(
        &s,
        with_cookie("GET", "/api/v1/session", &token, None, None),
    )
    .await;
    assert_eq!(
        (status, me["user"].as_str()),
        (StatusCode::OK, Some("wang"))
    );
    assert_eq!(
        send(&s, with_cookie("GET", PATIENT, &token, None, None))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        send(
            &s,
            with_cookie(
                "GET",
                "/api/v1/patients/p-000456/readings",
                &token,
                None,
                None
            )
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    // A change with the cookie needs the server's own Origin.
    let ack = json!({"read_back": "x", "by": "d-0001"});
    for origin in [None, Some("https://evil.example")] {
        let (status, _, body) = send(
            &s,
            with_cookie(
                "POST",
                "/api/v1/alerts/00000000000000c1/ack",
                &token,
                origin,
                Some(ack.clone()),
            ),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{origin:?}: {body}");
        assert!(body["error"].as_str().unwrap().contains("Origin"), "{body}");
    }
    let (status, _, _) = send(
        &s,
        with_cookie(
            "POST",
            "/api/v1/alerts/00000000000000c1/ack",
            &token,
            Some("http://vigil.test"),
            Some(ack),
        ),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "past the origin check: no such alert"
    );
    // Signed out: the cookie no longer opens anything.
    let (status, clear, _) = send(
        &s,
        with_cookie(
            "DELETE",
            "/api/v1/session",
            &token,
            Some("http://vigil.test"),
            None,
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(clear.unwrap().contains("Max-Age=0"));
    assert_eq!(
        send(&s, with_cookie("GET", PATIENT, &token, None, None))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // A new session expires after 12 hours.
    let (_, cookie, _) = sign_in(&s, "wang", "correct horse").await;
    let token = cookie
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .strip_prefix("vigil_session=")
        .unwrap()
        .to_owned();
    clock.advance(chrono::TimeDelta::hours(12) - chrono::TimeDelta::seconds(1));
    assert_eq!(
        send(&s, with_cookie("GET", PATIENT, &token, None, None))
            .await
            .0,
        StatusCode::OK
    );
    clock.advance(chrono::TimeDelta::seconds(1));
    assert_eq!(
        send(&s, with_cookie("GET", PATIENT, &token, None, None))
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    // Every sign-in attempt is in the audit trail, the reason of a refusal with it; the
    // password never is.
    let entries = audit(&s).await;
    let logins: Vec<_> = entries
        .iter()
        .filter(|e| e["action"] == "login")
        .map(|e| (e["actor"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        logins,
        [
            ("wang", "refused: 401 (wrong password)"),
            ("nobody", "refused: 401 (no such user)"),
            ("duty", "refused: 401 (no password set)"),
            ("wang", "allowed"),
            ("wang", "allowed"),
        ]
    );
    assert!(
        !entries
            .iter()
            .any(|e| e.to_string().contains("correct horse"))
    );
    assert!(s.store.verify_audit().await.unwrap().is_ok());
}

#[tokio::test]
async fn five_wrong_passwords_in_a_row_lock_the_user_out_for_fifteen_minutes() {
    let clock = Arc::new(vigil_model::clock::ManualClock::new(now()));
    let s = state_with(clock.clone()).await;
    let hash = vigil_store::access::hash_password("right", 1000).unwrap();
    s.store.set_password("wang", &hash, now()).await.unwrap();
    // Four failures, then the right password: the count starts again.
    for _ in 0..4 {
        assert_eq!(
            sign_in(&s, "wang", "wrong").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(sign_in(&s, "wang", "right").await.0, StatusCode::OK);
    for _ in 0..5 {
        assert_eq!(
            sign_in(&s, "wang", "wrong").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    // Locked: even the right password is refused, saying until when.
    let (status, _, body) = sign_in(&s, "wang", "right").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("locked until"),
        "{body}"
    );
    clock.advance(chrono::TimeDelta::minutes(15));
    assert_eq!(sign_in(&s, "wang", "right").await.0, StatusCode::OK);
}

#[tokio::test]
async fn the_inbox_lists_a_doctors_open_alerts_most_severe_first() {
    let s = state().await;
    let event =
        |id: &str, patient: &str, rule: &str, severity: &str, change: &str, minutes: i64| {
            vigil_store::AlertEventRecord {
                alert_id: id.into(),
                patient_id: patient.parse().unwrap(),
                family: rule.into(),
                opened_at: now() - chrono::TimeDelta::minutes(minutes),
                ordinal: 0,
                display: "x".into(),
                evidence: json!([]),
                change: change.into(),
                rule: rule.into(),
                severity: severity.into(),
                level: 1,
                at: now(),
                deliver_at: None,
            }
        };
    s.store
        .keep_alert_events(
            &[
                event(
                    "a1",
                    "p-000123",
                    "bp_uncontrolled_home",
                    "MEDIUM",
                    "opened",
                    90,
                ),
                event("a2", "p-000123", "bp_crisis", "CRITICAL", "opened", 5),
                event("a3", "p-000123", "monitoring_gap", "LOW", "opened", 600),
                event("a4", "p-000123", "spo2_low", "HIGH", "opened", 30),
                event("a4", "p-000123", "spo2_low", "HIGH", "resolved", 30),
                event("a5", "p-000456", "bp_crisis", "CRITICAL", "opened", 1),
            ],
            None,
            None,
            now(),
        )
        .await
        .unwrap();
    s.store
        .keep_alert_action(&vigil_store::AlertAction {
            alert_id: "a1".into(),
            action: "ack".into(),
            by: "d-0001".into(),
            note: "x".into(),
            at: now(),
        })
        .await
        .unwrap();
    // Dr. Wang's own inbox (the doctor named by the session): p-000456 is not theirs,
    // a4 is resolved; CRITICAL first; the monitoring gap apart.
    let (status, body) = get(&s, "/api/v1/inbox", Some("tok-wang")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids: Vec<_> = body["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["alert_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a2", "a1"]);
    assert_eq!(body["alerts"][0]["age_seconds"], 300);
    assert_eq!(body["alerts"][1]["acknowledged_by"], "d-0001");
    assert_eq!(body["monitoring_gaps"][0]["alert_id"], "a3");
    // Another doctor's inbox: refused; a platform admin names any doctor.
    assert_eq!(
        get(&s, "/api/v1/inbox?doctor=d-duty-01", Some("tok-wang"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(&s, "/api/v1/inbox?doctor=d-0001", Some("tok-root"))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        get(&s, "/api/v1/inbox", Some("tok-hospital")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(&s, "/api/v1/inbox?doctor=d-9999", Some("tok-root"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // The patient summary: through the care relationship.
    let (status, body) = get(&s, "/api/v1/patients/p-000123/summary", Some("tok-wang")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["bp_control"]["readings"], 0);
    assert_eq!(
        get(&s, "/api/v1/patients/p-000123/summary", Some("tok-duty"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn the_overview_is_for_institution_admins_of_their_institution_and_platform_admins() {
    let s = state().await;
    // The institution admin of hub-tongji: their own figures, named or not.
    let (status, body) = get(&s, "/api/v1/overview", Some("tok-hospital")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "hub-tongji");
    let ids: Vec<_> = body["institutions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["hub-tongji"]);
    // p-000123 belongs to chc-qiaokou: not counted here.
    assert_eq!(body["total"]["patients"], 0);
    assert_eq!(
        get(
            &s,
            "/api/v1/overview?institution=hub-tongji",
            Some("tok-hospital")
        )
        .await
        .0,
        StatusCode::OK
    );
    // Another institution's figures, or a doctor: refused.
    assert_eq!(
        get(
            &s,
            "/api/v1/overview?institution=chc-qiaokou",
            Some("tok-hospital")
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(&s, "/api/v1/overview", Some("tok-wang")).await.0,
        StatusCode::FORBIDDEN
    );
    // A platform admin: every institution, or one; an unknown one is 404.
    let (status, body) = get(&s, "/api/v1/overview", Some("tok-root")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"]["patients"], 1);
    assert_eq!(body["total"]["adherence"]["denominator"], 1);
    assert_eq!(body["total"]["adherence"]["percent"], 0.0);
    assert_eq!(
        get(&s, "/api/v1/overview?institution=nowhere", Some("tok-root"))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

async fn post(state: &AppState, uri: &str, token: &str, body: Value) -> (StatusCode, Value) {
    send_json(state, "POST", uri, token, Some(body)).await
}

#[tokio::test]
async fn break_glass_opens_a_patient_for_four_hours_flagged_and_reviewed() {
    let clock = Arc::new(vigil_model::clock::ManualClock::new(now()));
    let s = state_with(clock.clone()).await;
    // The duty desk has no care relationship with p-000123.
    assert_eq!(
        get(&s, PATIENT, Some("tok-duty")).await.0,
        StatusCode::FORBIDDEN
    );
    let glass = "/api/v1/patients/p-000123/break-glass";
    // A reason is required; an unknown patient is 404; only doctors open the glass.
    let (status, body) = post(&s, glass, "tok-duty", json!({"reason": "urgent"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        post(
            &s,
            "/api/v1/patients/p-999999/break-glass",
            "tok-duty",
            json!({"reason": "brought in unconscious"})
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post(
            &s,
            glass,
            "tok-hospital",
            json!({"reason": "brought in unconscious"})
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    let (status, body) = post(
        &s,
        glass,
        "tok-duty",
        json!({"reason": "brought in unconscious, family absent"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_i64().unwrap();
    // Now the duty desk reads the patient, each access flagged.
    assert_eq!(get(&s, PATIENT, Some("tok-duty")).await.0, StatusCode::OK);
    // Only that patient, and only for four hours.
    assert_eq!(
        get(&s, "/api/v1/patients/p-000456/readings", Some("tok-duty"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    clock.advance(chrono::TimeDelta::hours(4));
    assert_eq!(
        get(&s, PATIENT, Some("tok-duty")).await.0,
        StatusCode::FORBIDDEN
    );
    let entries = audit(&s).await;
    let flagged: Vec<_> = entries
        .iter()
        .filter(|e| e["outcome"] == "allowed: break-glass")
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    // Every attempt at the glass is flagged (the audit records the authorization, made
    // before the handler checks the reason and the patient), then the read through it.
    assert_eq!(
        flagged,
        [
            ("break_glass", "duty"),
            ("break_glass", "duty"),
            ("break_glass", "duty"),
            ("read", "duty")
        ]
    );
    // The review list: for platform admins; reviewed once.
    assert_eq!(
        get(&s, "/api/v1/break-glass", Some("tok-duty")).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, body) = get(&s, "/api/v1/break-glass?unreviewed=true", Some("tok-root")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["break_glass"][0]["reason"],
        "brought in unconscious, family absent"
    );
    assert_eq!(body["break_glass"][0]["user"], "duty");
    let review = format!("/api/v1/break-glass/{id}/review");
    let (status, _) = post(
        &s,
        &review,
        "tok-root",
        json!({"note": "justified: ED admission"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = post(&s, &review, "tok-root", json!({"note": "again"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (_, body) = get(&s, "/api/v1/break-glass?unreviewed=true", Some("tok-root")).await;
    assert_eq!(body["break_glass"], json!([]));
    let (_, body) = get(&s, "/api/v1/break-glass", Some("tok-root")).await;
    assert_eq!(body["break_glass"][0]["reviewed_by"], "root");
    assert!(s.store.verify_audit().await.unwrap().is_ok());
}

/// A state whose registry is a file the API may change (with the users of [`state`]).
async fn state_with_registry_file() -> (tempfile::TempDir, AppState) {
    let (dir, s, _) = state_with_registry_file_and_clock().await;
    (dir, s)
}

/// [`state_with_registry_file`], with its clock.
async fn state_with_registry_file_and_clock() -> (
    tempfile::TempDir,
    AppState,
    Arc<vigil_model::clock::ManualClock>,
) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("registry.toml");
    let text = vigil_testkit::example_registry();
    std::fs::write(&path, &text).unwrap();
    let clock = Arc::new(vigil_model::clock::ManualClock::new(now()));
    let mut s = state_with(clock.clone()).await;
    let (switch, current) =
        vigil_ingest::intake::RegistrySwitch::standalone(Arc::new(Registry::parse(&text).unwrap()));
    s.registry = Some(current);
    s.registry_file = Some(Arc::new(vigil_api::registry_write::RegistryFile::new(
        path,
        &text,
        s.store.clone(),
        switch,
        Arc::new(vigil_rules::ruleset::RuleSet::default()),
        s.clock.clone(),
    )));
    (dir, s, clock)
}

async fn send_json(
    state: &AppState,
    method: &str,
    uri: &str,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(body.map_or(Body::empty(), |b| Body::from(b.to_string())))
        .unwrap();
    let res = app(state.clone()).oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn platform_admins_change_the_registry_through_the_api_checked_as_a_whole() {
    let (dir, s) = state_with_registry_file().await;
    let path = dir.path().join("registry.toml");
    let device = json!({"id": "glu-new", "types": ["glucose"], "gateway": "gw-0042",
                        "registered": "2026-11-01T00:00:00+08:00"});
    // Doctors do not change the registry.
    let (status, _) = send_json(
        &s,
        "POST",
        "/api/v1/devices",
        "tok-wang",
        Some(device.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A platform admin adds a device: in the file (its comments kept) and in force.
    let (status, body) = send_json(
        &s,
        "POST",
        "/api/v1/devices",
        "tok-root",
        Some(device.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("id = \"glu-new\""), "{text}");
    assert!(
        text.contains("# the reading types it produces"),
        "comments kept: {text}"
    );
    let (_, devices) = get(&s, "/api/v1/devices", Some("tok-root")).await;
    assert!(devices.to_string().contains("glu-new"), "{devices}");
    // The same id again: 409. A doctor of an unknown institution: 422 with the problem,
    // and nothing written.
    assert_eq!(
        send_json(&s, "POST", "/api/v1/devices", "tok-root", Some(device))
            .await
            .0,
        StatusCode::CONFLICT
    );
    let (status, body) = send_json(&s, "POST", "/api/v1/doctors", "tok-root",
        Some(json!({"id": "d-0200", "name": "Dr. Zhao", "institution": "nowhere", "roles": ["family_doctor"]}))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["problems"].to_string().contains("nowhere"), "{body}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    // A gateway devices still use cannot go: every reference reported.
    let (status, body) =
        send_json(&s, "DELETE", "/api/v1/gateways/gw-0042", "tok-root", None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["problems"].as_array().unwrap().len() >= 2, "{body}");
    // Replacing a doctor's entry (their display name).
    let (status, body) = send_json(&s, "PUT", "/api/v1/doctors/d-0100", "tok-root",
        Some(json!({"name": "Dr. Li Na", "institution": "hub-tongji", "roles": ["specialist", "on_call"]}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, doctors) = get(&s, "/api/v1/doctors", Some("tok-root")).await;
    assert!(doctors.to_string().contains("Dr. Li Na"), "{doctors}");
    // Export and import: a TOML body that does not parse changes nothing.
    let (status, exported) = {
        let res = app(s.clone())
            .oneshot(
                Request::get("/api/v1/registry")
                    .header("authorization", "Bearer tok-root")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = res.status();
        (
            status,
            String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec())
                .unwrap(),
        )
    };
    assert_eq!(status, StatusCode::OK);
    assert!(exported.contains("Dr. Li Na"));
    let res = app(s.clone())
        .oneshot(
            Request::put("/api/v1/registry")
                .header("authorization", "Bearer tok-root")
                .body(Body::from("[[patient]\nid = "))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // Someone edits the file by hand: the API does not overwrite it until it is loaded.
    std::fs::write(&path, format!("{exported}\n# edited by hand\n")).unwrap();
    let (status, body) = send_json(&s, "DELETE", "/api/v1/devices/glu-new", "tok-root", None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["error"].as_str().unwrap().contains("SIGHUP"), "{body}");
    // The export is still the registry in force (the version the store kept).
    assert_eq!(
        s.registry_file.as_ref().unwrap().text().await.unwrap(),
        exported
    );
    s.registry_file.as_ref().unwrap().reload().await.unwrap();
    let (status, _) = send_json(&s, "DELETE", "/api/v1/devices/glu-new", "tok-root", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("# edited by hand")
    );
    // Every version is kept, saying who made it.
    let versions = s.store.registry_versions().await.unwrap();
    assert_eq!(versions.last().unwrap().1, "api (root)");
}

#[tokio::test]
async fn the_care_team_sets_overrides_with_who_why_and_until_and_the_rules_refuse_what_they_forbid()
{
    let (_dir, s) = state_with_registry_file().await;
    let uri = "/api/v1/patients/p-000123/overrides/bp_uncontrolled_home";
    let elderly = json!({"systolic": 150, "diastolic": 90, "reason": "aged 67: the 规范 target",
                         "until": "2027-06-01T00:00:00+08:00"});
    // The responsible doctor, as themselves.
    let (status, body) = send_json(&s, "PUT", uri, "tok-wang", Some(elderly.clone())).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["override"]["by"], "d-0001");
    let (_, patient) = get(&s, "/api/v1/patients/p-000123", Some("tok-wang")).await;
    let o = patient["overrides"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["rule"] == "bp_uncontrolled_home")
        .unwrap()
        .clone();
    assert_eq!(
        (o["by"].as_str(), o["active"].as_bool()),
        (Some("d-0001"), Some(true))
    );
    assert_eq!(o["reason"], "aged 67: the 规范 target");
    // The summary holds the patient to it.
    let (_, summary) = get(&s, "/api/v1/patients/p-000123/summary", Some("tok-wang")).await;
    assert_eq!(summary["bp_control"]["target"], json!([150.0, 90.0]));
    // Outside the care team, as another doctor, without a reason: refused.
    assert_eq!(
        send_json(&s, "PUT", uri, "tok-duty", Some(elderly.clone()))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let mut as_li = elderly.clone();
    as_li["by"] = json!("d-0100");
    assert_eq!(
        send_json(&s, "PUT", uri, "tok-wang", Some(as_li)).await.0,
        StatusCode::FORBIDDEN
    );
    let mut no_reason = elderly.clone();
    no_reason["reason"] = json!(" ");
    assert_eq!(
        send_json(&s, "PUT", uri, "tok-wang", Some(no_reason))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    // A CRITICAL rule is never relaxed or snoozed (clinical rules §0.4): refused, saying
    // why, and nothing written.
    let (status, body) = send_json(
        &s,
        "PUT",
        "/api/v1/patients/p-000123/overrides/glucose_hypo_level2",
        "tok-wang",
        Some(json!({"below": 2.5, "reason": "tired of the alarms"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("refused"),
        "{body}"
    );
    let (_, patient) = get(&s, "/api/v1/patients/p-000123", Some("tok-wang")).await;
    assert!(
        !patient["overrides"]
            .to_string()
            .contains("glucose_hypo_level2")
    );
    // Removed; removing it again is 404.
    assert_eq!(
        send_json(&s, "DELETE", uri, "tok-wang", None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send_json(&s, "DELETE", uri, "tok-wang", None).await.0,
        StatusCode::NOT_FOUND
    );
    // Each attempt past the care-relationship check is an override in the audit trail,
    // with the patient (the handler's own refusals among them: as another doctor,
    // without a reason, forbidden by the rules, removing twice); the duty desk's
    // attempt is refused there.
    let entries = audit(&s).await;
    let overrides: Vec<_> = entries
        .iter()
        .filter(|e| e["action"] == "override" && e["outcome"] == "allowed")
        .collect();
    assert_eq!(overrides.len(), 6, "{overrides:?}");
    assert!(entries.iter().any(|e| e["action"] == "override"
        && e["actor"] == "duty"
        && e["outcome"] == "refused: 403"));
    assert!(
        overrides
            .iter()
            .all(|e| e["patient_id"] == "p-000123" && e["actor"] == "wang")
    );
}

#[tokio::test]
async fn the_weekly_report_is_an_export_through_the_care_relationship() {
    let s = state().await;
    let uri = "/api/v1/patients/p-000123/report";
    let res = app(s.clone())
        .oneshot(
            Request::get(uri)
                .header("authorization", "Bearer tok-wang")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let html =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    assert!(html.contains("周报 Weekly report · p-000123"), "{html}");
    assert!(html.contains("随访记录表预填"));
    assert!(!html.contains("<script"));
    let (status, body) = get(&s, &format!("{uri}?format=json"), Some("tok-wang")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["report"]["prefill"]["hypoglycaemia"], "无");
    assert_eq!(
        get(&s, &format!("{uri}?format=pdf"), Some("tok-wang"))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&s, &format!("{uri}?to=yesterday"), Some("tok-wang"))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&s, uri, Some("tok-duty")).await.0,
        StatusCode::FORBIDDEN
    );
    let entries = audit(&s).await;
    assert!(
        entries.iter().any(|e| e["action"] == "export"
            && e["actor"] == "wang"
            && e["patient_id"] == "p-000123")
    );
}

#[tokio::test]
async fn a_referral_opens_the_patient_to_the_doctor_until_it_is_closed() {
    let (dir, s, clock) = state_with_registry_file_and_clock().await;
    // The duty desk (d-duty-01) is not on p-000123's care team.
    assert_eq!(
        get(&s, PATIENT, Some("tok-duty")).await.0,
        StatusCode::FORBIDDEN
    );
    let (_, list) = get(&s, "/api/v1/patients", Some("tok-duty")).await;
    assert_eq!(list["items"], json!([]));
    // Only the care team refers, with a reason, to a doctor of the registry.
    let refer = "/api/v1/patients/p-000123/referrals";
    let body = json!({"to": "d-duty-01", "reason": "ambulatory BP monitoring at the hub"});
    assert_eq!(
        send_json(&s, "POST", refer, "tok-duty", Some(body.clone()))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (status, problem) = send_json(
        &s,
        "POST",
        refer,
        "tok-wang",
        Some(json!({"to": "d-9999", "reason": "ambulatory BP monitoring"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["problems"].to_string().contains("d-9999"),
        "{problem}"
    );
    let (status, made) = send_json(&s, "POST", refer, "tok-wang", Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["by"], "d-0001");
    assert!(
        std::fs::read_to_string(dir.path().join("registry.toml"))
            .unwrap()
            .contains("[[referral]]")
    );
    // While open: the referred doctor reads the patient and finds them in their list.
    assert_eq!(get(&s, PATIENT, Some("tok-duty")).await.0, StatusCode::OK);
    let (_, list) = get(&s, "/api/v1/patients", Some("tok-duty")).await;
    assert_eq!(list["items"][0]["id"], "p-000123");
    let (_, page) = get(&s, "/api/v1/patients/p-000123", Some("tok-wang")).await;
    assert_eq!(page["referrals"][0]["open"], true);
    // Closed a day later: no longer (the referral stays on record, with its end).
    clock.advance(chrono::TimeDelta::days(1));
    let close = "/api/v1/patients/p-000123/referrals/d-duty-01";
    assert_eq!(
        send_json(&s, "DELETE", close, "tok-wang", None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        send_json(&s, "DELETE", close, "tok-wang", None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(&s, PATIENT, Some("tok-duty")).await.0,
        StatusCode::FORBIDDEN
    );
    let (_, page) = get(&s, "/api/v1/patients/p-000123", Some("tok-wang")).await;
    assert_eq!(page["referrals"][0]["open"], false);
    assert_eq!(page["referrals"][0]["until"], "2026-12-02T08:00:00+00:00");
    // One closed the instant it opened never was open: removed, not kept empty.
    let (status, _) = send_json(
        &s,
        "POST",
        refer,
        "tok-wang",
        Some(json!({"to": "d-duty-01", "reason": "second opinion"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        send_json(&s, "DELETE", close, "tok-wang", None).await.0,
        StatusCode::OK
    );
    let (_, page) = get(&s, "/api/v1/patients/p-000123", Some("tok-wang")).await;
    assert_eq!(page["referrals"].as_array().unwrap().len(), 1);
    let entries = audit(&s).await;
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "referral" && e["actor"] == "wang")
    );
}

/// A raw HTTP/1.0 request over a real socket: the status.
fn raw_status(addr: &str, method: &str, path: &str, token: Option<&str>) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let body = if matches!(method, "POST" | "PUT") {
        "{}"
    } else {
        ""
    };
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // The status line is enough (a stream's body never ends).
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    String::from_utf8_lossy(&head[9..12]).parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_a_real_socket_every_route_refuses_who_may_not_use_it_and_the_refusal_is_audited() {
    let s = state().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let router = app(s.clone());
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    // What a doctor of p-000123's care team may use; the rest of /api/v1 is refused to
    // them (403) and every route but the open ones to nobody signed in (401).
    let open = ["/healthz", "/readyz", "/metrics", "/api/v1/openapi.json"];
    let for_the_doctor = [
        ("get", "/api/v1/patients/{id}/readings"),
        ("get", "/api/v1/alert-events"),
        ("get", "/api/v1/alerts/stream"),
        ("post", "/api/v1/alerts/{id}/ack"),
        ("post", "/api/v1/alerts/{id}/resolve"),
        ("get", "/api/v1/institutions"),
        ("get", "/api/v1/doctors"),
        ("get", "/api/v1/patients"),
        ("get", "/api/v1/patients/{id}"),
        ("post", "/api/v1/session"),
        ("get", "/api/v1/session"),
        ("delete", "/api/v1/session"),
        ("get", "/api/v1/inbox"),
        ("get", "/api/v1/patients/{id}/summary"),
        ("post", "/api/v1/patients/{id}/break-glass"),
        ("put", "/api/v1/patients/{id}/overrides/{rule}"),
        ("delete", "/api/v1/patients/{id}/overrides/{rule}"),
        ("get", "/api/v1/patients/{id}/report"),
        ("post", "/api/v1/patients/{id}/referrals"),
        ("delete", "/api/v1/patients/{id}/referrals/{doctor}"),
    ];
    let mut refused = 0;
    for (method, route) in vigil_api::ROUTES {
        let path = route
            .replace("{id}", "p-000123")
            .replace("{rule}", "hr_brady")
            .replace("{doctor}", "d-duty-01");
        // Query strings the routes need to get past their own checks.
        let path = match *route {
            "/api/v1/alert-events" => format!("{path}?patient=p-000123"),
            "/api/v1/alerts/stream" => format!("{path}?doctor=d-0001"),
            _ => path,
        };
        let m = method.to_uppercase();
        let (a, p) = (addr.clone(), path.clone());
        let anonymous = tokio::task::spawn_blocking(move || raw_status(&a, &m, &p, None))
            .await
            .unwrap();
        if open.contains(route) || (*method, *route) == ("post", "/api/v1/session") {
            assert_ne!(anonymous, 401, "{method} {route} is open");
            continue;
        }
        assert_eq!(anonymous, 401, "{method} {route} without a token");
        let m = method.to_uppercase();
        let (a, p) = (addr.clone(), path.clone());
        let as_doctor =
            tokio::task::spawn_blocking(move || raw_status(&a, &m, &p, Some("tok-wang")))
                .await
                .unwrap();
        if for_the_doctor.contains(&(*method, *route)) {
            // Past access control (the handler may still find the body wanting).
            assert!(
                ![401, 403].contains(&as_doctor),
                "{method} {route}: {as_doctor}"
            );
            continue;
        }
        assert_eq!(as_doctor, 403, "{method} {route} as a doctor");
        refused += 1;
    }
    assert!(refused >= 25, "{refused}");
    // A doctor outside p-000123's care team (the duty desk, with no open alert of
    // theirs) is refused the patient's routes the care team may use: 403.
    let patient_routes = [
        "/api/v1/patients/p-000123",
        "/api/v1/patients/p-000123/readings",
        "/api/v1/patients/p-000123/summary",
        "/api/v1/patients/p-000123/report",
    ];
    for path in patient_routes {
        let a = addr.clone();
        let status =
            tokio::task::spawn_blocking(move || raw_status(&a, "GET", path, Some("tok-duty")))
                .await
                .unwrap();
        assert_eq!(status, 403, "GET {path} by a doctor outside the care team");
    }
    // Every refusal is in the audit trail with the caller's address.
    let entries = audit(&s).await;
    let outside: Vec<&Value> = entries
        .iter()
        .filter(|e| e["actor"] == "duty" && e["outcome"] == "refused: 403")
        .collect();
    assert_eq!(outside.len(), patient_routes.len(), "{outside:#?}");
    assert!(
        outside
            .iter()
            .all(|e| e["patient_id"] == "p-000123" && e["from"] == "127.0.0.1"),
        "{outside:#?}"
    );
    let doctor_refusals = entries
        .iter()
        .filter(|e| e["actor"] == "wang" && e["outcome"] == "refused: 403")
        .count();
    assert_eq!(doctor_refusals, refused);
    assert!(
        entries
            .iter()
            .filter(|e| e["outcome"] == "refused: 401")
            .all(|e| e["from"] == "127.0.0.1")
    );
}
