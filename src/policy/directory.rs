//! The directory sources as the directory rules read them: one [`DirectoryView`] per configured
//! source, with what its latest usable read listed (and since when orgwarden has seen each
//! person so), or why there is none. The audit job builds them from the store;
//! [`super::PolicyInput::directories`] carries them to the rules.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::org::{DirectoryListing, DirectoryPerson, DirectoryStatus};

/// One directory source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryView {
    /// The source's configured name.
    pub name: String,
    /// The lower-cased domains it is authoritative for; empty means every domain (a CSV roster
    /// configured without domains).
    pub domains: Vec<String>,
    /// The read the rules use, or why there is none (the source failed, or was never read): its
    /// rules are then `not_evaluated` for its domains.
    pub read: Result<DirectoryRead, String>,
}

/// A complete read of a source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryRead {
    pub listing: DirectoryListing,
    /// When the read finished.
    pub read_at: DateTime<Utc>,
    /// By directory id: when orgwarden's reads first showed the person in their current status
    /// (the first read of the unbroken run of reads with that status).
    pub seen_since: HashMap<String, DateTime<Utc>>,
}

impl DirectoryView {
    /// True when the source lists active people as well as departed ones, so that an address
    /// it does not list is unknown to it. A roster (a CSV of departures) does not.
    pub fn lists_everyone(&self) -> bool {
        self.read.as_ref().is_ok_and(|read| {
            read.listing
                .people
                .iter()
                .any(|p| p.status == DirectoryStatus::Active)
        })
    }

    /// Whether the source is authoritative for `domain` (lower-cased), subdomains included.
    pub fn covers(&self, domain: &str) -> bool {
        self.domains.is_empty()
            || self.domains.iter().any(|d| {
                domain == d
                    || domain
                        .strip_suffix(d.as_str())
                        .is_some_and(|head| head.ends_with('.'))
            })
    }

    /// The reason its rules are not evaluated for its domains, when it has no read.
    pub fn failure(&self) -> Option<String> {
        let why = self.read.as_ref().err()?;
        let domains = if self.domains.is_empty() {
            "all domains".to_owned()
        } else {
            self.domains.join(", ")
        };
        Some(format!("directory {} ({domains}): {why}", self.name))
    }
}

/// `address.trim().to_lowercase()`, borrowed when that changes nothing (the usual case: the
/// sources store lower-cased addresses, and most members' emails are), so that judging every
/// member, invite and key owner allocates only for the few mixed-case addresses.
pub(super) fn normalized(address: &str) -> Cow<'_, str> {
    let trimmed = address.trim();
    if trimmed.is_ascii() && !trimmed.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Borrowed(trimmed)
    } else {
        Cow::Owned(trimmed.to_lowercase())
    }
}

/// The people of a read by every address (primary and aliases), lower-cased; the first person
/// listed wins an address two share. Hashed with foldhash (as the rules' other lookup maps):
/// every member, invite and key owner is looked up, several times.
pub(super) fn by_address(
    listing: &DirectoryListing,
) -> foldhash::HashMap<Cow<'_, str>, &DirectoryPerson> {
    let addresses = listing.people.iter().map(|p| 1 + p.aliases.len()).sum();
    let mut out = foldhash::HashMap::with_capacity_and_hasher(addresses, Default::default());
    for person in &listing.people {
        for address in std::iter::once(&person.email).chain(&person.aliases) {
            out.entry(normalized(address)).or_insert(person);
        }
    }
    out
}
