//! The Okta simulator: the parts of Okta's Management API a directory reader uses.
//!
//! - `GET /api/v1/users`: `limit` (default and maximum 200), the `after` cursor, `Link` headers
//!   (`rel="self"`, and `rel="next"` while more pages follow), `search` and `filter` expressions
//!   (`attr eq "v"`, `attr sw "v"`, `attr pr`, joined by `and`/`or`, on `status`, `id` and the
//!   profile's `login`, `email`, `secondEmail`, `firstName`, `lastName`). As in Okta, a list
//!   without `search`, `filter` or `q` leaves out `DEPROVISIONED` users; a search or filter
//!   returns every status it matches.
//! - `GET /api/v1/apps/{appId}/users`: the Claude application's assignments (`limit` default 50,
//!   maximum 500, `after`, `Link`), only for the configured app id (another is a 404).
//! - Authentication: `Authorization: SSWS <api token>`, or `Bearer <token>` from
//!   `POST /oauth2/v1/token` (`client_credentials` with a `private_key_jwt` client assertion,
//!   RS256, verified with the configured public key; `iss` = `sub` = the client id, `aud` = the
//!   token endpoint's URL, `exp` in the future and at most an hour after `iat`, a `jti` used once).
//!   Tokens live an hour (`expires_in: 3600`). Scopes are checked at the token endpoint only.
//! - Errors: `{errorCode, errorSummary, errorLink, errorId, errorCauses}` (the token endpoint
//!   answers the OAuth `{error, error_description}` instead).
//! - Rate limit: a fixed window per server for `/api/v1/` (default 600 requests a minute), the
//!   `X-Rate-Limit-Limit`, `-Remaining` and `-Reset` (UTC epoch seconds) headers on every answer
//!   and `429` `E0000047` once the window is spent.
//!
//! Directory states become Okta statuses: active people are `ACTIVE` (a few, chosen by id,
//! `PASSWORD_EXPIRED`, `RECOVERY` or `PROVISIONED`: still able to sign in or about to), suspended
//! `SUSPENDED`, locked out `LOCKED_OUT`, deprovisioned `DEPROVISIONED`. Okta has no listed
//! "deleted" user (a deleted user is gone), so a deleted person is served as `DEPROVISIONED`, the
//! state a user is in before deletion. An alias is the profile's `secondEmail`.

use std::collections::HashSet;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{
    after, authorization, broken_connection, form, local_listener, same_secret, verify_rs256,
    Before, IdpCore, IdpServer,
};
use crate::faults::Faults;
use crate::server::lock;
use crate::{DirectoryEntry, DirectoryState, SimHandle};

/// The API token the Okta simulator accepts unless told otherwise (a demo value, not a secret).
pub const DEMO_OKTA_TOKEN: &str = "00orgwarden-okta-simulator-demo-token";
/// The OAuth service app's client id the simulator accepts unless told otherwise.
pub const DEMO_OKTA_CLIENT_ID: &str = "0oaorgwardensim0001";
/// The id of the simulated Claude application.
pub const OKTA_CLAUDE_APP_ID: &str = "0oaclaude000000000001";

const USERS_MAX: usize = 200;
const APP_USERS_DEFAULT: usize = 50;
const APP_USERS_MAX: usize = 500;
const TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
const SCOPES: [&str; 2] = ["okta.users.read", "okta.apps.read"];

/// How to start an Okta simulator.
#[derive(Clone)]
pub struct OktaOptions {
    /// The `SSWS` API token accepted.
    pub api_token: String,
    /// The OAuth service app's client id.
    pub client_id: String,
    /// Its public key (PKCS#1 DER), which verifies the client assertions.
    pub public_key: Vec<u8>,
    /// The Claude application's id.
    pub app_id: String,
    /// Requests to `/api/v1/` allowed per window.
    pub rate_limit: u32,
    pub rate_window: Duration,
    /// Faults injected from the first request on.
    pub faults: Faults,
}

impl Default for OktaOptions {
    fn default() -> Self {
        OktaOptions {
            api_token: DEMO_OKTA_TOKEN.to_string(),
            client_id: DEMO_OKTA_CLIENT_ID.to_string(),
            public_key: super::demo_public_key(),
            app_id: OKTA_CLAUDE_APP_ID.to_string(),
            rate_limit: 600,
            rate_window: Duration::from_secs(60),
            faults: Faults::default(),
        }
    }
}

