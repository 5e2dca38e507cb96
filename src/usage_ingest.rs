//! The usage ingest: the organization's usage reports into the store's daily aggregates.
//!
//! [`plan_days`] (pure) decides which UTC days to fetch: the days of the backfill window (today
//! included) that the store does not hold complete, in chunks of at most [`MAX_CHUNK_DAYS`]
//! consecutive days, newest first, so the stored days always end in an unbroken run up to today
//! even when a backfill is cut short. [`ingest_usage`] fetches each chunk (one messages report
//! page per 31 days, grouped by `api_key_id` and `account_id`, and the Claude Code report for
//! each of its days) and stores it in one transaction with its days, the messages rows written
//! into that transaction while the Claude Code days are still being fetched; a day is complete once it
//! was over (by [`SETTLE`]) when fetched, so the current day is refetched until then. A failed
//! fetch stops the ingest, keeps the chunks already stored and records the failure, which the
//! usage rules then read as `not_evaluated`.
//!
//! [`usage_listing`] (pure) joins the newest snapshot with the stored view for `orgwarden usage`.

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures::StreamExt;
use serde::Serialize;

use crate::admin_api::{AdminClient, ApiError};
use crate::clock::Clock;
use crate::config::{Config, UsageConfig};
use crate::org::OrgState;
use crate::output::Tabular;
use crate::policy::usage::UsageView;
use crate::store::{AccountDay, CodeActor, CodeDay, IngestRecord, KeyDay, Store, StoredDay};

/// The most days one messages report page holds (`limit` for `bucket_width = 1d`), and so the
/// most days stored in one transaction.
pub const MAX_CHUNK_DAYS: usize = 31;

/// How long after a day ends its usage is taken as final: the reports fill in within minutes,
/// so a day fetched sooner is refetched by the next ingest.
pub const SETTLE: Duration = Duration::hours(1);

/// Actors per Claude Code report page (the contract's maximum).
const CLAUDE_CODE_PAGE: u32 = 1000;

/// A guard against a server that never stops paging.
const MAX_PAGES: usize = 10_000;

/// A run of consecutive UTC days to fetch together, `first..=last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayChunk {
    pub first: NaiveDate,
    pub last: NaiveDate,
}

