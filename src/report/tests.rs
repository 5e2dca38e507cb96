//! Table tests of the report: hand-built states and findings, hostile data in every field, CSVs
//! parsed back with the `csv` crate, and one exact rendering of a small clean report.

use chrono::{DateTime, Utc};

use super::*;
use crate::org::diff;
use crate::org::{Actor, Organization, Principal};
use crate::policy::{self, Action, ActionStatus, SubjectKind};

// ---- Fixtures -----------------------------------------------------------------------------------

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

/// 10 KB of one name: it must reach the CSV whole and the email cut.
fn huge() -> String {
    format!("huge{}", "A".repeat(10 * 1024))
}

/// Hostile values: formula prefixes, line breaks, markup, bidi controls, emoji.
const HOSTILE: &[&str] = &[
    "Line one\r\nLine two",
    "=HYPERLINK(\"http://x\")",
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1)",
    "\tTabbed",
    "\rReturned",
    "<script>alert('x')</script>",
    "\"><img src=x onerror=alert(1)>",
    "\u{202E}gnp.exe\u{202C} \u{2066}isolated\u{2069} \u{200F}mark\u{200E} \u{202B}embed",
    "Emoji 🚀 👩\u{200D}💻 ok",
    "a&b 'quoted'",
];

fn user(id: &str, email: &str, name: &str, role: &str) -> User {
    User {
        id: id.into(),
        email: email.into(),
        name: name.into(),
        role: role.into(),
        added_at: at("2025-06-01T09:00:00Z"),
    }
}

fn invite(id: &str, email: &str, status: &str) -> Invite {
    Invite {
        id: id.into(),
        email: email.into(),
        role: "developer".into(),
        invited_at: at("2025-11-01T09:00:00Z"),
        expires_at: at("2025-11-22T09:00:00Z"),
        status: status.into(),
        accepted_at: None,
    }
}

fn key(id: &str, name: &str, owner: Option<&str>) -> ApiKey {
    ApiKey {
        id: id.into(),
        name: name.into(),
        workspace_id: Some("wrkspc_1".into()),
        created_at: at("2025-07-01T10:00:00Z"),
        created_by: owner.map(|id| Actor {
            id: id.into(),
            kind: "user".into(),
        }),
        partial_key_hint: Some("sk-ant-api03-R2D...igAA".into()),
        status: "active".into(),
        expires_at: None,
        principal: None,
        scope: None,
    }
}

fn workspace(id: &str, name: &str) -> Workspace {
    Workspace {
        id: id.into(),
        name: name.into(),
        display_color: "#6C5BB9".into(),
        created_at: at("2025-01-01T00:00:00Z"),
        archived_at: None,
    }
}

fn membership(workspace_id: &str, user_id: &str) -> WorkspaceMember {
    WorkspaceMember {
        workspace_id: workspace_id.into(),
        user_id: user_id.into(),
        workspace_role: "workspace_developer".into(),
    }
}

fn state(name: &str, members: Vec<User>) -> OrgState {
    OrgState {
        run_id: 42,
        taken_at: at("2026-02-02T08:00:00Z"),
        organization: Organization {
            id: "org_01".into(),
            name: name.into(),
        },
        members,
        invites: vec![invite("invite_1", "new@example.com", "pending")],
        workspaces: vec![workspace("wrkspc_1", "Research")],
        workspace_members: vec![membership("wrkspc_1", "user_1")],
        api_keys: vec![key("apikey_1", "ci", Some("user_1"))],
    }
}

fn finding(
    rule: impl std::fmt::Display,
    severity: Severity,
    status: FindingStatus,
    subject_id: &str,
    subject: &str,
) -> FindingRecord {
    FindingRecord {
        rule: rule.to_string(),
        severity,
        subject_kind: SubjectKind::Member,
        subject_id: subject_id.into(),
        subject: subject.into(),
        evidence: format!("{subject} breaks {rule}"),
        action: Action::RemoveMember,
        status,
        // A finding the last audit saw first is new in any period that ends with it.
        first_seen: if status == FindingStatus::New {
            at("2026-02-02T08:00:00Z")
        } else {
            at("2026-01-05T08:00:00Z")
        },
        last_seen: at("2026-02-02T08:00:00Z"),
        resolved_at: (status == FindingStatus::Resolved).then(|| at("2026-02-02T08:00:00Z")),
        controls: policy::RuleId::parse(&rule.to_string())
            .map(policy::controls_for)
            .unwrap_or_default()
            .iter()
            .map(|c| (*c).to_owned())
            .collect(),
    }
}

fn action(id: i64, status: ActionStatus, subject: &str) -> ActionRecord {
    ActionRecord {
        id,
        run_id: 42,
        action: Action::DeleteInvite,
        subject_kind: SubjectKind::Invite,
        subject_id: format!("invite_{id}"),
        subject: subject.into(),
        finding: format!("stale_invites:invite:invite_{id}"),
        status,
        reason: (status == ActionStatus::Failed).then(|| "HTTP 500: upstream said no".to_owned()),
        http_status: (status != ActionStatus::Skipped).then_some(200),
        request_id: Some(format!("req_{id}")),
        before: Some("{\"id\":\"invite\"}".into()),
        planned_at: at("2026-02-02T08:01:00Z"),
        finished_at: (status != ActionStatus::Planned).then(|| at("2026-02-02T08:01:02Z")),
    }
}

fn outcomes() -> Vec<RuleOutcome> {
    policy::RULE_IDS
        .iter()
        .map(|&rule| RuleOutcome {
            rule,
            status: match rule {
                policy::OFFBOARDING_ROSTER => {
                    RuleStatus::NotEvaluated("departed.csv: cannot read: not found".into())
                }
                policy::EXCESS_ADMINS => RuleStatus::Disabled,
                _ => RuleStatus::Evaluated,
            },
            n_findings: 0,
        })
        .collect()
}

/// Hostile data in every user-controlled field of every entity, finding, change and action.
struct Hostile {
    state: OrgState,
    findings: Vec<FindingRecord>,
    rules: Vec<RuleOutcome>,
    changes: Vec<Change>,
    actions: Vec<ActionRecord>,
}

impl Hostile {
    fn new() -> Hostile {
        let mut values: Vec<String> = HOSTILE.iter().map(|v| (*v).to_owned()).collect();
        values.push(huge());
        let n = values.len();
        let members: Vec<User> = values
            .iter()
            .enumerate()
            .map(|(i, v)| user(&format!("user_{i:02}"), v, v, "developer"))
            .collect();
        let mut state = state(&values.join(" | "), members);
        state.invites = values
            .iter()
            .enumerate()
            .map(|(i, v)| invite(&format!("invite_{i:02}"), v, "pending"))
            .collect();
        state.workspaces = values
            .iter()
            .enumerate()
            .map(|(i, v)| workspace(&format!("wrkspc_{i:02}"), v))
            .collect();
        state.api_keys = values
            .iter()
            .enumerate()
            .map(|(i, v)| key(&format!("apikey_{i:02}"), v, Some(&format!("user_{i:02}"))))
            .collect();
        // Hostile ids too: the API is not trusted to send tidy ids.
        state.workspace_members = values.iter().map(|v| membership("wrkspc_00", v)).collect();

        let mut before = state.clone();
        for member in &mut before.members {
            member.role = "user".into();
        }
        before.api_keys.truncate(1);
        let changes = diff(&before, &state);

        // Every value but the last is shown in some finding table; the last one is exempted.
        let statuses = [
            FindingStatus::New,
            FindingStatus::Open,
            FindingStatus::Resolved,
        ];
        let findings = values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let mut f = finding(
                    policy::DEPARTED_DOMAINS,
                    Severity::High,
                    if i + 1 == n {
                        FindingStatus::Exempted
                    } else {
                        statuses[i % 3]
                    },
                    v,
                    v,
                );
                f.evidence = v.clone();
                f.controls = vec![v.clone(), "SOC 2 CC6.2".into()];
                f
            })
            .collect();
        let actions = (0..n)
            .map(|i| {
                let mut a = action(
                    i as i64,
                    if i % 2 == 0 {
                        ActionStatus::Failed
                    } else {
                        ActionStatus::Succeeded
                    },
                    &values[i],
                );
                a.reason = Some(values[i].clone());
                a.request_id = Some(values[i].clone());
                a.before = Some(values[i].clone());
                a.subject_id = values[i].clone();
                a
            })
            .collect();
        let mut rules = outcomes();
        rules[2].status = RuleStatus::NotEvaluated(values.join(" "));
        Hostile {
            state,
            findings,
            rules,
            changes,
            actions,
        }
    }

    fn input(&self) -> ReportInput<'_> {
        ReportInput {
            state: &self.state,
            findings: &self.findings,
            rules: &self.rules,
            changes: &self.changes,
            changes_since: Some(at("2026-01-26T08:00:00Z")),
            actions: &self.actions,
            top_n: 50,
            generated_at: at("2026-02-02T09:00:00Z"),
        }
    }
}

/// The UTF-8 byte order mark every CSV starts with by default.
const BOM: &[u8] = "\u{FEFF}".as_bytes();

