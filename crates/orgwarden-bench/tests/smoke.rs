//! A small `orgwarden-bench snapshot`: it runs the snapshot child three times and prints the
//! figures as one JSON object.

use std::process::Command;

#[test]
fn prints_the_figures_of_a_small_snapshot() {
    let out = Command::new(env!("CARGO_BIN_EXE_orgwarden-bench"))
        .args([
            "snapshot",
            "--members",
            "30",
            "--invites",
            "5",
            "--workspaces",
            "3",
        ])
        .args([
            "--workspace-members",
            "20",
            "--keys",
            "20",
            "--latency-ms",
            "0",
        ])
        .output()
        .expect("runs orgwarden-bench");
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let figures: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    assert_eq!(figures["members"], 30);
    assert!(figures["requests"].as_u64().expect("requests") > 0);
    assert!(figures["db_bytes"].as_u64().expect("db_bytes") > 0);
    assert!(figures["peak_rss_bytes"].as_u64().expect("peak_rss_bytes") > 0);
    assert_eq!(figures["unchanged_growth_bytes"], 0);
    assert!(figures["audit_findings"].is_u64());
}
