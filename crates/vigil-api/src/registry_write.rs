//! Writing the registry through the API. The registry file stays the source of truth
//! and the import/export format: every write edits the text in force (its comments and
//! layout kept), checks the result as a whole exactly as loading the file does (every
//! problem reported at once, 422), writes the file atomically, keeps the version in
//! the clinical store (source `api (user)`), switches the ingester to it, and
//! re-processes readings quarantined as `unassigned_device`. Writes are serialised; a
//! file changed on disk since it was loaded is not overwritten (409: reload it first,
//! SIGHUP, which goes through the same lock).
//!
//! | route | who | what |
//! |---|---|---|
//! | `GET /api/v1/registry` | platform admins | the registry in force (TOML), an export |
//! | `PUT /api/v1/registry` | platform admins | replace it (TOML body), an import |
//! | `POST /api/v1/{institutions,doctors,patients,gateways,devices,assignments,on-call}` | platform admins | add one (JSON of the file's keys) |
//! | `PUT`, `DELETE /api/v1/{institutions,doctors,patients,gateways,devices}/{id}` | platform admins | replace, remove one |
//! | `POST /api/v1/assignments/end` | platform admins | end a device's assignment in force at a moment (`to` set) |
//! | `DELETE /api/v1/on-call?institution=&doctor=&from=` | platform admins | remove an on-call window |
//! | `PUT /api/v1/patients/{id}/care-team` | platform admins | set the responsible doctor and the specialist |
//! | `PUT`, `DELETE /api/v1/patients/{id}/overrides/{rule}` | the patient's care team, platform admins | set (with who, why, until when) or remove a rule override; an override the rules forbid (clinical rules §0.4) is refused with the reason |
//! | `POST /api/v1/patients/{id}/referrals` · `DELETE /api/v1/patients/{id}/referrals/{doctor}` | the patient's care team, platform admins | refer the patient to a doctor from now (with who, why, until when), or close the open referrals to that doctor now (kept, with `until`) |

use std::path::PathBuf;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::DateTime;
use serde::Deserialize;
use serde_json::{Value, json};
use toml_edit::DocumentMut;
use vigil_registry::Registry;
use vigil_rules::ruleset::RuleSet;
use vigil_store::SqliteStore;
use vigil_store::access::{Role, User, sha256_hex};

use crate::{ApiError, AppState};

/// The registry file and what follows from changing it.
pub struct RegistryFile {
    path: PathBuf,
    store: SqliteStore,
    switch: vigil_ingest::intake::RegistrySwitch,
    rules: Arc<RuleSet>,
    clock: Arc<dyn vigil_model::clock::Clock>,
    /// The SHA-256 of the text in force (not the text: a registry of 100 000
    /// patients is 77 MB; the file holds it, and the store keeps every version); the
    /// lock serialises every change.
    in_force: tokio::sync::Mutex<String>,
}

impl std::fmt::Debug for RegistryFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What a change came to.
#[derive(Debug)]
pub struct Applied {
    pub registry: Arc<Registry>,
    /// What became of the readings quarantined as `unassigned_device`.
    pub reprocessed: vigil_ingest::pipeline::Reprocessed,
}

impl RegistryFile {
    /// `text` is what was loaded from `path` and is in force.
    pub fn new(
        path: PathBuf,
        text: &str,
        store: SqliteStore,
        switch: vigil_ingest::intake::RegistrySwitch,
        rules: Arc<RuleSet>,
        clock: Arc<dyn vigil_model::clock::Clock>,
    ) -> RegistryFile {
        RegistryFile {
            path,
            store,
            switch,
            rules,
            clock,
            in_force: tokio::sync::Mutex::new(sha256_hex(text.as_bytes())),
        }
    }

    /// The text in force: the file's, unless it was changed on disk since (then the
    /// version the store kept when it came into force).
    pub async fn text(&self) -> Result<String, ApiError> {
        let in_force = self.in_force.lock().await;
        if let Ok(text) = self.current_text(&in_force).await {
            return Ok(text);
        }
        self.store
            .latest_registry()
            .await?
            .ok_or(ApiError::Unavailable)
    }

    /// The file's text if it is the text in force, else a conflict.
    async fn current_text(&self, in_force: &str) -> Result<String, ApiError> {
        let on_disk = tokio::fs::read_to_string(&self.path)
            .await
            .unwrap_or_default();
        if sha256_hex(on_disk.as_bytes()) != in_force {
            return Err(ApiError::Conflict(format!(
                "the registry file {} was changed on disk since it was loaded: load it first (SIGHUP to vigil serve), then retry",
                self.path.display()
            )));
        }
        Ok(on_disk)
    }

