//! `orgwarden cleanup` against the simulator over TCP: every action, the guards, the audit
//! trail, idempotency, dry-run, the empty-member-list disaster and a crash mid-action.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::Duration as Days;
use orgwarden::store::{ActionStatus, Store};
use orgwarden_sim::{Faults, SimHandle};
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

/// `cleanup --apply --format json` that must exit with `code`.
async fn apply_json_exit(config: &Path, code: i32) -> Value {
    let args = ["cleanup", "--format", "json", "--apply"];
    let (got, out, err) = run(orgwarden(config, &args)).await;
    assert_eq!(got, code, "orgwarden {args:?}:\n{out}\n{err}");
    serde_json::from_str(&out).expect("cleanup JSON")
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
    let summary = apply_json_exit(&config, 2).await;
    assert_eq!(summary["executed"].as_array().unwrap().len(), 0);
    assert_eq!(sim.snapshot_state().to_json(), before);
    let (_, out, _) = run(orgwarden(&config, &["audit", "--format", "json"])).await;
    let findings: Vec<Value> = serde_json::from_str(&out).unwrap();
    let guard = findings
        .iter()
        .find(|f| f["rule"] == "remediation_guard" && f["subject_id"] == "population_drop")
        .expect("a critical finding says why");
    assert_eq!(guard["severity"], "critical");

    // `history` marks the empty snapshot; an operator can accept it (recorded as $USER), and a
    // plan without --apply still exits 0.
    let (_, out, _) = run(orgwarden(&config, &["history", "--format", "json"])).await;
    let runs: Vec<Value> = serde_json::from_str(&out).unwrap();
    // Newest first.
    let ids: Vec<i64> = runs.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let run_2 = |runs: &[Value]| runs.iter().find(|r| r["id"] == 2).unwrap().clone();
    assert_eq!(
        run_2(&runs)["suspect"],
        "the snapshot has no members at all"
    );
    let mut accept = orgwarden(&config, &["cleanup", "--accept-baseline", "2"]);
    accept.env("USER", "tester");
    let (code, out, err) = run(accept).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        err.contains("accepted as the remediation baseline by tester"),
        "{err}"
    );
    assert!(out.contains("ELIGIBLE_AT"), "{out}");
    let (_, out, _) = run(orgwarden(&config, &["history", "--format", "json"])).await;
    let runs: Vec<Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(run_2(&runs)["accepted_by"], "tester");
    let store = Store::open_reader(&dir.path().join("orgwarden.db")).unwrap();
    let trail = store.actions_since(None).unwrap();
    assert_eq!(trail.len(), 1, "only the acceptance: {trail:#?}");
    assert!(trail[0].reason.as_deref().unwrap().contains("by tester"));
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
    let summary = apply_json_exit(&config, 2).await;
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
    let keys_then = orgwarden_sim::SimState::from_json(&before)
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
    // In process with a manual clock: the snapshot ages without waiting.
    let mut app = crate::app::TestApp::with_options(
        orgwarden_sim::SimOptions {
            sizes: small(),
            ..orgwarden_sim::SimOptions::default()
        },
        "",
    )
    .await;
    let s = seed(&app.sim);
    // The orphaned key is exempted; everything else is acted on only from a fresh snapshot.
    app.reconfigure(&format!(
        "[remediation]\nmode = \"enforce\"\nmax_fraction = 1.0\nmax_actions_per_run = 1000\n\
         min_finding_age = \"0s\"\nmin_consecutive_snapshots = 1\nmax_snapshot_age = \"3s\"\n\n\
         [rules.stale_invites]\nremediate = true\nmax_pending_days = 7\n\
         [rules.orphaned_keys]\nremediate = true\n\n\
         [[exemptions]]\nkey_id = \"{}\"\nreason = \"kept by the platform team\"\n",
        s.key
    ));
    app.snapshot().await;
    app.advance(Days::milliseconds(3500));
    let before = app.sim.snapshot_state().to_json();
    let stale = serde_json::to_value(app.cleanup(true).await).unwrap();
    assert_eq!(stale["executed"].as_array().unwrap().len(), 0, "{stale:#}");
    let actions = stale["plan"]["actions"].as_array().unwrap();
    assert!(!actions.is_empty(), "{stale:#}");
    for action in actions {
        let age = action["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["guard"] == "snapshot_age")
            .unwrap();
        assert_eq!(age["pass"], false, "{action}");
    }
    assert_eq!(app.sim.snapshot_state().to_json(), before);

    // A fresh snapshot: the others run, the exempted key does not.
    app.snapshot().await;
    let fresh = serde_json::to_value(app.cleanup(true).await).unwrap();
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
    let key = app
        .sim
        .snapshot_state()
        .api_keys()
        .into_iter()
        .find(|k| k["id"] == s.key.as_str())
        .unwrap();
    assert_eq!(key["status"], "active");
}

