//! The Admin API client against the simulator over TCP.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orgwarden::admin_api::models::*;
use orgwarden::admin_api::ApiError;
use orgwarden_sim::{Faults, SimOptions};
use serde::de::DeserializeOwned;

use crate::helpers::*;

fn truth<T: DeserializeOwned>(values: Vec<serde_json::Value>) -> Vec<T> {
    values
        .into_iter()
        .map(|v| serde_json::from_value(v).expect("simulator JSON parses as the model"))
        .collect()
}

#[tokio::test]
async fn every_list_is_read_completely_at_any_page_size() {
    let sim = sim(small()).await;
    let state = sim.snapshot_state();
    let users: Vec<User> = truth(state.users());
    let invites: Vec<Invite> = truth(state.invites());
    let workspaces: Vec<Workspace> = truth(state.workspaces());
    let keys: Vec<ApiKey> = truth(state.api_keys());
    assert!(users.len() > 20 && invites.len() > 5 && keys.len() > 20 && workspaces.len() > 2);
    for page_size in [1, 7, 1000] {
        let client = client(&sim, page_size);
        assert_eq!(
            client.users().collect_all().await.unwrap(),
            users,
            "users at {page_size}"
        );
        assert_eq!(
            client.invites().collect_all().await.unwrap(),
            invites,
            "invites at {page_size}"
        );
        assert_eq!(
            client.workspaces(true).collect_all().await.unwrap(),
            workspaces,
            "workspaces at {page_size}"
        );
        assert_eq!(
            client.api_keys().collect_all().await.unwrap(),
            keys,
            "keys at {page_size}"
        );
        for workspace in &workspaces {
            let members: Vec<WorkspaceMember> = truth(state.workspace_members(&workspace.id));
            let got = client
                .workspace_members(&workspace.id)
                .collect_all()
                .await
                .unwrap();
            assert_eq!(got, members, "members of {} at {page_size}", workspace.id);
        }
        let expected_pages = users.len().div_ceil(page_size as usize) as u64;
        let before = client.stats().requests;
        client.users().collect_all().await.unwrap();
        assert_eq!(client.stats().requests - before, expected_pages.max(1));
    }
    let org = client(&sim, 1000).organization().await.unwrap();
    assert_eq!(
        serde_json::to_value(&org).unwrap()["id"],
        state.organization()["id"]
    );
}

