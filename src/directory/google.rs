//! `type = "google"`: Google Workspace through the Admin SDK Directory API.
//!
//! A service account with domain-wide delegation signs a JWT (RS256, with `ring`) naming the
//! administrator it acts for (`sub`) and the read-only user scope, and trades it at its key file's
//! `token_uri` for an access token (the JWT bearer grant, RFC 7523). `users.list` is then read page
//! by page twice: the users that exist, then (`showDeleted=true`, which lists *only* deleted users)
//! the deleted ones.
//!
//! What a user's fields mean: `deletionTime` (or being listed as deleted) is
//! [`DirectoryStatus::Deleted`]; `suspended` is `Disabled("suspended: <suspensionReason>")`, since
//! `suspensionTime`; `archived` is `Disabled("archived")`; anything else is active. Aliases are
//! `aliases` and `nonEditableAliases`, lower-cased. A person deleted between the two reads is
//! listed once, as deleted.
//!
//! Every request goes through the shared [`Http`] loop (see `directory/http.rs`): rate limits
//! (429, or 403 `rateLimitExceeded`/`userRateLimitExceeded`/`quotaExceeded`, see
//! [`rate_limited`]), 5xx answers, broken connections and bodies are retried a bounded number of
//! times with exponential backoff and jitter (or the `Retry-After` when one is given, at least a
//! second for a rate limit), each retry logged; a refused connection fails the read in seconds;
//! the whole read has a deadline. Pages are read by [`http::all_pages`]: a fetch takes only the
//! body's `nextPageToken` (borrowed, the rest skipped) and a page's users become people while the
//! next page is fetched. Either every page arrives or the read fails. The access token
//! is cached for its lifetime (a 401 drops it and signs a new assertion once). No error or log
//! line holds the key, the JWT or the access token.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use reqwest::header::HeaderValue;
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::http::{self, clip, Failure, Fetched, Http, Text};
use super::DirectoryError;
use crate::clock::{Clock, SystemClock};
use crate::config::{check_base_url, GoogleSettings};
use crate::org::{DirectoryListing, DirectoryPerson, DirectoryStatus};

/// The scope asked for: reading users, nothing else.
pub const SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";
/// The JWT bearer grant type.
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// How a read behaves; [`Default`] is what the daemon uses.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// `maxResults` of each page (Google allows 1 to 500).
    pub page_size: u32,
    /// Retries, backoff, timeouts and the deadline, as for every HTTP source.
    pub http: super::ReadOptions,
}

impl Default for ReadOptions {
    /// Pages of 500; Google's recommended backoff (1 s doubling to 32 s, 6 retries) and a
    /// 15-minute deadline.
    fn default() -> Self {
        ReadOptions {
            page_size: 500,
            http: super::ReadOptions {
                max_retries: 6,
                backoff_base: Duration::from_secs(1),
                backoff_cap: Duration::from_secs(32),
                deadline: Duration::from_secs(15 * 60),
                ..super::ReadOptions::default()
            },
        }
    }
}

/// Reads the whole directory with the default [`ReadOptions`].
pub async fn read(
    name: &str,
    settings: &GoogleSettings,
) -> Result<DirectoryListing, DirectoryError> {
    read_with(name, settings, &ReadOptions::default()).await
}

/// Reads the whole directory: every page of the users and of the deleted users, or an error.
pub async fn read_with(
    name: &str,
    settings: &GoogleSettings,
    options: &ReadOptions,
) -> Result<DirectoryListing, DirectoryError> {
    let error = |message: String| DirectoryError {
        source: name.to_owned(),
        message,
    };
    let key = parse_key(&settings.service_account_key).map_err(error)?;
    let token_uri =
        checked_url(&key.token_uri, "the service account key's token_uri").map_err(error)?;
    let api = settings.api_url.trim_end_matches('/');
    let users_url =
        checked_url(&format!("{api}/admin/directory/v1/users"), "api_url").map_err(error)?;
    let http =
        Http::new(name, &options.http, &[api, token_uri.as_str()])?.with_rate_limit(rate_limited);
    let reader = Reader {
        http,
        key,
        subject: &settings.subject,
        token_uri,
    };
    let mut people: HashMap<String, DirectoryPerson> = HashMap::new();
    for deleted in [false, true] {
        let mut first = users_url.clone();
        first
            .query_pairs_mut()
            .append_pair("customer", &settings.customer)
            .append_pair("maxResults", &options.page_size.to_string())
            .append_pair("projection", "basic")
            .append_pair("showDeleted", if deleted { "true" } else { "false" });
        // A page's users become people while the next page is fetched.
        let parse = |body: &Bytes| {
            serde_json::from_slice::<UsersPage>(body)
                .map(|page| page.users.into_iter().map(|u| person(u, deleted)).collect())
        };
        let fetch = |url| reader.page_body(url, &first);
        let read = http::all_pages(&reader.http, first.clone(), fetch, parse);
        for person in read.await? {
            // Listed twice (deleted between the two reads): the deleted entry wins.
            if deleted || !people.contains_key(&person.id) {
                people.insert(person.id.clone(), person);
            }
        }
    }
    let mut people: Vec<DirectoryPerson> = people.into_values().collect();
    people.sort_by(|a, b| a.email.cmp(&b.email).then_with(|| a.id.cmp(&b.id)));
    Ok(DirectoryListing {
        people,
        assigned: None,
    })
}

