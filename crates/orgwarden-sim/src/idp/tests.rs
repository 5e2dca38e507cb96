//! The Okta and Graph simulators over real TCP, with `reqwest` as the client.

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{json, Value};

use super::graph::*;
use super::okta::*;
use super::*;
use crate::{DirectoryEntry, DirectoryState, SeedSizes, SimOptions};

async fn sim() -> SimHandle {
    SimHandle::start_local(SimOptions {
        sizes: SeedSizes {
            members: 300,
            invites: 30,
            ..SeedSizes::default()
        },
        now: Some("2026-01-01T00:00:00Z".parse().expect("time")),
        ..SimOptions::default()
    })
    .await
    .expect("simulator starts")
}

struct Got {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn got(r: reqwest::Response) -> Got {
    Got {
        status: r.status(),
        headers: r.headers().clone(),
        body: r.json().await.unwrap_or(Value::Null),
    }
}

async fn get(url: &str, auth: &str) -> Got {
    let request = reqwest::Client::new()
        .get(url)
        .header("authorization", auth);
    got(request.send().await.expect("request")).await
}

async fn post_form(url: &str, form: &[(&str, &str)]) -> Got {
    let request = reqwest::Client::new().post(url).form(form);
    got(request.send().await.expect("request")).await
}

fn next(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.ends_with("rel=\"next\""))
        .map(|v| v[1..v.find('>').expect("link")].to_string())
}

/// Every page of an Okta list, following `Link: rel="next"`.
async fn okta_all(first: String, auth: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut url = Some(first);
    while let Some(u) = url.take() {
        let got = get(&u, auth).await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.body);
        out.extend(got.body.as_array().expect("array").iter().cloned());
        url = next(&got.headers);
    }
    out
}

fn sign(claims: &Value, pem: &str) -> String {
    let der = pem_body(pem).expect("pem");
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&der).expect("key");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let input = format!(
        "{}.{}",
        b64.encode(json!({"alg": "RS256"}).to_string()),
        b64.encode(claims.to_string())
    );
    let mut sig = vec![0; pair.public().modulus_len()];
    pair.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .expect("sign");
    format!("{input}.{}", b64.encode(sig))
}

