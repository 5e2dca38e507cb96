use chrono::NaiveDate;
use chrono::TimeZone;
use std::collections::BTreeMap;

use super::*;
use crate::org::*;

fn t(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, day, 12, 0, 0).unwrap()
}

fn user(id: &str, role: &str) -> User {
    User {
        id: id.to_owned(),
        email: format!("{id}@example.com"),
        name: id.to_owned(),
        role: role.into(),
        added_at: t(1),
    }
}

fn key(id: &str, status: &str) -> ApiKey {
    ApiKey {
        id: id.to_owned(),
        name: format!("key {id}"),
        workspace_id: None,
        created_at: t(1),
        created_by: Some(Actor {
            id: "user_a".into(),
            kind: "user".into(),
        }),
        partial_key_hint: None,
        status: status.into(),
        expires_at: None,
        principal: None,
        // The 2026 scope is stored too: reading a snapshot back gives it unchanged.
        scope: Some(KeyScope {
            kind: "workspace".into(),
            workspace_id: Some("wrkspc_default".into()),
        }),
    }
}

fn org() -> Organization {
    Organization {
        id: "org-1".into(),
        name: "Example".into(),
    }
}

/// Writes one complete snapshot of the given members and keys.
fn snapshot(store: &Store, members: &[User], keys: &[ApiKey]) -> i64 {
    let run = store.begin_run(wall_now()).unwrap();
    let mut writer = store.snapshot_writer(run).unwrap();
    writer.organization(org());
    writer.members(members).unwrap();
    writer.api_keys(keys).unwrap();
    writer.finish(3, 0, wall_now()).unwrap();
    run
}

/// A database file at `path` with the first `version` schema steps applied, as an older
/// orgwarden left it.
fn database_at_schema(path: &std::path::Path, version: usize) -> rusqlite::Connection {
    let conn = open_connection(path).unwrap();
    for step in &MIGRATIONS[..version] {
        conn.execute_batch(step).unwrap();
    }
    conn.execute_batch(&format!("PRAGMA user_version = {version};"))
        .unwrap();
    conn
}

/// The kind and subject of the first `limit` events after event `after`.
fn events_after(store: &Store, after: i64, limit: u32) -> Vec<(String, String)> {
    store
        .events(Some(crate::store::EventsSince::Id(after)), limit)
        .unwrap()
        .into_iter()
        .map(|e| {
            let id = e.payload.get("subject_id").and_then(|v| v.as_str());
            (e.kind, id.unwrap_or_default().to_owned())
        })
        .collect()
}

fn version_rows(store: &Store) -> i64 {
    store
        .conn
        .query_row(
            "SELECT (SELECT count(*) FROM members) + (SELECT count(*) FROM api_keys)",
            [],
            |r| r.get(0),
        )
        .unwrap()
}

/// The first snapshot inserts without comparing (nothing is current yet); a key listed twice
/// still counts once with its first listing standing, there and in a later run where one table
/// is still empty while another already has history.
#[test]
fn an_object_listed_twice_counts_once_in_a_first_snapshot_and_after() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_writer(&dir.path().join("twice.db"), "test", wall_now()).unwrap();
    let mut again = user("user_a", "developer");
    again.name = "listed again".to_owned();
    let run1 = store.begin_run(wall_now()).unwrap();
    let mut writer = store.snapshot_writer(run1).unwrap();
    writer.organization(org());
    writer
        .members(&[user("user_a", "user"), user("user_b", "user")])
        .unwrap();
    writer.members(std::slice::from_ref(&again)).unwrap();
    let counts = writer.finish(2, 0, wall_now()).unwrap();
    assert_eq!((counts.members, counts.api_keys), (2, 0));
    let state = store.state_at(run1).unwrap();
    let a = state.members.iter().find(|m| m.id == "user_a").unwrap();
    assert_eq!((a.name.as_str(), a.role.as_str()), ("user_a", "user"));

    // Members now have history (compared), keys none yet (fresh): both kinds of table.
    let rows = version_rows(&store);
    let run2 = store.begin_run(wall_now()).unwrap();
    let mut writer = store.snapshot_writer(run2).unwrap();
    writer.organization(org());
    writer
        .members(&[
            user("user_a", "user"),
            again.clone(),
            user("user_b", "user"),
        ])
        .unwrap();
    writer
        .api_keys(&[key("apikey_1", "active"), key("apikey_1", "inactive")])
        .unwrap();
    let counts = writer.finish(2, 0, wall_now()).unwrap();
    assert_eq!((counts.members, counts.api_keys), (2, 1));
    // Unchanged members add no version; the key adds one, its first listing.
    assert_eq!(version_rows(&store), rows + 1);
    let state = store.state_at(run2).unwrap();
    assert_eq!(state.members.len(), 2);
    assert_eq!(state.api_keys.len(), 1);
    assert_eq!(state.api_keys[0].status.as_str(), "active");
}

#[test]
fn history_grows_with_change_not_with_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_writer(&dir.path().join("o.db"), "test", wall_now()).unwrap();
    let members = vec![user("user_a", "user"), user("user_b", "developer")];
    let keys = vec![key("apikey_1", "active")];
    let r1 = snapshot(&store, &members, &keys);
    assert_eq!(version_rows(&store), 3);
    let r2 = snapshot(&store, &members, &keys);
    assert_eq!(
        version_rows(&store),
        3,
        "an unchanged snapshot adds no versions"
    );

    // user_b becomes admin, user_a leaves, the key is deactivated, user_c joins.
    let members3 = vec![user("user_b", "admin"), user("user_c", "user")];
    let keys3 = vec![key("apikey_1", "inactive")];
    let r3 = snapshot(&store, &members3, &keys3);
    assert_eq!(version_rows(&store), 6);

    let s1 = store.state_at(r1).unwrap();
    let s2 = store.state_at(r2).unwrap();
    let s3 = store.state_at(r3).unwrap();
    assert_eq!(s1.members, members);
    assert_eq!(s2.members, members);
    assert_eq!(s3.members, members3);
    assert_eq!(s3.api_keys, keys3);
    assert_eq!(s1.organization, org());

    let changes = crate::org::diff(&s2, &s3);
    let summary: Vec<(&str, &str, Option<String>)> = changes
        .iter()
        .map(|c| (c.kind.as_str(), c.change.as_str(), c.id.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("member", "role_changed", Some("user_b".into())),
            ("member", "joined", Some("user_c".into())),
            ("member", "left", Some("user_a".into())),
            ("api_key", "status_changed", Some("apikey_1".into())),
        ]
    );
    assert!(crate::org::diff(&s1, &s2).is_empty());
}