fn parse_csv(bytes: &[u8]) -> Vec<Vec<String>> {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(bytes);
    reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

fn file<'r>(report: &'r RenderedReport, name: &str) -> &'r [u8] {
    &report
        .files
        .iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no {name}"))
        .1
}

const BIDI: &[char] = &[
    '\u{061C}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}',
    '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}',
];

// ---- CSV ----------------------------------------------------------------------------------------

#[test]
fn csv_files_are_named_and_headed_as_documented() {
    let h = Hostile::new();
    let files = csv_files(&h.input());
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    let documented: Vec<&str> = CSV_COLUMNS.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, documented);
    assert_eq!(
        documented,
        [
            "findings.csv",
            "members.csv",
            "invites.csv",
            "api_keys.csv",
            "workspaces.csv",
            "workspace_members.csv",
            "changes.csv",
            "actions.csv",
            "unused_access.csv"
        ]
    );
    for ((name, body), (_, columns)) in files.iter().zip(CSV_COLUMNS) {
        let rows = parse_csv(body);
        assert_eq!(rows[0], *columns, "{name} header");
        for row in &rows {
            assert_eq!(row.len(), columns.len(), "{name}: {row:?}");
        }
        assert!(body.ends_with(b"\r\n"), "{name} ends with CRLF");
        assert!(
            body.starts_with(BOM),
            "{name} starts with a byte order mark"
        );
        assert!(std::str::from_utf8(body).is_ok(), "{name} is UTF-8");
    }
}

#[test]
fn findings_csv_columns_are_the_documented_ones() {
    assert_eq!(
        CSV_COLUMNS[0].1,
        [
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
            "resolved_at"
        ]
    );
    // api_keys.csv is `show api-keys --format csv` plus the owner.
    assert_eq!(&KEY_COLUMNS[..ApiKey::COLUMNS.len()], ApiKey::COLUMNS);
    assert_eq!(
        &KEY_COLUMNS[ApiKey::COLUMNS.len()..],
        ["owner_kind", "owner_id", "owner_email"]
    );
}

#[test]
fn every_csv_cell_is_neutralised_and_complete() {
    let h = Hostile::new();
    let report = render(&h.input());
    for (name, body) in &report.files {
        for row in parse_csv(body) {
            for cell in row {
                assert!(
                    !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                    "{name}: formula cell {cell:?}"
                );
            }
        }
    }
    // Each hostile value comes back exactly, with the quote prefix where it needs one.
    let expected = |v: &str| crate::output::neutralize(v).into_owned();
    let mut values: Vec<String> = HOSTILE.iter().map(|v| (*v).to_owned()).collect();
    values.push(huge());
    let columns = [
        ("members.csv", "email"),
        ("members.csv", "name"),
        ("invites.csv", "email"),
        ("api_keys.csv", "name"),
        ("api_keys.csv", "owner_email"),
        ("workspaces.csv", "name"),
        ("workspace_members.csv", "user_id"),
        ("findings.csv", "subject"),
        ("findings.csv", "subject_id"),
        ("findings.csv", "evidence"),
        ("changes.csv", "subject"),
        ("actions.csv", "subject"),
        ("actions.csv", "reason"),
        ("actions.csv", "request_id"),
        ("actions.csv", "before"),
    ];
    for (name, column) in columns {
        let rows = parse_csv(file(&report, name));
        let idx = rows[0].iter().position(|c| c == column).unwrap();
        let cells: Vec<&str> = rows[1..].iter().map(|r| r[idx].as_str()).collect();
        for value in &values {
            assert!(
                cells.contains(&expected(value).as_str()),
                "{name}.{column} lacks {:?}",
                &value[..value.len().min(40)]
            );
        }
    }
    // Controls are joined with "; " and the joined cell is neutralised as a whole.
    let rows = parse_csv(file(&report, "findings.csv"));
    let controls: Vec<&str> = rows[1..].iter().map(|r| r[8].as_str()).collect();
    assert!(controls.contains(&"'=HYPERLINK(\"http://x\"); SOC 2 CC6.2"));
    assert!(controls.contains(&"'-2+3; SOC 2 CC6.2"));
}

#[test]
fn csv_rows_are_sorted() {
    let h = Hostile::new();
    let report = render(&h.input());
    let ids = |name: &str| -> Vec<String> {
        parse_csv(file(&report, name))[1..]
            .iter()
            .map(|r| r[0].clone())
            .collect()
    };
    for name in [
        "members.csv",
        "invites.csv",
        "api_keys.csv",
        "workspaces.csv",
    ] {
        let got = ids(name);
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(got, sorted, "{name}");
    }
    let actions: Vec<i64> = ids("actions.csv")
        .iter()
        .map(|i| i.parse().unwrap())
        .collect();
    assert!(actions.windows(2).all(|w| w[0] < w[1]));

    let findings = vec![
        finding(
            "stale_invites",
            Severity::Low,
            FindingStatus::Open,
            "a",
            "a",
        ),
        finding(
            "orphaned_keys",
            Severity::Critical,
            FindingStatus::Resolved,
            "b",
            "b",
        ),
        finding(
            "orphaned_keys",
            Severity::Critical,
            FindingStatus::New,
            "c",
            "c",
        ),
        finding(
            "departed_domains",
            Severity::High,
            FindingStatus::Open,
            "d",
            "d",
        ),
        finding(
            "departed_domains",
            Severity::High,
            FindingStatus::Exempted,
            "e",
            "e",
        ),
    ];
    let input = ReportInput {
        findings: &findings,
        ..h.input()
    };
    let rows = parse_csv(&csv_files(&input)[0].1);
    let order: Vec<&str> = rows[1..].iter().map(|r| r[4].as_str()).collect();
    assert_eq!(order, ["c", "b", "d", "e", "a"]);
}

#[test]
fn key_owner_columns() {
    let mut s = state(
        "Acme",
        vec![user("user_1", "ann@example.com", "Ann", "developer")],
    );
    let mut service = key("apikey_2", "svc", None);
    service.principal = Some(Principal {
        kind: "service_account_actor".into(),
        user_id: None,
        service_account_id: Some("svac_1".into()),
    });
    s.api_keys = vec![
        key("apikey_1", "mine", Some("user_1")),
        service,
        key("apikey_3", "nobody", None),
        key("apikey_4", "gone", Some("user_gone")),
    ];
    let input = ReportInput {
        state: &s,
        findings: &[],
        rules: &[],
        changes: &[],
        changes_since: None,
        actions: &[],
        top_n: 5,
        generated_at: at("2026-02-02T09:00:00Z"),
    };
    let owners = |files: &[(String, Vec<u8>)]| -> Vec<(String, String, String)> {
        parse_csv(&files[3].1)[1..]
            .iter()
            .map(|r| (r[12].clone(), r[13].clone(), r[14].clone()))
            .collect()
    };
    let row = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        owners(&csv_files(&input)),
        [
            row("user", "user_1", "ann@example.com"),
            row("non_person", "", ""),
            row("unattributed", "", ""),
            row("user", "user_gone", ""),
        ]
    );
    // The owner of an orphaned key is a former member: history knows their email.
    let history: HashMap<String, String> = [
        ("user_gone".to_owned(), "gone@example.com".to_owned()),
        ("user_1".to_owned(), "ann.old@example.com".to_owned()),
    ]
    .into();
    let ctx = ReportContext {
        emails: &history,
        ..ReportContext::basic(None)
    };
    assert_eq!(
        owners(&csv_files_with(&input, &ctx)),
        [
            // The current snapshot wins over history.
            row("user", "user_1", "ann@example.com"),
            row("non_person", "", ""),
            row("unattributed", "", ""),
            row("user", "user_gone", "gone@example.com"),
        ]
    );
}

#[test]
fn empty_lists_give_header_only_files() {
    let mut s = state("Acme", vec![]);
    s.invites.clear();
    s.workspaces.clear();
    s.workspace_members.clear();
    s.api_keys.clear();
    let input = ReportInput {
        state: &s,
        findings: &[],
        rules: &[],
        changes: &[],
        changes_since: None,
        actions: &[],
        top_n: 5,
        generated_at: at("2026-02-02T09:00:00Z"),
    };
    for ((name, body), (_, columns)) in csv_files(&input).iter().zip(CSV_COLUMNS) {
        assert_eq!(
            String::from_utf8(body.clone()).unwrap(),
            format!("\u{FEFF}{}\r\n", columns.join(",")),
            "{name}"
        );
    }
    let no_bom = ReportContext {
        csv_bom: false,
        ..ReportContext::basic(None)
    };
    let actions = &csv_files_with(&input, &no_bom)[7].1;
    assert_eq!(
        actions.as_slice(),
        b"id,run_id,action,subject_kind,subject_id,subject,finding,status,reason,http_status,\
request_id,before,planned_at,finished_at\r\n"
    );
}

