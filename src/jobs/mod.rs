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

mod alerts;
mod audit;
mod directory;
mod report;

pub use alerts::*;
pub use audit::*;
pub use directory::*;
pub use report::*;

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

    /// The API client, or why there is none (a [`ClientConfigError`] the CLI exits 78 for).
    pub fn client(&self) -> anyhow::Result<&AdminClient> {
        self.client
            .as_ref()
            .map_err(|error| anyhow::Error::new(error.clone()))
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