/// A fixed rate-limit window.
struct Window {
    limit: u32,
    length: Duration,
    started: Instant,
    used: u32,
}

impl Window {
    /// Counts a request: whether it is allowed, the limit, the requests left and the time until
    /// the reset.
    fn take(&mut self, now: Instant) -> (bool, u32, u32, Duration) {
        if now.duration_since(self.started) >= self.length {
            self.started = now;
            self.used = 0;
        }
        let allowed = self.used < self.limit;
        if allowed {
            self.used += 1;
        }
        let left = self.length.saturating_sub(now.duration_since(self.started));
        (allowed, self.limit, self.limit - self.used, left)
    }
}

struct OktaShared {
    core: Arc<IdpCore>,
    opts: OktaOptions,
    base_url: String,
    window: Mutex<Window>,
    jtis: Mutex<HashSet<String>>,
}

/// A running Okta simulator; dereferences to its [`IdpServer`] (URL, faults, shutdown).
pub struct OktaSim {
    server: IdpServer,
    shared: Arc<OktaShared>,
}

impl Deref for OktaSim {
    type Target = IdpServer;
    fn deref(&self) -> &IdpServer {
        &self.server
    }
}

impl OktaSim {
    /// Serves the directory of `sim`'s live state on `listener`.
    pub async fn start(
        listener: tokio::net::TcpListener,
        sim: &SimHandle,
        opts: OktaOptions,
    ) -> anyhow::Result<OktaSim> {
        let core = Arc::new(IdpCore::new(sim, opts.faults.clone(), 0x0C7A));
        let shared = Arc::new(OktaShared {
            core: core.clone(),
            base_url: format!("http://{}", listener.local_addr()?),
            window: Mutex::new(Window {
                limit: opts.rate_limit,
                length: opts.rate_window,
                started: Instant::now(),
                used: 0,
            }),
            jtis: Mutex::new(HashSet::new()),
            opts,
        });
        let app = Router::new()
            .route("/oauth2/v1/token", post(token))
            .route("/api/v1/users", get(list_users))
            .route("/api/v1/apps/{app_id}/users", get(list_app_users))
            .fallback(fallback)
            .layer(middleware::from_fn_with_state(shared.clone(), pipeline))
            .with_state(shared.clone());
        let server = IdpServer::spawn(listener, core, app, "Okta simulator").await?;
        Ok(OktaSim { server, shared })
    }

    /// Like [`Self::start`] on `127.0.0.1` with a port chosen by the system.
    pub async fn start_local(sim: &SimHandle, opts: OktaOptions) -> anyhow::Result<OktaSim> {
        Self::start(local_listener().await?, sim, opts).await
    }

    /// The API token accepted.
    pub fn api_token(&self) -> &str {
        &self.shared.opts.api_token
    }

    /// Changes the rate limit; a fresh window starts now.
    pub fn set_rate_limit(&self, limit: u32, window: Duration) {
        *lock(&self.shared.window) = Window {
            limit,
            length: window,
            started: Instant::now(),
            used: 0,
        };
    }
}

type St = State<Arc<OktaShared>>;

/// An Okta error answer.
fn error(status: StatusCode, code: &str, summary: &str, core: &IdpCore) -> Response {
    let n = core.served.load(std::sync::atomic::Ordering::Relaxed);
    let id = format!("oae{:019x}", crate::prng::mix(core.seed ^ n));
    let body = json!({
        "errorCode": code,
        "errorSummary": summary,
        "errorLink": code,
        "errorId": id,
        "errorCauses": [],
    });
    (status, Json(body)).into_response()
}

/// An OAuth error answer of the token endpoint.
fn oauth_error(status: StatusCode, code: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": code, "error_description": description})),
    )
        .into_response()
}

fn unauthorized(core: &IdpCore) -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "E0000011",
        "Invalid token provided",
        core,
    )
}

