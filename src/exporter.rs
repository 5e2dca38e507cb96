//! Where the metrics leave the process: `GET /metrics` and `GET /healthz` over HTTP (the daemon's
//! `[metrics] listen`), and the textfile for node_exporter (`[metrics] textfile`), written
//! atomically after each job by the daemon and by the one-shot commands.
//!
//! The figures come from the database (a reading connection per scrape, so a scrape never waits
//! for a running job) plus this process's own counters: the daemon's job runs ([`LiveJobs`]) and
//! the API client's answers by status. Rendering is `metrics::render`.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};

use crate::admin_api::AdminClient;
use crate::clock::SharedClock;
use crate::config::Config;
use crate::metrics::{self, JobMetrics, MetricsInput};
use crate::store::Store;

/// This build's version, as `orgwarden_build_info` shows it.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The daemon's record of its own job runs (the database knows snapshots, audits and reports,
/// not how long a job took or that it failed before writing anything).
#[derive(Debug, Default)]
pub struct LiveJobs {
    jobs: Mutex<BTreeMap<String, JobMetrics>>,
}

impl LiveJobs {
    /// Records one finished run of `job`.
    pub fn record(&self, job: &str, ok: bool, duration_seconds: f64, finished: DateTime<Utc>) {
        let mut jobs = self.jobs.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = jobs.entry(job.to_owned()).or_default();
        entry.duration_seconds = Some(duration_seconds);
        if ok {
            entry.last_success = Some(finished.timestamp_millis() as f64 / 1000.0);
        } else {
            entry.failures += 1;
        }
    }

    fn snapshot(&self) -> BTreeMap<String, JobMetrics> {
        self.jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The metrics input: the database's figures, with the process's own merged in (a job the
/// daemon ran takes its duration from the daemon, its last success is the later of the two, and
/// its failures add up).
pub fn gather(
    store: &Store,
    live: Option<&LiveJobs>,
    client: Option<&AdminClient>,
) -> anyhow::Result<MetricsInput> {
    let mut input = store.metrics_input(VERSION)?;
    if let Some(live) = live {
        for (job, own) in live.snapshot() {
            let entry = input.jobs.entry(job).or_default();
            entry.last_success = match (entry.last_success, own.last_success) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            entry.duration_seconds = own.duration_seconds.or(entry.duration_seconds);
            entry.failures += own.failures;
        }
    }
    if let Some(client) = client {
        input.api_requests = client.requests_by_status();
    }
    Ok(input)
}

/// Why the data is stale (no complete snapshot, or one older than twice the audit period: the
/// rule `status` uses), or `None` when it is fresh.
pub fn staleness(
    store: &Store,
    config: &Config,
    now: DateTime<Utc>,
) -> anyhow::Result<Option<String>> {
    let age = store
        .latest_complete(None)?
        .map(|r| now - r.finished_at.unwrap_or(r.started_at));
    let s = &config.schedule;
    Ok(crate::schedule::staleness(age, &s.audit, s.timezone, now))
}

/// Writes `text` to `path` atomically (a temporary file in the same directory, synced, then
/// renamed over it), readable by node_exporter (mode 0644).
pub fn write_textfile(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".orgwarden-metrics")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    file.write_all(text.as_bytes())?;
    file.as_file().sync_all()?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))?;
    }
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// After a one-shot command: rewrites `[metrics] textfile` if one is configured. A failure is
/// logged, never the command's failure.
pub fn after_command(config: &Config, store: &Store, client: Option<&AdminClient>) {
    let Some(path) = &config.metrics.textfile else {
        return;
    };
    let written = gather(store, None, client)
        .and_then(|input| Ok(write_textfile(path, &metrics::render(&input))?));
    if let Err(error) = written {
        tracing::warn!(
            "cannot write the metrics textfile {}: {error:#}",
            path.display()
        );
    }
}

/// What the HTTP endpoints read.
pub trait Scrape: Send + Sync + 'static {
    /// The text of `GET /metrics`.
    fn metrics(&self) -> anyhow::Result<String>;
    /// Why `GET /healthz` is 503, or `None` for 200.
    fn staleness(&self) -> anyhow::Result<Option<String>>;
}

/// A [`Scrape`] reading the database at `db` with a reading connection per request.
pub struct DbScrape {
    pub db: PathBuf,
    pub config: Config,
    pub clock: SharedClock,
    pub live: Option<Arc<LiveJobs>>,
    pub client: Option<AdminClient>,
}

impl Scrape for DbScrape {
    fn metrics(&self) -> anyhow::Result<String> {
        let store = Store::open_reader(&self.db)?;
        let input = gather(&store, self.live.as_deref(), self.client.as_ref())?;
        Ok(metrics::render(&input))
    }

    fn staleness(&self) -> anyhow::Result<Option<String>> {
        let store = Store::open_reader(&self.db)?;
        staleness(&store, &self.config, self.clock.now())
    }
}

/// Serves `GET /metrics` and `GET /healthz` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    source: Arc<dyn Scrape>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(health_handler))
        .with_state(source);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics_handler(State(source): State<Arc<dyn Scrape>>) -> Response {
    match tokio::task::spawn_blocking(move || source.metrics()).await {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Ok(Err(error)) => {
            tracing::warn!("metrics scrape failed: {error:#}");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{error:#}\n")).into_response()
        }
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")).into_response(),
    }
}

async fn health_handler(State(source): State<Arc<dyn Scrape>>) -> Response {
    match tokio::task::spawn_blocking(move || source.staleness()).await {
        Ok(Ok(None)) => (StatusCode::OK, "ok\n").into_response(),
        Ok(Ok(Some(problem))) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("stale: {problem}\n"),
        )
            .into_response(),
        Ok(Err(error)) => (StatusCode::SERVICE_UNAVAILABLE, format!("{error:#}\n")).into_response(),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, format!("{error}\n")).into_response(),
    }
}
