//! The jobs: plain async functions that the CLI, the daemon and the tests all call.
//!
//! Each takes a [`JobContext`] (the configuration, an open writing [`Store`], the clock and the
//! API client built once from `[api]`) and returns a summary; none of them prints or reads the
//! wall clock. The one-shot commands in `cli` print the summaries, the daemon logs them.

use std::path::Path;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::admin_api::{AdminClient, ClientConfigError};
use crate::clock::SharedClock;
use crate::config::Config;
use crate::snapshot::{self, FetchOptions, SnapshotSummary};
use crate::store::{PruneStats, Store};

/// What every job works with.
pub struct JobContext<'a> {
    pub config: &'a Config,
    pub store: &'a mut Store,
    pub clock: SharedClock,
    /// The API client built once from `[api]`, or why it could not be built (only the jobs
    /// that call the API fail on that).
    pub client: Result<AdminClient, ClientConfigError>,
    /// Record a snapshot of an organization other than the one the database holds
    /// (`--accept-new-org`); otherwise such a snapshot is refused before anything is written.
    pub accept_new_org: bool,
}

/// The key reads another organization than the one whose history the database holds.
#[derive(Debug, thiserror::Error)]
#[error(
    "the Admin API answers for organization {new_name} ({new_id}), but the database holds the \
     history of {old_name} ({old_id}); nothing was written. Check api.admin_key and api.base_url, \
     use another store.path for the other organization, or pass --accept-new-org to record it here"
)]
pub struct OtherOrganization {
    pub old_id: String,
    pub old_name: String,
    pub new_id: String,
    pub new_name: String,
}

impl<'a> JobContext<'a> {
    /// A context whose client is built from `config.api`.
    pub fn new(config: &'a Config, store: &'a mut Store, clock: SharedClock) -> JobContext<'a> {
        let client = AdminClient::from_config(&config.api, clock.clone());
        JobContext {
            config,
            store,
            clock,
            client,
            accept_new_org: false,
        }
    }

    /// The current time.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The API client, or why there is none.
    pub fn client(&self) -> anyhow::Result<&AdminClient> {
        self.client
            .as_ref()
            .map_err(|error| anyhow::anyhow!("{error}"))
    }
}

/// What one audit cycle (snapshot, audit, remediation) did.
#[derive(Debug, Clone, Serialize)]
pub struct CycleSummary {
    pub snapshot: SnapshotSummary,
    pub cleanup: CleanupSummary,
    pub pruned_runs: u64,
    pub pruned_versions: u64,
    /// Directory reads removed by retention (`Store::prune`).
    pub pruned_directory_reads: u64,
    /// Usage days older than retention (see `usage_ingest::usage_first_kept`).
    pub pruned_usage_days: u64,
}

/// Takes a snapshot and applies retention.
pub async fn snapshot_job(
    ctx: &mut JobContext<'_>,
    progress: bool,
) -> anyhow::Result<(SnapshotSummary, PruneStats)> {
    let client = ctx.client()?;
    if let Some(known) = ctx.store.latest_complete(None)? {
        if let Some(old_id) = known.org_id {
            // One extra call, before a run row exists: a refused snapshot writes nothing. If the
            // call fails, the run below meets the same failure and records it as a failed run.
            let org = client.organization().await.ok();
            if let Some(org) = org.filter(|org| org.id != old_id) {
                if !ctx.accept_new_org {
                    return Err(OtherOrganization {
                        old_id,
                        old_name: known.org_name.unwrap_or_default(),
                        new_id: org.id,
                        new_name: org.name,
                    }
                    .into());
                }
                tracing::warn!(
                    old = %old_id,
                    new = %org.id,
                    "recording a snapshot of another organization (--accept-new-org)"
                );
            }
        }
    }
    let options = FetchOptions {
        max_in_flight: ctx.config.api.max_in_flight,
        progress,
    };
    let summary = snapshot::run_snapshot(client, ctx.store, options, &*ctx.clock).await?;
    let mut pruned = ctx
        .store
        .prune(ctx.config.store.keep_days, ctx.now())
        .context("applying retention")?;
    let first_kept = crate::usage_ingest::usage_first_kept(
        ctx.now(),
        ctx.config.store.keep_days,
        crate::usage_ingest::usage_days_needed(ctx.config),
    );
    pruned.usage_days = ctx
        .store
        .prune_usage(first_kept)
        .context("applying retention to usage")?;
    Ok((summary, pruned))
}

