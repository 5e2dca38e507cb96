//! The HTTP client for the Admin API: one `reqwest::Client`, the base URL and the admin key.
//!
//! It owns retries (the contract's policy: `retry-after-ms`, then `retry-after`, then capped
//! exponential backoff with jitter; `x-should-retry` obeyed; non-idempotent calls retried only on
//! 429; a 2xx whose body cannot be read is retried like a 5xx when the call is idempotent), a
//! total deadline per call, an adaptive gate shared by every clone (a 429 or 529 pauses every
//! request for the `retry-after` and halves the number of requests in flight, which then grows
//! back by one per window of successes), an optional fixed pacer, and cursor pagination with a
//! guard against a server that repeats a cursor. It is the only module that speaks to the API.
//!
//! Text that comes from the API (error messages, types, request ids, cursors) is escaped and
//! clipped by [`clean_text`] before it goes into an error or a log line.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::Stream;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use tokio::time::Instant;
use url::Url;

use super::error::{ApiError, Call};
use super::models::{
    ApiKey, ApiKeyUpdate, ClaudeCodeItem, Invite, OrgRole, Organization, Page, ReportPage,
    UsageBucket, User, Workspace, WorkspaceMember,
};
use crate::config::check_base_url;

/// How the client talks to the API. Built from `[api]` in the configuration.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub base_url: Url,
    pub anthropic_version: String,
    pub connect_timeout: Duration,
    /// Bound on one HTTP exchange (headers and body).
    pub request_timeout: Duration,
    /// Bound on one call including every retry and wait.
    pub total_deadline: Duration,
    pub max_retries: u32,
    /// Fixed client-side pacing; `None` (the default) sends as fast as the adaptive gate allows.
    pub requests_per_second: Option<f64>,
    /// Most requests in flight at once; a 429 or 529 halves the current limit, successes grow it
    /// back up to this.
    pub max_in_flight: usize,
    /// `limit` for list calls (1..=1000).
    pub page_size: u32,
    /// First backoff step without a `retry-after` header; doubles per retry.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// Reads the time for an HTTP-date `retry-after`.
    pub clock: crate::clock::SharedClock,
}

impl ClientOptions {
    /// The contract's defaults for a given base URL.
    pub fn new(base_url: Url) -> ClientOptions {
        ClientOptions {
            base_url,
            anthropic_version: "2023-06-01".to_owned(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            total_deadline: Duration::from_secs(120),
            max_retries: 4,
            requests_per_second: None,
            max_in_flight: 4,
            page_size: 1000,
            backoff_base: Duration::from_millis(500),
            backoff_cap: Duration::from_secs(8),
            clock: crate::clock::SystemClock::shared(),
        }
    }
}

/// Requests and retries made so far by a client (and its clones).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    pub requests: u64,
    pub retries: u64,
}

/// The result of a successful call, with the request-id the audit trail records.
#[derive(Debug, Clone)]
pub struct Answer<T> {
    pub value: T,
    pub status: u16,
    pub request_id: Option<String>,
}

/// A cheap, clonable handle to the Admin API.
#[derive(Clone)]
pub struct AdminClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    options: ClientOptions,
    admin_key: SecretString,
    /// The earliest instant the next request may start, for client-side pacing.
    next_slot: Mutex<Instant>,
    gate: Gate,
    requests: AtomicU64,
    retries: AtomicU64,
    /// Answers by HTTP status (`error` for none), for the metrics.
    by_status: Mutex<BTreeMap<String, u64>>,
}

