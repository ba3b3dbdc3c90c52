//! `vigil-edge run` configuration: a TOML file, then `VIGIL_EDGE_*` environment
//! overrides, then checks that report every problem at once.

use std::path::PathBuf;

use serde::Deserialize;
use vigil_model::{DeviceId, GatewayId};

/// The documented default configuration (`vigil-edge print-default-config`).
pub const DEFAULT_CONFIG: &str = r#"# vigil-edge configuration (vigil-edge run --config FILE).
# Environment variables override the file: VIGIL_EDGE_GATEWAY_ID, VIGIL_EDGE_STATE_DIR,
# VIGIL_EDGE_BROKER_URL, VIGIL_EDGE_BROKER_USERNAME, VIGIL_EDGE_BROKER_PASSWORD (the
# password itself: never in the file), VIGIL_EDGE_BROKER_CA_FILE,
# VIGIL_EDGE_BROKER_CLIENT_CERT, VIGIL_EDGE_BROKER_CLIENT_KEY.

# This gateway's id, as the platform's registry knows it (required).
gateway_id = ""
# Where the outbox (every reading until the broker acknowledged it, and the batches
# sent, kept 7 days for backfill) and the device memory live. Keep it on storage that
# survives a reboot.
state_dir = "/var/lib/vigil-edge"
# The outbox's cap on disk. Past it, acknowledged batches kept for backfill are
# deleted early, oldest first (counted and logged). When it is full of readings the
# broker has not acknowledged, new readings are refused (counted and logged): meters
# keep them in their memory and are read again later; a streaming ECG loses them.
outbox_max_mb = 256
# Readings per envelope, and how long a part-full envelope waits.
batch_size = 50
linger_ms = 500
# The UTC offset of the gateway's clock zone, for `sent_at` and device clocks.
utc_offset = "+08:00"

[broker]
# mqtt://host:port, or mqtts://host:port with ca_file (and, for mutual TLS,
# client_cert and client_key).
url = "mqtt://127.0.0.1:1883"
username = ""
ca_file = ""
client_cert = ""
client_key = ""

# The devices this gateway serves (an allow-list: nothing else is connected to). Each
# has the id the platform's registry gives it, and is matched by its Bluetooth address
# or by a name pattern (`*` matches any run of characters).
# [[device]]
# id = "glu-accuchek-00a1"
# address = "C4:7C:8D:6A:00:01"
# [[device]]
# id = "bpm-omron-3f9a21"
# name = "BLESmart_*"
# service = "blood_pressure"   # optional: it must advertise this service (glucose,
#                              # blood_pressure, heart_rate, pulse_oximeter,
#                              # thermometer, weight_scale, polar_pmd)
"#;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgeConfig {
    pub gateway_id: String,
    pub state_dir: PathBuf,
    pub outbox_max_mb: u64,
    pub batch_size: usize,
    pub linger_ms: u64,
    pub utc_offset: String,
    pub broker: BrokerSettings,
    #[serde(rename = "device")]
    pub devices: Vec<DeviceSettings>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BrokerSettings {
    pub url: String,
    pub username: String,
    /// From `VIGIL_EDGE_BROKER_PASSWORD` only.
    #[serde(skip)]
    pub password: Option<Password>,
    pub ca_file: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// A password, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<set>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceSettings {
    pub id: String,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// The health service it must advertise, by name (see [`SERVICES`]).
    #[serde(default)]
    pub service: Option<String>,
}

/// The services a device can be required to advertise: (name, UUID).
pub const SERVICES: [(&str, u128); 7] = [
    ("glucose", crate::device::uuid::sig(0x1808)),
    ("blood_pressure", crate::device::uuid::sig(0x1810)),
    ("heart_rate", crate::device::uuid::sig(0x180D)),
    ("pulse_oximeter", crate::device::uuid::sig(0x1822)),
    ("thermometer", crate::device::uuid::sig(0x1809)),
    ("weight_scale", crate::device::uuid::sig(0x181D)),
    ("polar_pmd", 0xFB00_5C80_02E7_F387_1CAD_8ACD_2D8D_F0C8),
];

