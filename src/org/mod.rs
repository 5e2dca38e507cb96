//! The domain model: the organization as orgwarden reasons about it.
//!
//! `admin_api` maps its wire models into these types, `store` reads and writes them, and the
//! pure layers (`policy`, `remediate`'s plan, `report`, `output`) work on them alone. This module
//! imports nothing from the rest of the crate.

pub mod directory;
pub mod model;
mod run;
mod state;

use chrono::{DateTime, SecondsFormat, Utc};

pub use directory::{DirectoryListing, DirectoryPerson, DirectoryStatus};
pub use model::{
    Actor, ApiKey, ApiKeyStatus, Invite, InviteStatus, KeyOwner, KeyScope, OrgRole, Organization,
    Principal, User, Workspace, WorkspaceMember, WorkspaceRole,
};
pub use run::{RunRecord, RunStatus};
pub use state::{diff, members_by_id, Change, ChangeKind, ObjectKind, OrgState};

/// Counts of each kind of entity in one snapshot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub members: u64,
    pub invites: u64,
    pub workspaces: u64,
    pub workspace_members: u64,
    pub api_keys: u64,
}

/// A timestamp as the store and the reports write it: RFC 3339, microseconds, `Z`.
pub fn ts(time: &DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The two fixed UTC forms read by the hundred thousand, field by field: what [`ts`] writes
/// (`2026-11-30T08:00:00.123456Z`, 27 bytes) and whole seconds (`2026-11-30T08:00:00Z`, 20
/// bytes, as identity providers write them). The general RFC 3339 parser costs several times
/// more; anything else (another offset, other fractions, no valid date or time) is `None`, for
/// the caller to hand to that parser.
pub fn parse_fixed_utc(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    let micros = match (b.len(), b.last()) {
        (20, Some(b'Z')) => false,
        (27, Some(b'Z')) if b[19] == b'.' => true,
        _ => return None,
    };
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        b[range].iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let date =
        chrono::NaiveDate::from_ymd_opt(i32::try_from(num(0..4)?).ok()?, num(5..7)?, num(8..10)?)?;
    let fraction = if micros { num(20..26)? } else { 0 };
    let time =
        chrono::NaiveTime::from_hms_micro_opt(num(11..13)?, num(14..16)?, num(17..19)?, fraction)?;
    Some(date.and_time(time).and_utc())
}
