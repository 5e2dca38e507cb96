//! The Microsoft Entra ID source: Microsoft Graph v1.0 with the OAuth 2.0 client-credentials flow
//! (`POST {login_url}/{tenant}/oauth2/v2.0/token`, scope `https://graph.microsoft.com/.default`,
//! the token cached for its lifetime).
//!
//! It reads `GET /v1.0/users?$select=…&$top=999` and the recycle bin,
//! `GET /v1.0/directory/deletedItems/microsoft.graph.user` (soft-deleted users, kept 30 days),
//! following `@odata.nextLink`; with a service principal configured, also
//! `GET /v1.0/servicePrincipals/{id}/appRoleAssignedTo` (user assignments; group assignments are
//! not expanded). `accountEnabled: false` is [`DirectoryStatus::Disabled`]`("accountEnabled=false")`,
//! a `deletedDateTime` is [`DirectoryStatus::Deleted`] since then. The primary email is `mail`
//! (else `userPrincipalName`); aliases are `proxyAddresses` (`smtp:` stripped), `otherMails` and
//! the UPN. Graph gives no time for a change of `accountEnabled`, so `status_since` is empty there.
//! A 429 or 503 is retried after its `Retry-After`.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::http::{self, clip, Failure, Http, ReadOptions, TokenAnswer};
use super::DirectoryError;
use crate::config::EntraSettings;
use crate::org::{DirectoryListing, DirectoryPerson, DirectoryStatus};

/// The user properties each page asks for (`$select`).
pub const SELECT: &str =
    "id,mail,userPrincipalName,proxyAddresses,accountEnabled,otherMails,deletedDateTime";
/// The page size asked for (`$top`, Graph's largest for users).
pub const TOP: &str = "999";
/// The client-credentials scope.
pub const SCOPE: &str = "https://graph.microsoft.com/.default";

#[derive(Deserialize)]
struct Page<T> {
    value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    next_link: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct User {
    id: String,
    #[serde(default)]
    mail: Option<String>,
    #[serde(default)]
    user_principal_name: Option<String>,
    #[serde(default)]
    proxy_addresses: Vec<String>,
    #[serde(default)]
    other_mails: Vec<String>,
    #[serde(default)]
    account_enabled: Option<bool>,
    #[serde(default)]
    deleted_date_time: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Assignment {
    #[serde(default)]
    principal_id: Option<String>,
    #[serde(default)]
    principal_type: Option<String>,
}

#[derive(Deserialize, Default)]
struct GraphError {
    #[serde(default)]
    error: Option<serde_json::Value>,
    #[serde(default)]
    error_description: Option<String>,
}

/// Reads the whole directory (and the app's assignments) or fails.
pub async fn read(
    name: &str,
    settings: &EntraSettings,
) -> Result<DirectoryListing, DirectoryError> {
    read_with(name, settings, &ReadOptions::default()).await
}

/// [`read`] with explicit retry, backoff and deadline settings.
pub async fn read_with(
    name: &str,
    settings: &EntraSettings,
    opts: &ReadOptions,
) -> Result<DirectoryListing, DirectoryError> {
    let graph = settings.graph_url.trim_end_matches('/').to_string();
    let login = settings.login_url.trim_end_matches('/').to_string();
    let http = Http::new(name, opts, &[graph.as_str(), login.as_str()])?;
    Reader {
        http,
        graph,
        login,
        settings,
    }
    .read()
    .await
}

struct Reader<'a> {
    http: Http,
    graph: String,
    login: String,
    settings: &'a EntraSettings,
}

impl Reader<'_> {
    async fn read(&self) -> Result<DirectoryListing, DirectoryError> {
        let mut people = Vec::new();
        let mut email_of = HashMap::new();
        let mut seen = HashSet::new();
        for path in [
            "/v1.0/users",
            "/v1.0/directory/deletedItems/microsoft.graph.user",
        ] {
            let mut url = self.url(path)?;
            url.query_pairs_mut()
                .append_pair("$select", SELECT)
                .append_pair("$top", TOP);
            for user in self.all_pages::<User>(url).await? {
                if !seen.insert(user.id.clone()) {
                    continue;
                }
                if let Some(p) = person(user) {
                    email_of.insert(p.id.clone(), p.email.clone());
                    people.push(p);
                }
            }
        }
        let assigned = match &self.settings.service_principal_id {
            None => None,
            Some(sp) => {
                let mut url =
                    self.url(&format!("/v1.0/servicePrincipals/{sp}/appRoleAssignedTo"))?;
                url.query_pairs_mut().append_pair("$top", TOP);
                let mut emails: Vec<String> = self
                    .all_pages::<Assignment>(url)
                    .await?
                    .into_iter()
                    .filter(|a| a.principal_type.as_deref() == Some("User"))
                    .filter_map(|a| email_of.get(a.principal_id.as_deref()?).cloned())
                    .collect();
                emails.sort();
                emails.dedup();
                Some(emails)
            }
        };
        Ok(DirectoryListing { people, assigned })
    }

    fn url(&self, path: &str) -> Result<Url, DirectoryError> {
        Url::parse(&format!("{}{path}", self.graph))
            .map_err(|e| self.http.error(format!("invalid URL: {e}")))
    }

    /// Every page from `first`, following `@odata.nextLink`.
    async fn all_pages<T: serde::de::DeserializeOwned>(
        &self,
        first: Url,
    ) -> Result<Vec<T>, DirectoryError> {
        http::all_pages(&self.http, first, |url| async move {
            let page = self.get::<Page<T>>(&url).await?;
            Ok((page.value, page.next_link))
        })
        .await
    }

