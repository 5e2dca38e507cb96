//! Table-driven tests of every rule, the exemptions, the roster parser and the glob matcher.
//!
//! States are built by hand with the small helpers below; `now` is fixed at
//! 2026-02-01T12:00:00Z so that every date in the evidence is predictable.

use std::collections::HashMap;

use chrono::{Duration, NaiveDate};

use super::*;
use crate::config::{
    DepartedDomainsRule, DormantKeysRule, DormantMembersRule, ExcessAdminsRule, ExemptionMatch,
    KeyHygieneRule, OrphanedKeysRule, PrivilegeEscalationRule, RosterRule, StaleInvitesRule,
};
use crate::org::{
    Actor, ApiKey, Invite, KeyScope, Organization, Principal, User, Workspace, WorkspaceMember,
};
use crate::org::{DirectoryListing, DirectoryPerson, DirectoryStatus};
use usage::UsageView;

// ---- Helpers ------------------------------------------------------------------------------------

fn at(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

fn now() -> DateTime<Utc> {
    at("2026-02-01T12:00:00Z")
}

fn date(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

fn user(id: &str, email: &str, role: &str) -> User {
    User {
        id: id.into(),
        email: email.into(),
        name: id.into(),
        role: role.into(),
        added_at: at("2025-06-01T09:00:00Z"),
    }
}

fn invite(id: &str, email: &str, status: &str, invited_at: DateTime<Utc>) -> Invite {
    Invite {
        id: id.into(),
        email: email.into(),
        role: "developer".into(),
        invited_at,
        expires_at: invited_at + Duration::days(21),
        status: status.into(),
        accepted_at: None,
    }
}

/// An active Default Workspace key with no owner; rows add what they need.
fn key(id: &str, name: &str) -> ApiKey {
    ApiKey {
        id: id.into(),
        name: name.into(),
        workspace_id: None,
        created_at: at("2025-07-01T10:00:00Z"),
        created_by: None,
        partial_key_hint: None,
        status: "active".into(),
        expires_at: None,
        principal: None,
        scope: None,
    }
}

fn created_by(id: &str) -> Option<Actor> {
    Some(Actor {
        id: id.into(),
        kind: "user".into(),
    })
}

fn created_by_service(id: &str) -> Option<Actor> {
    Some(Actor {
        id: id.into(),
        kind: "service_account".into(),
    })
}

fn user_actor(id: &str) -> Option<Principal> {
    Some(Principal {
        kind: "user_actor".into(),
        user_id: Some(id.into()),
        service_account_id: None,
    })
}

fn service_actor(id: &str) -> Option<Principal> {
    Some(Principal {
        kind: "service_account_actor".into(),
        user_id: None,
        service_account_id: Some(id.into()),
    })
}

fn owned_key(id: &str, owner: &str) -> ApiKey {
    ApiKey {
        created_by: created_by(owner),
        ..key(id, &format!("{id}-name"))
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

fn archived(id: &str, name: &str) -> Workspace {
    Workspace {
        archived_at: Some(at("2025-12-01T00:00:00Z")),
        ..workspace(id, name)
    }
}

fn membership(workspace_id: &str, user_id: &str, role: &str) -> WorkspaceMember {
    WorkspaceMember {
        workspace_id: workspace_id.into(),
        user_id: user_id.into(),
        workspace_role: role.into(),
    }
}

fn former(id: &str, email: &str, last_seen: &str) -> FormerMember {
    FormerMember {
        id: id.into(),
        email: email.into(),
        last_seen: at(last_seen),
    }
}

fn state() -> OrgState {
    OrgState {
        run_id: 2,
        taken_at: now(),
        organization: Organization {
            id: "org_1".into(),
            name: "Example Org".into(),
        },
        members: vec![],
        invites: vec![],
        workspaces: vec![],
        workspace_members: vec![],
        api_keys: vec![],
    }
}

/// Every rule enabled with the shipped defaults and no domain lists.
fn rules() -> RulesConfig {
    RulesConfig {
        stale_invites: StaleInvitesRule {
            enabled: true,
            severity: Severity::Low,
            max_pending_days: 7,
            remediate: false,
        },
        departed_domains: DepartedDomainsRule {
            enabled: true,
            severity: Severity::High,
            departed_domains: vec![],
            allowed_domains: vec![],
            remediate: false,
            remove_members: false,
        },
        offboarding_roster: RosterRule {
            enabled: true,
            severity: Severity::High,
            roster_csv: None,
            email_column: "email".into(),
            last_day_column: "last_day".into(),
            remediate: false,
            remove_members: false,
        },
        orphaned_keys: OrphanedKeysRule {
            enabled: true,
            severity: Severity::High,
            remediate: false,
        },
        excess_admins: ExcessAdminsRule {
            enabled: true,
            severity: Severity::Medium,
            max_admins: 3,
            max_workspace_admins: 3,
        },
        privilege_escalation: PrivilegeEscalationRule {
            enabled: true,
            severity: Severity::High,
        },
        dormant_keys: DormantKeysRule {
            enabled: true,
            severity: Severity::Medium,
            remediate: false,
            max_idle_days: 90,
        },
        dormant_members: DormantMembersRule {
            enabled: true,
            severity: Severity::Low,
            max_idle_days: 60,
        },
        key_hygiene: KeyHygieneRule {
            enabled: true,
            severity: Severity::Low,
            max_key_age_days: 365,
            flag_org_scoped: false,
        },
        directory_departed: crate::config::DirectoryDepartedRule {
            enabled: true,
            severity: Severity::High,
            remediate: false,
            remove_members: false,
        },
        directory_unknown: crate::config::DirectoryUnknownRule {
            enabled: true,
            severity: Severity::Medium,
        },
        assignment_drift: crate::config::AssignmentDriftRule {
            enabled: true,
            severity: Severity::Medium,
        },
    }
}

fn exemption(matches: ExemptionMatch, until: Option<&str>) -> Exemption {
    Exemption {
        reason: format!("exempt by {matches:?}"),
        matches,
        until: until.map(date),
    }
}

/// Everything `evaluate` needs, owned, so rows can build it field by field.
struct Case {
    state: OrgState,
    previous: Option<OrgState>,
    former: Vec<FormerMember>,
    rules: RulesConfig,
    exemptions: Vec<Exemption>,
    roster: Roster,
    usage: Option<UsageView>,
    directories: Vec<DirectoryView>,
    now: DateTime<Utc>,
}

impl Case {
    fn new(state: OrgState) -> Case {
        Case {
            state,
            previous: None,
            former: vec![],
            rules: rules(),
            exemptions: vec![],
            roster: Roster::NotConfigured,
            usage: None,
            directories: vec![],
            now: now(),
        }
    }

    fn eval(&self) -> Evaluation {
        evaluate(&PolicyInput {
            state: &self.state,
            previous: self.previous.as_ref(),
            former_members: &self.former,
            rules: &self.rules,
            exemptions: &self.exemptions,
            roster: &self.roster,
            usage: self.usage.as_ref(),
            directories: &self.directories,
            now: self.now,
        })
    }
}

fn of(evaluation: &Evaluation, rule: RuleId) -> Vec<&Finding> {
    evaluation
        .findings
        .iter()
        .filter(|f| f.rule == rule)
        .collect()
}

fn status(evaluation: &Evaluation, rule: RuleId) -> RuleStatus {
    evaluation
        .rules
        .iter()
        .find(|o| o.rule == rule)
        .unwrap_or_else(|| panic!("no outcome for {rule}"))
        .status
        .clone()
}

/// `(fingerprint, action)` of a rule's findings, sorted, for comparing with a table's expectation.
fn summary(evaluation: &Evaluation, rule: RuleId) -> Vec<(String, Action)> {
    let mut out: Vec<_> = of(evaluation, rule)
        .into_iter()
        .map(|f| (f.fingerprint(), f.action))
        .collect();
    out.sort();
    out
}

fn expected(rows: &[(&str, Action)]) -> Vec<(String, Action)> {
    let mut out: Vec<_> = rows.iter().map(|(f, a)| (f.to_string(), *a)).collect();
    out.sort();
    out
}

// ---- stale_invites ------------------------------------------------------------------------------

#[test]
fn stale_invites_table() {
    let pending_12 = invite(
        "invite_12",
        "Late.Joiner@Corp.test",
        "pending",
        at("2026-01-20T12:00:00Z"),
    );
    // (name, invite, max_pending_days, expected evidence; None = no finding)
    let rows: Vec<(&str, Invite, u32, Option<&str>)> = vec![
        (
            "pending 12 days",
            pending_12.clone(),
            7,
            Some(
                "invited 2026-01-20 as developer, pending for 12 days (limit \
                7); expires 2026-02-10",
            ),
        ),
        ("pending 12 days under a 30-day limit", pending_12, 30, None),
        (
            "pending exactly the limit is not older than it",
            invite(
                "invite_7",
                "a@corp.test",
                "pending",
                now() - Duration::days(7),
            ),
            7,
            None,
        ),
        (
            "pending an hour over the limit",
            invite(
                "invite_7h",
                "a@corp.test",
                "pending",
                now() - Duration::days(7) - Duration::hours(1),
            ),
            7,
            Some("pending for more than 7 days (limit 7)"),
        ),
        (
            "fresh pending invite",
            invite(
                "invite_2",
                "a@corp.test",
                "pending",
                now() - Duration::days(2),
            ),
            7,
            None,
        ),
        (
            "expired and still listed",
            invite(
                "invite_x",
                "a@corp.test",
                "expired",
                at("2025-12-01T12:00:00Z"),
            ),
            7,
            Some("invited 2025-12-01 as developer, expired 2025-12-22 and is still listed"),
        ),
        (
            "pending invite that expires exactly now is expired",
            Invite {
                expires_at: now(),
                ..invite(
                    "invite_now",
                    "a@corp.test",
                    "pending",
                    now() - Duration::days(2),
                )
            },
            7,
            Some("still pending although it expired 2026-02-01 (less than a day ago)"),
        ),
        (
            "pending invite that expires a second after now is not",
            Invite {
                expires_at: now() + Duration::seconds(1),
                ..invite(
                    "invite_soon",
                    "a@corp.test",
                    "pending",
                    now() - Duration::days(2),
                )
            },
            7,
            None,
        ),
        (
            "accepted long ago",
            invite(
                "invite_acc",
                "a@corp.test",
                "accepted",
                at("2025-01-01T00:00:00Z"),
            ),
            7,
            None,
        ),
        (
            "deleted long ago",
            invite(
                "invite_del",
                "a@corp.test",
                "deleted",
                at("2025-01-01T00:00:00Z"),
            ),
            7,
            None,
        ),
        (
            "unknown status is not judged",
            invite(
                "invite_unk",
                "a@corp.test",
                "revoked",
                at("2025-01-01T00:00:00Z"),
            ),
            7,
            None,
        ),
    ];
    for (name, inv, max_days, want) in rows {
        let mut case = Case::new(OrgState {
            invites: vec![inv.clone()],
            ..state()
        });
        case.rules.stale_invites.max_pending_days = max_days;
        let evaluation = case.eval();
        let found = of(&evaluation, STALE_INVITES);
        match want {
            None => assert!(found.is_empty(), "{name}: unexpected {found:?}"),
            Some(text) => {
                assert_eq!(found.len(), 1, "{name}: {found:?}");
                let f = found[0];
                assert!(
                    f.evidence.contains(text),
                    "{name}: evidence {:?}",
                    f.evidence
                );
                assert_eq!(f.subject_kind, SubjectKind::Invite, "{name}");
                assert_eq!(f.subject_id, inv.id, "{name}");
                assert_eq!(
                    f.subject, inv.email,
                    "{name}: the email is kept as the API gave it"
                );
                assert_eq!(f.action, Action::DeleteInvite, "{name}");
                assert_eq!(f.severity, Severity::Low, "{name}");
                assert_eq!(f.controls, controls_for(STALE_INVITES), "{name}");
            }
        }
        assert_eq!(
            status(&evaluation, STALE_INVITES),
            RuleStatus::Evaluated,
            "{name}"
        );
    }
}

// ---- departed_domains ---------------------------------------------------------------------------

#[test]
fn departed_domains_matching_table() {
    // Each row's email is used three times: as a member, a pending invite, and the owner (a
    // former member) of an active key. (name, email, departed, allowed, expected evidence clause)
    type Row = (
        &'static str,
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        Option<&'static str>,
    );
    let rows: &[Row] = &[
        (
            "exact domain",
            "jane@example.com",
            &["example.com"],
            &[],
            Some("email domain example.com is a departed domain"),
        ),
        (
            "mixed-case email",
            "Jane@EXAMPLE.Com",
            &["example.com"],
            &[],
            Some("email domain example.com is a departed domain"),
        ),
        (
            "mixed-case config",
            "jane@example.com",
            &["Example.COM"],
            &[],
            Some("is a departed domain"),
        ),
        (
            "subdomain",
            "jane@a.example.com",
            &["example.com"],
            &[],
            Some("email domain a.example.com is under departed domain example.com"),
        ),
        (
            "look-alike is not a subdomain",
            "jane@notexample.com",
            &["example.com"],
            &[],
            None,
        ),
        (
            "suffix trick",
            "jane@example.com.evil.test",
            &["example.com"],
            &[],
            None,
        ),
        (
            "parent of a departed domain",
            "jane@example.com",
            &["a.example.com"],
            &[],
            None,
        ),
        (
            "IDNA config, punycode email",
            "jane@xn--bcher-kva.example",
            &["Bücher.example"],
            &[],
            Some("email domain xn--bcher-kva.example is a departed domain"),
        ),
        (
            "punycode config, Unicode email",
            "jane@BÜCHER.example",
            &["xn--bcher-kva.example"],
            &[],
            Some("email domain xn--bcher-kva.example is a departed domain"),
        ),
        ("allowed domain", "ok@corp.test", &[], &["corp.test"], None),
        (
            "subdomain of an allowed domain",
            "ok@eu.corp.test",
            &[],
            &["corp.test"],
            None,
        ),
        (
            "not allowed",
            "x@notcorp.test",
            &[],
            &["corp.test"],
            Some("email domain notcorp.test is not in allowed_domains"),
        ),
        (
            "departed wins over allowed",
            "x@example.com",
            &["example.com"],
            &["example.com"],
            Some("is a departed domain"),
        ),
        (
            "no domain with an allow-list",
            "no-at-sign",
            &[],
            &["corp.test"],
            Some("no readable domain"),
        ),
        (
            "no domain without an allow-list",
            "no-at-sign",
            &["example.com"],
            &[],
            None,
        ),
        ("nothing configured", "jane@example.com", &[], &[], None),
    ];
    for (name, email, departed, allowed, want) in rows {
        let mut case = Case::new(OrgState {
            members: vec![user("user_m", email, "developer")],
            invites: vec![invite(
                "invite_i",
                email,
                "pending",
                now() - Duration::days(1),
            )],
            api_keys: vec![owned_key("apikey_k", "user_f")],
            ..state()
        });
        case.former = vec![former("user_f", email, "2026-01-10T00:00:00Z")];
        case.rules.departed_domains.departed_domains =
            departed.iter().map(|d| d.to_string()).collect();
        case.rules.departed_domains.allowed_domains =
            allowed.iter().map(|d| d.to_string()).collect();
        let evaluation = case.eval();
        let want_summary = match want {
            None => vec![],
            Some(_) => expected(&[
                ("departed_domains:member:user_m", Action::RemoveMember),
                ("departed_domains:invite:invite_i", Action::DeleteInvite),
                ("departed_domains:api_key:apikey_k", Action::DeactivateKey),
            ]),
        };
        assert_eq!(
            summary(&evaluation, DEPARTED_DOMAINS),
            want_summary,
            "{name}"
        );
        if let Some(text) = want {
            for f in of(&evaluation, DEPARTED_DOMAINS) {
                assert!(
                    f.evidence.contains(text),
                    "{name}: evidence {:?}",
                    f.evidence
                );
                assert_eq!(f.severity, Severity::High, "{name}");
            }
        }
    }
}

#[test]
fn departed_domains_subjects_table() {
    let members = vec![
        user("user_gone", "gone@example.com", "developer"),
        user("user_boss", "Boss@Example.com", "admin"),
        user("user_ok", "ok@corp.test", "developer"),
        user("user_odd", "odd@example.com", "galactic_overlord"),
    ];
    // (name, extra invite, extra key, expected (fingerprint, action) from the extra object)
    type Row = (
        &'static str,
        Option<Invite>,
        Option<ApiKey>,
        Option<(&'static str, Action)>,
    );
    let rows: Vec<Row> = vec![
        ("members only", None, None, None),
        (
            "pending invite",
            Some(invite(
                "invite_p",
                "new@example.com",
                "pending",
                now() - Duration::days(1),
            )),
            None,
            Some(("departed_domains:invite:invite_p", Action::DeleteInvite)),
        ),
        (
            "accepted invite is ignored",
            Some(invite(
                "invite_a",
                "new@example.com",
                "accepted",
                now() - Duration::days(1),
            )),
            None,
            None,
        ),
        (
            "expired invite is for stale_invites, not this rule",
            Some(invite(
                "invite_e",
                "new@example.com",
                "expired",
                now() - Duration::days(30),
            )),
            None,
            None,
        ),
        (
            "key created by a departed member",
            None,
            Some(owned_key("apikey_1", "user_gone")),
            Some(("departed_domains:api_key:apikey_1", Action::DeactivateKey)),
        ),
        (
            "principal user_actor wins over created_by",
            None,
            Some(ApiKey {
                principal: user_actor("user_gone"),
                ..owned_key("apikey_2", "user_ok")
            }),
            Some(("departed_domains:api_key:apikey_2", Action::DeactivateKey)),
        ),
        (
            "principal of an allowed member wins over a departed creator",
            None,
            Some(ApiKey {
                principal: user_actor("user_ok"),
                ..owned_key("apikey_3", "user_gone")
            }),
            None,
        ),
        (
            "service-account creator",
            None,
            Some(ApiKey {
                created_by: created_by_service("svac_1"),
                ..key("apikey_4", "svc")
            }),
            None,
        ),
        (
            "service-account principal",
            None,
            Some(ApiKey {
                principal: service_actor("svac_1"),
                ..owned_key("apikey_5", "user_gone")
            }),
            None,
        ),
        (
            "null created_by and principal",
            None,
            Some(key("apikey_6", "legacy")),
            None,
        ),
        (
            "inactive key is ignored",
            None,
            Some(ApiKey {
                status: "inactive".into(),
                ..owned_key("apikey_7", "user_gone")
            }),
            None,
        ),
        (
            "archived key is ignored",
            None,
            Some(ApiKey {
                status: "archived".into(),
                ..owned_key("apikey_8", "user_gone")
            }),
            None,
        ),
        (
            "owner never seen has no known domain",
            None,
            Some(owned_key("apikey_9", "user_ghost")),
            None,
        ),
    ];
    for (name, extra_invite, extra_key, want) in rows {
        let mut case = Case::new(OrgState {
            members: members.clone(),
            invites: extra_invite.into_iter().collect(),
            api_keys: extra_key.into_iter().collect(),
            ..state()
        });
        case.rules.departed_domains.departed_domains = vec!["example.com".into()];
        let evaluation = case.eval();
        let mut want_rows = vec![
            ("departed_domains:member:user_gone", Action::RemoveMember),
            // The API cannot remove admins: the recommendation is a review.
            ("departed_domains:member:user_boss", Action::Review),
            // An unknown role is not an admin role, so removal is recommended.
            ("departed_domains:member:user_odd", Action::RemoveMember),
        ];
        want_rows.extend(want);
        assert_eq!(
            summary(&evaluation, DEPARTED_DOMAINS),
            expected(&want_rows),
            "{name}"
        );
        let boss = of(&evaluation, DEPARTED_DOMAINS)
            .into_iter()
            .find(|f| f.subject_id == "user_boss")
            .unwrap();
        assert!(
            boss.evidence.contains(
                "; with role admin this member cannot be removed through the API, \
                 so review and demote first"
            ),
            "{name}: {}",
            boss.evidence
        );
    }
}

#[test]
fn departed_domains_key_evidence_names_workspace_and_owner() {
    let mut case = Case::new(OrgState {
        members: vec![user("user_gone", "gone@example.com", "developer")],
        workspaces: vec![workspace("wrkspc_r", "Research")],
        api_keys: vec![
            owned_key("apikey_default", "user_gone"),
            ApiKey {
                workspace_id: Some("wrkspc_r".into()),
                ..owned_key("apikey_research", "user_gone")
            },
            owned_key("apikey_former", "user_left"),
        ],
        ..state()
    });
    case.former = vec![former(
        "user_left",
        "left@example.com",
        "2026-01-03T12:00:00Z",
    )];
    case.rules.departed_domains.departed_domains = vec!["example.com".into()];
    let evaluation = case.eval();
    let evidence = |id: &str| {
        of(&evaluation, DEPARTED_DOMAINS)
            .into_iter()
            .find(|f| f.subject_id == id)
            .unwrap_or_else(|| panic!("no finding for {id}"))
            .evidence
            .clone()
    };
    assert_eq!(
        evidence("apikey_default"),
        "active key created 2025-07-01 in the Default Workspace, \
            owned by member gone@example.com; email domain example.com \
            is a departed domain"
    );
    assert!(evidence("apikey_research").contains("in workspace Research (wrkspc_r)"));
    assert!(evidence("apikey_former")
        .contains("owned by former member left@example.com (last seen 2026-01-03)"));
}

// ---- offboarding_roster -------------------------------------------------------------------------

struct RosterRow {
    name: &'static str,
    csv: &'static str,
    state: OrgState,
    former: Vec<FormerMember>,
    want: &'static [(&'static str, Action)],
}

#[test]
fn offboarding_roster_table() {
    let jane = User {
        added_at: at("2025-03-01T09:00:00Z"),
        ..user("user_j", "jane@EXAMPLE.com", "developer")
    };
    let rows = vec![
        RosterRow {
            name: "last day passed: member, explicit membership and active key",
            csv: "email,last_day\nJane@Example.com,2026-01-15\n",
            state: OrgState {
                members: vec![jane.clone()],
                workspaces: vec![workspace("wrkspc_a", "Apps")],
                workspace_members: vec![membership("wrkspc_a", "user_j", "workspace_developer")],
                api_keys: vec![
                    owned_key("apikey_j", "user_j"),
                    ApiKey {
                        status: "inactive".into(),
                        ..owned_key("apikey_j_off", "user_j")
                    },
                ],
                ..state()
            },
            former: vec![],
            want: &[
                ("offboarding_roster:member:user_j", Action::RemoveMember),
                (
                    "offboarding_roster:workspace_member:wrkspc_a/user_j",
                    Action::RemoveWorkspaceMember,
                ),
                ("offboarding_roster:api_key:apikey_j", Action::DeactivateKey),
            ],
        },
        RosterRow {
            name: "last day today has not passed yet",
            csv: "email,last_day\njane@example.com,2026-02-01\n",
            state: OrgState {
                members: vec![jane.clone()],
                ..state()
            },
            former: vec![],
            want: &[],
        },
        RosterRow {
            name: "last day yesterday has passed",
            csv: "email,last_day\njane@example.com,2026-01-31\n",
            state: OrgState {
                members: vec![jane.clone()],
                ..state()
            },
            former: vec![],
            want: &[("offboarding_roster:member:user_j", Action::RemoveMember)],
        },
        RosterRow {
            name: "no last day means already gone",
            csv: "email,last_day\njane@example.com,\n",
            state: OrgState {
                members: vec![jane.clone()],
                ..state()
            },
            former: vec![],
            want: &[("offboarding_roster:member:user_j", Action::RemoveMember)],
        },
        RosterRow {
            name: "no last_day column means already gone",
            csv: "email\njane@example.com\n",
            state: OrgState {
                members: vec![jane.clone()],
                ..state()
            },
            former: vec![],
            want: &[("offboarding_roster:member:user_j", Action::RemoveMember)],
        },
        RosterRow {
            name: "re-added after the last day: a review; the earlier key is still reported",
            csv: "email,last_day\njane@example.com,2026-01-10\n",
            state: OrgState {
                members: vec![User {
                    added_at: at("2026-01-20T09:00:00Z"),
                    ..jane.clone()
                }],
                workspaces: vec![workspace("wrkspc_a", "Apps")],
                workspace_members: vec![membership("wrkspc_a", "user_j", "workspace_developer")],
                api_keys: vec![
                    owned_key("apikey_j", "user_j"),
                    ApiKey {
                        created_at: at("2026-01-22T10:00:00Z"),
                        ..owned_key("apikey_j_new", "user_j")
                    },
                ],
                ..state()
            },
            former: vec![],
            want: &[
                ("offboarding_roster:member:user_j", Action::Review),
                ("offboarding_roster:api_key:apikey_j", Action::DeactivateKey),
            ],
        },
        RosterRow {
            name: "added on the last day itself did not come back",
            csv: "email,last_day\njane@example.com,2026-01-10\n",
            state: OrgState {
                members: vec![User {
                    added_at: at("2026-01-10T09:00:00Z"),
                    ..jane.clone()
                }],
                ..state()
            },
            former: vec![],
            want: &[("offboarding_roster:member:user_j", Action::RemoveMember)],
        },
        RosterRow {
            name: "listed twice: the latest departure decides",
            csv: "email,last_day\njane@example.com,2025-01-01\njane@example.com,2026-01-10\n",
            state: OrgState {
                members: vec![jane.clone()],
                ..state()
            },
            former: vec![],
            want: &[("offboarding_roster:member:user_j", Action::RemoveMember)],
        },
        RosterRow {
            name: "an admin is recommended for review",
            csv: "email,last_day\nboss@example.com,2026-01-10\n",
            state: OrgState {
                members: vec![user("user_b", "boss@example.com", "primary_owner")],
                ..state()
            },
            former: vec![],
            want: &[("offboarding_roster:member:user_b", Action::Review)],
        },
        RosterRow {
            name: "former member: key by principal and pending invite; accepted invite ignored",
            csv: "email,last_day\nEve@Example.com,2026-01-20\n",
            state: OrgState {
                invites: vec![
                    invite(
                        "invite_p",
                        "eve@example.com",
                        "pending",
                        at("2026-01-05T10:00:00Z"),
                    ),
                    invite(
                        "invite_a",
                        "eve@example.com",
                        "accepted",
                        at("2025-01-05T10:00:00Z"),
                    ),
                ],
                api_keys: vec![ApiKey {
                    principal: user_actor("user_e"),
                    ..owned_key("apikey_e", "user_someone_else")
                }],
                ..state()
            },
            former: vec![former("user_e", "eve@example.com", "2026-01-21T00:00:00Z")],
            want: &[
                ("offboarding_roster:invite:invite_p", Action::DeleteInvite),
                ("offboarding_roster:api_key:apikey_e", Action::DeactivateKey),
            ],
        },
        RosterRow {
            name: "invite sent after the last day is a finding for review, never deleted",
            csv: "email,last_day\neve@example.com,2026-01-20\n",
            state: OrgState {
                invites: vec![invite(
                    "invite_p",
                    "eve@example.com",
                    "pending",
                    at("2026-01-25T10:00:00Z"),
                )],
                ..state()
            },
            former: vec![],
            want: &[("offboarding_roster:invite:invite_p", Action::Review)],
        },
        RosterRow {
            name: "membership in an archived workspace is skipped",
            csv: "email,last_day\njane@example.com,2026-01-15\n",
            state: OrgState {
                members: vec![jane.clone()],
                workspaces: vec![archived("wrkspc_old", "Old")],
                workspace_members: vec![membership("wrkspc_old", "user_j", "workspace_user")],
                ..state()
            },
            former: vec![],
            want: &[("offboarding_roster:member:user_j", Action::RemoveMember)],
        },
        RosterRow {
            name: "service-account key is not theirs",
            csv: "email,last_day\njane@example.com,2026-01-15\n",
            state: OrgState {
                api_keys: vec![ApiKey {
                    created_by: created_by_service("user_j"),
                    ..key("apikey_s", "svc")
                }],
                ..state()
            },
            former: vec![],
            want: &[],
        },
        RosterRow {
            name: "not on the roster",
            csv: "email,last_day\nsomeone@example.com,2026-01-15\n",
            state: OrgState {
                members: vec![jane.clone()],
                api_keys: vec![owned_key("apikey_j", "user_j")],
                ..state()
            },
            former: vec![],
            want: &[],
        },
    ];
    for row in rows {
        let entries = parse_roster(row.csv, "email", "last_day")
            .unwrap_or_else(|e| panic!("{}: {e}", row.name));
        let mut case = Case::new(row.state);
        case.former = row.former;
        case.roster = Roster::Loaded(entries);
        let evaluation = case.eval();
        assert_eq!(
            status(&evaluation, OFFBOARDING_ROSTER),
            RuleStatus::Evaluated,
            "{}",
            row.name
        );
        assert_eq!(
            summary(&evaluation, OFFBOARDING_ROSTER),
            expected(row.want),
            "{}",
            row.name
        );
    }
}

#[test]
fn offboarding_roster_re_invite_evidence_names_both_dates() {
    let mut case = Case::new(OrgState {
        invites: vec![invite(
            "invite_p",
            "eve@example.com",
            "pending",
            at("2026-01-25T10:00:00Z"),
        )],
        ..state()
    });
    case.roster = Roster::Loaded(
        parse_roster(
            "email,last_day\neve@example.com,2026-01-20\n",
            "email",
            "last_day",
        )
        .unwrap(),
    );
    let evaluation = case.eval();
    let found = of(&evaluation, OFFBOARDING_ROSTER);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].evidence,
        "re-invited on 2026-01-25, after their last day on 2026-01-20; confirm the re-hire or \
         remove the person from the roster"
    );
    assert_eq!(found[0].action, Action::Review);
}

#[test]
fn offboarding_roster_workspace_membership_carries_both_ids() {
    let mut case = Case::new(OrgState {
        members: vec![user("user_j", "Jane@Example.com", "developer")],
        workspaces: vec![workspace("wrkspc_a", "Apps")],
        workspace_members: vec![membership("wrkspc_a", "user_j", "workspace_developer")],
        ..state()
    });
    case.roster = Roster::Loaded(
        parse_roster(
            "email,last_day\n\njane@example.com,2026-01-15\n",
            "email",
            "last_day",
        )
        .unwrap(),
    );
    let evaluation = case.eval();
    let found = of(&evaluation, OFFBOARDING_ROSTER);
    let ws = found
        .iter()
        .find(|f| f.subject_kind == SubjectKind::WorkspaceMember)
        .unwrap();
    assert_eq!(ws.subject_id, "wrkspc_a/user_j");
    assert_eq!(ws.subject, "Jane@Example.com");
    assert_eq!(ws.workspace_id.as_deref(), Some("wrkspc_a"));
    assert_eq!(ws.user_id.as_deref(), Some("user_j"));
    assert_eq!(
        ws.evidence,
        "workspace_developer in workspace Apps (wrkspc_a) after their \
            last day 2026-01-15 per roster line 3"
    );
    let member = found
        .iter()
        .find(|f| f.subject_kind == SubjectKind::Member)
        .unwrap();
    assert_eq!(member.workspace_id, None);
    assert_eq!(member.user_id, None);
}

#[test]
fn offboarding_roster_status_table() {
    // (name, roster, enabled, expected status)
    let rows = vec![
        (
            "not configured",
            Roster::NotConfigured,
            true,
            RuleStatus::NotEvaluated("no roster_csv configured".into()),
        ),
        (
            "not configured but disabled",
            Roster::NotConfigured,
            false,
            RuleStatus::Disabled,
        ),
        (
            "invalid roster",
            Roster::Invalid("line 4: last_day \"2026-13-01\" is not a date YYYY-MM-DD".into()),
            true,
            RuleStatus::NotEvaluated(
                "line 4: last_day \"2026-13-01\" is not a date YYYY-MM-DD".into(),
            ),
        ),
        (
            "invalid roster, disabled",
            Roster::Invalid("bad".into()),
            false,
            RuleStatus::Disabled,
        ),
        (
            "loaded roster",
            Roster::Loaded(vec![RosterEntry {
                email: "x@corp.test".into(),
                last_day: None,
                line: 2,
            }]),
            true,
            RuleStatus::Evaluated,
        ),
    ];
    for (name, roster, enabled, want) in rows {
        // The departed member would be a roster finding; the old invite and the orphaned key
        // must be found whatever happens to the roster rule.
        let mut case = Case::new(OrgState {
            members: vec![user("user_x", "x@corp.test", "developer")],
            invites: vec![invite(
                "invite_old",
                "a@corp.test",
                "pending",
                now() - Duration::days(10),
            )],
            api_keys: vec![owned_key("apikey_o", "user_ghost")],
            ..state()
        });
        case.roster = roster;
        case.rules.offboarding_roster.enabled = enabled;
        let evaluation = case.eval();
        assert_eq!(status(&evaluation, OFFBOARDING_ROSTER), want, "{name}");
        let roster_findings = of(&evaluation, OFFBOARDING_ROSTER).len();
        let outcome = evaluation
            .rules
            .iter()
            .find(|o| o.rule == OFFBOARDING_ROSTER)
            .unwrap();
        assert_eq!(outcome.n_findings, roster_findings, "{name}");
        if want == RuleStatus::Evaluated {
            assert_eq!(roster_findings, 1, "{name}");
        } else {
            assert_eq!(roster_findings, 0, "{name}");
        }
        assert_eq!(
            of(&evaluation, STALE_INVITES).len(),
            1,
            "{name}: stale_invites still runs"
        );
        assert_eq!(
            of(&evaluation, ORPHANED_KEYS).len(),
            1,
            "{name}: orphaned_keys still runs"
        );
    }
}

#[test]
fn invalid_roster_text_flows_into_not_evaluated() {
    let error = parse_roster(
        "email,last_day\na@corp.test,2026-01-01\nb@corp.test,2026-01-02\nc@corp.test,2026-13-01\n",
        "email",
        "last_day",
    )
    .unwrap_err();
    let mut case = Case::new(OrgState {
        invites: vec![invite(
            "invite_old",
            "a@corp.test",
            "expired",
            now() - Duration::days(30),
        )],
        ..state()
    });
    case.roster = Roster::Invalid(error.to_string());
    let evaluation = case.eval();
    assert_eq!(
        status(&evaluation, OFFBOARDING_ROSTER),
        RuleStatus::NotEvaluated("line 4: last_day \"2026-13-01\" is not a date YYYY-MM-DD".into())
    );
    assert_eq!(of(&evaluation, STALE_INVITES).len(), 1);
}

// ---- parse_roster -------------------------------------------------------------------------------

#[test]
fn parse_roster_accepts_table() {
    type Want = &'static [(&'static str, Option<&'static str>, u64)];
    // (name, csv, email column, last-day column, expected entries)
    let rows: &[(&str, &str, &str, &str, Want)] = &[
        (
            "plain, lowercased, empty last day",
            "email,last_day\nJane@Example.com,2026-01-15\nbob@example.com,\n",
            "email",
            "last_day",
            &[
                ("jane@example.com", Some("2026-01-15"), 2),
                ("bob@example.com", None, 3),
            ],
        ),
        (
            "headers are matched trimmed and case-insensitively, cells are trimmed",
            "Name , Email , Last_Day\nJane , jane@example.com , 2026-01-15 \n",
            "email",
            "last_day",
            &[("jane@example.com", Some("2026-01-15"), 2)],
        ),
        (
            "byte order mark from a spreadsheet",
            "\u{feff}email,last_day\njane@example.com,2026-01-15\n",
            "email",
            "last_day",
            &[("jane@example.com", Some("2026-01-15"), 2)],
        ),
        (
            "configured column names",
            "mail,left_on\njane@example.com,2026-01-15\n",
            "mail",
            "left_on",
            &[("jane@example.com", Some("2026-01-15"), 2)],
        ),
        (
            "no last-day column",
            "email,name\njane@example.com,Jane\n",
            "email",
            "last_day",
            &[("jane@example.com", None, 2)],
        ),
        (
            "quoted comma and a multi-line quoted name keep line numbers right",
            concat!(
                "name,email,last_day\n",
                "\"Doe, Jane\",jane@example.com,2026-01-15\n",
                "\"Bob\nSmith\",bob@example.com,\n",
                "carl,carl@example.com,2026-01-01\n",
            ),
            "email",
            "last_day",
            &[
                ("jane@example.com", Some("2026-01-15"), 2),
                ("bob@example.com", None, 3),
                ("carl@example.com", Some("2026-01-01"), 5),
            ],
        ),
        ("header only", "email,last_day\n", "email", "last_day", &[]),
        (
            "blank lines and CRLF endings do not shift line numbers",
            "email,last_day\r\n\r\na@example.com,2026-01-15\r\n\nb@example.com,\r\n",
            "email",
            "last_day",
            &[
                ("a@example.com", Some("2026-01-15"), 3),
                ("b@example.com", None, 5),
            ],
        ),
        (
            "CRLF line endings",
            "email,last_day\r\njane@example.com,2026-01-15\r\n",
            "email",
            "last_day",
            &[("jane@example.com", Some("2026-01-15"), 2)],
        ),
    ];
    for (name, csv, email_column, last_day_column, want) in rows {
        let entries = parse_roster(csv, email_column, last_day_column)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let want: Vec<RosterEntry> = want
            .iter()
            .map(|(email, last_day, line)| RosterEntry {
                email: email.to_string(),
                last_day: last_day.map(date),
                line: *line,
            })
            .collect();
        assert_eq!(entries, want, "{name}");
    }
}

#[test]
fn parse_roster_rejects_table() {
    // (name, csv, expected error text)
    let rows: &[(&str, &str, &str)] = &[
        (
            "bad date names the line",
            concat!(
                "email,last_day\n",
                "a@example.com,2026-01-01\n",
                "b@example.com,2026-01-02\n",
                "c@example.com,2026-13-01\n",
            ),
            "line 4: last_day \"2026-13-01\" is not a date YYYY-MM-DD",
        ),
        (
            "bad date after blank lines in a CRLF file names the physical line",
            "email,last_day\r\na@example.com,2026-01-01\r\n\r\nb@example.com,2026-02-30\r\n",
            "line 4: last_day \"2026-02-30\" is not a date YYYY-MM-DD",
        ),
        (
            "date in another format",
            "email,last_day\na@example.com,01/02/2026\n",
            "line 2: last_day \"01/02/2026\" is not a date YYYY-MM-DD",
        ),
        (
            "date without zero padding",
            "email,last_day\na@example.com,2026-1-5\n",
            "line 2: last_day \"2026-1-5\" is not a date YYYY-MM-DD",
        ),
        (
            "missing email column names the header",
            "name,last_day\nJane,2026-01-01\n",
            "line 1: no \"email\" column in the header (found name, last_day)",
        ),
        (
            "empty text",
            "",
            "line 1: no \"email\" column in the header (the roster is empty)",
        ),
        (
            "unclosed quote swallowing the rest of the file",
            "email,last_day\n\"a@example.com,2026-01-01\nb@example.com,2026-01-02\n",
            "line 2: found 1 field(s) where the header has 2; check the quoting",
        ),
        (
            "unclosed quote in the last field",
            "email,last_day\na@example.com,\"2026-01-01\nb@example.com,2026-01-02\n",
            "line 2: a quoted field runs across lines; check for an unclosed quote",
        ),
        (
            "too many fields",
            "email,last_day\na@example.com,2026-01-01\nb@example.com,2026-01-02,extra\n",
            "line 3: found 3 field(s) where the header has 2; check the quoting",
        ),
        (
            "empty email",
            "email,last_day\n,2026-01-01\n",
            "line 2: email is empty",
        ),
        (
            "not an email",
            "email,last_day\njane,2026-01-01\n",
            "line 2: email \"jane\" is not an email address",
        ),
    ];
    for (name, csv, want) in rows {
        match parse_roster(csv, "email", "last_day") {
            Ok(entries) => panic!("{name}: parsed {entries:?}"),
            Err(error) => assert_eq!(error.to_string(), *want, "{name}"),
        }
    }
}

// ---- orphaned_keys and unattributed_keys --------------------------------------------------------

#[test]
fn orphaned_and_unattributed_keys_table() {
    let members = vec![
        user("user_here", "here@corp.test", "developer"),
        user("user_back", "back@corp.test", "developer"),
    ];
    let formers = vec![
        former("user_jane", "jane@example.com", "2025-12-20T12:00:00Z"),
        // Seen twice: the latest sighting is the one reported.
        former("user_jane", "jane@example.com", "2025-12-24T12:00:00Z"),
        // Left once and came back: present in the current members.
        former("user_back", "back@corp.test", "2025-11-01T12:00:00Z"),
    ];
    // (name, key, expected (rule, evidence); None = no finding from either rule)
    type Row = (&'static str, ApiKey, Option<(RuleId, &'static str)>);
    let rows: Vec<Row> = vec![
        (
            "creator left, known to history",
            owned_key("apikey_1", "user_jane"),
            Some((
                ORPHANED_KEYS,
                "active key created 2025-07-01 in the Default Workspace; \
                owner jane@example.com left about 39 days ago (last seen \
                2025-12-24)",
            )),
        ),
        (
            "creator never seen",
            owned_key("apikey_2", "user_ghost"),
            Some((
                ORPHANED_KEYS,
                "owner user_ghost is not a member and was never seen by \
                orgwarden",
            )),
        ),
        (
            "creator is a member",
            owned_key("apikey_3", "user_here"),
            None,
        ),
        (
            "creator left and came back",
            owned_key("apikey_4", "user_back"),
            None,
        ),
        (
            "service-account creator",
            ApiKey {
                created_by: created_by_service("svac_1"),
                ..key("apikey_5", "svc")
            },
            None,
        ),
        (
            "service-account principal wins over a departed creator",
            ApiKey {
                principal: service_actor("svac_1"),
                ..owned_key("apikey_6", "user_jane")
            },
            None,
        ),
        (
            "departed user_actor principal wins over a present creator",
            ApiKey {
                principal: user_actor("user_jane"),
                ..owned_key("apikey_7", "user_here")
            },
            Some((ORPHANED_KEYS, "owner jane@example.com left")),
        ),
        (
            "present user_actor principal wins over a departed creator",
            ApiKey {
                principal: user_actor("user_here"),
                ..owned_key("apikey_8", "user_jane")
            },
            None,
        ),
        (
            "inactive key",
            ApiKey {
                status: "inactive".into(),
                ..owned_key("apikey_9", "user_jane")
            },
            None,
        ),
        (
            "archived key",
            ApiKey {
                status: "archived".into(),
                ..owned_key("apikey_10", "user_jane")
            },
            None,
        ),
        (
            "expired key",
            ApiKey {
                status: "expired".into(),
                ..owned_key("apikey_11", "user_jane")
            },
            None,
        ),
        (
            "key in a named workspace",
            ApiKey {
                workspace_id: Some("wrkspc_r".into()),
                ..owned_key("apikey_12", "user_ghost")
            },
            Some((ORPHANED_KEYS, "in workspace Research (wrkspc_r)")),
        ),
        (
            "no principal and null created_by is unattributed",
            key("apikey_13", "legacy"),
            Some((
                UNATTRIBUTED_KEYS,
                "active key created 2025-07-01 in the Default Workspace names \
                neither a principal nor a creator",
            )),
        ),
        (
            "inactive unattributed key",
            ApiKey {
                status: "inactive".into(),
                ..key("apikey_14", "legacy")
            },
            None,
        ),
    ];
    for (name, api_key, want) in rows {
        let mut case = Case::new(OrgState {
            members: members.clone(),
            workspaces: vec![workspace("wrkspc_r", "Research")],
            api_keys: vec![api_key.clone()],
            ..state()
        });
        case.former = formers.clone();
        let evaluation = case.eval();
        let found: Vec<&Finding> = evaluation
            .findings
            .iter()
            .filter(|f| f.rule == ORPHANED_KEYS || f.rule == UNATTRIBUTED_KEYS)
            .collect();
        match want {
            None => assert!(found.is_empty(), "{name}: unexpected {found:?}"),
            Some((rule, text)) => {
                assert_eq!(found.len(), 1, "{name}: {found:?}");
                let f = found[0];
                assert_eq!(f.rule, rule, "{name}");
                assert!(
                    f.evidence.contains(text),
                    "{name}: evidence {:?}",
                    f.evidence
                );
                assert_eq!(f.subject_kind, SubjectKind::ApiKey, "{name}");
                assert_eq!(f.subject_id, api_key.id, "{name}");
                assert_eq!(f.subject, api_key.name, "{name}");
                if rule == ORPHANED_KEYS {
                    assert_eq!(f.action, Action::DeactivateKey, "{name}");
                    assert_eq!(f.severity, Severity::High, "{name}");
                } else {
                    assert_eq!(f.action, Action::Review, "{name}");
                    assert_eq!(f.severity, Severity::Low, "{name}");
                }
            }
        }
    }
}

