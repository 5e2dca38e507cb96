//! Validation of `[[directories]]`: the raw entries into [`DirectoryConfig`]s, every problem
//! named by its key (`directories[1].org_url`), a key given for another source type included.

use std::path::PathBuf;

use secrecy::SecretString;
use url::Url;

use super::directories::{
    DirectoryConfig, DirectorySource, EntraSettings, GoogleSettings, LdapDisabledRule,
    LdapSettings, OktaAuth, OktaSettings,
};
use super::raw::{RawDirectory, RawDisabledRule};
use super::secrets::SecretSources;
use super::validate::Check;
use super::{check_base_url, Environment};

/// The source types and the keys each one reads (besides the common `name`, `type`, `domains`,
/// `schedule` and `enabled`).
const TYPE_KEYS: &[(&str, &[&str])] = &[
    (
        "okta",
        &[
            "org_url",
            "api_token",
            "api_token_file",
            "client_id",
            "private_key_file",
            "key_id",
            "app_id",
            "search",
        ],
    ),
    (
        "entra",
        &[
            "tenant_id",
            "client_id",
            "client_secret",
            "client_secret_file",
            "graph_url",
            "login_url",
            "service_principal_id",
        ],
    ),
    (
        "google",
        &["service_account_key_file", "subject", "customer", "api_url"],
    ),
    (
        "ldap",
        &[
            "url",
            "starttls",
            "ca_file",
            "bind_dn",
            "bind_password",
            "bind_password_file",
            "base_dn",
            "filter",
            "page_size",
            "email_attributes",
            "disabled_rule",
        ],
    ),
    ("csv", &["path"]),
];

/// The type-specific keys an entry sets.
fn keys_set(raw: &RawDirectory) -> Vec<&'static str> {
    let flags = [
        ("org_url", raw.org_url.is_some()),
        ("api_token", raw.api_token.is_some()),
        ("api_token_file", raw.api_token_file.is_some()),
        ("client_id", raw.client_id.is_some()),
        ("private_key_file", raw.private_key_file.is_some()),
        ("key_id", raw.key_id.is_some()),
        ("app_id", raw.app_id.is_some()),
        ("search", raw.search.is_some()),
        ("tenant_id", raw.tenant_id.is_some()),
        ("client_secret", raw.client_secret.is_some()),
        ("client_secret_file", raw.client_secret_file.is_some()),
        ("graph_url", raw.graph_url.is_some()),
        ("login_url", raw.login_url.is_some()),
        ("service_principal_id", raw.service_principal_id.is_some()),
        (
            "service_account_key_file",
            raw.service_account_key_file.is_some(),
        ),
        ("subject", raw.subject.is_some()),
        ("customer", raw.customer.is_some()),
        ("api_url", raw.api_url.is_some()),
        ("url", raw.url.is_some()),
        ("starttls", raw.starttls.is_some()),
        ("ca_file", raw.ca_file.is_some()),
        ("bind_dn", raw.bind_dn.is_some()),
        ("bind_password", raw.bind_password.is_some()),
        ("bind_password_file", raw.bind_password_file.is_some()),
        ("base_dn", raw.base_dn.is_some()),
        ("filter", raw.filter.is_some()),
        ("page_size", raw.page_size.is_some()),
        ("email_attributes", !raw.email_attributes.items().is_empty()),
        ("disabled_rule", raw.disabled_rule.is_some()),
        ("path", raw.path.is_some()),
    ];
    flags
        .into_iter()
        .filter(|(_, set)| *set)
        .map(|(key, _)| key)
        .collect()
}

