//! Directory sources: reading who an identity provider lists (LDAP, Okta, Microsoft Graph,
//! Google Directory, a CSV roster) into a [`DirectoryListing`](crate::org::DirectoryListing).
//!
//! Each source reads everything or fails: a partial listing is never returned, so a source that
//! is down leaves its rules `not_evaluated` instead of reporting "nobody left".
//! **Architecture Invariant:** the only module that speaks to identity providers.

pub mod csv;
pub mod entra;
pub mod google;
pub mod ldap;
pub mod okta;

use std::fmt;

mod http;

use crate::config::{DirectoryConfig, DirectorySource};
use crate::org::DirectoryListing;
pub use http::ReadOptions;

/// The source's type as configured (`ldap`, `okta`, `entra`, `google`, `csv`).
pub fn kind(source: &DirectorySource) -> &'static str {
    match source {
        DirectorySource::Ldap(_) => "ldap",
        DirectorySource::Okta(_) => "okta",
        DirectorySource::Entra(_) => "entra",
        DirectorySource::Google(_) => "google",
        DirectorySource::Csv { .. } => "csv",
    }
}

/// Reads one source completely, or fails.
/// `now` is the time the read is judged at (LDAP's `shadowExpire` is compared with its day).
pub async fn read(
    cfg: &DirectoryConfig,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<DirectoryListing, DirectoryError> {
    let name = cfg.name.as_str();
    match &cfg.source {
        DirectorySource::Ldap(settings) => ldap::read(name, settings, now.date_naive()).await,
        DirectorySource::Okta(settings) => okta::read(name, settings).await,
        DirectorySource::Entra(settings) => entra::read(name, settings).await,
        DirectorySource::Google(settings) => google::read(name, settings).await,
        DirectorySource::Csv { path } => csv::read(name, path).await,
    }
}

/// Why a directory source could not be read. The text never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryError {
    /// The source's configured name.
    pub source: String,
    pub message: String,
}

impl fmt::Display for DirectoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "directory {}: {}", self.source, self.message)
    }
}

impl std::error::Error for DirectoryError {}
