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

pub mod period;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Severity;
use crate::org::{ApiKey, Invite, KeyOwner, User, Workspace, WorkspaceMember};
use crate::org::{Change, ChangeKind, ObjectKind, OrgState};
use crate::output::{self, Tabular};
use crate::policy::{ActionRecord, FindingRecord, FindingStatus};
use crate::policy::{RuleOutcome, RuleStatus};

pub use period::{PeriodFailure, ReportContext, WaitingAction};

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
    "scope_type",
    "owner_kind",
    "owner_id",
    "owner_email",
];

/// `workspace_members.csv`: the columns of `show workspace-members`, then the names.
const MEMBERSHIP_COLUMNS: &[&str] = &[
    "workspace_id",
    "user_id",
    "workspace_role",
    "workspace_name",
    "user_email",
];
/// `changes.csv`: the columns of `diff`, then the names of the workspace and member involved.
const CHANGE_COLUMNS: &[&str] = &[
    "kind",
    "change",
    "id",
    "subject",
    "field",
    "before",
    "after",
    "workspace_name",
    "user_email",
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
    ("workspace_members.csv", MEMBERSHIP_COLUMNS),
    ("changes.csv", CHANGE_COLUMNS),
    ("actions.csv", <ActionRecord as Tabular>::COLUMNS),
    ("unused_access.csv", UNUSED_CSV_COLUMNS),
];

/// `unused_access.csv`: the unused-access section whole, one row per dormant key, dormant seat
/// and key-hygiene finding (active ones), and one `not_checked` row per usage rule that did not
/// run, so that missing data never reads as "nothing unused". `created_at` is the key's.
const UNUSED_CSV_COLUMNS: &[&str] = &[
    "kind",
    "rule",
    "status",
    "severity",
    "subject_kind",
    "subject_id",
    "subject",
    "created_at",
    "evidence",
    "first_seen",
];

/// Longest organization name kept in the subject, in characters.
const SUBJECT_NAME_MAX: usize = 80;
/// Longest value shown in the HTML body, in characters (the CSVs have it whole).
const HTML_CELL_MAX: usize = 200;
/// Longest value shown in the plain-text body outside tables ([`output::table`] caps cells).
const TEXT_VALUE_MAX: usize = 200;

/// Renders the whole report with nothing known beyond `input` (UTC, no plan, no failures; the
/// period starts at `input.changes_since`).
pub fn render(input: &ReportInput<'_>) -> RenderedReport {
    render_with(input, &ReportContext::basic(input.changes_since))
}

/// Renders the whole report.
pub fn render_with(input: &ReportInput<'_>, ctx: &ReportContext<'_>) -> RenderedReport {
    let view = View::new(input, ctx);
    RenderedReport {
        subject: subject_of(&view),
        text: view.text(),
        html: view.html(),
        files: csv_files_with(input, ctx),
    }
}

/// `[orgwarden] <org>: 3 new (1 critical), 24 open · 23–30 Nov`, with `STALE DATA` or
/// `INCOMPLETE` first when the banner names a problem.
pub fn subject(input: &ReportInput<'_>) -> String {
    let ctx = ReportContext::basic(input.changes_since);
    subject_of(&View::new(input, &ctx))
}

