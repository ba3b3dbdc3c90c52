//! Real servers and fixtures for end-to-end tests (dev only).
//!
//! Servers run as child processes on ports the OS picks, never fixed ports, and are
//! stopped when their handle drops. `scripts/test` installs them when missing.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)] // test support: a failed unwrap is a failed test

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How a test broker is configured.
#[derive(Debug, Clone)]
pub struct MosquittoOptions {
    /// QoS 1 messages in flight to one client at once (Mosquitto's default is 20).
    pub max_inflight: u32,
    /// Messages queued for one client (default 1000, beyond which Mosquitto drops
    /// silently; Vigil's documented configuration raises it).
    pub max_queued: u32,
    /// Keep sessions and queued messages across a restart (saved on a clean stop).
    pub persistence: bool,
    /// Also listen with TLS, on [`Mosquitto::tls`]'s port, with a certificate
    /// authority made for this broker; `Some(true)` also requires client certificates.
    pub tls: Option<bool>,
}

impl Default for MosquittoOptions {
    /// The configuration Vigil documents for the ingester.
    fn default() -> Self {
        MosquittoOptions {
            max_inflight: 100,
            max_queued: 100_000,
            persistence: false,
            tls: None,
        }
    }
}

/// A Mosquitto broker of the test's own, on a free port.
#[derive(Debug)]
pub struct Mosquitto {
    child: Child,
    pub port: u16,
    /// The TLS listener, when asked for.
    pub tls: Option<TlsListener>,
    conf: PathBuf,
    _dir: tempfile::TempDir,
}

/// A TLS listener of a test broker and the PEM files a client needs for it.
#[derive(Debug, Clone)]
pub struct TlsListener {
    pub port: u16,
    /// The authority that signed the broker's certificate (for 127.0.0.1).
    pub ca: PathBuf,
    /// A client certificate and key signed by the same authority.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// Another authority's certificate: a client trusting only this must fail.
    pub other_ca: PathBuf,
}

/// Runs `openssl` with `args` in `dir`, failing the test with its output.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is not installed: run scripts/test, which installs it");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate authority, a server certificate for 127.0.0.1 and a client
/// certificate (EC P-256, valid two days), made in `dir` with the openssl command.
fn make_certificates(dir: &std::path::Path) {
    for ca in ["ca", "other-ca"] {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-days",
                "2",
                "-subj",
                &format!("/CN=vigil test {ca}"),
            ],
        );
    }
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth",
        ),
        ("client", "extendedKeyUsage=clientAuth"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN=vigil test {name}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
    // Mosquitto drops to its own user: let it read its key.
    #[cfg(unix)]
    for f in ["server.key", "server.pem", "ca.pem"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
}

pub mod tsdb;

/// A TCP port nothing listens on now (the OS picks it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn mosquitto_binary() -> PathBuf {
    for p in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"] {
        if std::path::Path::new(p).exists() {
            return p.into();
        }
    }
    panic!(
        "mosquitto is not installed: run scripts/test, which installs it (apt-get install mosquitto)"
    );
}

