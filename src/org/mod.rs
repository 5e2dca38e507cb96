//! The domain model: the organization as orgwarden reasons about it.
//!
//! `admin_api` maps its wire models into these types, `store` reads and writes them, and the
//! pure layers (`policy`, `remediate`'s plan, `report`, `output`) work on them alone. This module
//! imports nothing from the rest of the crate.

pub mod directory;
pub mod model;
mod run;
mod state;

use chrono::{DateTime, SecondsFormat, Utc};

pub use directory::{DirectoryListing, DirectoryPerson, DirectoryStatus};
pub use model::{
    Actor, ApiKey, ApiKeyStatus, Invite, InviteStatus, KeyOwner, KeyScope, OrgRole, Organization,
    Principal, User, Workspace, WorkspaceMember, WorkspaceRole,
};
pub use run::{RunRecord, RunStatus};
pub use state::{diff, members_by_id, Change, ChangeKind, ObjectKind, OrgState};

/// Counts of each kind of entity in one snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub members: u64,
    pub invites: u64,
    pub workspaces: u64,
    pub workspace_members: u64,
    pub api_keys: u64,
}

/// A timestamp as the store and the reports write it: RFC 3339, microseconds, `Z`.
pub fn ts(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}
