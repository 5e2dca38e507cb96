//! Identity-provider simulators: Okta ([`OktaSim`]) and Microsoft Graph ([`GraphSim`]), each an
//! axum server on its own loopback port beside a running Admin API simulator, serving
//! [`SimState::directory`](crate::SimState::directory) of that simulator's live state (so a test
//! that changes the organization sees the directory follow).
//!
//! What they share lives here: the server task and its handle ([`IdpServer`]), the fault
//! pipeline (the Admin API simulator's [`Faults`], with their own counter; errors are written in
//! each provider's own envelope), the bearer tokens a token endpoint hands out, and the demo RSA
//! key pair a private-key-JWT client signs with.

pub mod google;
pub mod graph;
pub mod okta;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use axum::response::Response;
use axum::Router;
use base64::Engine as _;
use tokio_util::sync::CancellationToken;

use super::faults::{Action, FaultState, Faults, Malformed};
use super::prng::mix;
use super::server::{dropped, lock, malform, Shared};
use super::SimHandle;

/// A demo RSA private key (PKCS#8 PEM) for the private-key-JWT client credentials flow. It is a
/// published test value, not a secret: never trust it anywhere real.
pub const DEMO_PRIVATE_KEY_PEM: &str = include_str!("demo_okta_key.pem");

/// The PKCS#1 DER `RSAPublicKey` of [`DEMO_PRIVATE_KEY_PEM`], the form the simulators verify with.
pub fn demo_public_key() -> Vec<u8> {
    public_key_of(DEMO_PRIVATE_KEY_PEM).unwrap_or_default()
}

/// The PKCS#1 DER public key of a PKCS#8 PEM RSA private key; `None` when it is not one.
pub fn public_key_of(pkcs8_pem: &str) -> Option<Vec<u8>> {
    let der = pem_body(pkcs8_pem)?;
    let key = ring::signature::RsaKeyPair::from_pkcs8(&der).ok()?;
    Some(ring::signature::KeyPair::public_key(&key).as_ref().to_vec())
}

/// The DER bytes inside a PEM block.
fn pem_body(pem: &str) -> Option<Vec<u8>> {
    let b64: String = pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>()
        .split_whitespace()
        .collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// Verifies an RS256 JWT against a PKCS#1 DER public key and returns its claims.
pub(crate) fn verify_rs256(jwt: &str, public_key: &[u8]) -> Result<serde_json::Value, String> {
    let mut parts = jwt.split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("The client_assertion is not a JWT.".into());
    };
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let decode = |part: &str| b64.decode(part).map_err(|_| "The JWT is not base64url.");
    let header: serde_json::Value = serde_json::from_slice(&decode(header)?)
        .map_err(|_| "The JWT header is not JSON.".to_string())?;
    if header["alg"] != "RS256" {
        return Err("The JWT signature algorithm is not RS256.".into());
    }
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        public_key,
    );
    let signed = &jwt[..jwt.len() - signature.len() - 1];
    key.verify(signed.as_bytes(), &decode(signature)?)
        .map_err(|_| "The client_assertion signature is invalid.".to_string())?;
    serde_json::from_slice(&decode(claims)?).map_err(|_| "The JWT claims are not JSON.".into())
}

/// What a provider's pipeline does with one request before its route runs.
pub(crate) enum Before {
    /// Run the route; break its 200 body afterwards if `Some`.
    Pass(Option<Malformed>),
    /// Answer with a broken connection.
    Drop,
    /// Answer 500.
    Internal,
    /// Answer 503.
    Unavailable,
    /// Every credential is refused (the fault `revoke_key_after`).
    Revoked,
}

/// The state every identity-provider simulator has.
pub(crate) struct IdpCore {
    pub sim: Arc<Shared>,
    pub faults: Mutex<FaultState>,
    pub served: AtomicU64,
    pub seed: u64,
    /// Issued bearer tokens and when they expire (real monotonic time).
    tokens: Mutex<HashMap<String, Instant>>,
    /// Tokens issued so far, so that no token is ever issued twice.
    issued: AtomicU64,
    /// The directory last derived, with the state generation and clock it was derived at: every
    /// page of a 100k-person directory would otherwise derive (and sort) it all again.
    directory_cache: Mutex<Option<DirectoryCache>>,
}

/// (state generation, simulated time, the directory then).
type DirectoryCache = (
    u64,
    chrono::DateTime<chrono::Utc>,
    Arc<Vec<super::DirectoryEntry>>,
);

impl IdpCore {
    fn new(sim: &SimHandle, faults: Faults, salt: u64) -> IdpCore {
        IdpCore {
            sim: sim.shared.clone(),
            faults: Mutex::new(FaultState::new(faults)),
            served: AtomicU64::new(0),
            seed: mix(sim.shared.seed ^ salt),
            tokens: Mutex::new(HashMap::new()),
            issued: AtomicU64::new(0),
            directory_cache: Mutex::new(None),
        }
    }

