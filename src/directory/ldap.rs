//! `type = "ldap"`: an LDAP directory (OpenLDAP, Active Directory, 389 DS) read with `ldap3`.
//!
//! One read is: connect over LDAPS, or plain LDAP upgraded with StartTLS (plain LDAP without
//! TLS only to a loopback host), trusting the system roots plus the configured `ca_file`; a
//! simple bind; one subtree search of `base_dn` with `filter`, in RFC 2696 pages of
//! `page_size`; an unbind. Every entry becomes a [`DirectoryPerson`]: its DN is the id, the
//! `email_attributes` give the addresses ([`emails`]), the [`LdapDisabledRule`] the status
//! ([`status`]). Both are pure functions of the entry's attributes, so they are table-tested
//! without a server (slapd has no Active Directory accounts to test `userAccountControl` with).
//!
//! Everything or an error: a failed bind, a refused certificate, a timeout or a search that
//! ends with anything but success returns a [`DirectoryError`], never the entries read so far.
//! Errors name the URL, the bind DN and the LDAP result, never the password.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::asn1::{StructureTag, PL};
use ldap3::{LdapConnAsync, LdapConnSettings, LdapError, ResultEntry, Scope};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use secrecy::ExposeSecret;

use super::DirectoryError;
use crate::config::{LdapDisabledRule, LdapSettings};
use crate::org::{DirectoryListing, DirectoryPerson, DirectoryStatus};

/// How long the TCP connect and the TLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the server may take for each reply (the bind's, each entry and each page's end).
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// The value of `pwdAccountLockedTime` that means "locked until an administrator unlocks it".
const LOCKED_PERMANENTLY: &str = "000001010000Z";

/// Reads the whole directory, or fails.
pub async fn read(
    name: &str,
    settings: &LdapSettings,
    today: NaiveDate,
) -> Result<DirectoryListing, DirectoryError> {
    let fail = |message: String| DirectoryError {
        source: name.to_owned(),
        message,
    };
    let conn_settings = connection_settings(settings).map_err(fail)?;
    // The TCP connect has its own timeout; this one bounds the TLS handshake and StartTLS too.
    let connecting = LdapConnAsync::with_settings(conn_settings, &settings.url);
    let (conn, mut ldap) = tokio::time::timeout(2 * CONNECT_TIMEOUT, connecting)
        .await
        .map_err(LdapError::from)
        .and_then(|connected| connected)
        .map_err(|e| fail(describe(&settings.url, "cannot connect to", &e)))?;
    ldap3::drive!(conn);

    ldap.with_timeout(REPLY_TIMEOUT)
        .simple_bind(&settings.bind_dn, settings.bind_password.expose_secret())
        .await
        .and_then(|result| result.success())
        .map_err(|e| {
            fail(describe(
                &settings.url,
                &format!("bind as {} refused by", settings.bind_dn),
                &e,
            ))
        })?;

    let attributes = requested_attributes(settings);
    let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
        Box::new(EntriesOnly::new()),
        Box::new(PagedResults::new(
            i32::try_from(settings.page_size.max(1)).unwrap_or(i32::MAX),
        )),
    ];
    let searching = |e: LdapError| {
        fail(describe(
            &settings.url,
            &format!("search of {} failed on", settings.base_dn),
            &e,
        ))
    };
    let mut search = ldap
        .with_timeout(REPLY_TIMEOUT)
        .streaming_search_with(
            adapters,
            &settings.base_dn,
            Scope::Subtree,
            &settings.filter,
            attributes,
        )
        .await
        .map_err(searching)?;
    let mut people = Vec::new();
    while let Some(raw) = search.next().await.map_err(searching)? {
        let entry = Entry::parse(&raw)
            .ok_or_else(|| fail(format!("{} sent a malformed entry", settings.url)))?;
        if let Some(person) =
            person(&entry, settings, today).map_err(|problem| fail(problem.to_string()))?
        {
            people.push(person);
        }
    }
    search.finish().await.success().map_err(searching)?;
    // The listing is complete; a failed unbind changes nothing about it.
    let _ = ldap.unbind().await;
    Ok(DirectoryListing {
        people,
        assigned: None,
    })
}