impl fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The admin key is deliberately absent.
        f.debug_struct("AdminClient")
            .field("base_url", &self.inner.options.base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl AdminClient {
    /// Builds the client. Fails on a base URL that is not https (or loopback http).
    pub fn new(options: ClientOptions, admin_key: SecretString) -> Result<AdminClient, ApiError> {
        check_base_url(&options.base_url)
            .map_err(|why| ApiError::Url(format!("{}: {why}", options.base_url)))?;
        let http = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .user_agent(concat!("orgwarden/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Url(format!("cannot build HTTP client: {e}")))?;
        Ok(AdminClient {
            inner: Arc::new(Inner {
                http,
                gate: Gate::new(options.max_in_flight),
                options,
                admin_key,
                next_slot: Mutex::new(Instant::now()),
                requests: AtomicU64::new(0),
                retries: AtomicU64::new(0),
                by_status: Mutex::new(BTreeMap::new()),
            }),
        })
    }

    pub fn options(&self) -> &ClientOptions {
        &self.inner.options
    }

    /// Counters since the client was built (shared by clones).
    pub fn stats(&self) -> ClientStats {
        ClientStats {
            requests: self.inner.requests.load(Ordering::Relaxed),
            retries: self.inner.retries.load(Ordering::Relaxed),
        }
    }

    /// Requests since the client was built by the HTTP status answered (`error` when no answer
    /// came: a transport failure or the deadline), shared by clones.
    pub fn requests_by_status(&self) -> BTreeMap<String, u64> {
        self.inner
            .by_status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    // ---- Reads --------------------------------------------------------------------------------

    /// `GET /v1/organizations/me`.
    pub async fn organization(&self) -> Result<Organization, ApiError> {
        self.get(&["me"]).await
    }

    /// Every member, page by page.
    pub fn users(&self) -> Pager<User> {
        self.pager(&["users"], Vec::new())
    }

    /// Every invite the API lists (pending, accepted and expired; deleted ones are never listed).
    pub fn invites(&self) -> Pager<Invite> {
        self.pager(&["invites"], Vec::new())
    }

    /// Every workspace, archived ones too when asked.
    pub fn workspaces(&self, include_archived: bool) -> Pager<Workspace> {
        let query = vec![("include_archived".to_owned(), include_archived.to_string())];
        self.pager(&["workspaces"], query)
    }

    /// The explicit members of one workspace.
    pub fn workspace_members(&self, workspace_id: &str) -> Pager<WorkspaceMember> {
        self.pager(&["workspaces", workspace_id, "members"], Vec::new())
    }

    /// Every API key, of every status.
    pub fn api_keys(&self) -> Pager<ApiKey> {
        self.pager(&["api_keys"], Vec::new())
    }

    /// The API keys listed after the key `after_id` (which the list must still hold: an unknown
    /// cursor is a 400), to the list's end.
    pub fn api_keys_after(&self, after_id: &str) -> Pager<ApiKey> {
        let mut pager = self.pager(&["api_keys"], Vec::new());
        pager.after_id = Some(after_id.to_owned());
        pager
    }

    /// The first page of one workspace's API keys (`workspace_id` filter), in the list's order.
    pub async fn api_keys_of_workspace_first_page(
        &self,
        workspace_id: &str,
    ) -> Result<Vec<ApiKey>, ApiError> {
        let query = vec![("workspace_id".to_owned(), workspace_id.to_owned())];
        Ok(self
            .pager(&["api_keys"], query)
            .next_page()
            .await?
            .unwrap_or_default())
    }

    pub async fn get_user(&self, user_id: &str) -> Result<User, ApiError> {
        self.get(&["users", user_id]).await
    }

    pub async fn get_invite(&self, invite_id: &str) -> Result<Invite, ApiError> {
        self.get(&["invites", invite_id]).await
    }

    pub async fn get_api_key(&self, api_key_id: &str) -> Result<ApiKey, ApiError> {
        self.get(&["api_keys", api_key_id]).await
    }

    pub async fn get_workspace_member(
        &self,
        workspace_id: &str,
        user_id: &str,
    ) -> Result<WorkspaceMember, ApiError> {
        self.get(&["workspaces", workspace_id, "members", user_id])
            .await
    }

    // ---- Reports ------------------------------------------------------------------------------

    /// One page of `GET /v1/organizations/usage_report/messages` in daily buckets, grouped by
    /// `api_key_id` and `account_id` (one result per key and day it was used): the buckets from
    /// `starting_at` up to `ending_at`, at most `limit` (1..=31) per page, continued with
    /// `page` (the previous page's `next_page`).
    pub async fn usage_messages_page(
        &self,
        starting_at: chrono::DateTime<chrono::Utc>,
        ending_at: chrono::DateTime<chrono::Utc>,
        limit: u32,
        page: Option<&str>,
    ) -> Result<ReportPage<UsageBucket>, ApiError> {
        let format =
            |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let mut query = vec![
            ("starting_at".to_owned(), format(starting_at)),
            ("ending_at".to_owned(), format(ending_at)),
            ("bucket_width".to_owned(), "1d".to_owned()),
            ("limit".to_owned(), limit.clamp(1, 31).to_string()),
            ("group_by[]".to_owned(), "api_key_id".to_owned()),
            ("group_by[]".to_owned(), "account_id".to_owned()),
        ];
        if let Some(page) = page {
            query.push(("page".to_owned(), page.to_owned()));
        }
        self.get_query(&["usage_report", "messages"], &query).await
    }

    /// One page of `GET /v1/organizations/usage_report/claude_code` for one UTC day, at most
    /// `limit` (1..=1000) actors per page.
    pub async fn claude_code_page(
        &self,
        day: chrono::NaiveDate,
        limit: u32,
        page: Option<&str>,
    ) -> Result<ReportPage<ClaudeCodeItem>, ApiError> {
        let mut query = vec![
            ("starting_at".to_owned(), day.format("%Y-%m-%d").to_string()),
            ("limit".to_owned(), limit.clamp(1, 1000).to_string()),
        ];
        if let Some(page) = page {
            query.push(("page".to_owned(), page.to_owned()));
        }
        self.get_query(&["usage_report", "claude_code"], &query)
            .await
    }

    // ---- Mutations ----------------------------------------------------------------------------

    /// `DELETE /v1/organizations/invites/{id}` (only pending invites can be deleted).
    pub async fn delete_invite(
        &self,
        invite_id: &str,
    ) -> Result<Answer<serde_json::Value>, ApiError> {
        self.execute(Method::DELETE, &["invites", invite_id], &[], None, true)
            .await
    }

    /// `POST /v1/organizations/api_keys/{id}`: rename and/or change status. Setting absolute
    /// values is idempotent, so it is retried like a read.
    pub async fn update_api_key(
        &self,
        api_key_id: &str,
        update: &ApiKeyUpdate,
    ) -> Result<Answer<ApiKey>, ApiError> {
        let body = serde_json::to_value(update).map_err(|e| ApiError::Url(e.to_string()))?;
        self.execute(
            Method::POST,
            &["api_keys", api_key_id],
            &[],
            Some(body),
            true,
        )
        .await
    }

    /// `POST /v1/organizations/users/{id}` with a new role (never `admin`: the API refuses).
    pub async fn update_user_role(
        &self,
        user_id: &str,
        role: &OrgRole,
    ) -> Result<Answer<User>, ApiError> {
        let body = serde_json::json!({ "role": role.as_str() });
        self.execute(Method::POST, &["users", user_id], &[], Some(body), true)
            .await
    }

    /// `DELETE /v1/organizations/users/{id}` (admins cannot be removed).
    pub async fn remove_user(&self, user_id: &str) -> Result<Answer<serde_json::Value>, ApiError> {
        self.execute(Method::DELETE, &["users", user_id], &[], None, true)
            .await
    }

    /// `DELETE /v1/organizations/workspaces/{id}/members/{user_id}`.
    pub async fn remove_workspace_member(
        &self,
        workspace_id: &str,
        user_id: &str,
    ) -> Result<Answer<serde_json::Value>, ApiError> {
        let path = ["workspaces", workspace_id, "members", user_id];
        self.execute(Method::DELETE, &path, &[], None, true).await
    }

    /// A create call (`POST` that makes a new object): retried only on 429, because a replay
    /// could create a duplicate. orgwarden itself never creates anything; tests use it.
    pub async fn create_invite(
        &self,
        email: &str,
        role: &OrgRole,
    ) -> Result<Answer<Invite>, ApiError> {
        let body = serde_json::json!({ "email": email, "role": role.as_str() });
        self.execute(Method::POST, &["invites"], &[], Some(body), false)
            .await
    }

    // ---- Machinery ----------------------------------------------------------------------------

    async fn get<T: DeserializeOwned>(&self, segments: &[&str]) -> Result<T, ApiError> {
        Ok(self
            .execute(Method::GET, segments, &[], None, true)
            .await?
            .value)
    }

    async fn get_query<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(String, String)],
    ) -> Result<T, ApiError> {
        Ok(self
            .execute(Method::GET, segments, query, None, true)
            .await?
            .value)
    }

    fn pager<T>(&self, segments: &[&str], query: Vec<(String, String)>) -> Pager<T> {
        Pager {
            client: self.clone(),
            segments: segments.iter().map(|s| (*s).to_owned()).collect(),
            query,
            after_id: None,
            seen: HashSet::new(),
            done: false,
            marker: PhantomData,
        }
    }

    fn url(&self, segments: &[&str], query: &[(String, String)]) -> Result<Url, ApiError> {
        let mut url = self.inner.options.base_url.clone();
        {
            let mut path = url
                .path_segments_mut()
                .map_err(|()| ApiError::Url("base URL cannot have a path".to_owned()))?;
            path.pop_if_empty();
            path.extend(["v1", "organizations"]);
            path.extend(segments);
        }
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// Waits for this request's slot under the client-side requests-per-second limit.
    async fn pace(&self) {
        let Some(rps) = self.inner.options.requests_per_second else {
            return;
        };
        let interval = Duration::from_secs_f64(1.0 / rps.max(0.001));
        let slot = {
            // The lock is held for two instructions and never across an await; a poisoned lock
            // only means another task panicked while holding it, and the instant is still valid.
            let mut next = self
                .inner
                .next_slot
                .lock()
                .unwrap_or_else(|poison| poison.into_inner());
            let slot = (*next).max(Instant::now());
            *next = slot + interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    /// Sends one call with the retry policy. `idempotent` decides which failures are retried.
    async fn execute<T: DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(String, String)],
        body: Option<serde_json::Value>,
        idempotent: bool,
    ) -> Result<Answer<T>, ApiError> {
        let options = &self.inner.options;
        let url = self.url(segments, query)?;
        let call = Call {
            method: method_name(&method),
            path: url.path().to_owned(),
        };
        let deadline = Instant::now() + options.total_deadline;
        let mut attempt: u32 = 0;
        loop {
            self.pace().await;
            let permit = self.inner.gate.acquire().await;
            let started = Instant::now();
            self.inner.requests.fetch_add(1, Ordering::Relaxed);
            let mut key =
                HeaderValue::from_str(self.inner.admin_key.expose_secret()).map_err(|_| {
                    ApiError::Url(
                        "the admin key has characters not allowed in an HTTP header".to_owned(),
                    )
                })?;
            key.set_sensitive(true);
            let mut request = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .header("x-api-key", key)
                .header("anthropic-version", &options.anthropic_version);
            if let Some(body) = &body {
                request = request.json(body);
            }
            let outcome = tokio::time::timeout_at(deadline, exchange(request)).await;
            drop(permit);
            let label = match &outcome {
                Ok(Ok((status, _, _))) => status.to_string(),
                _ => "error".to_owned(),
            };
            *self
                .inner
                .by_status
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(label)
                .or_default() += 1;
            let failure = match outcome {
                Err(_elapsed) => {
                    return Err(ApiError::Transport {
                        call,
                        reason: format!(
                            "gave up after the total deadline of {}s ({} retries)",
                            options.total_deadline.as_secs(),
                            attempt
                        ),
                    })
                }
                Ok(Err(error)) => Failure::Transport(describe_reqwest_error(&error)),
                Ok(Ok((status, headers, bytes))) => {
                    let request_id = header_clean(&headers, "request-id");
                    if (200..300).contains(&status) {
                        match serde_json::from_slice::<T>(&bytes) {
                            Ok(value) => {
                                self.inner.gate.on_success();
                                return Ok(Answer {
                                    value,
                                    status,
                                    request_id,
                                });
                            }
                            Err(error) => Failure::Decode {
                                reason: clean_text(&error.to_string(), MAX_REASON_CHARS),
                                request_id,
                            },
                        }
                    } else {
                        Failure::Status {
                            status,
                            headers,
                            bytes,
                            request_id,
                        }
                    }
                }
            };
            let (retryable, wait, error, rate_limited) = match failure {
                Failure::Transport(reason) => (
                    idempotent,
                    None,
                    ApiError::Transport {
                        call: call.clone(),
                        reason,
                    },
                    false,
                ),
                // A 2xx body that is not the expected JSON (cut short by a proxy, an HTML error
                // page) is as transient as a 5xx: a read is simply asked again.
                Failure::Decode { reason, request_id } => (
                    idempotent,
                    None,
                    ApiError::Decode {
                        call: call.clone(),
                        reason,
                        request_id,
                    },
                    false,
                ),
                Failure::Status {
                    status,
                    headers,
                    bytes,
                    request_id,
                } => {
                    let (error_type, message, body_request_id) = parse_error_envelope(&bytes);
                    let retryable = should_retry(status, &headers, idempotent);
                    let error = ApiError::Status {
                        call: call.clone(),
                        status,
                        error_type,
                        message,
                        request_id: request_id.or(body_request_id),
                    };
                    let wait = retry_after(&headers, options.clock.now());
                    if matches!(status, 429 | 529) {
                        // The server is saturated: slow every request of this client, not only
                        // this one.
                        let pause = wait.unwrap_or_else(|| backoff(options, attempt));
                        self.inner
                            .gate
                            .on_throttle(started, pause.min(options.total_deadline));
                    }
                    (retryable, wait, error, status == 429)
                }
            };
            // A 429 is the server saying "later", not a failure: it is asked again for as long as
            // the call's deadline allows, however many retries `max_retries` allows for failures
            // (a server limiting to one request a second otherwise fails a snapshot whose calls
            // queue behind each other's pauses).
            if !retryable || (attempt >= options.max_retries && !rate_limited) {
                return Err(error);
            }
            let wait = wait.unwrap_or_else(|| backoff(options, attempt));
            if Instant::now() + wait >= deadline {
                tracing::warn!(call = %call, wait_ms = wait.as_millis() as u64, "not retrying: the wait would pass the call's deadline");
                return Err(error);
            }
            tracing::info!(call = %call, attempt = attempt + 1, wait_ms = wait.as_millis() as u64, error = %error, "retrying");
            self.inner.retries.fetch_add(1, Ordering::Relaxed);
            attempt += 1;
            tokio::time::sleep(wait).await;
        }
    }
}

/// The adaptive gate every request of a client (and its clones) passes: a pause every request
/// waits out after a 429 or 529, and an AIMD limit on requests in flight (halved on such an answer,
/// at most once per round trip; one more after as many successes as the current limit).
struct Gate {
    state: Mutex<GateState>,
    changed: tokio::sync::Notify,
    max: usize,
}

struct GateState {
    in_flight: usize,
    limit: f64,
    paused_until: Instant,
    /// When the limit was last cut: answers to requests sent before then do not cut it again.
    last_cut: Option<Instant>,
}

struct Permit<'a>(&'a Gate);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.lock().in_flight -= 1;
        self.0.changed.notify_waiters();
    }
}

