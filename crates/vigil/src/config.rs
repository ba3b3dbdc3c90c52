//! `vigil serve` configuration: a TOML file, then environment overrides, then checks
//! that report every problem at once.

use std::path::PathBuf;

use serde::Deserialize;

/// The documented default configuration (`vigil print-default-config`).
pub const DEFAULT_CONFIG: &str = r#"# Vigil ingester configuration (vigil serve --config FILE).
# Every key is optional; the values shown are the defaults.
# Environment variables override the file: VIGIL_DATA_DIR, VIGIL_REGISTRY,
# VIGIL_BROKER_URL, VIGIL_BROKER_CA_FILE, VIGIL_BROKER_CLIENT_CERT, VIGIL_BROKER_CLIENT_KEY,
# VIGIL_BROKER_EMBEDDED, VIGIL_BROKER_EMBEDDED_LISTEN, VIGIL_BROKER_CLIENT_ID,
# VIGIL_BROKER_SHARED_GROUP, VIGIL_HTTP_LISTEN, VIGIL_HTTP_AUTH, VIGIL_INGEST_MAX_BATCH, VIGIL_TSDB_URL,
# VIGIL_TSDB_TOKEN (the token itself: never in the file), VIGIL_TSDB_TOKEN_FILE,
# VIGIL_WEBHOOK_SECRET (the secret itself: never in the file), VIGIL_WEBHOOK_SECRET_FILE.

# Where the clinical store (clinical.db, SQLite) lives. Back it up: it is the record.
data_dir = "./vigil-data"

# The registry file (institutions, doctors, patients, gateways, devices, assignments;
# docs/registry.md). Without one, every reading is quarantined as unknown_device.
registry = "registry.toml"

# The clinical rule set (TOML; `vigil rules print-default` shows the shape, `vigil
# rules check FILE` checks one). Empty: the default set built in (China's thresholds).
rules = ""

[broker]
# The broker the gateways publish to: mqtt://host:port (plain TCP, port 1883 by
# default) or mqtts://host:port (TLS, port 8883 by default).
url = "mqtt://127.0.0.1:1883"
# With mqtts://: the PEM file of the authority that signed the broker's certificate
# (required), and for mutual TLS this ingester's certificate and key (PEM, both or
# neither). The broker's certificate must name the host of broker.url.
ca_file = ""
client_cert = ""
client_key = ""
# Run an MQTT broker inside this process instead (for trials and single-node
# installs; sessions do not survive a restart of the process). broker.url is then
# ignored: the ingester connects to the embedded broker.
embedded = false
embedded_listen = "127.0.0.1:1883"
# Stable across restarts: the broker keeps this persistent session, with every publish
# not yet acknowledged, while the ingester is down. Two ingesters must not share one.
client_id = "vigil-ingester"
# Non-empty: subscribe as $share/<group>/vigil/v1/gw/+/readings, so ingesters with the
# same group split the stream. Empty: receive every gateway's readings.
shared_group = ""

[http]
# Health, readiness, Prometheus metrics, the API and the web dashboard (at /).
listen = "127.0.0.1:8080"
# true: every /api/v1/ request needs a web session (sign in on the dashboard; set a
# password with `vigil users password`) or an API token (Authorization: Bearer <token>;
# make users and tokens with `vigil users add`), and a doctor sees a patient only
# through a care relationship. false: nothing is checked (a trial on loopback only).
# Every request is recorded in the audit trail either way (`vigil audit verify`).
auth = true

[ingest]
# Most publishes committed in one transaction. Larger batches amortise the fsync and
# the statements (256 against 64: 1.2-1.3x the readings per second under load,
# BENCHMARKS.md); a batch is what is waiting, so a quiet ingester commits at once.
max_batch = 256
# Publishes held (received, not yet acknowledged) at which the ingester stops reading
# from the broker until commits catch up; the broker keeps the backlog.
max_pending = 1024
# Gaps in a gateway's batch_seq (wire guarantee 6): a gap still open after
# gap_timeout_s is requested from the gateway with a backfill command on its cmd
# topic; still open, it is requested again after gap_timeout_s, then twice that, and
# so on up to gap_max_backoff_s. The clinical store is looked at every gap_poll_ms.
gap_timeout_s = 60
gap_max_backoff_s = 3600
gap_poll_ms = 1000