/// A snapshot with enough keys to be read by two readers in halves (by id) reads back whole and
/// in its order (creation time, then id), the older run as well as the latest one.
#[test]
fn a_snapshot_with_many_keys_reads_back_whole_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_writer(&dir.path().join("o.db"), "test", wall_now()).unwrap();
    let members = vec![user("user_a", "user")];
    // Creation times repeat and run against the ids, so neither order is the other's.
    let keys: Vec<ApiKey> = (0..25_000u32)
        .map(|i| {
            let mut k = key(&format!("apikey_{i:05}"), "active");
            k.created_at = t(1 + (24_999 - i) % 28);
            k
        })
        .collect();
    let r1 = snapshot(&store, &members, &keys);
    // The second run deactivates every tenth key and drops the last thousand.
    let mut keys2: Vec<ApiKey> = keys[..24_000].to_vec();
    for k in keys2.iter_mut().step_by(10) {
        k.status = "inactive".into();
    }
    let r2 = snapshot(&store, &members, &keys2);
    let in_order = |mut keys: Vec<ApiKey>| {
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        keys
    };
    let (keys, keys2) = (in_order(keys), in_order(keys2));
    assert_eq!(store.state_at(r1).unwrap().api_keys, keys);
    assert_eq!(store.state_at(r2).unwrap().api_keys, keys2);
    // A reader splits the same way; a preview (an in-memory copy) reads them on its connection.
    let path = dir.path().join("o.db");
    let reader = Store::open_reader(&path).unwrap();
    assert_eq!(reader.state_at(r2).unwrap().api_keys, keys2);
    let preview = Store::open_preview(&path).unwrap();
    assert_eq!(preview.state_at(r1).unwrap().api_keys, keys);
    assert_eq!(preview.state_at(r2).unwrap().api_keys, keys2);
    // A small snapshot is read by one reader, and whole in a preview too.
    let few = vec![key("apikey_b", "active"), key("apikey_a", "inactive")];
    let r3 = snapshot(&store, &members, &few);
    let few = in_order(few);
    assert_eq!(store.state_at(r3).unwrap().api_keys, few);
    let preview = Store::open_preview(&path).unwrap();
    assert_eq!(preview.state_at(r3).unwrap().api_keys, few);
}

#[test]
fn the_key_split_lies_between_the_lowest_and_highest_ids() {
    for (low, high, expected) in [
        ("apikey_01A", "apikey_01z", Some("apikey_01]")),
        ("apikey_00001", "apikey_25000", Some("apikey_1")),
        ("a", "c", Some("b")),
        // Adjacent bytes, a prefix, equal ids, non-ASCII: no middle, one reader.
        ("apikey_a", "apikey_b", None),
        ("apikey", "apikey_1", None),
        ("apikey_1", "apikey_1", None),
        ("k_\u{e9}", "k_\u{f6}", None),
    ] {
        let middle = middle_between(low, high);
        assert_eq!(middle.as_deref(), expected, "{low} .. {high}");
        if let Some(m) = middle {
            assert!(
                low < m.as_str() && m.as_str() <= high,
                "{low} < {m} <= {high}"
            );
        }
    }
}

#[test]
fn the_escalation_baseline_holds_the_earlier_roles_of_todays_admins_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_writer(&dir.path().join("o.db"), "test", wall_now()).unwrap();
    let membership = |ws: &str, user: &str, role: &str| WorkspaceMember {
        workspace_id: ws.to_owned(),
        user_id: user.to_owned(),
        workspace_role: role.into(),
    };
    let write = |members: &[User], memberships: &[WorkspaceMember]| {
        let run = store.begin_run(wall_now()).unwrap();
        let mut writer = store.snapshot_writer(run).unwrap();
        writer.organization(org());
        writer.members(members).unwrap();
        writer.workspace_members(memberships).unwrap();
        writer.finish(3, 0, wall_now()).unwrap();
        run
    };
    let before = write(
        &[
            user("user_admin", "admin"),
            user("user_promoted", "developer"),
            user("user_plain", "user"),
            user("user_demoted", "admin"),
        ],
        &[
            membership("ws_1", "user_plain", "workspace_developer"),
            membership("ws_1", "user_promoted", "workspace_admin"),
            membership("ws_2", "user_plain", "workspace_admin"),
        ],
    );
    let now = write(
        &[
            user("user_admin", "admin"),
            user("user_promoted", "admin"),
            user("user_plain", "user"),
            user("user_demoted", "user"),
            user("user_new", "owner"),
        ],
        &[
            membership("ws_1", "user_plain", "workspace_admin"),
            membership("ws_1", "user_promoted", "workspace_developer"),
            membership("ws_2", "user_plain", "workspace_admin"),
        ],
    );
    let baseline = store.escalation_baseline(before, now).unwrap();
    let roles: Vec<(&str, &str)> = baseline
        .members
        .iter()
        .map(|m| (m.id.as_str(), m.role.as_str()))
        .collect();
    // Administrators now, with their role then; a newcomer has no earlier version.
    assert_eq!(
        roles,
        vec![("user_admin", "admin"), ("user_promoted", "developer")]
    );
    let memberships: Vec<(&str, &str, &str)> = baseline
        .workspace_members
        .iter()
        .map(|m| {
            (
                m.workspace_id.as_str(),
                m.user_id.as_str(),
                m.workspace_role.as_str(),
            )
        })
        .collect();
    assert_eq!(
        memberships,
        vec![
            ("ws_1", "user_plain", "workspace_developer"),
            ("ws_2", "user_plain", "workspace_admin"),
        ]
    );
    assert_eq!(baseline.run_id, before);
    assert_eq!(baseline.organization, org());
    // The rule reads the same from it as from the whole earlier snapshot.
    let whole = store.state_at(before).unwrap();
    let current = store.state_at(now).unwrap();
    let (config, _) =
        crate::config::Config::from_toml("", &crate::config::Environment::default()).unwrap();
    let evaluate = |previous: &OrgState| {
        let input = crate::policy::PolicyInput {
            state: &current,
            previous: Some(previous),
            former_members: &[],
            rules: &config.rules,
            exemptions: &config.exemptions,
            roster: &crate::policy::Roster::NotConfigured,
            usage: None,
            directories: &[],
            now: wall_now(),
        };
        let mut found: Vec<(String, String)> = crate::policy::evaluate(&input)
            .findings
            .into_iter()
            .filter(|f| f.rule == crate::policy::PRIVILEGE_ESCALATION)
            .map(|f| (f.subject_id, f.evidence))
            .collect();
        found.sort();
        found
    };
    let from_baseline = evaluate(&baseline);
    assert_eq!(from_baseline.len(), 3, "{from_baseline:?}");
    assert_eq!(from_baseline, evaluate(&whole));
}

#[test]
fn an_unfinished_snapshot_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_writer(&dir.path().join("o.db"), "test", wall_now()).unwrap();
    let r1 = snapshot(&store, &[user("user_a", "user")], &[]);
    let run = store.begin_run(wall_now()).unwrap();
    {
        let mut writer = store.snapshot_writer(run).unwrap();
        writer.organization(org());
        writer.members(&[user("user_z", "user")]).unwrap();
        // Dropped without finish: a failure mid-snapshot.
    }
    store.fail_run(run, "boom", 1, 0, wall_now()).unwrap();
    assert_eq!(version_rows(&store), 1);
    assert_eq!(store.latest_complete(None).unwrap().unwrap().id, r1);
    let failed = store.run(run).unwrap().unwrap();
    assert_eq!(failed.status, RunStatus::Failed);
    assert_eq!(failed.error.as_deref(), Some("boom"));
    assert!(
        store.state_at(run).is_err(),
        "a failed run cannot be read as a state"
    );
}

#[test]
fn second_writer_is_refused_with_the_holder_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    let _first = Store::open_writer(&path, "orgwarden run", wall_now()).unwrap();
    let error = Store::open_writer(&path, "orgwarden snapshot", wall_now()).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, StoreError::Locked { .. }), "{text}");
    assert!(
        text.contains(&format!("pid {}", std::process::id())),
        "{text}"
    );
    assert!(text.contains("orgwarden run"), "{text}");
    // Readers are not blocked.
    Store::open_reader(&path).unwrap();
}

#[test]
fn newer_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    drop(Store::open_writer(&path, "test", wall_now()).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch(&format!("PRAGMA user_version = {};", SCHEMA_VERSION + 1))
        .unwrap();
    drop(conn);
    let error = Store::open_writer(&path, "test", wall_now()).unwrap_err();
    assert!(matches!(error, StoreError::TooNew { .. }), "{error}");
    assert!(error.to_string().contains("newer orgwarden"));
    assert!(matches!(
        Store::open_reader(&path).unwrap_err(),
        StoreError::TooNew { .. }
    ));
}

