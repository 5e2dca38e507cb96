//! A Google Workspace Admin SDK Directory API simulator: the OAuth 2.0 token endpoint of a
//! service account with domain-wide delegation and `users.list`, on its own port, serving the
//! seeded directory ([`SimState::directory`](crate::SimState::directory)).
//!
//! - `POST /token` takes the JWT bearer grant (`grant_type=urn:ietf:params:oauth:grant-type:
//!   jwt-bearer`, `assertion=<RS256 JWT>`). The JWT must be signed with the simulated service
//!   account's key ([`SimHandle::google_service_account_key`](crate::SimHandle)), have
//!   `iss` = [`GOOGLE_CLIENT_EMAIL`], `aud` = this endpoint, `scope` holding
//!   [`GOOGLE_SCOPE`] (or the read-write user scope), `sub` = an administrator of the directory
//!   ([`google_admin`]), and `iat`/`exp` at most an hour apart around the wall clock (five minutes
//!   of skew allowed). It answers `{access_token, expires_in: 3599, token_type: "Bearer"}`, or an
//!   OAuth error `{error, error_description}` (400 `invalid_grant`, 401 `unauthorized_client`).
//! - `GET /admin/directory/v1/users?customer=my_customer&maxResults=N&pageToken=…&projection=basic
//!   &showDeleted=…` with `Authorization: Bearer <token>`: `{kind: "admin#directory#users", users,
//!   nextPageToken}`. As documented, `showDeleted=true` lists the deleted users *only*; without it
//!   the users not deleted. `users` is left out of an empty page, as Google does. `maxResults` is
//!   1 to 500 (default 100). A listing is fixed when its first page is asked for (the page token
//!   names it), so pages do not shift while the organization changes; the last 16 are kept.
//! - Errors use Google's envelope `{error: {code, message, errors: [{domain, reason, message}],
//!   status}}`: 400 `invalid`, 401 `authError`, 404 `notFound`, 500 `backendError`, 503
//!   `backendError`, and over the rate limit alternately 403 `userRateLimitExceeded` and 429
//!   `rateLimitExceeded` (Google answers both; neither has a `Retry-After`).
//!
//! How the seeded states read: suspended → `suspended: true, suspensionReason: "ADMIN"`; locked
//! out → `suspended: true, suspensionReason: "WEB_LOGIN_REQUIRED"` (both with `suspensionTime`);
//! deprovisioned → `archived: true`; deleted → listed only with `showDeleted=true`, with its
//! `deletionTime`. Every user also has the non-editable alias `local@<domain>.test-google-a.com`
//! that Google gives each account, upper-cased as people type it.
//!
//! Faults and the rate limit work as for the Admin API ([`Faults`](crate::Faults)), with their own
//! settings and counter: an injected error is a 500 or a 503, the latency and dropped or broken
//! bodies are the same.