#[test]
fn csv_times_are_local_and_names_stand_beside_ids() {
    let mut s = state(
        "Acme",
        vec![user("user_1", "ann@example.com", "Ann", "developer")],
    );
    s.workspace_members = vec![
        membership("wrkspc_1", "user_1"),
        membership("wrkspc_1", "user_gone"),
    ];
    let mut before = s.clone();
    before.workspace_members.clear();
    let changes = diff(&before, &s);
    let findings = vec![finding(
        "stale_invites",
        Severity::Low,
        FindingStatus::Open,
        "invite_1",
        "new@example.com",
    )];
    let input = ReportInput {
        state: &s,
        findings: &findings,
        rules: &[],
        changes: &changes,
        changes_since: Some(at("2026-01-26T08:00:00Z")),
        actions: &[],
        top_n: 5,
        generated_at: at("2026-02-02T09:00:00Z"),
    };
    let history: HashMap<String, String> =
        [("user_gone".to_owned(), "gone@example.com".to_owned())].into();
    let ctx = ReportContext {
        timezone: "Europe/Paris".parse().unwrap(),
        emails: &history,
        ..ReportContext::basic(input.changes_since)
    };
    let files = csv_files_with(&input, &ctx);
    // findings.csv: first_seen 2026-01-05 08:00 UTC is 09:00 in Paris, without a zone suffix
    // or fractions, which every spreadsheet parses.
    let rows = parse_csv(&files[0].1);
    assert_eq!(rows[1][9], "2026-01-05 09:00:00");
    assert_eq!(rows[1][10], "2026-02-02 09:00:00");
    assert_eq!(rows[1][11], "");
    let rows = parse_csv(file_of(&files, "members.csv"));
    assert_eq!(rows[1][4], "2025-06-01 11:00:00", "CEST in June");
    // workspace_members.csv and changes.csv name the workspace and the member.
    let rows = parse_csv(file_of(&files, "workspace_members.csv"));
    assert_eq!(
        rows[1..],
        [
            vec![
                "wrkspc_1",
                "user_1",
                "workspace_developer",
                "Research",
                "ann@example.com"
            ],
            vec![
                "wrkspc_1",
                "user_gone",
                "workspace_developer",
                "Research",
                "gone@example.com"
            ],
        ]
    );
    let rows = parse_csv(file_of(&files, "changes.csv"));
    assert_eq!(rows.len(), 3, "{rows:?}");
    for row in &rows[1..] {
        assert_eq!(row[7], "Research", "{row:?}");
    }
    let emails: Vec<&str> = rows[1..].iter().map(|r| r[8].as_str()).collect();
    assert_eq!(emails, ["ann@example.com", "gone@example.com"]);
}

fn file_of<'f>(files: &'f [(String, Vec<u8>)], name: &str) -> &'f [u8] {
    &files.iter().find(|(n, _)| n == name).unwrap().1
}

// ---- Email --------------------------------------------------------------------------------------

/// A report input over `s` with the given findings and nothing else.
fn input_of<'a>(s: &'a OrgState, findings: &'a [FindingRecord]) -> ReportInput<'a> {
    ReportInput {
        state: s,
        findings,
        rules: &[],
        changes: &[],
        changes_since: Some(at("2026-01-26T08:00:00Z")),
        actions: &[],
        top_n: 5,
        generated_at: at("2026-02-02T09:00:00Z"),
    }
}

/// Every line of the plain text is at most 78 characters (RFC 5322's recommendation).
fn assert_short_lines(text: &str) {
    for line in text.lines() {
        assert!(
            line.chars().count() <= 78,
            "{} characters: {line:?}",
            line.chars().count()
        );
    }
}

/// The text between the heading that starts with `title` and the next blank line.
fn text_section<'t>(text: &'t str, title: &str) -> &'t str {
    let start = text
        .find(&format!("\n{title}"))
        .unwrap_or_else(|| panic!("no section {title:?} in\n{text}"));
    let rest = &text[start + 1..];
    &rest[..rest.find("\n\n").unwrap_or(rest.len())]
}

#[test]
fn subject_is_one_safe_line() {
    let cases: &[(&str, usize, &str)] = &[
        ("Acme", 0, "[orgwarden] Acme: 0 new, 0 open · 26 Jan–2 Feb"),
        (
            "Acme",
            1,
            "[orgwarden] Acme: 1 new (1 low), 1 open · 26 Jan–2 Feb",
        ),
        (
            "Acme",
            12,
            "[orgwarden] Acme: 6 new (6 low), 12 open · 26 Jan–2 Feb",
        ),
        (
            "Acme\r\nBcc: evil@example.com",
            2,
            "[orgwarden] Acme Bcc: evil@example.com: 1 new (1 low), 2 open · 26 Jan–2 Feb",
        ),
        (
            "\u{202E}Acme\u{202C}\t 🚀\u{0}x",
            2,
            "[orgwarden] Acme 🚀 x: 1 new (1 low), 2 open · 26 Jan–2 Feb",
        ),
        (
            "  \r\n ",
            0,
            "[orgwarden] org_01: 0 new, 0 open · 26 Jan–2 Feb",
        ),
    ];
    for (name, active, want) in cases {
        let s = state(name, vec![]);
        let findings: Vec<FindingRecord> = (0..*active)
            .map(|i| {
                let status = if i % 2 == 0 {
                    FindingStatus::New
                } else {
                    FindingStatus::Open
                };
                finding("stale_invites", Severity::Low, status, &i.to_string(), "x")
            })
            .chain([finding(
                "stale_invites",
                Severity::Low,
                FindingStatus::Resolved,
                "r",
                "r",
            )])
            .collect();
        assert_eq!(subject(&input_of(&s, &findings)), *want, "{name:?}");
    }

    let h = Hostile::new();
    let subject = render(&h.input()).subject;
    assert!(!subject.chars().any(|c| c.is_control()), "{subject:?}");
    assert!(!subject.contains(BIDI), "{subject:?}");
    assert!(subject.chars().count() < 160, "{}", subject.chars().count());
    assert!(subject.starts_with("[orgwarden] INCOMPLETE: Line one Line two | =HYPERLINK"));
    assert!(
        subject.ends_with("…: 4 new (4 high), 8 open · 26 Jan–2 Feb"),
        "{subject}"
    );
}

#[test]
fn subject_names_the_highest_new_severity_the_period_and_problems() {
    let s = state("Acme", vec![]);
    let findings = vec![
        finding(
            "orphaned_keys",
            Severity::Critical,
            FindingStatus::New,
            "1",
            "a",
        ),
        finding("stale_invites", Severity::Low, FindingStatus::New, "2", "b"),
        finding("stale_invites", Severity::Low, FindingStatus::New, "3", "c"),
        finding(
            "departed_domains",
            Severity::High,
            FindingStatus::Open,
            "4",
            "d",
        ),
    ];
    let input = input_of(&s, &findings);
    let with = |ctx: &ReportContext<'_>| render_with(&input, ctx).subject;
    assert_eq!(
        with(&ReportContext::basic(input.changes_since)),
        "[orgwarden] Acme: 3 new (1 critical), 4 open · 26 Jan–2 Feb"
    );
    // Within one month the month is said once; the first report names its day.
    assert_eq!(
        with(&ReportContext::basic(Some(at("2026-02-01T00:00:00Z")))),
        "[orgwarden] Acme: 3 new (1 critical), 4 open · 1–2 Feb"
    );
    assert_eq!(
        with(&ReportContext::basic(Some(at("2026-02-02T01:00:00Z")))),
        "[orgwarden] Acme: 3 new (1 critical), 4 open · 2 Feb"
    );
    assert_eq!(
        with(&ReportContext::basic(None)),
        "[orgwarden] Acme: first report, 4 open · 2 Feb"
    );
    // In the configured zone: 23:30 UTC on 1 Feb is already 2 Feb in Tokyo.
    let tokyo = ReportContext {
        timezone: "Asia/Tokyo".parse().unwrap(),
        ..ReportContext::basic(Some(at("2026-01-31T23:30:00Z")))
    };
    assert_eq!(
        with(&tokyo),
        "[orgwarden] Acme: 3 new (1 critical), 4 open · 1–2 Feb"
    );
    let failures = [PeriodFailure {
        what: "snapshot run 43".into(),
        at: at("2026-02-02T08:30:00Z"),
        error: "HTTP 401: invalid x-api-key".into(),
    }];
    let failed = ReportContext {
        failures: &failures,
        ..ReportContext::basic(input.changes_since)
    };
    assert_eq!(
        with(&failed),
        "[orgwarden] STALE DATA: Acme: 3 new (1 critical), 4 open · 26 Jan–2 Feb"
    );
    let stale = ReportContext {
        audit_period: Some(chrono::Duration::minutes(20)),
        ..ReportContext::basic(input.changes_since)
    };
    assert!(with(&stale).starts_with("[orgwarden] STALE DATA: Acme"));
    let fresh = ReportContext {
        audit_period: Some(chrono::Duration::hours(1)),
        ..ReportContext::basic(input.changes_since)
    };
    assert!(with(&fresh).starts_with("[orgwarden] Acme"));
    let rules = outcomes();
    let not_evaluated = ReportInput {
        rules: &rules,
        ..input
    };
    assert!(render_with(&not_evaluated, &fresh)
        .subject
        .starts_with("[orgwarden] INCOMPLETE: Acme"));
    // A roster nobody configured is a choice: no banner, no flag; the rule table still says it.
    let mut rules = outcomes();
    rules[2].status = RuleStatus::NotEvaluated(policy::ROSTER_NOT_CONFIGURED.into());
    let unconfigured = ReportInput {
        rules: &rules,
        ..input
    };
    let report = render_with(&unconfigured, &fresh);
    assert!(
        report.subject.starts_with("[orgwarden] Acme"),
        "{}",
        report.subject
    );
    assert!(!report.text.contains("!!"), "{}", report.text);
    assert!(report.text.contains("[not evaluated]"));
    // Nor is the first snapshot, which has no previous one to compare with.
    let mut rules = outcomes();
    rules[2].status = RuleStatus::Evaluated;
    rules[6].status = RuleStatus::NotEvaluated(policy::NO_PREVIOUS_SNAPSHOT.into());
    assert_eq!(rules[6].rule, policy::PRIVILEGE_ESCALATION);
    let first = ReportInput {
        rules: &rules,
        ..input
    };
    let report = render_with(&first, &fresh);
    assert!(!report.text.contains("!!"), "{}", report.text);
}

