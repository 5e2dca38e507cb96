//! The seeded identity-provider directory: who the company's directory lists, derived from the
//! seeded organization so that the Okta, Microsoft Graph and Google Directory simulators (and the
//! LDIF the LDAP tests load into a real `slapd`) all describe the same people.
//!
//! The directory is authoritative for [`MAIN_DOMAIN`](crate::MAIN_DOMAIN). Every decision is a
//! hash of the lower-cased email, so a person keeps their directory state while the organization
//! changes around them, and tests can compute the expected findings from [`SimState::directory`]:
//!
//! - members and pending invites on the main domain, by `h = hash(email) % 100`:
//!   - `0..3`: disabled (`h % 3`: suspended, deprovisioned, locked out);
//!   - `3`: deleted (still listed, with a deletion time);
//!   - `4..6`: absent: unknown to the directory (a shadow account);
//!   - `6..12`: listed under another primary address (`j.doe@…` for `jane.doe@…`) with the
//!     organization's address as an alias;
//!   - otherwise active under the same address;
//!   - of the active members, `20..23` are not assigned to the Claude application (the others
//!     are); invites are never assigned.
//! - former members on the main domain: deprovisioned when they were removed (to the second);
//! - one directory-only person (active, unassigned) per ten members: `dir.only.N@example.com`.
//!
//! Status change times are `now` minus `h` days (at least one), so "since when" is stable too;
//! a former member's is their removal.

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

use super::seed::MAIN_DOMAIN;
use super::state::SimState;

/// A person's state in the seeded directory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectoryState {
    Active,
    Suspended,
    Deprovisioned,
    LockedOut,
    Deleted,
}

impl DirectoryState {
    /// Whether the person may sign in.
    pub fn is_active(self) -> bool {
        self == DirectoryState::Active
    }
}

/// One person in the seeded directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirectoryEntry {
    /// A stable id derived from the primary email (`u` and 16 hex digits).
    pub id: String,
    /// The primary email, lower-cased.
    pub email: String,
    /// Other addresses of the same person, lower-cased.
    pub aliases: Vec<String>,
    pub given_name: String,
    pub family_name: String,
    pub state: DirectoryState,
    /// When `state` last changed.
    pub state_changed: DateTime<Utc>,
    /// Assigned to the Claude application in the identity provider.
    pub assigned: bool,
}

/// FNV-1a of the lower-cased text: stable across runs, platforms and Rust versions.
fn hash(text: &str) -> u64 {
    text.to_lowercase()
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}

fn on_main_domain(email: &str) -> bool {
    email
        .rsplit_once('@')
        .is_some_and(|(_, domain)| domain.eq_ignore_ascii_case(MAIN_DOMAIN))
}

fn names(email: &str) -> (String, String) {
    let full = super::state::name_from_email(email);
    match full.split_once(' ') {
        Some((given, family)) => (given.to_owned(), family.to_owned()),
        None => (full.clone(), String::new()),
    }
}

/// `j.doe@example.com` for `jane.doe@example.com`; `None` when the local part has no dot.
fn short_address(email: &str) -> Option<String> {
    let (local, domain) = email.rsplit_once('@')?;
    let (first, rest) = local.split_once('.')?;
    let initial = first.chars().next()?;
    Some(format!("{initial}.{rest}@{domain}"))
}

fn entry(email: &str, state: DirectoryState, assigned: bool, now: DateTime<Utc>) -> DirectoryEntry {
    let email = email.to_lowercase();
    let h = hash(&email);
    let (given_name, family_name) = names(&email);
    let bucket = h % 100;
    let (primary, aliases) = match short_address(&email) {
        Some(short) if (6..12).contains(&bucket) && short != email => (short, vec![email]),
        _ => (email, Vec::new()),
    };
    DirectoryEntry {
        id: format!("u{:016x}", hash(&primary)),
        email: primary,
        aliases,
        given_name,
        family_name,
        state,
        state_changed: now - Duration::days(bucket.max(1) as i64),
        assigned,
    }
}

/// The state of an organization person (member or invite) in the directory; `None` when absent.
fn person_state(email: &str) -> Option<DirectoryState> {
    let h = hash(email) % 100;
    match h {
        0..3 => Some(match h % 3 {
            0 => DirectoryState::Suspended,
            1 => DirectoryState::Deprovisioned,
            _ => DirectoryState::LockedOut,
        }),
        3 => Some(DirectoryState::Deleted),
        4..6 => None,
        _ => Some(DirectoryState::Active),
    }
}

impl SimState {
    /// The seeded directory, as the module documentation describes it, ordered by primary email.
    pub fn directory(&self) -> Vec<DirectoryEntry> {
        let now = self.now();
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        let mut add = |e: DirectoryEntry, out: &mut Vec<DirectoryEntry>| {
            if seen.insert(e.email.clone()) {
                out.push(e);
            }
        };
        let mut members = 0usize;
        for user in self.users.iter() {
            members += 1;
            if !on_main_domain(&user.email) {
                continue;
            }
            if let Some(state) = person_state(&user.email) {
                let h = hash(&user.email) % 100;
                let assigned = state.is_active() && !(20..23).contains(&h);
                add(entry(&user.email, state, assigned, now), &mut out);
            }
        }
        for invite in self.invites.iter() {
            if invite.status != "pending" || !on_main_domain(&invite.email) {
                continue;
            }
            if let Some(state) = person_state(&invite.email) {
                add(entry(&invite.email, state, false, now), &mut out);
            }
        }
        for former in &self.former_members {
            if on_main_domain(&former.email) {
                let mut e = entry(&former.email, DirectoryState::Deprovisioned, false, now);
                e.state_changed = former.removed_at.min(now).trunc_subsecs(0);
                add(e, &mut out);
            }
        }
        for n in 0..members / 10 {
            let email = format!("dir.only.{n}@{MAIN_DOMAIN}");
            add(entry(&email, DirectoryState::Active, false, now), &mut out);
        }
        out.sort_by(|a, b| a.email.cmp(&b.email));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeedSizes;

    #[test]
    fn the_directory_has_every_kind_of_person_and_is_stable() {
        let now = "2026-06-01T00:00:00Z".parse().unwrap();
        let state = SimState::seeded(
            7,
            SeedSizes {
                members: 400,
                invites: 60,
                ..SeedSizes::default()
            },
            now,
        );
        let dir = state.directory();
        assert_eq!(dir, state.directory());
        let count = |s: DirectoryState| dir.iter().filter(|e| e.state == s).count();
        assert!(count(DirectoryState::Active) > 0);
        assert!(count(DirectoryState::Deprovisioned) > 0);
        assert!(dir.iter().any(|e| !e.aliases.is_empty()));
        assert!(dir.iter().any(|e| e.assigned));
        assert!(dir.iter().all(|e| on_main_domain(&e.email)));
        let listed = |email: &str| {
            let email = email.to_lowercase();
            dir.iter()
                .any(|e| e.email == email || e.aliases.contains(&email))
        };
        let absent = state
            .users
            .iter()
            .filter(|u| on_main_domain(&u.email) && !listed(&u.email))
            .count();
        assert!(absent > 0, "some members are unknown to the directory");
    }
}
