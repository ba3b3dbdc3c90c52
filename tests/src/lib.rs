//! Real servers and fixtures for end-to-end tests (dev only).
//!
//! Servers run as child processes on ports the OS picks, never fixed ports, and are
//! stopped when their handle drops. `scripts/test` installs them when missing.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)] // test support: a failed unwrap is a failed test

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Mosquitto broker of the test's own, configured as Vigil documents for the
/// ingester (queue and in-flight limits sized so nothing is dropped).
#[derive(Debug)]
pub struct Mosquitto {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
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

impl Mosquitto {
    pub fn start() -> Mosquitto {
        // The port is free when picked; if another process takes it before the broker
        // binds, the broker exits and we pick again.
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = free_port();
            let conf = dir.path().join("mosquitto.conf");
            std::fs::write(
                &conf,
                format!(
                    "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                     max_queued_messages 100000\nmax_inflight_messages 100\nlog_dest stderr\n"
                ),
            )
            .unwrap();
            let mut child = Command::new(mosquitto_binary())
                .arg("-c")
                .arg(&conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Some(_status) = child.try_wait().unwrap() {
                    break; // exited: port taken; try another
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Mosquitto {
                        child,
                        port,
                        _dir: dir,
                    };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("could not start mosquitto on a free port");
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
