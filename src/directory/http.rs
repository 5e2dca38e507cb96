//! What the HTTP directory sources (Okta, Microsoft Graph, Google Directory) share: one
//! `reqwest` client with bounded retries, a deadline for the whole read, rate-limit waits,
//! bearer tokens cached for their lifetime, RS256 JWTs (`ring`) for OAuth client assertions
//! and Google's JWT bearer grant, and one page loop ([`all_pages`]) that parses a page while the
//! next one is fetched (on this task, or on a thread of its own: [`all_pages_apart`]).
//!
//! Retries: a transport error, a 5xx, a rate limit or a 2xx whose body is not the expected JSON
//! is tried again up to [`ReadOptions::max_retries`] times (a refused connection only
//! [`CONNECT_RETRIES`] times). A rate limit is a 429, or an answer the source's classifier
//! ([`Http::with_rate_limit`]) calls one: Google's 403 `rateLimitExceeded`. The wait is the
//! answer's `Retry-After` (seconds), else, when `X-Rate-Limit-Remaining` is `0`, the time until
//! `X-Rate-Limit-Reset` (epoch seconds, measured against the answer's `Date` so a skewed local
//! clock does not matter), else, for a rate limit at least a second, otherwise an exponential
//! backoff with jitter. A success that spends the last request of a rate-limit window waits for
//! its reset before the next request. No wait goes past the deadline: the read fails instead.
//! Each retry is logged (source, attempt, wait, why). Nothing here writes a credential into an
//! error or a log.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{RequestBuilder, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::Instant;
use url::Url;

use super::DirectoryError;
use crate::clock::{Clock, SystemClock};
use crate::config::check_base_url;

/// How a directory source reads; [`ReadOptions::default`] is what the daemon uses.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Bound on the whole read, every page, retry and rate-limit wait included.
    pub deadline: Duration,
    /// Bound on one HTTP exchange.
    pub request_timeout: Duration,
    /// Further attempts of one request after a retryable failure.
    pub max_retries: u32,
    /// First backoff step without a server hint; doubles per retry up to `backoff_cap`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Longest rate-limit wait accepted from a server hint.
    pub max_wait: Duration,
}

/// Retries of a request whose connection could not be made (0.5 + 1 + 2 s with the default
/// backoff), however many `max_retries` allows for other failures.
pub(crate) const CONNECT_RETRIES: u32 = 3;

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            deadline: Duration::from_secs(30 * 60),
            request_timeout: Duration::from_secs(60),
            max_retries: 8,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(30),
            max_wait: Duration::from_secs(120),
        }
    }
}

/// Provider text (error messages) clipped and without control characters, for errors.
pub(crate) fn clip(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(300)
        .collect();
    cleaned.trim().to_string()
}

/// The HTTP side of one read.
pub(crate) struct Http {
    client: reqwest::Client,
    source: String,
    opts: ReadOptions,
    deadline: Instant,
    /// The origin every request must go to: a `next` link elsewhere is refused, so a token is
    /// never sent to another host.
    origins: Vec<String>,
    /// Whether an error answer other than a 429 is a rate limit in this source's words.
    rate_limit: fn(StatusCode, &[u8]) -> bool,
}

/// Why an error answer is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// A server error: after the backoff (or the server's hint).
    Backoff,
    /// A rate limit: after the server's hint, at least a second.
    RateLimit,
}

/// A request that failed for good.
pub(crate) enum Failure {
    /// The server answered with this (non-retryable, or retried too often) status.
    Status(StatusCode, String),
    /// Anything else, already described.
    Other(String),
}

