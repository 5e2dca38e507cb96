//! The Microsoft Entra ID source: Microsoft Graph v1.0 with the OAuth 2.0 client-credentials flow
//! (`POST {login_url}/{tenant}/oauth2/v2.0/token`, scope `https://graph.microsoft.com/.default`,
//! the token cached for its lifetime).
//!
//! It reads `GET /v1.0/users?$select=…&$top=999` and the recycle bin,
//! `GET /v1.0/directory/deletedItems/microsoft.graph.user` (soft-deleted users, kept 30 days),
//! following `@odata.nextLink`; with a service principal configured, also
//! `GET /v1.0/servicePrincipals/{id}/appRoleAssignedTo?$select=principalId,principalType`
//! (user assignments; group assignments are not expanded). The three lists are independent
//! chains of pages, read side by side (each one page at a time: at most three requests in
//! flight); a list that fails fails the read. A person in both user lists (deleted between the
//! two) is kept as the users list has them; the assignments' ids become emails once every page
//! is in. `accountEnabled: false` is [`DirectoryStatus::Disabled`]`("accountEnabled=false")`,
//! a `deletedDateTime` is [`DirectoryStatus::Deleted`] since then. The primary email is `mail`
//! (else `userPrincipalName`); aliases are `proxyAddresses` (`smtp:` stripped), `otherMails` and
//! the UPN. Graph gives no time for a change of `accountEnabled`, so `status_since` is empty there.
//! A 429 or 503 is retried after its `Retry-After`.
//!
//! Pages are read by [`http::all_pages`]: a fetch checks only that the body is JSON and takes its
//! `@odata.nextLink`; the page is then deserialized into structs that borrow its body's strings
//! and turned into people at once, while the next page is fetched, so a 100k-person read copies
//! each kept string once (lower-cased) and allocates nothing for the properties it drops; the
//! body is checked to be UTF-8 once as a whole, not string by string. The fetch keeps the body
//! as the answer gave it (shared, not copied), and a page's token comes from the cache before
//! any token URL is built. The pages go through [`http::all_pages_apart`]: each is parsed on a
//! thread of the blocking pool, so the next answer is read meanwhile on another core.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::http::{self, clip, Failure, Fetched, Http, ReadOptions, Text};
use super::DirectoryError;
use crate::config::EntraSettings;
use crate::org::{DirectoryListing, DirectoryPerson, DirectoryStatus};

/// The user properties each page asks for (`$select`).
pub const SELECT: &str =
    "id,mail,userPrincipalName,proxyAddresses,accountEnabled,otherMails,deletedDateTime";
/// The page size asked for (`$top`, Graph's largest for users).
pub const TOP: &str = "999";
/// The assignment properties each page of `appRoleAssignedTo` asks for (`$select`).
pub const ASSIGNMENT_SELECT: &str = "principalId,principalType";
/// The client-credentials scope.
pub const SCOPE: &str = "https://graph.microsoft.com/.default";

/// One page of a Graph collection: its items (the next link was taken by the fetch).
#[derive(Deserialize)]
struct Page<T> {
    value: Vec<T>,
}

/// Only a page's next link (the rest of the body is checked to be JSON and skipped).
#[derive(Deserialize)]
struct NextLink<'a> {
    #[serde(rename = "@odata.nextLink", default, borrow)]
    next_link: Option<Text<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct User<'a> {
    #[serde(borrow)]
    id: Text<'a>,
    #[serde(default, borrow)]
    mail: Option<Text<'a>>,
    #[serde(default, borrow)]
    user_principal_name: Option<Text<'a>>,
    #[serde(default, borrow)]
    proxy_addresses: Option<Vec<Text<'a>>>,
    #[serde(default, borrow)]
    other_mails: Option<Vec<Text<'a>>>,
    #[serde(default)]
    account_enabled: Option<bool>,
    #[serde(default)]
    deleted_date_time: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Assignment<'a> {
    #[serde(default, borrow)]
    principal_id: Option<Text<'a>>,
    #[serde(default, borrow)]
    principal_type: Option<Text<'a>>,
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
    let token_key = format!(
        "entra {login} {} {}",
        settings.tenant_id, settings.client_id
    );
    Reader {
        http,
        graph,
        login,
        token_key,
        settings,
    }
    .read()
    .await
}

