//! Table tests of the plan: every guard, alone, decides.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::config::{Config, Environment};
use crate::org::{Actor, ApiKey, Invite, Organization, User, WorkspaceMember};
use crate::policy::{Action, Finding, RuleId, SubjectKind};

fn now() -> DateTime<Utc> {
    "2026-02-01T12:00:00Z".parse().unwrap()
}

/// A finding seen in `n` snapshots, first two days ago (past the default 24 h grace).
fn seen(n: u32) -> Seen {
    Seen {
        consecutive: n,
        first_seen: now() - Duration::days(2),
    }
}

fn config(extra: &str) -> Config {
    let text = format!(
        "[remediation]\nmode = \"enforce\"\n{extra}\n\
         [rules.stale_invites]\nremediate = true\n\
         [rules.orphaned_keys]\nremediate = true\n\
         [rules.departed_domains]\nremediate = true\nremove_members = true\n\
         [rules.offboarding_roster]\nremediate = true\n"
    );
    // The rule tables may appear twice when `extra` sets them too; merge by writing extra last.
    Config::from_toml(&text, &Environment::default())
        .unwrap_or_else(|e| panic!("{e}"))
        .0
}

/// 20 members (one admin), 20 pending invites, 20 active keys, 10 workspace memberships.
fn state() -> OrgState {
    let t = now() - Duration::minutes(10);
    OrgState {
        run_id: 7,
        taken_at: t,
        organization: Organization {
            id: "org-1".into(),
            name: "Example".into(),
        },
        members: (0..20)
            .map(|i| User {
                id: format!("user_{i}"),
                email: format!("u{i}@example.com"),
                name: format!("U {i}"),
                role: if i == 0 { "admin" } else { "user" }.into(),
                added_at: t,
            })
            .collect(),
        invites: (0..20)
            .map(|i| Invite {
                id: format!("invite_{i}"),
                email: format!("i{i}@example.com"),
                role: "user".into(),
                status: "pending".into(),
                invited_at: t,
                expires_at: t,
                accepted_at: None,
            })
            .collect(),
        workspaces: Vec::new(),
        workspace_members: (0..10)
            .map(|i| WorkspaceMember {
                workspace_id: "wrkspc_1".into(),
                user_id: format!("user_{i}"),
                workspace_role: "workspace_user".into(),
            })
            .collect(),
        api_keys: (0..20)
            .map(|i| ApiKey {
                id: format!("apikey_{i}"),
                name: format!("key {i}"),
                workspace_id: None,
                created_at: t,
                created_by: Some(Actor {
                    id: "user_gone".into(),
                    kind: "user".into(),
                }),
                partial_key_hint: None,
                status: "active".into(),
                expires_at: None,
                principal: None,
                scope: None,
            })
            .collect(),
    }
}

fn finding(rule: RuleId, kind: SubjectKind, id: &str, action: Action) -> Finding {
    Finding {
        rule,
        severity: crate::config::Severity::High,
        subject_kind: kind,
        subject_id: id.into(),
        subject: id.into(),
        evidence: "test".into(),
        action,
        controls: crate::policy::controls_for(rule),
        exemption: None,
        workspace_id: None,
        user_id: None,
    }
}

fn stale(id: &str) -> Finding {
    finding(STALE_INVITES, SubjectKind::Invite, id, Action::DeleteInvite)
}

fn orphan(id: &str) -> Finding {
    finding(
        ORPHANED_KEYS,
        SubjectKind::ApiKey,
        id,
        Action::DeactivateKey,
    )
}

fn dormant(id: &str) -> Finding {
    finding(
        crate::policy::DORMANT_KEYS,
        SubjectKind::ApiKey,
        id,
        Action::DeactivateKey,
    )
}

fn departed_member(id: &str) -> Finding {
    finding(
        DEPARTED_DOMAINS,
        SubjectKind::Member,
        id,
        Action::RemoveMember,
    )
}

