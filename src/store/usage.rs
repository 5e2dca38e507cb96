//! Usage: the daily aggregates of the organization's usage reports, which days are stored, and
//! the ingest attempts (schema 11).
//!
//! Only the SQL lives here; `crate::usage_ingest` decides which days to fetch and turns the
//! reports into [`UsageChunk`]s. A chunk is written in one transaction: its days' rows are
//! replaced and the days recorded, so a killed ingest leaves whole days or nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, OptionalExtension, TransactionBehavior};

use super::{ts, Context as _, Result, Store};
use crate::policy::usage::UsageView;

/// One API key's usage on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDay {
    pub api_key_id: String,
    pub day: NaiveDate,
    pub account_id: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub web_search_requests: u64,
}

/// One person's (account's) messages usage on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountDay {
    pub account_id: String,
    pub day: NaiveDate,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// Who a Claude Code row is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum CodeActor {
    /// A person, by lower-cased email address.
    User(String),
    /// An API key, by name (the report names keys, not ids).
    ApiKey(String),
}

impl CodeActor {
    fn parts(&self) -> (&'static str, &str) {
        match self {
            CodeActor::User(email) => ("user", email),
            CodeActor::ApiKey(name) => ("api_key", name),
        }
    }
}

/// One Claude Code actor's activity on one UTC day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeDay {
    pub actor: CodeActor,
    pub day: NaiveDate,
    pub sessions: u64,
    pub lines_added: u64,
    pub lines_removed: u64,
    pub commits: u64,
    pub pull_requests: u64,
}

/// The usage of a run of days, fetched together and stored in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageChunk {
    /// Every day the chunk covers, with whether it was over when fetched (complete).
    pub days: Vec<(NaiveDate, bool)>,
    pub keys: Vec<KeyDay>,
    pub accounts: Vec<AccountDay>,
    pub claude_code: Vec<CodeDay>,
}

/// One stored ingest attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestRecord {
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub days: u64,
    pub requests: u64,
    pub error: Option<String>,
}

/// A stored day: `(day, complete)`.
pub type StoredDay = (NaiveDate, bool);

