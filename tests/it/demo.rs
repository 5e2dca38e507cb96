//! `orgwarden demo`: runs with no key, no network and no configuration, and writes what it says.

use std::process::Command;

use mail_parser::MessageParser;

use crate::helpers::*;

#[tokio::test]
async fn the_demo_writes_what_it_says() {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(bin());
    command
        .current_dir(dir.path())
        .arg("demo")
        .env_remove("ANTHROPIC_ADMIN_KEY")
        .env_remove("ORGWARDEN_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY");
    let (code, out, err) = run(command).await;
    assert_eq!(code, 0, "{out}\n{err}");
    for want in [
        "Cycle 1",
        "Cycle 2",
        "Findings by rule",
        "privilege_escalation",
        "orphaned_keys",
        "What changed",
        "role_changed",
        "left",
        "expired",
        "Cleanup plan",
        "dry-run",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    // The directory is the Okta simulator: a person disabled there and still a member is a
    // directory_departed finding, in the output and in the report.
    assert!(
        out.contains("its Okta directory at http://127.0.0.1:"),
        "{out}"
    );
    let line = out
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Disabled in Okta, still in Claude (directory_departed): ")
        })
        .unwrap_or_else(|| panic!("no disabled person in:\n{out}"));
    let (email, evidence) = line.split_once(": ").unwrap();
    assert!(evidence.contains("still a member"), "{line}");
    assert!(
        ["(SUSPENDED)", "(DEPROVISIONED)", "(LOCKED_OUT)"]
            .iter()
            .any(|word| evidence.contains(&format!("disabled in directory okta {word}"))),
        "{line}"
    );
    let findings_table = out.split("Findings by rule").nth(1).unwrap();
    assert!(findings_table.contains("directory_departed"), "{out}");
    let reports = dir.path().join("orgwarden-demo/reports/cycle-1");
    let members = std::fs::read_to_string(reports.join("members.csv")).unwrap();
    assert!(
        members.contains(email),
        "{email} is not a member in the report"
    );
    let findings = std::fs::read_to_string(reports.join("findings.csv")).unwrap();
    assert!(
        findings
            .lines()
            .any(|row| row.starts_with("directory_departed,")
                && row.contains(",member,")
                && row.contains(email)
                && row.contains("directory okta")),
        "no directory_departed row for {email} in findings.csv"
    );
    let config = std::fs::read_to_string(dir.path().join("orgwarden-demo/config.toml")).unwrap();
    assert!(config.contains("type = \"okta\""), "{config}");
    assert!(
        !config.contains(orgwarden_sim::idp::okta::DEMO_OKTA_TOKEN),
        "{config}"
    );

    // Every path it lists exists, under ./orgwarden-demo/.
    let base = dir.path().join("orgwarden-demo").canonicalize().unwrap();
    let listed: Vec<&str> = out
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            ["configuration", "database", "report", "email"]
                .iter()
                .find_map(|k| l.strip_prefix(k))
                .map(str::trim)
        })
        .collect();
    assert!(listed.len() >= 2 + 16 + 2, "{listed:?}");
    for path in &listed {
        let path = std::path::Path::new(path);
        assert!(path.starts_with(&base), "{}", path.display());
        assert!(path.exists(), "{} listed but missing", path.display());
    }
    let emails: Vec<_> = listed.iter().filter(|p| p.ends_with(".eml")).collect();
    assert_eq!(emails.len(), 2, "one email per cycle");
    for eml in emails {
        let bytes = std::fs::read(eml).unwrap();
        let message = MessageParser::default().parse(&bytes).unwrap();
        let subject = message.subject().unwrap();
        assert!(subject.contains(" open · "), "{subject}");
        assert_eq!(
            message.attachments().count(),
            9,
            "the CSV attachments, unused_access.csv included"
        );
    }
    // A second run starts from a clean slate and succeeds too.
    let mut again = Command::new(bin());
    again
        .current_dir(dir.path())
        .arg("demo")
        .env_remove("ANTHROPIC_ADMIN_KEY");
    let (code, out, err) = run(again).await;
    assert_eq!(code, 0, "{out}\n{err}");
}
