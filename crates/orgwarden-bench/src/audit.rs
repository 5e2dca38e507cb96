//! The audit's figures: the whole job as the daemon runs it, then its read and its evaluation
//! measured on their own (wall and, where the platform tells, CPU time).

use std::path::Path;

use orgwarden::clock::SharedClock;
use orgwarden::config::Config;
use orgwarden::jobs::{audit_job, AuditInput, JobContext};
use orgwarden::store::Store;
use serde::Serialize;

/// Times the audit of the latest complete snapshot in `db` (used by the benchmark): reading the
/// snapshot and its predecessor, evaluating every rule with default settings plus a departed
/// domain, and recording the findings. Then, to show where that time goes, times the reading and
/// the evaluation again on their own (the rest of the audit is recording the findings).
pub(crate) fn bench_audit(db: &Path, clock: SharedClock) -> anyhow::Result<BenchAudit> {
    bench_audit_with(db, clock, "")
}

/// [`bench_audit`] with `extra` configuration (whole sections, e.g. `[[directories]]`).
pub(crate) fn bench_audit_with(
    db: &Path,
    clock: SharedClock,
    extra: &str,
) -> anyhow::Result<BenchAudit> {
    let (config, _) = Config::from_toml(
        &format!(
            "[rules.departed_domains]\ndeparted_domains = [\"contractor.example.net\"]\n\n{extra}"
        ),
        &orgwarden::config::Environment::default(),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut store = Store::open_writer(db, "orgwarden bench", clock.now())?;
    let started = std::time::Instant::now();
    let cpu_before = thread_cpu_secs();
    let summary = audit_job(
        &mut JobContext::new(&config, &mut store, clock.clone()),
        None,
    )?;
    let secs = started.elapsed().as_secs_f64();
    let cpu_secs = thread_cpu_secs()
        .zip(cpu_before)
        .map(|(after, before)| after - before);

    // The same loading and evaluation as the job's, measured apart.
    let started = std::time::Instant::now();
    let input = AuditInput::load(&config, &store, None)?;
    let load_secs = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let cpu_before = thread_cpu_secs();
    let evaluation = orgwarden::policy::evaluate(&input.policy_input(&config, clock.now()));
    let evaluate_secs = started.elapsed().as_secs_f64();
    let evaluate_cpu_secs = thread_cpu_secs()
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    debug_assert_eq!(evaluation.findings.len(), summary.result.findings.len());
    Ok(BenchAudit {
        secs,
        cpu_secs,
        findings: summary.result.findings.len(),
        load_secs,
        evaluate_secs,
        evaluate_cpu_secs,
    })
}

/// The CPU time this thread has used (Linux: `/proc/thread-self/schedstat`, in nanoseconds), so
/// that a benchmark on a busy machine can tell work from waiting for a core.
fn thread_cpu_secs() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(nanos as f64 / 1e9)
}

/// The benchmark's audit figures.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct BenchAudit {
    /// The whole audit: read, evaluate, record.
    pub(crate) secs: f64,
    /// The CPU time of the whole audit (where the platform tells).
    pub(crate) cpu_secs: Option<f64>,
    pub(crate) findings: usize,
    /// Reading the snapshot, its predecessor and the former members, measured on its own.
    pub(crate) load_secs: f64,
    /// Evaluating the rules, measured on its own.
    pub(crate) evaluate_secs: f64,
    pub(crate) evaluate_cpu_secs: Option<f64>,
}