/// The scheduled `audit` job: snapshot, then audit and remediation of that snapshot, then the
/// alerts of what the cycle found (also when the snapshot failed: a failing streak is alerted).
pub async fn audit_cycle(ctx: &mut JobContext<'_>) -> anyhow::Result<CycleSummary> {
    let started = ctx.now();
    let result = audit_cycle_inner(ctx).await;
    if !ctx.config.alerts.channels.is_empty() {
        match alerts_job(ctx, started).await {
            Ok(summary) if summary.queued > 0 || summary.sent > 0 => {
                tracing::info!(
                    queued = summary.queued,
                    sent = summary.sent,
                    retrying = summary.retrying,
                    "alerts"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::error!("alerts: {error:#}"),
        }
    }
    result
}

async fn audit_cycle_inner(ctx: &mut JobContext<'_>) -> anyhow::Result<CycleSummary> {
    // The sources read with each cycle, before the snapshot so that its audit sees this read.
    let config = ctx.config;
    let with_cycle: Vec<&crate::config::DirectoryConfig> = config
        .directories
        .iter()
        .filter(|source| source.schedule.is_none())
        .collect();
    if !with_cycle.is_empty() {
        if let Err(error) = directory_job(ctx, &with_cycle).await {
            tracing::error!("directories: {error:#}");
        }
    }
    let (snapshot, pruned) = snapshot_job(ctx, false).await?;
    if ctx.config.usage.enabled {
        // A failed ingest is recorded in the store (the usage rules then say why they did not
        // run) and never fails the cycle.
        if let Err(error) = usage_job(ctx).await {
            tracing::error!("usage ingest: {error:#}");
        }
    }
    let apply = ctx.config.remediation.mode == crate::config::RemediationMode::Enforce;
    let cleanup = cleanup_job(ctx, apply).await?;
    if ctx.config.alerts.owner_notice.enabled {
        if let Err(error) = owner_notices_job(ctx, &cleanup).await {
            tracing::error!("owner notices: {error:#}");
        }
    }
    Ok(CycleSummary {
        snapshot,
        cleanup,
        pruned_runs: pruned.runs,
        pruned_versions: pruned.versions,
        pruned_directory_reads: pruned.directory_reads,
        pruned_usage_days: pruned.usage_days,
    })
}

/// Ingests the usage reports' days not yet complete (`[usage]`), before an audit evaluates.
/// The attempt, failed or not, is recorded in the store.
pub async fn usage_job(
    ctx: &mut JobContext<'_>,
) -> anyhow::Result<crate::usage_ingest::IngestSummary> {
    let client = ctx.client()?.clone();
    Ok(crate::usage_ingest::ingest_usage(
        &client,
        ctx.store,
        &ctx.config.usage,
        &*ctx.clock,
        ctx.config.api.max_in_flight,
    )
    .await?)
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

/// What one read of a directory source found.
#[derive(Debug, Clone, Serialize)]
pub struct DirectoryReadSummary {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub active: usize,
    pub disabled: usize,
    pub deleted: usize,
    /// People assigned to the Claude application, when the source reads assignments.
    pub assigned: Option<usize>,
    pub duration_ms: u64,
    /// Why the read failed; the counts are then zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub started_at: DateTime<Utc>,
    #[serde(skip)]
    pub finished_at: DateTime<Utc>,
}

/// Reads `sources` concurrently; each result comes with its summary. Writes nothing.
pub async fn read_directories(
    sources: &[&crate::config::DirectoryConfig],
    clock: &crate::clock::SharedClock,
) -> Vec<(
    DirectoryReadSummary,
    Result<crate::org::DirectoryListing, crate::directory::DirectoryError>,
)> {
    use crate::org::DirectoryStatus;
    let reads = sources.iter().map(|source| async move {
        let started_at = clock.now();
        let timer = std::time::Instant::now();
        let result = crate::directory::read(source, started_at).await;
        let duration_ms = u64::try_from(timer.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut summary = DirectoryReadSummary {
            name: source.name.clone(),
            kind: crate::directory::kind(&source.source),
            active: 0,
            disabled: 0,
            deleted: 0,
            assigned: None,
            duration_ms,
            error: None,
            started_at,
            finished_at: clock.now(),
        };
        match &result {
            Ok(listing) => {
                for person in &listing.people {
                    match person.status {
                        DirectoryStatus::Active => summary.active += 1,
                        DirectoryStatus::Disabled(_) => summary.disabled += 1,
                        DirectoryStatus::Deleted => summary.deleted += 1,
                    }
                }
                summary.assigned = listing.assigned.as_ref().map(Vec::len);
            }
            Err(error) => summary.error = Some(error.message.clone()),
        }
        (summary, result)
    });
    futures::future::join_all(reads).await
}

/// Reads `sources` concurrently and records each read in the store (complete with its people,
/// or failed with its message).
pub async fn directory_job(
    ctx: &mut JobContext<'_>,
    sources: &[&crate::config::DirectoryConfig],
) -> anyhow::Result<Vec<DirectoryReadSummary>> {
    let results = read_directories(sources, &ctx.clock).await;
    let mut out = Vec::with_capacity(results.len());
    for read in results {
        out.push(record_directory_read(ctx.store, read)?);
    }
    Ok(out)
}

/// Logs one read of [`read_directories`] and records it in the store (complete with its people,
/// or failed with its message).
pub fn record_directory_read(
    store: &mut Store,
    (summary, result): (
        DirectoryReadSummary,
        Result<crate::org::DirectoryListing, crate::directory::DirectoryError>,
    ),
) -> anyhow::Result<DirectoryReadSummary> {
    let stored = result.as_ref().map_err(|error| error.message.as_str());
    match &result {
        Err(error) => {
            tracing::error!(source = %summary.name, "directory read failed: {}", error.message)
        }
        Ok(_) => tracing::info!(
            source = %summary.name,
            kind = summary.kind,
            active = summary.active,
            disabled = summary.disabled,
            deleted = summary.deleted,
            elapsed_ms = summary.duration_ms,
            "directory read"
        ),
    }
    store.record_directory_read(
        &summary.name,
        summary.started_at,
        summary.finished_at,
        stored,
    )?;
    Ok(summary)
}

/// The `[[directories]]` source called `name`, or an error naming the configured ones.
pub fn directory_source<'c>(
    config: &'c Config,
    name: &str,
) -> anyhow::Result<&'c crate::config::DirectoryConfig> {
    config
        .directories
        .iter()
        .find(|source| source.name == name)
        .with_context(|| {
            let names: Vec<&str> = config.directories.iter().map(|s| s.name.as_str()).collect();
            format!(
                "no [[directories]] source is named {name:?} (configured: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )
        })
}

/// The job of one scheduled source (the daemon runs it at each occurrence of the source's
/// `schedule`; `directory read NAME` runs it once): reads the source and records the read. A
/// failed read is recorded too (the audit then leaves the source's rules `not_evaluated`) and
/// comes back in the summary's `error`.
pub async fn directory_read_job(
    ctx: &mut JobContext<'_>,
    name: &str,
) -> anyhow::Result<DirectoryReadSummary> {
    let source = directory_source(ctx.config, name)?;
    let read = read_directories(&[source], &ctx.clock)
        .await
        .pop()
        .context("no read")?;
    record_directory_read(ctx.store, read)
}

/// How long a scheduled source's read stays usable for the audit: twice its schedule's interval
/// (the gap between the two occurrences that follow the read), so one missed or slow run is
/// tolerated and two are not. `None` when the schedule never fires again.
pub fn directory_max_age(
    schedule: &str,
    timezone: chrono_tz::Tz,
    read_at: DateTime<Utc>,
) -> Option<chrono::Duration> {
    crate::schedule::period(schedule, timezone, read_at).map(|period| period * 2)
}

/// The directory sources as the rules see them at `at`: each source by its latest read at or
/// before `at`. A failed read leaves the source's rules `not_evaluated`; so does, for a source
/// with its own `schedule`, a read older than [`directory_max_age`] (a source read with each
/// cycle was read just before the snapshot).
pub fn directory_views(
    config: &Config,
    store: &Store,
    at: DateTime<Utc>,
) -> anyhow::Result<Vec<crate::policy::DirectoryView>> {
    let mut views = Vec::with_capacity(config.directories.len());
    for source in &config.directories {
        let record = store.directory_read_at(&source.name, at, false)?;
        let max_age = match (&source.schedule, &record) {
            (Some(schedule), Some(record)) => {
                directory_max_age(schedule, config.schedule.timezone, record.finished_at)
            }
            _ => None,
        };
        let read = match record {
            None => Err("not read yet".to_owned()),
            Some(record) if record.status != "complete" => Err(format!(
                "the read at {} failed: {}",
                record.finished_at.format("%Y-%m-%d %H:%M UTC"),
                record.error.as_deref().unwrap_or("unknown error")
            )),
            Some(record) if max_age.is_some_and(|max| at - record.finished_at > max) => {
                Err(format!(
                    "the latest read, at {}, is older than twice the source's schedule interval \
                     ({} min)",
                    record.finished_at.format("%Y-%m-%d %H:%M UTC"),
                    max_age.map_or(0, |max| max.num_minutes())
                ))
            }
            Some(record) => {
                let (listing, seen_since) = store.directory_listing(&record)?;
                Ok(crate::policy::DirectoryRead {
                    listing,
                    read_at: record.finished_at,
                    seen_since,
                })
            }
        };
        views.push(crate::policy::DirectoryView {
            name: source.name.clone(),
            domains: source.domains.clone(),
            read,
        });
    }
    Ok(views)
}

/// A snapshot evaluated by the policy, not yet recorded.
struct Evaluated {
    state: crate::org::OrgState,
    evaluation: crate::policy::Evaluation,
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
fn evaluate_run(
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

fn record(
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
fn plan_of(
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

/// What one report wrote and sent.
#[derive(Debug, Clone, Serialize)]
pub struct ReportSummary {
    pub run_id: i64,
    pub subject: String,
    pub out_dir: std::path::PathBuf,
    pub files: Vec<std::path::PathBuf>,
    /// The queued message, when the report was sent.
    pub message_id: Option<String>,
    pub outbox: Option<crate::mail::OutboxSummary>,
    /// The snapshot the period starts after (`None`: the first report, or `--since` a time
    /// before every retained snapshot).
    pub period_start_run: Option<i64>,
    /// When the period starts (`None` for the first report).
    pub period_start: Option<DateTime<Utc>>,
    /// Whether the report was recorded as ending its period (sent, or written by the schedule);
    /// a preview is not, so the next report starts where this one did.
    pub recorded: bool,
}

/// Where a report's period starts (`report --since`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// Right after snapshot run N: its state is the baseline of the changes.
    Run(i64),
    /// At a time; the baseline is the latest complete snapshot taken by then.
    Time(DateTime<Utc>),
}

impl Since {
    /// `RUN` (a run id), `YYYY-MM-DD` (midnight in `tz`) or an RFC 3339 time.
    pub fn parse(text: &str, tz: chrono_tz::Tz) -> Result<Since, String> {
        let text = text.trim();
        if let Ok(run) = text.parse::<i64>() {
            return Ok(Since::Run(run));
        }
        if let Ok(time) = DateTime::parse_from_rfc3339(text) {
            return Ok(Since::Time(time.with_timezone(&Utc)));
        }
        if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            use chrono::TimeZone;
            let midnight = date.and_hms_opt(0, 0, 0).unwrap_or_default();
            if let Some(time) = tz.from_local_datetime(&midnight).earliest() {
                return Ok(Since::Time(time.with_timezone(&Utc)));
            }
        }
        Err(format!(
            "--since {text:?}: expected a run id, a date (YYYY-MM-DD, in schedule.timezone) or an RFC 3339 time"
        ))
    }
}

/// How a report is made.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReportOptions<'a> {
    /// Directory for the CSVs (default: a new, unique directory under `report.out_dir`).
    pub out: Option<&'a Path>,
    /// Queue the email in the outbox and deliver it; a sent report ends its period.
    pub send: bool,
    /// Start the period here instead of at the previous sent report.
    pub since: Option<Since>,
    /// Record the report as ending its period even though it is not sent (the scheduled report
    /// when `[mail]` has no recipients). Otherwise an unsent report is a preview.
    pub record_unsent: bool,
}

/// Turns the stored rule outcomes (JSON) back into outcomes with the policy's static rule ids.
fn stored_rule_outcomes(rules: &serde_json::Value) -> Vec<crate::policy::RuleOutcome> {
    use crate::policy::{RuleId, RuleOutcome, RuleStatus};
    let Some(list) = rules.as_array() else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|o| {
            let name = o["rule"].as_str()?;
            let rule = RuleId::parse(name)?;
            let status = match o["status"].as_str()? {
                "evaluated" => RuleStatus::Evaluated,
                "disabled" => RuleStatus::Disabled,
                _ => RuleStatus::NotEvaluated(o["reason"].as_str().unwrap_or("").to_owned()),
            };
            Some(RuleOutcome {
                rule,
                status,
                n_findings: o["n_findings"].as_u64().unwrap_or(0) as usize,
            })
        })
        .collect()
}

/// Makes the report of the period that ends at the latest complete snapshot (auditing it
/// first if needed) and starts at the previous sent report's snapshot (or `since`): writes the
/// CSVs into `out` (default: a new directory under `report.out_dir`) and, with `send`, stores
/// the email in the outbox and tries to deliver it.
///
/// New findings are those first seen in the period, resolved ones those resolved in it, the
/// changes are the diff between the period's first and last snapshots and the actions those
/// planned from its snapshots. A report that is neither sent nor `record_unsent` is a preview:
/// it records nothing, so the next report's period is unchanged.
pub async fn report_job(
    ctx: &mut JobContext<'_>,
    options: &ReportOptions<'_>,
) -> anyhow::Result<ReportSummary> {
    let config = ctx.config;
    let generated_at = ctx.now();
    let store = &mut *ctx.store;
    let run_id = resolve_run(store, None)?;
    let evaluated = evaluate_run(config, store, Some(run_id), generated_at)?;
    if store.last_audited_run()? != Some(run_id) {
        record(store, &evaluated, generated_at)?;
    }
    let state = &evaluated.state;

    let (start_run, period_start) = report_period(store, options.since)?;

    let mut findings = store.findings(true)?;
    findings
        .extend(store.findings_resolved_since(period_start.unwrap_or(DateTime::<Utc>::MIN_UTC))?);
    let rules = store
        .audits(1)?
        .first()
        .map(|a| stored_rule_outcomes(&a.rules))
        .unwrap_or_default();
    let changes = match start_run {
        Some(start) if start != run_id => match store.state_at(start) {
            Ok(before) => crate::org::diff(&before, state),
            // Retention removed that snapshot: no diff rather than a wrong one.
            Err(_) => Vec::new(),
        },
        _ => Vec::new(),
    };
    let actions = store.actions_in_runs(start_run, run_id)?;
    let failures: Vec<crate::report::PeriodFailure> = store
        .failed_runs_after(start_run)?
        .into_iter()
        .filter(|r| period_start.is_none_or(|start| r.started_at > start))
        .map(|r| crate::report::PeriodFailure {
            what: format!("snapshot run {}", r.id),
            at: r.finished_at.unwrap_or(r.started_at),
            error: r
                .error
                .unwrap_or_else(|| format!("the run was {}", r.status.as_str())),
        })
        .collect();
    let plan = plan_of(config, store, &evaluated, generated_at)?;
    let waiting = crate::report::WaitingAction::from_plan(&plan);
    let emails = store.member_emails()?;
    let schedule = &config.schedule;
    let report_ctx = crate::report::ReportContext {
        period_start,
        failures: &failures,
        audit_period: crate::schedule::period(&schedule.audit, schedule.timezone, generated_at),
        timezone: schedule.timezone,
        plan: &waiting,
        mode: config.remediation.mode.as_str(),
        emails: &emails,
        csv_bom: config.report.csv_bom,
    };
    let rendered = crate::report::render_with(
        &crate::report::ReportInput {
            state,
            findings: &findings,
            rules: &rules,
            changes: &changes,
            changes_since: period_start,
            actions: &actions,
            top_n: config.report.top_findings,
            generated_at,
        },
        &report_ctx,
    );

    let (out_dir, files) =
        write_report_files(config, options.out, &rendered, run_id, generated_at)?;

    let (message_id, outbox) = if options.send {
        let (id, summary) =
            send_report(config, store, &rendered, &out_dir, run_id, generated_at).await?;
        (Some(id), Some(summary))
    } else {
        (None, None)
    };
    let kind = if options.send {
        Some(crate::store::ReportKind::Sent)
    } else if options.record_unsent {
        Some(crate::store::ReportKind::Written)
    } else {
        None
    };
    if let Some(kind) = kind {
        store.record_report(
            run_id,
            generated_at,
            message_id.as_deref(),
            Some(&out_dir.display().to_string()),
            kind,
        )?;
    }
    Ok(ReportSummary {
        run_id,
        subject: rendered.subject,
        out_dir,
        files,
        message_id,
        outbox,
        period_start_run: start_run,
        period_start,
        recorded: kind.is_some(),
    })
}

/// The start of a report's period: the snapshot run it starts after and its time. After the
/// previous *sent* report's snapshot, or `--since`; `(None, None)` for the first report.
fn report_period(
    store: &Store,
    since: Option<Since>,
) -> anyhow::Result<(Option<i64>, Option<DateTime<Utc>>)> {
    Ok(match since {
        Some(Since::Run(run)) => {
            let record = store
                .run(run)?
                .filter(|r| r.status == crate::store::RunStatus::Complete)
                .with_context(|| format!("--since {run}: no complete snapshot run {run}"))?;
            (
                Some(run),
                Some(record.finished_at.unwrap_or(record.started_at)),
            )
        }
        Some(Since::Time(at)) => (store.latest_complete_at(at)?.map(|r| r.id), Some(at)),
        None => match store.last_sent_report()? {
            Some(previous) => {
                let at = match store.run(previous.run_id)? {
                    Some(run) => run.finished_at.unwrap_or(run.started_at),
                    // Retention removed the run: its report's time is the next best start.
                    None => previous.generated_at,
                };
                (Some(previous.run_id), Some(at))
            }
            None => (None, None),
        },
    })
}

/// Writes the report's CSV files (each through a temporary file and a rename) into `out` or a
/// fresh folder under `report.out_dir`.
fn write_report_files(
    config: &Config,
    out: Option<&Path>,
    rendered: &crate::report::RenderedReport,
    run_id: i64,
    generated_at: DateTime<Utc>,
) -> anyhow::Result<(std::path::PathBuf, Vec<std::path::PathBuf>)> {
    let out_dir = match out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the report directory {}", dir.display()))?;
            dir.to_owned()
        }
        None => unique_dir(
            &config.report.out_dir,
            &format!("{}-run-{run_id}", generated_at.format("%Y%m%dT%H%M%SZ")),
        )?,
    };
    let mut files = Vec::new();
    for (name, bytes) in &rendered.files {
        let path = out_dir.join(name);
        let tmp = out_dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
        files.push(path);
    }

    Ok((out_dir, files))
}

/// Queues the report email in the outbox and tries to deliver it: its Message-ID local part and
/// what the outbox did.
async fn send_report(
    config: &Config,
    store: &mut Store,
    rendered: &crate::report::RenderedReport,
    out_dir: &Path,
    run_id: i64,
    generated_at: DateTime<Utc>,
) -> anyhow::Result<(String, crate::mail::OutboxSummary)> {
    let mail = config
        .mail
        .as_ref()
        .filter(|m| !m.to.is_empty())
        .context("mail.to is empty: nowhere to send the report (set [mail] to and from)")?;
    let outgoing = crate::mail::Outgoing {
        subject: rendered.subject.clone(),
        text: rendered.text.clone(),
        html: rendered.html.clone(),
        attachments: rendered
            .files
            .iter()
            .map(|(name, bytes)| crate::mail::Attachment {
                filename: name.clone(),
                content_type: "text/csv; charset=utf-8".to_owned(),
                bytes: bytes.clone(),
            })
            .collect(),
        files_dir: Some(std::path::absolute(out_dir).unwrap_or_else(|_| out_dir.to_owned())),
    };
    let id = format!(
        "report-{}-run-{}",
        generated_at.format("%Y%m%dT%H%M%S%.6fZ"),
        run_id
    );
    let (_, summary) =
        crate::mail::enqueue_and_flush(mail, store, &outgoing, &id, generated_at).await?;
    Ok((id, summary))
}

/// Creates `parent/name`, or `parent/name-2`, `-3`, ... when it exists: two reports never share
/// a directory.
fn unique_dir(parent: &Path, name: &str) -> anyhow::Result<std::path::PathBuf> {
    std::fs::create_dir_all(parent)
        .with_context(|| format!("creating the report directory {}", parent.display()))?;
    for n in 1..=10_000u32 {
        let dir = if n == 1 {
            parent.join(name)
        } else {
            parent.join(format!("{name}-{n}"))
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("creating the report directory {}", dir.display()))
            }
        }
    }
    anyhow::bail!(
        "{}: 10000 report directories named {name}; clean up report.out_dir",
        parent.display()
    )
}

