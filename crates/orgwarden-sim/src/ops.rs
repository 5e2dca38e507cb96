//! The Admin API operations of §4.1–4.6 and the rules of §6, applied to a [`SimState`].
//!
//! Each operation takes already-split HTTP input (path ids, query parameters, raw body bytes) and
//! returns the JSON body of a 200 answer or an [`ApiError`]. Keeping HTTP out of here lets the
//! rules be tested without a server and keeps the state lock held only for the work itself.
//!
//! Decisions where the contract is silent (all documented in the report):
//! - Bodies are strict: unknown fields are a 400 on every endpoint, and an empty body counts as
//!   `{}` (so an endpoint whose fields are all optional accepts it).
//! - An org admin (`admin`, `owner`, `primary_owner`) can neither be removed nor have their role
//!   changed through the API; `admin` and the owner roles cannot be assigned.
//! - Inviting an address that is already a member, or that has a pending invite, is a 400.
//! - A deleted invite is kept in the state but answers 404 and is never listed; filtering on
//!   `statuses[]=deleted` (or any other value outside `accepted|expired|pending`) is a 400.
//! - Workspace member lists hold only explicit memberships. Org admins (implicit
//!   `workspace_admin` everywhere) cannot be added, changed or removed; billing members
//!   (implicit `workspace_billing`) can only be given, or upgraded to, `workspace_admin`, and
//!   cannot be removed. The Default Workspace has no member list: listing it gives an empty page
//!   and adding to it is a 400. It cannot be renamed or archived, but its other fields update.
//! - Every member mutation on an archived workspace is a 400, as are renames and other updates.
//! - An `expired` key (past `expires_at`) can still be archived, but not set active or inactive.
//! - Removing a user also removes their explicit workspace memberships; keys stay untouched.
//! - A cursor may name any object the list's collection ever held, even one that the filters of
//!   the request exclude or that was deleted since; it only fixes the position.
//! - `roles[]`, `statuses[]` and the key `status` filter are validated against their enums (400
//!   on an unknown value); a `workspace_id` or `created_by_user_id` that names nothing simply
//!   matches nothing.

use std::collections::BTreeMap;

use chrono::Duration;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

use super::error::ApiError;
use super::model::{
    AllowedGeos, Cursor, DataResidency, Invite, Workspace, WorkspaceMember, INVITE_LIFETIME_DAYS,
};
use super::query::{unknown_cursor, Params};
use super::state::{is_admin_role, SimState};
use super::views;

/// Every organization role the API may show (§3.7), used to validate `roles[]` filters.
pub(crate) const ORG_ROLES: &[&str] = &[
    "admin",
    "billing",
    "claude_code_user",
    "developer",
    "managed",
    "membership_admin",
    "owner",
    "primary_owner",
    "user",
];
/// Roles assignable on invite or user update (`NoAdminRoleSchema`).
pub(crate) const ASSIGNABLE_ROLES: &[&str] = &[
    "user",
    "developer",
    "billing",
    "claude_code_user",
    "managed",
];
/// Every workspace role (§3.7).
pub(crate) const WORKSPACE_ROLES: &[&str] = &[
    "workspace_admin",
    "workspace_billing",
    "workspace_developer",
    "workspace_restricted_developer",
    "workspace_user",
];
/// Invite statuses a list may filter on.
const INVITE_FILTER_STATUSES: &[&str] = &["accepted", "expired", "pending"];
/// Key statuses a list may filter on.
const KEY_FILTER_STATUSES: &[&str] = &["active", "inactive", "archived", "expired"];
/// Key statuses a client may write.
const KEY_WRITABLE_STATUSES: &[&str] = &["active", "inactive", "archived"];
/// Inference geos known to the TS SDK.
const INFERENCE_GEOS: &[&str] = &["global", "us"];
/// Workspace geos known to the TS SDK.
const WORKSPACE_GEOS: &[&str] = &["us"];
/// Non-archived workspaces allowed per organization "by default" (§6.7).
pub(crate) const MAX_ACTIVE_WORKSPACES: usize = 100;
/// Workspace name length limits (SPEC 2026-08: 1..=40).
const WORKSPACE_NAME_MAX: usize = 40;
/// API key name length limits (1..=500).
const KEY_NAME_MAX: usize = 500;
/// `rbac_group_ids` size limit on invite creation.
const RBAC_GROUPS_MAX: usize = 100;

