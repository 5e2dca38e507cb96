//! `orgwarden report` end to end: the simulator with hostile data, a real SMTP server
//! (mailin-embedded), the message parsed back, and a mail server that is down and then up.

use std::path::Path;

use chrono::Duration;
use mail_parser::{MessageParser, MimeHeaders};
use orgwarden::report::CSV_COLUMNS;

use crate::helpers::*;
use crate::mail::{free_port, smtp_server, ServerOptions};

const HOSTILE_KEYS: &[&str] = &[
    "=HYPERLINK(\"http://x\")",
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1)",
    "<script>alert(1)</script>",
    "\u{202E}gnp.exe",
    "deploy 🔑👩‍💻",
];

fn mail_section(port: u16) -> String {
    format!(
        "[mail]\nfrom = \"orgwarden <orgwarden@example.com>\"\nto = [\"security@example.com\"]\n\
         transport = \"smtp\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout = \"5s\"\n"
    )
}

/// Seeds a leaver whose keys carry hostile names, plus a member with CR/LF in the name and a
/// 10 KB name, so that they appear in findings, members.csv and api_keys.csv.
pub(crate) fn seed_hostile(sim: &orgwarden_sim::SimHandle) {
    sim.with_state(|s| {
        let now = s.now();
        let leaver = s.add_user(
            "leaver@example.com",
            "Eve\r\nBcc: victim@example.com",
            "developer",
            now - Duration::days(40),
        );
        for name in HOSTILE_KEYS {
            s.add_api_key(name, None, Some(&leaver), "active", now - Duration::days(5));
        }
        s.add_api_key(&"A".repeat(10_000), None, Some(&leaver), "active", now);
        s.add_user(
            "long@example.com",
            &"Ω".repeat(10_000),
            "user",
            now - Duration::days(3),
        );
        assert!(s.remove_user(&leaver));
    });
}

pub(crate) fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

#[tokio::test]
async fn report_send_delivers_one_message_a_mail_parser_reads() {
    let sim = sim(small()).await;
    seed_hostile(&sim);
    let smtp = smtp_server(ServerOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.base_url(), &mail_section(smtp.port));
    let out = dir.path().join("report");

    let (code, o, e) = run(orgwarden(&config, &["snapshot"])).await;
    assert_eq!(code, 0, "{o}{e}");
    let (code, o, e) = run(orgwarden(
        &config,
        &["report", "--send", "--out", out.to_str().unwrap()],
    ))
    .await;
    assert_eq!(code, 0, "{o}{e}");

    // Every CSV, with its documented header.
    for (name, columns) in CSV_COLUMNS {
        let (header, _) = read_csv(&out.join(name));
        assert_eq!(&header, columns, "{name}");
    }
    // Hostile names come back whole in the CSV, neutralised where a spreadsheet would evaluate.
    let (header, rows) = read_csv(&out.join("api_keys.csv"));
    let name_col = header.iter().position(|h| h == "name").unwrap();
    for hostile in HOSTILE_KEYS {
        let cell = rows
            .iter()
            .map(|r| r[name_col].as_str())
            .find(|c| c.ends_with(hostile))
            .unwrap_or_else(|| panic!("{hostile:?} missing from api_keys.csv"));
        if hostile.starts_with(['=', '+', '-', '@']) {
            assert_eq!(cell, format!("'{hostile}"));
        } else {
            assert_eq!(cell, *hostile);
        }
    }
    assert!(rows.iter().any(|r| r[name_col] == "A".repeat(10_000)));
    let (fh, findings) = read_csv(&out.join("findings.csv"));
    let subject_col = fh.iter().position(|h| h == "subject").unwrap();
    assert!(findings
        .iter()
        .any(|r| r[subject_col] == "'=HYPERLINK(\"http://x\")"));
    let (mh, members) = read_csv(&out.join("members.csv"));
    let name = mh.iter().position(|h| h == "name").unwrap();
    assert!(members.iter().any(|r| r[name] == "Ω".repeat(10_000)));

    // Exactly one message, whose structure and attachments are intact.
    let received = smtp.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].to, vec!["security@example.com"]);
    let message = MessageParser::default().parse(&received[0].data).unwrap();
    let subject = message.subject().unwrap();
    assert!(subject.contains(": first report, "), "{subject}");
    assert!(subject.contains(" open · "), "{subject}");
    assert!(!subject.contains('\n') && !subject.contains('\r'));
    assert!(message
        .headers()
        .iter()
        .all(|h| !h.name.as_str().eq_ignore_ascii_case("bcc")));
    assert_eq!(
        message.root_part().content_type().unwrap().subtype(),
        Some("mixed")
    );
    let first = &message.parts[message.root_part().sub_parts().unwrap()[0] as usize];
    assert_eq!(first.content_type().unwrap().subtype(), Some("alternative"));
    let text = message.body_text(0).unwrap();
    let html = message.body_html(0).unwrap();
    assert!(text.contains("finding"), "{text}");
    assert!(
        !html.contains("<script>alert"),
        "HTML must escape user data"
    );
    assert!(
        html.contains("&lt;script&gt;"),
        "the hostile key name is shown escaped"
    );
    assert!(!html.contains('\u{202E}'));
    let attachments: Vec<_> = message.attachments().collect();
    assert_eq!(attachments.len(), CSV_COLUMNS.len());
    for part in attachments {
        let name = part.attachment_name().unwrap();
        let on_disk = std::fs::read(out.join(name)).unwrap();
        assert_eq!(part.contents(), on_disk.as_slice(), "{name}");
    }
}