/// Validates every `[[directories]]` entry; a disabled one (`enabled = false`) is checked but
/// left out of the result.
pub(super) fn directories(
    raw: Vec<RawDirectory>,
    env: &Environment,
    check: &mut Check<'_>,
) -> Vec<DirectoryConfig> {
    let mut names: Vec<String> = Vec::new();
    let mut out = Vec::new();
    for (idx, entry) in raw.into_iter().enumerate() {
        let at = |field: &str| format!("directories[{idx}].{field}");
        let name = entry.name.clone().unwrap_or_default().trim().to_owned();
        if name.is_empty() {
            check.problem(&at("name"), "is required");
        } else if !name
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
        {
            check.problem(
                &at("name"),
                format!("{name:?} may only hold letters, digits, '-' and '_'"),
            );
        } else if names.contains(&name) {
            check.problem(&at("name"), format!("{name:?} is used by another source"));
        }
        names.push(name.clone());
        let kind = entry.kind.clone().unwrap_or_default();
        let Some((kind, allowed)) = TYPE_KEYS.iter().find(|(k, _)| *k == kind) else {
            if kind.is_empty() {
                check.problem(
                    &at("type"),
                    "is required (ldap, okta, entra, google or csv)",
                );
            } else {
                check.problem(
                    &at("type"),
                    format!("{kind:?} is not one of ldap, okta, entra, google, csv"),
                );
            }
            continue;
        };
        for key in keys_set(&entry) {
            if !allowed.contains(&key) {
                check.problem(&at(key), format!("is not used by type = {kind:?}"));
            }
        }
        let domains = check.domains(&at("domains"), entry.domains.items());
        if domains.is_empty() && *kind != "csv" && entry.domains.items().is_empty() {
            check.problem(
                &at("domains"),
                "at least one domain is needed: the email domains this source is authoritative for",
            );
        }
        let schedule = entry
            .schedule
            .clone()
            .map(|cron| check.cron(&at("schedule"), Some(cron), ""));
        let enabled = entry.enabled.unwrap_or(true);
        let source = match *kind {
            "okta" => okta(&entry, &name, &at, env, check),
            "entra" => entra(&entry, &name, &at, env, check),
            "google" => google(&entry, &at, check),
            "ldap" => ldap(&entry, &name, &at, env, check),
            _ => csv(&entry, &at, check),
        };
        if let (Some(source), true) = (source, enabled) {
            out.push(DirectoryConfig {
                name,
                domains,
                schedule,
                source,
            });
        }
    }
    out
}

/// A required text value, trimmed.
fn required(check: &mut Check<'_>, key: &str, value: &Option<String>, what: &str) -> String {
    match value.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => text.to_owned(),
        _ => {
            check.problem(key, format!("is required ({what})"));
            String::new()
        }
    }
}

/// A base URL (https, or http on loopback), with its default.
fn base_url(check: &mut Check<'_>, key: &str, value: &Option<String>, default: &str) -> String {
    let text = value.as_deref().unwrap_or(default).trim();
    match Url::parse(text) {
        Ok(url) => {
            if let Err(why) = check_base_url(&url) {
                check.problem(key, why);
            }
        }
        Err(error) => check.problem(key, format!("{text:?} is not a URL: {error}")),
    }
    text.trim_end_matches('/').to_owned()
}

/// A secret from the credentials directory (`directory_<name>_<field>`), its `<field>_file` or
/// the value written inline; when `required`, its absence is a problem.
#[allow(clippy::too_many_arguments)]
fn secret(
    check: &mut Check<'_>,
    env: &Environment,
    at: &dyn Fn(&str) -> String,
    name: &str,
    field: &str,
    file: Option<&std::path::Path>,
    inline: Option<String>,
    required: bool,
) -> Option<SecretString> {
    let key = at(field);
    let given_file = file.is_some();
    let found = check.secret(
        SecretSources {
            key: &key,
            credential: &format!("directory_{name}_{field}"),
            file,
            env_var: None,
            inline,
        },
        env,
    );
    // An unreadable file is a problem of its own already.
    if found.is_none() && required && !given_file {
        check.problem(
            &key,
            format!("is required ({field}, {field}_file or a credential)"),
        );
    }
    found
}

