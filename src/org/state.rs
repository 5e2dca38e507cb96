//! [`OrgState`], the organization at one snapshot, and [`diff`], the pure comparison of two
//! states that `orgwarden diff`, the audit and the report share.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::model::{ApiKey, Invite, Organization, User, Workspace, WorkspaceMember};
use super::Counts;

/// The organization as one complete snapshot saw it.
#[derive(Debug, Clone, Serialize)]
pub struct OrgState {
    pub run_id: i64,
    pub taken_at: DateTime<Utc>,
    pub organization: Organization,
    pub members: Vec<User>,
    pub invites: Vec<Invite>,
    pub workspaces: Vec<Workspace>,
    pub workspace_members: Vec<WorkspaceMember>,
    pub api_keys: Vec<ApiKey>,
}

impl OrgState {
    pub fn counts(&self) -> Counts {
        Counts {
            members: self.members.len() as u64,
            invites: self.invites.len() as u64,
            workspaces: self.workspaces.len() as u64,
            workspace_members: self.workspace_members.len() as u64,
            api_keys: self.api_keys.len() as u64,
        }
    }
}

// ---- Diff -----------------------------------------------------------------------------------------

/// One difference between two snapshots. Serialised with the API's field names plus `kind`,
/// `change` and, for a changed field, `field`, `before` and `after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// `member`, `invite`, `api_key`, `workspace` or `workspace_member`.
    pub kind: &'static str,
    /// `joined`, `left`, `role_changed`, `created`, `accepted`, `expired`, `deleted`,
    /// `status_changed`, `renamed`, `vanished`, `archived`, `added`, `removed`, `changed`.
    pub change: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

impl Change {
    fn new(kind: &'static str, change: &'static str) -> Change {
        Change {
            kind,
            change,
            id: None,
            email: None,
            name: None,
            workspace_id: None,
            user_id: None,
            field: None,
            before: None,
            after: None,
        }
    }

    fn field(mut self, field: &'static str, before: impl ToString, after: impl ToString) -> Change {
        self.field = Some(field);
        self.before = Some(before.to_string());
        self.after = Some(after.to_string());
        self
    }

    /// The human subject: an email, a name, or `user in workspace`.
    pub fn subject(&self) -> String {
        if let Some(email) = &self.email {
            return email.clone();
        }
        if let Some(name) = &self.name {
            return name.clone();
        }
        match (&self.user_id, &self.workspace_id) {
            (Some(user), Some(workspace)) => format!("{user} in {workspace}"),
            _ => self.id.clone().unwrap_or_default(),
        }
    }
}