#[test]
fn orphaned_keys_disabled_disables_unattributed_keys_too() {
    let mut case = Case::new(OrgState {
        api_keys: vec![
            owned_key("apikey_1", "user_ghost"),
            key("apikey_2", "legacy"),
        ],
        ..state()
    });
    let evaluation = case.eval();
    assert_eq!(of(&evaluation, ORPHANED_KEYS).len(), 1);
    assert_eq!(of(&evaluation, UNATTRIBUTED_KEYS).len(), 1);
    case.rules.orphaned_keys.enabled = false;
    let evaluation = case.eval();
    assert_eq!(status(&evaluation, ORPHANED_KEYS), RuleStatus::Disabled);
    assert_eq!(status(&evaluation, UNATTRIBUTED_KEYS), RuleStatus::Disabled);
    assert!(evaluation.findings.is_empty(), "{:?}", evaluation.findings);
}

// ---- excess_admins ------------------------------------------------------------------------------

#[test]
fn excess_admins_organization_table() {
    let people = |roles: &[&str]| -> Vec<User> {
        roles
            .iter()
            .enumerate()
            .map(|(i, role)| user(&format!("user_{i:02}"), &format!("p{i:02}@corp.test"), role))
            .collect()
    };
    // (name, roles, max_admins, expected evidence; None = no finding)
    let rows: Vec<(&str, Vec<User>, u32, Option<&str>)> = vec![
        (
            "at the limit",
            people(&["admin", "owner", "primary_owner", "developer"]),
            3,
            None,
        ),
        (
            "one over, every admin-like role counts",
            people(&["admin", "owner", "primary_owner", "admin", "developer"]),
            3,
            Some(
                "4 organization admins where the limit is 3: p00@corp.test \
                (admin), p01@corp.test (owner), p02@corp.test \
                (primary_owner), p03@corp.test (admin)",
            ),
        ),
        (
            "unknown and non-admin roles do not count",
            people(&[
                "admin",
                "admin",
                "galactic_overlord",
                "membership_admin",
                "billing",
                "galactic_overlord",
            ]),
            2,
            None,
        ),
        (
            "long lists are truncated",
            people(&["admin"; 13]),
            3,
            Some(
                "13 organization admins where the limit is 3: p00@corp.test \
                (admin), p01@corp.test (admin), p02@corp.test (admin), \
                p03@corp.test (admin), p04@corp.test (admin), p05@corp.test \
                (admin), p06@corp.test (admin), p07@corp.test (admin), \
                p08@corp.test (admin), p09@corp.test (admin) and 3 more",
            ),
        ),
        ("zero allowed", people(&["developer"]), 0, None),
        (
            "zero allowed, one admin",
            people(&["owner"]),
            0,
            Some("1 organization admin where the limit is 0: p00@corp.test (owner)"),
        ),
    ];
    for (name, members, max_admins, want) in rows {
        let mut case = Case::new(OrgState { members, ..state() });
        case.rules.excess_admins.max_admins = max_admins;
        let evaluation = case.eval();
        let found = of(&evaluation, EXCESS_ADMINS);
        match want {
            None => assert!(found.is_empty(), "{name}: unexpected {found:?}"),
            Some(text) => {
                assert_eq!(found.len(), 1, "{name}: {found:?}");
                let f = found[0];
                assert!(
                    f.evidence.contains(text),
                    "{name}: evidence {:?}",
                    f.evidence
                );
                assert_eq!(f.subject_kind, SubjectKind::Organization, "{name}");
                assert_eq!(f.subject_id, "org_1", "{name}");
                assert_eq!(f.subject, "Example Org", "{name}");
                assert_eq!(f.action, Action::Review, "{name}");
                assert_eq!(f.severity, Severity::Medium, "{name}");
            }
        }
    }
}