#[tokio::test]
async fn mutations_and_their_rule_violations() {
    let sim = sim(small()).await;
    let client = client(&sim, 1000);
    let state = sim.snapshot_state();
    let invites: Vec<Invite> = truth(state.invites());
    let users: Vec<User> = truth(state.users());
    let keys: Vec<ApiKey> = truth(state.api_keys());

    // Delete a pending invite; a non-pending one is refused with 400.
    let pending = invites
        .iter()
        .find(|i| i.status == InviteStatus::Pending)
        .unwrap();
    let answer = client.delete_invite(&pending.id).await.unwrap();
    assert_eq!(answer.value["type"], "invite_deleted");
    assert!(answer.request_id.as_deref().unwrap().starts_with("req_"));
    assert!(client
        .get_invite(&pending.id)
        .await
        .map(|i| i.status == InviteStatus::Deleted)
        .unwrap_or(true));
    let accepted = invites
        .iter()
        .find(|i| i.status != InviteStatus::Pending)
        .unwrap();
    let error = client.delete_invite(&accepted.id).await.unwrap_err();
    assert_eq!(error.status(), Some(400), "{error}");
    assert!(
        error.to_string().contains("invalid_request_error"),
        "{error}"
    );
    assert!(error.request_id().is_some());

    // Deactivate a key, rename it; archived is terminal.
    let active = keys
        .iter()
        .find(|k| k.status == ApiKeyStatus::Active)
        .unwrap();
    let update = ApiKeyUpdate {
        status: Some(ApiKeyStatus::Inactive),
        name: Some("renamed".into()),
    };
    let updated = client
        .update_api_key(&active.id, &update)
        .await
        .unwrap()
        .value;
    assert_eq!(
        (updated.status, updated.name.as_str()),
        (ApiKeyStatus::Inactive, "renamed")
    );
    let archived = ApiKeyUpdate {
        status: Some(ApiKeyStatus::Archived),
        name: None,
    };
    client.update_api_key(&active.id, &archived).await.unwrap();
    let back = ApiKeyUpdate {
        status: Some(ApiKeyStatus::Active),
        name: None,
    };
    assert_eq!(
        client
            .update_api_key(&active.id, &back)
            .await
            .unwrap_err()
            .status(),
        Some(400)
    );

    // Roles: admin is not assignable; a developer can become a user.
    let developer = users.iter().find(|u| u.role == OrgRole::Developer).unwrap();
    let user = client
        .update_user_role(&developer.id, &OrgRole::User)
        .await
        .unwrap()
        .value;
    assert_eq!(user.role, OrgRole::User);
    let error = client
        .update_user_role(&developer.id, &OrgRole::Admin)
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(400));

    // Admins cannot be removed; others can, and their keys stay as they were.
    let admin = users.iter().find(|u| u.role.is_admin()).unwrap();
    assert_eq!(
        client.remove_user(&admin.id).await.unwrap_err().status(),
        Some(400)
    );
    let keys_before = client.api_keys().collect_all().await.unwrap();
    let answer = client.remove_user(&developer.id).await.unwrap();
    assert_eq!(answer.value["type"], "user_deleted");
    assert!(client
        .get_user(&developer.id)
        .await
        .unwrap_err()
        .is_not_found());
    assert_eq!(client.api_keys().collect_all().await.unwrap(), keys_before);

    // Workspace memberships.
    let workspaces: Vec<Workspace> = truth(state.workspaces());
    let (workspace, member) = workspaces
        .iter()
        .filter(|w| w.archived_at.is_none())
        .find_map(|w| {
            let members: Vec<WorkspaceMember> = truth(state.workspace_members(&w.id));
            let member = members.into_iter().find(|m| {
                m.user_id != developer.id && m.workspace_role != WorkspaceRole::WorkspaceBilling
            })?;
            Some((w.clone(), member))
        })
        .unwrap();
    client
        .get_workspace_member(&workspace.id, &member.user_id)
        .await
        .unwrap();
    client
        .remove_workspace_member(&workspace.id, &member.user_id)
        .await
        .unwrap();
    let error = client
        .get_workspace_member(&workspace.id, &member.user_id)
        .await
        .unwrap_err();
    assert!(error.is_not_found(), "{error}");
    assert!(client
        .remove_workspace_member(&workspace.id, &member.user_id)
        .await
        .unwrap_err()
        .is_not_found());

    // Unknown ids are 404.
    assert!(client
        .get_api_key("apikey_01doesnotexist0000000000")
        .await
        .unwrap_err()
        .is_not_found());
}

#[tokio::test]
async fn rate_limit_429_is_retried_after_retry_after() {
    let sim = sim_with(SimOptions {
        rps: Some(2),
        ..SimOptions::default()
    })
    .await;
    let client = client(&sim, 1000);
    let started = Instant::now();
    for _ in 0..4 {
        client.organization().await.unwrap();
    }
    assert!(client.stats().retries >= 1, "{:?}", client.stats());
    // The simulator says `retry-after: 1` (seconds): the client waited at least that once.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

/// A server limiting to a few requests a second answers 429 to most of a burst: each call waits
/// its turn for as long as its deadline allows, even with no retries left for failures.
#[tokio::test]
async fn a_rate_limit_is_waited_out_whatever_max_retries_allows() {
    let sim = sim_with(SimOptions {
        rps: Some(3),
        ..SimOptions::default()
    })
    .await;
    let mut options =
        orgwarden::admin_api::ClientOptions::new(sim.base_url().parse().expect("base url"));
    options.max_retries = 0;
    options.max_in_flight = 4;
    options.total_deadline = Duration::from_secs(30);
    let client = orgwarden::admin_api::AdminClient::new(
        options,
        orgwarden_sim::DEMO_ADMIN_KEY.to_owned().into(),
    )
    .unwrap();
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let client = client.clone();
        calls.spawn(async move { client.organization().await });
    }
    while let Some(call) = calls.join_next().await {
        call.unwrap().unwrap();
    }
    // Ten calls against three tokens: some were turned away and asked again although no retry
    // was allowed for failures (the first 429 pauses every call, so only a few meet one).
    assert!(client.stats().retries >= 1, "{:?}", client.stats());
}