/// The TLS and timeout settings; plain LDAP without StartTLS only to a loopback host.
fn connection_settings(settings: &LdapSettings) -> Result<LdapConnSettings, String> {
    let url = url::Url::parse(&settings.url)
        .map_err(|e| format!("url {} is not a URL: {e}", settings.url))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        // `ldap:` is not a special scheme to the URL parser, so an IP address stays text.
        Some(url::Host::Domain(host)) => {
            host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
        None => false,
    };
    let starttls = match url.scheme() {
        "ldaps" => false,
        "ldap" if settings.starttls => true,
        "ldap" if loopback => false,
        "ldap" => {
            return Err(format!(
                "url {} is plain LDAP to a host that is not loopback: use ldaps:// or set starttls = true",
                settings.url
            ))
        }
        other => {
            return Err(format!(
                "url {} has scheme {other}: expected ldaps:// or ldap://",
                settings.url
            ))
        }
    };
    Ok(LdapConnSettings::new()
        .set_conn_timeout(CONNECT_TIMEOUT)
        .set_starttls(starttls)
        .set_config(tls_config(settings.ca_file.as_deref())?))
}

/// Trusts the system's roots and, when given, every certificate in `ca_file`.
fn tls_config(ca_file: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    // Roots that fail to load or parse are left out: `ca_file` can still supply the one needed.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("ca_file: cannot read {}: {e}", path.display()))?;
        let certificates = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("ca_file: {} is not PEM: {e}", path.display()))?;
        if certificates.is_empty() {
            return Err(format!("ca_file: {} holds no certificate", path.display()));
        }
        for certificate in certificates {
            roots.add(certificate).map_err(|e| {
                format!(
                    "ca_file: {} holds an unusable certificate: {e}",
                    path.display()
                )
            })?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The hint for a refused TLS handshake.
const UNTRUSTED: &str = " (the server's certificate is not trusted: if an internal CA signed it, set ca_file to that CA's PEM file; the URL's host must be a name on the certificate)";

/// An error as a person can act on it: what failed, where, and a hint for the usual causes.
fn describe(url: &str, what: &str, error: &LdapError) -> String {
    let hint = match error {
        LdapError::LdapResult { result } if result.rc == 49 => {
            " (invalid credentials: check bind_dn and the bind password)".to_owned()
        }
        LdapError::Rustls { .. } | LdapError::DNSName { .. } => UNTRUSTED.to_owned(),
        LdapError::Io { source } if source.get_ref().is_some_and(|e| e.is::<rustls::Error>()) => {
            UNTRUSTED.to_owned()
        }
        LdapError::Timeout { .. } => " (the server did not answer in time)".to_owned(),
        _ => String::new(),
    };
    format!("{what} {url}: {error}{hint}")
}

/// The attributes the search asks for: the email attributes and what the disabled rule reads.
fn requested_attributes(settings: &LdapSettings) -> Vec<String> {
    let mut attributes = settings.email_attributes.clone();
    for attribute in rule_attributes(&settings.disabled) {
        if !attributes
            .iter()
            .any(|a| a.eq_ignore_ascii_case(&attribute))
        {
            attributes.push(attribute);
        }
    }
    attributes
}

/// The attributes a disabled rule reads.
pub fn rule_attributes(rule: &LdapDisabledRule) -> Vec<String> {
    match rule {
        LdapDisabledRule::ActiveDirectory => vec!["userAccountControl".to_owned()],
        LdapDisabledRule::PwdAccountLockedTime => vec!["pwdAccountLockedTime".to_owned()],
        LdapDisabledRule::NsAccountLock => vec!["nsAccountLock".to_owned()],
        LdapDisabledRule::ShadowExpire => vec!["shadowExpire".to_owned()],
        LdapDisabledRule::AttributeEquals { attribute, .. } => vec![attribute.clone()],
    }
}

/// One search result entry: its DN and its text attributes, names lower-cased (LDAP attribute
/// names are case-insensitive and servers answer in their own spelling).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub dn: String,
    pub attributes: HashMap<String, Vec<String>>,
}

