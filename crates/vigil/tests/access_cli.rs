//! `vigil users add`, `vigil audit verify` (an edited entry and a deleted one found) and `vigil serve` with `http.auth = true`,
//! as real binaries: a doctor's token opens their patient's data, no token gets 401,
//! every request lands in the audit trail, and the integrity check passes on the
//! intact trail and fails, saying where, once an entry has been edited.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

mod common;
use common::{http_addr, spawn_serve};

use std::io::{Read, Write};
use std::process::Command;

fn vigil(args: &[&str], config: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

/// GET with an optional bearer token: the status.
fn get(addr: &str, path: &str, token: Option<&str>) -> u16 {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n{auth}\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn tokens_open_the_api_and_the_audit_trail_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("registry.toml"),
        vigil_testkit::example_registry(),
    )
    .unwrap();
    let config = dir.path().join("vigil.toml");
    // The broker is nowhere: the API is served all the same.
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nregistry = {:?}\n[broker]\nurl = \"mqtt://127.0.0.1:{nowhere}\"\n[http]\nlisten = \"127.0.0.1:0\"\nauth = true\n",
            dir.path().join("data"),
            dir.path().join("registry.toml"),
        ),
    )
    .unwrap();
    let out = vigil(
        &[
            "users", "add", "--id", "wang", "--role", "doctor", "--doctor", "d-0001",
        ],
        &config,
    );
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert_eq!(token.len(), 64);
    // A doctor who is not in the registry is refused with the reason.
    let out = vigil(
        &[
            "users", "add", "--id", "x", "--role", "doctor", "--doctor", "d-9999",
        ],
        &config,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("not a doctor of the registry")
    );
    let out = vigil(&["audit", "verify"], &config);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("intact: 0 entries")
    );

    let mut serve = spawn_serve(dir.path(), "serve.log");
    let http = http_addr(&dir.path().join("serve.log"));
    let path = "/api/v1/patients/p-000123/readings";
    assert_eq!(get(&http, path, Some(&token)), 200);
    assert_eq!(get(&http, path, None), 401);
    assert_eq!(get(&http, path, Some("not-a-token")), 401);
    assert_eq!(get(&http, "/healthz", None), 200, "health needs no token");
    serve.kill().unwrap();
    serve.wait().unwrap();

    let out = vigil(&["audit", "verify"], &config);
    assert!(out.status.success(), "{out:?}");
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("intact: 3 entries")
    );
    // Someone edits the record of the refused request.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sql = |statement: &'static str| {
        rt.block_on(async {
            use sqlx::ConnectOptions;
            let mut c = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(dir.path().join("data").join("clinical.db"))
                .connect()
                .await
                .unwrap();
            sqlx::query(statement).execute(&mut c).await.unwrap();
        });
    };
    sql("CREATE TABLE kept AS SELECT * FROM audit_log WHERE id = 2");
    sql("UPDATE audit_log SET outcome = 'allowed' WHERE id = 2");
    let out = vigil(&["audit", "verify"], &config);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("BROKEN at entry 2"), "{text}");
    // Put back as it was, the trail is intact again; deleted, it is broken again.
    sql("UPDATE audit_log SET outcome = (SELECT outcome FROM kept) WHERE id = 2");
    assert!(vigil(&["audit", "verify"], &config).status.success());
    sql("DELETE FROM audit_log WHERE id = 2");
    let out = vigil(&["audit", "verify"], &config);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("BROKEN") && text.contains("missing"),
        "{text}"
    );
}

/// A request with a bearer token and a JSON body: (status, body).
fn request(addr: &str, method: &str, path: &str, token: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    (
        status,
        out.split("\r\n\r\n").nth(1).unwrap_or("").to_owned(),
    )
}

#[test]
fn vigil_serve_changes_its_registry_file_through_the_api_and_reloads_it_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let registry = dir.path().join("registry.toml");
    std::fs::write(&registry, vigil_testkit::example_registry()).unwrap();
    let config = dir.path().join("vigil.toml");
    let nowhere = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nregistry = {:?}\n[broker]\nurl = \"mqtt://127.0.0.1:{nowhere}\"\n[http]\nlisten = \"127.0.0.1:0\"\n",
            dir.path().join("data"),
            registry,
        ),
    )
    .unwrap();
    let token = |args: &[&str]| {
        let out = vigil(args, &config);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let root = token(&["users", "add", "--id", "root", "--role", "platform_admin"]);
    let wang = token(&[
        "users", "add", "--id", "wang", "--role", "doctor", "--doctor", "d-0001",
    ]);
    let mut serve = spawn_serve(dir.path(), "serve.log");
    let http = http_addr(&dir.path().join("serve.log"));
    let device = r#"{"id": "glu-new", "types": ["glucose"], "gateway": "gw-0042", "registered": "2026-11-01T00:00:00+08:00"}"#;
    let (status, body) = request(&http, "POST", "/api/v1/devices", &root, device);
    assert_eq!(status, 201, "{body}");
    assert!(
        std::fs::read_to_string(&registry)
            .unwrap()
            .contains("id = \"glu-new\"")
    );
    let (status, body) = request(&http, "GET", "/api/v1/devices", &root, "");
    assert_eq!(status, 200);
    assert!(body.contains("glu-new"), "{body}");
    // The responsible doctor sets an override; the file has it with who and why.
    let (status, body) = request(
        &http,
        "PUT",
        "/api/v1/patients/p-000123/overrides/bp_uncontrolled_home",
        &wang,
        r#"{"systolic": 150, "diastolic": 90, "reason": "aged 67"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let text = std::fs::read_to_string(&registry).unwrap();
    assert!(text.contains("bp_uncontrolled_home"), "{text}");
    assert!(text.contains("by = \"d-0001\""), "{text}");
    // Edited by hand: not overwritten until SIGHUP has loaded it.
    std::fs::write(&registry, format!("{text}\n# a note by hand\n")).unwrap();
    let cuff = r#"{"id": "bpm-2", "types": ["bp"], "gateway": "gw-0042", "registered": "2026-11-01T00:00:00+08:00"}"#;
    let (status, body) = request(&http, "POST", "/api/v1/devices", &root, cuff);
    assert_eq!(status, 409, "{body}");
    let log = dir.path().join("serve.log");
    assert!(
        Command::new("kill")
            .args(["-HUP", &serve.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("registry reloaded")
    {
        assert!(std::time::Instant::now() < deadline, "no reload in the log");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (status, body) = request(&http, "POST", "/api/v1/devices", &root, cuff);
    assert_eq!(status, 201, "{body}");
    let text = std::fs::read_to_string(&registry).unwrap();
    assert!(text.contains("# a note by hand") && text.contains("id = \"bpm-2\""));
    serve.kill().unwrap();
    serve.wait().unwrap();
}
