//! `orgwarden-bench snapshot` (`cargo run --release -p orgwarden-bench -- snapshot`): measures a
//! full snapshot of a large simulated organization. Not part of the shipped `orgwarden` binary.
//!
//! The simulator runs in this process; each snapshot runs as a child `orgwarden snapshot`: this
//! binary re-executed with `argv[0] = "orgwarden"`, which runs orgwarden's own `cli::main`, so the
//! peak RSS reported is that of the real command alone (its `VmHWM`), not of the simulator. The
//! fetch-only bound is measured here with the same client settings and concurrency. Figures are
//! printed as one JSON object.
#![forbid(unsafe_code)]

/// The same allocator as the shipped `orgwarden` binary (see its `main.rs`): the audit and the
/// usage ingest are measured in this process and must allocate as the real command does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod audit;
mod directory;
mod usage;

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use orgwarden::admin_api::{AdminClient, ClientOptions};
use orgwarden_sim::{Faults, SeedSizes, SimHandle, SimOptions, DEMO_ADMIN_KEY};

/// Measures a snapshot and an audit of a large simulated organization; prints JSON figures.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "orgwarden-bench")]
struct BenchArgs {
    /// What to measure.
    #[arg(value_enum, default_value = "snapshot")]
    what: BenchWhat,
    #[arg(long, default_value_t = 20_000)]
    members: usize,
    #[arg(long, default_value_t = 5_000)]
    invites: usize,
    #[arg(long, default_value_t = 100)]
    workspaces: usize,
    #[arg(long, default_value_t = 40_000)]
    workspace_members: usize,
    #[arg(long, default_value_t = 50_000)]
    keys: usize,
    /// Latency the simulator adds to every request.
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// Requests in flight (api.max_in_flight).
    #[arg(long, default_value_t = 4)]
    max_in_flight: usize,
    /// Multiplies every seeded size (members, invites, workspaces, memberships, keys).
    #[arg(long, default_value_t = 1)]
    scale: usize,
    /// Skips the sequential client's measurement (one request at a time, nothing stored).
    #[arg(long)]
    no_sequential: bool,
    /// `directory`: about how many people the directory holds.
    #[arg(long, default_value_t = 100_000)]
    people: usize,
    /// `snapshot`: also copies the database to this path before the audit (for `audit --db`).
    /// `directory`: copies the audit's database, its directory read recorded, to this path (for
    /// `audit --db PATH --with-directory`).
    #[arg(long)]
    save_db: Option<std::path::PathBuf>,
    /// `directory`: skips the Okta, Google and Graph reads and measures only what the directory
    /// rules add to the audit (the `audit` figures alone).
    #[arg(long)]
    audit_only: bool,
    /// `directory`: only the Graph part (its rounds of orgwarden's read and of the same pages
    /// fetched alone), without the Okta and Google reads and the audit.
    #[arg(long)]
    graph_only: bool,
    /// `directory`: rounds of the Graph read and of the fetch-only read.
    #[arg(long, default_value_t = directory::GRAPH_ROUNDS)]
    graph_rounds: usize,
    /// `directory`: which of the two Graph reads each round runs (one alone: to profile it).
    #[arg(long, value_enum, default_value = "both")]
    graph_side: directory::GraphSide,
    /// `audit`: audits with the Okta source of a database `directory --save-db` saved
    /// configured, as `directory` does for its audit with the source.
    #[arg(long)]
    with_directory: bool,
    /// `audit`: the database to audit (a copy of it, each time: the first audit of its latest
    /// snapshot, as in `snapshot`).
    #[arg(long)]
    db: Option<std::path::PathBuf>,
    /// `audit`: how many times to audit a fresh copy of `--db`.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum BenchWhat {
    Snapshot,
    /// The usage ingest: a 90-day backfill against fetching the pages alone, and a one-day
    /// increment.
    Usage,
    /// A 100k-person directory read from the Okta, Google and Graph simulators at their documented
    /// rate limits, against the bound those set; and what the directory rules add to the audit.
    Directory,
    /// Only the audit, of a copy of a database `snapshot --save-db` saved (`--db`), `--repeat`
    /// times: the audit's figures without seeding and snapshotting again.
    Audit,
}

/// The `argv[0]` under which this binary runs orgwarden's command line instead of the bench.
const ORGWARDEN: &str = "orgwarden";

fn main() -> ExitCode {
    let argv0 = std::env::args_os().next().unwrap_or_default();
    if argv0 == ORGWARDEN {
        return orgwarden::cli::main();
    }
    let args = <BenchArgs as clap::Parser>::parse();
    orgwarden::telemetry::init("warn", orgwarden::config::LogFormat::Text);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("orgwarden-bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bench_command(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("orgwarden-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, Serialize)]