#[tokio::test]
async fn okta_lists_every_page_and_leaves_deprovisioned_users_to_a_search() {
    let h = sim().await;
    let okta = OktaSim::start_local(&h, OktaOptions::default())
        .await
        .expect("okta");
    let auth = format!("SSWS {DEMO_OKTA_TOKEN}");
    let base = okta.base_url();
    let listed = okta_all(format!("{base}/api/v1/users?limit=7"), &auth).await;
    let deprovisioned = okta_all(
        format!("{base}/api/v1/users?limit=50&search=status%20eq%20%22DEPROVISIONED%22"),
        &auth,
    )
    .await;
    let dir = h.snapshot_state().directory();
    let gone =
        |s: DirectoryState| matches!(s, DirectoryState::Deprovisioned | DirectoryState::Deleted);
    assert_eq!(listed.len(), dir.iter().filter(|e| !gone(e.state)).count());
    assert_eq!(deprovisioned.len(), dir.len() - listed.len());
    assert!(deprovisioned.iter().all(|u| u["status"] == "DEPROVISIONED"));
    let ids: HashSet<_> = listed
        .iter()
        .chain(&deprovisioned)
        .map(|u| u["id"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(ids.len(), dir.len(), "no user twice, none missing");
    let alias = dir
        .iter()
        .find(|e| !e.aliases.is_empty())
        .expect("an alias");
    let user = listed
        .iter()
        .chain(&deprovisioned)
        .find(|u| u["profile"]["email"] == alias.email.as_str())
        .expect("listed");
    assert_eq!(user["profile"]["secondEmail"], alias.aliases[0].as_str());

    let suspended = okta_all(
        format!("{base}/api/v1/users?filter=status%20eq%20%22SUSPENDED%22"),
        &auth,
    )
    .await;
    let expected = dir
        .iter()
        .filter(|e| e.state == DirectoryState::Suspended)
        .count();
    assert_eq!(suspended.len(), expected);
    let bad = get(
        &format!("{base}/api/v1/users?search=status%20like%20%22X%22"),
        &auth,
    )
    .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["errorCode"], "E0000031");
    for key in ["errorSummary", "errorLink", "errorId", "errorCauses"] {
        assert!(bad.body.get(key).is_some(), "{key} in {}", bad.body);
    }
}

#[tokio::test]
async fn okta_refuses_bad_credentials_and_limits_the_rate() {
    let h = sim().await;
    let okta = OktaSim::start_local(&h, OktaOptions::default())
        .await
        .expect("okta");
    let base = okta.base_url();
    let wrong = get(&format!("{base}/api/v1/users"), "SSWS nope").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong.body["errorCode"], "E0000011");
    okta.set_rate_limit(2, Duration::from_secs(60));
    let auth = format!("SSWS {DEMO_OKTA_TOKEN}");
    let first = get(&format!("{base}/api/v1/users?limit=1"), &auth).await;
    assert_eq!(first.headers["x-rate-limit-limit"], "2");
    assert_eq!(first.headers["x-rate-limit-remaining"], "1");
    let reset: u64 = first.headers["x-rate-limit-reset"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset > 1_700_000_000, "epoch seconds");
    get(&format!("{base}/api/v1/users?limit=1"), &auth).await;
    let limited = get(&format!("{base}/api/v1/users?limit=1"), &auth).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.body["errorCode"], "E0000047");
    assert_eq!(limited.headers["x-rate-limit-remaining"], "0");
}

