//! Directory sources end to end: a CSV export of the simulator's seeded directory read with each
//! audit cycle, stored with history, and the directory rules' findings checked against what
//! `SimState::directory()` says of every member and invite.

use std::collections::BTreeSet;
use std::path::Path;

use chrono::Duration;
use orgwarden_sim::{DirectoryEntry, DirectoryState, MAIN_DOMAIN};

use crate::app::TestApp;

/// The seeded directory as a CSV directory export.
fn write_export(path: &Path, entries: &[DirectoryEntry]) {
    std::fs::write(path, orgwarden::demo::directory_export_csv(entries)).unwrap();
}

fn directory_config(path: &Path) -> String {
    format!(
        "[[directories]]\nname = \"corp\"\ntype = \"csv\"\ndomains = [\"{MAIN_DOMAIN}\"]\npath = {:?}\n",
        path.display().to_string()
    )
}

#[tokio::test]
async fn the_audit_lists_exactly_the_people_disabled_or_unknown_in_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("directory.csv");
    let mut app = crate::reconcile::directory_app("").await;
    write_export(&export, &app.sim.snapshot_state().directory());
    // Members, invites, explicit workspace memberships and keys, as for every other source.
    let summary = crate::reconcile::audit_through(
        &mut app,
        &directory_config(&export),
        crate::reconcile::Source::CsvExport,
    )
    .await;
    let evaluated = |rule: &str| {
        summary
            .cleanup
            .audit
            .rules
            .iter()
            .find(|o| o.rule.as_str() == rule)
            .map(|o| o.status.as_str())
    };
    assert_eq!(evaluated("assignment_drift"), Some("evaluated"));
}

#[tokio::test]
async fn a_failing_source_leaves_its_rules_not_evaluated_and_keeps_its_findings() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("directory.csv");
    let mut app = TestApp::new(&directory_config(&export)).await;
    write_export(&export, &app.sim.snapshot_state().directory());
    let first = app.cycle().await;
    let before = crate::reconcile::directory_findings(&first);
    assert!(!before.is_empty());

    // Nothing is resolved: "nobody left" is never concluded from a source that is down.
    std::fs::remove_file(&export).unwrap();
    crate::reconcile::assert_down_resolves_nothing(&mut app, &before, "corp").await;
}

#[tokio::test]
async fn a_person_disabled_in_a_later_read_is_disabled_since_that_read() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("directory.csv");
    let mut app = TestApp::new(&directory_config(&export)).await;
    let mut entries = app.sim.snapshot_state().directory();
    write_export(&export, &entries);
    app.cycle().await;
    let first_read = app.now();

    // One active member becomes disabled, with no time of its own from the directory.
    app.advance(Duration::hours(3));
    let state = app
        .store
        .state_at(app.store.latest_complete(None).unwrap().unwrap().id)
        .unwrap();
    let member_emails: BTreeSet<String> = state
        .members
        .iter()
        .map(|m| m.email.to_lowercase())
        .collect();
    let target = entries
        .iter_mut()
        .find(|e| e.state.is_active() && e.aliases.is_empty() && member_emails.contains(&e.email))
        .expect("an active member");
    target.state = DirectoryState::Suspended;
    let email = target.email.clone();
    let text_entries = entries.clone();
    write_export(&export, &text_entries);
    // Drop the directory's own time for that row: "since" then comes from orgwarden's reads.
    let csv = std::fs::read_to_string(&export).unwrap();
    let csv: String = csv
        .lines()
        .map(|line| {
            if line.split(',').nth(1) == Some(email.as_str()) {
                let mut cells: Vec<&str> = line.split(',').collect();
                cells[4] = "";
                cells.join(",")
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&export, csv + "\n").unwrap();
    let second = app.cycle().await;
    let second_read = app.now();
    app.advance(Duration::hours(1));
    let third = app.cycle().await;
    assert!(second_read > first_read);
    for summary in [&second, &third] {
        let finding = summary
            .cleanup
            .audit
            .result
            .findings
            .iter()
            .find(|f| f.rule == "directory_departed" && f.subject.eq_ignore_ascii_case(&email))
            .expect("the newly disabled member is reported");
        let day = second_read.format("%Y-%m-%d").to_string();
        assert!(
            finding
                .evidence
                .contains(&format!("so since orgwarden's read of {day}")),
            "{}",
            finding.evidence
        );
    }
    // The store answers since when: the second read, not the third.
    let views = orgwarden::jobs::directory_views(&app.config, &app.store, app.now()).unwrap();
    let read = views[0].read.as_ref().unwrap();
    let person = read
        .listing
        .people
        .iter()
        .find(|p| p.email == email)
        .unwrap();
    assert_eq!(read.seen_since.get(&person.id), Some(&second_read));
}

#[tokio::test]
async fn show_directory_prints_the_newest_read_while_the_writer_holds_the_database() {
    let mut app = TestApp::new("").await;
    let export = app.dir.path().join("directory.csv");
    app.reconfigure(&directory_config(&export));
    let entries = app.sim.snapshot_state().directory();
    write_export(&export, &entries);
    app.cycle().await;

    // The binary, on the same database and source, while this test's writer still holds it.
    let config = crate::helpers::write_config(
        app.dir.path(),
        &app.sim.base_url(),
        &directory_config(&export),
    );
    let (code, out, err) =
        crate::helpers::run(crate::helpers::orgwarden(&config, &["show", "directory"])).await;
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("not read yet"), "{err}");
    for entry in &entries {
        assert!(
            out.contains(&entry.email),
            "{} missing from:\n{out}",
            entry.email
        );
    }
}