#[test]
fn interrupted_runs_are_marked_abandoned_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    let store = Store::open_writer(&path, "test", wall_now()).unwrap();
    let run = store.begin_run(wall_now()).unwrap();
    drop(store);
    let store = Store::open_writer(&path, "test", wall_now()).unwrap();
    assert_eq!(
        store.run(run).unwrap().unwrap().status,
        RunStatus::Abandoned
    );
}

#[test]
fn retention_keeps_what_kept_snapshots_need() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open_writer(&dir.path().join("o.db"), "test", wall_now()).unwrap();
    let r1 = snapshot(
        &store,
        &[user("user_a", "user"), user("user_b", "user")],
        &[],
    );
    let r2 = snapshot(&store, &[user("user_b", "user")], &[]);
    // Age run 1 beyond the retention period.
    store
        .conn
        .execute(
            "UPDATE runs SET started_at = '2000-01-01T00:00:00.000000Z' WHERE id = ?1",
            [r1],
        )
        .unwrap();
    let stats = store.prune(30, wall_now()).unwrap();
    assert_eq!(
        stats,
        PruneStats {
            runs: 1,
            versions: 1,
            ..PruneStats::default()
        }
    );
    assert_eq!(
        store.state_at(r2).unwrap().members,
        vec![user("user_b", "user")]
    );
    assert!(store.run(r1).unwrap().is_none());
    // The newest complete run is kept however old it is.
    store
        .conn
        .execute(
            "UPDATE runs SET started_at = '2000-01-01T00:00:00.000000Z'",
            [],
        )
        .unwrap();
    assert_eq!(store.prune(30, wall_now()).unwrap().runs, 0);
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn pragmas_are_set_in_code() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_writer(&dir.path().join("o.db"), "test", wall_now()).unwrap();
    let mode: String = store
        .conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    let fk: i64 = store
        .conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    let vacuum: i64 = store
        .conn
        .query_row("PRAGMA auto_vacuum", [], |r| r.get(0))
        .unwrap();
    assert_eq!((mode.as_str(), fk, vacuum), ("wal", 1, 2));
}

// ---- Findings lifecycle ----------------------------------------------------------------------

fn finding(rule: crate::policy::RuleId, id: &str) -> crate::policy::Finding {
    crate::policy::Finding {
        rule,
        severity: crate::config::Severity::High,
        subject_kind: crate::policy::SubjectKind::ApiKey,
        subject_id: id.to_owned(),
        subject: format!("key {id}"),
        evidence: format!("evidence for {id}"),
        action: crate::policy::Action::DeactivateKey,
        controls: crate::policy::controls_for(rule),
        exemption: None,
        workspace_id: None,
        user_id: None,
    }
}

/// An evaluation where every rule ran, except those named in `not_evaluated`.
fn evaluation(
    findings: Vec<crate::policy::Finding>,
    not_evaluated: &[crate::policy::RuleId],
) -> crate::policy::Evaluation {
    use crate::policy::{RuleOutcome, RuleStatus, RULE_IDS};
    let rules = RULE_IDS
        .iter()
        .map(|&rule| RuleOutcome {
            rule,
            status: if not_evaluated.contains(&rule) {
                RuleStatus::NotEvaluated("roster unreadable".into())
            } else {
                RuleStatus::Evaluated
            },
            n_findings: findings.iter().filter(|f| f.rule == rule).count(),
        })
        .collect();
    crate::policy::Evaluation { findings, rules }
}

fn statuses(result: &AuditResult) -> Vec<(String, FindingStatus)> {
    let mut out: Vec<_> = result
        .findings
        .iter()
        .map(|f| (f.subject_id.clone(), f.status))
        .collect();
    out.sort();
    out
}

#[test]
fn findings_move_from_new_to_open_to_resolved_and_back() {
    use crate::policy::{OFFBOARDING_ROSTER, ORPHANED_KEYS};
    use FindingStatus::*;
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open_writer(&dir.path().join("o.db"), "test", wall_now()).unwrap();
    let members = vec![user("user_a", "user")];
    let r1 = snapshot(&store, &members, &[]);
    let a = || finding(ORPHANED_KEYS, "apikey_a");
    let b = || finding(ORPHANED_KEYS, "apikey_b");
    let roster = || finding(OFFBOARDING_ROSTER, "apikey_r");

    let first = store
        .record_audit(r1, t(1), &evaluation(vec![a(), roster()], &[]), t(1))
        .unwrap();
    assert_eq!(
        statuses(&first),
        vec![("apikey_a".into(), New), ("apikey_r".into(), New)],
        "the first audit of a database marks everything new"
    );
    assert_eq!(first.n_new, 2);
    assert!(first.stored);

    // Same snapshot audited again: nothing ages.
    let again = store
        .record_audit(r1, t(1), &evaluation(vec![a(), roster()], &[]), t(1))
        .unwrap();
    assert_eq!(statuses(&again), statuses(&first));

    let r2 = snapshot(&store, &members, &[]);
    // The roster could not be read this time: its finding is neither seen nor resolved.
    let second = store
        .record_audit(
            r2,
            t(2),
            &evaluation(vec![a(), b()], &[OFFBOARDING_ROSTER]),
            t(2),
        )
        .unwrap();
    assert_eq!(
        statuses(&second),
        vec![("apikey_a".into(), Open), ("apikey_b".into(), New)]
    );
    assert_eq!(second.n_resolved, 0);
    let streaks = store.finding_streaks().unwrap();
    assert_eq!(streaks["orphaned_keys:api_key:apikey_a"].consecutive, 2);
    assert_eq!(streaks["orphaned_keys:api_key:apikey_b"].consecutive, 1);
    assert_eq!(
        streaks["offboarding_roster:api_key:apikey_r"].consecutive,
        1
    );

    let r3 = snapshot(&store, &members, &[]);
    let third = store
        .record_audit(r3, t(3), &evaluation(vec![b()], &[]), t(3))
        .unwrap();
    assert_eq!(
        statuses(&third),
        vec![
            ("apikey_a".into(), Resolved),
            ("apikey_b".into(), Open),
            ("apikey_r".into(), Resolved)
        ]
    );
    let resolved_a = third
        .findings
        .iter()
        .find(|f| f.subject_id == "apikey_a")
        .unwrap();
    assert_eq!(resolved_a.resolved_at, Some(t(3)));
    assert_eq!(resolved_a.first_seen, t(1));
    assert_eq!(store.findings(true).unwrap().len(), 1);
    assert_eq!(store.findings_resolved_since(t(2)).unwrap().len(), 2);

    // It comes back: a new occurrence.
    let r4 = snapshot(&store, &members, &[]);
    let fourth = store
        .record_audit(r4, t(4), &evaluation(vec![a(), b()], &[]), t(4))
        .unwrap();
    assert_eq!(
        statuses(&fourth),
        vec![("apikey_a".into(), New), ("apikey_b".into(), Open)]
    );
    let back = fourth
        .findings
        .iter()
        .find(|f| f.subject_id == "apikey_a")
        .unwrap();
    assert_eq!(back.first_seen, t(4));
    assert_eq!(
        store.finding_streaks().unwrap()["orphaned_keys:api_key:apikey_b"].consecutive,
        3
    );

    // An older snapshot can be audited but does not move history backwards.
    let old = store
        .record_audit(r1, t(1), &evaluation(vec![], &[]), t(5))
        .unwrap();
    assert!(!old.stored);
    assert_eq!(store.findings(true).unwrap().len(), 2);
    assert_eq!(
        store.audits(10).unwrap().len(),
        5,
        "the re-audit of run 1 is recorded, the backwards one is not"
    );
}

