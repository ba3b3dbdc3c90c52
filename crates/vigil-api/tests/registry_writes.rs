//! Every registry write of the API succeeds when a platform admin makes it correctly,
//! through `oneshot` and over a real socket: adding, replacing and removing
//! institutions, doctors, patients, gateways and devices, adding assignments and
//! on-call windows, setting and removing a patient's rule override and opening and
//! closing a referral (naming the doctor, `by`), and importing a whole registry. After
//! each write the change is in force (the registry reads show it), in the registry
//! file, kept in the store as a new version (source `api (root)`, the file's text),
//! and in the audit trail as that admin's request (`write`, or `override` and
//! `referral`), allowed, from the caller's address. The writes made cover every
//! registry write route of `vigil_api::ROUTES`.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use chrono::{DateTime, TimeDelta, Utc};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use vigil_api::{AppState, app};
use vigil_model::clock::ManualClock;
use vigil_registry::Registry;
use vigil_store::SqliteStore;
use vigil_store::access::{Role, User, sha256_hex};

/// The platform admin's API token (user `root`).
const ROOT: &str = "tok-root";

fn now() -> DateTime<Utc> {
    "2026-12-01T08:00:00Z".parse().unwrap()
}

/// A store with a platform admin (`root`, token [`ROOT`]) and a doctor (`wang`, d-0001),
/// sign-in on, and the example registry as a file in `dir` the API may change.
async fn state(dir: &Path) -> (AppState, Arc<ManualClock>) {
    let path = dir.join("registry.toml");
    let text = vigil_testkit::example_registry();
    std::fs::write(&path, &text).unwrap();
    let clock = Arc::new(ManualClock::new(now()));
    let store = SqliteStore::in_memory().await.unwrap();
    for (id, role, doctor) in [
        ("wang", Role::Doctor, Some("d-0001")),
        ("root", Role::PlatformAdmin, None),
    ] {
        let user = User {
            id: id.into(),
            role,
            doctor_id: doctor.map(Into::into),
            institution_id: None,
        };
        store.add_user(&user, now()).await.unwrap();
        let token = format!("tok-{id}");
        store
            .add_token(id, &sha256_hex(token.as_bytes()), "test", now())
            .await
            .unwrap();
    }
    let (switch, current) =
        vigil_ingest::intake::RegistrySwitch::standalone(Arc::new(Registry::parse(&text).unwrap()));
    let file = vigil_api::registry_write::RegistryFile::new(
        path,
        &text,
        store.clone(),
        switch,
        Arc::new(vigil_rules::ruleset::RuleSet::default()),
        clock.clone(),
    );
    let state = AppState {
        registry: Some(current),
        auth: true,
        registry_file: Some(Arc::new(file)),
        ..AppState::new(store, clock.clone())
    };
    (state, clock)
}

/// A request body.
#[derive(Debug, Clone)]
enum Payload {
    None,
    Json(Value),
    Toml(String),
}

impl Payload {
    fn content_type(&self) -> &'static str {
        match self {
            Payload::Toml(_) => "application/toml",
            Payload::None | Payload::Json(_) => "application/json",
        }
    }

    fn text(&self) -> String {
        match self {
            Payload::None => String::new(),
            Payload::Json(v) => v.to_string(),
            Payload::Toml(t) => t.clone(),
        }
    }
}

/// How requests reach the API: the router itself, or a server on a real socket.
#[derive(Debug, Clone)]
enum Client {
    Router(AppState),
    Socket(String),
}