/// The scheduled report: sent when `[mail]` has recipients, else written; either way it ends
/// its period.
pub async fn scheduled_report(ctx: &mut JobContext<'_>) -> anyhow::Result<ReportSummary> {
    let send = ctx.config.mail.as_ref().is_some_and(|m| !m.to.is_empty());
    report_job(
        ctx,
        &ReportOptions {
            send,
            record_unsent: true,
            ..ReportOptions::default()
        },
    )
    .await
}

/// What the alerts step stored and delivered.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AlertsSummary {
    /// Alerts stored (one per channel); a repeat of an occurrence already alerted is not.
    pub queued: u64,
    pub sent: u64,
    pub retrying: u64,
    pub failed: u64,
}

/// The alerts the store shows now: new findings at or above `min_severity`, tripped guards,
/// actions failed since `since`, a failing snapshot streak and stale data.
pub fn current_alerts(
    config: &Config,
    store: &Store,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> anyhow::Result<Vec<crate::alerts::Alert>> {
    use crate::alerts::{Alert, AlertEvent, OrgRef};
    use crate::store::RunStatus;
    let settings = &config.alerts;
    let latest = store.latest_complete(None)?;
    let org = latest
        .as_ref()
        .map(|r| OrgRef {
            id: r.org_id.clone().unwrap_or_default(),
            name: r.org_name.clone().unwrap_or_default(),
        })
        .unwrap_or_default();
    let guard = crate::policy::REMEDIATION_GUARD.as_str();
    let mut alerts = Vec::new();
    for finding in store.findings(true)? {
        if finding.rule == guard {
            alerts.push(Alert::guard(&finding, &org, now));
        } else if finding.status == crate::policy::FindingStatus::New
            && finding.severity >= settings.min_severity
        {
            alerts.push(Alert::finding(&finding, &org, now));
        }
    }
    for action in store.actions_since(Some(since))? {
        if action.status == crate::policy::ActionStatus::Failed {
            alerts.push(Alert {
                event: AlertEvent::ActionFailed,
                dedup_key: format!("action:{}", action.id),
                title: format!(
                    "remediation failed: {} {}",
                    action.action.as_str(),
                    action.subject
                ),
                detail: action.reason.clone().unwrap_or_default(),
                severity: None,
                organization: org.clone(),
                at: now,
                findings: Vec::new(),
            });
        }
    }
    let runs = store.runs()?;
    let streak: Vec<_> = runs
        .iter()
        .rev()
        .filter(|r| r.status != RunStatus::Running)
        .take_while(|r| r.status != RunStatus::Complete)
        .collect();
    if streak.len() >= settings.failed_runs as usize {
        let first = streak.last().map(|r| r.id).unwrap_or(0);
        let last = streak.first();
        alerts.push(Alert {
            event: AlertEvent::SnapshotFailing,
            dedup_key: format!("snapshot-failing:{first}"),
            title: format!("{} snapshot runs in a row failed", streak.len()),
            detail: last
                .and_then(|r| r.error.clone())
                .unwrap_or_else(|| "the runs did not complete".to_owned()),
            severity: None,
            organization: org.clone(),
            at: now,
            findings: Vec::new(),
        });
    }
    if let Some(run) = &latest {
        let taken = run.finished_at.unwrap_or(run.started_at);
        let max_age = chrono::Duration::from_std(config.remediation.max_snapshot_age)
            .unwrap_or(chrono::Duration::MAX);
        if now.signed_duration_since(taken) > max_age {
            alerts.push(Alert {
                event: AlertEvent::StaleData,
                dedup_key: format!("stale:{}", run.id),
                title: format!("the latest complete snapshot (run {}) is stale", run.id),
                detail: format!(
                    "taken at {}, older than remediation.max_snapshot_age",
                    crate::org::ts(&taken)
                ),
                severity: None,
                organization: org.clone(),
                at: now,
                findings: Vec::new(),
            });
        }
    }
    Ok(alerts)
}

/// Stores the current alerts in every channel's outbox (an occurrence already stored is not
/// stored again) and delivers what is due.
pub async fn alerts_job(
    ctx: &mut JobContext<'_>,
    since: DateTime<Utc>,
) -> anyhow::Result<AlertsSummary> {
    let now = ctx.now();
    let alerts = current_alerts(ctx.config, ctx.store, since, now)?;
    let mut summary = AlertsSummary::default();
    for channel in &ctx.config.alerts.channels {
        for alert in &alerts {
            let payload = serde_json::to_string(alert)?;
            if ctx.store.enqueue_alert(
                &channel.name,
                &alert.dedup_key,
                alert.event.as_str(),
                &payload,
                now,
            )? {
                summary.queued += 1;
            }
        }
    }
    let flushed = flush_alerts(ctx).await?;
    summary.sent = flushed.sent;
    summary.retrying = flushed.retrying;
    summary.failed = flushed.failed;
    Ok(summary)
}

/// Mails the owner of each key that remediation will act on once its grace period ends
/// (`[alerts.owner_notice]`), once per finding occurrence; returns how many were sent.
pub async fn owner_notices_job(
    ctx: &mut JobContext<'_>,
    cleanup: &CleanupSummary,
) -> anyhow::Result<usize> {
    let config = ctx.config;
    let Some(mail) = &config.mail else {
        return Ok(0);
    };
    let now = ctx.now();
    let state = ctx.store.state_at(cleanup.plan.run_id)?;
    let history = ctx.store.member_emails()?;
    let notices = crate::alerts::owner_notices(
        &cleanup.plan,
        &state,
        &cleanup.audit.result.findings,
        &history,
        now,
    );
    let mut sent = 0;
    for notice in &notices {
        if ctx.store.owner_notice_sent(&notice.dedup_key)? {
            continue;
        }
        let Ok(to) = notice.recipient.parse::<lettre::message::Mailbox>() else {
            tracing::warn!(
                subject = notice.subject_id.as_str(),
                "owner notice skipped: the owner's email is not an address"
            );
            continue;
        };
        let mut mail = mail.clone();
        mail.to = vec![to];
        let (subject, text) = crate::alerts::render_notice(
            notice,
            &state.organization.name,
            &config.alerts.owner_notice.contact,
        );
        let outgoing = crate::mail::Outgoing::plain(subject, text);
        let digest = ring::digest::digest(&ring::digest::SHA256, notice.dedup_key.as_bytes());
        let hex: String = digest.as_ref()[..12]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let id = format!("notice-{hex}");
        crate::mail::enqueue_and_flush(&mail, ctx.store, &outgoing, &id, now).await?;
        if ctx.store.record_owner_notice(notice, &id, now)? {
            sent += 1;
        }
    }
    Ok(sent)
}

/// Delivers every channel's due alerts: HTTP channels by POST, email channels through the mail
/// outbox (an alert handed to it is sent from there).
pub async fn flush_alerts(ctx: &mut JobContext<'_>) -> anyhow::Result<AlertsSummary> {
    use crate::config::ChannelKind;
    let now = ctx.now();
    let config = ctx.config;
    let mut summary = AlertsSummary::default();
    for channel in &config.alerts.channels {
        if channel.kind == ChannelKind::Email {
            let rows = ctx.store.due_alerts(&channel.name, now)?;
            let (ids, alerts) = crate::alerts::deliver::parse_rows(&rows);
            if alerts.is_empty() {
                continue;
            }
            let Some(mail) = &config.mail else {
                continue;
            };
            let mut mail = mail.clone();
            mail.to = channel.to.clone();
            let (subject, text) =
                crate::alerts::render_email(&alerts, config.alerts.max_per_message);
            let outgoing = crate::mail::Outgoing::plain(subject, text);
            let id = format!(
                "alert-{}",
                crate::alerts::deliver::delivery_id(&channel.name, &ids)
            );
            crate::mail::enqueue_and_flush(&mail, ctx.store, &outgoing, &id, now).await?;
            ctx.store.alerts_sent(&ids, now)?;
            summary.sent += ids.len() as u64;
        } else {
            let flushed =
                crate::alerts::deliver::flush_channel(ctx.store, &config.alerts, channel, now)
                    .await?;
            summary.sent += flushed.alerts_sent;
            summary.retrying += flushed.alerts_retrying;
            summary.failed += flushed.alerts_failed;
        }
    }
    Ok(summary)
}

/// Sends a test alert to channel `name` now (`orgwarden alerts test`), through its outbox.
pub async fn alerts_test_job(
    ctx: &mut JobContext<'_>,
    name: &str,
) -> anyhow::Result<AlertsSummary> {
    use crate::alerts::{Alert, AlertEvent, OrgRef};
    let now = ctx.now();
    let channel = ctx
        .config
        .alerts
        .channels
        .iter()
        .find(|c| c.name == name)
        .with_context(|| {
            let names: Vec<&str> = ctx
                .config
                .alerts
                .channels
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            format!(
                "no alert channel named {name:?} (configured: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )
        })?;
    let org = ctx
        .store
        .latest_complete(None)?
        .map(|r| OrgRef {
            id: r.org_id.unwrap_or_default(),
            name: r.org_name.unwrap_or_default(),
        })
        .unwrap_or_default();
    let alert = Alert {
        event: AlertEvent::Test,
        dedup_key: format!("test:{}", crate::org::ts(&now)),
        title: format!("test message for channel {name}"),
        detail: "orgwarden alerts test: this channel works".to_owned(),
        severity: None,
        organization: org,
        at: now,
        findings: Vec::new(),
    };
    ctx.store.enqueue_alert(
        &channel.name,
        &alert.dedup_key,
        alert.event.as_str(),
        &serde_json::to_string(&alert)?,
        now,
    )?;
    let mut summary = flush_alerts(ctx).await?;
    summary.queued = 1;
    Ok(summary)
}

/// Delivers every outbox message whose retry time has come (mail, then alerts).
pub async fn outbox_job(ctx: &mut JobContext<'_>) -> anyhow::Result<crate::mail::OutboxSummary> {
    if !ctx.config.alerts.channels.is_empty() {
        if let Err(error) = flush_alerts(ctx).await {
            tracing::error!("alerts: {error:#}");
        }
    }
    let now = ctx.now();
    match &ctx.config.mail {
        Some(mail) => crate::mail::flush_outbox(mail, ctx.store, now).await,
        None => Ok(crate::mail::OutboxSummary::default()),
    }
}

#[cfg(test)]
mod tests {
    use super::Since;

    #[test]
    fn since_reads_a_run_a_local_date_or_a_time() {
        let berlin: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
        let at = |text: &str| Since::Time(text.parse().unwrap());
        let cases = [
            ("12", Ok(Since::Run(12))),
            (" 7 ", Ok(Since::Run(7))),
            // Midnight in schedule.timezone.
            ("2026-03-02", Ok(at("2026-03-01T23:00:00Z"))),
            ("2026-07-02", Ok(at("2026-07-01T22:00:00Z"))),
            ("2026-03-02T08:30:00+01:00", Ok(at("2026-03-02T07:30:00Z"))),
        ];
        for (text, want) in cases {
            assert_eq!(Since::parse(text, berlin), want, "{text}");
        }
        for bad in ["last week", "2026-13-01", ""] {
            let error = Since::parse(bad, berlin).unwrap_err();
            assert!(error.contains("expected a run id, a date"), "{error}");
        }
    }
}