fn day_text(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

fn parse_day(text: &str) -> rusqlite::Result<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Clamps a count to SQLite's integer range.
fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Store {
    /// Every stored day, oldest first, with whether it is complete.
    pub fn usage_days(&self) -> Result<Vec<StoredDay>> {
        let mut stmt = self
            .conn
            .prepare("SELECT day, complete FROM usage_days ORDER BY day")
            .ctx(self)?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    parse_day(row.get_ref(0)?.as_str()?)?,
                    row.get::<_, bool>(1)?,
                ))
            })
            .ctx(self)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().ctx(self)
    }

    /// Stores a chunk: replaces its days' rows and records its days, in one transaction, with a
    /// `usage.ingested` event naming the days.
    pub fn write_usage_chunk(&mut self, chunk: &UsageChunk, now: DateTime<Utc>) -> Result<()> {
        self.require_writer()?;
        let path = self.path_text();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(&path)?;
        {
            let mut clear = Vec::new();
            for table in ["usage_key_day", "usage_account_day", "claude_code_day"] {
                clear.push(
                    tx.prepare_cached(&format!("DELETE FROM {table} WHERE day = ?1"))
                        .ctx(&path)?,
                );
            }
            let mut mark = tx
                .prepare_cached(
                    "INSERT INTO usage_days (day, complete, fetched_at) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (day) DO UPDATE SET complete = excluded.complete, \
                       fetched_at = excluded.fetched_at",
                )
                .ctx(&path)?;
            for (day, complete) in &chunk.days {
                let day = day_text(*day);
                for stmt in &mut clear {
                    stmt.execute(params![day]).ctx(&path)?;
                }
                mark.execute(params![day, complete, ts(&now)]).ctx(&path)?;
            }
            let mut key = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO usage_key_day (api_key_id, day, account_id, \
                       input_tokens, output_tokens, web_search_requests) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .ctx(&path)?;
            for k in &chunk.keys {
                key.execute(params![
                    k.api_key_id,
                    day_text(k.day),
                    k.account_id,
                    int(k.input_tokens),
                    int(k.output_tokens),
                    int(k.web_search_requests)
                ])
                .ctx(&path)?;
            }
            let mut account = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO usage_account_day (account_id, day, input_tokens, \
                       output_tokens) VALUES (?1, ?2, ?3, ?4)",
                )
                .ctx(&path)?;
            for a in &chunk.accounts {
                account
                    .execute(params![
                        a.account_id,
                        day_text(a.day),
                        int(a.input_tokens),
                        int(a.output_tokens)
                    ])
                    .ctx(&path)?;
            }
            let mut code = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO claude_code_day (actor_type, actor, day, sessions, \
                       lines_added, lines_removed, commits, pull_requests) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .ctx(&path)?;
            for c in &chunk.claude_code {
                let (kind, actor) = c.actor.parts();
                code.execute(params![
                    kind,
                    actor,
                    day_text(c.day),
                    int(c.sessions),
                    int(c.lines_added),
                    int(c.lines_removed),
                    int(c.commits),
                    int(c.pull_requests)
                ])
                .ctx(&path)?;
            }
        }
        let days: Vec<String> = chunk.days.iter().map(|(d, _)| day_text(*d)).collect();
        let complete = chunk.days.iter().filter(|(_, c)| *c).count();
        let payload = serde_json::json!({
            "days": days,
            "complete_days": complete,
            "keys": chunk.keys.len(),
            "accounts": chunk.accounts.len(),
            "claude_code": chunk.claude_code.len(),
        });
        super::events::insert(&tx, &now, "usage.ingested", payload).ctx(&path)?;
        tx.commit().ctx(&path)?;
        Ok(())
    }

    /// Records the outcome of one ingest attempt (a failure is logged to `usage.failed` too).
    pub fn record_usage_ingest(&mut self, record: &IngestRecord) -> Result<()> {
        self.require_writer()?;
        let path = self.path_text();
        let tx = self.conn.unchecked_transaction().ctx(&path)?;
        tx.execute(
            "INSERT INTO usage_ingests (started_at, finished_at, days, requests, error) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                ts(&record.started_at),
                ts(&record.finished_at),
                int(record.days),
                int(record.requests),
                record.error
            ],
        )
        .ctx(&path)?;
        if let Some(error) = &record.error {
            let payload = serde_json::json!({"days": record.days, "error": error});
            super::events::insert(&tx, &record.finished_at, "usage.failed", payload).ctx(&path)?;
        }
        tx.commit().ctx(&path)?;
        Ok(())
    }

    /// The newest ingest attempt, if any.
    pub fn last_usage_ingest(&self) -> Result<Option<IngestRecord>> {
        self.conn
            .query_row(
                "SELECT started_at, finished_at, days, requests, error FROM usage_ingests \
                 ORDER BY id DESC LIMIT 1",
                [],
                |row| {
                    Ok(IngestRecord {
                        started_at: super::ts_at(row, 0)?,
                        finished_at: super::ts_at(row, 1)?,
                        days: row.get::<_, i64>(2)?.max(0) as u64,
                        requests: row.get::<_, i64>(3)?.max(0) as u64,
                        error: row.get(4)?,
                    })
                },
            )
            .optional()
            .ctx(self)
    }

    /// The usage the rules read: last-use dates (one `MAX(day) … GROUP BY` per table), the days
    /// covered (the unbroken run of stored days ending at the newest), and the last attempt's
    /// failure. `None` when no ingest was ever attempted (nor any day stored).
    pub fn usage_view(&self) -> Result<Option<UsageView>> {
        let days = self.usage_days()?;
        let (covered_from, covered_to) = covered_range(&days);
        let failure = match self.last_usage_ingest()? {
            Some(record) => record.error,
            None if days.is_empty() => return Ok(None),
            None => None,
        };
        Ok(Some(UsageView {
            covered_from,
            covered_to,
            failure,
            key_last_used: self
                .last_days("SELECT api_key_id, max(day) FROM usage_key_day GROUP BY api_key_id")?,
            account_last_api: self.last_days(
                "SELECT account_id, max(day) FROM usage_account_day GROUP BY account_id",
            )?,
            claude_code_last_active: self.last_days(
                "SELECT actor, max(day) FROM claude_code_day WHERE actor_type = 'user' \
                 GROUP BY actor",
            )?,
        }))
    }

    fn last_days<C: FromIterator<(String, NaiveDate)>>(&self, sql: &str) -> Result<C> {
        let mut stmt = self.conn.prepare(sql).ctx(self)?;
        let rows = stmt
            .query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    parse_day(row.get_ref(1)?.as_str()?)?,
                ))
            })
            .ctx(self)?;
        rows.collect::<rusqlite::Result<C>>().ctx(self)
    }

    /// Retention for usage: deletes every stored day before `first_kept` with its rows (keys,
    /// accounts, Claude Code), and the ingest attempts that finished before it except the newest
    /// (which decides [`UsageView::failure`]), in one transaction. Which day is `first_kept` is
    /// decided by `crate::usage_ingest::usage_first_kept`, never past a day the usage rules or the
    /// backfill window still need. Returns the number of days removed.
    pub fn prune_usage(&mut self, first_kept: NaiveDate) -> Result<u64> {
        self.require_writer()?;
        let path = self.path_text();
        let first = day_text(first_kept);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(&path)?;
        for table in ["usage_key_day", "usage_account_day", "claude_code_day"] {
            tx.execute(&format!("DELETE FROM {table} WHERE day < ?1"), [&first])
                .ctx(&path)?;
        }
        let days = tx
            .execute("DELETE FROM usage_days WHERE day < ?1", [&first])
            .ctx(&path)? as u64;
        tx.execute(
            "DELETE FROM usage_ingests WHERE finished_at < ?1 \
               AND id < (SELECT max(id) FROM usage_ingests)",
            [ts(&first_kept
                .and_hms_opt(0, 0, 0)
                .unwrap_or_default()
                .and_utc())],
        )
        .ctx(&path)?;
        tx.commit().ctx(&path)?;
        Ok(days)
    }

    /// The number of ingest attempts recorded (for retention tests).
    pub fn usage_ingest_count(&self) -> Result<u64> {
        self.conn
            .query_row("SELECT count(*) FROM usage_ingests", [], |row| row.get(0))
            .ctx(self)
    }

    /// Stored rows per table, for tests and the benchmark: `(key days, account days, Claude
    /// Code days)`.
    pub fn usage_row_counts(&self) -> Result<(u64, u64, u64)> {
        self.conn
            .query_row(
                "SELECT (SELECT count(*) FROM usage_key_day), \
                        (SELECT count(*) FROM usage_account_day), \
                        (SELECT count(*) FROM claude_code_day)",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
            )
            .ctx(self)
    }

    /// Rows stored per day and table, `day -> (key rows, account rows, Claude Code rows)`.
    pub fn usage_rows_by_day(&self) -> Result<BTreeMap<NaiveDate, (u64, u64, u64)>> {
        let mut out: BTreeMap<NaiveDate, (u64, u64, u64)> = BTreeMap::new();
        for (idx, table) in ["usage_key_day", "usage_account_day", "claude_code_day"]
            .into_iter()
            .enumerate()
        {
            let mut stmt = self
                .conn
                .prepare(&format!("SELECT day, count(*) FROM {table} GROUP BY day"))
                .ctx(self)?;
            let rows = stmt
                .query_map([], |row| {
                    Ok((parse_day(row.get_ref(0)?.as_str()?)?, row.get::<_, u64>(1)?))
                })
                .ctx(self)?;
            for row in rows {
                let (day, n) = row.ctx(self)?;
                let entry = out.entry(day).or_default();
                match idx {
                    0 => entry.0 = n,
                    1 => entry.1 = n,
                    _ => entry.2 = n,
                }
            }
        }
        Ok(out)
    }
}

/// The unbroken run of stored days that ends at the newest one: `(first, last)`. Usage before a
/// gap is kept but not claimed as covered, so "not used since" never spans a day not fetched.
pub fn covered_range(days: &[StoredDay]) -> (Option<NaiveDate>, Option<NaiveDate>) {
    let Some(&(last, _)) = days.last() else {
        return (None, None);
    };
    let mut first = last;
    for &(day, _) in days.iter().rev().skip(1) {
        if first.pred_opt() == Some(day) {
            first = day;
        } else {
            break;
        }
    }
    (Some(first), Some(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 3, n).unwrap()
    }

    #[test]
    fn covered_range_is_the_unbroken_run_ending_at_the_newest_day() {
        assert_eq!(covered_range(&[]), (None, None));
        let days = [(d(1), true), (d(2), true), (d(4), true), (d(5), false)];
        assert_eq!(covered_range(&days), (Some(d(4)), Some(d(5))));
        let days = [(d(1), true), (d(2), true), (d(3), false)];
        assert_eq!(covered_range(&days), (Some(d(1)), Some(d(3))));
    }
}
