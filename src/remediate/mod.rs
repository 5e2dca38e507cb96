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
//! - `plausibility`: the snapshot has members and at least one `admin`/`primary_owner` (or an
//!   operator accepted it with `cleanup --accept-baseline RUN`); else nothing runs at all;
//! - `grace`: the finding was first seen at least `min_finding_age` ago **and** in at least
//!   `min_consecutive_snapshots` audited snapshots; the action's `eligible_at` says when;
//! - `population_drop`: members, invites or keys did not drop by more than
//!   `max_population_drop` below the trusted baseline (the largest counts among the plausible
//!   complete snapshots of the last `baseline_window`, since the last accepted one); else
//!   nothing runs at all this time;
//!
//! In `enforce`, a tripped plausibility, population-drop or blast-radius guard also raises a
//! critical `remediation_guard` finding; in `dry-run` the plan's verdicts show it and nothing is
//! raised.
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
use crate::org::{Counts, OrgState, RunRecord};
use crate::policy::{
    self, Action, Finding, RuleId, SubjectKind, DEPARTED_DOMAINS, DORMANT_KEYS, OFFBOARDING_ROSTER,
    ORPHANED_KEYS, STALE_INVITES,
};

pub use execute::{execute, reconcile, Executed, Execution, KEY_REFUSED};

/// The guards, in the order they are judged. The serde names are the stored and JSON spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Guard {
    Mode,
    OptIn,
    Exemption,
    AlreadyDone,
    Admin,
    Deletable,
    SnapshotAge,
    Plausibility,
    Grace,
    PopulationDrop,
    Duplicate,
    BlastRadius,
}

impl Guard {
    pub fn as_str(self) -> &'static str {
        match self {
            Guard::Mode => "mode",
            Guard::OptIn => "opt_in",
            Guard::Exemption => "exemption",
            Guard::AlreadyDone => "already_done",
            Guard::Admin => "admin",
            Guard::Deletable => "deletable",
            Guard::SnapshotAge => "snapshot_age",
            Guard::Plausibility => "plausibility",
            Guard::Grace => "grace",
            Guard::PopulationDrop => "population_drop",
            Guard::Duplicate => "duplicate",
            Guard::BlastRadius => "blast_radius",
        }
    }
}

impl std::fmt::Display for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One guard's verdict on one action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub guard: Guard,
    pub pass: bool,
    pub detail: String,
}

impl Verdict {
    fn new(guard: Guard, pass: bool, detail: impl Into<String>) -> Verdict {
        Verdict {
            guard,
            pass,
            detail: detail.into(),
        }
    }
}

/// An action a finding recommends, with every guard's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlannedAction {
    pub action: Action,
    pub subject_kind: SubjectKind,
    pub subject_id: String,
    pub subject: String,
    pub rule: RuleId,
    /// The fingerprint of the finding behind the action.
    pub finding: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// True when every guard passed: `execute` will make the call.
    pub eligible: bool,
    /// When the grace period of the finding ends: the earliest time the action can run (it
    /// also needs `min_consecutive_snapshots` snapshots and every other guard).
    pub eligible_at: DateTime<Utc>,
    pub verdicts: Vec<Verdict>,
}

impl PlannedAction {
    /// The names of every guard that failed, comma-separated (empty when eligible).
    pub fn failing_guards(&self) -> String {
        self.verdicts
            .iter()
            .filter(|v| !v.pass)
            .map(|v| v.guard.as_str())
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

    /// Every guard but `mode` passed: what enforcement would do.
    fn passes_but_mode(&self) -> bool {
        self.verdicts
            .iter()
            .filter(|v| v.guard != Guard::Mode)
            .all(|v| v.pass)
    }
}

/// The result of [`plan`].
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub run_id: i64,
    pub mode: RemediationMode,
    pub actions: Vec<PlannedAction>,
    /// Critical findings raised by tripped guards (plausibility, population drop, blast radius).
    pub guard_findings: Vec<Finding>,
    /// Why the whole run is suspended (an implausible snapshot or a population drop), if it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspended: Option<String>,
}