impl Client {
    /// The status and the body (as text) of a request with the admin's token.
    async fn send(&self, method: &str, path: &str, payload: &Payload) -> (u16, String) {
        match self {
            Client::Router(state) => {
                let req = Request::builder()
                    .method(method)
                    .uri(path)
                    .header("authorization", format!("Bearer {ROOT}"))
                    .header("content-type", payload.content_type())
                    .body(match payload {
                        Payload::None => Body::empty(),
                        p => Body::from(p.text()),
                    })
                    .unwrap();
                let res = app(state.clone()).oneshot(req).await.unwrap();
                let status = res.status().as_u16();
                let bytes = res.into_body().collect().await.unwrap().to_bytes();
                (status, String::from_utf8(bytes.to_vec()).unwrap())
            }
            Client::Socket(addr) => {
                let (addr, method, path, payload) = (
                    addr.clone(),
                    method.to_owned(),
                    path.to_owned(),
                    payload.clone(),
                );
                tokio::task::spawn_blocking(move || raw(&addr, &method, &path, &payload))
                    .await
                    .unwrap()
            }
        }
    }

    /// The status and the JSON body (`null` when it is not JSON).
    async fn send_json(&self, method: &str, path: &str, payload: &Payload) -> (u16, Value) {
        let (status, body) = self.send(method, path, payload).await;
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    /// A GET that must succeed: its JSON body.
    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.send_json("GET", path, &Payload::None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// The registry in force, exported (`GET /api/v1/registry`).
    async fn export(&self) -> String {
        let (status, text) = self.send("GET", "/api/v1/registry", &Payload::None).await;
        assert_eq!(status, 200, "GET /api/v1/registry: {text}");
        text
    }
}

/// One HTTP/1.0 request over a real socket, read until the server closes: the status
/// and the body.
fn raw(addr: &str, method: &str, path: &str, payload: &Payload) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let body = payload.text();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {ROOT}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n{body}",
        payload.content_type(),
        body.len()
    )
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned());
    (status, body)
}

/// The item with `id` in a page of a registry list (`{"items": [...]}`).
fn item(page: &Value, id: &str) -> Option<Value> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == id)
        .cloned()
}

/// The registry write routes of [`vigil_api::ROUTES`]: every route that is not a read,
/// a session, an alert action or a break-glass access.
fn registry_write_routes() -> Vec<(String, String)> {
    let mut routes: Vec<(String, String)> = vigil_api::ROUTES
        .iter()
        .filter(|(method, route)| {
            *method != "get"
                && !route.starts_with("/api/v1/session")
                && !route.starts_with("/api/v1/alerts/")
                && !route.contains("break-glass")
        })
        .map(|(m, r)| ((*m).to_owned(), (*r).to_owned()))
        .collect();
    routes.sort();
    routes
}

/// A platform admin's writes, each checked in force, in the file, in the store's
/// versions and in the audit trail.
struct Admin<'a> {
    client: Client,
    state: &'a AppState,
    file: PathBuf,
    /// The address the audit trail records (`-` without a socket).
    origin: &'static str,
    /// The last audit entry looked at.
    audit_cursor: i64,
    /// The (method, route) of each write made.
    covered: Vec<(String, String)>,
}