impl Default for EdgeConfig {
    fn default() -> Self {
        EdgeConfig {
            gateway_id: String::new(),
            state_dir: PathBuf::from("/var/lib/vigil-edge"),
            outbox_max_mb: 256,
            batch_size: 50,
            linger_ms: 500,
            utc_offset: "+08:00".to_owned(),
            broker: BrokerSettings::default(),
            devices: Vec::new(),
        }
    }
}

impl Default for BrokerSettings {
    fn default() -> Self {
        BrokerSettings {
            url: "mqtt://127.0.0.1:1883".to_owned(),
            username: String::new(),
            password: None,
            ca_file: PathBuf::new(),
            client_cert: PathBuf::new(),
            client_key: PathBuf::new(),
        }
    }
}

/// A device of the allow-list, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedDevice {
    pub id: DeviceId,
    pub address: Option<String>,
    pub name: Option<String>,
    /// A service it must advertise, when set.
    pub service: Option<u128>,
}

impl AllowedDevice {
    /// Whether a device seen with `address`, `name` and advertising `services` is
    /// this one.
    pub fn matches(&self, address: &str, name: Option<&str>, services: &[u128]) -> bool {
        if self.service.is_some_and(|s| !services.contains(&s)) {
            return false;
        }
        self.address
            .as_deref()
            .is_some_and(|a| a.eq_ignore_ascii_case(address))
            || match (&self.name, name) {
                (Some(pattern), Some(n)) => glob(pattern, n),
                _ => false,
            }
    }
}

/// `*` matches any run of characters; everything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

/// A broker URL, `mqtt://host[:port]` or `mqtts://host[:port]`: (host, port, TLS),
/// the port 1883 or 8883 by default; the error says what is wrong with it.
pub fn parse_broker_url(url: &str) -> Result<(String, u16, bool), String> {
    let (rest, tls) = match (url.strip_prefix("mqtt://"), url.strip_prefix("mqtts://")) {
        (Some(r), _) => (r, false),
        (_, Some(r)) => (r, true),
        _ => return Err(format!("{url:?} must start with mqtt:// or mqtts://")),
    };
    let rest = rest.trim_end_matches('/');
    match rest.rsplit_once(':') {
        Some((h, port)) => match port.parse::<u16>() {
            Ok(n) => Ok((h.to_owned(), n, tls)),
            Err(_) => Err(format!("{url:?}: port {port:?} is not a number")),
        },
        None => Ok((rest.to_owned(), if tls { 8883 } else { 1883 }, tls)),
    }
}

/// Everything `run` needs, checked.
#[derive(Debug, Clone)]
pub struct Checked {
    pub gateway_id: GatewayId,
    pub host: String,
    pub port: u16,
    pub tls: Option<rumqttc::TlsConfiguration>,
    pub credentials: Option<(String, String)>,
    pub offset: chrono::FixedOffset,
    pub devices: Vec<AllowedDevice>,
    pub outbox: vigil_outbox::Config,
}

impl EdgeConfig {
    pub fn parse(text: &str) -> Result<EdgeConfig, Vec<String>> {
        toml::from_str(text).map_err(|e| vec![e.to_string().trim_end().to_owned()])
    }