fn subject_of(view: &View<'_>) -> String {
    let input = view.input;
    let s = &view.summary;
    let new = if view.first() {
        "first report".to_owned()
    } else {
        let severe = view.new.iter().map(|f| f.severity).max();
        match severe {
            Some(sev) => {
                let n = view.new.iter().filter(|f| f.severity == sev).count();
                format!("{} new ({n} {})", s.new, sev.as_str())
            }
            None => "0 new".to_owned(),
        }
    };
    let end = input.state.taken_at.with_timezone(&view.ctx.timezone);
    let period = match view.ctx.period_start {
        Some(start) => {
            let start = start.with_timezone(&view.ctx.timezone);
            if start.date_naive() == end.date_naive() {
                end.format("%-d %b").to_string()
            } else if start.format("%b %Y").to_string() == end.format("%b %Y").to_string() {
                format!("{}–{}", start.format("%-d"), end.format("%-d %b"))
            } else {
                format!("{}–{}", start.format("%-d %b"), end.format("%-d %b"))
            }
        }
        None => end.format("%-d %b").to_string(),
    };
    // Stale: the data is old, or snapshots failed after the one reported on. Incomplete: a
    // rule did not run, or snapshots failed earlier in the period.
    let flag = if view.stale()
        || view
            .ctx
            .failures
            .iter()
            .any(|f| f.at > input.state.taken_at)
    {
        "STALE DATA: "
    } else if view.problems().is_empty() {
        ""
    } else {
        "INCOMPLETE: "
    };
    format!(
        "[orgwarden] {flag}{}: {new}, {} open · {period}",
        subject_name(input.state),
        s.active()
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
    csv_files_with(input, &ReportContext::basic(input.changes_since))
}

/// Every CSV attachment with the context's time zone, byte order mark and known emails.
pub fn csv_files_with(input: &ReportInput<'_>, ctx: &ReportContext<'_>) -> Vec<(String, Vec<u8>)> {
    let state = input.state;

    let mut findings: Vec<&FindingRecord> = input.findings.iter().collect();
    findings.sort_by(|a, b| finding_order(a, b));

    let mut members: Vec<&User> = state.members.iter().collect();
    members.sort_by(|a, b| a.id.cmp(&b.id));
    let mut invites: Vec<&Invite> = state.invites.iter().collect();
    invites.sort_by(|a, b| a.id.cmp(&b.id));
    let mut emails: HashMap<&str, &str> = ctx
        .emails
        .iter()
        .map(|(id, email)| (id.as_str(), email.as_str()))
        .collect();
    emails.extend(
        state
            .members
            .iter()
            .map(|m| (m.id.as_str(), m.email.as_str())),
    );
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
    let unused_rows = unused_access(input)
        .iter()
        .map(UnusedLine::csv_cells)
        .collect();

    let workspace_names: HashMap<&str, &str> = state
        .workspaces
        .iter()
        .map(|w| (w.id.as_str(), w.name.as_str()))
        .collect();
    let names = |workspace: Option<&str>, user: Option<&str>| -> [String; 2] {
        [
            workspace
                .and_then(|w| workspace_names.get(w))
                .map(|n| (*n).to_owned())
                .unwrap_or_default(),
            user.and_then(|u| emails.get(u))
                .map(|e| (*e).to_owned())
                .unwrap_or_default(),
        ]
    };
    fn cells<T: Tabular>(items: &[T]) -> Vec<Vec<String>> {
        items.iter().map(Tabular::cells).collect()
    }
    let membership_rows = memberships
        .iter()
        .map(|m| {
            let mut row = m.cells();
            row.extend(names(Some(&m.workspace_id), Some(&m.user_id)));
            row
        })
        .collect();
    let change_rows = input
        .changes
        .iter()
        .map(|c| {
            let mut row = c.cells();
            row.extend(names(c.workspace_id.as_deref(), c.user_id.as_deref()));
            row
        })
        .collect();
    let bodies = [
        cells(&findings),
        cells(&members),
        cells(&invites),
        cells(&keys),
        cells(&workspaces),
        membership_rows,
        change_rows,
        cells(&actions),
        unused_rows,
    ];
    CSV_COLUMNS
        .iter()
        .zip(bodies)
        .map(|((name, columns), rows)| ((*name).to_owned(), write_csv(columns, rows, ctx)))
        .collect()
}

/// Timestamps of the CSVs: `YYYY-MM-DD HH:MM:SS` in the configured zone, which every
/// spreadsheet parses.
fn csv_time(cell: &str, tz: chrono_tz::Tz) -> Option<String> {
    if cell.len() < 20 || !cell.as_bytes()[4].eq(&b'-') {
        return None;
    }
    let time = DateTime::parse_from_rfc3339(cell).ok()?;
    Some(
        time.with_timezone(&tz)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string(),
    )
}

/// RFC 4180 with CRLF, every cell neutralised, timestamps converted, a byte order mark first
/// when `report.csv_bom` is on.
fn write_csv(columns: &[&str], rows: Vec<Vec<String>>, ctx: &ReportContext<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    if ctx.csv_bom {
        out.extend_from_slice("\u{FEFF}".as_bytes());
    }
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(out);
    // Writing to a Vec cannot fail.
    let _ = writer.write_record(columns);
    for row in rows {
        let _ = writer.write_record(row.iter().map(|cell| match csv_time(cell, ctx.timezone) {
            Some(time) => time,
            None => output::neutralize(cell).into_owned(),
        }));
    }
    writer.into_inner().unwrap_or_default()
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

// ---- Unused access ----------------------------------------------------------------------------

/// One line of the unused-access section and of `unused_access.csv`.
enum UnusedLine<'a> {
    Finding {
        kind: &'static str,
        finding: &'a FindingRecord,
        /// The key's creation, so that never-expiring keys are listed oldest first.
        created_at: Option<DateTime<Utc>>,
    },
    /// A usage rule that was enabled and could not run, with why.
    NotChecked { rule: &'a str, reason: &'a str },
}

impl UnusedLine<'_> {
    fn csv_cells(&self) -> Vec<String> {
        match self {
            UnusedLine::Finding {
                kind,
                finding: f,
                created_at,
            } => vec![
                kind.replace([' ', '-'], "_"),
                f.rule.clone(),
                f.status.as_str().to_owned(),
                f.severity.as_str().to_owned(),
                f.subject_kind.as_str().to_owned(),
                f.subject_id.clone(),
                f.subject.clone(),
                created_at.as_ref().map(crate::org::ts).unwrap_or_default(),
                f.evidence.clone(),
                crate::org::ts(&f.first_seen),
            ],
            UnusedLine::NotChecked { rule, reason } => {
                let mut cells = vec![String::new(); UNUSED_CSV_COLUMNS.len()];
                cells[0] = "not_checked".to_owned();
                cells[1] = (*rule).to_owned();
                cells[2] = "not_evaluated".to_owned();
                cells[8] = (*reason).to_owned();
                cells
            }
        }
    }
}

