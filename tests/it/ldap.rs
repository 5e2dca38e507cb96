//! The LDAP source against a real OpenLDAP `slapd` (the harness in `slapd.rs`: a child process
//! with TLS, loaded with the seeded simulator directory, [`SimState::directory`]): every disabled
//! rule, LDAPS and StartTLS, paging, refusals and a stopped server.

use chrono::{DateTime, Utc};
use orgwarden::config::LdapDisabledRule;
use orgwarden::directory::ldap;
use orgwarden::org::{DirectoryListing, DirectoryPerson, DirectoryStatus};
use orgwarden_sim::{DirectoryEntry, DirectoryState, SeedSizes, SimState};
use secrecy::SecretString;

use crate::helpers::wall_now;
use crate::slapd::{changed, dn, Slapd, READER_DN, UNPAGED_LIMIT};

impl Slapd {
    /// The listing a read under `rule` must return: everyone but the deleted, by DN.
    pub fn expected(&self, rule: &LdapDisabledRule) -> DirectoryListing {
        let people = self
            .entries
            .iter()
            .filter(|e| e.state != DirectoryState::Deleted)
            .map(|e| {
                let (status, status_since) = expected_status(e, rule);
                DirectoryPerson {
                    id: dn(e),
                    email: e.email.clone(),
                    aliases: e.aliases.clone(),
                    status,
                    status_since,
                }
            })
            .collect();
        DirectoryListing {
            people,
            assigned: None,
        }
    }
}

fn expected_status(
    entry: &DirectoryEntry,
    rule: &LdapDisabledRule,
) -> (DirectoryStatus, Option<DateTime<Utc>>) {
    let off = |word: &str| DirectoryStatus::Disabled(word.to_owned());
    match (rule, entry.state) {
        (LdapDisabledRule::ActiveDirectory, state) if state != DirectoryState::Active => {
            (off("userAccountControl:0x2"), None)
        }
        (LdapDisabledRule::PwdAccountLockedTime, DirectoryState::Suspended) => {
            (off("pwdAccountLockedTime"), None)
        }
        (LdapDisabledRule::PwdAccountLockedTime, DirectoryState::LockedOut) => {
            (off("pwdAccountLockedTime"), Some(changed(entry)))
        }
        (LdapDisabledRule::ShadowExpire, DirectoryState::Deprovisioned) => (
            off("shadowExpire"),
            entry
                .state_changed
                .date_naive()
                .and_hms_opt(0, 0, 0)
                .map(|t| t.and_utc()),
        ),
        _ => (DirectoryStatus::Active, None),
    }
}

/// A seeded organization large enough to hold every directory state.
fn seeded() -> SimState {
    SimState::seeded(
        17,
        SeedSizes {
            members: 300,
            invites: 40,
            ..SeedSizes::default()
        },
        wall_now(),
    )
}

fn sorted(mut listing: DirectoryListing) -> DirectoryListing {
    listing.people.sort_by(|a, b| a.id.cmp(&b.id));
    listing
}

#[tokio::test]
async fn an_ldaps_read_lists_the_seeded_people_with_their_locks() {
    let slapd = Slapd::start(&seeded());
    let count = |s: DirectoryState| slapd.entries.iter().filter(|e| e.state == s).count();
    assert!(count(DirectoryState::Suspended) > 0 && count(DirectoryState::LockedOut) > 0);
    assert!(slapd.entries.iter().any(|e| !e.aliases.is_empty()));
    assert!(slapd.entries.len() > UNPAGED_LIMIT);
    let rule = LdapDisabledRule::PwdAccountLockedTime;
    let listing = ldap::read(
        "corp-ldap",
        &slapd.settings(&slapd.ldaps_url, rule.clone()),
        wall_now().date_naive(),
    )
    .await
    .unwrap();
    assert_eq!(sorted(listing), sorted(slapd.expected(&rule)));
}

#[tokio::test]
async fn a_starttls_read_lists_the_seeded_people_with_their_expiry() {
    let slapd = Slapd::start(&seeded());
    assert!(slapd
        .entries
        .iter()
        .any(|e| e.state == DirectoryState::Deprovisioned));
    let rule = LdapDisabledRule::ShadowExpire;
    let settings = slapd.settings(&slapd.ldap_url, rule.clone());
    assert!(settings.starttls);
    let listing = ldap::read("corp-ldap", &settings, wall_now().date_naive())
        .await
        .unwrap();
    assert_eq!(sorted(listing), sorted(slapd.expected(&rule)));
}

#[tokio::test]
async fn small_pages_return_everyone_once() {
    let slapd = Slapd::start(&seeded());
    let rule = LdapDisabledRule::ActiveDirectory;
    let mut settings = slapd.settings(&slapd.ldaps_url, rule.clone());
    settings.page_size = 7;
    let listing = ldap::read("corp-ldap", &settings, wall_now().date_naive())
        .await
        .unwrap();
    let mut ids: Vec<&str> = listing.people.iter().map(|p| p.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), listing.people.len(), "someone listed twice");
    assert!(listing.people.len() > 7 * 3);
    assert_eq!(sorted(listing), sorted(slapd.expected(&rule)));
}

#[tokio::test]
async fn a_wrong_password_is_a_clear_error_without_the_password() {
    let slapd = Slapd::start(&seeded());
    let mut settings = slapd.settings(&slapd.ldaps_url, LdapDisabledRule::ShadowExpire);
    let wrong = "Wrong-Password-91c2";
    settings.bind_password = SecretString::from(wrong);
    let error = ldap::read("corp-ldap", &settings, wall_now().date_naive())
        .await
        .unwrap_err();
    let text = error.to_string();
    assert_eq!(error.source, "corp-ldap");
    assert!(text.contains("invalid credentials"), "{text}");
    assert!(text.contains(READER_DN), "{text}");
    assert!(!text.contains(wrong), "{text}");
    assert!(!format!("{error:?}").contains(wrong));
}

#[tokio::test]
async fn an_untrusted_certificate_is_refused() {
    let slapd = Slapd::start(&seeded());
    for url in [&slapd.ldaps_url, &slapd.ldap_url] {
        let mut settings = slapd.settings(url, LdapDisabledRule::ShadowExpire);
        settings.ca_file = None;
        let error = ldap::read("corp-ldap", &settings, wall_now().date_naive())
            .await
            .unwrap_err();
        assert!(error.to_string().contains("not trusted"), "{error}");
        // Another CA's certificate does not help either.
        let other = crate::mail::pki();
        settings.ca_file = Some(other.ca_pem.clone());
        let error = ldap::read("corp-ldap", &settings, wall_now().date_naive())
            .await
            .unwrap_err();
        assert!(error.to_string().contains("not trusted"), "{error}");
    }
}

#[tokio::test]
async fn a_stopped_server_is_an_error() {
    let mut slapd = Slapd::start(&seeded());
    let settings = slapd.settings(&slapd.ldaps_url, LdapDisabledRule::ShadowExpire);
    ldap::read("corp-ldap", &settings, wall_now().date_naive())
        .await
        .unwrap();
    slapd.stop();
    let error = ldap::read("corp-ldap", &settings, wall_now().date_naive())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("cannot connect"), "{error}");
}
