//! Directory sources: reading who an identity provider lists (LDAP, Okta, Microsoft Graph,
//! Google Directory, a CSV roster) into a [`DirectoryListing`](crate::org::DirectoryListing).
//!
//! Each source reads everything or fails: a partial listing is never returned, so a source that
//! is down leaves its rules `not_evaluated` instead of reporting "nobody left".
//! **Architecture Invariant:** the only module that speaks to identity providers.

pub mod ldap;

use std::fmt;

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