/// The fields of a service-account key file this source uses.
#[derive(Deserialize)]
struct KeyFile {
    client_email: String,
    private_key: SecretString,
    #[serde(default)]
    private_key_id: Option<String>,
    token_uri: String,
}

/// A `users.list` page's users (its `nextPageToken` was taken by the fetch).
#[derive(Deserialize)]
struct UsersPage {
    #[serde(default)]
    users: Vec<User>,
}

/// Only a page's `nextPageToken`, borrowed from the body (the rest is checked to be JSON and
/// skipped).
#[derive(Deserialize)]
struct NextPage<'a> {
    #[serde(rename = "nextPageToken", default, borrow)]
    next_page_token: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    id: String,
    primary_email: String,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    non_editable_aliases: Vec<String>,
    #[serde(default)]
    suspended: bool,
    #[serde(default)]
    suspension_reason: Option<String>,
    #[serde(default)]
    suspension_time: Option<DateTime<Utc>>,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    deletion_time: Option<DateTime<Utc>>,
}

/// One Google user as a directory person.
fn person(user: User, listed_deleted: bool) -> DirectoryPerson {
    let email = user.primary_email.trim().to_lowercase();
    let mut aliases: Vec<String> = user
        .aliases
        .iter()
        .chain(&user.non_editable_aliases)
        .map(|a| a.trim().to_lowercase())
        .filter(|a| !a.is_empty() && *a != email)
        .collect();
    aliases.sort();
    aliases.dedup();
    let (status, status_since) = if listed_deleted || user.deletion_time.is_some() {
        (DirectoryStatus::Deleted, user.deletion_time)
    } else if user.suspended {
        let reason = user
            .suspension_reason
            .as_deref()
            .map(clip)
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "unknown".to_owned());
        (
            DirectoryStatus::Disabled(format!("suspended: {reason}")),
            user.suspension_time,
        )
    } else if user.archived {
        (DirectoryStatus::Disabled("archived".to_owned()), None)
    } else {
        (DirectoryStatus::Active, None)
    };
    DirectoryPerson {
        id: user.id,
        email,
        aliases,
        status,
        status_since,
    }
}

/// Parses the key file; the message names what is wrong, never what the file holds.
fn parse_key(text: &SecretString) -> Result<KeyFile, String> {
    serde_json::from_str::<KeyFile>(text.expose_secret()).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Data => {
                let message = e.to_string();
                // "missing field `x` at line …" names only the field; other data errors may
                // quote a value.
                match message.split(" at line").next() {
                    Some(m) if m.starts_with("missing field") => m.to_owned(),
                    _ => "a field has the wrong type".to_owned(),
                }
            }
            _ => format!("not valid JSON (line {}, column {})", e.line(), e.column()),
        };
        format!("the service account key is unusable: {what}")
    })
}

fn checked_url(text: &str, what: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("{what} {text:?} is not a URL: {e}"))?;
    check_base_url(&url).map_err(|e| format!("{what} {text:?}: {e}"))?;
    Ok(url)
}

/// The signed JWT bearer assertion: the service account acting for `subject`, read-only scope.
/// A credential: it goes into the token request's body and nowhere else.
fn sign_assertion(key: &KeyFile, subject: &str, token_uri: &Url) -> Result<String, String> {
    let now = SystemClock.now().timestamp();
    let claims = serde_json::json!({
        "iss": key.client_email,
        "sub": subject,
        "scope": SCOPE,
        "aud": token_uri.as_str(),
        "iat": now,
        "exp": now + 3600,
    });
    http::sign_jwt(&claims, &key.private_key, key.private_key_id.as_deref())
        .map_err(|m| format!("the service account key's private_key: {m}"))
}

/// One read's requests: the token exchange and the `users.list` pages.
struct Reader<'a> {
    http: Http,
    key: KeyFile,
    subject: &'a str,
    token_uri: Url,
}

