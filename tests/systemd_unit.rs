//! The shipped systemd unit (`examples/kamshub.service`) passes `systemd-analyze verify` with no
//! warning, and is a `Type=notify` service with a watchdog. `scripts/test` installs systemd's
//! tools when they are missing; without them this test fails under KAMSHUB_REQUIRE_SERVICES=1.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const UNIT: &str = include_str!("../examples/kamshub.service");

fn systemd_analyze() -> Option<PathBuf> {
    let found = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"].iter().map(PathBuf::from).find(|p| p.exists());
    if found.is_none() {
        assert!(
            !common::services_required(),
            "systemd-analyze is missing: scripts/test installs it (apt-get install systemd)"
        );
        eprintln!("skipping: systemd-analyze is not installed (scripts/test installs it)");
    }
    found
}

/// Runs `systemd-analyze verify` on `unit` saved as `dir/name`, with the installed binary path
/// (which does not exist on a build machine) pointed at the binary just built. Returns the exit
/// status and everything it printed.
fn verify(analyze: &Path, dir: &Path, name: &str, unit: &str) -> (bool, String) {
    let binary = assert_cmd::cargo::cargo_bin("kamshub");
    let path = dir.join(name);
    std::fs::write(&path, unit.replace("/usr/local/bin/kamshub", &binary.display().to_string())).unwrap();
    let out = Command::new(analyze).arg("verify").arg(&path).output().unwrap();
    let printed = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), printed)
}

#[test]
fn the_unit_file_passes_systemd_analyze_verify_without_warnings() {
    let Some(analyze) = systemd_analyze() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (ok, printed) = verify(&analyze, dir.path(), "kamshub.service", UNIT);
    assert!(ok && printed.trim().is_empty(), "systemd-analyze verify complained:\n{printed}");

    // The same check catches a mistake: the test can fail.
    let broken = UNIT.replace("Type=notify", "Type=notifyy").replace("WatchdogSec=60", "WatchdogSecs=60");
    let (_, printed) = verify(&analyze, dir.path(), "broken.service", &broken);
    assert!(printed.contains("notifyy") && printed.contains("WatchdogSecs"), "{printed}");
}

#[test]
fn the_unit_is_a_notify_service_with_a_watchdog_and_hardening() {
    let service: Vec<&str> = UNIT
        .lines()
        .skip_while(|l| *l != "[Service]")
        .take_while(|l| *l != "[Install]")
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect();
    for wanted in [
        "Type=notify",
        "NotifyAccess=main",
        "WatchdogSec=60",
        "Restart=on-failure",
        "ExecStart=/usr/local/bin/kamshub serve",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "User=kamshub",
    ] {
        assert!(service.contains(&wanted), "[Service] lacks {wanted}: {service:#?}");
    }
    let stop: u64 = service.iter().find_map(|l| l.strip_prefix("TimeoutStopSec=")).unwrap().parse().unwrap();
    assert!(stop >= 60, "SIGTERM drains in-flight work; {stop} s is too short");
}
