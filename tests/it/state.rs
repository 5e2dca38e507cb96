//! Honest state: an abandoned run, a corrupt database, a read-only database and a snapshot of
//! another organization, each through the real binary on a real SQLite file.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;

use orgwarden::store::{Store, WriterLock};
use orgwarden_sim::SimOptions;

use crate::helpers::*;

/// The bytes of the database and its WAL: equal before and after means nothing was written.
fn db_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(dir.join("orgwarden.db")).unwrap();
    bytes.extend(std::fs::read(dir.join("orgwarden.db-wal")).unwrap_or_default());
    bytes
}

fn run_status(dir: &Path, id: i64) -> String {
    let conn = rusqlite::Connection::open_with_flags(
        dir.join("orgwarden.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row("SELECT status FROM runs WHERE id = ?1", [id], |r| r.get(0))
        .unwrap()
}

/// The writer lock of `db`, which this process's `Store` has just released. Another test of
/// this binary may be starting a child process at that moment: between its fork and its exec the
/// child holds a copy of every descriptor, the lock file's too (close-on-exec closes it only at
/// the exec), so the lock can stay taken for that instant. Asked again for up to 5 s.
async fn acquire_once_released(db: &Path) -> WriterLock {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match WriterLock::acquire(db, "orgwarden run", Some(wall_now())) {
            Ok(lock) => return lock,
            Err(error) if std::time::Instant::now() < deadline => {
                assert!(
                    matches!(error, orgwarden::store::StoreError::Locked { .. }),
                    "{error}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(error) => panic!("the lock was not released: {error}"),
        }
    }
}

#[tokio::test]
async fn readers_show_a_run_whose_writer_is_gone_as_abandoned_without_writing() {
    let sim = sim(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.base_url(), "");
    let (code, out, err) = run(orgwarden(&config, &["snapshot"])).await;
    assert_eq!(code, 0, "{out}{err}");
    // A writer begins a run and dies: the row stays `running`, the lock goes with the process.
    let db = dir.path().join("orgwarden.db");
    let running = {
        let store = Store::open_writer(&db, "orgwarden snapshot", wall_now()).unwrap();
        store.begin_run(wall_now()).unwrap()
    };

    // While a writer holds the lock, the run is honestly `running`.
    {
        let _held = acquire_once_released(&db).await;
        let (code, out, err) = run(orgwarden(&config, &["history", "--format", "json"])).await;
        assert_eq!(code, 0, "{err}");
        let runs: serde_json::Value = serde_json::from_str(&out).unwrap();
        let last = &runs[0]; // newest first
        assert_eq!(last["id"], running);
        assert_eq!(last["status"], "running");
    }

    let before = db_bytes(dir.path());
    let (code, out, err) = run(orgwarden(&config, &["history", "--format", "json"])).await;
    assert_eq!(code, 0, "{err}");
    let runs: serde_json::Value = serde_json::from_str(&out).unwrap();
    let last = &runs[0]; // newest first
    assert_eq!(last["id"], running);
    assert_eq!(last["status"], "abandoned", "{last:#}");

    let (code, out, _) = run(orgwarden(&config, &["status"])).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("abandoned"), "{out}");
    assert!(!out.contains("health: ok"), "{out}");
    let (code, out, err) = run(orgwarden(&config, &["show", "members"])).await;
    assert_eq!(code, 0, "{out}{err}");

    assert_eq!(run_status(dir.path(), running), "running", "readers wrote");
    assert!(db_bytes(dir.path()) == before, "readers changed the file");
}

/// Overwrites pages 3 to 8 of the database with a pattern, as a failing disk might.
fn corrupt(db: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    let len = std::fs::metadata(db).unwrap().len();
    assert!(
        len >= 12 * 4096,
        "a database of {len} bytes is too small to damage"
    );
    let mut file = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    file.seek(SeekFrom::Start(2 * 4096)).unwrap();
    file.write_all(&[0xA5; 6 * 4096]).unwrap();
    file.sync_all().unwrap();
}

#[tokio::test]
async fn a_corrupt_database_is_refused_with_a_hint_and_status_is_unhealthy() {
    let sim = sim(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.base_url(), "");
    let (code, out, err) = run(orgwarden(&config, &["snapshot"])).await;
    assert_eq!(code, 0, "{out}{err}");
    let db = dir.path().join("orgwarden.db");
    // Everything in the main file, so the damage hits live pages.
    Store::open_writer(&db, "test", wall_now())
        .unwrap()
        .checkpoint()
        .unwrap();
    corrupt(&db);
    let before = db_bytes(dir.path());

    let (code, out, err) = run(orgwarden(&config, &["snapshot"])).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("is corrupt"), "{err}");
    assert!(
        err.contains("backup") && err.contains("move it aside"),
        "{err}"
    );
    assert!(
        db_bytes(dir.path()) == before,
        "the snapshot wrote to a corrupt file"
    );

    let (code, out, err) = run(orgwarden(&config, &["status"])).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("corrupt") && out.contains("backup"), "{out}");
    assert!(!out.contains("health: ok"), "{out}");
    let (code, out, _) = run(orgwarden(&config, &["status", "--format", "json"])).await;
    assert_eq!(code, 1);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(status["healthy"], false);
    assert!(
        db_bytes(dir.path()) == before,
        "status wrote to a corrupt file"
    );
}