    /// Reloads the file from disk (SIGHUP): the same checks and steps as a write.
    pub async fn reload(&self) -> Result<Applied, ApiError> {
        let mut in_force = self.in_force.lock().await;
        let text = tokio::fs::read_to_string(&self.path)
            .await
            .map_err(|e| ApiError::Refused(format!("cannot read {}: {e}", self.path.display())))?;
        let registry = parse(&text, "has", "the current registry stays")?;
        let applied = self
            .switch_to(registry, &text, &self.path.display().to_string())
            .await?;
        *in_force = sha256_hex(text.as_bytes());
        Ok(applied)
    }

    /// Applies `edit` to the text in force, then checks, writes, keeps and switches.
    pub async fn edit(
        &self,
        by: &str,
        edit: impl FnOnce(&mut DocumentMut) -> Result<(), ApiError>,
    ) -> Result<Applied, ApiError> {
        let mut in_force = self.in_force.lock().await;
        let current = self.current_text(&in_force).await?;
        let mut doc: DocumentMut = current.parse().map_err(|e| {
            ApiError::Refused(format!("the registry in force does not parse as TOML ({e}); replace it with PUT /api/v1/registry"))
        })?;
        edit(&mut doc)?;
        drop(current);
        let text = doc.to_string();
        self.write_and_switch(&mut in_force, text, by).await
    }

    /// Replaces the whole text (an import).
    pub async fn replace(&self, by: &str, text: String) -> Result<Applied, ApiError> {
        let mut in_force = self.in_force.lock().await;
        self.current_text(&in_force).await?;
        self.write_and_switch(&mut in_force, text, by).await
    }

    /// Checks, writes, keeps and switches; the caller has checked that the file is
    /// the text in force.
    async fn write_and_switch(
        &self,
        in_force: &mut String,
        text: String,
        by: &str,
    ) -> Result<Applied, ApiError> {
        // Checked before anything is written.
        let registry = parse(&text, "would have", "nothing was changed")?;
        let path = self.path.clone();
        let text = Arc::new(text);
        let bytes = text.clone();
        tokio::task::spawn_blocking(move || write_atomically(&path, bytes.as_bytes()))
            .await
            .map_err(|_| ApiError::Unavailable)?
            .map_err(|e| ApiError::Refused(format!("cannot write the registry file: {e}")))?;
        let applied = self
            .switch_to(registry, &text, &format!("api ({by})"))
            .await?;
        *in_force = sha256_hex(text.as_bytes());
        Ok(applied)
    }

    /// Keeps the version, switches the ingester, re-processes the unassigned.
    async fn switch_to(
        &self,
        registry: Registry,
        text: &str,
        source: &str,
    ) -> Result<Applied, ApiError> {
        let registry = Arc::new(registry);
        let now = self.clock.now();
        self.store.keep_registry(text, source, now).await?;
        self.switch.set(registry.clone()).await;
        let moved =
            vigil_ingest::pipeline::reprocess_unassigned(&self.store, &registry, now).await?;
        Ok(Applied {
            registry,
            reprocessed: moved,
        })
    }

    /// The rule set overrides are checked against.
    pub fn rules(&self) -> &Arc<RuleSet> {
        &self.rules
    }
}

/// The registry of `text`, or every problem, said as "the registry {has} N
/// problem(s); {then}".
fn parse(text: &str, has: &str, then: &str) -> Result<Registry, ApiError> {
    Registry::parse(text).map_err(|e| ApiError::Invalid {
        message: format!("the registry {has} {} problem(s); {then}", e.problems.len()),
        problems: e.problems,
    })
}

/// Writes `bytes` to `path` through a temporary file in the same directory, synced,
/// renamed over it, and the directory synced: a crash leaves the old file or the new.
fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name()
            .map_or("registry".into(), |n| n.to_string_lossy())
    ));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

fn file(s: &AppState) -> Result<Arc<RegistryFile>, ApiError> {
    s.registry_file.clone().ok_or_else(|| {
        ApiError::BadRequest(
            "this server has no registry file to change (vigil demo builds its own)".to_owned(),
        )
    })
}

fn who(user: crate::SignedIn) -> Option<User> {
    crate::signed_in(user)
}

