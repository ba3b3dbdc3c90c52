//! `vigil-edge` from the command line.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed assertion

use std::process::Command;

#[test]
fn topics_prints_a_gateways_publish_and_subscribe_topics() {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil-edge"))
        .args(["topics", "--gateway", "gw-0042"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("publish   vigil/v1/gw/gw-0042/readings"),
        "{text}"
    );
    assert!(text.contains("vigil/v1/gw/gw-0042/status"), "{text}");
    assert!(text.contains("subscribe vigil/v1/gw/gw-0042/cmd"), "{text}");
}

#[test]
fn an_invalid_gateway_id_is_refused_with_the_reason() {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil-edge"))
        .args(["topics", "--gateway", "gw/#"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("contains '/'"), "{err}");
}

#[test]
fn scan_without_an_adapter_says_so_plainly_and_exits_non_zero() {
    let out = Command::new(env!("CARGO_BIN_EXE_vigil-edge"))
        .args(["scan", "--seconds", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    if cfg!(feature = "bluetooth") {
        // The kernel lists every Bluetooth controller it has under /sys/class/bluetooth.
        let adapters = std::fs::read_dir("/sys/class/bluetooth").map_or(0, |d| d.count());
        if adapters == 0 {
            // No adapter here (CI has none): a plain message and status 1, whether or
            // not a system D-Bus and BlueZ run.
            assert_eq!(out.status.code(), Some(1), "{err}");
            assert!(err.contains("no Bluetooth"), "{err}");
        } else {
            // A gateway with an adapter: the scan runs and lists what is in range.
            assert!(out.status.success(), "{err}");
        }
        assert!(!err.contains("panicked"), "{err}");
    } else {
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains("--features bluetooth"), "{err}");
    }
}
