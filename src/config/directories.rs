//! The validated `[[directories]]` settings: one [`DirectoryConfig`] per identity-provider
//! source. `validate.rs` builds them from the raw tables; the `directory` module's sources read
//! them. Secrets are `SecretString` from the moment they are read.

use std::path::PathBuf;

use secrecy::SecretString;

/// One directory source.
#[derive(Debug, Clone)]
pub struct DirectoryConfig {
    /// Unique among the sources; names its findings' evidence and its `not_evaluated` reason.
    pub name: String,
    /// Lower-cased email domains this source is authoritative for: a member or invite in one of
    /// them is judged by this source alone.
    pub domains: Vec<String>,
    /// Read with each audit cycle when `None`; otherwise on this cron schedule (the audit then
    /// uses the latest complete read).
    pub schedule: Option<String>,
    pub source: DirectorySource,
}

/// What kind of source, with its own settings.
#[derive(Debug, Clone)]
pub enum DirectorySource {
    Ldap(LdapSettings),
    Okta(OktaSettings),
    Entra(EntraSettings),
    Google(GoogleSettings),
    /// The offboarding roster format (`email,...` rows); every row is a person who left.
    Csv {
        path: PathBuf,
    },
}

/// `type = "ldap"`.
#[derive(Debug, Clone)]
pub struct LdapSettings {
    /// `ldaps://host:636` or `ldap://host:389` (then `starttls` must be true unless the host is
    /// loopback).
    pub url: String,
    pub starttls: bool,
    /// A PEM file of CA certificates to trust besides the system roots.
    pub ca_file: Option<PathBuf>,
    pub bind_dn: String,
    pub bind_password: SecretString,
    pub base_dn: String,
    /// An RFC 4515 filter, e.g. `(objectClass=inetOrgPerson)`.
    pub filter: String,
    /// RFC 2696 paged-results page size.
    pub page_size: u32,
    /// Attributes holding the primary email first, then aliases (`mail`, `proxyAddresses`,
    /// `userPrincipalName`); `smtp:`/`SMTP:` prefixes are stripped.
    pub email_attributes: Vec<String>,
    pub disabled: LdapDisabledRule,
}

/// How an LDAP entry says its account is disabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LdapDisabledRule {
    /// Active Directory: `userAccountControl` has bit 0x2 set.
    ActiveDirectory,
    /// OpenLDAP ppolicy: `pwdAccountLockedTime` is present.
    PwdAccountLockedTime,
    /// 389 DS / Red Hat DS: `nsAccountLock` is `true`.
    NsAccountLock,
    /// `shadowExpire` (days since 1970-01-01) is in the past.
    ShadowExpire,
    /// Any named attribute equal (case-insensitively) to a value.
    AttributeEquals { attribute: String, value: String },
}

/// `type = "okta"`.
#[derive(Debug, Clone)]
pub struct OktaSettings {
    /// `https://example.okta.com` (plain http only on loopback).
    pub org_url: String,
    pub auth: OktaAuth,
    /// An optional `search` expression for `/api/v1/users`.
    pub search: Option<String>,
    /// The Claude application's id, to read its assignments (`/api/v1/apps/{id}/users`).
    pub app_id: Option<String>,
}

#[derive(Debug, Clone)]
pub enum OktaAuth {
    /// `Authorization: SSWS <token>`.
    ApiToken(SecretString),
    /// OAuth 2.0 client credentials with a private-key JWT client assertion (RS256), scopes
    /// `okta.users.read` (and `okta.apps.read` for assignments).
    PrivateKeyJwt {
        client_id: String,
        /// PKCS#8 PEM.
        private_key: SecretString,
        key_id: Option<String>,
    },
}

/// `type = "entra"`: Microsoft Graph v1.0, client-credentials flow.
#[derive(Debug, Clone)]
pub struct EntraSettings {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: SecretString,
    /// Default `https://graph.microsoft.com`.
    pub graph_url: String,
    /// Default `https://login.microsoftonline.com`.
    pub login_url: String,
    /// The Claude enterprise application's service principal id, to read its app-role
    /// assignments (`/servicePrincipals/{id}/appRoleAssignedTo`).
    pub service_principal_id: Option<String>,
}

/// `type = "google"`: Admin SDK Directory API with a service-account key and domain-wide
/// delegation.
#[derive(Debug, Clone)]
pub struct GoogleSettings {
    /// The service account's JSON key file content (it holds `client_email`, `private_key`,
    /// `token_uri`).
    pub service_account_key: SecretString,
    /// The admin the service account impersonates (`sub` of the JWT).
    pub subject: String,
    /// Default `my_customer`.
    pub customer: String,
    /// Default `https://admin.googleapis.com`.
    pub api_url: String,
}
