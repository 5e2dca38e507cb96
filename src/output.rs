//! Rendering rows as a text table, JSON or CSV: the presentation shared by the CLI and reports.
//!
//! Pure functions over in-memory rows; no I/O. CSV output is RFC 4180 (via the `csv` crate) and
//! every cell that a spreadsheet would read as a formula is neutralised (OWASP CSV injection).

use std::fmt::Write as _;

use serde::Serialize;

use crate::org::Change;
use crate::org::{ts, RunRecord};
use crate::org::{ApiKey, Invite, User, Workspace, WorkspaceMember};
use crate::policy::{ActionRecord, FindingRecord};

/// The `--format` of list commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// A row type with a fixed column order (documented in the README for the CSVs).
pub trait Tabular: Serialize {
    const COLUMNS: &'static [&'static str];
    fn cells(&self) -> Vec<String>;
}

/// Borrowed rows render like owned ones, so callers can sort references instead of cloning.
impl<T: Tabular + ?Sized> Tabular for &T {
    const COLUMNS: &'static [&'static str] = T::COLUMNS;
    fn cells(&self) -> Vec<String> {
        (**self).cells()
    }
}

/// Renders rows in the chosen format; table cells are cut at [`CELL_CHARS`] characters.
pub fn render<T: Tabular>(format: Format, rows: &[T]) -> String {
    render_cells(format, rows, Some(CELL_CHARS))
}

/// Longest table cell shown on a terminal unless `--wide`, in characters.
pub const CELL_CHARS: usize = 60;

/// [`render`] with table cells cut at `max_cell` characters, or shown whole with `None`.
pub fn render_cells<T: Tabular>(format: Format, rows: &[T], max_cell: Option<usize>) -> String {
    match format {
        Format::Json => {
            let mut text = serde_json::to_string_pretty(rows).unwrap_or_else(|_| "[]".to_owned());
            text.push('\n');
            text
        }
        Format::Csv => String::from_utf8_lossy(&to_csv(rows)).into_owned(),
        Format::Table => table_cells(
            T::COLUMNS,
            rows.iter().map(Tabular::cells).collect(),
            max_cell,
        ),
    }
}

/// CSV bytes with a header row; formula-looking cells neutralised.
pub fn to_csv<T: Tabular>(rows: &[T]) -> Vec<u8> {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    // Writing to a Vec cannot fail.
    let _ = writer.write_record(T::COLUMNS);
    for row in rows {
        let _ = writer.write_record(row.cells().iter().map(|cell| neutralize(cell).into_owned()));
    }
    writer.into_inner().unwrap_or_default()
}

/// Prefixes a cell that a spreadsheet would evaluate (`=`, `+`, `-`, `@`, tab, CR) with a single
/// quote, as OWASP recommends; the csv writer then quotes it as needed.
pub fn neutralize(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => std::borrow::Cow::Owned(format!("'{cell}")),
        _ => std::borrow::Cow::Borrowed(cell),
    }
}

/// A plain aligned text table with cells cut at [`CELL_CHARS`] characters; see [`table_cells`].
pub fn table(columns: &[&str], rows: Vec<Vec<String>>) -> String {
    table_cells(columns, rows, Some(CELL_CHARS))
}