#[tokio::test]
async fn okta_issues_tokens_for_a_signed_client_assertion_only() {
    let h = sim().await;
    let okta = OktaSim::start_local(&h, OktaOptions::default())
        .await
        .expect("okta");
    let base = okta.base_url();
    let token_url = format!("{base}/oauth2/v1/token");
    let now = std::time::SystemTime::UNIX_EPOCH
        .elapsed()
        .unwrap()
        .as_secs() as i64;
    let claims = |jti: &str| {
        json!({"iss": DEMO_OKTA_CLIENT_ID, "sub": DEMO_OKTA_CLIENT_ID, "aud": token_url,
               "iat": now, "exp": now + 300, "jti": jti})
    };
    let ask = |assertion: String| {
        let token_url = token_url.clone();
        async move {
            post_form(
                &token_url,
                &[
                    ("grant_type", "client_credentials"),
                    ("scope", "okta.users.read okta.apps.read"),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", assertion.as_str()),
                ],
            )
            .await
        }
    };
    let ok = ask(sign(&claims("a"), DEMO_PRIVATE_KEY_PEM)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    assert_eq!(ok.body["token_type"], "Bearer");
    let bearer = format!("Bearer {}", ok.body["access_token"].as_str().unwrap());
    let apps = get(
        &format!("{base}/api/v1/apps/{OKTA_CLAUDE_APP_ID}/users"),
        &bearer,
    )
    .await;
    assert_eq!(apps.status, StatusCode::OK);
    let assigned = h
        .snapshot_state()
        .directory()
        .iter()
        .filter(|e| e.assigned)
        .count();
    let all = okta_all(
        format!("{base}/api/v1/apps/{OKTA_CLAUDE_APP_ID}/users?limit=20"),
        &bearer,
    )
    .await;
    assert_eq!(all.len(), assigned);
    let other = get(&format!("{base}/api/v1/apps/0oaother/users"), &bearer).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert_eq!(other.body["errorCode"], "E0000007");

    let replay = ask(sign(&claims("a"), DEMO_PRIVATE_KEY_PEM)).await;
    assert_eq!(
        replay.status,
        StatusCode::UNAUTHORIZED,
        "a jti is used once"
    );
    let mut tampered = sign(&claims("b"), DEMO_PRIVATE_KEY_PEM);
    let at = tampered.rfind('.').expect("jwt") + 1;
    let flipped = if tampered[at..].starts_with('A') {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(at..at + 1, flipped);
    let bad = ask(tampered).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bad.body["error"], "invalid_client");
    okta.expire_tokens();
    let expired = get(&format!("{base}/api/v1/users"), &bearer).await;
    assert_eq!(expired.status, StatusCode::UNAUTHORIZED);
}

async fn graph_token(base: &str, secret: &str) -> Got {
    post_form(
        &format!("{base}/{DEMO_TENANT_ID}/oauth2/v2.0/token"),
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DEMO_GRAPH_CLIENT_ID),
            ("client_secret", secret),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await
}

/// The `Authorization` value of a token the simulator issues for the demo credentials.
async fn graph_auth(base: &str) -> String {
    let ok = graph_token(base, DEMO_GRAPH_CLIENT_SECRET).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    format!("Bearer {}", ok.body["access_token"].as_str().unwrap())
}

async fn graph_all(first: String, auth: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut url = Some(first);
    while let Some(u) = url.take() {
        let got = get(&u, auth).await;
        assert_eq!(got.status, StatusCode::OK, "{}", got.body);
        out.extend(got.body["value"].as_array().expect("value").iter().cloned());
        url = got.body["@odata.nextLink"].as_str().map(str::to_string);
    }
    out
}

#[tokio::test]
async fn graph_pages_users_deleted_users_and_assignments() {
    let h = sim().await;
    let graph = GraphSim::start_local(&h, GraphOptions::default())
        .await
        .expect("graph");
    let base = graph.base_url();
    let bad = graph_token(&base, "wrong").await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(bad.body["error_description"]
        .as_str()
        .unwrap()
        .starts_with("AADSTS7000215"));
    let auth = graph_auth(&base).await;
    let none = get(&format!("{base}/v1.0/users"), "").await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.body["error"]["code"], "InvalidAuthenticationToken");
    assert!(none.body["error"]["innerError"]["request-id"].is_string());

    let select =
        "id,mail,userPrincipalName,proxyAddresses,accountEnabled,otherMails,deletedDateTime";
    let users = graph_all(format!("{base}/v1.0/users?$select={select}&$top=9"), &auth).await;
    let deleted = graph_all(
        format!("{base}/v1.0/directory/deletedItems/microsoft.graph.user?$select={select}&$top=9"),
        &auth,
    )
    .await;
    let dir = h.snapshot_state().directory();
    let count = |f: &dyn Fn(&DirectoryEntry) -> bool| dir.iter().filter(|e| f(e)).count();
    assert_eq!(users.len(), count(&|e| e.state != DirectoryState::Deleted));
    assert_eq!(
        deleted.len(),
        count(&|e| e.state == DirectoryState::Deleted)
    );
    assert!(deleted.iter().all(|u| u["deletedDateTime"].is_string()));
    let disabled = users
        .iter()
        .filter(|u| u["accountEnabled"] == false)
        .count();
    assert_eq!(
        disabled,
        count(&|e| !e.state.is_active() && e.state != DirectoryState::Deleted)
    );
    assert!(
        users.iter().all(|u| u.as_object().unwrap().len() == 7),
        "only the selection"
    );
    let plain = get(&format!("{base}/v1.0/users?$top=1"), &auth).await;
    assert!(
        plain.body["value"][0].get("accountEnabled").is_none(),
        "not a default property"
    );
    let too_big = get(&format!("{base}/v1.0/users?$top=1000"), &auth).await;
    assert_eq!(too_big.status, StatusCode::BAD_REQUEST);

    let assigned = graph_all(
        format!("{base}/v1.0/servicePrincipals/{GRAPH_CLAUDE_SP_ID}/appRoleAssignedTo?$top=15"),
        &auth,
    )
    .await;
    assert_eq!(assigned.len(), count(&|e| e.assigned));
    assert!(
        assigned[0]["resourceDisplayName"].is_string(),
        "{}",
        assigned[0]
    );
    // `$select` keeps only the properties it names (case-insensitive), as Graph does.
    let selected = graph_all(
        format!(
            "{base}/v1.0/servicePrincipals/{GRAPH_CLAUDE_SP_ID}/appRoleAssignedTo\
             ?$select=principalId,PRINCIPALTYPE&$top=15"
        ),
        &auth,
    )
    .await;
    assert_eq!(selected.len(), assigned.len());
    for (one, full) in selected.iter().zip(&assigned) {
        let keys: Vec<&String> = one.as_object().expect("an object").keys().collect();
        assert_eq!(keys, ["principalId", "principalType"], "{one}");
        assert_eq!(one["principalId"], full["principalId"]);
        assert_eq!(one["principalType"], "User");
    }
    let missing = get(
        &format!("{base}/v1.0/servicePrincipals/nope/appRoleAssignedTo"),
        &auth,
    )
    .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn graph_throttles_with_retry_after_and_injects_faults() {
    let h = sim().await;
    let graph = GraphSim::start_local(
        &h,
        GraphOptions {
            rps: Some(1),
            ..GraphOptions::default()
        },
    )
    .await
    .expect("graph");
    let base = graph.base_url();
    let auth = graph_auth(&base).await;
    assert_eq!(
        get(&format!("{base}/v1.0/users"), &auth).await.status,
        StatusCode::OK
    );
    let throttled = get(&format!("{base}/v1.0/users"), &auth).await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.headers["retry-after"], "1");
    assert_eq!(throttled.body["error"]["code"], "TooManyRequests");
    graph.set_rps(None);
    graph.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    let failed = get(&format!("{base}/v1.0/users"), &auth).await;
    assert!(failed.status.is_server_error());
    assert!(failed.body["error"]["code"].is_string());
}