/// Whether the unused-access rules took part in the audit at all (enabled, run or not).
fn unused_access_enabled(input: &ReportInput<'_>) -> bool {
    use crate::policy::{DORMANT_KEYS, DORMANT_MEMBERS, KEY_HYGIENE};
    input.rules.iter().any(|o| {
        matches!(o.rule, DORMANT_KEYS | DORMANT_MEMBERS | KEY_HYGIENE)
            && o.status != RuleStatus::Disabled
    })
}

/// The unused access the audit found: usage rules that could not run first, then dormant keys,
/// dormant seats, never-expiring keys (oldest first) and organization-scoped keys.
fn unused_access<'a>(input: &ReportInput<'a>) -> Vec<UnusedLine<'a>> {
    use crate::policy::{DORMANT_KEYS, DORMANT_MEMBERS, KEY_HYGIENE};
    let keys: HashMap<&str, &ApiKey> = input
        .state
        .api_keys
        .iter()
        .map(|k| (k.id.as_str(), k))
        .collect();
    let mut out: Vec<UnusedLine<'a>> = input
        .rules
        .iter()
        .filter(|o| matches!(o.rule, DORMANT_KEYS | DORMANT_MEMBERS))
        .filter_map(|o| {
            o.status.reason().map(|reason| UnusedLine::NotChecked {
                rule: o.rule.as_str(),
                reason,
            })
        })
        .collect();
    // (rank, key creation, subject, subject id) orders the lines.
    type Order<'f> = (u8, Option<DateTime<Utc>>, &'f str, &'f str);
    let mut found: Vec<(Order<'a>, UnusedLine<'a>)> = Vec::new();
    for finding in input.findings.iter().filter(|f| f.status.is_active()) {
        let key = (finding.subject_kind == crate::policy::SubjectKind::ApiKey)
            .then(|| keys.get(finding.subject_id.as_str()).copied())
            .flatten();
        let (rank, kind) = if finding.rule == DORMANT_KEYS {
            (0, "dormant key")
        } else if finding.rule == DORMANT_MEMBERS {
            (1, "dormant seat")
        } else if finding.rule != KEY_HYGIENE {
            continue;
        } else if key.is_none_or(|k| k.expires_at.is_none()) {
            (2, "never-expiring key")
        } else {
            (3, "organization-scoped key")
        };
        let created_at = key.map(|k| k.created_at);
        let order = (
            rank,
            created_at,
            finding.subject.as_str(),
            finding.subject_id.as_str(),
        );
        let line = UnusedLine::Finding {
            kind,
            finding,
            created_at,
        };
        found.push((order, line));
    }
    found.sort_by_key(|(order, _)| *order);
    out.extend(found.into_iter().map(|(_, line)| line));
    out
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
    fn empty(rule: String, status: String) -> RuleRow {
        RuleRow {
            rule,
            status,
            by_severity: [0; 4],
            new: 0,
            exempted: 0,
            resolved: 0,
        }
    }

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

/// Longest plain-text line.
const TEXT_WIDTH: usize = 78;

/// What the text and HTML bodies share, computed once.
struct View<'a> {
    input: &'a ReportInput<'a>,
    ctx: &'a ReportContext<'a>,
    summary: Summary,
    rules: Vec<RuleRow>,
    total: RuleRow,
    /// First seen in the period (empty for the first report), most severe first.
    new: Vec<&'a FindingRecord>,
    /// Active findings not listed as new, most severe first.
    still_open: Vec<&'a FindingRecord>,
    resolved: Vec<&'a FindingRecord>,
    /// What is waiting, by finding fingerprint.
    plan_by_finding: HashMap<&'a str, &'a WaitingAction>,
    /// Actions of the period, by id.
    actions: Vec<&'a ActionRecord>,
}

/// One problem the banner names: what happened and how to fix it.
struct Problem {
    cause: String,
    fix: String,
}

impl<'a> View<'a> {
    fn new(input: &'a ReportInput<'a>, ctx: &'a ReportContext<'a>) -> View<'a> {
        let mut sorted: Vec<&FindingRecord> = input.findings.iter().collect();
        sorted.sort_by(|a, b| finding_order(a, b));
        let in_period = |f: &FindingRecord| match ctx.period_start {
            Some(start) => f.first_seen > start,
            None => false,
        };
        let new: Vec<&FindingRecord> = sorted
            .iter()
            .copied()
            .filter(|f| f.status.is_active() && in_period(f))
            .collect();
        let still_open: Vec<&FindingRecord> = sorted
            .iter()
            .copied()
            .filter(|f| f.status.is_active() && !in_period(f))
            .collect();
        let resolved: Vec<&FindingRecord> = sorted
            .iter()
            .copied()
            .filter(|f| f.status == FindingStatus::Resolved)
            .collect();

