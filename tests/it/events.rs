//! The event stream: `[events] path` after audit cycles and a cleanup (every line JSON, ids
//! strictly increasing, none repeated, matching the database's findings and actions),
//! rotation by size, a crash between the append and the remembered position, and
//! `orgwarden events` through the real binary.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use chrono::Duration as Span;
use serde_json::Value;

use crate::app::TestApp;
use crate::helpers::{orgwarden, run, write_config};

const ENFORCE: &str = "[remediation]\nmode = \"enforce\"\nmax_fraction = 1.0\n\
    max_actions_per_run = 1000\nmin_finding_age = \"0s\"\nmin_consecutive_snapshots = 1\n\n\
    [rules.stale_invites]\nremediate = true\nmax_pending_days = 7\n\
    [rules.orphaned_keys]\nremediate = true\n";

fn lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

fn ids(events: &[Value]) -> Vec<i64> {
    events.iter().map(|e| e["id"].as_i64().unwrap()).collect()
}

fn flush(app: &TestApp) {
    orgwarden::events::after_job(&app.config.events, &app.store);
}

fn db(app: &TestApp) -> rusqlite::Connection {
    rusqlite::Connection::open(&app.config.store.path).unwrap()
}

#[tokio::test]
async fn the_events_file_matches_the_findings_and_actions() {
    let mut app = TestApp::new("").await;
    let path = app.dir.path().join("events.jsonl");
    app.reconfigure(&format!(
        "{ENFORCE}\n[events]\npath = \"{}\"\n",
        path.display()
    ));
    let mut after_each = Vec::new();
    for hour in 0..3 {
        app.advance(Span::hours(hour));
        app.cycle().await;
        flush(&app);
        after_each.push(lines(&path).len());
    }
    app.cleanup(true).await;
    flush(&app);
    // A flush with nothing new writes nothing.
    flush(&app);

    let events = lines(&path);
    let ids = ids(&events);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(after_each.windows(2).all(|w| w[0] <= w[1]));
    let total: i64 = db(&app)
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        events.len() as i64,
        total,
        "every stored event is in the file once"
    );
    for event in &events {
        assert!(event["at"].as_str().unwrap().ends_with('Z'), "{event}");
        assert!(event["type"].is_string(), "{event}");
    }

    // Every finding ever raised has exactly one `finding.new` (or `.exempted` first) event,
    // and every resolved one a `finding.resolved`.
    let by_type =
        |kind: &str| -> Vec<&Value> { events.iter().filter(|e| e["type"] == kind).collect() };
    let new: BTreeSet<String> = by_type("finding.new")
        .iter()
        .map(|e| e["fingerprint"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        new.len(),
        by_type("finding.new").len(),
        "a finding is new once"
    );
    let conn = db(&app);
    let mut statement = conn
        .prepare("SELECT fingerprint, rule, severity, subject_kind, subject_id, subject, status FROM findings")
        .unwrap();
    let findings: BTreeMap<String, Vec<String>> = statement
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (1..7)
                    .map(|i| r.get(i))
                    .collect::<Result<Vec<String>, _>>()?,
            ))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!findings.is_empty());
    let guards: BTreeSet<String> = by_type("guard.tripped")
        .iter()
        .map(|e| e["fingerprint"].as_str().unwrap().to_owned())
        .collect();
    for (fingerprint, row) in &findings {
        if row[0] == "remediation_guard" {
            assert!(guards.contains(fingerprint), "{row:?}");
            continue;
        }
        let exempted = by_type("finding.exempted")
            .iter()
            .any(|e| e["fingerprint"] == fingerprint.as_str());
        assert!(
            new.contains(fingerprint) || exempted,
            "no event for {row:?}"
        );
        let event = events
            .iter()
            .find(|e| e["fingerprint"] == fingerprint.as_str())
            .unwrap();
        for (i, key) in ["rule", "severity", "subject_kind", "subject_id", "subject"]
            .iter()
            .enumerate()
        {
            assert_eq!(event[*key], row[i].as_str(), "{key} of {event}");
        }
        let resolved = by_type("finding.resolved")
            .iter()
            .any(|e| e["fingerprint"] == fingerprint.as_str());
        assert_eq!(resolved, row[5] == "resolved", "{row:?}");
    }

    // Each action row: a `planned` event and one for its outcome, or a `skipped` one.
    let mut statement = conn
        .prepare("SELECT id, action, subject, status FROM actions")
        .unwrap();
    let actions: Vec<(i64, String, String, String)> = statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(!actions.is_empty(), "enforced remediation acted");
    for (id, action, subject, status) in &actions {
        let of_action: Vec<&Value> = events.iter().filter(|e| e["action_id"] == *id).collect();
        let types: Vec<&str> = of_action
            .iter()
            .map(|e| e["type"].as_str().unwrap())
            .collect();
        let expected = match status.as_str() {
            "skipped" => vec!["action.skipped".to_owned()],
            "planned" => vec!["action.planned".to_owned()],
            other => vec!["action.planned".to_owned(), format!("action.{other}")],
        };
        assert_eq!(types, expected, "action {id}");
        assert!(of_action.iter().all(|e| e["action"] == action.as_str()
            && e["subject"] == subject.as_str()
            && e["rule"].is_string()));
    }
    // Runs: every snapshot and audit finished.
    let snapshots = by_type("run.finished")
        .iter()
        .filter(|e| e["job"] == "snapshot")
        .count();
    let audits = by_type("run.finished")
        .iter()
        .filter(|e| e["job"] == "audit")
        .count();
    assert!(
        snapshots >= 3 && audits >= 3,
        "{snapshots} snapshots, {audits} audits"
    );
}

