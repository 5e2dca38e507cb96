//! The Google Workspace directory source against the Google Directory API simulator over TCP:
//! the whole seeded directory read through the JWT bearer grant and `users.list` pages, refusals
//! described without secrets, a rate-limit storm ridden out, a 403 rate limit retried where a
//! 403 refusal is not, a source that is down.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orgwarden::config::GoogleSettings;
use orgwarden::directory::google::{read, read_with, ReadOptions};
use orgwarden::org::{DirectoryListing, DirectoryPerson, DirectoryStatus};
use orgwarden_sim::{
    google_admin, google_test_alias, DirectoryState, Faults, SeedSizes, SimHandle, SimOptions,
};
use secrecy::SecretString;

async fn sim(members: usize) -> SimHandle {
    crate::helpers::sim_with(SimOptions {
        now: Some(crate::app::TestApp::start()),
        sizes: SeedSizes {
            members,
            ..SeedSizes::default()
        },
        ..SimOptions::default()
    })
    .await
}

fn settings(sim: &SimHandle) -> GoogleSettings {
    GoogleSettings {
        service_account_key: SecretString::from(sim.google_service_account_key()),
        subject: google_admin(),
        customer: "my_customer".to_owned(),
        api_url: sim.google_url(),
    }
}

/// Quick backoff, small pages: many pages and retries in milliseconds.
fn quick(page_size: u32) -> ReadOptions {
    ReadOptions {
        page_size,
        http: orgwarden::directory::ReadOptions {
            max_retries: 8,
            backoff_base: Duration::from_millis(5),
            backoff_cap: Duration::from_millis(50),
            request_timeout: Duration::from_secs(10),
            deadline: Duration::from_secs(30),
            max_wait: Duration::from_secs(5),
        },
    }
}

/// What the source must return for the simulator's seeded directory.
fn expected(sim: &SimHandle) -> DirectoryListing {
    let mut people: Vec<DirectoryPerson> = sim
        .snapshot_state()
        .directory()
        .into_iter()
        .map(|e| {
            let mut aliases = e.aliases.clone();
            aliases.push(google_test_alias(&e.email).to_lowercase());
            aliases.sort();
            let (status, status_since) = match e.state {
                DirectoryState::Active => (DirectoryStatus::Active, None),
                DirectoryState::Suspended => (
                    DirectoryStatus::Disabled("suspended: ADMIN".into()),
                    Some(e.state_changed),
                ),
                DirectoryState::LockedOut => (
                    DirectoryStatus::Disabled("suspended: WEB_LOGIN_REQUIRED".into()),
                    Some(e.state_changed),
                ),
                DirectoryState::Deprovisioned => {
                    (DirectoryStatus::Disabled("archived".into()), None)
                }
                DirectoryState::Deleted => (DirectoryStatus::Deleted, Some(e.state_changed)),
            };
            DirectoryPerson {
                id: e.id,
                email: e.email,
                aliases,
                status,
                status_since,
            }
        })
        .collect();
    people.sort_by(|a, b| a.email.cmp(&b.email));
    DirectoryListing {
        people,
        assigned: None,
    }
}

#[tokio::test]
async fn the_listing_is_the_seeded_directory() {
    let sim = sim(300).await;
    let listing = read_with("gw", &settings(&sim), &quick(7))
        .await
        .expect("read");
    let want = expected(&sim);
    assert_eq!(listing, want);
    let count =
        |f: fn(&DirectoryStatus) -> bool| listing.people.iter().filter(|p| f(&p.status)).count();
    assert!(count(|s| *s == DirectoryStatus::Deleted) > 0);
    assert!(count(|s| matches!(s, DirectoryStatus::Disabled(_))) > 0);
    assert!(count(|s| *s == DirectoryStatus::Active) > 0);
    // Two listings (users, then deleted users) of 7-user pages, and one token request.
    let pages = want.people.len().div_ceil(7) as u64;
    assert!(sim.google_requests_served() > pages);
    // The defaults read the same.
    assert_eq!(read("gw", &settings(&sim)).await.expect("read"), want);
}