    /// Applies `VIGIL_EDGE_*` overrides; an unknown `VIGIL_EDGE_` variable is an error.
    pub fn apply_env(
        &mut self,
        vars: impl Iterator<Item = (String, String)>,
    ) -> Result<(), Vec<String>> {
        let mut p = Vec::new();
        for (key, value) in vars {
            match key.as_str() {
                "VIGIL_EDGE_GATEWAY_ID" => self.gateway_id = value,
                "VIGIL_EDGE_STATE_DIR" => self.state_dir = value.into(),
                "VIGIL_EDGE_BROKER_URL" => self.broker.url = value,
                "VIGIL_EDGE_BROKER_USERNAME" => self.broker.username = value,
                "VIGIL_EDGE_BROKER_PASSWORD" => self.broker.password = Some(Password(value)),
                "VIGIL_EDGE_BROKER_CA_FILE" => self.broker.ca_file = value.into(),
                "VIGIL_EDGE_BROKER_CLIENT_CERT" => self.broker.client_cert = value.into(),
                "VIGIL_EDGE_BROKER_CLIENT_KEY" => self.broker.client_key = value.into(),
                other if other.starts_with("VIGIL_EDGE_") => p.push(format!(
                    "environment variable {other} is not a vigil-edge setting (see vigil-edge print-default-config)"
                )),
                _ => {}
            }
        }
        if p.is_empty() { Ok(()) } else { Err(p) }
    }

