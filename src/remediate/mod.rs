//! Remediation: which recommended actions may be carried out, and carrying them out.
//!
//! [`plan`] is pure (no I/O, no clock): from the audited findings, the snapshot, the previous
//! snapshot's counts and the configuration it decides, for every action a finding recommends,
//! each guard's verdict. [`execute`] does the calls, each one re-reading its object first and
//! leaving an audit trail row `planned` → `succeeded` | `failed` | `skipped`.
//!
//! Guards (all must pass for an action to run):
//! - `mode`: `remediation.mode` is `enforce` (in `dry-run` the plan is only printed);
//! - `opt_in`: the rule opted in to this kind of action (`remediate`, `remove_members`);
//! - `exemption`: no `[[exemptions]]` entry covers the finding;
//! - `already_done`: no earlier action on this finding succeeded;
//! - `admin`: org admins are never removed (the API forbids it; a person must look);
//! - `deletable`: only pending invites are deleted (the API refuses the others; an expired
//!   invite can no longer be accepted, so it stays a report-only finding);
//! - `snapshot_age`: the snapshot is no older than `max_snapshot_age`;
//! - `grace`: the finding was seen in at least `min_consecutive_snapshots` snapshots;
//! - `population_drop`: members or keys did not drop by more than `max_population_drop` since
//!   the previous complete snapshot (else nothing runs at all this time);
//!
//! In `enforce`, a tripped population-drop or blast-radius guard also raises a critical
//! `remediation_guard` finding; in `dry-run` the plan's verdicts show it and nothing is raised.
//! - `blast_radius`: the eligible actions of one kind are at most `max_actions_per_run` and at
//!   most `max_fraction` of that kind's population (at least one is always allowed), else none
//!   of that kind runs;
//! - `recheck` (at execution): the object, read again right before the call, is unchanged.

mod execute;
pub mod mode;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::{Config, RemediationMode, Severity};
use crate::policy::{
    self, Action, Finding, SubjectKind, DEPARTED_DOMAINS, OFFBOARDING_ROSTER, ORPHANED_KEYS,
    STALE_INVITES,
};
use crate::snapshot::OrgState;
use crate::store::Counts;

pub use execute::{execute, reconcile, Executed};

/// One guard's verdict on one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub guard: &'static str,
    pub pass: bool,
    pub detail: String,
}

/// An action a finding recommends, with every guard's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedAction {
    pub action: Action,
    pub subject_kind: SubjectKind,
    pub subject_id: String,
    pub subject: String,
    pub rule: &'static str,
    /// The fingerprint of the finding behind the action.
    pub finding: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// True when every guard passed: `execute` will make the call.
    pub eligible: bool,
    pub verdicts: Vec<Verdict>,
}

impl PlannedAction {
    /// The names of every guard that failed, comma-separated (empty when eligible).
    pub fn failing_guards(&self) -> String {
        self.verdicts
            .iter()
            .filter(|v| !v.pass)
            .map(|v| v.guard)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The first guard that failed, as `guard: detail`.
    pub fn blocked_by(&self) -> Option<String> {
        self.verdicts
            .iter()
            .find(|v| !v.pass)
            .map(|v| format!("{}: {}", v.guard, v.detail))
    }
}

/// The result of [`plan`].
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub run_id: i64,
    pub mode: RemediationMode,
    pub actions: Vec<PlannedAction>,
    /// Critical findings raised by tripped guards (blast radius, population drop).
    pub guard_findings: Vec<Finding>,
}

impl Plan {
    pub fn eligible(&self) -> impl Iterator<Item = &PlannedAction> {
        self.actions.iter().filter(|a| a.eligible)
    }
}

/// Everything the plan depends on.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub config: &'a Config,
    pub state: &'a OrgState,
    /// Counts of the previous complete snapshot, for the population-drop guard.
    pub previous: Option<Counts>,
    /// The audited findings of `state` (exemptions already applied).
    pub findings: &'a [Finding],
    /// Audited snapshots in a row that showed each finding, by fingerprint.
    pub streaks: &'a HashMap<String, u32>,
    /// (fingerprint, action) pairs already carried out successfully.
    pub done: &'a HashSet<(String, Action)>,
    pub now: DateTime<Utc>,
}