#[tokio::test]
async fn a_database_in_a_read_only_location_can_still_be_read() {
    let sim = sim(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.base_url(), "");
    for _ in 0..2 {
        let (code, out, err) = run(orgwarden(&config, &["snapshot"])).await;
        assert_eq!(code, 0, "{out}{err}");
    }
    let _ = std::fs::remove_file(dir.path().join("orgwarden.db.lock"));
    let before = db_bytes(dir.path());
    let listing = || {
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let files = listing();
    // Read-only for whoever runs it: root ignores permission bits, so run as nobody then.
    let root = std::fs::metadata(dir.path()).unwrap().uid() == 0;
    std::fs::set_permissions(
        dir.path().join("orgwarden.db"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o444)).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let reader = |args: &[&str]| {
        let mut command = orgwarden(&config, args);
        if root {
            command.uid(65534).gid(65534);
        }
        command
    };
    for args in [
        &["history"][..],
        &["show", "members"],
        &["show", "keys", "--at", "1"],
        &["diff"],
        &["status"],
    ] {
        let (code, out, err) = run(reader(args)).await;
        assert!(code == 0, "{args:?}: {code}\n{out}\n{err}");
        assert!(!out.trim().is_empty(), "{args:?}");
    }
    // A writer is refused there, and says why.
    let (code, _, err) = run(reader(&["snapshot"])).await;
    assert_ne!(code, 0, "{err}");

    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(listing(), files, "a reader created files");
    assert!(db_bytes(dir.path()) == before, "a reader wrote");
}

#[tokio::test]
async fn a_snapshot_of_another_organization_is_refused_unless_accepted() {
    let first = sim(small()).await;
    let other = sim_with(SimOptions {
        seed: 7,
        ..SimOptions::default()
    })
    .await;
    let org_id = |sim: &orgwarden_sim::SimHandle| {
        sim.with_state(|s| s.organization()["id"].as_str().unwrap().to_owned())
    };
    assert_ne!(org_id(&first), org_id(&other));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &first.base_url(), "");
    let (code, out, err) = run(orgwarden(&config, &["snapshot"])).await;
    assert_eq!(code, 0, "{out}{err}");
    // Same organization again: accepted.
    let (code, out, err) = run(orgwarden(&config, &["snapshot"])).await;
    assert_eq!(code, 0, "{out}{err}");

    let config = write_config(dir.path(), &other.base_url(), "");
    let before = db_bytes(dir.path());
    let (code, out, err) = run(orgwarden(&config, &["snapshot"])).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&org_id(&first)) && err.contains(&org_id(&other)),
        "{err}"
    );
    assert!(err.contains("--accept-new-org"), "{err}");
    assert!(db_bytes(dir.path()) == before, "a refused snapshot wrote");
    let (_, out, _) = run(orgwarden(&config, &["history", "--format", "json"])).await;
    let runs: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 2, "{runs:#}");

    let (code, out, err) = run(orgwarden(&config, &["snapshot", "--accept-new-org"])).await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(orgwarden(&config, &["snapshot"])).await;
    assert_eq!(
        code, 0,
        "the new organization is now the database's: {out}{err}"
    );
}

