//! The period a report covers and what the job knows about it beyond the findings: failed
//! snapshots, staleness, the waiting remediation plan, the time zone. Still pure data: the job
//! gathers it, the renderer reads it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

/// A snapshot (or audit) that failed during the period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodFailure {
    /// `snapshot run 12`, `audit of run 12`.
    pub what: String,
    pub at: DateTime<Utc>,
    pub error: String,
}

/// One remediation action of the current plan that has not been carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingAction {
    /// Fingerprint of the finding behind it.
    pub finding: String,
    /// The action id (`deactivate_key`, ...).
    pub action: String,
    pub subject: String,
    /// When every time-bound guard (grace) will have passed; `None` when unknown.
    pub eligible_at: Option<DateTime<Utc>>,
    /// The guards that hold it back, as `guard: detail`, joined by `; ` (empty when none). The
    /// mode is not among them: the report names it once.
    pub blocked_by: String,
    /// True when only time (grace) holds it back: in `enforce` orgwarden carries it out by
    /// itself at `eligible_at`; in a dry run it would.
    pub will_act: bool,
}

impl WaitingAction {
    /// The actions of `plan` that are waiting: every action a dry run would carry out, or, in
    /// `enforce`, every opted-in action not yet done (eligible ones run at the next audit,
    /// those held by grace when it ends, the rest need a person). Nothing in `off`.
    pub fn from_plan(plan: &crate::remediate::Plan) -> Vec<WaitingAction> {
        use crate::config::RemediationMode;
        use crate::remediate::Guard;
        if plan.mode == RemediationMode::Off {
            return Vec::new();
        }
        plan.actions
            .iter()
            .filter(|a| {
                !a.verdicts.iter().any(|v| {
                    !v.pass
                        && matches!(
                            v.guard,
                            Guard::OptIn | Guard::Exemption | Guard::AlreadyDone
                        )
                })
            })
            .map(|a| {
                let failing: Vec<_> = a
                    .verdicts
                    .iter()
                    .filter(|v| !v.pass && v.guard != Guard::Mode)
                    .collect();
                WaitingAction {
                    finding: a.finding.clone(),
                    action: a.action.as_str().to_owned(),
                    subject: a.subject.clone(),
                    eligible_at: Some(a.eligible_at),
                    blocked_by: failing
                        .iter()
                        .map(|v| format!("{}: {}", v.guard, v.detail))
                        .collect::<Vec<_>>()
                        .join("; "),
                    will_act: failing.iter().all(|v| v.guard == Guard::Grace),
                }
            })
            .collect()
    }
}

/// Everything a report needs besides [`super::ReportInput`].
#[derive(Debug, Clone, Copy)]
pub struct ReportContext<'a> {
    /// Start of the period: the snapshot of the previous sent report, or `--since`. `None` for
    /// the first report.
    pub period_start: Option<DateTime<Utc>>,
    /// Snapshots and audits that failed during the period, oldest first.
    pub failures: &'a [PeriodFailure],
    /// The time between two scheduled audits; the data is stale when the latest complete
    /// snapshot is older than twice this.
    pub audit_period: Option<chrono::Duration>,
    /// `schedule.timezone`: every time in the email and the CSVs is shown in it.
    pub timezone: chrono_tz::Tz,
    /// The remediation plan of the latest snapshot, actions not yet carried out.
    pub plan: &'a [WaitingAction],
    /// `remediation.mode` (`off`, `dry-run`, `enforce`).
    pub mode: &'a str,
    /// Emails by user id, current and former members (from history), for orphaned keys and
    /// changes.
    pub emails: &'a HashMap<String, String>,
    /// `report.csv_bom`: start every CSV with a UTF-8 byte order mark.
    pub csv_bom: bool,
}

/// An empty map, for contexts that know no emails.
pub fn no_emails() -> &'static HashMap<String, String> {
    static EMPTY: std::sync::OnceLock<HashMap<String, String>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(HashMap::new)
}

impl ReportContext<'static> {
    /// A context with nothing known beyond the input: UTC, no failures, no plan.
    pub fn basic(period_start: Option<DateTime<Utc>>) -> ReportContext<'static> {
        ReportContext {
            period_start,
            failures: &[],
            audit_period: None,
            timezone: chrono_tz::UTC,
            plan: &[],
            mode: "off",
            emails: no_emails(),
            csv_bom: true,
        }
    }
}

/// A readable label for a rule id (the CSVs keep the id).
pub fn rule_label(rule: &str) -> String {
    match rule {
        "stale_invites" => "Stale invite".to_owned(),
        "departed_domains" => "Departed domain".to_owned(),
        "offboarding_roster" => "Left the company (roster)".to_owned(),
        "orphaned_keys" => "Key of a former member".to_owned(),
        "unattributed_keys" => "Key with no owner".to_owned(),
        "excess_admins" => "Too many admins".to_owned(),
        "privilege_escalation" => "Became admin".to_owned(),
        "dormant_keys" => "Unused key".to_owned(),
        "dormant_members" => "Unused seat".to_owned(),
        "key_hygiene" => "Key hygiene".to_owned(),
        "directory_departed" => "Left the company (directory)".to_owned(),
        "directory_unknown" => "Unknown to the directory".to_owned(),
        "assignment_drift" => "Identity provider assignment drift".to_owned(),
        "remediation_guard" => "Remediation stopped by a guard".to_owned(),
        other => other.replace('_', " "),
    }
}

/// A readable label for an action id.
pub fn action_label(action: &str) -> String {
    match action {
        "delete_invite" => "Delete invite".to_owned(),
        "deactivate_key" => "Deactivate key".to_owned(),
        "remove_member" => "Remove member".to_owned(),
        "remove_workspace_member" => "Remove from workspace".to_owned(),
        "review" => "Review".to_owned(),
        other => other.replace('_', " "),
    }
}

/// What a person can do about a failure, from its error text.
pub fn failure_fix(error: &str) -> &'static str {
    let lower = error.to_ascii_lowercase();
    if lower.contains("401") || lower.contains("unauthorized") || lower.contains("authentication") {
        "the Admin API refused the key: put a valid admin key in the file api.admin_key_file names, then run `orgwarden snapshot`"
    } else if lower.contains("403") || lower.contains("forbidden") || lower.contains("permission") {
        "the key lacks permission: use an admin key of this organization"
    } else if lower.contains("429") || lower.contains("rate") {
        "the API rate-limited orgwarden: lower api.max_in_flight or audit less often"
    } else if lower.contains("timed out") || lower.contains("timeout") || lower.contains("connect")
    {
        "the API could not be reached: check the network and api.base_url"
    } else {
        "see `orgwarden status` and the service journal (journalctl -u orgwarden)"
    }
}