#[test]
fn excess_admins_workspace_table() {
    let members = vec![
        user("user_a", "a@corp.test", "developer"),
        user("user_b", "b@corp.test", "developer"),
        user("user_c", "c@corp.test", "user"),
        user("user_d", "d@corp.test", "galactic_overlord"),
        user("user_x", "x@corp.test", "admin"),
        user("user_y", "y@corp.test", "owner"),
    ];
    let admins = |ws: &str, users: &[&str]| -> Vec<WorkspaceMember> {
        users
            .iter()
            .map(|u| membership(ws, u, "workspace_admin"))
            .collect()
    };
    // (name, memberships, expected workspace ids with a finding)
    let rows: Vec<(&str, Vec<WorkspaceMember>, Vec<&str>)> = vec![
        (
            "three explicit admins is the limit",
            admins("wrkspc_1", &["user_a", "user_b", "user_c"]),
            vec![],
        ),
        (
            "four explicit admins, an unknown org role counts as explicit",
            admins("wrkspc_1", &["user_a", "user_b", "user_c", "user_d"]),
            vec!["wrkspc_1"],
        ),
        (
            "org admins hold workspace_admin automatically and do not count",
            admins("wrkspc_1", &["user_a", "user_b", "user_x", "user_y"]),
            vec![],
        ),
        (
            "other workspace roles do not count",
            [
                admins("wrkspc_1", &["user_a", "user_b", "user_c"]),
                vec![membership("wrkspc_1", "user_d", "workspace_developer")],
            ]
            .concat(),
            vec![],
        ),
        (
            "counted per workspace",
            [
                admins("wrkspc_1", &["user_a", "user_b"]),
                admins("wrkspc_2", &["user_c", "user_d", "user_a", "user_b"]),
            ]
            .concat(),
            vec!["wrkspc_2"],
        ),
        (
            "archived workspaces are skipped",
            admins("wrkspc_old", &["user_a", "user_b", "user_c", "user_d"]),
            vec![],
        ),
    ];
    for (name, workspace_members, want) in rows {
        let case = Case::new(OrgState {
            members: members.clone(),
            workspaces: vec![
                workspace("wrkspc_1", "One"),
                workspace("wrkspc_2", "Two"),
                archived("wrkspc_old", "Old"),
            ],
            workspace_members,
            ..state()
        });
        let evaluation = case.eval();
        let found = of(&evaluation, EXCESS_ADMINS);
        let ids: Vec<&str> = found.iter().map(|f| f.subject_id.as_str()).collect();
        assert_eq!(ids, want, "{name}");
        for f in found {
            assert_eq!(f.subject_kind, SubjectKind::Workspace, "{name}");
            assert_eq!(f.action, Action::Review, "{name}");
            assert!(
                f.evidence
                    .starts_with("4 explicit workspace_admin members in workspace "),
                "{name}: {}",
                f.evidence
            );
            assert!(
                f.evidence.contains(
                    "where the limit is 3: a@corp.test, b@corp.test, c@corp.test, d@corp.test"
                ),
                "{name}: {}",
                f.evidence
            );
        }
    }
}