/// The recording reads the tracked findings in one pass and writes them in key order: what it
/// returns and the events it appends still follow the evaluation, one event per transition.
#[test]
fn recording_follows_the_evaluation_order_with_one_event_per_transition() {
    use crate::policy::ORPHANED_KEYS;
    use FindingStatus::*;
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open_writer(&dir.path().join("o.db"), "test", wall_now()).unwrap();
    let members = vec![user("user_a", "user")];
    // Not in fingerprint order, with a duplicate (the first one counts).
    let evaluated = |exempt: &[&str]| {
        let findings = ["apikey_z", "apikey_b", "apikey_m", "apikey_b"]
            .iter()
            .map(|id| {
                let mut f = finding(ORPHANED_KEYS, id);
                if exempt.contains(id) {
                    f.exemption = Some("known".into());
                }
                f
            })
            .collect();
        evaluation(findings, &[])
    };
    let kinds = |store: &Store, after: i64| events_after(store, after, 100);
    let last_event = |store: &Store| store.events(None, 1000).unwrap().last().unwrap().id;
    let ids = |result: &AuditResult| -> Vec<(String, FindingStatus)> {
        result
            .findings
            .iter()
            .map(|f| (f.subject_id.clone(), f.status))
            .collect()
    };

    let r1 = snapshot(&store, &members, &[]);
    let before = last_event(&store);
    let first = store
        .record_audit(r1, t(1), &evaluated(&["apikey_m"]), t(1))
        .unwrap();
    assert_eq!(
        ids(&first),
        vec![
            ("apikey_z".into(), New),
            ("apikey_b".into(), New),
            ("apikey_m".into(), Exempted)
        ]
    );
    assert_eq!((first.n_new, first.n_resolved), (2, 0));
    assert_eq!(
        kinds(&store, before),
        vec![
            ("finding.new".into(), "apikey_z".into()),
            ("finding.new".into(), "apikey_b".into()),
            ("finding.exempted".into(), "apikey_m".into()),
            ("run.finished".into(), String::new()),
        ]
    );

    // Next snapshot: z becomes exempted, m stays exempted, b stays open; nothing else happens.
    let r2 = snapshot(&store, &members, &[]);
    let before = last_event(&store);
    let second = store
        .record_audit(r2, t(2), &evaluated(&["apikey_m", "apikey_z"]), t(2))
        .unwrap();
    assert_eq!(
        ids(&second),
        vec![
            ("apikey_z".into(), Exempted),
            ("apikey_b".into(), Open),
            ("apikey_m".into(), Exempted)
        ]
    );
    assert_eq!(
        kinds(&store, before),
        vec![
            ("finding.exempted".into(), "apikey_z".into()),
            ("run.finished".into(), String::new()),
        ]
    );
    let streaks = store.finding_streaks().unwrap();
    assert_eq!(streaks["orphaned_keys:api_key:apikey_b"].consecutive, 2);
    assert_eq!(streaks["orphaned_keys:api_key:apikey_b"].first_seen, t(1));

    // Then only b is left: z and m resolve (in reading order), b goes on.
    let r3 = snapshot(&store, &members, &[]);
    let before = last_event(&store);
    let third = store
        .record_audit(
            r3,
            t(3),
            &evaluation(vec![finding(ORPHANED_KEYS, "apikey_b")], &[]),
            t(3),
        )
        .unwrap();
    assert_eq!(
        ids(&third),
        vec![
            ("apikey_b".into(), Open),
            ("apikey_m".into(), Resolved),
            ("apikey_z".into(), Resolved)
        ]
    );
    assert_eq!(
        kinds(&store, before),
        vec![
            ("finding.resolved".into(), "apikey_m".into()),
            ("finding.resolved".into(), "apikey_z".into()),
            ("run.finished".into(), String::new()),
        ]
    );
    assert_eq!(store.findings(true).unwrap().len(), 1);
}

#[test]
fn exempted_findings_are_listed_not_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open_writer(&dir.path().join("o.db"), "test", wall_now()).unwrap();
    let r1 = snapshot(&store, &[user("user_a", "user")], &[]);
    let mut exempt = finding(crate::policy::ORPHANED_KEYS, "apikey_x");
    exempt.exemption = Some("CI key, owned by the platform team".into());
    let result = store
        .record_audit(r1, t(1), &evaluation(vec![exempt], &[]), t(1))
        .unwrap();
    assert_eq!(result.findings.len(), 1);
    assert_eq!(result.findings[0].status, FindingStatus::Exempted);
    assert!(result.findings[0]
        .evidence
        .contains("exempted: CI key, owned by the platform team"));
    assert_eq!(result.n_new, 0);
    let stored = store.findings(true).unwrap();
    assert_eq!(stored[0].status, FindingStatus::Exempted);
    assert_eq!(
        stored[0].controls,
        crate::policy::controls_for(crate::policy::ORPHANED_KEYS)
    );
}

#[test]
fn former_members_are_those_no_longer_listed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_writer(&dir.path().join("o.db"), "test", wall_now()).unwrap();
    let a = user("user_a", "user");
    let b = user("user_b", "user");
    let r1 = snapshot(&store, &[a.clone(), b.clone()], &[]);
    assert!(store.former_members(r1).unwrap().is_empty());
    let r2 = snapshot(&store, std::slice::from_ref(&a), &[]);
    let former = store.former_members(r2).unwrap();
    assert_eq!(former.len(), 1);
    assert_eq!(former[0].id, "user_b");
    assert_eq!(former[0].email, "user_b@example.com");
    let r1_time = store.run(r1).unwrap().unwrap().finished_at.unwrap();
    assert_eq!(former[0].last_seen, r1_time);
    // Seen from the first snapshot's point of view, nobody had left yet.
    assert!(store.former_members(r1).unwrap().is_empty());
    // Back again: a member, not a former member.
    let r3 = snapshot(&store, &[a, b], &[]);
    assert!(store.former_members(r3).unwrap().is_empty());
}

#[test]
fn a_schema_1_database_upgrades_to_the_current_schema() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.db");
    {
        // A database as the first release wrote it, with one snapshot in it.
        let conn = open_connection(&old).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch("PRAGMA user_version = 1;").unwrap();
        conn.execute(
            "INSERT INTO runs (status, started_at, finished_at, org_id, org_name) \
             VALUES ('complete', ?1, ?1, 'org-1', 'Example')",
            [ts(&t(1))],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO members (id, email, name, role, added_at, valid_from) \
             VALUES ('user_a', 'a@example.com', 'A', 'user', ?1, 1)",
            [ts(&t(1))],
        )
        .unwrap();
    }
    let upgraded = Store::open_writer(&old, "test", wall_now()).unwrap();
    assert_eq!(upgraded.user_version().unwrap(), SCHEMA_VERSION);
    let fresh = Store::open_writer(&dir.path().join("fresh.db"), "test", wall_now()).unwrap();
    assert_eq!(
        upgraded.schema_dump().unwrap(),
        fresh.schema_dump().unwrap()
    );
    // The data written before the upgrade is still there.
    assert_eq!(upgraded.state_at(1).unwrap().members.len(), 1);
    assert_eq!(upgraded.integrity_check().unwrap(), "ok");
}

