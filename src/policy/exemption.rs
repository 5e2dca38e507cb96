//! An exemption (`[[exemptions]]`): a member, invite or key whose findings are still listed but
//! marked `exempted`, for a stated reason and possibly until a given day. `config` validates and
//! builds them; the rules match findings against them.
//!
//! A leaf: it imports nothing from the crate, so `config` can build it without depending on the
//! rest of `policy`.

use chrono::NaiveDate;

/// What an exemption matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExemptionMatch {
    /// A member (or invite) email, compared case-insensitively.
    Email(String),
    KeyId(String),
    /// A glob over key names (`*` and `?`).
    KeyName(String),
}

#[derive(Debug, Clone)]
pub struct Exemption {
    pub matches: ExemptionMatch,
    pub reason: String,
    /// Last day the exemption holds (inclusive); `None` for ever.
    pub until: Option<NaiveDate>,
}