impl Admin<'_> {
    /// Makes a write that must answer `expected`; checks that it came into force as a
    /// new version of the file kept by the store, and that the audit trail has it as
    /// `action` by `root`. The response's JSON body.
    async fn write(
        &mut self,
        (method, route): (&str, &str),
        path: &str,
        payload: Payload,
        expected: u16,
        action: &str,
    ) -> Value {
        let versions_before = self.state.store.registry_versions().await.unwrap().len();
        let method_upper = method.to_uppercase();
        let (status, body) = self.client.send_json(&method_upper, path, &payload).await;
        assert_eq!(status, expected, "{method_upper} {path}: {body}");
        // Written, kept as a new version saying who made it, with the file's text.
        let text = std::fs::read_to_string(&self.file).unwrap();
        Registry::parse(&text).unwrap();
        let versions = self.state.store.registry_versions().await.unwrap();
        assert_eq!(
            versions.len(),
            versions_before + 1,
            "{method_upper} {path}: one new version"
        );
        let (_, source, kept) = versions.last().unwrap();
        assert_eq!(source, "api (root)", "{method_upper} {path}");
        assert_eq!(
            *kept, text,
            "{method_upper} {path}: the version is the file"
        );
        // In the audit trail, as the admin's request, allowed, from the caller.
        let entries = self
            .client
            .get(&format!(
                "/api/v1/audit?after={}&limit=1000",
                self.audit_cursor
            ))
            .await["audit"]
            .as_array()
            .unwrap()
            .clone();
        // (The audit trail names the path, not its query.)
        let resource = format!("{method_upper} {}", path.split('?').next().unwrap());
        let mine: Vec<&Value> = entries
            .iter()
            .filter(|e| e["resource"] == resource)
            .collect();
        assert_eq!(mine.len(), 1, "{resource}: {entries:?}");
        let e = mine[0];
        assert_eq!(
            (
                e["actor"].as_str(),
                e["action"].as_str(),
                e["outcome"].as_str(),
                e["from"].as_str()
            ),
            (
                Some("root"),
                Some(action),
                Some("allowed"),
                Some(self.origin)
            ),
            "{e}"
        );
        let patient = path
            .strip_prefix("/api/v1/patients/")
            .map(|rest| rest.split('/').next().unwrap());
        assert_eq!(e["patient_id"].as_str(), patient, "{e}");
        self.audit_cursor = entries.last().unwrap()["id"].as_i64().unwrap();
        self.covered.push((method.to_owned(), route.to_owned()));
        body
    }

    fn file_text(&self) -> String {
        std::fs::read_to_string(&self.file).unwrap()
    }

    fn file_registry(&self) -> Registry {
        Registry::parse(&self.file_text()).unwrap()
    }
}