    /// Checks every value; returns every problem at once.
    pub fn check(&self) -> Result<Checked, Vec<String>> {
        let mut p = Vec::new();
        let gateway_id = match GatewayId::parse(&self.gateway_id) {
            Ok(g) => Some(g),
            Err(_) if self.gateway_id.is_empty() => {
                p.push(
                    "gateway_id is empty: set the id the platform's registry gives this gateway"
                        .to_owned(),
                );
                None
            }
            Err(e) => {
                p.push(format!("gateway_id {:?} {e}", self.gateway_id));
                None
            }
        };
        let (host, port, tls) = parse_broker_url(&self.broker.url).unwrap_or_else(|e| {
            p.push(format!("broker.url {e}"));
            // The TLS settings are still checked when the scheme asked for TLS.
            (String::new(), 0, self.broker.url.starts_with("mqtts://"))
        });
        let read = |key: &str, path: &std::path::Path, p: &mut Vec<String>| {
            std::fs::read(path)
                .map_err(|e| p.push(format!("broker.{key}: cannot read {}: {e}", path.display())))
                .ok()
        };
        let tls = if tls {
            if self.broker.ca_file.as_os_str().is_empty() {
                p.push("broker.url is mqtts://: set broker.ca_file, the authority that signed the broker's certificate".to_owned());
                None
            } else {
                let ca = read("ca_file", &self.broker.ca_file, &mut p);
                let (cert, key) = (&self.broker.client_cert, &self.broker.client_key);
                let client_auth = match (cert.as_os_str().is_empty(), key.as_os_str().is_empty()) {
                    (true, true) => None,
                    (false, false) => {
                        read("client_cert", cert, &mut p).zip(read("client_key", key, &mut p))
                    }
                    _ => {
                        p.push("broker.client_cert and broker.client_key go together: set both or neither".to_owned());
                        None
                    }
                };
                ca.map(|ca| rumqttc::TlsConfiguration::Simple {
                    ca,
                    alpn: None,
                    client_auth,
                })
            }
        } else {
            None
        };
        let credentials = match (&self.broker.username, &self.broker.password) {
            (u, Some(pw)) if !u.is_empty() => Some((u.clone(), pw.0.clone())),
            (u, None) if !u.is_empty() => {
                p.push(
                    "broker.username is set but no password: set VIGIL_EDGE_BROKER_PASSWORD"
                        .to_owned(),
                );
                None
            }
            _ => None,
        };
        let offset = match self.utc_offset.parse::<chrono::FixedOffset>() {
            Ok(o) => Some(o),
            Err(_) => {
                p.push(format!(
                    "utc_offset {:?} must be like \"+08:00\"",
                    self.utc_offset
                ));
                None
            }
        };
        let mut devices = Vec::new();
        for (i, d) in self.devices.iter().enumerate() {
            let service = match &d.service {
                None => None,
                Some(name) => match SERVICES.iter().find(|(n, _)| n == name) {
                    Some((_, uuid)) => Some(*uuid),
                    None => {
                        p.push(format!(
                            "device {}: service {name:?} is not one of {}",
                            d.id,
                            SERVICES.map(|(n, _)| n).join(", ")
                        ));
                        None
                    }
                },
            };
            match DeviceId::parse(&d.id) {
                Ok(id) if d.address.is_some() || d.name.is_some() => devices.push(AllowedDevice {
                    id,
                    address: d.address.clone(),
                    name: d.name.clone(),
                    service,
                }),
                Ok(id) => p.push(format!(
                    "device {id}: give its address or a name pattern, so it can be recognised"
                )),
                Err(e) => p.push(format!("device {} (number {}): id {e}", d.id, i + 1)),
            }
        }
        if !(1..=10_000).contains(&self.batch_size) {
            p.push(format!("batch_size is {}; use 1 to 10000", self.batch_size));
        }
        if !(1..=1_000_000).contains(&self.outbox_max_mb) {
            p.push(format!(
                "outbox_max_mb is {}; use 1 to 1000000",
                self.outbox_max_mb
            ));
        }
        match (gateway_id, offset) {
            (Some(gateway_id), Some(offset)) if p.is_empty() => Ok(Checked {
                gateway_id,
                host,
                port,
                tls,
                credentials,
                offset,
                devices,
                outbox: vigil_outbox::Config {
                    max_bytes: self.outbox_max_mb * 1024 * 1024,
                    ..vigil_outbox::Config::default()
                },
            }),
            _ => Err(p),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_default_file_is_the_default() {
        assert_eq!(
            EdgeConfig::parse(DEFAULT_CONFIG).unwrap(),
            EdgeConfig::default()
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_and_the_password_never_printed() {
        let mut c = EdgeConfig::parse(
            "gateway_id = \"gw/1\"\nbatch_size = 0\nutc_offset = \"CST\"\n[broker]\nurl = \"mqtts://b:88x3\"\nusername = \"gw\"\n[[device]]\nid = \"glu-1\"\n",
        )
        .unwrap();
        let p = c.check().unwrap_err();
        assert_eq!(p.len(), 7, "{p:#?}");
        c.apply_env(
            [
                ("VIGIL_EDGE_BROKER_PASSWORD".to_owned(), "s3cret".to_owned()),
                ("VIGIL_EDGE_GATEWAY_ID".to_owned(), "gw-0001".to_owned()),
                ("PATH".to_owned(), "/bin".to_owned()),
            ]
            .into_iter(),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("s3cret"));
        assert!(
            c.apply_env([("VIGIL_EDGE_BROKR_URL".to_owned(), "x".to_owned())].into_iter())
                .is_err()
        );
        assert!(EdgeConfig::parse("gatway_id = \"x\"").unwrap_err()[0].contains("gatway_id"));
    }

    #[test]
    fn devices_match_by_address_or_name_pattern() {
        let mut d = AllowedDevice {
            id: "bpm-1".parse().unwrap(),
            address: Some("C4:7C:8D:6A:00:01".into()),
            name: Some("BLESmart_*_BP".into()),
            service: None,
        };
        assert!(d.matches("c4:7c:8d:6a:00:01", None, &[]));
        assert!(d.matches("00:00:00:00:00:00", Some("BLESmart_0001_BP"), &[]));
        assert!(!d.matches("00:00:00:00:00:00", Some("BLESmart_0001"), &[]));
        assert!(!d.matches("00:00:00:00:00:00", None, &[]));
        // Required to advertise Blood Pressure.
        d.service = Some(crate::device::uuid::sig(0x1810));
        assert!(!d.matches("c4:7c:8d:6a:00:01", None, &[]));
        assert!(d.matches(
            "c4:7c:8d:6a:00:01",
            None,
            &[crate::device::uuid::sig(0x1810)]
        ));
        assert!(glob("*", "anything") && glob("a*b*c", "aXbYc") && !glob("a*b*c", "aXcYb"));
    }
}