// ---- Guards that cannot be tricked: in-process jobs over TCP, driven by a ManualClock ----------

mod guards {
    use chrono::{DateTime, Duration as Span, Utc};
    use orgwarden::cli::{cleanup_exit_code, EXIT_GUARD};
    use orgwarden::jobs::{self, CleanupSummary};
    use orgwarden::store::ActionStatus;
    use orgwarden_sim::{Faults, SimHandle};

    use crate::app::TestApp;

    fn start() -> DateTime<Utc> {
        TestApp::start()
    }

    /// A [`TestApp`] set up for remediation.
    struct Rig(TestApp);

    impl std::ops::Deref for Rig {
        type Target = TestApp;
        fn deref(&self) -> &TestApp {
            &self.0
        }
    }

    impl std::ops::DerefMut for Rig {
        fn deref_mut(&mut self) -> &mut TestApp {
            &mut self.0
        }
    }

    impl Rig {
        /// Enforce, every action opted in, limits wide open; `remediation` lines are added to
        /// `[remediation]` (the grace defaults, 24 h and 2 snapshots, hold unless overridden) and
        /// `rules` at the end.
        async fn new(remediation: &str, rules: &str) -> Rig {
            Rig(TestApp::new(&format!(
                "[remediation]\nmode = \"enforce\"\nmax_fraction = 1.0\nmax_actions_per_run = 1000\n\
                 {remediation}\n\n\
                 [rules.stale_invites]\nremediate = true\nmax_pending_days = 7\n\
                 [rules.orphaned_keys]\nremediate = true\n{rules}\n"
            ))
            .await)
        }

        /// `cleanup --apply`, in process: the summary and the exit code the CLI would return.
        async fn apply(&mut self) -> (CleanupSummary, u8) {
            let summary = jobs::cleanup_job(&mut self.ctx(), true)
                .await
                .expect("cleanup");
            let code = cleanup_exit_code(&summary);
            (summary, code)
        }

        fn organization(&self) -> String {
            self.sim.snapshot_state().to_json()
        }

        fn trail(&self) -> Vec<orgwarden::store::ActionRecord> {
            self.store.actions_since(None).unwrap()
        }

        fn suspect(&self, run: i64) -> Option<String> {
            self.store.run(run).unwrap().unwrap().suspect
        }
    }

    /// An orphaned key (its creator left) and a stale pending invite: two findings to act on.
    fn seed(sim: &SimHandle) -> (String, String) {
        sim.with_state(|s| {
            let now = s.now();
            let invite = s.add_invite("late@example.com", "user", now - Span::days(10));
            let leaver = s.add_user("leaver@example.com", "Leaver", "user", now - Span::days(99));
            let key = s.add_api_key(
                "leaver-ci",
                None,
                Some(&leaver),
                "active",
                now - Span::days(9),
            );
            assert!(s.remove_user(&leaver));
            (invite, key)
        })
    }

    fn plan_json(summary: &CleanupSummary) -> serde_json::Value {
        serde_json::to_value(&summary.plan).unwrap()
    }