[tsdb]
# The time-series database every committed reading is also written to, through the
# InfluxDB write API (line protocol). Empty: no telemetry sink. The sink follows the
# clinical store by a cursor kept in it, so an outage or a restart costs only delay.
url = ""
# "v2": /api/v2/write (InfluxDB 2.x and 3.x, VictoriaMetrics), with org and bucket.
# "v1": /write (InfluxDB 1.x, and the 1.x endpoint of 2.x and 3.x), with database and
# retention_policy (empty: the database's default).
api = "v2"
org = ""
bucket = "vigil"
database = "vigil"
retention_policy = ""
# A file holding the API token (sent as "Authorization: Token ..."); or set
# VIGIL_TSDB_TOKEN. Never logged.
token_file = ""
# Timestamp precision: s, ms, us or ns.
precision = "ms"
# Most readings per write; how long a part-full batch waits; writes in flight.
batch_size = 5000
linger_ms = 500
concurrency = 2
# ECG strips: "off" writes one summary point per strip; "samples" also one point per
# sample (heavy: 130 points a second per single-lead patch, 6000 per 500 Hz 12-lead).
ecg = "off"
timeout_s = 10

[webhook]
# Doctors' webhooks (registry: channels.webhook and channels.webhook_format; the
# receiver's side is in docs/webhooks.md). A file holding the secret that signs every
# POST (HMAC-SHA256 in X-Vigil-Signature), or set VIGIL_WEBHOOK_SECRET. Never logged.
# Without one, a webhook in Vigil's format is not sent unsigned: its deliveries are
# given up at once and fall back to the doctor's MQTT topic.
secret_file = ""
# A TOML file of per-doctor secrets, "d-0001" = "SEC...", for receivers that have their
# own (a DingTalk robot's 加签 secret); they win over the secret above.
doctor_secrets_file = ""
# One attempt's bound; attempts before a delivery is given up (it then falls back to
# the doctor's MQTT topic and raises an operational alert); the wait before the first
# retry, doubled at each further one up to max_backoff_s; attempts in flight at once.
timeout_s = 10
attempts = 6
backoff_ms = 2000
max_backoff_s = 300
concurrency = 16
# Prefixed to the acknowledgement link in the WeCom and DingTalk robots' messages,
# e.g. "https://vigil.example.org". Empty: the link is relative.
public_url = ""
# The robots' markdown, with placeholders (docs/webhooks.md). Empty: the built-in one.
template = ""
"#;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub data_dir: PathBuf,
    pub registry: PathBuf,
    pub rules: PathBuf,
    pub broker: BrokerConfig,
    pub http: HttpConfig,
    pub ingest: IngestConfig,
    pub tsdb: TsdbConfig,
    pub webhook: WebhookSettings,
}

/// The webhooks' settings (`[webhook]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    pub secret_file: PathBuf,
    /// From `VIGIL_WEBHOOK_SECRET` only, never from the file.
    #[serde(skip)]
    pub secret: Option<vigil_tsdb::Secret>,
    pub doctor_secrets_file: PathBuf,
    pub timeout_s: u64,
    pub attempts: u32,
    pub backoff_ms: u64,
    pub max_backoff_s: u64,
    pub concurrency: usize,
    pub public_url: String,
    pub template: String,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            secret_file: PathBuf::new(),
            secret: None,
            doctor_secrets_file: PathBuf::new(),
            timeout_s: 10,
            attempts: 6,
            backoff_ms: 2000,
            max_backoff_s: 300,
            concurrency: 16,
            public_url: String::new(),
            template: String::new(),
        }
    }
}

/// The telemetry sink's settings (`[tsdb]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TsdbConfig {
    pub url: String,
    pub api: String,
    pub org: String,
    pub bucket: String,
    pub database: String,
    pub retention_policy: String,
    pub token_file: PathBuf,
    /// From `VIGIL_TSDB_TOKEN` only, never from the file.
    #[serde(skip)]
    pub token: Option<vigil_tsdb::Secret>,
    pub precision: String,
    pub batch_size: usize,
    pub linger_ms: u64,
    pub concurrency: usize,
    pub ecg: String,
    pub timeout_s: u64,
}