        let mut rules: Vec<RuleRow> = input
            .rules
            .iter()
            .map(|o| RuleRow::empty(o.rule.to_string(), rule_status_label(&o.status).to_owned()))
            .collect();
        for finding in input.findings {
            let idx = match rules.iter().position(|r| r.rule == finding.rule) {
                Some(idx) => idx,
                None => {
                    rules.push(RuleRow::empty(finding.rule.clone(), String::new()));
                    rules.len() - 1
                }
            };
            let row = &mut rules[idx];
            match finding.status {
                FindingStatus::New | FindingStatus::Open => {
                    if in_period(finding) {
                        row.new += 1;
                    }
                    row.by_severity[severity_index(finding.severity)] += 1;
                }
                FindingStatus::Exempted => row.exempted += 1,
                FindingStatus::Resolved => row.resolved += 1,
            }
        }
        let mut total = RuleRow::empty("total".to_owned(), String::new());
        for row in &rules {
            for (sum, n) in total.by_severity.iter_mut().zip(row.by_severity) {
                *sum += n;
            }
            total.new += row.new;
            total.exempted += row.exempted;
            total.resolved += row.resolved;
        }
        let mut summary = summarize(input.findings);
        // "New" is new in the period, not in the last audit.
        summary.open = summary.active() - new.len();
        summary.new = new.len();