#[tokio::test]
async fn read_only_commands_work_while_the_daemon_holds_the_database() {
    let sim = sim(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.base_url(), "");
    for args in [&["snapshot"][..], &["audit"]] {
        let (code, out, err) = run(orgwarden(&config, args)).await;
        assert_eq!(code, 0, "{args:?}: {out}{err}");
    }
    let db = dir.path().join("orgwarden.db");
    // This process plays the daemon: it holds the writer lock as `orgwarden run` does.
    let _daemon = WriterLock::acquire(&db, "orgwarden run", Some(wall_now())).unwrap();
    let before = db_bytes(dir.path());
    let refusal = format!(
        "the daemon (pid {}) holds the database; use its schedule or stop it",
        std::process::id()
    );

    let (code, out, err) = run(orgwarden(
        &config,
        &["audit", "--no-record", "--format", "json"],
    ))
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let findings: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(!findings.as_array().unwrap().is_empty(), "{findings:#}");

    let (code, out, err) = run(orgwarden(&config, &["cleanup"])).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("plan for snapshot run 1"), "{out}");

    let preview = dir.path().join("preview");
    let (code, out, err) = run(orgwarden(
        &config,
        &["report", "--out", preview.to_str().unwrap()],
    ))
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("wrote"), "{out}");
    assert!(
        std::fs::read_dir(&preview).unwrap().count() > 0,
        "no report files"
    );

    for args in [&["audit"][..], &["snapshot"], &["cleanup", "--apply"]] {
        let (code, out, err) = run(orgwarden(&config, args)).await;
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(err.contains(&refusal), "{args:?}: {err}");
    }
    let (_, _, err) = run(orgwarden(&config, &["audit"])).await;
    assert!(err.contains("--no-record"), "{err}");

    assert!(db_bytes(dir.path()) == before, "a read-only command wrote");
}

fn demo(dir: &Path) -> std::process::Command {
    let mut command = std::process::Command::new(bin());
    command
        .arg("demo")
        .arg("--dir")
        .arg(dir)
        .env_remove("ANTHROPIC_ADMIN_KEY")
        .env_remove("ORGWARDEN_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY");
    command
}

#[tokio::test]
async fn demo_refuses_a_directory_it_did_not_create_and_touches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("orgwarden.db"), b"precious").unwrap();
    std::fs::create_dir(theirs.join("reports")).unwrap();
    let (code, out, err) = run(demo(&theirs)).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains("not empty") && err.contains(".orgwarden-demo"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(theirs.join("orgwarden.db")).unwrap(),
        b"precious"
    );
    assert!(theirs.join("reports").is_dir());
    assert_eq!(
        std::fs::read_dir(&theirs).unwrap().count(),
        2,
        "nothing added"
    );
}

#[tokio::test]
async fn demo_takes_the_lock_before_clearing_its_own_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mine = dir.path().join("mine");
    // A new directory becomes the demo's: marked, and usable again.
    let (code, out, err) = run(demo(&mine)).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(mine.join(".orgwarden-demo").is_file());
    let db = mine.join("orgwarden.db");
    let before = std::fs::read(&db).unwrap();

    // Someone writes that database now: the demo refuses before deleting anything.
    {
        let _held = WriterLock::acquire(&db, "orgwarden run", Some(wall_now())).unwrap();
        let (code, out, err) = run(demo(&mine)).await;
        assert_eq!(code, 1, "{out}{err}");
        assert!(err.contains("holds the database"), "{err}");
        assert_eq!(
            std::fs::read(&db).unwrap(),
            before,
            "the database was touched"
        );
        assert!(mine.join("reports").is_dir() && mine.join("outbox").is_dir());
    }
    let (code, out, err) = run(demo(&mine)).await;
    assert_eq!(code, 0, "its own directory again: {out}{err}");
}

#[tokio::test]
async fn the_audit_cycle_refuses_another_organization_and_writes_nothing() {
    use orgwarden::config::{Config, Environment};
    use orgwarden::jobs::{self, JobContext, OtherOrganization};
    let first = sim(small()).await;
    let other = sim_with(SimOptions {
        seed: 7,
        ..SimOptions::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("orgwarden.db");
    let env = Environment {
        vars: vec![(
            "ANTHROPIC_ADMIN_KEY".to_owned(),
            orgwarden_sim::DEMO_ADMIN_KEY.to_owned(),
        )],
    };
    let config_for = |sim: &orgwarden_sim::SimHandle| {
        let text = format!(
            "[api]\nbase_url = \"{}\"\nrequests_per_second = 0\n[store]\npath = \"{}\"\n",
            sim.base_url(),
            db.display()
        );
        Config::from_toml(&text, &env).unwrap().0
    };
    let clock = orgwarden::clock::SystemClock::shared();
    let mut store = Store::open_writer(&db, "orgwarden run", wall_now()).unwrap();
    let config = config_for(&first);
    jobs::audit_cycle(&mut JobContext::new(&config, &mut store, clock.clone()))
        .await
        .unwrap();
    let runs = store.runs().unwrap().len();

    let config = config_for(&other);
    let error = jobs::audit_cycle(&mut JobContext::new(&config, &mut store, clock.clone()))
        .await
        .unwrap_err();
    assert!(error.is::<OtherOrganization>(), "{error:#}");
    assert_eq!(store.runs().unwrap().len(), runs, "a run was recorded");
}