mod key;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{RawQuery, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

pub(crate) use key::ServiceAccount;
pub use key::GOOGLE_CLIENT_EMAIL;

use crate::directory::{DirectoryEntry, DirectoryState};
use crate::faults::{Action, FaultState, Faults, RateLimiter};
use crate::prng::mix;
use crate::server::{dropped, lock, malform, Shared};

/// The read-only user scope orgwarden asks for.
pub const GOOGLE_SCOPE: &str = "https://www.googleapis.com/auth/admin.directory.user.readonly";
/// The read-write user scope, which also allows listing.
const GOOGLE_SCOPE_RW: &str = "https://www.googleapis.com/auth/admin.directory.user";
/// The JWT bearer grant type.
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Lifetime of an access token, as Google gives it.
const TOKEN_SECS: u64 = 3599;
/// Clock skew tolerated on `iat` and `exp`.
const SKEW_SECS: i64 = 300;
/// Listings kept for their page tokens.
const KEPT_LISTINGS: usize = 16;

/// The directory administrator the service account may impersonate (the JWT's `sub`).
pub fn google_admin() -> String {
    format!("it-admin@{}", crate::MAIN_DOMAIN)
}

/// The Google simulator's state, beside the Admin API's [`Shared`].
pub(crate) struct Google {
    org: Arc<Shared>,
    account: Arc<ServiceAccount>,
    /// `http://127.0.0.1:PORT`.
    base_url: String,
    faults: Mutex<FaultState>,
    limiter: Mutex<RateLimiter>,
    served: AtomicU64,
    tokens: Mutex<HashMap<String, Instant>>,
    listings: Mutex<Listings>,
}

#[derive(Default)]
struct Listings {
    next: u64,
    kept: VecDeque<(u64, Arc<Vec<Value>>)>,
}

impl Google {
    pub(crate) fn new(
        org: Arc<Shared>,
        base_url: String,
        rps: Option<u32>,
    ) -> anyhow::Result<Google> {
        let account = ServiceAccount::for_seed(org.seed)?;
        Ok(Google {
            org,
            account,
            base_url,
            faults: Mutex::new(FaultState::new(Faults::default())),
            limiter: Mutex::new(RateLimiter::new(rps)),
            served: AtomicU64::new(0),
            tokens: Mutex::new(HashMap::new()),
            listings: Mutex::new(Listings::default()),
        })
    }

    pub(crate) fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The service account's JSON key file, its `token_uri` pointing at this simulator.
    pub(crate) fn key_file(&self) -> String {
        self.account.key_file(&format!("{}/token", self.base_url))
    }

    pub(crate) fn set_faults(&self, faults: Faults) {
        *lock(&self.faults) = FaultState::new(faults);
    }

    pub(crate) fn set_rps(&self, rps: Option<u32>) {
        *lock(&self.limiter) = RateLimiter::new(rps);
    }

    pub(crate) fn set_quota_per_minute(&self, limit: u32) {
        *lock(&self.limiter) = RateLimiter::per_window(limit, Duration::from_secs(60));
    }

    pub(crate) fn requests_served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }
}

/// Builds the router with the pipeline (rate limit, faults) around it.
pub(crate) fn router(google: Arc<Google>) -> Router {
    Router::new()
        .route("/token", post(token))
        .route("/admin/directory/v1/users", get(list_users))
        .fallback(|| async { GoogleError::not_found().into_response() })
        .layer(middleware::from_fn_with_state(google.clone(), pipeline))
        .with_state(google)
}

/// A Google API error answer.
#[derive(Debug)]
struct GoogleError {
    code: StatusCode,
    reason: &'static str,
    message: String,
    status: &'static str,
}

impl GoogleError {
    fn new(
        code: StatusCode,
        reason: &'static str,
        status: &'static str,
        message: impl Into<String>,
    ) -> Self {
        GoogleError {
            code,
            reason,
            message: message.into(),
            status,
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid",
            "INVALID_ARGUMENT",
            message,
        )
    }

    fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "notFound", "NOT_FOUND", "Not Found")
    }

    fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authError",
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, \
             login cookie or other valid authentication credential.",
        )
    }

    fn rate_limited(n: u64) -> Self {
        if n.is_multiple_of(2) {
            Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rateLimitExceeded",
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user'.",
            )
        } else {
            Self::new(
                StatusCode::FORBIDDEN,
                "userRateLimitExceeded",
                "PERMISSION_DENIED",
                "User Rate Limit Exceeded",
            )
        }
    }
}

impl IntoResponse for GoogleError {
    fn into_response(self) -> Response {
        let domain = if self.reason.contains("RateLimit") || self.reason == "rateLimitExceeded" {
            "usageLimits"
        } else {
            "global"
        };
        let body = json!({
            "error": {
                "code": self.code.as_u16(),
                "message": self.message,
                "errors": [{"message": self.message, "domain": domain, "reason": self.reason}],
                "status": self.status,
            }
        });
        (self.code, Json(body)).into_response()
    }
}

