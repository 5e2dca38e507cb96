//! `orgwarden run`: the long-running service. Schedules the jobs of [`crate::jobs`] from
//! `[schedule]`, reloads the configuration on SIGHUP, stops cleanly on SIGTERM/SIGINT and talks
//! to systemd (`Type=notify`: READY, STATUS, WATCHDOG, RELOADING, STOPPING).
//!
//! # Jobs
//! [`JOBS`] is the table of scheduled jobs; adding one is one line (see its documentation). Each
//! job gets its own cron expression from `[schedule]`, evaluated in `schedule.timezone` with
//! `croner` (the parser `config` validates with; DST changes are handled because the zone is a
//! real `chrono_tz::Tz`, not a fixed offset).
//!
//! A `[[directories]]` source with its own `schedule` gets a loop of its own (named
//! `directory NAME`, in the same time zone): it reads the source without holding the database,
//! then records the read ([`jobs::record_directory_read`]); the audit cycle does not read it
//! again but uses that latest read (see [`jobs::directory_views`] for when it is too old).
//!
//! # Execution model
//! The daemon opens the database once, at start, as the single writer (a second daemon is refused
//! and told who holds it) and keeps the [`Store`] in a `Mutex`. A `Store` is `Send` but not
//! `Sync`, so job futures are not `Send`: each run goes to its own blocking thread and is driven
//! there with `Handle::block_on`. A job never overlaps itself: a tick that finds the previous run
//! still going is skipped with a warning. A failing job is logged with its cause chain and tried
//! again at its next tick; the daemon never exits because of a job.
//!
//! # Signals
//! [`run`] takes its stop and reload requests as a channel of [`Control`]s; `cli` feeds it from
//! SIGTERM, SIGINT and SIGHUP (and tests may feed it directly). A closed channel means stop.
//! `run` returns a [`DaemonError`]; `cli` alone turns it into an exit code.
//!
//! # Stopping
//! SIGTERM or SIGINT: no new runs start; a running job may finish within
//! `schedule.shutdown_timeout`; then the WAL is checkpointed, the database closed and `run`
//! returns `Ok`. If the job does not finish in time (or a second signal arrives), it returns
//! [`DaemonError::ShutdownTimeout`] without waiting further: the interrupted snapshot run is marked `abandoned` at the next start.
//!
//! # Reloading
//! SIGHUP re-reads the same configuration file. An invalid configuration is logged with every
//! problem and the running one kept. A valid one is used by every run that starts afterwards (a
//! running job finishes with the configuration it started with); a changed schedule is applied at
//! once. `store.path` and `[log]` cannot change live: the daemon warns that they need a restart.

use std::fmt::Display;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use croner::Cron;
use sd_notify::NotifyState;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin_api::{AdminClient, ClientConfigError};
use crate::clock::SharedClock;
use crate::config::{self, Config, Environment, ScheduleConfig};
use crate::jobs::{self, JobContext};
use crate::schedule::next_occurrence;
use crate::store::{RunStatus, Store, StoreError};

/// The holder name written in the writer lock, shown to anyone refused the database.
pub const HOLDER: &str = crate::store::DAEMON_HOLDER;

/// What a job returns: a one-line summary for the log and the systemd status.
pub type JobFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<String>> + 'a>>;

/// One scheduled job.
pub struct JobSpec {
    /// Used in logs and the systemd status.
    pub name: &'static str,
    /// Where the job's cron expression (with seconds) is in `[schedule]`.
    pub schedule: fn(&ScheduleConfig) -> &str,
    /// Also run once at start when `schedule.run_on_start` is set.
    pub on_start: bool,
    /// The job itself, usually `|ctx| summarized(jobs::some_job(ctx))`.
    pub run: JobFn,
}

/// A job of [`JOBS`]: runs with a [`JobContext`].
pub type JobFn = for<'a, 'b> fn(&'a mut JobContext<'b>) -> JobFuture<'a>;

/// The scheduled jobs. To add one, write an `async fn(&mut JobContext<'_>) -> anyhow::Result<T>`
/// in `jobs.rs` whose summary `T` implements `Display`, and add one line here, e.g.
/// `job("report", |s| &s.report, false, |ctx| summarized(jobs::report_job(ctx))),`.
pub const JOBS: &[JobSpec] = &[
    job(
        "audit",
        |s| &s.audit,
        true,
        |ctx| summarized(jobs::audit_cycle(ctx)),
    ),
    job(
        "report",
        |s| &s.report,
        false,
        |ctx| summarized(jobs::scheduled_report(ctx)),
    ),
    job(
        "outbox",
        |s| &s.outbox,
        false,
        |ctx| summarized(jobs::outbox_job(ctx)),
    ),
];

