//! The `sim` command: serve a simulated organization on loopback for demos and manual testing.
//!
//! It refuses to listen anywhere but loopback, because the simulator accepts a well-known demo key
//! and would hand a fake organization to anyone who can reach it. It prints the base URL and the
//! admin key it accepts on stdout (the key is a demo value, printing it is intended).

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::{Faults, SeedSizes, SimHandle, SimOptions, SimState, DEMO_ADMIN_KEY};

/// Options of the `sim` command.
#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// Address to listen on; must be a loopback address.
    #[arg(long, default_value = "127.0.0.1:8787")]
    pub listen: SocketAddr,
    /// Seed of the generated organization (same seed, same organization).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Number of members.
    #[arg(long, default_value_t = SeedSizes::default().members)]
    pub members: usize,
    /// Number of invites.
    #[arg(long, default_value_t = SeedSizes::default().invites)]
    pub invites: usize,
    /// Number of workspaces besides the Default Workspace.
    #[arg(long, default_value_t = SeedSizes::default().workspaces)]
    pub workspaces: usize,
    /// Number of API keys.
    #[arg(long, default_value_t = SeedSizes::default().keys)]
    pub keys: usize,
    /// Number of explicit workspace memberships.
    #[arg(long, default_value_t = SeedSizes::default().workspace_members)]
    pub workspace_members: usize,
    /// The x-api-key the simulator accepts.
    #[arg(long, default_value = DEMO_ADMIN_KEY)]
    pub admin_key: String,
    /// Freeze the clock at this RFC 3339 time (e.g. 2026-01-01T00:00:00Z) instead of real time.
    #[arg(long, value_parser = parse_time)]
    pub now: Option<DateTime<Utc>>,
    /// Load the whole organization from this JSON file instead of generating one.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Write the generated or loaded organization to this JSON file and exit.
    #[arg(long, value_name = "FILE")]
    pub dump_state: Option<PathBuf>,
    /// Requests per second before answering 429 (unlimited when absent).
    #[arg(long)]
    pub rps: Option<u32>,
    /// Latency added to every request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share (0 to 1) of requests answered 500 or 529.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub error_rate: f64,
    /// Share (0 to 1) of requests whose connection is dropped.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub drop_rate: f64,
    /// Share (0 to 1) of successful answers with a broken JSON body.
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    pub malformed_rate: f64,
    /// Write the Google Directory API simulator's service-account key file (JSON) here.
    #[arg(long, value_name = "FILE")]
    pub google_key_out: Option<PathBuf>,
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("expected an RFC 3339 time such as 2026-01-01T00:00:00Z: {e}"))
}

fn parse_rate(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
        Ok(_) => Err("must be between 0 and 1".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

impl SimArgs {
    /// The simulator options these arguments describe (the state file is read here).
    pub fn options(&self) -> anyhow::Result<SimOptions> {
        let state = match &self.state {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading state file {}", path.display()))?;
                Some(
                    SimState::from_json(&text)
                        .with_context(|| format!("loading state file {}", path.display()))?,
                )
            }
            None => None,
        };
        Ok(SimOptions {
            seed: self.seed,
            sizes: SeedSizes {
                members: self.members,
                invites: self.invites,
                workspaces: self.workspaces,
                keys: self.keys,
                workspace_members: self.workspace_members,
            },
            admin_key: self.admin_key.clone(),
            now: self.now,
            rps: self.rps,
            faults: Faults {
                latency: Duration::from_millis(self.latency_ms),
                error_rate: self.error_rate,
                drop_rate: self.drop_rate,
                malformed_rate: self.malformed_rate,
                ..Faults::default()
            },
            state,
        })
    }
}

/// Runs the `sim` command until `shutdown` resolves (or, with `--dump-state`, writes and exits).
pub async fn sim_command(args: SimArgs, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    if !args.listen.ip().is_loopback() {
        anyhow::bail!(
            "refusing to listen on {}: the simulator accepts a public demo key, so it only listens on loopback (127.0.0.1 or ::1)",
            args.listen
        );
    }
    let opts = args.options()?;
    if let Some(path) = &args.dump_state {
        let state = match opts.state {
            Some(state) => state,
            None => {
                // The simulator runs on the wall clock unless it is set.
                #[allow(clippy::disallowed_methods)]
                let at = opts.now.unwrap_or_else(Utc::now);
                let (seed, sizes) = (opts.seed, opts.sizes);
                tokio::task::spawn_blocking(move || SimState::seeded(seed, sizes, at)).await?
            }
        };
        std::fs::write(path, state.to_json())
            .with_context(|| format!("writing state file {}", path.display()))?;
        println!("wrote the simulated organization to {}", path.display());
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let handle = SimHandle::start(listener, opts).await?;
    println!("Admin API simulator listening on {}", handle.base_url());
    println!("admin key (x-api-key): {}", handle.admin_key());
    println!(
        "Google Directory API simulator listening on {} (subject {})",
        handle.google_url(),
        super::google_admin()
    );
    if let Some(path) = &args.google_key_out {
        handle
            .write_google_service_account_key(path)
            .with_context(|| format!("writing the Google key file {}", path.display()))?;
        println!("wrote the Google service-account key to {}", path.display());
    }
    shutdown.await;
    handle.shutdown();
    handle.stopped().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    #[test]
    fn parses_defaults_and_options() {
        let cli = Cli::try_parse_from(["x"]).expect("defaults parse");
        assert_eq!(cli.sim.listen.to_string(), "127.0.0.1:8787");
        assert_eq!(cli.sim.admin_key, DEMO_ADMIN_KEY);
        let cli = Cli::try_parse_from([
            "x",
            "--now",
            "2026-01-01T00:00:00Z",
            "--error-rate",
            "0.5",
            "--members",
            "7",
        ])
        .expect("options parse");
        let opts = cli.sim.options().expect("valid options");
        assert_eq!(opts.sizes.members, 7);
        assert_eq!(opts.faults.error_rate, 0.5);
        assert!(opts.now.is_some());
        assert!(Cli::try_parse_from(["x", "--error-rate", "1.5"]).is_err());
        assert!(Cli::try_parse_from(["x", "--now", "yesterday"]).is_err());
    }

    #[tokio::test]
    async fn refuses_non_loopback_addresses() {
        let cli = Cli::try_parse_from(["x", "--listen", "0.0.0.0:0"]).expect("parses");
        let err = sim_command(cli.sim, async {})
            .await
            .expect_err("0.0.0.0 is not loopback");
        assert!(err.to_string().contains("loopback"));
    }

    #[tokio::test]
    async fn dump_state_writes_a_loadable_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("org.json");
        let cli = Cli::try_parse_from([
            "x",
            "--now",
            "2026-01-01T00:00:00Z",
            "--dump-state",
            path.to_str().expect("utf-8 temp path"),
        ])
        .expect("parses");
        sim_command(cli.sim, async {}).await.expect("dumps");
        let text = std::fs::read_to_string(&path).expect("written");
        let state = SimState::from_json(&text).expect("loads");
        assert_eq!(state.counts(), SeedSizes::default());
    }

    #[tokio::test]
    async fn serves_until_shutdown() {
        let cli = Cli::try_parse_from(["x", "--listen", "127.0.0.1:0"]).expect("parses");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(sim_command(cli.sim, async {
            let _ = rx.await;
        }));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!task.is_finished());
        let _ = tx.send(());
        let result = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("stops after shutdown")
            .expect("task did not panic");
        assert!(result.is_ok());
    }
}