/// The wall clock in epoch seconds, for the `X-Rate-Limit-Reset` header.
fn epoch_secs() -> u64 {
    // Okta's reset time is real UTC epoch time, whatever the simulated clock reads.
    #[allow(clippy::disallowed_methods)]
    let now = std::time::SystemTime::now();
    now.duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn rate_headers(headers: &mut HeaderMap, limit: u32, remaining: u32, left: Duration) {
    let reset = epoch_secs() + left.as_secs() + u64::from(left.subsec_nanos() > 0);
    for (name, value) in [
        ("x-rate-limit-limit", limit.to_string()),
        ("x-rate-limit-remaining", remaining.to_string()),
        ("x-rate-limit-reset", reset.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
}

/// Faults, rate limit and authentication around every route.
async fn pipeline(State(sh): St, req: Request, next: Next) -> Response {
    let core = &sh.core;
    let path = req.uri().path().to_string();
    let malformed = match core.before(&path).await {
        Before::Drop => return broken_connection(),
        Before::Internal => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "E0000009",
                "Internal Server Error",
                core,
            )
        }
        Before::Unavailable => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "E0000009",
                "Service Unavailable",
                core,
            )
        }
        Before::Revoked => return unauthorized(core),
        Before::Pass(m) => m,
    };
    if !path.starts_with("/api/") {
        return after(next.run(req).await, malformed).await;
    }
    let (allowed, limit, remaining, left) = lock(&sh.window).take(Instant::now());
    let mut response = if !allowed {
        error(
            StatusCode::TOO_MANY_REQUESTS,
            "E0000047",
            "API call exceeded rate limit due to too many requests.",
            core,
        )
    } else if !authenticated(&sh, req.headers()) {
        unauthorized(core)
    } else {
        after(next.run(req).await, malformed).await
    };
    rate_headers(response.headers_mut(), limit, remaining, left);
    response
}

fn authenticated(sh: &OktaShared, headers: &HeaderMap) -> bool {
    match authorization(headers, "SSWS ") {
        Some(token) => same_secret(token, &sh.opts.api_token),
        None => sh.core.bearer_ok(headers),
    }
}

/// `POST /oauth2/v1/token`: client credentials with a private-key JWT.
async fn token(State(sh): St, body: Bytes) -> Response {
    let params = form(&String::from_utf8_lossy(&body));
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    if get("grant_type") != "client_credentials" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The authorization grant type is not supported by the authorization server.",
        );
    }
    if get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed: a private_key_jwt client_assertion is required.",
        );
    }
    let claims = match verify_rs256(get("client_assertion"), &sh.opts.public_key) {
        Ok(c) => c,
        Err(why) => return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", &why),
    };
    if let Err(why) = check_claims(&sh, &claims) {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", why);
    }
    let scope = get("scope");
    if scope.is_empty() || scope.split(' ').any(|s| !SCOPES.contains(&s)) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "One or more scopes are not configured for the authorization server resource.",
        );
    }
    let access_token = sh.core.issue_token("eyJraWQiOiJzaW0ifQ.", TOKEN_LIFETIME);
    Json(json!({
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME.as_secs(),
        "access_token": access_token,
        "scope": scope,
    }))
    .into_response()
}

fn check_claims(sh: &OktaShared, claims: &Value) -> Result<(), &'static str> {
    let client_id = sh.opts.client_id.as_str();
    if claims["iss"] != client_id || claims["sub"] != client_id {
        return Err("The client_assertion iss and sub must be the client_id.");
    }
    if claims["aud"] != format!("{}/oauth2/v1/token", sh.base_url) {
        return Err(
            "The audience claim for client_assertion must be the endpoint invoked for the request.",
        );
    }
    let now = epoch_secs() as i64;
    let (Some(iat), Some(exp)) = (claims["iat"].as_i64(), claims["exp"].as_i64()) else {
        return Err("The client_assertion must have iat and exp claims.");
    };
    if exp <= now || exp - iat > 3600 {
        return Err("The client_assertion token is expired or valid for more than an hour.");
    }
    let Some(jti) = claims["jti"].as_str() else {
        return Err("The client_assertion must have a jti claim.");
    };
    if !lock(&sh.jtis).insert(jti.to_string()) {
        return Err("The client_assertion token has already been used.");
    }
    Ok(())
}

/// The Okta status of a directory entry.
fn okta_status(e: &DirectoryEntry) -> &'static str {
    match e.state {
        DirectoryState::Active => match id_hash(&e.id) % 40 {
            0 => "PASSWORD_EXPIRED",
            1 => "RECOVERY",
            2 => "PROVISIONED",
            _ => "ACTIVE",
        },
        DirectoryState::Suspended => "SUSPENDED",
        DirectoryState::LockedOut => "LOCKED_OUT",
        DirectoryState::Deprovisioned | DirectoryState::Deleted => "DEPROVISIONED",
    }
}

fn id_hash(id: &str) -> u64 {
    u64::from_str_radix(id.trim_start_matches('u'), 16).unwrap_or(0)
}