/// Builds a [`JobSpec`] (keeps each line of [`JOBS`] short).
pub const fn job(
    name: &'static str,
    schedule: fn(&ScheduleConfig) -> &str,
    on_start: bool,
    run: JobFn,
) -> JobSpec {
    JobSpec {
        name,
        schedule,
        on_start,
        run,
    }
}

/// Boxes a job's future and turns its summary into text.
pub fn summarized<'a, T: Display>(
    job: impl Future<Output = anyhow::Result<T>> + 'a,
) -> JobFuture<'a> {
    Box::pin(async move { job.await.map(|summary| summary.to_string()) })
}

impl Display for jobs::CycleSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.snapshot;
        let c = &s.counts;
        write!(
            f,
            "snapshot run {}: {} members, {} invites, {} workspaces, {} workspace members, {} API keys",
            s.run_id,
            c.members,
            c.invites,
            c.workspaces,
            c.workspace_members,
            c.api_keys
        )?;
        let audit = &self.cleanup.audit.result;
        write!(
            f,
            "; {} findings ({} new, {} resolved)",
            audit.findings.len() - audit.n_resolved,
            audit.n_new,
            audit.n_resolved
        )?;
        let plan = &self.cleanup.plan;
        write!(
            f,
            "; remediation {}: {} planned, {} eligible",
            plan.mode.as_str(),
            plan.actions.len(),
            plan.eligible().count()
        )?;
        if self.cleanup.applied {
            let ok = self
                .cleanup
                .executed
                .iter()
                .filter(|e| e.status == crate::policy::ActionStatus::Succeeded)
                .count();
            write!(f, ", {ok} done of {}", self.cleanup.executed.len())?;
        }
        if !plan.guard_findings.is_empty() {
            write!(f, "; {} guards tripped", plan.guard_findings.len())?;
        }
        if plan.suspended.is_some() {
            write!(f, "; remediation suspended")?;
        }
        if let Some(why) = &self.cleanup.stopped {
            write!(f, "; stopped: {why}")?;
        }
        if self.pruned_runs > 0 || self.pruned_versions > 0 {
            write!(
                f,
                "; pruned {} runs, {} versions",
                self.pruned_runs, self.pruned_versions
            )?;
        }
        if self.pruned_directory_reads > 0 {
            write!(
                f,
                "; pruned {} directory reads",
                self.pruned_directory_reads
            )?;
        }
        if self.pruned_usage_days > 0 {
            write!(f, "; pruned {} usage days", self.pruned_usage_days)?;
        }
        Ok(())
    }
}

impl Display for jobs::DirectoryReadSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {} active, {} disabled, {} deleted",
            self.name, self.kind, self.active, self.disabled, self.deleted
        )?;
        if let Some(assigned) = self.assigned {
            write!(f, ", {assigned} assigned")?;
        }
        if let Some(error) = &self.error {
            write!(f, "; failed: {error}")?;
        }
        Ok(())
    }
}

impl Display for jobs::ReportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "report of snapshot run {} written to {}",
            self.run_id,
            self.out_dir.display()
        )?;
        if let Some(outbox) = &self.outbox {
            write!(f, "; email ")?;
            Display::fmt(outbox, f)?;
        }
        Ok(())
    }
}

impl Display for crate::mail::OutboxSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} tried, {} sent, {} retrying, {} failed",
            self.attempted, self.sent, self.retrying, self.failed
        )
    }
}

/// What `run` is asked to do, besides running the jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Stop (named in the log, e.g. "SIGTERM"); a second one during shutdown stops at once.
    Stop(&'static str),
    /// Load the configuration file again (SIGHUP).
    Reload,
}

