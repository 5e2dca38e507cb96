//! The compliance report: the pure rendering of one organization's audit into an email (subject,
//! plain text, HTML) and CSV attachments.
//!
//! **Invariant:** no I/O of any kind: no files, network, database, clock or environment. The
//! caller (the `report` job) gathers everything into a [`ReportInput`], `generated_at` included,
//! so the same input always renders the same bytes and every case can be table-tested. Sending
//! the result is the mail module's business; writing the CSVs to disk is the job's.
//!
//! Everything that came from the API or the store is user data and is treated as hostile:
//! - CSV cells go through [`crate::output::to_csv`] (RFC 4180, CRLF, formula neutralisation);
//!   they are complete, never truncated.
//! - The subject has no control characters and a capped length.
//! - The plain text replaces control characters, drops bidi controls and truncates long values.
//! - The HTML does the same, escapes `& < > " '` and wraps each value in `<bdi>` so that
//!   right-to-left text cannot reorder the layout around it.

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Severity;
use crate::org::{ApiKey, Invite, KeyOwner, User, Workspace, WorkspaceMember};
use crate::org::{Change, OrgState};
use crate::output::{self, Tabular};
use crate::policy::{ActionRecord, ActionStatus, FindingRecord, FindingStatus};
use crate::policy::{RuleOutcome, RuleStatus};

/// Everything one report is rendered from.
#[derive(Debug, Clone, Copy)]
pub struct ReportInput<'a> {
    /// The latest complete snapshot.
    pub state: &'a OrgState,
    /// Current findings (new, open, exempted) plus those resolved since the last report.
    pub findings: &'a [FindingRecord],
    /// One outcome per rule of the audit behind `findings`.
    pub rules: &'a [RuleOutcome],
    /// What changed since the previous report's snapshot (may be empty).
    pub changes: &'a [Change],
    /// When the previous report's snapshot was taken; `None` for the first report.
    pub changes_since: Option<DateTime<Utc>>,
    /// The remediation log since the last report (may be empty).
    pub actions: &'a [ActionRecord],
    /// How many findings the email lists (`report.top_findings`).
    pub top_n: usize,
    pub generated_at: DateTime<Utc>,
}

/// A rendered report, ready to hand to the mail transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedReport {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// `(file name, bytes)` of every CSV, in [`CSV_COLUMNS`] order.
    pub files: Vec<(String, Vec<u8>)>,
}

/// The counts the verdict line is made of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    pub new: usize,
    pub open: usize,
    pub resolved: usize,
    pub exempted: usize,
    /// Active (new or open) findings by severity.
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
}

impl Summary {
    /// Findings that still need attention: new plus open.
    pub fn active(&self) -> usize {
        self.new + self.open
    }
}

/// The columns of `api_keys.csv`: the columns of `show api-keys --format csv`, then the owner
/// as [`ApiKey::owner`] determines it and, when the owner is a current member, their email.
const KEY_COLUMNS: &[&str] = &[
    "id",
    "name",
    "status",
    "workspace_id",
    "created_at",
    "created_by_id",
    "created_by_type",
    "principal_type",
    "principal_user_id",
    "partial_key_hint",
    "expires_at",
    "owner_kind",
    "owner_id",
    "owner_email",
];

/// Every attached CSV, in attachment order, with its columns in order. Rows are sorted:
/// findings by severity (highest first), status, rule, subject; entities by id; changes in
/// [`crate::org::diff`] order; actions by id.
pub const CSV_COLUMNS: &[(&str, &[&str])] = &[
    ("findings.csv", <FindingRecord as Tabular>::COLUMNS),
    ("members.csv", <User as Tabular>::COLUMNS),
    ("invites.csv", <Invite as Tabular>::COLUMNS),
    ("api_keys.csv", KEY_COLUMNS),
    ("workspaces.csv", <Workspace as Tabular>::COLUMNS),
    (
        "workspace_members.csv",
        <WorkspaceMember as Tabular>::COLUMNS,
    ),
    ("changes.csv", <Change as Tabular>::COLUMNS),
    ("actions.csv", <ActionRecord as Tabular>::COLUMNS),
];