impl Plan {
    pub fn eligible(&self) -> impl Iterator<Item = &PlannedAction> {
        self.actions.iter().filter(|a| a.eligible)
    }
}

/// The trusted baseline of the population-drop guard: the largest counts among the plausible
/// complete snapshots of the baseline window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Baseline {
    pub members: u64,
    pub invites: u64,
    pub api_keys: u64,
    /// How many snapshots it was taken from.
    pub snapshots: u32,
}

impl Baseline {
    /// The trusted baseline among `runs` (the complete runs of the baseline window before the
    /// snapshot being judged): the largest counts among those that are plausible or were
    /// accepted by an operator, ignoring every run before the last accepted one
    /// (`last_accepted`, which may be the judged snapshot itself). `None` when no run qualifies.
    ///
    /// `removals` are orgwarden's own successful removals (when, which kind) since the oldest
    /// run: a run's counts are lowered by those made after it, so the invites and members
    /// remediation itself deleted never look like a drop.
    pub fn trusted(
        runs: &[RunRecord],
        last_accepted: Option<i64>,
        removals: &[(DateTime<Utc>, Action)],
    ) -> Option<Baseline> {
        let from = last_accepted.unwrap_or(i64::MIN);
        let mut baseline: Option<Baseline> = None;
        for run in runs {
            let trusted = run.suspect.is_none() || run.accepted_at.is_some();
            let (Some(counts), true, true) = (run.counts, trusted, run.id >= from) else {
                continue;
            };
            let taken_at = run.finished_at.unwrap_or(run.started_at);
            let removed = |kind: Action| {
                removals
                    .iter()
                    .filter(|(at, action)| *action == kind && *at >= taken_at)
                    .count() as u64
            };
            let b = baseline.get_or_insert_with(Baseline::default);
            b.members = b
                .members
                .max(counts.members.saturating_sub(removed(Action::RemoveMember)));
            b.invites = b
                .invites
                .max(counts.invites.saturating_sub(removed(Action::DeleteInvite)));
            b.api_keys = b.api_keys.max(counts.api_keys);
            b.snapshots += 1;
        }
        baseline
    }
}

/// How long and how often a finding has been seen (its current occurrence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Audited snapshots in a row that showed it.
    pub consecutive: u32,
    /// When its current occurrence was first seen.
    pub first_seen: DateTime<Utc>,
}

/// Everything the plan depends on.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub config: &'a Config,
    pub state: &'a OrgState,
    /// The trusted baseline, for the population-drop guard (`None`: no plausible snapshot in
    /// the window yet).
    pub baseline: Option<Baseline>,
    /// Who accepted this snapshot as it is (`cleanup --accept-baseline`), if anyone.
    pub accepted_by: Option<&'a str>,
    /// The audited findings of `state` (exemptions already applied).
    pub findings: &'a [Finding],
    /// How long and how often each finding was seen, by fingerprint.
    pub seen: &'a HashMap<String, Seen>,
    /// (fingerprint, action) pairs already carried out successfully.
    pub done: &'a HashSet<(String, Action)>,
    pub now: DateTime<Utc>,
}

/// Why a snapshot cannot be what the organization looks like: no members, or no admin (every
/// organization has a primary owner). `None` when it is plausible. Implausible snapshots are
/// stored (it is what the API said) but never trusted as a baseline nor acted on.
pub fn implausible(counts: Counts, admins: u64) -> Option<String> {
    if counts.members == 0 {
        Some("the snapshot has no members at all".to_owned())
    } else if admins == 0 {
        Some(format!(
            "the snapshot has {} members but no admin or primary_owner",
            counts.members
        ))
    } else {
        None
    }
}