// ---- privilege_escalation -----------------------------------------------------------------------

#[test]
fn privilege_escalation_table() {
    let before = OrgState {
        taken_at: at("2026-01-31T12:00:00Z"),
        members: vec![
            user("user_dev", "dev@corp.test", "developer"),
            user("user_admin", "admin@corp.test", "admin"),
            user("user_plain", "plain@corp.test", "user"),
        ],
        workspaces: vec![workspace("wrkspc_1", "One")],
        workspace_members: vec![
            membership("wrkspc_1", "user_plain", "workspace_developer"),
            membership("wrkspc_1", "user_dev", "workspace_admin"),
        ],
        ..state()
    };
    let with_members = |members: Vec<User>| OrgState {
        members,
        ..before.clone()
    };
    // (name, current state, expected (fingerprint, evidence))
    type Row = (&'static str, OrgState, Vec<(&'static str, &'static str)>);
    let rows: Vec<Row> = vec![
        (
            "nothing changed",
            OrgState {
                taken_at: now(),
                ..before.clone()
            },
            vec![],
        ),
        (
            "developer became admin",
            with_members(vec![
                user("user_dev", "dev@corp.test", "admin"),
                user("user_admin", "admin@corp.test", "admin"),
            ]),
            vec![(
                "privilege_escalation:member:user_dev",
                "role changed from developer to admin since the snapshot of \
                2026-01-31",
            )],
        ),
        (
            "a new member joined directly as owner",
            with_members(vec![
                user("user_admin", "admin@corp.test", "admin"),
                User {
                    added_at: at("2026-02-01T08:00:00Z"),
                    ..user("user_new", "new@corp.test", "owner")
                },
            ]),
            vec![(
                "privilege_escalation:member:user_new",
                "joined 2026-02-01 directly as owner, after the snapshot of \
                2026-01-31",
            )],
        ),
        (
            "admin to owner stays within admin-like roles",
            with_members(vec![user("user_admin", "admin@corp.test", "owner")]),
            vec![],
        ),
        (
            "an unknown role is not admin",
            with_members(vec![user("user_dev", "dev@corp.test", "galactic_overlord")]),
            vec![],
        ),
        (
            "user to developer is not an escalation to admin",
            with_members(vec![user("user_plain", "plain@corp.test", "developer")]),
            vec![],
        ),
        (
            "workspace_developer became workspace_admin",
            OrgState {
                workspace_members: vec![membership("wrkspc_1", "user_plain", "workspace_admin")],
                ..before.clone()
            },
            vec![(
                "privilege_escalation:workspace_member:wrkspc_1/user_plain",
                "workspace role in workspace One (wrkspc_1) changed from \
                    workspace_developer to workspace_admin since the snapshot of \
                    2026-01-31",
            )],
        ),
        (
            "a new membership created as workspace_admin",
            OrgState {
                workspaces: vec![workspace("wrkspc_1", "One"), workspace("wrkspc_2", "Two")],
                workspace_members: vec![membership("wrkspc_2", "user_plain", "workspace_admin")],
                ..before.clone()
            },
            vec![(
                "privilege_escalation:workspace_member:wrkspc_2/user_plain",
                "added to workspace Two (wrkspc_2) as workspace_admin after \
                    the snapshot of 2026-01-31",
            )],
        ),
        (
            "already workspace_admin",
            OrgState {
                workspace_members: vec![membership("wrkspc_1", "user_dev", "workspace_admin")],
                ..before.clone()
            },
            vec![],
        ),
        (
            "an org admin's workspace_admin membership is reported once, as the member",
            OrgState {
                members: vec![user("user_plain", "plain@corp.test", "admin")],
                workspace_members: vec![membership("wrkspc_1", "user_plain", "workspace_admin")],
                ..before.clone()
            },
            vec![(
                "privilege_escalation:member:user_plain",
                "role changed from user to admin",
            )],
        ),
        (
            "archived workspace",
            OrgState {
                workspaces: vec![archived("wrkspc_1", "One")],
                workspace_members: vec![membership("wrkspc_1", "user_plain", "workspace_admin")],
                ..before.clone()
            },
            vec![],
        ),
    ];
    for (name, current, want) in rows {
        let mut case = Case::new(current);
        case.previous = Some(before.clone());
        let evaluation = case.eval();
        assert_eq!(
            status(&evaluation, PRIVILEGE_ESCALATION),
            RuleStatus::Evaluated,
            "{name}"
        );
        let found = of(&evaluation, PRIVILEGE_ESCALATION);
        assert_eq!(found.len(), want.len(), "{name}: {found:?}");
        for (fingerprint, text) in want {
            let f = found
                .iter()
                .find(|f| f.fingerprint() == fingerprint)
                .unwrap_or_else(|| panic!("{name}: no {fingerprint} in {found:?}"));
            assert!(
                f.evidence.contains(text),
                "{name}: evidence {:?}",
                f.evidence
            );
            assert_eq!(f.action, Action::Review, "{name}");
            if f.subject_kind == SubjectKind::WorkspaceMember {
                assert_eq!(f.subject, "plain@corp.test", "{name}");
                assert!(
                    f.workspace_id.is_some() && f.user_id.as_deref() == Some("user_plain"),
                    "{name}"
                );
            }
        }
    }
}

#[test]
fn privilege_escalation_needs_a_previous_snapshot() {
    let case = Case::new(OrgState {
        members: vec![user("user_new", "new@corp.test", "admin")],
        invites: vec![invite(
            "invite_old",
            "a@corp.test",
            "expired",
            now() - Duration::days(30),
        )],
        ..state()
    });
    let evaluation = case.eval();
    assert_eq!(
        status(&evaluation, PRIVILEGE_ESCALATION),
        RuleStatus::NotEvaluated("needs a previous snapshot".into())
    );
    assert!(of(&evaluation, PRIVILEGE_ESCALATION).is_empty());
    assert_eq!(of(&evaluation, STALE_INVITES).len(), 1);
}

// ---- Exemptions ---------------------------------------------------------------------------------

#[test]
fn exemptions_table() {
    let subjects = OrgState {
        invites: vec![invite(
            "invite_bg",
            "Break.Glass@Corp.test",
            "expired",
            now() - Duration::days(30),
        )],
        api_keys: vec![
            ApiKey {
                name: "ci-deploy".into(),
                ..owned_key("apikey_ci", "user_jane")
            },
            ApiKey {
                name: "CI-other".into(),
                ..owned_key("apikey_other", "user_ghost")
            },
        ],
        ..state()
    };
    use ExemptionMatch::{Email, KeyId, KeyName};
    // (name, exemptions, fingerprints expected to be exempted)
    let rows: Vec<(&str, Vec<Exemption>, Vec<&str>)> = vec![
        ("none", vec![], vec![]),
        (
            "email matches an invite case-insensitively",
            vec![exemption(Email("break.glass@corp.test".into()), None)],
            vec!["stale_invites:invite:invite_bg"],
        ),
        (
            "email matches the owner of a key",
            vec![exemption(Email("JANE@example.com".into()), None)],
            vec!["orphaned_keys:api_key:apikey_ci"],
        ),
        (
            "key id",
            vec![exemption(KeyId("apikey_other".into()), None)],
            vec!["orphaned_keys:api_key:apikey_other"],
        ),
        (
            "key id does not match an invite with that id",
            vec![exemption(KeyId("invite_bg".into()), None)],
            vec![],
        ),
        (
            "key-name glob is case-sensitive",
            vec![exemption(KeyName("ci-*".into()), None)],
            vec!["orphaned_keys:api_key:apikey_ci"],
        ),
        (
            "key-name glob with ?",
            vec![exemption(KeyName("??-*".into()), None)],
            vec![
                "orphaned_keys:api_key:apikey_ci",
                "orphaned_keys:api_key:apikey_other",
            ],
        ),
        (
            "expired yesterday does not apply",
            vec![exemption(KeyId("apikey_ci".into()), Some("2026-01-31"))],
            vec![],
        ),
        (
            "the until day itself is still valid",
            vec![exemption(KeyId("apikey_ci".into()), Some("2026-02-01"))],
            vec!["orphaned_keys:api_key:apikey_ci"],
        ),
        (
            "valid until tomorrow",
            vec![exemption(
                Email("break.glass@corp.test".into()),
                Some("2026-02-02"),
            )],
            vec!["stale_invites:invite:invite_bg"],
        ),
    ];
    for (name, exemptions, want) in rows {
        let mut case = Case::new(subjects.clone());
        case.former = vec![former(
            "user_jane",
            "jane@example.com",
            "2026-01-01T00:00:00Z",
        )];
        case.exemptions = exemptions.clone();
        let evaluation = case.eval();
        // Exempted findings are annotated, never dropped.
        assert_eq!(
            evaluation.findings.len(),
            3,
            "{name}: {:?}",
            evaluation.findings
        );
        let mut exempted: Vec<String> = evaluation
            .findings
            .iter()
            .filter(|f| f.exemption.is_some())
            .map(Finding::fingerprint)
            .collect();
        exempted.sort();
        assert_eq!(exempted, want, "{name}");
        for f in evaluation.findings.iter().filter(|f| f.exemption.is_some()) {
            assert!(
                exemptions
                    .iter()
                    .any(|e| Some(&e.reason) == f.exemption.as_ref()),
                "{name}"
            );
        }
    }
}

#[test]
fn first_valid_exemption_gives_the_reason() {
    let mut case = Case::new(OrgState {
        api_keys: vec![ApiKey {
            name: "ci-deploy".into(),
            ..owned_key("apikey_ci", "user_ghost")
        }],
        ..state()
    });
    case.exemptions = vec![
        Exemption {
            matches: ExemptionMatch::KeyName("ci-*".into()),
            reason: "expired one".into(),
            until: Some(date("2026-01-01")),
        },
        Exemption {
            matches: ExemptionMatch::KeyName("ci-*".into()),
            reason: "CI deploy key, owned by platform".into(),
            until: None,
        },
        Exemption {
            matches: ExemptionMatch::KeyId("apikey_ci".into()),
            reason: "later".into(),
            until: None,
        },
    ];
    let evaluation = case.eval();
    assert_eq!(
        evaluation.findings[0].exemption.as_deref(),
        Some("CI deploy key, owned by platform")
    );
}

// ---- glob ---------------------------------------------------------------------------------------

#[test]
fn glob_table() {
    let rows: &[(&str, &str, bool)] = &[
        ("ci-*", "ci-deploy", true),
        ("ci-*", "ci-", true),
        ("ci-*", "CI-deploy", false),
        ("ci-*", "xci-deploy", false),
        ("*deploy", "ci-deploy", true),
        ("*deploy", "ci-deploy-2", false),
        ("ci-??", "ci-ab", true),
        ("ci-??", "ci-abc", false),
        ("?", "", false),
        ("?", "é", true),
        ("*", "", true),
        ("**", "anything", true),
        ("", "", true),
        ("", "a", false),
        ("a*b*c", "aXbYc", true),
        ("a*b*c", "abc", true),
        ("a*b*c", "aXbY", false),
        ("a*b", "a*b", true),
        (
            "a*a*a*a*b",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            false,
        ),
        ("prod-*-key", "prod-eu-west-key", true),
        ("prod-*-key", "prod-key", false),
    ];
    for (pattern, name, want) in rows {
        assert_eq!(glob_match(pattern, name), *want, "{pattern:?} vs {name:?}");
    }
}

// ---- Whole evaluation ---------------------------------------------------------------------------

/// A state that produces findings from every rule, with different severities.
fn busy_case() -> Case {
    let previous = OrgState {
        taken_at: at("2026-01-31T12:00:00Z"),
        members: vec![
            user("user_dev", "dev@corp.test", "developer"),
            user("user_a1", "a1@corp.test", "admin"),
            user("user_a2", "a2@corp.test", "admin"),
            user("user_a3", "a3@corp.test", "admin"),
        ],
        ..state()
    };
    let mut case = Case::new(OrgState {
        members: vec![
            user("user_dev", "dev@corp.test", "admin"),
            user("user_a1", "a1@corp.test", "admin"),
            user("user_a2", "a2@corp.test", "admin"),
            user("user_a3", "a3@corp.test", "admin"),
            user("user_old", "old@acquired.test", "developer"),
            user("user_j", "jane@corp.test", "developer"),
        ],
        invites: vec![invite(
            "invite_old",
            "z@corp.test",
            "pending",
            now() - Duration::days(10),
        )],
        api_keys: vec![
            owned_key("apikey_o", "user_ghost"),
            key("apikey_u", "legacy"),
        ],
        ..state()
    });
    case.previous = Some(previous);
    case.rules.departed_domains.departed_domains = vec!["acquired.test".into()];
    case.rules.offboarding_roster.severity = Severity::Critical;
    case.roster = Roster::Loaded(vec![RosterEntry {
        email: "jane@corp.test".into(),
        last_day: None,
        line: 2,
    }]);
    // Everyone idle since the data began, and every key too old to go without an expiry.
    case.usage = Some(usage_view());
    case.rules.key_hygiene.max_key_age_days = 1;
    // The directory: jane disabled, a1 unknown, a2 active but not assigned to the app.
    case.directories = vec![assigned(
        view(
            "idp",
            &["corp.test"],
            vec![
                person("j", "jane@corp.test", &[], disabled("SUSPENDED")),
                person("d", "dev@corp.test", &[], DirectoryStatus::Active),
                person("2", "a2@corp.test", &[], DirectoryStatus::Active),
                person("3", "a3@corp.test", &[], DirectoryStatus::Active),
            ],
        ),
        &["dev@corp.test", "a3@corp.test"],
    )];
    case
}

#[test]
fn every_rule_reports_and_findings_are_sorted() {
    let evaluation = busy_case().eval();
    let outcomes: Vec<RuleId> = evaluation.rules.iter().map(|o| o.rule).collect();
    assert_eq!(
        outcomes, RULE_IDS,
        "one outcome per rule, in RULE_IDS order"
    );
    for outcome in &evaluation.rules {
        assert_eq!(outcome.status, RuleStatus::Evaluated, "{}", outcome.rule);
        assert_eq!(
            outcome.n_findings,
            of(&evaluation, outcome.rule).len(),
            "{}",
            outcome.rule
        );
        assert!(outcome.n_findings > 0, "{} found nothing", outcome.rule);
    }
    // The unused-access rules find every idle key and member; the order of the others is
    // checked here, theirs in their own tables.
    let order: Vec<(Severity, RuleId, &str)> = evaluation
        .findings
        .iter()
        .filter(|f| !matches!(f.rule, DORMANT_KEYS | DORMANT_MEMBERS | KEY_HYGIENE))
        .map(|f| (f.severity, f.rule, f.subject.as_str()))
        .collect();
    assert_eq!(
        order,
        vec![
            (Severity::Critical, OFFBOARDING_ROSTER, "jane@corp.test"),
            (Severity::High, DEPARTED_DOMAINS, "old@acquired.test"),
            (Severity::High, DIRECTORY_DEPARTED, "jane@corp.test"),
            (Severity::High, ORPHANED_KEYS, "apikey_o-name"),
            (Severity::High, PRIVILEGE_ESCALATION, "dev@corp.test"),
            (Severity::Medium, ASSIGNMENT_DRIFT, "a2@corp.test"),
            (Severity::Medium, DIRECTORY_UNKNOWN, "a1@corp.test"),
            (Severity::Medium, DIRECTORY_UNKNOWN, "z@corp.test"),
            (Severity::Medium, EXCESS_ADMINS, "Example Org"),
            (Severity::Low, STALE_INVITES, "z@corp.test"),
            (Severity::Low, UNATTRIBUTED_KEYS, "legacy"),
        ]
    );
    for f in &evaluation.findings {
        assert!(RULE_IDS.contains(&f.rule), "{}", f.rule);
        assert_eq!(f.controls, controls_for(f.rule), "{}", f.rule);
    }
}

#[test]
fn disabled_rules_report_disabled_and_find_nothing() {
    let mut case = busy_case();
    case.rules.stale_invites.enabled = false;
    case.rules.departed_domains.enabled = false;
    case.rules.offboarding_roster.enabled = false;
    case.rules.orphaned_keys.enabled = false;
    case.rules.excess_admins.enabled = false;
    case.rules.privilege_escalation.enabled = false;
    case.rules.dormant_keys.enabled = false;
    case.rules.dormant_members.enabled = false;
    case.rules.key_hygiene.enabled = false;
    case.rules.directory_departed.enabled = false;
    case.rules.directory_unknown.enabled = false;
    case.rules.assignment_drift.enabled = false;
    let evaluation = case.eval();
    assert!(evaluation.findings.is_empty(), "{:?}", evaluation.findings);
    for outcome in &evaluation.rules {
        assert_eq!(outcome.status, RuleStatus::Disabled, "{}", outcome.rule);
        assert_eq!(outcome.n_findings, 0);
    }
}

#[test]
fn every_rule_id_has_controls() {
    for rule in RuleId::ALL {
        assert!(!controls_for(rule).is_empty(), "{rule}");
    }
    assert_eq!(
        controls_for(STALE_INVITES),
        ["SOC 2 CC6.2", "NIST 800-53 AC-2"]
    );
}

#[test]
fn fingerprints_are_stable_across_runs_and_evidence_changes() {
    let case = busy_case();
    let first: Vec<String> = case
        .eval()
        .findings
        .iter()
        .map(Finding::fingerprint)
        .collect();
    let mut later = busy_case();
    // A day later every "days ago" in the evidence changes; identities must not.
    later.now = now() + Duration::days(1);
    later.state.api_keys.reverse();
    later.state.members.reverse();
    let mut second: Vec<String> = later
        .eval()
        .findings
        .iter()
        .map(Finding::fingerprint)
        .collect();
    let mut first_sorted = first.clone();
    first_sorted.sort();
    second.sort();
    assert_eq!(first_sorted, second);
    assert!(
        first.contains(&"stale_invites:invite:invite_old".to_owned()),
        "{first:?}"
    );
    assert!(
        first.contains(&"excess_admins:organization:org_1".to_owned()),
        "{first:?}"
    );
    assert!(
        first.contains(&"unattributed_keys:api_key:apikey_u".to_owned()),
        "{first:?}"
    );
}

#[test]
fn finding_and_outcome_serialise_with_the_agreed_fields() {
    let finding = Finding {
        rule: OFFBOARDING_ROSTER,
        severity: Severity::High,
        subject_kind: SubjectKind::WorkspaceMember,
        subject_id: "wrkspc_1/user_1".into(),
        subject: "jane@corp.test".into(),
        evidence: "e".into(),
        action: Action::RemoveWorkspaceMember,
        controls: controls_for(OFFBOARDING_ROSTER),
        exemption: None,
        workspace_id: None,
        user_id: None,
    };
    let json = serde_json::to_value(&finding).unwrap();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = vec![
        "rule",
        "severity",
        "subject_kind",
        "subject_id",
        "subject",
        "evidence",
        "action",
        "controls",
    ];
    want.sort();
    let mut keys_sorted = keys.clone();
    keys_sorted.sort();
    assert_eq!(keys_sorted, want);
    assert_eq!(json["subject_kind"], "workspace_member");
    assert_eq!(json["action"], "remove_workspace_member");
    assert_eq!(json["severity"], "high");
    assert_eq!(
        finding.fingerprint(),
        "offboarding_roster:workspace_member:wrkspc_1/user_1"
    );

    let full = Finding {
        exemption: Some("why".into()),
        workspace_id: Some("wrkspc_1".into()),
        user_id: Some("user_1".into()),
        ..finding
    };
    let json = serde_json::to_value(&full).unwrap();
    assert_eq!(json["exemption"], "why");
    assert_eq!(json["workspace_id"], "wrkspc_1");
    assert_eq!(json["user_id"], "user_1");

    for (kind, text) in [
        (SubjectKind::Member, "member"),
        (SubjectKind::Invite, "invite"),
        (SubjectKind::ApiKey, "api_key"),
        (SubjectKind::Workspace, "workspace"),
        (SubjectKind::WorkspaceMember, "workspace_member"),
        (SubjectKind::Organization, "organization"),
    ] {
        assert_eq!(kind.as_str(), text);
        assert_eq!(serde_json::to_value(kind).unwrap(), text);
    }
    for (action, text) in [
        (Action::DeleteInvite, "delete_invite"),
        (Action::DeactivateKey, "deactivate_key"),
        (Action::RemoveMember, "remove_member"),
        (Action::RemoveWorkspaceMember, "remove_workspace_member"),
        (Action::Review, "review"),
    ] {
        assert_eq!(action.as_str(), text);
        assert_eq!(serde_json::to_value(action).unwrap(), text);
    }

    let outcome = RuleOutcome {
        rule: OFFBOARDING_ROSTER,
        status: RuleStatus::NotEvaluated("no roster_csv configured".into()),
        n_findings: 0,
    };
    assert_eq!(
        serde_json::to_value(&outcome).unwrap(),
        serde_json::json!({
            "rule": "offboarding_roster",
            "status": "not_evaluated",
            "reason": "no roster_csv configured",
            "n_findings": 0
        })
    );
    let outcome = RuleOutcome {
        rule: STALE_INVITES,
        status: RuleStatus::Evaluated,
        n_findings: 2,
    };
    assert_eq!(
        serde_json::to_value(&outcome).unwrap(),
        serde_json::json!({"rule": "stale_invites", "status": "evaluated", "n_findings": 2})
    );
}

/// The no-I/O invariant, checked where it can be: the policy sources must not reach for the
/// clock, the environment, files, sockets or the store.
#[test]
fn policy_sources_do_no_io() {
    let sources = [
        ("mod.rs", include_str!("mod.rs")),
        ("rules.rs", include_str!("rules.rs")),
        ("roster.rs", include_str!("roster.rs")),
        ("glob.rs", include_str!("glob.rs")),
    ];
    let forbidden = [
        "std::fs",
        "std::net",
        "std::env",
        "std::process",
        "std::time",
        "Utc::now",
        "Local::now",
        "SystemTime",
        "Instant",
        "rusqlite",
        "reqwest",
        "tokio",
        "crate::store",
        "File::",
        "from_path",
        "println!",
        "eprintln!",
        "tracing::",
    ];
    for (file, text) in sources {
        for word in forbidden {
            assert!(!text.contains(word), "src/policy/{file} mentions {word}");
        }
    }
}

#[test]
fn rule_ids_keep_their_stored_spelling() {
    for rule in RuleId::ALL {
        let json = serde_json::to_value(rule).unwrap();
        assert_eq!(json.as_str(), Some(rule.as_str()));
        assert_eq!(RuleId::parse(rule.as_str()), Some(rule));
    }
    assert_eq!(RuleId::OrphanedKeys.as_str(), "orphaned_keys");
    assert_eq!(RuleId::RemediationGuard.as_str(), "remediation_guard");
    assert_eq!(RuleId::parse("a_rule_from_a_newer_version"), None);
}

// ---- dormant_keys, dormant_members, key_hygiene -------------------------------------------------

/// Usage data from 2025-10-01 to today (`now` is 2026-02-01), with nothing used yet.
fn usage_view() -> UsageView {
    UsageView {
        covered_from: Some(date("2025-10-01")),
        covered_to: Some(date("2026-02-01")),
        ..UsageView::default()
    }
}

fn scoped(kind: &str) -> Option<KeyScope> {
    Some(KeyScope {
        kind: kind.into(),
        workspace_id: (kind == "workspace").then(|| "wrkspc_1".into()),
    })
}

/// Checks a table row's outcome: no finding when `want` is `None`, else exactly one whose
/// evidence contains `want`, returned for the row's further checks.
fn one_finding<'e>(found: &[&'e Finding], want: Option<&str>, name: &str) -> Option<&'e Finding> {
    let Some(want) = want else {
        assert!(found.is_empty(), "{name}: {found:?}");
        return None;
    };
    assert_eq!(found.len(), 1, "{name}: {found:?}");
    assert!(
        found[0].evidence.contains(want),
        "{name}: {}",
        found[0].evidence
    );
    Some(found[0])
}

