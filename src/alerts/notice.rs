//! Owner notices (`[alerts.owner_notice]`): who is told, before remediation acts on a key, that
//! it will. Pure: the jobs hand over the plan, the snapshot, the findings and the emails the
//! history knows; the store records what was sent and the mail outbox sends it.
//!
//! A notice goes out for an action on an API key that waits only for its grace period (every
//! guard but `grace` and `mode` passes, `eligible_at` is in the future) when the mode would act
//! (`enforce`, or `dry-run`, said in the text). Its recipient is the key's owner (the principal
//! or the creator, by [`crate::org::ApiKey::owner`]) at their current email, or the last one the
//! history knows for a departed owner; without an email there is no notice. Invites get none:
//! the Admin API does not say who sent one. Memberships (an admin's own included) get none.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::config::RemediationMode;
use crate::org::{KeyOwner, OrgState};
use crate::policy::{Action, FindingRecord, SubjectKind};
use crate::remediate::{Guard, Plan};

/// One notice to one owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerNotice {
    /// The finding occurrence: one notice per occurrence.
    pub dedup_key: String,
    pub recipient: String,
    pub action: Action,
    pub subject_kind: SubjectKind,
    pub subject_id: String,
    pub subject: String,
    pub rule: String,
    pub fingerprint: String,
    pub eligible_at: DateTime<Utc>,
    /// The finding's evidence: why the action is due.
    pub reason: String,
    /// `remediation.mode = "dry-run"`: nothing will actually be done.
    pub dry_run: bool,
}

/// The notices `plan` calls for at `now`. `findings` are the audit's findings (for the
/// evidence and first sighting); `history_emails` the last known email of every member id.
pub fn owner_notices(
    plan: &Plan,
    state: &OrgState,
    findings: &[FindingRecord],
    history_emails: &HashMap<String, String>,
    now: DateTime<Utc>,
) -> Vec<OwnerNotice> {
    let dry_run = match plan.mode {
        RemediationMode::Enforce => false,
        RemediationMode::DryRun => true,
        RemediationMode::Off => return Vec::new(),
    };
    let mut notices = Vec::new();
    for action in &plan.actions {
        if action.eligible || action.eligible_at <= now {
            continue;
        }
        if action.subject_kind != SubjectKind::ApiKey {
            continue;
        }
        let waits_for_grace = action
            .verdicts
            .iter()
            .any(|v| v.guard == Guard::Grace && !v.pass);
        let only_grace = action
            .verdicts
            .iter()
            .all(|v| v.pass || v.guard == Guard::Grace || v.guard == Guard::Mode);
        if !waits_for_grace || !only_grace {
            continue;
        }
        let Some(finding) = findings.iter().find(|f| f.fingerprint() == action.finding) else {
            continue;
        };
        let Some(key) = state.api_keys.iter().find(|k| k.id == action.subject_id) else {
            continue;
        };
        let KeyOwner::User(owner) = key.owner() else {
            continue;
        };
        let email = state
            .members
            .iter()
            .find(|m| m.id == owner)
            .map(|m| m.email.clone())
            .or_else(|| history_emails.get(owner).cloned());
        let Some(recipient) = email.filter(|e| !e.trim().is_empty()) else {
            continue;
        };
        notices.push(OwnerNotice {
            dedup_key: format!(
                "notice:{}:{}",
                action.finding,
                crate::org::ts(&finding.first_seen)
            ),
            recipient,
            action: action.action,
            subject_kind: action.subject_kind,
            subject_id: action.subject_id.clone(),
            subject: action.subject.clone(),
            rule: action.rule.as_str().to_owned(),
            fingerprint: action.finding.clone(),
            eligible_at: action.eligible_at,
            reason: finding.evidence.clone(),
            dry_run,
        });
    }
    notices
}

/// What an action does, in words.
fn doing(action: Action) -> &'static str {
    match action {
        Action::DeactivateKey => "deactivate the API key",
        Action::DeleteInvite => "delete the invite",
        Action::RemoveMember => "remove the member",
        Action::RemoveWorkspaceMember => "remove the workspace membership",
        Action::Review | Action::AcceptBaseline => "act on",
    }
}