#[test]
fn verdicts() {
    let s = |new, open, resolved, critical, high| Summary {
        new,
        open,
        resolved,
        exempted: 0,
        critical,
        high,
        medium: new + open - critical - high,
        low: 0,
    };
    let cases = [
        (
            s(3, 9, 1, 2, 0),
            "3 new findings, 1 resolved, 12 open; 2 critical",
        ),
        (
            s(1, 0, 0, 0, 1),
            "1 new finding, 0 resolved, 1 open; 1 high",
        ),
        (
            s(0, 4, 2, 1, 3),
            "0 new findings, 2 resolved, 4 open; 1 critical, 3 high",
        ),
        (
            s(0, 4, 0, 0, 0),
            "0 new findings, 0 resolved, 4 open; none critical or high",
        ),
        (s(0, 0, 0, 0, 0), "No open findings."),
        (
            s(0, 0, 1, 0, 0),
            "No open findings; 1 finding resolved since the last report.",
        ),
        (
            s(0, 0, 5, 0, 0),
            "No open findings; 5 findings resolved since the last report.",
        ),
    ];
    for (summary, want) in cases {
        assert_eq!(verdict(&summary), want);
    }
}

#[test]
fn counts_by_status_severity_and_rule() {
    let findings = vec![
        finding(
            "orphaned_keys",
            Severity::Critical,
            FindingStatus::New,
            "1",
            "a",
        ),
        finding(
            "orphaned_keys",
            Severity::Critical,
            FindingStatus::Open,
            "2",
            "b",
        ),
        finding(
            "orphaned_keys",
            Severity::High,
            FindingStatus::Resolved,
            "3",
            "c",
        ),
        finding(
            "stale_invites",
            Severity::Low,
            FindingStatus::Open,
            "4",
            "d",
        ),
        finding(
            "stale_invites",
            Severity::Low,
            FindingStatus::Exempted,
            "5",
            "e",
        ),
        finding(
            "departed_domains",
            Severity::High,
            FindingStatus::New,
            "6",
            "f",
        ),
        finding(
            "retired_rule",
            Severity::Medium,
            FindingStatus::Resolved,
            "7",
            "g",
        ),
    ];
    assert_eq!(
        summarize(&findings),
        Summary {
            new: 2,
            open: 2,
            resolved: 2,
            exempted: 1,
            critical: 2,
            high: 1,
            medium: 0,
            low: 1,
        }
    );
    let s = state("Acme", vec![]);
    let rules = outcomes();
    let input = ReportInput {
        rules: &rules,
        ..input_of(&s, &findings)
    };
    let ctx = ReportContext::basic(input.changes_since);
    let view = View::new(&input, &ctx);
    let rows: Vec<Vec<String>> = view.rules.iter().map(RuleRow::cells).collect();
    let row = |cells: &[&str]| cells.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        rows,
        [
            row(&[
                "stale_invites",
                "evaluated",
                "0",
                "0",
                "0",
                "1",
                "1",
                "0",
                "1",
                "0"
            ]),
            row(&[
                "departed_domains",
                "evaluated",
                "0",
                "1",
                "0",
                "0",
                "1",
                "1",
                "0",
                "0"
            ]),
            row(&[
                "offboarding_roster",
                "not evaluated",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0"
            ]),
            row(&[
                "orphaned_keys",
                "evaluated",
                "2",
                "0",
                "0",
                "0",
                "2",
                "1",
                "0",
                "1"
            ]),
            row(&[
                "unattributed_keys",
                "evaluated",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0"
            ]),
            row(&[
                "excess_admins",
                "disabled",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0"
            ]),
            row(&[
                "privilege_escalation",
                "evaluated",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0"
            ]),
            row(&[
                "dormant_keys",
                "evaluated",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0"
            ]),
            row(&[
                "dormant_members",
                "evaluated",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0"
            ]),
            row(&[
                "key_hygiene",
                "evaluated",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0"
            ]),
            row(&[
                "directory_departed",
                "evaluated",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0"
            ]),
            row(&[
                "directory_unknown",
                "evaluated",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0"
            ]),
            row(&[
                "assignment_drift",
                "evaluated",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0"
            ]),
            row(&["retired_rule", "", "0", "0", "0", "0", "0", "0", "0", "1"]),
        ]
    );
    assert_eq!(
        view.total.cells(),
        row(&["total", "", "2", "1", "0", "1", "4", "2", "1", "2"])
    );
    let text = render(&input).text;
    assert!(
        text.starts_with(
            "2 new findings in this period, 2 resolved; 4 open (2 critical, 1 high).\n"
        ),
        "{text}"
    );
    // Rules get readable labels in the email; a rule that did not run is in the banner.
    let text = text.replace("\n  ", " ");
    assert!(text.contains("- Key of a former member: 2 open (2 critical, 0 high), 1 new"));
    assert!(text.contains("- Left the company (roster): 0 open (0 critical, 0 high), 0 new, 0 exempted, 0 resolved [not evaluated]"), "{text}");
    assert!(
        text.contains(
            "Rule \"Left the company (roster)\" was not evaluated: departed.csv: cannot read: not found"
        ),
        "{text}"
    );
}

#[test]
fn new_findings_are_those_first_seen_in_the_period() {
    // The store says "new" only for the last audit; the report counts the whole period.
    let s = state("Acme", vec![]);
    let mut tuesday = finding(
        "orphaned_keys",
        Severity::Critical,
        FindingStatus::Open,
        "k",
        "key-tuesday",
    );
    tuesday.first_seen = at("2026-01-27T10:00:00Z");
    let mut older = finding(
        "stale_invites",
        Severity::Low,
        FindingStatus::Open,
        "i",
        "invite-old",
    );
    older.first_seen = at("2026-01-26T08:00:00Z");
    let mut gone = finding(
        "stale_invites",
        Severity::Low,
        FindingStatus::Resolved,
        "g",
        "invite-gone",
    );
    gone.resolved_at = Some(at("2026-01-30T08:00:00Z"));
    let findings = vec![tuesday, older, gone];
    let report = render(&input_of(&s, &findings));
    assert!(
        report
            .text
            .starts_with("1 new finding in this period, 1 resolved; 2 open (1 critical).\n"),
        "{}",
        report.text
    );
    let new = text_section(&report.text, "NEW HIGH AND CRITICAL FINDINGS");
    assert!(new.contains("key-tuesday"), "{new}");
    let open = text_section(&report.text, "STILL OPEN FROM BEFORE");
    // At the period's start exactly is not in the period.
    assert!(
        open.contains("invite-old") && !open.contains("key-tuesday"),
        "{open}"
    );
    let resolved = text_section(&report.text, "RESOLVED IN THIS PERIOD");
    assert!(resolved.contains("invite-gone"), "{resolved}");
    assert!(
        report.subject.contains(": 1 new (1 critical), 2 open"),
        "{}",
        report.subject
    );
}

#[test]
fn the_first_report_says_so_and_lists_each_finding_once() {
    let s = state("Acme", vec![]);
    let findings = vec![
        finding(
            "orphaned_keys",
            Severity::Critical,
            FindingStatus::New,
            "1",
            "crit-key",
        ),
        finding(
            "stale_invites",
            Severity::Low,
            FindingStatus::Open,
            "2",
            "low-invite",
        ),
    ];
    let input = ReportInput {
        changes_since: None,
        ..input_of(&s, &findings)
    };
    let report = render(&input);
    assert!(
        report
            .text
            .starts_with("First report: 2 open findings (1 critical).\n"),
        "{}",
        report.text
    );
    assert!(report.text.contains("This is the first report"));
    for name in ["crit-key", "low-invite"] {
        assert_eq!(
            report.text.matches(&format!(" | {name} | ")).count(),
            1,
            "{name} listed once:\n{}",
            report.text
        );
        assert_eq!(
            report.html.matches(&format!("<bdi>{name}</bdi>")).count(),
            1,
            "{name} listed once in the HTML"
        );
    }
    assert!(!report.text.contains("NEW HIGH AND CRITICAL"));
    assert!(report.text.contains("\nOPEN FINDINGS (2)\n"));
    assert_short_lines(&report.text);
}