/// An OAuth token-endpoint error, `{error, error_description}`.
fn oauth_error(code: StatusCode, error: &str, description: &str) -> Response {
    (
        code,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// Rate limit, then faults, then the route; breaks a 200 body when a malformed answer was chosen.
async fn pipeline(State(g): State<Arc<Google>>, req: Request, next: Next) -> Response {
    let n = g.served.fetch_add(1, Ordering::Relaxed) + 1;
    if lock(&g.limiter).try_acquire(Instant::now()).is_err() {
        return GoogleError::rate_limited(n).into_response();
    }
    let plan = lock(&g.faults).next_plan(g.org.seed ^ 0x600_61e, req.uri().path());
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    match plan.action {
        Action::Drop => return dropped(),
        Action::InternalError => {
            return GoogleError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "backendError",
                "INTERNAL",
                "Internal error encountered.",
            )
            .into_response()
        }
        Action::Overloaded => {
            return GoogleError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "backendError",
                "UNAVAILABLE",
                "The service is currently unavailable.",
            )
            .into_response()
        }
        Action::Pass | Action::Malform(_) => {}
    }
    if plan.key_revoked {
        return GoogleError::unauthenticated().into_response();
    }
    let response = next.run(req).await;
    match plan.action {
        Action::Malform(kind) if response.status() == StatusCode::OK => {
            malform(response, kind).await
        }
        _ => response,
    }
}

/// The wall clock: JWTs are signed with it, whatever time the simulated organization shows.
#[allow(clippy::disallowed_methods)]
fn wall_clock() -> DateTime<Utc> {
    Utc::now()
}

/// `POST /token`: the JWT bearer grant.
async fn token(State(g): State<Arc<Google>>, body: Bytes) -> Response {
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some(JWT_BEARER) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Invalid grant_type: ",
        );
    }
    let Some(assertion) = form.get("assertion") else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Missing required parameter: assertion",
        );
    };
    if let Err(response) = check_assertion(&g, assertion, wall_clock()) {
        return response;
    }
    let n = g.served.load(Ordering::Relaxed);
    let token = format!(
        "ya29.sim-{:016x}{:016x}",
        mix(g.org.seed ^ n),
        mix(n.wrapping_mul(31) ^ 0x70_6b)
    );
    let expires = Instant::now() + Duration::from_secs(TOKEN_SECS);
    let mut tokens = lock(&g.tokens);
    tokens.retain(|_, until| *until > Instant::now());
    tokens.insert(token.clone(), expires);
    Json(json!({"access_token": token, "expires_in": TOKEN_SECS, "token_type": "Bearer"}))
        .into_response()
}