impl Http {
    pub(crate) fn new(
        source: &str,
        opts: &ReadOptions,
        bases: &[&str],
    ) -> Result<Http, DirectoryError> {
        let err = |m: String| DirectoryError {
            source: source.to_string(),
            message: m,
        };
        let mut origins = Vec::new();
        for base in bases {
            let url = Url::parse(base).map_err(|e| err(format!("invalid URL {base:?}: {e}")))?;
            check_base_url(&url).map_err(|e| err(format!("{base}: {e}")))?;
            origins.push(url.origin().ascii_serialization());
        }
        let client = reqwest::Client::builder()
            .timeout(opts.request_timeout)
            .connect_timeout(opts.request_timeout.min(Duration::from_secs(15)))
            .user_agent(concat!("orgwarden/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| err(format!("cannot build the HTTP client: {e}")))?;
        Ok(Http {
            client,
            source: source.to_string(),
            opts: opts.clone(),
            deadline: Instant::now() + opts.deadline,
            origins,
            rate_limit: |_, _| false,
        })
    }

    /// Takes the error answers `rate_limit` accepts (status and body) as rate limits, retried
    /// like a 429.
    pub(crate) fn with_rate_limit(mut self, rate_limit: fn(StatusCode, &[u8]) -> bool) -> Http {
        self.rate_limit = rate_limit;
        self
    }

    /// Whether an error answer is tried again, and how; `None`: it fails the request at once.
    pub(crate) fn retry_of(&self, status: StatusCode, body: &[u8]) -> Option<Retry> {
        if status == StatusCode::TOO_MANY_REQUESTS || (self.rate_limit)(status, body) {
            Some(Retry::RateLimit)
        } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT {
            // A 408 is the server giving up on a slow request: asking again is what it asks.
            Some(Retry::Backoff)
        } else {
            None
        }
    }

    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// A [`DirectoryError`] of this source.
    pub(crate) fn error(&self, message: impl Into<String>) -> DirectoryError {
        DirectoryError {
            source: self.source.clone(),
            message: message.into(),
        }
    }

    /// Parses a link the server gave and checks that it stays on a configured origin.
    pub(crate) fn follow(&self, link: &str) -> Result<Url, DirectoryError> {
        let url = Url::parse(link)
            .map_err(|_| self.error(format!("the next-page link {:?} is invalid", clip(link))))?;
        if !self.origins.contains(&url.origin().ascii_serialization()) {
            return Err(self.error(format!(
                "the next-page link points to another host ({}); refusing to send credentials there",
                clip(url.host_str().unwrap_or(""))
            )));
        }
        Ok(url)
    }

    /// Sleeps `wait` unless it would pass the deadline.
    async fn wait(&self, wait: Duration, why: &str) -> Result<(), Failure> {
        if Instant::now() + wait > self.deadline {
            return Err(Failure::Other(format!(
                "the read deadline ({} s) would pass while waiting for {why}",
                self.opts.deadline.as_secs()
            )));
        }
        tokio::time::sleep(wait).await;
        Ok(())
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let step = self
            .opts
            .backoff_base
            .saturating_mul(1u32 << attempt.min(16))
            .min(self.opts.backoff_cap);
        step.mul_f64(0.5 + fastrand::f64() * 0.5)
    }

    /// The wait a rate-limited (or rate-spent) answer asks for, from its headers.
    fn hinted_wait(&self, headers: &HeaderMap, spent_only: bool) -> Option<Duration> {
        let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok());
        if !spent_only {
            if let Some(secs) = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()) {
                return Some(Duration::from_secs(secs).min(self.opts.max_wait));
            }
        }
        if header("x-rate-limit-remaining").map(str::trim) != Some("0") {
            return None;
        }
        let reset = header("x-rate-limit-reset")?.trim().parse::<i64>().ok()?;
        let now = header("date")
            .and_then(|d| DateTime::parse_from_rfc2822(d).ok())
            .map_or_else(|| SystemClock.now(), |d| d.with_timezone(&Utc))
            .timestamp();
        let secs = u64::try_from(reset - now).unwrap_or(0);
        Some(Duration::from_secs(secs).min(self.opts.max_wait))
    }