#[test]
fn a_failed_snapshot_and_stale_data_open_the_email_with_a_banner() {
    let s = state("Acme", vec![]);
    let findings = vec![finding(
        "stale_invites",
        Severity::Low,
        FindingStatus::Open,
        "1",
        "x",
    )];
    let input = ReportInput {
        generated_at: at("2026-02-03T20:00:00Z"),
        ..input_of(&s, &findings)
    };
    let failures = [
        PeriodFailure {
            what: "snapshot run 43".into(),
            at: at("2026-02-02T09:00:10Z"),
            error: "HTTP 401 authentication_error: invalid x-api-key".into(),
        },
        PeriodFailure {
            what: "snapshot run 44".into(),
            at: at("2026-02-02T10:00:10Z"),
            error: "HTTP 401 authentication_error: invalid x-api-key".into(),
        },
    ];
    let ctx = ReportContext {
        failures: &failures,
        audit_period: Some(chrono::Duration::hours(1)),
        ..ReportContext::basic(input.changes_since)
    };
    let report = render_with(&input, &ctx);
    assert!(
        report.subject.starts_with("[orgwarden] STALE DATA: Acme"),
        "{}",
        report.subject
    );
    // The banner comes right after the headline, before the period and every list.
    let text = &report.text;
    let banner = text
        .find("!! DATA MAY BE OUT OF DATE OR INCOMPLETE")
        .expect("banner");
    assert!(banner < text.find("Period:").unwrap());
    let unwrapped = text.replace("\n  ", " ");
    assert!(unwrapped.contains("2 snapshots or audits failed in this period; the latest, snapshot run 44 at 2026-02-02 10:00 UTC: HTTP 401 authentication_error: invalid x-api-key"), "{text}");
    assert!(
        unwrapped.contains("Fix: the Admin API refused the key"),
        "{text}"
    );
    assert!(unwrapped.contains("The data is stale: the latest complete snapshot was taken 2026-02-02 08:00 UTC (1 day 12 h ago); audits are due every 1 h."), "{text}");
    assert_short_lines(text);
    let html = &report.html;
    let banner = html
        .find("Data may be out of date or incomplete")
        .expect("HTML banner");
    assert!(banner < html.find("<h3").unwrap());
    assert!(html.contains("invalid x-api-key"));
    // No failure and fresh data: no banner.
    let fresh = ReportContext {
        audit_period: Some(chrono::Duration::hours(1)),
        ..ReportContext::basic(input.changes_since)
    };
    let input = input_of(&s, &findings);
    let report = render_with(&input, &fresh);
    assert!(!report.text.contains("!!"), "{}", report.text);
    assert!(!report.html.contains("out of date"));
}

fn waiting(
    finding: &str,
    action: &str,
    subject: &str,
    eligible: &str,
    blocked: &str,
    will_act: bool,
) -> WaitingAction {
    WaitingAction {
        finding: finding.into(),
        action: action.into(),
        subject: subject.into(),
        eligible_at: Some(at(eligible)),
        blocked_by: blocked.into(),
        will_act,
    }
}

#[test]
fn a_dry_run_shows_the_waiting_plan_with_eligibility_dates() {
    let s = state("Acme", vec![]);
    let mut invite = finding(
        "stale_invites",
        Severity::Low,
        FindingStatus::Open,
        "invite_1",
        "new@example.com",
    );
    invite.subject_kind = SubjectKind::Invite;
    invite.action = Action::DeleteInvite;
    let mut key = finding(
        "orphaned_keys",
        Severity::Critical,
        FindingStatus::New,
        "apikey_9",
        "deploy",
    );
    key.subject_kind = SubjectKind::ApiKey;
    key.action = Action::DeactivateKey;
    let mut admins = finding(
        "excess_admins",
        Severity::Medium,
        FindingStatus::Open,
        "org_01",
        "Acme",
    );
    admins.action = Action::Review;
    let findings = vec![invite.clone(), key.clone(), admins];
    let plan = [
        waiting(
            &invite.fingerprint(),
            "delete_invite",
            "new@example.com",
            "2026-01-20T08:00:00Z",
            "",
            true,
        ),
        waiting(
            &key.fingerprint(),
            "deactivate_key",
            "deploy",
            "2026-02-04T08:00:00Z",
            "grace: seen 1 of 3 snapshots",
            true,
        ),
    ];
    let ctx = ReportContext {
        plan: &plan,
        mode: "dry-run",
        timezone: "Europe/Paris".parse().unwrap(),
        ..ReportContext::basic(Some(at("2026-01-26T08:00:00Z")))
    };
    let report = render_with(&input_of(&s, &findings), &ctx);
    let text = report.text.replace("\n  ", " ");
    let section = text_section(&text, "WAITING ACTIONS (REMEDIATION MODE: DRY-RUN) (2)");
    assert!(
        section.contains("- [Delete invite] new@example.com | 2026-01-20 09:00 CET | nothing"),
        "{section}"
    );
    assert!(
        section.contains(
            "- [Deactivate key] deploy | 2026-02-04 09:00 CET | grace: seen 1 of 3 snapshots"
        ),
        "{section}"
    );
    // Per finding: what happens next, and what enforcement would do.
    assert!(text.contains("deploy | deploy breaks orphaned_keys | needs a person: a dry run; with mode \"enforce\" orgwarden would act on 2026-02-04 09:00 CET"), "{text}");
    assert!(text.contains("new@example.com breaks stale_invites | needs a person: a dry run; with mode \"enforce\" orgwarden would act at the next audit"), "{text}");
    assert!(
        text.contains("Acme | Acme breaks excess_admins | needs a person (review only)"),
        "{text}"
    );
    assert!(text.contains("To exempt a finding, add an [[exemptions]] entry"));
    assert!(report.html.contains("<bdi>2026-02-04 09:00 CET</bdi>"));
    assert_short_lines(&report.text);
}

