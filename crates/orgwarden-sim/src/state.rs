//! The simulated organization as one value: [`SimState`].
//!
//! It owns every object (members, former members, invites, workspaces with the Default Workspace,
//! explicit workspace memberships, API keys, service accounts), the generator that names objects
//! created later, and the clock the API reads. It serializes to one JSON document (`to_json`,
//! `from_json`) so a demo can be saved, edited by hand and loaded again.
//!
//! Besides the API operations (in `ops`), it offers helpers for tests and the demo that bypass the
//! API rules, as a person acting in the Console would, and accessors that return exactly the JSON
//! the API serves at the state's current time, so a test can compare a client's result with the
//! truth.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::{
    micros, ApiKey, CreatedBy, DataResidency, FormerMember, Invite, Memberships, Organization,
    Principal, ServiceAccount, Table, User, Workspace, WorkspaceMember, INVITE_LIFETIME_DAYS,
};
use super::prng::SplitMix64;
use super::views;
use super::SeedSizes;

/// The whole organization. See the module documentation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimState {
    pub(crate) organization: Organization,
    /// The real `wrkspc_` id of the Default Workspace, which is stored in `workspaces` too.
    pub(crate) default_workspace_id: String,
    #[serde(default)]
    pub(crate) users: Table<User>,
    #[serde(default)]
    pub(crate) former_members: Vec<FormerMember>,
    #[serde(default)]
    pub(crate) invites: Table<Invite>,
    pub(crate) workspaces: Table<Workspace>,
    #[serde(default)]
    pub(crate) workspace_members: Memberships,
    #[serde(default)]
    pub(crate) api_keys: Table<ApiKey>,
    #[serde(default)]
    pub(crate) service_accounts: Vec<ServiceAccount>,
    /// Names the objects created after seeding, so they too are the same on every run.
    #[serde(default)]
    pub(crate) rng: SplitMix64,
    /// `None` reads the real clock; `Some` is a frozen time. Not part of the saved state: whoever
    /// loads a state decides which clock it runs on.
    #[serde(skip)]
    pub(crate) clock: Option<DateTime<Utc>>,
}

