//! The Admin API error model (§5): error types, statuses and the JSON error body.
//!
//! Handlers return an [`ApiError`]. Its response carries an [`ErrorMarker`] extension and no body
//! yet; the outermost middleware, which owns the request id, writes the body
//! `{"type":"error","error":{"type":…,"message":…},"request_id":"req_…"}`. Responses that did not
//! come from an `ApiError` (axum's own rejections, the 405 of a known path with another method) are
//! given the same body shape there, with an error type chosen from the status.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The status of `overloaded_error`. 529 is not a named constant in `http`.
pub(crate) fn overloaded_status() -> StatusCode {
    StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
}

/// An error answer: HTTP status, `error.type`, `error.message`, and for 429 the `retry-after`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            kind,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// 400 `invalid_request_error`: malformed input or a broken business rule.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", message)
    }

    /// 404 `not_found_error`.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found_error", message)
    }

    /// 401 `authentication_error` with the commonly observed real message.
    pub(crate) fn authentication() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            "invalid x-api-key",
        )
    }

    /// 429 `rate_limit_error` with a `retry-after` of at least one second.
    pub(crate) fn rate_limited(retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            "Rate limited",
        );
        e.retry_after_secs = Some(retry_after_secs.max(1));
        e
    }

    /// 500 `api_error`.
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "api_error", message)
    }

    /// 529 `overloaded_error`.
    pub(crate) fn overloaded() -> Self {
        Self::new(overloaded_status(), "overloaded_error", "Overloaded")
    }
}

/// Left on an error response for the middleware that writes the body.
#[derive(Clone, Debug)]
pub(crate) struct ErrorMarker {
    pub kind: &'static str,
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response.extensions_mut().insert(ErrorMarker {
            kind: self.kind,
            message: self.message,
        });
        response
    }
}

/// The `error.type` for an error response that did not say which it is.
pub(crate) fn kind_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        409 => "conflict_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        504 => "timeout_error",
        529 => "overloaded_error",
        500..=599 => "api_error",
        // DOCS-ERR: invalid_request_error also covers "other 4XX status codes not listed".
        _ => "invalid_request_error",
    }
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: ErrorDetail<'a>,
    request_id: &'a str,
}

/// The JSON error body of §5.1.
pub(crate) fn error_body(kind: &str, message: &str, request_id: &str) -> String {
    let body = ErrorBody {
        kind: "error",
        error: ErrorDetail { kind, message },
        request_id,
    };
    // Serializing plain strings cannot fail; the fallback keeps the answer well-formed anyway.
    serde_json::to_string(&body).unwrap_or_else(|_| {
        r#"{"type":"error","error":{"type":"api_error","message":"Internal server error"},"request_id":null}"#
            .to_string()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_documented_shape() {
        let body = error_body(
            "not_found_error",
            "Not found",
            "req_011CSHoEeqs5C35K2UUqR7Fy",
        );
        let v: serde_json::Value = serde_json::from_str(&body).expect("valid JSON");
        assert_eq!(
            v,
            serde_json::json!({"type":"error","error":{"type":"not_found_error","message":"Not found"},
                "request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"})
        );
    }

    #[test]
    fn statuses_map_to_types() {
        assert_eq!(kind_for_status(StatusCode::NOT_FOUND), "not_found_error");
        assert_eq!(
            kind_for_status(StatusCode::METHOD_NOT_ALLOWED),
            "invalid_request_error"
        );
        assert_eq!(kind_for_status(overloaded_status()), "overloaded_error");
        assert_eq!(overloaded_status().as_u16(), 529);
    }
}