struct Case {
    name: &'static str,
    config: &'static str,
    findings: Vec<Finding>,
    /// Streak of every finding (grace).
    streak: u32,
    done: Vec<(&'static str, Action)>,
    age_minutes: i64,
    previous_members: Option<u64>,
    /// Expected (subject_id, first failing guard or "eligible").
    want: Vec<(&'static str, &'static str)>,
    /// Expected guard finding ids.
    guards: Vec<&'static str>,
}

impl Default for Case {
    fn default() -> Self {
        Case {
            name: "",
            config: "",
            findings: Vec::new(),
            streak: 2,
            done: Vec::new(),
            age_minutes: 10,
            previous_members: None,
            want: Vec::new(),
            guards: Vec::new(),
        }
    }
}

fn run(case: &Case) -> Plan {
    let config = config(case.config);
    let mut state = state();
    state.taken_at = now() - Duration::minutes(case.age_minutes);
    let baseline = case.previous_members.map(|members| {
        let counts = state.counts();
        Baseline {
            members,
            invites: counts.invites,
            api_keys: counts.api_keys,
            snapshots: 1,
        }
    });
    let streaks: HashMap<String, Seen> = case
        .findings
        .iter()
        .map(|f| (f.fingerprint(), seen(case.streak)))
        .collect();
    let done: HashSet<(String, Action)> = case
        .done
        .iter()
        .map(|(id, action)| {
            let f = case
                .findings
                .iter()
                .find(|f| f.subject_id == *id)
                .expect("done refers to a finding");
            (f.fingerprint(), *action)
        })
        .collect();
    plan(&PlanInput {
        config: &config,
        state: &state,
        baseline,
        accepted_by: None,
        findings: &case.findings,
        seen: &streaks,
        done: &done,
        now: now(),
    })
}

#[test]
fn every_guard_decides() {
    let mut exempt = orphan("apikey_3");
    exempt.exemption = Some("CI".into());
    let cases = vec![
        Case {
            name: "all guards pass",
            findings: vec![
                stale("invite_1"),
                orphan("apikey_1"),
                departed_member("user_5"),
            ],
            want: vec![
                ("invite_1", "eligible"),
                ("apikey_1", "eligible"),
                ("user_5", "eligible"),
            ],
            ..Case::default()
        },
        Case {
            name: "rule not opted in",
            config: "[rules.excess_admins]\nmax_admins = 3",
            findings: vec![finding(
                crate::policy::OFFBOARDING_ROSTER,
                SubjectKind::Member,
                "user_4",
                Action::RemoveMember,
            )],
            want: vec![("user_4", "opt_in")],
            ..Case::default()
        },
        Case {
            name: "grace not yet served",
            findings: vec![orphan("apikey_1")],
            streak: 1,
            want: vec![("apikey_1", "grace")],
            ..Case::default()
        },
        Case {
            name: "snapshot too old",
            findings: vec![orphan("apikey_1")],
            age_minutes: 121,
            want: vec![("apikey_1", "snapshot_age")],
            ..Case::default()
        },
        Case {
            name: "exempted",
            findings: vec![exempt.clone()],
            want: vec![("apikey_3", "exemption")],
            ..Case::default()
        },
        Case {
            name: "already done",
            findings: vec![orphan("apikey_1")],
            done: vec![("apikey_1", Action::DeactivateKey)],
            want: vec![("apikey_1", "already_done")],
            ..Case::default()
        },
        Case {
            name: "admins are never removed",
            findings: vec![departed_member("user_0")],
            want: vec![("user_0", "admin")],
            ..Case::default()
        },
        Case {
            name: "population dropped by more than 20%",
            findings: vec![orphan("apikey_1"), stale("invite_1")],
            previous_members: Some(26),
            want: vec![
                ("apikey_1", "population_drop"),
                ("invite_1", "population_drop"),
            ],
            guards: vec!["population_drop"],
            ..Case::default()
        },
        Case {
            name: "population drop within the limit",
            findings: vec![orphan("apikey_1")],
            previous_members: Some(24),
            want: vec![("apikey_1", "eligible")],
            ..Case::default()
        },
        Case {
            name: "fraction of a kind exceeded: none of that kind, others still run",
            // 3 of 20 invites > 10% (limit 2); one key is within limits.
            findings: vec![
                stale("invite_1"),
                stale("invite_2"),
                stale("invite_3"),
                orphan("apikey_1"),
            ],
            want: vec![
                ("invite_1", "blast_radius"),
                ("invite_2", "blast_radius"),
                ("invite_3", "blast_radius"),
                ("apikey_1", "eligible"),
            ],
            guards: vec!["blast_radius:delete_invite"],
            ..Case::default()
        },
        Case {
            name: "max_actions_per_run exceeded",
            config: "max_actions_per_run = 1\nmax_fraction = 1.0",
            findings: vec![orphan("apikey_1"), orphan("apikey_2")],
            want: vec![("apikey_1", "blast_radius"), ("apikey_2", "blast_radius")],
            guards: vec!["blast_radius:deactivate_key"],
            ..Case::default()
        },
        Case {
            name: "blocked actions do not count against the blast radius",
            findings: vec![stale("invite_1"), stale("invite_2"), stale("invite_3")],
            done: vec![("invite_3", Action::DeleteInvite)],
            want: vec![
                ("invite_1", "eligible"),
                ("invite_2", "eligible"),
                ("invite_3", "already_done"),
            ],
            ..Case::default()
        },
        Case {
            name: "one call per object even with two findings",
            findings: vec![
                orphan("apikey_1"),
                finding(
                    DEPARTED_DOMAINS,
                    SubjectKind::ApiKey,
                    "apikey_1",
                    Action::DeactivateKey,
                ),
            ],
            want: vec![("apikey_1", "eligible"), ("apikey_1", "duplicate")],
            ..Case::default()
        },
        Case {
            name: "a dormant key is deactivated like an orphaned one once opted in",
            config: "[rules.dormant_keys]\nremediate = true",
            findings: vec![dormant("apikey_1")],
            want: vec![("apikey_1", "eligible")],
            ..Case::default()
        },
        Case {
            name: "dormant keys are not deactivated without the opt-in",
            findings: vec![dormant("apikey_1")],
            want: vec![("apikey_1", "opt_in")],
            ..Case::default()
        },
        Case {
            name: "a dormant key waits out the grace period",
            config: "[rules.dormant_keys]\nremediate = true",
            findings: vec![dormant("apikey_1")],
            streak: 1,
            want: vec![("apikey_1", "grace")],
            ..Case::default()
        },
        Case {
            name: "dormant and orphaned keys share the blast radius of deactivations",
            config: "max_actions_per_run = 2\nmax_fraction = 1.0\n\
                     [rules.dormant_keys]\nremediate = true",
            findings: vec![orphan("apikey_1"), dormant("apikey_2"), dormant("apikey_3")],
            want: vec![
                ("apikey_1", "blast_radius"),
                ("apikey_2", "blast_radius"),
                ("apikey_3", "blast_radius"),
            ],
            guards: vec!["blast_radius:deactivate_key"],
            ..Case::default()
        },
        Case {
            name: "report-only findings plan nothing",
            findings: vec![finding(
                crate::policy::EXCESS_ADMINS,
                SubjectKind::Organization,
                "org-1",
                Action::Review,
            )],
            want: vec![],
            ..Case::default()
        },
        Case {
            name: "dormant members and key hygiene are report-only",
            findings: vec![
                finding(
                    crate::policy::DORMANT_MEMBERS,
                    SubjectKind::Member,
                    "user_4",
                    Action::Review,
                ),
                finding(
                    crate::policy::KEY_HYGIENE,
                    SubjectKind::ApiKey,
                    "apikey_4",
                    Action::Review,
                ),
            ],
            want: vec![],
            ..Case::default()
        },
    ];
    for case in &cases {
        let plan = run(case);
        let got: Vec<(&str, String)> = plan
            .actions
            .iter()
            .map(|a| {
                let verdict = a
                    .verdicts
                    .iter()
                    .find(|v| !v.pass)
                    .map_or("eligible".to_owned(), |v| v.guard.as_str().to_owned());
                (a.subject_id.as_str(), verdict)
            })
            .collect();
        let want: Vec<(&str, String)> = case
            .want
            .iter()
            .map(|(id, v)| (*id, (*v).to_owned()))
            .collect();
        assert_eq!(got, want, "case {:?}", case.name);
        for action in &plan.actions {
            assert_eq!(
                action.eligible,
                action.verdicts.iter().all(|v| v.pass),
                "case {:?}",
                case.name
            );
        }
        let guards: Vec<&str> = plan
            .guard_findings
            .iter()
            .map(|f| f.subject_id.as_str())
            .collect();
        assert_eq!(guards, case.guards, "case {:?}", case.name);
        for finding in &plan.guard_findings {
            assert_eq!(finding.severity, crate::config::Severity::Critical);
            assert_eq!(finding.rule, crate::policy::REMEDIATION_GUARD);
        }
    }
}

#[test]
fn an_empty_member_list_stops_everything() {
    // The API returned no members: every key looks orphaned. Nothing may run.
    let config = config("");
    let mut state = state();
    state.members.clear();
    let findings: Vec<Finding> = (0..20).map(|i| orphan(&format!("apikey_{i}"))).collect();
    let streaks = findings
        .iter()
        .map(|f| (f.fingerprint(), seen(5)))
        .collect();
    let plan = plan(&PlanInput {
        config: &config,
        state: &state,
        baseline: Some(Baseline {
            members: 20,
            invites: 20,
            api_keys: 20,
            snapshots: 1,
        }),
        accepted_by: None,
        findings: &findings,
        seen: &streaks,
        done: &HashSet::new(),
        now: now(),
    });
    assert_eq!(plan.actions.len(), 20);
    assert_eq!(plan.eligible().count(), 0);
    let guards: Vec<&str> = plan
        .guard_findings
        .iter()
        .map(|f| f.subject_id.as_str())
        .collect();
    // The drop blocks everything first, so the blast radius has nothing left to count.
    assert_eq!(guards, vec!["plausibility", "population_drop"]);
}

#[test]
fn dry_run_plans_but_never_acts() {
    let mut config = config("");
    config.remediation.mode = crate::config::RemediationMode::DryRun;
    let state = state();
    // Three stale invites of twenty exceed the 10% blast radius.
    let findings = vec![
        stale("invite_1"),
        stale("invite_2"),
        stale("invite_3"),
        orphan("apikey_1"),
    ];
    let streaks = findings
        .iter()
        .map(|f| (f.fingerprint(), seen(2)))
        .collect();
    let plan = plan(&PlanInput {
        config: &config,
        state: &state,
        baseline: None,
        accepted_by: None,
        findings: &findings,
        seen: &streaks,
        done: &HashSet::new(),
        now: now(),
    });
    assert_eq!(plan.actions.len(), 4);
    assert_eq!(plan.eligible().count(), 0);
    for action in &plan.actions {
        assert_eq!(
            action.blocked_by().unwrap(),
            "mode: remediation.mode = dry-run"
        );
        // The other verdicts are what enforcement would decide.
        let others_pass = action
            .verdicts
            .iter()
            .filter(|v| v.guard != Guard::Mode)
            .all(|v| v.pass);
        assert_eq!(
            others_pass,
            action.action == Action::DeactivateKey,
            "{action:?}"
        );
    }
    assert!(
        plan.guard_findings.is_empty(),
        "nothing was stopped, so nothing is raised"
    );
}

#[test]
fn dry_run_shows_the_plan_enforcement_would_make() {
    let findings = vec![
        orphan("apikey_1"),
        finding(
            DEPARTED_DOMAINS,
            SubjectKind::ApiKey,
            "apikey_1",
            Action::DeactivateKey,
        ),
        stale("invite_1"),
    ];
    let streaks: HashMap<String, Seen> = findings
        .iter()
        .map(|f| (f.fingerprint(), seen(2)))
        .collect();
    let state = state();
    let judge = |mode| {
        let mut config = config("");
        config.remediation.mode = mode;
        let plan = plan(&PlanInput {
            config: &config,
            state: &state,
            baseline: None,
            accepted_by: None,
            findings: &findings,
            seen: &streaks,
            done: &HashSet::new(),
            now: now(),
        });
        plan.actions
            .iter()
            .map(|a| {
                a.verdicts
                    .iter()
                    .filter(|v| v.guard != Guard::Mode)
                    .map(|v| (v.guard, v.pass))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let enforce = judge(crate::config::RemediationMode::Enforce);
    assert_eq!(judge(crate::config::RemediationMode::DryRun), enforce);
    assert!(enforce[1].contains(&(Guard::Duplicate, false)));
}

#[test]
fn plausibility_guard_table() {
    let counts = |members| crate::org::Counts {
        members,
        ..Default::default()
    };
    let cases = [
        (counts(0), 0, None, false),
        (counts(5), 0, None, false),
        (counts(5), 1, None, true),
        (counts(0), 0, Some("alice"), true),
    ];
    for (c, admins, accepted, pass) in cases {
        let v = plausibility_guard(c, admins, accepted);
        assert_eq!(v.guard, Guard::Plausibility);
        assert_eq!(v.pass, pass, "{c:?} admins {admins} accepted {accepted:?}");
    }
}

#[test]
fn grace_guard_table() {
    let day = std::time::Duration::from_secs(86_400);
    let at = |minutes: i64| now() - Duration::minutes(minutes);
    let cases = [
        // (consecutive, first seen minutes ago, min snapshots, pass)
        (None, 0, 1, false),
        (Some((2, 5)), 5, 2, false), // two snapshots minutes apart: too young
        (Some((1, 2 * 1440)), 2 * 1440, 2, false), // old enough, one snapshot short
        (Some((2, 1440)), 1440, 2, true),
    ];
    for (seen, ago, min, pass) in cases {
        let seen = seen.map(|(n, ago)| Seen {
            consecutive: n,
            first_seen: at(ago),
        });
        let (v, eligible_at) = grace_guard(seen, min, day, now());
        assert_eq!(v.pass, pass, "{seen:?}");
        assert_eq!(eligible_at, at(ago) + Duration::days(1));
    }
}

#[test]
fn population_drop_guard_table() {
    let after = |members, invites, api_keys| crate::org::Counts {
        members,
        invites,
        api_keys,
        ..Default::default()
    };
    let base = Some(Baseline {
        members: 100,
        invites: 10,
        api_keys: 50,
        snapshots: 3,
    });
    let cases = [
        (None, after(0, 0, 0), true),
        (base, after(100, 10, 50), true),
        (base, after(80, 10, 50), true),
        (base, after(79, 10, 50), false),
        (base, after(100, 0, 50), false),
        (base, after(100, 10, 5), false),
        (base, after(0, 0, 0), false),
    ];
    for (b, a, pass) in cases {
        assert_eq!(population_drop_guard(b, a, 0.2).pass, pass, "{b:?} {a:?}");
    }
}

fn run_record(id: i64, members: u64, suspect: bool, accepted: bool) -> crate::store::RunRecord {
    crate::store::RunRecord {
        id,
        status: crate::store::RunStatus::Complete,
        started_at: now(),
        finished_at: Some(now()),
        error: None,
        org_id: None,
        org_name: None,
        counts: Some(crate::store::Counts {
            members,
            invites: members / 10,
            api_keys: members / 2,
            ..Default::default()
        }),
        requests: None,
        retries: None,
        admins: Some(u64::from(!suspect)),
        suspect: suspect.then(|| "the snapshot has no members at all".to_owned()),
        accepted_by: accepted.then(|| "alice".to_owned()),
        accepted_at: accepted.then(now),
    }
}

#[test]
fn trusted_baseline_table() {
    let b = |members: u64, snapshots| {
        Some(Baseline {
            members,
            invites: members / 10,
            api_keys: members / 2,
            snapshots,
        })
    };
    type Case = (
        &'static str,
        Vec<crate::store::RunRecord>,
        Option<i64>,
        Option<Baseline>,
    );
    let cases: Vec<Case> = vec![
        ("nothing in the window", vec![], None, None),
        (
            "the largest counts of the plausible ones",
            vec![
                run_record(1, 100, false, false),
                run_record(2, 90, false, false),
            ],
            None,
            b(100, 2),
        ),
        (
            "two empty snapshots in a row never become the baseline",
            vec![
                run_record(1, 100, false, false),
                run_record(2, 0, true, false),
                run_record(3, 0, true, false),
            ],
            None,
            b(100, 1),
        ),
        (
            "only empty snapshots: no baseline",
            vec![run_record(2, 0, true, false), run_record(3, 0, true, false)],
            None,
            None,
        ),
        (
            "an accepted snapshot is trusted and nothing before it counts",
            vec![
                run_record(1, 100, false, false),
                run_record(2, 10, true, true),
                run_record(3, 12, false, false),
            ],
            Some(2),
            b(12, 2),
        ),
        (
            "the judged snapshot itself was accepted: nothing before it counts",
            vec![run_record(1, 100, false, false)],
            Some(4),
            None,
        ),
    ];
    for (name, runs, accepted, want) in cases {
        assert_eq!(Baseline::trusted(&runs, accepted, &[]), want, "{name}");
    }
    // Orgwarden's own removals after a run are not a drop: 100 members and 10 invites, then 3
    // invites deleted and 1 member removed after it (one invite deletion was before it).
    let runs = [run_record(1, 100, false, false)];
    let removals = [
        (now() - Duration::hours(1), Action::DeleteInvite),
        (now(), Action::DeleteInvite),
        (now() + Duration::hours(1), Action::DeleteInvite),
        (now() + Duration::hours(1), Action::DeleteInvite),
        (now() + Duration::hours(1), Action::RemoveMember),
        (now() + Duration::hours(1), Action::DeactivateKey),
    ];
    assert_eq!(
        Baseline::trusted(&runs, None, &removals),
        Some(Baseline {
            members: 99,
            invites: 7,
            api_keys: 50,
            snapshots: 1,
        })
    );
}

#[test]
fn blast_radius_guard_table() {
    let cases = [
        (1, 0, 25, 0.1, false),
        (2, 10, 25, 0.1, true),
        (2, 20, 25, 0.1, false),
        (26, 1000, 25, 1.0, true),
        (25, 1000, 25, 1.0, false),
    ];
    for (n, population, max, fraction, tripped) in cases {
        let got = blast_radius_guard(Action::DeactivateKey, n, population, max, fraction);
        assert_eq!(got.is_some(), tripped, "{n} of {population}");
    }
}

#[test]
fn small_guards_table() {
    assert!(mode_guard(crate::config::RemediationMode::Enforce).pass);
    assert!(!mode_guard(crate::config::RemediationMode::DryRun).pass);
    assert!(exemption_guard(None).pass);
    assert!(!exemption_guard(Some("vendor")).pass);
    assert!(already_done_guard(false).pass);
    assert!(!already_done_guard(true).pass);
    let s = state();
    assert!(!admin_guard(&s, "user_0").pass);
    assert!(admin_guard(&s, "user_1").pass);
    assert!(deletable_guard(&s, "invite_1").pass);
    assert!(!deletable_guard(&s, "invite_404").pass);
    let max = std::time::Duration::from_secs(3600);
    assert!(snapshot_age_guard(1, now() - Duration::minutes(59), max, now()).pass);
    assert!(!snapshot_age_guard(1, now() - Duration::minutes(61), max, now()).pass);
}