/// The serialized body of a 200 answer.
pub(crate) type Body = Vec<u8>;

fn to_body<T: Serialize>(v: &T) -> Result<Body, ApiError> {
    serde_json::to_vec(v).map_err(|e| ApiError::internal(format!("serialization failed: {e}")))
}

/// Parses a JSON request body; an empty body is read as `{}`.
fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid(format!("invalid request body: {e}")))
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

fn one_of(field: &str, value: &str, allowed: &[&str]) -> Result<(), ApiError> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "{field}: {value:?} is not one of {}",
            allowed.join(", ")
        )))
    }
}

/// Case-insensitive equality of email addresses ("normalized, case-insensitive" per the docs).
fn same_email(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase()
}

/// A deliberately simple email check: one `@`, a non-empty local part, a dotted domain, no spaces.
fn valid_email(email: &str) -> bool {
    let mut parts = email.split('@');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(local), Some(domain), None) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(char::is_whitespace)
                && email.len() <= 320
        }
        _ => false,
    }
}

fn valid_color(c: &str) -> bool {
    c.len() == 7 && c.starts_with('#') && c[1..].chars().all(|ch| ch.is_ascii_hexdigit())
}

fn check_length(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    let n = value.chars().count();
    if (1..=max).contains(&n) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "{field}: must be between 1 and {max} characters"
        )))
    }
}

fn validate_residency(r: &DataResidency) -> Result<(), ApiError> {
    one_of(
        "data_residency.workspace_geo",
        &r.workspace_geo,
        WORKSPACE_GEOS,
    )?;
    one_of(
        "data_residency.default_inference_geo",
        &r.default_inference_geo,
        INFERENCE_GEOS,
    )?;
    match &r.allowed_inference_geos {
        AllowedGeos::Keyword(word) if word == "unrestricted" => Ok(()),
        AllowedGeos::Keyword(word) => Err(ApiError::invalid(format!(
            "data_residency.allowed_inference_geos: {word:?} is neither a list nor \"unrestricted\""
        ))),
        AllowedGeos::List(geos) => {
            if geos.is_empty() {
                return Err(ApiError::invalid(
                    "data_residency.allowed_inference_geos: must not be empty",
                ));
            }
            for g in geos {
                one_of("data_residency.allowed_inference_geos", g, INFERENCE_GEOS)?;
            }
            if !geos.contains(&r.default_inference_geo) {
                return Err(ApiError::invalid(
                    "data_residency.default_inference_geo: must be one of allowed_inference_geos",
                ));
            }
            Ok(())
        }
    }
}

fn validate_tag_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::invalid("tags: keys must not be empty"));
    }
    if key.to_ascii_lowercase().starts_with("anthropic") {
        return Err(ApiError::invalid(format!(
            "tags: key {key:?} may not begin with \"anthropic\""
        )));
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateUserBody {
    role: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateInviteBody {
    email: String,
    role: String,
    #[serde(default)]
    rbac_group_ids: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateResidencyBody {
    #[serde(default)]
    workspace_geo: Option<String>,
    #[serde(default)]
    allowed_inference_geos: Option<AllowedGeos>,
    #[serde(default)]
    default_inference_geo: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateWorkspaceBody {
    name: String,
    #[serde(default)]
    display_color: Option<String>,
    #[serde(default)]
    data_residency: Option<CreateResidencyBody>,
    #[serde(default)]
    external_key_id: Option<String>,
    #[serde(default)]
    tags: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateWorkspaceBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    display_color: Option<String>,
    #[serde(default)]
    data_residency: Option<CreateResidencyBody>,
    #[serde(default, deserialize_with = "double_option")]
    external_key_id: Option<Option<String>>,
    #[serde(default)]
    tags: Option<BTreeMap<String, Option<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMemberBody {
    user_id: String,
    workspace_role: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateMemberBody {
    workspace_role: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateKeyBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

fn user_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("user {id} not found"))
}
fn invite_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("invite {id} not found"))
}
fn workspace_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("workspace {id} not found"))
}
fn member_not_found(workspace_id: &str, user_id: &str) -> ApiError {
    ApiError::not_found(format!(
        "user {user_id} is not a member of workspace {workspace_id}"
    ))
}
fn key_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("api key {id} not found"))
}

