//! The Google simulator over real HTTP: the JWT bearer grant and its refusals, paging through the
//! seeded directory, the error envelope and the rate limit.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::{json, Value};

use super::{google_admin, GOOGLE_CLIENT_EMAIL, GOOGLE_SCOPE};
use crate::{DirectoryState, SimHandle, SimOptions};

async fn sim() -> SimHandle {
    SimHandle::start_local(SimOptions {
        now: Some("2026-11-30T08:00:00Z".parse().unwrap()),
        ..SimOptions::default()
    })
    .await
    .unwrap()
}

/// Signs `claims` with the key file's private key, as a client does.
fn sign(key_file: &str, claims: &Value) -> String {
    let key: Value = serde_json::from_str(key_file).unwrap();
    let pem = key["private_key"].as_str().unwrap();
    let der: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let pair = ring::signature::RsaKeyPair::from_pkcs8(&STANDARD.decode(der).unwrap()).unwrap();
    let head = URL_SAFE_NO_PAD.encode(json!({"alg": "RS256", "typ": "JWT"}).to_string());
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let message = format!("{head}.{body}");
    let mut sig = vec![0; pair.public().modulus_len()];
    pair.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        message.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{message}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn claims(sim: &SimHandle) -> Value {
    let now = super::wall_clock().timestamp();
    json!({
        "iss": GOOGLE_CLIENT_EMAIL,
        "sub": google_admin(),
        "scope": GOOGLE_SCOPE,
        "aud": format!("{}/token", sim.google_url()),
        "iat": now,
        "exp": now + 3600,
    })
}

async fn grant(sim: &SimHandle, jwt: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}/token", sim.google_url()))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", jwt),
        ])
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn token(sim: &SimHandle) -> String {
    let (status, body) = grant(sim, &sign(&sim.google_service_account_key(), &claims(sim))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_u64().unwrap() > 3000);
    body["access_token"].as_str().unwrap().to_owned()
}

