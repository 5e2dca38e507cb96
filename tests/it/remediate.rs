//! `orgwarden cleanup` against the simulator over TCP: every action, the guards, the audit
//! trail, idempotency, dry-run, the empty-member-list disaster and a crash mid-action.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Duration as Days;
use orgwarden::sim::{Faults, SimHandle};
use orgwarden::store::{ActionStatus, Store};
use serde_json::Value;

use crate::helpers::*;

/// A fresh remediation config: enforce, every rule opted in, limits wide open unless `extra`
/// narrows them (extra lines go into `[remediation]`).
fn enforce_config(
    dir: &Path,
    sim: &SimHandle,
    remediation: &str,
    rules: &str,
) -> std::path::PathBuf {
    write_config(
        dir,
        &sim.base_url(),
        &format!(
            "[remediation]\nmode = \"enforce\"\nmax_fraction = 1.0\nmax_actions_per_run = 1000\nmin_finding_age = \"0s\"\n{remediation}\n\n\
             [rules.stale_invites]\nremediate = true\nmax_pending_days = 7\n\
             [rules.orphaned_keys]\nremediate = true\n\
             [rules.departed_domains]\nremediate = true\nremove_members = true\ndeparted_domains = [\"departed.example\"]\n\
             {rules}\n"
        ),
    )
}

async fn ok(config: &Path, args: &[&str]) -> String {
    let (code, out, err) = run(orgwarden(config, args)).await;
    assert_eq!(code, 0, "orgwarden {args:?} failed:\n{out}\n{err}");
    out
}

async fn cleanup_json(config: &Path, apply: bool) -> Value {
    let mut args = vec!["cleanup", "--format", "json"];
    if apply {
        args.push("--apply");
    }
    serde_json::from_str(&ok(config, &args).await).expect("cleanup JSON")
}

fn executed<'a>(summary: &'a Value, id: &str) -> Option<&'a Value> {
    summary["executed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subject_id"] == id)
}

struct Seeded {
    invite: String,
    key: String,
    departed: String,
    ws: String,
    roster_user: String,
}

fn seed(sim: &SimHandle) -> Seeded {
    sim.with_state(|s| {
        let now = s.now();
        let invite = s.add_invite("late@example.com", "user", now - Days::days(10));
        let leaver = s.add_user(
            "leaver@example.com",
            "Leaver",
            "developer",
            now - Days::days(99),
        );
        let key = s.add_api_key(
            "leaver-ci",
            None,
            Some(&leaver),
            "active",
            now - Days::days(9),
        );
        assert!(s.remove_user(&leaver));
        let departed = s.add_user("bob@departed.example", "Bob", "user", now - Days::days(50));
        let ws = s
            .workspaces()
            .into_iter()
            .find(|w| w["archived_at"].is_null())
            .map(|w| w["id"].as_str().unwrap().to_owned())
            .expect("an active workspace");
        let roster_user = s.add_user("carol@example.com", "Carol", "user", now - Days::days(50));
        assert!(s.set_workspace_role(&ws, &roster_user, "workspace_developer"));
        Seeded {
            invite,
            key,
            departed,
            ws,
            roster_user,
        }
    })
}