#[tokio::test]
async fn a_mail_server_down_for_a_while_loses_nothing_and_sends_once() {
    let sim = sim(small()).await;
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.base_url(), &mail_section(port));
    let (code, o, e) = run(orgwarden(&config, &["snapshot"])).await;
    assert_eq!(code, 0, "{o}{e}");

    // Nobody listens: the report is written and the email waits in the outbox.
    let (code, out, err) = run(orgwarden(&config, &["report", "--send"])).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("waiting in the outbox"), "{out}");
    let (_, list, _) = run(orgwarden(&config, &["outbox", "--format", "json"])).await;
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["status"], "pending");
    let (_, status, _) = run(orgwarden(&config, &["status", "--format", "json"])).await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["outbox"]["pending"], 1, "{status:#}");

    // A retry while the server is still down leaves the message pending: exit 1.
    let (code, o, e) = run(orgwarden(&config, &["outbox", "--retry"])).await;
    assert_eq!(code, 1, "{o}{e}");
    assert!(e.contains("1 still pending"), "{e}");

    // The server comes up: one retry delivers it, a second one has nothing to do.
    let smtp = smtp_server(ServerOptions {
        port: Some(port),
        ..ServerOptions::default()
    });
    let (code, o, e) = run(orgwarden(&config, &["outbox", "--retry"])).await;
    assert_eq!(code, 0, "{o}{e}");
    let (code, o, e) = run(orgwarden(&config, &["outbox", "--retry"])).await;
    assert_eq!(code, 0, "{o}{e}");
    assert_eq!(smtp.received().len(), 1, "delivered exactly once");
    let (_, list, _) = run(orgwarden(&config, &["outbox", "--format", "json"])).await;
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["status"], "sent");
    let (_, status, _) = run(orgwarden(&config, &["status", "--format", "json"])).await;
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(status["outbox"]["pending"], 0);
    assert_eq!(status["outbox"]["sent"], 1);
}

