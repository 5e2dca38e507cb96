//! The shared server state and the request pipeline that wraps every route.
//!
//! For each request, in order: count it and give it a request id; apply the rate limit (429 with
//! `retry-after`); apply the injected faults (latency, dropped connection, 500/529); check the
//! `x-api-key` (401); run the route; break a 200 body if a malformed answer was chosen; finally
//! write the error body of any error answer, with the request id, and put `request-id` on every
//! answer, unknown routes included.
//!
//! All locks are `std::sync::Mutex` held for short, synchronous sections; nothing awaits while
//! holding one. A poisoned lock (a panic while it was held) is recovered rather than propagated:
//! the simulator is a test tool, and a second panic in every later request would only hide the
//! first one.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{error_body, kind_for_status, ApiError, ErrorMarker};
use super::faults::{Action, FaultState, Malformed, RateLimiter};
use super::prng::request_id;
use super::state::SimState;

/// The largest body the pipeline reads back when it has to rewrite one.
const MAX_REWRITE: usize = 64 * 1024 * 1024;

/// Everything the server task and the handle share.
pub(crate) struct Shared {
    pub state: Mutex<SimState>,
    pub faults: Mutex<FaultState>,
    pub limiter: Mutex<RateLimiter>,
    pub served: AtomicU64,
    pub seed: u64,
    pub admin_key: String,
    pub organization_id: String,
    /// Bumped (under the state lock) by every change of the state, so a view derived from it
    /// (the identity providers' directory) can be cached until the next change.
    pub generation: AtomicU64,
}

/// Locks a mutex, recovering from poisoning (see the module documentation).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Runs a read-only operation under the state lock.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&SimState) -> R) -> R {
        f(&lock(&self.state))
    }

    /// Runs a mutating operation under the state lock.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut SimState) -> R) -> R {
        let mut state = lock(&self.state);
        let result = f(&mut state);
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        result
    }
}

/// Fault switches a route needs to see, put on every authenticated request.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FaultFlags {
    pub empty_members: bool,
}

/// Compares the key in constant time, so timing does not reveal how much of a guess matched.
fn authorized(headers: &HeaderMap, expected: &str) -> bool {
    let Some(given) = headers.get("x-api-key") else {
        return false;
    };
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A 200 whose body fails immediately: the client sees the connection break mid-answer.
pub(crate) fn dropped() -> Response {
    let failing = futures::stream::once(async {
        Err::<Bytes, io::Error>(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "injected connection drop",
        ))
    });
    let mut response = Response::new(Body::from_stream(failing));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Replaces a 200 body by a broken one, correctly framed so the client reads all of it.
pub(crate) async fn malform(response: Response, kind: Malformed) -> Response {
    let (mut parts, body) = response.into_parts();
    let broken = match kind {
        Malformed::Truncated => match axum::body::to_bytes(body, MAX_REWRITE).await {
            Ok(bytes) => bytes.slice(..bytes.len() / 2),
            Err(_) => return dropped(),
        },
        Malformed::Garbage => {
            Bytes::from_static(b"<html><body><h1>502 Bad Gateway</h1></body></html>")
        }
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(broken))
}

/// Everything between the request id and the final error body.
async fn serve_one(sh: &Shared, mut req: Request, next: Next) -> Response {
    let limited = lock(&sh.limiter).try_acquire(Instant::now());
    if let Err(secs) = limited {
        return ApiError::rate_limited(secs).into_response();
    }
    let plan = lock(&sh.faults).next_plan(sh.seed, req.uri().path());
    if !plan.latency.is_zero() {
        tokio::time::sleep(plan.latency).await;
    }
    match plan.action {
        Action::Drop => return dropped(),
        Action::InternalError => {
            return ApiError::internal("Internal server error").into_response()
        }
        Action::Overloaded => return ApiError::overloaded().into_response(),
        Action::Pass | Action::Malform(_) => {}
    }
    if plan.key_revoked || !authorized(req.headers(), &sh.admin_key) {
        return ApiError::authentication().into_response();
    }
    req.extensions_mut().insert(FaultFlags {
        empty_members: plan.empty_members,
    });
    let mut response = next.run(req).await;
    if let Ok(v) = HeaderValue::from_str(&sh.organization_id) {
        response
            .headers_mut()
            .insert(HeaderName::from_static("anthropic-organization-id"), v);
    }
    match plan.action {
        Action::Malform(kind) if response.status() == StatusCode::OK => {
            malform(response, kind).await
        }
        _ => response,
    }
}

/// The middleware around every route; see the module documentation.
pub(crate) async fn pipeline(State(sh): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let n = sh.served.fetch_add(1, Ordering::Relaxed) + 1;
    let id = request_id(sh.seed, n);
    let response = serve_one(&sh, req, next).await;
    let (mut parts, body) = response.into_parts();
    let marker = parts.extensions.remove::<ErrorMarker>();
    let status = parts.status;
    let body = match marker {
        Some(m) => Body::from(error_body(m.kind, &m.message, &id)),
        None if status.is_client_error() || status.is_server_error() => {
            // An answer that did not come from `ApiError` (an axum rejection, or the 405 of a
            // known path): keep its text as the message, in the Admin API's error shape.
            let text = axum::body::to_bytes(body, MAX_REWRITE)
                .await
                .map(|b| String::from_utf8_lossy(&b).trim().to_string())
                .unwrap_or_default();
            let message = if text.is_empty() {
                status.canonical_reason().unwrap_or("Error").to_string()
            } else {
                text
            };
            Body::from(error_body(kind_for_status(status), &message, &id))
        }
        None => body,
    };
    if status.is_client_error() || status.is_server_error() {
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        parts
            .headers
            .insert(HeaderName::from_static("request-id"), v);
    }
    Response::from_parts(parts, body)
}
