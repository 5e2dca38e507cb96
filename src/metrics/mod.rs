//! The Prometheus metrics, rendered from what the store and the daemon know.
//!
//! [`render`] is pure: a [`MetricsInput`] in (gathered by `exporter` from the database and the
//! daemon's in-memory job and client counters), the Prometheus text exposition format (0.0.4,
//! which node_exporter's textfile collector and every Prometheus read) out. The metrics are built
//! with `prometheus-client` in a fresh registry per rendering, so a scrape always shows the
//! database as it is now and a label that vanished from it vanishes from the output.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The prefix of every metric.
pub const PREFIX: &str = "orgwarden";

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One job's figures (`job` is `snapshot`, `audit`, `report`, `outbox`, ...).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobMetrics {
    /// When it last succeeded, in seconds since the epoch.
    pub last_success: Option<f64>,
    /// How long its last run took.
    pub duration_seconds: Option<f64>,
    /// Failed runs (counted by the database for snapshots, by the daemon for its jobs).
    pub failures: u64,
}

/// Everything the metrics show.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsInput {
    pub version: String,
    pub jobs: BTreeMap<String, JobMetrics>,
    /// (rule, severity, status) → findings in that state.
    pub findings: BTreeMap<(String, String, String), u64>,
    /// (action, outcome) → audit-trail rows.
    pub actions: BTreeMap<(String, String), u64>,
    /// (kind, status) → outbox messages.
    pub outbox: BTreeMap<(String, String), u64>,
    /// Object kind → count in the last complete snapshot.
    pub snapshot_objects: BTreeMap<String, u64>,
    /// HTTP status (or `error` for no answer) → Admin API requests made by this process.
    pub api_requests: BTreeMap<String, u64>,
}

type Labels = Vec<(String, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// Renders the metrics in the Prometheus text format.
pub fn render(input: &MetricsInput) -> String {
    let mut registry = Registry::with_prefix(PREFIX);

    let last_success = Family::<Labels, FloatGauge>::default();
    let duration = Family::<Labels, FloatGauge>::default();
    let failures = Family::<Labels, Counter>::default();
    for (job, m) in &input.jobs {
        let l = labels(&[("job", job)]);
        if let Some(at) = m.last_success {
            last_success.get_or_create(&l).set(at);
        }
        if let Some(seconds) = m.duration_seconds {
            duration.get_or_create(&l).set(seconds);
        }
        failures.get_or_create(&l).inc_by(m.failures);
    }
    registry.register(
        "last_success_timestamp_seconds",
        "When the job last succeeded (Unix time)",
        last_success,
    );
    registry.register(
        "job_duration_seconds",
        "How long the job's last run took",
        duration,
    );
    registry.register("job_failures", "Failed runs of the job", failures);

    let findings = Family::<Labels, Gauge>::default();
    for ((rule, severity, status), n) in &input.findings {
        findings
            .get_or_create(&labels(&[
                ("rule", rule),
                ("severity", severity),
                ("status", status),
            ]))
            .set(gauge_value(*n));
    }
    registry.register(
        "findings",
        "Findings by rule, severity and status",
        findings,
    );

    let actions = Family::<Labels, Counter>::default();
    for ((action, outcome), n) in &input.actions {
        actions
            .get_or_create(&labels(&[("action", action), ("outcome", outcome)]))
            .inc_by(*n);
    }
    registry.register(
        "remediation_actions",
        "Remediation actions in the audit trail by action and outcome",
        actions,
    );

    let outbox = Family::<Labels, Gauge>::default();
    for ((kind, status), n) in &input.outbox {
        outbox
            .get_or_create(&labels(&[("kind", kind), ("status", status)]))
            .set(gauge_value(*n));
    }
    registry.register(
        "outbox_messages",
        "Messages in the outbox by kind and status",
        outbox,
    );

    let objects = Family::<Labels, Gauge>::default();
    for (kind, n) in &input.snapshot_objects {
        objects
            .get_or_create(&labels(&[("kind", kind)]))
            .set(gauge_value(*n));
    }
    registry.register(
        "snapshot_objects",
        "Objects in the last complete snapshot by kind",
        objects,
    );

    let requests = Family::<Labels, Counter>::default();
    for (status, n) in &input.api_requests {
        requests
            .get_or_create(&labels(&[("status", status)]))
            .inc_by(*n);
    }
    registry.register(
        "api_requests",
        "Admin API requests made by this process by HTTP status (error: no answer)",
        requests,
    );

    let build = Family::<Labels, Gauge>::default();
    build
        .get_or_create(&labels(&[("version", &input.version)]))
        .set(1);
    registry.register("build_info", "The running orgwarden's version", build);

    let mut open_metrics = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut open_metrics, &registry);
    to_prometheus_text(&open_metrics)
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// prometheus-client writes OpenMetrics; the classic text format (0.0.4) names a counter's family
/// with its `_total` sample and has no `# EOF`. Everything else is the same.
fn to_prometheus_text(open_metrics: &str) -> String {
    let counters: Vec<&str> = open_metrics
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len());
    for line in open_metrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(&name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;
