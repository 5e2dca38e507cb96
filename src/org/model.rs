//! The objects of an organization as the rules, remediation and report see them.
//!
//! Every enum the API may grow (roles, statuses, workspace roles) is an open enum that keeps an
//! unknown value as text, so an unknown value never breaks a snapshot. The field names are the
//! contract's, so the JSON output keeps its spelling.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Declares an open string enum: known variants plus `Other(String)` for values we have not met.
macro_rules! open_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(from = "String", into = "String")]
        pub enum $name {
            $($variant,)+
            /// A value this version of orgwarden does not know; kept verbatim.
            Other(String),
        }

        impl $name {
            /// The wire text of this value.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Other(text) => text,
                }
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                match text.as_str() {
                    $($text => Self::$variant,)+
                    _ => Self::Other(text),
                }
            }
        }

        impl From<&str> for $name {
            /// Allocates only for a value not known.
            fn from(text: &str) -> Self {
                match text {
                    $($text => Self::$variant,)+
                    _ => Self::Other(text.to_owned()),
                }
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.as_str().to_owned()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

open_enum! {
    /// An organization role (`BetaOrganizationRoleSchema`).
    OrgRole {
        Admin => "admin",
        Billing => "billing",
        ClaudeCodeUser => "claude_code_user",
        Developer => "developer",
        Managed => "managed",
        MembershipAdmin => "membership_admin",
        Owner => "owner",
        PrimaryOwner => "primary_owner",
        User => "user",
    }
}

impl OrgRole {
    /// Roles that count as organization administrators: the API refuses to remove them.
    pub const ADMINS: [OrgRole; 3] = [Self::Admin, Self::Owner, Self::PrimaryOwner];

    /// One of [`OrgRole::ADMINS`] (a role this version does not know never is).
    pub fn is_admin(&self) -> bool {
        Self::ADMINS.contains(self)
    }
}

open_enum! {
    /// A workspace role (`BetaWorkspaceRoleSchema`).
    WorkspaceRole {
        WorkspaceAdmin => "workspace_admin",
        WorkspaceBilling => "workspace_billing",
        WorkspaceDeveloper => "workspace_developer",
        WorkspaceRestrictedDeveloper => "workspace_restricted_developer",
        WorkspaceUser => "workspace_user",
    }
}

open_enum! {
    /// The status of an invite.
    InviteStatus {
        Accepted => "accepted",
        Deleted => "deleted",
        Expired => "expired",
        Pending => "pending",
    }
}

open_enum! {
    /// The status of an API key (`expired` is a 2026 addition).
    ApiKeyStatus {
        Active => "active",
        Archived => "archived",
        Expired => "expired",
        Inactive => "inactive",
    }
}

/// `GET /v1/organizations/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Organization {
    pub id: String,
    pub name: String,
}

/// An organization member (`BetaUser`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: OrgRole,
    pub added_at: DateTime<Utc>,
}

/// An invite (`BetaInviteSchema`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    pub id: String,
    pub email: String,
    pub role: OrgRole,
    pub invited_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub status: InviteStatus,
    /// A 2026 field: absent from older servers.
    #[serde(default)]
    pub accepted_at: Option<DateTime<Utc>>,
}

/// A workspace (`BetaWorkspace`); the 2026 fields we do not use are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub display_color: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub archived_at: Option<DateTime<Utc>>,
}

/// An explicit membership of a user in a workspace (`BetaWorkspaceMemberSchema`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkspaceMember {
    pub user_id: String,
    pub workspace_id: String,
    pub workspace_role: WorkspaceRole,
}

/// Who created an API key. `type` is `user` or `service_account` today; kept as text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
}

/// The 2026 principal of a key: `user_actor` (with `user_id`) or `service_account_actor`
/// (with `service_account_id`). Unknown kinds keep their type text and no id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_id: Option<String>,
}

/// The 2026 scope of a key: `{type: "workspace", workspace_id}` or `{type: "organization"}`.
/// The type is kept as text, so an unknown one survives a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyScope {
    #[serde(rename = "type")]
    pub kind: String,
    /// The real workspace id (the Default Workspace's too) of a workspace-scoped key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
}

impl KeyScope {
    /// True for a key that reaches the whole organization rather than one workspace.
    pub fn is_organization(&self) -> bool {
        self.kind == "organization"
    }
}

/// An API key (`BetaApiKey`). The secret itself is never returned by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    /// Null for a key in the Default Workspace.
    #[serde(default)]
    pub workspace_id: Option<String>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub created_by: Option<Actor>,
    #[serde(default)]
    pub partial_key_hint: Option<String>,
    pub status: ApiKeyStatus,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub principal: Option<Principal>,
    /// A 2026 field: absent from older servers.
    #[serde(default)]
    pub scope: Option<KeyScope>,
}

/// Who owns a key, as far as a person leaving is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyOwner<'a> {
    /// A person: the key is orphaned when they leave.
    User(&'a str),
    /// A service account or another non-person actor: a person leaving does not orphan it.
    NonPerson,
    /// Neither `principal` nor `created_by` says who: reported as unattributed.
    Unattributed,
}

impl ApiKey {
    /// The owner: `principal.user_id` for a `user_actor` principal, else `created_by.id` when
    /// its type is `user`.
    pub fn owner(&self) -> KeyOwner<'_> {
        if let Some(principal) = &self.principal {
            if principal.kind == "user_actor" {
                if let Some(user_id) = &principal.user_id {
                    return KeyOwner::User(user_id);
                }
            } else {
                return KeyOwner::NonPerson;
            }
        }
        match &self.created_by {
            Some(actor) if actor.kind == "user" => KeyOwner::User(&actor.id),
            Some(_) => KeyOwner::NonPerson,
            None => KeyOwner::Unattributed,
        }
    }
}