#[test]
fn a_schema_4_outbox_upgrades_with_its_messages_readable() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.db");
    {
        // Before per-recipient delivery: one message sent to both, one still pending.
        let conn = database_at_schema(&old, 4);
        for (id, status) in [("m-sent", "sent"), ("m-pending", "pending")] {
            conn.execute(
                "INSERT INTO outbox (message_id, created_at, subject, sender, recipients, raw, \
                 status, next_attempt_at) VALUES (?1, ?2, 's', 'o@example.com', \
                 '[\"a@example.com\",\"b@example.com\"]', x'00', ?3, ?2)",
                rusqlite::params![id, ts(&t(1)), status],
            )
            .unwrap();
        }
    }
    let upgraded = Store::open_writer(&old, "test", wall_now()).unwrap();
    assert_eq!(upgraded.user_version().unwrap(), SCHEMA_VERSION);
    let list = upgraded.outbox_list().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0].delivered_to, vec!["a@example.com", "b@example.com"]);
    assert!(list[0].remaining_recipients().is_empty());
    assert!(list[1].delivered_to.is_empty() && list[1].refused.is_empty());
    assert_eq!(list[1].remaining_recipients(), list[1].recipients);
    let fresh = Store::open_writer(&dir.path().join("fresh.db"), "test", wall_now()).unwrap();
    assert_eq!(
        upgraded.schema_dump().unwrap(),
        fresh.schema_dump().unwrap()
    );
}

#[test]
fn a_reader_opens_at_once_while_the_writer_is_in_a_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    let writer = Store::open_writer(&path, "test", wall_now()).unwrap();
    writer.conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let started = std::time::Instant::now();
    let reader = Store::open_reader(&path).unwrap();
    reader.runs().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    writer.conn.execute_batch("ROLLBACK").unwrap();
}

#[test]
fn a_finding_that_comes_back_may_be_acted_on_again() {
    use crate::policy::{Action, SubjectKind, ORPHANED_KEYS};
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open_writer(&dir.path().join("o.db"), "test", wall_now()).unwrap();
    let members = vec![user("user_a", "user")];
    let key = || finding(ORPHANED_KEYS, "apikey_k");
    let fingerprint = key().fingerprint();
    let r1 = snapshot(&store, &members, &[]);
    store
        .record_audit(r1, t(1), &evaluation(vec![key()], &[]), t(1))
        .unwrap();
    let new = NewAction {
        run_id: r1,
        action: Action::DeactivateKey,
        subject_kind: SubjectKind::ApiKey,
        subject_id: "apikey_k",
        subject: "key apikey_k",
        finding: &fingerprint,
        before: Some("{}"),
    };
    let id = store
        .action_planned(&new, t(1) + chrono::Duration::minutes(5))
        .unwrap();
    store
        .action_finished(
            id,
            &ActionOutcome {
                status: ActionStatus::Succeeded,
                reason: None,
                http_status: Some(200),
                request_id: Some("req_1".into()),
            },
            t(1) + chrono::Duration::minutes(5),
        )
        .unwrap();
    let done = store.succeeded_actions().unwrap();
    assert!(done.contains(&(fingerprint.clone(), Action::DeactivateKey)));

    // Resolved (someone reactivated the key later, say) and back: a new occurrence.
    let r2 = snapshot(&store, &members, &[]);
    store
        .record_audit(r2, t(2), &evaluation(vec![], &[]), t(2))
        .unwrap();
    let r3 = snapshot(&store, &members, &[]);
    store
        .record_audit(r3, t(3), &evaluation(vec![key()], &[]), t(3))
        .unwrap();
    assert!(store.succeeded_actions().unwrap().is_empty());
    let trail = store.actions_since(None).unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].request_id.as_deref(), Some("req_1"));
}

fn wall_now() -> chrono::DateTime<chrono::Utc> {
    crate::clock::Clock::now(&crate::clock::SystemClock)
}

#[test]
fn a_schema_4_database_keeps_its_sent_reports_and_drops_its_previews() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.db");
    {
        // Before schema 7 every report was recorded, previews included; only sent ones have a
        // Message-ID.
        let conn = database_at_schema(&old, 4);
        conn.execute(
            "INSERT INTO reports (run_id, generated_at, message_id, out_dir) VALUES \
             (1, ?1, 'report-1', '/r/1'), (2, ?2, NULL, '/r/2')",
            [ts(&t(1)), ts(&t(2))],
        )
        .unwrap();
    }
    let store = Store::open_writer(&old, "test", wall_now()).unwrap();
    let last = store.last_sent_report().unwrap().unwrap();
    assert_eq!((last.run_id, last.kind), (1, ReportKind::Sent));
    // A report recorded now ends the period; nothing else does.
    store
        .record_report(3, t(3), None, Some("/r/3"), ReportKind::Written)
        .unwrap();
    let last = store.last_sent_report().unwrap().unwrap();
    assert_eq!((last.run_id, last.kind), (3, ReportKind::Written));
    let fresh = Store::open_writer(&dir.path().join("fresh.db"), "test", wall_now()).unwrap();
    assert_eq!(store.schema_dump().unwrap(), fresh.schema_dump().unwrap());
    assert!(fresh.last_sent_report().unwrap().is_none());
}

#[test]
fn the_period_queries_of_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_writer(&dir.path().join("p.db"), "test", wall_now()).unwrap();
    // Run 1 complete at day 1, run 2 failed at day 2, run 3 complete at day 3 (without user_b).
    let r1 = store.begin_run(t(1)).unwrap();
    let mut writer = store.snapshot_writer(r1).unwrap();
    writer.organization(org());
    writer
        .members(&[user("user_a", "user"), user("user_b", "user")])
        .unwrap();
    writer.finish(1, 0, t(1)).unwrap();
    let r2 = store.begin_run(t(2)).unwrap();
    store.fail_run(r2, "HTTP 401", 1, 0, t(2)).unwrap();
    let r3 = store.begin_run(t(3)).unwrap();
    let mut writer = store.snapshot_writer(r3).unwrap();
    writer.organization(org());
    let mut renamed = user("user_a", "user");
    renamed.email = "a.new@example.com".into();
    writer.members(&[renamed]).unwrap();
    writer.finish(1, 0, t(3)).unwrap();

    let failed: Vec<(i64, Option<String>)> = store
        .failed_runs_after(Some(r1))
        .unwrap()
        .into_iter()
        .map(|r| (r.id, r.error))
        .collect();
    assert_eq!(failed, [(r2, Some("HTTP 401".to_owned()))]);
    assert!(store.failed_runs_after(Some(r2)).unwrap().is_empty());
    assert_eq!(store.failed_runs_after(None).unwrap().len(), 1);

    assert_eq!(
        store.latest_complete_at(t(1)).unwrap().map(|r| r.id),
        Some(r1)
    );
    assert_eq!(
        store.latest_complete_at(t(2)).unwrap().map(|r| r.id),
        Some(r1)
    );
    assert_eq!(
        store.latest_complete_at(t(3)).unwrap().map(|r| r.id),
        Some(r3)
    );
    assert!(store
        .latest_complete_at(t(1) - chrono::Duration::seconds(1))
        .unwrap()
        .is_none());

    // Emails of current and former members; the latest version wins.
    let emails = store.member_emails().unwrap();
    assert_eq!(emails["user_a"], "a.new@example.com");
    assert_eq!(emails["user_b"], "user_b@example.com");

    // Actions by the run they were planned from.
    for run in [r1, r3] {
        let id = format!("invite_{run}");
        let finding = format!("stale_invites:invite:{id}");
        store
            .action_skipped(
                &NewAction {
                    run_id: run,
                    action: crate::policy::Action::DeleteInvite,
                    subject_kind: crate::policy::SubjectKind::Invite,
                    subject_id: &id,
                    subject: &id,
                    finding: &finding,
                    before: None,
                },
                "test",
                t(3),
            )
            .unwrap();
    }
    let runs = |after, up_to| -> Vec<i64> {
        store
            .actions_in_runs(after, up_to)
            .unwrap()
            .iter()
            .map(|a| a.run_id)
            .collect()
    };
    assert_eq!(runs(None, r3), [r1, r3]);
    assert_eq!(runs(Some(r1), r3), [r3]);
    assert_eq!(runs(None, r1), [r1]);
}