#[tokio::test]
async fn enforce_carries_out_every_action_once_after_the_grace_period() {
    let sim = sim(small()).await;
    let s = seed(&sim);
    let dir = tempfile::tempdir().unwrap();
    let roster = dir.path().join("roster.csv");
    // Carol joined 50 days ago and left 10 days ago.
    let last_day = (sim.snapshot_state().now() - Days::days(10)).format("%Y-%m-%d");
    std::fs::write(
        &roster,
        format!("email,last_day\ncarol@example.com,{last_day}\n"),
    )
    .unwrap();
    let config = enforce_config(
        dir.path(),
        &sim,
        "",
        &format!(
            "[rules.offboarding_roster]\nremediate = true\nroster_csv = \"{}\"\n",
            roster.display()
        ),
    );

    // First snapshot: grace (2 snapshots by default) holds everything back.
    ok(&config, &["snapshot"]).await;
    let first = cleanup_json(&config, true).await;
    assert_eq!(first["executed"].as_array().unwrap().len(), 0, "{first:#}");
    assert!(first["plan"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["eligible"] == false));

    ok(&config, &["snapshot"]).await;
    let second = cleanup_json(&config, true).await;
    let membership = format!("{}/{}", s.ws, s.roster_user);
    for (id, action) in [
        (s.invite.as_str(), "delete_invite"),
        (s.key.as_str(), "deactivate_key"),
        (s.departed.as_str(), "remove_member"),
        (membership.as_str(), "remove_workspace_member"),
    ] {
        let done = executed(&second, id)
            .unwrap_or_else(|| panic!("{action} {id} not executed: {second:#}"));
        assert_eq!(done["action"], action);
        assert_eq!(done["status"], "succeeded", "{done}");
    }
    // The roster member themself is not removed: roster.remove_members is off.
    let carol_removal = second["plan"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["subject_id"] == s.roster_user.as_str() && a["action"] == "remove_member")
        .expect("planned, with its verdicts");
    assert_eq!(carol_removal["eligible"], false);

    // The organization changed for real.
    let state = sim.snapshot_state();
    assert!(!state
        .invites()
        .iter()
        .any(|i| i["id"] == s.invite.as_str() && i["status"] == "pending"));
    let key = state
        .api_keys()
        .into_iter()
        .find(|k| k["id"] == s.key.as_str())
        .unwrap();
    assert_eq!(key["status"], "inactive");
    assert!(!state.users().iter().any(|u| u["id"] == s.departed.as_str()));
    assert!(!state
        .workspace_members(&s.ws)
        .iter()
        .any(|m| m["user_id"] == s.roster_user.as_str()));

    // The audit trail: one row per call, with the request-id and the object before.
    let store = Store::open_reader(&dir.path().join("orgwarden.db")).unwrap();
    let trail = store.actions_since(None).unwrap();
    let row = trail.iter().find(|a| a.subject_id == s.key).unwrap();
    assert_eq!(row.status, ActionStatus::Succeeded);
    assert_eq!(row.http_status, Some(200));
    assert!(row.request_id.is_some());
    assert!(row.before.as_deref().unwrap().contains("\"active\""));
    assert!(store.planned_actions().unwrap().is_empty());
    let calls = trail.len();
    drop(store);

    // Twice in a row on the same snapshot: nothing more happens.
    let served = sim.requests_served();
    let again = cleanup_json(&config, true).await;
    assert_eq!(again["executed"].as_array().unwrap().len(), 0, "{again:#}");
    assert_eq!(sim.requests_served(), served, "not even a re-read");
    // And on a new snapshot the findings are gone.
    ok(&config, &["snapshot"]).await;
    let third = cleanup_json(&config, true).await;
    assert_eq!(third["executed"].as_array().unwrap().len(), 0, "{third:#}");
    let store = Store::open_reader(&dir.path().join("orgwarden.db")).unwrap();
    assert_eq!(store.actions_since(None).unwrap().len(), calls);
}

