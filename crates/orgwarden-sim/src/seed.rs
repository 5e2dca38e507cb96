//! Building a deterministic, realistic organization from a seed and a few sizes.
//!
//! The mix (for the default 40 members, 12 invites, 5 workspaces, 60 keys, 60 memberships, and in
//! proportion for larger sizes):
//! - members: the first member is an `admin`, 2–4 admins in all; otherwise about 50% `user`,
//!   35% `developer`, 10% `claude_code_user`, 5% `billing` (at least one from ten members on);
//!   about 10% on the second domain `contractor.example.net`, about 3% with mixed-case emails;
//! - former members (about a tenth of the members, at least two), removed before `now`, a third of
//!   them contractors; they are not in the member list, but they created some keys;
//! - invites: about 30% accepted (the email of an existing member, `accepted_at` = their
//!   `added_at`), 25% pending and fresh (< 7 days), 20% pending and older (8–20 days),
//!   25% expired (invited 22–180 days ago); about 20% of the non-accepted ones on the second domain;
//! - workspaces: the Default Workspace (real id, first in creation order) plus the requested
//!   number, about 15% archived (at least one from three on), some with US-only data residency or
//!   tags;
//! - memberships: spread uniformly over the non-default workspaces (archived ones included), only
//!   for members with role `user`, `developer` or `claude_code_user`, plus one billing member
//!   upgraded to `workspace_admin` when there is one;
//! - keys: about 10% in the Default Workspace, 3% organization-scoped personal keys, the rest in
//!   the other workspaces; keys of archived workspaces are `archived`, others about 75% `active`,
//!   12% `inactive`, 13% `archived`; about 10% created by former members, 3% by a service
//!   account (`svac_…`), 3% with `created_by: null`; about 5% of member keys carry a
//!   `principal` matching `created_by`; about 10% have an `expires_at` (some already passed,
//!   which shows as `expired`).
//!
//! Each part draws from its own generator stream, so changing one size leaves the other parts of
//! the organization as they were. Nothing here iterates a hash map, whose order would differ from
//! run to run.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};

use super::model::{
    micros, AllowedGeos, ApiKey, CreatedBy, DataResidency, FormerMember, Invite, Memberships,
    Organization, Principal, ServiceAccount, Table, User, Workspace, WorkspaceMember,
    INVITE_LIFETIME_DAYS,
};
use super::prng::{mix, SplitMix64};
use super::state::{is_admin_role, SimState};
use super::SeedSizes;

/// Workspace colours (the first is the documented example colour).
pub(crate) const PALETTE: &[&str] = &[
    "#6C5BB9", "#D97757", "#4A90A4", "#7A9E3B", "#C4A000", "#B04A6B", "#3F6FD1", "#8E6C4A",
];
/// The main email domain.
pub const MAIN_DOMAIN: &str = "example.com";
/// The second domain, the one a configuration can declare departed.
pub const SECOND_DOMAIN: &str = "contractor.example.net";
/// The organization's name.
pub const ORGANIZATION_NAME: &str = "Example Corp";

