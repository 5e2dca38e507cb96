//! An Admin API simulator: a real HTTP server on loopback that follows orgwarden's Admin API
//! contract (`shared/admin-api/README.md`, §1–§6 and §8), so tests, orgwarden's `demo` command and
//! any other Admin API client run against it instead of the real API.
//!
//! It is its own crate and depends on nothing of orgwarden: a client is reached only over HTTP,
//! so a client bug cannot hide behind a shared struct. The `orgwarden-sim` binary (and
//! `orgwarden sim`) serve it from the command line.
//!
//! - [`SimState`] is the organization: seeded deterministically from a seed and sizes (`seed`),
//!   or loaded from JSON. It serves exactly the classic core and the 2026 fields of §3 and §8.
//! - [`SimHandle::start`] serves it with axum: every endpoint of §4.1–4.6, the rules of §6, the
//!   error model of §5, a `request-id` on every answer, cursor pagination that is stable under
//!   inserts and deletes and costs `O(log n)` per page.
//! - [`Faults`] and the rate limit make it misbehave on purpose, deterministically, and can be
//!   changed while it runs; the clock can be frozen, set and advanced for expiry tests.
//! - [`cli`] is the command line of `orgwarden-sim` and `orgwarden sim`.
//! - [`idp`] has the identity-provider simulators ([`OktaSim`], [`GraphSim`]), each on its own
//!   port beside a running simulator, serving [`SimState::directory`] of its live state.
//!
//! Choices where the contract is silent:
//! - Workspace member lists hold only **explicit** memberships. Org admins and billing members,
//!   who reach every workspace implicitly, appear only where they were added explicitly (for a
//!   billing member, only as `workspace_admin`, the one documented exception).
//! - A set clock is frozen: objects created meanwhile all get that time, and time moves only when
//!   a test sets or advances it.
//! - The fault counter behind `after_requests` counts only requests whose path matches
//!   `path_contains`, from the moment the faults were set. See `faults` for the rest, and `ops` for
//!   the business-rule decisions.

pub mod cli;
mod directory;
mod error;
mod faults;
pub mod idp;
mod model;
mod ops;
mod prng;
mod query;
mod routes;
mod seed;
mod server;
mod state;
mod usage;
mod views;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

pub use directory::{DirectoryEntry, DirectoryState};
pub use faults::Faults;
pub use idp::google::{google_admin, google_test_alias, GOOGLE_CLIENT_EMAIL, GOOGLE_SCOPE};
pub use idp::graph::{GraphOptions, GraphSim};
pub use idp::okta::{OktaOptions, OktaSim};
pub use idp::IdpServer;
pub use seed::{MAIN_DOMAIN, ORGANIZATION_NAME, SECOND_DOMAIN};
pub use state::SimState;
pub use usage::{MemberUsage, UsageTruth};

use faults::{FaultState, RateLimiter};
use server::{lock, Shared};

/// The admin key the simulator accepts unless told otherwise. It is a demo value, not a secret.
pub const DEMO_ADMIN_KEY: &str = "sk-ant-admin01-orgwarden-simulator-demo-key";

/// How big a seeded organization is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SeedSizes {
    /// Current members.
    pub members: usize,
    /// Invites of every status (deleted ones aside).
    pub invites: usize,
    /// Workspaces besides the Default Workspace, archived ones included.
    pub workspaces: usize,
    /// API keys.
    pub keys: usize,
    /// Explicit workspace memberships, spread over the workspaces. Capped at what the eligible
    /// members and workspaces can hold.
    pub workspace_members: usize,
}

impl Default for SeedSizes {
    fn default() -> Self {
        SeedSizes {
            members: 40,
            invites: 12,
            workspaces: 5,
            keys: 60,
            workspace_members: 60,
        }
    }
}

/// How to start a simulator.
#[derive(Clone)]
pub struct SimOptions {
    /// Seeds the organization, the ids of objects created later, request ids and fault choices.
    pub seed: u64,
    /// Sizes of the seeded organization (ignored when `state` is given).
    pub sizes: SeedSizes,
    /// The `x-api-key` the server accepts.
    pub admin_key: String,
    /// `Some` freezes the clock at that time; `None` runs on real time.
    pub now: Option<DateTime<Utc>>,
    /// Requests per second before 429s; `None` is unlimited.
    pub rps: Option<u32>,
    /// Faults injected from the first request on.
    pub faults: Faults,
    /// Serve this organization instead of seeding one.
    pub state: Option<SimState>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            seed: 42,
            sizes: SeedSizes::default(),
            admin_key: DEMO_ADMIN_KEY.to_string(),
            now: None,
            rps: None,
            faults: Faults::default(),
            state: None,
        }
    }
}

/// A running simulator. Cloning gives another handle to the same server.
#[derive(Clone)]
pub struct SimHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: CancellationToken,
    stopped: CancellationToken,
    google: Arc<idp::google::Google>,
    google_stopped: CancellationToken,
}

