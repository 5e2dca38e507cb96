//! `orgwarden-sim`: serves the Admin API simulator on loopback until Ctrl-C or SIGTERM.
//!
//! The same command as `orgwarden sim`, for anyone testing an Admin API client. It prints
//! `Admin API simulator listening on http://ADDR` and the admin key it accepts on stdout once it
//! accepts connections (with `--listen 127.0.0.1:0` the system picks the port).

use std::process::ExitCode;

use clap::Parser;
use orgwarden_sim::cli::{sim_command, SimArgs};

/// A simulator of the Anthropic Admin API (organization, members, invites, workspaces, API keys).
///
/// It serves a deterministic seeded organization (or one loaded from JSON) on loopback, with the
/// contract's authentication, errors, pagination and business rules, and can inject latency,
/// errors, dropped connections, malformed bodies and rate limiting. Log level: RUST_LOG (default
/// info), on stderr.
#[derive(Debug, Parser)]
#[command(name = "orgwarden-sim", version)]
struct Cli {
    #[command(flatten)]
    sim: SimArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("orgwarden-sim: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(sim_command(cli.sim, shutdown_signal())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("orgwarden-sim: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
