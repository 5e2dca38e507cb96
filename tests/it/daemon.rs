//! `orgwarden run`, the real binary as a child process: systemd notifications on a socket the test
//! binds, scheduled runs, SIGTERM during a run, the single-writer lock, SIGHUP reloads.

use std::fs::File;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::sync::Arc;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use orgwarden::clock::ManualClock;
use orgwarden::config::{Config, Environment};
use orgwarden::daemon::{job, Control, JobFuture, JobSpec};
use orgwarden::jobs::JobContext;
use orgwarden::store::{RunRecord, RunStatus, Store};
use orgwarden_sim::{Faults, SimHandle};

use crate::helpers::*;

/// Generous: CI machines are slow and shared; every wait returns as soon as its condition holds.
const DEADLINE: Duration = Duration::from_secs(30);

/// A running `orgwarden run` with its own directory, log file and notify socket.
struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    config: PathBuf,
    log: PathBuf,
    socket: UnixDatagram,
    notifications: Vec<String>,
}

impl Daemon {
    /// Starts the daemon against `sim` with `schedule` as the `[schedule]` table's lines.
    fn start(sim: &SimHandle, schedule: &str, env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(
            dir.path(),
            &sim.base_url(),
            &format!("[schedule]\n{schedule}"),
        );
        Daemon::start_in(dir, config, env)
    }

    fn start_in(dir: tempfile::TempDir, config: PathBuf, env: &[(&str, &str)]) -> Daemon {
        let socket_path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
        socket.set_nonblocking(true).unwrap();
        let log = dir.path().join("daemon.log");
        let mut command = orgwarden(&config, &["run"]);
        command
            .env("NOTIFY_SOCKET", &socket_path)
            .env("NO_COLOR", "1")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(File::create(dir.path().join("daemon.out")).unwrap())
            .stderr(File::create(&log).unwrap());
        let child = command.spawn().expect("spawn orgwarden run");
        Daemon {
            child,
            dir,
            config,
            log,
            socket,
            notifications: Vec::new(),
        }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("orgwarden.db")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("send signal");
    }