#[test]
fn dormant_keys_table() {
    // max_idle_days 90: used on or after 2025-11-03 (exactly 90 days ago) is not dormant.
    let old = key("apikey_k", "build-bot");
    // (name, key, last used, expected evidence part; None = no finding)
    let rows: Vec<(&str, ApiKey, Option<&str>, Option<&str>)> = vec![
        (
            "used exactly max_idle_days ago",
            old.clone(),
            Some("2025-11-03"),
            None,
        ),
        (
            "used a day before that",
            old.clone(),
            Some("2025-11-02"),
            Some(
                "active key created 2025-07-01 in the Default Workspace; last used on \
                 2025-11-02 (91 days ago) (limit 90 days)",
            ),
        ),
        ("used today", old.clone(), Some("2026-02-01"), None),
        (
            "never used, created before the usage data begins",
            old.clone(),
            None,
            Some("not used since at least 2025-10-01, when the usage data begins (limit 90"),
        ),
        (
            "never used, created within the data and over the limit",
            ApiKey {
                created_at: at("2025-10-15T08:00:00Z"),
                ..old.clone()
            },
            None,
            Some("not used since it was created on 2025-10-15 (limit 90 days)"),
        ),
        (
            "created yesterday",
            ApiKey {
                created_at: now() - Duration::days(1),
                ..old.clone()
            },
            None,
            None,
        ),
        (
            "created exactly max_idle_days ago",
            ApiKey {
                created_at: now() - Duration::days(90),
                ..old.clone()
            },
            None,
            None,
        ),
        (
            "deactivated key",
            ApiKey {
                status: "inactive".into(),
                ..old.clone()
            },
            None,
            None,
        ),
        (
            "expired key",
            ApiKey {
                status: "expired".into(),
                ..old.clone()
            },
            None,
            None,
        ),
        (
            "active but past its expires_at",
            ApiKey {
                expires_at: Some(now() - Duration::hours(1)),
                ..old.clone()
            },
            None,
            None,
        ),
        (
            "service-account key (non-person principal)",
            ApiKey {
                principal: service_actor("svac_1"),
                ..old.clone()
            },
            None,
            Some("in the Default Workspace, a service-account key; not used since at least"),
        ),
        (
            "a person's key names its owner",
            owned_key("apikey_o", "user_a"),
            Some("2025-09-01"),
            Some("owned by member a@corp.test; last used on 2025-09-01"),
        ),
    ];
    for (name, key, last, want) in rows {
        let mut usage = usage_view();
        if let Some(last) = last {
            usage.key_last_used.insert(key.id.clone(), date(last));
        }
        let mut case = Case::new(OrgState {
            members: vec![user("user_a", "a@corp.test", "developer")],
            api_keys: vec![key.clone()],
            ..state()
        });
        case.usage = Some(usage);
        let evaluation = case.eval();
        assert_eq!(
            status(&evaluation, DORMANT_KEYS),
            RuleStatus::Evaluated,
            "{name}"
        );
        let found = of(&evaluation, DORMANT_KEYS);
        if let Some(finding) = one_finding(&found, want, name) {
            assert_eq!(finding.action, Action::DeactivateKey, "{name}");
            assert_eq!(finding.severity, Severity::Medium, "{name}");
            assert_eq!(finding.subject_id, key.id, "{name}");
            assert_eq!(finding.controls, controls_for(DORMANT_KEYS), "{name}");
        }
    }
}