impl Entry {
    /// An entry with the given attributes (names in any case).
    pub fn new(dn: &str, attributes: &[(&str, &[&str])]) -> Entry {
        let mut entry = Entry {
            dn: dn.to_owned(),
            attributes: HashMap::new(),
        };
        for (name, values) in attributes {
            entry
                .attributes
                .entry(name.to_lowercase())
                .or_default()
                .extend(values.iter().map(|v| (*v).to_owned()));
        }
        entry
    }

    /// The values of an attribute (none when absent).
    pub fn values(&self, name: &str) -> &[String] {
        self.attributes
            .get(&name.to_lowercase())
            .map_or(&[], Vec::as_slice)
    }

    /// Parses a SearchResultEntry without panicking (`ldap3::SearchEntry::construct` panics on
    /// a malformed one). Values that are not UTF-8 are left out: no email or status attribute
    /// is binary.
    fn parse(raw: &ResultEntry) -> Option<Entry> {
        let mut parts = raw.0.clone().match_id(4)?.expect_constructed()?.into_iter();
        let dn = String::from_utf8(parts.next()?.expect_primitive()?).ok()?;
        let mut attributes: HashMap<String, Vec<String>> = HashMap::new();
        for attribute in parts.next()?.expect_constructed()? {
            let mut pair = attribute.expect_constructed()?.into_iter();
            let name = String::from_utf8(pair.next()?.expect_primitive()?).ok()?;
            let values = pair.next()?.expect_constructed()?;
            let texts = values.into_iter().filter_map(|value| match value {
                StructureTag {
                    payload: PL::P(bytes),
                    ..
                } => String::from_utf8(bytes).ok(),
                _ => None,
            });
            attributes
                .entry(name.to_lowercase())
                .or_default()
                .extend(texts);
        }
        Some(Entry { dn, attributes })
    }
}

/// An entry's attribute that a rule could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadValue {
    pub dn: String,
    pub attribute: String,
    pub value: String,
}

impl std::fmt::Display for BadValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "entry {}: {} = {:?} is not a value the disabled rule can read",
            self.dn, self.attribute, self.value
        )
    }
}

/// The person an entry describes; `None` for an entry with no email address (a service or
/// machine account).
fn person(
    entry: &Entry,
    settings: &LdapSettings,
    today: NaiveDate,
) -> Result<Option<DirectoryPerson>, BadValue> {
    let Some((email, aliases)) = emails(entry, &settings.email_attributes) else {
        return Ok(None);
    };
    let (status, status_since) = status(entry, &settings.disabled, today)?;
    Ok(Some(DirectoryPerson {
        id: entry.dn.clone(),
        email,
        aliases,
        status,
        status_since,
    }))
}

/// The primary address and the aliases, lower-cased and without repeats: the first address of
/// the first attribute that has one is the primary. `proxyAddresses` values are `smtp:` or
/// `SMTP:` addresses (the upper-case one is the primary among them); its other types (`X500:`,
/// `SIP:`) are not email. Values without `@` are not addresses.
pub fn emails(entry: &Entry, attributes: &[String]) -> Option<(String, Vec<String>)> {
    let mut addresses: Vec<String> = Vec::new();
    for attribute in attributes {
        let mut values: Vec<(bool, &str)> = entry
            .values(attribute)
            .iter()
            .filter_map(|value| address(value))
            .collect();
        // The primary proxy address first; the others keep the server's order.
        values.sort_by_key(|(primary, _)| !primary);
        for (_, value) in values {
            let value = value.trim().to_lowercase();
            if value.contains('@') && !addresses.contains(&value) {
                addresses.push(value);
            }
        }
    }
    let mut addresses = addresses.into_iter();
    let primary = addresses.next()?;
    Some((primary, addresses.collect()))
}