        let mut actions: Vec<&ActionRecord> = input.actions.iter().collect();
        actions.sort_by_key(|a| a.id);
        View {
            input,
            ctx,
            summary,
            rules,
            total,
            new,
            still_open,
            resolved,
            plan_by_finding: ctx.plan.iter().map(|w| (w.finding.as_str(), w)).collect(),
            actions,
        }
    }

    fn when(&self, time: &DateTime<Utc>) -> String {
        local(time, self.ctx.timezone)
    }

    fn first(&self) -> bool {
        self.ctx.period_start.is_none()
    }

    /// The one-line headline.
    fn headline(&self) -> String {
        let s = &self.summary;
        let mut severe = Vec::new();
        if s.critical > 0 {
            severe.push(format!("{} critical", s.critical));
        }
        if s.high > 0 {
            severe.push(format!("{} high", s.high));
        }
        let severe = if severe.is_empty() {
            String::new()
        } else {
            format!(" ({})", severe.join(", "))
        };
        if self.first() {
            return format!(
                "First report: {}{severe}.",
                plural(s.active(), "open finding", "open findings")
            );
        }
        format!(
            "{} in this period, {} resolved; {} open{severe}.",
            plural(s.new, "new finding", "new findings"),
            s.resolved,
            s.active()
        )
    }

    /// The latest complete snapshot is older than twice the audit period.
    fn stale(&self) -> bool {
        self.ctx
            .audit_period
            .is_some_and(|period| self.input.generated_at - self.input.state.taken_at > period * 2)
    }

    /// The causes the banner names, each with its fix.
    fn problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let failures = self.ctx.failures;
        if let Some(last) = failures.last() {
            out.push(Problem {
                cause: format!(
                    "{} failed in this period; the latest, {} at {}: {}",
                    plural(failures.len(), "snapshot or audit", "snapshots or audits"),
                    last.what,
                    self.when(&last.at),
                    clean(&last.error, 2 * TEXT_VALUE_MAX)
                ),
                fix: format!("Fix: {}.", period::failure_fix(&last.error)),
            });
        }
        if let Some(period) = self.ctx.audit_period.filter(|_| self.stale()) {
            let age = self.input.generated_at - self.input.state.taken_at;
            {
                out.push(Problem {
                    cause: format!(
                        "The data is stale: the latest complete snapshot was taken {} ({} ago); \
                         audits are due every {}.",
                        self.when(&self.input.state.taken_at),
                        human_duration(age),
                        human_duration(period)
                    ),
                    fix: "Fix: check that the service runs (`systemctl status orgwarden`, \
                          `orgwarden status`)."
                        .to_owned(),
                });
            }
        }
        for outcome in self.input.rules {
            // A roster nobody configured is a choice, a comparison with the previous snapshot
            // cannot run on the first one, and usage rules wait for a first ingest: none is a
            // gap in this period's data (a failed ingest is).
            let chosen = |reason: &str| {
                (outcome.rule == crate::policy::OFFBOARDING_ROSTER
                    && reason == crate::policy::ROSTER_NOT_CONFIGURED)
                    || reason == crate::policy::NO_PREVIOUS_SNAPSHOT
                    || reason == crate::policy::NO_USAGE_DATA
                    || reason == crate::policy::DIRECTORIES_NOT_CONFIGURED
                    || reason == crate::policy::ASSIGNMENTS_NOT_CONFIGURED
            };
            if let Some(reason) = outcome.status.reason().filter(|r| !chosen(r)) {
                out.push(Problem {
                    cause: format!(
                        "Rule \"{}\" was not evaluated: {}; its findings may be missing.",
                        period::rule_label(outcome.rule.as_str()),
                        clean(reason, TEXT_VALUE_MAX)
                    ),
                    fix: "Fix: correct its input (see `orgwarden audit`).".to_owned(),
                });
            }
        }
        out
    }

    fn period_line(&self) -> String {
        let end = self.when(&self.input.state.taken_at);
        match self.ctx.period_start {
            Some(start) => format!("Period: {} to {end}", self.when(&start)),
            None => format!(
                "This is the first report: every finding is listed once (snapshot of {end})."
            ),
        }
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

    /// "orgwarden will act on DATE" or "needs a person: why".
    fn next_step(&self, finding: &FindingRecord) -> String {
        if finding.status == FindingStatus::Exempted {
            return "exempted".to_owned();
        }
        if finding.status == FindingStatus::Resolved {
            return "resolved".to_owned();
        }
        match self.plan_by_finding.get(finding.fingerprint().as_str()) {
            Some(w) if w.will_act && self.ctx.mode == "enforce" => match w.eligible_at {
                Some(at) if at > self.input.generated_at => {
                    format!("orgwarden will act on {}", self.when(&at))
                }
                _ => "orgwarden will act at the next audit".to_owned(),
            },
            Some(w) if w.will_act => format!(
                "needs a person: a dry run; with mode \"enforce\" orgwarden would act {}",
                match w.eligible_at {
                    Some(at) if at > self.input.generated_at => format!("on {}", self.when(&at)),
                    _ => "at the next audit".to_owned(),
                }
            ),
            Some(w) if !w.blocked_by.is_empty() => {
                format!("needs a person ({})", clean(&w.blocked_by, 120))
            }
            Some(_) => "needs a person".to_owned(),
            None if finding.action.as_str() == "review" => {
                "needs a person (review only)".to_owned()
            }
            None => format!(
                "needs a person (remediation is {} for this rule)",
                if self.ctx.mode == "enforce" {
                    "not enabled"
                } else {
                    self.ctx.mode
                }
            ),
        }
    }

    fn finding_row(&self, f: &FindingRecord) -> Vec<String> {
        vec![
            f.severity.as_str().to_owned(),
            period::rule_label(&f.rule),
            f.subject.clone(),
            f.evidence.clone(),
            self.next_step(f),
        ]
    }

    /// People-level changes, one line each, by name.
    fn people_changes(&self) -> Vec<String> {
        let emails = self.ctx.emails;
        let current: HashMap<&str, &str> = self
            .input
            .state
            .members
            .iter()
            .map(|m| (m.id.as_str(), m.email.as_str()))
            .collect();
        let member = |id: &Option<String>| -> String {
            let id = id.as_deref().unwrap_or_default();
            current
                .get(id)
                .map(|e| (*e).to_owned())
                .or_else(|| emails.get(id).cloned())
                .unwrap_or_else(|| id.to_owned())
        };
        let workspace = |id: &Option<String>| -> String {
            let id = id.as_deref().unwrap_or_default();
            self.input
                .state
                .workspaces
                .iter()
                .find(|w| w.id == id)
                .map(|w| w.name.clone())
                .unwrap_or_else(|| id.to_owned())
        };
        let mut out = Vec::new();
        for c in self.input.changes {
            let who = c.subject();
            let line = match (c.kind, c.change) {
                (ObjectKind::Member, ChangeKind::Joined) => format!("joined: {who}"),
                (ObjectKind::Member, ChangeKind::Left) => format!("left: {who}"),
                (ObjectKind::Member, ChangeKind::RoleChanged) => {
                    let after = c.after.clone().unwrap_or_default();
                    if after.contains("admin") {
                        format!("became {after}: {who}")
                    } else {
                        format!(
                            "role {} -> {after}: {who}",
                            c.before.clone().unwrap_or_default()
                        )
                    }
                }
                (ObjectKind::ApiKey, ChangeKind::Created) => format!("key created: {who}"),
                (ObjectKind::ApiKey, ChangeKind::StatusChanged) => format!(
                    "key {}: {who}",
                    match c.after.as_deref() {
                        Some("inactive") => "deactivated".to_owned(),
                        Some(other) => format!("now {other}"),
                        None => "changed".to_owned(),
                    }
                ),
                (kind, ChangeKind::Renamed) => format!(
                    "{} renamed: {} -> {}",
                    kind.as_str().replace('_', " "),
                    c.before.clone().unwrap_or_default(),
                    c.after.clone().unwrap_or_default()
                ),
                (ObjectKind::WorkspaceMember, change) => format!(
                    "workspace {change}: {} in {}",
                    member(&c.user_id),
                    workspace(&c.workspace_id)
                ),
                (kind, change) => format!("{} {change}: {who}", kind.as_str().replace('_', " ")),
            };
            out.push(line);
        }
        out
    }

    fn unused_row(&self, line: &UnusedLine<'_>) -> Vec<String> {
        match line {
            UnusedLine::Finding { kind, finding, .. } => vec![
                (*kind).to_owned(),
                finding.subject.clone(),
                finding.evidence.clone(),
                self.next_step(finding),
            ],
            UnusedLine::NotChecked { rule, reason } => vec![
                "not checked".to_owned(),
                period::rule_label(rule),
                (*reason).to_owned(),
                String::new(),
            ],
        }
    }

    fn action_row(&self, a: &ActionRecord) -> Vec<String> {
        vec![
            a.status.as_str().to_owned(),
            period::action_label(a.action.as_str()),
            a.subject.clone(),
            a.reason.clone().unwrap_or_default(),
        ]
    }

    fn plan_row(&self, w: &WaitingAction) -> Vec<String> {
        vec![
            period::action_label(&w.action),
            w.subject.clone(),
            w.eligible_at
                .map(|at| self.when(&at))
                .unwrap_or_else(|| "-".to_owned()),
            if w.blocked_by.is_empty() {
                "nothing".to_owned()
            } else {
                w.blocked_by.clone()
            },
        ]
    }

    fn exempt_hint(&self) -> &'static str {
        "To exempt a finding, add an [[exemptions]] entry (rule, subject, reason, expires) to \
         the configuration; orgwarden then neither reports it as open nor acts on it."
    }

    fn attachments_line(&self) -> String {
        let names: Vec<&str> = CSV_COLUMNS.iter().map(|(name, _)| *name).collect();
        format!(
            "Attached (UTF-8 CSV, complete values, ids): {}.",
            names.join(", ")
        )
    }

    /// The sections below the summary: `(title, columns, rows, rows in all)`.
    fn sections(&self) -> Vec<Section> {
        let top = self.input.top_n;
        let mut out = Vec::new();
        let findings = |title: String, list: &[&FindingRecord]| Section {
            title,
            columns: FINDING_COLUMNS,
            rows: list.iter().take(top).map(|f| self.finding_row(f)).collect(),
            all: list.len(),
            more: "findings.csv",
        };
        let severe: Vec<&FindingRecord> = self
            .new
            .iter()
            .copied()
            .filter(|f| f.severity >= Severity::High)
            .collect();
        if !self.first() {
            out.push(findings(
                "New high and critical findings".to_owned(),
                &severe,
            ));
        }
        out.push(Section {
            title: "Actions taken".to_owned(),
            columns: ACTION_COLUMNS,
            rows: self
                .actions
                .iter()
                .take(top)
                .map(|a| self.action_row(a))
                .collect(),
            all: self.actions.len(),
            more: "actions.csv",
        });
        out.push(Section {
            title: format!("Waiting actions (remediation mode: {})", self.ctx.mode),
            columns: PLAN_COLUMNS,
            rows: self
                .ctx
                .plan
                .iter()
                .take(top)
                .map(|w| self.plan_row(w))
                .collect(),
            all: self.ctx.plan.len(),
            more: "findings.csv",
        });
        if !self.first() && self.new.len() > severe.len() {
            let other_new: Vec<&FindingRecord> = self
                .new
                .iter()
                .copied()
                .filter(|f| f.severity < Severity::High)
                .collect();
            out.push(findings("Other new findings".to_owned(), &other_new));
        }
        out.push(findings(
            if self.first() {
                "Open findings".to_owned()
            } else {
                "Still open from before".to_owned()
            },
            &self.still_open,
        ));
        out.push(findings(
            "Resolved in this period".to_owned(),
            &self.resolved,
        ));
        if unused_access_enabled(self.input) {
            let lines = unused_access(self.input);
            out.push(Section {
                title: "Unused access".to_owned(),
                columns: UNUSED_COLUMNS,
                all: lines.len(),
                rows: lines
                    .iter()
                    .take(top)
                    .map(|line| self.unused_row(line))
                    .collect(),
                more: "unused_access.csv",
            });
        }
        let people = self.people_changes();
        out.push(Section {
            title: if self.first() {
                "Changes (from the next report on)".to_owned()
            } else {
                "Changes".to_owned()
            },
            columns: &["change"],
            all: people.len(),
            rows: people.into_iter().take(top).map(|l| vec![l]).collect(),
            more: "changes.csv",
        });
        let mut rows: Vec<Vec<String>> = self
            .rules
            .iter()
            .map(|r| {
                let mut cells = r.cells();
                cells[0] = period::rule_label(&r.rule);
                cells
            })
            .collect();
        rows.push(self.total.cells());
        out.push(Section {
            title: "Findings by rule".to_owned(),
            columns: RULE_COLUMNS,
            all: rows.len(),
            rows,
            more: "",
        });
        out
    }

    // ---- Plain text ---------------------------------------------------------------------------

    fn text(&self) -> String {
        let input = self.input;
        let state = input.state;
        let mut out = String::new();
        let line = |out: &mut String, text: &str, indent: &str| {
            for l in wrap(text, TEXT_WIDTH, indent) {
                out.push_str(&l);
                out.push('\n');
            }
        };
        line(&mut out, &self.headline(), "");
        let problems = self.problems();
        if !problems.is_empty() {
            out.push('\n');
            line(&mut out, "!! DATA MAY BE OUT OF DATE OR INCOMPLETE", "");
            for p in &problems {
                line(&mut out, &format!("- {} {}", p.cause, p.fix), "  ");
            }
        }
        out.push('\n');
        line(&mut out, &self.period_line(), "  ");
        line(
            &mut out,
            &format!(
                "Organization: {} ({})",
                clean(&state.organization.name, TEXT_VALUE_MAX),
                clean(&state.organization.id, TEXT_VALUE_MAX)
            ),
            "  ",
        );
        line(
            &mut out,
            &format!(
                "Snapshot: run {}, taken {}; generated {}",
                state.run_id,
                self.when(&state.taken_at),
                self.when(&input.generated_at)
            ),
            "  ",
        );
        line(&mut out, &format!("Inventory: {}", self.inventory()), "  ");

        for section in self.sections() {
            out.push('\n');
            let title = if section.columns == RULE_COLUMNS {
                section.title.to_uppercase()
            } else {
                format!("{} ({})", section.title.to_uppercase(), section.all)
            };
            line(&mut out, &title, "");
            if section.all == 0 {
                out.push_str("(none)\n");
                continue;
            }
            for row in &section.rows {
                let cells: Vec<String> = row.iter().map(|c| clean(c, TEXT_VALUE_MAX)).collect();
                let text = if section.columns == RULE_COLUMNS {
                    format!(
                        "- {}: {} open ({} critical, {} high), {} new, {} exempted, {} resolved{}",
                        cells[0],
                        cells[6],
                        cells[2],
                        cells[3],
                        cells[7],
                        cells[8],
                        cells[9],
                        if cells[1].is_empty() || cells[1] == "evaluated" {
                            String::new()
                        } else {
                            format!(" [{}]", cells[1])
                        }
                    )
                } else if section.columns.len() == 1 {
                    format!("- {}", cells[0])
                } else {
                    let rest: Vec<&str> = cells[1..]
                        .iter()
                        .map(String::as_str)
                        .filter(|c| !c.is_empty())
                        .collect();
                    format!("- [{}] {}", cells[0], rest.join(" | "))
                };
                line(&mut out, &text, "  ");
            }
            if section.all > section.rows.len() {
                line(
                    &mut out,
                    &format!(
                        "... and {} more in {}",
                        section.all - section.rows.len(),
                        section.more
                    ),
                    "",
                );
            }
        }
        out.push('\n');
        line(&mut out, self.exempt_hint(), "");
        line(&mut out, &self.attachments_line(), "");
        out
    }

    // ---- HTML ---------------------------------------------------------------------------------

    fn html(&self) -> String {
        let input = self.input;
        let state = input.state;
        let mut out = String::new();
        out.push_str(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        );
        let _ = writeln!(
            out,
            "<title>orgwarden report: {}</title>",
            escape_html(&clean(&state.organization.name, HTML_CELL_MAX))
        );
        out.push_str(
            "</head>\n<body style=\"margin:0;padding:0;background:#f6f6f6;\
             -webkit-text-size-adjust:100%;text-size-adjust:100%\">\n\
             <div style=\"max-width:680px;margin:0 auto;padding:12px;background:#ffffff;\
             box-sizing:border-box;font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;\
             font-size:15px;color:#222;line-height:1.45;overflow-wrap:anywhere;word-break:break-word\">\n",
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
            "<p style=\"font-size:19px;font-weight:bold;color:{colour};margin:0 0 10px\">{}</p>",
            escape_html(&self.headline())
        );
        let problems = self.problems();
        if !problems.is_empty() {
            out.push_str(
                "<div style=\"border:2px solid #b00020;background:#fdecee;padding:8px 10px;\
                 margin:0 0 12px\"><p style=\"margin:0 0 4px;font-weight:bold;color:#b00020\">\
                 Data may be out of date or incomplete</p>\n<ul style=\"margin:0;padding-left:18px\">\n",
            );
            for p in &problems {
                // The cause's parts are cleaned and capped already; the whole may be longer.
                let _ = writeln!(
                    out,
                    "<li><bdi>{}</bdi> <b>{}</b></li>",
                    escape_html(&clean(&p.cause, 4 * TEXT_VALUE_MAX)),
                    escape_html(&p.fix)
                );
            }
            out.push_str("</ul></div>\n");
        }
        let _ = writeln!(
            out,
            "<p style=\"margin:0 0 12px;color:#444\">{}<br>Organization: {} ({})<br>Snapshot: run {}, \
             taken {}; generated {}<br>{}</p>",
            escape_html(&self.period_line()),
            html_value(&state.organization.name),
            html_value(&state.organization.id),
            state.run_id,
            escape_html(&self.when(&state.taken_at)),
            escape_html(&self.when(&input.generated_at)),
            escape_html(&self.inventory())
        );
        for section in self.sections() {
            if section.columns == RULE_COLUMNS {
                heading(&mut out, &section.title);
            } else {
                heading(&mut out, &format!("{} ({})", section.title, section.all));
            }
            if section.all == 0 {
                out.push_str("<p style=\"margin:0;color:#555\">None.</p>\n");
                continue;
            }
            if section.columns == RULE_COLUMNS {
                html_table(&mut out, section.columns, &section.rows, None, true);
            } else {
                html_cards(&mut out, section.columns, &section.rows);
            }
            if section.all > section.rows.len() {
                let _ = writeln!(
                    out,
                    "<p style=\"margin:4px 0\">… and {} more in {}</p>",
                    section.all - section.rows.len(),
                    section.more
                );
            }
        }
        let _ = writeln!(
            out,
            "<p style=\"margin:16px 0 0;color:#555\">{}</p>\n<p style=\"margin:8px 0 0;color:#555\">{}</p>",
            escape_html(self.exempt_hint()),
            escape_html(&self.attachments_line())
        );
        out.push_str("</div>\n</body></html>\n");
        out
    }
}

