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
//! Rate limits (429, or 403 `rateLimitExceeded`/`userRateLimitExceeded`), 5xx answers, broken
//! connections and bodies are retried a bounded number of times with exponential backoff and
//! jitter (or the `Retry-After` when one is given); the whole read has a deadline. Either every page
//! arrives or the read fails. No error or log line holds the key, the JWT or the access token.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::DirectoryError;
use crate::clock::{Clock, SystemClock};
use crate::config::{check_base_url, GoogleSettings};
use crate::org::{DirectoryListing, DirectoryPerson, DirectoryStatus};

/// The scope asked for: reading users, nothing else.
pub const SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";
/// The JWT bearer grant type.
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Longest text kept from an answer for an error message.
const MAX_MESSAGE_CHARS: usize = 300;

/// How a read behaves; [`Default`] is what the daemon uses.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// `maxResults` of each page (Google allows 1 to 500).
    pub page_size: u32,
    /// Retries of one request after a rate limit, a 5xx or a broken answer.
    pub max_retries: u32,
    /// The first backoff; it doubles with each retry, up to `backoff_cap`, minus up to 25% jitter.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// One request's timeout.
    pub request_timeout: Duration,
    /// The whole read's deadline.
    pub deadline: Duration,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            page_size: 500,
            max_retries: 6,
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(32),
            request_timeout: Duration::from_secs(60),
            deadline: Duration::from_secs(15 * 60),
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
    match tokio::time::timeout(options.deadline, read_all(settings, options)).await {
        Ok(result) => result.map_err(error),
        Err(_elapsed) => Err(error(format!(
            "gave up after the deadline of {}s",
            options.deadline.as_secs()
        ))),
    }
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

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: SecretString,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsersPage {
    #[serde(default)]
    users: Vec<User>,
    #[serde(default)]
    next_page_token: Option<String>,
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

async fn read_all(
    settings: &GoogleSettings,
    options: &ReadOptions,
) -> Result<DirectoryListing, String> {
    let key = parse_key(&settings.service_account_key)?;
    let token_uri = checked_url(&key.token_uri, "the service account key's token_uri")?;
    let users_url = checked_url(
        &format!(
            "{}/admin/directory/v1/users",
            settings.api_url.trim_end_matches('/')
        ),
        "api_url",
    )?;
    let http = reqwest::Client::builder()
        .timeout(options.request_timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {}", describe(&e)))?;
    let client = Client {
        http,
        options,
        started: Instant::now(),
    };
    let assertion = sign_assertion(&key, &settings.subject, &token_uri)?;
    let token = client.token(&token_uri, &assertion).await?;
    let mut people: HashMap<String, DirectoryPerson> = HashMap::new();
    for deleted in [false, true] {
        let mut page_token: Option<String> = None;
        let mut pages = 0u64;
        loop {
            let mut url = users_url.clone();
            url.query_pairs_mut()
                .append_pair("customer", &settings.customer)
                .append_pair("maxResults", &options.page_size.to_string())
                .append_pair("projection", "basic")
                .append_pair("showDeleted", if deleted { "true" } else { "false" });
            if let Some(t) = &page_token {
                url.query_pairs_mut().append_pair("pageToken", t);
            }
            let page: UsersPage = client.users_page(url, &token).await?;
            pages += 1;
            for user in page.users {
                let person = person(user, deleted);
                // Listed twice (deleted between the two reads): the deleted entry wins.
                if deleted || !people.contains_key(&person.id) {
                    people.insert(person.id.clone(), person);
                }
            }
            match page.next_page_token {
                Some(next) if !next.is_empty() => {
                    if page_token.as_deref() == Some(next.as_str()) {
                        return Err(format!(
                            "users.list returned the same page token twice (page {pages})"
                        ));
                    }
                    page_token = Some(next);
                }
                _ => break,
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
            .map(|r| clean_text(r, 60))
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

/// The signed JWT bearer assertion: `header.claims.signature`, RS256.
fn sign_assertion(key: &KeyFile, subject: &str, token_uri: &Url) -> Result<SecretString, String> {
    let pair = rsa_key(&key.private_key)?;
    let now = SystemClock.now().timestamp();
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = &key.private_key_id {
        header["kid"] = serde_json::Value::String(kid.clone());
    }
    let claims = serde_json::json!({
        "iss": key.client_email,
        "sub": subject,
        "scope": SCOPE,
        "aud": token_uri.as_str(),
        "iat": now,
        "exp": now + 3600,
    });
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let mut signature = vec![0; pair.public().modulus_len()];
    pair.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        message.as_bytes(),
        &mut signature,
    )
    .map_err(|_| "cannot sign the token request with the service account key".to_owned())?;
    Ok(SecretString::from(format!(
        "{message}.{}",
        URL_SAFE_NO_PAD.encode(signature)
    )))
}

/// The RSA key of a PEM `PRIVATE KEY` (PKCS#8, as Google issues it) or `RSA PRIVATE KEY`.
fn rsa_key(pem: &SecretString) -> Result<ring::signature::RsaKeyPair, String> {
    let pem = pem.expose_secret();
    let pkcs1 = pem.contains("-----BEGIN RSA PRIVATE KEY-----");
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    let der = STANDARD
        .decode(body)
        .map_err(|_| "the service account key's private_key is not a PEM key".to_owned())?;
    let pair = if pkcs1 {
        ring::signature::RsaKeyPair::from_der(&der)
    } else {
        ring::signature::RsaKeyPair::from_pkcs8(&der)
    };
    pair.map_err(|e| format!("the service account key's private_key is not a usable RSA key ({e})"))
}

struct Client<'a> {
    http: reqwest::Client,
    options: &'a ReadOptions,
    started: Instant,
}

/// One failed attempt: whether to try again, after how long if the server said, and why.
struct Failure {
    retry: bool,
    wait: Option<Duration>,
    message: String,
}

impl Client<'_> {
    /// Trades the assertion for an access token.
    async fn token(
        &self,
        token_uri: &Url,
        assertion: &SecretString,
    ) -> Result<SecretString, String> {
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", JWT_BEARER)
            .append_pair("assertion", assertion.expose_secret())
            .finish();
        let answer: TokenAnswer = self
            .with_retries("token request", || {
                self.http
                    .post(token_uri.clone())
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        "application/x-www-form-urlencoded",
                    )
                    .body(body.clone())
            })
            .await?;
        Ok(answer.access_token)
    }

    async fn users_page(&self, url: Url, token: &SecretString) -> Result<UsersPage, String> {
        self.with_retries("users.list", || {
            self.http
                .get(url.clone())
                .bearer_auth(token.expose_secret())
        })
        .await
    }

    /// Sends the request until it succeeds, fails for good, or runs out of retries.
    async fn with_retries<T: serde::de::DeserializeOwned>(
        &self,
        call: &str,
        request: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<T, String> {
        let mut attempt = 0u32;
        loop {
            let failure = match request().send().await {
                // A source that is down fails its read in seconds (see `http::CONNECT_RETRIES`).
                Err(e) => Failure {
                    retry: !e.is_connect() || attempt < super::http::CONNECT_RETRIES,
                    wait: None,
                    message: describe(&e),
                },
                Ok(response) => {
                    let status = response.status().as_u16();
                    let wait = retry_after(response.headers());
                    match response.bytes().await {
                        Err(e) => Failure {
                            retry: true,
                            wait: None,
                            message: describe(&e),
                        },
                        Ok(bytes) if (200..300).contains(&status) => {
                            match serde_json::from_slice::<T>(&bytes) {
                                Ok(value) => return Ok(value),
                                Err(e) => Failure {
                                    retry: true,
                                    wait: None,
                                    message: format!(
                                        "the answer is not the expected JSON (line {}, column {})",
                                        e.line(),
                                        e.column()
                                    ),
                                },
                            }
                        }
                        Ok(bytes) => failure_of(status, &bytes, wait),
                    }
                }
            };
            let message = format!("{call}: {}", failure.message);
            if !failure.retry || attempt >= self.options.max_retries {
                return Err(match attempt {
                    0 => message,
                    _ => format!("{message} (after {} attempts)", attempt + 1),
                });
            }
            let wait = failure.wait.unwrap_or_else(|| self.backoff(attempt));
            if self.started.elapsed() + wait >= self.options.deadline {
                return Err(format!(
                    "{message} (no time left to retry before the deadline)"
                ));
            }
            attempt += 1;
            tracing::info!(call, attempt, wait_ms = wait.as_millis() as u64, error = %message, "google directory: retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// `base × 2^attempt`, capped, minus up to 25% jitter.
    fn backoff(&self, attempt: u32) -> Duration {
        let raw = self
            .options
            .backoff_base
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.options.backoff_cap);
        raw.mul_f64(1.0 - 0.25 * fastrand::f64())
    }
}

/// What an error answer means: Google's API envelope `{error: {code, message, errors, status}}`
/// or the token endpoint's `{error, error_description}`.
fn failure_of(status: u16, bytes: &[u8], wait: Option<Duration>) -> Failure {
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    let (reason, text) = match &value["error"] {
        serde_json::Value::String(code) => (
            code.clone(),
            value["error_description"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        ),
        error => (
            error["errors"][0]["reason"]
                .as_str()
                .or(error["status"].as_str())
                .unwrap_or_default()
                .to_owned(),
            error["message"].as_str().unwrap_or_default().to_owned(),
        ),
    };
    let rate_limited = status == 429
        || (status == 403
            && matches!(
                reason.as_str(),
                "rateLimitExceeded" | "userRateLimitExceeded" | "quotaExceeded"
            ));
    let hint = match (status, reason.as_str()) {
        (_, "unauthorized_client") => {
            " (give the service account's client id domain-wide delegation for the scope \
             https://www.googleapis.com/auth/admin.directory.user.readonly)"
        }
        (_, "invalid_grant") => " (check `subject`, an administrator of the domain, and the key)",
        (401, _) => " (the access token was refused)",
        (403, _) if !rate_limited => " (the administrator may lack the right to read users)",
        _ => "",
    };
    let reason = clean_text(&reason, 60);
    let text = clean_text(&text, MAX_MESSAGE_CHARS);
    let detail = match (reason.is_empty(), text.is_empty()) {
        (true, true) => String::new(),
        (false, true) => format!(" {reason}"),
        (true, false) => format!(": {text}"),
        (false, false) => format!(" {reason}: {text}"),
    };
    Failure {
        retry: rate_limited || status >= 500 || status == 408,
        wait,
        message: format!("HTTP {status}{detail}{hint}"),
    }
}

/// A `Retry-After` in seconds, at most an hour.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: f64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs.min(3600.0)))
}

/// A transport error without its URL (page tokens stay out of messages).
fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "connection broke while reading the answer"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    clean_text(&text, 500)
}

/// Control characters escaped, cut after `max_chars` characters.
fn clean_text(text: &str, max_chars: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max_chars)
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect();
    if text.chars().count() > max_chars {
        out.push('…');
    }
    out
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
        let message = rsa_key(&key.private_key).err().unwrap();
        assert!(!message.contains("TOPSECRET"), "{message}");
    }

    #[test]
    fn error_answers_say_whether_to_retry() {
        let google = |status: u16, reason: &str| {
            let body = serde_json::json!({"error": {"code": status, "message": "m", "errors": [{"reason": reason, "domain": "usageLimits", "message": "m"}]}});
            failure_of(status, body.to_string().as_bytes(), None)
        };
        assert!(google(429, "rateLimitExceeded").retry);
        assert!(google(403, "userRateLimitExceeded").retry);
        assert!(google(503, "backendError").retry);
        let forbidden = google(403, "forbidden");
        assert!(!forbidden.retry);
        assert!(
            forbidden.message.contains("lack the right"),
            "{}",
            forbidden.message
        );
        let grant = failure_of(
            400,
            br#"{"error":"invalid_grant","error_description":"Invalid email or User ID"}"#,
            None,
        );
        assert!(!grant.retry);
        assert_eq!(grant.message, "HTTP 400 invalid_grant: Invalid email or User ID (check `subject`, an administrator of the domain, and the key)");
        assert!(failure_of(502, b"<html>", None).retry);
    }
}
