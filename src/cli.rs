//! The command-line interface: clap definitions and one `*_command` function per subcommand.
//!
//! Each command loads the configuration, sets up logging, does one thing and returns an exit
//! code: 0 on success, 1 on a runtime failure, 78 (EX_CONFIG) on a configuration error, and for
//! `cleanup --apply` 2 when a guard tripped or the run was suspended ([`cleanup_exit_code`]).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::{Parser, Subcommand};

use std::future::Future;

use anyhow::Context;

use crate::admin_api::AdminClient;
use crate::clock::{Clock, SystemClock};
use crate::config::{self, Config, Environment};
use crate::jobs::JobContext;
use crate::output::{Format, Tabular};
use crate::snapshot;
use crate::store::{Store, StoreError};

/// `print!` that ends the process quietly with status 0 when stdout is a closed pipe
/// (`orgwarden history | head -1`) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        write_stdout(format_args!($($arg)*))
    };
}

/// `println!` with [`out!`]'s handling of a closed pipe.
macro_rules! outln {
    () => {
        write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// What stdout is, decided once in [`main`].
struct TerminalOutput {
    terminal: bool,
    /// Table cells are cut at [`crate::output::CELL_CHARS`] (a terminal without `--wide`).
    cut_cells: bool,
}

static TERMINAL_OUTPUT: OnceLock<TerminalOutput> = OnceLock::new();

/// Rows in `format`; table cells cut only on a terminal without `--wide`.
fn render<T: Tabular>(format: Format, rows: &[T]) -> String {
    let cut = TERMINAL_OUTPUT.get().is_some_and(|t| t.cut_cells);
    crate::output::render_cells(format, rows, cut.then_some(crate::output::CELL_CHARS))
}

/// Text for a terminal: bidi controls dropped and control characters other than newline and tab
/// shown as `�`, so API-provided names cannot reorder or restyle what the operator reads.
fn terminal_safe(text: &str) -> String {
    text.chars()
        .filter(|c| !crate::output::is_bidi_control(*c))
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect()
}

/// Writes to stdout, made [`terminal_safe`] when it is a terminal (piped output is left exact
/// for scripts). A reader that went away (`EPIPE`) has seen all it wanted: exit 0 without a
/// word, as the classic filters do; any other write error is reported and exits 1.
fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let terminal = TERMINAL_OUTPUT.get().is_some_and(|t| t.terminal);
    let mut stdout = std::io::stdout().lock();
    let written = if terminal {
        stdout.write_all(terminal_safe(&args.to_string()).as_bytes())
    } else {
        stdout.write_fmt(args)
    };
    if let Err(error) = written {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("orgwarden: cannot write to stdout: {error}");
        std::process::exit(1);
    }
}

/// EX_CONFIG from sysexits.h: the configuration is wrong.
pub const EXIT_CONFIG: u8 = 78;

/// `cleanup --apply`: a guard tripped (plausibility, population drop, blast radius) and held
/// actions back, or the whole run was suspended.
pub const EXIT_GUARD: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "orgwarden",
    version,
    about = "Keeps a Claude organization clean and auditable"
)]
pub struct Cli {
    /// Configuration file (else $ORGWARDEN_CONFIG, else /etc/orgwarden/config.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Show table cells whole (on a terminal they are cut at 60 characters; piped output is
    /// always whole).
    #[arg(long, global = true)]
    pub wide: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// `orgwarden alerts ...`.
#[derive(Debug, Subcommand)]
pub enum AlertsAction {
    /// Send a test message to the channel named CHANNEL (`[[alerts.channels]] name`).
    Test { channel: String },
}

/// `orgwarden directory ...`.
#[derive(Debug, Subcommand)]
pub enum DirectoryAction {
    /// Read every enabled `[[directories]]` source once and print its counts (writes nothing;
    /// exit 1 if any source failed).
    Check {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Read the source NAME (default: every source) now and record the read in the database,
    /// as the daemon's job for a scheduled source does (exit 1 if a read failed).
    Read {
        name: Option<String>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration; with --online also reach the Admin API and read every
    /// `[[directories]]` source (as `directory check` does).
    CheckConfig {
        /// Also call GET /v1/organizations/me and print the organization.
        #[arg(long)]
        online: bool,
        /// With --online: give up on the Admin API, and on each directory source, after this long
        /// ("10s", "500ms").
        #[arg(long, default_value = "10s", value_parser = parse_timeout)]
        timeout: std::time::Duration,
    },
    /// Read the whole organization into the database as one atomic snapshot.
    Snapshot {
        /// Record the snapshot although the key reads another organization than the one
        /// whose history the database holds (refused otherwise).
        #[arg(long)]
        accept_new_org: bool,
    },
    /// Serve an Admin API simulator on loopback (for tests, demos and trying orgwarden out).
    Sim(orgwarden_sim::cli::SimArgs),
    /// Evaluate the policy rules over a snapshot, record the findings and print them.
    Audit {
        /// Snapshot run id (default: the latest complete one).
        #[arg(long, value_name = "RUN")]
        at: Option<i64>,
        /// Print the findings without recording anything (works while the daemon runs).
        #[arg(long)]
        no_record: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Plan remediation for the latest snapshot and show every guard's verdict, recording
    /// nothing (works while the daemon runs); with --apply (and remediation.mode = "enforce")
    /// carry the plan out.
    Cleanup {
        #[arg(long)]
        apply: bool,
        /// First accept complete snapshot RUN as the remediation baseline although it looked
        /// implausible or dropped (recorded with $USER and the time in the audit trail).
        #[arg(long, value_name = "RUN")]
        accept_baseline: Option<i64>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Last runs, open findings by severity and next scheduled times; exits 1 when the last
    /// complete snapshot is older than twice the audit period.
    Status {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Write the report CSVs for the latest complete snapshot (a preview: nothing is recorded in
    /// the database, so it works while the daemon runs); with --send also record it, queue the
    /// email in the outbox and deliver it.
    Report {
        /// Directory for the CSVs (default: a new directory under report.out_dir).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Send the email; a sent report ends its period. Without it the report is a preview
        /// that records nothing.
        #[arg(long)]
        send: bool,
        /// Start the period after snapshot run RUN, or at DATE (YYYY-MM-DD in
        /// schedule.timezone, or RFC 3339), instead of at the previous sent report.
        #[arg(long, value_name = "RUN|DATE")]
        since: Option<String>,
    },
    /// Run the whole cycle twice against a built-in simulated organization (no key, no network).
    Demo(crate::demo::DemoArgs),
    /// Print the event stream (finding transitions, actions, guard trips, runs) from the
    /// database, oldest first; read-only, so it works while the daemon runs.
    Events {
        /// Only events after event id ID, or at or after TIME (RFC 3339 or YYYY-MM-DD, UTC).
        #[arg(long, value_name = "TIME|ID")]
        since: Option<String>,
        /// Keep printing new events (polling every second) until interrupted.
        #[arg(long)]
        follow: bool,
        /// `json`: one JSON object per line, as `[events] path` writes them.
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// The last use of every API key and member of the newest snapshot, from the ingested usage
    /// reports (read-only).
    Usage {
        /// First ingest the days not yet complete (needs the writer lock, so not while the
        /// daemon runs: its audit cycle ingests them).
        #[arg(long)]
        fetch: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// List snapshot runs.
    History {
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        /// Show only the newest N runs.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
    },
    /// Immediate alerts: `alerts test CHANNEL` sends a test message to a channel now.
    Alerts {
        #[command(subcommand)]
        action: AlertsAction,
    },
    /// The identity-provider sources (`[[directories]]`).
    Directory {
        #[command(subcommand)]
        action: DirectoryAction,
    },
    /// Show one kind of object as a snapshot saw it.
    Show {
        #[arg(value_enum)]
        what: ShowWhat,
        /// Snapshot run id (default: the latest complete one).
        #[arg(long, value_name = "RUN")]
        at: Option<i64>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// What changed between two snapshots (default: the last two complete ones).
    Diff {
        #[arg(long, value_name = "RUN")]
        from: Option<i64>,
        #[arg(long, value_name = "RUN")]
        to: Option<i64>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// List the mail outbox; with --retry first deliver every pending message now (exit 1 while
    /// messages remain pending).
    Outbox {
        /// Deliver every pending message now, ignoring its backoff.
        #[arg(long)]
        retry: bool,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Send a test message to ADDRESS directly (not through the outbox); exit 1 on failure.
    SendTestEmail {
        /// Recipient, e.g. "you@example.com" or "You <you@example.com>".
        address: String,
    },
    /// Run as a service: scheduled jobs, SIGHUP reloads, SIGTERM stops (see systemd/).
    Run,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ShowWhat {
    Members,
    Invites,
    Keys,
    Workspaces,
    WorkspaceMembers,
    /// The people of each directory source's latest complete read (at the snapshot with --at).
    Directory,
}

/// Parses the arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let terminal = std::io::stdout().is_terminal();
    let _ = TERMINAL_OUTPUT.set(TerminalOutput {
        terminal,
        cut_cells: terminal && !cli.wide,
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("orgwarden: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(run(cli));
    // A daemon job that outlived its shutdown timeout must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    code
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::CheckConfig { online, timeout } => {
            check_config_command(cli.config, online, timeout).await
        }
        Command::Snapshot { accept_new_org } => {
            with_config(cli.config, |c| snapshot_command(c, accept_new_org)).await
        }
        Command::Sim(args) => {
            crate::telemetry::init("info", config::LogFormat::Text);
            let shutdown = async {
                let _ = tokio::signal::ctrl_c().await;
            };
            match orgwarden_sim::cli::sim_command(args, shutdown).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("orgwarden sim: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Audit {
            at,
            no_record,
            format,
        } => {
            with_config(cli.config, |c| async move {
                audit_command(&c, at, no_record, format)
            })
            .await
        }
        Command::Cleanup {
            apply,
            accept_baseline,
            format,
        } => {
            with_config(cli.config, |c| async move {
                cleanup_command(&c, apply, accept_baseline, format).await
            })
            .await
        }
        Command::Alerts {
            action: AlertsAction::Test { channel },
        } => with_config(cli.config, |c| alerts_test_command(c, channel)).await,
        Command::Status { format } => {
            with_config(cli.config, |c| async move { status_command(&c, format) }).await
        }
        Command::Report { out, send, since } => {
            with_config(cli.config, |c| report_command(c, out, send, since)).await
        }
        Command::Demo(args) => {
            // The summary says what matters; guard trips are in it, not in log lines.
            crate::telemetry::init("off", config::LogFormat::Text);
            match crate::demo::demo_command(args).await {
                Ok(summary) => {
                    out!("{summary}");
                    ExitCode::SUCCESS
                }
                Err(error) => {
                    eprintln!("orgwarden demo: {error:#}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Events {
            since,
            follow,
            format,
        } => {
            with_config(cli.config, |c| async move {
                events_command(&c, since.as_deref(), follow, format).await
            })
            .await
        }
        Command::Usage { fetch, format } => {
            with_config(cli.config, |c| async move {
                usage_command(c, fetch, format).await
            })
            .await
        }
        Command::History { format, limit } => {
            with_config(
                cli.config,
                |c| async move { history_command(&c, format, limit) },
            )
            .await
        }
        Command::Directory {
            action: DirectoryAction::Check { format },
        } => with_config(cli.config, |c| directory_check_command(c, format)).await,
        Command::Directory {
            action: DirectoryAction::Read { name, format },
        } => with_config(cli.config, |c| directory_read_command(c, name, format)).await,
        Command::Show { what, at, format } => {
            with_config(
                cli.config,
                |c| async move { show_command(&c, what, at, format) },
            )
            .await
        }
        Command::Diff { from, to, format } => {
            with_config(
                cli.config,
                |c| async move { diff_command(&c, from, to, format) },
            )
            .await
        }
        Command::Outbox { retry, format } => {
            with_config(cli.config, |c| outbox_command(c, retry, format)).await
        }
        Command::SendTestEmail { address } => {
            with_config(cli.config, |c| send_test_email_command(c, address)).await
        }
        Command::Run => match load_config(cli.config.clone()) {
            Ok(loaded) => run_command(cli.config, loaded.config).await,
            Err(code) => code,
        },
    }
}

/// Loads and validates the configuration, printing every problem; `None` means exit 78.
fn load_config(path: Option<PathBuf>) -> Result<config::Loaded, ExitCode> {
    match config::load(path.as_deref(), &Environment::from_process()) {
        Ok(loaded) => {
            crate::telemetry::init(&loaded.config.log.level, loaded.config.log.format);
            for warning in &loaded.warnings {
                tracing::warn!("{warning}");
            }
            Ok(loaded)
        }
        Err(error) => {
            eprint!("orgwarden: {error}");
            Err(ExitCode::from(EXIT_CONFIG))
        }
    }
}

fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    config::parse_duration(text)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?} is not a duration like \"10s\" or \"500ms\""))
}

/// No admin key was configured: a configuration error (exit 78) from every command.
#[derive(Debug, thiserror::Error)]
#[error(
    "api.admin_key: no admin key found; provide it as a systemd credential ({}), \
     api.admin_key_file, or the ANTHROPIC_ADMIN_KEY environment variable",
    config::ADMIN_KEY_CREDENTIAL
)]
pub struct MissingAdminKey;

/// The exit code for a failed command: 78 when the cause is the configuration, else 1.
fn failure_code(error: &anyhow::Error) -> ExitCode {
    if error.chain().any(|cause| {
        cause.is::<MissingAdminKey>() || cause.is::<crate::admin_api::ClientConfigError>()
    }) {
        ExitCode::from(EXIT_CONFIG)
    } else {
        ExitCode::FAILURE
    }
}

async fn check_config_command(
    path: Option<PathBuf>,
    online: bool,
    timeout: std::time::Duration,
) -> ExitCode {
    let loaded = match load_config(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let source = loaded
        .path
        .as_ref()
        .map_or("defaults and environment".to_owned(), |p| {
            p.display().to_string()
        });
    let Some(key) = &loaded.config.api.admin_key else {
        eprintln!("orgwarden: invalid configuration ({source}): 1 problem\n  - {MissingAdminKey}");
        return ExitCode::from(EXIT_CONFIG);
    };
    if !secrecy::ExposeSecret::expose_secret(key).starts_with("sk-ant-admin") {
        // Only the prefix is looked at and nothing of the key is printed.
        eprintln!(
            "orgwarden: warning: api.admin_key does not start with \"sk-ant-admin\"; the Admin API \
             needs an admin key, not a regular API key"
        );
    }
    outln!("configuration OK ({source})");
    if !online {
        return ExitCode::SUCCESS;
    }
    let client = match AdminClient::from_config(&loaded.config.api, SystemClock::shared()) {
        Ok(client) => client,
        Err(error) => {
            eprintln!("orgwarden: {error:#}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let api_ok = match tokio::time::timeout(timeout, client.organization()).await {
        Ok(Ok(org)) => {
            outln!("organization: {} ({})", org.name, org.id);
            true
        }
        Ok(Err(error)) if error.status().is_some() => {
            // The server answered: it was reached, and the message says what it refused.
            eprintln!("orgwarden: {error}");
            false
        }
        Ok(Err(error)) => {
            eprintln!("orgwarden: cannot reach the Admin API: {error}");
            false
        }
        Err(_elapsed) => {
            eprintln!(
                "orgwarden: cannot reach the Admin API: no answer from {} within {:?}",
                loaded.config.api.base_url, timeout
            );
            false
        }
    };
    let directories_ok = check_directories(&loaded.config, timeout).await;
    if api_ok && directories_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `check-config --online`: `directory check` of every `[[directories]]` source, concurrently,
/// each within `timeout`; prints each source's counts or its error. True when all were read.
async fn check_directories(config: &Config, timeout: std::time::Duration) -> bool {
    let clock = SystemClock::shared();
    let checks = config.directories.iter().map(|source| {
        let clock = &clock;
        async move {
            match tokio::time::timeout(timeout, crate::jobs::read_directories(&[source], clock))
                .await
            {
                Ok(mut reads) => match reads.pop() {
                    Some((summary, _)) => match &summary.error {
                        None => Ok(summary),
                        Some(error) => Err(format!("directory {}: {error}", source.name)),
                    },
                    None => Err(format!("directory {}: not read", source.name)),
                },
                Err(_elapsed) => Err(format!(
                    "directory {}: no complete read within {timeout:?}",
                    source.name
                )),
            }
        }
    });
    let mut ok = true;
    for result in futures::future::join_all(checks).await {
        match result {
            Ok(summary) => {
                outln!(
                    "directory {} ({}): {} active, {} disabled, {} deleted{} in {} ms",
                    summary.name,
                    summary.kind,
                    summary.active,
                    summary.disabled,
                    summary.deleted,
                    summary
                        .assigned
                        .map(|n| format!(", {n} assigned"))
                        .unwrap_or_default(),
                    summary.duration_ms
                );
            }
            Err(error) => {
                eprintln!("orgwarden: {error}");
                ok = false;
            }
        }
    }
    ok
}

/// Loads the configuration (exit 78 on problems), runs `command`, and maps its error to exit 1.
async fn with_config<F, Fut>(path: Option<PathBuf>, command: F) -> ExitCode
where
    F: FnOnce(Config) -> Fut,
    Fut: Future<Output = anyhow::Result<ExitCode>>,
{
    let loaded = match load_config(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    match command(loaded.config).await {
        Ok(code) => code,
        Err(error) => {
            eprintln!("orgwarden: {error:#}");
            failure_code(&error)
        }
    }
}

/// Opens the database to write, naming this command as the holder of the writer lock.
pub fn open_writer(config: &Config, holder: &str) -> Result<Store, StoreError> {
    Store::open_writer(&config.store.path, holder, SystemClock.now())
}

/// `orgwarden run`: the daemon, stopped by SIGTERM/SIGINT and reloaded by SIGHUP. Maps its
/// outcome to the exit code (78 for a configuration it cannot run with).
async fn run_command(path: Option<PathBuf>, config: Config) -> ExitCode {
    let controls = match signal_controls() {
        Ok(controls) => controls,
        Err(error) => {
            tracing::error!("cannot install signal handlers: {error}");
            return ExitCode::FAILURE;
        }
    };
    match crate::daemon::run(path, config, controls, SystemClock::shared()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is_config() => {
            tracing::error!("{error}");
            ExitCode::from(EXIT_CONFIG)
        }
        Err(crate::daemon::DaemonError::ShutdownTimeout { .. }) => ExitCode::FAILURE,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM, SIGINT and SIGHUP as the daemon's [`Control`](crate::daemon::Control)s.
fn signal_controls() -> std::io::Result<tokio::sync::mpsc::Receiver<crate::daemon::Control>> {
    use crate::daemon::Control;
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        loop {
            let control = tokio::select! {
                _ = sigterm.recv() => Control::Stop("SIGTERM"),
                _ = sigint.recv() => Control::Stop("SIGINT"),
                _ = sighup.recv() => Control::Reload,
            };
            if sender.send(control).await.is_err() {
                return;
            }
        }
    });
    Ok(receiver)
}

/// Rewrites `[metrics] textfile` (if configured) after a one-shot job, failed or not.
fn textfile(ctx: &JobContext<'_>) {
    crate::exporter::after_command(ctx.config, ctx.store, ctx.client.as_ref().ok());
    crate::events::after_job(&ctx.config.events, ctx.store);
}

/// Fails with [`MissingAdminKey`] before the database is opened: a command that would fetch
/// from the Admin API without a key has nothing to record, not even a new empty database.
fn require_admin_key(config: &Config) -> Result<(), MissingAdminKey> {
    match config.api.admin_key {
        Some(_) => Ok(()),
        None => Err(MissingAdminKey),
    }
}

async fn snapshot_command(config: Config, accept_new_org: bool) -> anyhow::Result<ExitCode> {
    require_admin_key(&config)?;
    let mut store = open_writer(&config, "orgwarden snapshot")?;
    let mut ctx = JobContext::new(&config, &mut store, SystemClock::shared());
    ctx.accept_new_org = accept_new_org;
    let result = crate::jobs::snapshot_job(&mut ctx, true).await;
    textfile(&ctx);
    let (summary, pruned) = result?;
    let c = summary.counts;
    outln!(
        "snapshot run {} complete in {:.1}s: {} members, {} invites, {} workspaces, {} workspace members, {} API keys ({} requests, {} retries)",
        summary.run_id,
        summary.elapsed.as_secs_f64(),
        c.members,
        c.invites,
        c.workspaces,
        c.workspace_members,
        c.api_keys,
        summary.requests,
        summary.retries
    );
    if pruned.runs > 0 {
        outln!(
            "retention: pruned {} runs and {} old versions",
            pruned.runs,
            pruned.versions
        );
    }
    if pruned.usage_days > 0 {
        outln!("retention: pruned {} usage days", pruned.usage_days);
    }
    Ok(ExitCode::SUCCESS)
}

fn audit_command(
    config: &Config,
    at: Option<i64>,
    no_record: bool,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let mut store = if no_record {
        Store::open_preview(&config.store.path)?
    } else {
        open_writer(config, "orgwarden audit").map_err(|error| match error {
            StoreError::Locked { .. } => anyhow::Error::new(error)
                .context("`orgwarden audit --no-record` shows the findings without recording them"),
            error => error.into(),
        })?
    };
    let mut ctx = JobContext::new(config, &mut store, SystemClock::shared());
    let result = crate::jobs::audit_job(&mut ctx, at);
    if !no_record {
        textfile(&ctx);
    }
    let summary = result?;
    out!("{}", render(format, &summary.result.findings));
    if format == Format::Table {
        for outcome in &summary.rules {
            if let Some(reason) = outcome.status.reason() {
                eprintln!("rule {} not evaluated: {reason}", outcome.rule);
            }
        }
        let r = &summary.result;
        eprintln!(
            "audit of snapshot run {}: {} findings ({} new), {} resolved{}",
            summary.run_id,
            r.findings.len() - r.n_resolved,
            r.n_new,
            r.n_resolved,
            if no_record {
                "; not recorded (--no-record)"
            } else if r.stored {
                ""
            } else {
                "; not recorded: a newer snapshot was already audited"
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The exit code of a cleanup: 0 when every eligible action succeeded or was legitimately
/// skipped (or nothing was to be done, or nothing was applied), [`EXIT_GUARD`] when a guard
/// tripped or the run was suspended (it wins: a person must look before anything else), 1 when
/// an action failed or the Admin API refused the key mid-run.
pub fn cleanup_exit_code(summary: &crate::jobs::CleanupSummary) -> u8 {
    if !summary.applied {
        return 0;
    }
    if summary.plan.suspended.is_some() || !summary.plan.guard_findings.is_empty() {
        return EXIT_GUARD;
    }
    let failed = summary
        .executed
        .iter()
        .any(|e| e.status == crate::store::ActionStatus::Failed);
    if failed || summary.stopped.is_some() {
        1
    } else {
        0
    }
}

/// Who runs this command, for the audit trail: `$USER`, else "unknown".
fn operator() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

async fn cleanup_command(
    config: &Config,
    apply: bool,
    accept_baseline: Option<i64>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    // Only acting (or accepting a baseline) writes; a plan is made on a private copy.
    let mut store = if apply || accept_baseline.is_some() {
        open_writer(config, "orgwarden cleanup")?
    } else {
        Store::open_preview(&config.store.path)?
    };
    let mut ctx = JobContext::new(config, &mut store, SystemClock::shared());
    if let Some(run_id) = accept_baseline {
        let who = operator();
        crate::jobs::accept_baseline_job(&mut ctx, run_id, &who)?;
        eprintln!("snapshot run {run_id} accepted as the remediation baseline by {who}");
    }
    let result = crate::jobs::cleanup_job(&mut ctx, apply).await;
    textfile(&ctx);
    let summary = result?;
    let code = ExitCode::from(cleanup_exit_code(&summary));
    if format == Format::Json {
        outln!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(code);
    }
    let plan = &summary.plan;
    for record in &summary.reconciled {
        outln!(
            "reconciled interrupted action {} {} {}: {}",
            record.id,
            record.action.as_str(),
            record.subject_id,
            record.status.as_str()
        );
    }
    for finding in &plan.guard_findings {
        outln!("GUARD TRIPPED: {}", finding.evidence);
    }
    if let Some(why) = plan
        .suspended
        .as_ref()
        .filter(|_| plan.guard_findings.is_empty())
    {
        outln!("suspended: {why}");
    }
    out!("{}", render(format, &plan.actions));
    let eligible = plan.eligible().count();
    outln!(
        "plan for snapshot run {} (mode {}): {} actions, {} eligible",
        plan.run_id,
        plan.mode.as_str(),
        plan.actions.len(),
        eligible
    );
    if summary.applied {
        for done in &summary.executed {
            outln!(
                "{} {} ({}): {}{}",
                done.action.as_str(),
                done.subject,
                done.subject_id,
                done.status.as_str(),
                done.reason
                    .as_deref()
                    .map(|r| format!(" - {r}"))
                    .unwrap_or_default()
            );
        }
        if let Some(why) = &summary.stopped {
            outln!("STOPPED: {why}; the remaining actions were not attempted");
        }
    } else if eligible > 0 {
        outln!("dry run: nothing was changed (use --apply with remediation.mode = \"enforce\")");
    }
    Ok(code)
}

fn status_command(config: &Config, format: Format) -> anyhow::Result<ExitCode> {
    // Read-only, so it works under the daemon and in a read-only location; a damaged file is
    // reported unhealthy with what to do, not read.
    let opened = Store::open_reader(&config.store.path)
        .and_then(|store| store.quick_check().map(|()| store));
    let store = match opened {
        Ok(store) => store,
        Err(error) if error.is_corrupt() => {
            let problem = error.to_string();
            let database = config.store.path.display().to_string();
            match format {
                Format::Json => outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "database": database,
                        "healthy": false,
                        "problem": problem,
                    }))?
                ),
                _ => out!("database: {database}\nhealth: {problem}\n"),
            }
            return Ok(ExitCode::FAILURE);
        }
        Err(error) => return Err(error.into()),
    };
    let status = crate::status::status(config, &store, SystemClock.now())?;
    match format {
        Format::Json => outln!("{}", serde_json::to_string_pretty(&status)?),
        _ => out!("{}", crate::status::render_text(&status)),
    }
    Ok(if status.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn alerts_test_command(config: Config, channel: String) -> anyhow::Result<ExitCode> {
    let mut store = open_writer(&config, "orgwarden alerts test")?;
    let mut ctx = JobContext::new(&config, &mut store, SystemClock::shared());
    let summary = crate::jobs::alerts_test_job(&mut ctx, &channel).await?;
    if summary.sent > 0 {
        outln!("test message sent to {channel}");
        Ok(ExitCode::SUCCESS)
    } else {
        let pending = ctx.store.pending_alerts()?;
        let error = pending
            .iter()
            .find(|p| p.channel == channel)
            .and_then(|p| p.last_error.clone())
            .unwrap_or_else(|| "refused by the receiver".to_owned());
        eprintln!("test message to {channel} not delivered: {error}");
        Ok(ExitCode::FAILURE)
    }
}

async fn report_command(
    config: Config,
    out: Option<PathBuf>,
    send: bool,
    since: Option<String>,
) -> anyhow::Result<ExitCode> {
    let since = since
        .map(|text| crate::jobs::Since::parse(&text, config.schedule.timezone))
        .transpose()
        .map_err(|e| anyhow::anyhow!(e))?;
    // A report that is not sent is a preview: it records nothing, so it is made on a private
    // copy and works while the daemon holds the database.
    let mut store = if send {
        open_writer(&config, "orgwarden report")?
    } else {
        Store::open_preview(&config.store.path)?
    };
    let mut ctx = JobContext::new(&config, &mut store, SystemClock::shared());
    let options = crate::jobs::ReportOptions {
        out: out.as_deref(),
        send,
        since,
        record_unsent: false,
    };
    let result = crate::jobs::report_job(&mut ctx, &options).await;
    textfile(&ctx);
    let summary = result?;
    outln!("{}", summary.subject);
    if !summary.recorded {
        outln!("preview: not recorded; the next report's period is unchanged (--send ends it)");
    }
    for file in &summary.files {
        outln!("wrote {}", file.display());
    }
    if let (Some(id), Some(outbox)) = (&summary.message_id, &summary.outbox) {
        outln!(
            "email {id}: {} sent, {} waiting in the outbox for a retry",
            outbox.sent,
            outbox.retrying
        );
        for error in &outbox.errors {
            eprintln!("  - {error}");
        }
        if outbox.sent == 0 {
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--since` of `orgwarden events`: an event id or a time.
fn parse_events_since(text: &str) -> anyhow::Result<crate::store::EventsSince> {
    use crate::store::EventsSince;
    if let Ok(id) = text.parse::<i64>() {
        return Ok(EventsSince::Id(id));
    }
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(EventsSince::Time(at.with_timezone(&chrono::Utc)));
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(EventsSince::Time(
            day.and_time(chrono::NaiveTime::MIN).and_utc(),
        ));
    }
    anyhow::bail!("--since {text:?} is neither an event id, an RFC 3339 time nor a YYYY-MM-DD date")
}

/// One event as `orgwarden events` prints it.
fn event_text(event: &crate::store::EventRecord, format: Format) -> String {
    if format == Format::Json {
        return crate::events::line(event);
    }
    let mut text = format!("{} {} {}", event.id, crate::org::ts(&event.at), event.kind);
    for (key, value) in &event.payload {
        match value {
            serde_json::Value::Null => {}
            serde_json::Value::String(s) => text.push_str(&format!(" {key}={s:?}")),
            other => text.push_str(&format!(" {key}={other}")),
        }
    }
    text
}

async fn events_command(
    config: &Config,
    since: Option<&str>,
    follow: bool,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let mut since = since.map(parse_events_since).transpose()?;
    let store = Store::open_reader(&config.store.path)?;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    loop {
        loop {
            let events = store.events(since, 1000)?;
            let Some(last) = events.last().map(|e| e.id) else {
                break;
            };
            for event in &events {
                outln!("{}", event_text(event, format));
            }
            since = Some(crate::store::EventsSince::Id(last));
        }
        if !follow {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::select! {
            _ = &mut interrupted => return Ok(ExitCode::SUCCESS),
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}

fn history_command(
    config: &Config,
    format: Format,
    limit: Option<usize>,
) -> anyhow::Result<ExitCode> {
    let store = Store::open_reader(&config.store.path)?;
    // Newest first, like `status`.
    let mut runs = store.runs()?;
    runs.reverse();
    runs.truncate(limit.unwrap_or(usize::MAX));
    out!("{}", render(format, &runs));
    Ok(ExitCode::SUCCESS)
}

async fn usage_command(config: Config, fetch: bool, format: Format) -> anyhow::Result<ExitCode> {
    if fetch {
        require_admin_key(&config)?;
        let mut store = open_writer(&config, "orgwarden usage --fetch")?;
        let mut ctx = JobContext::new(&config, &mut store, SystemClock::shared());
        let result = crate::jobs::usage_job(&mut ctx).await;
        textfile(&ctx);
        let summary = result?;
        eprintln!(
            "usage: {} days fetched ({} complete) in {} requests",
            summary.days, summary.complete_days, summary.requests
        );
    }
    let store = Store::open_reader(&config.store.path)?;
    let state = store.state_at(crate::jobs::resolve_run(&store, None)?)?;
    let view = store.usage_view()?.context(
        "no usage ingested yet: the daemon's audit cycle ingests it when [usage] is enabled, or run `orgwarden usage --fetch`",
    )?;
    let listing = crate::usage_ingest::usage_listing(&state, &view);
    if format == Format::Json {
        outln!("{}", serde_json::to_string_pretty(&listing)?);
        return Ok(ExitCode::SUCCESS);
    }
    let day = |d: Option<chrono::NaiveDate>| d.map_or("-".to_owned(), |d| d.to_string());
    outln!(
        "usage covered from {} to {} (UTC days)",
        day(listing.covered_from),
        day(listing.covered_to)
    );
    if let Some(failure) = &listing.failure {
        outln!("the last usage ingest failed: {failure}");
    }
    outln!("\nAPI keys:");
    out!("{}", render(format, &listing.keys));
    outln!("\nmembers:");
    out!("{}", render(format, &listing.members));
    Ok(ExitCode::SUCCESS)
}

fn show_command(
    config: &Config,
    what: ShowWhat,
    at: Option<i64>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let store = Store::open_reader(&config.store.path)?;
    if what == ShowWhat::Directory {
        return show_directory(config, &store, at, format);
    }
    let state = store.state_at(crate::jobs::resolve_run(&store, at)?)?;
    let text = match what {
        // Answered above, from the directory reads rather than the snapshot.
        ShowWhat::Directory => String::new(),
        ShowWhat::Members => render(format, &state.members),
        ShowWhat::Invites => render(format, &state.invites),
        ShowWhat::Keys => render(format, &state.api_keys),
        ShowWhat::Workspaces => render(format, &state.workspaces),
        ShowWhat::WorkspaceMembers => render(format, &state.workspace_members),
    };
    out!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// One person of a directory read, as `show directory` prints it.
#[derive(serde::Serialize)]
struct DirectoryRow {
    source: String,
    read_at: chrono::DateTime<chrono::Utc>,
    id: String,
    email: String,
    aliases: Vec<String>,
    status: String,
    /// The directory's own time of the last status change, if it gives one.
    status_since: Option<chrono::DateTime<chrono::Utc>>,
    /// The first of orgwarden's reads that showed this status.
    seen_since: Option<chrono::DateTime<chrono::Utc>>,
    assigned: Option<bool>,
}

impl crate::output::Tabular for DirectoryRow {
    const COLUMNS: &'static [&'static str] = &[
        "source",
        "read_at",
        "id",
        "email",
        "aliases",
        "status",
        "status_since",
        "seen_since",
        "assigned",
    ];
    fn cells(&self) -> Vec<String> {
        let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map(|t| crate::org::ts(&t)).unwrap_or_default()
        };
        vec![
            self.source.clone(),
            crate::org::ts(&self.read_at),
            self.id.clone(),
            self.email.clone(),
            self.aliases.join(" "),
            self.status.clone(),
            time(self.status_since),
            time(self.seen_since),
            self.assigned.map(|a| a.to_string()).unwrap_or_default(),
        ]
    }
}

/// `show directory [--at RUN]`: what the audit of that snapshot read from each source.
fn show_directory(
    config: &Config,
    store: &Store,
    at: Option<i64>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let when = match at {
        Some(run) => {
            let record = store.run(run)?.with_context(|| format!("no run {run}"))?;
            record.finished_at.unwrap_or(record.started_at)
        }
        // The newest read. Not `DateTime::MAX_UTC`: the store compares RFC 3339 text, and that
        // year (+262142) sorts before every four-digit one.
        None => "9999-12-31T23:59:59Z".parse::<chrono::DateTime<chrono::Utc>>()?,
    };
    let mut rows = Vec::new();
    for view in crate::jobs::directory_views(config, store, when)? {
        let read = match view.read {
            Ok(read) => read,
            Err(why) => {
                eprintln!("directory {}: {why}", view.name);
                continue;
            }
        };
        let assigned = read.listing.assigned.clone();
        for person in read.listing.people {
            let status = match &person.status {
                crate::org::DirectoryStatus::Active => "active".to_owned(),
                crate::org::DirectoryStatus::Disabled(word) => format!("disabled ({word})"),
                crate::org::DirectoryStatus::Deleted => "deleted".to_owned(),
            };
            rows.push(DirectoryRow {
                source: view.name.clone(),
                read_at: read.read_at,
                seen_since: read.seen_since.get(&person.id).copied(),
                assigned: assigned.as_ref().map(|list| {
                    std::iter::once(&person.email)
                        .chain(&person.aliases)
                        .any(|a| list.contains(a))
                }),
                id: person.id,
                email: person.email,
                aliases: person.aliases,
                status,
                status_since: person.status_since,
            });
        }
    }
    out!("{}", render(format, &rows));
    Ok(ExitCode::SUCCESS)
}

impl crate::output::Tabular for crate::jobs::DirectoryReadSummary {
    const COLUMNS: &'static [&'static str] = &[
        "name",
        "type",
        "active",
        "disabled",
        "deleted",
        "assigned",
        "duration_ms",
        "error",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.kind.to_owned(),
            self.active.to_string(),
            self.disabled.to_string(),
            self.deleted.to_string(),
            self.assigned.map(|n| n.to_string()).unwrap_or_default(),
            self.duration_ms.to_string(),
            self.error.clone().unwrap_or_default(),
        ]
    }
}

/// `directory check`: reads every enabled source once, prints the counts, stores nothing.
async fn directory_check_command(config: Config, format: Format) -> anyhow::Result<ExitCode> {
    if config.directories.is_empty() {
        eprintln!("no enabled [[directories]] source is configured");
        return Ok(ExitCode::from(1));
    }
    let sources: Vec<&config::DirectoryConfig> = config.directories.iter().collect();
    let clock = SystemClock::shared();
    let results = crate::jobs::read_directories(&sources, &clock).await;
    let summaries: Vec<crate::jobs::DirectoryReadSummary> =
        results.into_iter().map(|(summary, _)| summary).collect();
    out!("{}", render(format, &summaries));
    let failed = summaries.iter().any(|s| s.error.is_some());
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `directory read [NAME]`: reads the source (or every source) and records each read.
async fn directory_read_command(
    config: Config,
    name: Option<String>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    if config.directories.is_empty() {
        eprintln!("no enabled [[directories]] source is configured");
        return Ok(ExitCode::from(1));
    }
    let mut store = open_writer(&config, "orgwarden directory read")?;
    let mut ctx = JobContext::new(&config, &mut store, SystemClock::shared());
    let result = match &name {
        Some(name) => crate::jobs::directory_read_job(&mut ctx, name)
            .await
            .map(|summary| vec![summary]),
        None => {
            let sources: Vec<&config::DirectoryConfig> = config.directories.iter().collect();
            crate::jobs::directory_job(&mut ctx, &sources).await
        }
    };
    textfile(&ctx);
    let summaries = result?;
    out!("{}", render(format, &summaries));
    Ok(if summaries.iter().any(|s| s.error.is_some()) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn diff_command(
    config: &Config,
    from: Option<i64>,
    to: Option<i64>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let store = Store::open_reader(&config.store.path)?;
    let to = crate::jobs::resolve_run(&store, to)?;
    let from = match from {
        Some(from) => from,
        None => {
            store
                .latest_complete(Some(to))?
                .with_context(|| format!("no complete snapshot before run {to} to compare with"))?
                .id
        }
    };
    let changes = snapshot::diff(&store.state_at(from)?, &store.state_at(to)?);
    if format == Format::Table {
        outln!("changes from run {from} to run {to}:");
    }
    out!("{}", render(format, &changes));
    Ok(ExitCode::SUCCESS)
}

fn mail_config(config: &Config) -> anyhow::Result<&config::MailConfig> {
    config.mail.as_ref().context(
        "mail is not configured: set mail.from and mail.to, and mail.host (or transport = \"file\")",
    )
}

async fn outbox_command(config: Config, retry: bool, format: Format) -> anyhow::Result<ExitCode> {
    let mut pending = 0;
    let records = if retry {
        let mail = mail_config(&config)?;
        let mut store = open_writer(&config, "orgwarden outbox --retry")?;
        let summary = crate::mail::retry_outbox(mail, &mut store, SystemClock.now()).await?;
        eprintln!(
            "outbox: {} tried, {} sent, {} still pending, {} failed for good",
            summary.attempted, summary.sent, summary.retrying, summary.failed
        );
        for error in &summary.errors {
            eprintln!("  - {error}");
        }
        pending = store.outbox_counts()?.pending;
        store.outbox_list()?
    } else if config.store.path.exists() {
        Store::open_reader(&config.store.path)?.outbox_list()?
    } else {
        Vec::new()
    };
    out!("{}", render(format, &records));
    // A retry that leaves mail waiting has not done its job: a script must see it.
    Ok(if pending > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn send_test_email_command(config: Config, address: String) -> anyhow::Result<ExitCode> {
    let mail = mail_config(&config)?;
    let to: lettre::message::Mailbox = address
        .parse()
        .with_context(|| format!("{address:?} is not an email address"))?;
    match crate::mail::send_test_email(mail, &to, SystemClock.now()).await {
        Ok(message_id) => {
            outln!(
                "test message {} sent to {}",
                crate::mail::message_id_header(&message_id, &crate::mail::message_id_domain(mail)),
                to.email
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("orgwarden: the test message was not delivered: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::terminal_safe;

    #[test]
    fn terminal_text_loses_bidi_and_control_characters_but_keeps_lines() {
        assert_eq!(
            terminal_safe("a\u{202E}b\u{1b}[31mc\r\n\td\u{2067}"),
            "ab\u{FFFD}[31mc\u{FFFD}\n\td"
        );
    }
}