impl DayChunk {
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.first.iter_days().take_while(|d| *d <= self.last)
    }

    pub fn len(&self) -> usize {
        ((self.last - self.first).num_days() + 1).max(0) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The chunks to fetch, newest first: every day of the last `backfill_days` UTC days (today
/// included) that `stored` does not hold complete, in runs of consecutive days of at most
/// `max_chunk` days.
pub fn plan_days(
    stored: &[StoredDay],
    now: DateTime<Utc>,
    backfill_days: u32,
    max_chunk: usize,
) -> Vec<DayChunk> {
    let today = now.date_naive();
    let complete: HashSet<NaiveDate> = stored
        .iter()
        .filter(|(_, complete)| *complete)
        .map(|(day, _)| *day)
        .collect();
    let max_chunk = max_chunk.max(1);
    let mut chunks: Vec<DayChunk> = Vec::new();
    let mut day = today;
    for _ in 0..backfill_days {
        if !complete.contains(&day) {
            match chunks.last_mut() {
                Some(chunk) if chunk.first.pred_opt() == Some(day) && chunk.len() < max_chunk => {
                    chunk.first = day;
                }
                _ => chunks.push(DayChunk {
                    first: day,
                    last: day,
                }),
            }
        }
        match day.pred_opt() {
            Some(previous) => day = previous,
            None => break,
        }
    }
    chunks
}

/// The fewest UTC days (today included) of usage that retention keeps: the longest
/// `max_idle_days` of `dormant_keys` and `dormant_members` (enabled or not), so the rules always
/// find their window covered, and `[usage] backfill_days`, so that every day [`plan_days`] may
/// ask for is kept once fetched.
pub fn usage_days_needed(config: &Config) -> u32 {
    [
        config.rules.dormant_keys.max_idle_days,
        config.rules.dormant_members.max_idle_days,
        config.usage.backfill_days,
    ]
    .into_iter()
    .max()
    .unwrap_or(0)
    .max(1)
}

/// The first UTC day of usage that retention keeps at `now` (pure). Usage follows the runs'
/// `[store] keep_days`: the days before the one `keep_days` ago go, but never a day of the last
/// `needed` days (today included, see [`usage_days_needed`]). Because `needed` covers the whole
/// backfill window, a pruned day always lies before the window [`plan_days`] looks at, so it is
/// never fetched again; and because it covers `max_idle_days`, the view still reaches back as
/// far as the usage rules read.
pub fn usage_first_kept(now: DateTime<Utc>, keep_days: u32, needed: u32) -> NaiveDate {
    let today = now.date_naive();
    let by_age = today - Duration::days(i64::from(keep_days));
    let by_need = today - Duration::days(i64::from(needed.max(1)) - 1);
    by_age.min(by_need)
}

/// Whether `day` is over (and settled) at `now`.
pub fn day_is_complete(day: NaiveDate, now: DateTime<Utc>) -> bool {
    day.succ_opt()
        .and_then(|next| next.and_hms_opt(0, 0, 0))
        .is_some_and(|end| now >= end.and_utc() + SETTLE)
}

/// What one ingest did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestSummary {
    /// Days fetched and stored (complete or not).
    pub days: u64,
    /// Of those, days stored complete.
    pub complete_days: u64,
    pub chunks: u64,
    pub requests: u64,
    /// Milliseconds spent writing the chunks to the store (the rest is fetching and parsing).
    pub store_millis: u64,
}

/// Why an ingest stopped; the chunks stored before it stay.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("usage report: {0}")]
    Api(#[from] ApiError),
    #[error("usage report: {0}")]
    Report(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Fetches and stores the days [`plan_days`] names, chunk by chunk, and records the attempt
/// (its failure included) in the store.
pub async fn ingest_usage(
    client: &AdminClient,
    store: &mut Store,
    config: &UsageConfig,
    clock: &dyn Clock,
    max_in_flight: usize,
) -> Result<IngestSummary, IngestError> {
    let started_at = clock.now();
    let requests_before = client.stats().requests;
    let mut summary = IngestSummary::default();
    let result = ingest_chunks(client, store, config, clock, max_in_flight, &mut summary).await;
    summary.requests = client.stats().requests.saturating_sub(requests_before);
    let record = IngestRecord {
        started_at,
        finished_at: clock.now(),
        days: summary.days,
        requests: summary.requests,
        error: result.as_ref().err().map(ToString::to_string),
    };
    store.record_usage_ingest(&record)?;
    match result {
        Ok(()) => {
            tracing::info!(
                days = summary.days,
                complete_days = summary.complete_days,
                requests = summary.requests,
                "usage ingested"
            );
            Ok(summary)
        }
        Err(error) => {
            tracing::error!(days = summary.days, "usage ingest failed: {error}");
            Err(error)
        }
    }
}

async fn ingest_chunks(
    client: &AdminClient,
    store: &mut Store,
    config: &UsageConfig,
    clock: &dyn Clock,
    max_in_flight: usize,
    summary: &mut IngestSummary,
) -> Result<(), IngestError> {
    let plan = plan_days(
        &store.usage_days()?,
        clock.now(),
        config.backfill_days,
        MAX_CHUNK_DAYS,
    );
    for chunk in plan {
        ingest_chunk(client, store, chunk, clock, max_in_flight, summary).await?;
    }
    Ok(())
}

/// Fetches and stores one chunk, in one transaction: the messages report first, then, while
/// the Claude Code days are fetched on a task of their own, its key and account rows are
/// written into the chunk's open transaction, so that most of the store's time hides behind the
/// server's; the Claude Code rows and the days follow and the transaction commits. A failed
/// fetch (or a cancelled ingest) rolls the chunk back.
async fn ingest_chunk(
    client: &AdminClient,
    store: &mut Store,
    chunk: DayChunk,
    clock: &dyn Clock,
    max_in_flight: usize,
    summary: &mut IngestSummary,
) -> Result<(), IngestError> {
    let messages = fetch_messages(client, chunk).await?;
    let days: Vec<NaiveDate> = chunk.days().collect();
    let claude_code = AbortOnDrop(tokio::spawn(claude_code_days(
        client.clone(),
        days.clone(),
        max_in_flight,
    )));

    let writing = std::time::Instant::now();
    let mut write = store.begin_usage_chunk(&days)?;
    write.key_days(&messages.keys)?;
    write.account_days(&messages.accounts)?;
    let mut store_time = writing.elapsed();
    drop(messages.keys);
    drop(messages.accounts);

    let code_days = claude_code.join().await??;
    let now = clock.now();
    // A past day the report had no bucket for is stored incomplete, so it is asked again.
    let marks: Vec<(NaiveDate, bool)> = days
        .iter()
        .map(|d| (*d, messages.buckets.contains(d) && day_is_complete(*d, now)))
        .collect();
    let writing = std::time::Instant::now();
    write.code_days(&code_days)?;
    write.commit(&marks, now)?;
    store_time += writing.elapsed();

    summary.store_millis += u64::try_from(store_time.as_millis()).unwrap_or(u64::MAX);
    summary.chunks += 1;
    summary.days += marks.len() as u64;
    summary.complete_days += marks.iter().filter(|(_, c)| *c).count() as u64;
    Ok(())
}

/// A spawned task, aborted when dropped (an ingest cancelled or failed leaves nothing running).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> AbortOnDrop<T> {
    async fn join(mut self) -> Result<T, IngestError> {
        (&mut self.0)
            .await
            .map_err(|error| IngestError::Report(format!("the Claude Code fetch stopped: {error}")))
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The start of a UTC day.
pub fn midnight(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

/// Refuses a `next_page` token seen before (a server going round in circles).
fn next_token(
    seen: &mut HashSet<String>,
    has_more: bool,
    next: Option<String>,
) -> Result<Option<String>, IngestError> {
    let Some(token) = next.filter(|_| has_more) else {
        return Ok(None);
    };
    if !seen.insert(token.clone()) || seen.len() > MAX_PAGES {
        return Err(IngestError::Report(
            "the API repeated a page token; stopped paging".to_owned(),
        ));
    }
    Ok(Some(token))
}

/// A chunk's messages report, summed per key and day and per account and day.
struct Messages {
    /// By day, then key: the table's order, so that each row is appended to its day.
    keys: Vec<KeyDay>,
    /// By day, then account.
    accounts: Vec<AccountDay>,
    /// The days the report had a bucket for.
    buckets: HashSet<NaiveDate>,
}

/// Fetches one chunk's messages usage.
async fn fetch_messages(client: &AdminClient, chunk: DayChunk) -> Result<Messages, IngestError> {
    let mut keys: Vec<KeyDay> = Vec::new();
    let mut accounts: Vec<AccountDay> = Vec::new();
    let mut buckets: HashSet<NaiveDate> = HashSet::new();
    let end = midnight(chunk.last) + Duration::days(1);
    let mut page: Option<String> = None;
    let mut seen = HashSet::new();
    loop {
        let answer = client
            .usage_messages_page(
                midnight(chunk.first),
                end,
                chunk.len() as u32,
                page.as_deref(),
            )
            .await?;
        for bucket in answer.data {
            let day = DateTime::parse_from_rfc3339(&bucket.starting_at)
                .map_err(|_| {
                    IngestError::Report(format!(
                        "a bucket's starting_at is not an RFC 3339 time: {:?}",
                        bucket.starting_at.chars().take(40).collect::<String>()
                    ))
                })?
                .with_timezone(&Utc)
                .date_naive();
            if day < chunk.first || day > chunk.last {
                continue;
            }
            buckets.insert(day);
            for item in bucket.results {
                let (input, output) = (item.input_tokens(), item.output_tokens());
                let web = item.web_search_requests();
                if input == 0 && output == 0 && web == 0 {
                    continue;
                }
                if let Some(account) = &item.account_id {
                    accounts.push(AccountDay {
                        account_id: account.clone(),
                        day,
                        input_tokens: input,
                        output_tokens: output,
                    });
                }
                if let Some(key) = item.api_key_id {
                    keys.push(KeyDay {
                        api_key_id: key,
                        day,
                        account_id: item.account_id,
                        input_tokens: input,
                        output_tokens: output,
                        web_search_requests: web,
                    });
                }
            }
        }
        match next_token(&mut seen, answer.has_more, answer.next_page)? {
            Some(token) => page = Some(token),
            None => break,
        }
    }
    // One row per key and day, and per account and day: the report has one result per
    // combination of key and account, so a key or an account may come more than once a day.
    // A stable sort keeps the first result's account for a key; the order is the tables'.
    keys.sort_by(|a, b| (a.day, &a.api_key_id).cmp(&(b.day, &b.api_key_id)));
    keys.dedup_by(|next, kept| {
        let same = next.api_key_id == kept.api_key_id && next.day == kept.day;
        if same {
            kept.input_tokens = kept.input_tokens.saturating_add(next.input_tokens);
            kept.output_tokens = kept.output_tokens.saturating_add(next.output_tokens);
            kept.web_search_requests = kept
                .web_search_requests
                .saturating_add(next.web_search_requests);
        }
        same
    });
    accounts.sort_by(|a, b| (a.day, &a.account_id).cmp(&(b.day, &b.account_id)));
    accounts.dedup_by(|next, kept| {
        let same = next.account_id == kept.account_id && next.day == kept.day;
        if same {
            kept.input_tokens = kept.input_tokens.saturating_add(next.input_tokens);
            kept.output_tokens = kept.output_tokens.saturating_add(next.output_tokens);
        }
        same
    });
    Ok(Messages {
        keys,
        accounts,
        buckets,
    })
}

/// The Claude Code report of each of `days`, `max_in_flight` days at a time.
async fn claude_code_days(
    client: AdminClient,
    days: Vec<NaiveDate>,
    max_in_flight: usize,
) -> Result<Vec<CodeDay>, IngestError> {
    let per_day = futures::stream::iter(days)
        .map(|day| claude_code_day(&client, day))
        .buffered(max_in_flight.max(1));
    let code_days: Vec<Result<Vec<CodeDay>, IngestError>> = per_day.collect().await;
    let mut claude_code = Vec::new();
    for rows in code_days {
        claude_code.extend(rows?);
    }
    Ok(claude_code)
}

/// Every page of the Claude Code report of one day, summed per actor.
async fn claude_code_day(
    client: &AdminClient,
    day: NaiveDate,
) -> Result<Vec<CodeDay>, IngestError> {
    let mut rows: BTreeMap<CodeActor, CodeDay> = BTreeMap::new();
    let mut page: Option<String> = None;
    let mut seen = HashSet::new();
    loop {
        let answer = client
            .claude_code_page(day, CLAUDE_CODE_PAGE, page.as_deref())
            .await?;
        for item in answer.data {
            let actor = match item.actor {
                Some(a) if a.kind == "user_actor" => a
                    .email_address
                    .as_deref()
                    .map(|e| CodeActor::User(e.trim().to_lowercase())),
                Some(a) if a.kind == "api_actor" => a.api_key_name.map(CodeActor::ApiKey),
                // An actor type this orgwarden does not know is skipped, not a failure.
                _ => None,
            };
            let Some(actor) = actor else { continue };
            let metrics = item.core_metrics.unwrap_or_default();
            let lines = metrics.lines_of_code.unwrap_or_default();
            let row = rows.entry(actor.clone()).or_insert_with(|| CodeDay {
                actor,
                day,
                sessions: 0,
                lines_added: 0,
                lines_removed: 0,
                commits: 0,
                pull_requests: 0,
            });
            row.sessions = row
                .sessions
                .saturating_add(metrics.num_sessions.unwrap_or(0));
            row.lines_added = row.lines_added.saturating_add(lines.added.unwrap_or(0));
            row.lines_removed = row.lines_removed.saturating_add(lines.removed.unwrap_or(0));
            row.commits = row
                .commits
                .saturating_add(metrics.commits_by_claude_code.unwrap_or(0));
            row.pull_requests = row
                .pull_requests
                .saturating_add(metrics.pull_requests_by_claude_code.unwrap_or(0));
        }
        match next_token(&mut seen, answer.has_more, answer.next_page)? {
            Some(token) => page = Some(token),
            None => break,
        }
    }
    Ok(rows.into_values().collect())
}

// ---- `orgwarden usage` ------------------------------------------------------------------------

/// One API key's line of `orgwarden usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyUsage {
    pub id: String,
    pub name: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    /// The last UTC day with usage, if any was seen in the days covered.
    pub last_used: Option<NaiveDate>,
    #[serde(skip)]
    covered_from: Option<NaiveDate>,
}

impl Tabular for KeyUsage {
    const COLUMNS: &'static [&'static str] = &["id", "name", "status", "created", "last used"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.clone(),
            self.name.clone(),
            self.status.clone(),
            self.created_at.format("%Y-%m-%d").to_string(),
            last_use_text(self.last_used, self.covered_from),
        ]
    }
}

/// One member's line of `orgwarden usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberUsage {
    pub email: String,
    pub user_id: String,
    pub last_api_use: Option<NaiveDate>,
    pub last_claude_code: Option<NaiveDate>,
    #[serde(skip)]
    covered_from: Option<NaiveDate>,
}

impl Tabular for MemberUsage {
    const COLUMNS: &'static [&'static str] = &["email", "last API use", "last Claude Code"];
    fn cells(&self) -> Vec<String> {
        vec![
            self.email.clone(),
            last_use_text(self.last_api_use, self.covered_from),
            last_use_text(self.last_claude_code, self.covered_from),
        ]
    }
}

