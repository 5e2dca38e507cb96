//! Snapshots against the simulator: completeness, history, faults, crashes and the writer lock.

use std::time::Duration;

use orgwarden::admin_api::models::*;
use orgwarden::clock::SystemClock;
use orgwarden::snapshot::{run_snapshot, FetchOptions};
use orgwarden::store::{RunStatus, Store};
use orgwarden_sim::{Faults, SeedSizes, SimOptions};

use crate::helpers::*;

const FETCH: FetchOptions = FetchOptions {
    max_in_flight: 4,
    progress: false,
};

fn parse<T: serde::de::DeserializeOwned>(values: Vec<serde_json::Value>) -> Vec<T> {
    values
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect()
}

fn sorted<T: Clone, K: Ord>(items: &[T], key: impl Fn(&T) -> K) -> Vec<T> {
    let mut items = items.to_vec();
    items.sort_by_key(key);
    items
}

#[tokio::test]
async fn a_snapshot_stores_exactly_what_the_api_lists() {
    let sim = sim(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_writer(&dir.path().join("o.db"), "test", wall_now()).unwrap();
    let client = client(&sim, 7);
    let summary = run_snapshot(&client, &store, FETCH, &SystemClock)
        .await
        .unwrap();
    let state = store.state_at(summary.run_id).unwrap();
    let truth = sim.snapshot_state();

    let users: Vec<User> = parse(truth.users());
    assert_eq!(
        sorted(&state.members, |u| u.id.clone()),
        sorted(&users, |u| u.id.clone())
    );
    let invites: Vec<Invite> = parse(truth.invites());
    assert_eq!(
        sorted(&state.invites, |i| i.id.clone()),
        sorted(&invites, |i| i.id.clone())
    );
    let keys: Vec<ApiKey> = parse(truth.api_keys());
    assert_eq!(
        sorted(&state.api_keys, |k| k.id.clone()),
        sorted(&keys, |k| k.id.clone())
    );
    let workspaces: Vec<Workspace> = parse(truth.workspaces());
    assert!(
        workspaces.iter().any(|w| w.archived_at.is_some()),
        "archived workspaces are read too"
    );
    assert_eq!(
        sorted(&state.workspaces, |w| w.id.clone()),
        sorted(&workspaces, |w| w.id.clone())
    );
    let memberships: Vec<WorkspaceMember> = workspaces
        .iter()
        .flat_map(|w| parse::<WorkspaceMember>(truth.workspace_members(&w.id)))
        .collect();
    let key = |m: &WorkspaceMember| (m.workspace_id.clone(), m.user_id.clone());
    assert_eq!(
        sorted(&state.workspace_members, key),
        sorted(&memberships, key)
    );
    assert_eq!(
        state.organization.id,
        truth.organization()["id"].as_str().unwrap()
    );

    let run = store.run(summary.run_id).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Complete);
    assert_eq!(run.counts.unwrap().members, users.len() as u64);
    assert!(run.requests.unwrap() >= 5);
}

/// With several requests in flight, the key list is read in segments (a probe of one
/// workspace's keys gives the pivots): the same keys as one request at a time, none twice, at
/// every page size, and a changed key is seen as changed.
#[tokio::test]
async fn the_key_list_read_in_segments_stores_every_key_once() {
    let sim = sim(SeedSizes {
        keys: 300,
        ..small()
    })
    .await;
    let truth: Vec<ApiKey> = parse(sim.snapshot_state().api_keys());
    let expected = sorted(&truth, |k| k.id.clone());
    for page in [3, 7, 40, 1000] {
        let mut requests = Vec::new();
        for max_in_flight in [1, 4, 8] {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open_writer(&dir.path().join("o.db"), "test", wall_now()).unwrap();
            let fetch = FetchOptions {
                max_in_flight,
                progress: false,
            };
            let summary = run_snapshot(&client(&sim, page), &store, fetch, &SystemClock)
                .await
                .unwrap();
            assert_eq!(summary.counts.api_keys, truth.len() as u64);
            let state = store.state_at(summary.run_id).unwrap();
            assert_eq!(
                sorted(&state.api_keys, |k| k.id.clone()),
                expected,
                "page {page}, {max_in_flight} in flight"
            );
            requests.push(summary.requests);
        }
        if page < 1000 {
            // The probe and the segments' ends at their pivots: more requests than one chain.
            assert!(requests[1] > requests[0], "page {page}: {requests:?}");
        } else {
            // One page holds every key: nothing to split, no probe.
            assert_eq!(requests[0], requests[1], "page {page}: {requests:?}");
        }
    }
}

