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

/// What kind of object changed. The serde names are the JSON and CSV spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Member,
    Invite,
    ApiKey,
    Workspace,
    WorkspaceMember,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Member => "member",
            ObjectKind::Invite => "invite",
            ObjectKind::ApiKey => "api_key",
            ObjectKind::Workspace => "workspace",
            ObjectKind::WorkspaceMember => "workspace_member",
        }
    }
}

/// What happened to the object. The serde names are the JSON and CSV spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    Joined,
    Left,
    RoleChanged,
    Created,
    Accepted,
    Expired,
    Deleted,
    StatusChanged,
    Renamed,
    Vanished,
    Archived,
    Added,
    Removed,
    Changed,
}

impl ChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Joined => "joined",
            ChangeKind::Left => "left",
            ChangeKind::RoleChanged => "role_changed",
            ChangeKind::Created => "created",
            ChangeKind::Accepted => "accepted",
            ChangeKind::Expired => "expired",
            ChangeKind::Deleted => "deleted",
            ChangeKind::StatusChanged => "status_changed",
            ChangeKind::Renamed => "renamed",
            ChangeKind::Vanished => "vanished",
            ChangeKind::Archived => "archived",
            ChangeKind::Added => "added",
            ChangeKind::Removed => "removed",
            ChangeKind::Changed => "changed",
        }
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for ChangeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One difference between two snapshots. Serialised with the API's field names plus `kind`,
/// `change` and, for a changed field, `field`, `before` and `after`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub kind: ObjectKind,
    pub change: ChangeKind,
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
    fn new(kind: ObjectKind, change: ChangeKind) -> Change {
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
        ..Change::new(ObjectKind::Member, change)
    };
    for (id, u) in &new {
        match old.get(id) {
            None => changes.push(member(u, ChangeKind::Joined)),
            Some(o) => {
                if o.role != u.role {
                    changes
                        .push(member(u, ChangeKind::RoleChanged).field("role", &o.role, &u.role));
                }
                if o.email != u.email {
                    changes.push(member(u, ChangeKind::Changed).field("email", &o.email, &u.email));
                }
                if o.name != u.name {
                    changes.push(member(u, ChangeKind::Changed).field("name", &o.name, &u.name));
                }
            }
        }
    }
    for (id, o) in &old {
        if !new.contains_key(id) {
            changes.push(member(o, ChangeKind::Left));
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
        ..Change::new(ObjectKind::Invite, change)
    };
    for (id, i) in &new {
        match old.get(id) {
            None => changes.push(invite(i, ChangeKind::Created)),
            Some(o) => {
                if o.status != i.status {
                    let change = match i.status.as_str() {
                        "accepted" => ChangeKind::Accepted,
                        "expired" => ChangeKind::Expired,
                        "deleted" => ChangeKind::Deleted,
                        // The API's status is an open enum: an unknown value is a plain change.
                        _ => ChangeKind::StatusChanged,
                    };
                    changes.push(invite(i, change).field("status", &o.status, &i.status));
                }
                if o.role != i.role {
                    changes
                        .push(invite(i, ChangeKind::RoleChanged).field("role", &o.role, &i.role));
                }
            }
        }
    }
    for (id, o) in &old {
        if !new.contains_key(id) {
            // Deleted invites are not listed any more: vanishing is how deletion shows.
            changes.push(invite(o, ChangeKind::Deleted));
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
        ..Change::new(ObjectKind::Workspace, change)
    };
    for (id, w) in &new {
        match old.get(id) {
            None => changes.push(workspace(w, ChangeKind::Created)),
            Some(o) => {
                if o.archived_at.is_none() && w.archived_at.is_some() {
                    changes.push(workspace(w, ChangeKind::Archived).field(
                        "archived_at",
                        "",
                        opt_text(&w.archived_at.map(|t| super::ts(&t))),
                    ));
                }
                if o.name != w.name {
                    changes.push(workspace(w, ChangeKind::Renamed).field("name", &o.name, &w.name));
                }
            }
        }
    }
    for (id, o) in &old {
        if !new.contains_key(id) {
            changes.push(workspace(o, ChangeKind::Vanished));
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
        ..Change::new(ObjectKind::WorkspaceMember, change)
    };
    for (k, m) in &new {
        match old.get(k) {
            None => changes.push(membership(m, ChangeKind::Added).field(
                "workspace_role",
                "",
                &m.workspace_role,
            )),
            Some(o) if o.workspace_role != m.workspace_role => {
                changes.push(membership(m, ChangeKind::RoleChanged).field(
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
            changes.push(membership(o, ChangeKind::Removed));
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
        ..Change::new(ObjectKind::ApiKey, change)
    };
    for (id, k) in &new {
        match old.get(id) {
            None => changes.push(api_key(k, ChangeKind::Created)),
            Some(o) => {
                if o.status != k.status {
                    changes.push(
                        api_key(k, ChangeKind::StatusChanged).field("status", &o.status, &k.status),
                    );
                }
                if o.name != k.name {
                    changes.push(api_key(k, ChangeKind::Renamed).field("name", &o.name, &k.name));
                }
                if o.workspace_id != k.workspace_id {
                    changes.push(api_key(k, ChangeKind::Changed).field(
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
            changes.push(api_key(o, ChangeKind::Vanished));
        }
    }
    changes
}

/// Helper for callers: member ids mapped to members.
pub fn members_by_id(state: &OrgState) -> HashMap<&str, &User> {
    state.members.iter().map(|m| (m.id.as_str(), m)).collect()
}

#[cfg(test)]
mod kind_tests {
    use super::{ChangeKind, ObjectKind};

    #[test]
    fn kinds_keep_their_json_spelling() {
        let json =
            serde_json::to_string(&(ObjectKind::WorkspaceMember, ChangeKind::RoleChanged)).unwrap();
        assert_eq!(json, r#"["workspace_member","role_changed"]"#);
        for kind in [ObjectKind::Member, ObjectKind::ApiKey, ObjectKind::Invite] {
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        for change in [
            ChangeKind::StatusChanged,
            ChangeKind::Left,
            ChangeKind::Vanished,
        ] {
            assert_eq!(serde_json::to_value(change).unwrap(), change.as_str());
        }
    }
}
