//! The Okta source: the Users API (`GET /api/v1/users`, `Link: rel="next"` pages of 200) and,
//! when an app id is configured, the application's assignments (`/api/v1/apps/{id}/users`).
//!
//! Okta's plain user list leaves out `DEPROVISIONED` users, so without a configured `search` the
//! read lists everyone else first, then searches `status eq "DEPROVISIONED"`; a configured
//! `search` expression is sent as is (a search returns every status it matches).
//!
//! Statuses: `SUSPENDED`, `DEPROVISIONED` and `LOCKED_OUT` are [`DirectoryStatus::Disabled`] with
//! that word. `ACTIVE`, `PASSWORD_EXPIRED`, `RECOVERY` (both still the person's account, in a
//! password flow), `PROVISIONED` and `STAGED` (being set up, not departed) are active, and so is a
//! status Okta may add later: orgwarden never judges someone departed on a word it does not know
//! (the read logs it). The primary email is the profile's `email` (else `login`); `secondEmail`
//! and `login`, when they differ, are aliases. `statusChanged` is the status' "since".
//!
//! Authentication: `SSWS` API token, or OAuth 2.0 client credentials with a private-key JWT
//! (scopes `okta.users.read`, plus `okta.apps.read` for assignments) whose bearer token is cached
//! for its lifetime (a 401 drops it and fetches a new one once).
//!
//! Pages are read by [`http::all_pages`]: a fetch checks that the body is a JSON array (a broken
//! one is asked again) and takes the `Link` header's next page; the page's users become people
//! (or the app's users emails) while the next page is fetched.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::StatusCode;
use serde::de::IgnoredAny;
use serde::Deserialize;
use url::Url;

use super::http::{self, clip, Failure, Fetched, Http, ReadOptions};
use super::DirectoryError;
use crate::clock::{Clock, SystemClock};
use crate::config::{OktaAuth, OktaSettings};
use crate::org::{DirectoryListing, DirectoryPerson, DirectoryStatus};

const PAGE: u32 = 200;
const APP_PAGE: u32 = 500;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    id: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    status_changed: Option<DateTime<Utc>>,
    #[serde(default)]
    profile: Profile,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Profile {
    #[serde(default)]
    login: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    second_email: Option<String>,
}