#[tokio::test]
async fn unchanged_snapshots_add_only_a_run_and_changes_are_diffed() {
    let sim = sim(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    let store = Store::open_writer(&path, "test", wall_now()).unwrap();
    let client = client(&sim, 1000);
    let r1 = run_snapshot(&client, &store, FETCH, &SystemClock)
        .await
        .unwrap()
        .run_id;
    store.checkpoint().unwrap();
    let size1 = std::fs::metadata(&path).unwrap().len();
    let r2 = run_snapshot(&client, &store, FETCH, &SystemClock)
        .await
        .unwrap()
        .run_id;
    store.checkpoint().unwrap();
    let size2 = std::fs::metadata(&path).unwrap().len();
    assert!(size2 - size1 < 64 * 1024, "{size1} -> {size2}");
    assert!(
        orgwarden::snapshot::diff(&store.state_at(r1).unwrap(), &store.state_at(r2).unwrap())
            .is_empty()
    );

    // Someone leaves, someone becomes admin... through the Console (direct state edits).
    let truth = sim.snapshot_state();
    let users: Vec<User> = parse(truth.users());
    let leaver = users.iter().find(|u| !u.role.is_admin()).unwrap().clone();
    let promoted = users
        .iter()
        .rev()
        .find(|u| u.role == OrgRole::Developer)
        .unwrap()
        .clone();
    let key: ApiKey = parse::<ApiKey>(truth.api_keys())
        .into_iter()
        .find(|k| k.status == ApiKeyStatus::Active)
        .unwrap();
    sim.with_state(|s| {
        assert!(s.remove_user(&leaver.id));
        assert!(s.set_user_role(&promoted.id, "admin"));
        assert!(s.set_key_status(&key.id, "inactive"));
    });
    let r3 = run_snapshot(&client, &store, FETCH, &SystemClock)
        .await
        .unwrap()
        .run_id;
    let changes =
        orgwarden::snapshot::diff(&store.state_at(r2).unwrap(), &store.state_at(r3).unwrap());
    let has = |kind: &str, change: &str, id: &str| {
        changes.iter().any(|c| {
            c.kind.as_str() == kind && c.change.as_str() == change && c.id.as_deref() == Some(id)
        })
    };
    assert!(has("member", "left", &leaver.id), "{changes:?}");
    assert!(has("member", "role_changed", &promoted.id), "{changes:?}");
    assert!(has("api_key", "status_changed", &key.id), "{changes:?}");
    // The old state is still readable exactly as it was.
    assert!(store
        .state_at(r2)
        .unwrap()
        .members
        .iter()
        .any(|m| m.id == leaver.id));
}

/// Runs a snapshot with a fault that hits mid-way and checks nothing of it is visible.
async fn failing_snapshot(faults: Faults, expect_in_error: &str) {
    let sim = sim(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_writer(&dir.path().join("o.db"), "test", wall_now()).unwrap();
    let client = client(&sim, 5);
    let good = run_snapshot(&client, &store, FETCH, &SystemClock)
        .await
        .unwrap()
        .run_id;
    sim.with_state(|s| {
        let id = parse::<User>(s.users())[0].id.clone();
        s.remove_user(&id);
    });
    sim.set_faults(faults);
    let error = run_snapshot(&client, &store, FETCH, &SystemClock)
        .await
        .unwrap_err();
    let text = format!("{error:#}");
    assert!(text.contains(expect_in_error), "{text}");
    let latest = store.latest_complete(None).unwrap().unwrap();
    assert_eq!(
        latest.id, good,
        "the previous complete snapshot is still the latest"
    );
    let runs = store.runs().unwrap();
    let failed = runs.last().unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    assert!(
        failed.error.as_deref().unwrap().contains(expect_in_error),
        "{:?}",
        failed.error
    );
    // No partial data: the versions are those of the good run only.
    assert_eq!(
        store.state_at(good).unwrap().members.len(),
        sim.snapshot_state().users().len() + 1
    );
}

#[tokio::test]
async fn server_errors_past_the_retry_budget_fail_the_run() {
    let faults = Faults {
        error_rate: 1.0,
        path_contains: Some("/api_keys".into()),
        after_requests: 3,
        ..no_faults()
    };
    failing_snapshot(faults, "reading api keys").await;
}

#[tokio::test]
async fn a_dropped_connection_fails_the_run() {
    let faults = Faults {
        drop_rate: 1.0,
        path_contains: Some("/users".into()),
        after_requests: 2,
        ..no_faults()
    };
    failing_snapshot(faults, "reading members").await;
}

#[tokio::test]
async fn a_malformed_page_fails_the_run() {
    let faults = Faults {
        malformed_rate: 1.0,
        path_contains: Some("/invites".into()),
        after_requests: 1,
        ..no_faults()
    };
    failing_snapshot(faults, "reading invites").await;
}

#[tokio::test]
async fn unauthorized_fails_the_run_and_says_so() {
    let sim = sim(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_writer(&dir.path().join("o.db"), "test", wall_now()).unwrap();
    let client = client_with_key(&sim, 1000, "sk-ant-admin01-revoked");
    let error = run_snapshot(&client, &store, FETCH, &SystemClock)
        .await
        .unwrap_err();
    assert!(orgwarden::snapshot::is_auth_error(&error));
    assert!(format!("{error:#}").contains("401"), "{error:#}");
    assert!(store.latest_complete(None).unwrap().is_none());
}

#[tokio::test]
async fn the_snapshot_command_prints_a_summary_and_fails_with_exit_1() {
    let sim = sim(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.base_url(), "");
    let (code, out, err) = run(orgwarden(&config, &["snapshot"])).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("snapshot run 1 complete"), "{out}");
    for (args, want) in [
        (
            &["history", "--format", "json"][..],
            "\"status\": \"complete\"",
        ),
        (
            &["show", "members", "--format", "csv"][..],
            "id,email,name,role,added_at",
        ),
        (
            &["show", "keys", "--format", "json"][..],
            "\"partial_key_hint\"",
        ),
        (&["show", "workspace-members"][..], "WORKSPACE_ROLE"),
    ] {
        let (code, out, err) = run(orgwarden(&config, args)).await;
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(out.contains(want), "{args:?}: {out}");
    }
    sim.with_state(|s| {
        let id = parse::<User>(s.users())
            .iter()
            .find(|u| !u.role.is_admin())
            .unwrap()
            .id
            .clone();
        s.remove_user(&id);
    });
    assert_eq!(run(orgwarden(&config, &["snapshot"])).await.0, 0);
    let (code, out, _) = run(orgwarden(&config, &["diff", "--format", "json"])).await;
    assert_eq!(code, 0);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert!(
        rows.iter()
            .any(|r| r["change"] == "left" && r["email"].is_string()),
        "{out}"
    );

    sim.set_faults(Faults {
        error_rate: 1.0,
        ..no_faults()
    });
    let (code, _, err) = run(orgwarden(&config, &["snapshot"])).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("snapshot run 3 failed"), "{err}");
}

#[tokio::test]
async fn sigkill_mid_snapshot_leaves_a_sound_database_and_an_abandoned_run() {
    let sim = sim_with(SimOptions {
        faults: Faults {
            latency: Duration::from_millis(300),
            ..no_faults()
        },
        ..SimOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_api(
        dir.path(),
        &sim.base_url(),
        "page_size = 3\nmax_in_flight = 1",
        "",
    );
    let mut child = orgwarden(&config, &["snapshot"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let db = dir.path().join("orgwarden.db");
    // Wait until the run has started and pages are being fetched (and written).
    for _ in 0..400 {
        if db.exists() && sim.requests_served() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(sim.requests_served() >= 2, "the snapshot never started");

    // A second snapshot meanwhile is refused, naming the holder.
    let (code, _, err) = run(orgwarden(&config, &["snapshot"])).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("in use by another orgwarden") && err.contains("orgwarden snapshot"),
        "{err}"
    );

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let store = Store::open_writer(&db, "test", wall_now()).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
    let runs = store.runs().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Abandoned);
    assert!(store.latest_complete(None).unwrap().is_none());
}