/// Checks a JWT bearer assertion as Google's token endpoint does. The error is the response to
/// send, built once per refused request, so its size does not matter.
#[allow(clippy::result_large_err)]
fn check_assertion(g: &Google, jwt: &str, now: DateTime<Utc>) -> Result<(), Response> {
    let invalid = |text: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", text);
    let parts: Vec<&str> = jwt.split('.').collect();
    let [head, claims, signature] = parts[..] else {
        return Err(invalid("Invalid JWT: malformed"));
    };
    let decode = |part: &str| -> Option<Value> {
        let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    let (Some(head), Some(claims)) = (decode(head), decode(claims)) else {
        return Err(invalid("Invalid JWT: malformed"));
    };
    if head["alg"] != "RS256" {
        return Err(invalid(
            "Invalid JWT: unsupported algorithm, expected RS256",
        ));
    }
    let signed = &jwt[..jwt.len() - signature.len() - 1];
    let signature_ok = URL_SAFE_NO_PAD
        .decode(signature)
        .is_ok_and(|sig| g.account.verifies(signed.as_bytes(), &sig));
    if claims["iss"] != GOOGLE_CLIENT_EMAIL {
        return Err(invalid("Invalid JWT: no such service account"));
    }
    if !signature_ok {
        return Err(invalid("Invalid JWT Signature."));
    }
    let token_uri = format!("{}/token", g.base_url);
    if claims["aud"] != token_uri.as_str() {
        return Err(invalid(
            "Invalid JWT: audience does not match the token endpoint",
        ));
    }
    let (Some(iat), Some(exp)) = (claims["iat"].as_i64(), claims["exp"].as_i64()) else {
        return Err(invalid("Invalid JWT: iat and exp are required"));
    };
    let now = now.timestamp();
    if exp <= iat || exp - iat > 3600 || iat > now + SKEW_SECS || exp < now - SKEW_SECS {
        return Err(invalid(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable \
             timeframe. Check your iat and exp values in the JWT claim.",
        ));
    }
    let scopes = claims["scope"].as_str().unwrap_or_default();
    if !scopes
        .split(' ')
        .any(|s| s == GOOGLE_SCOPE || s == GOOGLE_SCOPE_RW)
    {
        return Err(oauth_error(
            StatusCode::UNAUTHORIZED,
            "unauthorized_client",
            "Client is unauthorized to retrieve access tokens using this method, or client not \
             authorized for any of the scopes requested.",
        ));
    }
    let sub = claims["sub"].as_str().unwrap_or_default();
    if !sub.eq_ignore_ascii_case(&google_admin()) {
        return Err(invalid("Invalid email or User ID"));
    }
    Ok(())
}

fn bearer_ok(g: &Google, headers: &HeaderMap) -> bool {
    let Some(token) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    lock(&g.tokens)
        .get(token)
        .is_some_and(|until| *until > Instant::now())
}

/// `GET /admin/directory/v1/users`.
async fn list_users(
    State(g): State<Arc<Google>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    if !bearer_ok(&g, &headers) {
        return GoogleError::unauthenticated().into_response();
    }
    match page(&g, query.as_deref().unwrap_or("")) {
        Ok(body) => Json(body).into_response(),
        Err(e) => e.into_response(),
    }
}

fn page(g: &Google, query: &str) -> Result<Value, GoogleError> {
    let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    match params.get("customer").map(String::as_str) {
        Some("my_customer") | Some("C0sim0rg") => {}
        Some(_) => {
            return Err(GoogleError::new(
                StatusCode::NOT_FOUND,
                "notFound",
                "NOT_FOUND",
                "Resource Not Found: customer",
            ))
        }
        None if params.contains_key("domain") => {}
        None => return Err(GoogleError::invalid("Bad Request")),
    }
    let max = match params.get("maxResults") {
        None => 100,
        Some(text) => match text.parse::<usize>() {
            Ok(n @ 1..=500) => n,
            _ => {
                return Err(GoogleError::invalid(format!(
                    "Invalid value '{text}'. Values must be within the range: [1, 500]"
                )))
            }
        },
    };
    match params.get("projection").map(String::as_str) {
        None | Some("basic" | "full" | "custom") => {}
        Some(other) => {
            return Err(GoogleError::invalid(format!(
                "Invalid value for: {other} is not a valid value"
            )))
        }
    }
    let deleted = match params.get("showDeleted").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(GoogleError::invalid(format!(
                "Invalid value for: {other} is not a valid value"
            )))
        }
    };
    let (listing, users, offset) = match params.get("pageToken") {
        None => {
            let users = Arc::new(listing_of(g, deleted));
            let mut listings = lock(&g.listings);
            listings.next += 1;
            let id = listings.next;
            listings.kept.push_back((id, users.clone()));
            while listings.kept.len() > KEPT_LISTINGS {
                listings.kept.pop_front();
            }
            (id, users, 0)
        }
        Some(token) => {
            let (id, offset) = parse_page_token(token, deleted)
                .ok_or_else(|| GoogleError::invalid("Invalid pageToken"))?;
            let listings = lock(&g.listings);
            let users = listings
                .kept
                .iter()
                .find(|(kept, _)| *kept == id)
                .map(|(_, users)| users.clone())
                .ok_or_else(|| GoogleError::invalid("Invalid pageToken"))?;
            (id, users, offset)
        }
    };
    let end = (offset + max).min(users.len());
    let slice = users.get(offset..end).unwrap_or_default();
    let mut body = json!({
        "kind": "admin#directory#users",
        "etag": format!("\"sim-{listing}\""),
    });
    if !slice.is_empty() {
        body["users"] = Value::Array(slice.to_vec());
    }
    if end < users.len() {
        body["nextPageToken"] = Value::String(page_token(listing, end, deleted));
    }
    Ok(body)
}