struct Figures {
    scale: usize,
    members: usize,
    invites: usize,
    workspaces: usize,
    workspace_members: usize,
    api_keys: usize,
    latency_ms: u64,
    max_in_flight: usize,
    snapshot_secs: f64,
    /// The first snapshot child's user plus system time.
    snapshot_cpu_secs: Option<f64>,
    /// The second snapshot (nothing changed in between).
    unchanged_snapshot_secs: f64,
    fetch_only_secs: f64,
    snapshot_over_fetch: f64,
    /// One request at a time, nothing stored: a sequential client's best case.
    #[serde(skip_serializing_if = "Option::is_none")]
    sequential_fetch_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sequential_over_snapshot: Option<f64>,
    /// The plain sequential script issue 13 measured against (`sequential_client.py`: Python,
    /// one request at a time, every object parsed and stored in SQLite), where python3 runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    python_sequential_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    python_sequential_over_snapshot: Option<f64>,
    requests: u64,
    peak_rss_bytes: u64,
    db_bytes: u64,
    unchanged_growth_bytes: i64,
    changed_1pct_growth_bytes: i64,
    audit_secs: f64,
    audit_findings: usize,
    /// Where the audit's time goes (each part measured again on its own).
    /// The audit's CPU time: on a busy machine, the part of `audit_secs` that was work.
    audit_cpu_secs: Option<f64>,
    audit_load_secs: f64,
    audit_evaluate_secs: f64,
    audit_evaluate_cpu_secs: Option<f64>,
    /// The 1-minute load average when the bench ended: figures are only comparable at a similar load.
    load_average: Option<f64>,
}