fn actor(user: &Option<User>) -> String {
    user.as_ref()
        .map_or_else(|| "-".to_owned(), |u| u.id.clone())
}

fn changed(applied: &Applied) -> Json<Value> {
    Json(
        json!({"changed": true, "patients": applied.registry.patients.len(),
                "devices": applied.registry.devices.len(),
                "unassigned_now_stored": applied.reprocessed.stored}),
    )
}

/// `GET /api/v1/registry`: the TOML in force.
pub(crate) async fn export(State(s): State<AppState>) -> Result<Response, ApiError> {
    let text = file(&s)?.text().await?;
    Ok((
        [(header::CONTENT_TYPE, "application/toml; charset=utf-8")],
        text,
    )
        .into_response())
}

/// `PUT /api/v1/registry`: replaces it with the TOML body.
pub(crate) async fn import(
    State(s): State<AppState>,
    user: Option<axum::Extension<Option<User>>>,
    body: String,
) -> Result<Json<Value>, ApiError> {
    let applied = file(&s)?.replace(&actor(&who(user)), body).await?;
    Ok(changed(&applied))
}

/// A collection of the API and its array of tables in the file.
fn section(collection: &str) -> Result<&'static str, ApiError> {
    Ok(match collection {
        "institutions" => "institution",
        "doctors" => "doctor",
        "patients" => "patient",
        "gateways" => "gateway",
        "devices" => "device",
        "assignments" => "assignment",
        "on-call" => "on_call",
        other => {
            return Err(ApiError::NotFound(format!(
                "no registry collection {other:?}"
            )));
        }
    })
}

/// A JSON value as a TOML value (objects as inline tables).
fn toml_value(v: &Value) -> Result<toml_edit::Value, ApiError> {
    Ok(match v {
        Value::String(s) => s.as_str().into(),
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => n.as_f64().unwrap_or_default().into(),
        },
        Value::Array(items) => {
            let mut a = toml_edit::Array::new();
            for i in items {
                a.push(toml_value(i)?);
            }
            a.into()
        }
        Value::Object(map) => {
            let mut t = toml_edit::InlineTable::new();
            for (k, v) in map {
                if !v.is_null() {
                    t.insert(k, toml_value(v)?);
                }
            }
            t.into()
        }
        Value::Null => {
            return Err(ApiError::BadRequest(
                "null is not a registry value: leave the key out".to_owned(),
            ));
        }
    })
}

/// A JSON object as a table of the file.
fn toml_table(body: &Value) -> Result<toml_edit::Table, ApiError> {
    let map = body.as_object().ok_or_else(|| {
        ApiError::BadRequest(
            "the body must be a JSON object of the registry file's keys".to_owned(),
        )
    })?;
    let mut t = toml_edit::Table::new();
    for (k, v) in map {
        if !v.is_null() {
            t.insert(k, toml_edit::Item::Value(toml_value(v)?));
        }
    }
    Ok(t)
}

/// The entries of `section` (created empty when absent).
fn entries<'d>(
    doc: &'d mut DocumentMut,
    section: &str,
) -> Result<&'d mut toml_edit::ArrayOfTables, ApiError> {
    doc.entry(section)
        .or_insert(toml_edit::Item::ArrayOfTables(
            toml_edit::ArrayOfTables::new(),
        ))
        .as_array_of_tables_mut()
        .ok_or_else(|| {
            ApiError::Refused(format!(
                "[[{section}]] in the registry file is not an array of tables"
            ))
        })
}

/// The index of the entry with `id` in `section`.
fn position_of(doc: &DocumentMut, section: &str, id: &str) -> Result<Option<usize>, ApiError> {
    match doc.get(section) {
        None => Ok(None),
        Some(item) => {
            let a = item.as_array_of_tables().ok_or_else(|| {
                ApiError::Refused(format!(
                    "[[{section}]] in the registry file is not an array of tables"
                ))
            })?;
            Ok(a.iter()
                .position(|t| t.get("id").and_then(|v| v.as_str()) == Some(id)))
        }
    }
}