/// The action kinds a rule may carry out, given its opt-ins.
fn opted_in(config: &Config, rule: &str, action: Action) -> Result<(), String> {
    let r = &config.rules;
    let (remediate, remove_members, allowed): (bool, bool, &[Action]) = match rule {
        STALE_INVITES => (r.stale_invites.remediate, false, &[Action::DeleteInvite]),
        DEPARTED_DOMAINS => (
            r.departed_domains.remediate,
            r.departed_domains.remove_members,
            &[Action::DeleteInvite, Action::DeactivateKey],
        ),
        OFFBOARDING_ROSTER => (
            r.offboarding_roster.remediate,
            r.offboarding_roster.remove_members,
            &[
                Action::DeleteInvite,
                Action::DeactivateKey,
                Action::RemoveWorkspaceMember,
            ],
        ),
        ORPHANED_KEYS => (r.orphaned_keys.remediate, false, &[Action::DeactivateKey]),
        _ => return Err(format!("{rule} findings are report-only")),
    };
    if action == Action::RemoveMember {
        return if remove_members {
            Ok(())
        } else if matches!(rule, DEPARTED_DOMAINS | OFFBOARDING_ROSTER) {
            Err(format!(
                "removing members needs rules.{rule}.remove_members = true"
            ))
        } else {
            Err(format!("{rule} never removes members"))
        };
    }
    if !allowed.contains(&action) {
        return Err(format!("{rule} does not {}", action.as_str()));
    }
    if remediate {
        Ok(())
    } else {
        Err(format!("rules.{rule}.remediate is false"))
    }
}

fn kind_population(state: &OrgState, action: Action) -> usize {
    match action {
        Action::DeleteInvite => state.invites.len(),
        Action::DeactivateKey => state
            .api_keys
            .iter()
            .filter(|k| k.status == crate::admin_api::models::ApiKeyStatus::Active)
            .count(),
        Action::RemoveMember => state.members.len(),
        Action::RemoveWorkspaceMember => state.workspace_members.len(),
        Action::Review => 0,
    }
}

fn drop_fraction(before: u64, after: u64) -> f64 {
    if before == 0 || after >= before {
        0.0
    } else {
        (before - after) as f64 / before as f64
    }
}

fn guard_finding(state: &OrgState, subject_id: String, evidence: String) -> Finding {
    Finding {
        rule: policy::REMEDIATION_GUARD,
        severity: Severity::Critical,
        subject_kind: SubjectKind::Organization,
        subject_id,
        subject: state.organization.name.clone(),
        evidence,
        action: Action::Review,
        controls: policy::controls_for(policy::REMEDIATION_GUARD),
        exemption: None,
        workspace_id: None,
        user_id: None,
    }
}