/// True for the characters that reorder text (bidi embeddings, overrides, isolates and marks): a
/// hostile name with U+202E would otherwise display its neighbours backwards.
pub fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// A plain aligned text table; control characters are shown as `�` and bidi controls dropped, so
/// a hostile name cannot break the terminal layout. Cells longer than `max_cell` characters are cut
/// with `…`; `None` shows them whole.
pub fn table_cells(columns: &[&str], rows: Vec<Vec<String>>, max_cell: Option<usize>) -> String {
    let clean = |cell: &str| -> String {
        let mut out: String = cell
            .chars()
            .filter(|c| !is_bidi_control(*c))
            .map(|c| if c.is_control() { '�' } else { c })
            .collect();
        if let Some(max) = max_cell {
            if out.chars().count() > max {
                out = out.chars().take(max.saturating_sub(1)).collect::<String>() + "…";
            }
        }
        out
    };
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| clean(c)).collect())
        .collect();
    let mut widths: Vec<usize> = columns.iter().map(|c| c.chars().count()).collect();
    for row in &rows {
        for (idx, cell) in row.iter().enumerate() {
            widths[idx] = widths[idx].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &[String]| {
        let mut text = String::new();
        for (idx, cell) in cells.iter().enumerate() {
            let pad = widths[idx].saturating_sub(cell.chars().count());
            let _ = write!(text, "{cell}{}  ", " ".repeat(pad));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(
        &mut out,
        &columns.iter().map(|c| c.to_uppercase()).collect::<Vec<_>>(),
    );
    for row in &rows {
        line(&mut out, row);
    }
    if rows.is_empty() {
        out.push_str("(none)\n");
    }
    out
}

fn opt<T: ToString>(value: &Option<T>) -> String {
    value.as_ref().map(ToString::to_string).unwrap_or_default()
}

impl Tabular for User {
    const COLUMNS: &'static [&'static str] = &["id", "email", "name", "role", "added_at"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.email.clone(),
            self.name.clone(),
            self.role.to_string(),
            ts(&self.added_at),
        ]
    }
}

impl Tabular for Invite {
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "email",
        "role",
        "status",
        "invited_at",
        "expires_at",
        "accepted_at",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.email.clone(),
            self.role.to_string(),
            self.status.to_string(),
            ts(&self.invited_at),
            ts(&self.expires_at),
            self.accepted_at.as_ref().map(ts).unwrap_or_default(),
        ]
    }
}

impl Tabular for Workspace {
    const COLUMNS: &'static [&'static str] =
        &["id", "name", "display_color", "created_at", "archived_at"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.name.clone(),
            self.display_color.clone(),
            ts(&self.created_at),
            self.archived_at.as_ref().map(ts).unwrap_or_default(),
        ]
    }
}

impl Tabular for WorkspaceMember {
    const COLUMNS: &'static [&'static str] = &["workspace_id", "user_id", "workspace_role"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.workspace_id.clone(),
            self.user_id.clone(),
            self.workspace_role.to_string(),
        ]
    }
}

impl Tabular for ApiKey {
    const COLUMNS: &'static [&'static str] = &[
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
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.name.clone(),
            self.status.to_string(),
            opt(&self.workspace_id),
            ts(&self.created_at),
            self.created_by
                .as_ref()
                .map(|a| a.id.clone())
                .unwrap_or_default(),
            self.created_by
                .as_ref()
                .map(|a| a.kind.clone())
                .unwrap_or_default(),
            self.principal
                .as_ref()
                .map(|p| p.kind.clone())
                .unwrap_or_default(),
            self.principal
                .as_ref()
                .and_then(|p| p.user_id.clone())
                .unwrap_or_default(),
            opt(&self.partial_key_hint),
            self.expires_at.as_ref().map(ts).unwrap_or_default(),
            self.scope
                .as_ref()
                .map(|s| s.kind.clone())
                .unwrap_or_default(),
        ]
    }
}

impl Tabular for Change {
    const COLUMNS: &'static [&'static str] = &[
        "kind", "change", "id", "subject", "field", "before", "after",
    ];
    fn cells(&self) -> Vec<String> {
        let id = match (&self.id, &self.workspace_id, &self.user_id) {
            (Some(id), _, _) => id.clone(),
            (None, Some(w), Some(u)) => format!("{w}/{u}"),
            _ => String::new(),
        };
        vec![
            self.kind.to_string(),
            self.change.to_string(),
            id,
            self.subject(),
            self.field.unwrap_or_default().to_owned(),
            opt(&self.before),
            opt(&self.after),
        ]
    }
}