struct Reader<'a> {
    http: Http,
    graph: String,
    login: String,
    /// Where the token is cached: the login URL, tenant and client (no secret).
    token_key: String,
    settings: &'a EntraSettings,
}

impl Reader<'_> {
    async fn read(&self) -> Result<DirectoryListing, DirectoryError> {
        let users = self.users_url("/v1.0/users")?;
        let deleted = self.users_url("/v1.0/directory/deletedItems/microsoft.graph.user")?;
        let assignments = match &self.settings.service_principal_id {
            None => None,
            Some(sp) => {
                let mut url =
                    self.url(&format!("/v1.0/servicePrincipals/{sp}/appRoleAssignedTo"))?;
                url.query_pairs_mut()
                    .append_pair("$select", ASSIGNMENT_SELECT)
                    .append_pair("$top", TOP);
                Some(url)
            }
        };
        // One token for the three lists (cached; a chain that gets a 401 renews it).
        self.token().await?;
        // The lists are independent chains of pages: they are read side by side, each still one
        // page at a time (at most three requests in flight). A list that fails fails the read.
        let (mut people, deleted, ids) = tokio::try_join!(
            self.all_pages(users, user_page),
            self.all_pages(deleted, user_page),
            async {
                match assignments {
                    None => Ok(None),
                    // The ids become emails once every page is in.
                    Some(url) => self.all_pages(url, assignment_page).await.map(Some),
                }
            },
        )?;
        people.extend(deleted);
        Ok(listing(people, ids))
    }

    /// A users list's first page: the `$select`ed properties, the largest page.
    fn users_url(&self, path: &str) -> Result<Url, DirectoryError> {
        let mut url = self.url(path)?;
        url.query_pairs_mut()
            .append_pair("$select", SELECT)
            .append_pair("$top", TOP);
        Ok(url)
    }

    fn url(&self, path: &str) -> Result<Url, DirectoryError> {
        Url::parse(&format!("{}{path}", self.graph))
            .map_err(|e| self.http.error(format!("invalid URL: {e}")))
    }

    /// Every page from `first`, following `@odata.nextLink`, as [`http::all_pages_apart`] reads
    /// them: `parse` turns a page's body into what the read keeps of its items, on a thread of
    /// its own while the next page is fetched.
    async fn all_pages<R: Send + 'static>(
        &self,
        first: Url,
        parse: fn(&[u8]) -> serde_json::Result<Vec<R>>,
    ) -> Result<Vec<R>, DirectoryError> {
        http::all_pages_apart(&self.http, first, |url| self.page_body(url), parse).await
    }

    /// One page's body and its next link, retried as [`Http::get_parsed`] retries (a body that
    /// is not JSON is asked again).
    async fn page_body(&self, url: Url) -> Result<Fetched<Bytes>, DirectoryError> {
        let authorization = || async { Ok(http::auth_header(&self.token().await?, "Bearer")) };
        let (page, _) = self
            .http
            .get_parsed(
                &url,
                authorization,
                Some(&self.token_key),
                |what, f| self.describe(what, f),
                |body: &Bytes| {
                    // The body is kept as the answer gave it (shared, not copied).
                    serde_json::from_slice::<NextLink<'_>>(body)
                        .map(|page| (body.clone(), page.next_link.map(|l| l.0.into_owned())))
                },
            )
            .await?;
        Ok(page)
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

    async fn token(&self) -> Result<SecretString, DirectoryError> {
        let request = || {
            let url = format!(
                "{}/{}/oauth2/v2.0/token",
                self.login, self.settings.tenant_id
            );
            let form = [
                ("grant_type", "client_credentials"),
                ("client_id", self.settings.client_id.as_str()),
                ("client_secret", self.settings.client_secret.expose_secret()),
                ("scope", SCOPE),
            ];
            Ok((self.http.follow(&url)?, form))
        };
        self.http
            .bearer_token(&self.token_key, request, |what, f| self.describe(what, f))
            .await
    }
}