#[test]
fn implausible_snapshots_are_stored_suspect_and_can_be_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open_writer(&dir.path().join("o.db"), "test", wall_now()).unwrap();
    let plausible = snapshot(
        &store,
        &[user("user_a", "primary_owner"), user("user_b", "user")],
        &[],
    );
    let empty = snapshot(&store, &[], &[]);
    let headless = snapshot(&store, &[user("user_b", "user")], &[]);
    let run = |id| store.run(id).unwrap().unwrap();
    assert_eq!(run(plausible).suspect, None);
    assert_eq!(run(plausible).admins, Some(1));
    assert_eq!(
        run(empty).suspect.as_deref(),
        Some("the snapshot has no members at all")
    );
    assert_eq!(
        run(headless).suspect.as_deref(),
        Some("the snapshot has 1 members but no admin or primary_owner")
    );
    assert_eq!(store.last_accepted(headless).unwrap().map(|r| r.id), None);

    let accepted = store.accept_baseline(empty, "alice", t(5)).unwrap();
    assert_eq!(accepted.accepted_by.as_deref(), Some("alice"));
    assert_eq!(accepted.accepted_at, Some(t(5)));
    assert_eq!(
        store.last_accepted(headless).unwrap().map(|r| r.id),
        Some(empty)
    );
    assert_eq!(store.last_accepted(plausible).unwrap().map(|r| r.id), None);
    let trail = store.actions_since(None).unwrap();
    assert_eq!(trail.len(), 1);
    assert_eq!(trail[0].action, crate::policy::Action::AcceptBaseline);
    assert_eq!(trail[0].status, ActionStatus::Succeeded);
    assert!(trail[0].reason.as_deref().unwrap().contains("by alice"));
    assert!(store.accept_baseline(12345, "alice", t(5)).is_err());
}

#[test]
fn a_repeated_skip_updates_its_row_instead_of_adding_one() {
    use crate::policy::{Action, SubjectKind, ORPHANED_KEYS};
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open_writer(&dir.path().join("o.db"), "test", wall_now()).unwrap();
    let r1 = snapshot(&store, &[user("user_a", "admin")], &[]);
    let key = finding(ORPHANED_KEYS, "apikey_k");
    let fingerprint = key.fingerprint();
    store
        .record_audit(r1, t(1), &evaluation(vec![key], &[]), t(1))
        .unwrap();
    let new = NewAction {
        run_id: r1,
        action: Action::DeactivateKey,
        subject_kind: SubjectKind::ApiKey,
        subject_id: "apikey_k",
        subject: "key apikey_k",
        finding: &fingerprint,
        before: None,
    };
    let first = store
        .action_skipped(&new, "recheck: changed", t(2))
        .unwrap();
    assert_eq!(store.action_last_checked(first).unwrap(), None);
    let again = store
        .action_skipped(&new, "recheck: changed", t(3))
        .unwrap();
    assert_eq!(again, first);
    assert_eq!(store.action_last_checked(first).unwrap(), Some(t(3)));
    // Another reason is another event.
    let other = store.action_skipped(&new, "recheck: gone", t(4)).unwrap();
    assert_ne!(other, first);
    // And back to the first reason: a new row too (the latest row is what repeats).
    let back = store
        .action_skipped(&new, "recheck: changed", t(5))
        .unwrap();
    assert_ne!(back, first);
    assert_eq!(store.actions_since(None).unwrap().len(), 3);
}

#[test]
fn a_reader_that_cannot_upgrade_an_older_schema_says_so_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    drop(Store::open_writer(&path, "orgwarden snapshot", wall_now()).unwrap());
    let older = SCHEMA_VERSION - 1;
    Connection::open(&path)
        .unwrap()
        .execute_batch(&format!("PRAGMA user_version = {older};"))
        .unwrap();
    // A writer holds the lock: the reader may not upgrade, and does not wait for it.
    let _writer = WriterLock::acquire(&path, "orgwarden run", Some(wall_now())).unwrap();
    let error = Store::open_reader(&path).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, StoreError::TooOld { .. }), "{text}");
    assert!(
        text.contains(&format!("schema version {older}, older than")),
        "{text}"
    );
    let version: u32 = Connection::open(&path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, older, "the reader changed the schema");
}

#[test]
fn a_preview_copy_takes_writes_that_never_reach_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.db");
    drop(Store::open_writer(&path, "orgwarden snapshot", wall_now()).unwrap());
    let _daemon = WriterLock::acquire(&path, "orgwarden run", Some(wall_now())).unwrap();
    let preview = Store::open_preview(&path).unwrap();
    assert!(preview.is_preview());
    let run = preview.begin_run(wall_now()).unwrap();
    assert_eq!(preview.runs().unwrap().len(), 1);
    assert!(
        preview.snapshot_writer(run).is_err(),
        "no second connection to the file"
    );
    assert!(Store::open_reader(&path)
        .unwrap()
        .runs()
        .unwrap()
        .is_empty());
}

fn person(id: &str, status: DirectoryStatus, aliases: &[&str]) -> DirectoryPerson {
    DirectoryPerson {
        id: id.to_owned(),
        email: format!("{id}@example.com"),
        aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
        status,
        status_since: None,
    }
}

fn listing(people: Vec<DirectoryPerson>) -> DirectoryListing {
    DirectoryListing {
        people,
        assigned: None,
    }
}

