//! `orgwarden status`: healthy after a fresh snapshot, exit 1 once the snapshot is older than
//! twice the audit period.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn status_reports_health_from_the_snapshot_age() {
    let sim = sim(small()).await;
    let dir = tempfile::tempdir().unwrap();
    // An audit every 2 seconds: the snapshot is stale after 4.
    let config = write_config(
        dir.path(),
        &sim.base_url(),
        "[schedule]\naudit = \"*/2 * * * * *\"\n",
    );
    let (code, _, err) = run(orgwarden(&config, &["status"])).await;
    assert_ne!(code, 0, "no database yet: {err}");

    let (code, out, err) = run(orgwarden(&config, &["snapshot"])).await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(orgwarden(&config, &["audit"])).await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(orgwarden(&config, &["status", "--format", "json"])).await;
    assert_eq!(code, 0, "{out}{err}");
    let status: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["healthy"], true);
    let open: u64 = status["open_findings"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(open > 0, "{status:#}");
    assert!(status["next"]["audit"].is_string());
    assert!(status["next"]["report"].is_string());
    assert!(
        status["writer"].is_null(),
        "nobody holds the database: {status:#}"
    );
    let (_, out, _) = run(orgwarden(&config, &["status"])).await;
    assert!(out.contains("daemon: not running\n"), "{out}");
    assert!(out.contains("last report sent: never\n"), "{out}");

    tokio::time::sleep(Duration::from_millis(4500)).await;
    let (code, out, _) = run(orgwarden(&config, &["status"])).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("more than twice the audit period"), "{out}");
}