/// The subject and text of a notice; `contact` says how to ask for an exemption.
pub fn render_notice(notice: &OwnerNotice, organization: &str, contact: &str) -> (String, String) {
    let when = notice.eligible_at.format("%Y-%m-%d %H:%M UTC");
    let subject = format!(
        "orgwarden: {} will {} {:?} on {when}",
        organization,
        doing(notice.action),
        notice.subject
    );
    let mut text = format!(
        "orgwarden will {} {:?} ({}) in organization {organization} on {when} or soon after.\n\n\
         Reason: {}\n(rule {})\n\n\
         If it is still needed, ask for an exemption before then: {contact}\n",
        doing(notice.action),
        notice.subject,
        notice.subject_id,
        notice.reason,
        notice.rule,
    );
    if notice.dry_run {
        text.push_str(
            "\nRemediation runs as a dry run: nothing will actually be changed, the action will \
             only be reported.\n",
        );
    }
    (subject, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Severity;
    use crate::org::{Actor, ApiKey, ApiKeyStatus, OrgRole, Organization, User};
    use crate::policy::{FindingStatus, DEPARTED_DOMAINS};
    use crate::remediate::{PlannedAction, Verdict};
    use chrono::TimeZone;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 12, 0, 0).unwrap()
    }

    fn key(id: &str, creator: &str) -> ApiKey {
        ApiKey {
            id: id.into(),
            name: format!("{id}-name"),
            workspace_id: None,
            created_at: now(),
            created_by: Some(Actor {
                id: creator.into(),
                kind: "user".into(),
            }),
            partial_key_hint: None,
            status: ApiKeyStatus::Active,
            expires_at: None,
            principal: None,
            scope: None,
        }
    }

    fn state() -> OrgState {
        OrgState {
            run_id: 1,
            taken_at: now(),
            organization: Organization {
                id: "org".into(),
                name: "Acme".into(),
            },
            members: vec![User {
                id: "user_here".into(),
                email: "here@example.com".into(),
                name: "Here".into(),
                role: OrgRole::User,
                added_at: now(),
            }],
            invites: Vec::new(),
            workspaces: Vec::new(),
            workspace_members: Vec::new(),
            api_keys: vec![
                key("key_here", "user_here"),
                key("key_gone", "user_gone"),
                key("key_unknown", "user_unknown"),
            ],
        }
    }

    fn finding(kind: SubjectKind, id: &str) -> FindingRecord {
        FindingRecord {
            rule: DEPARTED_DOMAINS.as_str().into(),
            severity: Severity::High,
            subject_kind: kind,
            subject_id: id.into(),
            subject: id.into(),
            evidence: format!("evidence of {id}"),
            action: Action::DeactivateKey,
            status: FindingStatus::New,
            first_seen: now(),
            last_seen: now(),
            resolved_at: None,
            controls: Vec::new(),
        }
    }

    fn action(kind: SubjectKind, id: &str, failing: &[Guard], hours: i64) -> PlannedAction {
        let verdicts = [Guard::Mode, Guard::Admin, Guard::Exemption, Guard::Grace]
            .into_iter()
            .map(|guard| Verdict {
                guard,
                pass: !failing.contains(&guard),
                detail: String::new(),
            })
            .collect();
        PlannedAction {
            action: Action::DeactivateKey,
            subject_kind: kind,
            subject_id: id.into(),
            subject: id.into(),
            rule: DEPARTED_DOMAINS,
            finding: finding(kind, id).fingerprint(),
            workspace_id: None,
            user_id: None,
            eligible: failing.is_empty(),
            eligible_at: now() + chrono::Duration::hours(hours),
            verdicts,
        }
    }

    /// (mode, subject kind, id, failing guards, hours to eligible_at, expected recipient)
    type Row = (
        RemediationMode,
        SubjectKind,
        &'static str,
        &'static [Guard],
        i64,
        Option<&'static str>,
    );

    #[test]
    fn who_gets_which_notice() {
        use Guard::*;
        use SubjectKind::{ApiKey as K, Invite as I, Member as M};
        let history: HashMap<String, String> =
            [("user_gone".to_owned(), "gone@example.com".to_owned())].into();
        // (mode, subject kind, id, failing guards, hours to eligible_at, expected recipient)
        let table: &[Row] = &[
            (
                RemediationMode::Enforce,
                K,
                "key_here",
                &[Grace],
                24,
                Some("here@example.com"),
            ),
            (
                RemediationMode::Enforce,
                K,
                "key_gone",
                &[Grace],
                24,
                Some("gone@example.com"),
            ),
            (
                RemediationMode::Enforce,
                K,
                "key_unknown",
                &[Grace],
                24,
                None,
            ),
            (
                RemediationMode::DryRun,
                K,
                "key_here",
                &[Grace, Mode],
                24,
                Some("here@example.com"),
            ),
            (
                RemediationMode::Off,
                K,
                "key_here",
                &[Grace, Mode],
                24,
                None,
            ),
            (RemediationMode::Enforce, K, "key_here", &[], -1, None),
            (
                RemediationMode::Enforce,
                K,
                "key_here",
                &[Grace, Exemption],
                24,
                None,
            ),
            (
                RemediationMode::Enforce,
                K,
                "key_here",
                &[Grace, Admin],
                24,
                None,
            ),
            (RemediationMode::Enforce, I, "inv_1", &[Grace], 24, None),
            (RemediationMode::Enforce, M, "user_here", &[Grace], 24, None),
        ];
        for (row, (mode, kind, id, failing, hours, expected)) in table.iter().enumerate() {
            let plan = Plan {
                run_id: 1,
                mode: *mode,
                actions: vec![action(*kind, id, failing, *hours)],
                guard_findings: Vec::new(),
                suspended: None,
            };
            let notices = owner_notices(&plan, &state(), &[finding(*kind, id)], &history, now());
            let got: Vec<&str> = notices.iter().map(|n| n.recipient.as_str()).collect();
            assert_eq!(
                got,
                expected.iter().copied().collect::<Vec<_>>(),
                "row {row}"
            );
            if let Some(notice) = notices.first() {
                assert_eq!(
                    notice.dry_run,
                    *mode == RemediationMode::DryRun,
                    "row {row}"
                );
                let (subject, text) = render_notice(notice, "Acme", "ask sec@example.com");
                assert!(subject.contains(id), "row {row}: {subject}");
                assert!(text.contains("2026-03-03 12:00 UTC"), "row {row}: {text}");
                assert!(text.contains(&format!("evidence of {id}")), "row {row}");
                assert!(text.contains("ask sec@example.com"), "row {row}");
                assert_eq!(text.contains("dry run"), notice.dry_run, "row {row}");
            }
        }
    }
}