const FIRST_NAMES: &[&str] = &[
    "Jane", "John", "Amara", "Bruno", "Chen", "Dana", "Elif", "Farah", "Gustavo", "Hana", "Ivan",
    "Jonas", "Kemal", "Lena", "Mateo", "Nadia", "Omar", "Priya", "Quentin", "Rosa", "Sven", "Tara",
    "Umar", "Vera", "Wei", "Ximena", "Yusuf", "Zoe", "Aiko", "Bilal", "Carmen", "Dmitri", "Esther",
    "Felix", "Greta", "Hugo", "Ines", "Jamal", "Kira", "Luca", "Maya", "Nils", "Olga", "Pavel",
    "Rania", "Sofia", "Tomas", "Ursula", "Viktor", "Yara",
];
const LAST_NAMES: &[&str] = &[
    "Doe",
    "Smith",
    "Okafor",
    "Rossi",
    "Wang",
    "Levi",
    "Yilmaz",
    "Haddad",
    "Pereira",
    "Sato",
    "Petrov",
    "Berg",
    "Demir",
    "Fischer",
    "Garcia",
    "Karimi",
    "Nasser",
    "Iyer",
    "Moreau",
    "Lopez",
    "Larsen",
    "Singh",
    "Farouk",
    "Novak",
    "Zhang",
    "Ortiz",
    "Aydin",
    "Martin",
    "Tanaka",
    "Qureshi",
    "Ruiz",
    "Volkov",
    "Cohen",
    "Keller",
    "Lund",
    "Dubois",
    "Costa",
    "Bakr",
    "Ivanova",
    "Bianchi",
    "Patel",
    "Holm",
    "Sokolova",
    "Horak",
    "Mansour",
    "Ferreira",
    "Svoboda",
    "Weber",
    "Kuznetsov",
    "Amini",
];
const WORKSPACE_NAMES: &[&str] = &[
    "Production",
    "Staging",
    "Research",
    "Data Science",
    "Support Assistant",
    "Internal Tools",
    "Sandbox",
    "Evaluation",
    "Marketing Content",
    "Legal Review",
    "Claude Code",
    "Mobile App",
];
const KEY_PURPOSES: &[&str] = &[
    "Production backend",
    "Staging backend",
    "CI pipeline",
    "Data ingestion",
    "Batch evals",
    "Support bot",
    "Local development",
    "Notebook experiments",
    "Prompt testing",
    "Analytics export",
    "Slack integration",
    "Customer summarizer",
    "Search reranker",
    "Document QA",
    "Developer Key",
];
const SERVICE_ACCOUNTS: &[&str] = &["ci-deployer", "data-pipeline"];

/// A random time in `lo..=hi` with microsecond precision (`lo` when the range is empty).
fn between(rng: &mut SplitMix64, lo: DateTime<Utc>, hi: DateTime<Utc>) -> DateTime<Utc> {
    let span = (hi - lo).num_microseconds().unwrap_or(0);
    if span <= 0 {
        return lo;
    }
    lo + Duration::microseconds(rng.range_i64(0, span))
}

/// A generator stream for one part of the organization.
fn stream(seed: u64, part: u64) -> SplitMix64 {
    SplitMix64::new(mix(seed ^ mix(part)))
}

/// Draws an id that this set has not seen.
fn unique_id(rng: &mut SplitMix64, prefix: &str, taken: &mut HashSet<String>) -> String {
    loop {
        let id = rng.object_id(prefix);
        if taken.insert(id.clone()) {
            return id;
        }
    }
}

/// Makes people with unique email addresses.
struct People {
    emails: HashSet<String>,
}

/// A generated person.
struct Person {
    name: String,
    email: String,
}

impl People {
    /// A new person; `second_domain_share` of them on the second domain, about 3% with a
    /// mixed-case address.
    fn make(&mut self, rng: &mut SplitMix64, second_domain_share: f64) -> Person {
        let first = *rng.pick(FIRST_NAMES);
        let last = *rng.pick(LAST_NAMES);
        let domain = if rng.chance(second_domain_share) {
            SECOND_DOMAIN
        } else {
            MAIN_DOMAIN
        };
        let mixed_case = rng.chance(0.03);
        let base = format!("{}.{}", first.to_lowercase(), last.to_lowercase());
        let mut n = 1u32;
        loop {
            let local = if n == 1 {
                base.clone()
            } else {
                format!("{base}{n}")
            };
            let email = format!("{local}@{domain}");
            if self.emails.insert(email.clone()) {
                let email = if mixed_case {
                    // `Jane.Doe@Example.com`: same mailbox, different spelling.
                    let mut local = format!("{first}.{last}");
                    if n > 1 {
                        local.push_str(&n.to_string());
                    }
                    let mut domain_chars = domain.chars();
                    let domain = match domain_chars.next() {
                        Some(c) => c.to_uppercase().chain(domain_chars).collect(),
                        None => String::new(),
                    };
                    format!("{local}@{domain}")
                } else {
                    email
                };
                return Person {
                    name: format!("{first} {last}"),
                    email,
                };
            }
            n += 1;
        }
    }
}

