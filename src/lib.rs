//! orgwarden keeps a Claude (Anthropic) organization clean and auditable.
//!
//! # Layout
//! - `config`: the TOML file and environment, validated into typed values.
//! - `admin_api`: typed models and the HTTP client; the only code that speaks to the API.
//! - `snapshot`: reading the whole organization; `OrgState` and the pure `diff`.
//! - `store`: SQLite (history, findings, outbox, actions); the only code that writes SQL.
//! - `policy`: the pure audit rules; `remediate`: the pure plan and its execution.
//! - `report`: the pure rendering of the compliance report (email bodies and CSVs).
//! - `mail`: building messages, SMTP or file delivery, and the durable outbox; the only code
//!   that speaks SMTP.
//! - `jobs`: the job functions; `daemon`: `orgwarden run`; `status`, `demo`.
//!
//! The Admin API simulator the demo and the tests run against is its own crate,
//! `orgwarden-sim` (`crates/orgwarden-sim`); the benchmark is `crates/orgwarden-bench`.
//! - `output`, `telemetry`: presentation and logging.
//! - `cli`: the command-line interface; `src/main.rs` only calls it.
//!
//! Data flows one way: `admin_api` → `snapshot` → `store` → `policy` → `remediate` / `report` →
//! `mail`, with `daemon` scheduling the jobs on top. See ARCHITECTURE.md.
#![forbid(unsafe_code)]

pub mod admin_api;
pub mod alerts;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod directory;
pub mod events;
pub mod exporter;
pub mod jobs;
pub mod mail;
pub mod metrics;
pub mod order;
pub mod org;
pub mod output;
pub mod policy;
pub mod remediate;
pub mod report;
pub mod schedule;
pub mod snapshot;
pub mod status;
pub mod store;
pub mod telemetry;
pub mod usage_ingest;
