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
# VIGIL_BROKER_SHARED_GROUP, VIGIL_HTTP_LISTEN, VIGIL_INGEST_MAX_BATCH.

# Where the clinical store (clinical.db, SQLite) lives. Back it up: it is the record.
data_dir = "./vigil-data"

# The registry file (institutions, doctors, patients, gateways, devices, assignments;
# docs/registry.md). Without one, every reading is quarantined as unknown_device.
registry = "registry.toml"

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
# Health, readiness, Prometheus metrics and the read API. The API has no
# authentication yet (it arrives with the dashboards): keep it on loopback.
listen = "127.0.0.1:8080"

[ingest]
# Most publishes committed in one transaction. Larger batches amortise the fsync.
max_batch = 64
# Publishes held (received, not yet acknowledged) above which the ingester stops
# reading from the broker until commits catch up.
max_pending = 256
"#;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub data_dir: PathBuf,
    pub registry: PathBuf,
    pub broker: BrokerConfig,
    pub http: HttpConfig,
    pub ingest: IngestConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".to_owned(),
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./vigil-data"),
            registry: PathBuf::from("registry.toml"),
            broker: BrokerConfig::default(),
            http: HttpConfig::default(),
            ingest: IngestConfig::default(),
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
            max_batch: 64,
            max_pending: 256,
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
}
