//! The jobs: plain async functions that the CLI, the daemon and the tests all call.
//!
//! Each takes the configuration and an open writing [`Store`] and returns a summary; none of
//! them prints. The one-shot commands in `cli` print the summaries, the daemon logs them.

use std::path::Path;

use anyhow::Context;
use chrono::Utc;
use serde::Serialize;

use crate::cli::api_client;
use crate::config::Config;
use crate::snapshot::{self, FetchOptions, SnapshotSummary};
use crate::store::{PruneStats, Store};

/// What one audit cycle (snapshot, audit, remediation) did.
#[derive(Debug, Clone, Serialize)]
pub struct CycleSummary {
    pub snapshot: SnapshotSummary,
    pub cleanup: CleanupSummary,
    pub pruned_runs: u64,
    pub pruned_versions: u64,
}

/// Takes a snapshot and applies retention.
pub async fn snapshot_job(
    config: &Config,
    store: &mut Store,
    progress: bool,
) -> anyhow::Result<(SnapshotSummary, PruneStats)> {
    let client = api_client(config)?;
    let options = FetchOptions {
        max_in_flight: config.api.max_in_flight,
        progress,
    };
    let summary = snapshot::run_snapshot(&client, store, options).await?;
    let pruned = store
        .prune(config.store.keep_days, Utc::now())
        .context("applying retention")?;
    Ok((summary, pruned))
}

/// The scheduled `audit` job: snapshot, then audit and remediation of that snapshot.
pub async fn audit_cycle(config: &Config, store: &mut Store) -> anyhow::Result<CycleSummary> {
    let (snapshot, pruned) = snapshot_job(config, store, false).await?;
    let apply = config.remediation.mode == crate::config::RemediationMode::Enforce;
    let cleanup = cleanup_job(config, store, apply).await?;
    Ok(CycleSummary {
        snapshot,
        cleanup,
        pruned_runs: pruned.runs,
        pruned_versions: pruned.versions,
    })
}

/// Times the audit of the latest complete snapshot in `db` (used by the benchmark): reading the
/// snapshot and its predecessor, evaluating every rule with default settings plus a departed
/// domain, and recording the findings. Returns (seconds, findings).
pub fn bench_audit(db: &Path) -> anyhow::Result<(f64, usize)> {
    let (config, _) = Config::from_toml(
        "[rules.departed_domains]\ndeparted_domains = [\"contractor.example.net\"]\n",
        &crate::config::Environment::default(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut store = Store::open_writer(db, "orgwarden bench")?;
    let started = std::time::Instant::now();
    let summary = audit_job(&config, &mut store, None)?;
    Ok((
        started.elapsed().as_secs_f64(),
        summary.result.findings.len(),
    ))
}

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
struct Evaluated {
    state: crate::snapshot::OrgState,
    previous: Option<crate::snapshot::OrgState>,
    evaluation: crate::policy::Evaluation,
}

/// Evaluates the policy over snapshot `at` (default: the latest complete one).
fn evaluate_run(config: &Config, store: &Store, at: Option<i64>) -> anyhow::Result<Evaluated> {
    let run_id = match at {
        Some(run) => run,
        None => {
            store
                .latest_complete(None)?
                .context("no complete snapshot yet; run `orgwarden snapshot` first")?
                .id
        }
    };
    let state = store.state_at(run_id)?;
    let previous = match store.latest_complete(Some(run_id))? {
        Some(run) => Some(store.state_at(run.id)?),
        None => None,
    };
    let former = store.former_members(run_id)?;
    let roster = load_roster(config);
    if let crate::policy::Roster::Invalid(why) = &roster {
        tracing::error!(
            rule = crate::policy::OFFBOARDING_ROSTER,
            "roster unusable, rule not evaluated: {why}"
        );
    }
    let input = crate::policy::PolicyInput {
        state: &state,
        previous: previous.as_ref(),
        former_members: &former,
        rules: &config.rules,
        exemptions: &config.exemptions,
        roster: &roster,
        now: Utc::now(),
    };
    let evaluation = crate::policy::evaluate(&input);
    Ok(Evaluated {
        state,
        previous,
        evaluation,
    })
}

fn record(store: &mut Store, evaluated: &Evaluated) -> anyhow::Result<AuditSummary> {
    let state = &evaluated.state;
    let mut result = store.record_audit(
        state.run_id,
        state.taken_at,
        &evaluated.evaluation,
        Utc::now(),
    )?;
    // Findings raised by remediation's guards are not the policy's, but they are open findings
    // all the same: list them with the rest.
    let guards = store
        .findings(true)?
        .into_iter()
        .filter(|f| f.rule == crate::policy::REMEDIATION_GUARD);
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
pub fn audit_job(
    config: &Config,
    store: &mut Store,
    at: Option<i64>,
) -> anyhow::Result<AuditSummary> {
    let evaluated = evaluate_run(config, store, at)?;
    record(store, &evaluated)
}

/// What a cleanup did: the audit it made, the plan, and (when applied) the calls.
#[derive(Debug, Clone, Serialize)]
pub struct CleanupSummary {
    pub audit: AuditSummary,
    pub plan: crate::remediate::Plan,
    /// Whether eligible actions were carried out (`--apply` with `mode = "enforce"`).
    pub applied: bool,
    pub executed: Vec<crate::remediate::Executed>,
    /// Actions a stopped process had left `planned`, settled before planning.
    pub reconciled: Vec<crate::store::ActionRecord>,
}

/// Audits the latest complete snapshot, plans remediation and, when `apply` is set and the
/// mode is `enforce`, carries the plan out. In `dry-run` and `off` it only plans.
pub async fn cleanup_job(
    config: &Config,
    store: &mut Store,
    apply: bool,
) -> anyhow::Result<CleanupSummary> {
    use crate::config::RemediationMode;
    let mode = config.remediation.mode;
    if apply && mode != RemediationMode::Enforce {
        anyhow::bail!(
            "remediation.mode is \"{}\": nothing is carried out unless it is \"enforce\" (run without --apply to see the plan)",
            mode.as_str()
        );
    }
    let client = if apply {
        Some(api_client(config)?)
    } else {
        None
    };
    let reconciled = match &client {
        Some(client) => crate::remediate::reconcile(client, store).await?,
        None => Vec::new(),
    };
    let evaluated = evaluate_run(config, store, None)?;
    let audit = record(store, &evaluated)?;
    let streaks = store.finding_streaks()?;
    let done = store.succeeded_actions()?;
    let plan = crate::remediate::plan(&crate::remediate::PlanInput {
        config,
        state: &evaluated.state,
        previous: evaluated.previous.as_ref().map(|p| p.counts()),
        findings: &evaluated.evaluation.findings,
        streaks: &streaks,
        done: &done,
        now: Utc::now(),
    });
    let state = &evaluated.state;
    store.record_guard_findings(
        state.run_id,
        state.taken_at,
        &plan.guard_findings,
        Utc::now(),
    )?;
    for finding in &plan.guard_findings {
        tracing::error!(rule = finding.rule, "{}", finding.evidence);
    }
    let executed = match &client {
        Some(client) => crate::remediate::execute(client, store, state, &plan).await?,
        None => Vec::new(),
    };
    Ok(CleanupSummary {
        audit,
        plan,
        applied: client.is_some(),
        executed,
        reconciled,
    })
}