/// Why the daemon did not start or did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration cannot run: no usable API client.
    #[error("cannot start: {0}")]
    Config(#[from] ClientConfigError),
    /// The database cannot be opened (or another writer holds it).
    #[error("cannot start: {0}")]
    Store(#[from] StoreError),
    /// `[metrics] listen` cannot be bound.
    #[error("cannot serve metrics on {addr}: {error}")]
    Metrics { addr: String, error: std::io::Error },
    /// A job was still running when the shutdown timeout passed or a second stop came.
    #[error("stopped without waiting for {running}")]
    ShutdownTimeout { running: String },
}

impl DaemonError {
    /// True for a configuration problem (exit code 78 in `cli`).
    pub fn is_config(&self) -> bool {
        matches!(self, DaemonError::Config(_))
    }
}

/// The configuration for runs that start from now on, with the API client built from it.
struct Current {
    config: Config,
    client: AdminClient,
}

/// State shared by the main loop, the schedule loops and the job threads.
struct Shared {
    /// The configuration for runs that start from now on.
    current: RwLock<Arc<Current>>,
    clock: SharedClock,
    /// The daemon's one writing connection (and the writer lock).
    store: Mutex<Store>,
    /// The scheduled jobs ([`JOBS`], or a test's table).
    jobs: &'static [JobSpec],
    /// Per job (same order as `jobs`): is a run going on?
    running: Vec<AtomicBool>,
    /// Per job: the outcome of the last run, for the systemd status.
    last: Mutex<Vec<Option<String>>>,
    /// The scheduled directory sources (by name) whose read is going on.
    reading: Mutex<std::collections::HashSet<String>>,
    /// Per scheduled directory source: the outcome of its last read, for the systemd status.
    last_reads: Mutex<std::collections::BTreeMap<String, String>>,
    /// Every job run, so shutdown can wait for them.
    tracker: TaskTracker,
    /// Each job's last duration, success and failures, for the metrics.
    live: Arc<crate::exporter::LiveJobs>,
    runtime: tokio::runtime::Handle,
}

/// Runs the daemon until `controls` says stop (or closes). `config_path` is what `--config` said
/// (re-resolved the same way on a reload); `config` is the configuration already loaded from it.
pub async fn run(
    config_path: Option<PathBuf>,
    config: Config,
    controls: mpsc::Receiver<Control>,
    clock: SharedClock,
) -> Result<(), DaemonError> {
    run_jobs(config_path, config, controls, clock, JOBS).await
}

/// [`run`] with another table of jobs than [`JOBS`]: tests inject jobs (one that panics, say)
/// through it, so the production table needs no test hook.
pub async fn run_jobs(
    config_path: Option<PathBuf>,
    config: Config,
    mut controls: mpsc::Receiver<Control>,
    clock: SharedClock,
    jobs: &'static [JobSpec],
) -> Result<(), DaemonError> {
    let client = AdminClient::from_config(&config.api, clock.clone())?;
    let store = Store::open_writer(&config.store.path, HOLDER, clock.now())?;
    let shared = Arc::new(Shared {
        current: RwLock::new(Arc::new(Current { config, client })),
        clock,
        store: Mutex::new(store),
        jobs,
        running: jobs.iter().map(|_| AtomicBool::new(false)).collect(),
        last: Mutex::new(vec![None; jobs.len()]),
        reading: Mutex::default(),
        last_reads: Mutex::default(),
        tracker: TaskTracker::new(),
        live: Arc::default(),
        runtime: tokio::runtime::Handle::current(),
    });
    let metrics_server = start_metrics_server(&shared).await?;
    let config = shared.current_config();
    let config = &config.config;
    let mut schedule = Schedule::start(&shared, config);
    tracing::info!(
        database = %config.store.path.display(),
        timezone = %config.schedule.timezone,
        "orgwarden daemon started"
    );
    if config.schedule.run_on_start {
        // The scheduled sources first, so the first audit is likelier to find their read.
        for source in scheduled_sources(config) {
            trigger(&shared, Task::Directory(source.0));
        }
        for (index, spec) in shared.jobs.iter().enumerate() {
            if spec.on_start {
                trigger(&shared, Task::Job(index));
            }
        }
    }
    notify(&[NotifyState::Ready, NotifyState::Status("running")]);

    let watchdog = sd_notify::watchdog_enabled().map(|interval| interval / 2);
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    watchdog_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

    let stop_signal = loop {
        tokio::select! {
            control = controls.recv() => match control {
                Some(Control::Stop(name)) => break name,
                None => break "end of the control channel",
                Some(Control::Reload) => {
                    reload(&shared, config_path.as_deref(), &mut schedule).await;
                }
            },
            _ = watchdog_tick.tick(), if watchdog.is_some() => notify(&[NotifyState::Watchdog]),
        }
    };

    // Shutdown: no new runs, let a running one finish, close the database.
    tracing::info!("{stop_signal} received: stopping; no new job runs will start");
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    schedule.stop().await;
    if let Some((stop, server)) = metrics_server {
        let _ = stop.send(());
        let _ = server.await;
    }
    shared.tracker.close();
    let timeout = shared.current_config().config.schedule.shutdown_timeout;
    if !shared.tracker.is_empty() {
        tracing::info!(
            "waiting up to {}s for the running job to finish",
            timeout.as_secs_f64()
        );
    }
    let finished = tokio::select! {
        finished = tokio::time::timeout(timeout, shared.tracker.wait()) => finished.is_ok(),
        _ = second_stop(&mut controls) => false,
    };
    if !finished {
        let mut running: Vec<String> = shared
            .jobs
            .iter()
            .zip(&shared.running)
            .filter(|(_, running)| running.load(Ordering::Acquire))
            .map(|(spec, _)| spec.name.to_owned())
            .collect();
        running.extend(
            shared
                .reading
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|name| format!("directory {name}")),
        );
        tracing::error!(
            "stopping without waiting for {} (shutdown_timeout {}s passed or a second signal came); \
             an interrupted snapshot run is marked abandoned at the next start",
            running.join(", "),
            timeout.as_secs_f64()
        );
        return Err(DaemonError::ShutdownTimeout {
            running: running.join(", "),
        });
    }
    let closing = Arc::clone(&shared);
    let closed = tokio::task::spawn_blocking(move || {
        closing
            .store
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .checkpoint()
    })
    .await;
    match closed {
        Ok(Ok(())) => tracing::info!("database checkpointed and closed; stopped"),
        Ok(Err(error)) => tracing::warn!("stopped; checkpointing the database failed: {error}"),
        Err(error) => tracing::warn!("stopped; checkpointing the database failed: {error}"),
    }
    Ok(())
}