/// Longest organization name kept in the subject, in characters.
const SUBJECT_NAME_MAX: usize = 80;
/// Longest value shown in the HTML body, in characters (the CSVs have it whole).
const HTML_CELL_MAX: usize = 200;
/// Longest value shown in the plain-text body outside tables ([`output::table`] caps cells).
const TEXT_VALUE_MAX: usize = 200;

/// Renders the whole report.
pub fn render(input: &ReportInput<'_>) -> RenderedReport {
    let view = View::new(input);
    RenderedReport {
        subject: subject(input),
        text: view.text(),
        html: view.html(),
        files: csv_files(input),
    }
}

/// `[orgwarden] <org name>: N open findings`, N being new plus open.
pub fn subject(input: &ReportInput<'_>) -> String {
    let active = summarize(input.findings).active();
    format!(
        "[orgwarden] {}: {}",
        subject_name(input.state),
        plural(active, "open finding", "open findings")
    )
}

/// Counts findings by status, and active findings by severity.
pub fn summarize(findings: &[FindingRecord]) -> Summary {
    let mut summary = Summary::default();
    for finding in findings {
        match finding.status {
            FindingStatus::New => summary.new += 1,
            FindingStatus::Open => summary.open += 1,
            FindingStatus::Resolved => summary.resolved += 1,
            FindingStatus::Exempted => summary.exempted += 1,
        }
        if finding.status.is_active() {
            match finding.severity {
                Severity::Critical => summary.critical += 1,
                Severity::High => summary.high += 1,
                Severity::Medium => summary.medium += 1,
                Severity::Low => summary.low += 1,
            }
        }
    }
    summary
}

/// The one-line verdict the email leads with, e.g.
/// `3 new findings, 1 resolved, 12 open; 2 critical, 4 high`.
pub fn verdict(summary: &Summary) -> String {
    if summary.active() == 0 {
        return if summary.resolved == 0 {
            "No open findings.".to_owned()
        } else {
            format!(
                "No open findings; {} since the last report.",
                plural(summary.resolved, "finding resolved", "findings resolved")
            )
        };
    }
    let mut severe = Vec::new();
    if summary.critical > 0 {
        severe.push(format!("{} critical", summary.critical));
    }
    if summary.high > 0 {
        severe.push(format!("{} high", summary.high));
    }
    let severe = if severe.is_empty() {
        "none critical or high".to_owned()
    } else {
        severe.join(", ")
    };
    format!(
        "{}, {} resolved, {} open; {}",
        plural(summary.new, "new finding", "new findings"),
        summary.resolved,
        summary.active(),
        severe
    )
}

/// Every CSV attachment, named and ordered as in [`CSV_COLUMNS`]. An empty list still gives a
/// file with its header row.
pub fn csv_files(input: &ReportInput<'_>) -> Vec<(String, Vec<u8>)> {
    let state = input.state;

    let mut findings: Vec<&FindingRecord> = input.findings.iter().collect();
    findings.sort_by(|a, b| finding_order(a, b));

    let mut members: Vec<&User> = state.members.iter().collect();
    members.sort_by(|a, b| a.id.cmp(&b.id));
    let mut invites: Vec<&Invite> = state.invites.iter().collect();
    invites.sort_by(|a, b| a.id.cmp(&b.id));
    let emails: HashMap<&str, &str> = state
        .members
        .iter()
        .map(|m| (m.id.as_str(), m.email.as_str()))
        .collect();
    let mut keys: Vec<KeyRow<'_>> = state
        .api_keys
        .iter()
        .map(|key| KeyRow::new(key, &emails))
        .collect();
    keys.sort_by(|a, b| a.key.id.cmp(&b.key.id));
    let mut workspaces: Vec<&Workspace> = state.workspaces.iter().collect();
    workspaces.sort_by(|a, b| a.id.cmp(&b.id));
    let mut memberships: Vec<&WorkspaceMember> = state.workspace_members.iter().collect();
    memberships.sort_by(|a, b| (&a.workspace_id, &a.user_id).cmp(&(&b.workspace_id, &b.user_id)));
    let mut actions: Vec<&ActionRecord> = input.actions.iter().collect();
    actions.sort_by_key(|a| a.id);

    let bodies = [
        output::to_csv(&findings),
        output::to_csv(&members),
        output::to_csv(&invites),
        output::to_csv(&keys),
        output::to_csv(&workspaces),
        output::to_csv(&memberships),
        output::to_csv(input.changes),
        output::to_csv(&actions),
    ];
    CSV_COLUMNS
        .iter()
        .zip(bodies)
        .map(|((name, _), body)| ((*name).to_owned(), body))
        .collect()
}

