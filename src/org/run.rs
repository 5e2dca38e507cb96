//! The record of one snapshot run.

use chrono::{DateTime, Utc};

use super::Counts;

/// The outcome of a snapshot run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Complete,
    Failed,
    Abandoned,
}

impl RunStatus {
    pub fn parse(text: &str) -> RunStatus {
        match text {
            "running" => RunStatus::Running,
            "complete" => RunStatus::Complete,
            "failed" => RunStatus::Failed,
            _ => RunStatus::Abandoned,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Complete => "complete",
            RunStatus::Failed => "failed",
            RunStatus::Abandoned => "abandoned",
        }
    }
}

/// One row of `runs`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRecord {
    pub id: i64,
    pub status: RunStatus,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub org_id: Option<String>,
    pub org_name: Option<String>,
    pub counts: Option<Counts>,
    pub requests: Option<u64>,
    pub retries: Option<u64>,
    /// The number of `admin`/`primary_owner` members (complete runs).
    pub admins: Option<u64>,
    /// Why the snapshot cannot be what the organization looks like (no members, no admin): it
    /// is kept, but never trusted as a baseline nor acted on unless accepted.
    pub suspect: Option<String>,
    /// Who accepted this snapshot as the baseline (`cleanup --accept-baseline`), and when.
    pub accepted_by: Option<String>,
    pub accepted_at: Option<DateTime<Utc>>,
}