/// A running metrics server: its stop switch and its task.
type MetricsServer = (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
);

/// Binds `[metrics] listen` (when set) and serves `/metrics` and `/healthz` from it. The address
/// is read at start; a reload does not move it.
async fn start_metrics_server(shared: &Arc<Shared>) -> Result<Option<MetricsServer>, DaemonError> {
    let current = shared.current_config();
    let Some(addr) = current.config.metrics.listen else {
        return Ok(None);
    };
    let listener =
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|error| DaemonError::Metrics {
                addr: addr.to_string(),
                error,
            })?;
    tracing::info!("serving /metrics and /healthz on http://{addr}");
    let source = Arc::new(DaemonScrape {
        shared: Arc::clone(shared),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::exporter::serve(listener, source, async move {
        let _ = stopped.await;
    }));
    Ok(Some((stop, server)))
}

/// The daemon's metrics: the database through a reading connection, its own job runs, and the
/// current API client's counters; `/healthz` with the current configuration's audit period.
struct DaemonScrape {
    shared: Arc<Shared>,
}

impl crate::exporter::Scrape for DaemonScrape {
    fn metrics(&self) -> anyhow::Result<String> {
        let current = self.shared.current_config();
        let store = Store::open_reader(&current.config.store.path)?;
        let input =
            crate::exporter::gather(&store, Some(&self.shared.live), Some(&current.client))?;
        Ok(crate::metrics::render(&input))
    }

    fn staleness(&self) -> anyhow::Result<Option<String>> {
        let current = self.shared.current_config();
        let store = Store::open_reader(&current.config.store.path)?;
        crate::exporter::staleness(&store, &current.config, self.shared.clock.now())
    }
}

/// Waits for another stop request during shutdown (a reload is ignored then; a closed channel
/// never stops the wait).
async fn second_stop(controls: &mut mpsc::Receiver<Control>) {
    loop {
        match controls.recv().await {
            Some(Control::Stop(_)) => return,
            Some(Control::Reload) => {}
            None => std::future::pending::<()>().await,
        }
    }
}

impl Shared {
    fn current_config(&self) -> Arc<Current> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Sends STATUS= with the last outcome of every job that has run.
    fn publish_status(&self) {
        let last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let reads = self
            .last_reads
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let status: Vec<&str> = last
            .iter()
            .flatten()
            .chain(reads.values())
            .map(String::as_str)
            .collect();
        if !status.is_empty() {
            notify(&[NotifyState::Status(&status.join("; "))]);
        }
    }
}

