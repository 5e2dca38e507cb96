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
fn seed_hostile(sim: &orgwarden_sim::SimHandle) {
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

fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
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
    assert!(subject.contains("open finding"), "{subject}");
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
async fn the_second_report_lists_the_changes_since_the_first() {
    let sim = sim(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &sim.base_url(),
        "[mail]\nfrom = \"orgwarden <orgwarden@example.com>\"\nto = [\"security@example.com\"]\n\
         transport = \"file\"\ndir = \"outbox\"\n",
    );
    let first = dir.path().join("r1");
    let second = dir.path().join("r2");
    let third = dir.path().join("r3");
    // The first report is sent, so it is recorded: the next one counts from it.
    for args in [
        vec!["snapshot"],
        vec!["report", "--send", "--out", first.to_str().unwrap()],
    ] {
        let (code, o, e) = run(orgwarden(&config, &args)).await;
        assert_eq!(code, 0, "{o}{e}");
    }
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
    for args in [
        vec!["snapshot"],
        vec!["report", "--out", second.to_str().unwrap()],
    ] {
        let (code, o, e) = run(orgwarden(&config, &args)).await;
        assert_eq!(code, 0, "{o}{e}");
    }
    let (header, changes) = read_csv(&second.join("changes.csv"));
    let change = header.iter().position(|h| h == "change").unwrap();
    let subject = header.iter().position(|h| h == "subject").unwrap();
    assert!(
        changes
            .iter()
            .any(|r| r[change] == "joined" && r[subject] == joined),
        "{changes:?}"
    );
    // That one was a preview (not sent): it is not "the last report", so a third still counts
    // from the first.
    let (code, o, e) = run(orgwarden(
        &config,
        &["report", "--out", third.to_str().unwrap()],
    ))
    .await;
    assert_eq!(code, 0, "{o}{e}");
    let (_, again) = read_csv(&third.join("changes.csv"));
    assert!(
        again
            .iter()
            .any(|r| r[change] == "joined" && r[subject] == joined),
        "{again:?}"
    );
}