    /// Every datagram received so far (each is one or more `KEY=value` lines).
    fn notifications(&mut self) -> &[String] {
        let mut buf = [0u8; 4096];
        while let Ok(n) = self.socket.recv(&mut buf) {
            self.notifications
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        &self.notifications
    }

    fn notified(&mut self, line: &str) -> bool {
        self.notifications()
            .iter()
            .any(|message| message.lines().any(|l| l.starts_with(line)))
    }

    fn exited(&mut self) -> Option<i32> {
        self.child
            .try_wait()
            .expect("try_wait")
            .map(|status| status.code().unwrap_or(-1))
    }

    /// Waits for `what`, failing the test with the daemon's log after `DEADLINE`.
    async fn wait_for(&mut self, what: &str, mut done: impl FnMut(&mut Daemon) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !done(self) {
            if let Some(code) = self.exited() {
                panic!(
                    "daemon exited ({code}) while waiting for {what}; log:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; log:\n{}\nnotifications: {:?}",
                self.log(),
                self.notifications
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn wait_ready(&mut self) {
        self.wait_for("READY=1", |d| d.notified("READY=1")).await;
    }

    async fn wait_log(&mut self, text: &str) {
        self.wait_for(&format!("{text:?} in the log"), |d| d.log().contains(text))
            .await;
    }

    /// Waits until the database has at least `n` complete runs; returns them all.
    async fn wait_complete_runs(&mut self, n: usize) -> Vec<RunRecord> {
        self.wait_for(&format!("{n} complete runs"), |d| complete(&d.db()) >= n)
            .await;
        runs(&self.db())
    }

    /// Waits for the process to exit and returns its code.
    async fn wait_exit(&mut self, within: Duration) -> i32 {
        let deadline = Instant::now() + within;
        loop {
            if let Some(code) = self.exited() {
                return code;
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not exit within {within:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Only a failed test gets here with the child alive.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn runs(db: &Path) -> Vec<RunRecord> {
    match Store::open_reader(db) {
        Ok(store) => store.runs().unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

fn complete(db: &Path) -> usize {
    runs(db)
        .iter()
        .filter(|run| run.status == RunStatus::Complete)
        .count()
}

#[tokio::test]
async fn daemon_notifies_systemd_runs_on_schedule_and_stops_on_sigterm() {
    let sim = sim(small()).await;
    let mut daemon = Daemon::start(
        &sim,
        "audit = \"*/2 * * * * *\"\nrun_on_start = false\n",
        &[("WATCHDOG_USEC", "400000")],
    );
    daemon.wait_ready().await;
    let runs = daemon.wait_complete_runs(1).await;
    let counts = runs[0].counts.expect("counts of a complete run");
    assert_eq!(counts.members, sim.snapshot_state().users().len() as u64);
    daemon
        .wait_for("STATUS= with the last audit", |d| {
            d.notified("STATUS=last audit ")
                && d.notifications
                    .iter()
                    .any(|m| m.contains(" ok: snapshot run"))
        })
        .await;
    daemon
        .wait_for("WATCHDOG=1", |d| d.notified("WATCHDOG=1"))
        .await;
    let log = daemon.log();
    assert!(
        log.contains("audit scheduled at \"*/2 * * * * *\" (UTC)"),
        "{log}"
    );
    assert!(log.contains("audit finished in "), "{log}");

    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(DEADLINE).await, 0, "{}", daemon.log());
    assert!(daemon.notified("STOPPING=1"));
    assert!(daemon.log().contains("database checkpointed and closed"));
    // Nothing was left running.
    assert!(runs_all_finished(&daemon.db()));
}

fn runs_all_finished(db: &Path) -> bool {
    runs(db).iter().all(|run| run.status == RunStatus::Complete)
}

#[tokio::test]
async fn sigterm_during_a_run_lets_it_finish_then_exits_0() {
    let sim = sim(small()).await;
    // Every request takes 400ms: a snapshot takes a couple of seconds.
    sim.set_faults(Faults {
        latency: Duration::from_millis(400),
        ..Faults::default()
    });
    let mut daemon = Daemon::start(
        &sim,
        "audit = \"0 0 0 1 1 *\"\nrun_on_start = true\nshutdown_timeout = \"30s\"\n",
        &[],
    );
    daemon.wait_ready().await;
    daemon
        .wait_for("a running snapshot run", |d| {
            runs(&d.db()).iter().any(|r| r.status == RunStatus::Running)
        })
        .await;
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(DEADLINE).await, 0, "{}", daemon.log());
    let log = daemon.log();
    assert!(
        log.contains("waiting up to 30s for the running job"),
        "{log}"
    );
    assert!(log.contains("audit finished in "), "{log}");
    let runs = runs(&daemon.db());
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].status, RunStatus::Complete, "{runs:?}");
}

#[tokio::test]
async fn a_run_longer_than_shutdown_timeout_is_left_and_the_exit_code_says_so() {
    let sim = sim(small()).await;
    sim.set_faults(Faults {
        latency: Duration::from_secs(3),
        ..Faults::default()
    });
    let mut daemon = Daemon::start(
        &sim,
        "audit = \"0 0 0 1 1 *\"\nrun_on_start = true\nshutdown_timeout = \"500ms\"\n",
        &[],
    );
    daemon.wait_ready().await;
    daemon.wait_log("audit started").await;
    let signalled = Instant::now();
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(DEADLINE).await, 1, "{}", daemon.log());
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "{:?}",
        signalled.elapsed()
    );
    let log = daemon.log();
    assert!(log.contains("stopping without waiting for audit"), "{log}");
}

#[tokio::test]
async fn a_second_daemon_on_the_same_database_is_refused_naming_the_holder() {
    let sim = sim(small()).await;
    let mut first = Daemon::start(&sim, "audit = \"0 0 0 1 1 *\"\nrun_on_start = false\n", &[]);
    first.wait_ready().await;

    let (code, _, err) = run(orgwarden(&first.config, &["run"])).await;
    assert_ne!(code, 0, "{err}");
    assert!(
        err.contains(&format!(
            "the daemon (pid {}) holds the database; use its schedule or stop it",
            first.child.id()
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!("pid {} running `orgwarden run`", first.child.id())),
        "{err}"
    );

    // The first one is unaffected.
    assert_eq!(first.exited(), None);
    first.signal(Signal::SIGINT);
    assert_eq!(first.wait_exit(DEADLINE).await, 0, "{}", first.log());
}

#[tokio::test]
async fn sighup_with_a_broken_config_keeps_the_old_one_and_a_valid_one_reschedules() {
    let sim = sim(small()).await;
    let mut daemon = Daemon::start(&sim, "audit = \"* * * * * *\"\nrun_on_start = false\n", &[]);
    daemon.wait_ready().await;
    daemon.wait_complete_runs(1).await;

    let good = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::write(
        &daemon.config,
        good.replace("audit = \"* * * * * *\"", "audit = \"every second\"")
            .replace("[store]", "[store]\nkeep_days = \"forever\""),
    )
    .unwrap();
    daemon.signal(Signal::SIGHUP);
    daemon.wait_log("configuration reload refused").await;
    let log = daemon.log();
    assert!(
        log.contains("schedule.audit"),
        "every problem is logged: {log}"
    );
    assert!(log.contains("keep_days"), "every problem is logged: {log}");
    assert!(daemon.notified("RELOADING=1"));

    // Still running and still on the old schedule.
    let before = complete(&daemon.db());
    daemon.wait_complete_runs(before + 2).await;

    // A valid config with another schedule is applied.
    std::fs::write(
        &daemon.config,
        good.replace("audit = \"* * * * * *\"", "audit = \"0 0 0 1 1 *\""),
    )
    .unwrap();
    daemon.signal(Signal::SIGHUP);
    daemon.wait_log("configuration reloaded").await;
    assert!(daemon.log().contains("audit scheduled at \"0 0 0 1 1 *\""));
    // Let a possibly running run end, then no new one starts.
    daemon
        .wait_for("every started run to end", |d| {
            let log = d.log();
            log.matches("audit started").count()
                == log.matches("audit finished in ").count()
                    + log.matches("audit failed after").count()
        })
        .await;
    let settled = runs(&daemon.db()).len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(runs(&daemon.db()).len(), settled, "{}", daemon.log());

    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(DEADLINE).await, 0, "{}", daemon.log());
}

#[tokio::test]
async fn a_failing_job_is_logged_and_retried_and_a_reload_fixes_the_next_runs() {
    let sim = sim(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let schedule = "[schedule]\naudit = \"* * * * * *\"\nrun_on_start = true\n";
    let config = write_config(dir.path(), &sim.base_url(), schedule);
    let mut daemon = Daemon::start_in(
        dir,
        config,
        &[("ANTHROPIC_ADMIN_KEY", "sk-ant-admin01-not-the-right-key")],
    );
    daemon.wait_ready().await;
    daemon
        .wait_for("two failed runs", |d| {
            d.log().matches("audit failed after").count() >= 2
        })
        .await;
    assert!(daemon.log().contains("it will run again at its next tick"));
    daemon
        .wait_for("STATUS= with the failure", |d| {
            d.notifications()
                .iter()
                .any(|m| m.contains("STATUS=last audit ") && m.contains(" failed: "))
        })
        .await;
    assert_eq!(complete(&daemon.db()), 0);

    // The file's key wins over the environment's; a reload applies it to the next runs.
    let key_file = daemon.dir.path().join("admin_key");
    std::fs::write(&key_file, orgwarden_sim::DEMO_ADMIN_KEY).unwrap();
    write_config_api(
        daemon.dir.path(),
        &sim.base_url(),
        &format!("admin_key_file = {:?}", key_file.to_str().unwrap()),
        schedule,
    );
    daemon.signal(Signal::SIGHUP);
    daemon.wait_log("configuration reloaded").await;
    daemon.wait_complete_runs(1).await;
    daemon
        .wait_for("STATUS= ok", |d| {
            d.notifications()
                .iter()
                .any(|m| m.contains("STATUS=last audit ") && m.contains(" ok: "))
        })
        .await;
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(DEADLINE).await, 0, "{}", daemon.log());
}

#[tokio::test]
async fn run_without_an_admin_key_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "http://127.0.0.1:9", "");
    let mut command = orgwarden(&config, &["run"]);
    command.env_remove("ANTHROPIC_ADMIN_KEY");
    let (code, _, err) = run(command).await;
    assert_eq!(code, 78, "{err}");
    assert!(err.contains("api.admin_key"), "{err}");
}

/// Calls of [`panicky`] so far: the first panics, the later ones succeed.
static PANICKY_CALLS: AtomicUsize = AtomicUsize::new(0);

/// A job that starts a snapshot run and panics inside it the first time, like a bug in the middle
/// of a snapshot would; later calls succeed.
fn panicky<'a>(ctx: &'a mut JobContext<'_>) -> JobFuture<'a> {
    Box::pin(async move {
        let call = PANICKY_CALLS.fetch_add(1, AtomicOrdering::SeqCst);
        if call == 0 {
            let run = ctx.store.begin_run(ctx.clock.now())?;
            panic!("injected bug in run {run}: caf\u{e9} \u{2603}");
        }
        Ok(format!("call {call} went fine"))
    })
}

const PANICKY_JOBS: &[JobSpec] = &[job("panicky", |s| &s.audit, true, panicky)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_job_is_a_failed_run_with_the_message_and_the_daemon_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("orgwarden.db");
    let text = format!(
        "[api]\nbase_url = \"http://127.0.0.1:9\"\n[store]\npath = {:?}\n[schedule]\naudit = \"* * * * * *\"\nrun_on_start = true\n",
        db.to_str().unwrap()
    );
    let env = Environment {
        vars: vec![("ANTHROPIC_ADMIN_KEY".into(), "sk-ant-admin01-x".into())],
    };
    let (config, _) = Config::from_toml(&text, &env).unwrap();
    // 100 ms before a whole second: the first tick after the start-up run comes at once.
    let clock = ManualClock::new("2026-03-01T12:00:00.900Z".parse().unwrap());
    let (controls, receiver) = tokio::sync::mpsc::channel(4);
    let daemon = orgwarden::daemon::run_jobs(None, config, receiver, Arc::new(clock), PANICKY_JOBS);
    let driver = async {
        let deadline = Instant::now() + DEADLINE;
        while PANICKY_CALLS.load(AtomicOrdering::SeqCst) < 2 {
            assert!(
                Instant::now() < deadline,
                "the job never ran again after its panic"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        controls.send(Control::Stop("test")).await.unwrap();
    };
    let (result, ()) = tokio::join!(daemon, driver);
    result.expect("the daemon stops cleanly after a job panicked");

    let runs = runs(&db);
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].status, RunStatus::Failed, "{runs:?}");
    let error = runs[0].error.as_deref().unwrap_or_default();
    assert!(
        error.contains("panicked: injected bug in run 1: caf\u{e9} \u{2603}"),
        "the panic message is recorded: {error:?}"
    );
    assert_eq!(
        runs[0].finished_at.unwrap().to_rfc3339(),
        "2026-03-01T12:00:00.900+00:00"
    );
}

#[tokio::test]
async fn a_sighup_with_a_secret_on_a_broken_line_never_logs_the_secret() {
    let sim = sim(small()).await;
    let mut daemon = Daemon::start(&sim, "audit = \"0 0 0 1 1 *\"\nrun_on_start = false\n", &[]);
    daemon.wait_ready().await;
    let good = std::fs::read_to_string(&daemon.config).unwrap();
    for (broken, secret) in [
        // An unterminated string: the TOML error quotes the line.
        (
            "[api]\nadmin_key = \"sk-ant-admin01-HUPSECRET-one\n",
            "HUPSECRET-one",
        ),
        // A value the parser stops inside (a bare word after the secret).
        (
            "[mail]\npassword = \"hup-password-two\" oops\n",
            "hup-password-two",
        ),
    ] {
        std::fs::write(&daemon.config, good.replacen("[api]\n", broken, 1)).unwrap();
        let refusals = daemon.log().matches("configuration reload refused").count();
        daemon.signal(Signal::SIGHUP);
        daemon
            .wait_for("the reload to be refused", |d| {
                d.log().matches("configuration reload refused").count() > refusals
            })
            .await;
        let log = daemon.log();
        assert!(log.contains("line"), "the error says where: {log}");
        assert!(
            !log.contains(secret),
            "the secret is in the daemon's log: {log}"
        );
    }
    // `status` names the running daemon by its pid, and stops doing so once it has exited.
    std::fs::write(&daemon.config, &good).unwrap();
    let (_, out, _) = run(orgwarden(&daemon.config, &["status"])).await;
    let pid = daemon.child.id();
    assert!(
        out.contains(&format!(
            "daemon: running (pid {pid} running `orgwarden run` since "
        )),
        "{out}"
    );
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(DEADLINE).await, 0, "{}", daemon.log());
    let (_, out, _) = run(orgwarden(&daemon.config, &["status"])).await;
    assert!(out.contains("daemon: not running\n"), "{out}");
}

/// Calls of [`flaky`] so far: the first fails, the later ones succeed.
static FLAKY_CALLS: AtomicUsize = AtomicUsize::new(0);

fn flaky<'a>(_ctx: &'a mut JobContext<'_>) -> JobFuture<'a> {
    Box::pin(async move {
        match FLAKY_CALLS.fetch_add(1, AtomicOrdering::SeqCst) {
            0 => Err(anyhow::anyhow!("injected failure")),
            call => Ok(format!("call {call} went fine")),
        }
    })
}

const FLAKY_JOBS: &[JobSpec] = &[job("flaky", |s| &s.audit, true, flaky)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_metrics_and_writes_the_textfile_with_its_own_job_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("orgwarden.db");
    let textfile = dir.path().join("orgwarden.prom");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = format!(
        "[api]\nbase_url = \"http://127.0.0.1:9\"\n[store]\npath = {:?}\n\
         [schedule]\naudit = \"* * * * * *\"\nrun_on_start = true\n\
         [metrics]\nlisten = \"127.0.0.1:{port}\"\ntextfile = {:?}\n",
        db.to_str().unwrap(),
        textfile.to_str().unwrap()
    );
    let env = Environment {
        vars: vec![("ANTHROPIC_ADMIN_KEY".into(), "sk-ant-admin01-x".into())],
    };
    let (config, _) = Config::from_toml(&text, &env).unwrap();
    let clock = ManualClock::new("2026-03-01T12:00:00.900Z".parse().unwrap());
    let (controls, receiver) = tokio::sync::mpsc::channel(4);
    let daemon = orgwarden::daemon::run_jobs(None, config, receiver, Arc::new(clock), FLAKY_JOBS);
    let driver = async {
        let deadline = Instant::now() + DEADLINE;
        // Two runs finished (the second has written the textfile once it is there with a success).
        loop {
            assert!(Instant::now() < deadline, "the job did not run twice");
            let written = std::fs::read_to_string(&textfile).unwrap_or_default();
            if written.contains("orgwarden_last_success_timestamp_seconds{job=\"flaky\"}") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let base = format!("http://127.0.0.1:{port}");
        let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap();
        assert_eq!(metrics.status(), 200);
        let served = metrics.text().await.unwrap();
        let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
        assert_eq!(health.status(), 503, "no snapshot yet");
        controls.send(Control::Stop("test")).await.unwrap();
        (served, std::fs::read_to_string(&textfile).unwrap())
    };
    let (result, (served, written)) = tokio::join!(daemon, driver);
    result.expect("the daemon stops cleanly");
    for text in [&served, &written] {
        let scrape =
            prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        let flaky: Vec<_> = scrape
            .samples
            .iter()
            .filter(|s| s.labels.get("job") == Some("flaky"))
            .map(|s| (s.metric.as_str(), s.value.clone()))
            .collect();
        assert!(
            flaky.contains(&(
                "orgwarden_job_failures_total",
                prometheus_parse::Value::Counter(1.0)
            )),
            "{text}"
        );
        assert!(
            flaky
                .iter()
                .any(|(name, _)| *name == "orgwarden_job_duration_seconds"),
            "{text}"
        );
    }
    // The port is closed once the daemon has stopped.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[tokio::test]
async fn a_scheduled_directory_source_is_read_by_its_own_loop_between_audits() {
    let sim = sim(small()).await;
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("directory.csv");
    std::fs::write(
        &export,
        orgwarden::demo::directory_export_csv(&sim.snapshot_state().directory()),
    )
    .unwrap();
    // The audit never comes within the test; the source is read every second.
    let config = write_config(
        dir.path(),
        &sim.base_url(),
        &format!(
            "[schedule]\naudit = \"0 0 0 1 1 *\"\nrun_on_start = false\n\n\
             [[directories]]\nname = \"corp\"\ntype = \"csv\"\ndomains = [\"{}\"]\n\
             path = {:?}\nschedule = \"* * * * * *\"\n",
            orgwarden_sim::MAIN_DOMAIN,
            export.display().to_string()
        ),
    );
    let mut daemon = Daemon::start_in(dir, config, &[]);
    daemon.wait_ready().await;
    let reads = |db: &Path| match Store::open_reader(db) {
        Ok(store) => store.directory_reads(100).unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    daemon
        .wait_for("two reads of the scheduled source", |d| {
            reads(&d.db())
                .iter()
                .filter(|r| r.source == "corp" && r.status == "complete")
                .count()
                >= 2
        })
        .await;
    daemon
        .wait_for("STATUS= with the last read", |d| {
            d.notifications()
                .iter()
                .any(|m| m.contains("last directory corp ") && m.contains(" ok: corp (csv)"))
        })
        .await;
    let log = daemon.log();
    assert!(
        log.contains("directory corp scheduled at \"* * * * * *\" (UTC)"),
        "{log}"
    );
    assert!(log.contains("directory corp finished in "), "{log}");
    // Only the source's loop ran: no audit, so no snapshot.
    assert!(runs(&daemon.db()).is_empty());

    // `status` names the source's next read.
    let (code, out, err) = run(orgwarden(&daemon.config, &["status"])).await;
    assert!(out.contains("next directory corp: "), "{code} {out} {err}");

    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(DEADLINE).await, 0, "{}", daemon.log());
}