/// A value as an address, with whether it is marked primary (`SMTP:`); `None` for a
/// `proxyAddresses` value of another type.
fn address(value: &str) -> Option<(bool, &str)> {
    match value.split_once(':') {
        Some((kind, rest)) if kind.eq_ignore_ascii_case("smtp") => Some((kind == "SMTP", rest)),
        Some((kind, _)) if !kind.contains('@') => None,
        _ => Some((false, value)),
    }
}

/// Whether the entry's account is disabled under `rule`, and since when where the entry says.
/// `today` is the day `shadowExpire` is compared with.
pub fn status(
    entry: &Entry,
    rule: &LdapDisabledRule,
    today: NaiveDate,
) -> Result<(DirectoryStatus, Option<DateTime<Utc>>), BadValue> {
    let bad = |attribute: &str, value: &str| BadValue {
        dn: entry.dn.clone(),
        attribute: attribute.to_owned(),
        value: value.to_owned(),
    };
    let active = Ok((DirectoryStatus::Active, None));
    let disabled = |word: &str, since: Option<DateTime<Utc>>| {
        Ok((DirectoryStatus::Disabled(word.to_owned()), since))
    };
    match rule {
        LdapDisabledRule::ActiveDirectory => {
            let Some(value) = entry.values("userAccountControl").first() else {
                return active;
            };
            // A 32-bit flag word; servers may send it signed.
            let flags = value
                .trim()
                .parse::<i64>()
                .map_err(|_| bad("userAccountControl", value))?;
            if flags & 0x2 != 0 {
                disabled("userAccountControl:0x2", None)
            } else {
                active
            }
        }
        LdapDisabledRule::PwdAccountLockedTime => {
            let Some(value) = entry.values("pwdAccountLockedTime").first() else {
                return active;
            };
            let since = if value.trim() == LOCKED_PERMANENTLY {
                None
            } else {
                Some(
                    generalized_time(value.trim())
                        .ok_or_else(|| bad("pwdAccountLockedTime", value))?,
                )
            };
            disabled("pwdAccountLockedTime", since)
        }
        LdapDisabledRule::NsAccountLock => {
            if entry
                .values("nsAccountLock")
                .iter()
                .any(|v| v.trim().eq_ignore_ascii_case("true"))
            {
                disabled("nsAccountLock", None)
            } else {
                active
            }
        }
        LdapDisabledRule::ShadowExpire => {
            let Some(value) = entry.values("shadowExpire").first() else {
                return active;
            };
            let days = value
                .trim()
                .parse::<i64>()
                .map_err(|_| bad("shadowExpire", value))?;
            // -1 (and any negative count) means the account never expires.
            if days < 0 {
                return active;
            }
            let expires = NaiveDate::from_ymd_opt(1970, 1, 1)
                .and_then(|epoch| epoch.checked_add_days(chrono::Days::new(days.unsigned_abs())))
                .ok_or_else(|| bad("shadowExpire", value))?;
            if expires < today {
                let since = expires.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
                disabled("shadowExpire", since)
            } else {
                active
            }
        }
        LdapDisabledRule::AttributeEquals { attribute, value } => {
            if entry
                .values(attribute)
                .iter()
                .any(|v| v.trim().eq_ignore_ascii_case(value.trim()))
            {
                disabled(&format!("{attribute}={value}"), None)
            } else {
                active
            }
        }
    }
}