#[tokio::test]
async fn the_file_is_rotated_by_size_and_a_crash_repeats_nothing() {
    let mut app = TestApp::new("").await;
    let path = app.dir.path().join("events.jsonl");
    app.reconfigure(&format!(
        "[events]\npath = \"{}\"\nmax_bytes = 1000\n",
        path.display()
    ));
    app.cycle().await;
    flush(&app);
    let first = lines(&path);
    assert!(!first.is_empty());
    // The remembered position is lost (a crash right after the fsync): the file's last id
    // still keeps the next flush from repeating anything.
    db(&app).execute("DELETE FROM events_sink", []).unwrap();
    app.advance(Span::hours(1));
    app.cycle().await;
    flush(&app);
    let rotated = lines(&orgwarden::events::rotated(&path));
    let current = lines(&path);
    assert!(
        !rotated.is_empty(),
        "the second batch did not fit beside the first"
    );
    let mut all = rotated.clone();
    all.extend(current.clone());
    let all_ids = ids(&all);
    assert!(all_ids.windows(2).all(|w| w[0] < w[1]), "{all_ids:?}");
    assert_eq!(rotated, first);
    let total: i64 = db(&app)
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(all.len() as i64, total);

    // A line cut short by a crash is dropped and written again whole.
    let text = std::fs::read_to_string(&path).unwrap();
    let last_line = text.lines().last().unwrap().to_owned();
    std::fs::write(&path, &text[..text.len() - 10]).unwrap();
    db(&app).execute("DELETE FROM events_sink", []).unwrap();
    flush(&app);
    let repaired = lines(&path);
    assert_eq!(repaired.last().unwrap().to_string(), last_line);
    assert_eq!(ids(&repaired), ids(&current));
}

#[tokio::test]
async fn the_events_command_prints_them_from_the_database() {
    let mut app = TestApp::new("").await;
    app.cycle().await;
    let config = write_config(app.dir.path(), &app.sim.base_url(), "");
    // While the writer (this app's store) holds the database.
    let (code, out, err) = run(orgwarden(&config, &["events", "--format", "json"])).await;
    assert_eq!(code, 0, "{err}");
    let events: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let total: i64 = db(&app)
        .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(events.len() as i64, total);
    assert!(events.iter().any(|e| e["type"] == "finding.new"));
    let middle = ids(&events)[events.len() / 2];
    let (code, out, err) = run(orgwarden(
        &config,
        &["events", "--since", &middle.to_string(), "--format", "json"],
    ))
    .await;
    assert_eq!(code, 0, "{err}");
    let later: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ids(&later), ids(&events)[events.len() / 2 + 1..].to_vec());
    let (code, out, _) = run(orgwarden(&config, &["events", "--since", "2999-01-01"])).await;
    assert_eq!(code, 0);
    assert!(out.is_empty(), "{out}");
    let (code, _, err) = run(orgwarden(&config, &["events", "--since", "yesterday"])).await;
    assert_ne!(code, 0);
    assert!(err.contains("--since"), "{err}");
}

#[test]
fn the_events_settings_are_validated_by_key() {
    use orgwarden::config::{Config, Environment, EventsPath};
    let env = Environment { vars: vec![] };
    let (stdout, _) = Config::from_toml("[events]\npath = \"-\"\n", &env).unwrap();
    assert_eq!(stdout.events.path, Some(EventsPath::Stdout));
    assert_eq!(stdout.events.max_bytes, 100_000_000);
    let refused = Config::from_toml("[events]\npath = \"/\"\nmax_bytes = 10\n", &env).unwrap_err();
    assert!(refused.to_string().contains("events.path"), "{refused}");
    assert!(
        refused.to_string().contains("events.max_bytes"),
        "{refused}"
    );
}
