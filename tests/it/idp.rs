//! The Okta and Entra ID (Microsoft Graph) sources against their simulators over TCP: the
//! listing equals what the seeded directory says, with every auth method; rate limits and
//! faults are ridden out; a refused credential or a source that is down is an error, never a
//! partial listing.

use std::time::Duration;

use orgwarden::config::{EntraSettings, OktaAuth, OktaSettings};
use orgwarden::directory::{entra, okta, ReadOptions};
use orgwarden::org::{DirectoryListing, DirectoryPerson, DirectoryStatus};
use orgwarden_sim::idp::graph::{
    DEMO_GRAPH_CLIENT_ID, DEMO_GRAPH_CLIENT_SECRET, DEMO_TENANT_ID, GRAPH_CLAUDE_SP_ID,
};
use orgwarden_sim::idp::okta::{DEMO_OKTA_CLIENT_ID, DEMO_OKTA_TOKEN, OKTA_CLAUDE_APP_ID};
use orgwarden_sim::idp::DEMO_PRIVATE_KEY_PEM;
use orgwarden_sim::{
    DirectoryEntry, DirectoryState, Faults, GraphOptions, GraphSim, OktaOptions, OktaSim,
    SeedSizes, SimHandle, SimOptions,
};
use secrecy::SecretString;

async fn sim() -> SimHandle {
    SimHandle::start_local(SimOptions {
        sizes: SeedSizes {
            members: 500,
            invites: 40,
            ..SeedSizes::default()
        },
        now: Some("2026-03-01T00:00:00Z".parse().expect("time")),
        ..SimOptions::default()
    })
    .await
    .expect("simulator starts")
}

fn fast() -> ReadOptions {
    ReadOptions {
        deadline: Duration::from_secs(60),
        request_timeout: Duration::from_secs(10),
        max_retries: 8,
        backoff_base: Duration::from_millis(5),
        backoff_cap: Duration::from_millis(40),
        max_wait: Duration::from_secs(5),
    }
}

/// The listing compared without the provider's ids, people in email order.
fn normal(mut listing: DirectoryListing) -> DirectoryListing {
    for p in &mut listing.people {
        p.id.clear();
    }
    listing.people.sort_by(|a, b| a.email.cmp(&b.email));
    listing
}

fn expected(
    dir: &[DirectoryEntry],
    status: impl Fn(&DirectoryEntry) -> (DirectoryStatus, Option<chrono::DateTime<chrono::Utc>>),
) -> DirectoryListing {
    let people = dir
        .iter()
        .map(|e| {
            let (status, status_since) = status(e);
            let mut aliases = e.aliases.clone();
            aliases.sort();
            DirectoryPerson {
                id: String::new(),
                email: e.email.clone(),
                aliases,
                status,
                status_since,
            }
        })
        .collect();
    let mut assigned: Vec<String> = dir
        .iter()
        .filter(|e| e.assigned)
        .map(|e| e.email.clone())
        .collect();
    assigned.sort();
    normal(DirectoryListing {
        people,
        assigned: Some(assigned),
    })
}

fn okta_expected(dir: &[DirectoryEntry]) -> DirectoryListing {
    expected(dir, |e| {
        let status = match e.state {
            DirectoryState::Active => DirectoryStatus::Active,
            DirectoryState::Suspended => DirectoryStatus::Disabled("SUSPENDED".into()),
            DirectoryState::LockedOut => DirectoryStatus::Disabled("LOCKED_OUT".into()),
            DirectoryState::Deprovisioned | DirectoryState::Deleted => {
                DirectoryStatus::Disabled("DEPROVISIONED".into())
            }
        };
        (status, Some(e.state_changed))
    })
}

fn entra_expected(dir: &[DirectoryEntry]) -> DirectoryListing {
    expected(dir, |e| match e.state {
        DirectoryState::Active => (DirectoryStatus::Active, None),
        DirectoryState::Deleted => (DirectoryStatus::Deleted, Some(e.state_changed)),
        _ => (
            DirectoryStatus::Disabled("accountEnabled=false".into()),
            None,
        ),
    })
}

fn okta_settings(okta: &OktaSim, auth: OktaAuth) -> OktaSettings {
    OktaSettings {
        org_url: okta.base_url(),
        auth,
        search: None,
        app_id: Some(OKTA_CLAUDE_APP_ID.to_string()),
    }
}

