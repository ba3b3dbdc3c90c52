//! `vigil serve`: the ingester process.

use std::sync::Arc;

use anyhow::Context;
use vigil_ingest::feed::RuleFeed;
use vigil_ingest::intake::{Intake, IntakeConfig};
use vigil_model::clock::{Clock, SystemClock};
use vigil_registry::Registry;
use vigil_store::SqliteStore;

use crate::config::Config;

/// Runs until Ctrl-C or SIGTERM, then shuts down in order.
pub fn run(config: Config, registry: Registry, registry_text: String) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config, registry, registry_text))
}

async fn serve(config: Config, registry: Registry, registry_text: String) -> anyhow::Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    let db = config.data_dir.join("clinical.db");
    let store = SqliteStore::open(&db).await?;
    // The store keeps every registry version it ran with.
    store
        .keep_registry(
            &registry_text,
            &config.registry.display().to_string(),
            SystemClock.now(),
        )
        .await?;
    // Assignments may have been added since the readings arrived: move those now
    // attributable out of quarantine before taking new ones.
    let moved =
        vigil_ingest::pipeline::reprocess_unassigned(&store, &registry, SystemClock.now()).await?;
    if moved.stored + moved.duplicates + moved.left > 0 {
        eprintln!(
            "vigil serve: re-processed readings quarantined as unassigned_device: {} stored, {} already stored, {} still unassigned",
            moved.stored, moved.duplicates, moved.left
        );
    }
    let broker = if config.broker.embedded {
        embedded_broker(&config)?
    } else {
        config.broker_address().map_err(anyhow::Error::msg)?
    };
    let broker_url = format!(
        "{}://{}:{}",
        if broker.tls { "mqtts" } else { "mqtt" },
        broker.host,
        broker.port
    );
    let tls = if broker.tls {
        Some(config.tls().map_err(|p| anyhow::anyhow!(p.join("; ")))?)
    } else {
        None
    };
    let delivery_config = vigil_ingest::deliver::DeliveryConfig {
        tls: tls.clone(),
        ..vigil_ingest::deliver::DeliveryConfig::new(
            broker.host.clone(),
            broker.port,
            format!("{}-delivery", config.broker.client_id),
        )
    };
    let gap_config = config.gaps(&broker.host, broker.port, tls.clone());
    let mut intake_config = IntakeConfig::new(broker.host, broker.port);
    intake_config.tls = tls;
    intake_config.client_id = config.broker.client_id.clone();
    intake_config.subscription = config.subscription();
    intake_config.max_batch = config.ingest.max_batch;
    intake_config.max_pending = config.ingest.max_pending;
    let committed = Arc::new(tokio::sync::Notify::new());
    intake_config.on_commit = vec![committed.clone()];
    // The committed readings go to the rule runner in memory.
    let feed = Arc::new(RuleFeed::new(vigil_ingest::feed::CAPACITY));
    intake_config.rule_feed = Some(feed.clone());
    let listener = tokio::net::TcpListener::bind(&config.http.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} for HTTP (in use?): set http.listen or VIGIL_HTTP_LISTEN",
                config.http.listen
            )
        })?;
    let http_addr = listener.local_addr().context("reading the HTTP address")?;
    eprintln!(
        "vigil serve: clinical store {}; broker {} as {:?}, subscribed to {}; registry {} ({} devices, {} patients)",
        db.display(),
        broker_url,
        config.broker.client_id,
        intake_config.subscription,
        config.registry.display(),
        registry.devices.len(),
        registry.patients.len(),
    );
    let intake = Intake::start(
        intake_config,
        store.clone(),
        Arc::new(registry),
        Arc::new(SystemClock),
    );
    let rule_set =
        crate::load_rules((!config.rules.as_os_str().is_empty()).then_some(&config.rules))
            .map_err(|p| anyhow::anyhow!(p.join("; ")))?;
    eprintln!("vigil serve: rule set {:?}", rule_set.name);
    let rule_set = Arc::new(rule_set);
    // The registry file: reloaded on SIGHUP, changed through the API, one at a time.
    let registry_file = Arc::new(vigil_api::registry_write::RegistryFile::new(
        config.registry.clone(),
        &registry_text,
        store.clone(),
        intake.registry_switch(),
        rule_set.clone(),
        Arc::new(SystemClock),
    ));
    drop(registry_text);
    let rules = vigil_ingest::rules::RuleRunner::start_fed(
        store.clone(),
        intake.current_registry(),
        rule_set,
        Arc::new(SystemClock),
        (None, Some(feed)),
    );
    let deliverer = vigil_ingest::deliver::Deliverer::start(
        delivery_config,
        store.clone(),
        intake.current_registry(),
        Arc::new(SystemClock),
        Some(rules.kept.clone()),
    );
    let webhook_config = config
        .webhooks()
        .map_err(|p| anyhow::anyhow!(p.join("; ")))?;
    warn_unsigned_webhooks(&intake.current_registry()(), &webhook_config);
    let webhooks = vigil_ingest::webhook::WebhookDeliverer::start(
        webhook_config,
        store.clone(),
        intake.current_registry(),
        Arc::new(SystemClock),
    )
    .map_err(anyhow::Error::msg)?;
    // Gaps in the gateways' batch_seq are requested back (wire guarantee 6).
    let gaps =
        vigil_ingest::gaps::GapDetector::start(gap_config, store.clone(), Arc::new(SystemClock));
    let sink = match config.sink().map_err(|p| anyhow::anyhow!(p.join("; ")))? {
        Some(sink_config) => {
            let url = sink_config.url.clone();
            // The health check does what the sink does: one real write.
            match vigil_tsdb::sink::check(&sink_config, &SystemClock).await {
                Ok(()) => eprintln!("vigil serve: telemetry sink {url}: check write accepted"),
                Err(e) => eprintln!(
                    "vigil serve: telemetry sink {url}: {e}; readings stay in the clinical store and are written once it accepts them"
                ),
            }
            Some(vigil_tsdb::Sink::start(
                sink_config,
                store.clone(),
                intake.institution_lookup(),
                Arc::new(SystemClock),
                Some(committed),
            )?)
        }
        None => None,
    };
    let app = vigil_api::app(vigil_api::AppState {
        store: store.clone(),
        stats: intake.stats.clone(),
        sink: sink.as_ref().map(|s| s.stats.clone()),
        rules: Some(rules.stats.clone()),
        delivery: Some(deliverer.stats.clone()),
        webhooks: Some(webhooks.stats.clone()),
        gaps: Some(gaps.stats.clone()),
        registry: Some(intake.current_registry()),
        clock: Arc::new(SystemClock),
        institutions: Some(intake.institution_lookup()),
        auth: config.http.auth,
        registry_file: Some(registry_file.clone()),
    });
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let http = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = http_stopped.await;
        })
        .await
    });
    eprintln!(
        "vigil serve: HTTP on http://{http_addr} (the dashboard at /; /healthz /readyz /metrics /api/v1/...)"
    );
    if !config.http.auth {
        eprintln!(
            "vigil serve: http.auth = false: the API and the dashboard answer anyone who reaches {http_addr}, unchecked (requests are still audited); for a trial on loopback only"
        );
    } else if store.user_count().await.unwrap_or(0) == 0 {
        eprintln!(
            "vigil serve: no users yet: add one with `vigil users add --config FILE --id ID --role doctor --doctor DOCTOR_ID` and give it a password with `vigil users password --config FILE --id ID`"
        );
    }
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let mut hangup = Hangup::new();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = hangup.recv() => reload_registry(&config, &registry_file).await,
        }
    }
    // Ordered: stop intake, commit and ack what was taken, then stop HTTP, then close.
    eprintln!("vigil serve: stopping: committing and acknowledging what was taken");
    intake.shutdown().await;
    rules.shutdown().await;
    gaps.shutdown().await;
    webhooks.shutdown().await;
    deliverer.shutdown().await;
    // What the sink has not had confirmed is written again after the next start.
    if let Some(sink) = sink {
        sink.shutdown().await;
    }
    let _ = stop_http.send(());
    let _ = http.await;
    store.close().await;
    eprintln!("vigil serve: stopped");
    Ok(())
}