impl SimHandle {
    /// Seeds (or loads) the organization and serves it on `listener` from a spawned task.
    pub async fn start(
        listener: tokio::net::TcpListener,
        opts: SimOptions,
    ) -> anyhow::Result<SimHandle> {
        let addr = listener.local_addr()?;
        let mut state = match opts.state {
            Some(state) => state,
            None => {
                let (seed, sizes) = (opts.seed, opts.sizes);
                // The simulator runs on the wall clock unless it is set.
                #[allow(clippy::disallowed_methods)]
                let at = opts.now.unwrap_or_else(Utc::now);
                // A large organization takes a moment to build; keep it off the async workers.
                tokio::task::spawn_blocking(move || SimState::seeded(seed, sizes, at)).await?
            }
        };
        state.set_clock(opts.now);
        let shared = Arc::new(Shared {
            organization_id: state.organization.id.clone(),
            state: Mutex::new(state),
            faults: Mutex::new(FaultState::new(opts.faults)),
            limiter: Mutex::new(RateLimiter::new(opts.rps)),
            served: AtomicU64::new(0),
            seed: opts.seed,
            admin_key: opts.admin_key,
            generation: AtomicU64::new(0),
        });
        let app = routes::router(shared.clone());
        let stop = CancellationToken::new();
        let stopped = serve(listener, app, &stop, "admin API simulator");
        // The Google Directory API on a port of its own, on the same address.
        let google_listener = tokio::net::TcpListener::bind((addr.ip(), 0)).await?;
        let google_url = format!("http://{}", google_listener.local_addr()?);
        let google = {
            let shared = shared.clone();
            let rps = opts.rps;
            // Generating the service account's RSA key takes a moment.
            tokio::task::spawn_blocking(move || idp::google::Google::new(shared, google_url, rps))
                .await??
        };
        let google = Arc::new(google);
        let google_stopped = serve(
            google_listener,
            idp::google::router(google.clone()),
            &stop,
            "Google Directory API simulator",
        );
        Ok(SimHandle {
            shared,
            addr,
            stop,
            stopped,
            google,
            google_stopped,
        })
    }

    /// Like [`Self::start`] on `127.0.0.1` with a port chosen by the system.
    pub async fn start_local(opts: SimOptions) -> anyhow::Result<SimHandle> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        Self::start(listener, opts).await
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, to use as the Admin API base URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The admin key the server accepts.
    pub fn admin_key(&self) -> &str {
        &self.shared.admin_key
    }

    /// Replaces the injected faults; the `after_requests` counter starts again from zero.
    pub fn set_faults(&self, f: Faults) {
        *lock(&self.shared.faults) = FaultState::new(f);
    }

    /// Changes the rate limit (`None`: unlimited); the bucket starts full.
    pub fn set_rps(&self, rps: Option<u32>) {
        *lock(&self.shared.limiter) = RateLimiter::new(rps);
    }

    /// Freezes the clock at `t`.
    pub fn set_now(&self, t: DateTime<Utc>) {
        lock(&self.shared.state).set_clock(Some(t));
    }

    /// Moves the clock forward by `d` from the time it reads now, and freezes it there.
    pub fn advance(&self, d: chrono::Duration) {
        let mut state = lock(&self.shared.state);
        let t = state.now() + d;
        state.set_clock(Some(t));
    }

    /// Returns the clock to real time.
    pub fn use_real_clock(&self) {
        lock(&self.shared.state).set_clock(None);
    }

    /// The time the API reads.
    pub fn now(&self) -> DateTime<Utc> {
        lock(&self.shared.state).now()
    }

    /// Requests received so far, whatever their answer (rate-limited and faulty ones included).
    pub fn requests_served(&self) -> u64 {
        self.shared.served.load(Ordering::Relaxed)
    }

    /// A copy of the whole state, clock included.
    pub fn snapshot_state(&self) -> SimState {
        lock(&self.shared.state).clone()
    }

    /// Runs `f` on the live state, under its lock; for tests and the demo.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut SimState) -> R) -> R {
        let mut state = lock(&self.shared.state);
        let result = f(&mut state);
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
        result
    }

    /// Asks the server task to stop: it stops accepting and finishes the answers in flight.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// Waits until the server tasks have stopped.
    pub async fn stopped(&self) {
        self.stopped.cancelled().await;
        self.google_stopped.cancelled().await;
    }

    /// `http://127.0.0.1:PORT` of the Google Directory API simulator (`idp::google`), to use as
    /// the `api_url` of a `type = "google"` directory.
    pub fn google_url(&self) -> String {
        self.google.base_url().to_owned()
    }

    /// The simulated service account's JSON key file (with its private key, a demo value), its
    /// `token_uri` pointing at [`Self::google_url`]`/token`.
    pub fn google_service_account_key(&self) -> String {
        self.google.key_file()
    }

    /// Writes [`Self::google_service_account_key`] to `path`, readable by its owner only.
    pub fn write_google_service_account_key(&self, path: &std::path::Path) -> std::io::Result<()> {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options
            .open(path)?
            .write_all(self.google_service_account_key().as_bytes())
    }

    /// Replaces the Google simulator's injected faults (its own, apart from the Admin API's).
    pub fn google_set_faults(&self, f: Faults) {
        self.google.set_faults(f);
    }

    /// Changes the Google simulator's rate limit (`None`: unlimited).
    pub fn google_set_rps(&self, rps: Option<u32>) {
        self.google.set_rps(rps);
    }

    /// Sets the Google simulator's rate limit to a quota of `limit` requests a minute, as the
    /// Admin SDK states its quotas (the default is 2 400 a minute per user): the whole quota at
    /// once, refilled at its average rate. The bucket starts full.
    pub fn google_set_quota_per_minute(&self, limit: u32) {
        self.google.set_quota_per_minute(limit);
    }

    /// Requests the Google simulator received so far, whatever their answer.
    pub fn google_requests_served(&self) -> u64 {
        self.google.requests_served()
    }
}

/// Serves `app` on `listener` from a spawned task until `stop`; the returned token is cancelled
/// once the server has stopped.
pub(crate) fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    stop: &CancellationToken,
    what: &'static str,
) -> CancellationToken {
    let stopped = CancellationToken::new();
    let (stop_signal, done) = (stop.clone(), stopped.clone());
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(stop_signal.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::warn!(error = %e, "{what} stopped with an error");
        }
        done.cancel();
    });
    stopped
}