    /// Counts the request and decides its fate from the faults, sleeping any injected latency.
    pub(crate) async fn before(&self, path: &str) -> Before {
        self.served.fetch_add(1, Ordering::Relaxed);
        let plan = lock(&self.faults).next_plan(self.seed, path);
        if !plan.latency.is_zero() {
            tokio::time::sleep(plan.latency).await;
        }
        if plan.key_revoked {
            return Before::Revoked;
        }
        match plan.action {
            Action::Drop => Before::Drop,
            Action::InternalError => Before::Internal,
            Action::Overloaded => Before::Unavailable,
            Action::Malform(kind) => Before::Pass(Some(kind)),
            Action::Pass => Before::Pass(None),
        }
    }

    /// The seeded directory of the live organization.
    /// Derived again only when the state or its clock changed since the last call (a live
    /// clock changes at every call, so only a frozen one is ever cached).
    pub(crate) fn directory(&self) -> Arc<Vec<super::DirectoryEntry>> {
        self.sim.read(|state| {
            let key = (self.sim.generation.load(Ordering::Acquire), state.now());
            let mut cache = lock(&self.directory_cache);
            if let Some((generation, now, directory)) = &*cache {
                if (*generation, *now) == key {
                    return Arc::clone(directory);
                }
            }
            let directory = Arc::new(state.directory());
            *cache = Some((key.0, key.1, Arc::clone(&directory)));
            directory
        })
    }

    /// Issues a bearer token valid for `lifetime`.
    pub(crate) fn issue_token(&self, prefix: &str, lifetime: Duration) -> String {
        let n = self.issued.fetch_add(1, Ordering::Relaxed) + 1;
        let mut tokens = lock(&self.tokens);
        let token = format!(
            "{prefix}{:016x}{:016x}",
            mix(self.seed ^ n),
            mix(n ^ 0x70CE)
        );
        tokens.insert(token.clone(), Instant::now() + lifetime);
        token
    }

    /// Whether `Authorization: Bearer <token>` names an issued token that has not expired.
    pub(crate) fn bearer_ok(&self, headers: &HeaderMap) -> bool {
        let Some(token) = authorization(headers, "Bearer ") else {
            return false;
        };
        lock(&self.tokens)
            .get(token)
            .is_some_and(|expiry| Instant::now() < *expiry)
    }

    /// Expires every issued token at once, as if their lifetime had passed.
    pub(crate) fn expire_tokens(&self) {
        lock(&self.tokens).clear();
    }
}

/// The credential after `scheme` in the `Authorization` header (`"SSWS "`, `"Bearer "`).
pub(crate) fn authorization<'a>(headers: &'a HeaderMap, scheme: &str) -> Option<&'a str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    value
        .get(..scheme.len())
        .filter(|s| s.eq_ignore_ascii_case(scheme))
        .map(|_| value[scheme.len()..].trim())
}

/// Compares two secrets in constant time.
pub(crate) fn same_secret(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Breaks a 200 answer as the faults asked, or passes it through.
pub(crate) async fn after(response: Response, malformed: Option<Malformed>) -> Response {
    match malformed {
        Some(kind) if response.status().is_success() => malform(response, kind).await,
        _ => response,
    }
}

/// The answer of a dropped connection.
pub(crate) fn broken_connection() -> Response {
    dropped()
}

/// The parameters of a form body or query string, decoded.
pub(crate) fn form(text: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect()
}

/// A running identity-provider simulator: its address and its stop switches.
pub struct IdpServer {
    pub(crate) core: Arc<IdpCore>,
    addr: SocketAddr,
    stop: CancellationToken,
    stopped: CancellationToken,
}

impl IdpServer {
    async fn spawn(
        listener: tokio::net::TcpListener,
        core: Arc<IdpCore>,
        app: Router,
        what: &'static str,
    ) -> anyhow::Result<IdpServer> {
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let stopped = crate::serve(listener, app, &stop, what);
        Ok(IdpServer {
            core,
            addr,
            stop,
            stopped,
        })
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the injected faults; their counter starts again from zero.
    pub fn set_faults(&self, f: Faults) {
        *lock(&self.core.faults) = FaultState::new(f);
    }

    /// Requests received so far, whatever their answer.
    pub fn requests_served(&self) -> u64 {
        self.core.served.load(Ordering::Relaxed)
    }

    /// Makes every bearer token issued so far invalid, as if it had expired.
    pub fn expire_tokens(&self) {
        self.core.expire_tokens();
    }

    /// Asks the server to stop.
    pub fn shutdown(&self) {
        self.stop.cancel();
    }

    /// Waits until the server has stopped.
    pub async fn stopped(&self) {
        self.stopped.cancelled().await;
    }
}

/// Binds `127.0.0.1:0`.
async fn local_listener() -> anyhow::Result<tokio::net::TcpListener> {
    Ok(tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?)
}

#[cfg(test)]
mod tests;