impl Gate {
    fn new(max: usize) -> Gate {
        let max = max.max(1);
        Gate {
            state: Mutex::new(GateState {
                in_flight: 0,
                limit: max as f64,
                paused_until: Instant::now(),
                last_cut: None,
            }),
            changed: tokio::sync::Notify::new(),
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        // Held for a few instructions, never across an await; a poisoned lock still holds valid
        // numbers.
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Waits until the client is not paused and a slot under the current limit is free.
    async fn acquire(&self) -> Permit<'_> {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let paused_until = {
                let mut state = self.lock();
                let now = Instant::now();
                if state.paused_until > now {
                    Some(state.paused_until)
                } else if state.in_flight < (state.limit as usize).max(1) {
                    state.in_flight += 1;
                    return Permit(self);
                } else {
                    None
                }
            };
            match paused_until {
                Some(until) => tokio::time::sleep_until(until).await,
                None => changed.await,
            }
        }
    }

    fn on_success(&self) {
        let grew = {
            let mut state = self.lock();
            let before = state.limit as usize;
            state.limit = (state.limit + 1.0 / state.limit).min(self.max as f64);
            state.limit as usize > before
        };
        if grew {
            self.changed.notify_waiters();
        }
    }

    /// A 429 or 529 to a request sent at `sent`: pause everyone for `wait`, halve the limit.
    fn on_throttle(&self, sent: Instant, wait: Duration) {
        let mut state = self.lock();
        let now = Instant::now();
        state.paused_until = state.paused_until.max(now + wait);
        if state.last_cut.is_none_or(|cut| sent >= cut) {
            state.limit = (state.limit / 2.0).max(1.0);
            state.last_cut = Some(now);
            tracing::info!(
                in_flight_limit = state.limit as usize,
                pause_ms = wait.as_millis() as u64,
                "the Admin API is throttling: slowing down"
            );
        }
    }

    #[cfg(test)]
    fn limit(&self) -> usize {
        self.lock().limit as usize
    }
}

