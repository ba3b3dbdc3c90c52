//! Who may use the API, and what they did: users with API tokens (stored as SHA-256
//! hashes, never in clear), passwords (PBKDF2-HMAC-SHA256, salted, [`hash_password`])
//! and web sessions (their tokens, too, kept as SHA-256 only), and the audit trail.
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
    "CREATE TABLE IF NOT EXISTS user_passwords (
        user_id         TEXT    PRIMARY KEY,
        hash            TEXT    NOT NULL, -- pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>
        updated_ms      INTEGER NOT NULL,
        failures        INTEGER NOT NULL DEFAULT 0, -- failed sign-ins in a row
        locked_until_ms INTEGER                     -- refused until then after too many
    ) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS sessions (
        hash       TEXT    PRIMARY KEY, -- hex SHA-256 of the session cookie's token
        user_id    TEXT    NOT NULL,
        created_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL,
        ended_ms   INTEGER             -- signed out
    ) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS break_glass (
        id          INTEGER PRIMARY KEY,
        user_id     TEXT    NOT NULL,
        patient     TEXT    NOT NULL,
        reason      TEXT    NOT NULL,
        at_ms       INTEGER NOT NULL,
        until_ms    INTEGER NOT NULL,
        reviewed_by TEXT,             -- the admin who reviewed it
        reviewed_ms INTEGER,
        review_note TEXT
    )",
    "CREATE INDEX IF NOT EXISTS break_glass_by_user ON break_glass (user_id, patient, until_ms)",
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

/// A new secret token (an API token, a session cookie): 32 random bytes, hex.
pub fn random_token() -> Result<String, Error> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Corrupt("the system's random source failed".to_owned()))?;
    Ok(hex(&bytes))
}

/// Hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
}

/// PBKDF2 iterations for new password hashes (OWASP's 2023 figure for
/// PBKDF2-HMAC-SHA256). The count is kept in each hash, so it can be raised later.
pub const PBKDF2_ITERATIONS: u32 = 600_000;

/// Failed sign-ins in a row after which a user is locked out for [`LOCKOUT`].
pub const MAX_FAILURES: i64 = 5;

/// How long a user stays locked out after [`MAX_FAILURES`].
pub const LOCKOUT: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// `pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>` of `password` with a fresh
/// 16-byte salt.
pub fn hash_password(password: &str, iterations: u32) -> Result<String, Error> {
    use ring::rand::SecureRandom;
    let mut salt = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| Error::Corrupt("the system's random source failed".to_owned()))?;
    let iterations =
        std::num::NonZeroU32::new(iterations.max(1)).unwrap_or(std::num::NonZeroU32::MIN);
    let mut out = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        iterations,
        &salt,
        password.as_bytes(),
        &mut out,
    );
    Ok(format!(
        "pbkdf2-sha256${iterations}${}${}",
        hex(&salt),
        hex(&out)
    ))
}

/// Whether `password` matches `stored` (a [`hash_password`] string), in constant time.
/// A malformed `stored` matches nothing.
pub fn verify_password(password: &str, stored: &str) -> bool {
    let mut parts = stored.split('$');
    let (Some("pbkdf2-sha256"), Some(n), Some(salt), Some(hash), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return false;
    };
    let (Some(n), Some(salt), Some(hash)) = (
        n.parse::<u32>().ok().and_then(std::num::NonZeroU32::new),
        unhex(salt),
        unhex(hash),
    ) else {
        return false;
    };
    ring::pbkdf2::verify(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        n,
        &salt,
        password.as_bytes(),
        &hash,
    )
    .is_ok()
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// An emergency access to a patient outside any care relationship: who, which
/// patient, why, until when, and its review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakGlass {
    pub id: i64,
    pub user_id: String,
    pub patient: String,
    pub reason: String,
    pub at: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// (admin, when, note) once reviewed.
    pub review: Option<(String, DateTime<Utc>, String)>,
}

