//! The audit trail's integrity check finds an edited, a deleted, an inserted and a
//! truncated entry, each at its place; users are found by their token's hash only,
//! and a revoked or unknown token finds nobody.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use chrono::{DateTime, TimeDelta, Utc};
use vigil_store::SqliteStore;
use vigil_store::access::{AuditEntry, Role, User, sha256_hex};

fn t0() -> DateTime<Utc> {
    "2026-12-01T08:00:00Z".parse().unwrap()
}

fn entry(n: i64) -> AuditEntry {
    AuditEntry {
        at: t0() + TimeDelta::seconds(n),
        actor: format!("u-{}", n % 3),
        action: "read".into(),
        resource: format!("GET /api/v1/patients/p-{n:06}/readings"),
        patient: Some(format!("p-{n:06}")),
        origin: "127.0.0.1".into(),
        outcome: if n % 4 == 0 { "refused" } else { "allowed" }.into(),
    }
}

async fn with_entries(n: i64) -> (tempfile::TempDir, std::path::PathBuf, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clinical.db");
    let store = SqliteStore::open(&path).await.unwrap();
    for i in 1..=n {
        assert_eq!(store.audit(&entry(i)).await.unwrap(), i);
    }
    (dir, path, store)
}

/// Tampers with the file behind the store's back, as someone with the file would.
async fn tamper(path: &std::path::Path, sql: &'static str) {
    use sqlx::ConnectOptions;
    let mut c = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .connect()
        .await
        .unwrap();
    sqlx::query(sql).execute(&mut c).await.unwrap();
}

#[tokio::test]
async fn an_intact_chain_verifies() {
    let (_dir, _path, store) = with_entries(50).await;
    assert_eq!(store.verify_audit().await.unwrap(), Ok(50));
    let all = store.audit_entries(0, 100).await.unwrap();
    assert_eq!(all.len(), 50);
    assert!(all.windows(2).all(|w| w[1].prev_hash == w[0].hash));
    let empty = SqliteStore::in_memory().await.unwrap();
    assert_eq!(empty.verify_audit().await.unwrap(), Ok(0));
}

#[tokio::test]
async fn an_edited_entry_is_found() {
    let (_dir, path, store) = with_entries(20).await;
    store.close().await;
    tamper(
        &path,
        "UPDATE audit_log SET outcome = 'allowed' WHERE id = 8",
    )
    .await;
    let store = SqliteStore::open(&path).await.unwrap();
    let broken = store.verify_audit().await.unwrap().unwrap_err();
    assert_eq!(broken.id, Some(8));
    assert!(broken.reason.contains("edited"), "{broken:?}");
}

#[tokio::test]
async fn a_deleted_entry_is_found_in_the_middle_and_at_the_end() {
    let (_dir, path, store) = with_entries(20).await;
    store.close().await;
    tamper(&path, "DELETE FROM audit_log WHERE id = 12").await;
    let store = SqliteStore::open(&path).await.unwrap();
    let broken = store.verify_audit().await.unwrap().unwrap_err();
    assert_eq!(broken.id, Some(13));
    assert!(broken.reason.contains("entry 12 is missing"), "{broken:?}");
    store.close().await;

    let (_dir2, path2, store2) = with_entries(20).await;
    store2.close().await;
    tamper(&path2, "DELETE FROM audit_log WHERE id = 20").await;
    let store2 = SqliteStore::open(&path2).await.unwrap();
    let broken = store2.verify_audit().await.unwrap().unwrap_err();
    assert_eq!(broken.id, None);
    assert!(broken.reason.contains("head"), "{broken:?}");
}

#[tokio::test]
async fn a_rehashed_edit_still_breaks_the_link_to_the_next_entry() {
    // Someone who edits an entry and recomputes its own hash still leaves the next
    // entry pointing at the old one.
    let (_dir, path, store) = with_entries(10).await;
    let records = store.audit_entries(0, 10).await.unwrap();
    store.close().await;
    let mut forged = records[7].entry.clone(); // entry 8: refused
    forged.outcome = "allowed".into();
    let hash = vigil_store::access::entry_hash(&records[7].prev_hash, 8, &forged);
    let sql: &'static str = Box::leak(
        format!("UPDATE audit_log SET outcome = 'allowed', hash = '{hash}' WHERE id = 8")
            .into_boxed_str(),
    );
    tamper(&path, sql).await;
    let store = SqliteStore::open(&path).await.unwrap();
    let broken = store.verify_audit().await.unwrap().unwrap_err();
    assert_eq!(broken.id, Some(9));
    assert!(broken.reason.contains("link"), "{broken:?}");
}

#[tokio::test]
async fn users_are_found_by_their_tokens_hash_only() {
    let store = SqliteStore::in_memory().await.unwrap();
    let user = User {
        id: "wang".into(),
        role: Role::Doctor,
        doctor_id: Some("d-0001".into()),
        institution_id: None,
    };
    store.add_user(&user, t0()).await.unwrap();
    assert!(store.add_user(&user, t0()).await.is_err(), "ids are unique");
    let token = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    store
        .add_token("wang", &sha256_hex(token.as_bytes()), "laptop", t0())
        .await
        .unwrap();
    assert_eq!(
        store
            .user_by_token(&sha256_hex(token.as_bytes()))
            .await
            .unwrap(),
        Some(user)
    );
    assert_eq!(
        store.user_by_token(token).await.unwrap(),
        None,
        "the clear token is not kept"
    );
    assert_eq!(
        store.user_by_token(&sha256_hex(b"other")).await.unwrap(),
        None
    );
}
