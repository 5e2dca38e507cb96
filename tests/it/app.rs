//! `TestApp`: the jobs called in process, as the CLI and the daemon call them, against the real
//! simulator over TCP and a real SQLite file, with one `ManualClock` that the simulator follows.
//! Time moves only when a test says so: a week of hourly audits runs in seconds.

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Duration as Span, Utc};
use orgwarden::clock::ManualClock;
use orgwarden::config::{Config, Environment};
use orgwarden::jobs::{self, JobContext};
use orgwarden::store::Store;
use orgwarden_sim::{SimHandle, SimOptions, DEMO_ADMIN_KEY};

/// A simulator frozen at [`TestApp::START`], a store in a temp dir, and a clock both follow.
pub struct TestApp {
    pub sim: SimHandle,
    pub clock: ManualClock,
    pub config: Config,
    pub store: Store,
    pub dir: tempfile::TempDir,
}

impl TestApp {
    /// Monday 30 November 2026, 08:00 UTC.
    pub fn start() -> DateTime<Utc> {
        "2026-11-30T08:00:00Z".parse().unwrap()
    }

    /// A simulator with its default seed on port 0 and a configuration built in code: `[api]`
    /// and `[store]` pointing at them, then `extra` (whole sections) appended.
    pub async fn new(extra: &str) -> TestApp {
        TestApp::with_options(SimOptions::default(), extra).await
    }

    /// As [`TestApp::new`] with simulator options (seed sizes, faults); its clock is set to
    /// [`TestApp::start`].
    pub async fn with_options(options: SimOptions, extra: &str) -> TestApp {
        let sim = crate::helpers::sim_with(SimOptions {
            now: Some(TestApp::start()),
            ..options
        })
        .await;
        let dir = tempfile::tempdir().unwrap();
        let config = config(&sim, dir.path(), extra);
        let clock = ManualClock::new(TestApp::start());
        let store = Store::open_writer(&config.store.path, "test", TestApp::start()).unwrap();
        TestApp {
            sim,
            clock,
            config,
            store,
            dir,
        }
    }

    /// Replaces the configuration: the same `[api]` and `[store]`, then `extra`.
    pub fn reconfigure(&mut self, extra: &str) {
        self.config = config(&self.sim, self.dir.path(), extra);
    }

    /// The context every job takes, on this app's clock.
    pub fn ctx(&mut self) -> JobContext<'_> {
        JobContext::new(&self.config, &mut self.store, Arc::new(self.clock.clone()))
    }

    pub fn now(&self) -> DateTime<Utc> {
        orgwarden::clock::Clock::now(&self.clock)
    }

    /// Moves the clock and the simulator's clock forward together.
    pub fn advance(&self, by: Span) {
        self.clock.advance(by.to_std().unwrap());
        self.sim.advance(by);
    }

    /// `orgwarden snapshot`: the new run's id.
    pub async fn snapshot(&mut self) -> i64 {
        jobs::snapshot_job(&mut self.ctx(), false)
            .await
            .expect("snapshot")
            .0
            .run_id
    }

    /// The daemon's audit cycle: snapshot, audit, remediation.
    pub async fn cycle(&mut self) -> jobs::CycleSummary {
        jobs::audit_cycle(&mut self.ctx())
            .await
            .expect("audit cycle")
    }

    /// `orgwarden cleanup [--apply]`.
    pub async fn cleanup(&mut self, apply: bool) -> jobs::CleanupSummary {
        jobs::cleanup_job(&mut self.ctx(), apply)
            .await
            .expect("cleanup")
    }

    /// `orgwarden status` as it would be computed now.
    pub fn status(&self) -> orgwarden::status::Status {
        orgwarden::status::status(&self.config, &self.store, self.now()).expect("status")
    }
}

fn config(sim: &SimHandle, dir: &Path, extra: &str) -> Config {
    let text = format!(
        "[api]\nbase_url = \"{}\"\nrequests_per_second = 0\nmax_retries = 2\n\
         total_deadline = \"20s\"\n\n[store]\npath = \"{}\"\n\n{extra}\n",
        sim.base_url(),
        dir.join("orgwarden.db").display()
    );
    let env = Environment {
        vars: vec![("ANTHROPIC_ADMIN_KEY".into(), DEMO_ADMIN_KEY.into())],
    };
    match Config::from_toml(&text, &env) {
        Ok((config, _)) => config,
        Err(errors) => panic!("invalid test configuration: {errors}\n{text}"),
    }
}