    /// Sends a request (built anew for each attempt) and decodes its 2xx body with `parse`,
    /// retrying as the module documentation says. `parse` may borrow from the body (a page
    /// deserialized into borrowed structs and turned into what the caller keeps, without an
    /// owned copy of every string first); a body it refuses is retried like one that is not
    /// JSON. A non-retryable answer is returned as [`Failure::Status`] with its body for the
    /// caller to describe.
    pub(crate) async fn fetch<R, E: std::fmt::Display>(
        &self,
        build: impl Fn() -> RequestBuilder,
        parse: impl Fn(&Bytes) -> Result<R, E>,
    ) -> Result<(R, HeaderMap), Failure> {
        let mut attempt = 0u32;
        loop {
            let last = attempt >= self.opts.max_retries;
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Failure::Other(format!(
                    "the read deadline ({} s) passed",
                    self.opts.deadline.as_secs()
                )));
            }
            let sent = build()
                .timeout(left.min(self.opts.request_timeout))
                .send()
                .await;
            let mut last = last;
            let (problem, wait) = match sent {
                Err(e) => {
                    // A refused or unreachable connection means the source is down, not busy:
                    // a few quick retries cover a restart, then the read fails and its rules
                    // wait for the next read instead of holding the audit cycle for minutes.
                    last |= e.is_connect() && attempt >= CONNECT_RETRIES;
                    (
                        Failure::Other(format!("request failed: {}", describe_transport(&e))),
                        None,
                    )
                }
                Ok(answer) => {
                    let status = answer.status();
                    let headers = answer.headers().clone();
                    let body = answer.bytes().await;
                    match body {
                        Err(e) => (
                            Failure::Other(format!(
                                "reading the answer failed: {}",
                                describe_transport(&e)
                            )),
                            None,
                        ),
                        Ok(bytes) if status.is_success() => match parse(&bytes) {
                            Ok(value) => {
                                if let Some(wait) = self.hinted_wait(&headers, true) {
                                    self.wait(wait, "the rate-limit window to reset").await?;
                                }
                                return Ok((value, headers));
                            }
                            Err(e) => (
                                Failure::Other(format!("the answer is not the expected JSON: {e}")),
                                None,
                            ),
                        },
                        Ok(bytes) => {
                            let retry = self.retry_of(status, &bytes);
                            let text = String::from_utf8_lossy(&bytes).into_owned();
                            let mut wait = match retry {
                                None => return Err(Failure::Status(status, text)),
                                Some(_) => self.hinted_wait(&headers, false),
                            };
                            if retry == Some(Retry::RateLimit) {
                                // A rate limit whose reset already passed still needs a pause.
                                wait = Some(wait.unwrap_or_default().max(Duration::from_secs(1)));
                            }
                            (Failure::Status(status, text), wait)
                        }
                    }
                }
            };
            if last {
                return Err(match problem {
                    Failure::Status(s, t) => Failure::Status(s, t),
                    Failure::Other(m) => {
                        Failure::Other(format!("{m} (after {} attempts)", attempt + 1))
                    }
                });
            }
            let wait = wait.unwrap_or_else(|| self.backoff(attempt));
            let why = match &problem {
                Failure::Status(status, _) => format!("HTTP {}", status.as_u16()),
                Failure::Other(message) => message.clone(),
            };
            tracing::info!(
                source = %self.source,
                attempt = attempt + 1,
                wait_ms = wait.as_millis() as u64,
                why = %why,
                "directory request retried"
            );
            self.wait(wait, "a retry").await?;
            attempt += 1;
        }
    }
}

impl Http {
    /// The bearer token cached under `key` (token URL, client and the like, no secret), or one
    /// fetched anew: `request` gives the token endpoint and the form to POST there (called only
    /// when there is no cached token: it may sign an assertion, and every page asks for the
    /// token), the answer cached for its lifetime. A failure is described by `describe` as a
    /// "token request".
    pub(crate) async fn bearer_token<F: serde::Serialize>(
        &self,
        key: &str,
        request: impl FnOnce() -> Result<(Url, F), DirectoryError>,
        describe: impl Fn(&str, Failure) -> DirectoryError,
    ) -> Result<SecretString, DirectoryError> {
        if let Some(token) = cached_token(key) {
            return Ok(token);
        }
        let (url, form) = request()?;
        // A body that is not the expected answer is described by where it breaks only: the
        // parser's message could quote the token.
        let parse = |body: &Bytes| {
            serde_json::from_slice::<TokenAnswer>(body)
                .map_err(|e| format!("line {}, column {}", e.line(), e.column()))
        };
        let (answer, _) = self
            .fetch(
                || {
                    self.client
                        .post(url.clone())
                        .header("accept", "application/json")
                        .form(&form)
                },
                parse,
            )
            .await
            .map_err(|f| describe("token request", f))?;
        cache_token(key, answer.access_token.clone(), answer.expires_in);
        Ok(answer.access_token)
    }

