//! Table tests of the report: hand-built states and findings, hostile data in every field, CSVs
//! parsed back with the `csv` crate, and one exact rendering of a small clean report.

use chrono::{DateTime, Utc};

use super::*;
use crate::org::diff;
use crate::org::{Actor, Organization, Principal};
use crate::policy::{self, Action, SubjectKind};

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
        first_seen: at("2026-01-05T08:00:00Z"),
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
                    RuleStatus::NotEvaluated("no roster_csv configured".into())
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

fn parse_csv(bytes: &[u8]) -> Vec<Vec<String>> {
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
            "actions.csv"
        ]
    );
    for ((name, body), (_, columns)) in files.iter().zip(CSV_COLUMNS) {
        let rows = parse_csv(body);
        assert_eq!(rows[0], *columns, "{name} header");
        for row in &rows {
            assert_eq!(row.len(), columns.len(), "{name}: {row:?}");
        }
        assert!(body.ends_with(b"\r\n"), "{name} ends with CRLF");
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
    let files = csv_files(&input);
    let rows = parse_csv(&files[3].1);
    let owners: Vec<(&str, &str, &str)> = rows[1..]
        .iter()
        .map(|r| (r[11].as_str(), r[12].as_str(), r[13].as_str()))
        .collect();
    assert_eq!(
        owners,
        [
            ("user", "user_1", "ann@example.com"),
            ("non_person", "", ""),
            ("unattributed", "", ""),
            ("user", "user_gone", ""),
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
            format!("{}\r\n", columns.join(",")),
            "{name}"
        );
    }
    let actions = &csv_files(&input)[7].1;
    assert_eq!(
        actions.as_slice(),
        b"id,run_id,action,subject_kind,subject_id,subject,finding,status,reason,http_status,\
request_id,before,planned_at,finished_at\r\n"
    );
}

// ---- Email --------------------------------------------------------------------------------------

#[test]
fn subject_is_one_safe_line() {
    let cases: &[(&str, usize, &str)] = &[
        ("Acme", 0, "[orgwarden] Acme: 0 open findings"),
        ("Acme", 1, "[orgwarden] Acme: 1 open finding"),
        ("Acme", 12, "[orgwarden] Acme: 12 open findings"),
        (
            "Acme\r\nBcc: evil@example.com",
            2,
            "[orgwarden] Acme Bcc: evil@example.com: 2 open findings",
        ),
        (
            "\u{202E}Acme\u{202C}\t 🚀\u{0}x",
            2,
            "[orgwarden] Acme 🚀 x: 2 open findings",
        ),
        ("  \r\n ", 0, "[orgwarden] org_01: 0 open findings"),
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
        let input = ReportInput {
            state: &s,
            findings: &findings,
            rules: &[],
            changes: &[],
            changes_since: None,
            actions: &[],
            top_n: 5,
            generated_at: at("2026-02-02T09:00:00Z"),
        };
        assert_eq!(subject(&input), *want, "{name:?}");
    }

    let h = Hostile::new();
    let subject = render(&h.input()).subject;
    assert!(!subject.chars().any(|c| c.is_control()), "{subject:?}");
    assert!(!subject.contains(BIDI), "{subject:?}");
    assert!(subject.chars().count() < 140, "{}", subject.chars().count());
    assert!(subject.starts_with("[orgwarden] Line one Line two | =HYPERLINK"));
    assert!(subject.ends_with("…: 8 open findings"), "{subject}");
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
        state: &s,
        findings: &findings,
        rules: &rules,
        changes: &[],
        changes_since: None,
        actions: &[],
        top_n: 5,
        generated_at: at("2026-02-02T09:00:00Z"),
    };
    let view = View::new(&input);
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
            row(&["retired_rule", "", "0", "0", "0", "0", "0", "0", "0", "1"]),
        ]
    );
    assert_eq!(
        view.total.cells(),
        row(&["total", "", "2", "1", "0", "1", "4", "2", "1", "2"])
    );
    let text = render(&input).text;
    assert!(
        text.starts_with("2 new findings, 2 resolved, 4 open; 2 critical, 1 high\n"),
        "{text}"
    );
    assert!(text.contains("- offboarding_roster: no roster_csv configured\n"));
    assert!(text.contains("Disabled rules: excess_admins\n"));
}