impl Default for TsdbConfig {
    fn default() -> Self {
        TsdbConfig {
            url: String::new(),
            api: "v2".to_owned(),
            org: String::new(),
            bucket: "vigil".to_owned(),
            database: "vigil".to_owned(),
            retention_policy: String::new(),
            token_file: PathBuf::new(),
            token: None,
            precision: "ms".to_owned(),
            batch_size: 5000,
            linger_ms: 500,
            concurrency: 2,
            ecg: "off".to_owned(),
            timeout_s: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: String,
    pub auth: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".to_owned(),
            auth: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerConfig {
    pub url: String,
    pub ca_file: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    pub embedded: bool,
    pub embedded_listen: String,
    pub client_id: String,
    pub shared_group: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    pub max_batch: usize,
    pub max_pending: usize,
    pub gap_timeout_s: u64,
    pub gap_max_backoff_s: u64,
    pub gap_poll_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./vigil-data"),
            registry: PathBuf::from("registry.toml"),
            rules: PathBuf::new(),
            broker: BrokerConfig::default(),
            http: HttpConfig::default(),
            ingest: IngestConfig::default(),
            tsdb: TsdbConfig::default(),
            webhook: WebhookSettings::default(),
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            url: "mqtt://127.0.0.1:1883".to_owned(),
            ca_file: PathBuf::new(),
            client_cert: PathBuf::new(),
            client_key: PathBuf::new(),
            embedded: false,
            embedded_listen: "127.0.0.1:1883".to_owned(),
            client_id: "vigil-ingester".to_owned(),
            shared_group: String::new(),
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_batch: 256,
            max_pending: 1024,
            gap_timeout_s: 60,
            gap_max_backoff_s: 3600,
            gap_poll_ms: 1000,
        }
    }
}

/// Where the broker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    pub host: String,
    pub port: u16,
    /// `mqtts://`: TLS.
    pub tls: bool,
}

impl Config {
    /// Parses a configuration file's text (the defaults fill what it omits).
    pub fn parse(text: &str) -> Result<Config, Vec<String>> {
        toml::from_str(text).map_err(|e| vec![format!("{}", e.to_string().trim_end())])
    }