#[derive(Deserialize)]
struct AppUser {
    id: String,
    #[serde(default)]
    credentials: Option<AppCredentials>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppCredentials {
    #[serde(default)]
    user_name: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct OktaError {
    #[serde(default)]
    error_code: String,
    #[serde(default)]
    error_summary: String,
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

/// Reads the whole directory (and the app's assignments) or fails.
pub async fn read(name: &str, settings: &OktaSettings) -> Result<DirectoryListing, DirectoryError> {
    read_with(name, settings, &ReadOptions::default()).await
}

/// [`read`] with explicit retry, backoff and deadline settings.
pub async fn read_with(
    name: &str,
    settings: &OktaSettings,
    opts: &ReadOptions,
) -> Result<DirectoryListing, DirectoryError> {
    let org = settings.org_url.trim_end_matches('/').to_string();
    let http = Http::new(name, opts, &[org.as_str()])?;
    let reader = Reader {
        http,
        org,
        settings,
    };
    reader.read().await
}

struct Reader<'a> {
    http: Http,
    org: String,
    settings: &'a OktaSettings,
}

impl Reader<'_> {
    async fn read(&self) -> Result<DirectoryListing, DirectoryError> {
        let mut people: Vec<DirectoryPerson> = Vec::new();
        let mut seen = HashSet::new();
        let mut searches = vec![self.settings.search.clone()];
        if self.settings.search.is_none() {
            searches.push(Some("status eq \"DEPROVISIONED\"".to_string()));
        }
        for search in searches {
            let mut url = self.url("/api/v1/users")?;
            url.query_pairs_mut()
                .append_pair("limit", &PAGE.to_string());
            if let Some(s) = &search {
                url.query_pairs_mut().append_pair("search", s);
            }
            // A page's users become people while the next page is fetched.
            let page = |body: &[u8]| {
                serde_json::from_slice::<Vec<User>>(body)
                    .map(|users| users.into_iter().filter_map(person).collect())
            };
            for person in self.all_pages(url, page).await? {
                if seen.insert(person.id.clone()) {
                    people.push(person);
                }
            }
        }
        let assigned = match &self.settings.app_id {
            None => None,
            Some(app) => {
                let email_of: HashMap<&str, &str> = people
                    .iter()
                    .map(|p| (p.id.as_str(), p.email.as_str()))
                    .collect();
                let mut url = self.url(&format!("/api/v1/apps/{app}/users"))?;
                url.query_pairs_mut()
                    .append_pair("limit", &APP_PAGE.to_string());
                let page = |body: &[u8]| {
                    serde_json::from_slice::<Vec<AppUser>>(body).map(|users| {
                        users
                            .into_iter()
                            .filter_map(|a| match email_of.get(a.id.as_str()) {
                                Some(email) => Some((*email).to_string()),
                                None => a
                                    .credentials
                                    .and_then(|c| c.user_name)
                                    .filter(|u| u.contains('@'))
                                    .map(|u| u.trim().to_lowercase()),
                            })
                            .collect()
                    })
                };
                let mut emails: Vec<String> = self.all_pages(url, page).await?;
                emails.sort();
                emails.dedup();
                Some(emails)
            }
        };
        Ok(DirectoryListing { people, assigned })
    }

    fn url(&self, path: &str) -> Result<Url, DirectoryError> {
        Url::parse(&format!("{}{path}", self.org))
            .map_err(|e| self.http.error(format!("invalid URL: {e}")))
    }

    /// Every page from `first`, following `Link: rel="next"`, as [`http::all_pages`] reads
    /// them: a fetch checks that the body is a JSON array (a broken one is asked again) and
    /// takes the header's link; `parse` turns the kept body into what the read keeps while the
    /// next page is fetched.
    async fn all_pages<R>(
        &self,
        first: Url,
        mut parse: impl FnMut(&[u8]) -> serde_json::Result<Vec<R>>,
    ) -> Result<Vec<R>, DirectoryError> {
        let parse = |body: &Bytes| parse(body);
        http::all_pages(&self.http, first, |url| self.page_body(url), parse).await
    }

    /// One page's body and its next link; a 401 with a cached OAuth token fetches a new token
    /// once.
    async fn page_body(&self, url: Url) -> Result<Fetched<Bytes>, DirectoryError> {
        let key =
            matches!(self.settings.auth, OktaAuth::PrivateKeyJwt { .. }).then(|| self.token_key());
        let (body, headers) = self
            .http
            .get_parsed(
                &url,
                || self.authorization(),
                key.as_deref(),
                |what, f| self.describe(what, f),
                |body: &Bytes| {
                    serde_json::from_slice::<Vec<IgnoredAny>>(body).map(|_| body.clone())
                },
            )
            .await?;
        Ok((body, next_link(&headers)))
    }

    fn describe(&self, what: &str, failure: Failure) -> DirectoryError {
        let message = match failure {
            Failure::Other(m) => format!("{what}: {m}"),
            Failure::Status(status, body) => {
                let e: OktaError = serde_json::from_str(&body).unwrap_or_default();
                let detail = if !e.error_code.is_empty() {
                    format!("{} {}", e.error_code, e.error_summary)
                } else if !e.error.is_empty() {
                    format!("{}: {}", e.error, e.error_description)
                } else {
                    body
                };
                let hint = match status {
                    StatusCode::UNAUTHORIZED => " (check the API token or the OAuth client)",
                    StatusCode::FORBIDDEN => " (the token lacks the needed scope or admin role)",
                    _ => "",
                };
                format!("{what}: HTTP {status}: {}{hint}", clip(&detail))
            }
        };
        self.http.error(message)
    }

    fn token_key(&self) -> String {
        let client = match &self.settings.auth {
            OktaAuth::PrivateKeyJwt { client_id, .. } => client_id.as_str(),
            OktaAuth::ApiToken(_) => "",
        };
        format!("okta {} {client}", self.org)
    }

    /// The `Authorization` header value.
    async fn authorization(&self) -> Result<HeaderValue, DirectoryError> {
        let (client_id, private_key, key_id) = match &self.settings.auth {
            OktaAuth::ApiToken(token) => return Ok(http::auth_header(token, "SSWS")),
            OktaAuth::PrivateKeyJwt {
                client_id,
                private_key,
                key_id,
            } => (client_id, private_key, key_id),
        };
        let request = || {
            let token_url = self.url("/oauth2/v1/token")?;
            let assertion = http::client_assertion(
                client_id,
                token_url.as_str(),
                private_key,
                key_id.as_deref(),
                SystemClock.now(),
            )
            .map_err(|m| self.http.error(format!("OAuth client assertion: {m}")))?;
            let mut scope = "okta.users.read".to_string();
            if self.settings.app_id.is_some() {
                scope.push_str(" okta.apps.read");
            }
            let form = [
                ("grant_type", "client_credentials".to_string()),
                ("scope", scope),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_string(),
                ),
                ("client_assertion", assertion),
            ];
            Ok((token_url, form))
        };
        let token = self
            .http
            .bearer_token(&self.token_key(), request, |what, f| self.describe(what, f))
            .await?;
        Ok(http::auth_header(&token, "Bearer"))
    }
}

