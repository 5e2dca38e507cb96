//! Wire views: the exact JSON objects of §3 and §8, built from stored objects at a given time.
//!
//! Views borrow from the state and are serialized straight to bytes, so a page of 1,000 keys is
//! written without building an intermediate `serde_json::Value`. Field names, the `type` tags,
//! the 2026 fields, `null`s and the timestamp format all follow the contract; this is the one
//! place that decides what the simulator shows.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::model::{
    ApiKey, CreatedBy, DataResidency, Invite, Micros, Organization, Page, Principal, User,
    Workspace, WorkspaceMember,
};

/// `GET /v1/organizations/me`.
#[derive(Serialize)]
pub(crate) struct OrganizationView<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub name: &'a str,
}

pub(crate) fn organization(org: &Organization) -> OrganizationView<'_> {
    OrganizationView {
        id: &org.id,
        kind: "organization",
        name: &org.name,
    }
}

/// A user (§3.2).
#[derive(Serialize)]
pub(crate) struct UserView<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: &'a str,
    pub email: &'a str,
    pub name: &'a str,
    pub role: &'a str,
    pub added_at: Micros,
}

pub(crate) fn user(u: &User) -> UserView<'_> {
    UserView {
        kind: "user",
        id: &u.id,
        email: &u.email,
        name: &u.name,
        role: &u.role,
        added_at: Micros(u.added_at),
    }
}

/// An invite (§3.3), with its status as of `now`.
#[derive(Serialize)]
pub(crate) struct InviteView<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: &'a str,
    pub email: &'a str,
    pub role: &'a str,
    pub invited_at: Micros,
    pub expires_at: Micros,
    pub status: &'a str,
    pub accepted_at: Option<Micros>,
    pub rbac_group_ids: &'a [String],
}

pub(crate) fn invite(i: &Invite, now: DateTime<Utc>) -> InviteView<'_> {
    InviteView {
        kind: "invite",
        id: &i.id,
        email: &i.email,
        role: &i.role,
        invited_at: Micros(i.invited_at),
        expires_at: Micros(i.expires_at),
        status: i.status_at(now),
        accepted_at: i.accepted_at.map(Micros),
        rbac_group_ids: &i.rbac_group_ids,
    }
}

/// A workspace (§3.4).
#[derive(Serialize)]
pub(crate) struct WorkspaceView<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: &'a str,
    pub name: &'a str,
    pub display_color: &'a str,
    pub created_at: Micros,
    pub archived_at: Option<Micros>,
    pub data_residency: &'a DataResidency,
    pub compartment_id: &'a str,
    pub external_key_id: Option<&'a str>,
    pub tags: &'a BTreeMap<String, String>,
}

pub(crate) fn workspace(w: &Workspace) -> WorkspaceView<'_> {
    WorkspaceView {
        kind: "workspace",
        id: &w.id,
        name: &w.name,
        display_color: &w.display_color,
        created_at: Micros(w.created_at),
        archived_at: w.archived_at.map(Micros),
        data_residency: &w.data_residency,
        compartment_id: &w.compartment_id,
        external_key_id: w.external_key_id.as_deref(),
        tags: &w.tags,
    }
}

/// A workspace member (§3.5).
#[derive(Serialize)]
pub(crate) struct MemberView<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub user_id: &'a str,
    pub workspace_id: &'a str,
    pub workspace_role: &'a str,
}

pub(crate) fn member(m: &WorkspaceMember) -> MemberView<'_> {
    MemberView {
        kind: "workspace_member",
        user_id: &m.user_id,
        workspace_id: &m.workspace_id,
        workspace_role: &m.workspace_role,
    }
}

/// `scope` of an API key (2026).
#[derive(Serialize)]
#[serde(tag = "type")]
pub(crate) enum ScopeView<'a> {
    #[serde(rename = "workspace")]
    Workspace { workspace_id: &'a str },
    #[serde(rename = "organization")]
    Organization,
}

/// An API key (§3.6), as of `now`.
#[derive(Serialize)]
pub(crate) struct ApiKeyView<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: &'a str,
    pub name: &'a str,
    pub workspace_id: Option<&'a str>,
    pub created_at: Micros,
    pub created_by: Option<&'a CreatedBy>,
    pub partial_key_hint: Option<&'a str>,
    pub status: &'a str,
    pub expires_at: Option<Micros>,
    pub principal: Option<&'a Principal>,
    pub scope: ScopeView<'a>,
}

/// The Default Workspace's keys show `workspace_id: null` while `scope.workspace_id` carries the
/// real id; organization-scoped keys show `null` and `scope: {"type":"organization"}`.
pub(crate) fn api_key<'a>(
    k: &'a ApiKey,
    default_workspace_id: &str,
    now: DateTime<Utc>,
) -> ApiKeyView<'a> {
    let (workspace_id, scope) = match k.workspace_id.as_deref() {
        None => (None, ScopeView::Organization),
        Some(id) if id == default_workspace_id => (None, ScopeView::Workspace { workspace_id: id }),
        Some(id) => (Some(id), ScopeView::Workspace { workspace_id: id }),
    };
    ApiKeyView {
        kind: "api_key",
        id: &k.id,
        name: &k.name,
        workspace_id,
        created_at: Micros(k.created_at),
        created_by: k.created_by.as_ref(),
        partial_key_hint: k.partial_key_hint.as_deref(),
        status: k.status_at(now),
        expires_at: k.expires_at.map(Micros),
        principal: k.principal.as_ref(),
        scope,
    }
}

/// The list envelope of §2.2. `first_id`/`last_id` are the cursors of the first and last item
/// (for workspace members, which have no id of their own, the user id).
#[derive(Serialize)]
pub(crate) struct ListView<'a, V> {
    pub data: Vec<V>,
    pub has_more: bool,
    pub first_id: Option<&'a str>,
    pub last_id: Option<&'a str>,
}

/// Turns a page of stored rows into the list envelope.
pub(crate) fn list<'a, T, V>(
    page: Page<'a, T>,
    cursor_of: impl Fn(&'a T) -> &'a str,
    view: impl Fn(&'a T) -> V,
) -> ListView<'a, V> {
    ListView {
        first_id: page.rows.first().map(|r| cursor_of(r)),
        last_id: page.rows.last().map(|r| cursor_of(r)),
        has_more: page.has_more,
        data: page.rows.into_iter().map(view).collect(),
    }
}

/// The empty list envelope (`first_id`/`last_id` null).
pub(crate) fn empty_list<'a, V>() -> ListView<'a, V> {
    ListView {
        data: Vec::new(),
        has_more: false,
        first_id: None,
        last_id: None,
    }
}

/// `DELETE /users/{id}` and `DELETE /invites/{id}` answers.
#[derive(Serialize)]
pub(crate) struct DeletedView<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

/// `DELETE /workspaces/{id}/members/{user_id}` answer.
#[derive(Serialize)]
pub(crate) struct MemberDeletedView<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub user_id: &'a str,
    pub workspace_id: &'a str,
}