impl Tabular for RunRecord {
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "status",
        "started_at",
        "finished_at",
        "members",
        "invites",
        "workspaces",
        "workspace_members",
        "api_keys",
        "admins",
        "requests",
        "retries",
        "suspect",
        "accepted_by",
        "error",
    ];
    fn cells(&self) -> Vec<String> {
        let count = |f: fn(&crate::org::Counts) -> u64| {
            self.counts
                .as_ref()
                .map(|c| f(c).to_string())
                .unwrap_or_default()
        };
        vec![
            self.id.to_string(),
            self.status.as_str().to_owned(),
            ts(&self.started_at),
            self.finished_at.as_ref().map(ts).unwrap_or_default(),
            count(|c| c.members),
            count(|c| c.invites),
            count(|c| c.workspaces),
            count(|c| c.workspace_members),
            count(|c| c.api_keys),
            opt(&self.admins),
            opt(&self.requests),
            opt(&self.retries),
            opt(&self.suspect),
            match (&self.accepted_by, &self.accepted_at) {
                (Some(who), Some(at)) => format!("{who} at {}", ts(at)),
                _ => String::new(),
            },
            opt(&self.error),
        ]
    }
}

impl Tabular for FindingRecord {
    const COLUMNS: &'static [&'static str] = &[
        "rule",
        "severity",
        "status",
        "subject_kind",
        "subject_id",
        "subject",
        "evidence",
        "action",
        "controls",
        "first_seen",
        "last_seen",
        "resolved_at",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.rule.clone(),
            self.severity.as_str().to_owned(),
            self.status.as_str().to_owned(),
            self.subject_kind.as_str().to_owned(),
            self.subject_id.clone(),
            self.subject.clone(),
            self.evidence.clone(),
            self.action.as_str().to_owned(),
            self.controls.join("; "),
            ts(&self.first_seen),
            ts(&self.last_seen),
            self.resolved_at.as_ref().map(ts).unwrap_or_default(),
        ]
    }
}

impl Tabular for ActionRecord {
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "run_id",
        "action",
        "subject_kind",
        "subject_id",
        "subject",
        "finding",
        "status",
        "reason",
        "http_status",
        "request_id",
        "before",
        "planned_at",
        "finished_at",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.run_id.to_string(),
            self.action.as_str().to_owned(),
            self.subject_kind.as_str().to_owned(),
            self.subject_id.clone(),
            self.subject.clone(),
            self.finding.clone(),
            self.status.as_str().to_owned(),
            opt(&self.reason),
            opt(&self.http_status),
            opt(&self.request_id),
            opt(&self.before),
            ts(&self.planned_at),
            self.finished_at.as_ref().map(ts).unwrap_or_default(),
        ]
    }
}

impl Tabular for crate::remediate::PlannedAction {
    const COLUMNS: &'static [&'static str] = &[
        "action",
        "subject_kind",
        "subject_id",
        "subject",
        "rule",
        "eligible",
        "eligible_at",
        "blocked_by",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.action.as_str().to_owned(),
            self.subject_kind.as_str().to_owned(),
            self.subject_id.clone(),
            self.subject.clone(),
            self.rule.to_string(),
            if self.eligible { "yes" } else { "no" }.to_owned(),
            self.eligible_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            self.failing_guards(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_cells_drop_bidi_controls_and_are_cut_only_when_asked() {
        let long = format!("evil\u{202E}gpj.exe\u{2066}{}", "x".repeat(100));
        let cut = table_cells(&["a"], vec![vec![long.clone()]], Some(CELL_CHARS));
        assert!(
            !cut.contains('\u{202E}') && !cut.contains('\u{2066}'),
            "{cut:?}"
        );
        assert!(cut.contains("evilgpj.exe") && cut.contains('…'), "{cut:?}");
        assert_eq!(cut.lines().nth(1).unwrap().chars().count(), CELL_CHARS);
        let whole = table_cells(&["a"], vec![vec![long]], None);
        assert!(
            whole.contains(&format!("evilgpj.exe{}", "x".repeat(100))),
            "{whole:?}"
        );
        assert!(!whole.contains('…'));
    }

    #[test]
    fn formula_cells_are_neutralised() {
        let cases = [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("plain", "plain"),
            ("", ""),
            ("a=b", "a=b"),
        ];
        for (input, want) in cases {
            assert_eq!(neutralize(input), want, "{input:?}");
        }
    }

    #[test]
    fn table_escapes_control_characters() {
        let text = table(&["a"], vec![vec!["x\r\ny\u{1b}[31m".to_owned()]]);
        assert!(!text.contains('\r') && !text.contains('\u{1b}'), "{text:?}");
    }
}
