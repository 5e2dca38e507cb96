//! People as an identity provider (LDAP, Okta, Entra ID, Google Workspace, a CSV roster) lists
//! them: the vocabulary the directory sources produce, the store keeps and the directory rules
//! read.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Whether a person may sign in, as the directory says.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectoryStatus {
    Active,
    /// Disabled, suspended, locked out, deprovisioned or archived; the text is the directory's
    /// own word for it (`SUSPENDED`, `accountEnabled=false`, `userAccountControl:0x2`, ...).
    Disabled(String),
    /// Listed as deleted (Google's `deletionTime`, a roster row marked left).
    Deleted,
}

/// One person in a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryPerson {
    /// The directory's own stable id (DN, Okta id, Graph object id, Google id, roster email).
    pub id: String,
    /// The primary email, lower-cased.
    pub email: String,
    /// Other addresses that reach the same person (`proxyAddresses`, aliases, UPN), lower-cased.
    #[serde(default)]
    pub aliases: Vec<String>,
    pub status: DirectoryStatus,
    /// When the directory says the status last changed, where it says so.
    #[serde(default)]
    pub status_since: Option<DateTime<Utc>>,
}

/// Everything one directory source returned in one complete read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryListing {
    pub people: Vec<DirectoryPerson>,
    /// Lower-cased emails assigned to the Claude application in the identity provider, when the
    /// source is configured to read app assignments; `None` when it is not.
    #[serde(default)]
    pub assigned: Option<Vec<String>>,
}
