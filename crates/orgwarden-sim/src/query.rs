//! Query-string parsing for the list endpoints, done by hand so that bracket arrays work.
//!
//! The official SDKs send arrays as `roles[]=user&roles[]=developer`; other clients repeat the
//! plain name (`roles=user&roles=developer`). Both are accepted. Unknown parameters are ignored,
//! like the `?beta=true` suffix the SDK spec paths carry. This module also owns the shared paging
//! parameters of §2.2 and their validation.

use super::error::ApiError;
use super::model::Cursor;

/// Default page size (§2.2).
pub(crate) const DEFAULT_LIMIT: usize = 20;
/// Largest page size (§2.2).
pub(crate) const MAX_LIMIT: usize = 1000;

/// Decoded query parameters in the order they appeared.
#[derive(Debug, Default)]
pub(crate) struct Params {
    pairs: Vec<(String, String)>,
}

/// `limit` plus at most one cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PageQuery {
    pub limit: usize,
    pub cursor: Cursor,
}

impl Params {
    /// Decodes a raw query string (percent-encoding and `+` for spaces).
    pub(crate) fn parse(raw: Option<&str>) -> Params {
        let pairs = raw
            .map(|q| {
                url::form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Params { pairs }
    }

    /// A single-valued parameter; when repeated, the last value wins.
    pub(crate) fn one(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// An array parameter, given as `name[]=…` or as a repeated `name=…`, in order.
    pub(crate) fn many(&self, name: &str) -> Vec<&str> {
        let bracketed = format!("{name}[]");
        self.pairs
            .iter()
            .filter(|(k, _)| k == name || *k == bracketed)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A boolean parameter (`true`/`false`, any case, or `1`/`0`).
    pub(crate) fn flag(&self, name: &str, default: bool) -> Result<bool, ApiError> {
        match self.one(name) {
            None => Ok(default),
            Some(v) if v.eq_ignore_ascii_case("true") || v == "1" => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") || v == "0" => Ok(false),
            Some(v) => Err(ApiError::invalid(format!(
                "{name}: expected a boolean, got {v:?}"
            ))),
        }
    }

    /// `limit`, `after_id` and `before_id`, validated as §2.2 and the orgwarden decisions say.
    pub(crate) fn page(&self) -> Result<PageQuery, ApiError> {
        let limit = match self.one("limit") {
            None => DEFAULT_LIMIT,
            Some(text) => match text.trim().parse::<i64>() {
                Ok(n) if (1..=MAX_LIMIT as i64).contains(&n) => n as usize,
                Ok(_) => {
                    return Err(ApiError::invalid(format!(
                        "limit: must be between 1 and {MAX_LIMIT}"
                    )))
                }
                Err(_) => {
                    return Err(ApiError::invalid(format!(
                        "limit: expected an integer, got {text:?}"
                    )))
                }
            },
        };
        let cursor = match (self.one("after_id"), self.one("before_id")) {
            (Some(_), Some(_)) => {
                return Err(ApiError::invalid(
                    "after_id and before_id cannot be used together",
                ))
            }
            (Some(id), None) => Cursor::After(id.to_string()),
            (None, Some(id)) => Cursor::Before(id.to_string()),
            (None, None) => Cursor::Start,
        };
        Ok(PageQuery { limit, cursor })
    }
}

/// The error for a cursor that names no object of the list.
pub(crate) fn unknown_cursor(cursor: &Cursor) -> ApiError {
    let (param, id) = match cursor {
        Cursor::After(id) => ("after_id", id.as_str()),
        Cursor::Before(id) => ("before_id", id.as_str()),
        Cursor::Start => ("cursor", ""),
    };
    ApiError::invalid(format!(
        "{param}: {id:?} does not name an object of this list"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_accept_brackets_and_repeats() {
        let p = Params::parse(Some("roles%5B%5D=user&roles[]=developer&roles=billing&x=1"));
        assert_eq!(p.many("roles"), ["user", "developer", "billing"]);
        assert_eq!(p.many("statuses"), Vec::<&str>::new());
    }

    #[test]
    fn paging_defaults_and_limits() {
        assert_eq!(
            Params::parse(None).page().expect("defaults are valid"),
            PageQuery {
                limit: 20,
                cursor: Cursor::Start
            }
        );
        for bad in ["limit=0", "limit=1001", "limit=-1", "limit=abc", "limit="] {
            let err = Params::parse(Some(bad)).page().expect_err(bad);
            assert_eq!(err.status.as_u16(), 400, "{bad}");
        }
        for good in ["limit=1", "limit=1000"] {
            assert!(Params::parse(Some(good)).page().is_ok(), "{good}");
        }
        let both = Params::parse(Some("after_id=a&before_id=b")).page();
        assert_eq!(
            both.expect_err("both cursors").kind,
            "invalid_request_error"
        );
        let before = Params::parse(Some("before_id=user_01x"))
            .page()
            .expect("valid");
        assert_eq!(before.cursor, Cursor::Before("user_01x".into()));
    }

    #[test]
    fn flags_parse_strictly() {
        let p = Params::parse(Some("a=true&b=FALSE&c=yes"));
        assert!(p.flag("a", false).expect("valid"));
        assert!(!p.flag("b", true).expect("valid"));
        assert!(p.flag("missing", true).expect("default"));
        assert!(p.flag("c", false).is_err());
    }
}
