//! Row types of the audit, remediation and outbox tables, shared with the report renderer.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Severity;
use crate::policy::{Action, SubjectKind};

/// Where a finding is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingStatus {
    /// Seen for the first time by this audit.
    New,
    /// Seen before and still there.
    Open,
    /// Seen before and gone now.
    Resolved,
    /// Still there, but an `[[exemptions]]` entry covers it.
    Exempted,
}

impl FindingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingStatus::New => "new",
            FindingStatus::Open => "open",
            FindingStatus::Resolved => "resolved",
            FindingStatus::Exempted => "exempted",
        }
    }

    pub fn parse(text: &str) -> Option<FindingStatus> {
        match text {
            "new" => Some(FindingStatus::New),
            "open" => Some(FindingStatus::Open),
            "resolved" => Some(FindingStatus::Resolved),
            "exempted" => Some(FindingStatus::Exempted),
            _ => None,
        }
    }

    /// Still needs attention (new or open).
    pub fn is_active(self) -> bool {
        matches!(self, FindingStatus::New | FindingStatus::Open)
    }
}

/// A finding as the store tracks it across audits. Serialised with exactly the field names of
/// the audit's JSON output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FindingRecord {
    pub rule: String,
    pub severity: Severity,
    pub subject_kind: SubjectKind,
    pub subject_id: String,
    pub subject: String,
    pub evidence: String,
    pub action: Action,
    pub status: FindingStatus,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub controls: Vec<String>,
}

impl FindingRecord {
    /// `rule:subject_kind:subject_id`, the same as [`crate::policy::Finding::fingerprint`].
    pub fn fingerprint(&self) -> String {
        crate::policy::fingerprint(&self.rule, self.subject_kind, &self.subject_id)
    }
}

/// Where a remediation action is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ActionStatus {
    /// Written before the call; a `planned` row found later means the process stopped mid-way.
    Planned,
    Succeeded,
    Failed,
    Skipped,
}

impl ActionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionStatus::Planned => "planned",
            ActionStatus::Succeeded => "succeeded",
            ActionStatus::Failed => "failed",
            ActionStatus::Skipped => "skipped",
        }
    }

    pub fn parse(text: &str) -> Option<ActionStatus> {
        match text {
            "planned" => Some(ActionStatus::Planned),
            "succeeded" => Some(ActionStatus::Succeeded),
            "failed" => Some(ActionStatus::Failed),
            "skipped" => Some(ActionStatus::Skipped),
            _ => None,
        }
    }
}

/// One row of the remediation audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ActionRecord {
    pub id: i64,
    /// The snapshot run the plan was made from.
    pub run_id: i64,
    /// `delete_invite`, `deactivate_key`, `remove_member`, `remove_workspace_member`.
    pub action: Action,
    pub subject_kind: SubjectKind,
    pub subject_id: String,
    pub subject: String,
    /// Fingerprint of the finding behind the action.
    pub finding: String,
    pub status: ActionStatus,
    /// Why it was skipped or failed, or what the call returned.
    pub reason: Option<String>,
    pub http_status: Option<u16>,
    pub request_id: Option<String>,
    /// The object as read right before the call, as JSON.
    pub before: Option<String>,
    pub planned_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}