fn index<'a, T, K: Ord>(items: &'a [T], key: impl Fn(&'a T) -> K) -> BTreeMap<K, &'a T> {
    items.iter().map(|item| (key(item), item)).collect()
}

fn opt_text<T: ToString>(value: &Option<T>) -> String {
    value.as_ref().map(ToString::to_string).unwrap_or_default()
}

/// Everything that changed from `before` to `after`, in a stable order (kind, then id).
pub fn diff(before: &OrgState, after: &OrgState) -> Vec<Change> {
    let mut changes = Vec::new();

    // Members.
    let (old, new) = (
        index(&before.members, |u| u.id.as_str()),
        index(&after.members, |u| u.id.as_str()),
    );
    let member = |u: &User, change| Change {
        id: Some(u.id.clone()),
        email: Some(u.email.clone()),
        ..Change::new("member", change)
    };
    for (id, u) in &new {
        match old.get(id) {
            None => changes.push(member(u, "joined")),
            Some(o) => {
                if o.role != u.role {
                    changes.push(member(u, "role_changed").field("role", &o.role, &u.role));
                }
                if o.email != u.email {
                    changes.push(member(u, "changed").field("email", &o.email, &u.email));
                }
                if o.name != u.name {
                    changes.push(member(u, "changed").field("name", &o.name, &u.name));
                }
            }
        }
    }
    for (id, o) in &old {
        if !new.contains_key(id) {
            changes.push(member(o, "left"));
        }
    }

    // Invites.
    let (old, new) = (
        index(&before.invites, |i| i.id.as_str()),
        index(&after.invites, |i| i.id.as_str()),
    );
    let invite = |i: &Invite, change| Change {
        id: Some(i.id.clone()),
        email: Some(i.email.clone()),
        ..Change::new("invite", change)
    };
    for (id, i) in &new {
        match old.get(id) {
            None => changes.push(invite(i, "created")),
            Some(o) => {
                if o.status != i.status {
                    let change = match i.status.as_str() {
                        "accepted" => "accepted",
                        "expired" => "expired",
                        "deleted" => "deleted",
                        _ => "status_changed",
                    };
                    changes.push(invite(i, change).field("status", &o.status, &i.status));
                }
                if o.role != i.role {
                    changes.push(invite(i, "role_changed").field("role", &o.role, &i.role));
                }
            }
        }
    }
    for (id, o) in &old {
        if !new.contains_key(id) {
            // Deleted invites are not listed any more: vanishing is how deletion shows.
            changes.push(invite(o, "deleted"));
        }
    }

    // Workspaces.
    let (old, new) = (
        index(&before.workspaces, |w| w.id.as_str()),
        index(&after.workspaces, |w| w.id.as_str()),
    );
    let workspace = |w: &Workspace, change| Change {
        id: Some(w.id.clone()),
        name: Some(w.name.clone()),
        ..Change::new("workspace", change)
    };
    for (id, w) in &new {
        match old.get(id) {
            None => changes.push(workspace(w, "created")),
            Some(o) => {
                if o.archived_at.is_none() && w.archived_at.is_some() {
                    changes.push(workspace(w, "archived").field(
                        "archived_at",
                        "",
                        opt_text(&w.archived_at.map(|t| super::ts(&t))),
                    ));
                }
                if o.name != w.name {
                    changes.push(workspace(w, "renamed").field("name", &o.name, &w.name));
                }
            }
        }
    }
    for (id, o) in &old {
        if !new.contains_key(id) {
            changes.push(workspace(o, "vanished"));
        }
    }

    // Workspace memberships.
    let key = |m: &WorkspaceMember| (m.workspace_id.clone(), m.user_id.clone());
    let (old, new) = (
        index(&before.workspace_members, key),
        index(&after.workspace_members, key),
    );
    let membership = |m: &WorkspaceMember, change| Change {
        workspace_id: Some(m.workspace_id.clone()),
        user_id: Some(m.user_id.clone()),
        ..Change::new("workspace_member", change)
    };
    for (k, m) in &new {
        match old.get(k) {
            None => {
                changes.push(membership(m, "added").field("workspace_role", "", &m.workspace_role))
            }
            Some(o) if o.workspace_role != m.workspace_role => {
                changes.push(membership(m, "role_changed").field(
                    "workspace_role",
                    &o.workspace_role,
                    &m.workspace_role,
                ))
            }
            Some(_) => {}
        }
    }
    for (k, o) in &old {
        if !new.contains_key(k) {
            changes.push(membership(o, "removed"));
        }
    }

    // API keys.
    let (old, new) = (
        index(&before.api_keys, |k| k.id.as_str()),
        index(&after.api_keys, |k| k.id.as_str()),
    );
    let api_key = |k: &ApiKey, change| Change {
        id: Some(k.id.clone()),
        name: Some(k.name.clone()),
        ..Change::new("api_key", change)
    };
    for (id, k) in &new {
        match old.get(id) {
            None => changes.push(api_key(k, "created")),
            Some(o) => {
                if o.status != k.status {
                    changes
                        .push(api_key(k, "status_changed").field("status", &o.status, &k.status));
                }
                if o.name != k.name {
                    changes.push(api_key(k, "renamed").field("name", &o.name, &k.name));
                }
                if o.workspace_id != k.workspace_id {
                    changes.push(api_key(k, "changed").field(
                        "workspace_id",
                        opt_text(&o.workspace_id),
                        opt_text(&k.workspace_id),
                    ));
                }
            }
        }
    }
    for (id, o) in &old {
        if !new.contains_key(id) {
            changes.push(api_key(o, "vanished"));
        }
    }
    changes
}

/// Helper for callers: member ids mapped to members.
pub fn members_by_id(state: &OrgState) -> HashMap<&str, &User> {
    state.members.iter().map(|m| (m.id.as_str(), m)).collect()
}
