//! What the organization's usage data says about who used what, as the usage rules read it.
//!
//! The audit job builds a [`UsageView`] from the daily aggregates the store keeps (ingested from
//! the messages usage report grouped by `api_key_id`/`account_id` and from the Claude Code
//! report); [`super::PolicyInput::usage`] carries it to the rules. `None` there, or a view whose
//! [`UsageView::failure`] is set, leaves the usage rules `not_evaluated`: missing data is never
//! read as "no usage".

use std::collections::HashMap;

use chrono::NaiveDate;

/// Last-use dates, per key and per person, over the days the store covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageView {
    /// The first UTC day the store holds usage for (the backfill start). Nothing is known of
    /// usage before it: a key idle since before this day is "not used since at least DATE".
    pub covered_from: Option<NaiveDate>,
    /// The last UTC day fetched (the current day while it is not over).
    pub covered_to: Option<NaiveDate>,
    /// Why the last ingest failed, when it did; the usage rules are then `not_evaluated`.
    pub failure: Option<String>,
    /// The last day with any messages usage, by API key id.
    pub key_last_used: HashMap<String, NaiveDate>,
    /// The last day with any messages usage attributed to a person, by account (user) id.
    pub account_last_api: HashMap<String, NaiveDate>,
    /// The last day with Claude Code activity, by lower-cased email address.
    pub claude_code_last_active: HashMap<String, NaiveDate>,
}