impl Reader<'_> {
    /// One `users.list` page's body and the next page's URL (`first` with its `pageToken`); a
    /// body that is not JSON is asked again.
    async fn page_body(&self, url: Url, first: &Url) -> Result<Fetched<Bytes>, DirectoryError> {
        let next_url = |token: &str| {
            let mut next = first.clone();
            next.query_pairs_mut().append_pair("pageToken", token);
            next.to_string()
        };
        let (page, _) = self
            .http
            .get_parsed(
                &url,
                || self.authorization(),
                Some(&self.token_key()),
                |_, f| self.describe("users.list", f),
                |body: &Bytes| {
                    serde_json::from_slice::<NextPage<'_>>(body).map(|page| {
                        let next = page.next_page_token.filter(|t| !t.is_empty());
                        (body.clone(), next.map(|t| next_url(&t)))
                    })
                },
            )
            .await?;
        Ok(page)
    }

    /// Where the access token is cached: the token endpoint, the account, its key's id and whom
    /// it acts for (no secret).
    fn token_key(&self) -> String {
        format!(
            "google {} {} {} {}",
            self.token_uri,
            self.key.client_email,
            self.key.private_key_id.as_deref().unwrap_or(""),
            self.subject
        )
    }

    /// The bearer header: the cached token, or a new one for a freshly signed assertion.
    async fn authorization(&self) -> Result<HeaderValue, DirectoryError> {
        let request = || {
            let assertion = sign_assertion(&self.key, self.subject, &self.token_uri)
                .map_err(|m| self.http.error(m))?;
            let form = [
                ("grant_type", JWT_BEARER.to_owned()),
                ("assertion", assertion),
            ];
            Ok((self.token_uri.clone(), form))
        };
        let token = self
            .http
            .bearer_token(&self.token_key(), request, |what, f| self.describe(what, f))
            .await?;
        Ok(http::auth_header(&token, "Bearer"))
    }

    fn describe(&self, call: &str, failure: Failure) -> DirectoryError {
        self.http.error(match failure {
            Failure::Other(m) => format!("{call}: {m}"),
            Failure::Status(status, body) => {
                format!("{call}: {}", answer_message(status, body.as_bytes()))
            }
        })
    }
}

/// The reason and the message of an error answer: Google's API envelope
/// `{error: {code, message, errors: [{reason}], status}}` or the token endpoint's
/// `{error, error_description}`.
fn error_of(body: &[u8]) -> (String, String) {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let text = |v: &serde_json::Value| v.as_str().map(clip).unwrap_or_default();
    match &value["error"] {
        serde_json::Value::String(code) => (clip(code), text(&value["error_description"])),
        error => {
            let reason = Some(text(&error["errors"][0]["reason"]))
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| text(&error["status"]));
            (reason, text(&error["message"]))
        }
    }
}

/// Whether an answer is one of Google's rate limits besides a 429: a 403 whose reason says so.
fn rate_limited(status: StatusCode, body: &[u8]) -> bool {
    status == StatusCode::FORBIDDEN
        && matches!(
            error_of(body).0.as_str(),
            "rateLimitExceeded" | "userRateLimitExceeded" | "quotaExceeded"
        )
}