#[tokio::test]
async fn graph_serves_a_page_again_from_memory_until_the_directory_changes() {
    let h = sim().await;
    let graph = GraphSim::start_local(&h, GraphOptions::default())
        .await
        .expect("graph");
    let base = graph.base_url();
    let auth = graph_auth(&base).await;
    let url = format!(
        "{base}/v1.0/directory/deletedItems/microsoft.graph.user?$select=id,deletedDateTime&$top=3"
    );
    let first = get(&url, &auth).await;
    assert_eq!(first.status, StatusCode::OK);
    assert!(first.body["value"][0]["deletedDateTime"].is_string());
    assert_eq!(get(&url, &auth).await.body, first.body, "the same page");
    // Another query is another page, not the one kept for the first.
    let other = get(&url.replace("$top=3", "$top=2"), &auth).await;
    assert_eq!(other.body["value"].as_array().map(Vec::len), Some(2));
    // A kept page still goes through fault injection.
    graph.set_faults(Faults {
        malformed_rate: 1.0,
        ..Faults::default()
    });
    let broken = reqwest::Client::new()
        .get(&url)
        .header("authorization", &auth)
        .send()
        .await
        .expect("request");
    assert_eq!(broken.status(), StatusCode::OK);
    let text = broken.text().await.unwrap_or_default();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
    graph.set_faults(Faults::default());
    // The directory's times follow the clock: a day later the same request is rendered again.
    h.set_now("2026-01-02T00:00:00Z".parse().expect("time"));
    let later = get(&url, &auth).await;
    assert_eq!(later.status, StatusCode::OK);
    assert_ne!(later.body, first.body, "a page of the changed directory");
    assert_eq!(
        later.body["value"][0]["id"], first.body["value"][0]["id"],
        "the same people"
    );
}