/// Says which doctors' webhooks cannot be signed: their deliveries will fall back to
/// MQTT until a secret is configured.
pub fn warn_unsigned_webhooks(registry: &Registry, config: &vigil_ingest::webhook::WebhookConfig) {
    let unsigned: Vec<&str> = registry
        .doctors
        .values()
        .filter(|d| {
            d.channels.webhook.is_some()
                && d.channels.webhook_format == vigil_registry::WebhookFormat::Vigil
                && config
                    .secrets
                    .key_for(d.id.as_str(), d.channels.webhook_format)
                    .is_none()
        })
        .map(|d| d.id.as_str())
        .collect();
    if !unsigned.is_empty() {
        eprintln!(
            "vigil: no webhook secret (set VIGIL_WEBHOOK_SECRET or webhook.secret_file): the webhooks of {} will not be sent unsigned; their alerts fall back to the doctors' MQTT topics",
            unsigned.join(", ")
        );
    }
}

/// Reads the registry file again: a registry that loads replaces the current one, is
/// kept in the store, and the readings quarantined as `unassigned_device` are
/// re-processed against it. One that does not load is refused with its problems.
async fn reload_registry(config: &Config, file: &vigil_api::registry_write::RegistryFile) {
    let path = config.registry.display().to_string();
    match file.reload().await {
        Ok(applied) => eprintln!(
            "vigil serve: registry reloaded from {path} ({} devices, {} patients); re-processed readings quarantined as unassigned_device: {} stored, {} already stored, {} still unassigned",
            applied.registry.devices.len(),
            applied.registry.patients.len(),
            applied.reprocessed.stored,
            applied.reprocessed.duplicates,
            applied.reprocessed.left
        ),
        Err(vigil_api::ApiError::Invalid { message, problems }) => {
            eprintln!("vigil serve: registry reload: {path}: {message}:");
            for p in &problems {
                eprintln!("  - {p}");
            }
        }
        Err(e) => {
            eprintln!("vigil serve: registry reload: {path}: {e}; the current registry stays")
        }
    }
}

/// SIGHUP, where there is one.
struct Hangup {
    #[cfg(unix)]
    signal: Option<tokio::signal::unix::Signal>,
}

impl Hangup {
    fn new() -> Hangup {
        Hangup {
            #[cfg(unix)]
            signal: tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok(),
        }
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        if let Some(s) = self.signal.as_mut()
            && s.recv().await.is_some()
        {
            return;
        }
        std::future::pending::<()>().await;
    }
}

pub(crate) async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(feature = "embedded-broker")]
fn embedded_broker(config: &Config) -> anyhow::Result<crate::config::BrokerAddress> {
    let listen: std::net::SocketAddr = config
        .broker
        .embedded_listen
        .parse()
        .context("broker.embedded_listen")?;
    let addr = crate::broker::start(listen)?;
    eprintln!("vigil serve: embedded broker on mqtt://{addr} (sessions live in this process only)");
    Ok(crate::config::BrokerAddress {
        host: addr.ip().to_string(),
        port: addr.port(),
        tls: false,
    })
}

#[cfg(not(feature = "embedded-broker"))]
fn embedded_broker(_: &Config) -> anyhow::Result<crate::config::BrokerAddress> {
    anyhow::bail!("this vigil was built without the embedded-broker feature")
}