#[tokio::test]
async fn a_preview_records_nothing_and_since_sets_the_period() {
    let sim = sim(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.base_url(), "");
    let first = dir.path().join("r1");
    let second = dir.path().join("r2");
    let third = dir.path().join("r3");
    let (code, o, e) = run(orgwarden(&config, &["snapshot"])).await;
    assert_eq!(code, 0, "{o}{e}");
    let (code, out, e) = run(orgwarden(
        &config,
        &["report", "--out", first.to_str().unwrap()],
    ))
    .await;
    assert_eq!(code, 0, "{out}{e}");
    assert!(out.contains("preview: not recorded"), "{out}");
    let (_, changes) = read_csv(&first.join("changes.csv"));
    assert!(
        changes.is_empty(),
        "the first report has nothing to compare with"
    );
    let joined = sim.with_state(|s| {
        let now = s.now();
        s.add_user("newcomer@example.com", "New Comer", "user", now);
        "newcomer@example.com"
    });
    let (code, o, e) = run(orgwarden(&config, &["snapshot"])).await;
    assert_eq!(code, 0, "{o}{e}");
    // The preview did not start a period: this is still a first report, with no changes.
    let (code, out, e) = run(orgwarden(
        &config,
        &["report", "--out", second.to_str().unwrap()],
    ))
    .await;
    assert_eq!(code, 0, "{out}{e}");
    assert!(out.contains(": first report, "), "{out}");
    let (_, changes) = read_csv(&second.join("changes.csv"));
    assert!(changes.is_empty(), "{changes:?}");
    // `--since 1` starts the period after snapshot run 1.
    let (code, out, e) = run(orgwarden(
        &config,
        &["report", "--since", "1", "--out", third.to_str().unwrap()],
    ))
    .await;
    assert_eq!(code, 0, "{out}{e}");
    assert!(!out.contains("first report"), "{out}");
    let (header, changes) = read_csv(&third.join("changes.csv"));
    let change = header.iter().position(|h| h == "change").unwrap();
    let subject = header.iter().position(|h| h == "subject").unwrap();
    assert!(
        changes
            .iter()
            .any(|r| r[change] == "joined" && r[subject] == joined),
        "{changes:?}"
    );
    // A run that is not there is refused with a clear message.
    let (code, _, err) = run(orgwarden(&config, &["report", "--since", "99"])).await;
    assert_eq!(code, 1);
    assert!(err.contains("no complete snapshot run 99"), "{err}");
    let (code, _, err) = run(orgwarden(&config, &["report", "--since", "last week"])).await;
    assert_ne!(code, 0);
    assert!(err.contains("expected a run id, a date"), "{err}");
}

// ---- A simulated week ---------------------------------------------------------------------------

mod week {
    use std::collections::BTreeSet;
    use std::path::Path;
    use std::sync::Arc;

    use chrono::{DateTime, Duration, Utc};
    use mail_parser::MessageParser;
    use orgwarden::clock::{Clock, ManualClock, SharedClock};
    use orgwarden::config::{Config, Environment};
    use orgwarden::jobs::{self, JobContext, ReportOptions, ReportSummary};
    use orgwarden::store::Store;
    use orgwarden_sim::{SimHandle, DEMO_ADMIN_KEY};

    use super::read_csv;
    use crate::helpers::*;
    use crate::mail::{smtp_server, ServerOptions};

    fn config(dir: &Path, sim: &SimHandle, smtp_port: u16) -> Config {
        let text = format!(
            r#"
[api]
base_url = "{base}"
admin_key = "{key}"
requests_per_second = 0
max_retries = 1
total_deadline = "20s"

[store]
path = "{db}"

[rules.stale_invites]
remediate = true

[remediation]
mode = "enforce"

# The simulator's usage reports follow the real date it was seeded at, not this test's March
# week: usage-based findings would come and go with the day the test runs.
[usage]
enabled = false

[mail]
from = "orgwarden <orgwarden@example.com>"
to = ["security@example.com"]
transport = "smtp"
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
timeout = "5s"

[report]
out_dir = "{reports}"

[schedule]
timezone = "Europe/Berlin"
audit = "0 0 * * * *"
"#,
            base = sim.base_url(),
            key = DEMO_ADMIN_KEY,
            db = dir.join("orgwarden.db").display(),
            reports = dir.join("reports").display(),
        );
        Config::from_toml(&text, &Environment::default())
            .map_err(|e| e.to_string())
            .expect("config")
            .0
    }