#[tokio::test]
async fn a_bad_key_or_subject_is_a_clear_error_without_secrets() {
    let sim = sim(40).await;
    let good = settings(&sim);
    let key: serde_json::Value = serde_json::from_str(&sim.google_service_account_key()).unwrap();
    let private_key = key["private_key"].as_str().unwrap().to_owned();
    let key_body: String = private_key.lines().nth(1).unwrap().to_owned();

    let wrong_subject = GoogleSettings {
        subject: "someone.else@example.com".into(),
        ..good.clone()
    };
    let error = read_with("gw", &wrong_subject, &quick(100))
        .await
        .unwrap_err();
    assert_eq!(error.source, "gw");
    assert!(error.message.contains("invalid_grant"), "{error}");
    assert!(error.message.contains("subject"), "{error}");

    // Another key of the right shape: the signature does not verify.
    let other = orgwarden_sim::SimHandle::start_local(SimOptions {
        seed: 7,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let mut forged: serde_json::Value =
        serde_json::from_str(&other.google_service_account_key()).unwrap();
    forged["token_uri"] = key["token_uri"].clone();
    let forged_settings = GoogleSettings {
        service_account_key: SecretString::from(forged.to_string()),
        ..good.clone()
    };
    let error = read_with("gw", &forged_settings, &quick(100))
        .await
        .unwrap_err();
    assert!(error.message.contains("Invalid JWT Signature"), "{error}");

    let not_json = GoogleSettings {
        service_account_key: SecretString::from(format!("{{\"private_key\": \"{private_key}\"")),
        ..good.clone()
    };
    let broken_pem = GoogleSettings {
        service_account_key: SecretString::from(
            key.to_string()
                .replace(&key_body, &key_body[..key_body.len() - 4]),
        ),
        ..good.clone()
    };
    let plain_http = GoogleSettings {
        service_account_key: SecretString::from(
            key.to_string()
                .replace("http://127.0.0.1", "http://token.example.com"),
        ),
        ..good.clone()
    };
    for (settings, says) in [
        (&not_json, "not valid JSON"),
        (&broken_pem, "private_key"),
        (&plain_http, "must be https"),
    ] {
        let error = read_with("gw", settings, &quick(100)).await.unwrap_err();
        assert!(error.message.contains(says), "{error}");
        let text = format!("{error} {error:?}");
        assert!(!text.contains(&key_body[..40]), "the key leaked: {text}");
    }
}

#[tokio::test]
async fn a_rate_limit_storm_is_ridden_out() {
    let sim = sim(200).await;
    // Twenty requests a second, then 403 userRateLimitExceeded and 429 rateLimitExceeded in
    // turn; and three in ten users.list answers a 500 or 503.
    sim.google_set_rps(Some(20));
    sim.google_set_faults(Faults {
        error_rate: 0.3,
        path_contains: Some("/users".into()),
        ..Faults::default()
    });
    let listing = read_with("gw", &settings(&sim), &quick(5))
        .await
        .expect("read");
    assert_eq!(listing, expected(&sim));
    let pages = expected(&sim).people.len().div_ceil(5) as u64;
    assert!(
        sim.google_requests_served() > pages + 3,
        "some requests were refused and asked again"
    );
}

#[tokio::test]
async fn a_source_that_is_down_or_keeps_failing_is_an_error() {
    let sim = sim(40).await;
    let mut down = settings(&sim);
    // A port nobody listens on: bind one, then let it go.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    down.api_url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let error = read_with("gw", &down, &quick(100)).await.unwrap_err();
    assert!(error.message.contains("users.list"), "{error}");
    assert!(error.message.contains("could not connect"), "{error}");
    // However many retries a source that answers may have, a refused connection gets three.
    let mut patient = quick(100);
    patient.http.max_retries = 50;
    let error = read_with("gw", &down, &patient).await.unwrap_err();
    assert!(error.message.contains("after 4 attempts"), "{error}");

    // Every page fails after the first: no partial listing.
    sim.google_set_faults(Faults {
        error_rate: 1.0,
        path_contains: Some("/users".into()),
        after_requests: 1,
        ..Faults::default()
    });
    let error = read_with("gw", &settings(&sim), &quick(10))
        .await
        .unwrap_err();
    assert!(error.message.contains("backendError"), "{error}");
}

/// A loopback `users.list` answering its requests with `answers` (status, JSON body) in turn, the
/// last one from then on; with the number of requests it answered.
async fn scripted_users(answers: Vec<(u16, serde_json::Value)>) -> (String, Arc<AtomicUsize>) {
    crate::helpers::loopback_server(move |n| {
        let (status, body) = &answers[n.min(answers.len() - 1)];
        let body = body.to_string();
        format!(
            "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    })
    .await
}

/// Google's error envelope for a 403 with `reason`.
fn forbidden_answer(reason: &str, message: &str) -> (u16, serde_json::Value) {
    let error = serde_json::json!({"domain": "usageLimits", "reason": reason, "message": message});
    (
        403,
        serde_json::json!({"error": {"code": 403, "message": message, "errors": [error]}}),
    )
}

#[tokio::test]
async fn a_403_rate_limit_is_retried_and_a_403_refusal_fails_at_once() {
    // The token from the simulator; users.list from a loopback server with scripted answers.
    let sim = sim(5).await;
    let page = serde_json::json!({"kind": "admin#directory#users",
        "users": [{"id": "1", "primaryEmail": "Ann@Example.com", "suspended": false}]});
    let (url, served) = scripted_users(vec![
        forbidden_answer("rateLimitExceeded", "Rate Limit Exceeded"),
        (200, page),
    ])
    .await;
    let limited = GoogleSettings {
        api_url: url,
        ..settings(&sim)
    };
    let started = Instant::now();
    let listing = read_with("gw", &limited, &quick(100)).await.expect("read");
    // The users, then the deleted users (the same page, so the one person is listed deleted).
    assert_eq!(listing.people.len(), 1);
    assert_eq!(listing.people[0].email, "ann@example.com");
    assert_eq!(
        served.load(Ordering::SeqCst),
        3,
        "one retry of the first page"
    );
    // Waited for like a 429 (a second at least), not after the 5 ms backoff of a 5xx.
    assert!(started.elapsed() >= Duration::from_secs(1));

    let (url, served) = scripted_users(vec![forbidden_answer(
        "forbidden",
        "Not Authorized to access this resource/api",
    )])
    .await;
    let refused = GoogleSettings {
        api_url: url,
        ..settings(&sim)
    };
    let error = read_with("gw", &refused, &quick(100)).await.unwrap_err();
    assert!(
        error.message.contains("users.list: HTTP 403 forbidden"),
        "{error}"
    );
    assert!(error.message.contains("lack the right"), "{error}");
    assert_eq!(
        served.load(Ordering::SeqCst),
        1,
        "a refusal is not asked again"
    );
}

/// Several pages, each parsed while the next is fetched, with three in ten `users.list` answers
/// cut short or not JSON (a broken body is asked again): every person once, as seeded.
#[tokio::test]
async fn several_pages_are_read_while_parsing_and_broken_bodies_are_asked_again() {
    let sim = sim(300).await;
    sim.google_set_faults(Faults {
        malformed_rate: 0.3,
        path_contains: Some("/users".into()),
        ..Faults::default()
    });
    let want = expected(&sim);
    assert!(want.people.len() > 3 * 50, "not several pages");
    let listing = read_with("gw", &settings(&sim), &quick(50))
        .await
        .expect("read");
    assert_eq!(listing, want);
    let pages = want.people.len().div_ceil(50) as u64;
    assert!(
        sim.google_requests_served() > pages + 3,
        "some broken bodies were asked again"
    );
}

/// A page that is JSON but not a page of users fails the read, though the next page (fetched
/// while it was parsed) is fine: no partial listing.
#[tokio::test]
async fn a_page_that_is_not_a_page_of_users_fails_the_read() {
    let sim = sim(5).await;
    let first = serde_json::json!({"kind": "admin#directory#users", "nextPageToken": "p2",
        "users": [{"id": "1", "primaryEmail": "ann@example.com"}, {"id": 2}]});
    let second = serde_json::json!({"kind": "admin#directory#users",
        "users": [{"id": "3", "primaryEmail": "bob@example.com"}]});
    let (url, served) = scripted_users(vec![(200, first), (200, second)]).await;
    let broken = GoogleSettings {
        api_url: url,
        ..settings(&sim)
    };
    let error = read_with("gw", &broken, &quick(100)).await.unwrap_err();
    assert!(
        error
            .message
            .contains("the answer is not the expected JSON"),
        "{error}"
    );
    assert_eq!(
        served.load(Ordering::SeqCst),
        2,
        "the second page was fetched while the first was parsed, neither asked again"
    );
}
