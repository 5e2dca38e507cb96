//! `orgwarden-bench usage`: the usage ingest of a large organization. A 90-day backfill into a
//! fresh database against fetching the same pages alone (nothing parsed into rows, nothing
//! stored), then a one-day increment. The simulator's clock is frozen and moved with a
//! `ManualClock`, so the increment is the next day's.

use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::Serialize;

use orgwarden::admin_api::AdminClient;
use orgwarden::clock::{Clock, ManualClock};
use orgwarden::config::UsageConfig;
use orgwarden::store::Store;
use orgwarden::usage_ingest::{ingest_usage, midnight, plan_days, MAX_CHUNK_DAYS};
use orgwarden_sim::SimHandle;

#[derive(Debug, Serialize)]
pub(crate) struct UsageFigures {
    pub(crate) backfill_days: u32,
    /// The backfill: every day fetched, parsed into daily rows and stored.
    pub(crate) ingest_secs: f64,
    pub(crate) ingest_requests: u64,
    /// The same pages fetched and decoded, nothing aggregated or stored.
    pub(crate) fetch_only_secs: f64,
    pub(crate) ingest_over_fetch: f64,
    /// The CPU time of the whole process (simulator included) during the fetch-only bound and
    /// during the backfill: on a busy machine, the work apart from waiting for a core.
    pub(crate) fetch_only_cpu_secs: Option<f64>,
    pub(crate) ingest_cpu_secs: Option<f64>,
    /// Of `ingest_secs`, the time spent writing the chunks to SQLite.
    pub(crate) ingest_store_secs: f64,
    pub(crate) key_day_rows: u64,
    pub(crate) account_day_rows: u64,
    pub(crate) claude_code_day_rows: u64,
    pub(crate) db_bytes: u64,
    /// The next day: yesterday (now complete) and today.
    pub(crate) incremental_secs: f64,
    pub(crate) incremental_requests: u64,
    pub(crate) incremental_days: u64,
    pub(crate) db_growth_bytes: i64,
}

/// The bench's start: a fixed time, so that runs are comparable.
pub(crate) fn start() -> DateTime<Utc> {
    "2026-06-01T12:00:00Z".parse().unwrap_or_default()
}

pub(crate) async fn bench_usage(
    sim: &SimHandle,
    client: &AdminClient,
    db: &Path,
    max_in_flight: usize,
) -> anyhow::Result<UsageFigures> {
    let config = UsageConfig::default();
    let clock = ManualClock::new(start());

    let started = Instant::now();
    let cpu_before = process_cpu_secs();
    let plan = plan_days(&[], clock.now(), config.backfill_days, MAX_CHUNK_DAYS);
    for chunk in &plan {
        let mut page: Option<String> = None;
        loop {
            let answer = client
                .usage_messages_page(
                    midnight(chunk.first),
                    midnight(chunk.last) + chrono::Duration::days(1),
                    chunk.len() as u32,
                    page.as_deref(),
                )
                .await?;
            match answer.next_page.filter(|_| answer.has_more) {
                Some(next) => page = Some(next),
                None => break,
            }
        }
        // The Claude Code days with the ingest's concurrency (`max_in_flight` days at a time),
        // so that the bound and the ingest send the same requests on the same schedule.
        let days: Vec<_> = chunk.days().collect();
        let fetched: Vec<anyhow::Result<()>> = futures::stream::iter(days)
            .map(|day| async move {
                let mut page: Option<String> = None;
                loop {
                    let answer = client.claude_code_page(day, 1000, page.as_deref()).await?;
                    match answer.next_page.filter(|_| answer.has_more) {
                        Some(next) => page = Some(next),
                        None => return Ok::<(), anyhow::Error>(()),
                    }
                }
            })
            .buffered(max_in_flight.max(1))
            .collect()
            .await;
        fetched.into_iter().collect::<anyhow::Result<Vec<()>>>()?;
    }
    let fetch_only_secs = started.elapsed().as_secs_f64();
    let fetch_only_cpu_secs = cpu_since(cpu_before);
    eprintln!("usage fetch only: {fetch_only_secs:.2}s");

    let mut store = Store::open_writer(db, "orgwarden-bench", clock.now())?;
    let started = Instant::now();
    let cpu_before = process_cpu_secs();
    let backfill = ingest_usage(client, &mut store, &config, &clock, max_in_flight).await?;
    let ingest_secs = started.elapsed().as_secs_f64();
    let ingest_cpu_secs = cpu_since(cpu_before);
    let (key_day_rows, account_day_rows, claude_code_day_rows) = store.usage_row_counts()?;
    let db_bytes = db_size(db);
    eprintln!(
        "usage ingest: {ingest_secs:.2}s, {} requests, {key_day_rows} key-day rows, {db_bytes} bytes",
        backfill.requests
    );

    clock.advance(std::time::Duration::from_secs(86_400));
    sim.advance(chrono::Duration::days(1));
    let started = Instant::now();
    let increment = ingest_usage(client, &mut store, &config, &clock, max_in_flight).await?;
    let incremental_secs = started.elapsed().as_secs_f64();
    Ok(UsageFigures {
        backfill_days: config.backfill_days,
        ingest_secs,
        ingest_requests: backfill.requests,
        fetch_only_secs,
        ingest_over_fetch: ingest_secs / fetch_only_secs,
        fetch_only_cpu_secs,
        ingest_cpu_secs,
        ingest_store_secs: backfill.store_millis as f64 / 1000.0,
        key_day_rows,
        account_day_rows,
        claude_code_day_rows,
        db_bytes,
        incremental_secs,
        incremental_requests: increment.requests,
        incremental_days: increment.days,
        db_growth_bytes: db_size(db) as i64 - db_bytes as i64,
    })
}

/// The database with its WAL.
fn db_size(db: &Path) -> u64 {
    let wal = db.with_extension("db-wal");
    [db, wal.as_path()]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// The CPU time (user and system) of this process, every thread included (Linux:
/// `/proc/self/stat`, in clock ticks of 1/100 s).
fn process_cpu_secs() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = text.get(text.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

fn cpu_since(before: Option<f64>) -> Option<f64> {
    Some(process_cpu_secs()? - before?)
}
