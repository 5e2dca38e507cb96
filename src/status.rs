//! `orgwarden status`: what a person or a monitoring system needs to know at a glance.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::org::{RunRecord, RunStatus};
use crate::store::Store;

/// The state of one orgwarden installation.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub database: String,
    /// The newest runs, newest first.
    pub last_runs: Vec<RunRecord>,
    pub last_complete: Option<RunRecord>,
    /// Seconds since the last complete snapshot finished.
    pub last_complete_age_secs: Option<i64>,
    /// New and open findings (exempted ones excluded) by severity.
    pub open_findings: BTreeMap<String, usize>,
    pub exempted_findings: usize,
    /// Messages waiting in the mail outbox, sent, and failed for good (and when the last was sent).
    pub outbox: crate::store::OutboxCounts,
    /// Alerts waiting for delivery, per channel.
    pub pending_alerts: Vec<crate::store::PendingAlerts>,
    /// The usage ingest (`None` when `[usage]` is disabled).
    pub usage: Option<UsageStatus>,
    /// Who holds the database's writer lock (`pid N running \`orgwarden run\` since ...`), if anyone.
    pub writer: Option<String>,
    /// Next times of each scheduled job, in the configured timezone.
    pub next: BTreeMap<String, Option<String>>,
    /// Healthy: a complete snapshot no older than twice the audit period, the newest run not
    /// abandoned, and every scheduled job with a next occurrence.
    pub healthy: bool,
    pub problem: Option<String>,
}

/// The usage ingest at a glance: the days stored and the last attempt. A failed ingest is shown
/// here (and leaves the usage rules `not_evaluated`) but does not make the installation unhealthy.
#[derive(Debug, Clone, Serialize)]
pub struct UsageStatus {
    pub covered_from: Option<chrono::NaiveDate>,
    pub covered_to: Option<chrono::NaiveDate>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
}

/// The next occurrence of a cron expression (seconds required) after `after`.
pub fn next_occurrence(
    expr: &str,
    tz: chrono_tz::Tz,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let cron = crate::config::parse_cron(expr).ok()?;
    crate::schedule::next_occurrence(&cron, tz, after).ok()
}

pub use crate::schedule::period;

/// Reads the status from the database (read-only) and the configured schedule.
pub fn status(config: &Config, store: &Store, now: DateTime<Utc>) -> anyhow::Result<Status> {
    let mut runs = store.runs()?;
    runs.reverse();
    let last_complete = store.latest_complete(None)?;
    let age = last_complete
        .as_ref()
        .map(|r| now - r.finished_at.unwrap_or(r.started_at));
    let mut open_findings: BTreeMap<String, usize> = BTreeMap::new();
    let mut exempted = 0;
    for finding in store.findings(true)? {
        if finding.status.is_active() {
            *open_findings
                .entry(finding.severity.as_str().to_owned())
                .or_default() += 1;
        } else {
            exempted += 1;
        }
    }
    let outbox = store.outbox_counts()?;
    let pending_alerts = store.pending_alerts()?;
    let s = &config.schedule;
    let mut next = BTreeMap::new();
    let mut problems = Vec::new();
    let jobs = [
        ("audit".to_owned(), s.audit.as_str(), "schedule.audit"),
        ("report".to_owned(), s.report.as_str(), "schedule.report"),
        ("outbox".to_owned(), s.outbox.as_str(), "schedule.outbox"),
    ];
    // A directory source with its own schedule is a job of the daemon too.
    let sources = config.directories.iter().filter_map(|source| {
        source.schedule.as_deref().map(|expr| {
            (
                format!("directory {}", source.name),
                expr,
                "[[directories]] schedule",
            )
        })
    });
    for (job, expr, key) in jobs.into_iter().chain(sources) {
        let at = next_occurrence(expr, s.timezone, now);
        if at.is_none() {
            problems.push(format!(
                "the {job} job will never run: {key} = \"{expr}\" has no next occurrence in {}",
                s.timezone
            ));
        }
        next.insert(
            job,
            at.map(|t| {
                t.with_timezone(&s.timezone)
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            }),
        );
    }
    if let Some(stale) = crate::schedule::staleness(age, &s.audit, s.timezone, now) {
        problems.insert(0, stale);
    }
    // The newest run was abandoned: its process died mid-snapshot (a reader sees this as soon
    // as no writer holds the lock), and no run has completed since.
    if let Some(run) = runs.first().filter(|r| r.status == RunStatus::Abandoned) {
        problems.push(format!(
            "run {} was abandoned: its process stopped before the run finished",
            run.id
        ));
    }
    let problem = (!problems.is_empty()).then(|| problems.join("; "));
    let usage = if config.usage.enabled {
        let (covered_from, covered_to) = crate::store::covered_range(&store.usage_days()?);
        let last = store.last_usage_ingest()?;
        Some(UsageStatus {
            covered_from,
            covered_to,
            last_attempt_at: last.as_ref().map(|r| r.finished_at),
            last_error: last.and_then(|r| r.error),
        })
    } else {
        None
    };
    Ok(Status {
        usage,
        database: store.path().display().to_string(),
        last_runs: runs.into_iter().take(5).collect(),
        last_complete,
        last_complete_age_secs: age.map(|a| a.num_seconds()),
        open_findings,
        exempted_findings: exempted,
        outbox,
        pending_alerts,
        writer: crate::store::WriterLock::holder(store.path()),
        next,
        healthy: problem.is_none(),
        problem,
    })
}