    fn key_status(sim: &SimHandle, key: &str) -> String {
        sim.snapshot_state()
            .api_keys()
            .into_iter()
            .find(|k| k["id"] == key)
            .unwrap()["status"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[tokio::test]
    async fn consecutive_empty_member_lists_change_nothing_and_exit_2_every_time() {
        let mut rig = Rig::new(
            "min_finding_age = \"0s\"\nmin_consecutive_snapshots = 1",
            "",
        )
        .await;
        seed(&rig.sim);
        let first = rig.snapshot().await;
        assert_eq!(rig.suspect(first), None);
        rig.sim.set_faults(Faults {
            empty_members: true,
            ..Faults::default()
        });
        let before = rig.organization();
        // The old lapse: the second empty list compared 0 → 0 with the first and passed.
        for n in 1..=3 {
            rig.advance(Span::hours(1));
            let run = rig.snapshot().await;
            assert_eq!(
                rig.suspect(run).as_deref(),
                Some("the snapshot has no members at all"),
                "empty list {n} is stored, marked suspect"
            );
            let (summary, code) = rig.apply().await;
            assert_eq!(code, EXIT_GUARD, "empty list {n}");
            assert!(summary.plan.suspended.is_some());
            assert!(
                summary.executed.is_empty(),
                "empty list {n}: {:?}",
                summary.executed
            );
            assert!(summary.plan.actions.iter().all(|a| !a.eligible));
            let guards: Vec<_> = summary
                .plan
                .guard_findings
                .iter()
                .map(|f| f.subject_id.as_str())
                .collect();
            assert!(guards.contains(&"plausibility"), "{guards:?}");
            // The baseline is still the plausible first snapshot, never an empty one.
            assert!(
                guards.contains(&"population_drop"),
                "empty list {n}: {guards:?}"
            );
        }
        assert_eq!(rig.organization(), before, "zero mutations");
        assert!(rig.trail().is_empty(), "not even a planned row");
        // `history` shows it.
        let history =
            orgwarden::output::render(orgwarden::output::Format::Table, &rig.store.runs().unwrap());
        assert!(history.contains("SUSPECT"), "{history}");
        assert!(history.contains("no members at all"), "{history}");
    }

    #[tokio::test]
    async fn members_without_an_admin_are_implausible() {
        let mut rig = Rig::new(
            "min_finding_age = \"0s\"\nmin_consecutive_snapshots = 1",
            "",
        )
        .await;
        seed(&rig.sim);
        rig.snapshot().await;
        rig.sim.with_state(|s| {
            let admins: Vec<String> = s
                .users()
                .iter()
                .filter(|u| {
                    ["admin", "owner", "primary_owner"].contains(&u["role"].as_str().unwrap())
                })
                .map(|u| u["id"].as_str().unwrap().to_owned())
                .collect();
            assert!(!admins.is_empty());
            for id in admins {
                assert!(s.set_user_role(&id, "user"));
            }
        });
        let before = rig.organization();
        rig.advance(Span::hours(1));
        let run = rig.snapshot().await;
        let why = rig.suspect(run).expect("suspect");
        assert!(why.contains("members but no admin"), "{why}");
        let (summary, code) = rig.apply().await;
        assert_eq!(code, EXIT_GUARD);
        assert!(summary.executed.is_empty());
        assert_eq!(rig.organization(), before);
    }

    #[tokio::test]
    async fn a_plausible_snapshot_ends_the_suspension() {
        let mut rig = Rig::new("", "").await;
        let (invite, key) = seed(&rig.sim);
        rig.snapshot().await;
        let (summary, code) = rig.apply().await;
        assert_eq!(
            (code, summary.executed.len()),
            (0, 0),
            "grace holds everything back"
        );
        rig.sim.set_faults(Faults {
            empty_members: true,
            ..Faults::default()
        });
        for _ in 0..2 {
            rig.advance(Span::hours(13));
            rig.snapshot().await;
            assert_eq!(rig.apply().await.1, EXIT_GUARD);
        }
        // The API answers properly again, a day after the findings were first seen.
        rig.sim.set_faults(Faults::default());
        rig.advance(Span::hours(1));
        rig.snapshot().await;
        let (summary, code) = rig.apply().await;
        assert_eq!(
            summary.plan.suspended, None,
            "{:?}",
            summary.plan.guard_findings
        );
        assert_eq!(code, 0, "{:?}", summary.executed);
        let done: Vec<_> = summary
            .executed
            .iter()
            .filter(|e| e.status == ActionStatus::Succeeded)
            .map(|e| e.subject_id.as_str())
            .collect();
        assert!(
            done.contains(&key.as_str()),
            "{done:?} {}",
            orgwarden::output::render(orgwarden::output::Format::Table, &summary.plan.actions)
        );
        assert!(done.contains(&invite.as_str()), "{done:?}");
        assert_eq!(key_status(&rig.sim, &key), "inactive");
    }

    #[tokio::test]
    async fn accept_baseline_resumes_after_a_real_drop_and_is_in_the_trail() {
        let mut rig = Rig::new(
            "min_finding_age = \"0s\"\nmin_consecutive_snapshots = 1",
            "",
        )
        .await;
        let (_, key) = seed(&rig.sim);
        rig.snapshot().await;
        // Half the company really leaves (the admins stay): the drop guard trips.
        rig.sim.with_state(|s| {
            let leavers: Vec<String> = s
                .users()
                .iter()
                .filter(|u| u["role"] == "user" || u["role"] == "developer")
                .map(|u| u["id"].as_str().unwrap().to_owned())
                .collect();
            for id in leavers.iter().take(leavers.len() * 3 / 4) {
                assert!(s.remove_user(id));
            }
        });
        rig.advance(Span::hours(1));
        let run = rig.snapshot().await;
        assert_eq!(rig.suspect(run), None, "plausible, just smaller");
        let before = rig.organization();
        let (summary, code) = rig.apply().await;
        assert_eq!(code, EXIT_GUARD);
        assert!(summary.executed.is_empty());
        assert_eq!(rig.organization(), before);

        let accepted = jobs::accept_baseline_job(&mut rig.ctx(), run, "alice").unwrap();
        assert_eq!(accepted.accepted_by.as_deref(), Some("alice"));
        assert_eq!(accepted.accepted_at, Some(rig.clock_now()));
        let row = rig
            .trail()
            .into_iter()
            .find(|a| a.action == orgwarden::policy::Action::AcceptBaseline)
            .expect("the acceptance is in the audit trail");
        assert_eq!(row.run_id, run);
        assert!(
            row.reason.as_deref().unwrap().contains("by alice"),
            "{row:?}"
        );

        let (summary, code) = rig.apply().await;
        assert_eq!(
            summary.plan.suspended, None,
            "{:?}",
            summary.plan.guard_findings
        );
        assert!(summary.plan.guard_findings.is_empty());
        assert_eq!(code, 0, "{:?}", summary.executed);
        assert_eq!(key_status(&rig.sim, &key), "inactive");
        // Accepting a run that is not a complete snapshot is refused.
        assert!(jobs::accept_baseline_job(&mut rig.ctx(), 999, "alice").is_err());
    }

    #[tokio::test]
    async fn grace_is_time_not_just_snapshots_taken_minutes_apart() {
        let mut rig = Rig::new("", "").await;
        let (invite, key) = seed(&rig.sim);
        let first_seen = rig.clock_now();
        for _ in 0..3 {
            rig.snapshot().await;
            let (summary, code) = rig.apply().await;
            assert_eq!(code, 0);
            assert!(summary.executed.is_empty(), "{:?}", summary.executed);
            let plan = plan_json(&summary);
            let action = plan["actions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["subject_id"] == key.as_str())
                .expect("planned");
            assert_eq!(action["eligible"], false);
            let eligible_at: DateTime<Utc> =
                serde_json::from_value(action["eligible_at"].clone()).unwrap();
            assert_eq!(eligible_at, first_seen + Span::hours(24));
            rig.advance(Span::minutes(5));
        }
        let table = orgwarden::output::render(
            orgwarden::output::Format::Table,
            &rig.apply().await.0.plan.actions,
        );
        assert!(table.contains("ELIGIBLE_AT"), "{table}");
        assert!(
            table.contains(
                &(first_seen + Span::hours(24))
                    .format("%Y-%m-%d %H:%M")
                    .to_string()
            ),
            "{table}"
        );
        assert_eq!(key_status(&rig.sim, &key), "active");

        // A day later the same findings are acted on.
        rig.advance(Span::hours(24));
        rig.snapshot().await;
        let (summary, code) = rig.apply().await;
        assert_eq!(code, 0, "{:?}", summary.executed);
        assert_eq!(key_status(&rig.sim, &key), "inactive");
        assert!(summary.executed.iter().any(|e| e.subject_id == invite));
    }

    #[tokio::test]
    async fn a_401_after_the_first_action_stops_the_run() {
        let mut rig = Rig::new(
            "min_finding_age = \"0s\"\nmin_consecutive_snapshots = 1",
            "",
        )
        .await;
        seed(&rig.sim);
        rig.sim.with_state(|s| {
            let now = s.now();
            for n in 0..3 {
                s.add_invite(
                    &format!("stale{n}@example.com"),
                    "user",
                    now - Span::days(20),
                );
            }
        });
        rig.snapshot().await;
        // The first action's re-read and call pass; then the key is revoked.
        rig.sim.set_faults(Faults {
            revoke_key_after: Some(2),
            ..Faults::default()
        });
        let served = rig.sim.requests_served();
        let (summary, code) = rig.apply().await;
        assert_eq!(code, 1, "{:?}", summary.executed);
        let stopped = summary.stopped.as_deref().expect("the run says it stopped");
        assert!(stopped.contains("refused the key"), "{stopped}");
        assert!(summary.executed.len() >= 4, "{:?}", summary.executed);
        assert_eq!(summary.executed[0].status, ActionStatus::Succeeded);
        // The re-read that met the 401 is a failure; nothing after it is attempted.
        assert_eq!(summary.executed[1].status, ActionStatus::Failed);
        assert!(summary.executed[1]
            .reason
            .as_deref()
            .unwrap()
            .contains("could not read it again"));
        for later in &summary.executed[2..] {
            assert_eq!(later.status, ActionStatus::Skipped);
            assert_eq!(
                later.reason.as_deref(),
                Some(orgwarden::remediate::KEY_REFUSED)
            );
        }
        // Two requests for the first action, one refused re-read, and nothing more.
        assert_eq!(rig.sim.requests_served() - served, 3);
        let trail = rig.trail();
        assert_eq!(trail.len(), summary.executed.len());
        assert_eq!(
            trail
                .iter()
                .filter(|a| a.status == ActionStatus::Succeeded)
                .count(),
            1
        );
    }

    #[tokio::test]
    async fn a_repeated_skip_is_one_trail_row() {
        let mut rig = Rig::new(
            "min_finding_age = \"0s\"\nmin_consecutive_snapshots = 1",
            "",
        )
        .await;
        let (_, key) = seed(&rig.sim);
        rig.snapshot().await;
        // Someone renames the key after the snapshot: every re-check finds it changed.
        rig.sim
            .with_state(|s| assert!(s.set_key_name(&key, "leaver-ci (kept by ops)")));
        let mut rows = Vec::new();
        for _ in 0..3 {
            let (summary, code) = rig.apply().await;
            assert_eq!(code, 0, "a legitimate skip: {:?}", summary.executed);
            let skipped = summary
                .executed
                .iter()
                .find(|e| e.subject_id == key)
                .unwrap();
            assert_eq!(skipped.status, ActionStatus::Skipped);
            rows.push(
                rig.trail()
                    .into_iter()
                    .filter(|a| a.subject_id == key)
                    .collect::<Vec<_>>(),
            );
            rig.advance(Span::minutes(10));
        }
        assert_eq!(rows[2].len(), 1, "{:#?}", rows[2]);
        assert_eq!(rows[0], rows[2], "the row itself is unchanged");
        let checked = rig.store.action_last_checked(rows[2][0].id).unwrap();
        assert_eq!(checked, Some(rig.clock_now() - Span::minutes(10)));
        assert_eq!(key_status(&rig.sim, &key), "active");
    }

    #[tokio::test]
    async fn a_re_invite_after_the_last_day_is_a_finding_never_acted_on() {
        let dir = tempfile::tempdir().unwrap();
        let roster = dir.path().join("roster.csv");
        let last_day = (start() - Span::days(10)).format("%Y-%m-%d").to_string();
        std::fs::write(
            &roster,
            format!("email,last_day\ncarol@example.com,{last_day}\n"),
        )
        .unwrap();
        let mut rig = Rig::new(
            "min_finding_age = \"0s\"\nmin_consecutive_snapshots = 1",
            &format!(
                "[rules.offboarding_roster]\nremediate = true\nroster_csv = \"{}\"\n",
                roster.display()
            ),
        )
        .await;
        let invite = rig.sim.with_state(|s| {
            let now = s.now();
            s.add_invite("carol@example.com", "user", now - Span::days(2))
        });
        rig.snapshot().await;
        let (summary, code) = rig.apply().await;
        assert_eq!(code, 0);
        let finding = summary
            .audit
            .result
            .findings
            .iter()
            .find(|f| f.subject_id == invite)
            .expect("the re-invite is a finding");
        assert_eq!(finding.rule, "offboarding_roster");
        assert_eq!(finding.action, orgwarden::policy::Action::Review);
        let re_invited = (start() - Span::days(2)).format("%Y-%m-%d");
        assert_eq!(
            finding.evidence,
            format!(
                "re-invited on {re_invited}, after their last day on {last_day}; confirm the \
                 re-hire or remove the person from the roster"
            )
        );
        assert!(summary.executed.iter().all(|e| e.subject_id != invite));
        assert!(rig
            .sim
            .snapshot_state()
            .invites()
            .iter()
            .any(|i| i["id"] == invite.as_str() && i["status"] == "pending"));
    }

    impl Rig {
        fn clock_now(&self) -> DateTime<Utc> {
            self.now()
        }
    }
}