/// Starts mosquitto with `conf` and waits until it accepts connections on `port`;
/// `None` if it exited (the port was taken).
fn launch(conf: &std::path::Path, port: u16) -> Option<Child> {
    let mut child = Command::new(mosquitto_binary())
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(child);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

impl TlsListener {
    /// Adds this listener to a Mosquitto configuration.
    fn with_conf(
        self,
        conf: &mut String,
        dir: &std::path::Path,
        require_certificate: bool,
    ) -> Self {
        conf.push_str(&format!(
            "listener {} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {require_certificate}\n",
            self.port,
            dir.join("ca.pem").display(),
            dir.join("server.pem").display(),
            dir.join("server.key").display(),
        ));
        self
    }
}

impl Mosquitto {
    /// A broker with the configuration Vigil documents for the ingester.
    pub fn start() -> Mosquitto {
        Mosquitto::start_with(MosquittoOptions::default())
    }

    pub fn start_with(options: MosquittoOptions) -> Mosquitto {
        // The port is free when picked; if another process takes it before the broker
        // binds, the broker exits and we pick again.
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            // Mosquitto started as root drops to the `mosquitto` user: let it write its
            // persistence file here.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
                    .unwrap();
            }
            let port = free_port();
            let conf = dir.path().join("mosquitto.conf");
            let mut text = format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\n\
                 max_queued_messages {}\nmax_inflight_messages {}\n\
                 max_packet_size 16842752\n",
                options.max_queued, options.max_inflight
            );
            let tls = options.tls.map(|require_certificate| {
                make_certificates(dir.path());
                let d = dir.path();
                TlsListener {
                    port: free_port(),
                    ca: d.join("ca.pem"),
                    client_cert: d.join("client.pem"),
                    client_key: d.join("client.key"),
                    other_ca: d.join("other-ca.pem"),
                }
                .with_conf(&mut text, d, require_certificate)
            });
            if options.persistence {
                text.push_str(&format!(
                    "persistence true\npersistence_location {}/\n",
                    dir.path().display()
                ));
            } else {
                text.push_str("persistence false\n");
            }
            std::fs::write(&conf, text).unwrap();
            if let Some(child) = launch(&conf, port) {
                return Mosquitto {
                    child,
                    port,
                    tls,
                    conf,
                    _dir: dir,
                };
            }
        }
        panic!("could not start mosquitto on a free port");
    }

    /// Stops the broker cleanly (SIGTERM: a persistent broker saves its state).
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// Starts the stopped broker again on the same port and configuration.
    pub fn restart(&mut self) {
        for _ in 0..50 {
            if let Some(child) = launch(&self.conf, self.port) {
                self.child = child;
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not restart mosquitto on port {}", self.port);
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until `cond` holds, polling; fails the test with `what` after `timeout`.
pub async fn eventually(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The complete registry example of `docs/registry.md` (gateway `gw-0042`, device
/// `bpm-omron-3f9a21` assigned to patient `p-000123` from 2026-11-01).
pub fn example_registry() -> String {
    const DOC: &str = include_str!("../../docs/registry.md");
    let start = DOC.find("```toml registry\n").unwrap() + "```toml registry\n".len();
    let end = start + DOC[start..].find("```").unwrap();
    DOC[start..end].to_owned()
}

/// A simulated gateway's MQTT connection, with a count of the broker's PUBACKs. Its
/// session is persistent, so publishes not yet acknowledged are resent after a
/// reconnect, as a real gateway's outbox would.
pub fn gateway(
    port: u16,
    client_id: &str,
) -> (
    rumqttc::AsyncClient,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use rumqttc::{Event, MqttOptions, Packet};
    use std::sync::atomic::Ordering;
    let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(10));
    opts.set_clean_session(false);
    // Envelopes up to the contract's 16 MiB (the default limit is 10 KiB).
    opts.set_max_packet_size(64 * 1024, 16 * 1024 * 1024 + 64 * 1024);
    let (client, mut eventloop) = rumqttc::AsyncClient::new(opts, 2048);
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = acked.clone();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                // Reconnects on the next poll; pause so a stopped broker is not spun on.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    });
    (client, acked)
}

/// A QoS 1 subscriber (a doctor's client, a dashboard, a baseline listener) on
/// `topic`, returned once the broker confirmed the subscription; `on_publish` sees
/// every message. `persistent`: a session the broker keeps across disconnects (and,
/// when it persists, across its own restarts). Reconnects by itself.
pub async fn subscriber(
    port: u16,
    client_id: &str,
    topic: &str,
    persistent: bool,
    mut on_publish: impl FnMut(&rumqttc::Publish) + Send + 'static,
) -> rumqttc::AsyncClient {
    use rumqttc::{Event, MqttOptions, Packet, QoS};
    let mut opts = MqttOptions::new(client_id, "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_clean_session(!persistent);
    opts.set_max_packet_size(1024 * 1024, 64 * 1024);
    let (client, mut events) = rumqttc::AsyncClient::new(opts, 64);
    client.subscribe(topic, QoS::AtLeastOnce).await.unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let mut tx = Some(tx);
    tokio::spawn(async move {
        loop {
            match events.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => on_publish(&p),
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .expect("no SUBACK within 10 s")
        .unwrap();
    client
}

/// Publishes each payload at QoS 1 on a gateway's readings topic.
pub async fn publish_all(
    client: &rumqttc::AsyncClient,
    gateway_id: &str,
    payloads: impl IntoIterator<Item = Vec<u8>>,
) {
    let topic = format!("vigil/v1/gw/{gateway_id}/readings");
    for p in payloads {
        client
            .publish(topic.as_str(), rumqttc::QoS::AtLeastOnce, false, p)
            .await
            .unwrap();
    }
}

/// A minimal HTTP/1.1 GET of `path` on `addr` (host:port), returning the whole response
/// (the tests need no HTTP client library). Fails the test unless the status is 200.
pub fn http_get(addr: &str, path: &str) -> String {
    let (status, out) = http_get_any(addr, path);
    assert_eq!(status, 200, "{out}");
    out
}

/// Like [`http_get`], whatever the status: (status, whole response).
pub fn http_get_any(addr: &str, path: &str) -> (u16, String) {
    try_http_get(addr, path).unwrap_or_else(|| panic!("GET http://{addr}{path} failed"))
}

/// A GET that may fail (nothing listening yet): (status, whole response), or `None`.
pub fn try_http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.get(9..12).and_then(|c| c.parse().ok())?;
    Some((status, out))
}

/// What a [`WebhookReceiver`] answers to its n-th request (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// 200 with `{"errcode":0,"errmsg":"ok"}` (what the chat robots answer too).
    Ok,
    /// This status, with a short body.
    Status(u16),
    /// No answer for this long (longer than the sender's timeout: a timeout).
    Hang(Duration),
}

/// One request a [`WebhookReceiver`] took.
#[derive(Debug, Clone)]
pub struct Hook {
    pub path_and_query: String,
    /// Header names in lower case.
    pub headers: std::collections::HashMap<String, String>,
    pub body: Vec<u8>,
    /// When it arrived (Unix seconds, this machine's clock).
    pub arrived: u64,
    pub reply: Reply,
}

impl Hook {
    /// Whether `X-Vigil-Signature` is the HMAC-SHA256, under the receiver's `key`, of
    /// `"{X-Vigil-Timestamp}.{X-Vigil-Delivery}.{body}"`, with the timestamp within 5
    /// minutes of the arrival; computed here, independently of Vigil's code.
    pub fn signature_valid(&self, key: &str) -> bool {
        let (Some(ts), Some(delivery), Some(sig)) = (
            self.headers.get("x-vigil-timestamp"),
            self.headers.get("x-vigil-delivery"),
            self.headers.get("x-vigil-signature"),
        ) else {
            return false;
        };
        let Ok(ts_num) = ts.parse::<u64>() else {
            return false;
        };
        if self.arrived.abs_diff(ts_num) > 300 {
            return false;
        }
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key.as_bytes());
        let mut message = format!("{ts}.{delivery}.").into_bytes();
        message.extend_from_slice(&self.body);
        let expected: String = ring::hmac::sign(&key, &message)
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        *sig == format!("v1={expected}")
    }
}

/// A webhook receiver: an HTTP server on a free port that records every request and
/// answers as its script says.
#[derive(Debug)]
pub struct WebhookReceiver {
    /// `http://127.0.0.1:{port}/hook`.
    pub url: String,
    pub received: std::sync::Arc<std::sync::Mutex<Vec<Hook>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WebhookReceiver {
    /// Starts it; `script(n)` is the answer to the n-th request.
    pub async fn start(script: impl Fn(usize) -> Reply + Send + Sync + 'static) -> WebhookReceiver {
        use axum::body::Bytes;
        use axum::http::{HeaderMap, StatusCode, Uri};
        use std::sync::{Arc, Mutex};
        let received: Arc<Mutex<Vec<Hook>>> = Arc::default();
        let (r, script) = (received.clone(), Arc::new(script));
        let handler = move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let (r, script) = (r.clone(), script.clone());
            async move {
                let headers: std::collections::HashMap<String, String> = headers
                    .iter()
                    .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
                    .collect();
                let arrived = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs();
                let reply = {
                    let mut r = r.lock().unwrap();
                    let reply = script(r.len());
                    r.push(Hook {
                        path_and_query: uri
                            .path_and_query()
                            .map(|p| p.to_string())
                            .unwrap_or_default(),
                        headers,
                        body: body.to_vec(),
                        arrived,
                        reply,
                    });
                    reply
                };
                match reply {
                    Reply::Ok => (StatusCode::OK, r#"{"errcode":0,"errmsg":"ok"}"#.to_owned()),
                    Reply::Status(code) => (
                        StatusCode::from_u16(code).unwrap(),
                        format!("scripted {code}"),
                    ),
                    Reply::Hang(d) => {
                        tokio::time::sleep(d).await;
                        (
                            StatusCode::OK,
                            r#"{"errcode":0,"errmsg":"late"}"#.to_owned(),
                        )
                    }
                }
            }
        };
        let app = axum::Router::new().route("/hook", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        WebhookReceiver {
            url,
            received,
            task,
        }
    }

    pub fn hooks(&self) -> Vec<Hook> {
        self.received.lock().unwrap().clone()
    }
}

/// A broker that takes every publish and never acknowledges one: it accepts MQTT 3.1.1
/// connections (CONNACK), answers pings and subscriptions, and counts each PUBLISH by
/// topic, but sends no PUBACK: what a client sees from an overloaded or broken broker.
/// Mosquitto cannot be made to do it (it acknowledges even what its ACL refuses).
#[derive(Debug)]
pub struct SilentBroker {
    pub port: u16,
    /// PUBLISH packets taken, by topic.
    pub publishes: std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, u32>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SilentBroker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SilentBroker {
    pub async fn start() -> SilentBroker {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let publishes = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<
            String,
            u32,
        >::new()));
        let counts = publishes.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let counts = counts.clone();
                tokio::spawn(async move {
                    loop {
                        let mut head = [0u8; 1];
                        if conn.read_exact(&mut head).await.is_err() {
                            return;
                        }
                        // The remaining length: up to four 7-bit digits.
                        let (mut len, mut shift) = (0usize, 0);
                        loop {
                            let mut b = [0u8; 1];
                            if conn.read_exact(&mut b).await.is_err() || shift > 21 {
                                return;
                            }
                            len |= usize::from(b[0] & 0x7f) << shift;
                            shift += 7;
                            if b[0] & 0x80 == 0 {
                                break;
                            }
                        }
                        let mut body = vec![0u8; len];
                        if conn.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        let reply: &[u8] = match head[0] >> 4 {
                            1 => &[0x20, 0x02, 0x00, 0x00], // CONNECT: accepted
                            3 if body.len() >= 2 => {
                                let n = usize::from(u16::from_be_bytes([body[0], body[1]]));
                                let topic =
                                    String::from_utf8_lossy(&body[2..(2 + n).min(body.len())]);
                                *counts
                                    .lock()
                                    .unwrap()
                                    .entry(topic.into_owned())
                                    .or_default() += 1;
                                &[] // PUBLISH: taken, never acknowledged
                            }
                            8 if body.len() >= 2 => {
                                // SUBSCRIBE: granted at QoS 0, one topic.
                                let ack = [0x90, 0x03, body[0], body[1], 0x00];
                                if conn.write_all(&ack).await.is_err() {
                                    return;
                                }
                                &[]
                            }
                            12 => &[0xd0, 0x00], // PINGREQ
                            14 => return,        // DISCONNECT
                            _ => &[],
                        };
                        if !reply.is_empty() && conn.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        SilentBroker {
            port,
            publishes,
            task,
        }
    }

    /// How many times `topic` was published.
    pub fn count(&self, topic: &str) -> u32 {
        self.publishes
            .lock()
            .unwrap()
            .get(topic)
            .copied()
            .unwrap_or(0)
    }
}
