//! The audit and remediation jobs: loading a snapshot with what goes with it, evaluating the
//! policy, recording the findings, and planning (and, with `--apply`, carrying out) the cleanup.

use super::*;

/// What one audit found and did.
#[derive(Debug, Clone, Serialize)]
pub struct AuditSummary {
    pub run_id: i64,
    pub taken_at: chrono::DateTime<Utc>,
    pub rules: Vec<crate::policy::RuleOutcome>,
    #[serde(flatten)]
    pub result: crate::store::AuditResult,
}

/// Reads the offboarding roster named in the configuration. A file that cannot be read or
/// parsed makes the roster `Invalid` (the rule is then reported as not evaluated), never an
/// error of the whole audit.
pub fn load_roster(config: &Config) -> crate::policy::Roster {
    use crate::policy::Roster;
    let rule = &config.rules.offboarding_roster;
    let Some(path) = &rule.roster_csv else {
        return Roster::NotConfigured;
    };
    let text = match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => {
                return Roster::Invalid(format!("{}: not UTF-8 text", path.display()));
            }
        },
        Err(error) => return Roster::Invalid(format!("{}: cannot read: {error}", path.display())),
    };
    match crate::policy::parse_roster(&text, &rule.email_column, &rule.last_day_column) {
        Ok(entries) => Roster::Loaded(entries),
        Err(error) => Roster::Invalid(format!("{}: {error}", path.display())),
    }
}

/// A snapshot evaluated by the policy, not yet recorded.
pub(super) struct Evaluated {
    pub(super) state: crate::org::OrgState,
    pub(super) evaluation: crate::policy::Evaluation,
}

/// The run to read: the one asked for, else the latest complete one.
pub fn resolve_run(store: &Store, at: Option<i64>) -> anyhow::Result<i64> {
    match at {
        Some(run) => Ok(run),
        None => Ok(store
            .latest_complete(None)?
            .context("no complete snapshot yet; run `orgwarden snapshot` first")?
            .id),
    }
}

/// What the policy reads besides the configuration, loaded from the store: one snapshot, the
/// roles of the snapshot before it, the former members, and the roster. The audit job and the
/// benchmark both load it here.
pub struct AuditInput {
    pub state: crate::org::OrgState,
    /// Only privilege_escalation reads the previous snapshot, and only its members' and
    /// memberships' roles: the rest of it is not read (half the cost of an audit's reading).
    pub previous: Option<crate::org::OrgState>,
    pub former: Vec<crate::policy::FormerMember>,
    pub roster: crate::policy::Roster,
    /// What the usage data says (`None`: usage is off or was never ingested).
    pub usage: Option<crate::policy::usage::UsageView>,
    /// Each `[[directories]]` source's latest read as of the snapshot.
    pub directories: Vec<crate::policy::DirectoryView>,
}

impl AuditInput {
    /// Loads snapshot `at` (default: the latest complete one) and what goes with it.
    pub fn load(config: &Config, store: &Store, at: Option<i64>) -> anyhow::Result<AuditInput> {
        let run_id = resolve_run(store, at)?;
        let state = store.state_at(run_id)?;
        let previous = match store.latest_complete(Some(run_id))? {
            Some(run) => Some(store.escalation_baseline(run.id, run_id)?),
            None => None,
        };
        let former = store.former_members(run_id)?;
        let usage = if config.usage.enabled {
            store.usage_view()?
        } else {
            None
        };
        let directories = directory_views(config, store, state.taken_at)?;
        let roster = load_roster(config);
        if let crate::policy::Roster::Invalid(why) = &roster {
            tracing::error!(
                rule = crate::policy::OFFBOARDING_ROSTER.as_str(),
                "roster unusable, rule not evaluated: {why}"
            );
        }
        Ok(AuditInput {
            state,
            previous,
            former,
            roster,
            usage,
            directories,
        })
    }

    /// The policy's input: this and the rules and exemptions of `config`, at `now`.
    pub fn policy_input<'a>(
        &'a self,
        config: &'a Config,
        now: DateTime<Utc>,
    ) -> crate::policy::PolicyInput<'a> {
        crate::policy::PolicyInput {
            state: &self.state,
            previous: self.previous.as_ref(),
            former_members: &self.former,
            rules: &config.rules,
            exemptions: &config.exemptions,
            roster: &self.roster,
            usage: self.usage.as_ref(),
            directories: &self.directories,
            now,
        }
    }
}

/// Evaluates the policy over snapshot `at` (default: the latest complete one).
pub(super) fn evaluate_run(
    config: &Config,
    store: &Store,
    at: Option<i64>,
    now: DateTime<Utc>,
) -> anyhow::Result<Evaluated> {
    let input = AuditInput::load(config, store, at)?;
    let evaluation = crate::policy::evaluate(&input.policy_input(config, now));
    let AuditInput {
        state,
        previous,
        former,
        roster,
        usage,
        directories,
    } = input;
    drop_in_background((previous, former, roster, usage, directories));
    Ok(Evaluated { state, evaluation })
}

/// Frees a large value on a thread of its own: a snapshot of a large organization is hundreds of
/// thousands of small allocations, a noticeable share of an audit to free, and nothing needs to
/// wait for it. (If no thread can be started, the value is freed here.)
fn drop_in_background<T: Send + 'static>(value: T) {
    let _ = std::thread::Builder::new()
        .name("orgwarden-free".to_owned())
        .spawn(move || drop(value));
}