#[test]
fn dormant_members_table() {
    // max_idle_days 60: active on or after 2025-12-03 (exactly 60 days ago) is not dormant.
    let ann = user("user_ann", "Ann@Corp.test", "developer");
    // (name, member, how the usage view sees them, keys, expected evidence; None = no finding)
    type Fill = fn(&mut UsageView);
    type Row = (&'static str, User, Fill, Vec<ApiKey>, Option<&'static str>);
    let rows: Vec<Row> = vec![
        (
            "active only in Claude Code (email matched lower-cased)",
            ann.clone(),
            |u| {
                u.claude_code_last_active
                    .insert("ann@corp.test".into(), date("2026-01-20"));
            },
            vec![],
            None,
        ),
        (
            "API usage attributed to the account",
            ann.clone(),
            |u| {
                u.account_last_api
                    .insert("user_ann".into(), date("2026-01-30"));
            },
            vec![],
            None,
        ),
        (
            "usage of a key they own",
            ann.clone(),
            |u| {
                u.key_last_used
                    .insert("apikey_ann".into(), date("2026-01-25"));
            },
            vec![ApiKey {
                principal: user_actor("user_ann"),
                ..key("apikey_ann", "ann's key")
            }],
            None,
        ),
        (
            "usage of their key deactivated since",
            ann.clone(),
            |u| {
                u.key_last_used
                    .insert("apikey_ann".into(), date("2026-01-25"));
            },
            vec![ApiKey {
                status: "inactive".into(),
                ..owned_key("apikey_ann", "user_ann")
            }],
            None,
        ),
        (
            "usage of someone else's key does not count",
            ann.clone(),
            |u| {
                u.key_last_used
                    .insert("apikey_bo".into(), date("2026-01-25"));
            },
            vec![owned_key("apikey_bo", "user_bo")],
            Some("not active in the API or Claude Code since at least 2025-10-01"),
        ),
        (
            "active exactly max_idle_days ago",
            ann.clone(),
            |u| {
                u.claude_code_last_active
                    .insert("ann@corp.test".into(), date("2025-12-03"));
            },
            vec![],
            None,
        ),
        (
            "active a day before that",
            ann.clone(),
            |u| {
                u.account_last_api
                    .insert("user_ann".into(), date("2025-12-02"));
            },
            vec![],
            Some(
                "member since 2025-06-01 with role developer; last active in the API or \
                 Claude Code on 2025-12-02 (61 days ago) (limit 60 days); a seat nobody uses",
            ),
        ),
        (
            "the latest of API and Claude Code counts",
            ann.clone(),
            |u| {
                u.account_last_api
                    .insert("user_ann".into(), date("2025-11-01"));
                u.claude_code_last_active
                    .insert("ann@corp.test".into(), date("2025-11-20"));
            },
            vec![],
            Some("on 2025-11-20 (73 days ago)"),
        ),
        (
            "joined within the data, never active",
            User {
                added_at: at("2025-11-01T09:00:00Z"),
                ..ann.clone()
            },
            |_| {},
            vec![],
            Some("not active in the API or Claude Code since they joined on 2025-11-01"),
        ),
        (
            "joined yesterday",
            User {
                added_at: now() - Duration::days(1),
                ..ann.clone()
            },
            |_| {},
            vec![],
            None,
        ),
    ];
    for (name, member, fill, keys, want) in rows {
        let mut usage = usage_view();
        fill(&mut usage);
        let mut case = Case::new(OrgState {
            members: vec![member.clone()],
            api_keys: keys,
            ..state()
        });
        case.usage = Some(usage);
        let evaluation = case.eval();
        let found = of(&evaluation, DORMANT_MEMBERS);
        if let Some(finding) = one_finding(&found, want, name) {
            assert_eq!(finding.action, Action::Review, "{name}");
            assert_eq!(finding.subject_kind, SubjectKind::Member, "{name}");
            assert_eq!(finding.severity, Severity::Low, "{name}");
        }
    }
}