/// The collection a path names: `/api/v1/{collection}[/...]`.
fn collection_of(uri: &axum::http::Uri) -> String {
    uri.path()
        .trim_start_matches("/api/v1/")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// `POST /api/v1/{collection}`: adds an entry.
pub(crate) async fn create(
    State(s): State<AppState>,
    uri: axum::http::Uri,
    user: Option<axum::Extension<Option<User>>>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let collection = collection_of(&uri);
    let section = section(&collection)?;
    let table = toml_table(&body)?;
    let id = body.get("id").and_then(Value::as_str).map(str::to_owned);
    let applied = file(&s)?
        .edit(&actor(&who(user)), |doc| {
            if let Some(id) = &id
                && position_of(doc, section, id)?.is_some()
            {
                return Err(ApiError::Conflict(format!(
                    "{section} {id} exists: change it with PUT /api/v1/{collection}/{id}"
                )));
            }
            entries(doc, section)?.push(table);
            Ok(())
        })
        .await?;
    Ok((StatusCode::CREATED, changed(&applied)))
}

/// `PUT /api/v1/{collection}/{id}`: replaces an entry.
pub(crate) async fn replace(
    State(s): State<AppState>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
    user: Option<axum::Extension<Option<User>>>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, ApiError> {
    let section = section(&collection_of(&uri))?;
    if body
        .get("id")
        .and_then(Value::as_str)
        .is_some_and(|b| b != id)
    {
        return Err(ApiError::BadRequest(
            "the body's id differs from the path's: an id cannot change".to_owned(),
        ));
    }
    let mut table = toml_table(&body)?;
    table.insert("id", toml_edit::value(id.as_str()));
    let applied = file(&s)?
        .edit(&actor(&who(user)), |doc| {
            let at = position_of(doc, section, &id)?.ok_or_else(|| {
                ApiError::NotFound(format!("no {section} {id:?} in the registry"))
            })?;
            if let Some(t) = entries(doc, section)?.get_mut(at) {
                *t = table;
            }
            Ok(())
        })
        .await?;
    Ok(changed(&applied))
}

/// `DELETE /api/v1/{collection}/{id}`: removes an entry (refused while others refer
/// to it: the check reports each reference).
pub(crate) async fn remove(
    State(s): State<AppState>,
    Path(id): Path<String>,
    uri: axum::http::Uri,
    user: Option<axum::Extension<Option<User>>>,
) -> Result<Json<Value>, ApiError> {
    let section = section(&collection_of(&uri))?;
    let applied = file(&s)?
        .edit(&actor(&who(user)), |doc| {
            let at = position_of(doc, section, &id)?.ok_or_else(|| {
                ApiError::NotFound(format!("no {section} {id:?} in the registry"))
            })?;
            entries(doc, section)?.remove(at);
            Ok(())
        })
        .await?;
    Ok(changed(&applied))
}

#[derive(Debug, Deserialize)]
pub(crate) struct OverrideBody {
    below: Option<f64>,
    above: Option<f64>,
    systolic: Option<f64>,
    diastolic: Option<f64>,
    kg: Option<f64>,
    snooze_until: Option<String>,
    /// Why (required).
    reason: String,
    /// Until when (RFC 3339; open-ended when absent).
    until: Option<String>,
    /// The doctor setting it: the signed-in doctor (may be left out), or named by a
    /// platform admin (or when sign-in is off).
    by: Option<String>,
}

/// The doctor an override is set by.
fn override_by(user: &Option<User>, named: Option<&str>) -> Result<String, ApiError> {
    match (user, named) {
        (Some(u), named) if u.role == Role::Doctor => {
            let own = u.doctor_id.clone().unwrap_or_default();
            match named {
                Some(n) if n != own => Err(ApiError::Forbidden(format!(
                    "'by' is {n}: a doctor sets overrides as themselves"
                ))),
                _ => Ok(own),
            }
        }
        (_, Some(n)) => Ok(n.to_owned()),
        (_, None) => Err(ApiError::BadRequest(
            "name the doctor who sets it: 'by'".to_owned(),
        )),
    }
}

fn patient_entry<'d>(
    doc: &'d mut DocumentMut,
    id: &str,
) -> Result<&'d mut toml_edit::Table, ApiError> {
    let at = position_of(doc, "patient", id)?
        .ok_or_else(|| ApiError::NotFound(format!("no patient {id:?} in the registry")))?;
    entries(doc, "patient")?
        .get_mut(at)
        .ok_or_else(|| ApiError::NotFound(format!("no patient {id:?} in the registry")))
}