fn token() -> OktaAuth {
    OktaAuth::ApiToken(SecretString::from(DEMO_OKTA_TOKEN))
}

fn entra_settings(graph: &GraphSim, secret: &str) -> EntraSettings {
    EntraSettings {
        tenant_id: DEMO_TENANT_ID.to_string(),
        client_id: DEMO_GRAPH_CLIENT_ID.to_string(),
        client_secret: SecretString::from(secret),
        graph_url: graph.base_url(),
        login_url: graph.base_url(),
        service_principal_id: Some(GRAPH_CLAUDE_SP_ID.to_string()),
    }
}

#[tokio::test]
async fn okta_with_an_api_token_lists_the_seeded_directory() {
    let h = sim().await;
    let okta = OktaSim::start_local(&h, OktaOptions::default())
        .await
        .unwrap();
    let listing = okta::read_with("okta", &okta_settings(&okta, token()), &fast())
        .await
        .expect("read");
    let dir = h.snapshot_state().directory();
    assert!(dir.iter().any(|e| e.state == DirectoryState::Deprovisioned));
    assert_eq!(normal(listing), okta_expected(&dir));

    let mut suspended_only = okta_settings(&okta, token());
    suspended_only.search = Some("status eq \"SUSPENDED\"".into());
    suspended_only.app_id = None;
    let listing = okta::read_with("okta", &suspended_only, &fast())
        .await
        .unwrap();
    let suspended = dir
        .iter()
        .filter(|e| e.state == DirectoryState::Suspended)
        .count();
    assert_eq!(listing.people.len(), suspended);
    assert_eq!(listing.assigned, None);
}

#[tokio::test]
async fn okta_with_a_private_key_jwt_lists_the_same_and_caches_its_token() {
    let h = sim().await;
    let okta = OktaSim::start_local(&h, OktaOptions::default())
        .await
        .unwrap();
    let auth = OktaAuth::PrivateKeyJwt {
        client_id: DEMO_OKTA_CLIENT_ID.to_string(),
        private_key: SecretString::from(DEMO_PRIVATE_KEY_PEM),
        key_id: Some("sim".into()),
    };
    let settings = okta_settings(&okta, auth);
    let listing = okta::read_with("okta", &settings, &fast())
        .await
        .expect("read");
    assert_eq!(
        normal(listing),
        okta_expected(&h.snapshot_state().directory())
    );
    let first = okta.requests_served();
    okta::read_with("okta", &settings, &fast())
        .await
        .expect("read");
    assert_eq!(
        okta.requests_served() - first,
        first - 1,
        "the second read asks for no new token"
    );
    // A token the server no longer knows is replaced once.
    okta.expire_tokens();
    okta::read_with("okta", &settings, &fast())
        .await
        .expect("read after expiry");

    let other_key = OktaAuth::PrivateKeyJwt {
        client_id: "0oasomeoneelse".to_string(),
        private_key: SecretString::from(DEMO_PRIVATE_KEY_PEM),
        key_id: None,
    };
    let err = okta::read_with("okta", &okta_settings(&okta, other_key), &fast())
        .await
        .expect_err("unknown client");
    assert!(err.message.contains("invalid_client"), "{err}");
    assert!(!err.to_string().contains("PRIVATE KEY"), "{err}");
}

#[tokio::test]
async fn okta_waits_for_the_rate_limit_window_instead_of_failing() {
    let h = sim().await;
    let okta = OktaSim::start_local(&h, OktaOptions::default())
        .await
        .unwrap();
    okta.set_rate_limit(2, Duration::from_secs(1));
    // Spend the window so the read starts with a 429.
    let c = reqwest::Client::new();
    for _ in 0..3 {
        c.get(format!("{}/api/v1/users?limit=1", okta.base_url()))
            .header("authorization", format!("SSWS {DEMO_OKTA_TOKEN}"))
            .send()
            .await
            .unwrap();
    }
    let settings = okta_settings(&okta, token());
    let listing = okta::read_with("okta", &settings, &fast())
        .await
        .expect("read");
    assert_eq!(
        normal(listing),
        okta_expected(&h.snapshot_state().directory())
    );
}