    /// One authenticated GET, its body decoded by `parse` as [`Http::fetch`] does:
    /// `authorization` gives the header for each attempt; a 401 drops the cached token
    /// `renewable` names (an OAuth source's) and tries once more with a new one. A failure is
    /// described by `describe` (what was read, why).
    pub(crate) async fn get_parsed<R, E, Fut>(
        &self,
        url: &Url,
        authorization: impl Fn() -> Fut,
        renewable: Option<&str>,
        describe: impl Fn(&str, Failure) -> DirectoryError,
        parse: impl Fn(&Bytes) -> Result<R, E>,
    ) -> Result<(R, HeaderMap), DirectoryError>
    where
        E: std::fmt::Display,
        Fut: std::future::Future<Output = Result<HeaderValue, DirectoryError>>,
    {
        let mut renewed = false;
        loop {
            let auth = authorization().await?;
            let answer = self
                .fetch(
                    || {
                        self.client()
                            .get(url.clone())
                            .header("accept", "application/json")
                            .header("authorization", auth.clone())
                    },
                    &parse,
                )
                .await;
            match (answer, renewable) {
                (Ok(ok), _) => return Ok(ok),
                (Err(Failure::Status(StatusCode::UNAUTHORIZED, _)), Some(key)) if !renewed => {
                    forget_token(key);
                    renewed = true;
                }
                (Err(f), _) => return Err(describe(url.path(), f)),
            }
        }
    }
}

/// A transport error as what happened and its causes, without the URL (the caller names the
/// path; query strings such as Google's page tokens stay out of messages).
fn describe_transport(e: &reqwest::Error) -> String {
    // A body that broke is said so by the caller ("reading the answer failed").
    let mut text = match (e.is_timeout(), e.is_connect()) {
        (true, _) => "timed out",
        (_, true) => "could not connect",
        _ => "no answer",
    }
    .to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    clip(&text)
}

/// One page as its fetch step took it: the body, kept for the parse step, and the next-page link
/// as the server gave it (`None` on the last page).
pub(crate) type Fetched<B> = (B, Option<String>);

/// Reads every page from `first` on, each page parsed while the next one is fetched.
///
/// `fetch` asks for one page and checks only what it must to go on: that the body is whole (a
/// broken body is retried there, by [`Http::fetch`]) and where the next page is (Okta's
/// `Link: rel="next"`, Graph's `@odata.nextLink`, Google's `nextPageToken` made into a URL). It
/// returns the body with that link. `parse` turns a kept body into the items the read keeps; it
/// runs on page N while the request for page N+1 is in flight (`tokio::join!` polls the fetch
/// first, so the request is out before the parse, CPU work on this task, starts). Pages are
/// still asked for one at a time. A body `parse` refuses fails the read, even when the next page
/// has already arrived: either every page's items come back, in page order, or an error.
///
/// Each link is kept on the configured origins ([`Http::follow`]) and a link seen before is an
/// error, never an endless read.
pub(crate) async fn all_pages<T, B, E, F, Fut, P>(
    http: &Http,
    first: Url,
    fetch: F,
    mut parse: P,
) -> Result<Vec<T>, DirectoryError>
where
    F: Fn(Url) -> Fut,
    Fut: std::future::Future<Output = Result<Fetched<B>, DirectoryError>>,
    P: FnMut(&B) -> Result<Vec<T>, E>,
    E: std::fmt::Display,
{
    page_loop(http, first, fetch, |body: B| {
        // Run when first polled, after the next request is out (see above).
        let parsed = parse(&body).map_err(|e| e.to_string());
        std::future::ready(parsed)
    })
    .await
}

/// [`all_pages`] with each page parsed on a thread of the blocking pool instead of this task,
/// for a parse that needs nothing but the body (a plain function): while a large page is turned
/// into items on one core, this task goes on reading the next answer on another. On this task
/// the parse and the next answer's bytes take turns.
pub(crate) async fn all_pages_apart<T, B, E, F, Fut>(
    http: &Http,
    first: Url,
    fetch: F,
    parse: fn(&[u8]) -> Result<Vec<T>, E>,
) -> Result<Vec<T>, DirectoryError>
where
    F: Fn(Url) -> Fut,
    Fut: std::future::Future<Output = Result<Fetched<B>, DirectoryError>>,
    B: AsRef<[u8]> + Send + 'static,
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    page_loop(http, first, fetch, |body: B| async move {
        match tokio::task::spawn_blocking(move || parse(body.as_ref()).map_err(|e| e.to_string()))
            .await
        {
            Ok(parsed) => parsed,
            // A parse that panicked fails this read like a page it refused.
            Err(_) => Err("the page's parse failed".to_owned()),
        }
    })
    .await
}