async fn get(sim: &SimHandle, token: &str, query: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!(
            "{}/admin/directory/v1/users?{query}",
            sim.google_url()
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// Every user of the listing, following `nextPageToken`.
async fn all(sim: &SimHandle, token: &str, deleted: bool) -> (Vec<Value>, usize) {
    let (mut users, mut pages, mut next) = (Vec::new(), 0, None::<String>);
    loop {
        let mut query =
            format!("customer=my_customer&maxResults=7&projection=basic&showDeleted={deleted}");
        if let Some(t) = &next {
            query += &format!("&pageToken={}", urlencode(t));
        }
        let (status, body) = get(sim, token, &query).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["kind"], "admin#directory#users");
        pages += 1;
        users.extend(body["users"].as_array().cloned().unwrap_or_default());
        match body["nextPageToken"].as_str() {
            Some(t) => next = Some(t.to_owned()),
            None => return (users, pages),
        }
    }
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn pages_through_the_seeded_directory_active_and_deleted_apart() {
    let sim = sim().await;
    let token = token(&sim).await;
    let directory = sim.snapshot_state().directory();
    let (listed, pages) = all(&sim, &token, false).await;
    let (deleted, _) = all(&sim, &token, true).await;
    let not_deleted: Vec<_> = directory
        .iter()
        .filter(|e| e.state != DirectoryState::Deleted)
        .collect();
    assert_eq!(listed.len(), not_deleted.len());
    assert_eq!(pages, not_deleted.len().div_ceil(7));
    assert!(!deleted.is_empty(), "the seed has deleted people");
    for (user, entry) in listed.iter().zip(&not_deleted) {
        assert_eq!(user["primaryEmail"], entry.email.as_str());
        assert_eq!(user["id"], entry.id.as_str());
        assert!(user["deletionTime"].is_null());
        let suspended = matches!(
            entry.state,
            DirectoryState::Suspended | DirectoryState::LockedOut
        );
        assert_eq!(user["suspended"], suspended, "{user}");
        assert_eq!(user["suspensionReason"].is_string(), suspended);
        assert_eq!(
            user["archived"],
            entry.state == DirectoryState::Deprovisioned
        );
        let aliases: Vec<&str> = user["aliases"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        assert_eq!(aliases, entry.aliases);
        assert_eq!(
            user["nonEditableAliases"][0],
            super::google_test_alias(&entry.email).as_str()
        );
    }
    assert!(listed.iter().any(|u| u["aliases"].is_array()));
    assert!(deleted.iter().all(|u| u["deletionTime"].is_string()));
    assert_eq!(
        deleted.len(),
        directory
            .iter()
            .filter(|e| e.state == DirectoryState::Deleted)
            .count()
    );
}

#[tokio::test]
async fn the_grant_refuses_a_bad_signature_subject_scope_audience_or_time() {
    let sim = sim().await;
    let key = sim.google_service_account_key();
    let good = claims(&sim);
    let with = |field: &str, value: Value| {
        let mut c = good.clone();
        c[field] = value;
        sign(&key, &c)
    };
    let now = good["iat"].as_i64().unwrap();
    for (jwt, status, error) in [
        (
            with("sub", json!("someone@example.com")),
            400,
            "invalid_grant",
        ),
        (
            with(
                "scope",
                json!("https://www.googleapis.com/auth/gmail.readonly"),
            ),
            401,
            "unauthorized_client",
        ),
        (
            with("aud", json!("https://oauth2.googleapis.com/token")),
            400,
            "invalid_grant",
        ),
        (
            with("iss", json!("other@x.iam.gserviceaccount.com")),
            400,
            "invalid_grant",
        ),
        (with("exp", json!(now + 7200)), 400, "invalid_grant"),
        (with("iat", json!(now - 7200)), 400, "invalid_grant"),
        ("a.b.c".to_owned(), 400, "invalid_grant"),
    ] {
        let (got, body) = grant(&sim, &jwt).await;
        assert_eq!(
            (got, body["error"].as_str().unwrap()),
            (status, error),
            "{body}"
        );
    }
    // A signature by another key: the same claims, one byte of the signature changed.
    let mut forged = sign(&key, &good).into_bytes();
    let last = forged.len() - 3;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let (got, body) = grant(&sim, &String::from_utf8(forged).unwrap()).await;
    assert_eq!(got, 400);
    assert_eq!(body["error_description"], "Invalid JWT Signature.");
}

#[tokio::test]
async fn errors_use_the_google_envelope() {
    let sim = sim().await;
    let (status, body) = get(&sim, "ya29.not-a-token", "customer=my_customer").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], 401);
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(body["error"]["errors"][0]["reason"], "authError");
    let token = token(&sim).await;
    let (status, body) = get(&sim, &token, "customer=my_customer&maxResults=501").await;
    assert_eq!(
        (status, body["error"]["errors"][0]["reason"].as_str()),
        (400, Some("invalid"))
    );
    let (status, _) = get(&sim, &token, "customer=my_customer&pageToken=bogus").await;
    assert_eq!(status, 400);
    sim.google_set_rps(Some(1));
    let mut reasons = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let (status, body) = get(&sim, &token, "customer=my_customer").await;
        if status != 200 {
            reasons.insert((
                status,
                body["error"]["errors"][0]["reason"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            ));
        }
    }
    assert_eq!(
        reasons.into_iter().collect::<Vec<_>>(),
        [
            (403, "userRateLimitExceeded".to_owned()),
            (429, "rateLimitExceeded".to_owned())
        ]
    );
    sim.google_set_rps(None);
    sim.google_set_faults(crate::Faults {
        error_rate: 1.0,
        ..crate::Faults::default()
    });
    let (status, body) = get(&sim, &token, "customer=my_customer").await;
    assert!(matches!(status, 500 | 503), "{status}");
    assert_eq!(body["error"]["errors"][0]["reason"], "backendError");
}

#[tokio::test]
async fn the_key_file_is_a_service_account_key_pointing_at_the_simulator() {
    let first = sim().await;
    let key: Value = serde_json::from_str(&first.google_service_account_key()).unwrap();
    assert_eq!(key["type"], "service_account");
    assert_eq!(key["client_email"], GOOGLE_CLIENT_EMAIL);
    assert_eq!(
        key["token_uri"],
        format!("{}/token", first.google_url()).as_str()
    );
    assert!(key["private_key"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    // The same seed gives the same key.
    let again = sim().await;
    let other: Value = serde_json::from_str(&again.google_service_account_key()).unwrap();
    assert_eq!(key["private_key"], other["private_key"]);
}