/// What `orgwarden usage` shows: every key and member of the newest snapshot with its last use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageListing {
    pub covered_from: Option<NaiveDate>,
    pub covered_to: Option<NaiveDate>,
    pub failure: Option<String>,
    pub keys: Vec<KeyUsage>,
    pub members: Vec<MemberUsage>,
}

/// Joins a snapshot with the stored usage (pure).
pub fn usage_listing(state: &OrgState, view: &UsageView) -> UsageListing {
    let mut keys: Vec<KeyUsage> = state
        .api_keys
        .iter()
        .map(|k| KeyUsage {
            id: k.id.clone(),
            name: k.name.clone(),
            status: k.status.as_str().to_owned(),
            created_at: k.created_at,
            last_used: view.key_last_used.get(&k.id).copied(),
            covered_from: view.covered_from,
        })
        .collect();
    keys.sort_by(|a, b| a.last_used.cmp(&b.last_used).then_with(|| a.id.cmp(&b.id)));
    let mut members: Vec<MemberUsage> = state
        .members
        .iter()
        .map(|u| MemberUsage {
            email: u.email.clone(),
            user_id: u.id.clone(),
            last_api_use: view.account_last_api.get(&u.id).copied(),
            last_claude_code: view
                .claude_code_last_active
                .get(&u.email.trim().to_lowercase())
                .copied(),
            covered_from: view.covered_from,
        })
        .collect();
    members.sort_by(|a, b| a.email.cmp(&b.email));
    UsageListing {
        covered_from: view.covered_from,
        covered_to: view.covered_to,
        failure: view.failure.clone(),
        keys,
        members,
    }
}