/// What a sign-in attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignIn {
    /// The password matches: the user.
    Ok(User),
    /// No such user, no password set, or a wrong password (told apart only in the
    /// audit trail's outcome, never to the client).
    Refused(&'static str),
    /// Too many failures in a row: refused until then, whatever the password.
    Locked(DateTime<Utc>),
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

fn user_row(r: &sqlx::sqlite::SqliteRow) -> Result<User, Error> {
    let role: String = r.try_get(1)?;
    Ok(User {
        id: r.try_get(0)?,
        role: Role::parse(&role).ok_or_else(|| crate::sqlite::corrupt("user role", &role))?,
        doctor_id: r.try_get(2)?,
        institution_id: r.try_get(3)?,
    })
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
        row.as_ref().map(user_row).transpose()
    }

    /// How many users there are.
    pub async fn user_count(&self) -> Result<u64, Error> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(n.max(0) as u64)
    }

    /// A user by id.
    pub async fn user(&self, id: &str) -> Result<Option<User>, Error> {
        let row = sqlx::query("SELECT id, role, doctor_id, institution_id FROM users WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(user_row).transpose()
    }

    /// Sets (or replaces) a user's password hash ([`hash_password`]) and clears any
    /// lockout.
    pub async fn set_password(
        &self,
        user_id: &str,
        hash: &str,
        at: DateTime<Utc>,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO user_passwords (user_id, hash, updated_ms) VALUES (?, ?, ?)
             ON CONFLICT (user_id) DO UPDATE SET hash = excluded.hash,
                 updated_ms = excluded.updated_ms, failures = 0, locked_until_ms = NULL",
        )
        .bind(user_id)
        .bind(hash)
        .bind(at.timestamp_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Checks a sign-in: the password against the kept hash, unless the user is locked
    /// out. [`MAX_FAILURES`] failures in a row lock the user out for [`LOCKOUT`]; a
    /// success resets the count.
    pub async fn sign_in(
        &self,
        user_id: &str,
        password: &str,
        now: DateTime<Utc>,
    ) -> Result<SignIn, Error> {
        let Some(user) = self.user(user_id).await? else {
            return Ok(SignIn::Refused("no such user"));
        };
        let row = sqlx::query(
            "SELECT hash, failures, locked_until_ms FROM user_passwords WHERE user_id = ?",
        )
        .bind(user_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(SignIn::Refused("no password set"));
        };
        let (hash, failures, locked): (String, i64, Option<i64>) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        if let Some(until) = locked.map(crate::sqlite::millis).transpose()?
            && until > now
        {
            return Ok(SignIn::Locked(until));
        }
        if verify_password(password, &hash) {
            sqlx::query(
                "UPDATE user_passwords SET failures = 0, locked_until_ms = NULL WHERE user_id = ?",
            )
            .bind(user_id)
            .execute(&self.pool)
            .await?;
            return Ok(SignIn::Ok(user));
        }
        let failures = failures + 1;
        let locked_until = (failures >= MAX_FAILURES).then(|| (now + LOCKOUT).timestamp_millis());
        sqlx::query(
            "UPDATE user_passwords SET failures = ?, locked_until_ms = ? WHERE user_id = ?",
        )
        .bind(if locked_until.is_some() { 0 } else { failures })
        .bind(locked_until)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(SignIn::Refused("wrong password"))
    }

    /// Opens a break-glass access of `user_id` to `patient` until `until`; its id.
    pub async fn open_break_glass(
        &self,
        user_id: &str,
        patient: &str,
        reason: &str,
        at: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<i64, Error> {
        let id = sqlx::query(
            "INSERT INTO break_glass (user_id, patient, reason, at_ms, until_ms) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(user_id)
        .bind(patient)
        .bind(reason)
        .bind(at.timestamp_millis())
        .bind(until.timestamp_millis())
        .execute(&self.pool)
        .await?
        .last_insert_rowid();
        Ok(id)
    }

    /// Whether `user_id` holds a break-glass access to `patient` at `now`.
    pub async fn has_break_glass(
        &self,
        user_id: &str,
        patient: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM break_glass
             WHERE user_id = ? AND patient = ? AND at_ms <= ? AND until_ms > ?",
        )
        .bind(user_id)
        .bind(patient)
        .bind(now.timestamp_millis())
        .bind(now.timestamp_millis())
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Break-glass accesses, newest first; only those not yet reviewed when asked.
    pub async fn break_glass_list(
        &self,
        unreviewed_only: bool,
        limit: u32,
    ) -> Result<Vec<BreakGlass>, Error> {
        let rows = sqlx::query(
            "SELECT id, user_id, patient, reason, at_ms, until_ms, reviewed_by, reviewed_ms, review_note
             FROM break_glass WHERE (? = 0 OR reviewed_ms IS NULL) ORDER BY id DESC LIMIT ?",
        )
        .bind(i64::from(unreviewed_only))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let by: Option<String> = r.try_get(6)?;
                let at: Option<i64> = r.try_get(7)?;
                let note: Option<String> = r.try_get(8)?;
                Ok(BreakGlass {
                    id: r.try_get(0)?,
                    user_id: r.try_get(1)?,
                    patient: r.try_get(2)?,
                    reason: r.try_get(3)?,
                    at: crate::sqlite::millis(r.try_get(4)?)?,
                    until: crate::sqlite::millis(r.try_get(5)?)?,
                    review: match (by, at) {
                        (Some(by), Some(at)) => {
                            Some((by, crate::sqlite::millis(at)?, note.unwrap_or_default()))
                        }
                        _ => None,
                    },
                })
            })
            .collect()
    }

    /// Records the review of a break-glass access; `false` when there is no such
    /// access or it was already reviewed.
    pub async fn review_break_glass(
        &self,
        id: i64,
        by: &str,
        note: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, Error> {
        let done = sqlx::query(
            "UPDATE break_glass SET reviewed_by = ?, reviewed_ms = ?, review_note = ?
             WHERE id = ? AND reviewed_ms IS NULL",
        )
        .bind(by)
        .bind(at.timestamp_millis())
        .bind(note)
        .bind(id)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    /// Keeps a new web session by its token's hash.
    pub async fn add_session(
        &self,
        token_hash: &str,
        user_id: &str,
        at: DateTime<Utc>,
        expires: DateTime<Utc>,
    ) -> Result<(), Error> {
        sqlx::query(
            "INSERT INTO sessions (hash, user_id, created_ms, expires_ms) VALUES (?, ?, ?, ?)",
        )
        .bind(token_hash)
        .bind(user_id)
        .bind(at.timestamp_millis())
        .bind(expires.timestamp_millis())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The user of a session still open at `now` (not expired, not signed out).
    pub async fn user_by_session(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<User>, Error> {
        let row = sqlx::query(
            "SELECT u.id, u.role, u.doctor_id, u.institution_id FROM sessions s
             JOIN users u ON u.id = s.user_id
             WHERE s.hash = ? AND s.ended_ms IS NULL AND s.expires_ms > ?",
        )
        .bind(token_hash)
        .bind(now.timestamp_millis())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(user_row).transpose()
    }

    /// Ends a session (signing out); ending one already ended changes nothing.
    pub async fn end_session(&self, token_hash: &str, at: DateTime<Utc>) -> Result<(), Error> {
        sqlx::query("UPDATE sessions SET ended_ms = ? WHERE hash = ? AND ended_ms IS NULL")
            .bind(at.timestamp_millis())
            .bind(token_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_hash_only() {
        let h = hash_password("correct horse", 1000).unwrap_or_default();
        assert!(h.starts_with("pbkdf2-sha256$1000$"), "{h}");
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("correct horse ", &h));
        // Salted: the same password hashes differently each time.
        assert_ne!(h, hash_password("correct horse", 1000).unwrap_or_default());
        // Malformed hashes match nothing, and do not panic.
        for bad in [
            "",
            "pbkdf2-sha256",
            "pbkdf2-sha256$0$00$00",
            "pbkdf2-sha256$1000$zz$00",
            "pbkdf2-sha256$1000$0$00",
            "md5$1000$00$00",
            "pbkdf2-sha256$1000$00$00$00",
        ] {
            assert!(!verify_password("correct horse", bad), "{bad}");
        }
    }
}