/// `PUT /api/v1/patients/{id}/overrides/{rule}`.
pub(crate) async fn set_override(
    State(s): State<AppState>,
    Path((id, rule)): Path<(String, String)>,
    user: Option<axum::Extension<Option<User>>>,
    Json(body): Json<OverrideBody>,
) -> Result<Json<Value>, ApiError> {
    let user = who(user);
    let by = override_by(&user, body.by.as_deref())?;
    if body.reason.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "'reason' is empty: say why this patient needs it".to_owned(),
        ));
    }
    let pid = vigil_model::PatientId::parse(&id)
        .map_err(|e| ApiError::BadRequest(format!("patient id {e}")))?;
    let mut o = toml_edit::InlineTable::new();
    for (k, v) in [
        ("below", body.below),
        ("above", body.above),
        ("systolic", body.systolic),
        ("diastolic", body.diastolic),
        ("kg", body.kg),
    ] {
        if let Some(v) = v {
            o.insert(k, v.into());
        }
    }
    if let Some(t) = &body.snooze_until {
        o.insert("snooze_until", t.as_str().into());
    }
    o.insert("by", by.as_str().into());
    o.insert("reason", body.reason.trim().into());
    if let Some(t) = &body.until {
        o.insert("until", t.as_str().into());
    }
    let f = file(&s)?;
    let rules = f.rules().clone();
    let now = s.clock.now();
    // The override is checked against the rules before anything is written.
    let applied = f
        .edit(&actor(&user), |doc| {
            put_override(doc, &id, &rule, o)?;
            if let Ok(r) = Registry::parse(&doc.to_string()) {
                let (_, refused) = vigil_ingest::rules::profile_for(&r, &rules, &pid, now);
                if let Some(refusal) = refused.iter().find(|x| x.rule == rule) {
                    return Err(ApiError::Refused(format!(
                        "override of {rule} refused: {}",
                        refusal.reason
                    )));
                }
            }
            Ok(())
        })
        .await?;
    let set = applied
        .registry
        .patients
        .get(&pid)
        .and_then(|p| p.overrides.get(&rule))
        .map(|o| {
            json!({"by": o.by, "reason": o.reason, "until": o.until.map(|t| t.to_rfc3339()),
                        "below": o.below, "above": o.above, "systolic": o.systolic,
                        "diastolic": o.diastolic, "kg": o.kg,
                        "snooze_until": o.snooze_until.map(|t| t.to_rfc3339())})
        });
    Ok(Json(
        json!({"patient_id": pid, "rule": rule, "override": set}),
    ))
}

fn put_override(
    doc: &mut DocumentMut,
    id: &str,
    rule: &str,
    o: toml_edit::InlineTable,
) -> Result<(), ApiError> {
    let patient = patient_entry(doc, id)?;
    if !patient.contains_key("overrides") {
        patient.insert("overrides", toml_edit::value(toml_edit::InlineTable::new()));
    }
    let overrides = patient
        .get_mut("overrides")
        .and_then(|i| i.as_inline_table_mut())
        .ok_or_else(|| {
            ApiError::Refused(format!(
                "patient {id}: overrides in the file is not an inline table"
            ))
        })?;
    overrides.insert(rule, o.into());
    Ok(())
}

/// `DELETE /api/v1/patients/{id}/overrides/{rule}`.
pub(crate) async fn remove_override(
    State(s): State<AppState>,
    Path((id, rule)): Path<(String, String)>,
    user: Option<axum::Extension<Option<User>>>,
) -> Result<Json<Value>, ApiError> {
    let user = who(user);
    file(&s)?
        .edit(&actor(&user), |doc| {
            let patient = patient_entry(doc, &id)?;
            let removed = patient
                .get_mut("overrides")
                .and_then(|i| i.as_inline_table_mut())
                .and_then(|o| o.remove(&rule));
            if removed.is_none() {
                return Err(ApiError::NotFound(format!(
                    "patient {id} has no override of {rule}"
                )));
            }
            Ok(())
        })
        .await?;
    Ok(Json(
        json!({"patient_id": id, "rule": rule, "removed": true}),
    ))
}

#[derive(Debug, Deserialize)]
pub(crate) struct ReferralBody {
    /// The doctor the patient is referred to.
    to: String,
    reason: String,
    until: Option<String>,
    by: Option<String>,
}