/// A last-use date as `orgwarden usage` prints it: the day, or "never since DATE" (the first
/// day covered), or "unknown" when nothing is covered.
pub fn last_use_text(day: Option<NaiveDate>, covered_from: Option<NaiveDate>) -> String {
    match (day, covered_from) {
        (Some(day), _) => day.to_string(),
        (None, Some(from)) => format!("never since {from}"),
        (None, None) => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn d(text: &str) -> NaiveDate {
        NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
    }

    fn at(y: i32, m: u32, day: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, day, h, 0, 0).unwrap()
    }

    #[test]
    fn usage_retention_keeps_keep_days_but_never_fewer_than_the_needed_days() {
        let now = at(2026, 3, 31, 10);
        // keep_days beyond what is needed: the day keep_days ago is the first kept, as for runs.
        assert_eq!(usage_first_kept(now, 400, 90), d("2025-02-24"));
        // keep_days shorter than what is needed: the needed days, today included, stay.
        assert_eq!(usage_first_kept(now, 5, 90), d("2026-01-01"));
        assert_eq!(usage_first_kept(now, 5, 1), d("2026-03-26"));
        assert_eq!(usage_first_kept(now, 0, 1), d("2026-03-31"));
        // The first kept day is never inside the window plan_days covers.
        for (keep, needed) in [(1, 90), (30, 45), (400, 10)] {
            let first = usage_first_kept(now, keep, needed);
            let plan = plan_days(&[], now, needed, MAX_CHUNK_DAYS);
            let oldest = plan.iter().map(|c| c.first).min().unwrap();
            assert!(first <= oldest, "keep {keep}, needed {needed}");
        }
    }

    fn chunk(first: &str, last: &str) -> DayChunk {
        DayChunk {
            first: d(first),
            last: d(last),
        }
    }

    #[test]
    fn the_first_run_backfills_the_window_newest_first_in_chunks() {
        let plan = plan_days(&[], at(2026, 3, 31, 12), 90, 31);
        assert_eq!(
            plan,
            vec![
                chunk("2026-03-01", "2026-03-31"),
                chunk("2026-01-29", "2026-02-28"),
                chunk("2026-01-01", "2026-01-28"),
            ]
        );
        assert_eq!(plan.iter().map(DayChunk::len).sum::<usize>(), 90);
    }

    #[test]
    fn complete_days_are_skipped_and_incomplete_ones_fetched_again() {
        let stored = vec![
            (d("2026-03-28"), true),
            (d("2026-03-29"), true),
            (d("2026-03-30"), false),
        ];
        // The next day: the day that was partial and today.
        let plan = plan_days(&stored, at(2026, 3, 31, 9), 4, 31);
        assert_eq!(plan, vec![chunk("2026-03-30", "2026-03-31")]);
        // Nothing complete missing, the same day: only today.
        let stored = vec![(d("2026-03-29"), true), (d("2026-03-30"), true)];
        let plan = plan_days(&stored, at(2026, 3, 31, 9), 3, 31);
        assert_eq!(plan, vec![chunk("2026-03-31", "2026-03-31")]);
    }

    #[test]
    fn a_gap_makes_its_own_chunk_and_days_outside_the_window_are_ignored() {
        let stored = vec![
            (d("2026-03-01"), true),
            (d("2026-03-02"), true),
            (d("2026-03-04"), true),
            (d("2026-03-05"), true),
        ];
        let plan = plan_days(&stored, at(2026, 3, 5, 23), 5, 31);
        assert_eq!(plan, vec![chunk("2026-03-03", "2026-03-03")]);
        // A window shorter than what is stored asks nothing older.
        assert_eq!(plan_days(&stored, at(2026, 3, 5, 23), 1, 31), vec![]);
        // A chunk never exceeds the page size.
        let plan = plan_days(&[], at(2026, 3, 5, 23), 5, 2);
        assert_eq!(
            plan,
            vec![
                chunk("2026-03-04", "2026-03-05"),
                chunk("2026-03-02", "2026-03-03"),
                chunk("2026-03-01", "2026-03-01"),
            ]
        );
    }

    #[test]
    fn a_day_is_complete_only_once_it_is_over_and_settled() {
        let day = d("2026-03-05");
        assert!(!day_is_complete(day, at(2026, 3, 5, 23)));
        assert!(!day_is_complete(day, at(2026, 3, 6, 0)));
        assert!(day_is_complete(day, at(2026, 3, 6, 1)));
    }

    #[test]
    fn last_use_text_says_never_since_the_first_day_covered() {
        assert_eq!(
            last_use_text(None, Some(d("2026-01-01"))),
            "never since 2026-01-01"
        );
        assert_eq!(last_use_text(Some(d("2026-02-03")), None), "2026-02-03");
        assert_eq!(last_use_text(None, None), "unknown");
    }
}