    /// The world of the test: one clock for orgwarden and the simulator.
    struct World {
        sim: SimHandle,
        clock: ManualClock,
        config: Config,
        store: Store,
    }

    impl World {
        fn ctx(&mut self) -> JobContext<'_> {
            let clock: SharedClock = Arc::new(self.clock.clone());
            JobContext::new(&self.config, &mut self.store, clock)
        }

        fn at(&self, t: DateTime<Utc>) {
            self.clock.set(t);
            self.sim.set_now(t);
        }

        async fn audit(&mut self) {
            jobs::audit_cycle(&mut self.ctx())
                .await
                .expect("audit cycle");
        }

        /// An audit with a key the API no longer accepts: the snapshot fails.
        async fn audit_with_revoked_key(&mut self) {
            let revoked = client_with_key(&self.sim, 100, "sk-ant-admin01-revoked");
            let clock: SharedClock = Arc::new(self.clock.clone());
            let mut ctx = JobContext {
                config: &self.config,
                store: &mut self.store,
                clock,
                client: Ok(revoked),
                accept_new_org: false,
            };
            assert!(
                jobs::audit_cycle(&mut ctx).await.is_err(),
                "a revoked key fails"
            );
        }

        async fn report(&mut self, send: bool) -> ReportSummary {
            let options = ReportOptions {
                send,
                ..ReportOptions::default()
            };
            jobs::report_job(&mut self.ctx(), &options)
                .await
                .expect("report")
        }
    }

    fn column(path: &Path, name: &str, column: &str) -> Vec<String> {
        let (header, rows) = read_csv(&path.join(name));
        let idx = header.iter().position(|h| h == column).unwrap();
        rows.into_iter().map(|r| r[idx].clone()).collect()
    }

    /// The plain text of the section whose heading starts with `title`, unwrapped.
    fn section(text: &str, title: &str) -> String {
        let text = text.replace("\n  ", " ");
        let start = text
            .find(&format!("\n{title}"))
            .unwrap_or_else(|| panic!("no {title:?} in\n{text}"));
        let rest = &text[start + 1..];
        rest[..rest.find("\n\n").unwrap_or(rest.len())].to_owned()
    }

    #[tokio::test]
    async fn a_week_of_hourly_audits_reports_exactly_the_events_of_its_period() {
        let monday: DateTime<Utc> = "2026-03-02T00:00:00Z".parse().unwrap();
        let sim = sim(small()).await;
        let smtp = smtp_server(ServerOptions::default());
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(monday);
        sim.set_now(monday);
        let (leaver, leaver_key) = sim.with_state(|s| {
            let leaver = s.add_user(
                "leaver@example.com",
                "Lea Ver",
                "developer",
                monday - Duration::days(90),
            );
            s.add_api_key(
                "leaver-key",
                None,
                Some(&leaver),
                "active",
                monday - Duration::days(30),
            );
            // Pending for 10 days: stale, and deleted once the grace period is over.
            s.add_invite("stale@example.com", "user", monday - Duration::days(10));
            (leaver, "leaver-key")
        });
        let config = config(dir.path(), &sim, smtp.port);
        let store = Store::open_writer(&config.store.path, "test", monday).unwrap();
        let mut w = World {
            sim,
            clock,
            config,
            store,
        };

        // Monday 00:00: the first audit and the first report.
        w.audit().await;
        let first = w.report(true).await;
        assert!(first.recorded);
        assert_eq!(first.period_start, None);
        assert!(
            first.subject.contains(": first report, "),
            "{}",
            first.subject
        );
        let first_run = first.run_id;
        let open_at_first: BTreeSet<String> = column(&first.out_dir, "findings.csv", "subject")
            .into_iter()
            .collect();
        assert!(
            open_at_first.contains("stale@example.com"),
            "{open_at_first:?}"
        );
        // A former member's key, open since before the period.
        let (header, rows) = read_csv(&first.out_dir.join("findings.csv"));
        let col = |name: &str| header.iter().position(|h| h == name).unwrap();
        let orphan = rows
            .iter()
            .find(|r| {
                r[col("rule")] == "orphaned_keys" && r[col("subject")] == "Production backend"
            })
            .map(|r| r[col("subject_id")].clone())
            .expect("an orphaned key named Production backend");

        // A week of hourly audits, with events and a preview on Thursday.
        let mut preview = None;
        for hour in 1..=(7 * 24) {
            let now = monday + Duration::hours(hour);
            w.at(now);
            match hour {
                // Tuesday 10:00: someone leaves, their key stays active.
                34 => assert!(w.sim.with_state(|s| s.remove_user(&leaver))),
                // Wednesday 09:00: someone joins.
                57 => {
                    w.sim.with_state(|s| {
                        s.add_user("newcomer@example.com", "New Comer", "user", now)
                    });
                }
                // Tuesday 12:00: an invite that has been pending for 8 days shows up.
                36 => {
                    w.sim.with_state(|s| {
                        s.add_invite("late@example.com", "user", now - Duration::days(8))
                    });
                }
                // Friday 09:00: a person deactivates a former member's key by hand.
                105 => assert!(w.sim.with_state(|s| s.set_key_status(&orphan, "inactive"))),
                _ => {}
            }
            // Sunday 21:00 to 23:00: the admin key was revoked; the snapshots fail.
            if (165..=167).contains(&hour) {
                w.audit_with_revoked_key().await;
            } else if hour < 168 {
                w.audit().await;
            }
            // Thursday 12:00: someone previews the report.
            if hour == 84 {
                let p = w.report(false).await;
                assert!(!p.recorded, "a preview records nothing");
                preview = Some(p);
            }
        }
        let preview = preview.unwrap();
        assert_eq!(preview.period_start_run, Some(first_run));
        assert!(
            column(&preview.out_dir, "findings.csv", "subject").contains(&leaver_key.to_owned())
        );

        // Monday 00:00 a week later: the second report.
        let second = w.report(true).await;
        assert!(second.recorded);
        // The period starts at the first report's snapshot, not at the preview's.
        assert_eq!(second.period_start_run, Some(first_run));
        assert_eq!(second.period_start, Some(monday));
        let last_run = second.run_id;
        let received = smtp.received();
        assert_eq!(
            received.len(),
            2,
            "two sent reports, the preview not mailed"
        );
        let message = MessageParser::default().parse(&received[1].data).unwrap();
        let subject = message.subject().unwrap().to_owned();
        let text = message.body_text(0).unwrap().replace("\r\n", "\n");
        let html = message.body_html(0).unwrap().into_owned();

        // The ground truth, from the store.
        let store = &w.store;
        let all = store.findings(false).unwrap();
        let end = store.run(last_run).unwrap().unwrap().finished_at.unwrap();

        // New: exactly what was first seen after the first report's snapshot.
        let new: BTreeSet<String> = all
            .iter()
            .filter(|f| f.status.is_active() && f.first_seen > monday)
            .map(|f| f.subject.clone())
            .collect();
        assert!(new.contains(leaver_key), "{new:?}");
        let listed = |title: &str| -> BTreeSet<String> {
            if !text.contains(&format!("\n{title}")) {
                return BTreeSet::new();
            }
            section(&text, title)
                .lines()
                .filter(|l| l.starts_with("- ["))
                .map(|l| l.split(" | ").nth(1).unwrap().to_owned())
                .collect()
        };
        let mut listed_new = listed("NEW HIGH AND CRITICAL FINDINGS");
        listed_new.extend(listed("OTHER NEW FINDINGS"));
        assert_eq!(listed_new, new, "{text}");
        assert!(
            subject.contains(&format!(": {} new (", new.len())),
            "{subject}"
        );
        // The preview in between saw the same new finding, and did not swallow it.
        assert!(
            column(&preview.out_dir, "findings.csv", "subject").contains(&leaver_key.to_owned())
        );

        // Resolved: exactly what was resolved in the period.
        let resolved: BTreeSet<String> = all
            .iter()
            .filter(|f| f.resolved_at.is_some_and(|t| t > monday))
            .map(|f| f.subject.clone())
            .collect();
        assert_eq!(listed("RESOLVED IN THIS PERIOD"), resolved, "{text}");
        let want: BTreeSet<String> = [
            "stale@example.com",
            "late@example.com",
            "Production backend",
        ]
        .map(str::to_owned)
        .into();
        assert_eq!(resolved, want);
        // The invite that appeared and was deleted within the period is not "new".
        assert!(!new.contains("late@example.com"));

        // Actions: exactly those planned from the period's snapshots.
        let actions = store.actions_in_runs(None, last_run).unwrap();
        assert!(
            actions.iter().all(|a| a.run_id > first_run),
            "no action on the first snapshot (grace)"
        );
        let ids: Vec<String> = actions.iter().map(|a| a.id.to_string()).collect();
        assert_eq!(column(&second.out_dir, "actions.csv", "id"), ids);
        assert!(
            text.contains(&format!("\nACTIONS TAKEN ({})", actions.len())),
            "{text}"
        );
        // orgwarden deleted the two stale invites; the key was deactivated by hand.
        let acted: BTreeSet<String> = actions
            .iter()
            .filter(|a| a.status == orgwarden::store::ActionStatus::Succeeded)
            .map(|a| a.subject.clone())
            .collect();
        let want: BTreeSet<String> = ["stale@example.com", "late@example.com"]
            .map(str::to_owned)
            .into();
        assert_eq!(acted, want);
        let taken = section(&text, "ACTIONS TAKEN");
        assert!(
            taken.contains("- [succeeded] Delete invite | stale@example.com"),
            "{taken}"
        );

        // Changes: the diff between the period's first and last snapshots, with names.
        let expected = orgwarden::snapshot::diff(
            &store.state_at(first_run).unwrap(),
            &store.state_at(last_run).unwrap(),
        );
        let changes = column(&second.out_dir, "changes.csv", "change");
        assert_eq!(changes.len(), expected.len());
        let people = section(&text, "CHANGES");
        assert!(people.contains("- left: leaver@example.com"), "{people}");
        assert!(
            people.contains("- joined: newcomer@example.com"),
            "{people}"
        );

        // The failed snapshots: a banner with the cause and the fix, and the subject says so.
        assert!(subject.starts_with("[orgwarden] STALE DATA: "), "{subject}");
        assert!(subject.ends_with(" · 2–8 Mar"), "{subject}");
        let banner = text
            .find("!! DATA MAY BE OUT OF DATE OR INCOMPLETE")
            .expect("banner");
        assert!(banner < text.find("Period:").unwrap());
        let unwrapped = text.replace("\n  ", " ");
        assert!(
            unwrapped.contains("3 snapshots or audits failed in this period"),
            "{text}"
        );
        assert!(unwrapped.contains("HTTP 401"), "{text}");
        assert!(
            unwrapped.contains("Fix: the Admin API refused the key"),
            "{text}"
        );
        assert!(unwrapped.contains("The data is stale"), "{text}");
        assert!(html.contains("Data may be out of date or incomplete"));
        assert!(html.contains("HTTP 401"));
        // Times in schedule.timezone.
        let end_local = end.with_timezone(&chrono_tz::Europe::Berlin);
        assert!(
            text.contains(&format!("to {}", end_local.format("%Y-%m-%d %H:%M CET"))),
            "{text}"
        );

        // Two reports in the same second get their own folders.
        let a = w.report(false).await;
        let b = w.report(false).await;
        assert_ne!(a.out_dir, b.out_dir);
        assert!(a.out_dir.exists() && b.out_dir.exists());
        assert_eq!(w.clock.now(), monday + Duration::hours(168));
    }
}