#[tokio::test]
async fn server_errors_are_retried_then_surfaced() {
    let sim = sim(small()).await;
    let client = client(&sim, 5);
    // Transient: a share of 500/529 answers is absorbed by retries.
    sim.set_faults(Faults {
        error_rate: 0.3,
        ..no_faults()
    });
    let users = client.users().collect_all().await.unwrap();
    assert_eq!(users.len(), sim.snapshot_state().users().len());
    assert!(client.stats().retries > 0);
    // Persistent: surfaced after max_retries (3) retries, i.e. 4 requests.
    sim.set_faults(Faults {
        error_rate: 1.0,
        ..no_faults()
    });
    let before = client.stats();
    let error = client.organization().await.unwrap_err();
    assert!(matches!(error.status(), Some(500 | 529)), "{error}");
    assert_eq!(client.stats().requests - before.requests, 4);
    assert!(error.request_id().is_some());
}

#[tokio::test]
async fn dropped_connections_and_malformed_bodies_are_errors() {
    let sim = sim(small()).await;
    let client = client(&sim, 1000);
    sim.set_faults(Faults {
        drop_rate: 1.0,
        ..no_faults()
    });
    let error = client.organization().await.unwrap_err();
    assert!(matches!(error, ApiError::Transport { .. }), "{error}");
    sim.set_faults(Faults {
        malformed_rate: 1.0,
        ..no_faults()
    });
    let error = client.users().collect_all().await.unwrap_err();
    assert!(
        matches!(error, ApiError::Decode { .. } | ApiError::Transport { .. }),
        "{error}"
    );
}

#[tokio::test]
async fn unauthorized_is_surfaced_at_once() {
    let sim = sim(small()).await;
    let client = client_with_key(&sim, 1000, "sk-ant-admin01-wrong");
    let error = client.users().collect_all().await.unwrap_err();
    assert_eq!(error.status(), Some(401));
    assert!(
        error.to_string().contains("authentication_error"),
        "{error}"
    );
    assert_eq!(client.stats().requests, 1, "a 401 is never retried");
}

#[tokio::test]
async fn a_repeated_cursor_is_detected() {
    use axum::{routing::get, Json, Router};
    // A broken server: every page says there is more, after the same cursor.
    let app = Router::new().route(
        "/v1/organizations/users",
        get(|| async {
            Json(serde_json::json!({
                "data": [{"id": "user_01a", "type": "user", "email": "a@example.com", "name": "A",
                          "role": "user", "added_at": "2024-10-30T23:58:27.427722Z"}],
                "has_more": true, "first_id": "user_01a", "last_id": "user_01a"
            }))
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut options =
        orgwarden::admin_api::ClientOptions::new(format!("http://{addr}").parse().unwrap());
    options.max_retries = 0;
    let client = orgwarden::admin_api::AdminClient::new(options, "k".to_owned().into()).unwrap();
    let error = client.users().collect_all().await.unwrap_err();
    assert!(matches!(error, ApiError::CursorLoop { .. }), "{error}");
    assert_eq!(client.stats().requests, 2);
}

/// A `MakeWriter` that keeps everything logged in memory.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_admin_key_never_appears_in_logs_errors_or_debug() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(captured.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let sim = sim(small()).await;
    let key = orgwarden_sim::DEMO_ADMIN_KEY;
    let client = client(&sim, 7);
    let mut seen = format!("{client:?}");
    client.users().collect_all().await.unwrap();
    sim.set_faults(Faults {
        error_rate: 1.0,
        ..no_faults()
    });
    let error = client.organization().await.unwrap_err();
    seen.push_str(&format!("{error} {error:?}"));
    sim.set_faults(no_faults());
    let wrong = client_with_key(&sim, 7, "sk-ant-admin01-a-wrong-secret");
    let error = wrong.organization().await.unwrap_err();
    seen.push_str(&format!("{error} {error:?}"));
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The capture works. (Whether the `retrying` line itself is captured depends on tracing's
    // per-callsite interest cache, which other tests running the same callsite on other threads
    // can settle before this thread's scoped subscriber exists; any client line proves capture.)
    assert!(
        logs.contains("retrying") || logs.contains("127.0.0.1"),
        "the capture works: {logs}"
    );
    for text in [&logs, &seen] {
        assert!(!text.contains(key), "admin key leaked: {text}");
        assert!(!text.contains("a-wrong-secret"), "admin key leaked: {text}");
    }
}
