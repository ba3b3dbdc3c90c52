//! Time-series servers for the telemetry sink's tests, on free ports: VictoriaMetrics
//! (Debian `victoria-metrics`: InfluxDB v2 and v1 write endpoints, read back through
//! `/api/v1/export`) and InfluxDB 1.6 (Debian `influxdb`: v1 `/write`, InfluxQL
//! `/query`, rejects bad lines with 400 and keeps the good ones).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

fn binary(candidates: &[&str], package: &str) -> PathBuf {
    for p in candidates {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!(
        "{package} is not installed: run scripts/test, which installs it (apt-get install {package})"
    );
}

/// Spawns `cmd` and waits until `ready` answers on `port`; `None` if the process
/// exited first (its port was taken).
fn launch(mut cmd: Command, port: u16, ready: &str, log: &Path) -> Option<Child> {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        if (200..300).contains(&raw_status(port, ready)) {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// The status of a GET on 127.0.0.1:`port` (0 when nothing answers).
fn raw_status(port: u16, path: &str) -> u16 {
    crate::try_http_get(&format!("127.0.0.1:{port}"), path).map_or(0, |(status, _)| status)
}

/// An HTTP client (rustls needs its crypto provider chosen once per process).
fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// `base` with `params` as its query, percent-encoded.
fn with_query(base: &str, params: &[(&str, &str)]) -> reqwest::Url {
    reqwest::Url::parse_with_params(base, params).unwrap()
}

fn stop_child(child: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// A series as VictoriaMetrics exports it.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// `{measurement}_{field}`.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub values: Vec<f64>,
    /// Milliseconds since the epoch.
    pub timestamps: Vec<i64>,
}

/// A VictoriaMetrics single-node server of the test's own.
#[derive(Debug)]
pub struct VictoriaMetrics {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl VictoriaMetrics {
    /// Started with `-dedup.minScrapeInterval=1ms`, so a point written twice (a
    /// replay) is one point.
    pub fn start() -> VictoriaMetrics {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..5 {
            let port = free_port();
            if let Some(child) = Self::spawn(dir.path(), port) {
                return VictoriaMetrics { child, port, dir };
            }
        }
        panic!("could not start victoria-metrics on a free port");
    }

    fn spawn(dir: &Path, port: u16) -> Option<Child> {
        let mut cmd = Command::new(binary(&["/usr/bin/victoria-metrics"], "victoria-metrics"));
        cmd.arg(format!("-httpListenAddr=127.0.0.1:{port}"))
            .arg(format!("-storageDataPath={}", dir.join("data").display()))
            .arg("-dedup.minScrapeInterval=1ms")
            .arg("-retentionPeriod=100y")
            .arg("-search.latencyOffset=0s");
        launch(cmd, port, "/health", &dir.join("vm.log"))
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGTERM: it flushes to disk).
    pub fn stop(&mut self) {
        stop_child(&mut self.child);
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        for _ in 0..100 {
            if let Some(child) = Self::spawn(self.dir.path(), self.port) {
                self.child = child;
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not restart victoria-metrics on port {}", self.port);
    }

    /// Every series whose name matches the regex `names`, as exported now.
    pub async fn export(&self, names: &str) -> Vec<Series> {
        let client = client();
        // Make what was just written searchable.
        let _ = client
            .get(format!("{}/internal/force_flush", self.url()))
            .send()
            .await;
        let matcher = format!("{{__name__=~\"{names}\"}}");
        let text = client
            .get(with_query(
                &format!("{}/api/v1/export", self.url()),
                &[("match[]", &matcher)],
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let mut labels: BTreeMap<String, String> = v["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect();
                let name = labels.remove("__name__").unwrap();
                Series {
                    name,
                    labels,
                    values: v["values"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap())
                        .collect(),
                    timestamps: v["timestamps"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_i64().unwrap())
                        .collect(),
                }
            })
            .collect()
    }
}

impl Drop for VictoriaMetrics {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An InfluxDB 1.6 server of the test's own.
#[derive(Debug)]
pub struct Influx16 {
    child: Child,
    pub port: u16,
    conf: PathBuf,
    dir: tempfile::TempDir,
}

impl Influx16 {
    pub fn start() -> Influx16 {
        let dir = tempfile::tempdir().unwrap();
        for _ in 0..5 {
            let port = free_port();
            let rpc = free_port();
            let d = dir.path();
            let conf = d.join("influxdb.conf");
            std::fs::write(
                &conf,
                format!(
                    "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
                     [meta]\n  dir = \"{meta}\"\n\
                     [data]\n  dir = \"{data}\"\n  wal-dir = \"{wal}\"\n  query-log-enabled = false\n\
                     [http]\n  bind-address = \"127.0.0.1:{port}\"\n  log-enabled = false\n\
                     [monitor]\n  store-enabled = false\n\
                     [continuous_queries]\n  enabled = false\n",
                    meta = d.join("meta").display(),
                    data = d.join("data").display(),
                    wal = d.join("wal").display(),
                ),
            )
            .unwrap();
            if let Some(child) = Self::spawn(&conf, port, d) {
                return Influx16 {
                    child,
                    port,
                    conf,
                    dir,
                };
            }
        }
        panic!("could not start influxd on a free port");
    }

    fn spawn(conf: &Path, port: u16, dir: &Path) -> Option<Child> {
        let mut cmd = Command::new(binary(&["/usr/bin/influxd"], "influxdb"));
        cmd.arg("-config").arg(conf);
        launch(cmd, port, "/ping", &dir.join("influxd.log"))
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        stop_child(&mut self.child);
    }

    pub fn restart(&mut self) {
        for _ in 0..100 {
            if let Some(child) = Self::spawn(&self.conf, self.port, self.dir.path()) {
                self.child = child;
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not restart influxd on port {}", self.port);
    }

    /// Runs InfluxQL (POST, so it may create and write), returning the JSON answer.
    pub async fn query(&self, db: &str, q: &str) -> serde_json::Value {
        let text = client()
            .post(with_query(
                &format!("{}/query", self.url()),
                &[("db", db), ("q", q), ("epoch", "ms")],
            ))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// Writes raw line protocol (for tests that prepare the server).
    pub async fn write(&self, db: &str, lines: &str) -> u16 {
        client()
            .post(with_query(
                &format!("{}/write", self.url()),
                &[("db", db), ("precision", "ms")],
            ))
            .body(lines.to_owned())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// Every row of `measurement` as (time ms, column → value).
    pub async fn rows(
        &self,
        db: &str,
        measurement: &str,
    ) -> Vec<(i64, BTreeMap<String, serde_json::Value>)> {
        let v = self
            .query(db, &format!("SELECT * FROM \"{measurement}\""))
            .await;
        let Some(series) = v["results"][0]["series"].as_array() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for s in series {
            let columns: Vec<String> = s["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_owned())
                .collect();
            for row in s["values"].as_array().unwrap() {
                let row = row.as_array().unwrap();
                let time = row[0].as_i64().unwrap();
                let map = columns
                    .iter()
                    .zip(row)
                    .skip(1)
                    .filter(|(_, v)| !v.is_null())
                    .map(|(c, v)| (c.clone(), v.clone()))
                    .collect();
                out.push((time, map));
            }
        }
        out
    }
}

impl Drop for Influx16 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
