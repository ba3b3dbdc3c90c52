//! What the `vigil serve` tests share: starting the real binary and finding its HTTP
//! address. Each test binary uses part of it.

#![allow(dead_code)]
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `vigil serve --config {dir}/vigil.toml`, its stderr in `{dir}/{log}`.
pub fn spawn_serve(dir: &Path, log: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["serve", "--config"])
        .arg(dir.join("vigil.toml"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(log)).unwrap())
        .spawn()
        .unwrap()
}

/// The HTTP address `vigil serve` printed in `log`, once its line is whole (the log
/// can be read between two writes of one line).
pub fn http_addr(log: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(address) = address_in(&text) {
            return address;
        }
        assert!(Instant::now() < deadline, "no HTTP address in:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The address of a whole "HTTP on http://..." line of a log.
pub fn address_in(log: &str) -> Option<String> {
    let (line, _) = log.split("HTTP on http://").nth(1)?.split_once('\n')?;
    line.split_whitespace().next().map(str::to_owned)
}