fn okta(
    raw: &RawDirectory,
    name: &str,
    at: &dyn Fn(&str) -> String,
    env: &Environment,
    check: &mut Check<'_>,
) -> Option<DirectorySource> {
    let org_url = match &raw.org_url {
        None => {
            check.problem(&at("org_url"), "is required (https://example.okta.com)");
            String::new()
        }
        some => base_url(check, &at("org_url"), some, ""),
    };
    let token = secret(
        check,
        env,
        at,
        name,
        "api_token",
        raw.api_token_file.as_deref(),
        raw.api_token.clone(),
        false,
    );
    let auth = match (token, &raw.client_id) {
        (Some(_), Some(_)) => {
            check.problem(
                &at("client_id"),
                "give either api_token or client_id with private_key_file, not both",
            );
            None
        }
        (Some(token), None) => Some(OktaAuth::ApiToken(token)),
        (None, Some(client_id)) => {
            let key = secret(
                check,
                env,
                at,
                name,
                "private_key",
                raw.private_key_file.as_deref(),
                None,
                false,
            );
            match key {
                Some(private_key) => Some(OktaAuth::PrivateKeyJwt {
                    client_id: client_id.trim().to_owned(),
                    private_key,
                    key_id: raw.key_id.clone(),
                }),
                None => {
                    check.problem(
                        &at("private_key_file"),
                        "is required with client_id (a PKCS#8 PEM key)",
                    );
                    None
                }
            }
        }
        (None, None) => {
            check.problem(
                &at("api_token"),
                "is required (api_token, api_token_file, a credential, or client_id with \
                 private_key_file)",
            );
            None
        }
    };
    Some(DirectorySource::Okta(OktaSettings {
        org_url,
        auth: auth?,
        search: raw.search.clone(),
        app_id: raw.app_id.clone(),
    }))
}

fn entra(
    raw: &RawDirectory,
    name: &str,
    at: &dyn Fn(&str) -> String,
    env: &Environment,
    check: &mut Check<'_>,
) -> Option<DirectorySource> {
    let tenant_id = required(check, &at("tenant_id"), &raw.tenant_id, "the directory id");
    let client_id = required(check, &at("client_id"), &raw.client_id, "the app's id");
    let client_secret = secret(
        check,
        env,
        at,
        name,
        "client_secret",
        raw.client_secret_file.as_deref(),
        raw.client_secret.clone(),
        true,
    );
    let graph_url = base_url(
        check,
        &at("graph_url"),
        &raw.graph_url,
        "https://graph.microsoft.com",
    );
    let login_url = base_url(
        check,
        &at("login_url"),
        &raw.login_url,
        "https://login.microsoftonline.com",
    );
    Some(DirectorySource::Entra(EntraSettings {
        tenant_id,
        client_id,
        client_secret: client_secret?,
        graph_url,
        login_url,
        service_principal_id: raw.service_principal_id.clone(),
    }))
}

fn google(
    raw: &RawDirectory,
    at: &dyn Fn(&str) -> String,
    check: &mut Check<'_>,
) -> Option<DirectorySource> {
    // The key file is the only source: its JSON holds the key and the token endpoint.
    let key = match &raw.service_account_key_file {
        None => {
            check.problem(
                &at("service_account_key_file"),
                "is required (the service account's JSON key)",
            );
            None
        }
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) if !text.trim().is_empty() => Some(SecretString::from(text)),
            Ok(_) => {
                check.problem(
                    &at("service_account_key_file"),
                    format!("{} is empty", path.display()),
                );
                None
            }
            Err(error) => {
                check.problem(
                    &at("service_account_key_file"),
                    format!("cannot read {}: {error}", path.display()),
                );
                None
            }
        },
    };
    let subject = required(
        check,
        &at("subject"),
        &raw.subject,
        "the admin the service account acts as",
    );
    let api_url = base_url(
        check,
        &at("api_url"),
        &raw.api_url,
        "https://admin.googleapis.com",
    );
    Some(DirectorySource::Google(GoogleSettings {
        service_account_key: key?,
        subject,
        customer: raw
            .customer
            .clone()
            .unwrap_or_else(|| "my_customer".to_owned()),
        api_url,
    }))
}