/// Every registry write, by the platform admin, through `client`; returns the routes
/// covered.
async fn every_write(
    client: Client,
    state: &AppState,
    clock: &ManualClock,
    dir: &Path,
    origin: &'static str,
) -> Vec<(String, String)> {
    let mut admin = Admin {
        client: client.clone(),
        state,
        file: dir.join("registry.toml"),
        origin,
        audit_cursor: 0,
        covered: Vec::new(),
    };
    let changed = |body: &Value| {
        assert_eq!(body["changed"], true, "{body}");
    };

    // Institutions: a new community health centre, renamed.
    let hanyang = json!({"id": "chc-hanyang", "tier": "community", "hub": "hub-tongji",
                         "name": "Hanyang CHC", "timezone": "Asia/Shanghai",
                         "escalation_minutes": {"critical_l2": 10, "critical_l3": 20, "high_l2": 45}});
    let body = admin
        .write(
            ("post", "/api/v1/institutions"),
            "/api/v1/institutions",
            Payload::Json(hanyang.clone()),
            201,
            "write",
        )
        .await;
    changed(&body);
    let i = item(&client.get("/api/v1/institutions").await, "chc-hanyang").unwrap();
    assert_eq!(
        (i["name"].as_str(), i["tier"].as_str(), i["hub"].as_str()),
        (Some("Hanyang CHC"), Some("community"), Some("hub-tongji"))
    );
    let in_file = admin.file_registry();
    let i = &in_file.institutions[&"chc-hanyang".parse().unwrap()];
    assert_eq!(i.name, "Hanyang CHC");
    // The file keeps its comments.
    assert!(
        admin
            .file_text()
            .contains("# where its level-2 escalations go")
    );

    let mut renamed = hanyang.clone();
    renamed["name"] = json!("Hanyang community health centre");
    renamed.as_object_mut().unwrap().remove("id");
    changed(
        &admin
            .write(
                ("put", "/api/v1/institutions/{id}"),
                "/api/v1/institutions/chc-hanyang",
                Payload::Json(renamed),
                200,
                "write",
            )
            .await,
    );
    let i = item(&client.get("/api/v1/institutions").await, "chc-hanyang").unwrap();
    assert_eq!(i["name"], "Hanyang community health centre");
    assert!(
        admin
            .file_text()
            .contains("name = \"Hanyang community health centre\"")
    );

    // Doctors: a family doctor there, renamed.
    let zhao = json!({"id": "d-0200", "name": "Dr. Zhao", "institution": "chc-hanyang",
                      "roles": ["family_doctor"], "channels": {"mqtt": true, "sse": false}});
    changed(
        &admin
            .write(
                ("post", "/api/v1/doctors"),
                "/api/v1/doctors",
                Payload::Json(zhao.clone()),
                201,
                "write",
            )
            .await,
    );
    let d = item(&client.get("/api/v1/doctors").await, "d-0200").unwrap();
    assert_eq!(
        (d["name"].as_str(), d["institution"].as_str()),
        (Some("Dr. Zhao"), Some("chc-hanyang"))
    );
    assert_eq!(d["roles"], json!(["family_doctor"]));
    let in_file = admin.file_registry();
    assert!(!in_file.doctors[&"d-0200".parse().unwrap()].channels.sse);

    let mut zhao_lei = zhao.clone();
    zhao_lei["name"] = json!("Dr. Zhao Lei");
    zhao_lei["roles"] = json!(["family_doctor", "on_call"]);
    changed(
        &admin
            .write(
                ("put", "/api/v1/doctors/{id}"),
                "/api/v1/doctors/d-0200",
                Payload::Json(zhao_lei),
                200,
                "write",
            )
            .await,
    );
    let d = item(&client.get("/api/v1/doctors").await, "d-0200").unwrap();
    assert_eq!(d["name"], "Dr. Zhao Lei");
    assert_eq!(d["roles"], json!(["family_doctor", "on_call"]));
    assert!(admin.file_text().contains("name = \"Dr. Zhao Lei\""));

    // Patients: one of Dr. Zhao's, then their entry replaced.
    let patient = json!({"id": "p-000456", "institution": "chc-hanyang",
                         "conditions": ["hypertension"], "age": 58,
                         "care_team": {"responsible": "d-0200", "specialist": "d-0100"}});
    changed(
        &admin
            .write(
                ("post", "/api/v1/patients"),
                "/api/v1/patients",
                Payload::Json(patient.clone()),
                201,
                "write",
            )
            .await,
    );
    let p = client.get("/api/v1/patients/p-000456").await;
    assert_eq!(
        (p["institution"].as_str(), p["age"].as_u64()),
        (Some("chc-hanyang"), Some(58))
    );
    assert_eq!(
        p["care_team"],
        json!({"responsible": "d-0200", "specialist": "d-0100"})
    );
    assert!(item(&client.get("/api/v1/patients").await, "p-000456").is_some());
    assert!(
        admin
            .file_registry()
            .patients
            .contains_key(&"p-000456".parse().unwrap())
    );

    let mut older = patient.clone();
    older["age"] = json!(59);
    older["conditions"] = json!(["hypertension", "copd"]);
    older["medications"] = json!(["amlodipine"]);
    changed(
        &admin
            .write(
                ("put", "/api/v1/patients/{id}"),
                "/api/v1/patients/p-000456",
                Payload::Json(older),
                200,
                "write",
            )
            .await,
    );
    let p = client.get("/api/v1/patients/p-000456").await;
    assert_eq!(p["age"], 59);
    assert_eq!(p["conditions"], json!(["hypertension", "copd"]));
    assert_eq!(p["medications"], json!(["amlodipine"]));
    let in_file = admin.file_registry();
    let p = &in_file.patients[&"p-000456".parse().unwrap()];
    assert_eq!((p.age, p.spo2_scale), (Some(59), 2), "copd: scale 2");

    // Gateways: one for the new patient, then moved to p-000123's household.
    changed(
        &admin
            .write(
                ("post", "/api/v1/gateways"),
                "/api/v1/gateways",
                Payload::Json(json!({"id": "gw-0043", "patient": "p-000456"})),
                201,
                "write",
            )
            .await,
    );
    let g = item(&client.get("/api/v1/gateways").await, "gw-0043").unwrap();
    assert_eq!(g["patient"], "p-000456");
    assert!(
        admin
            .file_registry()
            .gateways
            .contains_key(&"gw-0043".parse().unwrap())
    );
    changed(
        &admin
            .write(
                ("put", "/api/v1/gateways/{id}"),
                "/api/v1/gateways/gw-0043",
                Payload::Json(json!({"id": "gw-0043", "patient": "p-000123"})),
                200,
                "write",
            )
            .await,
    );
    let g = item(&client.get("/api/v1/gateways").await, "gw-0043").unwrap();
    assert_eq!(g["patient"], "p-000123");
    assert_eq!(
        admin.file_registry().gateways[&"gw-0043".parse().unwrap()]
            .patient
            .as_ref()
            .map(|p| p.to_string()),
        Some("p-000123".to_owned())
    );

    // Devices: a glucometer on the example's gateway, a scale on the new one; the
    // example's cuff now also reports heart rate.
    for (id, types, gateway) in [
        ("glu-0043", json!(["glucose"]), "gw-0042"),
        ("scale-0043", json!(["weight"]), "gw-0043"),
    ] {
        changed(
            &admin
                .write(
                    ("post", "/api/v1/devices"),
                    "/api/v1/devices",
                    Payload::Json(json!({"id": id, "types": types, "gateway": gateway,
                                         "registered": "2026-11-10T00:00:00+08:00"})),
                    201,
                    "write",
                )
                .await,
        );
        let d = item(&client.get("/api/v1/devices").await, id).unwrap();
        assert_eq!(
            (d["types"].clone(), d["gateway"].as_str()),
            (types, Some(gateway))
        );
    }
    changed(
        &admin
            .write(
                ("put", "/api/v1/devices/{id}"),
                "/api/v1/devices/bpm-omron-3f9a21",
                Payload::Json(json!({"types": ["bp", "heart_rate"], "gateway": "gw-0042",
                                     "registered": "2026-11-01T00:00:00+08:00"})),
                200,
                "write",
            )
            .await,
    );
    let d = item(&client.get("/api/v1/devices").await, "bpm-omron-3f9a21").unwrap();
    assert_eq!(d["types"], json!(["bp", "heart_rate"]));
    assert_eq!(
        admin.file_registry().devices[&"bpm-omron-3f9a21".parse().unwrap()]
            .types
            .len(),
        2
    );

    // A glucose the glucometer measured on 2026-11-30 arrives before any assignment
    // covers it: quarantined as unassigned_device.
    let envelope = json!({"schema": "vigil.readings.v1", "gateway_id": "gw-0042", "batch_seq": 1,
        "sent_at": "2026-12-01T16:00:00+08:00",
        "readings": [{"device_id": "glu-0043", "type": "glucose", "time": "2026-11-30T07:10:00+08:00",
                      "unit": "mmol/L", "values": {"value": 5.4}}]});
    let commit = vigil_ingest::pipeline::prepare(
        &"gw-0042".parse().unwrap(),
        envelope.to_string().as_bytes(),
        now(),
        &admin.file_registry(),
    )
    .unwrap();
    state.store.commit(&[commit]).await.unwrap();
    let q = client
        .get("/api/v1/quarantine?reason=unassigned_device")
        .await;
    assert_eq!(q["quarantine"].as_array().unwrap().len(), 1, "{q}");

    // An assignment: the glucometer measures p-000123 from 2026-11-15; the quarantined
    // glucose is now p-000123's.
    let body = admin
        .write(
            ("post", "/api/v1/assignments"),
            "/api/v1/assignments",
            Payload::Json(json!({"device": "glu-0043", "patient": "p-000123",
                                     "from": "2026-11-15T00:00:00+08:00"})),
            201,
            "write",
        )
        .await;
    changed(&body);
    assert_eq!(body["unassigned_now_stored"], 1, "{body}");
    let readings = client
        .get("/api/v1/patients/p-000123/readings?type=glucose")
        .await;
    let readings = readings["readings"].as_array().unwrap();
    assert_eq!(readings.len(), 1, "{readings:?}");
    assert_eq!(readings[0]["device_id"], "glu-0043");
    let p = client.get("/api/v1/patients/p-000123").await;
    let devices = p["devices"].as_array().unwrap();
    assert!(devices.contains(&json!("glu-0043")), "{p}");
    assert!(devices.contains(&json!("bpm-omron-3f9a21")), "{p}");
    assert!(
        admin
            .file_registry()
            .assignments
            .iter()
            .any(|a| a.device.as_str() == "glu-0043" && a.patient.as_str() == "p-000123")
    );

    // An on-call window at the hub (in the export and the file, then listed).
    changed(
        &admin
            .write(
                ("post", "/api/v1/on-call"),
                "/api/v1/on-call",
                Payload::Json(json!({"institution": "hub-tongji", "doctor": "d-0100",
                                     "from": "2026-12-01T08:00:00+08:00",
                                     "to": "2026-12-02T08:00:00+08:00"})),
                201,
                "write",
            )
            .await,
    );
    let window = |r: &Registry| {
        r.on_call.iter().any(|o| {
            o.institution.as_str() == "hub-tongji"
                && o.doctor.as_str() == "d-0100"
                && o.from.to_rfc3339() == "2026-12-01T08:00:00+08:00"
                && o.to.to_rfc3339() == "2026-12-02T08:00:00+08:00"
        })
    };
    let exported = Registry::parse(&client.export().await).unwrap();
    assert!(window(&exported));
    assert_eq!(exported.on_call.len(), 2);
    assert!(window(&admin.file_registry()));
    // Listed, on now (the clock says 2026-12-01 16:00 in Wuhan); then removed.
    let listed = client.get("/api/v1/on-call?institution=hub-tongji").await;
    let on_now: Vec<&Value> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["doctor"] == "d-0100" && w["from"] == "2026-12-01T08:00:00+08:00")
        .collect();
    assert_eq!(on_now.len(), 1, "{listed}");
    assert_eq!(on_now[0]["now"], true, "{listed}");
    changed(
        &admin
            .write(
                ("delete", "/api/v1/on-call"),
                "/api/v1/on-call?institution=hub-tongji&doctor=d-0100&from=2026-12-01T08:00:00%2B08:00",
                Payload::None,
                200,
                "write",
            )
            .await,
    );
    assert!(!window(&admin.file_registry()));
    assert_eq!(
        client.get("/api/v1/on-call").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // The glucometer's assignment listed, in force; then ended (handed back) at
    // midnight: listed as no longer in force, with its end in the file.
    let listed = client.get("/api/v1/assignments?device=glu-0043").await;
    assert_eq!(listed["items"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["items"][0]["in_force"], true, "{listed}");
    let body = admin
        .write(
            ("post", "/api/v1/assignments/end"),
            "/api/v1/assignments/end",
            Payload::Json(json!({"device": "glu-0043", "at": "2026-12-01T00:00:00+08:00"})),
            200,
            "write",
        )
        .await;
    changed(&body);
    assert_eq!(body["patient"], "p-000123", "{body}");
    let listed = client.get("/api/v1/assignments?patient=p-000123").await;
    let glu = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["device"] == "glu-0043")
        .cloned()
        .unwrap();
    assert_eq!(
        (glu["in_force"].as_bool(), glu["to"].as_str()),
        (Some(false), Some("2026-12-01T00:00:00+08:00")),
        "{glu}"
    );

    // The care team: the specialist taken off, then set again.
    for (team, specialist) in [
        (json!({"responsible": "d-0001"}), None),
        (
            json!({"responsible": "d-0001", "specialist": "d-0100"}),
            Some("d-0100"),
        ),
    ] {
        changed(
            &admin
                .write(
                    ("put", "/api/v1/patients/{id}/care-team"),
                    "/api/v1/patients/p-000123/care-team",
                    Payload::Json(team),
                    200,
                    "write",
                )
                .await,
        );
        let r = admin.file_registry();
        let care = &r.patients[&"p-000123".parse().unwrap()].care_team;
        assert_eq!(care.responsible.as_str(), "d-0001");
        assert_eq!(care.specialist.as_ref().map(|d| d.as_str()), specialist);
    }

    // A rule override of p-000123, set by a platform admin naming the doctor, removed.
    let uri = "/api/v1/patients/p-000123/overrides/bp_uncontrolled_home";
    let body = admin
        .write(
            ("put", "/api/v1/patients/{id}/overrides/{rule}"),
            uri,
            Payload::Json(json!({"systolic": 150, "diastolic": 90, "by": "d-0001",
                                 "reason": "aged 67", "until": "2027-06-01T00:00:00+08:00"})),
            200,
            "override",
        )
        .await;
    assert_eq!(body["override"]["by"], "d-0001", "{body}");
    let p = client.get("/api/v1/patients/p-000123").await;
    let o = p["overrides"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["rule"] == "bp_uncontrolled_home")
        .cloned()
        .unwrap();
    assert_eq!(
        (
            o["by"].as_str(),
            o["reason"].as_str(),
            o["active"].as_bool()
        ),
        (Some("d-0001"), Some("aged 67"), Some(true))
    );
    assert!(
        admin.file_registry().patients[&"p-000123".parse().unwrap()]
            .overrides
            .contains_key("bp_uncontrolled_home")
    );
    let body = admin
        .write(
            ("delete", "/api/v1/patients/{id}/overrides/{rule}"),
            uri,
            Payload::None,
            200,
            "override",
        )
        .await;
    assert_eq!(body["removed"], true, "{body}");
    let p = client.get("/api/v1/patients/p-000123").await;
    assert!(!p["overrides"].to_string().contains("bp_uncontrolled_home"));
    assert!(
        !admin.file_registry().patients[&"p-000123".parse().unwrap()]
            .overrides
            .contains_key("bp_uncontrolled_home")
    );

    // A referral of p-000123 to the duty desk, opened now and closed an hour later
    // (kept, with `until`).
    let body = admin
        .write(
            ("post", "/api/v1/patients/{id}/referrals"),
            "/api/v1/patients/p-000123/referrals",
            Payload::Json(json!({"to": "d-duty-01", "by": "d-0001", "reason": "closer to home"})),
            201,
            "referral",
        )
        .await;
    assert_eq!(
        (body["to"].as_str(), body["by"].as_str()),
        (Some("d-duty-01"), Some("d-0001")),
        "{body}"
    );
    let referral = |p: &Value| {
        p["referrals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["to"] == "d-duty-01")
            .cloned()
            .unwrap()
    };
    let p = client.get("/api/v1/patients/p-000123").await;
    assert_eq!(referral(&p)["open"], true, "{p}");
    assert_eq!(admin.file_registry().referrals.len(), 1);
    clock.advance(TimeDelta::hours(1));
    let body = admin
        .write(
            ("delete", "/api/v1/patients/{id}/referrals/{doctor}"),
            "/api/v1/patients/p-000123/referrals/d-duty-01",
            Payload::None,
            200,
            "referral",
        )
        .await;
    assert_eq!(body["closed"], 1, "{body}");
    let p = client.get("/api/v1/patients/p-000123").await;
    let r = referral(&p);
    assert_eq!(
        (r["open"].as_bool(), r["until"].as_str()),
        (Some(false), Some("2026-12-01T09:00:00+00:00")),
        "{p}"
    );
    assert!(
        admin.file_registry().referrals[0]
            .until
            .is_some_and(|u| u == now() + TimeDelta::hours(1))
    );

    // Removing what nothing refers to any more: the scale, then its gateway (no
    // longer in use), the new patient, their doctor, the centre.
    for (route, path, gone) in [
        (
            "/api/v1/devices/{id}",
            "/api/v1/devices/scale-0043",
            "scale-0043",
        ),
        (
            "/api/v1/gateways/{id}",
            "/api/v1/gateways/gw-0043",
            "gw-0043",
        ),
        (
            "/api/v1/patients/{id}",
            "/api/v1/patients/p-000456",
            "p-000456",
        ),
        ("/api/v1/doctors/{id}", "/api/v1/doctors/d-0200", "d-0200"),
        (
            "/api/v1/institutions/{id}",
            "/api/v1/institutions/chc-hanyang",
            "chc-hanyang",
        ),
    ] {
        changed(
            &admin
                .write(("delete", route), path, Payload::None, 200, "write")
                .await,
        );
        let list = path.rsplit_once('/').unwrap().0;
        assert!(
            item(&client.get(list).await, gone).is_none(),
            "{path} still listed"
        );
        let text = admin.file_text();
        assert!(!text.contains(&format!("id = \"{gone}\"")), "{text}");
    }
    let (status, body) = client
        .send_json("GET", "/api/v1/patients/p-000456", &Payload::None)
        .await;
    assert_eq!(status, 404, "{body}");

    // An import: the registry in force with the hub renamed, in force as sent.
    let exported = client.export().await;
    assert_eq!(exported, admin.file_text());
    let imported = exported.replace("name = \"Hub hospital\"", "name = \"Tongji hub hospital\"");
    assert_ne!(imported, exported);
    let body = admin
        .write(
            ("put", "/api/v1/registry"),
            "/api/v1/registry",
            Payload::Toml(imported.clone()),
            200,
            "write",
        )
        .await;
    changed(&body);
    assert_eq!(body["patients"], 1, "{body}");
    assert_eq!(admin.file_text(), imported);
    assert_eq!(client.export().await, imported);
    let hub = item(&client.get("/api/v1/institutions").await, "hub-tongji").unwrap();
    assert_eq!(hub["name"], "Tongji hub hospital");

    // The trail is whole and chained.
    assert!(state.store.verify_audit().await.unwrap().is_ok());
    let mut covered = admin.covered;
    covered.sort();
    covered.dedup();
    covered
}

#[tokio::test]
async fn a_platform_admin_makes_every_registry_write_through_the_router_and_each_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let (s, clock) = state(dir.path()).await;
    let covered = every_write(Client::Router(s.clone()), &s, &clock, dir.path(), "-").await;
    assert_eq!(covered, registry_write_routes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_a_real_socket_a_platform_admin_makes_every_registry_write_and_each_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let (s, clock) = state(dir.path()).await;
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
    let covered = every_write(Client::Socket(addr), &s, &clock, dir.path(), "127.0.0.1").await;
    assert_eq!(covered, registry_write_routes());
}

#[tokio::test]
async fn ending_removing_and_setting_what_is_not_there_is_refused_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = state(dir.path()).await;
    let client = Client::Router(s.clone());
    let file = dir.path().join("registry.toml");
    let before = std::fs::read_to_string(&file).unwrap();
    let json = |v: Value| Payload::Json(v);
    // The cuff was not assigned before 2026-11-01.
    let (status, body) = client
        .send_json(
            "POST",
            "/api/v1/assignments/end",
            &json(json!({"device": "bpm-omron-3f9a21", "at": "2026-10-01T00:00:00+08:00"})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("no assignment in force"),
        "{body}"
    );
    let (status, body) = client
        .send_json(
            "POST",
            "/api/v1/assignments/end",
            &json(json!({"device": "bpm-omron-3f9a21", "at": "yesterday"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    // No such on-call window.
    let (status, body) = client
        .send_json(
            "DELETE",
            "/api/v1/on-call?institution=hub-tongji&doctor=d-0001&from=2026-11-22T08:00:00%2B08:00",
            &Payload::None,
        )
        .await;
    assert_eq!(status, 404, "{body}");
    // A care team naming a doctor the registry lacks: every problem, nothing written.
    let (status, body) = client
        .send_json(
            "PUT",
            "/api/v1/patients/p-000123/care-team",
            &json(json!({"responsible": "d-9999"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("d-9999"), "{body}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
}
