//! The client's error type: every failure names the call, and an HTTP failure carries the status,
//! the API's `error.type`, its message and the request-id, so an operator can quote it to support.
//!
//! No variant holds the admin key or a request header, so formatting an error can never leak it.

use std::fmt;

/// One failed Admin API call, after any retries.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with a non-2xx status.
    #[error(
        "{call}: {}HTTP {status} {error_type}: {message}{}",
        RefusedKey(*status),
        RequestIdSuffix(request_id)
    )]
    Status {
        call: Call,
        status: u16,
        /// `error.type` from the error envelope (`not_found_error`, ...), or `unknown`.
        error_type: String,
        message: String,
        request_id: Option<String>,
    },
    /// The connection failed, timed out, or broke while reading the body.
    #[error("{call}: {reason}")]
    Transport { call: Call, reason: String },
    /// The server answered 2xx with a body that is not the expected JSON.
    #[error(
        "{call}: unreadable response body: {reason}{}",
        RequestIdSuffix(request_id)
    )]
    Decode {
        call: Call,
        reason: String,
        request_id: Option<String>,
    },
    /// The server handed back a cursor it had already given: stopping instead of looping forever.
    #[error("{call}: the server returned cursor {cursor} twice; refusing to loop")]
    CursorLoop { call: Call, cursor: String },
    /// The base URL or a path could not be turned into a request URL.
    #[error("invalid request URL: {0}")]
    Url(String),
}

impl ApiError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The request-id of the failed response, when there was one.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Self::Status { request_id, .. } | Self::Decode { request_id, .. } => {
                request_id.as_deref()
            }
            _ => None,
        }
    }

    /// True for a 401 or 403: the key was refused (revoked, mistyped, or not an admin key).
    pub fn is_refused_key(&self) -> bool {
        matches!(self.status(), Some(401 | 403))
    }

    /// True for a 404: the object does not exist (any more).
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

/// Method and path of a call, for error messages (never the query string with cursors or the key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub method: &'static str,
    pub path: String,
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.path)
    }
}

struct RequestIdSuffix<'a>(&'a Option<String>);

impl fmt::Display for RequestIdSuffix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, " (request-id {id})"),
            None => Ok(()),
        }
    }
}

/// The words an operator needs for a 401 or 403: the server was reached, the key was not accepted.
struct RefusedKey(u16);

impl fmt::Display for RefusedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            401 | 403 => {
                f.write_str("the Admin API refused the key (revoked or not an admin key?): ")
            }
            _ => Ok(()),
        }
    }
}
