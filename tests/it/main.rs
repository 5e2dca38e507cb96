//! The integration test binary: the real simulator over TCP, real SQLite files, the real binary.

mod helpers;

mod audit;
mod cli;
mod client;
mod daemon;
mod demo;
mod layout;
mod mail;
mod remediate;
mod report;
mod snapshot;
mod status;
mod systemd;