#[test]
fn top_n_is_respected_and_ordered_by_severity() {
    let findings = vec![
        finding(
            "stale_invites",
            Severity::Low,
            FindingStatus::Open,
            "1",
            "low-one",
        ),
        finding(
            "departed_domains",
            Severity::High,
            FindingStatus::Open,
            "2",
            "high-open",
        ),
        finding(
            "orphaned_keys",
            Severity::Critical,
            FindingStatus::Open,
            "3",
            "crit-open",
        ),
        finding(
            "departed_domains",
            Severity::Medium,
            FindingStatus::New,
            "4",
            "medium-new",
        ),
        finding(
            "departed_domains",
            Severity::High,
            FindingStatus::New,
            "5",
            "high-new",
        ),
        finding(
            "orphaned_keys",
            Severity::Critical,
            FindingStatus::Exempted,
            "6",
            "crit-exempt",
        ),
        finding(
            "orphaned_keys",
            Severity::Critical,
            FindingStatus::Resolved,
            "7",
            "crit-gone",
        ),
    ];
    let s = state("Acme", vec![]);
    let base = ReportInput {
        state: &s,
        findings: &findings,
        rules: &[],
        changes: &[],
        changes_since: None,
        actions: &[],
        top_n: 3,
        generated_at: at("2026-02-02T09:00:00Z"),
    };
    let cases: &[(usize, &[&str], usize)] = &[
        (3, &["crit-open", "high-new", "high-open"], 2),
        (1, &["crit-open"], 4),
        (
            10,
            &[
                "crit-open",
                "high-new",
                "high-open",
                "medium-new",
                "low-one",
            ],
            0,
        ),
        (0, &[], 5),
    ];
    for (top_n, want, more) in cases {
        let input = ReportInput {
            top_n: *top_n,
            ..base
        };
        let view = View::new(&input);
        let (_, shown, all) = &view.finding_sections()[0];
        let got: Vec<&str> = shown.iter().map(|f| f.subject.as_str()).collect();
        assert_eq!(got, *want, "top {top_n}");
        assert_eq!(*all, 5);

        let report = render(&input);
        // The text lists them in that order, and says how many more the CSV has.
        let section = report
            .text
            .split("OPEN FINDINGS")
            .nth(1)
            .unwrap()
            .split("NEW SINCE")
            .next()
            .unwrap();
        let positions: Vec<usize> = want.iter().map(|s| section.find(s).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{section}");
        for absent in ["crit-exempt", "crit-gone"] {
            assert!(!section.contains(absent), "{section}");
        }
        if *more > 0 {
            assert!(section.contains(&format!("… and {more} more in findings.csv")));
            assert!(report
                .html
                .contains(&format!("… and {more} more in findings.csv")));
        } else {
            assert!(!section.contains("more in findings.csv"));
        }
        let html_rows = report
            .html
            .split("<h3")
            .nth(2)
            .unwrap()
            .matches("<tr>")
            .count();
        assert_eq!(
            html_rows,
            want.len() + usize::from(!want.is_empty()),
            "top {top_n}"
        );
    }
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
    // Every line is a sensible length: nothing 10 KB long slipped through.
    let longest = text.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(longest < 1000, "{longest}");
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
fn changes_and_actions_are_summarised() {
    let h = Hostile::new();
    let report = render(&h.input());
    let n_changes = h.changes.len();
    assert!(report.text.contains(&format!(
        "CHANGES: {n_changes} changes since the previous report's snapshot of 2026-01-26 08:00 UTC"
    )));
    let n = h.actions.len();
    let failed = h
        .actions
        .iter()
        .filter(|a| a.status == ActionStatus::Failed)
        .count();
    assert!(
        report.text.contains(&format!(
            "REMEDIATION: {n} remediation actions: {} succeeded, {failed} failed.",
            n - failed
        )),
        "{}",
        report.text
    );

    let s = state("Acme", vec![]);
    let empty = ReportInput {
        state: &s,
        findings: &[],
        rules: &[],
        changes: &[],
        changes_since: None,
        actions: &[],
        top_n: 5,
        generated_at: at("2026-02-02T09:00:00Z"),
    };
    let text = render(&empty).text;
    assert!(text.contains("No previous report"));
    assert!(text.contains("No remediation actions since the last report."));
    let since = ReportInput {
        changes_since: Some(at("2026-01-26T08:00:00Z")),
        ..empty
    };
    assert!(render(&since)
        .text
        .contains("0 changes since the previous report's snapshot of 2026-01-26 08:00 UTC"));
}

#[test]
fn rendering_is_deterministic() {
    let h = Hostile::new();
    assert_eq!(render(&h.input()), render(&h.input()));
}

/// The whole plain text of a small, clean report, exactly.
#[test]
fn plain_text_of_a_small_report() {
    let s = state(
        "Acme",
        vec![user("user_1", "ann@example.com", "Ann", "admin")],
    );
    let findings = vec![
        finding(
            "orphaned_keys",
            Severity::Critical,
            FindingStatus::New,
            "apikey_9",
            "deploy",
        ),
        finding(
            "stale_invites",
            Severity::Low,
            FindingStatus::Open,
            "invite_1",
            "new@example.com",
        ),
        finding(
            "stale_invites",
            Severity::Low,
            FindingStatus::Resolved,
            "invite_0",
            "old@example.com",
        ),
    ];
    let rules = outcomes();
    let before = OrgState {
        members: vec![],
        ..s.clone()
    };
    let changes = diff(&before, &s);
    let actions = vec![
        action(1, ActionStatus::Succeeded, "old@example.com"),
        action(2, ActionStatus::Failed, "x@example.com"),
    ];
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
    let want = "\
1 new finding, 1 resolved, 2 open; 1 critical

Organization: Acme (org_01)
Snapshot:     run 42, taken 2026-02-02 08:00 UTC
Generated:    2026-02-02 09:00 UTC
Inventory:    1 member, 1 invite (1 pending), 1 workspace, 1 workspace membership, 1 API key (1 active)

FINDINGS BY RULE (open = new + open; by severity)
RULE                  STATUS         CRITICAL  HIGH  MEDIUM  LOW  OPEN  NEW  EXEMPTED  RESOLVED
stale_invites         evaluated      0         0     0       1    1     0    0         1
departed_domains      evaluated      0         0     0       0    0     0    0         0
offboarding_roster    not evaluated  0         0     0       0    0     0    0         0
orphaned_keys         evaluated      1         0     0       0    1     1    0         0
unattributed_keys     evaluated      0         0     0       0    0     0    0         0
excess_admins         disabled       0         0     0       0    0     0    0         0
privilege_escalation  evaluated      0         0     0       0    0     0    0         0
total                                1         0     0       1    2     1    0         1

NOT EVALUATED (their findings are missing from this report)
- offboarding_roster: no roster_csv configured
Disabled rules: excess_admins

OPEN FINDINGS, MOST SEVERE FIRST (2)
SEVERITY  STATUS  RULE           SUBJECT          ACTION         EVIDENCE
critical  new     orphaned_keys  deploy           remove_member  deploy breaks orphaned_keys
low       open    stale_invites  new@example.com  remove_member  new@example.com breaks stale_invites

NEW SINCE THE LAST REPORT (1)
SEVERITY  STATUS  RULE           SUBJECT  ACTION         EVIDENCE
critical  new     orphaned_keys  deploy   remove_member  deploy breaks orphaned_keys

RESOLVED SINCE THE LAST REPORT (1)
SEVERITY  STATUS    RULE           SUBJECT          ACTION         EVIDENCE
low       resolved  stale_invites  old@example.com  remove_member  old@example.com breaks stale_invites

CHANGES: 1 change since the previous report's snapshot of 2026-01-26 08:00 UTC
KIND    CHANGE  COUNT
member  joined  1

REMEDIATION: 2 remediation actions: 1 succeeded, 1 failed.
STATUS  ACTION         SUBJECT        HTTP_STATUS  REASON
failed  delete_invite  x@example.com  200          HTTP 500: upstream said no

Attached (UTF-8 CSV, complete values): findings.csv, members.csv, invites.csv, api_keys.csv, workspaces.csv, workspace_members.csv, changes.csv, actions.csv.
";
    let got = render(&input).text;
    assert_eq!(got, want, "\n--- got ---\n{got}");
}
