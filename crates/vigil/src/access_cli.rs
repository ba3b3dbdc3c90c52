//! `vigil users add`, `vigil users password` and `vigil audit verify`: the API's users,
//! tokens and passwords, and the audit trail's integrity check, on the clinical store
//! of a configuration.

use std::process::ExitCode;

use vigil_registry::Registry;
use vigil_store::SqliteStore;
use vigil_store::access::{Role, User, sha256_hex};

use crate::config::Config;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

async fn open(config: &Config) -> anyhow::Result<SqliteStore> {
    std::fs::create_dir_all(&config.data_dir)?;
    Ok(SqliteStore::open(&config.data_dir.join("clinical.db")).await?)
}

/// Adds a user with a first API token, printed once on stdout (only its hash is kept).
pub fn add_user(
    config: &Config,
    registry: &Registry,
    (id, role, doctor, institution, token_name): (&str, &str, Option<&str>, Option<&str>, &str),
) -> anyhow::Result<ExitCode> {
    let mut problems = Vec::new();
    if let Err(e) = vigil_model::id::check_id(id) {
        problems.push(format!("--id {id:?} {e}"));
    }
    let role = Role::parse(role);
    match role {
        None => {
            problems.push("--role must be doctor, institution_admin or platform_admin".to_owned())
        }
        Some(Role::Doctor) => match doctor.map(vigil_model::DoctorId::parse) {
            Some(Ok(d)) if registry.doctors.contains_key(&d) => {}
            Some(_) => problems.push(format!(
                "--doctor {doctor:?} is not a doctor of the registry"
            )),
            None => {
                problems.push("a doctor's user needs --doctor, the doctor's registry id".to_owned())
            }
        },
        Some(Role::InstitutionAdmin) => match institution.map(vigil_model::InstitutionId::parse) {
            Some(Ok(i)) if registry.institutions.contains_key(&i) => {}
            Some(_) => problems.push(format!(
                "--institution {institution:?} is not an institution of the registry"
            )),
            None => problems.push("an institution admin needs --institution".to_owned()),
        },
        Some(Role::PlatformAdmin) => {}
    }
    let Some(role) = role.filter(|_| problems.is_empty()) else {
        for p in problems {
            eprintln!("vigil users add: {p}");
        }
        return Ok(ExitCode::from(2));
    };
    let user = User {
        id: id.to_owned(),
        role,
        doctor_id: doctor.map(str::to_owned),
        institution_id: institution.map(str::to_owned),
    };
    let token = vigil_store::access::random_token()?;
    runtime()?.block_on(async {
        let store = open(config).await?;
        let now = vigil_model::clock::Clock::now(&vigil_model::clock::SystemClock);
        store
            .add_user(&user, now)
            .await
            .map_err(|e| anyhow::anyhow!("user {id} not added ({e}); is the id taken?"))?;
        store
            .add_token(id, &sha256_hex(token.as_bytes()), token_name, now)
            .await?;
        store.close().await;
        anyhow::Ok(())
    })?;
    eprintln!(
        "vigil users add: {id} ({}) added; its API token (shown once, keep it safe):",
        role.as_str()
    );
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

/// The shortest password `vigil users password` takes.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// Sets a user's password from the first line of stdin.
pub fn set_password(config: &Config, id: &str) -> anyhow::Result<ExitCode> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.chars().count() < MIN_PASSWORD_CHARS {
        eprintln!(
            "vigil users password: the password (the first line of stdin) must have at least {MIN_PASSWORD_CHARS} characters"
        );
        return Ok(ExitCode::from(2));
    }
    let hash =
        vigil_store::access::hash_password(password, vigil_store::access::PBKDF2_ITERATIONS)?;
    let found = runtime()?.block_on(async {
        let store = open(config).await?;
        let found = store.user(id).await?.is_some();
        if found {
            let now = vigil_model::clock::Clock::now(&vigil_model::clock::SystemClock);
            store.set_password(id, &hash, now).await?;
        }
        store.close().await;
        anyhow::Ok(found)
    })?;
    if !found {
        eprintln!("vigil users password: no user {id:?}; add it first with vigil users add");
        return Ok(ExitCode::from(2));
    }
    eprintln!("vigil users password: the password of {id} is set");
    Ok(ExitCode::SUCCESS)
}

/// Checks the audit trail's hash chain: 0 and the count when intact; 1 and where it
/// breaks otherwise.
pub fn verify_audit(config: &Config) -> anyhow::Result<ExitCode> {
    let result = runtime()?.block_on(async {
        let store = open(config).await?;
        let r = store.verify_audit().await?;
        store.close().await;
        anyhow::Ok(r)
    })?;
    match result {
        Ok(n) => {
            println!("audit trail intact: {n} entries, each linked to the one before");
            Ok(ExitCode::SUCCESS)
        }
        Err(b) => {
            match b.id {
                Some(id) => println!("audit trail BROKEN at entry {id}: {}", b.reason),
                None => println!("audit trail BROKEN: {}", b.reason),
            }
            Ok(ExitCode::from(1))
        }
    }
}
