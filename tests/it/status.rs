//! `orgwarden status`: healthy after a fresh snapshot, exit 1 once the snapshot is older than
//! twice the audit period.

use chrono::Duration as Span;
use serde_json::Value;

use crate::app::TestApp;
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
}

#[tokio::test]
async fn status_turns_unhealthy_once_the_snapshot_is_older_than_twice_the_audit_period() {
    let mut app = TestApp::new("[schedule]\naudit = \"0 0 * * * *\"\n").await;
    app.cycle().await;
    let fresh = app.status();
    assert!(fresh.healthy, "{fresh:?}");
    assert_eq!(fresh.last_complete_age_secs, Some(0));

    // Just under two hourly periods: still healthy.
    app.advance(Span::minutes(119));
    let late = app.status();
    assert!(late.healthy, "{late:?}");

    app.advance(Span::minutes(2));
    let stale = app.status();
    assert!(!stale.healthy, "{stale:?}");
    let text = orgwarden::status::render_text(&stale);
    assert!(text.contains("more than twice the audit period"), "{text}");
}