#[tokio::test]
async fn okta_refuses_a_wrong_token_without_showing_it() {
    let h = sim().await;
    let okta = OktaSim::start_local(&h, OktaOptions::default())
        .await
        .unwrap();
    let secret = "00wrong-token-that-must-not-leak";
    let auth = OktaAuth::ApiToken(SecretString::from(secret));
    let settings = okta_settings(&okta, auth);
    assert!(!format!("{settings:?}").contains(secret));
    let err = okta::read_with("corp-okta", &settings, &fast())
        .await
        .expect_err("401");
    let text = err.to_string();
    assert!(
        text.contains("corp-okta") && text.contains("401") && text.contains("E0000011"),
        "{text}"
    );
    assert!(!text.contains(secret), "{text}");
}

#[tokio::test]
async fn transient_faults_are_ridden_out_and_a_lasting_one_is_an_error() {
    let h = sim().await;
    let okta = OktaSim::start_local(&h, OktaOptions::default())
        .await
        .unwrap();
    let settings = okta_settings(&okta, token());
    okta.set_faults(Faults {
        error_rate: 0.3,
        drop_rate: 0.1,
        malformed_rate: 0.2,
        ..Faults::default()
    });
    let listing = okta::read_with("okta", &settings, &fast())
        .await
        .expect("ridden out");
    assert_eq!(
        normal(listing),
        okta_expected(&h.snapshot_state().directory())
    );
    // The second page and everything after fail: no partial listing comes back.
    okta.set_faults(Faults {
        error_rate: 1.0,
        after_requests: 1,
        ..Faults::default()
    });
    let err = okta::read_with("okta", &settings, &fast())
        .await
        .expect_err("down after the first page");
    assert!(err.message.contains("HTTP 5"), "{err}");
}

/// Okta's pages of 200, each parsed while the next is fetched, with three in ten answers cut
/// short or not JSON (a broken body is asked again): every person once, the app's assignments.
#[tokio::test]
async fn okta_reads_several_pages_while_parsing_and_retries_broken_bodies() {
    let h = sim().await;
    let okta = OktaSim::start_local(&h, OktaOptions::default())
        .await
        .unwrap();
    let dir = h.snapshot_state().directory();
    let listed = dir
        .iter()
        .filter(|e| {
            !matches!(
                e.state,
                DirectoryState::Deprovisioned | DirectoryState::Deleted
            )
        })
        .count();
    assert!(listed > 2 * 200, "{listed} users: not three pages");
    okta.set_faults(Faults {
        malformed_rate: 0.3,
        ..Faults::default()
    });
    let before = okta.requests_served();
    let listing = okta::read_with("okta", &okta_settings(&okta, token()), &fast())
        .await
        .expect("read");
    assert_eq!(normal(listing), okta_expected(&dir));
    let pages = (listed.div_ceil(200) + 2) as u64;
    assert!(
        okta.requests_served() - before > pages,
        "some broken bodies were asked again"
    );
}

#[tokio::test]
async fn a_source_that_is_down_is_an_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let settings = OktaSettings {
        org_url: url.clone(),
        auth: token(),
        search: None,
        app_id: None,
    };
    let opts = ReadOptions {
        max_retries: 2,
        ..fast()
    };
    let err = okta::read_with("okta", &settings, &opts)
        .await
        .expect_err("down");
    assert!(err.message.contains("request failed"), "{err}");
    assert!(err.message.contains("after 3 attempts"), "{err}");
    // A refused connection is retried a few times only, whatever max_retries allows for a
    // source that answers: the audit cycle does not wait minutes for a source that is down.
    let patient = ReadOptions {
        max_retries: 50,
        ..fast()
    };
    let err = okta::read_with("okta", &settings, &patient)
        .await
        .expect_err("down");
    assert!(err.message.contains("after 4 attempts"), "{err}");
    let entra = EntraSettings {
        tenant_id: DEMO_TENANT_ID.into(),
        client_id: DEMO_GRAPH_CLIENT_ID.into(),
        client_secret: SecretString::from(DEMO_GRAPH_CLIENT_SECRET),
        graph_url: url.clone(),
        login_url: url,
        service_principal_id: None,
    };
    assert!(entra::read_with("entra", &entra, &opts).await.is_err());
    let remote = OktaSettings {
        org_url: "http://example.com".into(),
        auth: token(),
        search: None,
        app_id: None,
    };
    let err = okta::read_with("okta", &remote, &opts)
        .await
        .expect_err("plain http");
    assert!(err.message.contains("https"), "{err}");
}

/// The Graph simulator's directory read with the demo secret and [`fast`] options.
async fn entra_listing(graph: &GraphSim) -> DirectoryListing {
    entra::read_with(
        "entra",
        &entra_settings(graph, DEMO_GRAPH_CLIENT_SECRET),
        &fast(),
    )
    .await
    .expect("read")
}

