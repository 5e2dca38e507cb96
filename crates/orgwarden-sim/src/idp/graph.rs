//! The Microsoft Graph simulator: the client-credentials token endpoint of the Microsoft identity
//! platform and the parts of Graph v1.0 a directory reader uses. One server plays both hosts
//! (`login.microsoftonline.com` and `graph.microsoft.com`).
//!
//! - `POST /{tenant}/oauth2/v2.0/token`: `grant_type=client_credentials`, `client_id`,
//!   `client_secret`, `scope=https://graph.microsoft.com/.default` → `{token_type, expires_in,
//!   ext_expires_in, access_token}`; failures as `{error, error_description, error_codes}` with
//!   the AADSTS codes of a wrong tenant, client, secret or scope.
//! - `GET /v1.0/users`: `$select` (without it, Graph's default properties, which leave out
//!   `accountEnabled`), `$top` (default 100, maximum 999), `@odata.nextLink` with a `$skiptoken`.
//!   Deleted people are not there but in `GET /v1.0/directory/deletedItems/microsoft.graph.user`
//!   (with their `deletedDateTime`), as in Entra ID's recycle bin.
//! - `GET /v1.0/servicePrincipals/{id}/appRoleAssignedTo`: the Claude enterprise application's
//!   user assignments (only for the configured service principal; another is a 404), `$select`
//!   as for users (without it, every property), `$top`, `@odata.nextLink`.
//! - Errors `{error: {code, message, innerError: {date, request-id, client-request-id}}}`; a
//!   token bucket (`rps`) answers `429 TooManyRequests` with `Retry-After`; injected 503s carry
//!   `Retry-After: 1`.
//! - A page is rendered once per directory value: the same request (path and query) is answered
//!   with the same bytes, kept in memory, until the directory changes (a state change or, for a
//!   clock that is not frozen, any tick). A reader of a large directory then waits for the pages
//!   as it would for Graph's servers, not for this process rendering JSON on its own cores.
//!
//! Directory states: active people have `accountEnabled: true`, every other state `false` (Entra
//! has no separate suspended or locked-out state in the user list); deleted people are only in the
//! deleted items. `mail` is the primary address, `userPrincipalName` the first alias when there is
//! one, `proxyAddresses` the primary as `SMTP:` and the aliases as `smtp:`.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::{
    after, authorization, broken_connection, form, local_listener, same_secret, Before, IdpCore,
    IdpServer,
};
use crate::faults::{Faults, RateLimiter};
use crate::prng::mix;
use crate::server::lock;
use crate::{DirectoryEntry, DirectoryState, SimHandle};

/// The tenant the simulator serves unless told otherwise.
pub const DEMO_TENANT_ID: &str = "5f0c7e2a-0d1b-4c3e-9a8f-000000000001";
/// The app registration's client id accepted unless told otherwise.
pub const DEMO_GRAPH_CLIENT_ID: &str = "8a1d3c55-6b7e-4f20-9d11-000000000002";
/// Its client secret (a demo value, not a secret).
pub const DEMO_GRAPH_CLIENT_SECRET: &str = "orgwarden~graph~simulator~demo~secret";
/// The object id of the Claude enterprise application's service principal.
pub const GRAPH_CLAUDE_SP_ID: &str = "c1a0de00-5e71-4ce9-a11c-000000000003";

const GRAPH_SCOPE: &str = "https://graph.microsoft.com/.default";
const TOP_DEFAULT: usize = 100;
const TOP_MAX: usize = 999;
const TOKEN_LIFETIME: Duration = Duration::from_secs(3599);
const DEFAULT_SELECT: [&str; 11] = [
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
];

/// How to start a Microsoft Graph simulator.
#[derive(Clone)]
pub struct GraphOptions {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    pub service_principal_id: String,
    /// Requests per second before 429s; `None` is unlimited.
    pub rps: Option<u32>,
    /// Faults injected from the first request on.
    pub faults: Faults,
}

impl Default for GraphOptions {
    fn default() -> Self {
        GraphOptions {
            tenant_id: DEMO_TENANT_ID.to_string(),
            client_id: DEMO_GRAPH_CLIENT_ID.to_string(),
            client_secret: DEMO_GRAPH_CLIENT_SECRET.to_string(),
            service_principal_id: GRAPH_CLAUDE_SP_ID.to_string(),
            rps: None,
            faults: Faults::default(),
        }
    }
}