/// Decides, for every action the findings recommend, whether it may run.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let rc = &input.config.remediation;
    let state = input.state;
    let mut guard_findings = Vec::new();

    // Run-wide guards.
    let age = input.now - state.taken_at;
    let max_age = chrono::Duration::from_std(rc.max_snapshot_age).unwrap_or(chrono::Duration::MAX);
    let age_verdict = Verdict {
        guard: "snapshot_age",
        pass: age <= max_age,
        detail: format!(
            "snapshot {} taken {} min ago (limit {} min)",
            state.run_id,
            age.num_minutes(),
            max_age.num_minutes()
        ),
    };
    let drop_verdict = match input.previous {
        None => Verdict {
            guard: "population_drop",
            pass: true,
            detail: "no previous snapshot to compare".to_owned(),
        },
        Some(before) => {
            let after = state.counts();
            let members = drop_fraction(before.members, after.members);
            let keys = drop_fraction(before.api_keys, after.api_keys);
            let worst = members.max(keys);
            let pass = worst <= rc.max_population_drop;
            let detail = format!(
                "members {} → {}, API keys {} → {} (limit {:.0}% drop)",
                before.members,
                after.members,
                before.api_keys,
                after.api_keys,
                rc.max_population_drop * 100.0
            );
            if !pass {
                guard_findings.push(guard_finding(
                    state,
                    "population_drop".to_owned(),
                    format!(
                        "enforcement suspended for snapshot {}: {detail}; a snapshot this different from the last is more likely an API problem than real departures",
                        state.run_id
                    ),
                ));
            }
            Verdict {
                guard: "population_drop",
                pass,
                detail,
            }
        }
    };

    let mut actions = Vec::new();
    for finding in input.findings {
        {
            let action = finding.action;
            if action == Action::Review {
                continue;
            }
            let fingerprint = finding.fingerprint();
            let mut verdicts = vec![Verdict {
                guard: "mode",
                pass: rc.mode == RemediationMode::Enforce,
                detail: format!("remediation.mode = {}", rc.mode.as_str()),
            }];
            let opt = opted_in(input.config, finding.rule, action);
            verdicts.push(Verdict {
                guard: "opt_in",
                pass: opt.is_ok(),
                detail: opt.err().unwrap_or_else(|| "enabled".to_owned()),
            });
            verdicts.push(Verdict {
                guard: "exemption",
                pass: finding.exemption.is_none(),
                detail: finding
                    .exemption
                    .clone()
                    .map_or("none".to_owned(), |r| format!("exempted: {r}")),
            });
            let done = input.done.contains(&(fingerprint.clone(), action));
            verdicts.push(Verdict {
                guard: "already_done",
                pass: !done,
                detail: if done {
                    "an earlier run already did this".to_owned()
                } else {
                    "not yet done".to_owned()
                },
            });
            if action == Action::RemoveMember {
                let admin = state
                    .members
                    .iter()
                    .find(|m| m.id == finding.subject_id)
                    .is_some_and(|m| m.role.is_admin());
                verdicts.push(Verdict {
                    guard: "admin",
                    pass: !admin,
                    detail: if admin {
                        "an admin cannot be removed through the API; a person must do it".to_owned()
                    } else {
                        "not an admin".to_owned()
                    },
                });
            }
            if action == Action::DeleteInvite {
                let status = state
                    .invites
                    .iter()
                    .find(|i| i.id == finding.subject_id)
                    .map(|i| i.status.clone());
                let pending = status == Some(crate::admin_api::models::InviteStatus::Pending);
                verdicts.push(Verdict {
                    guard: "deletable",
                    pass: pending,
                    detail: match status {
                        Some(_) if pending => "pending".to_owned(),
                        Some(status) => format!(
                            "the API deletes only pending invites; this one is {status} and can no longer be accepted"
                        ),
                        None => "not in the snapshot".to_owned(),
                    },
                });
            }
            verdicts.push(age_verdict.clone());
            let seen = input.streaks.get(&fingerprint).copied().unwrap_or(0);
            verdicts.push(Verdict {
                guard: "grace",
                pass: seen >= rc.min_consecutive_snapshots,
                detail: format!(
                    "seen in {seen} consecutive snapshots (need {})",
                    rc.min_consecutive_snapshots
                ),
            });
            verdicts.push(drop_verdict.clone());
            actions.push(PlannedAction {
                action,
                subject_kind: finding.subject_kind,
                subject_id: finding.subject_id.clone(),
                subject: finding.subject.clone(),
                rule: finding.rule,
                finding: fingerprint,
                workspace_id: finding.workspace_id.clone(),
                user_id: finding.user_id.clone(),
                eligible: false,
                verdicts,
            });
        }
    }

    // The same object can be the subject of several findings (a departed person's key can be
    // both orphaned and on the roster): one call is enough.
    let mut seen_calls = HashSet::new();
    for action in &mut actions {
        let call = (action.action, action.subject_id.clone());
        // Judged as enforcement would, so a dry run shows the same plan.
        let passes = action
            .verdicts
            .iter()
            .filter(|v| v.guard != "mode")
            .all(|v| v.pass);
        if passes && !seen_calls.insert(call) {
            action.verdicts.push(Verdict {
                guard: "duplicate",
                pass: false,
                detail: "the same call is planned for another finding".to_owned(),
            });
        }
    }

    // Blast radius, per kind, over what would otherwise run. Counted in every mode, so a dry
    // run shows what enforcement would do.
    let mut per_kind: HashMap<Action, usize> = HashMap::new();
    for action in &actions {
        let passes = action
            .verdicts
            .iter()
            .filter(|v| v.guard != "mode")
            .all(|v| v.pass);
        if passes {
            *per_kind.entry(action.action).or_default() += 1;
        }
    }
    let mut tripped: HashMap<Action, String> = HashMap::new();
    let mut kinds: Vec<_> = per_kind.into_iter().collect();
    kinds.sort();
    for (kind, n) in kinds {
        let population = kind_population(state, kind);
        let fraction_limit = ((rc.max_fraction * population as f64).floor() as usize).max(1);
        let limit = fraction_limit.min(rc.max_actions_per_run as usize);
        if n > limit {
            let detail = format!(
                "{n} {} actions planned; limit {limit} (max_actions_per_run {}, max_fraction {} of {population})",
                kind.as_str(),
                rc.max_actions_per_run,
                rc.max_fraction
            );
            guard_findings.push(guard_finding(
                state,
                format!("blast_radius:{}", kind.as_str()),
                format!(
                    "blast-radius guard tripped: {detail}; no {} action ran",
                    kind.as_str()
                ),
            ));
            tripped.insert(kind, detail);
        }
    }
    for action in &mut actions {
        let verdict = match tripped.get(&action.action) {
            Some(detail) => Verdict {
                guard: "blast_radius",
                pass: false,
                detail: detail.clone(),
            },
            None => Verdict {
                guard: "blast_radius",
                pass: true,
                detail: "within limits".to_owned(),
            },
        };
        action.verdicts.push(verdict);
        action.eligible = action.verdicts.iter().all(|v| v.pass);
    }

    // A guard finding says "enforcement was stopped"; without enforcement there is nothing to
    // stop, and the verdicts in the plan already show what would have tripped.
    if rc.mode != RemediationMode::Enforce {
        guard_findings.clear();
    }
    Plan {
        run_id: state.run_id,
        mode: rc.mode,
        actions,
        guard_findings,
    }
}