impl SimState {
    /// `GET /v1/organizations/me`.
    pub(crate) fn op_get_organization(&self) -> Result<Body, ApiError> {
        to_body(&views::organization(&self.organization))
    }

    // ---- Users (§4.2) ----

    /// `GET /v1/organizations/users`. `empty_members` is the injected "empty member list" fault.
    pub(crate) fn op_list_users(&self, q: &Params, empty_members: bool) -> Result<Body, ApiError> {
        let page = q.page()?;
        let email = q.one("email");
        let roles = q.many("roles");
        for r in &roles {
            one_of("roles", r, ORG_ROLES)?;
        }
        if empty_members {
            return to_body(&views::empty_list::<views::UserView<'_>>());
        }
        let rows = self
            .users
            .page(&page.cursor, page.limit, |u| {
                email.is_none_or(|e| same_email(&u.email, e))
                    && (roles.is_empty() || roles.contains(&u.role.as_str()))
            })
            .ok_or_else(|| unknown_cursor(&page.cursor))?;
        to_body(&views::list(rows, |u| &u.id, views::user))
    }

    /// `GET /v1/organizations/users/{user_id}`.
    pub(crate) fn op_get_user(&self, id: &str) -> Result<Body, ApiError> {
        let u = self.users.get(id).ok_or_else(|| user_not_found(id))?;
        to_body(&views::user(u))
    }

    /// `POST /v1/organizations/users/{user_id}`.
    pub(crate) fn op_update_user(&mut self, id: &str, body: &[u8]) -> Result<Body, ApiError> {
        let req: UpdateUserBody = parse_body(body)?;
        let u = self.users.get_mut(id).ok_or_else(|| user_not_found(id))?;
        if is_admin_role(&req.role) {
            return Err(ApiError::invalid(format!(
                "role: {:?} cannot be assigned through the API",
                req.role
            )));
        }
        one_of("role", &req.role, ASSIGNABLE_ROLES)?;
        if is_admin_role(&u.role) {
            return Err(ApiError::invalid(
                "the role of an organization admin cannot be changed through the API",
            ));
        }
        u.role = req.role;
        to_body(&views::user(u))
    }

    /// `DELETE /v1/organizations/users/{user_id}`.
    pub(crate) fn op_delete_user(&mut self, id: &str) -> Result<Body, ApiError> {
        let u = self.users.get(id).ok_or_else(|| user_not_found(id))?;
        if is_admin_role(&u.role) {
            return Err(ApiError::invalid(
                "organization members with the admin role cannot be removed through the API",
            ));
        }
        self.remove_user(id);
        to_body(&views::DeletedView {
            id,
            kind: "user_deleted",
        })
    }

    // ---- Invites (§4.3) ----

    /// `POST /v1/organizations/invites`.
    pub(crate) fn op_create_invite(&mut self, body: &[u8]) -> Result<Body, ApiError> {
        let req: CreateInviteBody = parse_body(body)?;
        if !valid_email(&req.email) {
            return Err(ApiError::invalid(format!(
                "email: {:?} is not a valid email address",
                req.email
            )));
        }
        if is_admin_role(&req.role) {
            return Err(ApiError::invalid(format!(
                "role: {:?} cannot be assigned through the API",
                req.role
            )));
        }
        one_of("role", &req.role, ASSIGNABLE_ROLES)?;
        let groups = req.rbac_group_ids.unwrap_or_default();
        if groups.len() > RBAC_GROUPS_MAX {
            return Err(ApiError::invalid(format!(
                "rbac_group_ids: at most {RBAC_GROUPS_MAX} items"
            )));
        }
        if self.users.iter().any(|u| same_email(&u.email, &req.email)) {
            return Err(ApiError::invalid(format!(
                "{} is already a member of the organization",
                req.email
            )));
        }
        let now = self.now();
        if self
            .invites
            .iter()
            .any(|i| i.status_at(now) == "pending" && same_email(&i.email, &req.email))
        {
            return Err(ApiError::invalid(format!(
                "{} already has a pending invite",
                req.email
            )));
        }
        let id = self.fresh_id("invite_");
        self.invites.insert(Invite {
            id: id.clone(),
            email: req.email,
            role: req.role,
            invited_at: now,
            expires_at: now + Duration::days(INVITE_LIFETIME_DAYS),
            status: "pending".to_string(),
            accepted_at: None,
            rbac_group_ids: groups,
        });
        self.op_get_invite(&id)
    }

    /// `GET /v1/organizations/invites/{invite_id}`; deleted invites are not found.
    pub(crate) fn op_get_invite(&self, id: &str) -> Result<Body, ApiError> {
        let i = self
            .invites
            .get(id)
            .filter(|i| i.status != "deleted")
            .ok_or_else(|| invite_not_found(id))?;
        to_body(&views::invite(i, self.now()))
    }

    /// `GET /v1/organizations/invites`.
    pub(crate) fn op_list_invites(&self, q: &Params) -> Result<Body, ApiError> {
        let page = q.page()?;
        let email = q.one("email");
        let roles = q.many("roles");
        for r in &roles {
            one_of("roles", r, ORG_ROLES)?;
        }
        let mut statuses = q.many("statuses");
        for s in &statuses {
            one_of("statuses", s, INVITE_FILTER_STATUSES)?;
        }
        if statuses.is_empty() {
            statuses = INVITE_FILTER_STATUSES.to_vec();
        }
        let now = self.now();
        let rows = self
            .invites
            .page(&page.cursor, page.limit, |i| {
                statuses.contains(&i.status_at(now))
                    && email.is_none_or(|e| same_email(&i.email, e))
                    && (roles.is_empty() || roles.contains(&i.role.as_str()))
            })
            .ok_or_else(|| unknown_cursor(&page.cursor))?;
        to_body(&views::list(rows, |i| &i.id, |i| views::invite(i, now)))
    }

    /// `DELETE /v1/organizations/invites/{invite_id}`: only a pending invite can be deleted.
    pub(crate) fn op_delete_invite(&mut self, id: &str) -> Result<Body, ApiError> {
        let now = self.now();
        let invite = self
            .invites
            .get_mut(id)
            .filter(|i| i.status != "deleted")
            .ok_or_else(|| invite_not_found(id))?;
        let status = invite.status_at(now).to_string();
        if status != "pending" {
            return Err(ApiError::invalid(format!(
                "only pending invites can be deleted; this invite is {status}"
            )));
        }
        invite.status = "deleted".to_string();
        to_body(&views::DeletedView {
            id,
            kind: "invite_deleted",
        })
    }

    // ---- Workspaces (§4.4) ----

    /// `GET /v1/organizations/workspaces`.
    pub(crate) fn op_list_workspaces(&self, q: &Params) -> Result<Body, ApiError> {
        let page = q.page()?;
        let include_archived = q.flag("include_archived", false)?;
        let include_default = q.flag("include_default", false)?;
        let default_id = self.default_workspace_id.as_str();
        let rows = self
            .workspaces
            .page(&page.cursor, page.limit, |w| {
                (include_archived || w.archived_at.is_none())
                    && (include_default || w.id != default_id)
            })
            .ok_or_else(|| unknown_cursor(&page.cursor))?;
        to_body(&views::list(rows, |w| &w.id, views::workspace))
    }

    /// `POST /v1/organizations/workspaces`.
    pub(crate) fn op_create_workspace(&mut self, body: &[u8]) -> Result<Body, ApiError> {
        let req: CreateWorkspaceBody = parse_body(body)?;
        check_length("name", &req.name, WORKSPACE_NAME_MAX)?;
        if let Some(c) = &req.display_color {
            if !valid_color(c) {
                return Err(ApiError::invalid(
                    "display_color: must match ^#[0-9A-Fa-f]{6}$",
                ));
            }
        }
        let defaults = DataResidency::default();
        let residency = match req.data_residency {
            None => defaults,
            Some(r) => DataResidency {
                workspace_geo: r.workspace_geo.unwrap_or(defaults.workspace_geo),
                allowed_inference_geos: r
                    .allowed_inference_geos
                    .unwrap_or(defaults.allowed_inference_geos),
                default_inference_geo: r
                    .default_inference_geo
                    .unwrap_or(defaults.default_inference_geo),
            },
        };
        validate_residency(&residency)?;
        let tags = req.tags.unwrap_or_default();
        for key in tags.keys() {
            validate_tag_key(key)?;
        }
        let active = self
            .workspaces
            .iter()
            .filter(|w| w.archived_at.is_none() && w.id != self.default_workspace_id)
            .count();
        if active >= MAX_ACTIVE_WORKSPACES {
            return Err(ApiError::invalid(format!(
                "an organization can have at most {MAX_ACTIVE_WORKSPACES} active workspaces"
            )));
        }
        let id = self.fresh_id("wrkspc_");
        let display_color = match req.display_color {
            Some(c) => c,
            None => self.rng.pick(super::seed::PALETTE).to_string(),
        };
        let compartment_id = self.rng.uuid();
        let workspace = Workspace {
            id: id.clone(),
            name: req.name,
            display_color,
            created_at: self.now(),
            archived_at: None,
            data_residency: residency,
            compartment_id,
            external_key_id: req.external_key_id,
            tags,
        };
        let out = to_body(&views::workspace(&workspace));
        self.workspaces.insert(workspace);
        out
    }

    /// `GET /v1/organizations/workspaces/{workspace_id}` (the Default Workspace included).
    pub(crate) fn op_get_workspace(&self, id: &str) -> Result<Body, ApiError> {
        let w = self
            .workspaces
            .get(id)
            .ok_or_else(|| workspace_not_found(id))?;
        to_body(&views::workspace(w))
    }

    /// `POST /v1/organizations/workspaces/{workspace_id}`: a partial update.
    pub(crate) fn op_update_workspace(&mut self, id: &str, body: &[u8]) -> Result<Body, ApiError> {
        let req: UpdateWorkspaceBody = parse_body(body)?;
        let is_default = id == self.default_workspace_id;
        let w = self
            .workspaces
            .get(id)
            .ok_or_else(|| workspace_not_found(id))?;
        if w.archived_at.is_some() {
            return Err(ApiError::invalid(
                "an archived workspace cannot be modified",
            ));
        }
        // Everything is validated against a copy first, so a rejected update changes nothing.
        let mut next = w.clone();
        if let Some(name) = req.name {
            check_length("name", &name, WORKSPACE_NAME_MAX)?;
            if is_default && name != next.name {
                return Err(ApiError::invalid("the Default Workspace cannot be renamed"));
            }
            next.name = name;
        }
        if let Some(c) = req.display_color {
            if !valid_color(&c) {
                return Err(ApiError::invalid(
                    "display_color: must match ^#[0-9A-Fa-f]{6}$",
                ));
            }
            next.display_color = c;
        }
        if let Some(r) = req.data_residency {
            if let Some(geo) = r.workspace_geo {
                if geo != next.data_residency.workspace_geo {
                    return Err(ApiError::invalid(
                        "data_residency.workspace_geo cannot be changed",
                    ));
                }
            }
            if let Some(a) = r.allowed_inference_geos {
                next.data_residency.allowed_inference_geos = a;
            }
            if let Some(d) = r.default_inference_geo {
                next.data_residency.default_inference_geo = d;
            }
            validate_residency(&next.data_residency)?;
        }
        if let Some(ext) = req.external_key_id {
            match (&next.external_key_id, ext) {
                (None, new) => next.external_key_id = new,
                (Some(old), Some(new)) if *old == new => {}
                (Some(_), _) => {
                    return Err(ApiError::invalid("external_key_id can be set only once"))
                }
            }
        }
        if let Some(tags) = req.tags {
            for (key, value) in tags {
                validate_tag_key(&key)?;
                match value {
                    Some(v) => {
                        next.tags.insert(key, v);
                    }
                    None => {
                        next.tags.remove(&key);
                    }
                }
            }
        }
        let out = to_body(&views::workspace(&next));
        if let Some(slot) = self.workspaces.get_mut(id) {
            *slot = next;
        }
        out
    }

    /// `POST /v1/organizations/workspaces/{workspace_id}/archive`: irreversible; archives the
    /// workspace's keys.
    pub(crate) fn op_archive_workspace(&mut self, id: &str) -> Result<Body, ApiError> {
        let w = self
            .workspaces
            .get(id)
            .ok_or_else(|| workspace_not_found(id))?;
        if id == self.default_workspace_id {
            return Err(ApiError::invalid(
                "the Default Workspace cannot be archived",
            ));
        }
        if w.archived_at.is_some() {
            return Err(ApiError::invalid("the workspace is already archived"));
        }
        self.archive_workspace(id);
        self.op_get_workspace(id)
    }

    // ---- Workspace members (§4.5) ----

    /// The workspace, which must exist.
    fn workspace_for_members(&self, id: &str) -> Result<&Workspace, ApiError> {
        self.workspaces
            .get(id)
            .ok_or_else(|| workspace_not_found(id))
    }

    /// The workspace, which must exist, not be archived and not be the Default Workspace.
    fn writable_workspace(&self, id: &str) -> Result<&Workspace, ApiError> {
        let w = self.workspace_for_members(id)?;
        if w.archived_at.is_some() {
            return Err(ApiError::invalid(
                "the members of an archived workspace cannot be changed",
            ));
        }
        if id == self.default_workspace_id {
            return Err(ApiError::invalid(
                "the Default Workspace has no member list; access follows the organization role",
            ));
        }
        Ok(w)
    }

    /// The org role of a member, for the workspace-role rules (an unknown user counts as `user`).
    fn org_role(&self, user_id: &str) -> &str {
        self.users.get(user_id).map_or("user", |u| u.role.as_str())
    }

    /// §6.9: which workspace role an org role may be given explicitly.
    fn check_workspace_role(&self, user_id: &str, role: &str) -> Result<(), ApiError> {
        one_of("workspace_role", role, WORKSPACE_ROLES)?;
        if role == "workspace_billing" {
            return Err(ApiError::invalid(
                "workspace_role: workspace_billing can't be manually assigned",
            ));
        }
        let org_role = self.org_role(user_id);
        if is_admin_role(org_role) {
            return Err(ApiError::invalid(
                "organization admins are workspace admins of every workspace; their workspace role cannot be changed",
            ));
        }
        if org_role == "billing" && role != "workspace_admin" {
            return Err(ApiError::invalid(
                "billing members have workspace_billing in every workspace and can only be upgraded to workspace_admin",
            ));
        }
        Ok(())
    }

    /// `GET /v1/organizations/workspaces/{workspace_id}/members`.
    pub(crate) fn op_list_members(&self, workspace_id: &str, q: &Params) -> Result<Body, ApiError> {
        let page = q.page()?;
        self.workspace_for_members(workspace_id)?;
        let Some(table) = self.workspace_members.table(workspace_id) else {
            // A workspace that never had a member: only the first page exists, and no cursor
            // can name one of its (zero) members.
            return match page.cursor {
                Cursor::Start => to_body(&views::empty_list::<views::MemberView<'_>>()),
                _ => Err(unknown_cursor(&page.cursor)),
            };
        };
        let rows = table
            .page(&page.cursor, page.limit, |_| true)
            .ok_or_else(|| unknown_cursor(&page.cursor))?;
        to_body(&views::list(rows, |m| &m.user_id, views::member))
    }

    /// `POST /v1/organizations/workspaces/{workspace_id}/members`.
    pub(crate) fn op_add_member(
        &mut self,
        workspace_id: &str,
        body: &[u8],
    ) -> Result<Body, ApiError> {
        let req: AddMemberBody = parse_body(body)?;
        self.writable_workspace(workspace_id)?;
        if self.users.get(&req.user_id).is_none() {
            return Err(user_not_found(&req.user_id));
        }
        self.check_workspace_role(&req.user_id, &req.workspace_role)?;
        if self
            .workspace_members
            .get(workspace_id, &req.user_id)
            .is_some()
        {
            return Err(ApiError::invalid(format!(
                "user {} is already a member of workspace {workspace_id}",
                req.user_id
            )));
        }
        let member = WorkspaceMember {
            workspace_id: workspace_id.to_string(),
            user_id: req.user_id,
            workspace_role: req.workspace_role,
        };
        let out = to_body(&views::member(&member));
        self.workspace_members.insert(member);
        out
    }

    /// `GET /v1/organizations/workspaces/{workspace_id}/members/{user_id}`.
    pub(crate) fn op_get_member(
        &self,
        workspace_id: &str,
        user_id: &str,
    ) -> Result<Body, ApiError> {
        self.workspace_for_members(workspace_id)?;
        let m = self
            .workspace_members
            .get(workspace_id, user_id)
            .ok_or_else(|| member_not_found(workspace_id, user_id))?;
        to_body(&views::member(m))
    }

    /// `POST /v1/organizations/workspaces/{workspace_id}/members/{user_id}`.
    pub(crate) fn op_update_member(
        &mut self,
        workspace_id: &str,
        user_id: &str,
        body: &[u8],
    ) -> Result<Body, ApiError> {
        let req: UpdateMemberBody = parse_body(body)?;
        self.workspace_for_members(workspace_id)?;
        if self.workspace_members.get(workspace_id, user_id).is_none() {
            return Err(member_not_found(workspace_id, user_id));
        }
        self.writable_workspace(workspace_id)?;
        self.check_workspace_role(user_id, &req.workspace_role)?;
        let m = self
            .workspace_members
            .get_mut(workspace_id, user_id)
            .ok_or_else(|| member_not_found(workspace_id, user_id))?;
        m.workspace_role = req.workspace_role;
        to_body(&views::member(m))
    }

    /// `DELETE /v1/organizations/workspaces/{workspace_id}/members/{user_id}`. The member's API
    /// keys are untouched.
    pub(crate) fn op_remove_member(
        &mut self,
        workspace_id: &str,
        user_id: &str,
    ) -> Result<Body, ApiError> {
        self.workspace_for_members(workspace_id)?;
        if self.workspace_members.get(workspace_id, user_id).is_none() {
            return Err(member_not_found(workspace_id, user_id));
        }
        self.writable_workspace(workspace_id)?;
        let org_role = self.org_role(user_id);
        if is_admin_role(org_role) || org_role == "billing" {
            return Err(ApiError::invalid(format!(
                "members with the organization role {org_role} cannot be removed from a workspace"
            )));
        }
        self.workspace_members.remove(workspace_id, user_id);
        to_body(&views::MemberDeletedView {
            kind: "workspace_member_deleted",
            user_id,
            workspace_id,
        })
    }

    // ---- API keys (§4.6) ----

    /// `GET /v1/organizations/api_keys`.
    pub(crate) fn op_list_keys(&self, q: &Params) -> Result<Body, ApiError> {
        let page = q.page()?;
        let status = q.one("status");
        if let Some(s) = status {
            one_of("status", s, KEY_FILTER_STATUSES)?;
        }
        let workspace_id = q.one("workspace_id");
        let creator = q.one("created_by_user_id");
        let now = self.now();
        let rows = self
            .api_keys
            .page(&page.cursor, page.limit, |k| {
                status.is_none_or(|s| k.status_at(now) == s)
                    // Organization-scoped keys (no workspace) never match a workspace filter.
                    && workspace_id.is_none_or(|w| k.workspace_id.as_deref() == Some(w))
                    && creator.is_none_or(|c| {
                        k.created_by
                            .as_ref()
                            .is_some_and(|by| by.kind == "user" && by.id == c)
                    })
            })
            .ok_or_else(|| unknown_cursor(&page.cursor))?;
        let default_id = self.default_workspace_id.as_str();
        to_body(&views::list(
            rows,
            |k| &k.id,
            |k| views::api_key(k, default_id, now),
        ))
    }

    /// `GET /v1/organizations/api_keys/{api_key_id}`.
    pub(crate) fn op_get_key(&self, id: &str) -> Result<Body, ApiError> {
        let k = self.api_keys.get(id).ok_or_else(|| key_not_found(id))?;
        to_body(&views::api_key(k, &self.default_workspace_id, self.now()))
    }

    /// `POST /v1/organizations/api_keys/{api_key_id}`: rename and/or change status.
    pub(crate) fn op_update_key(&mut self, id: &str, body: &[u8]) -> Result<Body, ApiError> {
        let req: UpdateKeyBody = parse_body(body)?;
        let now = self.now();
        let k = self.api_keys.get(id).ok_or_else(|| key_not_found(id))?;
        if let Some(name) = &req.name {
            check_length("name", name, KEY_NAME_MAX)?;
        }
        if let Some(status) = &req.status {
            one_of("status", status, KEY_WRITABLE_STATUSES)?;
            let current = k.status_at(now);
            if current == "archived" && status != "archived" {
                return Err(ApiError::invalid(
                    "an archived API key cannot be reactivated",
                ));
            }
            if current == "expired" && status != "archived" {
                return Err(ApiError::invalid("an expired API key can only be archived"));
            }
        }
        let k = self.api_keys.get_mut(id).ok_or_else(|| key_not_found(id))?;
        if let Some(name) = req.name {
            k.name = name;
        }
        if let Some(status) = req.status {
            k.status = status;
        }
        self.op_get_key(id)
    }
}