async fn bench_command(args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.scale >= 1, "--scale must be at least 1");
    if matches!(args.what, BenchWhat::Audit) {
        let db = args.db.as_deref().context("`audit` needs --db PATH")?;
        let mut runs = Vec::new();
        for _ in 0..args.repeat {
            let dir = tempfile::tempdir().context("creating a temporary directory")?;
            let copy = dir.path().join("orgwarden.db");
            std::fs::copy(db, &copy).context("copying the database")?;
            let extra = if args.with_directory {
                directory::audit_source("http://127.0.0.1:9")
            } else {
                String::new()
            };
            let audit =
                audit::bench_audit_with(&copy, orgwarden::clock::SystemClock::shared(), &extra)?;
            eprintln!("{}", serde_json::to_string(&audit)?);
            runs.push(audit);
        }
        let json = serde_json::json!({ "runs": runs, "load_average": load_average() });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    if matches!(args.what, BenchWhat::Directory) {
        let mut json = if args.audit_only {
            let audit = directory::audit_with_directory(args.save_db.as_deref()).await?;
            serde_json::json!({ "audit": audit })
        } else {
            let bench = directory::DirectoryBench {
                people: args.people,
                save_db: args.save_db.clone(),
                graph_only: args.graph_only,
                graph_rounds: args.graph_rounds,
                graph_side: args.graph_side,
            };
            let figures = directory::bench_directory(&bench).await?;
            serde_json::to_value(&figures)?
        };
        if let Some(object) = json.as_object_mut() {
            object.insert("load_average".into(), serde_json::json!(load_average()));
        }
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    let sizes = SeedSizes {
        members: args.members * args.scale,
        invites: args.invites * args.scale,
        workspaces: args.workspaces * args.scale,
        keys: args.keys * args.scale,
        workspace_members: args.workspace_members * args.scale,
    };
    eprintln!(
        "seeding the simulator ({} members, {} keys)...",
        sizes.members, sizes.keys
    );
    let usage = matches!(args.what, BenchWhat::Usage);
    let sim = SimHandle::start_local(SimOptions {
        sizes,
        faults: Faults {
            latency: Duration::from_millis(args.latency_ms),
            ..Faults::default()
        },
        // The usage bench moves the simulator's clock a day; the snapshot bench runs on real time.
        now: usage.then(usage::start),
        ..SimOptions::default()
    })
    .await?;
    if usage {
        return usage_command(&args, &sim, sizes).await;
    }
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            // The default pacing (none: the client adapts to 429s and 529s).
            "[api]\nbase_url = \"{}\"\nmax_in_flight = {}\n[store]\npath = \"orgwarden.db\"\n",
            sim.base_url(),
            args.max_in_flight
        ),
    )?;
    let db = dir.path().join("orgwarden.db");

    // The bound: the same pages, the same concurrency, nothing stored.
    let mut options = ClientOptions::new(sim.base_url().parse()?);
    options.requests_per_second = None;
    let client = AdminClient::new(options, DEMO_ADMIN_KEY.to_owned().into())?;
    let started = Instant::now();
    let counts = orgwarden::snapshot::fetch_only(&client, args.max_in_flight).await?;
    let fetch_only_secs = started.elapsed().as_secs_f64();
    eprintln!("fetch only: {fetch_only_secs:.2}s ({counts:?})");
    let sequential_fetch_secs = if args.no_sequential {
        None
    } else {
        let started = Instant::now();
        orgwarden::snapshot::fetch_only(&client, 1).await?;
        let secs = started.elapsed().as_secs_f64();
        eprintln!("sequential fetch: {secs:.2}s");
        Some(secs)
    };
    let python_sequential_secs = if args.no_sequential {
        None
    } else {
        python_sequential(&sim.base_url().to_string(), dir.path())?
    };

    let served_before = sim.requests_served();
    let first = snapshot_child(&config).await?;
    let snapshot_secs = first.secs;
    let requests = sim.requests_served() - served_before;
    let db_bytes = file_size(&db);
    eprintln!("snapshot: {snapshot_secs:.2}s, {requests} requests, {db_bytes} bytes");

    let unchanged = snapshot_child(&config).await?;
    let unchanged_growth_bytes = file_size(&db) as i64 - db_bytes as i64;

    change_one_percent(&sim);
    let before = file_size(&db);
    let changed = snapshot_child(&config).await?;
    let changed_1pct_growth_bytes = file_size(&db) as i64 - before as i64;

    if let Some(save) = &args.save_db {
        std::fs::copy(&db, save).context("saving a copy of the database")?;
    }
    let audit = audit::bench_audit(&db, orgwarden::clock::SystemClock::shared())?;
    let peak_rss_bytes = first.peak_rss.max(unchanged.peak_rss).max(changed.peak_rss);
    let figures = Figures {
        scale: args.scale,
        members: sizes.members,
        invites: sizes.invites,
        workspaces: sizes.workspaces,
        workspace_members: sizes.workspace_members,
        api_keys: sizes.keys,
        latency_ms: args.latency_ms,
        max_in_flight: args.max_in_flight,
        snapshot_secs,
        snapshot_cpu_secs: first.cpu_secs,
        unchanged_snapshot_secs: unchanged.secs,
        fetch_only_secs,
        snapshot_over_fetch: snapshot_secs / fetch_only_secs,
        sequential_fetch_secs,
        sequential_over_snapshot: sequential_fetch_secs.map(|s| s / snapshot_secs),
        python_sequential_secs,
        python_sequential_over_snapshot: python_sequential_secs.map(|s| s / snapshot_secs),
        requests,
        peak_rss_bytes,
        db_bytes,
        unchanged_growth_bytes,
        changed_1pct_growth_bytes,
        audit_secs: audit.secs,
        audit_findings: audit.findings,
        audit_cpu_secs: audit.cpu_secs,
        audit_load_secs: audit.load_secs,
        audit_evaluate_secs: audit.evaluate_secs,
        audit_evaluate_cpu_secs: audit.evaluate_cpu_secs,
        load_average: load_average(),
    };
    println!("{}", serde_json::to_string_pretty(&figures)?);
    sim.shutdown();
    Ok(())
}

/// The usage figures with the organization's size, as one JSON object.
async fn usage_command(args: &BenchArgs, sim: &SimHandle, sizes: SeedSizes) -> anyhow::Result<()> {
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    let mut options = ClientOptions::new(sim.base_url().parse()?);
    options.requests_per_second = None;
    options.max_in_flight = args.max_in_flight;
    // A 31-day page of 50 000 keys is large: give it time.
    options.request_timeout = Duration::from_secs(300);
    options.total_deadline = Duration::from_secs(900);
    let client = AdminClient::new(options, DEMO_ADMIN_KEY.to_owned().into())?;
    let figures = usage::bench_usage(
        sim,
        &client,
        &dir.path().join("orgwarden.db"),
        args.max_in_flight,
    )
    .await?;
    let mut json = serde_json::json!({
        "members": sizes.members,
        "api_keys": sizes.keys,
        "latency_ms": args.latency_ms,
        "max_in_flight": args.max_in_flight,
        "load_average": load_average(),
    });
    if let (Some(object), serde_json::Value::Object(more)) =
        (json.as_object_mut(), serde_json::to_value(&figures)?)
    {
        object.extend(more);
    }
    println!("{}", serde_json::to_string_pretty(&json)?);
    sim.shutdown();
    Ok(())
}

fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
}

/// What one `orgwarden snapshot` child took.
struct ChildRun {
    secs: f64,
    /// User plus system time, from the child's last `/proc/<pid>/stat` (read while it is a
    /// zombie, so its whole life).
    cpu_secs: Option<f64>,
    peak_rss: u64,
}

/// Runs `orgwarden snapshot` as a child; returns its wall time, CPU time and peak RSS.
///
/// The peak is the child's `VmHWM` from `/proc/<pid>/status`, polled until it exits (a
/// high-water mark, so the last reading holds the peak up to then). `getrusage(RUSAGE_CHILDREN)`
/// would be wrong here: Linux carries the pre-exec size of the forked bench process, simulator
/// and all, into the child's `ru_maxrss`.
async fn snapshot_child(config: &Path) -> anyhow::Result<ChildRun> {
    let exe = std::env::current_exe().context("locating the orgwarden-bench binary")?;
    let mut command = Command::new(exe);
    command
        .arg0(ORGWARDEN)
        .arg("--config")
        .arg(config)
        .arg("snapshot")
        .env("ANTHROPIC_ADMIN_KEY", DEMO_ADMIN_KEY)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null());
    let started = Instant::now();
    let mut child = command.spawn().context("starting the snapshot child")?;
    let status_file = format!("/proc/{}/status", child.id());
    let stat_file = format!("/proc/{}/stat", child.id());
    let mut peak = 0;
    let mut cpu_secs = None;
    let status = loop {
        if let Some(hwm) = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|text| vm_hwm_bytes(&text))
        {
            peak = peak.max(hwm);
        }
        if let Some(cpu) = std::fs::read_to_string(&stat_file)
            .ok()
            .and_then(|text| cpu_secs_of_stat(&text))
        {
            cpu_secs = Some(cpu);
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(status.success(), "the snapshot child failed: {status}");
    Ok(ChildRun {
        secs,
        cpu_secs,
        peak_rss: peak,
    })
}

/// `utime + stime` of a `/proc/<pid>/stat` line, in seconds (fields 14 and 15, in clock ticks
/// of USER_HZ, which Linux fixes at 100 for user space). The command name (field 2) may hold
/// spaces, so fields are counted after its closing parenthesis.
pub(crate) fn cpu_secs_of_stat(stat: &str) -> Option<f64> {
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// `VmHWM:   34392 kB` → bytes.
fn vm_hwm_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Changes about 1% of members, invites, keys and memberships, as people would in the Console.
fn change_one_percent(sim: &SimHandle) {
    sim.with_state(|state| {
        let users = state.users();
        for user in users.iter().step_by(100) {
            let id = user["id"].as_str().unwrap_or_default().to_owned();
            let role = if user["role"] == "developer" {
                "user"
            } else {
                "developer"
            };
            if user["role"] != "admin" {
                state.set_user_role(&id, role);
            }
        }
        let keys = state.api_keys();
        for key in keys.iter().step_by(100) {
            let id = key["id"].as_str().unwrap_or_default().to_owned();
            let name = format!("{} (renamed)", key["name"].as_str().unwrap_or_default());
            state.set_key_name(&id, &name);
        }
        let now = state.now();
        for idx in 0..(users.len() / 100).max(1) {
            state.add_invite(&format!("new-hire-{idx}@example.com"), "user", now);
        }
    });
}

/// Runs `sequential_client.py` (embedded in this binary) against the simulator and times it;
/// `None` where python3 cannot be started.
fn python_sequential(base_url: &str, dir: &Path) -> anyhow::Result<Option<f64>> {
    let script = dir.join("sequential_client.py");
    std::fs::write(&script, include_str!("../sequential_client.py"))?;
    let db = dir.join("sequential_client.db");
    let started = Instant::now();
    let output = match Command::new("python3")
        .arg(&script)
        .arg(base_url.trim_end_matches('/'))
        .arg(DEMO_ADMIN_KEY)
        .arg(&db)
        .output()
    {
        Ok(output) => output,
        Err(error) => {
            eprintln!("python sequential client skipped: python3: {error}");
            return Ok(None);
        }
    };
    let secs = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        output.status.success(),
        "sequential_client.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    eprintln!(
        "python sequential client: {secs:.2}s ({})",
        String::from_utf8_lossy(&output.stdout).trim()
    );
    Ok(Some(secs))
}