/// The number of `admin`/`primary_owner` members of a state.
pub fn admins(state: &OrgState) -> u64 {
    state.members.iter().filter(|m| m.role.is_admin()).count() as u64
}

/// The action kinds a rule may carry out, given its opt-ins.
fn opted_in(config: &Config, rule: RuleId, action: Action) -> Result<(), String> {
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
        RuleId::DirectoryDeparted => (
            r.directory_departed.remediate,
            r.directory_departed.remove_members,
            &[
                Action::DeleteInvite,
                Action::DeactivateKey,
                Action::RemoveWorkspaceMember,
            ],
        ),
        ORPHANED_KEYS => (r.orphaned_keys.remediate, false, &[Action::DeactivateKey]),
        DORMANT_KEYS => (r.dormant_keys.remediate, false, &[Action::DeactivateKey]),
        RuleId::UnattributedKeys
        | RuleId::DormantMembers
        | RuleId::KeyHygiene
        | RuleId::ExcessAdmins
        | RuleId::PrivilegeEscalation
        | RuleId::DirectoryUnknown
        | RuleId::AssignmentDrift
        | RuleId::RemediationGuard => return Err(format!("{rule} findings are report-only")),
    };
    if action == Action::RemoveMember {
        return if remove_members {
            Ok(())
        } else if matches!(
            rule,
            DEPARTED_DOMAINS | OFFBOARDING_ROSTER | RuleId::DirectoryDeparted
        ) {
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
            .filter(|k| k.status == crate::org::ApiKeyStatus::Active)
            .count(),
        Action::RemoveMember => state.members.len(),
        Action::RemoveWorkspaceMember => state.workspace_members.len(),
        Action::Review | Action::AcceptBaseline => 0,
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

// ---- One pure function per guard ------------------------------------------------------------

fn mode_guard(mode: RemediationMode) -> Verdict {
    Verdict::new(
        Guard::Mode,
        mode == RemediationMode::Enforce,
        format!("remediation.mode = {}", mode.as_str()),
    )
}

fn opt_in_guard(config: &Config, rule: RuleId, action: Action) -> Verdict {
    match opted_in(config, rule, action) {
        Ok(()) => Verdict::new(Guard::OptIn, true, "enabled"),
        Err(why) => Verdict::new(Guard::OptIn, false, why),
    }
}

fn exemption_guard(exemption: Option<&str>) -> Verdict {
    match exemption {
        None => Verdict::new(Guard::Exemption, true, "none"),
        Some(reason) => Verdict::new(Guard::Exemption, false, format!("exempted: {reason}")),
    }
}

fn already_done_guard(done: bool) -> Verdict {
    if done {
        Verdict::new(Guard::AlreadyDone, false, "an earlier run already did this")
    } else {
        Verdict::new(Guard::AlreadyDone, true, "not yet done")
    }
}

fn admin_guard(state: &OrgState, member_id: &str) -> Verdict {
    let admin = state
        .members
        .iter()
        .find(|m| m.id == member_id)
        .is_some_and(|m| m.role.is_admin());
    if admin {
        Verdict::new(
            Guard::Admin,
            false,
            "an admin cannot be removed through the API; a person must do it",
        )
    } else {
        Verdict::new(Guard::Admin, true, "not an admin")
    }
}

fn deletable_guard(state: &OrgState, invite_id: &str) -> Verdict {
    let status = state
        .invites
        .iter()
        .find(|i| i.id == invite_id)
        .map(|i| i.status.clone());
    match status {
        Some(crate::org::InviteStatus::Pending) => {
            Verdict::new(Guard::Deletable, true, "pending")
        }
        Some(status) => Verdict::new(
            Guard::Deletable,
            false,
            format!(
                "the API deletes only pending invites; this one is {status} and can no longer be accepted"
            ),
        ),
        None => Verdict::new(Guard::Deletable, false, "not in the snapshot"),
    }
}

fn snapshot_age_guard(
    run_id: i64,
    taken_at: DateTime<Utc>,
    max_age: std::time::Duration,
    now: DateTime<Utc>,
) -> Verdict {
    let age = now - taken_at;
    let max_age = chrono::Duration::from_std(max_age).unwrap_or(chrono::Duration::MAX);
    Verdict::new(
        Guard::SnapshotAge,
        age <= max_age,
        format!(
            "snapshot {run_id} taken {} min ago (limit {} min)",
            age.num_minutes(),
            max_age.num_minutes()
        ),
    )
}

fn plausibility_guard(counts: Counts, admins: u64, accepted_by: Option<&str>) -> Verdict {
    match (implausible(counts, admins), accepted_by) {
        (None, _) => Verdict::new(
            Guard::Plausibility,
            true,
            format!("{} members, {admins} admins", counts.members),
        ),
        (Some(why), Some(who)) => Verdict::new(
            Guard::Plausibility,
            true,
            format!("{why}, but {who} accepted it as the baseline"),
        ),
        (Some(why), None) => Verdict::new(Guard::Plausibility, false, why),
    }
}

/// The grace verdict and the time the finding's age allows the action.
fn grace_guard(
    seen: Option<Seen>,
    min_snapshots: u32,
    min_age: std::time::Duration,
    now: DateTime<Utc>,
) -> (Verdict, DateTime<Utc>) {
    let min_age = chrono::Duration::from_std(min_age).unwrap_or(chrono::Duration::MAX);
    let (consecutive, first_seen) = seen.map_or((0, now), |s| (s.consecutive, s.first_seen));
    let eligible_at = first_seen
        .checked_add_signed(min_age)
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let pass = consecutive >= min_snapshots && now >= eligible_at;
    let detail = format!(
        "first seen {}, in {consecutive} consecutive snapshots (need {} h and {min_snapshots} snapshots; eligible from {})",
        first_seen.format("%Y-%m-%d %H:%M UTC"),
        min_age.num_hours(),
        eligible_at.format("%Y-%m-%d %H:%M UTC"),
    );
    (Verdict::new(Guard::Grace, pass, detail), eligible_at)
}

fn drop_fraction(before: u64, after: u64) -> f64 {
    if before == 0 || after >= before {
        0.0
    } else {
        (before - after) as f64 / before as f64
    }
}

fn population_drop_guard(baseline: Option<Baseline>, after: Counts, limit: f64) -> Verdict {
    let Some(before) = baseline else {
        return Verdict::new(
            Guard::PopulationDrop,
            true,
            "no trusted snapshot in the baseline window to compare",
        );
    };
    let worst = drop_fraction(before.members, after.members)
        .max(drop_fraction(before.invites, after.invites))
        .max(drop_fraction(before.api_keys, after.api_keys));
    Verdict::new(
        Guard::PopulationDrop,
        worst <= limit,
        format!(
            "members {} → {}, invites {} → {}, API keys {} → {} against the baseline of {} trusted snapshots (limit {:.0}% drop)",
            before.members,
            after.members,
            before.invites,
            after.invites,
            before.api_keys,
            after.api_keys,
            before.snapshots,
            limit * 100.0
        ),
    )
}

/// `None` when `n` actions of one kind are within the limits, else why not.
fn blast_radius_guard(
    kind: Action,
    n: usize,
    population: usize,
    max_actions_per_run: u32,
    max_fraction: f64,
) -> Option<String> {
    let fraction_limit = ((max_fraction * population as f64).floor() as usize).max(1);
    let limit = fraction_limit.min(max_actions_per_run as usize);
    (n > limit).then(|| {
        format!(
            "{n} {} actions planned; limit {limit} (max_actions_per_run {max_actions_per_run}, max_fraction {max_fraction} of {population})",
            kind.as_str(),
        )
    })
}

/// Decides, for every action the findings recommend, whether it may run.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let rc = &input.config.remediation;
    let state = input.state;
    let mut guard_findings = Vec::new();
    let mut suspended = None;

    // Run-wide guards.
    let age_verdict =
        snapshot_age_guard(state.run_id, state.taken_at, rc.max_snapshot_age, input.now);
    let counts = state.counts();
    let plausibility_verdict = plausibility_guard(counts, admins(state), input.accepted_by);
    if !plausibility_verdict.pass {
        let why = format!(
            "enforcement suspended: snapshot {} is implausible ({}); it is never used as a baseline, and nothing is changed until a plausible snapshot arrives or an operator runs `orgwarden cleanup --accept-baseline {}`",
            state.run_id, plausibility_verdict.detail, state.run_id
        );
        guard_findings.push(guard_finding(state, "plausibility".to_owned(), why.clone()));
        suspended = Some(why);
    }
    let drop_verdict = population_drop_guard(input.baseline, counts, rc.max_population_drop);
    if !drop_verdict.pass {
        let why = format!(
            "enforcement suspended for snapshot {}: {}; a snapshot this different from the trusted baseline is more likely an API problem than real departures (if it is real, run `orgwarden cleanup --accept-baseline {}`)",
            state.run_id, drop_verdict.detail, state.run_id
        );
        guard_findings.push(guard_finding(
            state,
            "population_drop".to_owned(),
            why.clone(),
        ));
        suspended.get_or_insert(why);
    }

    let mut actions = Vec::new();
    for finding in input.findings {
        let action = finding.action;
        if matches!(action, Action::Review | Action::AcceptBaseline) {
            continue;
        }
        let fingerprint = finding.fingerprint();
        let mut verdicts = vec![
            mode_guard(rc.mode),
            opt_in_guard(input.config, finding.rule, action),
            exemption_guard(finding.exemption.as_deref()),
            already_done_guard(input.done.contains(&(fingerprint.clone(), action))),
        ];
        if action == Action::RemoveMember {
            verdicts.push(admin_guard(state, &finding.subject_id));
        }
        if action == Action::DeleteInvite {
            verdicts.push(deletable_guard(state, &finding.subject_id));
        }
        verdicts.push(age_verdict.clone());
        verdicts.push(plausibility_verdict.clone());
        let (grace, eligible_at) = grace_guard(
            input.seen.get(&fingerprint).copied(),
            rc.min_consecutive_snapshots,
            rc.min_finding_age,
            input.now,
        );
        verdicts.push(grace);
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
            eligible_at,
            verdicts,
        });
    }

    // The same object can be the subject of several findings (a departed person's key can be
    // both orphaned and on the roster): one call is enough. Judged as enforcement would, so a
    // dry run shows the same plan.
    let mut seen_calls = HashSet::new();
    for action in &mut actions {
        let call = (action.action, action.subject_id.clone());
        if action.passes_but_mode() && !seen_calls.insert(call) {
            action.verdicts.push(Verdict::new(
                Guard::Duplicate,
                false,
                "the same call is planned for another finding",
            ));
        }
    }

    // Blast radius, per kind, over what would otherwise run. Counted in every mode, so a dry
    // run shows what enforcement would do.
    let mut per_kind: HashMap<Action, usize> = HashMap::new();
    for action in actions.iter().filter(|a| a.passes_but_mode()) {
        *per_kind.entry(action.action).or_default() += 1;
    }
    let mut tripped: HashMap<Action, String> = HashMap::new();
    let mut kinds: Vec<_> = per_kind.into_iter().collect();
    kinds.sort();
    for (kind, n) in kinds {
        let population = kind_population(state, kind);
        if let Some(detail) =
            blast_radius_guard(kind, n, population, rc.max_actions_per_run, rc.max_fraction)
        {
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
            Some(detail) => Verdict::new(Guard::BlastRadius, false, detail.clone()),
            None => Verdict::new(Guard::BlastRadius, true, "within limits"),
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
        suspended,
    }
}