#[tokio::test]
async fn entra_lists_the_seeded_directory_with_deleted_users_and_assignments() {
    let h = sim().await;
    let graph = GraphSim::start_local(&h, GraphOptions::default())
        .await
        .unwrap();
    let listing = entra_listing(&graph).await;
    let dir = h.snapshot_state().directory();
    assert!(dir.iter().any(|e| e.state == DirectoryState::Deleted));
    assert_eq!(normal(listing), entra_expected(&dir));
    // One token request, though the three lists are read side by side, and one page each.
    assert_eq!(graph.requests_served(), 4);
}

/// An organization of 2 600 members and its Graph simulator: a directory of several 999-user
/// pages.
async fn graph_of_several_pages() -> (SimHandle, GraphSim) {
    let h = SimHandle::start_local(SimOptions {
        sizes: SeedSizes {
            members: 2_600,
            invites: 100,
            ..SeedSizes::default()
        },
        now: Some("2026-03-01T00:00:00Z".parse().expect("time")),
        ..SimOptions::default()
    })
    .await
    .expect("simulator starts");
    let graph = GraphSim::start_local(&h, GraphOptions::default())
        .await
        .unwrap();
    (h, graph)
}

/// A directory of several 999-user pages, read with each page parsed while the next is fetched,
/// with a share of the answers cut short (a broken body is asked again): every person once.
#[tokio::test]
async fn entra_reads_several_pages_while_parsing_and_retries_broken_bodies() {
    let (h, graph) = graph_of_several_pages().await;
    let dir = h.snapshot_state().directory();
    let active = dir
        .iter()
        .filter(|e| e.state != DirectoryState::Deleted)
        .count();
    assert!(active > 2 * 999, "{active} users: not three pages");
    graph.set_faults(Faults {
        malformed_rate: 0.3,
        ..Faults::default()
    });
    let listing = entra_listing(&graph).await;
    assert_eq!(normal(listing), entra_expected(&dir));
}

/// The three lists are read side by side: one that fails (an unknown service principal's
/// assignments, a 404 while the users are still being read) fails the whole read, with the
/// list's path and Graph's words; the same read with the right principal lists everyone.
#[tokio::test]
async fn entra_fails_the_read_when_one_of_its_lists_fails() {
    let (h, graph) = graph_of_several_pages().await;
    let mut settings = entra_settings(&graph, DEMO_GRAPH_CLIENT_SECRET);
    settings.service_principal_id = Some("no-such-principal".into());
    let err = entra::read_with("corp-entra", &settings, &fast())
        .await
        .expect_err("404");
    let text = err.to_string();
    assert!(
        text.contains("/v1.0/servicePrincipals/no-such-principal/appRoleAssignedTo")
            && text.contains("HTTP 404")
            && text.contains("Request_ResourceNotFound"),
        "{text}"
    );
    assert_eq!(err.source, "corp-entra");
    let listing = entra_listing(&graph).await;
    assert_eq!(
        normal(listing),
        entra_expected(&h.snapshot_state().directory())
    );
}

#[tokio::test]
async fn entra_rides_out_429s_with_retry_after() {
    let h = sim().await;
    let graph = GraphSim::start_local(
        &h,
        GraphOptions {
            rps: Some(1),
            ..GraphOptions::default()
        },
    )
    .await
    .unwrap();
    let listing = entra_listing(&graph).await;
    assert_eq!(
        normal(listing),
        entra_expected(&h.snapshot_state().directory())
    );
    // Token, then three lists at one request a second: at least two 429s were answered.
    assert!(graph.requests_served() >= 6, "{}", graph.requests_served());
}

#[tokio::test]
async fn entra_refuses_a_wrong_secret_without_showing_it() {
    let h = sim().await;
    let graph = GraphSim::start_local(&h, GraphOptions::default())
        .await
        .unwrap();
    let secret = "wrong~secret~that~must~not~leak";
    let settings = entra_settings(&graph, secret);
    assert!(!format!("{settings:?}").contains(secret));
    let err = entra::read_with("corp-entra", &settings, &fast())
        .await
        .expect_err("401");
    let text = err.to_string();
    assert!(
        text.contains("401") && text.contains("AADSTS7000215"),
        "{text}"
    );
    assert!(!text.contains(secret), "{text}");
}