#[test]
fn retention_keeps_the_directory_reads_the_history_needs() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open_writer(&dir.path().join("o.db"), "test", wall_now()).unwrap();
    let day = |n: i64| t(1) + chrono::Duration::days(n);
    let mut read = |source: &str, n: i64, result: std::result::Result<&DirectoryListing, &str>| {
        store
            .record_directory_read(source, day(n), day(n), result)
            .unwrap()
    };
    let active = || DirectoryStatus::Active;
    let suspended = || DirectoryStatus::Disabled("SUSPENDED".into());
    let everyone = listing(vec![
        person("alice", active(), &[]),
        person("bob", active(), &[]),
        person("carol", active(), &[]),
    ]);
    let r1 = read("corp", 0, Ok(&everyone));
    let r2 = read("corp", 1, Ok(&everyone));
    // Bob is disabled, then his aliases change (same status: still disabled since r3) ...
    let r3 = read(
        "corp",
        2,
        Ok(&listing(vec![
            person("alice", active(), &[]),
            person("bob", suspended(), &[]),
            person("carol", active(), &[]),
        ])),
    );
    let bob_later = listing(vec![
        person("alice", active(), &[]),
        person("bob", suspended(), &["robert@example.com"]),
        person("carol", active(), &[]),
    ]);
    let r4 = read("corp", 3, Ok(&bob_later));
    // ... and Carol vanishes.
    let without_carol = listing(vec![
        person("alice", active(), &[]),
        person("bob", suspended(), &["robert@example.com"]),
    ]);
    let r5 = read("corp", 4, Ok(&without_carol));
    let r6 = read("corp", 50, Ok(&without_carol));
    let r7 = read("corp", 100, Ok(&without_carol));
    let r8 = read("corp", 101, Err("connection refused"));
    // Another source whose newest complete read is older than the cutoff, failing since.
    let erin = listing(vec![person("erin", active(), &[])]);
    let o1 = read("other", 5, Ok(&erin));
    let o2 = read("other", 6, Ok(&erin));
    let o3 = read("other", 60, Err("timeout"));
    let o4 = read("other", 101, Err("timeout"));

    let newest = store
        .directory_read_at("corp", day(102), true)
        .unwrap()
        .unwrap();
    assert_eq!(newest.id, r7);
    let before = store.directory_listing(&newest).unwrap();
    let departures_before = store.directory_departures("corp", r7).unwrap();
    let other = store
        .directory_read_at("other", day(102), true)
        .unwrap()
        .unwrap();
    let other_before = store.directory_listing(&other).unwrap();

    // 30 days at day 102: the cutoff is day 72; there are no runs.
    let stats = store.prune(30, day(102)).unwrap();
    assert_eq!((stats.directory_reads, stats.directory_versions), (2, 2));
    let kept: Vec<i64> = store
        .directory_reads(100)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .rev()
        .collect();
    // Gone: r2 (nothing changed in it) and r4 (bob's alias change: his status did not change).
    // Kept: r1 (when alice and carol were first seen), r3 (bob disabled since), r5 (carol gone
    // since), r6 (the read current at the cutoff), the newer ones, and every read of `other`
    // (o1: erin first seen; o2: its newest complete read; o3: current at the cutoff).
    assert_eq!(kept, vec![r1, r3, r5, r6, r7, r8, o1, o2, o3, o4]);
    assert!(!kept.contains(&r2) && !kept.contains(&r4));

    // What the audit reads is unchanged: the listings with each person's "since", the
    // departures, and the latest read (failed) of each source.
    assert_eq!(store.directory_listing(&newest).unwrap(), before);
    let (_, since) = &before;
    assert_eq!(since.get("bob"), Some(&day(2)));
    assert_eq!(since.get("alice"), Some(&day(0)));
    let departures = store.directory_departures("corp", r7).unwrap();
    assert_eq!(departures, departures_before);
    assert_eq!(departures.len(), 1);
    assert_eq!(departures[0].0.id, "carol");
    assert_eq!(departures[0].1, day(4));
    assert_eq!(store.directory_listing(&other).unwrap(), other_before);
    assert_eq!(
        store
            .directory_read_at("corp", day(102), false)
            .unwrap()
            .unwrap()
            .id,
        r8
    );
    // Nothing more to prune.
    let again = store.prune(30, day(102)).unwrap();
    assert_eq!((again.directory_reads, again.directory_versions), (0, 0));
    // The database file holds what was kept: a fresh reader sees it.
    drop(store);
    let reader = Store::open_reader(&dir.path().join("o.db")).unwrap();
    assert_eq!(reader.directory_reads(100).unwrap().len(), kept.len());
}

#[test]
fn stored_timestamps_read_back_exactly_and_other_forms_still_parse() {
    use chrono::Duration;
    // Every form `ts` writes, over years, leap days, the day's edges and each microsecond digit.
    let mut time = Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 59).unwrap();
    for step in 0..5_000i64 {
        let text = ts(&time);
        assert_eq!(parse_ts(&text).unwrap(), time, "{text}");
        assert_eq!(parse_own_ts(&text), Some(time), "{text}");
        time +=
            Duration::seconds(86_399 * 3 + 7) + Duration::microseconds(step * 1_237 % 1_000_000);
    }
    let leap = Utc.with_ymd_and_hms(2028, 2, 29, 0, 0, 0).unwrap();
    assert_eq!(parse_ts(&ts(&leap)).unwrap(), leap);
    // Other RFC 3339 forms are not the fast path's, and are read all the same.
    for (text, want) in [
        ("2026-11-30T08:00:00Z", "2026-11-30T08:00:00.000000Z"),
        ("2026-11-30T09:00:00.5+01:00", "2026-11-30T08:00:00.500000Z"),
        (
            "2026-11-30T08:00:00.123456789Z",
            "2026-11-30T08:00:00.123456Z",
        ),
    ] {
        assert_eq!(parse_own_ts(text), None, "{text}");
        assert_eq!(ts(&parse_ts(text).unwrap()), want, "{text}");
    }
    // What is not a time is an error on both paths, never a panic or a wrong date.
    for text in [
        "2026-02-30T08:00:00.000000Z",
        "2026-11-30T24:00:00.000000Z",
        "2026-11-30T08:00:00.00000aZ",
        "2026-11-30T08:00:00.000000",
        "+026-11-30T08:00:00.000000Z",
        "",
    ] {
        assert_eq!(parse_own_ts(text), None, "{text}");
        assert!(parse_ts(text).is_err(), "{text}");
    }
}

/// An audit writes its findings and events many to a statement: a number that is not a multiple
/// of either batch still stores every finding once, every event in the evaluation's order, and
/// the next audit resolves and reopens across batch boundaries.
#[test]
fn an_audit_larger_than_one_statement_stores_every_finding_and_event_in_order() {
    use crate::policy::ORPHANED_KEYS;
    use FindingStatus::*;
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open_writer(&dir.path().join("o.db"), "test", wall_now()).unwrap();
    let members = vec![user("user_a", "user")];
    // Descending ids: the evaluation's order is not the order the rows are written in.
    let ids: Vec<String> = (0..203).rev().map(|i| format!("apikey_{i:03}")).collect();
    let findings = |keep: &dyn Fn(usize) -> bool| {
        let kept = ids.iter().enumerate().filter(|(i, _)| keep(*i));
        evaluation(
            kept.map(|(_, id)| finding(ORPHANED_KEYS, id)).collect(),
            &[],
        )
    };
    let events_after = |store: &Store, after: i64| events_after(store, after, 1000);
    let last_event = |store: &Store| store.events(None, 10_000).unwrap().last().map(|e| e.id);

    let r1 = snapshot(&store, &members, &[]);
    let before = last_event(&store).unwrap_or(0);
    let first = store
        .record_audit(r1, t(1), &findings(&|_| true), t(1))
        .unwrap();
    assert_eq!((first.n_new, first.n_resolved), (203, 0));
    // The audit committed without checkpointing; the automatic checkpoint is back on for the
    // next commit, so the WAL cannot grow without bound.
    let autocheckpoint: i64 = store
        .conn
        .query_row("PRAGMA wal_autocheckpoint", [], |row| row.get(0))
        .unwrap();
    assert_eq!(autocheckpoint, 1000);
    let mut expected: Vec<(String, String)> = ids
        .iter()
        .map(|id| ("finding.new".to_owned(), id.clone()))
        .collect();
    expected.push(("run.finished".into(), String::new()));
    assert_eq!(events_after(&store, before), expected);
    let stored = store.findings(true).unwrap();
    assert_eq!(stored.len(), 203);
    assert!(stored.iter().all(|f| f.status == New
        && f.first_seen == t(1)
        && f.evidence == format!("evidence for {}", f.subject_id)));

    // Every third one is gone: 68 resolved, the other 135 open, with their first sighting kept.
    let r2 = snapshot(&store, &members, &[]);
    let before = last_event(&store).unwrap();
    let second = store
        .record_audit(r2, t(2), &findings(&|i| i % 3 != 0), t(2))
        .unwrap();
    assert_eq!((second.n_new, second.n_resolved), (0, 68));
    let resolved: Vec<String> = events_after(&store, before)
        .into_iter()
        .filter(|(kind, _)| kind == "finding.resolved")
        .map(|(_, id)| id)
        .collect();
    let mut gone: Vec<String> = ids.iter().step_by(3).cloned().collect();
    gone.sort();
    assert_eq!(resolved, gone);
    let live = store.findings(true).unwrap();
    assert_eq!(live.len(), 135);
    assert!(live
        .iter()
        .all(|f| f.status == Open && f.first_seen == t(1) && f.last_seen == t(2)));

    // They come back: new again, the open ones stay open.
    let r3 = snapshot(&store, &members, &[]);
    let third = store
        .record_audit(r3, t(3), &findings(&|_| true), t(3))
        .unwrap();
    assert_eq!((third.n_new, third.n_resolved), (68, 0));
    let back: Vec<(String, FindingStatus)> = statuses(&third)
        .into_iter()
        .filter(|(_, status)| *status == New)
        .collect();
    assert_eq!(
        back,
        gone.iter().map(|id| (id.clone(), New)).collect::<Vec<_>>()
    );
    assert_eq!(store.findings(true).unwrap().len(), 203);
}

