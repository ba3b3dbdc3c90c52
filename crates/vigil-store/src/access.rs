//! Who may use the API, and what they did: users with API tokens (stored as SHA-256
//! hashes, never in clear), and the audit trail.
//!
//! The audit trail is append-only and tamper-evident: each entry carries the SHA-256 of
//! the one before it and its own hash over its fields and that link, and the head
//! (the last id and hash) is kept beside it, written in the same transaction. An
//! entry edited, deleted, inserted or reordered breaks the chain at that point, and
//! [`SqliteStore::verify_audit`] says where. (Someone able to rewrite the whole table
//! and the head together can forge a consistent chain: anchor the head elsewhere, e.g.
//! by logging it, for that.)

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::Error;
use crate::sqlite::SqliteStore;

pub(crate) const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS users (
        id             TEXT    PRIMARY KEY,
        role           TEXT    NOT NULL, -- doctor, institution_admin, platform_admin
        doctor_id      TEXT,             -- a doctor's registry id
        institution_id TEXT,             -- an institution admin's institution
        created_ms     INTEGER NOT NULL
    ) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS api_tokens (
        hash       TEXT    PRIMARY KEY, -- hex SHA-256 of the token; the token is never kept
        user_id    TEXT    NOT NULL,
        name       TEXT    NOT NULL,
        created_ms INTEGER NOT NULL,
        revoked_ms INTEGER
    ) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS audit_log (
        id        INTEGER PRIMARY KEY,
        at_ms     INTEGER NOT NULL,
        actor     TEXT    NOT NULL, -- a user id, or '-' when nobody could be identified
        action    TEXT    NOT NULL, -- read, write, export, ack, resolve, login, ...
        resource  TEXT    NOT NULL, -- what was asked for (method and path)
        patient   TEXT,             -- the patient pseudonym concerned, if one
        origin    TEXT    NOT NULL, -- where from (the client's address)
        outcome   TEXT    NOT NULL, -- allowed, refused, or the refusal's reason
        prev_hash TEXT    NOT NULL,
        hash      TEXT    NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS audit_head (
        one       INTEGER PRIMARY KEY CHECK (one = 1),
        last_id   INTEGER NOT NULL,
        last_hash TEXT    NOT NULL
    )",
];

/// The hash before the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A user of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub role: Role,
    pub doctor_id: Option<String>,
    pub institution_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Doctor,
    InstitutionAdmin,
    PlatformAdmin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Doctor => "doctor",
            Role::InstitutionAdmin => "institution_admin",
            Role::PlatformAdmin => "platform_admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "doctor" => Role::Doctor,
            "institution_admin" => Role::InstitutionAdmin,
            "platform_admin" => Role::PlatformAdmin,
            _ => return None,
        })
    }
}

/// One audit entry, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub resource: String,
    pub patient: Option<String>,
    pub origin: String,
    pub outcome: String,
}

/// An audit entry as kept, with its place in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    pub entry: AuditEntry,
    pub prev_hash: String,
    pub hash: String,
}

/// Where the chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditBreak {
    /// The first entry that does not verify (or the head, as `None`).
    pub id: Option<i64>,
    pub reason: String,
}

/// Hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    use std::fmt::Write as _;
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// An entry's hash: over its link to the previous one, its id and every field, each
/// length-prefixed so no two entries serialise alike.
pub fn entry_hash(prev_hash: &str, id: i64, e: &AuditEntry) -> String {
    let mut buf = Vec::new();
    let at = e.at.timestamp_millis().to_string();
    let id = id.to_string();
    for field in [
        prev_hash,
        id.as_str(),
        at.as_str(),
        e.actor.as_str(),
        e.action.as_str(),
        e.resource.as_str(),
        e.patient.as_deref().unwrap_or("\u{0}"),
        e.origin.as_str(),
        e.outcome.as_str(),
    ] {
        buf.extend_from_slice(&(field.len() as u64).to_le_bytes());
        buf.extend_from_slice(field.as_bytes());
    }
    sha256_hex(&buf)
}