/// One row of `api_keys.csv`.
#[derive(Serialize)]
struct KeyRow<'a> {
    #[serde(flatten)]
    key: &'a ApiKey,
    owner_kind: &'static str,
    owner_id: String,
    owner_email: String,
}

impl<'a> KeyRow<'a> {
    fn new(key: &'a ApiKey, emails: &HashMap<&str, &str>) -> KeyRow<'a> {
        let (owner_kind, owner_id) = match key.owner() {
            KeyOwner::User(id) => ("user", id.to_owned()),
            KeyOwner::NonPerson => ("non_person", String::new()),
            KeyOwner::Unattributed => ("unattributed", String::new()),
        };
        let owner_email = emails
            .get(owner_id.as_str())
            .map(|e| (*e).to_owned())
            .unwrap_or_default();
        KeyRow {
            key,
            owner_kind,
            owner_id,
            owner_email,
        }
    }
}

impl Tabular for KeyRow<'_> {
    const COLUMNS: &'static [&'static str] = KEY_COLUMNS;
    fn cells(&self) -> Vec<String> {
        let mut cells = self.key.cells();
        cells.extend([
            self.owner_kind.to_owned(),
            self.owner_id.clone(),
            self.owner_email.clone(),
        ]);
        cells
    }
}

// ---- Ordering and sanitising ------------------------------------------------------------------

fn status_rank(status: FindingStatus) -> u8 {
    match status {
        FindingStatus::New => 0,
        FindingStatus::Open => 1,
        FindingStatus::Exempted => 2,
        FindingStatus::Resolved => 3,
    }
}

