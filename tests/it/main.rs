//! The integration test binary: the real simulator over TCP, real SQLite files, the real binary.
// The helpers are `pub` for the test modules of this one binary; nothing here is an API.
#![allow(unreachable_pub)]

mod app;
mod helpers;

mod alerts;
mod audit;
mod cli;
mod client;
mod daemon;
mod demo;
mod directory;
mod events;
mod google;
mod hostile;
mod idp;
mod layout;
mod ldap;
mod mail;
mod metrics;
mod notices;
mod reconcile;
mod remediate;
mod report;
mod slapd;
mod snapshot;
mod state;
mod status;
mod systemd;
mod unused_access;
mod usage;