impl SqliteStore {
    /// Adds a user (refused if the id exists).
    pub async fn add_user(&self, user: &User, at: DateTime<Utc>) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO users (id, role, doctor_id, institution_id, created_ms) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&user.id)
        .bind(user.role.as_str())
        .bind(&user.doctor_id)
        .bind(&user.institution_id)
        .bind(at.timestamp_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Keeps a new API token of `user_id` by its hash.
    pub async fn add_token(
        &self,
        user_id: &str,
        token_hash: &str,
        name: &str,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        sqlx::query("INSERT INTO api_tokens (hash, user_id, name, created_ms) VALUES (?, ?, ?, ?)")
            .bind(token_hash)
            .bind(user_id)
            .bind(name)
            .bind(at.timestamp_millis())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The user a (not revoked) token belongs to.
    pub async fn user_by_token(&self, token_hash: &str) -> Result<Option<User>, Error> {
        let row = sqlx::query(
            "SELECT u.id, u.role, u.doctor_id, u.institution_id FROM api_tokens t
             JOIN users u ON u.id = t.user_id WHERE t.hash = ? AND t.revoked_ms IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            let role: String = r.try_get(1)?;
            Ok(User {
                id: r.try_get(0)?,
                role: Role::parse(&role)
                    .ok_or_else(|| crate::sqlite::corrupt("user role", &role))?,
                doctor_id: r.try_get(2)?,
                institution_id: r.try_get(3)?,
            })
        })
        .transpose()
    }

    /// Appends an entry to the audit trail; returns its id.
    pub async fn audit(&self, e: &AuditEntry) -> Result<i64, Error> {
        let mut tx = self.pool.begin().await?;
        let head = sqlx::query("SELECT last_id, last_hash FROM audit_head WHERE one = 1")
            .fetch_optional(&mut *tx)
            .await?;
        let (last_id, prev): (i64, String) = match head {
            Some(r) => (r.try_get(0)?, r.try_get(1)?),
            None => (0, GENESIS.to_owned()),
        };
        let id = last_id + 1;
        let hash = entry_hash(&prev, id, e);
        sqlx::query(
            "INSERT INTO audit_log (id, at_ms, actor, action, resource, patient, origin, outcome, prev_hash, hash)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id)
        .bind(e.at.timestamp_millis())
        .bind(&e.actor)
        .bind(&e.action)
        .bind(&e.resource)
        .bind(&e.patient)
        .bind(&e.origin)
        .bind(&e.outcome)
        .bind(&prev)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO audit_head (one, last_id, last_hash) VALUES (1, ?, ?)
             ON CONFLICT (one) DO UPDATE SET last_id = excluded.last_id, last_hash = excluded.last_hash",
        )
        .bind(id)
        .bind(&hash)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Audit entries after `after`, oldest first, at most `limit`.
    pub async fn audit_entries(&self, after: i64, limit: u32) -> Result<Vec<AuditRecord>, Error> {
        let rows = sqlx::query(
            "SELECT id, at_ms, actor, action, resource, patient, origin, outcome, prev_hash, hash
             FROM audit_log WHERE id > ? ORDER BY id LIMIT ?",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    id: r.try_get(0)?,
                    entry: AuditEntry {
                        at: crate::sqlite::millis(r.try_get(1)?)?,
                        actor: r.try_get(2)?,
                        action: r.try_get(3)?,
                        resource: r.try_get(4)?,
                        patient: r.try_get(5)?,
                        origin: r.try_get(6)?,
                        outcome: r.try_get(7)?,
                    },
                    prev_hash: r.try_get(8)?,
                    hash: r.try_get(9)?,
                })
            })
            .collect()
    }

    /// Walks the whole chain: `Ok(entries)` when every entry links to the one before,
    /// hashes to what it says, and the last one is the head; else where it breaks.
    pub async fn verify_audit(&self) -> Result<Result<u64, AuditBreak>, Error> {
        let mut prev = GENESIS.to_owned();
        let mut expected_id = 1i64;
        let mut count = 0u64;
        loop {
            let batch = self.audit_entries(expected_id - 1, 1000).await?;
            if batch.is_empty() {
                break;
            }
            for r in batch {
                let broken = |reason: String| {
                    Ok(Err(AuditBreak {
                        id: Some(r.id),
                        reason,
                    }))
                };
                if r.id != expected_id {
                    return broken(format!(
                        "entry {} is missing (the next one is {})",
                        expected_id, r.id
                    ));
                }
                if r.prev_hash != prev {
                    return broken("its link to the previous entry does not match".to_owned());
                }
                if entry_hash(&r.prev_hash, r.id, &r.entry) != r.hash {
                    return broken("its content does not match its hash (edited)".to_owned());
                }
                prev = r.hash;
                expected_id += 1;
                count += 1;
            }
        }
        let head = sqlx::query("SELECT last_id, last_hash FROM audit_head WHERE one = 1")
            .fetch_optional(&self.pool)
            .await?;
        let (last_id, last_hash): (i64, String) = match head {
            Some(r) => (r.try_get(0)?, r.try_get(1)?),
            None => (0, GENESIS.to_owned()),
        };
        if last_id != expected_id - 1 || last_hash != prev {
            return Ok(Err(AuditBreak {
                id: None,
                reason: format!(
                    "the head says entry {last_id}, the chain ends at entry {} (entries deleted at the end?)",
                    expected_id - 1
                ),
            }));
        }
        Ok(Ok(count))
    }
}
