//! The unit file: `systemd-analyze verify` is silent and the hardening rates 2.0 or better.
//!
//! These need `systemd-analyze` (package `systemd`; `.ci/run` installs it). Without it they fail
//! with that explanation instead of passing silently.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::bin;

fn unit_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/orgwarden.service")
}

/// The unit with ExecStart pointing at the test binary (verify checks that the program exists),
/// in a temp dir, so the unit's name stays `orgwarden.service`.
fn installed_unit() -> (tempfile::TempDir, PathBuf) {
    let text = std::fs::read_to_string(unit_file()).expect("read systemd/orgwarden.service");
    assert!(
        text.contains("ExecStart=/usr/local/bin/orgwarden run"),
        "ExecStart changed; update this test"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orgwarden.service");
    let text = text.replace(
        "/usr/local/bin/orgwarden",
        bin().to_str().expect("utf-8 path"),
    );
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn systemd_analyze(args: &[&str], unit: &Path) -> (bool, String) {
    let output = Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .env("SYSTEMD_COLORS", "0")
        .env("SYSTEMD_PAGER", "")
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "cannot run systemd-analyze ({error}); install it (Debian: apt-get install systemd) \
                 to check systemd/orgwarden.service"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn unit_file_verifies_cleanly() {
    let (_dir, unit) = installed_unit();
    let (ok, text) = systemd_analyze(&["verify", "--man=no"], &unit);
    assert!(
        ok && text.trim().is_empty(),
        "systemd-analyze verify:\n{text}"
    );
}

#[test]
fn unit_file_exposure_is_at_most_2() {
    let (_dir, unit) = installed_unit();
    let (ok, text) = systemd_analyze(&["security", "--offline=yes", "--no-pager"], &unit);
    assert!(ok, "systemd-analyze security:\n{text}");
    let line = text
        .lines()
        .find(|line| line.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    let exposure: f64 = line
        .split(':')
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("cannot read the exposure in {line:?}"));
    assert!(exposure <= 2.0, "exposure {exposure} > 2.0:\n{text}");
}

#[test]
fn unit_file_has_what_the_daemon_relies_on() {
    let text = std::fs::read_to_string(unit_file()).unwrap();
    for want in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "StateDirectory=orgwarden",
        "ConfigurationDirectory=orgwarden",
        "LoadCredential=anthropic_admin_key:",
        "LoadCredential=smtp_password:",
        "WatchdogSec=",
        "Restart=on-failure",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    ] {
        assert!(text.contains(want), "missing {want:?}");
    }
    // TimeoutStopSec must leave the default shutdown_timeout (60s) room to finish.
    let stop = text
        .lines()
        .find_map(|line| line.strip_prefix("TimeoutStopSec="))
        .and_then(|value| value.trim().trim_end_matches('s').parse::<u64>().ok())
        .expect("TimeoutStopSec=<n>s");
    assert!(
        stop > 60,
        "TimeoutStopSec={stop}s is not above the 60s shutdown_timeout"
    );
}