enum Failure {
    Transport(String),
    Decode {
        reason: String,
        request_id: Option<String>,
    },
    Status {
        status: u16,
        headers: HeaderMap,
        bytes: Vec<u8>,
        request_id: Option<String>,
    },
}

/// Sends a request and reads its whole body; a body cut short is a transport error.
async fn exchange(
    request: reqwest::RequestBuilder,
) -> Result<(u16, HeaderMap, Vec<u8>), reqwest::Error> {
    let response = request.send().await?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await?;
    Ok((status, headers, bytes.to_vec()))
}

fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::DELETE => "DELETE",
        _ => "HTTP",
    }
}

fn describe_reqwest_error(error: &reqwest::Error) -> String {
    // `without_url` keeps cursors out of messages; the call already names the path.
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else if error.is_body() || error.is_decode() {
        "connection broke while reading the response"
    } else {
        "request failed"
    };
    clean_text(&format!("{kind}: {}", ErrorChain(error)), MAX_REASON_CHARS)
}

/// Longest error reason kept, in characters.
const MAX_REASON_CHARS: usize = 500;
/// Longest API-provided message kept, in characters.
const MAX_MESSAGE_CHARS: usize = 300;

/// Makes text from the API safe for an error message or a log line: control characters (newlines
/// included) and bidi overrides are escaped like `str::escape_debug` does, other characters are
/// kept, and the result is cut after `max_chars` characters (never inside one) with an ellipsis.
pub(super) fn clean_text(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars * 2));
    for (count, c) in text.chars().enumerate() {
        if count >= max_chars {
            out.push('…');
            break;
        }
        let bidi = matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        );
        if c.is_control() || bidi {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                _ => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Displays an error with its sources, `a: b: c`.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// A header the API sets, escaped and clipped for messages.
fn header_clean(headers: &HeaderMap, name: &str) -> Option<String> {
    header_text(headers, name).map(|text| clean_text(&text, 200))
}

/// The contract's retry decision: `x-should-retry` wins; otherwise 408, 409, 429 and 5xx for
/// idempotent calls, and 429 only for the others.
fn should_retry(status: u16, headers: &HeaderMap, idempotent: bool) -> bool {
    let header = header_text(headers, "x-should-retry");
    match header.as_deref() {
        Some("false") => false,
        Some("true") if idempotent => true,
        _ if !idempotent => status == 429,
        _ => matches!(status, 408 | 409 | 429) || status >= 500,
    }
}

/// Longest `retry-after` taken at its word: a larger one (`1e308`, a date in year 9999) is read
/// as this, which is past any call's deadline, so the call fails instead of overflowing a timer.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// `retry-after-ms` first, then `retry-after` (seconds or an HTTP date), at most
/// [`MAX_RETRY_AFTER`].
fn retry_after(headers: &HeaderMap, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let seconds = |secs: f64| -> Option<Duration> {
        (secs.is_finite() && secs >= 0.0).then(|| {
            Duration::try_from_secs_f64(secs)
                .unwrap_or(MAX_RETRY_AFTER)
                .min(MAX_RETRY_AFTER)
        })
    };
    if let Some(wait) = header_text(headers, "retry-after-ms")
        .and_then(|t| t.trim().parse::<f64>().ok())
        .and_then(|ms| seconds(ms / 1000.0))
    {
        return Some(wait);
    }
    let text = header_text(headers, "retry-after")?;
    let text = text.trim();
    if let Some(wait) = text.parse::<f64>().ok().and_then(seconds) {
        return Some(wait);
    }
    let when = chrono::DateTime::parse_from_rfc2822(text).ok()?;
    let delta = when.with_timezone(&chrono::Utc) - now;
    Some(
        delta
            .to_std()
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

/// `base × 2^attempt`, capped, minus up to 25% jitter (the official SDKs' policy).
fn backoff(options: &ClientOptions, attempt: u32) -> Duration {
    let raw = options
        .backoff_base
        .saturating_mul(2u32.saturating_pow(attempt))
        .min(options.backoff_cap);
    raw.mul_f64(1.0 - 0.25 * fastrand::f64())
}

/// `(error.type, error.message, request_id)` from an error body; tolerant of anything.
fn parse_error_envelope(bytes: &[u8]) -> (String, String, Option<String>) {
    let value: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    let error_type = clean_text(value["error"]["type"].as_str().unwrap_or("unknown"), 100);
    let message = match value["error"]["message"].as_str() {
        Some(message) => clean_text(message, MAX_MESSAGE_CHARS),
        None => {
            // Not the envelope (an HTML page from a proxy, say): quote the start of the body,
            // cut on a character boundary.
            let text = clean_text(&String::from_utf8_lossy(bytes), 200);
            if text.is_empty() {
                "(empty body)".to_owned()
            } else {
                text
            }
        }
    };
    let request_id = value["request_id"].as_str().map(|id| clean_text(id, 200));
    (error_type, message, request_id)
}

/// Walks a list endpoint with `after_id = last_id` until `has_more` is false.
pub struct Pager<T> {
    client: AdminClient,
    segments: Vec<String>,
    query: Vec<(String, String)>,
    after_id: Option<String>,
    /// Every cursor already sent: a repeat means a broken server and would loop forever.
    seen: HashSet<String>,
    done: bool,
    marker: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Pager<T> {
    /// The next page, or `None` once the list has been read to its end.
    pub async fn next_page(&mut self) -> Result<Option<Vec<T>>, ApiError> {
        if self.done {
            return Ok(None);
        }
        let mut query = self.query.clone();
        query.push((
            "limit".to_owned(),
            self.client.inner.options.page_size.to_string(),
        ));
        if let Some(after_id) = &self.after_id {
            query.push(("after_id".to_owned(), after_id.clone()));
        }
        let segments: Vec<&str> = self.segments.iter().map(String::as_str).collect();
        let page: Page<T> = self
            .client
            .execute(Method::GET, &segments, &query, None, true)
            .await?
            .value;
        if !page.has_more {
            self.done = true;
            return Ok(Some(page.data));
        }
        let call = || Call {
            method: "GET",
            path: format!("/v1/organizations/{}", self.segments.join("/")),
        };
        let Some(last_id) = page.last_id else {
            return Err(ApiError::Decode {
                call: call(),
                reason: "has_more is true but last_id is null; the list cannot be read to its end"
                    .to_owned(),
                request_id: None,
            });
        };
        if !self.seen.insert(last_id.clone()) {
            return Err(ApiError::CursorLoop {
                call: call(),
                cursor: clean_text(&last_id, 200),
            });
        }
        self.after_id = Some(last_id);
        Ok(Some(page.data))
    }

    /// True once the last page was returned.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Reads every page into one vector.
    pub async fn collect_all(mut self) -> Result<Vec<T>, ApiError> {
        let mut all = Vec::new();
        while let Some(page) = self.next_page().await? {
            all.extend(page);
        }
        Ok(all)
    }

    /// The pages as a stream, ending after the last page or the first error.
    pub fn into_stream(self) -> impl Stream<Item = Result<Vec<T>, ApiError>> {
        futures::stream::unfold(Some(self), |state| async move {
            let mut pager = state?;
            match pager.next_page().await {
                Ok(Some(page)) => Some((Ok(page), Some(pager))),
                Ok(None) => None,
                Err(error) => Some((Err(error), None)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn loopback_http_only() {
        let ok = [
            "https://api.anthropic.com",
            "http://127.0.0.1:8787",
            "http://[::1]:1",
            "http://localhost:9",
        ];
        for url in ok {
            assert!(check_base_url(&Url::parse(url).unwrap()).is_ok(), "{url}");
        }
        let bad = [
            "http://api.anthropic.com",
            "http://10.0.0.1",
            "ftp://127.0.0.1",
            "http://localhost.evil.com",
        ];
        for url in bad {
            assert!(check_base_url(&Url::parse(url).unwrap()).is_err(), "{url}");
        }
    }

    #[test]
    fn retry_decision_table() {
        let none = headers(&[]);
        let yes = headers(&[("x-should-retry", "true")]);
        let no = headers(&[("x-should-retry", "false")]);
        let cases = [
            (429, &none, true, true),
            (500, &none, true, true),
            (529, &none, true, true),
            (408, &none, true, true),
            (409, &none, true, true),
            (400, &none, true, false),
            (401, &none, true, false),
            (404, &none, true, false),
            (500, &none, false, false),
            (429, &none, false, true),
            (429, &no, false, false),
            (500, &no, true, false),
            (400, &yes, true, true),
            (500, &yes, false, false),
        ];
        for (status, headers, idempotent, want) in cases {
            assert_eq!(
                should_retry(status, headers, idempotent),
                want,
                "{status} {headers:?} {idempotent}"
            );
        }
    }

    #[test]
    fn a_huge_retry_after_is_capped_not_a_panic() {
        let now: chrono::DateTime<chrono::Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        for value in [
            "1e308",
            "1e20",
            "18446744073709551616",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            assert_eq!(
                retry_after(&headers(&[("retry-after", value)]), now),
                Some(MAX_RETRY_AFTER),
                "{value}"
            );
        }
        assert_eq!(
            retry_after(&headers(&[("retry-after-ms", "1e308")]), now),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn retry_after_prefers_ms() {
        let h = headers(&[("retry-after-ms", "250"), ("retry-after", "3")]);
        assert_eq!(
            retry_after(&h, crate::clock::Clock::now(&crate::clock::SystemClock)),
            Some(Duration::from_millis(250))
        );
        let h = headers(&[("retry-after", "3")]);
        assert_eq!(
            retry_after(&h, crate::clock::Clock::now(&crate::clock::SystemClock)),
            Some(Duration::from_secs(3))
        );
        let h = headers(&[("retry-after", "soon")]);
        assert_eq!(
            retry_after(&h, crate::clock::Clock::now(&crate::clock::SystemClock)),
            None
        );
    }

    #[test]
    fn backoff_is_capped_with_jitter() {
        let options = ClientOptions::new(Url::parse("https://x").unwrap());
        for attempt in 0..10 {
            let wait = backoff(&options, attempt);
            let full = Duration::from_millis(500 * 2u64.pow(attempt)).min(Duration::from_secs(8));
            assert!(
                wait <= full && wait >= full.mul_f64(0.75),
                "{attempt}: {wait:?}"
            );
        }
    }

    #[test]
    fn clean_text_cuts_on_characters_and_escapes_controls() {
        let text = "é".repeat(300);
        assert_eq!(clean_text(&text, 200).chars().count(), 201);
        assert_eq!(
            clean_text("a\nb\u{202E}c\u{1b}", 50),
            "a\\nb\\u{202e}c\\u{1b}"
        );
        let (_, message, _) = parse_error_envelope("€".repeat(300).as_bytes());
        assert!(message.ends_with('…'));
    }

    #[tokio::test]
    async fn the_gate_halves_once_per_round_trip_and_grows_back() {
        let gate = Gate::new(8);
        let sent = Instant::now();
        gate.on_throttle(sent, Duration::ZERO);
        gate.on_throttle(sent, Duration::ZERO);
        assert_eq!(gate.limit(), 4, "two answers of one round trip cut once");
        gate.on_throttle(Instant::now(), Duration::ZERO);
        assert_eq!(gate.limit(), 2);
        for _ in 0..40 {
            gate.on_success();
        }
        assert_eq!(gate.limit(), 8);
        let _permit = gate.acquire().await;
    }

    #[test]
    fn debug_hides_the_key() {
        let client = AdminClient::new(
            ClientOptions::new(Url::parse("https://api.anthropic.com").unwrap()),
            SecretString::from("sk-ant-admin01-supersecret"),
        )
        .unwrap();
        assert!(!format!("{client:?}").contains("supersecret"));
    }
}