struct GraphShared {
    core: Arc<IdpCore>,
    opts: GraphOptions,
    base_url: String,
    limiter: Mutex<RateLimiter>,
    /// The lists' ids sorted once per directory value, so that a page is a binary search and
    /// not a sort of the whole directory (the directory itself is cached per state change).
    sorted: Mutex<Option<Arc<Sorted>>>,
}

/// A directory value with its three lists as `(id, index in the directory)`, sorted by id, and
/// the pages of them already served.
struct Sorted {
    directory: Arc<Vec<DirectoryEntry>>,
    users: Vec<(String, usize)>,
    deleted: Vec<(String, usize)>,
    assigned: Vec<(String, usize)>,
    /// The body of each page served from this directory value, by path and query: the same
    /// request gets the same bytes without rendering them again (a 999-user page is milliseconds
    /// of JSON, which a real Graph spends on its own servers and not on the reader's cores).
    pages: Mutex<HashMap<String, Bytes>>,
}

impl Sorted {
    /// The answer to the page request `key` (path and query): served from `pages`, else
    /// `render`ed, kept and served. Only a page is kept, never an error.
    fn page(&self, key: String, render: impl FnOnce() -> Result<Value, Box<Response>>) -> Response {
        if let Some(body) = lock(&self.pages).get(&key) {
            return json_body(body.clone());
        }
        match render() {
            Ok(value) => {
                let body = Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
                lock(&self.pages).insert(key, body.clone());
                json_body(body)
            }
            Err(response) => *response,
        }
    }
}

/// A 200 whose JSON body is already serialised.
fn json_body(body: Bytes) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

impl GraphShared {
    /// The current directory's sorted lists, built again only when the directory changed.
    fn sorted(&self) -> Arc<Sorted> {
        let directory = self.core.directory();
        let mut cache = lock(&self.sorted);
        if let Some(sorted) = &*cache {
            if Arc::ptr_eq(&sorted.directory, &directory) {
                return Arc::clone(sorted);
            }
        }
        let list = |keep: &dyn Fn(&DirectoryEntry) -> bool,
                    id: &dyn Fn(&DirectoryEntry) -> String| {
            let mut items: Vec<(String, usize)> = directory
                .iter()
                .enumerate()
                .filter(|(_, e)| keep(e))
                .map(|(i, e)| (id(e), i))
                .collect();
            items.sort_unstable();
            items
        };
        let sorted = Arc::new(Sorted {
            users: list(&|e| e.state != DirectoryState::Deleted, &object_id),
            deleted: list(&|e| e.state == DirectoryState::Deleted, &object_id),
            assigned: list(&|e| e.assigned, &assignment_id),
            directory,
            pages: Mutex::new(HashMap::new()),
        });
        *cache = Some(Arc::clone(&sorted));
        sorted
    }
}

/// A running Microsoft Graph simulator; dereferences to its [`IdpServer`].
pub struct GraphSim {
    server: IdpServer,
    shared: Arc<GraphShared>,
}

impl Deref for GraphSim {
    type Target = IdpServer;
    fn deref(&self) -> &IdpServer {
        &self.server
    }
}

impl GraphSim {
    /// Serves the directory of `sim`'s live state on `listener`.
    pub async fn start(
        listener: tokio::net::TcpListener,
        sim: &SimHandle,
        opts: GraphOptions,
    ) -> anyhow::Result<GraphSim> {
        let core = Arc::new(IdpCore::new(sim, opts.faults.clone(), 0x62A9));
        let shared = Arc::new(GraphShared {
            core: core.clone(),
            base_url: format!("http://{}", listener.local_addr()?),
            limiter: Mutex::new(RateLimiter::new(opts.rps)),
            sorted: Mutex::new(None),
            opts,
        });
        let app = Router::new()
            .route("/{tenant}/oauth2/v2.0/token", post(token))
            .route("/v1.0/users", get(list_users))
            .route(
                "/v1.0/directory/deletedItems/microsoft.graph.user",
                get(list_deleted),
            )
            .route(
                "/v1.0/servicePrincipals/{id}/appRoleAssignedTo",
                get(list_assignments),
            )
            .fallback(fallback)
            .layer(middleware::from_fn_with_state(shared.clone(), pipeline))
            .with_state(shared.clone());
        let server = IdpServer::spawn(listener, core, app, "Microsoft Graph simulator").await?;
        Ok(GraphSim { server, shared })
    }

