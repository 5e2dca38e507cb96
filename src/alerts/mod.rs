//! Immediate alerts: what an alert says (pure, here and in `payload`) and how it reaches a
//! channel (`deliver`, the only part that speaks HTTP to a receiver).
//!
//! After each audit cycle the jobs turn new findings at or above `[alerts] min_severity`, a
//! tripped remediation guard, failed actions, a failing snapshot streak and stale data into
//! [`Alert`]s, each with a dedup key naming its occurrence, and store one row per channel in the
//! alert outbox. Delivery reads the due rows of a channel and sends them as one message (a
//! digest when more than `max_per_message` are due), rendered for the channel's type.

pub mod deliver;
mod notice;
mod payload;

pub use notice::{owner_notices, render_notice, OwnerNotice};
pub use payload::{
    render_email, render_slack, render_teams, render_webhook, summary, Alert, AlertEvent, OrgRef,
    WEBHOOK_VERSION,
};