fn ldap(
    raw: &RawDirectory,
    name: &str,
    at: &dyn Fn(&str) -> String,
    env: &Environment,
    check: &mut Check<'_>,
) -> Option<DirectorySource> {
    let url = required(
        check,
        &at("url"),
        &raw.url,
        "ldaps://host:636 or ldap://host:389",
    );
    let starttls = raw.starttls.unwrap_or(false);
    if !url.is_empty() {
        match Url::parse(&url) {
            Ok(parsed) => match parsed.scheme() {
                "ldaps" => {
                    if starttls {
                        check.problem(&at("starttls"), "is not used with ldaps:// (already TLS)");
                    }
                }
                "ldap" => {
                    let loopback = parsed
                        .host_str()
                        .is_some_and(super::validate::is_loopback_host);
                    if !starttls && !loopback {
                        check.problem(
                            &at("starttls"),
                            "must be true for ldap:// unless the host is loopback (the bind \
                             password would travel in clear)",
                        );
                    }
                }
                other => check.problem(
                    &at("url"),
                    format!("unsupported scheme {other:?}: use ldaps:// or ldap://"),
                ),
            },
            Err(error) => check.problem(&at("url"), format!("is not a URL: {error}")),
        }
    }
    let bind_dn = required(check, &at("bind_dn"), &raw.bind_dn, "the DN to bind as");
    let bind_password = secret(
        check,
        env,
        at,
        name,
        "bind_password",
        raw.bind_password_file.as_deref(),
        raw.bind_password.clone(),
        true,
    );
    let base_dn = required(check, &at("base_dn"), &raw.base_dn, "where people are");
    let page_size = raw.page_size.unwrap_or(500);
    if !(1..=10_000).contains(&page_size) {
        check.problem(
            &at("page_size"),
            format!("{page_size} must be between 1 and 10000"),
        );
    }
    let mut email_attributes = raw.email_attributes.items();
    if email_attributes.is_empty() {
        email_attributes = vec!["mail".to_owned()];
    }
    let disabled = match &raw.disabled_rule {
        None => LdapDisabledRule::PwdAccountLockedTime,
        Some(RawDisabledRule::Named(rule)) => match rule.trim() {
            "active_directory" => LdapDisabledRule::ActiveDirectory,
            "pwd_account_locked_time" => LdapDisabledRule::PwdAccountLockedTime,
            "ns_account_lock" => LdapDisabledRule::NsAccountLock,
            "shadow_expire" => LdapDisabledRule::ShadowExpire,
            other => {
                check.problem(
                    &at("disabled_rule"),
                    format!(
                        "{other:?} is not one of active_directory, pwd_account_locked_time, \
                         ns_account_lock, shadow_expire or {{ attribute, value }}"
                    ),
                );
                LdapDisabledRule::PwdAccountLockedTime
            }
        },
        Some(RawDisabledRule::Attribute { attribute, value }) => {
            let attribute = required(
                check,
                &at("disabled_rule.attribute"),
                attribute,
                "the attribute to compare",
            );
            let value = required(
                check,
                &at("disabled_rule.value"),
                value,
                "the value that means disabled",
            );
            LdapDisabledRule::AttributeEquals { attribute, value }
        }
    };
    Some(DirectorySource::Ldap(LdapSettings {
        url,
        starttls,
        ca_file: raw.ca_file.clone(),
        bind_dn,
        bind_password: bind_password?,
        base_dn,
        filter: raw
            .filter
            .clone()
            .unwrap_or_else(|| "(objectClass=inetOrgPerson)".to_owned()),
        page_size,
        email_attributes,
        disabled,
    }))
}

fn csv(
    raw: &RawDirectory,
    at: &dyn Fn(&str) -> String,
    check: &mut Check<'_>,
) -> Option<DirectorySource> {
    let path: Option<PathBuf> = raw.path.clone();
    if path.is_none() {
        check.problem(&at("path"), "is required (the CSV file)");
    }
    Some(DirectorySource::Csv { path: path? })
}