    /// Applies `VIGIL_*` overrides from `vars` (the process environment in practice).
    pub fn apply_env(
        &mut self,
        vars: impl Iterator<Item = (String, String)>,
    ) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        for (key, value) in vars {
            match key.as_str() {
                "VIGIL_DATA_DIR" => self.data_dir = value.into(),
                "VIGIL_REGISTRY" => self.registry = value.into(),
                "VIGIL_BROKER_URL" => self.broker.url = value,
                "VIGIL_BROKER_CA_FILE" => self.broker.ca_file = value.into(),
                "VIGIL_BROKER_CLIENT_CERT" => self.broker.client_cert = value.into(),
                "VIGIL_BROKER_CLIENT_KEY" => self.broker.client_key = value.into(),
                "VIGIL_BROKER_EMBEDDED" => match value.as_str() {
                    "true" | "1" => self.broker.embedded = true,
                    "false" | "0" => self.broker.embedded = false,
                    _ => problems.push(format!(
                        "VIGIL_BROKER_EMBEDDED={value:?} must be true or false"
                    )),
                },
                "VIGIL_BROKER_EMBEDDED_LISTEN" => self.broker.embedded_listen = value,
                "VIGIL_BROKER_CLIENT_ID" => self.broker.client_id = value,
                "VIGIL_BROKER_SHARED_GROUP" => self.broker.shared_group = value,
                "VIGIL_HTTP_LISTEN" => self.http.listen = value,
                "VIGIL_HTTP_AUTH" => match value.as_str() {
                    "true" | "1" => self.http.auth = true,
                    "false" | "0" => self.http.auth = false,
                    _ => problems.push(format!("VIGIL_HTTP_AUTH={value:?} must be true or false")),
                },
                "VIGIL_TSDB_URL" => self.tsdb.url = value,
                "VIGIL_TSDB_TOKEN" => self.tsdb.token = Some(vigil_tsdb::Secret(value)),
                "VIGIL_TSDB_TOKEN_FILE" => self.tsdb.token_file = value.into(),
                "VIGIL_WEBHOOK_SECRET" => {
                    self.webhook.secret = Some(vigil_tsdb::Secret(value));
                }
                "VIGIL_WEBHOOK_SECRET_FILE" => self.webhook.secret_file = value.into(),
                "VIGIL_INGEST_MAX_BATCH" => match value.parse() {
                    Ok(n) => self.ingest.max_batch = n,
                    Err(_) => problems.push(format!(
                        "VIGIL_INGEST_MAX_BATCH={value:?} is not a whole number"
                    )),
                },
                other if other.starts_with("VIGIL_") => problems.push(format!(
                    "environment variable {other} is not a Vigil setting (see vigil print-default-config)"
                )),
                _ => {}
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Checks the values; returns every problem at once.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut p = Vec::new();
        if self.broker.embedded {
            if self
                .broker
                .embedded_listen
                .parse::<std::net::SocketAddr>()
                .is_err()
            {
                p.push(format!(
                    "broker.embedded_listen {:?} must be an address and port, e.g. \"127.0.0.1:1883\"",
                    self.broker.embedded_listen
                ));
            }
            if !cfg!(feature = "embedded-broker") {
                p.push(
                    "broker.embedded is true, but this vigil was built without the embedded-broker feature"
                        .to_owned(),
                );
            }
        } else {
            match self.broker_address() {
                Err(e) => p.push(e),
                Ok(a) if a.tls => {
                    if let Err(e) = self.tls() {
                        p.extend(e);
                    }
                }
                Ok(_) => {}
            }
        }
        if let Err(e) = vigil_model::id::check_id(&self.broker.client_id) {
            p.push(format!("broker.client_id {:?} {e}", self.broker.client_id));
        }
        if !self.broker.shared_group.is_empty()
            && let Err(e) = vigil_model::id::check_id(&self.broker.shared_group)
        {
            p.push(format!(
                "broker.shared_group {:?} {e}",
                self.broker.shared_group
            ));
        }
        if self.http.listen.parse::<std::net::SocketAddr>().is_err() {
            p.push(format!(
                "http.listen {:?} must be an address and port, e.g. \"127.0.0.1:8080\"",
                self.http.listen
            ));
        }
        if self.ingest.max_pending < self.ingest.max_batch {
            p.push(format!(
                "ingest.max_pending ({}) must be at least ingest.max_batch ({})",
                self.ingest.max_pending, self.ingest.max_batch
            ));
        }
        if !(1..=10_000).contains(&self.ingest.max_batch) {
            p.push(format!(
                "ingest.max_batch is {}; use 1 to 10000",
                self.ingest.max_batch
            ));
        }
        let i = &self.ingest;
        for (key, value, range) in [
            ("gap_timeout_s", i.gap_timeout_s, 1..=86_400),
            ("gap_max_backoff_s", i.gap_max_backoff_s, 1..=604_800),
            ("gap_poll_ms", i.gap_poll_ms, 10..=60_000),
        ] {
            if !range.contains(&value) {
                p.push(format!(
                    "ingest.{key} is {value}; use {} to {}",
                    range.start(),
                    range.end()
                ));
            }
        }
        if i.gap_max_backoff_s < i.gap_timeout_s {
            p.push(format!(
                "ingest.gap_max_backoff_s ({}) must be at least ingest.gap_timeout_s ({})",
                i.gap_max_backoff_s, i.gap_timeout_s
            ));
        }
        if let Err(e) = self.sink() {
            p.extend(e);
        }
        if let Err(e) = self.webhooks() {
            p.extend(e);
        }
        if p.is_empty() { Ok(()) } else { Err(p) }
    }

    /// The broker's host and port from `broker.url`.
    pub fn broker_address(&self) -> Result<BrokerAddress, String> {
        let url = &self.broker.url;
        let (rest, tls) = if let Some(rest) = url.strip_prefix("mqtt://") {
            (rest, false)
        } else if let Some(rest) = url.strip_prefix("mqtts://") {
            (rest, true)
        } else {
            return Err(format!(
                "broker.url {url:?} must start with mqtt:// or mqtts://, e.g. \"mqtt://127.0.0.1:1883\""
            ));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => match p.parse::<u16>() {
                Ok(port) => (h, port),
                Err(_) => return Err(format!("broker.url {url:?}: port {p:?} is not a number")),
            },
            None => (rest, if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() {
            return Err(format!("broker.url {url:?} names no host"));
        }
        Ok(BrokerAddress {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port,
            tls,
        })
    }

    /// The TLS files of an `mqtts://` broker, read and checked; every problem at once.
    pub fn tls(&self) -> Result<vigil_ingest::intake::Tls, Vec<String>> {
        let b = &self.broker;
        let mut p = Vec::new();
        let mut keep = |r: Result<Vec<u8>, String>| r.map_err(|e| p.push(e)).ok();
        let ca = if b.ca_file.as_os_str().is_empty() {
            keep(Err(
                "broker.ca_file is required with mqtts://: the PEM file of the authority that signed the broker's certificate"
                    .to_owned(),
            ))
        } else {
            keep(read_pem("ca_file", &b.ca_file, "CERTIFICATE-----"))
        };
        let client_auth = match (
            b.client_cert.as_os_str().is_empty(),
            b.client_key.as_os_str().is_empty(),
        ) {
            (true, true) => None,
            (false, false) => {
                let cert = keep(read_pem("client_cert", &b.client_cert, "CERTIFICATE-----"));
                let key = keep(read_pem("client_key", &b.client_key, "PRIVATE KEY-----"));
                cert.zip(key)
            }
            _ => keep(Err(
                "broker.client_cert and broker.client_key go together (mutual TLS): set both or neither"
                    .to_owned(),
            ))
            .map(|_| (Vec::new(), Vec::new())),
        };
        match ca {
            Some(ca_pem) if p.is_empty() => Ok(vigil_ingest::intake::Tls {
                ca_pem,
                client_auth,
            }),
            _ => Err(p),
        }
    }

    /// The webhook deliverer's settings, checked (every problem at once), with the
    /// secrets read.
    pub fn webhooks(&self) -> Result<vigil_ingest::webhook::WebhookConfig, Vec<String>> {
        use std::time::Duration;
        let w = &self.webhook;
        let mut p = Vec::new();
        let read =
            |key: &str, path: &std::path::Path, p: &mut Vec<String>| match std::fs::read_to_string(
                path,
            ) {
                Ok(text) => Some(text),
                Err(e) => {
                    p.push(format!(
                        "webhook.{key}: cannot read {}: {e}",
                        path.display()
                    ));
                    None
                }
            };
        let mut secrets = vigil_ingest::webhook::WebhookSecrets::default();
        if let Some(s) = &w.secret {
            if s.0.trim().is_empty() {
                p.push("VIGIL_WEBHOOK_SECRET is empty: set a secret or unset it".to_owned());
            }
            secrets.default = Some(s.0.clone());
        } else if !w.secret_file.as_os_str().is_empty()
            && let Some(text) = read("secret_file", &w.secret_file, &mut p)
        {
            let text = text.trim();
            if text.is_empty() {
                p.push(format!(
                    "webhook.secret_file {} is empty",
                    w.secret_file.display()
                ));
            }
            secrets.default = Some(text.to_owned());
        }
        if !w.doctor_secrets_file.as_os_str().is_empty()
            && let Some(text) = read("doctor_secrets_file", &w.doctor_secrets_file, &mut p)
        {
            match toml::from_str::<std::collections::HashMap<String, String>>(&text) {
                Ok(map) => {
                    for (doctor, secret) in &map {
                        if secret.trim().is_empty() {
                            p.push(format!(
                                "webhook.doctor_secrets_file {}: the secret of {doctor:?} is empty",
                                w.doctor_secrets_file.display()
                            ));
                        }
                    }
                    secrets.per_doctor = map;
                }
                // The parser's message may quote the file: it holds secrets.
                Err(_) => p.push(format!(
                    "webhook.doctor_secrets_file {} must be a TOML table of doctor id = \"secret\" lines",
                    w.doctor_secrets_file.display()
                )),
            }
        }
        for (key, value, range) in [
            ("timeout_s", w.timeout_s, 1..=300),
            ("attempts", u64::from(w.attempts), 1..=100),
            ("backoff_ms", w.backoff_ms, 1..=3_600_000),
            ("max_backoff_s", w.max_backoff_s, 1..=86_400),
            ("concurrency", w.concurrency as u64, 1..=1024),
        ] {
            if !range.contains(&value) {
                p.push(format!(
                    "webhook.{key} is {value}; use {} to {}",
                    range.start(),
                    range.end()
                ));
            }
        }
        let web = |u: &str| u.starts_with("https://") || u.starts_with("http://");
        if !(w.public_url.is_empty() || web(&w.public_url)) {
            p.push(format!(
                "webhook.public_url {:?} must be an http(s) URL",
                w.public_url
            ));
        }
        if !p.is_empty() {
            return Err(p);
        }
        Ok(vigil_ingest::webhook::WebhookConfig {
            secrets,
            timeout: Duration::from_secs(w.timeout_s),
            attempts: w.attempts,
            backoff: Duration::from_millis(w.backoff_ms),
            max_backoff: Duration::from_secs(w.max_backoff_s),
            concurrency: w.concurrency,
            public_url: w.public_url.clone(),
            template: if w.template.is_empty() {
                vigil_ingest::webhook::DEFAULT_TEMPLATE.to_owned()
            } else {
                w.template.clone()
            },
        })
    }

    /// The telemetry sink's settings, checked (every problem at once); `None` when no
    /// `tsdb.url` is set.
    pub fn sink(&self) -> Result<Option<vigil_tsdb::SinkConfig>, Vec<String>> {
        use vigil_tsdb::{Api, EcgExport, Precision, Secret, SinkConfig};
        let t = &self.tsdb;
        if t.url.is_empty() {
            return Ok(None);
        }
        let mut p = Vec::new();
        let api = match t.api.as_str() {
            "v2" => {
                if t.bucket.is_empty() {
                    p.push("tsdb.bucket is empty: the v2 write API needs a bucket".to_owned());
                }
                Api::V2 {
                    org: t.org.clone(),
                    bucket: t.bucket.clone(),
                }
            }
            "v1" => {
                if t.database.is_empty() {
                    p.push("tsdb.database is empty: the v1 write API needs a database".to_owned());
                }
                Api::V1 {
                    database: t.database.clone(),
                    retention_policy: t.retention_policy.clone(),
                }
            }
            other => {
                p.push(format!("tsdb.api {other:?} must be \"v2\" or \"v1\""));
                Api::V2 {
                    org: String::new(),
                    bucket: String::new(),
                }
            }
        };
        let mut c = SinkConfig::new(t.url.clone(), api);
        if let Err(e) = c.write_url() {
            p.push(format!("tsdb.url: {e}"));
        }
        match Precision::parse(&t.precision) {
            Some(pr) => c.precision = pr,
            None => p.push(format!(
                "tsdb.precision {:?} must be s, ms, us or ns",
                t.precision
            )),
        }
        c.ecg = match t.ecg.as_str() {
            "off" => EcgExport::Off,
            "samples" => EcgExport::Samples,
            other => {
                p.push(format!("tsdb.ecg {other:?} must be \"off\" or \"samples\""));
                EcgExport::Off
            }
        };
        if !(1..=1_000_000).contains(&t.batch_size) {
            p.push(format!(
                "tsdb.batch_size is {}; use 1 to 1000000",
                t.batch_size
            ));
        }
        if !(1..=64).contains(&t.concurrency) {
            p.push(format!(
                "tsdb.concurrency is {}; use 1 to 64",
                t.concurrency
            ));
        }
        if !(1..=600).contains(&t.timeout_s) {
            p.push(format!("tsdb.timeout_s is {}; use 1 to 600", t.timeout_s));
        }
        c.batch_size = t.batch_size;
        c.linger = std::time::Duration::from_millis(t.linger_ms);
        c.concurrency = t.concurrency;
        c.timeout = std::time::Duration::from_secs(t.timeout_s);
        c.token = match (&t.token, t.token_file.as_os_str().is_empty()) {
            (Some(token), _) => Some(token.clone()),
            (None, false) => match std::fs::read_to_string(&t.token_file) {
                Ok(text) if !text.trim().is_empty() => Some(Secret(text.trim().to_owned())),
                Ok(_) => {
                    p.push(format!(
                        "tsdb.token_file {} is empty",
                        t.token_file.display()
                    ));
                    None
                }
                Err(e) => {
                    p.push(format!(
                        "tsdb.token_file: cannot read {}: {e}",
                        t.token_file.display()
                    ));
                    None
                }
            },
            (None, true) => None,
        };
        if p.is_empty() { Ok(Some(c)) } else { Err(p) }
    }

    /// The gap detector's settings for a broker at `host:port` (checked by
    /// [`Config::validate`]).
    pub fn gaps(
        &self,
        host: &str,
        port: u16,
        tls: Option<vigil_ingest::intake::Tls>,
    ) -> vigil_ingest::gaps::GapConfig {
        use std::time::Duration;
        let mut c = vigil_ingest::gaps::GapConfig::new(host, port);
        c.client_id = format!("{}-gaps", self.broker.client_id);
        c.tls = tls;
        c.gap_timeout = Duration::from_secs(self.ingest.gap_timeout_s);
        c.max_backoff = Duration::from_secs(self.ingest.gap_max_backoff_s);
        c.poll = Duration::from_millis(self.ingest.gap_poll_ms);
        c
    }

    /// The subscription filter.
    pub fn subscription(&self) -> String {
        if self.broker.shared_group.is_empty() {
            vigil_wire::topic::ALL_READINGS.to_owned()
        } else {
            format!(
                "$share/{}/{}",
                self.broker.shared_group,
                vigil_wire::topic::ALL_READINGS
            )
        }
    }
}

/// Reads a PEM file that must hold a `marker` block (`CERTIFICATE-----`, ...).
fn read_pem(key: &str, path: &std::path::Path, marker: &str) -> Result<Vec<u8>, String> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.windows(marker.len()).any(|w| w == marker.as_bytes()) => Ok(bytes),
        Ok(_) => Err(format!(
            "broker.{key} {}: no PEM {marker} block in it",
            path.display()
        )),
        Err(e) => Err(format!("broker.{key}: cannot read {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_default_file_is_the_default() {
        assert_eq!(Config::parse(DEFAULT_CONFIG).unwrap(), Config::default());
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let e = Config::parse("[broker]\nurl = \"mqtt://x\"\nclientid = \"a\"\n").unwrap_err();
        assert!(e[0].contains("clientid"), "{e:?}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut c = Config::default();
        c.broker.url = "tcp://broker".into();
        c.broker.client_id = "bad id".into();
        c.ingest.max_batch = 0;
        let p = c.validate().unwrap_err();
        assert_eq!(p.len(), 3, "{p:#?}");
    }

    #[test]
    fn gap_detection_settings_are_checked_and_reach_the_detector() {
        let c = Config::parse(
            "[broker]\nclient_id = \"ing-1\"\n[ingest]\ngap_timeout_s = 30\ngap_poll_ms = 250\n",
        )
        .unwrap();
        let g = c.gaps("broker.example", 1883, None);
        assert_eq!(g.gap_timeout, std::time::Duration::from_secs(30));
        assert_eq!(g.max_backoff, std::time::Duration::from_secs(3600));
        assert_eq!(g.poll, std::time::Duration::from_millis(250));
        assert_eq!(g.client_id, "ing-1-gaps");
        let mut c = Config::default();
        c.ingest.gap_timeout_s = 0;
        c.ingest.gap_poll_ms = 5;
        let p = c.validate().unwrap_err();
        assert_eq!(p.len(), 2, "{p:#?}");
        assert!(
            p[0].contains("ingest.gap_timeout_s is 0; use 1 to 86400"),
            "{p:#?}"
        );
        let mut c = Config::default();
        c.ingest.gap_timeout_s = 7200;
        let p = c.validate().unwrap_err();
        assert!(
            p[0].contains("must be at least ingest.gap_timeout_s"),
            "{p:#?}"
        );
    }

    #[test]
    fn environment_overrides_the_file_and_unknown_vigil_variables_are_errors() {
        let mut c = Config::default();
        let vars = [
            ("VIGIL_BROKER_URL", "mqtt://10.0.0.5:1884"),
            ("VIGIL_INGEST_MAX_BATCH", "8"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        c.apply_env(vars.into_iter()).unwrap();
        assert_eq!(
            c.broker_address().unwrap(),
            BrokerAddress {
                host: "10.0.0.5".into(),
                port: 1884,
                tls: false
            }
        );
        assert_eq!(c.ingest.max_batch, 8);
        let e = c
            .apply_env([("VIGIL_BROKR_URL".to_owned(), "x".to_owned())].into_iter())
            .unwrap_err();
        assert!(e[0].contains("VIGIL_BROKR_URL"), "{e:?}");
    }

    #[test]
    fn broker_urls_default_the_port_and_refuse_what_is_not_supported() {
        let mut c = Config::default();
        c.broker.url = "mqtt://broker.example".into();
        assert_eq!(c.broker_address().unwrap().port, 1883);
        c.broker.url = "mqtts://broker.example".into();
        let a = c.broker_address().unwrap();
        assert!(a.tls);
        assert_eq!(a.port, 8883);
        c.broker.url = "tcp://broker.example".into();
        assert!(
            c.broker_address()
                .unwrap_err()
                .contains("mqtt:// or mqtts://")
        );
        c.broker.shared_group = "ingest".into();
        assert_eq!(c.subscription(), "$share/ingest/vigil/v1/gw/+/readings");
    }

    #[test]
    fn mqtts_needs_a_readable_ca_and_both_halves_of_a_client_identity() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Config::default();
        c.broker.url = "mqtts://broker.example".into();
        let p = c.validate().unwrap_err();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("broker.ca_file is required"), "{p:?}");

        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        c.broker.ca_file = ca.clone();
        c.broker.client_cert = dir.path().join("missing.pem");
        let p = c.validate().unwrap_err();
        assert!(
            p.iter()
                .any(|x| x.contains("no PEM CERTIFICATE----- block")),
            "{p:?}"
        );
        assert!(p.iter().any(|x| x.contains("set both or neither")), "{p:?}");

        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        c.broker.client_cert = PathBuf::new();
        assert!(c.validate().is_ok());
        let tls = c.tls().unwrap();
        assert!(tls.client_auth.is_none());
        // The key is never printed.
        c.broker.client_cert = ca.clone();
        c.broker.client_key = ca;
        assert!(c.tls().unwrap_err()[0].contains("PRIVATE KEY"));
    }

    #[test]
    fn webhook_secrets_come_from_files_or_the_environment_and_are_never_printed() {
        let c = Config::default();
        let w = c.webhooks().unwrap();
        assert!(w.secrets.default.is_none() && w.secrets.per_doctor.is_empty());
        assert_eq!(w.template, vigil_ingest::webhook::DEFAULT_TEMPLATE);

        let dir = tempfile::tempdir().unwrap();
        let (secret, doctors) = (dir.path().join("secret"), dir.path().join("doctors.toml"));
        std::fs::write(&secret, "platform-secret\n").unwrap();
        std::fs::write(&doctors, "\"d-0001\" = \"SECrobot\"\n").unwrap();
        let mut c = Config::parse(&format!(
            "[webhook]\nsecret_file = {secret:?}\ndoctor_secrets_file = {doctors:?}\nbackoff_ms = 50\n"
        ))
        .unwrap();
        let w = c.webhooks().unwrap();
        assert_eq!(w.secrets.per_doctor["d-0001"], "SECrobot");
        assert_eq!(w.secrets.default.as_deref(), Some("platform-secret"));
        assert_eq!(w.backoff, std::time::Duration::from_millis(50));
        assert!(!format!("{c:?}{w:?}").contains("platform-secret"));
        assert!(!format!("{w:?}").contains("SECrobot"));
        c.apply_env([("VIGIL_WEBHOOK_SECRET".to_owned(), "from-env".to_owned())].into_iter())
            .unwrap();
        assert_eq!(
            c.webhooks().unwrap().secrets.default.as_deref(),
            Some("from-env")
        );
        assert!(!format!("{c:?}").contains("from-env"));

        // Every problem at once; a broken secrets file is named, its text never shown.
        std::fs::write(&doctors, "d-0001 = SECrobot-unquoted\n").unwrap();
        let mut c = Config::default();
        c.webhook.secret_file = "/nonexistent/secret".into();
        c.webhook.doctor_secrets_file = doctors;
        c.webhook.attempts = 0;
        c.webhook.public_url = "vigil.example".into();
        let p = c.validate().unwrap_err();
        assert_eq!(p.len(), 4, "{p:#?}");
        // Empty secrets are refused, not used as empty keys.
        let mut c = Config::default();
        c.webhook.secret = Some(vigil_tsdb::Secret(" ".into()));
        let empty = dir.path().join("empty.toml");
        std::fs::write(&empty, "\"d-0001\" = \"\"\n").unwrap();
        c.webhook.doctor_secrets_file = empty;
        assert_eq!(c.validate().unwrap_err().len(), 2);
        assert!(!p.join(" ").contains("SECrobot"), "{p:#?}");
    }

    #[test]
    fn the_sink_is_off_by_default_and_its_settings_are_checked_at_once() {
        let mut c = Config::default();
        assert!(c.sink().unwrap().is_none());
        c.tsdb.url = "ftp://tsdb".into();
        c.tsdb.api = "v3".into();
        c.tsdb.precision = "m".into();
        c.tsdb.ecg = "all".into();
        c.tsdb.concurrency = 0;
        c.tsdb.token_file = "/nonexistent/token".into();
        let p = c.validate().unwrap_err();
        assert_eq!(p.len(), 6, "{p:#?}");

        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "s3cret\n").unwrap();
        let mut c = Config::default();
        c.tsdb.url = "http://127.0.0.1:8086".into();
        c.tsdb.api = "v1".into();
        c.tsdb.token_file = token;
        let s = c.sink().unwrap().unwrap();
        assert_eq!(s.token, Some(vigil_tsdb::Secret("s3cret".into())));
        assert!(!format!("{c:?}{s:?}").contains("s3cret"));
        // The environment's token wins over the file, and is never printed.
        c.apply_env([("VIGIL_TSDB_TOKEN".to_owned(), "from-env".to_owned())].into_iter())
            .unwrap();
        assert_eq!(
            c.sink().unwrap().unwrap().token,
            Some(vigil_tsdb::Secret("from-env".into()))
        );
        assert!(!format!("{c:?}").contains("from-env"));
    }
}