    /// Like [`Self::start`] on `127.0.0.1` with a port chosen by the system.
    pub async fn start_local(sim: &SimHandle, opts: GraphOptions) -> anyhow::Result<GraphSim> {
        Self::start(local_listener().await?, sim, opts).await
    }

    /// Changes the rate limit (`None`: unlimited); the bucket starts full.
    pub fn set_rps(&self, rps: Option<u32>) {
        *lock(&self.shared.limiter) = RateLimiter::new(rps);
    }
}

type St = State<Arc<GraphShared>>;

fn guid(seed: u64, n: u64) -> String {
    let (a, b) = (mix(seed ^ n), mix(n.wrapping_add(seed)));
    let hex = format!("{a:016x}{b:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// A Graph error answer.
fn error(status: StatusCode, code: &str, message: &str, core: &IdpCore) -> Response {
    let n = core.served.load(std::sync::atomic::Ordering::Relaxed);
    let body = json!({"error": {
        "code": code,
        "message": message,
        "innerError": {
            "date": core.sim.read(|s| s.now()).format("%Y-%m-%dT%H:%M:%S").to_string(),
            "request-id": guid(core.seed, n),
            "client-request-id": guid(core.seed ^ 0xC11E, n),
        },
    }});
    (status, Json(body)).into_response()
}

fn with_retry_after(mut response: Response, secs: u64) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    response
}

/// Faults, throttling and authentication around every route.
async fn pipeline(State(sh): St, req: Request, next: Next) -> Response {
    let core = &sh.core;
    let path = req.uri().path().to_string();
    let malformed = match core.before(&path).await {
        Before::Drop => return broken_connection(),
        Before::Internal => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "generalException",
                "An internal server error occurred.",
                core,
            )
        }
        Before::Unavailable => {
            let e = error(
                StatusCode::SERVICE_UNAVAILABLE,
                "serviceNotAvailable",
                "The service is temporarily unavailable.",
                core,
            );
            return with_retry_after(e, 1);
        }
        Before::Revoked => return invalid_token(core),
        Before::Pass(m) => m,
    };
    if !path.starts_with("/v1.0/") {
        return after(next.run(req).await, malformed).await;
    }
    if let Err(secs) = lock(&sh.limiter).try_acquire(Instant::now()) {
        let e = error(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "Too many requests.",
            core,
        );
        return with_retry_after(e, secs);
    }
    if authorization(req.headers(), "Bearer ").is_none_or(str::is_empty) {
        return error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token is empty.",
            core,
        );
    }
    if !core.bearer_ok(req.headers()) {
        return invalid_token(core);
    }
    after(next.run(req).await, malformed).await
}

fn invalid_token(core: &IdpCore) -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "InvalidAuthenticationToken",
        "Lifetime validation failed, the token is expired.",
        core,
    )
}

fn aad_error(status: StatusCode, error: &str, code: u32, text: &str) -> Response {
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {text}"),
        "error_codes": [code],
    });
    (status, Json(body)).into_response()
}

/// `POST /{tenant}/oauth2/v2.0/token`.
async fn token(State(sh): St, Path(tenant): Path<String>, body: Bytes) -> Response {
    let params = form(&String::from_utf8_lossy(&body));
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    let opts = &sh.opts;
    if tenant != opts.tenant_id {
        let text = format!("Tenant '{tenant}' not found.");
        return aad_error(StatusCode::BAD_REQUEST, "invalid_request", 90002, &text);
    }
    if get("grant_type") != "client_credentials" {
        let text = "The provided value for the input parameter 'grant_type' is not valid.";
        return aad_error(StatusCode::BAD_REQUEST, "invalid_request", 900144, text);
    }
    if get("client_id") != opts.client_id {
        let text = format!(
            "Application with identifier '{}' was not found in the directory.",
            get("client_id")
        );
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &text,
        );
    }
    if !same_secret(get("client_secret"), &opts.client_secret) {
        let text = "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.";
        return aad_error(StatusCode::UNAUTHORIZED, "invalid_client", 7000215, text);
    }
    if get("scope") != GRAPH_SCOPE {
        let text = "The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.";
        return aad_error(StatusCode::BAD_REQUEST, "invalid_scope", 1002012, text);
    }
    let access_token = sh
        .core
        .issue_token("eyJ0eXAiOiJKV1QiLCJzaW0iOjF9.", TOKEN_LIFETIME);
    Json(json!({
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME.as_secs(),
        "ext_expires_in": TOKEN_LIFETIME.as_secs(),
        "access_token": access_token,
    }))
    .into_response()
}