    /// One authenticated GET; a 401 drops the cached token and fetches a new one once.
    async fn get<T: serde::de::DeserializeOwned>(&self, url: &Url) -> Result<T, DirectoryError> {
        let authorization = || async { Ok(http::auth_header(&self.token().await?, "Bearer")) };
        let key = self.token_key();
        let (value, _) = self
            .http
            .get_json(url, authorization, Some(&key), |what, f| {
                self.describe(what, f)
            })
            .await?;
        Ok(value)
    }

    fn describe(&self, what: &str, failure: Failure) -> DirectoryError {
        let message = match failure {
            Failure::Other(m) => format!("{what}: {m}"),
            Failure::Status(status, body) => {
                let e: GraphError = serde_json::from_str(&body).unwrap_or_default();
                let detail = match (&e.error, &e.error_description) {
                    (Some(serde_json::Value::Object(o)), _) => format!(
                        "{} {}",
                        o.get("code").and_then(|c| c.as_str()).unwrap_or(""),
                        o.get("message").and_then(|c| c.as_str()).unwrap_or("")
                    ),
                    (Some(serde_json::Value::String(code)), Some(d)) => format!("{code}: {d}"),
                    _ => body,
                };
                let hint = match status {
                    StatusCode::UNAUTHORIZED => " (check the tenant, client id and client secret)",
                    StatusCode::FORBIDDEN => {
                        " (the app needs the User.Read.All and Application.Read.All permissions)"
                    }
                    _ => "",
                };
                format!("{what}: HTTP {status}: {}{hint}", clip(&detail))
            }
        };
        self.http.error(message)
    }

    fn token_key(&self) -> String {
        format!(
            "entra {} {} {}",
            self.login, self.settings.tenant_id, self.settings.client_id
        )
    }

    async fn token(&self) -> Result<SecretString, DirectoryError> {
        let key = self.token_key();
        if let Some(token) = http::cached_token(&key) {
            return Ok(token);
        }
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            self.login, self.settings.tenant_id
        );
        let url = self.http.follow(&url)?;
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.settings.client_id.as_str()),
            ("client_secret", self.settings.client_secret.expose_secret()),
            ("scope", SCOPE),
        ];
        let (answer, _) = self
            .http
            .json::<TokenAnswer>(|| {
                self.http
                    .client()
                    .post(url.clone())
                    .header("accept", "application/json")
                    .form(&form)
            })
            .await
            .map_err(|f| self.describe("token request", f))?;
        http::cache_token(&key, answer.access_token.clone(), answer.expires_in);
        Ok(answer.access_token)
    }
}

fn person(user: User) -> Option<DirectoryPerson> {
    let lower = |s: &str| Some(s.trim().to_lowercase()).filter(|v| v.contains('@'));
    let upn = user.user_principal_name.as_deref().and_then(lower);
    let email = user
        .mail
        .as_deref()
        .and_then(lower)
        .or_else(|| upn.clone())?;
    let proxies = user.proxy_addresses.iter().filter_map(|p| {
        let (kind, address) = p.split_once(':')?;
        kind.eq_ignore_ascii_case("smtp").then(|| lower(address))?
    });
    let others = user.other_mails.iter().filter_map(|m| lower(m));
    let mut aliases: Vec<String> = proxies
        .chain(others)
        .chain(upn)
        .filter(|a| *a != email)
        .collect();
    aliases.sort();
    aliases.dedup();
    let (status, status_since) = match (user.deleted_date_time, user.account_enabled) {
        (Some(at), _) => (DirectoryStatus::Deleted, Some(at)),
        (None, Some(false)) => (
            DirectoryStatus::Disabled("accountEnabled=false".to_string()),
            None,
        ),
        (None, _) => (DirectoryStatus::Active, None),
    };
    Some(DirectoryPerson {
        id: user.id,
        email,
        aliases,
        status,
        status_since,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(v: serde_json::Value) -> DirectoryPerson {
        person(serde_json::from_value(v).unwrap()).unwrap()
    }

    #[test]
    fn addresses_and_states_map_as_documented() {
        let p = user(serde_json::json!({
            "id": "1", "mail": "J.Doe@example.com", "userPrincipalName": "jane.doe@example.com",
            "proxyAddresses": ["SMTP:j.doe@example.com", "smtp:JD@example.com", "x500:/o=x"],
            "otherMails": ["jane@home.example"], "accountEnabled": false
        }));
        assert_eq!(p.email, "j.doe@example.com");
        assert_eq!(
            p.aliases,
            [
                "jane.doe@example.com",
                "jane@home.example",
                "jd@example.com"
            ]
        );
        assert_eq!(
            p.status,
            DirectoryStatus::Disabled("accountEnabled=false".into())
        );
        let d = user(serde_json::json!({
            "id": "2", "mail": null, "userPrincipalName": "x@example.com",
            "accountEnabled": true, "deletedDateTime": "2026-01-01T00:00:00Z"
        }));
        assert_eq!(
            (d.email.as_str(), d.status),
            ("x@example.com", DirectoryStatus::Deleted)
        );
        let a =
            user(serde_json::json!({"id": "3", "mail": "a@example.com", "accountEnabled": true}));
        assert_eq!((a.status, a.aliases.len()), (DirectoryStatus::Active, 0));
    }
}