fn scheduled_config(path: &Path, schedule: &str) -> String {
    format!("{}schedule = \"{schedule}\"\n", directory_config(path))
}

fn outcome(summary: &orgwarden::jobs::CycleSummary, rule: &str) -> (String, Option<String>) {
    let outcome = summary
        .cleanup
        .audit
        .rules
        .iter()
        .find(|o| o.rule.as_str() == rule)
        .unwrap();
    (
        outcome.status.as_str().to_owned(),
        outcome.status.reason().map(str::to_owned),
    )
}

#[tokio::test]
async fn a_scheduled_source_is_read_by_its_own_job_and_too_old_a_read_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("directory.csv");
    // Hourly, on the hour: the read stays usable for two hours.
    let mut app = TestApp::new(&scheduled_config(&export, "0 0 * * * *")).await;
    write_export(&export, &app.sim.snapshot_state().directory());

    // The audit cycle does not read a scheduled source: not read yet.
    let first = app.cycle().await;
    assert!(app.store.directory_reads(10).unwrap().is_empty());
    let (status, reason) = outcome(&first, "directory_departed");
    assert_eq!(status, "not_evaluated");
    assert!(reason.unwrap().contains("not read yet"));

    // Its job reads it; the next cycles use that read without reading again.
    let read = orgwarden::jobs::directory_read_job(&mut app.ctx(), "corp")
        .await
        .unwrap();
    assert!(read.error.is_none(), "{:?}", read.error);
    assert!(read.active > 0 && read.disabled > 0);
    let read_at = app.now();
    app.advance(Duration::minutes(30));
    let second = app.cycle().await;
    assert_eq!(outcome(&second, "directory_departed").0, "evaluated");
    assert!(second
        .cleanup
        .audit
        .result
        .findings
        .iter()
        .any(|f| f.rule == "directory_departed"));
    app.advance(Duration::minutes(89));
    let third = app.cycle().await;
    assert_eq!(outcome(&third, "directory_departed").0, "evaluated");
    assert_eq!(app.store.directory_reads(10).unwrap().len(), 1);

    // Two hours after the read (twice the interval), and the job has not run since: too old.
    app.advance(Duration::minutes(2));
    assert!(app.now() - read_at > Duration::hours(2));
    let stale = app.cycle().await;
    let (status, reason) = outcome(&stale, "directory_departed");
    assert_eq!(status, "not_evaluated");
    let reason = reason.unwrap();
    assert!(reason.contains("directory corp"), "{reason}");
    assert!(reason.contains("older than twice"), "{reason}");
    assert!(reason.contains("120 min"), "{reason}");

    // A read that fails is the latest: not evaluated, with its error, though an older one worked.
    orgwarden::jobs::directory_read_job(&mut app.ctx(), "corp")
        .await
        .unwrap();
    app.advance(Duration::minutes(10));
    assert_eq!(
        outcome(&app.cycle().await, "directory_departed").0,
        "evaluated"
    );
    std::fs::remove_file(&export).unwrap();
    let failed = orgwarden::jobs::directory_read_job(&mut app.ctx(), "corp")
        .await
        .unwrap();
    assert!(failed.error.is_some());
    let after = app.cycle().await;
    let (status, reason) = outcome(&after, "directory_departed");
    assert_eq!(status, "not_evaluated");
    assert!(reason.unwrap().contains("failed"));
    assert_eq!(app.store.directory_reads(10).unwrap().len(), 3);

    // An unknown source is an error naming the configured ones.
    let error = orgwarden::jobs::directory_read_job(&mut app.ctx(), "nope")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("\"nope\"") && error.contains("corp"),
        "{error}"
    );
}

#[tokio::test]
async fn status_lists_the_next_read_of_a_scheduled_source() {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("directory.csv");
    let mut extra = scheduled_config(&export, "0 30 6 * * *");
    // A second source read with each cycle has no job of its own.
    extra.push_str(&format!(
        "\n[[directories]]\nname = \"roster\"\ntype = \"csv\"\ndomains = [\"other.example\"]\npath = {:?}\n",
        export.display().to_string()
    ));
    let app = TestApp::new(&extra).await;
    let status = app.status();
    // TestApp::start is 08:00 UTC: the next 06:30 is the next day's.
    assert_eq!(
        status.next.get("directory corp"),
        Some(&Some("2026-12-01T06:30:00Z".to_owned()))
    );
    assert!(!status.next.contains_key("directory roster"));
    assert!(orgwarden::status::render_text(&status)
        .contains("next directory corp: 2026-12-01T06:30:00Z"));
}
