//! A small `orgwarden-bench snapshot`: it runs the snapshot child three times and prints the
//! figures as one JSON object; `--scale` multiplies every seeded size.

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
            "--scale",
            "2",
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
    assert_eq!(figures["scale"], 2);
    assert_eq!(figures["members"], 60);
    assert_eq!(figures["workspaces"], 6);
    assert_eq!(figures["api_keys"], 40);
    assert!(figures["requests"].as_u64().expect("requests") > 0);
    assert!(figures["db_bytes"].as_u64().expect("db_bytes") > 0);
    assert!(figures["peak_rss_bytes"].as_u64().expect("peak_rss_bytes") > 0);
    assert_eq!(figures["unchanged_growth_bytes"], 0);
    assert!(figures["audit_findings"].is_u64());
    assert!(
        figures["sequential_fetch_secs"]
            .as_f64()
            .expect("sequential_fetch_secs")
            > 0.0
    );
    assert!(
        figures["audit_load_secs"]
            .as_f64()
            .expect("audit_load_secs")
            >= 0.0
    );
}
