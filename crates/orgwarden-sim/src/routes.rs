//! The HTTP surface: the axum router of §4.1–4.6 and its thin handlers.
//!
//! A handler splits the request (path ids, raw query, raw body), runs one operation of `ops` under
//! the state lock, and turns the result into a 200 JSON answer or an error. Bodies are read as raw
//! bytes rather than through axum's `Json` extractor so that every malformed body gets the Admin
//! API's 400 `invalid_request_error` instead of axum's own rejection. Unknown routes reach the
//! fallback, a 404 `not_found_error`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::error::ApiError;
use super::ops::Body;
use super::query::Params;
use super::server::{pipeline, FaultFlags, Shared};

type St = State<Arc<Shared>>;

/// Builds the router with the request pipeline (request ids, rate limit, faults, auth) around it.
pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/organizations/me", get(get_organization))
        .route("/v1/organizations/users", get(list_users))
        .route(
            "/v1/organizations/users/{user_id}",
            get(get_user).post(update_user).delete(delete_user),
        )
        .route(
            "/v1/organizations/invites",
            get(list_invites).post(create_invite),
        )
        .route(
            "/v1/organizations/invites/{invite_id}",
            get(get_invite).delete(delete_invite),
        )
        .route(
            "/v1/organizations/workspaces",
            get(list_workspaces).post(create_workspace),
        )
        .route(
            "/v1/organizations/workspaces/{workspace_id}",
            get(get_workspace).post(update_workspace),
        )
        .route(
            "/v1/organizations/workspaces/{workspace_id}/archive",
            post(archive_workspace),
        )
        .route(
            "/v1/organizations/workspaces/{workspace_id}/members",
            get(list_members).post(add_member),
        )
        .route(
            "/v1/organizations/workspaces/{workspace_id}/members/{user_id}",
            get(get_member).post(update_member).delete(remove_member),
        )
        .route("/v1/organizations/api_keys", get(list_keys))
        .route(
            "/v1/organizations/api_keys/{api_key_id}",
            get(get_key).post(update_key),
        )
        .route(
            "/v1/organizations/usage_report/messages",
            get(usage_messages),
        )
        .route(
            "/v1/organizations/usage_report/claude_code",
            get(usage_claude_code),
        )
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(shared.clone(), pipeline))
        .with_state(shared)
}

/// A 200 JSON answer, or the error.
fn respond(result: Result<Body, ApiError>) -> Response {
    match result {
        Ok(body) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

async fn fallback() -> Response {
    ApiError::not_found("The requested resource could not be found.").into_response()
}

async fn get_organization(State(sh): St) -> Response {
    respond(sh.read(|s| s.op_get_organization()))
}

async fn list_users(
    State(sh): St,
    Extension(flags): Extension<FaultFlags>,
    RawQuery(q): RawQuery,
) -> Response {
    let params = Params::parse(q.as_deref());
    respond(sh.read(|s| s.op_list_users(&params, flags.empty_members)))
}

async fn get_user(State(sh): St, Path(id): Path<String>) -> Response {
    respond(sh.read(|s| s.op_get_user(&id)))
}

async fn update_user(State(sh): St, Path(id): Path<String>, body: Bytes) -> Response {
    respond(sh.write(|s| s.op_update_user(&id, &body)))
}

async fn delete_user(State(sh): St, Path(id): Path<String>) -> Response {
    respond(sh.write(|s| s.op_delete_user(&id)))
}

async fn list_invites(State(sh): St, RawQuery(q): RawQuery) -> Response {
    let params = Params::parse(q.as_deref());
    respond(sh.read(|s| s.op_list_invites(&params)))
}

async fn create_invite(State(sh): St, body: Bytes) -> Response {
    respond(sh.write(|s| s.op_create_invite(&body)))
}

async fn get_invite(State(sh): St, Path(id): Path<String>) -> Response {
    respond(sh.read(|s| s.op_get_invite(&id)))
}

async fn delete_invite(State(sh): St, Path(id): Path<String>) -> Response {
    respond(sh.write(|s| s.op_delete_invite(&id)))
}

async fn list_workspaces(State(sh): St, RawQuery(q): RawQuery) -> Response {
    let params = Params::parse(q.as_deref());
    respond(sh.read(|s| s.op_list_workspaces(&params)))
}

async fn create_workspace(State(sh): St, body: Bytes) -> Response {
    respond(sh.write(|s| s.op_create_workspace(&body)))
}

async fn get_workspace(State(sh): St, Path(id): Path<String>) -> Response {
    respond(sh.read(|s| s.op_get_workspace(&id)))
}

async fn update_workspace(State(sh): St, Path(id): Path<String>, body: Bytes) -> Response {
    respond(sh.write(|s| s.op_update_workspace(&id, &body)))
}

async fn archive_workspace(State(sh): St, Path(id): Path<String>) -> Response {
    respond(sh.write(|s| s.op_archive_workspace(&id)))
}

async fn list_members(State(sh): St, Path(ws): Path<String>, RawQuery(q): RawQuery) -> Response {
    let params = Params::parse(q.as_deref());
    respond(sh.read(|s| s.op_list_members(&ws, &params)))
}

async fn add_member(State(sh): St, Path(ws): Path<String>, body: Bytes) -> Response {
    respond(sh.write(|s| s.op_add_member(&ws, &body)))
}

async fn get_member(State(sh): St, Path((ws, user)): Path<(String, String)>) -> Response {
    respond(sh.read(|s| s.op_get_member(&ws, &user)))
}

async fn update_member(
    State(sh): St,
    Path((ws, user)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    respond(sh.write(|s| s.op_update_member(&ws, &user, &body)))
}

async fn remove_member(State(sh): St, Path((ws, user)): Path<(String, String)>) -> Response {
    respond(sh.write(|s| s.op_remove_member(&ws, &user)))
}

async fn list_keys(State(sh): St, RawQuery(q): RawQuery) -> Response {
    let params = Params::parse(q.as_deref());
    respond(sh.read(|s| s.op_list_keys(&params)))
}

async fn get_key(State(sh): St, Path(id): Path<String>) -> Response {
    respond(sh.read(|s| s.op_get_key(&id)))
}

async fn update_key(State(sh): St, Path(id): Path<String>, body: Bytes) -> Response {
    respond(sh.write(|s| s.op_update_key(&id, &body)))
}

async fn usage_messages(State(sh): St, RawQuery(q): RawQuery) -> Response {
    let params = Params::parse(q.as_deref());
    respond(sh.read(|s| super::usage::messages(s, sh.seed, &params)))
}

async fn usage_claude_code(State(sh): St, RawQuery(q): RawQuery) -> Response {
    let params = Params::parse(q.as_deref());
    respond(sh.read(|s| super::usage::claude_code(s, sh.seed, &params)))
}