/// The loop of [`all_pages`]: `start` begins the parse of a kept body (its future is polled
/// beside the next fetch) and gives the items or why the body was refused.
async fn page_loop<T, B, F, Fut, S, SFut>(
    http: &Http,
    first: Url,
    fetch: F,
    mut start: S,
) -> Result<Vec<T>, DirectoryError>
where
    F: Fn(Url) -> Fut,
    Fut: std::future::Future<Output = Result<Fetched<B>, DirectoryError>>,
    S: FnMut(B) -> SFut,
    SFut: std::future::Future<Output = Result<Vec<T>, String>>,
{
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    seen.insert(first.to_string());
    let mut url = first.clone();
    let mut current = fetch(first).await?;
    loop {
        let (body, link) = current;
        let next = match link {
            None => None,
            Some(link) => {
                let next = http.follow(&link)?;
                if !seen.insert(next.to_string()) {
                    return Err(http.error("the server repeated a next-page link"));
                }
                Some(next)
            }
        };
        let (fetched, items) = tokio::join!(
            async {
                match &next {
                    Some(next) => Some(fetch(next.clone()).await),
                    None => None,
                }
            },
            async { start(body).await }
        );
        let items = items.map_err(|e| {
            http.error(format!(
                "{}: the answer is not the expected JSON: {e}",
                url.path()
            ))
        })?;
        out.extend(items);
        match (fetched, next) {
            (Some(page), Some(next)) => {
                current = page?;
                url = next;
            }
            _ => return Ok(out),
        }
    }
}

/// A JSON string borrowed from a page's body, or owned when it had escapes to undo.
pub(crate) struct Text<'a>(pub(crate) Cow<'a, str>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = Text<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'a>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(Visitor(std::marker::PhantomData))
    }
}

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

/// An `Authorization` header value (`<scheme> <credential>`), marked sensitive so that no
/// debug output of a request shows it. A credential that is not a valid header value gives an
/// empty (refused) header rather than an error that could quote it.
pub(crate) fn auth_header(credential: &SecretString, scheme: &str) -> HeaderValue {
    let mut value = HeaderValue::from_str(&format!("{scheme} {}", credential.expose_secret()))
        .unwrap_or_else(|_| HeaderValue::from_static(""));
    value.set_sensitive(true);
    value
}

/// A bearer token and when it stops being usable.
#[derive(Clone)]
pub(crate) struct CachedToken {
    pub(crate) token: SecretString,
    pub(crate) until: Instant,
}

fn token_cache() -> &'static Mutex<HashMap<String, CachedToken>> {
    static CACHE: OnceLock<Mutex<HashMap<String, CachedToken>>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The cached token for `key` (token URL and client id, no secret), if still valid.
pub(crate) fn cached_token(key: &str) -> Option<SecretString> {
    let cache = token_cache().lock().unwrap_or_else(PoisonError::into_inner);
    cache
        .get(key)
        .filter(|t| Instant::now() < t.until)
        .map(|t| t.token.clone())
}

/// Caches a token for `expires_in` seconds less a minute's margin.
pub(crate) fn cache_token(key: &str, token: SecretString, expires_in: u64) {
    let life = Duration::from_secs(expires_in.saturating_sub(60));
    let mut cache = token_cache().lock().unwrap_or_else(PoisonError::into_inner);
    cache.insert(
        key.to_string(),
        CachedToken {
            token,
            until: Instant::now() + life,
        },
    );
}

/// Forgets a token the server refused.
pub(crate) fn forget_token(key: &str) {
    let mut cache = token_cache().lock().unwrap_or_else(PoisonError::into_inner);
    cache.remove(key);
}

/// An OAuth token endpoint's answer.
#[derive(serde::Deserialize)]
struct TokenAnswer {
    access_token: SecretString,
    #[serde(default = "default_expires_in")]
    expires_in: u64,
}

fn default_expires_in() -> u64 {
    3600
}