/// The last day of each key and account as the rows say (a full scan), to compare with the
/// `usage_*_last` rows the store keeps.
fn usage_last_by_scan(store: &Store) -> (BTreeMap<String, NaiveDate>, BTreeMap<String, NaiveDate>) {
    let scan = |sql: &str| -> BTreeMap<String, NaiveDate> {
        let mut stmt = store.conn.prepare(sql).unwrap();
        let rows = stmt
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
            })
            .unwrap();
        rows.map(|r| {
            let (id, day) = r.unwrap();
            (id, NaiveDate::parse_from_str(&day, "%Y-%m-%d").unwrap())
        })
        .collect()
    };
    (
        scan("SELECT api_key_id, max(day) FROM usage_key_day GROUP BY api_key_id"),
        scan("SELECT account_id, max(day) FROM usage_account_day GROUP BY account_id"),
    )
}

fn usage_last_kept(store: &Store) -> (BTreeMap<String, NaiveDate>, BTreeMap<String, NaiveDate>) {
    let view = store.usage_view().unwrap().expect("a view");
    (
        view.key_last_used.into_iter().collect(),
        view.account_last_api.into_iter().collect(),
    )
}

fn usage_day(n: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, n).unwrap()
}

/// A chunk of `days` with the given `(key, account, day)` uses.
fn usage_chunk(days: &[u32], uses: &[(&str, &str, u32)]) -> UsageChunk {
    UsageChunk {
        days: days.iter().map(|d| (usage_day(*d), true)).collect(),
        keys: uses
            .iter()
            .map(|(key, account, day)| KeyDay {
                api_key_id: (*key).to_owned(),
                day: usage_day(*day),
                account_id: Some((*account).to_owned()),
                input_tokens: 10,
                output_tokens: 1,
                web_search_requests: 0,
            })
            .collect(),
        accounts: uses
            .iter()
            .map(|(_, account, day)| AccountDay {
                account_id: (*account).to_owned(),
                day: usage_day(*day),
                input_tokens: 10,
                output_tokens: 1,
            })
            .collect(),
        claude_code: Vec::new(),
    }
}

#[test]
fn the_last_day_of_each_key_and_account_follows_the_rows_written_replaced_and_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open_writer(&dir.path().join("o.db"), "test", wall_now()).unwrap();
    let check = |store: &Store| {
        let kept = usage_last_kept(store);
        assert_eq!(kept, usage_last_by_scan(store));
        kept
    };
    // Newest days first, as a backfill writes them.
    store
        .write_usage_chunk(
            &usage_chunk(
                &[4, 5, 6],
                &[("k1", "a1", 6), ("k2", "a2", 4), ("k1", "a1", 4)],
            ),
            t(7),
        )
        .unwrap();
    store
        .write_usage_chunk(
            &usage_chunk(
                &[1, 2, 3],
                &[("k1", "a1", 1), ("k2", "a2", 3), ("k3", "a1", 2)],
            ),
            t(7),
        )
        .unwrap();
    let (keys, accounts) = check(&store);
    assert_eq!(keys["k1"], usage_day(6));
    assert_eq!(keys["k2"], usage_day(4));
    assert_eq!(keys["k3"], usage_day(2));
    assert_eq!(accounts["a1"], usage_day(6));

    // Day 6 fetched again without k1 (and day 4 without k2): their last days fall back to
    // older rows, from this chunk or from before it.
    store
        .write_usage_chunk(&usage_chunk(&[4, 5, 6], &[("k1", "a1", 5)]), t(7))
        .unwrap();
    let (keys, accounts) = check(&store);
    assert_eq!(keys["k1"], usage_day(5));
    assert_eq!(keys["k2"], usage_day(3));
    assert_eq!(accounts["a2"], usage_day(3));

    // A chunk that fails before its commit changes nothing.
    {
        let mut write = store.begin_usage_chunk(&[usage_day(5)]).unwrap();
        write
            .key_days(&usage_chunk(&[5], &[("k9", "a9", 5)]).keys)
            .unwrap();
    }
    let (keys, _) = check(&store);
    assert_eq!(keys["k1"], usage_day(5));
    assert!(!keys.contains_key("k9"));

    // Pruning the days before the 3rd: k3 (last used on the 2nd) has no day left.
    store.prune_usage(usage_day(3)).unwrap();
    let (keys, accounts) = check(&store);
    assert!(!keys.contains_key("k3"));
    assert_eq!(keys.len(), 2);
    assert_eq!(accounts.len(), 2);
}

#[test]
fn a_schema_13_database_upgrades_with_its_usage_rows_and_last_days() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.db");
    {
        let conn = database_at_schema(&old, 13);
        for (key, account, day) in [
            ("k1", "a1", "2026-03-01"),
            ("k1", "a1", "2026-03-03"),
            ("k2", "a2", "2026-03-02"),
        ] {
            conn.execute(
                "INSERT INTO usage_key_day (api_key_id, day, account_id, input_tokens, \
                 output_tokens, web_search_requests) VALUES (?1, ?2, ?3, 5, 6, 7)",
                rusqlite::params![key, day, account],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO usage_account_day (account_id, day, input_tokens, output_tokens) \
                 VALUES (?1, ?2, 5, 6)",
                rusqlite::params![account, day],
            )
            .unwrap();
        }
        for day in ["2026-03-01", "2026-03-02", "2026-03-03"] {
            conn.execute(
                "INSERT INTO usage_days (day, complete, fetched_at) VALUES (?1, 1, ?2)",
                rusqlite::params![day, ts(&t(4))],
            )
            .unwrap();
        }
    }
    let upgraded = Store::open_writer(&old, "test", wall_now()).unwrap();
    assert_eq!(upgraded.user_version().unwrap(), SCHEMA_VERSION);
    let fresh = Store::open_writer(&dir.path().join("fresh.db"), "test", wall_now()).unwrap();
    assert_eq!(
        upgraded.schema_dump().unwrap(),
        fresh.schema_dump().unwrap()
    );
    assert_eq!(upgraded.usage_row_counts().unwrap(), (3, 3, 0));
    let tokens: (i64, i64, i64, Option<String>) = upgraded
        .conn
        .query_row(
            "SELECT input_tokens, output_tokens, web_search_requests, account_id \
             FROM usage_key_day WHERE api_key_id = 'k1' AND day = '2026-03-03'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .unwrap();
    assert_eq!(tokens, (5, 6, 7, Some("a1".to_owned())));
    let (keys, accounts) = usage_last_kept(&upgraded);
    assert_eq!(
        (keys.clone(), accounts.clone()),
        usage_last_by_scan(&upgraded)
    );
    assert_eq!(keys["k1"], usage_day(3));
    assert_eq!(accounts["a2"], usage_day(2));
    assert_eq!(upgraded.integrity_check().unwrap(), "ok");
}