#[tokio::test]
async fn dry_run_never_changes_anything() {
    let sim = sim(small()).await;
    seed(&sim);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &sim.base_url(),
        "[remediation]\nmin_consecutive_snapshots = 1\nmin_finding_age = \"0s\"\nmax_fraction = 1.0\n\
         [rules.stale_invites]\nremediate = true\n[rules.orphaned_keys]\nremediate = true\n",
    );
    ok(&config, &["snapshot"]).await;
    let before = sim.snapshot_state().to_json();
    let plan = cleanup_json(&config, false).await;
    let actions = plan["plan"]["actions"].as_array().unwrap();
    assert!(!actions.is_empty());
    for action in actions {
        assert_eq!(action["eligible"], false);
        assert_eq!(action["verdicts"][0]["guard"], "mode");
        assert_eq!(action["verdicts"][0]["pass"], false);
    }
    let (code, _, err) = run(orgwarden(&config, &["cleanup", "--apply"])).await;
    assert_ne!(code, 0);
    assert!(err.contains("remediation.mode is \"dry-run\""), "{err}");
    assert_eq!(
        sim.snapshot_state().to_json(),
        before,
        "the organization is untouched"
    );
    let store = Store::open_reader(&dir.path().join("orgwarden.db")).unwrap();
    assert!(store.actions_since(None).unwrap().is_empty());
}

#[tokio::test]
async fn an_empty_member_list_leads_to_zero_actions() {
    let sim = sim(small()).await;
    seed(&sim);
    let dir = tempfile::tempdir().unwrap();
    let config = enforce_config(dir.path(), &sim, "min_consecutive_snapshots = 1", "");
    ok(&config, &["snapshot"]).await;
    sim.set_faults(Faults {
        empty_members: true,
        ..Faults::default()
    });
    ok(&config, &["snapshot"]).await;
    let before = sim.snapshot_state().to_json();
    let summary = cleanup_json(&config, true).await;
    assert_eq!(summary["executed"].as_array().unwrap().len(), 0);
    assert_eq!(sim.snapshot_state().to_json(), before);
    let (_, out, _) = run(orgwarden(&config, &["audit", "--format", "json"])).await;
    let findings: Vec<Value> = serde_json::from_str(&out).unwrap();
    let guard = findings
        .iter()
        .find(|f| f["rule"] == "remediation_guard" && f["subject_id"] == "population_drop")
        .expect("a critical finding says why");
    assert_eq!(guard["severity"], "critical");
}