/// An RS256 JWT client assertion (RFC 7523) for `client_id` at `audience`, as [`sign_jwt`]
/// signs it. The error never shows the key.
pub(crate) fn client_assertion(
    client_id: &str,
    audience: &str,
    key_pem: &SecretString,
    key_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<String, String> {
    let jti: String = (0..32)
        .map(|_| char::from(b"0123456789abcdef"[fastrand::usize(..16)]))
        .collect();
    let iat = now.timestamp();
    let claims = serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "iat": iat,
        "exp": iat + 300,
        "jti": jti,
    });
    sign_jwt(&claims, key_pem, key_id)
}

/// The RS256 JWT `header.claims.signature` of `claims`, signed with a PEM RSA key (PKCS#8
/// `PRIVATE KEY`, or PKCS#1 `RSA PRIVATE KEY`) and naming `key_id` as its `kid`. The error never
/// shows the key.
pub(crate) fn sign_jwt(
    claims: &serde_json::Value,
    key_pem: &SecretString,
    key_id: Option<&str>,
) -> Result<String, String> {
    let pem = key_pem.expose_secret();
    let der = pem_der(pem).ok_or_else(|| "the private key is not a PEM block".to_string())?;
    let pair = if pem.contains("-----BEGIN RSA PRIVATE KEY-----") {
        ring::signature::RsaKeyPair::from_der(&der)
    } else {
        ring::signature::RsaKeyPair::from_pkcs8(&der)
    }
    .map_err(|e| format!("the private key is not a usable RSA key ({e})"))?;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = key_id {
        header["kid"] = serde_json::Value::String(kid.to_string());
    }
    let signing_input = format!(
        "{}.{}",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    );
    let mut signature = vec![0u8; pair.public().modulus_len()];
    pair.sign(
        &ring::signature::RSA_PKCS1_SHA256,
        &ring::rand::SystemRandom::new(),
        signing_input.as_bytes(),
        &mut signature,
    )
    .map_err(|_| "signing the JWT failed".to_string())?;
    Ok(format!("{signing_input}.{}", b64.encode(signature)))
}

fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .collect();
    base64::engine::general_purpose::STANDARD.decode(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http() -> Http {
        Http::new(
            "corp",
            &ReadOptions::default(),
            &["https://idp.example.com"],
        )
        .unwrap()
    }

    /// A page of the table: its URL, its items, its next link.
    type Page<'a> = (&'a str, &'a [u32], Option<&'a str>);

    /// Pages served from a table, each fetch taking a little while (so that parses and fetches
    /// interleave); a body holding `0` is refused by the parse step. Returns the read and the
    /// URLs fetched, in order.
    async fn read_logged(pages: &[Page<'_>]) -> (Result<Vec<u32>, DirectoryError>, Vec<String>) {
        let http = http();
        let first = Url::parse(pages[0].0).unwrap();
        let fetched = Mutex::new(Vec::new());
        let read = all_pages(
            &http,
            first,
            |url| {
                let page = pages.iter().find(|(u, ..)| *u == url.as_str()).copied();
                fetched.lock().unwrap().push(url.to_string());
                async move {
                    let (_, items, next) = page.expect("a known page");
                    tokio::time::sleep(Duration::from_millis(items.len() as u64)).await;
                    Ok((items.to_vec(), next.map(str::to_owned)))
                }
            },
            |body: &Vec<u32>| {
                if body.contains(&0) {
                    Err("a body that is JSON but not a page")
                } else {
                    Ok(body.clone())
                }
            },
        )
        .await;
        (read, fetched.into_inner().unwrap())
    }

    async fn read(pages: &[Page<'_>]) -> Result<Vec<u32>, DirectoryError> {
        read_logged(pages).await.0
    }

    #[tokio::test]
    async fn every_page_is_read_in_order_until_there_is_no_next_link() {
        let items = read(&[
            (
                "https://idp.example.com/u",
                &[1, 2],
                Some("https://idp.example.com/u?p=2"),
            ),
            (
                "https://idp.example.com/u?p=2",
                &[3],
                Some("https://idp.example.com/u?p=3"),
            ),
            ("https://idp.example.com/u?p=3", &[], None),
        ])
        .await
        .unwrap();
        assert_eq!(items, vec![1, 2, 3]);
    }

    #[tokio::test]
    async fn items_keep_their_page_order_however_long_each_fetch_takes() {
        // Pages of falling then rising sizes: each fetch takes as many milliseconds as its page
        // has items, so a quick page follows a slow one and the other way round.
        let sizes = [9usize, 1, 6, 2, 8, 3, 5];
        let urls: Vec<String> = (0..sizes.len())
            .map(|i| format!("https://idp.example.com/u?p={i}"))
            .collect();
        let mut items = Vec::new();
        let mut n = 1u32;
        for size in sizes {
            items.push((n..n + size as u32).collect::<Vec<u32>>());
            n += size as u32;
        }
        let pages: Vec<Page<'_>> = (0..sizes.len())
            .map(|i| {
                let next = urls.get(i + 1).map(String::as_str);
                (urls[i].as_str(), items[i].as_slice(), next)
            })
            .collect();
        let (read, fetched) = read_logged(&pages).await;
        assert_eq!(read.unwrap(), (1..n).collect::<Vec<u32>>());
        assert_eq!(fetched, urls);
    }

    #[tokio::test]
    async fn a_page_refused_after_the_next_one_arrived_fails_the_whole_read() {
        let (read, fetched) = read_logged(&[
            (
                "https://idp.example.com/u",
                &[1, 2],
                Some("https://idp.example.com/u?p=2"),
            ),
            (
                "https://idp.example.com/u?p=2",
                &[3, 0],
                Some("https://idp.example.com/u?p=3"),
            ),
            ("https://idp.example.com/u?p=3", &[4], None),
        ])
        .await;
        // The third page was fetched while the second was parsed; the second's parse error
        // still ends the read with nothing of the first.
        assert_eq!(fetched.len(), 3, "{fetched:?}");
        let err = read.unwrap_err();
        assert!(
            err.message
                .contains("/u: the answer is not the expected JSON"),
            "{err}"
        );
        assert_eq!(err.source, "corp");
    }

    /// The parse of [`all_pages_apart`]: each byte an item; a 0 byte makes the body refused.
    fn bytes_page(body: &[u8]) -> Result<Vec<u32>, String> {
        if body.contains(&0) {
            return Err("a body that is JSON but not a page".into());
        }
        Ok(body.iter().map(|b| u32::from(*b)).collect())
    }

    /// The table's pages read with [`all_pages_apart`] (bodies as bytes), on the current-thread
    /// runtime the tests use: the parse still gets its own thread.
    async fn read_apart(pages: &[Page<'_>]) -> Result<Vec<u32>, DirectoryError> {
        let http = http();
        let first = Url::parse(pages[0].0).unwrap();
        all_pages_apart(
            &http,
            first,
            |url| {
                let page = pages.iter().find(|(u, ..)| *u == url.as_str()).copied();
                async move {
                    let (_, items, next) = page.expect("a known page");
                    tokio::time::sleep(Duration::from_millis(items.len() as u64)).await;
                    let body: Vec<u8> = items.iter().map(|i| *i as u8).collect();
                    Ok((body, next.map(str::to_owned)))
                }
            },
            bytes_page,
        )
        .await
    }

    #[tokio::test]
    async fn pages_parsed_apart_keep_their_order_and_a_refused_one_fails_the_read() {
        let pages: [Page<'_>; 3] = [
            (
                "https://idp.example.com/u",
                &[1, 2, 3],
                Some("https://idp.example.com/u?p=2"),
            ),
            (
                "https://idp.example.com/u?p=2",
                &[4],
                Some("https://idp.example.com/u?p=3"),
            ),
            ("https://idp.example.com/u?p=3", &[5, 6], None),
        ];
        assert_eq!(read_apart(&pages).await.unwrap(), vec![1, 2, 3, 4, 5, 6]);
        let mut refused = pages;
        refused[1].1 = &[4, 0];
        let err = read_apart(&refused).await.unwrap_err();
        assert!(
            err.message.contains("the answer is not the expected JSON"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn a_repeated_or_foreign_link_ends_the_read_with_an_error() {
        let looped = read(&[
            (
                "https://idp.example.com/u",
                &[1],
                Some("https://idp.example.com/u?p=2"),
            ),
            (
                "https://idp.example.com/u?p=2",
                &[2],
                Some("https://idp.example.com/u"),
            ),
        ])
        .await
        .unwrap_err();
        assert!(looped.message.contains("repeated"), "{looped}");
        let foreign = read(&[(
            "https://idp.example.com/u",
            &[1],
            Some("https://evil.example.net/u?p=2"),
        )])
        .await
        .unwrap_err();
        assert!(foreign.message.contains("another host"), "{foreign}");
    }
}
