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
    Ok(CycleSummary {
        snapshot,
        pruned_runs: pruned.runs,
        pruned_versions: pruned.versions,
    })
}

/// Times the audit of the latest complete snapshot in `db` (used by the benchmark).
pub fn bench_audit(_db: &Path) -> anyhow::Result<f64> {
    anyhow::bail!("the audit is not built yet")
}
