//! Building the client from `[api]`.

use super::{AdminClient, ClientOptions};
use crate::clock::SharedClock;
use crate::config::{self, ApiConfig};

/// Why no client could be built from `[api]`: a configuration problem (the CLI exits 78 for it).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct ClientConfigError(String);

impl AdminClient {
    /// Builds the client from `[api]`, or explains which setting is missing. `clock` is read for
    /// HTTP-date `retry-after` headers.
    pub fn from_config(
        api: &ApiConfig,
        clock: SharedClock,
    ) -> Result<AdminClient, ClientConfigError> {
        let Some(admin_key) = api.admin_key.clone() else {
            return Err(ClientConfigError(format!(
                "api.admin_key: no admin key found; provide it as a systemd credential ({}), \
                 api.admin_key_file, or the ANTHROPIC_ADMIN_KEY environment variable",
                config::ADMIN_KEY_CREDENTIAL
            )));
        };
        let mut options = ClientOptions::new(api.base_url.clone());
        options.anthropic_version = api.anthropic_version.clone();
        options.connect_timeout = api.connect_timeout;
        options.request_timeout = api.request_timeout;
        options.total_deadline = api.total_deadline;
        options.max_retries = api.max_retries;
        options.requests_per_second = api.requests_per_second;
        options.max_in_flight = api.max_in_flight;
        options.page_size = api.page_size;
        options.clock = clock;
        AdminClient::new(options, admin_key).map_err(|error| ClientConfigError(error.to_string()))
    }
}