/// A titled list the bodies render.
struct Section {
    title: String,
    columns: &'static [&'static str],
    rows: Vec<Vec<String>>,
    all: usize,
    more: &'static str,
}

const FINDING_COLUMNS: &[&str] = &["severity", "rule", "subject", "evidence", "next step"];
const ACTION_COLUMNS: &[&str] = &["outcome", "action", "subject", "reason"];
const PLAN_COLUMNS: &[&str] = &["action", "subject", "eligible", "blocked by"];
const UNUSED_COLUMNS: &[&str] = &["what", "subject", "evidence", "next step"];

/// Wraps `text` at spaces into lines of at most `width` characters; continuation lines start
/// with `indent`. A word longer than a line is cut.
pub fn wrap(text: &str, width: usize, indent: &str) -> Vec<String> {
    let indent_len = indent.chars().count();
    let mut lines = Vec::new();
    let mut current = String::new();
    // Characters in `current`, and whether it holds a word beyond the indent.
    let mut len = 0;
    let mut has_word = false;
    let mut finish = |current: &mut String, len: &mut usize, has_word: &mut bool| {
        lines.push(
            std::mem::replace(current, indent.to_owned())
                .trim_end()
                .to_owned(),
        );
        *len = indent_len;
        *has_word = false;
    };
    for word in text.split(' ') {
        let mut word: Vec<char> = word.chars().collect();
        loop {
            let sep = usize::from(has_word);
            if len + sep + word.len() <= width {
                if has_word {
                    current.push(' ');
                }
                current.extend(word.iter());
                len += sep + word.len();
                has_word = true;
                break;
            }
            if has_word {
                finish(&mut current, &mut len, &mut has_word);
                continue;
            }
            // A word longer than a whole line: cut it.
            let take = width.saturating_sub(len).max(1).min(word.len());
            current.extend(word.drain(..take));
            finish(&mut current, &mut len, &mut has_word);
            if word.is_empty() {
                break;
            }
        }
    }
    if has_word || lines.is_empty() {
        lines.push(current.trim_end().to_owned());
    }
    lines
}