/// `POST /api/v1/patients/{id}/referrals`: refers the patient from now.
pub(crate) async fn refer(
    State(s): State<AppState>,
    Path(id): Path<String>,
    user: Option<axum::Extension<Option<User>>>,
    Json(body): Json<ReferralBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = who(user);
    let by = override_by(&user, body.by.as_deref())?;
    if body.reason.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "'reason' is empty: say why the patient is referred".to_owned(),
        ));
    }
    let now = s.clock.now();
    let mut t = toml_edit::Table::new();
    t.insert("patient", toml_edit::value(id.as_str()));
    t.insert("to", toml_edit::value(body.to.as_str()));
    t.insert("from", toml_edit::value(now.to_rfc3339()));
    if let Some(u) = &body.until {
        t.insert("until", toml_edit::value(u.as_str()));
    }
    t.insert("by", toml_edit::value(by.as_str()));
    t.insert("reason", toml_edit::value(body.reason.trim()));
    file(&s)?
        .edit(&actor(&user), |doc| {
            position_of(doc, "patient", &id)?
                .ok_or_else(|| ApiError::NotFound(format!("no patient {id:?} in the registry")))?;
            entries(doc, "referral")?.push(t);
            Ok(())
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"patient_id": id, "to": body.to, "from": now.to_rfc3339(), "by": by})),
    ))
}

/// `DELETE /api/v1/patients/{id}/referrals/{doctor}`: closes the open referrals of the
/// patient to the doctor now (they stay in the file, with `until`).
pub(crate) async fn close_referral(
    State(s): State<AppState>,
    Path((id, doctor)): Path<(String, String)>,
    user: Option<axum::Extension<Option<User>>>,
) -> Result<Json<Value>, ApiError> {
    let user = who(user);
    let now = s.clock.now();
    let open_now = |t: &toml_edit::Table| {
        let at = |k: &str| {
            t.get(k)
                .and_then(|v| v.as_str())
                .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
        };
        t.get("patient").and_then(|v| v.as_str()) == Some(id.as_str())
            && t.get("to").and_then(|v| v.as_str()) == Some(doctor.as_str())
            && at("from").is_some_and(|f| f <= now)
            && at("until").is_none_or(|u| now < u)
    };
    let mut closed = 0;
    file(&s)?
        .edit(&actor(&user), |doc| {
            let referrals = entries(doc, "referral")?;
            // One closed the instant it opened never was open: removed.
            let opened_now = |t: &toml_edit::Table| {
                t.get("from")
                    .and_then(|v| v.as_str())
                    .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
                    .is_some_and(|f| f >= now)
            };
            let mut i = 0;
            while i < referrals.len() {
                match referrals.get_mut(i) {
                    Some(t) if open_now(t) && opened_now(t) => {
                        referrals.remove(i);
                        closed += 1;
                        continue;
                    }
                    Some(t) if open_now(t) => {
                        t.insert("until", toml_edit::value(now.to_rfc3339()));
                        closed += 1;
                    }
                    _ => {}
                }
                i += 1;
            }
            if closed == 0 {
                return Err(ApiError::NotFound(format!(
                    "no open referral of {id} to {doctor}"
                )));
            }
            Ok(())
        })
        .await?;
    Ok(Json(
        json!({"patient_id": id, "to": doctor, "closed": closed}),
    ))
}

/// A time key of a registry entry (`from`, `to`), written as a string or as a TOML
/// date-time, read as loading the registry reads it: `Ok(None)` when absent, `Err`
/// when unreadable.
fn time_of(
    t: &toml_edit::Table,
    key: &str,
) -> Result<Option<DateTime<chrono::FixedOffset>>, String> {
    let Some(v) = t.get(key) else { return Ok(None) };
    let text = v
        .as_str()
        .map(str::to_owned)
        .or_else(|| v.as_datetime().map(ToString::to_string))
        .ok_or_else(|| format!("'{key}' is not a time"))?;
    text.parse::<DateTime<chrono::FixedOffset>>()
        .map(Some)
        .map_err(|e| format!("'{key}' {text:?} is not a time ({e})"))
}

#[derive(Debug, Deserialize)]
pub(crate) struct EndAssignmentBody {
    device: String,
    /// When it ends (RFC 3339; now when absent).
    at: Option<String>,
}