/// The listing of the users then the deleted users (`people`, in that order) and the assigned
/// users' ids: a person listed twice (deleted between the two lists) is kept where first seen;
/// the assigned ids become the sorted, distinct emails of the people they name (an id nobody has
/// is left out).
fn listing(mut people: Vec<DirectoryPerson>, ids: Option<Vec<String>>) -> DirectoryListing {
    let mut first: foldhash::HashMap<&str, usize> =
        foldhash::HashMap::with_capacity_and_hasher(people.len(), Default::default());
    let mut kept = vec![true; people.len()];
    for (i, p) in people.iter().enumerate() {
        if *first.entry(p.id.as_str()).or_insert(i) != i {
            kept[i] = false;
        }
    }
    let assigned = ids.map(|ids| {
        // Distinct people first (integers), then their emails sorted as borrowed strings and
        // copied once.
        let mut found: Vec<usize> = ids
            .iter()
            .filter_map(|id| first.get(id.as_str()).copied())
            .collect();
        found.sort_unstable();
        found.dedup();
        let mut emails: Vec<&str> = found.iter().map(|&i| people[i].email.as_str()).collect();
        emails.sort_unstable();
        emails.dedup();
        emails
            .into_iter()
            .map(str::to_owned)
            .collect::<Vec<String>>()
    });
    drop(first);
    if kept.contains(&false) {
        let mut kept = kept.into_iter();
        people.retain(|_| kept.next().unwrap_or(true));
    }
    DirectoryListing { people, assigned }
}

/// A page of users as the people it lists.
fn user_page(body: &[u8]) -> serde_json::Result<Vec<DirectoryPerson>> {
    let page: Page<User<'_>> = serde_json::from_str(utf8(body)?)?;
    Ok(page.value.into_iter().filter_map(person).collect())
}

/// The users a page of `appRoleAssignedTo` assigns: their ids (groups and service principals
/// are left out). Their emails are looked up once every page is in.
fn assignment_page(body: &[u8]) -> serde_json::Result<Vec<String>> {
    let page: Page<Assignment<'_>> = serde_json::from_str(utf8(body)?)?;
    Ok(page
        .value
        .into_iter()
        .filter(|a| a.principal_type.as_deref() == Some("User"))
        .filter_map(|a| a.principal_id.map(|id| id.0.into_owned()))
        .collect())
}

/// A page's body as text, checked to be UTF-8 once as a whole (JSON is UTF-8): parsed from
/// `&str`, the strings it borrows are not checked again one by one.
fn utf8(body: &[u8]) -> serde_json::Result<&str> {
    std::str::from_utf8(body).map_err(|e| {
        <serde_json::Error as serde::de::Error>::custom(format!(
            "invalid UTF-8 at byte {}",
            e.valid_up_to()
        ))
    })
}

/// `s` trimmed and lower-cased, when it looks like an address.
fn lower(s: &str) -> Option<String> {
    let s = s.trim();
    s.contains('@').then(|| {
        if s.is_ascii() {
            s.to_ascii_lowercase()
        } else {
            s.to_lowercase()
        }
    })
}

/// Whether `raw`, trimmed and lower-cased, is `lowered` (without lower-casing a copy when ASCII).
fn same_address(raw: &str, lowered: &str) -> bool {
    let raw = raw.trim();
    if raw.is_ascii() {
        raw.eq_ignore_ascii_case(lowered)
    } else {
        raw.to_lowercase() == lowered
    }
}