#[test]
fn enforcement_lists_each_action_and_when_orgwarden_will_act() {
    let s = state("Acme", vec![]);
    let mut key = finding(
        "orphaned_keys",
        Severity::Critical,
        FindingStatus::New,
        "apikey_9",
        "deploy",
    );
    key.subject_kind = SubjectKind::ApiKey;
    key.action = Action::DeactivateKey;
    let mut member = finding(
        "departed_domains",
        Severity::High,
        FindingStatus::Open,
        "user_7",
        "eve@old.example",
    );
    member.action = Action::RemoveMember;
    let findings = vec![key.clone(), member.clone()];
    let plan = [
        waiting(
            &key.fingerprint(),
            "deactivate_key",
            "deploy",
            "2026-02-04T08:00:00Z",
            "grace: seen 1 of 3 snapshots",
            true,
        ),
        waiting(
            &member.fingerprint(),
            "remove_member",
            "eve@old.example",
            "2026-01-01T08:00:00Z",
            "admin: eve@old.example is an admin",
            false,
        ),
    ];
    let actions = vec![
        action(1, ActionStatus::Succeeded, "old@example.com"),
        action(2, ActionStatus::Failed, "x@example.com"),
        action(3, ActionStatus::Skipped, "y@example.com"),
    ];
    let input = ReportInput {
        actions: &actions,
        ..input_of(&s, &findings)
    };
    let ctx = ReportContext {
        plan: &plan,
        mode: "enforce",
        ..ReportContext::basic(input.changes_since)
    };
    let report = render_with(&input, &ctx);
    let text = report.text.replace("\n  ", " ");
    let taken = text_section(&text, "ACTIONS TAKEN (3)");
    assert!(
        taken.contains("- [succeeded] Delete invite | old@example.com"),
        "{taken}"
    );
    assert!(
        taken.contains("- [failed] Delete invite | x@example.com | HTTP 500: upstream said no"),
        "{taken}"
    );
    assert!(
        taken.contains("- [skipped] Delete invite | y@example.com"),
        "{taken}"
    );
    assert!(
        text.contains(
            "deploy | deploy breaks orphaned_keys | orgwarden will act on 2026-02-04 08:00 UTC"
        ),
        "{text}"
    );
    assert!(
        text.contains("needs a person (admin: eve@old.example is an admin)"),
        "{text}"
    );
    // The summary (headline, new high and critical, actions) comes before the detail.
    let order: Vec<usize> = [
        "NEW HIGH AND CRITICAL FINDINGS",
        "ACTIONS TAKEN",
        "WAITING ACTIONS",
        "STILL OPEN FROM BEFORE",
        "FINDINGS BY RULE",
    ]
    .iter()
    .map(|t| text.find(t).unwrap_or_else(|| panic!("{t}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
}

#[test]
fn waiting_actions_come_from_the_plan() {
    use crate::config::RemediationMode;
    use crate::remediate::{Guard, Plan, PlannedAction, Verdict};
    let verdict = |guard, pass, detail: &str| Verdict {
        guard,
        pass,
        detail: detail.into(),
    };
    let planned = |id: &str, verdicts: Vec<Verdict>| PlannedAction {
        action: Action::DeactivateKey,
        subject_kind: SubjectKind::ApiKey,
        subject_id: id.into(),
        subject: id.into(),
        rule: policy::ORPHANED_KEYS,
        finding: format!("orphaned_keys:api_key:{id}"),
        workspace_id: None,
        user_id: None,
        eligible: verdicts.iter().all(|v| v.pass),
        eligible_at: at("2026-02-04T08:00:00Z"),
        verdicts,
    };
    let actions = vec![
        planned(
            "eligible",
            vec![
                verdict(Guard::Mode, true, "enforce"),
                verdict(Guard::Grace, true, ""),
            ],
        ),
        planned(
            "in_grace",
            vec![
                verdict(Guard::Mode, true, "enforce"),
                verdict(Guard::Grace, false, "1 of 3"),
            ],
        ),
        planned(
            "admin",
            vec![
                verdict(Guard::Admin, false, "an admin"),
                verdict(Guard::Grace, false, "1 of 3"),
            ],
        ),
        planned("done", vec![verdict(Guard::AlreadyDone, false, "done")]),
        planned("not_opted", vec![verdict(Guard::OptIn, false, "off")]),
        planned("exempt", vec![verdict(Guard::Exemption, false, "exempted")]),
    ];
    let plan = |mode| Plan {
        run_id: 42,
        mode,
        actions: actions.clone(),
        guard_findings: vec![],
        suspended: None,
    };
    let got = WaitingAction::from_plan(&plan(RemediationMode::Enforce));
    let summary: Vec<(&str, bool, &str)> = got
        .iter()
        .map(|w| (w.subject.as_str(), w.will_act, w.blocked_by.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("eligible", true, ""),
            ("in_grace", true, "grace: 1 of 3"),
            ("admin", false, "admin: an admin; grace: 1 of 3"),
        ]
    );
    assert_eq!(got[0].eligible_at, Some(at("2026-02-04T08:00:00Z")));
    assert_eq!(got[0].action, "deactivate_key");
    // In a dry run the mode guard fails everywhere; it is named once, not per action, and
    // the rest reads as in enforcement.
    let mut dry = plan(RemediationMode::DryRun);
    for action in &mut dry.actions {
        for v in &mut action.verdicts {
            if v.guard == Guard::Mode {
                v.pass = false;
                v.detail = "remediation.mode = dry-run".into();
            }
        }
    }
    let got = WaitingAction::from_plan(&dry);
    let dry_summary: Vec<(&str, bool, &str)> = got
        .iter()
        .map(|w| (w.subject.as_str(), w.will_act, w.blocked_by.as_str()))
        .collect();
    assert_eq!(dry_summary, summary);
    // Off has no plan to show.
    assert!(WaitingAction::from_plan(&plan(RemediationMode::Off)).is_empty());
}

#[test]
fn people_level_changes_are_named() {
    let mut s = state(
        "Acme",
        vec![
            user("user_1", "ann@example.com", "Ann", "admin"),
            user("user_2", "bob@example.com", "Bob", "developer"),
        ],
    );
    s.api_keys = vec![
        key("apikey_1", "ci", Some("user_1")),
        key("apikey_2", "new-key", Some("user_2")),
    ];
    s.api_keys[0].status = "inactive".into();
    let mut before = s.clone();
    before.members = vec![
        user("user_1", "ann@example.com", "Ann", "developer"),
        user("user_3", "carl@example.com", "Carl", "user"),
    ];
    before.api_keys = vec![key("apikey_1", "ci", Some("user_1"))];
    before.workspaces[0].name = "Old research".into();
    let changes = diff(&before, &s);
    let input = ReportInput {
        changes: &changes,
        top_n: 20,
        ..input_of(&s, &[])
    };
    let text = render(&input).text;
    let section = text_section(&text, "CHANGES");
    for line in [
        "- left: carl@example.com",
        "- joined: bob@example.com",
        "- became admin: ann@example.com",
        "- key created: new-key",
        "- key deactivated: ci",
        "- workspace renamed: Old research -> Research",
    ] {
        assert!(section.contains(line), "{line:?} missing from\n{section}");
    }
}

#[test]
fn times_are_shown_in_the_configured_zone() {
    let s = state("Acme", vec![]);
    let ctx = ReportContext {
        timezone: "America/New_York".parse().unwrap(),
        ..ReportContext::basic(Some(at("2026-01-26T08:00:00Z")))
    };
    let report = render_with(&input_of(&s, &[]), &ctx);
    assert!(
        report
            .text
            .contains("Period: 2026-01-26 03:00 EST to 2026-02-02 03:00 EST"),
        "{}",
        report.text
    );
    assert!(report
        .text
        .contains("taken 2026-02-02 03:00 EST; generated 2026-02-02 04:00 EST"));
    assert!(!report.text.contains("UTC"));
    assert!(report.html.contains("2026-02-02 03:00 EST"));
}

#[test]
fn top_n_caps_every_list_and_says_how_many_more() {
    let findings: Vec<FindingRecord> = (0..7)
        .map(|i| {
            finding(
                "departed_domains",
                if i % 2 == 0 {
                    Severity::High
                } else {
                    Severity::Low
                },
                FindingStatus::Open,
                &i.to_string(),
                &format!("subject-{i}"),
            )
        })
        .collect();
    let s = state("Acme", vec![]);
    for (top_n, shown) in [(3usize, 3usize), (10, 7), (0, 0)] {
        let input = ReportInput {
            top_n,
            ..input_of(&s, &findings)
        };
        let report = render(&input);
        let section = text_section(&report.text, "STILL OPEN FROM BEFORE (7)");
        let rows = section.lines().filter(|l| l.starts_with("- [")).count();
        assert_eq!(rows, shown, "{section}");
        // Most severe first.
        if shown >= 2 {
            assert!(section.find("subject-0").unwrap() < section.find("subject-2").unwrap());
            assert!(
                section.find("subject-6").unwrap_or(usize::MAX)
                    > section.find("subject-0").unwrap()
            );
        }
        let more = 7 - shown;
        if more > 0 {
            assert!(
                section.contains(&format!("... and {more} more in findings.csv")),
                "{section}"
            );
            assert!(report
                .html
                .contains(&format!("… and {more} more in findings.csv")));
        } else {
            assert!(!section.contains("more in findings.csv"));
        }
    }
}

#[test]
fn a_huge_organization_gives_a_small_email() {
    let members: Vec<User> = (0..5_000)
        .map(|i| {
            user(
                &format!("user_{i:05}"),
                &format!("u{i}@example.com"),
                "U",
                "user",
            )
        })
        .collect();
    let mut s = state("Huge", members);
    s.api_keys = (0..10_000)
        .map(|i| {
            key(
                &format!("apikey_{i:05}"),
                &format!("key {i}"),
                Some(&format!("user_{:05}", i % 5_000)),
            )
        })
        .collect();
    let mut before = s.clone();
    before.members.truncate(2_000);
    before.api_keys.truncate(3_000);
    let changes = diff(&before, &s);
    let findings: Vec<FindingRecord> = (0..10_000)
        .map(|i| {
            finding(
                "orphaned_keys",
                Severity::Critical,
                if i % 2 == 0 {
                    FindingStatus::New
                } else {
                    FindingStatus::Open
                },
                &format!("apikey_{i:05}"),
                &format!("key {i}"),
            )
        })
        .collect();
    let actions: Vec<ActionRecord> = (0..3_000)
        .map(|i| action(i, ActionStatus::Succeeded, "x"))
        .collect();
    let input = ReportInput {
        changes: &changes,
        actions: &actions,
        top_n: 20,
        ..input_of(&s, &findings)
    };
    let report = render(&input);
    assert!(
        report.text.len() < 64 * 1024,
        "text {} bytes",
        report.text.len()
    );
    assert!(
        report.html.len() < 256 * 1024,
        "html {} bytes",
        report.html.len()
    );
    assert!(
        report.text.contains("... and 4980 more in findings.csv"),
        "new findings capped"
    );
    assert!(report.text.contains("more in changes.csv"));
    assert!(report.text.contains("... and 2980 more in actions.csv"));
    assert!(
        report
            .subject
            .contains("5000 new (5000 critical), 10000 open"),
        "{}",
        report.subject
    );
    assert_short_lines(&report.text);
    // The CSVs have everything.
    assert_eq!(parse_csv(file(&report, "api_keys.csv")).len(), 10_001);
    assert_eq!(parse_csv(file(&report, "findings.csv")).len(), 10_001);
}

#[test]
fn the_html_fits_any_screen() {
    let h = Hostile::new();
    let html = render(&h.input()).html;
    assert!(
        html.contains("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">")
    );
    assert!(html.contains("max-width:680px"));
    // Inline CSS only: mail clients drop <style> blocks unevenly.
    assert!(!html.contains("<style"));
    assert!(!html.contains("<link"));
    // Wide tables scroll inside themselves; lists are stacked cards, not tables.
    assert_eq!(html.matches("<table").count(), 1, "only the counts table");
    assert!(html.contains("<div style=\"overflow-x:auto;max-width:100%\">"));
    // Numbers are right-aligned.
    assert!(html.contains("text-align:right\"><bdi>0</bdi></td>"));
}

#[test]
fn text_body_is_clean() {
    let h = Hostile::new();
    let text = render(&h.input()).text;
    assert!(!text.contains('\r'), "CR in text");
    assert!(!text.contains(BIDI), "bidi control in text");
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "control character in text"
    );
    assert!(
        !text.contains(&"A".repeat(TEXT_VALUE_MAX)),
        "10 KB name not cut"
    );
    assert!(text.contains("Line one��Line two"));
    assert!(text.contains("🚀"));
    assert!(text.contains("👩\u{200D}💻"), "ZWJ emoji kept whole");
    assert_short_lines(&text);
}

#[test]
fn wrap_keeps_lines_short() {
    let cases: &[(&str, usize, &str, &[&str])] = &[
        ("a b c", 10, "", &["a b c"]),
        ("aaaa bbbb cccc", 9, "  ", &["aaaa bbbb", "  cccc"]),
        ("", 10, "", &[""]),
        ("abcdefghij", 4, " ", &["abcd", " efg", " hij"]),
        ("x 🚀🚀🚀🚀🚀", 4, "", &["x", "🚀🚀🚀🚀", "🚀"]),
    ];
    for (text, width, indent, want) in cases {
        assert_eq!(wrap(text, *width, indent), *want, "{text:?} at {width}");
    }
}

#[test]
fn html_body_is_escaped_and_isolated() {
    let h = Hostile::new();
    let html = render(&h.input()).html;
    for raw in ["<script", "<img", "onerror=alert(1)>", "'x'"] {
        assert!(!html.contains(raw), "raw {raw:?} in HTML");
    }
    assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"));
    assert!(html.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    assert!(html.contains("a&amp;b &#39;quoted&#39;"));
    assert!(html.contains("=HYPERLINK(&quot;http://x&quot;)"));
    // Every hostile value is shown somewhere, cleaned and escaped.
    for value in HOSTILE {
        let shown = format!("<bdi>{}</bdi>", escape_html(&clean(value, HTML_CELL_MAX)));
        assert!(html.contains(&shown), "{shown:?} missing from HTML");
    }
    assert!(!html.contains('\r'), "CR in HTML");
    assert!(!html.contains(BIDI), "bidi control in HTML");
    assert!(html.contains("<bdi>gnp.exe isolated mark embed</bdi>"));
    assert_eq!(
        html.matches("<bdi>").count(),
        html.matches("</bdi>").count()
    );
    assert!(
        !html.contains(&"A".repeat(HTML_CELL_MAX)),
        "10 KB name not cut"
    );
    assert!(html.contains("🚀"));
    // No line near SMTP's 998-octet limit, whatever the data.
    let longest = html.lines().map(str::len).max().unwrap();
    assert!(longest < 998, "{longest}");
    // Only our own tags: every '<' starts one of them.
    let allowed = [
        "<!DOCTYPE html>",
        "<html>",
        "</html>",
        "<head>",
        "</head>",
        "<meta ",
        "<title>",
        "</title>",
        "<body ",
        "</body>",
        "<div ",
        "<div>",
        "</div>",
        "<span ",
        "</span>",
        "<p ",
        "</p>",
        "<br>",
        "<h3 ",
        "</h3>",
        "<table ",
        "</table>",
        "<tr>",
        "</tr>",
        "<th ",
        "</th>",
        "<td ",
        "</td>",
        "<bdi>",
        "</bdi>",
        "<ul ",
        "</ul>",
        "<li>",
        "</li>",
        "<b>",
        "</b>",
    ];
    for (idx, _) in html.match_indices('<') {
        let rest = &html[idx..];
        assert!(
            allowed.iter().any(|tag| rest.starts_with(tag)),
            "unexpected markup: {:?}",
            &rest[..rest.len().min(40)]
        );
    }
}

#[test]
fn clean_and_escape() {
    let cases: &[(&str, usize, &str)] = &[
        ("abc", 3, "abc"),
        ("abcd", 3, "ab…"),
        ("", 3, ""),
        ("ab", 0, ""),
        ("ab", 1, "…"),
        ("a", 1, "a"),
        ("a\r\nb", 10, "a\u{FFFD}\u{FFFD}b"),
        ("a\u{2028}b\u{85}c", 10, "a\u{FFFD}b\u{FFFD}c"),
        ("\u{202E}evil\u{202C}", 10, "evil"),
        ("\u{2067}x\u{2069}\u{200E}\u{200F}\u{061C}", 10, "x"),
        ("🚀🚀🚀🚀", 3, "🚀🚀…"),
        ("שלום", 10, "שלום"),
    ];
    for (input, max, want) in cases {
        assert_eq!(clean(input, *max), *want, "{input:?} {max}");
    }
    let cases = [
        (
            "<a href=\"x\">'&'</a>",
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;",
        ),
        ("plain 🚀", "plain 🚀"),
        ("", ""),
    ];
    for (input, want) in cases {
        assert_eq!(escape_html(input), want);
    }
}

#[test]
fn rendering_is_deterministic() {
    let h = Hostile::new();
    assert_eq!(render(&h.input()), render(&h.input()));
}

/// The whole plain text of a small, clean report of a normal week, exactly.
#[test]
fn plain_text_of_a_normal_week() {
    let s = state(
        "Acme",
        vec![user("user_1", "ann@example.com", "Ann", "admin")],
    );
    let mut key = finding(
        "orphaned_keys",
        Severity::Critical,
        FindingStatus::New,
        "apikey_9",
        "deploy",
    );
    key.subject_kind = SubjectKind::ApiKey;
    key.action = Action::DeactivateKey;
    let mut invite = finding(
        "stale_invites",
        Severity::Low,
        FindingStatus::Open,
        "invite_1",
        "new@example.com",
    );
    invite.subject_kind = SubjectKind::Invite;
    invite.action = Action::DeleteInvite;
    let mut old = finding(
        "stale_invites",
        Severity::Low,
        FindingStatus::Resolved,
        "invite_0",
        "old@example.com",
    );
    old.subject_kind = SubjectKind::Invite;
    old.action = Action::DeleteInvite;
    let findings = vec![key.clone(), invite, old];
    let mut rules = outcomes();
    rules[2].status = RuleStatus::Evaluated;
    let before = OrgState {
        members: vec![],
        ..s.clone()
    };
    let changes = diff(&before, &s);
    let actions = vec![
        action(1, ActionStatus::Succeeded, "old@example.com"),
        action(2, ActionStatus::Failed, "x@example.com"),
    ];
    let plan = [waiting(
        &key.fingerprint(),
        "deactivate_key",
        "deploy",
        "2026-02-04T08:00:00Z",
        "grace: seen 1 of 3 snapshots",
        true,
    )];
    let input = ReportInput {
        state: &s,
        findings: &findings,
        rules: &rules,
        changes: &changes,
        changes_since: Some(at("2026-01-26T08:00:00Z")),
        actions: &actions,
        top_n: 20,
        generated_at: at("2026-02-02T09:00:00Z"),
    };
    let ctx = ReportContext {
        plan: &plan,
        mode: "enforce",
        audit_period: Some(chrono::Duration::hours(1)),
        ..ReportContext::basic(input.changes_since)
    };
    let report = render_with(&input, &ctx);
    assert_eq!(
        report.subject,
        "[orgwarden] Acme: 1 new (1 critical), 2 open · 26 Jan–2 Feb"
    );
    let want = "\
1 new finding in this period, 1 resolved; 2 open (1 critical).

Period: 2026-01-26 08:00 UTC to 2026-02-02 08:00 UTC
Organization: Acme (org_01)
Snapshot: run 42, taken 2026-02-02 08:00 UTC; generated 2026-02-02 09:00 UTC
Inventory: 1 member, 1 invite (1 pending), 1 workspace, 1 workspace
  membership, 1 API key (1 active)

NEW HIGH AND CRITICAL FINDINGS (1)
- [critical] Key of a former member | deploy | deploy breaks orphaned_keys |
  orgwarden will act on 2026-02-04 08:00 UTC

ACTIONS TAKEN (2)
- [succeeded] Delete invite | old@example.com
- [failed] Delete invite | x@example.com | HTTP 500: upstream said no

WAITING ACTIONS (REMEDIATION MODE: ENFORCE) (1)
- [Deactivate key] deploy | 2026-02-04 08:00 UTC | grace: seen 1 of 3
  snapshots

STILL OPEN FROM BEFORE (1)
- [low] Stale invite | new@example.com | new@example.com breaks stale_invites
  | needs a person (remediation is not enabled for this rule)

RESOLVED IN THIS PERIOD (1)
- [low] Stale invite | old@example.com | old@example.com breaks stale_invites
  | resolved

UNUSED ACCESS (0)
(none)

CHANGES (1)
- joined: ann@example.com

FINDINGS BY RULE
- Stale invite: 1 open (0 critical, 0 high), 0 new, 0 exempted, 1 resolved
- Departed domain: 0 open (0 critical, 0 high), 0 new, 0 exempted, 0 resolved
- Left the company (roster): 0 open (0 critical, 0 high), 0 new, 0 exempted, 0
  resolved
- Key of a former member: 1 open (1 critical, 0 high), 1 new, 0 exempted, 0
  resolved
- Key with no owner: 0 open (0 critical, 0 high), 0 new, 0 exempted, 0
  resolved
- Too many admins: 0 open (0 critical, 0 high), 0 new, 0 exempted, 0 resolved
  [disabled]
- Became admin: 0 open (0 critical, 0 high), 0 new, 0 exempted, 0 resolved
- Unused key: 0 open (0 critical, 0 high), 0 new, 0 exempted, 0 resolved
- Unused seat: 0 open (0 critical, 0 high), 0 new, 0 exempted, 0 resolved
- Key hygiene: 0 open (0 critical, 0 high), 0 new, 0 exempted, 0 resolved
- Left the company (directory): 0 open (0 critical, 0 high), 0 new, 0
  exempted, 0 resolved
- Unknown to the directory: 0 open (0 critical, 0 high), 0 new, 0 exempted, 0
  resolved
- Identity provider assignment drift: 0 open (0 critical, 0 high), 0 new, 0
  exempted, 0 resolved
- total: 2 open (1 critical, 0 high), 1 new, 0 exempted, 1 resolved

To exempt a finding, add an [[exemptions]] entry (rule, subject, reason,
expires) to the configuration; orgwarden then neither reports it as open nor
acts on it.
Attached (UTF-8 CSV, complete values, ids): findings.csv, members.csv,
invites.csv, api_keys.csv, workspaces.csv, workspace_members.csv, changes.csv,
actions.csv, unused_access.csv.
";
    let got = report.text;
    assert_eq!(got, want, "\n--- got ---\n{got}");
}

#[test]
fn an_action_already_due_happens_at_the_next_audit() {
    let s = state("Acme", vec![]);
    let mut key = finding(
        "orphaned_keys",
        Severity::Critical,
        FindingStatus::Open,
        "apikey_9",
        "deploy",
    );
    key.subject_kind = SubjectKind::ApiKey;
    key.action = Action::DeactivateKey;
    let findings = vec![key.clone()];
    let input = input_of(&s, &findings);
    for (eligible, want) in [
        (
            "2026-02-01T08:00:00Z",
            "orgwarden will act at the next audit",
        ),
        (
            "2026-02-02T09:00:00Z",
            "orgwarden will act at the next audit",
        ),
        (
            "2026-02-02T09:00:01Z",
            "orgwarden will act on 2026-02-02 09:00 UTC",
        ),
    ] {
        let plan = [waiting(
            &key.fingerprint(),
            "deactivate_key",
            "deploy",
            eligible,
            "",
            true,
        )];
        let ctx = ReportContext {
            plan: &plan,
            mode: "enforce",
            ..ReportContext::basic(input.changes_since)
        };
        let text = render_with(&input, &ctx).text.replace("\n  ", " ");
        assert!(text.contains(&format!("| {want}\n")), "{eligible}: {text}");
    }
}

// ---- Unused access ------------------------------------------------------------------------------

fn key_finding(rule: policy::RuleId, status: FindingStatus, id: &str, name: &str) -> FindingRecord {
    FindingRecord {
        subject_kind: SubjectKind::ApiKey,
        action: if rule == policy::DORMANT_KEYS {
            Action::DeactivateKey
        } else {
            Action::Review
        },
        ..finding(rule, Severity::Low, status, id, name)
    }
}

#[test]
fn unused_access_lists_dormant_keys_seats_and_the_oldest_never_expiring_keys() {
    let mut s = state("Acme", vec![user("user_1", "a@example.com", "A", "user")]);
    let aged = |id: &str, name: &str, created: &str| ApiKey {
        created_at: at(created),
        ..key(id, name, None)
    };
    s.api_keys = vec![
        aged("apikey_idle", "idle-bot", "2025-01-01T00:00:00Z"),
        aged("apikey_2023", "oldest", "2023-01-01T00:00:00Z"),
        aged("apikey_2024", "older", "2024-06-01T00:00:00Z"),
        ApiKey {
            expires_at: Some(at("2027-01-01T00:00:00Z")),
            scope: Some(crate::org::KeyScope {
                kind: "organization".into(),
                workspace_id: None,
            }),
            ..aged("apikey_org", "org-wide", "2025-12-01T00:00:00Z")
        },
    ];
    let findings = vec![
        key_finding(
            policy::KEY_HYGIENE,
            FindingStatus::Open,
            "apikey_2024",
            "older",
        ),
        key_finding(
            policy::KEY_HYGIENE,
            FindingStatus::New,
            "apikey_org",
            "org-wide",
        ),
        key_finding(
            policy::KEY_HYGIENE,
            FindingStatus::Open,
            "apikey_2023",
            "oldest",
        ),
        key_finding(
            policy::DORMANT_KEYS,
            FindingStatus::New,
            "apikey_idle",
            "idle-bot",
        ),
        // Neither resolved nor exempted findings are unused access today.
        key_finding(
            policy::DORMANT_KEYS,
            FindingStatus::Resolved,
            "apikey_gone",
            "gone",
        ),
        key_finding(
            policy::DORMANT_KEYS,
            FindingStatus::Exempted,
            "apikey_ci",
            "ci",
        ),
        finding(
            policy::DORMANT_MEMBERS,
            Severity::Low,
            FindingStatus::Open,
            "user_1",
            "a@example.com",
        ),
        // Another rule's finding is not listed here.
        finding(
            policy::STALE_INVITES,
            Severity::Low,
            FindingStatus::Open,
            "i",
            "x",
        ),
    ];
    let rules = outcomes();
    let input = ReportInput {
        rules: &rules,
        ..input_of(&s, &findings)
    };
    let report = render(&input);

    let text = report.text.replace("\n  ", " ");
    let section = &text[text.find("UNUSED ACCESS (5)").expect("section")..];
    let order: Vec<usize> = [
        "[dormant key] idle-bot",
        "[dormant seat] a@example.com",
        "[never-expiring key] oldest",
        "[never-expiring key] older",
        "[organization-scoped key] org-wide",
    ]
    .iter()
    .map(|line| {
        section
            .find(line)
            .unwrap_or_else(|| panic!("{line}: {section}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{section}");
    assert!(
        section.contains("needs a person (review only)"),
        "{section}"
    );
    assert_short_lines(&report.text);
    assert!(report.html.contains("Unused access (5)"));
    assert!(report.html.contains("never-expiring key"));

    let csv = report
        .files
        .iter()
        .find(|(name, _)| name == "unused_access.csv")
        .expect("unused_access.csv");
    let rows = parse_csv(&csv.1);
    assert_eq!(rows[0], UNUSED_CSV_COLUMNS);
    let got: Vec<(&str, &str, &str)> = rows[1..]
        .iter()
        .map(|r| (r[0].as_str(), r[5].as_str(), r[7].as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("dormant_key", "apikey_idle", "2025-01-01 00:00:00"),
            ("dormant_seat", "user_1", ""),
            ("never_expiring_key", "apikey_2023", "2023-01-01 00:00:00"),
            ("never_expiring_key", "apikey_2024", "2024-06-01 00:00:00"),
            (
                "organization_scoped_key",
                "apikey_org",
                "2025-12-01 00:00:00"
            ),
        ]
    );
}

#[test]
fn unused_access_says_which_usage_rule_could_not_run() {
    let s = state("Acme", vec![]);
    let mut rules = outcomes();
    for outcome in &mut rules {
        if outcome.rule == policy::DORMANT_KEYS {
            outcome.status = RuleStatus::NotEvaluated(
                "usage data unavailable: usage_report/messages answered 500".into(),
            );
        }
        if outcome.rule == policy::DORMANT_MEMBERS {
            outcome.status = RuleStatus::NotEvaluated(policy::NO_USAGE_DATA.into());
        }
    }
    let input = ReportInput {
        rules: &rules,
        ..input_of(&s, &[])
    };
    let report = render(&input);
    let text = report.text.replace("\n  ", " ");
    assert!(text.contains("UNUSED ACCESS (2)"), "{text}");
    assert!(
        text.contains(
            "[not checked] Unused key | usage data unavailable: usage_report/messages \
             answered 500"
        ),
        "{text}"
    );
    assert!(
        text.contains("[not checked] Unused seat | usage data unavailable: none has been ingested"),
        "{text}"
    );
    // The failed ingest is a gap the banner names; no ingest yet is not.
    let banner = &text[..text.find("Period:").unwrap()];
    assert!(
        banner.contains("Rule \"Unused key\" was not evaluated"),
        "{banner}"
    );
    assert!(!banner.contains("Unused seat"), "{banner}");
    let csv = &report
        .files
        .iter()
        .find(|(name, _)| name == "unused_access.csv")
        .expect("unused_access.csv")
        .1;
    let rows = parse_csv(csv);
    assert_eq!(rows.len(), 3);
    assert_eq!(
        (
            rows[1][0].as_str(),
            rows[1][1].as_str(),
            rows[1][2].as_str()
        ),
        ("not_checked", "dormant_keys", "not_evaluated")
    );

    // With the three rules disabled, the section is left out.
    let mut rules = outcomes();
    for outcome in &mut rules {
        if matches!(
            outcome.rule,
            policy::DORMANT_KEYS | policy::DORMANT_MEMBERS | policy::KEY_HYGIENE
        ) {
            outcome.status = RuleStatus::Disabled;
        }
    }
    let input = ReportInput {
        rules: &rules,
        ..input_of(&s, &[])
    };
    let report = render(&input);
    assert!(!report.text.contains("UNUSED ACCESS"), "{}", report.text);
    assert!(!report.html.contains("Unused access"));
}