/// The `rel="next"` target among the `Link` headers.
fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|part| {
            let (target, params) = part.split_once(';')?;
            let is_next = params.split(';').any(|p| {
                p.trim()
                    .replace(' ', "")
                    .eq_ignore_ascii_case("rel=\"next\"")
            });
            is_next.then(|| {
                target
                    .trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
        })
}

/// The status an Okta status word means (see the module documentation).
pub(crate) fn status(word: &str) -> DirectoryStatus {
    match word {
        "SUSPENDED" | "DEPROVISIONED" | "LOCKED_OUT" => DirectoryStatus::Disabled(word.to_string()),
        "ACTIVE" | "PASSWORD_EXPIRED" | "RECOVERY" | "PROVISIONED" | "STAGED" => {
            DirectoryStatus::Active
        }
        other => {
            tracing::warn!(status = %clip(other), "unknown Okta user status, taken as active");
            DirectoryStatus::Active
        }
    }
}

fn person(user: User) -> Option<DirectoryPerson> {
    let lower = |s: &Option<String>| {
        s.as_deref()
            .map(|v| v.trim().to_lowercase())
            .filter(|v| v.contains('@'))
    };
    let login = lower(&user.profile.login);
    let email = lower(&user.profile.email).or_else(|| login.clone())?;
    let mut aliases: Vec<String> = [lower(&user.profile.second_email), login]
        .into_iter()
        .flatten()
        .filter(|a| *a != email)
        .collect();
    aliases.sort();
    aliases.dedup();
    Some(DirectoryPerson {
        id: user.id,
        email,
        aliases,
        status: status(&user.status),
        status_since: user.status_changed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn statuses_map_as_documented() {
        for word in ["SUSPENDED", "DEPROVISIONED", "LOCKED_OUT"] {
            assert_eq!(status(word), DirectoryStatus::Disabled(word.into()));
        }
        for word in [
            "ACTIVE",
            "PASSWORD_EXPIRED",
            "RECOVERY",
            "PROVISIONED",
            "STAGED",
            "NEW",
        ] {
            assert_eq!(status(word), DirectoryStatus::Active);
        }
    }

    #[test]
    fn the_next_link_is_found_among_several() {
        let mut h = HeaderMap::new();
        h.append(
            "link",
            HeaderValue::from_static("<https://x.okta.com/api/v1/users?limit=2>; rel=\"self\""),
        );
        h.append(
            "link",
            HeaderValue::from_static(
                "<https://x.okta.com/api/v1/users?after=00u2&limit=2>; rel=\"next\"",
            ),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://x.okta.com/api/v1/users?after=00u2&limit=2")
        );
        let mut last = HeaderMap::new();
        last.append(
            "link",
            HeaderValue::from_static("<https://x.okta.com/api/v1/users>; rel=\"self\""),
        );
        assert_eq!(next_link(&last), None);
    }

    #[test]
    fn aliases_are_the_other_addresses_lower_cased() {
        let user: User = serde_json::from_value(serde_json::json!({
            "id": "00u1", "status": "SUSPENDED", "statusChanged": "2026-01-02T03:04:05.000Z",
            "profile": {"login": "J.Doe@Example.com", "email": "j.doe@example.com",
                        "secondEmail": "Jane.Doe@example.com"}
        }))
        .unwrap();
        let p = person(user).unwrap();
        assert_eq!(p.email, "j.doe@example.com");
        assert_eq!(p.aliases, vec!["jane.doe@example.com".to_string()]);
        assert_eq!(p.status, DirectoryStatus::Disabled("SUSPENDED".into()));
        assert!(p.status_since.is_some());
    }
}
