//! Shared test helpers: a simulator on port 0, a fast-retrying client, temp dirs and configs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use orgwarden::admin_api::{AdminClient, ClientOptions};
use orgwarden_sim::{Faults, SeedSizes, SimHandle, SimOptions, DEMO_ADMIN_KEY};
use secrecy::SecretString;

/// Starts a simulator with the given sizes on 127.0.0.1:0.
pub async fn sim(sizes: SeedSizes) -> SimHandle {
    sim_with(SimOptions {
        sizes,
        ..SimOptions::default()
    })
    .await
}

pub async fn sim_with(options: SimOptions) -> SimHandle {
    SimHandle::start_local(options)
        .await
        .expect("simulator starts")
}

/// A seed large enough for every kind of person the seeded directory has (a shadow account is
/// 2 in 100 people, a deleted one 1 in 100), and keys and invites of them.
pub fn directory_seed() -> SimOptions {
    SimOptions {
        sizes: SeedSizes {
            members: 300,
            invites: 60,
            ..SeedSizes::default()
        },
        ..SimOptions::default()
    }
}

pub fn small() -> SeedSizes {
    SeedSizes::default()
}

/// A client for `sim` with quick backoff, so retry tests take milliseconds.
pub fn client(sim: &SimHandle, page_size: u32) -> AdminClient {
    client_with_key(sim, page_size, DEMO_ADMIN_KEY)
}

pub fn client_with_key(sim: &SimHandle, page_size: u32, key: &str) -> AdminClient {
    let mut options = ClientOptions::new(sim.base_url().parse().expect("base url"));
    options.page_size = page_size;
    options.backoff_base = Duration::from_millis(5);
    options.backoff_cap = Duration::from_millis(40);
    options.max_retries = 3;
    options.total_deadline = Duration::from_secs(30);
    AdminClient::new(options, SecretString::from(key.to_owned())).expect("client")
}

pub fn no_faults() -> Faults {
    Faults::default()
}

/// Path of the orgwarden binary built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_orgwarden"))
}

/// Writes a config file pointing at `sim` with its database in `dir`; `extra` is appended.
pub fn write_config(dir: &Path, base_url: &str, extra: &str) -> PathBuf {
    write_config_api(dir, base_url, "", extra)
}

/// Like `write_config`, with more lines for the `[api]` table.
pub fn write_config_api(dir: &Path, base_url: &str, api_lines: &str, extra: &str) -> PathBuf {
    let path = dir.join("config.toml");
    let text = format!(
        "[api]\nbase_url = \"{base_url}\"\nrequests_per_second = 0\nmax_retries = 2\ntotal_deadline = \"20s\"\n{api_lines}\n\n[store]\npath = \"orgwarden.db\"\n\n{extra}\n"
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// `orgwarden --config CONFIG ARGS...` with the demo key in the environment.
pub fn orgwarden(config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(bin());
    command
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("ORGWARDEN_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("RUST_LOG")
        .env("ANTHROPIC_ADMIN_KEY", DEMO_ADMIN_KEY);
    command
}

/// Runs a command to completion off the async runtime, returning (status code, stdout, stderr).
pub async fn run(mut command: Command) -> (i32, String, String) {
    let output = tokio::task::spawn_blocking(move || command.output().expect("spawn orgwarden"))
        .await
        .expect("join");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The wall clock, for tests that run the real binary beside the in-process store.
pub fn wall_now() -> chrono::DateTime<chrono::Utc> {
    orgwarden::clock::Clock::now(&orgwarden::clock::SystemClock)
}

/// A loopback HTTP server: the `n`th connection (from 0) has its request head read (the clients
/// send no body) and is answered with the bytes `answer(n)` gives, then closed. Returns its URL
/// and how many requests it answered.
pub async fn loopback_server(
    answer: impl Fn(usize) -> Vec<u8> + Send + Sync + 'static,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = std::sync::Arc::new(AtomicUsize::new(0));
    let count = std::sync::Arc::clone(&served);
    let answer = std::sync::Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let n = count.fetch_add(1, Ordering::SeqCst);
            let answer = std::sync::Arc::clone(&answer);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = socket.write_all(&answer(n)).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (url, served)
}