#[test]
fn usage_rules_without_usable_data_are_not_evaluated() {
    let org = OrgState {
        members: vec![user("user_a", "a@corp.test", "developer")],
        api_keys: vec![key("apikey_1", "idle")],
        ..state()
    };
    let failed = UsageView {
        failure: Some("usage_report/messages answered 500".into()),
        ..usage_view()
    };
    let empty = UsageView::default();
    let short = UsageView {
        covered_from: Some(date("2025-12-01")),
        ..usage_view()
    };
    // (name, usage, reason of dormant_keys, reason of dormant_members)
    let rows: Vec<(&str, Option<UsageView>, String, String)> = vec![
        (
            "no usage data",
            None,
            NO_USAGE_DATA.into(),
            NO_USAGE_DATA.into(),
        ),
        (
            "the ingest failed",
            Some(failed),
            "usage data unavailable: usage_report/messages answered 500".into(),
            "usage data unavailable: usage_report/messages answered 500".into(),
        ),
        (
            "nothing ingested yet",
            Some(empty),
            NO_USAGE_DATA.into(),
            NO_USAGE_DATA.into(),
        ),
        (
            "data shorter than the window",
            Some(short),
            "usage data unavailable: it begins on 2025-12-01, and \
             rules.dormant_keys.max_idle_days = 90 needs it from 2025-11-04 (raise [usage] \
             backfill_days or wait for it to grow)"
                .into(),
            // The last 60 days begin on 2025-12-04: covered.
            String::new(),
        ),
    ];
    for (name, usage, keys_reason, members_reason) in rows {
        let mut case = Case::new(org.clone());
        case.usage = usage;
        let evaluation = case.eval();
        assert_eq!(
            status(&evaluation, DORMANT_KEYS),
            RuleStatus::NotEvaluated(keys_reason),
            "{name}"
        );
        assert!(of(&evaluation, DORMANT_KEYS).is_empty(), "{name}");
        if members_reason.is_empty() {
            assert_eq!(
                status(&evaluation, DORMANT_MEMBERS),
                RuleStatus::Evaluated,
                "{name}"
            );
        } else {
            assert_eq!(
                status(&evaluation, DORMANT_MEMBERS),
                RuleStatus::NotEvaluated(members_reason),
                "{name}"
            );
            assert!(of(&evaluation, DORMANT_MEMBERS).is_empty(), "{name}");
        }
        // key_hygiene needs no usage data.
        assert_eq!(
            status(&evaluation, KEY_HYGIENE),
            RuleStatus::Evaluated,
            "{name}"
        );
    }

    // Disabled stays disabled, with or without data.
    let mut case = Case::new(org);
    case.rules.dormant_keys.enabled = false;
    case.rules.dormant_members.enabled = false;
    let evaluation = case.eval();
    assert_eq!(status(&evaluation, DORMANT_KEYS), RuleStatus::Disabled);
    assert_eq!(status(&evaluation, DORMANT_MEMBERS), RuleStatus::Disabled);
}

#[test]
fn key_hygiene_table() {
    let old = ApiKey {
        created_at: now() - Duration::days(400),
        ..key("apikey_h", "deploy")
    };
    // (name, key, flag_org_scoped, expected evidence; None = no finding)
    let rows: Vec<(&str, ApiKey, bool, Option<&str>)> = vec![
        (
            "never expires and is older than the limit",
            old.clone(),
            false,
            Some(
                "active key created 2024-12-28 in the Default Workspace: never expires and \
                 is 400 days old (limit 365 days)",
            ),
        ),
        (
            "exactly the limit",
            ApiKey {
                created_at: now() - Duration::days(365),
                ..old.clone()
            },
            false,
            None,
        ),
        (
            "young key without expiry",
            key("apikey_y", "new"),
            false,
            None,
        ),
        (
            "old key with an expiry ahead",
            ApiKey {
                expires_at: Some(now() + Duration::days(30)),
                ..old.clone()
            },
            false,
            None,
        ),
        (
            "deactivated",
            ApiKey {
                status: "inactive".into(),
                ..old.clone()
            },
            false,
            None,
        ),
        (
            "expired",
            ApiKey {
                status: "expired".into(),
                ..old.clone()
            },
            false,
            None,
        ),
        (
            "service-account key",
            ApiKey {
                principal: service_actor("svac_1"),
                ..old.clone()
            },
            false,
            Some("never expires"),
        ),
        (
            "organization-scoped, flag off",
            ApiKey {
                scope: scoped("organization"),
                ..key("apikey_s", "org")
            },
            false,
            None,
        ),
        (
            "organization-scoped, flag on",
            ApiKey {
                scope: scoped("organization"),
                ..key("apikey_s", "org")
            },
            true,
            Some(
                "active key created 2025-07-01 in the Default Workspace: is \
                 organization-scoped, so it reaches every workspace",
            ),
        ),
        (
            "workspace-scoped, flag on",
            ApiKey {
                scope: scoped("workspace"),
                ..key("apikey_w", "ws")
            },
            true,
            None,
        ),
        (
            "unknown scope type, flag on",
            ApiKey {
                scope: scoped("galaxy"),
                ..key("apikey_g", "galaxy")
            },
            true,
            None,
        ),
        (
            "both reasons in one finding",
            ApiKey {
                scope: scoped("organization"),
                ..old.clone()
            },
            true,
            Some("(limit 365 days), and is organization-scoped"),
        ),
    ];
    for (name, key, flag, want) in rows {
        let mut case = Case::new(OrgState {
            api_keys: vec![key],
            ..state()
        });
        case.rules.key_hygiene.flag_org_scoped = flag;
        let evaluation = case.eval();
        let found = of(&evaluation, KEY_HYGIENE);
        if let Some(finding) = one_finding(&found, want, name) {
            assert_eq!(finding.action, Action::Review, "{name}");
        }
    }
}

#[test]
fn unused_access_findings_honour_exemptions() {
    let old = |id: &str, name: &str| ApiKey {
        created_at: now() - Duration::days(400),
        ..key(id, name)
    };
    let mut case = Case::new(OrgState {
        members: vec![user("user_a", "a@corp.test", "developer")],
        api_keys: vec![
            old("apikey_ci", "ci-nightly"),
            ApiKey {
                principal: user_actor("user_a"),
                ..old("apikey_a", "alice")
            },
            old("apikey_x", "other"),
        ],
        ..state()
    });
    case.usage = Some(usage_view());
    case.exemptions = vec![
        exemption(ExemptionMatch::KeyName("ci-*".into()), None),
        exemption(ExemptionMatch::Email("A@corp.test".into()), None),
        // Expired yesterday: no longer applies.
        exemption(ExemptionMatch::KeyId("apikey_x".into()), Some("2026-01-31")),
    ];
    let evaluation = case.eval();
    for rule in [DORMANT_KEYS, KEY_HYGIENE] {
        let exempted: Vec<(&str, bool)> = of(&evaluation, rule)
            .iter()
            .map(|f| (f.subject_id.as_str(), f.exemption.is_some()))
            .collect();
        let mut exempted = exempted;
        exempted.sort();
        assert_eq!(
            exempted,
            vec![("apikey_a", true), ("apikey_ci", true), ("apikey_x", false)],
            "{rule}"
        );
    }
    let members = of(&evaluation, DORMANT_MEMBERS);
    assert_eq!(members.len(), 1);
    assert!(members[0].exemption.is_some());
}

// ---- directory_departed, directory_unknown, assignment_drift ------------------------------------

fn person(id: &str, email: &str, aliases: &[&str], status: DirectoryStatus) -> DirectoryPerson {
    DirectoryPerson {
        id: id.into(),
        email: email.into(),
        aliases: aliases.iter().map(|a| (*a).to_owned()).collect(),
        status,
        status_since: None,
    }
}

fn disabled(word: &str) -> DirectoryStatus {
    DirectoryStatus::Disabled(word.into())
}

fn view(name: &str, domains: &[&str], people: Vec<DirectoryPerson>) -> DirectoryView {
    DirectoryView {
        name: name.into(),
        domains: domains.iter().map(|d| (*d).to_owned()).collect(),
        read: Ok(DirectoryRead {
            listing: DirectoryListing {
                people,
                assigned: None,
            },
            read_at: at("2026-02-01T11:00:00Z"),
            seen_since: HashMap::new(),
        }),
    }
}

fn assigned(mut view: DirectoryView, emails: &[&str]) -> DirectoryView {
    if let Ok(read) = view.read.as_mut() {
        read.listing.assigned = Some(emails.iter().map(|e| (*e).to_owned()).collect());
    }
    view
}

struct DirectoryRow {
    name: &'static str,
    directories: Vec<DirectoryView>,
    state: OrgState,
    former: Vec<FormerMember>,
    want: &'static [(&'static str, Action)],
}