/// The human-readable form.
pub fn render_text(status: &Status) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "database: {}", status.database);
    let daemon = match &status.writer {
        // The daemon's holder name (`daemon::HOLDER`, not imported here: status sits beside it).
        Some(holder) if holder.contains("`orgwarden run`") => format!("running ({holder})"),
        Some(holder) => format!("not running; the database is in use by {holder}"),
        None => "not running".to_owned(),
    };
    let _ = writeln!(out, "daemon: {daemon}");
    match &status.last_complete {
        Some(run) => {
            let _ = writeln!(
                out,
                "last complete snapshot: run {} of {} ({} min ago)",
                run.id,
                run.org_name.as_deref().unwrap_or("?"),
                status.last_complete_age_secs.unwrap_or(0) / 60
            );
        }
        None => {
            let _ = writeln!(out, "last complete snapshot: none");
        }
    }
    let _ = writeln!(out, "recent runs:");
    for run in &status.last_runs {
        let _ = writeln!(
            out,
            "  run {:>5}  {:<9}  {}{}",
            run.id,
            run.status.as_str(),
            crate::org::ts(&run.started_at),
            run.error
                .as_deref()
                .map(|e| format!("  {e}"))
                .unwrap_or_default()
        );
    }
    let total: usize = status.open_findings.values().sum();
    let by: Vec<String> = ["critical", "high", "medium", "low"]
        .iter()
        .filter_map(|s| status.open_findings.get(*s).map(|n| format!("{n} {s}")))
        .collect();
    let _ = writeln!(
        out,
        "open findings: {total}{} ({} exempted)",
        if by.is_empty() {
            String::new()
        } else {
            format!(" ({})", by.join(", "))
        },
        status.exempted_findings
    );
    let o = &status.outbox;
    let _ = writeln!(
        out,
        "outbox: {} pending{}, {} sent, {} failed",
        o.pending,
        o.oldest_pending
            .map(|t| format!(" (oldest from {})", crate::org::ts(&t)))
            .unwrap_or_default(),
        o.sent,
        o.failed
    );
    for p in &status.pending_alerts {
        let _ = writeln!(
            out,
            "alerts: {} pending for channel {}{}{}",
            p.pending,
            p.channel,
            p.oldest
                .map(|t| format!(" (oldest from {})", crate::org::ts(&t)))
                .unwrap_or_default(),
            p.last_error
                .as_deref()
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(
        out,
        "last report sent: {}",
        o.last_sent
            .map(|t| crate::org::ts(&t))
            .unwrap_or_else(|| "never".to_owned())
    );
    if let Some(u) = &status.usage {
        let day = |d: Option<chrono::NaiveDate>| d.map_or("-".to_owned(), |d| d.to_string());
        let _ = writeln!(
            out,
            "usage: days {} to {}, last ingest {}{}",
            day(u.covered_from),
            day(u.covered_to),
            u.last_attempt_at
                .map(|t| crate::org::ts(&t))
                .unwrap_or_else(|| "never".to_owned()),
            u.last_error
                .as_deref()
                .map(|e| format!(" FAILED: {e}"))
                .unwrap_or_default()
        );
    }
    for (job, next) in &status.next {
        let _ = writeln!(out, "next {job}: {}", next.as_deref().unwrap_or("never"));
    }
    let _ = writeln!(out, "health: {}", status.problem.as_deref().unwrap_or("ok"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Environment;

    fn config(db: &std::path::Path) -> Config {
        let text = format!("[store]\npath = \"{}\"\n", db.display());
        Config::from_toml(&text, &Environment::default()).unwrap().0
    }

    /// A store with one complete (empty) snapshot taken at `now`.
    fn store_with_a_snapshot(db: &std::path::Path, now: DateTime<Utc>) -> Store {
        let store = Store::open_writer(db, "test", now).unwrap();
        let run = store.begin_run(now).unwrap();
        let mut writer = store.snapshot_writer(run).unwrap();
        writer.organization(crate::org::Organization {
            id: "org_1".to_owned(),
            name: "Org".to_owned(),
        });
        writer.finish(0, 0, now).unwrap();
        drop(store);
        Store::open_reader(db).unwrap()
    }

    #[test]
    fn a_job_that_will_never_run_makes_status_unhealthy_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("o.db");
        let now: DateTime<Utc> = "2026-03-01T12:00:00Z".parse().unwrap();
        let store = store_with_a_snapshot(&db, now);
        let mut config = config(&db);
        let healthy = status(&config, &store, now).unwrap();
        assert!(healthy.healthy, "{:?}", healthy.problem);

        // February 30th never comes (the configuration refuses it; a daemon may hold an old one).
        config.schedule.report = "0 0 0 30 2 *".to_owned();
        let never = status(&config, &store, now).unwrap();
        assert!(!never.healthy);
        let problem = never.problem.unwrap();
        assert!(
            problem.contains("the report job will never run"),
            "{problem}"
        );
        assert!(problem.contains("0 0 0 30 2 *"), "{problem}");
        assert_eq!(never.next["report"], None);
        assert!(render_text(&status(&config, &store, now).unwrap()).contains("will never run"));
    }
}
