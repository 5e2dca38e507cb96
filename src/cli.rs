//! The command-line interface: clap definitions and one `*_command` function per subcommand.
//!
//! Each command loads the configuration, sets up logging, does one thing and returns an exit
//! code: 0 on success, 1 on a runtime failure, 78 (EX_CONFIG) on a configuration error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::admin_api::{AdminClient, ClientOptions};
use crate::config::{self, Config, Environment};

/// EX_CONFIG from sysexits.h: the configuration is wrong.
pub const EXIT_CONFIG: u8 = 78;

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
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration; with --online also reach the Admin API.
    CheckConfig {
        /// Also call GET /v1/organizations/me and print the organization.
        #[arg(long)]
        online: bool,
    },
}

/// Parses the arguments and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
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
    runtime.block_on(run(cli))
}

async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::CheckConfig { online } => check_config_command(cli.config, online).await,
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

/// Builds the API client, or explains which setting is missing.
pub fn api_client(config: &Config) -> anyhow::Result<AdminClient> {
    let Some(admin_key) = config.api.admin_key.clone() else {
        anyhow::bail!(
            "api.admin_key: no admin key found; provide it as a systemd credential ({}), \
             api.admin_key_file, or the ANTHROPIC_ADMIN_KEY environment variable",
            config::ADMIN_KEY_CREDENTIAL
        );
    };
    let api = &config.api;
    let mut options = ClientOptions::new(api.base_url.clone());
    options.anthropic_version = api.anthropic_version.clone();
    options.connect_timeout = api.connect_timeout;
    options.request_timeout = api.request_timeout;
    options.total_deadline = api.total_deadline;
    options.max_retries = api.max_retries;
    options.requests_per_second = api.requests_per_second;
    options.page_size = api.page_size;
    Ok(AdminClient::new(options, admin_key)?)
}

async fn check_config_command(path: Option<PathBuf>, online: bool) -> ExitCode {
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
    if loaded.config.api.admin_key.is_none() {
        eprintln!(
            "orgwarden: invalid configuration ({source}): 1 problem\n  - api.admin_key: no admin key found; provide it as a systemd credential ({}), api.admin_key_file, or ANTHROPIC_ADMIN_KEY",
            config::ADMIN_KEY_CREDENTIAL
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    println!("configuration OK ({source})");
    if !online {
        return ExitCode::SUCCESS;
    }
    let client = match api_client(&loaded.config) {
        Ok(client) => client,
        Err(error) => {
            eprintln!("orgwarden: {error:#}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match client.organization().await {
        Ok(org) => {
            println!("organization: {} ({})", org.name, org.id);
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("orgwarden: cannot reach the Admin API: {error}");
            ExitCode::FAILURE
        }
    }
}