/// Serializes a view to a `Value`. The views hold only strings, numbers, booleans and string-keyed
/// maps, for which `serde_json` cannot fail; `Null` is an unreachable fallback, not a real case.
fn to_value<T: Serialize>(v: T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Roles that make a member an organization admin for the rules of §6.2 and §6.9.
pub(crate) fn is_admin_role(role: &str) -> bool {
    matches!(role, "admin" | "owner" | "primary_owner")
}

/// A display name guessed from an email's local part (`jane.doe` → `Jane Doe`).
pub(crate) fn name_from_email(email: &str) -> String {
    let local = email.split('@').next().unwrap_or(email);
    local
        .split(['.', '_', '-', '+'])
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_uppercase().chain(chars).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl SimState {
    /// A deterministic organization; see `seed` for the mix. The state's clock is frozen at `now`
    /// so that its accessors show the organization as of the time it was built for.
    pub fn seeded(seed: u64, sizes: SeedSizes, now: DateTime<Utc>) -> SimState {
        super::seed::build(seed, sizes, micros(now))
    }

    /// The whole state as pretty JSON.
    pub fn to_json(&self) -> String {
        // A state holds only strings, numbers, booleans and string-keyed maps, so serialization
        // cannot fail; an empty object is an unreachable fallback.
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_string())
    }

    /// Loads a state written by [`Self::to_json`] (or by hand). The clock starts real.
    pub fn from_json(s: &str) -> anyhow::Result<SimState> {
        let state: SimState = serde_json::from_str(s)?;
        if state.workspaces.get(&state.default_workspace_id).is_none() {
            anyhow::bail!(
                "default_workspace_id {} is not in workspaces",
                state.default_workspace_id
            );
        }
        for m in state.workspace_members.iter() {
            if state.workspaces.get(&m.workspace_id).is_none() {
                anyhow::bail!("membership names unknown workspace {}", m.workspace_id);
            }
        }
        Ok(state)
    }

    /// The time the API reads: the frozen time if one is set, the real time otherwise.
    pub fn now(&self) -> DateTime<Utc> {
        // The simulator runs on the wall clock unless it is set.
        #[allow(clippy::disallowed_methods)]
        let now = self.clock.unwrap_or_else(|| micros(Utc::now()));
        now
    }

    /// Freezes the clock at `t`, or with `None` returns to real time.
    pub fn set_clock(&mut self, t: Option<DateTime<Utc>>) {
        self.clock = t.map(micros);
    }

    /// Current counts, in the shape of the seeding sizes: members, invites (every status but
    /// deleted), workspaces (archived included, Default Workspace excluded), keys, memberships.
    pub fn counts(&self) -> SeedSizes {
        SeedSizes {
            members: self.users.len(),
            invites: self
                .invites
                .iter()
                .filter(|i| i.status != "deleted")
                .count(),
            workspaces: self.workspaces.len().saturating_sub(1),
            keys: self.api_keys.len(),
            workspace_members: self.workspace_members.len(),
        }
    }

    // ---- Accessors: exactly the JSON the API serves at `self.now()`. ----

    /// `GET /v1/organizations/me`.
    pub fn organization(&self) -> Value {
        to_value(views::organization(&self.organization))
    }

    /// Every current member, in list order.
    pub fn users(&self) -> Vec<Value> {
        self.users
            .iter()
            .map(|u| to_value(views::user(u)))
            .collect()
    }

    /// Every invite the API lists (pending, accepted, expired; never deleted), in list order.
    pub fn invites(&self) -> Vec<Value> {
        let now = self.now();
        self.invites
            .iter()
            .filter(|i| i.status != "deleted")
            .map(|i| to_value(views::invite(i, now)))
            .collect()
    }

    /// Every workspace, archived included, Default Workspace excluded, in list order.
    pub fn workspaces(&self) -> Vec<Value> {
        self.workspaces
            .iter()
            .filter(|w| w.id != self.default_workspace_id)
            .map(|w| to_value(views::workspace(w)))
            .collect()
    }

    /// The Default Workspace as `GET /workspaces/{id}` shows it.
    pub fn default_workspace(&self) -> Value {
        self.workspaces
            .get(&self.default_workspace_id)
            .map(|w| to_value(views::workspace(w)))
            .unwrap_or(Value::Null)
    }

    /// The real id of the Default Workspace.
    pub fn default_workspace_id(&self) -> &str {
        &self.default_workspace_id
    }

    /// The explicit members of one workspace, in list order (empty for an unknown workspace).
    pub fn workspace_members(&self, workspace_id: &str) -> Vec<Value> {
        self.workspace_members
            .table(workspace_id)
            .map(|t| t.iter().map(|m| to_value(views::member(m))).collect())
            .unwrap_or_default()
    }

    /// Every API key, in list order.
    pub fn api_keys(&self) -> Vec<Value> {
        let now = self.now();
        self.api_keys
            .iter()
            .map(|k| to_value(views::api_key(k, &self.default_workspace_id, now)))
            .collect()
    }

    /// Removed members in the stored form (`id`, `email`, `name`, `role`, `added_at`,
    /// `removed_at`). The API never shows them; their keys are the orphans to find.
    pub fn former_members(&self) -> Vec<Value> {
        self.former_members.iter().map(to_value).collect()
    }

    /// Service accounts that created keys, in the stored form (`id`, `name`, `created_at`).
    pub fn service_accounts(&self) -> Vec<Value> {
        self.service_accounts.iter().map(to_value).collect()
    }

    // ---- Helpers that bypass the API rules (a person acting in the Console). ----

    /// A fresh id that no live or removed object of the same kind carries.
    pub(crate) fn fresh_id(&mut self, prefix: &str) -> String {
        loop {
            let id = self.rng.object_id(prefix);
            let taken = match prefix {
                "user_" => {
                    self.users.get(&id).is_some() || self.former_members.iter().any(|f| f.id == id)
                }
                "invite_" => self.invites.get(&id).is_some(),
                "wrkspc_" => self.workspaces.get(&id).is_some(),
                "apikey_" => self.api_keys.get(&id).is_some(),
                _ => false,
            };
            if !taken {
                return id;
            }
        }
    }

    /// Removes a member, admins included. The member is kept as a former member, their explicit
    /// workspace memberships go, and their API keys stay untouched. False if unknown.
    pub fn remove_user(&mut self, id: &str) -> bool {
        let now = self.now();
        match self.users.remove(id) {
            Some(u) => {
                self.workspace_members.remove_user_everywhere(id);
                self.former_members.push(FormerMember {
                    id: u.id,
                    email: u.email,
                    name: u.name,
                    role: u.role,
                    added_at: u.added_at,
                    removed_at: now,
                });
                true
            }
            None => false,
        }
    }

    /// Sets a member's organization role to any text, `admin` and unknown roles included.
    pub fn set_user_role(&mut self, id: &str, role: &str) -> bool {
        match self.users.get_mut(id) {
            Some(u) => {
                u.role = role.to_string();
                true
            }
            None => false,
        }
    }

    /// Adds a member at the end of the member list and returns the new `user_` id.
    pub fn add_user(
        &mut self,
        email: &str,
        name: &str,
        role: &str,
        added_at: DateTime<Utc>,
    ) -> String {
        let id = self.fresh_id("user_");
        self.users.insert(User {
            id: id.clone(),
            email: email.to_string(),
            name: name.to_string(),
            role: role.to_string(),
            added_at: micros(added_at),
        });
        id
    }

    /// Adds a pending invite (expiring 21 days after `invited_at`) and returns its id.
    pub fn add_invite(&mut self, email: &str, role: &str, invited_at: DateTime<Utc>) -> String {
        let id = self.fresh_id("invite_");
        let invited_at = micros(invited_at);
        self.invites.insert(Invite {
            id: id.clone(),
            email: email.to_string(),
            role: role.to_string(),
            invited_at,
            expires_at: invited_at + Duration::days(INVITE_LIFETIME_DAYS),
            status: "pending".to_string(),
            accepted_at: None,
            rbac_group_ids: Vec::new(),
        });
        id
    }

    /// Accepts an invite now, whatever its status: marks it accepted and adds the member. Returns
    /// the new `user_` id, or `None` for an unknown invite.
    pub fn accept_invite(&mut self, id: &str) -> Option<String> {
        let now = self.now();
        let invite = self.invites.get_mut(id)?;
        invite.status = "accepted".to_string();
        invite.accepted_at = Some(now);
        let (email, role) = (invite.email.clone(), invite.role.clone());
        let name = name_from_email(&email);
        Some(self.add_user(&email, &name, &role, now))
    }

    /// Adds a workspace created now and returns its `wrkspc_` id.
    pub fn add_workspace(&mut self, name: &str) -> String {
        let id = self.fresh_id("wrkspc_");
        let created_at = self.now();
        let compartment_id = self.rng.uuid();
        let display_color = self.rng.pick(super::seed::PALETTE).to_string();
        self.workspaces.insert(Workspace {
            id: id.clone(),
            name: name.to_string(),
            display_color,
            created_at,
            archived_at: None,
            data_residency: DataResidency::default(),
            compartment_id,
            external_key_id: None,
            tags: Default::default(),
        });
        id
    }

    /// Archives a workspace now and archives every key in it. False if unknown, already
    /// archived, or the Default Workspace.
    pub fn archive_workspace(&mut self, id: &str) -> bool {
        if id == self.default_workspace_id {
            return false;
        }
        let now = self.now();
        match self.workspaces.get_mut(id) {
            Some(w) if w.archived_at.is_none() => w.archived_at = Some(now),
            _ => return false,
        }
        for key in self.api_keys.iter_mut() {
            if key.workspace_id.as_deref() == Some(id) {
                key.status = "archived".to_string();
            }
        }
        true
    }

    /// Adds an API key and returns its `apikey_` id. `workspace_id` `None` puts it in the Default
    /// Workspace; `created_by_user_id` `None` gives `created_by: null`. Any status text is stored.
    pub fn add_api_key(
        &mut self,
        name: &str,
        workspace_id: Option<&str>,
        created_by_user_id: Option<&str>,
        status: &str,
        created_at: DateTime<Utc>,
    ) -> String {
        let id = self.fresh_id("apikey_");
        let hint = format!(
            "sk-ant-api03-{}...{}",
            self.rng.base62(3),
            self.rng.base62(4)
        );
        let workspace_id = workspace_id
            .unwrap_or(&self.default_workspace_id)
            .to_string();
        self.api_keys.insert(ApiKey {
            id: id.clone(),
            name: name.to_string(),
            workspace_id: Some(workspace_id),
            created_at: micros(created_at),
            created_by: created_by_user_id.map(|u| CreatedBy {
                id: u.to_string(),
                kind: "user".to_string(),
            }),
            partial_key_hint: Some(hint),
            status: status.to_string(),
            expires_at: None,
            principal: None,
        });
        id
    }

    /// Makes a key a personal key of `user_id` (`principal: user_actor`), as 2026 keys can be.
    pub fn set_key_principal_user(&mut self, id: &str, user_id: &str) -> bool {
        match self.api_keys.get_mut(id) {
            Some(k) => {
                k.principal = Some(Principal::User {
                    user_id: user_id.to_string(),
                });
                true
            }
            None => false,
        }
    }

    /// Sets a key's stored status to any text (`archived` can be left this way).
    pub fn set_key_status(&mut self, id: &str, status: &str) -> bool {
        match self.api_keys.get_mut(id) {
            Some(k) => {
                k.status = status.to_string();
                true
            }
            None => false,
        }
    }

    /// Renames a key, without the API's length check.
    pub fn set_key_name(&mut self, id: &str, name: &str) -> bool {
        match self.api_keys.get_mut(id) {
            Some(k) => {
                k.name = name.to_string();
                true
            }
            None => false,
        }
    }

    /// Sets a key's expiry (`None`: never expires).
    pub fn set_key_expiry(&mut self, id: &str, expires_at: Option<DateTime<Utc>>) -> bool {
        match self.api_keys.get_mut(id) {
            Some(k) => {
                k.expires_at = expires_at.map(micros);
                true
            }
            None => false,
        }
    }

    /// Sets the explicit workspace role of a member, adding the membership at the end of the
    /// workspace's list if there was none. Any role text is stored. False if the workspace or the
    /// user is unknown.
    pub fn set_workspace_role(&mut self, workspace_id: &str, user_id: &str, role: &str) -> bool {
        if self.workspaces.get(workspace_id).is_none() || self.users.get(user_id).is_none() {
            return false;
        }
        let table = self.workspace_members.table_mut(workspace_id);
        match table.get_mut(user_id) {
            Some(m) => m.workspace_role = role.to_string(),
            None => table.insert(WorkspaceMember {
                workspace_id: workspace_id.to_string(),
                user_id: user_id.to_string(),
                workspace_role: role.to_string(),
            }),
        }
        true
    }

    /// Removes an explicit membership, whatever the member's role. False if there was none.
    pub fn remove_workspace_member(&mut self, workspace_id: &str, user_id: &str) -> bool {
        self.workspace_members
            .remove(workspace_id, user_id)
            .is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_ts;

    fn t(s: &str) -> DateTime<Utc> {
        parse_ts(s).expect("valid test time")
    }

    fn small() -> SimState {
        SimState::seeded(7, SeedSizes::default(), t("2026-01-01T00:00:00Z"))
    }

    #[test]
    fn json_round_trip_keeps_everything() {
        let s = small();
        let text = s.to_json();
        let mut back = SimState::from_json(&text).expect("own output loads");
        back.set_clock(s.clock);
        assert_eq!(back.to_json(), text);
        assert_eq!(back.users(), s.users());
        assert_eq!(back.api_keys(), s.api_keys());
        assert_eq!(back.invites(), s.invites());
    }

    #[test]
    fn from_json_rejects_a_missing_default_workspace() {
        let mut v: Value = serde_json::from_str(&small().to_json()).expect("valid JSON");
        v["default_workspace_id"] = Value::from("wrkspc_01nothere");
        assert!(SimState::from_json(&v.to_string()).is_err());
    }

    #[test]
    fn helpers_bypass_rules_and_keep_keys_of_removed_users() {
        let mut s = small();
        let now = s.now();
        let uid = s.add_user("Temp.Person@Example.com", "Temp Person", "admin", now);
        let ws = s.add_workspace("Scratch");
        assert!(s.set_workspace_role(&ws, &uid, "workspace_developer"));
        let key = s.add_api_key("temp key", Some(&ws), Some(&uid), "active", now);
        assert!(s.remove_user(&uid), "helpers may remove admins");
        assert!(s.workspace_members(&ws).is_empty());
        let k = s
            .api_keys()
            .into_iter()
            .find(|k| k["id"] == key.as_str())
            .expect("key survives its creator");
        assert_eq!(k["status"], "active");
        assert_eq!(k["created_by"]["id"], uid.as_str());
        assert!(s.former_members().iter().any(|f| f["id"] == uid.as_str()));
        assert!(!s.remove_user(&uid));
    }

    #[test]
    fn default_workspace_keys_show_null_workspace_id() {
        let mut s = small();
        let now = s.now();
        let key = s.add_api_key("default key", None, None, "active", now);
        let v = s
            .api_keys()
            .into_iter()
            .find(|k| k["id"] == key.as_str())
            .expect("added");
        assert_eq!(v["workspace_id"], Value::Null);
        assert_eq!(v["scope"]["type"], "workspace");
        assert_eq!(v["scope"]["workspace_id"], s.default_workspace_id());
        assert_eq!(v["created_by"], Value::Null);
        assert!(!s
            .workspaces()
            .iter()
            .any(|w| w["id"] == s.default_workspace_id()));
    }

    #[test]
    fn accept_invite_adds_a_member() {
        let mut s = small();
        let now = s.now();
        let inv = s.add_invite("new.hire@example.com", "developer", now);
        let uid = s.accept_invite(&inv).expect("known invite");
        let user = s
            .users()
            .into_iter()
            .find(|u| u["id"] == uid.as_str())
            .expect("added");
        assert_eq!(user["name"], "New Hire");
        assert_eq!(user["role"], "developer");
        let invite = s
            .invites()
            .into_iter()
            .find(|i| i["id"] == inv.as_str())
            .expect("listed");
        assert_eq!(invite["status"], "accepted");
    }
}