#[test]
fn directory_rules_table() {
    let jane = user("user_j", "Jane@Example.com", "developer");
    let admin = user("user_a", "ada@example.com", "admin");
    let bob = user("user_b", "bob@example.com", "developer");
    let outsider = user("user_o", "olga@other.org", "developer");
    let active = || DirectoryStatus::Active;
    let company = |people| view("okta", &["example.com"], people);
    let rows = vec![
        DirectoryRow {
            name: "disabled: member, membership, invite and key; an admin gets a review",
            directories: vec![company(vec![
                person("1", "jane@example.com", &[], disabled("SUSPENDED")),
                person("2", "ada@example.com", &[], DirectoryStatus::Deleted),
                person("3", "carl@example.com", &[], disabled("DEPROVISIONED")),
                person("4", "bob@example.com", &[], active()),
            ])],
            state: OrgState {
                members: vec![jane.clone(), admin.clone(), bob.clone()],
                workspaces: vec![workspace("wrkspc_a", "Apps")],
                workspace_members: vec![membership("wrkspc_a", "user_j", "workspace_developer")],
                invites: vec![invite(
                    "invite_c",
                    "carl@example.com",
                    "pending",
                    at("2026-01-20T00:00:00Z"),
                )],
                api_keys: vec![owned_key("apikey_j", "user_j")],
                ..state()
            },
            former: vec![],
            want: &[
                ("directory_departed:member:user_j", Action::RemoveMember),
                ("directory_departed:member:user_a", Action::Review),
                (
                    "directory_departed:workspace_member:wrkspc_a/user_j",
                    Action::RemoveWorkspaceMember,
                ),
                ("directory_departed:invite:invite_c", Action::DeleteInvite),
                ("directory_departed:api_key:apikey_j", Action::DeactivateKey),
            ],
        },
        DirectoryRow {
            name: "matched by alias, case-insensitively; a former member's key too",
            directories: vec![company(vec![
                person(
                    "1",
                    "j.doe@example.com",
                    &["jane@example.com"],
                    disabled("LOCKED_OUT"),
                ),
                person("9", "gone@example.com", &[], disabled("SUSPENDED")),
                person("4", "bob@example.com", &[], active()),
            ])],
            state: OrgState {
                members: vec![jane.clone(), bob.clone()],
                api_keys: vec![owned_key("apikey_g", "user_g")],
                ..state()
            },
            former: vec![former("user_g", "gone@example.com", "2026-01-01T00:00:00Z")],
            want: &[
                ("directory_departed:member:user_j", Action::RemoveMember),
                ("directory_departed:api_key:apikey_g", Action::DeactivateKey),
            ],
        },
        DirectoryRow {
            name: "unknown: in the domain and not listed; other domains are not judged",
            directories: vec![company(vec![person("4", "bob@example.com", &[], active())])],
            state: OrgState {
                members: vec![jane.clone(), bob.clone(), outsider.clone()],
                invites: vec![invite(
                    "invite_x",
                    "xavier@example.com",
                    "pending",
                    at("2026-01-20T00:00:00Z"),
                )],
                ..state()
            },
            former: vec![],
            want: &[
                ("directory_unknown:member:user_j", Action::Review),
                ("directory_unknown:invite:invite_x", Action::Review),
            ],
        },
        DirectoryRow {
            name: "a roster (nobody active) cannot say who is unknown",
            directories: vec![view(
                "roster",
                &[],
                vec![person(
                    "jane",
                    "jane@example.com",
                    &[],
                    DirectoryStatus::Deleted,
                )],
            )],
            state: OrgState {
                members: vec![jane.clone(), bob.clone(), outsider.clone()],
                ..state()
            },
            former: vec![],
            want: &[("directory_departed:member:user_j", Action::RemoveMember)],
        },
        DirectoryRow {
            name: "a roster's last day still ahead is not a departure yet",
            directories: vec![view(
                "roster",
                &[],
                vec![DirectoryPerson {
                    status_since: Some(at("2026-02-03T00:00:00Z")),
                    ..person("jane", "jane@example.com", &[], disabled("roster"))
                }],
            )],
            state: OrgState {
                members: vec![jane.clone()],
                ..state()
            },
            former: vec![],
            want: &[],
        },
        DirectoryRow {
            name: "assignments: an unassigned member, and a removed member still assigned",
            directories: vec![assigned(
                company(vec![
                    person("1", "jane@example.com", &[], active()),
                    person("4", "bob@example.com", &[], active()),
                    person("5", "dora@example.com", &[], active()),
                ]),
                &["bob@example.com", "dora@example.com"],
            )],
            state: OrgState {
                members: vec![jane.clone(), bob.clone()],
                ..state()
            },
            former: vec![former("user_d", "dora@example.com", "2026-01-01T00:00:00Z")],
            want: &[
                ("assignment_drift:member:user_j", Action::Review),
                ("assignment_drift:member:user_d", Action::Review),
            ],
        },
        DirectoryRow {
            name: "case and spaces on either side: addresses, aliases, non-ASCII, assignments",
            directories: vec![assigned(
                company(vec![
                    person(
                        " J.Doe@Example.COM ",
                        "J.Doe@Example.COM ",
                        &[" JANE@example.com"],
                        active(),
                    ),
                    person("2", "zoë@example.com", &[], disabled("SUSPENDED")),
                    person("4", "bob@example.com", &["Robert@Example.com"], active()),
                ]),
                &[" ROBERT@example.COM "],
            )],
            state: OrgState {
                members: vec![
                    jane.clone(),
                    bob.clone(),
                    user("user_z", "ZOË@Example.com", "developer"),
                    user("user_u", " Ulla@EXAMPLE.com ", "developer"),
                ],
                invites: vec![invite(
                    "invite_j",
                    " jane@EXAMPLE.com",
                    "pending",
                    at("2026-01-20T00:00:00Z"),
                )],
                ..state()
            },
            // Someone removed under an address a member still has (in other case) is no drift.
            former: vec![former("user_d", "BOB@example.com ", "2026-01-01T00:00:00Z")],
            want: &[
                // Jane is listed (by alias) and active but not assigned; Bob is assigned by alias.
                ("assignment_drift:member:user_j", Action::Review),
                ("directory_departed:member:user_z", Action::RemoveMember),
                ("directory_unknown:member:user_u", Action::Review),
            ],
        },
        DirectoryRow {
            name: "two people share an address: the first listed speaks for it",
            directories: vec![company(vec![
                person("1", "jane@example.com", &[], active()),
                person(
                    "2",
                    "j.doe@example.com",
                    &["jane@example.com"],
                    disabled("SUSPENDED"),
                ),
                person("3", "bob@example.com", &["j.doe@example.com"], active()),
            ])],
            state: OrgState {
                members: vec![
                    jane.clone(),
                    user("user_d", "J.Doe@example.com", "developer"),
                ],
                ..state()
            },
            former: vec![],
            want: &[("directory_departed:member:user_d", Action::RemoveMember)],
        },
        DirectoryRow {
            name: "several sources: the first covering a domain (subdomains too) judges it",
            directories: vec![
                view(
                    "ldap",
                    &["corp.example.com"],
                    vec![person("k", "kim@corp.example.com", &[], active())],
                ),
                company(vec![
                    person("a", "ada@example.com", &[], active()),
                    person("1", "jane@example.com", &[], disabled("SUSPENDED")),
                    person("k", "kim@corp.example.com", &[], DirectoryStatus::Deleted),
                    person("e", "eva@eu.example.com", &[], DirectoryStatus::Deleted),
                ]),
                view(
                    "roster",
                    &[],
                    vec![
                        person("b", "bob@example.com", &[], DirectoryStatus::Deleted),
                        person("o", "olga@other.org", &[], DirectoryStatus::Deleted),
                    ],
                ),
            ],
            state: OrgState {
                members: vec![
                    jane.clone(),
                    bob.clone(),
                    outsider.clone(),
                    user("user_k", "kim@corp.example.com", "developer"),
                    user("user_e", "eva@eu.example.com", "developer"),
                    user("user_n", "nina@noexample.com", "developer"),
                ],
                ..state()
            },
            former: vec![],
            want: &[
                ("directory_departed:member:user_j", Action::RemoveMember),
                ("directory_departed:member:user_e", Action::RemoveMember),
                ("directory_departed:member:user_o", Action::RemoveMember),
                // okta lists everyone in example.com, and not bob; nina's domain is the
                // roster's (no active people: it cannot say who is unknown).
                ("directory_unknown:member:user_b", Action::Review),
            ],
        },
        DirectoryRow {
            name: "a source not evaluated judges none of its domains, later sources neither",
            directories: vec![
                DirectoryView {
                    name: "okta".into(),
                    domains: vec!["example.com".into()],
                    read: Err("not read yet".into()),
                },
                assigned(
                    view(
                        "roster",
                        &[],
                        vec![
                            person("j", "jane@example.com", &[], DirectoryStatus::Deleted),
                            person("o", "olga@other.org", &[], active()),
                        ],
                    ),
                    &[],
                ),
            ],
            state: OrgState {
                members: vec![jane.clone(), outsider.clone()],
                ..state()
            },
            former: vec![],
            want: &[("assignment_drift:member:user_o", Action::Review)],
        },
    ];
    for row in rows {
        let case = Case {
            former: row.former,
            directories: row.directories,
            ..Case::new(row.state)
        };
        let evaluation = case.eval();
        let mut got: Vec<(String, Action)> = evaluation
            .findings
            .iter()
            .filter(|f| {
                matches!(
                    f.rule,
                    RuleId::DirectoryDeparted | RuleId::DirectoryUnknown | RuleId::AssignmentDrift
                )
            })
            .map(|f| (f.fingerprint(), f.action))
            .collect();
        let mut want: Vec<(String, Action)> = row
            .want
            .iter()
            .map(|(f, a)| ((*f).to_owned(), *a))
            .collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "{}", row.name);
    }
}

#[test]
fn directory_evidence_says_which_directory_and_since_when() {
    let mut dir = view(
        "okta",
        &["example.com"],
        vec![
            DirectoryPerson {
                status_since: Some(at("2026-01-10T08:00:00Z")),
                ..person("1", "jane@example.com", &[], disabled("SUSPENDED"))
            },
            person("2", "bob@example.com", &[], DirectoryStatus::Deleted),
        ],
    );
    if let Ok(read) = dir.read.as_mut() {
        read.seen_since
            .insert("2".into(), at("2026-01-20T08:00:00Z"));
    }
    let case = Case {
        directories: vec![dir],
        ..Case::new(OrgState {
            members: vec![
                user("user_j", "jane@example.com", "developer"),
                user("user_b", "bob@example.com", "developer"),
            ],
            ..state()
        })
    };
    let evaluation = case.eval();
    let evidence = |id: &str| {
        evaluation
            .findings
            .iter()
            .find(|f| f.rule == RuleId::DirectoryDeparted && f.subject_id == id)
            .map(|f| f.evidence.clone())
            .unwrap()
    };
    assert!(
        evidence("user_j").contains("disabled in directory okta (SUSPENDED) on 2026-01-10"),
        "{}",
        evidence("user_j")
    );
    assert!(
        evidence("user_b")
            .contains("deleted from directory okta (so since orgwarden's read of 2026-01-20)"),
        "{}",
        evidence("user_b")
    );
}

#[test]
fn a_failed_source_leaves_its_rules_not_evaluated_and_the_others_report() {
    let failing = DirectoryView {
        name: "ldap".into(),
        domains: vec!["corp.example".into()],
        read: Err("connection refused".into()),
    };
    let working = view(
        "okta",
        &["example.com"],
        vec![person("1", "jane@example.com", &[], disabled("SUSPENDED"))],
    );
    let case = Case {
        directories: vec![failing, working],
        ..Case::new(OrgState {
            members: vec![
                user("user_j", "jane@example.com", "developer"),
                user("user_k", "kim@corp.example", "developer"),
            ],
            ..state()
        })
    };
    let evaluation = case.eval();
    let outcome = |rule: RuleId| {
        evaluation
            .rules
            .iter()
            .find(|o| o.rule == rule)
            .unwrap()
            .status
            .clone()
    };
    for rule in [RuleId::DirectoryDeparted, RuleId::DirectoryUnknown] {
        let reason = outcome(rule).reason().unwrap_or_default().to_owned();
        assert!(
            reason.contains("directory ldap (corp.example): connection refused"),
            "{reason}"
        );
    }
    // Nothing is said of kim (her directory is down), jane is still reported.
    let ids: Vec<&str> = evaluation
        .findings
        .iter()
        .filter(|f| f.rule == RuleId::DirectoryDeparted || f.rule == RuleId::DirectoryUnknown)
        .map(|f| f.subject_id.as_str())
        .collect();
    assert_eq!(ids, vec!["user_j"]);
    // No source configured: a choice, not a failure.
    let none = Case::new(state()).eval();
    assert_eq!(
        none.rules
            .iter()
            .find(|o| o.rule == RuleId::DirectoryDeparted)
            .unwrap()
            .status,
        RuleStatus::NotEvaluated(DIRECTORIES_NOT_CONFIGURED.into())
    );
}

#[test]
fn outcomes_come_one_per_rule_in_the_order_of_rule_ids_whichever_thread_ran_them() {
    let evaluation = Case::new(state()).eval();
    let order: Vec<RuleId> = evaluation.rules.iter().map(|o| o.rule).collect();
    let expected: Vec<RuleId> = RuleId::ALL
        .into_iter()
        .filter(|r| *r != RuleId::RemediationGuard)
        .collect();
    assert_eq!(order, expected);
    // Findings come in reading order, the same on every run.
    assert_eq!(
        evaluation.findings,
        Case::new(state()).eval().findings,
        "evaluation is deterministic"
    );
}
