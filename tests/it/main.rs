//! The integration test binary: the real simulator over TCP, real SQLite files, the real binary.

mod helpers;

mod cli;
mod client;
mod daemon;
mod snapshot;
mod systemd;