/// Sends to systemd; does nothing without `NOTIFY_SOCKET`. A failure is only logged.
fn notify(states: &[NotifyState]) {
    if let Err(error) = sd_notify::notify(states) {
        tracing::debug!("cannot notify systemd: {error}");
    }
}

/// What a schedule loop runs: a job of the table, or the read of a scheduled directory source.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Task {
    Job(usize),
    /// The source's name (`[[directories]] name`).
    Directory(String),
}

impl Task {
    /// The name in logs, the metrics and the systemd status (`audit`, `directory corp`).
    fn name(&self, shared: &Shared) -> String {
        match self {
            Task::Job(index) => shared.jobs[*index].name.to_owned(),
            Task::Directory(name) => format!("directory {name}"),
        }
    }
}

/// The `[[directories]]` sources with their own `schedule`: (name, cron expression).
fn scheduled_sources(config: &Config) -> Vec<(String, String)> {
    config
        .directories
        .iter()
        .filter_map(|source| {
            source
                .schedule
                .as_ref()
                .map(|schedule| (source.name.clone(), schedule.clone()))
        })
        .collect()
}

/// The schedule loops of one configuration: one task per job of `[schedule]`, and one per
/// `[[directories]]` source with its own `schedule`.
struct Schedule {
    token: CancellationToken,
    loops: Vec<JoinHandle<()>>,
}

impl Schedule {
    fn start(shared: &Arc<Shared>, config: &Config) -> Schedule {
        let schedule = &config.schedule;
        let token = CancellationToken::new();
        let mut loops = Vec::new();
        let tasks = shared
            .jobs
            .iter()
            .enumerate()
            .map(|(index, spec)| (Task::Job(index), (spec.schedule)(schedule).to_owned()))
            .chain(
                scheduled_sources(config)
                    .into_iter()
                    .map(|(name, expression)| (Task::Directory(name), expression)),
            );
        for (task, expression) in tasks {
            let name = task.name(shared);
            let cron = match config::parse_cron(&expression) {
                Ok(cron) => cron,
                Err(error) => {
                    // `config` validated it already; this would be a bug.
                    tracing::error!(
                        job = %name,
                        "{name} is not scheduled: {expression:?}: {error}"
                    );
                    continue;
                }
            };
            tracing::info!(
                job = %name,
                "{name} scheduled at {expression:?} ({})",
                schedule.timezone
            );
            loops.push(tokio::spawn(schedule_loop(
                Arc::clone(shared),
                task,
                cron,
                schedule.timezone,
                token.clone(),
            )));
        }
        Schedule { token, loops }
    }

    /// Stops the loops; returns once none can start a run any more.
    async fn stop(&mut self) {
        self.token.cancel();
        for handle in self.loops.drain(..) {
            let _ = handle.await;
        }
    }
}

/// Sleeps until each occurrence of `cron` and triggers the task, until `token` is cancelled.
async fn schedule_loop(
    shared: Arc<Shared>,
    task: Task,
    cron: Cron,
    timezone: chrono_tz::Tz,
    token: CancellationToken,
) {
    let name = task.name(&shared);
    let mut previous: Option<DateTime<Utc>> = None;
    loop {
        // Never before the previous tick, so a clock that is a little behind cannot fire twice.
        let now = shared.clock.now();
        let from = previous.map_or(now, |p| p.max(now));
        let next = match next_occurrence(&cron, timezone, from) {
            Ok(next) => next,
            Err(error) => {
                tracing::error!(job = %name, "{name} has no next occurrence: {error}");
                return;
            }
        };
        tracing::debug!(job = %name, next = %next, "next {name} run");
        let wait = (next - shared.clock.now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        previous = Some(next);
        trigger(&shared, task.clone());
    }
}

/// Starts a run of `task` on its own thread, unless one is still going.
fn trigger(shared: &Arc<Shared>, task: Task) {
    let name = task.name(shared);
    let started = match &task {
        Task::Job(index) => !shared.running[*index].swap(true, Ordering::AcqRel),
        Task::Directory(source) => shared
            .reading
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(source.clone()),
    };
    if !started {
        tracing::warn!(
            job = %name,
            "{name} is still running from an earlier tick; skipping this one"
        );
        return;
    }
    let job_shared = Arc::clone(shared);
    let after_shared = Arc::clone(shared);
    shared.tracker.spawn(async move {
        let run_task = task.clone();
        let outcome = tokio::task::spawn_blocking(move || match run_task {
            Task::Job(index) => run_job(&job_shared, index),
            Task::Directory(source) => run_directory_read(&job_shared, &source),
        })
        .await;
        if let Err(error) = outcome {
            tracing::error!(
                job = %name,
                "{name} panicked: {error}; it will run again at its next tick"
            );
        }
        match task {
            Task::Job(index) => after_shared.running[index].store(false, Ordering::Release),
            Task::Directory(source) => {
                after_shared
                    .reading
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&source);
            }
        }
    });
}