/// An error answer as `HTTP <code> <reason>: <message>`, with a hint at the usual causes.
fn answer_message(status: StatusCode, body: &[u8]) -> String {
    let (reason, text) = error_of(body);
    let hint = match (status.as_u16(), reason.as_str()) {
        (_, "unauthorized_client") => {
            " (give the service account's client id domain-wide delegation for the scope \
             https://www.googleapis.com/auth/admin.directory.user.readonly)"
        }
        (_, "invalid_grant") => " (check `subject`, an administrator of the domain, and the key)",
        (401, _) => " (the access token was refused)",
        (403, _) if !rate_limited(status, body) => {
            " (the administrator may lack the right to read users)"
        }
        _ => "",
    };
    let detail = match (reason.is_empty(), text.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!(" {reason}"),
        (true, false) => format!(": {text}"),
        (false, false) => format!(" {reason}: {text}"),
    };
    format!("HTTP {}{detail}{hint}", status.as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(json: serde_json::Value) -> User {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn users_map_to_statuses_and_aliases() {
        let p = person(
            user(
                serde_json::json!({"id": "1", "primaryEmail": "J.Doe@Example.com",
                "aliases": ["Jane.Doe@example.com"], "nonEditableAliases": ["J.DOE@EXAMPLE.COM.TEST-GOOGLE-A.COM", "j.doe@example.com"],
                "suspended": true, "suspensionReason": "ADMIN", "suspensionTime": "2026-11-01T00:00:00.000Z"}),
            ),
            false,
        );
        assert_eq!(p.email, "j.doe@example.com");
        assert_eq!(
            p.aliases,
            [
                "j.doe@example.com.test-google-a.com",
                "jane.doe@example.com"
            ]
        );
        assert_eq!(
            p.status,
            DirectoryStatus::Disabled("suspended: ADMIN".into())
        );
        assert!(p.status_since.is_some());
        let archived = person(
            user(serde_json::json!({"id": "2", "primaryEmail": "a@x.com", "archived": true})),
            false,
        );
        assert_eq!(
            archived.status,
            DirectoryStatus::Disabled("archived".into())
        );
        let deleted = person(
            user(
                serde_json::json!({"id": "3", "primaryEmail": "d@x.com", "deletionTime": "2026-10-01T00:00:00Z"}),
            ),
            true,
        );
        assert_eq!(deleted.status, DirectoryStatus::Deleted);
        assert_eq!(
            deleted.status_since,
            Some("2026-10-01T00:00:00Z".parse().unwrap())
        );
        let active = person(
            user(serde_json::json!({"id": "4", "primaryEmail": "b@x.com", "suspended": false})),
            false,
        );
        assert_eq!(active.status, DirectoryStatus::Active);
    }

    #[test]
    fn a_broken_key_is_described_without_its_content() {
        let secret = "-----BEGIN PRIVATE KEY-----\\nTOPSECRETMATERIAL\\n-----END PRIVATE KEY-----";
        for text in [
            format!(r#"{{"client_email": 5, "private_key": "{secret}", "token_uri": "x"}}"#),
            format!(r#"{{"private_key": "{secret}", "token_uri": "x"}}"#),
            format!(r#"{{"private_key": "{secret}"#),
        ] {
            let message = parse_key(&SecretString::from(text)).err().unwrap();
            assert!(!message.contains("TOPSECRET"), "{message}");
            assert!(
                message.starts_with("the service account key is unusable"),
                "{message}"
            );
        }
        let key = parse_key(&SecretString::from(format!(
            r#"{{"client_email": "a@b", "private_key": "{secret}", "token_uri": "https://x/token"}}"#
        )))
        .unwrap();
        let token_uri = Url::parse("https://x/token").unwrap();
        let message = sign_assertion(&key, "admin@example.com", &token_uri)
            .err()
            .unwrap();
        assert!(!message.contains("TOPSECRET"), "{message}");
        assert!(message.contains("private_key"), "{message}");
    }

    #[test]
    fn error_answers_say_whether_to_retry() {
        use super::http::{ReadOptions, Retry};
        let http = Http::new(
            "gw",
            &ReadOptions::default(),
            &["https://admin.googleapis.com"],
        )
        .unwrap()
        .with_rate_limit(rate_limited);
        let google = |status: u16, reason: &str| {
            let body = serde_json::json!({"error": {"code": status, "message": "m", "errors": [{"reason": reason, "domain": "usageLimits", "message": "m"}]}});
            let status = StatusCode::from_u16(status).unwrap();
            let body = body.to_string().into_bytes();
            (http.retry_of(status, &body), answer_message(status, &body))
        };
        assert_eq!(google(429, "rateLimitExceeded").0, Some(Retry::RateLimit));
        assert_eq!(google(403, "rateLimitExceeded").0, Some(Retry::RateLimit));
        assert_eq!(
            google(403, "userRateLimitExceeded").0,
            Some(Retry::RateLimit)
        );
        assert_eq!(google(503, "backendError").0, Some(Retry::Backoff));
        assert_eq!(google(408, "requestTimeout").0, Some(Retry::Backoff));
        assert_eq!(google(404, "notFound").0, None);
        let (retry, message) = google(403, "forbidden");
        assert_eq!(retry, None);
        assert!(message.contains("lack the right"), "{message}");
        let grant = br#"{"error":"invalid_grant","error_description":"Invalid email or User ID"}"#;
        assert_eq!(http.retry_of(StatusCode::BAD_REQUEST, grant), None);
        assert_eq!(answer_message(StatusCode::BAD_REQUEST, grant), "HTTP 400 invalid_grant: Invalid email or User ID (check `subject`, an administrator of the domain, and the key)");
        assert_eq!(
            http.retry_of(StatusCode::BAD_GATEWAY, b"<html>"),
            Some(Retry::Backoff)
        );
        // Without Google's classifier a 403 rate limit is final, as it is for other sources.
        let plain = Http::new(
            "gw",
            &ReadOptions::default(),
            &["https://admin.googleapis.com"],
        )
        .unwrap();
        let body = br#"{"error":{"code":403,"errors":[{"reason":"rateLimitExceeded"}]}}"#;
        assert_eq!(plain.retry_of(StatusCode::FORBIDDEN, body), None);
    }
}