/// The Graph object id of a directory entry.
fn object_id(e: &DirectoryEntry) -> String {
    let n = u64::from_str_radix(e.id.trim_start_matches('u'), 16).unwrap_or(0);
    guid(0x6A7B, n)
}

/// The id of a person's assignment to the Claude application.
fn assignment_id(e: &DirectoryEntry) -> String {
    let n = u64::from_str_radix(e.id.trim_start_matches('u'), 16).unwrap_or(0);
    guid(0xA551, n)
}

fn ts(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A user's properties, only those asked for (`properties`, from [`chosen_properties`]): a
/// page of 999 users renders a few fields each, not every property to throw most away.
fn user_json(e: &DirectoryEntry, properties: &[&'static str]) -> Value {
    let mut object = Map::new();
    for &name in properties {
        let value = match name {
            "id" => json!(object_id(e)),
            "businessPhones" | "otherMails" => json!([]),
            "displayName" => json!(format!("{} {}", e.given_name, e.family_name).trim()),
            "givenName" => json!(e.given_name),
            "surname" => json!(e.family_name),
            "mail" => json!(e.email),
            "userPrincipalName" => json!(e.aliases.first().unwrap_or(&e.email)),
            "proxyAddresses" => {
                let mut proxies = vec![format!("SMTP:{}", e.email)];
                proxies.extend(e.aliases.iter().map(|a| format!("smtp:{a}")));
                json!(proxies)
            }
            "accountEnabled" => json!(e.state.is_active()),
            "deletedDateTime" => {
                json!((e.state == DirectoryState::Deleted).then(|| ts(e.state_changed)))
            }
            "createdDateTime" => json!(ts(e.state_changed - chrono::Duration::days(400))),
            // jobTitle, mobilePhone, officeLocation, preferredLanguage: not set.
            _ => Value::Null,
        };
        object.insert(name.to_owned(), value);
    }
    Value::Object(object)
}

/// The properties among `known` that the query's `$select` names (case-insensitive, in
/// Graph's spelling), or that `default` names when there is no `$select`; one it does not know
/// is left out, as Graph leaves out what an object lacks.
fn chosen_properties(
    query: Option<&str>,
    known: &[&'static str],
    default: &[&str],
) -> Vec<&'static str> {
    let selected: Vec<String> = match form(query.unwrap_or("")).get("$select") {
        Some(s) => s.split(',').map(|p| p.trim().to_string()).collect(),
        None => default.iter().map(|s| s.to_string()).collect(),
    };
    known
        .iter()
        .filter(|p| selected.iter().any(|s| s.eq_ignore_ascii_case(p)))
        .copied()
        .collect()
}

/// The properties of an app-role assignment, in Graph's spelling.
const ASSIGNMENT_PROPERTIES: [&str; 9] = [
    "id",
    "deletedDateTime",
    "appRoleId",
    "createdDateTime",
    "principalDisplayName",
    "principalId",
    "principalType",
    "resourceDisplayName",
    "resourceId",
];

/// The properties of a simulated user, in Graph's spelling.
const USER_PROPERTIES: [&str; 16] = [
    "id",
    "businessPhones",
    "displayName",
    "givenName",
    "surname",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "userPrincipalName",
    "proxyAddresses",
    "otherMails",
    "accountEnabled",
    "deletedDateTime",
    "createdDateTime",
];

/// A `$top`, `$skiptoken` page of `(id, index)` sorted by id, with `@odata.nextLink`; only the
/// page's entries are rendered to JSON (`render`), so a page of a 100k-person directory costs a
/// binary search, not 100k objects.
fn page(
    sh: &GraphShared,
    items: &[(String, usize)],
    query: Option<&str>,
    path: &str,
    context: &str,
    render: impl Fn(usize) -> Value,
) -> Result<Value, Box<Response>> {
    let params = form(query.unwrap_or(""));
    let top = match params.get("$top").map(|t| t.parse::<usize>()) {
        None => TOP_DEFAULT,
        Some(Ok(n)) if (1..=TOP_MAX).contains(&n) => n,
        Some(_) => {
            let message = format!(
                "Invalid page size specified: '{}'. Must be between 1 and {TOP_MAX} inclusive.",
                params["$top"]
            );
            return Err(Box::new(error(
                StatusCode::BAD_REQUEST,
                "Request_BadRequest",
                &message,
                &sh.core,
            )));
        }
    };
    let start = match params.get("$skiptoken") {
        Some(after) => items.partition_point(|(id, _)| id.as_str() <= after.as_str()),
        None => 0,
    };
    let rest = &items[start..];
    let shown: Vec<Value> = rest.iter().take(top).map(|(_, i)| render(*i)).collect();
    let base = &sh.base_url;
    let mut body = json!({
        "@odata.context": format!("{base}/v1.0/$metadata#{context}"),
        "value": shown,
    });
    if rest.len() > top {
        if let Some((last, _)) = rest.get(top - 1) {
            let mut next = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &params {
                if k != "$skiptoken" {
                    next.append_pair(k, v);
                }
            }
            next.append_pair("$skiptoken", last);
            body["@odata.nextLink"] = Value::String(format!("{base}{path}?{}", next.finish()));
        }
    }
    Ok(body)
}

/// The cache key of a page request.
fn page_key(path: &str, query: Option<&str>) -> String {
    format!("{path}?{}", query.unwrap_or(""))
}

fn users(sh: &GraphShared, query: Option<&str>, deleted: bool, path: &str) -> Response {
    let chosen = chosen_properties(query, &USER_PROPERTIES, &DEFAULT_SELECT);
    let sorted = sh.sorted();
    let items = if deleted {
        &sorted.deleted
    } else {
        &sorted.users
    };
    sorted.page(page_key(path, query), || {
        page(sh, items, query, path, "users", |i| {
            user_json(&sorted.directory[i], &chosen)
        })
    })
}

/// `GET /v1.0/users`.
async fn list_users(State(sh): St, RawQuery(query): RawQuery) -> Response {
    users(&sh, query.as_deref(), false, "/v1.0/users")
}

/// `GET /v1.0/directory/deletedItems/microsoft.graph.user`.
async fn list_deleted(State(sh): St, RawQuery(query): RawQuery) -> Response {
    let path = "/v1.0/directory/deletedItems/microsoft.graph.user";
    users(&sh, query.as_deref(), true, path)
}

/// `GET /v1.0/servicePrincipals/{id}/appRoleAssignedTo`.
async fn list_assignments(
    State(sh): St,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    if id != sh.opts.service_principal_id {
        let message = format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present.");
        return error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            &message,
            &sh.core,
        );
    }
    let sorted = sh.sorted();
    let path = format!("/v1.0/servicePrincipals/{id}/appRoleAssignedTo");
    // `$select` as for users; without it, every property.
    let chosen = chosen_properties(
        query.as_deref(),
        &ASSIGNMENT_PROPERTIES,
        &ASSIGNMENT_PROPERTIES,
    );
    let render = |i: usize| {
        let e = &sorted.directory[i];
        let mut object = Map::new();
        for &name in &chosen {
            let value = match name {
                "id" => json!(assignment_id(e)),
                "deletedDateTime" => Value::Null,
                "appRoleId" => json!("00000000-0000-0000-0000-000000000000"),
                "createdDateTime" => json!(ts(e.state_changed)),
                "principalDisplayName" => {
                    json!(format!("{} {}", e.given_name, e.family_name).trim())
                }
                "principalId" => json!(object_id(e)),
                "principalType" => json!("User"),
                "resourceDisplayName" => json!("Claude"),
                "resourceId" => json!(id),
                _ => Value::Null,
            };
            object.insert(name.to_owned(), value);
        }
        Value::Object(object)
    };
    sorted.page(page_key(&path, query.as_deref()), || {
        page(
            &sh,
            &sorted.assigned,
            query.as_deref(),
            &path,
            &format!("servicePrincipals('{id}')/appRoleAssignedTo"),
            render,
        )
    })
}

async fn fallback(State(sh): St) -> Response {
    error(
        StatusCode::NOT_FOUND,
        "Request_UnsupportedQuery",
        "Unsupported request.",
        &sh.core,
    )
}