/// One run of job `index`, on a blocking thread: logs it and records its outcome.
fn run_job(shared: &Shared, index: usize) {
    let spec = &shared.jobs[index];
    let name = spec.name;
    let current = shared.current_config();
    let started_at = shared.clock.now();
    let started = Instant::now();
    tracing::info!(job = name, "{name} started");
    let result = {
        let mut store = shared.store.lock().unwrap_or_else(PoisonError::into_inner);
        let mut ctx = JobContext {
            config: &current.config,
            store: &mut store,
            clock: shared.clock.clone(),
            client: Ok(current.client.clone()),
            // A snapshot of another organization is refused and logged; an operator decides.
            accept_new_org: false,
        };
        // A panicking job is a failed run; the daemon goes on.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            shared.runtime.block_on((spec.run)(&mut ctx))
        }))
        .unwrap_or_else(|panic| {
            let error = format!("panicked: {}", panic_message(&*panic));
            fail_abandoned_runs(&store, &error, shared.clock.now());
            Err(anyhow::anyhow!(error))
        })
    };
    let status = finish_run(shared, &current, name, started_at, started, result);
    shared.last.lock().unwrap_or_else(PoisonError::into_inner)[index] = Some(status);
    shared.publish_status();
}

/// One read of the scheduled directory source `source`, on a blocking thread: the read itself
/// runs without the database (a long read does not hold up the audit), then the read is recorded
/// with [`jobs::record_directory_read`]; logged and counted like a job run.
fn run_directory_read(shared: &Shared, source: &str) {
    let current = shared.current_config();
    let name = format!("directory {source}");
    let Ok(config) = jobs::directory_source(&current.config, source) else {
        // Removed by a reload since this tick was planned.
        tracing::info!(job = %name, "{name} is no longer configured; not read");
        return;
    };
    let started_at = shared.clock.now();
    let started = Instant::now();
    tracing::info!(job = %name, "{name} started");
    let read = shared
        .runtime
        .block_on(jobs::read_directories(&[config], &shared.clock))
        .pop();
    let result = match read {
        None => Err(anyhow::anyhow!("no read")),
        Some(read) => {
            let mut store = shared.store.lock().unwrap_or_else(PoisonError::into_inner);
            jobs::record_directory_read(&mut store, read)
        }
    }
    .and_then(|summary| match summary.error {
        Some(error) => Err(anyhow::anyhow!("{error}")),
        None => Ok(summary),
    });
    let status = finish_run(shared, &current, &name, started_at, started, result);
    shared
        .last_reads
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(source.to_owned(), status);
    shared.publish_status();
}

/// After a run: its metrics, the textfile, the events and the log line; returns its status line.
fn finish_run<T: Display>(
    shared: &Shared,
    current: &Current,
    name: &str,
    started_at: DateTime<Utc>,
    started: Instant,
    result: anyhow::Result<T>,
) -> String {
    let elapsed = started.elapsed().as_secs_f64();
    shared
        .live
        .record(name, result.is_ok(), elapsed, shared.clock.now());
    if let Some(path) = &current.config.metrics.textfile {
        let store = shared.store.lock().unwrap_or_else(PoisonError::into_inner);
        let written = crate::exporter::gather(&store, Some(&shared.live), Some(&current.client))
            .and_then(|input| {
                let text = crate::metrics::render(&input);
                Ok(crate::exporter::write_textfile(path, &text)?)
            });
        if let Err(error) = written {
            tracing::warn!(
                "cannot write the metrics textfile {}: {error:#}",
                path.display()
            );
        }
    }
    {
        let store = shared.store.lock().unwrap_or_else(PoisonError::into_inner);
        crate::events::after_job(&current.config.events, &store);
    }
    let when = started_at.to_rfc3339_opts(SecondsFormat::Secs, true);
    match result {
        Ok(summary) => {
            tracing::info!(
                job = %name,
                elapsed_s = elapsed,
                "{name} finished in {elapsed:.1}s: {summary}"
            );
            format!("last {name} {when} ok: {summary}")
        }
        Err(error) => {
            tracing::error!(
                job = %name,
                elapsed_s = elapsed,
                "{name} failed after {elapsed:.1}s: {error:#}; it will run again at its next tick"
            );
            format!("last {name} {when} failed: {error:#}")
        }
    }
}