/// Builds the organization; see the module documentation.
pub(crate) fn build(seed: u64, sizes: SeedSizes, now: DateTime<Utc>) -> SimState {
    let now = micros(now);
    let org_created = now - Duration::days(1100);
    let mut people = People {
        emails: HashSet::new(),
    };

    // Organization and Default Workspace.
    let mut rng = stream(seed, 1);
    let organization = Organization {
        id: rng.uuid(),
        name: ORGANIZATION_NAME.to_string(),
    };
    let mut workspace_ids = HashSet::new();
    let default_workspace = Workspace {
        id: unique_id(&mut rng, "wrkspc_", &mut workspace_ids),
        name: "Default Workspace".to_string(),
        display_color: PALETTE[0].to_string(),
        created_at: org_created,
        archived_at: None,
        data_residency: DataResidency::default(),
        compartment_id: rng.uuid(),
        external_key_id: None,
        tags: Default::default(),
    };
    let default_workspace_id = default_workspace.id.clone();

    // Members, in the order they joined.
    let mut rng = stream(seed, 2);
    let mut user_ids = HashSet::new();
    let m = sizes.members;
    let mut joined: Vec<DateTime<Utc>> = (0..m)
        .map(|i| {
            if i == 0 {
                org_created
            } else {
                between(&mut rng, org_created, now - Duration::days(1))
            }
        })
        .collect();
    joined.sort();
    let admins = if m == 0 {
        0
    } else {
        (2 + m / 40).min(4).min(m)
    };
    let mut roles: Vec<&str> = (0..m)
        .map(|_| {
            let r = rng.unit();
            if r < 0.05 {
                "billing"
            } else if r < 0.15 {
                "claude_code_user"
            } else if r < 0.50 {
                "developer"
            } else {
                "user"
            }
        })
        .collect();
    if m > 0 {
        roles[0] = "admin";
    }
    let mut placed = 1;
    while placed < admins {
        let i = rng.index(m);
        if roles[i] != "admin" {
            roles[i] = "admin";
            placed += 1;
        }
    }
    if m >= 10 && !roles.contains(&"billing") {
        if let Some(i) = (1..m).find(|&i| roles[i] != "admin") {
            roles[i] = "billing";
        }
    }
    let mut users: Vec<User> = Vec::with_capacity(m);
    for (added_at, role) in joined.into_iter().zip(roles) {
        let p = people.make(&mut rng, 0.10);
        users.push(User {
            id: unique_id(&mut rng, "user_", &mut user_ids),
            email: p.email,
            name: p.name,
            role: role.to_string(),
            added_at,
        });
    }

    // Former members, who left before `now`.
    let mut rng = stream(seed, 3);
    let former_count = if m == 0 { 0 } else { (m / 10).max(2) };
    let mut former_members: Vec<FormerMember> = (0..former_count)
        .map(|_| {
            let p = people.make(&mut rng, 0.33);
            let added_at = between(&mut rng, org_created, now - Duration::days(60));
            let removed_at = between(
                &mut rng,
                added_at + Duration::days(30),
                now - Duration::days(1),
            );
            let role = if rng.chance(0.5) { "developer" } else { "user" };
            FormerMember {
                id: unique_id(&mut rng, "user_", &mut user_ids),
                email: p.email,
                name: p.name,
                role: role.to_string(),
                added_at,
                removed_at,
            }
        })
        .collect();
    former_members.sort_by_key(|f| f.removed_at);

    // Service accounts.
    let mut rng = stream(seed, 4);
    let mut svac_ids = HashSet::new();
    let service_accounts: Vec<ServiceAccount> = SERVICE_ACCOUNTS
        .iter()
        .map(|name| ServiceAccount {
            id: unique_id(&mut rng, "svac_", &mut svac_ids),
            name: name.to_string(),
            created_at: between(&mut rng, org_created, now - Duration::days(200)),
        })
        .collect();

    // Invites.
    let mut rng = stream(seed, 5);
    let mut invite_ids = HashSet::new();
    // Members that can stand behind an accepted invite: not the founder.
    let mut acceptors: Vec<usize> = (1..m).collect();
    let mut invites: Vec<Invite> = Vec::with_capacity(sizes.invites);
    for i in 0..sizes.invites {
        // The first four cover every kind, so even a tiny organization has all of them.
        let kind = if i < 4 {
            i
        } else {
            let r = rng.unit();
            if r < 0.30 {
                0
            } else if r < 0.55 {
                1
            } else if r < 0.75 {
                2
            } else {
                3
            }
        };
        let role = {
            let r = rng.unit();
            if r < 0.45 {
                "user"
            } else if r < 0.80 {
                "developer"
            } else if r < 0.92 {
                "claude_code_user"
            } else {
                "billing"
            }
        };
        let id = unique_id(&mut rng, "invite_", &mut invite_ids);
        let invite = if kind == 0 && !acceptors.is_empty() {
            // Accepted: the invite of an existing member, accepted when they joined.
            let pick = rng.index(acceptors.len());
            let u = &users[acceptors.swap_remove(pick)];
            let invited_at = u.added_at - Duration::seconds(rng.range_i64(3600, 5 * 86_400));
            let role = if is_admin_role(&u.role) {
                "developer"
            } else {
                u.role.as_str()
            };
            Invite {
                id,
                email: u.email.clone(),
                role: role.to_string(),
                invited_at,
                expires_at: invited_at + Duration::days(INVITE_LIFETIME_DAYS),
                status: "accepted".to_string(),
                accepted_at: Some(u.added_at),
                rbac_group_ids: Vec::new(),
            }
        } else {
            let p = people.make(&mut rng, 0.20);
            let age_days = match kind {
                0 | 1 => (0, 7),
                2 => (8, 20),
                _ => (22, 180),
            };
            let invited_at = between(
                &mut rng,
                now - Duration::days(age_days.1),
                now - Duration::days(age_days.0) - Duration::hours(1),
            );
            let (status, accepted_at) = if kind == 0 {
                // No member left to stand behind it: accepted by someone who has since left.
                ("accepted", Some(invited_at + Duration::days(1)))
            } else {
                ("pending", None)
            };
            Invite {
                id,
                email: p.email,
                role: role.to_string(),
                invited_at,
                expires_at: invited_at + Duration::days(INVITE_LIFETIME_DAYS),
                status: status.to_string(),
                accepted_at,
                rbac_group_ids: Vec::new(),
            }
        };
        invites.push(invite);
    }
    invites.sort_by_key(|i| i.invited_at);

    // Workspaces, in creation order.
    let mut rng = stream(seed, 6);
    let w = sizes.workspaces;
    let mut created: Vec<DateTime<Utc>> = (0..w)
        .map(|_| {
            between(
                &mut rng,
                org_created + Duration::days(1),
                now - Duration::days(3),
            )
        })
        .collect();
    created.sort();
    let archived_count = if w >= 3 { (w * 15 / 100).max(1) } else { 0 };
    let mut archived = vec![false; w];
    let mut placed = 0;
    while placed < archived_count {
        let i = rng.index(w);
        if !archived[i] {
            archived[i] = true;
            placed += 1;
        }
    }
    let mut workspaces: Vec<Workspace> = Vec::with_capacity(w + 1);
    workspaces.push(default_workspace);
    for (i, created_at) in created.into_iter().enumerate() {
        let name = match WORKSPACE_NAMES.get(i) {
            Some(n) => n.to_string(),
            None => format!("Team {}", i + 1),
        };
        let archived_at = archived[i].then(|| {
            between(
                &mut rng,
                created_at + Duration::days(1),
                now - Duration::hours(1),
            )
        });
        let data_residency = if rng.chance(0.2) {
            DataResidency {
                workspace_geo: "us".to_string(),
                allowed_inference_geos: AllowedGeos::List(vec!["us".to_string()]),
                default_inference_geo: "us".to_string(),
            }
        } else {
            DataResidency::default()
        };
        let mut tags = std::collections::BTreeMap::new();
        if rng.chance(0.4) {
            let env = *rng.pick(&["prod", "staging", "dev"]);
            let team = *rng.pick(&["platform", "ml", "support", "growth"]);
            tags.insert("env".to_string(), env.to_string());
            tags.insert("team".to_string(), team.to_string());
        }
        workspaces.push(Workspace {
            id: unique_id(&mut rng, "wrkspc_", &mut workspace_ids),
            name,
            display_color: rng.pick(PALETTE).to_string(),
            created_at,
            archived_at,
            data_residency,
            compartment_id: rng.uuid(),
            external_key_id: None,
            tags,
        });
    }

    // Explicit memberships.
    let mut rng = stream(seed, 7);
    let eligible: Vec<usize> = (0..users.len())
        .filter(|&i| {
            matches!(
                users[i].role.as_str(),
                "user" | "developer" | "claude_code_user"
            )
        })
        .collect();
    let billing = users.iter().position(|u| u.role == "billing");
    let mut workspace_members = Memberships::default();
    let capacity = eligible.len() * w + usize::from(billing.is_some() && w > 0);
    let target = sizes.workspace_members.min(capacity);
    let mut used: HashSet<(usize, usize)> = HashSet::with_capacity(target);
    let mut count = 0;
    if let (Some(b), true) = (billing, target > 0 && w > 0) {
        // The one documented exception: a billing member upgraded to workspace admin.
        let ws = 1 + rng.index(w);
        workspace_members.insert(WorkspaceMember {
            workspace_id: workspaces[ws].id.clone(),
            user_id: users[b].id.clone(),
            workspace_role: "workspace_admin".to_string(),
        });
        count += 1;
    }
    while count < target {
        let mut ws = rng.index(w);
        let mut ui = rng.index(eligible.len());
        let mut tries = 0;
        while used.contains(&(ws, ui)) {
            tries += 1;
            if tries < 32 {
                ws = rng.index(w);
                ui = rng.index(eligible.len());
            } else {
                // Nearly full: walk to the next free pair instead of rolling forever. A free
                // pair exists because `count < target <= capacity`.
                ui += 1;
                if ui == eligible.len() {
                    ui = 0;
                    ws = (ws + 1) % w;
                }
            }
        }
        used.insert((ws, ui));
        let r = rng.unit();
        let role = if r < 0.45 {
            "workspace_developer"
        } else if r < 0.75 {
            "workspace_user"
        } else if r < 0.87 {
            "workspace_admin"
        } else {
            "workspace_restricted_developer"
        };
        workspace_members.insert(WorkspaceMember {
            workspace_id: workspaces[ws + 1].id.clone(),
            user_id: users[eligible[ui]].id.clone(),
            workspace_role: role.to_string(),
        });
        count += 1;
    }

    // API keys.
    let mut rng = stream(seed, 8);
    let mut key_ids = HashSet::new();
    let mut api_keys: Vec<ApiKey> = Vec::with_capacity(sizes.keys);
    for _ in 0..sizes.keys {
        // Who created it, and the window in which they could have.
        let r = rng.unit();
        let (created_by, principal_user, from, until) = if r < 0.10 && !former_members.is_empty() {
            let f = rng.pick(&former_members);
            let by = CreatedBy {
                id: f.id.clone(),
                kind: "user".to_string(),
            };
            (Some(by), Some(f.id.clone()), f.added_at, f.removed_at)
        } else if r < 0.13 {
            let s = rng.pick(&service_accounts);
            let by = CreatedBy {
                id: s.id.clone(),
                kind: "service_account".to_string(),
            };
            (Some(by), None, s.created_at, now)
        } else if r < 0.16 || users.is_empty() {
            (None, None, org_created, now)
        } else {
            let u = rng.pick(&users);
            let by = CreatedBy {
                id: u.id.clone(),
                kind: "user".to_string(),
            };
            (Some(by), Some(u.id.clone()), u.added_at, now)
        };
        let is_service = created_by
            .as_ref()
            .is_some_and(|c| c.kind == "service_account");

        // Where it lives: 3% organization-scoped personal keys, 10% Default Workspace.
        let r = rng.unit();
        let (workspace, principal) = if r < 0.03 && principal_user.is_some() {
            let p = principal_user
                .clone()
                .map(|user_id| Principal::User { user_id });
            (None, p)
        } else {
            let ws = if r < 0.13 || w == 0 {
                0
            } else {
                1 + rng.index(w)
            };
            let principal = if is_service && rng.chance(0.5) {
                created_by.as_ref().map(|c| Principal::ServiceAccount {
                    service_account_id: c.id.clone(),
                })
            } else if rng.chance(0.05) {
                principal_user
                    .clone()
                    .map(|user_id| Principal::User { user_id })
            } else {
                None
            };
            (Some(ws), principal)
        };

        let (lo, hi, archived_ws) = match workspace {
            Some(ws) => {
                let wsp = &workspaces[ws];
                let hi = wsp.archived_at.unwrap_or(now).min(until);
                (from.max(wsp.created_at), hi, wsp.archived_at.is_some())
            }
            None => (from, until, false),
        };
        let created_at = between(&mut rng, lo, hi.max(lo)).min(now);
        let status = if archived_ws {
            "archived"
        } else {
            let r = rng.unit();
            if r < 0.75 {
                "active"
            } else if r < 0.87 {
                "inactive"
            } else {
                "archived"
            }
        };
        let expires_at = rng
            .chance(0.10)
            .then(|| created_at + Duration::days(rng.range_i64(30, 400)));
        let purpose = *rng.pick(KEY_PURPOSES);
        let name = match rng.index(4) {
            0 => format!("{purpose} {}", 1 + rng.index(9)),
            1 => format!("{purpose} ({})", rng.pick(FIRST_NAMES)),
            _ => purpose.to_string(),
        };
        let hint = format!("sk-ant-api03-{}...{}", rng.base62(3), rng.base62(4));
        api_keys.push(ApiKey {
            id: unique_id(&mut rng, "apikey_", &mut key_ids),
            name,
            workspace_id: workspace.map(|ws| workspaces[ws].id.clone()),
            created_at,
            created_by,
            partial_key_hint: Some(hint),
            status: status.to_string(),
            expires_at,
            principal,
        });
    }
    api_keys.sort_by_key(|k| k.created_at);

    // Every id above was drawn through `unique_id`, so building the tables cannot fail.
    SimState {
        organization,
        default_workspace_id,
        users: Table::from_rows(users).expect("seeded ids are unique"),
        former_members,
        invites: Table::from_rows(invites).expect("seeded ids are unique"),
        workspaces: Table::from_rows(workspaces).expect("seeded ids are unique"),
        workspace_members,
        api_keys: Table::from_rows(api_keys).expect("seeded ids are unique"),
        service_accounts,
        rng: stream(seed, 9),
        clock: Some(now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::parse_ts;
    use std::time::Instant;

    fn t0() -> DateTime<Utc> {
        parse_ts("2026-01-01T00:00:00Z").expect("valid test time")
    }

    #[test]
    fn same_seed_same_organization_and_different_seed_different() {
        let a = SimState::seeded(42, SeedSizes::default(), t0()).to_json();
        let b = SimState::seeded(42, SeedSizes::default(), t0()).to_json();
        let c = SimState::seeded(43, SeedSizes::default(), t0()).to_json();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn seed_42_is_stable_across_versions() {
        // Pins a few values of the default organization: if this fails, seeded organizations
        // changed for everyone who relies on them (demos, saved expectations).
        let s = SimState::seeded(42, SeedSizes::default(), t0());
        assert_eq!(
            s.organization(),
            serde_json::json!({"id":"31658192-85df-4854-999e-d3ca2e2516f2","type":"organization",
                "name":"Example Corp"})
        );
        let users = s.users();
        assert_eq!(
            users[1],
            serde_json::json!({"type":"user","id":"user_01LNeEQmaCRog0QTcijiGHHB",
                "email":"tara.pereira@example.com","name":"Tara Pereira","role":"admin",
                "added_at":"2023-02-09T23:48:21.900049Z"})
        );
        assert_eq!(s.default_workspace_id(), "wrkspc_018TFu9nig12NH6NM5G4Geyv");
        assert_eq!(s.invites()[0]["id"], "invite_01wAj3m4HO3OuEMKbQPlcA1x");
    }

    #[test]
    fn changing_one_size_keeps_the_other_parts() {
        let a = SimState::seeded(42, SeedSizes::default(), t0());
        let more_keys = SeedSizes {
            keys: 90,
            ..SeedSizes::default()
        };
        let b = SimState::seeded(42, more_keys, t0());
        assert_eq!(a.users(), b.users());
        assert_eq!(a.workspaces(), b.workspaces());
        assert_ne!(a.api_keys(), b.api_keys());
    }

    #[test]
    fn default_organization_has_the_realistic_mix() {
        let s = SimState::seeded(42, SeedSizes::default(), t0());
        assert_eq!(s.counts(), SeedSizes::default());
        let users = s.users();
        let role_count = |r: &str| users.iter().filter(|u| u["role"] == r).count();
        assert!((2..=4).contains(&role_count("admin")));
        assert!(role_count("billing") >= 1);
        assert!(role_count("developer") > 5 && role_count("user") > 5);
        let second = users
            .iter()
            .filter(|u| {
                u["email"]
                    .as_str()
                    .is_some_and(|e| e.to_lowercase().ends_with(SECOND_DOMAIN))
            })
            .count();
        assert!(second >= 1, "some members on the second domain");
        let emails: Vec<String> = users
            .iter()
            .map(|u| u["email"].as_str().unwrap_or_default().to_lowercase())
            .collect();
        let unique: HashSet<&String> = emails.iter().collect();
        assert_eq!(unique.len(), emails.len(), "emails are unique, case aside");

        let invites = s.invites();
        for status in ["pending", "accepted", "expired"] {
            assert!(invites.iter().any(|i| i["status"] == status), "{status}");
        }
        for i in invites.iter().filter(|i| i["status"] == "accepted") {
            assert!(!i["accepted_at"].is_null());
            assert!(users.iter().any(|u| u["email"] == i["email"]));
        }

        let workspaces = s.workspaces();
        assert!(workspaces.iter().any(|w| !w["archived_at"].is_null()));
        let keys = s.api_keys();
        let former: HashSet<String> = s
            .former_members()
            .iter()
            .filter_map(|f| f["id"].as_str().map(str::to_string))
            .collect();
        let members: HashSet<&str> = users.iter().filter_map(|u| u["id"].as_str()).collect();
        assert!(former.iter().all(|f| !members.contains(f.as_str())));
        assert!(keys.iter().any(|k| k["created_by"]["id"]
            .as_str()
            .is_some_and(|id| former.contains(id))));
        assert!(keys.iter().any(|k| k["workspace_id"].is_null()));
        for k in &keys {
            let archived_ws = workspaces
                .iter()
                .any(|w| w["id"] == k["workspace_id"] && !w["archived_at"].is_null());
            if archived_ws {
                assert_eq!(k["status"], "archived");
            }
            if k["principal"]["type"] == "user_actor" {
                assert_eq!(k["principal"]["user_id"], k["created_by"]["id"]);
            }
        }
    }

    #[test]
    fn larger_organizations_have_every_kind_of_key() {
        let s = SimState::seeded(
            7,
            SeedSizes {
                keys: 2_000,
                ..SeedSizes::default()
            },
            t0(),
        );
        let keys = s.api_keys();
        let has = |f: &dyn Fn(&serde_json::Value) -> bool| keys.iter().any(f);
        assert!(has(&|k| k["created_by"]["type"] == "service_account"));
        assert!(has(&|k| k["created_by"].is_null()));
        assert!(has(&|k| k["principal"]["type"] == "user_actor"));
        assert!(has(&|k| k["principal"]["type"] == "service_account_actor"));
        assert!(has(&|k| k["scope"]["type"] == "organization"));
        // What orgwarden's key_hygiene rule looks for: active keys that never expire and are
        // more than a year old, and active organization-scoped keys.
        let year_ago = t0() - Duration::days(365);
        assert!(has(&|k| k["status"] == "active"
            && k["expires_at"].is_null()
            && k["created_at"]
                .as_str()
                .and_then(|t| parse_ts(t).ok())
                .is_some_and(|t| t < year_ago)));
        assert!(has(
            &|k| k["status"] == "active" && k["scope"]["type"] == "organization"
        ));
        assert!(has(&|k| k["status"] == "inactive"));
        assert!(has(&|k| k["status"] == "expired"));
        assert!(has(
            &|k| !k["expires_at"].is_null() && k["status"] != "expired"
        ));
        let default_share = keys
            .iter()
            .filter(|k| k["workspace_id"].is_null() && k["scope"]["type"] == "workspace")
            .count() as f64
            / keys.len() as f64;
        assert!((0.05..0.15).contains(&default_share), "{default_share}");
        let mixed_case = s
            .users()
            .iter()
            .chain(s.former_members().iter())
            .any(|u| u["email"].as_str().is_some_and(|e| e != e.to_lowercase()));
        let big = SimState::seeded(
            7,
            SeedSizes {
                members: 400,
                ..SeedSizes::default()
            },
            t0(),
        );
        let mixed_case_big = big
            .users()
            .iter()
            .any(|u| u["email"].as_str().is_some_and(|e| e != e.to_lowercase()));
        assert!(mixed_case || mixed_case_big, "a few emails use mixed case");
    }

    #[test]
    fn large_organization_has_exact_sizes_and_builds_fast() {
        let sizes = SeedSizes {
            members: 20_000,
            invites: 5_000,
            workspaces: 100,
            keys: 50_000,
            workspace_members: 40_000,
        };
        let started = Instant::now();
        let s = SimState::seeded(1, sizes, t0());
        let took = started.elapsed();
        assert_eq!(s.counts(), sizes);
        // Generous for an unoptimized test build on a busy machine; a quadratic step would
        // take minutes.
        assert!(took.as_secs() < 20, "seeding took {took:?}");
        let admins = s.users.iter().filter(|u| u.role == "admin").count();
        assert_eq!(admins, 4);
    }

    #[test]
    fn memberships_fill_up_to_capacity_without_looping_forever() {
        let sizes = SeedSizes {
            members: 12,
            invites: 0,
            workspaces: 2,
            keys: 0,
            workspace_members: 1_000,
        };
        let s = SimState::seeded(3, sizes, t0());
        let eligible = s
            .users
            .iter()
            .filter(|u| matches!(u.role.as_str(), "user" | "developer" | "claude_code_user"))
            .count();
        let billing = usize::from(s.users.iter().any(|u| u.role == "billing"));
        assert_eq!(s.counts().workspace_members, eligible * 2 + billing);
        let empty = SimState::seeded(
            3,
            SeedSizes {
                members: 0,
                invites: 3,
                workspaces: 0,
                keys: 5,
                workspace_members: 5,
            },
            t0(),
        );
        assert_eq!(empty.counts().members, 0);
        assert_eq!(empty.counts().keys, 5);
        assert_eq!(empty.counts().workspace_members, 0);
    }
}
