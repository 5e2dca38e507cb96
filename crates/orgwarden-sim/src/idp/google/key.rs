//! The simulated Google service account: an RSA key pair generated deterministically from the
//! simulator's seed, its JSON key file (the format the Cloud console downloads), and the RS256
//! check of the JWTs signed with it.
//!
//! Generating a 2048-bit key takes a moment, so a key is made once per seed and process and
//! shared by every simulator started with that seed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rand::SeedableRng;
use rsa::pkcs1::EncodeRsaPublicKey;
use rsa::pkcs8::{EncodePrivateKey, LineEnding};

use crate::server::lock;

/// The service account's address, the JWT's `iss`.
pub const GOOGLE_CLIENT_EMAIL: &str = "orgwarden-directory@orgwarden-sim.iam.gserviceaccount.com";

/// One service account's key pair.
pub(crate) struct ServiceAccount {
    /// PKCS#8 PEM, as in a downloaded key file.
    pub private_pem: String,
    /// PKCS#1 `RSAPublicKey` DER, what `ring` verifies with.
    pub public_der: Vec<u8>,
    /// The key file's `private_key_id`.
    pub key_id: String,
}

impl ServiceAccount {
    /// The account of `seed`, generated on first use.
    pub(crate) fn for_seed(seed: u64) -> anyhow::Result<Arc<ServiceAccount>> {
        static KEYS: OnceLock<Mutex<HashMap<u64, Arc<ServiceAccount>>>> = OnceLock::new();
        let keys = KEYS.get_or_init(Default::default);
        if let Some(account) = lock(keys).get(&seed) {
            return Ok(account.clone());
        }
        // Two simulators starting at once may both generate; they produce the same key.
        let account = Arc::new(ServiceAccount::generate(seed)?);
        Ok(lock(keys).entry(seed).or_insert(account).clone())
    }

    fn generate(seed: u64) -> anyhow::Result<ServiceAccount> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x6006_1e5a);
        let private = rsa::PrivateKey::new(&mut rng, 2048)?;
        let private_pem = private.to_pkcs8_pem(LineEnding::LF)?.to_string();
        let public_der = private.to_public_key().to_pkcs1_der()?.as_bytes().to_vec();
        let digest = ring::digest::digest(&ring::digest::SHA256, &public_der);
        let key_id = digest.as_ref()[..20]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(ServiceAccount {
            private_pem,
            public_der,
            key_id,
        })
    }

    /// The JSON key file for a simulator whose token endpoint is `token_uri`.
    pub(crate) fn key_file(&self, token_uri: &str) -> String {
        let key = serde_json::json!({
            "type": "service_account",
            "project_id": "orgwarden-sim",
            "private_key_id": self.key_id,
            "private_key": self.private_pem,
            "client_email": GOOGLE_CLIENT_EMAIL,
            "client_id": "100000000000000000042",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/orgwarden-directory%40orgwarden-sim.iam.gserviceaccount.com",
            "universe_domain": "googleapis.com",
        });
        serde_json::to_string_pretty(&key).unwrap_or_default()
    }

    /// Whether `signature` is this account's RS256 signature of `message`.
    pub(crate) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            &self.public_der,
        )
        .verify(message, signature)
        .is_ok()
    }
}