pub(super) fn record(
    store: &mut Store,
    evaluated: &Evaluated,
    now: DateTime<Utc>,
) -> anyhow::Result<AuditSummary> {
    let state = &evaluated.state;
    let mut result =
        store.record_audit(state.run_id, state.taken_at, &evaluated.evaluation, now)?;
    // Findings raised by remediation's guards are not the policy's, but they are open findings
    // all the same: list them with the rest.
    let guards = store.active_findings_of(crate::policy::REMEDIATION_GUARD.as_str())?;
    result.findings.splice(0..0, guards);
    Ok(AuditSummary {
        run_id: state.run_id,
        taken_at: state.taken_at,
        rules: evaluated.evaluation.rules.clone(),
        result,
    })
}

/// Evaluates the policy over snapshot `at` (default: the latest complete one) and records the
/// findings' lifecycle.
pub fn audit_job(ctx: &mut JobContext<'_>, at: Option<i64>) -> anyhow::Result<AuditSummary> {
    let now = ctx.now();
    let evaluated = evaluate_run(ctx.config, ctx.store, at, now)?;
    let summary = record(ctx.store, &evaluated, now);
    drop_in_background(evaluated);
    summary
}

/// The remediation plan for an evaluated snapshot: the store's streaks, the actions already
/// done, and the trusted baseline of the baseline window (or the run an operator accepted).
pub(super) fn plan_of(
    config: &Config,
    store: &Store,
    evaluated: &Evaluated,
    now: DateTime<Utc>,
) -> anyhow::Result<crate::remediate::Plan> {
    let streaks = store.finding_streaks()?;
    let done = store.succeeded_actions()?;
    let state = &evaluated.state;
    let window = chrono::Duration::from_std(config.remediation.baseline_window)
        .unwrap_or(chrono::Duration::MAX);
    let window_start = state
        .taken_at
        .checked_sub_signed(window)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let candidates = store.complete_runs_since(window_start, state.run_id)?;
    let last_accepted = store.last_accepted(state.run_id)?;
    let removals = store.removals_since(window_start)?;
    let accepted_by = last_accepted
        .as_ref()
        .filter(|r| r.id == state.run_id)
        .and_then(|r| r.accepted_by.clone());
    Ok(crate::remediate::plan(&crate::remediate::PlanInput {
        config,
        state,
        baseline: crate::remediate::Baseline::trusted(
            &candidates,
            last_accepted.as_ref().map(|r| r.id),
            &removals,
        ),
        accepted_by: accepted_by.as_deref(),
        findings: &evaluated.evaluation.findings,
        seen: &streaks,
        done: &done,
        now,
    }))
}

/// What a cleanup did: the audit it made, the plan, and (when applied) the calls.
#[derive(Debug, Clone, Serialize)]
pub struct CleanupSummary {
    pub audit: AuditSummary,
    pub plan: crate::remediate::Plan,
    /// Whether eligible actions were carried out (`--apply` with `mode = "enforce"`).
    pub applied: bool,
    pub executed: Vec<crate::remediate::Executed>,
    /// Why execution stopped early (the Admin API refused the key), if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Actions a stopped process had left `planned`, settled before planning.
    pub reconciled: Vec<crate::policy::ActionRecord>,
}

/// Audits the latest complete snapshot, plans remediation and, when `apply` is set and the
/// mode is `enforce`, carries the plan out. In `dry-run` and `off` it only plans.
pub async fn cleanup_job(ctx: &mut JobContext<'_>, apply: bool) -> anyhow::Result<CleanupSummary> {
    use crate::config::RemediationMode;
    let config = ctx.config;
    let mode = config.remediation.mode;
    if apply && mode != RemediationMode::Enforce {
        anyhow::bail!(
            "remediation.mode is \"{}\": nothing is carried out unless it is \"enforce\" (run without --apply to see the plan)",
            mode.as_str()
        );
    }
    let client = if apply {
        Some(ctx.client()?.clone())
    } else {
        None
    };
    let clock = &*ctx.clock;
    let store = &mut *ctx.store;
    let reconciled = match &client {
        Some(client) => crate::remediate::reconcile(client, store, clock).await?,
        None => Vec::new(),
    };
    let evaluated = evaluate_run(config, store, None, clock.now())?;
    let audit = record(store, &evaluated, clock.now())?;
    let plan = plan_of(config, store, &evaluated, clock.now())?;
    let state = &evaluated.state;
    store.record_guard_findings(
        state.run_id,
        state.taken_at,
        &plan.guard_findings,
        clock.now(),
    )?;
    for finding in &plan.guard_findings {
        tracing::error!(rule = finding.rule.as_str(), "{}", finding.evidence);
    }
    let execution = match &client {
        Some(client) => crate::remediate::execute(client, store, state, &plan, clock).await?,
        None => crate::remediate::Execution::default(),
    };
    Ok(CleanupSummary {
        audit,
        plan,
        applied: client.is_some(),
        executed: execution.executed,
        stopped: execution.stopped,
        reconciled,
    })
}

/// Records that `who` accepted complete snapshot `run_id` as the remediation baseline
/// (`cleanup --accept-baseline`): it is then trusted although it looked implausible, and the
/// population-drop guard compares only against it and later trusted snapshots.
pub fn accept_baseline_job(
    ctx: &mut JobContext<'_>,
    run_id: i64,
    who: &str,
) -> anyhow::Result<crate::store::RunRecord> {
    let now = ctx.now();
    let run = ctx.store.accept_baseline(run_id, who, now)?;
    tracing::warn!(
        run = run_id,
        who,
        "snapshot accepted as the remediation baseline"
    );
    Ok(run)
}