/// Severity (highest first), then new before open before exempted before resolved, then rule,
/// subject and subject id.
fn finding_order(a: &FindingRecord, b: &FindingRecord) -> std::cmp::Ordering {
    b.severity
        .cmp(&a.severity)
        .then_with(|| status_rank(a.status).cmp(&status_rank(b.status)))
        .then_with(|| a.rule.cmp(&b.rule))
        .then_with(|| a.subject.cmp(&b.subject))
        .then_with(|| a.subject_id.cmp(&b.subject_id))
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Bidirectional formatting characters: embeddings, overrides, isolates and marks.
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// Characters that break a line or a layout: C0/C1 controls and the Unicode line and paragraph
/// separators.
fn is_breaking(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// A value fit for one line of the email body: bidi controls dropped, other control characters
/// shown as U+FFFD, at most `max` characters (the last one `…` when cut). Emoji and other
/// printable characters are kept as they are.
pub fn clean(text: &str, max: usize) -> String {
    let mut chars = text.chars().filter(|c| !is_bidi_control(*c)).map(|c| {
        if is_breaking(c) {
            '\u{FFFD}'
        } else {
            c
        }
    });
    let mut out = String::new();
    let mut count = 0;
    while let Some(c) = chars.next() {
        if count + 1 == max && chars.clone().next().is_some() {
            out.push('…');
            break;
        }
        if count == max {
            break;
        }
        out.push(c);
        count += 1;
    }
    out
}

/// HTML-escapes `& < > " '`.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A user-data value for HTML: cleaned, truncated, escaped and isolated in `<bdi>`.
fn html_value(text: &str) -> String {
    format!("<bdi>{}</bdi>", escape_html(&clean(text, HTML_CELL_MAX)))
}

/// The organization name for the subject line: no control or bidi characters, whitespace runs
/// collapsed, capped; the id when the name is empty.
fn subject_name(state: &OrgState) -> String {
    let squash = |text: &str| -> String {
        text.chars()
            .filter(|c| !is_bidi_control(*c))
            .map(|c| if is_breaking(c) { ' ' } else { c })
            .collect::<String>()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut name = squash(&state.organization.name);
    if name.is_empty() {
        name = squash(&state.organization.id);
    }
    if name.is_empty() {
        name = "organization".to_owned();
    }
    clean(&name, SUBJECT_NAME_MAX)
}

fn when(time: &DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M UTC").to_string()
}

// ---- The body ---------------------------------------------------------------------------------

/// One row of the counts table.
struct RuleRow {
    rule: String,
    status: String,
    /// Active findings by severity: critical, high, medium, low.
    by_severity: [usize; 4],
    new: usize,
    exempted: usize,
    resolved: usize,
}

impl RuleRow {
    fn active(&self) -> usize {
        self.by_severity.iter().sum()
    }

    fn cells(&self) -> Vec<String> {
        let mut cells = vec![self.rule.clone(), self.status.clone()];
        cells.extend(self.by_severity.iter().map(ToString::to_string));
        cells.extend([
            self.active().to_string(),
            self.new.to_string(),
            self.exempted.to_string(),
            self.resolved.to_string(),
        ]);
        cells
    }
}

const RULE_COLUMNS: &[&str] = &[
    "rule", "status", "critical", "high", "medium", "low", "open", "new", "exempted", "resolved",
];

const FINDING_COLUMNS: &[&str] = &[
    "severity", "status", "rule", "subject", "action", "evidence",
];

fn severity_index(severity: Severity) -> usize {
    match severity {
        Severity::Critical => 0,
        Severity::High => 1,
        Severity::Medium => 2,
        Severity::Low => 3,
    }
}

fn rule_status_label(status: &RuleStatus) -> &'static str {
    match status {
        RuleStatus::Evaluated => "evaluated",
        RuleStatus::Disabled => "disabled",
        RuleStatus::NotEvaluated(_) => "not evaluated",
    }
}

fn finding_cells(finding: &FindingRecord) -> Vec<String> {
    vec![
        finding.severity.as_str().to_owned(),
        finding.status.as_str().to_owned(),
        finding.rule.clone(),
        finding.subject.clone(),
        finding.action.as_str().to_owned(),
        finding.evidence.clone(),
    ]
}

/// What the text and HTML bodies share, computed once.
struct View<'a> {
    input: &'a ReportInput<'a>,
    summary: Summary,
    rules: Vec<RuleRow>,
    total: RuleRow,
    /// Active findings, most severe first.
    active: Vec<&'a FindingRecord>,
    new: Vec<&'a FindingRecord>,
    resolved: Vec<&'a FindingRecord>,
    /// `(kind, change)` → count, sorted.
    changes: BTreeMap<(&'static str, &'static str), usize>,
    /// Status → count, in a fixed order, zero counts left out.
    action_counts: Vec<(ActionStatus, usize)>,
    /// Actions that did not succeed: they need a person.
    failed_actions: Vec<&'a ActionRecord>,
}

impl<'a> View<'a> {
    fn new(input: &'a ReportInput<'a>) -> View<'a> {
        let mut sorted: Vec<&FindingRecord> = input.findings.iter().collect();
        sorted.sort_by(|a, b| finding_order(a, b));
        let pick = |keep: fn(FindingStatus) -> bool| -> Vec<&FindingRecord> {
            sorted.iter().copied().filter(|f| keep(f.status)).collect()
        };

        let mut rules: Vec<RuleRow> = input
            .rules
            .iter()
            .map(|outcome| RuleRow {
                rule: outcome.rule.to_string(),
                status: rule_status_label(&outcome.status).to_owned(),
                by_severity: [0; 4],
                new: 0,
                exempted: 0,
                resolved: 0,
            })
            .collect();
        for finding in input.findings {
            let idx = match rules.iter().position(|r| r.rule == finding.rule) {
                Some(idx) => idx,
                None => {
                    // A rule the outcomes do not list (an older audit's finding, resolved since).
                    rules.push(RuleRow {
                        rule: finding.rule.clone(),
                        status: String::new(),
                        by_severity: [0; 4],
                        new: 0,
                        exempted: 0,
                        resolved: 0,
                    });
                    rules.len() - 1
                }
            };
            let row = &mut rules[idx];
            match finding.status {
                FindingStatus::New => {
                    row.new += 1;
                    row.by_severity[severity_index(finding.severity)] += 1;
                }
                FindingStatus::Open => row.by_severity[severity_index(finding.severity)] += 1,
                FindingStatus::Exempted => row.exempted += 1,
                FindingStatus::Resolved => row.resolved += 1,
            }
        }
        let mut total = RuleRow {
            rule: "total".to_owned(),
            status: String::new(),
            by_severity: [0; 4],
            new: 0,
            exempted: 0,
            resolved: 0,
        };
        for row in &rules {
            for (sum, n) in total.by_severity.iter_mut().zip(row.by_severity) {
                *sum += n;
            }
            total.new += row.new;
            total.exempted += row.exempted;
            total.resolved += row.resolved;
        }

        let mut changes = BTreeMap::new();
        for change in input.changes {
            *changes.entry((change.kind, change.change)).or_insert(0) += 1;
        }

        let action_counts = [
            ActionStatus::Succeeded,
            ActionStatus::Failed,
            ActionStatus::Skipped,
            ActionStatus::Planned,
        ]
        .into_iter()
        .map(|status| {
            let n = input.actions.iter().filter(|a| a.status == status).count();
            (status, n)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
        let mut failed_actions: Vec<&ActionRecord> = input
            .actions
            .iter()
            .filter(|a| matches!(a.status, ActionStatus::Failed | ActionStatus::Planned))
            .collect();
        failed_actions.sort_by_key(|a| a.id);

        View {
            input,
            summary: summarize(input.findings),
            active: pick(FindingStatus::is_active),
            new: pick(|s| s == FindingStatus::New),
            resolved: pick(|s| s == FindingStatus::Resolved),
            rules,
            total,
            changes,
            action_counts,
            failed_actions,
        }
    }

    fn not_evaluated(&self) -> Vec<(&'static str, &'a str)> {
        self.input
            .rules
            .iter()
            .filter_map(|o| o.status.reason().map(|reason| (o.rule.as_str(), reason)))
            .collect()
    }

    fn disabled(&self) -> Vec<&'static str> {
        self.input
            .rules
            .iter()
            .filter(|o| o.status == RuleStatus::Disabled)
            .map(|o| o.rule.as_str())
            .collect()
    }

    fn inventory(&self) -> String {
        let s = self.input.state;
        let pending = s
            .invites
            .iter()
            .filter(|i| i.status.as_str() == "pending")
            .count();
        let active_keys = s
            .api_keys
            .iter()
            .filter(|k| k.status.as_str() == "active")
            .count();
        format!(
            "{}, {} ({} pending), {}, {}, {} ({} active)",
            plural(s.members.len(), "member", "members"),
            plural(s.invites.len(), "invite", "invites"),
            pending,
            plural(s.workspaces.len(), "workspace", "workspaces"),
            plural(
                s.workspace_members.len(),
                "workspace membership",
                "workspace memberships"
            ),
            plural(s.api_keys.len(), "API key", "API keys"),
            active_keys,
        )
    }

    fn changes_heading(&self) -> String {
        match self.input.changes_since {
            Some(since) => format!(
                "{} since the previous report's snapshot of {}",
                plural(self.input.changes.len(), "change", "changes"),
                when(&since)
            ),
            None => "No previous report: changes are listed from the next report on".to_owned(),
        }
    }

    fn actions_line(&self) -> String {
        if self.input.actions.is_empty() {
            return "No remediation actions since the last report.".to_owned();
        }
        let parts: Vec<String> = self
            .action_counts
            .iter()
            .map(|(status, n)| format!("{n} {}", status.as_str()))
            .collect();
        format!(
            "{}: {}.",
            plural(
                self.input.actions.len(),
                "remediation action",
                "remediation actions"
            ),
            parts.join(", ")
        )
    }

    fn attachments_line(&self) -> String {
        let names: Vec<&str> = CSV_COLUMNS.iter().map(|(name, _)| *name).collect();
        format!(
            "Attached (UTF-8 CSV, complete values): {}.",
            names.join(", ")
        )
    }

    /// `(heading, findings shown, findings in all)` of the finding lists.
    fn finding_sections(&self) -> Vec<(String, &[&'a FindingRecord], usize)> {
        let top = self.input.top_n;
        vec![
            (
                if self.active.len() > top {
                    format!("Open findings, top {top} by severity")
                } else {
                    "Open findings, most severe first".to_owned()
                },
                &self.active[..self.active.len().min(top)],
                self.active.len(),
            ),
            (
                "New since the last report".to_owned(),
                &self.new[..self.new.len().min(top)],
                self.new.len(),
            ),
            (
                "Resolved since the last report".to_owned(),
                &self.resolved[..self.resolved.len().min(top)],
                self.resolved.len(),
            ),
        ]
    }

    // ---- Plain text ---------------------------------------------------------------------------

    fn text(&self) -> String {
        let input = self.input;
        let state = input.state;
        let table = |columns: &[&str], rows: Vec<Vec<String>>| -> String {
            let rows = rows
                .into_iter()
                .map(|row| row.iter().map(|c| clean(c, TEXT_VALUE_MAX)).collect())
                .collect();
            output::table(columns, rows)
        };
        let mut out = String::new();
        let _ = writeln!(out, "{}", verdict(&self.summary));
        out.push('\n');
        let _ = writeln!(
            out,
            "Organization: {} ({})",
            clean(&state.organization.name, TEXT_VALUE_MAX),
            clean(&state.organization.id, TEXT_VALUE_MAX)
        );
        let _ = writeln!(
            out,
            "Snapshot:     run {}, taken {}",
            state.run_id,
            when(&state.taken_at)
        );
        let _ = writeln!(out, "Generated:    {}", when(&input.generated_at));
        let _ = writeln!(out, "Inventory:    {}", self.inventory());
        out.push('\n');

        let _ = writeln!(out, "FINDINGS BY RULE (open = new + open; by severity)");
        let mut rows: Vec<Vec<String>> = self.rules.iter().map(RuleRow::cells).collect();
        rows.push(self.total.cells());
        out.push_str(&table(RULE_COLUMNS, rows));

        let not_evaluated = self.not_evaluated();
        if !not_evaluated.is_empty() {
            out.push('\n');
            let _ = writeln!(
                out,
                "NOT EVALUATED (their findings are missing from this report)"
            );
            for (rule, reason) in not_evaluated {
                let _ = writeln!(out, "- {rule}: {}", clean(reason, TEXT_VALUE_MAX));
            }
        }
        let disabled = self.disabled();
        if !disabled.is_empty() {
            let _ = writeln!(out, "Disabled rules: {}", disabled.join(", "));
        }

        for (heading, shown, all) in self.finding_sections() {
            out.push('\n');
            let _ = writeln!(out, "{} ({all})", heading.to_uppercase());
            if all == 0 {
                out.push_str("(none)\n");
                continue;
            }
            if !shown.is_empty() {
                let rows = shown.iter().map(|f| finding_cells(f)).collect();
                out.push_str(&table(FINDING_COLUMNS, rows));
            }
            if all > shown.len() {
                let _ = writeln!(out, "… and {} more in findings.csv", all - shown.len());
            }
        }

        out.push('\n');
        let _ = writeln!(out, "CHANGES: {}", self.changes_heading());
        if !self.changes.is_empty() {
            let rows = self
                .changes
                .iter()
                .map(|((kind, change), n)| {
                    vec![(*kind).to_owned(), (*change).to_owned(), n.to_string()]
                })
                .collect();
            out.push_str(&table(&["kind", "change", "count"], rows));
        }

        out.push('\n');
        let _ = writeln!(out, "REMEDIATION: {}", self.actions_line());
        if !self.failed_actions.is_empty() {
            let rows = self
                .failed_actions
                .iter()
                .map(|a| action_cells(a))
                .collect();
            out.push_str(&table(ACTION_COLUMNS, rows));
        }

        out.push('\n');
        let _ = writeln!(out, "{}", self.attachments_line());
        out
    }

    // ---- HTML ---------------------------------------------------------------------------------

    fn html(&self) -> String {
        let input = self.input;
        let state = input.state;
        let mut out = String::new();
        out.push_str("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">");
        let _ = write!(
            out,
            "<title>orgwarden report: {}</title>",
            escape_html(&clean(&state.organization.name, HTML_CELL_MAX))
        );
        out.push_str(
            "</head>\n<body style=\"font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;\
             font-size:14px;color:#222;line-height:1.4\">\n",
        );
        let colour = if self.summary.critical > 0 {
            "#b00020"
        } else if self.summary.active() > 0 {
            "#b35c00"
        } else {
            "#1b7a3a"
        };
        let _ = writeln!(
            out,
            "<p style=\"font-size:18px;font-weight:bold;color:{colour};margin:0 0 12px\">{}</p>",
            escape_html(&verdict(&self.summary))
        );
        let _ = writeln!(
            out,
            "<p style=\"margin:0 0 12px\">Organization {} ({})<br>Snapshot run {}, taken {}\
             <br>Generated {}<br>{}</p>",
            html_value(&state.organization.name),
            html_value(&state.organization.id),
            state.run_id,
            escape_html(&when(&state.taken_at)),
            escape_html(&when(&input.generated_at)),
            escape_html(&self.inventory())
        );

        heading(&mut out, "Findings by rule");
        let mut rows: Vec<Vec<String>> = self.rules.iter().map(RuleRow::cells).collect();
        rows.push(self.total.cells());
        html_table(&mut out, RULE_COLUMNS, &rows, None, true);

        let not_evaluated = self.not_evaluated();
        if !not_evaluated.is_empty() {
            out.push_str(
                "<p style=\"color:#b00020;margin:8px 0\"><b>Not evaluated</b> \
                 (their findings are missing from this report):</p>\n<ul style=\"margin:0\">\n",
            );
            for (rule, reason) in not_evaluated {
                let _ = writeln!(
                    out,
                    "<li>{}: {}</li>",
                    escape_html(rule),
                    html_value(reason)
                );
            }
            out.push_str("</ul>\n");
        }
        let disabled = self.disabled();
        if !disabled.is_empty() {
            let _ = writeln!(
                out,
                "<p style=\"margin:8px 0\">Disabled rules: {}</p>",
                escape_html(&disabled.join(", "))
            );
        }

        for (title, shown, all) in self.finding_sections() {
            heading(&mut out, &format!("{title} ({all})"));
            if all == 0 {
                out.push_str("<p style=\"margin:0\">None.</p>\n");
                continue;
            }
            if !shown.is_empty() {
                let rows: Vec<Vec<String>> = shown.iter().map(|f| finding_cells(f)).collect();
                html_table(&mut out, FINDING_COLUMNS, &rows, Some(0), false);
            }
            if all > shown.len() {
                let _ = writeln!(
                    out,
                    "<p style=\"margin:4px 0\">… and {} more in findings.csv</p>",
                    all - shown.len()
                );
            }
        }

        heading(&mut out, "Changes");
        let _ = writeln!(
            out,
            "<p style=\"margin:0 0 8px\">{}</p>",
            escape_html(&self.changes_heading())
        );
        if !self.changes.is_empty() {
            let rows: Vec<Vec<String>> = self
                .changes
                .iter()
                .map(|((kind, change), n)| {
                    vec![(*kind).to_owned(), (*change).to_owned(), n.to_string()]
                })
                .collect();
            html_table(&mut out, &["kind", "change", "count"], &rows, None, false);
        }

        heading(&mut out, "Remediation");
        let _ = writeln!(
            out,
            "<p style=\"margin:0 0 8px\">{}</p>",
            escape_html(&self.actions_line())
        );
        if !self.failed_actions.is_empty() {
            let rows: Vec<Vec<String>> = self
                .failed_actions
                .iter()
                .map(|a| action_cells(a))
                .collect();
            html_table(&mut out, ACTION_COLUMNS, &rows, None, false);
        }

        let _ = writeln!(
            out,
            "<p style=\"margin:16px 0 0;color:#555\">{}</p>",
            escape_html(&self.attachments_line())
        );
        out.push_str("</body></html>\n");
        out
    }
}

const ACTION_COLUMNS: &[&str] = &["status", "action", "subject", "http_status", "reason"];

fn action_cells(action: &ActionRecord) -> Vec<String> {
    vec![
        action.status.as_str().to_owned(),
        action.action.as_str().to_owned(),
        action.subject.clone(),
        action
            .http_status
            .map(|s| s.to_string())
            .unwrap_or_default(),
        action.reason.clone().unwrap_or_default(),
    ]
}

fn heading(out: &mut String, title: &str) {
    let _ = writeln!(
        out,
        "<h3 style=\"font-size:15px;margin:18px 0 6px\">{}</h3>",
        escape_html(title)
    );
}

fn severity_colour(text: &str) -> Option<&'static str> {
    match Severity::parse(text)? {
        Severity::Critical => Some("#b00020"),
        Severity::High => Some("#b35c00"),
        Severity::Medium => Some("#8a6d00"),
        Severity::Low => Some("#555555"),
    }
}

/// A simple inline-styled table; every cell is a user value (cleaned, escaped, in `<bdi>`).
/// One cell a line, so that no line comes near the 998-octet limit of SMTP.
/// `severity_column` is coloured; `last_row_total` makes the last row bold.
fn html_table(
    out: &mut String,
    columns: &[&str],
    rows: &[Vec<String>],
    severity_column: Option<usize>,
    last_row_total: bool,
) {
    const CELL: &str = "border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top";
    out.push_str("<table style=\"border-collapse:collapse;margin:0 0 8px\">\n<tr>\n");
    for column in columns {
        let _ = writeln!(
            out,
            "<th style=\"{CELL};background:#f2f2f2\">{}</th>",
            escape_html(column)
        );
    }
    out.push_str("</tr>\n");
    for (idx, row) in rows.iter().enumerate() {
        let bold = last_row_total && idx + 1 == rows.len();
        out.push_str("<tr>\n");
        for (col, cell) in row.iter().enumerate() {
            let mut style = CELL.to_owned();
            if bold {
                style.push_str(";font-weight:bold");
            }
            if severity_column == Some(col) {
                if let Some(colour) = severity_colour(cell) {
                    let _ = write!(style, ";color:{colour};font-weight:bold");
                }
            }
            let _ = writeln!(out, "<td style=\"{style}\">{}</td>", html_value(cell));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</table>\n");
}