/// The Okta id of a directory entry: `00u` and the entry's hex digits.
fn okta_id(e: &DirectoryEntry) -> String {
    format!("00{}", e.id)
}

fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn user_json(e: &DirectoryEntry, base: &str) -> Value {
    let id = okta_id(e);
    let created = e.state_changed - chrono::Duration::days(400);
    json!({
        "id": id,
        "status": okta_status(e),
        "created": ts(created),
        "activated": ts(created),
        "statusChanged": ts(e.state_changed),
        "lastLogin": null,
        "lastUpdated": ts(e.state_changed),
        "passwordChanged": null,
        "type": {"id": "oty00000000000000001"},
        "profile": {
            "firstName": e.given_name,
            "lastName": e.family_name,
            "mobilePhone": null,
            "secondEmail": e.aliases.first(),
            "login": e.email,
            "email": e.email,
        },
        "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}},
        "_links": {"self": {"href": format!("{base}/api/v1/users/{id}")}},
    })
}

/// One clause of a search or filter expression.
enum Clause {
    Eq(String, String),
    Sw(String, String),
    Pr(String),
}

/// A parsed expression: clauses joined by `and`, the groups joined by `or`.
struct Expr(Vec<Vec<Clause>>);

fn parse_clause(text: &str) -> Option<Clause> {
    let text = text
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')')
        .trim();
    let (attr, rest) = text.split_once(' ')?;
    let attr = attr.to_string();
    let rest = rest.trim();
    if rest.eq_ignore_ascii_case("pr") {
        return Some(Clause::Pr(attr));
    }
    let (op, value) = rest.split_once(' ')?;
    let value = value
        .trim()
        .strip_prefix('"')?
        .strip_suffix('"')?
        .to_string();
    match op.to_ascii_lowercase().as_str() {
        "eq" => Some(Clause::Eq(attr, value)),
        "sw" => Some(Clause::Sw(attr, value)),
        _ => None,
    }
}

fn parse_expr(text: &str) -> Option<Expr> {
    let groups = text
        .split(" or ")
        .map(|g| {
            g.split(" and ")
                .map(parse_clause)
                .collect::<Option<Vec<_>>>()
        })
        .collect::<Option<Vec<_>>>()?;
    let known = |a: &str| attribute(a, None).is_some();
    let ok = groups.iter().flatten().all(|c| match c {
        Clause::Eq(a, _) | Clause::Sw(a, _) | Clause::Pr(a) => known(a),
    });
    ok.then_some(Expr(groups))
}

/// The value of a searchable attribute (`Some(None)`: known but empty); `None` when unknown.
fn attribute(attr: &str, e: Option<&DirectoryEntry>) -> Option<Option<String>> {
    let Some(e) = e else {
        return matches!(
            attr,
            "status"
                | "id"
                | "profile.login"
                | "profile.email"
                | "profile.secondEmail"
                | "profile.firstName"
                | "profile.lastName"
        )
        .then_some(None);
    };
    Some(match attr {
        "status" => Some(okta_status(e).to_string()),
        "id" => Some(okta_id(e)),
        "profile.login" | "profile.email" => Some(e.email.clone()),
        "profile.secondEmail" => e.aliases.first().cloned(),
        "profile.firstName" => Some(e.given_name.clone()),
        "profile.lastName" => Some(e.family_name.clone()),
        _ => return None,
    })
}

impl Expr {
    fn matches(&self, e: &DirectoryEntry) -> bool {
        let value = |a: &str| attribute(a, Some(e)).flatten();
        self.0.iter().any(|group| {
            group.iter().all(|c| match c {
                Clause::Eq(a, v) => value(a).is_some_and(|x| x.eq_ignore_ascii_case(v)),
                Clause::Sw(a, v) => {
                    value(a).is_some_and(|x| x.to_lowercase().starts_with(&v.to_lowercase()))
                }
                Clause::Pr(a) => value(a).is_some(),
            })
        })
    }
}

/// `limit` from the query: the default when absent, capped at `max`; `None` when not a number.
fn limit(
    params: &std::collections::HashMap<String, String>,
    default: usize,
    max: usize,
) -> Option<usize> {
    match params.get("limit") {
        None => Some(default),
        Some(v) => v.parse::<usize>().ok().map(|n| n.clamp(1, max)),
    }
}