fn page_token(listing: u64, offset: usize, deleted: bool) -> String {
    STANDARD.encode(format!("{listing}:{offset}:{}", u8::from(deleted)))
}

fn parse_page_token(token: &str, deleted: bool) -> Option<(u64, usize)> {
    let text = String::from_utf8(STANDARD.decode(token).ok()?).ok()?;
    let mut parts = text.split(':');
    let listing = parts.next()?.parse().ok()?;
    let offset = parts.next()?.parse().ok()?;
    let kind: u8 = parts.next()?.parse().ok()?;
    (kind == u8::from(deleted) && parts.next().is_none()).then_some((listing, offset))
}

/// The users of one listing: the deleted ones, or the others, as Google JSON.
fn listing_of(g: &Google, deleted: bool) -> Vec<Value> {
    let (directory, now) = g.org.read(|state| (state.directory(), state.now()));
    directory
        .iter()
        .filter(|e| (e.state == DirectoryState::Deleted) == deleted)
        .map(|e| user_json(e, now))
        .collect()
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// The non-editable alias Google gives every account on a domain's test alias domain.
pub fn google_test_alias(email: &str) -> String {
    match email.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{domain}.test-google-a.com").to_uppercase(),
        None => email.to_uppercase(),
    }
}

/// One directory entry as a Google user resource (`projection=basic`).
fn user_json(e: &DirectoryEntry, now: DateTime<Utc>) -> Value {
    let mut user = json!({
        "kind": "admin#directory#user",
        "id": e.id,
        "etag": format!("\"{}\"", e.id),
        "primaryEmail": e.email,
        "name": {
            "givenName": e.given_name,
            "familyName": e.family_name,
            "fullName": format!("{} {}", e.given_name, e.family_name).trim().to_string(),
        },
        "isAdmin": false,
        "isDelegatedAdmin": false,
        "creationTime": time(e.state_changed - chrono::Duration::days(400)),
        "lastLoginTime": time(if e.state.is_active() { now - chrono::Duration::hours(5) } else { e.state_changed }),
        "agreedToTerms": true,
        "suspended": false,
        "archived": false,
        "changePasswordAtNextLogin": false,
        "ipWhitelisted": false,
        "customerId": "C0sim0rg",
        "orgUnitPath": "/",
        "isMailboxSetup": true,
        "includeInGlobalAddressList": true,
        "nonEditableAliases": [google_test_alias(&e.email)],
    });
    if !e.aliases.is_empty() {
        user["aliases"] = json!(e.aliases);
    }
    match e.state {
        DirectoryState::Active => {}
        DirectoryState::Suspended | DirectoryState::LockedOut => {
            user["suspended"] = Value::Bool(true);
            user["suspensionReason"] = json!(if e.state == DirectoryState::Suspended {
                "ADMIN"
            } else {
                "WEB_LOGIN_REQUIRED"
            });
            user["suspensionTime"] = json!(time(e.state_changed));
        }
        DirectoryState::Deprovisioned => user["archived"] = Value::Bool(true),
        DirectoryState::Deleted => user["deletionTime"] = json!(time(e.state_changed)),
    }
    user
}
