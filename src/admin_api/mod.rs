//! The Admin API: typed models, errors and the HTTP client.
//!
//! **Invariant:** this is the only module that speaks to the API. Everything else gets typed
//! values from here and never sees a URL, a header or the admin key.

mod client;
mod error;
mod from_config;
pub mod models;

pub use crate::config::check_base_url;
pub use client::{AdminClient, Answer, ClientOptions, ClientStats, Pager};
pub use error::{ApiError, Call};
pub use from_config::ClientConfigError;