/// After a job panicked: the snapshot run it left `running` (the daemon is the only writer and a
/// job never overlaps itself, so every such run is its) is marked failed with the panic message,
/// so `status` and `history` do not show it running forever.
fn fail_abandoned_runs(store: &Store, error: &str, now: DateTime<Utc>) {
    let runs = match store.runs() {
        Ok(runs) => runs,
        Err(error) => {
            tracing::error!("cannot list the runs to record the panic: {error}");
            return;
        }
    };
    for run in runs.iter().filter(|run| run.status == RunStatus::Running) {
        if let Err(error) = store.fail_run(run.id, error, 0, 0, now) {
            tracing::error!(
                run = run.id,
                "cannot record the panic in run {}: {error}",
                run.id
            );
        }
    }
}

/// The text of a panic's payload.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// SIGHUP: loads the configuration again; keeps the old one if the new one is invalid.
async fn reload(shared: &Arc<Shared>, path: Option<&std::path::Path>, schedule: &mut Schedule) {
    notify(&[
        NotifyState::Reloading,
        NotifyState::monotonic_usec_now().unwrap_or(NotifyState::Status("reloading")),
    ]);
    let loaded = config::load(path, &Environment::from_process())
        .map_err(|error| error.to_string())
        .and_then(|loaded| {
            match AdminClient::from_config(&loaded.config.api, shared.clock.clone()) {
                Ok(client) => Ok((loaded, client)),
                Err(error) => Err(error.to_string()),
            }
        });
    match loaded {
        Err(problems) => {
            tracing::error!(
                "SIGHUP: configuration reload refused, keeping the running configuration: {}",
                problems.trim_end()
            );
        }
        Ok((loaded, client)) => {
            for warning in &loaded.warnings {
                tracing::warn!("{warning}");
            }
            let old = shared.current_config();
            let old = &old.config;
            let new = loaded.config;
            if new.store.path != old.store.path {
                tracing::warn!(
                    "store.path changed to {}; the daemon keeps using {} until it is restarted",
                    new.store.path.display(),
                    old.store.path.display()
                );
            }
            if new.log.level != old.log.level || new.log.format != old.log.format {
                tracing::warn!("[log] changed; it applies when the daemon is restarted");
            }
            let rescheduled = schedule_changed(shared.jobs, old, &new);
            let new = Arc::new(Current {
                config: new,
                client,
            });
            *shared
                .current
                .write()
                .unwrap_or_else(PoisonError::into_inner) = Arc::clone(&new);
            if rescheduled {
                schedule.stop().await;
                *schedule = Schedule::start(shared, &new.config);
            }
            tracing::info!(
                rescheduled,
                "SIGHUP: configuration reloaded{}",
                loaded
                    .path
                    .map(|p| format!(" from {}", p.display()))
                    .unwrap_or_default()
            );
        }
    }
    notify(&[NotifyState::Ready]);
    shared.publish_status();
}

fn schedule_changed(jobs: &[JobSpec], old: &Config, new: &Config) -> bool {
    let (old_schedule, new_schedule) = (&old.schedule, &new.schedule);
    old_schedule.timezone != new_schedule.timezone
        || jobs
            .iter()
            .any(|spec| (spec.schedule)(old_schedule) != (spec.schedule)(new_schedule))
        || scheduled_sources(old) != scheduled_sources(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_has_a_valid_default_schedule() {
        let (config, _) = Config::from_toml("", &Environment::default()).unwrap();
        for spec in JOBS {
            let expression = (spec.schedule)(&config.schedule);
            assert!(
                config::parse_cron(expression).is_ok(),
                "{}: {expression}",
                spec.name
            );
        }
        let names: Vec<&str> = JOBS.iter().map(|spec| spec.name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(names.len(), unique.len(), "job names are unique: {names:?}");
    }
}