#[tokio::test]
async fn blast_radius_stops_a_whole_kind() {
    let sim = sim(small()).await;
    seed(&sim);
    let dir = tempfile::tempdir().unwrap();
    let config = enforce_config(dir.path(), &sim, "min_consecutive_snapshots = 1", "");
    // Narrow the limit: rewrite max_actions_per_run to 1 and add a second orphaned key.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("max_actions_per_run = 1000", "max_actions_per_run = 1");
    std::fs::write(&config, text).unwrap();
    ok(&config, &["snapshot"]).await;
    let before = sim.snapshot_state().to_json();
    let summary = cleanup_json(&config, true).await;
    assert!(
        !summary["executed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "deactivate_key"),
        "{summary:#}"
    );
    assert!(summary["plan"]["guard_findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["subject_id"] == "blast_radius:deactivate_key"));
    let keys_now = sim.snapshot_state().api_keys();
    let keys_then = orgwarden::sim::SimState::from_json(&before)
        .unwrap()
        .api_keys();
    assert_eq!(keys_now, keys_then, "no key was touched");
}

#[tokio::test]
async fn an_object_changed_since_the_snapshot_is_skipped() {
    let sim = sim(small()).await;
    let s = seed(&sim);
    let dir = tempfile::tempdir().unwrap();
    let config = enforce_config(dir.path(), &sim, "min_consecutive_snapshots = 1", "");
    ok(&config, &["snapshot"]).await;
    // Someone renames the key in the Console after the snapshot.
    sim.with_state(|st| assert!(st.set_key_name(&s.key, "leaver-ci (kept by ops)")));
    let summary = cleanup_json(&config, true).await;
    let skipped = executed(&summary, &s.key).expect("rechecked");
    assert_eq!(skipped["status"], "skipped");
    assert!(skipped["reason"]
        .as_str()
        .unwrap()
        .contains("changed since the snapshot"));
    let key = sim
        .snapshot_state()
        .api_keys()
        .into_iter()
        .find(|k| k["id"] == s.key.as_str())
        .unwrap();
    assert_eq!(key["status"], "active");
}

#[tokio::test]
async fn a_crash_between_planned_and_the_call_is_reconciled() {
    let sim = sim(small()).await;
    let s = seed(&sim);
    let dir = tempfile::tempdir().unwrap();
    let config = enforce_config(dir.path(), &sim, "min_consecutive_snapshots = 1", "");
    ok(&config, &["snapshot"]).await;
    // Calls on this one key are slow, so the process can be killed while one is in flight.
    sim.set_faults(Faults {
        latency: Duration::from_secs(3),
        path_contains: Some(s.key.clone()),
        ..Faults::default()
    });
    let db = dir.path().join("orgwarden.db");
    let mut child = orgwarden(&config, &["cleanup", "--apply"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            Instant::now() < deadline,
            "the action never reached `planned`"
        );
        let planned = Store::open_reader(&db)
            .ok()
            .and_then(|st| st.planned_actions().ok())
            .unwrap_or_default();
        if planned.iter().any(|a| a.subject_id == s.key) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();
    sim.set_faults(Faults::default());

    // The next run settles the row from what the API says, then acts if still needed.
    let summary = cleanup_json(&config, true).await;
    let reconciled = summary["reconciled"].as_array().unwrap();
    assert!(
        reconciled.iter().any(|r| r["subject_id"] == s.key.as_str()),
        "{summary:#}"
    );
    let store = Store::open_reader(&db).unwrap();
    assert!(store.planned_actions().unwrap().is_empty());
    let key = sim
        .snapshot_state()
        .api_keys()
        .into_iter()
        .find(|k| k["id"] == s.key.as_str())
        .unwrap();
    assert_eq!(
        key["status"], "inactive",
        "done by the first or the second run"
    );
    let trail: Vec<_> = store
        .actions_since(None)
        .unwrap()
        .into_iter()
        .filter(|a| a.subject_id == s.key)
        .collect();
    assert!(
        trail.iter().any(|a| a.status == ActionStatus::Succeeded),
        "{trail:#?}"
    );
}

#[tokio::test]
async fn an_old_snapshot_and_an_exemption_each_hold_actions_back() {
    let sim = sim(small()).await;
    let s = seed(&sim);
    let dir = tempfile::tempdir().unwrap();
    // The orphaned key is exempted; everything else is acted on only from a fresh snapshot.
    let config = enforce_config(
        dir.path(),
        &sim,
        "min_consecutive_snapshots = 1\nmax_snapshot_age = \"3s\"",
        &format!(
            "[[exemptions]]\nkey_id = \"{}\"\nreason = \"kept by the platform team\"\n",
            s.key
        ),
    );
    ok(&config, &["snapshot"]).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let before = sim.snapshot_state().to_json();
    let stale = cleanup_json(&config, true).await;
    assert_eq!(stale["executed"].as_array().unwrap().len(), 0, "{stale:#}");
    for action in stale["plan"]["actions"].as_array().unwrap() {
        let age = action["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["guard"] == "snapshot_age")
            .unwrap();
        assert_eq!(age["pass"], false, "{action}");
    }
    assert_eq!(sim.snapshot_state().to_json(), before);

    // A fresh snapshot: the others run, the exempted key does not.
    ok(&config, &["snapshot"]).await;
    let fresh = cleanup_json(&config, true).await;
    assert!(executed(&fresh, &s.invite).is_some(), "{fresh:#}");
    assert!(executed(&fresh, &s.key).is_none());
    let exempted = fresh["plan"]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["subject_id"] == s.key.as_str())
        .expect("planned, and held back");
    assert!(exempted["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v["guard"] == "exemption" && v["pass"] == false));
    let key = sim
        .snapshot_state()
        .api_keys()
        .into_iter()
        .find(|k| k["id"] == s.key.as_str())
        .unwrap();
    assert_eq!(key["status"], "active");
}