/// One page after the cursor, sorted by id, with its `Link` headers.
/// One page of `items` (id, entry) after the `after` cursor; only the page's entries are
/// rendered to JSON (`render`), so a page of a 100k-person directory costs a sort, not 100k
/// objects.
fn page<T>(
    mut items: Vec<(String, T)>,
    params: &std::collections::HashMap<String, String>,
    limit: usize,
    url: &str,
    render: impl Fn(&str, &T) -> Value,
) -> Response {
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let start = match params.get("after") {
        Some(after) => items.partition_point(|(id, _)| id.as_str() <= after.as_str()),
        None => 0,
    };
    let rest = &items[start..];
    let shown: Vec<Value> = rest
        .iter()
        .take(limit)
        .map(|(id, item)| render(id, item))
        .collect();
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        if k != "after" && k != "limit" {
            query.append_pair(k, v);
        }
    }
    query.append_pair("limit", &limit.to_string());
    let base_query = query.finish();
    let mut links = vec![format!("<{url}?{base_query}>; rel=\"self\"")];
    if rest.len() > limit {
        if let Some((last, _)) = rest.get(limit - 1) {
            let after = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("after", last)
                .finish();
            links.push(format!("<{url}?{after}&{base_query}>; rel=\"next\""));
        }
    }
    let mut response = Json(Value::Array(shown)).into_response();
    for link in links {
        if let Ok(v) = HeaderValue::from_str(&link) {
            response.headers_mut().append(header::LINK, v);
        }
    }
    response
}

/// `GET /api/v1/users`.
async fn list_users(State(sh): St, RawQuery(query): RawQuery) -> Response {
    let params = form(query.as_deref().unwrap_or(""));
    let Some(limit) = limit(&params, USERS_MAX, USERS_MAX) else {
        return error(
            StatusCode::BAD_REQUEST,
            "E0000001",
            "Api validation failed: limit",
            &sh.core,
        );
    };
    let expr = params.get("search").or_else(|| params.get("filter"));
    let expr = match expr.map(|t| parse_expr(t)) {
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "E0000031",
                "Invalid search criteria.",
                &sh.core,
            )
        }
        Some(Some(e)) => Some(e),
        None => None,
    };
    let q = params.get("q").map(|q| q.to_lowercase());
    let base = &sh.base_url;
    let directory = sh.core.directory();
    let items = directory
        .iter()
        .filter(|e| match (&expr, &q) {
            (Some(x), _) => x.matches(e),
            (None, Some(q)) => {
                okta_status(e) != "DEPROVISIONED"
                    && [&e.email, &e.given_name, &e.family_name]
                        .iter()
                        .any(|f| f.to_lowercase().starts_with(q.as_str()))
            }
            (None, None) => okta_status(e) != "DEPROVISIONED",
        })
        .map(|e| (okta_id(e), e))
        .collect();
    page(
        items,
        &params,
        limit,
        &format!("{base}/api/v1/users"),
        |_, e| user_json(e, base),
    )
}

/// `GET /api/v1/apps/{appId}/users`.
async fn list_app_users(
    State(sh): St,
    Path(app_id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    if app_id != sh.opts.app_id {
        let summary = format!("Not found: Resource not found: {app_id} (AppInstance)");
        return error(StatusCode::NOT_FOUND, "E0000007", &summary, &sh.core);
    }
    let params = form(query.as_deref().unwrap_or(""));
    let Some(limit) = limit(&params, APP_USERS_DEFAULT, APP_USERS_MAX) else {
        return error(
            StatusCode::BAD_REQUEST,
            "E0000001",
            "Api validation failed: limit",
            &sh.core,
        );
    };
    let base = &sh.base_url;
    let directory = sh.core.directory();
    let items = directory
        .iter()
        .filter(|e| e.assigned)
        .map(|e| (okta_id(e), e))
        .collect();
    let url = format!("{base}/api/v1/apps/{app_id}/users");
    page(items, &params, limit, &url, |id, e| {
        json!({
                "id": id,
                "externalId": null,
                "created": ts(e.state_changed),
                "lastUpdated": ts(e.state_changed),
                "scope": "USER",
                "status": "PROVISIONED",
                "statusChanged": ts(e.state_changed),
                "syncState": "DISABLED",
                "credentials": {"userName": e.email},
                "profile": {"email": e.email},
                "_links": {
                    "app": {"href": format!("{base}/api/v1/apps/{app_id}")},
                    "user": {"href": format!("{base}/api/v1/users/{id}")},
                },
        })
    })
}

async fn fallback(State(sh): St) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "E0000022",
        "The endpoint does not support the provided HTTP method",
        &sh.core,
    )
}