/// An RFC 4517 GeneralizedTime in UTC (`20260101120000Z`, optionally with fractional seconds).
fn generalized_time(value: &str) -> Option<DateTime<Utc>> {
    let digits = value.strip_suffix('Z')?;
    let whole = digits.split(['.', ',']).next()?;
    NaiveDateTime::parse_from_str(whole, "%Y%m%d%H%M%S")
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(text: &str) -> NaiveDate {
        text.parse().unwrap()
    }

    fn at(text: &str) -> Option<DateTime<Utc>> {
        Some(text.parse().unwrap())
    }

    fn off(word: &str) -> DirectoryStatus {
        DirectoryStatus::Disabled(word.to_owned())
    }

    #[test]
    fn the_disabled_rules_map_attributes_to_a_status() {
        use DirectoryStatus::Active;
        use LdapDisabledRule::*;
        let today = day("2026-06-01");
        let equals = AttributeEquals {
            attribute: "employeeType".to_owned(),
            value: "Left".to_owned(),
        };
        // (rule, attributes, expected status, expected since)
        type Row<'a> = (
            &'a LdapDisabledRule,
            Vec<(&'a str, &'a [&'a str])>,
            DirectoryStatus,
            Option<DateTime<Utc>>,
        );
        let table: Vec<Row> = vec![
            (
                &ActiveDirectory,
                vec![("userAccountControl", &["512"])],
                Active,
                None,
            ),
            (
                &ActiveDirectory,
                vec![("userAccountControl", &["514"])],
                off("userAccountControl:0x2"),
                None,
            ),
            (
                &ActiveDirectory,
                vec![("useraccountcontrol", &["66050"])],
                off("userAccountControl:0x2"),
                None,
            ),
            (
                &ActiveDirectory,
                vec![("userAccountControl", &["66048"])],
                Active,
                None,
            ),
            (
                &ActiveDirectory,
                vec![("userAccountControl", &["-2147483646"])],
                off("userAccountControl:0x2"),
                None,
            ),
            (&ActiveDirectory, vec![], Active, None),
            (
                &PwdAccountLockedTime,
                vec![("pwdAccountLockedTime", &["000001010000Z"])],
                off("pwdAccountLockedTime"),
                None,
            ),
            (
                &PwdAccountLockedTime,
                vec![("pwdAccountLockedTime", &["20260115093000Z"])],
                off("pwdAccountLockedTime"),
                at("2026-01-15T09:30:00Z"),
            ),
            (
                &PwdAccountLockedTime,
                vec![("pwdAccountLockedTime", &["20260115093000.123Z"])],
                off("pwdAccountLockedTime"),
                at("2026-01-15T09:30:00Z"),
            ),
            (
                &PwdAccountLockedTime,
                vec![("userAccountControl", &["514"])],
                Active,
                None,
            ),
            (
                &NsAccountLock,
                vec![("nsAccountLock", &["TRUE"])],
                off("nsAccountLock"),
                None,
            ),
            (
                &NsAccountLock,
                vec![("nsAccountLock", &["false"])],
                Active,
                None,
            ),
            (&NsAccountLock, vec![], Active, None),
            // 20604 days after 1970-01-01 is 2026-05-31: yesterday.
            (
                &ShadowExpire,
                vec![("shadowExpire", &["20604"])],
                off("shadowExpire"),
                at("2026-05-31T00:00:00Z"),
            ),
            (
                &ShadowExpire,
                vec![("shadowExpire", &["20605"])],
                Active,
                None,
            ),
            (
                &ShadowExpire,
                vec![("shadowExpire", &["30000"])],
                Active,
                None,
            ),
            (&ShadowExpire, vec![("shadowExpire", &["-1"])], Active, None),
            (&ShadowExpire, vec![], Active, None),
            (
                &equals,
                vec![("employeetype", &["left"])],
                off("employeeType=Left"),
                None,
            ),
            (
                &equals,
                vec![("employeeType", &["staff", "LEFT"])],
                off("employeeType=Left"),
                None,
            ),
            (&equals, vec![("employeeType", &["staff"])], Active, None),
        ];
        for (rule, attributes, expected, since) in table {
            let entry = Entry::new("uid=a,dc=example,dc=com", &attributes);
            assert_eq!(
                status(&entry, rule, today),
                Ok((expected, since)),
                "{rule:?} {attributes:?}"
            );
        }
    }

    #[test]
    fn unreadable_rule_values_are_errors_naming_the_entry() {
        let today = day("2026-06-01");
        for (rule, attribute, value) in [
            (
                LdapDisabledRule::ActiveDirectory,
                "userAccountControl",
                "disabled",
            ),
            (
                LdapDisabledRule::PwdAccountLockedTime,
                "pwdAccountLockedTime",
                "yesterday",
            ),
            (LdapDisabledRule::ShadowExpire, "shadowExpire", "soon"),
            (
                LdapDisabledRule::ShadowExpire,
                "shadowExpire",
                "999999999999",
            ),
        ] {
            let entry = Entry::new("uid=b,dc=example,dc=com", &[(attribute, &[value])]);
            let error = status(&entry, &rule, today).unwrap_err();
            assert_eq!(error.dn, "uid=b,dc=example,dc=com");
            assert!(error.to_string().contains(value), "{error}");
        }
    }

    #[test]
    fn emails_come_from_the_attributes_in_order_lower_cased() {
        let attributes: Vec<String> = ["mail", "proxyAddresses", "userPrincipalName"]
            .map(str::to_owned)
            .to_vec();
        let entry = Entry::new(
            "cn=Jane",
            &[
                ("mail", &["Jane.Doe@Example.com"]),
                (
                    "proxyaddresses",
                    &[
                        "smtp:jd@example.com",
                        "X500:/o=Example/cn=jane",
                        "SMTP:jane.doe@example.com",
                        "sip:jane@example.com",
                    ],
                ),
                ("userPrincipalName", &["JDOE@corp.example.com"]),
            ],
        );
        assert_eq!(
            emails(&entry, &attributes),
            Some((
                "jane.doe@example.com".to_owned(),
                vec![
                    "jd@example.com".to_owned(),
                    "jdoe@corp.example.com".to_owned()
                ]
            ))
        );
        // Without `mail`, the `SMTP:` proxy address is the primary wherever it is listed.
        let entry = Entry::new(
            "cn=Jane",
            &[(
                "proxyAddresses",
                &["smtp:jd@example.com", "SMTP:Jane.Doe@example.com"],
            )],
        );
        assert_eq!(
            emails(&entry, &attributes),
            Some((
                "jane.doe@example.com".to_owned(),
                vec!["jd@example.com".to_owned()]
            ))
        );
        // No address at all: not a person.
        let entry = Entry::new(
            "cn=printer",
            &[("proxyAddresses", &["X500:/o=x"]), ("mail", &["none"])],
        );
        assert_eq!(emails(&entry, &attributes), None);
    }

    #[test]
    fn plain_ldap_is_refused_unless_loopback_or_starttls() {
        let settings = |url: &str, starttls: bool| LdapSettings {
            url: url.to_owned(),
            starttls,
            ca_file: None,
            bind_dn: "cn=reader".to_owned(),
            bind_password: secrecy::SecretString::from("hunter2"),
            base_dn: "dc=example,dc=com".to_owned(),
            filter: "(objectClass=*)".to_owned(),
            page_size: 100,
            email_attributes: vec!["mail".to_owned()],
            disabled: LdapDisabledRule::PwdAccountLockedTime,
        };
        assert!(connection_settings(&settings("ldap://ldap.example.com", false)).is_err());
        assert!(connection_settings(&settings("http://ldap.example.com", false)).is_err());
        assert!(connection_settings(&settings("ldap://ldap.example.com", true)).is_ok());
        assert!(connection_settings(&settings("ldaps://ldap.example.com", false)).is_ok());
        assert!(connection_settings(&settings("ldap://127.0.0.1:389", false)).is_ok());
        assert!(connection_settings(&settings("ldap://localhost", false)).is_ok());
    }
}