/// A time in `tz`, `YYYY-MM-DD HH:MM TZ`.
pub fn local(time: &DateTime<Utc>, tz: chrono_tz::Tz) -> String {
    time.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

/// `3 days 4 h`, `5 h`, `20 min`.
fn human_duration(d: chrono::Duration) -> String {
    let minutes = d.num_minutes().max(0);
    let (days, hours, mins) = (minutes / 1440, (minutes / 60) % 24, minutes % 60);
    match (days, hours) {
        (0, 0) => format!("{mins} min"),
        (0, h) => format!("{h} h"),
        (d, 0) => plural(d as usize, "day", "days"),
        (d, h) => format!("{} {h} h", plural(d as usize, "day", "days")),
    }
}

fn heading(out: &mut String, title: &str) {
    let _ = writeln!(
        out,
        "<h3 style=\"font-size:16px;margin:18px 0 6px\">{}</h3>",
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

/// Rows as stacked cards: one bordered block per row, one `label: value` line per cell, so
/// that nothing is wider than the screen. One cell a line, so that no line comes near the
/// 998-octet limit of SMTP.
fn html_cards(out: &mut String, columns: &[&str], rows: &[Vec<String>]) {
    for row in rows {
        out.push_str(
            "<div style=\"border:1px solid #ddd;border-radius:4px;padding:6px 8px;margin:0 0 6px\">\n",
        );
        for (col, cell) in row.iter().enumerate() {
            if cell.is_empty() {
                continue;
            }
            let label = columns.get(col).copied().unwrap_or_default();
            let style = match (col, severity_colour(cell)) {
                (0, Some(colour)) => format!("color:{colour};font-weight:bold"),
                _ => String::new(),
            };
            if columns.len() == 1 {
                let _ = writeln!(out, "<div>{}</div>", html_value(cell));
            } else {
                let _ = writeln!(
                    out,
                    "<div><span style=\"color:#666\">{}:</span> <span style=\"{style}\">{}</span></div>",
                    escape_html(label),
                    html_value(cell)
                );
            }
        }
        out.push_str("</div>\n");
    }
}

/// A numeric table that scrolls inside its own box when the screen is narrower; numbers are
/// right-aligned; `last_row_total` makes the last row bold.
fn html_table(
    out: &mut String,
    columns: &[&str],
    rows: &[Vec<String>],
    severity_column: Option<usize>,
    last_row_total: bool,
) {
    const CELL: &str = "border:1px solid #ddd;padding:3px 6px;vertical-align:top";
    out.push_str(
        "<div style=\"overflow-x:auto;max-width:100%\">\n<table style=\"border-collapse:collapse;margin:0 0 8px;font-size:13px\">\n<tr>\n",
    );
    for column in columns {
        let _ = writeln!(
            out,
            "<th style=\"{CELL};background:#f2f2f2;text-align:left\">{}</th>",
            escape_html(column)
        );
    }
    out.push_str("</tr>\n");
    for (idx, row) in rows.iter().enumerate() {
        let bold = last_row_total && idx + 1 == rows.len();
        out.push_str("<tr>\n");
        for (col, cell) in row.iter().enumerate() {
            let mut style = CELL.to_owned();
            let numeric = !cell.is_empty() && cell.chars().all(|c| c.is_ascii_digit());
            style.push_str(if numeric {
                ";text-align:right"
            } else {
                ";text-align:left"
            });
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
    out.push_str("</table>\n</div>\n");
}