fn person(user: User<'_>) -> Option<DirectoryPerson> {
    let upn = user
        .user_principal_name
        .as_deref()
        .filter(|u| u.contains('@'));
    let email = user
        .mail
        .as_deref()
        .and_then(lower)
        .or_else(|| upn.and_then(lower))?;
    let proxies = user.proxy_addresses.iter().flatten().filter_map(|p| {
        let (kind, address) = p.split_once(':')?;
        kind.eq_ignore_ascii_case("smtp").then_some(address)
    });
    let others = user.other_mails.iter().flatten().map(|m| &**m);
    let mut aliases: Vec<String> = proxies
        .chain(others)
        .chain(upn)
        .filter(|a| a.contains('@') && !same_address(a, &email))
        .filter_map(lower)
        .collect();
    aliases.sort_unstable();
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
        id: user.id.0.into_owned(),
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
        let text = v.to_string();
        person(serde_json::from_str(&text).unwrap()).unwrap()
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

    fn someone(id: &str, email: &str, status: DirectoryStatus) -> DirectoryPerson {
        DirectoryPerson {
            id: id.into(),
            email: email.into(),
            aliases: Vec::new(),
            status,
            status_since: None,
        }
    }

    #[test]
    fn the_lists_become_one_listing_whatever_order_their_pages_came_in() {
        // Users then deleted users, as the read concatenates them: "b" was deleted between the
        // two lists and is kept where first seen (active); "e" shares its address with "d".
        let people = vec![
            someone("a", "ann@example.com", DirectoryStatus::Active),
            someone("b", "bob@example.com", DirectoryStatus::Active),
            someone("d", "dee@example.com", DirectoryStatus::Active),
            someone("b", "bob@example.com", DirectoryStatus::Deleted),
            someone("c", "cat@example.com", DirectoryStatus::Deleted),
            someone("e", "dee@example.com", DirectoryStatus::Deleted),
        ];
        let ids = ["c", "b", "x", "b", "a", "e", "d"]
            .map(String::from)
            .to_vec();
        let read = listing(people.clone(), Some(ids));
        let kept: Vec<(&str, &DirectoryStatus)> = read
            .people
            .iter()
            .map(|p| (p.id.as_str(), &p.status))
            .collect();
        assert_eq!(
            kept,
            [
                ("a", &DirectoryStatus::Active),
                ("b", &DirectoryStatus::Active),
                ("d", &DirectoryStatus::Active),
                ("c", &DirectoryStatus::Deleted),
                ("e", &DirectoryStatus::Deleted),
            ]
        );
        // Sorted, distinct, an id nobody has ("x") left out.
        assert_eq!(
            read.assigned.as_deref(),
            Some(
                &[
                    "ann@example.com".to_string(),
                    "bob@example.com".into(),
                    "cat@example.com".into(),
                    "dee@example.com".into()
                ][..]
            )
        );
        let unassigned = listing(people, None);
        assert_eq!((unassigned.people.len(), unassigned.assigned), (5, None));
        let empty = listing(Vec::new(), Some(Vec::new()));
        assert_eq!((empty.people.len(), empty.assigned), (0, Some(Vec::new())));
    }

    #[test]
    fn a_body_that_is_not_utf8_is_refused_where_it_breaks() {
        let mut body = br#"{"value":[{"id":"1","mail":"ann@example.com"}]}"#.to_vec();
        body[25] = 0xFF;
        let err = user_page(&body).unwrap_err().to_string();
        assert!(err.contains("invalid UTF-8 at byte 25"), "{err}");
        assert!(assignment_page(&body).is_err());
    }

    #[test]
    fn a_page_is_read_from_borrowed_and_escaped_strings_alike() {
        // An escaped string cannot be borrowed from the body; a null list is an empty one.
        let body = br#"{"@odata.nextLink":"https://graph.example/v1.0/users?$skiptoken=a\u0026b",
            "value":[
              {"id":"1","mail":"Ann\u0040Example.com","userPrincipalName":"ann@example.com",
               "proxyAddresses":null,"otherMails":["a.b@example.com"],"accountEnabled":true},
              {"id":"2","mail":null,"userPrincipalName":"no-address"}
            ]}"#;
        let people = user_page(body).unwrap();
        let next: NextLink<'_> = serde_json::from_slice(body).unwrap();
        assert_eq!(
            next.next_link.as_deref(),
            Some("https://graph.example/v1.0/users?$skiptoken=a&b")
        );
        assert_eq!(people.len(), 1, "a user without an address is left out");
        assert_eq!(
            (people[0].email.as_str(), people[0].aliases.clone()),
            ("ann@example.com", vec!["a.b@example.com".to_string()])
        );
        assert!(user_page(br#"{"value":[{"mail":"x@example.com"}]}"#).is_err());
    }
}