/// `POST /api/v1/assignments/end` with `{"device", "at"}`: ends the device's assignment
/// in force at `at` (now by default) there, its `to` set (a device handed back, or
/// moving to another patient: add the new assignment from the same instant). Readings
/// measured from then on and received after are not attributed to that patient (ones
/// already stored stay as they were).
pub(crate) async fn end_assignment(
    State(s): State<AppState>,
    user: Option<axum::Extension<Option<User>>>,
    Json(body): Json<EndAssignmentBody>,
) -> Result<Json<Value>, ApiError> {
    let at = crate::instant_with_offset("at", body.at.as_deref())?
        .unwrap_or_else(|| s.clock.now().fixed_offset());
    let device = body.device;
    let mut ended = None;
    let applied = file(&s)?
        .edit(&actor(&who(user)), |doc| {
            let assignments = entries(doc, "assignment")?;
            let mut entry = None;
            for t in assignments.iter_mut() {
                if t.get("device").and_then(|v| v.as_str()) != Some(device.as_str()) {
                    continue;
                }
                let unreadable = |e: String| {
                    ApiError::Refused(format!(
                        "an assignment of {device} cannot be read ({e}): correct it by export, edit and import"
                    ))
                };
                let from = time_of(t, "from").map_err(unreadable)?;
                let to = time_of(t, "to").map_err(unreadable)?;
                if from.is_some_and(|f| f <= at) && to.is_none_or(|to| at < to) {
                    entry = Some(t);
                    break;
                }
            }
            let Some(t) = entry else {
                return Err(ApiError::NotFound(format!(
                    "device {device} has no assignment in force at {}",
                    at.to_rfc3339()
                )));
            };
            ended = t.get("patient").and_then(|v| v.as_str()).map(str::to_owned);
            t.insert("to", toml_edit::value(at.to_rfc3339()));
            Ok(())
        })
        .await?;
    let mut out = changed(&applied).0;
    out["device"] = json!(device);
    out["patient"] = json!(ended);
    out["to"] = json!(at.to_rfc3339());
    Ok(Json(out))
}

#[derive(Debug, Deserialize)]
pub(crate) struct OnCallKey {
    institution: String,
    doctor: String,
    from: String,
}

/// `DELETE /api/v1/on-call?institution=&doctor=&from=`: removes that on-call window
/// (a shift swapped or cancelled: add the replacement with `POST /api/v1/on-call`).
pub(crate) async fn remove_on_call(
    State(s): State<AppState>,
    user: Option<axum::Extension<Option<User>>>,
    axum::extract::Query(key): axum::extract::Query<OnCallKey>,
) -> Result<Json<Value>, ApiError> {
    let from = crate::instant_with_offset("from", Some(&key.from))?;
    let applied = file(&s)?
        .edit(&actor(&who(user)), |doc| {
            let windows = entries(doc, "on_call")?;
            let at = windows.iter().position(|t| {
                t.get("institution").and_then(|v| v.as_str()) == Some(key.institution.as_str())
                    && t.get("doctor").and_then(|v| v.as_str()) == Some(key.doctor.as_str())
                    && time_of(t, "from") == Ok(from)
            });
            match at {
                Some(i) => {
                    windows.remove(i);
                    Ok(())
                }
                None => Err(ApiError::NotFound(format!(
                    "no on-call window of {} at {} from {}",
                    key.doctor, key.institution, key.from
                ))),
            }
        })
        .await?;
    Ok(changed(&applied))
}

#[derive(Debug, Deserialize)]
pub(crate) struct CareTeamBody {
    responsible: String,
    specialist: Option<String>,
}

/// `PUT /api/v1/patients/{id}/care-team` with `{"responsible", "specialist"}`: the
/// patient's care team (level 1 of the escalation, and level 2 when the hub has nobody
/// on call), checked with the whole registry (the doctors must exist).
pub(crate) async fn set_care_team(
    State(s): State<AppState>,
    Path(id): Path<String>,
    user: Option<axum::Extension<Option<User>>>,
    Json(body): Json<CareTeamBody>,
) -> Result<Json<Value>, ApiError> {
    let mut team = toml_edit::InlineTable::new();
    team.insert("responsible", body.responsible.as_str().into());
    if let Some(sp) = &body.specialist {
        team.insert("specialist", sp.as_str().into());
    }
    let applied = file(&s)?
        .edit(&actor(&who(user)), |doc| {
            patient_entry(doc, &id)?.insert(
                "care_team",
                toml_edit::Item::Value(toml_edit::Value::InlineTable(team)),
            );
            Ok(())
        })
        .await?;
    let mut out = changed(&applied).0;
    out["patient_id"] = json!(id);
    out["care_team"] = json!({"responsible": body.responsible, "specialist": body.specialist});
    Ok(Json(out))
}
